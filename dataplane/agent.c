/* agent.c — agent requests into scheduler work (see agent.h).
 *
 * Checks run in the order a client would fix them: the JSON itself, the
 * shape of each message and tool, the conversation's consistency (a tool
 * result answers a call made earlier), then what the template refuses.
 * MESSAGES and TOOLS are parsed on their own first (so a message names the
 * TLV and offset at fault), then joined as {"messages": ..., "tools": ...}
 * for the renderer.
 */
#include "agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "scheduler.h"
#include "score.h"
#include "tok.h"

_Static_assert((int)AW_PROTO_POOL_MEAN == (int)AW_SCORE_POOL_MEAN &&
		       (int)AW_PROTO_POOL_CLS == (int)AW_SCORE_POOL_CLS &&
		       (int)AW_PROTO_POOL_LAST == (int)AW_SCORE_POOL_LAST,
	       "wire pooling values are the scorer's");
_Static_assert(AW_TOOLCALL_MAX_NAME == AW_PROTO_MAX_TOOL_NAME, "tool names: one limit");

static void copy_text(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, p, n);
	dst[n] = '\0';
}

void aw_agent_ctx_init(struct aw_agent_ctx *c, const struct aw_gguf *g, const struct aw_tok *t,
		       int32_t max_tokens)
{
	const char *tmpl = NULL;
	size_t len = 0;

	if (g && aw_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &len) < 0)
		tmpl = NULL;
	aw_agent_ctx_init_template(c, tmpl, len, t, max_tokens);
}

void aw_agent_ctx_init_template(struct aw_agent_ctx *c, const char *tmpl, size_t len,
				const struct aw_tok *t, int32_t max_tokens)
{
	size_t n;
	const char *p;

	memset(c, 0, sizeof(*c));
	c->tok = t;
	c->max_tokens = max_tokens;
	c->family = aw_chat_detect(tmpl, tmpl ? len : 0);
	if (t && aw_tok_bos(t) >= 0 && (p = aw_tok_text(t, aw_tok_bos(t), &n)) != NULL)
		copy_text(c->bos, sizeof(c->bos), p, n);
	if (t && aw_tok_eos(t) >= 0 && (p = aw_tok_text(t, aw_tok_eos(t), &n)) != NULL)
		copy_text(c->eos, sizeof(c->eos), p, n);
}

__attribute__((format(printf, 3, 4))) static int refuse(struct aw_agent_job *j, uint16_t code,
							const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
	j->code = code;
	return -EINVAL;
}

void aw_agent_job_fini(struct aw_agent_job *job)
{
	if (!job)
		return;
	for (int32_t i = 0; i < job->n_labels; i++)
		free(job->labels[i]);
	free(job->labels);
	free(job->label_lens);
	free(job->tokens);
	free(job->schema);
	free(job->g_forced);
	job->schema = NULL;
	job->g_forced = NULL;
	job->tokens = NULL;
	job->labels = NULL;
	job->label_lens = NULL;
	job->n_labels = 0;
}

static int str_is(const struct aw_json *j, const char *s)
{
	return j && j->type == AW_JSON_STRING && strcmp(j->str, s) == 0;
}

/* A tool name the forced prefix can carry: 1..64 of [A-Za-z0-9_.:-]. */
static int name_ok(const char *s, size_t n)
{
	if (n == 0 || n > AW_TOOLCALL_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		const char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == ':'))
			return 0;
	}
	return 1;
}

/* The messages: an array of objects with a known role; each tool result
 * answers a call made before it. */
