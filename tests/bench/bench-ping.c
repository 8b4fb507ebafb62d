/* bench-ping.c — PING round trips, one in flight, and PING rate with many in
 * flight, over a DPDK port (e.g. net_memif to the agentwire daemon or to
 * dpdk-testpmd in 5tswap mode) or over kernel UDP on loopback (the baseline
 * a user would otherwise pick: two threads on two CPUs, busy polling with
 * MSG_DONTWAIT).
 *
 *   bench-ping kernel [-n N] [-w WARMUP]
 *   bench-ping dpdk EAL-ARGS -- --src IP --dst IP [--port P] [-n N] [-w WARMUP]
 *              [--size BYTES] [--rate-seconds S] [--label NAME] [--hold S]
 *
 * The DPDK side builds each frame with the dataplane's own packet layer
 * (net.h) and codec (proto.h); it matches replies by request id and accepts
 * a PONG (agentwire) or the request itself with addresses swapped (testpmd
 * 5tswap). Prints one line per measure:
 *   bench-ping: LABEL rtt n=... p50_us=... p90_us=... p99_us=... max_us=...
 *   bench-ping: LABEL rate in_flight=... pings_per_s=...
 * Exit status: 0, 1 on failure, 2 on usage errors.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "net.h"
#include "proto.h"

struct opts {
	long n, warmup, size, rate_seconds, hold;
	uint32_t src, dst;
	uint16_t port;
	const char *label;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *label, uint64_t *ns, long n)
{
	qsort(ns, (size_t)n, sizeof(*ns), cmp_u64);
	printf("bench-ping: %s rtt n=%ld p50_us=%.2f p90_us=%.2f p99_us=%.2f max_us=%.1f\n", label,
	       n, ns[n / 2] / 1e3, ns[n * 9 / 10] / 1e3, ns[n * 99 / 100] / 1e3, ns[n - 1] / 1e3);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

/* --- kernel UDP over loopback ---------------------------------------------------- */

static volatile int echo_stop;

static void *echo_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[2048];

	pin(1);
	while (!echo_stop) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		ssize_t n =
			recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&a, &al);

		if (n > 0)
			sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&a, al);
	}
	return NULL;
}

static int kernel_bench(const struct opts *o)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
	uint64_t *ns = malloc(sizeof(uint64_t) * (size_t)o->n);
	char buf[2048];
	pthread_t th;

	if (srv < 0 || cli < 0 || !ns || bind(srv, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(srv, (struct sockaddr *)&sa, &sl) < 0 ||
	    connect(cli, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("bench-ping: kernel sockets");
		return 1;
	}
	pthread_create(&th, NULL, echo_main, &srv);
	pin(0);
	memset(buf, 'p', sizeof(buf));
	for (long i = -o->warmup; i < o->n; i++) {
		uint64_t t0 = now_ns();

		send(cli, buf, (size_t)o->size, 0);
		while (recv(cli, buf, sizeof(buf), MSG_DONTWAIT) < 0)
			;
		if (i >= 0)
			ns[i] = now_ns() - t0;
	}
	echo_stop = 1;
	pthread_join(th, NULL);
	report(o->label ? o->label : "kernel-udp-loopback-busypoll", ns, o->n);
	free(ns);
	return 0;
}

/* --- DPDK port ------------------------------------------------------------------ */

static struct rte_mempool *pool;
static struct aw_net_if nif;
static uint8_t peer_mac[6];

static struct rte_mbuf *ping_frame(const struct opts *o, uint64_t rid)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	struct aw_proto_hdr h = {0};
	uint8_t *b;
	size_t dl = AW_PROTO_HDR_LEN + (size_t)o->size;

	if (!m)
		return NULL;
	b = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(AW_NET_HDRS_LEN + dl));
	h.type = AW_PROTO_PING;
	h.request_id = rid;
	memset(b + AW_NET_HDRS_LEN + AW_PROTO_HDR_LEN, 'p', (size_t)o->size);
	aw_proto_build(b + AW_NET_HDRS_LEN, dl, &h, b + AW_NET_HDRS_LEN + AW_PROTO_HDR_LEN,
		       (size_t)o->size);
	aw_net_udp_build(&nif, peer_mac, o->dst, o->port, (uint16_t)rid, b, dl, 0);
	return m;
}

/* The request id of a reply to us, or 0. Frees 'm'. */
static uint64_t reply_id(struct rte_mbuf *m)
{
	struct aw_net_pkt pkt;
	struct aw_proto_hdr h;
	struct aw_proto_err e;
	uint64_t id = 0;

	if (aw_net_input(&nif, NULL, 0, rte_pktmbuf_mtod(m, uint8_t *), m->data_len, 0, &pkt) ==
		    AW_NET_KIND_UDP &&
	    aw_proto_hdr_parse(rte_pktmbuf_mtod_offset(m, uint8_t *, pkt.payload_off),
			       pkt.payload_len, 0, &h, &e) == 0 &&
	    (h.type == AW_PROTO_PONG || h.type == AW_PROTO_PING))
		id = h.request_id;
	rte_pktmbuf_free(m);
	return id;
}

