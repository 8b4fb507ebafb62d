/* test-sched.c — inference/scheduler.c on a tiny llama model (tiny-llama.h):
 * batched generation equals one-at-a-time generation token for token
 * (greedy) with mixed prompt lengths and arrival times; prefix-cache hits
 * (partial and whole-prompt) give the same tokens as misses; a session's
 * second turn equals a fresh request with the whole conversation; deadlines
 * (passed, unreachable by the cost estimate, passing while running), cancel
 * (running and waiting), priority classes with a bounded share for the
 * lower one, KV exhaustion (preemption and recompute give the same tokens; a
 * request larger than the pool ends with ERROR); queue full, bad requests.
 * After every test the KV pool is back to all free. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "gguf.h"
#include "kv.h"
#include "model.h"
#include "scheduler.h"
#include "tiny-llama.h"
#include "tok.h"
#include "sched-check.h"

enum { MAXR = 64, MAXT = 160 };

struct out {
	int32_t tok[MAXT];
	int n;
	int done;
	int order; /* finish order */
	struct aw_sched_event end;
};

struct world {
	void *buf;
	struct aw_gguf *g;
	struct aw_model *m;
	struct out out[MAXR];
	int n_done;
	int first_order[MAXR]; /* request ids by first token */
	int n_first;
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct world *w = ctx;
	struct out *o = &w->out[ev->id];

	assert_true(ev->id < MAXR);
	assert_false(o->done);
	if (ev->token >= 0) {
		if (o->n == 0)
			w->first_order[w->n_first++] = (int)ev->id;
		assert_true(o->n < MAXT);
		o->tok[o->n++] = ev->token;
	}
	if (ev->done) {
		o->done = 1;
		o->order = w->n_done++;
		o->end = *ev;
		o->end.text = NULL;
	}
}

static void open_world(struct world *w, uint32_t type)
{
	struct tiny_cfg c;
	struct aw_err err;
	size_t len;
	struct aw_model_params p = {.max_batch = 32};

	memset(w, 0, sizeof(*w));
	tiny_default(&c);
	c.type = type;
	c.ctx = 256;
	assert_int_equal(tiny_write(&c, NULL, &w->buf, &len), 0);
	assert_int_equal(aw_gguf_parse(w->buf, len, &w->g, &err), 0);
	assert_int_equal(
		aw_model_load(w->g, aw_gguf_data(w->g), aw_gguf_data_size(w->g), &p, &w->m, &err),
		0);
}

static void close_world(struct world *w)
{
	aw_model_free(w->m);
	aw_gguf_close(w->g);
	free(w->buf);
}

/* One sequence alone, straight through the model: the reference. */
static uint32_t kv_type; /* of the reference's cache and the scheduler's */

static int reference(struct world *w, const int32_t *prompt, int n, int max_new, int32_t *out)
{
	const struct aw_model_hparams *hp = aw_model_hparams(w->m);
	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(w->m),
				  .block_size = 8,
				  .max_seqs = 1,
				  .max_seq_len = 256,
				  .type = kv_type};
	struct aw_kv *kv = NULL;
	float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab);
	int32_t pos[32], sq[32] = {0}, t;
	int k = 0;

	assert_non_null(lg);
	assert_int_equal(aw_kv_new(&kc, &kv), 0);
	for (int i = 0; i < n; i += 32) {
		int c = n - i < 32 ? n - i : 32;
		for (int j = 0; j < c; j++)
			pos[j] = i + j;
		struct aw_batch b = {c, prompt + i, pos, sq, NULL};
		assert_int_equal(aw_model_forward(w->m, kv, &b, NULL, lg), 1);
	}
	for (int p = n;; p++) {
		t = 0;
		for (int v = 1; v < hp->n_vocab; v++)
			if (lg[v] > lg[t])
				t = v;
		out[k++] = t;
		if (k == max_new)
			break;
		struct aw_batch b = {1, &t, &p, sq, NULL};
		assert_int_equal(aw_model_forward(w->m, kv, &b, NULL, lg), 1);
	}
	aw_kv_free(kv);
	free(lg);
	return k;
}

static void mkprompt(int32_t *p, int n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;

	for (int i = 0; i < n; i++)
		p[i] = (int32_t)(tiny_rand(&s) % 96);
}

