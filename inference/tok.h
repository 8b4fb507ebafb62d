/* tok.h — tokenizers built from GGUF metadata: SentencePiece BPE ("llama")
 * and byte-level BPE ("gpt2"), with special tokens and a streaming decoder.
 *
 * The reference for every id is llama.cpp's tokenizer on the same GGUF file.
 * The GGUF keys read (all under "tokenizer.ggml."):
 *
 *   KEY                 TYPE            MEANING
 *   model               string          "llama" (SentencePiece BPE) or "gpt2" (byte-level BPE)
 *   pre                 string          pre-tokenizer of "gpt2": llama-bpe (also llama3,
 *                                       llama-v3), qwen2, smollm, gpt-2, default (or absent)
 *   tokens              string[n]       token texts; SentencePiece writes spaces as U+2581,
 *                                       byte-level BPE writes bytes as GPT-2's printable map
 *   scores              f32[n]          SentencePiece merge priority (higher merges first)
 *   token_type          i32[n]          1 normal, 2 unknown, 3 control, 4 user-defined,
 *                                       5 unused, 6 byte (<0xNN>)
 *   merges              string[m]       "left right", rank = index (lower merges first)
 *   bos/eos/unknown/padding/eot/eom_token_id  u32
 *   add_bos_token, add_eos_token, add_space_prefix  bool
 *
 * Encoding (aw_tok_encode) runs, as llama.cpp does:
 *   1. special-token partition: control and unknown tokens are cut out of the
 *      text only with AW_TOK_PARSE_SPECIAL; user-defined tokens always are;
 *   2. "llama": each text fragment gets a leading space when it starts the
 *      text or follows a special token (add_space_prefix), spaces become
 *      U+2581, then pieces merge by score (highest first, leftmost on ties)
 *      and what is left falls back to <0xNN> byte tokens;
 *      "gpt2": the pre-tokenizer regexes (PCRE2, UTF + UCP) split the text
 *      into words, each word's bytes map to GPT-2's byte alphabet and merge
 *      by rank (lowest first, leftmost on ties). Invalid UTF-8 becomes
 *      U+FFFD per invalid byte before the split, as in llama.cpp.
 * Both merge loops use a binary heap over a linked list of symbols:
 * O(n log n) in the word length, never quadratic.
 *
 * A struct aw_tok is immutable after aw_tok_new*() and may be shared by any
 * number of threads; each call allocates its own scratch memory.
 */
#ifndef AW_TOK_H
#define AW_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct aw_gguf;
struct aw_tok;

/* GGUF token_type values. */
enum aw_tok_type {
	AW_TOK_TYPE_UNDEFINED = 0,
	AW_TOK_TYPE_NORMAL = 1,
	AW_TOK_TYPE_UNKNOWN = 2,
	AW_TOK_TYPE_CONTROL = 3,
	AW_TOK_TYPE_USER_DEFINED = 4,
	AW_TOK_TYPE_UNUSED = 5,
	AW_TOK_TYPE_BYTE = 6,
};

enum aw_tok_model {
	AW_TOK_MODEL_SPM = 1, /* "llama" */
	AW_TOK_MODEL_BPE = 2, /* "gpt2" */
};

#define AW_TOK_ID_NONE	  (-1) /* no such token */
#define AW_TOK_ID_DEFAULT (-2) /* use the model's default (llama.cpp's) */

/* A vocabulary as plain arrays, so that tests and converters can build a
 * tokenizer without a file. Nothing is kept: aw_tok_new() copies it all. */
