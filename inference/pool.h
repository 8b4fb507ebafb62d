/* pool.h — a group of worker threads that run one function together.
 *
 * aw_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) on each of the nth
 * threads of the pool — the calling thread is ith 0, the workers 1..nth-1 —
 * and returns when all have returned. Inside fn the threads may meet at
 * aw_pool_barrier(), so a whole forward pass can be one run with a barrier
 * between steps instead of one dispatch per matrix product.
 *
 * Waiting is a spin on an atomic with a pause instruction: no system call on
 * the hot path. A thread that has spun for a while (1000 pause instructions,
 * ~40 µs, by default; 50 when the pool has more threads than CPUs; the
 * environment variable AW_POOL_SPIN sets the count) sleeps on a futex
 * instead, so that a pool larger than the free cores of a shared machine does
 * not starve the thread it waits for;
 * whoever releases a generation makes the wake-up system call only when some
 * thread sleeps.
 *
 * Workers are pinned to the CPUs given at creation (pthread_setaffinity_np);
 * the creating thread is pinned to cpus[0] when it creates the pool. This
 * group becomes the worker group of the daemon.
 */
#ifndef AW_POOL_H
#define AW_POOL_H

#include <stdint.h>

struct aw_pool;

/* Work of one thread: ith in [0, nth). */
typedef void aw_pool_fn(void *ctx, unsigned ith, unsigned nth);

/* Start a pool of n_threads threads (the caller and n_threads-1 workers).
 * 'cpus' is NULL (no pinning) or n_threads CPU numbers: cpus[0] for the
 * caller, cpus[i] for worker i. Returns 0 and sets *ret_pool, or -EINVAL
 * (n_threads 0 or above 256, a CPU not in the allowed set), -ENOMEM, -EAGAIN.
 * The caller owns *ret_pool and releases it with aw_pool_free(). */
int aw_pool_new(unsigned n_threads, const int *cpus, struct aw_pool **ret_pool);

/* Stop and join the workers, free the pool. Accepts NULL. */
void aw_pool_free(struct aw_pool *pool);

/* Threads in the pool (including the caller). */
unsigned aw_pool_size(const struct aw_pool *pool);

/* Run fn(ctx, ith, nth) on every thread; the caller runs ith 0. Returns when
 * all have finished, with all their writes visible to the caller. Only one
 * thread may call it at a time (the pool's owner). */
void aw_pool_run(struct aw_pool *pool, aw_pool_fn *fn, void *ctx);

/* Inside fn: wait until all nth threads have reached this barrier. Writes
 * made before it by any thread are visible after it to all. */
void aw_pool_barrier(struct aw_pool *pool);

/* Split [0, n) into nth contiguous ranges whose boundaries are multiples of
 * 'align' (except n itself) and whose sizes differ by at most one 'align';
 * sets [*ret_lo, *ret_hi) for thread ith (possibly empty). */
void aw_pool_split(uint32_t n, uint32_t align, unsigned ith, unsigned nth, uint32_t *ret_lo,
		   uint32_t *ret_hi);

/* Parse a CPU list such as "0-3,8,10-11" into at most 'max' CPU numbers.
 * Returns the count, or -EINVAL for a malformed list, -E2BIG past 'max'. */
int aw_pool_parse_cpus(const char *s, int *cpus, unsigned max);

#endif
