/* test-tok — the tokenizers on small vocabularies built in the test, where
 * every expected id can be worked out by hand: merge order by score and by
 * rank, leftmost tie-break, byte fallback, the leading-space rule, special
 * tokens only on request (user-defined ones always), the pre-tokenizer
 * split, invalid UTF-8 and NUL bytes, long inputs, the streaming decoder,
 * inconsistent vocabularies and the GGUF path. Real vocabularies against
 * llama.cpp are in test-tok-golden.
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

/* ---- a SentencePiece vocabulary ------------------------------------------ */

#define SPM_N 270
static char spm_text[SPM_N][16];
static const char *spm_tok[SPM_N];
static float spm_score[SPM_N];
static int32_t spm_type[SPM_N];

enum { S_SPACE = 259, S_A, S_B, S_C, S_SA, S_AB, S_SAB, S_BC, S_AA, S_USER };

static void spm_vocab(struct aw_tok_vocab *v)
{
	static const struct {
		const char *s;
		float score;
	} pieces[] = {
		{"\xe2\x96\x81", -10},
		{"a", -20},
		{"b", -21},
		{"c", -22},
		{"\xe2\x96\x81\x61", -1},
		{"ab", -2},
		{"\xe2\x96\x81\x61\x62", -0.5f},
		{"bc", -3},
		{"aa", -4},
		{"<user>", 0},
	};
	snprintf(spm_text[0], 16, "<unk>");
	snprintf(spm_text[1], 16, "<s>");
	snprintf(spm_text[2], 16, "</s>");
	spm_type[0] = AW_TOK_TYPE_UNKNOWN;
	spm_type[1] = spm_type[2] = AW_TOK_TYPE_CONTROL;
	for (int b = 0; b < 256; b++) {
		snprintf(spm_text[3 + b], 16, "<0x%02X>", b);
		spm_type[3 + b] = AW_TOK_TYPE_BYTE;
	}
	for (int i = 0; i < 10; i++) {
		snprintf(spm_text[S_SPACE + i], 16, "%s", pieces[i].s);
		spm_score[S_SPACE + i] = pieces[i].score;
		spm_type[S_SPACE + i] = AW_TOK_TYPE_NORMAL;
	}
	spm_type[S_USER] = AW_TOK_TYPE_USER_DEFINED;
	for (int i = 0; i < SPM_N; i++)
		spm_tok[i] = spm_text[i];
	aw_tok_vocab_init(v);
	v->model = "llama";
	v->n_tokens = S_USER + 1;
	v->tokens = spm_tok;
	v->n_scores = v->n_types = S_USER + 1;
	v->scores = spm_score;
	v->types = spm_type;
}

static struct aw_tok *spm_new(int add_space_prefix)
{
	struct aw_tok_vocab v;
	struct aw_tok *t;
	struct aw_err err;

	spm_vocab(&v);
	v.add_space_prefix = add_space_prefix;
	assert_int_equal(aw_tok_new(&v, &t, &err), 0);
	return t;
}

static void expect(struct aw_tok *t, const char *text, size_t len, unsigned flags,
		   const int32_t *want, size_t nw)
{
	int32_t got[256];
	size_t n;

	assert_int_equal(aw_tok_encode(t, text, len, flags, got, 256, &n), 0);
	if (n != nw || memcmp(got, want, n * sizeof(int32_t)) != 0) {
		fprintf(stderr, "# '%.*s': got", (int)len, text);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %d", got[i]);
		fprintf(stderr, "\n");
		fail_msg("encode('%.*s') differs", (int)len, text);
	}
}

#define EXPECT(t, s, flags, ...)                                                                   \
	do {                                                                                       \
		const int32_t w_[] = {__VA_ARGS__};                                                \
		expect(t, s, sizeof(s) - 1, flags, w_, sizeof(w_) / sizeof(w_[0]));                \
	} while (0)

