/* kern-avx2.c — AVX2 + FMA + F16C kernels (table "avx2"), same math as
 * kern-ref.c. There is no vpdpbusd here: integer dot products are
 * vpmaddubsw (u8 × s8 pairs to int16, saturating) then vpmaddwd by ones (to
 * int32). To stay below the int16 saturation, Q8_0 weights are used signed
 * with their sign moved onto the activations (|w| * sign(x, w): at most
 * 128 * 127 * 2 = 32512 per pair), and Q4_0 nibbles (0..15) multiply the
 * activations directly with the -8 offset folded into the accumulator's
 * start (X16) or subtracted from the weights (GGUF rows).
 *
 * The X16 tile is one group of 16 rows (two ymm of 8 rows) × 2 tokens:
 * 4 int32 and 4 float accumulators, within AVX2's 16 registers. Vector loops
 * end in scalar tails that share their index.
 */
#include <immintrin.h>
#include <math.h>

#include "kern-int.h"
#include "kern-kq-int.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- helpers -------------------------------------------------------------- */

/* exp(x) as in kern-avx512.c, but 2^n is built in the exponent bits, so x is
 * clamped to [-87, 88]: results below e^-87 (1.6e-38) come out as e^-87 and
 * above e^88 as e^88 — absolute errors below 1.7e-38 near zero, which the
 * callers' sums and quotients make irrelevant. */
INLINE __m256 exp256(__m256 x)
{
	x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
	x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
	const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
					 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 5040);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	const __m256i e = _mm256_slli_epi32(
		_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);

	return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

INLINE float hsum256(__m256 v)
{
	const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));

	return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

INLINE float hmax256(__m256 v)
{
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

INLINE int32_t load_i32(const void *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* acc += sum of 4 products u8(w) * s8(x) per lane (pairs must not saturate) */
INLINE __m256i dot4(__m256i acc, __m256i w, __m256i x)
{
	return _mm256_add_epi32(
		acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
}

/* ---- activation quantization ------------------------------------------------ */

static void quant_q8a(const float *x, struct aw_block_q8a *y, size_t n)
{
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));

	for (size_t b = 0; b < n / AW_KERN_QK; b++) {
		__m256 v[4], a;

		for (int j = 0; j < 4; j++)
			v[j] = _mm256_loadu_ps(x + 32 * b + 8 * j);
		a = _mm256_max_ps(
			_mm256_max_ps(_mm256_and_ps(v[0], absmask), _mm256_and_ps(v[1], absmask)),
			_mm256_max_ps(_mm256_and_ps(v[2], absmask), _mm256_and_ps(v[3], absmask)));
		const float amax = hmax256(a);
		const float d = aw_kern_q8a_scale(amax);
		const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
		const __m256 vid = _mm256_set1_ps(id);
		__m256i q[4];

		for (int j = 0; j < 4; j++)
			q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v[j], vid)); /* nearest even */
		const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
						   _mm256_add_epi32(q[2], q[3]));
		__m128i s4 =
			_mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));

		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
		s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
		/* pack 32 int32 -> 32 int8; packs interleave 128-bit lanes, permute back */
		const __m256i p01 = _mm256_packs_epi32(q[0], q[1]);
		const __m256i p23 = _mm256_packs_epi32(q[2], q[3]);
		__m256i p = _mm256_packs_epi16(p01, p23);

		p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		y[b].d = d;
		y[b].sum = _mm_cvtsi128_si32(s4);
		_mm256_storeu_si256((__m256i *)y[b].qs, p);
	}
}

/* ---- matmul: X16 layout -------------------------------------------------------- */

/* Byte i (< 32) = 0x10 if bit i of 'bits' is set, else 0: each byte takes
 * the mask byte i / 8, keeps bit i % 8, and compares. */
