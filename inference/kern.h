/* kern.h — compute kernels of the forward pass and their run-time dispatch.
 *
 * One table of function pointers, struct aw_kern, is chosen once at start-up
 * (aw_kern_select) from the CPU's features; workers call through it and never
 * test the CPU again. kern-ref.c is the specification: plain C, one loop per
 * kernel, the math in a comment. kern-avx2.c, kern-avx512.c (x86-64) and
 * kern-neon.c (aarch64) are vector versions of the same functions, each tested against the reference with a
 * tolerance derived from its arithmetic (tests/unit/test-kern.c).
 *
 * Matrix products.  Y[t][r] = sum_i X[t][i] * W[r][i] for tokens t < n_tok and
 * output rows r0 <= r < r1 (threads split a matrix by rows). W is a weight
 * matrix (struct aw_kern_mat) of type F32, F16, BF16, Q8_0 or Q4_0. For F32,
 * F16 and BF16 weights X is read as floats; for Q8_0 and Q4_0 weights X is
 * read as activation blocks (struct aw_block_q8a) that aw_kern->quant_q8a
 * produced once per token row, and the products are integer dot products of
 * 32-element blocks, scaled per block:
 *
 *     Y[t][r] = sum_b  dW[r][b] * dX[t][b] * sum_{j<32} qW[r][32b+j] * qX[t][32b+j]
 *
 * where qW is the signed weight quant (Q4_0: nibble - 8) and the inner sum is
 * an exact int32.
 *
 * Activation block (Q8A), 40 bytes, 32 elements:
 *
 *     OFFSET SIZE DESCRIPTION
 *     0      4    d    float scale = max|x| / 127 (0 for an all-zero block)
 *     4      4    sum  int32 sum of qs[] (serves the Q4_0 -8 and Q8_0 +128 offsets)
 *     8      32   qs   int8 quants in [-127, 127], qs[j] = rint(x[j] / d)
 *
 * Weight layouts.  AW_KERN_LAYOUT_ROWS is GGUF's: row r is row_size bytes at
 * data + r * row_size. AW_KERN_LAYOUT_X16 (Q8_0, Q4_0 and Q5_0; made by
 * aw_kern_repack) interleaves 16 rows so that one 64-byte vector holds four
 * consecutive quants of each of 16 rows, the shape vpdpbusd consumes with a
 * broadcast activation: rows are grouped by 16 (the last group padded with
 * zero rows), nb = cols / 32 blocks per row, and group g starts at
 * data + g * nb * 16 * block_bytes:
 *
 *   Q8_0x16 group   OFFSET        SIZE     DESCRIPTION
 *                   512*b         512      block b: byte [k][r][j] (k<8, r<16, j<4)
 *                                          = qs of row r, element 4k+j, XOR 0x80
 *                                          (unsigned: q + 128)
 *                   512*nb + 32*b 32       block b: fp16 scales d[r], r < 16
 *
 *   Q4_0x16 group   OFFSET        SIZE     DESCRIPTION
 *                   256*b         256      block b: byte [v][r][j] (v<4, r<16, j<4)
 *                                          low nibble = element 4v+j of row r,
 *                                          high nibble = element 16+4v+j (GGML's q,
 *                                          unsigned 0..15; value = d * (q - 8))
 *                   256*nb + 32*b 32       block b: fp16 scales d[r], r < 16
 *
 *   Q5_0x16 group   OFFSET        SIZE     DESCRIPTION
 *                   320*b         256      block b: nibbles as Q4_0x16's
 *                   320*b+256+8k  8        block b, k < 8: 64-bit mask, bit 4r+j
 *                                          (r<16, j<4) = bit 4 of element 4k+j of
 *                                          row r (GGML's qh bit 4k+j): the fifth
 *                                          bit of byte 4r+j of nibble vector k%4,
 *                                          low nibble if k < 4 (value = d * (q - 16))
 *                   320*nb + 32*b 32       block b: fp16 scales d[r], r < 16
 *
 * The Q5_0x16 group has the size of its 16 GGUF rows (22 bytes a block), so
 * the loader can repack it in place. x86-64 builds only: on aarch64
 * aw_kern_repack_size() gives 0 for Q5_0 and the NEON tables never see it.
 *
 * AW_KERN_LAYOUT_KQ8 (Q4_K, Q5_K, Q6_K; made by aw_kern_repack) keeps GGUF's
 * rows, row_size and super-blocks (header bytes, scales and d in place) and
 * reorders the quants inside each super-block so that byte 32m + 4i + j
 * (m < 8 for 8-bit data) holds element 4m + j of sub-block i (32 elements
 * per sub-block): one 32-byte vector then holds the same 4 elements of all
 * 8 sub-blocks, and a dot product against activations transposed alike
 * sums each sub-block in its own lane.
 *
 *   Q4_K  16   128  qs: byte 32k + 4i + j (k < 4): low nibble = element
 *                   4k + j of sub-block i, high nibble = element 16 + 4k + j
 *   Q5_K  16   32   qh: bit m of byte 4i + j = bit 4 of element 4m + j of
 *                   sub-block i;  48  128  qs as Q4_K
 *   Q6_K  0    128  ql: low 4 bits, as Q4_K's qs
 *         128  64   qh: bits 2f..2f+1 of byte 32h + 4i + j (h < 2, f < 4) =
 *                   bits 4-5 of element 4(h + 2f) + j of sub-block i
 *
 * With unsigned weights and signed activations a vpdpbusd adds
 * sum (q + off) * x = sum q * x + off * sum x, so an integer accumulator that
 * starts at -off * qX.sum needs no correction afterwards (off = 128 for Q8_0,
 * 8 for Q4_0 whose stored nibble is its signed quant + 8).
 *
 * Attention reads the KV cache through struct aw_kern_kv: a list of block
 * pointers holding block_rows positions each, so a paged cache can hand its
 * block table over directly. K and V rows are F32 or F16.
 *
 * Thread safety: every kernel is reentrant; none allocates, logs or makes a
 * system call.
 */
