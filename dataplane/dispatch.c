/* dispatch.c — request objects, group rings, and the worker loop (dispatch.h).
 *
 * Submit (dataplane lcore): pick the group with the fewest requests waiting
 * or running, take a request object from that group's pool (on its node),
 * copy the message once, enqueue the pointer. Worker (group leader lcore):
 * dequeue, parse the body, run it through the engine, stream the replies
 * through aw_dp_reply() to the lcore that owns the client's flow, free the
 * object. Cancellations travel on a small ring per group as 64-bit keys of
 * (client, request id) and are checked between tokens.
 *
 * Groups with a scheduler (see "worker groups" below): the leader submits
 * each request to the group's struct aw_sched with the flow key as its id,
 * forwards cancel keys to aw_sched_cancel(), steps the scheduler, and turns
 * its events into DATA/END replies; the request object lives until its last
 * event.
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

#include "agent.h"
#include "grammar.h"
#include "log.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "sample.h"
#include "scheduler.h"
#include "tok.h"

#define CANCEL_KEYS 64

struct group;
struct aw_req;

/* The reply stream of one request. */
struct run {
	struct group *g;
	struct aw_req *r;
	uint64_t key;
	uint64_t deadline_us; /* 0 = none */
	uint32_t seq;	      /* next reply seq */
	uint64_t data_bytes;
	uint8_t stop_reason;  /* 0, or AW_PROTO_FINISH_CANCELLED / _DEADLINE */
	int lost;	      /* the reply path refused (shutdown) */
	uint32_t pending;     /* scheduler: tokens sampled whose text is not sent yet */
	uint64_t wait_us;     /* scheduler: receipt to submit */
	unsigned op;	      /* index in obs.done (AW_DISPATCH_OPS) */
	uint64_t last_us;     /* when the previous token was sent (0: none yet) */
	struct agent_run *ag; /* agent operations: CLASSIFY/EMBED/tools state, or NULL */
};

/* One request, copied once from the dataplane lcore's reassembly buffer. */
struct aw_req {
	struct run x;		/* scheduler: its reply stream while it runs */
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
	uint64_t obs_pos, obs_done;	   /* scheduler totals at the previous step */
	uint32_t running;		   /* atomic */
	uint64_t heartbeat; /* atomic: +1 per loop iteration and per emitted token (watchdog) */
	/* scheduler (NULL m: one request at a time through the engine) */
	struct aw_model *m;
	const struct aw_tok *tok;
	struct aw_sched *s;
	struct aw_pool *threads;
	int32_t *ids; /* prompt tokens (max_prompt_tokens + 1) */
	int32_t n_vocab, ctx, n_eos, eos[2];
	unsigned gen;			    /* engine generation of 'm' (live model swap) */
	int start_rc;			    /* atomic: 0 starting, 1 serving, -errno failed */
	struct aw_dispatch_group_stats sst; /* scheduler counters, relaxed atomics */
	struct aw_agent_ctx agent;	    /* agent operations: template, tokenizer */
	struct aw_grammar_vocab *gvocab;    /* the tokenizer's grammar tables (on first use) */
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