static void req(struct aw_sched_req *r, uint64_t id, const int32_t *tok, int n, int max_new)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->tokens = tok;
	r->n_tokens = n;
	aw_sample_params_default(&r->sample);
	r->sample.max_tokens = max_new;
}

static uint64_t T0;

static void run_idle(struct aw_sched *s, int max_steps)
{
	int i;

	for (i = 0; i < max_steps; i++)
		if (aw_sched_step(s, T0 + (uint64_t)i) == 0)
			break;
	assert_true(i < max_steps);
}

static void expect_ref(struct world *w, int id, const int32_t *prompt, int n, int max_new)
{
	int32_t ref[MAXT];
	int k = reference(w, prompt, n, max_new, ref);

	assert_true(w->out[id].done);
	assert_int_equal(w->out[id].end.finish, AW_SCHED_FINISH_LENGTH);
	assert_int_equal(w->out[id].n, k);
	assert_memory_equal(w->out[id].tok, ref, sizeof(int32_t) * (size_t)k);
}

static void batched_equals_single_type(uint32_t type, uint32_t kvt)
{
	static const int lens[] = {1, 5, 17, 33, 40, 9, 64, 3, 24, 8};
	enum { N = sizeof(lens) / sizeof(lens[0]), GEN = 12 };
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 4,
				    .max_batch_tokens = 32,
				    .prefill_chunk = 8,
				    .block_size = 8,
				    .ctx = 256,
				    .kv_type = kvt};
	int32_t prompts[N][64];
	struct aw_sched_req r;
	int next = 0;

	open_world(&w, type);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	for (int i = 0; i < N; i++)
		mkprompt(prompts[i], lens[i], (uint64_t)i + 100);
	/* arrivals spread over the steps: request i arrives at step 2i */
	for (int step = 0; step < 1000; step++) {
		while (next < N && step >= 2 * next) {
			req(&r, (uint64_t)next, prompts[next], lens[next], GEN);
			assert_int_equal(aw_sched_submit(s, &r), 0);
			next++;
		}
		if (aw_sched_step(s, T0 + (uint64_t)step) == 0 && next == N)
			break;
	}
	for (int i = 0; i < N; i++)
		expect_ref(&w, i, prompts[i], lens[i], GEN);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_batched_equals_single(void **state)
{
	(void)state;
	batched_equals_single_type(AW_TYPE_F32, AW_TYPE_F32);
	batched_equals_single_type(AW_TYPE_Q8_0, AW_TYPE_F32);
	kv_type = AW_TYPE_F16;
	batched_equals_single_type(AW_TYPE_Q8_0, AW_TYPE_F16);
	kv_type = AW_TYPE_F32;
}

