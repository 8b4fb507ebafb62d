/* dispatch.c — request objects, group rings, and the worker loop (dispatch.h).
 *
 * Submit (dataplane lcore): pick the group with the fewest requests waiting
 * or running, take a request object from that group's pool (on its node),
 * copy the message once, enqueue the pointer. Worker (group leader lcore):
 * dequeue, parse the body, run it through the engine, stream the replies
 * through aw_dp_reply() to the lcore that owns the client's flow, free the
 * object. Cancellations travel on a small ring per group as 64-bit keys of
 * (client, request id) and are checked between tokens.
 */
#include "dispatch.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>

#include "log.h"

#define CANCEL_KEYS 64

/* One request, copied once from the dataplane lcore's reassembly buffer. */
struct aw_req {
	struct aw_dp_flow flow; /* client and request id */
	uint8_t type;		/* AW_PROTO_GENERATE, ... */
	uint64_t recv_us;	/* when the dataplane completed it */
	uint32_t len;		/* bytes in data */
	uint8_t data[];		/* the request body (group's max_request bytes) */
};

struct group {
	struct aw_dispatch *d;
	unsigned idx;
	struct aw_dispatch_group_params p;
	struct rte_ring *ring;	    /* struct aw_req * (MP/SC) */
	struct rte_ring *cancel;    /* cancel keys (MP/SC) */
	struct rte_mempool *pool;   /* struct aw_req + max_request */
	uint64_t keys[CANCEL_KEYS]; /* cancel keys seen by the worker (ring buffer) */
	unsigned n_keys;
	struct aw_dispatch_group_stats st; /* written by the worker (and submit: enqueued) */
	struct aw_dispatch_group_obs obs;  /* written by the worker only (hist.h) */
	uint32_t running;		   /* atomic */
	uint64_t heartbeat; /* atomic: +1 per loop iteration and per emitted token (watchdog) */
} __rte_cache_aligned;

struct aw_dispatch {
	struct aw_dispatch_params p;
	struct aw_dp *dp;
	const struct aw_engine *engine;
	int stop; /* atomic */
	int launched;
	struct group g[AW_DP_MAX_GROUPS];
};

#define GST_ADD(g, f, n) __atomic_fetch_add(&(g)->st.f, (n), __ATOMIC_RELAXED)
/* only the group's worker writes its observations */
#define OBS_INC(g, field) __atomic_store_n(&(g)->obs.field, (g)->obs.field + 1, __ATOMIC_RELAXED)
/* only the group's worker writes its heartbeat */
#define HEARTBEAT(g) __atomic_store_n(&(g)->heartbeat, (g)->heartbeat + 1, __ATOMIC_RELAXED)

static uint64_t flow_key(const struct aw_dp_flow *f)
{
	uint64_t k = f->request_id ^ (((uint64_t)f->ip << 16 | f->port) * 0x9e3779b97f4a7c15ull);

	return k ? k : 1;
}

/* --- submit (dataplane lcores) ---------------------------------------------------- */

int aw_dispatch_submit(struct aw_dispatch *d, const struct aw_dp_flow *flow, uint8_t type,
		       const void *msg, size_t len, uint64_t now_us)
{
	struct group *best = NULL;
	unsigned best_load = UINT32_MAX;
	struct aw_req *r;
	void *obj;

	for (unsigned i = 0; i < d->p.n_groups; i++) {
		struct group *g = &d->g[i];
		unsigned load =
			rte_ring_count(g->ring) + __atomic_load_n(&g->running, __ATOMIC_RELAXED);

		if (load < best_load) {
			best_load = load;
			best = g;
		}
	}
	if (!best)
		return -ENOBUFS;
	if (len > best->p.max_request)
		return -EMSGSIZE;
	if (rte_mempool_get(best->pool, &obj) < 0) {
		GST_ADD(best, overloaded, 1);
		return -ENOBUFS;
	}
	r = obj;
	r->flow = *flow;
	r->type = type;
	r->recv_us = now_us;
	r->len = (uint32_t)len;
	memcpy(r->data, msg, len);
	if (rte_ring_mp_enqueue(best->ring, r) != 0) {
		rte_mempool_put(best->pool, r);
		GST_ADD(best, overloaded, 1);
		return -ENOBUFS;
	}
	GST_ADD(best, enqueued, 1);
	return 0;
}

void aw_dispatch_cancel(struct aw_dispatch *d, const struct aw_dp_flow *flow)
{
	uintptr_t key = (uintptr_t)flow_key(flow);

	for (unsigned i = 0; i < d->p.n_groups; i++)
		rte_ring_mp_enqueue(d->g[i].cancel, (void *)key); /* full: the client resends */
}

