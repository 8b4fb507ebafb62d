/* kern-kq-x86.c — Q4_1, Q5_0, Q5_1, Q4_K, Q5_K and Q6_K matmuls on x86-64
 * (the form is described in kern-kq-int.h). Built once per x86 table with that
 * table's flags: AW_KQ_ISA 0 = avx2, 1 = avx512, 2 = avx512vnni.
 *
 * 256-bit vectors in every build: one 32-element block is one ymm of weight
 * quants and one of activations. The integer dot product of a block is
 * vpdpbusd (avx512vnni: u8 weights × s8 activations, 4 products per int32
 * lane) or vpmaddubsw + vpmaddwd by ones (avx2, avx512): with weights of at
 * most 32 in magnitude a pair sum stays far below the int16 saturation
 * (32 * 127 * 2). The 8 blocks' lane vectors are folded by a tree of
 * vphaddd into one vector with one exact sum per block (lane i = block i),
 * which meets the 8 block scales in a single fma.
 */
#include <immintrin.h>
#include <string.h>

#include "kern-kq-int.h"

#if AW_KQ_ISA == 2
#define FN   aw_kern_kq_matmul_avx512vnni
#define VNNI 1
#elif AW_KQ_ISA == 1
#define FN   aw_kern_kq_matmul_avx512
#define VNNI 0
#else
#define FN   aw_kern_kq_matmul_avx2
#define VNNI 0
#endif

#define INLINE static inline __attribute__((always_inline))

/* int32 lanes: sums of 4 (VNNI) or 2+2 products u[j] * s[j] */
INLINE __m256i dot(__m256i u, __m256i s)
{
#if VNNI
	return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* v[i] holds 8 partial sums of block i, lanes 0-3 over its elements 0-15 and
 * lanes 4-7 over 16-31. Returns in *lo lane i the sum of block i's first
 * half and in *hi of its second half. */
INLINE void fold8(const __m256i v[8], __m256i *lo, __m256i *hi)
{
	const __m256i a =
		_mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
	const __m256i b =
		_mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));

	*lo = _mm256_permute2x128_si256(a, b, 0x20);
	*hi = _mm256_permute2x128_si256(a, b, 0x31);
}

INLINE float hsum(__m256 v)
{
	const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));

	return _mm_cvtss_f32(_mm_add_ss(h2, _mm_movehdup_ps(h2)));
}

/* 16 nibbles -> 32 bytes: low nibbles (elements 0-15), then high (16-31) */
INLINE __m256i nibbles32(const uint8_t *p)
{
	const __m128i raw = _mm_loadu_si128((const __m128i *)p);
	const __m128i m = _mm_set1_epi8(0x0f);

	return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_and_si128(raw, m)),
				       _mm_and_si128(_mm_srli_epi16(raw, 4), m), 1);
}

/* 32 bits -> 32 bytes: byte j = 16 if bit j is set, else 0 */
INLINE __m256i bits32(const uint8_t *p)
{
	uint32_t h;

	memcpy(&h, p, 4);
	const __m256i v = _mm256_shuffle_epi8(
		_mm256_set1_epi32((int)h),
		_mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303));
	const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);

	return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit),
				_mm256_set1_epi8(16));
}

/* One group of 8 blocks of one row, decoded: the quants to multiply (u,
 * unsigned), the signs to move onto the activations (sgn, signed types
 * only), and the per-block float factors: lane i of fa = a of block i (Q6_K:
 * fa for the first halves, fb for the second ones), fm = bias. */
struct grp {
	__m256i u[8], sgn[8];
	__m256 fa, fb, fm;
};

/* Scales of legacy blocks i < n of the group at p (block stride 'stride'):
 * lane i of *d = the fp16 at offset 0 of block i, of *m the one at 2. */
INLINE void legacy_scales(const uint8_t *p, int stride, int n, __m256 *d, __m256 *m)
{
	const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
	const __m256i valid = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
	const __m256i g = _mm256_mask_i32gather_epi32(
		_mm256_setzero_si256(), (const int *)p,
		_mm256_mullo_epi32(lane, _mm256_set1_epi32(stride)), valid, 1);
	/* [d0..d3 m0..m3 | d4..d7 m4..m7] -> [d0..d7 | m0..m7] */
	const __m256i pk = _mm256_permute4x64_epi64(
		_mm256_packus_epi32(_mm256_and_si256(g, _mm256_set1_epi32(0xffff)),
				    _mm256_srli_epi32(g, 16)),
		0xd8);

	*d = _mm256_cvtph_ps(_mm256_castsi256_si128(pk));
	*m = _mm256_cvtph_ps(_mm256_extracti128_si256(pk, 1));
}

