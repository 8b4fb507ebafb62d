/* test-dataplane.c — the dataplane lcore loop in one process over net_ring.
 *
 * A net_ring port whose RX ring the test fills and whose TX ring the test
 * drains: frames go through the real lcore loop (dataplane.c), dispatch and a
 * worker group running the echo test engine, and every reply is parsed back
 * with the same codecs a client uses. Checks ARP and ICMP answers, PING,
 * GENERATE streams, duplicates answered from the retransmit store, RESUME,
 * malformed frames counted by reason, OVERLOADED when the group's ring is
 * full, cancellation at shutdown, and that every mbuf returns to its pool.
 * Needs the EAL (root for /var/run/dpdk): exits 77 without it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "dataplane.h"
#include "dispatch.h"
#include "engine.h"
#include "net.h"
#include "proto.h"

#include <sched.h>

#include "../unit/tiny-llama.h" /* groups: a small model with a tokenizer */

static struct rte_ring *ring_in, *ring_out;
static struct rte_mempool *cli_pool;
static uint16_t port_id;
static struct aw_net_if cli, srv;

/* the daemon under test, rebuilt per test */
static struct aw_dp *dp;
static struct aw_dispatch *disp;
static struct aw_engine engine;

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	uint8_t x[4] = {(uint8_t)a, (uint8_t)b, (uint8_t)c, (uint8_t)d};
	uint32_t v;

	memcpy(&v, x, 4);
	return v;
}

static unsigned n_groups = 1;
/* groups: serve with this model file (the scheduler) instead of the echo
 * engine, with this many CPUs per group */
static const char *use_model;
static unsigned group_cpus = 1;

static void start(unsigned ring_size, uint32_t delay_us)
{
	struct aw_dp_params p = {0};
	struct aw_dispatch_params q = {0};
	static int n_ports;
	char name[32];
	int id;

	/* aw_dp_free closes the port: a fresh one per test */
	snprintf(name, sizeof(name), "net_ring_t%d", n_ports++);
	id = rte_eth_from_rings(name, &ring_in, 1, &ring_out, 1, 0);
	assert_true(id >= 0);
	port_id = (uint16_t)id;

	p.n_ports = 1;
	p.port[0].port_id = port_id;
	p.port[0].ip = srv.ip;
	p.port[0].netmask = srv.netmask;
	p.port[0].gateway = srv.gateway;
	p.port[0].udp_port = srv.udp_port;
	p.port[0].rx_desc = 256;
	p.port[0].tx_desc = 256;
	p.n_lcores = 1;
	p.lcore[0] = 1;
	p.burst = 32;
	p.idle = AW_DP_IDLE_YIELD;
	p.mbufs = 2047;
	p.mbuf_cache = 32;
	p.resp_ring_size = 256;
	aw_proto_reasm_limits_default(&p.reasm);
	aw_proto_rtx_limits_default(&p.rtx);
	p.server_id = 7;
	assert_int_equal(aw_dp_new(&p, &dp), 0);
	aw_dp_port_mac(dp, 0, srv.mac);

	q.n_groups = n_groups;
	for (unsigned g = 0; g < n_groups; g++) {
		q.group[g].lcore = 2 + g;
		q.group[g].socket = 0;
		q.group[g].ring_size = ring_size;
		q.group[g].max_request = 4096;
		q.group[g].idle = AW_DP_IDLE_SLEEP;
		/* scheduler (model engine only) */
		q.group[g].n_cpus = group_cpus;
		for (unsigned c = 0; c < group_cpus; c++)
			q.group[g].cpus[c] = (int)c;
		q.group[g].max_batch = 8;
		q.group[g].max_batch_tokens = 256;
		q.group[g].prefill_chunk = 64;
		q.group[g].kv_cache = 4u << 20;
		q.group[g].kv_block_tokens = 16;
	}
	q.max_new_tokens = 64;
	q.max_prompt_tokens = 100;
	q.max_sessions = 8;
	q.session_ttl_us = 60000000;
	if (use_model) {
		struct aw_err err = {0};

		assert_int_equal(aw_engine_model_open(use_model, NULL, &engine, &err), 0);
	} else {
		assert_int_equal(aw_engine_echo_init(&engine, delay_us), 0);
	}
	assert_int_equal(aw_dispatch_new(&q, dp, &engine, &disp), 0);
	aw_dp_set_dispatch(dp, disp);
	assert_int_equal(aw_dispatch_start(disp), 0);
	assert_int_equal(aw_dp_start(dp), 0);
}

