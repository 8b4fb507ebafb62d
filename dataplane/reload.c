/* reload.c — the daemon's model load with progress, and live config reload
 * with a background model swap (reload.h).
 *
 * The reload thread does the slow parts off the main loop: reading and
 * validating the file, and loading a new model while the old one serves.
 * What it decides is applied where it is safe: limits through the
 * dispatcher's atomics, the log level at once, the model by
 * aw_engine_model_swap() (the switch itself is one pointer under a lock;
 * workers take it at their next request). The main loop only collects the
 * thread and frees retired models.
 */
#include "reload.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_log.h>

#include "log.h"
#include "telemetry.h"

#include "aw-config.h"
#if AW_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

void aw_reload_notify_status(const char *fmt, ...)
{
#if AW_HAVE_SYSTEMD
	char msg[512];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	sd_notify(0, msg);
#else
	(void)fmt;
#endif
}

/* --- the model load's progress ---------------------------------------------------- */

struct progress {
	const char *phase;
	char path[AW_CONF_PATH_LEN];
	bool tty;
};

/* one per load in flight: the start-up load and at most one reload, never
 * at the same time (the reload thread starts after READY) */
static struct progress progress_state;
/* set by aw_reload_free(): a background load in flight stops at its next
 * progress report (the loader then ends with -ECANCELED) */
static atomic_bool load_cancel;

static int on_progress(void *ctx, const struct aw_load_progress *p)
{
	const struct progress *pr = ctx;
	char line[128];

	aw_loader_progress_format(p, line, sizeof(line));
	aw_reload_notify_status("%s %s: %s", pr->phase, pr->path, line);
	if (pr->tty)
		aw_loader_print_progress(stderr, p);
	else
		aw_log(AW_LOG_NOTICE, "loader", "%s: %s", pr->path, line);
	return atomic_load(&load_cancel) ? 1 : 0;
}

static void loader_log(int level, const char *module, const char *line, void *ctx)
{
	(void)ctx;
	/* the loader's warnings (no hugepages, O_DIRECT refused) are the
	 * operator's to see: one line each */
	aw_log(level, module, "%s", line);
}

void aw_reload_model_opts(const struct aw_conf *c, const char *phase,
			  struct aw_engine_model_opts *ret_o)
{
	struct aw_engine_model_opts o = {0};

	o.method = c->model.load == AW_CONF_LOAD_MMAP	    ? AW_LOAD_MMAP
		   : c->model.load == AW_CONF_LOAD_BUFFERED ? AW_LOAD_READ
							    : AW_LOAD_URING;
	o.queue_depth = c->model.queue_depth;
	o.request_size = (size_t)c->model.request_size;
	/* one replica per node that serves (a group on it) */
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		const int node = c->groups[g].node;
		unsigned i;

		if (!c->groups[g].present || node < 0)
			continue;
		for (i = 0; i < o.n_nodes && o.nodes[i] != node; i++)
			;
		if (i < o.n_nodes)
			continue;
		if (c->model.replicas == AW_CONF_REPLICAS_SINGLE) {
			if (o.n_nodes == 0 || node < o.nodes[0])
				o.nodes[0] = node, o.n_nodes = 1;
		} else if (o.n_nodes < AW_LOAD_MAX_REPLICAS) {
			o.nodes[o.n_nodes++] = node;
		}
	}
	progress_state.phase = phase;
	snprintf(progress_state.path, sizeof(progress_state.path), "%s", c->model.path);
	progress_state.tty = isatty(STDERR_FILENO);
	o.on_progress = on_progress;
	o.progress_ctx = &progress_state;
	o.log = loader_log;
	*ret_o = o;
}

/* --- config diff -------------------------------------------------------------------- */

/* Where section 'sec' (entry 'i' of a numbered one) lives in a config, and
 * how many entries it has. */
static const uint8_t *section_base(const struct aw_conf *c, const char *sec, unsigned i,
				   unsigned *ret_n)
{
	*ret_n = 1;
	if (strcmp(sec, "eal") == 0)
		return (const uint8_t *)&c->eal;
	if (strcmp(sec, "dataplane") == 0)
		return (const uint8_t *)&c->dataplane;
	if (strcmp(sec, "model") == 0)
		return (const uint8_t *)&c->model;
	if (strcmp(sec, "limits") == 0)
		return (const uint8_t *)&c->limits;
	if (strcmp(sec, "telemetry") == 0)
		return (const uint8_t *)&c->telemetry;
	if (strcmp(sec, "log") == 0)
		return (const uint8_t *)&c->log;
	if (strcmp(sec, "port") == 0) {
		*ret_n = AW_CONF_MAX_PORTS;
		return c->ports[i].present ? (const uint8_t *)&c->ports[i] : NULL;
	}
	if (strcmp(sec, "group") == 0) {
		*ret_n = AW_CONF_MAX_GROUPS;
		return c->groups[i].present ? (const uint8_t *)&c->groups[i] : NULL;
	}
	*ret_n = 0;
	return NULL;
}

