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
		aw_kern_kq_block(src->type, (const uint8_t *)src->data + b * ti->size,
				 (uint8_t *)dst + b * ti->size, 0);
	*ret_m = *src;
	ret_m->layout = AW_KERN_LAYOUT_KQ8;
	ret_m->data = dst;
	return 0;
}
