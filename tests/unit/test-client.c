/* test-client.c — libaw_client against aw-echod (in a thread, over loopback
 * UDP), against a lossy relay that drops, duplicates and reorders datagrams,
 * and against a scripted server that sends malformed or contradictory
 * replies. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client.h"
#include "echod.h"

/* ---- aw-echod in a thread ---- */

struct server {
	struct aw_echod *d;
	pthread_t th;
	volatile int quit;
	char port[16];
};

static void *server_main(void *arg)
{
	struct server *s = arg;

	aw_echod_run(s->d, &s->quit);
	return NULL;
}

static void server_start(struct server *s, size_t mtu)
{
	struct aw_echod_opts o = {.server_id = 7, .mtu = mtu};

	memset(s, 0, sizeof(*s));
	assert_int_equal(aw_echod_open("127.0.0.1", "0", &o, &s->d), 0);
	snprintf(s->port, sizeof(s->port), "%u", aw_echod_port(s->d));
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
	s->quit = 1;
	pthread_join(s->th, NULL);
	aw_echod_close(s->d);
}

static struct aw_client *client(const char *port, uint32_t rto_us)
{
	struct aw_client_opts o;
	struct aw_client *c;

	aw_client_opts_default(&o);
	o.rtx_timeout_us = rto_us;
	o.timeout_us = 5000000;
	assert_int_equal(aw_client_open("127.0.0.1", port, &o, &c), 0);
	return c;
}

static void test_ping_and_stats(void **state)
{
	struct server s;
	struct aw_client *c;
	uint8_t payload[100], big[20000];
	uint64_t rtt = 0;
	char text[4096];
	(void)state;

	server_start(&s, 1500);
	c = client(s.port, 20000);
	for (unsigned i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	assert_int_equal(aw_client_ping(c, payload, sizeof(payload), &rtt), 0);
	assert_true(rtt > 0);
	assert_int_equal(aw_client_ping(c, NULL, 0, NULL), 0);
	/* a segmented request answered by a DATA stream */
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + (i >> 8));
	assert_int_equal(aw_client_ping(c, big, sizeof(big), NULL), 0);
	assert_int_equal(aw_client_stats(c, text, sizeof(text)), 0);
	assert_non_null(strstr(text, "echod.pings 3\n"));
	assert_non_null(strstr(text, "echod.server_id 7\n"));
	assert_non_null(strstr(text, "reasm.completed"));
	aw_client_close(c);
	server_stop(&s);
}

static void test_refusals(void **state)
{
	struct server s;
	struct aw_client *c;
	struct aw_client_result res;
	struct aw_proto_req r;
	char out[64];
	(void)state;

	server_start(&s, 1500);
	c = client(s.port, 20000);
	aw_proto_req_init(&r);
	r.prompt.p = "hello";
	r.prompt.len = 5;
	assert_int_equal(aw_client_request(c, AW_PROTO_GENERATE, 99, &r, out, sizeof(out), &res),
			 -EREMOTEIO);
	assert_int_equal(res.err_code, AW_PROTO_ERR_UNSUPPORTED);
	assert_int_equal(res.server_id, 7);
	assert_non_null(strstr(res.err_msg, "PING and STATS"));
	/* a malformed body is answered BAD_REQUEST naming the field */
	assert_int_equal(
		aw_client_call(c, AW_PROTO_CLASSIFY, 0, "\x28\x00garbage", 9, NULL, 0, NULL, &res),
		-EREMOTEIO);
	assert_int_equal(res.err_code, AW_PROTO_ERR_BAD_REQUEST);
	assert_non_null(strstr(res.err_msg, "fixed_len"));
	/* CLASSIFY without labels */
	assert_int_equal(aw_client_request(c, AW_PROTO_CLASSIFY, 0, &r, out, sizeof(out), &res),
			 -EREMOTEIO);
	assert_int_equal(res.err_code, AW_PROTO_ERR_BAD_REQUEST);
	assert_non_null(strstr(res.err_msg, "LABEL"));
	/* not a request type */
	assert_int_equal(aw_client_submit(c, AW_PROTO_DATA, 0, NULL, 0, NULL, NULL, NULL, NULL),
			 -EINVAL);
	aw_client_close(c);
	server_stop(&s);
}

/* ---- many in flight ---- */

