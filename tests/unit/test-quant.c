/* test-quant.c — the reference conversions in inference/quant.c: fp16 and
 * bf16 against exact expectations (every fp16 value round-trips, rounding is
 * to nearest even), and block quantizers against the bounds their arithmetic
 * guarantees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* Every one of the 65536 half values survives a round trip (NaNs stay NaN). */
static void test_fp16_roundtrip(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = aw_fp16_to_f32((aw_fp16)h);
		aw_fp16 back = aw_f32_to_fp16(f);

		if (isnan(f)) {
			assert_true(isnan(aw_fp16_to_f32(back)));
			continue;
		}
		assert_int_equal(back, h);
	}
}

/* Values exactly half-way between two halves round to the even one. */
static void test_fp16_rounding(void **state)
{
	(void)state;
	/* 1 + 2^-11 lies between 1 (0x3c00) and 1 + 2^-10 (0x3c01): even is 0x3c00 */
	assert_int_equal(aw_f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
	/* 1 + 3*2^-11 lies between 0x3c01 and 0x3c02: even is 0x3c02 */
	assert_int_equal(aw_f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
	assert_int_equal(aw_f32_to_fp16(65504.0f), 0x7bff);
	assert_int_equal(aw_f32_to_fp16(65520.0f), 0x7c00); /* rounds to inf */
	assert_int_equal(aw_f32_to_fp16(1e10f), 0x7c00);
	assert_int_equal(aw_f32_to_fp16(-1e10f), 0xfc00);
	assert_int_equal(aw_f32_to_fp16(0x1p-24f), 0x0001);   /* smallest subnormal */
	assert_int_equal(aw_f32_to_fp16(0x1p-25f), 0x0000);   /* tie to even: 0 */
	assert_int_equal(aw_f32_to_fp16(0x1.8p-25f), 0x0001); /* above the tie */
	assert_int_equal(aw_f32_to_fp16(-0.0f), 0x8000);
	assert_true(isnan(aw_fp16_to_f32(aw_f32_to_fp16(NAN))));
}

static void test_bf16(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = aw_bf16_to_f32((aw_bf16)h);
		if (!isnan(f))
			assert_int_equal(aw_f32_to_bf16(f), h);
	}
	/* 1 + 2^-8 is the tie between 1 and 1 + 2^-7: even is 1.0 (0x3f80) */
	assert_int_equal(aw_f32_to_bf16(bits_f32(0x3f808000)), 0x3f80);
	assert_int_equal(aw_f32_to_bf16(bits_f32(0x3f818000)), 0x3f82);
	assert_true(isnan(aw_bf16_to_f32(aw_f32_to_bf16(NAN))));
}

static void test_type_table(void **state)
{
	(void)state;
	assert_int_equal(aw_type_row_size(AW_TYPE_Q8_0, 64), 68);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_0, 64), 36);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_0, 33), 0);
	assert_int_equal(aw_type_row_size(AW_TYPE_F16, 3), 6);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_K, 256), 144);
	assert_int_equal(aw_type_row_size(5, 32), 0); /* a removed GGML type */
	assert_int_equal(aw_type_row_size(1000, 32), 0);
	assert_int_equal(aw_type_from_name("Q8_0"), AW_TYPE_Q8_0);
	assert_int_equal(aw_type_from_name("bf16"), AW_TYPE_BF16);
	assert_true(aw_type_from_name("q9_9") < 0);
	assert_string_equal(aw_type_name(AW_TYPE_Q6_K), "q6_k");
	assert_string_equal(aw_type_name(77), "unknown");
}

/* Q8_0: |x - deq(q(x))| <= d/2 per element (rounding), plus the fp16 error
 * of d itself times |q| <= 127: |d16 - d| <= d * 2^-11. */
static void test_q8_0_bounds(void **state)
{
	enum { N = 32 * 37 };
	static float x[N], y[N];
	static struct aw_block_q8_0 q[N / 32];

	(void)state;
	srand(1);
	for (int i = 0; i < N; i++)
		x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * (i % 7 == 0 ? 100.0f : 2.0f);
	for (int i = 0; i < 32; i++)
		x[64 + i] = 0.0f; /* an all-zero block */
	aw_quant_row(AW_TYPE_Q8_0, x, q, N);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q8_0, q, y, N), 0);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		const float d = amax / 127.0f;
		for (int j = 0; j < 32; j++) {
			const float err = fabsf(x[b * 32 + j] - y[b * 32 + j]);
			assert_true(err <= d * 0.5f + 127.0f * d * 0x1p-11f + 1e-30f);
		}
	}
	for (int i = 0; i < 32; i++)
		assert_true(y[64 + i] == 0.0f);
}

