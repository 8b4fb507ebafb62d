/* daemon.c — bring the appliance up from a validated config, serve, and
 * shut down cleanly (daemon.h).
 *
 * Order of start-up: EAL (arguments from the plan: lcores, memory, vdevs or
 * PCI devices), logging into rte_log, the engine, ports and dataplane lcores,
 * worker groups, telemetry; "ready" is logged only once the ports are started
 * and every lcore runs, so scripts can wait for it. Shutdown reverses it:
 * stop receiving, let workers end every queued or running request with a
 * final message (END cancelled), drain the response rings, stop the lcores,
 * close the ports, check that every mbuf came back, free, rte_eal_cleanup().
 */
#include "daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_log.h>

#include "dataplane.h"
#include "dispatch.h"
#include "engine.h"
#include "log.h"
#include "telemetry.h"
#include "journal.h"
#include "metrics.h"
#include "reload.h"
#include "watchdog.h"

#include "aw-config.h"
#if AW_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

static volatile sig_atomic_t quit_signal;
static volatile sig_atomic_t hup_signal;

/* --- reload (loader helper): the command line to re-read on SIGHUP, and the
 * CPUs the process had before the EAL pinned the main thread --- */
static const struct aw_conf_cli *reload_cli;
static cpu_set_t start_affinity;
static bool have_start_affinity;

void aw_daemon_set_cli(const struct aw_conf_cli *cli)
{
	reload_cli = cli;
	have_start_affinity = sched_getaffinity(0, sizeof(start_affinity), &start_affinity) == 0;
}

static void on_hup(int sig)
{
	(void)sig;
	hup_signal = 1;
}

/* Tell systemd (Type=notify) one "KEY=value\n..." message; a no-op without
 * libsystemd or when not started by systemd (no NOTIFY_SOCKET). */
static void notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void notify(const char *fmt, ...)
{
#if AW_HAVE_SYSTEMD
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_notify(0, msg);
#else
	(void)fmt;
#endif
}

/* The watchdog interval systemd asked for (WatchdogSec=), 0 when none. */
static uint64_t watchdog_usec(void)
{
#if AW_HAVE_SYSTEMD
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) > 0)
		return usec;
#endif
	return 0;
}

/* the watchdog interval while starting (EAL, model load): the unit's
 * TimeoutStartSec= bounds the start, not the watchdog */
#define START_WATCHDOG_USEC (30ull * 60 * 1000 * 1000)

/* Every lcore's heartbeat: dataplane lcores first, then worker groups. */
static unsigned read_heartbeats(const struct aw_dp *dp, unsigned n_dp,
				const struct aw_dispatch *disp, unsigned n_groups, uint64_t *out)
{
	unsigned n = 0;

	for (unsigned i = 0; i < n_dp && n < AW_WATCHDOG_MAX; i++)
		out[n++] = aw_dp_heartbeat(dp, i);
	for (unsigned g = 0; disp && g < n_groups && n < AW_WATCHDOG_MAX; g++)
		out[n++] = aw_dispatch_heartbeat(disp, g);
	return n;
}
static int aw_logtype = RTE_LOGTYPE_USER1;

static void on_signal(int sig)
{
	quit_signal = sig;
}

/* DPDK's log stream (and so aw_log's) goes through aw_journal: "<N>" level
 * prefixes and no timestamps under journald, repeats folded everywhere.
 * rte_log is called from every lcore: one lock around the formatter. */
#define LOG_REPEAT_WINDOW_US (10ull * 1000 * 1000)
static struct aw_journal journal;
static pthread_mutex_t journal_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *journal_stream;

static ssize_t journal_cookie_write(void *cookie, const char *buf, size_t len)
{
	int lvl = rte_log_cur_msg_loglevel(); /* rte levels are syslog's + 1 */

	(void)cookie;
	pthread_mutex_lock(&journal_mu);
	aw_journal_write(&journal, lvl > 0 ? lvl - 1 : AW_LOG_INFO, buf, len, aw_dp_now_us());
	pthread_mutex_unlock(&journal_mu);
	return (ssize_t)len;
}

