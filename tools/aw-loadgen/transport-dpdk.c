/* transport-dpdk.c — a libaw_client transport on a DPDK port (see
 * transport-dpdk.h): aw-loadgen's path for measuring a server without the
 * kernel's UDP stack on the client side (net_memif to the daemon, or a NIC).
 *
 * One port, one RX and one TX queue, polled from the calling thread. The
 * Ethernet/ARP/IPv4/UDP work is the dataplane's own packet layer
 * (dataplane/net.c, DPDK-free): frames are classified by aw_net_input(),
 * ARP and ICMP requests for our address are answered in place, and replies
 * are framed by aw_net_udp_build(). The server's MAC is resolved by ARP at
 * open time. Receiving spins on rte_eth_rx_burst() and yields the CPU while
 * the queue is empty (the machine's CPUs are shared).
 */
#include "transport-dpdk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "net.h"

#define NB_DESC	 1024
#define NB_MBUFS 8191
#define BURST	 32

struct dpdk_transport {
	struct aw_client_transport t;
	uint16_t port;
	struct rte_mempool *pool;
	struct aw_net_if nif;
	struct aw_net_arp arp;
	uint32_t dst_ip; /* network order */
	uint16_t dst_port;
	uint8_t dst_mac[6];
	uint16_t ip_id;
	uint64_t rx_dropped; /* frames not for us */
};

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Transmit one frame already in an mbuf (freed when not sent). */
static void tx_one(struct dpdk_transport *x, struct rte_mbuf *m)
{
	if (rte_eth_tx_burst(x->port, 0, &m, 1) != 1)
		rte_pktmbuf_free(m);
}

/* Poll the RX queue once: answer ARP/ICMP, learn ARP, hand UDP payloads from
 * the server to 'd' (up to n). Returns how many datagrams were delivered. */
static unsigned rx_poll(struct dpdk_transport *x, struct aw_client_dgram *d, unsigned n)
{
	struct rte_mbuf *pkts[BURST];
	unsigned got = 0;
	uint16_t k, i;

	k = rte_eth_rx_burst(x->port, 0, pkts, n < BURST ? (uint16_t)n : BURST);
	for (i = 0; i < k; i++) {
		struct rte_mbuf *m = pkts[i];
		struct aw_net_pkt pkt;
		enum aw_net_kind kind;
		uint8_t *buf;

		if (m->nb_segs != 1) { /* chained frames are not expected at our sizes */
			x->rx_dropped++;
			rte_pktmbuf_free(m);
			continue;
		}
		buf = rte_pktmbuf_mtod(m, uint8_t *);
		kind = aw_net_input(&x->nif, &x->arp, mono_us(), buf, rte_pktmbuf_data_len(m), 0,
				    &pkt);
		switch (kind) {
		case AW_NET_KIND_ARP_REPLY:
		case AW_NET_KIND_ICMP_REPLY:
			rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_data_len(m) - pkt.reply_len));
			tx_one(x, m);
			continue;
		case AW_NET_KIND_UDP:
			if (pkt.src_ip == x->dst_ip && pkt.src_port == x->dst_port &&
			    pkt.payload_len <= d[got].len) {
				memcpy(d[got].buf, buf + pkt.payload_off, pkt.payload_len);
				d[got].len = pkt.payload_len;
				got++;
			} else {
				x->rx_dropped++;
			}
			break;
		default:
			break;
		}
		rte_pktmbuf_free(m);
	}
	return got;
}

static int dpdk_send(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n)
{
	struct dpdk_transport *x = (struct dpdk_transport *)t;
	struct rte_mbuf *pkts[BURST];
	unsigned i, done = 0;

	while (done < n) {
		unsigned k = 0, sent;

		for (i = done; i < n && k < BURST; i++) {
			struct rte_mbuf *m = rte_pktmbuf_alloc(x->pool);
			uint8_t *buf;

			if (!m)
				break;
			buf = (uint8_t *)rte_pktmbuf_append(m,
							    (uint16_t)(AW_NET_HDRS_LEN + d[i].len));
			if (!buf) {
				/* larger than one mbuf: lost, retransmission cannot help */
				rte_pktmbuf_free(m);
				continue;
			}
			memcpy(buf + AW_NET_HDRS_LEN, d[i].buf, d[i].len);
			aw_net_udp_build(&x->nif, x->dst_mac, x->dst_ip, x->dst_port, x->ip_id++,
					 buf, d[i].len, 0);
			pkts[k++] = m;
		}
		sent = rte_eth_tx_burst(x->port, 0, pkts, (uint16_t)k);
		for (; sent < k; sent++) /* a full TX ring: lost, like a full socket buffer */
			rte_pktmbuf_free(pkts[sent]);
		if (i == done)
			break; /* out of mbufs */
		done = i;
	}
	return (int)n;
}

