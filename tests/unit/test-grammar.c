/* test-grammar.c — JSON Schema compiler and token matcher (inference/grammar.c).
 *
 * The vocabulary is a small SentencePiece one: the 256 byte tokens (so every
 * byte string can be spelled) plus multi-byte pieces that cross the
 * grammar's boundaries ("{\"", "\": ", "\"}", "abc\"", ", \"", "12", ...).
 * The central check: at every step of random walks, the mask from the trie
 * walk (with its fast paths and cache) equals the brute force answer —
 * accept(token) then rollback(1) for every token — and every walk that ends
 * gives text that parses as JSON and meets the schema's simple constraints.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "gguf.h"
#include "grammar.h"
#include "sample.h"
#include "tok.h"
#include "aw-skip.h"

static const char *const extra[] = {
	"{\"",
	"\": ",
	"\"}",
	"abc\"",
	", \"",
	"12",
	"\"",
	"name",
	"age",
	"true",
	"false",
	"null",
	"\\\"",
	"\\n",
	"\"]",
	"[\"",
	"0.",
	"-1",
	"},",
	"}]",
	"ab",
	"\xc3\xa9",
	"\xe6\x97\xa5",
	"\xe6",
	"\x97\xa5",
	"\"name\": \"",
	"x\", \"",
	"1234",
	"e5",
	"  ",
	"\n",
	"\"\"",
	/* for pattern strings: separators inside, after the first character,
	 * non-ASCII first and later, a character cut short */
	"/ab",
	"a/b",
	"~0",
	"~1/",
	"x:y",
	"ab:",
	"::",
	"abcabc",
	"/\xc3\xa9",
	"\xc3\xa9/",
	"\xe6\x97\xa5"
	"a",
	"a\xe6\x97",
	"/\"",
	"a\",",
	"Ab",
	"zz~",
	"/~0/",
	"b\"}",
	/* escapes, then the closing quote (the quote tokens that close) */
	"\\t\"}",
	"x\\\\\"",
	"\\u00e9",
};
#define N_EXTRA	 (sizeof(extra) / sizeof(extra[0]))
#define N_TOKENS (3 + 256 + N_EXTRA)

static char text[N_TOKENS][24];
static const char *toks[N_TOKENS];
static int32_t types[N_TOKENS];

static struct aw_tok *tok;
static struct aw_grammar_vocab *vocab;

static int setup(void **state)
{
	struct aw_tok_vocab v;
	struct aw_err err;
	(void)state;
	snprintf(text[0], sizeof(text[0]), "<unk>");
	snprintf(text[1], sizeof(text[1]), "<s>");
	snprintf(text[2], sizeof(text[2]), "</s>");
	types[0] = AW_TOK_TYPE_UNKNOWN;
	types[1] = types[2] = AW_TOK_TYPE_CONTROL;
	for (int b = 0; b < 256; b++) {
		snprintf(text[3 + b], sizeof(text[0]), "<0x%02X>", b);
		types[3 + b] = AW_TOK_TYPE_BYTE;
	}
	for (size_t i = 0; i < N_EXTRA; i++) {
		/* SentencePiece writes spaces as U+2581 */
		char *o = text[259 + i];
		for (const char *p = extra[i]; *p; p++) {
			if (*p == ' ') {
				memcpy(o, "\xe2\x96\x81", 3);
				o += 3;
			} else {
				*o++ = *p;
			}
		}
		*o = '\0';
		types[259 + i] = AW_TOK_TYPE_NORMAL;
	}
	for (size_t i = 0; i < N_TOKENS; i++)
		toks[i] = text[i];
	aw_tok_vocab_init(&v);
	v.model = "llama";
	v.n_tokens = N_TOKENS;
	v.tokens = toks;
	v.n_types = N_TOKENS;
	v.types = types;
	v.add_space_prefix = 0;
	if (aw_tok_new(&v, &tok, &err) < 0) {
		fprintf(stderr, "tok: %s\n", err.msg);
		return -1;
	}
	return aw_grammar_vocab_new(tok, &vocab);
}

