/* fuzz-grammar: the schema compiler (JSON reader, keywords, regex → DFA) on
 * untrusted bytes, then a matcher walk over a small byte-level vocabulary
 * driven by the input: every token the mask allows must be accepted, every
 * token it refuses must be refused, and rollback must restore the mask.
 *
 * Input: schema JSON, optionally followed by a NUL and the walk's choices. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar.h"
#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NX 20 /* multi-byte tokens */
#define NT (3 + 256 + NX)

static struct aw_tok *tok;
static struct aw_grammar_vocab *vocab;

static void init(void)
{
	static char text[NT][16];
	static const char *toks[NT];
	static int32_t types[NT];
	/* the last ones: separators and non-ASCII after the first character,
	 * for the pattern-string tables and the subtrees they skip */
	static const char *const extra[NX] = {
		"{\"",	     "\":",	     "\"}",   "ab\"",	",\"",	 "12",	   "true",
		"\\\"",	     "/ab",	     "a/b",   "x:y",	"~0/",	 "abcabc", "\xc3\xa9/",
		"a\xc3\xa9", "\xe6\x97\xa5", "a\xe6", "\xa5\"", "2024-", "ab\", 1"};
	struct aw_tok_vocab v;

	snprintf(text[0], 16, "<unk>");
	snprintf(text[1], 16, "<s>");
	snprintf(text[2], 16, "</s>");
	types[0] = AW_TOK_TYPE_UNKNOWN;
	types[1] = types[2] = AW_TOK_TYPE_CONTROL;
	for (int b = 0; b < 256; b++) {
		snprintf(text[3 + b], 16, "<0x%02X>", b);
		types[3 + b] = AW_TOK_TYPE_BYTE;
	}
	for (int i = 0; i < NX; i++) {
		snprintf(text[259 + i], 16, "%s", extra[i]);
		types[259 + i] = AW_TOK_TYPE_NORMAL;
	}
	for (int i = 0; i < NT; i++)
		toks[i] = text[i];
	aw_tok_vocab_init(&v);
	v.model = "llama";
	v.n_tokens = NT;
	v.tokens = toks;
	v.n_types = NT;
	v.types = types;
	v.add_space_prefix = 0;
	if (aw_tok_new(&v, &tok, NULL) < 0 || aw_grammar_vocab_new(tok, &vocab) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_grammar *g = NULL;
	struct aw_grammar_matcher *m = NULL;
	uint64_t mask[(NT + 63) / 64], again[(NT + 63) / 64];
	const uint8_t *nul = memchr(data, 0, size);
	size_t slen = nul ? (size_t)(nul - data) : size;
	const uint8_t *ch = nul ? nul + 1 : NULL;
	size_t nch = nul ? size - slen - 1 : 0;

	if (!tok)
		init();
	if (aw_grammar_compile((const char *)data, slen, NULL, &g, NULL) < 0)
		return 0;
	if (aw_grammar_matcher_new(g, vocab, &m) < 0)
		abort();
	for (size_t i = 0; i < nch && i < 200; i++) {
		if (i == 100)
			aw_grammar_set_finish(m, 1);
		int n = aw_grammar_mask(m, mask);
		if (n <= 0)
			break;
		/* the chosen token: the (ch[i])-th allowed one, cyclically */
		int k = ch[i] % n, t = -1;
		for (int32_t x = 0; x < NT && t < 0; x++)
			if (mask[x >> 6] >> (x & 63) & 1 && k-- == 0)
				t = x;
		/* a refused token must be refused: one per step, every one in
		 * the first steps (the mask equals brute force there) */
		for (int32_t r = i < 40 ? 0 : (int32_t)((ch[i] * 7u) % NT); r < NT;
		     r = i < 40 ? r + 1 : NT) {
			int bit = (int)(mask[r >> 6] >> (r & 63) & 1);
			int ok = aw_grammar_accept(m, r) == 0;
			if (ok && aw_grammar_rollback(m, 1) < 0)
				abort();
			if (ok != bit)
				abort();
		}
		if (t < 0 || aw_grammar_accept(m, t) < 0)
			abort();
		if (aw_grammar_rollback(m, 1) < 0 || aw_grammar_mask(m, again) != n ||
		    memcmp(mask, again, sizeof(mask)))
			abort();
		if (aw_grammar_accept(m, t) < 0)
			abort();
		if (aw_grammar_done(m))
			break;
	}
	int32_t ff[64];
	size_t nf;
	aw_grammar_forced(m, ff, 64, &nf);
	aw_grammar_matcher_free(m);
	aw_grammar_free(g);
	return 0;
}