struct many {
	unsigned done, bad;
	uint64_t ids[512];
	uint32_t got[512];
};

static void many_data(void *ctx, uint64_t id, const void *bytes, size_t len, uint32_t nt,
		      uint64_t now)
{
	struct many *m = ctx;
	uint32_t v;
	(void)nt, (void)now;

	if (len != 4) {
		m->bad++;
		return;
	}
	memcpy(&v, bytes, 4);
	if (v >= 512 || m->ids[v] != id)
		m->bad++;
	else
		m->got[v]++;
}

static void many_done(void *ctx, uint64_t id, const struct aw_client_result *res)
{
	struct many *m = ctx;
	(void)id;

	if (res->status != 0)
		m->bad++;
	m->done++;
}

static void run_many(struct aw_client *c, struct many *m, unsigned n)
{
	memset(m, 0, sizeof(*m));
	for (uint32_t i = 0; i < n; i++)
		assert_int_equal(aw_client_submit(c, AW_PROTO_PING, 0, &i, 4, many_data, many_done,
						  m, &m->ids[i]),
				 0);
	assert_int_equal(aw_client_inflight(c), n);
	while (m->done < n)
		assert_true(aw_client_poll(c, 100) >= 0);
	assert_int_equal(m->bad, 0);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(m->got[i], 1);
	assert_int_equal(aw_client_inflight(c), 0);
}

static void test_many_in_flight(void **state)
{
	static struct many m;
	struct server s;
	struct aw_client *c;
	(void)state;

	server_start(&s, 1500);
	c = client(s.port, 200000);
	run_many(c, &m, 512);
	aw_client_close(c);
	server_stop(&s);
}

/* Replies that wait in the socket while the caller is busy elsewhere are
 * not losses: after a stall longer than the retransmit timer, polling must
 * read them before any timer fires (no spurious retransmission). */
static void test_stall_is_not_loss(void **state)
{
	static struct many m;
	struct server s;
	struct aw_client_opts op;
	struct aw_client *c;
	struct aw_client_stats st;
	struct timespec ts = {0, 50 * 1000000};
	(void)state;

	server_start(&s, 1500);
	aw_client_opts_default(&op);
	op.rtx_timeout_us = 2000;
	assert_int_equal(aw_client_open("127.0.0.1", s.port, &op, &c), 0);
	memset(&m, 0, sizeof(m));
	for (uint32_t i = 0; i < 300; i++)
		assert_int_equal(aw_client_submit(c, AW_PROTO_PING, 0, &i, 4, many_data, many_done,
						  &m, &m.ids[i]),
				 0);
	nanosleep(&ts, NULL); /* 25 retransmit timeouts pass; all replies arrive */
	while (m.done < 300)
		assert_true(aw_client_poll(c, 100) >= 0);
	assert_int_equal(m.bad, 0);
	aw_client_get_stats(c, &st);
	assert_int_equal(st.retransmits, 0);
	assert_int_equal(st.rx_dgrams, 300);
	aw_client_close(c);
	server_stop(&s);
}

/* ---- a scripted server: the test plays the server on a plain socket ---- */

struct script {
	int fd;
	char port[16];
	struct sockaddr_storage peer;
	socklen_t peerlen;
};

static void script_open(struct script *s)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	memset(s, 0, sizeof(*s));
	s->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s->fd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &l), 0);
	snprintf(s->port, sizeof(s->port), "%u", ntohs(a.sin_port));
}

/* Receive one datagram from the client (keeps polling the client meanwhile). */
static struct aw_proto_hdr script_recv(struct script *s, struct aw_client *c)
{
	uint8_t buf[2048];
	struct aw_proto_hdr h;

	for (;;) {
		struct pollfd p = {.fd = s->fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 5) == 1) {
			s->peerlen = sizeof(s->peer);
			n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&s->peer,
				     &s->peerlen);
			assert_true(n >= 0);
			assert_int_equal(aw_proto_hdr_parse(buf, (size_t)n, 0, &h, NULL), 0);
			return h;
		}
		(void)aw_client_poll(c, 0);
	}
}

/* Receive until a datagram of 'type' arrives (others, e.g. a previous
 * request's ACK or retransmissions, are skipped); the reply address is the
 * sender of that datagram. */
static struct aw_proto_hdr script_expect(struct script *s, struct aw_client *c, uint8_t type)
{
	struct aw_proto_hdr h;

