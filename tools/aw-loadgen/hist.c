/* hist.c — log-linear histogram (see hist.h). */
#include "hist.h"

#include <math.h>
#include <string.h>

void aw_hist_reset(struct aw_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned aw_hist_index(uint64_t v)
{
	unsigned e, sub;

	if (v < AW_HIST_SUB)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v); /* v in [2^e, 2^(e+1)), e >= SUB_BITS */
	sub = (unsigned)(v >> (e - AW_HIST_SUB_BITS)) - AW_HIST_SUB;
	return AW_HIST_SUB + (e - AW_HIST_SUB_BITS) * AW_HIST_SUB + sub;
}

void aw_hist_bucket_range(unsigned idx, uint64_t *ret_lo, uint64_t *ret_hi)
{
	unsigned shift, sub;

	if (idx < AW_HIST_SUB) {
		*ret_lo = *ret_hi = idx;
		return;
	}
	shift = (idx - AW_HIST_SUB) / AW_HIST_SUB;
	sub = (idx - AW_HIST_SUB) % AW_HIST_SUB;
	*ret_lo = (uint64_t)(AW_HIST_SUB + sub) << shift;
	*ret_hi = *ret_lo + ((1ull << shift) - 1);
}

void aw_hist_merge(struct aw_hist *dst, const struct aw_hist *src)
{
	unsigned i;

	if (src->count == 0)
		return;
	for (i = 0; i < AW_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t aw_hist_quantile(const struct aw_hist *h, double q)
{
	uint64_t rank, seen = 0, lo, hi, mid;
	unsigned i;

	if (h->count == 0)
		return 0;
	if (!(q > 0.0))
		return h->min;
	if (q >= 1.0)
		return h->max;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < AW_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	if (i == AW_HIST_BUCKETS)
		return h->max;
	aw_hist_bucket_range(i, &lo, &hi);
	mid = lo + (hi - lo) / 2;
	if (mid < h->min)
		mid = h->min;
	if (mid > h->max)
		mid = h->max;
	return mid;
}

double aw_hist_mean(const struct aw_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
