/* kern-kq.c — the KQ8 layout of Q4_K, Q5_K and Q6_K rows (kern.h): each
 * 256-element super-block keeps its size, scales and place in the row, and
 * its quants are reordered so that 4 consecutive bytes hold 4 consecutive
 * elements of one sub-block and 32 consecutive bytes hold the same 4
 * elements of all 8 sub-blocks. An int8 dot product against activations
 * transposed the same way (aw_kern_kq_transpose) then accumulates each
 * sub-block in its own 32-bit lane, and no horizontal reduction is needed.
 * Plain C: run once at load (or by the loader while later reads are in
 * flight), and back for aw_kern_mat_row and the reference.
 */
#include <errno.h>
#include <string.h>
#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "kern-kq-int.h"

/* Position of element e (< 256) of a super-block: sub-block i = e / 32,
 * l = e % 32; in KQ8, element l = 16h + 4k + j (h < 2, k < 4, j < 4) of
 * sub-block i sits in byte 32k + 4i + j, high nibble if h. */
static inline uint32_t kq8_byte(uint32_t e, uint32_t *ret_hi)
{
	const uint32_t i = e / 32, l = e % 32;

	*ret_hi = l / 16;
	return 32 * ((l % 16) / 4) + 4 * i + l % 4;
}

/* Position of element e of a Q4_K qs / Q6_K ql array in GGUF order:
 * Q4_K: element 64c + 32h + l in nibble h of byte 32c + l; Q6_K: element
 * 128H + 32k + l in nibble k/2 of byte 64H + 32(k&1) + l. */
static inline uint32_t gguf_byte(uint32_t e, int q6, uint32_t *ret_hi)
{
	if (q6) {
		const uint32_t H = e / 128, k = (e % 128) / 32;

		*ret_hi = k / 2;
		return 64 * H + 32 * (k & 1) + e % 32;
	}
	*ret_hi = (e / 32) & 1;
	return 32 * (e / 64) + e % 32;
}

/* Q4_K/Q6_K low-4-bit array (128 bytes) of GGUF order -> KQ8 (dir 0) or
 * back (dir 1). */
static void nibbles(const uint8_t *src, uint8_t *dst, int q6, int dir)
{
	uint8_t v[256];
	uint32_t hi;

	for (uint32_t e = 0; e < 256; e++) { /* to element order */
		const uint32_t byte = dir == 0 ? gguf_byte(e, q6, &hi) : kq8_byte(e, &hi);

		v[e] = hi ? src[byte] >> 4 : src[byte] & 15;
	}
	memset(dst, 0, 128);
	for (uint32_t e = 0; e < 256; e++) {
		const uint32_t byte = dir == 1 ? gguf_byte(e, q6, &hi) : kq8_byte(e, &hi);

		dst[byte] |= (uint8_t)(v[e] << (4 * hi));
	}
}

/* Q5_K's qh (32 bytes; GGUF: bit i of qh[l] = bit 4 of element 32i + l;
 * KQ8: bit f of byte 4i + j = bit 4 of element 4f + j of sub-block i) */
static void q5_high(const uint8_t *src, uint8_t *dst, int dir)
{
	uint8_t bit[256];

	for (uint32_t e = 0; e < 256; e++) {
		const uint32_t i = e / 32, l = e % 32;

		bit[e] = dir == 0 ? src[l] >> i & 1 : src[4 * i + l % 4] >> (l / 4) & 1;
	}
	memset(dst, 0, 32);
	for (uint32_t e = 0; e < 256; e++) {
		const uint32_t i = e / 32, l = e % 32;

		if (dir == 0)
			dst[4 * i + l % 4] |= (uint8_t)(bit[e] << (l / 4));
		else
			dst[l] |= (uint8_t)(bit[e] << i);
	}
}

/* Q6_K's qh (64 bytes; GGUF: element 128H + 32k + l in bits 2k of
 * qh[32H + l]; KQ8: element 4m + j of sub-block i (m < 8) in bits 2(m/2) of
 * byte 32(m%2) + 4i + j) */
