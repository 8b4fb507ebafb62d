/* bench-agent.c — the costs of the agent operations against their
 * baselines, measured in one run on one model (through the scheduler, one
 * request at a time, no prefix cache):
 *
 *   classify   CLASSIFY with K labels on an N-token prompt, against one
 *              prefill of the same prompt (GENERATE of one token); once with
 *              single-token labels (the labels' rows only) and once with
 *              labels of 2..4 tokens (the forked label pass);
 *   constrained  tool calls (Qwen framing: "\n{...}\n</tool_call>" after the
 *              <tool_call> marker) for three tools of several fields, and
 *              the first N JSONSchemaBench schemas that compile (--schemas,
 *              {"name", "schema"} lines), each generated under its grammar
 *              (the scheduler's hook, as the daemon drives it) with
 *              fast-forward and without (every token sampled after its own
 *              forward pass), against unconstrained generation of as many
 *              tokens as the fast-forward run; the three interleaved per
 *              run. Tokens are tokens of output (END's gen_tokens) on every
 *              side; tokens/s is over submit-to-END wall time; CPU time per
 *              token is given too (thread CPU time with one thread).
 *
 *   bench-agent MODEL [--prompt N] [--labels K] [--reps R] [--threads T]
 *               [--classify 0|1] [--constrained 0|1] [--schemas FILE.jsonl]
 *               [--n-schemas N] [--max-new N] [--temp T]
 *
 * Prints one line per figure and the ratios. Timings are noisy on a shared
 * machine: CLASSIFY figures are the best of R repetitions; the constrained
 * ones sum every run, the variants interleaved so that load changes hit
 * them alike. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
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
	int32_t gen, forced;
	int finish;
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct done *d = ctx;

	if (ev->done) {
		d->n++;
		d->gen = (int32_t)ev->gen_tokens;
		d->forced = (int32_t)ev->forced_tokens;
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

/* --- constrained generation: fast-forward, stepwise, free ------------------------- */

/* The grammar hook as the daemon's agent hook drives it (dataplane/dispatch.c):
 * finishing mode when the budget runs short, EOS forced once the value is
 * done; with the CPU time its mask and forced calls take. */
struct gh {
	struct aw_grammar_matcher *m;
	struct aw_sample_hook in; /* the grammar's own fill/accept */
	int32_t left;		  /* tokens left of max_tokens */
	int32_t eos;		  /* forced when the value is done */
	double mask_us, ff_us;	  /* thread CPU time in fill / forced */
	int64_t n_mask;
};

