/* test-kern.c — every kernel variant this CPU runs against kern-ref.c, and
 * kern-ref.c against double-precision arithmetic.
 *
 * Inputs are random (fixed seeds), of odd sizes (odd block counts, row
 * counts that are not multiples of the 16-row tile, 1..17 tokens) and
 * extreme (zeros, huge magnitudes, all-equal values, Q4_0 nibbles 0 and 15,
 * Q8_0 quants -128 and 127, activation quants +-127). Variants the CPU lacks
 * are skipped, not failed.
 *
 * Tolerances follow from the arithmetic, with eps = FLT_EPSILON:
 *  - activation quantization is bit-exact (same float operations, rint);
 *  - quantized matmuls: integer dot products are exact in every variant, but
 *    a variant may split a block's integer sum into up to 8 partial sums
 *    (lanes) that it scales and adds in float separately (the GGUF-rows
 *    kernels do), so the float sum has at most 8 nb terms s_b * i_bl with
 *    sum_l |i_bl| <= sum_j |qW_j qX_j|:
 *    |y - y_ref| <= 2 (8 nb + 2) eps sum_b |s_b| sum_j |qW_j qX_j|;
 *  - float matmuls: n terms, |y - y_ref| <= 2 (n + 2) eps sum_i |w_i x_i|;
 *  - the other kernels: see each test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern-int.h"

static uint64_t rng = 88172645463325252ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 32);
}

/* uniform in [-1, 1) */
static float frnd(void)
{
	return (float)((double)rnd() / 2147483648.0 - 1.0);
}

static void *xmalloc(size_t n)
{
	void *p = aligned_alloc(64, (n + 63) / 64 * 64);

	assert_non_null(p);
	return p;
}

enum fill { FILL_RANDOM, FILL_ZERO, FILL_HUGE, FILL_EQUAL, FILL_SPIKY };

static void fill(float *x, size_t n, enum fill how)
{
	for (size_t i = 0; i < n; i++) {
		switch (how) {
		case FILL_RANDOM:
			x[i] = frnd() * 3.0f;
			break;
		case FILL_ZERO:
			x[i] = 0.0f;
			break;
		case FILL_HUGE:
			x[i] = frnd() * 1e30f;
			break;
		case FILL_EQUAL:
			x[i] = -2.5f;
			break;
		case FILL_SPIKY: /* mostly small, a few outliers per block */
			x[i] = (rnd() % 13 == 0) ? frnd() * 100.0f : frnd() * 0.01f;
			break;
		}
	}
}

/* Each supported variant other than "ref", in turn; returns NULL at the end. */
static const struct aw_kern *next_variant(unsigned *i)
{
	for (;;) {
		int ok = 0;
		const struct aw_kern *k = aw_kern_variant((*i)++, &ok);

		if (!k)
			return NULL;
		if (ok && k != &aw_kern_ref)
			return k;
		if (!ok)
			printf("# variant %s: not supported by this CPU, skipped\n", k->name);
	}
}

/* ---- activation quantization ------------------------------------------- */

static void check_q8a_ref(const float *x, const struct aw_block_q8a *q, size_t n)
{
	for (size_t b = 0; b < n / 32; b++) {
		float amax = 0.0f;
		int32_t sum = 0;

		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		/* the scale: amax/127 rounded to fp16 (aw_kern_q8a_scale), against
		 * the library's own fp16 conversion */
		const double dt = (double)amax / 127.0;
		if (amax / 127.0f <= 65504.0f)
			assert_true(q[b].d == aw_fp16_to_f32(aw_f32_to_fp16(amax / 127.0f)));
		else
			assert_true(q[b].d == amax / 127.0f); /* beyond fp16: the float */
		/* half an fp16 ulp: 2^-11 relative, or 2^-25 among subnormals */
		assert_true(fabs((double)q[b].d - dt) <= dt / 2048.0 + 0x1p-25);
		for (int j = 0; j < 32; j++) {
			assert_true(q[b].qs[j] >= -127 && q[b].qs[j] <= 127);
			sum += q[b].qs[j];
			/* rounding to nearest: |x - dt q| <= dt/2 (plus the rounding of
			 * 127/amax and x*127/amax); the fp16 scale adds |q| |d - dt| <=
			 * 127 (dt 2^-11 + 2^-25) */
			const double err =
				fabs((double)x[b * 32 + j] - (double)q[b].d * q[b].qs[j]);

			assert_true(err <=
				    dt * (0.5 + 127.0 / 2048.0 + 1e-5) + 127 * 0x1p-25 + 1e-30);
		}
		assert_int_equal(sum, q[b].sum);
	}
}

