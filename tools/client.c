/* client.c — libaw_client (see client.h and docs/PROTOCOL.md).
 *
 * Requests in flight sit in a ring indexed by request_id & mask: ids are a
 * random 64-bit start plus a counter, so a reply finds its request in O(1)
 * and a reply for an id that is no longer there (late duplicate) is counted
 * as stray. Active requests are also on a list that the timer pass walks at
 * most once per millisecond. Each request keeps its encoded body (for
 * retransmission), the next sequence number it will deliver, and a small
 * window of out-of-order reply datagrams.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RX_BATCH  32
#define TX_BATCH  64
#define DGRAM_MAX 65536

/* ---- kernel UDP transport ---------------------------------------------------------------- */

struct udp_transport {
	struct aw_client_transport t;
	int busy_poll;
};

static int udp_send(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n)
{
	struct mmsghdr mm[TX_BATCH];
	struct iovec iov[TX_BATCH];
	unsigned i, done = 0;

	while (done < n) {
		unsigned k = n - done < TX_BATCH ? n - done : TX_BATCH;
		int r;

		memset(mm, 0, sizeof(mm[0]) * k);
		for (i = 0; i < k; i++) {
			iov[i].iov_base = d[done + i].buf;
			iov[i].iov_len = d[done + i].len;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
		}
		r = sendmmsg(t->fd, mm, k, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			/* a full socket buffer or an ICMP error from the peer:
			 * the datagram is lost, retransmission repairs it */
			if (errno == EAGAIN || errno == ENOBUFS || errno == ECONNREFUSED)
				return done ? (int)done : (int)n;
			return done ? (int)done : -errno;
		}
		done += (unsigned)r;
	}
	return (int)done;
}