static double clk_us(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static void gh_fill(void *ctx, uint64_t *allowed, int32_t n_vocab)
{
	struct gh *h = ctx;
	const double t0 = clk_us(CLOCK_THREAD_CPUTIME_ID);

	if (h->left <= 24)
		aw_grammar_set_finish(h->m, 1);
	h->in.fill(h->in.ctx, allowed, n_vocab);
	h->mask_us += clk_us(CLOCK_THREAD_CPUTIME_ID) - t0;
	h->n_mask++;
}

static void gh_accept(void *ctx, int32_t token)
{
	struct gh *h = ctx;

	h->left--;
	h->in.accept(h->in.ctx, token);
}

static int32_t gh_forced(void *ctx, int32_t *out, int32_t cap)
{
	struct gh *h = ctx;
	const double t0 = clk_us(CLOCK_THREAD_CPUTIME_ID);
	size_t n = 0;

	if (aw_grammar_done(h->m)) {
		out[0] = h->eos;
		n = 1;
	} else {
		if (h->left <= 24)
			aw_grammar_set_finish(h->m, 1);
		(void)aw_grammar_forced(h->m, out, (size_t)cap, &n);
	}
	h->ff_us += clk_us(CLOCK_THREAD_CPUTIME_ID) - t0;
	return (int32_t)n;
}

/* One workload's sums over its runs, per variant: free (unconstrained, as
 * many tokens as the fast-forward run), ff (constrained, fast-forward),
 * step (constrained, every token sampled after its own forward pass). */
enum { V_FREE, V_FF, V_STEP, N_V };

struct sums {
	double us[N_V], cpu[N_V];
	int64_t tok[N_V], forced;
	double mask_us, ff_us;
	int64_t n_mask;
	int runs, failed;
};

struct work {
	const char *name;
	struct aw_grammar *gr;
	int group; /* 0: tool calls, 1: JSONSchemaBench */
};

static void add(struct sums *a, const struct sums *b)
{
	for (int v = 0; v < N_V; v++) {
		a->us[v] += b->us[v];
		a->cpu[v] += b->cpu[v];
		a->tok[v] += b->tok[v];
	}
	a->forced += b->forced;
	a->mask_us += b->mask_us;
	a->ff_us += b->ff_us;
	a->n_mask += b->n_mask;
	a->runs += b->runs;
	a->failed += b->failed;
}

static void print_sums(const char *name, const struct sums *x)
{
	double tps[N_V];

	for (int v = 0; v < N_V; v++)
		tps[v] = x->us[v] > 0 ? (double)x->tok[v] / (x->us[v] / 1e6) : 0;
	printf("  %-22s %4d %6lld %5.1f%% %8.2f %8.2f %8.2f  %6.3f %6.3f %6.3f  %6.3f %6.3f  "
	       "%6.1f\n",
	       name, x->runs, (long long)x->tok[V_FF],
	       x->tok[V_FF] ? 100.0 * (double)x->forced / (double)x->tok[V_FF] : 0, tps[V_FREE],
	       tps[V_FF], tps[V_STEP], tps[V_FF] / tps[V_FREE], tps[V_STEP] / tps[V_FREE],
	       tps[V_FF] / tps[V_STEP],
	       /* CPU time per token, free over constrained: >1 = constrained cheaper */
	       (x->cpu[V_FREE] / (double)x->tok[V_FREE]) / (x->cpu[V_FF] / (double)x->tok[V_FF]),
	       (x->cpu[V_FREE] / (double)x->tok[V_FREE]) /
		       (x->cpu[V_STEP] / (double)x->tok[V_STEP]),
	       x->n_mask ? x->mask_us / (double)x->n_mask : 0);
}

/* Read up to 'max' schemas that compile from a {"name", "schema"} JSON-lines
 * file into w[]; returns how many. */
static int read_schemas(const char *path, const struct aw_grammar_opts *go, struct work *w, int max,
			int *ret_tried)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int n = 0;

	*ret_tried = 0;
	if (!f) {
		fprintf(stderr, "bench-agent: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while (n < max && getline(&line, &cap, f) > 0) {
		struct aw_json *j = NULL;
		struct aw_err err = {0};
		if (aw_json_parse(line, strcspn(line, "\n"), &j, &err) < 0)
			continue;
		const struct aw_json *nm = aw_json_get(j, "name"), *sc = aw_json_get(j, "schema");
		(*ret_tried)++;
		if (sc && aw_grammar_compile_json(sc, go, &w[n].gr, &err) == 0) {
			w[n].name = strdup(nm && nm->type == AW_JSON_STRING ? nm->str : "?");
			w[n].group = 1;
			n++;
		}
		aw_json_free(j);
	}
	free(line);
	fclose(f);
	return n;
}

/* Constrained generation with and without fast-forward against free
 * generation of as many tokens, interleaved per run (the order rotates). */
static void bench_constrained(struct aw_model *m, struct aw_tok *tok, struct aw_pool *pool,
			      int reps, int32_t max_new, const char *schemas_path, int n_schemas,
			      int threads, float temp)
{
	static const char *const tools[][2] = {
		{"get_weather",
		 "{\"type\": \"object\", \"required\": [\"name\", \"arguments\"], \"properties\": "
		 "{\"name\": {\"const\": \"get_weather\"}, \"arguments\": {\"type\": \"object\", "
		 "\"required\": [\"location\", \"unit\", \"days\"], \"properties\": {\"location\": "
		 "{\"type\": \"string\", \"maxLength\": 40}, \"unit\": {\"enum\": [\"celsius\", "
		 "\"fahrenheit\"]}, \"days\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": "
		 "14}, \"include_hourly\": {\"type\": \"boolean\"}}}}}"},
		{"book_flight",
		 "{\"type\": \"object\", \"required\": [\"name\", \"arguments\"], \"properties\": "
		 "{\"name\": {\"const\": \"book_flight\"}, \"arguments\": {\"type\": \"object\", "
		 "\"required\": [\"origin\", \"destination\", \"departure_date\", \"passengers\", "
		 "\"cabin_class\"], \"properties\": {\"origin\": {\"type\": \"string\", "
		 "\"pattern\": \"^[A-Z]{3}$\"}, \"destination\": {\"type\": \"string\", "
		 "\"pattern\": \"^[A-Z]{3}$\"}, \"departure_date\": {\"type\": \"string\", "
		 "\"format\": \"date\"}, \"passengers\": {\"type\": \"integer\", \"minimum\": 1, "
		 "\"maximum\": 9}, \"cabin_class\": {\"enum\": [\"economy\", "
		 "\"premium_economy\", \"business\", \"first\"]}}}}}"},
		{"search_documents",
		 "{\"type\": \"object\", \"required\": [\"name\", \"arguments\"], \"properties\": "
		 "{\"name\": {\"const\": \"search_documents\"}, \"arguments\": {\"type\": "
		 "\"object\", \"required\": [\"query\", \"max_results\", \"filters\"], "
		 "\"properties\": {\"query\": {\"type\": \"string\", \"minLength\": 10, "
		 "\"maxLength\": 60}, \"max_results\": {\"type\": \"integer\", \"minimum\": 1, "
		 "\"maximum\": 50}, \"filters\": {\"type\": \"object\", \"required\": "
		 "[\"language\", \"safe_search\"], \"properties\": {\"language\": {\"enum\": "
		 "[\"en\", \"de\", \"fr\", \"ja\"]}, \"safe_search\": {\"type\": \"boolean\"}, "
		 "\"published_after\": {\"type\": \"string\", \"format\": \"date\"}}}}}}}"},
	};
	/* the Qwen framing: the model wrote <tool_call> (in the prompt here) */
	struct aw_grammar_opts go = {0, "\n", "\n</tool_call>"};
	struct work w[64];
	int nw = 0, tried = 0, nbench = 0;
	struct aw_err err = {0};
	struct aw_grammar_vocab *gv;
	const int32_t nv = aw_model_hparams(m)->n_vocab;

	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		if (aw_grammar_compile(tools[i][1], strlen(tools[i][1]), &go, &w[nw].gr, &err) <
		    0) {
			fprintf(stderr, "bench-agent: %s: %s\n", tools[i][0], err.msg);
			exit(1);
		}
		w[nw].name = strdup(tools[i][0]);
		w[nw++].group = 0;
	}
	if (schemas_path)
		nbench = read_schemas(schemas_path, NULL, w + nw, n_schemas, &tried);
	nw += nbench;
	const uint64_t tv0 = aw_sched_now_us();
	if (aw_grammar_vocab_new(tok, &gv) < 0)
		exit(1);
	const double vocab_us = (double)(aw_sched_now_us() - tv0);
	/* two schedulers: with and without fast-forward */
	struct aw_sched_config c = {.max_batch = 2,
				    .prefill_chunk = 512,
				    .ctx = 1024,
				    .kv_type = AW_TYPE_F16,
				    .no_prefix_cache = 1};
	struct aw_sched *s[2];
	struct done d = {0};
	for (int i = 0; i < 2; i++) {
		c.no_fast_forward = i;
		if (aw_sched_new(m, tok, pool, &c, on_event, &d, &s[i]) < 0)
			exit(1);
	}
	int32_t eos = aw_tok_eot(tok) >= 0 ? aw_tok_eot(tok) : aw_tok_eos(tok);
	int32_t prompt[32];
	struct sums *per = calloc((size_t)nw, sizeof(*per));
	const clockid_t clk = threads > 1 ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID;

	for (int r = 0; r < reps; r++) {
		for (int k = 0; k < nw; k++) {
			struct aw_sched_req q;
			struct gh h = {0};
			int32_t n_ff = 0;
			memset(&q, 0, sizeof(q));
			for (int32_t i = 0; i < 32; i++)
				prompt[i] = 3 + rnd(nv - 3);
			q.tokens = prompt;
			q.n_tokens = 32;
			if (aw_grammar_matcher_new(w[k].gr, gv, &h.m) < 0)
				exit(1);
			aw_grammar_sample_hook(h.m, &h.in);
			h.eos = eos;
			/* the fast-forward run first (the free one takes its length);
			 * the stepwise one before or after the pair, alternately */
			int order[3] = {V_FF, V_FREE, V_STEP};
			if ((r + k) % 2) {
				order[0] = V_STEP;
				order[1] = V_FF;
				order[2] = V_FREE;
			}
			for (int j = 0; j < 3; j++) {
				const int v = order[j];
				aw_sample_params_default(&q.sample);
				q.sample.temperature = temp;
				q.sample.seed = (uint64_t)(r * 1000 + k + 1);
				q.sample.max_tokens = v == V_FREE ? n_ff : max_new;
				q.sample.n_eos = v == V_FREE ? 0 : 1;
				q.sample.eos[0] = eos;
				q.hook = (struct aw_sample_hook){0};
				if (v != V_FREE) {
					aw_grammar_matcher_reset(h.m);
					h.left = max_new;
					q.hook = (struct aw_sample_hook){gh_fill, gh_accept, &h,
									 gh_forced};
				}
				const double m0 = h.mask_us, f0 = h.ff_us;
				const int64_t n0 = h.n_mask;
				const double c0 = clk_us(clk);
				const double t = run1(s[v == V_STEP], &q, &d);
				per[k].cpu[v] += clk_us(clk) - c0;
				per[k].us[v] += t;
				per[k].tok[v] += d.gen;
				if (v == V_FF) {
					n_ff = d.gen;
					per[k].forced += d.forced;
					per[k].mask_us += h.mask_us - m0;
					per[k].ff_us += h.ff_us - f0;
					per[k].n_mask += h.n_mask - n0;
					per[k].failed += d.finish != AW_SCHED_FINISH_STOP;
				}
			}
			per[k].runs++;
			aw_grammar_matcher_free(h.m);
		}
	}
	printf("constrained: %d tool calls (Qwen framing), %d of the first %d JSONSchemaBench "
	       "schemas that compile; %d reps, temperature %g, max_new %d, %d threads; grammar "
	       "vocabulary built in %.0f ms (%d tokens)\n",
	       nw - nbench, nbench, tried, reps, (double)temp, max_new, threads, vocab_us / 1000,
	       aw_grammar_vocab_n(gv));
	printf("  %-22s %4s %6s %6s %8s %8s %8s  %6s %6s %6s  %6s %6s  %6s\n", "workload", "runs",
	       "tokens", "forced", "free/s", "ff/s", "step/s", "ff/fr", "st/fr", "ff/st", "cpu-ff",
	       "cpu-st", "maskus");
	struct sums g[2] = {0}, all = {0};
	for (int k = 0; k < nw; k++) {
		print_sums(w[k].name, &per[k]);
		add(&g[w[k].group], &per[k]);
		add(&all, &per[k]);
	}
	if (nw - nbench)
		print_sums("= tool calls", &g[0]);
	if (nbench)
		print_sums("= JSONSchemaBench", &g[1]);
	print_sums("= all", &all);
	const double con_us = all.us[V_FF];
	printf("  fast-forward runs: %lld of %lld tokens forced (%.1f%%), %d did not end with the "
	       "value complete\n",
	       (long long)all.forced, (long long)all.tok[V_FF],
	       all.tok[V_FF] ? 100.0 * (double)all.forced / (double)all.tok[V_FF] : 0, all.failed);
	printf("  grammar CPU in the fast-forward runs: masks %.1f us average (%lld masks), forced "
	       "%.1f us per sampled token; together %.3f%% of those runs' CPU time, %.3f%% of "
	       "their wall time: the most that computing masks during the forward pass could "
	       "save\n",
	       all.n_mask ? all.mask_us / (double)all.n_mask : 0, (long long)all.n_mask,
	       all.n_mask ? all.ff_us / (double)all.n_mask : 0,
	       all.cpu[V_FF] > 0 ? 100.0 * (all.mask_us + all.ff_us) / all.cpu[V_FF] : 0,
	       con_us > 0 ? 100.0 * (all.mask_us + all.ff_us) / con_us : 0);
	for (int k = 0; k < nw; k++) {
		aw_grammar_free(w[k].gr);
		free((char *)w[k].name);
	}
	free(per);
	aw_sched_free(s[0]);
	aw_sched_free(s[1]);
	aw_grammar_vocab_free(gv);
}

