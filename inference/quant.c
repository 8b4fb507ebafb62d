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
	[AW_TYPE_F32] = {"f32", 1, 4},
	[AW_TYPE_F16] = {"f16", 1, 2},
	[AW_TYPE_Q4_0] = {"q4_0", 32, 18},
	[AW_TYPE_Q4_1] = {"q4_1", 32, 20},
	[AW_TYPE_Q5_0] = {"q5_0", 32, 22},
	[AW_TYPE_Q5_1] = {"q5_1", 32, 24},
	[AW_TYPE_Q8_0] = {"q8_0", 32, 34},
	[AW_TYPE_Q8_1] = {"q8_1", 32, 36},
	[AW_TYPE_Q2_K] = {"q2_k", 256, 84},
	[AW_TYPE_Q3_K] = {"q3_k", 256, 110},
	[AW_TYPE_Q4_K] = {"q4_k", 256, 144},
	[AW_TYPE_Q5_K] = {"q5_k", 256, 176},
	[AW_TYPE_Q6_K] = {"q6_k", 256, 210},
	[AW_TYPE_Q8_K] = {"q8_k", 256, 292},
	[AW_TYPE_I8] = {"i8", 1, 1},
	[AW_TYPE_I16] = {"i16", 1, 2},
	[AW_TYPE_I32] = {"i32", 1, 4},
	[AW_TYPE_I64] = {"i64", 1, 8},
	[AW_TYPE_F64] = {"f64", 1, 8},
	[AW_TYPE_BF16] = {"bf16", 1, 2},
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
	default:
		return -EINVAL;
	}
}