/* --- worker ------------------------------------------------------------------------- */

static void take_cancels(struct group *g)
{
	void *k;

	while (rte_ring_sc_dequeue(g->cancel, &k) == 0)
		g->keys[g->n_keys++ % CANCEL_KEYS] = (uint64_t)(uintptr_t)k;
}

static int is_cancelled(struct group *g, uint64_t key)
{
	unsigned n = g->n_keys < CANCEL_KEYS ? g->n_keys : CANCEL_KEYS;

	for (unsigned i = 0; i < n; i++)
		if (g->keys[i] == key) {
			g->keys[i] = 0;
			return 1;
		}
	return 0;
}

struct run {
	struct group *g;
	struct aw_req *r;
	uint64_t key;
	uint64_t deadline_us; /* 0 = none */
	uint32_t seq;	      /* next reply seq */
	uint64_t data_bytes;
	uint8_t stop_reason; /* 0, or AW_PROTO_FINISH_CANCELLED / _DEADLINE */
	int lost;	     /* the reply path refused (shutdown) */
	unsigned op;	     /* index in obs.done (AW_DISPATCH_OPS) */
	uint64_t last_us;    /* when the previous token was sent (0: none yet) */
};

/* The terminal of request 'x' leaves now: outcome and end-to-end latency. */
static void observe_end(struct run *x, enum aw_dispatch_outcome o)
{
	struct group *g = x->g;

	OBS_INC(g, done[x->op][o]);
	aw_hist_observe(&g->obs.e2e_us, &aw_hist_latency_us, aw_dp_now_us() - x->r->recv_us);
}

static enum aw_dispatch_outcome error_outcome(uint16_t code)
{
	switch (code) {
	case AW_PROTO_ERR_BAD_REQUEST:
	case AW_PROTO_ERR_TOO_LONG:
		return AW_DISPATCH_OUT_BAD_REQUEST;
	case AW_PROTO_ERR_UNSUPPORTED:
		return AW_DISPATCH_OUT_UNSUPPORTED;
	case AW_PROTO_ERR_INTERNAL:
		return AW_DISPATCH_OUT_INTERNAL;
	case AW_PROTO_ERR_DEADLINE:
		return AW_DISPATCH_OUT_DEADLINE;
	default:
		return AW_DISPATCH_OUT_ERROR;
	}
}

const char *aw_dispatch_outcome_name(enum aw_dispatch_outcome o)
{
	static const char *const names[AW_DISPATCH_OUT__COUNT] = {
		"stop",	 "length",	"deadline",    "cancelled",
		"error", "bad_request", "unsupported", "internal"};

	return (unsigned)o < AW_DISPATCH_OUT__COUNT ? names[o] : "unknown";
}

static int send_reply(struct run *x, uint8_t type, const void *payload, size_t len, int terminal)
{
	int rc = aw_dp_reply(x->g->d->dp, &x->r->flow, type, x->seq, payload, len, terminal);

	if (rc < 0)
		x->lost = 1;
	else
		x->seq++;
	return rc;
}

static void send_error(struct run *x, uint16_t code, const char *msg)
{
	uint8_t b[AW_PROTO_ERROR_HDR_LEN + AW_PROTO_ERROR_MAX_MSG];
	int n = aw_proto_error_build(b, sizeof(b), code, 0, msg);

	if (n >= 0)
		send_reply(x, AW_PROTO_ERROR, b, (size_t)n, 1);
	observe_end(x, error_outcome(code));
}

/* The engine's emit callback: one DATA datagram per call (split when the
 * text is longer than a datagram); checks cancel, deadline and shutdown. */
