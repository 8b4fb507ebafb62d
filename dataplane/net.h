/* net.h — Ethernet, ARP, IPv4, ICMP echo and UDP on raw bytes.
 *
 * The packet layer of the dataplane, with no DPDK dependency so that it is
 * unit-tested and fuzzed on plain byte buffers. The RX loop hands each frame
 * to aw_net_input(), which classifies it (ARP, ICMP echo request, UDP to our
 * port) or names the reason it must be dropped; answers (ARP reply, ICMP echo
 * reply) are written in place into the same frame, and UDP replies get their
 * headers from aw_net_udp_build(). Everything a frame may claim is checked
 * against the bytes actually received.
 *
 * Frames handled (all multi-byte fields big-endian on the wire):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    6 Ethernet destination MAC (ours, or broadcast for ARP)
 *        6    6 Ethernet source MAC
 *       12    2 ethertype: 0x0806 ARP, 0x0800 IPv4 (VLAN tags are dropped)
 *   ARP (14, 28 bytes): htype 1, ptype 0x0800, hlen 6, plen 4, op 1|2,
 *        sender MAC, sender IP, target MAC, target IP
 *   IPv4 (14, 20 bytes; options are dropped): version/IHL 0x45, TOS,
 *        total length, id, flags/fragment offset (MF or offset != 0: dropped),
 *        TTL, protocol (1 ICMP, 17 UDP), header checksum, source, destination
 *   ICMP (34): type 8 echo request -> type 0 reply, code 0, checksum,
 *        identifier, sequence, data (checksum over the whole ICMP message)
 *   UDP (34, 8 bytes): source port, destination port, length (header +
 *        payload), checksum over the pseudo-header (0 = none sent)
 *
 * Bytes after the IPv4 total length (Ethernet padding) are ignored.
 */
#ifndef AW_NET_H
#define AW_NET_H

#include <stddef.h>
#include <stdint.h>

#define AW_NET_ETH_LEN	  14
#define AW_NET_ARP_LEN	  28
#define AW_NET_IP_LEN	  20
#define AW_NET_UDP_LEN	  8
#define AW_NET_HDRS_LEN	  (AW_NET_ETH_LEN + AW_NET_IP_LEN + AW_NET_UDP_LEN) /* 42 */
#define AW_NET_ARP_FRAME  (AW_NET_ETH_LEN + AW_NET_ARP_LEN)		    /* 42 */
#define AW_NET_ETH_MIN	  60 /* minimum frame without FCS: shorter ones are padded */
#define AW_NET_ETHER_IPV4 0x0800
#define AW_NET_ETHER_ARP  0x0806

/* Why a frame was not accepted. Counted per lcore; names in aw_net_drop_name(). */
enum aw_net_drop {
	AW_NET_DROP_TRUNCATED = 0, /* shorter than the headers it announces */
	AW_NET_DROP_DST_MAC,	   /* not our MAC (nor broadcast for ARP) */
	AW_NET_DROP_ETHERTYPE,	   /* neither IPv4 nor ARP (VLAN, IPv6, ...) */
	AW_NET_DROP_ARP_BAD,	   /* ARP that is not Ethernet/IPv4 or has an unknown op */
	AW_NET_DROP_ARP_NOT_US,	   /* ARP request for another address */
	AW_NET_DROP_IP_VERSION,	   /* version != 4 or IHL < 5 */
	AW_NET_DROP_IP_OPTIONS,	   /* IHL > 5 */
	AW_NET_DROP_IP_LEN,	   /* total length < 20 or beyond the frame */
	AW_NET_DROP_IP_CSUM,	   /* bad header checksum */
	AW_NET_DROP_IP_FRAG,	   /* a fragment (MF set or offset != 0) */
	AW_NET_DROP_IP_DST,	   /* not our IPv4 address */
	AW_NET_DROP_IP_SRC,	   /* source is 0, broadcast, multicast or ours */
	AW_NET_DROP_IP_PROTO,	   /* neither ICMP nor UDP */
	AW_NET_DROP_ICMP,	   /* ICMP other than echo request, or too short */
	AW_NET_DROP_ICMP_CSUM,	   /* bad ICMP checksum */
	AW_NET_DROP_UDP_LEN,	   /* UDP length < 8 or != IP payload length */
	AW_NET_DROP_UDP_CSUM,	   /* bad UDP checksum */
	AW_NET_DROP_UDP_PORT,	   /* not our UDP port */
	AW_NET_DROP__COUNT
};

/* What aw_net_input() found. */
enum aw_net_kind {
	AW_NET_KIND_DROP = 0,	/* see aw_net_pkt.drop */
	AW_NET_KIND_ARP_REPLY,	/* an ARP request for us: the frame now holds the reply */
	AW_NET_KIND_ARP_LEARNT, /* an ARP reply (or gratuitous ARP): cache updated, free it */
	AW_NET_KIND_ICMP_REPLY, /* an echo request: the frame now holds the echo reply */
	AW_NET_KIND_UDP,	/* a datagram to our port: see aw_net_pkt */
};

/* Receive-checksum hints from the NIC (translated from the mbuf's flags). */
#define AW_NET_RX_IP_CSUM_GOOD (1u << 0) /* the NIC verified the IPv4 header checksum */
#define AW_NET_RX_IP_CSUM_BAD  (1u << 1)
#define AW_NET_RX_L4_CSUM_GOOD (1u << 2) /* the NIC verified the UDP/ICMP checksum */
#define AW_NET_RX_L4_CSUM_BAD  (1u << 3)

/* Transmit flags for aw_net_udp_build(). */
#define AW_NET_TX_IP_CSUM_OFFLOAD  (1u << 0) /* leave the IPv4 checksum 0 for the NIC */
#define AW_NET_TX_UDP_CSUM_OFFLOAD (1u << 1) /* write the pseudo-header sum, NIC finishes */
#define AW_NET_TX_UDP_CSUM_NONE	   (1u << 2) /* send UDP checksum 0 (allowed on IPv4) */

