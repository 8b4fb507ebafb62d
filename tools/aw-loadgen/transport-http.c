/* transport-http.c — pool of keep-alive TCP connections with epoll for
 * aw-loadgen's HTTP transport (see transport-http.h). */
#include "transport-http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

enum conn_state {
	C_CLOSED = 0, /* no socket */
	C_IDLE,	      /* kept alive, no request */
	C_CONNECTING,
	C_SENDING,
	C_RECV,
};

struct conn {
	int fd;
	enum conn_state state;
	uint32_t served;   /* responses completed on this socket */
	uint8_t retried;   /* the current request was already resent once */
	uint64_t got;	   /* answer bytes of the current request */
	uint64_t deadline; /* ns, CLOCK_MONOTONIC */
	char *out;	   /* the request */
	size_t out_len, out_off, out_cap;
	aw_http_data_fn *data;
	aw_http_done_fn *done;
	void *ctx;
	uint32_t next; /* free-list link (index + 1; 0 = end) */
	struct aw_http_resp resp;
};

struct aw_http_transport {
	int ep;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint32_t n, inflight;
	uint32_t idle, closed; /* stacks of conn indices + 1 */
	uint64_t timeout_ns, next_scan;
	struct conn *c; /* n of them */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void push(uint32_t *stack, struct aw_http_transport *t, struct conn *c)
{
	c->next = *stack;
	*stack = (uint32_t)(c - t->c) + 1;
}

static struct conn *pop(uint32_t *stack, struct aw_http_transport *t)
{
	struct conn *c;

	if (!*stack)
		return NULL;
	c = &t->c[*stack - 1];
	*stack = c->next;
	return c;
}

/* Take c out of the idle stack (it is somewhere inside). */
static void unlink_idle(struct aw_http_transport *t, struct conn *c)
{
	uint32_t *p = &t->idle, me = (uint32_t)(c - t->c) + 1;

	while (*p && *p != me)
		p = &t->c[*p - 1].next;
	if (*p)
		*p = c->next;
}

static int watch(struct aw_http_transport *t, struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(c - t->c)};

	return epoll_ctl(t->ep, op, c->fd, &ev) < 0 ? -errno : 0;
}

static void close_conn(struct aw_http_transport *t, struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also leaves the epoll set */
	c->fd = -1;
	c->state = C_CLOSED;
	c->served = 0;
	push(&t->closed, t, c);
}

/* Open a socket for c and start connecting. */
static int open_conn(struct aw_http_transport *t, struct conn *c)
{
	int one = 1, rc;

	c->fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->served = 0;
	if (connect(c->fd, (struct sockaddr *)&t->addr, t->addr_len) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto err;
	}
	c->state = C_CONNECTING;
	rc = watch(t, c, EPOLL_CTL_ADD, EPOLLOUT);
	if (rc < 0)
		goto err;
	return 0;
err:
	close(c->fd);
	c->fd = -1;
	return rc;
}

/* The request on c ended with 'status'; keep c alive when possible. */
static void finish(struct aw_http_transport *t, struct conn *c, int status, int http_status,
		   int keep)
{
	aw_http_done_fn *done = c->done;
	void *ctx = c->ctx;

	t->inflight--;
	c->done = NULL;
	if (keep && !c->resp.close && status != -EBADMSG && status != -ETIMEDOUT &&
	    watch(t, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP) == 0) {
		c->state = C_IDLE;
		c->served++;
		push(&t->idle, t, c);
	} else {
		close_conn(t, c);
	}
	done(ctx, status, http_status);
}

static void start_send(struct aw_http_transport *t, struct conn *c);

/* The socket failed or closed before the answer ended. */
static void conn_lost(struct aw_http_transport *t, struct conn *c, int err)
{
	/* a kept-alive socket the server had already closed: send again once */
	if (c->got == 0 && c->served > 0 && !c->retried) {
		c->retried = 1;
		c->out_off = 0;
		aw_http_resp_init(&c->resp);
		close(c->fd);
		c->fd = -1;
		if (open_conn(t, c) == 0)
			return;
		c->state = C_CLOSED;
	}
	finish(t, c, c->got ? -EBADMSG : err, 0, 0);
}

static void start_send(struct aw_http_transport *t, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (c->state != C_SENDING) {
				c->state = C_SENDING;
				if (watch(t, c, EPOLL_CTL_MOD, EPOLLOUT) < 0)
					conn_lost(t, c, -EIO);
			}
			return;
		}
		if (n <= 0) {
			conn_lost(t, c, n < 0 ? -errno : -ECONNRESET);
			return;
		}
		c->out_off += (size_t)n;
	}
	c->state = C_RECV;
	if (watch(t, c, EPOLL_CTL_MOD, EPOLLIN | EPOLLRDHUP) < 0)
		conn_lost(t, c, -EIO);
}

