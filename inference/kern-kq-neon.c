/* kern-kq-neon.c — Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K matmuls on AArch64
 * (the form is described in kern-kq-int.h). Built once per Arm table with
 * its flags: AW_KERN_NEON_LEVEL 0 = neon, 1 = dotprod, 2 = i8mm.
 *
 * A 32-element block is two q registers of weight quants (elements 0-15 and
 * 16-31) against two of activations. sdot multiplies signed bytes, so the
 * signed types (Q5_0: q - 16, Q6_K: q - 32) need no sign trick and the
 * unsigned ones (nibbles, 5-bit values) are small enough to be read as
 * signed. Without dotprod the 4-product lane sums are smull + addp + sadalp
 * (products at most 32 * 128 in magnitude, pair sums within int16). The
 * block sums are folded by addp into lane-per-block vectors (blocks 0-3 and
 * 4-7). The i8mm level runs the dotprod code: an smmla version (2 rows × 2
 * tokens per instruction) is not written yet.
 */
#include <arm_neon.h>
#include <string.h>

#include "kern-kq-int.h"

#if AW_KERN_NEON_LEVEL == 2
#define FN aw_kern_kq_matmul_i8mm
#elif AW_KERN_NEON_LEVEL == 1
#define FN aw_kern_kq_matmul_dotprod
#else
#define FN aw_kern_kq_matmul_neon
#endif

#define INLINE static inline __attribute__((always_inline))

/* lane l += sum_{j<4} a[4l+j] * b[4l+j] */
INLINE int32x4_t sdot4(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if AW_KERN_NEON_LEVEL >= 1
	return vdotq_s32(acc, a, b);
#else
	const int16x8_t p =
		vpaddq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)), vmull_high_s8(a, b));

	return vpadalq_s16(acc, p);
#endif
}

/* One group of 8 blocks of one row, decoded: q[i][0..1] the quants of block
 * i (elements 0-15, 16-31); lane i of fa/fb/fm (blocks 0-3 in [0], 4-7 in
 * [1]) = a of block i (Q6_K: fa for the first halves, fb for the second),
 * bias of block i. */
struct grp {
	int8x16_t q[8][2];
	float32x4_t fa[2], fb[2], fm[2];
};

INLINE float32x4_t u8x4_f32(uint8x8_t v, int hi)
{
	const uint16x8_t w = vmovl_u8(v);

	return vcvtq_f32_u32(hi ? vmovl_high_u16(w) : vmovl_u16(vget_low_u16(w)));
}

INLINE float32x4_t s8x4_f32(int8x8_t v, int hi)
{
	const int16x8_t w = vmovl_s8(v);

	return vcvtq_f32_s32(hi ? vmovl_high_s16(w) : vmovl_s16(vget_low_s16(w)));
}

INLINE float f16(const uint8_t *p)
{
	__fp16 h;

	memcpy(&h, p, 2);
	return (float)h;
}

/* 16 nibbles -> elements 0-15 (low nibbles) and 16-31 (high) */
INLINE void nibbles(const uint8_t *p, int8x16_t q[2])
{
	const uint8x16_t raw = vld1q_u8(p);

	q[0] = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
	q[1] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
}