/* The float factors of a K super-block (any layout: scales and d stay in
 * place): fa/fm for Q4_K/Q5_K, fa/fb (even/odd 16-wide scales) for Q6_K. */
INLINE void kscales(const uint8_t *blk, const uint32_t type, struct grp *o)
{
	if (type == AW_TYPE_Q6_K) {
		const __m128i sc = _mm_loadu_si128((const __m128i *)(blk + 192));
		const __m128i ev = _mm_shuffle_epi8(
			sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
		aw_fp16 d;

		memcpy(&d, blk + 208, 2);
		const __m256 vd = _mm256_set1_ps(_cvtsh_ss(d));

		o->fa = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ev)), vd);
		o->fb = _mm256_mul_ps(
			_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ev, 8))), vd);
		return;
	}
	uint64_t sc, mn;
	aw_fp16 d, dmin;

	aw_kern_kq_scales(blk + 4, &sc, &mn);
	memcpy(&d, blk, 2);
	memcpy(&dmin, blk + 2, 2);
	o->fa = _mm256_mul_ps(
		_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc))),
		_mm256_set1_ps(_cvtsh_ss(d)));
	o->fm = _mm256_mul_ps(
		_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn))),
		_mm256_set1_ps(-_cvtsh_ss(dmin)));
}

/* Decode group g (blocks 8g .. 8g+n-1, n <= 8) of a row of 'type'. */
INLINE void decode(const uint8_t *row, uint32_t g, int n, const uint32_t type, struct grp *o)
{
	const __m256i lo4 = _mm256_set1_epi8(0x0f);

	switch (type) {
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K: {
		const int five = type == AW_TYPE_Q5_K;
		const uint8_t *blk = row + (size_t)g * (five ? 176 : 144);
		const uint8_t *qs = blk + (five ? 48 : 16);

		kscales(blk, type, o);
		const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(blk + 16))
					: _mm256_setzero_si256();
		for (int c = 0; c < 4; c++) {
			const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));

			o->u[2 * c] = _mm256_and_si256(raw, lo4);
			o->u[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
		}
		if (five)
			for (int s = 0; s < 8; s++) {
				const __m256i bit = _mm256_set1_epi8((char)(1 << s));
				const __m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);

				o->u[s] = _mm256_or_si256(
					o->u[s], _mm256_and_si256(h, _mm256_set1_epi8(16)));
			}
		return;
	}
	case AW_TYPE_Q6_K: {
		const uint8_t *blk = row + (size_t)g * 210;
		const __m256i hi2 = _mm256_set1_epi8(0x30);

		kscales(blk, type, o);
		for (int h = 0; h < 2; h++) {
			const __m256i qa = _mm256_loadu_si256((const __m256i *)(blk + 64 * h));
			const __m256i qb = _mm256_loadu_si256((const __m256i *)(blk + 64 * h + 32));
			const __m256i qh =
				_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h));
			/* element 128h + 32k + l: nibble k/2 of ql[64h + 32(k&1) + l],
			 * 2-bit field k of qh[32h + l] (quant.h) */
			__m256i q[4];

			q[0] = _mm256_or_si256(_mm256_and_si256(qa, lo4),
					       _mm256_and_si256(_mm256_slli_epi16(qh, 4), hi2));
			q[1] = _mm256_or_si256(_mm256_and_si256(qb, lo4),
					       _mm256_and_si256(_mm256_slli_epi16(qh, 2), hi2));
			q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), lo4),
					       _mm256_and_si256(qh, hi2));
			q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), lo4),
					       _mm256_and_si256(_mm256_srli_epi16(qh, 2), hi2));
			for (int k = 0; k < 4; k++) {
				const __m256i s = _mm256_sub_epi8(q[k], _mm256_set1_epi8(32));

				o->sgn[4 * h + k] = s;
				o->u[4 * h + k] = _mm256_abs_epi8(s);
			}
		}
		return;
	}
	case AW_TYPE_Q4_1: {
		const uint8_t *blk = row + (size_t)g * 8 * 20;

		legacy_scales(blk, 20, n, &o->fa, &o->fm);
		for (int i = 0; i < n; i++)
			o->u[i] = nibbles32(blk + 20 * i + 4);
		return;
	}
	case AW_TYPE_Q5_1: {
		const uint8_t *blk = row + (size_t)g * 8 * 24;

		legacy_scales(blk, 24, n, &o->fa, &o->fm);
		for (int i = 0; i < n; i++)
			o->u[i] = _mm256_or_si256(nibbles32(blk + 24 * i + 8),
						  bits32(blk + 24 * i + 4));
		return;
	}
	default: { /* Q5_0: q - 16, signed */
		const uint8_t *blk = row + (size_t)g * 8 * 22;
		__m256 unused;

		legacy_scales(blk, 22, n, &o->fa, &unused);
		for (int i = 0; i < n; i++) {
			const __m256i s =
				_mm256_sub_epi8(_mm256_or_si256(nibbles32(blk + 22 * i + 6),
								bits32(blk + 22 * i + 2)),
						_mm256_set1_epi8(16));

			o->sgn[i] = s;
			o->u[i] = _mm256_abs_epi8(s);
		}
		return;
	}
	}
}