static void test_prefix_cache(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {
		.max_batch = 4, .prefill_chunk = 16, .block_size = 8, .ctx = 256};
	int32_t a[60], b[60];
	struct aw_sched_req r;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	mkprompt(a, 60, 1);
	memcpy(b, a, sizeof(int32_t) * 43); /* shares 5 full blocks and 3 tokens */
	mkprompt(b + 43, 17, 2);

	req(&r, 0, a, 50, 10);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(w.out[0].end.cached_tokens, 0);
	aw_sched_get_stats(s, &st);
	assert_true(st.cache_blocks >= 6); /* 50 prompt + 9 computed decode positions */

	req(&r, 1, b, 60, 10); /* partial hit: 5 blocks */
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 2, a, 48, 10); /* whole prompt cached: 6 blocks, last position recomputed */
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 3, a, 50, 10); /* same as request 0 */
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(w.out[1].end.cached_tokens, 40);
	assert_int_equal(w.out[2].end.cached_tokens, 47);
	assert_int_equal(w.out[3].end.cached_tokens, 48);
	expect_ref(&w, 0, a, 50, 10);
	expect_ref(&w, 1, b, 60, 10);
	expect_ref(&w, 2, a, 48, 10);
	expect_ref(&w, 3, a, 50, 10);
	/* request 0's generated tokens are cached too: prompt + its output */
	int32_t ab[64];
	memcpy(ab, a, sizeof(int32_t) * 50);
	memcpy(ab + 50, w.out[0].tok, sizeof(int32_t) * 10);
	req(&r, 4, ab, 60, 4);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(w.out[4].end.cached_tokens, 56);
	expect_ref(&w, 4, ab, 60, 4);
	check_empty(s);
	aw_sched_free(s);

	/* with the cache off, nothing is reused and the tokens are the same */
	memset(w.out, 0, sizeof(w.out));
	c.no_prefix_cache = 1;
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	for (int i = 0; i < 2; i++) {
		req(&r, (uint64_t)i, b, 60, 10);
		assert_int_equal(aw_sched_submit(s, &r), 0);
		run_idle(s, 200);
		assert_int_equal(w.out[i].end.cached_tokens, 0);
		expect_ref(&w, i, b, 60, 10);
	}
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_session(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 4,
				    .prefill_chunk = 16,
				    .block_size = 8,
				    .ctx = 256,
				    .session_ttl_us = 1000000};
	int32_t p1[21], p2[13], all[64];
	struct aw_sched_req r;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	mkprompt(p1, 21, 5);
	mkprompt(p2, 13, 6);
	req(&r, 0, p1, 21, 7);
	r.session = 77;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	aw_sched_get_stats(s, &st);
	assert_int_equal(st.sessions, 1);
	/* the second turn carries only the new text */
	req(&r, 1, p2, 13, 7);
	r.session = 77;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	memcpy(all, p1, sizeof(p1));
	memcpy(all + 21, w.out[0].tok, sizeof(int32_t) * 7);
	memcpy(all + 28, p2, sizeof(p2));
	expect_ref(&w, 0, p1, 21, 7);
	expect_ref(&w, 1, all, 41, 7);
	assert_int_equal(w.out[1].end.prompt_tokens, 41);
	assert_int_equal(w.out[1].end.cached_tokens, 27); /* all but the last sampled token */

	/* a fresh request with the whole conversation gives the same tokens */
	req(&r, 2, all, 41, 7);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_memory_equal(w.out[2].tok, w.out[1].tok, sizeof(int32_t) * 7);

	/* expiry by TTL: a step far in the future drops the idle session */
	aw_sched_step(s, T0 + 10000000);
	aw_sched_get_stats(s, &st);
	assert_int_equal(st.sessions, 0);
	assert_int_equal(st.sessions_expired, 1);

	/* a turn submitted while its session was held carries only the new
	 * text: when the session goes (here a flush) before it is admitted, it
	 * ends with ERROR -ENOENT without running, never on the bare turn */
	req(&r, 3, p1, 21, 7);
	r.session = 78;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(w.out[3].end.finish, AW_SCHED_FINISH_LENGTH);
	assert_int_equal(w.out[3].end.error, 0);
	req(&r, 4, p2, 13, 7);
	r.session = 78;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	aw_sched_flush(s);
	run_idle(s, 200);
	assert_true(w.out[4].done);
	assert_int_equal(w.out[4].end.finish, AW_SCHED_FINISH_ERROR);
	assert_int_equal(w.out[4].end.error, -ENOENT);
	assert_int_equal(w.out[4].n, 0);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_deadline(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 2, .block_size = 8, .ctx = 256};
	int32_t p[10];
	struct aw_sched_req r;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	mkprompt(p, 10, 9);
	/* passed before the first step: ends without prefill */
	req(&r, 0, p, 10, 5);
	r.deadline_us = T0 + 5;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	aw_sched_step(s, T0 + 10);
	aw_sched_get_stats(s, &st);
	assert_true(w.out[0].done);
	assert_int_equal(w.out[0].end.finish, AW_SCHED_FINISH_DEADLINE);
	assert_int_equal(w.out[0].n, 0);
	assert_int_equal(st.prefill_tokens, 0);

	/* passing while running: ends at a step boundary with what it has */
	req(&r, 1, p, 10, 50);
	r.deadline_us = T0 + 1000;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	for (int i = 0; i < 5; i++)
		aw_sched_step(s, T0 + 20 + (uint64_t)i);
	assert_false(w.out[1].done);
	assert_int_equal(w.out[1].n, 5);
	aw_sched_step(s, T0 + 1000);
	assert_true(w.out[1].done);
	assert_int_equal(w.out[1].end.finish, AW_SCHED_FINISH_DEADLINE);
	assert_int_equal(w.out[1].n, 5);
	check_empty(s);
	aw_sched_free(s);

	/* cannot be met by the estimate: 1 s per prompt token assumed, 10
	 * tokens, 5 s left: refused before prefill; no deadline: runs */
	c.cost_hint_us_per_tok = 1e6;
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	req(&r, 2, p, 10, 3);
	r.deadline_us = T0 + 5000000;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 3, p, 10, 3);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 4, p, 10, 3); /* 30 s left: fine */
	r.deadline_us = T0 + 30000000;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 100);
	assert_int_equal(w.out[2].end.finish, AW_SCHED_FINISH_DEADLINE);
	assert_int_equal(w.out[2].n, 0);
	assert_int_equal(w.out[2].end.prompt_tokens, 10);
	expect_ref(&w, 3, p, 10, 3);
	expect_ref(&w, 4, p, 10, 3);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_cancel(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 1, .block_size = 8, .ctx = 256};
	int32_t p[12];
	struct aw_sched_req r;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	mkprompt(p, 12, 3);
	req(&r, 0, p, 12, 40);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 1, p, 12, 40); /* waits: one slot */
	assert_int_equal(aw_sched_submit(s, &r), 0);
	for (int i = 0; i < 4; i++)
		aw_sched_step(s, T0 + (uint64_t)i);
	assert_int_equal(w.out[0].n, 4);
	assert_int_equal(aw_sched_cancel(s, 0), 0);
	assert_int_equal(aw_sched_cancel(s, 1), 0);
	assert_int_equal(aw_sched_cancel(s, 99), 0); /* unknown: ignored */
	aw_sched_step(s, T0 + 10);
	assert_int_equal(w.out[0].end.finish, AW_SCHED_FINISH_CANCELLED);
	assert_int_equal(w.out[0].n, 4);
	assert_int_equal(w.out[1].end.finish, AW_SCHED_FINISH_CANCELLED);
	assert_int_equal(w.out[1].n, 0);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_priority(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 1, .block_size = 8, .ctx = 256, .low_share = 3};
	int32_t p[6];
	struct aw_sched_req r;
	/* ids 0-2 normal, 3-8 high, all queued before the first step */
	static const int want[] = {3, 4, 0, 5, 6, 1, 7, 8, 2};

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	mkprompt(p, 6, 4);
	for (int i = 0; i < 9; i++) {
		req(&r, (uint64_t)i, p, 6, 2);
		r.priority = i >= 3;
		assert_int_equal(aw_sched_submit(s, &r), 0);
	}
	run_idle(s, 200);
	assert_int_equal(w.n_first, 9);
	for (int i = 0; i < 9; i++)
		assert_int_equal(w.first_order[i], want[i]);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_kv_exhaustion(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	/* 12 blocks of 8: four sequences of 20 + 20 tokens need 20 */
	struct aw_sched_config c = {
		.max_batch = 4, .prefill_chunk = 8, .block_size = 8, .ctx = 256, .n_blocks = 12};
	int32_t p[4][20];
	struct aw_sched_req r;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	for (int i = 0; i < 4; i++) {
		mkprompt(p[i], 20, 40 + (uint64_t)i);
		req(&r, (uint64_t)i, p[i], 20, 20);
		r.priority = i == 3; /* the newest is high: never the victim */
		assert_int_equal(aw_sched_submit(s, &r), 0);
	}
	run_idle(s, 2000);
	aw_sched_get_stats(s, &st);
	assert_true(st.preempted > 0);
	assert_int_equal(w.out[3].end.preemptions, 0);
	for (int i = 0; i < 4; i++)
		expect_ref(&w, i, p[i], 20, 20);
	check_empty(s);
	aw_sched_free(s);

	/* one request larger than the whole pool: ERROR, no crash */
	memset(w.out, 0, sizeof(w.out));
	c.n_blocks = 3;
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	req(&r, 0, p[0], 20, 20);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	int32_t big[40];
	mkprompt(big, 40, 8);
	req(&r, 1, big, 40, 2);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(w.out[0].end.finish, AW_SCHED_FINISH_ERROR);
	assert_true(w.out[0].n >= 4); /* 24 positions: 20 prompt + decode */
	assert_int_equal(w.out[1].end.finish, AW_SCHED_FINISH_ERROR);
	assert_int_equal(w.out[1].n, 0);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static void test_refusals(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 2, .block_size = 8, .ctx = 64, .queue_size = 2};
	int32_t p[80] = {0};
	struct aw_sched_req r;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	c.queue_size = 3;
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), -EINVAL);
	c.queue_size = 2;
	/* tiny model: 2 layers x 2 (K, V) x 8 positions x kv_dim 32 x 4 bytes */
	assert_int_equal(aw_sched_blocks_for_bytes(w.m, 8, AW_TYPE_F32, 4096), 1);
	assert_int_equal(aw_sched_blocks_for_bytes(w.m, 8, AW_TYPE_F32, 4095), 0);
	assert_int_equal(aw_sched_blocks_for_bytes(w.m, 0, AW_TYPE_F32, 1u << 20), 128);
	assert_int_equal(aw_sched_blocks_for_bytes(w.m, 0, AW_TYPE_F16, 1u << 20), 256);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	req(&r, 0, p, 0, 2);
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	req(&r, 0, p, 64, 2);
	assert_int_equal(aw_sched_submit(s, &r), -E2BIG);
	p[3] = 96;
	req(&r, 0, p, 5, 2);
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	p[3] = 1;
	req(&r, 0, p, 5, 2);
	r.sample.min_p = 2.0f;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	req(&r, 0, p, 5, 2);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 1, p, 5, 2);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	req(&r, 2, p, 5, 2);
	assert_int_equal(aw_sched_submit(s, &r), -EAGAIN); /* queue full: OVERLOADED */
	assert_int_equal(aw_sched_cancel(s, 0), -EAGAIN);
	run_idle(s, 100);
	assert_true(w.out[0].done && w.out[1].done && !w.out[2].done);
	aw_sched_get_stats(s, &st);
	assert_int_equal(st.finished[AW_SCHED_FINISH_LENGTH], 2);
	/* freeing with requests in flight ends them CANCELLED */
	req(&r, 3, p, 5, 20);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	aw_sched_step(s, T0);
	req(&r, 4, p, 5, 20);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	aw_sched_free(s);
	assert_int_equal(w.out[3].end.finish, AW_SCHED_FINISH_CANCELLED);
	assert_int_equal(w.out[4].end.finish, AW_SCHED_FINISH_CANCELLED);
	close_world(&w);
}

