/* dispatch.h — requests from the dataplane to worker groups, and the workers.
 *
 * A worker group is a set of lcores on one NUMA node. Its request ring and
 * its pool of request objects are created on that node (socket id). The
 * dataplane lcore that completed a request copies it once into a request
 * object (aw_dispatch_submit) and enqueues it on the least-loaded group's
 * ring (queue depth plus requests running); a full ring or an empty pool is
 * reported at once so the dataplane answers OVERLOADED — never a silent
 * drop. Ownership moves with the pointer: the worker that dequeues a request
 * frees it.
 *
 * With an engine that provides a model per group (engine.h group_model, the
 * real model), each group runs the continuous-batching scheduler
 * (inference/scheduler.h): the leader lcore dequeues requests from the
 * group's ring, parses and tokenizes them, submits them to the scheduler,
 * and calls aw_sched_step() in a loop; every step is one batched forward pass
 * on the group's thread pool (inference/pool.h: one thread pinned on each of
 * the group's CPUs, the leader as thread 0, each taking a slice of every
 * matrix product). The scheduler's events become DATA and END replies on the
 * response ring of the dataplane lcore that owns the client's flow.
 * Requests that carry a session id go to the group chosen by the session id
 * (so a session's KV blocks are found again), the others to the least
 * loaded group. Idle leaders back off as configured (poll, yield, sleep) and
 * idle pool threads sleep on a futex after a short spin.
 *
 * With an engine that has no group model (the echo test engine), the leader
 * runs one request at a time through the engine's generate: it parses the
 * body, streams DATA replies as the engine emits text, and ends with END (or
 * ERROR). Cancellation (CANCEL, shutdown) is checked between emitted tokens.
 * See docs/ARCHITECTURE.md, "dispatch and worker groups".
 */
#ifndef AW_DISPATCH_H
#define AW_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "dataplane.h"
#include "engine.h"
#include "hist.h"

#define AW_DISPATCH_MAX_CPUS 64

struct aw_dispatch_group_params {
	unsigned lcore;	      /* DPDK lcore id of the group's leader */
	int socket;	      /* NUMA node of the ring and the request pool */
	unsigned ring_size;   /* entries of the group's request ring */
	unsigned queue_depth; /* requests that may wait (<= ring_size; 0: ring_size) */
	unsigned max_request; /* bytes of the largest request body held */
	enum aw_dp_idle idle; /* what the leader does with no request waiting */
	/* scheduler (engines with group_model) */
	unsigned n_cpus;		/* CPUs of the group (the leader's first) */
	int cpus[AW_DISPATCH_MAX_CPUS]; /* CPU numbers: one pool thread pinned on each */
	uint32_t max_batch;		/* sequences in flight */
	uint32_t max_batch_tokens;	/* tokens per forward pass */
	uint32_t prefill_chunk;		/* prompt tokens of one sequence per step */
	uint64_t kv_cache;		/* bytes of KV blocks (F16 rows) */
	uint32_t kv_block_tokens;	/* positions per KV block */
};

struct aw_dispatch_params {
	unsigned n_groups;
	struct aw_dispatch_group_params group[AW_DP_MAX_GROUPS];
	uint32_t max_new_tokens;      /* default and cap for max_new_tokens */
	uint32_t default_deadline_us; /* 0 = none */
	uint32_t max_prompt_tokens;   /* longer prompts: ERROR TOO_LONG */
	uint32_t max_sessions;	      /* sessions kept per group; 0: no sessions */
	uint64_t session_ttl_us;      /* idle session lifetime */
};

/* Per-group counters, read with relaxed atomics. */
struct aw_dispatch_group_stats {
	uint64_t enqueued;  /* requests accepted */
	uint64_t completed; /* requests that sent their terminal */
	uint64_t overloaded;
	uint64_t bad; /* BAD_REQUEST answered by the worker */
	uint64_t cancelled;
	uint64_t deadline;
	uint64_t tokens_in;  /* prompt tokens */
	uint64_t tokens_out; /* generated tokens */
	uint64_t busy_us;    /* time spent running requests */
	uint32_t queued;     /* requests waiting now */
	uint32_t running;    /* requests running now */
	/* the scheduler's counters (scheduler.h struct aw_sched_stats), as of
	 * its last step; 'sched' is 0 for a group without one */
	int sched;
	uint64_t steps, prefill_tokens, decode_tokens, cached_tokens, admitted, preempted, deferred,
		cache_evicted, sessions_expired, sessions_evicted;
	uint64_t forced_tokens; /* tokens emitted by fast-forward (constrained decoding) */
	uint32_t sched_running, sched_waiting, cache_blocks, sessions, free_blocks, n_blocks;
	uint32_t pool_threads; /* threads of the group's pool */
};

/* How a request ended, for /metrics: END's finish reasons, then the
 * ERROR replies a worker sends. */
