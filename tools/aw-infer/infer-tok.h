/* infer-tok.h — aw-infer's tokenizer modes and prompt encoding (infer-tok.c).
 *
 * Kept apart from main.c so that the tokenizer side of aw-infer is one small
 * file: main.c parses the flags and calls these.
 */
#ifndef AW_INFER_TOK_H
#define AW_INFER_TOK_H

#include <stdbool.h>
#include <stdint.h>

struct aw_gguf;
struct aw_tok;

/* --tokenize TEXT|- (ids, space-separated, one line) or --detokenize "IDS"
 * (the text): 'bos' adds BOS (when the vocabulary has one), 'special' parses
 * special-token text (and, for --detokenize, prints control tokens).
 * Returns the exit status: 0, 1 (tokenizer or I/O error), 2 (bad ids). */
int infer_tok_run(const struct aw_gguf *g, const char *tokenize, const char *detokenize, bool bos,
		  bool special);

/* Encode a -p prompt: BOS/EOS as the model's metadata says, special-token
 * text parsed only if 'special'. Checks every id against n_vocab. Returns 0
 * and sets *ret_ids (malloc'ed), *ret_n and *ret_tok (for decoding the
 * output; free with aw_tok_free), or the exit status (1 or 2) after printing
 * what is wrong. */
int infer_tok_prompt(const struct aw_gguf *g, const char *text, bool special, int32_t n_vocab,
		     int32_t **ret_ids, long *ret_n, struct aw_tok **ret_tok);

#endif
