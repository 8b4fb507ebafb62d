/* dataplane.h — DPDK ports and the dataplane lcores (libaw_dataplane).
 *
 * One struct aw_dp holds the ports and the dataplane lcores. Dataplane lcore
 * i polls RX queue i and transmits on TX queue i of every port, so a flow
 * (RSS on the UDP 5-tuple) stays on one lcore, with its own ARP cache,
 * reassembly table and retransmit store — no locks on the packet path.
 * Each lcore:
 *   - answers ARP and ICMP echo itself and drops what is not for it, counted
 *     by reason (net.h);
 *   - answers PING itself (the transport-only round trip), RESUME/ACK from
 *     its retransmit store, STATS from the counters;
 *   - reassembles GENERATE/CLASSIFY/EMBED requests, deduplicates them by
 *     (client, request id), and hands complete ones to dispatch (dispatch.h),
 *     which answers OVERLOADED at once when the chosen group is full;
 *   - drains its response ring (filled by worker lcores with aw_dp_reply()),
 *     adds the Ethernet/IPv4/UDP headers, keeps a copy for retransmission,
 *     and transmits in bursts.
 * The EAL main lcore watches link state (a port that goes down is no longer
 * polled: the memif PMD crashes when polled after its peer left) and serves
 * telemetry.
 *
 * Counters are per lcore, written only by their lcore and read by anyone with
 * relaxed atomic loads (telemetry, tests).
 */
#ifndef AW_DATAPLANE_H
#define AW_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>

#include "net.h"
#include "proto.h"

#define AW_DP_MAX_PORTS	 8
#define AW_DP_MAX_LCORES 16
#define AW_DP_MAX_BURST	 64
#define AW_DP_MAX_GROUPS 8
#define AW_DP_HDR_ROOM	 (AW_NET_HDRS_LEN)		      /* L2-L4 bytes before the datagram */
#define AW_DP_DGRAM_OFF	 (AW_NET_HDRS_LEN + AW_PROTO_HDR_LEN) /* first payload byte */

enum aw_dp_idle {
	AW_DP_IDLE_POLL = 0, /* spin (a dedicated core) */
	AW_DP_IDLE_YIELD,    /* sched_yield() after an empty round (shared cores) */
	AW_DP_IDLE_SLEEP,    /* back off with short sleeps, up to 100 us */
};

/* One port. Addresses in network byte order. */
struct aw_dp_port_params {
	uint16_t port_id;  /* DPDK port id (probed from a PCI device or --vdev) */
	uint32_t ip;	   /* our IPv4 address */
	uint32_t netmask;  /* our subnet */
	uint32_t gateway;  /* next hop off the subnet, 0 = none */
	uint16_t udp_port; /* host order */
	uint16_t rx_desc;  /* RX descriptors per queue */
	uint16_t tx_desc;  /* TX descriptors per queue */
	uint16_t mtu;	   /* 0 = leave the device's */
};

struct aw_dp_params {
	unsigned n_ports;
	struct aw_dp_port_params port[AW_DP_MAX_PORTS];
	unsigned n_lcores;		  /* dataplane lcores = RX/TX queues per port */
	unsigned lcore[AW_DP_MAX_LCORES]; /* their DPDK lcore ids */
	unsigned burst;			  /* packets per burst (<= AW_DP_MAX_BURST) */
	enum aw_dp_idle idle;		  /* what an lcore does when nothing arrived */
	unsigned mbufs;			  /* mbufs per socket pool */
	unsigned mbuf_cache;		  /* per-lcore mempool cache */
	unsigned resp_ring_size;	  /* response ring entries per lcore (power of 2) */
	struct aw_proto_reasm_limits reasm;
	struct aw_proto_rtx_limits rtx;
	uint16_t server_id; /* echoed in every reply */
};

/* Per-lcore counters; names in aw_dp_ctr_name(). */
enum aw_dp_ctr {
	AW_DP_RX_PKTS = 0,
	AW_DP_RX_BYTES,
	AW_DP_TX_PKTS,
	AW_DP_TX_BYTES,
	AW_DP_TX_DROPPED,  /* TX queue full after retries: freed */
	AW_DP_RX_MULTISEG, /* chained mbufs (frames beyond one buffer): dropped */
	AW_DP_NO_MBUF,	   /* an mbuf allocation failed */
	AW_DP_ARP_REPLIES,
	AW_DP_ARP_LEARNT,
	AW_DP_ARP_REQUESTS, /* ARP requests we sent (cache misses) */
	AW_DP_ICMP_REPLIES,
	AW_DP_UDP_IN,	 /* datagrams to our port */
	AW_DP_PROTO_BAD, /* datagrams the codec refused (by fault below) */
	AW_DP_PING,	 /* PINGs answered */
	AW_DP_REQ_GENERATE,
	AW_DP_REQ_CLASSIFY,
	AW_DP_REQ_EMBED,
	AW_DP_REQ_CANCEL,
	AW_DP_REQ_STATS,
	AW_DP_REQ_RESUME,
	AW_DP_REQ_ACK,
	AW_DP_SEGMENTS_HELD, /* segments stored for reassembly */
	AW_DP_DUPLICATES,    /* requests already known (answered from the store) */
	AW_DP_DISPATCHED,    /* requests handed to a worker group */
	AW_DP_OVERLOADED,    /* requests answered OVERLOADED */
	AW_DP_REFUSED,	     /* other immediate errors (too long, unknown request, ...) */
	AW_DP_RESP_PKTS,     /* response datagrams packetized from the ring */
	AW_DP_RESENT,	     /* datagrams resent from the retransmit store */
	AW_DP_RTX_UNSTORED,  /* responses the store refused (too big): not recoverable */
	AW_DP_LINK_DOWN,     /* polls skipped because a port was down */
	AW_DP_IDLE_LOOPS,    /* rounds that found nothing */
	AW_DP_CTR__COUNT
};

