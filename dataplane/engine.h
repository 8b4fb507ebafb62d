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
#include "loader.h"
#include "log.h"
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
	 * for 'max_batch' tokens per forward pass over the engine's weights (the
	 * replica on NUMA node 'node' where there is one) — and the tokenizer,
	 * which all groups share. The engine owns both until its free. Called on
	 * the main lcore before the workers start (and on the group's leader
	 * after a live swap). Returns 0, or -errno with 'err' set. */
	int (*group_model)(void *state, unsigned group, int node, int32_t max_batch,
			   struct aw_model **ret_m, const struct aw_tok **ret_tok,
			   struct aw_err *err);
	/* --- live model swap (optional; the model engine has them) ---
	 * generation: +1 each time a new model becomes current (cheap: read by
	 * the group leaders between steps). When it moves, a group finishes its
	 * running requests, calls group_model() again, from its leader lcore,
	 * to get a model over the new weights, moves its scheduler to it, then
	 * group_release(): the engine drops the group's hold on the model it
	 * had before (freed once no group and no request holds it). */
	unsigned (*generation)(void *state);
	void (*group_release)(void *state, unsigned group);
	/* --- agent operations (optional) ---
	 * The tokenizer.chat_template of the model group 'group' holds (sets
	 * *ret, not NUL-terminated, and *ret_len; valid until the group's
	 * group_release()). Returns 0, or -ENOENT when the file has none. */
	int (*group_template)(void *state, unsigned group, const char **ret, size_t *ret_len);
};

struct aw_engine {
	const struct aw_engine_ops *ops;
	void *state;
};

/* The transport test engine (no model), sleeping 'delay_us' per token.
 * Returns 0 or -ENOMEM. */
int aw_engine_echo_init(struct aw_engine *e, uint32_t delay_us);

/* --- the model engine (engine-model.c) ----------------------------------------
 * How the real engine loads its model: through the weight loader
 * (inference/loader.h) with each Q8_0/Q4_0 matrix repacked in place as it
 * lands (inference/model.h, struct aw_model_repacker), one replica of the
 * weights per NUMA node in 'nodes'. */
struct aw_engine_model_opts {
	enum aw_load_method method;	  /* uring (default), read, mmap */
	unsigned queue_depth;		  /* 0: the loader's default */
	size_t request_size;		  /* 0: the loader's default */
	int nodes[AW_LOAD_MAX_REPLICAS];  /* one replica per serving node */
	unsigned n_nodes;		  /* 0: one replica, not bound */
	aw_load_progress_fn *on_progress; /* NULL: none */
	void *progress_ctx;
	aw_log_sink_fn *log; /* the loader's warnings; NULL: aw_log at debug */
	void *log_ctx;
};

/* The real engine: load the GGUF model at 'path' as 'o' says (NULL: the
 * defaults), kernels chosen for this CPU, tokenizer from the file's
 * metadata. Returns 0 and fills *ret_e, or -errno with 'err' naming what is
 * wrong. */
int aw_engine_model_open(const char *path, const struct aw_engine_model_opts *o,
			 struct aw_engine *ret_e, struct aw_err *err);

/* Live model swap. Load the model at 'path' on the calling thread (the
 * daemon runs this on a background thread) while 'e' goes on serving the
 * current one, then make it current: requests that start afterwards run on
 * the new model, requests already running finish on the one they started
 * with, and the old model is released by aw_engine_model_reap() once its
 * last request has ended. On error (missing or corrupt file, out of memory)
 * nothing changes: the old model keeps serving. 'e' must be a model engine
 * (-EINVAL otherwise). Safe while workers call generate(); one swap at a
 * time. */
int aw_engine_model_swap(struct aw_engine *e, const char *path,
			 const struct aw_engine_model_opts *o, struct aw_err *err);

/* Free the models retired by swaps that no request uses any more (call it
 * from the control thread: it unmaps gigabytes). Returns how many retired
 * models are still in use. */
unsigned aw_engine_model_reap(struct aw_engine *e);

/* The generation (1 for the first model, +1 per swap) and file of the model
 * new requests run on. */
unsigned aw_engine_model_generation(const struct aw_engine *e);

/* Release an engine's state. Accepts an engine whose ops is NULL. */
void aw_engine_fini(struct aw_engine *e);

#endif