#ifndef AW_KERN_H
#define AW_KERN_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "quant.h"

#define AW_KERN_QK 32 /* elements per activation block */
/* Alignment of the buffers the kernels stream through (repacked weights,
 * scratch activations, KV blocks): the widest vector the kernels load, an
 * AVX-512 zmm (NEON's q registers need 16). A property of the vectors, not
 * of the cache line or the page, which differ between CPUs (4 to 64 KiB pages
 * on Arm servers: ask sysconf(_SC_PAGESIZE)). */
#define AW_KERN_ALIGN 64
#define AW_KERN_TILE                                                                               \
	16 /* rows per interleaved group; r0/r1 of a matmul on X16 weights
			 * are multiples of it (r1 may also be the row count) */

struct aw_block_q8a {
	float d;	       /* scale */
	int32_t sum;	       /* sum of qs[] */
	int8_t qs[AW_KERN_QK]; /* quants, [-127, 127] */
};
static_assert(sizeof(struct aw_block_q8a) == 40, "q8a block is 40 bytes");

enum aw_kern_layout {
	AW_KERN_LAYOUT_ROWS = 0, /* GGUF row-major */
	AW_KERN_LAYOUT_X16 = 1,	 /* 16-row interleave (Q8_0, Q4_0, Q5_0), see above */
	AW_KERN_LAYOUT_KQ8 = 2,	 /* sub-block interleave (Q4_K, Q5_K, Q6_K), see above */
};

/* A weight matrix W[rows][cols]. Describes memory the caller owns. */
struct aw_kern_mat {
	uint32_t type;	  /* AW_TYPE_F32, F16, BF16, Q8_0 or Q4_0 */
	uint32_t layout;  /* enum aw_kern_layout */
	uint32_t rows;	  /* output rows */
	uint32_t cols;	  /* input columns; a multiple of 32 for Q8_0/Q4_0 */
	size_t row_size;  /* bytes per row (ROWS layout) */
	const void *data; /* rows; or groups of 16 rows (X16) */
};

/* Input of a matrix product: n_tok rows of n_in values. */
struct aw_kern_in {
	uint32_t n_tok;		       /* tokens (rows of X) */
	uint32_t n_in;		       /* values per token; equals the matrix's cols */
	const float *x;		       /* (n_tok, n_in) floats: read for F32/F16/BF16 */
	const struct aw_block_q8a *xq; /* (n_tok, n_in/32) blocks: read for Q8_0/Q4_0 */
};

/* A sequence of K (or V) rows in blocks: row i (position i) is at
 * (char *)blocks[i / block_rows] + (i % block_rows) * row_stride + offset. */
struct aw_kern_kv {
	const void *const *blocks; /* block pointers */
	uint32_t block_rows;	   /* positions per block (> 0) */
	uint32_t type;		   /* AW_TYPE_F32 or AW_TYPE_F16 */
	size_t row_stride;	   /* bytes between positions in a block */
	size_t offset;		   /* bytes from a row's start to this KV head */
};

enum aw_kern_rope_mode {
	AW_KERN_ROPE_NORM = 0, /* llama (GGUF's permuted Q/K): rotate pairs (x[2i], x[2i+1]) */
	AW_KERN_ROPE_NEOX = 1, /* rotate pairs (x[i], x[i + n_rot/2]) */
};

struct aw_kern_rope {
	uint32_t mode;		   /* enum aw_kern_rope_mode */
	uint32_t head_dim;	   /* values per head */
	uint32_t n_rot;		   /* leading values rotated per head (even, <= head_dim) */
	float freq_base;	   /* theta base (rope.freq_base, 10000 by default) */
	const float *freq_factors; /* NULL, or n_rot/2 divisors of the frequencies
				    * (Llama 3 rope_freqs.weight) */
};

/* Quantize 'n' floats (a multiple of 32) into n/32 activation blocks. */
typedef void aw_kern_quant_fn(const float *x, struct aw_block_q8a *y, size_t n);

/* y[t * ldy + r] = sum_i X[t][i] * W[r][i] for t < in->n_tok, r0 <= r < r1.
 * in->n_in == w->cols; Q8_0/Q4_0 weights read in->xq, others in->x. On X16
 * weights r0 is a multiple of 16 and r1 a multiple of 16 or w->rows. */
