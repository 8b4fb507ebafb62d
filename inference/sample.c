/* sample.c — the per-sequence sampler: mask, penalties, greedy or
 * top-k/top-p/min-p/temperature with a private xoshiro256** PRNG, and the
 * stop-string matcher on the decoded text stream. See sample.h for the
 * order of the steps and what each parameter means.
 *
 * Everything a pick needs (a copy of the logits, the candidate ids, the
 * per-token counts for the penalties, the hook's bitmap) is allocated once in
 * aw_sample_new(), sized by the vocabulary. Sorting is avoided where it can
 * be: top-k keeps a heap of k entries, and top-p/min-p sort only the tokens
 * within 12 nats of the largest logit unless the nucleus reaches below them.
 */
#include "sample.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_SLACK 1024 /* room for pieces beyond the longest stop string */
#define NEAR_NATS  12.0f

struct cand {
	float l;   /* logit after mask and penalties */
	int32_t t; /* token id */
};

struct aw_sampler {
	struct aw_sample_params p; /* stop[] point into stop_buf */
	char *stop_buf;		   /* the stop strings, NUL-separated */
	size_t stop_len[AW_SAMPLE_MAX_STOP];
	size_t max_stop; /* longest stop string */
	int32_t n_vocab;
	uint64_t rng[4]; /* xoshiro256** state */

	int32_t *window; /* ring of the last penalty_last_n accepted tokens */
	int32_t win_n;	 /* tokens in the ring */
	int32_t win_head;
	int32_t n_accepted;
	uint16_t *counts; /* (n_vocab) scratch: occurrences in the window */

	const uint64_t *mask; /* caller's bitmap or NULL */
	struct aw_sample_hook hook;
	uint64_t *hook_bits; /* (ceil(n_vocab/64)) */

	float *work;	   /* (n_vocab) logits after mask and penalties */
	struct cand *cand; /* (n_vocab) candidates */

	char *text; /* held-back text (could start a stop string) */
	size_t text_len, text_cap;
	char *out; /* text returned by the last accept */
	size_t out_cap;
};

/* --- PRNG: splitmix64 to seed, xoshiro256** to draw ---------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
	const uint64_t r = rotl(s[1] * 5, 7) * 9;
	const uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

double aw_sample_uniform(struct aw_sampler *s)
{
	return (double)(rng_next(s->rng) >> 11) * 0x1p-53;
}

/* --- parameters ------------------------------------------------------------ */

void aw_sample_params_default(struct aw_sample_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 0.0f;
	p->top_k = 0;
	p->top_p = 1.0f;
	p->min_p = 0.0f;
	p->repeat_penalty = 1.0f;
	p->penalty_last_n = 64;
}

int aw_sample_params_check(const struct aw_sample_params *p, int32_t n_vocab, const char **why)
{
	const char *w = NULL;

	if (n_vocab <= 0)
		w = "vocabulary is empty";
	else if (isnan(p->temperature) || isinf(p->temperature))
		w = "temperature must be finite";
	else if (isnan(p->top_p) || p->top_p <= 0.0f)
		w = "top_p must be in (0, 1]";
	else if (isnan(p->min_p) || p->min_p > 1.0f)
		w = "min_p must be in [0, 1]";
	else if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
		w = "repeat_penalty must be finite and > 0";
	else if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
		w = "presence/frequency penalties must be finite";
	else if (p->penalty_last_n < 0 || p->penalty_last_n > 1 << 20)
		w = "penalty_last_n must be in [0, 2^20]";
	else if (p->n_eos < 0 || p->n_eos > AW_SAMPLE_MAX_EOS)
		w = "too many EOS ids";
	else if (p->n_stop < 0 || p->n_stop > AW_SAMPLE_MAX_STOP)
		w = "too many stop strings";
	for (int i = 0; !w && i < p->n_eos; i++)
		if (p->eos[i] < 0 || p->eos[i] >= n_vocab)
			w = "EOS id outside the vocabulary";
	for (int i = 0; !w && i < p->n_stop; i++)
		if (!p->stop[i] || !p->stop[i][0] || strlen(p->stop[i]) > 4096)
			w = "stop strings must be 1..4096 bytes";
	if (w) {
		if (why)
			*why = w;
		return -EINVAL;
	}
	return 0;
}

/* --- life cycle -------------------------------------------------------------- */

