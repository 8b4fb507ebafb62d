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
 * 4-7). The i8mm level adds an smmla kernel (2 rows × 2 tokens per
 * instruction) for batches of 2 or more tokens, on every type and layout
 * here (described at its code below); for one token it runs the dotprod
 * code.
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

#if AW_KERN_NEON_LEVEL == 2

/* ---- i8mm: smmla on KQ8 weights, 2 rows x 2 tokens per instruction ----
 *
 * smmla (vmmlaq_s32) adds a 2x8 by 8x2 int8 product into a 2x2 int32 tile:
 * lane 2i + j += sum_{n<8} a[8i + n] * b[8j + n]. a = 8 quants of one
 * sub-block of rows r and r + 1, b = the same 8 elements of tokens t and
 * t + 1; 4 of them (8-element chunks c < 4: elements 8c..8c+7) sum the
 * sub-block for the 4 (row, token) pairs, exactly. The weights stay in KQ8
 * (no NEON-only layout, so the reference, aw_kern_mat_row and the loader
 * need nothing new): a KQ8 vector holds 4 elements of 4 sub-blocks, and two
 * zips per operand byte (32-bit: elements 4m..4m+7 of one row, 64-bit: the
 * two rows) put a chunk of one sub-block of both rows in one operand. For
 * the packed formats the zips run on the packed bytes before the nibbles
 * and high bits are split off, so each packed byte is shuffled once for
 * two operands. The activations are transposed once per chunk of tokens
 * into the operand order: pair p, block b, chunk c at 64(p nb + b) + 16c,
 * tokens 2p and 2p + 1 in its two halves (an odd last token is paired with
 * itself, an odd last row too; the duplicate lanes are not stored). Per
 * sub-block and tile, in float:
 *
 *     acc += cvt(S) * (A * D)  +  B * X
 *
 * A = the sub-block's factor of rows (r, r, r+1, r+1), D = dX of tokens
 * (t, t+1, t, t+1), B = its bias (or Q6_K's second factor against its own
 * S), X = dX * sumX; the same terms as the dotprod kernel, summed in
 * sub-block order, so the same rounding bound applies. ROWS weights of all
 * six types (the legacy ones, and K-quants loaded without repacking) take
 * the same path: each row is decoded as for the dotprod code, 16 elements
 * per vector, and one 64-bit zip of the two rows makes two operands; a
 * legacy row's last 1..7 blocks form a short group. One token (decode)
 * and rows longer than the tables (more than 32768 columns) go to the
 * dotprod code above. */

/* Forward declaration: the dotprod form, defined at the end of the file. */
void aw_kern_kq_matmul_i8mm_sdot(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
				 size_t ldy, uint32_t r0, uint32_t r1);

/* A super-block of two rows, decoded: q[s][c] = chunk c of sub-block s
 * (rows r, r + 1 in the low and high halves); fa[s] = (a_r, a_r, a_r1,
 * a_r1) of sub-block s (Q6_K: its first 16 elements), fb[s] = its bias
 * (Q6_K: the factor of its second 16 elements). */
struct pair {
	int8x16_t q[8][4];
	float32x4_t fa[8], fb[8];
};

/* o[s] = [a0, a1 of row 0, b0, b1 of row 1] at 4-byte sub-block slot s of
 * each: a0/b0 elements 4m + j, a1/b1 elements 4(m + 1) + j of sub-blocks
 * 4k + s (KQ8 vectors) */
INLINE void ilv(uint8x16_t a0, uint8x16_t a1, uint8x16_t b0, uint8x16_t b1, uint8x16_t o[4])
{
	const uint32x4_t z0 = vzip1q_u32(vreinterpretq_u32_u8(a0), vreinterpretq_u32_u8(a1));
	const uint32x4_t z1 = vzip2q_u32(vreinterpretq_u32_u8(a0), vreinterpretq_u32_u8(a1));
	const uint32x4_t w0 = vzip1q_u32(vreinterpretq_u32_u8(b0), vreinterpretq_u32_u8(b1));
	const uint32x4_t w1 = vzip2q_u32(vreinterpretq_u32_u8(b0), vreinterpretq_u32_u8(b1));
	const uint64x2_t zz[2] = {vreinterpretq_u64_u32(z0), vreinterpretq_u64_u32(z1)};
	const uint64x2_t ww[2] = {vreinterpretq_u64_u32(w0), vreinterpretq_u64_u32(w1)};

	for (int h = 0; h < 2; h++) {
		o[2 * h] = vreinterpretq_u8_u64(vzip1q_u64(zz[h], ww[h]));
		o[2 * h + 1] = vreinterpretq_u8_u64(vzip2q_u64(zz[h], ww[h]));
	}
}

