/* test-loadgen.c — aw-loadgen's modules: the histogram's error bound, the
 * arrival processes' rates (within bounds derived from the sample count),
 * and the workload parser (valid files and every malformed shape). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arrival.h"
#include "hist.h"
#include "proto.h"
#include "workload.h"

/* ---- histogram ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void test_hist_buckets(void **state)
{
	(void)state;
	/* every value lies in the range of its bucket; buckets tile the line */
	uint64_t prev_hi = 0;

	for (unsigned i = 0; i < AW_HIST_BUCKETS; i++) {
		uint64_t lo, hi;

		aw_hist_bucket_range(i, &lo, &hi);
		if (i)
			assert_true(lo == prev_hi + 1);
		assert_int_equal(aw_hist_index(lo), i);
		assert_int_equal(aw_hist_index(hi), i);
		/* width bound: (hi - lo + 1) <= lo / 128 above the exact range */
		if (lo >= AW_HIST_SUB)
			assert_true((double)(hi - lo + 1) <= (double)lo / AW_HIST_SUB);
		prev_hi = hi;
	}
	assert_true(prev_hi == UINT64_MAX);
	assert_int_equal(aw_hist_index(0), 0);
	assert_int_equal(aw_hist_index(UINT64_MAX), AW_HIST_BUCKETS - 1);
}

/* Quantiles of random data against the exact order statistics: relative
 * error <= AW_HIST_MAX_REL_ERROR (1/256), which is below 1 %. */