/* acc += the group's float terms for one token, from its exact sums: lane i
 * of lo/hi = block i's first/second half (Q6_K) or lo + hi = block i */
INLINE __m256 combine(const struct grp *o, __m256i lo, __m256i hi, const float *dx, const float *xs,
		      const uint32_t type, __m256 acc)
{
	const __m256 vdx = _mm256_loadu_ps(dx);

	if (type == AW_TYPE_Q6_K) {
		acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), _mm256_mul_ps(o->fa, vdx), acc);
		return _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), _mm256_mul_ps(o->fb, vdx), acc);
	}
	acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_add_epi32(lo, hi)),
			      _mm256_mul_ps(o->fa, vdx), acc);
	if (type != AW_TYPE_Q5_0)
		acc = _mm256_fmadd_ps(o->fm, _mm256_loadu_ps(xs), acc);
	return acc;
}

/* acc += the group's contribution for one token (blocks i < n; xb = the
 * token's activation block 8g, dx/xs its tables at 8g) */
INLINE __m256 group_token(const struct grp *o, const struct aw_block_q8a *xb, const float *dx,
			  const float *xs, int n, const uint32_t type, __m256 acc)
{
	const int sgn = type == AW_TYPE_Q5_0 || type == AW_TYPE_Q6_K;
	__m256i v[8], lo, hi;

	for (int i = 0; i < 8; i++) {
		if (i >= n) {
			v[i] = _mm256_setzero_si256();
			continue;
		}
		__m256i x = _mm256_loadu_si256((const __m256i *)xb[i].qs);

		if (sgn)
			x = _mm256_sign_epi8(x, o->sgn[i]);
		v[i] = dot(o->u[i], x);
	}
	fold8(v, &lo, &hi);
	return combine(o, lo, hi, dx, xs, type, acc);
}

INLINE void tile(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c, uint32_t r, float *y,
		 size_t ldy, const int T, const uint32_t type)
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = c->nbp;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m256 acc[4];
	struct grp o;
	uint32_t g;

	for (int t = 0; t < T; t++)
		acc[t] = _mm256_setzero_ps();
	for (g = 0; 8 * g + 8 <= nb; g++) {
		decode(row, g, 8, type, &o);
		for (int t = 0; t < T; t++)
			acc[t] = group_token(&o, c->xq + (size_t)t * nb + 8 * g,
					     c->dx + t * nbp + 8 * g, c->xs + t * nbp + 8 * g, 8,
					     type, acc[t]);
	}
	if (8 * g < nb) { /* legacy types: the last 1..7 blocks */
		const int n = (int)(nb - 8 * g);

		decode(row, g, n, type, &o);
		for (int t = 0; t < T; t++)
			acc[t] = group_token(&o, c->xq + (size_t)t * nb + 8 * g,
					     c->dx + t * nbp + 8 * g, c->xs + t * nbp + 8 * g, n,
					     type, acc[t]);
	}
	for (int t = 0; t < T; t++)
		y[(size_t)t * ldy + r] = hsum(acc[t]);
}

/* ---- KQ8 layout: u[m], sgn[m] = elements 4m..4m+3 of all 8 sub-blocks ---- */

