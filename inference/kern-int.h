/* kern-int.h — internals shared by the kernel files (not a public contract).
 *
 * Addressing of the X16 layout (described in kern.h) and the tables that the
 * ISA-specific files define. Each vector file is compiled with its own target
 * flags; only kern.c decides which of their tables runs.
 */
#ifndef AW_KERN_INT_H
#define AW_KERN_INT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kern.h"

/* The scale of an activation block whose largest magnitude is 'amax' (>= 0,
 * finite): amax / 127 rounded to the nearest fp16 value (ties to even), kept
 * as a float, as llama.cpp stores the scale of its Q8_0 activation blocks;
 * the quants are x * (127 / amax) rounded to nearest (even). Rounding the
 * scale moves every dequantized value of the block by at most 2^-11 of it;
 * matching the peer's rounding keeps embeddings on quantized weights equal
 * to its (docs/BENCHMARKS.md, agentops). Below fp16's normal range the
 * scale is an fp16 subnormal (a multiple of 2^-24, as the peer's); beyond its
 * largest finite value (65504) it stays the float amax / 127 (the peer's
 * would be inf). */
static inline float aw_kern_q8a_scale(float amax)
{
	float d = amax / 127.0f;
	uint32_t u;

	if (d > 65504.0f)
		return d;
	if (d < 6.103515625e-05f) /* fp16 subnormals: multiples of 2^-24 */
		return rintf(d * 16777216.0f) / 16777216.0f;
	memcpy(&u, &d, 4);
	u = (u + 0xfffu + ((u >> 13) & 1u)) & ~0x1fffu; /* keep 10 mantissa bits */
	memcpy(&d, &u, 4);
	return d;
}

/* Bytes of one interleaved block (16 rows × 32 quants) without the scales. */
static inline size_t aw_kern_x16_qbytes(uint32_t type)
{
	return type == AW_TYPE_Q8_0 ? 512 : type == AW_TYPE_Q5_0 ? 320 : 256;
}

/* Whether 'type' has the X16 layout in this build (kern.h). */
static inline int aw_kern_x16_type(uint32_t type)
{
#if defined(__x86_64__)
	if (type == AW_TYPE_Q5_0)
		return 1;
#endif
	return type == AW_TYPE_Q8_0 || type == AW_TYPE_Q4_0;
}

/* Bytes of one group of 16 rows of nb blocks (quants then scales). */
static inline size_t aw_kern_x16_group_bytes(uint32_t type, uint32_t nb)
{
	return (size_t)nb * (aw_kern_x16_qbytes(type) + 32);
}

/* Quants of block b of group g. */
static inline const uint8_t *aw_kern_x16_q(const struct aw_kern_mat *m, uint32_t g, uint32_t b)
{
	const uint32_t nb = m->cols / AW_KERN_QK;

	return (const uint8_t *)m->data + g * aw_kern_x16_group_bytes(m->type, nb) +
	       b * aw_kern_x16_qbytes(m->type);
}

/* The 16 fp16 scales of block b of group g. */
static inline const aw_fp16 *aw_kern_x16_d(const struct aw_kern_mat *m, uint32_t g, uint32_t b)
{
	const uint32_t nb = m->cols / AW_KERN_QK;

	return (const aw_fp16 *)((const uint8_t *)m->data +
				 g * aw_kern_x16_group_bytes(m->type, nb) +
				 nb * aw_kern_x16_qbytes(m->type)) +
	       16 * b;
}

/* The 64-bit fifth-bit mask k (< 8) of block b of group g of a Q5_0x16
 * matrix (kern.h). */
static inline uint64_t aw_kern_x16_q5_mask(const struct aw_kern_mat *m, uint32_t g, uint32_t b,
					   uint32_t k)
{
	uint64_t v;

	memcpy(&v, aw_kern_x16_q(m, g, b) + 256 + 8 * k, 8);
	return v;
}

/* Weight types whose matmul reads activation blocks (struct aw_block_q8a). */
static inline int aw_kern_type_quantized(uint32_t t)
{
	return t == AW_TYPE_Q8_0 || t == AW_TYPE_Q4_0 || t == AW_TYPE_Q4_1 || t == AW_TYPE_Q5_0 ||
	       t == AW_TYPE_Q5_1 || t == AW_TYPE_Q4_K || t == AW_TYPE_Q5_K || t == AW_TYPE_Q6_K;
}