static int emit(void *ctx, const char *text, size_t len, uint32_t n_tokens)
{
	struct run *x = ctx;
	struct aw_dispatch *d = x->g->d;
	size_t max = aw_dp_max_payload(d->dp, &x->r->flow) - AW_PROTO_DATA_HDR_LEN, off = 0;
	uint8_t b[9216];

	if (max > sizeof(b) - AW_PROTO_DATA_HDR_LEN)
		max = sizeof(b) - AW_PROTO_DATA_HDR_LEN;
	do {
		size_t c = len - off < max ? len - off : max;
		int n = aw_proto_data_build(b, sizeof(b), off == 0 ? n_tokens : 0, text + off, c);

		if (n < 0 || send_reply(x, AW_PROTO_DATA, b, (size_t)n, 0) < 0)
			return 1;
		off += c;
	} while (off < len);
	x->data_bytes += len;
	GST_ADD(x->g, tokens_out, n_tokens);
	if (n_tokens) {
		uint64_t now = aw_dp_now_us();

		if (!x->last_us)
			aw_hist_observe(&x->g->obs.ttft_us, &aw_hist_latency_us,
					now - x->r->recv_us);
		else
			for (uint32_t i = 0; i < n_tokens; i++)
				aw_hist_observe(&x->g->obs.itl_us, &aw_hist_latency_us,
						(now - x->last_us) / n_tokens);
		x->last_us = now;
	}
	HEARTBEAT(x->g);

	take_cancels(x->g);
	if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE) || is_cancelled(x->g, x->key)) {
		x->stop_reason = AW_PROTO_FINISH_CANCELLED;
		return 1;
	}
	if (x->deadline_us && aw_dp_now_us() > x->deadline_us) {
		x->stop_reason = AW_PROTO_FINISH_DEADLINE;
		return 1;
	}
	return 0;
}

static void send_end(struct run *x, uint8_t finish, const struct aw_engine_result *res,
		     uint64_t queue_us)
{
	struct aw_proto_summary s = {0};
	uint8_t b[AW_PROTO_SUMMARY_LEN];
	int n;

	s.finish = finish;
	if (res) {
		s.prompt_tokens = res->prompt_tokens;
		s.gen_tokens = res->gen_tokens;
		s.prefill_us = res->prefill_us;
		s.decode_us = res->decode_us;
	}
	s.queue_us = queue_us > UINT32_MAX ? UINT32_MAX : (uint32_t)queue_us;
	s.n_data = x->seq;
	s.data_bytes = x->data_bytes;
	n = aw_proto_summary_build(b, sizeof(b), &s, NULL);
	if (n >= 0)
		send_reply(x, AW_PROTO_END, b, (size_t)n, 1);
	observe_end(x, finish < AW_PROTO_FINISH_MAX_ ? (enum aw_dispatch_outcome)finish
						     : AW_DISPATCH_OUT_ERROR);
	if (finish == AW_PROTO_FINISH_CANCELLED)
		GST_ADD(x->g, cancelled, 1);
	else if (finish == AW_PROTO_FINISH_DEADLINE)
		GST_ADD(x->g, deadline, 1);
}

static void run_request(struct group *g, struct aw_req *r)
{
	struct aw_dispatch *d = g->d;
	struct run x = {.g = g, .r = r, .key = flow_key(&r->flow)};
	uint64_t start = aw_dp_now_us(), queue_us = start - r->recv_us;
	struct aw_engine_result res;
	struct aw_proto_req body;
	struct aw_proto_err e;
	int rc;

	if (r->type >= AW_PROTO_GENERATE && r->type < AW_PROTO_GENERATE + AW_DISPATCH_OPS)
		x.op = r->type - AW_PROTO_GENERATE;
	aw_hist_observe(&g->obs.queue_us, &aw_hist_latency_us, queue_us);
	take_cancels(g);
	if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE) || is_cancelled(g, x.key)) {
		send_end(&x, AW_PROTO_FINISH_CANCELLED, NULL, queue_us);
		goto done;
	}
	if (aw_proto_req_parse(r->type, r->data, r->len, &body, &e) < 0) {
		GST_ADD(g, bad, 1);
		send_error(&x, AW_PROTO_ERR_BAD_REQUEST, e.err.msg);
		goto done;
	}
	if (r->type != AW_PROTO_GENERATE || !d->engine->ops->generate) {
		send_error(&x, AW_PROTO_ERR_UNSUPPORTED, "only GENERATE is served");
		goto done;
	}
	if (body.max_new_tokens == 0 || body.max_new_tokens > d->p.max_new_tokens)
		body.max_new_tokens = d->p.max_new_tokens;
	if (body.deadline_us)
		x.deadline_us = r->recv_us + body.deadline_us;
	else if (d->p.default_deadline_us)
		x.deadline_us = r->recv_us + d->p.default_deadline_us;
	if (x.deadline_us && start > x.deadline_us) {
		send_end(&x, AW_PROTO_FINISH_DEADLINE, NULL, queue_us);
		goto done;
	}

	memset(&res, 0, sizeof(res));
	rc = d->engine->ops->generate(d->engine->state, &body, emit, &x, &res);
	GST_ADD(g, tokens_in, res.prompt_tokens);
	if (x.lost)
		goto done;
	if (rc < 0) {
		GST_ADD(g, bad, 1);
		send_error(&x, rc == -EINVAL ? AW_PROTO_ERR_BAD_REQUEST : AW_PROTO_ERR_INTERNAL,
			   res.error[0] ? res.error : "engine failed");
		goto done;
	}
	send_end(&x, x.stop_reason ? x.stop_reason : res.finish, &res, queue_us);