INLINE __m256i dot_acc(__m256i acc, __m256i u, __m256i s)
{
#if VNNI
	return _mm256_dpbusd_epi32(acc, u, s);
#else
	return _mm256_add_epi32(acc, dot(u, s));
#endif
}

INLINE void decode8(const uint8_t *row, uint32_t g, const uint32_t type, struct grp *o)
{
	const __m256i lo4 = _mm256_set1_epi8(0x0f);

	if (type == AW_TYPE_Q6_K) {
		const uint8_t *blk = row + (size_t)g * 210;
		const __m256i hi2 = _mm256_set1_epi8(0x30);
		const __m256i h0 = _mm256_loadu_si256((const __m256i *)(blk + 128));
		const __m256i h1 = _mm256_loadu_si256((const __m256i *)(blk + 160));
		/* bits 4-5 of rows m: field m/2 of h[m % 2] */
		const __m256i hb[8] = {
			_mm256_and_si256(_mm256_slli_epi16(h0, 4), hi2),
			_mm256_and_si256(_mm256_slli_epi16(h1, 4), hi2),
			_mm256_and_si256(_mm256_slli_epi16(h0, 2), hi2),
			_mm256_and_si256(_mm256_slli_epi16(h1, 2), hi2),
			_mm256_and_si256(h0, hi2),
			_mm256_and_si256(h1, hi2),
			_mm256_and_si256(_mm256_srli_epi16(h0, 2), hi2),
			_mm256_and_si256(_mm256_srli_epi16(h1, 2), hi2),
		};
		kscales(blk, type, o);
		for (int k = 0; k < 4; k++) {
			const __m256i raw = _mm256_loadu_si256((const __m256i *)(blk + 32 * k));
			const __m256i q[2] = {_mm256_and_si256(raw, lo4),
					      _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4)};

			for (int h = 0; h < 2; h++) {
				const __m256i sv = _mm256_sub_epi8(
					_mm256_or_si256(q[h], hb[k + 4 * h]), _mm256_set1_epi8(32));

				o->sgn[k + 4 * h] = sv;
				o->u[k + 4 * h] = _mm256_abs_epi8(sv);
			}
		}
		return;
	}
	const int five = type == AW_TYPE_Q5_K;
	const uint8_t *blk = row + (size_t)g * (five ? 176 : 144);
	const uint8_t *qs = blk + (five ? 48 : 16);

	kscales(blk, type, o);
	for (int k = 0; k < 4; k++) {
		const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * k));

		o->u[k] = _mm256_and_si256(raw, lo4);
		o->u[k + 4] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), lo4);
	}
	if (five) {
		const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));

		for (int m = 0; m < 8; m++) {
			const __m256i bit = _mm256_set1_epi8((char)(1 << m));
			const __m256i h = _mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit);

			o->u[m] =
				_mm256_or_si256(o->u[m], _mm256_and_si256(h, _mm256_set1_epi8(16)));
		}
	}
}

INLINE void tile8(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c, uint32_t r, float *y,
		  size_t ldy, const int T, const uint32_t type)
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = c->nbp;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_size;
	__m256 acc[4];
	struct grp o;

	for (int t = 0; t < T; t++)
		acc[t] = _mm256_setzero_ps();
	for (uint32_t g = 0; g < nb / 8; g++) {
		decode8(row, g, type, &o);
		for (int t = 0; t < T; t++) {
			const uint8_t *xt = c->xt + (size_t)t * 32 * nbp + 256 * g;
			__m256i a[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};

			for (int m = 0; m < 8; m++) {
				__m256i x = _mm256_loadu_si256((const __m256i *)(xt + 32 * m));

				if (type == AW_TYPE_Q6_K) {
					x = _mm256_sign_epi8(x, o.sgn[m]);
					a[m / 4] = dot_acc(a[m / 4], o.u[m], x);
				} else {
					a[m & 1] = dot_acc(a[m & 1], o.u[m], x);
				}
			}
			acc[t] = combine(&o, a[0], a[1], c->dx + t * nbp + 8 * g,
					 c->xs + t * nbp + 8 * g, type, acc[t]);
		}
	}
	for (int t = 0; t < T; t++)
		y[(size_t)t * ldy + r] = hsum(acc[t]);
}

