/* fuzz-tok.c — libFuzzer target for the tokenizers (inference/tok.c).
 *
 * The first input byte picks what to do with the rest:
 *   0..5   encode the bytes with one of six tokenizers built once from small
 *          vocabularies (SentencePiece; byte-level BPE with the llama-bpe,
 *          qwen2, smollm, gpt-2 and default pre-tokenizers), flags from the
 *          second byte; then decode the ids, check that decoding valid UTF-8
 *          input gives it back (BPE) and stream-decode the ids, checking
 *          that every chunk is valid UTF-8;
 *   6      parse the bytes as a GGUF file and build a tokenizer from its
 *          tokenizer.ggml.* keys (and encode a short text with it).
 * ASan/UBSan turn any over-read or overflow into a crash; the checks abort.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok.h"

static struct aw_tok *toks[6];

static char texts[400][24];
static const char *ptrs[400];
static int32_t types[400];
static float scores[400];

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

static void utf8(uint32_t cp, char *s)
{
	if (cp < 0x80) {
		s[0] = (char)cp;
		s[1] = 0;
	} else {
		s[0] = (char)(0xc0 | (cp >> 6));
		s[1] = (char)(0x80 | (cp & 0x3f));
		s[2] = 0;
	}
}

static void build(void)
{
	static const char *const merges[] = {"\xc4\xa0 t",
					     "h e",
					     "i n",
					     "\xc4\xa0t he",
					     "e r",
					     "a n",
					     "o n",
					     "\xc4\xa0 a",
					     "r e",
					     "i s",
					     "\xc4\xa0 s",
					     "o u",
					     "e n",
					     "\xc4\xa0\xc4\xa0 \xc4\xa0\xc4\xa0",
					     "\xc4\xa0 \xc4\xa0",
					     "1 2",
					     "12 3"};
	static const char *const mres[] = {"\xc4\xa0t",
					   "he",
					   "in",
					   "\xc4\xa0the",
					   "er",
					   "an",
					   "on",
					   "\xc4\xa0\x61",
					   "re",
					   "is",
					   "\xc4\xa0s",
					   "ou",
					   "en",
					   "\xc4\xa0\xc4\xa0\xc4\xa0\xc4\xa0",
					   "\xc4\xa0\xc4\xa0",
					   "12",
					   "123"};
	const char *pres[] = {"llama-bpe", "qwen2", "smollm", "gpt-2", "default"};
	struct aw_tok_vocab v;
	struct aw_err err;
	uint32_t n = 0;

	/* byte-level BPE: 256 byte characters, merge results, specials */
	for (unsigned b = 0; b < 256; b++, n++) {
		utf8(gpt2_cp(b), texts[n]);
		types[n] = AW_TOK_TYPE_NORMAL;
	}
	for (size_t i = 0; i < sizeof(mres) / sizeof(mres[0]); i++, n++) {
		snprintf(texts[n], 24, "%s", mres[i]);
		types[n] = AW_TOK_TYPE_NORMAL;
	}
	snprintf(texts[n], 24, "<|end|>");
	types[n++] = AW_TOK_TYPE_CONTROL;
	snprintf(texts[n], 24, "<tool>");
	types[n++] = AW_TOK_TYPE_USER_DEFINED;
	for (uint32_t i = 0; i < n; i++)
		ptrs[i] = texts[i];
	for (int k = 0; k < 5; k++) {
		aw_tok_vocab_init(&v);
		v.model = "gpt2";
		v.pre = pres[k];
		v.n_tokens = n;
		v.tokens = ptrs;
		v.n_types = n;
		v.types = types;
		v.n_merges = sizeof(merges) / sizeof(merges[0]);
		v.merges = merges;
		v.eos = n - 2;
		if (aw_tok_new(&v, &toks[1 + k], &err) < 0) {
			fprintf(stderr, "fuzz-tok: %s\n", err.msg);
			abort();
		}
	}

	/* SentencePiece: <unk> <s> </s>, 256 byte tokens, a few pieces */
	static char stext[300][24];
	static const char *sptr[300];
	static int32_t stype[300];
	const char *pieces[] = {"\xe2\x96\x81",
				"\xe2\x96\x81t",
				"he",
				"\xe2\x96\x81the",
				"in",
				"\xe2\x96\x81\xe2\x96\x81",
				"a",
				"e",
				"t",
				"h",
				"\xc3\xa9",
				"<user>"};
	n = 0;
	snprintf(stext[n], 24, "<unk>");
	stype[n++] = AW_TOK_TYPE_UNKNOWN;
	snprintf(stext[n], 24, "<s>");
	stype[n++] = AW_TOK_TYPE_CONTROL;
	snprintf(stext[n], 24, "</s>");
	stype[n++] = AW_TOK_TYPE_CONTROL;
	for (int b = 0; b < 256; b++, n++) {
		snprintf(stext[n], 24, "<0x%02X>", b);
		stype[n] = AW_TOK_TYPE_BYTE;
	}
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++, n++) {
		snprintf(stext[n], 24, "%s", pieces[i]);
		stype[n] = i + 1 == sizeof(pieces) / sizeof(pieces[0]) ? AW_TOK_TYPE_USER_DEFINED
								       : AW_TOK_TYPE_NORMAL;
		scores[n] = -(float)i;
	}
	for (uint32_t i = 0; i < n; i++)
		sptr[i] = stext[i];
	aw_tok_vocab_init(&v);
	v.model = "llama";
	v.n_tokens = n;
	v.tokens = sptr;
	v.n_scores = v.n_types = n;
	v.scores = scores;
	v.types = stype;
	if (aw_tok_new(&v, &toks[0], &err) < 0) {
		fprintf(stderr, "fuzz-tok: %s\n", err.msg);
		abort();
	}
}

