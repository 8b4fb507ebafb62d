/* scheduler.c — continuous batching for one worker group (see scheduler.h).
 *
 * Data structures, all owned by the leader thread except the input queue:
 *   - the input queue: a bounded multi-producer ring of message pointers
 *     (each cell has a sequence number; a producer claims a cell with a CAS
 *     on the tail, writes the pointer, then publishes the cell's sequence);
 *   - struct rq: one request, from submit to its last event; it holds its
 *     token history (prompt, then sampled tokens), its sampler and the KV
 *     sequence slot it runs in;
 *   - two FIFO waiting lists (one per class) and the running array, kept in
 *     (class descending, admission ascending) order, so planning serves
 *     the oldest of the highest class first and preemption takes from the end;
 *   - the prefix cache: per KV block, its chained key, a serial number, the
 *     serial of its parent block, its tokens, a hash-bucket link and an LRU
 *     link; the cache holds one reference on each cached block;
 *   - sessions: token history plus block references, LRU by last use.
 */
#include "scheduler.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "model.h"
#include "quant.h"
#include "score.h"
#include "tok.h"

enum { MSG_REQ = 0, MSG_CANCEL = 1 };

struct rq {
	int kind;
	struct rq *next; /* waiting list */
	uint64_t id;
	void *user;
	uint64_t session;
	int prio;
	uint64_t deadline;
	int32_t *tok; /* history */
	int32_t n_tok, cap_tok;
	int32_t n_new;	/* tokens handed in (for a session request, appended at admission) */
	int32_t n_done; /* positions with K/V */
	int32_t slot;	/* KV sequence, -1 when not running */
	int32_t n_gen;
	int32_t n_ff;		    /* of n_gen, tokens emitted by fast-forward */
	int32_t ff_lo, ff_hi;	    /* positions of the last forced run and the token sampled
				 * before it, while not yet computed (statistics) */
	struct aw_sample_hook hook; /* constrained decoding (its 'forced' drives fast-forward) */
	int32_t cached;
	int32_t n_hashed; /* leading full blocks already offered to the cache */
	uint64_t hash;	  /* chained key of block n_hashed - 1 */
	uint64_t parent;  /* serial of that block in the cache, 0 if none */
	uint32_t preemptions;
	int started; /* admitted at least once */
	int cancelled;
	int sess_joined; /* session tokens prepended (or none to prepend) */
	int sess_owner;	 /* holds the session's entry busy */
	int sess_held;	 /* the session was held at submit: its history must still
			  * be there at admission (the caller left it out) */
	int err;	 /* cause of an ERROR finish (-errno), for the event */
	uint64_t admit_no;
	uint64_t t_arrive, t_admit, t_first;
	struct aw_sampler *smp;
	struct aw_tok_stream ts;
	/* agent operations (enum aw_sched_kind) */
	int op;
	int32_t n_labels;
	int32_t *lab_tok; /* labels' tokens, concatenated */
	int32_t *lab_off; /* (n_labels + 1) offsets into lab_tok */
	int multi;	  /* CLASSIFY: some label has several tokens */
	int fold;	  /* CLASSIFY: label tokens ride in this step's batch */
	int32_t fold_row; /* CLASSIFY: their first logit row in this step */
	int pooling, normalize;
	float *vals; /* result: probabilities or the embedding */
	double *lp;  /* CLASSIFY: (n_labels) label log-probabilities so far */
	int32_t n_vals;
	int32_t n_pooled; /* EMBED: hidden states summed into vals */
};

struct lane;

struct session {
	uint64_t id; /* 0: free slot */
	int32_t *tok;
	int32_t n_tok;
	int32_t kv_len;
	int32_t *blocks;
	int32_t n_blocks;
	uint64_t last_used;
	int busy; /* a request of it is running or waiting to take it */
};

struct cell {
	_Atomic size_t seq;
	struct rq *msg;
};

struct aw_sched {
	struct aw_sched_config c;
	struct aw_model *m;
	const struct aw_tok *tok;
	struct aw_pool *pool;
	struct aw_kv *kv;
	aw_sched_event_fn *fn;
	void *fn_ctx;
	int32_t n_vocab, B, max_tok;

	/* input queue */
	struct cell *cells;
	size_t qmask;
	_Atomic size_t qhead, qtail;

	struct rq *wq_head[AW_SCHED_N_PRIO], *wq_tail[AW_SCHED_N_PRIO];
	int32_t n_waiting;
	int hi_streak;
	struct rq **run; /* (max_batch) */
	int32_t n_run;
	int32_t *free_slots, n_free_slots;
	uint64_t admit_no;

	/* batch */
	int32_t *b_tok, *b_pos, *b_seq;
	int8_t *b_logits;
	struct rq **b_rq; /* (max_batch) sequences in the batch, in order */
	int32_t *b_cnt;	  /* tokens of each */
	float *logits;	  /* (max_batch, n_vocab) */
	/* agent operations */
	float *hidden;	      /* (max_batch_tokens, dim) hidden states */
	int32_t *b_nl, *b_nh; /* (max_batch) logit / hidden rows of each sequence */
	struct rq **pend;     /* (max_batch) CLASSIFY requests awaiting their label pass */
	int32_t n_pend;
	struct lane *lanes; /* (max_batch) label-pass lanes */
	int32_t logit_rows; /* rows 'logits' holds (grown for folded labels) */
	int32_t *fold_slot; /* (max_batch) label sequences forked for this step */
	int32_t n_fold_slot;
	struct aw_model_mirror *mirror; /* (max_batch) prompt K/V copied into them */
	int32_t n_mirror, n_fold_tok;
	int32_t dim;
	char *piece;
	size_t piece_cap;
	int32_t *ff; /* (AW_SCHED_MAX_FORCED) fast-forward tokens of one call */

	/* prefix cache, indexed by block */
	uint64_t *c_hash, *c_serial, *c_parent;
	int32_t *c_tok;
	int32_t *c_next; /* bucket chain */
	int32_t *c_prev_lru, *c_next_lru;
	int32_t lru_head, lru_tail; /* most / least recently used */
	int32_t *bucket;
	uint32_t bmask;
	uint64_t serial;
	int32_t n_cached;

	struct session *sess;
	int32_t n_sess;

	struct aw_sched_stats st;
};

uint64_t aw_sched_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* --- input queue -------------------------------------------------------- */

static int q_push(struct aw_sched *s, struct rq *msg)
{
	size_t pos = atomic_load_explicit(&s->qtail, memory_order_relaxed);

	for (;;) {
		struct cell *c = &s->cells[pos & s->qmask];
		size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
		intptr_t dif = (intptr_t)seq - (intptr_t)pos;

		if (dif == 0) {
			if (atomic_compare_exchange_weak_explicit(&s->qtail, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				c->msg = msg;
				atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
				return 0;
			}
		} else if (dif < 0) {
			return -EAGAIN;
		} else {
			pos = atomic_load_explicit(&s->qtail, memory_order_relaxed);
		}
	}
}

/* single consumer */
static struct rq *q_pop(struct aw_sched *s)
{
	size_t pos = atomic_load_explicit(&s->qhead, memory_order_relaxed);
	struct cell *c = &s->cells[pos & s->qmask];
	size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);

	if (seq != pos + 1)
		return NULL;
	struct rq *msg = c->msg;
	atomic_store_explicit(&s->qhead, pos + 1, memory_order_relaxed);
	atomic_store_explicit(&c->seq, pos + s->qmask + 1, memory_order_release);
	return msg;
}

/* --- requests ----------------------------------------------------------- */

static void rq_free(struct rq *r)
{
	if (!r)
		return;
	aw_sample_free(r->smp);
	free(r->tok);
	free(r->lab_tok);
	free(r->lab_off);
	free(r->vals);
	free(r->lp);
	free(r);
}

static int rq_reserve(struct rq *r, int32_t n)
{
	if (n <= r->cap_tok)
		return 0;
	int32_t cap = r->cap_tok ? r->cap_tok : 16;
	while (cap < n)
		cap *= 2;
	int32_t *t = realloc(r->tok, sizeof(int32_t) * (size_t)cap);
	if (!t)
		return -ENOMEM;
	r->tok = t;
	r->cap_tok = cap;
	return 0;
}

static void emit_end(struct aw_sched *s, struct rq *r, enum aw_sched_finish f, int32_t token,
		     const char *text, size_t len, uint64_t now)
{
	struct aw_sched_event ev = {
		.id = r->id,
		.user = r->user,
		.token = token,
		.text = text ? text : "",
		.len = len,
		.done = 1,
		.finish = f,
		.prompt_tokens = (uint32_t)(r->n_tok - r->n_gen),
		.cached_tokens = (uint32_t)r->cached,
		.gen_tokens = (uint32_t)r->n_gen,
		.forced_tokens = (uint32_t)r->n_ff,
		.preemptions = r->preemptions,
		.error = f == AW_SCHED_FINISH_ERROR ? r->err : 0,
	};
	if (r->op != AW_SCHED_GENERATE && f == AW_SCHED_FINISH_STOP) {
		ev.values = r->vals;
		ev.n_values = r->n_vals;
	}
	if (r->started) {
		ev.queue_us = r->t_admit - r->t_arrive;
		if (r->t_first) {
			ev.prefill_us = r->t_first - r->t_admit;
			ev.decode_us = now > r->t_first ? now - r->t_first : 0;
		}
	} else {
		ev.queue_us = now > r->t_arrive ? now - r->t_arrive : 0;
	}
	s->st.finished[f]++;
	s->fn(s->fn_ctx, &ev);
}

