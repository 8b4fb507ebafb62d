/* test-loader.c — the weight loader against files the test writes.
 *
 * Every load is compared byte for byte with the file. Shapes cover data
 * regions at odd offsets, sizes that are not multiples of 4096, files that
 * end mid-page, tiny queue depths and request sizes, every method, both
 * replication modes, degraded io_uring feature sets, the tmpfs (no
 * O_DIRECT) fallback, injected short reads and EIO, cancellation, a file
 * that changes during the load, and handle lifetimes. Leaks of fds and
 * mappings are checked by counting /proc/self/fd and /proc/self/maps around
 * each failing load (LSan checks the heap under the ASan build).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "loader.h"
#include "model.h"
#include "quant.h"
#include "tiny-llama.h"
#include "aw-skip.h"

static char tmpdir[256];

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Write 'size' pseudo-random bytes to dir/name; return a malloc'ed copy. */
static uint8_t *write_file(const char *dir, const char *name, size_t size, uint64_t seed,
			   char *path, size_t pathlen)
{
	uint8_t *buf = malloc(size ? size : 1);
	FILE *f;
	size_t i;

	assert_non_null(buf);
	rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
	for (i = 0; i < size; i++)
		buf[i] = (uint8_t)(rng() >> 24);
	snprintf(path, pathlen, "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, size, f), size);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static int count_dir(const char *d)
{
	DIR *dir = opendir(d);
	struct dirent *e;
	int n = 0;

	assert_non_null(dir);
	while ((e = readdir(dir)))
		n++;
	closedir(dir);
	return n;
}

static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	assert_non_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* --- tensor callback checker --------------------------------------------------------------- */

struct tcheck {
	const uint8_t *file; /* file contents */
	uint64_t region_off; /* data region offset in the file */
	const struct aw_load_span *spans;
	uint32_t next;	    /* expected next index */
	int cancel_at;	    /* return 1 at this index (-1 never) */
	const char *touch;  /* change this file at tensor 0 */
	int touch_append;   /* 1: append a byte, 0: bump mtime */
	uint64_t last_done; /* progress: last bytes_done */
	int progress_calls, progress_done;
};

static int on_tensor(void *ctx, uint32_t idx, const void *data, uint64_t size)
{
	struct tcheck *t = ctx;

	assert_int_equal(idx, t->next);
	assert_int_equal(size, t->spans[idx].size);
	assert_memory_equal(data, t->file + t->region_off + t->spans[idx].offset, size ? size : 0);
	t->next++;
	if (t->touch && idx == 0) {
		if (t->touch_append) {
			FILE *f = fopen(t->touch, "ab");

			assert_non_null(f);
			fputc('x', f);
			fclose(f);
		} else {
			struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 678}};

			assert_int_equal(utimensat(AT_FDCWD, t->touch, ts, 0), 0);
		}
	}
	return (int)idx == t->cancel_at;
}

static int on_progress(void *ctx, const struct aw_load_progress *p)
{
	struct tcheck *t = ctx;

	assert_true(p->bytes_done >= t->last_done);
	assert_true(p->bytes_done <= p->bytes_total);
	t->last_done = p->bytes_done;
	t->progress_calls++;
	if (p->done) {
		assert_int_equal(p->bytes_done, p->bytes_total);
		t->progress_done++;
	}
	return 0;
}

/* Cut [0, size) into n spans of random sizes (some empty). */
static struct aw_load_span *make_spans(uint64_t size, uint32_t n)
{
	struct aw_load_span *s = calloc(n, sizeof(*s));
	uint64_t off = 0;
	uint32_t i;

	assert_non_null(s);
	for (i = 0; i < n; i++) {
		uint64_t left = size - off;
		uint64_t len = i + 1 == n ? left : (left ? rng() % (left / (n - i) * 2 + 1) : 0);

		if (len > left)
			len = left;
		s[i].offset = off;
		s[i].size = len;
		off += len;
	}
	return s;
}

/* Load and compare: one shape. */
static void check_load(const char *dir, uint64_t head, uint64_t size, uint64_t tail,
		       const struct aw_load_opts *base, uint64_t seed)
{
	char path[512];
	uint8_t *file;
	struct aw_load_opts o = *base;
	struct aw_load_region rg = {.offset = head, .size = size};
	struct aw_weights *w = NULL;
	struct aw_err err;
	struct tcheck t = {0};
	unsigned r;
	int ret;

	file = write_file(dir, "shape.bin", head + size + tail, seed, path, sizeof(path));
	rg.n_spans = 1 + (uint32_t)(rng() % 9);
	rg.spans = make_spans(size, rg.n_spans);
	t.file = file;
	t.region_off = head;
	t.spans = rg.spans;
	t.cancel_at = -1;
	o.on_tensor = on_tensor;
	o.on_progress = on_progress;
	o.progress_ms = 0;
	o.ctx = &t;
	ret = aw_loader_load(path, &rg, &o, &w, &err);
	if (ret)
		print_error("load %s head %" PRIu64 " size %" PRIu64 " tail %" PRIu64 ": %s\n",
			    aw_loader_method_name(o.method), head, size, tail, err.msg);
	assert_int_equal(ret, 0);
	assert_int_equal(t.next, rg.n_spans);
	assert_int_equal(t.progress_done, 1);
	assert_int_equal(aw_weights_info(w)->size, size);
	for (r = 0; r < aw_weights_info(w)->n_replicas; r++)
		assert_memory_equal(aw_weights_data(w, r), file + head, size);
	assert_null(aw_weights_data(w, aw_weights_info(w)->n_replicas));
	aw_weights_put(w);
	free((void *)rg.spans);
	free(file);
	unlink(path);
}

static const uint64_t heads[] = {0, 1, 31, 4095, 4096, 8195, 65536 + 32};
static const uint64_t sizes[] = {1, 17, 4095, 4096, 4097, 12345, 65536, 300001, (1u << 20) + 4099};
static const uint64_t tails[] = {0, 1, 100, 4095, 4096};

