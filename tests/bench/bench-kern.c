/* bench-kern.c — the kernels against the machine's two ceilings, measured in
 * the same run (the machine is shared, so only ratios are comparable):
 *
 *   1. memory read bandwidth: sequential 512-bit (or 256-bit; aarch64:
 *      128-bit) loads over a 1 GiB buffer as one stream or as eight interleaved streams per thread
 *      (the best of both: a matvec reads several row groups at once, which a
 *      single stream underrates), best of a few passes, on 1 and 2 threads;
 *   2. int8 dot-product peak: 10 independent vpdpbusd zmm chains (64
 *      multiply-adds per instruction; aarch64: sdot, 16) on one thread;
 *   3. matvec (batch 1) GB/s of Q8_0/Q4_0 weights at the stories110m and
 *      tinyllama-1.1b layer shapes, per kernel variant and layout (GGUF rows,
 *      X16 repack), on 1 and 2 threads (aw_pool, split by rows), as a
 *      fraction of the read bandwidth of as many threads;
 *   4. batched matmul G multiply-adds/s at batch 1, 4, 16, 64 as a fraction
 *      of the int8 peak (per thread);
 *   5. attention (one call of the model's shape) and activation quantization
 *      per variant, one thread;
 *   6. (K-quant types in --types) the load-time KQ8 repack, GB/s on one
 *      thread: the word-wise conversion the loader runs, the byte-wise
 *      specification it replaced, and memcpy of the same bytes.
 *
 * Usage: bench-kern [--quick] [--variant NAME] [--types q8_0,q4_0,...]
 * (weight types to run, default q8_0,q4_0; each runs in GGUF rows and in
 * the layout aw_kern_repack makes, X16 or KQ8, if it has one). --quick shrinks every
 * working set and repetition (used by `meson test --benchmark` on loaded
 * machines); the figures are then only indicative.
 */
#include <errno.h>
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#include <sys/auxv.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "kern-kq-int.h"
#include "kern.h"
#include "pool.h"

static int quick;

/* Figures use each thread's CPU time, so that time slices lost to the other
 * users of a shared machine do not count: a run lasts as long as its slowest
 * thread's CPU time (what dedicated cores would see; contention for memory
 * bandwidth still shows). Every figure is the best of several repetitions. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct timed {
	aw_pool_fn *fn;
	void *ctx;
	double t[256]; /* CPU seconds per thread */
};

static void timed_fn(void *arg, unsigned ith, unsigned nth)
{
	struct timed *tm = arg;
	const double t0 = cpu_now();

	tm->fn(tm->ctx, ith, nth);
	tm->t[ith] = cpu_now() - t0;
}

/* Run fn on the pool; returns the slowest thread's CPU seconds. */
static double timed_run(struct aw_pool *pool, aw_pool_fn *fn, void *ctx)
{
	struct timed tm = {fn, ctx, {0}};
	double worst = 0.0;

	aw_pool_run(pool, timed_fn, &tm);
	for (unsigned i = 0; i < aw_pool_size(pool); i++)
		if (tm.t[i] > worst)
			worst = tm.t[i];
	return worst;
}

static void *big_alloc(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "bench-kern: mmap %zu bytes: %s\n", n, strerror(errno));
		exit(1);
	}
	madvise(p, n, MADV_HUGEPAGE);
	return p;
}

/* ---- 1. read bandwidth --------------------------------------------------- */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t read512(const uint8_t *p, size_t n)
{
	__m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;

	for (size_t i = 0; i < n; i += 256) {
		a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
		a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
		a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
		a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
	}
	a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
	return (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(a0));
}

/* The same bytes as 8 interleaved sequential streams (what a matvec over
 * several row groups does): more misses in flight than one stream. */
__attribute__((target("avx512f"))) static uint64_t read512x8(const uint8_t *p, size_t n)
{
	const size_t sub = n / 8 / 128 * 128;
	__m512i a[8];

	for (int s = 0; s < 8; s++)
		a[s] = _mm512_setzero_si512();
	for (size_t i = 0; i < sub; i += 128) {
#pragma GCC unroll 8
		for (int s = 0; s < 8; s++) {
			a[s] = _mm512_xor_si512(a[s], _mm512_load_si512(p + s * sub + i));
			a[s] = _mm512_xor_si512(a[s], _mm512_load_si512(p + s * sub + i + 64));
		}
	}
	for (int s = 1; s < 8; s++)
		a[0] = _mm512_xor_si512(a[0], a[s]);
	return (uint64_t)_mm_cvtsi128_si64(_mm512_castsi512_si128(a[0]));
}

