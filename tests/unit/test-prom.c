/* test-prom.c — dataplane/prom.c and hist.h: bucket placement at and around
 * every bound, cumulative rendering with scaled bounds, a reader that sees
 * the buckets ahead of the count, label and HELP escaping, exact text of a
 * small exposition, a large one (buffer growth), and — when Debian's promtool
 * is installed — the format validated by Prometheus's own checker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prom.h"
#include "aw-skip.h"

static void hist_buckets(void **state)
{
	const struct aw_hist_bounds *b = &aw_hist_latency_us;
	struct aw_hist h = {0}, r;

	(void)state;
	/* a value equal to a bound falls in that bound's bucket; one above, in the next */
	for (unsigned i = 0; i < b->n; i++) {
		aw_hist_observe(&h, b, b->le[i]);
		assert_int_equal(h.bucket[i], 1);
		aw_hist_observe(&h, b, b->le[i] + 1);
		assert_int_equal(h.bucket[i + 1], i + 1 < b->n ? 1 : 1);
		memset(&h, 0, sizeof(h));
	}
	aw_hist_observe(&h, b, 0);
	aw_hist_observe(&h, b, UINT64_MAX / 4);
	assert_int_equal(h.bucket[0], 1);
	assert_int_equal(h.bucket[b->n], 1);
	assert_int_equal(h.count, 2);
	assert_true(h.sum == UINT64_MAX / 4);
	aw_hist_read(&h, &r);
	assert_memory_equal(&h, &r, sizeof(h));
	aw_hist_merge(&r, &h);
	assert_int_equal(r.count, 4);
	assert_int_equal(r.bucket[0], 2);
}

static void render_small(void **state)
{
	const char *l[] = {"group", "0", NULL};
	const struct aw_hist_bounds b = {2, {10, 100}};
	struct aw_hist h = {0};
	struct aw_prom p;
	const char *want = "# HELP x_total A \\\\ help\\nline.\n"
			   "# TYPE x_total counter\n"
			   "x_total 7\n"
			   "x_total{a=\"q\\\"uo\\\\te\\n\",b=\"\"} 18446744073709551615\n"
			   "# HELP g A gauge.\n"
			   "# TYPE g gauge\n"
			   "g 0.5\n"
			   "# HELP lat_seconds Latency.\n"
			   "# TYPE lat_seconds histogram\n"
			   "lat_seconds_bucket{group=\"0\",le=\"1e-05\"} 1\n"
			   "lat_seconds_bucket{group=\"0\",le=\"0.0001\"} 3\n"
			   "lat_seconds_bucket{group=\"0\",le=\"+Inf\"} 4\n"
			   "lat_seconds_sum{group=\"0\"} 0.00135\n"
			   "lat_seconds_count{group=\"0\"} 4\n";

	(void)state;
	aw_prom_init(&p);
	aw_prom_family(&p, "x_total", "counter", "A \\ help\nline.");
	aw_prom_u64(&p, "x_total", NULL, 7);
	{
		const char *lq[] = {"a", "q\"uo\\te\n", "b", "", NULL};

		aw_prom_u64(&p, "x_total", lq, UINT64_MAX);
	}
	aw_prom_family(&p, "g", "gauge", "A gauge.");
	aw_prom_double(&p, "g", NULL, 0.5);
	aw_prom_family(&p, "lat_seconds", "histogram", "Latency.");
	aw_hist_observe(&h, &b, 10);   /* le 1e-05 */
	aw_hist_observe(&h, &b, 20);   /* le 1e-04 */
	aw_hist_observe(&h, &b, 100);  /* le 1e-04 */
	aw_hist_observe(&h, &b, 1220); /* +Inf */
	aw_prom_hist(&p, "lat_seconds", l, &h, &b, 1e6);
	assert_int_equal(aw_prom_status(&p), 0);
	assert_string_equal(p.buf, want);
	assert_int_equal(p.len, strlen(want));
	aw_prom_fini(&p);
	assert_null(p.buf);
}

/* A reader that copied the buckets after an observation but the count
 * before it: +Inf and _count must not go below the buckets. */
static void render_racing_reader(void **state)
{
	const struct aw_hist_bounds b = {1, {5}};
	struct aw_hist h = {.count = 1, .sum = 3, .bucket = {2, 0}};
	struct aw_prom p;

	(void)state;
	aw_prom_init(&p);
	aw_prom_hist(&p, "h", NULL, &h, &b, 1);
	assert_non_null(strstr(p.buf, "h_bucket{le=\"+Inf\"} 2\n"));
	assert_non_null(strstr(p.buf, "h_count 2\n"));
	aw_prom_fini(&p);
}

static void special_values(void **state)
{
	struct aw_prom p;

	(void)state;
	aw_prom_init(&p);
	aw_prom_double(&p, "a", NULL, 1.0 / 0.0);
	aw_prom_double(&p, "b", NULL, -1.0 / 0.0);
	aw_prom_double(&p, "c", NULL, 0.0 / 0.0);
	assert_string_equal(p.buf, "a +Inf\nb -Inf\nc NaN\n");
	aw_prom_fini(&p);
}

/* Many families with long names: the buffer grows past its first 4 KiB and
 * past a printf chunk longer than the writer's small buffer. */
static struct aw_prom big(void)
{
	char name[300], help[200];
	struct aw_prom p;
	struct aw_hist h = {0};

	aw_prom_init(&p);
	for (unsigned i = 0; i < 2000; i++)
		aw_hist_observe(&h, &aw_hist_latency_us, (uint64_t)i * 997);
	for (unsigned f = 0; f < 200; f++) {
		const char *l[] = {"group", "1", "op", "generate", NULL};

		snprintf(name, sizeof(name), "agentwire_test_%u_%0200u_seconds", f, f);
		snprintf(help, sizeof(help), "Family %u.", f);
		aw_prom_family(&p, name, "histogram", help);
		aw_prom_hist(&p, name, l, &h, &aw_hist_latency_us, 1e6);
	}
	return p;
}

static void render_big(void **state)
{
	struct aw_prom p = big();

	(void)state;
	assert_int_equal(aw_prom_status(&p), 0);
	assert_true(p.len > 100000 && p.len < p.cap);
	assert_int_equal(strlen(p.buf), p.len);
	/* every histogram ends with the count of its observations */
	assert_non_null(
		strstr(p.buf, "0000000199_seconds_count{group=\"1\",op=\"generate\"} 2000\n"));
	aw_prom_fini(&p);
}

/* Debian's promtool (package prometheus) validates the exposition. */
static void promtool_accepts(void **state)
{
	struct aw_prom p = big();
	char path[] = "/tmp/aw-prom-XXXXXX", cmd[256];
	FILE *f;
	int fd, rc;

	(void)state;
	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		aw_prom_fini(&p);
		AW_SKIP("no promtool (Debian package prometheus)");
	}
	{
		const char *l[] = {"reason", "a \"quoted\"\\reason\n", NULL};

		aw_prom_family(&p, "agentwire_drops_total", "counter", "Drops \\ by\nreason.");
		aw_prom_u64(&p, "agentwire_drops_total", l, 3);
	}
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p.buf, 1, p.len, f), p.len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	rc = system(cmd);
	unlink(path);
	aw_prom_fini(&p);
	assert_int_equal(rc, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hist_buckets),		cmocka_unit_test(render_small),
		cmocka_unit_test(render_racing_reader), cmocka_unit_test(special_values),
		cmocka_unit_test(render_big),		cmocka_unit_test(promtool_accepts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
