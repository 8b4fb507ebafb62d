/* test-sched-ff.c — fast-forward of constrained requests in the scheduler
 * (inference/scheduler.c with a grammar's sample hook, inference/grammar.h),
 * on tiny llama models (tiny-llama.h) with vocabularies that can spell JSON:
 *
 *   - bytes only (every byte string has one spelling, so the token the
 *     grammar forces is the only one the mask allows): greedy output with
 *     fast-forward equals output without it, token for token, alone and in
 *     a batch mixing constrained and unconstrained requests, in fewer steps,
 *     with the forced tokens counted;
 *   - bytes plus JSON pieces (several spellings): the scheduler's output
 *     equals `aw-infer --json-schema` (which fast-forwards the same way)
 *     byte for byte (AW_INFER names the binary);
 *   - max_tokens falling inside a forced run, a stop string inside forced
 *     text (the same byte as without fast-forward), CANCEL or a deadline
 *     while a forced run waits for its pass, preemption and the prefix cache over forced
 *     chunks; after every test the KV pool is all free. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "gguf.h"
#include "grammar.h"
#include "model.h"
#include "quant.h"
#include "scheduler.h"
#include "tiny-llama.h"
#include "tok.h"
#include "aw-skip.h"
#include "sched-check.h"

enum { MAXR = 8, MAXT = 400, MAXRUNS = 128 };

/* --- a model and its tokenizer ---------------------------------------------------- */

struct world {
	void *buf;
	size_t len;
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_tok *tok;
	struct aw_grammar_vocab *v;
	int32_t n_vocab;
};

static void open_world(struct world *w, int tok_json, uint64_t seed)
{
	struct tiny_cfg c;
	struct aw_err err;
	struct aw_model_params p = {.max_batch = 64};

	memset(w, 0, sizeof(*w));
	tiny_default(&c);
	c.vocab = 320;
	c.ctx = 512;
	c.seed = seed;
	c.with_tokenizer = 1;
	c.tok_json = tok_json;
	assert_int_equal(tiny_write(&c, NULL, &w->buf, &w->len), 0);
	assert_int_equal(aw_gguf_parse(w->buf, w->len, &w->g, &err), 0);
	assert_int_equal(
		aw_model_load(w->g, aw_gguf_data(w->g), aw_gguf_data_size(w->g), &p, &w->m, &err),
		0);
	assert_int_equal(aw_tok_new_from_gguf(w->g, &w->tok, &err), 0);
	assert_int_equal(aw_grammar_vocab_new(w->tok, &w->v), 0);
	w->n_vocab = aw_model_hparams(w->m)->n_vocab;
}

static void close_world(struct world *w)
{
	aw_grammar_vocab_free(w->v);
	aw_tok_free(w->tok);
	aw_model_free(w->m);
	aw_gguf_close(w->g);
	free(w->buf);
}

/* --- the grammar hook, with aw-infer's finishing policy ---------------------------- */

struct gh {
	struct aw_grammar *gr;
	struct aw_grammar_matcher *m;
	struct aw_sample_hook in; /* the grammar's own hook */
	int32_t finish_at;	  /* finishing mode once this many tokens were taken; 0: never */
	int32_t n_acc;		  /* tokens accepted */
	int32_t runs[MAXRUNS][2]; /* forced runs: index of the first token, length */
	int n_runs;
};

static void gh_fill(void *ctx, uint64_t *allowed, int32_t n_vocab)
{
	struct gh *h = ctx;

	if (h->finish_at && h->n_acc >= h->finish_at)
		aw_grammar_set_finish(h->m, 1);
	h->in.fill(h->in.ctx, allowed, n_vocab);
}

static void gh_accept(void *ctx, int32_t token)
{
	struct gh *h = ctx;

	h->n_acc++;
	h->in.accept(h->in.ctx, token);
}

static int32_t gh_forced(void *ctx, int32_t *out, int32_t cap)
{
	struct gh *h = ctx;
	int32_t n = h->in.forced(h->in.ctx, out, cap);

	if (n > 0 && h->n_runs < MAXRUNS) {
		h->runs[h->n_runs][0] = h->n_acc;
		h->runs[h->n_runs][1] = n;
		h->n_runs++;
	}
	return n;
}

