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
 * covers. quant_q8a is bit-exact (fcvtns rounds to nearest even like rintf).
 *
 * The float kernels (the same at every level: they need only armv8-a) follow
 * kern-avx512.c with 4 lanes: rmsnorm, softmax, silu_mul and add with scalar
 * tails sharing the index; exp4() a polynomial with 2^n in the exponent bits;
 * rope's angles in double (sincos2, two lanes, then one fcvtn) into c/s
 * tables, the pair swap of the llama layout a rev64; attention an online
 * softmax over 64-position chunks whose scores come 4 positions per faddp
 * tree. test-kern.c holds the tolerances (exp: 8 eps; rope: angle bound).
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
		const float amax = vmaxvq_f32(a);
		const float d = aw_kern_q8a_scale(amax);
		const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
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

/* ---- elementwise ------------------------------------------------------------------ */

/* exp(x), 4 lanes: n = round(x log2 e), r = x - n ln 2 (ln 2 in two parts,
 * |r| <= 0.35), a degree-7 Taylor polynomial (truncation < 2e-8 relative),
 * times 2^n built in the exponent bits. x is clamped to [ln FLT_MIN, 88] so
 * that 2^n stays a normal float (n in [-126, 127]); below ln FLT_MIN
 * (-87.3365) the result is exactly 0 (expf's would be a subnormal < FLT_MIN
 * there), and above 88 it is e^88 (the callers pass x <= 0, or silu's -g). A
 * few ulp from expf elsewhere. NaN stays NaN (fmax/fmin propagate it). */
INLINE float32x4_t exp4(float32x4_t x)
{
	const float32x4_t lo = vdupq_n_f32(-87.33654f);
	const uint32x4_t under = vcltq_f32(x, lo);

	x = vminq_f32(vmaxq_f32(x, lo), vdupq_n_f32(88.0f));
	const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
	float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));

	r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
	float32x4_t p = vdupq_n_f32(1.0f / 5040);

	p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
	p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
	p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
	const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
	const float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));

	return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
}

/* y = x / sqrt(mean(x^2) + eps) * w: four accumulators of 4 lanes for the
 * sum of squares (16 partial sums, any order is within the test's n eps). */
static void rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
	float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
		const float32x4_t v2 = vld1q_f32(x + i + 8), v3 = vld1q_f32(x + i + 12);

		a0 = vfmaq_f32(a0, v0, v0);
		a1 = vfmaq_f32(a1, v1, v1);
		a2 = vfmaq_f32(a2, v2, v2);
		a3 = vfmaq_f32(a3, v3, v3);
	}
	for (; i + 4 <= n; i += 4) {
		const float32x4_t v = vld1q_f32(x + i);

		a0 = vfmaq_f32(a0, v, v);
	}
	float ss = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));

	for (size_t j = i; j < n; j++)
		ss += x[j] * x[j];
	const float scale = 1.0f / sqrtf(ss / (float)n + eps);

	for (i = 0; i + 4 <= n; i += 4)
		vst1q_f32(y + i, vmulq_f32(vmulq_n_f32(vld1q_f32(x + i), scale), vld1q_f32(w + i)));
	for (; i < n; i++)
		y[i] = x[i] * scale * w[i];
}

static void softmax(float *x, size_t n)
{
	float32x4_t vm = vdupq_n_f32(-INFINITY), vs = vdupq_n_f32(0.0f);
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		vm = vmaxq_f32(vm, vld1q_f32(x + i));
	float m = vmaxvq_f32(vm);

	for (size_t j = i; j < n; j++)
		m = fmaxf(m, x[j]);
	const float32x4_t mv = vdupq_n_f32(m);

	for (i = 0; i + 4 <= n; i += 4) {
		const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), mv));

		vst1q_f32(x + i, e);
		vs = vaddq_f32(vs, e);
	}
	float sum = vaddvq_f32(vs);

	for (; i < n; i++) {
		x[i] = expf(x[i] - m);
		sum += x[i];
	}
	const float inv = 1.0f / sum;

	for (i = 0; i + 4 <= n; i += 4)
		vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), inv));
	for (; i < n; i++)
		x[i] *= inv;
}