static void q6_high(const uint8_t *src, uint8_t *dst, int dir)
{
	uint8_t v[256];

	for (uint32_t e = 0; e < 256; e++) {
		const uint32_t H = e / 128, k = (e % 128) / 32, l = e % 32;
		const uint32_t i = e / 32, m = l / 4, j = l % 4;

		v[e] = dir == 0 ? src[32 * H + l] >> (2 * k) & 3
				: src[32 * (m % 2) + 4 * i + j] >> (2 * (m / 2)) & 3;
	}
	memset(dst, 0, 64);
	for (uint32_t e = 0; e < 256; e++) {
		const uint32_t H = e / 128, k = (e % 128) / 32, l = e % 32;
		const uint32_t i = e / 32, m = l / 4, j = l % 4;

		if (dir == 0)
			dst[32 * (m % 2) + 4 * i + j] |= (uint8_t)(v[e] << (2 * (m / 2)));
		else
			dst[32 * H + l] |= (uint8_t)(v[e] << (2 * k));
	}
}

void aw_kern_kq_block(uint32_t type, const uint8_t *src, uint8_t *dst, int dir)
{
	switch (type) {
	case AW_TYPE_Q4_K:
		memcpy(dst, src, 16);
		nibbles(src + 16, dst + 16, 0, dir);
		return;
	case AW_TYPE_Q5_K:
		memcpy(dst, src, 16);
		q5_high(src + 16, dst + 16, dir);
		nibbles(src + 48, dst + 48, 0, dir);
		return;
	default: /* Q6_K */
		nibbles(src, dst, 1, dir);
		q6_high(src + 128, dst + 128, dir);
		memcpy(dst + 192, src + 192, 18);
		return;
	}
}

/* The same conversion (GGUF -> KQ8) a 32-bit word at a time: every move
 * above takes 4 consecutive elements of one sub-block (j < 4) to 4
 * consecutive bytes, so a word of output is a few masks and shifts of
 * words of input. What the loader runs at load; aw_kern_kq_block() above
 * is its specification (tests/unit/test-kquant.c compares them). */
static inline uint32_t ld32(const uint8_t *p)
{
	uint32_t w;

	memcpy(&w, p, 4);
	return w;
}

static inline void st32(uint8_t *p, uint32_t w)
{
	memcpy(p, &w, 4);
}

/* KQ8 word (k, i) of a 4-bit array: low nibbles = elements 4k..4k+3 of
 * sub-block i, high = 16+4k..; sub-block i's element l is nibble 'hi' of
 * GGUF byte base + l. */
static inline void nibbles_fast(const uint8_t *src, uint8_t *dst, int q6)
{
#if defined(__x86_64__)
	/* SSE2 (every x86-64): v[i] = the 4 output words of sub-block i
	 * (k = 0..3), then a 4 x 8 transpose of 32-bit words */
	const __m128i m4 = _mm_set1_epi8(0x0f);
	__m128i v[8];

	for (uint32_t i = 0; i < 8; i++) {
		const uint32_t base = q6 ? 64 * (i / 4) + 32 * (i & 1) : 32 * (i / 2);
		const int hi = q6 ? (i % 4) / 2 : (int)(i & 1);
		__m128i a = _mm_loadu_si128((const __m128i *)(src + base));
		__m128i b = _mm_loadu_si128((const __m128i *)(src + base + 16));

		if (hi) {
			a = _mm_srli_epi16(a, 4);
			b = _mm_srli_epi16(b, 4);
		}
		v[i] = _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(b, m4), 4));
	}
	for (uint32_t h = 0; h < 2; h++) { /* sub-blocks 4h .. 4h + 3 */
		const __m128i t0 = _mm_unpacklo_epi32(v[4 * h], v[4 * h + 1]);
		const __m128i t1 = _mm_unpackhi_epi32(v[4 * h], v[4 * h + 1]);
		const __m128i t2 = _mm_unpacklo_epi32(v[4 * h + 2], v[4 * h + 3]);
		const __m128i t3 = _mm_unpackhi_epi32(v[4 * h + 2], v[4 * h + 3]);

		_mm_storeu_si128((__m128i *)(dst + 0 + 16 * h), _mm_unpacklo_epi64(t0, t2));
		_mm_storeu_si128((__m128i *)(dst + 32 + 16 * h), _mm_unpackhi_epi64(t0, t2));
		_mm_storeu_si128((__m128i *)(dst + 64 + 16 * h), _mm_unpacklo_epi64(t1, t3));
		_mm_storeu_si128((__m128i *)(dst + 96 + 16 * h), _mm_unpackhi_epi64(t1, t3));
	}
	return;