int main(int argc, char **argv)
{
	int32_t n_prompt = 200, K = 8, reps = 5, threads = 1, max_new = 256, n_schemas = 6;
	int do_cls = 1, do_con = 1;
	float temp = 1.0f;
	const char *schemas = NULL;
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_tok *tok;
	struct aw_pool *pool = NULL;
	struct aw_err err = {0};
	struct done d = {0};

	if (argc < 2) {
		fprintf(stderr, "usage: bench-agent MODEL [--prompt N] [--labels K] [--reps R] "
				"[--threads T] [--classify 0|1] [--constrained 0|1] [--schemas "
				"FILE.jsonl] [--n-schemas N] [--max-new N] [--temp T]\n");
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
		else if (strcmp(argv[i], "--classify") == 0 && (v == 0 || v == 1))
			do_cls = v;
		else if (strcmp(argv[i], "--constrained") == 0 && (v == 0 || v == 1))
			do_con = v;
		else if (strcmp(argv[i], "--schemas") == 0)
			schemas = argv[i + 1];
		else if (strcmp(argv[i], "--n-schemas") == 0 && v > 0 && v <= 60)
			n_schemas = v;
		else if (strcmp(argv[i], "--max-new") == 0 && v > 0 && v <= 900)
			max_new = v;
		else if (strcmp(argv[i], "--temp") == 0 && atof(argv[i + 1]) >= 0)
			temp = (float)atof(argv[i + 1]);
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
	for (int r = 0; r < reps && do_cls; r++) {
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
	if (do_cls) {
		printf("classify: prompt %d tokens, %d labels, best of %d, %d threads (wall; "
		       "thread "
		       "CPU)\n",
		       n_prompt, K, reps, threads);
		printf("  one prefill (GENERATE of 1 token)    %9.0f us      %9.0f us\n", best_pre,
		       cpu_pre);
		printf("  CLASSIFY, 1-token labels (rows only) %9.0f us = %.3fx %9.0f us = %.3fx\n",
		       best_c1, best_c1 / best_pre, cpu_c1, cpu_c1 / cpu_pre);
		printf("  CLASSIFY, 2..4-token labels (folded) %9.0f us = %.3fx %9.0f us = %.3fx\n",
		       best_cn, best_cn / best_pre, cpu_cn, cpu_cn / cpu_pre);
		printf("  the same, label pass after (no fold) %9.0f us = %.3fx %9.0f us = %.3fx\n",
		       best_nf, best_nf / best_pre, cpu_nf, cpu_nf / cpu_pre);
	}

	if (do_con)
		bench_constrained(m, tok, pool, reps, max_new, schemas, n_schemas, threads, temp);
	aw_sched_free(s);
	aw_sched_free(s_nf);
	aw_pool_free(pool);
	free(prompt);
	aw_tok_free(tok);
	aw_model_free(m);
	aw_gguf_close(g);
	return 0;
}