/* Stop everything; every mbuf must be back. */
static void stop(void)
{
	aw_dp_stop_rx(dp);
	aw_dispatch_stop(disp);
	aw_dp_stop(dp);
	aw_dispatch_free(disp);
	/* replies the test did not read are still in the TX ring: count them out */
	void *m;
	while (rte_ring_dequeue(ring_out, &m) == 0)
		rte_pktmbuf_free(m);
	assert_int_equal(aw_dp_free(dp), 0);
	aw_engine_fini(&engine);
	assert_int_equal(rte_mempool_in_use_count(cli_pool), 0);
	dp = NULL;
	disp = NULL;
}

/* After a failed test: release what it left, without asserting. */
static int teardown(void **state)
{
	void *m;

	(void)state;
	if (!dp)
		return 0;
	aw_dp_stop_rx(dp);
	aw_dispatch_stop(disp);
	aw_dp_stop(dp);
	aw_dispatch_free(disp);
	while (rte_ring_dequeue(ring_out, &m) == 0)
		rte_pktmbuf_free(m);
	while (rte_ring_dequeue(ring_in, &m) == 0)
		rte_pktmbuf_free(m);
	aw_dp_free(dp);
	aw_engine_fini(&engine);
	dp = NULL;
	disp = NULL;
	return 0;
}

/* inject one frame of 'len' bytes */
static void inject(const void *frame, size_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(cli_pool);

	assert_non_null(m);
	memcpy(rte_pktmbuf_append(m, (uint16_t)len), frame, len);
	assert_int_equal(rte_ring_enqueue(ring_in, m), 0);
}

static size_t udp_frame(uint8_t *f, const void *dgram, size_t len)
{
	memcpy(f + AW_NET_HDRS_LEN, dgram, len);
	return (size_t)aw_net_udp_build(&cli, srv.mac, srv.ip, srv.udp_port, 1, f, len, 0);
}

static void send_dgram(const struct aw_proto_hdr *h, const void *payload, size_t len)
{
	uint8_t d[2048], f[2200];
	int n = aw_proto_build(d, sizeof(d), h, payload, len);

	assert_true(n > 0);
	inject(f, udp_frame(f, d, (size_t)n));
}

/* Wait (up to 5 s) for the next frame the daemon sent; copies it out. */
static size_t next_frame(uint8_t *buf, size_t cap)
{
	for (int i = 0; i < 5000; i++) {
		void *o;

		if (rte_ring_dequeue(ring_out, &o) == 0) {
			struct rte_mbuf *m = o;
			size_t n = rte_pktmbuf_data_len(m);

			assert_true(n <= cap);
			memcpy(buf, rte_pktmbuf_mtod(m, void *), n);
			rte_pktmbuf_free(m);
			return n;
		}
		usleep(1000);
	}
	return 0;
}

/* Next UDP reply: header in *h, payload copied to 'payload'. */
static int next_reply(struct aw_proto_hdr *h, uint8_t *payload, size_t *plen)
{
	uint8_t f[2200];
	struct aw_net_pkt pkt;
	struct aw_proto_err e;
	size_t n;

	while ((n = next_frame(f, sizeof(f))) > 0) {
		if (aw_net_input(&cli, NULL, 0, f, n, 0, &pkt) != AW_NET_KIND_UDP)
			continue; /* e.g. an ARP request from the daemon */
		assert_int_equal(aw_proto_hdr_parse(f + pkt.payload_off, pkt.payload_len, 0, h, &e),
				 0);
		*plen = h->payload_len;
		memcpy(payload, f + pkt.payload_off + AW_PROTO_HDR_LEN, *plen);
		return 0;
	}
	return -ETIMEDOUT;
}

static uint64_t ctr(enum aw_dp_ctr c)
{
	struct aw_dp_stats st;

	aw_dp_stats_read(dp, -1, &st);
	return st.c[c];
}

static uint64_t drops(enum aw_net_drop d)
{
	struct aw_dp_stats st;

	aw_dp_stats_read(dp, -1, &st);
	return st.drop[d];
}

static void wait_ctr(enum aw_dp_ctr c, uint64_t want)
{
	for (int i = 0; i < 5000 && ctr(c) < want; i++)
		usleep(1000);
	assert_true(ctr(c) >= want);
}

