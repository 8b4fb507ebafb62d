/* kv.h — the KV cache: a pool of fixed-size blocks and a block table per
 * sequence.
 *
 * Position p of a sequence lives in block table[p / B], slot p % B, where B is
 * the block size in positions. A block holds, for every layer, B key rows and
 * B value rows of kv_dim = n_kv_head * head_dim elements of the cache's type
 * (F32, or F16 to halve the memory and the attention's reads):
 *
 *   block layout   OFFSET (elements)                        SIZE
 *                  ((layer * 2 + 0) * B + slot) * kv_dim    kv_dim   K row
 *                  ((layer * 2 + 1) * B + slot) * kv_dim    kv_dim   V row
 *
 * so the attention read path walks a sequence block by block and reads B
 * contiguous rows at a time. Blocks are reference-counted: aw_kv_seq_fork()
 * lets a sequence share another's prefix (agents resend the same system
 * prompt), and aw_kv_seq_reserve() copies a shared block before a sequence
 * writes into it (copy-on-write). aw_kv_seq_drop() forgets a sequence's last
 * n positions (speculative decoding rejects drafted tokens that way).
 *
 * The pool is one allocation made at aw_kv_new(); nothing is allocated
 * afterwards. Not thread-safe: the scheduler (one thread) reserves, forks,
 * drops and clears between forward passes; the forward pass only reads the
 * block tables and writes rows through aw_kv_k()/aw_kv_v().
 */
#ifndef AW_KV_H
#define AW_KV_H

#include <stddef.h>
#include <stdint.h>

struct aw_kv_config {
	int32_t n_layer;     /* transformer layers */
	int32_t kv_dim;	     /* n_kv_head * head_dim: elements per K (or V) row */
	int32_t block_size;  /* positions per block (B); 16 if 0 */
	int32_t max_seqs;    /* sequence ids are 0..max_seqs-1 */
	int32_t max_seq_len; /* positions per sequence (the context) */
	int32_t n_blocks;    /* pool size; 0: max_seqs * ceil(max_seq_len / B) */
	uint32_t type;	     /* AW_TYPE_F32 (0, the default) or AW_TYPE_F16 */
};

/* The cache. Fields are read by the inline accessors below; change them only
 * through the functions. */
struct aw_kv {
	struct aw_kv_config c; /* with defaults filled in */
	uint8_t *data;	       /* (n_blocks, n_layer, 2, B, kv_dim) elements */
	size_t row_bytes;      /* kv_dim * element size */
	size_t block_bytes;    /* n_layer * 2 * B * row_bytes */
	int32_t *refs;	       /* (n_blocks) reference counts; 0 = free */
	int32_t *free_list;    /* stack of free block ids */
	int32_t n_free;
	int32_t max_blocks_per_seq; /* ceil(max_seq_len / B) */
	int32_t *table;		    /* (max_seqs, max_blocks_per_seq) block ids, -1 = none */
	int32_t *len;		    /* (max_seqs) positions held */
	int32_t *n_table;	    /* (max_seqs) blocks in each table */
};

/* Create a cache. Returns 0 and sets *ret_kv (free with aw_kv_free()), or
 * -EINVAL (a field out of range or sizes overflowing) or -ENOMEM. */
int aw_kv_new(const struct aw_kv_config *c, struct aw_kv **ret_kv);

/* Release 'kv' (NULL is fine). */
void aw_kv_free(struct aw_kv *kv);

/* Bytes of K/V storage in the pool. */
size_t aw_kv_bytes(const struct aw_kv *kv);

/* Make positions [0, n_pos) of 'seq' writable: allocate missing blocks and
 * copy shared blocks that cover [len, n_pos). Returns 0, -EINVAL (bad seq),
 * -ERANGE (n_pos beyond max_seq_len) or -ENOSPC (pool exhausted; nothing
 * changed in that case). */
int aw_kv_seq_reserve(struct aw_kv *kv, int32_t seq, int32_t n_pos);

/* Record that 'seq' holds positions [0, n_pos) (after a forward pass wrote
 * them). n_pos must be within reserved blocks. Returns 0 or -EINVAL. */
int aw_kv_seq_set_len(struct aw_kv *kv, int32_t seq, int32_t n_pos);

/* Positions held by 'seq' (0 for a bad id). */
int32_t aw_kv_seq_len(const struct aw_kv *kv, int32_t seq);