static void shapes_on(const char *dir, enum aw_load_method m, unsigned features_off,
		      unsigned features_on)
{
	static const size_t rss[] = {4096, 8192, 65536, 1u << 20};
	static const unsigned qds[] = {1, 2, 3, 8, 32};
	unsigned i, j, k = 0;

	for (i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
		for (j = 0; j < sizeof(sizes) / sizeof(sizes[0]); j++, k++) {
			struct aw_load_opts o = {.method = m,
						 .features_off = features_off,
						 .features_on = features_on};

			o.request_size = rss[k % 4];
			o.queue_depth = qds[k % 5];
			/* tiny requests on big regions would make the suite slow */
			if (sizes[j] > 200000 && o.request_size < 65536)
				o.request_size = 65536;
			check_load(dir, heads[i], sizes[j], tails[(i + j) % 5], &o, k);
		}
}

static void shapes(const char *dir, enum aw_load_method m, unsigned features_off)
{
	shapes_on(dir, m, features_off, 0);
}

static void test_shapes_uring(void **state)
{
	(void)state;
	shapes(tmpdir, AW_LOAD_URING, 0);
}

static void test_shapes_uring_degraded(void **state)
{
	(void)state;
	/* each feature off in turn, then all of them */
	shapes(tmpdir, AW_LOAD_URING, AW_LOAD_F_DEFER_TASKRUN);
	shapes(tmpdir, AW_LOAD_URING, AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_FIXED_FILES);
	shapes(tmpdir, AW_LOAD_URING, AW_LOAD_F_ALL);
	/* and the opt-in ones: registered buffers, the prefault thread */
	shapes_on(tmpdir, AW_LOAD_URING, 0, AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_PREFAULT);
	shapes_on(tmpdir, AW_LOAD_READ, 0, AW_LOAD_F_PREFAULT);
}

static void test_shapes_read(void **state)
{
	(void)state;
	shapes(tmpdir, AW_LOAD_READ, 0);
}

static void test_shapes_mmap(void **state)
{
	(void)state;
	shapes(tmpdir, AW_LOAD_MMAP, 0);
}

/* Features reported are the ones asked for minus the ones turned off. */
static void test_features(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "feat.bin", 100000, 7, path, sizeof(path));
	struct aw_load_region rg = {.offset = 10, .size = 99000};
	struct aw_load_opts o = {.features_off = AW_LOAD_F_DEFER_TASKRUN | AW_LOAD_F_FIXED_BUFS};
	struct aw_weights *w;
	struct aw_err err;
	unsigned f;

	(void)state;
	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	f = aw_weights_info(w)->features;
	assert_false(f & AW_LOAD_F_DEFER_TASKRUN);
	assert_false(f & AW_LOAD_F_FIXED_BUFS);
	assert_int_equal(aw_weights_info(w)->method, AW_LOAD_URING);
	assert_memory_equal(aw_weights_data(w, 0), file + 10, 99000);
	aw_weights_put(w);

	o.features_off = 0;
	o.features_on = AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_PREFAULT;
	o.request_size = 16384;
	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 10, 99000);
	f = aw_weights_info(w)->features;
	assert_true(f & AW_LOAD_F_PREFAULT);
	/* this kernel (>= 6.1) grants everything on ext4/xfs: record it */
	print_message("# granted: %s\n", aw_loader_features_str(f, (char[160]){0}, 160));
	assert_true(f & AW_LOAD_F_SINGLE_ISSUER);
	aw_weights_put(w);
	free(file);
	unlink(path);
}

static void test_replicas(void **state)
{
	static const int nodes[] = {0, 0, 0};
	enum aw_load_replicate m;

	(void)state;
	for (m = AW_LOAD_REPL_COPY; m <= AW_LOAD_REPL_READ; m++) {
		struct aw_load_opts o = {.nodes = nodes,
					 .n_nodes = 3,
					 .replicate = m,
					 .request_size = 8192,
					 .queue_depth = 4};

		check_load(tmpdir, 77, 100001, 3, &o, 11 + m);
		o.method = AW_LOAD_READ;
		check_load(tmpdir, 4096, 50000, 0, &o, 12 + m);
		o.method = AW_LOAD_MMAP;
		check_load(tmpdir, 5, 70000, 9, &o, 13 + m);
		/* the file goes on well past the region's last block */
		for (o.method = AW_LOAD_URING; o.method <= AW_LOAD_MMAP; o.method++)
			check_load(tmpdir, 4000, 20000, 3 * 8192 + 5, &o, 14 + m);
	}
}

/* --- faults -------------------------------------------------------------------------------- */

struct fault {
	uint64_t at; /* completion index to hit */
	int every;   /* >0: hit every 'every' completions (short reads) */
	int mode;    /* 0 short by half, 1 short by 1 byte, 2 -EIO, 3 short to 0 */
	uint64_t hits;
};

static int fault_fn(void *ctx, enum aw_load_fault_site site, uint64_t n, int res)
{
	struct fault *f = ctx;

	if (site != AW_LOAD_FAULT_READ)
		return res;
	if (res <= 1)
		return res;
	if (f->every ? (n % (uint64_t)f->every) != f->at : n != f->at)
		return res;
	f->hits++;
	switch (f->mode) {
	case 0:
		return res / 2;
	case 1:
		return res - 1;
	case 2:
		return -EIO;
	default:
		return 0;
	}
}

static void test_short_reads(void **state)
{
	enum aw_load_method m;
	int mode;

	(void)state;
	for (m = AW_LOAD_URING; m <= AW_LOAD_READ; m++)
		for (mode = 0; mode <= 1; mode++) {
			char path[512];
			uint8_t *file =
				write_file(tmpdir, "short.bin", 333333, 5, path, sizeof(path));
			struct fault f = {.at = 1, .every = 3, .mode = mode};
			struct aw_load_region rg = {.offset = 333, .size = 333000};
			struct aw_load_opts o = {.method = m,
						 .request_size = 16384,
						 .queue_depth = 4,
						 .fault = fault_fn,
						 .fault_ctx = &f};
			struct aw_weights *w;
			struct aw_err err;

			assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
			assert_true(f.hits > 5);
			assert_int_equal(aw_weights_info(w)->short_reads, f.hits);
			assert_memory_equal(aw_weights_data(w, 0), file + 333, 333000);
			aw_weights_put(w);
			free(file);
			unlink(path);
		}
}