	do
		h = script_recv(s, c);
	while (h.type != type);
	return h;
}

static void script_send_raw(struct script *s, const void *buf, size_t len)
{
	assert_int_equal(sendto(s->fd, buf, len, 0, (struct sockaddr *)&s->peer, s->peerlen),
			 (ssize_t)len);
}

static void script_send(struct script *s, uint64_t id, uint8_t type, uint16_t flags, uint32_t seq,
			const void *payload, size_t len)
{
	uint8_t buf[2048];
	struct aw_proto_hdr h;
	int n;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.flags = flags;
	h.request_id = id;
	h.seq = seq;
	h.server_id = 3;
	n = aw_proto_build(buf, sizeof(buf), &h, payload, len);
	assert_true(n > 0);
	script_send_raw(s, buf, (size_t)n);
}

struct one {
	int done;
	struct aw_client_result res;
	char text[256];
	size_t len;
};

static void one_data(void *ctx, uint64_t id, const void *bytes, size_t len, uint32_t nt,
		     uint64_t now)
{
	struct one *o = ctx;
	(void)id, (void)nt, (void)now;

	if (o->len + len < sizeof(o->text)) {
		memcpy(o->text + o->len, bytes, len);
		o->len += len;
	}
}

static void one_done(void *ctx, uint64_t id, const struct aw_client_result *res)
{
	struct one *o = ctx;
	(void)id;

	o->res = *res;
	o->done = 1;
}

static void wait_one(struct aw_client *c, struct one *o)
{
	while (!o->done)
		assert_true(aw_client_poll(c, 10) >= 0);
}

static int data(uint8_t *b, const char *s)
{
	return aw_proto_data_build(b, 256, 1, s, strlen(s));
}

static int summary(uint8_t *b, uint32_t n_data, uint64_t bytes)
{
	struct aw_proto_summary sm;

	memset(&sm, 0, sizeof(sm));
	sm.finish = AW_PROTO_FINISH_LENGTH;
	sm.gen_tokens = n_data;
	sm.n_data = n_data;
	sm.data_bytes = bytes;
	return aw_proto_summary_build(b, 256, &sm, NULL);
}