#if AW_KQ_ISA >= 1
/* ---- KQ8 GEMM (avx512, avx512vnni): register tiles of R rows x T tokens ----
 *
 * One zmm holds two consecutive 32-byte slices m, m+1 of a KQ8 super-block
 * (the same 4 elements of all 8 sub-blocks, twice): int32 lane i sums
 * sub-block i over slice m, lane 8 + i over slice m + 1. A super-block of
 * one row is 4 such vectors, decoded once and held in registers while T
 * tokens pass; a token's 4 activation vectors, loaded once, serve R rows.
 * Per (row, token, super-block) 4 vpdpbusd accumulate one vector A, which
 * meets the scales in float without a horizontal sum: both halves of A
 * belong to sub-block i, so
 *
 *     acc += cvt(A) * ([a | a] * [dX | dX])  +  [bias | bias] * [dX*sumX | 0]
 *
 * (16 float lanes, summed once at the end of the row). With two or more
 * tokens (Q4_K, Q5_K) the A of tokens t and t + 1 are first folded into
 * one vector [A_t.lo + A_t.hi | A_t+1.lo + A_t+1.hi], which halves the
 * float work: acc += cvt(S) * ([a | a] * [dX_t | dX_t+1]) + [bias | bias] *
 * [dX*sumX_t | dX*sumX_t+1]. Q6_K is taken
 * unsigned (q in 0..63, no sign moves onto the activations): its -32 is an
 * integer start value of the accumulators, -32 times the sum of the 16
 * activations each 16-wide scale covers (tabulated once per token), and
 * its two halves (slices 0-3 and 4-7, scales 2i and 2i+1) are accumulated
 * apart and folded into one vector [first halves | second halves] before
 * the float step. Integer sums are exact (|sum| < 2^31); the float step is
 * the ROWS kernel's, in another order. */

#define KQ_TAB2 4096 /* activation blocks per chunk of tokens (GEMM tables) */

INLINE __m512i dot512(__m512i acc, __m512i u, __m512i s)
{
#if VNNI
	return _mm512_dpbusd_epi32(acc, u, s);
#else
	/* pairs of u * s with u <= 63: |sum| <= 2 * 63 * 127, no saturation */
	return _mm512_add_epi32(
		acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1)));
#endif
}

struct kw {
	__m512i w[4]; /* w[q] = slices 2q, 2q+1 (unsigned quants) */
	__m512 fa;    /* [a | a] (Q6_K: [a even | a odd]) */
	__m512 fm;    /* [bias | 0] (Q4_K, Q5_K) */
};

INLINE void decode512(const uint8_t *blk, const uint32_t type, struct kw *o)
{
	const __m512i lo4 = _mm512_set1_epi8(0x0f);
	struct grp g;

	kscales(blk, type, &g);
	if (type == AW_TYPE_Q6_K) {
		const __m512i r0 = _mm512_loadu_si512(blk), r1 = _mm512_loadu_si512(blk + 64);
		const __m512i h = _mm512_loadu_si512(blk + 128), hi2 = _mm512_set1_epi8(0x30);

		o->w[0] = _mm512_or_si512(_mm512_and_si512(r0, lo4),
					  _mm512_and_si512(_mm512_slli_epi16(h, 4), hi2));
		o->w[1] = _mm512_or_si512(_mm512_and_si512(r1, lo4),
					  _mm512_and_si512(_mm512_slli_epi16(h, 2), hi2));
		o->w[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(r0, 4), lo4),
					  _mm512_and_si512(h, hi2));
		o->w[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(r1, 4), lo4),
					  _mm512_and_si512(_mm512_srli_epi16(h, 2), hi2));
		o->fa = _mm512_insertf32x8(_mm512_castps256_ps512(g.fa), g.fb, 1);
		o->fm = _mm512_setzero_ps();
		return;
	}
	const int five = type == AW_TYPE_Q5_K;
	const uint8_t *qs = blk + (five ? 48 : 16);
	const __m512i r0 = _mm512_loadu_si512(qs), r1 = _mm512_loadu_si512(qs + 64);

	o->w[0] = _mm512_and_si512(r0, lo4);
	o->w[1] = _mm512_and_si512(r1, lo4);
	o->w[2] = _mm512_and_si512(_mm512_srli_epi16(r0, 4), lo4);
	o->w[3] = _mm512_and_si512(_mm512_srli_epi16(r1, 4), lo4);
	if (five) { /* bit m of qh byte 4i + j: slice 2q in the low half, 2q + 1 high */
		const __m512i qh =
			_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 16)));

		for (int q = 0; q < 4; q++) {
			const __m512i bit =
				_mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * q))),
						   _mm256_set1_epi8((char)(1 << (2 * q + 1))), 1);
			const __mmask64 k = _mm512_test_epi8_mask(qh, bit);

			o->w[q] = _mm512_mask_add_epi8(o->w[q], k, o->w[q], _mm512_set1_epi8(16));
		}
	}
	o->fa = _mm512_insertf32x8(_mm512_castps256_ps512(g.fa), g.fa, 1);
	o->fm = _mm512_insertf32x8(_mm512_castps256_ps512(g.fm), g.fm, 1);
}

