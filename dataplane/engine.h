/* engine.h — what a worker group runs requests through.
 *
 * The dataplane does not know how text is generated: a worker calls an
 * engine through this table. The real engine wraps libaw_inference (model,
 * tokenizer, sampler); the "echo" engine (engine-echo.c) is a transport test
 * engine with no model: it answers GENERATE by streaming the prompt's words
 * back, one word per token, so the dataplane's streaming, loss recovery,
 * overload and shutdown paths are tested before and without a model. It is
 * never used unless asked for by name ([model] path = "echo" or "echo:DELAY_US").
 *
 * Engines emit text through a callback; a nonzero return from the callback
 * means "stop now" (cancelled, deadline, shutdown) and the engine returns
 * promptly with its summary so far.
 */
#ifndef AW_ENGINE_H
#define AW_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"

struct aw_model;
struct aw_tok;

/* Receives 'len' bytes of output text holding 'n_tokens' tokens. Returns 0 to
 * go on, nonzero to stop. */
typedef int aw_engine_emit_fn(void *ctx, const char *text, size_t len, uint32_t n_tokens);

struct aw_engine_result {
	uint8_t finish;		/* enum aw_proto_finish */
	uint32_t prompt_tokens; /* tokens of the prompt */
	uint32_t gen_tokens;	/* tokens generated */
	uint32_t prefill_us;
	uint32_t decode_us;
	char error[128]; /* finish ERROR: why */
};

struct aw_engine_ops {
	const char *name;
	/* Run GENERATE 'req' (max_new_tokens already capped). Returns 0 and fills
	 * *res (finish reason included), or -errno for a request it refuses
	 * (-EINVAL: bad parameters, with res->error set). */
	int (*generate)(void *state, const struct aw_proto_req *req, aw_engine_emit_fn *emit,
			void *emit_ctx, struct aw_engine_result *res);
	/* A one-line JSON object describing the model (telemetry /agentwire/model):
	 * writes at most 'cap' bytes. */
	void (*describe)(void *state, char *buf, size_t cap);
	void (*free)(void *state);
	/* --- worker groups (continuous batching) --- */
	/* Optional (NULL: each group serves one request at a time through
	 * generate). A model instance for worker group 'group' — its own scratch
	 * for 'max_batch' tokens per forward pass over the engine's weights — and
	 * the tokenizer, which all groups share. The engine owns both until its
	 * free. Called on the main lcore before the workers start. Returns 0, or
	 * -errno with 'err' set. */
	int (*group_model)(void *state, unsigned group, int32_t max_batch, struct aw_model **ret_m,
			   const struct aw_tok **ret_tok, struct aw_err *err);
};

struct aw_engine {
	const struct aw_engine_ops *ops;
	void *state;
};

/* The transport test engine (no model), sleeping 'delay_us' per token.
 * Returns 0 or -ENOMEM. */
int aw_engine_echo_init(struct aw_engine *e, uint32_t delay_us);

/* The real engine: load the GGUF model at 'path' (weights read in place from
 * the mapping, kernels chosen for this CPU, tokenizer from the file's
 * metadata). Returns 0 and fills *ret_e, or -errno with 'err' naming what is
 * wrong. */
int aw_engine_model_open(const char *path, struct aw_engine *ret_e, struct aw_err *err);

/* Release an engine's state. Accepts an engine whose ops is NULL. */
void aw_engine_fini(struct aw_engine *e);

#endif
