/* kv.c — block pool and per-sequence block tables for the KV cache (see
 * kv.h for the layout). Free blocks sit on a stack; each block has a
 * reference count so sequences can share a prefix, and a write into a
 * shared block first copies it (copy-on-write) in aw_kv_seq_reserve(). Rows
 * are F32 or F16 (cfg->type); the model converts when it writes them. */
#include "kv.h"
#include "kern.h"

#include "quant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int32_t *row(const struct aw_kv *kv, int32_t seq)
{
	return kv->table + (size_t)seq * (size_t)kv->max_blocks_per_seq;
}

int aw_kv_new(const struct aw_kv_config *cfg, struct aw_kv **ret_kv)
{
	struct aw_kv_config c = *cfg;
	struct aw_kv *kv;

	if (c.block_size == 0)
		c.block_size = 16;
	if (c.n_layer <= 0 || c.kv_dim <= 0 || c.block_size <= 0 || c.max_seqs <= 0 ||
	    c.max_seq_len <= 0 || c.n_blocks < 0 || c.n_layer > 4096 || c.kv_dim > (1 << 20) ||
	    c.block_size > 4096 || c.max_seqs > (1 << 20) || c.max_seq_len > (1 << 24) ||
	    (c.type != AW_TYPE_F32 && c.type != AW_TYPE_F16))
		return -EINVAL;
	const int32_t per_seq = (c.max_seq_len + c.block_size - 1) / c.block_size;
	if (c.n_blocks == 0) {
		if ((int64_t)per_seq * c.max_seqs > INT32_MAX)
			return -EINVAL;
		c.n_blocks = per_seq * c.max_seqs;
	}
	const size_t row_bytes = (size_t)c.kv_dim * (c.type == AW_TYPE_F16 ? 2 : 4);
	const size_t block_bytes = (size_t)c.n_layer * 2 * (size_t)c.block_size * row_bytes;
	if (block_bytes > SIZE_MAX / 2 / (size_t)c.n_blocks)
		return -EINVAL;

	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->c = c;
	kv->block_bytes = block_bytes;
	kv->row_bytes = row_bytes;
	kv->max_blocks_per_seq = per_seq;
	size_t bytes = block_bytes * (size_t)c.n_blocks;
	bytes = (bytes + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1);
	kv->data = aligned_alloc(AW_KERN_ALIGN, bytes);
	kv->refs = calloc((size_t)c.n_blocks, sizeof(int32_t));
	kv->free_list = malloc(sizeof(int32_t) * (size_t)c.n_blocks);
	kv->table = malloc(sizeof(int32_t) * (size_t)per_seq * (size_t)c.max_seqs);
	kv->len = calloc((size_t)c.max_seqs, sizeof(int32_t));
	kv->n_table = calloc((size_t)c.max_seqs, sizeof(int32_t));
	if (!kv->data || !kv->refs || !kv->free_list || !kv->table || !kv->len || !kv->n_table) {
		aw_kv_free(kv);
		return -ENOMEM;
	}
	/* lowest ids on top of the stack */
	for (int32_t i = 0; i < c.n_blocks; i++)
		kv->free_list[i] = c.n_blocks - 1 - i;
	kv->n_free = c.n_blocks;
	for (size_t i = 0; i < (size_t)per_seq * (size_t)c.max_seqs; i++)
		kv->table[i] = -1;
	*ret_kv = kv;
	return 0;
}

void aw_kv_free(struct aw_kv *kv)
{
	if (!kv)
		return;
	free(kv->data);
	free(kv->refs);
	free(kv->free_list);
	free(kv->table);
	free(kv->len);
	free(kv->n_table);
	free(kv);
}

size_t aw_kv_bytes(const struct aw_kv *kv)
{
	return kv->block_bytes * (size_t)kv->c.n_blocks;
}

int32_t aw_kv_free_blocks(const struct aw_kv *kv)
{
	return kv->n_free;
}

static void unref(struct aw_kv *kv, int32_t b)
{
	if (--kv->refs[b] == 0)
		kv->free_list[kv->n_free++] = b;
}

static int32_t take(struct aw_kv *kv)
{
	int32_t b = kv->free_list[--kv->n_free];

	kv->refs[b] = 1;
	return b;
}

int aw_kv_seq_reserve(struct aw_kv *kv, int32_t seq, int32_t n_pos)
{
	const int32_t B = kv->c.block_size;

	if (seq < 0 || seq >= kv->c.max_seqs || n_pos < 0)
		return -EINVAL;
	if (n_pos > kv->c.max_seq_len)
		return -ERANGE;
	int32_t *t = row(kv, seq);
	const int32_t need = (n_pos + B - 1) / B;
	const int32_t first_written = kv->len[seq] / B; /* block of the first new position */

	/* count first, so that -ENOSPC leaves everything as it was */
	int32_t want = need > kv->n_table[seq] ? need - kv->n_table[seq] : 0;
	for (int32_t i = first_written; i < kv->n_table[seq] && i < need; i++)
		if (kv->refs[t[i]] > 1)
			want++;
	if (want > kv->n_free)
		return -ENOSPC;

	for (int32_t i = first_written; i < kv->n_table[seq] && i < need; i++) {
		if (kv->refs[t[i]] > 1) {
			int32_t b = take(kv);

			memcpy(kv->data + (size_t)b * kv->block_bytes,
			       kv->data + (size_t)t[i] * kv->block_bytes, kv->block_bytes);
			unref(kv, t[i]);
			t[i] = b;
		}
	}
	while (kv->n_table[seq] < need)
		t[kv->n_table[seq]++] = take(kv);
	return 0;
}