int aw_sample_new(const struct aw_sample_params *p, int32_t n_vocab, struct aw_sampler **ret_s)
{
	struct aw_sampler *s;
	size_t stop_total = 0, words = ((size_t)n_vocab + 63) / 64;

	if (aw_sample_params_check(p, n_vocab, NULL) < 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = *p;
	s->n_vocab = n_vocab;
	for (int i = 0; i < p->n_stop; i++) {
		s->stop_len[i] = strlen(p->stop[i]);
		stop_total += s->stop_len[i] + 1;
		if (s->stop_len[i] > s->max_stop)
			s->max_stop = s->stop_len[i];
	}
	s->stop_buf = malloc(stop_total + 1);
	s->window = malloc(sizeof(int32_t) * (size_t)(p->penalty_last_n + 1));
	s->counts = calloc((size_t)n_vocab, sizeof(uint16_t));
	s->hook_bits = malloc(words * sizeof(uint64_t));
	s->work = malloc(sizeof(float) * (size_t)n_vocab);
	s->cand = malloc(sizeof(struct cand) * (size_t)n_vocab);
	s->text_cap = 2 * s->max_stop + TEXT_SLACK;
	s->out_cap = s->text_cap;
	s->text = malloc(s->text_cap);
	s->out = malloc(s->out_cap);
	if (!s->stop_buf || !s->window || !s->counts || !s->hook_bits || !s->work || !s->cand ||
	    !s->text || !s->out)
		goto err;
	for (int i = 0, off = 0; i < p->n_stop; i++) {
		memcpy(s->stop_buf + off, p->stop[i], s->stop_len[i] + 1);
		s->p.stop[i] = s->stop_buf + off;
		off += (int)s->stop_len[i] + 1;
	}
	aw_sample_reset(s, p->seed);
	*ret_s = s;
	return 0;
err:
	aw_sample_free(s);
	return -ENOMEM;
}

void aw_sample_free(struct aw_sampler *s)
{
	if (!s)
		return;
	free(s->stop_buf);
	free(s->window);
	free(s->counts);
	free(s->hook_bits);
	free(s->work);
	free(s->cand);
	free(s->text);
	free(s->out);
	free(s);
}

void aw_sample_reset(struct aw_sampler *s, uint64_t seed)
{
	uint64_t x = seed;

	s->p.seed = seed;
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	s->win_n = 0;
	s->win_head = 0;
	s->n_accepted = 0;
	s->text_len = 0;
}

void aw_sample_set_mask(struct aw_sampler *s, const uint64_t *allowed)
{
	s->mask = allowed;
}

void aw_sample_set_hook(struct aw_sampler *s, const struct aw_sample_hook *hook)
{
	if (hook)
		s->hook = *hook;
	else
		memset(&s->hook, 0, sizeof(s->hook));
}

static void window_push(struct aw_sampler *s, int32_t token)
{
	const int32_t cap = s->p.penalty_last_n;

	if (cap == 0)
		return;
	s->window[s->win_head] = token;
	s->win_head = (s->win_head + 1) % cap;
	if (s->win_n < cap)
		s->win_n++;
}

void aw_sample_prime(struct aw_sampler *s, const int32_t *tokens, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tokens[i] >= 0 && tokens[i] < s->n_vocab)
			window_push(s, tokens[i]);
}

int32_t aw_sample_count(const struct aw_sampler *s)
{
	return s->n_accepted;
}

/* --- pick ------------------------------------------------------------------------ */

/* a ranks before b: larger logit first, then lower id */
static bool before(const struct cand *a, const struct cand *b)
{
	return a->l > b->l || (a->l == b->l && a->t < b->t);
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	return before(x, y) ? -1 : before(y, x) ? 1 : 0;
}

/* Min-heap (by rank: the root is the worst kept candidate) of k entries. */
static void heap_down(struct cand *h, size_t n, size_t i)
{
	for (;;) {
		size_t w = i, l = 2 * i + 1, r = l + 1;

		if (l < n && before(&h[w], &h[l]))
			w = l;
		if (r < n && before(&h[w], &h[r]))
			w = r;
		if (w == i)
			return;
		struct cand t = h[i];
		h[i] = h[w];
		h[w] = t;
		i = w;
	}
}

/* Keep the k best of c[0..n) in c[0..k), sorted best first. */
static size_t top_k(struct cand *c, size_t n, size_t k)
{
	for (size_t i = k / 2; i-- > 0;)
		heap_down(c, k, i);
	for (size_t i = k; i < n; i++) {
		if (before(&c[i], &c[0])) {
			c[0] = c[i];
			heap_down(c, k, 0);
		}
	}
	qsort(c, k, sizeof(*c), cand_cmp);
	return k;
}

