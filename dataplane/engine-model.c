/* engine-model.c — the real engine: a GGUF model through libaw_inference.
 *
 * One request at a time per worker group (continuous batching comes with the
 * scheduler): encode the prompt with the file's tokenizer, prefill in chunks
 * of the model's batch, then pick / accept / decode token by token exactly as
 * aw-infer does (same sampler, same kernels), streaming each token's text
 * through the emit callback. The KV cache holds one sequence of the model's
 * context (at most 4096 positions).
 *
 * Loading and live swap (engine.h): the weights come through the loader,
 * repacked in place as each tensor lands, one replica per serving NUMA node
 * and one aw_model per replica (a request runs on the replica of the node
 * its worker runs on). The engine's state is a holder of loaded models: the
 * current one, which new requests take a reference on, and those retired by
 * a swap, freed by the control thread once no request holds them.
 */
#include "engine.h"

#include <errno.h>
#include <numa.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "loader.h"
#include "model.h"
#include "sample.h"
#include "tok.h"

#define GROUP_MODELS 64

struct model_engine {
	struct aw_gguf *g;
	struct aw_model *m; /* on replica 0 */
	/* --- loader: weights and one model per replica (m = mr[0]) --- */
	struct aw_weights *w;
	struct aw_model *mr[AW_LOAD_MAX_REPLICAS];
	int node[AW_LOAD_MAX_REPLICAS]; /* NUMA node of replica r, -1 unbound */
	unsigned n_rep;
	uint8_t *prepacked; /* per tensor: repacked in place while loading */
	/* --- live swap: held by the holder (current) or by requests --- */
	atomic_uint refs;
	unsigned gen;
	struct model_engine *next; /* retired list */
	/* --- */
	struct aw_kv *kv;
	struct aw_tok *tok;
	float *logits; /* n_vocab */
	int32_t *ids;  /* prompt ids, ctx */
	char *piece;   /* one decoded token, aw_tok_stream_max() bytes */
	size_t piece_cap;
	int32_t n_vocab, ctx;
	int32_t n_eos;
	int32_t eos[2];
	char path[256];
	/* worker groups: model instance of each group (gm[i] == m for the
	 * group that was lent the engine's own) */
	struct aw_model *gm[GROUP_MODELS];
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int prefill(struct model_engine *e, struct aw_model *m, const int32_t *tok, int32_t n)
{
	const int32_t B = aw_model_max_batch(m);
	int32_t pos[512], sq[512];
	int ret = 0;

	for (int32_t i = 0; i < n && ret >= 0; i += B) {
		const int32_t k = n - i < B ? n - i : B;

		for (int32_t j = 0; j < k; j++) {
			pos[j] = i + j;
			sq[j] = 0;
		}
		struct aw_batch b = {k, tok + i, pos, sq, NULL};
		ret = aw_model_forward(m, e->kv, &b, NULL, e->logits);
	}
	return ret < 0 ? ret : 0;
}

/* The model on the replica of the calling thread's NUMA node. */
static struct aw_model *local_model(struct model_engine *e)
{
	int cpu, node;

