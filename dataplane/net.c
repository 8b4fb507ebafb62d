/* net.c — Ethernet/ARP/IPv4/ICMP/UDP on raw bytes (see net.h).
 *
 * aw_net_input() is called once per received frame on a dataplane lcore, so
 * it reads each header once, checks every length against the bytes received
 * before using it, and answers ARP and ICMP echo in place (no allocation, no
 * copy). Multi-byte wire fields are read and written big-endian through
 * rd16/wr16 so that the code is the same on any host byte order and never
 * makes unaligned accesses.
 */
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint32_t rdip(const uint8_t *p) /* network order in, network order out */
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline void wrip(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* host-order view of a network-order address, for range tests */
static inline uint32_t ip_host(uint32_t ip)
{
	const uint8_t *b = (const uint8_t *)&ip;

	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

uint32_t aw_net_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = sum;
	size_t i = 0;

	for (; i + 8 <= len; i += 8)
		s += rd16(p + i) + rd16(p + i + 2) + rd16(p + i + 4) + rd16(p + i + 6);
	for (; i + 2 <= len; i += 2)
		s += rd16(p + i);
	if (i < len) /* odd length: the last byte is the high half of a word */
		s += (uint32_t)p[i] << 8;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	/* keep headroom for the caller's next add */
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint32_t)s;
}

uint16_t aw_net_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t pseudo_sum(uint32_t src, uint32_t dst, size_t udp_len)
{
	uint32_t s = 0;

	s = aw_net_csum_add(s, &src, 4);
	s = aw_net_csum_add(s, &dst, 4);
	return s + 17 + (uint32_t)udp_len;
}

uint16_t aw_net_udp_csum(uint32_t src, uint32_t dst, const uint8_t *udp, size_t udp_len)
{
	uint32_t s = pseudo_sum(src, dst, udp_len);
	uint16_t c;

	s = aw_net_csum_add(s, udp, 6); /* ports and length; checksum field taken as 0 */
	if (udp_len > AW_NET_UDP_LEN)
		s = aw_net_csum_add(s, udp + AW_NET_UDP_LEN, udp_len - AW_NET_UDP_LEN);
	c = aw_net_csum_fold(s);
	return c ? c : 0xffff;
}

uint32_t aw_net_next_hop(const struct aw_net_if *nif, uint32_t ip)
{
	if (((ip ^ nif->ip) & nif->netmask) == 0)
		return ip;
	return nif->gateway;
}

/* --- ARP cache ------------------------------------------------------------ */

static inline uint32_t arp_slot(uint32_t ip)
{
	return (ip * 2654435761u) >> 24 & (AW_NET_ARP_SLOTS - 1);
}

static inline int arp_fresh(const struct aw_net_arp *arp, const struct aw_net_arp_entry *e,
			    uint64_t now)
{
	return arp->ttl == 0 || now - e->updated <= arp->ttl;
}

void aw_net_arp_init(struct aw_net_arp *arp, uint64_t ttl)
{
	memset(arp, 0, sizeof(*arp));
	arp->ttl = ttl;
}

int aw_net_arp_update(struct aw_net_arp *arp, uint32_t ip, const uint8_t mac[6], uint64_t now)
{
	struct aw_net_arp_entry *stale = NULL, *e;
	uint32_t h = arp_slot(ip);

	if (ip == 0)
		return -EINVAL;
	/* Linear probing. Slots are never emptied, so a chain ends at the first
	 * empty slot; a stale entry on the way may be reused for the new key. */
	for (uint32_t i = 0; i < AW_NET_ARP_SLOTS; i++) {
		e = &arp->e[(h + i) & (AW_NET_ARP_SLOTS - 1)];
		if (e->ip == ip)
			goto set;
		if (e->ip == 0) {
			if (stale)
				break;
			arp->n++;
			goto set;
		}
		if (!stale && !arp_fresh(arp, e, now))
			stale = e;
	}
	if (!stale)
		return -ENOSPC;
	e = stale;
set:
	e->ip = ip;
	memcpy(e->mac, mac, 6);
	e->updated = now;
	return 0;
}

int aw_net_arp_lookup(const struct aw_net_arp *arp, uint32_t ip, uint64_t now, uint8_t ret_mac[6])
{
	uint32_t h = arp_slot(ip);

	if (ip == 0)
		return -ENOENT;
	for (uint32_t i = 0; i < AW_NET_ARP_SLOTS; i++) {
		const struct aw_net_arp_entry *e = &arp->e[(h + i) & (AW_NET_ARP_SLOTS - 1)];

		if (e->ip == 0)
			return -ENOENT;
		if (e->ip == ip) {
			if (!arp_fresh(arp, e, now))
				return -ENOENT;
			memcpy(ret_mac, e->mac, 6);
			return 0;
		}
	}
	return -ENOENT;
}