static void test_untrusted_replies(void **state)
{
	struct script s;
	struct aw_client *c;
	struct aw_client_stats st;
	struct aw_proto_hdr h;
	static struct one o;
	uint8_t b[256], raw[256];
	uint64_t id;
	int n;
	(void)state;

	script_open(&s);
	c = client(s.port, 1000000); /* no retransmissions during the script */
	memset(&o, 0, sizeof(o));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_STATS, 0, NULL, 0, one_data, one_done, &o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_STATS);
	assert_true(h.request_id == id);
	/* garbage the client must drop and count: truncated, wrong magic,
	 * unknown type, a request type, a reply for another id, a segmented reply */
	script_send_raw(&s, "AW", 2);
	n = data(b, "x");
	memset(raw, 0, sizeof(raw));
	{
		struct aw_proto_hdr t;

		memset(&t, 0, sizeof(t));
		t.type = AW_PROTO_DATA;
		t.request_id = id;
		n = aw_proto_build(raw, sizeof(raw), &t, b, (size_t)n);
		raw[0] = 'Z';
		script_send_raw(&s, raw, (size_t)n);
		raw[0] = 'A';
		raw[3] = 0x90;
		script_send_raw(&s, raw, (size_t)n);
		raw[3] = AW_PROTO_PING;
		script_send_raw(&s, raw, (size_t)n);
		raw[3] = AW_PROTO_DATA;
		raw[36] = (uint8_t)(raw[36] + 1); /* payload_len beyond the datagram */
		script_send_raw(&s, raw, (size_t)n);
	}
	n = data(b, "stray");
	script_send(&s, id + 1, AW_PROTO_DATA, 0, 0, b, (size_t)n);
	/* a DATA with a too-short payload is a bad reply: fails the request later?
	 * no: first the valid stream, out of order */
	n = data(b, " world");
	script_send(&s, id, AW_PROTO_DATA, 0, 1, b, (size_t)n);
	n = data(b, "hello");
	script_send(&s, id, AW_PROTO_DATA, 0, 0, b, (size_t)n);
	script_send(&s, id, AW_PROTO_DATA, 0, 0, b, (size_t)n); /* duplicate */
	/* a summary that claims more data than arrived */
	n = summary(b, 2, 12);
	script_send(&s, id, AW_PROTO_END, 0, 2, b, (size_t)n);
	wait_one(c, &o);
	assert_int_equal(o.res.status, -EBADMSG);
	assert_non_null(strstr(o.res.err_msg, "summary"));
	assert_int_equal(o.len, 11);
	assert_memory_equal(o.text, "hello world", 11);
	aw_client_get_stats(c, &st);
	assert_int_equal(st.rx_bad, 5);
	assert_int_equal(st.rx_stray, 1);
	assert_true(st.dups >= 1);

	/* now a correct stream with a gap: the client asks to RESUME from 1 */
	memset(&o, 0, sizeof(o));
	{
		struct aw_client_opts op;

		aw_client_close(c);
		aw_client_opts_default(&op);
		op.rtx_timeout_us = 20000;
		assert_int_equal(aw_client_open("127.0.0.1", s.port, &op, &c), 0);
	}
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_STATS, 0, NULL, 0, one_data, one_done, &o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_STATS);
	n = data(b, "ab");
	script_send(&s, id, AW_PROTO_DATA, 0, 0, b, (size_t)n);
	n = summary(b, 2, 4);
	script_send(&s, id, AW_PROTO_END, 0, 2, b, (size_t)n);
	h = script_expect(&s, c, AW_PROTO_RESUME);
	assert_int_equal(h.seq, 1);
	n = data(b, "cd");
	script_send(&s, id, AW_PROTO_DATA, 0, 1, b, (size_t)n);
	wait_one(c, &o);
	assert_int_equal(o.res.status, 0);
	assert_int_equal(o.res.summary.finish, AW_PROTO_FINISH_LENGTH);
	assert_int_equal(o.res.n_resumes, 1);
	assert_int_equal(o.res.server_id, 3);
	assert_memory_equal(o.text, "abcd", 4);
	h = script_expect(&s, c, AW_PROTO_ACK);
	assert_true(h.request_id == id);

	/* cancel: the server says it never had the request */
	memset(&o, 0, sizeof(o));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_STATS, 0, NULL, 0, one_data, one_done, &o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_STATS);
	assert_int_equal(aw_client_cancel(c, id), 0);
	assert_int_equal(aw_client_cancel(c, id + 1000), -ENOENT);
	h = script_expect(&s, c, AW_PROTO_CANCEL);
	assert_true(h.request_id == id);
	n = aw_proto_error_build(b, sizeof(b), AW_PROTO_ERR_UNKNOWN_REQUEST, 0, "not held");
	script_send(&s, id, AW_PROTO_ERROR, AW_PROTO_F_CONTROL, 0, b, (size_t)n);
	wait_one(c, &o);
	assert_int_equal(o.res.status, -ECANCELED);

	/* an OVERLOADED refusal carries its hint */
	memset(&o, 0, sizeof(o));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_STATS, 0, NULL, 0, one_data, one_done, &o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_STATS);
	n = aw_proto_error_build(b, sizeof(b), AW_PROTO_ERR_OVERLOADED, 2500, "queue full");
	script_send(&s, id, AW_PROTO_ERROR, 0, 0, b, (size_t)n);
	wait_one(c, &o);
	assert_int_equal(o.res.status, -EREMOTEIO);
	assert_int_equal(o.res.err_code, AW_PROTO_ERR_OVERLOADED);
	assert_int_equal(o.res.retry_after_us, 2500);
	aw_client_close(c);
	close(s.fd);
}

/* TOOL_CALL datagrams in the stream: delivered in order between DATA, counted
 * in the summary's n_data; a malformed one fails the request. */
struct calls {
	int n;
	char names[4][65];
	char args[4][6000];
};

struct one_calls {
	struct one o; /* first: the request's ctx points here */
	struct calls k;
};

static void on_call(void *ctx, uint64_t id, const struct aw_proto_tool_call *tc, uint64_t now)
{
	struct calls *k = &((struct one_calls *)ctx)->k; /* ctx is the request's: &w.o */
	(void)id, (void)now;

	assert_true(k->n < 4);
	snprintf(k->names[k->n], 65, "%.*s", (int)tc->name.len, tc->name.p);
	snprintf(k->args[k->n], sizeof(k->args[0]), "%.*s", (int)tc->args.len, tc->args.p);
	k->n++;
}

