/* kern-avx512.c — AVX-512 (F, BW, VL, DQ) kernels, built twice: with
 * AW_KERN_VNNI=1 and -mavx512vnni as the table "avx512vnni" (integer dot
 * products by vpdpbusd), and without as "avx512" (the same dot products by
 * vpmaddubsw + vpmaddwd, for CPUs without VNNI). Same math as kern-ref.c.
 *
 * The batched matmul on X16 weights is the GEMM-shaped kernel: a tile of
 * 3 groups of 16 rows × up to 4 tokens keeps 12 int32 and 12 float
 * accumulators in registers; for each 32-element block it loads each weight
 * vector once for all tokens of the tile and broadcasts 4 activation bytes at
 * a time against it. Integer sums are exact; the block's scale product is
 * applied with one fma per (row vector, token).
 *
 * The sign of Q8_0: with VNNI the stored unsigned q+128 multiplies the signed
 * activation and the accumulator starts at -128 * sum(qX). Without VNNI the
 * pair sums of vpmaddubsw would saturate at 255*127*2, so the weights are
 * turned back to signed and the sign moved onto the activations
 * (|w| * sign(x, w) <= 128 * 127 * 2 fits in int16), and no offset is needed.
 */
#include <immintrin.h>
#include <math.h>

#include "kern-int.h"
#include "kern-kq-int.h"

#if AW_KERN_VNNI
#define NAME	  "avx512vnni"
#define TABLE	  aw_kern_avx512vnni
#define Q8_OFFSET 128
#define KQ_MATMUL aw_kern_kq_matmul_avx512vnni
#else
#define NAME	  "avx512"
#define TABLE	  aw_kern_avx512
#define Q8_OFFSET 0
#define KQ_MATMUL aw_kern_kq_matmul_avx512
#endif

#define INLINE static inline __attribute__((always_inline))
#ifndef R1
#define R1 8
#endif

/* ---- helpers -------------------------------------------------------------- */

/* exp(x): x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor polynomial of degree
 * 7 (truncation < 6e-9 relative), times 2^n by vscalefps, which also gives
 * 0 and inf outside the float range. A few ulp. */
INLINE __m512 exp512(__m512 x)
{
	x = _mm512_max_ps(x, _mm512_set1_ps(-160.0f));
	x = _mm512_min_ps(x, _mm512_set1_ps(160.0f));
	const __m512 n =
		_mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
				     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.0f / 5040);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_scalef_ps(p, n);
}

INLINE __mmask16 tail_mask(size_t left)
{
	return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

INLINE int32_t load_i32(const void *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* Lane j of the result = sum of the 16 lanes of v[j]: a transposing tree of
 * 45 shuffles and adds instead of 16 separate reductions. */
INLINE __m512 hsum16(const __m512 v[16])
{
	__m512 r[8], u[4], w[2];

	/* per 128-bit chunk: [a0+a2, b0+b2, a1+a3, b1+b3] for pairs (a, b) */
	for (int k = 0; k < 8; k++)
		r[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]),
				     _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
	/* per chunk: partial sums of 4 vectors, in order */
	for (int k = 0; k < 4; k++)
		u[k] = _mm512_add_ps(_mm512_shuffle_ps(r[2 * k], r[2 * k + 1], 0x44),
				     _mm512_shuffle_ps(r[2 * k], r[2 * k + 1], 0xee));
	/* across the four chunks */
	for (int k = 0; k < 2; k++)
		w[k] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], 0x88),
				     _mm512_shuffle_f32x4(u[2 * k], u[2 * k + 1], 0xdd));
	return _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], 0x88),
			     _mm512_shuffle_f32x4(w[0], w[1], 0xdd));
}

/* acc += sum of 4 products u8(w) * s8(x) per int32 lane, for weights that
 * are small enough (Q4_0 nibbles) for vpmaddubsw not to saturate. */
INLINE __m512i dot4(__m512i acc, __m512i w, __m512i x)
{
#if AW_KERN_VNNI
	return _mm512_dpbusd_epi32(acc, w, x);
#else
	const __m512i p = _mm512_maddubs_epi16(w, x);

	return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
#endif
}

INLINE __m256i dot4_256(__m256i acc, __m256i w, __m256i x)
{
#if AW_KERN_VNNI
	return _mm256_dpbusd_epi32(acc, w, x);
#else
	const __m256i p = _mm256_maddubs_epi16(w, x);

	return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
#endif
}

/* A Q8_0 weight vector of the X16 layout, prepared once for all tokens. */
struct q8w {
	__m512i u; /* VNNI: q + 128 as stored; else |q| */
#if !AW_KERN_VNNI
	__mmask64 neg; /* lanes where q < 0 */
#endif
};

INLINE struct q8w q8w_load(const uint8_t *p)
{
	struct q8w w;
	const __m512i u = _mm512_loadu_si512(p);
#if AW_KERN_VNNI
	w.u = u;
#else
	const __m512i s = _mm512_xor_si512(u, _mm512_set1_epi8((char)0x80));

	w.u = _mm512_abs_epi8(s);
	w.neg = _mm512_movepi8_mask(s);
#endif
	return w;
}

INLINE __m512i q8_dot4(__m512i acc, struct q8w w, __m512i x)
{
#if AW_KERN_VNNI
	return _mm512_dpbusd_epi32(acc, w.u, x);
#else
	const __m512i xs = _mm512_mask_sub_epi8(x, w.neg, _mm512_setzero_si512(), x);

	return dot4(acc, w.u, xs);
#endif
}

/* ---- activation quantization ------------------------------------------------ */

