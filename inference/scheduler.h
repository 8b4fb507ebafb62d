/* scheduler.h — the per-group scheduler: continuous batching over one model.
 *
 * One scheduler serves one worker group. Any thread may hand it requests
 * (aw_sched_submit) and cancellations (aw_sched_cancel) through a bounded
 * lock-free multi-producer queue; the group leader calls aw_sched_step() in
 * a loop, and each step:
 *
 *   1. drains the queue into two FCFS waiting lists (priority classes);
 *   2. expires idle sessions past their TTL;
 *   3. finishes cancelled requests (CANCELLED) and requests whose deadline
 *      has passed or, for one not yet prefilled, cannot be met by the
 *      estimate from measured per-token costs (DEADLINE, before prefill);
 *   4. plans one batch: every running sequence's next decode token, then
 *      prefill chunks (at most prefill_chunk tokens of one sequence per
 *      step), then admits waiting requests while there are free sequence
 *      slots (max_batch) and tokens (max_batch_tokens) — the higher class
 *      first, but at least one admission in every 'low_share' goes to the
 *      lower class when it waits (no starvation);
 *   5. reserves KV blocks for the batch: when the pool is short it evicts
 *      least-recently-used prefix-cache blocks and idle sessions, defers
 *      admission, and at last preempts the newest sequence of the lowest
 *      class (its KV is dropped; it goes back to the head of its waiting
 *      list and recomputes its prompt and generated tokens later, reusing
 *      whatever the prefix cache still holds);
 *   6. runs one batched forward pass (inference/model.h) on the group's
 *      thread pool and samples every sequence that produced logits with its
 *      own sampler (inference/sample.h);
 *   7. reports every token, and the end of every request, through the
 *      event callback (on the leader's thread).
 *
 * Prefix cache: every full KV block is keyed by a hash of its tokens chained
 * with the key of the block before it, and verified on a hit (tokens and
 * parent compared, so a hash collision never serves wrong K/V). A new
 * request reuses every leading block present (reference-counted; when the
 * whole prompt is cached, its last position is recomputed into a copy of the
 * last block, copy-on-write). Cached blocks no sequence uses are evicted
 * least-recently-used when memory is needed.
 *
 * Fast-forward (constrained decoding): a request whose hook (struct
 * aw_sample_hook, a grammar) has a 'forced' callback is asked, after each
 * sampled token and its event, which tokens the constraint now determines.
 * Those are taken at once, each like a sampled token — its text streamed in
 * its own event, stop strings and max_tokens applied token by token (so a
 * request ends at the same byte as without fast-forward), counted in
 * gen_tokens and forced_tokens — and appended to the history uncomputed: the
 * next step runs the sampled token and the forced run as one chunk of the
 * sequence (K/V written for each position, logits from the last only), so a
 * run of k forced tokens costs one forward pass, not k. A CANCEL or deadline
 * that arrives meanwhile ends the request before that pass; the chunk's
 * blocks go through the prefix cache like any.
 *
 * Sessions: a request with a session id keeps its tokens and blocks after
 * it finishes; the session's next request carries only the new tokens, which
 * are appended to the session's (so only they are prefilled). Idle sessions
 * expire after session_ttl_us, and the least recently used go first when
 * memory or session slots are needed.
 *
 * Nothing here includes DPDK: the dataplane adapts its request objects to
 * struct aw_sched_req and its response rings to the event callback.
 */
#ifndef AW_SCHEDULER_H
#define AW_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "sample.h"

struct aw_model;
struct aw_tok;
struct aw_pool;

#define AW_SCHED_N_PRIO 2 /* priority classes: 0 normal, 1 high */

