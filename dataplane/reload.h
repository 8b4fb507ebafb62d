/* reload.h — loading the model with progress, and reloading the config live.
 *
 * The daemon loads its model through the weight loader (engine.h): progress
 * goes to systemd's status line (sd_notify STATUS=: phase, percent, GB/s,
 * ETA) and to the log (a line about once a second; on a terminal one line
 * rewritten in place).
 *
 * SIGHUP asks for a reload (aw_reload_request() from the main loop). A
 * background thread reads and validates the config file again (with the
 * same --set overrides), exactly as at start-up:
 *
 *   - a config with errors changes nothing: the problems are logged;
 *   - keys that change in place: [limits] max_new_tokens and
 *     default_deadline_ms (the workers read them per request), [log] level;
 *   - [model] path, or the file at that path replaced (device, inode, size
 *     or mtime changed — a cheap stand-in for a checksum): the new model is
 *     loaded in the background through the loader while the old one serves,
 *     then swapped in (aw_engine_model_swap): requests running finish on
 *     the old model, new ones run on the new one; the old model is freed by
 *     the main loop once its last request has ended. The other [model] keys
 *     (load, queue_depth, request_size, replicas) apply to that load. A
 *     missing or corrupt file leaves the old model serving;
 *   - every other changed key is named in a log line "needs a restart" and
 *     keeps its running value.
 *
 * The main loop calls aw_reload_poll() every few milliseconds: it collects
 * a finished reload, logs its result and frees retired models.
 */
#ifndef AW_RELOAD_H
#define AW_RELOAD_H

#include <sched.h>

#include "conf.h"
#include "dispatch.h"
#include "engine.h"

/* Engine options from [model] and the groups' nodes: the load method, queue
 * depth and request size, and one replica per distinct node of a group
 * (replicas = per-node; single: the lowest group's node; none when no group
 * names a node), with a progress sink for systemd and the log. 'phase'
 * ("loading model", "loading new model") starts the status text; it must
 * outlive the load. */
void aw_reload_model_opts(const struct aw_conf *c, const char *phase,
			  struct aw_engine_model_opts *ret_o);

/* Tell systemd the status line (a no-op without libsystemd or NOTIFY_SOCKET). */
void aw_reload_notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct aw_reload;

/* Prepare reloads of 'cli' (its config path and --set overrides, which must
 * outlive the reloader) for a daemon running 'running' (copied) with 'e'
 * and 'd' (may be NULL). 'affinity' is the CPU set the process had before
 * the EAL pinned its main thread (NULL: the current one): the config is
 * validated against it as at start-up. Returns 0 or -ENOMEM. */
int aw_reload_new(const struct aw_conf_cli *cli, const struct aw_conf *running,
		  const cpu_set_t *affinity, struct aw_engine *e, struct aw_dispatch *d,
		  struct aw_reload **ret);

/* Start a reload on a background thread (SIGHUP). Returns 0, or -EBUSY when
 * one is still running (the request is remembered and started afterwards). */
int aw_reload_request(struct aw_reload *r);

/* From the main loop: collect a finished reload, start a remembered one,
 * free retired models. Returns the number of reloads completed so far. */
unsigned aw_reload_poll(struct aw_reload *r);

/* Stop a running reload (a model load in flight is cancelled at its next
 * progress report, within about a second), wait for it and free. Accepts
 * NULL. */
void aw_reload_free(struct aw_reload *r);

#endif