/* --- prefix cache -------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static uint64_t block_key(uint64_t prev, const int32_t *t, int32_t n)
{
	uint64_t h = mix(prev, 0x243f6a8885a308d3ull);

	for (int32_t i = 0; i < n; i++)
		h = mix(h, (uint32_t)t[i]);
	return h;
}

static void lru_unlink(struct aw_sched *s, int32_t b)
{
	int32_t p = s->c_prev_lru[b], n = s->c_next_lru[b];

	if (p >= 0)
		s->c_next_lru[p] = n;
	else
		s->lru_head = n;
	if (n >= 0)
		s->c_prev_lru[n] = p;
	else
		s->lru_tail = p;
	s->c_prev_lru[b] = s->c_next_lru[b] = -1;
}

static void lru_front(struct aw_sched *s, int32_t b)
{
	s->c_prev_lru[b] = -1;
	s->c_next_lru[b] = s->lru_head;
	if (s->lru_head >= 0)
		s->c_prev_lru[s->lru_head] = b;
	s->lru_head = b;
	if (s->lru_tail < 0)
		s->lru_tail = b;
}

/* cached block with this key, parent and tokens, or -1 */
static int32_t cache_find(struct aw_sched *s, uint64_t h, uint64_t parent, const int32_t *t)
{
	for (int32_t b = s->bucket[h & s->bmask]; b >= 0; b = s->c_next[b])
		if (s->c_hash[b] == h && s->c_parent[b] == parent &&
		    memcmp(s->c_tok + (size_t)b * (size_t)s->B, t,
			   sizeof(int32_t) * (size_t)s->B) == 0)
			return b;
	return -1;
}

static void cache_insert(struct aw_sched *s, int32_t b, uint64_t h, uint64_t parent,
			 const int32_t *t)
{
	if (aw_kv_block_ref(s->kv, b) < 0)
		return;
	s->c_hash[b] = h;
	s->c_serial[b] = ++s->serial;
	s->c_parent[b] = parent;
	memcpy(s->c_tok + (size_t)b * (size_t)s->B, t, sizeof(int32_t) * (size_t)s->B);
	s->c_next[b] = s->bucket[h & s->bmask];
	s->bucket[h & s->bmask] = b;
	lru_front(s, b);
	s->n_cached++;
}

static void cache_remove(struct aw_sched *s, int32_t b)
{
	int32_t *pp = &s->bucket[s->c_hash[b] & s->bmask];

	while (*pp != b)
		pp = &s->c_next[*pp];
	*pp = s->c_next[b];
	s->c_next[b] = -1;
	lru_unlink(s, b);
	s->c_serial[b] = 0;
	s->n_cached--;
	aw_kv_block_unref(s->kv, b);
}

/* Offer the newly full blocks of 'r' to the cache. */
static void cache_offer(struct aw_sched *s, struct rq *r)
{
	const int32_t full = r->n_done / s->B;
	const int32_t *tab = aw_kv_seq_blocks(s->kv, r->slot);

	while (r->n_hashed < full) {
		const int32_t i = r->n_hashed;
		const int32_t *t = r->tok + (size_t)i * (size_t)s->B;
		const uint64_t h = block_key(r->hash, t, s->B);
		int32_t b = tab[i];

		if (s->c_serial[b] == 0) {
			int32_t o = cache_find(s, h, r->parent, t);
			if (o >= 0)
				b = o; /* same content computed by another request */
			else if (!s->c.no_prefix_cache)
				cache_insert(s, b, h, r->parent, t);
		}
		r->parent = s->c_serial[b]; /* 0 when not cached: children never match */
		r->hash = h;
		r->n_hashed++;
	}
}

/* Leading cached blocks of t[0..n): fills blocks[], returns their count, and
 * the chain state after them. */
static int32_t cache_match(struct aw_sched *s, const int32_t *t, int32_t n, int32_t *blocks,
			   uint64_t *ret_hash, uint64_t *ret_parent)
{
	uint64_t h = 0, parent = 0;
	int32_t k = 0;

	if (s->c.no_prefix_cache)
		return 0;
	while ((k + 1) * s->B <= n) {
		const uint64_t nh = block_key(h, t + (size_t)k * (size_t)s->B, s->B);
		const int32_t b = cache_find(s, nh, parent, t + (size_t)k * (size_t)s->B);

		if (b < 0)
			break;
		lru_unlink(s, b);
		lru_front(s, b);
		blocks[k++] = b;
		h = nh;
		parent = s->c_serial[b];
	}
	*ret_hash = h;
	*ret_parent = parent;
	return k;
}

/* --- sessions ------------------------------------------------------------ */

static struct session *sess_find(struct aw_sched *s, uint64_t id)
{
	for (int32_t i = 0; i < s->c.max_sessions; i++)
		if (s->sess[i].id == id && id)
			return &s->sess[i];
	return NULL;
}

static void sess_drop(struct aw_sched *s, struct session *x)
{
	for (int32_t i = 0; i < x->n_blocks; i++)
		aw_kv_block_unref(s->kv, x->blocks[i]);
	free(x->blocks);
	free(x->tok);
	memset(x, 0, sizeof(*x));
	s->n_sess--;
}

/* least recently used idle session, or NULL */
static struct session *sess_lru(struct aw_sched *s)
{
	struct session *best = NULL;

	for (int32_t i = 0; i < s->c.max_sessions; i++) {
		struct session *x = &s->sess[i];
		if (x->id && !x->busy && (!best || x->last_used < best->last_used))
			best = x;
	}
	return best;
}

/* A request that held its session busy ends without a new turn: the
 * session (whose blocks it had taken) is gone. */
static void sess_disown(struct aw_sched *s, struct rq *r)
{
	struct session *x = r->sess_owner ? sess_find(s, r->session) : NULL;

	if (x && x->busy)
		sess_drop(s, x);
	r->sess_owner = 0;
}

/* Keep the history and blocks of finished request 'r' as its session. */
static void sess_save(struct aw_sched *s, struct rq *r, uint64_t now)
{
	struct session *x = sess_find(s, r->session);
	const int32_t nb = aw_kv_seq_n_blocks(s->kv, r->slot);
	const int32_t kv_len = aw_kv_seq_len(s->kv, r->slot);

	if (x && (!x->busy || r->sess_owner)) {
		sess_drop(s, x); /* the previous turn, or r's placeholder */
		x = NULL;
	} else if (x) {
		return; /* another request of the session holds it */
	}
	r->sess_owner = 0;
	for (int32_t i = 0; i < s->c.max_sessions && !x; i++)
		if (!s->sess[i].id)
			x = &s->sess[i];
	if (!x) {
		x = sess_lru(s);
		if (!x)
			return;
		sess_drop(s, x);
		s->st.sessions_evicted++;
	}
	const int32_t keep = (kv_len + s->B - 1) / s->B;
	x->tok = malloc(sizeof(int32_t) * (size_t)(r->n_tok ? r->n_tok : 1));
	x->blocks = malloc(sizeof(int32_t) * (size_t)(keep ? keep : 1));
	if (!x->tok || !x->blocks || keep > nb) {
		free(x->tok);
		free(x->blocks);
		x->tok = NULL;
		x->blocks = NULL;
		return;
	}
	memcpy(x->tok, r->tok, sizeof(int32_t) * (size_t)r->n_tok);
	x->n_tok = r->n_tok;
	x->kv_len = kv_len;
	const int32_t *tab = aw_kv_seq_blocks(s->kv, r->slot);
	for (int32_t i = 0; i < keep; i++) {
		x->blocks[i] = tab[i];
		aw_kv_block_ref(s->kv, tab[i]);
	}
	x->n_blocks = keep;
	x->id = r->session;
	x->last_used = now;
	x->busy = 0;
	s->n_sess++;
}

/* --- memory ---------------------------------------------------------------- */

/* Free at least 'need' blocks by evicting unused cache blocks (LRU first),
 * then idle sessions (LRU first). Returns 1 when enough are free. */
static int make_room(struct aw_sched *s, int32_t need)
{
	while (aw_kv_free_blocks(s->kv) < need) {
		int32_t b = s->lru_tail;

		while (b >= 0 && aw_kv_block_refs(s->kv, b) != 1)
			b = s->c_prev_lru[b];
		if (b >= 0) {
			cache_remove(s, b);
			s->st.cache_evicted++;
			continue;
		}
		struct session *x = sess_lru(s);
		if (!x)
			return 0;
		sess_drop(s, x);
		s->st.sessions_evicted++;
	}
	return 1;
}

