/* test-loadgen-http.c — aw-loadgen's HTTP transport: the request writer,
 * the response parser on well-formed answers split at every byte, on chunked,
 * Content-Length and close-delimited bodies, and on every malformed shape it
 * must refuse; then the connection pool against a small server thread
 * (keep-alive reuse, a server that closes kept-alive connections, a
 * malformed answer, a timeout, a refused connection). */
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
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "transport-http.h"

/* ---- request ---- */

static void test_request(void **state)
{
	static const char prompt[] = "say \"hi\"\\\n\x01 now";
	char buf[1024], *body;
	int n;
	(void)state;

	n = aw_http_completion_request(buf, sizeof(buf), "10.0.0.1", "8080", prompt, strlen(prompt),
				       32, 0.5, 7);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_memory_equal(buf, "POST /completion HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n", 47);
	body = strstr(buf, "\r\n\r\n");
	assert_non_null(body);
	body += 4;
	{
		char want[64];

		snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
		assert_non_null(strstr(buf, want));
	}
	assert_non_null(strstr(body, "\"prompt\": \"say \\\"hi\\\"\\\\\\u000a\\u0001 now\""));
	assert_non_null(strstr(body, "\"n_predict\": 32"));
	assert_non_null(strstr(body, "\"temperature\": 0.5"));
	assert_non_null(strstr(body, "\"seed\": 7"));
	assert_non_null(strstr(body, "\"stream\": true"));
	assert_non_null(strstr(body, "\"cache_prompt\": true}"));
	/* too small a buffer, at every size below the need */
	for (int cap = 0; cap < n + 1; cap++)
		assert_int_equal(aw_http_completion_request(buf, (size_t)cap, "10.0.0.1", "8080",
							    prompt, strlen(prompt), 32, 0.5, 7),
				 -ENOSPC);
}

/* ---- response ---- */

#define HDR_CHUNKED                                                                                \
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

/* llama-server's shape: one chunk per event, then the final one, then 0;
 * a comment split over two chunks, one with an extension */
static char sse_ok[2048];

static void build_sse_ok(void)
{
	static const char *const ev[] = {
		"data: {\"content\":\" a\",\"tokens\":[1],\"stop\":false,\"id_slot\":-1}\n\n",
		"data: {\"content\":\" b\",\"tokens\":[2],\"stop\":false,\"id_slot\":-1}\n\n",
		"data: {\"content\":\" c\",\"tokens\":[3],\"stop\":false,\"id_slot\":-1}\n\n",
		"data: {\"content\":\"\",\"generation_settings\":{\"stop\":[]},\"stop\" : "
		"true,\"x\":1}\n\n",
	};
	size_t o = (size_t)snprintf(sse_ok, sizeof(sse_ok), "%s", HDR_CHUNKED);

	for (int i = 0; i < 4; i++) {
		if (i == 2)
			o += (size_t)snprintf(sse_ok + o, sizeof(sse_ok) - o,
					      "5;ext=1\r\n: pin\r\n2\r\ng\n\r\n");
		o += (size_t)snprintf(sse_ok + o, sizeof(sse_ok) - o, "%zX\r\n%s\r\n",
				      strlen(ev[i]), ev[i]);
	}
	snprintf(sse_ok + o, sizeof(sse_ok) - o, "0\r\nX-Trailer: 1\r\n\r\n");
}

/* "HTTP/1.1 200 OK" with a Content-Length body */
static const char *with_len(const char *body)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(body),
		 body);
	return buf;
}

/* Feed 'text' in pieces of 'step' bytes (0 = all at once). */
static int feed(struct aw_http_resp *r, const char *text, size_t len, size_t step, size_t *used)
{
	size_t off = 0;
	int rc = 0;

	aw_http_resp_init(r);
	if (!step)
		step = len;
	while (off < len) {
		size_t n = len - off < step ? len - off : step, u = 0;

		rc = aw_http_resp_feed(r, text + off, n, &u);
		if (rc != 0) {
			*used = off + (rc == 1 ? u : 0);
			return rc;
		}
		off += n;
	}
	*used = off;
	return rc;
}