static int check_messages(const struct aw_json *m, struct aw_agent_job *j)
{
	static const char *const roles[] = {"system", "user", "assistant", "tool", "ipython"};
	const char *ids[256];
	size_t n_ids = 0, n_calls = 0, n_results = 0;

	if (m->type != AW_JSON_ARRAY)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "MESSAGES is not a JSON array");
	if (m->len == 0)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "MESSAGES is empty");
	for (size_t i = 0; i < m->len; i++) {
		const struct aw_json *x = m->items[i], *role = aw_json_get(x, "role");
		size_t k;

		if (x->type != AW_JSON_OBJECT)
			return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "message %zu is not an object",
				      i);
		if (!role || role->type != AW_JSON_STRING)
			return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
				      "message %zu has no \"role\" string", i);
		for (k = 0; k < sizeof(roles) / sizeof(roles[0]); k++)
			if (strcmp(role->str, roles[k]) == 0)
				break;
		if (k == sizeof(roles) / sizeof(roles[0]))
			return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
				      "message %zu: unknown role '%.40s' (system, user, assistant, "
				      "tool)",
				      i, role->str);
		const struct aw_json *tc = aw_json_get(x, "tool_calls");
		if (tc && tc->type != AW_JSON_NULL) {
			if (!str_is(role, "assistant"))
				return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
					      "message %zu: tool_calls in a '%s' message", i,
					      role->str);
			if (tc->type != AW_JSON_ARRAY)
				return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
					      "message %zu: tool_calls is not an array", i);
			for (size_t c = 0; c < tc->len; c++) {
				const struct aw_json *f = aw_json_get(tc->items[c], "function");
				const struct aw_json *nm = aw_json_get(f, "name");
				const struct aw_json *id = aw_json_get(tc->items[c], "id");
				if (!nm || nm->type != AW_JSON_STRING)
					return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
						      "message %zu: tool call %zu has no "
						      "function.name",
						      i, c);
				if (id && id->type == AW_JSON_STRING && n_ids < 256)
					ids[n_ids++] = id->str;
				n_calls++;
			}
		}
		if (str_is(role, "tool") || str_is(role, "ipython")) {
			const struct aw_json *id = aw_json_get(x, "tool_call_id");
			if (id && id->type == AW_JSON_STRING) {
				for (k = 0; k < n_ids; k++)
					if (strcmp(ids[k], id->str) == 0)
						break;
				if (k == n_ids)
					return refuse(
						j, AW_PROTO_ERR_BAD_REQUEST,
						"message %zu: tool result for call '%.40s' that "
						"was never made",
						i, id->str);
			} else if (n_results >= n_calls) {
				return refuse(
					j, AW_PROTO_ERR_BAD_REQUEST,
					"message %zu: tool result without a call made before it",
					i);
			}
			n_results++;
		}
	}
	return 0;
}

static int check_tools(const struct aw_json *t, const struct aw_proto_req *req,
		       struct aw_agent_job *j)
{
	int named_found = 0;

	if (t->type != AW_JSON_ARRAY)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "TOOLS is not a JSON array");
	if (t->len > AW_AGENT_MAX_TOOLS)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
			      "tool count: %zu tools in TOOLS, at most %d", t->len,
			      AW_AGENT_MAX_TOOLS);
	for (size_t i = 0; i < t->len; i++) {
		const struct aw_json *f = aw_json_get(t->items[i], "function");
		const struct aw_json *nm = aw_json_get(f, "name");
		if (!nm || nm->type != AW_JSON_STRING || !name_ok(nm->str, nm->len))
			return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
				      "tool %zu: function.name must be 1..64 of [A-Za-z0-9_.:-]",
				      i);
		if (req->tool_choice == AW_PROTO_TOOLS_NAMED && nm->len == req->tool_name.len &&
		    memcmp(nm->str, req->tool_name.p, nm->len) == 0)
			named_found = 1;
	}
	if (req->tool_choice == AW_PROTO_TOOLS_NAMED && !named_found)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "TOOL_CHOICE names '%.*s', not in TOOLS",
			      (int)req->tool_name.len, req->tool_name.p);
	if (t->len == 0 && (req->tool_choice == AW_PROTO_TOOLS_REQUIRED ||
			    req->tool_choice == AW_PROTO_TOOLS_NAMED))
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST,
			      "TOOL_CHOICE requires a call, TOOLS is empty");
	return 0;
}