static void quant_q8a(const float *x, struct aw_block_q8a *y, size_t n)
{
	for (size_t b = 0; b < n / AW_KERN_QK; b++) {
		const __m512 x0 = _mm512_loadu_ps(x + 32 * b);
		const __m512 x1 = _mm512_loadu_ps(x + 32 * b + 16);
		const __m512 a = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1));
		const float amax = _mm512_reduce_max_ps(a);
		const float d = aw_kern_q8a_scale(amax);
		const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
		const __m512 vid = _mm512_set1_ps(id);
		/* cvtps2dq rounds to nearest even, as rintf does in the default mode */
		const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, vid));
		const __m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, vid));

		y[b].d = d;
		y[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
		_mm_storeu_si128((__m128i *)y[b].qs, _mm512_cvtsepi32_epi8(q0));
		_mm_storeu_si128((__m128i *)(y[b].qs + 16), _mm512_cvtsepi32_epi8(q1));
	}
}

/* ---- matmul: X16 layout (the GEMM kernel) ------------------------------------ */

/* Tile: R groups of 16 rows (1, 3, or R1 at batch 1) × T tokens (1, 2 or 4), rows of groups
 * g..g+R-1, tokens t0..t0+T-1. Writes rows [lo, hi) of the tile.
 *
 * Why this shape (measured on Zen 5): vpdpbusd zmm issues once per cycle and
 * shares its pipes with vmulps/vfmadd (a vcvtdq2ps is free), so each block's
 * 8 vpdpbusd per (row vector, token) pay for 1 mul + 1 fma of scaling: the
 * ceiling of this design is 8/10 of the int8 peak. 3 × 4 uses 24 of the 32
 * registers for accumulators and loads 7 vectors per 12 vpdpbusd; software
 * prefetch was tried and made batch 1 slower. */
INLINE void x16_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		     uint32_t g, uint32_t t0, const int R, const int T, const int kind, uint32_t lo,
		     uint32_t hi, uint32_t pf_n, uint32_t pf_every, uint32_t pf_phase)
{
	/* kind: 0 Q8_0, 1 Q4_0, 2 Q5_0 (nibbles as Q4_0's plus a fifth bit) */
	const int q4 = kind != 0, q5 = kind == 2;
	const uint32_t nb = w->cols / AW_KERN_QK;
	const size_t gbytes = aw_kern_x16_group_bytes(w->type, nb);
	const size_t qb = q5 ? 320 : q4 ? 256 : 512;
	const uint8_t *gq = (const uint8_t *)w->data + g * gbytes;
	const struct aw_block_q8a *xr[4];
	__m512 facc[8][4];

	for (int t = 0; t < T; t++)
		xr[t] = in->xq + (size_t)(t0 + t) * nb;
	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			facc[r][t] = _mm512_setzero_ps();

	for (uint32_t b = 0, pc = pf_phase; b < nb; b++) {
		__m512i iacc[8][4];

		/* the next stripe's block b into L2 (see X16_TILES) */
		if (pf_n && pc-- == 0) {
			pc = pf_every - 1;
			for (uint32_t r = 0; r < pf_n; r++) {
				const uint8_t *p = gq + (size_t)(R + r) * gbytes;

				for (size_t l = 0; l < qb; l += 64)
					_mm_prefetch((const char *)p + b * qb + l, _MM_HINT_T1);
				_mm_prefetch((const char *)p + nb * qb + 32 * b, _MM_HINT_T1);
			}
		}

		for (int t = 0; t < T; t++) {
			/* -off * sum, built in vector registers from a broadcast load (an
			 * integer-to-vector broadcast costs more on some cores) */
			__m512i init = _mm512_setzero_si512();

			if (q4 | (Q8_OFFSET != 0)) /* bitwise: Q8_OFFSET is a constant */
				init = _mm512_sub_epi32(
					init, _mm512_slli_epi32(_mm512_set1_epi32(xr[t][b].sum),
								q5   ? 4
								: q4 ? 3
								     : 7));
			for (int r = 0; r < R; r++)
				iacc[r][t] = init;
		}
		if (q5) {
			/* Q5_0: the nibble plus 16 where the block's mask has the bit
			 * (a byte-masked add), unsigned 0..31, offset 16 at the start;
			 * at batch 1 the high halves go to accumulators of their own
			 * (two dependency chains of 4 vpdpbusd per block, not one of 8) */
			__m512i ihi[8];

			for (int r = 0; r < R; r++)
				ihi[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				__m512i wl[8], wh[8];

				for (int r = 0; r < R; r++) {
					const uint8_t *p = gq + r * gbytes + b * qb;
					const __m512i raw = _mm512_loadu_si512(p + 64 * v);
					const __mmask64 kl =
						_load_mask64((__mmask64 *)(p + 256 + 8 * v));
					const __mmask64 kh =
						_load_mask64((__mmask64 *)(p + 256 + 32 + 8 * v));
					const __m512i l =
						_mm512_and_si512(raw, _mm512_set1_epi8(0x0f));
					const __m512i h = _mm512_and_si512(
						_mm512_srli_epi16(raw, 4), _mm512_set1_epi8(0x0f));

					wl[r] = _mm512_mask_add_epi8(l, kl, l,
								     _mm512_set1_epi8(16));
					wh[r] = _mm512_mask_add_epi8(h, kh, h,
								     _mm512_set1_epi8(16));
				}
				for (int t = 0; t < T; t++) {
					const __m512i xl =
						_mm512_set1_epi32(load_i32(xr[t][b].qs + 4 * v));
					const __m512i xh = _mm512_set1_epi32(
						load_i32(xr[t][b].qs + 16 + 4 * v));

					for (int r = 0; r < R; r++) {
						iacc[r][t] = dot4(iacc[r][t], wl[r], xl);
						if (T == 1)
							ihi[r] = dot4(ihi[r], wh[r], xh);
						else
							iacc[r][t] = dot4(iacc[r][t], wh[r], xh);
					}
				}
			}
			if (T == 1)
				for (int r = 0; r < R; r++)
					iacc[r][0] = _mm512_add_epi32(iacc[r][0], ihi[r]);
		} else if (q4 && AW_KERN_VNNI && T == 1) {
			/* batch 1 (memory-bound, so fewer instructions per byte keep more
			 * loads in flight): the high nibble is used in place as 16 * q
			 * (raw & 0xf0, at most 240 * 127 * 4 per lane) in its own
			 * accumulator, divided by 16 (exactly) at the block's end */
			__m512i ihi[8];

			for (int r = 0; r < R; r++)
				ihi[r] = _mm512_setzero_si512();
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				const __m512i xl = _mm512_set1_epi32(load_i32(xr[0][b].qs + 4 * v));
				const __m512i xh =
					_mm512_set1_epi32(load_i32(xr[0][b].qs + 16 + 4 * v));

				for (int r = 0; r < R; r++) {
					const __m512i raw = _mm512_loadu_si512(gq + r * gbytes +
									       b * qb + 64 * v);

					iacc[r][0] = dot4(
						iacc[r][0],
						_mm512_and_si512(raw, _mm512_set1_epi8(0x0f)), xl);
					ihi[r] = dot4(
						ihi[r],
						_mm512_and_si512(raw, _mm512_set1_epi8((char)0xf0)),
						xh);
				}
			}
			for (int r = 0; r < R; r++)
				iacc[r][0] =
					_mm512_add_epi32(iacc[r][0], _mm512_srai_epi32(ihi[r], 4));
		} else if (q4) {
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				__m512i wl[8], wh[8];

				for (int r = 0; r < R; r++) {
					const __m512i raw = _mm512_loadu_si512(gq + r * gbytes +
									       b * qb + 64 * v);

					wl[r] = _mm512_and_si512(raw, _mm512_set1_epi8(0x0f));
					wh[r] = _mm512_and_si512(_mm512_srli_epi16(raw, 4),
								 _mm512_set1_epi8(0x0f));
				}
				for (int t = 0; t < T; t++) {
					const __m512i xl =
						_mm512_set1_epi32(load_i32(xr[t][b].qs + 4 * v));
					const __m512i xh = _mm512_set1_epi32(
						load_i32(xr[t][b].qs + 16 + 4 * v));

					for (int r = 0; r < R; r++) {
						iacc[r][t] = dot4(iacc[r][t], wl[r], xl);
						iacc[r][t] = dot4(iacc[r][t], wh[r], xh);
					}
				}
			}
		} else {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				struct q8w wv[8];

				for (int r = 0; r < R; r++)
					wv[r] = q8w_load(gq + r * gbytes + b * qb + 64 * k);
				for (int t = 0; t < T; t++) {
					const __m512i xv =
						_mm512_set1_epi32(load_i32(xr[t][b].qs + 4 * k));

					for (int r = 0; r < R; r++)
						iacc[r][t] = q8_dot4(iacc[r][t], wv[r], xv);
				}
			}
		}
		for (int r = 0; r < R; r++) {
			const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256(
				(const __m256i *)(gq + r * gbytes + nb * qb + 32 * b)));

			for (int t = 0; t < T; t++) {
				const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(xr[t][b].d));

				facc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(iacc[r][t]), s,
							     facc[r][t]);
			}
		}
	}
	for (int r = 0; r < R; r++) {
		const uint32_t row0 = (g + r) * 16;

		if (row0 >= hi)
			break;
		const uint32_t n = hi - row0 < 16 ? hi - row0 : 16;
		const __mmask16 m =
			tail_mask(n) & (__mmask16)(0xffffu << (lo > row0 ? lo - row0 : 0));

		for (int t = 0; t < T; t++)
			_mm512_mask_storeu_ps(y + (size_t)(t0 + t) * ldy + row0, m, facc[r][t]);
	}
}