/* Generated tokens a request that ended by a forced EOS left without K/V:
 * the last sampled token and the runs forced right after it (taken in one
 * go, so each starts where the one before ended). */
static int32_t ff_tail(const struct gh *h)
{
	int i = h->n_runs - 1;
	int32_t tail = 1;

	assert_true(i >= 0);
	tail += h->runs[i][1];
	while (i > 0 && h->runs[i - 1][0] + h->runs[i - 1][1] == h->runs[i][0]) {
		i--;
		tail += h->runs[i][1];
	}
	return tail;
}

static void gh_open(struct gh *h, struct world *w, const char *schema, const char *prefix,
		    const char *suffix)
{
	struct aw_grammar_opts o = {0, prefix, suffix};
	struct aw_err err = {0};

	memset(h, 0, sizeof(*h));
	if (aw_grammar_compile(schema, strlen(schema), &o, &h->gr, &err) < 0)
		fail_msg("compile: %s", err.msg);
	assert_int_equal(aw_grammar_matcher_new(h->gr, w->v, &h->m), 0);
	aw_grammar_sample_hook(h->m, &h->in);
	assert_non_null(h->in.forced);
}

static void gh_close(struct gh *h)
{
	aw_grammar_matcher_free(h->m);
	aw_grammar_free(h->gr);
}

static struct aw_sample_hook gh_hook(struct gh *h)
{
	struct aw_sample_hook k = {gh_fill, gh_accept, h, gh_forced};
	return k;
}

/* --- requests and their outputs ------------------------------------------------------ */

struct out {
	char text[4096];
	size_t len;
	int32_t tok[MAXT];
	int n;
	int done;
	struct aw_sched_event end;
	struct aw_sched *s;   /* for cancel_at */
	struct gh *h;	      /* the request's hook, for cancel_at */
	int cancel_at;	      /* cancel when the hook has made this many forced runs */
	int no_cancel;	      /* only note when (cancel_after) */
	int32_t cancel_after; /* tokens seen when the cancel was sent */
};

static void on_event(void *ctx, const struct aw_sched_event *ev)
{
	struct out *o = &((struct out *)ctx)[ev->id];

	assert_true(ev->id < MAXR);
	assert_false(o->done);
	assert_true(o->len + ev->len < sizeof(o->text));
	memcpy(o->text + o->len, ev->text, ev->len);
	o->len += ev->len;
	if (ev->token >= 0) {
		assert_true(o->n < MAXT);
		o->tok[o->n++] = ev->token;
	}
	if (ev->done) {
		o->done = 1;
		o->end = *ev;
		o->end.text = NULL;
	} else if (o->cancel_at && o->h->n_runs == o->cancel_at && !o->cancel_after) {
		/* the first token of a forced run: the rest of the run follows in
		 * this same step; the pass that computes them must not run */
		o->cancel_after = o->n;
		if (!o->no_cancel)
			assert_int_equal(aw_sched_cancel(o->s, ev->id), 0);
	}
}

static const int32_t prompt[] = {1, 40, 77, 90, 101, 120, 65, 33, 210, 44, 3, 250};
#define N_PROMPT ((int32_t)(sizeof(prompt) / sizeof(prompt[0])))

static void req(struct aw_sched_req *q, uint64_t id, int32_t max_new)
{
	memset(q, 0, sizeof(*q));
	q->id = id;
	q->tokens = prompt;
	q->n_tokens = N_PROMPT;
	aw_sample_params_default(&q->sample);
	q->sample.max_tokens = max_new;
	q->sample.n_eos = 1;
	q->sample.eos[0] = 2; /* </s> */
}

static struct aw_sched *new_sched(struct world *w, int ff, int32_t n_blocks, struct out *o)
{
	struct aw_sched_config c = {.max_batch = 4,
				    .block_size = 8,
				    .ctx = 512,
				    .kv_type = AW_TYPE_F16,
				    .n_blocks = n_blocks,
				    .no_fast_forward = !ff};
	struct aw_sched *s = NULL;

	assert_int_equal(aw_sched_new(w->m, w->tok, NULL, &c, on_event, o, &s), 0);
	return s;
}

