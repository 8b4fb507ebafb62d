/* sched-check.h — scheduler test helpers shared by test-sched, test-sched-ff
 * and test-score (include after <cmocka.h> and "scheduler.h"). */
#ifndef AW_SCHED_CHECK_H
#define AW_SCHED_CHECK_H

/* Step 's' on the real clock until it is idle; fails after max_steps.
 * Returns the steps taken. */
static inline int sched_drain(struct aw_sched *s, int max_steps)
{
	int i;

	for (i = 0; i < max_steps; i++)
		if (aw_sched_step(s, aw_sched_now_us()) == 0)
			break;
	assert_true(i < max_steps);
	return i + 1;
}

/* Nothing running or waiting, and once the prefix cache and the sessions
 * are dropped every KV block is free: nothing leaked. */
static inline void check_empty(struct aw_sched *s)
{
	struct aw_sched_stats st;

	aw_sched_flush(s);
	aw_sched_get_stats(s, &st);
	assert_int_equal(st.running, 0);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.cache_blocks, 0);
	assert_int_equal(st.free_blocks, st.n_blocks);
}

#endif