static void test_arp_icmp(void **state)
{
	uint8_t f[128], r[2200];
	size_t n;

	(void)state;
	start(8, 0);
	/* ARP request for the daemon's address */
	n = (size_t)aw_net_arp_request(&cli, srv.ip, f);
	inject(f, n);
	n = next_frame(r, sizeof(r));
	assert_true(n >= AW_NET_ARP_FRAME);
	struct aw_net_pkt pkt;
	struct aw_net_arp *arp = calloc(1, sizeof(*arp));
	aw_net_arp_init(arp, 0);
	assert_int_equal(aw_net_input(&cli, arp, 0, r, n, 0, &pkt), AW_NET_KIND_ARP_LEARNT);
	uint8_t mac[6];
	assert_int_equal(aw_net_arp_lookup(arp, srv.ip, 0, mac), 0);
	assert_memory_equal(mac, srv.mac, 6);
	free(arp);

	/* ICMP echo: a UDP frame reshaped into an echo request */
	uint8_t icmp[40] = {8, 0, 0, 0, 0x12, 0x34, 0, 1};
	memset(icmp + 8, 0x5a, 32);
	n = udp_frame(f, icmp, 32); /* builds eth+ip+udp; rewrite as ICMP */
	f[23] = 1;
	f[16] = 0;
	f[17] = 20 + 40;
	memcpy(f + 34, icmp, 40);
	uint16_t c = aw_net_csum_fold(aw_net_csum_add(0, f + 34, 40));
	f[36] = (uint8_t)(c >> 8);
	f[37] = (uint8_t)c;
	f[24] = f[25] = 0;
	c = aw_net_csum_fold(aw_net_csum_add(0, f + 14, 20));
	f[24] = (uint8_t)(c >> 8);
	f[25] = (uint8_t)c;
	inject(f, 14 + 60);
	n = next_frame(r, sizeof(r));
	assert_int_equal(n, 14 + 60);
	assert_int_equal(r[34], 0); /* echo reply */
	assert_memory_equal(r + 38, icmp + 4, 36);
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, r + 34, 40)), 0);
	assert_int_equal(ctr(AW_DP_ARP_REPLIES), 1);
	assert_int_equal(ctr(AW_DP_ICMP_REPLIES), 1);
	stop();
}

static void test_ping(void **state)
{
	struct aw_proto_hdr h = {0}, r;
	uint8_t pl[2048];
	size_t n;

	(void)state;
	start(8, 0);
	for (uint64_t i = 1; i <= 100; i++) {
		h.type = AW_PROTO_PING;
		h.request_id = i;
		h.session_id = 99;
		send_dgram(&h, &i, sizeof(i));
		assert_int_equal(next_reply(&r, pl, &n), 0);
		assert_int_equal(r.type, AW_PROTO_PONG);
		assert_int_equal(r.request_id, i);
		assert_int_equal(r.session_id, 99);
		assert_int_equal(r.server_id, 7);
		assert_int_equal(n, sizeof(i));
		assert_memory_equal(pl, &i, sizeof(i));
	}
	assert_int_equal(ctr(AW_DP_PING), 100);
	stop();
}

/* Collect a whole response: DATA text into 'text', returns the terminal. */
static struct aw_proto_hdr collect(uint64_t rid, char *text, size_t *tlen, uint8_t *term,
				   size_t *term_len)
{
	struct aw_proto_hdr r;
	uint8_t pl[2048];
	size_t n;
	uint32_t expect = 0;

	*tlen = 0;
	for (;;) {
		assert_int_equal(next_reply(&r, pl, &n), 0);
		if (r.request_id != rid || r.type == AW_PROTO_PROGRESS)
			continue;
		assert_int_equal(r.seq, expect);
		expect++;
		if (r.type == AW_PROTO_DATA) {
			uint32_t nt;
			struct aw_proto_str s;
			struct aw_proto_err e;

			assert_int_equal(aw_proto_data_parse(pl, n, &nt, &s, &e), 0);
			memcpy(text + *tlen, s.p, s.len);
			*tlen += s.len;
			continue;
		}
		memcpy(term, pl, n);
		*term_len = n;
		return r;
	}
}

static void send_generate_session(uint64_t rid, uint64_t sid, const char *prompt, uint32_t max_new)
{
	struct aw_proto_req q;
	struct aw_proto_hdr h = {0};
	uint8_t body[1024];
	int n;

	aw_proto_req_init(&q);
	q.prompt.p = prompt;
	q.prompt.len = (uint32_t)strlen(prompt);
	q.max_new_tokens = max_new;
	n = aw_proto_req_build(&q, body, sizeof(body));
	assert_true(n > 0);
	h.type = AW_PROTO_GENERATE;
	h.request_id = rid;
	h.session_id = sid;
	send_dgram(&h, body, (size_t)n);
}

static void send_generate(uint64_t rid, const char *prompt, uint32_t max_new)
{
	send_generate_session(rid, 0, prompt, max_new);
}

