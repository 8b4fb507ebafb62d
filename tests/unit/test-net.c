/* test-net.c — dataplane/net.c on byte buffers: checksums against known
 * values, UDP build -> input round trips, every drop reason from a frame
 * broken in exactly that way, ARP/ICMP answers checked field by field, the
 * ARP cache (ageing, full table), and every truncation of valid frames. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static const uint8_t srv_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t cli_mac[6] = {0x02, 0, 0, 0, 0, 0x02};

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	uint8_t x[4] = {(uint8_t)a, (uint8_t)b, (uint8_t)c, (uint8_t)d};
	uint32_t v;

	memcpy(&v, x, 4);
	return v;
}

static struct aw_net_if srv(void)
{
	struct aw_net_if n = {0};

	memcpy(n.mac, srv_mac, 6);
	n.ip = ip4(10, 99, 0, 2);
	n.netmask = ip4(255, 255, 255, 0);
	n.gateway = ip4(10, 99, 0, 254);
	n.udp_port = 7000;
	n.ttl = 64;
	return n;
}

static struct aw_net_if cli(void)
{
	struct aw_net_if n = {0};

	memcpy(n.mac, cli_mac, 6);
	n.ip = ip4(10, 99, 0, 1);
	n.netmask = ip4(255, 255, 255, 0);
	n.udp_port = 40000;
	n.ttl = 64;
	return n;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* refresh the IPv4 header checksum after a test edited the header */
static void fix_ip_csum(uint8_t *f)
{
	wr16(f + 24, 0);
	wr16(f + 24, aw_net_csum_fold(aw_net_csum_add(0, f + 14, 20)));
}

/* a valid client -> server UDP frame with 'plen' payload bytes; returns its length */
static size_t udp_frame(uint8_t *f, size_t plen, uint32_t flags)
{
	struct aw_net_if c = cli(), s = srv();
	int n;

	for (size_t i = 0; i < plen; i++)
		f[AW_NET_HDRS_LEN + i] = (uint8_t)(i * 7 + 3);
	n = aw_net_udp_build(&c, s.mac, s.ip, s.udp_port, 0x1234, f, plen, flags);
	assert_int_equal(n, AW_NET_HDRS_LEN + plen);
	return (size_t)n;
}

static enum aw_net_kind in(uint8_t *f, size_t len, uint32_t rx, struct aw_net_pkt *pkt)
{
	struct aw_net_if s = srv();

	memset(pkt, 0xa5, sizeof(*pkt));
	return aw_net_input(&s, NULL, 0, f, len, rx, pkt);
}

static void expect_drop(uint8_t *f, size_t len, enum aw_net_drop why)
{
	struct aw_net_pkt pkt;

	assert_int_equal(in(f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, why);
}

/* RFC 1071-style known vector: this IPv4 header's checksum is 0xb861. */
static void test_csum_known(void **state)
{
	uint8_t h[20] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
	uint8_t odd[3] = {0x01, 0x02, 0x03};

	(void)state;
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, h, 20)), 0xb861);
	wr16(h + 10, 0xb861);
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, h, 20)), 0);
	/* odd tail is the high byte of a last word: 0x0102 + 0x0300 */
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, odd, 3)), (uint16_t)~0x0402);
	/* summing in pieces (even splits) equals summing at once */
	uint8_t big[1001];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 31 + 5);
	uint32_t one = aw_net_csum_add(0, big, sizeof(big));
	uint32_t two = aw_net_csum_add(aw_net_csum_add(0, big, 500), big + 500, 501);
	assert_int_equal(aw_net_csum_fold(one), aw_net_csum_fold(two));
	/* all-ones data: worst case for carries */
	memset(big, 0xff, sizeof(big));
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, big, 1000)), 0);
}