struct text {
	char buf[4096];
	size_t len;
	struct aw_sched_event end;
};

static void text_event(void *ctx, const struct aw_sched_event *ev)
{
	struct text *t = &((struct text *)ctx)[ev->id];

	assert_true(t->len + ev->len < sizeof(t->buf));
	memcpy(t->buf + t->len, ev->text, ev->len);
	t->len += ev->len;
	if (ev->done)
		t->end = *ev;
}

/* Text through the tokenizer's streaming decoder, and stop strings: a
 * request stopped by a string from the middle of another's text emits
 * exactly the text before that string's first occurrence. */
static void test_text_stop(void **state)
{
	struct tiny_cfg tc;
	struct aw_err err;
	void *buf;
	size_t len;
	struct aw_gguf *g = NULL;
	struct aw_model *m = NULL;
	struct aw_tok *tok = NULL;
	struct aw_model_params mp = {.max_batch = 32};
	struct aw_sched_config c = {.max_batch = 2, .block_size = 8, .ctx = 128};
	struct aw_sched *s = NULL;
	static struct text t[2];
	int32_t p[9];
	struct aw_sched_req r;
	char stop[5];

	(void)state;
	memset(t, 0, sizeof(t));
	tiny_default(&tc);
	tc.with_tokenizer = 1;
	assert_int_equal(tiny_write(&tc, NULL, &buf, &len), 0);
	assert_int_equal(aw_gguf_parse(buf, len, &g, &err), 0);
	assert_int_equal(aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &mp, &m, &err), 0);
	assert_int_equal(aw_tok_new_from_gguf(g, &tok, &err), 0);
	assert_int_equal(aw_sched_new(m, tok, NULL, &c, text_event, t, &s), 0);
	mkprompt(p, 9, 77);
	req(&r, 0, p, 9, 40);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(t[0].end.finish, AW_SCHED_FINISH_LENGTH);
	assert_true(t[0].len >= 12);
	memcpy(stop, t[0].buf + t[0].len / 2, 4);
	stop[4] = '\0';
	const char *at = memmem(t[0].buf, t[0].len, stop, 4);
	assert_non_null(at);
	req(&r, 1, p, 9, 40);
	r.sample.n_stop = 1;
	r.sample.stop[0] = stop;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 200);
	assert_int_equal(t[1].end.finish, AW_SCHED_FINISH_STOP);
	assert_int_equal(t[1].len, (size_t)(at - t[0].buf));
	assert_memory_equal(t[1].buf, t[0].buf, t[1].len);
	check_empty(s);
	aw_sched_free(s);
	aw_tok_free(tok);
	aw_model_free(m);
	aw_gguf_close(g);
	free(buf);
}

