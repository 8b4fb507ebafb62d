/* dataplane.c — ports, the dataplane lcore loop, and the reply path.
 *
 * See dataplane.h for the division of work. The loop reads like DPDK's
 * l2fwd: receive a burst per port, handle each frame (net.c classifies it;
 * ARP/ICMP answers go back in the same mbuf; UDP goes to the protocol
 * handler), drain the response ring that worker lcores fill, flush the TX
 * buffers, and back off when a round found nothing. No syscalls and no
 * allocations other than mbufs on the packet path; the reassembly table and
 * retransmit store (proto.h) allocate within their configured limits.
 */
#include "dataplane.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "dispatch.h"
#include "log.h"

enum { DP_RUN = 0, DP_STOP_RX = 1, DP_QUIT = 2 };

#ifndef AW_PROTO_F_CONTROL /* docs/PROTOCOL.md: a reply outside the sequenced stream */
#define AW_PROTO_F_CONTROL 0x0004u
#endif

/* Reply metadata in each reply mbuf's private area. */
struct txmeta {
	struct aw_dp_flow flow;
	uint32_t seq;
	uint8_t terminal;
};

struct aw_dp_lcore {
	struct aw_dp *dp;
	unsigned idx;	   /* dataplane lcore index = queue id */
	unsigned lcore_id; /* DPDK lcore */
	struct rte_mempool *pool;
	struct rte_ring *resp; /* replies from workers (MP/SC) */
	struct aw_proto_reasm *reasm;
	struct aw_proto_rtx *rtx;
	uint16_t ip_id;
	uint64_t next_expire_us;
	uint64_t arp_req_us[AW_DP_MAX_PORTS]; /* last ARP request we sent per port */
	int rx_off;			      /* atomic: this lcore no longer receives */
	unsigned n_tx[AW_DP_MAX_PORTS];
	struct rte_mbuf *tx[AW_DP_MAX_PORTS][AW_DP_MAX_BURST];
	struct aw_net_if nif[AW_DP_MAX_PORTS];
	struct aw_net_arp arp[AW_DP_MAX_PORTS];
	struct aw_dp_stats st;
	uint64_t heartbeat; /* atomic: +1 per loop iteration (the daemon's watchdog) */
} __rte_cache_aligned;

struct aw_dp {
	struct aw_dp_params p;
	struct rte_mempool *pool[RTE_MAX_NUMA_NODES];
	struct aw_dp_lcore *lc[AW_DP_MAX_LCORES];
	struct aw_dispatch *dispatch;
	int state;			    /* DP_*, atomic */
	int port_up[AW_DP_MAX_PORTS];	    /* atomic */
	int port_started[AW_DP_MAX_PORTS];  /* ports to stop/close on free */
	uint64_t up_since[AW_DP_MAX_PORTS]; /* main lcore: when the link came up, 0 = down */
	uint32_t tx_flags[AW_DP_MAX_PORTS]; /* AW_NET_TX_* chosen from the port's offloads */
	size_t max_payload[AW_DP_MAX_PORTS];
	uint8_t mac[AW_DP_MAX_PORTS][6];
	int launched;
};

static uint64_t tsc_per_us = 1;

#define CTR_ADD(lc, f, n) __atomic_store_n(&(lc)->st.c[f], (lc)->st.c[f] + (n), __ATOMIC_RELAXED)
#define CTR_INC(lc, f)	  CTR_ADD(lc, f, 1)
#define ARR_INC(lc, a, i) __atomic_store_n(&(lc)->st.a[i], (lc)->st.a[i] + 1, __ATOMIC_RELAXED)

uint64_t aw_dp_now_us(void)
{
	return rte_get_tsc_cycles() / tsc_per_us;
}

static inline int dp_state(const struct aw_dp *dp)
{
	return __atomic_load_n(&dp->state, __ATOMIC_ACQUIRE);
}

static inline void flow_peer(const struct aw_dp_flow *f, struct aw_proto_peer *peer)
{
	memset(peer, 0, sizeof(*peer));
	memcpy(peer->addr, &f->ip, 4);
	peer->port = f->port;
	peer->family = 4;
}

/* --- TX -------------------------------------------------------------------- */

static void tx_flush(struct aw_dp_lcore *lc, unsigned pi)
{
	struct aw_dp *dp = lc->dp;
	unsigned n = lc->n_tx[pi], sent = 0;

	if (n == 0)
		return;
	if (__atomic_load_n(&dp->port_up[pi], __ATOMIC_RELAXED)) {
		for (int tries = 0; sent < n && tries < 8; tries++)
			sent += rte_eth_tx_burst(dp->p.port[pi].port_id, (uint16_t)lc->idx,
						 lc->tx[pi] + sent, (uint16_t)(n - sent));
	}
	if (unlikely(sent < n)) {
		CTR_ADD(lc, AW_DP_TX_DROPPED, n - sent);
		rte_pktmbuf_free_bulk(lc->tx[pi] + sent, n - sent);
	}
	CTR_ADD(lc, AW_DP_TX_PKTS, sent);
	lc->n_tx[pi] = 0;
}

static inline void tx_queue(struct aw_dp_lcore *lc, unsigned pi, struct rte_mbuf *m)
{
	CTR_ADD(lc, AW_DP_TX_BYTES, m->pkt_len);
	lc->tx[pi][lc->n_tx[pi]++] = m;
	if (lc->n_tx[pi] == lc->dp->p.burst)
		tx_flush(lc, pi);
}

/* The MAC to send to 'ip': the ARP cache entry of its next hop, else the
 * MAC its request came from (and ask ARP, at most every 100 ms). */
static const uint8_t *next_hop_mac(struct aw_dp_lcore *lc, unsigned pi, uint32_t ip,
				   const uint8_t *fallback, uint8_t *mac, uint64_t now)
{
	uint32_t nh = aw_net_next_hop(&lc->nif[pi], ip);
	struct rte_mbuf *m;

	if (nh == 0)
		return fallback;
	if (aw_net_arp_lookup(&lc->arp[pi], nh, now, mac) == 0)
		return mac;
	if (now - lc->arp_req_us[pi] >= 100000 && (m = rte_pktmbuf_alloc(lc->pool)) != NULL) {
		uint8_t *b = (uint8_t *)rte_pktmbuf_append(m, AW_NET_ETH_MIN);

		memset(b, 0, AW_NET_ETH_MIN);
		aw_net_arp_request(&lc->nif[pi], nh, b);
		lc->arp_req_us[pi] = now;
		CTR_INC(lc, AW_DP_ARP_REQUESTS);
		tx_queue(lc, pi, m);
	}
	return fallback;
}