static void *idle_thread(void *arg)
{
	return arg;
}

/* A load that must fail with 'code', leaving no fd or mapping behind. The
 * loader's helper threads (tensor callbacks, prefault) take a stack that the
 * C library (and ASan) keep cached after the join: one thread started and
 * joined first puts such a stack in the cache, so they reuse it and only
 * the loader's own mappings are counted. */
static void expect_fail(const char *path, const struct aw_load_region *rg,
			const struct aw_load_opts *o, int code, const char *msg_part)
{
	struct aw_weights *w = (struct aw_weights *)(uintptr_t)0x1;
	struct aw_err err;
	pthread_t th;

	assert_int_equal(pthread_create(&th, NULL, idle_thread, NULL), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	int fds = count_dir("/proc/self/fd"), maps = count_maps();
	int ret = aw_loader_load(path, rg, o, &w, &err);

	if (ret != -code)
		print_error("expected %d, got %d: %s\n", -code, ret, err.msg);
	assert_int_equal(ret, -code);
	assert_int_equal(err.code, code);
	assert_ptr_equal(w, (struct aw_weights *)(uintptr_t)0x1); /* untouched on error */
	if (msg_part && !strstr(err.msg, msg_part))
		print_error("message '%s' lacks '%s'\n", err.msg, msg_part);
	if (msg_part)
		assert_non_null(strstr(err.msg, msg_part));
	assert_int_equal(count_dir("/proc/self/fd"), fds);
	assert_int_equal(count_maps(), maps);
}

static void test_eio(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "eio.bin", 500000, 9, path, sizeof(path));
	struct aw_load_region rg = {.offset = 1000, .size = 498000};
	enum aw_load_method m;
	uint64_t at;

	(void)state;
	for (m = AW_LOAD_URING; m <= AW_LOAD_MMAP; m++)
		for (at = 0; at < 30; at += 7) {
			struct fault f = {.at = at, .mode = 2};
			struct aw_load_opts o = {.method = m,
						 .request_size = 16384,
						 .queue_depth = 8,
						 .fault = fault_fn,
						 .fault_ctx = &f};

			expect_fail(path, &rg, &o, EIO, "Input/output error");
			assert_int_equal(f.hits, 1);
		}
	/* a read that returns 0 before the expected end: truncated underneath */
	{
		struct fault f = {.at = 2, .mode = 3};
		struct aw_load_opts o = {.request_size = 16384, .fault = fault_fn, .fault_ctx = &f};

		expect_fail(path, &rg, &o, EIO, "unexpected end of file");
	}
	free(file);
	unlink(path);
}

static void test_bad_args(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "bad.bin", 10000, 1, path, sizeof(path));
	struct aw_load_region rg = {.offset = 100, .size = 9900};
	struct aw_load_span unsorted[2] = {{100, 10}, {50, 10}};
	struct aw_load_span outside[1] = {{9000, 901}};
	static const int bad_node[] = {4000};
	struct aw_load_opts o = {0};

	(void)state;
	rg.size = 9901;
	expect_fail(path, &rg, &o, EINVAL, "beyond the file end");
	rg.size = 0;
	expect_fail(path, &rg, &o, EINVAL, "empty");
	rg.size = 9900;
	rg.spans = unsorted;
	rg.n_spans = 2;
	expect_fail(path, &rg, &o, EINVAL, "not sorted");
	rg.spans = outside;
	rg.n_spans = 1;
	expect_fail(path, &rg, &o, EINVAL, "beyond the region");
	rg.n_spans = 0;
	o.request_size = 5000;
	expect_fail(path, &rg, &o, EINVAL, "multiple of 4096");
	o.request_size = 0;
	o.nodes = bad_node;
	o.n_nodes = 1;
	expect_fail(path, &rg, &o, EINVAL, "does not exist");
	o.nodes = NULL;
	o.method = (enum aw_load_method)7;
	expect_fail(path, &rg, &o, EINVAL, "unknown load method");
	o.method = AW_LOAD_URING;
	o.hugepages = (enum aw_load_hugepages)9;
	expect_fail(path, &rg, &o, EINVAL, "unknown hugepages mode");
	o.hugepages = AW_LOAD_HUGE_AUTO;
	expect_fail("/nonexistent/model.gguf", &rg, &o, ENOENT, "/nonexistent/model.gguf");
	o.fault_nomem = 1;
	expect_fail(path, &rg, &o, ENOMEM, "cannot allocate");
	free(file);
	unlink(path);
}

static void test_cancel_callback(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "cancel.bin", 400000, 3, path, sizeof(path));
	struct aw_load_region rg = {.offset = 12, .size = 399000};
	enum aw_load_method m;

	(void)state;
	/* callbacks on their own thread (default) and on the loading thread */
	for (int k = 0; k < 6; k++) {
		m = (enum aw_load_method)(k % 3);
		struct tcheck t = {.file = file, .region_off = 12, .cancel_at = 3};
		struct aw_load_opts o = {.method = m,
					 .request_size = 8192,
					 .queue_depth = 8,
					 .features_off = k < 3 ? 0 : AW_LOAD_F_CB_THREAD,
					 .on_tensor = on_tensor,
					 .ctx = &t};

		rg.n_spans = 20;
		rg.spans = make_spans(rg.size, rg.n_spans);
		t.spans = rg.spans;
		expect_fail(path, &rg, &o, ECANCELED, "cancelled");
		assert_int_equal(t.next, 4); /* nothing after the cancelling tensor */
		free((void *)rg.spans);
	}
	free(file);
	unlink(path);
}