/* --- agent operations ------------------------------------------------------
 * Besides generation a request may be CLASSIFY or EMBED (the arithmetic is
 * inference/score.h's). Both prefill their prompt like any request (chunked,
 * batched with everyone else's tokens) and end without sampling:
 *   - CLASSIFY: the prompt's blocks go through the prefix cache like a
 *     GENERATE prompt's. When every label is one token, the last prompt
 *     position's hidden state is kept and only the labels' rows of the output
 *     matrix are read. Otherwise that position's full logits give each
 *     label's first token, and the other label tokens run in one batched
 *     forward pass (more when they exceed the batch), one KV sequence per
 *     label forked from the prompt's blocks (copy-on-write; the request's
 *     own sequence serves as one of them); the forks are gone before the
 *     step ends. The END event carries one probability per label.
 *   - EMBED: mean and cls pooling need every pooled position's hidden
 *     state, so their prompts are always computed (never read from the
 *     prefix cache, though their blocks are offered to it); last-token
 *     pooling reuses cached blocks like a GENERATE prompt. The END event
 *     carries the dim-float embedding.
 * Neither kind takes a session id (-EINVAL). */
enum aw_sched_kind {
	AW_SCHED_GENERATE = 0,
	AW_SCHED_CLASSIFY = 1,
	AW_SCHED_EMBED = 2,
};

#define AW_SCHED_MAX_LABELS 256 /* labels of one CLASSIFY request */
#define AW_SCHED_MAX_FORCED 256 /* tokens one fast-forward may take */

/* Why a request ended; the numbers are the wire protocol's finish reasons
 * (enum aw_proto_finish). */
enum aw_sched_finish {
	AW_SCHED_FINISH_STOP = 0,      /* EOS or a stop string */
	AW_SCHED_FINISH_LENGTH = 1,    /* max_tokens or the context */
	AW_SCHED_FINISH_DEADLINE = 2,  /* deadline passed or could not be met */
	AW_SCHED_FINISH_CANCELLED = 3, /* aw_sched_cancel() */
	AW_SCHED_FINISH_ERROR = 4,     /* the session's context overflowed, a forward
					* pass failed, no token allowed */
};

struct aw_sched_config {
	int32_t max_batch;	     /* sequences in flight (KV sequence slots); 0: 16 */
	int32_t max_batch_tokens;    /* tokens per forward pass; 0 or above the model's
				    * max_batch: the model's */
	int32_t prefill_chunk;	     /* most prompt tokens of one sequence per step; 0: 64 */
	int32_t queue_size;	     /* input queue entries, a power of two; 0: 1024 */
	int32_t block_size;	     /* KV positions per block; 0: 16 */
	uint32_t kv_type;	     /* KV rows: AW_TYPE_F32 (0) or AW_TYPE_F16 (as aw-infer) */
	int32_t ctx;		     /* positions per sequence; 0: the model's n_ctx */
	int32_t n_blocks;	     /* KV pool blocks; 0: max_batch * ceil(ctx / block_size) */
	int32_t max_sessions;	     /* session slots; 0: 64 */
	uint64_t session_ttl_us;     /* idle session lifetime; 0: 60 s */
	int32_t low_share;	     /* the lower class gets at least 1 admission in this many
				    * when both wait; 0: 4; 1: strict alternation */
	int no_prefix_cache;	     /* 1: do not share blocks between requests */
	int no_classify_fold;	     /* 1: CLASSIFY's label tokens always in a pass of
				      * their own after the prompt (the comparison for
				      * the fold, see docs/ARCHITECTURE.md) */
	double cost_hint_us_per_tok; /* prefill cost assumed until measured; 0: none
				      * (no request is refused by estimate before the
				      * first measurement) */
	int no_fast_forward;	     /* 1: ignore hooks' 'forced' (every token is sampled
				      * after a forward pass of its own; for comparisons) */
};