/* Q4_0: the element of largest magnitude maps to -8 exactly; the others are
 * within d/2 (rounding) except at the clamp of +7.5 (then within d). */
static void test_q4_0_bounds(void **state)
{
	enum { N = 32 * 19 };
	static float x[N], y[N];
	static struct aw_block_q4_0 q[N / 32];

	(void)state;
	srand(2);
	for (int i = 0; i < N; i++)
		x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 3.0f;
	aw_quant_row(AW_TYPE_Q4_0, x, q, N);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_0, q, y, N), 0);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		const float d = amax / 8.0f;
		for (int j = 0; j < 32; j++) {
			const float err = fabsf(x[b * 32 + j] - y[b * 32 + j]);
			assert_true(err <= d * (1.0f + 0x1p-10f) + 1e-30f);
		}
	}
	/* the known layout: 16 low nibbles then 16 high nibbles */
	float z[32];
	for (int j = 0; j < 32; j++)
		z[j] = (float)(j - 16) / 2.0f; /* -8 .. 7.5 */
	struct aw_block_q4_0 one;
	aw_quant_q4_0(z, &one, 32);
	assert_int_equal(aw_fp16_to_f32(one.d), 1.0f); /* max -8 -> d = 1 */
	assert_int_equal(one.qs[0] & 0x0f, 0);	       /* z[0] = -8 -> q = 0 */
	assert_int_equal(one.qs[0] >> 4, 8);	       /* z[16] = 0 -> q = 8 */
}

/* --- K-quants and legacy fallbacks: hand-built blocks, packed by the layout
 * comments of quant.h, dequantize to values computed from the formulas. All
 * parameters are small integers times powers of two, so every expected value
 * is exact in float and the comparison is exact. */

/* Pack 6-bit sc[8], m[8] into scales[12] as the spec in quant.h reads them. */
static void pack_k_scales(uint8_t *q, const int *sc, const int *m)
{
	memset(q, 0, 12);
	for (int s = 0; s < 4; s++) {
		q[s] = (uint8_t)((sc[s] & 63) | (sc[s + 4] >> 4) << 6);
		q[s + 4] = (uint8_t)((m[s] & 63) | (m[s + 4] >> 4) << 6);
		q[s + 8] = (uint8_t)((sc[s + 4] & 15) | (m[s + 4] & 15) << 4);
	}
}

static void test_q4_k_known(void **state)
{
	struct aw_block_q4_k b[2];
	float y[512];
	int sc[8], m[8];

	(void)state;
	memset(b, 0, sizeof(b));
	for (int s = 0; s < 8; s++) {
		sc[s] = 8 * s + 1; /* 1..57: the high bits of s >= 4 are exercised */
		m[s] = 63 - 7 * s; /* 63..14 */
	}
	for (int k = 0; k < 2; k++) {
		b[k].d = 0x3c00 + (uint16_t)(k * 0x400); /* 1.0, then 2.0 */
		b[k].dmin = 0x3800;			 /* 0.5 */
		pack_k_scales(b[k].scales, sc, m);
		for (int e = 0; e < 256; e++) {
			const int q = (e * 7 + k) % 16, c = e / 64, l = e % 32;
			b[k].qs[32 * c + l] |= (uint8_t)((e % 64) < 32 ? q : q << 4);
		}
	}
	for (int s = 0; s < 8; s++) {
		uint8_t gs, gm;
		aw_k_scale_min(b[0].scales, s, &gs, &gm);
		assert_int_equal(gs, sc[s]);
		assert_int_equal(gm, m[s]);
	}
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_K, b, y, 512), 0);
	for (int k = 0; k < 2; k++)
		for (int e = 0; e < 256; e++) {
			const int q = (e * 7 + k) % 16, s = e / 32;
			const float want = (float)(k + 1) * (float)(sc[s] * q) - 0.5f * (float)m[s];
			assert_true(y[256 * k + e] == want);
		}
}