static void spm_merges(void **state)
{
	(void)state;
	struct aw_tok *t = spm_new(-1);

	/* "▁ab": ▁a (-1) beats ab (-2), then ▁a+b = ▁ab (-0.5) */
	EXPECT(t, "ab", 0, S_SAB);
	EXPECT(t, "ab", AW_TOK_ADD_BOS, 1, S_SAB);
	EXPECT(t, "ab", AW_TOK_ADD_SPECIAL, 1, S_SAB); /* add_bos defaults on, add_eos off */
	EXPECT(t, "ab", AW_TOK_ADD_BOS | AW_TOK_ADD_EOS, 1, S_SAB, 2);
	/* "▁bc": no ▁b, so bc merges and ▁ stays alone */
	EXPECT(t, "bc", 0, S_SPACE, S_BC);
	/* spaces become ▁ everywhere */
	EXPECT(t, "a b", 0, S_SA, S_SPACE, S_B);
	/* byte fallback for what no piece covers: x, and é as two bytes */
	EXPECT(t, "x", 0, S_SPACE, 3 + 'x');
	EXPECT(t, "\xc3\xa9", 0, S_SPACE, 3 + 0xc3, 3 + 0xa9);
	/* invalid UTF-8 and NUL are bytes too */
	EXPECT(t, "\xff\x00", 0, S_SPACE, 3 + 0xff, 3 + 0);
	/* empty input: nothing, or just BOS */
	int32_t out[4];
	size_t n = 99;
	assert_int_equal(aw_tok_encode(t, "", 0, 0, out, 4, &n), 0);
	assert_int_equal(n, 0);
	EXPECT(t, "", AW_TOK_ADD_BOS, 1);
	aw_tok_free(t);
}

static void spm_tie_and_prefix(void **state)
{
	(void)state;
	struct aw_tok *t = spm_new(0);

	/* equal scores merge leftmost first: aa|aa, not a|aa|a */
	EXPECT(t, "aaaa", 0, S_AA, S_AA);
	EXPECT(t, "aaa", 0, S_AA, S_A);
	/* no space prefix when add_space_prefix is off */
	EXPECT(t, "ab", 0, S_AB);
	assert_int_equal(aw_tok_add_space_prefix(t), 0);
	aw_tok_free(t);
}

static void spm_special(void **state)
{
	(void)state;
	struct aw_tok *t = spm_new(-1);

	/* control text is plain text unless asked: '<' '/' 's' '>' as bytes */
	EXPECT(t, "</s>", 0, S_SPACE, 3 + '<', 3 + '/', 3 + 's', 3 + '>');
	/* asked: the token, and the text after it gets its own leading space */
	EXPECT(t, "a</s>b", AW_TOK_PARSE_SPECIAL, S_SA, 2, S_SPACE, S_B);
	EXPECT(t, "</s></s>", AW_TOK_PARSE_SPECIAL, 2, 2);
	/* <unk> is special too */
	EXPECT(t, "<unk>", AW_TOK_PARSE_SPECIAL, 0);
	/* user-defined tokens are always cut out */
	EXPECT(t, "a<user>a", 0, S_SA, S_USER, S_SA);
	aw_tok_free(t);
}

static void spm_decode(void **state)
{
	(void)state;
	struct aw_tok *t = spm_new(-1);
	const char *texts[] = {"ab", " ab", "a b c", "x\xc3\xa9 ", "  "};
	char buf[256];
	size_t n;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int32_t ids[64];
		size_t ni;
		assert_int_equal(
			aw_tok_encode(t, texts[i], strlen(texts[i]), AW_TOK_ADD_BOS, ids, 64, &ni),
			0);
		assert_int_equal(aw_tok_decode(t, ids, ni, 0, buf, sizeof(buf), &n), 0);
		assert_int_equal(n, strlen(texts[i]));
		assert_memory_equal(buf, texts[i], n);
	}
	/* the raw pieces keep the space; control tokens print only on request */
	int32_t ids[] = {1, S_SAB, 2};
	assert_int_equal(aw_tok_decode(t, ids, 3, AW_TOK_KEEP_SPACE, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, " ab", 3);
	assert_int_equal(aw_tok_decode(t, ids, 3, AW_TOK_RENDER_SPECIAL, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "<s>ab</s>", 9);
	/* too small: -ENOSPC with the size needed */
	assert_int_equal(aw_tok_decode(t, ids, 3, 0, buf, 1, &n), -ENOSPC);
	assert_int_equal(n, 2);
	/* an id out of range */
	int32_t bad = SPM_N + 5;
	assert_int_equal(aw_tok_decode(t, &bad, 1, 0, buf, sizeof(buf), &n), -EINVAL);
	size_t pl;
	assert_null(aw_tok_piece(t, -1, &pl));
	assert_non_null(aw_tok_piece(t, 3 + 0x41, &pl));
	assert_int_equal(pl, 1);
	assert_int_equal(aw_tok_bos(t), 1);
	assert_int_equal(aw_tok_eos(t), 2);
	assert_int_equal(aw_tok_unk(t), 0);
	assert_true(aw_tok_is_eog(t, 2));
	assert_false(aw_tok_is_eog(t, 1));
	assert_int_equal(aw_tok_token_type(t, 3), AW_TOK_TYPE_BYTE);
	aw_tok_free(t);
}

/* ---- a byte-level BPE vocabulary -------------------------------------------- */

static char bpe_text[300][24];
static const char *bpe_tok[300];
static int32_t bpe_type[300];
static uint32_t bpe_n;

static uint32_t gpt2_cp(unsigned b)
{
	unsigned n = 0;
	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
		return b;
	for (unsigned x = 0; x < b; x++)
		if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae))
			n++;
	return 256 + n;
}