/* --- input ------------------------------------------------------------------ */

static inline enum aw_net_kind drop(struct aw_net_pkt *pkt, enum aw_net_drop why)
{
	pkt->drop = why;
	return AW_NET_KIND_DROP;
}

static int unicast_mac(const uint8_t *mac)
{
	static const uint8_t zero[6];

	return !(mac[0] & 1) && memcmp(mac, zero, 6) != 0;
}

/* A usable peer address: not 0/8, not multicast/reserved (224/3), not
 * loopback, not ours, not our subnet's broadcast. */
static int peer_ip_ok(const struct aw_net_if *nif, uint32_t ip)
{
	uint32_t h = ip_host(ip);

	if ((h >> 24) == 0 || (h >> 24) == 127 || h >= 0xe0000000u)
		return 0;
	if (ip == nif->ip)
		return 0;
	if (nif->netmask != 0xffffffffu && (ip | nif->netmask) == 0xffffffffu &&
	    ((ip ^ nif->ip) & nif->netmask) == 0)
		return 0;
	return 1;
}

static enum aw_net_kind arp_input(const struct aw_net_if *nif, struct aw_net_arp *arp, uint64_t now,
				  uint8_t *buf, size_t len, struct aw_net_pkt *pkt)
{
	uint8_t *a = buf + AW_NET_ETH_LEN;
	uint32_t sip, tip;
	uint16_t op;
	int learn;

	if (len < AW_NET_ARP_FRAME)
		return drop(pkt, AW_NET_DROP_TRUNCATED);
	op = rd16(a + 6);
	if (rd16(a) != 1 || rd16(a + 2) != AW_NET_ETHER_IPV4 || a[4] != 6 || a[5] != 4 ||
	    (op != 1 && op != 2))
		return drop(pkt, AW_NET_DROP_ARP_BAD);
	sip = rdip(a + 14);
	tip = rdip(a + 24);
	/* learn only plausible on-link senders with a unicast hardware address */
	learn = unicast_mac(a + 8) && sip != 0 && peer_ip_ok(nif, sip) &&
		aw_net_next_hop(nif, sip) == sip;
	if (tip != nif->ip) {
		/* not for us; refresh what we already know (gratuitous ARP) */
		uint8_t old[6];

		if (learn && arp && aw_net_arp_lookup(arp, sip, now, old) == 0)
			aw_net_arp_update(arp, sip, a + 8, now);
		return drop(pkt, AW_NET_DROP_ARP_NOT_US);
	}
	if (learn && arp)
		aw_net_arp_update(arp, sip, a + 8, now);
	memcpy(pkt->src_mac, buf + 6, 6);
	if (op == 2)
		return AW_NET_KIND_ARP_LEARNT;
	if (!unicast_mac(a + 8))
		return drop(pkt, AW_NET_DROP_ARP_BAD);

	/* turn the request into the reply, in place */
	memcpy(buf, a + 8, 6); /* Ethernet destination: the asker */
	memcpy(buf + 6, nif->mac, 6);
	wr16(a + 6, 2);
	memcpy(a + 18, a + 8, 6); /* target MAC/IP: the asker */
	wrip(a + 24, sip);
	memcpy(a + 8, nif->mac, 6); /* sender MAC/IP: us */
	wrip(a + 14, nif->ip);
	pkt->reply_len = AW_NET_ARP_FRAME;
	return AW_NET_KIND_ARP_REPLY;
}

static enum aw_net_kind icmp_input(const struct aw_net_if *nif, uint8_t *buf, uint8_t *ip,
				   size_t ip_total, uint32_t rx_flags, struct aw_net_pkt *pkt)
{
	uint8_t *icmp = ip + AW_NET_IP_LEN;
	size_t icmp_len = ip_total - AW_NET_IP_LEN;
	uint16_t c;

	if (icmp_len < 8 || icmp[0] != 8 || icmp[1] != 0)
		return drop(pkt, AW_NET_DROP_ICMP);
	if (rx_flags & AW_NET_RX_L4_CSUM_BAD)
		return drop(pkt, AW_NET_DROP_ICMP_CSUM);
	if (aw_net_csum_fold(aw_net_csum_add(0, icmp, icmp_len)) != 0)
		return drop(pkt, AW_NET_DROP_ICMP_CSUM);

	/* echo reply in place: swap addresses, type 0, fresh checksums */
	memcpy(buf, buf + 6, 6);
	memcpy(buf + 6, nif->mac, 6);
	wrip(ip + 16, pkt->src_ip);
	wrip(ip + 12, nif->ip);
	ip[8] = nif->ttl ? nif->ttl : 64;
	wr16(ip + 6, 0); /* no DF: the reply is exactly as large as the request */
	wr16(ip + 10, 0);
	wr16(ip + 10, aw_net_csum_fold(aw_net_csum_add(0, ip, AW_NET_IP_LEN)));
	icmp[0] = 0;
	wr16(icmp + 2, 0);
	c = aw_net_csum_fold(aw_net_csum_add(0, icmp, icmp_len));
	wr16(icmp + 2, c);
	pkt->reply_len = (uint16_t)(AW_NET_ETH_LEN + ip_total);
	return AW_NET_KIND_ICMP_REPLY;
}