/* Tiles of one stripe of R groups over all tokens. The stripe's weights come
 * from memory during its first token tile and from L2 during the others
 * (3 groups × 2048 columns of Q8_0 are 104 KiB), which are compute-bound;
 * so with two or more token tiles, tile j prefetches blocks j, j + tiles, ...
 * of the next stripe into L2, and batch 8-32 no longer waits for memory once
 * per stripe (measured +10-25 % at batch 8 and 16, Q8_0 and Q4_0; with a
 * single tile, batch <= 4, it made no difference and is off). */
#define X16_TILES(q4)                                                                              \
	static void x16_tiles_##q4(const struct aw_kern_mat *w, const struct aw_kern_in *in,       \
				   float *y, size_t ldy, uint32_t g, int R, uint32_t lo,           \
				   uint32_t hi, uint32_t g1)                                       \
	{                                                                                          \
		uint32_t t = 0;                                                                    \
		if (R == R1) {                                                                     \
			for (; t < in->n_tok; t++)                                                 \
				x16_tile(w, in, y, ldy, g, t, R1, 1, q4, lo, hi, 0, 1, 0);         \
			return;                                                                    \
		}                                                                                  \
		if (R == 3) {                                                                      \
			const uint32_t n = in->n_tok;                                              \
			const uint32_t tiles = n / 4 + n % 4 / 2 + n % 2;                          \
			const uint32_t left = g1 - g - 3;                                          \
			const uint32_t pf_n = tiles > 1 ? (left < 3 ? left : 3) : 0;               \
			const uint32_t every = tiles;                                              \
			uint32_t j = 0;                                                            \
			for (; t + 4 <= n; t += 4, j++)                                            \
				x16_tile(w, in, y, ldy, g, t, 3, 4, q4, lo, hi, pf_n, every, j);   \
			for (; t + 2 <= n; t += 2, j++)                                            \
				x16_tile(w, in, y, ldy, g, t, 3, 2, q4, lo, hi, pf_n, every, j);   \
			for (; t < n; t++, j++)                                                    \
				x16_tile(w, in, y, ldy, g, t, 3, 1, q4, lo, hi, pf_n, every, j);   \
			return;                                                                    \
		}                                                                                  \
		for (; t + 4 <= in->n_tok; t += 4)                                                 \
			x16_tile(w, in, y, ldy, g, t, 1, 4, q4, lo, hi, 0, 1, 0);                  \
		for (; t < in->n_tok; t++)                                                         \
			x16_tile(w, in, y, ldy, g, t, 1, 1, q4, lo, hi, 0, 1, 0);                  \
	}

