/* quant.h — tensor element types, GGML block layouts and their reference
 * conversions.
 *
 * The numbering of enum aw_type is GGML's (it is what GGUF stores in each
 * tensor info). A block type packs 'block' elements into 'size' bytes; a row
 * of n elements of such a type is n/block blocks and n must be a multiple of
 * 'block'. The layouts below are bit-exact with ggml's:
 *
 *   Q8_0  OFFSET SIZE DESCRIPTION          Q4_0  OFFSET SIZE DESCRIPTION
 *         0      2    d (fp16 scale)             0      2    d (fp16 scale)
 *         2      32   qs[32] int8                2      16   qs[16]: element j in the low
 *                     x[j] = d * qs[j]                       nibble of qs[j], element j+16
 *                                                            in the high one; x = d*(q-8)
 *
 * The conversions here are the plain-C specification that the vector
 * kernels are tested against; they are not meant to be fast.
 */
#ifndef AW_QUANT_H
#define AW_QUANT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

enum aw_type {
	AW_TYPE_F32 = 0,
	AW_TYPE_F16 = 1,
	AW_TYPE_Q4_0 = 2,
	AW_TYPE_Q4_1 = 3,
	AW_TYPE_Q5_0 = 6,
	AW_TYPE_Q5_1 = 7,
	AW_TYPE_Q8_0 = 8,
	AW_TYPE_Q8_1 = 9,
	AW_TYPE_Q2_K = 10,
	AW_TYPE_Q3_K = 11,
	AW_TYPE_Q4_K = 12,
	AW_TYPE_Q5_K = 13,
	AW_TYPE_Q6_K = 14,
	AW_TYPE_Q8_K = 15,
	AW_TYPE_I8 = 24,
	AW_TYPE_I16 = 25,
	AW_TYPE_I32 = 26,
	AW_TYPE_I64 = 27,
	AW_TYPE_F64 = 28,
	AW_TYPE_BF16 = 30,
	AW_TYPE_COUNT = 40, /* upper bound of the numbering, not a type */
};

#define AW_QK8_0	32
#define AW_QK4_0	32
#define AW_QK_K		256
#define AW_QK4_1	32
#define AW_QK5_0	32
#define AW_QK5_1	32
#define AW_K_SCALE_SIZE 12 /* packed 6-bit scales and mins of Q4_K/Q5_K */

typedef uint16_t aw_fp16; /* IEEE 754 binary16 bits */
typedef uint16_t aw_bf16; /* bfloat16 bits */

struct aw_block_q8_0 {
	aw_fp16 d;	     /* scale */
	int8_t qs[AW_QK8_0]; /* quants */
};
static_assert(sizeof(struct aw_block_q8_0) == 34, "q8_0 block is 34 bytes");

struct aw_block_q4_0 {
	aw_fp16 d;		  /* scale */
	uint8_t qs[AW_QK4_0 / 2]; /* nibbles: j in low, j+16 in high */
};
static_assert(sizeof(struct aw_block_q4_0) == 18, "q4_0 block is 18 bytes");

/* Legacy fallbacks (32 elements; the nibble order of Q4_0: element j in the
 * low nibble of qs[j], element j+16 in the high one):
 *
 *   Q4_1  0  2   d (fp16)          Q5_0  0  2   d (fp16)         Q5_1  0  2   d
 *         2  2   m (fp16)                2  4   qh: bit j = 5th        2  2   m
 *         4  16  qs: x = d*q + m                bit of element j       4  4   qh
 *                                        6  16  qs: x = d*(q - 16)     8  16  qs: x = d*q + m
 */
struct aw_block_q4_1 {
	aw_fp16 d, m;
	uint8_t qs[AW_QK4_1 / 2];
};
static_assert(sizeof(struct aw_block_q4_1) == 20, "q4_1 block is 20 bytes");

struct aw_block_q5_0 {
	aw_fp16 d;
	uint8_t qh[4]; /* little-endian uint32: bit j = bit 4 of element j */
	uint8_t qs[AW_QK5_0 / 2];
};
static_assert(sizeof(struct aw_block_q5_0) == 22, "q5_0 block is 22 bytes");

struct aw_block_q5_1 {
	aw_fp16 d, m;
	uint8_t qh[4];
	uint8_t qs[AW_QK5_1 / 2];
};
static_assert(sizeof(struct aw_block_q5_1) == 24, "q5_1 block is 24 bytes");

