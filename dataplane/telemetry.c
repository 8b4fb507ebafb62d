/* telemetry.c — the daemon's counters through DPDK's rte_telemetry.
 *
 * Three commands under the configured prefix (default "/agentwire"):
 *   /stats   packets and drops by reason, codec faults, requests by op and
 *            outcome, queue depths, tokens/s since the previous read
 *   /groups  one object per worker group: lcore, node, queue, counters
 *   /model   the engine and the model it serves
 *   /reload  the same as SIGHUP: re-read the config, swap in a changed model
 *            (dataplane/reload.h); the outcome is logged
 * Callbacks run on the telemetry control thread; they read the per-lcore
 * counters with relaxed atomic loads (aw_dp_stats_read) and never touch the
 * lcores' state. rte_telemetry cannot unregister a command, so shutdown
 * detaches the objects under a lock and later calls answer "stopping".
 */
#include "telemetry.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_telemetry.h>

static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aw_dp *tel_dp;
static struct aw_dispatch *tel_disp;
static const struct aw_engine *tel_engine;
static char tel_model[256];
static uint64_t prev_tokens, prev_us;

static int stopping(struct rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "state", "stopping");
	return 0;
}

static int cmd_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct rte_tel_data *drops, *faults;
	struct aw_dp_stats st;
	uint64_t queued = 0, running = 0, tokens = 0, now;

	(void)cmd;
	(void)params;
	pthread_mutex_lock(&tel_lock);
	if (!tel_dp) {
		pthread_mutex_unlock(&tel_lock);
		return stopping(d);
	}
	aw_dp_stats_read(tel_dp, -1, &st);
	for (unsigned g = 0; tel_disp && g < aw_dispatch_n_groups(tel_disp); g++) {
		struct aw_dispatch_group_stats gs;

		aw_dispatch_group_stats(tel_disp, g, &gs);
		queued += gs.queued;
		running += gs.running;
		tokens += gs.tokens_out;
	}
	rte_tel_data_start_dict(d);
	for (int i = 0; i < AW_DP_CTR__COUNT; i++)
		rte_tel_data_add_dict_u64(d, aw_dp_ctr_name((enum aw_dp_ctr)i), st.c[i]);
	drops = rte_tel_data_alloc();
	faults = rte_tel_data_alloc();
	if (drops) {
		rte_tel_data_start_dict(drops);
		for (int i = 0; i < AW_NET_DROP__COUNT; i++)
			rte_tel_data_add_dict_u64(drops, aw_net_drop_name((enum aw_net_drop)i),
						  st.drop[i]);
		rte_tel_data_add_dict_container(d, "drops", drops, 0);
	}
	if (faults) {
		rte_tel_data_start_dict(faults);
		for (int i = 1; i < AW_PROTO_FAULT_MAX_; i++)
			rte_tel_data_add_dict_u64(faults, aw_proto_fault_name((unsigned)i),
						  st.fault[i]);
		rte_tel_data_add_dict_container(d, "faults", faults, 0);
	}
	rte_tel_data_add_dict_u64(d, "queued", queued);
	rte_tel_data_add_dict_u64(d, "running", running);
	rte_tel_data_add_dict_u64(d, "tokens_out", tokens);
	now = aw_dp_now_us();
	rte_tel_data_add_dict_u64(
		d, "tokens_per_s",
		prev_us && now > prev_us ? (tokens - prev_tokens) * 1000000 / (now - prev_us) : 0);
	prev_tokens = tokens;
	prev_us = now;
	rte_tel_data_add_dict_u64(d, "mbufs_in_use", aw_dp_mbufs_in_use(tel_dp));
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

