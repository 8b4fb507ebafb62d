/* kern-neon.c — AArch64 Advanced SIMD kernels, same math as kern-ref.c.
 *
 * Built three times (inference/meson.build), one table per level, chosen at
 * run time from getauxval(AT_HWCAP/AT_HWCAP2) in kern.c:
 *
 *   AW_KERN_NEON_LEVEL  table      flags                         integer dot product
 *   0                   "neon"     -march=armv8-a                smull/smull2 + addp + sadalp
 *   1                   "dotprod"  -march=armv8.2-a+dotprod      sdot (4 int8 pairs per lane)
 *   2                   "i8mm"     -march=armv8.6-a+dotprod+i8mm sdot; smmla for >= 2 tokens
 *
 * Quantized matrices are read in either layout. In the X16 layout a 16-byte
 * load holds 4 consecutive quants of 4 rows, so one sdot against the
 * activation's 4 quants broadcast to every lane adds 4 products to each of 4
 * row sums; Q8_0's stored q + 128 is turned back into signed q with an XOR,
 * and Q4_0's unsigned nibbles (0..15) are used as they are, the -8 folded
 * into an accumulator that starts at -8 * qX.sum (kern.h). Plain NEON has no
 * sdot: smull gives int16 products (|q| <= 128 * 127 = 16256), addp adds
 * neighbours (<= 32512, no int16 overflow) and sadalp the next pair into
 * int32, which is the same 4-products-per-lane sum.
 *
 * smmla multiplies a 2x8 int8 matrix by the transpose of another into a 2x2
 * int32 block: two tokens × two weight rows × 8 quants. GGUF rows give the 8
 * consecutive quants directly; in the X16 layout a 32-bit zip of the loads
 * for k and k+1 makes rows of 8.
 *
 * Every block's integer sum is exact; the float accumulation differs from the
 * reference only in the order of additions (per-lane partial sums of at most
 * 4 terms per block in the GGUF-rows sdot path), which test-kern.c's bound
 * covers. The elementwise kernels are the reference ones except quant_q8a
 * (bit-exact: fcvtns rounds to nearest even like rintf).
 */
#include <arm_neon.h>
#include <math.h>

#include "kern-int.h"
#include "kern-kq-int.h"

#if AW_KERN_NEON_LEVEL == 2
#define KQ_MATMUL aw_kern_kq_matmul_i8mm
#elif AW_KERN_NEON_LEVEL == 1
#define KQ_MATMUL aw_kern_kq_matmul_dotprod
#else
#define KQ_MATMUL aw_kern_kq_matmul_neon
#endif

#if !defined(AW_KERN_NEON_LEVEL)
#error "AW_KERN_NEON_LEVEL must be 0 (neon), 1 (dotprod) or 2 (i8mm)"
#endif
#if AW_KERN_NEON_LEVEL >= 1 && !defined(__ARM_FEATURE_DOTPROD)
#error "the dotprod level needs -march=...+dotprod"
#endif
#if AW_KERN_NEON_LEVEL >= 2 && !defined(__ARM_FEATURE_MATMUL_INT8)
#error "the i8mm level needs -march=...+i8mm"
#endif

#define INLINE static inline __attribute__((always_inline))

/* ---- helpers -------------------------------------------------------------- */