/* K-quants: 256-element super-blocks.
 *
 * Q4_K (144 bytes): eight sub-blocks of 32, x = d*sc[s]*q - dmin*m[s], q 0..15.
 *   OFFSET SIZE
 *   0      2    d    (fp16) scale of the sub-block scales
 *   2      2    dmin (fp16) scale of the sub-block mins
 *   4      12   scales: 6-bit sc[8] and m[8], packed (see below)
 *   16     128  qs: elements 64c+l (l<32) in the low nibbles of qs[32c+l],
 *               elements 64c+32+l in the high nibbles; sub-block s = element/32
 * Q5_K (176 bytes): as Q4_K, then qh[32] at 16 and qs[128] at 48; bit s of
 *   qh[l] is bit 4 of element 32s+l (q 0..31).
 * Packing of scales[12] (sc, m 6-bit, s < 8):
 *   s < 4:  sc[s] = scales[s] & 63,           m[s] = scales[s+4] & 63
 *   s >= 4: sc[s] = (scales[s+4] & 15) | (scales[s-4] >> 6) << 4,
 *           m[s]  = (scales[s+4] >> 4) | (scales[s]   >> 6) << 4
 * Q6_K (210 bytes): sixteen sub-blocks of 16, x = d*sc[s]*(q - 32), q 0..63.
 *   0      128  ql: low 4 bits      element e = 128h + 32k + l (h<2, k<4, l<32):
 *   128    64   qh: high 2 bits       low = ql[64h + 32(k&1) + l] nibble (k<2 low, else high),
 *   192    16   scales int8           high = (qh[32h + l] >> 2k) & 3, s = 8h + 2k + l/16
 *   208    2    d (fp16)
 */
struct aw_block_q4_k {
	aw_fp16 d, dmin;
	uint8_t scales[AW_K_SCALE_SIZE];
	uint8_t qs[AW_QK_K / 2];
};
static_assert(sizeof(struct aw_block_q4_k) == 144, "q4_k block is 144 bytes");

struct aw_block_q5_k {
	aw_fp16 d, dmin;
	uint8_t scales[AW_K_SCALE_SIZE];
	uint8_t qh[AW_QK_K / 8];
	uint8_t qs[AW_QK_K / 2];
};
static_assert(sizeof(struct aw_block_q5_k) == 176, "q5_k block is 176 bytes");

struct aw_block_q6_k {
	uint8_t ql[AW_QK_K / 2];
	uint8_t qh[AW_QK_K / 4];
	int8_t scales[AW_QK_K / 16];
	aw_fp16 d;
};
static_assert(sizeof(struct aw_block_q6_k) == 210, "q6_k block is 210 bytes");

struct aw_type_info {
	const char *name; /* GGML's name: "f32", "q8_0", ... */
	uint32_t block;	  /* elements per block (1 for plain types) */
	uint32_t size;	  /* bytes per block */
};

/* Describe type 't', or return NULL if agentwire does not know its layout. */
const struct aw_type_info *aw_type_info(uint32_t t);

/* Name of type 't' ("q8_0"), or "unknown". */
const char *aw_type_name(uint32_t t);

/* Find a type by name (case-insensitive). Returns the type or -EINVAL. */
int aw_type_from_name(const char *name);

/* Bytes in a row of 'n' elements of type 't'; 0 if 't' is unknown or 'n' is
 * not a multiple of its block. */
size_t aw_type_row_size(uint32_t t, uint64_t n);

/* Scalar conversions, round-to-nearest-even, NaN preserved. */
float aw_fp16_to_f32(aw_fp16 h);
aw_fp16 aw_f32_to_fp16(float f);
float aw_bf16_to_f32(aw_bf16 h);
aw_bf16 aw_f32_to_bf16(float f);

/* Quantize 'n' floats (a multiple of the block) into 'dst', exactly as
 * ggml's reference quantizers do. */
void aw_quant_q8_0(const float *x, struct aw_block_q8_0 *dst, size_t n);
void aw_quant_q4_0(const float *x, struct aw_block_q4_0 *dst, size_t n);

/* Sub-block scale and min s (0..7) of a Q4_K/Q5_K scales[12] array. */
void aw_k_scale_min(const uint8_t *scales, int s, uint8_t *ret_sc, uint8_t *ret_m);

/* Quantizers for the legacy fallbacks (ggml's reference rounding) and the
 * K-quants. The K-quant quantizers are simple min/max fits, NOT ggml's
 * importance-weighted search: they write valid blocks (what a file needs)
 * with somewhat larger error than llama-quantize. */
void aw_quant_q4_1(const float *x, struct aw_block_q4_1 *dst, size_t n);
void aw_quant_q5_0(const float *x, struct aw_block_q5_0 *dst, size_t n);
void aw_quant_q5_1(const float *x, struct aw_block_q5_1 *dst, size_t n);
void aw_quant_q4_k(const float *x, struct aw_block_q4_k *dst, size_t n);
void aw_quant_q5_k(const float *x, struct aw_block_q5_k *dst, size_t n);
void aw_quant_q6_k(const float *x, struct aw_block_q6_k *dst, size_t n);

/* Load-time check of a row of 'n' elements of type 't': every fp16 scale
 * (d, m, dmin) of a block type is finite. Returns 0, -ERANGE at the first
 * NaN/Inf scale (*ret_block, if not NULL, its block index), or -EINVAL if the
 * type is unknown or n is not a multiple of its block. Plain types pass. */
int aw_quant_check_row(uint32_t t, const void *src, size_t n, size_t *ret_block);

/* Convert 'n' elements of type 't' at 'src' to floats. Returns 0, or -EINVAL
 * if the type has no reference dequantizer or n is not a multiple of its
 * block. */
int aw_dequant_row(uint32_t t, const void *src, float *dst, size_t n);

/* Quantize 'n' floats into a row of type 't' (F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K).
 * Returns 0 or -EINVAL. */
int aw_quant_row(uint32_t t, const float *src, void *dst, size_t n);

#endif