/* A request as handed to aw_sched_submit() (everything is copied). */
struct aw_sched_req {
	uint64_t id;	      /* caller's id, echoed in events and used by cancel */
	void *user;	      /* caller's pointer, echoed in events */
	uint64_t session;     /* 0: none */
	int priority;	      /* class: 0 normal, >= 1 high */
	uint64_t deadline_us; /* absolute, aw_sched_now_us() clock; 0: none */
	const int32_t *tokens;
	int32_t n_tokens; /* >= 1 (appended to the session's tokens if any) */
	struct aw_sample_params sample;
	/* --- agent operations (CLASSIFY, EMBED); zero for GENERATE ------------ */
	int kind;		      /* enum aw_sched_kind */
	int32_t n_labels;	      /* CLASSIFY: 1..AW_SCHED_MAX_LABELS */
	const int32_t *const *labels; /* CLASSIFY: (n_labels) token lists (copied) */
	const int32_t *label_lens;    /* CLASSIFY: (n_labels) lengths, each >= 1 */
	int pooling;		      /* EMBED: enum aw_score_pool (inference/score.h) */
	int normalize;		      /* EMBED: 1 = divide by the L2 norm */
	struct aw_sample_hook hook;   /* GENERATE: mask hook (a grammar), copied into the
				       * request's sampler; its ctx must live until the
				       * request's last event; its 'forced', when set, is
				       * called on the leader after each sampled token's
				       * event (fast-forward, above) */
};

/* What the callback receives. A sampled token comes with its text (which may
 * be empty while a stop string or a UTF-8 sequence is pending). The last
 * event of a request has done = 1 and the summary; it carries the last token
 * (token >= 0) when sampling ended the request, otherwise token = -1. */
struct aw_sched_event {
	uint64_t id;
	void *user;
	int32_t token;
	const char *text; /* valid during the callback */
	size_t len;
	int done;
	enum aw_sched_finish finish; /* when done */
	/* summary (when done) */
	uint32_t prompt_tokens; /* tokens prefilled or reused, session's included */
	uint32_t cached_tokens; /* of those, reused from the prefix cache or session */
	uint32_t gen_tokens;	/* tokens generated (sampled or forced) */
	uint32_t forced_tokens; /* of those, forced by the hook (fast-forward) */
	uint32_t preemptions;	/* times the request was preempted */
	uint64_t queue_us;	/* arrival to first admission */
	uint64_t prefill_us;	/* first admission to first token */
	uint64_t decode_us;	/* first token to the end */
	/* CLASSIFY / EMBED result (when done with finish STOP): one probability
	 * per label in request order, or the embedding; valid during the callback */
	const float *values;
	int32_t n_values;
	/* finish ERROR: why, as -errno when known (else 0). -ENOENT: the request
	 * continued a session that was held at submit (its tokens carry only the
	 * new turn) but was evicted or expired before admission; nothing ran, and
	 * the caller should send the whole conversation again. */
	int error;
};

typedef void aw_sched_event_fn(void *ctx, const struct aw_sched_event *ev);

struct aw_sched_stats {
	uint64_t steps;
	uint64_t prefill_tokens;   /* computed prompt positions */
	uint64_t decode_tokens;	   /* computed decode positions */
	uint64_t cached_tokens;	   /* prompt positions reused (cache or session) */
	uint64_t admitted;	   /* admissions (readmissions after preemption too) */
	uint64_t finished[5];	   /* by enum aw_sched_finish */
	uint64_t preempted;	   /* sequences preempted */
	uint64_t deferred;	   /* steps whose admission was deferred for KV */
	uint64_t cache_evicted;	   /* prefix-cache blocks evicted */
	uint64_t sessions_expired; /* by TTL */
	uint64_t sessions_evicted; /* by LRU for memory or slots */
	uint64_t rejected;	   /* submits refused (queue full) */
	uint64_t labels_folded;	   /* CLASSIFY label tokens computed in their prompt's
				    * last pass (the rest: in passes of their own) */
	uint64_t forced_tokens;	   /* tokens emitted by fast-forward (the hook's 'forced') */
	int32_t running;	   /* sequences in flight now */
	int32_t waiting;	   /* requests waiting now */
	int32_t cache_blocks;	   /* blocks held by the prefix cache */
	int32_t sessions;	   /* sessions kept */
	int32_t free_blocks;	   /* free KV blocks */
	int32_t n_blocks;	   /* KV pool size */
	double us_per_tok;	   /* measured prefill cost per token (EWMA) */
	double step_us;		   /* measured time of a step (EWMA) */
};