static void test_resp_chunked_sse(void **state)
{
	struct aw_http_resp *r = malloc(sizeof(*r));
	size_t len = strlen(sse_ok), used;
	(void)state;

	assert_non_null(r);
	build_sse_ok();
	len = strlen(sse_ok);
	for (size_t step = 0; step <= len; step += step < 8 ? 1 : 37) {
		assert_int_equal(feed(r, sse_ok, len, step, &used), 1);
		assert_int_equal(used, len);
		assert_int_equal(r->status, 200);
		assert_int_equal(r->n_events, 3); /* the stop event is not output */
		assert_true(r->stopped);
		assert_false(r->sse_error);
		assert_false(r->close);
	}
	/* bytes after the end are not taken */
	{
		char *two = malloc(2 * len + 1);

		assert_non_null(two);
		memcpy(two, sse_ok, len);
		memcpy(two + len, sse_ok, len + 1);
		assert_int_equal(feed(r, two, 2 * len, 0, &used), 1);
		assert_int_equal(used, len);
		free(two);
	}
	/* cut short anywhere: needs more, then EOF is an error */
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(feed(r, sse_ok, cut, 0, &used), 0);
		assert_int_equal(aw_http_resp_eof(r), -EBADMSG);
		assert_non_null(r->why);
	}
	free(r);
}