INLINE int32_t load_i32(const void *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* the 4 bytes at p in every 32-bit lane */
INLINE int8x16_t bcast4(const int8_t *p)
{
	return vreinterpretq_s8_s32(vdupq_n_s32(load_i32(p)));
}

INLINE float32x4_t load_f16x4(const aw_fp16 *p)
{
	return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

/* acc[l] += sum_{j<4} a[4l+j] * b[4l+j] */
INLINE int32x4_t dot4(int32x4_t acc, int8x16_t a, int8x16_t b)
{
#if AW_KERN_NEON_LEVEL >= 1
	return vdotq_s32(acc, a, b);
#else
	const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
	const int16x8_t hi = vmull_high_s8(a, b);

	return vpadalq_s16(acc, vpaddq_s16(lo, hi));
#endif
}

INLINE int8x16_t zip64_lo(int8x16_t a, int8x16_t b)
{
	return vreinterpretq_s8_s64(vzip1q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

INLINE int8x16_t zip64_hi(int8x16_t a, int8x16_t b)
{
	return vreinterpretq_s8_s64(vzip2q_s64(vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b)));
}

INLINE int8x16_t zip32_lo(int8x16_t a, int8x16_t b)
{
	return vreinterpretq_s8_s32(vzip1q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b)));
}

INLINE int8x16_t zip32_hi(int8x16_t a, int8x16_t b)
{
	return vreinterpretq_s8_s32(vzip2q_s32(vreinterpretq_s32_s8(a), vreinterpretq_s32_s8(b)));
}

/* ---- activation quantization ------------------------------------------------ */

static void quant_q8a(const float *x, struct aw_block_q8a *y, size_t n)
{
	for (size_t b = 0; b < n / AW_KERN_QK; b++) {
		const float *xb = x + b * AW_KERN_QK;
		float32x4_t v[8], a = vdupq_n_f32(0.0f);

		for (int j = 0; j < 8; j++) {
			v[j] = vld1q_f32(xb + 4 * j);
			a = vmaxq_f32(a, vabsq_f32(v[j]));
		}
		const float d = vmaxvq_f32(a) / 127.0f;
		const float id = d != 0.0f ? 1.0f / d : 0.0f;
		int32x4_t q[8], s = vdupq_n_s32(0);

		for (int j = 0; j < 8; j++) {
			q[j] = vcvtnq_s32_f32(vmulq_n_f32(v[j], id)); /* nearest, ties to even */
			s = vaddq_s32(s, q[j]);
		}
		for (int h = 0; h < 2; h++) {
			const int16x8_t h0 =
				vcombine_s16(vmovn_s32(q[4 * h]), vmovn_s32(q[4 * h + 1]));
			const int16x8_t h1 =
				vcombine_s16(vmovn_s32(q[4 * h + 2]), vmovn_s32(q[4 * h + 3]));

			vst1q_s8(y[b].qs + 16 * h, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
		}
		y[b].d = d;
		y[b].sum = vaddvq_s32(s);
	}
}

/* ---- matmul: X16 layout -------------------------------------------------------- */

/* One group of 16 rows (4 vectors of 4 rows) × T tokens (1 or 2), sdot or its
 * plain-NEON equivalent; writes rows [lo, hi). */
INLINE void x16_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		     uint32_t g, uint32_t t0, const int T, const int q4, uint32_t lo, uint32_t hi)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const size_t qb = q4 ? 256 : 512;
	const uint8_t *gq = (const uint8_t *)w->data + g * aw_kern_x16_group_bytes(w->type, nb);
	const aw_fp16 *gd = (const aw_fp16 *)(gq + nb * qb);
	const struct aw_block_q8a *xr[2];
	float32x4_t facc[4][2];

	for (int t = 0; t < T; t++) {
		xr[t] = in->xq + (size_t)(t0 + t) * nb;
		for (int h = 0; h < 4; h++)
			facc[h][t] = vdupq_n_f32(0.0f);
	}
	for (uint32_t b = 0; b < nb; b++) {
		const uint8_t *q = gq + b * qb;
		int32x4_t iacc[4][2];

		for (int t = 0; t < T; t++)
			for (int h = 0; h < 4; h++)
				iacc[h][t] = vdupq_n_s32(q4 ? -8 * xr[t][b].sum : 0);
		if (q4) {
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				for (int h = 0; h < 4; h++) {
					const uint8x16_t raw = vld1q_u8(q + 64 * v + 16 * h);
					const int8x16_t wl = vreinterpretq_s8_u8(
						vandq_u8(raw, vdupq_n_u8(0x0f)));
					const int8x16_t wh =
						vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));

					for (int t = 0; t < T; t++) {
						iacc[h][t] = dot4(iacc[h][t], wl,
								  bcast4(xr[t][b].qs + 4 * v));
						iacc[h][t] = dot4(iacc[h][t], wh,
								  bcast4(xr[t][b].qs + 16 + 4 * v));
					}
				}
			}
		} else {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				for (int h = 0; h < 4; h++) {
					const int8x16_t ws = vreinterpretq_s8_u8(veorq_u8(
						vld1q_u8(q + 64 * k + 16 * h), vdupq_n_u8(0x80)));

					for (int t = 0; t < T; t++)
						iacc[h][t] = dot4(iacc[h][t], ws,
								  bcast4(xr[t][b].qs + 4 * k));
				}
			}
		}
		for (int h = 0; h < 4; h++) {
			const float32x4_t dw = load_f16x4(gd + 16 * b + 4 * h);

			for (int t = 0; t < T; t++)
				facc[h][t] = vfmaq_f32(facc[h][t], vcvtq_f32_s32(iacc[h][t]),
						       vmulq_n_f32(dw, xr[t][b].d));
		}
	}
	const uint32_t row0 = g * 16;

	for (int t = 0; t < T; t++) {
		float out[16];

		for (int h = 0; h < 4; h++)
			vst1q_f32(out + 4 * h, facc[h][t]);
		for (uint32_t row = row0 > lo ? row0 : lo; row < hi && row < row0 + 16; row++)
			y[(size_t)(t0 + t) * ldy + row] = out[row - row0];
	}
}

