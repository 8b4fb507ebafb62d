/* test-sample.c — inference/sample.c: greedy, top-k/top-p/min-p sets
 * computed by hand, sampled distributions checked against their
 * probabilities (bounds of 5 standard deviations of a binomial count, so a
 * correct sampler fails with probability < 1e-6 per bucket; the draws are
 * seeded, so the test is deterministic anyway), penalties, masks and hooks,
 * per-request seeds, and the stop-string matcher across token boundaries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample.h"

static struct aw_sampler *mk(const struct aw_sample_params *p, int32_t nv)
{
	struct aw_sampler *s = NULL;

	assert_int_equal(aw_sample_new(p, nv, &s), 0);
	assert_non_null(s);
	return s;
}

/* Draw n tokens and count them per id. */
static void histogram(struct aw_sampler *s, const float *l, int nv, int n, int *count)
{
	memset(count, 0, sizeof(int) * (size_t)nv);
	for (int i = 0; i < n; i++) {
		int32_t t = aw_sample_pick(s, l);
		assert_true(t >= 0 && t < nv);
		count[t]++;
	}
}

/* |count - n p| <= 5 sqrt(n p (1-p)) + 1, and zero where p == 0 */
static void assert_binomial(const int *count, const double *prob, int nv, int n)
{
	for (int i = 0; i < nv; i++) {
		double mean = n * prob[i], sd = sqrt(n * prob[i] * (1.0 - prob[i]));

		if (prob[i] == 0.0) {
			assert_int_equal(count[i], 0);
			continue;
		}
		if (fabs(count[i] - mean) > 5.0 * sd + 1.0)
			fail_msg("token %d: %d draws, expected %.1f +- %.1f", i, count[i], mean,
				 5 * sd + 1);
	}
}

static void test_greedy(void **state)
{
	struct aw_sample_params p;
	float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, NAN, 2.0f};
	uint64_t none = 0;

	(void)state;
	aw_sample_params_default(&p);
	struct aw_sampler *s = mk(&p, 6);
	assert_int_equal(aw_sample_pick(s, l), 1); /* tie 1/3: lowest id, NaN skipped */
	l[1] = -INFINITY;
	assert_int_equal(aw_sample_pick(s, l), 3);
	aw_sample_set_mask(s, &none);
	assert_int_equal(aw_sample_pick(s, l), -1); /* nothing allowed */
	aw_sample_free(s);
}

static void test_top_k_set(void **state)
{
	struct aw_sample_params p;
	/* k = 2 over {1,5,3,5,2}: ids 1 and 3, equally likely */
	float l[5] = {1, 5, 3, 5, 2};
	double prob[5] = {0, 0.5, 0, 0.5, 0};
	int count[5];

	(void)state;
	aw_sample_params_default(&p);
	p.temperature = 1.0f;
	p.top_k = 2;
	p.seed = 7;
	struct aw_sampler *s = mk(&p, 5);
	histogram(s, l, 5, 20000, count);
	assert_binomial(count, prob, 5, 20000);
	aw_sample_free(s);

	/* ties at the k-th logit go to the lower id: {1, 2} */
	float l2[4] = {1, 5, 3, 3};
	double prob2[4];
	double e0 = exp(0.0), e2 = exp(-2.0);
	prob2[0] = 0;
	prob2[1] = e0 / (e0 + e2);
	prob2[2] = e2 / (e0 + e2);
	prob2[3] = 0;
	s = mk(&p, 4);
	histogram(s, l2, 4, 20000, count);
	assert_binomial(count, prob2, 4, 20000);
	aw_sample_free(s);
}

/* probabilities 0.05 0.5 0.15 0.3 (logits are their logs) */
static const float P4[4] = {0.05f, 0.5f, 0.15f, 0.3f};

static void logs4(float *l)
{
	for (int i = 0; i < 4; i++)
		l[i] = logf(P4[i]);
}