	if (flow->session_id && d->p.n_groups) {
		/* a session's turns go to one group, which holds its KV blocks */
		uint64_t h = flow->session_id * 0x9e3779b97f4a7c15ull;

		best = &d->g[(h >> 32) % d->p.n_groups];
	}
	for (unsigned i = 0; !flow->session_id && i < d->p.n_groups; i++) {
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

/* Index of the request's kind in obs.done. */
static unsigned req_op(const struct aw_req *r)
{
	return r->type >= AW_PROTO_GENERATE && r->type < AW_PROTO_GENERATE + AW_DISPATCH_OPS
		       ? (unsigned)(r->type - AW_PROTO_GENERATE)
		       : 0;
}

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

static int send_reply_flags(struct run *x, uint8_t type, uint16_t flags, const void *payload,
			    size_t len, int terminal)
{
	int rc = aw_dp_reply_flags(x->g->d->dp, &x->r->flow, type, flags, x->seq, payload, len,
				   terminal);

	if (rc < 0)
		x->lost = 1;
	else
		x->seq++;
	return rc;
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
static int send_data(struct run *x, const char *text, size_t len, uint32_t n_tokens)
{
	struct aw_dispatch *d = x->g->d;
	size_t max = aw_dp_max_payload(d->dp, &x->r->flow) - AW_PROTO_DATA_HDR_LEN, off = 0;
	uint8_t b[9216];

	if (max > sizeof(b) - AW_PROTO_DATA_HDR_LEN)
		max = sizeof(b) - AW_PROTO_DATA_HDR_LEN;
	do {
		size_t c = len - off < max ? len - off : max;
		int n = aw_proto_data_build(b, sizeof(b), off == 0 ? n_tokens : 0, text + off, c);

		if (n < 0 || send_reply(x, AW_PROTO_DATA, b, (size_t)n, 0) < 0)
			return -1;
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
	return 0;
}

static int emit(void *ctx, const char *text, size_t len, uint32_t n_tokens)
{
	struct run *x = ctx;
	struct aw_dispatch *d = x->g->d;

	if (send_data(x, text, len, n_tokens) < 0)
		return 1;

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

/* The END summary's model tag for group 'g's current model (proto.h). */
static uint8_t model_tag(const struct group *g)
{
	return g->gen ? (uint8_t)(1 + (g->gen - 1) % 255) : 0;
}

static void send_end(struct run *x, uint8_t finish, const struct aw_engine_result *res,
		     uint64_t queue_us)
{
	struct aw_proto_summary s = {0};
	uint8_t b[AW_PROTO_SUMMARY_LEN];
	int n;

	s.finish = finish;
	s.model = model_tag(x->g);
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
	observe_end(x, finish <= AW_PROTO_FINISH_ERROR ? (enum aw_dispatch_outcome)finish
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

	x.op = req_op(r);
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
	if (r->type != AW_PROTO_GENERATE || !d->engine->ops->generate || body.messages.p) {
		send_error(&x, AW_PROTO_ERR_UNSUPPORTED,
			   "only GENERATE with a PROMPT is served without a scheduler");
		goto done;
	}
	/* limits may change live (aw_dispatch_set_limits) */
	const uint32_t max_new = __atomic_load_n(&d->p.max_new_tokens, __ATOMIC_RELAXED);
	const uint32_t def_deadline = __atomic_load_n(&d->p.default_deadline_us, __ATOMIC_RELAXED);
	if (body.max_new_tokens == 0 || body.max_new_tokens > max_new)
		body.max_new_tokens = max_new;
	if (body.deadline_us)
		x.deadline_us = r->recv_us + body.deadline_us;
	else if (def_deadline)
		x.deadline_us = r->recv_us + def_deadline;
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

/* --- worker groups: the scheduler (continuous batching) ------------------------------ */

static void agent_run_free(struct aw_req *r);

static void req_put(struct group *g, struct aw_req *r)
{
	agent_run_free(r);
	rte_mempool_put(g->pool, r);
}

static void agent_event(struct group *g, struct aw_req *r, const struct aw_sched_event *ev);

/* The scheduler's events, on the leader's thread: text goes out as DATA as
 * soon as there is some (tokens whose text is held back — a pending stop
 * string or UTF-8 sequence — are counted into the next DATA), the last event
 * ends the stream with END and frees the request object. */
static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct group *g = ctx;
	struct aw_req *r = ev->user;
	struct run *x = &r->x;
	struct aw_engine_result res = {0};

	if (x->ag)
		return agent_event(g, r, ev); /* CLASSIFY, EMBED, tools */
	if (ev->token >= 0)
		x->pending++;
	if (!x->lost && (ev->len > 0 || (ev->done && x->pending))) {
		send_data(x, ev->text, ev->len, x->pending);
		x->pending = 0;
	}
	if (!ev->done)
		return;
	res.prompt_tokens = ev->prompt_tokens;
	res.gen_tokens = ev->gen_tokens;
	res.prefill_us = ev->prefill_us > UINT32_MAX ? UINT32_MAX : (uint32_t)ev->prefill_us;
	res.decode_us = ev->decode_us > UINT32_MAX ? UINT32_MAX : (uint32_t)ev->decode_us;
	GST_ADD(g, tokens_in, ev->prompt_tokens);
	__atomic_store_n(&g->obs.prefix_lookup_tokens,
			 g->obs.prefix_lookup_tokens + ev->prompt_tokens, __ATOMIC_RELAXED);
	__atomic_store_n(&g->obs.prefix_hit_tokens, g->obs.prefix_hit_tokens + ev->cached_tokens,
			 __ATOMIC_RELAXED);
	aw_hist_observe(&g->obs.queue_us, &aw_hist_latency_us, x->wait_us + ev->queue_us);
	if (!x->lost && ev->finish == AW_SCHED_FINISH_ERROR && ev->error == -ENOENT &&
	    !ev->gen_tokens) {
		/* the session this turn continued was evicted while it waited */
		char msg[96];

		snprintf(msg, sizeof(msg), "session %llx was evicted before this turn ran",
			 (unsigned long long)r->flow.session_id);
		send_error(x, AW_PROTO_ERR_UNKNOWN_SESSION, msg);
	} else if (!x->lost) {
		send_end(x, (uint8_t)ev->finish, &res, x->wait_us + ev->queue_us);
	}
	GST_ADD(g, completed, 1);
	__atomic_fetch_sub(&g->running, 1, __ATOMIC_RELAXED);
	req_put(g, r);
}

/* An immediate terminal for a request the scheduler never saw. */
static void refuse(struct group *g, struct aw_req *r, uint16_t code, const char *msg)
{
	if (code == AW_PROTO_ERR_BAD_REQUEST)
		GST_ADD(g, bad, 1);
	send_error(&r->x, code, msg);
	GST_ADD(g, completed, 1);
	req_put(g, r);
}

static void end_now(struct group *g, struct aw_req *r, uint8_t finish, uint64_t now)
{
	send_end(&r->x, finish, NULL, now - r->recv_us);
	GST_ADD(g, completed, 1);
	req_put(g, r);
}

/* Parse, tokenize and submit request 'r' to the group's scheduler (or
 * answer it at once). */
static int agent_prepare(struct group *g, struct aw_req *r, const struct aw_proto_req *body,
			 struct aw_agent_job *job);
static int agent_fill(struct group *g, struct aw_req *r, const struct aw_agent_job *job,
		      struct aw_sched_req *q);

static void sched_submit(struct group *g, struct aw_req *r)
{
	struct aw_dispatch *d = g->d;
	char stops[AW_PROTO_MAX_STOP][AW_PROTO_MAX_STOP_LEN + 1];
	struct aw_sched_req q = {0};
	struct aw_proto_req body;
	struct aw_proto_err e;
	const char *why = NULL;
	uint64_t now = aw_dp_now_us(), dl = 0, sess = 0;
	size_t n_ids = 0;
	char msg[160];
	int rc;

	memset(&r->x, 0, sizeof(r->x));
	r->x.g = g;
	r->x.r = r;
	r->x.key = flow_key(&r->flow);
	r->x.op = req_op(r);
	if (is_cancelled(g, r->x.key))
		return end_now(g, r, AW_PROTO_FINISH_CANCELLED, now);
	if (aw_proto_req_parse(r->type, r->data, r->len, &body, &e) < 0)
		return refuse(g, r, AW_PROTO_ERR_BAD_REQUEST, e.err.msg);
	/* --- agent operations: CLASSIFY, EMBED, messages and tools (agent.h) --- */
	struct aw_agent_job job;
	const int agent = r->type != AW_PROTO_GENERATE || body.messages.p || body.response_format.p;
	if (agent && agent_prepare(g, r, &body, &job) < 0)
		return; /* refused */
	/* --- */
	if (body.max_new_tokens == 0 || body.max_new_tokens > d->p.max_new_tokens)
		body.max_new_tokens = d->p.max_new_tokens;
	if (body.deadline_us)
		dl = r->recv_us + body.deadline_us;
	else if (d->p.default_deadline_us)
		dl = r->recv_us + d->p.default_deadline_us;
	if (dl && now >= dl) {
		if (agent)
			aw_agent_job_fini(&job);
		return end_now(g, r, AW_PROTO_FINISH_DEADLINE, now);
	}

	/* a session's next turn carries only its new text: no BOS then. With
	 * CONTINUE the client says the prompt is such a turn: a session this
	 * group does not hold is UNKNOWN_SESSION (the client then sends the
	 * whole conversation) */
	if ((body.req_flags & AW_PROTO_REQF_KEEP_SESSION) && d->p.max_sessions && !agent)
		sess = r->flow.session_id;
	const int held = sess && aw_sched_has_session(g->s, sess);
	if ((body.req_flags & AW_PROTO_REQF_CONTINUE) && !agent && !held) {
		snprintf(msg, sizeof(msg), "session %llx is not held here%s",
			 (unsigned long long)r->flow.session_id,
			 sess ? "" : " (CONTINUE needs a session id and KEEP_SESSION)");
		return refuse(g, r, AW_PROTO_ERR_UNKNOWN_SESSION, msg);
	}
	rc = 0;
	if (agent) /* tokenized by agent_prepare() */
		n_ids = (size_t)job.n_tokens;
	else
		rc = aw_tok_encode(g->tok, body.prompt.p, body.prompt.len,
				   held ? 0 : AW_TOK_ADD_SPECIAL, g->ids,
				   d->p.max_prompt_tokens + 1, &n_ids);
	if (rc == -ENOSPC || n_ids > d->p.max_prompt_tokens) {
		snprintf(msg, sizeof(msg), "prompt of %zu tokens: the limit is %u", n_ids,
			 d->p.max_prompt_tokens);
		if (agent)
			aw_agent_job_fini(&job);
		return refuse(g, r, AW_PROTO_ERR_TOO_LONG, msg);
	}
	if (rc < 0 || n_ids == 0) {
		snprintf(msg, sizeof(msg), "prompt: %s", rc < 0 ? strerror(-rc) : "no tokens");
		if (agent)
			aw_agent_job_fini(&job);
		return refuse(g, r, AW_PROTO_ERR_BAD_REQUEST, msg);
	}

	/* sampling parameters from the request (0 = the sampler's "off") */
	aw_sample_params_default(&q.sample);
	q.sample.temperature = body.temperature;
	q.sample.top_k = (int32_t)body.top_k;
	q.sample.top_p = body.top_p;
	q.sample.min_p = body.min_p;
	q.sample.repeat_penalty = body.repetition_penalty;
	q.sample.seed = body.seed;
	q.sample.max_tokens = (int32_t)body.max_new_tokens;
	q.sample.n_eos = g->n_eos;
	memcpy(q.sample.eos, g->eos, sizeof(g->eos));
	for (uint32_t i = 0; i < body.n_stop && i < AW_SAMPLE_MAX_STOP; i++) {
		memcpy(stops[i], body.stop[i].p, body.stop[i].len);
		stops[i][body.stop[i].len] = '\0';
		q.sample.stop[q.sample.n_stop++] = stops[i];
	}
	if (aw_sample_params_check(&q.sample, g->n_vocab, &why) < 0) {
		if (agent)
			aw_agent_job_fini(&job);
		snprintf(msg, sizeof(msg), "sampling: %s", why ? why : "bad");
		return refuse(g, r, AW_PROTO_ERR_BAD_REQUEST, msg);
	}

	q.id = r->x.key;
	q.user = r;
	q.session = sess;
	q.priority = body.priority ? 1 : 0;
	/* the scheduler's clock is CLOCK_MONOTONIC: hand it the budget left */
	q.deadline_us = dl ? aw_sched_now_us() + (dl - now) : 0;
	q.tokens = g->ids;
	q.n_tokens = (int32_t)n_ids;
	r->x.wait_us = now - r->recv_us;
	if (agent) { /* the job's tokens, kind, labels, pooling, tool-call reader, grammar */
		rc = agent_fill(g, r, &job, &q);
		if (rc == 0)
			rc = aw_sched_submit(g->s, &q);
		aw_agent_job_fini(&job);
		if (rc == -ECANCELED)
			return; /* refused by agent_fill */
	} else {
		rc = aw_sched_submit(g->s, &q);
	}
	if (rc == -EAGAIN) {
		GST_ADD(g, overloaded, 1);
		return refuse(g, r, AW_PROTO_ERR_OVERLOADED, "scheduler queue full");
	}
	if (rc == -E2BIG) {
		snprintf(msg, sizeof(msg),
			 "prompt of %zu tokens (session's included): context is %d", n_ids, g->ctx);
		return refuse(g, r, AW_PROTO_ERR_TOO_LONG, msg);
	}
	if (rc < 0)
		return refuse(g, r,
			      rc == -EINVAL ? AW_PROTO_ERR_BAD_REQUEST : AW_PROTO_ERR_INTERNAL,
			      strerror(-rc));
	__atomic_fetch_add(&g->running, 1, __ATOMIC_RELAXED);
}

/* --- agent operations: CLASSIFY, EMBED, chat messages and tools ----------------------
 * agent_prepare() checks, renders and tokenizes (dataplane/agent.h) and
 * refuses with the job's code and message; agent_fill() puts the job into
 * the scheduler request and, for GENERATE with tools, attaches the
 * tool-call reader (inference/toolcall.h) to the request's reply stream;
 * agent_event() replaces on_event() for these requests: content text as
 * DATA, each parsed call as one TOOL_CALL datagram, the embedding as DATA
 * floats, CLASSIFY's probabilities in the END summary. */
struct agent_run {
	int kind;		    /* enum aw_sched_kind */
	struct aw_toolcall *tc;	    /* GENERATE with tools: the call reader, or NULL */
	struct aw_chat_buf content; /* the reader's content text (scratch) */
	int failed;		    /* a malformed call: ERROR instead of END */
	char err[AW_PROTO_ERROR_MAX_MSG + 1];
	/* constrained decoding: the sampler's mask hook drives the matcher */
	int g_mode;	/* AW_AGENT_GRAMMAR_* */
	int g_active;	/* the mask applies now */
	int g_stay;	/* a forced call: awake to the end (then only EOS) */
	int32_t g_left; /* tokens the request may still generate (max_new_tokens) */
	int32_t g_n;	/* tokens the grammar's vocabulary has */
	int32_t g_eos;	/* end-of-generation token forced when the value is done, or -1 */
	struct aw_grammar *gr;
	struct aw_grammar_matcher *gm;
};

static void agent_group_init(struct group *g, const struct aw_engine *en)
{
	const char *t = NULL;
	size_t n = 0;

	if (!en->ops->group_template || en->ops->group_template(en->state, g->idx, &t, &n) < 0)
		t = NULL;
	aw_grammar_vocab_free(g->gvocab); /* a new model (live swap): a new tokenizer */
	g->gvocab = NULL;
	aw_agent_ctx_init_template(&g->agent, t, n, g->tok, (int32_t)g->d->p.max_prompt_tokens + 1);
	aw_log(AW_LOG_INFO, "dispatch", "group %u: chat template family %s", g->idx,
	       aw_chat_family_name(g->agent.family));
}

static void agent_run_free(struct aw_req *r)
{
	struct agent_run *a = r->x.ag;

	if (!a)
		return;
	aw_toolcall_free(a->tc);
	aw_grammar_matcher_free(a->gm);
	aw_grammar_free(a->gr);
	free(a->content.p);
	free(a);
	r->x.ag = NULL;
}

static int agent_prepare(struct group *g, struct aw_req *r, const struct aw_proto_req *body,
			 struct aw_agent_job *job)
{
	int rc = aw_agent_prepare(&g->agent, r->type, body, job);

	if (rc < 0) {
		aw_agent_job_fini(job);
		refuse(g, r, rc == -ENOMEM ? AW_PROTO_ERR_INTERNAL : job->code,
		       rc == -ENOMEM ? "out of memory" : job->msg);
	}
	return rc;
}

/* Tokens before max_new_tokens at which a constrained value is steered to
 * its nearest end (the grammar's finishing mode). */
#define AGENT_FINISH_TOKENS 24

/* The sampler's mask hook: the matcher's mask while the grammar is awake. */
static void agent_fill_mask(void *ctx, uint64_t *allowed, int32_t n_vocab)
{
	struct agent_run *a = ctx;

	if (!a->g_active)
		return; /* asleep */
	/* the budget runs short: steer the value to its nearest end so it parses */
	if (a->g_left <= AGENT_FINISH_TOKENS)
		aw_grammar_set_finish(a->gm, 1);
	if (aw_grammar_mask(a->gm, allowed) <= 0)
		return;				   /* stuck: the call reader will tell */
	for (int32_t t = a->g_n; t < n_vocab; t++) /* model rows beyond the tokenizer */
		allowed[t / 64] &= ~(1ull << (t % 64));
}

static void agent_accept(void *ctx, int32_t token)
{
	struct agent_run *a = ctx;

	a->g_left--;
	if (a->g_active)
		(void)aw_grammar_accept(a->gm, token);
}

/* Fast-forward (the scheduler calls it after each sampled token's event, so
 * a grammar woken by that token's text counts): what the awake grammar
 * determines next, or EOS once the value is done (only EOS could follow:
 * an auto call's end has put the grammar to sleep before this). */
static int32_t agent_forced(void *ctx, int32_t *out, int32_t cap)
{
	struct agent_run *a = ctx;
	size_t n = 0;

	if (!a->g_active || cap <= 0)
		return 0;
	if (aw_grammar_done(a->gm)) {
		if (a->g_eos < 0)
			return 0;
		out[0] = a->g_eos;
		return 1;
	}
	if (a->g_left <= AGENT_FINISH_TOKENS)
		aw_grammar_set_finish(a->gm, 1); /* as the mask would: the same path */
	if (aw_grammar_forced(a->gm, out, (size_t)cap, &n) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (out[i] >= a->g_n)
			return (int32_t)i; /* model rows beyond the tokenizer: never */
	return (int32_t)n;
}

/* Compile the job's schema and start its matcher; refuses 'r' on failure
 * (returns -ECANCELED then). */
static int agent_grammar(struct group *g, struct aw_req *r, const struct aw_agent_job *job,
			 struct agent_run *a)
{
	struct aw_grammar_opts o = {0, job->g_prefix, job->g_suffix};
	struct aw_err err = {0};
	char msg[AW_PROTO_ERROR_MAX_MSG + 1];
	int rc;

	if (!g->gvocab && (rc = aw_grammar_vocab_new(g->tok, &g->gvocab)) < 0)
		return rc;
	a->g_n = aw_grammar_vocab_n(g->gvocab);
	if (a->g_n > g->n_vocab) {
		refuse(g, r, AW_PROTO_ERR_UNSUPPORTED,
		       "constrained decoding: the tokenizer is larger than the model's vocabulary");
		return -ECANCELED;
	}
	rc = aw_grammar_compile(job->schema, strlen(job->schema), &o, &a->gr, &err);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "%s: %s",
			 job->grammar == AW_AGENT_GRAMMAR_CALLS ? "TOOLS" : "RESPONSE_FORMAT",
			 err.msg);
		refuse(g, r, AW_PROTO_ERR_BAD_REQUEST, msg);
		return -ECANCELED;
	}
	if ((rc = aw_grammar_matcher_new(a->gr, g->gvocab, &a->gm)) < 0)
		return rc;
	a->g_mode = job->grammar;
	/* awake from the start unless it waits for a call marker */
	a->g_stay = job->forced;
	if (job->grammar == AW_AGENT_GRAMMAR_ALWAYS || job->forced) {
		if (job->g_forced &&
		    aw_grammar_accept_bytes(a->gm, job->g_forced, strlen(job->g_forced)) < 0) {
			refuse(g, r, AW_PROTO_ERR_INTERNAL,
			       "the forced call does not fit its grammar");
			return -ECANCELED;
		}
		a->g_active = 1;
	}
	return 0;
}

/* After the call reader saw more text: wake the grammar at a call's
 * marker (advanced by the call's text so far), let it sleep after the call. */
static void agent_wake(struct agent_run *a)
{
	const int in = aw_toolcall_in_call(a->tc);

	if (a->g_mode != AW_AGENT_GRAMMAR_CALLS)
		return;
	if (in && !a->g_active) {
		size_t n;
		const char *t = aw_toolcall_call_text(a->tc, &n);
		aw_grammar_matcher_reset(a->gm);
		a->g_active = aw_grammar_accept_bytes(a->gm, t, n) == 0;
	} else if (!in && a->g_active && !a->g_stay) {
		a->g_active = 0; /* auto: free text (or another call) may follow */
	}
}

static int agent_fill(struct group *g, struct aw_req *r, const struct aw_agent_job *job,
		      struct aw_sched_req *q)
{
	struct agent_run *a = calloc(1, sizeof(*a));
	int rc;

	if (!a)
		return -ENOMEM;
	a->kind = job->kind;
	if (job->calls != AW_TOOLCALL_NONE &&
	    aw_toolcall_new(job->calls, job->forced, job->tool_name[0] ? job->tool_name : NULL,
			    strlen(job->tool_name), &a->tc) < 0) {
		free(a);
		return -ENOMEM;
	}
	r->x.ag = a;
	if (job->grammar && job->schema) {
		if ((rc = agent_grammar(g, r, job, a)) < 0)
			return rc; /* -ECANCELED: refused (and 'r' released) */
		a->g_left = q->sample.max_tokens > 0 ? q->sample.max_tokens : INT32_MAX;
		/* the EOS fast-forward ends a finished value with: the end of turn
		 * when the model has one, else its EOS (both on the sampler's list) */
		a->g_eos = -1;
		for (int32_t i = 0; i < q->sample.n_eos; i++)
			if (aw_tok_is_eog(g->tok, q->sample.eos[i]))
				a->g_eos = q->sample.eos[i];
		q->hook.fill = agent_fill_mask;
		q->hook.accept = agent_accept;
		q->hook.ctx = a;
		q->hook.forced = agent_forced;
	}
	q->tokens = job->tokens;
	q->n_tokens = job->n_tokens;
	q->kind = job->kind;
	q->n_labels = job->n_labels;
	q->labels = (const int32_t *const *)job->labels;
	q->label_lens = job->label_lens;
	q->pooling = job->pooling;
	q->normalize = job->normalize;
	return 0;
}

/* One parsed call as a TOOL_CALL reply: one datagram, or when longer a run
 * of fragments, every one but the last flagged AW_PROTO_F_MORE (docs/PROTOCOL.md,
 * "Reply fragments"). */
static int agent_on_call(void *ctx, const struct aw_toolcall_call *c)
{
	struct run *x = ctx;
	struct agent_run *a = x->ag;
	uint8_t sb[2048], *b = sb;
	const size_t need = AW_PROTO_TOOL_CALL_HDR_LEN + c->name_len + c->args_len;
	size_t max = aw_dp_max_payload(x->g->d->dp, &x->r->flow);
	struct aw_proto_tool_call tc = {.n_tokens = c->n_tokens, .index = (uint16_t)c->index};
	int n;

	tc.name.p = c->name;
	tc.name.len = (uint32_t)c->name_len;
	tc.args.p = c->args;
	tc.args.len = (uint32_t)c->args_len;
	if (need > sizeof(sb) && !(b = malloc(need))) {
		snprintf(a->err, sizeof(a->err), "tool call %u: out of memory", c->index);
		return 1;
	}
	n = aw_proto_tool_call_build(b, need, &tc);
	if (n < 0) {
		snprintf(a->err, sizeof(a->err), "tool call %u of %zu bytes: longer than %u bytes",
			 c->index, c->name_len + c->args_len, AW_PROTO_MAX_REPLY_MSG);
		if (b != sb)
			free(b);
		return 1;
	}
	for (size_t off = 0; off < (size_t)n;) {
		const size_t k = (size_t)n - off < max ? (size_t)n - off : max;
		const uint16_t fl = off + k < (size_t)n ? AW_PROTO_F_MORE : 0;

		if (send_reply_flags(x, AW_PROTO_TOOL_CALL, fl, b + off, k, 0) < 0)
			break;
		off += k;
	}
	if (b != sb)
		free(b);
	GST_ADD(x->g, tokens_out, c->n_tokens);
	return 0;
}

static void agent_event(struct group *g, struct aw_req *r, const struct aw_sched_event *ev)
{
	struct run *x = &r->x;
	struct agent_run *a = x->ag;
	struct aw_err err = {0};
	uint8_t finish = (uint8_t)ev->finish;
	int rc;

	if (ev->token >= 0)
		x->pending++;
	if (a->tc && !a->failed && !x->lost) {
		/* the reader: content out now, calls as they close; a marker that is
		 * a control token (Mistral's [TOOL_CALLS]) has no text: its own */
		const char *text = ev->text;
		size_t len = ev->len;
		if (!len && ev->token >= 0 &&
		    aw_tok_token_type(g->tok, ev->token) == AW_TOK_TYPE_CONTROL) {
			const char *t = aw_tok_text(g->tok, ev->token, &len);
			if (t && ((len == 11 && !memcmp(t, "<tool_call>", 11)) ||
				  (len == 12 && !memcmp(t, "</tool_call>", 12)) ||
				  (len == 12 && !memcmp(t, "[TOOL_CALLS]", 12))))
				text = t;
			else
				len = 0;
		}
		rc = len ? aw_toolcall_feed(a->tc, text, len, ev->token >= 0 ? 1 : 0, &a->content,
					    agent_on_call, x, &err)
			 : 0;
		if (rc == 0 && a->gm)
			agent_wake(a);
		if (rc == 0 && ev->done) {
			rc = aw_toolcall_end(a->tc, &a->content, &err);
			/* out of budget inside a call: the client's limit, not a fault
			 * (END finish length, the unfinished call not sent) */
			if (rc < 0 && ev->finish != AW_SCHED_FINISH_STOP)
				rc = 0;
		}
		if (rc == 0 && a->content.len) {
			send_data(x, a->content.p, a->content.len, x->pending);
			x->pending = 0;
		}
		if (rc < 0) {
			a->failed = 1;
			if (!a->err[0])
				snprintf(a->err, sizeof(a->err), "%s", err.msg);
			if (!ev->done)
				aw_sched_cancel(g->s, x->key);
		}
	} else if (!a->tc && !x->lost && (ev->len > 0 || (ev->done && x->pending))) {
		send_data(x, ev->text, ev->len, x->pending);
		x->pending = 0;
	}
	if (!ev->done)
		return;
	GST_ADD(g, tokens_in, ev->prompt_tokens);
	if (a->failed) {
		if (!x->lost)
			send_error(x, AW_PROTO_ERR_INTERNAL, a->err);
	} else if (!x->lost) {
		struct aw_proto_summary s = {0};
		uint8_t b[AW_PROTO_SUMMARY_LEN + 4 * AW_PROTO_MAX_PROBS];
		int n;

		if (a->kind == AW_SCHED_EMBED && finish == AW_PROTO_FINISH_STOP &&
		    ev->n_values > 0) {
			/* the embedding: little-endian float32 values */
			uint8_t v[4 * 1024];
			size_t k = 0;
			for (int32_t i = 0; i < ev->n_values; i++, k += 4) {
				uint32_t u;
				if (k == sizeof(v)) { /* a chunk of 1024 values */
					send_data(x, (const char *)v, k, 0);
					k = 0;
				}
				memcpy(&u, &ev->values[i], 4);
				v[k] = (uint8_t)u;
				v[k + 1] = (uint8_t)(u >> 8);
				v[k + 2] = (uint8_t)(u >> 16);
				v[k + 3] = (uint8_t)(u >> 24);
			}
			send_data(x, (const char *)v, k, 0);
		}
		if (a->tc && aw_toolcall_count(a->tc) > 0 && finish == AW_PROTO_FINISH_STOP)
			finish = AW_PROTO_FINISH_TOOL_CALLS;
		s.finish = finish;
		s.model = model_tag(g);
		s.prompt_tokens = ev->prompt_tokens;
		s.gen_tokens = ev->gen_tokens;
		s.prefill_us = ev->prefill_us > UINT32_MAX ? UINT32_MAX : (uint32_t)ev->prefill_us;
		s.decode_us = ev->decode_us > UINT32_MAX ? UINT32_MAX : (uint32_t)ev->decode_us;
		const uint64_t q_us = x->wait_us + ev->queue_us;
		s.queue_us = q_us > UINT32_MAX ? UINT32_MAX : (uint32_t)q_us;
		if (a->kind == AW_SCHED_CLASSIFY && finish == AW_PROTO_FINISH_STOP)
			s.n_probs = (uint16_t)ev->n_values;
		s.n_data = x->seq;
		s.data_bytes = x->data_bytes;
		n = aw_proto_summary_build(b, sizeof(b), &s, ev->values);
		if (n >= 0)
			send_reply(x, AW_PROTO_END, b, (size_t)n, 1);
		observe_end(x, finish == AW_PROTO_FINISH_TOOL_CALLS ? AW_DISPATCH_OUT_STOP
			       : finish <= AW_PROTO_FINISH_ERROR ? (enum aw_dispatch_outcome)finish
								 : AW_DISPATCH_OUT_ERROR);
		if (finish == AW_PROTO_FINISH_CANCELLED)
			GST_ADD(g, cancelled, 1);
		else if (finish == AW_PROTO_FINISH_DEADLINE)
			GST_ADD(g, deadline, 1);
	}
	GST_ADD(g, completed, 1);
	__atomic_fetch_sub(&g->running, 1, __ATOMIC_RELAXED);
	req_put(g, r);
}
/* --- */

/* Cancel keys to the scheduler (and remembered, for a cancel that overtook
 * its request on the way here). */
static void sched_take_cancels(struct group *g)
{
	void *k;

	while (rte_ring_sc_dequeue(g->cancel, &k) == 0) {
		g->keys[g->n_keys++ % CANCEL_KEYS] = (uint64_t)(uintptr_t)k;
		aw_sched_cancel(g->s, (uint64_t)(uintptr_t)k); /* full: the client resends */
	}
}

#define SST_SET(g, f, v) __atomic_store_n(&(g)->sst.f, (v), __ATOMIC_RELAXED)

/* Copy the scheduler's counters where telemetry reads them. */
static void publish_stats(struct group *g)
{
	struct aw_sched_stats st;
	uint64_t done = 0, pos;

	aw_sched_get_stats(g->s, &st);
	/* /metrics: the step's batch (positions computed, sequences in it: those
	 * still running plus those it finished) and the KV pool's state */
	for (unsigned i = 0; i < sizeof(st.finished) / sizeof(st.finished[0]); i++)
		done += st.finished[i];
	pos = st.prefill_tokens + st.decode_tokens;
	if (st.steps > g->sst.steps && pos > g->obs_pos) {
		aw_hist_observe(&g->obs.batch_tokens, &aw_hist_size, pos - g->obs_pos);
		aw_hist_observe(&g->obs.batch_seqs, &aw_hist_size,
				(uint64_t)(st.running > 0 ? st.running : 0) + done - g->obs_done);
	}
	g->obs_pos = pos;
	g->obs_done = done;
	__atomic_store_n(&g->obs.kv_blocks_total, (uint64_t)st.n_blocks, __ATOMIC_RELAXED);
	__atomic_store_n(&g->obs.kv_blocks_used, (uint64_t)(st.n_blocks - st.free_blocks),
			 __ATOMIC_RELAXED);
	SST_SET(g, steps, st.steps);
	SST_SET(g, prefill_tokens, st.prefill_tokens);
	SST_SET(g, decode_tokens, st.decode_tokens);
	SST_SET(g, cached_tokens, st.cached_tokens);
	SST_SET(g, admitted, st.admitted);
	SST_SET(g, preempted, st.preempted);
	SST_SET(g, deferred, st.deferred);
	SST_SET(g, cache_evicted, st.cache_evicted);
	SST_SET(g, sessions_expired, st.sessions_expired);
	SST_SET(g, sessions_evicted, st.sessions_evicted);
	SST_SET(g, forced_tokens, st.forced_tokens);
	SST_SET(g, sched_running, (uint32_t)st.running);
	SST_SET(g, sched_waiting, (uint32_t)st.waiting);
	SST_SET(g, cache_blocks, (uint32_t)st.cache_blocks);
	SST_SET(g, sessions, (uint32_t)st.sessions);
	SST_SET(g, free_blocks, (uint32_t)st.free_blocks);
	SST_SET(g, n_blocks, (uint32_t)st.n_blocks);
}

/* Set up on the leader's lcore, so that the pool threads, the KV cache and
 * the scheduler's arrays are first touched on the group's node. */
static int sched_start(struct group *g)
{
	struct aw_dispatch *d = g->d;
	const struct aw_dispatch_group_params *p = &g->p;
	const struct aw_model_hparams *hp = aw_model_hparams(g->m);
	uint32_t ctx = d->p.max_prompt_tokens + d->p.max_new_tokens;
	struct aw_sched_config c = {0};
	int rc;

	if (p->n_cpus > 1) {
		rc = aw_pool_new(p->n_cpus, p->cpus, &g->threads);
		if (rc < 0) {
			aw_log(AW_LOG_ERR, "dispatch", "group %u: pool of %u threads: %s", g->idx,
			       p->n_cpus, strerror(-rc));
			return rc;
		}
	}
	g->ctx = hp->n_ctx < 0 || ctx < (uint32_t)hp->n_ctx ? (int32_t)ctx : hp->n_ctx;
	c.max_batch = (int32_t)p->max_batch;
	c.max_batch_tokens = (int32_t)p->max_batch_tokens;
	c.prefill_chunk = (int32_t)p->prefill_chunk;
	c.block_size = (int32_t)p->kv_block_tokens;
	c.kv_type = AW_TYPE_F16; /* as aw-infer: the same numbers offline and served */
	c.ctx = g->ctx;
	c.n_blocks = aw_sched_blocks_for_bytes(g->m, c.block_size, c.kv_type, p->kv_cache);
	c.max_sessions = d->p.max_sessions ? (int32_t)d->p.max_sessions : 1;
	c.session_ttl_us = d->p.session_ttl_us;
	if (c.n_blocks < 1) {
		aw_log(AW_LOG_ERR, "dispatch", "group %u: kv_cache of %llu bytes holds no block",
		       g->idx, (unsigned long long)p->kv_cache);
		return -EINVAL;
	}
	rc = aw_sched_new(g->m, g->tok, g->threads, &c, on_event, g, &g->s);
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "dispatch", "group %u: scheduler: %s", g->idx, strerror(-rc));
		return rc;
	}
	g->ids = malloc(sizeof(int32_t) * ((size_t)d->p.max_prompt_tokens + 1));
	if (!g->ids)
		return -ENOMEM;
	publish_stats(g);
	aw_log(AW_LOG_INFO, "dispatch",
	       "group %u: scheduler on lcore %u with %u threads: max_batch %u, %u tokens per "
	       "step, prefill chunk %u, KV %d blocks of %u positions (F16), context %d",
	       g->idx, p->lcore, p->n_cpus ? p->n_cpus : 1, p->max_batch, p->max_batch_tokens,
	       p->prefill_chunk, c.n_blocks, p->kv_block_tokens, g->ctx);
	return 0;
}

/* The group's model from the engine (at set-up, and after a live swap). */
static int group_take_model(struct group *g, const struct aw_engine *engine, int32_t max_batch,
			    struct aw_err *e)
{
	int rc;

	g->gen = engine->ops->generation ? engine->ops->generation(engine->state) : 0;
	rc = engine->ops->group_model(engine->state, g->idx, g->p.socket, max_batch, &g->m, &g->tok,
				      e);
	if (rc < 0)
		return rc;
	g->n_vocab = aw_model_hparams(g->m)->n_vocab;
	g->n_eos = 0;
	if (aw_tok_eos(g->tok) >= 0)
		g->eos[g->n_eos++] = aw_tok_eos(g->tok);
	if (aw_tok_eot(g->tok) >= 0 && aw_tok_eot(g->tok) != aw_tok_eos(g->tok))
		g->eos[g->n_eos++] = aw_tok_eot(g->tok);
	agent_group_init(g, engine);
	return 0;
}

/* --- live model swap (loader) ---------------------------------------------------
 * The engine has a new model: the leader admits nothing more (requests wait
 * in the ring), lets the running ones finish on the old model, then drops
 * its scheduler and model and starts again on the new one. */
static bool swap_due(const struct group *g)
{
	const struct aw_engine *en = g->d->engine;

	return en->ops->generation && en->ops->generation(en->state) != g->gen;
}

static int sched_swap(struct group *g)
{
	const struct aw_engine *en = g->d->engine;
	const unsigned old = g->gen;
	const uint64_t t0 = aw_dp_now_us();
	struct aw_err e = {0};
	int rc;

	/* the new model first, the old one released once the scheduler no
	 * longer points at it (the engine keeps both meanwhile) */
	rc = group_take_model(g, en, (int32_t)(g->p.max_batch_tokens ? g->p.max_batch_tokens : 512),
			      &e);
	if (rc == 0 && aw_sched_set_model(g->s, g->m, g->tok) < 0) {
		/* another shape: a new scheduler (and KV pool) */
		aw_sched_free(g->s);
		g->s = NULL;
		aw_pool_free(g->threads);
		g->threads = NULL;
		free(g->ids);
		g->ids = NULL;
		rc = sched_start(g);
	}
	if (rc == 0 && en->ops->group_release)
		en->ops->group_release(en->state, g->idx); /* freed later by the main loop */
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "dispatch", "group %u: new model: %s", g->idx,
		       e.msg[0] ? e.msg : strerror(-rc));
		return rc;
	}
	aw_log(AW_LOG_NOTICE, "dispatch", "group %u: model generation %u -> %u in %lu us", g->idx,
	       old, g->gen, (unsigned long)(aw_dp_now_us() - t0));
	return 0;
}
/* --- */

/* The leader's loop: requests in, cancels in, one step, replies out. */
static int sched_main(struct group *g)
{
	struct aw_dispatch *d = g->d;
	unsigned idle = 0;
	int busy = 0, rc;
	void *obj;

	rc = sched_start(g);
	__atomic_store_n(&g->start_rc, rc < 0 ? rc : 1, __ATOMIC_RELEASE);
	if (rc < 0)
		return rc;
	while (!__atomic_load_n(&d->stop, __ATOMIC_ACQUIRE)) {
		unsigned n_in = 0, k0 = g->n_keys;
		const bool swap = swap_due(g); /* live model swap: drain first */

		HEARTBEAT(g);
		while (!swap && n_in < 32 && rte_ring_sc_dequeue(g->ring, &obj) == 0) {
			sched_take_cancels(g);
			sched_submit(g, obj);
			n_in++;
		}
		sched_take_cancels(g);
		if (swap && !busy) {
			if (sched_swap(g) < 0)
				break; /* no model: queued requests end cancelled below */
			continue;
		}
		if (busy || n_in || g->n_keys != k0) {
			busy = aw_sched_step(g->s, aw_sched_now_us());
			publish_stats(g);
			idle = 0;
			continue;
		}
		/* idle: leave the CPU to others as configured. A yielding loop
		 * still takes every time slice nobody else wants, so after ~1000
		 * empty rounds it sleeps too (a shared machine must not see an
		 * idle group as a busy CPU); the pool's threads sleep on a futex */
		++idle;
		if (g->p.idle == AW_DP_IDLE_POLL)
			rte_pause();
		else if (idle < (g->p.idle == AW_DP_IDLE_YIELD ? 1024u : 64u))
			sched_yield();
		else
			usleep(idle < 4096 ? 20 : 200);
	}
	/* stopping: queued requests end with END cancelled, then every request
	 * the scheduler holds (its events free them) */
	while (rte_ring_sc_dequeue(g->ring, &obj) == 0) {
		struct aw_req *r = obj;

		memset(&r->x, 0, sizeof(r->x));
		r->x.g = g;
		r->x.r = r;
		r->x.op = req_op(r);
		end_now(g, r, AW_PROTO_FINISH_CANCELLED, aw_dp_now_us());
	}
	aw_sched_free(g->s);
	g->s = NULL;
	aw_pool_free(g->threads);
	g->threads = NULL;
	return 0;
}

static int worker_main(void *arg)
{
	struct group *g = arg;
	struct aw_dispatch *d = g->d;
	unsigned idle = 0;
	void *obj;

	if (g->m)
		return sched_main(g);
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
		/* queue_depth requests can wait: the request pool holds that many (plus
		 * the running ones), so a full pool is the OVERLOADED limit and the
		 * ring (ring_size >= queue_depth entries) never refuses first */
		unsigned depth = p->group[i].queue_depth && p->group[i].queue_depth < n
					 ? p->group[i].queue_depth
					 : n;

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
		/* worker groups: a model instance per group (engines that have one) */
		if (engine->ops->group_model) {
			struct aw_err e = {0};
			uint32_t mb = g->p.max_batch_tokens ? g->p.max_batch_tokens : 512;

			rc = group_take_model(g, engine, (int32_t)mb, &e);
			if (rc < 0) {
				aw_log(AW_LOG_ERR, "dispatch", "group %u: model: %s", i,
				       e.msg[0] ? e.msg : strerror(-rc));
				goto err;
			}
		}
		snprintf(name, sizeof(name), "aw_reqpool_%u", i);
		/* depth objects can wait; one more per group runs (with a
		 * scheduler: max_batch more run) */
		g->pool = rte_mempool_create(name, depth + 1 + (g->m ? g->p.max_batch : 0),
					     sizeof(struct aw_req) + g->p.max_request, 0, 0, NULL,
					     NULL, NULL, NULL, g->p.socket, 0);
		if (!g->ring || !g->cancel || !g->pool) {
			rc = -rte_errno;
			aw_log(AW_LOG_ERR, "dispatch",
			       "group %u: ring/pool of %u x %u bytes on socket %d: err=%d", i, n,
			       g->p.max_request, g->p.socket, rc);
			goto err;
		}
		aw_log(AW_LOG_INFO, "dispatch",
		       "group %u: leader lcore %u, socket %d, ring %u, queue depth %u, requests "
		       "up to %u bytes",
		       i, g->p.lcore, g->p.socket, n, depth, g->p.max_request);
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
	/* groups with a scheduler set it up on their lcore: wait for them */
	for (unsigned i = 0; i < d->p.n_groups; i++) {
		int rc = 1;

		if (!d->g[i].m)
			continue;
		while ((rc = __atomic_load_n(&d->g[i].start_rc, __ATOMIC_ACQUIRE)) == 0)
			usleep(1000);
		if (rc < 0) {
			aw_dispatch_stop(d);
			return rc;
		}
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
		aw_sched_free(g->s); /* set up but never run */
		aw_grammar_vocab_free(g->gvocab);
		aw_pool_free(g->threads);
		free(g->ids);
	}
	rte_free(d);
}

/* --- live limits (config reload) --- */
void aw_dispatch_set_limits(struct aw_dispatch *d, uint32_t max_new_tokens,
			    uint32_t default_deadline_us)
{
	__atomic_store_n(&d->p.max_new_tokens, max_new_tokens, __ATOMIC_RELAXED);
	__atomic_store_n(&d->p.default_deadline_us, default_deadline_us, __ATOMIC_RELAXED);
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
	ret->sched = x->m != NULL;
#define SST_GET(f) ret->f = __atomic_load_n(&x->sst.f, __ATOMIC_RELAXED)
	SST_GET(steps);
	SST_GET(prefill_tokens);
	SST_GET(decode_tokens);
	SST_GET(cached_tokens);
	SST_GET(admitted);
	SST_GET(preempted);
	SST_GET(deferred);
	SST_GET(cache_evicted);
	SST_GET(sessions_expired);
	SST_GET(sessions_evicted);
	SST_GET(forced_tokens);
	SST_GET(sched_running);
	SST_GET(sched_waiting);
	SST_GET(cache_blocks);
	SST_GET(sessions);
	SST_GET(free_blocks);
	SST_GET(n_blocks);
#undef SST_GET
	ret->pool_threads = x->p.n_cpus > 1 ? x->p.n_cpus : 1;
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