/* Blocks aw_kv_seq_reserve(seq, n_pos) would take. */
static int32_t blocks_needed(struct aw_sched *s, int32_t seq, int32_t n_pos)
{
	const int32_t nt = aw_kv_seq_n_blocks(s->kv, seq);
	const int32_t *tab = aw_kv_seq_blocks(s->kv, seq);
	const int32_t need = (n_pos + s->B - 1) / s->B;
	int32_t want = need > nt ? need - nt : 0;

	for (int32_t i = aw_kv_seq_len(s->kv, seq) / s->B; i < nt && i < need; i++)
		if (aw_kv_block_refs(s->kv, tab[i]) > 1)
			want++;
	return want;
}

/* Reserve positions [0, n_pos) of seq, evicting cache/sessions if needed. */
static int reserve(struct aw_sched *s, int32_t seq, int32_t n_pos)
{
	if (!make_room(s, blocks_needed(s, seq, n_pos)))
		return -ENOSPC;
	return aw_kv_seq_reserve(s->kv, seq, n_pos);
}

/* --- running set ---------------------------------------------------------- */

static void wq_push_back(struct aw_sched *s, struct rq *r)
{
	r->next = NULL;
	if (s->wq_tail[r->prio])
		s->wq_tail[r->prio]->next = r;
	else
		s->wq_head[r->prio] = r;
	s->wq_tail[r->prio] = r;
	s->n_waiting++;
}

static void wq_push_front(struct aw_sched *s, struct rq *r)
{
	r->next = s->wq_head[r->prio];
	s->wq_head[r->prio] = r;
	if (!s->wq_tail[r->prio])
		s->wq_tail[r->prio] = r;
	s->n_waiting++;
}

static void wq_remove(struct aw_sched *s, struct rq *r, struct rq *prev)
{
	if (prev)
		prev->next = r->next;
	else
		s->wq_head[r->prio] = r->next;
	if (s->wq_tail[r->prio] == r)
		s->wq_tail[r->prio] = prev;
	r->next = NULL;
	s->n_waiting--;
}

static void run_remove(struct aw_sched *s, struct rq *r)
{
	for (int32_t i = 0; i < s->n_run; i++)
		if (s->run[i] == r) {
			memmove(&s->run[i], &s->run[i + 1],
				sizeof(*s->run) * (size_t)(s->n_run - i - 1));
			s->n_run--;
			return;
		}
}

static void run_insert(struct aw_sched *s, struct rq *r)
{
	int32_t i = s->n_run;

	while (i > 0 &&
	       (s->run[i - 1]->prio < r->prio ||
		(s->run[i - 1]->prio == r->prio && s->run[i - 1]->admit_no > r->admit_no))) {
		s->run[i] = s->run[i - 1];
		i--;
	}
	s->run[i] = r;
	s->n_run++;
}

static void release_slot(struct aw_sched *s, struct rq *r)
{
	if (r->slot < 0)
		return;
	aw_kv_seq_clear(s->kv, r->slot);
	s->free_slots[s->n_free_slots++] = r->slot;
	r->slot = -1;
}

/* End running request 'r' (removed from the running set by the caller). */
static void finish_running(struct aw_sched *s, struct rq *r, enum aw_sched_finish f, int32_t token,
			   const char *text, size_t len, uint64_t now)
{
	if (r->session && f != AW_SCHED_FINISH_ERROR && f != AW_SCHED_FINISH_CANCELLED)
		sess_save(s, r, now);
	else
		sess_disown(s, r);
	release_slot(s, r);
	emit_end(s, r, f, token, text, len, now);
	rq_free(r);
}

/* Preempt running 'r': drop its K/V, put it at the head of its class. */
static void preempt(struct aw_sched *s, struct rq *r)
{
	run_remove(s, r);
	release_slot(s, r);
	r->n_done = 0;
	r->n_hashed = 0;
	r->hash = 0;
	r->parent = 0;
	r->ff_lo = r->ff_hi = 0;
	r->preemptions++;
	s->st.preempted++;
	if (r->op == AW_SCHED_EMBED) {
		memset(r->vals, 0, sizeof(float) * (size_t)r->n_vals);
		r->n_pooled = 0;
	}
	wq_push_front(s, r);
}

/* --- admission --------------------------------------------------------------- */

/* Estimated microseconds until 'r' (with 'ahead' prompt tokens before it)
 * gets its first token; 0 when nothing was measured. */
static double est_ttft(struct aw_sched *s, int64_t ahead, int32_t own)
{
	double per = s->st.us_per_tok > 0 ? s->st.us_per_tok : s->c.cost_hint_us_per_tok;

	if (per <= 0)
		return 0;
	return per * (double)(ahead + own);
}

/* Join a session's history to 'r' (once, at its first admission). Returns 0,
 * 1 when the session is busy (try later), or -E2BIG. Sets *ret_x. */
static int sess_join(struct aw_sched *s, struct rq *r, struct session **ret_x)
{
	struct session *x = sess_find(s, r->session);

	*ret_x = NULL;
	if (!x) /* evicted or expired while r waited: r's tokens lack the history */
		return r->sess_held ? -ENOENT : 0;
	if (x->busy)
		return 1;
	if (x->n_tok + r->n_tok >= s->c.ctx)
		return -E2BIG;
	if (rq_reserve(r, x->n_tok + r->n_tok) < 0)
		return -ENOMEM;
	memmove(r->tok + x->n_tok, r->tok, sizeof(int32_t) * (size_t)r->n_tok);
	memcpy(r->tok, x->tok, sizeof(int32_t) * (size_t)x->n_tok);
	r->n_tok += x->n_tok;
	*ret_x = x;
	return 0;
}

static void sess_unjoin(struct rq *r, const struct session *x)
{
	if (!x)
		return;
	memmove(r->tok, r->tok + x->n_tok, sizeof(int32_t) * (size_t)(r->n_tok - x->n_tok));
	r->n_tok -= x->n_tok;
}

/* A busy placeholder entry for a session's first turn (so that its next
 * request waits for this one), or NULL when no slot can be had. */
static struct session *sess_place(struct aw_sched *s, uint64_t id, uint64_t now)
{
	struct session *x = NULL;

	for (int32_t i = 0; i < s->c.max_sessions && !x; i++)
		if (!s->sess[i].id)
			x = &s->sess[i];
	if (!x && (x = sess_lru(s)) != NULL) {
		sess_drop(s, x);
		s->st.sessions_evicted++;
	}
	if (!x)
		return NULL;
	x->id = id;
	x->busy = 1;
	x->last_used = now;
	s->n_sess++;
	return x;
}

/* Try to start waiting request 'r' in a free slot: reuse session or cached
 * blocks, reserve its first chunk. Returns the chunk (> 0), 0 when deferred
 * (memory; nothing changed), 1 for busy session (skip), or -errno (finish
 * with ERROR). */
static int admit(struct aw_sched *s, struct rq *r, int32_t budget, int32_t *ret_chunk, uint64_t now)
{
	struct session *x = NULL;
	int32_t *blocks = s->b_cnt + s->c.max_batch; /* scratch after b_cnt */
	int32_t k = 0, n_pos = 0;
	int ret;

	if (r->session && !r->sess_joined) {
		if ((ret = sess_join(s, r, &x)) != 0)
			return ret > 0 ? -EBUSY : ret;
	}
	const int32_t slot = s->free_slots[s->n_free_slots - 1];
	uint64_t h = 0, parent = 0;

	if (x && x->n_blocks > 0) {
		ret = aw_kv_seq_attach(s->kv, slot, x->blocks, x->n_blocks, x->kv_len);
		n_pos = x->kv_len;
	} else {
		/* mean/cls embeddings need every pooled position's hidden state */
		if (!(r->op == AW_SCHED_EMBED && r->pooling != AW_SCORE_POOL_LAST))
			k = cache_match(s, r->tok, r->n_tok, blocks, &h, &parent);
		n_pos = k * s->B;
		if (n_pos >= r->n_tok)
			n_pos = r->n_tok - 1; /* recompute the last position for its logits */
		ret = aw_kv_seq_attach(s->kv, slot, blocks, (n_pos + s->B - 1) / s->B, n_pos);
	}
	if (ret < 0) {
		aw_kv_seq_clear(s->kv, slot);
		sess_unjoin(r, x);
		return ret;
	}
	if (x) {
		/* hand the session's references to the sequence (so its partial
		 * last block is not copied on the first write), and keep the
		 * session from being evicted while it is being taken */
		for (int32_t i = 0; i < x->n_blocks; i++)
			aw_kv_block_unref(s->kv, x->blocks[i]);
		x->busy = 1;
	}
	int32_t pend = r->n_tok - n_pos;
	int32_t chunk = pend < s->c.prefill_chunk ? pend : s->c.prefill_chunk;
	if (chunk > budget)
		chunk = budget;
	if (reserve(s, slot, n_pos + chunk) < 0) {
		if (x) {
			for (int32_t i = 0; i < x->n_blocks; i++)
				aw_kv_block_ref(s->kv, x->blocks[i]);
			x->busy = 0;
		}
		aw_kv_seq_clear(s->kv, slot);
		sess_unjoin(r, x);
		return 0; /* deferred; nothing changed */
	}
	s->n_free_slots--;
	r->slot = slot;
	r->n_done = n_pos;
	if (r->session && !r->sess_joined) {
		r->sess_joined = 1;
		if (!x)
			x = sess_place(s, r->session, now);
		if (x)
			r->sess_owner = 1;
	}
	if (x && x->tok) {
		/* the request now owns the session's blocks */
		free(x->blocks);
		free(x->tok);
		x->blocks = NULL;
		x->tok = NULL;
		x->n_blocks = x->n_tok = 0;
		x->kv_len = 0;
		x->busy = 1;
		r->n_hashed = 0; /* re-offer from the start: chain state unknown */
		r->hash = 0;
		r->parent = 0;
		/* walk the chain over the blocks already full */
		const int32_t full = n_pos / s->B;
		const int32_t *tab = aw_kv_seq_blocks(s->kv, slot);
		for (int32_t i = 0; i < full; i++) {
			const int32_t *t = r->tok + (size_t)i * (size_t)s->B;
			r->hash = block_key(r->hash, t, s->B);
			int32_t b =
				s->c_serial[tab[i]] ? tab[i] : cache_find(s, r->hash, r->parent, t);
			r->parent = b >= 0 ? s->c_serial[b] : 0;
		}
		r->n_hashed = full;
	} else {
		r->n_hashed = k < n_pos / s->B ? k : n_pos / s->B;
		r->hash = h;
		r->parent = parent;
		if (r->n_hashed < k) {
			/* the last matched block is being recomputed: chain stops before it */
			r->hash = 0;
			r->parent = 0;
			for (int32_t i = 0; i < r->n_hashed; i++) {
				r->hash =
					block_key(r->hash, r->tok + (size_t)i * (size_t)s->B, s->B);
				r->parent = s->c_serial[blocks[i]];
			}
		}
	}
	if (!r->started) {
		aw_sample_prime(r->smp, r->tok, (size_t)r->n_tok);
		r->started = 1;
		r->t_admit = now;
		r->cached = n_pos;
		s->st.cached_tokens += (uint64_t)n_pos;
	}
	r->admit_no = ++s->admit_no;
	s->st.admitted++;
	*ret_chunk = chunk;
	return 2;
}

