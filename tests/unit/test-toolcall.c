/* test-toolcall.c — inference/toolcall.c: native tool calls found in
 * streamed text for each format (Qwen/Hermes XML, Mistral, Llama 3), fed
 * whole, byte by byte and in random pieces (same content, same calls);
 * marker prefixes held back and released; braces inside strings; "arguments"
 * given as a JSON string; forced calls (required, named); malformed calls
 * refused with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "toolcall.h"

struct got {
	char content[4096];
	size_t n_content;
	char calls[8][256]; /* "name|args" */
	int n_calls;
	uint32_t tokens[8];
};

static int on_call(void *ctx, const struct aw_toolcall_call *c)
{
	struct got *g = ctx;

	assert_true(g->n_calls < 8);
	assert_int_equal(c->index, (uint32_t)g->n_calls);
	assert_int_equal(strlen(c->name), c->name_len);
	snprintf(g->calls[g->n_calls], sizeof(g->calls[0]), "%.*s|%.*s", (int)c->name_len, c->name,
		 (int)c->args_len, c->args);
	g->tokens[g->n_calls++] = c->n_tokens;
	return 0;
}

/* feed 'text' in pieces of 'step' bytes (0: random 1..7), one token each */
static int run(enum aw_toolcall_format f, int forced, const char *name, const char *text,
	       size_t step, struct got *g, struct aw_err *err)
{
	struct aw_toolcall *t = NULL;
	struct aw_chat_buf out = {0};
	size_t n = strlen(text), i = 0;
	uint64_t rs = 12345;
	int r = 0;

	memset(g, 0, sizeof(*g));
	assert_int_equal(aw_toolcall_new(f, forced, name, name ? strlen(name) : 0, &t), 0);
	while (i < n && r == 0) {
		size_t k = step;
		if (!k) {
			rs = rs * 6364136223846793005ull + 1442695040888963407ull;
			k = 1 + (rs >> 33) % 7;
		}
		if (k > n - i)
			k = n - i;
		r = aw_toolcall_feed(t, text + i, k, 1, &out, on_call, g, err);
		memcpy(g->content + g->n_content, out.p ? out.p : "", out.len);
		g->n_content += out.len;
		i += k;
	}
	if (r == 0) {
		r = aw_toolcall_end(t, &out, err);
		memcpy(g->content + g->n_content, out.p ? out.p : "", out.len);
		g->n_content += out.len;
	}
	g->content[g->n_content] = '\0';
	free(out.p);
	aw_toolcall_free(t);
	return r;
}

/* the same result whole, byte by byte and in random pieces */
static void expect(enum aw_toolcall_format f, int forced, const char *name, const char *text,
		   const char *content, int n_calls, const char *const *calls)
{
	const size_t steps[] = {1000000, 1, 0, 2, 5};

	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct got g;
		struct aw_err err = {0};
		int r = run(f, forced, name, text, steps[s], &g, &err);
		if (r != 0)
			fail_msg("'%s' step %zu: %d %s", text, steps[s], r, err.msg);
		assert_string_equal(g.content, content);
		assert_int_equal(g.n_calls, n_calls);
		for (int i = 0; i < n_calls; i++)
			assert_string_equal(g.calls[i], calls[i]);
	}
}

static void expect_bad(enum aw_toolcall_format f, int forced, const char *name, const char *text,
		       const char *why)
{
	struct got g;
	struct aw_err err = {0};

	assert_int_equal(run(f, forced, name, text, 1, &g, &err), -EBADMSG);
	if (!strstr(err.msg, why))
		fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, why);
}