static int32_t add_tok(const char *s, int32_t type)
{
	snprintf(bpe_text[bpe_n], 24, "%s", s);
	bpe_tok[bpe_n] = bpe_text[bpe_n];
	bpe_type[bpe_n] = type;
	return (int32_t)bpe_n++;
}

/* ids: byte b -> b; then the merges' results in order */
static const char *const merges_ok[] = {
	"h e",		"l l",		 "he ll",	   "hell o", "\xc4\xa0 w", "o r",
	"\xc4\xa0w or", "\xc4\xa0wor l", "\xc4\xa0worl d", "e l",    "x y",	   "xy z",
};
enum {
	B_HE = 256,
	B_LL,
	B_HELL,
	B_HELLO,
	B_GW,
	B_OR,
	B_GWOR,
	B_GWORL,
	B_GWORLD,
	B_EL,
	B_XY,
	B_XYZ,
	B_END,
	B_TOOL,
	B_XZ
};

static void bpe_vocab(struct aw_tok_vocab *v, const char *pre)
{
	bpe_n = 0;
	for (unsigned b = 0; b < 256; b++) {
		uint32_t cp = gpt2_cp(b);
		char s[4];
		if (cp < 0x80) {
			s[0] = (char)cp;
			s[1] = 0;
		} else {
			s[0] = (char)(0xc0 | (cp >> 6));
			s[1] = (char)(0x80 | (cp & 0x3f));
			s[2] = 0;
		}
		add_tok(s, AW_TOK_TYPE_NORMAL);
	}
	const char *res[] = {"he", "ll",	  "hell",	  "hello",	   "\xc4\xa0w",
			     "or", "\xc4\xa0wor", "\xc4\xa0worl", "\xc4\xa0world", "el",
			     "xy", "xyz"};
	for (int i = 0; i < 12; i++)
		add_tok(res[i], AW_TOK_TYPE_NORMAL);
	add_tok("<|end|>", AW_TOK_TYPE_CONTROL);
	add_tok("<tool>", AW_TOK_TYPE_USER_DEFINED);
	add_tok("xz", AW_TOK_TYPE_NORMAL); /* a token no merge makes */
	aw_tok_vocab_init(v);
	v->model = "gpt2";
	v->pre = pre;
	v->n_tokens = bpe_n;
	v->tokens = bpe_tok;
	v->n_types = bpe_n;
	v->types = bpe_type;
	v->n_merges = sizeof(merges_ok) / sizeof(merges_ok[0]);
	v->merges = merges_ok;
	v->bos = AW_TOK_ID_NONE;
	v->eos = B_END;
}

static struct aw_tok *bpe_new(const char *pre)
{
	struct aw_tok_vocab v;
	struct aw_tok *t;
	struct aw_err err;

	bpe_vocab(&v, pre);
	int r = aw_tok_new(&v, &t, &err);
	if (r)
		fail_msg("%s", err.msg);
	return t;
}

