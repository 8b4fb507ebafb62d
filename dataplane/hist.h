/* hist.h — fixed-bucket histograms with one writer and any number of readers.
 *
 * A worker group's leader records latencies and batch sizes into histograms
 * that the control plane (Prometheus /metrics, telemetry) reads while the
 * worker keeps writing. One writer per histogram, so an update is a relaxed
 * load and store per field (no locked instruction on the hot path); readers
 * copy with relaxed loads and may see an observation half-applied (count
 * already incremented, sum not yet): Prometheus tolerates that, and the next
 * scrape is consistent again.
 *
 * Buckets hold non-cumulative counts; bucket i counts values v with
 * bound[i-1] < v <= bound[i]; the last bucket (index n_bounds) is +Inf.
 * Two bound sets cover what the daemon records: latencies in microseconds
 * (25 µs .. 60 s) and sizes (1 .. 4096, powers of two).
 */
#ifndef AW_HIST_H
#define AW_HIST_H

#include <stdint.h>

#define AW_HIST_MAX_BUCKETS 24

struct aw_hist {
	uint64_t count;			      /* observations */
	uint64_t sum;			      /* sum of the observed values */
	uint64_t bucket[AW_HIST_MAX_BUCKETS]; /* non-cumulative; [n_bounds] is +Inf */
};

/* A bound set: n upper bounds, increasing, n < AW_HIST_MAX_BUCKETS. */
struct aw_hist_bounds {
	unsigned n;
	uint64_t le[AW_HIST_MAX_BUCKETS - 1];
};

/* Latencies in microseconds. */
static const struct aw_hist_bounds aw_hist_latency_us = {
	20,
	{25,	50,	100,	250,	500,	 1000,	  2500,	   5000,     10000,    25000,
	 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000},
};

/* Sizes: tokens or sequences per forward pass. */
static const struct aw_hist_bounds aw_hist_size = {
	13,
	{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096},
};

/* Record v (only the histogram's writer calls this). */
static inline void aw_hist_observe(struct aw_hist *h, const struct aw_hist_bounds *b, uint64_t v)
{
	unsigned i = 0;

	while (i < b->n && v > b->le[i])
		i++;
	__atomic_store_n(&h->bucket[i], h->bucket[i] + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h->sum, h->sum + v, __ATOMIC_RELAXED);
	__atomic_store_n(&h->count, h->count + 1, __ATOMIC_RELAXED);
}

/* Copy h into *ret with relaxed loads (any thread). */
static inline void aw_hist_read(const struct aw_hist *h, struct aw_hist *ret)
{
	for (unsigned i = 0; i < AW_HIST_MAX_BUCKETS; i++)
		ret->bucket[i] = __atomic_load_n(&h->bucket[i], __ATOMIC_RELAXED);
	ret->sum = __atomic_load_n(&h->sum, __ATOMIC_RELAXED);
	ret->count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
}

/* Add 'src' into 'acc' (a reader summing the groups' copies). */
static inline void aw_hist_merge(struct aw_hist *acc, const struct aw_hist *src)
{
	for (unsigned i = 0; i < AW_HIST_MAX_BUCKETS; i++)
		acc->bucket[i] += src->bucket[i];
	acc->sum += src->sum;
	acc->count += src->count;
}

#endif