X16_TILES(0)
X16_TILES(1)
X16_TILES(2)

static void matmul_x16(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
		       size_t ldy, uint32_t r0, uint32_t r1)
{
	const uint32_t g1 = (r1 + 15) / 16;

	for (uint32_t g = r0 / 16; g < g1;) {
		const int R = in->n_tok == 1 && g + R1 <= g1 ? R1 : g + 3 <= g1 ? 3 : 1;

		if (w->type == AW_TYPE_Q5_0)
			x16_tiles_2(w, in, y, ldy, g, R, r0, r1, g1);
		else if (w->type == AW_TYPE_Q4_0)
			x16_tiles_1(w, in, y, ldy, g, R, r0, r1, g1);
		else
			x16_tiles_0(w, in, y, ldy, g, R, r0, r1, g1);
		g += (uint32_t)R;
	}
}

/* ---- matmul: GGUF rows ------------------------------------------------------------ */

/* One row of Q8_0/Q4_0 against T tokens (1..4): per block one 256-bit integer
 * dot (8 lanes of partial sums), scaled into float accumulators. Weights are
 * made signed (Q4_0: q - 8) and their sign moved onto the activations, so
 * each lane holds a true partial sum of the block's products: an offset
 * correction in one lane would cancel against the others after the float
 * scaling and lose precision. */
INLINE void rows_q_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r, uint32_t t0, const int T, const int q4)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m256 facc[4];

	for (int t = 0; t < T; t++)
		facc[t] = _mm256_setzero_ps();
	for (uint32_t b = 0; b < nb; b++) {
		float dw;
		__m256i wv;

		if (q4) {
			const struct aw_block_q4_0 *blk = (const struct aw_block_q4_0 *)row + b;
			const __m128i raw = _mm_loadu_si128((const __m128i *)blk->qs);
			const __m128i lo = _mm_and_si128(raw, _mm_set1_epi8(0x0f));
			const __m128i hi =
				_mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(0x0f));

			dw = _cvtsh_ss(blk->d);
			wv = _mm256_sub_epi8(
				_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1),
				_mm256_set1_epi8(8));
		} else {
			const struct aw_block_q8_0 *blk = (const struct aw_block_q8_0 *)row + b;

			dw = _cvtsh_ss(blk->d);
			wv = _mm256_loadu_si256((const __m256i *)blk->qs);
		}
		const __m256i wabs = _mm256_abs_epi8(wv);

		for (int t = 0; t < T; t++) {
			const struct aw_block_q8a *xb = in->xq + (size_t)(t0 + t) * nb + b;
			const __m256i xv = _mm256_loadu_si256((const __m256i *)xb->qs);
			const __m256i acc =
				dot4_256(_mm256_setzero_si256(), wabs, _mm256_sign_epi8(xv, wv));
			const __m256 s = _mm256_set1_ps(dw * xb->d);

			facc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), s, facc[t]);
		}
	}
	for (int t = 0; t < T; t++) {
		const __m128 h = _mm_add_ps(_mm256_castps256_ps128(facc[t]),
					    _mm256_extractf128_ps(facc[t], 1));
		const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));

		y[(size_t)(t0 + t) * ldy + r] = _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
	}
}

/* 16 weights of a float-type row at column i, as floats (masked tail). */
INLINE __m512 load_wf(uint32_t type, const void *row, uint32_t i, __mmask16 m)
{
	if (__builtin_constant_p(m) && m == 0xffff) {
		/* full vectors: plain loads (masked ones cost more on some cores) */
		switch (type) {
		case AW_TYPE_F16:
			return _mm512_cvtph_ps(
				_mm256_loadu_si256((const __m256i *)((const aw_fp16 *)row + i)));
		case AW_TYPE_BF16:
			return _mm512_castsi512_ps(_mm512_slli_epi32(
				_mm512_cvtepu16_epi32(_mm256_loadu_si256(
					(const __m256i *)((const aw_bf16 *)row + i))),
				16));
		default:
			return _mm512_loadu_ps((const float *)row + i);
		}
	}
	switch (type) {
	case AW_TYPE_F16:
		return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const aw_fp16 *)row + i));
	case AW_TYPE_BF16:
		return _mm512_castsi512_ps(
			_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(
						  m, (const aw_bf16 *)row + i)),
					  16));
	default:
		return _mm512_maskz_loadu_ps(m, (const float *)row + i);
	}
}

INLINE void rows_f_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r, uint32_t t0, const int T, const uint32_t type)
{
	const void *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m512 acc[4];

	for (int t = 0; t < T; t++)
		acc[t] = _mm512_setzero_ps();
	for (uint32_t i = 0; i < w->cols; i += 16) {
		const __mmask16 m = tail_mask(w->cols - i);
		const __m512 wv = load_wf(type, row, i, m);

		for (int t = 0; t < T; t++)
			acc[t] = _mm512_fmadd_ps(
				wv,
				_mm512_maskz_loadu_ps(m, in->x + (size_t)(t0 + t) * in->n_in + i),
				acc[t]);
	}
	for (int t = 0; t < T; t++)
		y[(size_t)(t0 + t) * ldy + r] = _mm512_reduce_add_ps(acc[t]);
}

/* R rows × T tokens of a float-type matrix (R * T = 16, cols a multiple of
 * 16): 16 accumulators, each weight vector loaded once for T tokens and
 * each activation vector once for R rows, the 16 sums reduced together. */
