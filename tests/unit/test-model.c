/* test-model.c — inference/model.c on tiny llama GGUF images (tiny-llama.h):
 *
 * - the forward pass with the reference kernels equals an independent naive
 *   float implementation written here (llama2.c style: full recompute, no
 *   batching, no KV blocks), on F32 weights, with GQA, rope factors and tied
 *   embeddings;
 * - prefill = incremental decode: a batch of N tokens of one sequence gives
 *   the logits of N single-token steps;
 * - a batch mixing several sequences gives each sequence's logits alone;
 * - two threads give the same logits as one (rows are split, not sums);
 * - every kernel variant the CPU runs (the reference itself on repacked
 *   weights included) matches the reference forward
 *   pass on each weight type within a tolerance derived below, and greedy
 *   decoding picks the same tokens;
 * - loading refuses another architecture, a missing tensor, a wrong shape,
 *   an unsupported type and a missing key, naming each; the forward pass
 *   refuses bad batches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "tiny-llama.h"

struct fixture {
	void *buf;
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_kv *kv;
};

/* 'corrupt', if set, runs on the parsed image before the model loads. */
static int open_model_p(struct fixture *f, const struct tiny_cfg *c,
			const struct aw_model_params *p, void (*corrupt)(struct aw_gguf *g),
			struct aw_err *err)
{
	size_t len;

	memset(f, 0, sizeof(*f));
	assert_int_equal(tiny_write(c, NULL, &f->buf, &len), 0);
	assert_int_equal(aw_gguf_parse(f->buf, len, &f->g, err), 0);
	if (corrupt)
		corrupt(f->g);
	return aw_model_load(f->g, aw_gguf_data(f->g), aw_gguf_data_size(f->g), p, &f->m, err);
}

static int open_model(struct fixture *f, const struct tiny_cfg *c, const struct aw_kern *k,
		      int repack, struct aw_err *err)
{
	struct aw_model_params p = {.kern = k, .max_batch = 32, .repack = repack};

	return open_model_p(f, c, &p, NULL, err);
}

static void new_kv_type(struct fixture *f, int32_t max_seqs, int32_t ctx, uint32_t type)
{
	const struct aw_model_hparams *hp = aw_model_hparams(f->m);
	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(f->m),
				  .block_size = 8,
				  .max_seqs = max_seqs,
				  .max_seq_len = ctx,
				  .type = type};
	aw_kv_free(f->kv);
	assert_int_equal(aw_kv_new(&kc, &f->kv), 0);
}

static void new_kv(struct fixture *f, int32_t max_seqs, int32_t ctx)
{
	new_kv_type(f, max_seqs, ctx, AW_TYPE_F32);
}

static void close_model(struct fixture *f)
{
	aw_kv_free(f->kv);
	aw_model_free(f->m);
	aw_gguf_close(f->g);
	free(f->buf);
}

/* Run one sequence's tokens [0, n) either as one batch or one at a time,
 * writing every position's logits to out (n, vocab). */
static void run_seq(struct fixture *f, int32_t seq, const int32_t *tok, int n, int one_by_one,
		    struct aw_pool *pool, float *out)
{
	const int32_t nv = aw_model_hparams(f->m)->n_vocab;
	int32_t pos[64], sq[64];
	int8_t want[64];

	for (int i = 0; i < n; i++) {
		pos[i] = i;
		sq[i] = seq;
		want[i] = 1;
	}
	if (!one_by_one) {
		struct aw_batch b = {n, tok, pos, sq, want};
		assert_int_equal(aw_model_forward(f->m, f->kv, &b, pool, out), n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct aw_batch b = {1, tok + i, pos + i, sq + i, NULL};
		assert_int_equal(aw_model_forward(f->m, f->kv, &b, pool, out + (size_t)i * nv), 1);
	}
}

/* ---- naive reference: dequantized weights, float math, full recompute ---- */

static float *deq(const struct aw_gguf *g, const char *name, size_t n)
{
	int i = aw_gguf_find_tensor(g, name);
	assert_true(i >= 0);
	const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, (uint64_t)i);
	float *v = malloc(sizeof(float) * n);
	assert_int_equal(t->n_elements, n);
	assert_int_equal(aw_dequant_row(t->type, aw_gguf_tensor_data(g, t), v, n), 0);
	return v;
}

static void naive_rmsnorm(float *y, const float *x, const float *w, int n)
{
	double ss = 0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float s = 1.0f / sqrtf((float)(ss / n) + 1e-5f);
	for (int i = 0; i < n; i++)
		y[i] = x[i] * s * w[i];
}