static void journal_open(void)
{
	static const cookie_io_functions_t fns = {.write = journal_cookie_write};
	bool jd = aw_journal_detect(getenv("JOURNAL_STREAM"), STDERR_FILENO);

	aw_journal_init(&journal, stderr, jd, LOG_REPEAT_WINDOW_US);
	journal_stream = fopencookie(NULL, "w", fns);
	if (!journal_stream)
		return;
	setvbuf(journal_stream, NULL, _IOLBF, 0);
	rte_openlog_stream(journal_stream);
}

static void journal_tick(void)
{
	pthread_mutex_lock(&journal_mu);
	aw_journal_tick(&journal, aw_dp_now_us());
	pthread_mutex_unlock(&journal_mu);
}

static void journal_close(void)
{
	if (!journal_stream)
		return;
	rte_openlog_stream(NULL);
	fclose(journal_stream);
	journal_stream = NULL;
	pthread_mutex_lock(&journal_mu);
	aw_journal_flush(&journal);
	pthread_mutex_unlock(&journal_mu);
}

/* aw_log levels are syslog's; rte_log's are syslog's + 1. */
static void rte_sink(int level, const char *module, const char *line, void *ctx)
{
	(void)ctx;
	rte_log((uint32_t)level + 1, (uint32_t)aw_logtype, "agentwire: %s: %s\n", module, line);
}

#define MAX_EAL_ARGS 64

struct eal_args {
	int argc;
	char *argv[MAX_EAL_ARGS];
	char buf[8192];
	size_t used;
};

static void eal_add(struct eal_args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void eal_add(struct eal_args *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->argc >= MAX_EAL_ARGS - 1 || a->used >= sizeof(a->buf))
		return;
	va_start(ap, fmt);
	n = vsnprintf(a->buf + a->used, sizeof(a->buf) - a->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(a->buf) - a->used)
		return;
	a->argv[a->argc++] = a->buf + a->used;
	a->used += (size_t)n + 1;
}

static int is_vdev(const char *dev)
{
	return strncmp(dev, "net_", 4) == 0 || strncmp(dev, "eth_", 4) == 0;
}

static void build_eal_args(const struct aw_conf *c, const struct aw_conf_plan *plan,
			   const char *argv0, struct eal_args *a)
{
	int any_pci = 0;
	char extra[AW_CONF_ARGS_LEN], *save, *tok;

	eal_add(a, "%s", argv0);
	eal_add(a, "--lcores=%s", plan->eal_lcores);
	eal_add(a, "--main-lcore=0");
	if (c->eal.file_prefix[0])
		eal_add(a, "--file-prefix=%s", c->eal.file_prefix);
	if (!c->eal.hugepages)
		eal_add(a, "--no-huge");
	eal_add(a, "-m");
	eal_add(a, "%llu", (unsigned long long)(c->eal.memory >> 20));
	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
		if (!c->ports[p].present)
			continue;
		if (is_vdev(c->ports[p].device)) {
			eal_add(a, "--vdev=%s", c->ports[p].device);
		} else {
			any_pci = 1;
			eal_add(a, "-a");
			eal_add(a, "%s", c->ports[p].device);
		}
	}
	if (!any_pci)
		eal_add(a, "--no-pci");
	if (c->log.dpdk_level[0])
		eal_add(a, "--log-level=%s", c->log.dpdk_level);
	snprintf(extra, sizeof(extra), "%s", c->eal.args);
	for (tok = strtok_r(extra, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save))
		eal_add(a, "%s", tok);
}

/* "net_tap0,iface=aw0" -> port id of "net_tap0" */
static int find_port(const char *device, uint16_t *ret)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	size_t n = strcspn(device, ",");

	if (n >= sizeof(name))
		return -ENAMETOOLONG;
	memcpy(name, device, n);
	name[n] = '\0';
	return rte_eth_dev_get_port_by_name(name, ret);
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

static int fill_dp_params(const struct aw_conf *c, const struct aw_conf_plan *plan,
			  struct aw_dp_params *dp)
{
	memset(dp, 0, sizeof(*dp));
	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
		const struct aw_conf_port *cp = &c->ports[p];
		struct aw_dp_port_params *pp;
		int rc;

