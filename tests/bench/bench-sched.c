/* bench-sched.c — the scheduler's two headline figures, measured in one run:
 *
 *   1. aggregate decode tokens/s with N requests decoding together (batch N)
 *      beside batch 1 (which is also N requests served one at a time: the
 *      per-token cost does not depend on how many wait), for each N given;
 *      batch 1 is measured first and last so that drift of the shared machine
 *      shows;
 *   2. time to first token of a request whose first P tokens are in the
 *      prefix cache versus the same request with the cache flushed (best and
 *      median of R pairs, alternated).
 *
 *   bench-sched MODEL [--threads N] [--gen N] [--batches 1,2,4,...]
 *                     [--prefix P] [--reps R]
 *
 * Prompts are random token ids (no tokenizer): the work per token does not
 * depend on which tokens they are. Usage errors exit 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "gguf.h"
#include "kern.h"
#include "model.h"
#include "pool.h"
#include "scheduler.h"

struct counts {
	unsigned char seen[256]; /* request ids that have a token */
	int done;
	int first;
	uint64_t t_first_all; /* when the last request got its first token */
	uint64_t t_done;
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct counts *c = ctx;

	if (ev->token >= 0 && ev->id < 256 && !c->seen[ev->id]) {
		c->seen[ev->id] = 1;
		c->first++;
		c->t_first_all = aw_sched_now_us();
	}
	if (ev->done) {
		c->done++;
		c->t_done = aw_sched_now_us();
	}
}

/* CPU time of the process in us: on a shared machine the wall clock
 * measures the neighbours too; with one thread this is the work done */
static uint64_t cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rng = 88172645463325252ull;

static int32_t rnd_tok(int32_t n_vocab)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (int32_t)(rng % (uint64_t)(n_vocab - 3)) + 3;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: bench-sched MODEL [--threads N] [--gen N] [--batches LIST] "
		   "[--prefix P] [--reps R]\n");
}

static int parse_int(const char *s, int lo, int hi, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*ret = (int)v;
	return 0;
}

/* decode tokens/s with 'batch' requests generating 'gen' tokens each */
static double decode_rate(struct aw_model *m, struct aw_pool *pool, int batch, int gen,
			  double *ret_cpu_rate)
{
	const int32_t nv = aw_model_hparams(m)->n_vocab;
	struct aw_sched_config c = {
		.max_batch = batch, .prefill_chunk = 256, .ctx = gen + 24, .no_prefix_cache = 1};
	struct counts k = {0};
	struct aw_sched *s = NULL;
	int32_t prompt[8];

	if (aw_sched_new(m, NULL, pool, &c, on_event, &k, &s) < 0)
		return -1;
	for (int i = 0; i < batch; i++) {
		struct aw_sched_req r = {.id = (uint64_t)i, .tokens = prompt, .n_tokens = 8};
		for (int j = 0; j < 8; j++)
			prompt[j] = rnd_tok(nv);
		aw_sample_params_default(&r.sample);
		r.sample.max_tokens = gen;
		if (aw_sched_submit(s, &r) < 0) {
			aw_sched_free(s);
			return -1;
		}
	}
	/* prefill (all requests get their first token), then time the rest */
	while (k.first < batch)
		aw_sched_step(s, aw_sched_now_us());
	const uint64_t t0 = aw_sched_now_us(), c0 = cpu_us();
	while (aw_sched_step(s, aw_sched_now_us()) > 0)
		;
	const uint64_t t1 = aw_sched_now_us(), c1 = cpu_us();
	aw_sched_free(s);
	*ret_cpu_rate = (double)batch * (gen - 1) / ((double)(c1 - c0 + 1) * 1e-6);
	return (double)batch * (gen - 1) / ((double)(t1 - t0) * 1e-6);
}

/* TTFT in us of a request of prefix + 16 new tokens, with or without the
 * prefix in the cache */
