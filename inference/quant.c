/* quant.c — type table and reference (plain C) conversions for GGML block
 * types. These are the specification the SIMD kernels are checked against;
 * each follows ggml's reference quantizer so that files written here load in
 * llama.cpp and produce the same numbers. */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>

/* clang-format off */
static const struct aw_type_info type_table[AW_TYPE_COUNT] = {
	[AW_TYPE_F32] = {"f32", 1, 4},	     [AW_TYPE_F16] = {"f16", 1, 2},
	[AW_TYPE_Q4_0] = {"q4_0", 32, 18},   [AW_TYPE_Q4_1] = {"q4_1", 32, 20},
	[AW_TYPE_Q5_0] = {"q5_0", 32, 22},   [AW_TYPE_Q5_1] = {"q5_1", 32, 24},
	[AW_TYPE_Q8_0] = {"q8_0", 32, 34},   [AW_TYPE_Q8_1] = {"q8_1", 32, 36},
	[AW_TYPE_Q2_K] = {"q2_k", 256, 84},  [AW_TYPE_Q3_K] = {"q3_k", 256, 110},
	[AW_TYPE_Q4_K] = {"q4_k", 256, 144}, [AW_TYPE_Q5_K] = {"q5_k", 256, 176},
	[AW_TYPE_Q6_K] = {"q6_k", 256, 210}, [AW_TYPE_Q8_K] = {"q8_k", 256, 292},
	[AW_TYPE_I8] = {"i8", 1, 1},	     [AW_TYPE_I16] = {"i16", 1, 2},
	[AW_TYPE_I32] = {"i32", 1, 4},	     [AW_TYPE_I64] = {"i64", 1, 8},
	[AW_TYPE_F64] = {"f64", 1, 8},	     [AW_TYPE_BF16] = {"bf16", 1, 2},
};
/* clang-format on */

const struct aw_type_info *aw_type_info(uint32_t t)
{
	if (t >= AW_TYPE_COUNT || !type_table[t].name)
		return NULL;
	return &type_table[t];
}

const char *aw_type_name(uint32_t t)
{
	const struct aw_type_info *ti = aw_type_info(t);

	return ti ? ti->name : "unknown";
}

int aw_type_from_name(const char *name)
{
	for (int t = 0; t < AW_TYPE_COUNT; t++)
		if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0)
			return t;
	return -EINVAL;
}

size_t aw_type_row_size(uint32_t t, uint64_t n)
{
	const struct aw_type_info *ti = aw_type_info(t);

	if (!ti || n % ti->block)
		return 0;
	return (size_t)(n / ti->block) * ti->size;
}

static uint32_t f32_bits(float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	return u;
}

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

float aw_fp16_to_f32(aw_fp16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;

	if (exp == 0x1f) /* inf / NaN */
		return bits_f32(sign | 0x7f800000 | (man << 13));
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		float v = (float)man * 0x1p-24f;
		return sign ? -v : v;
	}
	return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

aw_fp16 aw_f32_to_fp16(float f)
{
	uint32_t u = f32_bits(f);
	uint32_t sign = (u >> 16) & 0x8000;
	uint32_t exp = (u >> 23) & 0xff;
	uint32_t man = u & 0x7fffff;

	if (exp == 0xff) /* inf stays inf; NaN keeps a quiet payload bit */
		return (aw_fp16)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	int e = (int)exp - 127 + 15;
	if (e >= 0x1f) /* overflow */
		return (aw_fp16)(sign | 0x7c00);
	if (e <= 0) {
		/* subnormal half (or zero): shift in the implicit bit, round to even */
		if (e < -10)
			return (aw_fp16)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t half = man >> shift;
		uint32_t rem = man & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (aw_fp16)(sign | half);
	}
	uint32_t h = ((uint32_t)e << 10) | (man >> 13);
	uint32_t rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* may carry into the exponent, and to inf: both correct */
	return (aw_fp16)(sign | h);
}

float aw_bf16_to_f32(aw_bf16 h)
{
	return bits_f32((uint32_t)h << 16);
}

aw_bf16 aw_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);

	if ((u & 0x7fffffff) > 0x7f800000) /* NaN: force quiet */
		return (aw_bf16)((u >> 16) | 64);
	return (aw_bf16)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