#if AW_KERN_NEON_LEVEL >= 2
/* One group of 16 rows × 2 tokens with smmla: 8 int32x4 blocks, block p holds
 * [t0 row 2p, t0 row 2p+1, t1 row 2p, t1 row 2p+1]. */
INLINE void x16_mm_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t g, uint32_t t0, const int q4, uint32_t lo, uint32_t hi)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const size_t qb = q4 ? 256 : 512;
	const uint8_t *gq = (const uint8_t *)w->data + g * aw_kern_x16_group_bytes(w->type, nb);
	const aw_fp16 *gd = (const aw_fp16 *)(gq + nb * qb);
	const struct aw_block_q8a *x0 = in->xq + (size_t)t0 * nb, *x1 = x0 + nb;
	float32x4_t facc[8];

	for (int p = 0; p < 8; p++)
		facc[p] = vdupq_n_f32(0.0f);
	for (uint32_t b = 0; b < nb; b++) {
		const uint8_t *q = gq + b * qb;
		const int8x16_t x0lo = vld1q_s8(x0[b].qs), x0hi = vld1q_s8(x0[b].qs + 16);
		const int8x16_t x1lo = vld1q_s8(x1[b].qs), x1hi = vld1q_s8(x1[b].qs + 16);
		/* a[c]: quants 8c..8c+7 of token 0, then of token 1 */
		const int8x16_t a[4] = {zip64_lo(x0lo, x1lo), zip64_hi(x0lo, x1lo),
					zip64_lo(x0hi, x1hi), zip64_hi(x0hi, x1hi)};
		int32x4_t iacc[8];

		if (q4) {
			const int32x4_t init = vcombine_s32(vdup_n_s32(-8 * x0[b].sum),
							    vdup_n_s32(-8 * x1[b].sum));

			for (int p = 0; p < 8; p++)
				iacc[p] = init;
#pragma GCC unroll 2
			for (int vp = 0; vp < 2; vp++) {
				for (int h = 0; h < 4; h++) {
					const uint8x16_t r0 = vld1q_u8(q + 64 * (2 * vp) + 16 * h);
					const uint8x16_t r1 =
						vld1q_u8(q + 64 * (2 * vp + 1) + 16 * h);
					const uint8x16_t m = vdupq_n_u8(0x0f);
					const int8x16_t l0 = vreinterpretq_s8_u8(vandq_u8(r0, m));
					const int8x16_t l1 = vreinterpretq_s8_u8(vandq_u8(r1, m));
					const int8x16_t h0 = vreinterpretq_s8_u8(vshrq_n_u8(r0, 4));
					const int8x16_t h1 = vreinterpretq_s8_u8(vshrq_n_u8(r1, 4));

					/* low nibbles: quants 8vp..; high: 16 + 8vp.. */
					iacc[2 * h] =
						vmmlaq_s32(iacc[2 * h], a[vp], zip32_lo(l0, l1));
					iacc[2 * h + 1] = vmmlaq_s32(iacc[2 * h + 1], a[vp],
								     zip32_hi(l0, l1));
					iacc[2 * h] = vmmlaq_s32(iacc[2 * h], a[2 + vp],
								 zip32_lo(h0, h1));
					iacc[2 * h + 1] = vmmlaq_s32(iacc[2 * h + 1], a[2 + vp],
								     zip32_hi(h0, h1));
				}
			}
		} else {
			for (int p = 0; p < 8; p++)
				iacc[p] = vdupq_n_s32(0);
#pragma GCC unroll 4
			for (int c = 0; c < 4; c++) {
				for (int h = 0; h < 4; h++) {
					const uint8x16_t s = vdupq_n_u8(0x80);
					const int8x16_t w0 = vreinterpretq_s8_u8(
						veorq_u8(vld1q_u8(q + 64 * (2 * c) + 16 * h), s));
					const int8x16_t w1 = vreinterpretq_s8_u8(veorq_u8(
						vld1q_u8(q + 64 * (2 * c + 1) + 16 * h), s));

					iacc[2 * h] =
						vmmlaq_s32(iacc[2 * h], a[c], zip32_lo(w0, w1));
					iacc[2 * h + 1] =
						vmmlaq_s32(iacc[2 * h + 1], a[c], zip32_hi(w0, w1));
				}
			}
		}
		const float32x4_t dx =
			vcombine_f32(vdup_n_f32(x0[b].d), vdup_n_f32(x1[b].d)); /* t0 t0 t1 t1 */

		for (int h = 0; h < 4; h++) {
			const float64x2_t dw =
				vreinterpretq_f64_f32(load_f16x4(gd + 16 * b + 4 * h));
			/* [d(4h), d(4h+1)] twice, then [d(4h+2), d(4h+3)] twice */
			const float32x4_t d01 = vreinterpretq_f32_f64(vdupq_laneq_f64(dw, 0));
			const float32x4_t d23 = vreinterpretq_f32_f64(vdupq_laneq_f64(dw, 1));

			facc[2 * h] = vfmaq_f32(facc[2 * h], vcvtq_f32_s32(iacc[2 * h]),
						vmulq_f32(d01, dx));
			facc[2 * h + 1] = vfmaq_f32(facc[2 * h + 1], vcvtq_f32_s32(iacc[2 * h + 1]),
						    vmulq_f32(d23, dx));
		}
	}
	float out[2][16];

	for (int p = 0; p < 8; p++) {
		vst1_f32(out[0] + 2 * p, vget_low_f32(facc[p]));
		vst1_f32(out[1] + 2 * p, vget_high_f32(facc[p]));
	}
	const uint32_t row0 = g * 16;

	for (int t = 0; t < 2; t++)
		for (uint32_t row = row0 > lo ? row0 : lo; row < hi && row < row0 + 16; row++)
			y[(size_t)(t0 + t) * ldy + row] = out[t][row - row0];
}
#endif