static void test_udp_roundtrip(void **state)
{
	static const size_t sizes[] = {0, 1, 2, 3, 17, 64, 1000, 1472};
	uint8_t f[2048];
	struct aw_net_pkt pkt;

	(void)state;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t len = udp_frame(f, sizes[k], 0);

		assert_int_equal(in(f, len, 0, &pkt), AW_NET_KIND_UDP);
		assert_int_equal(pkt.src_ip, ip4(10, 99, 0, 1));
		assert_int_equal(pkt.src_port, 40000);
		assert_memory_equal(pkt.src_mac, cli_mac, 6);
		assert_int_equal(pkt.payload_off, AW_NET_HDRS_LEN);
		assert_int_equal(pkt.payload_len, sizes[k]);
		for (size_t i = 0; i < sizes[k]; i++)
			assert_int_equal(f[pkt.payload_off + i], (uint8_t)(i * 7 + 3));
		/* Ethernet padding after the IP datagram is ignored */
		if (len < AW_NET_ETH_MIN) {
			memset(f + len, 0xee, AW_NET_ETH_MIN - len);
			assert_int_equal(in(f, AW_NET_ETH_MIN, 0, &pkt), AW_NET_KIND_UDP);
			assert_int_equal(pkt.payload_len, sizes[k]);
		}
	}
	/* checksum 0 (none sent) is accepted */
	size_t len = udp_frame(f, 33, AW_NET_TX_UDP_CSUM_NONE);
	assert_int_equal(rd16(f + 40), 0);
	assert_int_equal(in(f, len, 0, &pkt), AW_NET_KIND_UDP);
	/* an offload build leaves the pseudo-header sum: finishing it in software
	 * gives the same value as the full software checksum */
	uint8_t g[256];
	len = udp_frame(g, 33, 0);
	udp_frame(f, 33, AW_NET_TX_UDP_CSUM_OFFLOAD | AW_NET_TX_IP_CSUM_OFFLOAD);
	assert_int_equal(rd16(f + 24), 0);
	uint32_t s = rd16(f + 40);
	wr16(f + 40, 0);
	s = aw_net_csum_add(s, f + 34, len - 34);
	uint16_t c = aw_net_csum_fold(s);
	assert_int_equal(c ? c : 0xffff, rd16(g + 40));
	/* too large */
	assert_int_equal(aw_net_udp_build(&(struct aw_net_if){0}, cli_mac, 0, 1, 0, f, 65536, 0),
			 -EMSGSIZE);
}

static void test_udp_csum(void **state)
{
	uint8_t f[256];
	struct aw_net_pkt pkt;
	size_t len;

	(void)state;
	len = udp_frame(f, 40, 0);
	f[AW_NET_HDRS_LEN + 5] ^= 0x10; /* corrupt the payload */
	expect_drop(f, len, AW_NET_DROP_UDP_CSUM);
	/* the NIC said good: trusted, no software check */
	assert_int_equal(in(f, len, AW_NET_RX_L4_CSUM_GOOD, &pkt), AW_NET_KIND_UDP);
	/* the NIC said bad: dropped even though we would not look */
	len = udp_frame(f, 40, 0);
	assert_int_equal(in(f, len, AW_NET_RX_L4_CSUM_BAD, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_UDP_CSUM);
	assert_int_equal(in(f, len, AW_NET_RX_IP_CSUM_BAD, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_IP_CSUM);
	/* a checksum that came out 0 is sent as 0xffff and accepted */
	for (unsigned port = 1; port < 65535; port++) {
		len = udp_frame(f, 2, 0);
		wr16(f + 34, (uint16_t)port);
		wr16(f + 40, aw_net_udp_csum(ip4(10, 99, 0, 1), ip4(10, 99, 0, 2), f + 34, 10));
		if (rd16(f + 40) == 0xffff) {
			assert_int_equal(in(f, len, 0, &pkt), AW_NET_KIND_UDP);
			return;
		}
	}
	fail_msg("no port gave a zero checksum");
}

static void test_drops(void **state)
{
	uint8_t f[256];
	size_t len;

	(void)state;
	len = udp_frame(f, 20, 0);
	f[0] = 0x04; /* another unicast MAC */
	expect_drop(f, len, AW_NET_DROP_DST_MAC);
	len = udp_frame(f, 20, 0);
	memset(f, 0xff, 6); /* broadcast IPv4 */
	expect_drop(f, len, AW_NET_DROP_DST_MAC);

	len = udp_frame(f, 20, 0);
	wr16(f + 12, 0x86dd);
	expect_drop(f, len, AW_NET_DROP_ETHERTYPE);
	wr16(f + 12, 0x8100);
	expect_drop(f, len, AW_NET_DROP_ETHERTYPE);

	len = udp_frame(f, 20, 0);
	f[14] = 0x65;
	expect_drop(f, len, AW_NET_DROP_IP_VERSION);
	f[14] = 0x44;
	expect_drop(f, len, AW_NET_DROP_IP_VERSION);
	f[14] = 0x46;
	expect_drop(f, len, AW_NET_DROP_IP_OPTIONS);

	len = udp_frame(f, 20, 0);
	wr16(f + 16, (uint16_t)(len - 14 + 1)); /* longer than the frame */
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_LEN);
	wr16(f + 16, 19);
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_LEN);

	len = udp_frame(f, 20, 0);
	f[22] ^= 1; /* TTL changed, checksum not */
	expect_drop(f, len, AW_NET_DROP_IP_CSUM);

	len = udp_frame(f, 20, 0);
	wr16(f + 20, 0x2000); /* MF */
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_FRAG);
	wr16(f + 20, 0x0010); /* offset */
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_FRAG);

	len = udp_frame(f, 20, 0);
	memcpy(f + 30, (uint8_t[]){10, 99, 0, 3}, 4);
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_DST);

	static const uint8_t bad_src[][4] = {{0, 0, 0, 0},   {255, 255, 255, 255},
					     {224, 0, 0, 1}, {127, 0, 0, 1},
					     {10, 99, 0, 2}, {10, 99, 0, 255}};
	for (size_t i = 0; i < sizeof(bad_src) / 4; i++) {
		len = udp_frame(f, 20, 0);
		memcpy(f + 26, bad_src[i], 4);
		fix_ip_csum(f);
		expect_drop(f, len, AW_NET_DROP_IP_SRC);
	}

	len = udp_frame(f, 20, 0);
	f[23] = 6; /* TCP */
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_IP_PROTO);

	len = udp_frame(f, 20, 0);
	wr16(f + 38, 27); /* UDP length != IP payload */
	expect_drop(f, len, AW_NET_DROP_UDP_LEN);
	wr16(f + 38, 7);
	expect_drop(f, len, AW_NET_DROP_UDP_LEN);
	len = udp_frame(f, 20, 0); /* IP payload shorter than a UDP header */
	wr16(f + 16, 20 + 4);
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_UDP_LEN);

	len = udp_frame(f, 20, 0);
	wr16(f + 36, 7001);
	expect_drop(f, len, AW_NET_DROP_UDP_PORT);

	expect_drop(f, 13, AW_NET_DROP_TRUNCATED);
	expect_drop(f, 33, AW_NET_DROP_TRUNCATED);
}