/* The cache under memory pressure: blocks evicted LRU (parents before their
 * children, which then never match), outputs unchanged. */
static void test_cache_eviction(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {
		.max_batch = 1, .prefill_chunk = 16, .block_size = 8, .ctx = 256, .n_blocks = 8};
	int32_t p[6][40];
	struct aw_sched_req r;
	struct aw_sched_stats st;
	int id = 0;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	for (int i = 0; i < 6; i++) {
		mkprompt(p[i], 40, 200 + (uint64_t)i);
		if (i % 2)
			memcpy(p[i], p[i - 1], sizeof(int32_t) * 16); /* shares 2 blocks */
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 6; i++) {
			req(&r, (uint64_t)id, p[i], 40, 6);
			assert_int_equal(aw_sched_submit(s, &r), 0);
			run_idle(s, 200);
			expect_ref(&w, id, p[i], 40, 6);
			id++;
		}
	aw_sched_get_stats(s, &st);
	assert_true(st.cache_evicted > 0);
	assert_true(st.cached_tokens > 0);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

/* The input queue with several producer threads: every request is taken
 * once and ends once. */
struct producer {
	struct aw_sched *s;
	const int32_t *p;
	int base, n;
};

static void *produce(void *arg)
{
	struct producer *pr = arg;
	struct aw_sched_req r;

	for (int i = 0; i < pr->n; i++) {
		req(&r, (uint64_t)(pr->base + i), pr->p, 3, 1);
		while (aw_sched_submit(pr->s, &r) == -EAGAIN)
			sched_yield(); /* full: the consumer is behind */
	}
	return NULL;
}

struct counter {
	int done[4 * 64];
	int n;
};

static void count_event(void *ctx, const struct aw_sched_event *ev)
{
	struct counter *c = ctx;

	if (ev->done && ev->id < 4 * 64) {
		c->done[ev->id]++;
		c->n++;
	}
}

static void test_producers(void **state)
{
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 8, .block_size = 8, .ctx = 64, .queue_size = 16};
	struct counter cnt = {0};
	struct producer pr[4];
	pthread_t th[4];
	int32_t p[3] = {1, 2, 3};

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, count_event, &cnt, &s), 0);
	for (int i = 0; i < 4; i++) {
		pr[i] = (struct producer){s, p, i * 64, 64};
		assert_int_equal(pthread_create(&th[i], NULL, produce, &pr[i]), 0);
	}
	for (uint64_t i = 0; cnt.n < 4 * 64; i++)
		aw_sched_step(s, T0 + i);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(cnt.n, 4 * 64);
	for (int i = 0; i < 4 * 64; i++)
		assert_int_equal(cnt.done[i], 1);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