static void apply_penalties(struct aw_sampler *s, float *l)
{
	const struct aw_sample_params *p = &s->p;

	if (s->win_n == 0 || (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f &&
			      p->frequency_penalty == 0.0f))
		return;
	for (int32_t i = 0; i < s->win_n; i++)
		if (s->counts[s->window[i]] < UINT16_MAX)
			s->counts[s->window[i]]++;
	for (int32_t i = 0; i < s->win_n; i++) {
		const int32_t t = s->window[i];
		const uint16_t c = s->counts[t];

		if (c == 0)
			continue; /* already done */
		if (l[t] > 0.0f)
			l[t] /= p->repeat_penalty;
		else
			l[t] *= p->repeat_penalty;
		l[t] -= p->presence_penalty + p->frequency_penalty * (float)c;
		s->counts[t] = 0;
	}
}

int32_t aw_sample_pick(struct aw_sampler *s, const float *logits)
{
	const struct aw_sample_params *p = &s->p;
	const int32_t nv = s->n_vocab;
	float *l = s->work;
	struct cand *c = s->cand;
	size_t n = 0;

	memcpy(l, logits, sizeof(float) * (size_t)nv);

	/* 1. mask: the caller's bitmap, then the hook's */
	if (s->mask)
		for (int32_t t = 0; t < nv; t++)
			if (!(s->mask[t >> 6] >> (t & 63) & 1))
				l[t] = -INFINITY;
	if (s->hook.fill) {
		size_t words = ((size_t)nv + 63) / 64;

		memset(s->hook_bits, 0xff, words * sizeof(uint64_t));
		s->hook.fill(s->hook.ctx, s->hook_bits, nv);
		for (int32_t t = 0; t < nv; t++)
			if (!(s->hook_bits[t >> 6] >> (t & 63) & 1))
				l[t] = -INFINITY;
	}

	/* 2. penalties over the recent window */
	apply_penalties(s, l);

	/* 3. greedy: the largest finite logit, lowest id on ties */
	if (!(p->temperature > 0.0f)) {
		int32_t best = -1;

		for (int32_t t = 0; t < nv; t++)
			if (isfinite(l[t]) && (best < 0 || l[t] > l[best]))
				best = t;
		return best;
	}

	/* 4. candidates: every token with a finite logit */
	for (int32_t t = 0; t < nv; t++)
		if (isfinite(l[t]))
			c[n++] = (struct cand){l[t], t};
	if (n == 0)
		return -1;

	bool sorted = false;
	if (p->top_k > 0 && (size_t)p->top_k < n) {
		n = top_k(c, n, (size_t)p->top_k);
		sorted = true;
	}

	if (p->top_p < 1.0f || p->min_p > 0.0f) {
		float max = c[0].l;
		double z = 0.0;

		for (size_t i = 1; i < n; i++)
			max = fmaxf(max, c[i].l);
		for (size_t i = 0; i < n; i++)
			z += exp((double)(c[i].l - max));

		/* Sort the tokens near the top first; widen to all of them only if
		 * the nucleus reaches below. Everything outside the near set ranks
		 * after everything inside it, so the sorted prefix is exact. */
		size_t m = n;
		if (!sorted) {
			m = 0;
			for (size_t i = 0; i < n; i++) {
				if (c[i].l >= max - NEAR_NATS) {
					struct cand t = c[m];
					c[m++] = c[i];
					c[i] = t;
				}
			}
			qsort(c, m, sizeof(*c), cand_cmp);
		}
		size_t keep = n;
		if (p->top_p < 1.0f) {
			double cum = 0.0;
			size_t i;

			for (i = 0; i < m; i++) {
				cum += exp((double)(c[i].l - max)) / z;
				if (cum >= p->top_p)
					break;
			}
			if (i < m) {
				keep = i + 1;
			} else if (m < n) {
				qsort(c, n, sizeof(*c), cand_cmp);
				cum = 0.0;
				for (i = 0; i < n; i++) {
					cum += exp((double)(c[i].l - max)) / z;
					if (cum >= p->top_p)
						break;
				}
				keep = i < n ? i + 1 : n;
				m = n;
			}
		}
		if (p->min_p > 0.0f) {
			/* min_p > e^-12 keeps only near tokens; otherwise sort all */
			if (m < n && keep > m && (double)p->min_p <= exp(-(double)NEAR_NATS)) {
				qsort(c, n, sizeof(*c), cand_cmp);
				m = n;
			}
			size_t i;
			for (i = 1; i < keep && i < m; i++)
				if (exp((double)(c[i].l - max)) < (double)p->min_p)
					break;
			keep = i;
		}
		n = keep;
	}

	/* 5. temperature and one draw */
	{
		float max = c[0].l;
		double sum = 0.0, r, acc = 0.0;
		const double inv_t = 1.0 / (double)p->temperature;

		for (size_t i = 1; i < n; i++)
			max = fmaxf(max, c[i].l);
		for (size_t i = 0; i < n; i++) {
			c[i].l = (float)exp((double)(c[i].l - max) * inv_t);
			sum += c[i].l;
		}
		r = aw_sample_uniform(s) * sum;
		for (size_t i = 0; i < n; i++) {
			acc += c[i].l;
			if (r < acc)
				return c[i].t;
		}
		return c[n - 1].t; /* rounding: r landed at the very end */
	}
}