/* y[r] = sum_i W[r][i] x[i]; W is (rows, cols) */
static void naive_mv(float *y, const float *w, const float *x, int rows, int cols)
{
	for (int r = 0; r < rows; r++) {
		double s = 0;
		for (int i = 0; i < cols; i++)
			s += (double)w[(size_t)r * cols + i] * x[i];
		y[r] = (float)s;
	}
}

/* llama: pairs (2i, 2i+1), base 10000; qwen2 (neox): pairs (i, i + hd/2), base 1e6 */
static void naive_rope(float *x, int n_heads, int hd, int pos, const float *ff, int neox)
{
	const double base = neox ? 1e6 : 10000.0;

	for (int h = 0; h < n_heads; h++)
		for (int i = 0; i < hd / 2; i++) {
			double th = pos * pow(base, -2.0 * i / hd) / (ff ? ff[i] : 1.0);
			const int ia = h * hd + (neox ? i : 2 * i),
				  ib = h * hd + (neox ? i + hd / 2 : 2 * i + 1);
			float a = x[ia], b = x[ib];
			x[ia] = (float)(a * cos(th) - b * sin(th));
			x[ib] = (float)(a * sin(th) + b * cos(th));
		}
}

/* logits (n, vocab) of tokens tok[0..n) at positions 0..n-1 */
static void naive_forward(const struct aw_gguf *g, const struct tiny_cfg *c, const int32_t *tok,
			  int n, float *out)
{
	const int D = (int)c->dim, H = (int)c->n_head, KH = (int)c->n_head_kv, hd = D / H,
		  F = (int)c->ffn, V = (int)c->vocab, KD = KH * hd;
	float *emb = deq(g, "token_embd.weight", (size_t)V * D);
	float *onorm = deq(g, "output_norm.weight", D);
	float *outw = c->tied ? emb : deq(g, "output.weight", (size_t)V * D);
	float *ff = c->rope_freqs ? deq(g, "rope_freqs.weight", hd / 2) : NULL;
	float *x = calloc((size_t)n * D, sizeof(float)), *xb = malloc(sizeof(float) * D),
	      *q = malloc(sizeof(float) * D), *att = malloc(sizeof(float) * n),
	      *o = malloc(sizeof(float) * D), *h1 = malloc(sizeof(float) * F),
	      *h2 = malloc(sizeof(float) * F), *kc = malloc(sizeof(float) * n * KD),
	      *vc = malloc(sizeof(float) * n * KD);
	char nm[64];

	for (int t = 0; t < n; t++)
		memcpy(x + (size_t)t * D, emb + (size_t)tok[t] * D, sizeof(float) * D);
	for (int l = 0; l < (int)c->n_layer; l++) {
#define W(s, cnt) (snprintf(nm, sizeof(nm), "blk.%d." s ".weight", l), deq(g, nm, (cnt)))
		float *an = W("attn_norm", D), *fn = W("ffn_norm", D), *wq = W("attn_q", D * D),
		      *wk = W("attn_k", KD * D), *wv = W("attn_v", KD * D),
		      *wo = W("attn_output", D * D), *wg = W("ffn_gate", F * D),
		      *wu = W("ffn_up", F * D), *wd = W("ffn_down", D * F);
#undef W
#define B(s, cnt) (snprintf(nm, sizeof(nm), "blk.%d." s ".bias", l), deq(g, nm, (cnt)))
		float *bq = c->qkv_bias ? B("attn_q", D) : NULL,
		      *bk = c->qkv_bias ? B("attn_k", KD) : NULL,
		      *bv = c->qkv_bias ? B("attn_v", KD) : NULL;
#undef B
		const int neox = tiny_is_qwen2(c);
		/* K and V of every position first (causal: row t only reads 0..t) */
		for (int t = 0; t < n; t++) {
			naive_rmsnorm(xb, x + (size_t)t * D, an, D);
			naive_mv(kc + (size_t)t * KD, wk, xb, KD, D);
			naive_mv(vc + (size_t)t * KD, wv, xb, KD, D);
			for (int i = 0; bk && i < KD; i++) {
				kc[(size_t)t * KD + i] += bk[i];
				vc[(size_t)t * KD + i] += bv[i];
			}
			naive_rope(kc + (size_t)t * KD, KH, hd, t, ff, neox);
		}
		for (int t = 0; t < n; t++) {
			float *xt = x + (size_t)t * D;
			naive_rmsnorm(xb, xt, an, D);
			naive_mv(q, wq, xb, D, D);
			for (int i = 0; bq && i < D; i++)
				q[i] += bq[i];
			naive_rope(q, H, hd, t, ff, neox);
			for (int h = 0; h < H; h++) {
				const int kh = h / (H / KH);
				float mx = -INFINITY, sum = 0;
				for (int j = 0; j <= t; j++) {
					double s = 0;
					for (int i = 0; i < hd; i++)
						s += (double)q[h * hd + i] *
						     kc[(size_t)j * KD + kh * hd + i];
					att[j] = (float)(s / sqrt(hd));
					mx = fmaxf(mx, att[j]);
				}
				for (int j = 0; j <= t; j++)
					sum += att[j] = expf(att[j] - mx);
				for (int i = 0; i < hd; i++) {
					double s = 0;
					for (int j = 0; j <= t; j++)
						s += att[j] / sum *
						     vc[(size_t)j * KD + kh * hd + i];
					o[h * hd + i] = (float)s;
				}
			}
			naive_mv(xb, wo, o, D, D);
			for (int i = 0; i < D; i++)
				xt[i] += xb[i];
			naive_rmsnorm(xb, xt, fn, D);
			naive_mv(h1, wg, xb, F, D);
			naive_mv(h2, wu, xb, F, D);
			for (int i = 0; i < F; i++)
				h1[i] = h1[i] / (1.0f + expf(-h1[i])) * h2[i];
			naive_mv(xb, wd, h1, D, F);
			for (int i = 0; i < D; i++)
				xt[i] += xb[i];
		}
		free(an), free(fn), free(wq), free(wk), free(wv), free(wo), free(wg), free(wu),
			free(wd), free(bq), free(bk), free(bv);
	}
	for (int t = 0; t < n; t++) {
		naive_rmsnorm(xb, x + (size_t)t * D, onorm, D);
		naive_mv(out + (size_t)t * V, outw, xb, V, D);
	}
	if (!c->tied)
		free(outw);
	free(emb), free(onorm), free(ff), free(x), free(xb), free(q), free(att), free(o), free(h1),
		free(h2), free(kc), free(vc);
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
	float m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(a[i] - b[i]));
	return m;
}