static void test_tool_calls(void **state)
{
	static struct one_calls w;
	struct script s;
	struct aw_client *c;
	struct aw_proto_hdr h;
	uint8_t b[256];
	uint64_t id;
	int n;
	(void)state;

	script_open(&s);
	assert_int_equal(aw_client_open("127.0.0.1", s.port, NULL, &c), 0);
	aw_client_set_tool_call_fn(c, on_call);
	memset(&w, 0, sizeof(w));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_GENERATE, 0, "x", 1, NULL, one_done, &w.o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_GENERATE);
	n = data(b, "Let me check.");
	script_send(&s, h.request_id, AW_PROTO_DATA, 0, 0, b, (size_t)n);
	struct aw_proto_tool_call tc = {.n_tokens = 9, .index = 0};
	tc.name = (struct aw_proto_str){"get_weather", 11};
	tc.args = (struct aw_proto_str){"{\"city\": \"Paris\"}", 17};
	n = aw_proto_tool_call_build(b, sizeof(b), &tc);
	script_send(&s, h.request_id, AW_PROTO_TOOL_CALL, 0, 1, b, (size_t)n);
	tc.index = 1;
	tc.name = (struct aw_proto_str){"time", 4};
	tc.args = (struct aw_proto_str){"{}", 2};
	n = aw_proto_tool_call_build(b, sizeof(b), &tc);
	script_send(&s, h.request_id, AW_PROTO_TOOL_CALL, 0, 2, b, (size_t)n);
	struct aw_proto_summary sm;
	memset(&sm, 0, sizeof(sm));
	sm.finish = AW_PROTO_FINISH_TOOL_CALLS;
	sm.n_data = 3;
	sm.data_bytes = 13;
	n = aw_proto_summary_build(b, sizeof(b), &sm, NULL);
	script_send(&s, h.request_id, AW_PROTO_END, 0, 3, b, (size_t)n);
	wait_one(c, &w.o);
	assert_int_equal(w.o.res.status, 0);
	assert_int_equal(w.o.res.summary.finish, AW_PROTO_FINISH_TOOL_CALLS);
	assert_int_equal(w.o.res.n_tool_calls, 2);
	assert_int_equal(w.o.res.n_data, 1);
	assert_int_equal(w.k.n, 2);
	assert_string_equal(w.k.names[0], "get_weather");
	assert_string_equal(w.k.args[0], "{\"city\": \"Paris\"}");
	assert_string_equal(w.k.names[1], "time");

	/* a TOOL_CALL whose lengths disagree: the request fails, nothing crashes */
	memset(&w, 0, sizeof(w));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_GENERATE, 0, "y", 1, NULL, one_done, &w.o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_GENERATE);
	tc.index = 0;
	n = aw_proto_tool_call_build(b, sizeof(b), &tc);
	b[6] = 200; /* name_len beyond the payload */
	script_send(&s, h.request_id, AW_PROTO_TOOL_CALL, 0, 0, b, (size_t)n);
	wait_one(c, &w.o);
	assert_int_equal(w.o.res.status, -EBADMSG);
	assert_int_equal(w.k.n, 0);

	/* a call of ~5 KB arguments in 4 fragments (AW_PROTO_F_MORE on all but
	 * the last), sent out of order: one call, every fragment in n_data */
	static char big[5000], whole[5200];
	memset(big, 'a', sizeof(big));
	big[0] = '"', big[sizeof(big) - 1] = '"';
	tc.index = 0;
	tc.name = (struct aw_proto_str){"write_file", 10};
	tc.args = (struct aw_proto_str){big, sizeof(big)};
	const int wn = aw_proto_tool_call_build(whole, sizeof(whole), &tc);
	assert_int_equal(wn, 12 + 10 + 5000);
	memset(&w, 0, sizeof(w));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_GENERATE, 0, "z", 1, NULL, one_done, &w.o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_GENERATE);
	static const uint32_t order[4] = {2, 0, 3, 1};
	for (int i = 0; i < 4; i++) {
		const uint32_t q = order[i], o = q * 1400, k = q < 3 ? 1400 : (uint32_t)wn - o;
		script_send(&s, h.request_id, AW_PROTO_TOOL_CALL, q < 3 ? AW_PROTO_F_MORE : 0, q,
			    whole + o, k);
	}
	memset(&sm, 0, sizeof(sm));
	sm.finish = AW_PROTO_FINISH_TOOL_CALLS;
	sm.n_data = 4;
	n = aw_proto_summary_build(b, sizeof(b), &sm, NULL);
	script_send(&s, h.request_id, AW_PROTO_END, 0, 4, b, (size_t)n);
	wait_one(c, &w.o);
	assert_int_equal(w.o.res.status, 0);
	assert_int_equal(w.o.res.n_tool_calls, 1);
	assert_int_equal(w.k.n, 1);
	assert_string_equal(w.k.names[0], "write_file");
	assert_int_equal(strlen(w.k.args[0]), 5000);
	assert_memory_equal(w.k.args[0], big, 5000);

	/* fragments then END (the last fragment never sent): a clear error */
	memset(&w, 0, sizeof(w));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_GENERATE, 0, "v", 1, NULL, one_done, &w.o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_GENERATE);
	script_send(&s, h.request_id, AW_PROTO_TOOL_CALL, AW_PROTO_F_MORE, 0, whole, 1400);
	sm.n_data = 1;
	n = aw_proto_summary_build(b, sizeof(b), &sm, NULL);
	script_send(&s, h.request_id, AW_PROTO_END, 0, 1, b, (size_t)n);
	wait_one(c, &w.o);
	assert_int_equal(w.o.res.status, -EBADMSG);
	assert_string_equal(w.o.res.err_msg,
			    "TOOL_CALL fragments missing: 1400 bytes so far, then END (seq 1)");
	assert_int_equal(w.k.n, 0);
	/* MORE on a DATA datagram: refused */
	memset(&w, 0, sizeof(w));
	assert_int_equal(
		aw_client_submit(c, AW_PROTO_GENERATE, 0, "u", 1, NULL, one_done, &w.o, &id), 0);
	h = script_expect(&s, c, AW_PROTO_GENERATE);
	n = data(b, "x");
	script_send(&s, h.request_id, AW_PROTO_DATA, AW_PROTO_F_MORE, 0, b, (size_t)n);
	wait_one(c, &w.o);
	assert_int_equal(w.o.res.status, -EBADMSG);
	assert_string_equal(w.o.res.err_msg,
			    "DATA datagram (seq 0) marked MORE: only TOOL_CALL is fragmented");
	aw_client_close(c);
	close(s.fd);
}