/* --- accept and stop strings ------------------------------------------------------------------- */

static int ensure(char **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t nc = *cap * 2 > need ? *cap * 2 : need;
	char *nb = realloc(*buf, nc);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = nc;
	return 0;
}

/* Move text[0..n) to out and keep text[drop..len) as the held-back tail. */
static void emit(struct aw_sampler *s, size_t n, size_t drop, const char **ret_text,
		 size_t *ret_len)
{
	memcpy(s->out, s->text, n);
	memmove(s->text, s->text + drop, s->text_len - drop);
	s->text_len -= drop;
	*ret_text = s->out;
	*ret_len = n;
}

enum aw_sample_finish aw_sample_accept(struct aw_sampler *s, int32_t token, const char *piece,
				       size_t len, const char **ret_text, size_t *ret_len)
{
	const struct aw_sample_params *p = &s->p;

	s->n_accepted++;
	if (token >= 0 && token < s->n_vocab)
		window_push(s, token);
	if (s->hook.accept)
		s->hook.accept(s->hook.ctx, token);

	for (int i = 0; i < p->n_eos; i++) {
		if (token == p->eos[i]) {
			emit(s, s->text_len, s->text_len, ret_text, ret_len);
			return AW_SAMPLE_EOS;
		}
	}

	/* Append the piece; grow only when a piece is larger than any seen. */
	if (ensure(&s->text, &s->text_cap, s->text_len + len) < 0 ||
	    ensure(&s->out, &s->out_cap, s->text_len + len) < 0) {
		len = s->text_cap - s->text_len; /* out of memory: truncate the piece */
		if (len > s->out_cap - s->text_len)
			len = s->out_cap > s->text_len ? s->out_cap - s->text_len : 0;
	}
	if (len)
		memcpy(s->text + s->text_len, piece, len);
	s->text_len += len;

	if (p->n_stop > 0) {
		/* the earliest stop string in the text ends the sequence */
		size_t first = SIZE_MAX;

		for (int i = 0; i < p->n_stop; i++) {
			const char *m = memmem(s->text, s->text_len, p->stop[i], s->stop_len[i]);

			if (m && (size_t)(m - s->text) < first)
				first = (size_t)(m - s->text);
		}
		if (first != SIZE_MAX) {
			emit(s, first, s->text_len, ret_text, ret_len);
			return AW_SAMPLE_STOP;
		}
	}
	if (p->max_tokens > 0 && s->n_accepted >= p->max_tokens) {
		emit(s, s->text_len, s->text_len, ret_text, ret_len);
		return AW_SAMPLE_LENGTH;
	}

	/* Hold back the longest tail that is a proper prefix of a stop string. */
	size_t hold = 0;
	for (size_t k = s->max_stop > 0 ? s->max_stop - 1 : 0; k > 0 && !hold; k--) {
		if (k > s->text_len)
			continue;
		for (int i = 0; i < p->n_stop; i++) {
			if (s->stop_len[i] > k &&
			    memcmp(s->text + s->text_len - k, p->stop[i], k) == 0) {
				hold = k;
				break;
			}
		}
	}
	emit(s, s->text_len - hold, s->text_len - hold, ret_text, ret_len);
	return AW_SAMPLE_CONTINUE;
}

const char *aw_sample_finish_name(enum aw_sample_finish f)
{
	switch (f) {
	case AW_SAMPLE_CONTINUE:
		return "continue";
	case AW_SAMPLE_EOS:
		return "eos";
	case AW_SAMPLE_LENGTH:
		return "length";
	case AW_SAMPLE_STOP:
		return "stop";
	}
	return "unknown";
}