static void test_top_p_set(void **state)
{
	struct aw_sample_params p;
	float l[4];
	int count[4];

	(void)state;
	logs4(l);
	aw_sample_params_default(&p);
	p.temperature = 1.0f;
	p.seed = 11;

	/* p = 0.75: 0.5 + 0.3 = 0.8 reaches it -> {1, 3} renormalised 5/8, 3/8 */
	p.top_p = 0.75f;
	struct aw_sampler *s = mk(&p, 4);
	double a[4] = {0, 0.625, 0, 0.375};
	histogram(s, l, 4, 20000, count);
	assert_binomial(count, a, 4, 20000);
	aw_sample_free(s);

	/* p = 0.85: needs 0.15 too -> {1, 3, 2} over 0.95 */
	p.top_p = 0.85f;
	s = mk(&p, 4);
	double b[4] = {0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95};
	histogram(s, l, 4, 20000, count);
	assert_binomial(count, b, 4, 20000);
	aw_sample_free(s);

	/* p = 0.4: the first token alone */
	p.top_p = 0.4f;
	s = mk(&p, 4);
	for (int i = 0; i < 100; i++)
		assert_int_equal(aw_sample_pick(s, l), 1);
	aw_sample_free(s);
}

static void test_min_p_set(void **state)
{
	struct aw_sample_params p;
	float l[4];
	int count[4];

	(void)state;
	logs4(l);
	aw_sample_params_default(&p);
	p.temperature = 1.0f;
	p.seed = 12;
	/* min_p 0.2: threshold 0.2 * 0.5 = 0.1 drops 0.05 -> {1, 3, 2} */
	p.min_p = 0.2f;
	struct aw_sampler *s = mk(&p, 4);
	double a[4] = {0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95};
	histogram(s, l, 4, 20000, count);
	assert_binomial(count, a, 4, 20000);
	aw_sample_free(s);

	/* min_p 0.5 -> threshold 0.25 -> {1, 3}; with top_k 1 -> {1} */
	p.min_p = 0.5f;
	s = mk(&p, 4);
	double b[4] = {0, 0.625, 0, 0.375};
	histogram(s, l, 4, 20000, count);
	assert_binomial(count, b, 4, 20000);
	aw_sample_free(s);
	p.top_k = 1;
	s = mk(&p, 4);
	for (int i = 0; i < 50; i++)
		assert_int_equal(aw_sample_pick(s, l), 1);
	aw_sample_free(s);
}

static void test_temperature(void **state)
{
	struct aw_sample_params p;
	float l[4];
	int count[4];
	double q[4], z = 0;

	(void)state;
	logs4(l);
	aw_sample_params_default(&p);
	p.seed = 99;
	/* T = 1: the probabilities themselves */
	p.temperature = 1.0f;
	struct aw_sampler *s = mk(&p, 4);
	double a[4];
	for (int i = 0; i < 4; i++)
		a[i] = P4[i];
	histogram(s, l, 4, 40000, count);
	assert_binomial(count, a, 4, 40000);
	aw_sample_free(s);
	/* T = 2: proportional to sqrt(p) */
	p.temperature = 2.0f;
	s = mk(&p, 4);
	for (int i = 0; i < 4; i++)
		z += q[i] = sqrt(P4[i]);
	for (int i = 0; i < 4; i++)
		q[i] /= z;
	histogram(s, l, 4, 40000, count);
	assert_binomial(count, q, 4, 40000);
	aw_sample_free(s);
}

/* The nucleus reaches past the tokens near the top: one token at 0 and 990
 * at -13 (each e^-13 of it); top_p 0.999 needs the first ~546 of the tail, in
 * id order (they tie). Every draw must fall in the set computed here by a
 * full sort. */
static void test_top_p_wide(void **state)
{
	enum { NV = 991 };
	struct aw_sample_params p;
	float l[NV];
	double z = 1.0, cum;
	int keep, count[NV];

	(void)state;
	l[0] = 0.0f;
	for (int i = 1; i < NV; i++)
		l[i] = -13.0f;
	z += (NV - 1) * exp(-13.0);
	cum = 1.0 / z;
	for (keep = 1; keep < NV && cum < 0.999; keep++)
		cum += exp(-13.0) / z;
	assert_true(keep > 100 && keep < NV); /* the case this test is about */
	aw_sample_params_default(&p);
	p.temperature = 30.0f; /* flattens the survivors so the tail is drawn */
	p.top_p = 0.999f;
	p.seed = 3;
	struct aw_sampler *s = mk(&p, NV);
	histogram(s, l, NV, 5000, count);
	int tail_hits = 0;
	for (int i = keep; i < NV; i++)
		assert_int_equal(count[i], 0);
	for (int i = 1; i < keep; i++)
		tail_hits += count[i];
	assert_true(tail_hits > 0);
	aw_sample_free(s);
}