/* The value between prefix and suffix parses as JSON. */
static void check_json(const struct out *o, const char *prefix, const char *suffix)
{
	const size_t pl = strlen(prefix), sl = strlen(suffix);
	struct aw_json *j = NULL;
	struct aw_err err = {0};

	assert_true(o->len >= pl + sl);
	assert_memory_equal(o->text, prefix, pl);
	assert_memory_equal(o->text + o->len - sl, suffix, sl);
	if (aw_json_parse(o->text + pl, o->len - pl - sl, &j, &err) < 0)
		fail_msg("not JSON (%s): %.*s", err.msg, (int)o->len, o->text);
	aw_json_free(j);
}

static const char tool_schema[] =
	"{\"type\": \"object\", \"required\": [\"name\", \"arguments\"], \"properties\": "
	"{\"name\": {\"const\": \"search_flights\"}, \"arguments\": {\"type\": \"object\", "
	"\"required\": [\"origin\", \"destination\", \"passengers\", \"cabin\"], "
	"\"properties\": {\"origin\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": "
	"3}, \"destination\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": 3}, "
	"\"passengers\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 9}, \"cabin\": "
	"{\"enum\": [\"economy\", \"premium_economy\", \"business\"]}}}}}";
static const char enum_schema[] =
	"{\"type\": \"object\", \"required\": [\"status\", \"code\", \"ok\"], \"properties\": "
	"{\"status\": {\"enum\": [\"accepted_for_processing\", \"rejected_by_policy\"]}, "
	"\"code\": {\"type\": \"integer\", \"minimum\": 100, \"maximum\": 999}, \"ok\": "
	"{\"type\": \"boolean\"}}}";
#define PFX "<tool_call>\n"
#define SFX "\n</tool_call>"

/* --- fast-forward equals stepwise where spelling is unique ---------------------------- */

/* One pass: the two constrained requests and one unconstrained, either
 * together (batch) or one after the other; outputs into o[0..3). */
static int pass(struct world *w, int ff, int batch, struct out *o, struct aw_sched_stats *ret_st,
		int32_t *ret_saved)
{
	struct gh h[2];
	struct aw_sched_req q;
	int steps = 0;

	memset(o, 0, sizeof(*o) * 3);
	struct aw_sched *s = new_sched(w, ff, 0, o);
	gh_open(&h[0], w, tool_schema, PFX, SFX);
	gh_open(&h[1], w, enum_schema, NULL, NULL);
	for (int i = 0; i < 3; i++) {
		req(&q, (uint64_t)i, i == 2 ? 40 : 300);
		if (i < 2)
			q.hook = gh_hook(&h[i]);
		assert_int_equal(aw_sched_submit(s, &q), 0);
		if (!batch)
			steps += sched_drain(s, 2000);
	}
	if (batch)
		steps += sched_drain(s, 2000);
	aw_sched_get_stats(s, ret_st);
	for (int i = 0; i < 3; i++)
		assert_true(o[i].done);
	check_empty(s);
	aw_sched_free(s);
	/* positions fast-forward never computes beyond stepwise's (its EOS) */
	*ret_saved = ff ? ff_tail(&h[0]) - 1 + ff_tail(&h[1]) - 1 : 0;
	gh_close(&h[0]);
	gh_close(&h[1]);
	return steps;
}

static void same_output(const struct out *a, const struct out *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->tok, b->tok, sizeof(int32_t) * (size_t)a->n);
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a->text, b->text, a->len);
	assert_int_equal(a->end.finish, b->end.finish);
	assert_int_equal(a->end.gen_tokens, b->end.gen_tokens);
}