	if (e->n_rep <= 1 || numa_available() < 0 || (cpu = sched_getcpu()) < 0)
		return e->m;
	node = numa_node_of_cpu(cpu);
	for (unsigned r = 0; r < e->n_rep; r++)
		if (e->node[r] == node)
			return e->mr[r];
	return e->m;
}

static int instance_generate(struct model_engine *e, const struct aw_proto_req *req,
			     aw_engine_emit_fn *emit, void *emit_ctx, struct aw_engine_result *res)
{
	struct aw_model *m = local_model(e);
	struct aw_sample_params sp;
	struct aw_sampler *s = NULL;
	struct aw_tok_stream ts;
	enum aw_sample_finish fin = AW_SAMPLE_CONTINUE;
	char stops[AW_PROTO_MAX_STOP][AW_PROTO_MAX_STOP_LEN + 1];
	size_t n_ids = 0;
	const char *why = NULL;
	uint64_t t0 = now_us();
	int32_t pos;
	int ret;

	/* sampling parameters from the request (0 = the sampler's "off") */
	aw_sample_params_default(&sp);
	sp.temperature = req->temperature;
	sp.top_k = (int32_t)req->top_k;
	sp.top_p = req->top_p;
	sp.min_p = req->min_p;
	sp.repeat_penalty = req->repetition_penalty;
	sp.seed = req->seed;
	sp.max_tokens = (int32_t)req->max_new_tokens;
	sp.n_eos = e->n_eos;
	memcpy(sp.eos, e->eos, sizeof(e->eos));
	for (uint32_t i = 0; i < req->n_stop && i < AW_SAMPLE_MAX_STOP; i++) {
		memcpy(stops[i], req->stop[i].p, req->stop[i].len);
		stops[i][req->stop[i].len] = '\0';
		sp.stop[sp.n_stop++] = stops[i];
	}
	if (aw_sample_params_check(&sp, e->n_vocab, &why) < 0) {
		snprintf(res->error, sizeof(res->error), "sampling: %s", why ? why : "bad");
		return -EINVAL;
	}
	ret = aw_tok_encode(e->tok, req->prompt.p, req->prompt.len, AW_TOK_ADD_SPECIAL, e->ids,
			    (size_t)e->ctx, &n_ids);
	if (ret == -ENOSPC || (int32_t)n_ids >= e->ctx) {
		snprintf(res->error, sizeof(res->error), "prompt of %zu tokens: context is %d",
			 n_ids, e->ctx);
		return -EINVAL;
	}
	if (ret < 0 || n_ids == 0) {
		snprintf(res->error, sizeof(res->error), "prompt: %s",
			 ret < 0 ? strerror(-ret) : "no tokens");
		return -EINVAL;
	}
	res->prompt_tokens = (uint32_t)n_ids;
	if ((ret = aw_sample_new(&sp, e->n_vocab, &s)) < 0) {
		snprintf(res->error, sizeof(res->error), "sampler: %s", strerror(-ret));
		return -EINVAL;
	}
	aw_sample_prime(s, e->ids, n_ids);
	aw_kv_seq_clear(e->kv, 0);
	if ((ret = prefill(e, m, e->ids, (int32_t)n_ids)) < 0) {
		snprintf(res->error, sizeof(res->error), "prefill: %s", strerror(-ret));
		goto fail;
	}
	res->prefill_us = (uint32_t)(now_us() - t0);
	t0 = now_us();
	aw_tok_stream_init(&ts, e->tok, 0);
	pos = (int32_t)n_ids;
	res->finish = AW_PROTO_FINISH_STOP;
	while (fin == AW_SAMPLE_CONTINUE) {
		int32_t t = aw_sample_pick(s, e->logits);
		const char *text;
		size_t plen = 0, len;

		if (t < 0) {
			snprintf(res->error, sizeof(res->error), "no token allowed");
			ret = -EINVAL;
			goto fail;
		}
		aw_tok_stream_push(&ts, t, e->piece, e->piece_cap, &plen);
		fin = aw_sample_accept(s, t, e->piece, plen, &text, &len);
		res->gen_tokens++;
		if (emit(emit_ctx, text, len, 1))
			break; /* cancelled, deadline or shutdown: the caller knows */
		if (fin != AW_SAMPLE_CONTINUE)
			break;
		if (pos >= e->ctx) {
			fin = AW_SAMPLE_LENGTH;
			break;
		}
		struct aw_batch b = {1, &t, &pos, &(int32_t){0}, NULL};
		if ((ret = aw_model_forward(m, e->kv, &b, NULL, e->logits)) < 0) {
			snprintf(res->error, sizeof(res->error), "decode: %s", strerror(-ret));
			goto fail;
		}
		pos++;
	}
	res->finish = fin == AW_SAMPLE_LENGTH ? AW_PROTO_FINISH_LENGTH : AW_PROTO_FINISH_STOP;
	res->decode_us = (uint32_t)(now_us() - t0);
	aw_sample_free(s);
	return 0;
fail:
	aw_sample_free(s);
	return ret == -EINVAL ? -EINVAL : -EIO;
}

/* --- loading ------------------------------------------------------------------ */

static void instance_free(struct model_engine *e)
{
	if (!e)
		return;
	for (unsigned i = 0; i < GROUP_MODELS; i++) {
		bool own = false;

		for (unsigned r = 0; r < e->n_rep; r++)
			own |= e->gm[i] == e->mr[r];
		if (!own)
			aw_model_free(e->gm[i]);
	}
	free(e->logits);
	free(e->ids);
	free(e->piece);
	aw_tok_free(e->tok);
	aw_kv_free(e->kv);
	for (unsigned r = 0; r < e->n_rep; r++)
		aw_model_free(e->mr[r]);
	aw_weights_put(e->w);
	aw_gguf_close(e->g);
	free(e->prepacked);
	free(e);
}

/* Load one model: the weights through the loader (repacked in place as they
 * land, a replica per node), a model per replica, the tokenizer, the KV
 * cache. */
static int instance_open(const char *path, const struct aw_engine_model_opts *o,
			 struct model_engine **ret_inst, struct aw_err *err)
{
	static const struct aw_engine_model_opts defaults;
	struct model_engine *e = calloc(1, sizeof(*e));
	struct aw_model_repacker rp = {0};
	const struct aw_model_hparams *hp;
	int ret;