static int teardown(void **state)
{
	(void)state;
	aw_grammar_vocab_free(vocab);
	aw_tok_free(tok);
	return 0;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static struct aw_grammar *compile(const char *schema)
{
	struct aw_grammar *g = NULL;
	struct aw_err err = {0};
	int r = aw_grammar_compile(schema, strlen(schema), NULL, &g, &err);
	if (r < 0)
		fprintf(stderr, "compile %s: %s\n", schema, err.msg);
	assert_int_equal(r, 0);
	return g;
}

static int refuse(const char *schema, int code, const char *needle)
{
	struct aw_grammar *g = NULL;
	struct aw_err err = {0};
	int r = aw_grammar_compile(schema, strlen(schema), NULL, &g, &err);
	if (r != -code || (needle && !strstr(err.msg, needle)))
		fprintf(stderr, "schema %.80s: got %d '%s', want %d '%s'\n", schema, r, err.msg,
			-code, needle ? needle : "");
	assert_int_equal(r, -code);
	if (needle)
		assert_non_null(strstr(err.msg, needle));
	return 0;
}

/* One random walk: check every mask against brute force; returns the text
 * (caller frees) or NULL when the walk hit 'max' tokens first. */
static char *walk_from(struct aw_grammar *g, const char *prefix, int max, int check)
{
	struct aw_grammar_matcher *m;
	uint64_t mask[(N_TOKENS + 63) / 64];
	char *out = calloc(1, 4096);
	size_t len = 0;
	assert_int_equal(aw_grammar_matcher_new(g, vocab, &m), 0);
	if (prefix) {
		assert_int_equal(aw_grammar_accept_bytes(m, prefix, strlen(prefix)), 0);
		len = strlen(prefix);
		memcpy(out, prefix, len);
	}
	for (int step = 0; step < max; step++) {
		if (step == max / 2)
			aw_grammar_set_finish(m, 1); /* steer to the end, still checked */
		int n = aw_grammar_mask(m, mask);
		if (!(n > 0 || aw_grammar_done(m)))
			fprintf(stderr, "stuck after '%.*s' (step %d)\n", (int)len, out, step);
		assert_true(n > 0 || aw_grammar_done(m));
		if (aw_grammar_done(m))
			break;
		if (check) {
			int brute = 0;
			for (int32_t t = 0; t < (int32_t)N_TOKENS; t++) {
				int ok = aw_grammar_accept(m, t) == 0;
				if (ok)
					assert_int_equal(aw_grammar_rollback(m, 1), 0);
				int bit = (int)((mask[t >> 6] >> (t & 63)) & 1);
				if (ok != bit)
					fprintf(stderr,
						"step %d token %d '%s': accept %d mask %d (after "
						"'%.*s')\n",
						step, t, text[t], ok, bit, (int)len, out);
				assert_int_equal(ok, bit);
				brute += ok;
			}
			assert_int_equal(brute, n);
		}
		/* pick a random allowed token; prefer EOS half of the time when allowed */
		int32_t pick = -1;
		if ((mask[0] >> 2 & 1) && (rnd() & 1))
			pick = 2;
		for (int tries = 0; pick < 0 && tries < 100000; tries++) {
			int32_t t = (int32_t)(rnd() % N_TOKENS);
			if (mask[t >> 6] >> (t & 63) & 1)
				pick = t;
		}
		assert_true(pick >= 0);
		assert_int_equal(aw_grammar_accept(m, pick), 0);
		if (pick == 2)
			break;
		size_t pl;
		const char *p = aw_tok_piece(tok, pick, &pl);
		if (len + pl < 4095) {
			memcpy(out + len, p, pl);
			len += pl;
		}
	}
	int fin = aw_grammar_done(m);
	aw_grammar_matcher_free(m);
	if (!fin) {
		free(out);
		return NULL;
	}
	return out;
}

static char *walk(struct aw_grammar *g, int max, int check)
{
	return walk_from(g, NULL, max, check);
}

static struct aw_json *parse_ok(const char *s)
{
	struct aw_json *j = NULL;
	struct aw_err err;
	if (aw_json_parse(s, strlen(s), &j, &err) < 0) {
		/* maps may repeat a key (documented): JSON allows it, this reader not */
		if (strstr(err.msg, "duplicate key"))
			return NULL;
		fprintf(stderr, "not JSON: %s (%s)\n", s, err.msg);
		fail();
	}
	return j;
}

static void test_refusals(void **state)
{
	(void)state;
	refuse("{\"type\": \"object\", \"not\": {}}", ENOTSUP, "'not'");
	refuse("{\"properties\": {\"a\": {\"if\": {}}}}", ENOTSUP, "/properties/a");
	refuse("{\"properties\": {\"ab\": {}}, \"patternProperties\": {\"^a\": {}}}", ENOTSUP,
	       "patternProperties");
	refuse("{\"additionalProperties\": {}, \"patternProperties\": {\"^a\": {}}}", ENOTSUP,
	       "patternProperties");
	refuse("{\"$ref\": \"http://example.com/s.json\"}", ENOTSUP, "$ref");
	refuse("{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 3}", EINVAL, NULL);
	refuse("{\"type\": \"string\", \"minLength\": 5, \"maxLength\": 3}", EINVAL, NULL);
	refuse("{\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"string\", \"maxLength\": 3}]}",
	       ENOTSUP, "oneOf");
	refuse("{\"type\": \"string\", \"pattern\": \"(a|aa){1000}(b|bb){1000}\"}", E2BIG, NULL);
	refuse("{\"type\": \"string\", \"pattern\": \"(a|b)*a(a|b){12}\"}", E2BIG, NULL);
	refuse("{\"type\": \"string\", \"pattern\": \"a\\\\1\"}", ENOTSUP, "pattern");
	refuse("{\"type\": \"string\", \"pattern\": \"(?=a)\"}", ENOTSUP, "lookaround");
	refuse("{\"type\": \"string\", \"pattern\": \"x(a|^b)\"}", ENOTSUP, "anchor");
	refuse("{\"type\": \"string\", \"pattern\": \"(^a)*\"}", ENOTSUP, "anchor");
	refuse("{\"type\": \"string\", \"pattern\": \"(a$|b)c\"}", ENOTSUP, "anchor");
	refuse("{\"type\": \"object\", \"properties\": ", EBADMSG, NULL);
	refuse("[1, 2]", ENOTSUP, NULL);
	refuse("{\"type\": \"frobnicate\"}", ENOTSUP, "frobnicate");
	refuse("false", EINVAL, NULL);
	/* a required member whose schema includes itself through allOf: no finite value */
	refuse("{\"definitions\": {\"F\": {\"properties\": {\"c\": {\"allOf\": [{\"$ref\": "
	       "\"#/definitions/F\"}]}}, \"required\": [\"c\"]}}, \"$ref\": \"#/definitions/F\"}",
	       E2BIG, "nested");

	/* 1000 levels of nesting: the JSON reader's depth limit */
	static char deep[1000 * 32 + 64], wide[10000 * 40 + 64];
	size_t n = 0;
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"properties\": {\"a\": ");
	n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{}");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}}");
	refuse(deep, EBADMSG, NULL);

	/* 10 000 properties */
	n = (size_t)snprintf(wide, sizeof(wide), "{\"type\": \"object\", \"properties\": {");
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(wide + n, sizeof(wide) - n,
				      "%s\"p%d\": {\"type\": \"integer\"}", i ? ", " : "", i);
	snprintf(wide + n, sizeof(wide) - n, "}}");
	refuse(wide, E2BIG, "properties");
}

