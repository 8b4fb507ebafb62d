/* test-score.c — CLASSIFY and EMBED (inference/score.c and their request
 * kinds in inference/scheduler.c) on a tiny llama model (tiny-llama.h):
 *   - aw_model_forward_ex's hidden states and aw_model_logits_rows() agree
 *     with the full logits (same kernels: equal to the bit);
 *   - pooling (mean, cls, last) and L2 normalisation by hand;
 *   - the scheduler's EMBED equals aw_score_embed() for every pooling, with
 *     generation and a warm prefix cache around it;
 *   - the scheduler's CLASSIFY (single-token labels: rows only; several
 *     tokens: forked lanes in batched passes, more lanes than sequence slots,
 *     labels longer than a pass) equals aw_score_classify(), which prefills
 *     prompt + label from scratch for each label; a repeated prompt is read
 *     from the prefix cache;
 *   - bad requests are refused; the KV pool is all free afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "kv.h"
#include "model.h"
#include "scheduler.h"
#include "score.h"
#include "tiny-llama.h"
#include "sched-check.h"

enum { MAXR = 32, DIM = 64 };

struct out {
	int done;
	struct aw_sched_event end;
	float vals[AW_SCHED_MAX_LABELS > DIM ? AW_SCHED_MAX_LABELS : DIM];
	int n_tok;
	int32_t toks[8]; /* the first generated tokens */
};

struct world {
	void *buf;
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_kv *kv; /* for the direct references */
	struct out out[MAXR];
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct world *w = ctx;
	struct out *o;

	assert_true(ev->id < MAXR);
	o = &w->out[ev->id];
	assert_false(o->done);
	if (ev->token >= 0 && o->n_tok < 8)
		o->toks[o->n_tok] = ev->token;
	if (ev->token >= 0)
		o->n_tok++;
	if (ev->done) {
		o->done = 1;
		o->end = *ev;
		o->end.text = NULL;
		assert_true(ev->n_values <= (int32_t)(sizeof(o->vals) / sizeof(o->vals[0])));
		if (ev->n_values > 0)
			memcpy(o->vals, ev->values, sizeof(float) * (size_t)ev->n_values);
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
	const struct aw_model_hparams *hp = aw_model_hparams(w->m);
	assert_int_equal(hp->dim, DIM);
	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(w->m),
				  .block_size = 8,
				  .max_seqs = 1,
				  .max_seq_len = 256};
	assert_int_equal(aw_kv_new(&kc, &w->kv), 0);
}

static void close_world(struct world *w)
{
	aw_kv_free(w->kv);
	aw_model_free(w->m);
	aw_gguf_close(w->g);
	free(w->buf);
}

static void mkprompt(int32_t *p, int n, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 7;

	for (int i = 0; i < n; i++)
		p[i] = (int32_t)(tiny_rand(&s) % 96);
}

/* hidden states + rows of the output matrix == full logits */
static void hidden_rows_type(uint32_t type)
{
	struct world w;
	int32_t p[20], pos[20], sq[20] = {0};
	int8_t fl[20];
	const int32_t rows[] = {0, 5, 17, 95, 94, 33, 16, 15};
	float *lg = malloc(sizeof(float) * 96 * 20), h[20 * DIM], part[8];

	assert_non_null(lg);
	open_world(&w, type);
	mkprompt(p, 20, 3);
	for (int i = 0; i < 20; i++) {
		pos[i] = i;
		fl[i] = (int8_t)(i % 3 == 0   ? AW_MODEL_OUT_LOGITS | AW_MODEL_OUT_HIDDEN
				 : i % 3 == 1 ? AW_MODEL_OUT_HIDDEN
					      : 0);
	}
	struct aw_batch b = {20, p, pos, sq, fl};
	int n_l = aw_model_forward_ex(w.m, w.kv, &b, NULL, lg, h);
	assert_int_equal(n_l, 7); /* i = 0, 3, ..., 18 */
	/* hidden row k belongs to token: 0,1,3,4,6,7,... (i % 3 != 2) */
	int hk = 0, lk = 0;
	for (int i = 0; i < 20; i++) {
		if (i % 3 == 2)
			continue;
		if (i % 3 == 0) {
			assert_int_equal(
				aw_model_logits_rows(w.m, h + (size_t)hk * DIM, rows, 8, part), 0);
			for (int j = 0; j < 8; j++)
				assert_true(part[j] == lg[(size_t)lk * 96 + (size_t)rows[j]]);
			lk++;
		}
		hk++;
	}
	assert_int_equal(hk, 14);
	/* the same tokens again without hidden output: same logits */
	float *lg2 = malloc(sizeof(float) * 96 * 20);
	assert_non_null(lg2);
	aw_kv_seq_clear(w.kv, 0);
	for (int i = 0; i < 20; i++)
		fl[i] = (int8_t)(i % 3 == 0);
	assert_int_equal(aw_model_forward(w.m, w.kv, &b, NULL, lg2), 7);
	assert_memory_equal(lg, lg2, sizeof(float) * 96 * 7);
	const int32_t bad = 96;
	assert_int_equal(aw_model_logits_rows(w.m, h, &bad, 1, part), -EINVAL);
	free(lg2);
	free(lg);
	close_world(&w);
}