static void test_quant_q8a(void **state)
{
	(void)state;
	const size_t n = 32 * 37;
	float *x = xmalloc(n * 4);
	struct aw_block_q8a *qr = xmalloc(n / 32 * sizeof(*qr));
	struct aw_block_q8a *qv = xmalloc(n / 32 * sizeof(*qv));

	for (int how = FILL_RANDOM; how <= FILL_SPIKY; how++) {
		fill(x, n, how);
		if (how == FILL_RANDOM)
			x[5] = 7.0f, x[6] = -7.0f; /* both +-127 in one block */
		aw_kern_ref_quant_q8a(x, qr, n);
		check_q8a_ref(x, qr, n);
		unsigned i = 0;
		for (const struct aw_kern *k; (k = next_variant(&i));) {
			memset(qv, 0x55, n / 32 * sizeof(*qv));
			k->quant_q8a(x, qv, n);
			for (size_t b = 0; b < n / 32; b++) {
				if (memcmp(&qr[b], &qv[b], sizeof(*qv)) != 0)
					fail_msg("%s: q8a block %zu differs (fill %d)", k->name, b,
						 how);
			}
		}
	}
	free(x);
	free(qr);
	free(qv);
}

/* ---- matrix products ------------------------------------------------------ */

struct mm_case {
	uint32_t type;
	uint32_t rows, cols, n_tok;
	enum fill wfill, xfill;
};

/* Build W of the case's type from floats, with optional extreme quants. */
static void *make_weights(const struct mm_case *c, int extreme)
{
	const size_t row_size = aw_type_row_size(c->type, c->cols);
	uint8_t *w = xmalloc(row_size * c->rows);
	float *f = xmalloc((size_t)c->cols * 4);

	for (uint32_t r = 0; r < c->rows; r++) {
		fill(f, c->cols, c->wfill);
		assert_int_equal(aw_quant_row(c->type, f, w + r * row_size, c->cols), 0);
		if (!extreme)
			continue;
		/* overwrite quants with the extremes of the format */
		for (uint32_t b = 0; b < c->cols / 32; b++) {
			if (c->type == AW_TYPE_Q8_0) {
				struct aw_block_q8_0 *blk =
					(struct aw_block_q8_0 *)(w + r * row_size) + b;

				blk->d = aw_f32_to_fp16(0.75f);
				for (int j = 0; j < 32; j++)
					blk->qs[j] = (r + b + j) % 3 == 0 ? -128
									  : ((j & 1) ? 127 : -127);
			} else if (c->type == AW_TYPE_Q4_0) {
				struct aw_block_q4_0 *blk =
					(struct aw_block_q4_0 *)(w + r * row_size) + b;

				blk->d = aw_f32_to_fp16(1.5f);
				for (int j = 0; j < 16; j++)
					blk->qs[j] = (r + b + j) % 2 ? 0x0f : 0xf0; /* -8 and +7 */
			}
		}
	}
	free(f);
	return w;
}

static int is_quant(uint32_t t)
{
	return t == AW_TYPE_Q8_0 || t == AW_TYPE_Q4_0;
}

/* Bound on |y - y_ref| for (t, r): 2 (K + 2) eps sum|terms|, see the header. */
static double mm_bound(const struct aw_kern_mat *w, const struct aw_kern_in *in, uint32_t t,
		       uint32_t r, double *ret_exact)
{
	double abs_sum = 0.0, exact = 0.0;
	uint32_t terms;

	if (is_quant(w->type)) {
		const uint32_t nb = w->cols / 32;

		terms = 8 * nb;
		for (uint32_t b = 0; b < nb; b++) {
			const struct aw_block_q8a *xb = in->xq + (size_t)t * nb + b;
			int64_t isum = 0, iabs = 0;

			for (uint32_t j = 0; j < 32; j++) {
				const int p = aw_kern_ref_wq(w, r, b, j) * xb->qs[j];

				isum += p;
				iabs += p < 0 ? -p : p;
			}
			const double sb = (double)(aw_kern_ref_wd(w, r, b) * xb->d);

			exact += sb * (double)isum;
			abs_sum += fabs(sb) * (double)iabs;
		}
	} else {
		float *row = xmalloc((size_t)w->cols * 4);

		terms = w->cols;
		aw_kern_mat_row(w, r, row);
		for (uint32_t i = 0; i < w->cols; i++) {
			const double term = (double)row[i] * in->x[(size_t)t * in->n_in + i];

			exact += term;
			abs_sum += fabs(term);
		}
		free(row);
	}
	*ret_exact = exact;
	return 2.0 * (terms + 2) * FLT_EPSILON * abs_sum + 1e-37;
}