static void bpe_merges(void **state)
{
	(void)state;
	struct aw_tok *t = bpe_new("gpt-2");

	EXPECT(t, "hello world", 0, B_HELLO, B_GWORLD);
	/* two spaces: "\s+(?!\S)" leaves one space on its own */
	EXPECT(t, "hello  world", 0, B_HELLO, ' ', B_GWORLD);
	/* rank decides: "l l" (rank 1) before "e l" (rank 9) */
	EXPECT(t, "ell", 0, 'e', B_LL);
	EXPECT(t, "el", 0, B_EL);
	/* "xz" is a token but no merge makes it: bytes; xyz merges x y then xy z */
	EXPECT(t, "xz", 0, 'x', 'z');
	EXPECT(t, "xyz", 0, B_XYZ);
	/* letters, digits and punctuation are separate words */
	EXPECT(t, "he1!", 0, B_HE, '1', '!');
	/* invalid UTF-8 becomes U+FFFD (EF BF BD), a NUL is its byte */
	EXPECT(t, "\xff", 0, 0xef, 0xbf, 0xbd);
	EXPECT(t, "a\0b", 0, 'a', 0, 'b');
	EXPECT(t, "\xc3(", 0, 0xef, 0xbf, 0xbd, '(');
	/* BOS: this vocabulary has none, so nothing is added */
	EXPECT(t, "he", AW_TOK_ADD_BOS | AW_TOK_ADD_EOS, B_HE, B_END);
	aw_tok_free(t);
}

static void bpe_ignore_merges(void **state)
{
	(void)state;
	struct aw_tok *t = bpe_new("llama-bpe");

	/* llama-bpe takes a whole word that is a token as it is */
	EXPECT(t, "xz", 0, B_XZ);
	EXPECT(t, "hello world", 0, B_HELLO, B_GWORLD);
	/* digits in groups of up to three */
	EXPECT(t, "12345", 0, '1', '2', '3', '4', '5');
	assert_int_equal(aw_tok_add_bos(t), 1); /* llama-bpe's default */
	assert_string_equal(aw_tok_pre(t), "llama-bpe");
	aw_tok_free(t);
	/* the other pre-tokenizers build too */
	const char *pres[] = {"qwen2", "smollm", "default", "llama3", NULL};
	for (int i = 0; pres[i]; i++) {
		struct aw_tok *u = bpe_new(pres[i]);
		EXPECT(u, "hello world", 0, B_HELLO, B_GWORLD);
		aw_tok_free(u);
	}
	t = bpe_new(NULL);
	assert_string_equal(aw_tok_pre(t), "default");
	aw_tok_free(t);
}