static void test_seed(void **state)
{
	struct aw_sample_params p;
	float l[8];
	int same = 0;

	(void)state;
	for (int i = 0; i < 8; i++)
		l[i] = (float)(i % 3);
	aw_sample_params_default(&p);
	p.temperature = 1.0f;
	p.seed = 1234;
	struct aw_sampler *a = mk(&p, 8), *b = mk(&p, 8);
	p.seed = 1235;
	struct aw_sampler *c = mk(&p, 8);
	int32_t first[200];
	for (int i = 0; i < 200; i++) {
		int32_t x = aw_sample_pick(a, l), y = aw_sample_pick(b, l),
			z = aw_sample_pick(c, l);
		assert_int_equal(x, y);
		same += x == z;
		first[i] = x;
	}
	assert_true(same < 150); /* another seed, another stream */
	/* reset with the same seed replays the stream */
	aw_sample_reset(a, 1234);
	for (int i = 0; i < 200; i++)
		assert_int_equal(aw_sample_pick(a, l), first[i]);
	aw_sample_free(a);
	aw_sample_free(b);
	aw_sample_free(c);
}

static void test_penalties(void **state)
{
	struct aw_sample_params p;
	float l[3] = {2.0f, -1.0f, 1.5f};
	int32_t prompt[2] = {0, 1};

	(void)state;
	aw_sample_params_default(&p);
	/* repetition 2: 2 -> 1 (below 1.5), -1 -> -2 */
	p.repeat_penalty = 2.0f;
	struct aw_sampler *s = mk(&p, 3);
	assert_int_equal(aw_sample_pick(s, l), 0);
	aw_sample_prime(s, prompt, 2);
	assert_int_equal(aw_sample_pick(s, l), 2);
	aw_sample_free(s);

	/* repetition 1.25: 2 -> 1.6, still above 1.5 */
	p.repeat_penalty = 1.25f;
	s = mk(&p, 3);
	aw_sample_prime(s, prompt, 2);
	assert_int_equal(aw_sample_pick(s, l), 0);
	aw_sample_free(s);

	/* presence 0.4 counts once: 2 - 0.4 = 1.6 > 1.5 even when seen 3 times */
	p.repeat_penalty = 1.0f;
	p.presence_penalty = 0.4f;
	int32_t three[3] = {0, 0, 0};
	s = mk(&p, 3);
	aw_sample_prime(s, three, 3);
	assert_int_equal(aw_sample_pick(s, l), 0);
	aw_sample_free(s);
	/* frequency 0.2 per occurrence: 2 - 3 * 0.2 = 1.4 < 1.5 */
	p.presence_penalty = 0.0f;
	p.frequency_penalty = 0.2f;
	s = mk(&p, 3);
	aw_sample_prime(s, three, 3);
	assert_int_equal(aw_sample_pick(s, l), 2);
	/* the window is 64: 64 accepted other tokens push the three 0s out */
	for (int i = 0; i < 64; i++) {
		const char *t;
		size_t n;
		aw_sample_accept(s, 1, "", 0, &t, &n);
	}
	assert_int_equal(aw_sample_pick(s, l), 0);
	aw_sample_free(s);

	/* window of 2: only the last two tokens count */
	p.frequency_penalty = 0.0f;
	p.repeat_penalty = 2.0f;
	p.penalty_last_n = 2;
	int32_t seq[3] = {0, 1, 2};
	s = mk(&p, 3);
	aw_sample_prime(s, seq, 3);
	/* 0 left the window: 2 stays; 2 in it: 1.5 -> 0.75 */
	assert_int_equal(aw_sample_pick(s, l), 0);
	aw_sample_free(s);
}

struct hook_state {
	int32_t allowed; /* the only token the hook allows */
	int32_t seen[8];
	int n_seen;
};

static void hook_fill(void *ctx, uint64_t *bits, int32_t nv)
{
	struct hook_state *h = ctx;

	for (int32_t t = 0; t < nv; t++)
		if (t != h->allowed)
			bits[t >> 6] &= ~(1ull << (t & 63));
}

