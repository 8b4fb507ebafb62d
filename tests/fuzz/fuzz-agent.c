/* fuzz-agent: agent requests (dataplane/agent.c) and the tool-call reader
 * (inference/toolcall.c) on untrusted bytes.
 *
 * Byte 0 picks the request type, the template family and the tool choice;
 * the rest is "MESSAGES\0TOOLS" (TOOLS optional). The request goes through
 * aw_agent_prepare() with a small SentencePiece tokenizer (tiny-llama.h);
 * then the same bytes are fed to the tool-call reader of every format in
 * pieces of 1..8 bytes. A crash, a sanitizer report, a job without tokens
 * or a call whose arguments do not parse is a finding. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "gguf.h"
#include "tiny-llama.h"
#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct aw_tok *tok;
static void *img;	  /* the tokenizer's file image, kept (reachable) */
static struct aw_gguf *g; /* for the process's life */

static int on_call(void *ctx, const struct aw_toolcall_call *c)
{
	struct aw_json *j = NULL;

	(void)ctx;
	/* what the reader hands out is JSON, and the name is 1..64 bytes */
	if (c->name_len == 0 || c->name_len > AW_TOOLCALL_MAX_NAME ||
	    aw_json_parse(c->args, c->args_len, &j, NULL) != 0)
		abort();
	aw_json_free(j);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!tok) {
		struct tiny_cfg c;
		size_t len;
		struct aw_err err;

		tiny_default(&c);
		c.with_tokenizer = 1;
		if (tiny_write(&c, NULL, &img, &len) != 0 ||
		    aw_gguf_parse(img, len, &g, &err) != 0 ||
		    aw_tok_new_from_gguf(g, &tok, &err) != 0)
			abort(); /* kept for the process's life */
	}
	if (size < 1)
		return 0;
	const uint8_t sel = data[0];
	const char *rest = (const char *)data + 1;
	const size_t n = size - 1;
	const char *nul = memchr(rest, 0, n);
	struct aw_agent_ctx ctx;
	struct aw_proto_req r;
	struct aw_agent_job job;
	static const unsigned types[] = {AW_PROTO_GENERATE, AW_PROTO_CLASSIFY, AW_PROTO_EMBED,
					 AW_PROTO_GENERATE};

	aw_agent_ctx_init(&ctx, NULL, tok, 4096);
	ctx.family = (enum aw_chat_family)((sel >> 2) % 6);
	aw_proto_req_init(&r);
	r.messages.p = rest;
	r.messages.len = (uint32_t)(nul ? (size_t)(nul - rest) : n);
	if (nul) {
		r.tools.p = nul + 1;
		r.tools.len = (uint32_t)(n - (size_t)(nul - rest) - 1);
		r.tool_choice = (uint8_t)((sel >> 5) % 3);
	}
	if (types[sel & 3] == AW_PROTO_CLASSIFY) {
		r.n_labels = 2;
		r.labels[0] = (struct aw_proto_str){"yes", 3};
		r.labels[1] = (struct aw_proto_str){"no", 2};
	}
	if (r.messages.len) {
		int rc = aw_agent_prepare(&ctx, types[sel & 3], &r, &job);
		if (rc == 0 && (job.n_tokens < 1 || !job.tokens))
			abort();
		if (rc == -EINVAL && (!job.code || !job.msg[0]))
			abort(); /* every refusal says why */
		aw_agent_job_fini(&job);
	}
	/* the tool-call reader on the same bytes, every format */
	for (int f = AW_TOOLCALL_XML; f <= AW_TOOLCALL_LLAMA3; f++) {
		struct aw_toolcall *t = NULL;
		struct aw_chat_buf out = {0};
		struct aw_err err;
		size_t off = 0, step = 1 + (sel & 7);

		if (aw_toolcall_new((enum aw_toolcall_format)f, sel >> 7, NULL, 0, &t) != 0)
			abort();
		while (off < n) {
			const size_t k = n - off < step ? n - off : step;
			if (aw_toolcall_feed(t, rest + off, k, 1, &out, on_call, NULL, &err) < 0)
				break;
			off += k;
		}
		(void)aw_toolcall_end(t, &out, &err);
		free(out.p);
		aw_toolcall_free(t);
	}
	return 0;
}