static void test_timeout(void **state)
{
	struct script s;
	struct aw_client_opts op;
	struct aw_client *c;
	struct aw_client_result res;
	struct aw_client_stats st;
	(void)state;

	script_open(&s); /* never answers */
	aw_client_opts_default(&op);
	op.rtx_timeout_us = 2000;
	op.max_retries = 3;
	assert_int_equal(aw_client_open("127.0.0.1", s.port, &op, &c), 0);
	assert_int_equal(aw_client_call(c, AW_PROTO_PING, 0, "x", 1, NULL, 0, NULL, &res),
			 -ETIMEDOUT);
	assert_int_equal(res.n_retransmits, 3);
	aw_client_get_stats(c, &st);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.tx_dgrams, 4);
	aw_client_close(c);
	close(s.fd);
}

/* ---- a lossy relay between client and aw-echod ---- */

struct relay {
	int front, back;
	char port[16];
	pthread_t th;
	volatile int quit;
	unsigned drop_c2s, drop_s2c; /* drop a datagram with probability 1/N (0 = never) */
	uint64_t rng;		     /* xorshift state: a fixed seed, so runs repeat */
	unsigned dup_s2c, swap_s2c;  /* duplicate / hold back datagram k when k % N == 1 */
	unsigned n_c2s, n_s2c, dropped, swapped;
};