INLINE __m256i bits16(int32_t bits)
{
	const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ull);
	const __m256i v =
		_mm256_shuffle_epi8(_mm256_set1_epi32(bits),
				    _mm256_setr_epi64x(0, 0x0101010101010101ll,
						       0x0202020202020202ll, 0x0303030303030303ll));

	return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel),
				_mm256_set1_epi8(0x10));
}

/* R groups of 16 rows (2R ymm "halves" of 8 rows) × T tokens, R * T <= 2
 * when batched, R up to 8 at batch 1; writes rows [lo, hi). At batch 1 more
 * groups are more concurrent memory streams: 8 groups measured 1.3-1.6x the
 * 2 groups of before (the accumulators no longer fit AVX2's 16 registers,
 * and the compiler's spills to L1 cost less than the streams gain). */
INLINE void x16_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		     uint32_t g, uint32_t t0, const int R, const int T, const int kind, uint32_t lo,
		     uint32_t hi)
{
	/* kind: 0 Q8_0, 1 Q4_0, 2 Q5_0 (nibbles as Q4_0's plus a fifth bit) */
	const int q4 = kind != 0, q5 = kind == 2;
	const uint32_t nb = w->cols / AW_KERN_QK;
	const size_t qb = q5 ? 320 : q4 ? 256 : 512;
	const size_t gbytes = aw_kern_x16_group_bytes(w->type, nb);
	const uint8_t *gq = (const uint8_t *)w->data + g * gbytes;
	const struct aw_block_q8a *xr[2];
	__m256 facc[16][2];

	for (int t = 0; t < T; t++) {
		xr[t] = in->xq + (size_t)(t0 + t) * nb;
		for (int h = 0; h < 2 * R; h++)
			facc[h][t] = _mm256_setzero_ps();
	}
	for (uint32_t b = 0; b < nb; b++) {
		__m256i iacc[16][2];

		for (int t = 0; t < T; t++)
			for (int h = 0; h < 2 * R; h++)
				iacc[h][t] = _mm256_set1_epi32(q5   ? -16 * xr[t][b].sum
							       : q4 ? -8 * xr[t][b].sum
								    : 0);
		if (q5) {
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				for (int h = 0; h < 2 * R; h++) {
					const uint8_t *p = gq + (h / 2) * gbytes + b * qb;
					const __m256i raw = _mm256_loadu_si256(
						(const __m256i *)(p + 64 * v + 32 * (h % 2)));
					/* this half's 32 mask bits of the low and high
					 * nibbles, one per byte: 0x10 where set */
					const __m256i wl = _mm256_or_si256(
						_mm256_and_si256(raw, _mm256_set1_epi8(0x0f)),
						bits16(load_i32(p + 256 + 8 * v + 4 * (h % 2))));
					const __m256i wh = _mm256_or_si256(
						_mm256_and_si256(_mm256_srli_epi16(raw, 4),
								 _mm256_set1_epi8(0x0f)),
						bits16(load_i32(p + 288 + 8 * v + 4 * (h % 2))));

					for (int t = 0; t < T; t++) {
						iacc[h][t] = dot4(iacc[h][t], wl,
								  _mm256_set1_epi32(load_i32(
									  xr[t][b].qs + 4 * v)));
						iacc[h][t] =
							dot4(iacc[h][t], wh,
							     _mm256_set1_epi32(load_i32(
								     xr[t][b].qs + 16 + 4 * v)));
					}
				}
			}
		} else if (q4) {
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				for (int h = 0; h < 2 * R; h++) {
					const __m256i raw = _mm256_loadu_si256(
						(const __m256i *)(gq + (h / 2) * gbytes + b * qb +
								  64 * v + 32 * (h % 2)));
					const __m256i wl =
						_mm256_and_si256(raw, _mm256_set1_epi8(0x0f));
					const __m256i wh = _mm256_and_si256(
						_mm256_srli_epi16(raw, 4), _mm256_set1_epi8(0x0f));

					for (int t = 0; t < T; t++) {
						iacc[h][t] = dot4(iacc[h][t], wl,
								  _mm256_set1_epi32(load_i32(
									  xr[t][b].qs + 4 * v)));
						iacc[h][t] =
							dot4(iacc[h][t], wh,
							     _mm256_set1_epi32(load_i32(
								     xr[t][b].qs + 16 + 4 * v)));
					}
				}
			}
		} else {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				for (int h = 0; h < 2 * R; h++) {
					const __m256i ws = _mm256_xor_si256(
						_mm256_loadu_si256(
							(const __m256i *)(gq + (h / 2) * gbytes +
									  b * qb + 64 * k +
									  32 * (h % 2))),
						_mm256_set1_epi8((char)0x80));
					const __m256i wa = _mm256_abs_epi8(ws);

					for (int t = 0; t < T; t++) {
						const __m256i xv = _mm256_set1_epi32(
							load_i32(xr[t][b].qs + 4 * k));

						iacc[h][t] = dot4(iacc[h][t], wa,
								  _mm256_sign_epi8(xv, ws));
					}
				}
			}
		}
		for (int h = 0; h < 2 * R; h++) {
			const __m256 dw = _mm256_cvtph_ps(
				_mm_loadu_si128((const __m128i *)(gq + (h / 2) * gbytes + nb * qb +
								  32 * b + 16 * (h % 2))));

			for (int t = 0; t < T; t++)
				facc[h][t] = _mm256_fmadd_ps(
					_mm256_cvtepi32_ps(iacc[h][t]),
					_mm256_mul_ps(dw, _mm256_set1_ps(xr[t][b].d)), facc[h][t]);
		}
	}
	for (int r = 0; r < R; r++) {
		const uint32_t row0 = (g + r) * 16;

		for (int t = 0; t < T; t++) {
			float out[16];

			_mm256_storeu_ps(out, facc[2 * r][t]);
			_mm256_storeu_ps(out + 8, facc[2 * r + 1][t]);
			for (uint32_t row = row0 > lo ? row0 : lo; row < hi && row < row0 + 16;
			     row++)
				y[(size_t)(t0 + t) * ldy + row] = out[row - row0];
		}
	}
}