#define X16_TILES(q4)                                                                              \
	static void x16_tiles_##q4(const struct aw_kern_mat *w, const struct aw_kern_in *in,       \
				   float *y, size_t ldy, uint32_t g, uint32_t lo, uint32_t hi)     \
	{                                                                                          \
		uint32_t t = 0;                                                                    \
		for (; t + 2 <= in->n_tok; t += 2)                                                 \
			X16_PAIR(q4);                                                              \
		if (t < in->n_tok)                                                                 \
			x16_tile(w, in, y, ldy, g, t, 1, q4, lo, hi);                              \
	}

#if AW_KERN_NEON_LEVEL >= 2
#define X16_PAIR(q4) x16_mm_tile(w, in, y, ldy, g, t, q4, lo, hi)
#else
#define X16_PAIR(q4) x16_tile(w, in, y, ldy, g, t, 2, q4, lo, hi)
#endif

X16_TILES(0)
X16_TILES(1)

static void matmul_x16(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
		       size_t ldy, uint32_t r0, uint32_t r1)
{
	for (uint32_t g = r0 / 16; g < (r1 + 15) / 16; g++) {
		if (w->type == AW_TYPE_Q4_0)
			x16_tiles_1(w, in, y, ldy, g, r0, r1);
		else
			x16_tiles_0(w, in, y, ldy, g, r0, r1);
	}
}

/* ---- matmul: GGUF rows ------------------------------------------------------------ */

/* Signed quants of block b of a Q8_0/Q4_0 row, and its scale. */
INLINE float row_block(const uint8_t *row, uint32_t b, const int q4, int8x16_t *w0, int8x16_t *w1)
{
	if (q4) {
		const struct aw_block_q4_0 *blk = (const struct aw_block_q4_0 *)row + b;
		const uint8x16_t raw = vld1q_u8(blk->qs);

		*w0 = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0f))), vdupq_n_s8(8));
		*w1 = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(raw, 4)), vdupq_n_s8(8));
		return aw_fp16_to_f32(blk->d);
	}
	const struct aw_block_q8_0 *blk = (const struct aw_block_q8_0 *)row + b;

	*w0 = vld1q_s8(blk->qs);
	*w1 = vld1q_s8(blk->qs + 16);
	return aw_fp16_to_f32(blk->d);
}

