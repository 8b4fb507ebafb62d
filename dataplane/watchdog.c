/* watchdog.c — heartbeat stall detection (watchdog.h). */
#include "watchdog.h"

#include <errno.h>

int aw_watchdog_init(struct aw_watchdog *w, unsigned n, uint64_t stall_us, uint64_t now_us,
		     const uint64_t *count)
{
	if (n > AW_WATCHDOG_MAX || stall_us == 0 || (n && !count))
		return -EINVAL;
	w->n = n;
	w->stall_us = stall_us;
	for (unsigned i = 0; i < n; i++) {
		w->last[i] = count[i];
		w->changed_us[i] = now_us;
	}
	return 0;
}

int aw_watchdog_update(struct aw_watchdog *w, uint64_t now_us, const uint64_t *count,
		       uint64_t *ret_still_us)
{
	int stuck = -1;

	for (unsigned i = 0; i < w->n; i++) {
		if (count[i] != w->last[i]) {
			w->last[i] = count[i];
			w->changed_us[i] = now_us;
		} else if (stuck < 0 && now_us >= w->changed_us[i] &&
			   now_us - w->changed_us[i] >= w->stall_us) {
			stuck = (int)i;
			if (ret_still_us)
				*ret_still_us = now_us - w->changed_us[i];
		}
	}
	return stuck;
}
