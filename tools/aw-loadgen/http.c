/* http.c — HTTP/1.1 request writer and response parser for aw-loadgen's
 * llama-server transport (see http.h). */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- request ---- */

static size_t json_escaped_len(const char *s, size_t n)
{
	size_t l = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			l += 2;
		else if (ch < 0x20)
			l += 6;
		else
			l++;
	}
	return l;
}

static char *json_escape(char *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			memcpy(o, "\\u00", 4);
			o[4] = hex[ch >> 4];
			o[5] = hex[ch & 15];
			o += 6;
		} else {
			*o++ = (char)ch;
		}
	}
	return o;
}

int aw_http_completion_request(char *buf, size_t cap, const char *host, const char *port,
			       const char *prompt, size_t len, uint32_t n_predict,
			       double temperature, uint64_t seed)
{
	char tail[160];
	size_t esc = json_escaped_len(prompt, len), body;
	int h, t;
	char *o;

	t = snprintf(tail, sizeof(tail),
		     "\", \"n_predict\": %u, \"temperature\": %.6g, \"seed\": %u, "
		     "\"stream\": true, \"cache_prompt\": true}",
		     n_predict, temperature, (unsigned)(seed & 0x7fffffffu));
	if (t < 0 || (size_t)t >= sizeof(tail))
		return -ENOSPC;
	body = strlen("{\"prompt\": \"") + esc + (size_t)t;
	h = snprintf(buf, cap,
		     "POST /completion HTTP/1.1\r\nHost: %s:%s\r\n"
		     "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
		     "Content-Length: %zu\r\n\r\n{\"prompt\": \"",
		     host, port, body);
	if (h < 0 || (size_t)h + esc + (size_t)t >= cap || esc > cap)
		return -ENOSPC;
	o = json_escape(buf + h, prompt, len);
	memcpy(o, tail, (size_t)t);
	o += t;
	*o = 0;
	return (int)(o - buf);
}

/* ---- response ---- */

void aw_http_resp_init(struct aw_http_resp *r)
{
	memset(r, 0, sizeof(*r));
}

static int bad(struct aw_http_resp *r, const char *why)
{
	r->state = AW_HTTP_BAD;
	r->why = why;
	return -EBADMSG;
}

/* Append bytes up to and including a LF to r->line. Returns 1 with a whole
 * line in r->line (NUL-terminated, the LF and a CR before it removed), 0 when
 * all of buf went in without a LF, -EBADMSG when the line is too long or
 * holds a NUL. *i advances over what was taken. */
static int take_line(struct aw_http_resp *r, const char *buf, size_t len, size_t *i)
{
	const char *lf = memchr(buf + *i, '\n', len - *i);
	size_t n = lf ? (size_t)(lf - (buf + *i)) : len - *i;

	if (r->line_len + n >= sizeof(r->line))
		return bad(r, "header or chunk-size line too long");
	if (memchr(buf + *i, 0, n))
		return bad(r, "NUL byte in a header line");
	memcpy(r->line + r->line_len, buf + *i, n);
	r->line_len += n;
	*i += n;
	if (!lf)
		return 0;
	(*i)++; /* the LF */
	if (r->line_len && r->line[r->line_len - 1] == '\r')
		r->line_len--;
	r->line[r->line_len] = 0;
	return 1;
}

static int parse_status(struct aw_http_resp *r)
{
	const char *l = r->line;
	size_t len = strlen(l);

	if (len < 12 || strncmp(l, "HTTP/1.", 7) != 0 || l[7] < '0' || l[7] > '9' || l[8] != ' ')
		return bad(r, "bad status line");
	for (int k = 9; k < 12; k++)
		if (l[k] < '0' || l[k] > '9')
			return bad(r, "bad status code");
	if (len > 12 && l[12] != ' ')
		return bad(r, "bad status line");
	r->minor = (uint8_t)(l[7] - '0');
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (r->status < 100)
		return bad(r, "bad status code");
	r->close = r->minor == 0;
	r->state = AW_HTTP_HEADERS;
	return 0;
}

/* Does the comma-separated list 'v' hold the token 'tok' (any case)? */
static int has_token(const char *v, const char *tok)
{
	size_t n = strlen(tok);

	while (*v) {
		while (*v == ' ' || *v == '\t' || *v == ',')
			v++;
		if (strncasecmp(v, tok, n) == 0 &&
		    (v[n] == 0 || v[n] == ',' || v[n] == ' ' || v[n] == '\t'))
			return 1;
		while (*v && *v != ',')
			v++;
	}
	return 0;
}