static const char *const schemas[] = {
	"{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": "
	"5},"
	" \"age\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 120}},"
	" \"required\": [\"name\", \"age\"], \"additionalProperties\": false}",
	"{\"type\": \"array\", \"items\": {\"enum\": [\"abc\", \"ab\", 12, true, null]},"
	" \"minItems\": 1, \"maxItems\": 4}",
	"{\"anyOf\": [{\"type\": \"string\", \"pattern\": \"^[a-c]{2,4}$\"}, {\"type\": \"number\","
	" \"minimum\": -5, \"maximum\": 5}]}",
	"{\"type\": \"object\", \"additionalProperties\": {\"type\": \"boolean\"}}",
	"{\"definitions\": {\"n\": {\"type\": \"object\", \"properties\": {\"v\": {\"type\": "
	"\"integer\"}, \"next\": {\"$ref\": \"#/definitions/n\"}}, \"required\": [\"v\"]}},"
	" \"$ref\": \"#/definitions/n\"}",
	"{\"type\": \"string\", \"format\": \"date-time\"}",
	"{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 6}",
	"{\"const\": {\"a\": [1, \"x\"]}}",
	"{}",
	"{\"type\": [\"string\", \"null\"], \"format\": \"uuid\"}",
	"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\", "
	"\"exclusiveMinimum\": 0,"
	" \"maximum\": 1.5}}, \"required\": [\"a\"]}",
	"{\"type\": \"array\", \"items\": [{\"type\": \"string\"}, {\"type\": \"integer\"}],"
	" \"minItems\": 2}",
	"{\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}, {\"const\": true}]}",
	"{\"properties\": {\"x\": {\"type\": \"string\", \"format\": \"topic\"}}, "
	"\"patternProperties\": {\"^z\": {}}, \"required\": [\"x\"]}",
	"{\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"string\"}}, \"oneOf\": "
	"[{\"properties\": {\"k\": {\"enum\": [\"a\"]}}, \"required\": [\"k\"]}, "
	"{\"properties\": {\"k\": {\"enum\": [\"b\"]}, \"n\": {\"type\": \"integer\"}}, "
	"\"required\": [\"n\"]}]}",
	"{\"allOf\": [{\"properties\": {\"a\": {\"type\": \"integer\"}}}, {\"required\": "
	"[\"a\"]}]}",
	"{\"type\": \"string\", \"pattern\": \"^ab$|^(c|^d)[^x]?$\"}",
	/* permissive patterns (the symbol-table cover of pattern strings), in
	 * several stacks at once (anyOf alternatives in the same DFA state) */
	"{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"object\", \"properties\": "
	"{\"path\": {\"type\": \"string\", \"pattern\": \"^(/[^/~]*(~[01][^/~]*)*)*$\"}, "
	"\"op\": {\"const\": \"add\"}}, \"required\": [\"path\", \"op\"]}, {\"type\": "
	"\"object\", \"properties\": {\"path\": {\"type\": \"string\", \"pattern\": "
	"\"^(/[^/~]*(~[01][^/~]*)*)*$\"}, \"op\": {\"const\": \"remove\"}}, \"required\": "
	"[\"path\", \"op\"]}]}, \"maxItems\": 3}",
	"{\"type\": \"string\", \"pattern\": \"(.+/)?.+:.+\"}",
	"{\"type\": \"string\", \"pattern\": \"^[^a]*$\", \"maxLength\": 12}",
	"{\"type\": \"string\", \"pattern\": \"^[a-z/]+(:[0-9]{2,3})?$\"}",
	/* free strings in several stacks: same bounds (shared tables), then
	 * different ones (the general walk) */
	"{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\"}, "
	"\"a\": {\"type\": \"integer\"}}, \"required\": [\"d\", \"a\"]}, {\"type\": \"object\", "
	"\"properties\": {\"d\": {\"type\": \"string\"}, \"b\": {\"type\": \"boolean\"}}, "
	"\"required\": [\"d\", \"b\"]}]}",
	"{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\"}, "
	"\"a\": {\"type\": \"integer\"}}, \"required\": [\"d\", \"a\"]}, {\"type\": \"object\", "
	"\"properties\": {\"d\": {\"type\": \"string\", \"maxLength\": 5}, \"b\": {\"type\": "
	"\"boolean\"}}, \"required\": [\"d\", \"b\"]}]}",
	/* strings in several stacks in different states: each group on its
	 * own fast path, the masks united */
	"{\"anyOf\": [{\"type\": \"string\", \"pattern\": \"^[a-z/]+$\"}, {\"type\": \"string\", "
	"\"format\": \"date\"}, {\"type\": \"string\", \"maxLength\": 3}, {\"type\": \"string\", "
	"\"pattern\": \"^a.*:\"}, {\"type\": \"integer\"}]}",
};

