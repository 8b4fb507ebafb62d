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

#define AW_QK8_0 32
#define AW_QK4_0 32
#define AW_QK_K	 256

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

/* Convert 'n' elements of type 't' at 'src' to floats. Returns 0, or -EINVAL
 * if the type has no reference dequantizer or n is not a multiple of its
 * block. */
int aw_dequant_row(uint32_t t, const void *src, float *dst, size_t n);

/* Quantize 'n' floats into a row of type 't' (F32, F16, BF16, Q8_0, Q4_0).
 * Returns 0 or -EINVAL. */
int aw_quant_row(uint32_t t, const float *src, void *dst, size_t n);

#endif