/* ARP for the peer (1 s); testpmd does not answer: broadcast, which 5tswap
 * turns into our address on the way back. */
static void resolve(const struct opts *o)
{
	struct rte_mbuf *m, *rx[32];
	uint64_t end = rte_get_tsc_cycles() + rte_get_tsc_hz();

	memset(peer_mac, 0xff, 6);
	m = rte_pktmbuf_alloc(pool);
	if (!m)
		return;
	aw_net_arp_request(&nif, o->dst, (uint8_t *)rte_pktmbuf_append(m, AW_NET_ETH_MIN));
	if (rte_eth_tx_burst(0, 0, &m, 1) != 1)
		rte_pktmbuf_free(m);
	while (rte_get_tsc_cycles() < end) {
		uint16_t n = rte_eth_rx_burst(0, 0, rx, 32);

		for (uint16_t i = 0; i < n; i++) {
			struct aw_net_pkt pkt;
			uint8_t *b = rte_pktmbuf_mtod(rx[i], uint8_t *);

			if (aw_net_input(&nif, NULL, 0, b, rx[i]->data_len, 0, &pkt) ==
				    AW_NET_KIND_ARP_LEARNT &&
			    memcmp(b + 28, &o->dst, 4) == 0)
				memcpy(peer_mac, b + 22, 6);
			rte_pktmbuf_free(rx[i]);
		}
		if (peer_mac[0] != 0xff)
			return;
	}
}

