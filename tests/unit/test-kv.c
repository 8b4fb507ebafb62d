/* test-kv.c — inference/kv.c: block tables (position p in block p/B, slot
 * p%B), block accounting, prefix sharing with copy-on-write, dropping the
 * last n positions, clearing, and the error cases (pool exhausted leaves
 * everything unchanged, positions beyond the context, bad ids). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "kv.h"
#include "quant.h"

enum { L = 3, D = 5, B = 4 };

static struct aw_kv *mk(int32_t max_seqs, int32_t max_len, int32_t n_blocks)
{
	struct aw_kv_config c = {.n_layer = L,
				 .kv_dim = D,
				 .block_size = B,
				 .max_seqs = max_seqs,
				 .max_seq_len = max_len,
				 .n_blocks = n_blocks};
	struct aw_kv *kv = NULL;

	assert_int_equal(aw_kv_new(&c, &kv), 0);
	return kv;
}

/* value stored for (seq, layer, pos, k/v, i) */
static float val(int s, int l, int p, int v, int i)
{
	return (float)(s * 100000 + l * 10000 + p * 10 + v * 5 + i);
}

static void write_seq(struct aw_kv *kv, int s, int from, int to)
{
	for (int l = 0; l < L; l++)
		for (int p = from; p < to; p++)
			for (int i = 0; i < D; i++) {
				((float *)aw_kv_k(kv, l, s, p))[i] = val(s, l, p, 0, i);
				((float *)aw_kv_v(kv, l, s, p))[i] = val(s, l, p, 1, i);
			}
}

static void check_seq(struct aw_kv *kv, int s, int as, int from, int to)
{
	for (int l = 0; l < L; l++)
		for (int p = from; p < to; p++)
			for (int i = 0; i < D; i++) {
				assert_true(((float *)aw_kv_k(kv, l, s, p))[i] ==
					    val(as, l, p, 0, i));
				assert_true(((float *)aw_kv_v(kv, l, s, p))[i] ==
					    val(as, l, p, 1, i));
			}
}

static void test_layout(void **state)
{
	(void)state;
	struct aw_kv *kv = mk(2, 10, 0);

	/* ceil(10/4) = 3 blocks per sequence, 2 sequences */
	assert_int_equal(aw_kv_free_blocks(kv), 6);
	assert_int_equal(aw_kv_bytes(kv), (size_t)6 * L * 2 * B * D * sizeof(float));
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 6), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 4);
	assert_int_equal(aw_kv_seq_reserve(kv, 1, 10), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 1);
	write_seq(kv, 0, 0, 6);
	write_seq(kv, 1, 0, 10);
	check_seq(kv, 0, 0, 0, 6);
	check_seq(kv, 1, 1, 0, 10);
	/* rows of one block are contiguous: position 5 is slot 1 of block 1 */
	int32_t b = aw_kv_block(kv, 0, 5);
	assert_ptr_equal(aw_kv_k(kv, 2, 0, 5), (float *)aw_kv_block_k(kv, b, 2) + 1 * D);
	assert_ptr_equal(aw_kv_v(kv, 2, 0, 5), (float *)aw_kv_block_v(kv, b, 2) + 1 * D);
	assert_ptr_equal(aw_kv_block_v(kv, b, 2), (float *)aw_kv_block_k(kv, b, 2) + B * D);
	/* set_len within the reserved blocks only */
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 6), 0);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 8), 0);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 9), -EINVAL);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 6), 0);
	assert_int_equal(aw_kv_seq_len(kv, 0), 6);
	aw_kv_free(kv);

	/* F16 rows: half the bytes, same layout in elements */
	struct aw_kv_config c16 = {.n_layer = L,
				   .kv_dim = D,
				   .block_size = B,
				   .max_seqs = 2,
				   .max_seq_len = 10,
				   .type = AW_TYPE_F16};
	assert_int_equal(aw_kv_new(&c16, &kv), 0);
	assert_int_equal(aw_kv_bytes(kv), (size_t)6 * L * 2 * B * D * 2);
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 6), 0);
	b = aw_kv_block(kv, 0, 5);
	assert_ptr_equal(aw_kv_k(kv, 2, 0, 5), (uint16_t *)aw_kv_block_k(kv, b, 2) + 1 * D);
	assert_ptr_equal(aw_kv_block_v(kv, b, 2), (uint16_t *)aw_kv_block_k(kv, b, 2) + B * D);
	aw_kv_free(kv);
	c16.type = AW_TYPE_Q8_0; /* no quantized cache (yet) */
	assert_int_equal(aw_kv_new(&c16, &kv), -EINVAL);
}