static void bpe_special(void **state)
{
	(void)state;
	struct aw_tok *t = bpe_new("gpt-2");

	EXPECT(t, "he<|end|>", AW_TOK_PARSE_SPECIAL, B_HE, B_END);
	EXPECT(t, "<|end|><|end|>", AW_TOK_PARSE_SPECIAL, B_END, B_END);
	/* not asked: the text is text */
	int32_t ids[64];
	size_t n;
	assert_int_equal(aw_tok_encode(t, "he<|end|>", 9, 0, ids, 64, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(ids[i], B_END);
	/* user-defined: always */
	EXPECT(t, "he<tool>he", 0, B_HE, B_TOOL, B_HE);
	/* decode of the control token only with RENDER_SPECIAL */
	char buf[64];
	int32_t d[] = {B_HE, B_END};
	assert_int_equal(aw_tok_decode(t, d, 2, 0, buf, 64, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(aw_tok_decode(t, d, 2, AW_TOK_RENDER_SPECIAL, buf, 64, &n), 0);
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "he<|end|>", 9);
	aw_tok_free(t);
}

static void bpe_long(void **state)
{
	(void)state;
	struct aw_tok *t = bpe_new("llama-bpe");
	size_t big = 1 << 20;
	char *s = malloc(big);
	int32_t *ids;
	size_t n;

	/* 1 MB of one letter: one word, a million symbols, no merge applies */
	memset(s, 'a', big);
	assert_int_equal(aw_tok_encode_alloc(t, s, big, 0, &ids, &n), 0);
	assert_int_equal(n, big);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], 'a');
	free(ids);
	/* a 10 000-character word that merges all the way: "ll" * 5000 */
	memset(s, 'l', 10000);
	assert_int_equal(aw_tok_encode_alloc(t, s, 10000, 0, &ids, &n), 0);
	assert_int_equal(n, 5000);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], B_LL);
	free(ids);
	/* 1 MB of spaces, of newlines, of NULs, of invalid bytes */
	const char fills[] = {' ', '\n', '\0', (char)0xff};
	for (size_t k = 0; k < sizeof(fills); k++) {
		memset(s, fills[k], big);
		assert_int_equal(aw_tok_encode_alloc(t, s, big, 0, &ids, &n), 0);
		assert_true(n >= big);
		free(ids);
	}
	/* -ENOSPC reports the size needed */
	int32_t few[2];
	assert_int_equal(aw_tok_encode(t, "hello world hello", 17, 0, few, 2, &n), -ENOSPC);
	assert_int_equal(n, 4); /* hello, Ġworld, Ġ, hello */
	free(s);
	aw_tok_free(t);

	/* the same for SentencePiece */
	t = spm_new(-1);
	s = malloc(big);
	memset(s, 'b', big);
	assert_int_equal(aw_tok_encode_alloc(t, s, big, 0, &ids, &n), 0);
	assert_int_equal(n, big + 1); /* ▁ then b b b ... */
	free(ids);
	memset(s, 'a', 10000);
	assert_int_equal(aw_tok_encode_alloc(t, s, 10000, 0, &ids, &n), 0);
	assert_int_equal(n, 5001); /* ▁a, 4999 x aa, a */
	assert_int_equal(ids[0], S_SA);
	assert_int_equal(ids[n - 1], S_A);
	free(ids);
	free(s);
	aw_tok_free(t);
}

/* ---- the streaming decoder ---------------------------------------------- */

static size_t push(struct aw_tok_stream *st, int32_t id, char *out)
{
	size_t n;
	assert_int_equal(aw_tok_stream_push(st, id, out, 256, &n), 0);
	return n;
}