#define X16_TILES(q4)                                                                              \
	static void x16_tiles_##q4(const struct aw_kern_mat *w, const struct aw_kern_in *in,       \
				   float *y, size_t ldy, uint32_t g, int R, uint32_t lo,           \
				   uint32_t hi)                                                    \
	{                                                                                          \
		uint32_t t = 0;                                                                    \
		if (in->n_tok == 1) {                                                              \
			if (R == 8)                                                                \
				x16_tile(w, in, y, ldy, g, 0, 8, 1, q4, lo, hi);                   \
			else if (R == 4)                                                           \
				x16_tile(w, in, y, ldy, g, 0, 4, 1, q4, lo, hi);                   \
			else if (R == 2)                                                           \
				x16_tile(w, in, y, ldy, g, 0, 2, 1, q4, lo, hi);                   \
			else                                                                       \
				x16_tile(w, in, y, ldy, g, 0, 1, 1, q4, lo, hi);                   \
			return;                                                                    \
		}                                                                                  \
		for (; t + 2 <= in->n_tok; t += 2)                                                 \
			x16_tile(w, in, y, ldy, g, t, 1, 2, q4, lo, hi);                           \
		if (t < in->n_tok)                                                                 \
			x16_tile(w, in, y, ldy, g, t, 1, 1, q4, lo, hi);                           \
	}

X16_TILES(0)
X16_TILES(1)
X16_TILES(2)

