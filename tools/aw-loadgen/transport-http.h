/* transport-http.h — aw-loadgen's HTTP/1.1 transport (llama-server's
 * streaming /completion API; the bytes are http.h's).
 *
 * A pool of kernel TCP connections to one server, each non-blocking and
 * watched by one epoll instance: one connection per in-flight request (no
 * pipelining), kept alive and reused after a response; a new one is opened
 * when none is idle, up to max_conns. A connection the server closed while
 * idle is dropped; a request whose reused connection turns out to be closed
 * before any answer byte is sent again once on a fresh one. Single thread;
 * callbacks run inside aw_http_transport_poll().
 */
#ifndef AW_TRANSPORT_HTTP_H
#define AW_TRANSPORT_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct aw_http_transport;

/* n output chunks (SSE data events) arrived in one read. */
typedef void aw_http_data_fn(void *ctx, uint32_t n);
/* The request ended: status 0 (a 2xx stream that reached "stop": true);
 * -EREMOTEIO: the server answered an error (http_status = its non-2xx
 * status, or 0 for an error event inside the stream); -EBADMSG: malformed or
 * cut-short answer; -ETIMEDOUT; other -errno: the connection failed
 * (-ECONNREFUSED, -ECONNRESET, ...). */
typedef void aw_http_done_fn(void *ctx, int status, int http_status);

/* Resolve host:port (once) and set up the pool. timeout_ns: per request,
 * from submission. Returns 0 and sets *ret (free with
 * aw_http_transport_close), or -errno (-EHOSTUNREACH: no address). */
int aw_http_transport_open(const char *host, const char *port, uint32_t max_conns,
			   uint64_t timeout_ns, struct aw_http_transport **ret);

/* Send 'req' (len bytes, a whole HTTP request; copied). Returns 0 (the
 * callbacks will run), -EBUSY (max_conns requests in flight) or -errno (no
 * socket; no callback runs). */
int aw_http_transport_submit(struct aw_http_transport *t, const char *req, size_t len,
			     aw_http_data_fn *data, aw_http_done_fn *done, void *ctx);

/* Handle ready connections and expired requests without blocking. Returns
 * the number of connection events handled, or -errno. */
int aw_http_transport_poll(struct aw_http_transport *t);

/* A descriptor that is readable when poll has work (the epoll fd). */
int aw_http_transport_fd(const struct aw_http_transport *t);

/* Requests in flight. */
uint32_t aw_http_transport_inflight(const struct aw_http_transport *t);

/* Close every connection (pending requests get no callback) and free. NULL ok. */
void aw_http_transport_close(struct aw_http_transport *t);

#endif
