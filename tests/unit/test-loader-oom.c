/* test-loader-oom.c — allocation failures in the weight loader.
 *
 * malloc and calloc are wrapped at link time (-Wl,--wrap=...), so the
 * loader's own calls go through the counter below. For n = 0, 1, 2, ... the
 * n-th allocation of one load fails; every run must either succeed with the
 * right bytes (an allocation the loader can do without, such as the
 * registered-buffer table, degrades instead) or return -ENOMEM with the
 * error buffer filled, leaving no fd and no mapping behind (LeakSanitizer
 * checks the heap in the sanitizer build). The loop ends when a load
 * completes with no failure injected. Each method, the job API and the GGUF
 * region helper are covered.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "loader.h"
#include "quant.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);

static long fail_at = -1; /* index of the allocation to fail; -1: none */
static long n_alloc;	  /* allocations seen since arming */
static bool injected;

static bool should_fail(void)
{
	if (fail_at < 0)
		return false;
	if (__atomic_fetch_add(&n_alloc, 1, __ATOMIC_RELAXED) == fail_at) {
		injected = true;
		return true;
	}
	return false;
}

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return should_fail() ? NULL : __real_calloc(n, m);
}

static void arm(long at)
{
	n_alloc = 0;
	injected = false;
	fail_at = at;
}

static char dir[256], path[512];
static uint8_t *file;
static const size_t file_size = 200000;

static int count_entries(const char *d)
{
	DIR *dp = opendir(d);
	struct dirent *e;
	int n = 0;

	assert_non_null(dp);
	while ((e = readdir(dp)))
		n++;
	closedir(dp);
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

enum api { API_LOAD, API_JOB };

/* One load with allocation 'at' failing. Returns 1 when a failure was injected. */
static int one(enum api api, const struct aw_load_opts *o, long at, bool check)
{
	struct aw_load_span spans[3] = {{0, 1000}, {1000, 50000}, {51000, 140000}};
	struct aw_load_region rg = {.offset = 333, .size = 191000, .spans = spans, .n_spans = 3};
	int fds = count_entries("/proc/self/fd"), maps = count_maps();
	struct aw_weights *w = NULL;
	struct aw_err err = {0};
	int ret, was;

	arm(at);
	if (api == API_LOAD) {
		ret = aw_loader_load(path, &rg, o, &w, &err);
	} else {
		struct aw_load_job *job;

		ret = aw_loader_start(path, &rg, o, &job, &err);
		if (ret == 0)
			ret = aw_loader_wait(job, &w, &err);
	}
	fail_at = -1;
	was = injected;
	if (ret == 0) {
		assert_memory_equal(aw_weights_data(w, 0), file + 333, rg.size);
		aw_weights_put(w);
	} else {
		if (ret != -ENOMEM)
			print_error("allocation %ld: %d %s\n", at, ret, err.msg);
		assert_int_equal(ret, -ENOMEM);
		assert_int_equal(err.code, ENOMEM);
		assert_true(was);
	}
	if (check) {
		assert_int_equal(count_entries("/proc/self/fd"), fds);
		assert_int_equal(count_maps(), maps);
	}
	return was;
}

static void sweep(enum api api, const struct aw_load_opts *o)
{
	long at;

	/* warm up: the first thread (job, prefault) creates glibc's stack cache
	 * and a malloc arena, which would upset the mapping count */
	one(api, o, -1, false);
	for (at = 0; at < 1000; at++)
		if (!one(api, o, at, true) && (print_message("# %ld allocations\n", at), 1))
			return;
	fail();
}

static void test_oom_uring(void **state)
{
	static const int nodes[] = {0, 0};
	struct aw_load_opts o = {.request_size = 8192,
				 .queue_depth = 4,
				 .features_on = AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_PREFAULT};

	(void)state;
	sweep(API_LOAD, &o);
	o.nodes = nodes;
	o.n_nodes = 2;
	sweep(API_LOAD, &o);
}

static void test_oom_read_mmap(void **state)
{
	struct aw_load_opts o = {.method = AW_LOAD_READ, .request_size = 8192};

	(void)state;
	sweep(API_LOAD, &o);
	o.method = AW_LOAD_MMAP;
	sweep(API_LOAD, &o);
}

static void test_oom_job(void **state)
{
	struct aw_load_opts o = {.request_size = 16384};

	(void)state;
	sweep(API_JOB, &o);
}

static void test_oom_gguf(void **state)
{
	char gpath[600];
	struct aw_gguf_writer *wr;
	struct aw_gguf *g;
	struct aw_err err;
	static float data[4][256];
	uint64_t ne[2] = {256, 1};
	long at;
	int i;

	(void)state;
	snprintf(gpath, sizeof(gpath), "%s/oom.gguf", dir);
	assert_int_equal(aw_gguf_writer_new(&wr), 0);
	assert_int_equal(aw_gguf_writer_set_str(wr, "general.architecture", "llama"), 0);
	for (i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "t%d", i);
		data[i][0] = (float)i;
		assert_int_equal(aw_gguf_writer_add_tensor(wr, name, AW_TYPE_F32, 2, ne, data[i],
							   sizeof(data[i])),
				 0);
	}
	assert_int_equal(aw_gguf_writer_write(wr, gpath, &err), 0);
	aw_gguf_writer_free(wr);
	assert_int_equal(aw_gguf_open(gpath, &g, &err), 0);
	for (at = 0; at < 1000; at++) {
		struct aw_weights *w = NULL;
		int ret;

		arm(at);
		ret = aw_loader_load_gguf(g, NULL, &w, &err);
		fail_at = -1;
		if (ret == 0) {
			assert_memory_equal(aw_weights_data(w, 0), aw_gguf_data(g),
					    aw_gguf_data_size(g));
			aw_weights_put(w);
			if (!injected)
				break;
		} else {
			assert_int_equal(ret, -ENOMEM);
			assert_int_equal(err.code, ENOMEM);
		}
	}
	assert_true(at < 1000);
	aw_gguf_close(g);
	unlink(gpath);
}

static int setup(void **state)
{
	FILE *f;
	size_t i;

	(void)state;
	snprintf(dir, sizeof(dir), "/var/tmp/aw-test-loader-oom-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof(path), "%s/data.bin", dir);
	file = __real_malloc(file_size);
	if (!file)
		return -1;
	for (i = 0; i < file_size; i++)
		file[i] = (uint8_t)(i * 131 + (i >> 8));
	f = fopen(path, "wb");
	if (!f || fwrite(file, 1, file_size, f) != file_size || fclose(f))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	free(file);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_uring),
		cmocka_unit_test(test_oom_read_mmap),
		cmocka_unit_test(test_oom_job),
		cmocka_unit_test(test_oom_gguf),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