		if (!cp->present)
			continue;
		if (dp->n_ports == AW_DP_MAX_PORTS) {
			aw_log(AW_LOG_ERR, "daemon", "more than %d ports", AW_DP_MAX_PORTS);
			return -EINVAL;
		}
		pp = &dp->port[dp->n_ports++];
		rc = find_port(cp->device, &pp->port_id);
		if (rc < 0) {
			aw_log(AW_LOG_ERR, "daemon",
			       "[port %u] device '%s': no such DPDK port (%s)", p, cp->device,
			       strerror(-rc));
			return rc;
		}
		pp->ip = htonl(cp->addr);
		pp->netmask = cp->prefix ? htonl(~0u << (32 - cp->prefix)) : 0;
		pp->gateway = htonl(cp->gateway);
		pp->udp_port = (uint16_t)cp->udp_port;
		pp->rx_desc = (uint16_t)cp->rx_descriptors;
		pp->tx_desc = (uint16_t)cp->tx_descriptors;
		pp->mtu = (uint16_t)cp->mtu;
		if ((cp->rx_queues && cp->rx_queues != plan->n_dataplane) ||
		    (cp->tx_queues && cp->tx_queues != plan->n_dataplane))
			aw_log(AW_LOG_WARNING, "daemon",
			       "[port %u]: one RX/TX queue per dataplane lcore is used (%u), not "
			       "rx_queues=%u/tx_queues=%u",
			       p, plan->n_dataplane, cp->rx_queues, cp->tx_queues);
	}
	for (unsigned i = 0; i < plan->n_lcores; i++) {
		const struct aw_conf_lcore *l = &plan->lcores[i];

		if (l->role != AW_CONF_ROLE_DATAPLANE || l->index >= AW_DP_MAX_LCORES)
			continue;
		dp->lcore[l->index] = l->lcore;
		if (l->index + 1 > dp->n_lcores)
			dp->n_lcores = l->index + 1;
	}
	dp->burst = c->dataplane.burst > AW_DP_MAX_BURST ? AW_DP_MAX_BURST : c->dataplane.burst;
	dp->idle = c->dataplane.idle == AW_CONF_IDLE_POLL    ? AW_DP_IDLE_POLL
		   : c->dataplane.idle == AW_CONF_IDLE_YIELD ? AW_DP_IDLE_YIELD
							     : AW_DP_IDLE_SLEEP;
	dp->mbufs = c->dataplane.mbufs;
	dp->mbuf_cache = c->dataplane.mbuf_cache;
	dp->resp_ring_size = pow2_at_least(c->dataplane.tx_ring_size);
	aw_proto_reasm_limits_default(&dp->reasm);
	dp->reasm.max_msg = (uint32_t)c->dataplane.max_request_bytes;
	dp->reasm.timeout_us = (uint64_t)c->dataplane.reassembly_timeout_ms * 1000;
	dp->reasm.max_entries = c->dataplane.reassembly_slots;
	if (dp->reasm.max_client_entries > dp->reasm.max_entries)
		dp->reasm.max_client_entries = dp->reasm.max_entries;
	aw_proto_rtx_limits_default(&dp->rtx);
	dp->rtx.max_entries = c->dataplane.retransmit_entries;
	dp->rtx.retain_us = (uint64_t)c->dataplane.retransmit_ttl_ms * 1000;
	return 0;
}

static int fill_dispatch_params(const struct aw_conf *c, const struct aw_conf_plan *plan,
				struct aw_dispatch_params *dp)
{
	memset(dp, 0, sizeof(*dp));
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		struct aw_dispatch_group_params *gp;