/* aw_loader_cancel() from another thread while the job is blocked in a callback. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int started, released;
};

static int gate_tensor(void *ctx, uint32_t idx, const void *data, uint64_t size)
{
	struct gate *g = ctx;

	(void)data;
	(void)size;
	if (idx != 0)
		return 0;
	pthread_mutex_lock(&g->mu);
	g->started = 1;
	pthread_cond_broadcast(&g->cv);
	while (!g->released)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

static void test_job_cancel(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "job.bin", 1 << 20, 4, path, sizeof(path));
	struct aw_load_span spans[2] = {{0, 100}, {100, (1 << 20) - 300}};
	struct aw_load_region rg = {
		.offset = 100, .size = (1 << 20) - 200, .spans = spans, .n_spans = 2};
	struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	struct aw_load_opts o = {
		.request_size = 4096, .queue_depth = 2, .on_tensor = gate_tensor, .ctx = &g};
	int fds, maps;
	struct aw_load_job *job;
	struct aw_load_progress p;
	struct aw_weights *w = NULL;
	struct aw_err err;

	(void)state;
	/* a job that runs to the end, in the background; it also warms up the
	 * thread stack cache and malloc arena that would upset the map count */
	o.on_tensor = NULL;
	assert_int_equal(aw_loader_start(path, &rg, &o, &job, &err), 0);
	assert_int_equal(aw_loader_wait(job, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 100, rg.size);
	aw_weights_put(w);
	w = NULL;

	fds = count_dir("/proc/self/fd");
	maps = count_maps();
	o.on_tensor = gate_tensor;
	assert_int_equal(aw_loader_start(path, &rg, &o, &job, &err), 0);
	pthread_mutex_lock(&g.mu);
	while (!g.started)
		pthread_cond_wait(&g.cv, &g.mu);
	aw_loader_poll(job, &p);
	assert_int_equal(p.bytes_total, rg.size);
	assert_true(p.bytes_done < rg.size);
	aw_loader_cancel(job);
	g.released = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(aw_loader_wait(job, &w, &err), -ECANCELED);
	assert_int_equal(err.code, ECANCELED);
	assert_null(w);
	assert_int_equal(count_dir("/proc/self/fd"), fds);
	assert_int_equal(count_maps(), maps);

	free(file);
	unlink(path);
}

static void test_file_changed(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "changed.bin", 300000, 2, path, sizeof(path));
	struct aw_load_region rg = {.offset = 0, .size = 299999};
	struct aw_load_span spans[1] = {{0, 10}};
	enum aw_load_method m;
	int append;

	(void)state;
	rg.spans = spans;
	rg.n_spans = 1;
	for (m = AW_LOAD_URING; m <= AW_LOAD_MMAP; m++)
		for (append = 0; append <= 1; append++) {
			struct tcheck t = {.file = file,
					   .spans = spans,
					   .cancel_at = -1,
					   .touch = path,
					   .touch_append = append};
			struct aw_load_opts o = {.method = m,
						 .request_size = 8192,
						 .on_tensor = on_tensor,
						 .ctx = &t};

			expect_fail(path, &rg, &o, ESTALE, "changed during the load");
		}
	free(file);
	unlink(path);
}

struct logcap {
	char lines[8][256];
	int n;
};

static void log_cap(int level, const char *module, const char *line, void *ctx)
{
	struct logcap *c = ctx;

	assert_string_equal(module, "loader");
	if (level <= AW_LOG_WARNING && c->n < 8)
		snprintf(c->lines[c->n++], 256, "%s", line);
}

/* A filesystem that refuses O_DIRECT, at open() or at the first read. */
static int refuse_direct(void *ctx, enum aw_load_fault_site site, uint64_t n, int res)
{
	int at_read = *(int *)ctx;

	if (!at_read && site == AW_LOAD_FAULT_OPEN_DIRECT)
		return -EINVAL;
	if (at_read && site == AW_LOAD_FAULT_READ && n == 0)
		return -EINVAL;
	return res;
}

static void direct_refused(const char *dir, enum aw_load_method m, int at_read)
{
	char path[512];
	struct logcap cap = {0};
	struct aw_load_opts o = {.method = m,
				 .log = log_cap,
				 .log_ctx = &cap,
				 .request_size = 8192,
				 .fault = refuse_direct,
				 .fault_ctx = &at_read};
	struct aw_load_region rg = {.offset = 4097, .size = 50000};
	struct aw_weights *w;
	struct aw_err err;
	uint8_t *file = write_file(dir, "nodirect.bin", 60000, 8, path, sizeof(path));
	int i, saw = 0;

	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 4097, 50000);
	assert_false(aw_weights_info(w)->features & AW_LOAD_F_DIRECT);
	for (i = 0; i < cap.n; i++)
		saw |= strstr(cap.lines[i], "O_DIRECT refused") != NULL;
	assert_true(saw);
	aw_weights_put(w);
	free(file);
	unlink(path);
}

static void test_direct_refused(void **state)
{
	(void)state;
	direct_refused(tmpdir, AW_LOAD_URING, 0);
	direct_refused(tmpdir, AW_LOAD_URING, 1);
}

/* An older or locked-down kernel: io_uring setup flags and registrations
 * refused; the loader drops one feature at a time and still loads. */
struct refuse {
	unsigned setup_mask; /* refuse setup when flags & mask (~0u: any flags) */
	int setup_err;
	unsigned register_mask; /* AW_LOAD_F_FIXED_* to refuse */
	int setup_calls;
};

static int refuse_fn(void *ctx, enum aw_load_fault_site site, uint64_t n, int res)
{
	struct refuse *r = ctx;

	if (site == AW_LOAD_FAULT_RING_SETUP) {
		r->setup_calls++;
		if (r->setup_mask == ~0u || (n & r->setup_mask))
			return r->setup_err;
	}
	if (site == AW_LOAD_FAULT_REGISTER && (n & r->register_mask))
		return -EOPNOTSUPP;
	return res;
}