static float max_abs(const float *a, size_t n)
{
	float m = 0;
	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, fabsf(a[i]));
	return m;
}

static const int32_t PROMPT[12] = {5, 17, 3, 90, 42, 42, 7, 1, 64, 33, 12, 80};

/* F32 weights: the reference kernels against the naive implementation.
 * Both compute in float with different summation orders (the naive one in
 * double); over 2 layers of dot products of length <= 96 the difference
 * stays within a few thousand ulps of the logits' magnitude: 1e-4 relative. */
static void check_naive_p(const struct tiny_cfg *c, int dequant)
{
	struct fixture f;
	struct aw_err err;
	const int n = 12;
	const size_t V = c->vocab;
	float *got = malloc(sizeof(float) * n * V), *want = malloc(sizeof(float) * n * V);
	struct aw_model_params p = {.kern = &aw_kern_ref, .max_batch = 32, .dequant = dequant};

	assert_int_equal(open_model_p(&f, c, &p, NULL, &err), 0);
	new_kv(&f, 1, 64);
	run_seq(&f, 0, PROMPT, n, 0, NULL, got);
	naive_forward(f.g, c, PROMPT, n, want);
	float d = max_abs_diff(got, want, n * V), scale = max_abs(want, n * V);
	assert_true(scale > 0.1f); /* the logits are not trivially zero */
	if (d > 1e-4f * scale)
		fail_msg("max |delta| %g vs naive (scale %g)", (double)d, (double)scale);
	close_model(&f);
	free(got);
	free(want);
}

static void check_naive(const struct tiny_cfg *c)
{
	check_naive_p(c, 0);
}

static void test_naive_reference(void **state)
{
	struct tiny_cfg c;

	(void)state;
	tiny_default(&c);
	check_naive(&c);
	c.tied = 1;
	c.rope_freqs = 1;
	c.seed = 2;
	check_naive(&c);
	c.n_head_kv = 4; /* no GQA */
	c.tied = 0;
	check_naive(&c);
	c.n_head_kv = 1; /* multi-query */
	check_naive(&c);
}

/* qwen2: Q/K/V biases, NEOX rotation, base 1e6, keys under "qwen2."; tied
 * (Qwen2.5-0.5B) and untied; a llama file may carry the biases too. */
