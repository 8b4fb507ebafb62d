/* score.h — the arithmetic of CLASSIFY and EMBED, and direct (one request,
 * no scheduler) versions of both.
 *
 * EMBED pools the final hidden states of a prompt (the residual stream
 * after output_norm: what llama.cpp calls result_norm and what its
 * --embedding output pools):
 *   mean  the average over every prompt token;
 *   cls   the first token's state;
 *   last  the last token's state;
 * then optionally divides by the Euclidean norm (llama.cpp's default
 * --embd-normalize 2).
 *
 * CLASSIFY scores each candidate label by the log-probability of its tokens
 * continuing the prompt, log P(l_0 | prompt) + sum_i log P(l_i | prompt,
 * l_0..l_{i-1}), and reports softmax over the candidates of those sums: the
 * probability of each label given that the answer is one of them. For a
 * single-token label the full-vocabulary normaliser cancels out, so its
 * score needs only its own row of the output matrix
 * (aw_model_logits_rows()); labels of several tokens need full logits at
 * each of their positions.
 *
 * The scheduler (inference/scheduler.h) serves both kinds batched; the
 * direct functions here are the reference the tests hold it to, and what
 * aw-infer --embed / --classify run.
 */
#ifndef AW_SCORE_H
#define AW_SCORE_H

#include <stddef.h>
#include <stdint.h>

struct aw_model;
struct aw_kv;
struct aw_pool;

enum aw_score_pool {
	AW_SCORE_POOL_MEAN = 0, /* average over the prompt's tokens */
	AW_SCORE_POOL_CLS = 1,	/* the first token */
	AW_SCORE_POOL_LAST = 2, /* the last token */
	AW_SCORE_POOL_MAX_ = 3,
};

/* "mean", "cls", "last"; NULL for an unknown value. */
const char *aw_score_pool_name(unsigned p);
/* The pooling named 's' (as above), or -EINVAL. */
int aw_score_pool_parse(const char *s);

/* Finish an embedding of 'dim' floats in 'v': for mean pooling divide the
 * sum of 'n' states by n; then, when 'normalize', divide by the L2 norm
 * (a zero vector stays zero). */
void aw_score_embed_finish(float *v, int32_t dim, enum aw_score_pool p, int32_t n, int normalize);

/* log(sum_i exp(logits[i])) over 'n_vocab' logits (the log-softmax
 * normaliser; one per row serves every token scored from it). */
double aw_score_lse(const float *logits, int32_t n_vocab);

/* log(softmax(logits))[token] over 'n_vocab' logits. */
double aw_score_logprob(const float *logits, int32_t n_vocab, int32_t token);

/* probs[i] = exp(lp[i]) / sum_j exp(lp[j]) for n >= 1 log-probabilities,
 * computed stably (largest subtracted first). */
void aw_score_normalize(const double *lp, int32_t n, float *probs);

/* Embed tokens[0..n) directly: prefill them in sequence 0 of 'kv' (cleared
 * first; at most the model's max_batch tokens per forward pass) and pool.
 * Writes dim floats to 'out'. Returns 0 or -errno (from the forward pass,
 * -EINVAL for n < 1 or a bad pooling, -ENOMEM). */
int aw_score_embed(struct aw_model *m, struct aw_kv *kv, struct aw_pool *pool,
		   const int32_t *tokens, int32_t n, enum aw_score_pool p, int normalize,
		   float *out);

/* Classify directly, the plain way: for each label j, prefill prompt +
 * labels[j] from scratch in sequence 0 and sum the log-probabilities of the
 * label's tokens (full logits at every position); then normalise. Writes
 * n_labels probabilities (and, if 'ret_lp' is not NULL, the sums). Returns 0
 * or -errno (-EINVAL: empty prompt or label). */
int aw_score_classify(struct aw_model *m, struct aw_kv *kv, struct aw_pool *pool,
		      const int32_t *prompt, int32_t n_prompt, const int32_t *const *labels,
		      const int32_t *label_lens, int32_t n_labels, float *probs, double *ret_lp);

#endif
