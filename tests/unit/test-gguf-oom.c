/* test-gguf-oom.c — allocation failures in the GGUF reader and writer.
 *
 * malloc, calloc and realloc are wrapped at link time (-Wl,--wrap=...), so
 * the library's own calls go through the counters below. For n = 0, 1, 2, ...
 * the n-th allocation of one parse (or write) fails; every run must either
 * succeed or return -ENOMEM with the error buffer filled, and free what it
 * had allocated (LeakSanitizer checks that in the sanitizer build). The loop
 * ends when an operation completes with no failure injected. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static long fail_at = -1; /* index of the allocation to fail; -1: none */
static long n_alloc;	  /* allocations seen since arming */
static bool injected;

static bool should_fail(void)
{
	if (fail_at < 0)
		return false;
	if (n_alloc++ == fail_at) {
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

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

static void arm(long at)
{
	n_alloc = 0;
	injected = false;
	fail_at = at;
}

static void disarm(void)
{
	fail_at = -1;
}

static float data[64 * 4];

static struct aw_gguf_writer *writer(void)
{
	static const char *const toks[] = {"a", "bb", "ccc"};
	static const int32_t ints[] = {1, 2, 3};
	struct aw_gguf_writer *w;
	uint64_t ne[2] = {64, 4};

	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 3, toks, NULL), 0);
	assert_int_equal(aw_gguf_writer_set_arr(w, "x", AW_GGUF_TYPE_INT32, 3, ints), 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t0", AW_TYPE_F32, 2, ne, data, sizeof(data)),
			 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t1", AW_TYPE_F32, 2, ne, data, sizeof(data)),
			 0);
	return w;
}

static void test_parse_oom(void **state)
{
	struct aw_gguf_writer *w = writer();
	struct aw_err err;
	void *buf;
	size_t len;
	long at;

	(void)state;
	assert_int_equal(aw_gguf_writer_write_buf(w, &buf, &len, &err), 0);
	aw_gguf_writer_free(w);
	for (at = 0;; at++) {
		struct aw_gguf *g = NULL;
		int r;

		arm(at);
		r = aw_gguf_parse(buf, len, &g, &err);
		disarm();
		if (!injected) {
			assert_int_equal(r, 0);
			aw_gguf_close(g);
			break;
		}
		if (r != -ENOMEM)
			fail_msg("allocation %ld failed: parse returned %d (%s)", at, r, err.msg);
		assert_int_equal(err.code, ENOMEM);
		assert_null(g);
	}
	assert_true(at >= 4); /* kvs, key hash, string table, tensors... were all exercised */
	free(buf);
}

static void test_write_oom(void **state)
{
	long at;

	(void)state;
	for (at = 0;; at++) {
		struct aw_gguf_writer *w = NULL;
		struct aw_err err;
		void *buf = NULL;
		size_t len;
		int r;

		/* building the writer fails too: each setter reports -ENOMEM */
		arm(at);
		r = aw_gguf_writer_new(&w);
		if (r == 0) {
			static const char *const toks[] = {"a", "bb"};
			uint64_t ne[2] = {64, 4};

			r = aw_gguf_writer_set_str(w, "general.architecture", "llama");
			if (r == 0)
				r = aw_gguf_writer_set_arr_str(w, "tok", 2, toks, NULL);
			if (r == 0)
				r = aw_gguf_writer_add_tensor(w, "t0", AW_TYPE_F32, 2, ne, data,
							      sizeof(data));
			if (r == 0)
				r = aw_gguf_writer_write_buf(w, &buf, &len, &err);
		}
		disarm();
		aw_gguf_writer_free(w);
		if (!injected) {
			assert_int_equal(r, 0);
			free(buf);
			break;
		}
		if (r != -ENOMEM)
			fail_msg("allocation %ld failed: writer returned %d", at, r);
		free(buf);
	}
	assert_true(at >= 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_oom),
		cmocka_unit_test(test_write_oom),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