static int parse_header(struct aw_http_resp *r)
{
	char *l = r->line, *colon = strchr(l, ':'), *v, *end;

	if (++r->n_headers > AW_HTTP_MAX_HEADERS)
		return bad(r, "too many header lines");
	if (l[0] == ' ' || l[0] == '\t')
		return bad(r, "folded header line");
	if (!colon || colon == l)
		return bad(r, "header line without a name");
	for (char *p = l; p < colon; p++)
		if (*p <= ' ' || *p >= 127)
			return bad(r, "bad header name");
	*colon = 0;
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	end = v + strlen(v);
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = 0;
	if (strcasecmp(l, "content-length") == 0) {
		uint64_t n = 0;

		if (!*v)
			return bad(r, "empty Content-Length");
		for (const char *p = v; *p; p++) {
			if (*p < '0' || *p > '9' || n > (UINT64_MAX >> 4) / 10)
				return bad(r, "bad Content-Length");
			n = n * 10 + (uint64_t)(*p - '0');
		}
		if (r->have_len && n != r->left)
			return bad(r, "conflicting Content-Length headers");
		r->have_len = 1;
		r->left = n;
	} else if (strcasecmp(l, "transfer-encoding") == 0) {
		/* only chunked framing can be read (as the last coding) */
		if (!has_token(v, "chunked"))
			return bad(r, "unsupported Transfer-Encoding");
		r->chunked = 1;
	} else if (strcasecmp(l, "connection") == 0) {
		if (has_token(v, "close"))
			r->close = 1;
		else if (has_token(v, "keep-alive"))
			r->close = 0;
	}
	return 0;
}

static int end_headers(struct aw_http_resp *r)
{
	if (r->status < 200) { /* an interim answer: the real one follows */
		uint32_t events = r->n_events;

		aw_http_resp_init(r);
		r->n_events = events;
		return 0;
	}
	if (r->status == 204 || r->status == 304) {
		r->state = AW_HTTP_DONE;
		return 0;
	}
	if (r->chunked) {
		r->have_len = 0;
		r->state = AW_HTTP_CHUNK_SIZE;
	} else if (r->have_len) {
		r->state = r->left ? AW_HTTP_BODY_LEN : AW_HTTP_DONE;
	} else {
		r->state = AW_HTTP_BODY_EOF;
		r->close = 1;
	}
	return 0;
}

