/* prom.h — a writer for the Prometheus text exposition format (version 0.0.4).
 *
 * The daemon renders /metrics into one growing buffer on the control
 * thread. A metric family starts with aw_prom_family() (its # HELP and
 * # TYPE lines) and is followed by its samples; label values are escaped
 * (backslash, double quote, newline) and histograms are written from
 * hist.h's non-cumulative buckets as the cumulative _bucket{le=...},
 * _sum and _count series the format wants, with values scaled (for example
 * microseconds to seconds: divided by 1e6, which gives the shortest decimal). No DPDK: the unit test builds it alone.
 *
 * Labels are passed as a NULL-terminated array of name, value pairs:
 *     const char *l[] = {"op", "generate", "outcome", "stop", NULL};
 */
#ifndef AW_PROM_H
#define AW_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

struct aw_prom {
	char *buf;  /* the text so far, NUL-terminated (NULL before the first write) */
	size_t len; /* bytes in buf */
	size_t cap; /* bytes allocated */
	int oom;    /* an allocation failed: the text is incomplete */
};

#define AW_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Empty writer. */
void aw_prom_init(struct aw_prom *p);

/* Free the buffer (the struct may be reused after aw_prom_init()). */
void aw_prom_fini(struct aw_prom *p);

/* # HELP and # TYPE lines; 'type' is "counter", "gauge" or "histogram". */
void aw_prom_family(struct aw_prom *p, const char *name, const char *type, const char *help);

/* One sample line: name{labels} value. */
void aw_prom_u64(struct aw_prom *p, const char *name, const char *const *labels, uint64_t v);
void aw_prom_double(struct aw_prom *p, const char *name, const char *const *labels, double v);

/* The series of one histogram: name_bucket{labels,le="..."} for each bound
 * of 'b' and +Inf (cumulative), name_sum and name_count. Bounds and the sum
 * are printed divided by 'div' (1e6: microseconds to seconds; 1: as is). */
void aw_prom_hist(struct aw_prom *p, const char *name, const char *const *labels,
		  const struct aw_hist *h, const struct aw_hist_bounds *b, double div);

/* Returns 0 when the text is complete, -ENOMEM otherwise. */
int aw_prom_status(const struct aw_prom *p);

#endif
