/* test-mkmodel.c — tools/aw-mkmodel: the files it writes (metadata, tensor
 * names, shapes and types as llama.cpp's llama architecture expects, weight
 * scale, the synthetic vocabulary), determinism, --tokenizer-from, and its
 * refusal of bad flags (exit 2 with the usage on stderr). Runs the binary
 * named by $AW_MKMODEL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

extern char **environ;

static const char *mkmodel;
static char dir[] = "/tmp/test-mkmodel-XXXXXX";
static char errfile[4096];

/* Run aw-mkmodel with a NULL-terminated argument list; stderr goes to
 * errfile. Returns the exit status. */
static int run(const char *first, ...)
{
	const char *argv[64];
	posix_spawn_file_actions_t fa;
	va_list ap;
	int n = 0, status;
	pid_t pid;

	argv[n++] = mkmodel;
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_int_equal(posix_spawn(&pid, mkmodel, &fa, NULL, (char *const *)argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static char *slurp(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

static const char *path(const char *name)
{
	static char p[8][4096];
	static int k;

	k = (k + 1) % 8;
	snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
	return p[k];
}

static int setup(void **state)
{
	(void)state;
	mkmodel = getenv("AW_MKMODEL");
	if (!mkmodel || access(mkmodel, X_OK) != 0)
		return -1;
	if (!mkdtemp(dir))
		return -1;
	snprintf(errfile, sizeof(errfile), "%s/stderr", dir);
	return 0;
}

static int teardown(void **state)
{
	char cmd[8192];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static uint32_t u32_of(const struct aw_gguf *g, const char *key)
{
	uint32_t v = 0;

	if (aw_gguf_get_u32(g, key, &v) != 0)
		fail_msg("key %s missing or not an integer", key);
	return v;
}

static const struct aw_gguf_tensor *tensor(const struct aw_gguf *g, const char *name)
{
	int i = aw_gguf_find_tensor(g, name);

	if (i < 0)
		fail_msg("tensor %s missing", name);
	return aw_gguf_tensor_at(g, (uint64_t)i);
}

static void check_shape(const struct aw_gguf *g, const char *name, uint32_t type, uint64_t ne0,
			uint64_t ne1)
{
	const struct aw_gguf_tensor *t = tensor(g, name);

	assert_int_equal(t->type, type);
	assert_int_equal(t->ne[0], ne0);
	assert_int_equal(t->ne[1], ne1);
	assert_int_equal(t->n_dims, ne1 == 1 ? 1 : 2);
}

/* Mean and standard deviation of a tensor's dequantized values. */
static void stats(const struct aw_gguf *g, const char *name, double *mean, double *sd)
{
	const struct aw_gguf_tensor *t = tensor(g, name);
	const uint8_t *p = aw_gguf_tensor_data(g, t);
	size_t rs = aw_type_row_size(t->type, t->ne[0]);
	float *row = malloc(sizeof(float) * t->ne[0]);
	double s = 0, s2 = 0, n = 0;

	assert_non_null(row);
	for (uint64_t r = 0; r < t->ne[1]; r++) {
		assert_int_equal(aw_dequant_row(t->type, p + r * rs, row, t->ne[0]), 0);
		for (uint64_t i = 0; i < t->ne[0]; i++) {
			assert_true(isfinite(row[i]));
			s += row[i];
			s2 += (double)row[i] * row[i];
			n++;
		}
	}
	free(row);
	*mean = s / n;
	*sd = sqrt(s2 / n - *mean * *mean);
}

/* The tiny preset: llama metadata, every tensor, weight scale, vocabulary. */
static void test_tiny(void **state)
{
	const char *f = path("tiny.gguf");
	struct aw_gguf *g;
	struct aw_err err;
	const char *s;
	size_t sl;
	double mean, sd;
	float eps, base;
	bool b;
	char name[64];

	(void)state;
	assert_int_equal(run("--out", f, "--preset", "tiny", NULL), 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(aw_gguf_get_str(g, "general.architecture", &s, &sl), 0);
	assert_int_equal(sl, 5);
	assert_memory_equal(s, "llama", 5);
	assert_int_equal(u32_of(g, "general.alignment"), 32);
	assert_int_equal(u32_of(g, "general.file_type"), 0);
	assert_int_equal(u32_of(g, "llama.embedding_length"), 64);
	assert_int_equal(u32_of(g, "llama.block_count"), 2);
	assert_int_equal(u32_of(g, "llama.attention.head_count"), 4);
	assert_int_equal(u32_of(g, "llama.attention.head_count_kv"), 2);
	assert_int_equal(u32_of(g, "llama.feed_forward_length"), 192);
	assert_int_equal(u32_of(g, "llama.vocab_size"), 512);
	assert_int_equal(u32_of(g, "llama.context_length"), 256);
	assert_int_equal(u32_of(g, "llama.rope.dimension_count"), 16);
	assert_int_equal(aw_gguf_get_f32(g, "llama.rope.freq_base", &base), 0);
	assert_true(base == 10000.0f);
	assert_int_equal(aw_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps), 0);
	assert_true(eps == 1e-5f);

	/* tensors: 3 + 9 per layer, ggml shapes */
	assert_int_equal(aw_gguf_n_tensors(g), 3 + 9 * 2);
	check_shape(g, "token_embd.weight", AW_TYPE_F32, 64, 512);
	check_shape(g, "output_norm.weight", AW_TYPE_F32, 64, 1);
	check_shape(g, "output.weight", AW_TYPE_F32, 64, 512);
	for (int l = 0; l < 2; l++) {
		static const struct {
			const char *n;
			uint64_t ne0, ne1;
		} shapes[] = {
			{"attn_norm", 64, 1},  {"attn_q", 64, 64},	{"attn_k", 64, 32},
			{"attn_v", 64, 32},    {"attn_output", 64, 64}, {"ffn_norm", 64, 1},
			{"ffn_gate", 64, 192}, {"ffn_up", 64, 192},	{"ffn_down", 192, 64},
		};

		for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, shapes[i].n);
			check_shape(g, name, AW_TYPE_F32, shapes[i].ne0, shapes[i].ne1);
		}
	}

	/* scale: uniform with sd 1/sqrt(fan_in) (sampling error of ~1% at these sizes) */
	stats(g, "blk.0.attn_q.weight", &mean, &sd);
	assert_true(fabs(sd - 1.0 / 8.0) < 0.125 * 0.05);
	assert_true(fabs(mean) < 0.01);
	stats(g, "blk.1.ffn_down.weight", &mean, &sd);
	assert_true(fabs(sd - 1.0 / sqrt(192.0)) < 0.05 / sqrt(192.0));
	stats(g, "blk.1.ffn_norm.weight", &mean, &sd);
	assert_true(fabs(mean - 1.0) < 0.02 && sd > 0.01 && sd < 0.05);
	stats(g, "token_embd.weight", &mean, &sd);
	assert_true(fabs(sd - 1.0) < 0.05);
	/* tensors differ from each other (seeded by name) */
	assert_memory_not_equal(aw_gguf_tensor_data(g, tensor(g, "blk.0.attn_q.weight")),
				aw_gguf_tensor_data(g, tensor(g, "blk.1.attn_q.weight")), 64 * 4);

	/* vocabulary */
	{
		int ki = aw_gguf_find_key(g, "tokenizer.ggml.tokens");
		int kt = aw_gguf_find_key(g, "tokenizer.ggml.token_type");
		int ks = aw_gguf_find_key(g, "tokenizer.ggml.scores");
		const void *types, *scores;
		uint32_t et;
		uint64_t n;

		assert_int_equal(aw_gguf_get_str(g, "tokenizer.ggml.model", &s, &sl), 0);
		assert_memory_equal(s, "llama", 5);
		assert_int_equal(aw_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), 0);
		assert_int_equal(n, 512);
		assert_int_equal(aw_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n), 0);
		assert_int_equal(et, AW_GGUF_TYPE_FLOAT32);
		assert_int_equal(n, 512);
		assert_int_equal(aw_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n), 0);
		assert_int_equal(et, AW_GGUF_TYPE_INT32);
		assert_int_equal(n, 512);
		assert_int_equal(aw_gguf_arr_data(g, kt, &types), 0);
		assert_int_equal(aw_gguf_arr_data(g, ks, &scores), 0);
		assert_int_equal(u32_of(g, "tokenizer.ggml.unknown_token_id"), 0);
		assert_int_equal(u32_of(g, "tokenizer.ggml.bos_token_id"), 1);
		assert_int_equal(u32_of(g, "tokenizer.ggml.eos_token_id"), 2);
		assert_int_equal(aw_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), 0);
		assert_true(b);
		assert_int_equal(aw_gguf_arr_str(g, ki, 0, &s, &sl), 0);
		assert_true(sl == 5 && memcmp(s, "<unk>", 5) == 0);
		assert_int_equal(aw_gguf_arr_str(g, ki, 1, &s, &sl), 0);
		assert_true(sl == 3 && memcmp(s, "<s>", 3) == 0);
		assert_int_equal(aw_gguf_arr_str(g, ki, 2, &s, &sl), 0);
		assert_true(sl == 4 && memcmp(s, "</s>", 4) == 0);
		for (int i = 0; i < 512; i++) {
			int32_t ty;
			float sc, prev;

			memcpy(&ty, (const uint8_t *)types + 4 * i, 4);
			memcpy(&sc, (const uint8_t *)scores + 4 * i, 4);
			assert_int_equal(aw_gguf_arr_str(g, ki, (uint64_t)i, &s, &sl), 0);
			assert_true(sl > 0);
			if (i >= 3 && i < 259) {
				snprintf(name, sizeof(name), "<0x%02X>", i - 3);
				assert_int_equal(sl, 6);
				assert_memory_equal(s, name, 6);
				assert_int_equal(ty, 6);
			} else if (i >= 259) {
				assert_int_equal(ty, 1);
				if (i > 259) {
					memcpy(&prev, (const uint8_t *)scores + 4 * (i - 1), 4);
					assert_true(sc < prev);
				}
			} else {
				assert_int_equal(ty, i == 0 ? 2 : 3);
			}
			/* no duplicates */
			for (int j = 0; j < i; j++) {
				const char *s2;
				size_t sl2;

				aw_gguf_arr_str(g, ki, (uint64_t)j, &s2, &sl2);
				if (sl == sl2 && memcmp(s, s2, sl) == 0)
					fail_msg("token %d duplicates token %d", i, j);
			}
		}
		/* the word-boundary piece and a common word are there */
		assert_int_equal(aw_gguf_arr_str(g, ki, 259, &s, &sl), 0);
		assert_true(sl == 3 && memcmp(s, "\xe2\x96\x81", 3) == 0);
		assert_int_equal(aw_gguf_arr_str(g, ki, 260, &s, &sl), 0);
		assert_true(sl == 1 && s[0] == 'a');
		/* "\u2581the" and the merge chain that reaches it */
		{
			static const char *const chain[] = {"\xe2\x96\x81t",
							    "\xe2\x96\x81th",
							    "\xe2\x96\x81the",
							    "t",
							    "h",
							    "e"};
			bool found[6] = {0};

			for (uint64_t i = 0; i < 512; i++) {
				aw_gguf_arr_str(g, ki, i, &s, &sl);
				for (int k = 0; k < 6; k++)
					if (sl == strlen(chain[k]) && memcmp(s, chain[k], sl) == 0)
						found[k] = true;
			}
			for (int k = 0; k < 6; k++)
				if (!found[k])
					fail_msg("piece %s missing from the tiny vocabulary",
						 chain[k]);
		}
	}
	aw_gguf_close(g);
}