static void test_xml(void **state)
{
	(void)state;
	const char *two[] = {"get_weather|{\"city\": \"Paris\"}", "time|{}"};
	expect(AW_TOOLCALL_XML, 0, NULL,
	       "Let me check. <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
	       "\"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"time\", \"arguments\": "
	       "{}}\n</tool_call>",
	       "Let me check. \n", 2, two);
	/* no call: every byte is content, including near-markers */
	expect(AW_TOOLCALL_XML, 0, NULL, "a <tool_cal b <tool_call c", "a <tool_cal b <tool_call c",
	       0, NULL);
	expect(AW_TOOLCALL_XML, 0, NULL, "<<tool_call>{\"name\":\"f\"}</tool_call>x", "<x", 1,
	       (const char *[]){"f|{}"});
	/* braces and quotes inside strings; arguments given as a JSON string */
	expect(AW_TOOLCALL_XML, 0, NULL,
	       "<tool_call>{\"name\": \"q\", \"arguments\": {\"s\": \"}{\\\"]\"}}</tool_call>", "",
	       1, (const char *[]){"q|{\"s\": \"}{\\\"]\"}"});
	expect(AW_TOOLCALL_XML, 0, NULL,
	       "<tool_call>{\"name\": \"q\", \"arguments\": \"{\\\"n\\\": [1, 2]}\"}</tool_call>",
	       "", 1, (const char *[]){"q|{\"n\": [1, 2]}"});
	/* forced: the prompt ended with the marker (required) or the opening (named) */
	expect(AW_TOOLCALL_XML, 1, NULL,
	       "{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>", "", 1,
	       (const char *[]){"f|{\"a\": 1}"});
	expect(AW_TOOLCALL_XML, 1, "get_weather", "{\"city\": \"Oslo\"}}\n</tool_call>", "", 1,
	       (const char *[]){"get_weather|{\"city\": \"Oslo\"}"});
	/* a missing closing tag at the end is forgiven */
	expect(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"name\": \"f\"}", "", 1,
	       (const char *[]){"f|{}"});

	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"name\": f}</tool_call>",
		   "not valid JSON");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"nom\": \"f\"}</tool_call>", "\"name\"");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"name\": \"\"}</tool_call>", "\"name\"");
	expect_bad(AW_TOOLCALL_XML, 0, NULL,
		   "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>", "not an object");
	expect_bad(AW_TOOLCALL_XML, 0, NULL,
		   "<tool_call>{\"name\": \"f\", \"arguments\": \"{x\"}</tool_call>",
		   "string is not JSON");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>[1]</tool_call>", "expected '{'");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"name\": \"f\"} and more",
		   "</tool_call>");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, "<tool_call>{\"name\": \"f\", \"arg", "ended inside");
	expect_bad(AW_TOOLCALL_XML, 1, NULL, "", "ended inside");
	/* too long */
	size_t big = AW_TOOLCALL_MAX_TEXT + 100;
	char *s = malloc(big + 64);
	assert_non_null(s);
	strcpy(s, "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": \"");
	size_t l = strlen(s);
	memset(s + l, 'x', big);
	s[l + big] = '\0';
	expect_bad(AW_TOOLCALL_XML, 0, NULL, s, "longer than");
	free(s);
	/* too deep for the JSON reader */
	char deep[400] = "<tool_call>{\"name\": \"f\", \"arguments\": ";
	l = strlen(deep);
	for (int i = 0; i < 100; i++)
		deep[l++] = '[';
	for (int i = 0; i < 100; i++)
		deep[l++] = ']';
	strcpy(deep + l, "}</tool_call>");
	expect_bad(AW_TOOLCALL_XML, 0, NULL, deep, "not valid JSON");
}

static void test_mistral(void **state)
{
	(void)state;
	const char *two[] = {"a|{\"x\": 1}", "b|{}"};
	expect(AW_TOOLCALL_MISTRAL, 0, NULL,
	       "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"x\": 1}, \"id\": \"abcdefghi\"}, "
	       "{\"name\": \"b\", \"arguments\": {}}]",
	       "", 2, two);
	expect(AW_TOOLCALL_MISTRAL, 0, NULL, "plain [TOOL text", "plain [TOOL text", 0, NULL);
	expect(AW_TOOLCALL_MISTRAL, 1, "b", "{}}]", "", 1, (const char *[]){"b|{}"});
	expect_bad(AW_TOOLCALL_MISTRAL, 0, NULL, "[TOOL_CALLS]{\"name\": \"a\"}", "expected '['");
	expect_bad(AW_TOOLCALL_MISTRAL, 0, NULL, "[TOOL_CALLS][{\"name\": \"a\"} x",
		   "expected ',' or ']'");
}

static void test_llama3(void **state)
{
	(void)state;
	expect(AW_TOOLCALL_LLAMA3, 0, NULL,
	       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}", "", 1,
	       (const char *[]){"get_weather|{\"city\": \"Rome\"}"});
	expect(AW_TOOLCALL_LLAMA3, 0, NULL,
	       "\n{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {}}",
	       "\n", 2, (const char *[]){"a|{}", "b|{}"});
	/* only at the message's start; other JSON is content */
	expect(AW_TOOLCALL_LLAMA3, 0, NULL, "It is {\"name\": 1}", "It is {\"name\": 1}", 0, NULL);
	expect(AW_TOOLCALL_LLAMA3, 0, NULL, "{\"x\": 1}", "{\"x\": 1}", 0, NULL);
	expect(AW_TOOLCALL_LLAMA3, 1, NULL, "f\", \"parameters\": {\"k\": true}}", "", 1,
	       (const char *[]){"f|{\"k\": true}"});
	expect(AW_TOOLCALL_LLAMA3, 1, "f", "{\"k\": null}}", "", 1,
	       (const char *[]){"f|{\"k\": null}"});
}