static void test_masks_match_brute_force(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
		struct aw_grammar *g = compile(schemas[i]);
		int ended = 0;
		for (int w = 0; w < 12; w++) {
			char *s = walk(g, 150, 1);
			if (!s)
				continue;
			ended++;
			aw_json_free(parse_ok(s));
			free(s);
		}
		if (ended < 12)
			fprintf(stderr, "schema %zu: %d of 12 walks ended\n", i, ended);
		assert_int_equal(ended, 12); /* finishing makes every walk end */
		aw_grammar_free(g);
	}
}

static void test_values_meet_schema(void **state)
{
	(void)state;
	struct aw_grammar *g = compile(schemas[0]);
	for (int w = 0; w < 200; w++) {
		char *s = walk(g, 200, 0);
		if (!s)
			continue;
		struct aw_json *j = parse_ok(s);
		if (!j) {
			fail_msg("no map here: %s", s);
			continue;
		}
		const struct aw_json *name = aw_json_get(j, "name"), *age = aw_json_get(j, "age");
		assert_non_null(name);
		assert_non_null(age);
		assert_int_equal(name->type, AW_JSON_STRING);
		assert_int_equal(age->type, AW_JSON_NUMBER);
		long a = strtol(age->str, NULL, 10);
		assert_true(a >= 0 && a <= 120);
		assert_int_equal(aw_json_get(j, "name") != NULL, 1);
		aw_json_free(j);
		free(s);
	}
	aw_grammar_free(g);
	g = compile("{\"type\": \"string\", \"format\": \"date\"}");
	for (int w = 0; w < 50; w++) {
		char *s = walk(g, 100, 0);
		if (!s) {
			fail_msg("a date walk did not end");
			continue;
		}
		assert_int_equal(strlen(s), 12);
		assert_true(s[5] == '-' && s[8] == '-');
		free(s);
	}
	aw_grammar_free(g);
}