static void check_quantiles(uint64_t *v, size_t n)
{
	static const double qs[] = {0.0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0};
	struct aw_hist *h = malloc(sizeof(*h));
	double sum = 0;

	assert_non_null(h);
	aw_hist_reset(h);
	for (size_t i = 0; i < n; i++) {
		aw_hist_record(h, v[i]);
		sum += (double)v[i];
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	assert_true(h->count == n);
	assert_true(h->min == v[0]);
	assert_true(h->max == v[n - 1]);
	assert_true(fabs(aw_hist_mean(h) - sum / (double)n) <= 1e-9 * sum / (double)n);
	for (unsigned k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
		size_t rank = qs[k] <= 0 ? 1 : (size_t)ceil(qs[k] * (double)n);
		uint64_t exact = v[(rank ? rank : 1) - 1], got = aw_hist_quantile(h, qs[k]);
		double rel = exact ? fabs((double)got - (double)exact) / (double)exact
				   : (double)(got != 0);

		if (rel > AW_HIST_MAX_REL_ERROR)
			fail_msg("q=%g exact %llu got %llu rel %g", qs[k],
				 (unsigned long long)exact, (unsigned long long)got, rel);
	}
	free(h);
}

static void test_hist_error_bound(void **state)
{
	static uint64_t v[200000];
	struct aw_rng r;
	(void)state;

	aw_rng_seed(&r, 42);
	/* log-uniform over 1 ns .. 10 s: every magnitude */
	for (size_t i = 0; i < 200000; i++)
		v[i] = (uint64_t)exp(aw_rng_unit(&r) * log(1e10));
	check_quantiles(v, 200000);
	/* a latency-like shape: 20 us body, heavy tail */
	for (size_t i = 0; i < 200000; i++)
		v[i] = 20000 + (uint64_t)aw_rng_exp(&r, 5000) +
		       (aw_rng_unit(&r) < 0.01 ? (uint64_t)aw_rng_exp(&r, 5e6) : 0);
	check_quantiles(v, 200000);
	/* small exact values and a single value */
	for (size_t i = 0; i < 1000; i++)
		v[i] = i % 100;
	check_quantiles(v, 1000);
	v[0] = 123456789;
	check_quantiles(v, 1);
}

static void test_hist_merge_empty(void **state)
{
	struct aw_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	(void)state;

	aw_hist_reset(a);
	aw_hist_reset(b);
	assert_true(aw_hist_quantile(a, 0.5) == 0);
	assert_true(aw_hist_mean(a) == 0);
	for (uint64_t i = 1; i <= 100; i++)
		aw_hist_record(i % 2 ? a : b, i * 1000);
	aw_hist_merge(a, b);
	assert_true(a->count == 100);
	assert_true(a->min == 1000 && a->max == 100000);
	assert_true(fabs((double)aw_hist_quantile(a, 0.5) - 50000) <= 50000 / 256.0);
	free(a);
	free(b);
}

/* ---- arrivals ---- */

static void test_rng(void **state)
{
	struct aw_rng r, s;
	(void)state;

	aw_rng_seed(&r, 7);
	aw_rng_seed(&s, 7);
	for (int i = 0; i < 100; i++)
		assert_true(aw_rng_next(&r) == aw_rng_next(&s));
	for (int i = 0; i < 100000; i++) {
		double u = aw_rng_unit(&r);
		uint64_t k = aw_rng_range(&r, 3, 9);

		assert_true(u > 0 && u <= 1);
		assert_true(k >= 3 && k <= 9);
	}
}

/* Poisson at rate L: N gaps are i.i.d. exponential with mean 1/L and
 * standard deviation 1/L, so the sample mean has standard deviation
 * 1/(L sqrt(N)); the fraction of gaps shorter than the mean is
 * 1 - 1/e with standard deviation sqrt(p(1-p)/N); the sample variance has
 * standard deviation sqrt(8/N)/L^2 (fourth moment 9/L^4). Each check
 * allows 5 standard deviations (a false failure about once in 3.5 million). */
static void test_poisson_rate(void **state)
{
	static const double rates[] = {1000.0, 250000.0, 3.5};
	const size_t n = 200000;
	(void)state;

	for (unsigned k = 0; k < 3; k++) {
		struct aw_arrival a;
		double L = rates[k], mean_gap = 1e9 / L, sum = 0, sum2 = 0, below = 0;
		uint64_t prev, t;

		assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_POISSON, L, 1234 + k), 0);
		prev = aw_arrival_next(&a);
		assert_true(prev == 0);
		for (size_t i = 0; i < n; i++) {
			double g;

			t = aw_arrival_next(&a);
			assert_true(t >= prev);
			g = (double)(t - prev);
			sum += g;
			sum2 += g * g;
			below += g < mean_gap;
			prev = t;
		}
		{
			double m = sum / (double)n, var = sum2 / (double)n - m * m;
			double p = 1 - exp(-1), frac = below / (double)n;

			/* +1 ns per gap: times are rounded to whole nanoseconds */
			assert_true(fabs(m - mean_gap) <= 5 * mean_gap / sqrt((double)n) + 1);
			assert_true(fabs(frac - p) <= 5 * sqrt(p * (1 - p) / (double)n));
			assert_true(fabs(var - mean_gap * mean_gap) <=
				    5 * sqrt(8.0 / (double)n) * mean_gap * mean_gap + 2 * mean_gap);
		}
	}
}

static void test_constant_rate(void **state)
{
	struct aw_arrival a;
	uint64_t t = 0;
	(void)state;

	/* 3/s does not divide 1e9: arrival k is still k/3 s to within rounding */
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_CONSTANT, 3.0, 1), 0);
	for (int i = 0; i <= 300000; i++) {
		t = aw_arrival_next(&a);
		assert_true(llabs((long long)t - (long long)i * 1000000000ll / 3) <= 1);
	}
	assert_true(t == 100000000000000ull);
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_CONSTANT, 1e6, 1), 0);
	for (int i = 0; i < 1000; i++)
		assert_true(aw_arrival_next(&a) == (uint64_t)i * 1000u);
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_CONSTANT, 0.0, 1), -EINVAL);
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_CONSTANT, -1.0, 1), -EINVAL);
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_POISSON, NAN, 1), -EINVAL);
	assert_int_equal(aw_arrival_init(&a, AW_ARRIVAL_POISSON, INFINITY, 1), -EINVAL);
	assert_int_equal(aw_arrival_init(&a, (enum aw_arrival_kind)7, 1.0, 1), -EINVAL);
	assert_int_equal(aw_arrival_parse_kind("poisson"), AW_ARRIVAL_POISSON);
	assert_int_equal(aw_arrival_parse_kind("constant"), AW_ARRIVAL_CONSTANT);
	assert_int_equal(aw_arrival_parse_kind("burst"), -EINVAL);
}