static void run_mm_case(const struct mm_case *c, int extreme)
{
	void *wdata = make_weights(c, extreme);
	struct aw_kern_mat rows, x16, *mats[2] = {&rows, NULL};
	void *packed = NULL;
	float *x = xmalloc((size_t)c->n_tok * c->cols * 4);
	struct aw_block_q8a *xq = xmalloc(aw_kern_q8a_size(c->n_tok, c->cols) + 1);
	const size_t ny = (size_t)c->n_tok * c->rows;
	float *yr = xmalloc(ny * 4), *yv = xmalloc(ny * 4), *y2 = xmalloc(ny * 4);

	assert_int_equal(aw_kern_mat_init(c->type, c->rows, c->cols, wdata, &rows), 0);
	if (is_quant(c->type)) {
		packed = xmalloc(aw_kern_repack_size(c->type, c->rows, c->cols));
		assert_int_equal(aw_kern_repack(&rows, packed, &x16), 0);
		mats[1] = &x16;
		/* row dequantization reads both layouts identically */
		float *ra = xmalloc((size_t)c->cols * 4), *rb = xmalloc((size_t)c->cols * 4);

		for (uint32_t r = 0; r < c->rows; r++) {
			aw_kern_mat_row(&rows, r, ra);
			aw_kern_mat_row(&x16, r, rb);
			assert_memory_equal(ra, rb, (size_t)c->cols * 4);
		}
		free(ra);
		free(rb);
	}
	fill(x, (size_t)c->n_tok * c->cols, c->xfill);
	for (uint32_t t = 0; t < c->n_tok; t++)
		aw_kern_ref_quant_q8a(x + (size_t)t * c->cols, xq + (size_t)t * (c->cols / 32),
				      c->cols);
	const struct aw_kern_in in = {.n_tok = c->n_tok, .n_in = c->cols, .x = x, .xq = xq};

	for (int l = 0; l < 2 && mats[l]; l++) {
		const struct aw_kern_mat *w = mats[l];

		aw_kern_ref_matmul(w, &in, yr, c->rows, 0, c->rows);
		/* the reference against double arithmetic (and the X16 repack against
		 * the GGUF rows: same reference arithmetic, so bit-identical) */
		for (uint32_t t = 0; t < c->n_tok; t++) {
			for (uint32_t r = 0; r < c->rows; r++) {
				double exact;
				const double bound = mm_bound(w, &in, t, r, &exact);
				const float got = yr[(size_t)t * c->rows + r];

				if (!(fabs(got - exact) <= bound))
					fail_msg("ref %s layout %d: y[%u][%u] = %g, exact %g, "
						 "bound %g",
						 aw_type_name(c->type), l, t, r, got, exact, bound);
			}
		}
		if (l == 1)
			assert_memory_equal(yr, y2, ny * 4);
		memcpy(y2, yr, ny * 4);

		unsigned i = 0;
		for (const struct aw_kern *k; (k = next_variant(&i));) {
			/* whole range, then two pieces split on the tile */
			for (size_t j = 0; j < ny; j++)
				yv[j] = NAN;
			const uint32_t mid = c->rows > 16 ? 16 * ((c->rows / 16 + 1) / 2) : c->rows;

			k->matmul(w, &in, yv, c->rows, 0, mid);
			k->matmul(w, &in, yv, c->rows, mid, c->rows);
			for (uint32_t t = 0; t < c->n_tok; t++) {
				for (uint32_t r = 0; r < c->rows; r++) {
					double exact;
					const double bound = mm_bound(w, &in, t, r, &exact);
					const float ref = yr[(size_t)t * c->rows + r];
					const float got = yv[(size_t)t * c->rows + r];

					if (!(fabs((double)got - ref) <= bound))
						fail_msg(
							"%s %s layout %d %ux%u n_tok %u fill %d/%d "
							"extreme %d: y[%u][%u] = %.9g, ref %.9g, "
							"bound %g",
							k->name, aw_type_name(c->type), l, c->rows,
							c->cols, c->n_tok, c->wfill, c->xfill,
							extreme, t, r, got, ref, bound);
				}
			}
		}
	}
	free(wdata);
	free(packed);
	free(x);
	free(xq);
	free(yr);
	free(yv);
	free(y2);
}