static void test_resp_framings(void **state)
{
	struct aw_http_resp *r = malloc(sizeof(*r));
	size_t used;
	(void)state;

	assert_non_null(r);
	/* Content-Length, CRLF event lines, no space after "data:" */
	{
		static const char t[] = "HTTP/1.1 200 OK\r\ncontent-LENGTH:  42 \r\n\r\n"
					"data:{\"stop\":false}\r\n\r\ndata:{\"stop\":true}\n";
		assert_int_equal(feed(r, t, strlen(t), 1, &used), 1);
		assert_int_equal(used, strlen(t));
		assert_int_equal(r->n_events, 1);
		assert_true(r->stopped);
	}
	/* until the close (no length, no chunking); HTTP/1.0 */
	{
		static const char t[] =
			"HTTP/1.0 200 OK\r\n\r\ndata: {\"a\":1}\n\ndata: {\"stop\":true}\n\n";
		assert_int_equal(feed(r, t, strlen(t), 3, &used), 0);
		assert_true(r->close);
		assert_int_equal(aw_http_resp_eof(r), 1);
		assert_true(r->stopped);
		assert_int_equal(r->n_events, 1);
	}
	/* an interim 100, then the answer; Connection: close */
	{
		static const char t[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
					"Connection: close\r\nContent-Length: 19\r\n\r\n"
					"data: {\"stop\":true}";
		assert_int_equal(feed(r, t, strlen(t), 0, &used), 1);
		assert_int_equal(r->status, 200);
		assert_true(r->close);
		/* the event line never ended: not an event */
		assert_false(r->stopped);
	}
	/* an error answer: its body is not read as events */
	{
		static const char t[] =
			"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 16\r\n\r\n"
			"{\"error\": \"x\"}\n\n";
		assert_int_equal(feed(r, t, strlen(t), 2, &used), 1);
		assert_int_equal(r->status, 503);
		assert_int_equal(r->n_events, 0);
		assert_false(r->stopped);
	}
	/* an error event in a 200 stream; an empty 204 */
	{
		const char *t = with_len("data: {\"error\":{\"code\":500}}\nevent: x\n\n");
		assert_int_equal(feed(r, t, strlen(t), 0, &used), 1);
		assert_true(r->sse_error);
		assert_false(r->stopped);
		static const char e[] = "HTTP/1.1 204 No Content\r\n\r\n";
		assert_int_equal(feed(r, e, strlen(e), 0, &used), 1);
	}
	/* what must not read as the stop flag */
	{
		const char *t = with_len("data: {\"stop\":false,\"s\":\"\\\"stop\\\": "
					 "true\",\"stop_type\":\"t\",\"stop\":[\"t\"]}\n"
					 "id: 1\nretry: 2\n");
		assert_int_equal(feed(r, t, strlen(t), 0, &used), 1);
		assert_int_equal(r->n_events, 1);
		assert_false(r->stopped);
	}
	free(r);
}

static void expect_bad(const char *text, const char *why)
{
	struct aw_http_resp *r = malloc(sizeof(*r));
	size_t used;

	assert_non_null(r);
	for (size_t step = 0; step < 3; step++) {
		int rc = feed(r, text, strlen(text), step, &used);

		if (rc == 0)
			rc = aw_http_resp_eof(r);
		if (rc != -EBADMSG)
			fail_msg("accepted: %s", text);
		assert_non_null(r->why);
		if (!strstr(r->why, why))
			fail_msg("'%s': said '%s', want '%s'", text, r->why, why);
		/* stays failed */
		assert_int_equal(aw_http_resp_feed(r, "x", 1, &used), -EBADMSG);
	}
	free(r);
}

static void test_resp_malformed(void **state)
{
	(void)state;
	expect_bad("HTTP/2 200 OK\r\n\r\n", "bad status line");
	expect_bad("HTTP/1.1 20 OK\r\n\r\n", "bad status");
	expect_bad("HTTP/1.1 2x0 OK\r\n\r\n", "bad status code");
	expect_bad("HTTP/1.1 200OK\r\n\r\n", "bad status line");
	expect_bad("HTTP/1.1 099 x\r\n\r\n", "bad status code");
	expect_bad("ICY 200 OK\r\n\r\n", "bad status line");
	expect_bad("HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "without a name");
	expect_bad("HTTP/1.1 200 OK\r\n: empty name\r\n\r\n", "without a name");
	expect_bad("HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n", "folded");
	expect_bad("HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n", "bad header name");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "bad Content-Length");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", "empty Content-Length");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		   "bad Content-Length");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		   "conflicting");
	expect_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding");
	expect_bad(HDR_CHUNKED "zz\r\n", "bad chunk size");
	expect_bad(HDR_CHUNKED "\r\n", "bad chunk size");
	expect_bad(HDR_CHUNKED "5 x\r\n", "bad chunk size");
	expect_bad(HDR_CHUNKED "11111111111111111\r\n", "chunk size too large");
	expect_bad(HDR_CHUNKED "2\r\n:abc\r\n", "longer than its size");
	expect_bad(HDR_CHUNKED "9\r\nhello: x\n\r\n", "not a server-sent event line");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}\n\n\n", "not a server-sent");
	{
		static const char t[] = "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n";
		struct aw_http_resp *r = malloc(sizeof(*r));
		size_t used;

		assert_non_null(r);
		assert_int_equal(feed(r, t, sizeof(t) - 1, 0, &used), -EBADMSG);
		assert_non_null(strstr(r->why, "NUL"));
		free(r);
	}
	/* cut short: before the status line, in the headers, in the body */
	expect_bad("", "before the status line");
	expect_bad("HTTP/1.1 200 OK\r\nA: b\r\n", "in the headers");
	expect_bad("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\ndata", "in the body");
	expect_bad(HDR_CHUNKED "0\r\n", "in the body");
	/* the bounds */
	{
		size_t n = AW_HTTP_LINE_MAX + 64;
		char *t = malloc(n + 64);

		assert_non_null(t);
		strcpy(t, "HTTP/1.1 200 OK\r\nX: ");
		memset(t + strlen(t), 'a', AW_HTTP_LINE_MAX);
		strcpy(t + 20 + AW_HTTP_LINE_MAX, "\r\n\r\n");
		expect_bad(t, "too long");
		strcpy(t, "HTTP/1.1 200 OK\r\n");
		for (int i = 0; i <= AW_HTTP_MAX_HEADERS; i++)
			strcat(t, "A: b\r\n");
		strcat(t, "\r\n");
		expect_bad(t, "too many header lines");
		strcpy(t, HDR_CHUNKED "0\r\n");
		for (int i = 0; i <= AW_HTTP_MAX_HEADERS; i++)
			strcat(t, "A: b\r\n");
		strcat(t, "\r\n");
		expect_bad(t, "too many trailers");
		free(t);
	}
	{
		struct aw_http_resp *r = malloc(sizeof(*r));
		static const char h[] = "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\ndata: ";
		size_t n = AW_HTTP_SSE_LINE_MAX, used;
		char *big = malloc(n);

		assert_non_null(r);
		assert_non_null(big);
		memset(big, 'a', n);
		aw_http_resp_init(r);
		assert_int_equal(aw_http_resp_feed(r, h, strlen(h), &used), 0);
		assert_int_equal(aw_http_resp_feed(r, big, n, &used), -EBADMSG);
		assert_non_null(strstr(r->why, "line too long"));
		free(big);
		free(r);
	}
}

/* ---- the connection pool, against a server thread ---- */

struct srv {
	int lfd;
	int per_conn; /* answers per connection before closing it silently */
	int served;
};