/* One interface as the packet layer sees it. Addresses in network byte order. */
struct aw_net_if {
	uint8_t mac[6];	   /* our MAC */
	uint32_t ip;	   /* our IPv4 address (network order) */
	uint32_t netmask;  /* subnet mask (network order) */
	uint32_t gateway;  /* next hop for off-subnet peers, 0 = none (network order) */
	uint16_t udp_port; /* our UDP port (host order) */
	uint8_t ttl;	   /* TTL of frames we originate (64 by default) */
};

/* A classified frame (offsets into the frame; addresses network order). */
struct aw_net_pkt {
	enum aw_net_drop drop; /* valid when aw_net_input() returned AW_NET_KIND_DROP */
	uint8_t src_mac[6];    /* Ethernet source */
	uint32_t src_ip;       /* IPv4 source (UDP/ICMP) */
	uint16_t src_port;     /* UDP source port (host order) */
	uint16_t payload_off;  /* UDP payload offset in the frame */
	uint16_t payload_len;  /* UDP payload length */
	uint16_t reply_len;    /* ARP/ICMP: length of the reply now in the frame */
};

/* ARP cache: IPv4 -> MAC, a small open-addressed table with ageing, one per
 * lcore (no locking). Entries are learnt from ARP traffic addressed to us and
 * refreshed by it; times are whatever monotonic unit the caller uses. */
#define AW_NET_ARP_SLOTS 256 /* power of two */
struct aw_net_arp_entry {
	uint32_t ip;	  /* 0 = empty slot */
	uint8_t mac[6];	  /* hardware address */
	uint64_t updated; /* caller's clock when last confirmed */
};
struct aw_net_arp {
	struct aw_net_arp_entry e[AW_NET_ARP_SLOTS];
	uint64_t ttl; /* entries older than this (caller's unit) are stale; 0 = never */
	uint32_t n;   /* entries in use */
};

/* Classify the frame in buf[0..len) received on 'nif' and act on it:
 * an ARP request for our address or an ICMP echo request is turned into its
 * reply in place (buf must be writable; reply_len set, always <= len); ARP
 * traffic for us updates 'arp' (may be NULL) at time 'now'; a UDP datagram
 * to our port fills the UDP fields of *pkt. 'rx_flags' are AW_NET_RX_* hints.
 * Returns the kind; on AW_NET_KIND_DROP pkt->drop says why. Never reads
 * outside buf[0..len). */
enum aw_net_kind aw_net_input(const struct aw_net_if *nif, struct aw_net_arp *arp, uint64_t now,
			      uint8_t *buf, size_t len, uint32_t rx_flags, struct aw_net_pkt *pkt);

/* Write Ethernet + IPv4 + UDP headers (AW_NET_HDRS_LEN bytes) into 'buf' for
 * a datagram from 'nif' to dst_ip:dst_port via dst_mac carrying 'payload_len'
 * bytes that already sit at buf + AW_NET_HDRS_LEN (read for the software UDP
 * checksum). 'ip_id' is the IPv4 identification. 'tx_flags' are AW_NET_TX_*.
 * Returns the frame length, or -EMSGSIZE when the datagram would exceed the
 * 65535-byte IPv4 limit. */
int aw_net_udp_build(const struct aw_net_if *nif, const uint8_t dst_mac[6], uint32_t dst_ip,
		     uint16_t dst_port, uint16_t ip_id, uint8_t *buf, size_t payload_len,
		     uint32_t tx_flags);

/* Write an ARP request for 'target_ip' from 'nif' into buf (AW_NET_ARP_FRAME
 * bytes). Returns the frame length. */
int aw_net_arp_request(const struct aw_net_if *nif, uint32_t target_ip, uint8_t *buf);

/* The next hop for 'ip' seen from 'nif': ip itself on our subnet, else the
 * gateway (0 when there is none). */
uint32_t aw_net_next_hop(const struct aw_net_if *nif, uint32_t ip);

/* ARP cache. init clears it with the given ttl. */
void aw_net_arp_init(struct aw_net_arp *arp, uint64_t ttl);
/* Insert or refresh ip -> mac. Returns 0, or -ENOSPC when the table is full of
 * fresh entries (a stale one is replaced first). */
int aw_net_arp_update(struct aw_net_arp *arp, uint32_t ip, const uint8_t mac[6], uint64_t now);
/* Look up ip; on a fresh hit copy the MAC to ret_mac and return 0, else -ENOENT. */
int aw_net_arp_lookup(const struct aw_net_arp *arp, uint32_t ip, uint64_t now, uint8_t ret_mac[6]);

/* Internet checksum helpers (RFC 1071). aw_net_csum_add() sums 'len' bytes
 * into a 32-bit accumulator starting at 'sum'; aw_net_csum_fold() folds and
 * complements it into the 16-bit value to store (as host-order value of the
 * big-endian field). */
uint32_t aw_net_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t aw_net_csum_fold(uint32_t sum);

/* The UDP checksum of the datagram at udp[0..udp_len) (header included, its
 * checksum field taken as zero) between src and dst (network order), as the
 * value to store (0 is sent as 0xffff). */
uint16_t aw_net_udp_csum(uint32_t src, uint32_t dst, const uint8_t *udp, size_t udp_len);

/* A short stable name for a drop reason ("ip_csum", ...), for telemetry. */
const char *aw_net_drop_name(enum aw_net_drop d);

/* Parse "a.b.c.d" into network order. Returns 0 or -EINVAL. */
int aw_net_parse_ip(const char *s, uint32_t *ret_ip);

#endif