INLINE void rows_f_block(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			 size_t ldy, uint32_t r, uint32_t t0, const int R, const int T,
			 const uint32_t type)
{
	const uint8_t *base = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m512 acc[16];
	float out[16];

	for (int i = 0; i < 16; i++)
		acc[i] = _mm512_setzero_ps();
	for (uint32_t c = 0; c < w->cols; c += 16) {
		__m512 xv[4];

		for (int t = 0; t < T; t++)
			xv[t] = _mm512_loadu_ps(in->x + (size_t)(t0 + t) * in->n_in + c);
#pragma GCC unroll 16
		for (int rr = 0; rr < R; rr++) {
			const __m512 wv = load_wf(type, base + rr * w->row_size, c, 0xffff);

			for (int t = 0; t < T; t++)
				acc[rr * T + t] = _mm512_fmadd_ps(wv, xv[t], acc[rr * T + t]);
		}
	}
	_mm512_storeu_ps(out, hsum16(acc));
	for (int rr = 0; rr < R; rr++)
		for (int t = 0; t < T; t++)
			y[(size_t)(t0 + t) * ldy + r + rr] = out[rr * T + t];
}

/* Float weights: 4 rows × 4 tokens blocks for groups of 4 tokens, 16 rows ×
 * 1 token for the others, one row at a time for the rows left over. */
INLINE void matmul_f(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		     uint32_t r0, uint32_t r1, const uint32_t type)
{
	const uint32_t t4 = in->n_tok / 4 * 4;
	uint32_t r;

	for (r = r0; r + 4 <= r1; r += 4)
		for (uint32_t t = 0; t < t4; t += 4)
			rows_f_block(w, in, y, ldy, r, t, 4, 4, type);
	for (; r < r1; r++)
		for (uint32_t t = 0; t < t4; t += 4)
			rows_f_tile(w, in, y, ldy, r, t, 4, type);
	for (r = r0; r + 16 <= r1; r += 16)
		for (uint32_t t = t4; t < in->n_tok; t++)
			rows_f_block(w, in, y, ldy, r, t, 16, 1, type);
	for (; r < r1; r++)
		for (uint32_t t = t4; t < in->n_tok; t++)
			rows_f_tile(w, in, y, ldy, r, t, 1, type);
}

#define ROWS_TILES(fn, arg)                                                                        \
	do {                                                                                       \
		for (uint32_t r = r0; r < r1; r++) {                                               \
			uint32_t t = 0;                                                            \
			for (; t + 4 <= in->n_tok; t += 4)                                         \
				fn(w, in, y, ldy, r, t, 4, arg);                                   \
			for (; t < in->n_tok; t++)                                                 \
				fn(w, in, y, ldy, r, t, 1, arg);                                   \
		}                                                                                  \
	} while (0)

static void matmul(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		   uint32_t r0, uint32_t r1)
{
	if (w->layout == AW_KERN_LAYOUT_X16) {
		matmul_x16(w, in, y, ldy, r0, r1);
		return;
	}
	if (aw_kern_type_kq(w->type)) {
		KQ_MATMUL(w, in, y, ldy, r0, r1);
		return;
	}
	switch (w->type) {
	case AW_TYPE_Q8_0:
		ROWS_TILES(rows_q_tile, 0);
		break;
	case AW_TYPE_Q4_0:
		ROWS_TILES(rows_q_tile, 1);
		break;
	case AW_TYPE_F16:
		if (w->cols % 16 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_F16);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_F16);
		break;
	case AW_TYPE_BF16:
		if (w->cols % 16 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_BF16);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_BF16);
		break;
	default:
		if (w->cols % 16 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_F32);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_F32);
		break;
	}
}

/* ---- elementwise ------------------------------------------------------------------ */

static void rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
	__m512 acc = _mm512_setzero_ps();

	for (size_t i = 0; i < n; i += 16) {
		const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);

		acc = _mm512_fmadd_ps(v, v, acc);
	}
	const float ss = _mm512_reduce_add_ps(acc);
	const __m512 scale = _mm512_set1_ps(1.0f / sqrtf(ss / (float)n + eps));

	for (size_t i = 0; i < n; i += 16) {
		const __mmask16 m = tail_mask(n - i);
		const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale);

		_mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
	}
}

static void softmax(float *x, size_t n)
{
	__m512 vm = _mm512_set1_ps(-INFINITY), vs = _mm512_setzero_ps();

	for (size_t i = 0; i < n; i += 16)
		vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(vm, tail_mask(n - i), x + i));
	const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vm));

	for (size_t i = 0; i < n; i += 16) {
		const __mmask16 k = tail_mask(n - i);
		const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));

		_mm512_mask_storeu_ps(x + i, k, e);
		vs = _mm512_add_ps(vs, _mm512_maskz_mov_ps(k, e));
	}
	const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vs));

	for (size_t i = 0; i < n; i += 16) {
		const __mmask16 k = tail_mask(n - i);

		_mm512_mask_storeu_ps(x + i, k,
				      _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
	}
}

static void silu_mul(float *y, const float *g, const float *u, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		const __mmask16 k = tail_mask(n - i);
		const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
		const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv));
		const __m512 s = _mm512_div_ps(gv, _mm512_add_ps(_mm512_set1_ps(1.0f), e));

		_mm512_mask_storeu_ps(y + i, k, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, u + i)));
	}
}

static void add(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i += 16) {
		const __mmask16 k = tail_mask(n - i);

		_mm512_mask_storeu_ps(y + i, k,
				      _mm512_add_ps(_mm512_maskz_loadu_ps(k, a + i),
						    _mm512_maskz_loadu_ps(k, b + i)));
	}
}

/* ---- rope ---------------------------------------------------------------------------- */

/* sin and cos of 8 angles in double: t = k pi/2 + r with pi/2 in two parts
 * (r exact to ~1e-16 |t|), |r| <= pi/4, Taylor polynomials of degree 13 (sin,
 * truncation < 2.1e-14) and 14 (cos, < 1.1e-15), then the quadrant k mod 4
 * swaps and negates. Far below a float ulp once rounded. */
