/* test-watchdog.c — heartbeat stall detection (dataplane/watchdog.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "watchdog.h"

static void all_moving_is_healthy(void **state)
{
	struct aw_watchdog w;
	uint64_t c[3] = {0, 0, 0};

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, 3, 1000, 0, c), 0);
	for (uint64_t t = 500; t < 10000; t += 500) {
		c[0]++, c[1] += 7, c[2]++;
		assert_int_equal(aw_watchdog_update(&w, t, c, NULL), -1);
	}
}

static void one_still_counter_is_named(void **state)
{
	struct aw_watchdog w;
	uint64_t c[3] = {5, 5, 5}, still = 0;

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, 3, 1000, 0, c), 0);
	c[0]++, c[2]++;
	/* counter 1 still for 999 us: not yet stuck */
	assert_int_equal(aw_watchdog_update(&w, 999, c, &still), -1);
	c[0]++, c[2]++;
	assert_int_equal(aw_watchdog_update(&w, 1000, c, &still), 1);
	assert_int_equal(still, 1000);
	/* it moves again: healthy again */
	c[0]++, c[1]++, c[2]++;
	assert_int_equal(aw_watchdog_update(&w, 1500, c, &still), -1);
	/* then the last one stops: still measured from its last change */
	c[0]++, c[1]++;
	assert_int_equal(aw_watchdog_update(&w, 2400, c, &still), -1);
	c[0]++, c[1]++;
	assert_int_equal(aw_watchdog_update(&w, 2600, c, &still), 2);
	assert_int_equal(still, 1100);
}

static void first_of_several_stuck(void **state)
{
	struct aw_watchdog w;
	uint64_t c[4] = {1, 2, 3, 4};

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, 4, 100, 1000, c), 0);
	c[0]++;
	assert_int_equal(aw_watchdog_update(&w, 1200, c, NULL), 1);
}

static void a_counter_that_wraps_still_moves(void **state)
{
	struct aw_watchdog w;
	uint64_t c[1] = {UINT64_MAX};

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, 1, 100, 0, c), 0);
	c[0]++; /* 0 */
	assert_int_equal(aw_watchdog_update(&w, 150, c, NULL), -1);
}

static void clock_going_back_is_not_a_stall(void **state)
{
	struct aw_watchdog w;
	uint64_t c[1] = {1};

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, 1, 100, 5000, c), 0);
	assert_int_equal(aw_watchdog_update(&w, 10, c, NULL), -1);
}

static void bad_arguments(void **state)
{
	struct aw_watchdog w;
	uint64_t c[1] = {0};

	(void)state;
	assert_int_equal(aw_watchdog_init(&w, AW_WATCHDOG_MAX + 1, 100, 0, c), -EINVAL);
	assert_int_equal(aw_watchdog_init(&w, 1, 0, 0, c), -EINVAL);
	assert_int_equal(aw_watchdog_init(&w, 1, 100, 0, NULL), -EINVAL);
	/* nothing watched: always healthy */
	assert_int_equal(aw_watchdog_init(&w, 0, 100, 0, NULL), 0);
	assert_int_equal(aw_watchdog_update(&w, 1000000, c, NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(all_moving_is_healthy),
		cmocka_unit_test(one_still_counter_is_named),
		cmocka_unit_test(first_of_several_stuck),
		cmocka_unit_test(a_counter_that_wraps_still_moves),
		cmocka_unit_test(clock_going_back_is_not_a_stall),
		cmocka_unit_test(bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
