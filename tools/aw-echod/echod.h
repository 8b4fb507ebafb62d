/* echod.h — aw-echod: a kernel-UDP agentwire server that answers PING and
 * STATS (and refuses the inference operations with UNSUPPORTED).
 *
 * It is the kernel-socket baseline for the dataplane's PING benchmark and
 * the reference server the client, the Python client and aw-loadgen are
 * tested against while the DPDK daemon does not exist. It runs the server
 * side of the protocol for real: header checks with error replies,
 * reassembly of segmented requests, deduplication and RESUME from the
 * retransmit store, ACK, CANCEL, OVERLOADED when a table is full.
 */
#ifndef AW_ECHOD_H
#define AW_ECHOD_H

#include <stddef.h>
#include <stdint.h>

struct aw_echod;

struct aw_echod_opts {
	uint16_t server_id; /* put in every reply */
	size_t mtu;	    /* largest reply datagram + 28 (IPv4+UDP); default 1500 */
	int busy_poll;	    /* spin on non-blocking receives instead of poll() */
};

/* Bind a UDP socket to addr:port ("0" = any free port). Returns 0 and sets
 * *ret, or -errno. */
int aw_echod_open(const char *addr, const char *port, const struct aw_echod_opts *o,
		  struct aw_echod **ret);

/* The bound port (host order). */
uint16_t aw_echod_port(const struct aw_echod *d);

/* Serve until *quit becomes non-zero (checked at least every 10 ms).
 * Returns 0 or -errno on a socket failure. */
int aw_echod_run(struct aw_echod *d, volatile int *quit);

/* Write the STATS text ("name value" lines) into buf; returns its length. */
size_t aw_echod_stats_text(const struct aw_echod *d, char *buf, size_t cap);

void aw_echod_close(struct aw_echod *d);

#endif