/* bits 0-31 at p -> 16 where set, for elements 0-15 and 16-31 */
INLINE void bits(const uint8_t *p, uint8x16_t h[2])
{
	static const uint8_t pos[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
	const uint8x16_t m = vld1q_u8(pos);

	for (int k = 0; k < 2; k++) {
		const uint8x16_t v = vcombine_u8(vdup_n_u8(p[2 * k]), vdup_n_u8(p[2 * k + 1]));

		h[k] = vandq_u8(vtstq_u8(v, m), vdupq_n_u8(16));
	}
}

/* Scales of legacy blocks i < n of the group at p (block stride 'stride'):
 * d at offset 0 and, with 'min', m at offset 2. */
INLINE void legacy_scales(const uint8_t *p, int stride, int n, int min, struct grp *o)
{
	__fp16 d[8] = {0}, m[8] = {0};

	for (int i = 0; i < n; i++) {
		memcpy(&d[i], p + stride * i, 2);
		if (min)
			memcpy(&m[i], p + stride * i + 2, 2);
	}
	for (int k = 0; k < 2; k++) {
		o->fa[k] = vcvt_f32_f16(vld1_f16(d + 4 * k));
		o->fm[k] = vcvt_f32_f16(vld1_f16(m + 4 * k));
	}
}

/* The float factors of a K super-block (any layout: scales and d stay in
 * place): fa/fm for Q4_K/Q5_K, fa/fb (even/odd 16-wide scales) for Q6_K. */
INLINE void kscales(const uint8_t *blk, const uint32_t type, struct grp *o)
{
	if (type == AW_TYPE_Q6_K) {
		const int8x8x2_t sc = vld2_s8((const int8_t *)blk + 192);
		const float d = f16(blk + 208);

		for (int k = 0; k < 2; k++) {
			o->fa[k] = vmulq_n_f32(s8x4_f32(sc.val[0], k), d);
			o->fb[k] = vmulq_n_f32(s8x4_f32(sc.val[1], k), d);
		}
		return;
	}
	uint64_t sc, mn;
	const float d = f16(blk), dmin = f16(blk + 2);

	aw_kern_kq_scales(blk + 4, &sc, &mn);
	for (int k = 0; k < 2; k++) {
		o->fa[k] = vmulq_n_f32(u8x4_f32(vcreate_u8(sc), k), d);
		o->fm[k] = vmulq_n_f32(u8x4_f32(vcreate_u8(mn), k), -dmin);
	}
}

INLINE void decode(const uint8_t *row, uint32_t g, int n, const uint32_t type, struct grp *o)
{
	switch (type) {
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K: {
		const int five = type == AW_TYPE_Q5_K;
		const uint8_t *blk = row + (size_t)g * (five ? 176 : 144);
		const uint8_t *qs = blk + (five ? 48 : 16);

		kscales(blk, type, o);
		for (int c = 0; c < 4; c++)
			for (int k = 0; k < 2; k++) {
				const uint8x16_t raw = vld1q_u8(qs + 32 * c + 16 * k);

				o->q[2 * c][k] =
					vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f)));
				o->q[2 * c + 1][k] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
			}
		if (five)
			for (int k = 0; k < 2; k++) {
				const uint8x16_t qh = vld1q_u8(blk + 16 + 16 * k);

				for (int s = 0; s < 8; s++) {
					const uint8x16_t h = vandq_u8(
						vtstq_u8(qh, vdupq_n_u8((uint8_t)(1u << s))),
						vdupq_n_u8(16));

					o->q[s][k] = vorrq_s8(o->q[s][k], vreinterpretq_s8_u8(h));
				}
			}
		return;
	}
	case AW_TYPE_Q6_K: {
		const uint8_t *blk = row + (size_t)g * 210;
		const uint8x16_t lo4 = vdupq_n_u8(0x0f), hi2 = vdupq_n_u8(0x30);

		kscales(blk, type, o);
		for (int h = 0; h < 2; h++)
			for (int k = 0; k < 2; k++) {
				const uint8x16_t qa = vld1q_u8(blk + 64 * h + 16 * k);
				const uint8x16_t qb = vld1q_u8(blk + 64 * h + 32 + 16 * k);
				const uint8x16_t qh = vld1q_u8(blk + 128 + 32 * h + 16 * k);
				/* element 128h + 32j + l: nibble j/2 of ql[64h + 32(j&1) + l],
				 * 2-bit field j of qh[32h + l] */
				const uint8x16_t q[4] = {
					vorrq_u8(vandq_u8(qa, lo4),
						 vandq_u8(vshlq_n_u8(qh, 4), hi2)),
					vorrq_u8(vandq_u8(qb, lo4),
						 vandq_u8(vshlq_n_u8(qh, 2), hi2)),
					vorrq_u8(vshrq_n_u8(qa, 4), vandq_u8(qh, hi2)),
					vorrq_u8(vshrq_n_u8(qb, 4),
						 vandq_u8(vshrq_n_u8(qh, 2), hi2)),
				};

				for (int j = 0; j < 4; j++)
					o->q[4 * h + j][k] =
						vsubq_s8(vreinterpretq_s8_u8(q[j]), vdupq_n_s8(32));
			}
		return;
	}
	case AW_TYPE_Q4_1: {
		const uint8_t *blk = row + (size_t)g * 8 * 20;

		legacy_scales(blk, 20, n, 1, o);
		for (int i = 0; i < n; i++)
			nibbles(blk + 20 * i + 4, o->q[i]);
		return;
	}
	case AW_TYPE_Q5_1: {
		const uint8_t *blk = row + (size_t)g * 8 * 24;

		legacy_scales(blk, 24, n, 1, o);
		for (int i = 0; i < n; i++) {
			uint8x16_t h[2];

			nibbles(blk + 24 * i + 8, o->q[i]);
			bits(blk + 24 * i + 4, h);
			for (int k = 0; k < 2; k++)
				o->q[i][k] = vorrq_s8(o->q[i][k], vreinterpretq_s8_u8(h[k]));
		}
		return;
	}
	default: { /* Q5_0: q - 16 */
		const uint8_t *blk = row + (size_t)g * 8 * 22;

		legacy_scales(blk, 22, n, 0, o);
		for (int i = 0; i < n; i++) {
			uint8x16_t h[2];

			nibbles(blk + 22 * i + 6, o->q[i]);
			bits(blk + 22 * i + 2, h);
			for (int k = 0; k < 2; k++)
				o->q[i][k] =
					vsubq_s8(vorrq_s8(o->q[i][k], vreinterpretq_s8_u8(h[k])),
						 vdupq_n_s8(16));
		}
		return;
	}
	}
}

