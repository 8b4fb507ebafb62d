/* kern-kq-int.h — vector matmuls of the block types with sub-block scales or a
 * min term (Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; aw_kern_type_kq()), shared
 * by the ISA tables (internal, not a public contract).
 *
 * Same contract as aw_kern_matmul_fn on a ROWS-layout matrix of one of those
 * types, or a KQ8 one (Q4_K, Q5_K, Q6_K; kern.h): y[t * ldy + r] = sum_i X[t][i] * W[r][i] for t < in->n_tok,
 * r0 <= r < r1, X read as activation blocks (in->xq). kern-kq-x86.c is built
 * once per x86 table (avx2, avx512, avx512vnni) and kern-kq-neon.c once per
 * Arm level (neon, dotprod, i8mm); each table's matmul hands these types
 * over here.
 *
 * The form (every ISA): weights are taken 256 elements at a time (a K-quant
 * super-block, or 8 legacy blocks), decoded once per row into 8 vectors of
 * 32 small integers, and for each token of a tile of up to 4 the 8 integer
 * dot products with the activation blocks are reduced to one vector holding
 * one exact int32 per 32-element block (two per block for Q6_K's 16-wide
 * scales). On KQ8 weights no reduction is needed: the activations are
 * transposed the same way once per call, and 8 dot products accumulate each
 * sub-block in its own lane. Then, per group of 8 blocks and token, in float:
 *
 *     acc += S[b] * (a[b] * dX[b])  +  bias[b] * (dX[b] * sumX[b])
 *
 * with a = d * sc (K-quants) or d (legacy), bias = -dmin * m (Q4_K, Q5_K),
 * m (Q4_1, Q5_1) or none; dX[b] and dX[b] * sumX[b] are tabulated once per
 * token, so the min term costs one fma per 8 blocks and no pass over the
 * weights. Q5_0 (q - 16) and Q6_K (q - 32) are signed: their magnitudes
 * multiply activations that carry the weight's sign (|w| * sign(x, w)).
 * Integer sums are exact; the float evaluation differs from kern-ref.c's
 * only in rounding order and is tested against a bound derived from it
 * (tests/unit/test-kquant.c).
 */
#ifndef AW_KERN_KQ_INT_H
#define AW_KERN_KQ_INT_H

#include <string.h>

#include "kern-int.h"

#if defined(__x86_64__)
void aw_kern_kq_matmul_avx2(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			    size_t ldy, uint32_t r0, uint32_t r1);
void aw_kern_kq_matmul_avx512(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			      size_t ldy, uint32_t r0, uint32_t r1);
void aw_kern_kq_matmul_avx512vnni(const struct aw_kern_mat *w, const struct aw_kern_in *in,
				  float *y, size_t ldy, uint32_t r0, uint32_t r1);
#endif
#if defined(__aarch64__)
void aw_kern_kq_matmul_neon(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			    size_t ldy, uint32_t r0, uint32_t r1);
void aw_kern_kq_matmul_dotprod(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			       size_t ldy, uint32_t r0, uint32_t r1);
void aw_kern_kq_matmul_i8mm(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			    size_t ldy, uint32_t r0, uint32_t r1);
#endif

/* Tables of one chunk of tokens: for token t < n and block b < nbp (nb
 * rounded up to 8, zero past nb): dx[t * nbp + b] = dX, xs[..] = dX * sumX. */
static inline void aw_kern_kq_tables(const struct aw_block_q8a *xq, uint32_t nb, uint32_t nbp,
				     uint32_t n, float *dx, float *xs)
{
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t b = 0; b < nbp; b++) {
			const struct aw_block_q8a *x = xq + (size_t)t * nb + b;

			dx[t * nbp + b] = b < nb ? x->d : 0.0f;
			xs[t * nbp + b] = b < nb ? x->d * (float)x->sum : 0.0f;
		}
}

/* Floats in each of the two tables of a chunk (16 KiB of stack together,
 * plus 64 KiB of transposed quants). */
#define AW_KERN_KQ_TAB 2048

/* Rows per block of the driver's loop: a block's rows stay in cache while
 * every chunk of tokens passes over them. */
#define AW_KERN_KQ_ROWS 64

/* KQ8 activations: quant bytes 4m..4m+3 (m < 8) of block 8g + i of each
 * token at xt + t * 32 * nbp + 256 g + 32 m + 4 i (zero past nb), the order
 * of a KQ8 super-block's quants (kern.h). */