/* kv.h additions: references held outside sequences, attach. */
static void test_kv_attach(void **state)
{
	struct aw_kv_config kc = {.n_layer = 1,
				  .kv_dim = 2,
				  .block_size = 4,
				  .max_seqs = 2,
				  .max_seq_len = 16,
				  .n_blocks = 4};
	struct aw_kv *kv = NULL;
	int32_t bl[2];

	(void)state;
	assert_int_equal(aw_kv_new(&kc, &kv), 0);
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 6), 0);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 6), 0);
	assert_int_equal(aw_kv_seq_n_blocks(kv, 0), 2);
	memcpy(bl, aw_kv_seq_blocks(kv, 0), sizeof(bl));
	assert_int_equal(aw_kv_block_ref(kv, bl[0]), 0);
	assert_int_equal(aw_kv_block_refs(kv, bl[0]), 2);
	aw_kv_seq_clear(kv, 0);
	assert_int_equal(aw_kv_free_blocks(kv), 3); /* bl[0] held by the extra reference */
	assert_int_equal(aw_kv_block_ref(kv, bl[1]), -EINVAL); /* free block */
	assert_int_equal(aw_kv_block_unref(kv, 99), -EINVAL);
	/* attach: count must match the positions, blocks must be in use */
	assert_int_equal(aw_kv_seq_attach(kv, 1, bl, 2, 4), -EINVAL);
	assert_int_equal(aw_kv_seq_attach(kv, 1, bl, 1, 4), 0);
	assert_int_equal(aw_kv_seq_len(kv, 1), 4);
	assert_int_equal(aw_kv_block_refs(kv, bl[0]), 2);
	/* writing position 3 of the shared block copies it */
	assert_int_equal(aw_kv_seq_drop(kv, 1, 1), 0);
	assert_int_equal(aw_kv_seq_reserve(kv, 1, 4), 0);
	assert_true(aw_kv_seq_blocks(kv, 1)[0] != bl[0]);
	assert_int_equal(aw_kv_block_refs(kv, bl[0]), 1);
	aw_kv_seq_clear(kv, 1);
	assert_int_equal(aw_kv_block_unref(kv, bl[0]), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 4);
	aw_kv_free(kv);
}