struct aw_tok_vocab {
	const char *model;	    /* "llama" or "gpt2" */
	const char *pre;	    /* NULL or "" = "default" (gpt2 only) */
	uint32_t n_tokens;	    /* >= 1 */
	const char *const *tokens;  /* n_tokens texts */
	const uint32_t *token_lens; /* NULL: texts are NUL-terminated */
	uint32_t n_scores;	    /* 0 (all scores 0) or n_tokens */
	const float *scores;	    /* n_scores */
	uint32_t n_types;	    /* 0 (all normal) or n_tokens */
	const int32_t *types;	    /* n_types, enum aw_tok_type */
	uint32_t n_merges;	    /* gpt2: > 0 */
	const char *const *merges;  /* "left right" */
	const uint32_t *merge_lens; /* NULL: NUL-terminated */
	int64_t bos, eos, unk, pad; /* id, AW_TOK_ID_NONE or AW_TOK_ID_DEFAULT */
	int64_t eot, eom;	    /* id, AW_TOK_ID_NONE or AW_TOK_ID_DEFAULT */
	int add_bos, add_eos;	    /* 0, 1, or -1 = model default */
	int add_space_prefix;	    /* 0, 1, or -1 = model default */
};

/* Initialise 'v' to "nothing given": every id and flag is the default. */
void aw_tok_vocab_init(struct aw_tok_vocab *v);

/* Build a tokenizer from 'v'. Returns 0 and sets *ret_t, or -EINVAL/-EBADMSG
 * (err says what is inconsistent: counts, duplicate token, merge naming an
 * unknown token or whose result is not a token, missing byte token, unknown
 * model or pre-tokenizer) or -ENOMEM. The caller frees *ret_t with
 * aw_tok_free(). */
int aw_tok_new(const struct aw_tok_vocab *v, struct aw_tok **ret_t, struct aw_err *err);

/* Build a tokenizer from the tokenizer.ggml.* keys of an open GGUF file.
 * Returns 0 and sets *ret_t, -ENOENT when a required key is missing,
 * -EBADMSG when a key has the wrong type or the vocabulary is inconsistent
 * (err names the key), or -ENOMEM. The tokenizer does not keep 'g'. */
int aw_tok_new_from_gguf(const struct aw_gguf *g, struct aw_tok **ret_t, struct aw_err *err);

/* Release 't' (NULL is fine). */
void aw_tok_free(struct aw_tok *t);

/* Flags of aw_tok_encode(). */
#define AW_TOK_ADD_BOS	     (1u << 0) /* prepend BOS (if the vocabulary has one) */
#define AW_TOK_ADD_EOS	     (1u << 1) /* append EOS (if the vocabulary has one) */
#define AW_TOK_ADD_SPECIAL   (1u << 2) /* BOS/EOS as the model's add_bos/add_eos say */
#define AW_TOK_PARSE_SPECIAL (1u << 3) /* cut control tokens' texts out of the input */

/* Encode 'len' bytes of 'text' (any bytes: NULs and invalid UTF-8 included).
 * Writes at most 'cap' ids to 'out' (which may be NULL when cap is 0).
 * Returns 0 and sets *ret_n to the number of ids; when they do not fit,
 * returns -ENOSPC and still sets *ret_n to the number needed (the one
 * exception to "ret_* only on success", so callers can size a buffer).
 * Other errors: -ENOMEM, -EOVERFLOW (input longer than 2^31 - 1 bytes), -EIO
 * (the regex engine gave up: its match limit). */
int aw_tok_encode(const struct aw_tok *t, const char *text, size_t len, unsigned flags,
		  int32_t *out, size_t cap, size_t *ret_n);

/* Like aw_tok_encode() into a malloc'ed array the caller frees. */
int aw_tok_encode_alloc(const struct aw_tok *t, const char *text, size_t len, unsigned flags,
			int32_t **ret_ids, size_t *ret_n);

/* Flags of aw_tok_decode() and aw_tok_stream_init(). */
#define AW_TOK_RENDER_SPECIAL (1u << 0) /* control/unknown tokens print their text */
#define AW_TOK_KEEP_SPACE     (1u << 1) /* never strip the SentencePiece leading space */

/* The bytes of token 'id' as decoded text: U+2581 -> space for "llama",
 * the byte map reversed for "gpt2", the byte itself for <0xNN>. Control and
 * unknown tokens give their text, unused/undefined ones nothing. Sets *ret_len
 * and returns a pointer valid as long as 't', or NULL for an id out of range. */