	if (!o)
		o = &defaults;
	if (!e)
		return aw_err_set(err, ENOMEM, "out of memory");
	atomic_init(&e->refs, 1);
	snprintf(e->path, sizeof(e->path), "%s", path);
	ret = aw_gguf_open(path, &e->g, err);
	if (ret < 0)
		goto fail;
	{
		struct aw_load_opts lo = {.method = o->method,
					  .queue_depth = o->queue_depth,
					  .request_size = o->request_size,
					  .nodes = o->n_nodes ? o->nodes : NULL,
					  .n_nodes = o->n_nodes,
					  .on_progress = o->on_progress,
					  .ctx = o->progress_ctx,
					  .progress_ms = 1000,
					  .log = o->log,
					  .log_ctx = o->log_ctx};

		if (o->method != AW_LOAD_MMAP) {
			if (aw_model_repacker_init(&rp, e->g) < 0) {
				ret = aw_err_set(err, ENOMEM, "out of memory");
				goto fail;
			}
			lo.on_tensor_rw = aw_model_repacker_tensor;
			lo.tensor_ctx = &rp;
		}
		ret = aw_loader_load_gguf(e->g, &lo, &e->w, err);
		if (ret < 0 && rp.rc) /* the repacker's reason, not "cancelled" */
			ret = aw_err_set(err, -rp.rc, "%s", rp.msg[0] ? rp.msg : strerror(-rp.rc));
		if (ret < 0)
			goto fail;
		const struct aw_weights_info *wi = aw_weights_info(e->w);
		struct aw_model_params mp = {
			.kern = NULL, .max_batch = 512, .repack = 1, .prepacked = rp.done};

		for (unsigned r = 0; r < wi->n_replicas; r++) {
			ret = aw_model_load(e->g, aw_weights_data(e->w, r), wi->size, &mp,
					    &e->mr[r], err);
			if (ret < 0)
				goto fail;
			e->node[r] = wi->nodes[r];
			e->n_rep = r + 1;
		}
		e->m = e->mr[0];
		e->prepacked = rp.done; /* the groups' models are built on the same bytes */
		rp.done = NULL;
	}
	ret = aw_tok_new_from_gguf(e->g, &e->tok, err);
	if (ret < 0)
		goto fail;
	hp = aw_model_hparams(e->m);
	e->n_vocab = hp->n_vocab;
	e->ctx = hp->n_ctx < 4096 ? hp->n_ctx : 4096;
	struct aw_kv_config kc = {
		.n_layer = hp->n_layer,
		.kv_dim = aw_model_kv_dim(e->m),
		.block_size = 16,
		.max_seqs = 1,
		.max_seq_len = e->ctx,
		.type = AW_TYPE_F16}; /* as aw-infer: same numbers offline and served */
	ret = aw_kv_new(&kc, &e->kv);
	if (ret < 0) {
		aw_err_set(err, -ret, "KV cache of %d positions: %s", e->ctx, strerror(-ret));
		goto fail;
	}
	e->piece_cap = aw_tok_stream_max(e->tok);
	e->logits = malloc(sizeof(float) * (size_t)e->n_vocab);
	e->ids = malloc(sizeof(int32_t) * (size_t)e->ctx);
	e->piece = malloc(e->piece_cap);
	if (!e->logits || !e->ids || !e->piece) {
		ret = aw_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (aw_tok_eos(e->tok) >= 0)
		e->eos[e->n_eos++] = aw_tok_eos(e->tok);
	if (aw_tok_eot(e->tok) >= 0 && aw_tok_eot(e->tok) != aw_tok_eos(e->tok))
		e->eos[e->n_eos++] = aw_tok_eot(e->tok);
	*ret_inst = e;
	return 0;
fail:
	aw_model_repacker_fini(&rp);
	instance_free(e);
	return ret < 0 ? ret : -EINVAL;
}

/* --- the holder: current model and retired ones (live swap) -------------------------- */

struct holder {
	pthread_mutex_t mu;
	struct model_engine *cur;		       /* new requests take a reference on it */
	struct model_engine *retired;		       /* swapped out, freed when refs reach 0 */
	unsigned gen;				       /* read without the lock by the groups */
	struct model_engine *group_inst[GROUP_MODELS]; /* the instance each group runs */
	struct model_engine *group_prev[GROUP_MODELS]; /* the one before, until released */
};

static struct model_engine *acquire(struct holder *h)
{
	struct model_engine *e;