static void on_readable(struct aw_http_transport *t, struct conn *c)
{
	static char buf[65536];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		uint32_t before = c->resp.n_events;
		size_t used = 0;
		int rc;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			conn_lost(t, c, -errno);
			return;
		}
		if (n == 0) {
			if (c->got == 0) {
				conn_lost(t, c, -ECONNRESET);
				return;
			}
			rc = aw_http_resp_eof(&c->resp);
		} else {
			c->got += (uint64_t)n;
			rc = aw_http_resp_feed(&c->resp, buf, (size_t)n, &used);
			if (rc == 1 && used != (size_t)n)
				rc = -EBADMSG; /* bytes after the answer: we sent one request */
		}
		if (c->resp.n_events != before && c->data)
			c->data(c->ctx, c->resp.n_events - before);
		if (rc < 0) {
			finish(t, c, -EBADMSG, 0, 0);
			return;
		}
		if (rc == 1) {
			int st = c->resp.status;

			if (st < 200 || st >= 300)
				finish(t, c, -EREMOTEIO, st, n > 0);
			else if (c->resp.sse_error)
				finish(t, c, -EREMOTEIO, 0, n > 0);
			else if (!c->resp.stopped)
				finish(t, c, -EBADMSG, 0, 0); /* the stream ended without "stop" */
			else
				finish(t, c, 0, st, n > 0);
			return;
		}
		if (n == 0)
			return;
	}
}

int aw_http_transport_open(const char *host, const char *port, uint32_t max_conns,
			   uint64_t timeout_ns, struct aw_http_transport **ret)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct aw_http_transport *t;

	if (!max_conns)
		return -EINVAL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return -EHOSTUNREACH;
	t = calloc(1, sizeof(*t));
	if (!t) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
	t->addr_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	t->n = max_conns;
	t->timeout_ns = timeout_ns;
	t->c = calloc(max_conns, sizeof(*t->c));
	t->ep = epoll_create1(EPOLL_CLOEXEC);
	if (!t->c || t->ep < 0) {
		int rc = t->c ? -errno : -ENOMEM;

		aw_http_transport_close(t);
		return rc;
	}
	for (uint32_t i = max_conns; i-- > 0;) {
		t->c[i].fd = -1;
		push(&t->closed, t, &t->c[i]);
	}
	*ret = t;
	return 0;
}

int aw_http_transport_submit(struct aw_http_transport *t, const char *req, size_t len,
			     aw_http_data_fn *data, aw_http_done_fn *done, void *ctx)
{
	struct conn *c = pop(&t->idle, t);
	int rc;

	if (!c) {
		c = pop(&t->closed, t);
		if (!c)
			return -EBUSY;
		rc = open_conn(t, c);
		if (rc < 0) {
			push(&t->closed, t, c);
			return rc;
		}
	}
	if (c->out_cap < len) {
		char *o = realloc(c->out, len);

		if (!o) {
			if (c->state == C_IDLE)
				push(&t->idle, t, c);
			else
				close_conn(t, c);
			return -ENOMEM;
		}
		c->out = o;
		c->out_cap = len;
	}
	memcpy(c->out, req, len);
	c->out_len = len;
	c->out_off = 0;
	c->got = 0;
	c->retried = 0;
	c->data = data;
	c->done = done;
	c->ctx = ctx;
	c->deadline = mono_ns() + t->timeout_ns;
	aw_http_resp_init(&c->resp);
	t->inflight++;
	if (c->state == C_IDLE)
		start_send(t, c); /* connecting ones send when writable */
	return 0;
}

int aw_http_transport_poll(struct aw_http_transport *t)
{
	struct epoll_event ev[64];
	uint64_t now;
	int n = epoll_wait(t->ep, ev, 64, 0);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct conn *c = &t->c[ev[i].data.u32];

		switch (c->state) {
		case C_IDLE: /* closed by the server (or it sent what nobody asked for) */
			unlink_idle(t, c);
			close(c->fd);
			c->fd = -1;
			c->state = C_CLOSED;
			push(&t->closed, t, c);
			break;
		case C_CONNECTING: {
			int err = 0;
			socklen_t l = sizeof(err);

			if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
				err = errno;
			if (err) {
				finish(t, c, -err, 0, 0);
				break;
			}
			c->state = C_SENDING;
			start_send(t, c);
			break;
		}
		case C_SENDING:
			if (ev[i].events & (EPOLLERR | EPOLLHUP))
				conn_lost(t, c, -ECONNRESET);
			else
				start_send(t, c);
			break;
		case C_RECV:
			on_readable(t, c);
			break;
		case C_CLOSED:
			break;
		}
	}
	now = mono_ns();
	if (t->inflight && now >= t->next_scan) {
		for (uint32_t i = 0; i < t->n; i++) {
			struct conn *c = &t->c[i];

			if (c->state >= C_CONNECTING && c->done && now > c->deadline)
				finish(t, c, -ETIMEDOUT, 0, 0);
		}
		t->next_scan = now + 1000000u;
	}
	return n;
}

int aw_http_transport_fd(const struct aw_http_transport *t)
{
	return t->ep;
}

uint32_t aw_http_transport_inflight(const struct aw_http_transport *t)
{
	return t->inflight;
}

void aw_http_transport_close(struct aw_http_transport *t)
{
	if (!t)
		return;
	for (uint32_t i = 0; t->c && i < t->n; i++) {
		if (t->c[i].fd >= 0)
			close(t->c[i].fd);
		free(t->c[i].out);
	}
	if (t->ep >= 0)
		close(t->ep);
	free(t->c);
	free(t);
}