/* 'm' holds a datagram at offset AW_DP_HDR_ROOM: add L2-L4 headers for
 * 'flow', keep a copy in the retransmit store when 'store', queue it. */
static void packetize(struct aw_dp_lcore *lc, struct rte_mbuf *m, const struct aw_dp_flow *flow,
		      uint32_t seq, int terminal, int store, uint64_t now)
{
	struct aw_dp *dp = lc->dp;
	unsigned pi = flow->port_idx;
	uint8_t *buf = rte_pktmbuf_mtod(m, uint8_t *), mac[6];
	size_t dlen = m->data_len - AW_DP_HDR_ROOM;
	const uint8_t *dst;

	if (store) {
		struct aw_proto_peer peer;

		flow_peer(flow, &peer);
		if (aw_proto_rtx_append(lc->rtx, &peer, flow->request_id, seq, buf + AW_DP_HDR_ROOM,
					dlen, terminal, now) < 0)
			CTR_INC(lc, AW_DP_RTX_UNSTORED);
	}
	dst = next_hop_mac(lc, pi, flow->ip, flow->mac, mac, now);
	aw_net_udp_build(&lc->nif[pi], dst, flow->ip, flow->port, lc->ip_id++, buf, dlen,
			 dp->tx_flags[pi]);
	m->ol_flags = 0;
	if (dp->tx_flags[pi] & AW_NET_TX_UDP_CSUM_OFFLOAD) {
		m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
		m->l2_len = AW_NET_ETH_LEN;
		m->l3_len = AW_NET_IP_LEN;
	}
	tx_queue(lc, pi, m);
}

/* Build reply datagram (header from 'flow') in a fresh mbuf. */
static struct rte_mbuf *reply_mbuf(struct rte_mempool *pool, const struct aw_dp *dp,
				   const struct aw_dp_flow *flow, uint8_t type, uint16_t flags,
				   uint32_t seq, const void *payload, size_t len)
{
	struct aw_proto_hdr h = {0};
	struct rte_mbuf *m;
	uint8_t *buf;

	if (len > dp->max_payload[flow->port_idx])
		return NULL;
	m = rte_pktmbuf_alloc(pool);
	if (!m)
		return NULL;
	buf = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(AW_DP_DGRAM_OFF + len));
	if (!buf) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	h.type = type;
	h.flags = flags;
	h.server_id = dp->p.server_id;
	h.request_id = flow->request_id;
	h.session_id = flow->session_id;
	h.seq = seq;
	aw_proto_build(buf + AW_DP_HDR_ROOM, AW_PROTO_HDR_LEN + len, &h, payload, len);
	return m;
}

/* A reply sent by the dataplane lcore itself. */
static void lc_send(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint8_t type,
		    uint32_t seq, const void *payload, size_t len, int store, int terminal,
		    uint64_t now)
{
	struct rte_mbuf *m = reply_mbuf(lc->pool, lc->dp, flow, type, 0, seq, payload, len);

	if (unlikely(!m)) {
		CTR_INC(lc, AW_DP_NO_MBUF);
		return;
	}
	packetize(lc, m, flow, seq, terminal, store, now);
}

static void lc_error(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint16_t code,
		     uint32_t retry_us, const char *msg, int store, uint64_t now)
{
	uint8_t body[AW_PROTO_ERROR_HDR_LEN + AW_PROTO_ERROR_MAX_MSG];
	int n = aw_proto_error_build(body, sizeof(body), code, retry_us, msg);

	if (n >= 0)
		lc_send(lc, flow, AW_PROTO_ERROR, 0, body, (size_t)n, store, 1, now);
}

/* ERROR answering a CANCEL/RESUME: outside the request's stream. */
static void lc_control_error(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint16_t code,
			     const char *msg, uint64_t now)
{
	uint8_t body[AW_PROTO_ERROR_HDR_LEN + AW_PROTO_ERROR_MAX_MSG];
	int n = aw_proto_error_build(body, sizeof(body), code, 0, msg);
	struct rte_mbuf *m;

	if (n < 0)
		return;
	m = reply_mbuf(lc->pool, lc->dp, flow, AW_PROTO_ERROR, AW_PROTO_F_CONTROL, 0, body,
		       (size_t)n);
	if (unlikely(!m)) {
		CTR_INC(lc, AW_DP_NO_MBUF);
		return;
	}
	packetize(lc, m, flow, 0, 1, 0, now);
}

/* Send 'len' bytes as DATA chunks then END (unstored; PING and STATS). */
static void lc_send_stream(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow,
			   const uint8_t *data, size_t len, uint64_t now)
{
	size_t max = lc->dp->max_payload[flow->port_idx] - AW_PROTO_DATA_HDR_LEN, off = 0;
	uint8_t chunk[9216];
	struct aw_proto_summary s = {0};
	uint32_t seq = 0;
	int n;

	if (max > sizeof(chunk) - AW_PROTO_DATA_HDR_LEN)
		max = sizeof(chunk) - AW_PROTO_DATA_HDR_LEN;
	while (off < len) {
		size_t c = len - off < max ? len - off : max;

		n = aw_proto_data_build(chunk, sizeof(chunk), 0, data + off, c);
		if (n < 0)
			return;
		lc_send(lc, flow, AW_PROTO_DATA, seq++, chunk, (size_t)n, 0, 0, now);
		off += c;
	}
	s.finish = AW_PROTO_FINISH_STOP;
	s.n_data = seq;
	s.data_bytes = len;
	n = aw_proto_summary_build(chunk, sizeof(chunk), &s, NULL);
	if (n >= 0)
		lc_send(lc, flow, AW_PROTO_END, seq, chunk, (size_t)n, 0, 1, now);
}

