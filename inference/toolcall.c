/* toolcall.c — streaming parser of native tool calls (see toolcall.h).
 *
 * One byte at a time through a small state machine: TEXT looks for the
 * marker (holding back the bytes that could still be its start), OBJ
 * collects a call's JSON object while tracking depth, strings and escapes
 * (so braces inside strings do not count), and the per-format states
 * between objects (XML's closing tag, Mistral's array punctuation, Llama
 * 3's ';'). A closed object is parsed with the chat module's strict JSON
 * reader and handed out at once.
 */
#include "toolcall.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum st {
	S_TEXT,	    /* content; looking for the marker */
	S_PLAIN,    /* content for good (Llama 3: the message did not start with a call) */
	S_ARR_OPEN, /* Mistral: '[' after the marker */
	S_OBJ_WAIT, /* whitespace, then '{' */
	S_OBJ,	    /* inside a call's object */
	S_CLOSE,    /* XML: whitespace, then </tool_call> */
	S_ARR_SEP,  /* Mistral: ',' or ']' */
	S_L3_SEP,   /* Llama 3: ';' / whitespace, then another call or the end */
	S_ERROR,
};

struct aw_toolcall {
	enum aw_toolcall_format f;
	enum st st;
	const char *marker;
	size_t marker_len;
	char pend[32]; /* TEXT: held-back bytes (a possible marker start) */
	size_t n_pend;
	int at_start;		/* Llama 3: nothing but whitespace so far */
	struct aw_chat_buf obj; /* OBJ: the call's text */
	int depth, in_str, esc;
	size_t close_i; /* S_CLOSE: bytes of </tool_call> matched */
	uint32_t n_calls;
	uint32_t call_tokens; /* tokens since the call began */
	int in_call_tokens;
	struct aw_chat_buf name, args;
	struct aw_chat_buf raw; /* the current call's text since its marker */
	int silent;		/* feeding the forced prefix */
};

static const char xml_close[] = "</tool_call>";

enum aw_toolcall_format aw_toolcall_format_of(enum aw_chat_family f)
{
	switch (f) {
	case AW_CHAT_QWEN25:
	case AW_CHAT_HERMES3:
	case AW_CHAT_SMOLLM3:
		return AW_TOOLCALL_XML;
	case AW_CHAT_MISTRAL_NEMO:
		return AW_TOOLCALL_MISTRAL;
	case AW_CHAT_LLAMA3:
		return AW_TOOLCALL_LLAMA3;
	default:
		return AW_TOOLCALL_NONE;
	}
}