static double ttft(struct aw_sched *s, struct counts *k, const int32_t *prefix, int P, int cached,
		   int32_t n_vocab, int32_t *cached_tokens, double *ret_cpu)
{
	int32_t *p = malloc(sizeof(int32_t) * (size_t)(P + 16));

	if (!p)
		return -1;
	memcpy(p, prefix, sizeof(int32_t) * (size_t)P);
	for (int j = 0; j < 16; j++)
		p[P + j] = rnd_tok(n_vocab);
	if (!cached)
		aw_sched_flush(s);
	struct aw_sched_req r = {.id = 1, .tokens = p, .n_tokens = P + 16};
	aw_sample_params_default(&r.sample);
	r.sample.max_tokens = 1;
	memset(k, 0, sizeof(*k));
	struct aw_sched_stats a, b;
	aw_sched_get_stats(s, &a);
	const uint64_t t0 = aw_sched_now_us(), c0 = cpu_us();
	if (aw_sched_submit(s, &r) < 0) {
		free(p);
		return -1;
	}
	while (!k->done)
		aw_sched_step(s, aw_sched_now_us());
	const uint64_t t1 = k->t_done;
	*ret_cpu = (double)(cpu_us() - c0);
	aw_sched_get_stats(s, &b);
	*cached_tokens = (int32_t)(b.cached_tokens - a.cached_tokens);
	free(p);
	return (double)(t1 - t0);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int threads = 1, gen = 24, P = 1000, reps = 3;
	int batches[16] = {1, 2, 4, 8, 16, 32}, n_b = 6;
	struct aw_err err;
	struct aw_gguf *g = NULL;
	struct aw_model *m = NULL;
	struct aw_pool *pool = NULL;

	if (argc < 2 || argv[1][0] == '-') {
		usage(stderr);
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int bad = !v;

		if (!bad && strcmp(argv[i], "--threads") == 0)
			bad = parse_int(v, 1, 256, &threads);
		else if (!bad && strcmp(argv[i], "--gen") == 0)
			bad = parse_int(v, 2, 1000, &gen);
		else if (!bad && strcmp(argv[i], "--prefix") == 0)
			bad = parse_int(v, 16, 100000, &P);
		else if (!bad && strcmp(argv[i], "--reps") == 0)
			bad = parse_int(v, 1, 100, &reps);
		else if (!bad && strcmp(argv[i], "--batches") == 0) {
			char buf[128], *save = NULL;
			snprintf(buf, sizeof(buf), "%s", v);
			n_b = 0;
			for (char *t = strtok_r(buf, ",", &save); t && !bad;
			     t = strtok_r(NULL, ",", &save))
				bad = n_b == 15 || parse_int(t, 1, 256, &batches[n_b++]);
			bad = bad || n_b == 0;
		} else
			bad = 1;
		if (bad) {
			fprintf(stderr, "bench-sched: bad option %s%s%s\n", argv[i], v ? " " : "",
				v ? v : "");
			usage(stderr);
			return 2;
		}
		i++;
	}
	int ret = aw_gguf_open(argv[1], &g, &err);
	struct aw_model_params mp = {.max_batch = 512, .repack = 1};
	if (ret == 0)
		ret = aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &mp, &m, &err);
	if (ret < 0) {
		fprintf(stderr, "bench-sched: %s: %s\n", argv[1], err.msg);
		aw_gguf_close(g);
		return 1;
	}
	if (threads > 1 && aw_pool_new((unsigned)threads, NULL, &pool) < 0) {
		fprintf(stderr, "bench-sched: cannot start %d threads\n", threads);
		return 1;
	}
	const int32_t nv = aw_model_hparams(m)->n_vocab;
	printf("model %s, %d thread(s), kernels %s, %d tokens generated per request\n", argv[1],
	       threads, aw_model_kern(m)->name, gen);
	printf("%6s %12s %10s %16s %10s\n", "batch", "decode tok/s", "x batch-1", "tok/CPU-second",
	       "x batch-1");
	double cbase, cr;
	double base = decode_rate(m, pool, 1, gen, &cbase);
	printf("%6d %12.1f %10.2f %16.1f %10.2f\n", 1, base, 1.0, cbase, 1.0);
	for (int i = 0; i < n_b; i++) {
		if (batches[i] == 1)
			continue;
		double r = decode_rate(m, pool, batches[i], gen, &cr);
		printf("%6d %12.1f %10.2f %16.1f %10.2f\n", batches[i], r, r / base, cr,
		       cr / cbase);
	}
	double base2 = decode_rate(m, pool, 1, gen, &cr);
	printf("%6s %12.1f %10.2f %16.1f %10.2f   (batch 1 again: drift of the shared machine)\n",
	       "1", base2, base2 / base, cr, cr / cbase);

	/* TTFT with and without a cached prefix */
	struct aw_sched_config c = {.max_batch = 1, .prefill_chunk = 512, .ctx = P + 32};
	struct counts k;
	struct aw_sched *s = NULL;
	int32_t *prefix = malloc(sizeof(int32_t) * (size_t)P);
	double cold[100], warm[100], ccold[100], cwarm[100];
	int32_t ct_cold = 0, ct_warm = 0;

	if (!prefix || aw_sched_new(m, NULL, pool, &c, on_event, &k, &s) < 0) {
		fprintf(stderr, "bench-sched: out of memory\n");
		return 1;
	}
	for (int j = 0; j < P; j++)
		prefix[j] = rnd_tok(nv);
	for (int i = 0; i < reps; i++) {
		cold[i] = ttft(s, &k, prefix, P, 0, nv, &ct_cold, &ccold[i]);
		warm[i] = ttft(s, &k, prefix, P, 1, nv, &ct_warm, &cwarm[i]);
	}
	qsort(cold, (size_t)reps, sizeof(double), cmp_d);
	qsort(warm, (size_t)reps, sizeof(double), cmp_d);
	qsort(ccold, (size_t)reps, sizeof(double), cmp_d);
	qsort(cwarm, (size_t)reps, sizeof(double), cmp_d);
	printf("TTFT, %d-token prefix + 16 new tokens (%d reps): not cached median %.0f us "
	       "(best %.0f, %d tokens reused); cached median %.0f us (best %.0f, %d reused); "
	       "ratio %.1fx (best/best %.1fx)\n",
	       P, reps, cold[reps / 2], cold[0], ct_cold, warm[reps / 2], warm[0], ct_warm,
	       cold[reps / 2] / warm[reps / 2], cold[0] / warm[0]);
	printf("TTFT in CPU time: not cached median %.0f us, cached median %.0f us, ratio %.1fx\n",
	       ccold[reps / 2], cwarm[reps / 2], ccold[reps / 2] / cwarm[reps / 2]);
	aw_sched_free(s);
	free(prefix);
	aw_pool_free(pool);
	aw_model_free(m);
	aw_gguf_close(g);
	return 0;
}