static inline void aw_kern_kq_transpose(const struct aw_block_q8a *xq, uint32_t nb, uint32_t nbp,
					uint32_t n, uint8_t *xt)
{
	for (uint32_t t = 0; t < n; t++)
		for (uint32_t b = 0; b < nbp; b++) {
			uint8_t *o = xt + (size_t)t * 32 * nbp + 256 * (b / 8) + 4 * (b % 8);

			for (uint32_t m = 0; m < 8; m++) {
				if (b < nb)
					memcpy(o + 32 * m, xq[(size_t)t * nb + b].qs + 4 * m, 4);
				else
					memset(o + 32 * m, 0, 4);
			}
		}
}

/* Inputs of one tile (a row against T consecutive tokens), at its first
 * token. */
struct aw_kern_kq_ctx {
	const struct aw_block_q8a *xq; /* activation blocks, token stride nb */
	const float *dx, *xs;	       /* aw_kern_kq_tables(), token stride nbp */
	const uint8_t *xt;	       /* KQ8 weights: aw_kern_kq_transpose(); else NULL */
	uint32_t nbp;		       /* blocks per token rounded up to 8 */
};

typedef void aw_kern_kq_tile_fn(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c,
				uint32_t r, float *y, size_t ldy);

/* The loop every ISA shares: rows in blocks of AW_KERN_KQ_ROWS; for each
 * block, tokens in chunks whose tables fit the stack (built per chunk: a
 * cost of about one row's work per block), and each row of the block
 * against tiles of 4, 2 and 1 tokens (tile[0], tile[1], tile[2]), so a
 * block of rows is read from memory once. Rows too long for the tables
 * (more than 65536 columns) go to the reference. */
static inline void aw_kern_kq_drive(const struct aw_kern_mat *w, const struct aw_kern_in *in,
				    float *y, size_t ldy, uint32_t r0, uint32_t r1,
				    aw_kern_kq_tile_fn *const tile[3])
{
	const uint32_t nb = w->cols / AW_KERN_QK, nbp = (nb + 7) / 8 * 8;
	const int kq8 = w->layout == AW_KERN_LAYOUT_KQ8;
	float dx[AW_KERN_KQ_TAB] __attribute__((aligned(64)));
	float xs[AW_KERN_KQ_TAB] __attribute__((aligned(64)));
	uint8_t xt[32 * AW_KERN_KQ_TAB] __attribute__((aligned(64)));
	uint32_t chunk = AW_KERN_KQ_TAB / nbp;

	if (chunk == 0) {
		aw_kern_ref_matmul(w, in, y, ldy, r0, r1);
		return;
	}
	if (chunk > 4)
		chunk &= ~3u;
	for (uint32_t rb = r0; rb < r1; rb += AW_KERN_KQ_ROWS) {
		const uint32_t re = r1 - rb < AW_KERN_KQ_ROWS ? r1 : rb + AW_KERN_KQ_ROWS;

		for (uint32_t c0 = 0; c0 < in->n_tok; c0 += chunk) {
			const uint32_t n = in->n_tok - c0 < chunk ? in->n_tok - c0 : chunk;
			const struct aw_block_q8a *xc = in->xq + (size_t)c0 * nb;

			aw_kern_kq_tables(xc, nb, nbp, n, dx, xs);
			if (kq8)
				aw_kern_kq_transpose(xc, nb, nbp, n, xt);
			for (uint32_t r = rb; r < re; r++) {
				uint32_t t = 0;

				while (t < n) {
					const int k = n - t >= 4 ? 0 : n - t >= 2 ? 1 : 2;
					const struct aw_kern_kq_ctx c = {
						xc + (size_t)t * nb, dx + t * nbp, xs + t * nbp,
						kq8 ? xt + (size_t)t * 32 * nbp : NULL, nbp};

					tile[k](w, &c, r, y + (size_t)(c0 + t) * ldy, ldy);
					t += k == 0 ? 4 : k == 1 ? 2 : 1;
				}
			}
		}
	}
}

/* KQ8 layout (kern-kq.c): whether 'type' has it, and block conversion of
 * one super-block from GGUF order (dir 0) or back (dir 1); src and dst do
 * not overlap. */
int aw_kern_kq_repackable(uint32_t type);
void aw_kern_kq_block(uint32_t type, const uint8_t *src, uint8_t *dst, int dir);
/* aw_kern_kq_block(type, src, dst, 0), a word at a time (the repack's). */
void aw_kern_kq_block_fast(uint32_t type, const uint8_t *src, uint8_t *dst);

/* Repack a ROWS Q4_K/Q5_K/Q6_K matrix into KQ8 at dst (same size). Returns
 * 0, or -EINVAL for another type or layout. */
int aw_kern_kq_repack(const struct aw_kern_mat *src, void *dst, struct aw_kern_mat *ret_m);