/* --- the step ------------------------------------------------------------------- */

static void take_messages(struct aw_sched *s, uint64_t now)
{
	struct rq *m;

	(void)now;
	while ((m = q_pop(s)) != NULL) {
		if (m->kind == MSG_REQ) {
			wq_push_back(s, m);
			continue;
		}
		for (int32_t i = 0; i < s->n_run; i++)
			if (s->run[i]->id == m->id)
				s->run[i]->cancelled = 1;
		for (int p = 0; p < AW_SCHED_N_PRIO; p++)
			for (struct rq *r = s->wq_head[p]; r; r = r->next)
				if (r->id == m->id)
					r->cancelled = 1;
		free(m);
	}
}

static void expire(struct aw_sched *s, uint64_t now)
{
	for (int32_t i = 0; i < s->c.max_sessions; i++) {
		struct session *x = &s->sess[i];
		if (x->id && !x->busy && now > x->last_used + s->c.session_ttl_us) {
			sess_drop(s, x);
			s->st.sessions_expired++;
		}
	}
	/* running: cancel and deadline */
	for (int32_t i = 0; i < s->n_run;) {
		struct rq *r = s->run[i];
		if (r->cancelled || (r->deadline && now >= r->deadline)) {
			run_remove(s, r);
			finish_running(s, r,
				       r->cancelled ? AW_SCHED_FINISH_CANCELLED
						    : AW_SCHED_FINISH_DEADLINE,
				       -1, NULL, 0, now);
			continue;
		}
		i++;
	}
	/* waiting: cancel, deadline passed, or not reachable from its place */
	int64_t ahead = 0;
	for (int32_t i = 0; i < s->n_run; i++)
		ahead += s->run[i]->n_tok - s->run[i]->n_done - 1;
	for (int p = AW_SCHED_N_PRIO - 1; p >= 0; p--) {
		struct rq *prev = NULL;
		for (struct rq *r = s->wq_head[p]; r;) {
			struct rq *next = r->next;
			const int32_t own = r->n_tok - r->n_done;
			int late = r->deadline &&
				   (now >= r->deadline ||
				    (double)now + est_ttft(s, ahead, own) > (double)r->deadline);
			if (r->cancelled || late) {
				wq_remove(s, r, prev);
				sess_disown(s, r);
				emit_end(s, r,
					 r->cancelled ? AW_SCHED_FINISH_CANCELLED
						      : AW_SCHED_FINISH_DEADLINE,
					 -1, NULL, 0, now);
				rq_free(r);
			} else {
				ahead += own;
				prev = r;
			}
			r = next;
		}
	}
}

/* Pick the next waiting request to admit, honouring the lower class's share;
 * skips requests whose session is busy. Sets *ret_prev for wq_remove. */
static struct rq *pick(struct aw_sched *s, struct rq **ret_prev, const uint8_t *skip)
{
	struct rq *cand[AW_SCHED_N_PRIO] = {NULL}, *prev[AW_SCHED_N_PRIO] = {NULL};

	for (int p = 0; p < AW_SCHED_N_PRIO; p++) {
		if (skip[p])
			continue;
		struct rq *pv = NULL;
		for (struct rq *r = s->wq_head[p]; r; pv = r, r = r->next) {
			struct session *x =
				r->session && !r->sess_joined ? sess_find(s, r->session) : NULL;
			if (x && x->busy)
				continue;
			cand[p] = r;
			prev[p] = pv;
			break;
		}
	}
	int p = 1;
	if (!cand[1] || (cand[0] && s->hi_streak >= s->c.low_share - 1))
		p = 0;
	if (!cand[p])
		return NULL;
	*ret_prev = prev[p];
	return cand[p];
}

/* What position 'pos' of 'r' asks of the forward pass (AW_MODEL_OUT_*). */
static int8_t out_flag(const struct rq *r, int32_t pos)
{
	const int last = pos == r->n_tok - 1;

	switch (r->op) {
	case AW_SCHED_EMBED:
		if (r->pooling == AW_SCORE_POOL_MEAN ||
		    (r->pooling == AW_SCORE_POOL_CLS ? pos == 0 : last))
			return AW_MODEL_OUT_HIDDEN;
		return 0;
	case AW_SCHED_CLASSIFY:
		if (!last)
			return 0;
		return r->multi ? AW_MODEL_OUT_LOGITS : AW_MODEL_OUT_HIDDEN;
	default:
		return last ? AW_MODEL_OUT_LOGITS : 0;
	}
}

static void plan_add(struct aw_sched *s, struct rq *r, int32_t chunk, int32_t *n, int32_t *n_seq)
{
	int32_t nl = 0, nh = 0;

	for (int32_t j = 0; j < chunk; j++) {
		const int8_t f = out_flag(r, r->n_done + j);
		s->b_tok[*n] = r->tok[r->n_done + j];
		s->b_pos[*n] = r->n_done + j;
		s->b_seq[*n] = r->slot;
		s->b_logits[*n] = f;
		nl += (f & AW_MODEL_OUT_LOGITS) != 0;
		nh += (f & AW_MODEL_OUT_HIDDEN) != 0;
		(*n)++;
	}
	s->b_rq[*n_seq] = r;
	s->b_cnt[*n_seq] = chunk;
	s->b_nl[*n_seq] = nl;
	s->b_nh[*n_seq] = nh;
	(*n_seq)++;
}

/* Record token 't' of running 'r' (sampled, or forced by its hook when
 * 'forced'): its text through the stream decoder and the sampler (stop
 * strings, max_tokens, EOS, the hook's accept), the history, the event.
 * Returns 1 when 'r' ended (it is freed then), 0 otherwise. */
static int take_token(struct aw_sched *s, struct rq *r, int32_t t, int forced, uint64_t now)
{
	const char *text = "";
	size_t plen = 0, len = 0;

	if (s->tok)
		aw_tok_stream_push(&r->ts, t, s->piece, s->piece_cap, &plen);
	enum aw_sample_finish f = aw_sample_accept(r->smp, t, s->piece, plen, &text, &len);
	if (!r->t_first)
		r->t_first = now;
	r->n_gen++;
	r->n_ff += forced;
	if (rq_reserve(r, r->n_tok + 1) < 0) {
		run_remove(s, r);
		finish_running(s, r, AW_SCHED_FINISH_ERROR, t, text, len, now);
		return 1;
	}
	r->tok[r->n_tok++] = t;
	if (f == AW_SAMPLE_CONTINUE && r->n_tok >= s->c.ctx)
		f = AW_SAMPLE_LENGTH;
	char tail[1024];
	size_t k = 0;
	if (s->tok && (f == AW_SAMPLE_EOS || f == AW_SAMPLE_LENGTH) && len + 16 <= sizeof(tail) &&
	    aw_tok_stream_flush(&r->ts, tail + len, sizeof(tail) - len, &k) == 0 && k) {
		/* an incomplete character held back at the end comes out as U+FFFD
		 * (as aw-infer prints it) */
		memcpy(tail, text, len);
		text = tail;
		len += k;
	}
	if (f != AW_SAMPLE_CONTINUE) {
		run_remove(s, r);
		finish_running(
			s, r, f == AW_SAMPLE_LENGTH ? AW_SCHED_FINISH_LENGTH : AW_SCHED_FINISH_STOP,
			t, text, len, now);
		return 1;
	}
	struct aw_sched_event ev = {
		.id = r->id, .user = r->user, .token = t, .text = text, .len = len};
	s->fn(s->fn_ctx, &ev);
	return 0;
}