static void degrade(struct refuse *rf, unsigned expect_feat, unsigned expect_absent,
		    enum aw_load_method expect_method, const char *warning)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "degrade.bin", 300000, 21, path, sizeof(path));
	struct aw_load_region rg = {.offset = 7, .size = 290000};
	struct logcap cap = {0};
	struct aw_load_opts o = {.request_size = 16384,
				 .queue_depth = 4,
				 .fault = refuse_fn,
				 .fault_ctx = rf,
				 .log = log_cap,
				 .log_ctx = &cap,
				 .features_on = AW_LOAD_F_FIXED_BUFS};
	struct aw_weights *w;
	struct aw_err err;
	int i, saw = !warning;

	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 7, rg.size);
	assert_int_equal(aw_weights_info(w)->features & expect_feat, expect_feat);
	assert_int_equal(aw_weights_info(w)->features & expect_absent, 0);
	assert_int_equal(aw_weights_info(w)->method, expect_method);
	for (i = 0; i < cap.n; i++)
		saw |= warning && strstr(cap.lines[i], warning) != NULL;
	assert_true(saw);
	aw_weights_put(w);
	free(file);
	unlink(path);
}

static void test_degrade(void **state)
{
	struct refuse r1 = {.setup_mask = 1u << 13 /* DEFER_TASKRUN */, .setup_err = -EINVAL};
	struct refuse r2 = {.setup_mask = ~0u - 1, .setup_err = -EOPNOTSUPP};
	struct refuse r3 = {.setup_mask = ~0u, .setup_err = -EPERM};
	struct refuse r4 = {.register_mask = AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_FIXED_FILES};

	(void)state;
	/* no DEFER_TASKRUN: SINGLE_ISSUER|COOP_TASKRUN is next */
	degrade(&r1, AW_LOAD_F_SINGLE_ISSUER | AW_LOAD_F_COOP_TASKRUN | AW_LOAD_F_FIXED_BUFS,
		AW_LOAD_F_DEFER_TASKRUN, AW_LOAD_URING, NULL);
	assert_int_equal(r1.setup_calls, 2);
	/* every flag refused: a plain ring after four tries */
	degrade(&r2, AW_LOAD_F_FIXED_FILES,
		AW_LOAD_F_SINGLE_ISSUER | AW_LOAD_F_DEFER_TASKRUN | AW_LOAD_F_COOP_TASKRUN,
		AW_LOAD_URING, NULL);
	assert_int_equal(r2.setup_calls, 4);
	/* io_uring disabled (sysctl kernel.io_uring_disabled): pread, with a warning */
	degrade(&r3, 0, 0, AW_LOAD_READ, "io_uring unavailable");
	/* registrations refused */
	degrade(&r4, AW_LOAD_F_SINGLE_ISSUER | AW_LOAD_F_DEFER_TASKRUN,
		AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_FIXED_FILES, AW_LOAD_URING, NULL);
}

/* tmpfs: before Linux 6.6 it refuses O_DIRECT (the loader must fall back
 * with a warning); since 6.6 it accepts it. Either way the bytes must match. */
static void test_tmpfs(void **state)
{
	struct stat st;
	char dir[] = "/dev/shm/aw-test-loader-XXXXXX";
	char path[512];
	struct logcap cap = {0};
	struct aw_load_opts o = {.log = log_cap, .log_ctx = &cap, .request_size = 8192};
	struct aw_load_region rg = {.offset = 4097, .size = 50000};
	struct aw_weights *w;
	struct aw_err err;
	uint8_t *file;
	int i, saw = 0, fd;

	(void)state;
	if (stat("/dev/shm", &st) < 0 || !mkdtemp(dir))
		AW_SKIP("no tmpfs at /dev/shm");
	file = write_file(dir, "tmpfs.bin", 60000, 8, path, sizeof(path));
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd >= 0)
		close(fd);
	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 4097, 50000);
	for (i = 0; i < cap.n; i++)
		saw |= strstr(cap.lines[i], "O_DIRECT refused") != NULL;
	if (fd < 0) {
		assert_false(aw_weights_info(w)->features & AW_LOAD_F_DIRECT);
		assert_true(saw);
	} else {
		print_message("# tmpfs accepts O_DIRECT on this kernel\n");
		assert_true(aw_weights_info(w)->features & AW_LOAD_F_DIRECT);
		assert_false(saw);
	}
	aw_weights_put(w);
	shapes(dir, AW_LOAD_URING, 0);
	free(file);
	unlink(path);
	rmdir(dir);
}

static void test_hugepages(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "huge.bin", 3 << 20, 6, path, sizeof(path));
	struct aw_load_region rg = {.offset = 64, .size = (3 << 20) - 64};
	struct logcap cap = {0};
	struct aw_load_opts o = {
		.hugepages = AW_LOAD_HUGE_REQUIRE, .log = log_cap, .log_ctx = &cap};
	struct aw_weights *w;
	struct aw_err err;
	long free_huge = 0;
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	int ret;

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		sscanf(line, "HugePages_Free: %ld", &free_huge);
	fclose(f);
	ret = aw_loader_load(path, &rg, &o, &w, &err);
	if (free_huge >= 2) {
		assert_int_equal(ret, 0);
		assert_true(aw_weights_info(w)->hugetlb);
		assert_memory_equal(aw_weights_data(w, 0), file + 64, rg.size);
		aw_weights_put(w);
	} else if (free_huge == 0) {
		assert_int_equal(ret, -ENOMEM);
		assert_non_null(strstr(err.msg, "hugepages required"));
	}
	/* AUTO: succeeds either way; warns when it falls back */
	o.hugepages = AW_LOAD_HUGE_AUTO;
	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_memory_equal(aw_weights_data(w, 0), file + 64, rg.size);
	if (!aw_weights_info(w)->hugetlb) {
		assert_int_equal(cap.n, 1);
		assert_non_null(strstr(cap.lines[0], "hugepages"));
	}
	aw_weights_put(w);
	/* ordinary pages, with and without THP advice: no warning, no hugetlb */
	for (o.hugepages = AW_LOAD_HUGE_OFF; o.hugepages <= AW_LOAD_HUGE_THP;
	     o.hugepages += AW_LOAD_HUGE_THP - AW_LOAD_HUGE_OFF) {
		cap.n = 0;
		assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
		assert_memory_equal(aw_weights_data(w, 0), file + 64, rg.size);
		assert_false(aw_weights_info(w)->hugetlb);
		assert_int_equal(cap.n, 0);
		aw_weights_put(w);
	}
	free(file);
	unlink(path);
}