static void test_ff_equals_stepwise(void **state)
{
	struct world w;
	static struct out o[4][3];
	struct aw_sched_stats st[4];
	int steps[4];

	(void)state;
	open_world(&w, 2, 11);
	/* [ff][batch] */
	int32_t saved[4];
	steps[0] = pass(&w, 0, 0, o[0], &st[0], &saved[0]);
	steps[1] = pass(&w, 0, 1, o[1], &st[1], &saved[1]);
	steps[2] = pass(&w, 1, 0, o[2], &st[2], &saved[2]);
	steps[3] = pass(&w, 1, 1, o[3], &st[3], &saved[3]);
	for (int k = 1; k < 4; k++)
		for (int i = 0; i < 3; i++)
			same_output(&o[0][i], &o[k][i]);
	/* the constrained ones are complete values; the free one ran its length */
	check_json(&o[0][0], PFX, SFX);
	check_json(&o[0][1], "", "");
	assert_int_equal(o[0][0].end.finish, AW_SCHED_FINISH_STOP);
	assert_int_equal(o[0][1].end.finish, AW_SCHED_FINISH_STOP);
	assert_int_equal(o[0][2].end.finish, AW_SCHED_FINISH_LENGTH);
	/* forced tokens counted with fast-forward only, and only for the
	 * constrained requests; fewer steps and fewer computed positions */
	for (int k = 0; k < 4; k++) {
		const int ff = k >= 2;
		assert_int_equal(o[k][2].end.forced_tokens, 0);
		if (ff) {
			assert_true(o[k][0].end.forced_tokens >= 20);
			assert_true(o[k][1].end.forced_tokens >= 10);
		} else {
			assert_int_equal(o[k][0].end.forced_tokens, 0);
			assert_int_equal(o[k][1].end.forced_tokens, 0);
		}
		assert_int_equal(st[k].forced_tokens,
				 o[k][0].end.forced_tokens + o[k][1].end.forced_tokens);
	}
	const int32_t forced = (int32_t)st[2].forced_tokens;
	fprintf(stderr, "# steps: stepwise %d/%d, fast-forward %d/%d (alone/batch); %d forced\n",
		steps[0], steps[1], steps[2], steps[3], forced);
	assert_true(steps[2] + forced <= steps[0] + 2);
	assert_true(steps[3] < steps[1]);
	/* every position computed once either way, but the forced ones count as
	 * decode work, not prefill */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(st[k].prefill_tokens, st[k + 2].prefill_tokens);
		/* the same positions, but the last sampled token and the run
		 * forced after it up to the EOS are never computed (nothing
		 * needs their logits) */
		assert_true(saved[k + 2] >= 2);
		assert_int_equal(st[k].decode_tokens,
				 st[k + 2].decode_tokens + (uint64_t)saved[k + 2]);
	}
	assert_int_equal(st[1].prefill_tokens, (uint64_t)(3 * N_PROMPT)); /* no cache hits */
	close_world(&w);
}

/* --- equal to aw-infer --json-schema -------------------------------------------------- */