static void test_generate(void **state)
{
	char text[4096];
	uint8_t term[512];
	size_t tlen, n;
	struct aw_proto_hdr r, h = {0};
	struct aw_proto_summary s;
	struct aw_proto_err e;

	(void)state;
	start(8, 0);
	send_generate(1000, "pick the search tool now please", 4);
	r = collect(1000, text, &tlen, term, &n);
	assert_int_equal(r.type, AW_PROTO_END);
	assert_int_equal(aw_proto_summary_parse(term, n, &s, &e), 0);
	assert_int_equal(s.finish, AW_PROTO_FINISH_LENGTH);
	assert_int_equal(s.gen_tokens, 4);
	assert_int_equal(s.prompt_tokens, 6);
	assert_int_equal(s.n_data, 4);
	assert_int_equal(tlen, strlen("pick the search tool "));
	assert_memory_equal(text, "pick the search tool ", tlen);

	/* the same request again: not run twice, the stored stream is resent */
	send_generate(1000, "pick the search tool now please", 4);
	r = collect(1000, text, &tlen, term, &n);
	assert_int_equal(r.type, AW_PROTO_END);
	assert_memory_equal(text, "pick the search tool ", tlen);
	assert_int_equal(ctr(AW_DP_DISPATCHED), 1);
	assert_int_equal(ctr(AW_DP_DUPLICATES), 1);

	/* RESUME from seq 2: datagrams 2, 3 and the END */
	h.type = AW_PROTO_RESUME;
	h.request_id = 1000;
	h.seq = 2;
	send_dgram(&h, NULL, 0);
	uint8_t pl[2048];
	for (uint32_t want = 2; want <= 4; want++) {
		assert_int_equal(next_reply(&r, pl, &n), 0);
		assert_int_equal(r.seq, want);
	}
	assert_int_equal(r.type, AW_PROTO_END);

	/* ACK forgets it: RESUME is then UNKNOWN_REQUEST */
	h.type = AW_PROTO_ACK;
	send_dgram(&h, NULL, 0);
	h.type = AW_PROTO_RESUME;
	h.seq = 0;
	send_dgram(&h, NULL, 0);
	assert_int_equal(next_reply(&r, pl, &n), 0);
	assert_int_equal(r.type, AW_PROTO_ERROR);
	struct aw_proto_error er;
	assert_int_equal(aw_proto_error_parse(pl, n, &er, &e), 0);
	assert_int_equal(er.code, AW_PROTO_ERR_UNKNOWN_REQUEST);

	/* a malformed body: BAD_REQUEST from the worker */
	h.type = AW_PROTO_GENERATE;
	h.request_id = 1001;
	send_dgram(&h, "garbage", 7);
	r = collect(1001, text, &tlen, term, &n);
	assert_int_equal(r.type, AW_PROTO_ERROR);
	assert_int_equal(aw_proto_error_parse(term, n, &er, &e), 0);
	assert_int_equal(er.code, AW_PROTO_ERR_BAD_REQUEST);
	stop();
}

/* A segmented GENERATE (three datagrams, out of order) is reassembled. */
static void test_segmented(void **state)
{
	char prompt[1500], text[4096];
	struct aw_proto_req q;
	struct aw_proto_hdr h = {0}, r;
	uint8_t body[2048], d[2048], f[2200], term[512];
	size_t tlen, n;
	int len;

	(void)state;
	start(8, 0);
	for (size_t i = 0; i < sizeof(prompt) - 1; i++)
		prompt[i] = (i % 5 == 4) ? ' ' : (char)('a' + i % 26);
	prompt[sizeof(prompt) - 1] = '\0';
	aw_proto_req_init(&q);
	q.prompt.p = prompt;
	q.prompt.len = (uint32_t)strlen(prompt);
	q.max_new_tokens = 3;
	len = aw_proto_req_build(&q, body, sizeof(body));
	h.type = AW_PROTO_GENERATE;
	h.request_id = 77;
	for (int idx = 2; idx >= 0; idx--) {
		int k = aw_proto_build_segment(d, sizeof(d), &h, body, (size_t)len, 600,
					       (unsigned)idx);

		assert_true(k > 0);
		inject(f, udp_frame(f, d, (size_t)k));
	}
	r = collect(77, text, &tlen, term, &n);
	assert_int_equal(r.type, AW_PROTO_END);
	assert_int_equal(tlen, 15);
	assert_memory_equal(text, prompt, 15);
	assert_int_equal(ctr(AW_DP_SEGMENTS_HELD), 2);
	stop();
}