static void test_q5_k_known(void **state)
{
	struct aw_block_q5_k b;
	float y[256];
	int sc[8], m[8];

	(void)state;
	memset(&b, 0, sizeof(b));
	for (int s = 0; s < 8; s++) {
		sc[s] = 63 - 5 * s;
		m[s] = 9 * s; /* 0..63 */
	}
	b.d = 0x3400;	 /* 0.25 */
	b.dmin = 0x3c00; /* 1.0 */
	pack_k_scales(b.scales, sc, m);
	for (int e = 0; e < 256; e++) {
		const int q = (e * 11 + 3) % 32, c = e / 64, l = e % 32;
		b.qs[32 * c + l] |= (uint8_t)((e % 64) < 32 ? (q & 15) : (q & 15) << 4);
		b.qh[l] |= (uint8_t)((q >> 4) << (e / 32)); /* bit s = bit 4 of element 32s+l */
	}
	assert_int_equal(aw_dequant_row(AW_TYPE_Q5_K, &b, y, 256), 0);
	for (int e = 0; e < 256; e++) {
		const int q = (e * 11 + 3) % 32, s = e / 32;
		assert_true(y[e] == 0.25f * (float)(sc[s] * q) - (float)m[s]);
	}
}

static void test_q6_k_known(void **state)
{
	struct aw_block_q6_k b;
	float y[256];

	(void)state;
	memset(&b, 0, sizeof(b));
	b.d = 0x3400; /* 0.25 */
	for (int s = 0; s < 16; s++)
		b.scales[s] = (int8_t)(9 * s - 70); /* -70..65, signed */
	for (int e = 0; e < 256; e++) {
		const int q = (e * 13 + 5) % 64, h = e / 128, k = (e % 128) / 32, l = e % 32;
		b.ql[64 * h + 32 * (k & 1) + l] |= (uint8_t)(k < 2 ? (q & 15) : (q & 15) << 4);
		b.qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
	}
	assert_int_equal(aw_dequant_row(AW_TYPE_Q6_K, &b, y, 256), 0);
	for (int e = 0; e < 256; e++) {
		const int q = (e * 13 + 5) % 64, s = e / 16;
		assert_true(y[e] == 0.25f * (float)(b.scales[s] * (q - 32)));
	}
}

static void test_legacy_known(void **state)
{
	struct aw_block_q4_1 a;
	struct aw_block_q5_0 b;
	struct aw_block_q5_1 c;
	float y[32];
	uint32_t qh = 0;

	(void)state;
	a.d = 0x4000; /* 2.0 */
	a.m = 0xbc00; /* -1.0 */
	for (int j = 0; j < 16; j++)
		a.qs[j] = (uint8_t)(j | (15 - j) << 4);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_1, &a, y, 32), 0);
	for (int j = 0; j < 16; j++) {
		assert_true(y[j] == 2.0f * (float)j - 1.0f);
		assert_true(y[j + 16] == 2.0f * (float)(15 - j) - 1.0f);
	}
	b.d = 0x3800; /* 0.5 */
	c.d = 0x3800;
	c.m = 0x4200; /* 3.0 */
	for (int j = 0; j < 32; j++) {
		const int q = (j * 5 + 2) % 32;
		if (j < 16)
			b.qs[j] = (uint8_t)(q & 15);
		else
			b.qs[j - 16] |= (uint8_t)((q & 15) << 4);
		qh |= (uint32_t)(q >> 4) << j;
	}
	for (int i = 0; i < 4; i++)
		b.qh[i] = c.qh[i] = (uint8_t)(qh >> (8 * i));
	memcpy(c.qs, b.qs, 16);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q5_0, &b, y, 32), 0);
	for (int j = 0; j < 32; j++)
		assert_true(y[j] == 0.5f * (float)((j * 5 + 2) % 32 - 16));
	assert_int_equal(aw_dequant_row(AW_TYPE_Q5_1, &c, y, 32), 0);
	for (int j = 0; j < 32; j++)
		assert_true(y[j] == 0.5f * (float)((j * 5 + 2) % 32) + 3.0f);
}