static void stream(void **state)
{
	(void)state;
	struct aw_tok *t = bpe_new("gpt-2");
	struct aw_tok_stream st;
	char out[256];

	assert_true(aw_tok_stream_max(t) <= sizeof(out));
	aw_tok_stream_init(&st, t, 0);
	/* é = C3 A9 split over two tokens: nothing, then é */
	assert_int_equal(push(&st, 0xc3, out), 0);
	assert_int_equal(push(&st, 0xa9, out), 2);
	assert_memory_equal(out, "\xc3\xa9", 2);
	/* a 4-byte character over four tokens */
	assert_int_equal(push(&st, 0xf0, out), 0);
	assert_int_equal(push(&st, 0x9f, out), 0);
	assert_int_equal(push(&st, 0xa6, out), 0);
	assert_int_equal(push(&st, 0x99, out), 4);
	assert_memory_equal(out, "\xf0\x9f\xa6\x99", 4);
	/* a byte that can never start a character: U+FFFD */
	assert_int_equal(push(&st, 0xff, out), 3);
	assert_memory_equal(out, "\xef\xbf\xbd", 3);
	/* a broken sequence: U+FFFD then the byte that broke it */
	assert_int_equal(push(&st, 0xe2, out), 0);
	assert_int_equal(push(&st, 'a', out), 4);
	assert_memory_equal(out,
			    "\xef\xbf\xbd"
			    "a",
			    4);
	/* surrogates and overlongs are not let through */
	assert_int_equal(push(&st, 0xed, out), 0);
	assert_int_equal(push(&st, 0xa0, out), 6);
	assert_memory_equal(out, "\xef\xbf\xbd\xef\xbf\xbd", 6);
	assert_int_equal(push(&st, 0xc0, out), 3);
	/* pending at the end: flushed as U+FFFD */
	assert_int_equal(push(&st, 0xe2, out), 0);
	assert_int_equal(push(&st, 0x82, out), 0);
	size_t n;
	assert_int_equal(aw_tok_stream_flush(&st, out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\xef\xbf\xbd", 3);
	/* errors leave the stream as it was */
	assert_int_equal(aw_tok_stream_push(&st, -1, out, sizeof(out), &n), -EINVAL);
	assert_int_equal(aw_tok_stream_push(&st, 'a', out, 1, &n), -ENOSPC);
	/* control tokens: nothing unless RENDER_SPECIAL */
	assert_int_equal(push(&st, B_END, out), 0);
	aw_tok_stream_init(&st, t, AW_TOK_RENDER_SPECIAL);
	assert_int_equal(push(&st, B_END, out), 7);
	aw_tok_free(t);

	/* SentencePiece: the first piece loses its space, also after BOS */
	t = spm_new(-1);
	aw_tok_stream_init(&st, t, 0);
	assert_int_equal(push(&st, 1, out), 0);
	assert_int_equal(push(&st, S_SAB, out), 2);
	assert_memory_equal(out, "ab", 2);
	assert_int_equal(push(&st, S_SAB, out), 3);
	assert_memory_equal(out, " ab", 3);
	assert_int_equal(push(&st, 1, out), 0);
	assert_int_equal(push(&st, S_SA, out), 1);
	aw_tok_stream_init(&st, t, AW_TOK_KEEP_SPACE);
	assert_int_equal(push(&st, S_SA, out), 2);
	/* a byte-fallback character split over byte tokens */
	aw_tok_stream_init(&st, t, 0);
	assert_int_equal(push(&st, 3 + 0xc3, out), 0);
	assert_int_equal(push(&st, 3 + 0xa9, out), 2);
	aw_tok_free(t);
}

/* ---- inconsistent vocabularies -------------------------------------------- */

static void bad_vocab(void **state)
{
	(void)state;
	struct aw_tok_vocab v;
	struct aw_tok *t = NULL;
	struct aw_err err;

	/* count mismatches */
	spm_vocab(&v);
	v.n_scores = v.n_tokens - 1;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "scores"));
	spm_vocab(&v);
	v.n_types = v.n_tokens + 1;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "token_type"));
	/* duplicate token */
	spm_vocab(&v);
	snprintf(spm_text[S_C], 16, "a");
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "duplicate"));
	snprintf(spm_text[S_C], 16, "c");
	/* missing byte token, no <unk> to fall back on */
	spm_vocab(&v);
	snprintf(spm_text[3 + 0x80], 16, "zz");
	v.unk = AW_TOK_ID_NONE;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "<0x80>"));
	/* with <unk> it loads, and the byte maps to it */
	spm_vocab(&v);
	snprintf(spm_text[3 + 0x80], 16, "zz");
	assert_int_equal(aw_tok_new(&v, &t, &err), 0);
	EXPECT(t, "\x80", 0, S_SPACE, 0);
	aw_tok_free(t);
	snprintf(spm_text[3 + 0x80], 16, "<0x80>");
	/* empty token text */
	spm_vocab(&v);
	snprintf(spm_text[S_C], 16, "%s", "");
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	snprintf(spm_text[S_C], 16, "c");
	/* unknown model and pre-tokenizer */
	spm_vocab(&v);
	v.model = "t5";
	assert_int_equal(aw_tok_new(&v, &t, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "t5"));
	bpe_vocab(&v, "no-such-pre");
	assert_int_equal(aw_tok_new(&v, &t, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no-such-pre"));
	/* merges: unknown token, result not a token, not "a b", none at all */
	const char *m1[] = {"h e", "q@ e"};
	bpe_vocab(&v, "gpt-2");
	v.merges = m1;
	v.n_merges = 2;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "q@"));
	const char *m2[] = {"h x"};
	v.merges = m2;
	v.n_merges = 1;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "result"));
	const char *m3[] = {"he"};
	v.merges = m3;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	v.n_merges = 0;
	assert_int_equal(aw_tok_new(&v, &t, &err), -ENOENT);
	/* a missing byte character */
	bpe_vocab(&v, "gpt-2");
	snprintf(bpe_text[0x41], 24, "AA");
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "0x41"));
	snprintf(bpe_text[0x41], 24, "A");
	/* no tokens */
	bpe_vocab(&v, "gpt-2");
	v.n_tokens = 0;
	assert_int_equal(aw_tok_new(&v, &t, &err), -EBADMSG);
	/* special ids out of range fall back to the default (llama.cpp) */
	spm_vocab(&v);
	v.bos = 1000000;
	v.eos = AW_TOK_ID_NONE;
	assert_int_equal(aw_tok_new(&v, &t, &err), 0);
	assert_int_equal(aw_tok_bos(t), 1);
	assert_int_equal(aw_tok_eos(t), AW_TOK_ID_NONE);
	aw_tok_free(t);
	aw_tok_free(NULL);
}