enum aw_dispatch_outcome {
	AW_DISPATCH_OUT_STOP = 0,	 /* END finish=stop */
	AW_DISPATCH_OUT_LENGTH = 1,	 /* END finish=length */
	AW_DISPATCH_OUT_DEADLINE = 2,	 /* END finish=deadline, or ERROR deadline */
	AW_DISPATCH_OUT_CANCELLED = 3,	 /* END finish=cancelled */
	AW_DISPATCH_OUT_ERROR = 4,	 /* END finish=error, or another ERROR code */
	AW_DISPATCH_OUT_BAD_REQUEST = 5, /* ERROR bad_request / too_long */
	AW_DISPATCH_OUT_UNSUPPORTED = 6, /* ERROR unsupported */
	AW_DISPATCH_OUT_INTERNAL = 7,	 /* ERROR internal */
	AW_DISPATCH_OUT__COUNT
};

/* Request kinds a group serves: index = message type - AW_PROTO_GENERATE
 * (generate, classify, embed). */
#define AW_DISPATCH_OPS 3

/* Per-group observations for /metrics. Only the group's leader writes them
 * (hist.h: one writer, relaxed stores); read them with
 * aw_dispatch_group_obs(). Latencies are microseconds on aw_dp_now_us()'s
 * clock, from the moment the dataplane completed the request. Whoever runs
 * requests for a group (the one-at-a-time worker, the scheduler's step
 * loop) records: queue wait when a request starts, TTFT at its first token,
 * the gap before each later token, the end-to-end time and the outcome at its
 * terminal reply, and per forward pass the batch's tokens and sequences and
 * the KV cache's state. */
struct aw_dispatch_group_obs {
	struct aw_hist queue_us;     /* completed -> first work on it */
	struct aw_hist ttft_us;	     /* completed -> first token sent */
	struct aw_hist itl_us;	     /* gap between two tokens of one request */
	struct aw_hist e2e_us;	     /* completed -> terminal reply sent */
	struct aw_hist batch_tokens; /* positions per forward pass */
	struct aw_hist batch_seqs;   /* sequences per forward pass */
	uint64_t done[AW_DISPATCH_OPS][AW_DISPATCH_OUT__COUNT]; /* terminals by op, outcome */
	uint64_t kv_blocks_used;				/* gauge, last step */
	uint64_t kv_blocks_total;				/* gauge */
	uint64_t prefix_lookup_tokens; /* prompt tokens looked up in the prefix cache */
	uint64_t prefix_hit_tokens;    /* of which found there (not recomputed) */
};

const char *aw_dispatch_outcome_name(enum aw_dispatch_outcome o);

struct aw_dispatch;

/* Create the groups' rings and pools. 'engine' is shared by every group and
 * must outlive the dispatcher. Returns 0 and sets *ret_d, or -errno. */
int aw_dispatch_new(const struct aw_dispatch_params *p, struct aw_dp *dp,
		    const struct aw_engine *engine, struct aw_dispatch **ret_d);

/* Launch the worker lcores. */
int aw_dispatch_start(struct aw_dispatch *d);

/* Called on a dataplane lcore with a complete request message (GENERATE,
 * CLASSIFY, EMBED). Copies it into a request object. Returns 0 (the request
 * now belongs to a group), -ENOBUFS (every ring or pool full: answer
 * OVERLOADED) or -EMSGSIZE (larger than the request objects). */
int aw_dispatch_submit(struct aw_dispatch *d, const struct aw_dp_flow *flow, uint8_t type,
		       const void *msg, size_t len, uint64_t now_us);

/* Ask the groups to cancel (client, request id); the request's stream ends
 * with END finish=cancelled at its next step. Called on dataplane lcores. */
void aw_dispatch_cancel(struct aw_dispatch *d, const struct aw_dp_flow *flow);

/* Shutdown: every queued and running request ends with a final message
 * (END cancelled); then the workers stop. Waits for them. */
void aw_dispatch_stop(struct aw_dispatch *d);

/* Accepts NULL. */
void aw_dispatch_free(struct aw_dispatch *d);

/* Change the request limits in place (config reload): requests that start
 * afterwards see them. Safe from any thread. */
void aw_dispatch_set_limits(struct aw_dispatch *d, uint32_t max_new_tokens,
			    uint32_t default_deadline_us);

unsigned aw_dispatch_n_groups(const struct aw_dispatch *d);
/* Group 'g's heartbeat: +1 per iteration of its worker's loop and per token
 * it emits (0 when out of range). The daemon's watchdog checks that it moves. */
uint64_t aw_dispatch_heartbeat(const struct aw_dispatch *d, unsigned g);
void aw_dispatch_group_stats(const struct aw_dispatch *d, unsigned g,
			     struct aw_dispatch_group_stats *ret);
/* Copy group 'g's observations (any thread). */
void aw_dispatch_group_obs(const struct aw_dispatch *d, unsigned g,
			   struct aw_dispatch_group_obs *ret);
const struct aw_dispatch_group_params *aw_dispatch_group_params(const struct aw_dispatch *d,
								unsigned g);

#endif