static void test_refcount(void **state)
{
	char path[512];
	uint8_t *file = write_file(tmpdir, "ref.bin", 200000, 10, path, sizeof(path));
	struct aw_load_region rg = {.offset = 3, .size = 199990};
	static const int nodes[] = {0, 0};
	struct aw_load_opts o = {.nodes = nodes, .n_nodes = 2};
	int maps = count_maps();
	struct aw_weights *w, *w2;
	struct aw_err err;
	char json[512];

	(void)state;
	assert_int_equal(aw_loader_load(path, &rg, &o, &w, &err), 0);
	assert_true(count_maps() > maps);
	w2 = aw_weights_get(w);
	assert_ptr_equal(w2, w);
	aw_weights_put(w); /* the first holder is done; the second still reads */
	assert_memory_equal(aw_weights_data(w2, 1), file + 3, rg.size);
	assert_ptr_equal(aw_weights_data_node(w2, 0), aw_weights_data(w2, 0));
	assert_ptr_equal(aw_weights_data_node(w2, 5), aw_weights_data(w2, 0));
	aw_loader_info_json(aw_weights_info(w2), json, sizeof(json));
	assert_non_null(strstr(json, "\"bytes\":199990,"));
	assert_non_null(strstr(json, "\"method\":\"uring\""));
	assert_non_null(strstr(json, "\"replicas\":2"));
	aw_weights_put(w2);
	assert_int_equal(count_maps(), maps);
	aw_weights_put(NULL);
	free(file);
	unlink(path);
}

static void test_names(void **state)
{
	struct aw_load_progress p = {.bytes_done = 500000000,
				     .bytes_total = 1000000000,
				     .seconds = 0.5,
				     .gbps = 1.0,
				     .eta_seconds = 0.5};
	char buf[160];

	(void)state;
	assert_int_equal(aw_loader_parse_method("uring"), AW_LOAD_URING);
	assert_int_equal(aw_loader_parse_method("read"), AW_LOAD_READ);
	assert_int_equal(aw_loader_parse_method("mmap"), AW_LOAD_MMAP);
	assert_int_equal(aw_loader_parse_method("mmapx"), -EINVAL);
	assert_int_equal(aw_loader_parse_method(NULL), -EINVAL);
	assert_string_equal(aw_loader_features_str(0, buf, sizeof(buf)), "none");
	assert_string_equal(aw_loader_features_str(AW_LOAD_F_DIRECT | AW_LOAD_F_SINGLE_ISSUER, buf,
						   sizeof(buf)),
			    "single_issuer,direct");
	aw_loader_progress_format(&p, buf, sizeof(buf));
	assert_non_null(strstr(buf, "0.50/1.00 GB"));
	assert_non_null(strstr(buf, "50.0%"));
	assert_non_null(strstr(buf, "ETA 0.5 s"));

	/* the printer, not on a terminal: about one line a second plus the last */
	{
		static const double at[] = {0.1, 0.6, 1.2, 1.5, 2.3, 2.4};
		struct aw_load_progress q = {.bytes_total = 1000};
		FILE *f = tmpfile();
		char line[160];
		int n = 0;
		unsigned i;

		assert_non_null(f);
		for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			q.seconds = at[i];
			q.bytes_done = (uint64_t)(at[i] * 100);
			assert_int_equal(aw_loader_print_progress(f, &q), 0);
		}
		q.done = 1;
		q.bytes_done = 1000;
		q.seconds = 2.5;
		assert_int_equal(aw_loader_print_progress(f, &q), 0);
		rewind(f);
		while (fgets(line, sizeof(line), f)) {
			n++;
			assert_null(strchr(line, '\r'));
		}
		assert_int_equal(n, 3); /* at 1.2 s, 2.3 s, and done */
		assert_non_null(strstr(line, "100.0%"));
		assert_non_null(strstr(line, "in 2.5 s"));
		fclose(f);
	}
}

/* A real GGUF file from the writer: every tensor arrives (by tensor index,
 * in file order) with the bytes the reader maps. */
struct gcheck {
	const struct aw_gguf *g;
	int seen[16];
	uint64_t last_off;
};

static int gguf_tensor(void *ctx, uint32_t idx, const void *data, uint64_t size)
{
	struct gcheck *c = ctx;
	const struct aw_gguf_tensor *t = aw_gguf_tensor_at(c->g, idx);

	assert_non_null(t);
	assert_true(idx < 16);
	assert_int_equal(size, t->size);
	assert_true(t->offset >= c->last_off);
	c->last_off = t->offset;
	assert_memory_equal(data, aw_gguf_tensor_data(c->g, t), size);
	c->seen[idx]++;
	return 0;
}