__attribute__((target("avx2"))) static uint64_t read256(const uint8_t *p, size_t n)
{
	__m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;

	for (size_t i = 0; i < n; i += 128) {
		a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
		a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
		a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
		a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
	}
	a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
	return (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(a0));
}
#else
/* 4 x 16-byte loads per step, one stream or eight interleaved ones */
static uint64_t read128(const uint8_t *p, size_t n, int streams)
{
	uint8x16_t a[8];
	const size_t sub = n / (size_t)streams / 64 * 64;

	for (int s = 0; s < 8; s++)
		a[s] = vdupq_n_u8(0);
	for (size_t i = 0; i < sub; i += 64) {
		for (int s = 0; s < streams; s++) {
			const uint8_t *q = p + s * sub + i;

			a[s] = veorq_u8(a[s], veorq_u8(vld1q_u8(q), vld1q_u8(q + 16)));
			a[s] = veorq_u8(a[s], veorq_u8(vld1q_u8(q + 32), vld1q_u8(q + 48)));
		}
	}
	for (int s = 1; s < 8; s++)
		a[0] = veorq_u8(a[0], a[s]);
	return vgetq_lane_u64(vreinterpretq_u64_u8(a[0]), 0);
}
#endif

struct bw_ctx {
	const uint8_t *buf;
	size_t size;
	int streams; /* 1 or 8 */
	volatile uint64_t sink;
};

static void bw_fn(void *arg, unsigned ith, unsigned nth)
{
	struct bw_ctx *c = arg;
	const size_t chunk = c->size / nth / 256 * 256;
	const uint8_t *p = c->buf + ith * chunk;

#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx512f") && c->streams == 8)
		c->sink ^= read512x8(p, chunk);
	else if (__builtin_cpu_supports("avx512f"))
		c->sink ^= read512(p, chunk);
	else
		c->sink ^= read256(p, chunk);
#else
	c->sink ^= read128(p, chunk, c->streams);
#endif
}

/* Best of 'reps' passes over the buffer, one stream and eight streams per
 * thread, GB/s. */
static double bandwidth(struct aw_pool *pool, const uint8_t *buf, size_t size, int reps)
{
	struct bw_ctx c = {buf, size, 1, 0};
	double best = 0.0;

	for (int r = 0; r < 2 * reps; r++) {
		c.streams = r % 2 ? 8 : 1;
		const double dt = timed_run(pool, bw_fn, &c);
		const double gbs = (double)(size / aw_pool_size(pool) / 256 * 256) *
				   aw_pool_size(pool) / dt / 1e9;

		if (gbs > best)
			best = gbs;
	}
	return best;
}

