/* fuzz-net.c — libFuzzer target for dataplane/net.c: arbitrary bytes as a
 * received frame (the first input byte picks the NIC checksum hints). Checks
 * that what aw_net_input() reports stays inside the frame, that replies it
 * writes in place are well formed, and that a UDP payload it accepts survives
 * a build -> input round trip. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

static struct aw_net_arp arp;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_net_if nif = {
		.mac = {0x02, 0, 0, 0, 0, 0x01},
		.ip = 0x0200630a, /* 10.99.0.2 in network order on little-endian hosts */
		.netmask = 0x00ffffff,
		.gateway = 0xfe00630a,
		.udp_port = 7000,
		.ttl = 64,
	};
	struct aw_net_pkt pkt;
	enum aw_net_kind k;
	uint8_t *buf;
	uint32_t flags;

	if (size < 1)
		return 0;
	flags = data[0] & 0xf;
	data++;
	size--;
	buf = malloc(size ? size : 1); /* exact size: ASan sees any overread */
	memcpy(buf, data, size);
	k = aw_net_input(&nif, &arp, size, buf, size, flags, &pkt);
	switch (k) {
	case AW_NET_KIND_DROP:
		if ((unsigned)pkt.drop >= AW_NET_DROP__COUNT)
			abort();
		break;
	case AW_NET_KIND_ARP_REPLY:
	case AW_NET_KIND_ICMP_REPLY:
		if (pkt.reply_len > size || memcmp(buf + 6, nif.mac, 6) != 0)
			abort();
		break;
	case AW_NET_KIND_ARP_LEARNT:
		break;
	case AW_NET_KIND_UDP: {
		uint8_t *out;
		int n;

		if ((size_t)pkt.payload_off + pkt.payload_len > size)
			abort();
		/* answer it, then parse the answer from the client's side */
		out = malloc(AW_NET_HDRS_LEN + pkt.payload_len + 1);
		memcpy(out + AW_NET_HDRS_LEN, buf + pkt.payload_off, pkt.payload_len);
		n = aw_net_udp_build(&nif, pkt.src_mac, pkt.src_ip, pkt.src_port, 1, out,
				     pkt.payload_len, 0);
		if (n != AW_NET_HDRS_LEN + pkt.payload_len)
			abort();
		struct aw_net_if peer = nif;
		memcpy(peer.mac, pkt.src_mac, 6);
		peer.ip = pkt.src_ip;
		peer.udp_port = pkt.src_port;
		struct aw_net_pkt back;
		/* the peer may be one we cannot talk back to on-link (e.g. a
		 * multicast MAC): only a clean accept is compared */
		if (aw_net_input(&peer, NULL, 0, out, (size_t)n, 0, &back) == AW_NET_KIND_UDP &&
		    (back.payload_len != pkt.payload_len ||
		     memcmp(out + back.payload_off, buf + pkt.payload_off, pkt.payload_len) != 0))
			abort();
		free(out);
		break;
	}
	default:
		abort();
	}
	free(buf);
	return 0;
}