enum aw_net_kind aw_net_input(const struct aw_net_if *nif, struct aw_net_arp *arp, uint64_t now,
			      uint8_t *buf, size_t len, uint32_t rx_flags, struct aw_net_pkt *pkt)
{
	uint8_t *ip, *udp;
	size_t total;
	uint16_t type, frag, udp_len, c;

	if (len < AW_NET_ETH_LEN)
		return drop(pkt, AW_NET_DROP_TRUNCATED);
	type = rd16(buf + 12);
	if (memcmp(buf, nif->mac, 6) != 0 &&
	    !(type == AW_NET_ETHER_ARP && memcmp(buf, bcast_mac, 6) == 0))
		return drop(pkt, AW_NET_DROP_DST_MAC);
	if (type == AW_NET_ETHER_ARP)
		return arp_input(nif, arp, now, buf, len, pkt);
	if (type != AW_NET_ETHER_IPV4)
		return drop(pkt, AW_NET_DROP_ETHERTYPE);

	/* IPv4 header */
	if (len < AW_NET_ETH_LEN + AW_NET_IP_LEN)
		return drop(pkt, AW_NET_DROP_TRUNCATED);
	ip = buf + AW_NET_ETH_LEN;
	if ((ip[0] >> 4) != 4 || (ip[0] & 0xf) < 5)
		return drop(pkt, AW_NET_DROP_IP_VERSION);
	if ((ip[0] & 0xf) != 5)
		return drop(pkt, AW_NET_DROP_IP_OPTIONS);
	total = rd16(ip + 2);
	if (total < AW_NET_IP_LEN || total > len - AW_NET_ETH_LEN)
		return drop(pkt, AW_NET_DROP_IP_LEN);
	if (rx_flags & AW_NET_RX_IP_CSUM_BAD)
		return drop(pkt, AW_NET_DROP_IP_CSUM);
	if (!(rx_flags & AW_NET_RX_IP_CSUM_GOOD) &&
	    aw_net_csum_fold(aw_net_csum_add(0, ip, AW_NET_IP_LEN)) != 0)
		return drop(pkt, AW_NET_DROP_IP_CSUM);
	frag = rd16(ip + 6);
	if (frag & 0x3fff) /* MF or a fragment offset */
		return drop(pkt, AW_NET_DROP_IP_FRAG);
	if (rdip(ip + 16) != nif->ip)
		return drop(pkt, AW_NET_DROP_IP_DST);
	pkt->src_ip = rdip(ip + 12);
	if (!peer_ip_ok(nif, pkt->src_ip))
		return drop(pkt, AW_NET_DROP_IP_SRC);
	memcpy(pkt->src_mac, buf + 6, 6);
	if (ip[9] == 1)
		return icmp_input(nif, buf, ip, total, rx_flags, pkt);
	if (ip[9] != 17)
		return drop(pkt, AW_NET_DROP_IP_PROTO);

	/* UDP */
	if (total < AW_NET_IP_LEN + AW_NET_UDP_LEN)
		return drop(pkt, AW_NET_DROP_UDP_LEN);
	udp = ip + AW_NET_IP_LEN;
	udp_len = rd16(udp + 4);
	if (udp_len != total - AW_NET_IP_LEN)
		return drop(pkt, AW_NET_DROP_UDP_LEN);
	if (rd16(udp + 2) != nif->udp_port)
		return drop(pkt, AW_NET_DROP_UDP_PORT);
	c = rd16(udp + 6);
	if (c != 0 && !(rx_flags & AW_NET_RX_L4_CSUM_GOOD)) {
		if (rx_flags & AW_NET_RX_L4_CSUM_BAD)
			return drop(pkt, AW_NET_DROP_UDP_CSUM);
		/* the sum over pseudo-header and whole segment, checksum included, is 0 */
		if (aw_net_csum_fold(aw_net_csum_add(pseudo_sum(pkt->src_ip, nif->ip, udp_len), udp,
						     udp_len)) != 0)
			return drop(pkt, AW_NET_DROP_UDP_CSUM);
	}
	pkt->src_port = rd16(udp);
	pkt->payload_off = (uint16_t)(AW_NET_HDRS_LEN);
	pkt->payload_len = (uint16_t)(udp_len - AW_NET_UDP_LEN);
	return AW_NET_KIND_UDP;
}

/* --- output ----------------------------------------------------------------- */