/* Every malformed shape is counted under its reason; the loop goes on. */
static void test_malformed(void **state)
{
	uint8_t f[2200], d[256];
	struct aw_proto_hdr h = {0}, r;
	uint8_t pl[2048];
	size_t n, len;

	(void)state;
	start(8, 0);
	h.type = AW_PROTO_PING;
	h.request_id = 5;
	len = (size_t)aw_proto_build(d, sizeof(d), &h, "x", 1);

	n = udp_frame(f, d, len);
	f[0] ^= 0x04; /* another MAC */
	inject(f, n);
	n = udp_frame(f, d, len);
	f[12] = 0x86; /* IPv6 */
	f[13] = 0xdd;
	inject(f, n);
	n = udp_frame(f, d, len);
	f[14] = 0x46; /* options */
	inject(f, n);
	n = udp_frame(f, d, len);
	f[22] ^= 1; /* IP checksum */
	inject(f, n);
	n = udp_frame(f, d, len);
	f[20] = 0x20; /* more fragments, checksum made right again */
	f[24] = f[25] = 0;
	uint16_t c = aw_net_csum_fold(aw_net_csum_add(0, f + 14, 20));
	f[24] = (uint8_t)(c >> 8);
	f[25] = (uint8_t)c;
	inject(f, n);
	n = udp_frame(f, d, len);
	f[AW_NET_HDRS_LEN + 64] ^= 1; /* UDP checksum */
	inject(f, n);
	n = udp_frame(f, d, len);
	inject(f, 20); /* truncated */
	n = udp_frame(f, d, len);
	f[AW_NET_HDRS_LEN] ^= 0xff; /* wrong magic: counted, not answered */
	f[40] = f[41] = 0;	    /* no UDP checksum */
	inject(f, n);
	n = udp_frame(f, d, 30); /* shorter than the proto header */
	f[40] = f[41] = 0;
	inject(f, n);
	/* a wrong version is answered with ERROR VERSION */
	n = udp_frame(f, d, len);
	f[AW_NET_HDRS_LEN + 2] = 9;
	f[40] = f[41] = 0;
	inject(f, n);
	assert_int_equal(next_reply(&r, pl, &n), 0);
	assert_int_equal(r.type, AW_PROTO_ERROR);
	assert_int_equal(r.request_id, 5);

	/* still serving */
	send_dgram(&h, "y", 1);
	assert_int_equal(next_reply(&r, pl, &n), 0);
	assert_int_equal(r.type, AW_PROTO_PONG);
	assert_int_equal(drops(AW_NET_DROP_DST_MAC), 1);
	assert_int_equal(drops(AW_NET_DROP_ETHERTYPE), 1);
	assert_int_equal(drops(AW_NET_DROP_IP_OPTIONS), 1);
	assert_int_equal(drops(AW_NET_DROP_IP_CSUM), 1);
	assert_int_equal(drops(AW_NET_DROP_IP_FRAG), 1);
	assert_int_equal(drops(AW_NET_DROP_UDP_CSUM), 1);
	assert_int_equal(drops(AW_NET_DROP_TRUNCATED), 1);
	assert_int_equal(ctr(AW_DP_PROTO_BAD), 3);
	stop();
}

/* A slow engine and a ring of 2: a burst of requests gets OVERLOADED at
 * once for the excess; the admitted ones complete; at shutdown the queued
 * ones end with END cancelled. */
static void test_overload_and_shutdown(void **state)
{
	struct aw_proto_hdr r;
	uint8_t pl[2048];
	size_t n;
	unsigned overloaded = 0, ended = 0;

	(void)state;
	start(2, 20000); /* 20 ms per token */
	for (uint64_t i = 1; i <= 10; i++)
		send_generate(i, "a b c d e f g h", 2);
	/* 1 running + 2 queued at most: at least 7 immediate OVERLOADED */
	wait_ctr(AW_DP_OVERLOADED, 7);
	while (ended + overloaded < 10 && next_reply(&r, pl, &n) == 0) {
		if (r.type == AW_PROTO_ERROR) {
			struct aw_proto_error er;
			struct aw_proto_err e;

			assert_int_equal(aw_proto_error_parse(pl, n, &er, &e), 0);
			assert_int_equal(er.code, AW_PROTO_ERR_OVERLOADED);
			assert_true(er.retry_after_us > 0);
			overloaded++;
		} else if (r.type == AW_PROTO_END) {
			ended++;
		}
	}
	assert_int_equal(overloaded + ended, 10);
	assert_true(overloaded >= 7);
	assert_true(ended >= 1);

	/* shutdown with requests in flight: each ends with a final message */
	struct aw_dispatch_group_stats gs;
	send_generate(100, "one two three four five six seven eight nine ten", 10);
	for (int i = 0; i < 5000; i++) { /* wait until it runs: then two more fit the ring */
		aw_dispatch_group_stats(disp, 0, &gs);
		if (gs.running == 1)
			break;
		usleep(1000);
	}
	send_generate(101, "one two three four five six seven eight nine ten", 10);
	send_generate(102, "one two three four five six seven eight nine ten", 10);
	wait_ctr(AW_DP_DISPATCHED, ended + 3);
	aw_dp_stop_rx(dp);
	aw_dispatch_stop(disp);
	unsigned cancelled = 0;
	for (unsigned got = 0; got < 3 && next_reply(&r, pl, &n) == 0;) {
		if (r.type != AW_PROTO_END)
			continue;
		struct aw_proto_summary s;
		struct aw_proto_err e;

		assert_int_equal(aw_proto_summary_parse(pl, n, &s, &e), 0);
		cancelled += s.finish == AW_PROTO_FINISH_CANCELLED;
		got++;
	}
	assert_int_equal(cancelled, 3);
	stop();
}