/* Fast-forward: after 'r' took a sampled token (and its event went out, so
 * a hook woken by that token's text sees it), the tokens its hook says the
 * constraint determines are taken at once, each exactly like a sampled one
 * (text, stop strings, max_tokens, events), and appended to the history
 * without a forward pass of their own: the next step computes them with the
 * sampled token as one chunk, logits from its last position only. */
static void fast_forward(struct aw_sched *s, struct rq *r, uint64_t now)
{
	const int32_t lo = r->n_tok - 1; /* the sampled token, not computed yet */
	int32_t n;

	if (!r->hook.forced || s->c.no_fast_forward)
		return;
	/* ask again after a run: what it determines may go further (the EOS
	 * after a value's last forced bytes); bounded */
	for (int round = 0; round < 4; round++) {
		n = r->hook.forced(r->hook.ctx, s->ff, AW_SCHED_MAX_FORCED);
		if (n <= 0)
			break;
		if (n > AW_SCHED_MAX_FORCED)
			n = AW_SCHED_MAX_FORCED;
		for (int32_t i = 0; i < n; i++) {
			if (s->ff[i] < 0 || s->ff[i] >= s->n_vocab)
				goto out; /* the hook's mistake: the rest is sampled */
			s->st.forced_tokens++;
			if (take_token(s, r, s->ff[i], 1, now))
				return; /* ended (stop string, max_tokens, EOS, context) */
		}
	}
out:
	if (r->n_tok - 1 > lo) {
		r->ff_lo = lo;
		r->ff_hi = r->n_tok;
	}
}

/* Sample after the forward pass for 'r' whose logits are 'lg'. */
static void sample_one(struct aw_sched *s, struct rq *r, const float *lg, uint64_t now)
{
	int32_t t = aw_sample_pick(r->smp, lg);

	if (t < 0) {
		run_remove(s, r);
		finish_running(s, r, AW_SCHED_FINISH_ERROR, -1, NULL, 0, now);
		return;
	}
	if (take_token(s, r, t, 0, now) == 0)
		fast_forward(s, r, now);
}

/* --- agent operations: CLASSIFY and EMBED --------------------------------------- */

/* One lane of the label pass: a KV sequence extending the prompt with one
 * label's tokens. */
struct lane {
	int32_t slot;  /* KV sequence */
	int32_t label; /* label index */
	int32_t done;  /* label tokens fed so far (of len - 1) */
	int own;       /* the request's own sequence (dropped back, not freed) */
};

/* End lane 'l' of request 'r': forks go back to the free slots; the
 * request's own sequence drops the label positions. */
static void lane_end(struct aw_sched *s, struct rq *r, struct lane *l)
{
	if (l->own) {
		aw_kv_seq_drop(s->kv, l->slot, aw_kv_seq_len(s->kv, l->slot) - r->n_tok);
	} else {
		aw_kv_seq_clear(s->kv, l->slot);
		s->free_slots[s->n_free_slots++] = l->slot;
	}
	l->slot = -1;
}

/* Add the log-probabilities of the non-first tokens of every multi-token
 * label to lp[]: lanes forked from the prompt, as many at once as there are
 * sequence slots and batch rows, each label's tokens l_0..l_{L-2} with
 * logits on. Returns 0 or -errno. */
static int classify_labels(struct aw_sched *s, struct rq *r, double *lp)
{
	const int32_t cap =
		s->c.max_batch_tokens < s->c.max_batch ? s->c.max_batch_tokens : s->c.max_batch;
	struct lane *lanes = s->lanes;
	const int32_t max_lanes = s->c.max_batch;
	int32_t next = 0, n_lanes = 0, own_used = 0;
	int ret = 0;

	for (;;) {
		/* open lanes for pending labels while sequences are free */
		while (next < r->n_labels && n_lanes < max_lanes) {
			const int32_t L = r->lab_off[next + 1] - r->lab_off[next];
			struct lane *l = &lanes[n_lanes];
			if (L < 2) {
				next++;
				continue;
			}
			if (!own_used) {
				*l = (struct lane){r->slot, next, 0, 1};
				own_used = 1;
			} else if (s->n_free_slots > 0) {
				const int32_t d = s->free_slots[--s->n_free_slots];
				if (aw_kv_seq_fork(s->kv, r->slot, d, r->n_tok) < 0) {
					s->free_slots[s->n_free_slots++] = d;
					break;
				}
				*l = (struct lane){d, next, 0, 0};
			} else {
				break;
			}
			n_lanes++;
			next++;
		}
		if (n_lanes == 0)
			break;
		/* one forward pass: a chunk of each lane's label tokens */
		int32_t n = 0;
		for (int32_t i = 0; i < n_lanes && n < cap; i++) {
			struct lane *l = &lanes[i];
			const int32_t *t = r->lab_tok + r->lab_off[l->label];
			const int32_t L = r->lab_off[l->label + 1] - r->lab_off[l->label];
			const int32_t at = r->n_tok + l->done;
			int32_t k = L - 1 - l->done;
			if (k > cap - n)
				k = cap - n;
			if (reserve(s, l->slot, at + k) < 0) {
				if (n > 0)
					break; /* this lane waits for the next pass */
				ret = -ENOSPC;
				goto out;
			}
			for (int32_t j = 0; j < k; j++) {
				s->b_tok[n] = t[l->done + j];
				s->b_pos[n] = at + j;
				s->b_seq[n] = l->slot;
				s->b_logits[n] = AW_MODEL_OUT_LOGITS;
				n++;
			}
		}
		struct aw_batch b = {n, s->b_tok, s->b_pos, s->b_seq, s->b_logits};
		if ((ret = aw_model_forward(s->m, s->kv, &b, s->pool, s->logits)) < 0)
			goto out;
		ret = 0;
		s->st.prefill_tokens += (uint64_t)n;
		/* score the rows in batch order; close finished lanes */
		const float *lg = s->logits;
		int32_t row = 0;
		for (int32_t i = 0; i < n_lanes && row < n; i++) {
			struct lane *l = &lanes[i];
			const int32_t *t = r->lab_tok + r->lab_off[l->label];
			const int32_t L = r->lab_off[l->label + 1] - r->lab_off[l->label];
			while (row < n && s->b_seq[row] == l->slot) {
				lp[l->label] += aw_score_logprob(lg, s->n_vocab, t[l->done + 1]);
				l->done++;
				lg += s->n_vocab;
				row++;
			}
			if (l->done == L - 1)
				lane_end(s, r, l);
		}
		int32_t k = 0;
		for (int32_t i = 0; i < n_lanes; i++)
			if (lanes[i].slot >= 0)
				lanes[k++] = lanes[i];
		n_lanes = k;
		own_used = 0;
		for (int32_t i = 0; i < n_lanes; i++)
			own_used |= lanes[i].own;
	}
out:
	for (int32_t i = 0; i < n_lanes; i++)
		if (lanes[i].slot >= 0)
			lane_end(s, r, &lanes[i]);
	return ret;
}

/* End 'r' (CLASSIFY or EMBED, removed from the running set here) with its
 * result, or with ERROR when 'ret' < 0. */
static void agent_finish(struct aw_sched *s, struct rq *r, int ret, uint64_t now)
{
	if (ret == 0 && r->op == AW_SCHED_CLASSIFY)
		aw_score_normalize(r->lp, r->n_labels, r->vals);
	r->t_first = aw_sched_now_us();
	run_remove(s, r);
	finish_running(s, r, ret == 0 ? AW_SCHED_FINISH_STOP : AW_SCHED_FINISH_ERROR, -1, NULL, 0,
		       r->t_first > now ? r->t_first : now);
}

/* After a forward pass that computed 'r's positions: pool EMBED states
 * ('nh' rows at 'hd'), and when the prompt is complete, finish with the
 * result. CLASSIFY's last prompt position left its logits at 'lg' (some
 * label of several tokens: the label pass runs after this step's results
 * are all read, from agent_flush()) or its hidden state at 'hd'. */