static void matmul_x16(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
		       size_t ldy, uint32_t r0, uint32_t r1)
{
	const uint32_t g1 = (r1 + 15) / 16;

	for (uint32_t g = r0 / 16; g < g1;) {
		/* batch 1: up to 8 groups at a time; batched: one group × two tokens */
		const int R = in->n_tok > 1 ? 1
			      : g + 8 <= g1 ? 8
			      : g + 4 <= g1 ? 4
			      : g + 2 <= g1 ? 2
					    : 1;

		if (w->type == AW_TYPE_Q5_0)
			x16_tiles_2(w, in, y, ldy, g, R, r0, r1);
		else if (w->type == AW_TYPE_Q4_0)
			x16_tiles_1(w, in, y, ldy, g, R, r0, r1);
		else
			x16_tiles_0(w, in, y, ldy, g, R, r0, r1);
		g += (uint32_t)R;
	}
}

/* ---- matmul: GGUF rows ------------------------------------------------------------ */

/* One row × T tokens (1..4); signed weights, sign moved onto the activations
 * (see kern-avx512.c for why no offset lane is used here). */
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
				dot4(_mm256_setzero_si256(), wabs, _mm256_sign_epi8(xv, wv));

			facc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc),
						  _mm256_set1_ps(dw * xb->d), facc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		y[(size_t)(t0 + t) * ldy + r] = hsum256(facc[t]);
}

INLINE __m256 load_wf(uint32_t type, const void *row, uint32_t i)
{
	switch (type) {
	case AW_TYPE_F16:
		return _mm256_cvtph_ps(
			_mm_loadu_si128((const __m128i *)((const aw_fp16 *)row + i)));
	case AW_TYPE_BF16:
		return _mm256_castsi256_ps(
			_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(
						  (const __m128i *)((const aw_bf16 *)row + i))),
					  16));
	default:
		return _mm256_loadu_ps((const float *)row + i);
	}
}

INLINE float wf_scalar(uint32_t type, const void *row, uint32_t i)
{
	switch (type) {
	case AW_TYPE_F16:
		return _cvtsh_ss(((const aw_fp16 *)row)[i]);
	case AW_TYPE_BF16:
		return aw_bf16_to_f32(((const aw_bf16 *)row)[i]);
	default:
		return ((const float *)row)[i];
	}
}

INLINE void rows_f_tile(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r, uint32_t t0, const int T, const uint32_t type)
{
	const void *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m256 acc[4];
	uint32_t i = 0;

	for (int t = 0; t < T; t++)
		acc[t] = _mm256_setzero_ps();
	for (; i + 8 <= w->cols; i += 8) {
		const __m256 wv = load_wf(type, row, i);

		for (int t = 0; t < T; t++)
			acc[t] = _mm256_fmadd_ps(
				wv, _mm256_loadu_ps(in->x + (size_t)(t0 + t) * in->n_in + i),
				acc[t]);
	}
	for (int t = 0; t < T; t++) {
		float s = hsum256(acc[t]);

		for (uint32_t j = i; j < w->cols; j++)
			s += wf_scalar(type, row, j) * in->x[(size_t)(t0 + t) * in->n_in + j];
		y[(size_t)(t0 + t) * ldy + r] = s;
	}
}

/* Lane j of the result = sum of the 8 lanes of v[j]. */
INLINE __m256 hsum8(const __m256 v[8])
{
	const __m256 h12 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
	const __m256 h34 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));

	return _mm256_add_ps(_mm256_permute2f128_ps(h12, h34, 0x20),
			     _mm256_permute2f128_ps(h12, h34, 0x31));
}

/* R rows × T tokens of a float-type matrix (R * T = 8, cols a multiple of 8):
 * 8 accumulators reduced together (see kern-avx512.c). */