static void test_rollback_and_forced(void **state)
{
	(void)state;
	struct aw_grammar *g =
		compile("{\"type\": \"object\", \"properties\": {\"name\": {\"const\": "
			"\"abc\"}, \"n\": {\"type\": \"integer\"}}, \"required\": "
			"[\"name\", \"n\"]}");
	struct aw_grammar_matcher *m;
	uint64_t a[(N_TOKENS + 63) / 64], b[(N_TOKENS + 63) / 64];
	char fb[64];
	size_t nb;
	int32_t ids[64];
	size_t n;
	assert_int_equal(aw_grammar_matcher_new(g, vocab, &m), 0);
	/* everything up to the integer is forced */
	assert_int_equal(aw_grammar_forced_bytes(m, fb, sizeof(fb), &nb), 0);
	assert_int_equal(nb, strlen("{\"name\": \"abc\", \"n\": "));
	assert_memory_equal(fb, "{\"name\": \"abc\", \"n\": ", nb);
	assert_int_equal(aw_grammar_forced(m, ids, 64, &n), 0);
	assert_true(n >= 1);
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		size_t pl;
		const char *p = aw_tok_piece(tok, ids[i], &pl);
		assert_memory_equal(p, fb + at, pl);
		at += pl;
		assert_int_equal(aw_grammar_accept(m, ids[i]), 0);
	}
	assert_true(at < nb); /* the last token is left to the model */
	assert_int_equal(aw_grammar_n_steps(m), n);
	aw_grammar_mask(m, a);
	assert_int_equal(aw_grammar_accept_bytes(m, fb + at, nb - at), 0);
	assert_int_equal(aw_grammar_accept_bytes(m, "12", 2), 0);
	assert_true(aw_grammar_can_end(m) == 0);
	assert_int_equal(aw_grammar_accept_bytes(m, "}", 1), 0);
	assert_true(aw_grammar_can_end(m));
	assert_int_equal(aw_grammar_accept_bytes(m, "x", 1), -EINVAL);
	assert_int_equal(aw_grammar_rollback(m, 3), 0);
	aw_grammar_mask(m, b);
	assert_memory_equal(a, b, sizeof(a));
	assert_int_equal(aw_grammar_rollback(m, 1000), -EINVAL);
	assert_int_equal(aw_grammar_rollback(m, n), 0);
	assert_int_equal(aw_grammar_n_steps(m), 0);
	aw_grammar_matcher_reset(m);
	assert_int_equal(aw_grammar_accept_bytes(m, "{\"n\"", 4), -EINVAL); /* order is fixed */
	aw_grammar_matcher_free(m);
	aw_grammar_free(g);
}