/* Same arguments, same bytes; another seed, other bytes. */
static void test_deterministic(void **state)
{
	const char *a = path("a.gguf"), *b = path("b.gguf"), *c = path("c.gguf");
	char *x, *y, *z;
	size_t lx, ly, lz;

	(void)state;
	assert_int_equal(run("--out", a, "--type", "q8_0", "--seed", "7", NULL), 0);
	assert_int_equal(run("--seed", "7", "--type", "q8_0", "--out", b, NULL), 0);
	assert_int_equal(run("--out", c, "--type", "q8_0", "--seed", "8", NULL), 0);
	x = slurp(a, &lx);
	y = slurp(b, &ly);
	z = slurp(c, &lz);
	assert_int_equal(lx, ly);
	assert_memory_equal(x, y, lx);
	assert_int_equal(lx, lz);
	assert_memory_not_equal(x, z, lx);
	free(x);
	free(y);
	free(z);
}

/* Mixed types, --tied, explicit shape flags. */
static void test_types(void **state)
{
	const char *f = path("mixed.gguf"), *t = path("tied.gguf");
	struct aw_gguf *g;
	struct aw_err err;
	double mean, sd;

	(void)state;
	assert_int_equal(run("--out", f, "--dim", "128", "--heads", "8", "--kv-heads", "1",
			     "--layers", "1", "--ffn", "96", "--vocab", "300", "--ctx", "64",
			     "--type", "q4_0", "--embd-type", "q8_0", "--output-type", "bf16",
			     "--rope-base", "500000", "--norm-eps", "1e-6", NULL),
			 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(u32_of(g, "general.file_type"), 2);
	assert_int_equal(u32_of(g, "llama.rope.dimension_count"), 16);
	check_shape(g, "token_embd.weight", AW_TYPE_Q8_0, 128, 300);
	check_shape(g, "output.weight", AW_TYPE_BF16, 128, 300);
	check_shape(g, "output_norm.weight", AW_TYPE_F32, 128, 1);
	check_shape(g, "blk.0.attn_k.weight", AW_TYPE_Q4_0, 128, 16);
	check_shape(g, "blk.0.ffn_down.weight", AW_TYPE_Q4_0, 96, 128);
	/* q4_0 keeps the scale within its quantization error */
	stats(g, "blk.0.attn_q.weight", &mean, &sd);
	assert_true(fabs(sd - 1.0 / sqrt(128.0)) < 0.15 / sqrt(128.0));
	aw_gguf_close(g);

	for (int k = 0; k < 3; k++) {
		static const char *const types[] = {"f16", "bf16", "q8_0"};
		static const uint32_t want[] = {AW_TYPE_F16, AW_TYPE_BF16, AW_TYPE_Q8_0};
		static const uint32_t ftype[] = {1, 32, 7};

		assert_int_equal(run("--out", t, "--tied", "--type", types[k], NULL), 0);
		assert_int_equal(aw_gguf_open(t, &g, &err), 0);
		assert_int_equal(aw_gguf_find_tensor(g, "output.weight"), -ENOENT);
		assert_int_equal(aw_gguf_n_tensors(g), 2 + 9 * 2);
		assert_int_equal(u32_of(g, "general.file_type"), ftype[k]);
		check_shape(g, "token_embd.weight", want[k], 64, 512);
		check_shape(g, "blk.1.ffn_up.weight", want[k], 64, 192);
		check_shape(g, "blk.1.ffn_norm.weight", AW_TYPE_F32, 64, 1);
		stats(g, "blk.1.attn_v.weight", &mean, &sd);
		assert_true(fabs(sd - 0.125) < 0.125 * 0.06);
		aw_gguf_close(g);
	}
}

/* --alignment: the data region and every tensor start on that boundary
 * (e.g. 4096 for O_DIRECT reads by the loader). */
static void test_alignment(void **state)
{
	const char *f = path("aligned.gguf");
	struct aw_gguf *g;
	struct aw_err err;

	(void)state;
	assert_int_equal(run("--out", f, "--alignment", "4096", "--type", "q8_0", NULL), 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(aw_gguf_alignment(g), 4096);
	assert_int_equal(u32_of(g, "general.alignment"), 4096);
	assert_int_equal(aw_gguf_data_offset(g) % 4096, 0);
	for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++)
		assert_int_equal(aw_gguf_tensor_at(g, i)->offset % 4096, 0);
	aw_gguf_close(g);
}

/* --tokenizer-from copies the tokenizer section and takes its size. */
static void test_tokenizer_from(void **state)
{
	const char *src = path("src.gguf"), *dst = path("dst.gguf");
	struct aw_gguf *a, *b;
	struct aw_err err;
	int ka, kb;

	(void)state;
	assert_int_equal(run("--out", src, "--vocab", "333", NULL), 0);
	assert_int_equal(run("--out", dst, "--tokenizer-from", src, "--type", "f16", NULL), 0);
	assert_int_equal(aw_gguf_open(src, &a, &err), 0);
	assert_int_equal(aw_gguf_open(dst, &b, &err), 0);
	assert_int_equal(u32_of(b, "llama.vocab_size"), 333);
	check_shape(b, "token_embd.weight", AW_TYPE_F16, 64, 333);
	for (int i = 0; (uint64_t)i < aw_gguf_n_kv(a); i++) {
		const char *k;
		const void *ra, *rb;
		size_t kl, la, lb;
		char key[128];

		aw_gguf_key_at(a, i, &k, &kl);
		if (kl < 10 || memcmp(k, "tokenizer.", 10) != 0)
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)kl, k);
		kb = aw_gguf_find_key(b, key);
		assert_true(kb >= 0);
		aw_gguf_kv_raw(a, i, &ra, &la);
		aw_gguf_kv_raw(b, kb, &rb, &lb);
		assert_int_equal(la, lb);
		assert_memory_equal(ra, rb, la);
	}
	ka = aw_gguf_find_key(a, "tokenizer.ggml.tokens");
	assert_true(ka >= 0);
	aw_gguf_close(a);
	aw_gguf_close(b);
	/* a file without a tokenizer is refused (not a usage error) */
	assert_int_equal(run("--out", dst, "--tokenizer-from", "/nonexistent.gguf", NULL), 1);
}