static void test_ff_matches_aw_infer(void **state)
{
	const char *exe = getenv("AW_INFER");
	static const char *const schemas[] = {
		tool_schema, enum_schema,
		"{\"type\": \"array\", \"items\": {\"type\": "
		"\"object\", \"required\": [\"name\", \"ok\"], "
		"\"properties\": {\"name\": {\"type\": \"string\", "
		"\"maxLength\": 6}, \"ok\": {\"type\": \"boolean\"}}}, "
		"\"minItems\": 2, \"maxItems\": 2}"};
	char dir[] = "/tmp/test-sched-ff-XXXXXX", path[128], spath[128], cmd[1024];
	struct world w;
	static struct out o[1];
	const int32_t n_gen = 400;

	(void)state;
	if (!exe || access(exe, X_OK) != 0) {
		AW_SKIP("AW_INFER not set: no aw-infer comparison");
	}
	assert_non_null(mkdtemp(dir));
	open_world(&w, 1, 5);
	snprintf(path, sizeof(path), "%s/m.gguf", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(w.buf, 1, w.len, f), w.len);
	fclose(f);
	char ids[256];
	size_t k = 0;
	for (int32_t i = 0; i < N_PROMPT; i++)
		k += (size_t)snprintf(ids + k, sizeof(ids) - k, "%s%d", i ? "," : "", prompt[i]);
	int32_t forced_total = 0;
	for (size_t si = 0; si < sizeof(schemas) / sizeof(schemas[0]); si++) {
		snprintf(spath, sizeof(spath), "%s/s%zu.json", dir, si);
		f = fopen(spath, "wb");
		assert_non_null(f);
		fputs(schemas[si], f);
		fclose(f);
		snprintf(
			cmd, sizeof(cmd),
			"%s -m %s --prompt-ids %s --json-schema %s -n %d -t 1 --temp 0 2>/dev/null",
			exe, path, ids, spath, n_gen);
		FILE *p = popen(cmd, "r");
		assert_non_null(p);
		char ref[4096];
		size_t rn = fread(ref, 1, sizeof(ref) - 1, p);
		assert_int_equal(pclose(p), 0);
		assert_true(rn > 0 && ref[rn - 1] == '\n');
		rn--; /* aw-infer ends the value with a newline */

		struct gh h;
		struct aw_sched_req q;
		memset(o, 0, sizeof(o));
		struct aw_sched *s = new_sched(&w, 1, 0, o);
		gh_open(&h, &w, schemas[si], NULL, NULL);
		h.finish_at = n_gen / 4; /* aw-infer's policy */
		req(&q, 0, n_gen);
		q.hook = gh_hook(&h);
		assert_int_equal(aw_sched_submit(s, &q), 0);
		sched_drain(s, 2000);
		assert_true(o[0].done);
		if (o[0].len != rn || memcmp(o[0].text, ref, rn) != 0)
			fail_msg("schema %zu: scheduler '%.*s'\n  aw-infer '%.*s'", si,
				 (int)o[0].len, o[0].text, (int)rn, ref);
		assert_int_equal(o[0].end.finish, AW_SCHED_FINISH_STOP);
		check_json(&o[0], "", "");
		forced_total += (int32_t)o[0].end.forced_tokens;
		check_empty(s);
		aw_sched_free(s);
		gh_close(&h);
		/* for the record: without fast-forward the model may spell forced
		 * text otherwise (several spellings here), and go on differently */
		struct out text = o[0];
		memset(o, 0, sizeof(o));
		s = new_sched(&w, 0, 0, o);
		gh_open(&h, &w, schemas[si], NULL, NULL);
		h.finish_at = n_gen / 4;
		q.hook = gh_hook(&h);
		assert_int_equal(aw_sched_submit(s, &q), 0);
		sched_drain(s, 2000);
		fprintf(stderr,
			"# schema %zu: %u tokens (%u forced); stepwise %u tokens, text %s\n", si,
			text.end.gen_tokens, text.end.forced_tokens, o[0].end.gen_tokens,
			text.len == o[0].len && !memcmp(text.text, o[0].text, text.len)
				? "equal"
				: "differs");
		check_empty(s);
		aw_sched_free(s);
		gh_close(&h);
		unlink(spath);
	}
	assert_true(forced_total > 10);
	unlink(path);
	rmdir(dir);
	close_world(&w);
}

/* --- limits inside a forced run ---------------------------------------------------- */

/* A first run of the tool call with fast-forward; returns it in *full and
 * the hook's forced runs in *hf. */
static void full_run(struct world *w, struct out *full, struct gh *hf)
{
	struct aw_sched_req q;
	struct aw_sched *s = new_sched(w, 1, 0, full);

	memset(full, 0, sizeof(*full));
	gh_open(hf, w, tool_schema, PFX, SFX);
	req(&q, 0, 300);
	q.hook = gh_hook(hf);
	assert_int_equal(aw_sched_submit(s, &q), 0);
	sched_drain(s, 2000);
	assert_true(full->done);
	assert_int_equal(full->end.finish, AW_SCHED_FINISH_STOP);
	check_empty(s);
	aw_sched_free(s);
}