int aw_kv_seq_set_len(struct aw_kv *kv, int32_t seq, int32_t n_pos)
{
	if (seq < 0 || seq >= kv->c.max_seqs || n_pos < 0 ||
	    n_pos > kv->n_table[seq] * kv->c.block_size || n_pos > kv->c.max_seq_len)
		return -EINVAL;
	kv->len[seq] = n_pos;
	return 0;
}

int32_t aw_kv_seq_len(const struct aw_kv *kv, int32_t seq)
{
	if (seq < 0 || seq >= kv->c.max_seqs)
		return 0;
	return kv->len[seq];
}

int aw_kv_seq_drop(struct aw_kv *kv, int32_t seq, int32_t n)
{
	const int32_t B = kv->c.block_size;

	if (seq < 0 || seq >= kv->c.max_seqs || n < 0)
		return -EINVAL;
	int32_t len = kv->len[seq] > n ? kv->len[seq] - n : 0;
	int32_t *t = row(kv, seq);
	const int32_t keep = (len + B - 1) / B;

	while (kv->n_table[seq] > keep) {
		int32_t b = t[--kv->n_table[seq]];
		t[kv->n_table[seq]] = -1;
		unref(kv, b);
	}
	kv->len[seq] = len;
	return 0;
}

void aw_kv_seq_clear(struct aw_kv *kv, int32_t seq)
{
	if (seq < 0 || seq >= kv->c.max_seqs)
		return;
	int32_t *t = row(kv, seq);

	/* reserved-but-unwritten blocks go too */
	while (kv->n_table[seq] > 0) {
		int32_t b = t[--kv->n_table[seq]];
		t[kv->n_table[seq]] = -1;
		unref(kv, b);
	}
	kv->len[seq] = 0;
}

/* aw_kv_seq_fork() (ahead == 0) or aw_kv_seq_share() (ahead != 0) */
static int fork_seq(struct aw_kv *kv, int32_t src, int32_t dst, int32_t n_pos, int ahead)
{
	const int32_t B = kv->c.block_size;

	if (src < 0 || src >= kv->c.max_seqs || dst < 0 || dst >= kv->c.max_seqs || src == dst ||
	    n_pos < 0 || n_pos > (ahead ? kv->n_table[src] * B : kv->len[src]))
		return -EINVAL;
	aw_kv_seq_clear(kv, dst);
	const int32_t n = (n_pos + B - 1) / B;
	int32_t *s = row(kv, src), *d = row(kv, dst);

	for (int32_t i = 0; i < n; i++) {
		d[i] = s[i];
		kv->refs[s[i]]++;
	}
	kv->n_table[dst] = n;
	kv->len[dst] = n_pos;
	return 0;
}

int aw_kv_seq_fork(struct aw_kv *kv, int32_t src, int32_t dst, int32_t n_pos)
{
	return fork_seq(kv, src, dst, n_pos, 0);
}

int aw_kv_seq_share(struct aw_kv *kv, int32_t src, int32_t dst, int32_t n_pos)
{
	return fork_seq(kv, src, dst, n_pos, 1);
}

int32_t aw_kv_block_refs(const struct aw_kv *kv, int32_t block)
{
	if (block < 0 || block >= kv->c.n_blocks)
		return 0;
	return kv->refs[block];
}

int aw_kv_block_ref(struct aw_kv *kv, int32_t block)
{
	if (block < 0 || block >= kv->c.n_blocks || kv->refs[block] <= 0)
		return -EINVAL;
	kv->refs[block]++;
	return 0;
}

int aw_kv_block_unref(struct aw_kv *kv, int32_t block)
{
	if (block < 0 || block >= kv->c.n_blocks || kv->refs[block] <= 0)
		return -EINVAL;
	unref(kv, block);
	return 0;
}

int aw_kv_seq_attach(struct aw_kv *kv, int32_t seq, const int32_t *blocks, int32_t n, int32_t n_pos)
{
	const int32_t B = kv->c.block_size;

	if (seq < 0 || seq >= kv->c.max_seqs || n_pos < 0 || n_pos > kv->c.max_seq_len ||
	    n != (n_pos + B - 1) / B || (n > 0 && !blocks))
		return -EINVAL;
	for (int32_t i = 0; i < n; i++)
		if (blocks[i] < 0 || blocks[i] >= kv->c.n_blocks || kv->refs[blocks[i]] <= 0)
			return -EINVAL;
	for (int32_t i = 0; i < n; i++)
		kv->refs[blocks[i]]++;
	aw_kv_seq_clear(kv, seq);
	int32_t *t = row(kv, seq);
	for (int32_t i = 0; i < n; i++)
		t[i] = blocks[i];
	kv->n_table[seq] = n;
	kv->len[seq] = n_pos;
	return 0;
}

int32_t aw_kv_seq_n_blocks(const struct aw_kv *kv, int32_t seq)
{
	if (seq < 0 || seq >= kv->c.max_seqs)
		return 0;
	return kv->n_table[seq];
}

const int32_t *aw_kv_seq_blocks(const struct aw_kv *kv, int32_t seq)
{
	if (seq < 0 || seq >= kv->c.max_seqs)
		return NULL;
	return row(kv, seq);
}
