/* test-agent.c — dataplane/agent.c: agent requests checked, rendered and
 * tokenized for the scheduler, with a tiny llama tokenizer (tiny-llama.h).
 * Plain prompts, CLASSIFY labels, EMBED options, chat messages with tools
 * (auto, none, required, named), and every refusal of the bad-input
 * list: malformed JSON, unknown roles, a tool result for a call never made,
 * 10 000 tools, a schema nested 1 000 deep, a named tool not offered, tools
 * with a template that has none, a prompt beyond the limit — each with its
 * wire code and a message naming the problem. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "grammar.h"
#include "gguf.h"
#include "scheduler.h"
#include "score.h"
#include "tiny-llama.h"
#include "tok.h"

static void *img;
static struct aw_gguf *g;
static struct aw_tok *tok;

static int setup(void **state)
{
	struct tiny_cfg c;
	struct aw_err err;
	size_t len;

	(void)state;
	tiny_default(&c);
	c.with_tokenizer = 1;
	if (tiny_write(&c, NULL, &img, &len) != 0 || aw_gguf_parse(img, len, &g, &err) != 0 ||
	    aw_tok_new_from_gguf(g, &tok, &err) != 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	aw_tok_free(tok);
	aw_gguf_close(g);
	free(img);
	return 0;
}

static struct aw_proto_str S(const char *s) {
	return (struct aw_proto_str){s, (uint32_t)strlen(s)};
}

static void
ctx_for(struct aw_agent_ctx *c, enum aw_chat_family f)
{
	aw_agent_ctx_init(c, g, tok, 100000);
	c->family = f;
}

static void expect_refused(const struct aw_agent_ctx *c, unsigned type,
			   const struct aw_proto_req *r, uint16_t code, const char *why)
{
	struct aw_agent_job j;

	assert_int_equal(aw_agent_prepare(c, type, r, &j), -EINVAL);
	assert_int_equal(j.code, code);
	if (!strstr(j.msg, why))
		fail_msg("message '%s' lacks '%s'", j.msg, why);
	aw_agent_job_fini(&j);
}

static void test_plain(void **state)
{
	struct aw_agent_ctx c;
	struct aw_proto_req r;
	struct aw_agent_job j;

	(void)state;
	aw_agent_ctx_init(&c, g, tok, 100);
	assert_int_equal(c.family, AW_CHAT_GENERIC); /* no template in the file */
	assert_string_equal(c.bos, "<s>");
	assert_string_equal(c.eos, "</s>");
	aw_proto_req_init(&r);
	r.prompt = S("hello world");
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_int_equal(j.kind, AW_SCHED_GENERATE);
	assert_true(j.n_tokens >= 3);
	assert_int_equal(j.tokens[0], aw_tok_bos(tok));
	assert_int_equal(j.calls, AW_TOOLCALL_NONE);
	aw_agent_job_fini(&j);

	/* EMBED options carried over */
	r.pooling = AW_PROTO_POOL_LAST;
	r.embed_flags = 0;
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_EMBED, &r, &j), 0);
	assert_int_equal(j.kind, AW_SCHED_EMBED);
	assert_int_equal(j.pooling, AW_SCORE_POOL_LAST);
	assert_int_equal(j.normalize, 0);
	aw_agent_job_fini(&j);

	/* CLASSIFY: each label on its own, no BOS */
	aw_proto_req_init(&r);
	r.prompt = S("hello");
	r.n_labels = 3;
	r.labels[0] = S("world");
	r.labels[1] = S("a");
	r.labels[2] = S("hello world");
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_CLASSIFY, &r, &j), 0);
	assert_int_equal(j.kind, AW_SCHED_CLASSIFY);
	assert_int_equal(j.n_labels, 3);
	for (int i = 0; i < 3; i++) {
		assert_true(j.label_lens[i] >= 1);
		assert_true(j.labels[i][0] != aw_tok_bos(tok));
	}
	aw_agent_job_fini(&j);

	/* limits */
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	aw_proto_req_init(&r);
	r.prompt = S(big);
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_TOO_LONG, "the limit is 99");
	r.prompt = S("hello");
	r.n_labels = 1;
	r.labels[0] = S(big);
	expect_refused(&c, AW_PROTO_CLASSIFY, &r, AW_PROTO_ERR_TOO_LONG, "LABEL 0");
	/* RESPONSE_FORMAT: the schema to compile, the grammar on from the start */
	aw_proto_req_init(&r);
	r.prompt = S("hello");
	r.response_format = S("{\"type\": \"object\"}");
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_int_equal(j.grammar, AW_AGENT_GRAMMAR_ALWAYS);
	assert_string_equal(j.schema, "{\"type\": \"object\"}");
	aw_agent_job_fini(&j);
}