/* ---- 2. int8 peak ------------------------------------------------------------ */

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vnni"))) static double vnni_peak(long iters)
{
	const __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
	__m512i a0 = _mm512_set1_epi32(0), a1 = _mm512_set1_epi32(1), a2 = _mm512_set1_epi32(2),
		a3 = _mm512_set1_epi32(3), a4 = _mm512_set1_epi32(4), a5 = _mm512_set1_epi32(5),
		a6 = _mm512_set1_epi32(6), a7 = _mm512_set1_epi32(7), a8 = _mm512_set1_epi32(8),
		a9 = _mm512_set1_epi32(9);
	double best = 1e30;

	/* ten independent accumulator chains in registers (an array would live
	 * in memory and put store-to-load forwarding into every chain) */
	for (int rep = 0; rep < 5; rep++) {
		const double t0 = cpu_now();

		for (long n = 0; n < iters; n++) {
			a0 = _mm512_dpbusd_epi32(a0, x, y);
			a1 = _mm512_dpbusd_epi32(a1, x, y);
			a2 = _mm512_dpbusd_epi32(a2, x, y);
			a3 = _mm512_dpbusd_epi32(a3, x, y);
			a4 = _mm512_dpbusd_epi32(a4, x, y);
			a5 = _mm512_dpbusd_epi32(a5, x, y);
			a6 = _mm512_dpbusd_epi32(a6, x, y);
			a7 = _mm512_dpbusd_epi32(a7, x, y);
			a8 = _mm512_dpbusd_epi32(a8, x, y);
			a9 = _mm512_dpbusd_epi32(a9, x, y);
			__asm__ volatile(""
					 : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4),
					   "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9));
		}
		const double dt = cpu_now() - t0;

		if (dt < best)
			best = dt;
	}
	a0 = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)),
			      _mm512_add_epi32(_mm512_add_epi32(a4, a5), _mm512_add_epi32(a6, a7)));
	volatile int sink = _mm512_reduce_add_epi32(_mm512_add_epi32(a0, _mm512_add_epi32(a8, a9)));

	(void)sink;
	return (double)iters * 10 * 64 / best / 1e9;
}
#else
/* ten independent sdot chains (16 multiply-adds per instruction) */
__attribute__((target("arch=armv8.2-a+dotprod"))) static double sdot_peak(long iters)
{
	const int8x16_t x = vdupq_n_s8(3), y = vdupq_n_s8(-2);
	int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(1), a2 = vdupq_n_s32(2),
		  a3 = vdupq_n_s32(3), a4 = vdupq_n_s32(4), a5 = vdupq_n_s32(5),
		  a6 = vdupq_n_s32(6), a7 = vdupq_n_s32(7), a8 = vdupq_n_s32(8),
		  a9 = vdupq_n_s32(9);
	double best = 1e30;

	for (int rep = 0; rep < 5; rep++) {
		const double t0 = cpu_now();

		for (long n = 0; n < iters; n++) {
			a0 = vdotq_s32(a0, x, y);
			a1 = vdotq_s32(a1, x, y);
			a2 = vdotq_s32(a2, x, y);
			a3 = vdotq_s32(a3, x, y);
			a4 = vdotq_s32(a4, x, y);
			a5 = vdotq_s32(a5, x, y);
			a6 = vdotq_s32(a6, x, y);
			a7 = vdotq_s32(a7, x, y);
			a8 = vdotq_s32(a8, x, y);
			a9 = vdotq_s32(a9, x, y);
			__asm__ volatile(""
					 : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3), "+w"(a4),
					   "+w"(a5), "+w"(a6), "+w"(a7), "+w"(a8), "+w"(a9));
		}
		const double dt = cpu_now() - t0;

		if (dt < best)
			best = dt;
	}
	a0 = vaddq_s32(vaddq_s32(vaddq_s32(a0, a1), vaddq_s32(a2, a3)),
		       vaddq_s32(vaddq_s32(a4, a5), vaddq_s32(a6, a7)));
	volatile int sink = vaddvq_s32(vaddq_s32(a0, vaddq_s32(a8, a9)));

	(void)sink;
	return (double)iters * 10 * 16 / best / 1e9;
}
#endif

/* The int8 peak this CPU offers the kernels: x86 avx512vnni's vpdpbusd zmm,
 * aarch64's sdot (0 if the CPU lacks it: GEMM fractions are then omitted). */
#if defined(__x86_64__)
#define PEAK_WHAT "10 vpdpbusd zmm chains"
static int have_int8_peak(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512vnni");
}
#define int8_peak vnni_peak
#else
#define PEAK_WHAT "10 sdot chains"
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
static int have_int8_peak(void)
{
	return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
}
#define int8_peak sdot_peak
#endif

/* ---- 3, 4. matmuls ------------------------------------------------------------- */

struct shape {
	const char *model;
	uint32_t dim, hidden, kv_dim, layers;
};

static const struct shape shapes[] = {
	{"stories110m", 768, 2048, 768, 12},
	{"tinyllama-1.1b", 2048, 5632, 256, 22},
};

struct mat {
	struct aw_kern_mat rows, x16;
};

/* One layer's seven matrices (rows, cols). */
static void layer_dims(const struct shape *s, uint32_t d[7][2])
{
	const uint32_t dims[7][2] = {{s->dim, s->dim},	 {s->kv_dim, s->dim}, {s->kv_dim, s->dim},
				     {s->dim, s->dim},	 {s->hidden, s->dim}, {s->hidden, s->dim},
				     {s->dim, s->hidden}};

	memcpy(d, dims, sizeof(dims));
}

struct model {
	uint32_t n; /* matrices */
	struct mat *m;
	size_t bytes; /* weight bytes of one pass (either layout) */
	uint64_t params;
	uint32_t max_in;
	uint32_t max_rows;
};