/* acc[k] += the float terms of blocks 4k..4k+3 for one token, from their
 * exact sums: lane i of lo[k] (and hi[k], Q6_K's second halves) */
INLINE void combine(const struct grp *o, const int32x4_t lo[2], const int32x4_t hi[2],
		    const float *dx, const float *xs, const uint32_t type, float32x4_t acc[2])
{
	for (int k = 0; k < 2; k++) {
		const float32x4_t vdx = vld1q_f32(dx + 4 * k);

		acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(lo[k]), vmulq_f32(o->fa[k], vdx));
		if (type == AW_TYPE_Q6_K)
			acc[k] = vfmaq_f32(acc[k], vcvtq_f32_s32(hi[k]), vmulq_f32(o->fb[k], vdx));
		else if (type != AW_TYPE_Q5_0)
			acc[k] = vfmaq_f32(acc[k], o->fm[k], vld1q_f32(xs + 4 * k));
	}
}

/* acc[0..1] += the group's contribution for one token (blocks i < n) */
INLINE void group_token(const struct grp *o, const struct aw_block_q8a *xb, const float *dx,
			const float *xs, int n, const uint32_t type, float32x4_t acc[2])
{
	int32x4_t vl[8], vh[8], lo[2], hi[2];

	for (int i = 0; i < 8; i++) {
		vl[i] = vh[i] = vdupq_n_s32(0);
		if (i >= n)
			continue;
		const int8x16_t x0 = vld1q_s8(xb[i].qs), x1 = vld1q_s8(xb[i].qs + 16);

		vl[i] = sdot4(vl[i], o->q[i][0], x0);
		if (type == AW_TYPE_Q6_K)
			vh[i] = sdot4(vh[i], o->q[i][1], x1);
		else
			vl[i] = sdot4(vl[i], o->q[i][1], x1);
	}
	for (int k = 0; k < 2; k++) {
		const int32x4_t *v = vl + 4 * k, *u = vh + 4 * k;

		lo[k] = vpaddq_s32(vpaddq_s32(v[0], v[1]), vpaddq_s32(v[2], v[3]));
		hi[k] = vpaddq_s32(vpaddq_s32(u[0], u[1]), vpaddq_s32(u[2], u[3]));
	}
	combine(o, lo, hi, dx, xs, type, acc);
}

INLINE void tile(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c, uint32_t r, float *y,
		 size_t ldy, const int T, const uint32_t type)
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = c->nbp;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	float32x4_t acc[4][2];
	struct grp o;
	uint32_t g;

	for (int t = 0; t < T; t++)
		acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
	for (g = 0; 8 * g + 8 <= nb; g++) {
		decode(row, g, 8, type, &o);
		for (int t = 0; t < T; t++)
			group_token(&o, c->xq + (size_t)t * nb + 8 * g, c->dx + t * nbp + 8 * g,
				    c->xs + t * nbp + 8 * g, 8, type, acc[t]);
	}
	if (8 * g < nb) { /* legacy types: the last 1..7 blocks */
		const int n = (int)(nb - 8 * g);

		decode(row, g, n, type, &o);
		for (int t = 0; t < T; t++)
			group_token(&o, c->xq + (size_t)t * nb + 8 * g, c->dx + t * nbp + 8 * g,
				    c->xs + t * nbp + 8 * g, n, type, acc[t]);
	}
	for (int t = 0; t < T; t++)
		y[(size_t)t * ldy + r] = vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1]));
}

