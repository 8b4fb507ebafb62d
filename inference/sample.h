/* sample.h — per-sequence token sampler and stop-condition tracker.
 *
 * One struct aw_sampler belongs to one sequence (one request). It holds its
 * own PRNG state (seeded from the request's seed: same seed and same logits,
 * same tokens), the window of recent tokens the penalties look at, scratch
 * sized for the vocabulary at creation (nothing is allocated per token), and
 * the text held back while it could still be the start of a stop string.
 *
 * Each step the caller does:
 *
 *     tok = aw_sample_pick(s, logits);              choose a token
 *     fin = aw_sample_accept(s, tok, piece, len,    record it; get the text that
 *                            &text, &text_len);     is safe to send, and why to end
 *
 * aw_sample_pick() applies, in this order (llama.cpp's default chain, so the
 * two engines agree on what a parameter means):
 *   1. the allowed-token mask (from aw_sample_set_mask() or the mask hook):
 *      disallowed tokens get -inf;
 *   2. penalties over the last 'penalty_last_n' accepted tokens: repetition
 *      (a logit l of a token seen in the window becomes l/r when l > 0 and l*r
 *      otherwise), presence (l -= presence once per seen token) and frequency
 *      (l -= frequency * count);
 *   3. temperature <= 0: greedy (the largest logit; the lowest id on ties);
 *   4. otherwise top-k (keep the k largest logits; ties at the k-th logit are
 *      broken by lower id), then top-p (the smallest prefix of the
 *      descending order whose probability at temperature 1 reaches p; at
 *      least one token), then min-p (drop tokens whose probability is below
 *      min_p times the largest one), then temperature (softmax of l/T over the
 *      survivors) and one draw from the sequence's PRNG.
 *
 * Stop strings are matched on the decoded text stream, across token
 * boundaries: aw_sample_accept() holds back the longest tail of the text that
 * is a prefix of some stop string, and when a stop string appears it returns
 * the text before it and AW_SAMPLE_STOP (the stop string itself is not
 * emitted). EOS tokens end the sequence without emitting their piece.
 */
#ifndef AW_SAMPLE_H
#define AW_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define AW_SAMPLE_MAX_EOS  8  /* end-of-sequence ids a request can name */
#define AW_SAMPLE_MAX_STOP 16 /* stop strings per request */

struct aw_sample_params {
	float temperature;		/* <= 0: greedy */
	int32_t top_k;			/* <= 0: off */
	float top_p;			/* >= 1: off; (0, 1] */
	float min_p;			/* <= 0: off; [0, 1] */
	float repeat_penalty;		/* 1: off; > 0 */
	float presence_penalty;		/* 0: off */
	float frequency_penalty;	/* 0: off */
	int32_t penalty_last_n;		/* window of recent tokens for the penalties; 0: off */
	uint64_t seed;			/* PRNG seed: same seed, same tokens */
	int32_t max_tokens;		/* stop after this many accepted tokens; <= 0: no limit */
	int32_t n_eos;			/* number of ids in eos[] */
	int32_t eos[AW_SAMPLE_MAX_EOS]; /* tokens that end the sequence */
	int32_t n_stop;			/* number of strings in stop[] */
	const char *stop[AW_SAMPLE_MAX_STOP]; /* stop strings (copied by aw_sample_new) */
};

/* Why aw_sample_accept() says to stop (0: continue). */
enum aw_sample_finish {
	AW_SAMPLE_CONTINUE = 0,
	AW_SAMPLE_EOS = 1,    /* an EOS token was accepted */
	AW_SAMPLE_LENGTH = 2, /* max_tokens reached */
	AW_SAMPLE_STOP = 3,   /* a stop string appeared in the text */
};

/* Hook for constrained decoding (grammars): 'fill' is called by each
 * aw_sample_pick() with a bitmap of ceil(n_vocab/64) words, all bits set;
 * it clears the bits of tokens that are not allowed. 'accept' is called by
 * aw_sample_accept() with the chosen token so the hook can advance its state.
 * 'forced' (fast-forward; the sampler never calls it, its owner does: see
 * the scheduler) writes to out[0..cap) the tokens the constraint determines
 * from its current state, in order, and returns their count (0: none); it
 * does not advance the state: each of them is then accepted through
 * aw_sample_accept() like a sampled token. It may name an EOS token when
 * nothing else may follow. Any of the three may be NULL. */
struct aw_sample_hook {
	void (*fill)(void *ctx, uint64_t *allowed, int32_t n_vocab);
	void (*accept)(void *ctx, int32_t token);
	void *ctx;
	int32_t (*forced)(void *ctx, int32_t *out, int32_t cap);
};

struct aw_sampler;

/* Fill 'p' with the defaults: greedy, no filters, no penalties (repeat 1.0,
 * window 64), seed 0, no token limit, no EOS, no stop strings. */
void aw_sample_params_default(struct aw_sample_params *p);

/* Check 'p' for a vocabulary of n_vocab tokens. Returns 0 or -EINVAL and
 * names the bad field in 'why' (which may be NULL) when it is not NULL. */
int aw_sample_params_check(const struct aw_sample_params *p, int32_t n_vocab, const char **why);

/* Create a sampler for one sequence. Copies 'p' and the stop strings.
 * Returns 0 and sets *ret_s (caller frees with aw_sample_free()), or -EINVAL
 * (bad parameters) or -ENOMEM. */
int aw_sample_new(const struct aw_sample_params *p, int32_t n_vocab, struct aw_sampler **ret_s);

/* Release 's' (NULL is fine). */
void aw_sample_free(struct aw_sampler *s);

/* Restart 's' for a new request with the same parameters: reseed the PRNG
 * with 'seed', empty the penalty window, the count and the held-back text. */
void aw_sample_reset(struct aw_sampler *s, uint64_t seed);

/* Use 'allowed' (ceil(n_vocab/64) words, bit t of word t/64 set when token t
 * may be chosen) for the following picks, or no mask when NULL. The caller
 * keeps the bitmap alive while it is set. */
void aw_sample_set_mask(struct aw_sampler *s, const uint64_t *allowed);

/* Install (or clear, with NULL) a mask hook; see struct aw_sample_hook. */
void aw_sample_set_hook(struct aw_sampler *s, const struct aw_sample_hook *hook);

/* Seed the penalty window with tokens the sequence already has (the prompt),
 * without counting them toward max_tokens. */
void aw_sample_prime(struct aw_sampler *s, const int32_t *tokens, size_t n);

/* Choose the next token from 'logits' (n_vocab values, not modified). Returns
 * the token id, or -1 when the mask allows no token with a finite logit. */
int32_t aw_sample_pick(struct aw_sampler *s, const float *logits);

/* Record the chosen 'token' whose decoded text is piece[0..len): add it to
 * the penalty window, count it, tell the hook, feed the text to the stop
 * matcher. Sets *ret_text and *ret_len to the text that may be sent now (valid
 * until the next call on 's'; possibly empty) and returns why to stop, or
 * AW_SAMPLE_CONTINUE. On EOS and LENGTH the held-back text is released. */
enum aw_sample_finish aw_sample_accept(struct aw_sampler *s, int32_t token, const char *piece,
				       size_t len, const char **ret_text, size_t *ret_len);

/* Tokens accepted since creation or the last reset. */
int32_t aw_sample_count(const struct aw_sampler *s);

/* Uniform double in [0, 1) from the sampler's PRNG (exposed for tests). */
double aw_sample_uniform(struct aw_sampler *s);

/* Name of a finish reason: "continue", "eos", "length", "stop". */
const char *aw_sample_finish_name(enum aw_sample_finish f);

#endif