int aw_net_udp_build(const struct aw_net_if *nif, const uint8_t dst_mac[6], uint32_t dst_ip,
		     uint16_t dst_port, uint16_t ip_id, uint8_t *buf, size_t payload_len,
		     uint32_t tx_flags)
{
	uint8_t *ip = buf + AW_NET_ETH_LEN, *udp = ip + AW_NET_IP_LEN;
	size_t udp_len = AW_NET_UDP_LEN + payload_len;

	if (payload_len > 65535 - AW_NET_IP_LEN - AW_NET_UDP_LEN)
		return -EMSGSIZE;
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, nif->mac, 6);
	wr16(buf + 12, AW_NET_ETHER_IPV4);

	ip[0] = 0x45;
	ip[1] = 0;
	wr16(ip + 2, (uint16_t)(AW_NET_IP_LEN + udp_len));
	wr16(ip + 4, ip_id);
	wr16(ip + 6, 0x4000); /* DF: we size datagrams to the MTU ourselves */
	ip[8] = nif->ttl ? nif->ttl : 64;
	ip[9] = 17;
	wr16(ip + 10, 0);
	wrip(ip + 12, nif->ip);
	wrip(ip + 16, dst_ip);
	if (!(tx_flags & AW_NET_TX_IP_CSUM_OFFLOAD))
		wr16(ip + 10, aw_net_csum_fold(aw_net_csum_add(0, ip, AW_NET_IP_LEN)));

	wr16(udp, nif->udp_port);
	wr16(udp + 2, dst_port);
	wr16(udp + 4, (uint16_t)udp_len);
	if (tx_flags & AW_NET_TX_UDP_CSUM_NONE)
		wr16(udp + 6, 0);
	else if (tx_flags & AW_NET_TX_UDP_CSUM_OFFLOAD) /* NIC adds the segment to this */
		wr16(udp + 6, (uint16_t)~aw_net_csum_fold(pseudo_sum(nif->ip, dst_ip, udp_len)));
	else
		wr16(udp + 6, aw_net_udp_csum(nif->ip, dst_ip, udp, udp_len));
	return (int)(AW_NET_HDRS_LEN + payload_len);
}

int aw_net_arp_request(const struct aw_net_if *nif, uint32_t target_ip, uint8_t *buf)
{
	uint8_t *a = buf + AW_NET_ETH_LEN;

	memcpy(buf, bcast_mac, 6);
	memcpy(buf + 6, nif->mac, 6);
	wr16(buf + 12, AW_NET_ETHER_ARP);
	wr16(a, 1);
	wr16(a + 2, AW_NET_ETHER_IPV4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, 1);
	memcpy(a + 8, nif->mac, 6);
	wrip(a + 14, nif->ip);
	memset(a + 18, 0, 6);
	wrip(a + 24, target_ip);
	return AW_NET_ARP_FRAME;
}

const char *aw_net_drop_name(enum aw_net_drop d)
{
	static const char *const names[AW_NET_DROP__COUNT] = {
		[AW_NET_DROP_TRUNCATED] = "truncated",	 [AW_NET_DROP_DST_MAC] = "dst_mac",
		[AW_NET_DROP_ETHERTYPE] = "ethertype",	 [AW_NET_DROP_ARP_BAD] = "arp_bad",
		[AW_NET_DROP_ARP_NOT_US] = "arp_not_us", [AW_NET_DROP_IP_VERSION] = "ip_version",
		[AW_NET_DROP_IP_OPTIONS] = "ip_options", [AW_NET_DROP_IP_LEN] = "ip_len",
		[AW_NET_DROP_IP_CSUM] = "ip_csum",	 [AW_NET_DROP_IP_FRAG] = "ip_frag",
		[AW_NET_DROP_IP_DST] = "ip_dst",	 [AW_NET_DROP_IP_SRC] = "ip_src",
		[AW_NET_DROP_IP_PROTO] = "ip_proto",	 [AW_NET_DROP_ICMP] = "icmp",
		[AW_NET_DROP_ICMP_CSUM] = "icmp_csum",	 [AW_NET_DROP_UDP_LEN] = "udp_len",
		[AW_NET_DROP_UDP_CSUM] = "udp_csum",	 [AW_NET_DROP_UDP_PORT] = "udp_port",
	};

	if ((unsigned)d >= AW_NET_DROP__COUNT)
		return "unknown";
	return names[d];
}

int aw_net_parse_ip(const char *s, uint32_t *ret_ip)
{
	unsigned a[4];
	uint8_t b[4];
	char tail;
	uint32_t v;

	if (sscanf(s, "%3u.%3u.%3u.%3u%c", &a[0], &a[1], &a[2], &a[3], &tail) != 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		if (a[i] > 255)
			return -EINVAL;
		b[i] = (uint8_t)a[i];
	}
	memcpy(&v, b, 4);
	*ret_ip = v;
	return 0;
}