static int valid_utf8(const unsigned char *u, size_t n)
{
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
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
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

static void encode_decode(const struct aw_tok *t, unsigned flags, const char *s, size_t n)
{
	int32_t *ids;
	size_t ni;

	if (aw_tok_encode_alloc(t, s, n, flags, &ids, &ni) < 0)
		abort();
	size_t need;
	if (aw_tok_decode(t, ids, ni, AW_TOK_RENDER_SPECIAL, NULL, 0, &need) == -ENOSPC || need) {
		char *out = malloc(need + 1);
		size_t got;
		if (aw_tok_decode(t, ids, ni, AW_TOK_RENDER_SPECIAL, out, need, &got) != 0 ||
		    got != need)
			abort();
		/* valid UTF-8 without special parsing comes back byte for byte */
		if (!(flags & (AW_TOK_PARSE_SPECIAL | AW_TOK_ADD_BOS | AW_TOK_ADD_EOS |
			       AW_TOK_ADD_SPECIAL)) &&
		    valid_utf8((const unsigned char *)s, n) && !memchr(s, '<', n) &&
		    /* SentencePiece writes spaces as U+2581: a literal one decodes to ' ' */
		    !memmem(s, n, "\xe2\x96\x81", 3) && (got != n || memcmp(out, s, n) != 0))
			abort();
		free(out);
	}
	struct aw_tok_stream st;
	size_t cap = aw_tok_stream_max(t), k;
	char *chunk = malloc(cap);
	aw_tok_stream_init(&st, t, flags & 1 ? AW_TOK_RENDER_SPECIAL : 0);
	for (size_t i = 0; i < ni; i++) {
		if (aw_tok_stream_push(&st, ids[i], chunk, cap, &k) != 0 ||
		    !valid_utf8((unsigned char *)chunk, k))
			abort();
	}
	if (aw_tok_stream_flush(&st, chunk, cap, &k) != 0 || !valid_utf8((unsigned char *)chunk, k))
		abort();
	free(chunk);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!toks[0])
		build();
	if (size < 2)
		return 0;
	unsigned mode = data[0] % 7, flags = data[1] & 0x0f;
	const char *s = (const char *)data + 2;
	size_t n = size - 2;

	if (mode < 6) {
		encode_decode(toks[mode], flags, s, n);
		return 0;
	}
	struct aw_gguf *g;
	struct aw_tok *t;
	struct aw_err err;
	if (aw_gguf_parse(data + 1, size - 1, &g, &err) < 0)
		return 0;
	if (aw_tok_new_from_gguf(g, &t, &err) == 0) {
		static const char probe[] = "Hello, world! <s> 123 \xc3\xa9\xff";
		encode_decode(t, AW_TOK_PARSE_SPECIAL, probe, sizeof(probe) - 1);
		aw_tok_free(t);
	}
	aw_gguf_close(g);
	return 0;
}