static int dpdk_bench(const struct opts *o)
{
	const uint64_t hz = rte_get_tsc_hz(), timeout = hz / 10;
	struct rte_eth_conf conf = {0};
	struct rte_eth_link link;
	struct rte_ether_addr mac;
	uint64_t *ns = malloc(sizeof(uint64_t) * (size_t)o->n), rid = 1, lost = 0;
	struct rte_mbuf *rx[64];

	if (rte_eth_dev_count_avail() < 1) {
		fprintf(stderr, "bench-ping: no DPDK port (give a --vdev)\n");
		return 1;
	}
	pool = rte_pktmbuf_pool_create("bp", 4095, 128, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       (int)rte_socket_id());
	if (!pool || !ns || rte_eth_dev_configure(0, 1, 1, &conf) < 0 ||
	    rte_eth_rx_queue_setup(0, 0, 512, (unsigned)rte_socket_id(), NULL, pool) < 0 ||
	    rte_eth_tx_queue_setup(0, 0, 512, (unsigned)rte_socket_id(), NULL) < 0 ||
	    rte_eth_dev_start(0) < 0) {
		fprintf(stderr, "bench-ping: port set-up failed\n");
		return 1;
	}
	rte_eth_macaddr_get(0, &mac);
	if (rte_is_zero_ether_addr(&mac))
		rte_eth_random_addr(mac.addr_bytes);
	memcpy(nif.mac, mac.addr_bytes, 6);
	nif.ip = o->src;
	nif.netmask = 0xffffffffu;
	nif.udp_port = 40000;
	nif.ttl = 64;
	for (int i = 0; i < 100; i++) { /* a memif link comes up when both sides are there */
		if (rte_eth_link_get_nowait(0, &link) == 0 && link.link_status)
			break;
		usleep(100000);
	}
	if (!link.link_status) {
		fprintf(stderr, "bench-ping: link down after 10 s\n");
		return 1;
	}
	resolve(o);

	/* one in flight */
	for (long i = -o->warmup; i < o->n;) {
		struct rte_mbuf *m = ping_frame(o, ++rid);
		uint64_t t0 = rte_get_tsc_cycles(), got = 0;

		if (!m || rte_eth_tx_burst(0, 0, &m, 1) != 1) {
			rte_pktmbuf_free(m);
			continue;
		}
		while (!got && rte_get_tsc_cycles() - t0 < timeout) {
			uint16_t n = rte_eth_rx_burst(0, 0, rx, 64);

			for (uint16_t k = 0; k < n; k++)
				if (reply_id(rx[k]) == rid)
					got = rte_get_tsc_cycles();
		}
		if (!got) {
			lost++;
			continue;
		}
		if (i >= 0)
			ns[i] = (got - t0) * 1000000000u / hz;
		i++;
	}
	report(o->label ? o->label : "dpdk", ns, o->n);
	if (lost)
		printf("bench-ping: %s lost=%lu (timed out after 100 ms, resent)\n",
		       o->label ? o->label : "dpdk", (unsigned long)lost);

	/* many in flight: keep a window of 'win' PINGs outstanding for S seconds.
	 * The client side is kept cheap so that the server is what is measured:
	 * frames are copies of one template (UDP checksum 0, only the request id
	 * changes), replies are counted, not parsed. */
	if (o->rate_seconds > 0) {
		const uint64_t win = 128;
		struct rte_mbuf *tm = ping_frame(o, 0);
		uint8_t tpl[2048];
		uint16_t tlen;
		uint64_t t0, end, sent = 0, done = 0, last_rx;

		if (!tm)
			return 1;
		tlen = tm->data_len;
		memcpy(tpl, rte_pktmbuf_mtod(tm, void *), tlen);
		rte_pktmbuf_free(tm);
		tpl[40] = tpl[41] = 0; /* no UDP checksum */
		t0 = last_rx = rte_get_tsc_cycles();
		end = t0 + hz * (uint64_t)o->rate_seconds;
		while (rte_get_tsc_cycles() < end) {
			struct rte_mbuf *b[32];
			unsigned k = 0;

			while (k < 32 && sent + k - done < win) {
				b[k] = rte_pktmbuf_alloc(pool);
				if (!b[k])
					break;
				uint8_t *f = (uint8_t *)rte_pktmbuf_append(b[k], tlen);
				uint64_t id = rte_cpu_to_le_64(++rid);

				if (!f) {
					rte_pktmbuf_free(b[k]);
					break;
				}
				memcpy(f, tpl, tlen);
				memcpy(f + AW_NET_HDRS_LEN + 8, &id, 8); /* request_id, LE */
				k++;
			}
			if (k) {
				unsigned tx = rte_eth_tx_burst(0, 0, b, (uint16_t)k);

				if (tx < k)
					rte_pktmbuf_free_bulk(b + tx, k - tx);
				sent += tx;
			}
			uint16_t n = rte_eth_rx_burst(0, 0, rx, 64);

			if (n) {
				done += n;
				last_rx = rte_get_tsc_cycles();
				rte_pktmbuf_free_bulk(rx, n);
			} else if (rte_get_tsc_cycles() - last_rx > hz / 1000) {
				done = sent; /* replies lost: reopen the window */
				last_rx = rte_get_tsc_cycles();
			}
		}
		printf("bench-ping: %s rate in_flight=%lu pings_per_s=%.0f\n",
		       o->label ? o->label : "dpdk", (unsigned long)win,
		       (double)done * (double)hz / (double)(rte_get_tsc_cycles() - t0));
	}
	/* --hold: stay connected until the peer goes away (or S seconds), so a
	 * memif server is never polling while its client disconnects (the memif
	 * PMD of DPDK 22.11 can crash then) */
	fflush(stdout);
	for (long i = 0; i < o->hold * 100; i++) {
		if (rte_eth_link_get_nowait(0, &link) == 0 && !link.link_status)
			break;
		usleep(10000);
	}
	rte_eth_dev_stop(0);
	rte_eth_dev_close(0);
	free(ns);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bench-ping kernel [-n N] [-w WARMUP] [--size BYTES]\n"
		"       bench-ping dpdk EAL-ARGS -- --src IP --dst IP [--port P] [-n N]\n"
		"                  [-w WARMUP] [--size BYTES] [--rate-seconds S] [--label NAME]\n"
		"                  [--hold S]   stay connected until the peer leaves (<= S s)\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{"src", 1, NULL, 's'},	{"dst", 1, NULL, 'd'},	 {"port", 1, NULL, 'p'},
		{"size", 1, NULL, 'z'}, {"label", 1, NULL, 'l'}, {"rate-seconds", 1, NULL, 'r'},
		{"hold", 1, NULL, 'H'}, {"help", 0, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	optind = 1;
	while ((c = getopt_long(argc, argv, "n:w:h", lo, NULL)) != -1) {
		switch (c) {
		case 'n':
		case 'w':
		case 'z':
		case 'r':
		case 'H':
		case 'p': {
			long v = strtol(optarg, &end, 10);

			if (*end || v < 0 || v > 100000000 || (c == 'n' && v == 0) ||
			    (c == 'z' && v > 1400) || (c == 'p' && (v == 0 || v > 65535))) {
				fprintf(stderr, "bench-ping: bad value '%s' for -%c\n", optarg, c);
				return 2;
			}
			if (c == 'n')
				o->n = v;
			else if (c == 'w')
				o->warmup = v;
			else if (c == 'z')
				o->size = v;
			else if (c == 'r')
				o->rate_seconds = v;
			else if (c == 'H')
				o->hold = v;
			else
				o->port = (uint16_t)v;
			break;
		}
		case 's':
		case 'd':
			if (aw_net_parse_ip(optarg, c == 's' ? &o->src : &o->dst) < 0) {
				fprintf(stderr, "bench-ping: bad address '%s'\n", optarg);
				return 2;
			}
			break;
		case 'l':
			o->label = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.n = 100000, .warmup = 10000, .size = 64, .port = 7878};
	int rc;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "kernel") == 0) {
		rc = parse(argc - 1, argv + 1, &o);
		return rc ? rc : kernel_bench(&o);
	}
	if (strcmp(argv[1], "dpdk") != 0) {
		usage(stderr);
		return 2;
	}
	rc = rte_eal_init(argc - 1, argv + 1);
	if (rc < 0) {
		fprintf(stderr, "bench-ping: rte_eal_init failed\n");
		return 1;
	}
	rc = parse(argc - 1 - rc, argv + 1 + rc, &o);
	if (rc == 0 && (!o.src || !o.dst)) {
		fprintf(stderr, "bench-ping: --src and --dst are required\n");
		rc = 2;
	}
	if (rc == 0)
		rc = dpdk_bench(&o);
	rte_eal_cleanup();
	return rc;
}