/* Resend stored datagrams [from, next) of a request. */
static void resend(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint32_t from,
		   uint64_t now)
{
	struct aw_proto_peer peer;
	uint32_t first, next;
	int st;

	flow_peer(flow, &peer);
	st = aw_proto_rtx_state(lc->rtx, &peer, flow->request_id, &first, &next);
	if (st < 0 || from < first) {
		CTR_INC(lc, AW_DP_REFUSED);
		lc_control_error(lc, flow, AW_PROTO_ERR_UNKNOWN_REQUEST,
				 st < 0 ? "request not held" : "datagrams no longer held", now);
		return;
	}
	for (uint32_t s = from; s < next; s++) {
		const void *dg;
		int len = aw_proto_rtx_get(lc->rtx, &peer, flow->request_id, s, &dg);
		struct rte_mbuf *m;
		uint8_t *b;

		if (len < 0)
			break;
		m = rte_pktmbuf_alloc(lc->pool);
		if (!m ||
		    !(b = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(AW_DP_HDR_ROOM + len)))) {
			rte_pktmbuf_free(m);
			CTR_INC(lc, AW_DP_NO_MBUF);
			return;
		}
		memcpy(b + AW_DP_HDR_ROOM, dg, (size_t)len);
		CTR_INC(lc, AW_DP_RESENT);
		packetize(lc, m, flow, s, 0, 0, now);
	}
}

/* --- requests ---------------------------------------------------------------- */

static void stats_text(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint64_t now)
{
	struct aw_dp_stats st;
	char txt[4096];
	size_t n = 0;

	aw_dp_stats_read(lc->dp, -1, &st);
	for (int i = 0; i < AW_DP_CTR__COUNT && n < sizeof(txt); i++)
		n += (size_t)snprintf(txt + n, sizeof(txt) - n, "%s=%lu\n",
				      aw_dp_ctr_name((enum aw_dp_ctr)i), (unsigned long)st.c[i]);
	if (n > sizeof(txt))
		n = sizeof(txt);
	lc_send_stream(lc, flow, (const uint8_t *)txt, n, now);
}

static void request_complete(struct aw_dp_lcore *lc, const struct aw_dp_flow *flow, uint8_t type,
			     const uint8_t *data, size_t len, uint64_t now)
{
	struct aw_dp *dp = lc->dp;
	struct aw_proto_peer peer;
	uint32_t first, next;
	int rc;

	if (type == AW_PROTO_PING) { /* a segmented PING, now whole */
		CTR_INC(lc, AW_DP_PING);
		if (len <= dp->max_payload[flow->port_idx])
			lc_send(lc, flow, AW_PROTO_PONG, 0, data, len, 0, 1, now);
		else
			lc_send_stream(lc, flow, data, len, now);
		return;
	}
	flow_peer(flow, &peer);
	rc = aw_proto_rtx_open(lc->rtx, &peer, flow->request_id, now);
	if (rc == -EEXIST) {
		/* a retransmitted request: never run twice */
		CTR_INC(lc, AW_DP_DUPLICATES);
		rc = aw_proto_rtx_state(lc->rtx, &peer, flow->request_id, &first, &next);
		if (rc == AW_PROTO_RTX_FINISHED) {
			resend(lc, flow, first, now);
		} else if (rc > 0) {
			struct aw_proto_progress pr = {.n_sent = next,
						       .state = rc == AW_PROTO_RTX_QUEUED ? 1 : 2};
			uint8_t b[AW_PROTO_PROGRESS_LEN];

			if (aw_proto_progress_build(b, sizeof(b), &pr) >= 0)
				lc_send(lc, flow, AW_PROTO_PROGRESS, next, b, sizeof(b), 0, 0, now);
		}
		return;
	}
	if (rc < 0) { /* the store is full of unfinished requests */
		CTR_INC(lc, AW_DP_OVERLOADED);
		lc_error(lc, flow, AW_PROTO_ERR_OVERLOADED, 1000, "too many requests in flight", 0,
			 now);
		return;
	}
	rc = dp->dispatch ? aw_dispatch_submit(dp->dispatch, flow, type, data, len, now) : -ENOSYS;
	if (rc == 0) {
		CTR_INC(lc, AW_DP_DISPATCHED);
		return;
	}
	if (rc == -ENOBUFS) {
		/* forget it, so that a retry under the same id is admitted later */
		aw_proto_rtx_drop(lc->rtx, &peer, flow->request_id);
		CTR_INC(lc, AW_DP_OVERLOADED);
		lc_error(lc, flow, AW_PROTO_ERR_OVERLOADED, 1000, "worker queues full", 0, now);
		return;
	}
	CTR_INC(lc, AW_DP_REFUSED);
	if (rc == -EMSGSIZE)
		lc_error(lc, flow, AW_PROTO_ERR_TOO_LONG, 0,
			 "message size: the request exceeds the server's message size limit", 1,
			 now);
	else
		lc_error(lc, flow, AW_PROTO_ERR_UNSUPPORTED, 0, "no worker group serves requests",
			 1, now);
}

/* A PING that fits one datagram: the PONG is written over the request in
 * the same mbuf (no allocation, no copy of the payload). */
static void ping_in_place(struct aw_dp_lcore *lc, unsigned pi, struct rte_mbuf *m,
			  const struct aw_net_pkt *pkt, const struct aw_proto_hdr *h,
			  const struct aw_dp_flow *flow, uint64_t now)
{
	struct aw_proto_hdr r = {0};
	uint8_t *buf = rte_pktmbuf_mtod(m, uint8_t *);
	size_t plen = h->payload_len;

	CTR_INC(lc, AW_DP_PING);
	if (unlikely(plen > lc->dp->max_payload[pi])) {
		lc_send_stream(lc, flow, buf + AW_DP_DGRAM_OFF, plen, now);
		rte_pktmbuf_free(m);
		return;
	}
	r.type = AW_PROTO_PONG;
	r.server_id = lc->dp->p.server_id;
	r.request_id = h->request_id;
	r.session_id = h->session_id;
	r.seg_count = 1;
	r.msg_len = (uint32_t)plen;
	r.payload_len = (uint16_t)plen;
	r.seg_size = (uint16_t)plen;
	aw_proto_hdr_write(buf + pkt->payload_off, &r);
	m->data_len = (uint16_t)(AW_DP_DGRAM_OFF + plen); /* drop Ethernet padding */
	m->pkt_len = m->data_len;
	packetize(lc, m, flow, 0, 1, 0, now);
}