static void test_qwen2(void **state)
{
	struct tiny_cfg c;

	(void)state;
	tiny_default(&c);
	c.arch = "qwen2";
	c.qkv_bias = 1;
	check_naive(&c);
	c.tied = 1;
	c.seed = 3;
	c.n_head_kv = 1;
	check_naive(&c);
	tiny_default(&c);
	c.qkv_bias = 1; /* llama with optional biases */
	check_naive(&c);
}

/* --dequant: quantized weights widened to F32 give the naive forward's
 * float-activation result to the same 1e-4 as F32 files, for every block
 * type (the naive reference dequantizes the same way). */
static void test_dequant(void **state)
{
	static const uint32_t types[] = {AW_TYPE_Q8_0, AW_TYPE_Q4_0, AW_TYPE_Q5_0, AW_TYPE_Q4_K,
					 AW_TYPE_Q6_K};
	struct tiny_cfg c;

	(void)state;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		tiny_default(&c);
		c.dim = 256; /* K-quant rows */
		c.ffn = 256;
		c.n_layer = 1;
		c.type = c.embd_type = types[i];
		c.tied = i % 2;
		c.arch = i == 2 ? "qwen2" : NULL;
		c.qkv_bias = i == 2;
		check_naive_p(&c, 1);
	}
}

/* NaN/Inf block scales are refused at load with the tensor, row and block;
 * params.scales_checked skips the pass (the loader ran it). */
static const char *bad_tensor = "blk.1.ffn_gate.weight";
static size_t bad_off; /* byte offset of the scale in the tensor */
static uint16_t bad_bits;

static void corrupt_scale(struct aw_gguf *g)
{
	const struct aw_gguf_tensor *t =
		aw_gguf_tensor_at(g, (uint64_t)aw_gguf_find_tensor(g, bad_tensor));
	uint8_t *d = (uint8_t *)aw_gguf_tensor_data(g, t);

	memcpy(d + bad_off, &bad_bits, 2);
}

static void test_bad_scales(void **state)
{
	static const struct {
		uint32_t type;
		size_t off; /* scale's offset in block 3 */
		const char *msg;
	} cases[] = {
		{AW_TYPE_Q8_0, 3 * 34, "q8_0 block 3 (row 0)"},
		{AW_TYPE_Q4_0, 3 * 18, "q4_0 block 3 (row 0)"},
		{AW_TYPE_Q4_1, 3 * 20 + 2, "q4_1 block 3 (row 0)"},
		{AW_TYPE_Q4_K, 3 * 144 + 2, "q4_k block 3 (row 3)"}, /* dmin */
		{AW_TYPE_Q6_K, 3 * 210 + 208, "q6_k block 3 (row 3)"},
	};
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err = {0};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int nan = 0; nan < 2; nan++) {
			tiny_default(&c);
			c.dim = 256;
			c.ffn = 256;
			c.type = cases[i].type;
			bad_off = cases[i].off;
			bad_bits = nan ? 0xfe00 : 0x7c00; /* -NaN, +Inf */
			struct aw_model_params p = {.kern = &aw_kern_ref, .max_batch = 8};
			assert_int_equal(open_model_p(&f, &c, &p, corrupt_scale, &err), -EINVAL);
			if (!strstr(err.msg, bad_tensor) || !strstr(err.msg, cases[i].msg) ||
			    !strstr(err.msg, "NaN or infinite"))
				fail_msg("case %zu: '%s'", i, err.msg);
			assert_null(f.m);
			/* the same tensor through the public check */
			int idx = aw_gguf_find_tensor(f.g, bad_tensor);
			const struct aw_gguf_tensor *t = aw_gguf_tensor_at(f.g, (uint64_t)idx);
			assert_int_equal(aw_model_check_tensor(f.g, (uint64_t)idx,
							       aw_gguf_tensor_data(f.g, t), &err),
					 -EINVAL);
			close_model(&f);
			/* already checked by the caller: loads */
			p.scales_checked = 1;
			assert_int_equal(open_model_p(&f, &c, &p, corrupt_scale, &err), 0);
			close_model(&f);
		}
	}
}

/* A batch of N tokens of one sequence equals N single steps. The same
 * kernels compute each row with the same arithmetic in both cases, except
 * that attention sees the same positions either way: equal to rounding of
 * nothing — we still allow 1e-6 relative for kernels that block rows. */
