/* hist.h — log-linear latency histogram (HdrHistogram-style) for aw-loadgen.
 *
 * Values are unsigned 64-bit (aw-loadgen records nanoseconds). Values below
 * 2^AW_HIST_SUB_BITS are counted exactly; above, each power-of-two range
 * [2^e, 2^(e+1)) is split into 2^AW_HIST_SUB_BITS equal buckets, so a bucket
 * is at most 1/128 of its lower bound wide. A quantile is reported as the
 * middle of the bucket that holds the exact order statistic: its relative
 * error is at most 1/256 (0.39 %), inside the 1 % the issue asks for.
 * min, max, count and mean are exact. Fixed size (about 59 KiB), no
 * allocation after aw_hist_new(); recording is a few shifts and an add.
 */
#ifndef AW_HIST_H
#define AW_HIST_H

#include <stdint.h>

#define AW_HIST_SUB_BITS 7
#define AW_HIST_SUB	 (1u << AW_HIST_SUB_BITS)
#define AW_HIST_BUCKETS	 (AW_HIST_SUB + (64 - AW_HIST_SUB_BITS) * AW_HIST_SUB)

struct aw_hist {
	uint64_t count; /* values recorded */
	uint64_t min;	/* exact (UINT64_MAX when empty) */
	uint64_t max;	/* exact */
	double sum;	/* for the mean */
	uint64_t b[AW_HIST_BUCKETS];
};

/* Largest relative error of a reported quantile (see above). */
#define AW_HIST_MAX_REL_ERROR (1.0 / (2.0 * AW_HIST_SUB))

/* Empty the histogram. */
void aw_hist_reset(struct aw_hist *h);

/* Bucket index of v, and the [lo, hi] range of values that bucket holds. */
unsigned aw_hist_index(uint64_t v);
void aw_hist_bucket_range(unsigned idx, uint64_t *ret_lo, uint64_t *ret_hi);

static inline void aw_hist_record(struct aw_hist *h, uint64_t v)
{
	h->b[aw_hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

/* Add every value of 'src' to 'dst'. */
void aw_hist_merge(struct aw_hist *dst, const struct aw_hist *src);

/* The q-quantile (0 <= q <= 1): the value of rank ceil(q * count) (rank 1 for
 * q = 0), reported as its bucket's middle, clamped to [min, max]; q = 1
 * gives max exactly. 0 when empty. */
uint64_t aw_hist_quantile(const struct aw_hist *h, double q);

double aw_hist_mean(const struct aw_hist *h);

#endif
