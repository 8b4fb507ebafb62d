/* agent.h — agent requests (CLASSIFY, EMBED, chat messages and tools) turned
 * into work for the scheduler.
 *
 * A worker group's leader hands each parsed request body (dataplane/proto.h)
 * to aw_agent_prepare(), which checks what the codec cannot (the JSON in
 * MESSAGES and TOOLS, roles, tool results against the calls made, the
 * number of tools, the named tool, labels that tokenize to nothing), renders
 * the conversation with the model's chat template (inference/chat.h),
 * tokenizes the prompt and the labels, and says how the generated text is
 * to be read (inference/toolcall.h). Every refusal carries the wire error
 * code and a message for the client. No DPDK here: the unit test and the
 * fuzz target build this file alone.
 */
#ifndef AW_AGENT_H
#define AW_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "proto.h"
#include "toolcall.h"

struct aw_tok;
struct aw_gguf;

#define AW_AGENT_MAX_TOOLS 128 /* tool definitions in one request */

/* What a group knows about its model's text side. */
struct aw_agent_ctx {
	const struct aw_tok *tok;
	enum aw_chat_family family; /* from tokenizer.chat_template */
	char bos[64], eos[64];	    /* texts of the BOS/EOS tokens ("" if none) */
	int32_t max_tokens;	    /* prompt (+ label) tokens allowed */
};

/* Fill 'c' from the model file 'g' (its template) and tokenizer 't'. */
void aw_agent_ctx_init(struct aw_agent_ctx *c, const struct aw_gguf *g, const struct aw_tok *t,
		       int32_t max_tokens);

/* The same from the template's text ('tmpl' NULL: the generic family). */
void aw_agent_ctx_init_template(struct aw_agent_ctx *c, const char *tmpl, size_t len,
				const struct aw_tok *t, int32_t max_tokens);

#define AW_AGENT_GRAMMAR_NONE	0
#define AW_AGENT_GRAMMAR_ALWAYS 1 /* from the first token (RESPONSE_FORMAT, a forced call) */
#define AW_AGENT_GRAMMAR_CALLS	2 /* woken at each call marker (tool_choice auto) */

struct aw_agent_job {
	int kind;	 /* enum aw_sched_kind */
	int32_t *tokens; /* the prompt */
	int32_t n_tokens;
	int32_t n_labels; /* CLASSIFY */
	int32_t **labels; /* (n_labels) token lists */
	int32_t *label_lens;
	int pooling;   /* EMBED: enum aw_score_pool */
	int normalize; /* EMBED */
	/* GENERATE with tools: how to read the output */
	enum aw_toolcall_format calls;		  /* NONE: the text is all content */
	int forced;				  /* the prompt ends inside a call */
	char tool_name[AW_TOOLCALL_MAX_NAME + 1]; /* named tool ("" otherwise) */
	/* constrained decoding (inference/grammar.h): the schema to compile */
	int grammar;	      /* AW_AGENT_GRAMMAR_* */
	char *schema;	      /* JSON schema text (owned; NUL-terminated), or NULL */
	const char *g_prefix; /* grammar opts: bytes forced before / after the value */
	const char *g_suffix;
	char *g_forced; /* bytes the matcher takes first (in the prompt already), or NULL */
	/* refusal */
	uint16_t code; /* enum aw_proto_code */
	char msg[AW_PROTO_ERROR_MAX_MSG + 1];
};

/* Turn request body 'req' of 'type' into a job. Returns 0, or -EINVAL with
 * job->code (BAD_REQUEST, TOO_LONG, UNSUPPORTED) and job->msg set, or
 * -ENOMEM. Release with aw_agent_job_fini() either way. */
int aw_agent_prepare(const struct aw_agent_ctx *c, unsigned type, const struct aw_proto_req *req,
		     struct aw_agent_job *job);
void aw_agent_job_fini(struct aw_agent_job *job);

#endif