static int udp_recv(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n,
		    int timeout_ms)
{
	struct udp_transport *u = (struct udp_transport *)t;
	struct mmsghdr mm[RX_BATCH];
	struct iovec iov[RX_BATCH];
	unsigned i;
	int r;

	if (n > RX_BATCH)
		n = RX_BATCH;
	if (timeout_ms != 0 && !u->busy_poll) {
		struct pollfd p = {.fd = t->fd, .events = POLLIN};

		r = poll(&p, 1, timeout_ms);
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		if (r == 0)
			return 0;
	}
	memset(mm, 0, sizeof(mm[0]) * n);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = d[i].buf;
		iov[i].iov_len = d[i].len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	r = recvmmsg(t->fd, mm, n, MSG_DONTWAIT, NULL);
	if (r < 0) {
		if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
			return 0;
		return -errno;
	}
	for (i = 0; i < (unsigned)r; i++)
		d[i].len = (mm[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : mm[i].msg_len;
	return r;
}

static void udp_close(struct aw_client_transport *t)
{
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

static const struct aw_client_transport_ops udp_ops = {
	.send = udp_send,
	.recv = udp_recv,
	.close = udp_close,
};

int aw_client_udp_open(const char *host, const char *port, int busy_poll,
		       struct aw_client_transport **ret)
{
	struct addrinfo hints, *ai = NULL, *a;
	struct udp_transport *u;
	int fd = -1, rc, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		return rc == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
	rc = -EHOSTUNREACH;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			rc = -errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		rc = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return rc;
	{
		int sz = 4 << 20;

		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	if (busy_poll) {
		int us = 50;

		/* best effort: needs CAP_NET_ADMIN above the sysctl default */
		(void)setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL, &us, sizeof(us));
	}
	(void)one;
	u = calloc(1, sizeof(*u));
	if (!u) {
		close(fd);
		return -ENOMEM;
	}
	u->t.ops = &udp_ops;
	u->t.fd = fd;
	u->busy_poll = busy_poll;
	*ret = &u->t;
	return 0;
}

/* ---- client state ------------------------------------------------------------------------ */

struct slot {
	uint8_t *dg; /* a buffered reply datagram (whole), NULL = empty */
	uint32_t len;
	uint32_t seq;
};

struct req {
	uint64_t id;
	int used;
	unsigned type;
	uint64_t session;
	uint8_t *body; /* request message (for retransmission) */
	size_t len;
	aw_client_data_fn *on_data;
	aw_client_done_fn *on_done;
	void *ctx;
	uint64_t t_deadline; /* 0 = none */
	uint64_t t_timer;    /* next retransmit / gap check */
	uint32_t rto;
	uint32_t retries;
	uint32_t next_seq; /* next sequence number to deliver */
	uint8_t got_any;   /* any reply seen */
	uint8_t cancel;	   /* cancel requested */
	struct slot *win;  /* reorder_window slots, lazily allocated */
	uint32_t n_held;
	struct aw_proto_frag frag; /* a TOOL_CALL arriving in fragments */
	uint32_t n_stream;	   /* stream datagrams (DATA, TOOL_CALL fragments) delivered */
	struct aw_client_result res;
	struct req *prev, *next; /* active list */
};

struct aw_client {
	struct aw_client_transport *t;
	struct aw_client_opts o;
	size_t seg_size;
	uint64_t next_id;
	struct req *reqs; /* max_inflight slots */
	uint32_t mask;
	unsigned inflight;
	struct req active; /* list head */
	uint64_t next_scan;
	/* retransmission timer from measured round trips (RFC 6298 style):
	 * rto = srtt + 4 rttvar, at least opts.rtx_timeout_us, at most 1 s */
	double srtt, rttvar;
	uint32_t rto_us;
	/* transmit queue */
	uint8_t *txbuf; /* TX_BATCH * DGRAM_MAX */
	struct aw_client_dgram txq[TX_BATCH];
	unsigned n_txq;
	uint8_t *rxbuf; /* RX_BATCH * DGRAM_MAX */
	struct aw_client_stats st;
	int completed; /* in this poll */
	aw_client_tool_call_fn *on_tool_call;
};

uint64_t aw_client_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Feed one round-trip sample (only from requests that were never
 * retransmitted: Karn's rule) into the retransmission timer. */
static void rtt_sample(struct aw_client *c, uint64_t rtt_us)
{
	double r = (double)rtt_us, rto;

	if (c->srtt == 0) {
		c->srtt = r;
		c->rttvar = r / 2;
	} else {
		c->rttvar = 0.75 * c->rttvar + 0.25 * fabs(c->srtt - r);
		c->srtt = 0.875 * c->srtt + 0.125 * r;
	}
	rto = c->srtt + 4 * c->rttvar;
	if (rto < c->o.rtx_timeout_us)
		rto = c->o.rtx_timeout_us;
	if (rto > 1000000)
		rto = 1000000;
	c->rto_us = (uint32_t)rto;
}

void aw_client_opts_default(struct aw_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mtu = 1500;
	o->rtx_timeout_us = 20000;
	o->max_retries = 6;
	o->timeout_us = 10000000;
	o->max_inflight = 4096;
	o->reorder_window = 64;
}

int aw_client_new(struct aw_client_transport *t, const struct aw_client_opts *o,
		  struct aw_client **ret)
{
	struct aw_client *c;
	uint64_t seed;

	c = calloc(1, sizeof(*c));
	if (!c) {
		t->ops->close(t);
		return -ENOMEM;
	}
	c->t = t;
	if (o)
		c->o = *o;
	else
		aw_client_opts_default(&c->o);
	c->seg_size = aw_proto_seg_size_for_mtu(c->o.mtu, 1);
	if (c->seg_size == 0 || c->o.max_inflight == 0 ||
	    (c->o.max_inflight & (c->o.max_inflight - 1)) || c->o.max_inflight > (1u << 24) ||
	    c->o.reorder_window == 0 || c->o.reorder_window > 65536 || c->o.rtx_timeout_us == 0) {
		aw_client_close(c);
		return -EINVAL;
	}
	c->mask = c->o.max_inflight - 1;
	c->rto_us = c->o.rtx_timeout_us;
	c->reqs = calloc(c->o.max_inflight, sizeof(*c->reqs));
	c->txbuf = malloc((size_t)TX_BATCH * DGRAM_MAX);
	c->rxbuf = malloc((size_t)RX_BATCH * DGRAM_MAX);
	if (!c->reqs || !c->txbuf || !c->rxbuf) {
		aw_client_close(c);
		return -ENOMEM;
	}
	c->active.prev = c->active.next = &c->active;
	/* a random start keeps ids unique across restarts of the same port */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = aw_client_now_us() * 0x9e3779b97f4a7c15ull;
	c->next_id = seed & ~0xffffffull; /* low bits start at 0: slot == id & mask */
	*ret = c;
	return 0;
}

int aw_client_open(const char *host, const char *port, const struct aw_client_opts *o,
		   struct aw_client **ret)
{
	struct aw_client_transport *t;
	int rc = aw_client_udp_open(host, port, o ? o->busy_poll : 0, &t);

	if (rc < 0)
		return rc;
	return aw_client_new(t, o, ret);
}

static void req_clear(struct aw_client *c, struct req *r)
{
	uint32_t i;

	if (r->win) {
		for (i = 0; i < c->o.reorder_window; i++)
			free(r->win[i].dg);
		free(r->win);
	}
	free(r->body);
	aw_proto_frag_fini(&r->frag);
	r->prev->next = r->next;
	r->next->prev = r->prev;
	memset(r, 0, sizeof(*r));
	c->inflight--;
}

void aw_client_close(struct aw_client *c)
{
	if (!c)
		return;
	if (c->reqs) {
		for (uint32_t i = 0; i <= c->mask; i++)
			if (c->reqs[i].used)
				req_clear(c, &c->reqs[i]);
		free(c->reqs);
	}
	free(c->txbuf);
	free(c->rxbuf);
	if (c->t)
		c->t->ops->close(c->t);
	free(c);
}

int aw_client_fd(const struct aw_client *c)
{
	return c->t->fd;
}

unsigned aw_client_inflight(const struct aw_client *c)
{
	return c->inflight;
}

void aw_client_get_stats(const struct aw_client *c, struct aw_client_stats *ret)
{
	*ret = c->st;
}

/* ---- transmit ------------------------------------------------------------------------------ */

int aw_client_flush(struct aw_client *c)
{
	int n;

	if (c->n_txq == 0)
		return 0;
	n = c->t->ops->send(c->t, c->txq, c->n_txq);
	c->n_txq = 0;
	if (n > 0)
		c->st.tx_dgrams += (uint64_t)n;
	return n;
}

/* A transmit buffer in the queue (flushing first when full). */
static uint8_t *tx_slot(struct aw_client *c)
{
	if (c->n_txq == TX_BATCH)
		(void)aw_client_flush(c);
	return c->txbuf + (size_t)c->n_txq * DGRAM_MAX;
}

static void tx_commit(struct aw_client *c, int len)
{
	if (len <= 0)
		return;
	c->txq[c->n_txq].buf = c->txbuf + (size_t)c->n_txq * DGRAM_MAX;
	c->txq[c->n_txq].len = (size_t)len;
	c->n_txq++;
}

static void tx_done(struct aw_client *c)
{
	if (!c->o.batch_tx)
		(void)aw_client_flush(c);
}

static void send_request(struct aw_client *c, struct req *r, uint16_t flags)
{
	struct aw_proto_hdr h;
	int n = aw_proto_seg_count(r->len, c->seg_size);

	memset(&h, 0, sizeof(h));
	h.type = (uint8_t)r->type;
	h.flags = flags;
	h.server_id = c->o.server_id;
	h.request_id = r->id;
	h.session_id = r->session;
	for (int i = 0; i < n; i++)
		tx_commit(c, aw_proto_build_segment(tx_slot(c), DGRAM_MAX, &h, r->body, r->len,
						    c->seg_size, (unsigned)i));
	tx_done(c);
}

static void send_control(struct aw_client *c, struct req *r, unsigned type, uint32_t seq)
{
	struct aw_proto_hdr h;

	memset(&h, 0, sizeof(h));
	h.type = (uint8_t)type;
	h.server_id = c->o.server_id;
	h.request_id = r->id;
	h.session_id = r->session;
	h.seq = seq;
	tx_commit(c, aw_proto_build(tx_slot(c), DGRAM_MAX, &h, NULL, 0));
	tx_done(c);
}

int aw_client_submit(struct aw_client *c, unsigned type, uint64_t session_id, const void *body,
		     size_t len, aw_client_data_fn *on_data, aw_client_done_fn *on_done, void *ctx,
		     uint64_t *ret_id)
{
	struct req *r;
	uint64_t now;
	int nseg;

	if (type != AW_PROTO_GENERATE && type != AW_PROTO_CLASSIFY && type != AW_PROTO_EMBED &&
	    type != AW_PROTO_PING && type != AW_PROTO_STATS)
		return -EINVAL;
	nseg = aw_proto_seg_count(len, c->seg_size);
	if (nseg < 0 || len > AW_PROTO_MAX_MSG)
		return -EMSGSIZE;
	r = &c->reqs[c->next_id & c->mask];
	if (r->used)
		return -EBUSY;
	memset(r, 0, sizeof(*r));
	r->body = malloc(len ? len : 1);
	if (!r->body)
		return -ENOMEM;
	if (len)
		memcpy(r->body, body, len);
	now = aw_client_now_us();
	r->used = 1;
	r->id = c->next_id++;
	r->type = type;
	r->session = session_id;
	r->len = len;
	r->on_data = on_data;
	r->on_done = on_done;
	r->ctx = ctx;
	r->rto = c->rto_us;
	r->t_timer = now + r->rto;
	r->t_deadline = c->o.timeout_us ? now + c->o.timeout_us : 0;
	r->res.t_submit_us = now;
	r->prev = c->active.prev;
	r->next = &c->active;
	c->active.prev->next = r;
	c->active.prev = r;
	c->inflight++;
	if (ret_id)
		*ret_id = r->id;
	send_request(c, r, 0);
	return 0;
}

int aw_client_cancel(struct aw_client *c, uint64_t id)
{
	struct req *r = &c->reqs[id & c->mask];

	if (!r->used || r->id != id)
		return -ENOENT;
	r->cancel = 1;
	send_control(c, r, AW_PROTO_CANCEL, 0);
	return 0;
}

/* ---- receive ------------------------------------------------------------------------------- */

static void finish(struct aw_client *c, struct req *r, int status)
{
	r->res.status = status;
	r->res.t_done_us = aw_client_now_us();
	if (status == -ETIMEDOUT)
		c->st.timeouts++;
	if (!c->o.no_ack && r->got_any && r->type != AW_PROTO_PING)
		send_control(c, r, AW_PROTO_ACK, 0);
	c->completed++;
	if (r->on_done) {
		/* free the slot first: the callback may submit the next request */
		aw_client_done_fn *fn = r->on_done;
		void *ctx = r->ctx;
		uint64_t id = r->id;
		struct aw_client_result res = r->res;

		req_clear(c, r);
		fn(ctx, id, &res);
		return;
	}
	req_clear(c, r);
}

static void fail_bad(struct aw_client *c, struct req *r, const char *msg)
{
	snprintf(r->res.err_msg, sizeof(r->res.err_msg), "%s", msg);
	finish(c, r, -EBADMSG);
}

/* Deliver one in-order reply datagram. Returns 1 when it ended the request. */
static int deliver(struct aw_client *c, struct req *r, const struct aw_proto_hdr *h,
		   const uint8_t *pl, uint64_t now)
{
	struct aw_proto_err e = {0};
	const void *p;
	size_t plen;
	int fr;

	r->next_seq++;
	r->retries = 0;
	r->rto = c->rto_us;
	r->t_timer = now + r->rto;
	if (h->type == AW_PROTO_DATA || h->type == AW_PROTO_TOOL_CALL)
		r->n_stream++;
	/* a reply in fragments: gather them, handle the whole payload */
	fr = aw_proto_frag_add(&r->frag, h, pl, &p, &plen, &e);
	if (fr == 0)
		return 0;
	if (fr < 0) {
		fail_bad(c, r, fr == -ENOMEM ? "out of memory for a reply" : e.err.msg);
		return 1;
	}
	pl = (const uint8_t *)p;
	switch (h->type) {
	case AW_PROTO_DATA: {
		uint32_t nt;
		struct aw_proto_str s;

		if (aw_proto_data_parse(pl, plen, &nt, &s, &e) < 0) {
			fail_bad(c, r, e.err.msg);
			return 1;
		}
		r->res.n_data++;
		r->res.data_bytes += s.len;
		if (r->on_data)
			r->on_data(r->ctx, r->id, s.p, s.len, nt, now);
		return 0;
	}
	case AW_PROTO_TOOL_CALL: {
		struct aw_proto_tool_call tc;

		if (aw_proto_tool_call_parse(pl, plen, &tc, &e) < 0) {
			fail_bad(c, r, e.err.msg);
			return 1;
		}
		r->res.n_tool_calls++;
		if (c->on_tool_call)
			c->on_tool_call(r->ctx, r->id, &tc, now);
		return 0;
	}
	case AW_PROTO_PONG:
		r->res.data_bytes += h->payload_len;
		if (r->on_data)
			r->on_data(r->ctx, r->id, pl, h->payload_len, 0, now);
		finish(c, r, 0);
		return 1;
	case AW_PROTO_END: {
		struct aw_proto_summary s;

		if (aw_proto_summary_parse(pl, h->payload_len, &s, &e) < 0) {
			fail_bad(c, r, e.err.msg);
			return 1;
		}
		if (s.n_data != h->seq || s.n_data != r->n_stream ||
		    s.data_bytes != r->res.data_bytes) {
			fail_bad(c, r, "summary disagrees with the data received");
			return 1;
		}
		r->res.summary = s;
		for (unsigned i = 0; i < s.n_probs; i++)
			r->res.probs[i] = aw_proto_summary_prob(&s, i);
		r->res.summary.probs = NULL; /* points into a receive buffer */
		finish(c, r, 0);
		return 1;
	}
	case AW_PROTO_ERROR: {
		struct aw_proto_error er;

		if (aw_proto_error_parse(pl, h->payload_len, &er, &e) < 0) {
			fail_bad(c, r, e.err.msg);
			return 1;
		}
		r->res.err_code = er.code;
		r->res.retry_after_us = er.retry_after_us;
		memcpy(r->res.err_msg, er.msg.p, er.msg.len);
		r->res.err_msg[er.msg.len] = 0;
		finish(c, r, -EREMOTEIO);
		return 1;
	}
	}
	fail_bad(c, r, "unexpected reply type");
	return 1;
}

static void handle(struct aw_client *c, uint8_t *dg, size_t len, uint64_t now)
{
	struct aw_proto_hdr h;
	struct aw_proto_err e;
	struct req *r;

	if (aw_proto_hdr_parse(dg, len, 0, &h, &e) < 0 || aw_proto_type_kind(h.type) != 2 ||
	    h.seg_count != 1) {
		c->st.rx_bad++;
		return;
	}
	r = &c->reqs[h.request_id & c->mask];
	if (!r->used || r->id != h.request_id) {
		c->st.rx_stray++;
		return;
	}
	if (!r->res.t_first_us) {
		r->res.t_first_us = now;
		if (!r->res.n_retransmits)
			rtt_sample(c, now - r->res.t_submit_us);
	}
	r->got_any = 1;
	r->res.server_id = h.server_id;

	if (h.type == AW_PROTO_PROGRESS || (h.flags & AW_PROTO_F_CONTROL)) {
		if (h.type == AW_PROTO_PROGRESS) {
			struct aw_proto_progress p;

			if (aw_proto_progress_parse(dg + AW_PROTO_HDR_LEN, h.payload_len, &p, &e) <
			    0) {
				c->st.rx_bad++;
				return;
			}
			/* alive: keep waiting, with a fresh budget of retries */
			r->retries = 0;
			r->rto = c->rto_us;
			r->t_timer = now + r->rto;
			return;
		}
		if (h.type == AW_PROTO_ERROR) {
			struct aw_proto_error er;

			if (aw_proto_error_parse(dg + AW_PROTO_HDR_LEN, h.payload_len, &er, &e) <
			    0) {
				c->st.rx_bad++;
				return;
			}
			if (er.code == AW_PROTO_ERR_UNKNOWN_REQUEST && r->cancel) {
				snprintf(r->res.err_msg, sizeof(r->res.err_msg),
					 "cancelled before the server held it");
				finish(c, r, -ECANCELED);
				return;
			}
			/* the server lost the stream (RESUME refused): give up */
			r->res.err_code = er.code;
			memcpy(r->res.err_msg, er.msg.p, er.msg.len);
			r->res.err_msg[er.msg.len] = 0;
			finish(c, r, -EREMOTEIO);
			return;
		}
		c->st.rx_bad++;
		return;
	}
	if (h.type == AW_PROTO_PONG && r->type != AW_PROTO_PING) {
		c->st.rx_bad++;
		return;
	}
	if (h.seq < r->next_seq) {
		r->res.n_dups++;
		c->st.dups++;
		return;
	}
	if (h.seq > r->next_seq) {
		uint32_t d = h.seq - r->next_seq, k;

		if (d >= c->o.reorder_window || h.type == AW_PROTO_PONG) {
			c->st.dups++; /* beyond the window: dropped, resent after RESUME */
			return;
		}
		if (!r->win) {
			r->win = calloc(c->o.reorder_window, sizeof(*r->win));
			if (!r->win)
				return;
		}
		k = h.seq % c->o.reorder_window;
		if (r->win[k].dg) {
			r->res.n_dups++;
			c->st.dups++;
			return;
		}
		r->win[k].dg = malloc(len);
		if (!r->win[k].dg)
			return;
		memcpy(r->win[k].dg, dg, len);
		r->win[k].len = (uint32_t)len;
		r->win[k].seq = h.seq;
		r->n_held++;
		/* new data: the server is alive, only a gap is left: fresh retries
		 * and a fresh (not backed-off) timer for the repair */
		r->retries = 0;
		r->rto = c->rto_us;
		/* a gap: ask for the missing part soon (the timer fires RESUME) */
		if (r->t_timer > now + r->rto / 2)
			r->t_timer = now + r->rto / 2;
		return;
	}
	if (deliver(c, r, &h, dg + AW_PROTO_HDR_LEN, now))
		return;
	/* drain what the gap held back */
	while (r->n_held) {
		uint32_t k = r->next_seq % c->o.reorder_window;
		struct aw_proto_hdr h2;
		uint8_t *d2 = r->win[k].dg;

		if (!d2 || r->win[k].seq != r->next_seq)
			break;
		r->win[k].dg = NULL;
		r->n_held--;
		(void)aw_proto_hdr_parse(d2, r->win[k].len, 0, &h2, NULL);
		if (deliver(c, r, &h2, d2 + AW_PROTO_HDR_LEN, now)) {
			free(d2);
			return;
		}
		free(d2);
	}
}

static void timers(struct aw_client *c, uint64_t now)
{
	struct req *r, *n;

	for (r = c->active.next; r != &c->active; r = n) {
		n = r->next;
		if (r->t_deadline && now >= r->t_deadline) {
			snprintf(r->res.err_msg, sizeof(r->res.err_msg), "no answer within %llu us",
				 (unsigned long long)c->o.timeout_us);
			finish(c, r, -ETIMEDOUT);
			continue;
		}
		if (now < r->t_timer)
			continue;
		if (++r->retries > c->o.max_retries) {
			snprintf(r->res.err_msg, sizeof(r->res.err_msg),
				 "%u timer expiries without progress", c->o.max_retries);
			finish(c, r, -ETIMEDOUT);
			continue;
		}
		if (r->cancel)
			send_control(c, r, AW_PROTO_CANCEL, 0);
		if (!r->got_any || r->type == AW_PROTO_PING) {
			/* nothing heard (or an idempotent echo): resend it all */
			send_request(c, r, AW_PROTO_F_RETRANSMIT);
			r->res.n_retransmits++;
			c->st.retransmits++;
		} else {
			send_control(c, r, AW_PROTO_RESUME, r->next_seq);
			r->res.n_resumes++;
			c->st.resumes++;
		}
		r->rto = r->rto < 1000000 ? r->rto * 2 : r->rto;
		r->t_timer = now + r->rto;
	}
}

int aw_client_poll(struct aw_client *c, int timeout_ms)
{
	struct aw_client_dgram d[RX_BATCH];
	uint64_t start = aw_client_now_us(), now;
	int n, i;

	c->completed = 0;
	(void)aw_client_flush(c);
	for (;;) {
		int wait = timeout_ms;

		if (timeout_ms < 0 || timeout_ms > 1)
			wait = 1; /* wake for timers at least every millisecond */
		if (c->o.busy_poll)
			wait = 0;
		if (c->inflight == 0 && timeout_ms < 0)
			return 0;
		for (i = 0; i < RX_BATCH; i++) {
			d[i].buf = c->rxbuf + (size_t)i * DGRAM_MAX;
			d[i].len = DGRAM_MAX;
		}
		n = c->t->ops->recv(c->t, d, RX_BATCH, wait);
		if (n < 0)
			return n;
		now = aw_client_now_us();
		for (i = 0; i < n; i++) {
			c->st.rx_dgrams++;
			handle(c, d[i].buf, d[i].len, now);
		}
		/* Timers only once the receive queue is drained: replies that
		 * are already here must not be mistaken for losses (after a stall
		 * of the caller, thousands may be waiting) */
		if (n < RX_BATCH && now >= c->next_scan) {
			timers(c, now);
			c->next_scan = now + 1000;
		}
		(void)aw_client_flush(c);
		if (c->completed)
			return c->completed;
		if (c->inflight == 0 && timeout_ms < 0)
			return 0;
		if (timeout_ms >= 0 && now - start >= (uint64_t)timeout_ms * 1000u && n < RX_BATCH)
			return 0;
	}
}

/* ---- synchronous helpers ------------------------------------------------------------------- */

struct sync_ctx {
	uint8_t *out;
	size_t cap, len;
	struct aw_client_result *res;
	int done;
};

static void sync_data(void *ctx, uint64_t id, const void *bytes, size_t len, uint32_t nt,
		      uint64_t now)
{
	struct sync_ctx *s = ctx;
	(void)id, (void)nt, (void)now;

	if (s->len < s->cap) {
		size_t k = s->cap - s->len < len ? s->cap - s->len : len;

		memcpy(s->out + s->len, bytes, k);
	}
	s->len += len;
}

static void sync_done(void *ctx, uint64_t id, const struct aw_client_result *res)
{
	struct sync_ctx *s = ctx;
	(void)id;

	if (s->res)
		*s->res = *res;
	s->done = res->status == 0 ? 1 : res->status;
}

int aw_client_call(struct aw_client *c, unsigned type, uint64_t session_id, const void *body,
		   size_t len, void *out, size_t cap, size_t *ret_len, struct aw_client_result *res)
{
	struct sync_ctx s = {.out = out, .cap = out ? cap : 0, .res = res};
	int rc = aw_client_submit(c, type, session_id, body, len, sync_data, sync_done, &s, NULL);

	if (rc < 0)
		return rc;
	while (!s.done) {
		rc = aw_client_poll(c, -1);
		if (rc < 0)
			return rc;
	}
	if (ret_len)
		*ret_len = s.len;
	return s.done == 1 ? 0 : s.done;
}

int aw_client_request(struct aw_client *c, unsigned type, uint64_t session_id,
		      const struct aw_proto_req *req, char *out, size_t cap,
		      struct aw_client_result *res)
{
	size_t n = aw_proto_req_size(req), got = 0;
	uint8_t *body;
	int rc;

	if (cap == 0)
		return -EINVAL;
	body = malloc(n);
	if (!body)
		return -ENOMEM;
	rc = aw_proto_req_build(req, body, n);
	if (rc >= 0)
		rc = aw_client_call(c, type, session_id, body, n, out, cap - 1, &got, res);
	free(body);
	out[got < cap - 1 ? got : cap - 1] = 0;
	return rc;
}

int aw_client_ping(struct aw_client *c, const void *payload, size_t len, uint64_t *ret_rtt_us)
{
	struct aw_client_result res;
	uint8_t *echo = malloc(len ? len : 1);
	size_t got = 0;
	int rc;

	if (!echo)
		return -ENOMEM;
	rc = aw_client_call(c, AW_PROTO_PING, 0, payload, len, echo, len, &got, &res);
	if (rc == 0 && (got != len || (len && memcmp(echo, payload, len) != 0)))
		rc = -EBADMSG;
	free(echo);
	if (rc == 0 && ret_rtt_us)
		*ret_rtt_us = res.t_done_us - res.t_submit_us;
	return rc;
}

int aw_client_stats(struct aw_client *c, char *out, size_t cap)
{
	size_t got = 0;
	int rc;

	if (cap == 0)
		return -EINVAL;
	rc = aw_client_call(c, AW_PROTO_STATS, 0, NULL, 0, out, cap - 1, &got, NULL);
	out[got < cap - 1 ? got : cap - 1] = 0;
	return rc;
}

void aw_client_set_tool_call_fn(struct aw_client *c, aw_client_tool_call_fn *fn)
{
	c->on_tool_call = fn;
}

int aw_client_embed(struct aw_client *c, const char *text, unsigned pooling, int normalize,
		    float *out, size_t cap, size_t *ret_dim, struct aw_client_result *res)
{
	struct aw_proto_req q;
	struct aw_client_result r0;
	size_t n, got = 0;
	uint8_t *body, *raw = NULL;
	int rc;

	if (!res)
		res = &r0;
	aw_proto_req_init(&q);
	q.prompt.p = text;
	q.prompt.len = (uint32_t)strlen(text);
	q.pooling = (uint8_t)pooling;
	q.embed_flags = normalize ? AW_PROTO_EMBED_NORMALIZE : 0;
	n = aw_proto_req_size(&q);
	body = malloc(n);
	raw = malloc(cap * 4 + 4);
	if (!body || !raw) {
		free(body);
		free(raw);
		return -ENOMEM;
	}
	rc = aw_proto_req_build(&q, body, n);
	if (rc >= 0)
		rc = aw_client_call(c, AW_PROTO_EMBED, 0, body, n, raw, cap * 4, &got, res);
	if (rc == 0 && got % 4 != 0)
		rc = -EBADMSG;
	if (rc == 0) {
		/* little-endian floats on the wire */
		for (size_t i = 0; i < got / 4 && i < cap; i++) {
			uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
				     (uint32_t)raw[4 * i + 2] << 16 |
				     (uint32_t)raw[4 * i + 3] << 24;
			memcpy(&out[i], &u, 4);
		}
		if (ret_dim)
			*ret_dim = got / 4;
	}
	free(body);
	free(raw);
	return rc;
}

int aw_client_classify(struct aw_client *c, const char *prompt, const char *const *labels,
		       unsigned n_labels, float *probs, struct aw_client_result *res)
{
	struct aw_proto_req q;
	struct aw_client_result r0;
	char none[1];
	int rc;

	if (n_labels == 0 || n_labels > AW_PROTO_MAX_LABELS)
		return -EINVAL;
	if (!res)
		res = &r0;
	aw_proto_req_init(&q);
	q.prompt.p = prompt;
	q.prompt.len = (uint32_t)strlen(prompt);
	q.n_labels = n_labels;
	for (unsigned i = 0; i < n_labels; i++) {
		q.labels[i].p = labels[i];
		q.labels[i].len = (uint32_t)strlen(labels[i]);
	}
	rc = aw_client_request(c, AW_PROTO_CLASSIFY, 0, &q, none, sizeof(none), res);
	if (rc == 0 && res->summary.n_probs != n_labels)
		rc = -EBADMSG;
	if (rc == 0)
		memcpy(probs, res->probs, sizeof(float) * n_labels);
	return rc;
}