/* (v0[s], v0[s], v1[s], v1[s]) for s < 8 from lane-per-sub-block vectors */
INLINE void pair_factors(const float32x4_t v0[2], const float32x4_t v1[2], float32x4_t o[8])
{
	for (int k = 0; k < 2; k++) {
		const float32x4_t lo = vzip1q_f32(v0[k], v1[k]), hi = vzip2q_f32(v0[k], v1[k]);

		o[4 * k] = vzip1q_f32(lo, lo);
		o[4 * k + 1] = vzip2q_f32(lo, lo);
		o[4 * k + 2] = vzip1q_f32(hi, hi);
		o[4 * k + 3] = vzip2q_f32(hi, hi);
	}
}

INLINE void decode_pair(const uint8_t *b0, const uint8_t *b1, const uint32_t type, struct pair *o)
{
	const uint8x16_t lo4 = vdupq_n_u8(0x0f);
	struct grp g0, g1;

	kscales(b0, type, &g0);
	kscales(b1, type, &g1);
	pair_factors(g0.fa, g1.fa, o->fa);
	pair_factors(type == AW_TYPE_Q6_K ? g0.fb : g0.fm, type == AW_TYPE_Q6_K ? g1.fb : g1.fm,
		     o->fb);

	const uint32_t qoff = type == AW_TYPE_Q6_K ? 0 : type == AW_TYPE_Q5_K ? 48 : 16;
	const uint8_t *q0 = b0 + qoff, *q1 = b1 + qoff;

	for (int k = 0; k < 2; k++) {
		uint8x16_t p[2][4], hb[4];

		/* packed nibbles: low = chunk cc, high = chunk cc + 2 */
		for (int cc = 0; cc < 2; cc++)
			ilv(vld1q_u8(q0 + 64 * cc + 16 * k), vld1q_u8(q0 + 64 * cc + 32 + 16 * k),
			    vld1q_u8(q1 + 64 * cc + 16 * k), vld1q_u8(q1 + 64 * cc + 32 + 16 * k),
			    p[cc]);
		if (type == AW_TYPE_Q6_K) /* field f of hb = bits 4-5 of chunk f */
			ilv(vld1q_u8(b0 + 128 + 16 * k), vld1q_u8(b0 + 160 + 16 * k),
			    vld1q_u8(b1 + 128 + 16 * k), vld1q_u8(b1 + 160 + 16 * k), hb);
		else if (type == AW_TYPE_Q5_K) { /* each sub-block's 4 bytes twice */
			const uint8x16_t h0 = vld1q_u8(b0 + 16 + 16 * k);
			const uint8x16_t h1 = vld1q_u8(b1 + 16 + 16 * k);

			ilv(h0, h0, h1, h1, hb);
		}
		for (int s = 0; s < 4; s++) {
			uint8x16_t q[4] = {
				vandq_u8(p[0][s], lo4),
				vandq_u8(p[1][s], lo4),
				vshrq_n_u8(p[0][s], 4),
				vshrq_n_u8(p[1][s], 4),
			};

			if (type == AW_TYPE_Q6_K) {
				const uint8x16_t hi2 = vdupq_n_u8(0x30);

				q[0] = vorrq_u8(q[0], vandq_u8(vshlq_n_u8(hb[s], 4), hi2));
				q[1] = vorrq_u8(q[1], vandq_u8(vshlq_n_u8(hb[s], 2), hi2));
				q[2] = vorrq_u8(q[2], vandq_u8(hb[s], hi2));
				q[3] = vorrq_u8(q[3], vandq_u8(vshrq_n_u8(hb[s], 2), hi2));
				for (int c = 0; c < 4; c++)
					o->q[4 * k + s][c] =
						vsubq_s8(vreinterpretq_s8_u8(q[c]), vdupq_n_s8(32));
				continue;
			}
			if (type == AW_TYPE_Q5_K)
				for (int c = 0; c < 4; c++) {
					/* byte n of a row's half: bit 2c + n / 4 */
					const uint8x8_t m8 = vcreate_u8(
						0x0101010100000000ull * (1ull << (2 * c + 1)) +
						0x0000000001010101ull * (1ull << (2 * c)));
					const uint8x16_t h = vtstq_u8(hb[s], vcombine_u8(m8, m8));

					q[c] = vorrq_u8(q[c], vandq_u8(h, vdupq_n_u8(16)));
				}
			for (int c = 0; c < 4; c++)
				o->q[4 * k + s][c] = vreinterpretq_s8_u8(q[c]);
		}
	}
}