static int parse_chunk_size(struct aw_http_resp *r)
{
	const char *p = r->line;
	uint64_t n = 0;
	int digits = 0;

	for (;; p++, digits++) {
		int d;

		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
			d = (*p | 0x20) - 'a' + 10;
		else
			break;
		if (n >> 56)
			return bad(r, "chunk size too large");
		n = n << 4 | (uint64_t)d;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (!digits || (*p && *p != ';'))
		return bad(r, "bad chunk size line");
	r->left = n;
	r->state = n ? AW_HTTP_CHUNK_DATA : AW_HTTP_TRAILERS;
	return 0;
}

/* ---- server-sent events ---- */

static void sse_line_end(struct aw_http_resp *r, int *ret)
{
	size_t n = r->sse_len < sizeof(r->sse_head) ? r->sse_len : sizeof(r->sse_head);
	const char *h = r->sse_head;

	if (n && h[n - 1] == '\r' && r->sse_len <= sizeof(r->sse_head))
		n--;
	*ret = 0;
	if (n == 0 || h[0] == ':') {
		/* blank line (event boundary) or comment */
	} else if (n >= 5 && memcmp(h, "data:", 5) == 0) {
		size_t k = 5;

		if (k < n && h[k] == ' ')
			k++;
		if (r->line_stop)
			r->stopped = 1;
		else
			r->n_events++;
		if (n - k >= 8 && memcmp(h + k, "{\"error\"", 8) == 0)
			r->sse_error = 1;
	} else if ((n >= 6 && memcmp(h, "event:", 6) == 0) ||
		   (n >= 3 && memcmp(h, "id:", 3) == 0) ||
		   (n >= 6 && memcmp(h, "retry:", 6) == 0)) {
		/* fields we do not use */
	} else {
		*ret = bad(r, "not a server-sent event line");
	}
	r->sse_len = 0;
	r->stop_match = 0;
	r->line_stop = 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Scan body bytes of a 2xx response as server-sent events. */
static int sse_feed(struct aw_http_resp *r, const char *p, size_t n)
{
	static const char pat[] = "\"stop\"";

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		int rc;

		if (c == '\n') {
			sse_line_end(r, &rc);
			if (rc < 0)
				return rc;
			continue;
		}
		if (r->sse_len < sizeof(r->sse_head))
			r->sse_head[r->sse_len] = c;
		if (++r->sse_len > AW_HTTP_SSE_LINE_MAX)
			return bad(r, "server-sent event line too long");
		/* "stop" \s* : \s* t  (a JSON value starting with t is true) */
		switch (r->stop_match) {
		case 6:
			if (is_ws(c))
				continue;
			if (c == ':') {
				r->stop_match = 7;
				continue;
			}
			break;
		case 7:
			if (is_ws(c))
				continue;
			if (c == 't') {
				r->line_stop = 1;
				r->stop_match = 0;
				continue;
			}
			break;
		default:
			if (c == pat[r->stop_match]) {
				r->stop_match++;
				continue;
			}
		}
		r->stop_match = c == '"';
	}
	return 0;
}

static int body(struct aw_http_resp *r, const char *p, size_t n)
{
	if (r->status >= 200 && r->status < 300)
		return sse_feed(r, p, n);
	return 0; /* an error answer: its text is not read */
}

int aw_http_resp_feed(struct aw_http_resp *r, const char *buf, size_t len, size_t *ret_used)
{
	size_t i = 0;
	int rc;

	while (r->state != AW_HTTP_DONE && r->state != AW_HTTP_BAD) {
		if (i == len)
			break;
		switch (r->state) {
		case AW_HTTP_STATUS:
		case AW_HTTP_HEADERS:
		case AW_HTTP_CHUNK_SIZE:
		case AW_HTTP_CHUNK_CRLF:
		case AW_HTTP_TRAILERS:
			rc = take_line(r, buf, len, &i);
			if (rc < 0)
				return rc;
			if (rc == 0)
				break; /* all of buf taken */
			r->line_len = 0;
			if (r->state == AW_HTTP_STATUS) {
				rc = parse_status(r);
			} else if (r->state == AW_HTTP_HEADERS) {
				rc = r->line[0] ? parse_header(r) : end_headers(r);
			} else if (r->state == AW_HTTP_CHUNK_SIZE) {
				rc = parse_chunk_size(r);
			} else if (r->state == AW_HTTP_CHUNK_CRLF) {
				rc = 0;
				if (r->line[0])
					rc = bad(r, "chunk data longer than its size");
				r->state = rc ? AW_HTTP_BAD : AW_HTTP_CHUNK_SIZE;
			} else if (!r->line[0]) {
				rc = 0;
				r->state = AW_HTTP_DONE;
			} else {
				rc = ++r->n_headers > AW_HTTP_MAX_HEADERS
					     ? bad(r, "too many trailers")
					     : 0;
			}
			if (rc < 0)
				return rc;
			break;
		case AW_HTTP_CHUNK_DATA:
		case AW_HTTP_BODY_LEN: {
			size_t n = len - i < r->left ? len - i : (size_t)r->left;

			rc = body(r, buf + i, n);
			if (rc < 0)
				return rc;
			i += n;
			r->left -= n;
			if (!r->left)
				r->state = r->state == AW_HTTP_CHUNK_DATA ? AW_HTTP_CHUNK_CRLF
									  : AW_HTTP_DONE;
			break;
		}
		case AW_HTTP_BODY_EOF:
			rc = body(r, buf + i, len - i);
			if (rc < 0)
				return rc;
			i = len;
			break;
		default:
			return bad(r, "parser state");
		}
	}
	if (r->state == AW_HTTP_BAD)
		return -EBADMSG;
	if (r->state == AW_HTTP_DONE) {
		*ret_used = i;
		return 1;
	}
	return 0;
}

int aw_http_resp_eof(struct aw_http_resp *r)
{
	switch (r->state) {
	case AW_HTTP_DONE:
		return 1;
	case AW_HTTP_BODY_EOF:
		r->state = AW_HTTP_DONE;
		return 1;
	case AW_HTTP_BAD:
		return -EBADMSG;
	case AW_HTTP_STATUS:
		return bad(r, "connection closed before the status line");
	case AW_HTTP_HEADERS:
		return bad(r, "connection closed in the headers");
	default:
		return bad(r, "connection closed in the body");
	}
}