INLINE void sincos8(__m512d t, __m512d *ret_s, __m512d *ret_c)
{
	const __m512d k =
		_mm512_roundscale_pd(_mm512_mul_pd(t, _mm512_set1_pd(0.63661977236758134)),
				     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512d r = _mm512_fnmadd_pd(k, _mm512_set1_pd(1.5707963267948966), t);

	r = _mm512_fnmadd_pd(k, _mm512_set1_pd(6.123233995736766e-17), r);
	const __m512d r2 = _mm512_mul_pd(r, r);
	__m512d s = _mm512_set1_pd(1.0 / 6227020800.0);

	s = _mm512_fmadd_pd(s, r2, _mm512_set1_pd(-1.0 / 39916800.0));
	s = _mm512_fmadd_pd(s, r2, _mm512_set1_pd(1.0 / 362880.0));
	s = _mm512_fmadd_pd(s, r2, _mm512_set1_pd(-1.0 / 5040.0));
	s = _mm512_fmadd_pd(s, r2, _mm512_set1_pd(1.0 / 120.0));
	s = _mm512_fmadd_pd(s, r2, _mm512_set1_pd(-1.0 / 6.0));
	s = _mm512_fmadd_pd(_mm512_mul_pd(s, r2), r, r);
	__m512d c = _mm512_set1_pd(1.0 / 87178291200.0);

	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(-1.0 / 479001600.0));
	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(1.0 / 3628800.0));
	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(-1.0 / 40320.0));
	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(1.0 / 720.0));
	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(-1.0 / 24.0));
	c = _mm512_fmadd_pd(c, r2, _mm512_set1_pd(0.5));
	c = _mm512_fnmadd_pd(c, r2, _mm512_set1_pd(1.0));
	/* quadrant q: sin = (s, c, -s, -c)[q], cos = (c, -s, -c, s)[q] */
	const __m512i q = _mm512_cvtpd_epi64(k);
	const __mmask8 odd = _mm512_test_epi64_mask(q, _mm512_set1_epi64(1));
	const __mmask8 sneg = _mm512_test_epi64_mask(q, _mm512_set1_epi64(2));
	const __mmask8 cneg = _mm512_test_epi64_mask(_mm512_add_epi64(q, _mm512_set1_epi64(1)),
						     _mm512_set1_epi64(2));
	const __m512d sv = _mm512_mask_blend_pd(odd, s, c);
	const __m512d cv = _mm512_mask_blend_pd(odd, c, s);

	*ret_s = _mm512_mask_sub_pd(sv, sneg, _mm512_setzero_pd(), sv);
	*ret_c = _mm512_mask_sub_pd(cv, cneg, _mm512_setzero_pd(), cv);
}

/* Angles per token (recomputed only when the position changes) as float
 * tables in the shape the rotation reads: NORM, pairs (x[2i], x[2i+1]):
 * c2 = (c0, c0, c1, c1, ...), s2 = (-s0, s0, -s1, s1, ...), so that
 * x' = x c2 + swap_pairs(x) s2; NEOX, halves: c2 = (c0, c1, ...), s2 = (s0, ...). */
static void rope(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos, uint32_t n_heads,
		 const struct aw_kern_rope *rope)
{
	double freq[520] __attribute__((aligned(64)));
	float c2[1024 + 16] __attribute__((aligned(64))),
		s2[1024 + 16] __attribute__((aligned(64)));
	const uint32_t n_rot = rope->n_rot, half = n_rot / 2;
	const int neox = rope->mode == AW_KERN_ROPE_NEOX;
	const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
	const __m512 even_neg = _mm512_castsi512_ps(
		_mm512_set_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0,
				 INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));

	assert(n_rot <= 1024 && n_rot <= rope->head_dim);
	aw_kern_rope_freqs_fast(freq, rope);
	for (uint32_t t = 0; t < n_tok; t++) {
		if (t == 0 || pos[t] != pos[t - 1]) {
			const __m512d p = _mm512_set1_pd((double)pos[t]);

			for (uint32_t i = 0; i < half; i += 8) {
				__m512d sd, cd;

				sincos8(_mm512_mul_pd(p, _mm512_load_pd(freq + i)), &sd, &cd);
				const __m256 cf = _mm512_cvtpd_ps(cd), sf = _mm512_cvtpd_ps(sd);

				if (neox) {
					_mm256_storeu_ps(c2 + i, cf);
					_mm256_storeu_ps(s2 + i, sf);
				} else {
					_mm512_storeu_ps(c2 + 2 * i,
							 _mm512_permutexvar_ps(
								 dup, _mm512_castps256_ps512(cf)));
					_mm512_storeu_ps(
						s2 + 2 * i,
						_mm512_xor_ps(
							_mm512_permutexvar_ps(
								dup, _mm512_castps256_ps512(sf)),
							even_neg));
				}
			}
		}
		for (uint32_t h = 0; h < n_heads; h++) {
			float *xh = x + t * ldx + (size_t)h * rope->head_dim;

			if (neox) {
				for (uint32_t i = 0; i < half; i += 16) {
					const __mmask16 m = tail_mask(half - i);
					const __m512 a = _mm512_maskz_loadu_ps(m, xh + i);
					const __m512 b = _mm512_maskz_loadu_ps(m, xh + half + i);
					const __m512 c = _mm512_maskz_loadu_ps(m, c2 + i);
					const __m512 s = _mm512_maskz_loadu_ps(m, s2 + i);

					_mm512_mask_storeu_ps(
						xh + i, m,
						_mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
					_mm512_mask_storeu_ps(
						xh + half + i, m,
						_mm512_fmadd_ps(a, s, _mm512_mul_ps(b, c)));
				}
			} else {
				for (uint32_t i = 0; i < n_rot; i += 16) {
					const __mmask16 m = tail_mask(n_rot - i);
					const __m512 v = _mm512_maskz_loadu_ps(m, xh + i);
					const __m512 sw = _mm512_permute_ps(v, 0xb1);

					_mm512_mask_storeu_ps(
						xh + i, m,
						_mm512_fmadd_ps(
							v, _mm512_loadu_ps(c2 + i),
							_mm512_mul_ps(sw,
								      _mm512_loadu_ps(s2 + i))));
				}
			}
		}
	}
}

