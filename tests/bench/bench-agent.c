/* bench-agent.c — the costs of the agent operations against their
 * baselines, measured in one run on one model (through the scheduler, one
 * request at a time, no prefix cache):
 *
 *   classify   CLASSIFY with K labels on an N-token prompt, against one
 *              prefill of the same prompt (GENERATE of one token); once with
 *              single-token labels (the labels' rows only) and once with
 *              labels of 2..4 tokens (the forked label pass);
 *   toolcall   a named tool call generated under its grammar (the sampler's
 *              mask hook, inference/grammar.h), tokens per second, against
 *              unconstrained generation of as many tokens.
 *
 *   bench-agent MODEL [--prompt N] [--labels K] [--reps R] [--threads T]
 *
 * Prints one line per figure and the ratios. Timings are noisy on a shared
 * machine: each figure is the best of R repetitions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "grammar.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "sample.h"
#include "scheduler.h"
#include "score.h"
#include "tok.h"

struct done {
	int n;
	int32_t gen;
	int finish;
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct done *d = ctx;

	if (ev->done) {
		d->n++;
		d->gen = (int32_t)ev->gen_tokens;
		d->finish = ev->finish;
	}
}

static uint64_t rng = 88172645463325252ull;
static int32_t rnd(int32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (int32_t)(rng % (uint64_t)n);
}

/* Run 'q' alone to its end; returns microseconds. */
/* CPU time of the calling thread (the forward pass runs on it with 1 thread):
 * what the neighbours on a shared machine disturb least */
static double last_cpu;

static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double run1(struct aw_sched *s, struct aw_sched_req *q, struct done *d)
{
	const int before = d->n;
	const uint64_t t0 = aw_sched_now_us();
	const double c0 = cpu_us();

	if (aw_sched_submit(s, q) < 0) {
		fprintf(stderr, "bench-agent: submit failed\n");
		exit(1);
	}
	while (d->n == before)
		aw_sched_step(s, aw_sched_now_us());
	last_cpu = cpu_us() - c0;
	return (double)(aw_sched_now_us() - t0);
}

struct hookctx {
	struct aw_grammar_matcher *m;
	int32_t vn;
};

static void fill(void *ctx, uint64_t *allowed, int32_t n_vocab)
{
	struct hookctx *h = ctx;

	aw_grammar_mask(h->m, allowed);
	for (int32_t t = h->vn; t < n_vocab; t++)
		allowed[t / 64] &= ~(1ull << (t % 64));
}

static void accept(void *ctx, int32_t token)
{
	struct hookctx *h = ctx;

	(void)aw_grammar_accept(h->m, token);
}

