/* bench-gguf.c — cost of opening a GGUF file with a large vocabulary, and of
 * indexing its string array.
 *
 * Builds (with the writer) a file holding a 151936-entry string array plus
 * scores and token types, the size of Qwen2's vocabulary, then measures in
 * the same run:
 *   parse    aw_gguf_parse() of the image (checks + hash + offset table)
 *   touch    baseline: one pass summing every byte of the same image
 *   index    aw_gguf_arr_str() of 100000 random elements (offset table)
 *   walk     baseline: the same lookups by walking the array from its start,
 *            as a reader without an offset table must (fewer lookups, scaled)
 * Prints the figures and ratios; asserts nothing about time. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"

#define N_VOCAB 151936

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 33;
}

int main(void)
{
	struct aw_gguf_writer *w;
	struct aw_gguf *g;
	struct aw_err err;
	char **toks = malloc(sizeof(char *) * N_VOCAB);
	float *scores = malloc(sizeof(float) * N_VOCAB);
	int32_t *types = malloc(sizeof(int32_t) * N_VOCAB);
	uint64_t seed = 1, sum = 0;
	const uint8_t *buf;
	void *vbuf;
	size_t len;
	double t0, t_parse = 1e9, t_touch = 1e9, t_index, t_walk;
	int ki, reps = 5;

	if (!toks || !scores || !types || aw_gguf_writer_new(&w) < 0)
		return 1;
	for (int i = 0; i < N_VOCAB; i++) {
		char b[32];
		int n = 1 + (int)(rng(&seed) % 12);

		for (int k = 0; k < n; k++)
			b[k] = (char)('a' + rng(&seed) % 26);
		snprintf(b + n, sizeof(b) - (size_t)n, "%d", i);
		toks[i] = strdup(b);
		scores[i] = -(float)i;
		types[i] = 1;
	}
	aw_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", N_VOCAB, (const char *const *)toks,
				   NULL);
	aw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32, N_VOCAB, scores);
	aw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", AW_GGUF_TYPE_INT32, N_VOCAB, types);
	if (aw_gguf_writer_write_buf(w, &vbuf, &len, &err) < 0) {
		fprintf(stderr, "bench-gguf: %s\n", err.msg);
		return 1;
	}
	buf = vbuf;

	for (int r = 0; r < reps; r++) {
		double t;

		t0 = now();
		if (aw_gguf_parse(buf, len, &g, &err) < 0) {
			fprintf(stderr, "bench-gguf: %s\n", err.msg);
			return 1;
		}
		t = now() - t0;
		t_parse = t < t_parse ? t : t_parse;
		aw_gguf_close(g);
		t0 = now();
		for (size_t i = 0; i < len; i++)
			sum += buf[i];
		t = now() - t0;
		t_touch = t < t_touch ? t : t_touch;
	}
	aw_gguf_parse(buf, len, &g, &err);
	ki = aw_gguf_find_key(g, "tokenizer.ggml.tokens");

	/* random element lookups through the offset table */
	seed = 7;
	t0 = now();
	for (int i = 0; i < 100000; i++) {
		const char *s;
		size_t sl;

		aw_gguf_arr_str(g, ki, rng(&seed) % N_VOCAB, &s, &sl);
		sum += (uint8_t)s[0];
	}
	t_index = (now() - t0) / 100000;

	/* baseline: walk the length-prefixed strings from the start */
	{
		const uint8_t *first;
		const char *s;
		size_t sl;

		aw_gguf_arr_str(g, ki, 0, &s, &sl);
		first = (const uint8_t *)s - 8;
		seed = 7;
		t0 = now();
		for (int i = 0; i < 1000; i++) {
			uint64_t want = rng(&seed) % N_VOCAB, n;
			const uint8_t *p = first;

			for (uint64_t j = 0; j < want; j++) {
				memcpy(&n, p, 8);
				p += 8 + n;
			}
			sum += p[8];
		}
		t_walk = (now() - t0) / 1000;
	}

	printf("bench-gguf: file %zu bytes, %d strings (checksum %llu)\n", len, N_VOCAB,
	       (unsigned long long)sum);
	printf("  parse (aw_gguf_parse)            %8.3f ms\n", t_parse * 1e3);
	printf("  baseline: one pass over bytes    %8.3f ms   parse/touch = %.1fx\n", t_touch * 1e3,
	       t_parse / t_touch);
	printf("  arr_str, random element          %8.1f ns\n", t_index * 1e9);
	printf("  baseline: walk from the start    %8.1f ns   walk/arr_str = %.0fx\n", t_walk * 1e9,
	       t_walk / t_index);
	aw_gguf_close(g);
	aw_gguf_writer_free(w);
	for (int i = 0; i < N_VOCAB; i++)
		free(toks[i]);
	free(toks);
	free(scores);
	free(types);
	free(vbuf);
	return 0;
}