static void test_errors(void **state)
{
	(void)state;
	struct aw_kv *kv = mk(2, 10, 3);
	struct aw_kv_config bad = {.n_layer = 0, .kv_dim = 1, .max_seqs = 1, .max_seq_len = 1};
	struct aw_kv *k2 = NULL;

	assert_int_equal(aw_kv_new(&bad, &k2), -EINVAL);
	assert_null(k2);
	assert_int_equal(aw_kv_seq_reserve(kv, 2, 1), -EINVAL);
	assert_int_equal(aw_kv_seq_reserve(kv, -1, 1), -EINVAL);
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 11), -ERANGE);
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 8), 0); /* 2 of 3 blocks */
	/* 2 more blocks do not fit: nothing changes */
	assert_int_equal(aw_kv_seq_reserve(kv, 1, 8), -ENOSPC);
	assert_int_equal(aw_kv_free_blocks(kv), 1);
	assert_int_equal(aw_kv_seq_reserve(kv, 1, 4), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 0);
	aw_kv_seq_clear(kv, 0);
	assert_int_equal(aw_kv_free_blocks(kv), 2);
	assert_int_equal(aw_kv_seq_len(kv, 0), 0);
	assert_int_equal(aw_kv_seq_fork(kv, 0, 0, 0), -EINVAL);
	assert_int_equal(aw_kv_seq_fork(kv, 1, 0, 1), -EINVAL); /* seq 1 holds 0 positions */
	aw_kv_free(kv);
}

static void test_drop(void **state)
{
	(void)state;
	struct aw_kv *kv = mk(1, 16, 0);

	assert_int_equal(aw_kv_seq_reserve(kv, 0, 11), 0);
	write_seq(kv, 0, 0, 11);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 11), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 1);
	/* drop 3: 8 positions in 2 blocks */
	assert_int_equal(aw_kv_seq_drop(kv, 0, 3), 0);
	assert_int_equal(aw_kv_seq_len(kv, 0), 8);
	assert_int_equal(aw_kv_free_blocks(kv), 2);
	check_seq(kv, 0, 0, 0, 8);
	/* drop 1: 7 positions, still 2 blocks */
	assert_int_equal(aw_kv_seq_drop(kv, 0, 1), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 2);
	/* regrow and rewrite: the old values before the cut are intact */
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 12), 0);
	write_seq(kv, 0, 7, 12);
	check_seq(kv, 0, 0, 0, 12);
	/* dropping more than held empties it */
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 12), 0);
	assert_int_equal(aw_kv_seq_drop(kv, 0, 100), 0);
	assert_int_equal(aw_kv_seq_len(kv, 0), 0);
	assert_int_equal(aw_kv_free_blocks(kv), 4);
	aw_kv_free(kv);
}

static void test_fork_cow(void **state)
{
	(void)state;
	struct aw_kv *kv = mk(3, 16, 0);

	/* seq 0: 6 positions (block 0 full, block 1 half) */
	assert_int_equal(aw_kv_seq_reserve(kv, 0, 6), 0);
	write_seq(kv, 0, 0, 6);
	assert_int_equal(aw_kv_seq_set_len(kv, 0, 6), 0);
	int32_t free0 = aw_kv_free_blocks(kv);

	/* seq 1 shares all 6: no new blocks */
	assert_int_equal(aw_kv_seq_fork(kv, 0, 1, 6), 0);
	assert_int_equal(aw_kv_free_blocks(kv), free0);
	assert_int_equal(aw_kv_block(kv, 1, 5), aw_kv_block(kv, 0, 5));
	check_seq(kv, 1, 0, 0, 6);

	/* seq 1 writes position 6: block 1 is copied, block 0 stays shared */
	assert_int_equal(aw_kv_seq_reserve(kv, 1, 7), 0);
	assert_int_equal(aw_kv_free_blocks(kv), free0 - 1);
	assert_int_equal(aw_kv_block(kv, 1, 0), aw_kv_block(kv, 0, 0));
	assert_true(aw_kv_block(kv, 1, 5) != aw_kv_block(kv, 0, 5));
	check_seq(kv, 1, 0, 0, 6); /* the copy carries the prefix */
	write_seq(kv, 1, 6, 7);
	/* overwrite position 5 in seq 1: seq 0 must not see it */
	for (int i = 0; i < D; i++)
		((float *)aw_kv_k(kv, 0, 1, 5))[i] = -1.0f;
	check_seq(kv, 0, 0, 0, 6);

	/* clearing seq 0 keeps the shared block alive for seq 1 */
	aw_kv_seq_clear(kv, 0);
	assert_int_equal(aw_kv_free_blocks(kv), free0 - 1 + 1);
	check_seq(kv, 1, 0, 0, 4);
	/* a fork of a prefix that ends mid-block shares that block too */
	assert_int_equal(aw_kv_seq_set_len(kv, 1, 7), 0);
	assert_int_equal(aw_kv_seq_fork(kv, 1, 2, 3), 0);
	assert_int_equal(aw_kv_seq_len(kv, 2), 3);
	assert_int_equal(aw_kv_seq_reserve(kv, 2, 4), 0); /* writes block 0: copy */
	assert_true(aw_kv_block(kv, 2, 0) != aw_kv_block(kv, 1, 0));
	check_seq(kv, 2, 0, 0, 3);
	aw_kv_seq_clear(kv, 1);
	aw_kv_seq_clear(kv, 2);
	assert_int_equal(aw_kv_free_blocks(kv), 12);
	aw_kv_free(kv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_fork_cow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