INLINE void rows_f_block(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			 size_t ldy, uint32_t r, uint32_t t0, const int R, const int T,
			 const uint32_t type)
{
	const uint8_t *base = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m256 acc[8];
	float out[8];

	for (int i = 0; i < 8; i++)
		acc[i] = _mm256_setzero_ps();
	for (uint32_t c = 0; c < w->cols; c += 8) {
		__m256 xv[4];

		for (int t = 0; t < T; t++)
			xv[t] = _mm256_loadu_ps(in->x + (size_t)(t0 + t) * in->n_in + c);
#pragma GCC unroll 8
		for (int rr = 0; rr < R; rr++) {
			const __m256 wv = load_wf(type, base + rr * w->row_size, c);

			for (int t = 0; t < T; t++)
				acc[rr * T + t] = _mm256_fmadd_ps(wv, xv[t], acc[rr * T + t]);
		}
	}
	_mm256_storeu_ps(out, hsum8(acc));
	for (int rr = 0; rr < R; rr++)
		for (int t = 0; t < T; t++)
			y[(size_t)(t0 + t) * ldy + r + rr] = out[rr * T + t];
}

/* Float weights: 2 rows × 4 tokens blocks for groups of 4 tokens, 8 rows ×
 * 1 token for the others, one row at a time for the rows left over. */
INLINE void matmul_f(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		     uint32_t r0, uint32_t r1, const uint32_t type)
{
	const uint32_t t4 = in->n_tok / 4 * 4;
	uint32_t r;

	for (r = r0; r + 2 <= r1; r += 2)
		for (uint32_t t = 0; t < t4; t += 4)
			rows_f_block(w, in, y, ldy, r, t, 2, 4, type);
	for (; r < r1; r++)
		for (uint32_t t = 0; t < t4; t += 4)
			rows_f_tile(w, in, y, ldy, r, t, 4, type);
	for (r = r0; r + 8 <= r1; r += 8)
		for (uint32_t t = t4; t < in->n_tok; t++)
			rows_f_block(w, in, y, ldy, r, t, 8, 1, type);
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
		aw_kern_kq_matmul_avx2(w, in, y, ldy, r0, r1);
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
		if (w->cols % 8 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_F16);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_F16);
		break;
	case AW_TYPE_BF16:
		if (w->cols % 8 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_BF16);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_BF16);
		break;
	default:
		if (w->cols % 8 == 0)
			matmul_f(w, in, y, ldy, r0, r1, AW_TYPE_F32);
		else
			ROWS_TILES(rows_f_tile, AW_TYPE_F32);
		break;
	}
}

/* ---- elementwise ------------------------------------------------------------------ */

static void rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
	__m256 acc = _mm256_setzero_ps();
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		const __m256 v = _mm256_loadu_ps(x + i);

		acc = _mm256_fmadd_ps(v, v, acc);
	}
	float ss = hsum256(acc);

	for (size_t j = i; j < n; j++)
		ss += x[j] * x[j];
	const float scale = 1.0f / sqrtf(ss / (float)n + eps);
	const __m256 vs = _mm256_set1_ps(scale);

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs),
						      _mm256_loadu_ps(w + i)));
	for (; i < n; i++)
		y[i] = x[i] * scale * w[i];
}

static void softmax(float *x, size_t n)
{
	__m256 vm = _mm256_set1_ps(-INFINITY), vs = _mm256_setzero_ps();
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
	float m = hmax256(vm);

	for (size_t j = i; j < n; j++)
		m = fmaxf(m, x[j]);
	const __m256 mv = _mm256_set1_ps(m);

	for (i = 0; i + 8 <= n; i += 8) {
		const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));

		_mm256_storeu_ps(x + i, e);
		vs = _mm256_add_ps(vs, e);
	}
	float sum = hsum256(vs);

	for (; i < n; i++) {
		x[i] = expf(x[i] - m);
		sum += x[i];
	}
	const float inv = 1.0f / sum;
	const __m256 iv = _mm256_set1_ps(inv);

	for (i = 0; i + 8 <= n; i += 8)
		_mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
	for (; i < n; i++)
		x[i] *= inv;
}

