/* engine-model.c — the real engine: a GGUF model through libaw_inference.
 *
 * One request at a time per worker group (continuous batching comes with the
 * scheduler): encode the prompt with the file's tokenizer, prefill in chunks
 * of the model's batch, then pick / accept / decode token by token exactly as
 * aw-infer does (same sampler, same kernels), streaming each token's text
 * through the emit callback. The KV cache holds one sequence of the model's
 * context (at most 4096 positions).
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "model.h"
#include "sample.h"
#include "tok.h"

#define GROUP_MODELS 64

struct model_engine {
	struct aw_gguf *g;
	struct aw_model *m;
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

static int prefill(struct model_engine *e, const int32_t *tok, int32_t n)
{
	const int32_t B = aw_model_max_batch(e->m);
	int32_t pos[512], sq[512];
	int ret = 0;

	for (int32_t i = 0; i < n && ret >= 0; i += B) {
		const int32_t k = n - i < B ? n - i : B;

		for (int32_t j = 0; j < k; j++) {
			pos[j] = i + j;
			sq[j] = 0;
		}
		struct aw_batch b = {k, tok + i, pos, sq, NULL};
		ret = aw_model_forward(e->m, e->kv, &b, NULL, e->logits);
	}
	return ret < 0 ? ret : 0;
}

static int model_generate(void *state, const struct aw_proto_req *req, aw_engine_emit_fn *emit,
			  void *emit_ctx, struct aw_engine_result *res)
{
	struct model_engine *e = state;
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
	if ((ret = prefill(e, e->ids, (int32_t)n_ids)) < 0) {
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
		if ((ret = aw_model_forward(e->m, e->kv, &b, NULL, e->logits)) < 0) {
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

static void model_describe(void *state, char *buf, size_t cap)
{
	struct model_engine *e = state;
	const struct aw_model_hparams *hp = aw_model_hparams(e->m);

	snprintf(buf, cap,
		 "{\"layers\": %d, \"dim\": %d, \"vocab\": %d, \"ctx\": %d, \"kern\": \"%s\"}",
		 hp->n_layer, hp->dim, hp->n_vocab, e->ctx, aw_model_kern(e->m)->name);
}

static void model_free(void *state)
{
	struct model_engine *e = state;

	if (!e)
		return;
	for (unsigned i = 0; i < GROUP_MODELS; i++)
		if (e->gm[i] != e->m)
			aw_model_free(e->gm[i]);
	free(e->logits);
	free(e->ids);
	free(e->piece);
	aw_tok_free(e->tok);
	aw_kv_free(e->kv);
	aw_model_free(e->m);
	aw_gguf_close(e->g);
	free(e);
}

/* --- worker groups ----------------------------------------------------------------- */

/* The first group gets the engine's own instance (the one-request path is
 * then unused); every other group loads an instance of its own over the same
 * mapping: own scratch, and own repacked weights (sharing those between the
 * groups of a node is not done yet). */
static int model_group_model(void *state, unsigned group, int32_t max_batch,
			     struct aw_model **ret_m, const struct aw_tok **ret_tok,
			     struct aw_err *err)
{
	struct model_engine *e = state;
	struct aw_model_params mp = {
		.kern = aw_model_kern(e->m), .max_batch = max_batch, .repack = 1};
	int lent = 0, ret;

	if (group >= GROUP_MODELS || max_batch < 1)
		return aw_err_set(err, EINVAL, "group %u, max_batch %d: out of range", group,
				  max_batch);
	for (unsigned i = 0; i < GROUP_MODELS; i++)
		lent |= e->gm[i] == e->m;
	if (!e->gm[group]) {
		if (!lent && max_batch <= aw_model_max_batch(e->m)) {
			e->gm[group] = e->m;
		} else {
			ret = aw_model_load(e->g, aw_gguf_data(e->g), aw_gguf_data_size(e->g), &mp,
					    &e->gm[group], err);
			if (ret < 0)
				return ret;
		}
	}
	*ret_m = e->gm[group];
	*ret_tok = e->tok;
	return 0;
}

static const struct aw_engine_ops model_ops = {
	.name = "model",
	.generate = model_generate,
	.describe = model_describe,
	.free = model_free,
	.group_model = model_group_model,
};

int aw_engine_model_open(const char *path, struct aw_engine *ret_e, struct aw_err *err)
{
	struct model_engine *e = calloc(1, sizeof(*e));
	struct aw_model_params mp = {.kern = NULL, .max_batch = 512, .repack = 1};
	const struct aw_model_hparams *hp;
	int ret;

	if (!e)
		return aw_err_set(err, ENOMEM, "out of memory");
	snprintf(e->path, sizeof(e->path), "%s", path);
	ret = aw_gguf_open(path, &e->g, err);
	if (ret < 0)
		goto fail;
	ret = aw_model_load(e->g, aw_gguf_data(e->g), aw_gguf_data_size(e->g), &mp, &e->m, err);
	if (ret < 0)
		goto fail;
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
	ret_e->ops = &model_ops;
	ret_e->state = e;
	return 0;
fail:
	model_free(e);
	return ret < 0 ? ret : -EINVAL;
}
