/* test-aw-infer.c — the aw-infer tool end to end on tiny GGUF files written
 * here (tiny-llama.h): its outputs against the library called directly
 * (greedy ids, --logits values bit for bit), seeds, threads and load methods
 * giving the same tokens, --info/--bench/--load-only output, and the exit
 * statuses of bad input (2 for usage, 1 for model errors) with messages that
 * name the problem. The binary's path comes in AW_INFER. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "model.h"
#include "tok.h"
#include "tiny-llama.h"

static char dir[256];
static const char *exe;

/* Run "aw-infer ARGS" with stdout and stderr captured; returns the exit
 * status. 'out' and 'errbuf' (may be NULL) receive up to cap-1 bytes. */
static int run(const char *args, char *out, size_t cap, char *errbuf)
{
	char cmd[2048], errpath[300];
	FILE *p;
	size_t n = 0;

	snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
	snprintf(cmd, sizeof(cmd), "%s %s 2>%s", exe, args, errpath);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (out) {
		n = fread(out, 1, cap - 1, p);
		out[n] = 0;
	}
	char sink[4096];
	while (fread(sink, 1, sizeof(sink), p) > 0)
		;
	int st = pclose(p);
	if (errbuf) {
		FILE *e = fopen(errpath, "r");
		size_t m = e ? fread(errbuf, 1, 1023, e) : 0;
		errbuf[m] = 0;
		if (e)
			fclose(e);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void write_model(const char *name, const struct tiny_cfg *c)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(tiny_write(c, path, NULL, NULL), 0);
}

static int setup(void **state)
{
	struct tiny_cfg c;

	(void)state;
	exe = getenv("AW_INFER");
	if (!exe || access(exe, X_OK) != 0)
		return -1;
	snprintf(dir, sizeof(dir), "/tmp/test-aw-infer.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	tiny_default(&c);
	c.type = c.embd_type = AW_TYPE_Q8_0;
	write_model("q8.gguf", &c);
	tiny_default(&c);
	c.arch = "gpt2";
	write_model("gpt2.gguf", &c);
	tiny_default(&c);
	c.omit = "blk.0.attn_v.weight";
	write_model("missing.gguf", &c);
	tiny_default(&c);
	c.reshape = "blk.1.ffn_gate.weight";
	write_model("shape.gguf", &c);
	tiny_default(&c);
	c.retype = "blk.0.attn_q.weight";
	write_model("q41.gguf", &c);
	tiny_default(&c);
	c.type = c.embd_type = AW_TYPE_Q4_0;
	c.nan_scale = "blk.1.attn_output.weight";
	write_model("nan.gguf", &c);
	tiny_default(&c);
	c.arch = "qwen2"; /* without its biases */
	write_model("qwen2-nobias.gguf", &c);
	/* a model with a tokenizer, from aw-mkmodel */
	const char *mk = getenv("AW_MKMODEL");
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "%s --out %s/tok.gguf --preset tiny --type q8_0 --seed 3 >/dev/null",
		 mk ? mk : "false", dir);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define M(name) "-m %s/" name
static char args[1024], out[1 << 16], err[1024];

__attribute__((format(printf, 1, 2))) static const char *A(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return args;
}

/* Greedy ids computed with the library for the same file and prompt. */
static void library_greedy(const int32_t *prompt, int n_prompt, int n_gen, int32_t *ids,
			   float *first_logits)
{
	char path[300];
	struct aw_gguf *g;
	struct aw_model *m;
	struct aw_kv *kv;
	struct aw_err e;
	struct aw_model_params p = {.kern = aw_kern_select(NULL), .max_batch = 512, .repack = 1};

	snprintf(path, sizeof(path), "%s/q8.gguf", dir);
	assert_int_equal(aw_gguf_open(path, &g, &e), 0);
	assert_int_equal(aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &p, &m, &e), 0);
	const struct aw_model_hparams *hp = aw_model_hparams(m);
	struct aw_kv_config kc = {hp->n_layer, aw_model_kv_dim(m), 16, 1, 128, 0};
	assert_int_equal(aw_kv_new(&kc, &kv), 0);
	float *lg = malloc(sizeof(float) * (size_t)hp->n_vocab);
	int32_t pos[16], seq[16] = {0};
	for (int i = 0; i < n_prompt; i++)
		pos[i] = i;
	struct aw_batch b = {n_prompt, prompt, pos, seq, NULL};
	assert_int_equal(aw_model_forward(m, kv, &b, NULL, lg), 1);
	memcpy(first_logits, lg, sizeof(float) * (size_t)hp->n_vocab);
	for (int i = 0; i < n_gen; i++) {
		int32_t best = 0, p0 = n_prompt + i;
		for (int32_t t = 1; t < hp->n_vocab; t++)
			if (lg[t] > lg[best])
				best = t;
		ids[i] = best;
		struct aw_batch b1 = {1, &best, &p0, seq, NULL};
		assert_int_equal(aw_model_forward(m, kv, &b1, NULL, lg), 1);
	}
	free(lg);
	aw_kv_free(kv);
	aw_model_free(m);
	aw_gguf_close(g);
}

static void test_greedy_and_logits(void **state)
{
	const int32_t prompt[4] = {3, 14, 15, 92 % 96};
	int32_t ids[10];
	float lg[96];
	char expect[256];
	int off = 0;

	(void)state;
	library_greedy(prompt, 4, 10, ids, lg);
	for (int i = 0; i < 10; i++)
		off += snprintf(expect + off, sizeof(expect) - off, "%s%d", i ? " " : "", ids[i]);
	assert_int_equal(
		run(A(M("q8.gguf") " --prompt-ids '3 14 15 92' -n 10 --temp 0 --ids --kv-type f32",
		      dir),
		    out, sizeof(out), err),
		0);
	assert_string_equal(out, strcat(expect, "\n"));
	/* two threads, another load method: the same tokens */
	assert_int_equal(run(A(M("q8.gguf") " --prompt-ids 3,14,15,92 -n 10 --temp 0 --ids "
					    "--kv-type f32 -t 2",
			       dir),
			     out, sizeof(out), err),
			 0);
	assert_string_equal(out, expect);
	assert_int_equal(
		run(A(M("q8.gguf") " --prompt-ids '3 14 15 92' -n 10 --temp 0 --ids --kv-type f32 "
				   "--load read",
		      dir),
		    out, sizeof(out), err),
		0);
	assert_string_equal(out, expect);
	/* text mode without a tokenizer prints the ids as text */
	assert_int_equal(
		run(A(M("q8.gguf") " --prompt-ids '3 14 15 92' -n 10 --temp 0 --kv-type f32", dir),
		    out, sizeof(out), err),
		0);
	assert_string_equal(out, expect);

	/* the default F16 cache runs too (its logits differ in rounding only) */
	assert_int_equal(run(A(M("q8.gguf") " --prompt-ids '3 14 15 92' -n 10 --temp 0 --ids", dir),
			     out, sizeof(out), err),
			 0);

	/* --logits: one value per line, %.9g round-trips a float exactly */
	assert_int_equal(
		run(A(M("q8.gguf") " --prompt-ids '3 14 15 92' --logits --kv-type f32", dir), out,
		    sizeof(out), err),
		0);
	char *s = out;
	for (int i = 0; i < 96; i++) {
		char *end;
		float v = strtof(s, &end);
		assert_true(end != s && *end == '\n');
		assert_true(v == lg[i]);
		s = end + 1;
	}
	assert_int_equal(*s, 0);
}

static void test_seed(void **state)
{
	char a[4096], b[4096], c[4096];

	(void)state;
	assert_int_equal(run(A(M("q8.gguf") " --prompt-ids 5 -n 40 --temp 1.5 --top-k 0 --top-p 1 "
					    "--min-p 0 --seed 7 --ids",
			       dir),
			     a, sizeof(a), err),
			 0);
	assert_int_equal(run(A(M("q8.gguf") " --prompt-ids 5 -n 40 --temp 1.5 --top-k 0 --top-p 1 "
					    "--min-p 0 --seed 7 --ids",
			       dir),
			     b, sizeof(b), err),
			 0);
	assert_int_equal(run(A(M("q8.gguf") " --prompt-ids 5 -n 40 --temp 1.5 --top-k 0 --top-p 1 "
					    "--min-p 0 --seed 8 --ids",
			       dir),
			     c, sizeof(c), err),
			 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
}

static void test_info_bench_load(void **state)
{
	(void)state;
	assert_int_equal(run(A(M("q8.gguf") " --info --kernels ref", dir), out, sizeof(out), err),
			 0);
	assert_non_null(strstr(out, "layers:          2"));
	assert_non_null(strstr(out, "kernels:         ref"));
	assert_non_null(strstr(out, "q8_0:"));
	assert_int_equal(
		run(A(M("q8.gguf") " --bench -p 20 -n 6 --reps 1", dir), out, sizeof(out), err), 0);
	assert_non_null(strstr(out, "\"prefill_tokens\":20"));
	assert_non_null(strstr(out, "\"decode_tokens\":6"));
	assert_non_null(strstr(out, "\"decode_tok_s\":"));
	assert_non_null(strstr(out, "\"decode_gbps\":"));
	assert_int_equal(
		run(A(M("q8.gguf") " --load read --load-only", dir), out, sizeof(out), err), 0);
	assert_non_null(strstr(out, "\"method\":\"read\""));
	assert_non_null(strstr(out, "\"bytes\":"));
}

static void expect_status(const char *a, int status, const char *needle)
{
	int st = run(a, out, sizeof(out), err);

	if (st != status || (needle && !strstr(err, needle)))
		fail_msg("'%s': status %d (want %d), stderr: %s", a, st, status, err);
}

static void test_bad_input(void **state)
{
	(void)state;
	/* usage: exit 2 */
	expect_status(A(M("q8.gguf") " --prompt-ids 1 -n 0", dir), 2, "-n");
	expect_status(A(M("q8.gguf") " --prompt-ids 1 --kernels sse9", dir), 2, "sse9");
	expect_status(A("--prompt-ids 1"), 2, "-m");
	expect_status(A(M("q8.gguf") " --prompt-ids 1 --top-p 2", dir), 2, "top-p");
	expect_status(A(M("q8.gguf") " --prompt-ids '1 x'", dir), 2, "token id");
	expect_status(A(M("q8.gguf") " --prompt-ids 96", dir), 2, "token id");
	expect_status(A(M("q8.gguf") " --prompt-ids '1 2 3 4 5' -c 4", dir), 2, "context");
	expect_status(A(M("q8.gguf") " --prompt-ids 1 --load floppy", dir), 2, "--load");
	expect_status(A(M("q8.gguf") " --prompt-ids 1 --load-features-off cb_thread,warp", dir), 2,
		      "--load-features-off");
	expect_status(A(M("q8.gguf") " --info --bench", dir), 2, NULL);
	expect_status(A(M("q8.gguf") " --prompt-ids 1 --kv-type q8_0", dir), 2, "--kv-type");
	expect_status(A(M("q8.gguf"), dir), 2, "prompt");
	/* model errors: exit 1, naming the problem */
	expect_status(A(M("gpt2.gguf") " --prompt-ids 1", dir), 1, "architecture 'gpt2'");
	expect_status(A(M("missing.gguf") " --prompt-ids 1", dir), 1,
		      "missing tensor 'blk.0.attn_v.weight'");
	expect_status(A(M("shape.gguf") " --prompt-ids 1", dir), 1,
		      "'blk.1.ffn_gate.weight': shape");
	expect_status(A(M("q41.gguf") " --prompt-ids 1", dir), 1, "q8_1 not supported");
	expect_status(A(M("nan.gguf") " --prompt-ids 1", dir), 1,
		      "'blk.1.attn_output.weight': q4_0 block 1 (row 0) has a NaN");
	/* through the loader: checked as the tensor lands */
	expect_status(A(M("nan.gguf") " --prompt-ids 1 --load read", dir), 1,
		      "'blk.1.attn_output.weight': q4_0 block 1 (row 0) has a NaN");
	expect_status(A(M("qwen2-nobias.gguf") " --prompt-ids 1", dir), 1,
		      "missing tensor 'blk.0.attn_q.bias'");
	expect_status(A(M("nonexistent.gguf") " --prompt-ids 1", dir), 1, NULL);
}

/* -p goes through the file's tokenizer: the same ids as --prompt-ids with
 * the library's encoding, text equal to the library's streaming decoder on
 * the generated ids, and a stop string
 * taken from the middle of that text cuts the output right before it. */
static void test_prompt_text(void **state)
{
	char path[300], ids_s[256], gen_ids[4096], text[8192];
	struct aw_gguf *g;
	struct aw_tok *t;
	struct aw_err e;
	int32_t enc[64], gen[64];
	size_t n, off = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/tok.gguf", dir);
	assert_int_equal(aw_gguf_open(path, &g, &e), 0);
	assert_int_equal(aw_tok_new_from_gguf(g, &t, &e), 0);
	const char *prompt = "the quick brown fox";
	assert_int_equal(aw_tok_encode(t, prompt, strlen(prompt),
				       AW_TOK_ADD_SPECIAL | AW_TOK_PARSE_SPECIAL, enc, 64, &n),
			 0);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(ids_s + off, sizeof(ids_s) - off, "%s%d", i ? " " : "",
					enc[i]);

	assert_int_equal(
		run(A(M("tok.gguf") " -p '%s' -n 12 --temp 0 --ids --ignore-eos", dir, prompt),
		    gen_ids, sizeof(gen_ids), err),
		0);
	assert_int_equal(run(A(M("tok.gguf") " --prompt-ids '%s' -n 12 --temp 0 --ids --ignore-eos",
			       dir, ids_s),
			     out, sizeof(out), err),
			 0);
	assert_string_equal(out, gen_ids);

	/* the text is the decoded ids (a continuation keeps its leading space) */
	int k = 0;
	for (char *p = gen_ids, *end; k < 64; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		gen[k++] = (int32_t)v;
	}
	assert_int_equal(k, 12);
	/* the library's streaming decoder on the same ids (bytes that do not form
	 * UTF-8 come out as U+FFFD, as they must on a terminal) */
	struct aw_tok_stream st;
	char piece[256];
	size_t tl = 0;
	aw_tok_stream_init(&st, t, AW_TOK_KEEP_SPACE);
	assert_true(aw_tok_stream_max(t) <= sizeof(piece));
	for (int i = 0; i < 12; i++) {
		assert_int_equal(aw_tok_stream_push(&st, gen[i], piece, sizeof(piece), &n), 0);
		memcpy(text + tl, piece, n);
		tl += n;
	}
	assert_int_equal(aw_tok_stream_flush(&st, piece, sizeof(piece), &n), 0);
	memcpy(text + tl, piece, n);
	tl += n;
	text[tl] = 0;
	assert_int_equal(run(A(M("tok.gguf") " -p '%s' -n 12 --temp 0 --ignore-eos", dir, prompt),
			     out, sizeof(out), err),
			 0);
	strcat(text, "\n");
	assert_string_equal(out, text);

	/* --prompt-ids on a file with a tokenizer prints text as well */
	assert_int_equal(
		run(A(M("tok.gguf") " --prompt-ids '%s' -n 12 --temp 0 --ignore-eos", dir, ids_s),
		    out, sizeof(out), err),
		0);
	assert_string_equal(out, text);

	/* a stop string from the middle of the text (no quotes in it) */
	size_t len = strlen(text) - 1, at = len / 2;
	if (len >= 6 && !memchr(text + at, '\'', 3)) {
		char stop[4] = {text[at], text[at + 1], text[at + 2], 0};
		size_t first = (size_t)(strstr(text, stop) - text);
		assert_int_equal(run(A(M("tok.gguf") " -p '%s' -n 12 --temp 0 --ignore-eos "
						     "--stop '%s'",
				       dir, prompt, stop),
				     out, sizeof(out), err),
				 0);
		text[first] = 0;
		strcat(text, "\n");
		assert_string_equal(out, text);
	}
	aw_tok_free(t);
	aw_gguf_close(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greedy_and_logits), cmocka_unit_test(test_seed),
		cmocka_unit_test(test_info_bench_load),	  cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_prompt_text),
	};
	if (!getenv("AW_INFER"))
		return 77;
	return cmocka_run_group_tests(tests, setup, teardown);
}