static void model_build(struct model *md, const struct shape *s, uint32_t type, uint32_t layers)
{
	uint32_t d[7][2];
	float *f = NULL;

	layer_dims(s, d);
	memset(md, 0, sizeof(*md));
	md->n = 7 * layers;
	md->m = calloc(md->n, sizeof(*md->m));
	f = malloc(sizeof(float) * s->hidden);
	for (uint32_t i = 0; i < md->n; i++) {
		const uint32_t rows = d[i % 7][0], cols = d[i % 7][1];
		const size_t rs = aw_type_row_size(type, cols);
		uint8_t *data = big_alloc(rs * rows);
		const size_t psize = aw_kern_repack_size(type, rows, cols);
		void *packed = psize ? big_alloc(psize) : NULL;

		for (uint32_t r = 0; r < rows; r++) {
			for (uint32_t j = 0; j < cols; j++)
				f[j] = (float)((r * 7 + j * 13) % 29) / 14.0f - 1.0f;
			aw_quant_row(type, f, data + r * rs, cols);
		}
		aw_kern_mat_init(type, rows, cols, data, &md->m[i].rows);
		if (packed) /* types without an X16 layout run GGUF rows only */
			aw_kern_repack(&md->m[i].rows, packed, &md->m[i].x16);
		md->bytes += rs * rows;
		md->params += (uint64_t)rows * cols;
		if (cols > md->max_in)
			md->max_in = cols;
		if (rows > md->max_rows)
			md->max_rows = rows;
	}
	free(f);
}

static void model_free(struct model *md)
{
	for (uint32_t i = 0; i < md->n; i++) {
		munmap((void *)md->m[i].rows.data, md->m[i].rows.row_size * md->m[i].rows.rows);
		if (md->m[i].x16.data)
			munmap((void *)md->m[i].x16.data,
			       aw_kern_repack_size(md->m[i].x16.type, md->m[i].x16.rows,
						   md->m[i].x16.cols));
	}
	free(md->m);
}

/* Name of the layout aw_kern_repack() makes for a type. */
static const char *lay_name(uint32_t type)
{
	struct aw_kern_mat m = {.type = type};

	aw_kern_mat_prepacked(&m, NULL, &m);
	return m.layout == AW_KERN_LAYOUT_KQ8 ? "kq8" : "x16";
}

struct mm_ctx {
	const struct aw_kern *k;
	const struct model *md;
	int x16;
	struct aw_kern_in in;
	float *y;
};

/* One pass over all matrices, rows split among threads. No barrier is needed
 * between matrices here: they are independent. */
static void mm_fn(void *arg, unsigned ith, unsigned nth)
{
	struct mm_ctx *c = arg;

	for (uint32_t i = 0; i < c->md->n; i++) {
		const struct aw_kern_mat *w = c->x16 ? &c->md->m[i].x16 : &c->md->m[i].rows;
		struct aw_kern_in in = c->in;
		uint32_t lo, hi;

		in.n_in = w->cols;
		aw_pool_split(w->rows, AW_KERN_TILE, ith, nth, &lo, &hi);
		if (lo < hi)
			c->k->matmul(w, &in, c->y, w->rows, lo, hi);
	}
}

/* Seconds per pass: best of 'reps'. */
static double mm_time(struct aw_pool *pool, struct mm_ctx *c, int reps)
{
	double best = 1e30;

	for (int r = 0; r < reps; r++) {
		const double dt = timed_run(pool, mm_fn, c);

		if (dt < best)
			best = dt;
	}
	return best;
}

/* ---- 5. attention and activation quantization ------------------------------ */

/* One attn() call as the model makes it: nq query heads of one KV head
 * (tinyllama: 8, head_dim 64; stories15m: 1, head_dim 48), n_kv positions in
 * blocks of 16 rows of 4 KV heads. Returns microseconds per call (best of 5). */
static double attn_us(const struct aw_kern *k, uint32_t kv_type, uint32_t n_kv, uint32_t hd,
		      uint32_t nq)
{
	const uint32_t br = 16, row = 4 * hd;
	const size_t esz = kv_type == AW_TYPE_F16 ? 2 : 4;
	const uint32_t nblk = (n_kv + br - 1) / br;
	const void **kb = calloc(nblk, sizeof(void *)), **vb = calloc(nblk, sizeof(void *));
	float *f = malloc(sizeof(float) * row), q[16 * 128], o[16 * 128];
	double best = 1e30;
	const int calls = quick ? 20 : 100;

	for (uint32_t b = 0; b < nblk; b++) {
		void *kk = malloc(br * row * esz), *vv = malloc(br * row * esz);

		for (uint32_t p = 0; p < br; p++) {
			for (uint32_t j = 0; j < row; j++)
				f[j] = (float)((p * 7 + j * 3 + b) % 23) / 23.0f - 0.5f;
			aw_quant_row(kv_type, f, (uint8_t *)kk + p * row * esz, row);
			aw_quant_row(kv_type, f, (uint8_t *)vv + p * row * esz, row);
		}
		kb[b] = kk;
		vb[b] = vv;
	}
	for (uint32_t j = 0; j < nq * hd; j++)
		q[j] = (float)(j % 11) / 11.0f - 0.5f;
	const struct aw_kern_kv kv_k = {kb, br, kv_type, row * esz, hd * esz};
	const struct aw_kern_kv kv_v = {vb, br, kv_type, row * esz, hd * esz};

	for (int rep = 0; rep < 5; rep++) {
		const double t0 = cpu_now();

		for (int c = 0; c < calls; c++)
			k->attn(o, hd, q, hd, nq, &kv_k, &kv_v, n_kv, hd, 1.0f / sqrtf((float)hd));
		const double dt = (cpu_now() - t0) / calls;

		if (dt < best)
			best = dt;
	}
	for (uint32_t b = 0; b < nblk; b++) {
		free((void *)kb[b]);
		free((void *)vb[b]);
	}
	free(kb);
	free(vb);
	free(f);
	return best * 1e6;
}