/* Inputs of a GEMM chunk, at its first token. */
struct gctx {
	const uint8_t *xt;    /* aw_kern_kq_transpose() */
	const float *dx, *xs; /* aw_kern_kq_tables() */
	const int32_t *c6;    /* Q6_K: per token and group, 16 start values */
	uint32_t nbp;
};

/* y[t][r0 + k] for k < R, t < T */
INLINE void gtile(const struct aw_kern_mat *w, const struct gctx *c, uint32_t r0, float *y,
		  size_t ldy, const int R, const int T, const uint32_t type)
{
	const uint32_t ng = w->cols / 256, nbp = c->nbp;
	const size_t bs = type == AW_TYPE_Q4_K ? 144 : type == AW_TYPE_Q5_K ? 176 : 210;
	const uint8_t *row = (const uint8_t *)w->data + (size_t)r0 * w->row_size;
	__m512 acc[2][8];
	struct kw o[2];

	for (int r = 0; r < R; r++)
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm512_setzero_ps();
	for (uint32_t g = 0; g < ng; g++) {
		for (int r = 0; r < R; r++)
			decode512(row + (size_t)r * w->row_size + g * bs, type, &o[r]);
		/* Q4_K, Q5_K: tokens in pairs, each row's two vectors A folded
		 * into one [token t | token t + 1] before the float step */
		if (type != AW_TYPE_Q6_K && T >= 2) {
			for (int t = 0; t < T; t += 2) {
				const uint8_t *xa = c->xt + (size_t)t * 32 * nbp + 256 * g;
				const uint8_t *xb = xa + 32 * nbp;
				const float *dx = c->dx + t * nbp + 8 * g,
					    *xs = c->xs + t * nbp + 8 * g;
				const __m512 dxp = _mm512_insertf32x8(
					_mm512_castps256_ps512(_mm256_loadu_ps(dx)),
					_mm256_loadu_ps(dx + nbp), 1);
				const __m512 xsp = _mm512_insertf32x8(
					_mm512_castps256_ps512(_mm256_loadu_ps(xs)),
					_mm256_loadu_ps(xs + nbp), 1);
				__m512i x[2][4];

				for (int q = 0; q < 4; q++) {
					x[0][q] = _mm512_loadu_si512(xa + 64 * q);
					x[1][q] = _mm512_loadu_si512(xb + 64 * q);
				}
				for (int r = 0; r < R; r++) {
					__m512i a =
						dot512(_mm512_setzero_si512(), o[r].w[0], x[0][0]);
					__m512i b =
						dot512(_mm512_setzero_si512(), o[r].w[0], x[1][0]);

					for (int q = 1; q < 4; q++) {
						a = dot512(a, o[r].w[q], x[0][q]);
						b = dot512(b, o[r].w[q], x[1][q]);
					}
					const __m512i s =
						_mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44),
								 _mm512_shuffle_i64x2(a, b, 0xee));

					acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
								    _mm512_mul_ps(o[r].fa, dxp),
								    acc[r][t]);
					acc[r][t] = _mm512_fmadd_ps(o[r].fm, xsp, acc[r][t]);
				}
			}
			continue;
		}
		for (int t = 0; t < T; t++) {
			const uint8_t *xt = c->xt + (size_t)t * 32 * nbp + 256 * g;
			const __m512i x0 = _mm512_loadu_si512(xt), x1 = _mm512_loadu_si512(xt + 64);
			const __m512i x2 = _mm512_loadu_si512(xt + 128);
			const __m512i x3 = _mm512_loadu_si512(xt + 192);
			const __m512 dx =
				_mm512_broadcast_f32x8(_mm256_loadu_ps(c->dx + t * nbp + 8 * g));

			if (type == AW_TYPE_Q6_K) {
				const int32_t *c6 = c->c6 + ((size_t)t * (nbp / 8) + g) * 16;
				const __m512i i0 = _mm512_zextsi256_si512(
					_mm256_loadu_si256((const __m256i *)c6));
				const __m512i i1 = _mm512_zextsi256_si512(
					_mm256_loadu_si256((const __m256i *)(c6 + 8)));

				for (int r = 0; r < R; r++) {
					const __m512i a =
						dot512(dot512(i0, o[r].w[0], x0), o[r].w[1], x1);
					const __m512i b =
						dot512(dot512(i1, o[r].w[2], x2), o[r].w[3], x3);
					/* [a.lo + a.hi | b.lo + b.hi] */
					const __m512i s =
						_mm512_add_epi32(_mm512_shuffle_i64x2(a, b, 0x44),
								 _mm512_shuffle_i64x2(a, b, 0xee));

					acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
								    _mm512_mul_ps(o[r].fa, dx),
								    acc[r][t]);
				}
			} else { /* one token: [xs | 0] against [bias | bias] */
				const __m512 xs = _mm512_zextps256_ps512(
					_mm256_loadu_ps(c->xs + t * nbp + 8 * g));

				for (int r = 0; r < R; r++) {
					__m512i a = dot512(_mm512_setzero_si512(), o[r].w[0], x0);

					a = dot512(a, o[r].w[1], x1);
					a = dot512(a, o[r].w[2], x2);
					a = dot512(a, o[r].w[3], x3);
					acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a),
								    _mm512_mul_ps(o[r].fa, dx),
								    acc[r][t]);
					acc[r][t] = _mm512_fmadd_ps(o[r].fm, xs, acc[r][t]);
				}
			}
		}
	}
	if (type != AW_TYPE_Q6_K && T >= 2) {
		for (int t = 0; t < T; t += 2)
			for (int r = 0; r < R; r++) {
				y[(size_t)t * ldy + r0 + r] =
					hsum(_mm512_castps512_ps256(acc[r][t]));
				y[(size_t)(t + 1) * ldy + r0 + r] =
					hsum(_mm512_extractf32x8_ps(acc[r][t], 1));
			}
		return;
	}
	for (int t = 0; t < T; t++)
		for (int r = 0; r < R; r++)
			y[(size_t)t * ldy + r0 + r] = _mm512_reduce_add_ps(acc[r][t]);
}

