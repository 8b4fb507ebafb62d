/* score.c — pooling, normalisation and label scoring for EMBED and CLASSIFY
 * (see score.h), and the direct one-request versions of both. */
#include "score.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "model.h"

static const char *const pool_names[AW_SCORE_POOL_MAX_] = {"mean", "cls", "last"};

const char *aw_score_pool_name(unsigned p)
{
	return p < AW_SCORE_POOL_MAX_ ? pool_names[p] : NULL;
}

int aw_score_pool_parse(const char *s)
{
	for (int i = 0; i < AW_SCORE_POOL_MAX_; i++)
		if (s && strcmp(s, pool_names[i]) == 0)
			return i;
	return -EINVAL;
}

void aw_score_embed_finish(float *v, int32_t dim, enum aw_score_pool p, int32_t n, int normalize)
{
	if (p == AW_SCORE_POOL_MEAN && n > 1)
		for (int32_t i = 0; i < dim; i++)
			v[i] /= (float)n;
	if (!normalize)
		return;
	double ss = 0;
	for (int32_t i = 0; i < dim; i++)
		ss += (double)v[i] * v[i];
	if (ss <= 0)
		return;
	const float inv = (float)(1.0 / sqrt(ss));
	for (int32_t i = 0; i < dim; i++)
		v[i] *= inv;
}

double aw_score_lse(const float *logits, int32_t n_vocab)
{
	float mx = logits[0];
	double sum = 0;

	for (int32_t i = 1; i < n_vocab; i++)
		if (logits[i] > mx)
			mx = logits[i];
	/* each term exp(l - max) <= 1 in float (expf: < 1 ulp), summed in
	 * double: the sum's relative error stays below 2^-23 */
	for (int32_t i = 0; i < n_vocab; i++)
		sum += (double)expf(logits[i] - mx);
	return (double)mx + log(sum);
}

double aw_score_logprob(const float *logits, int32_t n_vocab, int32_t token)
{
	return (double)logits[token] - aw_score_lse(logits, n_vocab);
}

void aw_score_normalize(const double *lp, int32_t n, float *probs)
{
	double mx = lp[0], sum = 0;

	for (int32_t i = 1; i < n; i++)
		if (lp[i] > mx)
			mx = lp[i];
	for (int32_t i = 0; i < n; i++)
		sum += exp(lp[i] - mx);
	for (int32_t i = 0; i < n; i++)
		probs[i] = (float)(exp(lp[i] - mx) / sum);
}

/* Prefill t[0..n) into sequence 0 from position 'at' with output flags
 * 'flag' on every token (0: only the last gets logits). */
static int prefill(struct aw_model *m, struct aw_kv *kv, struct aw_pool *pool, const int32_t *t,
		   int32_t n, int32_t at, int8_t flag, float *logits, float *hidden)
{
	const int32_t B = aw_model_max_batch(m);
	const size_t dim = (size_t)aw_model_hparams(m)->dim;
	const size_t nv = (size_t)aw_model_hparams(m)->n_vocab;
	int32_t *pos = malloc(sizeof(int32_t) * (size_t)B * 2);
	int8_t *fl = malloc((size_t)B);
	int ret = 0;

	if (!pos || !fl) {
		ret = -ENOMEM;
		goto out;
	}
	int32_t *sq = pos + B;
	for (int32_t i = 0; i < n && ret >= 0; i += B) {
		const int32_t k = n - i < B ? n - i : B;
		for (int32_t j = 0; j < k; j++) {
			pos[j] = at + i + j;
			sq[j] = 0;
			fl[j] = flag ? flag : (int8_t)(i + j == n - 1 ? AW_MODEL_OUT_LOGITS : 0);
		}
		const struct aw_batch b = {k, t + i, pos, sq, fl};
		/* with 'flag' every token has a row; without, only the last one */
		ret = aw_model_forward_ex(m, kv, &b, pool,
					  logits ? logits + (flag ? (size_t)i * nv : 0) : NULL,
					  hidden ? hidden + (size_t)i * dim : NULL);
	}
out:
	free(pos);
	free(fl);
	return ret < 0 ? ret : 0;
}

