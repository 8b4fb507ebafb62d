/* arrival.c — arrival processes and random numbers (see arrival.h). */
#include "arrival.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void aw_rng_seed(struct aw_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t aw_rng_next(struct aw_rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double aw_rng_unit(struct aw_rng *r)
{
	/* 53 random bits -> (0, 1] */
	return ((double)(aw_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

uint64_t aw_rng_range(struct aw_rng *r, uint64_t lo, uint64_t hi)
{
	uint64_t span = hi - lo + 1;

	if (span == 0) /* the full 64-bit range */
		return aw_rng_next(r);
	return lo + aw_rng_next(r) % span; /* bias < span / 2^64: negligible here */
}

double aw_rng_exp(struct aw_rng *r, double mean)
{
	return -log(aw_rng_unit(r)) * mean;
}

double aw_rng_normal(struct aw_rng *r, double mean, double sd)
{
	double u1 = aw_rng_unit(r), u2 = aw_rng_unit(r);

	return mean + sd * sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int aw_arrival_init(struct aw_arrival *a, enum aw_arrival_kind kind, double rate, uint64_t seed)
{
	if (!(rate > 0.0) || isinf(rate) ||
	    (kind != AW_ARRIVAL_CONSTANT && kind != AW_ARRIVAL_POISSON))
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->rate = rate;
	aw_rng_seed(&a->rng, seed);
	return 0;
}

uint64_t aw_arrival_next(struct aw_arrival *a)
{
	double t;

	if (a->kind == AW_ARRIVAL_CONSTANT) {
		/* k / rate computed afresh each time: no drift from summing gaps */
		t = (double)a->k++ * (1e9 / a->rate);
		return (uint64_t)llround(t);
	}
	t = a->next_ns;
	a->next_ns += aw_rng_exp(&a->rng, 1e9 / a->rate);
	return (uint64_t)llround(t);
}

int aw_arrival_parse_kind(const char *s)
{
	if (strcmp(s, "poisson") == 0)
		return AW_ARRIVAL_POISSON;
	if (strcmp(s, "constant") == 0)
		return AW_ARRIVAL_CONSTANT;
	return -EINVAL;
}
