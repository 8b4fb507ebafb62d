/* prom.c — Prometheus text format writer (prom.h). */
#include "prom.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void aw_prom_init(struct aw_prom *p)
{
	memset(p, 0, sizeof(*p));
}

void aw_prom_fini(struct aw_prom *p)
{
	free(p->buf);
	memset(p, 0, sizeof(*p));
}

static int reserve(struct aw_prom *p, size_t more)
{
	size_t cap;
	char *b;

	if (p->oom)
		return -1;
	if (p->len + more + 1 <= p->cap)
		return 0;
	cap = p->cap ? p->cap : 4096;
	while (cap < p->len + more + 1)
		cap *= 2;
	b = realloc(p->buf, cap);
	if (!b) {
		p->oom = 1;
		return -1;
	}
	p->buf = b;
	p->cap = cap;
	return 0;
}

static void put(struct aw_prom *p, const char *s, size_t n)
{
	if (reserve(p, n) < 0)
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void puts_(struct aw_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void putf(struct aw_prom *p, const char *fmt, ...)
{
	char small[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		put(p, small, (size_t)n);
		return;
	}
	if (reserve(p, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(p->buf + p->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	p->len += (size_t)n;
}

/* 'label' escapes \ " and newline (label values); otherwise \ and newline
 * (HELP text). */
static void put_escaped(struct aw_prom *p, const char *s, int label)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(p, "\\\\");
		else if (*s == '\n')
			puts_(p, "\\n");
		else if (*s == '"' && label)
			puts_(p, "\\\"");
		else
			put(p, s, 1);
	}
}

void aw_prom_family(struct aw_prom *p, const char *name, const char *type, const char *help)
{
	putf(p, "# HELP %s ", name);
	put_escaped(p, help, 0);
	putf(p, "\n# TYPE %s %s\n", name, type);
}

/* name{a="x",b="y"[,le="..."]} without the value */
static void series(struct aw_prom *p, const char *name, const char *suffix,
		   const char *const *labels, const char *le)
{
	int first = 1;

	puts_(p, name);
	puts_(p, suffix);
	if ((!labels || !labels[0]) && !le)
		return;
	put(p, "{", 1);
	for (unsigned i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
		putf(p, "%s%s=\"", first ? "" : ",", labels[i]);
		put_escaped(p, labels[i + 1], 1);
		put(p, "\"", 1);
		first = 0;
	}
	if (le)
		putf(p, "%sle=\"%s\"", first ? "" : ",", le);
	put(p, "}", 1);
}

void aw_prom_u64(struct aw_prom *p, const char *name, const char *const *labels, uint64_t v)
{
	series(p, name, "", labels, NULL);
	putf(p, " %" PRIu64 "\n", v);
}

static void put_double(struct aw_prom *p, double v)
{
	if (v != v)
		puts_(p, "NaN");
	else if (v > 1.7976931348623157e308)
		puts_(p, "+Inf");
	else if (v < -1.7976931348623157e308)
		puts_(p, "-Inf");
	else {
		/* the shortest of %.15g / %.17g that reads back as v */
		char b[40];

		snprintf(b, sizeof(b), "%.15g", v);
		if (strtod(b, NULL) != v)
			snprintf(b, sizeof(b), "%.17g", v);
		puts_(p, b);
	}
}

void aw_prom_double(struct aw_prom *p, const char *name, const char *const *labels, double v)
{
	series(p, name, "", labels, NULL);
	put(p, " ", 1);
	put_double(p, v);
	put(p, "\n", 1);
}

void aw_prom_hist(struct aw_prom *p, const char *name, const char *const *labels,
		  const struct aw_hist *h, const struct aw_hist_bounds *b, double div)
{
	uint64_t cum = 0;
	char le[40];

	for (unsigned i = 0; i < b->n; i++) {
		cum += h->bucket[i];
		snprintf(le, sizeof(le), "%.9g", (double)b->le[i] / div);
		series(p, name, "_bucket", labels, le);
		putf(p, " %" PRIu64 "\n", cum);
	}
	/* +Inf equals _count; a reader racing the writer may see the buckets
	 * ahead of count: report the larger so the series stays monotonic */
	cum += h->bucket[b->n];
	series(p, name, "_bucket", labels, "+Inf");
	putf(p, " %" PRIu64 "\n", cum > h->count ? cum : h->count);
	series(p, name, "_sum", labels, NULL);
	put(p, " ", 1);
	put_double(p, (double)h->sum / div);
	put(p, "\n", 1);
	series(p, name, "_count", labels, NULL);
	putf(p, " %" PRIu64 "\n", cum > h->count ? cum : h->count);
}

int aw_prom_status(const struct aw_prom *p)
{
	return p->oom ? -ENOMEM : 0;
}