static const char *msgs_ok =
	"[{\"role\": \"system\", \"content\": \"You route.\"},"
	" {\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
	" {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\","
	"   \"function\": {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}}]},"
	" {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"18C\"},"
	" {\"role\": \"user\", \"content\": \"And Oslo?\"}]";
static const char *tools_ok =
	"[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
	"\"Weather now\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
	"{\"type\": \"string\"}}, \"required\": [\"city\"]}}}]";

static void test_messages(void **state)
{
	struct aw_agent_ctx c;
	struct aw_proto_req r;
	struct aw_agent_job j;
	int32_t n_auto;

	(void)state;
	ctx_for(&c, AW_CHAT_QWEN25);
	aw_proto_req_init(&r);
	r.prompt.p = NULL;
	r.messages = S(msgs_ok);
	r.tools = S(tools_ok);
	if (aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j) != 0)
		fail_msg("%s", j.msg);
	assert_int_equal(j.calls, AW_TOOLCALL_XML);
	assert_int_equal(j.forced, 0);
	/* the calls' grammar: one object per tool, compiled by the grammar engine */
	assert_int_equal(j.grammar, AW_AGENT_GRAMMAR_CALLS);
	assert_string_equal(j.g_prefix, "\n");
	assert_string_equal(j.g_suffix, "\n</tool_call>");
	assert_null(j.g_forced);
	{
		struct aw_grammar *gr = NULL;
		struct aw_err err = {0};
		if (aw_grammar_compile(j.schema, strlen(j.schema), NULL, &gr, &err) != 0)
			fail_msg("%s: %s", j.schema, err.msg);
		aw_grammar_free(gr);
	}
	assert_true(j.n_tokens > 50);
	n_auto = j.n_tokens;
	aw_agent_job_fini(&j);
	/* none: tools shown, nothing parsed */
	r.tool_choice = AW_PROTO_TOOLS_NONE;
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_int_equal(j.calls, AW_TOOLCALL_NONE);
	assert_int_equal(j.n_tokens, n_auto);
	aw_agent_job_fini(&j);
	/* required / named: the prompt ends inside a call */
	r.tool_choice = AW_PROTO_TOOLS_REQUIRED;
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_int_equal(j.forced, 1);
	assert_true(j.n_tokens > n_auto);
	assert_string_equal(j.g_forced, "\n"); /* the prompt ends "<tool_call>\n" */
	const int32_t n_req = j.n_tokens;
	aw_agent_job_fini(&j);
	r.tool_choice = AW_PROTO_TOOLS_NAMED;
	r.tool_name = S("get_weather");
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_string_equal(j.tool_name, "get_weather");
	assert_true(j.n_tokens > n_req);
	assert_string_equal(j.g_forced, "\n{\"name\": \"get_weather\", \"arguments\": ");
	assert_null(strstr(j.schema, "\"time\"")); /* only the named tool */
	aw_agent_job_fini(&j);
	/* messages without tools, for EMBED and CLASSIFY too */
	aw_proto_req_init(&r);
	r.prompt.p = NULL;
	r.messages = S("[{\"role\": \"user\", \"content\": \"hello\"}]");
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_EMBED, &r, &j), 0);
	aw_agent_job_fini(&j);
	/* other families' call formats */
	ctx_for(&c, AW_CHAT_LLAMA3);
	r.tools = S(tools_ok);
	assert_int_equal(aw_agent_prepare(&c, AW_PROTO_GENERATE, &r, &j), 0);
	assert_int_equal(j.calls, AW_TOOLCALL_LLAMA3);
	aw_agent_job_fini(&j);
}