/* Quantized types with scales finer than the block or with a min term
 * (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): ROWS layout only; a vector table
 * without its own kernel for one of them calls aw_kern_ref_matmul. */
static inline int aw_kern_type_kq(uint32_t t)
{
	return aw_kern_type_quantized(t) && t != AW_TYPE_Q8_0 && t != AW_TYPE_Q4_0;
}

/* Address of KV row i. */
static inline const void *aw_kern_kv_row(const struct aw_kern_kv *kv, uint32_t i)
{
	return (const char *)kv->blocks[i / kv->block_rows] +
	       (size_t)(i % kv->block_rows) * kv->row_stride + kv->offset;
}

/* Addresses of KV rows i0 .. i0+n-1 into rows[]: one division for the run
 * instead of one per row (a division costs more than the row's dot product
 * at head_dim 64). */
static inline void aw_kern_kv_rows(const struct aw_kern_kv *kv, uint32_t i0, uint32_t n,
				   const void **rows)
{
	/* locals: the build has -fno-strict-aliasing, so each store to rows[]
	 * would otherwise reload kv's fields */
	const void *const *blocks = kv->blocks;
	const uint32_t br = kv->block_rows;
	const size_t stride = kv->row_stride, offset = kv->offset;
	uint32_t blk = i0 / br, in = i0 % br;
	const char *base = (const char *)blocks[blk] + offset;

	for (uint32_t j = 0; j < n; j++) {
		rows[j] = base + (size_t)in * stride;
		if (++in == br && j + 1 < n) {
			in = 0;
			base = (const char *)blocks[++blk] + offset;
		}
	}
}

#if defined(__x86_64__)
extern const struct aw_kern aw_kern_avx2;
extern const struct aw_kern aw_kern_avx512;
extern const struct aw_kern aw_kern_avx512vnni;
#endif
#if defined(__aarch64__)
extern const struct aw_kern aw_kern_neon;    /* kern-neon.c, level 0 */
extern const struct aw_kern aw_kern_dotprod; /* level 1: sdot */
extern const struct aw_kern aw_kern_i8mm;    /* level 2: sdot + smmla */
#endif

/* Reference kernels, exported so that vector tables can reuse one that they
 * do not specialise (and tests can call them). */
void aw_kern_ref_quant_q8a(const float *x, struct aw_block_q8a *y, size_t n);
void aw_kern_ref_matmul(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r0, uint32_t r1);
void aw_kern_ref_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps);
void aw_kern_ref_rope(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos, uint32_t n_heads,
		      const struct aw_kern_rope *rope);
void aw_kern_ref_softmax(float *x, size_t n);
void aw_kern_ref_attn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		      const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		      uint32_t head_dim, float scale);
void aw_kern_ref_silu_mul(float *y, const float *g, const float *u, size_t n);
void aw_kern_ref_add(float *y, const float *a, const float *b, size_t n);

/* Signed quant j (0..31) of block b of row r, and the block's scale, for
 * either layout of a Q8_0/Q4_0 matrix, or an X16 Q5_0 one (slow; the
 * reference's accessor). */
int aw_kern_ref_wq(const struct aw_kern_mat *m, uint32_t r, uint32_t b, uint32_t j);
float aw_kern_ref_wd(const struct aw_kern_mat *m, uint32_t r, uint32_t b);

/* 32-element block b of row r of a aw_kern_type_kq() matrix in the form
 * W[32b+j] = a[j/16] * q[j] + bias (see aw_kern_ref_matmul). */
void aw_kern_ref_kblock(const struct aw_kern_mat *m, uint32_t r, uint32_t b, int8_t q[32],
			float a[2], float *bias);

/* Rope frequencies freq[i] = base^(-2i/n_rot) / ff[i], i < n_rot/2, and the
 * angles of one position: cs[2i] = cos, cs[2i+1] = sin of pos * freq[i],
 * computed in double. */
void aw_kern_rope_freqs(double *freq, const struct aw_kern_rope *rope);
void aw_kern_rope_angles(float *cs, int32_t pos, const double *freq, uint32_t n_rot);
void aw_kern_rope_freqs_fast(double *freq, const struct aw_kern_rope *rope);

#endif
