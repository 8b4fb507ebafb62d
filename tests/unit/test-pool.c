/* test-pool.c — inference/pool.c: every thread runs each job once with its
 * own index, barriers order the writes of all threads, runs follow each other
 * many times without loss, the range split covers [0, n) exactly on tile
 * boundaries, and CPU lists parse (and fail) as documented. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

struct job {
	struct aw_pool *pool;
	_Atomic unsigned calls[8];
	unsigned nth_seen[8];
	int phase[8][4];   /* phase[ith][step] written before barrier step */
	int bad;	   /* set when a thread sees a missing write after a barrier */
	unsigned long sum; /* accumulated by thread 0 across runs */
	unsigned long slot[8];
};

static void job_fn(void *ctx, unsigned ith, unsigned nth)
{
	struct job *j = ctx;

	atomic_fetch_add(&j->calls[ith], 1);
	j->nth_seen[ith] = nth;
	for (int step = 0; step < 4; step++) {
		j->phase[ith][step] = step + 1;
		aw_pool_barrier(j->pool);
		for (unsigned o = 0; o < nth; o++)
			if (j->phase[o][step] != step + 1)
				j->bad = 1;
	}
}

static void test_run_barrier(void **state)
{
	(void)state;
	for (unsigned nth = 1; nth <= 4; nth++) {
		struct aw_pool *pool = NULL;
		struct job j;

		memset(&j, 0, sizeof(j));
		assert_int_equal(aw_pool_new(nth, NULL, &pool), 0);
		assert_int_equal(aw_pool_size(pool), nth);
		j.pool = pool;
		for (int run = 0; run < 50; run++) {
			memset(j.phase, 0, sizeof(j.phase));
			aw_pool_run(pool, job_fn, &j);
		}
		assert_int_equal(j.bad, 0);
		for (unsigned i = 0; i < nth; i++) {
			assert_int_equal(atomic_load(&j.calls[i]), 50);
			assert_int_equal(j.nth_seen[i], nth);
		}
		for (unsigned i = nth; i < 8; i++)
			assert_int_equal(atomic_load(&j.calls[i]), 0);
		aw_pool_free(pool);
	}
}

/* Many short runs: each thread adds its slot; the caller reads all after run. */
static void sum_fn(void *ctx, unsigned ith, unsigned nth)
{
	struct job *j = ctx;

	(void)nth;
	j->slot[ith] += ith + 1;
}

static void test_many_runs(void **state)
{
	(void)state;
	struct aw_pool *pool = NULL;
	struct job j;
	const int runs = 5000;

	memset(&j, 0, sizeof(j));
	assert_int_equal(aw_pool_new(3, NULL, &pool), 0);
	for (int r = 0; r < runs; r++) {
		aw_pool_run(pool, sum_fn, &j);
		/* all writes of the run are visible here */
		unsigned long s = j.slot[0] + j.slot[1] + j.slot[2];

		assert_int_equal(s, (unsigned long)(r + 1) * 6);
	}
	aw_pool_free(pool);
}

static void test_pinning(void **state)
{
	(void)state;
	struct aw_pool *pool = NULL;
	cpu_set_t saved;
	int cpus[2] = {-1, -1};

	/* pin both threads on the first CPU we may run on, then restore */
	assert_int_equal(sched_getaffinity(0, sizeof(saved), &saved), 0);
	for (int c = 0; c < CPU_SETSIZE && cpus[0] < 0; c++)
		if (CPU_ISSET(c, &saved))
			cpus[0] = cpus[1] = c;
	assert_true(cpus[0] >= 0);
	assert_int_equal(aw_pool_new(2, cpus, &pool), 0);
	struct job j;
	memset(&j, 0, sizeof(j));
	aw_pool_run(pool, sum_fn, &j);
	assert_int_equal(j.slot[1], 2);
	aw_pool_free(pool);
	cpus[1] = 100000; /* beyond CPU_SETSIZE */
	pool = NULL;
	assert_int_equal(aw_pool_new(2, cpus, &pool), -EINVAL);
	assert_null(pool);
	assert_int_equal(aw_pool_new(0, NULL, &pool), -EINVAL);
	aw_pool_free(NULL);
	assert_int_equal(sched_setaffinity(0, sizeof(saved), &saved), 0);
}

static void test_split(void **state)
{
	(void)state;
	static const uint32_t ns[] = {0, 1, 15, 16, 17, 100, 768, 2048, 5632, 32000};

	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		for (uint32_t align = 1; align <= 64; align *= 4) {
			for (unsigned nth = 1; nth <= 7; nth++) {
				uint32_t expect = 0, maxsz = 0, minsz = UINT32_MAX;

				for (unsigned i = 0; i < nth; i++) {
					uint32_t lo, hi;

					aw_pool_split(ns[k], align, i, nth, &lo, &hi);
					assert_int_equal(lo, expect);
					assert_true(hi >= lo);
					assert_true(lo % align == 0);
					assert_true(hi % align == 0 || hi == ns[k]);
					expect = hi;
					if (hi - lo > maxsz)
						maxsz = hi - lo;
					if (hi - lo < minsz)
						minsz = hi - lo;
				}
				assert_int_equal(expect, ns[k]);
				assert_true(maxsz - minsz <= align);
			}
		}
	}
}

static void test_parse_cpus(void **state)
{
	(void)state;
	int c[8];

	assert_int_equal(aw_pool_parse_cpus("0-2,5", c, 8), 4);
	assert_int_equal(c[0], 0);
	assert_int_equal(c[2], 2);
	assert_int_equal(c[3], 5);
	assert_int_equal(aw_pool_parse_cpus("7", c, 8), 1);
	assert_int_equal(c[0], 7);
	assert_int_equal(aw_pool_parse_cpus("0-9", c, 8), -E2BIG);
	assert_int_equal(aw_pool_parse_cpus("", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("3-1", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("1,", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("a", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("1-", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("-1", c, 8), -EINVAL);
	assert_int_equal(aw_pool_parse_cpus("1;2", c, 8), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_barrier), cmocka_unit_test(test_many_runs),
		cmocka_unit_test(test_pinning),	    cmocka_unit_test(test_split),
		cmocka_unit_test(test_parse_cpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