/* ---- workload ---- */

static const char good[] = "# agent mix\n"
			   "mix = generate:70 classify:20 ping:10   # weights\n"
			   "prompt_tokens = uniform:20:200\n"
			   "max_new_tokens = exp:24\n"
			   "chars_per_token = 3.5\n"
			   "shared_prefix = 0.75\n"
			   "prefix_tokens = 300\n"
			   "\n"
			   "sessions = 50\n"
			   "session_reuse = 0.9\n"
			   "deadline_us = 250000\n"
			   "labels = 6\n"
			   "temperature = 0.7\n"
			   "ping_bytes = 32\n";

static void test_workload_parse(void **state)
{
	struct aw_workload w;
	struct aw_err err;
	(void)state;

	aw_workload_default(&w);
	assert_int_equal(aw_workload_parse(&w, good, strlen(good), "good", &err), 0);
	assert_true(w.weight[AW_WL_GENERATE] == 70 && w.weight[AW_WL_CLASSIFY] == 20);
	assert_true(w.weight[AW_WL_PING] == 10 && w.weight[AW_WL_STATS] == 0);
	assert_int_equal(w.prompt_tokens.kind, AW_WL_UNIFORM);
	assert_true(w.prompt_tokens.a == 20 && w.prompt_tokens.b == 200);
	assert_int_equal(w.max_new_tokens.kind, AW_WL_EXP);
	assert_true(w.chars_per_token == 3.5 && w.shared_prefix == 0.75);
	assert_int_equal(w.prefix_tokens, 300);
	assert_int_equal(w.sessions, 50);
	assert_int_equal(w.deadline_us, 250000);
	assert_int_equal(w.labels, 6);
	assert_int_equal(w.ping_bytes, 32);
	/* no trailing newline, CRLF-free, empty file: fine */
	aw_workload_default(&w);
	assert_int_equal(aw_workload_parse(&w, "labels=2", 8, "x", &err), 0);
	assert_int_equal(w.labels, 2);
	assert_int_equal(aw_workload_parse(&w, "", 0, "x", &err), 0);
}

static void expect_bad(const char *text, const char *needle)
{
	struct aw_workload w;
	struct aw_err err;

	aw_workload_default(&w);
	memset(&err, 0, sizeof(err));
	assert_int_equal(aw_workload_parse(&w, text, strlen(text), "wl", &err), -EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, needle);
}

