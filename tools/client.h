/* client.h — libaw_client: the C client of the agentwire protocol.
 *
 * One struct aw_client owns one UDP socket (or another transport, see
 * struct aw_client_transport) to one server and keeps any number of requests
 * in flight on it, up to opts.max_inflight. It does what docs/PROTOCOL.md
 * gives the client to do: segments requests to the MTU, retransmits a request
 * nobody answered, buffers out-of-order replies and delivers them in order,
 * asks the server to RESUME from the first missing sequence number, drops
 * duplicates, CANCELs, ACKs, and enforces a per-request timeout. Every reply
 * goes through the same bounds-checked codec as the server's input; a reply
 * that breaks a rule is counted and dropped, and a summary that disagrees with
 * what arrived fails the request with -EBADMSG.
 *
 * Asynchronous use: aw_client_submit() then aw_client_poll() in a loop; the
 * callbacks run inside aw_client_poll(). Synchronous use: aw_client_call(),
 * aw_client_generate(), aw_client_ping(), aw_client_stats(). Not thread-safe:
 * one aw_client per thread. Example: docs/CLIENT.md.
 */
#ifndef AW_CLIENT_H
#define AW_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct aw_client;

struct aw_client_opts {
	size_t mtu;		 /* path MTU for segmenting requests (default 1500) */
	uint32_t rtx_timeout_us; /* least retransmit / gap timer (default 20000); the timer is
				    srtt + 4 rttvar of measured round trips when larger
				    (at most 1 s), and doubles on each expiry */
	uint32_t max_retries;	 /* timer expiries in a row without progress (default 6) */
	uint64_t timeout_us;	 /* whole-request limit (default 10 s; 0 = none) */
	uint32_t max_inflight;	 /* requests in flight (default 4096, a power of two) */
	uint32_t reorder_window; /* out-of-order reply datagrams held per request (default 64) */
	uint16_t server_id;	 /* written in requests (0 = any) */
	uint8_t busy_poll;	 /* poll by spinning on non-blocking receives */
	uint8_t no_ack;		 /* do not send ACK after a terminal */
	uint8_t batch_tx;	 /* queue datagrams until aw_client_flush() (sendmmsg) */
};

/* Fill 'o' with the defaults above. */
void aw_client_opts_default(struct aw_client_opts *o);

/* What a finished request ended with. */
struct aw_client_result {
	int status;		 /* 0 done (END/PONG); -EREMOTEIO: server ERROR (err_code);
				      -ETIMEDOUT; -ECANCELED (cancelled before the server knew);
				      -EBADMSG: replies contradicted each other */
	uint16_t err_code;	 /* enum aw_proto_code when status is -EREMOTEIO */
	uint32_t retry_after_us; /* from an OVERLOADED error */
	char err_msg[AW_PROTO_ERROR_MAX_MSG + 1];
	uint16_t server_id;		 /* server_id of the last reply */
	struct aw_proto_summary summary; /* valid when an END arrived (probs: see below) */
	float probs[AW_PROTO_MAX_PROBS]; /* CLASSIFY probabilities, summary.n_probs of them */
	uint64_t data_bytes;		 /* output bytes delivered */
	uint32_t n_data;		 /* DATA datagrams delivered */
	uint32_t n_tool_calls;		 /* tool calls delivered (a call may span several
					  * TOOL_CALL datagrams: AW_PROTO_F_MORE) */
	uint32_t n_retransmits;		 /* request retransmissions */
	uint32_t n_resumes;		 /* RESUME requests sent */
	uint32_t n_dups;		 /* duplicate reply datagrams dropped */
	uint64_t t_submit_us;		 /* aw_client_now_us() at submit */
	uint64_t t_first_us;		 /* first reply datagram (0 = none) */
	uint64_t t_done_us;		 /* terminal */
};

/* Called for each output chunk, in order (DATA bytes, or the PONG echo). */
typedef void aw_client_data_fn(void *ctx, uint64_t request_id, const void *bytes, size_t len,
			       uint32_t n_tokens, uint64_t now_us);
/* Called for each tool call, in stream order with the DATA chunks ('call'
 * points into a receive buffer: valid during the call); set with
 * aw_client_set_tool_call_fn(). */
typedef void aw_client_tool_call_fn(void *ctx, uint64_t request_id,
				    const struct aw_proto_tool_call *call, uint64_t now_us);

/* Called once per request when it ends; 'res' is valid during the call. */
typedef void aw_client_done_fn(void *ctx, uint64_t request_id, const struct aw_client_result *res);

/* ---- transports ------------------------------------------------------------------ */

/* A datagram transport to one server. The kernel UDP one is built in;
 * a DPDK one (net_memif / a NIC port) implements the same operations. */
struct aw_client_dgram {
	void *buf;  /* send: datagram; recv: buffer of 'len' bytes */
	size_t len; /* send: its length; recv: in: capacity, out: received length */
};

struct aw_client_transport;

struct aw_client_transport_ops {
	/* Send up to n datagrams; returns how many went out or -errno. */
	int (*send)(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n);
	/* Receive up to n datagrams waiting at most timeout_ms (0 = do not wait,
	 * -1 = forever); returns how many (0 on timeout) or -errno. */
	int (*recv)(struct aw_client_transport *t, struct aw_client_dgram *d, unsigned n,
		    int timeout_ms);
	void (*close)(struct aw_client_transport *t);
};

struct aw_client_transport {
	const struct aw_client_transport_ops *ops;
	int fd; /* pollable descriptor, or -1 */
};