int main(int argc, char **argv)
{
	int32_t n_prompt = 200, K = 8, reps = 5, threads = 1;
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_tok *tok;
	struct aw_pool *pool = NULL;
	struct aw_err err = {0};
	struct done d = {0};

	if (argc < 2) {
		fprintf(stderr, "usage: bench-agent MODEL [--prompt N] [--labels K] [--reps R] "
				"[--threads T]\n");
		return 2;
	}
	for (int i = 2; i + 1 < argc; i += 2) {
		const int v = atoi(argv[i + 1]);
		if (strcmp(argv[i], "--prompt") == 0 && v > 0)
			n_prompt = v;
		else if (strcmp(argv[i], "--labels") == 0 && v > 0 && v <= AW_SCHED_MAX_LABELS)
			K = v;
		else if (strcmp(argv[i], "--reps") == 0 && v > 0)
			reps = v;
		else if (strcmp(argv[i], "--threads") == 0 && v > 0)
			threads = v;
		else {
			fprintf(stderr, "bench-agent: bad option %s %s\n", argv[i], argv[i + 1]);
			return 2;
		}
	}
	struct aw_model_params mp = {.max_batch = 512, .repack = 1};
	if (aw_gguf_open(argv[1], &g, &err) < 0 ||
	    aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &mp, &m, &err) < 0 ||
	    aw_tok_new_from_gguf(g, &tok, &err) < 0) {
		fprintf(stderr, "bench-agent: %s: %s\n", argv[1], err.msg);
		return 1;
	}
	if (threads > 1 && aw_pool_new((unsigned)threads, NULL, &pool) < 0)
		return 1;
	const int32_t nv = aw_model_hparams(m)->n_vocab;
	struct aw_sched_config c = {.max_batch = 16,
				    .prefill_chunk = 512,
				    .ctx = 1024,
				    .kv_type = AW_TYPE_F16,
				    .no_prefix_cache = 1};
	struct aw_sched *s, *s_nf;
	if (aw_sched_new(m, tok, pool, &c, on_event, &d, &s) < 0)
		return 1;
	/* the same scheduler without the fold: labels in a pass of their own */
	c.no_classify_fold = 1;
	if (aw_sched_new(m, tok, pool, &c, on_event, &d, &s_nf) < 0)
		return 1;

	int32_t *prompt = malloc(sizeof(int32_t) * (size_t)n_prompt);
	int32_t lab1[AW_SCHED_MAX_LABELS][1], labn[AW_SCHED_MAX_LABELS][4];
	int32_t len1[AW_SCHED_MAX_LABELS], lenn[AW_SCHED_MAX_LABELS];
	const int32_t *p1[AW_SCHED_MAX_LABELS], *pn[AW_SCHED_MAX_LABELS];
	for (int32_t j = 0; j < K; j++) {
		lab1[j][0] = 3 + rnd(nv - 3);
		len1[j] = 1;
		p1[j] = lab1[j];
		lenn[j] = 2 + rnd(3);
		for (int32_t i = 0; i < 4; i++)
			labn[j][i] = 3 + rnd(nv - 3);
		pn[j] = labn[j];
	}
	double best_pre = 1e30, best_c1 = 1e30, best_cn = 1e30, best_nf = 1e30;
	double cpu_pre = 1e30, cpu_c1 = 1e30, cpu_cn = 1e30, cpu_nf = 1e30;
	for (int r = 0; r < reps; r++) {
		struct aw_sched_req q;
		for (int32_t i = 0; i < n_prompt; i++)
			prompt[i] = 3 + rnd(nv - 3);
		memset(&q, 0, sizeof(q));
		q.tokens = prompt;
		q.n_tokens = n_prompt;
		aw_sample_params_default(&q.sample);
		q.sample.max_tokens = 1;
		double t = run1(s, &q, &d);
		best_pre = t < best_pre ? t : best_pre;
		cpu_pre = last_cpu < cpu_pre ? last_cpu : cpu_pre;
		q.kind = AW_SCHED_CLASSIFY;
		q.n_labels = K;
		q.labels = p1;
		q.label_lens = len1;
		t = run1(s, &q, &d);
		best_c1 = t < best_c1 ? t : best_c1;
		cpu_c1 = last_cpu < cpu_c1 ? last_cpu : cpu_c1;
		q.labels = pn;
		q.label_lens = lenn;
		t = run1(s, &q, &d);
		best_cn = t < best_cn ? t : best_cn;
		cpu_cn = last_cpu < cpu_cn ? last_cpu : cpu_cn;
		t = run1(s_nf, &q, &d);
		best_nf = t < best_nf ? t : best_nf;
		cpu_nf = last_cpu < cpu_nf ? last_cpu : cpu_nf;
	}
	printf("classify: prompt %d tokens, %d labels, best of %d, %d threads (wall; thread CPU)\n",
	       n_prompt, K, reps, threads);
	printf("  one prefill (GENERATE of 1 token)    %9.0f us      %9.0f us\n", best_pre,
	       cpu_pre);
	printf("  CLASSIFY, 1-token labels (rows only) %9.0f us = %.3fx %9.0f us = %.3fx\n",
	       best_c1, best_c1 / best_pre, cpu_c1, cpu_c1 / cpu_pre);
	printf("  CLASSIFY, 2..4-token labels (folded) %9.0f us = %.3fx %9.0f us = %.3fx\n",
	       best_cn, best_cn / best_pre, cpu_cn, cpu_cn / cpu_pre);
	printf("  the same, label pass after (no fold) %9.0f us = %.3fx %9.0f us = %.3fx\n",
	       best_nf, best_nf / best_pre, cpu_nf, cpu_nf / cpu_pre);

	/* constrained tool call vs unconstrained generation of as many tokens */
	static const char schema[] =
		"{\"type\": \"object\", \"required\": [\"name\", \"arguments\"], \"properties\": "
		"{\"name\": {\"const\": \"search\"}, \"arguments\": {\"type\": \"object\", "
		"\"required\": [\"query\", \"limit\"], \"properties\": {\"query\": {\"type\": "
		"\"string\", \"minLength\": 60, \"maxLength\": 80}, \"limit\": {\"type\": "
		"\"integer\", "
		"\"minimum\": 1, \"maximum\": 50}}}}}";
	struct aw_grammar_opts go = {0, "\n", "\n</tool_call>"};
	struct aw_grammar *gr;
	struct aw_grammar_vocab *gv;
	struct hookctx h;
	const uint64_t tv0 = aw_sched_now_us();
	if (aw_grammar_compile(schema, strlen(schema), &go, &gr, &err) < 0 ||
	    aw_grammar_vocab_new(tok, &gv) < 0 || aw_grammar_matcher_new(gr, gv, &h.m) < 0) {
		fprintf(stderr, "bench-agent: grammar: %s\n", err.msg);
		return 1;
	}
	const double vocab_us = (double)(aw_sched_now_us() - tv0);
	h.vn = aw_grammar_vocab_n(gv);
	double best_con = 0, best_unc = 0;
	int32_t n_con = 0;
	for (int r = 0; r < reps; r++) {
		struct aw_sched_req q;
		memset(&q, 0, sizeof(q));
		for (int32_t i = 0; i < 32; i++)
			prompt[i] = 3 + rnd(nv - 3);
		q.tokens = prompt;
		q.n_tokens = 32;
		aw_sample_params_default(&q.sample);
		q.sample.temperature = 1.0f;
		q.sample.seed = (uint64_t)r + 1;
		q.sample.max_tokens = 400;
		q.sample.n_eos = 1;
		q.sample.eos[0] = aw_tok_eos(tok);
		aw_grammar_matcher_reset(h.m);
		q.hook = (struct aw_sample_hook){fill, accept, &h};
		double t = run1(s, &q, &d);
		n_con = d.gen;
		const double con = d.gen / (t / 1e6);
		best_con = con > best_con ? con : best_con;
		/* the same number of tokens, unconstrained (no EOS) */
		q.hook = (struct aw_sample_hook){0};
		q.sample.n_eos = 0;
		q.sample.max_tokens = n_con;
		t = run1(s, &q, &d);
		const double unc = d.gen / (t / 1e6);
		best_unc = unc > best_unc ? unc : best_unc;
	}
	printf("toolcall: grammar vocabulary built in %.0f us (%d tokens)\n", vocab_us, h.vn);
	printf("  constrained tool call (%d tokens)      %9.1f tok/s\n", n_con, best_con);
	printf("  unconstrained, as many tokens          %9.1f tok/s\n", best_unc);
	printf("  ratio constrained / unconstrained      %9.3f\n", best_con / best_unc);
	aw_grammar_matcher_free(h.m);
	aw_grammar_vocab_free(gv);
	aw_grammar_free(gr);
	aw_sched_free(s);
	aw_sched_free(s_nf);
	aw_pool_free(pool);
	free(prompt);
	aw_tok_free(tok);
	aw_model_free(m);
	aw_gguf_close(g);
	return 0;
}
