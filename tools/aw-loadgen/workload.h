/* workload.h — aw-loadgen's workload file: what each request looks like.
 *
 * A text file of "key = value" lines; '#' starts a comment; blank lines are
 * ignored; every key at most once; unknown keys are errors. The format and
 * every key are documented in docs/LOADGEN.md. Distributions are written
 * "fixed:N", "uniform:LO:HI", "exp:MEAN" or "normal:MEAN:SD" (samples are
 * rounded and clamped to [1, 1000000]).
 */
#ifndef AW_WORKLOAD_H
#define AW_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "arrival.h"
#include "err.h"

enum aw_wl_op {
	AW_WL_GENERATE = 0,
	AW_WL_CLASSIFY,
	AW_WL_EMBED,
	AW_WL_PING,
	AW_WL_STATS,
	AW_WL_TOOLS, /* GENERATE with chat MESSAGES and TOOLS */
	AW_WL_OPS,
};

enum aw_wl_dist_kind { AW_WL_FIXED, AW_WL_UNIFORM, AW_WL_EXP, AW_WL_NORMAL };

struct aw_wl_dist {
	enum aw_wl_dist_kind kind;
	double a, b; /* fixed: a; uniform: [a, b]; exp: mean a; normal: mean a, sd b */
};

struct aw_workload {
	double weight[AW_WL_OPS];	 /* op mix (relative weights, sum > 0) */
	struct aw_wl_dist prompt_tokens; /* prompt length in tokens, after the prefix */
	struct aw_wl_dist max_new_tokens;
	double chars_per_token; /* synthetic text: characters per token */
	double shared_prefix;	/* fraction of requests that start with the prefix */
	uint32_t prefix_tokens; /* length of the shared prefix */
	uint32_t sessions;	/* distinct session ids in use (0 = none) */
	double session_reuse;	/* probability of reusing one of them */
	uint32_t deadline_us;	/* per request (0 = none) */
	uint32_t labels;	/* CLASSIFY labels */
	double temperature;
	uint32_t ping_bytes; /* PING payload */
	/* agent operations */
	uint32_t tools;	     /* "tools" op: tool definitions per request */
	uint8_t tool_choice; /* enum aw_proto_tool_choice (auto, none, required) */
	uint8_t pooling;     /* EMBED: enum aw_proto_pooling */
	uint8_t normalize;   /* EMBED: L2-normalise */
	/* built by aw_workload_prepare() */
	char *prefix; /* shared prefix text */
	size_t prefix_len;
	uint64_t next_session; /* fresh session ids */
};

/* Defaults: mix = ping:1, prompt_tokens fixed:64, max_new_tokens fixed:16,
 * chars_per_token 4, no prefix, no sessions, labels 4, ping_bytes 64. */
void aw_workload_default(struct aw_workload *w);

/* Parse 'text' (len bytes; 'name' names it in messages) over the defaults.
 * Returns 0, or -EINVAL with err naming the line and key. */
int aw_workload_parse(struct aw_workload *w, const char *text, size_t len, const char *name,
		      struct aw_err *err);

/* Read and parse a file. -errno on read errors. */
int aw_workload_load(struct aw_workload *w, const char *path, struct aw_err *err);

/* Build the shared prefix text (call once after parsing). -ENOMEM. */
int aw_workload_prepare(struct aw_workload *w);
void aw_workload_fini(struct aw_workload *w);

/* Parse a distribution ("fixed:N", ...). Returns 0 or -EINVAL. */
int aw_wl_dist_parse(const char *s, struct aw_wl_dist *ret);
uint32_t aw_wl_dist_sample(const struct aw_wl_dist *d, struct aw_rng *r);

/* One request of the workload. */
struct aw_wl_req {
	enum aw_wl_op op;
	unsigned type;	     /* enum aw_proto_type */
	uint64_t session_id; /* 0 = none */
	uint8_t *body;	     /* encoded body / PING payload (points into the caller's buffer) */
	size_t len;
	/* the same request in plain fields (for other servers' APIs, e.g. the
	 * HTTP transport); set for generate/classify/embed; 'prompt' is valid
	 * until the next call */
	const char *prompt; /* prompt text (prefix included), prompt_len bytes */
	size_t prompt_len;
	uint32_t max_new_tokens;
	float temperature;
	uint64_t seed;
};

/* Draw the next request into 'buf' (cap bytes). Returns 0 or -ENOSPC. */
int aw_workload_next(struct aw_workload *w, struct aw_rng *r, uint8_t *buf, size_t cap,
		     struct aw_wl_req *ret);

const char *aw_wl_op_name(unsigned op);

#endif
