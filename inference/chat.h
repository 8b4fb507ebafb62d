/* chat.h — chat templates: messages + tools rendered the way the model's own
 * template does, and the small JSON reader/writer they need.
 *
 * A request carries {"messages": [...], "tools": [...]} (OpenAI shape:
 * roles system/user/assistant/tool; assistant "tool_calls":
 * [{"id", "type", "function": {"name", "arguments"}}]; tool results with
 * "tool_call_id" and "content"). aw_chat_detect() names the template family
 * from distinctive substrings of the GGUF's tokenizer.chat_template;
 * aw_chat_render() is a hand-written C renderer per family, byte-identical to
 * python3-jinja2 rendering the real template in the environment Hugging Face
 * transformers uses (trim/lstrip blocks, tojson = json.dumps with
 * ensure_ascii=False and keys in insertion order), checked by test-chat.
 *
 * The rendered prompt is a list of segments: the template's own text
 * (special: control-token texts in it become control tokens) and text from
 * the request (plain: never becomes a control token, whatever it looks like).
 * aw_chat_tokenize() encodes it that way.
 */
#ifndef AW_CHAT_H
#define AW_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct aw_tok;

/* ---- JSON ------------------------------------------------------------------ */

enum aw_json_type {
	AW_JSON_NULL,
	AW_JSON_FALSE,
	AW_JSON_TRUE,
	AW_JSON_NUMBER,
	AW_JSON_STRING,
	AW_JSON_ARRAY,
	AW_JSON_OBJECT,
};

struct aw_json {
	enum aw_json_type type;
	char *str;		/* STRING: decoded UTF-8 (NUL-terminated); NUMBER: the lexeme */
	size_t len;		/* STRING/NUMBER: bytes in str; ARRAY/OBJECT: elements */
	struct aw_json **items; /* ARRAY/OBJECT: (len) values, in input order */
	char **keys;		/* OBJECT: (len) keys, decoded, NUL-terminated */
	size_t *key_lens;	/* OBJECT: (len) key lengths in bytes */
};

#define AW_JSON_MAX_DEPTH 64

/* Parse strict JSON (RFC 8259) from 'buf'. Rejects duplicate keys, lone
 * surrogates, NUL in strings, nesting deeper than AW_JSON_MAX_DEPTH and
 * trailing bytes. Returns 0 and sets *ret (free with aw_json_free()), or
 * -EBADMSG (err names the offset) / -ENOMEM. */
int aw_json_parse(const char *buf, size_t len, struct aw_json **ret, struct aw_err *err);
void aw_json_free(struct aw_json *j);

/* Member 'key' of an object, or NULL (also when 'obj' is not an object). */
const struct aw_json *aw_json_get(const struct aw_json *obj, const char *key);

/* A growable byte buffer (caller-provided storage; free .p when done). */
struct aw_chat_buf {
	char *p;    /* bytes, NUL-terminated when non-NULL */
	size_t len; /* bytes used */
	size_t cap; /* bytes allocated */
};

/* Append 'j' serialised as Python's json.dumps(j, ensure_ascii=False,
 * indent=indent) does (indent < 0: compact ", " / ": " separators; floats
 * in Python's repr). Returns 0 or -ENOMEM. */
int aw_json_dump(const struct aw_json *j, int indent, struct aw_chat_buf *out);

/* ---- templates -------------------------------------------------------------- */

enum aw_chat_family {
	AW_CHAT_GENERIC,      /* ChatML without tools: the fallback */
	AW_CHAT_LLAMA3,	      /* Llama 3.1/3.2 instruct (tools in the first user message) */
	AW_CHAT_QWEN25,	      /* Qwen2.5 instruct (<tools>, <tool_call>, <tool_response>) */
	AW_CHAT_HERMES3,      /* Hermes 3 tool_use (pydantic-style tool descriptions) */
	AW_CHAT_MISTRAL_NEMO, /* Mistral Nemo ([AVAILABLE_TOOLS], [TOOL_CALLS]) */
	AW_CHAT_SMOLLM3,      /* SmolLM3 (reasoning mode /think, /no_think) */
};

/* The family whose template 'tmpl' is; AW_CHAT_GENERIC when none matches
 * (also for NULL). */
enum aw_chat_family aw_chat_detect(const char *tmpl, size_t len);
const char *aw_chat_family_name(enum aw_chat_family f);

struct aw_chat_opts {
	const char *bos;  /* bos_token text ("" if NULL) */
	const char *eos;  /* eos_token text ("" if NULL) */
	const char *date; /* Llama 3 "Today Date", e.g. "15 Mar 2025"; NULL: "26 Jul 2024" */
	int add_generation_prompt; /* end with the assistant header */
};

struct aw_chat_seg {
	size_t off;  /* offset in aw_chat_prompt.text */
	size_t len;  /* bytes */
	int special; /* 1: template text (control-token texts are parsed); 0: request text */
};

struct aw_chat_prompt {
	char *text;		  /* the rendered prompt, NUL-terminated */
	size_t len;		  /* bytes in text */
	struct aw_chat_seg *segs; /* (n_segs) segments covering text in order */
	size_t n_segs;
};

/* Render 'req' ({"messages": [...], "tools": [...]}; an absent or empty
 * "tools" means none) with family 'f'. Returns 0 and fills *ret (release
 * with aw_chat_prompt_fini()), -EINVAL when the template would refuse the
 * conversation (err says why, as its raise_exception does), -ENOTSUP for
 * what this renderer does not reproduce (e.g. tools with the generic
 * family), or -ENOMEM. */
int aw_chat_render(enum aw_chat_family f, const struct aw_json *req, const struct aw_chat_opts *o,
		   struct aw_chat_prompt *ret, struct aw_err *err);
void aw_chat_prompt_fini(struct aw_chat_prompt *p);

/* Token ids for 'p': control tokens are recognised only inside special
 * segments; all other bytes (across segment boundaries) are encoded as
 * plain text. Returns 0 and sets *ret_ids (caller frees) and *ret_n, or
 * -errno. */
int aw_chat_tokenize(const struct aw_tok *t, const struct aw_chat_prompt *p, int32_t **ret_ids,
		     size_t *ret_n, struct aw_err *err);

#endif