static void test_matmul_random(void **state)
{
	(void)state;
	static const uint32_t types[] = {AW_TYPE_F32, AW_TYPE_F16, AW_TYPE_BF16, AW_TYPE_Q8_0,
					 AW_TYPE_Q4_0};
	static const uint32_t shapes[][2] = {{16, 32},	{37, 96}, {33, 160},
					     {64, 288}, {5, 224}, {113, 64}};

	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
			for (uint32_t n_tok = 1; n_tok <= 17; n_tok += (n_tok < 6 ? 1 : 5)) {
				const struct mm_case c = {types[ti], shapes[si][0], shapes[si][1],
							  n_tok,     FILL_RANDOM,   FILL_RANDOM};

				run_mm_case(&c, 0);
			}
		}
	}
}

static void test_matmul_extremes(void **state)
{
	(void)state;
	static const uint32_t types[] = {AW_TYPE_F32, AW_TYPE_F16, AW_TYPE_BF16, AW_TYPE_Q8_0,
					 AW_TYPE_Q4_0};
	static const enum fill fills[] = {FILL_ZERO, FILL_HUGE, FILL_EQUAL, FILL_SPIKY};

	for (size_t ti = 0; ti < sizeof(types) / sizeof(types[0]); ti++) {
		for (size_t fi = 0; fi < sizeof(fills) / sizeof(fills[0]); fi++) {
			/* huge floats overflow f16/bf16 weights to inf: keep weights finite there */
			const enum fill wf = fills[fi] == FILL_HUGE && types[ti] != AW_TYPE_F32
						     ? FILL_SPIKY
						     : fills[fi];
			const struct mm_case c = {
				types[ti], 35, 96,
				7,	   wf, fills[fi] == FILL_HUGE ? FILL_EQUAL : fills[fi]};

			run_mm_case(&c, 0);
		}
		if (is_quant(types[ti])) {
			/* extreme quants against extreme activations (+-127 everywhere) */
			const struct mm_case c = {types[ti], 21, 160, 9, FILL_RANDOM, FILL_EQUAL};
			const struct mm_case c2 = {types[ti], 48, 64, 17, FILL_RANDOM, FILL_RANDOM};

			run_mm_case(&c, 1);
			run_mm_case(&c2, 1);
		}
	}
}

/* ---- elementwise kernels ------------------------------------------------------- */

static void test_rmsnorm(void **state)
{
	(void)state;
	static const size_t sizes[] = {1, 7, 64, 100, 288, 2048};

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		const size_t n = sizes[si];
		float *x = xmalloc(n * 4), *w = xmalloc(n * 4), *yr = xmalloc(n * 4),
		      *yv = xmalloc(n * 4);

		fill(x, n, FILL_RANDOM);
		fill(w, n, FILL_RANDOM);
		aw_kern_ref_rmsnorm(yr, x, w, n, 1e-5f);
		unsigned i = 0;
		for (const struct aw_kern *k; (k = next_variant(&i));) {
			memcpy(yv, x, n * 4);
			k->rmsnorm(yv, yv, w, n, 1e-5f); /* in place */
			/* sum of squares: relative error <= n eps in either order; the scale
			 * then <= (n/2 + 3) eps, y <= 2 more roundings */
			for (size_t j = 0; j < n; j++)
				if (!(fabsf(yv[j] - yr[j]) <=
				      (n + 8) * FLT_EPSILON * fabsf(yr[j]) + 1e-30f))
					fail_msg("%s rmsnorm n %zu: y[%zu] = %g, ref %g", k->name,
						 n, j, yv[j], yr[j]);
		}
		free(x), free(w), free(yr), free(yv);
	}
}

/* vector exp is accurate to a few ulp: allow 8 eps per exp */
#define EXP_EPS (8 * FLT_EPSILON)