int aw_score_embed(struct aw_model *m, struct aw_kv *kv, struct aw_pool *pool,
		   const int32_t *tokens, int32_t n, enum aw_score_pool p, int normalize,
		   float *out)
{
	const int32_t dim = aw_model_hparams(m)->dim;
	float *h;
	int ret;

	if (n < 1 || (unsigned)p >= AW_SCORE_POOL_MAX_)
		return -EINVAL;
	h = malloc(sizeof(float) * (size_t)dim * (size_t)n);
	if (!h)
		return -ENOMEM;
	aw_kv_seq_clear(kv, 0);
	ret = prefill(m, kv, pool, tokens, n, 0, AW_MODEL_OUT_HIDDEN, NULL, h);
	aw_kv_seq_clear(kv, 0);
	if (ret == 0) {
		memset(out, 0, sizeof(float) * (size_t)dim);
		for (int32_t t = 0; t < n; t++) {
			if ((p == AW_SCORE_POOL_CLS && t != 0) ||
			    (p == AW_SCORE_POOL_LAST && t != n - 1))
				continue;
			for (int32_t i = 0; i < dim; i++)
				out[i] += h[(size_t)t * (size_t)dim + (size_t)i];
		}
		aw_score_embed_finish(out, dim, p, n, normalize);
	}
	free(h);
	return ret;
}

int aw_score_classify(struct aw_model *m, struct aw_kv *kv, struct aw_pool *pool,
		      const int32_t *prompt, int32_t n_prompt, const int32_t *const *labels,
		      const int32_t *label_lens, int32_t n_labels, float *probs, double *ret_lp)
{
	const int32_t nv = aw_model_hparams(m)->n_vocab;
	int32_t max_len = 0;
	double *lp = calloc((size_t)(n_labels > 0 ? n_labels : 1), sizeof(double));
	float *lg = NULL, *lgp = malloc(sizeof(float) * (size_t)nv);
	int ret = 0;

	if (!lp || !lgp) {
		ret = -ENOMEM;
		goto out;
	}
	if (n_prompt < 1 || n_labels < 1) {
		ret = -EINVAL;
		goto out;
	}
	for (int32_t j = 0; j < n_labels; j++) {
		if (label_lens[j] < 1) {
			ret = -EINVAL;
			goto out;
		}
		if (label_lens[j] > max_len)
			max_len = label_lens[j];
	}
	lg = malloc(sizeof(float) * (size_t)nv * (size_t)max_len);
	if (!lg) {
		ret = -ENOMEM;
		goto out;
	}
	for (int32_t j = 0; j < n_labels && ret == 0; j++) {
		const int32_t L = label_lens[j];
		/* prompt from scratch: its last token's logits predict l_0 */
		aw_kv_seq_clear(kv, 0);
		ret = prefill(m, kv, pool, prompt, n_prompt, 0, 0, lgp, NULL);
		if (ret < 0)
			break;
		lp[j] = aw_score_logprob(lgp, nv, labels[j][0]);
		if (L > 1) {
			/* l_0..l_{L-2}, each predicting the next label token */
			ret = prefill(m, kv, pool, labels[j], L - 1, n_prompt, AW_MODEL_OUT_LOGITS,
				      lg, NULL);
			for (int32_t i = 0; ret == 0 && i < L - 1; i++)
				lp[j] += aw_score_logprob(lg + (size_t)i * (size_t)nv, nv,
							  labels[j][i + 1]);
		}
	}
	aw_kv_seq_clear(kv, 0);
	if (ret == 0) {
		aw_score_normalize(lp, n_labels, probs);
		if (ret_lp)
			memcpy(ret_lp, lp, sizeof(double) * (size_t)n_labels);
	}
out:
	free(lg);
	free(lgp);
	free(lp);
	return ret;
}