/* Two groups: requests go to the least loaded one, so a burst lands on
 * both, and each group's counters account for what it took. */
static void test_two_groups(void **state)
{
	struct aw_dispatch_group_stats g0, g1;
	struct aw_proto_hdr r;
	uint8_t pl[2048];
	size_t n;
	unsigned ended = 0, over = 0;

	(void)state;
	n_groups = 2;
	start(4, 10000); /* 10 ms per token */
	n_groups = 1;
	for (uint64_t i = 1; i <= 6; i++)
		send_generate(500 + i, "x y", 2);
	while (ended + over < 6 && next_reply(&r, pl, &n) == 0) {
		ended += r.type == AW_PROTO_END;
		over += r.type == AW_PROTO_ERROR;
	}
	assert_int_equal(ended, 6); /* 2 x (4 queued + 1 running) >= 6: none refused */
	aw_dispatch_group_stats(disp, 0, &g0);
	aw_dispatch_group_stats(disp, 1, &g1);
	assert_true(g0.enqueued >= 1 && g1.enqueued >= 1);
	assert_int_equal(g0.enqueued + g1.enqueued, 6);
	assert_int_equal(g0.completed + g1.completed, 6);
	assert_int_equal(g0.tokens_out + g1.tokens_out, 12);
	stop();
}

/* groups: requests of one session all go to one group (the group that holds
 * its KV), whatever the load; the session id is echoed in every reply. */
static void test_session_affinity(void **state)
{
	struct aw_dispatch_group_stats g0, g1;
	struct aw_proto_hdr r;
	uint8_t pl[2048];
	size_t n;
	unsigned ended = 0;

	(void)state;
	n_groups = 2;
	start(8, 2000);
	n_groups = 1;
	for (uint64_t sid = 0x51; sid <= 0x52; sid++) {
		uint64_t e0, e1;

		aw_dispatch_group_stats(disp, 0, &g0);
		aw_dispatch_group_stats(disp, 1, &g1);
		e0 = g0.enqueued;
		e1 = g1.enqueued;
		ended = 0;
		for (uint64_t i = 1; i <= 5; i++)
			send_generate_session(sid * 100 + i, sid, "x y", 2);
		while (ended < 5 && next_reply(&r, pl, &n) == 0) {
			assert_int_equal(r.session_id, sid);
			assert_int_not_equal(r.type, AW_PROTO_ERROR);
			ended += r.type == AW_PROTO_END;
		}
		assert_int_equal(ended, 5);
		aw_dispatch_group_stats(disp, 0, &g0);
		aw_dispatch_group_stats(disp, 1, &g1);
		/* all five in one group although the other one was idle */
		assert_true((g0.enqueued - e0 == 5 && g1.enqueued == e1) ||
			    (g1.enqueued - e1 == 5 && g0.enqueued == e0));
	}
	stop();
}

/* groups: with a model engine the group runs the scheduler. Four greedy
 * requests sent together (batched) give the same text from a group of two
 * CPUs — two pool threads, each computing a slice of every matrix product —
 * as from a group of one, and the group's counters show the scheduler. */
static void serve_four(unsigned n_cpus, char text[4][512], size_t len[4])
{
	static const char *prompts[] = {"hello world", "a b c hello", "world",
					"hello hello world a b"};
	struct aw_dispatch_group_stats g;
	struct aw_proto_hdr r;
	uint8_t pl[2048];
	size_t n;
	unsigned ended = 0;

	group_cpus = n_cpus;
	start(16, 0);
	group_cpus = 1;
	for (unsigned i = 0; i < 4; i++) {
		len[i] = 0;
		send_generate(7000 + i, prompts[i], 12);
	}
	while (ended < 4) {
		assert_int_equal(next_reply(&r, pl, &n), 0);
		assert_true(r.request_id >= 7000 && r.request_id < 7004);
		unsigned i = (unsigned)(r.request_id - 7000);

		assert_int_not_equal(r.type, AW_PROTO_ERROR);
		if (r.type == AW_PROTO_DATA) {
			uint32_t nt;
			struct aw_proto_str s;
			struct aw_proto_err e;

			assert_int_equal(aw_proto_data_parse(pl, n, &nt, &s, &e), 0);
			assert_true(len[i] + s.len <= 512);
			memcpy(text[i] + len[i], s.p, s.len);
			len[i] += s.len;
		}
		ended += r.type == AW_PROTO_END;
	}
	aw_dispatch_group_stats(disp, 0, &g);
	assert_int_equal(g.sched, 1);
	assert_int_equal(g.pool_threads, n_cpus);
	assert_true(g.steps > 0 && g.decode_tokens > 0);
	assert_int_equal(g.completed, 4);
	stop();
}