static void test_softmax(void **state)
{
	(void)state;
	static const size_t sizes[] = {1, 5, 16, 33, 1000, 32000};

	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		const size_t n = sizes[si];
		float *x = xmalloc(n * 4), *yr = xmalloc(n * 4), *yv = xmalloc(n * 4);

		for (int how = FILL_RANDOM; how <= FILL_SPIKY; how++) {
			fill(x, n, how == FILL_HUGE ? FILL_SPIKY : how);
			if (how == FILL_HUGE)
				x[n / 2] = -1e30f; /* underflows to 0 */
			memcpy(yr, x, n * 4);
			aw_kern_ref_softmax(yr, n);
			unsigned i = 0;
			for (const struct aw_kern *k; (k = next_variant(&i));) {
				memcpy(yv, x, n * 4);
				k->softmax(yv, n);
				/* each p = e_i / sum: exp error in both, sum order n eps */
				for (size_t j = 0; j < n; j++)
					if (!(fabsf(yv[j] - yr[j]) <=
					      (2 * EXP_EPS + (n + 4) * FLT_EPSILON) * yr[j] +
						      1e-37f))
						fail_msg("%s softmax n %zu: p[%zu] = %g, ref %g",
							 k->name, n, j, yv[j], yr[j]);
			}
		}
		free(x), free(yr), free(yv);
	}
}

static void test_silu_add(void **state)
{
	(void)state;
	const size_t n = 1000;
	float *g = xmalloc(n * 4), *u = xmalloc(n * 4), *yr = xmalloc(n * 4), *yv = xmalloc(n * 4);

	for (size_t j = 0; j < n; j++)
		g[j] = frnd() * 30.0f, u[j] = frnd() * 2.0f;
	g[0] = -100.0f, g[1] = 100.0f, g[2] = 0.0f, g[3] = -87.0f, g[4] = 89.0f;
	aw_kern_ref_silu_mul(yr, g, u, n);
	unsigned i = 0;
	for (const struct aw_kern *k; (k = next_variant(&i));) {
		memcpy(yv, g, n * 4);
		k->silu_mul(yv, yv, u, n);
		/* one exp, an add, a division and a product: exp error + 4 roundings;
		 * plus, where a variant's exp saturates at e^-87 (AVX2), an absolute
		 * |g u| e^-87 < |g u| 2e-38 for g < -87 where the true value is ~0 */
		for (size_t j = 0; j < n; j++)
			if (!(fabsf(yv[j] - yr[j]) <= (EXP_EPS + 8 * FLT_EPSILON) * fabsf(yr[j]) +
							      fabsf(g[j] * u[j]) * 2e-38f + 1e-37f))
				fail_msg("%s silu_mul: y[%zu] = %g, ref %g (g %g)", k->name, j,
					 yv[j], yr[j], g[j]);
		k->add(yv, g, u, n);
		for (size_t j = 0; j < n; j++)
			assert_true(yv[j] == g[j] + u[j]); /* one rounding: exact match */
	}
	free(g), free(u), free(yr), free(yv);
}

/* One rope case: every variant against the reference. Bound per pair (a, b)
 * of the input: both sides compute the angle pos * freq[i] in double, from
 * frequencies within (n_rot + 2) 2^-53 relative of each other (pow per index
 * in the reference, a recurrence in the vector kernels), so the angles differ
 * by dt <= |pos| (n_rot + 2) 2^-53 (freq <= 1 here); each side's cos and sin
 * are within 2^-24 of the true ones at its angle (rounding to float; the
 * vector polynomials add < 3e-14), so they differ by <= 2^-23 + dt + 3e-14;
 * a c - b s then moves by (|a| + |b|) times that, and each side rounds its
 * two products and sum (<= 3 * 2^-24 (|a| + |b|) each). Plus 1e-44 for
 * subnormal products. */
