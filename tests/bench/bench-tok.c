/* bench-tok — encode and decode throughput of one GGUF's tokenizer.
 *
 *   bench-tok MODEL.gguf CORPUS_FILE [SECONDS]
 *
 * Loads the tokenizer (timed), then for about SECONDS each (default 1):
 * encodes the whole corpus file (MB of input per second), decodes the ids
 * back with aw_tok_decode (MB of output per second) and with the streaming
 * decoder one token at a time. Prints one line of figures; never asserts a
 * time. tests/bench/bench-tok.sh runs it beside llama.cpp's llama-tokenize.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "tok.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench-tok MODEL.gguf CORPUS_FILE [SECONDS]\n");
		return 2;
	}
	double secs = argc > 3 ? atof(argv[3]) : 1.0;
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *text = malloc((size_t)len + 1);
	if (fread(text, 1, (size_t)len, f) != (size_t)len) {
		perror("fread");
		return 1;
	}
	fclose(f);

	struct aw_err err = {0};
	struct aw_gguf *g;
	struct aw_tok *t;
	double t0 = now();
	if (aw_gguf_open(argv[1], &g, &err) < 0 || aw_tok_new_from_gguf(g, &t, &err) < 0) {
		fprintf(stderr, "bench-tok: %s: %s\n", argv[1], err.msg);
		return 1;
	}
	double load = now() - t0;
	aw_gguf_close(g);

	int32_t *ids = NULL;
	size_t n = 0;
	int reps = 0;
	t0 = now();
	do {
		free(ids);
		if (aw_tok_encode_alloc(t, text, (size_t)len, 0, &ids, &n) < 0) {
			fprintf(stderr, "bench-tok: encode failed\n");
			return 1;
		}
		reps++;
	} while (now() - t0 < secs);
	double enc = (now() - t0) / reps;

	size_t need;
	aw_tok_decode(t, ids, n, 0, NULL, 0, &need);
	char *out = malloc(need + 1);
	int dreps = 0;
	t0 = now();
	do {
		if (aw_tok_decode(t, ids, n, 0, out, need, &need) < 0)
			return 1;
		dreps++;
	} while (now() - t0 < secs);
	double dec = (now() - t0) / dreps;

	struct aw_tok_stream st;
	size_t cap = aw_tok_stream_max(t), k, total = 0;
	char *chunk = malloc(cap);
	int sreps = 0;
	t0 = now();
	do {
		aw_tok_stream_init(&st, t, 0);
		total = 0;
		for (size_t i = 0; i < n; i++) {
			aw_tok_stream_push(&st, ids[i], chunk, cap, &k);
			total += k;
		}
		aw_tok_stream_flush(&st, chunk, cap, &k);
		total += k;
		sreps++;
	} while (now() - t0 < secs);
	double str = (now() - t0) / sreps;

	printf("%s: load %.1f ms; %ld bytes -> %zu tokens; encode %.2f MB/s (%.3f s); decode %.1f "
	       "MB/s; stream %.1f MB/s\n",
	       argv[1], load * 1e3, len, n, (double)len / enc / 1e6, enc, (double)need / dec / 1e6,
	       (double)total / str / 1e6);
	free(chunk);
	free(out);
	free(ids);
	free(text);
	aw_tok_free(t);
	return 0;
}