/* quant_q8a over 64 rows of 2048 values: G values per second (best of 5). */
static double quant_gvals(const struct aw_kern *k)
{
	const size_t n = 64 * 2048;
	float *x = malloc(sizeof(float) * n);
	struct aw_block_q8a *q = malloc(n / 32 * sizeof(*q));
	double best = 1e30;

	for (size_t j = 0; j < n; j++)
		x[j] = (float)((j * 37) % 101) / 50.0f - 1.0f;
	for (int rep = 0; rep < 5; rep++) {
		const double t0 = cpu_now();

		for (int c = 0; c < 10; c++)
			k->quant_q8a(x, q, n);
		const double dt = (cpu_now() - t0) / 10;

		if (dt < best)
			best = dt;
	}
	free(x);
	free(q);
	return n / best / 1e9;
}

/* rope over one token's Q of the tinyllama shape (32 heads of 64) at 64
 * positions: nanoseconds per token (best of 5). */
static double rope_ns(const struct aw_kern *k)
{
	const uint32_t hd = 64, nh = 32, nt = 64;
	float *x = malloc(sizeof(float) * hd * nh * nt);
	int32_t pos[64];
	const struct aw_kern_rope rp = {AW_KERN_ROPE_NORM, hd, hd, 10000.0f, NULL};
	double best = 1e30;

	for (uint32_t j = 0; j < hd * nh * nt; j++)
		x[j] = (float)(j % 13) / 13.0f - 0.5f;
	for (uint32_t t = 0; t < nt; t++)
		pos[t] = (int32_t)(t * 37);
	for (int rep = 0; rep < 5; rep++) {
		const double t0 = cpu_now();

		for (int c = 0; c < 20; c++)
			k->rope(x, hd * nh, nt, pos, nh, &rp);
		const double dt = (cpu_now() - t0) / 20 / nt;

		if (dt < best)
			best = dt;
	}
	free(x);
	return best * 1e9;
}

static const char *only_variant;
static const char *only_part; /* NULL, "matvec", "gemm", "attn" or "repack" */

/* Section 6: GB/s of KQ8 repacking 'type' (64 MiB of random super-blocks,
 * out of cache), best of 3: *ret_word = aw_kern_repack, *ret_byte = the
 * byte-wise aw_kern_kq_block, *ret_copy = memcpy. */
static void repack_gbs(uint32_t type, double *ret_word, double *ret_byte, double *ret_copy)
{
	const uint32_t cols = 4096, rows = (64u << 20) / (uint32_t)aw_type_row_size(type, cols);
	const size_t size = aw_type_row_size(type, cols) * rows, bs = aw_type_info(type)->size;
	uint8_t *src = big_alloc(size), *dst = big_alloc(size);
	struct aw_kern_mat m, out;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < size; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		src[i] = (uint8_t)x;
	}
	memset(dst, 0, size);
	aw_kern_mat_init(type, rows, cols, src, &m);
	*ret_word = *ret_byte = *ret_copy = 0;
	for (int rep = 0; rep < 3; rep++) {
		double t0 = cpu_now();

		aw_kern_repack(&m, dst, &out);
		*ret_word = fmax(*ret_word, size / (cpu_now() - t0) / 1e9);
		t0 = cpu_now();
		for (size_t b = 0; b < size / bs; b++)
			aw_kern_kq_block(type, src + b * bs, dst + b * bs, 0);
		*ret_byte = fmax(*ret_byte, size / (cpu_now() - t0) / 1e9);
		t0 = cpu_now();
		memcpy(dst, src, size);
		*ret_copy = fmax(*ret_copy, size / (cpu_now() - t0) / 1e9);
	}
	munmap(src, size);
	munmap(dst, size);
}