/* out[p] += the terms of sub-blocks (or legacy blocks) s < n of group g of
 * the decoded pair o, for token pairs p < P */
INLINE void accum(const struct pair *o, uint32_t g, int n, uint32_t nb, const int8_t *xp,
		  const float *dp, const float *sp, const int P, const uint32_t type,
		  float32x4_t out[4])
{
	for (int s = 0; s < n; s++) {
		const uint32_t b = 8 * g + s;

		for (int p = 0; p < P; p++) {
			const size_t i = (size_t)p * nb + b;
			const int8_t *x = xp + 64 * i;
			const float32x2_t d2 = vld1_f32(dp + 2 * i);
			const float32x4_t d = vcombine_f32(d2, d2);
			int32x4_t s0 = vdupq_n_s32(0), s1 = vdupq_n_s32(0);

			s0 = vmmlaq_s32(s0, o->q[s][0], vld1q_s8(x));
			s0 = vmmlaq_s32(s0, o->q[s][1], vld1q_s8(x + 16));
			if (type == AW_TYPE_Q6_K) {
				s1 = vmmlaq_s32(s1, o->q[s][2], vld1q_s8(x + 32));
				s1 = vmmlaq_s32(s1, o->q[s][3], vld1q_s8(x + 48));
				out[p] = vfmaq_f32(out[p], vcvtq_f32_s32(s0),
						   vmulq_f32(o->fa[s], d));
				out[p] = vfmaq_f32(out[p], vcvtq_f32_s32(s1),
						   vmulq_f32(o->fb[s], d));
				continue;
			}
			s0 = vmmlaq_s32(s0, o->q[s][2], vld1q_s8(x + 32));
			s0 = vmmlaq_s32(s0, o->q[s][3], vld1q_s8(x + 48));
			out[p] = vfmaq_f32(out[p], vcvtq_f32_s32(s0), vmulq_f32(o->fa[s], d));
			if (type != AW_TYPE_Q5_0) {
				const float32x2_t x2 = vld1_f32(sp + 2 * i);

				out[p] = vfmaq_f32(out[p], o->fb[s], vcombine_f32(x2, x2));
			}
		}
	}
}

/* Tile on KQ8 weights: rows r, r + 1 (the same row twice when r1 == r)
 * against the P token pairs at xp / dp / sp (tables of pair_tables());
 * out[p] = the 2x2 results, lane 2i + j = row r + i, token 2p + j. */
INLINE void mtile8(const uint8_t *row0, const uint8_t *row1, uint32_t nb, const int8_t *xp,
		   const float *dp, const float *sp, const int P, const uint32_t type,
		   float32x4_t out[4])
{
	const uint32_t bsize = type == AW_TYPE_Q6_K ? 210 : type == AW_TYPE_Q5_K ? 176 : 144;
	float32x4_t acc[4]; /* local: stores to out[] would not stay in registers */
	struct pair o;

	for (int p = 0; p < P; p++)
		acc[p] = vdupq_n_f32(0.0f);
	for (uint32_t g = 0; g < nb / 8; g++) {
		decode_pair(row0 + (size_t)g * bsize, row1 + (size_t)g * bsize, type, &o);
		accum(&o, g, 8, nb, xp, dp, sp, P, type, acc);
	}
	for (int p = 0; p < P; p++)
		out[p] = acc[p];
}

