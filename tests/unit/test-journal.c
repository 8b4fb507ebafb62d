/* test-journal.c — journald line format and folded repeats (dataplane/journal.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"

struct out {
	char *buf;
	size_t len;
	FILE *f;
};

static void out_open(struct out *o)
{
	o->buf = NULL;
	o->len = 0;
	o->f = open_memstream(&o->buf, &o->len);
	assert_non_null(o->f);
}

static const char *out_text(struct out *o)
{
	fflush(o->f);
	return o->buf;
}

static void out_close(struct out *o)
{
	fclose(o->f);
	free(o->buf);
}

static void journald_lines_carry_levels(void **state)
{
	struct aw_journal *j = malloc(sizeof(*j));
	struct out o;

	(void)state;
	out_open(&o);
	aw_journal_init(j, o.f, true, 1000);
	aw_journal_line(j, 3, "agentwire: daemon: boom", 0);
	aw_journal_line(j, 6, "info line", 1);
	aw_journal_line(j, 42, "clamped", 2);
	assert_string_equal(out_text(&o), "<3>agentwire: daemon: boom\n<6>info line\n<7>clamped\n");
	out_close(&o);
	free(j);
}

static void terminal_lines_are_plain(void **state)
{
	struct aw_journal *j = malloc(sizeof(*j));
	struct out o;

	(void)state;
	out_open(&o);
	aw_journal_init(j, o.f, false, 1000);
	aw_journal_line(j, 3, "plain", 0);
	assert_string_equal(out_text(&o), "plain\n");
	out_close(&o);
	free(j);
}

static void repeats_are_folded_with_a_count(void **state)
{
	struct aw_journal *j = malloc(sizeof(*j));
	struct out o;

	(void)state;
	out_open(&o);
	aw_journal_init(j, o.f, true, 1000);
	for (int i = 0; i < 500; i++)
		aw_journal_line(j, 3, "port 0: rx error", (uint64_t)i);
	aw_journal_line(j, 5, "something else", 600);
	/* the same text at another level is another message */
	aw_journal_line(j, 4, "something else", 601);
	assert_string_equal(out_text(&o), "<3>port 0: rx error\n"
					  "<3>last message repeated 499 times\n"
					  "<5>something else\n"
					  "<4>something else\n");
	out_close(&o);
	free(j);
}

static void a_flood_costs_one_line_per_window(void **state)
{
	struct aw_journal *j = malloc(sizeof(*j));
	struct out o;
	const char *t;

	(void)state;
	out_open(&o);
	aw_journal_init(j, o.f, false, 1000);
	for (uint64_t t_us = 0; t_us < 3000; t_us += 10)
		aw_journal_line(j, 3, "flood", t_us);
	/* windows start at 0, 1000, 2000: three lines, two counts so far */
	t = out_text(&o);
	assert_string_equal(t, "flood\nlast message repeated 99 times\nflood\n"
			       "last message repeated 99 times\nflood\n");
	/* the flood stops: the tick reports the rest once the window ends */
	aw_journal_tick(j, 2500);
	assert_string_equal(out_text(&o), t);
	aw_journal_tick(j, 3000);
	assert_non_null(strstr(out_text(&o), "flood\nlast message repeated 99 times\n"
					     "flood\nlast message repeated 99 times\n"
					     "flood\nlast message repeated 99 times\n"));
	aw_journal_flush(j); /* nothing pending: nothing written */
	assert_int_equal(strlen(out_text(&o)), 6 * 3 + 31 * 3);
	out_close(&o);
	free(j);
}

static void stream_writes_are_split_into_lines(void **state)
{
	struct aw_journal *j = malloc(sizeof(*j));
	char big[3000];
	struct out o;

	(void)state;
	out_open(&o);
	aw_journal_init(j, o.f, true, 1000);
	aw_journal_write(j, 6, "EAL: one\nEAL: t", 15, 0);
	aw_journal_write(j, 6, "wo\n", 3, 1);
	assert_string_equal(out_text(&o), "<6>EAL: one\n<6>EAL: two\n");
	/* an over-long line is cut, never overflows */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	aw_journal_write(j, 4, big, sizeof(big), 2);
	assert_int_equal(strlen(out_text(&o)), 24 + 3 + AW_JOURNAL_LINE - 1 + 1);
	out_close(&o);
	free(j);
}

static void journal_stream_must_name_our_fd(void **state)
{
	char tmpl[] = "/tmp/aw-journal-XXXXXX", env[64];
	struct stat st;
	int fd = mkstemp(tmpl);

	(void)state;
	assert_true(fd >= 0);
	unlink(tmpl);
	assert_int_equal(fstat(fd, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	assert_true(aw_journal_detect(env, fd));
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino + 1);
	assert_false(aw_journal_detect(env, fd));
	assert_false(aw_journal_detect(NULL, fd));
	assert_false(aw_journal_detect("garbage", fd));
	assert_false(aw_journal_detect("1:2", -1));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(journald_lines_carry_levels),
		cmocka_unit_test(terminal_lines_are_plain),
		cmocka_unit_test(repeats_are_folded_with_a_count),
		cmocka_unit_test(a_flood_costs_one_line_per_window),
		cmocka_unit_test(stream_writes_are_split_into_lines),
		cmocka_unit_test(journal_stream_must_name_our_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