/* A larger preset: shapes of stories15m in q8_0 (the file the peer loads). */
static void test_stories15m(void **state)
{
	const char *f = path("s15.gguf");
	struct aw_gguf *g;
	struct aw_err err;

	(void)state;
	assert_int_equal(run("--out", f, "--preset", "stories15m", "--type", "q8_0", NULL), 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(u32_of(g, "llama.embedding_length"), 288);
	assert_int_equal(u32_of(g, "llama.block_count"), 6);
	assert_int_equal(u32_of(g, "llama.attention.head_count"), 6);
	assert_int_equal(u32_of(g, "llama.attention.head_count_kv"), 6);
	assert_int_equal(u32_of(g, "llama.feed_forward_length"), 768);
	assert_int_equal(u32_of(g, "llama.vocab_size"), 32000);
	assert_int_equal(u32_of(g, "general.file_type"), 7);
	check_shape(g, "token_embd.weight", AW_TYPE_Q8_0, 288, 32000);
	check_shape(g, "blk.5.ffn_down.weight", AW_TYPE_Q8_0, 768, 288);
	assert_int_equal(aw_gguf_n_tensors(g), 3 + 9 * 6);
	aw_gguf_close(g);
}

/* Every bad flag: exit 2 and the usage on stderr, no output file. */
static void test_bad_flags(void **state)
{
	const char *f = path("never.gguf");
	static const char *const cases[][8] = {
		{"--bogus", NULL},
		{"--dim", NULL},
		{"--dim", "0", NULL},
		{"--dim", "abc", NULL},
		{"--dim", "-64", NULL},
		{"--dim", "99999999999", NULL},
		{"--heads", "5", NULL},
		{"--kv-heads", "3", NULL},
		{"--heads", "8", "--kv-heads", "3", NULL},
		{"--kv-heads", "8", NULL},
		{"--heads", "64", NULL}, /* head dim 1: odd */
		{"--vocab", "100", NULL},
		{"--vocab", "10000000", NULL},
		{"--ctx", "0", NULL},
		{"--layers", "0", NULL},
		{"--ffn", "1x", NULL},
		{"--type", "q3_k", NULL},
		{"--embd-type", "F32x", NULL},
		{"--output-type", "", NULL},
		{"--preset", "gpt-5", NULL},
		{"--rope-base", "0", NULL},
		{"--rope-base", "nan", NULL},
		{"--norm-eps", "1", NULL},
		{"--norm-eps", "-1e-5", NULL},
		{"--seed", "x", NULL},
		{"--seed", "-1", NULL},
		{"--dim", "48", "--heads", "4", "--type", "q8_0", NULL},
		{"--ffn", "100", "--type", "q4_0", NULL},
		{"--tied", "--output-type", "f16", NULL},
		{"--tokenizer-from", "x.gguf", "--vocab", "512", NULL},
		{"--alignment", "48", NULL},
		{"--alignment", "16", NULL},
		{"--alignment", "2097152", NULL},
		{"--arch", "gpt2", NULL},
		{"--arch", "", NULL},
		{"--rope-scaling", "yarn", NULL},
		{"--tied", "--untied", NULL},
		{"--preset", "qwen2.5-0.5b", "--output-type", "f16", NULL},
		{"extra", NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *const *c = cases[i];
		char *e;
		size_t el;
		int st = run("--out", f, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], NULL);

		if (st != 2)
			fail_msg("case %zu (%s %s): exit %d, want 2", i, c[0], c[1] ? c[1] : "",
				 st);
		e = slurp(errfile, &el);
		if (!strstr(e, "usage:"))
			fail_msg("case %zu (%s): no usage on stderr: %s", i, c[0], e);
		free(e);
		assert_int_equal(access(f, F_OK), -1);
	}
	/* --out missing */
	assert_int_equal(run("--preset", "tiny", NULL), 2);
	assert_int_equal(run("--help", NULL), 0);
}

static float f32_of(const struct aw_gguf *g, const char *key)
{
	float v = 0;

	if (aw_gguf_get_f32(g, key, &v) != 0)
		fail_msg("key %s missing or not a float", key);
	return v;
}

/* The new presets at small dims (their shape flags override; the
 * architecture features stay): qwen2 keys and biases, tied embeddings,
 * Llama 3.2's rope_freqs, SmolLM2's tied llama. */
static void test_arch_presets(void **state)
{
	const char *f = path("arch.gguf");
	struct aw_gguf *g;
	struct aw_err err;
	const char *s;
	size_t len;
	double mean, sd;

	(void)state;
	/* qwen2.5-0.5b: qwen2.*, base 1e6, eps 1e-6, biases, tied, GQA */
	assert_int_equal(run("--out", f, "--preset", "qwen2.5-0.5b", "--layers", "2", "--dim",
			     "128", "--heads", "2", "--ffn", "256", "--vocab", "1000", "--type",
			     "q8_0", NULL),
			 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(aw_gguf_get_str(g, "general.architecture", &s, &len), 0);
	assert_memory_equal(s, "qwen2", 5);
	assert_int_equal(len, 5);
	assert_int_equal(u32_of(g, "qwen2.embedding_length"), 128);
	assert_int_equal(u32_of(g, "qwen2.attention.head_count"), 2);
	/* the preset's 2 KV heads still divide --heads 2 */
	assert_int_equal(u32_of(g, "qwen2.attention.head_count_kv"), 2);
	assert_int_equal(u32_of(g, "qwen2.context_length"), 32768);
	assert_true(f32_of(g, "qwen2.rope.freq_base") == 1e6f);
	assert_true(f32_of(g, "qwen2.attention.layer_norm_rms_epsilon") == 1e-6f);
	assert_true(aw_gguf_find_key(g, "llama.embedding_length") < 0);
	assert_true(aw_gguf_find_tensor(g, "output.weight") < 0); /* tied */
	assert_true(aw_gguf_find_tensor(g, "rope_freqs.weight") < 0);
	check_shape(g, "blk.1.attn_q.bias", AW_TYPE_F32, 128, 1);
	check_shape(g, "blk.1.attn_k.bias", AW_TYPE_F32, 128, 1);
	check_shape(g, "blk.0.attn_v.bias", AW_TYPE_F32, 128, 1);
	stats(g, "blk.0.attn_k.bias", &mean, &sd); /* sd 1/2 */
	assert_true(fabs(sd - 0.5) < 0.1);
	/* tied: the table takes the output's scale, sd 1/sqrt(dim) */
	stats(g, "token_embd.weight", &mean, &sd);
	assert_true(fabs(sd - 1.0 / sqrt(128.0)) < 0.05 / sqrt(128.0));
	aw_gguf_close(g);

	/* --untied brings output.weight back; --arch llama drops the biases */
	assert_int_equal(run("--out", f, "--preset", "qwen2.5-0.5b", "--layers", "1", "--dim",
			     "128", "--heads", "2", "--ffn", "256", "--vocab", "1000", "--untied",
			     "--arch", "llama", NULL),
			 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_true(aw_gguf_find_tensor(g, "output.weight") >= 0);
	assert_true(aw_gguf_find_tensor(g, "blk.0.attn_q.bias") < 0);
	assert_int_equal(u32_of(g, "llama.embedding_length"), 128);
	aw_gguf_close(g);

	/* llama-3.2-1b: rope_freqs.weight from Llama 3's scaling (head 64,
	 * base 500000): 1 for short wavelengths, 32 for long, smooth between */
	assert_int_equal(run("--out", f, "--preset", "llama-3.2-1b", "--layers", "1", "--dim",
			     "256", "--heads", "4", "--ffn", "256", "--vocab", "1000", NULL),
			 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(u32_of(g, "llama.attention.head_count_kv"), 4);
	assert_true(f32_of(g, "llama.rope.freq_base") == 500000.0f);
	assert_true(aw_gguf_find_tensor(g, "output.weight") < 0);
	check_shape(g, "rope_freqs.weight", AW_TYPE_F32, 32, 1);
	{
		const struct aw_gguf_tensor *t = tensor(g, "rope_freqs.weight");
		float ff[32];
		int ones = 0, max = 0;

		memcpy(ff, aw_gguf_tensor_data(g, t), sizeof(ff));
		for (int i = 0; i < 32; i++) {
			const double wl = 2 * M_PI * pow(500000.0, 2.0 * i / 64);
			assert_true(ff[i] >= 1.0f && ff[i] <= 32.0f);
			if (i)
				assert_true(ff[i] >= ff[i - 1]);
			if (wl < 2048)
				assert_true(ff[i] == 1.0f), ones++;
			else if (wl > 8192)
				assert_true(ff[i] == 32.0f), max++;
			else /* 1 / ((1 - s) / 32 + s), s = (8192 / wl - 1) / 3 */
				assert_float_equal(ff[i],
						   1.0 / ((1 - (8192 / wl - 1) / 3) / 32 +
							  (8192 / wl - 1) / 3),
						   1e-5 * ff[i]);
		}
		assert_true(ones > 0 && max > 0);
	}
	aw_gguf_close(g);

	/* smollm2-135m: a tied llama; its full shape (30 layers of 576) in the
	 * metadata when not overridden */
	assert_int_equal(run("--out", f, "--preset", "smollm2-135m", "--dim", "192", "--heads", "3",
			     "--ffn", "256", "--vocab", "1000", "--layers", "1", NULL),
			 0);
	assert_int_equal(aw_gguf_open(f, &g, &err), 0);
	assert_int_equal(u32_of(g, "llama.attention.head_count_kv"), 3);
	assert_true(f32_of(g, "llama.rope.freq_base") == 100000.0f);
	assert_true(aw_gguf_find_tensor(g, "output.weight") < 0);
	aw_gguf_close(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiny),	   cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_types),	   cmocka_unit_test(test_tokenizer_from),
		cmocka_unit_test(test_stories15m), cmocka_unit_test(test_alignment),
		cmocka_unit_test(test_bad_flags),  cmocka_unit_test(test_arch_presets),
	};

	if (!getenv("AW_MKMODEL")) {
		fprintf(stderr, "AW_MKMODEL not set\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