/* Everything at once, from a seeded generator: arrivals over time, shared
 * prefixes, two classes, sessions, cancels, deadlines, a pool that forces
 * eviction and preemption. Every request ends exactly once; the greedy
 * output of each plain request (no session, not cancelled, no deadline)
 * equals the one-at-a-time reference; the pool ends empty. */
static void test_stress(void **state)
{
	enum { N = 48 };
	struct world w;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 4,
				    .max_batch_tokens = 24,
				    .prefill_chunk = 8,
				    .block_size = 8,
				    .ctx = 128,
				    .n_blocks = 14,
				    .max_sessions = 2,
				    .low_share = 2};
	static int32_t base[3][40], prompt[N][40];
	int len[N], gen[N], at[N], cancel_at[N], plain[N];
	uint64_t rs = 12345;
	struct aw_sched_req r;
	struct aw_sched_stats st;
	int next = 0;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	assert_int_equal(aw_sched_new(w.m, NULL, NULL, &c, on_event, &w, &s), 0);
	for (int i = 0; i < 3; i++)
		mkprompt(base[i], 40, 500 + (uint64_t)i);
	for (int i = 0; i < N; i++) {
		len[i] = 1 + (int)(tiny_rand(&rs) % 40);
		int shared = (int)(tiny_rand(&rs) % (uint64_t)(len[i] + 1));
		memcpy(prompt[i], base[tiny_rand(&rs) % 3], sizeof(int32_t) * (size_t)shared);
		mkprompt(prompt[i] + shared, len[i] - shared, 900 + (uint64_t)i);
		gen[i] = 1 + (int)(tiny_rand(&rs) % 12);
		at[i] = i * 3 + (int)(tiny_rand(&rs) % 3);
		cancel_at[i] = tiny_rand(&rs) % 10 == 0 ? at[i] + (int)(tiny_rand(&rs) % 8) : -1;
	}
	for (int step = 0; step < 100000; step++) {
		const uint64_t now = T0 + (uint64_t)step * 1000;
		while (next < N && step >= at[next]) {
			const int i = next++;
			req(&r, (uint64_t)i, prompt[i], len[i], gen[i]);
			r.priority = (int)(tiny_rand(&rs) % 2);
			if (tiny_rand(&rs) % 5 == 0)
				r.session = 1 + tiny_rand(&rs) % 3;
			if (tiny_rand(&rs) % 10 == 0)
				r.deadline_us = now + 1000 * (1 + tiny_rand(&rs) % 10);
			plain[i] = !r.session && !r.deadline_us && cancel_at[i] < 0;
			assert_int_equal(aw_sched_submit(s, &r), 0);
		}
		for (int i = 0; i < next; i++)
			if (cancel_at[i] == step)
				assert_int_equal(aw_sched_cancel(s, (uint64_t)i), 0);
		if (aw_sched_step(s, now) == 0 && next == N)
			break;
	}
	for (int i = 0; i < N; i++) {
		assert_true(w.out[i].done); /* on_event checks "at most once" */
		if (plain[i])
			expect_ref(&w, i, prompt[i], len[i], gen[i]);
		else
			assert_true(w.out[i].end.finish != AW_SCHED_FINISH_STOP);
	}
	aw_sched_get_stats(s, &st);
	print_message("# stress: %llu preempted, %llu cache blocks evicted, %llu sessions evicted, "
		      "%llu cached tokens, finished stop/length/deadline/cancelled/error "
		      "%llu/%llu/%llu/%llu/%llu\n",
		      (unsigned long long)st.preempted, (unsigned long long)st.cache_evicted,
		      (unsigned long long)st.sessions_evicted, (unsigned long long)st.cached_tokens,
		      (unsigned long long)st.finished[0], (unsigned long long)st.finished[1],
		      (unsigned long long)st.finished[2], (unsigned long long)st.finished[3],
		      (unsigned long long)st.finished[4]);
	assert_true(st.cached_tokens > 0);
	assert_true(st.preempted > 0);
	assert_true(st.cache_evicted > 0);
	assert_true(st.finished[AW_SCHED_FINISH_CANCELLED] > 0);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