/* The 6-bit sub-block scales (*ret_sc) and mins (*ret_m) of a Q4_K/Q5_K
 * scales[12] array, byte s = sub-block s (quant.h): the low 4 in the low 6
 * bits of bytes 0-3 / 4-7, the high 4 from bytes 8-11 plus the top 2 bits
 * of bytes 0-3 / 4-7. */
static inline void aw_kern_kq_scales(const uint8_t *scales, uint64_t *ret_sc, uint64_t *ret_m)
{
	uint32_t u0, u1, u2;

	memcpy(&u0, scales, 4);
	memcpy(&u1, scales + 4, 4);
	memcpy(&u2, scales + 8, 4);
	*ret_sc = (uint64_t)(u0 & 0x3f3f3f3f) |
		  (uint64_t)((u2 & 0x0f0f0f0f) | ((u0 >> 2) & 0x30303030)) << 32;
	*ret_m = (uint64_t)(u1 & 0x3f3f3f3f) |
		 (uint64_t)(((u2 >> 4) & 0x0f0f0f0f) | ((u1 >> 2) & 0x30303030)) << 32;
}

/* Tile functions of one type from the including file's inline
 * tile(w, c, r, y, ldy, T, type) (ROWS) or tile8(...) (KQ8). */
#define AW_KERN_KQ_TILES(name, fn, type)                                                           \
	static void name##_4(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c,          \
			     uint32_t r, float *y, size_t ldy)                                     \
	{                                                                                          \
		fn(w, c, r, y, ldy, 4, type);                                                      \
	}                                                                                          \
	static void name##_2(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c,          \
			     uint32_t r, float *y, size_t ldy)                                     \
	{                                                                                          \
		fn(w, c, r, y, ldy, 2, type);                                                      \
	}                                                                                          \
	static void name##_1(const struct aw_kern_mat *w, const struct aw_kern_kq_ctx *c,          \
			     uint32_t r, float *y, size_t ldy)                                     \
	{                                                                                          \
		fn(w, c, r, y, ldy, 1, type);                                                      \
	}                                                                                          \
	static aw_kern_kq_tile_fn *const name[3] = {name##_4, name##_2, name##_1};

/* Define the exported matmul 'fn' of the including file over its tile()
 * and tile8(). */
#define AW_KERN_KQ_MATMUL(fn)                                                                      \
	AW_KERN_KQ_TILES(kq_q4_1, tile, AW_TYPE_Q4_1)                                              \
	AW_KERN_KQ_TILES(kq_q5_0, tile, AW_TYPE_Q5_0)                                              \
	AW_KERN_KQ_TILES(kq_q5_1, tile, AW_TYPE_Q5_1)                                              \
	AW_KERN_KQ_TILES(kq_q4_k, tile, AW_TYPE_Q4_K)                                              \
	AW_KERN_KQ_TILES(kq_q5_k, tile, AW_TYPE_Q5_K)                                              \
	AW_KERN_KQ_TILES(kq_q6_k, tile, AW_TYPE_Q6_K)                                              \
	AW_KERN_KQ_TILES(kq8_q4_k, tile8, AW_TYPE_Q4_K)                                            \
	AW_KERN_KQ_TILES(kq8_q5_k, tile8, AW_TYPE_Q5_K)                                            \
	AW_KERN_KQ_TILES(kq8_q6_k, tile8, AW_TYPE_Q6_K)                                            \
	void fn(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y, size_t ldy,    \
		uint32_t r0, uint32_t r1)                                                          \
	{                                                                                          \
		const int k8 = w->layout == AW_KERN_LAYOUT_KQ8;                                    \
		aw_kern_kq_tile_fn *const *t =                                                     \
			w->type == AW_TYPE_Q4_1	  ? kq_q4_1                                        \
			: w->type == AW_TYPE_Q5_0 ? kq_q5_0                                        \
			: w->type == AW_TYPE_Q5_1 ? kq_q5_1                                        \
			: w->type == AW_TYPE_Q4_K ? (k8 ? kq8_q4_k : kq_q4_k)                      \
			: w->type == AW_TYPE_Q5_K ? (k8 ? kq8_q5_k : kq_q5_k)                      \
			: w->type == AW_TYPE_Q6_K ? (k8 ? kq8_q6_k : kq_q6_k)                      \
						  : NULL;                                          \
		if (t && (w->layout == AW_KERN_LAYOUT_ROWS || k8))                                 \
			aw_kern_kq_drive(w, in, y, ldy, r0, r1, t);                                \
		else                                                                               \
			aw_kern_ref_matmul(w, in, y, ldy, r0, r1);                                 \
	}

#endif