static void test_workload_malformed(void **state)
{
	(void)state;
	expect_bad("mix generate:1\n", "wl:1: expected 'key = value'");
	expect_bad("\n\nbogus = 1\n", "wl:3: unknown key 'bogus'");
	expect_bad("labels = 2\nlabels = 3\n", "wl:2: key 'labels' given twice");
	expect_bad("labels =\n", "has no value");
	expect_bad("labels = 0\n", "labels: bad value '0'");
	expect_bad("labels = 300\n", "labels: bad value");
	expect_bad("labels = 2.5\n", "labels: bad value");
	expect_bad("mix = generate\n", "not op:weight");
	expect_bad("mix = dance:1\n", "unknown op 'dance'");
	expect_bad("mix = ping:x\n", "weight 'x'");
	expect_bad("mix = ping:-1\n", "weight '-1'");
	expect_bad("mix = ping:0 generate:0\n", "sum to 0");
	expect_bad("mix = generate:35 generate:0\n", "op 'generate' listed twice");
	expect_bad("prompt_tokens = 12\n", "fixed:N, uniform");
	expect_bad("prompt_tokens = uniform:9:3\n", "bad value");
	expect_bad("prompt_tokens = uniform:3\n", "bad value");
	expect_bad("prompt_tokens = fixed:1:2\n", "bad value");
	expect_bad("prompt_tokens = zipf:1\n", "bad value");
	expect_bad("max_new_tokens = exp:0\n", "bad value");
	expect_bad("shared_prefix = 1.5\n", "shared_prefix: bad value");
	expect_bad("shared_prefix = 0.5\n", "needs prefix_tokens");
	expect_bad("session_reuse = nan\n", "session_reuse: bad value");
	expect_bad("temperature = 1e999\n", "temperature: bad value");
	expect_bad("ping_bytes = 1e5\n", "ping_bytes: bad value");
	expect_bad("deadline_us = -5\n", "deadline_us: bad value");
	{
		char longline[2000];

		memset(longline, 'a', sizeof(longline));
		longline[sizeof(longline) - 1] = 0;
		expect_bad(longline, "longer than");
	}
	{
		struct aw_workload w;
		struct aw_err err;

		aw_workload_default(&w);
		assert_int_equal(aw_workload_parse(&w, "labels = 2\0x", 12, "wl", &err), -EINVAL);
		assert_non_null(strstr(err.msg, "NUL"));
		assert_true(aw_workload_load(&w, "/nonexistent/wl", &err) < 0);
		assert_non_null(strstr(err.msg, "/nonexistent/wl"));
	}
}

static void test_workload_requests(void **state)
{
	static uint8_t buf[AW_PROTO_MAX_MSG];
	struct aw_workload w;
	struct aw_err err;
	struct aw_rng r;
	unsigned count[AW_WL_OPS] = {0}, with_prefix = 0, gen = 0, reused = 0, sess = 0;
	const unsigned n = 20000;
	(void)state;

	aw_workload_default(&w);
	assert_int_equal(aw_workload_parse(&w, good, strlen(good), "good", &err), 0);
	assert_int_equal(aw_workload_prepare(&w), 0);
	aw_rng_seed(&r, 99);
	for (unsigned i = 0; i < n; i++) {
		struct aw_wl_req q;
		struct aw_proto_req body;
		struct aw_proto_err e;

		assert_int_equal(aw_workload_next(&w, &r, buf, sizeof(buf), &q), 0);
		count[q.op]++;
		if (q.op == AW_WL_PING) {
			assert_int_equal(q.type, AW_PROTO_PING);
			assert_int_equal(q.len, 32);
			continue;
		}
		/* every synthesized body passes the server's parser */
		assert_int_equal(aw_proto_req_parse(q.type, q.body, q.len, &body, &e), 0);
		assert_int_equal(body.deadline_us, 250000);
		if (q.op == AW_WL_CLASSIFY) {
			assert_int_equal(body.n_labels, 6);
			assert_int_equal(q.session_id, 0); /* sessions are for generation */
		}
		if (q.op == AW_WL_GENERATE) {
			gen++;
			assert_true(body.max_new_tokens >= 1);
			assert_true(q.session_id != 0);
			sess++;
			reused += q.session_id <= 50;
			if (body.prompt.len >= w.prefix_len &&
			    memcmp(body.prompt.p, w.prefix, w.prefix_len) == 0)
				with_prefix++;
		}
		/* prompt length: prefix (0 or 300 * 3.5 = 1050) + 20..200 tokens * 3.5 */
		assert_true((body.prompt.len >= 70 && body.prompt.len <= 700) ||
			    (body.prompt.len >= 1120 && body.prompt.len <= 1750));
	}
	/* mix 70/20/10 and the prefix/session fractions within 5 binomial sd */
	{
		double p[3] = {0.7, 0.2, 0.1};
		unsigned idx[3] = {AW_WL_GENERATE, AW_WL_CLASSIFY, AW_WL_PING};

		for (int k = 0; k < 3; k++)
			assert_true(fabs(count[idx[k]] / (double)n - p[k]) <=
				    5 * sqrt(p[k] * (1 - p[k]) / n));
		assert_true(fabs(with_prefix / (double)sess - 0.75) <=
			    5 * sqrt(0.75 * 0.25 / sess));
		assert_true(fabs(reused / (double)sess - 0.9) <= 5 * sqrt(0.9 * 0.1 / sess));
		assert_true(gen > 0);
	}
	aw_workload_fini(&w);
}