static void test_hidden_rows(void **state)
{
	(void)state;
	hidden_rows_type(AW_TYPE_F32);
	hidden_rows_type(AW_TYPE_Q8_0);
	hidden_rows_type(AW_TYPE_Q4_0);
}

static void test_pooling(void **state)
{
	struct world w;
	int32_t p[13], pos[13], sq[13] = {0};
	int8_t fl[13];
	float h[13 * DIM], e[DIM], want[DIM];

	(void)state;
	open_world(&w, AW_TYPE_Q8_0);
	mkprompt(p, 13, 9);
	for (int i = 0; i < 13; i++) {
		pos[i] = i;
		fl[i] = AW_MODEL_OUT_HIDDEN;
	}
	struct aw_batch b = {13, p, pos, sq, fl};
	assert_int_equal(aw_model_forward_ex(w.m, w.kv, &b, NULL, NULL, h), 0);
	aw_kv_seq_clear(w.kv, 0);
	for (int pool = 0; pool < AW_SCORE_POOL_MAX_; pool++) {
		for (int norm = 0; norm < 2; norm++) {
			double ss = 0;
			for (int i = 0; i < DIM; i++) {
				double v = 0;
				if (pool == AW_SCORE_POOL_MEAN) {
					for (int t = 0; t < 13; t++)
						v += h[t * DIM + i];
					v /= 13;
				} else {
					v = h[(pool == AW_SCORE_POOL_CLS ? 0 : 12) * DIM + i];
				}
				want[i] = (float)v;
				ss += v * v;
			}
			assert_true(ss > 0);
			if (norm)
				for (int i = 0; i < DIM; i++)
					want[i] = (float)(want[i] / sqrt(ss));
			assert_int_equal(aw_score_embed(w.m, w.kv, NULL, p, 13,
							(enum aw_score_pool)pool, norm, e),
					 0);
			double n2 = 0;
			for (int i = 0; i < DIM; i++) {
				assert_float_equal(e[i], want[i], 1e-5 * (1 + fabsf(want[i])));
				n2 += (double)e[i] * e[i];
			}
			if (norm)
				assert_float_equal(n2, 1.0, 1e-5);
		}
	}
	assert_int_equal(aw_score_embed(w.m, w.kv, NULL, p, 0, AW_SCORE_POOL_MEAN, 1, e), -EINVAL);
	assert_int_equal(aw_score_embed(w.m, w.kv, NULL, p, 3, (enum aw_score_pool)7, 1, e),
			 -EINVAL);
	assert_string_equal(aw_score_pool_name(AW_SCORE_POOL_CLS), "cls");
	assert_int_equal(aw_score_pool_parse("last"), AW_SCORE_POOL_LAST);
	assert_int_equal(aw_score_pool_parse("max"), -EINVAL);
	/* normalisation over the candidates */
	const double lp[3] = {log(0.2), log(0.3), log(0.1)};
	float pr[3];
	aw_score_normalize(lp, 3, pr);
	assert_float_equal(pr[0], 1.0 / 3, 1e-6);
	assert_float_equal(pr[1], 0.5, 1e-6);
	close_world(&w);
}