/* --- live model swap (loader): aw_sched_set_model --- */
static void open_world_seed(struct world *w, uint64_t seed, uint32_t dim)
{
	struct tiny_cfg c;
	struct aw_err err;
	size_t len;
	struct aw_model_params p = {.max_batch = 32};

	memset(w, 0, sizeof(*w));
	tiny_default(&c);
	c.ctx = 256;
	c.seed = seed;
	c.dim = dim;
	assert_int_equal(tiny_write(&c, NULL, &w->buf, &len), 0);
	assert_int_equal(aw_gguf_parse(w->buf, len, &w->g, &err), 0);
	assert_int_equal(
		aw_model_load(w->g, aw_gguf_data(w->g), aw_gguf_data_size(w->g), &p, &w->m, &err),
		0);
}

/* A scheduler moved to another model of the same shape answers with that
 * model, bit for bit, even for a prompt its prefix cache held from the old
 * one; it refuses while busy and for another shape. */
static void test_set_model(void **state)
{
	enum { N = 40, GEN = 8 };
	struct world wa, wb, wc;
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = 4,
				    .max_batch_tokens = 32,
				    .prefill_chunk = 8,
				    .block_size = 8,
				    .ctx = 256};
	struct aw_sched_req r;
	int32_t prompt[N], ref[MAXT];

	(void)state;
	kv_type = AW_TYPE_F32;
	open_world_seed(&wa, 1, 64);
	open_world_seed(&wb, 2, 64);
	open_world_seed(&wc, 1, 128);
	mkprompt(prompt, N, 5);
	assert_int_equal(aw_sched_new(wa.m, NULL, NULL, &c, on_event, &wa, &s), 0);
	req(&r, 0, prompt, N, GEN);
	assert_int_equal(aw_sched_submit(s, &r), 0);
	assert_true(aw_sched_step(s, T0) > 0);
	assert_int_equal(aw_sched_set_model(s, wb.m, NULL), -EBUSY);
	run_idle(s, 1000);
	expect_ref(&wa, 0, prompt, N, GEN);

	assert_int_equal(aw_sched_set_model(s, wc.m, NULL), -EINVAL); /* another width */
	assert_int_equal(aw_sched_set_model(s, wb.m, NULL), 0);
	req(&r, 1, prompt, N, GEN); /* the old model's prefix cache must not serve it */
	assert_int_equal(aw_sched_submit(s, &r), 0);
	run_idle(s, 1000);
	int k = reference(&wb, prompt, N, GEN, ref);
	assert_true(wa.out[1].done);
	assert_int_equal(wa.out[1].n, k);
	assert_memory_equal(wa.out[1].tok, ref, sizeof(int32_t) * (size_t)k);
	assert_memory_not_equal(wa.out[1].tok, wa.out[0].tok, sizeof(int32_t) * (size_t)k);
	check_empty(s);
	aw_sched_free(s);
	close_world(&wa);
	close_world(&wb);
	close_world(&wc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batched_equals_single),
		cmocka_unit_test(test_prefix_cache),
		cmocka_unit_test(test_session),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_priority),
		cmocka_unit_test(test_kv_exhaustion),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_cache_eviction),
		cmocka_unit_test(test_producers),
		cmocka_unit_test(test_kv_attach),
		cmocka_unit_test(test_text_stop),
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_set_model),
	};

	T0 = aw_sched_now_us();
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