static void test_group_threads(void **state)
{
	char one[4][512], two[4][512];
	size_t l1[4], l2[4];
	struct tiny_cfg c;
	cpu_set_t set;
	char path[64];

	(void)state;
	tiny_default(&c);
	c.dim = 128;
	c.ffn = 256;
	c.n_head = 4;
	c.n_head_kv = 2;
	c.type = AW_TYPE_Q8_0;
	c.with_tokenizer = 1;
	snprintf(path, sizeof(path), "/tmp/aw-test-dp-model-%d.gguf", (int)getpid());
	assert_int_equal(tiny_write(&c, path, NULL, NULL), 0);
	use_model = path;
	serve_four(1, one, l1);
	/* the process may use CPUs 0 and 1 (the EAL pinned this thread to one) */
	if (sched_getaffinity(getpid(), sizeof(set), &set) == 0 &&
	    sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		serve_four(2, two, l2);
		for (unsigned i = 0; i < 4; i++) {
			assert_int_equal(l1[i], l2[i]);
			assert_memory_equal(one[i], two[i], l1[i]);
		}
	} else {
		printf("# one CPU: two-thread group not run\n");
	}
	use_model = NULL;
	unlink(path);
}

/* Two dataplane lcores, two queue pairs: each lcore answers on the TX queue
 * of the RX queue it polls, GENERATE replies included (the response ring of
 * the lcore that owns the flow). */
