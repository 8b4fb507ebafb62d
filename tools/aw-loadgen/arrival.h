/* arrival.h — request arrival processes and the random numbers of aw-loadgen.
 *
 * Open-loop load is a schedule of *intended* send times, fixed in advance of
 * (and independent from) the server's answers, so a slow reply never delays
 * the next request's clock (no coordinated omission). Two processes:
 * constant (every 1/rate seconds) and Poisson (exponential gaps with mean
 * 1/rate). Times are nanoseconds from the start of the run; the constant
 * process computes arrival k as k/rate (rounded), so it never drifts.
 */
#ifndef AW_ARRIVAL_H
#define AW_ARRIVAL_H

#include <stdint.h>

/* splitmix64-seeded xoshiro256** generator. */
struct aw_rng {
	uint64_t s[4];
};

void aw_rng_seed(struct aw_rng *r, uint64_t seed);
uint64_t aw_rng_next(struct aw_rng *r);
/* Uniform double in (0, 1]: never 0, so -log() is finite. */
double aw_rng_unit(struct aw_rng *r);
/* Uniform integer in [lo, hi] (lo <= hi). */
uint64_t aw_rng_range(struct aw_rng *r, uint64_t lo, uint64_t hi);
/* Exponential with the given mean. */
double aw_rng_exp(struct aw_rng *r, double mean);
/* Normal (Box-Muller). */
double aw_rng_normal(struct aw_rng *r, double mean, double sd);

enum aw_arrival_kind {
	AW_ARRIVAL_CONSTANT = 0,
	AW_ARRIVAL_POISSON = 1,
};

struct aw_arrival {
	enum aw_arrival_kind kind;
	double rate;	/* per second, > 0 */
	double next_ns; /* Poisson: intended time of the next arrival */
	uint64_t k;	/* constant: index of the next arrival */
	struct aw_rng rng;
};

/* Returns 0 or -EINVAL (rate not a finite value > 0, unknown kind). */
int aw_arrival_init(struct aw_arrival *a, enum aw_arrival_kind kind, double rate, uint64_t seed);

/* Intended time (ns from start) of the next arrival; advances the process. */
uint64_t aw_arrival_next(struct aw_arrival *a);

/* "poisson" / "constant" -> kind, or -EINVAL. */
int aw_arrival_parse_kind(const char *s);

#endif