/* One request (headers + Content-Length body) from fd into buf. */
static int read_request(int fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		char *end;
		ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
		buf[got] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (end) {
			char *cl = strstr(buf, "Content-Length: ");

			if (cl && got >= (size_t)(end + 4 - buf) + (size_t)atoi(cl + 16))
				return 0;
		}
		if (got + 1 >= cap)
			return -1;
	}
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	static char buf[65536];
	int fd;

	while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
		for (int k = 0; k < s->per_conn; k++) {
			const char *ans = sse_ok;

			if (read_request(fd, buf, sizeof(buf)) < 0)
				break;
			if (strstr(buf, "QUIT")) {
				close(s->lfd); /* a retry finds nobody listening */
				close(fd);
				return NULL;
			}
			if (strstr(buf, "HANG")) {
				(void)recv(fd, buf, 1, 0); /* until the client gives up */
				break;
			}
			if (strstr(buf, "BAD"))
				ans = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nxyz\n";
			if (strstr(buf, "E503"))
				ans = "HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\n{}";
			if (send(fd, ans, strlen(ans), MSG_NOSIGNAL) < 0)
				break;
			s->served++;
		}
		close(fd); /* no Connection: close: the client finds out */
	}
	return NULL;
}

struct result {
	int done, status, http_status;
	uint32_t chunks;
};

static void on_data(void *ctx, uint32_t n)
{
	((struct result *)ctx)->chunks += n;
}

static void on_done(void *ctx, int status, int http_status)
{
	struct result *r = ctx;

	r->done++;
	r->status = status;
	r->http_status = http_status;
}

static void run_one(struct aw_http_transport *t, const char *prompt, struct result *res)
{
	char req[512];
	int n = aw_http_completion_request(req, sizeof(req), "127.0.0.1", "1", prompt,
					   strlen(prompt), 4, 0, 1);

	memset(res, 0, sizeof(*res));
	assert_true(n > 0);
	assert_int_equal(aw_http_transport_submit(t, req, (size_t)n, on_data, on_done, res), 0);
	while (!res->done) {
		struct pollfd p = {.fd = aw_http_transport_fd(t), .events = POLLIN};

		(void)poll(&p, 1, 5);
		assert_true(aw_http_transport_poll(t) >= 0);
	}
	assert_int_equal(res->done, 1);
}

static void test_transport(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t al = sizeof(a);
	struct srv s = {.per_conn = 2};
	struct aw_http_transport *t;
	struct result res;
	pthread_t th;
	char port[16];
	(void)state;

	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s.lfd >= 0);
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s.lfd, 16), 0);
	assert_int_equal(getsockname(s.lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(port, sizeof(port), "%u", ntohs(a.sin_port));
	assert_int_equal(pthread_create(&th, NULL, srv_main, &s), 0);

	assert_int_equal(aw_http_transport_open("127.0.0.1", port, 4, 300000000u, &t), 0);
	/* every answer arrives although the server drops each connection after
	 * two: detected while idle, or the request goes again on a fresh one */
	for (int i = 0; i < 7; i++) {
		run_one(t, "hello", &res);
		if (res.status != 0)
			fail_msg("request %d: status %d", i, res.status);
		assert_int_equal(res.http_status, 200);
		assert_int_equal(res.chunks, 3);
		assert_int_equal(aw_http_transport_inflight(t), 0);
	}
	assert_int_equal(s.served, 7);
	run_one(t, "BAD", &res);
	assert_int_equal(res.status, -EBADMSG);
	run_one(t, "E503", &res);
	assert_int_equal(res.status, -EREMOTEIO);
	assert_int_equal(res.http_status, 503);
	run_one(t, "HANG", &res);
	assert_int_equal(res.status, -ETIMEDOUT);
	run_one(t, "hello", &res);
	assert_int_equal(res.status, 0);
	run_one(t, "QUIT", &res); /* the server thread ends: connection lost */
	assert_true(res.status == -ECONNRESET || res.status == -ECONNREFUSED);
	pthread_join(th, NULL);
	/* nothing listens there any more */
	run_one(t, "hello", &res);
	assert_int_equal(res.status, -ECONNREFUSED);
	aw_http_transport_close(t);
	assert_int_equal(aw_http_transport_open("127.0.0.1", port, 0, 1, &t), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request),	      cmocka_unit_test(test_resp_chunked_sse),
		cmocka_unit_test(test_resp_framings), cmocka_unit_test(test_resp_malformed),
		cmocka_unit_test(test_transport),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