/* The same on ROWS weights of any of the six types: each row's group is
 * decoded as for the dotprod code (decode(): elements 0-15 and 16-31 of
 * each block in two vectors) and a 64-bit zip of the two rows' vectors
 * makes the operands (chunks 0, 1 from the first, 2, 3 from the second). */
INLINE void mtile(const uint8_t *row0, const uint8_t *row1, uint32_t nb, const int8_t *xp,
		  const float *dp, const float *sp, const int P, const uint32_t type,
		  float32x4_t out[4])
{
	float32x4_t acc[4];
	struct grp g0, g1;
	struct pair o;

	for (int p = 0; p < P; p++)
		acc[p] = vdupq_n_f32(0.0f);
	for (uint32_t g = 0; 8 * g < nb; g++) {
		const int n = nb - 8 * g >= 8 ? 8 : (int)(nb - 8 * g);

		decode(row0, g, n, type, &g0);
		decode(row1, g, n, type, &g1);
		pair_factors(g0.fa, g1.fa, o.fa);
		pair_factors(type == AW_TYPE_Q6_K ? g0.fb : g0.fm,
			     type == AW_TYPE_Q6_K ? g1.fb : g1.fm, o.fb);
		for (int s = 0; s < n; s++)
			for (int h = 0; h < 2; h++) {
				const int64x2_t a = vreinterpretq_s64_s8(g0.q[s][h]);
				const int64x2_t b = vreinterpretq_s64_s8(g1.q[s][h]);

				o.q[s][2 * h] = vreinterpretq_s8_s64(vzip1q_s64(a, b));
				o.q[s][2 * h + 1] = vreinterpretq_s8_s64(vzip2q_s64(a, b));
			}
		accum(&o, g, n, nb, xp, dp, sp, P, type, acc);
	}
	for (int p = 0; p < P; p++)
		out[p] = acc[p];
}

typedef void mtile_fn(const uint8_t *, const uint8_t *, uint32_t, const int8_t *, const float *,
		      const float *, float32x4_t[4]);

#define MTILE(name, fn, P, type)                                                                   \
	static void name(const uint8_t *row0, const uint8_t *row1, uint32_t nb, const int8_t *xp,  \
			 const float *dp, const float *sp, float32x4_t out[4])                     \
	{                                                                                          \
		fn(row0, row1, nb, xp, dp, sp, P, type, out);                                      \
	}