/* the agent operations: tools (messages + tool list), EMBED options */
static void test_workload_agent(void **state)
{
	static uint8_t buf[AW_PROTO_MAX_MSG];
	static const char wl[] = "mix = tools:1 embed:1 classify:1 generate:1\n"
				 "tools = 3\ntool_choice = required\npooling = last\n"
				 "normalize = 0\nprefix_tokens = 10\nshared_prefix = 1\n";
	struct aw_workload w;
	struct aw_err err;
	struct aw_rng r;
	unsigned seen[AW_WL_OPS] = {0};
	(void)state;

	aw_workload_default(&w);
	assert_int_equal(aw_workload_parse(&w, wl, strlen(wl), "wl", &err), 0);
	assert_int_equal(aw_workload_prepare(&w), 0);
	aw_rng_seed(&r, 5);
	for (int i = 0; i < 400; i++) {
		struct aw_wl_req q;
		struct aw_proto_req b;
		struct aw_proto_err e;

		assert_int_equal(aw_workload_next(&w, &r, buf, sizeof(buf), &q), 0);
		assert_int_equal(aw_proto_req_parse(q.type, q.body, q.len, &b, &e), 0);
		seen[q.op]++;
		switch (q.op) {
		case AW_WL_TOOLS:
			assert_int_equal(q.type, AW_PROTO_GENERATE);
			assert_null(b.prompt.p);
			assert_true(b.messages.len > 20 && b.messages.p[0] == '[' &&
				    b.messages.p[b.messages.len - 1] == ']');
			/* the shared prefix is the system message */
			assert_non_null(
				memmem(b.messages.p, b.messages.len, w.prefix, w.prefix_len));
			assert_non_null(memmem(b.tools.p, b.tools.len, "\"tool2\"", 7));
			assert_null(memmem(b.tools.p, b.tools.len, "\"tool3\"", 7));
			assert_int_equal(b.tool_choice, AW_PROTO_TOOLS_REQUIRED);
			break;
		case AW_WL_EMBED:
			assert_int_equal(b.pooling, AW_PROTO_POOL_LAST);
			assert_int_equal(b.embed_flags, 0);
			break;
		default:
			assert_null(b.messages.p);
			break;
		}
	}
	assert_true(seen[AW_WL_TOOLS] > 50 && seen[AW_WL_EMBED] > 50);
	assert_string_equal(aw_wl_op_name(AW_WL_TOOLS), "tools");
	aw_workload_fini(&w);
	expect_bad("tools = 0\n", "tools: bad value");
	expect_bad("tools = 129\n", "tools: bad value");
	expect_bad("tool_choice = maybe\n", "tool_choice: bad value");
	expect_bad("pooling = max\n", "pooling: bad value");
	expect_bad("normalize = 2\n", "normalize: bad value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hist_buckets),	  cmocka_unit_test(test_hist_error_bound),
		cmocka_unit_test(test_hist_merge_empty),  cmocka_unit_test(test_rng),
		cmocka_unit_test(test_poisson_rate),	  cmocka_unit_test(test_constant_rate),
		cmocka_unit_test(test_workload_parse),	  cmocka_unit_test(test_workload_malformed),
		cmocka_unit_test(test_workload_requests), cmocka_unit_test(test_workload_agent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