static void test_prefill_equals_decode(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;
	const int n = 12;
	uint32_t types[] = {AW_TYPE_F32, AW_TYPE_Q8_0, AW_TYPE_Q4_0};

	(void)state;
	for (size_t ti = 0; ti < 3; ti++) {
		tiny_default(&c);
		c.type = c.embd_type = types[ti];
		assert_int_equal(open_model(&f, &c, aw_kern_select(NULL), 1, &err), 0);
		const size_t V = c.vocab;
		float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V);
		new_kv(&f, 2, 64);
		run_seq(&f, 0, PROMPT, n, 0, NULL, a);
		run_seq(&f, 1, PROMPT, n, 1, NULL, b);
		float d = max_abs_diff(a, b, n * V);
		if (d > 1e-5f * max_abs(a, n * V))
			fail_msg("%s: prefill vs decode max |delta| %g", aw_type_name(types[ti]),
				 (double)d);
		free(a);
		free(b);
		close_model(&f);
	}
}

/* An F16 KV cache: prefill equals decode exactly as with F32 (both store the
 * same rounded rows), and the logits stay near the F32 cache's: each cached
 * value carries a relative rounding error of at most 2^-11, which moves an
 * attention score or output by about that fraction of its magnitude; over
 * 2 layers that stays within 1e-2 of the logits' scale. */
static void test_kv_f16(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;
	const int n = 12;

	(void)state;
	tiny_default(&c); /* F32 weights: no activation quantization to blur the check */
	assert_int_equal(open_model(&f, &c, aw_kern_select(NULL), 1, &err), 0);
	const size_t V = c.vocab;
	float *a = malloc(sizeof(float) * n * V), *b = malloc(sizeof(float) * n * V),
	      *r = malloc(sizeof(float) * n * V);
	new_kv(&f, 1, 64);
	run_seq(&f, 0, PROMPT, n, 0, NULL, r);
	new_kv_type(&f, 2, 64, AW_TYPE_F16);
	run_seq(&f, 0, PROMPT, n, 0, NULL, a);
	run_seq(&f, 1, PROMPT, n, 1, NULL, b);
	const float scale = max_abs(r, n * V);
	float d = max_abs_diff(a, b, n * V);
	if (d > 1e-5f * scale)
		fail_msg("f16 cache: prefill vs decode max |delta| %g", (double)d);
	d = max_abs_diff(a, r, n * V);
	print_message("# f16 cache vs f32 cache: max |delta| %.3g (scale %.3g)\n", (double)d,
		      (double)scale);
	if (d > 1e-2f * scale)
		fail_msg("f16 cache vs f32: max |delta| %g", (double)d);
	assert_true(d > 0.0f); /* the cache really is F16 */
	free(a), free(b), free(r);
	close_model(&f);
}

/* Three sequences in one batch: seq 0 prefills 5 tokens, seq 1 (which
 * already holds 4) decodes one, seq 2 prefills 3; only some tokens ask for
 * logits. Each must equal the same sequence run alone. */
static void test_multi_sequence_batch(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;

	(void)state;
	tiny_default(&c);
	c.type = AW_TYPE_Q8_0;
	assert_int_equal(open_model(&f, &c, aw_kern_select(NULL), 1, &err), 0);
	const size_t V = c.vocab;
	float *alone = malloc(sizeof(float) * 12 * V), *batch = malloc(sizeof(float) * 9 * V);
	float *ref0 = malloc(sizeof(float) * 5 * V), *ref1 = malloc(sizeof(float) * 5 * V),
	      *ref2 = malloc(sizeof(float) * 3 * V);
	const int32_t s0[5] = {9, 8, 7, 6, 5}, s1[5] = {1, 2, 3, 4, 70}, s2[3] = {60, 61, 62};

	/* alone */
	new_kv(&f, 4, 64);
	run_seq(&f, 0, s0, 5, 0, NULL, ref0);
	run_seq(&f, 1, s1, 5, 0, NULL, ref1);
	run_seq(&f, 2, s2, 3, 0, NULL, ref2);

	/* together: seq 1's first 4 tokens go first, then the mixed batch */
	new_kv(&f, 4, 64);
	run_seq(&f, 1, s1, 4, 0, NULL, alone);
	int32_t tok[9] = {s0[0], s2[0], s0[1], s1[4], s0[2], s2[1], s0[3], s2[2], s0[4]};
	int32_t seq[9] = {0, 2, 0, 1, 0, 2, 0, 2, 0};
	int32_t pos[9] = {0, 0, 1, 4, 2, 1, 3, 2, 4};
	int8_t want[9] = {1, 0, 1, 1, 0, 1, 1, 1, 1};
	struct aw_batch b = {9, tok, pos, seq, want};
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, batch), 7);
	/* rows in batch order of the tokens that asked: s0p0 s0p1 s1p4 s2p1 s0p3 s2p2 s0p4 */
	const float *exp_rows[7] = {ref0,	  ref0 + V,	ref1 + 4 * V, ref2 + V,
				    ref0 + 3 * V, ref2 + 2 * V, ref0 + 4 * V};
	for (int r = 0; r < 7; r++) {
		float d = max_abs_diff(batch + r * V, exp_rows[r], V);
		if (d > 1e-5f * max_abs(exp_rows[r], V))
			fail_msg("row %d: max |delta| %g", r, (double)d);
	}
	assert_int_equal(aw_kv_seq_len(f.kv, 0), 5);
	assert_int_equal(aw_kv_seq_len(f.kv, 1), 5);
	assert_int_equal(aw_kv_seq_len(f.kv, 2), 3);
	free(alone), free(batch), free(ref0), free(ref1), free(ref2);
	close_model(&f);
}