/* Walks from fixed prefixes that leave several stacks inside strings (the
 * fast paths per group of tops in the same string state), checked against
 * brute force at every step. */
static void test_string_stacks(void **state)
{
	static const struct {
		int schema; /* index into schemas[] */
		const char *prefix;
	} cases[] = {
		{17, "[{\"path\": \""},
		{17, "[{\"path\": \"/a~"},
		{21, "{\"d\": \""},
		{21, "{\"d\": \"xy"},
		{22, "{\"d\": \""},
		{22, "{\"d\": \"abcd"},
		{23, "\""},
		{23, "\"a"},
		{23, "\"ab"},
		{23, "\"a/"},
		{23, "\"2"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aw_grammar *g = compile(schemas[cases[i].schema]);
		for (int w = 0; w < 6; w++) {
			char *s = walk_from(g, cases[i].prefix, 150, 1);
			assert_non_null(s); /* finishing makes every walk end */
			aw_json_free(parse_ok(s));
			free(s);
		}
		aw_grammar_free(g);
	}
}

/* The same brute-force check on the real Llama 3 vocabulary (128 256
 * tokens, many multi-byte and non-ASCII ones: the pattern-string symbol
 * tables and the subtrees they skip), from prefixes inside permissive
 * patterns and strings in several stacks. Skipped without the npm data. */
static void test_llama3_vocab(void **state)
{
	static const struct {
		const char *schema, *prefix;
	} cases[] = {
		{"{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"object\", "
		 "\"properties\": "
		 "{\"path\": {\"type\": \"string\", \"pattern\": \"^(/[^/~]*(~[01][^/~]*)*)*$\"}, "
		 "\"op\": {\"const\": \"add\"}}, \"required\": [\"path\", \"op\"]}, {\"type\": "
		 "\"object\", \"properties\": {\"path\": {\"type\": \"string\", \"pattern\": "
		 "\"^(/[^/~]*(~[01][^/~]*)*)*$\"}, \"op\": {\"const\": \"remove\"}}}]}}",
		 "[{\"path\": \"/"},
		{"{\"type\": \"string\", \"pattern\": \"(.+/)?.+:.+\"}", "\""},
		{"{\"type\": \"string\", \"pattern\": \"^[^a]*$\", \"maxLength\": 40}", "\"x"},
		{"{\"anyOf\": [{\"type\": \"string\", \"pattern\": \"^[a-z/]+$\"}, {\"type\": "
		 "\"string\", \"format\": \"date\"}, {\"type\": \"string\"}]}",
		 "\""},
	};
	const char *dir = getenv("AW_TOK_DATA");
	char path[4096];
	struct aw_gguf *gg = NULL;
	struct aw_tok *t = NULL;
	struct aw_grammar_vocab *v = NULL;
	struct aw_err err;
	(void)state;
	snprintf(path, sizeof(path), "%s/llama3.gguf", dir ? dir : ".");
	if (!dir || aw_gguf_open(path, &gg, &err) < 0) {
		AW_SKIP("no Llama 3 vocabulary (tests/data/fetch-npm-data.sh not run)");
	}
	assert_int_equal(aw_tok_new_from_gguf(gg, &t, &err), 0);
	assert_int_equal(aw_grammar_vocab_new(t, &v), 0);
	int32_t nv = aw_grammar_vocab_n(v);
	uint64_t *mask = calloc(((size_t)nv + 63) / 64, sizeof(uint64_t));
	assert_non_null(mask);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aw_grammar *g = compile(cases[i].schema);
		struct aw_grammar_matcher *m;
		assert_int_equal(aw_grammar_matcher_new(g, v, &m), 0);
		assert_int_equal(
			aw_grammar_accept_bytes(m, cases[i].prefix, strlen(cases[i].prefix)), 0);
		for (int step = 0; step < 6; step++) {
			int n = aw_grammar_mask(m, mask), brute = 0;
			assert_true(n > 0);
			for (int32_t x = 0; x < nv; x++) {
				int ok = aw_grammar_accept(m, x) == 0;
				if (ok)
					assert_int_equal(aw_grammar_rollback(m, 1), 0);
				int bit = (int)(mask[x >> 6] >> (x & 63) & 1);
				if (ok != bit)
					fprintf(stderr,
						"case %zu step %d token %d: accept %d mask %d\n", i,
						step, x, ok, bit);
				assert_int_equal(ok, bit);
				brute += ok;
			}
			assert_int_equal(brute, n);
			int k = (int)(rnd() % (uint32_t)n), pick = -1;
			for (int32_t x = 0; x < nv && pick < 0; x++)
				if (mask[x >> 6] >> (x & 63) & 1 && k-- == 0)
					pick = x;
			assert_int_equal(aw_grammar_accept(m, pick), 0);
			if (aw_grammar_done(m))
				break;
		}
		aw_grammar_matcher_free(m);
		aw_grammar_free(g);
	}
	free(mask);
	aw_grammar_vocab_free(v);
	aw_tok_free(t);
	aw_gguf_close(gg);
}