static void udp_input(struct aw_dp_lcore *lc, unsigned pi, struct rte_mbuf *m,
		      const struct aw_net_pkt *pkt, uint64_t now)
{
	struct aw_dp *dp = lc->dp;
	const uint8_t *d = rte_pktmbuf_mtod_offset(m, const uint8_t *, pkt->payload_off);
	struct aw_proto_hdr h;
	struct aw_proto_err e;
	struct aw_dp_flow flow;
	struct aw_proto_peer peer;
	struct aw_proto_msg msg;
	int rc;

	CTR_INC(lc, AW_DP_UDP_IN);
	flow.ip = pkt->src_ip;
	flow.port = pkt->src_port;
	memcpy(flow.mac, pkt->src_mac, 6);
	flow.port_idx = (uint16_t)pi;
	flow.lcore_idx = (uint16_t)lc->idx;
	if (unlikely(aw_proto_hdr_parse(d, pkt->payload_len, dp->p.reasm.max_msg, &h, &e) < 0)) {
		CTR_INC(lc, AW_DP_PROTO_BAD);
		if ((unsigned)e.fault < AW_PROTO_FAULT_MAX_)
			ARR_INC(lc, fault, e.fault);
		/* answer only what is recognisably ours and asks for an answer */
		if (e.code && e.fault != AW_PROTO_FAULT_MAGIC && pkt->payload_len >= 24 &&
		    d[0] == (AW_PROTO_MAGIC & 0xff) && d[1] == AW_PROTO_MAGIC >> 8) {
			uint64_t rid, sid;

			memcpy(&rid, d + 8, 8);
			memcpy(&sid, d + 16, 8);
			flow.request_id = rte_le_to_cpu_64(rid);
			flow.session_id = rte_le_to_cpu_64(sid);
			lc_error(lc, &flow, e.code, 0, e.err.msg, 0, now);
		}
		rte_pktmbuf_free(m);
		return;
	}
	flow.request_id = h.request_id;
	flow.session_id = h.session_id;

	if (likely(h.type == AW_PROTO_PING && h.seg_count == 1)) {
		ping_in_place(lc, pi, m, pkt, &h, &flow, now);
		return;
	}
	flow_peer(&flow, &peer);
	switch (h.type) {
	case AW_PROTO_GENERATE:
	case AW_PROTO_CLASSIFY:
	case AW_PROTO_EMBED:
	case AW_PROTO_PING:
		if (h.type != AW_PROTO_PING)
			CTR_INC(lc, h.type == AW_PROTO_GENERATE	  ? AW_DP_REQ_GENERATE
				    : h.type == AW_PROTO_CLASSIFY ? AW_DP_REQ_CLASSIFY
								  : AW_DP_REQ_EMBED);
		rc = aw_proto_reasm_add(lc->reasm, &peer, &h, d + AW_PROTO_HDR_LEN, now, &msg, &e);
		if (rc == 1) {
			request_complete(lc, &flow, h.type, msg.data, msg.len, now);
			aw_proto_reasm_release(lc->reasm, &msg);
		} else if (rc == 0) {
			CTR_INC(lc, AW_DP_SEGMENTS_HELD);
		} else if (rc == -EALREADY) {
			CTR_INC(lc, AW_DP_DUPLICATES);
		} else {
			CTR_INC(lc, AW_DP_PROTO_BAD);
			if ((unsigned)e.fault < AW_PROTO_FAULT_MAX_)
				ARR_INC(lc, fault, e.fault);
			if (e.code) {
				if (e.code == AW_PROTO_ERR_OVERLOADED)
					CTR_INC(lc, AW_DP_OVERLOADED);
				lc_error(lc, &flow, e.code,
					 e.code == AW_PROTO_ERR_OVERLOADED ? 1000 : 0, e.err.msg, 0,
					 now);
			}
		}
		break;
	case AW_PROTO_CANCEL: {
		uint32_t first, next;

		CTR_INC(lc, AW_DP_REQ_CANCEL);
		rc = aw_proto_rtx_state(lc->rtx, &peer, h.request_id, &first, &next);
		if (rc < 0) {
			lc_control_error(lc, &flow, AW_PROTO_ERR_UNKNOWN_REQUEST,
					 "request not held", now);
		} else if (rc == AW_PROTO_RTX_FINISHED) {
			if (next > first)
				resend(lc, &flow, next - 1, now); /* its terminal again */
		} else if (dp->dispatch) {
			aw_dispatch_cancel(dp->dispatch, &flow);
		}
		break;
	}
	case AW_PROTO_RESUME:
		CTR_INC(lc, AW_DP_REQ_RESUME);
		resend(lc, &flow, h.seq, now);
		break;
	case AW_PROTO_ACK:
		CTR_INC(lc, AW_DP_REQ_ACK);
		aw_proto_rtx_drop(lc->rtx, &peer, h.request_id);
		break;
	case AW_PROTO_STATS:
		CTR_INC(lc, AW_DP_REQ_STATS);
		stats_text(lc, &flow, now);
		break;
	default: /* a reply type sent to us */
		CTR_INC(lc, AW_DP_PROTO_BAD);
		ARR_INC(lc, fault, AW_PROTO_FAULT_TYPE);
		break;
	}
	rte_pktmbuf_free(m);
}