static struct aw_sched *new_sched_fold(struct world *w, int32_t max_batch, int32_t max_tokens,
				       int32_t chunk, int fold)
{
	struct aw_sched *s = NULL;
	struct aw_sched_config c = {.max_batch = max_batch,
				    .max_batch_tokens = max_tokens,
				    .prefill_chunk = chunk,
				    .block_size = 8,
				    .ctx = 256,
				    .no_classify_fold = !fold};

	assert_int_equal(aw_sched_new(w->m, NULL, NULL, &c, on_event, w, &s), 0);
	return s;
}

static struct aw_sched *new_sched(struct world *w, int32_t max_batch, int32_t max_tokens)
{
	return new_sched_fold(w, max_batch, max_tokens, 8, 1);
}

static void gen_req(struct aw_sched_req *r, uint64_t id, const int32_t *tok, int n)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->tokens = tok;
	r->n_tokens = n;
	aw_sample_params_default(&r->sample);
	r->sample.max_tokens = 6;
}

static void test_sched_embed(void **state)
{
	struct world w;
	int32_t p[4][40];
	static const int lens[4] = {40, 7, 1, 23};
	float want[DIM];

	(void)state;
	open_world(&w, AW_TYPE_Q8_0);
	struct aw_sched *s = new_sched(&w, 4, 32);
	for (int i = 0; i < 4; i++)
		mkprompt(p[i], lens[i], 20 + (uint64_t)i);
	/* warm the prefix cache with the same prompts (generation) */
	struct aw_sched_req r;
	for (int i = 0; i < 4; i++) {
		gen_req(&r, (uint64_t)i, p[i], lens[i]);
		assert_int_equal(aw_sched_submit(s, &r), 0);
	}
	sched_drain(s, 1000);
	/* every pooling, normalised or not, next to generation */
	int id = 4;
	for (int pool = 0; pool < AW_SCORE_POOL_MAX_; pool++)
		for (int i = 0; i < 4; i++) {
			gen_req(&r, (uint64_t)id, p[i], lens[i]);
			r.kind = AW_SCHED_EMBED;
			r.pooling = pool;
			r.normalize = (i + pool) & 1;
			assert_int_equal(aw_sched_submit(s, &r), 0);
			id++;
			if (i == 1) {
				gen_req(&r, (uint64_t)id++, p[3], lens[3]);
				assert_int_equal(aw_sched_submit(s, &r), 0);
			}
		}
	sched_drain(s, 1000);
	id = 4;
	for (int pool = 0; pool < AW_SCORE_POOL_MAX_; pool++)
		for (int i = 0; i < 4; i++) {
			struct out *o = &w.out[id];
			assert_true(o->done);
			assert_int_equal(o->end.finish, AW_SCHED_FINISH_STOP);
			assert_int_equal(o->end.n_values, DIM);
			assert_int_equal(o->n_tok, 0);
			assert_int_equal(o->end.gen_tokens, 0);
			assert_int_equal(aw_score_embed(w.m, w.kv, NULL, p[i], lens[i],
							(enum aw_score_pool)pool, (i + pool) & 1,
							want),
					 0);
			for (int k = 0; k < DIM; k++)
				assert_float_equal(o->vals[k], want[k],
						   1e-4 * (1 + fabsf(want[k])));
			/* last-token pooling reads the cache; mean and cls never */
			if (pool != AW_SCORE_POOL_LAST)
				assert_int_equal(o->end.cached_tokens, 0);
			else if (lens[i] > 8)
				assert_true(o->end.cached_tokens > 0);
			id += i == 1 ? 2 : 1;
		}
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

/* labels: tok lists of various lengths from a seed */
struct labels {
	int32_t tok[AW_SCHED_MAX_LABELS][24];
	int32_t len[AW_SCHED_MAX_LABELS];
	const int32_t *ptr[AW_SCHED_MAX_LABELS];
	int n;
};

static void mklabels(struct labels *l, int n, int max_len, uint64_t seed)
{
	uint64_t s = seed + 99;

	l->n = n;
	for (int j = 0; j < n; j++) {
		l->len[j] = max_len == 1 ? 1 : 1 + (int32_t)(tiny_rand(&s) % (uint64_t)max_len);
		mkprompt(l->tok[j], l->len[j], seed * 1000 + (uint64_t)j);
		l->ptr[j] = l->tok[j];
	}
}

static void classify_case(struct world *w, struct aw_sched *s, int n_labels, int max_len,
			  int n_prompt, uint64_t seed, int with_gen)
{
	int32_t p[64];
	struct labels l;
	struct aw_sched_req r;
	float want[AW_SCHED_MAX_LABELS];

	memset(w->out, 0, sizeof(w->out));
	mkprompt(p, n_prompt, seed);
	mklabels(&l, n_labels, max_len, seed);
	if (with_gen) {
		gen_req(&r, 1, p, n_prompt);
		assert_int_equal(aw_sched_submit(s, &r), 0);
	}
	gen_req(&r, 0, p, n_prompt);
	r.kind = AW_SCHED_CLASSIFY;
	r.n_labels = l.n;
	r.labels = l.ptr;
	r.label_lens = l.len;
	assert_int_equal(aw_sched_submit(s, &r), 0);
	sched_drain(s, 1000);
	struct out *o = &w->out[0];
	assert_true(o->done);
	assert_int_equal(o->end.finish, AW_SCHED_FINISH_STOP);
	assert_int_equal(o->end.n_values, n_labels);
	assert_int_equal(
		aw_score_classify(w->m, w->kv, NULL, p, n_prompt, l.ptr, l.len, l.n, want, NULL),
		0);
	double sum = 0;
	for (int j = 0; j < n_labels; j++) {
		assert_float_equal(o->vals[j], want[j], 1e-4);
		sum += o->vals[j];
	}
	assert_float_equal(sum, 1.0, 1e-4);
	if (with_gen)
		assert_true(w->out[1].done && w->out[1].n_tok == 6);
}

static void test_sched_classify(void **state)
{
	struct world w;

	(void)state;
	open_world(&w, AW_TYPE_Q8_0);
	struct aw_sched *s = new_sched(&w, 4, 32);
	classify_case(&w, s, 8, 1, 50, 1, 0);  /* single-token labels: rows only */
	classify_case(&w, s, 8, 4, 50, 2, 1);  /* several tokens: lanes, next to generation */
	classify_case(&w, s, 11, 3, 17, 3, 0); /* more labels than sequence slots */
	classify_case(&w, s, 3, 20, 9, 4, 0);  /* labels longer than one pass (16 rows) */
	classify_case(&w, s, 1, 1, 1, 5, 0);   /* one label, one-token prompt */
	classify_case(&w, s, 200, 2, 30, 6, 1);
	check_empty(s);
	aw_sched_free(s);

	/* a repeated prompt is read from the prefix cache */
	s = new_sched(&w, 4, 32);
	classify_case(&w, s, 5, 2, 40, 7, 0);
	assert_int_equal(w.out[0].end.cached_tokens, 0);
	classify_case(&w, s, 5, 3, 40, 7, 0);
	/* every block cached: all but the last position (recomputed for its state) */
	assert_int_equal(w.out[0].end.cached_tokens, 39);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

static uint64_t folded(struct aw_sched *s)
{
	struct aw_sched_stats st;

	aw_sched_get_stats(s, &st);
	return st.labels_folded;
}

/* One CLASSIFY on 'sf' (folds) and 'sn' (does not): both equal the
 * reference (classify_case), and each other; the fold happened on 'sf' only;
 * a greedy generation of the same prompt afterwards is the same on both.
 * Returns the prompt positions 'sf' read from its prefix cache. */
static int32_t fold_case(struct world *w, struct aw_sched *sf, struct aw_sched *sn, int n_labels,
			 int max_len, int n_prompt, uint64_t seed, int with_gen)
{
	float vf[AW_SCHED_MAX_LABELS];
	const uint64_t f0 = folded(sf), n0 = folded(sn);
	int32_t p[64], tf[8];
	struct aw_sched_req r;

	classify_case(w, sf, n_labels, max_len, n_prompt, seed, with_gen);
	memcpy(vf, w->out[0].vals, sizeof(float) * (size_t)n_labels);
	const int32_t cached = w->out[0].end.cached_tokens;
	assert_true(folded(sf) > f0);
	classify_case(w, sn, n_labels, max_len, n_prompt, seed, with_gen);
	assert_int_equal(folded(sn), n0);
	/* The same arithmetic row by row (the kernels compute each token's row
	 * alike whatever the batch, and F32 K/V rows are stored as computed):
	 * the only difference allowed is the float rounding of the final
	 * normalisation, a few ulp of values <= 1. */
	for (int j = 0; j < n_labels; j++)
		assert_float_equal(vf[j], w->out[0].vals[j], 4 * 1.2e-7);
	mkprompt(p, n_prompt, seed);
	memset(w->out, 0, sizeof(w->out));
	gen_req(&r, 2, p, n_prompt);
	assert_int_equal(aw_sched_submit(sf, &r), 0);
	sched_drain(sf, 1000);
	memcpy(tf, w->out[2].toks, sizeof(tf));
	memset(w->out, 0, sizeof(w->out));
	assert_int_equal(aw_sched_submit(sn, &r), 0);
	sched_drain(sn, 1000);
	assert_int_equal(w->out[2].n_tok, 6);
	assert_memory_equal(tf, w->out[2].toks, sizeof(int32_t) * 6);
	return cached;
}

static void test_sched_classify_fold(void **state)
{
	struct world w;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	struct aw_sched *sf = new_sched_fold(&w, 16, 32, 8, 1),
			*sn = new_sched_fold(&w, 16, 32, 8, 0);
	fold_case(&w, sf, sn, 8, 4, 24, 11, 0); /* prompt ends on a block edge */
	fold_case(&w, sf, sn, 8, 4, 13, 12, 1); /* mid-block, next to generation */
	fold_case(&w, sf, sn, 5, 3, 50, 13, 0); /* last of several chunks */
	fold_case(&w, sf, sn, 1, 6, 7, 14, 0);	/* one label: the prompt's own sequence */
	fold_case(&w, sf, sn, 3, 6, 1, 15, 0);	/* one-token prompt */
	/* the same prompts again: read from the prefix cache (the last position
	 * recomputed, in a block copied from the cache's), folded again */
	assert_int_equal(fold_case(&w, sf, sn, 6, 3, 24, 11, 0), 23);
	assert_int_equal(fold_case(&w, sf, sn, 6, 3, 13, 12, 0), 8);
	/* every block free or held by the cache alone, nothing running */
	struct aw_sched_stats st;
	aw_sched_get_stats(sf, &st);
	assert_true(st.cache_blocks > 0);
	check_empty(sf);
	check_empty(sn);
	aw_sched_free(sf);
	aw_sched_free(sn);
	/* chunks of 5 positions in blocks of 8: the last chunk starts inside
	 * the label's first block (a copy of the prompt's, the rest mirrored) */
	sf = new_sched_fold(&w, 16, 32, 5, 1);
	sn = new_sched_fold(&w, 16, 32, 5, 0);
	fold_case(&w, sf, sn, 8, 4, 13, 16, 1);
	fold_case(&w, sf, sn, 4, 5, 30, 17, 0);
	check_empty(sf);
	check_empty(sn);
	aw_sched_free(sf);
	aw_sched_free(sn);
	close_world(&w);
}

static void test_sched_bad(void **state)
{
	struct world w;
	int32_t p[8] = {1, 2, 3, 4, 5, 6, 7, 8}, lab[2] = {3, 4}, empty_len = 0, len2 = 2;
	int32_t big = 96;
	const int32_t *lp = lab, *bp = &big;
	struct aw_sched_req r;

	(void)state;
	open_world(&w, AW_TYPE_F32);
	struct aw_sched *s = new_sched(&w, 4, 32);
	gen_req(&r, 0, p, 8);
	r.kind = AW_SCHED_CLASSIFY;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL); /* no labels */
	r.n_labels = 1;
	r.labels = &lp;
	r.label_lens = &empty_len;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL); /* empty label */
	r.label_lens = &len2;
	r.labels = &bp;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL); /* token out of the vocabulary */
	r.labels = &lp;
	r.session = 5;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL); /* sessions are for generation */
	r.session = 0;
	r.n_labels = AW_SCHED_MAX_LABELS + 1;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	gen_req(&r, 0, p, 8);
	r.kind = AW_SCHED_EMBED;
	r.pooling = AW_SCORE_POOL_MAX_;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	r.kind = 9;
	r.pooling = 0;
	assert_int_equal(aw_sched_submit(s, &r), -EINVAL);
	check_empty(s);
	aw_sched_free(s);
	close_world(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hidden_rows),	    cmocka_unit_test(test_pooling),
		cmocka_unit_test(test_sched_embed),	    cmocka_unit_test(test_sched_classify),
		cmocka_unit_test(test_sched_classify_fold), cmocka_unit_test(test_sched_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