static void test_any_grammar_and_sampler(void **state)
{
	(void)state;
	struct aw_grammar *g;
	struct aw_grammar_matcher *m;
	struct aw_sample_params p;
	struct aw_sampler *s1, *s2;
	struct aw_sample_hook h;
	float logits[N_TOKENS];
	uint64_t mask[(N_TOKENS + 63) / 64];

	assert_int_equal(aw_grammar_new_any(&g), 0);
	assert_int_equal(aw_grammar_matcher_new(g, vocab, &m), 0);
	assert_int_equal(aw_grammar_mask(m, mask), (int)N_TOKENS);
	aw_sample_params_default(&p);
	assert_int_equal(aw_sample_new(&p, N_TOKENS, &s1), 0);
	assert_int_equal(aw_sample_new(&p, N_TOKENS, &s2), 0);
	aw_grammar_sample_hook(m, &h);
	aw_sample_set_hook(s2, &h);
	for (int step = 0; step < 50; step++) {
		for (size_t i = 0; i < N_TOKENS; i++)
			logits[i] = (float)(rnd() % 1000) / 100.0f;
		int32_t a = aw_sample_pick(s1, logits), b = aw_sample_pick(s2, logits);
		assert_int_equal(a, b);
		const char *t;
		size_t tl;
		aw_sample_accept(s1, a, "", 0, &t, &tl);
		aw_sample_accept(s2, b, "", 0, &t, &tl);
	}
	assert_int_equal(aw_grammar_n_steps(m), 50);
	aw_sample_free(s1);
	aw_sample_free(s2);
	aw_grammar_matcher_free(m);
	aw_grammar_free(g);

	/* a schema grammar through the hook: greedy picks only allowed tokens */
	g = compile("{\"enum\": [\"ab\", \"abc\"]}");
	assert_int_equal(aw_grammar_matcher_new(g, vocab, &m), 0);
	assert_int_equal(aw_sample_new(&p, N_TOKENS, &s1), 0);
	aw_grammar_sample_hook(m, &h);
	aw_sample_set_hook(s1, &h);
	char out[64];
	size_t len = 0;
	for (int step = 0; step < 20 && !aw_grammar_done(m); step++) {
		for (size_t i = 0; i < N_TOKENS; i++)
			logits[i] = (float)(rnd() % 1000);
		int32_t t = aw_sample_pick(s1, logits);
		assert_true(t >= 0);
		const char *x;
		size_t xl, pl;
		const char *piece = aw_tok_piece(tok, t, &pl);
		aw_sample_accept(s1, t, piece, pl, &x, &xl);
		if (t == 2)
			break;
		memcpy(out + len, piece, pl);
		len += pl;
	}
	out[len] = '\0';
	assert_true(!strcmp(out, "\"ab\"") || !strcmp(out, "\"abc\""));
	aw_sample_free(s1);
	aw_grammar_matcher_free(m);
	aw_grammar_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_masks_match_brute_force),
		cmocka_unit_test(test_values_meet_schema),
		cmocka_unit_test(test_rollback_and_forced),
		cmocka_unit_test(test_string_stacks),
		cmocka_unit_test(test_llama3_vocab),
		cmocka_unit_test(test_any_grammar_and_sampler),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