static void test_bad(void **state)
{
	struct aw_agent_ctx c;
	struct aw_proto_req r;

	(void)state;
	ctx_for(&c, AW_CHAT_QWEN25);
	aw_proto_req_init(&r);
	r.prompt.p = NULL;
	r.messages = S("[{\"role\": \"user\", \"content\": \"hi\"");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "MESSAGES: ");
	r.messages = S("{\"role\": \"user\"}");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "not a JSON array");
	r.messages = S("[]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "empty");
	r.messages = S("[\"hi\"]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "not an object");
	r.messages = S("[{\"content\": \"hi\"}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "no \"role\"");
	r.messages = S("[{\"role\": \"wizard\", \"content\": \"hi\"}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "unknown role 'wizard'");
	r.messages = S("[{\"role\": \"user\", \"content\": \"hi\"},"
		       " {\"role\": \"tool\", \"tool_call_id\": \"call_9\", \"content\": \"x\"}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "tool result for call 'call_9' that was never made");
	r.messages = S("[{\"role\": \"user\", \"content\": \"hi\"},"
		       " {\"role\": \"tool\", \"content\": \"x\"}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "without a call made before");
	r.messages = S("[{\"role\": \"user\", \"tool_calls\": []}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "tool_calls in a 'user'");

	/* tools */
	r.messages = S("[{\"role\": \"user\", \"content\": \"hi\"}]");
	r.tools = S("{}");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "TOOLS is not");
	r.tools = S("[{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "function.name");
	/* 10 000 tools */
	const char *one = "{\"type\":\"function\",\"function\":{\"name\":\"t\"}},";
	size_t ol = strlen(one);
	char *many = malloc(10000 * ol + 4);
	assert_non_null(many);
	many[0] = '[';
	for (int i = 0; i < 10000; i++)
		memcpy(many + 1 + (size_t)i * ol, one, ol);
	many[10000 * ol] = ']'; /* replaces the last comma */
	many[10000 * ol + 1] = '\0';
	r.tools = S(many);
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "tool count: 10000 tools in TOOLS, at most 128");
	free(many);
	/* a schema nested 1 000 deep */
	char *deep = malloc(20000);
	assert_non_null(deep);
	size_t l = (size_t)sprintf(deep, "[{\"type\":\"function\",\"function\":{\"name\":\"t\","
					 "\"parameters\":");
	for (int i = 0; i < 1000; i++)
		l += (size_t)sprintf(deep + l, "{\"items\":");
	l += (size_t)sprintf(deep + l, "{}");
	for (int i = 0; i < 1000; i++)
		deep[l++] = '}';
	strcpy(deep + l, "}}]");
	r.tools = S(deep);
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "TOOLS: ");
	free(deep);
	/* named tool not offered */
	r.tools = S(tools_ok);
	r.tool_choice = AW_PROTO_TOOLS_NAMED;
	r.tool_name = S("send_mail");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST,
		       "names 'send_mail', not in TOOLS");
	r.tools = S("[]");
	r.tool_choice = AW_PROTO_TOOLS_REQUIRED;
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "TOOLS is empty");
	/* the fallback template has no tool format */
	ctx_for(&c, AW_CHAT_GENERIC);
	r.tools = S(tools_ok);
	r.tool_choice = AW_PROTO_TOOLS_AUTO;
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_UNSUPPORTED, "generic");
	/* what the template itself refuses (Llama 3: one call per message) */
	ctx_for(&c, AW_CHAT_LLAMA3);
	r.tools = S(tools_ok);
	r.messages = S("[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
		       "\"tool_calls\": [{\"function\": {\"name\": \"a\", \"arguments\": {}}}, "
		       "{\"function\": {\"name\": \"b\", \"arguments\": {}}}]}]");
	expect_refused(&c, AW_PROTO_GENERATE, &r, AW_PROTO_ERR_BAD_REQUEST, "single tool-calls");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_bad),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