static void hook_accept(void *ctx, int32_t t)
{
	struct hook_state *h = ctx;

	h->seen[h->n_seen++] = t;
}

static void test_mask_and_hook(void **state)
{
	enum { NV = 130 };
	struct aw_sample_params p;
	float l[NV];
	uint64_t mask[3] = {0, 0, 0};
	int count[NV];

	(void)state;
	for (int i = 0; i < NV; i++)
		l[i] = (float)(i % 5);
	mask[0] |= 1ull << 3;
	mask[2] |= 1ull << (129 - 128);
	aw_sample_params_default(&p);
	p.temperature = 1.0f;
	struct aw_sampler *s = mk(&p, NV);
	aw_sample_set_mask(s, mask);
	histogram(s, l, NV, 2000, count);
	/* 3 and 129 have logits 3 and 4: e^3/(e^3+e^4), e^4/(e^3+e^4) */
	double prob[NV] = {0};
	prob[3] = 1.0 / (1.0 + M_E);
	prob[129] = M_E / (1.0 + M_E);
	assert_binomial(count, prob, NV, 2000);
	aw_sample_set_mask(s, NULL);

	struct hook_state h = {.allowed = 77};
	struct aw_sample_hook hk = {hook_fill, hook_accept, &h};
	aw_sample_set_hook(s, &hk);
	for (int i = 0; i < 3; i++) {
		const char *t;
		size_t n;
		int32_t tok = aw_sample_pick(s, l);
		assert_int_equal(tok, 77);
		aw_sample_accept(s, tok, "x", 1, &t, &n);
	}
	assert_int_equal(h.n_seen, 3);
	assert_int_equal(h.seen[2], 77);
	aw_sample_set_hook(s, NULL);
	aw_sample_free(s);
}

/* Feed pieces; collect the emitted text; return the finish reason of the
 * last piece (or of the first non-continue). */
static enum aw_sample_finish feed(struct aw_sampler *s, const char *const *pieces, int n, char *out,
				  int32_t eos_at)
{
	enum aw_sample_finish f = AW_SAMPLE_CONTINUE;

	out[0] = 0;
	for (int i = 0; i < n && f == AW_SAMPLE_CONTINUE; i++) {
		const char *t;
		size_t len;
		f = aw_sample_accept(s, i == eos_at ? 2 : 5, pieces[i], strlen(pieces[i]), &t,
				     &len);
		strncat(out, t, len);
	}
	return f;
}

static void test_stop_strings(void **state)
{
	struct aw_sample_params p;
	char out[256];

	(void)state;
	aw_sample_params_default(&p);
	p.n_stop = 2;
	p.stop[0] = "</s>";
	p.stop[1] = "STOP";
	struct aw_sampler *s = mk(&p, 10);

	/* the stop string spans three tokens; the text before it is emitted */
	const char *a[] = {"Hel", "lo <", "/", "s> more", "never"};
	assert_int_equal(feed(s, a, 5, out, -1), AW_SAMPLE_STOP);
	assert_string_equal(out, "Hello ");

	/* held-back text that turns out not to be a stop string is released */
	aw_sample_reset(s, 0);
	const char *b[] = {"ab<", "/x", "ST", "OP!"};
	assert_int_equal(feed(s, b, 4, out, -1), AW_SAMPLE_STOP);
	assert_string_equal(out, "ab</x");

	/* the held-back part is visible step by step */
	aw_sample_reset(s, 0);
	const char *t;
	size_t n;
	assert_int_equal(aw_sample_accept(s, 5, "x</", 3, &t, &n), AW_SAMPLE_CONTINUE);
	assert_int_equal((int)n, 1);
	assert_memory_equal(t, "x", 1);
	assert_int_equal(aw_sample_accept(s, 5, "y", 1, &t, &n), AW_SAMPLE_CONTINUE);
	assert_int_equal((int)n, 3);
	assert_memory_equal(t, "</y", 3);

	/* the earliest of two stop strings wins; one inside a single piece */
	aw_sample_reset(s, 0);
	const char *c[] = {"aSTOPb</s>"};
	assert_int_equal(feed(s, c, 1, out, -1), AW_SAMPLE_STOP);
	assert_string_equal(out, "a");
	aw_sample_free(s);
}