/* Kernel UDP socket connected to host:port (names resolved with
 * getaddrinfo). Uses sendmmsg/recvmmsg; busy_poll sets SO_BUSY_POLL where
 * allowed. Returns 0 and sets *ret, or -errno (-EHOSTUNREACH when the name
 * does not resolve). The caller owns *ret until it hands it to
 * aw_client_new(). */
int aw_client_udp_open(const char *host, const char *port, int busy_poll,
		       struct aw_client_transport **ret);

/* ---- the client -------------------------------------------------------------------- */

/* Take ownership of transport 't' (closed by aw_client_close(), also on
 * failure). 'o' NULL means the defaults. Returns 0 and sets *ret, -EINVAL for
 * bad options, -ENOMEM. */
int aw_client_new(struct aw_client_transport *t, const struct aw_client_opts *o,
		  struct aw_client **ret);

/* aw_client_udp_open() + aw_client_new(). */
int aw_client_open(const char *host, const char *port, const struct aw_client_opts *o,
		   struct aw_client **ret);

/* Close the transport and free everything; requests still in flight are
 * dropped without callbacks. Accepts NULL. */
void aw_client_close(struct aw_client *c);

/* Monotonic clock in microseconds (CLOCK_MONOTONIC). */
uint64_t aw_client_now_us(void);

/* Start a request of 'type' (GENERATE, CLASSIFY, EMBED: 'body' is an encoded
 * request body, see aw_proto_req_build(); PING: any payload; STATS: empty)
 * with 'session_id' (0 = none). 'body' is copied. Callbacks may be NULL.
 * Returns 0 and sets *ret_id (may be NULL), -EBUSY when max_inflight requests
 * are in flight, -EMSGSIZE, -EINVAL (not a request type), or a send error. */
int aw_client_submit(struct aw_client *c, unsigned type, uint64_t session_id, const void *body,
		     size_t len, aw_client_data_fn *on_data, aw_client_done_fn *on_done, void *ctx,
		     uint64_t *ret_id);

/* Send what batch_tx queued. Returns datagrams sent or -errno. */
int aw_client_flush(struct aw_client *c);

/* Receive and handle replies and timers for at most timeout_ms (0: only
 * what is there; -1: until something completes). Returns the number of
 * requests that completed (their callbacks ran) or -errno. */
int aw_client_poll(struct aw_client *c, int timeout_ms);

/* Ask the server to cancel request 'id' (repeated until its stream ends;
 * it then completes with finish "cancelled", or -ECANCELED when the server
 * never had it). Returns 0 or -ENOENT (not in flight). */
int aw_client_cancel(struct aw_client *c, uint64_t id);

/* The transport's pollable descriptor (-1 if none): wait on it for POLLIN
 * and call aw_client_poll(c, 0) to run an event loop of your own. */
int aw_client_fd(const struct aw_client *c);

/* Requests in flight. */
unsigned aw_client_inflight(const struct aw_client *c);

/* ---- agent operations ------------------------------------------------------------ */

/* The callback for TOOL_CALL replies of every request of 'c' (it receives
 * the request's ctx); NULL: calls are counted in the result only. */
void aw_client_set_tool_call_fn(struct aw_client *c, aw_client_tool_call_fn *fn);

/* EMBED 'text' (pooling: enum aw_proto_pooling; normalize: 0/1) and write
 * the embedding to out[0..cap); *ret_dim (may be NULL) gets its size.
 * Returns as aw_client_call(); -EBADMSG when the reply is not whole floats. */
int aw_client_embed(struct aw_client *c, const char *text, unsigned pooling, int normalize,
		    float *out, size_t cap, size_t *ret_dim, struct aw_client_result *res);

/* CLASSIFY 'prompt' over labels[0..n_labels); probs[i] gets label i's
 * probability. Returns as aw_client_call(); -EINVAL for 0 or more than
 * AW_PROTO_MAX_LABELS labels. */
int aw_client_classify(struct aw_client *c, const char *prompt, const char *const *labels,
		       unsigned n_labels, float *probs, struct aw_client_result *res);

/* Counters since aw_client_new(). */
struct aw_client_stats {
	uint64_t tx_dgrams, rx_dgrams;
	uint64_t rx_bad;   /* replies that failed the codec's checks */
	uint64_t rx_stray; /* replies for no request in flight (late duplicates) */
	uint64_t retransmits, resumes, dups, timeouts;
};
void aw_client_get_stats(const struct aw_client *c, struct aw_client_stats *ret);

/* Synchronous call: submit and poll until done. Output bytes go to 'out'
 * (truncated to 'cap'; *ret_len, if not NULL, gets the full length).
 * Returns res->status (0, -EREMOTEIO, -ETIMEDOUT, ...) or a submit error.
 * Other requests in flight keep being served meanwhile. */
int aw_client_call(struct aw_client *c, unsigned type, uint64_t session_id, const void *body,
		   size_t len, void *out, size_t cap, size_t *ret_len,
		   struct aw_client_result *res);

/* Encode 'req' and call GENERATE / CLASSIFY / EMBED ('type'). Text output
 * is NUL-terminated in 'out' (cap >= 1). */
int aw_client_request(struct aw_client *c, unsigned type, uint64_t session_id,
		      const struct aw_proto_req *req, char *out, size_t cap,
		      struct aw_client_result *res);

/* PING with 'len' bytes of payload; checks the echo and sets *ret_rtt_us. */
int aw_client_ping(struct aw_client *c, const void *payload, size_t len, uint64_t *ret_rtt_us);

/* STATS text ("name value" lines), NUL-terminated in 'out'. */
int aw_client_stats(struct aw_client *c, char *out, size_t cap);

#endif