static void agent_step(struct aw_sched *s, struct rq *r, const float *lg, const float *hd,
		       int32_t nh, uint64_t now)
{
	int ret = 0;

	if (r->op == AW_SCHED_EMBED) {
		for (int32_t t = 0; t < nh; t++)
			for (int32_t i = 0; i < s->dim; i++)
				r->vals[i] += hd[(size_t)t * (size_t)s->dim + (size_t)i];
		r->n_pooled += nh;
	}
	if (r->n_done < r->n_tok)
		return;
	if (r->op == AW_SCHED_EMBED) {
		aw_score_embed_finish(r->vals, s->dim, (enum aw_score_pool)r->pooling, r->n_pooled,
				      r->normalize);
		agent_finish(s, r, 0, now);
		return;
	}
	float row[AW_SCHED_MAX_LABELS];
	int32_t first[AW_SCHED_MAX_LABELS];

	for (int32_t j = 0; j < r->n_labels; j++)
		first[j] = r->lab_tok[r->lab_off[j]];
	if (!r->multi) {
		/* only the labels' rows of the output matrix */
		ret = aw_model_logits_rows(s->m, hd, first, r->n_labels, row);
		for (int32_t j = 0; j < r->n_labels; j++)
			r->lp[j] = row[j];
		agent_finish(s, r, ret, now);
		return;
	}
	const double lse = aw_score_lse(lg, s->n_vocab);
	for (int32_t j = 0; j < r->n_labels; j++)
		r->lp[j] = (double)lg[first[j]] - lse;
	if (!r->fold) {
		s->pend[s->n_pend++] = r; /* still running: its sequence holds the prompt */
		return;
	}
	/* the label tokens rode in this pass (fold_plan()): their rows in label
	 * order, each label's l_0..l_{L-2} predicting the next token */
	const float *row_lg = s->logits + (size_t)r->fold_row * (size_t)s->n_vocab;
	for (int32_t j = 0; j < r->n_labels; j++) {
		const int32_t *t = r->lab_tok + r->lab_off[j];
		const int32_t L = r->lab_off[j + 1] - r->lab_off[j];
		for (int32_t i = 0; i + 1 < L; i++, row_lg += s->n_vocab)
			r->lp[j] += aw_score_logprob(row_lg, s->n_vocab, t[i + 1]);
	}
	/* the prompt's sequence carried the first label: drop its positions */
	aw_kv_seq_drop(s->kv, r->slot, aw_kv_seq_len(s->kv, r->slot) - r->n_tok);
	agent_finish(s, r, 0, now);
}

/* Fold the label tokens of every CLASSIFY request whose prompt this step's
 * plan completes into the same batch ('*n' tokens so far, 'n_seq' requests,
 * 'rows' logit rows), so the weights are read once: the first label of
 * several tokens continues the prompt's own sequence, each other one a
 * sequence sharing the prompt's blocks (aw_kv_seq_share()) and owning a copy
 * of the block where its label starts, into which the pass mirrors the
 * prompt positions it writes there. A request that does not fit (batch
 * tokens, logit rows, free sequences, KV blocks) runs its label pass after
 * the step as before (classify_labels()). */
static void fold_plan(struct aw_sched *s, int32_t *n, int32_t n_seq, int32_t rows)
{
	const int32_t T = s->c.max_batch_tokens;

	s->n_fold_slot = s->n_mirror = s->n_fold_tok = 0;
	if (s->c.no_classify_fold)
		return;
	for (int32_t i = 0; i < n_seq; i++) {
		struct rq *r = s->b_rq[i];
		int32_t extra = 0, lanes = 0;

		if (r->op != AW_SCHED_CLASSIFY || !r->multi || r->n_done + s->b_cnt[i] != r->n_tok)
			continue;
		for (int32_t j = 0; j < r->n_labels; j++) {
			const int32_t L = r->lab_off[j + 1] - r->lab_off[j];
			extra += L > 1 ? L - 1 : 0;
			lanes += L > 1;
		}
		if (*n + extra > T || lanes - 1 > s->n_free_slots)
			continue;
		if (rows + extra > s->logit_rows) {
			float *g = realloc(s->logits, sizeof(float) * (size_t)s->n_vocab *
							      (size_t)(rows + extra));
			if (!g)
				continue;
			s->logits = g;
			s->logit_rows = rows + extra;
		}
		const int32_t n0 = *n, f0 = s->n_fold_slot, m0 = s->n_mirror;
		const int32_t blk0 = r->n_tok / s->B * s->B;
		int own = 1, ok = 1;
		for (int32_t j = 0; j < r->n_labels && ok; j++) {
			const int32_t *t = r->lab_tok + r->lab_off[j];
			const int32_t L = r->lab_off[j + 1] - r->lab_off[j];
			int32_t seq = r->slot;
			if (L < 2)
				continue;
			if (own) {
				ok = reserve(s, r->slot, r->n_tok + L - 1) == 0;
				own = 0;
			} else {
				seq = s->free_slots[--s->n_free_slots];
				s->fold_slot[s->n_fold_slot++] = seq;
				/* when this pass writes every prompt position of the
				 * label's first block, that block starts empty (no
				 * copy); otherwise it is a copy of the prompt's */
				const int32_t at = r->n_done <= blk0 ? blk0 : r->n_tok;
				ok = aw_kv_seq_share(s->kv, r->slot, seq, at) == 0 &&
				     reserve(s, seq, r->n_tok + L - 1) == 0 &&
				     aw_kv_seq_set_len(s->kv, seq, r->n_tok) == 0;
				const int32_t from = r->n_done > blk0 ? r->n_done : blk0;
				if (ok && from < r->n_tok)
					s->mirror[s->n_mirror++] = (struct aw_model_mirror){
						r->slot, seq, from, r->n_tok};
			}
			for (int32_t k = 0; ok && k < L - 1; k++) {
				s->b_tok[*n] = t[k];
				s->b_pos[*n] = r->n_tok + k;
				s->b_seq[*n] = seq;
				s->b_logits[*n] = AW_MODEL_OUT_LOGITS;
				(*n)++;
			}
		}
		if (!ok) {
			/* undo: the label pass after the step does it the old way */
			while (s->n_fold_slot > f0) {
				const int32_t d = s->fold_slot[--s->n_fold_slot];
				aw_kv_seq_clear(s->kv, d);
				s->free_slots[s->n_free_slots++] = d;
			}
			s->n_mirror = m0;
			*n = n0;
			continue;
		}
		r->fold = 1;
		r->fold_row = rows;
		rows += extra;
		s->n_fold_tok += extra;
		s->st.labels_folded += (uint64_t)extra;
	}
}

/* Give back the sequences fold_plan() forked (after the step's results). */
static void fold_release(struct aw_sched *s)
{
	while (s->n_fold_slot > 0) {
		const int32_t d = s->fold_slot[--s->n_fold_slot];
		aw_kv_seq_clear(s->kv, d);
		s->free_slots[s->n_free_slots++] = d;
	}
}

/* Run the label passes of the CLASSIFY requests agent_step() left pending. */
static void agent_flush(struct aw_sched *s, uint64_t now)
{
	for (int32_t i = 0; i < s->n_pend; i++) {
		struct rq *r = s->pend[i];
		agent_finish(s, r, classify_labels(s, r, r->lp), now);
	}
	s->n_pend = 0;
}

int aw_sched_step(struct aw_sched *s, uint64_t now)
{
	int32_t n = 0, n_seq = 0;
	const int32_t T = s->c.max_batch_tokens;
	int preempted = 0;

	take_messages(s, now);
	expire(s, now);

	/* running sequences, highest class and oldest first: a decode token, or
	 * the next prefill chunk */
	for (int32_t i = 0; i < s->n_run && n < T;) {
		struct rq *r = s->run[i];
		const int32_t pend = r->n_tok - r->n_done;
		int32_t chunk = pend < s->c.prefill_chunk ? pend : s->c.prefill_chunk;
		if (chunk > T - n)
			chunk = T - n;
		if (reserve(s, r->slot, r->n_done + chunk) < 0) {
			if (s->n_run == 1) {
				/* alone and still short: the pool cannot hold it */
				run_remove(s, r);
				finish_running(s, r, AW_SCHED_FINISH_ERROR, -1, NULL, 0, now);
				continue;
			}
			/* preempt the newest of the lowest class not planned yet
			 * (the end of the running array), possibly r itself */
			struct rq *v = s->run[s->n_run - 1];
			preempt(s, v);
			preempted = 1;
			continue; /* retry r (or, when v was r, the next one) */
		}
		plan_add(s, r, chunk, &n, &n_seq);
		i++;
	}

	/* admissions */
	uint8_t skip[AW_SCHED_N_PRIO] = {0};
	/* (none in a step that had to preempt: the pool is short) */
	while (!preempted && s->n_free_slots > 0 && n < T && s->n_waiting > 0) {
		struct rq *prev = NULL, *r = pick(s, &prev, skip);
		int32_t chunk = 0;

		if (!r)
			break;
		int ret = admit(s, r, T - n, &chunk, now);
		if (ret == -EBUSY) {
			skip[r->prio] = 1; /* only a busy head remains in that class */
			continue;
		}
		if (ret == 0 && s->n_run > 0) {
			s->st.deferred++;
			break;
		}
		if (ret == 0)
			ret = -ENOSPC; /* does not fit even in the empty pool */
		wq_remove(s, r, prev);
		if (ret < 0) {
			sess_disown(s, r);
			r->err = ret;
			emit_end(s, r, AW_SCHED_FINISH_ERROR, -1, NULL, 0, now);
			rq_free(r);
			continue;
		}
		if (r->prio == 1 && s->wq_head[0])
			s->hi_streak++;
		else if (r->prio == 0)
			s->hi_streak = 0;
		run_insert(s, r);
		plan_add(s, r, chunk, &n, &n_seq);
	}

	if (n > 0) {
		int32_t rows = 0;
		for (int32_t i = 0; i < n_seq; i++)
			rows += s->b_nl[i];
		fold_plan(s, &n, n_seq, rows);
		struct aw_batch b = {n, s->b_tok, s->b_pos, s->b_seq, s->b_logits};
		const uint64_t t0 = aw_sched_now_us();
		int ret = s->n_fold_tok > 0
				  ? aw_model_forward_shared(s->m, s->kv, &b, s->mirror, s->n_mirror,
							    s->pool, s->logits, s->hidden)
				  : aw_model_forward_ex(s->m, s->kv, &b, s->pool, s->logits,
							s->hidden);
		const uint64_t t1 = aw_sched_now_us();
		int32_t n_pre = s->n_fold_tok;

		for (int32_t i = 0; i < n_seq; i++) {
			const struct rq *r = s->b_rq[i];
			const int32_t lo = r->n_done, hi = r->n_done + s->b_cnt[i];
			int32_t pre = s->b_cnt[i] > 1 || lo < r->n_tok - 1 ? s->b_cnt[i] : 0;
			/* a forced run and the token sampled before it are decode work */
			if (pre && r->ff_hi > lo) {
				const int32_t a = lo > r->ff_lo ? lo : r->ff_lo;
				const int32_t e = hi < r->ff_hi ? hi : r->ff_hi;
				pre -= e > a ? e - a : 0;
			}
			n_pre += pre;
		}
		const double dt = (double)(t1 - t0);
		s->st.step_us = s->st.step_us > 0 ? 0.8 * s->st.step_us + 0.2 * dt : dt;
		if (n_pre * 2 >= n && n >= 8)
			s->st.us_per_tok = s->st.us_per_tok > 0
						   ? 0.8 * s->st.us_per_tok + 0.2 * dt / n
						   : dt / n;
		s->st.prefill_tokens += (uint64_t)n_pre;
		s->st.decode_tokens += (uint64_t)(n - n_pre);
		const float *lg = s->logits, *hd = s->hidden;
		for (int32_t i = 0; i < n_seq; i++) {
			struct rq *r = s->b_rq[i];
			if (ret < 0) {
				run_remove(s, r);
				finish_running(s, r, AW_SCHED_FINISH_ERROR, -1, NULL, 0, now);
				continue;
			}
			r->n_done += s->b_cnt[i];
			cache_offer(s, r);
			if (r->op != AW_SCHED_GENERATE)
				agent_step(s, r, lg, hd, s->b_nh[i], now);
			else if (r->n_done == r->n_tok)
				sample_one(s, r, lg, now);
			lg += (size_t)s->b_nl[i] * (size_t)s->n_vocab;
			hd += (size_t)s->b_nh[i] * (size_t)s->dim;
		}
		fold_release(s);
		agent_flush(s, now);
	}
	s->st.steps++;
	return s->n_run + s->n_waiting;
}