struct aw_sched;

/* Monotonic microseconds (CLOCK_MONOTONIC), the clock of deadlines. */
uint64_t aw_sched_now_us(void);

/* Create a scheduler over model 'm' (which must outlive it), emitting text
 * through 'tok' (NULL: events carry tokens without text and stop strings
 * never match), running forward passes on 'pool' (NULL: this thread only),
 * reporting through 'fn'(ctx, event). Owns its KV cache. Returns 0 and sets
 * *ret_s, or -EINVAL (a field out of range) or -ENOMEM. */
int aw_sched_new(struct aw_model *m, const struct aw_tok *tok, struct aw_pool *pool,
		 const struct aw_sched_config *c, aw_sched_event_fn *fn, void *ctx,
		 struct aw_sched **ret_s);

/* Finish every request (CANCELLED events), drop sessions and the cache,
 * free everything ('s' may be NULL). */
void aw_sched_free(struct aw_sched *s);

/* Queue a request (any thread). Returns 0, -EINVAL (no tokens, a token out
 * of the vocabulary, bad sampling parameters; for CLASSIFY/EMBED: an unknown
 * kind, no labels or an empty one, a bad pooling, a session id), -E2BIG
 * (prompt, or prompt + a label, does not fit the context), -ENOMEM, or
 * -EAGAIN when the queue is full (answer OVERLOADED). */
int aw_sched_submit(struct aw_sched *s, const struct aw_sched_req *r);

/* Ask (any thread) that request 'id' end with CANCELLED at the next step.
 * Returns 0, -ENOMEM or -EAGAIN (queue full). Unknown ids are ignored. */
int aw_sched_cancel(struct aw_sched *s, uint64_t id);

/* Run one step at time 'now_us' (aw_sched_now_us() clock; tests pass their
 * own). Returns the number of requests running or waiting afterwards (0 when
 * idle and nothing was queued before the step). */
int aw_sched_step(struct aw_sched *s, uint64_t now_us);

/* Drop the prefix cache and every idle session (their blocks return to the
 * pool). */
void aw_sched_flush(struct aw_sched *s);

/* Live model swap (loader): run on model 'm' and tokenizer 'tok' from now
 * on, keeping the KV pool (allocating a new one costs seconds on a large
 * pool). Only while idle (nothing running or waiting: the caller stops
 * submitting and steps until aw_sched_step() returns 0), and only for a
 * model of the same KV and logits shape (layers, K/V width, vocabulary,
 * width) taking at least max_batch_tokens per pass. Drops the prefix cache
 * and every session (their K/V came from the old model). Returns 0, -EBUSY
 * (not idle) or -EINVAL (another shape: make a new scheduler). */
int aw_sched_set_model(struct aw_sched *s, struct aw_model *m, const struct aw_tok *tok);

void aw_sched_get_stats(const struct aw_sched *s, struct aw_sched_stats *st);

/* KV blocks of 'block_size' positions (0: 16) and rows of 'kv_type' (F32 or
 * F16) that fit in 'bytes' for model 'm' (the config's [group] kv_cache):
 * the n_blocks to ask for. Returns 0 when not even one fits; at most
 * INT32_MAX. */
int32_t aw_sched_blocks_for_bytes(const struct aw_model *m, int32_t block_size, uint32_t kv_type,
				  uint64_t bytes);

/* --- for the dataplane's worker groups --- */

/* 1 when session 'id' is held (kept from a finished turn, or being built by
 * a request of it that runs or waits), so that a new request of it continues
 * the session's tokens; 0 otherwise. Leader thread only (like step). */
int aw_sched_has_session(const struct aw_sched *s, uint64_t id);

#endif