static int part(const char *name)
{
	return !only_part || strcmp(only_part, name) == 0;
}

int main(int argc, char **argv)
{
	uint32_t types[8] = {AW_TYPE_Q8_0, AW_TYPE_Q4_0};
	size_t ntypes = 2;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--types") == 0 && i + 1 < argc) {
			/* comma-separated weight types, e.g. q4_k,q6_k,q5_0 */
			char *list = argv[++i], *save = NULL;

			ntypes = 0;
			for (char *t = strtok_r(list, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				const int ty = aw_type_from_name(t);
				struct aw_kern_mat probe;

				if (ty < 0 || ntypes == 8 ||
				    aw_kern_mat_init((uint32_t)ty, 16, 256, NULL, &probe) < 0) {
					fprintf(stderr, "bench-kern: unsupported type '%s'\n", t);
					return 2;
				}
				types[ntypes++] = (uint32_t)ty;
			}
			if (ntypes == 0) {
				fprintf(stderr, "bench-kern: --types needs at least one type\n");
				return 2;
			}
		} else if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
			only_variant = argv[++i];
		} else if (strcmp(argv[i], "--part") == 0 && i + 1 < argc &&
			   (!strcmp(argv[i + 1], "matvec") || !strcmp(argv[i + 1], "gemm") ||
			    !strcmp(argv[i + 1], "attn") || !strcmp(argv[i + 1], "repack"))) {
			only_part = argv[++i];
		} else {
			fprintf(stderr,
				"usage: bench-kern [--quick] [--variant NAME] "
				"[--part matvec|gemm|attn|repack] [--types q8_0,q4_0,...]\n");
			return 2;
		}
	}
	struct aw_pool *pool1 = NULL, *pool2 = NULL;

	if (aw_pool_new(1, NULL, &pool1) < 0 || aw_pool_new(2, NULL, &pool2) < 0) {
		fprintf(stderr, "bench-kern: cannot start threads\n");
		return 1;
	}

	/* 1. bandwidth (measured again at the end; the best of both is the ceiling) */
	const size_t bw_size = quick ? (256u << 20) : (1u << 30);
	uint8_t *buf = big_alloc(bw_size);

	memset(buf, 1, bw_size);
	double bw1 = bandwidth(pool1, buf, bw_size, quick ? 3 : 5);
	double bw2 = bandwidth(pool2, buf, bw_size, quick ? 3 : 5);

	/* 2. int8 peak: sampled again before every GEMM figure; the best sample is
	 * the ceiling, so that a figure is never compared with an unlucky sample */
	const int has_vnni = have_int8_peak();
	double peak = has_vnni ? int8_peak(quick ? 1000000 : 5000000) : 0.0;

	static struct row {
		int kind; /* 0 matvec, 1 gemm */
		const char *model, *type, *variant, *lay;
		double mb, g1, g2;
		double bw1, bw2; /* adjacent bandwidth samples (matvec rows) */
		uint32_t batch;
		int ref;
	} rows[1024];
	unsigned nrows = 0;

	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const struct shape *s = &shapes[si];
		/* working sets well beyond the 32 MiB L3: stories110m all 12 layers,
		 * tinyllama 3 of its 22 */
		const uint32_t layers = quick ? (si ? 1 : 3) : (si ? 3 : s->layers);

		for (size_t ti = 0; ti < ntypes; ti++) {
			const int n_lay = aw_kern_repack_size(types[ti], 16, 256) ? 2 : 1;
			struct model md;

			model_build(&md, s, types[ti], layers);
			float *x = malloc(sizeof(float) * md.max_in * 64);
			struct aw_block_q8a *xq = malloc(aw_kern_q8a_size(64, md.max_in));
			float *y = malloc(sizeof(float) * md.max_rows * 64);

			for (uint32_t j = 0; j < md.max_in * 64; j++)
				x[j] = (float)((j * 31) % 17) / 8.0f - 1.0f;
			aw_kern_ref.quant_q8a(x, xq, (size_t)md.max_in * 64);

			/* 3. matvec per variant, layout, thread count */
			for (unsigned vi = 0; part("matvec"); vi++) {
				int ok = 0;
				const struct aw_kern *k = aw_kern_variant(vi, &ok);

				if (!k)
					break;
				if (!ok || (only_variant && strcmp(only_variant, k->name)))
					continue;
				for (int lay = 0; lay < n_lay; lay++) {
					struct mm_ctx c = {k, &md, lay, {1, 0, x, xq}, y};
					struct row *rw = &rows[nrows++];

					*rw = (struct row){0,
							   s->model,
							   aw_type_name(types[ti]),
							   k->name,
							   lay ? lay_name(types[ti]) : "rows",
							   md.bytes / 1e6};
					if (k == &aw_kern_ref) {
						/* the reference is slow: one layer, once */
						struct model one = md;

						one.n = 7;
						c.md = &one;
						rw->ref = 1;
						rw->mb = md.bytes / layers / 1e6;
						rw->g1 = rw->mb / 1e3 / mm_time(pool1, &c, 1);
						continue;
					}
					const int reps = quick ? 3 : 8;

					/* the ceiling of this row: read bandwidth sampled just
					 * before and after it (the machine's load moves) */
					rw->bw1 = bandwidth(pool1, buf, bw_size, 1);
					rw->bw2 = bandwidth(pool2, buf, bw_size, 1);
					rw->g1 = md.bytes / mm_time(pool1, &c, reps) / 1e9;
					rw->g2 = md.bytes / mm_time(pool2, &c, reps) / 1e9;
					rw->bw1 = fmax(rw->bw1, bandwidth(pool1, buf, bw_size, 1));
					rw->bw2 = fmax(rw->bw2, bandwidth(pool2, buf, bw_size, 1));
				}
			}

			/* 4. batched GEMM, tinyllama shapes only, one layer */
			for (unsigned vi = 0; si == 1 && part("gemm"); vi++) {
				int ok = 0;
				const struct aw_kern *k = aw_kern_variant(vi, &ok);
				struct model one = md;

				one.n = 7;
				if (!k)
					break;
				if (!ok || k == &aw_kern_ref ||
				    (only_variant && strcmp(only_variant, k->name)))
					continue;
				for (int lay = 0; lay < n_lay; lay++) {
					static const uint32_t batches[] = {1, 2, 4, 8, 16, 32, 64};

					for (int bi = 0; bi < 7; bi++) {
						const uint32_t nt = batches[bi];
						struct mm_ctx c = {k, &one, lay, {nt, 0, x, xq}, y};
						const double macs =
							(double)(md.params / layers) * nt;
						const int reps = quick ? 2 : (nt >= 16 ? 3 : 6);
						struct row *rw = &rows[nrows++];

						if (has_vnni) {
							const double pk =
								int8_peak(quick ? 200000 : 1000000);

							if (pk > peak)
								peak = pk;
						}
						*rw = (struct row){1,
								   s->model,
								   aw_type_name(types[ti]),
								   k->name,
								   lay ? lay_name(types[ti])
								       : "rows",
								   md.params / layers / 1e6};
						rw->batch = nt;
						rw->g1 = macs / mm_time(pool1, &c, reps) / 1e9;
						rw->g2 = macs / mm_time(pool2, &c, reps) / 1e9;
					}
				}
			}
			free(x);
			free(xq);
			free(y);
			model_free(&md);
		}
	}
	{
		const double b1 = bandwidth(pool1, buf, bw_size, quick ? 3 : 5);
		const double b2 = bandwidth(pool2, buf, bw_size, quick ? 3 : 5);

		if (b1 > bw1)
			bw1 = b1;
		if (b2 > bw2)
			bw2 = b2;
	}
	munmap(buf, bw_size);

	printf("read bandwidth (%zu MiB, 1 or 8 streams per thread, best of start and end): 1 "
	       "thread %.1f GB/s, "
	       "2 threads %.1f GB/s\n",
	       bw_size >> 20, bw1, bw2);
	if (has_vnni)
		printf("int8 peak (" PEAK_WHAT ", best sample): %.1f GMAC/s per thread\n", peak);
	else
		printf("int8 peak: no AVX512-VNNI / sdot on this CPU; GEMM fractions not "
		       "reported\n");
	printf("(times are the slowest thread's CPU time: other users' time slices do not "
	       "count)\n");

	printf("\nmatvec, batch 1, weights streamed from memory: GB/s of weights and fraction of "
	       "the read bandwidth of as many threads,\nsampled just before and after each row "
	       "(bw1, bw2 GB/s; the reference rows use the run's best)\n");
	printf("%-15s %-5s %-11s %-5s %9s %9s %7s %9s %7s %6s %6s\n", "model", "type", "variant",
	       "lay", "MB/pass", "1t GB/s", "of bw", "2t GB/s", "of bw", "bw1", "bw2");
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *rw = &rows[i];

		if (rw->kind != 0)
			continue;
		if (rw->ref)
			printf("%-15s %-5s %-11s %-5s %9.1f %9.2f %6.1f%% %9s %7s\n", rw->model,
			       rw->type, rw->variant, rw->lay, rw->mb, rw->g1, 100 * rw->g1 / bw1,
			       "-", "-");
		else
			printf("%-15s %-5s %-11s %-5s %9.1f %9.2f %6.1f%% %9.2f %6.1f%% %6.1f "
			       "%6.1f\n",
			       rw->model, rw->type, rw->variant, rw->lay, rw->mb, rw->g1,
			       100 * rw->g1 / rw->bw1, rw->g2, 100 * rw->g2 / rw->bw2, rw->bw1,
			       rw->bw2);
	}
	printf("\nbatched matmul, one tinyllama-1.1b layer: G multiply-adds/s and fraction of the "
	       "int8 peak of as many threads\n");
	printf("%-5s %-11s %-5s %5s %10s %7s %10s %7s\n", "type", "variant", "lay", "batch",
	       "1t GMAC/s", "of pk", "2t GMAC/s", "of 2pk");
	for (unsigned i = 0; i < nrows; i++) {
		const struct row *rw = &rows[i];

		if (rw->kind != 1)
			continue;
		if (peak > 0)
			printf("%-5s %-11s %-5s %5u %10.1f %6.1f%% %10.1f %6.1f%%\n", rw->type,
			       rw->variant, rw->lay, rw->batch, rw->g1, 100 * rw->g1 / peak, rw->g2,
			       100 * rw->g2 / (2 * peak));
		else
			printf("%-5s %-11s %-5s %5u %10.1f %7s %10.1f %7s\n", rw->type, rw->variant,
			       rw->lay, rw->batch, rw->g1, "-", rw->g2, "-");
	}

	/* 5. attention and activation quantization, one thread */
	printf("\nattention (8 query heads per KV head, head_dim 64, tinyllama's KV rows; hd48: "
	       "1 query head, head_dim 48, stories15m), rope (32 heads of 64, ns per token) and "
	       "activation quantization, one thread\n");
	printf("%-11s %12s %12s %12s %10s %12s %10s %12s\n", "variant", "f32 n_kv=128",
	       "f32 n_kv=1024", "f16 n_kv=1024", "GFLOP/s", "hd48 f16 1024", "rope ns",
	       "quant Gval/s");
	for (unsigned vi = 0;; vi++) {
		int ok = 0;
		const struct aw_kern *k = aw_kern_variant(vi, &ok);

		if (!k)
			break;
		if (!ok || (only_variant && strcmp(only_variant, k->name)) || !part("attn"))
			continue;
		const double a128 = attn_us(k, AW_TYPE_F32, 128, 64, 8);
		const double a1k = attn_us(k, AW_TYPE_F32, 1024, 64, 8);
		const double h1k = attn_us(k, AW_TYPE_F16, 1024, 64, 8);
		const double h48 = attn_us(k, AW_TYPE_F16, 1024, 48, 1);

		/* 4 flops per (head, position, dimension): q.k and p*v, multiply and add */
		printf("%-11s %10.1f us %10.1f us %10.1f us %10.1f %9.1f us %10.0f %12.2f\n",
		       k->name, a128, a1k, h1k, 4.0 * 8 * 1024 * 64 / (a1k * 1e3), h48, rope_ns(k),
		       quant_gvals(k));
	}
	for (size_t ti = 0, head = 0; ti < ntypes && part("repack") && !only_variant; ti++) {
		double word, byte, copy;

		if (!aw_kern_kq_repackable(types[ti]))
			continue;
		if (!head++)
			printf("\nKQ8 repack at load (64 MiB, one thread, CPU time): GB/s of the "
			       "word-wise conversion, the byte-wise specification, memcpy\n"
			       "%-5s %10s %10s %10s %8s\n",
			       "type", "word", "byte", "memcpy", "speedup");
		repack_gbs(types[ti], &word, &byte, &copy);
		printf("%-5s %10.2f %10.2f %10.2f %7.1fx\n", aw_type_name(types[ti]), word, byte,
		       copy, word / byte);
	}
	aw_pool_free(pool1);
	aw_pool_free(pool2);
	return 0;
}