/* ---- KQ8 layout: q[m][k] = elements 4m..4m+3 of sub-blocks 4k..4k+3 ---- */

INLINE void decode8(const uint8_t *row, uint32_t g, const uint32_t type, struct grp *o)
{
	const uint8x16_t lo4 = vdupq_n_u8(0x0f);

	if (type == AW_TYPE_Q6_K) {
		const uint8_t *blk = row + (size_t)g * 210;
		const uint8x16_t hi2 = vdupq_n_u8(0x30);

		kscales(blk, type, o);
		for (int k = 0; k < 2; k++) {
			const uint8x16_t h0 = vld1q_u8(blk + 128 + 16 * k);
			const uint8x16_t h1 = vld1q_u8(blk + 160 + 16 * k);
			/* bits 4-5 of rows m: field m/2 of h[m % 2] */
			const uint8x16_t hb[8] = {
				vandq_u8(vshlq_n_u8(h0, 4), hi2),
				vandq_u8(vshlq_n_u8(h1, 4), hi2),
				vandq_u8(vshlq_n_u8(h0, 2), hi2),
				vandq_u8(vshlq_n_u8(h1, 2), hi2),
				vandq_u8(h0, hi2),
				vandq_u8(h1, hi2),
				vandq_u8(vshrq_n_u8(h0, 2), hi2),
				vandq_u8(vshrq_n_u8(h1, 2), hi2),
			};

			for (int j = 0; j < 4; j++) {
				const uint8x16_t raw = vld1q_u8(blk + 32 * j + 16 * k);

				o->q[j][k] = vsubq_s8(
					vreinterpretq_s8_u8(vorrq_u8(vandq_u8(raw, lo4), hb[j])),
					vdupq_n_s8(32));
				o->q[j + 4][k] = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(
								  vshrq_n_u8(raw, 4), hb[j + 4])),
							  vdupq_n_s8(32));
			}
		}
		return;
	}
	const int five = type == AW_TYPE_Q5_K;
	const uint8_t *blk = row + (size_t)g * (five ? 176 : 144);
	const uint8_t *qs = blk + (five ? 48 : 16);

	kscales(blk, type, o);
	for (int k = 0; k < 2; k++) {
		for (int j = 0; j < 4; j++) {
			const uint8x16_t raw = vld1q_u8(qs + 32 * j + 16 * k);

			o->q[j][k] = vreinterpretq_s8_u8(vandq_u8(raw, lo4));
			o->q[j + 4][k] = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
		}
		if (five) {
			const uint8x16_t qh = vld1q_u8(blk + 16 + 16 * k);

			for (int m = 0; m < 8; m++) {
				const uint8x16_t h =
					vandq_u8(vtstq_u8(qh, vdupq_n_u8((uint8_t)(1u << m))),
						 vdupq_n_u8(16));

				o->q[m][k] = vorrq_s8(o->q[m][k], vreinterpretq_s8_u8(h));
			}
		}
	}
}

INLINE void tile8(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c, uint32_t r, float *y,
		  size_t ldy, const int T, const uint32_t type)
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = c->nbp;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	float32x4_t acc[4][2];
	struct grp o;

	for (int t = 0; t < T; t++)
		acc[t][0] = acc[t][1] = vdupq_n_f32(0.0f);
	for (uint32_t g = 0; g < nb / 8; g++) {
		decode8(row, g, type, &o);
		for (int t = 0; t < T; t++) {
			const int8_t *xt = (const int8_t *)c->xt + (size_t)t * 32 * nbp + 256 * g;
			int32x4_t lo[2], hi[2];

			for (int k = 0; k < 2; k++) {
				lo[k] = hi[k] = vdupq_n_s32(0);
				for (int m = 0; m < 8; m++) {
					const int8x16_t x = vld1q_s8(xt + 32 * m + 16 * k);

					if (type == AW_TYPE_Q6_K && m >= 4)
						hi[k] = sdot4(hi[k], o.q[m][k], x);
					else
						lo[k] = sdot4(lo[k], o.q[m][k], x);
				}
			}
			combine(&o, lo, hi, c->dx + t * nbp + 8 * g, c->xs + t * nbp + 8 * g, type,
				acc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		y[(size_t)t * ldy + r] = vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1]));
}

AW_KERN_KQ_MATMUL(FN)