static void test_eos_and_length(void **state)
{
	struct aw_sample_params p;
	char out[256];

	(void)state;
	aw_sample_params_default(&p);
	p.n_eos = 1;
	p.eos[0] = 2;
	p.max_tokens = 3;
	p.n_stop = 1;
	p.stop[0] = "<end>";
	struct aw_sampler *s = mk(&p, 10);

	/* EOS at the second token: the held "<e" is released, the EOS piece not */
	const char *a[] = {"hi <e", "EOSPIECE", "z"};
	assert_int_equal(feed(s, a, 3, out, 1), AW_SAMPLE_EOS);
	assert_string_equal(out, "hi <e");
	assert_int_equal(aw_sample_count(s), 2);

	/* three tokens: LENGTH on the third, with the held-back "<en" released */
	aw_sample_reset(s, 0);
	const char *b[] = {"a", "b", "<en", "d>"};
	assert_int_equal(feed(s, b, 4, out, -1), AW_SAMPLE_LENGTH);
	assert_string_equal(out, "ab<en");
	assert_int_equal(aw_sample_count(s), 3);
	assert_string_equal(aw_sample_finish_name(AW_SAMPLE_LENGTH), "length");
	aw_sample_free(s);
}

static void test_params_check(void **state)
{
	struct aw_sample_params p;
	struct aw_sampler *s = NULL;
	const char *why = NULL;

	(void)state;
	aw_sample_params_default(&p);
	assert_int_equal(aw_sample_params_check(&p, 10, &why), 0);
	p.top_p = 0.0f;
	assert_int_equal(aw_sample_params_check(&p, 10, &why), -EINVAL);
	assert_non_null(strstr(why, "top_p"));
	aw_sample_params_default(&p);
	p.repeat_penalty = 0.0f;
	assert_int_equal(aw_sample_new(&p, 10, &s), -EINVAL);
	assert_null(s);
	aw_sample_params_default(&p);
	p.n_eos = 1;
	p.eos[0] = 10;
	assert_int_equal(aw_sample_params_check(&p, 10, &why), -EINVAL);
	aw_sample_params_default(&p);
	p.n_stop = 1;
	p.stop[0] = "";
	assert_int_equal(aw_sample_params_check(&p, 10, &why), -EINVAL);
	aw_sample_params_default(&p);
	p.temperature = INFINITY;
	assert_int_equal(aw_sample_params_check(&p, 10, &why), -EINVAL);
	aw_sample_params_default(&p);
	assert_int_equal(aw_sample_params_check(&p, 0, &why), -EINVAL);
}

/* A uniform draw lies in [0, 1) and its mean and variance match 1/2, 1/12
 * within 5 standard errors. */
static void test_uniform(void **state)
{
	struct aw_sample_params p;
	double sum = 0, sq = 0;
	const int n = 100000;

	(void)state;
	aw_sample_params_default(&p);
	struct aw_sampler *s = mk(&p, 2);
	for (int i = 0; i < n; i++) {
		double u = aw_sample_uniform(s);
		assert_true(u >= 0.0 && u < 1.0);
		sum += u;
		sq += u * u;
	}
	double mean = sum / n, var = sq / n - mean * mean;
	assert_true(fabs(mean - 0.5) < 5 * sqrt(1.0 / 12 / n));
	/* var of u^2 is 4/45; the variance estimate's error is about sqrt(1/180/n) */
	assert_true(fabs(var - 1.0 / 12) < 5 * sqrt(1.0 / 180 / n) + 1e-4);
	aw_sample_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy),	       cmocka_unit_test(test_top_k_set),
		cmocka_unit_test(test_top_p_set),      cmocka_unit_test(test_min_p_set),
		cmocka_unit_test(test_temperature),    cmocka_unit_test(test_top_p_wide),
		cmocka_unit_test(test_seed),	       cmocka_unit_test(test_penalties),
		cmocka_unit_test(test_mask_and_hook),  cmocka_unit_test(test_stop_strings),
		cmocka_unit_test(test_eos_and_length), cmocka_unit_test(test_params_check),
		cmocka_unit_test(test_uniform),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