#define MTILES(t, fn, type)                                                                        \
	MTILE(t##_4, fn, 4, type)                                                                  \
	MTILE(t##_3, fn, 3, type)                                                                  \
	MTILE(t##_2, fn, 2, type)                                                                  \
	MTILE(t##_1, fn, 1, type)                                                                  \
	static mtile_fn *const t[4] = {t##_4, t##_3, t##_2, t##_1};

MTILES(m8_q4_k, mtile8, AW_TYPE_Q4_K)
MTILES(m8_q5_k, mtile8, AW_TYPE_Q5_K)
MTILES(m8_q6_k, mtile8, AW_TYPE_Q6_K)
MTILES(m_q4_k, mtile, AW_TYPE_Q4_K)
MTILES(m_q5_k, mtile, AW_TYPE_Q5_K)
MTILES(m_q6_k, mtile, AW_TYPE_Q6_K)
MTILES(m_q4_1, mtile, AW_TYPE_Q4_1)
MTILES(m_q5_0, mtile, AW_TYPE_Q5_0)
MTILES(m_q5_1, mtile, AW_TYPE_Q5_1)

/* Pair tables of tokens t < n (n even, or the last token paired with
 * itself): quants in operand order at xp, (dX, dX * sumX) of the pair's two
 * tokens at dp / sp + 2 (p nb + b). */
static void pair_tables(const struct aw_block_q8a *xq, uint32_t nb, uint32_t n, int8_t *xp,
			float *dp, float *sp)
{
	for (uint32_t p = 0; 2 * p < n; p++)
		for (uint32_t b = 0; b < nb; b++)
			for (uint32_t h = 0; h < 2; h++) {
				const uint32_t t = 2 * p + h < n ? 2 * p + h : n - 1;
				const struct aw_block_q8a *x = xq + (size_t)t * nb + b;
				const size_t i = (size_t)p * nb + b;

				dp[2 * i + h] = x->d;
				sp[2 * i + h] = x->d * (float)x->sum;
				for (uint32_t c = 0; c < 4; c++)
					memcpy(xp + 64 * i + 16 * c + 8 * h, x->qs + 8 * c, 8);
			}
}

/* The loop of aw_kern_kq_drive() over row pairs and tiles of up to 4
 * token pairs; chunk: tokens per table fill (even, >= 2). */
static __attribute__((noinline)) void mdrive(const struct aw_kern_mat *w,
					     const struct aw_kern_in *in, float *y, size_t ldy,
					     uint32_t r0, uint32_t r1, uint32_t chunk,
					     mtile_fn *const tiles[4])
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	float dp[AW_KERN_KQ_TAB] __attribute__((aligned(64)));
	float sp[AW_KERN_KQ_TAB] __attribute__((aligned(64)));
	int8_t xp[32 * AW_KERN_KQ_TAB] __attribute__((aligned(64)));

	for (uint32_t rb = r0; rb < r1; rb += AW_KERN_KQ_ROWS) {
		const uint32_t re = r1 - rb < AW_KERN_KQ_ROWS ? r1 : rb + AW_KERN_KQ_ROWS;

		for (uint32_t c0 = 0; c0 < in->n_tok; c0 += chunk) {
			const uint32_t n = in->n_tok - c0 < chunk ? in->n_tok - c0 : chunk;
			const uint32_t np = (n + 1) / 2;

			pair_tables(in->xq + (size_t)c0 * nb, nb, n, xp, dp, sp);
			for (uint32_t r = rb; r < re; r += 2) {
				const uint8_t *row0 =
					(const uint8_t *)w->data + (size_t)r * w->row_size;
				const uint8_t *row1 = r + 1 < re ? row0 + w->row_size : row0;

				for (uint32_t p0 = 0; p0 < np; p0 += 4) {
					const uint32_t P = np - p0 < 4 ? np - p0 : 4;
					float32x4_t out[4];
					float v[4][4];

					tiles[4 - P](row0, row1, nb, xp + 64 * (size_t)p0 * nb,
						     dp + 2 * (size_t)p0 * nb,
						     sp + 2 * (size_t)p0 * nb, out);
					for (uint32_t p = 0; p < P; p++) {
						vst1q_f32(v[p], out[p]);
						for (uint32_t i = 0; i < (r + 1 < re ? 2u : 1u);
						     i++)
							for (uint32_t j = 0; j < 2; j++) {
								const uint32_t t = 2 * (p0 + p) + j;

								if (t < n)
									y[(size_t)(c0 + t) * ldy +
									  r + i] = v[p][2 * i + j];
							}
					}
				}
			}
		}
	}
}

void FN(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy, uint32_t r0,
	uint32_t r1)
{
	const int k8 = w->layout == AW_KERN_LAYOUT_KQ8;
	const uint32_t nb = w->cols / AW_KERN_QK;
	const uint32_t chunk = nb ? AW_KERN_KQ_TAB / nb / 2 * 2 : 0;
	mtile_fn *const *t = w->type == AW_TYPE_Q4_1   ? m_q4_1
			     : w->type == AW_TYPE_Q5_0 ? m_q5_0
			     : w->type == AW_TYPE_Q5_1 ? m_q5_1
			     : w->type == AW_TYPE_Q4_K ? (k8 ? m8_q4_k : m_q4_k)
			     : w->type == AW_TYPE_Q5_K ? (k8 ? m8_q5_k : m_q5_k)
			     : w->type == AW_TYPE_Q6_K ? (k8 ? m8_q6_k : m_q6_k)
						       : NULL;

	if (t && (k8 || w->layout == AW_KERN_LAYOUT_ROWS) && in->n_tok >= 2 && chunk >= 2)
		mdrive(w, in, y, ldy, r0, r1, chunk, t);
	else
		aw_kern_kq_matmul_i8mm_sdot(w, in, y, ldy, r0, r1);
}

AW_KERN_KQ_MATMUL(aw_kern_kq_matmul_i8mm_sdot)
#else
AW_KERN_KQ_MATMUL(FN)
#endif