/* Two threads split rows and (token, head) pairs: each value is computed by
 * exactly the same code as with one thread, so the logits are identical. */
static void test_threads(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;
	struct aw_pool *pool;

	(void)state;
	tiny_default(&c);
	c.mixed = 1;
	assert_int_equal(aw_pool_new(2, NULL, &pool), 0);
	assert_int_equal(open_model(&f, &c, aw_kern_select(NULL), 1, &err), 0);
	const size_t V = c.vocab;
	float *a = malloc(sizeof(float) * 12 * V), *b = malloc(sizeof(float) * 12 * V);
	new_kv(&f, 2, 64);
	run_seq(&f, 0, PROMPT, 12, 0, NULL, a);
	run_seq(&f, 1, PROMPT, 12, 0, pool, b);
	assert_memory_equal(a, b, sizeof(float) * 12 * V);
	/* and decode steps on two threads */
	aw_kv_seq_clear(f.kv, 1);
	run_seq(&f, 1, PROMPT, 12, 1, pool, b);
	float *c1 = malloc(sizeof(float) * 12 * V);
	aw_kv_seq_clear(f.kv, 0);
	run_seq(&f, 0, PROMPT, 12, 1, NULL, c1);
	assert_memory_equal(c1, b, sizeof(float) * 12 * V);
	free(a), free(b), free(c1);
	close_model(&f);
	aw_pool_free(pool);
}

/* Each vector variant against the reference kernels on the same file.
 *
 * Tolerance: the variants quantize the same activations to 8 bits; a float
 * difference of one rounding in a norm can move one activation quant by one
 * step (d = max|x|/127 of its block), which moves a dot product by at most
 * d * |w| for that element; summation order differs by ~n * 2^-24 relative.
 * Propagated through 2 layers and the output projection that stays below 1 %
 * of the logits' largest magnitude (F32/F16/BF16 weights: no activation
 * quantization, 1e-4). Greedy decoding must pick the same tokens wherever the
 * reference's best logit leads the second by more than twice the tolerance
 * (a closer race is a coin toss for any engine), and the test requires most
 * steps to be such clear decisions. */