done:
	GST_ADD(g, completed, 1);
	GST_ADD(g, busy_us, aw_dp_now_us() - start);
}

static int worker_main(void *arg)
{
	struct group *g = arg;
	struct aw_dispatch *d = g->d;
	unsigned idle = 0;
	void *obj;

	for (;;) {
		HEARTBEAT(g);
		if (rte_ring_sc_dequeue(g->ring, &obj) != 0) {
			if (__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE))
				break;
			take_cancels(g);
			/* idle: leave the CPU to others as configured (shared cores) */
			if (g->p.idle == AW_DP_IDLE_POLL)
				rte_pause();
			else if (g->p.idle == AW_DP_IDLE_YIELD || ++idle < 64)
				sched_yield();
			else
				usleep(idle > 2000 ? 200 : 20);
			continue;
		}
		idle = 0;
		__atomic_store_n(&g->running, 1, __ATOMIC_RELAXED);
		run_request(g, obj);
		__atomic_store_n(&g->running, 0, __ATOMIC_RELAXED);
		rte_mempool_put(g->pool, obj);
	}
	/* stopping: every request still queued gets its final message */
	while (rte_ring_sc_dequeue(g->ring, &obj) == 0) {
		run_request(g, obj); /* sees stop: END cancelled */
		rte_mempool_put(g->pool, obj);
	}
	return 0;
}

/* --- set-up ----------------------------------------------------------------------- */

int aw_dispatch_new(const struct aw_dispatch_params *p, struct aw_dp *dp,
		    const struct aw_engine *engine, struct aw_dispatch **ret_d)
{
	struct aw_dispatch *d;
	int rc = -EINVAL;

	if (p->n_groups == 0 || p->n_groups > AW_DP_MAX_GROUPS || !engine || !engine->ops)
		return -EINVAL;
	d = rte_zmalloc("aw_dispatch", sizeof(*d), RTE_CACHE_LINE_SIZE);
	if (!d)
		return -ENOMEM;
	d->p = *p;
	d->dp = dp;
	d->engine = engine;
	for (unsigned i = 0; i < p->n_groups; i++) {
		struct group *g = &d->g[i];
		char name[RTE_RING_NAMESIZE];
		unsigned n = p->group[i].ring_size;

		g->d = d;
		g->idx = i;
		g->p = p->group[i];
		if (!rte_lcore_is_enabled(g->p.lcore) || g->p.lcore == rte_get_main_lcore()) {
			aw_log(AW_LOG_ERR, "dispatch", "group %u: lcore %u is not a worker lcore",
			       i, g->p.lcore);
			goto err;
		}
		snprintf(name, sizeof(name), "aw_req_%u", i);
		g->ring = rte_ring_create(name, n, g->p.socket, RING_F_SC_DEQ | RING_F_EXACT_SZ);
		snprintf(name, sizeof(name), "aw_cancel_%u", i);
		g->cancel = rte_ring_create(name, 256, g->p.socket, RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "aw_reqpool_%u", i);
		/* ring_size objects can wait; one more per group runs */
		g->pool = rte_mempool_create(name, n + 1, sizeof(struct aw_req) + g->p.max_request,
					     0, 0, NULL, NULL, NULL, NULL, g->p.socket, 0);
		if (!g->ring || !g->cancel || !g->pool) {
			rc = -rte_errno;
			aw_log(AW_LOG_ERR, "dispatch",
			       "group %u: ring/pool of %u x %u bytes on socket %d: err=%d", i, n,
			       g->p.max_request, g->p.socket, rc);
			goto err;
		}
		aw_log(AW_LOG_INFO, "dispatch",
		       "group %u: leader lcore %u, socket %d, ring %u, requests up to %u bytes", i,
		       g->p.lcore, g->p.socket, n, g->p.max_request);
	}
	*ret_d = d;
	return 0;
err:
	aw_dispatch_free(d);
	return rc < 0 ? rc : -EINVAL;
}