const char *aw_tok_piece(const struct aw_tok *t, int32_t id, size_t *ret_len);

/* The token's text as stored in the vocabulary (not decoded). */
const char *aw_tok_text(const struct aw_tok *t, int32_t id, size_t *ret_len);

/* Decode 'n' ids to bytes, exactly the concatenation of their pieces except
 * that (a) control and unknown tokens print nothing without
 * AW_TOK_RENDER_SPECIAL and (b) for a vocabulary with add_space_prefix the
 * first piece at the start or right after BOS loses one leading space unless
 * AW_TOK_KEEP_SPACE (so decode(encode(s)) == s). Output need not be valid
 * UTF-8. Writes at most 'cap' bytes; returns 0 and sets *ret_n, or -ENOSPC
 * with *ret_n = bytes needed, or -EINVAL for an id out of range. */
int aw_tok_decode(const struct aw_tok *t, const int32_t *ids, size_t n, unsigned flags, char *out,
		  size_t cap, size_t *ret_n);

/* A streaming decoder: feed it one token at a time; it returns only complete,
 * valid UTF-8. An incomplete multi-byte sequence is held back until the next
 * token completes it; bytes that can never form a valid character (and a
 * sequence still incomplete at aw_tok_stream_flush()) come out as U+FFFD.
 * The leading-space rule of aw_tok_decode() applies. Caller-provided
 * storage: no _fini needed. */
struct aw_tok_stream {
	const struct aw_tok *t; /* the tokenizer */
	unsigned flags;		/* AW_TOK_RENDER_SPECIAL, AW_TOK_KEEP_SPACE */
	int at_start;		/* next text piece may lose its leading space */
	unsigned n_pend;	/* bytes held back in pend */
	unsigned char pend[4];	/* an incomplete UTF-8 sequence */
};

void aw_tok_stream_init(struct aw_tok_stream *s, const struct aw_tok *t, unsigned flags);

/* Bytes of output one push can produce at most: size 'out' with this. */
size_t aw_tok_stream_max(const struct aw_tok *t);

/* Decode token 'id' into 'out'. Returns 0 and sets *ret_n (possibly 0),
 * -EINVAL for an id out of range, -ENOSPC when cap < aw_tok_stream_max()
 * (the stream is unchanged in both cases). */
int aw_tok_stream_push(struct aw_tok_stream *s, int32_t id, char *out, size_t cap, size_t *ret_n);

/* Emit what is held back (as U+FFFD) and reset to the start state. */
int aw_tok_stream_flush(struct aw_tok_stream *s, char *out, size_t cap, size_t *ret_n);

/* Accessors. Ids are AW_TOK_ID_NONE (-1) when the vocabulary has none. */
uint32_t aw_tok_n_tokens(const struct aw_tok *t);
enum aw_tok_model aw_tok_model(const struct aw_tok *t);
const char *aw_tok_pre(const struct aw_tok *t); /* "llama-bpe", "qwen2", ...; "" for llama */
int32_t aw_tok_bos(const struct aw_tok *t);
int32_t aw_tok_eos(const struct aw_tok *t);
int32_t aw_tok_eot(const struct aw_tok *t);
int32_t aw_tok_unk(const struct aw_tok *t);
int32_t aw_tok_pad(const struct aw_tok *t);
int aw_tok_add_bos(const struct aw_tok *t);
int aw_tok_add_eos(const struct aw_tok *t);
int aw_tok_add_space_prefix(const struct aw_tok *t);
enum aw_tok_type aw_tok_token_type(const struct aw_tok *t, int32_t id);
/* True for tokens that end generation: eos, eot, eom and the texts llama.cpp
 * treats as such (<|im_end|>, <|eot_id|>, <|endoftext|>, ...). */
int aw_tok_is_eog(const struct aw_tok *t, int32_t id);
/* Find a token by its exact stored text; AW_TOK_ID_NONE if absent. */
int32_t aw_tok_find(const struct aw_tok *t, const char *text, size_t len);

#endif