static inline uint32_t rx_hints(const struct rte_mbuf *m)
{
	uint64_t f = m->ol_flags;
	uint32_t r = 0;

	if ((f & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_GOOD)
		r |= AW_NET_RX_IP_CSUM_GOOD;
	else if ((f & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD)
		r |= AW_NET_RX_IP_CSUM_BAD;
	if ((f & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_GOOD)
		r |= AW_NET_RX_L4_CSUM_GOOD;
	else if ((f & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD)
		r |= AW_NET_RX_L4_CSUM_BAD;
	return r;
}

static void frame_input(struct aw_dp_lcore *lc, unsigned pi, struct rte_mbuf *m, uint64_t now)
{
	struct aw_net_pkt pkt;
	enum aw_net_kind k;

	CTR_ADD(lc, AW_DP_RX_BYTES, m->pkt_len);
	if (unlikely(m->nb_segs != 1)) {
		CTR_INC(lc, AW_DP_RX_MULTISEG);
		rte_pktmbuf_free(m);
		return;
	}
	k = aw_net_input(&lc->nif[pi], &lc->arp[pi], now, rte_pktmbuf_mtod(m, uint8_t *),
			 m->data_len, rx_hints(m), &pkt);
	switch (k) {
	case AW_NET_KIND_UDP:
		udp_input(lc, pi, m, &pkt, now);
		return;
	case AW_NET_KIND_ARP_REPLY:
	case AW_NET_KIND_ICMP_REPLY:
		CTR_INC(lc, k == AW_NET_KIND_ARP_REPLY ? AW_DP_ARP_REPLIES : AW_DP_ICMP_REPLIES);
		m->data_len = pkt.reply_len;
		m->pkt_len = pkt.reply_len;
		m->ol_flags = 0;
		tx_queue(lc, pi, m);
		return;
	case AW_NET_KIND_ARP_LEARNT:
		CTR_INC(lc, AW_DP_ARP_LEARNT);
		break;
	case AW_NET_KIND_DROP:
		ARR_INC(lc, drop, pkt.drop);
		break;
	}
	rte_pktmbuf_free(m);
}

/* Replies from the workers: packetize, store, transmit. */
static unsigned drain_responses(struct aw_dp_lcore *lc, uint64_t now)
{
	struct rte_mbuf *ms[AW_DP_MAX_BURST];
	unsigned n = rte_ring_sc_dequeue_burst(lc->resp, (void **)ms, lc->dp->p.burst, NULL);

	for (unsigned i = 0; i < n; i++) {
		const struct txmeta *t = rte_mbuf_to_priv(ms[i]);

		packetize(lc, ms[i], &t->flow, t->seq, t->terminal, 1, now);
	}
	CTR_ADD(lc, AW_DP_RESP_PKTS, n);
	return n;
}

static int lcore_main(void *arg)
{
	struct aw_dp_lcore *lc = arg;
	struct aw_dp *dp = lc->dp;
	struct rte_mbuf *pkts[AW_DP_MAX_BURST];
	unsigned idle = 0;
	int state;

	while ((state = dp_state(dp)) != DP_QUIT) {
		uint64_t now = aw_dp_now_us();
		unsigned work = 0;

		__atomic_store_n(&lc->heartbeat, lc->heartbeat + 1, __ATOMIC_RELAXED);
		if (unlikely(state != DP_RUN))
			__atomic_store_n(&lc->rx_off, 1, __ATOMIC_RELEASE);

		for (unsigned pi = 0; state == DP_RUN && pi < dp->p.n_ports; pi++) {
			uint16_t n;

			if (unlikely(!__atomic_load_n(&dp->port_up[pi], __ATOMIC_RELAXED))) {
				CTR_INC(lc, AW_DP_LINK_DOWN);
				continue;
			}
			n = rte_eth_rx_burst(dp->p.port[pi].port_id, (uint16_t)lc->idx, pkts,
					     (uint16_t)dp->p.burst);
			if (n == 0)
				continue;
			CTR_ADD(lc, AW_DP_RX_PKTS, n);
			work += n;
			for (uint16_t i = 0; i < n; i++) {
				if (i + 1 < n)
					rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 1], void *));
				frame_input(lc, pi, pkts[i], now);
			}
		}
		work += drain_responses(lc, now);
		for (unsigned pi = 0; pi < dp->p.n_ports; pi++)
			tx_flush(lc, pi);

		if (unlikely(now >= lc->next_expire_us)) { /* housekeeping, every 10 ms */
			aw_proto_reasm_expire(lc->reasm, now);
			aw_proto_rtx_expire(lc->rtx, now);
			lc->next_expire_us = now + 10000;
		}
		if (work) {
			idle = 0;
			continue;
		}
		CTR_INC(lc, AW_DP_IDLE_LOOPS);
		/* nothing arrived: give the CPU away as configured (2 shared cores) */
		if (dp->p.idle == AW_DP_IDLE_YIELD) {
			sched_yield();
		} else if (dp->p.idle == AW_DP_IDLE_SLEEP) {
			if (++idle > 64)
				usleep(idle > 1000 ? 100 : 10);
		} else {
			rte_pause();
		}
	}
	/* workers are stopped before DP_QUIT: send what they left */
	while (drain_responses(lc, aw_dp_now_us()) > 0)
		for (unsigned pi = 0; pi < dp->p.n_ports; pi++)
			tx_flush(lc, pi);
	for (unsigned pi = 0; pi < dp->p.n_ports; pi++)
		tx_flush(lc, pi);
	return 0;
}

/* --- worker side --------------------------------------------------------------- */

size_t aw_dp_max_payload(const struct aw_dp *dp, const struct aw_dp_flow *flow)
{
	return dp->max_payload[flow->port_idx];
}

int aw_dp_reply(struct aw_dp *dp, const struct aw_dp_flow *flow, uint8_t type, uint32_t seq,
		const void *payload, size_t len, int terminal)
{
	return aw_dp_reply_flags(dp, flow, type, 0, seq, payload, len, terminal);
}

int aw_dp_reply_flags(struct aw_dp *dp, const struct aw_dp_flow *flow, uint8_t type, uint16_t flags,
		      uint32_t seq, const void *payload, size_t len, int terminal)
{
	struct aw_dp_lcore *lc = dp->lc[flow->lcore_idx];
	struct rte_mbuf *m;
	struct txmeta *t;

	if (len > dp->max_payload[flow->port_idx])
		return -EMSGSIZE;
	/* the pool may be briefly empty under load: wait for the TX side */
	while (!(m = reply_mbuf(lc->pool, dp, flow, type, flags, seq, payload, len))) {
		if (dp_state(dp) == DP_QUIT)
			return -ESHUTDOWN;
		rte_pause();
	}
	t = rte_mbuf_to_priv(m);
	t->flow = *flow;
	t->seq = seq;
	t->terminal = (uint8_t)terminal;
	while (rte_ring_mp_enqueue(lc->resp, m) != 0) {
		if (dp_state(dp) == DP_QUIT) {
			rte_pktmbuf_free(m);
			return -ESHUTDOWN;
		}
		rte_pause();
	}
	return 0;
}

/* --- set-up --------------------------------------------------------------------- */

static int port_init(struct aw_dp *dp, unsigned pi)
{
	const struct aw_dp_port_params *pp = &dp->p.port[pi];
	uint16_t port = pp->port_id, nq = (uint16_t)dp->p.n_lcores;
	uint16_t nrx = pp->rx_desc, ntx = pp->tx_desc;
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	struct rte_ether_addr mac;
	struct rte_eth_link link;
	uint64_t ipsum = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM | RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	uint16_t mtu;
	int rc;

	memset(&conf, 0, sizeof(conf));
	if (!rte_eth_dev_is_valid_port(port)) {
		aw_log(AW_LOG_ERR, "port", "port %u: no such DPDK port (check the device/vdev)",
		       port);
		return -ENODEV;
	}
	rc = rte_eth_dev_info_get(port, &info);
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "port", "rte_eth_dev_info_get: err=%d, port=%u", rc, port);
		return rc;
	}
	if (nq > info.max_rx_queues || nq > info.max_tx_queues) {
		aw_log(AW_LOG_ERR, "port",
		       "port %u (%s): %u dataplane lcores need %u RX/TX queues, the device has "
		       "%u/%u",
		       port, info.driver_name, nq, nq, info.max_rx_queues, info.max_tx_queues);
		return -EINVAL;
	}
	if (nq > 1) {
		uint64_t hf = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP) &
			      info.flow_type_rss_offloads;

		if (hf & RTE_ETH_RSS_NONFRAG_IPV4_UDP) {
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = hf;
		} else {
			aw_log(AW_LOG_WARNING, "port",
			       "port %u (%s): no RSS on the UDP 5-tuple; flows are spread the "
			       "device's way",
			       port, info.driver_name);
		}
	}
	conf.rxmode.offloads = info.rx_offload_capa &
			       (RTE_ETH_RX_OFFLOAD_IPV4_CKSUM | RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
	if ((info.tx_offload_capa & ipsum) == ipsum) {
		conf.txmode.offloads = ipsum;
		dp->tx_flags[pi] = AW_NET_TX_IP_CSUM_OFFLOAD | AW_NET_TX_UDP_CSUM_OFFLOAD;
	}
	if (pp->mtu) {
		if (info.max_mtu && pp->mtu > info.max_mtu) {
			aw_log(AW_LOG_ERR, "port", "port %u: mtu %u above the device's %u", port,
			       pp->mtu, info.max_mtu);
			return -EINVAL;
		}
		conf.rxmode.mtu = pp->mtu;
	}
	rc = rte_eth_dev_configure(port, nq, nq, &conf);
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "port", "rte_eth_dev_configure: err=%d, port=%u", rc, port);
		return rc;
	}
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nrx, &ntx);
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "port", "rte_eth_dev_adjust_nb_rx_tx_desc: err=%d, port=%u", rc,
		       port);
		return rc;
	}
	for (uint16_t q = 0; q < nq; q++) {
		struct aw_dp_lcore *lc = dp->lc[q];
		int sock = (int)rte_lcore_to_socket_id(lc->lcore_id);
		struct rte_eth_rxconf rxc = info.default_rxconf;
		struct rte_eth_txconf txc = info.default_txconf;

		rxc.offloads = conf.rxmode.offloads;
		txc.offloads = conf.txmode.offloads;
		rc = rte_eth_rx_queue_setup(port, q, nrx, (unsigned)sock, &rxc, lc->pool);
		if (rc < 0) {
			aw_log(AW_LOG_ERR, "port",
			       "rte_eth_rx_queue_setup: err=%d, port=%u, queue=%u", rc, port, q);
			return rc;
		}
		rc = rte_eth_tx_queue_setup(port, q, ntx, (unsigned)sock, &txc);
		if (rc < 0) {
			aw_log(AW_LOG_ERR, "port",
			       "rte_eth_tx_queue_setup: err=%d, port=%u, queue=%u", rc, port, q);
			return rc;
		}
	}
	rte_eth_macaddr_get(port, &mac);
	if (rte_is_zero_ether_addr(&mac)) {
		/* some vdevs (net_ring) have none: pick a locally administered one */
		rte_eth_random_addr(mac.addr_bytes);
		rc = rte_eth_dev_default_mac_addr_set(port, &mac);
		if (rc < 0)
			aw_log(AW_LOG_WARNING, "port",
			       "port %u: no MAC and rte_eth_dev_default_mac_addr_set: err=%d; "
			       "using "
			       "a random one in software",
			       port, rc);
	}
	memcpy(dp->mac[pi], mac.addr_bytes, 6);
	rc = rte_eth_dev_start(port);
	if (rc < 0) {
		aw_log(AW_LOG_ERR, "port", "rte_eth_dev_start: err=%d, port=%u", rc, port);
		return rc;
	}
	dp->port_started[pi] = 1;
	if (rte_eth_dev_get_mtu(port, &mtu) < 0 || mtu == 0)
		mtu = 1500;
	{
		/* reply datagrams: IP MTU minus IPv4+UDP+proto headers, and the mbuf room */
		size_t room = rte_pktmbuf_data_room_size(dp->lc[0]->pool) - RTE_PKTMBUF_HEADROOM;
		size_t by_mtu = (size_t)mtu - AW_NET_IP_LEN - AW_NET_UDP_LEN - AW_PROTO_HDR_LEN;
		size_t by_room = room - AW_DP_DGRAM_OFF;

		dp->max_payload[pi] = by_mtu < by_room ? by_mtu : by_room;
	}
	rc = rte_eth_link_get_nowait(port, &link);
	__atomic_store_n(&dp->port_up[pi], rc == 0 && link.link_status, __ATOMIC_RELEASE);
	aw_log(AW_LOG_NOTICE, "port",
	       "port %u (%s): %02x:%02x:%02x:%02x:%02x:%02x, %u queues x %u/%u descriptors, mtu "
	       "%u, rss %s, rx csum %s, tx csum %s, link %s",
	       port, info.driver_name, mac.addr_bytes[0], mac.addr_bytes[1], mac.addr_bytes[2],
	       mac.addr_bytes[3], mac.addr_bytes[4], mac.addr_bytes[5], nq, nrx, ntx, mtu,
	       conf.rxmode.mq_mode == RTE_ETH_MQ_RX_RSS ? "udp" : "off",
	       conf.rxmode.offloads ? "offload" : "software",
	       dp->tx_flags[pi] ? "offload" : "software",
	       __atomic_load_n(&dp->port_up[pi], __ATOMIC_RELAXED) ? "up" : "down");
	return 0;
}