typedef void aw_kern_matmul_fn(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			       size_t ldy, uint32_t r0, uint32_t r1);

/* y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], i < n. y may equal x. */
typedef void aw_kern_rmsnorm_fn(float *y, const float *x, const float *w, size_t n, float eps);

/* Rotate in place the first n_rot values of each of n_heads heads of n_tok
 * tokens: token t's heads start at x + t * ldx, head_dim apart, at position
 * pos[t]. Pair (a, b) of index i < n_rot/2 turns by the angle
 * pos * freq_base^(-2i/n_rot) / ff[i] (ff = 1 without factors):
 * (a, b) <- (a cos - b sin, a sin + b cos). */
typedef void aw_kern_rope_fn(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos,
			     uint32_t n_heads, const struct aw_kern_rope *rope);

/* In place: x[i] = exp(x[i] - max) / sum_j exp(x[j] - max), i < n. */
typedef void aw_kern_softmax_fn(float *x, size_t n);

/* Attention of n_q query heads that share one KV head (GQA), over positions
 * 0..n_kv-1 (the caller applies causality through n_kv):
 *   s[h][i] = scale * q[h] . K[i];  p[h] = softmax(s[h]);  out[h] = sum_i p[h][i] V[i]
 * q and out are (n_q, head_dim) floats, rows ldq and ldo apart. n_kv >= 1. */
typedef void aw_kern_attn_fn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
			     const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
			     uint32_t head_dim, float scale);

/* y[i] = silu(g[i]) * u[i] = g[i] / (1 + exp(-g[i])) * u[i]. y may equal g or u. */
typedef void aw_kern_silu_mul_fn(float *y, const float *g, const float *u, size_t n);

/* y[i] = a[i] + b[i]. y may equal a or b. */
typedef void aw_kern_add_fn(float *y, const float *a, const float *b, size_t n);

struct aw_kern {
	const char *name; /* "ref", "avx2", "avx512", "avx512vnni", "neon", "dotprod", "i8mm" */
	aw_kern_quant_fn *quant_q8a;
	aw_kern_matmul_fn *matmul;
	aw_kern_rmsnorm_fn *rmsnorm;
	aw_kern_rope_fn *rope;
	aw_kern_softmax_fn *softmax;
	aw_kern_attn_fn *attn;
	aw_kern_silu_mul_fn *silu_mul;
	aw_kern_add_fn *add;
};

/* The best table this CPU runs. 'force' (NULL for automatic) names one
 * variant ("ref"; x86-64: "avx2", "avx512", "avx512vnni"; aarch64: "neon",
 * "dotprod", "i8mm"); otherwise the environment
 * variable AW_ISA, if set, caps the choice at the named variant (the best one
 * at or below it). Returns NULL if 'force' is unknown or the CPU lacks it
 * (AW_ISA naming an unknown variant is ignored, so the default stays usable). */
const struct aw_kern *aw_kern_select(const char *force);

/* Variant i of all compiled in, best first (i = 0, 1, ... until NULL), and
 * whether this CPU runs it. */
const struct aw_kern *aw_kern_variant(unsigned i, int *ret_supported);

/* The reference table (always available). */
extern const struct aw_kern aw_kern_ref;

/* Describe W: fills *ret_m for a ROWS-layout matrix. Returns 0, or -EINVAL for
 * a type other than F32/F16/BF16/Q8_0/Q4_0 or cols not a multiple of its block. */
int aw_kern_mat_init(uint32_t type, uint32_t rows, uint32_t cols, const void *data,
		     struct aw_kern_mat *ret_m);

/* Bytes aw_kern_repack() writes for a matrix of this type and shape (X16:
 * rows rounded up to 16; KQ8: the GGUF size), or 0 if the type has neither
 * layout (X16: Q8_0, Q4_0 and, on x86-64, Q5_0; KQ8: Q4_K, Q5_K, Q6_K). */
size_t aw_kern_repack_size(uint32_t type, uint32_t rows, uint32_t cols);

/* Repack the ROWS matrix 'src' into X16 or KQ8 layout at 'dst'
 * (aw_kern_repack_size() bytes, 64-byte alignment recommended, not
 * overlapping src) and describe it in *ret_m (data = dst). Returns 0 or
 * -EINVAL. */
int aw_kern_repack(const struct aw_kern_mat *src, void *dst, struct aw_kern_mat *ret_m);

/* Describe 'data', already in the layout aw_kern_repack() makes from the
 * ROWS matrix 'src' (of which only type and shape are read), in *ret_m. */
void aw_kern_mat_prepacked(const struct aw_kern_mat *src, const void *data,
			   struct aw_kern_mat *ret_m);

/* Dequantize row r of W (either layout) into cols floats. */
void aw_kern_mat_row(const struct aw_kern_mat *m, uint32_t r, float *dst);

/* Bytes of n_tok rows of activation blocks for n_in values. */
static inline size_t aw_kern_q8a_size(uint32_t n_tok, uint32_t n_in)
{
	return (size_t)n_tok * (n_in / AW_KERN_QK) * sizeof(struct aw_block_q8a);
}

#endif