/* --- creation ---------------------------------------------------------------- */

int aw_sched_new(struct aw_model *m, const struct aw_tok *tok, struct aw_pool *pool,
		 const struct aw_sched_config *cfg, aw_sched_event_fn *fn, void *ctx,
		 struct aw_sched **ret_s)
{
	struct aw_sched_config c = cfg ? *cfg : (struct aw_sched_config){0};
	const struct aw_model_hparams *hp = aw_model_hparams(m);
	struct aw_sched *s;

	if (!fn)
		return -EINVAL;
	if (!c.max_batch)
		c.max_batch = 16;
	if (!c.max_batch_tokens || c.max_batch_tokens > aw_model_max_batch(m))
		c.max_batch_tokens = aw_model_max_batch(m);
	if (!c.prefill_chunk)
		c.prefill_chunk = 64;
	if (!c.queue_size)
		c.queue_size = 1024;
	if (!c.block_size)
		c.block_size = 16;
	if (!c.ctx)
		c.ctx = hp->n_ctx;
	if (!c.max_sessions)
		c.max_sessions = 64;
	if (!c.session_ttl_us)
		c.session_ttl_us = 60000000u;
	if (!c.low_share)
		c.low_share = 4;
	if (c.max_batch < 1 || c.max_batch > 4096 || c.max_batch_tokens < 1 ||
	    c.prefill_chunk < 1 || c.queue_size < 2 || (c.queue_size & (c.queue_size - 1)) ||
	    c.queue_size > (1 << 24) || c.block_size < 1 || c.ctx < 2 || c.max_sessions < 1 ||
	    c.max_sessions > (1 << 20) || c.low_share < 1 || c.n_blocks < 0 ||
	    c.cost_hint_us_per_tok < 0)
		return -EINVAL;
	if (c.prefill_chunk > c.max_batch_tokens)
		c.prefill_chunk = c.max_batch_tokens;

	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(m),
				  .block_size = c.block_size,
				  .max_seqs = c.max_batch,
				  .max_seq_len = c.ctx,
				  .n_blocks = c.n_blocks,
				  .type = c.kv_type};
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	int ret = aw_kv_new(&kc, &s->kv);
	if (ret < 0) {
		free(s);
		return ret;
	}
	c.n_blocks = s->kv->c.n_blocks;
	s->c = c;
	s->m = m;
	s->tok = tok;
	s->pool = pool;
	s->fn = fn;
	s->fn_ctx = ctx;
	s->n_vocab = hp->n_vocab;
	s->B = c.block_size;
	s->qmask = (size_t)c.queue_size - 1;
	s->cells = calloc((size_t)c.queue_size, sizeof(*s->cells));
	const size_t T = (size_t)c.max_batch_tokens, S = (size_t)c.max_batch;
	const size_t NB = (size_t)c.n_blocks;
	s->b_tok = malloc(sizeof(int32_t) * T);
	s->b_pos = malloc(sizeof(int32_t) * T);
	s->b_seq = malloc(sizeof(int32_t) * T);
	s->b_logits = malloc(T);
	s->b_rq = malloc(sizeof(*s->b_rq) * S);
	s->b_cnt = malloc(sizeof(int32_t) * (S + (size_t)s->kv->max_blocks_per_seq));
	s->dim = hp->dim;
	s->hidden = malloc(sizeof(float) * T * (size_t)hp->dim);
	s->b_nl = malloc(sizeof(int32_t) * S);
	s->b_nh = malloc(sizeof(int32_t) * S);
	s->ff = malloc(sizeof(int32_t) * AW_SCHED_MAX_FORCED);
	s->pend = malloc(sizeof(*s->pend) * S);
	s->lanes = malloc(sizeof(*s->lanes) * S);
	s->logit_rows = (int32_t)(T < S ? T : S);
	s->logits = malloc(sizeof(float) * (size_t)s->n_vocab * (size_t)s->logit_rows);
	s->fold_slot = malloc(sizeof(int32_t) * S);
	s->mirror = malloc(sizeof(*s->mirror) * S);
	s->run = malloc(sizeof(*s->run) * S);
	s->free_slots = malloc(sizeof(int32_t) * S);
	s->c_hash = calloc(NB, sizeof(uint64_t));
	s->c_serial = calloc(NB, sizeof(uint64_t));
	s->c_parent = calloc(NB, sizeof(uint64_t));
	s->c_tok = malloc(sizeof(int32_t) * NB * (size_t)s->B);
	s->c_next = malloc(sizeof(int32_t) * NB);
	s->c_prev_lru = malloc(sizeof(int32_t) * NB);
	s->c_next_lru = malloc(sizeof(int32_t) * NB);
	s->bmask = 1;
	while (s->bmask < NB)
		s->bmask <<= 1;
	s->bucket = malloc(sizeof(int32_t) * s->bmask);
	s->bmask--;
	s->sess = calloc((size_t)c.max_sessions, sizeof(*s->sess));
	if (tok) {
		s->piece_cap = aw_tok_stream_max(tok);
		s->piece = malloc(s->piece_cap);
	} else {
		s->piece = malloc(1);
	}
	if (!s->cells || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_logits || !s->b_rq ||
	    !s->b_cnt || !s->logits || !s->run || !s->free_slots || !s->c_hash || !s->c_serial ||
	    !s->c_parent || !s->c_tok || !s->c_next || !s->c_prev_lru || !s->c_next_lru ||
	    !s->bucket || !s->sess || !s->piece || !s->hidden || !s->b_nl || !s->b_nh || !s->pend ||
	    !s->lanes || !s->fold_slot || !s->mirror || !s->ff) {
		aw_sched_free(s);
		return -ENOMEM;
	}
	s->piece[0] = '\0';
	for (size_t i = 0; i < (size_t)c.queue_size; i++)
		atomic_init(&s->cells[i].seq, i);
	atomic_init(&s->qhead, 0);
	atomic_init(&s->qtail, 0);
	for (size_t i = 0; i < NB; i++)
		s->c_next[i] = s->c_prev_lru[i] = s->c_next_lru[i] = -1;
	for (size_t i = 0; i <= s->bmask; i++)
		s->bucket[i] = -1;
	s->lru_head = s->lru_tail = -1;
	for (int32_t i = 0; i < c.max_batch; i++)
		s->free_slots[i] = c.max_batch - 1 - i;
	s->n_free_slots = c.max_batch;
	*ret_s = s;
	return 0;
}

void aw_sched_flush(struct aw_sched *s)
{
	for (int32_t i = 0; i < s->c.max_sessions; i++)
		if (s->sess[i].id && !s->sess[i].busy)
			sess_drop(s, &s->sess[i]);
	while (s->lru_head >= 0)
		cache_remove(s, s->lru_head);
}

