/* watchdog.h — decide whether every lcore is still alive, from heartbeats.
 *
 * Each dataplane lcore and each worker group bumps its own heartbeat counter
 * once per loop iteration (and a worker once per emitted token), so a counter
 * that stops moving means that lcore is stuck: in a spin, a deadlock or an
 * endless kernel. The daemon's control thread samples the counters and feeds
 * systemd's watchdog (sd_notify WATCHDOG=1) only while aw_watchdog_update()
 * says every lcore moved within the stall window; systemd then kills and
 * restarts a daemon whose lcore hangs. No DPDK here: the unit test feeds it.
 */
#ifndef AW_WATCHDOG_H
#define AW_WATCHDOG_H

#include <stdint.h>

#define AW_WATCHDOG_MAX 256 /* lcores watched */

struct aw_watchdog {
	unsigned n;			      /* counters watched */
	uint64_t stall_us;		      /* a counter still for this long is stuck */
	uint64_t last[AW_WATCHDOG_MAX];	      /* counter at its last change */
	uint64_t changed_us[AW_WATCHDOG_MAX]; /* when it last changed */
};

/* Watch 'n' counters (n <= AW_WATCHDOG_MAX) whose values at 'now_us' are
 * 'count'; one still for 'stall_us' or longer is stuck. Returns 0 or -EINVAL. */
int aw_watchdog_init(struct aw_watchdog *w, unsigned n, uint64_t stall_us, uint64_t now_us,
		     const uint64_t *count);

/* Record the counters at 'now_us'. Returns -1 when every counter moved
 * within the stall window, else the index of the first stuck one and, when
 * 'ret_still_us' is not NULL, sets it to how long that one has been still. */
int aw_watchdog_update(struct aw_watchdog *w, uint64_t now_us, const uint64_t *count,
		       uint64_t *ret_still_us);

#endif