static void fill_random(float *x, int n, unsigned seed)
{
	srand(seed);
	for (int i = 0; i < n; i++) {
		/* sub-blocks of very different amplitude and offset */
		const float amp = (i / 16) % 5 == 0 ? 40.0f : (i / 32) % 3 == 0 ? 0.01f : 1.0f;
		x[i] = ((float)rand() / (float)RAND_MAX - 0.3f) * amp;
	}
	for (int i = 256; i < 288; i++)
		x[i] = 0.0f; /* an all-zero sub-block */
}

/* Q4_K/Q5_K: the quantizer rounds sub-block scales up (the range fits in
 * qmax*d*sc) and mins to nearest (offset error <= dmin/2), so an element is
 * off by <= d*sc/2 when not clamped and by <= dmin/2 at a clamp. Slack: the
 * 6-bit scale can clamp at 63 when fp16 rounded d down (relative 2^-11). */
static void k_bounds(uint32_t t, int qmax)
{
	enum { N = 256 * 6 };
	static float x[N], y[N];
	static uint8_t q[N / 256 * 176];

	fill_random(x, N, 3);
	assert_int_equal(aw_quant_row(t, x, q, N), 0);
	assert_int_equal(aw_quant_check_row(t, q, N, NULL), 0);
	assert_int_equal(aw_dequant_row(t, q, y, N), 0);
	for (int i = 0; i < N; i++) {
		const uint8_t *blk = q + (size_t)(i / 256) * aw_type_info(t)->size;
		aw_fp16 hd, hm;
		uint8_t sc, m;
		float lo = 0.0f, hi = -INFINITY;

		memcpy(&hd, blk, 2);
		memcpy(&hm, blk + 2, 2);
		aw_k_scale_min(blk + 4, (i % 256) / 32, &sc, &m);
		for (int j = i / 32 * 32; j < i / 32 * 32 + 32; j++) {
			lo = fminf(lo, x[j]);
			hi = fmaxf(hi, x[j]);
		}
		const float dd = aw_fp16_to_f32(hd) * sc, dmin = aw_fp16_to_f32(hm);
		const float bound = fmaxf(dd, dmin) * 0.5f + (hi - lo) * 0x1p-9f + 1e-30f;
		assert_true(fabsf(x[i] - y[i]) <= bound);
		assert_true(dd * (float)qmax * (1.0f + 0x1p-9f) >= hi - lo);
	}
	for (int i = 256; i < 288; i++)
		assert_true(fabsf(y[i]) <=
			    aw_fp16_to_f32(((const aw_fp16 *)(q + aw_type_info(t)->size))[1]) *
				    0.5f);
}

static void test_q4_k_bounds(void **state)
{
	(void)state;
	k_bounds(AW_TYPE_Q4_K, 15);
}

static void test_q5_k_bounds(void **state)
{
	(void)state;
	k_bounds(AW_TYPE_Q5_K, 31);
}

/* Q6_K: sub-block scales rounded up in magnitude, so no quant clamps: error
 * <= d*sc/2 (plus the 127-clamp slack when fp16 rounded d down). */
static void test_q6_k_bounds(void **state)
{
	enum { N = 256 * 5 };
	static float x[N], y[N];
	static struct aw_block_q6_k q[N / 256];

	(void)state;
	fill_random(x, N, 4);
	assert_int_equal(aw_quant_row(AW_TYPE_Q6_K, x, q, N), 0);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q6_K, q, y, N), 0);
	for (int i = 0; i < N; i++) {
		const struct aw_block_q6_k *b = &q[i / 256];
		float amax = 0.0f;

		for (int j = i / 16 * 16; j < i / 16 * 16 + 16; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		const float dd = aw_fp16_to_f32(b->d) * (float)b->scales[(i % 256) / 16];
		assert_true(fabsf(x[i] - y[i]) <= dd * 0.5f + amax * 0x1p-9f + 1e-30f);
	}
}

/* Q4_1 / Q5_1: d = range/qmax, min stored in fp16: error <= d/2 plus the fp16
 * errors of d (times q <= qmax) and of m. Q5_0: like Q4_0 (d at the clamp). */