/* Forget the last 'n' positions of 'seq' (all of them if n >= len) and give
 * back blocks no longer needed. Returns 0 or -EINVAL. */
int aw_kv_seq_drop(struct aw_kv *kv, int32_t seq, int32_t n);

/* Forget every position of 'seq' and release its blocks. */
void aw_kv_seq_clear(struct aw_kv *kv, int32_t seq);

/* Make 'dst' (cleared first) share the first 'n_pos' positions of 'src'
 * without copying: blocks gain a reference; a later write into a shared
 * block copies it first. Returns 0 or -EINVAL. */
int aw_kv_seq_fork(struct aw_kv *kv, int32_t src, int32_t dst, int32_t n_pos);

/* aw_kv_seq_fork() over positions 'src' has only reserved (n_pos up to its
 * reserved blocks' end), for a forward pass that writes them into blocks the
 * two sequences share while 'dst' reads them (aw_model_forward_shared()).
 * 'dst' holds n_pos positions afterwards. Returns 0 or -EINVAL. */
int aw_kv_seq_share(struct aw_kv *kv, int32_t src, int32_t dst, int32_t n_pos);

/* Free blocks in the pool. */
int32_t aw_kv_free_blocks(const struct aw_kv *kv);

/* Block id holding position 'pos' of 'seq' (which must be reserved). */
static inline int32_t aw_kv_block(const struct aw_kv *kv, int32_t seq, int32_t pos)
{
	return kv->table[(size_t)seq * (size_t)kv->max_blocks_per_seq +
			 (size_t)(pos / kv->c.block_size)];
}

/* First K row of 'layer' in 'block' (B contiguous rows follow). */
static inline void *aw_kv_block_k(const struct aw_kv *kv, int32_t block, int32_t layer)
{
	return kv->data + (size_t)block * kv->block_bytes +
	       (size_t)layer * 2 * (size_t)kv->c.block_size * kv->row_bytes;
}

/* First V row of 'layer' in 'block'. */
static inline void *aw_kv_block_v(const struct aw_kv *kv, int32_t block, int32_t layer)
{
	return (uint8_t *)aw_kv_block_k(kv, block, layer) +
	       (size_t)kv->c.block_size * kv->row_bytes;
}

/* K row of position 'pos' of 'seq' in 'layer' (reserved positions only). */
static inline void *aw_kv_k(const struct aw_kv *kv, int32_t layer, int32_t seq, int32_t pos)
{
	return (uint8_t *)aw_kv_block_k(kv, aw_kv_block(kv, seq, pos), layer) +
	       (size_t)(pos % kv->c.block_size) * kv->row_bytes;
}

/* V row of position 'pos' of 'seq' in 'layer'. */
static inline void *aw_kv_v(const struct aw_kv *kv, int32_t layer, int32_t seq, int32_t pos)
{
	return (uint8_t *)aw_kv_block_v(kv, aw_kv_block(kv, seq, pos), layer) +
	       (size_t)(pos % kv->c.block_size) * kv->row_bytes;
}

/* --- block references held outside sequences (the scheduler's prefix cache
 * and idle sessions keep blocks alive this way) --------------------------- */

/* Reference count of 'block' (0: free). */
int32_t aw_kv_block_refs(const struct aw_kv *kv, int32_t block);

/* Take one more reference on a block in use. Returns 0 or -EINVAL (bad id or
 * a free block). */
int aw_kv_block_ref(struct aw_kv *kv, int32_t block);

/* Drop one reference; the block returns to the pool at zero. Returns 0 or
 * -EINVAL (bad id or a free block). */
int aw_kv_block_unref(struct aw_kv *kv, int32_t block);

/* Make 'seq' (cleared first) hold positions [0, n_pos) from the blocks
 * blocks[0..n) (each gains a reference; n must be ceil(n_pos / B) and every
 * block in use; not the table of 'seq' itself). A later write into a shared block copies it first. Returns 0
 * or -EINVAL. */
int aw_kv_seq_attach(struct aw_kv *kv, int32_t seq, const int32_t *blocks, int32_t n,
		     int32_t n_pos);

/* Blocks in the table of 'seq' (reserved ones included); the ids are
 * aw_kv_seq_blocks(kv, seq)[0..n). Returns 0 for a bad id. */
int32_t aw_kv_seq_n_blocks(const struct aw_kv *kv, int32_t seq);
const int32_t *aw_kv_seq_blocks(const struct aw_kv *kv, int32_t seq);

#endif
