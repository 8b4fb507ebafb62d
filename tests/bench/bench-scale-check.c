/* bench-scale-check — what checking every quantized block's scales for
 * NaN/Inf (aw_model_check_tensor) adds to loading a model.
 *
 *   bench-scale-check MODEL.gguf [uring|read|mmap] [REPS] [cold]
 *
 * Three figures, best of REPS (default 3), in one run:
 *   load      aw_loader_load_gguf() alone (no tensor callback);
 *   overlap   the same load with the check in the loader's on_tensor
 *             callback, i.e. on each tensor as soon as its bytes have landed,
 *             while later reads are in flight (what aw-infer --load does);
 *   serial    the check as a separate pass over the loaded weights after
 *             the load (what aw_model_load() does on a file mapping).
 * Warm page cache by default: the load is then a memory copy and the check's
 * share is largest. With 'cold', the file's pages are dropped from the page
 * cache before each load (posix_fadvise DONTNEED: this file only, no root
 * needed), so the reads come from the drive and the overlapped check can
 * hide under them.
 * Prints one line per figure and the overheads relative to 'load'.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf.h"
#include "loader.h"
#include "model.h"

struct ctx {
	const struct aw_gguf *g;
	struct aw_err err;
};

static int on_tensor(void *p, uint32_t idx, const void *data, uint64_t size)
{
	struct ctx *c = p;

	(void)size;
	return aw_model_check_tensor(c->g, idx, data, &c->err) < 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const char *cold; /* the path whose pages to drop, or NULL */

static void drop_cache(void)
{
	int fd;

	if (!cold || (fd = open(cold, O_RDONLY)) < 0)
		return;
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

static double load(const struct aw_gguf *g, enum aw_load_method m, int check, double *serial)
{
	struct ctx c = {.g = g};
	struct aw_load_opts o = {.method = m, .on_tensor = check ? on_tensor : NULL, .ctx = &c};
	struct aw_weights *w = NULL;
	struct aw_err err;

	drop_cache();
	double t0 = now();
	if (aw_loader_load_gguf(g, &o, &w, &err) < 0) {
		fprintf(stderr, "bench-scale-check: %s\n", c.err.msg[0] ? c.err.msg : err.msg);
		exit(1);
	}
	double t = now() - t0;
	if (serial) {
		const uint8_t *base = aw_weights_data(w, 0);
		t0 = now();
		for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
			const struct aw_gguf_tensor *tt = aw_gguf_tensor_at(g, i);
			if (aw_model_check_tensor(g, i, base + tt->offset, &err) < 0) {
				fprintf(stderr, "bench-scale-check: %s\n", err.msg);
				exit(1);
			}
		}
		*serial = now() - t0;
	}
	aw_weights_put(w);
	return t;
}

int main(int argc, char **argv)
{
	struct aw_gguf *g;
	struct aw_err err;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	int m = aw_loader_parse_method(argc > 2 ? argv[2] : "uring");

	if (argc > 4 && strcmp(argv[4], "cold") == 0)
		cold = argv[1];
	if (argc < 2 || m < 0 || reps < 1 || (argc > 4 && !cold)) {
		fprintf(stderr,
			"usage: bench-scale-check MODEL.gguf [uring|read|mmap] [REPS] [cold]\n");
		return 2;
	}
	if (aw_gguf_open(argv[1], &g, &err) < 0) {
		fprintf(stderr, "bench-scale-check: %s\n", err.msg);
		return 1;
	}
	double best_load = 1e30, best_overlap = 1e30, best_serial = 1e30;
	for (int r = 0; r < reps; r++) {
		double s, t;
		t = load(g, (enum aw_load_method)m, 0, &s);
		best_load = t < best_load ? t : best_load;
		best_serial = s < best_serial ? s : best_serial;
		t = load(g, (enum aw_load_method)m, 1, NULL);
		best_overlap = t < best_overlap ? t : best_overlap;
	}
	const double gb = (double)aw_gguf_data_size(g) / 1e9;
	printf("file %s: %.3f GB, method %s, %s page cache, best of %d\n", argv[1], gb,
	       argc > 2 ? argv[2] : "uring", cold ? "cold" : "warm", reps);
	printf("load            %8.1f ms  %6.2f GB/s\n", best_load * 1e3, gb / best_load);
	printf("load + overlap  %8.1f ms  %6.2f GB/s  (+%.1f %%)\n", best_overlap * 1e3,
	       gb / best_overlap, (best_overlap / best_load - 1) * 100);
	printf("serial check    %8.1f ms  %6.2f GB/s  (+%.1f %% if run after the load)\n",
	       best_serial * 1e3, gb / best_serial, best_serial / best_load * 100);
	aw_gguf_close(g);
	return 0;
}