/* One row × T tokens (1..4). */
INLINE void rows_q_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r, uint32_t t0, const int T, const int q4)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	float32x4_t facc[4];

	for (int t = 0; t < T; t++)
		facc[t] = vdupq_n_f32(0.0f);
	for (uint32_t b = 0; b < nb; b++) {
		int8x16_t w0, w1;
		const float dw = row_block(row, b, q4, &w0, &w1);

		for (int t = 0; t < T; t++) {
			const struct aw_block_q8a *xb = in->xq + (size_t)(t0 + t) * nb + b;
			const int32x4_t acc = dot4(dot4(vdupq_n_s32(0), w0, vld1q_s8(xb->qs)), w1,
						   vld1q_s8(xb->qs + 16));

			facc[t] = vfmaq_n_f32(facc[t], vcvtq_f32_s32(acc), dw * xb->d);
		}
	}
	for (int t = 0; t < T; t++)
		y[(size_t)(t0 + t) * ldy + r] = vaddvq_f32(facc[t]);
}

#if AW_KERN_NEON_LEVEL >= 2
/* Two rows × two tokens with smmla: acc = [t0 r, t0 r+1, t1 r, t1 r+1]. */
INLINE void rows_mm_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			 size_t ldy, uint32_t r, uint32_t t0, const int q4)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const uint8_t *ra = (const uint8_t *)w->data + (size_t)r * w->row_size;
	const uint8_t *rb = ra + w->row_size;
	const struct aw_block_q8a *x0 = in->xq + (size_t)t0 * nb, *x1 = x0 + nb;
	float32x4_t facc = vdupq_n_f32(0.0f);

	for (uint32_t b = 0; b < nb; b++) {
		int8x16_t wa0, wa1, wb0, wb1;
		const float da = row_block(ra, b, q4, &wa0, &wa1);
		const float db = row_block(rb, b, q4, &wb0, &wb1);
		const int8x16_t x0lo = vld1q_s8(x0[b].qs), x0hi = vld1q_s8(x0[b].qs + 16);
		const int8x16_t x1lo = vld1q_s8(x1[b].qs), x1hi = vld1q_s8(x1[b].qs + 16);
		int32x4_t acc = vdupq_n_s32(0);

		acc = vmmlaq_s32(acc, zip64_lo(x0lo, x1lo), zip64_lo(wa0, wb0));
		acc = vmmlaq_s32(acc, zip64_hi(x0lo, x1lo), zip64_hi(wa0, wb0));
		acc = vmmlaq_s32(acc, zip64_lo(x0hi, x1hi), zip64_lo(wa1, wb1));
		acc = vmmlaq_s32(acc, zip64_hi(x0hi, x1hi), zip64_hi(wa1, wb1));
		const float32x4_t dx = vcombine_f32(vdup_n_f32(x0[b].d), vdup_n_f32(x1[b].d));
		const float32x4_t dw = vcombine_f32(vset_lane_f32(db, vdup_n_f32(da), 1),
						    vset_lane_f32(db, vdup_n_f32(da), 1));

		facc = vfmaq_f32(facc, vcvtq_f32_s32(acc), vmulq_f32(dw, dx));
	}
	float out[4];

	vst1q_f32(out, facc);
	y[(size_t)t0 * ldy + r] = out[0];
	y[(size_t)t0 * ldy + r + 1] = out[1];
	y[(size_t)(t0 + 1) * ldy + r] = out[2];
	y[(size_t)(t0 + 1) * ldy + r + 1] = out[3];
}
#endif

static void rows_q(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		   uint32_t r0, uint32_t r1, const int q4)
{
	uint32_t r = r0;

#if AW_KERN_NEON_LEVEL >= 2
	if (in->n_tok >= 2) {
		const uint32_t t_pairs = in->n_tok & ~1u;

		for (; r + 2 <= r1; r += 2) {
			for (uint32_t t = 0; t < t_pairs; t += 2)
				rows_mm_tile(w, in, y, ldy, r, t, q4);
			if (t_pairs < in->n_tok) {
				rows_q_tile(w, in, y, ldy, r, t_pairs, 1, q4);
				rows_q_tile(w, in, y, ldy, r + 1, t_pairs, 1, q4);
			}
		}
	}
#endif
	for (; r < r1; r++) {
		uint32_t t = 0;

		for (; t + 4 <= in->n_tok; t += 4)
			rows_q_tile(w, in, y, ldy, r, t, 4, q4);
		for (; t < in->n_tok; t++)
			rows_q_tile(w, in, y, ldy, r, t, 1, q4);
	}
}