static void test_variants(void **state)
{
	/* 1001: qwen2 (biases, NEOX, tied, Q8_0, one KV head); 1002: Llama 3.2
	 * shape (tied, rope_freqs, Q4_0) */
	static const uint32_t types[] = {AW_TYPE_F32,  AW_TYPE_F16,	 AW_TYPE_BF16, AW_TYPE_Q8_0,
					 AW_TYPE_Q4_0, 1000 /* mixed */, 1001,	       1002};
	int supported, tested = 0;

	(void)state;
	for (unsigned vi = 0;; vi++) {
		const struct aw_kern *k = aw_kern_variant(vi, &supported);
		if (!k)
			break;
		if (!supported)
			continue; /* the reference runs too: repacked (X16) against rows */
		tested++;
		for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
			struct tiny_cfg c;
			struct fixture fr, fv;
			struct aw_err err;
			const bool q = types[ti] == AW_TYPE_Q8_0 || types[ti] == AW_TYPE_Q4_0 ||
				       types[ti] >= 1000;

			tiny_default(&c);
			if (types[ti] == 1000) {
				c.mixed = 1;
			} else if (types[ti] == 1001) {
				c.arch = "qwen2";
				c.qkv_bias = c.tied = 1;
				c.n_head_kv = 1;
				c.type = c.embd_type = AW_TYPE_Q8_0;
			} else if (types[ti] == 1002) {
				c.tied = c.rope_freqs = 1;
				c.type = c.embd_type = AW_TYPE_Q4_0;
			} else {
				c.type = c.embd_type = types[ti];
			}
			assert_int_equal(open_model(&fr, &c, &aw_kern_ref, 0, &err), 0);
			assert_int_equal(open_model(&fv, &c, k, 1, &err), 0);
			const size_t V = c.vocab;
			float *a = malloc(sizeof(float) * 12 * V),
			      *b = malloc(sizeof(float) * 12 * V);
			new_kv(&fr, 1, 64);
			new_kv(&fv, 1, 64);
			run_seq(&fr, 0, PROMPT, 12, 0, NULL, a);
			run_seq(&fv, 0, PROMPT, 12, 0, NULL, b);
			const float scale = max_abs(a, 12 * V), tol = (q ? 1e-2f : 1e-4f) * scale;
			const float d = max_abs_diff(a, b, 12 * V);
			const char *what = types[ti] == 1000   ? "mixed"
					   : types[ti] == 1001 ? "qwen2"
					   : types[ti] == 1002 ? "llama3.2"
							       : aw_type_name(types[ti]);
			print_message("# %s %s: max |delta| %.3g (scale %.3g, tol %.3g)\n", k->name,
				      what, (double)d, (double)scale, (double)tol);
			if (d > tol)
				fail_msg("%s on %s: max |delta| %g > %g", k->name, what, (double)d,
					 (double)tol);

			/* greedy decode 16 tokens from the prompt's last logits */
			int clear = 0;
			float *la = a + 11 * V, *lb = b + 11 * V;
			for (int step = 0; step < 16; step++) {
				int32_t ta = 0, tb = 0, second = -1;
				for (int32_t t = 1; t < (int32_t)V; t++) {
					if (la[t] > la[ta])
						ta = t;
					if (lb[t] > lb[tb])
						tb = t;
				}
				for (int32_t t = 0; t < (int32_t)V; t++)
					if (t != ta && (second < 0 || la[t] > la[second]))
						second = t;
				if (la[ta] - la[second] > 2 * tol) {
					clear++;
					assert_int_equal(ta, tb);
				} else if (ta != tb) {
					break; /* the paths part after a tie: stop comparing */
				}
				int32_t p = 12 + step, s0 = 0;
				struct aw_batch ba = {1, &ta, &p, &s0, NULL};
				assert_int_equal(aw_model_forward(fr.m, fr.kv, &ba, NULL, la), 1);
				assert_int_equal(aw_model_forward(fv.m, fv.kv, &ba, NULL, lb), 1);
			}
			assert_true(clear >= 8);
			free(a), free(b);
			close_model(&fr);
			close_model(&fv);
		}
	}
	assert_true(tested > 0);
}

