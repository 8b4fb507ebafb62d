/* pool.c — worker threads with a spin barrier (see pool.h).
 *
 * Two counters drive everything. 'job' is a generation number: the owner
 * publishes fn/ctx and increments it; workers waiting for a new generation
 * then run fn. The barrier is a sense-free counting barrier: the last thread
 * to arrive resets the count and increments 'bar_gen', which the others wait
 * on. A run ends with one barrier, so the owner returns only after every
 * worker is done.
 *
 * Waiting (wait_change) spins with a pause instruction, then sleeps on a
 * futex. The sleeper increments 'sleepers' before re-checking the value, and
 * the releaser increments the generation before reading 'sleepers', both
 * sequentially consistent: either the sleeper sees the new value or the
 * releaser sees the sleeper (and FUTEX_WAIT itself re-checks the value).
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pool.h"

#define MAX_THREADS 256

struct worker {
	struct aw_pool *pool;
	unsigned ith;
	pthread_t tid;
};

/* Bytes that keep fields written by different threads out of each other's
 * cache lines: 64-byte lines on x86 and Arm Neoverse, but x86 prefetches
 * lines in pairs and some Arm cores have 128-byte lines, so two. */
#define NO_SHARE 128

struct aw_pool {
	unsigned nth;
	unsigned spin;	/* pause iterations before sleeping */
	aw_pool_fn *fn; /* current job, published before 'job' moves */
	void *ctx;
	int quit; /* set before the last 'job' increment */
	_Alignas(NO_SHARE) _Atomic uint32_t job;
	_Atomic uint32_t job_sleepers;
	_Alignas(NO_SHARE) _Atomic uint32_t bar_count;
	_Alignas(NO_SHARE) _Atomic uint32_t bar_gen;
	_Atomic uint32_t bar_sleepers;
	struct worker *workers;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Wait until *v != old; returns the new value. */
static uint32_t wait_change(_Atomic uint32_t *v, uint32_t old, _Atomic uint32_t *sleepers,
			    unsigned spin)
{
	uint32_t now;

	for (unsigned i = 0; i < spin; i++) {
		now = atomic_load_explicit(v, memory_order_acquire);
		if (now != old)
			return now;
		cpu_relax();
	}
	atomic_fetch_add(sleepers, 1);
	while ((now = atomic_load(v)) == old)
		futex_wait(v, old);
	atomic_fetch_sub(sleepers, 1);
	return now;
}

/* Move *v on and wake sleepers, if any. */
static void release(_Atomic uint32_t *v, _Atomic uint32_t *sleepers)
{
	atomic_fetch_add(v, 1);
	if (atomic_load(sleepers))
		futex_wake_all(v);
}

void aw_pool_barrier(struct aw_pool *pool)
{
	if (pool->nth == 1)
		return;
	const uint32_t gen = atomic_load_explicit(&pool->bar_gen, memory_order_acquire);

	if (atomic_fetch_add_explicit(&pool->bar_count, 1, memory_order_acq_rel) == pool->nth - 1) {
		atomic_store_explicit(&pool->bar_count, 0, memory_order_relaxed);
		release(&pool->bar_gen, &pool->bar_sleepers);
		return;
	}
	wait_change(&pool->bar_gen, gen, &pool->bar_sleepers, pool->spin);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct aw_pool *pool = w->pool;
	uint32_t seen = 0;

	for (;;) {
		seen = wait_change(&pool->job, seen, &pool->job_sleepers, pool->spin);
		if (pool->quit)
			break;
		pool->fn(pool->ctx, w->ith, pool->nth);
		aw_pool_barrier(pool);
	}
	return NULL;
}

void aw_pool_run(struct aw_pool *pool, aw_pool_fn *fn, void *ctx)
{
	if (pool->nth == 1) {
		fn(ctx, 0, 1);
		return;
	}
	/* fn/ctx are published by the seq_cst increment in release() */
	pool->fn = fn;
	pool->ctx = ctx;
	release(&pool->job, &pool->job_sleepers);
	fn(ctx, 0, pool->nth);
	aw_pool_barrier(pool);
}

unsigned aw_pool_size(const struct aw_pool *pool)
{
	return pool->nth;
}

static int pin(pthread_t tid, int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(tid, sizeof(set), &set);
}

/* Pause iterations before a waiter sleeps. A pause takes 30-45 ns on Zen 5,
 * so the default of 1000 spins ~40 µs: longer than a matmul step of a small
 * model, shorter than a scheduler tick. A pool with more threads than CPUs it
 * may run on spins only briefly: there the thread it waits for is likely
 * preempted by the spinner itself. AW_POOL_SPIN overrides both. */
static unsigned spin_default(unsigned n_threads, const int *cpus)
{
	const char *s = getenv("AW_POOL_SPIN");

	if (s && *s) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);