static void test_gguf(void **state)
{
	char path[512];
	struct aw_gguf_writer *wr;
	struct aw_gguf *g;
	struct aw_weights *w;
	struct aw_err err;
	struct gcheck c = {0};
	float *data[7];
	unsigned i;

	(void)state;
	snprintf(path, sizeof(path), "%s/model.gguf", tmpdir);
	assert_int_equal(aw_gguf_writer_new(&wr), 0);
	assert_int_equal(aw_gguf_writer_set_str(wr, "general.architecture", "llama"), 0);
	for (i = 0; i < 7; i++) {
		uint64_t ne[2] = {1 + i * 777, 3 + i};
		size_t n = ne[0] * ne[1], k;
		char name[32];

		data[i] = malloc(n * sizeof(float));
		assert_non_null(data[i]);
		for (k = 0; k < n; k++)
			data[i][k] = (float)(rng() % 1000) - 500.0f;
		snprintf(name, sizeof(name), "t%u", i);
		assert_int_equal(aw_gguf_writer_add_tensor(wr, name, AW_TYPE_F32, 2, ne, data[i],
							   n * sizeof(float)),
				 0);
	}
	assert_int_equal(aw_gguf_writer_write(wr, path, &err), 0);
	aw_gguf_writer_free(wr);
	assert_int_equal(aw_gguf_open(path, &g, &err), 0);
	c.g = g;
	{
		struct aw_load_opts o = {.request_size = 8192,
					 .queue_depth = 4,
					 .on_tensor = gguf_tensor,
					 .ctx = &c};

		assert_int_equal(aw_loader_load_gguf(g, &o, &w, &err), 0);
	}
	for (i = 0; i < 7; i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);

		assert_int_equal(c.seen[i], 1);
		assert_memory_equal((const uint8_t *)aw_weights_data(w, 0) + t->offset, data[i],
				    t->size);
		free(data[i]);
	}
	assert_int_equal(aw_weights_info(w)->size, aw_gguf_data_size(g));
	aw_weights_put(w);
	aw_gguf_close(g);
	unlink(path);
}

/* Repacking in place from the writable tensor callback: a tiny model with
 * Q8_0 and Q4_0 matrices (rows multiples of 16, except an untied output of
 * 100 rows that the model repacks the usual way), loaded into two replicas by
 * both replication modes and both real methods. Every matrix the repacker
 * took must equal aw_kern_repack() of the file's bytes in both replicas, the
 * others must be the file's bytes, and the model built on the loaded replica
 * must give the logits, bit for bit, of the model that repacks at load. */
static void repack_case(const char *path, const struct aw_gguf *g, enum aw_load_method m,
			enum aw_load_replicate rep)
{
	static const int nodes[2] = {0, 0};
	struct aw_load_opts o = {.method = m,
				 .request_size = 8192,
				 .queue_depth = 3,
				 .nodes = nodes,
				 .n_nodes = 2,
				 .replicate = rep,
				 .on_tensor_rw = aw_model_repacker_tensor};
	struct aw_model_repacker rp;
	struct aw_weights *w;
	struct aw_err err;
	uint64_t expect = 0;

	(void)path;
	assert_int_equal(aw_model_repacker_init(&rp, g), 0);
	o.tensor_ctx = &rp;
	assert_int_equal(aw_loader_load_gguf(g, &o, &w, &err), 0);
	assert_int_equal(rp.rc, 0);
	for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);
		const void *file = aw_gguf_tensor_data(g, t);
		const bool mat = strncmp(t->name, "blk.", 4) == 0 && t->ne[1] > 1 &&
				 t->ne[1] % 16 == 0 &&
				 (t->type == AW_TYPE_Q4_K || t->type == AW_TYPE_Q5_K ||
				  t->type == AW_TYPE_Q6_K || /* KQ8: any alignment */
				  ((t->type == AW_TYPE_Q8_0 || t->type == AW_TYPE_Q4_0) &&
				   (uintptr_t)((const uint8_t *)aw_weights_data(w, 0) + t->offset) %
						   AW_KERN_ALIGN ==
					   0)); /* off-alignment X16 ones are left to the model */

		if (mat)
			expect++;
		assert_int_equal(rp.done[i], mat);
		for (unsigned r = 0; r < 2; r++) {
			const uint8_t *got = (const uint8_t *)aw_weights_data(w, r) + t->offset;

			if (!rp.done[i]) {
				assert_memory_equal(got, file, t->size);
				continue;
			}
			struct aw_kern_mat src, dst;
			void *want = malloc(t->size);

			assert_non_null(want);
			assert_int_equal(aw_kern_mat_init(t->type, (uint32_t)t->ne[1],
							  (uint32_t)t->ne[0], file, &src),
					 0);
			assert_int_equal(aw_kern_repack(&src, want, &dst), 0);
			assert_memory_equal(got, want, t->size);
			free(want);
		}
	}
	assert_true(expect > 0);
	assert_int_equal(rp.n_done, expect);

	/* the model on the repacked replica against the model repacking at load */
	struct aw_model *ma, *mb;
	struct aw_model_params pa = {.max_batch = 8, .repack = 1};
	struct aw_model_params pb = {.max_batch = 8, .repack = 1, .prepacked = rp.done};
	struct aw_kv *ka, *kb;

	assert_int_equal(aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &pa, &ma, &err),
			 0);
	assert_int_equal(
		aw_model_load(g, aw_weights_data(w, 1), aw_weights_info(w)->size, &pb, &mb, &err),
		0);
	assert_true(aw_model_owned_bytes(mb) < aw_model_owned_bytes(ma));
	const struct aw_model_hparams *hp = aw_model_hparams(ma);
	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(ma),
				  .block_size = 8,
				  .max_seqs = 1,
				  .max_seq_len = 32,
				  .type = AW_TYPE_F32};
	assert_int_equal(aw_kv_new(&kc, &ka), 0);
	assert_int_equal(aw_kv_new(&kc, &kb), 0);
	float *la = malloc(sizeof(float) * 4 * (size_t)hp->n_vocab);
	float *lb = malloc(sizeof(float) * 4 * (size_t)hp->n_vocab);
	assert_non_null(la);
	assert_non_null(lb);
	const int32_t tok[4] = {5, 17, 3, 42}, pos[4] = {0, 1, 2, 3}, seq[4] = {0};
	const int8_t want[4] = {1, 1, 1, 1};
	struct aw_batch b = {4, tok, pos, seq, want};
	assert_int_equal(aw_model_forward(ma, ka, &b, NULL, la), 4);
	assert_int_equal(aw_model_forward(mb, kb, &b, NULL, lb), 4);
	assert_memory_equal(la, lb, sizeof(float) * 4 * (size_t)hp->n_vocab);
	free(la);
	free(lb);
	aw_kv_free(ka);
	aw_kv_free(kb);
	aw_model_free(ma);
	aw_model_free(mb);
	aw_model_repacker_fini(&rp);
	aw_weights_put(w);
}