static void rope_case(uint32_t mode, uint32_t head_dim, uint32_t n_rot, uint32_t n_heads,
		      uint32_t n_tok, const int32_t *pos, const float *ff, enum fill how)
{
	const size_t ldx = (size_t)head_dim * n_heads + 3;
	float *x = xmalloc(ldx * n_tok * 4), *xr = xmalloc(ldx * n_tok * 4),
	      *xv = xmalloc(ldx * n_tok * 4);
	const struct aw_kern_rope rope = {mode, head_dim, n_rot, 500000.0f, ff};

	fill(x, ldx * n_tok, how);
	memcpy(xr, x, ldx * n_tok * 4);
	aw_kern_ref_rope(xr, ldx, n_tok, pos, n_heads, &rope);
	unsigned i = 0;
	for (const struct aw_kern *k; (k = next_variant(&i));) {
		memcpy(xv, x, ldx * n_tok * 4);
		k->rope(xv, ldx, n_tok, pos, n_heads, &rope);
		for (uint32_t t = 0; t < n_tok; t++) {
			const double dt = fabs((double)pos[t]) * (n_rot + 2) * 0x1p-53;
			const double rel = 0x1p-23 + dt + 3e-14 + 6 * 0x1p-24;

			for (size_t j = 0; j < ldx; j++) {
				const size_t o = t * ldx + j;
				const size_t h = j / head_dim, e = j % head_dim;
				double bound = 0.0; /* outside the rotated part: unchanged */

				if (h < n_heads && e < n_rot) {
					const size_t half = n_rot / 2;
					const size_t pe = mode == AW_KERN_ROPE_NEOX
								  ? (e < half ? e + half : e - half)
								  : (e ^ 1);
					const size_t p = t * ldx + h * head_dim + pe;

					bound = (fabs((double)x[o]) + fabs((double)x[p])) * rel +
						1e-44;
				}
				if (!(fabs((double)xv[o] - (double)xr[o]) <= bound))
					fail_msg("%s rope mode %u head_dim %u n_rot %u pos %d: "
						 "x[%u][%zu] "
						 "= %.9g, ref %.9g, bound %g",
						 k->name, mode, head_dim, n_rot, pos[t], t, j,
						 xv[o], xr[o], bound);
			}
		}
	}
	free(x), free(xr), free(xv);
}

static void test_rope(void **state)
{
	(void)state;
	float ff[64];
	const int32_t pos[7] = {0, 1, 17, 17, 4095, 131071, 1 << 24};
	const int32_t pos0[1] = {0};

	for (int j = 0; j < 64; j++)
		ff[j] = 1.0f + (float)j / 4.0f;
	/* position 0 is the identity */
	{
		float x[64], xr[64];
		const struct aw_kern_rope rope = {AW_KERN_ROPE_NORM, 64, 64, 10000.0f, NULL};

		fill(x, 64, FILL_RANDOM);
		memcpy(xr, x, sizeof(x));
		aw_kern_ref_rope(xr, 64, 1, pos0, 1, &rope);
		assert_memory_equal(xr, x, sizeof(x));
	}
	for (uint32_t mode = 0; mode < 2; mode++) {
		rope_case(mode, 64, 48, 3, 7, pos, NULL, FILL_RANDOM);
		rope_case(mode, 64, 64, 3, 7, pos, ff, FILL_RANDOM);
		rope_case(mode, 48, 48, 5, 7, pos, NULL, FILL_RANDOM); /* stories15m */
		rope_case(mode, 128, 128, 2, 7, pos, ff, FILL_RANDOM); /* tail-free */
		rope_case(mode, 10, 6, 3, 7, pos, NULL, FILL_RANDOM);  /* scalar tails */
		rope_case(mode, 2, 2, 9, 7, pos, NULL, FILL_RANDOM);
		rope_case(mode, 34, 34, 2, 7, pos, NULL, FILL_RANDOM); /* 16 + 1 pairs */
		rope_case(mode, 64, 64, 2, 7, pos, NULL, FILL_HUGE);
		rope_case(mode, 64, 64, 2, 7, pos, NULL, FILL_ZERO);
		rope_case(mode, 64, 64, 2, 7, pos, NULL, FILL_SPIKY);
	}
}

