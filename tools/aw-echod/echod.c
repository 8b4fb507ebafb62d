/* echod.c — aw-echod's server loop (see echod.h).
 *
 * One thread, one socket: recvmmsg a burst, handle each datagram through
 * libaw_proto (header check, retransmit store, reassembly), queue the
 * replies with their destination, sendmmsg the burst. The order of checks
 * per request datagram is the one proto.h prescribes for any server.
 */
#include "echod.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define BURST	  32
#define MAX_DGRAM 65536
#define TXQ	  256

struct txent {
	struct sockaddr_storage to;
	socklen_t tolen;
	uint32_t len;
	uint8_t *buf;
};

struct aw_echod {
	int fd;
	struct aw_echod_opts o;
	size_t max_reply; /* payload bytes per reply datagram */
	struct aw_proto_reasm *reasm;
	struct aw_proto_rtx *rtx;
	uint8_t *rxbuf;
	uint8_t *txbuf;
	struct txent txq[TXQ];
	unsigned n_txq;
	uint64_t last_expire;
	/* counters (STATS) */
	uint64_t rx_dgrams, tx_dgrams, rx_bad[AW_PROTO_FAULT_MAX_], pings, stats_req, refused,
		resumes, resent, acks, cancels, overloaded, tx_drops;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int aw_echod_open(const char *addr, const char *port, const struct aw_echod_opts *o,
		  struct aw_echod **ret)
{
	struct addrinfo hints, *ai = NULL;
	struct aw_echod *d;
	int rc, sz = 8 << 20;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = -1;
	if (o)
		d->o = *o;
	if (d->o.mtu == 0)
		d->o.mtu = 1500;
	if (d->o.mtu < 28 + AW_PROTO_HDR_LEN + AW_PROTO_SUMMARY_LEN + 16 || d->o.mtu > 65535) {
		free(d);
		return -EINVAL;
	}
	d->max_reply = d->o.mtu - 28 - AW_PROTO_HDR_LEN;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(addr, port, &hints, &ai);
	if (rc != 0) {
		free(d);
		return -EADDRNOTAVAIL;
	}
	d->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->fd < 0 || bind(d->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		rc = -errno;
		freeaddrinfo(ai);
		aw_echod_close(d);
		return rc;
	}
	freeaddrinfo(ai);
	(void)setsockopt(d->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	(void)setsockopt(d->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	d->reasm = aw_proto_reasm_new(NULL);
	d->rtx = aw_proto_rtx_new(NULL);
	d->rxbuf = malloc((size_t)BURST * MAX_DGRAM);
	d->txbuf = malloc((size_t)TXQ * MAX_DGRAM);
	if (!d->reasm || !d->rtx || !d->rxbuf || !d->txbuf) {
		aw_echod_close(d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

uint16_t aw_echod_port(const struct aw_echod *d)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	if (getsockname(d->fd, (struct sockaddr *)&ss, &l) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void aw_echod_close(struct aw_echod *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	aw_proto_reasm_free(d->reasm);
	aw_proto_rtx_free(d->rtx);
	free(d->rxbuf);
	free(d->txbuf);
	free(d);
}

size_t aw_echod_stats_text(const struct aw_echod *d, char *buf, size_t cap)
{
	struct aw_proto_reasm_stats rs;
	struct aw_proto_rtx_stats xs;
	size_t n = 0;
	unsigned f;

#define PUT(name, v)                                                                               \
	do {                                                                                       \
		int k_ = snprintf(buf + n, cap > n ? cap - n : 0, "%s %llu\n", name,               \
				  (unsigned long long)(v));                                        \
		if (k_ > 0)                                                                        \
			n += (size_t)k_;                                                           \
		if (n > cap)                                                                       \
			n = cap;                                                                   \
	} while (0)
	aw_proto_reasm_get_stats(d->reasm, &rs);
	aw_proto_rtx_get_stats(d->rtx, &xs);
	PUT("echod.server_id", d->o.server_id);
	PUT("echod.rx_dgrams", d->rx_dgrams);
	PUT("echod.tx_dgrams", d->tx_dgrams);
	PUT("echod.tx_drops", d->tx_drops);
	PUT("echod.pings", d->pings);
	PUT("echod.stats", d->stats_req);
	PUT("echod.refused_unsupported", d->refused);
	PUT("echod.resumes", d->resumes);
	PUT("echod.resent_dgrams", d->resent);
	PUT("echod.acks", d->acks);
	PUT("echod.cancels", d->cancels);
	PUT("echod.overloaded", d->overloaded);
	for (f = 1; f < AW_PROTO_FAULT_MAX_; f++) {
		char name[64];

		snprintf(name, sizeof(name), "echod.rx_bad.%s", aw_proto_fault_name(f));
		PUT(name, d->rx_bad[f]);
	}
	PUT("reasm.completed", rs.completed);
	PUT("reasm.duplicates", rs.duplicates);
	PUT("reasm.expired", rs.expired);
	PUT("reasm.refused", rs.refused);
	PUT("reasm.entries", rs.entries);
	PUT("reasm.bytes", rs.bytes);
	PUT("rtx.opened", xs.opened);
	PUT("rtx.evicted", xs.evicted);
	PUT("rtx.trimmed", xs.trimmed);
	PUT("rtx.expired", xs.expired);
	PUT("rtx.acked", xs.acked);
	PUT("rtx.entries", xs.entries);
	PUT("rtx.bytes", xs.bytes);
#undef PUT
	return n;
}

/* ---- transmit ------------------------------------------------------------------------------ */

static void flush(struct aw_echod *d)
{
	struct mmsghdr mm[TXQ];
	struct iovec iov[TXQ];
	unsigned i, done = 0;

	for (i = 0; i < d->n_txq; i++) {
		memset(&mm[i], 0, sizeof(mm[i]));
		iov[i].iov_base = d->txq[i].buf;
		iov[i].iov_len = d->txq[i].len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &d->txq[i].to;
		mm[i].msg_hdr.msg_namelen = d->txq[i].tolen;
	}
	while (done < d->n_txq) {
		int r = sendmmsg(d->fd, mm + done, d->n_txq - done, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = {.fd = d->fd, .events = POLLOUT};

				(void)poll(&p, 1, 10);
				continue;
			}
			/* unreachable peer and the like: drop this one */
			d->tx_drops++;
			done++;
			continue;
		}
		done += (unsigned)r;
		d->tx_dgrams += (unsigned)r;
	}
	d->n_txq = 0;
}

/* A transmit buffer for a reply to 'to'. */
static struct txent *tx_get(struct aw_echod *d, const struct sockaddr_storage *to, socklen_t tolen)
{
	struct txent *t;

	if (d->n_txq == TXQ)
		flush(d);
	t = &d->txq[d->n_txq];
	t->buf = d->txbuf + (size_t)d->n_txq * MAX_DGRAM;
	memcpy(&t->to, to, tolen);
	t->tolen = tolen;
	return t;
}

/* Build a reply datagram of 'type' for request 'rq' with payload, queue it,
 * and store it in the retransmit store when 'store'. */
static void reply(struct aw_echod *d, const struct sockaddr_storage *to, socklen_t tolen,
		  const struct aw_proto_peer *peer, const struct aw_proto_hdr *rq, uint8_t type,
		  uint16_t flags, uint32_t seq, const void *payload, size_t len, int store,
		  int terminal)
{
	struct txent *t = tx_get(d, to, tolen);
	struct aw_proto_hdr h;
	int n;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.flags = flags;
	h.server_id = d->o.server_id;
	h.request_id = rq->request_id;
	h.session_id = rq->session_id;
	h.seq = seq;
	n = aw_proto_build(t->buf, MAX_DGRAM, &h, payload, len);
	if (n < 0)
		return;
	t->len = (uint32_t)n;
	d->n_txq++;
	if (store)
		(void)aw_proto_rtx_append(d->rtx, peer, rq->request_id, seq, t->buf, (size_t)n,
					  terminal, now_us());
}

static void reply_error(struct aw_echod *d, const struct sockaddr_storage *to, socklen_t tolen,
			const struct aw_proto_peer *peer, const struct aw_proto_hdr *rq,
			uint16_t code, uint16_t flags, uint32_t retry_us, const char *msg,
			int store)
{
	uint8_t p[AW_PROTO_ERROR_HDR_LEN + AW_PROTO_ERROR_MAX_MSG];
	int n = aw_proto_error_build(p, sizeof(p), code, retry_us, msg);

	reply(d, to, tolen, peer, rq, AW_PROTO_ERROR, flags, 0, p, (size_t)n, store, 1);
}

/* Stream 'body' as DATA chunks then END (stored for RESUME when 'store'). */
static void stream(struct aw_echod *d, const struct sockaddr_storage *to, socklen_t tolen,
		   const struct aw_proto_peer *peer, const struct aw_proto_hdr *rq,
		   const uint8_t *body, size_t len, int store)
{
	static uint8_t chunk[MAX_DGRAM];
	size_t per = d->max_reply - AW_PROTO_DATA_HDR_LEN, off;
	struct aw_proto_summary s;
	uint8_t sum[AW_PROTO_SUMMARY_LEN];
	uint32_t seq = 0;
	int n;

	for (off = 0; off < len; off += per) {
		size_t k = len - off < per ? len - off : per;

		n = aw_proto_data_build(chunk, sizeof(chunk), 0, body + off, k);
		reply(d, to, tolen, peer, rq, AW_PROTO_DATA, 0, seq++, chunk, (size_t)n, store, 0);
	}
	memset(&s, 0, sizeof(s));
	s.finish = AW_PROTO_FINISH_STOP;
	s.n_data = seq;
	s.data_bytes = len;
	n = aw_proto_summary_build(sum, sizeof(sum), &s, NULL);
	reply(d, to, tolen, peer, rq, AW_PROTO_END, 0, seq, sum, (size_t)n, store, 1);
}

/* Resend the stored replies of a known request from 'from'. */
static void resend(struct aw_echod *d, const struct sockaddr_storage *to, socklen_t tolen,
		   const struct aw_proto_peer *peer, const struct aw_proto_hdr *rq, uint32_t from)
{
	uint32_t first, next, s;
	int st = aw_proto_rtx_state(d->rtx, peer, rq->request_id, &first, &next);

	if (st < 0 || (from < first && first != next)) {
		reply_error(d, to, tolen, peer, rq, AW_PROTO_ERR_UNKNOWN_REQUEST,
			    AW_PROTO_F_CONTROL, 0,
			    st < 0 ? "request not held" : "those replies are gone", 0);
		return;
	}
	if (from >= next) {
		struct aw_proto_progress p = {next, st == AW_PROTO_RTX_QUEUED ? 1u : 2u};
		uint8_t b[AW_PROTO_PROGRESS_LEN];

		aw_proto_progress_build(b, sizeof(b), &p);
		reply(d, to, tolen, peer, rq, AW_PROTO_PROGRESS, 0, next, b, sizeof(b), 0, 0);
		return;
	}
	for (s = from; s < next; s++) {
		const void *dg;
		int n = aw_proto_rtx_get(d->rtx, peer, rq->request_id, s, &dg);
		struct txent *t;

		if (n < 0)
			break;
		t = tx_get(d, to, tolen);
		memcpy(t->buf, dg, (size_t)n);
		t->len = (uint32_t)n;
		d->n_txq++;
		d->resent++;
	}
}

static void handle(struct aw_echod *d, uint8_t *dg, size_t len, const struct sockaddr_storage *from,
		   socklen_t fromlen)
{
	struct aw_proto_hdr h;
	struct aw_proto_err e;
	struct aw_proto_peer peer;
	struct aw_proto_msg m;
	uint64_t now = now_us();
	int rc;

	if (aw_proto_peer_from_sockaddr(from, fromlen, &peer) < 0)
		return;
	rc = aw_proto_hdr_parse(dg, len, 0, &h, &e);
	if (rc < 0) {
		d->rx_bad[e.fault]++;
		/* answer only what names a request: a parsed request header, or a
		 * version we do not speak (its request id is at the same place) */
		if (e.fault == AW_PROTO_FAULT_VERSION ||
		    (e.code && len >= AW_PROTO_HDR_LEN && aw_proto_type_kind(dg[3]) == 1)) {
			struct aw_proto_hdr rq;

			memset(&rq, 0, sizeof(rq));
			for (int k = 7; k >= 0; k--) {
				rq.request_id = rq.request_id << 8 | dg[8 + k];
				rq.session_id = rq.session_id << 8 | dg[16 + k];
			}
			reply_error(d, from, fromlen, &peer, &rq, e.code, 0, 0, e.err.msg, 0);
		}
		return;
	}
	if (aw_proto_type_kind(h.type) != 1) {
		d->rx_bad[AW_PROTO_FAULT_TYPE]++;
		return;
	}
	switch (h.type) {
	case AW_PROTO_RESUME:
		d->resumes++;
		resend(d, from, fromlen, &peer, &h, h.seq);
		return;
	case AW_PROTO_ACK:
		d->acks++;
		(void)aw_proto_rtx_drop(d->rtx, &peer, h.request_id);
		return;
	case AW_PROTO_CANCEL:
		d->cancels++;
		/* everything here finishes at once: nothing left to cancel */
		if (aw_proto_rtx_state(d->rtx, &peer, h.request_id, NULL, NULL) < 0)
			reply_error(d, from, fromlen, &peer, &h, AW_PROTO_ERR_UNKNOWN_REQUEST,
				    AW_PROTO_F_CONTROL, 0, "request not held", 0);
		return;
	case AW_PROTO_PING:
		break;
	default:
		/* a retransmission of a request we hold: resend, never run twice */
		if (aw_proto_rtx_state(d->rtx, &peer, h.request_id, NULL, NULL) > 0) {
			resend(d, from, fromlen, &peer, &h, 0);
			return;
		}
	}
	rc = aw_proto_reasm_add(d->reasm, &peer, &h, dg + AW_PROTO_HDR_LEN, now, &m, &e);
	if (rc == 0 || rc == -EALREADY)
		return;
	if (rc < 0) {
		d->rx_bad[e.fault]++;
		if (e.fault == AW_PROTO_FAULT_LIMIT)
			d->overloaded++;
		reply_error(d, from, fromlen, &peer, &h, e.code, 0,
			    e.fault == AW_PROTO_FAULT_LIMIT ? 1000 : 0, e.err.msg, 0);
		return;
	}
	switch (m.hdr.type) {
	case AW_PROTO_PING:
		d->pings++;
		if (m.len <= d->max_reply)
			reply(d, from, fromlen, &peer, &m.hdr, AW_PROTO_PONG, 0, 0, m.data, m.len,
			      0, 1);
		else
			stream(d, from, fromlen, &peer, &m.hdr, m.data, m.len, 0);
		break;
	case AW_PROTO_STATS: {
		char text[4096];
		size_t n;

		d->stats_req++;
		if (aw_proto_rtx_open(d->rtx, &peer, m.hdr.request_id, now) < 0) {
			d->overloaded++;
			reply_error(d, from, fromlen, &peer, &m.hdr, AW_PROTO_ERR_OVERLOADED, 0,
				    1000, "retransmit store full", 0);
			break;
		}
		n = aw_echod_stats_text(d, text, sizeof(text));
		stream(d, from, fromlen, &peer, &m.hdr, (const uint8_t *)text, n, 1);
		break;
	}
	default: {
		static struct aw_proto_req r;
		int stored = aw_proto_rtx_open(d->rtx, &peer, m.hdr.request_id, now) == 0;

		if (aw_proto_req_parse(m.hdr.type, m.data, m.len, &r, &e) < 0) {
			d->rx_bad[e.fault]++;
			reply_error(d, from, fromlen, &peer, &m.hdr, e.code, 0, 0, e.err.msg,
				    stored);
		} else {
			d->refused++;
			reply_error(d, from, fromlen, &peer, &m.hdr, AW_PROTO_ERR_UNSUPPORTED, 0, 0,
				    "aw-echod serves PING and STATS only", stored);
		}
	}
	}
	aw_proto_reasm_release(d->reasm, &m);
}

int aw_echod_run(struct aw_echod *d, volatile int *quit)
{
	struct mmsghdr mm[BURST];
	struct iovec iov[BURST];
	struct sockaddr_storage from[BURST];
	int i, r;

	while (!*quit) {
		uint64_t now;

		if (!d->o.busy_poll) {
			struct pollfd p = {.fd = d->fd, .events = POLLIN};

			r = poll(&p, 1, 10);
			if (r < 0 && errno != EINTR)
				return -errno;
		}
		memset(mm, 0, sizeof(mm));
		for (i = 0; i < BURST; i++) {
			iov[i].iov_base = d->rxbuf + (size_t)i * MAX_DGRAM;
			iov[i].iov_len = MAX_DGRAM;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_name = &from[i];
			mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		}
		r = recvmmsg(d->fd, mm, BURST, MSG_DONTWAIT, NULL);
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		for (i = 0; i < r; i++) {
			d->rx_dgrams++;
			if (mm[i].msg_hdr.msg_flags & MSG_TRUNC)
				continue;
			handle(d, iov[i].iov_base, mm[i].msg_len, &from[i],
			       mm[i].msg_hdr.msg_namelen);
		}
		flush(d);
		now = now_us();
		if (now - d->last_expire > 10000) {
			aw_proto_reasm_expire(d->reasm, now);
			aw_proto_rtx_expire(d->rtx, now);
			d->last_expire = now;
		}
	}
	return 0;
}