/* Keys applied without a restart (the [model] ones apply to the next load). */
static bool live_key(const char *sec, const char *key)
{
	static const char *const live[][2] = {
		{"limits", "max_new_tokens"},
		{"limits", "default_deadline_ms"},
		{"log", "level"},
		{"model", "path"},
		{"model", "load"},
		{"model", "queue_depth"},
		{"model", "request_size"},
		{"model", "replicas"},
	};

	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (strcmp(sec, live[i][0]) == 0 && strcmp(key, live[i][1]) == 0)
			return true;
	return false;
}

/* Append "[sec N] key" of every changed key that needs a restart to 'buf';
 * returns how many. */
static unsigned restart_keys(const struct aw_conf *a, const struct aw_conf *b, char *buf,
			     size_t cap)
{
	size_t used = 0;
	unsigned n = 0;

	buf[0] = '\0';
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++) {
		unsigned cnt;

		section_base(a, k->section, 0, &cnt);
		for (unsigned i = 0; i < cnt; i++) {
			const uint8_t *pa = section_base(a, k->section, i, &cnt);
			const uint8_t *pb = section_base(b, k->section, i, &cnt);
			char name[96];

			if (!pa && !pb)
				continue;
			if (pa && pb && memcmp(pa + k->offset, pb + k->offset, k->size) == 0)
				continue;
			if (live_key(k->section, k->name))
				continue;
			if (cnt > 1)
				snprintf(name, sizeof(name), "[%s %u] %s", k->section, i, k->name);
			else
				snprintf(name, sizeof(name), "[%s] %s", k->section, k->name);
			n++;
			if (used < cap)
				used += (size_t)snprintf(buf + used, cap - used, "%s%s",
							 used ? ", " : "", name);
		}
	}
	return n;
}

/* --- the reloader --------------------------------------------------------------------- */

struct aw_reload {
	const struct aw_conf_cli *cli;
	struct aw_conf running; /* as applied (src not owned) */
	struct stat model_st;	/* identity of the model file being served */
	cpu_set_t affinity;
	bool have_affinity;
	struct aw_engine *e;
	struct aw_dispatch *d;

	pthread_t th;
	bool th_running;
	atomic_bool th_done;
	bool pending; /* SIGHUP while one was running */
	unsigned completed;
	bool retired; /* a swapped-out model may still be in use */

	/* the thread's result, read after the join */
	struct aw_conf next; /* the new config (src not owned) */
	int ok;		     /* 1: 'next' is valid */
	int swapped;	     /* 1: a new model was swapped in */
};

int aw_reload_new(const struct aw_conf_cli *cli, const struct aw_conf *running,
		  const cpu_set_t *affinity, struct aw_engine *e, struct aw_dispatch *d,
		  struct aw_reload **ret)
{
	struct aw_reload *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->cli = cli;
	r->running = *running;
	r->running.src = NULL;
	if (stat(running->model.path, &r->model_st) < 0)
		memset(&r->model_st, 0, sizeof(r->model_st));
	if (affinity) {
		r->affinity = *affinity;
		r->have_affinity = true;
	}
	r->e = e;
	r->d = d;
	*ret = r;
	return 0;
}