		if (!c->groups[g].present)
			continue;
		if (dp->n_groups == AW_DP_MAX_GROUPS) {
			aw_log(AW_LOG_ERR, "daemon", "more than %d worker groups",
			       AW_DP_MAX_GROUPS);
			return -EINVAL;
		}
		gp = &dp->group[dp->n_groups++];
		gp->lcore = UINT32_MAX;
		for (unsigned i = 0; i < plan->n_lcores; i++)
			if (plan->lcores[i].role == AW_CONF_ROLE_WORKER &&
			    plan->lcores[i].index == g && plan->lcores[i].leader)
				gp->lcore = plan->lcores[i].lcore;
		gp->socket = c->groups[g].node < 0 ? 0 : c->groups[g].node;
		gp->ring_size = c->groups[g].ring_size;
		gp->queue_depth = c->limits.queue_depth;
		gp->max_request = (unsigned)c->dataplane.max_request_bytes;
		gp->idle = c->groups[g].idle == AW_CONF_IDLE_POLL    ? AW_DP_IDLE_POLL
			   : c->groups[g].idle == AW_CONF_IDLE_YIELD ? AW_DP_IDLE_YIELD
								     : AW_DP_IDLE_SLEEP;
		/* worker groups: the scheduler's shape and the group's CPUs, the
		 * leader's first (one pool thread pinned on each) */
		gp->max_batch = c->groups[g].max_batch;
		gp->max_batch_tokens = c->groups[g].max_batch_tokens;
		gp->prefill_chunk = c->groups[g].prefill_chunk;
		gp->kv_cache = c->groups[g].kv_cache;
		gp->kv_block_tokens = c->groups[g].kv_block_tokens;
		for (unsigned i = 0; i < plan->n_lcores; i++)
			if (plan->lcores[i].role == AW_CONF_ROLE_WORKER &&
			    plan->lcores[i].index == g && gp->n_cpus < AW_DISPATCH_MAX_CPUS) {
				if (plan->lcores[i].leader && gp->n_cpus) {
					gp->cpus[gp->n_cpus++] = gp->cpus[0];
					gp->cpus[0] = (int)plan->lcores[i].cpu;
				} else {
					gp->cpus[gp->n_cpus++] = (int)plan->lcores[i].cpu;
				}
			}
	}
	dp->max_new_tokens = c->limits.max_new_tokens;
	dp->default_deadline_us = c->limits.default_deadline_ms * 1000u;
	dp->max_prompt_tokens = c->limits.max_prompt_tokens;
	dp->max_sessions = c->limits.max_sessions;
	dp->session_ttl_us = (uint64_t)c->limits.session_ttl_s * 1000000u;
	return 0;
}

/* The engine: the model of [model] path, or AW_ENGINE=echo[:DELAY_US]: the
 * transport test engine (no model; for tests of the dataplane alone). */