static void test_ff_max_tokens(void **state)
{
	struct world w;
	static struct out full[1], o[1];
	struct gh hf, h;
	struct aw_sched_req q;
	int tried = 0;

	(void)state;
	open_world(&w, 1, 5);
	full_run(&w, full, &hf);
	/* every forced run of at least 2 tokens: stop one token inside it */
	for (int r = 0; r < hf.n_runs; r++) {
		if (hf.runs[r][1] < 2)
			continue;
		const int32_t cut = hf.runs[r][0] + 1; /* the run's first token is the last */
		struct aw_sched *s = new_sched(&w, 1, 0, o);
		memset(o, 0, sizeof(o));
		gh_open(&h, &w, tool_schema, PFX, SFX);
		req(&q, 0, cut);
		q.hook = gh_hook(&h);
		assert_int_equal(aw_sched_submit(s, &q), 0);
		sched_drain(s, 2000);
		assert_true(o[0].done);
		assert_int_equal(o[0].end.finish, AW_SCHED_FINISH_LENGTH);
		assert_int_equal(o[0].end.gen_tokens, (uint32_t)cut);
		assert_int_equal(o[0].n, cut);
		assert_memory_equal(o[0].tok, full[0].tok, sizeof(int32_t) * (size_t)cut);
		/* the text is the full text's prefix (bytes of complete tokens) */
		assert_true(o[0].len <= full[0].len);
		assert_memory_equal(o[0].text, full[0].text, o[0].len);
		/* forced tokens before the cut, plus the run's first */
		int32_t want = 1;
		for (int i = 0; i < r; i++)
			want += hf.runs[i][1];
		assert_int_equal(o[0].end.forced_tokens, (uint32_t)want);
		check_empty(s);
		aw_sched_free(s);
		gh_close(&h);
		tried++;
	}
	assert_true(tried >= 2);
	gh_close(&hf);
	close_world(&w);
}

/* A stop string that starts inside forced text ends the request at the
 * byte before it, as without fast-forward (bytes-only vocabulary, so both
 * runs produce the same tokens). */
static void test_ff_stop_string(void **state)
{
	struct world w;
	static struct out full[1], o[2];
	struct gh hf, h;
	struct aw_sched_req q;
	char stop[16];

	(void)state;
	open_world(&w, 2, 11);
	full_run(&w, full, &hf);
	/* "destination" is forced text (a member name); "tination" starts in it */
	const char *at = memmem(full[0].text, full[0].len, "tination", 8);
	assert_non_null(at);
	memcpy(stop, "tination", 9);
	for (int ff = 0; ff < 2; ff++) {
		struct aw_sched *s = new_sched(&w, ff, 0, &o[ff]);
		memset(&o[ff], 0, sizeof(o[ff]));
		gh_open(&h, &w, tool_schema, PFX, SFX);
		req(&q, 0, 300);
		q.hook = gh_hook(&h);
		q.sample.n_stop = 1;
		q.sample.stop[0] = stop;
		/* the request's id indexes o[] from &o[ff] */
		assert_int_equal(aw_sched_submit(s, &q), 0);
		sched_drain(s, 2000);
		assert_true(o[ff].done);
		assert_int_equal(o[ff].end.finish, AW_SCHED_FINISH_STOP);
		assert_int_equal(o[ff].len, (size_t)(at - full[0].text));
		assert_memory_equal(o[ff].text, full[0].text, o[ff].len);
		check_empty(s);
		aw_sched_free(s);
		gh_close(&h);
	}
	same_output(&o[0], &o[1]);
	assert_int_equal(o[0].end.forced_tokens, 0);
	assert_true(o[1].end.forced_tokens > 0);
	gh_close(&hf);
	close_world(&w);
}

/* CANCEL sent while a forced run's tokens are being emitted (or a deadline
 * that passes then): the request ends CANCELLED (DEADLINE) at the next step,
 * before the pass that would compute them, with every block back in the
 * pool. */
static void test_ff_cancel(void **state)
{
	struct world w;
	static struct out o[1];
	struct gh h;
	struct aw_sched_req q;
	struct aw_sched_stats st0, st1;
	const uint64_t deadline = 1000000000000ull;

	(void)state;
	open_world(&w, 1, 5);
	for (int dl = 0; dl < 2; dl++) {
		struct aw_sched *s = new_sched(&w, 1, 0, o);
		memset(o, 0, sizeof(o));
		gh_open(&h, &w, tool_schema, PFX, SFX);
		o[0].s = s;
		o[0].h = &h;
		o[0].cancel_at = 3; /* the third forced run */
		o[0].no_cancel = dl;
		req(&q, 0, 300);
		q.hook = gh_hook(&h);
		q.deadline_us = dl ? deadline : 0;
		assert_int_equal(aw_sched_submit(s, &q), 0);
		uint64_t now = 1000;
		while (!o[0].cancel_after)
			assert_true(aw_sched_step(s, now++) > 0);
		const int32_t run = h.runs[2][1];
		assert_true(run >= 1);
		aw_sched_get_stats(s, &st0);
		assert_false(o[0].done);
		assert_int_equal(aw_sched_step(s, dl ? deadline : now), 0);
		aw_sched_get_stats(s, &st1);
		assert_true(o[0].done);
		assert_int_equal(o[0].end.finish,
				 dl ? AW_SCHED_FINISH_DEADLINE : AW_SCHED_FINISH_CANCELLED);
		/* the whole run was emitted (same step), and nothing was computed after */
		assert_int_equal(o[0].n, o[0].cancel_after + run - 1);
		assert_int_equal(o[0].end.gen_tokens, (uint32_t)o[0].n);
		assert_int_equal(o[0].end.forced_tokens,
				 (uint32_t)(h.runs[0][1] + h.runs[1][1] + run));
		assert_int_equal(st1.decode_tokens + st1.prefill_tokens,
				 st0.decode_tokens + st0.prefill_tokens);
		check_empty(s);
		aw_sched_free(s);
		gh_close(&h);
	}
	close_world(&w);
}