static void silu_mul(float *y, const float *g, const float *u, size_t n)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		const float32x4_t gv = vld1q_f32(g + i);
		const float32x4_t e = exp4(vnegq_f32(gv));
		const float32x4_t s = vdivq_f32(gv, vaddq_f32(vdupq_n_f32(1.0f), e));

		vst1q_f32(y + i, vmulq_f32(s, vld1q_f32(u + i)));
	}
	for (; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void add(float *y, const float *a, const float *b, size_t n)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		vst1q_f32(y + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
	for (; i < n; i++)
		y[i] = a[i] + b[i];
}

/* ---- rope ---------------------------------------------------------------------------- */

/* sin and cos of 2 angles in double, as sincos8 in kern-avx512.c: t = k pi/2
 * + r with pi/2 in two parts, |r| <= pi/4, Taylor polynomials of degree 13
 * (sin) and 14 (cos), truncation below 2.1e-14; then the quadrant k mod 4
 * (two's complement bits of the integer k) swaps and negates. */
INLINE void sincos2(float64x2_t t, float64x2_t *ret_s, float64x2_t *ret_c)
{
	const float64x2_t k = vrndnq_f64(vmulq_n_f64(t, 0.63661977236758134));
	float64x2_t r = vfmsq_f64(t, k, vdupq_n_f64(1.5707963267948966));

	r = vfmsq_f64(r, k, vdupq_n_f64(6.123233995736766e-17));
	const float64x2_t r2 = vmulq_f64(r, r);
	float64x2_t s = vdupq_n_f64(1.0 / 6227020800.0);

	s = vfmaq_f64(vdupq_n_f64(-1.0 / 39916800.0), s, r2);
	s = vfmaq_f64(vdupq_n_f64(1.0 / 362880.0), s, r2);
	s = vfmaq_f64(vdupq_n_f64(-1.0 / 5040.0), s, r2);
	s = vfmaq_f64(vdupq_n_f64(1.0 / 120.0), s, r2);
	s = vfmaq_f64(vdupq_n_f64(-1.0 / 6.0), s, r2);
	s = vfmaq_f64(r, vmulq_f64(s, r2), r);
	float64x2_t c = vdupq_n_f64(1.0 / 87178291200.0);

	c = vfmaq_f64(vdupq_n_f64(-1.0 / 479001600.0), c, r2);
	c = vfmaq_f64(vdupq_n_f64(1.0 / 3628800.0), c, r2);
	c = vfmaq_f64(vdupq_n_f64(-1.0 / 40320.0), c, r2);
	c = vfmaq_f64(vdupq_n_f64(1.0 / 720.0), c, r2);
	c = vfmaq_f64(vdupq_n_f64(-1.0 / 24.0), c, r2);
	c = vfmaq_f64(vdupq_n_f64(0.5), c, r2);
	c = vfmsq_f64(vdupq_n_f64(1.0), c, r2);
	/* quadrant q = k mod 4: sin = (s, c, -s, -c)[q], cos = (c, -s, -c, s)[q] */
	const int64x2_t q = vcvtq_s64_f64(k);
	const uint64x2_t odd = vtstq_s64(q, vdupq_n_s64(1));
	const uint64x2_t sneg = vshlq_n_u64(vshrq_n_u64(vreinterpretq_u64_s64(q), 1), 63);
	const uint64x2_t cneg = vshlq_n_u64(
		vshrq_n_u64(vreinterpretq_u64_s64(vaddq_s64(q, vdupq_n_s64(1))), 1), 63);
	const float64x2_t sv = vbslq_f64(odd, c, s), cv = vbslq_f64(odd, s, c);

	*ret_s = vreinterpretq_f64_u64(veorq_u64(vreinterpretq_u64_f64(sv), sneg));
	*ret_c = vreinterpretq_f64_u64(veorq_u64(vreinterpretq_u64_f64(cv), cneg));
}

/* Tables and rotation as rope() in kern-avx512.c, 4 lanes: NORM, pairs
 * (x[2i], x[2i+1]): c2 = (c0, c0, c1, c1, ...), s2 = (-s0, s0, -s1, s1, ...),
 * x' = x c2 + rev64(x) s2 (rev64 swaps the floats of each pair); NEOX, halves:
 * c2 = (c0, c1, ...), s2 = (s0, s1, ...). Scalar tails read the same tables. */
static void rope(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos, uint32_t n_heads,
		 const struct aw_kern_rope *rope)
{
	double freq[520] __attribute__((aligned(16)));
	float c2[1024 + 16] __attribute__((aligned(16))),
		s2[1024 + 16] __attribute__((aligned(16)));
	const uint32_t n_rot = rope->n_rot, half = n_rot / 2;
	const int neox = rope->mode == AW_KERN_ROPE_NEOX;
	const float32x4_t even_neg = {-1.0f, 1.0f, -1.0f, 1.0f};

	assert(n_rot <= 1024 && n_rot <= rope->head_dim);
	aw_kern_rope_freqs_fast(freq, rope); /* padded to a multiple of 8 entries */
	for (uint32_t t = 0; t < n_tok; t++) {
		if (t == 0 || pos[t] != pos[t - 1]) {
			const float64x2_t p = vdupq_n_f64((double)pos[t]);

			for (uint32_t i = 0; i < half; i += 2) {
				float64x2_t sd, cd;

				sincos2(vmulq_f64(p, vld1q_f64(freq + i)), &sd, &cd);
				const float32x2_t cf = vcvt_f32_f64(cd), sf = vcvt_f32_f64(sd);

				if (neox) {
					vst1_f32(c2 + i, cf);
					vst1_f32(s2 + i, sf);
				} else {
					/* (c0, c0, c1, c1) and (-s0, s0, -s1, s1) */
					vst1q_f32(c2 + 2 * i, vzip1q_f32(vcombine_f32(cf, cf),
									 vcombine_f32(cf, cf)));
					vst1q_f32(s2 + 2 * i,
						  vmulq_f32(vzip1q_f32(vcombine_f32(sf, sf),
								       vcombine_f32(sf, sf)),
							    even_neg));
				}
			}
		}
		for (uint32_t h = 0; h < n_heads; h++) {
			float *xh = x + t * ldx + (size_t)h * rope->head_dim;
			uint32_t i = 0;

			if (neox) {
				for (; i + 4 <= half; i += 4) {
					const float32x4_t a = vld1q_f32(xh + i);
					const float32x4_t b = vld1q_f32(xh + half + i);
					const float32x4_t c = vld1q_f32(c2 + i);
					const float32x4_t s = vld1q_f32(s2 + i);

					vst1q_f32(xh + i, vfmsq_f32(vmulq_f32(a, c), b, s));
					vst1q_f32(xh + half + i, vfmaq_f32(vmulq_f32(b, c), a, s));
				}
				for (; i < half; i++) {
					const float a = xh[i], b = xh[half + i];

					xh[i] = a * c2[i] - b * s2[i];
					xh[half + i] = a * s2[i] + b * c2[i];
				}
			} else {
				for (; i + 4 <= n_rot; i += 4) {
					const float32x4_t v = vld1q_f32(xh + i);

					vst1q_f32(xh + i,
						  vfmaq_f32(vmulq_f32(v, vld1q_f32(c2 + i)),
							    vrev64q_f32(v), vld1q_f32(s2 + i)));
				}
				for (; i < n_rot; i += 2) {
					const float a = xh[i], b = xh[i + 1];

					xh[i] = a * c2[i] + b * s2[i];
					xh[i + 1] = b * c2[i + 1] + a * s2[i + 1];
				}
			}
		}
	}
}

/* ---- attention ------------------------------------------------------------------------ */

#define ATTN_CHUNK 64
#define ATTN_MAXQ  16
#define ATTN_MAXD  256

INLINE float32x4_t load_kv(const int f16, const void *row, uint32_t d)
{
	if (f16)
		return load_f16x4((const aw_fp16 *)row + d);
	return vld1q_f32((const float *)row + d);
}

/* The online softmax of kern-avx512.c over chunks of 64 positions, 4 lanes,
 * head_dim a multiple of 4 (other shapes, more than 16 query heads or K and V
 * of different types use the reference). Scores of 4 positions come out of
 * one pairwise-add tree (faddp) as one vector; the chunk's weighted V rows are
 * added into o[][] with each V row loaded once for all heads. */
INLINE void attn_t(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		   const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		   uint32_t head_dim, float scale, const int f16)
{
	float s[ATTN_MAXQ][ATTN_CHUNK] __attribute__((aligned(16)));
	float o[ATTN_MAXQ][ATTN_MAXD] __attribute__((aligned(16)));
	float m[ATTN_MAXQ], l[ATTN_MAXQ];
	const void *kr[ATTN_CHUNK];
	const uint32_t nv = head_dim / 4;

	for (uint32_t h = 0; h < n_q; h++) {
		m[h] = -INFINITY;
		l[h] = 0.0f;
		for (uint32_t d = 0; d < head_dim; d++)
			o[h][d] = 0.0f;
	}
	for (uint32_t c0 = 0; c0 < n_kv; c0 += ATTN_CHUNK) {
		const uint32_t cn = n_kv - c0 < ATTN_CHUNK ? n_kv - c0 : ATTN_CHUNK;

		for (uint32_t i = 0; i < cn; i++)
			kr[i] = aw_kern_kv_row(k, c0 + i);
		/* scores, 4 positions at a time (past the end: repeat the last row,
		 * whose extra scores are not stored) */
		for (uint32_t h = 0; h < n_q; h++) {
			const float *qh = q + h * ldq;

			for (uint32_t i0 = 0; i0 < cn; i0 += 4) {
				float32x4_t acc[4];

				for (int r = 0; r < 4; r++) {
					const void *row = kr[i0 + r < cn ? i0 + r : cn - 1];

					acc[r] = vdupq_n_f32(0.0f);
					for (uint32_t j = 0; j < nv; j++)
						acc[r] = vfmaq_f32(acc[r], vld1q_f32(qh + 4 * j),
								   load_kv(f16, row, 4 * j));
				}
				const float32x4_t sc =
					vmulq_n_f32(vpaddq_f32(vpaddq_f32(acc[0], acc[1]),
							       vpaddq_f32(acc[2], acc[3])),
						    scale);

				if (i0 + 4 <= cn) {
					vst1q_f32(&s[h][i0], sc);
				} else {
					float tmp[4];

					vst1q_f32(tmp, sc);
					for (uint32_t r = 0; i0 + r < cn; r++)
						s[h][i0 + r] = tmp[r];
				}
			}
		}
		/* running max and sum; rescale the output so far */
		for (uint32_t h = 0; h < n_q; h++) {
			float mn = m[h];
			uint32_t i = 0;

			for (; i < cn; i++)
				mn = fmaxf(mn, s[h][i]);
			const float alpha = m[h] == -INFINITY ? 0.0f : expf(m[h] - mn);
			const float32x4_t mv = vdupq_n_f32(mn);
			float32x4_t vs = vdupq_n_f32(0.0f);

			for (i = 0; i + 4 <= cn; i += 4) {
				const float32x4_t e = exp4(vsubq_f32(vld1q_f32(&s[h][i]), mv));

				vst1q_f32(&s[h][i], e);
				vs = vaddq_f32(vs, e);
			}
			float sum = vaddvq_f32(vs);

			for (; i < cn; i++) {
				s[h][i] = expf(s[h][i] - mn);
				sum += s[h][i];
			}
			l[h] = l[h] * alpha + sum;
			m[h] = mn;
			if (alpha != 1.0f)
				for (uint32_t j = 0; j < nv; j++)
					vst1q_f32(&o[h][4 * j],
						  vmulq_n_f32(vld1q_f32(&o[h][4 * j]), alpha));
		}
		/* weighted V rows */
		for (uint32_t i = 0; i < cn; i++) {
			const void *vr = aw_kern_kv_row(v, c0 + i);

			for (uint32_t j = 0; j < nv; j++) {
				const float32x4_t vv = load_kv(f16, vr, 4 * j);

				for (uint32_t h = 0; h < n_q; h++)
					vst1q_f32(&o[h][4 * j], vfmaq_n_f32(vld1q_f32(&o[h][4 * j]),
									    vv, s[h][i]));
			}
		}
	}
	for (uint32_t h = 0; h < n_q; h++) {
		const float inv = 1.0f / l[h];

		for (uint32_t j = 0; j < nv; j++)
			vst1q_f32(out + h * ldo + 4 * j, vmulq_n_f32(vld1q_f32(&o[h][4 * j]), inv));
	}
}

static void attn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		 const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		 uint32_t head_dim, float scale)
{
	if (n_q > ATTN_MAXQ || head_dim > ATTN_MAXD || head_dim % 4 || k->type != v->type) {
		aw_kern_ref_attn(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale);
		return;
	}
	if (k->type == AW_TYPE_F16)
		attn_t(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale, 1);
	else
		attn_t(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale, 0);
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
	.rmsnorm = rmsnorm,
	.rope = rope,
	.softmax = softmax,
	.attn = attn,
	.silu_mul = silu_mul,
	.add = add,
};