static void attn_case(uint32_t kv_type, uint32_t n_kv, uint32_t block_rows, uint32_t n_q,
		      uint32_t head_dim, enum fill how)
{
	const uint32_t n_kvh = 2, kvh = 1; /* two KV heads per row, read the second */
	const size_t row_elems = (size_t)n_kvh * head_dim;
	const size_t esz = kv_type == AW_TYPE_F16 ? 2 : 4;
	const uint32_t nblk = (n_kv + block_rows - 1) / block_rows;
	void **kb = xmalloc(nblk * sizeof(void *)), **vb = xmalloc(nblk * sizeof(void *));
	float *q = xmalloc((size_t)n_q * head_dim * 4), *row = xmalloc(row_elems * 4);
	float * or = xmalloc((size_t)n_q * head_dim * 4), *ov = xmalloc((size_t)n_q * head_dim * 4);
	const float scale = 1.0f / sqrtf((float)head_dim);

	/* blocks allocated in reverse order so that they are not contiguous */
	for (uint32_t b = nblk; b-- > 0;) {
		kb[b] = xmalloc(block_rows * row_elems * esz);
		vb[b] = xmalloc(block_rows * row_elems * esz);
		for (uint32_t p = 0; p < block_rows; p++) {
			for (int kv = 0; kv < 2; kv++) {
				fill(row, row_elems, how);
				if (how == FILL_HUGE)
					for (size_t j = 0; j < row_elems; j++)
						row[j] = frnd() *
							 8.0f; /* scores +-~500: exp range */
				uint8_t *dst =
					(uint8_t *)(kv ? vb[b] : kb[b]) + p * row_elems * esz;

				assert_int_equal(aw_quant_row(kv_type, row, dst, row_elems), 0);
			}
		}
	}
	fill(q, (size_t)n_q * head_dim, how == FILL_HUGE ? FILL_RANDOM : how);
	if (how == FILL_HUGE)
		for (size_t j = 0; j < (size_t)n_q * head_dim; j++)
			q[j] *= 8.0f;
	const struct aw_kern_kv k = {(const void *const *)kb, block_rows, kv_type, row_elems * esz,
				     kvh * head_dim * esz};
	const struct aw_kern_kv v = {(const void *const *)vb, block_rows, kv_type, row_elems * esz,
				     kvh * head_dim * esz};

	aw_kern_ref_attn(or, head_dim, q, head_dim, n_q, &k, &v, n_kv, head_dim, scale);
	unsigned i = 0;
	for (const struct aw_kern *kn; (kn = next_variant(&i));) {
		kn->attn(ov, head_dim, q, head_dim, n_q, &k, &v, n_kv, head_dim, scale);
		for (uint32_t h = 0; h < n_q; h++) {
			/* Bound: scores differ by <= 2 hd eps S (S = scale sum|q k|, both
			 * orders), which moves each weight p_i/l by a relative 2 max(S)
			 * 2 hd eps; exp and the sums of n_kv terms add (n_kv + hd + 8) eps
			 * relative, all on A = sum p_i |v_i| / l. */
			double smax = 0.0, m = -INFINITY;
			double *s = calloc(n_kv, sizeof(double)), l = 0.0;

			for (uint32_t p = 0; p < n_kv; p++) {
				double sv = 0.0, sa = 0.0;

				for (uint32_t d = 0; d < head_dim; d++) {
					const void *kr = aw_kern_kv_row(&k, p);
					const float kd =
						kv_type == AW_TYPE_F16
							? aw_fp16_to_f32(((const aw_fp16 *)kr)[d])
							: ((const float *)kr)[d];

					sv += (double)q[h * head_dim + d] * kd;
					sa += fabs((double)q[h * head_dim + d] * kd);
				}
				s[p] = sv * scale;
				smax = fmax(smax, sa * scale);
				m = fmax(m, s[p]);
			}
			for (uint32_t p = 0; p < n_kv; p++)
				l += exp(s[p] - m);
			for (uint32_t d = 0; d < head_dim; d++) {
				double a = 0.0;

				for (uint32_t p = 0; p < n_kv; p++) {
					const void *vr = aw_kern_kv_row(&v, p);
					const float vd =
						kv_type == AW_TYPE_F16
							? aw_fp16_to_f32(((const aw_fp16 *)vr)[d])
							: ((const float *)vr)[d];

					a += exp(s[p] - m) * fabs(vd);
				}
				a /= l;
				const double bound =
					a * (4.0 * smax * 2 * head_dim * FLT_EPSILON +
					     (n_kv + head_dim + 8) * FLT_EPSILON + 2 * EXP_EPS) +
					1e-30;
				const float got = ov[h * head_dim + d], ref = or [h * head_dim + d];

				if (!(fabs((double)got - ref) <= bound))
					fail_msg("%s attn %s n_kv %u n_q %u: out[%u][%u] = %.9g, "
						 "ref %.9g, bound %g",
						 kn->name, aw_type_name(kv_type), n_kv, n_q, h, d,
						 got, ref, bound);
			}
			free(s);
		}
	}
	for (uint32_t b = 0; b < nblk; b++)
		free(kb[b]), free(vb[b]);
	free(kb), free(vb), free(q), free(row), free(or), free(ov);
}