/* Forced chunks through the prefix cache (a second identical request reuses
 * the first one's blocks, forced positions included, and gives the same
 * output) and through preemption (a pool too small for two: one is
 * preempted and recomputes its forced tokens; outputs unchanged). */
static void test_ff_cache_and_preemption(void **state)
{
	struct world w;
	static struct out full[1], o[2];
	struct gh hf, h[2];
	struct aw_sched_req q;
	struct aw_sched_stats st;

	(void)state;
	open_world(&w, 1, 5);
	full_run(&w, full, &hf);
	const int32_t n_full = N_PROMPT + full[0].n;

	/* prefix cache: the same request twice, one after the other */
	struct aw_sched *s = new_sched(&w, 1, 0, o);
	memset(o, 0, sizeof(o));
	for (int i = 0; i < 2; i++) {
		gh_open(&h[i], &w, tool_schema, PFX, SFX);
		req(&q, (uint64_t)i, 300);
		q.hook = gh_hook(&h[i]);
		assert_int_equal(aw_sched_submit(s, &q), 0);
		sched_drain(s, 2000);
		same_output(&o[i], full);
	}
	assert_int_equal(o[0].end.cached_tokens, 0);
	/* a prompt of 12 with block 8: only the first block is prompt */
	assert_int_equal(o[1].end.cached_tokens, 8);
	aw_sched_get_stats(s, &st);
	/* every full block of the computed positions: all but the last token
	 * sampled and what was forced after it */
	assert_int_equal(st.cache_blocks, (n_full - ff_tail(&hf)) / 8);
	check_empty(s);
	aw_sched_free(s);
	gh_close(&h[0]);
	gh_close(&h[1]);

	/* preemption: room for one and a half sequences */
	const int32_t blocks = (n_full + 7) / 8;
	struct aw_sched_config c = {.max_batch = 2,
				    .block_size = 8,
				    .ctx = 512,
				    .kv_type = AW_TYPE_F16,
				    .n_blocks = blocks + blocks / 2,
				    .no_prefix_cache = 1};
	memset(o, 0, sizeof(o));
	assert_int_equal(aw_sched_new(w.m, w.tok, NULL, &c, on_event, o, &s), 0);
	for (int i = 0; i < 2; i++) {
		gh_open(&h[i], &w, tool_schema, PFX, SFX);
		req(&q, (uint64_t)i, 300);
		q.hook = gh_hook(&h[i]);
		assert_int_equal(aw_sched_submit(s, &q), 0);
	}
	sched_drain(s, 2000);
	aw_sched_get_stats(s, &st);
	assert_true(st.preempted >= 1);
	same_output(&o[0], full);
	same_output(&o[1], full);
	check_empty(s);
	aw_sched_free(s);
	gh_close(&h[0]);
	gh_close(&h[1]);
	gh_close(&hf);
	close_world(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ff_equals_stepwise),
		cmocka_unit_test(test_ff_matches_aw_infer),
		cmocka_unit_test(test_ff_max_tokens),
		cmocka_unit_test(test_ff_stop_string),
		cmocka_unit_test(test_ff_cancel),
		cmocka_unit_test(test_ff_cache_and_preemption),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