/* Every prefix of valid frames is handled without reading past it, and none
 * shorter than the datagram is accepted. (ASan checks the reads: each prefix
 * is copied into an exact-size heap buffer.) */
static void test_truncations(void **state)
{
	uint8_t f[256];
	size_t len = udp_frame(f, 30, 0);
	struct aw_net_pkt pkt;

	(void)state;
	for (size_t l = 0; l < len; l++) {
		uint8_t *b = malloc(l ? l : 1);

		memcpy(b, f, l);
		assert_int_equal(in(b, l, 0, &pkt), AW_NET_KIND_DROP);
		free(b);
	}
}

static size_t arp_frame(uint8_t *f, uint16_t op, const uint8_t *sender_mac, uint32_t sip,
			uint32_t tip)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, sender_mac, 6);
	wr16(f + 12, 0x0806);
	wr16(f + 14, 1);
	wr16(f + 16, 0x0800);
	f[18] = 6;
	f[19] = 4;
	wr16(f + 20, op);
	memcpy(f + 22, sender_mac, 6);
	memcpy(f + 28, &sip, 4);
	memset(f + 32, 0, 6);
	memcpy(f + 38, &tip, 4);
	memset(f + 42, 0, 18); /* padding to 60 */
	return 60;
}

static void test_arp(void **state)
{
	struct aw_net_if s = srv();
	struct aw_net_arp *arp = malloc(sizeof(*arp));
	struct aw_net_pkt pkt;
	uint8_t f[64], mac[6];
	size_t len;
	uint32_t me = s.ip, peer = ip4(10, 99, 0, 1);

	(void)state;
	aw_net_arp_init(arp, 100);
	/* a request for us: answered in place, asker learnt */
	len = arp_frame(f, 1, cli_mac, peer, me);
	assert_int_equal(aw_net_input(&s, arp, 5, f, len, 0, &pkt), AW_NET_KIND_ARP_REPLY);
	assert_int_equal(pkt.reply_len, 42);
	assert_memory_equal(f, cli_mac, 6);
	assert_memory_equal(f + 6, srv_mac, 6);
	assert_int_equal(rd16(f + 12), 0x0806);
	assert_int_equal(rd16(f + 20), 2);
	assert_memory_equal(f + 22, srv_mac, 6);
	assert_memory_equal(f + 28, &me, 4);
	assert_memory_equal(f + 32, cli_mac, 6);
	assert_memory_equal(f + 38, &peer, 4);
	assert_int_equal(aw_net_arp_lookup(arp, peer, 6, mac), 0);
	assert_memory_equal(mac, cli_mac, 6);
	/* ... and aged out after the ttl */
	assert_int_equal(aw_net_arp_lookup(arp, peer, 105, mac), 0);
	assert_int_equal(aw_net_arp_lookup(arp, peer, 200, mac), -ENOENT);

	/* a request for someone else: dropped, not learnt */
	uint32_t other = ip4(10, 99, 0, 7);
	len = arp_frame(f, 1, cli_mac, other, ip4(10, 99, 0, 9));
	assert_int_equal(aw_net_input(&s, arp, 5, f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_ARP_NOT_US);
	assert_int_equal(aw_net_arp_lookup(arp, other, 5, mac), -ENOENT);

	/* a reply to us: learnt */
	uint8_t gw_mac[6] = {0x02, 0, 0, 0, 0, 0xfe};
	len = arp_frame(f, 2, gw_mac, s.gateway, me);
	memcpy(f, srv_mac, 6);
	assert_int_equal(aw_net_input(&s, arp, 10, f, len, 0, &pkt), AW_NET_KIND_ARP_LEARNT);
	assert_int_equal(aw_net_arp_lookup(arp, s.gateway, 10, mac), 0);
	assert_memory_equal(mac, gw_mac, 6);

	/* off-subnet sender or multicast sender MAC: not learnt */
	uint32_t far = ip4(192, 168, 1, 1);
	len = arp_frame(f, 2, cli_mac, far, me);
	aw_net_input(&s, arp, 10, f, len, 0, &pkt);
	assert_int_equal(aw_net_arp_lookup(arp, far, 10, mac), -ENOENT);
	uint8_t mc[6] = {0x01, 0, 0x5e, 0, 0, 1};
	uint32_t p3 = ip4(10, 99, 0, 3);
	len = arp_frame(f, 1, mc, p3, me);
	assert_int_equal(aw_net_input(&s, arp, 10, f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_ARP_BAD);
	assert_int_equal(aw_net_arp_lookup(arp, p3, 10, mac), -ENOENT);

	/* malformed ARP */
	len = arp_frame(f, 3, cli_mac, peer, me);
	assert_int_equal(aw_net_input(&s, arp, 10, f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_ARP_BAD);
	len = arp_frame(f, 1, cli_mac, peer, me);
	f[18] = 8;
	assert_int_equal(aw_net_input(&s, arp, 10, f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_ARP_BAD);
	assert_int_equal(aw_net_input(&s, arp, 10, f, 41, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_TRUNCATED);

	/* our own request frame is well formed: the peer answers it */
	len = (size_t)aw_net_arp_request(&s, peer, f);
	struct aw_net_if c = cli();
	assert_int_equal(aw_net_input(&c, NULL, 0, f, len, 0, &pkt), AW_NET_KIND_ARP_REPLY);
	assert_memory_equal(f, srv_mac, 6);
	free(arp);
}

static void test_arp_cache(void **state)
{
	struct aw_net_arp *arp = malloc(sizeof(*arp));
	uint8_t mac[6] = {2, 0, 0, 0, 0, 0}, got[6];

	(void)state;
	aw_net_arp_init(arp, 10);
	assert_int_equal(aw_net_arp_update(arp, 0, mac, 0), -EINVAL);
	for (uint32_t i = 1; i <= AW_NET_ARP_SLOTS; i++) {
		mac[5] = (uint8_t)i;
		assert_int_equal(aw_net_arp_update(arp, i * 977, mac, 0), 0);
	}
	assert_int_equal(arp->n, AW_NET_ARP_SLOTS);
	for (uint32_t i = 1; i <= AW_NET_ARP_SLOTS; i++) {
		assert_int_equal(aw_net_arp_lookup(arp, i * 977, 5, got), 0);
		assert_int_equal(got[5], (uint8_t)i);
	}
	/* full of fresh entries: refused; refreshing an existing one works */
	assert_int_equal(aw_net_arp_update(arp, 5, mac, 5), -ENOSPC);
	assert_int_equal(aw_net_arp_update(arp, 977, mac, 5), 0);
	assert_int_equal(aw_net_arp_lookup(arp, 5, 5, got), -ENOENT);
	/* once entries are stale, a new one replaces one of them */
	assert_int_equal(aw_net_arp_update(arp, 5, mac, 50), 0);
	assert_int_equal(aw_net_arp_lookup(arp, 5, 50, got), 0);
	assert_int_equal(aw_net_arp_lookup(arp, 977, 50, got), -ENOENT); /* stale */
	free(arp);
}

static void test_icmp(void **state)
{
	struct aw_net_if s = srv(), c = cli();
	uint8_t f[128];
	struct aw_net_pkt pkt;
	size_t len;

	(void)state;
	/* build an echo request: UDP frame reshaped into ICMP */
	len = udp_frame(f, 24, 0); /* 8 + 24 bytes of L4 */
	f[23] = 1;
	fix_ip_csum(f);
	uint8_t *icmp = f + 34;
	icmp[0] = 8;
	icmp[1] = 0;
	wr16(icmp + 2, 0);
	wr16(icmp + 4, 0x4242);
	wr16(icmp + 6, 7);
	wr16(icmp + 2, aw_net_csum_fold(aw_net_csum_add(0, icmp, 32)));
	uint8_t data[24];
	memcpy(data, icmp + 8, 24);

	assert_int_equal(aw_net_input(&s, NULL, 0, f, len, 0, &pkt), AW_NET_KIND_ICMP_REPLY);
	assert_int_equal(pkt.reply_len, len);
	assert_memory_equal(f, cli_mac, 6);
	assert_memory_equal(f + 6, srv_mac, 6);
	assert_memory_equal(f + 26, &s.ip, 4);
	assert_memory_equal(f + 30, &c.ip, 4);
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, f + 14, 20)), 0);
	assert_int_equal(icmp[0], 0);
	assert_int_equal(rd16(icmp + 4), 0x4242);
	assert_int_equal(rd16(icmp + 6), 7);
	assert_memory_equal(icmp + 8, data, 24);
	assert_int_equal(aw_net_csum_fold(aw_net_csum_add(0, icmp, 32)), 0);
	/* the reply is not an echo request: the client side drops it as ICMP */
	assert_int_equal(aw_net_input(&c, NULL, 0, f, len, 0, &pkt), AW_NET_KIND_DROP);
	assert_int_equal(pkt.drop, AW_NET_DROP_ICMP);

	/* bad checksum, bad type, too short */
	len = udp_frame(f, 24, 0);
	f[23] = 1;
	fix_ip_csum(f);
	icmp[0] = 8;
	icmp[1] = 0;
	wr16(icmp + 2, 0x1111);
	expect_drop(f, len, AW_NET_DROP_ICMP_CSUM);
	icmp[0] = 13;
	expect_drop(f, len, AW_NET_DROP_ICMP);
	icmp[0] = 8;
	wr16(f + 16, 20 + 4);
	fix_ip_csum(f);
	expect_drop(f, len, AW_NET_DROP_ICMP);
}

static void test_misc(void **state)
{
	struct aw_net_if s = srv();
	uint32_t ip;

	(void)state;
	assert_int_equal(aw_net_next_hop(&s, ip4(10, 99, 0, 77)), ip4(10, 99, 0, 77));
	assert_int_equal(aw_net_next_hop(&s, ip4(10, 98, 0, 77)), s.gateway);
	s.gateway = 0;
	assert_int_equal(aw_net_next_hop(&s, ip4(8, 8, 8, 8)), 0);

	assert_int_equal(aw_net_parse_ip("10.99.0.2", &ip), 0);
	assert_int_equal(ip, ip4(10, 99, 0, 2));
	assert_int_equal(aw_net_parse_ip("10.99.0.256", &ip), -EINVAL);
	assert_int_equal(aw_net_parse_ip("10.99.0", &ip), -EINVAL);
	assert_int_equal(aw_net_parse_ip("10.99.0.2x", &ip), -EINVAL);
	assert_int_equal(aw_net_parse_ip("", &ip), -EINVAL);

	for (int i = 0; i < AW_NET_DROP__COUNT; i++) {
		const char *n = aw_net_drop_name((enum aw_net_drop)i);

		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, aw_net_drop_name((enum aw_net_drop)j));
	}
	assert_string_equal(aw_net_drop_name(AW_NET_DROP__COUNT), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csum_known),  cmocka_unit_test(test_udp_roundtrip),
		cmocka_unit_test(test_udp_csum),    cmocka_unit_test(test_drops),
		cmocka_unit_test(test_truncations), cmocka_unit_test(test_arp),
		cmocka_unit_test(test_arp_cache),   cmocka_unit_test(test_icmp),
		cmocka_unit_test(test_misc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