/* ---- attention ------------------------------------------------------------------------ */

#define ATTN_CHUNK 64
#define ATTN_MAXQ  16
#define ATTN_MAXD  256

INLINE __m512 load_kv(uint32_t type, const void *row, uint32_t d, __mmask16 m)
{
	if (type == AW_TYPE_F16)
		return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const aw_fp16 *)row + d));
	return _mm512_maskz_loadu_ps(m, (const float *)row + d);
}

/* Online softmax over chunks of 64 positions: scores of the chunk for all
 * heads, then the running max m, sum l and output o rescaled by exp(m_old -
 * m_new) before the chunk's weighted V rows are added. Any head_dim (masked
 * tails); attn() below is the fast path for head_dim a multiple of 16 up to 128. */
static void attn_generic(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
			 const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
			 uint32_t head_dim, float scale)
{
	if (n_q > ATTN_MAXQ || head_dim > ATTN_MAXD) {
		aw_kern_ref_attn(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale);
		return;
	}
	float s[ATTN_MAXQ][ATTN_CHUNK] __attribute__((aligned(64)));
	float o[ATTN_MAXQ][ATTN_MAXD] __attribute__((aligned(64)));
	float m[ATTN_MAXQ], l[ATTN_MAXQ];
	const uint32_t nv = (head_dim + 15) / 16;

	for (uint32_t h = 0; h < n_q; h++) {
		m[h] = -INFINITY;
		l[h] = 0.0f;
		for (uint32_t d = 0; d < 16 * nv; d++)
			o[h][d] = 0.0f;
	}
	for (uint32_t c0 = 0; c0 < n_kv; c0 += ATTN_CHUNK) {
		const uint32_t cn = n_kv - c0 < ATTN_CHUNK ? n_kv - c0 : ATTN_CHUNK;

		const void *krow[ATTN_CHUNK], *vrow[ATTN_CHUNK];

		aw_kern_kv_rows(k, c0, cn, krow);
		aw_kern_kv_rows(v, c0, cn, vrow);
		/* scores */
		for (uint32_t i = 0; i < cn; i++) {
			const void *kr = krow[i];

			for (uint32_t h = 0; h < n_q; h++) {
				__m512 acc = _mm512_setzero_ps();

				for (uint32_t j = 0; j < nv; j++) {
					const __mmask16 msk = tail_mask(head_dim - 16 * j);

					acc = _mm512_fmadd_ps(
						_mm512_maskz_loadu_ps(msk, q + h * ldq + 16 * j),
						load_kv(k->type, kr, 16 * j, msk), acc);
				}
				s[h][i] = _mm512_reduce_add_ps(acc) * scale;
			}
		}
		/* softmax bookkeeping */
		for (uint32_t h = 0; h < n_q; h++) {
			__m512 vm = _mm512_set1_ps(m[h]);

			for (uint32_t i = 0; i < cn; i += 16)
				vm = _mm512_max_ps(
					vm, _mm512_mask_loadu_ps(vm, tail_mask(cn - i), &s[h][i]));
			const float mn = _mm512_reduce_max_ps(vm);
			const float alpha = m[h] == -INFINITY ? 0.0f : expf(m[h] - mn);
			__m512 vs = _mm512_setzero_ps();

			for (uint32_t i = 0; i < cn; i += 16) {
				const __mmask16 msk = tail_mask(cn - i);
				const __m512 e = exp512(_mm512_sub_ps(
					_mm512_maskz_loadu_ps(msk, &s[h][i]), _mm512_set1_ps(mn)));

				_mm512_mask_storeu_ps(&s[h][i], msk, e);
				vs = _mm512_add_ps(vs, _mm512_maskz_mov_ps(msk, e));
			}
			l[h] = l[h] * alpha + _mm512_reduce_add_ps(vs);
			m[h] = mn;
			if (alpha != 1.0f)
				for (uint32_t j = 0; j < nv; j++)
					_mm512_store_ps(&o[h][16 * j],
							_mm512_mul_ps(_mm512_load_ps(&o[h][16 * j]),
								      _mm512_set1_ps(alpha)));
		}
		/* weighted V */
		for (uint32_t i = 0; i < cn; i++) {
			const void *vr = vrow[i];

			for (uint32_t j = 0; j < nv; j++) {
				const __m512 vv =
					load_kv(v->type, vr, 16 * j, tail_mask(head_dim - 16 * j));

				for (uint32_t h = 0; h < n_q; h++)
					_mm512_store_ps(
						&o[h][16 * j],
						_mm512_fmadd_ps(_mm512_set1_ps(s[h][i]), vv,
								_mm512_load_ps(&o[h][16 * j])));
			}
		}
	}
	for (uint32_t h = 0; h < n_q; h++) {
		const __m512 inv = _mm512_set1_ps(1.0f / l[h]);

		for (uint32_t j = 0; j < nv; j++)
			_mm512_mask_storeu_ps(out + h * ldo + 16 * j, tail_mask(head_dim - 16 * j),
					      _mm512_mul_ps(_mm512_load_ps(&o[h][16 * j]), inv));
	}
}

/* Positions per chunk of the fast path (the chunk's K and V rows are re-read
 * per head from L1; 16, 32 and 64 measured within noise). */
#define NV_CHUNK 64

/* The same online softmax with head_dim = 16 NV held in registers: for each
 * head, the query stays in NV registers while 16 K rows at a time are dotted
 * with it and reduced together (hsum16); then each head's output stays in NV
 * registers while the chunk's V rows stream past. K and V rows of a chunk are
 * re-read per head from L1. */