static int buf_add(struct aw_chat_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *q = realloc(b->p, cap);
		if (!q)
			return -ENOMEM;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_str(struct aw_chat_buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int aw_toolcall_forced_prefix(enum aw_toolcall_format f, const char *name, size_t name_len,
			      struct aw_chat_buf *out)
{
	int r = 0;

	if (name) {
		if (name_len == 0 || name_len > AW_TOOLCALL_MAX_NAME)
			return -EINVAL;
		for (size_t i = 0; i < name_len; i++)
			if (name[i] == '"' || name[i] == '\\' || (unsigned char)name[i] < 0x20)
				return -EINVAL;
	}
	switch (f) {
	case AW_TOOLCALL_XML:
		r = buf_str(out, "<tool_call>\n");
		break;
	case AW_TOOLCALL_MISTRAL:
		r = buf_str(out, "[TOOL_CALLS][");
		break;
	case AW_TOOLCALL_LLAMA3:
		if (!name)
			return buf_str(out, "{\"name\": \"");
		break;
	default:
		return -EINVAL;
	}
	if (r < 0 || !name)
		return r;
	if ((r = buf_str(out, "{\"name\": \"")) < 0 || (r = buf_add(out, name, name_len)) < 0)
		return r;
	return buf_str(out,
		       f == AW_TOOLCALL_LLAMA3 ? "\", \"parameters\": " : "\", \"arguments\": ");
}

void aw_toolcall_free(struct aw_toolcall *t)
{
	if (!t)
		return;
	free(t->obj.p);
	free(t->name.p);
	free(t->args.p);
	free(t->raw.p);
	free(t);
}

int aw_toolcall_in_call(const struct aw_toolcall *t)
{
	return t->st == S_ARR_OPEN || t->st == S_OBJ_WAIT || t->st == S_OBJ || t->st == S_CLOSE ||
	       t->st == S_ARR_SEP;
}

const char *aw_toolcall_call_text(const struct aw_toolcall *t, size_t *ret_len)
{
	const int in = aw_toolcall_in_call(t);

	*ret_len = in ? t->raw.len : 0;
	return in && t->raw.p ? t->raw.p : "";
}

uint32_t aw_toolcall_count(const struct aw_toolcall *t)
{
	return t->n_calls;
}

static int bad(struct aw_toolcall *t, struct aw_err *err, const char *what)
{
	t->st = S_ERROR;
	return aw_err_set(err, EBADMSG, "tool call %u: %s", t->n_calls, what);
}

/* The object in t->obj is complete: parse it and hand it out. */
static int complete(struct aw_toolcall *t, aw_toolcall_fn *fn, void *ctx, struct aw_err *err)
{
	struct aw_json *j = NULL, *aj = NULL;
	struct aw_err je;
	int r;

	if (aw_json_parse(t->obj.p, t->obj.len, &j, &je) < 0) {
		r = bad(t, err, "not valid JSON");
		aw_err_set(err, EBADMSG, "tool call %u: not valid JSON (%s)", t->n_calls, je.msg);
		return r;
	}
	const struct aw_json *name = aw_json_get(j, "name");
	const struct aw_json *args = aw_json_get(j, "arguments");
	if (!args)
		args = aw_json_get(j, "parameters");
	if (j->type != AW_JSON_OBJECT || !name || name->type != AW_JSON_STRING || name->len == 0 ||
	    name->len > AW_TOOLCALL_MAX_NAME) {
		aw_json_free(j);
		return bad(t, err, "no \"name\" string of 1..64 bytes");
	}
	if (args && args->type == AW_JSON_STRING) {
		/* OpenAI style: the arguments as a JSON text */
		if (aw_json_parse(args->str, args->len, &aj, &je) < 0) {
			aw_json_free(j);
			return bad(t, err, "\"arguments\" string is not JSON");
		}
		args = aj;
	}
	if (args && args->type != AW_JSON_OBJECT) {
		aw_json_free(aj);
		aw_json_free(j);
		return bad(t, err, "\"arguments\" is not an object");
	}
	t->name.len = t->args.len = 0;
	r = buf_add(&t->name, name->str, name->len);
	if (r == 0)
		r = args ? aw_json_dump(args, -1, &t->args) : buf_str(&t->args, "{}");
	aw_json_free(aj);
	aw_json_free(j);
	if (r < 0)
		return r;
	struct aw_toolcall_call c = {t->name.p,	  t->name.len,	  t->args.p,
				     t->args.len, t->call_tokens, t->n_calls};
	t->n_calls++;
	t->in_call_tokens = 0;
	t->call_tokens = 0;
	if (fn && fn(ctx, &c))
		return -ECANCELED;
	return 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static void start_obj(struct aw_toolcall *t, const char *init, size_t n)
{
	t->obj.len = 0;
	t->depth = 0;
	t->in_str = t->esc = 0;
	t->st = S_OBJ;
	for (size_t i = 0; i < n; i++) {
		/* the marker's bytes are the object's first bytes (Llama 3) */
		buf_add(&t->obj, init + i, 1);
		if (init[i] == '{')
			t->depth++;
		else if (init[i] == '"')
			t->in_str = !t->in_str;
	}
	t->in_call_tokens = 1;
}

/* TEXT: one more byte; content goes to 'out'. */
static int text_byte(struct aw_toolcall *t, char c, struct aw_chat_buf *out)
{
	int r = 0;

	if (t->f == AW_TOOLCALL_LLAMA3 && t->at_start && t->n_pend == 0 && is_ws(c))
		return buf_add(out, &c, 1); /* leading whitespace: content either way */
	t->pend[t->n_pend++] = c;
	/* drop bytes from the front until what is held is a marker prefix */
	while (t->n_pend > 0 && memcmp(t->pend, t->marker, t->n_pend) != 0) {
		if (t->f == AW_TOOLCALL_LLAMA3 && t->at_start) {
			/* not a call at the message's start: plain text from now on */
			r = buf_add(out, t->pend, t->n_pend);
			t->n_pend = 0;
			t->st = S_PLAIN;
			return r;
		}
		if ((r = buf_add(out, t->pend, 1)) < 0)
			return r;
		memmove(t->pend, t->pend + 1, --t->n_pend);
	}
	if (t->n_pend == t->marker_len) {
		t->n_pend = 0;
		t->at_start = 0;
		t->raw.len = 0;
		if (t->f == AW_TOOLCALL_LLAMA3 && buf_add(&t->raw, t->marker, t->marker_len) < 0)
			return -ENOMEM;
		t->call_tokens = 0;
		t->in_call_tokens = 1;
		if (t->f == AW_TOOLCALL_LLAMA3)
			start_obj(t, t->marker, t->marker_len);
		else
			t->st = t->f == AW_TOOLCALL_MISTRAL ? S_ARR_OPEN : S_OBJ_WAIT;
	}
	return 0;
}

static int feed_byte(struct aw_toolcall *t, char c, struct aw_chat_buf *out, aw_toolcall_fn *fn,
		     void *ctx, struct aw_err *err)
{
	switch (t->st) {
	case S_TEXT:
		return text_byte(t, c, out);
	case S_PLAIN:
		return buf_add(out, &c, 1);
	case S_ARR_OPEN:
		if (is_ws(c))
			return 0;
		if (c != '[')
			return bad(t, err, "expected '[' after [TOOL_CALLS]");
		t->st = S_OBJ_WAIT;
		return 0;
	case S_OBJ_WAIT:
		if (is_ws(c))
			return 0;
		if (c != '{')
			return bad(t, err, "expected '{' to open the call");
		start_obj(t, "{", 1);
		return 0;
	case S_OBJ:
		if (t->obj.len >= AW_TOOLCALL_MAX_TEXT)
			return bad(t, err, "longer than 65536 bytes");
		if (buf_add(&t->obj, &c, 1) < 0)
			return -ENOMEM;
		if (t->in_str) {
			if (t->esc)
				t->esc = 0;
			else if (c == '\\')
				t->esc = 1;
			else if (c == '"')
				t->in_str = 0;
			return 0;
		}
		if (c == '"')
			t->in_str = 1;
		else if (c == '{' || c == '[')
			t->depth++;
		else if ((c == '}' || c == ']') && --t->depth == 0) {
			int r = complete(t, fn, ctx, err);
			if (r < 0)
				return r;
			t->st = t->f == AW_TOOLCALL_XML	      ? S_CLOSE
				: t->f == AW_TOOLCALL_MISTRAL ? S_ARR_SEP
							      : S_L3_SEP;
			t->close_i = 0;
		}
		return 0;
	case S_CLOSE:
		if (t->close_i == 0 && is_ws(c))
			return 0;
		if (c != xml_close[t->close_i])
			return bad(t, err, "expected </tool_call> after the call");
		if (++t->close_i == sizeof(xml_close) - 1)
			t->st = S_TEXT;
		return 0;
	case S_ARR_SEP:
		if (is_ws(c))
			return 0;
		if (c == ',') {
			t->st = S_OBJ_WAIT;
			return 0;
		}
		if (c == ']') {
			t->st = S_TEXT;
			return 0;
		}
		return bad(t, err, "expected ',' or ']' after the call");
	case S_L3_SEP:
		if (is_ws(c) || c == ';')
			return 0;
		if (c == '{') {
			t->call_tokens = 0;
			t->raw.len = 0; /* a new call: its text starts here */
			if (buf_add(&t->raw, "{", 1) < 0)
				return -ENOMEM;
			start_obj(t, "{", 1);
			return 0;
		}
		t->st = S_PLAIN;
		return buf_add(out, &c, 1);
	case S_ERROR:
		break;
	}
	return aw_err_set(err, EBADMSG, "tool call parser stopped by an earlier error");
}

int aw_toolcall_feed(struct aw_toolcall *t, const char *text, size_t len, uint32_t n_tokens,
		     struct aw_chat_buf *content, aw_toolcall_fn *fn, void *ctx, struct aw_err *err)
{
	int r = 0;

	content->len = 0;
	if (content->p)
		content->p[0] = '\0';
	if (t->st == S_ERROR)
		return aw_err_set(err, EBADMSG, "tool call parser stopped by an earlier error");
	if (t->in_call_tokens || aw_toolcall_in_call(t))
		t->call_tokens += n_tokens;
	for (size_t i = 0; i < len && r == 0; i++) {
		const int was_in = t->in_call_tokens;
		const int in = aw_toolcall_in_call(t) || t->st == S_L3_SEP;
		if (in && t->raw.len < AW_TOOLCALL_MAX_TEXT && buf_add(&t->raw, text + i, 1) < 0)
			return -ENOMEM;
		r = feed_byte(t, text[i], content, fn, ctx, err);
		if (!was_in && t->in_call_tokens)
			t->call_tokens = n_tokens; /* the call began in this piece */
	}
	return r;
}

int aw_toolcall_end(struct aw_toolcall *t, struct aw_chat_buf *content, struct aw_err *err)
{
	int r = 0;

	content->len = 0;
	if (content->p)
		content->p[0] = '\0';
	switch (t->st) {
	case S_TEXT:
		r = buf_add(content, t->pend, t->n_pend);
		t->n_pend = 0;
		return r;
	case S_ARR_OPEN:
	case S_OBJ_WAIT:
	case S_OBJ:
		return bad(t, err, "the text ended inside the call");
	case S_ERROR:
		return aw_err_set(err, EBADMSG, "tool call parser stopped by an earlier error");
	default:
		return 0; /* after a complete call (a missing closing tag is forgiven) */
	}
}

int aw_toolcall_new(enum aw_toolcall_format f, int forced, const char *name, size_t name_len,
		    struct aw_toolcall **ret)
{
	struct aw_toolcall *t;

	if (f == AW_TOOLCALL_NONE && forced)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->f = f;
	t->at_start = 1;
	switch (f) {
	case AW_TOOLCALL_XML:
		t->marker = "<tool_call>";
		break;
	case AW_TOOLCALL_MISTRAL:
		t->marker = "[TOOL_CALLS]";
		break;
	case AW_TOOLCALL_LLAMA3:
		t->marker = "{\"name\"";
		break;
	default:
		t->marker = NULL;
		t->st = S_PLAIN;
		break;
	}
	t->marker_len = t->marker ? strlen(t->marker) : 0;
	if (forced) {
		struct aw_chat_buf pre = {0}, junk = {0};
		struct aw_err e;
		int r = aw_toolcall_forced_prefix(f, name, name ? name_len : 0, &pre);
		if (r == 0)
			r = aw_toolcall_feed(t, pre.p, pre.len, 0, &junk, NULL, NULL, &e);
		free(pre.p);
		free(junk.p);
		if (r < 0) {
			aw_toolcall_free(t);
			return r == -ENOMEM ? r : -EINVAL;
		}
		t->call_tokens = 0;
	}
	*ret = t;
	return 0;
}