#endif
	for (uint32_t i = 0; i < 8; i++) {
		const uint32_t base = q6 ? 64 * (i / 4) + 32 * (i & 1) : 32 * (i / 2);
		const uint32_t sh = q6 ? 4 * ((i % 4) / 2) : 4 * (i & 1);

		for (uint32_t k = 0; k < 4; k++) {
			const uint32_t a = ld32(src + base + 4 * k) >> sh & 0x0f0f0f0fu;
			const uint32_t b = ld32(src + base + 16 + 4 * k) >> sh & 0x0f0f0f0fu;

			st32(dst + 32 * k + 4 * i, a | b << 4);
		}
	}
}

void aw_kern_kq_block_fast(uint32_t type, const uint8_t *src, uint8_t *dst)
{
	switch (type) {
	case AW_TYPE_Q4_K:
		memcpy(dst, src, 16);
		nibbles_fast(src + 16, dst + 16, 0);
		return;
	case AW_TYPE_Q5_K: {
		uint32_t w[8];

		memcpy(dst, src, 16);
		/* KQ8 word i: bit m of byte j = bit i of GGUF qh[4m + j] */
		for (uint32_t m = 0; m < 8; m++)
			w[m] = ld32(src + 16 + 4 * m);
		for (uint32_t i = 0; i < 8; i++) {
			uint32_t o = 0;

			for (uint32_t m = 0; m < 8; m++)
				o |= (w[m] >> i & 0x01010101u) << m;
			st32(dst + 16 + 4 * i, o);
		}
		nibbles_fast(src + 48, dst + 48, 0);
		return;
	}
	default: /* Q6_K */
		nibbles_fast(src, dst, 1);
		/* KQ8 word (h, i): field f of byte j = bits 4-5 of element
		 * 4(h + 2f) + j of sub-block i = field i % 4 of GGUF
		 * qh[32(i / 4) + 4(h + 2f) + j] */
		for (uint32_t h = 0; h < 2; h++)
			for (uint32_t i = 0; i < 8; i++) {
				const uint8_t *q = src + 128 + 32 * (i / 4) + 4 * h;
				uint32_t o = 0;

				for (uint32_t f = 0; f < 4; f++)
					o |= (ld32(q + 8 * f) >> (2 * (i % 4)) & 0x03030303u)
					     << (2 * f);
				st32(dst + 128 + 32 * h + 4 * i, o);
			}
		memcpy(dst + 192, src + 192, 18);
		return;
	}
}

int aw_kern_kq_repackable(uint32_t type)
{
	return type == AW_TYPE_Q4_K || type == AW_TYPE_Q5_K || type == AW_TYPE_Q6_K;
}

int aw_kern_kq_repack(const struct aw_kern_mat *src, void *dst, struct aw_kern_mat *ret_m)
{
	const struct aw_type_info *ti = aw_type_info(src->type);

	if (!aw_kern_kq_repackable(src->type) || src->layout != AW_KERN_LAYOUT_ROWS ||
	    src->cols % 256)
		return -EINVAL;
	const size_t nblk = (size_t)src->rows * (src->cols / 256);

	for (size_t b = 0; b < nblk; b++)
		aw_kern_kq_block_fast(src->type, (const uint8_t *)src->data + b * ti->size,
				      (uint8_t *)dst + b * ti->size);
	*ret_m = *src;
	ret_m->layout = AW_KERN_LAYOUT_KQ8;
	ret_m->data = dst;
	return 0;
}