INLINE void attn_nv(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		    const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		    float scale, const int NV, const uint32_t F16)
{
	float s[ATTN_MAXQ][NV_CHUNK] __attribute__((aligned(64)));
	float o[ATTN_MAXQ][ATTN_MAXD] __attribute__((aligned(64)));
	float m[ATTN_MAXQ], l[ATTN_MAXQ];
	const void *kr[NV_CHUNK], *vr[NV_CHUNK];

	for (uint32_t h = 0; h < n_q; h++) {
		m[h] = -INFINITY;
		l[h] = 0.0f;
		for (int j = 0; j < NV; j++)
			_mm512_store_ps(&o[h][16 * j], _mm512_setzero_ps());
	}
	for (uint32_t c0 = 0; c0 < n_kv; c0 += NV_CHUNK) {
		const uint32_t cn = n_kv - c0 < NV_CHUNK ? n_kv - c0 : NV_CHUNK;

		aw_kern_kv_rows(k, c0, cn, kr);
		aw_kern_kv_rows(v, c0, cn, vr);
		for (uint32_t h = 0; h < n_q; h++) {
			__m512 qv[8];

			for (int j = 0; j < NV; j++)
				qv[j] = _mm512_loadu_ps(q + h * ldq + 16 * j);
			/* scores, 16 positions at a time */
			for (uint32_t i0 = 0; i0 < cn; i0 += 16) {
				__m512 acc[16];

#pragma GCC unroll 16
				for (int i = 0; i < 16; i++) {
					/* past the chunk's end: any valid row, its score is not stored */
					const void *row = kr[i0 + i < cn ? i0 + i : cn - 1];

					acc[i] = _mm512_setzero_ps();
#pragma GCC unroll 8
					for (int j = 0; j < NV; j++)
						acc[i] = _mm512_fmadd_ps(
							qv[j], load_kv(F16, row, 16 * j, 0xffff),
							acc[i]);
				}
				/* whole vectors (lanes past cn are never read): a masked
				 * store does not forward to the loads that follow */
				_mm512_store_ps(&s[h][i0],
						_mm512_mul_ps(hsum16(acc), _mm512_set1_ps(scale)));
			}
			/* running max and sum */
			__m512 vm = _mm512_set1_ps(m[h]);

			for (uint32_t i = 0; i < cn; i += 16)
				vm = _mm512_max_ps(
					vm, _mm512_mask_loadu_ps(vm, tail_mask(cn - i), &s[h][i]));
			const float mn = _mm512_reduce_max_ps(vm);
			const float alpha = m[h] == -INFINITY ? 0.0f : expf(m[h] - mn);
			__m512 vs = _mm512_setzero_ps();

			for (uint32_t i = 0; i < cn; i += 16) {
				const __mmask16 msk = tail_mask(cn - i);
				const __m512 e = exp512(_mm512_sub_ps(
					_mm512_maskz_loadu_ps(msk, &s[h][i]), _mm512_set1_ps(mn)));

				_mm512_store_ps(&s[h][i], e);
				vs = _mm512_add_ps(vs, _mm512_maskz_mov_ps(msk, e));
			}
			l[h] = l[h] * alpha + _mm512_reduce_add_ps(vs);
			m[h] = mn;
			/* weighted V rows into the head's output, held in registers: two
			 * sets of accumulators (even and odd positions) so that the fma
			 * latency is not a chain per position */
			__m512 ov[8], ow[8];

			for (int j = 0; j < NV; j++) {
				ov[j] = _mm512_mul_ps(_mm512_load_ps(&o[h][16 * j]),
						      _mm512_set1_ps(alpha));
				ow[j] = _mm512_setzero_ps();
			}
			uint32_t i = 0;

			for (; i + 2 <= cn; i += 2) {
				const __m512 p0 = _mm512_set1_ps(s[h][i]);
				const __m512 p1 = _mm512_set1_ps(s[h][i + 1]);

#pragma GCC unroll 8
				for (int j = 0; j < NV; j++) {
					ov[j] = _mm512_fmadd_ps(
						p0, load_kv(F16, vr[i], 16 * j, 0xffff), ov[j]);
					ow[j] = _mm512_fmadd_ps(
						p1, load_kv(F16, vr[i + 1], 16 * j, 0xffff), ow[j]);
				}
			}
			if (i < cn) {
				const __m512 p0 = _mm512_set1_ps(s[h][i]);

				for (int j = 0; j < NV; j++)
					ov[j] = _mm512_fmadd_ps(
						p0, load_kv(F16, vr[i], 16 * j, 0xffff), ov[j]);
			}
			for (int j = 0; j < NV; j++)
				_mm512_store_ps(&o[h][16 * j], _mm512_add_ps(ov[j], ow[j]));
		}
	}
	for (uint32_t h = 0; h < n_q; h++) {
		const __m512 inv = _mm512_set1_ps(1.0f / l[h]);

		for (int j = 0; j < NV; j++)
			_mm512_storeu_ps(out + h * ldo + 16 * j,
					 _mm512_mul_ps(_mm512_load_ps(&o[h][16 * j]), inv));
	}
}

static void attn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		 const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		 uint32_t head_dim, float scale)
{
	const int f16 = k->type == AW_TYPE_F16;

	if (n_q > ATTN_MAXQ || k->type != v->type || head_dim % 16 || head_dim > 128) {
		attn_generic(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale);
		return;
	}
	/* head_dim 16 NV: one instance per NV and KV type (48: stories15m, 64:
	 * SmolLM2 and the llama presets, 128: Llama 3) */
#define ATTN_NV(nv)                                                                                \
	case nv:                                                                                   \
		if (f16)                                                                           \
			attn_nv(out, ldo, q, ldq, n_q, k, v, n_kv, scale, nv, AW_TYPE_F16);        \
		else                                                                               \
			attn_nv(out, ldo, q, ldq, n_q, k, v, n_kv, scale, nv, AW_TYPE_F32);        \
		break;
	switch (head_dim / 16) {
		ATTN_NV(1)
		ATTN_NV(2)
		ATTN_NV(3)
		ATTN_NV(4)
		ATTN_NV(5)
		ATTN_NV(6)
		ATTN_NV(7)
		ATTN_NV(8)
	}
#undef ATTN_NV
}

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