void aw_quant_q8_0(const float *x, struct aw_block_q8_0 *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK8_0; b++, x += AW_QK8_0) {
		float amax = 0.0f;

		for (int j = 0; j < AW_QK8_0; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		const float d = amax / 127.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		dst[b].d = aw_f32_to_fp16(d);
		for (int j = 0; j < AW_QK8_0; j++)
			dst[b].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

void aw_quant_q4_0(const float *x, struct aw_block_q4_0 *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK4_0; b++, x += AW_QK4_0) {
		float amax = 0.0f, max = 0.0f;

		/* the value of largest magnitude, with its sign, maps to -8 */
		for (int j = 0; j < AW_QK4_0; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -8.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		dst[b].d = aw_f32_to_fp16(d);
		for (int j = 0; j < AW_QK4_0 / 2; j++) {
			const float x0 = x[j] * id, x1 = x[j + AW_QK4_0 / 2] * id;
			const uint8_t q0 =
				(uint8_t)((int8_t)(x0 + 8.5f) < 15 ? (int8_t)(x0 + 8.5f) : 15);
			const uint8_t q1 =
				(uint8_t)((int8_t)(x1 + 8.5f) < 15 ? (int8_t)(x1 + 8.5f) : 15);
			dst[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

/* --- legacy fallbacks: Q4_1, Q5_0, Q5_1 (ggml's reference rounding) --- */

void aw_quant_q4_1(const float *x, struct aw_block_q4_1 *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK4_1; b++, x += AW_QK4_1) {
		float min = INFINITY, max = -INFINITY;

		for (int j = 0; j < AW_QK4_1; j++) {
			min = fminf(min, x[j]);
			max = fmaxf(max, x[j]);
		}
		const float d = (max - min) / 15.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		dst[b].d = aw_f32_to_fp16(d);
		dst[b].m = aw_f32_to_fp16(min);
		for (int j = 0; j < AW_QK4_1 / 2; j++) {
			const int q0 = (int)((x[j] - min) * id + 0.5f);
			const int q1 = (int)((x[j + 16] - min) * id + 0.5f);
			dst[b].qs[j] = (uint8_t)((q0 < 15 ? q0 : 15) | (q1 < 15 ? q1 : 15) << 4);
		}
	}
}

static void put_qh(uint8_t *qh, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		qh[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_qh(const uint8_t *qh)
{
	return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
	       (uint32_t)qh[3] << 24;
}

void aw_quant_q5_0(const float *x, struct aw_block_q5_0 *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK5_0; b++, x += AW_QK5_0) {
		float amax = 0.0f, max = 0.0f;

		for (int j = 0; j < AW_QK5_0; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -16.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint32_t qh = 0;

		dst[b].d = aw_f32_to_fp16(d);
		for (int j = 0; j < AW_QK5_0 / 2; j++) {
			int q0 = (int)(int8_t)(x[j] * id + 16.5f);
			int q1 = (int)(int8_t)(x[j + 16] * id + 16.5f);

			q0 = q0 < 31 ? q0 : 31;
			q1 = q1 < 31 ? q1 : 31;
			dst[b].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
			qh |= (uint32_t)(q0 >> 4) << j;
			qh |= (uint32_t)(q1 >> 4) << (j + 16);
		}
		put_qh(dst[b].qh, qh);
	}
}

void aw_quant_q5_1(const float *x, struct aw_block_q5_1 *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK5_1; b++, x += AW_QK5_1) {
		float min = INFINITY, max = -INFINITY;

		for (int j = 0; j < AW_QK5_1; j++) {
			min = fminf(min, x[j]);
			max = fmaxf(max, x[j]);
		}
		const float d = (max - min) / 31.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		uint32_t qh = 0;

		dst[b].d = aw_f32_to_fp16(d);
		dst[b].m = aw_f32_to_fp16(min);
		for (int j = 0; j < AW_QK5_1 / 2; j++) {
			int q0 = (int)((x[j] - min) * id + 0.5f);
			int q1 = (int)((x[j + 16] - min) * id + 0.5f);

			q0 = q0 < 31 ? q0 : 31;
			q1 = q1 < 31 ? q1 : 31;
			dst[b].qs[j] = (uint8_t)((q0 & 15) | (q1 & 15) << 4);
			qh |= (uint32_t)(q0 >> 4) << j;
			qh |= (uint32_t)(q1 >> 4) << (j + 16);
		}
		put_qh(dst[b].qh, qh);
	}
}

/* --- K-quants --- */

void aw_k_scale_min(const uint8_t *q, int s, uint8_t *ret_sc, uint8_t *ret_m)
{
	if (s < 4) {
		*ret_sc = q[s] & 63;
		*ret_m = q[s + 4] & 63;
	} else {
		*ret_sc = (uint8_t)((q[s + 4] & 15) | (q[s - 4] >> 6) << 4);
		*ret_m = (uint8_t)((q[s + 4] >> 4) | (q[s] >> 6) << 4);
	}
}

static void k_pack_scales(uint8_t *q, const uint8_t *sc, const uint8_t *m)
{
	memset(q, 0, AW_K_SCALE_SIZE);
	for (int s = 0; s < 8; s++) {
		if (s < 4) {
			q[s] = sc[s];
			q[s + 4] = m[s];
		} else {
			q[s + 4] = (uint8_t)((sc[s] & 15) | (m[s] & 15) << 4);
			q[s - 4] |= (uint8_t)((sc[s] >> 4) << 6);
			q[s] |= (uint8_t)((m[s] >> 4) << 6);
		}
	}
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Shared Q4_K/Q5_K fit of one super-block: per sub-block of 32, the range
 * [min(0, min x), max x] maps onto 0..qmax; sub-block scales (rounded up,
 * so the range fits) and mins (to nearest) are 6-bit multiples of d and dmin.
 * Writes d, dmin, the packed scales and the quants q[256] (0..qmax). */
static void k_fit(const float *x, int qmax, aw_fp16 *ret_d, aw_fp16 *ret_dmin, uint8_t *scales,
		  uint8_t *q)
{
	float scale[8], mins[8], max_scale = 0.0f, max_min = 0.0f;
	uint8_t ls[8], lm[8];

	for (int s = 0; s < 8; s++) {
		float mn = 0.0f, mx = -INFINITY;

		for (int l = 0; l < 32; l++) {
			mn = fminf(mn, x[32 * s + l]);
			mx = fmaxf(mx, x[32 * s + l]);
		}
		scale[s] = (mx - mn) / (float)qmax;
		mins[s] = -mn;
		max_scale = fmaxf(max_scale, scale[s]);
		max_min = fmaxf(max_min, mins[s]);
	}
	*ret_d = aw_f32_to_fp16(max_scale / 63.0f);
	*ret_dmin = aw_f32_to_fp16(max_min / 63.0f);
	const float d = aw_fp16_to_f32(*ret_d), dmin = aw_fp16_to_f32(*ret_dmin);

	for (int s = 0; s < 8; s++) {
		ls[s] = (uint8_t)(d > 0.0f ? clampi((int)ceilf(scale[s] / d), 0, 63) : 0);
		lm[s] = (uint8_t)(dmin > 0.0f ? clampi((int)rintf(mins[s] / dmin), 0, 63) : 0);
	}
	k_pack_scales(scales, ls, lm);
	for (int s = 0; s < 8; s++) {
		const float dd = d * ls[s], dm = dmin * lm[s];

		for (int l = 0; l < 32; l++)
			q[32 * s + l] =
				(uint8_t)(dd > 0.0f ? clampi((int)rintf((x[32 * s + l] + dm) / dd),
							     0, qmax)
						    : 0);
	}
}

void aw_quant_q4_k(const float *x, struct aw_block_q4_k *dst, size_t n)
{
	uint8_t q[AW_QK_K];

	for (size_t b = 0; b < n / AW_QK_K; b++, x += AW_QK_K) {
		k_fit(x, 15, &dst[b].d, &dst[b].dmin, dst[b].scales, q);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				dst[b].qs[32 * c + l] =
					(uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
	}
}

void aw_quant_q5_k(const float *x, struct aw_block_q5_k *dst, size_t n)
{
	uint8_t q[AW_QK_K];

	for (size_t b = 0; b < n / AW_QK_K; b++, x += AW_QK_K) {
		k_fit(x, 31, &dst[b].d, &dst[b].dmin, dst[b].scales, q);
		memset(dst[b].qh, 0, sizeof(dst[b].qh));
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++) {
				const uint8_t lo = q[64 * c + l], hi = q[64 * c + 32 + l];

				dst[b].qs[32 * c + l] = (uint8_t)((lo & 15) | (hi & 15) << 4);
				dst[b].qh[l] |= (uint8_t)((lo >> 4) << (2 * c));
				dst[b].qh[l] |= (uint8_t)((hi >> 4) << (2 * c + 1));
			}
	}
}

/* Q6_K fit: per sub-block of 16, scale = max|x| / 31 (quants -31..31 around
 * 32); the int8 sub-block scales are multiples of d = max scale / 127,
 * rounded up in magnitude so no quant is clipped. */
void aw_quant_q6_k(const float *x, struct aw_block_q6_k *dst, size_t n)
{
	for (size_t b = 0; b < n / AW_QK_K; b++, x += AW_QK_K) {
		float scale[16], max_scale = 0.0f;

		for (int s = 0; s < 16; s++) {
			float amax = 0.0f;

			for (int l = 0; l < 16; l++)
				amax = fmaxf(amax, fabsf(x[16 * s + l]));
			scale[s] = amax / 31.0f;
			max_scale = fmaxf(max_scale, scale[s]);
		}
		dst[b].d = aw_f32_to_fp16(max_scale / 127.0f);
		const float d = aw_fp16_to_f32(dst[b].d);

		memset(dst[b].ql, 0, sizeof(dst[b].ql));
		memset(dst[b].qh, 0, sizeof(dst[b].qh));
		for (int s = 0; s < 16; s++)
			dst[b].scales[s] =
				(int8_t)(d > 0.0f ? clampi((int)ceilf(scale[s] / d), 0, 127) : 0);
		for (int e = 0; e < AW_QK_K; e++) {
			const int h = e / 128, k = (e % 128) / 32, l = e % 32;
			const float dd = d * dst[b].scales[e / 16];
			const int q = (dd > 0.0f ? clampi((int)rintf(x[e] / dd), -32, 31) : 0) + 32;
			uint8_t *ql = &dst[b].ql[64 * h + 32 * (k & 1) + l];

			*ql |= (uint8_t)(k < 2 ? (q & 15) : (q & 15) << 4);
			dst[b].qh[32 * h + l] |= (uint8_t)((q >> 4) << (2 * k));
		}
	}
}

/* Dequantization, as ggml's dequantize_row_* (the format comments in quant.h
 * are the specification). */
static void dequant_q4_1(const struct aw_block_q4_1 *b, float *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++, y += 32) {
		const float d = aw_fp16_to_f32(b[i].d), m = aw_fp16_to_f32(b[i].m);

		for (int j = 0; j < 16; j++) {
			y[j] = (float)(b[i].qs[j] & 15) * d + m;
			y[j + 16] = (float)(b[i].qs[j] >> 4) * d + m;
		}
	}
}

static void dequant_q5(const void *blk, float *y, size_t nb, int with_min)
{
	for (size_t i = 0; i < nb; i++, y += 32) {
		const struct aw_block_q5_0 *b0 = (const struct aw_block_q5_0 *)blk + i;
		const struct aw_block_q5_1 *b1 = (const struct aw_block_q5_1 *)blk + i;
		const float d = aw_fp16_to_f32(with_min ? b1->d : b0->d);
		const float m = with_min ? aw_fp16_to_f32(b1->m) : 0.0f;
		const uint32_t qh = get_qh(with_min ? b1->qh : b0->qh);
		const uint8_t *qs = with_min ? b1->qs : b0->qs;

		for (int j = 0; j < 16; j++) {
			const int q0 = (int)((qs[j] & 15) | ((qh >> j) << 4 & 16));
			const int q1 = (int)((qs[j] >> 4) | ((qh >> (j + 12)) & 16));

			if (with_min) {
				y[j] = (float)q0 * d + m;
				y[j + 16] = (float)q1 * d + m;
			} else {
				y[j] = (float)(q0 - 16) * d;
				y[j + 16] = (float)(q1 - 16) * d;
			}
		}
	}
}

static void dequant_q45_k(const void *blk, float *y, size_t nb, int five)
{
	for (size_t i = 0; i < nb; i++) {
		const struct aw_block_q4_k *b4 = (const struct aw_block_q4_k *)blk + i;
		const struct aw_block_q5_k *b5 = (const struct aw_block_q5_k *)blk + i;
		const float d = aw_fp16_to_f32(five ? b5->d : b4->d);
		const float min = aw_fp16_to_f32(five ? b5->dmin : b4->dmin);
		const uint8_t *scales = five ? b5->scales : b4->scales;
		const uint8_t *q = five ? b5->qs : b4->qs;

		for (int c = 0; c < 4; c++, q += 32) {
			uint8_t sc, m;

			aw_k_scale_min(scales, 2 * c, &sc, &m);
			const float d1 = d * sc, m1 = min * m;
			aw_k_scale_min(scales, 2 * c + 1, &sc, &m);
			const float d2 = d * sc, m2 = min * m;

			for (int l = 0; l < 32; l++) {
				const int h1 = five ? (b5->qh[l] >> (2 * c) & 1) << 4 : 0;
				const int h2 = five ? (b5->qh[l] >> (2 * c + 1) & 1) << 4 : 0;

				y[l] = d1 * (float)((q[l] & 15) + h1) - m1;
				y[l + 32] = d2 * (float)((q[l] >> 4) + h2) - m2;
			}
			y += 64;
		}
	}
}

static void dequant_q6_k(const struct aw_block_q6_k *b, float *y, size_t nb)
{
	for (size_t i = 0; i < nb; i++) {
		const float d = aw_fp16_to_f32(b[i].d);
		const uint8_t *ql = b[i].ql, *qh = b[i].qh;
		const int8_t *sc = b[i].scales;

		for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
			for (int l = 0; l < 32; l++) {
				const int is = l / 16;
				const int q1 = (int)((ql[l] & 15) | (qh[l] & 3) << 4) - 32;
				const int q2 =
					(int)((ql[l + 32] & 15) | (qh[l] >> 2 & 3) << 4) - 32;
				const int q3 = (int)((ql[l] >> 4) | (qh[l] >> 4 & 3) << 4) - 32;
				const int q4 =
					(int)((ql[l + 32] >> 4) | (qh[l] >> 6 & 3) << 4) - 32;

				y[l] = d * (float)sc[is] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
		}
	}
}

/* The first of 'nb' blocks ('stride' bytes apart) whose fp16 at 'off' (and,
 * with 'two', the one after it) is NaN or infinite (exponent bits all set),
 * or nb. Branch-free over chunks of 256 blocks, then a second look at the
 * chunk that has one: the load-time check reads every block of a model. */
static size_t first_nonfinite(const uint8_t *p, size_t nb, size_t stride, size_t off, int two)
{
	for (size_t c = 0; c < nb; c += 256) {
		const size_t e = c + 256 < nb ? c + 256 : nb;
		unsigned bad = 0;

		for (size_t i = c; i < e; i++) {
			uint16_t a, b = 0;

			memcpy(&a, p + i * stride + off, 2);
			if (two)
				memcpy(&b, p + i * stride + off + 2, 2);
			bad |= ((a & 0x7c00) == 0x7c00) | ((b & 0x7c00) == 0x7c00);
		}
		if (!bad)
			continue;
		for (size_t i = c; i < e; i++) {
			uint16_t a, b = 0;

			memcpy(&a, p + i * stride + off, 2);
			if (two)
				memcpy(&b, p + i * stride + off + 2, 2);
			if ((a & 0x7c00) == 0x7c00 || (b & 0x7c00) == 0x7c00)
				return i;
		}
	}
	return nb;
}

int aw_quant_check_row(uint32_t t, const void *src, size_t n, size_t *ret_block)
{
	const struct aw_type_info *ti = aw_type_info(t);
	size_t off;
	int two;

	if (!ti || n % ti->block)
		return -EINVAL;
	switch (t) {
	case AW_TYPE_Q8_0:
	case AW_TYPE_Q4_0:
	case AW_TYPE_Q5_0:
		off = 0, two = 0; /* d */
		break;
	case AW_TYPE_Q4_1:
	case AW_TYPE_Q5_1:
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K:
		off = 0, two = 1; /* d, m / dmin */
		break;
	case AW_TYPE_Q6_K:
		off = offsetof(struct aw_block_q6_k, d), two = 0;
		break;
	default:
		return 0;
	}
	const size_t nb = n / ti->block, i = first_nonfinite(src, nb, ti->size, off, two);
	if (i == nb)
		return 0;
	if (ret_block)
		*ret_block = i;
	return -ERANGE;
}

int aw_dequant_row(uint32_t t, const void *src, float *dst, size_t n)
{
	const struct aw_type_info *ti = aw_type_info(t);

	if (!ti || n % ti->block)
		return -EINVAL;
	switch (t) {
	case AW_TYPE_F32:
		memcpy(dst, src, n * 4);
		return 0;
	case AW_TYPE_F16: {
		const aw_fp16 *h = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = aw_fp16_to_f32(h[i]);
		return 0;
	}
	case AW_TYPE_BF16: {
		const aw_bf16 *h = src;
		for (size_t i = 0; i < n; i++)
			dst[i] = aw_bf16_to_f32(h[i]);
		return 0;
	}
	case AW_TYPE_Q8_0: {
		const struct aw_block_q8_0 *b = src;
		for (size_t i = 0; i < n / AW_QK8_0; i++) {
			const float d = aw_fp16_to_f32(b[i].d);
			for (int j = 0; j < AW_QK8_0; j++)
				dst[i * AW_QK8_0 + j] = d * (float)b[i].qs[j];
		}
		return 0;
	}
	case AW_TYPE_Q4_0: {
		const struct aw_block_q4_0 *b = src;
		for (size_t i = 0; i < n / AW_QK4_0; i++) {
			const float d = aw_fp16_to_f32(b[i].d);
			for (int j = 0; j < AW_QK4_0 / 2; j++) {
				dst[i * AW_QK4_0 + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
				dst[i * AW_QK4_0 + j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
			}
		}
		return 0;
	}
	case AW_TYPE_Q4_1:
		dequant_q4_1(src, dst, n / 32);
		return 0;
	case AW_TYPE_Q5_0:
	case AW_TYPE_Q5_1:
		dequant_q5(src, dst, n / 32, t == AW_TYPE_Q5_1);
		return 0;
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K:
		dequant_q45_k(src, dst, n / AW_QK_K, t == AW_TYPE_Q5_K);
		return 0;
	case AW_TYPE_Q6_K:
		dequant_q6_k(src, dst, n / AW_QK_K);
		return 0;
	default:
		return -EINVAL;
	}
}

int aw_quant_row(uint32_t t, const float *src, void *dst, size_t n)
{
	switch (t) {
	case AW_TYPE_F32:
		memcpy(dst, src, n * 4);
		return 0;
	case AW_TYPE_F16: {
		aw_fp16 *h = dst;
		for (size_t i = 0; i < n; i++)
			h[i] = aw_f32_to_fp16(src[i]);
		return 0;
	}
	case AW_TYPE_BF16: {
		aw_bf16 *h = dst;
		for (size_t i = 0; i < n; i++)
			h[i] = aw_f32_to_bf16(src[i]);
		return 0;
	}
	case AW_TYPE_Q8_0:
		if (n % AW_QK8_0)
			return -EINVAL;
		aw_quant_q8_0(src, dst, n);
		return 0;
	case AW_TYPE_Q4_0:
		if (n % AW_QK4_0)
			return -EINVAL;
		aw_quant_q4_0(src, dst, n);
		return 0;
	case AW_TYPE_Q4_1:
	case AW_TYPE_Q5_0:
	case AW_TYPE_Q5_1:
		if (n % 32)
			return -EINVAL;
		if (t == AW_TYPE_Q4_1)
			aw_quant_q4_1(src, dst, n);
		else if (t == AW_TYPE_Q5_0)
			aw_quant_q5_0(src, dst, n);
		else
			aw_quant_q5_1(src, dst, n);
		return 0;
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K:
	case AW_TYPE_Q6_K:
		if (n % AW_QK_K)
			return -EINVAL;
		if (t == AW_TYPE_Q4_K)
			aw_quant_q4_k(src, dst, n);
		else if (t == AW_TYPE_Q5_K)
			aw_quant_q5_k(src, dst, n);
		else
			aw_quant_q6_k(src, dst, n);
		return 0;
	default:
		return -EINVAL;
	}
}