/* --- live model swap (loader) --- */
int aw_sched_set_model(struct aw_sched *s, struct aw_model *m, const struct aw_tok *tok)
{
	const struct aw_model_hparams *hp = aw_model_hparams(m), *old = aw_model_hparams(s->m);

	if (s->n_run || s->n_waiting)
		return -EBUSY;
	if (hp->n_layer != old->n_layer || aw_model_kv_dim(m) != aw_model_kv_dim(s->m) ||
	    hp->n_vocab != s->n_vocab || hp->dim != s->dim ||
	    aw_model_max_batch(m) < s->c.max_batch_tokens)
		return -EINVAL;
	for (int32_t i = 0; i < s->c.max_sessions; i++)
		if (s->sess[i].id)
			sess_drop(s, &s->sess[i]);
	while (s->lru_head >= 0)
		cache_remove(s, s->lru_head);
	s->m = m;
	s->tok = tok;
	return 0;
}

void aw_sched_free(struct aw_sched *s)
{
	struct rq *r;

	if (!s)
		return;
	if (s->cells && s->kv && s->run) {
		const uint64_t now = aw_sched_now_us();
		while ((r = q_pop(s)) != NULL) {
			if (r->kind == MSG_REQ)
				emit_end(s, r, AW_SCHED_FINISH_CANCELLED, -1, NULL, 0, now);
			rq_free(r);
		}
		while (s->n_run > 0) {
			r = s->run[s->n_run - 1];
			s->n_run--;
			release_slot(s, r);
			emit_end(s, r, AW_SCHED_FINISH_CANCELLED, -1, NULL, 0, now);
			rq_free(r);
		}
		for (int p = 0; p < AW_SCHED_N_PRIO; p++)
			while ((r = s->wq_head[p]) != NULL) {
				wq_remove(s, r, NULL);
				emit_end(s, r, AW_SCHED_FINISH_CANCELLED, -1, NULL, 0, now);
				rq_free(r);
			}
	}
	if (s->sess && s->kv) {
		for (int32_t i = 0; i < s->c.max_sessions; i++)
			if (s->sess[i].id)
				sess_drop(s, &s->sess[i]);
	}
	if (s->c_serial && s->bucket && s->kv)
		while (s->lru_head >= 0)
			cache_remove(s, s->lru_head);
	free(s->sess);
	free(s->bucket);
	free(s->c_next_lru);
	free(s->c_prev_lru);
	free(s->c_next);
	free(s->c_tok);
	free(s->c_parent);
	free(s->c_serial);
	free(s->c_hash);
	free(s->free_slots);
	free(s->run);
	free(s->logits);
	free(s->b_cnt);
	free(s->hidden);
	free(s->b_nl);
	free(s->b_nh);
	free(s->pend);
	free(s->lanes);
	free(s->fold_slot);
	free(s->mirror);
	free(s->b_rq);
	free(s->b_logits);
	free(s->b_seq);
	free(s->b_pos);
	free(s->b_tok);
	free(s->cells);
	free(s->piece);
	free(s->ff);
	aw_kv_free(s->kv);
	free(s);
}

/* Check and copy the CLASSIFY / EMBED part of 'q' into 'r'. */
static int agent_submit(struct aw_sched *s, struct rq *r, const struct aw_sched_req *q)
{
	int32_t total = 0, longest = 0;

	r->op = q->kind;
	if (q->kind == AW_SCHED_GENERATE)
		return 0;
	if (q->session || (q->kind != AW_SCHED_CLASSIFY && q->kind != AW_SCHED_EMBED))
		return -EINVAL;
	if (q->kind == AW_SCHED_EMBED) {
		if (q->pooling < 0 || q->pooling >= AW_SCORE_POOL_MAX_)
			return -EINVAL;
		r->pooling = q->pooling;
		r->normalize = q->normalize != 0;
		r->n_vals = s->dim;
		r->vals = calloc((size_t)s->dim, sizeof(float));
		return r->vals ? 0 : -ENOMEM;
	}
	if (q->n_labels < 1 || q->n_labels > AW_SCHED_MAX_LABELS || !q->labels || !q->label_lens)
		return -EINVAL;
	for (int32_t j = 0; j < q->n_labels; j++) {
		if (q->label_lens[j] < 1 || !q->labels[j] || q->label_lens[j] > s->c.ctx)
			return -EINVAL;
		for (int32_t i = 0; i < q->label_lens[j]; i++)
			if (q->labels[j][i] < 0 || q->labels[j][i] >= s->n_vocab)
				return -EINVAL;
		total += q->label_lens[j];
		if (q->label_lens[j] > longest)
			longest = q->label_lens[j];
	}
	if (q->n_tokens + longest > s->c.ctx)
		return -E2BIG;
	r->n_labels = q->n_labels;
	r->n_vals = q->n_labels;
	r->multi = longest > 1;
	r->lab_tok = malloc(sizeof(int32_t) * (size_t)total);
	r->lab_off = malloc(sizeof(int32_t) * (size_t)(q->n_labels + 1));
	r->vals = calloc((size_t)q->n_labels, sizeof(float));
	r->lp = calloc((size_t)q->n_labels, sizeof(double));
	if (!r->lab_tok || !r->lab_off || !r->vals || !r->lp)
		return -ENOMEM;
	r->lab_off[0] = 0;
	for (int32_t j = 0; j < q->n_labels; j++) {
		memcpy(r->lab_tok + r->lab_off[j], q->labels[j],
		       sizeof(int32_t) * (size_t)q->label_lens[j]);
		r->lab_off[j + 1] = r->lab_off[j] + q->label_lens[j];
	}
	return 0;
}

int aw_sched_submit(struct aw_sched *s, const struct aw_sched_req *q)
{
	struct rq *r;
	int ret;

	if (!q || !q->tokens || q->n_tokens < 1)
		return -EINVAL;
	if (q->n_tokens >= s->c.ctx)
		return -E2BIG;
	for (int32_t i = 0; i < q->n_tokens; i++)
		if (q->tokens[i] < 0 || q->tokens[i] >= s->n_vocab)
			return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = MSG_REQ;
	if ((ret = agent_submit(s, r, q)) < 0) {
		rq_free(r);
		return ret;
	}
	r->id = q->id;
	r->user = q->user;
	r->session = q->session;
	r->sess_held = q->session && sess_find(s, q->session) != NULL;
	r->prio = q->priority > 0 ? 1 : 0;
	r->deadline = q->deadline_us;
	r->slot = -1;
	r->t_arrive = aw_sched_now_us();
	struct aw_sample_params dflt;
	aw_sample_params_default(&dflt); /* CLASSIFY/EMBED sample nothing */
	if ((ret = rq_reserve(r, q->n_tokens + 1)) < 0 ||
	    (ret = aw_sample_new(r->op == AW_SCHED_GENERATE ? &q->sample : &dflt, s->n_vocab,
				 &r->smp)) < 0) {
		rq_free(r);
		return ret;
	}
	if (r->op == AW_SCHED_GENERATE && (q->hook.fill || q->hook.accept || q->hook.forced)) {
		r->hook = q->hook;
		aw_sample_set_hook(r->smp, &q->hook); /* constrained decoding */
	}
	memcpy(r->tok, q->tokens, sizeof(int32_t) * (size_t)q->n_tokens);
	r->n_tok = r->n_new = q->n_tokens;
	if (s->tok)
		aw_tok_stream_init(&r->ts, s->tok, AW_TOK_KEEP_SPACE); /* a continuation */
	if ((ret = q_push(s, r)) < 0) {
		rq_free(r);
		return ret;
	}
	return 0;
}

int aw_sched_cancel(struct aw_sched *s, uint64_t id)
{
	struct rq *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->kind = MSG_CANCEL;
	m->id = id;
	if (q_push(s, m) < 0) {
		free(m);
		return -EAGAIN;
	}
	return 0;
}

void aw_sched_get_stats(const struct aw_sched *s, struct aw_sched_stats *st)
{
	*st = s->st;
	st->running = s->n_run;
	st->waiting = s->n_waiting;
	st->cache_blocks = s->n_cached;
	st->sessions = s->n_sess;
	st->free_blocks = aw_kv_free_blocks(s->kv);
	st->n_blocks = s->c.n_blocks;
}

int32_t aw_sched_blocks_for_bytes(const struct aw_model *m, int32_t block_size, uint32_t kv_type,
				  uint64_t bytes)
{
	const uint64_t elem = kv_type == AW_TYPE_F16 ? 2 : 4;
	const struct aw_model_hparams *hp = aw_model_hparams(m);
	const uint64_t B = block_size > 0 ? (uint64_t)block_size : 16;
	const uint64_t per = (uint64_t)hp->n_layer * 2 * B * (uint64_t)aw_model_kv_dim(m) * elem;
	const uint64_t n = per ? bytes / per : 0;

	return n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

/* --- for the dataplane's worker groups --- */

int aw_sched_has_session(const struct aw_sched *s, uint64_t id)
{
	for (int32_t i = 0; id && i < s->c.max_sessions; i++)
		if (s->sess[i].id == id)
			return 1;
	return 0;
}