static void silu_mul(float *y, const float *g, const float *u, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		const __m256 gv = _mm256_loadu_ps(g + i);
		const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv));
		const __m256 s = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));

		_mm256_storeu_ps(y + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
	}
	for (; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void add(float *y, const float *a, const float *b, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(y + i,
				 _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
	for (; i < n; i++)
		y[i] = a[i] + b[i];
}

/* ---- rope ---------------------------------------------------------------------------- */

/* sin and cos of 4 angles in double, as sincos8 in kern-avx512.c: t = k pi/2
 * + r, |r| <= pi/4, Taylor polynomials of degree 13 and 14 (truncation below
 * 2.1e-14), quadrant k mod 4 by compares on k - 4 floor(k / 4). */
INLINE void sincos4(__m256d t, __m256d *ret_s, __m256d *ret_c)
{
	const __m256d k = _mm256_round_pd(_mm256_mul_pd(t, _mm256_set1_pd(0.63661977236758134)),
					  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256d r = _mm256_fnmadd_pd(k, _mm256_set1_pd(1.5707963267948966), t);

	r = _mm256_fnmadd_pd(k, _mm256_set1_pd(6.123233995736766e-17), r);
	const __m256d r2 = _mm256_mul_pd(r, r);
	__m256d s = _mm256_set1_pd(1.0 / 6227020800.0);

	s = _mm256_fmadd_pd(s, r2, _mm256_set1_pd(-1.0 / 39916800.0));
	s = _mm256_fmadd_pd(s, r2, _mm256_set1_pd(1.0 / 362880.0));
	s = _mm256_fmadd_pd(s, r2, _mm256_set1_pd(-1.0 / 5040.0));
	s = _mm256_fmadd_pd(s, r2, _mm256_set1_pd(1.0 / 120.0));
	s = _mm256_fmadd_pd(s, r2, _mm256_set1_pd(-1.0 / 6.0));
	s = _mm256_fmadd_pd(_mm256_mul_pd(s, r2), r, r);
	__m256d c = _mm256_set1_pd(1.0 / 87178291200.0);

	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(-1.0 / 479001600.0));
	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(1.0 / 3628800.0));
	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(-1.0 / 40320.0));
	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(1.0 / 720.0));
	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(-1.0 / 24.0));
	c = _mm256_fmadd_pd(c, r2, _mm256_set1_pd(0.5));
	c = _mm256_fnmadd_pd(c, r2, _mm256_set1_pd(1.0));
	/* q = k mod 4 in 0..3 (exact: k is an integer below 2^52) */
	const __m256d q = _mm256_fnmadd_pd(_mm256_floor_pd(_mm256_mul_pd(k, _mm256_set1_pd(0.25))),
					   _mm256_set1_pd(4.0), k);
	const __m256d one = _mm256_set1_pd(1.0), two = _mm256_set1_pd(2.0),
		      three = _mm256_set1_pd(3.0), sign = _mm256_set1_pd(-0.0);
	const __m256d odd = _mm256_or_pd(_mm256_cmp_pd(q, one, _CMP_EQ_OQ),
					 _mm256_cmp_pd(q, three, _CMP_EQ_OQ));
	const __m256d sneg = _mm256_cmp_pd(q, two, _CMP_GE_OQ);
	const __m256d cneg =
		_mm256_or_pd(_mm256_cmp_pd(q, one, _CMP_EQ_OQ), _mm256_cmp_pd(q, two, _CMP_EQ_OQ));

	*ret_s = _mm256_xor_pd(_mm256_blendv_pd(s, c, odd), _mm256_and_pd(sneg, sign));
	*ret_c = _mm256_xor_pd(_mm256_blendv_pd(c, s, odd), _mm256_and_pd(cneg, sign));
}

/* Tables and rotation as rope() in kern-avx512.c (NORM: c2 = (c0, c0, c1,
 * c1, ...), s2 = (-s0, s0, ...); NEOX: c2 = (c0, c1, ...), s2 = (s0, ...)),
 * 8 lanes, scalar tails reading the same tables. */