static int engine_init(const struct aw_conf *c, struct aw_engine *e)
{
	const char *sel = getenv("AW_ENGINE");

	if (sel && strncmp(sel, "echo", 4) == 0 && (sel[4] == '\0' || sel[4] == ':')) {
		unsigned long delay = sel[4] == ':' ? strtoul(sel + 5, NULL, 10) : 0;

		aw_log(AW_LOG_WARNING, "daemon",
		       "AW_ENGINE=%s: serving with the echo TEST engine (prompt words echoed, "
		       "%lu us per token), not the model %s",
		       sel, delay, c->model.path);
		return aw_engine_echo_init(e, (uint32_t)delay);
	}
	{
		struct aw_err err = {0};
		struct timespec a, b;
		int rc;

		struct aw_engine_model_opts mo;

		clock_gettime(CLOCK_MONOTONIC, &a);
		aw_reload_model_opts(c, "loading model", &mo);
		rc = aw_engine_model_open(c->model.path, &mo, e, &err);
		char desc[256];

		if (rc < 0) {
			aw_log(AW_LOG_ERR, "daemon", "model %s: %s", c->model.path,
			       err.msg[0] ? err.msg : strerror(-rc));
			return rc;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		e->ops->describe(e->state, desc, sizeof(desc));
		aw_log(AW_LOG_NOTICE, "daemon", "model %s loaded in %lu ms: %s", c->model.path,
		       (unsigned long)((b.tv_sec - a.tv_sec) * 1000 +
				       (b.tv_nsec - a.tv_nsec) / 1000000),
		       desc);
		return 0;
	}
}

int aw_daemon_run(const struct aw_conf *c, const struct aw_conf_plan *plan, const char *argv0)
{
	struct eal_args *ea = calloc(1, sizeof(*ea));
	struct aw_dp_params *dpp = calloc(1, sizeof(*dpp));
	struct aw_dispatch_params *dsp = calloc(1, sizeof(*dsp));
	struct aw_engine engine = {0};
	struct aw_dispatch *disp = NULL;
	struct aw_metrics *metrics = NULL;
	struct aw_reload *reloader = NULL;
	struct aw_dp *dp = NULL;
	unsigned leaked;
	uint64_t wd_us;
	int rc, status = 1, lvl;

	if (!ea || !dpp || !dsp) {
		fprintf(stderr, "agentwire: out of memory\n");
		goto out_free;
	}
	/* the model may load for longer than WatchdogSec: stretch the interval
	 * until READY=1, then restore it (WATCHDOG_USEC=, systemd >= 236) */
	wd_us = watchdog_usec();
	if (wd_us)
		notify("WATCHDOG=1\nWATCHDOG_USEC=%llu", (unsigned long long)START_WATCHDOG_USEC);
	build_eal_args(c, plan, argv0, ea);
	notify("STATUS=starting: DPDK EAL (%u lcores)", plan->n_lcores);
	rc = rte_eal_init(ea->argc, ea->argv);
	if (rc < 0) {
		fprintf(stderr, "agentwire: rte_eal_init: %s\n", rte_strerror(rte_errno));
		goto out_free;
	}
	journal_open();
	rc = rte_log_register("agentwire");
	if (rc >= 0)
		aw_logtype = rc;
	lvl = aw_log_parse_level(c->log.level[0] ? c->log.level : "notice");
	if (lvl > 0)
		aw_log_level = lvl;
	/* DPDK's own types keep the EAL's --log-level; ours follows [log] level */
	rte_log_set_level_pattern("*", rte_log_get_global_level());
	rte_log_set_global_level(RTE_LOG_DEBUG);
	rte_log_set_level((uint32_t)aw_logtype, (uint32_t)aw_log_level + 1);
	aw_log_set_sink(rte_sink, NULL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_hup); /* reloads only once serving; ignored until then */

	{
		struct stat st;

		if (stat(c->model.path, &st) == 0)
			notify("STATUS=loading model %s (%.2f GiB)", c->model.path,
			       (double)st.st_size / (double)(1ull << 30));
		else
			notify("STATUS=loading model %s", c->model.path);
	}
	if (engine_init(c, &engine) < 0)
		goto out_eal;
	notify("STATUS=starting ports and lcores");
	if (fill_dp_params(c, plan, dpp) < 0 || fill_dispatch_params(c, plan, dsp) < 0)
		goto out_engine;
	rc = aw_dp_new(dpp, &dp);
	if (rc < 0)
		goto out_engine;
	if (dsp->n_groups) {
		rc = aw_dispatch_new(dsp, dp, &engine, &disp);
		if (rc < 0)
			goto out_dp;
		aw_dp_set_dispatch(dp, disp);
	}
	if (c->telemetry.enabled &&
	    aw_telemetry_init(c->telemetry.name, dp, disp, &engine, c->model.path) < 0)
		aw_log(AW_LOG_WARNING, "daemon", "telemetry commands not registered");
	/* Prometheus: a kernel socket served by a thread that inherits this
	 * (main lcore's) CPU affinity, never a dataplane or worker CPU */
	if (c->telemetry.metrics &&
	    aw_metrics_new(c->telemetry.metrics_address, (uint16_t)c->telemetry.metrics_port, dp,
			   disp, &metrics) < 0)
		goto out_stop;
	if ((disp && aw_dispatch_start(disp) < 0) || aw_dp_start(dp) < 0)
		goto out_stop;
	for (unsigned p = 0; p < dpp->n_ports; p++) {
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &dpp->port[p].ip, ip, sizeof(ip));
		aw_log(AW_LOG_NOTICE, "daemon", "port %u: serving %s udp %u", dpp->port[p].port_id,
		       ip, dpp->port[p].udp_port);
	}
	aw_log(AW_LOG_NOTICE, "daemon", "ready: %u dataplane lcores, %u worker groups, engine %s",
	       dpp->n_lcores, dsp->n_groups, engine.ops->name);
	notify("READY=1\nSTATUS=serving: %u ports, %u dataplane lcores, %u worker groups, "
	       "engine %s",
	       dpp->n_ports, dpp->n_lcores, dsp->n_groups, engine.ops->name);
	if (reload_cli && aw_reload_new(reload_cli, c, have_start_affinity ? &start_affinity : NULL,
					&engine, disp, &reloader) < 0)
		aw_log(AW_LOG_WARNING, "daemon", "out of memory: SIGHUP will not reload");
	hup_signal = 0;

	/* the main lcore: link state (every 10 ms: lcores must stop polling a
	 * port soon after its link goes down), signals and systemd's watchdog,
	 * fed every half interval only while every lcore's heartbeat moved
	 * within one interval; telemetry has its own thread */
	{
		uint64_t next_wd = 0, still_us = 0;
		uint64_t hb[AW_WATCHDOG_MAX];
		struct aw_watchdog *wd = NULL;
		int was_stuck = -1;

		if (wd_us) {
			notify("WATCHDOG_USEC=%llu", (unsigned long long)wd_us);
			wd = malloc(sizeof(*wd));
			if (wd &&
			    aw_watchdog_init(
				    wd, read_heartbeats(dp, dpp->n_lcores, disp, dsp->n_groups, hb),
				    wd_us, aw_dp_now_us(), hb) < 0) {
				free(wd);
				wd = NULL;
			}
			aw_log(AW_LOG_NOTICE, "daemon",
			       "systemd watchdog: %lu ms, fed while every lcore's heartbeat moves",
			       (unsigned long)(wd_us / 1000));
		}
		while (!quit_signal) {
			aw_dp_poll_links(dp);
			journal_tick();
			if (hup_signal && reloader) {
				hup_signal = 0;
				aw_reload_request(reloader);
			}
			if (reloader)
				aw_reload_poll(reloader);
			if (wd && aw_dp_now_us() >= next_wd) {
				uint64_t now = aw_dp_now_us();
				int stuck;

				read_heartbeats(dp, dpp->n_lcores, disp, dsp->n_groups, hb);
				stuck = aw_watchdog_update(wd, now, hb, &still_us);
				if (stuck < 0) {
					notify("WATCHDOG=1");
				} else if (stuck != was_stuck) {
					aw_log(AW_LOG_ERR, "daemon",
					       "%s %u: heartbeat still for %lu ms: not feeding "
					       "the systemd watchdog",
					       (unsigned)stuck < dpp->n_lcores ? "dataplane lcore"
									       : "worker group",
					       (unsigned)stuck < dpp->n_lcores
						       ? (unsigned)stuck
						       : (unsigned)stuck - dpp->n_lcores,
					       (unsigned long)(still_us / 1000));
					notify("STATUS=stuck: lcore heartbeat %d still", stuck);
				}
				was_stuck = stuck;
				next_wd = now + wd_us / 2;
			}
			usleep(10 * 1000);
		}
		free(wd);
	}
	aw_log(AW_LOG_NOTICE, "daemon", "signal %d: stopping", (int)quit_signal);
	notify("STOPPING=1\nSTATUS=stopping: finishing requests in flight");
	status = 0;

out_stop:
	aw_reload_free(reloader); /* waits for a model load in progress */
	reloader = NULL;
	aw_dp_stop_rx(dp); /* no new requests */
	if (disp)
		aw_dispatch_stop(disp); /* every request gets its final message */
	aw_dp_stop(dp);			/* drain the response rings, stop the lcores */
	aw_metrics_free(metrics);	/* before the counters it reads go away */
	metrics = NULL;
	aw_telemetry_detach();
	{
		struct aw_dp_stats st;

		aw_dp_stats_read(dp, -1, &st);
		aw_log(AW_LOG_NOTICE, "daemon",
		       "served: rx %lu tx %lu packets, %lu pings, %lu requests dispatched, %lu "
		       "overloaded",
		       (unsigned long)st.c[AW_DP_RX_PKTS], (unsigned long)st.c[AW_DP_TX_PKTS],
		       (unsigned long)st.c[AW_DP_PING], (unsigned long)st.c[AW_DP_DISPATCHED],
		       (unsigned long)st.c[AW_DP_OVERLOADED]);
	}
	aw_dispatch_free(disp);
	disp = NULL;
out_dp:
	aw_dispatch_free(disp);
	leaked = aw_dp_free(dp);
	if (leaked) {
		aw_log(AW_LOG_ERR, "daemon", "%u mbufs not returned to their pool", leaked);
		status = 3;
	} else {
		aw_log(AW_LOG_NOTICE, "daemon", "every mbuf returned to its pool");
	}
out_engine:
	aw_engine_fini(&engine);
out_eal:
	aw_log_set_sink(NULL, NULL);
	rte_eal_cleanup();
	journal_close();
out_free:
	free(ea);
	free(dpp);
	free(dsp);
	return status;
}