INLINE float32x4_t load_wf(uint32_t type, const void *row, uint32_t i)
{
	switch (type) {
	case AW_TYPE_F16:
		return load_f16x4((const aw_fp16 *)row + i);
	case AW_TYPE_BF16:
		return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const aw_bf16 *)row + i), 16));
	default:
		return vld1q_f32((const float *)row + i);
	}
}

INLINE float wf_scalar(uint32_t type, const void *row, uint32_t i)
{
	switch (type) {
	case AW_TYPE_F16:
		return aw_fp16_to_f32(((const aw_fp16 *)row)[i]);
	case AW_TYPE_BF16:
		return aw_bf16_to_f32(((const aw_bf16 *)row)[i]);
	default:
		return ((const float *)row)[i];
	}
}

/* One row × T tokens (1..4) of float weights. */
INLINE void rows_f_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r, uint32_t t0, const int T, const uint32_t type)
{
	const void *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	float32x4_t acc[4];
	uint32_t i = 0;

	for (int t = 0; t < T; t++)
		acc[t] = vdupq_n_f32(0.0f);
	for (; i + 4 <= w->cols; i += 4) {
		const float32x4_t wv = load_wf(type, row, i);

		for (int t = 0; t < T; t++)
			acc[t] = vfmaq_f32(acc[t], wv,
					   vld1q_f32(in->x + (size_t)(t0 + t) * in->n_in + i));
	}
	for (int t = 0; t < T; t++) {
		float s = vaddvq_f32(acc[t]);

		for (uint32_t j = i; j < w->cols; j++)
			s += wf_scalar(type, row, j) * in->x[(size_t)(t0 + t) * in->n_in + j];
		y[(size_t)(t0 + t) * ldy + r] = s;
	}
}

#define ROWS_F(type)                                                                               \
	do {                                                                                       \
		for (uint32_t r = r0; r < r1; r++) {                                               \
			uint32_t t = 0;                                                            \
			for (; t + 4 <= in->n_tok; t += 4)                                         \
				rows_f_tile(w, in, y, ldy, r, t, 4, type);                         \
			for (; t < in->n_tok; t++)                                                 \
				rows_f_tile(w, in, y, ldy, r, t, 1, type);                         \
		}                                                                                  \
	} while (0)

static void matmul(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		   uint32_t r0, uint32_t r1)
{
	if (aw_kern_type_kq(w->type)) {
		KQ_MATMUL(w, in, y, ldy, r0, r1);
		return;
	}
	if (w->layout == AW_KERN_LAYOUT_X16) {
		matmul_x16(w, in, y, ldy, r0, r1);
		return;
	}
	switch (w->type) {
	case AW_TYPE_Q8_0:
		rows_q(w, in, y, ldy, r0, r1, 0);
		break;
	case AW_TYPE_Q4_0:
		rows_q(w, in, y, ldy, r0, r1, 1);
		break;
	case AW_TYPE_F16:
		ROWS_F(AW_TYPE_F16);
		break;
	case AW_TYPE_BF16:
		ROWS_F(AW_TYPE_BF16);
		break;
	default:
		ROWS_F(AW_TYPE_F32);
		break;
	}
}

/* ---- the table ------------------------------------------------------------------- */

#if AW_KERN_NEON_LEVEL == 2
#define TABLE aw_kern_i8mm
#define NAME  "i8mm"
#elif AW_KERN_NEON_LEVEL == 1
#define TABLE aw_kern_dotprod
#define NAME  "dotprod"
#else
#define TABLE aw_kern_neon
#define NAME  "neon"
#endif

const struct aw_kern TABLE = {
	.name = NAME,
	.quant_q8a = quant_q8a,
	.matmul = matmul,
	.rmsnorm = aw_kern_ref_rmsnorm,
	.rope = aw_kern_ref_rope,
	.softmax = aw_kern_ref_softmax,
	.attn = aw_kern_ref_attn,
	.silu_mul = aw_kern_ref_silu_mul,
	.add = aw_kern_ref_add,
};