static void rope(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos, uint32_t n_heads,
		 const struct aw_kern_rope *rope)
{
	double freq[520] __attribute__((aligned(32)));
	float c2[1024 + 16] __attribute__((aligned(32))),
		s2[1024 + 16] __attribute__((aligned(32)));
	const uint32_t n_rot = rope->n_rot, half = n_rot / 2;
	const int neox = rope->mode == AW_KERN_ROPE_NEOX;
	const __m256i dup = _mm256_set_epi32(3, 3, 2, 2, 1, 1, 0, 0);
	const __m256 even_neg = _mm256_castsi256_ps(
		_mm256_set_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));

	assert(n_rot <= 1024 && n_rot <= rope->head_dim);
	aw_kern_rope_freqs_fast(freq, rope);
	for (uint32_t t = 0; t < n_tok; t++) {
		if (t == 0 || pos[t] != pos[t - 1]) {
			const __m256d p = _mm256_set1_pd((double)pos[t]);

			for (uint32_t i = 0; i < half; i += 4) {
				__m256d sd, cd;

				sincos4(_mm256_mul_pd(p, _mm256_load_pd(freq + i)), &sd, &cd);
				const __m128 cf = _mm256_cvtpd_ps(cd), sf = _mm256_cvtpd_ps(sd);

				if (neox) {
					_mm_storeu_ps(c2 + i, cf);
					_mm_storeu_ps(s2 + i, sf);
				} else {
					_mm256_storeu_ps(c2 + 2 * i,
							 _mm256_permutevar8x32_ps(
								 _mm256_castps128_ps256(cf), dup));
					_mm256_storeu_ps(
						s2 + 2 * i,
						_mm256_xor_ps(
							_mm256_permutevar8x32_ps(
								_mm256_castps128_ps256(sf), dup),
							even_neg));
				}
			}
		}
		for (uint32_t h = 0; h < n_heads; h++) {
			float *xh = x + t * ldx + (size_t)h * rope->head_dim;
			uint32_t i = 0;

			if (neox) {
				for (; i + 8 <= half; i += 8) {
					const __m256 a = _mm256_loadu_ps(xh + i);
					const __m256 b = _mm256_loadu_ps(xh + half + i);
					const __m256 c = _mm256_loadu_ps(c2 + i);
					const __m256 s = _mm256_loadu_ps(s2 + i);

					_mm256_storeu_ps(
						xh + i, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
					_mm256_storeu_ps(
						xh + half + i,
						_mm256_fmadd_ps(a, s, _mm256_mul_ps(b, c)));
				}
				for (; i < half; i++) {
					const float a = xh[i], b = xh[half + i];

					xh[i] = a * c2[i] - b * s2[i];
					xh[half + i] = a * s2[i] + b * c2[i];
				}
			} else {
				for (; i + 8 <= n_rot; i += 8) {
					const __m256 v = _mm256_loadu_ps(xh + i);
					const __m256 sw = _mm256_permute_ps(v, 0xb1);

					_mm256_storeu_ps(
						xh + i,
						_mm256_fmadd_ps(
							v, _mm256_loadu_ps(c2 + i),
							_mm256_mul_ps(sw,
								      _mm256_loadu_ps(s2 + i))));
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

INLINE __m256 load_kv(uint32_t type, const void *row, uint32_t d)
{
	if (type == AW_TYPE_F16)
		return _mm256_cvtph_ps(
			_mm_loadu_si128((const __m128i *)((const aw_fp16 *)row + d)));
	return _mm256_loadu_ps((const float *)row + d);
}

/* The online softmax of kern-avx512.c, 8 lanes; head_dim a multiple of 8
 * (other shapes use the reference). */
static void attn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		 const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		 uint32_t head_dim, float scale)
{
	if (n_q > ATTN_MAXQ || head_dim > ATTN_MAXD || head_dim % 8) {
		aw_kern_ref_attn(out, ldo, q, ldq, n_q, k, v, n_kv, head_dim, scale);
		return;
	}
	float s[ATTN_MAXQ][ATTN_CHUNK] __attribute__((aligned(32)));
	float o[ATTN_MAXQ][ATTN_MAXD] __attribute__((aligned(32)));
	float m[ATTN_MAXQ], l[ATTN_MAXQ];
	const uint32_t nv = head_dim / 8;

	for (uint32_t h = 0; h < n_q; h++) {
		m[h] = -INFINITY;
		l[h] = 0.0f;
		for (uint32_t d = 0; d < head_dim; d++)
			o[h][d] = 0.0f;
	}
	for (uint32_t c0 = 0; c0 < n_kv; c0 += ATTN_CHUNK) {
		const uint32_t cn = n_kv - c0 < ATTN_CHUNK ? n_kv - c0 : ATTN_CHUNK;
		const void *krow[ATTN_CHUNK], *vrow[ATTN_CHUNK];

		aw_kern_kv_rows(k, c0, cn, krow);
		aw_kern_kv_rows(v, c0, cn, vrow);
		for (uint32_t i = 0; i < cn; i++) {
			const void *kr = krow[i];

			for (uint32_t h = 0; h < n_q; h++) {
				__m256 acc = _mm256_setzero_ps();

				for (uint32_t j = 0; j < nv; j++)
					acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + h * ldq + 8 * j),
							      load_kv(k->type, kr, 8 * j), acc);
				s[h][i] = hsum256(acc) * scale;
			}
		}
		for (uint32_t h = 0; h < n_q; h++) {
			float mn = m[h], sum = 0.0f;

			for (uint32_t i = 0; i < cn; i++)
				mn = fmaxf(mn, s[h][i]);
			const float alpha = m[h] == -INFINITY ? 0.0f : expf(m[h] - mn);
			const __m256 mv = _mm256_set1_ps(mn);
			__m256 vs = _mm256_setzero_ps();
			uint32_t i = 0;

			for (; i + 8 <= cn; i += 8) {
				const __m256 e =
					exp256(_mm256_sub_ps(_mm256_loadu_ps(&s[h][i]), mv));

				_mm256_storeu_ps(&s[h][i], e);
				vs = _mm256_add_ps(vs, e);
			}
			sum = hsum256(vs);
			for (; i < cn; i++) {
				s[h][i] = expf(s[h][i] - mn);
				sum += s[h][i];
			}
			l[h] = l[h] * alpha + sum;
			m[h] = mn;
			if (alpha != 1.0f)
				for (uint32_t j = 0; j < nv; j++)
					_mm256_store_ps(&o[h][8 * j],
							_mm256_mul_ps(_mm256_load_ps(&o[h][8 * j]),
								      _mm256_set1_ps(alpha)));
		}
		for (uint32_t i = 0; i < cn; i++) {
			const void *vr = vrow[i];

			for (uint32_t j = 0; j < nv; j++) {
				const __m256 vv = load_kv(v->type, vr, 8 * j);

				for (uint32_t h = 0; h < n_q; h++)
					_mm256_store_ps(
						&o[h][8 * j],
						_mm256_fmadd_ps(_mm256_set1_ps(s[h][i]), vv,
								_mm256_load_ps(&o[h][8 * j])));
			}
		}
	}
	for (uint32_t h = 0; h < n_q; h++) {
		const __m256 inv = _mm256_set1_ps(1.0f / l[h]);

		for (uint32_t j = 0; j < nv; j++)
			_mm256_storeu_ps(out + h * ldo + 8 * j,
					 _mm256_mul_ps(_mm256_load_ps(&o[h][8 * j]), inv));
	}
}

const struct aw_kern aw_kern_avx2 = {
	.name = "avx2",
	.quant_q8a = quant_q8a,
	.matmul = matmul,
	.rmsnorm = rmsnorm,
	.rope = rope,
	.softmax = softmax,
	.attn = attn,
	.silu_mul = silu_mul,
	.add = add,
};