static void test_legacy_bounds(void **state)
{
	enum { N = 32 * 23 };
	static float x[N], y[N];
	static uint8_t q[N / 32 * 24];
	const uint32_t types[] = {AW_TYPE_Q4_1, AW_TYPE_Q5_0, AW_TYPE_Q5_1};

	(void)state;
	fill_random(x, N, 5);
	for (int k = 0; k < 3; k++) {
		const uint32_t t = types[k];
		assert_int_equal(aw_quant_row(t, x, q, N), 0);
		assert_int_equal(aw_dequant_row(t, q, y, N), 0);
		for (int i = 0; i < N; i++) {
			float lo = INFINITY, hi = -INFINITY, amax = 0.0f;
			for (int j = i / 32 * 32; j < i / 32 * 32 + 32; j++) {
				lo = fminf(lo, x[j]);
				hi = fmaxf(hi, x[j]);
				amax = fmaxf(amax, fabsf(x[j]));
			}
			float bound;
			if (t == AW_TYPE_Q5_0)
				bound = amax / 16.0f * (1.0f + 0x1p-10f);
			else
				bound = (hi - lo) / (t == AW_TYPE_Q4_1 ? 15.0f : 31.0f) * 0.5f +
					(hi - lo + fabsf(lo)) * 0x1p-10f;
			assert_true(fabsf(x[i] - y[i]) <= bound + 1e-30f);
		}
	}
}

/* Load-time validation: NaN/Inf in any fp16 scale is found, with its block. */
static void test_check_row(void **state)
{
	float x[512];
	static uint8_t q[2 * 210];
	size_t blk = 99;

	(void)state;
	fill_random(x, 512, 6);
	const uint32_t types[] = {AW_TYPE_Q4_K, AW_TYPE_Q5_K, AW_TYPE_Q6_K, AW_TYPE_Q4_1,
				  AW_TYPE_Q5_0, AW_TYPE_Q5_1, AW_TYPE_Q8_0, AW_TYPE_Q4_0};
	for (int k = 0; k < 8; k++) {
		const uint32_t t = types[k];
		const size_t bs = aw_type_info(t)->size;
		const size_t d_off = t == AW_TYPE_Q6_K ? 208 : 0;
		const int n =
			t == AW_TYPE_Q4_K || t == AW_TYPE_Q5_K || t == AW_TYPE_Q6_K ? 512 : 64;

		assert_int_equal(aw_quant_row(t, x, q, (size_t)n), 0);
		assert_int_equal(aw_quant_check_row(t, q, (size_t)n, &blk), 0);
		q[bs + d_off + 1] = 0x7e; /* d of block 1: NaN */
		assert_int_equal(aw_quant_check_row(t, q, (size_t)n, &blk), -ERANGE);
		assert_int_equal(blk, 1);
		if (t != AW_TYPE_Q6_K && t != AW_TYPE_Q8_0 && t != AW_TYPE_Q4_0 &&
		    t != AW_TYPE_Q5_0) {
			assert_int_equal(aw_quant_row(t, x, q, (size_t)n), 0);
			q[2] = 0x00; /* dmin / m of block 0: -Inf */
			q[3] = 0xfc;
			assert_int_equal(aw_quant_check_row(t, q, (size_t)n, &blk), -ERANGE);
			assert_int_equal(blk, 0);
		}
	}
	assert_int_equal(aw_quant_check_row(AW_TYPE_Q4_K, q, 100, NULL), -EINVAL);
	assert_int_equal(aw_quant_row(AW_TYPE_Q6_K, x, q, 100), -EINVAL);
	assert_int_equal(aw_quant_check_row(AW_TYPE_F32, x, 3, NULL), 0);
}

static void test_bad_args(void **state)
{
	float x[33] = {0};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(aw_quant_row(AW_TYPE_Q8_0, x, buf, 33), -22);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_0, buf, x, 31), -22);
	assert_int_equal(aw_dequant_row(999, buf, x, 1), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp16_roundtrip), cmocka_unit_test(test_fp16_rounding),
		cmocka_unit_test(test_bf16),	       cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_q8_0_bounds),    cmocka_unit_test(test_q4_0_bounds),
		cmocka_unit_test(test_bad_args),       cmocka_unit_test(test_q4_k_known),
		cmocka_unit_test(test_q5_k_known),     cmocka_unit_test(test_q6_k_known),
		cmocka_unit_test(test_legacy_known),   cmocka_unit_test(test_q4_k_bounds),
		cmocka_unit_test(test_q5_k_bounds),    cmocka_unit_test(test_q6_k_bounds),
		cmocka_unit_test(test_legacy_bounds),  cmocka_unit_test(test_check_row),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