static int parse_tlv(const struct aw_proto_str *s, const char *what, struct aw_json **ret,
		     struct aw_agent_job *j)
{
	struct aw_err err = {0};
	int r = aw_json_parse(s->p, s->len, ret, &err);

	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "%s: %s", what, err.msg);
	return 0;
}

static int buf_cat(struct aw_chat_buf *b, const char *s)
{
	/* the same growth rule as aw_json_dump(), which appends to this buffer too:
	 * 'cap' is what is allocated */
	const size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
	return 0;
}

/* The grammar of one call in format 'f': an object {"name": const, ARGS:
 * the tool's parameters} for each tool offered (or only the named one);
 * Mistral's calls come as an array of them. */
static int call_schema(const struct aw_json *tools, const char *only, enum aw_toolcall_format f,
		       struct aw_chat_buf *b)
{
	static const char any_object[] = "{\"type\": \"object\"}";
	const char *key = f == AW_TOOLCALL_LLAMA3 ? "parameters" : "arguments";
	char head[192];
	int r = 0, n = 0;

	if (f == AW_TOOLCALL_MISTRAL)
		r = buf_cat(b, "{\"type\": \"array\", \"minItems\": 1, \"items\": ");
	if (r == 0)
		r = buf_cat(b, "{\"anyOf\": [");
	for (size_t i = 0; r == 0 && i < tools->len; i++) {
		const struct aw_json *fn = aw_json_get(tools->items[i], "function");
		const struct aw_json *nm = aw_json_get(fn, "name");
		const struct aw_json *params = aw_json_get(fn, "parameters");
		if (only && strcmp(nm->str, only) != 0)
			continue;
		snprintf(head, sizeof(head),
			 "%s{\"type\": \"object\", \"required\": [\"name\", \"%s\"], "
			 "\"properties\": {\"name\": {\"const\": \"%s\"}, \"%s\": ",
			 n++ ? ", " : "", key, nm->str, key);
		r = buf_cat(b, head);
		if (r == 0)
			r = params ? aw_json_dump(params, -1, b) : buf_cat(b, any_object);
		if (r == 0)
			r = buf_cat(b, "}}");
	}
	if (r == 0)
		r = buf_cat(b, f == AW_TOOLCALL_MISTRAL ? "]}}" : "]}");
	return r;
}

/* Append the forced-call text to the rendered prompt as template text. */
static int append_special(struct aw_chat_prompt *p, const char *s, size_t n)
{
	char *t = realloc(p->text, p->len + n + 1);
	if (!t)
		return -ENOMEM;
	p->text = t;
	struct aw_chat_seg *sg = realloc(p->segs, sizeof(*sg) * (p->n_segs + 1));
	if (!sg)
		return -ENOMEM;
	p->segs = sg;
	memcpy(p->text + p->len, s, n);
	sg[p->n_segs++] = (struct aw_chat_seg){p->len, n, 1};
	p->len += n;
	p->text[p->len] = '\0';
	return 0;
}

static int render(const struct aw_agent_ctx *c, const struct aw_proto_req *req,
		  struct aw_agent_job *j)
{
	struct aw_json *msgs = NULL, *tools = NULL, *both = NULL;
	struct aw_chat_prompt p = {0};
	struct aw_chat_buf joined = {0};
	struct aw_err err = {0};
	size_t n = 0;
	int r;