int aw_dispatch_start(struct aw_dispatch *d)
{
	for (unsigned i = 0; i < d->p.n_groups; i++) {
		int rc = rte_eal_remote_launch(worker_main, &d->g[i], d->g[i].p.lcore);

		if (rc < 0) {
			aw_log(AW_LOG_ERR, "dispatch", "rte_eal_remote_launch: err=%d, lcore=%u",
			       rc, d->g[i].p.lcore);
			aw_dispatch_stop(d);
			return rc;
		}
		d->launched = (int)i + 1;
	}
	return 0;
}

void aw_dispatch_stop(struct aw_dispatch *d)
{
	__atomic_store_n(&d->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < d->launched; i++)
		rte_eal_wait_lcore(d->g[i].p.lcore);
	d->launched = 0;
}

void aw_dispatch_free(struct aw_dispatch *d)
{
	if (!d)
		return;
	if (d->launched)
		aw_dispatch_stop(d);
	for (unsigned i = 0; i < AW_DP_MAX_GROUPS; i++) {
		struct group *g = &d->g[i];
		void *obj;

		if (g->ring) {
			while (rte_ring_dequeue(g->ring, &obj) == 0)
				rte_mempool_put(g->pool, obj);
			rte_ring_free(g->ring);
		}
		rte_ring_free(g->cancel);
		rte_mempool_free(g->pool);
	}
	rte_free(d);
}

unsigned aw_dispatch_n_groups(const struct aw_dispatch *d)
{
	return d->p.n_groups;
}

void aw_dispatch_group_stats(const struct aw_dispatch *d, unsigned g,
			     struct aw_dispatch_group_stats *ret)
{
	const struct group *x = &d->g[g];

	ret->enqueued = __atomic_load_n(&x->st.enqueued, __ATOMIC_RELAXED);
	ret->completed = __atomic_load_n(&x->st.completed, __ATOMIC_RELAXED);
	ret->overloaded = __atomic_load_n(&x->st.overloaded, __ATOMIC_RELAXED);
	ret->bad = __atomic_load_n(&x->st.bad, __ATOMIC_RELAXED);
	ret->cancelled = __atomic_load_n(&x->st.cancelled, __ATOMIC_RELAXED);
	ret->deadline = __atomic_load_n(&x->st.deadline, __ATOMIC_RELAXED);
	ret->tokens_in = __atomic_load_n(&x->st.tokens_in, __ATOMIC_RELAXED);
	ret->tokens_out = __atomic_load_n(&x->st.tokens_out, __ATOMIC_RELAXED);
	ret->busy_us = __atomic_load_n(&x->st.busy_us, __ATOMIC_RELAXED);
	ret->queued = rte_ring_count(x->ring);
	ret->running = __atomic_load_n(&x->running, __ATOMIC_RELAXED);
}

void aw_dispatch_group_obs(const struct aw_dispatch *d, unsigned g,
			   struct aw_dispatch_group_obs *ret)
{
	const struct aw_dispatch_group_obs *o = &d->g[g].obs;

	aw_hist_read(&o->queue_us, &ret->queue_us);
	aw_hist_read(&o->ttft_us, &ret->ttft_us);
	aw_hist_read(&o->itl_us, &ret->itl_us);
	aw_hist_read(&o->e2e_us, &ret->e2e_us);
	aw_hist_read(&o->batch_tokens, &ret->batch_tokens);
	aw_hist_read(&o->batch_seqs, &ret->batch_seqs);
	for (unsigned i = 0; i < AW_DISPATCH_OPS; i++)
		for (unsigned j = 0; j < AW_DISPATCH_OUT__COUNT; j++)
			ret->done[i][j] = __atomic_load_n(&o->done[i][j], __ATOMIC_RELAXED);
	ret->kv_blocks_used = __atomic_load_n(&o->kv_blocks_used, __ATOMIC_RELAXED);
	ret->kv_blocks_total = __atomic_load_n(&o->kv_blocks_total, __ATOMIC_RELAXED);
	ret->prefix_lookup_tokens = __atomic_load_n(&o->prefix_lookup_tokens, __ATOMIC_RELAXED);
	ret->prefix_hit_tokens = __atomic_load_n(&o->prefix_hit_tokens, __ATOMIC_RELAXED);
}

const struct aw_dispatch_group_params *aw_dispatch_group_params(const struct aw_dispatch *d,
								unsigned g)
{
	return &d->g[g].p;
}

uint64_t aw_dispatch_heartbeat(const struct aw_dispatch *d, unsigned g)
{
	if (!d || g >= d->p.n_groups)
		return 0;
	return __atomic_load_n(&d->g[g].heartbeat, __ATOMIC_RELAXED);
}