static void test_two_queues(void **state)
{
	struct rte_ring *in[2], *out[2];
	struct aw_dp_params p = {0};
	struct aw_dispatch_params q = {0};
	struct aw_proto_hdr h = {0};
	int id;

	(void)state;
	for (int i = 0; i < 2; i++) {
		char name[32];

		snprintf(name, sizeof(name), "t2_in%d", i);
		in[i] = rte_ring_create(name, 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		snprintf(name, sizeof(name), "t2_out%d", i);
		out[i] = rte_ring_create(name, 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
		assert_non_null(in[i]);
		assert_non_null(out[i]);
	}
	id = rte_eth_from_rings("net_ring_q2", in, 2, out, 2, 0);
	assert_true(id >= 0);
	p.n_ports = 1;
	p.port[0].port_id = (uint16_t)id;
	p.port[0].ip = srv.ip;
	p.port[0].netmask = srv.netmask;
	p.port[0].udp_port = srv.udp_port;
	p.port[0].rx_desc = p.port[0].tx_desc = 128;
	p.n_lcores = 2;
	p.lcore[0] = 1;
	p.lcore[1] = 4;
	p.burst = 32;
	p.idle = AW_DP_IDLE_YIELD;
	p.mbufs = 2047;
	p.mbuf_cache = 32;
	p.resp_ring_size = 256;
	aw_proto_reasm_limits_default(&p.reasm);
	aw_proto_rtx_limits_default(&p.rtx);
	assert_int_equal(aw_dp_new(&p, &dp), 0);
	aw_dp_port_mac(dp, 0, srv.mac);
	q.n_groups = 1;
	q.group[0].lcore = 2;
	q.group[0].ring_size = 16;
	q.group[0].max_request = 4096;
	q.group[0].idle = AW_DP_IDLE_SLEEP;
	q.max_new_tokens = 8;
	assert_int_equal(aw_engine_echo_init(&engine, 0), 0);
	assert_int_equal(aw_dispatch_new(&q, dp, &engine, &disp), 0);
	aw_dp_set_dispatch(dp, disp);
	assert_int_equal(aw_dispatch_start(disp), 0);
	assert_int_equal(aw_dp_start(dp), 0);

	for (int qi = 0; qi < 2; qi++) {
		uint8_t d[256], f[400], r[2200], body[256];
		struct aw_proto_req rq;
		struct rte_mbuf *m;
		int len;

		/* a PING and a GENERATE into RX queue qi ... */
		h.type = AW_PROTO_PING;
		h.request_id = 900 + (uint64_t)qi;
		len = aw_proto_build(d, sizeof(d), &h, "q", 1);
		m = rte_pktmbuf_alloc(cli_pool);
		memcpy(rte_pktmbuf_append(m, (uint16_t)udp_frame(f, d, (size_t)len)), f,
		       (size_t)udp_frame(f, d, (size_t)len));
		assert_int_equal(rte_ring_enqueue(in[qi], m), 0);
		aw_proto_req_init(&rq);
		rq.prompt.p = "alpha beta";
		rq.prompt.len = 10;
		int bl = aw_proto_req_build(&rq, body, sizeof(body));
		h.type = AW_PROTO_GENERATE;
		h.request_id = 910 + (uint64_t)qi;
		len = aw_proto_build(d, sizeof(d), &h, body, (size_t)bl);
		m = rte_pktmbuf_alloc(cli_pool);
		memcpy(rte_pktmbuf_append(m, (uint16_t)udp_frame(f, d, (size_t)len)), f,
		       (size_t)udp_frame(f, d, (size_t)len));
		assert_int_equal(rte_ring_enqueue(in[qi], m), 0);
		/* ... are answered on TX queue qi only: PONG, 2 DATA, END */
		unsigned got = 0, ends = 0;
		for (int t = 0; t < 5000 && ends < 1; t++) {
			void *o;

			if (rte_ring_dequeue(out[qi], &o) != 0) {
				usleep(1000);
				continue;
			}
			struct rte_mbuf *x = o;
			struct aw_net_pkt pkt;
			struct aw_proto_hdr rh;
			struct aw_proto_err e;
			size_t n = rte_pktmbuf_data_len(x);

			memcpy(r, rte_pktmbuf_mtod(x, void *), n);
			rte_pktmbuf_free(x);
			if (aw_net_input(&cli, NULL, 0, r, n, 0, &pkt) != AW_NET_KIND_UDP)
				continue;
			assert_int_equal(aw_proto_hdr_parse(r + pkt.payload_off, pkt.payload_len, 0,
							    &rh, &e),
					 0);
			got++;
			ends += rh.type == AW_PROTO_END;
		}
		assert_int_equal(got, 4);
		assert_int_equal(rte_ring_count(out[1 - qi]), 0);
	}
	struct aw_dp_stats s0, s1;
	aw_dp_stats_read(dp, 0, &s0);
	aw_dp_stats_read(dp, 1, &s1);
	assert_int_equal(s0.c[AW_DP_PING], 1);
	assert_int_equal(s1.c[AW_DP_PING], 1);
	assert_int_equal(s0.c[AW_DP_RESP_PKTS], 3);
	assert_int_equal(s1.c[AW_DP_RESP_PKTS], 3);

	aw_dp_stop_rx(dp);
	aw_dispatch_stop(disp);
	aw_dp_stop(dp);
	aw_dispatch_free(disp);
	assert_int_equal(aw_dp_free(dp), 0);
	aw_engine_fini(&engine);
	dp = NULL;
	disp = NULL;
	for (int i = 0; i < 2; i++) {
		rte_ring_free(in[i]);
		rte_ring_free(out[i]);
	}
}

int main(int argc, char **argv)
{
	char prefix[64];
	char *eal[] = {argv[0],	   "--no-huge",
		       "-m",	   "512",
		       "--no-pci", "--lcores=0@0,1@1,2@0,3@0,4@1",
		       prefix,	   "--log-level=warning",
		       NULL};
	int n_eal = 8;

	(void)argc;
	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root for the EAL\n");
		return 77;
	}
	snprintf(prefix, sizeof(prefix), "--file-prefix=aw-test-dp-%d", (int)getpid());
	if (rte_eal_init(n_eal, eal) < 0) {
		printf("1..0 # SKIP rte_eal_init failed\n");
		return 77;
	}
	if (rte_lcore_count() < 5) {
		printf("1..0 # SKIP needs 5 lcores\n");
		return 77;
	}
	ring_in = rte_ring_create("t_in", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	ring_out = rte_ring_create("t_out", 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
	cli_pool = rte_pktmbuf_pool_create("t_cli", 1023, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (!ring_in || !ring_out || !cli_pool)
		return 1;

	memcpy(cli.mac, (uint8_t[]){0x02, 0, 0, 0, 0, 0x22}, 6);
	cli.ip = ip4(10, 0, 0, 1);
	cli.netmask = ip4(255, 255, 255, 0);
	cli.udp_port = 40000;
	cli.ttl = 64;
	srv = cli;
	srv.ip = ip4(10, 0, 0, 2);
	srv.udp_port = 7000;

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_arp_icmp, teardown),
		cmocka_unit_test_teardown(test_ping, teardown),
		cmocka_unit_test_teardown(test_generate, teardown),
		cmocka_unit_test_teardown(test_segmented, teardown),
		cmocka_unit_test_teardown(test_malformed, teardown),
		cmocka_unit_test_teardown(test_overload_and_shutdown, teardown),
		cmocka_unit_test_teardown(test_two_groups, teardown),
		cmocka_unit_test_teardown(test_session_affinity, teardown),
		cmocka_unit_test_teardown(test_group_threads, teardown),
		cmocka_unit_test_teardown(test_two_queues, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	rte_eal_cleanup();
	return rc;
}