	if ((r = parse_tlv(&req->messages, "MESSAGES", &msgs, j)) < 0 ||
	    (r = check_messages(msgs, j)) < 0)
		goto out;
	if (req->tools.p && ((r = parse_tlv(&req->tools, "TOOLS", &tools, j)) < 0 ||
			     (r = check_tools(tools, req, j)) < 0))
		goto out;
	/* one object for the renderer, from the bytes just checked */
	r = -ENOMEM;
	size_t cap = req->messages.len + req->tools.len + 32;
	joined.p = malloc(cap);
	if (!joined.p)
		goto out;
	joined.len = (size_t)snprintf(joined.p, cap, "{\"messages\": %.*s", (int)req->messages.len,
				      req->messages.p);
	if (tools)
		joined.len +=
			(size_t)snprintf(joined.p + joined.len, cap - joined.len,
					 ", \"tools\": %.*s", (int)req->tools.len, req->tools.p);
	joined.len += (size_t)snprintf(joined.p + joined.len, cap - joined.len, "}");
	if ((r = aw_json_parse(joined.p, joined.len, &both, &err)) < 0) {
		if (r != -ENOMEM)
			r = refuse(j, AW_PROTO_ERR_BAD_REQUEST, "MESSAGES/TOOLS: %s", err.msg);
		goto out;
	}
	const struct aw_chat_opts o = {c->bos, c->eos, NULL, 1};
	r = aw_chat_render(c->family, both, &o, &p, &err);
	if (r == -ENOTSUP) {
		r = refuse(j, AW_PROTO_ERR_UNSUPPORTED, "%s template: %s",
			   aw_chat_family_name(c->family), err.msg);
		goto out;
	}
	if (r < 0) {
		if (r != -ENOMEM)
			r = refuse(j, AW_PROTO_ERR_BAD_REQUEST, "%s template: %s",
				   aw_chat_family_name(c->family), err.msg);
		goto out;
	}
	/* tool calls: how to read the answer; a forced call starts in the prompt */
	if (tools && req->tool_choice != AW_PROTO_TOOLS_NONE) {
		j->calls = aw_toolcall_format_of(c->family);
		if (j->calls == AW_TOOLCALL_NONE) {
			r = refuse(j, AW_PROTO_ERR_UNSUPPORTED, "the %s template has no tool calls",
				   aw_chat_family_name(c->family));
			goto out;
		}
		/* the grammar of the calls: woken at each marker, or from the start
		 * when the prompt already opened a call */
		struct aw_chat_buf sch = {0};
		const int named = req->tool_choice == AW_PROTO_TOOLS_NAMED;
		if (named)
			copy_text(j->tool_name, sizeof(j->tool_name), req->tool_name.p,
				  req->tool_name.len);
		if (!j->schema) {
			if ((r = call_schema(tools, named ? j->tool_name : NULL, j->calls, &sch)) <
			    0) {
				free(sch.p);
				goto out;
			}
			j->schema = sch.p;
			j->grammar = AW_AGENT_GRAMMAR_CALLS;
			j->g_prefix = j->calls == AW_TOOLCALL_XML ? "\n" : NULL;
			j->g_suffix = j->calls == AW_TOOLCALL_XML ? "\n</tool_call>" : NULL;
		}
		if (req->tool_choice == AW_PROTO_TOOLS_REQUIRED ||
		    req->tool_choice == AW_PROTO_TOOLS_NAMED) {
			struct aw_chat_buf pre = {0};
			j->forced = 1;
			r = aw_toolcall_forced_prefix(j->calls, named ? j->tool_name : NULL,
						      named ? strlen(j->tool_name) : 0, &pre);
			if (r == 0)
				r = append_special(&p, pre.p, pre.len);
			/* the matcher takes what follows the marker, as the parser does */
			if (r == 0 && j->grammar == AW_AGENT_GRAMMAR_CALLS) {
				const size_t skip =
					j->calls == AW_TOOLCALL_XML	  ? strlen("<tool_call>")
					: j->calls == AW_TOOLCALL_MISTRAL ? strlen("[TOOL_CALLS]")
									  : 0;
				j->g_forced = strndup(pre.p + skip, pre.len - skip);
				if (!j->g_forced)
					r = -ENOMEM;
			}
			free(pre.p);
			if (r < 0)
				goto out;
		}
	}
	r = aw_chat_tokenize(c->tok, &p, &j->tokens, &n, &err);
	if (r < 0) {
		if (r != -ENOMEM)
			r = refuse(j, AW_PROTO_ERR_BAD_REQUEST, "rendered prompt: %s", err.msg);
		goto out;
	}
	j->n_tokens = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
	r = 0;
out:
	aw_chat_prompt_fini(&p);
	free(joined.p);
	aw_json_free(both);
	aw_json_free(tools);
	aw_json_free(msgs);
	return r;
}