static void test_attn(void **state)
{
	(void)state;
	static const uint32_t n_kvs[] = {1, 2, 15, 16, 17, 100, 300};

	for (int ty = 0; ty < 2; ty++) {
		const uint32_t type = ty ? AW_TYPE_F16 : AW_TYPE_F32;

		for (size_t j = 0; j < sizeof(n_kvs) / sizeof(n_kvs[0]); j++)
			attn_case(type, n_kvs[j], 16, 1 + (uint32_t)j % 4, 64, FILL_RANDOM);
		attn_case(type, 77, 5, 8, 128, FILL_RANDOM);
		attn_case(type, 40, 7, 3, 32, FILL_HUGE);
		attn_case(type, 130, 16, 5, 48, FILL_RANDOM); /* stories15m */
		attn_case(type, 65, 3, 9, 48, FILL_HUGE);
		attn_case(type, 17, 16, 3, 40, FILL_RANDOM); /* masked tail */
		attn_case(type, 31, 8, 2, 96, FILL_SPIKY);
		attn_case(type, 64, 16, 16, 64, FILL_RANDOM); /* the widest GQA group */
		attn_case(type, 33, 32, 2, 64, FILL_EQUAL);
		attn_case(type, 9, 4, 4, 64, FILL_ZERO);
	}
}

/* ---- dispatch ------------------------------------------------------------------ */

static void test_select(void **state)
{
	(void)state;
	/* the run may force a level through AW_ISA (tests/run.sh): check it
	 * was obeyed, then test the automatic choice without it */
	const char *env = getenv("AW_ISA");
	char forced[32] = "";

	if (env)
		snprintf(forced, sizeof(forced), "%s", env);
	const struct aw_kern *chosen = aw_kern_select(NULL);

	assert_non_null(chosen);
	printf("# AW_ISA=%s: chosen variant %s\n", forced, chosen->name);
	if (*forced && aw_kern_select(forced))
		assert_ptr_equal(chosen, aw_kern_select(forced));
	unsetenv("AW_ISA");
	const struct aw_kern *best = aw_kern_select(NULL);
	int ok = 0;

	assert_non_null(best);
	printf("# best variant on this CPU: %s\n", best->name);
	assert_ptr_equal(aw_kern_select("ref"), &aw_kern_ref);
	assert_null(aw_kern_select("no-such-isa"));
	/* every supported variant can be forced; the best is the first supported */
	const struct aw_kern *first = NULL;
	for (unsigned i = 0; aw_kern_variant(i, &ok); i++) {
		const struct aw_kern *k = aw_kern_variant(i, &ok);

		if (ok && !first)
			first = k;
		if (ok)
			assert_ptr_equal(aw_kern_select(k->name), k);
		else
			assert_null(aw_kern_select(k->name));
	}
	assert_ptr_equal(first, best);
	/* AW_ISA caps the automatic choice */
	setenv("AW_ISA", "ref", 1);
	assert_ptr_equal(aw_kern_select(NULL), &aw_kern_ref);
	setenv("AW_ISA", "bogus", 1);
	assert_ptr_equal(aw_kern_select(NULL), best);
	unsetenv("AW_ISA");
	/* capping at each supported variant chooses it */
	for (unsigned i = 0; aw_kern_variant(i, &ok); i++) {
		const struct aw_kern *k = aw_kern_variant(i, &ok);

		setenv("AW_ISA", k->name, 1);
		if (ok)
			assert_ptr_equal(aw_kern_select(NULL), k);
		unsetenv("AW_ISA");
	}
	if (*forced)
		setenv("AW_ISA", forced, 1);
	/* shape checks */
	struct aw_kern_mat m;
	assert_int_equal(aw_kern_mat_init(AW_TYPE_Q8_0, 4, 33, NULL, &m), -EINVAL);
	assert_int_equal(aw_kern_mat_init(AW_TYPE_Q2_K, 4, 256, NULL, &m), -EINVAL);
	assert_int_equal(aw_kern_repack_size(AW_TYPE_F16, 16, 64), 0);
	assert_int_equal(aw_kern_repack_size(AW_TYPE_Q4_0, 17, 64), 2 * 2 * (256 + 32));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_select),	      cmocka_unit_test(test_quant_q8a),
		cmocka_unit_test(test_matmul_random), cmocka_unit_test(test_matmul_extremes),
		cmocka_unit_test(test_rmsnorm),	      cmocka_unit_test(test_softmax),
		cmocka_unit_test(test_silu_add),      cmocka_unit_test(test_rope),
		cmocka_unit_test(test_attn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