void aw_dp_poll_links(struct aw_dp *dp)
{
	uint64_t now = aw_dp_now_us();

	for (unsigned pi = 0; pi < dp->p.n_ports; pi++) {
		struct rte_eth_link link;
		int up = rte_eth_link_get_nowait(dp->p.port[pi].port_id, &link) == 0 &&
			 link.link_status;
		int polled = __atomic_load_n(&dp->port_up[pi], __ATOMIC_RELAXED);

		if (!up) {
			dp->up_since[pi] = 0;
			if (polled) {
				__atomic_store_n(&dp->port_up[pi], 0, __ATOMIC_RELEASE);
				aw_log(AW_LOG_NOTICE, "port", "port %u: link down",
				       dp->p.port[pi].port_id);
			}
			continue;
		}
		/* a link that just came up is polled after a grace period: the memif
		 * PMD sets up its rings around the moment it reports the link */
		if (!dp->up_since[pi])
			dp->up_since[pi] = now;
		if (!polled && now - dp->up_since[pi] >= 100000) {
			__atomic_store_n(&dp->port_up[pi], 1, __ATOMIC_RELEASE);
			aw_log(AW_LOG_NOTICE, "port", "port %u: link up", dp->p.port[pi].port_id);
		}
	}
}

int aw_dp_new(const struct aw_dp_params *p, struct aw_dp **ret_dp)
{
	struct aw_dp *dp;
	int rc = -EINVAL;

	if (p->n_ports == 0 || p->n_ports > AW_DP_MAX_PORTS || p->n_lcores == 0 ||
	    p->n_lcores > AW_DP_MAX_LCORES || p->burst == 0 || p->burst > AW_DP_MAX_BURST) {
		aw_log(AW_LOG_ERR, "dataplane", "bad parameters: %u ports, %u lcores, burst %u",
		       p->n_ports, p->n_lcores, p->burst);
		return -EINVAL;
	}
	tsc_per_us = rte_get_tsc_hz() / 1000000;
	if (tsc_per_us == 0)
		tsc_per_us = 1;
	dp = rte_zmalloc("aw_dp", sizeof(*dp), RTE_CACHE_LINE_SIZE);
	if (!dp)
		return -ENOMEM;
	dp->p = *p;

	for (unsigned i = 0; i < p->n_lcores; i++) {
		unsigned lcore = p->lcore[i];
		int sock = (int)rte_lcore_to_socket_id(lcore);
		struct aw_dp_lcore *lc;
		char name[RTE_MEMPOOL_NAMESIZE];

		if (!rte_lcore_is_enabled(lcore) || lcore == rte_get_main_lcore()) {
			aw_log(AW_LOG_ERR, "dataplane",
			       "lcore %u: not an enabled worker lcore (check [eal] and the EAL "
			       "--lcores)",
			       lcore);
			goto err;
		}
		if (sock < 0 || sock >= RTE_MAX_NUMA_NODES)
			sock = 0;
		if (!dp->pool[sock]) {
			/* one pool per node; room for the MTU, private area for reply metadata */
			unsigned room = RTE_MBUF_DEFAULT_BUF_SIZE;
			unsigned need = 0;

			for (unsigned pi = 0; pi < p->n_ports; pi++)
				if (p->port[pi].mtu + AW_NET_ETH_LEN + RTE_PKTMBUF_HEADROOM + 4u >
				    need)
					need = p->port[pi].mtu + AW_NET_ETH_LEN +
					       RTE_PKTMBUF_HEADROOM + 4u;
			if (need > room)
				room = need;
			snprintf(name, sizeof(name), "aw_mbuf_%d", sock);
			dp->pool[sock] = rte_pktmbuf_pool_create(
				name, p->mbufs, p->mbuf_cache,
				(uint16_t)RTE_ALIGN(sizeof(struct txmeta), RTE_MBUF_PRIV_ALIGN),
				(uint16_t)room, sock);
			if (!dp->pool[sock]) {
				rc = -rte_errno;
				aw_log(AW_LOG_ERR, "dataplane",
				       "rte_pktmbuf_pool_create: err=%d, %u mbufs, socket=%d", rc,
				       p->mbufs, sock);
				goto err;
			}
		}
		lc = rte_zmalloc_socket("aw_dp_lcore", sizeof(*lc), RTE_CACHE_LINE_SIZE, sock);
		if (!lc) {
			rc = -ENOMEM;
			goto err;
		}
		dp->lc[i] = lc;
		lc->dp = dp;
		lc->idx = i;
		lc->lcore_id = lcore;
		lc->pool = dp->pool[sock];
		snprintf(name, sizeof(name), "aw_resp_%u", i);
		lc->resp = rte_ring_create(name, p->resp_ring_size, sock, RING_F_SC_DEQ);
		if (!lc->resp) {
			rc = -rte_errno;
			aw_log(AW_LOG_ERR, "dataplane", "rte_ring_create(%s, %u): err=%d", name,
			       p->resp_ring_size, rc);
			goto err;
		}
		lc->reasm = aw_proto_reasm_new(&p->reasm);
		lc->rtx = aw_proto_rtx_new(&p->rtx);
		if (!lc->reasm || !lc->rtx) {
			rc = -ENOMEM;
			goto err;
		}
		for (unsigned pi = 0; pi < p->n_ports; pi++)
			aw_net_arp_init(&lc->arp[pi], 60ull * 1000000); /* 60 s, in us */
	}
	for (unsigned pi = 0; pi < p->n_ports; pi++) {
		rc = port_init(dp, pi);
		if (rc < 0)
			goto err;
		for (unsigned i = 0; i < p->n_lcores; i++) {
			struct aw_net_if *nif = &dp->lc[i]->nif[pi];

			memcpy(nif->mac, dp->mac[pi], 6);
			nif->ip = p->port[pi].ip;
			nif->netmask = p->port[pi].netmask;
			nif->gateway = p->port[pi].gateway;
			nif->udp_port = p->port[pi].udp_port;
			nif->ttl = 64;
		}
	}
	*ret_dp = dp;
	return 0;
err:
	aw_dp_free(dp);
	return rc;
}