/* ---- from a GGUF image ---------------------------------------------------- */

static int write_vocab(struct aw_gguf_writer *w, const struct aw_tok_vocab *v)
{
	int r = 0;
	r |= aw_gguf_writer_set_str(w, "general.architecture", "llama");
	r |= aw_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model);
	if (v->pre)
		r |= aw_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre);
	r |= aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v->n_tokens, v->tokens, NULL);
	if (v->n_scores)
		r |= aw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32,
					    v->n_scores, v->scores);
	r |= aw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", AW_GGUF_TYPE_INT32, v->n_types,
				    v->types);
	if (v->n_merges)
		r |= aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", v->n_merges, v->merges,
						NULL);
	return r;
}

static int from_image(struct aw_gguf_writer *w, struct aw_tok **t, struct aw_err *err)
{
	void *buf;
	size_t len;
	struct aw_gguf *g;

	assert_int_equal(aw_gguf_writer_write_buf(w, &buf, &len, err), 0);
	assert_int_equal(aw_gguf_parse(buf, len, &g, err), 0);
	int r = aw_tok_new_from_gguf(g, t, err);
	aw_gguf_close(g);
	free(buf);
	return r;
}

static void gguf_path(void **state)
{
	(void)state;
	struct aw_tok_vocab v;
	struct aw_gguf_writer *w;
	struct aw_tok *t;
	struct aw_err err;

	/* SentencePiece with explicit ids and flags */
	spm_vocab(&v);
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(write_vocab(w, &v), 0);
	assert_int_equal(aw_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2), 0);
	assert_int_equal(aw_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false), 0);
	assert_int_equal(from_image(w, &t, &err), 0);
	assert_int_equal(aw_tok_bos(t), 2);
	assert_int_equal(aw_tok_add_bos(t), 0);
	EXPECT(t, "ab", AW_TOK_ADD_SPECIAL, S_SAB);
	aw_tok_free(t);
	/* wrong value types */
	assert_int_equal(aw_gguf_writer_set_str(w, "tokenizer.ggml.scores", "x"), 0);
	assert_int_equal(from_image(w, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "scores"));
	assert_int_equal(aw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32,
						v.n_scores - 3, v.scores),
			 0);
	assert_int_equal(from_image(w, &t, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "scores"));
	aw_gguf_writer_free(w);

	/* byte-level BPE */
	bpe_vocab(&v, "gpt-2");
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(write_vocab(w, &v), 0);
	assert_int_equal(from_image(w, &t, &err), 0);
	EXPECT(t, "hello world", 0, B_HELLO, B_GWORLD);
	assert_int_equal(aw_tok_model(t), AW_TOK_MODEL_BPE);
	assert_int_equal(aw_tok_n_tokens(t), bpe_n);
	aw_tok_free(t);
	/* tokens of the wrong type, then missing merges, then no model */
	assert_int_equal(aw_gguf_writer_set_u32(w, "tokenizer.ggml.tokens", 3), 0);
	assert_int_equal(from_image(w, &t, &err), -EBADMSG);
	aw_gguf_writer_free(w);
	bpe_vocab(&v, "gpt-2");
	v.n_merges = 0;
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(write_vocab(w, &v), 0);
	assert_int_equal(from_image(w, &t, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "merges"));
	aw_gguf_writer_free(w);
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(from_image(w, &t, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "tokenizer.ggml.model"));
	aw_gguf_writer_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spm_merges),  cmocka_unit_test(spm_tie_and_prefix),
		cmocka_unit_test(spm_special), cmocka_unit_test(spm_decode),
		cmocka_unit_test(bpe_merges),  cmocka_unit_test(bpe_ignore_merges),
		cmocka_unit_test(bpe_special), cmocka_unit_test(bpe_long),
		cmocka_unit_test(stream),      cmocka_unit_test(bad_vocab),
		cmocka_unit_test(gguf_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