		if (*end == '\0' && v <= 100000000ul)
			return (unsigned)v;
	}
	cpu_set_t set;

	if (cpus) {
		/* pinned: one thread per CPU unless the list repeats a CPU (the
		 * caller's own mask says nothing: a DPDK lcore is pinned to one) */
		CPU_ZERO(&set);
		for (unsigned i = 0; i < n_threads; i++)
			if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE)
				CPU_SET(cpus[i], &set);
		return (unsigned)CPU_COUNT(&set) < n_threads ? 50 : 1000;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0 && (unsigned)CPU_COUNT(&set) < n_threads)
		return 50;
	return 1000;
}

int aw_pool_new(unsigned n_threads, const int *cpus, struct aw_pool **ret_pool)
{
	struct aw_pool *pool;
	int r;

	if (n_threads == 0 || n_threads > MAX_THREADS)
		return -EINVAL;
	/* calloc aligns to 16 bytes only: the NO_SHARE fields need the whole struct aligned */
	pool = aligned_alloc(NO_SHARE, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	memset(pool, 0, sizeof(*pool));
	pool->nth = 1; /* grows as workers start, so that aw_pool_free() joins only those */
	pool->spin = spin_default(n_threads, cpus);
	pool->workers = calloc(n_threads, sizeof(*pool->workers));
	if (!pool->workers) {
		r = -ENOMEM;
		goto err;
	}
	if (cpus) {
		r = pin(pthread_self(), cpus[0]);
		if (r < 0)
			goto err;
	}
	for (unsigned i = 1; i < n_threads; i++) {
		struct worker *w = &pool->workers[i];

		w->pool = pool;
		w->ith = i;
		r = -pthread_create(&w->tid, NULL, worker_main, w);
		if (r < 0)
			goto err;
		pool->nth = i + 1;
		if (cpus) {
			r = pin(w->tid, cpus[i]);
			if (r < 0)
				goto err;
		}
	}
	*ret_pool = pool;
	return 0;
err:
	aw_pool_free(pool);
	return r;
}

void aw_pool_free(struct aw_pool *pool)
{
	if (!pool)
		return;
	if (pool->workers && pool->nth > 1) {
		pool->quit = 1;
		release(&pool->job, &pool->job_sleepers);
		for (unsigned i = 1; i < pool->nth; i++)
			pthread_join(pool->workers[i].tid, NULL);
	}
	free(pool->workers);
	free(pool);
}

void aw_pool_split(uint32_t n, uint32_t align, unsigned ith, unsigned nth, uint32_t *ret_lo,
		   uint32_t *ret_hi)
{
	if (align == 0)
		align = 1;
	const uint64_t units = ((uint64_t)n + align - 1) / align;
	const uint64_t lo = units * ith / nth * align;
	const uint64_t hi = units * (ith + 1) / nth * align;

	*ret_lo = (uint32_t)(lo < n ? lo : n);
	*ret_hi = (uint32_t)(hi < n ? hi : n);
}

int aw_pool_parse_cpus(const char *s, int *cpus, unsigned max)
{
	unsigned count = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		char *end;
		long a, b;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		a = strtol(s, &end, 10);
		b = a;
		if (*end == '-') {
			s = end + 1;
			if (*s < '0' || *s > '9')
				return -EINVAL;
			b = strtol(s, &end, 10);
		}
		if (a > b || b >= CPU_SETSIZE)
			return -EINVAL;
		for (long c = a; c <= b; c++) {
			if (count == max)
				return -E2BIG;
			cpus[count++] = (int)c;
		}
		s = end;
		if (*s == ',') {
			s++;
			if (!*s)
				return -EINVAL;
		} else if (*s) {
			return -EINVAL;
		}
	}
	return (int)count;
}