/* Loading refuses bad files with a message that names the problem. */
static void expect_refusal(const struct tiny_cfg *c, const char *needle)
{
	struct fixture f;
	struct aw_err err = {0};

	assert_int_equal(open_model(&f, c, &aw_kern_ref, 0, &err), -EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
	assert_null(f.m);
	aw_gguf_close(f.g);
	free(f.buf);
}

static void test_refusals(void **state)
{
	struct tiny_cfg c;

	(void)state;
	tiny_default(&c);
	c.arch = "gpt2";
	expect_refusal(&c, "architecture 'gpt2'");
	tiny_default(&c);
	c.arch = "qwen2"; /* without its biases */
	expect_refusal(&c, "missing tensor 'blk.0.attn_q.bias'");
	tiny_default(&c);
	c.arch = "qwen2";
	c.qkv_bias = 1;
	c.omit = "blk.1.attn_v.bias";
	expect_refusal(&c, "missing tensor 'blk.1.attn_v.bias'");
	tiny_default(&c);
	c.arch = "qwen2";
	c.qkv_bias = 1;
	c.reshape = "blk.0.attn_k.bias";
	expect_refusal(&c, "'blk.0.attn_k.bias': shape [64");
	tiny_default(&c);
	c.arch = "qwen2";
	c.qkv_bias = 1;
	c.omit_key = "llama.embedding_length"; /* i.e. qwen2.embedding_length */
	expect_refusal(&c, "missing key 'qwen2.embedding_length'");
	tiny_default(&c);
	c.with_tokenizer = 1;
	c.vocab = 96;
	c.tok_extra = 1; /* tokenizer one token longer than the embedding */
	expect_refusal(&c, "tokenizer.ggml.tokens has 97 tokens");
	tiny_default(&c);
	c.omit = "blk.1.ffn_up.weight";
	expect_refusal(&c, "missing tensor 'blk.1.ffn_up.weight'");
	tiny_default(&c);
	c.omit = "output_norm.weight";
	expect_refusal(&c, "output_norm.weight");
	tiny_default(&c);
	c.reshape = "blk.0.attn_k.weight";
	expect_refusal(&c, "'blk.0.attn_k.weight': shape [96, 32");
	tiny_default(&c);
	c.retype = "blk.0.ffn_down.weight";
	expect_refusal(&c, "type q8_1 not supported");
	tiny_default(&c);
	c.omit_key = "llama.block_count";
	expect_refusal(&c, "missing key 'llama.block_count'");
	tiny_default(&c);
	c.n_head = 5; /* 64 is not a multiple of 5 */
	c.n_head_kv = 5;
	expect_refusal(&c, "head_count");
}

static void test_forward_errors(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;
	float *lg;

	(void)state;
	tiny_default(&c);
	assert_int_equal(open_model(&f, &c, &aw_kern_ref, 0, &err), 0);
	lg = malloc(sizeof(float) * 4 * c.vocab);
	new_kv(&f, 2, 8);
	int32_t tok[3] = {1, 2, 3}, pos[3] = {0, 1, 2}, seq[3] = {0, 0, 0};
	struct aw_batch b = {3, tok, pos, seq, NULL};

	pos[1] = 2; /* a gap */
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), -EINVAL);
	pos[1] = 1;
	tok[2] = (int32_t)c.vocab; /* out of the vocabulary */
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), -EINVAL);
	tok[2] = 3;
	seq[0] = 2; /* no such sequence */
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), -EINVAL);
	seq[0] = 0;
	b.n = 33; /* above max_batch (32) */
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), -EINVAL);
	b.n = 3;
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), 1);
	assert_int_equal(aw_kv_seq_len(f.kv, 0), 3);
	/* the next step must continue at 3: position 0 again is refused */
	pos[0] = 0;
	b.n = 1;
	assert_int_equal(aw_model_forward(f.m, f.kv, &b, NULL, lg), -EINVAL);
	/* beyond the context (8) */
	int32_t t5[6] = {1, 1, 1, 1, 1, 1}, p5[6] = {3, 4, 5, 6, 7, 8}, s5[6] = {0};
	struct aw_batch b5 = {6, t5, p5, s5, NULL};
	assert_int_equal(aw_model_forward(f.m, f.kv, &b5, NULL, lg), -ERANGE);
	/* dropping positions lets a sequence rewrite them */
	assert_int_equal(aw_kv_seq_drop(f.kv, 0, 1), 0);
	int32_t p2 = 2;
	struct aw_batch b1 = {1, tok, &p2, seq, NULL};
	assert_int_equal(aw_model_forward(f.m, f.kv, &b1, NULL, lg), 1);
	free(lg);
	close_model(&f);
}

/* Sizes reported for the benchmark's roofline. */
static void test_sizes(void **state)
{
	struct tiny_cfg c;
	struct fixture f;
	struct aw_err err;

	(void)state;
	tiny_default(&c);
	c.type = c.embd_type = AW_TYPE_Q8_0;
	assert_int_equal(open_model(&f, &c, &aw_kern_ref, 0, &err), 0);
	const uint64_t D = c.dim, F = c.ffn, V = c.vocab, KD = 32, L = c.n_layer;
	const uint64_t q8 = 34; /* bytes per 32 values */
	const uint64_t mats = L * (D * D * 2 + D * KD * 2 + 3 * D * F) / 32 * q8;
	const uint64_t norms = (2 * L + 1) * D * 4;
	const uint64_t embd = V * D / 32 * q8;
	assert_int_equal(aw_model_weight_bytes(f.m), mats + norms + 2 * embd);
	/* decode: all matrices, norms, the output, one embedding row */
	assert_int_equal(aw_model_decode_bytes(f.m), mats + norms + embd + D / 32 * q8);
	assert_int_equal(aw_model_owned_bytes(f.m), 0);
	const struct aw_model_hparams *hp = aw_model_hparams(f.m);
	assert_int_equal(hp->head_dim, 16);
	assert_int_equal(hp->n_head_kv, 2);
	assert_int_equal(hp->n_ctx, 128);
	assert_int_equal(hp->tied, 0);
	close_model(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_naive_reference),
		cmocka_unit_test(test_qwen2),
		cmocka_unit_test(test_dequant),
		cmocka_unit_test(test_bad_scales),
		cmocka_unit_test(test_prefill_equals_decode),
		cmocka_unit_test(test_multi_sequence_batch),
		cmocka_unit_test(test_kv_f16),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_forward_errors),
		cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