static int dpdk_recv(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n,
		     int timeout_ms)
{
	struct dpdk_transport *x = (struct dpdk_transport *)t;
	uint64_t end = timeout_ms > 0 ? mono_us() + (uint64_t)timeout_ms * 1000u : 0;
	unsigned spins = 0;

	for (;;) {
		unsigned got = rx_poll(x, d, n);

		if (got || timeout_ms == 0)
			return (int)got;
		if (timeout_ms > 0 && mono_us() >= end)
			return 0;
		if (++spins % 64 == 0)
			sched_yield(); /* shared CPUs: let the other poller run */
	}
}

static void dpdk_close(struct aw_client_transport *t)
{
	struct dpdk_transport *x = (struct dpdk_transport *)t;

	rte_eth_dev_stop(x->port);
	rte_eth_dev_close(x->port);
	free(x);
	rte_eal_cleanup();
}

static const struct aw_client_transport_ops dpdk_ops = {
	.send = dpdk_send,
	.recv = dpdk_recv,
	.close = dpdk_close,
};

int aw_dpdk_transport_open(const char *eal_args, const char *local_cidr, const char *server_ip,
			   uint16_t server_port, struct aw_client_transport **ret)
{
	char *args = strdup(eal_args ? eal_args : ""), *tok, *save = NULL;
	char *argv[64], ipbuf[32], *slash;
	int argc = 0, rc;
	unsigned prefix;
	struct dpdk_transport *x = NULL;
	struct rte_eth_conf conf;
	struct rte_ether_addr mac;
	uint64_t deadline, next_arp = 0;

	if (!args)
		return -ENOMEM;
	argv[argc++] = (char *)"aw-loadgen";
	for (tok = strtok_r(args, " ", &save); tok && argc < 63; tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	x = calloc(1, sizeof(*x));
	if (!x) {
		free(args);
		return -ENOMEM;
	}
	/* addresses first: nothing to undo yet */
	snprintf(ipbuf, sizeof(ipbuf), "%s", local_cidr);
	slash = strchr(ipbuf, '/');
	prefix = slash ? (unsigned)atoi(slash + 1) : 24;
	if (slash)
		*slash = 0;
	if (aw_net_parse_ip(ipbuf, &x->nif.ip) < 0 || aw_net_parse_ip(server_ip, &x->dst_ip) < 0 ||
	    prefix == 0 || prefix > 32) {
		free(x);
		free(args);
		return -EINVAL;
	}
	x->nif.netmask = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
	x->nif.udp_port = (uint16_t)(40000 + (getpid() % 20000));
	x->nif.ttl = 64;
	x->dst_port = server_port;
	aw_net_arp_init(&x->arp, 0);

	rc = rte_eal_init(argc, argv);
	free(args);
	if (rc < 0) {
		free(x);
		return -rte_errno ? -rte_errno : -EINVAL;
	}
	rc = -ENODEV;
	if (rte_eth_dev_count_avail() < 1)
		goto err_eal;
	x->port = 0;
	x->pool = rte_pktmbuf_pool_create("awlg_pool", NB_MBUFS, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
					  (int)rte_socket_id());
	rc = -ENOMEM;
	if (!x->pool)
		goto err_eal;
	memset(&conf, 0, sizeof(conf));
	if ((rc = rte_eth_dev_configure(x->port, 1, 1, &conf)) < 0 ||
	    (rc = rte_eth_rx_queue_setup(x->port, 0, NB_DESC, (unsigned)rte_socket_id(), NULL,
					 x->pool)) < 0 ||
	    (rc = rte_eth_tx_queue_setup(x->port, 0, NB_DESC, (unsigned)rte_socket_id(), NULL)) <
		    0 ||
	    (rc = rte_eth_dev_start(x->port)) < 0)
		goto err_eal;
	rte_eth_macaddr_get(x->port, &mac);
	memcpy(x->nif.mac, mac.addr_bytes, 6);

	/* wait for the link (a memif client sees it when the server is up),
	 * then resolve the server's MAC */
	deadline = mono_us() + 15000000u;
	rc = -EHOSTUNREACH;
	while (mono_us() < deadline) {
		struct rte_eth_link link;
		struct aw_client_dgram none = {.buf = NULL, .len = 0};
		uint64_t now = mono_us();

		if (rte_eth_link_get_nowait(x->port, &link) == 0 && link.link_status &&
		    now >= next_arp) {
			struct rte_mbuf *m = rte_pktmbuf_alloc(x->pool);

			if (m) {
				uint8_t *buf = (uint8_t *)rte_pktmbuf_append(m, AW_NET_ARP_FRAME);

				aw_net_arp_request(&x->nif, x->dst_ip, buf);
				tx_one(x, m);
			}
			next_arp = now + 200000;
		}
		(void)rx_poll(x, &none, 1);
		if (aw_net_arp_lookup(&x->arp, x->dst_ip, now, x->dst_mac) == 0) {
			rc = 0;
			break;
		}
		sched_yield();
	}
	if (rc < 0)
		goto err_port;
	x->t.ops = &dpdk_ops;
	x->t.fd = -1;
	*ret = &x->t;
	return 0;
err_port:
	rte_eth_dev_stop(x->port);
	rte_eth_dev_close(x->port);
err_eal:
	free(x);
	rte_eal_cleanup();
	return rc < 0 ? rc : -rc;
}