void aw_dp_set_dispatch(struct aw_dp *dp, struct aw_dispatch *d)
{
	dp->dispatch = d;
}

int aw_dp_start(struct aw_dp *dp)
{
	for (unsigned i = 0; i < dp->p.n_lcores; i++) {
		int rc = rte_eal_remote_launch(lcore_main, dp->lc[i], dp->lc[i]->lcore_id);

		if (rc < 0) {
			aw_log(AW_LOG_ERR, "dataplane", "rte_eal_remote_launch: err=%d, lcore=%u",
			       rc, dp->lc[i]->lcore_id);
			aw_dp_stop(dp);
			return rc;
		}
		dp->launched = (int)i + 1;
	}
	return 0;
}

void aw_dp_stop_rx(struct aw_dp *dp)
{
	__atomic_store_n(&dp->state, DP_STOP_RX, __ATOMIC_RELEASE);
	for (int i = 0; i < dp->launched; i++)
		while (!__atomic_load_n(&dp->lc[i]->rx_off, __ATOMIC_ACQUIRE))
			rte_pause();
}

void aw_dp_stop(struct aw_dp *dp)
{
	__atomic_store_n(&dp->state, DP_QUIT, __ATOMIC_RELEASE);
	for (int i = 0; i < dp->launched; i++)
		rte_eal_wait_lcore(dp->lc[i]->lcore_id);
	dp->launched = 0;
}