/* Log every line of the config loader's report. */
static void log_report(char *text)
{
	char *save, *line;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		aw_log(AW_LOG_ERR, "reload", "%s", line);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void *reload_main(void *arg)
{
	struct aw_reload *r = arg;
	struct aw_conf *nc = NULL;
	struct aw_topo *topo = NULL;
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	cpu_set_t mine;
	int rc = -ENOMEM;

	r->ok = 0;
	r->swapped = 0;
	/* validate as at start-up: against the CPUs the process had then (the
	 * EAL pinned this thread's parent to the main lcore since) */
	if (r->have_affinity && sched_getaffinity(0, sizeof(mine), &mine) == 0) {
		sched_setaffinity(0, sizeof(r->affinity), &r->affinity);
		if (plan && mem)
			rc = aw_conf_cli_load(r->cli, mem, &nc, &topo, plan);
		sched_setaffinity(0, sizeof(mine), &mine);
	} else if (plan && mem) {
		rc = aw_conf_cli_load(r->cli, mem, &nc, &topo, plan);
	}
	if (mem)
		fclose(mem);
	free(plan);
	if (rc != 0) {
		aw_log(AW_LOG_ERR, "reload",
		       "%s: the config has errors: the running configuration is unchanged",
		       r->cli->config);
		if (text)
			log_report(text);
		goto out;
	}
	r->next = *nc;
	r->next.src = NULL;
	r->ok = 1;

	/* the model: a new path, or another file at the same path */
	struct stat st;
	bool changed = strcmp(nc->model.path, r->running.model.path) != 0;

	if (!changed && stat(nc->model.path, &st) == 0 && !same_file(&st, &r->model_st))
		changed = true;
	if (changed && r->e && aw_engine_model_generation(r->e) > 0) {
		struct aw_engine_model_opts o;
		struct aw_err err = {0};
		struct stat st_before;
		int have_st = stat(nc->model.path, &st_before) == 0;

		aw_log(AW_LOG_NOTICE, "reload", "loading model %s in the background",
		       nc->model.path);
		aw_reload_model_opts(nc, "serving; loading new model", &o);
		rc = aw_engine_model_swap(r->e, nc->model.path, &o, &err);
		if (rc < 0) {
			aw_log(AW_LOG_ERR, "reload", "model %s: %s: the old model keeps serving",
			       nc->model.path, err.msg[0] ? err.msg : strerror(-rc));
			/* keep serving the old file: later reloads retry */
			snprintf(r->next.model.path, sizeof(r->next.model.path), "%s",
				 r->running.model.path);
		} else {
			aw_log(AW_LOG_NOTICE, "reload",
			       "model %s is serving (generation %u); requests already running "
			       "finish on the previous model",
			       nc->model.path, aw_engine_model_generation(r->e));
			if (have_st)
				r->model_st = st_before;
			r->swapped = 1;
			aw_telemetry_set_model(nc->model.path);
		}
	} else if (changed) {
		aw_log(AW_LOG_WARNING, "reload",
		       "[model] path changed, but this engine cannot swap models: needs a "
		       "restart");
	}
out:
	free(text);
	aw_conf_free(nc);
	aw_topo_free(topo);
	atomic_store(&r->th_done, true);
	return NULL;
}

/* Apply the in-place keys of r->next and name those that need a restart. */
static void apply(struct aw_reload *r)
{
	struct aw_conf *n = &r->next;
	char keys[1024];
	unsigned nk = restart_keys(&r->running, n, keys, sizeof(keys));

	if (nk)
		aw_log(AW_LOG_WARNING, "reload",
		       "%u changed key%s need%s a restart and keep%s the running value: %s", nk,
		       nk > 1 ? "s" : "", nk > 1 ? "" : "s", nk > 1 ? "" : "s", keys);
	if (r->d && (n->limits.max_new_tokens != r->running.limits.max_new_tokens ||
		     n->limits.default_deadline_ms != r->running.limits.default_deadline_ms)) {
		aw_dispatch_set_limits(r->d, n->limits.max_new_tokens,
				       n->limits.default_deadline_ms * 1000u);
		aw_log(AW_LOG_NOTICE, "reload",
		       "[limits] max_new_tokens = %u, default_deadline_ms = %u (in place)",
		       n->limits.max_new_tokens, n->limits.default_deadline_ms);
		r->running.limits.max_new_tokens = n->limits.max_new_tokens;
		r->running.limits.default_deadline_ms = n->limits.default_deadline_ms;
	}
	if (strcmp(n->log.level, r->running.log.level) != 0) {
		int lvl = aw_log_parse_level(n->log.level[0] ? n->log.level : "notice");
		int type = rte_log_register("agentwire"); /* the daemon's type */

		if (lvl > 0) {
			aw_log_level = lvl;
			if (type >= 0)
				rte_log_set_level((uint32_t)type, (uint32_t)lvl + 1);
			aw_log(AW_LOG_NOTICE, "reload", "[log] level = %s (in place)",
			       n->log.level);
		}
		memcpy(r->running.log.level, n->log.level, sizeof(n->log.level));
	}
	r->running.model = n->model; /* path as now served; the rest for the next load */
}

static int start(struct aw_reload *r)
{
	atomic_store(&r->th_done, false);
	if (pthread_create(&r->th, NULL, reload_main, r) != 0)
		return -errno;
	r->th_running = true;
	return 0;
}

int aw_reload_request(struct aw_reload *r)
{
	if (r->th_running) {
		r->pending = true;
		aw_log(AW_LOG_NOTICE, "reload", "a reload is running: the next one follows it");
		return -EBUSY;
	}
	aw_log(AW_LOG_NOTICE, "reload", "reloading %s", r->cli->config);
	return start(r);
}

unsigned aw_reload_poll(struct aw_reload *r)
{
	if (r->th_running && atomic_load(&r->th_done)) {
		pthread_join(r->th, NULL);
		r->th_running = false;
		if (r->ok)
			apply(r);
		if (r->swapped)
			r->retired = true;
		r->completed++;
		if (r->e && aw_engine_model_generation(r->e) > 0)
			aw_reload_notify_status("serving: model %s (generation %u)",
						r->running.model.path,
						aw_engine_model_generation(r->e));
		if (r->pending) {
			r->pending = false;
			aw_reload_request(r);
		}
	}
	if (r->e && aw_engine_model_reap(r->e) == 0 && r->retired) {
		r->retired = false;
		aw_log(AW_LOG_NOTICE, "reload",
		       "no request runs on the previous model any more: its memory is freed");
	}
	return r->completed;
}

void aw_reload_free(struct aw_reload *r)
{
	if (!r)
		return;
	if (r->th_running) {
		atomic_store(&load_cancel, true); /* shutting down: stop a model load */
		pthread_join(r->th, NULL);
		atomic_store(&load_cancel, false);
	}
	free(r);
}