struct aw_dp_stats {
	uint64_t c[AW_DP_CTR__COUNT];
	uint64_t drop[AW_NET_DROP__COUNT];   /* packet-layer drops by reason */
	uint64_t fault[AW_PROTO_FAULT_MAX_]; /* codec faults by kind */
};

/* Where a request came from and where its replies go. Copied into every
 * request object and every reply mbuf. */
struct aw_dp_flow {
	uint32_t ip;	     /* client IPv4 (network order) */
	uint16_t port;	     /* client UDP port (host order) */
	uint8_t mac[6];	     /* source MAC of the request (fallback next hop) */
	uint16_t port_idx;   /* index in aw_dp_params.port */
	uint16_t lcore_idx;  /* dataplane lcore that owns the flow */
	uint64_t request_id; /* client's request id */
	uint64_t session_id; /* echoed */
};

struct aw_dp;
struct aw_dispatch;

/* Create the mempools, configure and start the ports (queues, RSS, MTU,
 * offloads) and the per-lcore state. The EAL must be initialized. Returns 0
 * and sets *ret_dp, or -errno after logging the failing call. */
int aw_dp_new(const struct aw_dp_params *p, struct aw_dp **ret_dp);

/* Attach the dispatcher that receives complete requests (NULL: requests
 * other than PING/STATS are answered UNSUPPORTED). Before aw_dp_start(). */
void aw_dp_set_dispatch(struct aw_dp *dp, struct aw_dispatch *d);

/* Launch the dataplane lcores (rte_eal_remote_launch). Returns 0 or -errno. */
int aw_dp_start(struct aw_dp *dp);

/* Stop receiving: lcores stop polling RX but keep draining their response
 * rings and transmitting until aw_dp_stop(). Returns once every lcore has
 * finished its current round (no submit is in progress). */
void aw_dp_stop_rx(struct aw_dp *dp);

/* Stop the lcores (drains their response rings first) and wait for them. */
void aw_dp_stop(struct aw_dp *dp);

/* Stop and close the ports, free everything. Accepts NULL. Returns the
 * number of mbufs still allocated once the ports are closed, just before the
 * pools are freed: anything but 0 is a leak. */
unsigned aw_dp_free(struct aw_dp *dp);

/* Called periodically from the main lcore: link state of every port. A
 * port whose link is down is not polled; one whose link came up is polled
 * again 100 ms later. */
void aw_dp_poll_links(struct aw_dp *dp);

/* Dataplane lcore 'idx's heartbeat: +1 per iteration of its loop (0 for an
 * index out of range). The daemon's watchdog checks that it moves. */
uint64_t aw_dp_heartbeat(const struct aw_dp *dp, unsigned idx);

/* Send one reply datagram (proto header built from 'flow', 'type', 'seq',
 * 'payload') to the flow's lcore. Callable from any lcore; blocks (spins)
 * while the lcore's response ring is full unless the dataplane is stopping.
 * 'terminal' marks the last datagram of a response. Returns 0 or -errno
 * (-EMSGSIZE: payload larger than aw_dp_max_payload()). */
int aw_dp_reply(struct aw_dp *dp, const struct aw_dp_flow *flow, uint8_t type, uint32_t seq,
		const void *payload, size_t len, int terminal);

/* aw_dp_reply() with header flags (AW_PROTO_F_MORE on a reply fragment). */
int aw_dp_reply_flags(struct aw_dp *dp, const struct aw_dp_flow *flow, uint8_t type, uint16_t flags,
		      uint32_t seq, const void *payload, size_t len, int terminal);

/* Largest reply payload (after the 64-byte proto header) that fits the
 * flow's port MTU. */
size_t aw_dp_max_payload(const struct aw_dp *dp, const struct aw_dp_flow *flow);

/* Counters: a relaxed-atomic snapshot summed over the lcores (or one lcore
 * with idx < n_lcores). */
void aw_dp_stats_read(const struct aw_dp *dp, int idx, struct aw_dp_stats *ret);
const char *aw_dp_ctr_name(enum aw_dp_ctr c);

/* Mbufs currently allocated from the dataplane's pools (leak checks). */
unsigned aw_dp_mbufs_in_use(const struct aw_dp *dp);

const struct aw_dp_params *aw_dp_params(const struct aw_dp *dp);

/* Port MAC address (for logs and tests). */
void aw_dp_port_mac(const struct aw_dp *dp, unsigned port_idx, uint8_t ret_mac[6]);

/* Microseconds on the dataplane's clock (TSC-based). */
uint64_t aw_dp_now_us(void);

#endif