static int cmd_groups(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	pthread_mutex_lock(&tel_lock);
	if (!tel_disp) {
		pthread_mutex_unlock(&tel_lock);
		return stopping(d);
	}
	rte_tel_data_start_dict(d);
	for (unsigned g = 0; g < aw_dispatch_n_groups(tel_disp); g++) {
		const struct aw_dispatch_group_params *p = aw_dispatch_group_params(tel_disp, g);
		struct rte_tel_data *o = rte_tel_data_alloc();
		struct aw_dispatch_group_stats gs;
		char name[16];

		if (!o)
			break;
		aw_dispatch_group_stats(tel_disp, g, &gs);
		rte_tel_data_start_dict(o);
		rte_tel_data_add_dict_u64(o, "leader_lcore", p->lcore);
		rte_tel_data_add_dict_int(o, "socket", p->socket);
		rte_tel_data_add_dict_u64(o, "ring_size", p->ring_size);
		rte_tel_data_add_dict_u64(o, "queue_depth",
					  p->queue_depth ? p->queue_depth : p->ring_size);
		rte_tel_data_add_dict_u64(o, "queued", gs.queued);
		rte_tel_data_add_dict_u64(o, "running", gs.running);
		rte_tel_data_add_dict_u64(o, "enqueued", gs.enqueued);
		rte_tel_data_add_dict_u64(o, "completed", gs.completed);
		rte_tel_data_add_dict_u64(o, "overloaded", gs.overloaded);
		rte_tel_data_add_dict_u64(o, "bad_request", gs.bad);
		rte_tel_data_add_dict_u64(o, "cancelled", gs.cancelled);
		rte_tel_data_add_dict_u64(o, "deadline", gs.deadline);
		rte_tel_data_add_dict_u64(o, "tokens_in", gs.tokens_in);
		rte_tel_data_add_dict_u64(o, "tokens_out", gs.tokens_out);
		rte_tel_data_add_dict_u64(o, "busy_us", gs.busy_us);
		/* worker groups: the scheduler's counters */
		rte_tel_data_add_dict_int(o, "scheduler", gs.sched);
		if (gs.sched) {
			rte_tel_data_add_dict_u64(o, "pool_threads", gs.pool_threads);
			rte_tel_data_add_dict_u64(o, "steps", gs.steps);
			rte_tel_data_add_dict_u64(o, "prefill_tokens", gs.prefill_tokens);
			rte_tel_data_add_dict_u64(o, "decode_tokens", gs.decode_tokens);
			rte_tel_data_add_dict_u64(o, "cached_tokens", gs.cached_tokens);
			rte_tel_data_add_dict_u64(o, "admitted", gs.admitted);
			rte_tel_data_add_dict_u64(o, "preempted", gs.preempted);
			rte_tel_data_add_dict_u64(o, "deferred", gs.deferred);
			rte_tel_data_add_dict_u64(o, "cache_evicted", gs.cache_evicted);
			rte_tel_data_add_dict_u64(o, "sessions_expired", gs.sessions_expired);
			rte_tel_data_add_dict_u64(o, "sessions_evicted", gs.sessions_evicted);
			rte_tel_data_add_dict_u64(o, "forced_tokens", gs.forced_tokens);
			rte_tel_data_add_dict_u64(o, "sched_running", gs.sched_running);
			rte_tel_data_add_dict_u64(o, "sched_waiting", gs.sched_waiting);
			rte_tel_data_add_dict_u64(o, "cache_blocks", gs.cache_blocks);
			rte_tel_data_add_dict_u64(o, "sessions", gs.sessions);
			rte_tel_data_add_dict_u64(o, "free_blocks", gs.free_blocks);
			rte_tel_data_add_dict_u64(o, "n_blocks", gs.n_blocks);
		}
		snprintf(name, sizeof(name), "%u", g);
		rte_tel_data_add_dict_container(d, name, o, 0);
	}
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

static int cmd_model(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char desc[RTE_TEL_MAX_STRING_LEN];

	(void)cmd;
	(void)params;
	pthread_mutex_lock(&tel_lock);
	if (!tel_engine) {
		pthread_mutex_unlock(&tel_lock);
		return stopping(d);
	}
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_string(d, "engine", tel_engine->ops->name);
	rte_tel_data_add_dict_string(d, "path", tel_model);
	rte_tel_data_add_dict_u64(d, "generation", aw_engine_model_generation(tel_engine));
	desc[0] = '\0';
	if (tel_engine->ops->describe)
		tel_engine->ops->describe(tel_engine->state, desc, sizeof(desc));
	rte_tel_data_add_dict_string(d, "describe", desc);
	pthread_mutex_unlock(&tel_lock);
	return 0;
}

void aw_telemetry_set_model(const char *model_path)
{
	pthread_mutex_lock(&tel_lock);
	snprintf(tel_model, sizeof(tel_model), "%s", model_path ? model_path : "");
	pthread_mutex_unlock(&tel_lock);
}

/* --- /reload (loader): the main loop does the work, as for SIGHUP --- */
static int cmd_reload(const char *cmd, const char *params, struct rte_tel_data *d)
{
	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	if (kill(getpid(), SIGHUP) < 0) {
		rte_tel_data_add_dict_string(d, "reload", "failed to signal the daemon");
		return 0;
	}
	rte_tel_data_add_dict_string(d, "reload", "requested");
	rte_tel_data_add_dict_string(d, "outcome", "in the log: lines 'reload: ...'");
	return 0;
}

int aw_telemetry_init(const char *prefix, struct aw_dp *dp, struct aw_dispatch *disp,
		      const struct aw_engine *engine, const char *model_path)
{
	char cmd[128];
	int rc;

	pthread_mutex_lock(&tel_lock);
	tel_dp = dp;
	tel_disp = disp;
	tel_engine = engine;
	snprintf(tel_model, sizeof(tel_model), "%s", model_path ? model_path : "");
	pthread_mutex_unlock(&tel_lock);
	if (!prefix || !*prefix)
		prefix = "/agentwire";
	snprintf(cmd, sizeof(cmd), "%s/stats", prefix);
	rc = rte_telemetry_register_cmd(cmd, cmd_stats, "agentwire packet and request counters");
	if (rc < 0)
		return rc;
	snprintf(cmd, sizeof(cmd), "%s/groups", prefix);
	rc = rte_telemetry_register_cmd(cmd, cmd_groups, "agentwire worker groups");
	if (rc < 0)
		return rc;
	snprintf(cmd, sizeof(cmd), "%s/reload", prefix);
	rc = rte_telemetry_register_cmd(cmd, cmd_reload,
					"agentwire: reload the config (as SIGHUP)");
	if (rc < 0)
		return rc;
	snprintf(cmd, sizeof(cmd), "%s/model", prefix);
	return rte_telemetry_register_cmd(cmd, cmd_model, "agentwire engine and model");
}

void aw_telemetry_detach(void)
{
	pthread_mutex_lock(&tel_lock);
	tel_dp = NULL;
	tel_disp = NULL;
	tel_engine = NULL;
	pthread_mutex_unlock(&tel_lock);
}
