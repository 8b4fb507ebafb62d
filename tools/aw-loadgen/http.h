/* http.h — aw-loadgen's HTTP/1.1 client side for llama-server's streaming
 * completion API: the request writer and an incremental response parser.
 *
 * Request (aw_http_completion_request): one
 *
 *     POST /completion HTTP/1.1
 *     Host, Content-Type: application/json, Accept: text/event-stream,
 *     Content-Length
 *     {"prompt": "...", "n_predict": N, "temperature": T, "seed": S,
 *      "stream": true, "cache_prompt": true}
 *
 * Response (aw_http_resp_feed): status line, headers, then a body framed by
 * Transfer-Encoding: chunked, Content-Length, or (without either) the end of
 * the connection. A 2xx body is read as server-sent events: lines ending in
 * LF (a CR before it is ignored); "data:" lines are events; ":" lines are
 * comments (pings); "event:"/"id:"/"retry:" lines and blank lines are
 * accepted and ignored; anything else is malformed. An event whose JSON
 * holds the key "stop" with the value true ends the stream (llama-server
 * sends it without text, so it is not counted as output); every other data
 * event counts as one output chunk; an event that starts {"error" is an error
 * reported by the server. Event payloads are scanned, never stored, so a
 * connection holds a fixed few KiB whatever the server sends. Limits (bytes
 * untrusted, all bounded): a status/header/chunk-size line AW_HTTP_LINE_MAX,
 * AW_HTTP_MAX_HEADERS header lines, an SSE line AW_HTTP_SSE_LINE_MAX.
 */
#ifndef AW_HTTP_H
#define AW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define AW_HTTP_LINE_MAX     4096
#define AW_HTTP_MAX_HEADERS  64
#define AW_HTTP_SSE_LINE_MAX (4u << 20)

/* Write the request for one streamed completion into buf (cap bytes):
 * 'prompt' (len bytes, JSON-escaped here), n_predict, temperature, seed;
 * host:port for the Host header. Returns its length, or -ENOSPC. */
int aw_http_completion_request(char *buf, size_t cap, const char *host, const char *port,
			       const char *prompt, size_t len, uint32_t n_predict,
			       double temperature, uint64_t seed);

enum aw_http_state {
	AW_HTTP_STATUS = 0, /* reading the status line */
	AW_HTTP_HEADERS,
	AW_HTTP_CHUNK_SIZE, /* chunked: a size line */
	AW_HTTP_CHUNK_DATA,
	AW_HTTP_CHUNK_CRLF, /* the CRLF after a chunk's data */
	AW_HTTP_TRAILERS,   /* after the last chunk, until a blank line */
	AW_HTTP_BODY_LEN,   /* Content-Length body */
	AW_HTTP_BODY_EOF,   /* body until the connection closes */
	AW_HTTP_DONE,
	AW_HTTP_BAD, /* malformed (why says what) */
};

/* Parser state of one response (caller-provided storage; init with
 * aw_http_resp_init before each response). */
struct aw_http_resp {
	enum aw_http_state state;
	int status;	    /* HTTP status code (valid from AW_HTTP_HEADERS on) */
	uint8_t minor;	    /* HTTP/1.minor */
	uint8_t chunked;    /* Transfer-Encoding: chunked */
	uint8_t have_len;   /* Content-Length given */
	uint8_t close;	    /* the server will close the connection afterwards */
	uint64_t left;	    /* bytes left in the chunk / Content-Length body */
	uint32_t n_headers; /* header lines read */
	char line[AW_HTTP_LINE_MAX];
	size_t line_len;
	/* server-sent events (2xx bodies) */
	uint32_t n_events;  /* data events seen, the stop event excepted (output chunks) */
	uint8_t stopped;    /* an event with "stop": true arrived */
	uint8_t sse_error;  /* an event {"error"...} arrived */
	char sse_head[16];  /* the start of the current SSE line */
	uint32_t sse_len;   /* bytes of the current SSE line so far */
	uint8_t sse_data;   /* the current line is a data line */
	uint8_t stop_match; /* matcher state for "stop"\s*:\s*true */
	uint8_t line_stop;  /* the current line matched it */
	const char *why;    /* set when malformed: what was wrong */
};

void aw_http_resp_init(struct aw_http_resp *r);

/* Feed 'len' received bytes. Returns 0 when more bytes are needed (all
 * consumed), 1 when the response ended (*ret_used = bytes belonging to it;
 * the rest belong to no response), or -EBADMSG when malformed (r->why says
 * why). Once ended or malformed, further calls return the same. */
int aw_http_resp_feed(struct aw_http_resp *r, const char *buf, size_t len, size_t *ret_used);

/* The connection ended. Returns 1 when that ends the response (a body
 * read until the close), else -EBADMSG (cut short; r->why says where). */
int aw_http_resp_eof(struct aw_http_resp *r);

#endif