static void test_repack_inplace(void **state)
{
	char path[512];
	struct tiny_cfg c;
	struct aw_gguf *g;
	struct aw_err err;
	void *buf = NULL;
	size_t len;

	(void)state;
	tiny_default(&c);
	c.vocab = 100; /* output.weight: 100 rows, not repacked in place */
	c.type = AW_TYPE_Q8_0;
	c.embd_type = AW_TYPE_Q8_0;
	c.mixed = 1; /* Q8_0, Q4_0 and float matrices */
	c.n_layer = 3;
	snprintf(path, sizeof(path), "%s/repack.gguf", tmpdir);
	assert_int_equal(tiny_write(&c, path, &buf, &len), 0);
	free(buf);
	assert_int_equal(aw_gguf_open(path, &g, &err), 0);
	repack_case(path, g, AW_LOAD_URING, AW_LOAD_REPL_COPY);
	repack_case(path, g, AW_LOAD_URING, AW_LOAD_REPL_READ);
	repack_case(path, g, AW_LOAD_READ, AW_LOAD_REPL_COPY);
	aw_gguf_close(g);
	unlink(path);

	/* K-quants: the KQ8 layout has the file's size, so the repacker takes
	 * Q4_K, Q5_K and Q6_K matrices in place too (kquant) */
	static const uint32_t ktypes[] = {AW_TYPE_Q4_K, AW_TYPE_Q5_K, AW_TYPE_Q6_K};
	for (size_t i = 0; i < 3; i++) {
		tiny_default(&c);
		c.vocab = 100;
		c.dim = 256;
		c.ffn = 512;
		c.type = ktypes[i];
		c.embd_type = AW_TYPE_Q8_0;
		c.n_layer = 2;
		assert_int_equal(tiny_write(&c, path, &buf, &len), 0);
		free(buf);
		assert_int_equal(aw_gguf_open(path, &g, &err), 0);
		repack_case(path, g, AW_LOAD_READ, AW_LOAD_REPL_COPY);
		aw_gguf_close(g);
		unlink(path);
	}
	tiny_default(&c);
	c.vocab = 100;
	c.type = AW_TYPE_Q8_0;
	c.embd_type = AW_TYPE_Q8_0;
	c.mixed = 1;
	c.n_layer = 3;
	assert_int_equal(tiny_write(&c, path, &buf, &len), 0);
	free(buf);
	assert_int_equal(aw_gguf_open(path, &g, &err), 0);

	/* the mmap method's replica 0 is read-only: refused */
	{
		struct aw_model_repacker rp;
		struct aw_load_opts o = {.method = AW_LOAD_MMAP,
					 .on_tensor_rw = aw_model_repacker_tensor,
					 .tensor_ctx = &rp};
		struct aw_weights *w = NULL;

		assert_int_equal(aw_model_repacker_init(&rp, g), 0);
		assert_int_equal(aw_loader_load_gguf(g, &o, &w, &err), -EINVAL);
		assert_null(w);
		assert_non_null(strstr(err.msg, "writable"));
		aw_model_repacker_fini(&rp);
	}
	aw_gguf_close(g);
	unlink(path);

	/* a NaN block scale in a matrix the repacker takes: refused before it
	 * is rewritten (the model skips its own check for prepacked tensors) */
	tiny_default(&c);
	c.type = AW_TYPE_Q8_0;
	c.nan_scale = "blk.1.ffn_up.weight";
	assert_int_equal(tiny_write(&c, path, &buf, &len), 0);
	assert_int_equal(aw_gguf_open(path, &g, &err), 0);
	{
		struct aw_model_repacker rp;
		struct aw_load_opts o = {.on_tensor_rw = aw_model_repacker_tensor,
					 .tensor_ctx = &rp};
		struct aw_weights *w = NULL;

		assert_int_equal(aw_model_repacker_init(&rp, g), 0);
		assert_int_equal(aw_loader_load_gguf(g, &o, &w, &err), -ECANCELED);
		assert_null(w);
		assert_int_equal(rp.rc, -EINVAL);
		assert_non_null(strstr(rp.msg, "'blk.1.ffn_up.weight'"));
		assert_non_null(strstr(rp.msg, "NaN"));
		aw_model_repacker_fini(&rp);
	}
	aw_gguf_close(g);
	unlink(path);
}

static int setup(void **state)
{
	const char *t = getenv("TMPDIR");

	(void)state;
	/* O_DIRECT needs a real filesystem: not tmpfs */
	snprintf(tmpdir, sizeof(tmpdir), "%s/aw-test-loader-XXXXXX",
		 t && strncmp(t, "/dev/shm", 8) ? t : "/var/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	rmdir(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shapes_uring),   cmocka_unit_test(test_shapes_uring_degraded),
		cmocka_unit_test(test_shapes_read),    cmocka_unit_test(test_shapes_mmap),
		cmocka_unit_test(test_features),       cmocka_unit_test(test_replicas),
		cmocka_unit_test(test_short_reads),    cmocka_unit_test(test_eio),
		cmocka_unit_test(test_bad_args),       cmocka_unit_test(test_cancel_callback),
		cmocka_unit_test(test_job_cancel),     cmocka_unit_test(test_file_changed),
		cmocka_unit_test(test_direct_refused), cmocka_unit_test(test_degrade),
		cmocka_unit_test(test_tmpfs),	       cmocka_unit_test(test_hugepages),
		cmocka_unit_test(test_refcount),       cmocka_unit_test(test_names),
		cmocka_unit_test(test_gguf),	       cmocka_unit_test(test_repack_inplace),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