unsigned aw_dp_free(struct aw_dp *dp)
{
	unsigned in_use;

	if (!dp)
		return 0;
	if (dp->launched)
		aw_dp_stop(dp);
	for (unsigned pi = 0; pi < dp->p.n_ports; pi++) {
		if (!dp->port_started[pi])
			continue;
		rte_eth_dev_stop(dp->p.port[pi].port_id);
		rte_eth_dev_close(dp->p.port[pi].port_id);
	}
	for (unsigned i = 0; i < AW_DP_MAX_LCORES; i++) {
		struct aw_dp_lcore *lc = dp->lc[i];

		if (!lc)
			continue;
		if (lc->resp) {
			void *m;

			while (rte_ring_dequeue(lc->resp, &m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(lc->resp);
		}
		aw_proto_reasm_free(lc->reasm);
		aw_proto_rtx_free(lc->rtx);
		rte_free(lc);
	}
	in_use = aw_dp_mbufs_in_use(dp);
	for (unsigned s = 0; s < RTE_MAX_NUMA_NODES; s++)
		rte_mempool_free(dp->pool[s]);
	rte_free(dp);
	return in_use;
}

/* --- counters ------------------------------------------------------------------- */

void aw_dp_stats_read(const struct aw_dp *dp, int idx, struct aw_dp_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	for (unsigned i = 0; i < dp->p.n_lcores; i++) {
		const struct aw_dp_stats *s = &dp->lc[i]->st;

		if (idx >= 0 && (unsigned)idx != i)
			continue;
		for (int c = 0; c < AW_DP_CTR__COUNT; c++)
			ret->c[c] += __atomic_load_n(&s->c[c], __ATOMIC_RELAXED);
		for (int c = 0; c < AW_NET_DROP__COUNT; c++)
			ret->drop[c] += __atomic_load_n(&s->drop[c], __ATOMIC_RELAXED);
		for (int c = 0; c < AW_PROTO_FAULT_MAX_; c++)
			ret->fault[c] += __atomic_load_n(&s->fault[c], __ATOMIC_RELAXED);
	}
}

const char *aw_dp_ctr_name(enum aw_dp_ctr c)
{
	static const char *const names[AW_DP_CTR__COUNT] = {
		[AW_DP_RX_PKTS] = "rx_packets",	       [AW_DP_RX_BYTES] = "rx_bytes",
		[AW_DP_TX_PKTS] = "tx_packets",	       [AW_DP_TX_BYTES] = "tx_bytes",
		[AW_DP_TX_DROPPED] = "tx_dropped",     [AW_DP_RX_MULTISEG] = "rx_multiseg",
		[AW_DP_NO_MBUF] = "no_mbuf",	       [AW_DP_ARP_REPLIES] = "arp_replies",
		[AW_DP_ARP_LEARNT] = "arp_learnt",     [AW_DP_ARP_REQUESTS] = "arp_requests",
		[AW_DP_ICMP_REPLIES] = "icmp_replies", [AW_DP_UDP_IN] = "udp_in",
		[AW_DP_PROTO_BAD] = "proto_bad",       [AW_DP_PING] = "ping",
		[AW_DP_REQ_GENERATE] = "req_generate", [AW_DP_REQ_CLASSIFY] = "req_classify",
		[AW_DP_REQ_EMBED] = "req_embed",       [AW_DP_REQ_CANCEL] = "req_cancel",
		[AW_DP_REQ_STATS] = "req_stats",       [AW_DP_REQ_RESUME] = "req_resume",
		[AW_DP_REQ_ACK] = "req_ack",	       [AW_DP_SEGMENTS_HELD] = "segments_held",
		[AW_DP_DUPLICATES] = "duplicates",     [AW_DP_DISPATCHED] = "dispatched",
		[AW_DP_OVERLOADED] = "overloaded",     [AW_DP_REFUSED] = "refused",
		[AW_DP_RESP_PKTS] = "resp_packets",    [AW_DP_RESENT] = "resent",
		[AW_DP_RTX_UNSTORED] = "rtx_unstored", [AW_DP_LINK_DOWN] = "link_down_polls",
		[AW_DP_IDLE_LOOPS] = "idle_loops",
	};

	return (unsigned)c < AW_DP_CTR__COUNT && names[c] ? names[c] : "unknown";
}

unsigned aw_dp_mbufs_in_use(const struct aw_dp *dp)
{
	unsigned n = 0;

	for (unsigned s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (dp->pool[s])
			n += rte_mempool_in_use_count(dp->pool[s]);
	return n;
}

const struct aw_dp_params *aw_dp_params(const struct aw_dp *dp)
{
	return &dp->p;
}

void aw_dp_port_mac(const struct aw_dp *dp, unsigned port_idx, uint8_t ret_mac[6])
{
	memcpy(ret_mac, dp->mac[port_idx], 6);
}

uint64_t aw_dp_heartbeat(const struct aw_dp *dp, unsigned idx)
{
	if (idx >= dp->p.n_lcores || !dp->lc[idx])
		return 0;
	return __atomic_load_n(&dp->lc[idx]->heartbeat, __ATOMIC_RELAXED);
}