static void test_misc(void **state)
{
	struct aw_chat_buf b = {0};
	struct aw_toolcall *t = NULL;
	struct aw_chat_buf out = {0};
	struct aw_err err;
	struct got g;

	(void)state;
	assert_int_equal(aw_toolcall_forced_prefix(AW_TOOLCALL_XML, "get", 3, &b), 0);
	assert_string_equal(b.p, "<tool_call>\n{\"name\": \"get\", \"arguments\": ");
	b.len = 0;
	assert_int_equal(aw_toolcall_forced_prefix(AW_TOOLCALL_LLAMA3, "get", 3, &b), 0);
	assert_string_equal(b.p, "{\"name\": \"get\", \"parameters\": ");
	assert_int_equal(aw_toolcall_forced_prefix(AW_TOOLCALL_XML, "a\"b", 3, &b), -EINVAL);
	assert_int_equal(aw_toolcall_forced_prefix(AW_TOOLCALL_NONE, NULL, 0, &b), -EINVAL);
	free(b.p);
	assert_int_equal(aw_toolcall_new(AW_TOOLCALL_NONE, 1, NULL, 0, &t), -EINVAL);
	assert_int_equal(aw_toolcall_format_of(AW_CHAT_QWEN25), AW_TOOLCALL_XML);
	assert_int_equal(aw_toolcall_format_of(AW_CHAT_MISTRAL_NEMO), AW_TOOLCALL_MISTRAL);
	assert_int_equal(aw_toolcall_format_of(AW_CHAT_LLAMA3), AW_TOOLCALL_LLAMA3);
	assert_int_equal(aw_toolcall_format_of(AW_CHAT_GENERIC), AW_TOOLCALL_NONE);
	/* NONE: everything is content */
	assert_int_equal(run(AW_TOOLCALL_NONE, 0, NULL, "<tool_call>{}</tool_call>", 3, &g, &err),
			 0);
	assert_string_equal(g.content, "<tool_call>{}</tool_call>");
	/* in_call follows the marker; token counts per call */
	assert_int_equal(aw_toolcall_new(AW_TOOLCALL_XML, 0, NULL, 0, &t), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(aw_toolcall_feed(t, "hi <tool_", 9, 2, &out, on_call, &g, &err), 0);
	assert_string_equal(out.p, "hi ");
	assert_false(aw_toolcall_in_call(t));
	assert_int_equal(aw_toolcall_feed(t, "call>", 5, 1, &out, on_call, &g, &err), 0);
	assert_true(aw_toolcall_in_call(t));
	assert_int_equal(aw_toolcall_feed(t, "{\"name\": ", 9, 3, &out, on_call, &g, &err), 0);
	size_t cl;
	const char *ct = aw_toolcall_call_text(t, &cl);
	assert_int_equal(cl, 9); /* what a grammar woken at the marker must accept */
	assert_memory_equal(ct, "{\"name\": ", 9);
	assert_int_equal(aw_toolcall_feed(t, "\"f\"}", 4, 1, &out, on_call, &g, &err), 0);
	assert_int_equal(g.n_calls, 1);
	assert_int_equal(g.tokens[0], 5);    /* "call>" .. "}" */
	assert_true(aw_toolcall_in_call(t)); /* until </tool_call> */
	assert_int_equal(aw_toolcall_feed(t, "</tool_call>", 12, 1, &out, on_call, &g, &err), 0);
	assert_false(aw_toolcall_in_call(t));
	assert_int_equal(aw_toolcall_count(t), 1);
	/* after an error, nothing more */
	assert_int_equal(aw_toolcall_feed(t, "<tool_call>x", 12, 1, &out, on_call, &g, &err),
			 -EBADMSG);
	assert_int_equal(aw_toolcall_feed(t, "a", 1, 1, &out, on_call, &g, &err), -EBADMSG);
	assert_int_equal(aw_toolcall_end(t, &out, &err), -EBADMSG);
	aw_toolcall_free(t);
	free(out.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_mistral),
		cmocka_unit_test(test_llama3),
		cmocka_unit_test(test_misc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