static int chance(struct relay *r, unsigned n)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return n && (z >> 32) % n == 0;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	struct sockaddr_storage cl;
	socklen_t cllen = 0;
	uint8_t buf[65536], held[65536];
	ssize_t heldlen = -1;

	while (!r->quit) {
		struct pollfd p[2] = {{.fd = r->front, .events = POLLIN},
				      {.fd = r->back, .events = POLLIN}};
		ssize_t n;

		if (poll(p, 2, 2) <= 0) {
			if (heldlen >= 0 && cllen) { /* release what was held back */
				sendto(r->front, held, (size_t)heldlen, 0, (struct sockaddr *)&cl,
				       cllen);
				heldlen = -1;
			}
			continue;
		}
		if (p[0].revents & POLLIN) {
			socklen_t l = sizeof(cl);

			n = recvfrom(r->front, buf, sizeof(buf), 0, (struct sockaddr *)&cl, &l);
			cllen = l;
			if (n >= 0) {
				r->n_c2s++;
				if (chance(r, r->drop_c2s))
					r->dropped++;
				else
					send(r->back, buf, (size_t)n, 0);
			}
		}
		if ((p[1].revents & POLLIN) && cllen) {
			n = recv(r->back, buf, sizeof(buf), 0);
			if (n >= 0) {
				unsigned k = r->n_s2c++;

				if (chance(r, r->drop_s2c)) {
					r->dropped++;
					continue;
				}
				if (r->swap_s2c && k % r->swap_s2c == 1 && heldlen < 0) {
					memcpy(held, buf, (size_t)n);
					heldlen = n;
					r->swapped++;
					continue;
				}
				sendto(r->front, buf, (size_t)n, 0, (struct sockaddr *)&cl, cllen);
				if (r->dup_s2c && k % r->dup_s2c == 1)
					sendto(r->front, buf, (size_t)n, 0, (struct sockaddr *)&cl,
					       cllen);
				if (heldlen >= 0) {
					sendto(r->front, held, (size_t)heldlen, 0,
					       (struct sockaddr *)&cl, cllen);
					heldlen = -1;
				}
			}
		}
	}
	return NULL;
}

static void relay_start(struct relay *r, const char *server_port)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	r->front = socket(AF_INET, SOCK_DGRAM, 0);
	r->back = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(bind(r->front, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(r->front, (struct sockaddr *)&a, &l), 0);
	snprintf(r->port, sizeof(r->port), "%u", ntohs(a.sin_port));
	a.sin_port = htons((uint16_t)atoi(server_port));
	assert_int_equal(connect(r->back, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(pthread_create(&r->th, NULL, relay_main, r), 0);
}

static void relay_stop(struct relay *r)
{
	r->quit = 1;
	pthread_join(r->th, NULL);
	close(r->front);
	close(r->back);
}

static void test_loss_recovery(void **state)
{
	static struct relay r;
	static struct many m;
	struct server s;
	struct aw_client *c;
	struct aw_client_stats st;
	char text[4096], text2[4096];
	uint8_t big[6000];
	(void)state;

	server_start(&s, 300); /* small replies: STATS spans many datagrams */
	memset(&r, 0, sizeof(r));
	r.rng = 0x9e3779b97f4a7c15ull;
	r.drop_c2s = 5;
	r.drop_s2c = 4;
	r.dup_s2c = 7;
	r.swap_s2c = 3;
	relay_start(&r, s.port);
	{
		/* 20-25 % loss each way: allow more timer expiries in a row */
		struct aw_client_opts op;

		aw_client_opts_default(&op);
		op.rtx_timeout_us = 5000;
		op.max_retries = 12;
		assert_int_equal(aw_client_open("127.0.0.1", r.port, &op, &c), 0);
	}
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	for (int k = 0; k < 20; k++) {
		assert_int_equal(aw_client_stats(c, text, sizeof(text)), 0);
		assert_non_null(strstr(text, "rtx.bytes"));
		assert_int_equal(aw_client_ping(c, big, sizeof(big), NULL), 0);
	}
	/* the same through the relay with many in flight */
	run_many(c, &m, 64);
	aw_client_get_stats(c, &st);
	assert_true(r.dropped > 0 && r.swapped > 0);
	assert_true(st.resumes > 0);
	assert_true(st.retransmits > 0);
	assert_true(st.dups > 0);
	/* the server resent stored replies instead of running requests twice */
	relay_stop(&r);
	aw_client_close(c);
	c = client(s.port, 20000);
	assert_int_equal(aw_client_stats(c, text2, sizeof(text2)), 0);
	assert_null(strstr(text2, "echod.resent_dgrams 0\n"));
	assert_non_null(strstr(text2, "echod.stats 21\n"));
	aw_client_close(c);
	server_stop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ping_and_stats),	  cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_many_in_flight),	  cmocka_unit_test(test_stall_is_not_loss),
		cmocka_unit_test(test_untrusted_replies), cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_loss_recovery),	  cmocka_unit_test(test_tool_calls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