	pthread_mutex_lock(&h->mu);
	e = h->cur;
	atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&h->mu);
	return e;
}

static void release(struct model_engine *e)
{
	/* never frees: aw_engine_model_reap() does, on the control thread */
	atomic_fetch_sub_explicit(&e->refs, 1, memory_order_release);
}

static int model_generate(void *state, const struct aw_proto_req *req, aw_engine_emit_fn *emit,
			  void *emit_ctx, struct aw_engine_result *res)
{
	struct holder *h = state;
	struct model_engine *e = acquire(h); /* the request finishes on this model */
	int ret = instance_generate(e, req, emit, emit_ctx, res);

	release(e);
	return ret;
}

static void model_describe(void *state, char *buf, size_t cap)
{
	struct holder *h = state;
	struct model_engine *e = acquire(h);
	const struct aw_model_hparams *hp = aw_model_hparams(e->m);
	const struct aw_weights_info *wi = aw_weights_info(e->w);

	/* generation first: telemetry strings are short (128 bytes in DPDK 22.11) */
	snprintf(buf, cap,
		 "{\"generation\": %u, \"replicas\": %u, \"hugepages\": %s, \"load\": \"%s\", "
		 "\"layers\": %d, \"dim\": %d, \"vocab\": %d, \"ctx\": %d, \"kern\": \"%s\", "
		 "\"path\": \"%s\"}",
		 e->gen, wi->n_replicas, wi->hugetlb ? "true" : "false",
		 aw_loader_method_name(wi->method), hp->n_layer, hp->dim, hp->n_vocab, e->ctx,
		 aw_model_kern(e->m)->name, e->path);
	release(e);
}

static void model_free(void *state)
{
	struct holder *h = state;

	if (!h)
		return;
	instance_free(h->cur);
	while (h->retired) {
		struct model_engine *n = h->retired->next;

		instance_free(h->retired);
		h->retired = n;
	}
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/* --- worker groups ----------------------------------------------------------------- */

/* A group's model on the current instance, which the group holds (a
 * reference) until model_group_release(). It reads the replica of the
 * group's NUMA node; the first group there gets that replica's own model,
 * every other group a model of its own (own scratch) over the same weights:
 * the loader's replica, repacked once, in place. Under the holder's lock:
 * group leaders may call it at once during a swap. */
static int model_group_model(void *state, unsigned group, int node, int32_t max_batch,
			     struct aw_model **ret_m, const struct aw_tok **ret_tok,
			     struct aw_err *err)
{
	struct holder *h = state;
	struct model_engine *e;
	unsigned rep = 0;
	int lent = 0, ret = 0;

	if (group >= GROUP_MODELS || max_batch < 1)
		return aw_err_set(err, EINVAL, "group %u, max_batch %d: out of range", group,
				  max_batch);
	e = acquire(h);
	for (unsigned r = 0; r < e->n_rep; r++)
		if (e->node[r] == node)
			rep = r;
	struct aw_model *own = e->mr[rep];
	struct aw_model_params mp = {.kern = aw_model_kern(own),
				     .max_batch = max_batch,
				     .repack = 1,
				     .prepacked = e->prepacked};
	pthread_mutex_lock(&h->mu);
	for (unsigned i = 0; i < GROUP_MODELS; i++)
		lent |= e->gm[i] == own;
	if (!e->gm[group]) {
		if (!lent && max_batch <= aw_model_max_batch(own))
			e->gm[group] = own;
		else
			ret = aw_model_load(e->g, aw_weights_data(e->w, rep),
					    aw_weights_info(e->w)->size, &mp, &e->gm[group], err);
	}
	if (ret == 0) {
		if (h->group_inst[group]) { /* a swap: kept until model_group_release() */
			if (h->group_prev[group])
				release(h->group_prev[group]);
			h->group_prev[group] = h->group_inst[group];
		}
		h->group_inst[group] = e;
	}
	pthread_mutex_unlock(&h->mu);
	if (ret < 0) {
		release(e);
		return ret;
	}
	*ret_m = e->gm[group];
	*ret_tok = e->tok;
	return 0;
}

/* The group is done with the model it had before its last group_model()
 * (live swap: its scheduler runs on the new one now). */
static void model_group_release(void *state, unsigned group)
{
	struct holder *h = state;

	if (group < GROUP_MODELS && h->group_prev[group]) {
		release(h->group_prev[group]);
		h->group_prev[group] = NULL;
	}
}

/* --- agent operations: the chat template of a group's instance --- */
static int model_group_template(void *state, unsigned group, const char **ret, size_t *ret_len)
{
	struct holder *h = state;

	if (group >= GROUP_MODELS || !h->group_inst[group])
		return -ENOENT;
	return aw_gguf_get_str(h->group_inst[group]->g, "tokenizer.chat_template", ret, ret_len) < 0
		       ? -ENOENT
		       : 0;
}
/* --- */

static unsigned model_generation(void *state)
{
	struct holder *h = state;

	return __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
}

static const struct aw_engine_ops model_ops = {
	.name = "model",
	.generate = model_generate,
	.describe = model_describe,
	.free = model_free,
	.group_model = model_group_model,
	.group_release = model_group_release,
	.generation = model_generation,
	.group_template = model_group_template,
};

int aw_engine_model_open(const char *path, const struct aw_engine_model_opts *o,
			 struct aw_engine *ret_e, struct aw_err *err)
{
	struct holder *h = calloc(1, sizeof(*h));
	int ret;

	if (!h)
		return aw_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&h->mu, NULL);
	ret = instance_open(path, o, &h->cur, err);
	if (ret < 0) {
		model_free(h);
		return ret;
	}
	h->cur->gen = h->gen = 1;
	ret_e->ops = &model_ops;
	ret_e->state = h;
	return 0;
}

int aw_engine_model_swap(struct aw_engine *eng, const char *path,
			 const struct aw_engine_model_opts *o, struct aw_err *err)
{
	struct holder *h;
	struct model_engine *e, *old;
	int ret;

	if (!eng || eng->ops != &model_ops)
		return aw_err_set(err, EINVAL, "live swap needs the model engine");
	h = eng->state;
	ret = instance_open(path, o, &e, err); /* the old model serves meanwhile */
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&h->mu);
	old = h->cur;
	e->gen = h->gen + 1;
	h->cur = e;
	__atomic_store_n(&h->gen, e->gen, __ATOMIC_RELEASE);
	old->next = h->retired;
	h->retired = old;
	pthread_mutex_unlock(&h->mu);
	release(old); /* the holder's reference */
	return 0;
}

unsigned aw_engine_model_reap(struct aw_engine *eng)
{
	struct holder *h;
	struct model_engine **pp, *free_list = NULL;
	unsigned busy = 0;

	if (!eng || eng->ops != &model_ops)
		return 0;
	h = eng->state;
	pthread_mutex_lock(&h->mu);
	for (pp = &h->retired; *pp;) {
		struct model_engine *e = *pp;

		if (atomic_load_explicit(&e->refs, memory_order_acquire) == 0) {
			*pp = e->next;
			e->next = free_list;
			free_list = e;
		} else {
			busy++;
			pp = &e->next;
		}
	}
	pthread_mutex_unlock(&h->mu);
	while (free_list) { /* unmapping outside the lock */
		struct model_engine *n = free_list->next;

		instance_free(free_list);
		free_list = n;
	}
	return busy;
}

unsigned aw_engine_model_generation(const struct aw_engine *eng)
{
	struct holder *h;
	unsigned g;

	if (!eng || eng->ops != &model_ops)
		return 0;
	h = eng->state;
	g = __atomic_load_n(&h->gen, __ATOMIC_ACQUIRE);
	return g;
}
