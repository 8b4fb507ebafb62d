/* toolcall.h — tool calls in a model's native format, found and parsed in
 * the generated text as it streams.
 *
 * Each chat-template family (inference/chat.h) has its own call syntax:
 *
 *   format   marker             calls
 *   XML      <tool_call>        <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>,
 *                               repeated (Qwen2.5, Hermes 3, SmolLM3)
 *   MISTRAL  [TOOL_CALLS]       [TOOL_CALLS][{"name": N, "arguments": {...}, "id": I}, ...]
 *   LLAMA3   {"name"            the assistant message is {"name": N, "parameters": {...}}
 *                               (only at its start; further calls separated by ';')
 *
 * aw_toolcall_feed() takes the text of each generated token and splits it
 * into content text (safe to send now: a possible marker prefix is held
 * back until it is decided) and calls: from the marker on, text is held and
 * each call is handed to the callback as soon as its JSON object closes,
 * with the tool's name and its arguments re-serialised as compact JSON
 * (an "arguments" string holding JSON is parsed first). aw_toolcall_in_call()
 * says when the text is inside a call: that is when a grammar constrains
 * the tokens ("auto" mode wakes it at the marker).
 *
 * When the request forced a call (tool_choice required or a named tool), the
 * prompt already ends with the marker (and, for a named tool, with the call's
 * opening up to its arguments: aw_toolcall_forced_prefix()); the parser then
 * starts inside the call.
 */
#ifndef AW_TOOLCALL_H
#define AW_TOOLCALL_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "err.h"

enum aw_toolcall_format {
	AW_TOOLCALL_NONE = 0, /* the family has no tool calls: all text is content */
	AW_TOOLCALL_XML,
	AW_TOOLCALL_MISTRAL,
	AW_TOOLCALL_LLAMA3,
};

#define AW_TOOLCALL_MAX_NAME 64	       /* bytes of a tool name */
#define AW_TOOLCALL_MAX_TEXT (1 << 16) /* bytes of one call's text */

/* The call format of a template family (NONE for the generic one). */
enum aw_toolcall_format aw_toolcall_format_of(enum aw_chat_family f);

/* Text a prompt ends with to force a call: the marker, and for a named
 * tool (name != NULL) the call's opening up to its arguments, e.g.
 * "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ". Appends to
 * 'out'. Returns 0, -EINVAL (format NONE, or a name with '"' or '\\' or
 * too long) or -ENOMEM. */
int aw_toolcall_forced_prefix(enum aw_toolcall_format f, const char *name, size_t name_len,
			      struct aw_chat_buf *out);

/* A complete call: name (NUL-terminated) and arguments (compact JSON). */
struct aw_toolcall_call {
	const char *name;
	size_t name_len;
	const char *args;
	size_t args_len;
	uint32_t n_tokens; /* tokens fed from the call's first byte to its last */
	uint32_t index;	   /* calls counted from 0 */
};

/* Receives each call as it completes; valid during the callback. Returns 0
 * to go on, nonzero to stop feeding (the feed returns -ECANCELED). */
typedef int aw_toolcall_fn(void *ctx, const struct aw_toolcall_call *c);

struct aw_toolcall;

/* A parser for 'f'. 'forced': the prompt ended with
 * aw_toolcall_forced_prefix(f, name, ...) ('name' NULL for just the
 * marker); the parser starts inside that call. Returns 0 and sets *ret or
 * -EINVAL / -ENOMEM. */
int aw_toolcall_new(enum aw_toolcall_format f, int forced, const char *name, size_t name_len,
		    struct aw_toolcall **ret);
void aw_toolcall_free(struct aw_toolcall *t);

/* Feed 'len' bytes of generated text holding 'n_tokens' tokens. Appends the
 * content text that may be sent to 'content' (which is reset first), calls
 * 'fn' for every call completed. Returns 0, -EBADMSG with 'err' set for a
 * malformed call (not JSON, no name, text after a call's object that is
 * not its format's, a call longer than AW_TOOLCALL_MAX_TEXT), -ECANCELED
 * when 'fn' asked to stop, or -ENOMEM. After an error the parser refuses
 * further input. */
int aw_toolcall_feed(struct aw_toolcall *t, const char *text, size_t len, uint32_t n_tokens,
		     struct aw_chat_buf *content, aw_toolcall_fn *fn, void *ctx,
		     struct aw_err *err);

/* The text is over (EOS, stop, length): release held-back content into
 * 'content' (reset first). Returns 0, or -EBADMSG when a call was left
 * unfinished (and a forced call never came). */
int aw_toolcall_end(struct aw_toolcall *t, struct aw_chat_buf *content, struct aw_err *err);

/* 1 while the text is inside a call (after its marker, before its end). */
int aw_toolcall_in_call(const struct aw_toolcall *t);

/* The text of the current call since its marker (Llama 3: since its '{'),
 * as fed so far: what a grammar woken at the marker must be advanced by.
 * Sets *ret_len; valid until the next feed. Empty outside a call. */
const char *aw_toolcall_call_text(const struct aw_toolcall *t, size_t *ret_len);

/* Calls completed so far. */
uint32_t aw_toolcall_count(const struct aw_toolcall *t);

#endif