int aw_agent_prepare(const struct aw_agent_ctx *c, unsigned type, const struct aw_proto_req *req,
		     struct aw_agent_job *j)
{
	size_t n = 0;
	int r;

	memset(j, 0, sizeof(*j));
	j->kind = type == AW_PROTO_CLASSIFY ? AW_SCHED_CLASSIFY
		  : type == AW_PROTO_EMBED  ? AW_SCHED_EMBED
					    : AW_SCHED_GENERATE;
	if (type != AW_PROTO_GENERATE && type != AW_PROTO_CLASSIFY && type != AW_PROTO_EMBED)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "type 0x%02x is not an operation", type);
	if (req->response_format.p) {
		/* the whole answer under the schema (compiled by the caller) */
		j->grammar = AW_AGENT_GRAMMAR_ALWAYS;
		j->schema = strndup(req->response_format.p, req->response_format.len);
		if (!j->schema)
			return -ENOMEM;
	}
	if (req->messages.p) {
		if ((r = render(c, req, j)) < 0)
			return r;
	} else {
		r = aw_tok_encode_alloc(c->tok, req->prompt.p ? req->prompt.p : "", req->prompt.len,
					AW_TOK_ADD_SPECIAL, &j->tokens, &n);
		if (r < 0)
			return r == -ENOMEM
				       ? r
				       : refuse(j, AW_PROTO_ERR_BAD_REQUEST, "PROMPT: %s",
						r == -EINVAL ? "cannot be tokenized" : "error");
		j->n_tokens = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
	}
	if (j->n_tokens == 0)
		return refuse(j, AW_PROTO_ERR_BAD_REQUEST, "the prompt tokenizes to nothing");
	if (j->n_tokens >= c->max_tokens)
		return refuse(j, AW_PROTO_ERR_TOO_LONG, "prompt of %d tokens, the limit is %d",
			      j->n_tokens, c->max_tokens - 1);
	if (type == AW_PROTO_EMBED) {
		j->pooling = req->pooling;
		j->normalize = (req->embed_flags & AW_PROTO_EMBED_NORMALIZE) != 0;
	}
	if (type == AW_PROTO_CLASSIFY) {
		j->labels = calloc(req->n_labels ? req->n_labels : 1, sizeof(*j->labels));
		j->label_lens = calloc(req->n_labels ? req->n_labels : 1, sizeof(*j->label_lens));
		if (!j->labels || !j->label_lens)
			return -ENOMEM;
		for (uint32_t i = 0; i < req->n_labels; i++) {
			r = aw_tok_encode_alloc(c->tok, req->labels[i].p, req->labels[i].len, 0,
						&j->labels[i], &n);
			j->n_labels = (int32_t)i + 1;
			if (r == -ENOMEM)
				return r;
			if (r < 0 || n == 0)
				return refuse(
					j, AW_PROTO_ERR_BAD_REQUEST,
					"LABEL %u ('%.*s') tokenizes to nothing", i,
					(int)(req->labels[i].len > 40 ? 40 : req->labels[i].len),
					req->labels[i].p);
			j->label_lens[i] = (int32_t)n;
			if ((int64_t)j->n_tokens + (int64_t)n > c->max_tokens)
				return refuse(
					j, AW_PROTO_ERR_TOO_LONG,
					"prompt and LABEL %u: %d + %zu tokens, the limit is %d", i,
					j->n_tokens, n, c->max_tokens);
		}
	}
	return 0;
}