typedef void gtile_fn(const struct aw_kern_mat *w, const struct gctx *c, uint32_t r0, float *y,
		      size_t ldy);

#define GTILE(name, R, T, type)                                                                    \
	static void name(const struct aw_kern_mat *w, const struct gctx *c, uint32_t r0, float *y, \
			 size_t ldy)                                                               \
	{                                                                                          \
		gtile(w, c, r0, y, ldy, R, T, type);                                               \
	}
/* tiles [R - 1][k]: k = 0, 1, 2, 3 for 8 (QT8 of the type), 4, 2, 1 tokens */
#define GTILES(pre, type, QT8)                                                                     \
	GTILE(pre##_28, 2, QT8, type)                                                              \
	GTILE(pre##_24, 2, 4, type)                                                                \
	GTILE(pre##_22, 2, 2, type)                                                                \
	GTILE(pre##_21, 2, 1, type)                                                                \
	GTILE(pre##_18, 1, QT8, type)                                                              \
	GTILE(pre##_14, 1, 4, type)                                                                \
	GTILE(pre##_12, 1, 2, type)                                                                \
	GTILE(pre##_11, 1, 1, type)                                                                \
	static gtile_fn *const pre[2][4] = {{pre##_18, pre##_14, pre##_12, pre##_11},              \
					    {pre##_28, pre##_24, pre##_22, pre##_21}};
GTILES(g_q4_k, AW_TYPE_Q4_K, 8)
GTILES(g_q5_k, AW_TYPE_Q5_K, 8)
GTILES(g_q6_k, AW_TYPE_Q6_K, 4) /* 8 tokens would spill */

/* Q6_K start values of a chunk: for token t < n and group g < nbp / 8,
 * c6[(t * nbp/8 + g) * 16 + i] = -32 * (sum of block 8g+i's quants 0..15),
 * [.. + 8 + i] the same of quants 16..31 (0 past nb). */
static void q6_starts(const struct aw_block_q8a *xq, uint32_t nb, uint32_t nbp, uint32_t n,
		      int32_t *c6)
{
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t b = 0; b < nbp; b++) {
			int32_t lo = 0, hi = 0;

			if (b < nb) {
				const struct aw_block_q8a *x = xq + (size_t)t * nb + b;

				for (int j = 0; j < 16; j++)
					lo += x->qs[j];
				hi = x->sum - lo;
			}
			c6[((size_t)t * (nbp / 8) + b / 8) * 16 + b % 8] = -32 * lo;
			c6[((size_t)t * (nbp / 8) + b / 8) * 16 + 8 + b % 8] = -32 * hi;
		}
}

/* Rows per block of the GEMM's loop: about 128 KiB of weights, which stay
 * in L2 while every tile of tokens of the chunk passes over them. */
static uint32_t gemm_rows(size_t row_size)
{
	uint32_t n = (uint32_t)((128u << 10) / row_size);

	return n < 2 ? 2 : n & ~1u;
}

static void gemm(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,
		 uint32_t r0, uint32_t r1)
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = nb;
	float dx[KQ_TAB2] __attribute__((aligned(64)));
	float xs[KQ_TAB2] __attribute__((aligned(64)));
	int32_t c6[2 * KQ_TAB2] __attribute__((aligned(64)));
	uint8_t xt[32 * KQ_TAB2] __attribute__((aligned(64)));
	const uint32_t chunk = KQ_TAB2 / nbp, rb = gemm_rows(w->row_size);
	gtile_fn *const(*tl)[4] = w->type == AW_TYPE_Q4_K   ? g_q4_k
				  : w->type == AW_TYPE_Q5_K ? g_q5_k
							    : g_q6_k;

	const uint32_t qt8 = w->type == AW_TYPE_Q6_K ? 4 : 8;

	if (chunk == 0 || w->cols % 256) {
		aw_kern_ref_matmul(w, in, y, ldy, r0, r1);
		return;
	}
	for (uint32_t c0 = 0; c0 < in->n_tok; c0 += chunk) {
		const uint32_t n = in->n_tok - c0 < chunk ? in->n_tok - c0 : chunk;
		const struct aw_block_q8a *xc = in->xq + (size_t)c0 * nb;

		aw_kern_kq_tables(xc, nb, nbp, n, dx, xs);
		aw_kern_kq_transpose(xc, nb, nbp, n, xt);
		if (w->type == AW_TYPE_Q6_K)
			q6_starts(xc, nb, nbp, n, c6);
		for (uint32_t b0 = r0; b0 < r1; b0 += rb) {
			const uint32_t be = r1 - b0 < rb ? r1 : b0 + rb;

			for (uint32_t t = 0; t < n;) {
				const int k = qt8 == 8 && n - t >= 8 ? 0
					      : n - t >= 4	     ? 1
					      : n - t >= 2	     ? 2
								     : 3;
				const struct gctx c = {xt + (size_t)t * 32 * nbp, dx + t * nbp,
						       xs + t * nbp, c6 + (size_t)t * 2 * nbp, nbp};
				float *yt = y + (size_t)(c0 + t) * ldy;
				uint32_t r = b0;

				/* pairs of rows only where a row block is read
				 * by several tiles of tokens (from L2 after the
				 * first): two interleaved row streams from memory
				 * ran at half the speed of one (batch 1 to 8) */
				for (; n >= 16 && r + 2 <= be; r += 2)
					tl[1][k](w, &c, r, yt, ldy);
				for (; r < be; r++)
					tl[0][k](w, &c, r, yt, ldy);
				t += k == 0 ? qt8 : 8u >> k;
			}
		}
	}
}

static aw_kern_matmul_fn kq_matmul;
AW_KERN_KQ_MATMUL(kq_matmul)

/* KQ8 K-quant matrices to the register-tiled GEMM, the rest as before. */
void FN(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy, uint32_t r0,
	uint32_t r1)
{
	if (w->layout == AW_KERN_LAYOUT_KQ8 && aw_kern_kq_repackable(w->type))
		gemm(w, in, y, ldy, r0, r1);
	else
		kq_matmul(w, in, y, ldy, r0, r1);
}
#else
AW_KERN_KQ_MATMUL(FN)
#endif
