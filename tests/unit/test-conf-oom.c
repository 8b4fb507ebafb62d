/* test-conf-oom.c — allocation failures in libaw_config.
 *
 * malloc, calloc and realloc are wrapped at link time (-Wl,--wrap=...), so
 * the library's own calls go through the counters below (its strdup goes
 * through malloc too). For n = 0, 1, 2, ... the n-th allocation fails while
 * loading the two-socket example with overrides, validating it against its
 * described machine, printing the plan and building the EAL arguments. Each
 * step must either succeed or fail with -ENOMEM (or, when only a problem's
 * storage was lost, report its errors by count), never crash, and free what
 * it allocated (LeakSanitizer checks that in the sanitizer build). The loop
 * ends when a whole run completes with no failure injected.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static long fail_at = -1; /* index of the allocation to fail; -1: none */
static long n_alloc;
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

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = __real_malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* One whole run; returns true when every step succeeded. */
static bool one_run(const char *conf_text, size_t conf_len, const char *topo_text, size_t topo_len,
		    const char *const *sets, unsigned n_sets, unsigned want_errors)
{
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_topo *topo = NULL;
	struct aw_conf_plan *plan = NULL;
	struct aw_err e = {0};
	char **argv = NULL;
	int argc = 0, rc;
	bool ok = false;
	FILE *devnull;

	rc = aw_topo_load_buffer("m.topo", topo_text, topo_len, &topo, &e);
	if (rc < 0) {
		assert_int_equal(rc, -ENOMEM);
		return false;
	}
	rc = aw_conf_load_buffer("c.conf", conf_text, conf_len, sets, n_sets, &rep, &conf);
	if (rc < 0) {
		/* -ENOMEM, or -EINVAL from counted problems whose text was lost */
		assert_true(rc == -ENOMEM || (rc == -EINVAL && rep.errors > 0 && rep.n == 0));
		goto out;
	}
	plan = calloc(1, sizeof(*plan));
	if (!plan)
		goto out;
	{
		struct aw_conf_env env = {.topo = topo};

		rc = aw_conf_validate(conf, &env, &rep, plan);
		if (rc == -ENOMEM)
			goto out;
		/* the injected failure may only lose the problems' text, never change the count */
		assert_int_equal(rep.errors, want_errors);
		devnull = fopen("/dev/null", "w");
		if (devnull) {
			aw_conf_plan_print(conf, &env, plan, devnull);
			aw_conf_report_print(&rep, devnull);
			fclose(devnull);
		}
	}
	rc = aw_conf_eal_argv(conf, plan, "agentwire", &argv, &argc);
	if (rc < 0) {
		assert_int_equal(rc, -ENOMEM);
		goto out;
	}
	aw_conf_eal_argv_free(argv);
	ok = true;
out:
	free(plan);
	aw_conf_free(conf);
	aw_conf_report_fini(&rep);
	aw_topo_free(topo);
	return ok;
}

static void run_all_failures(const char *const *sets, unsigned n_sets, unsigned want_errors)
{
	char path[512];
	size_t clen, tlen;
	char *ctext, *ttext;
	long runs = 0;

	snprintf(path, sizeof(path), "%s/config/examples/two-socket-100g.conf", AW_SOURCE_ROOT);
	ctext = slurp(path, &clen);
	snprintf(path, sizeof(path), "%s/config/examples/two-socket-100g.topo", AW_SOURCE_ROOT);
	ttext = slurp(path, &tlen);
	for (fail_at = 0;; fail_at++) {
		bool ok;

		n_alloc = 0;
		injected = false;
		ok = one_run(ctext, clen, ttext, tlen, sets, n_sets, want_errors);
		runs++;
		if (!injected) {
			assert_true(ok);
			break;
		}
		assert_true(fail_at < 100000);
	}
	fail_at = -1;
	fprintf(stderr, "# %ld runs, every allocation failed once\n", runs);
	free(ctext);
	free(ttext);
}

static void test_oom_valid(void **state)
{
	const char *sets[] = {"group.0.max_batch=32", "limits.queue_depth=256"};

	(void)state;
	run_all_failures(sets, 2, 0);
}

static void test_oom_with_errors(void **state)
{
	/* problems found by validation: their storage may fail, their count may not */
	const char *sets[] = {"group.1.lcores=18-33", "group.3.kv_cache=200G"};

	(void)state;
	run_all_failures(sets, 2, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oom_valid),
		cmocka_unit_test(test_oom_with_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
