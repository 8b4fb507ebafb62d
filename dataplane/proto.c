/* proto.c — the agentwire wire codec: header, segmentation, request bodies,
 * reply payloads (see proto.h and docs/PROTOCOL.md).
 *
 * Every field is read with the little-endian helpers below from a bounds-
 * checked offset; nothing is cast onto the wire bytes, so the code is free
 * of alignment and endianness assumptions. The server-side tables live in
 * proto-store.c.
 */
#include "proto.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- little-endian access ------------------------------------------------------- */

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

static inline float rdf32(const uint8_t *p)
{
	uint32_t u = rd32(p);
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline void wrf32(uint8_t *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	wr32(p, u);
}

__attribute__((format(printf, 5, 6))) static int fail(struct aw_proto_err *e, int errnum,
						      enum aw_proto_fault fault, uint16_t code,
						      const char *fmt, ...)
{
	if (e) {
		va_list ap;

		e->fault = fault;
		e->code = code;
		e->err.code = errnum;
		va_start(ap, fmt);
		vsnprintf(e->err.msg, sizeof(e->err.msg), fmt, ap);
		va_end(ap);
	}
	return -errnum;
}

/* ---- names --------------------------------------------------------------------------- */

const char *aw_proto_type_name(unsigned type)
{
	switch (type) {
	case AW_PROTO_GENERATE:
		return "GENERATE";
	case AW_PROTO_CLASSIFY:
		return "CLASSIFY";
	case AW_PROTO_EMBED:
		return "EMBED";
	case AW_PROTO_CANCEL:
		return "CANCEL";
	case AW_PROTO_PING:
		return "PING";
	case AW_PROTO_STATS:
		return "STATS";
	case AW_PROTO_RESUME:
		return "RESUME";
	case AW_PROTO_ACK:
		return "ACK";
	case AW_PROTO_DATA:
		return "DATA";
	case AW_PROTO_END:
		return "END";
	case AW_PROTO_ERROR:
		return "ERROR";
	case AW_PROTO_PONG:
		return "PONG";
	case AW_PROTO_PROGRESS:
		return "PROGRESS";
	case AW_PROTO_TOOL_CALL:
		return "TOOL_CALL";
	}
	return "?";
}

int aw_proto_type_kind(unsigned type)
{
	if (type >= AW_PROTO_GENERATE && type <= AW_PROTO_ACK)
		return 1;
	if (type >= AW_PROTO_DATA && type <= AW_PROTO_TOOL_CALL)
		return 2;
	return 0;
}

const char *aw_proto_code_name(unsigned code)
{
	static const char *const names[AW_PROTO_ERR_MAX_] = {
		[AW_PROTO_ERR_BAD_REQUEST] = "BAD_REQUEST",
		[AW_PROTO_ERR_TOO_LONG] = "TOO_LONG",
		[AW_PROTO_ERR_OVERLOADED] = "OVERLOADED",
		[AW_PROTO_ERR_UNKNOWN_SESSION] = "UNKNOWN_SESSION",
		[AW_PROTO_ERR_DEADLINE] = "DEADLINE",
		[AW_PROTO_ERR_INTERNAL] = "INTERNAL",
		[AW_PROTO_ERR_UNSUPPORTED] = "UNSUPPORTED",
		[AW_PROTO_ERR_UNKNOWN_REQUEST] = "UNKNOWN_REQUEST",
		[AW_PROTO_ERR_AUTH] = "AUTH",
		[AW_PROTO_ERR_VERSION] = "VERSION",
	};
	return code < AW_PROTO_ERR_MAX_ && names[code] ? names[code] : "?";
}

const char *aw_proto_finish_name(unsigned finish)
{
	static const char *const names[AW_PROTO_FINISH_MAX_] = {
		"stop", "length", "deadline", "cancelled", "error", "tool_calls",
	};
	return finish < AW_PROTO_FINISH_MAX_ ? names[finish] : "?";
}

const char *aw_proto_fault_name(unsigned fault)
{
	static const char *const names[AW_PROTO_FAULT_MAX_] = {
		"none",	   "truncated", "magic",     "version", "type", "length", "segment",
		"segsize", "too_long",	"duplicate", "empty",	"body", "limit",
	};
	return fault < AW_PROTO_FAULT_MAX_ ? names[fault] : "?";
}

/* ---- header --------------------------------------------------------------------------- */

int aw_proto_hdr_parse(const void *buf, size_t len, uint32_t max_msg, struct aw_proto_hdr *ret_hdr,
		       struct aw_proto_err *e)
{
	const uint8_t *p = buf;
	struct aw_proto_hdr h;
	uint32_t last;

	if (max_msg == 0)
		max_msg = AW_PROTO_MAX_MSG;
	if (len < AW_PROTO_HDR_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_TRUNCATED, 0,
			    "datagram of %zu bytes is shorter than the %u-byte header", len,
			    AW_PROTO_HDR_LEN);
	if (rd16(p) != AW_PROTO_MAGIC)
		return fail(e, EBADMSG, AW_PROTO_FAULT_MAGIC, 0, "magic 0x%04x, expected 0x%04x",
			    rd16(p), AW_PROTO_MAGIC);
	h.version = p[2];
	if (h.version != AW_PROTO_VERSION)
		return fail(e, EPROTONOSUPPORT, AW_PROTO_FAULT_VERSION, AW_PROTO_ERR_VERSION,
			    "version %u, this end speaks %u", h.version, AW_PROTO_VERSION);
	h.type = p[3];
	h.flags = rd16(p + 4);
	h.server_id = rd16(p + 6);
	h.request_id = rd64(p + 8);
	h.session_id = rd64(p + 16);
	h.seq = rd32(p + 24);
	h.seg_index = rd16(p + 28);
	h.seg_count = rd16(p + 30);
	h.msg_len = rd32(p + 32);
	h.payload_len = rd16(p + 36);
	h.seg_size = rd16(p + 38);
	h.tenant_id = rd32(p + 40);
	memcpy(h.mac, p + 48, AW_PROTO_MAC_LEN);

	if (aw_proto_type_kind(h.type) == 0)
		return fail(e, EBADMSG, AW_PROTO_FAULT_TYPE, AW_PROTO_ERR_BAD_REQUEST,
			    "unknown message type 0x%02x", h.type);
	if ((size_t)h.payload_len != len - AW_PROTO_HDR_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_LENGTH, AW_PROTO_ERR_BAD_REQUEST,
			    "payload_len %u but the datagram holds %zu payload bytes",
			    h.payload_len, len - AW_PROTO_HDR_LEN);
	if (h.seg_count == 0 || h.seg_index >= h.seg_count)
		return fail(e, EBADMSG, AW_PROTO_FAULT_SEGMENT, AW_PROTO_ERR_BAD_REQUEST,
			    "segment index %u of count %u", h.seg_index, h.seg_count);
	if (h.seg_count == 1) {
		if (h.msg_len != h.payload_len || h.seg_size != h.payload_len)
			return fail(
				e, EBADMSG, AW_PROTO_FAULT_SEGSIZE, AW_PROTO_ERR_BAD_REQUEST,
				"single segment: msg_len %u, seg_size %u, payload_len %u differ",
				h.msg_len, h.seg_size, h.payload_len);
	} else {
		uint64_t before = (uint64_t)(h.seg_count - 1) * h.seg_size;

		if (h.seg_size == 0 || h.msg_len <= before || h.msg_len - before > h.seg_size)
			return fail(e, EBADMSG, AW_PROTO_FAULT_SEGSIZE, AW_PROTO_ERR_BAD_REQUEST,
				    "msg_len %u does not fit %u segments of %u bytes", h.msg_len,
				    h.seg_count, h.seg_size);
		last = (uint32_t)(h.msg_len - before);
		if (h.seg_index + 1u < h.seg_count ? h.payload_len != h.seg_size
						   : h.payload_len != last)
			return fail(e, EBADMSG, AW_PROTO_FAULT_SEGSIZE, AW_PROTO_ERR_BAD_REQUEST,
				    "segment %u/%u carries %u bytes, expected %u", h.seg_index,
				    h.seg_count, h.payload_len,
				    h.seg_index + 1u < h.seg_count ? h.seg_size : last);
	}
	if (h.msg_len > max_msg)
		return fail(e, EMSGSIZE, AW_PROTO_FAULT_TOO_LONG, AW_PROTO_ERR_TOO_LONG,
			    "message size: the request of %u bytes exceeds the server's message "
			    "size limit of %u bytes (max_request_bytes)",
			    h.msg_len, max_msg);
	*ret_hdr = h;
	return 0;
}

void aw_proto_hdr_write(void *buf, const struct aw_proto_hdr *h)
{
	uint8_t *p = buf;

	wr16(p, AW_PROTO_MAGIC);
	p[2] = h->version ? h->version : AW_PROTO_VERSION;
	p[3] = h->type;
	wr16(p + 4, h->flags);
	wr16(p + 6, h->server_id);
	wr64(p + 8, h->request_id);
	wr64(p + 16, h->session_id);
	wr32(p + 24, h->seq);
	wr16(p + 28, h->seg_index);
	wr16(p + 30, h->seg_count);
	wr32(p + 32, h->msg_len);
	wr16(p + 36, h->payload_len);
	wr16(p + 38, h->seg_size);
	wr32(p + 40, h->tenant_id);
	wr32(p + 44, 0);
	memcpy(p + 48, h->mac, AW_PROTO_MAC_LEN);
}

int aw_proto_build(void *buf, size_t cap, const struct aw_proto_hdr *h, const void *payload,
		   size_t len)
{
	struct aw_proto_hdr t = *h;

	if (len > 65535u - AW_PROTO_HDR_LEN)
		return -EMSGSIZE;
	if (cap < AW_PROTO_HDR_LEN + len)
		return -ENOSPC;
	t.seg_index = 0;
	t.seg_count = 1;
	t.msg_len = (uint32_t)len;
	t.payload_len = (uint16_t)len;
	t.seg_size = (uint16_t)len;
	aw_proto_hdr_write(buf, &t);
	if (len)
		memcpy((uint8_t *)buf + AW_PROTO_HDR_LEN, payload, len);
	return (int)(AW_PROTO_HDR_LEN + len);
}

int aw_proto_seg_count(size_t msg_len, size_t seg_size)
{
	size_t n;

	if (seg_size == 0 || seg_size > 65535u)
		return -EINVAL;
	n = msg_len == 0 ? 1 : (msg_len + seg_size - 1) / seg_size;
	if (n > 65535u || msg_len > UINT32_MAX)
		return -EMSGSIZE;
	return (int)n;
}

size_t aw_proto_seg_size_for_mtu(size_t mtu, int ipv6)
{
	size_t over = (ipv6 ? 40u : 20u) + 8u + AW_PROTO_HDR_LEN;
	size_t s;

	if (mtu <= over)
		return 0;
	s = mtu - over;
	return s > 65535u - AW_PROTO_HDR_LEN ? 65535u - AW_PROTO_HDR_LEN : s;
}

int aw_proto_build_segment(void *buf, size_t cap, const struct aw_proto_hdr *h, const void *msg,
			   size_t msg_len, size_t seg_size, unsigned index)
{
	struct aw_proto_hdr t = *h;
	int n = aw_proto_seg_count(msg_len, seg_size);
	size_t off, len;

	if (n < 0)
		return n;
	if (index >= (unsigned)n)
		return -EINVAL;
	if (n == 1)
		return aw_proto_build(buf, cap, h, msg, msg_len);
	if (seg_size > 65535u - AW_PROTO_HDR_LEN)
		return -EMSGSIZE;
	off = (size_t)index * seg_size;
	len = msg_len - off < seg_size ? msg_len - off : seg_size;
	if (cap < AW_PROTO_HDR_LEN + len)
		return -ENOSPC;
	t.seg_index = (uint16_t)index;
	t.seg_count = (uint16_t)n;
	t.msg_len = (uint32_t)msg_len;
	t.payload_len = (uint16_t)len;
	t.seg_size = (uint16_t)seg_size;
	aw_proto_hdr_write(buf, &t);
	memcpy((uint8_t *)buf + AW_PROTO_HDR_LEN, (const uint8_t *)msg + off, len);
	return (int)(AW_PROTO_HDR_LEN + len);
}

/* ---- request bodies --------------------------------------------------------------- */

void aw_proto_req_init(struct aw_proto_req *r)
{
	memset(r, 0, sizeof(*r));
	r->top_p = 1.0f;
	r->repetition_penalty = 1.0f;
	r->embed_flags = AW_PROTO_EMBED_NORMALIZE;
}

/* PROMPT is written unless MESSAGES replaces it; TOOL_CHOICE and EMBED_OPTS
 * only when they differ from their defaults */
static int has_prompt(const struct aw_proto_req *r)
{
	return r->prompt.p || !r->messages.len;
}

static int has_tool_choice(const struct aw_proto_req *r)
{
	return r->tool_choice != AW_PROTO_TOOLS_AUTO;
}

static int has_embed_opts(const struct aw_proto_req *r)
{
	return r->pooling != AW_PROTO_POOL_MEAN || r->embed_flags != AW_PROTO_EMBED_NORMALIZE;
}

#define TLV_HDR 8u

static size_t tlv_size(const struct aw_proto_str *s)
{
	return TLV_HDR + s->len;
}

size_t aw_proto_req_size(const struct aw_proto_req *r)
{
	size_t n = AW_PROTO_REQ_FIXED_LEN + (has_prompt(r) ? tlv_size(&r->prompt) : 0);
	uint32_t i;

	if (has_tool_choice(r))
		n += TLV_HDR + 1 + (r->tool_choice == AW_PROTO_TOOLS_NAMED ? r->tool_name.len : 0);
	if (has_embed_opts(r))
		n += TLV_HDR + AW_PROTO_EMBED_OPTS_LEN;
	for (i = 0; i < r->n_stop && i < AW_PROTO_MAX_STOP; i++)
		n += tlv_size(&r->stop[i]);
	for (i = 0; i < r->n_labels && i < AW_PROTO_MAX_LABELS; i++)
		n += tlv_size(&r->labels[i]);
	if (r->messages.len)
		n += tlv_size(&r->messages);
	if (r->tools.len)
		n += tlv_size(&r->tools);
	if (r->response_format.len)
		n += tlv_size(&r->response_format);
	return n;
}

static uint8_t *put_tlv(uint8_t *p, uint16_t tag, const struct aw_proto_str *s)
{
	wr16(p, tag);
	wr16(p + 2, 0);
	wr32(p + 4, s->len);
	if (s->len)
		memcpy(p + TLV_HDR, s->p, s->len);
	return p + TLV_HDR + s->len;
}

int aw_proto_req_build(const struct aw_proto_req *r, void *buf, size_t cap)
{
	uint8_t *p = buf;
	size_t n;
	uint32_t i;

	if (r->n_stop > AW_PROTO_MAX_STOP || r->n_labels > AW_PROTO_MAX_LABELS ||
	    r->tool_choice >= AW_PROTO_TOOLS_MAX_ || r->pooling >= AW_PROTO_POOL_MAX_ ||
	    (r->tool_choice == AW_PROTO_TOOLS_NAMED &&
	     (r->tool_name.len == 0 || r->tool_name.len > AW_PROTO_MAX_TOOL_NAME)))
		return -EINVAL;
	n = aw_proto_req_size(r);
	if (n > cap)
		return -ENOSPC;
	if (n > INT32_MAX)
		return -EMSGSIZE;
	wr16(p, AW_PROTO_REQ_FIXED_LEN);
	p[2] = r->priority;
	p[3] = r->req_flags;
	wr32(p + 4, r->max_new_tokens);
	wrf32(p + 8, r->temperature);
	wr32(p + 12, r->top_k);
	wrf32(p + 16, r->top_p);
	wrf32(p + 20, r->min_p);
	wrf32(p + 24, r->repetition_penalty);
	wr32(p + 28, r->deadline_us);
	wr64(p + 32, r->seed);
	p += AW_PROTO_REQ_FIXED_LEN;
	if (has_prompt(r))
		p = put_tlv(p, AW_PROTO_TAG_PROMPT, &r->prompt);
	for (i = 0; i < r->n_stop; i++)
		p = put_tlv(p, AW_PROTO_TAG_STOP, &r->stop[i]);
	for (i = 0; i < r->n_labels; i++)
		p = put_tlv(p, AW_PROTO_TAG_LABEL, &r->labels[i]);
	if (r->messages.len)
		p = put_tlv(p, AW_PROTO_TAG_MESSAGES, &r->messages);
	if (r->tools.len)
		p = put_tlv(p, AW_PROTO_TAG_TOOLS, &r->tools);
	if (r->response_format.len)
		p = put_tlv(p, AW_PROTO_TAG_RESPONSE_FORMAT, &r->response_format);
	if (has_tool_choice(r)) {
		const uint32_t nl = r->tool_choice == AW_PROTO_TOOLS_NAMED ? r->tool_name.len : 0;
		wr16(p, AW_PROTO_TAG_TOOL_CHOICE);
		wr16(p + 2, 0);
		wr32(p + 4, 1 + nl);
		p[TLV_HDR] = r->tool_choice;
		if (nl)
			memcpy(p + TLV_HDR + 1, r->tool_name.p, nl);
		p += TLV_HDR + 1 + nl;
	}
	if (has_embed_opts(r)) {
		wr16(p, AW_PROTO_TAG_EMBED_OPTS);
		wr16(p + 2, 0);
		wr32(p + 4, AW_PROTO_EMBED_OPTS_LEN);
		p[TLV_HDR] = r->pooling;
		p[TLV_HDR + 1] = r->embed_flags;
		wr16(p + TLV_HDR + 2, 0);
		p += TLV_HDR + AW_PROTO_EMBED_OPTS_LEN;
	}
	return (int)n;
}

#define BODY_FAIL(...) fail(e, EBADMSG, AW_PROTO_FAULT_BODY, AW_PROTO_ERR_BAD_REQUEST, __VA_ARGS__)

static int set_once(struct aw_proto_str *dst, const uint8_t *v, uint32_t len, const char *name,
		    size_t off, struct aw_proto_err *e)
{
	if (dst->p)
		return BODY_FAIL("%s TLV at offset %zu repeated", name, off);
	dst->p = (const char *)v;
	dst->len = len;
	return 0;
}

/* A JSON TLV (MESSAGES, TOOLS, RESPONSE_FORMAT): once, and never empty (an
 * empty one would count as present here and vanish when the body is built
 * again, and it is no JSON value anyway). */
static int set_json(struct aw_proto_str *dst, const uint8_t *v, uint32_t len, const char *name,
		    size_t off, struct aw_proto_err *e)
{
	if (len == 0)
		return BODY_FAIL("%s TLV at offset %zu is empty", name, off);
	return set_once(dst, v, len, name, off, e);
}

int aw_proto_req_parse(unsigned type, const void *buf, size_t len, struct aw_proto_req *ret,
		       struct aw_proto_err *e)
{
	const uint8_t *p = buf;
	struct aw_proto_req r;
	size_t off, fixed;
	int rc, seen_choice = 0, seen_embed = 0;

	if (type != AW_PROTO_GENERATE && type != AW_PROTO_CLASSIFY && type != AW_PROTO_EMBED)
		return fail(e, EBADMSG, AW_PROTO_FAULT_TYPE, AW_PROTO_ERR_BAD_REQUEST,
			    "type 0x%02x has no request body", type);
	if (len == 0)
		return fail(e, EBADMSG, AW_PROTO_FAULT_EMPTY, AW_PROTO_ERR_BAD_REQUEST,
			    "%s with an empty payload", aw_proto_type_name(type));
	if (len < 2)
		return BODY_FAIL("body of %zu bytes has no fixed_len", len);
	fixed = rd16(p);
	if (fixed < AW_PROTO_REQ_FIXED_LEN)
		return BODY_FAIL("fixed_len %zu below %u", fixed, AW_PROTO_REQ_FIXED_LEN);
	if (fixed > len)
		return BODY_FAIL("fixed_len %zu beyond the %zu-byte body", fixed, len);
	memset(&r, 0, sizeof(r));
	r.embed_flags = AW_PROTO_EMBED_NORMALIZE;
	r.priority = p[2];
	r.req_flags = p[3];
	r.max_new_tokens = rd32(p + 4);
	r.temperature = rdf32(p + 8);
	r.top_k = rd32(p + 12);
	r.top_p = rdf32(p + 16);
	r.min_p = rdf32(p + 20);
	r.repetition_penalty = rdf32(p + 24);
	r.deadline_us = rd32(p + 28);
	r.seed = rd64(p + 32);

	if (!(r.temperature >= 0.0f) || isinf(r.temperature))
		return BODY_FAIL("temperature %g is not a finite value >= 0",
				 (double)r.temperature);
	if (!(r.top_p >= 0.0f && r.top_p <= 1.0f))
		return BODY_FAIL("top_p %g outside [0, 1]", (double)r.top_p);
	if (!(r.min_p >= 0.0f && r.min_p <= 1.0f))
		return BODY_FAIL("min_p %g outside [0, 1]", (double)r.min_p);
	if (!(r.repetition_penalty > 0.0f) || isinf(r.repetition_penalty))
		return BODY_FAIL("repetition_penalty %g is not a finite value > 0",
				 (double)r.repetition_penalty);

	for (off = fixed; off < len;) {
		uint16_t tag, tflags;
		uint32_t vlen;
		const uint8_t *v;

		if (len - off < TLV_HDR)
			return BODY_FAIL("TLV header at offset %zu runs past the %zu-byte body",
					 off, len);
		tag = rd16(p + off);
		tflags = rd16(p + off + 2);
		vlen = rd32(p + off + 4);
		(void)tflags;
		if (vlen > len - off - TLV_HDR)
			return BODY_FAIL("TLV %u at offset %zu: length %u runs past the body", tag,
					 off, vlen);
		v = p + off + TLV_HDR;
		switch (tag & ~AW_PROTO_TAG_CRITICAL) {
		case AW_PROTO_TAG_PROMPT:
			if ((rc = set_once(&r.prompt, v, vlen, "PROMPT", off, e)) < 0)
				return rc;
			break;
		case AW_PROTO_TAG_STOP:
			if (r.n_stop >= AW_PROTO_MAX_STOP)
				return BODY_FAIL("more than %u STOP strings", AW_PROTO_MAX_STOP);
			if (vlen == 0 || vlen > AW_PROTO_MAX_STOP_LEN)
				return BODY_FAIL("STOP string %u of %u bytes (1..%u)", r.n_stop,
						 vlen, AW_PROTO_MAX_STOP_LEN);
			r.stop[r.n_stop].p = (const char *)v;
			r.stop[r.n_stop++].len = vlen;
			break;
		case AW_PROTO_TAG_LABEL:
			if (r.n_labels >= AW_PROTO_MAX_LABELS)
				return BODY_FAIL("more than %u LABELs", AW_PROTO_MAX_LABELS);
			if (vlen == 0 || vlen > AW_PROTO_MAX_LABEL_LEN)
				return BODY_FAIL("LABEL %u of %u bytes (1..%u)", r.n_labels, vlen,
						 AW_PROTO_MAX_LABEL_LEN);
			r.labels[r.n_labels].p = (const char *)v;
			r.labels[r.n_labels++].len = vlen;
			break;
		case AW_PROTO_TAG_MESSAGES:
			if ((rc = set_json(&r.messages, v, vlen, "MESSAGES", off, e)) < 0)
				return rc;
			break;
		case AW_PROTO_TAG_TOOLS:
			if ((rc = set_json(&r.tools, v, vlen, "TOOLS", off, e)) < 0)
				return rc;
			break;
		case AW_PROTO_TAG_RESPONSE_FORMAT:
			if ((rc = set_json(&r.response_format, v, vlen, "RESPONSE_FORMAT", off,
					   e)) < 0)
				return rc;
			break;
		case AW_PROTO_TAG_TOOL_CHOICE:
			if (seen_choice++)
				return BODY_FAIL("TOOL_CHOICE TLV at offset %zu repeated", off);
			if (vlen < 1 || v[0] >= AW_PROTO_TOOLS_MAX_)
				return BODY_FAIL("TOOL_CHOICE mode %d unknown (0 auto, 1 none, 2 "
						 "required, 3 named)",
						 vlen ? v[0] : -1);
			r.tool_choice = v[0];
			if ((v[0] == AW_PROTO_TOOLS_NAMED) !=
				    (vlen > 1 && vlen - 1 <= AW_PROTO_MAX_TOOL_NAME) ||
			    (v[0] != AW_PROTO_TOOLS_NAMED && vlen != 1))
				return BODY_FAIL(
					"TOOL_CHOICE %s with a %u-byte name (named: 1..%u)",
					v[0] == AW_PROTO_TOOLS_NAMED ? "named" : "mode", vlen - 1,
					AW_PROTO_MAX_TOOL_NAME);
			r.tool_name.p = vlen > 1 ? (const char *)v + 1 : NULL;
			r.tool_name.len = vlen - 1;
			break;
		case AW_PROTO_TAG_EMBED_OPTS:
			if (seen_embed++)
				return BODY_FAIL("EMBED_OPTS TLV at offset %zu repeated", off);
			if (vlen != AW_PROTO_EMBED_OPTS_LEN)
				return BODY_FAIL("EMBED_OPTS of %u bytes, need %u", vlen,
						 AW_PROTO_EMBED_OPTS_LEN);
			if (v[0] >= AW_PROTO_POOL_MAX_)
				return BODY_FAIL(
					"EMBED_OPTS pooling %u unknown (0 mean, 1 cls, 2 last)",
					v[0]);
			if (v[1] & ~AW_PROTO_EMBED_NORMALIZE)
				return BODY_FAIL("EMBED_OPTS flags 0x%02x unknown", v[1]);
			r.pooling = v[0];
			r.embed_flags = v[1];
			break;
		default:
			if (tag & AW_PROTO_TAG_CRITICAL)
				return BODY_FAIL("unknown critical TLV 0x%04x at offset %zu", tag,
						 off);
			break; /* unknown, not critical: skipped */
		}
		off += TLV_HDR + vlen;
	}
	if (!r.prompt.p && !r.messages.p)
		return BODY_FAIL("%s without a PROMPT", aw_proto_type_name(type));
	if (r.prompt.p && r.messages.p)
		return BODY_FAIL("%s with both PROMPT and MESSAGES", aw_proto_type_name(type));
	if (r.tools.p && !r.messages.p)
		return BODY_FAIL("TOOLS without MESSAGES");
	if (seen_choice && !r.tools.p)
		return BODY_FAIL("TOOL_CHOICE without TOOLS");
	if (r.response_format.p && type != AW_PROTO_GENERATE)
		return BODY_FAIL("RESPONSE_FORMAT in a %s request", aw_proto_type_name(type));
	if (r.tools.p && type != AW_PROTO_GENERATE)
		return BODY_FAIL("TOOLS in a %s request", aw_proto_type_name(type));
	if (seen_embed && type != AW_PROTO_EMBED)
		return BODY_FAIL("EMBED_OPTS in a %s request", aw_proto_type_name(type));
	if (type == AW_PROTO_CLASSIFY && r.n_labels == 0)
		return BODY_FAIL("CLASSIFY without a LABEL");
	if (type != AW_PROTO_CLASSIFY && r.n_labels)
		return BODY_FAIL("LABEL in a %s request", aw_proto_type_name(type));
	*ret = r;
	return 0;
}

/* ---- reply payloads ------------------------------------------------------------------ */

int aw_proto_data_build(void *buf, size_t cap, uint32_t n_tokens, const void *bytes, size_t len)
{
	if (cap < AW_PROTO_DATA_HDR_LEN + len || len > 65535u)
		return -ENOSPC;
	wr32(buf, n_tokens);
	if (len)
		memcpy((uint8_t *)buf + AW_PROTO_DATA_HDR_LEN, bytes, len);
	return (int)(AW_PROTO_DATA_HDR_LEN + len);
}

int aw_proto_data_parse(const void *buf, size_t len, uint32_t *ret_n_tokens,
			struct aw_proto_str *ret_bytes, struct aw_proto_err *e)
{
	if (len < AW_PROTO_DATA_HDR_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "DATA payload of %zu bytes", len);
	*ret_n_tokens = rd32(buf);
	ret_bytes->p = (const char *)buf + AW_PROTO_DATA_HDR_LEN;
	ret_bytes->len = (uint32_t)(len - AW_PROTO_DATA_HDR_LEN);
	return 0;
}

int aw_proto_summary_build(void *buf, size_t cap, const struct aw_proto_summary *s,
			   const float *probs)
{
	uint8_t *p = buf;
	size_t n = AW_PROTO_SUMMARY_LEN + 4u * s->n_probs;
	unsigned i;

	if (s->n_probs > AW_PROTO_MAX_PROBS)
		return -EINVAL;
	if (cap < n)
		return -ENOSPC;
	p[0] = s->finish;
	p[1] = s->model;
	wr16(p + 2, s->n_probs);
	wr32(p + 4, s->prompt_tokens);
	wr32(p + 8, s->gen_tokens);
	wr32(p + 12, s->queue_us);
	wr32(p + 16, s->prefill_us);
	wr32(p + 20, s->decode_us);
	wr32(p + 24, s->n_data);
	wr64(p + 28, s->data_bytes);
	for (i = 0; i < s->n_probs; i++)
		wrf32(p + AW_PROTO_SUMMARY_LEN + 4 * i, probs[i]);
	return (int)n;
}

int aw_proto_summary_parse(const void *buf, size_t len, struct aw_proto_summary *ret,
			   struct aw_proto_err *e)
{
	const uint8_t *p = buf;
	struct aw_proto_summary s;

	if (len < AW_PROTO_SUMMARY_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "END payload of %zu bytes, need %u",
			    len, AW_PROTO_SUMMARY_LEN);
	s.finish = p[0];
	if (s.finish >= AW_PROTO_FINISH_MAX_)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "finish reason %u unknown",
			    s.finish);
	s.model = p[1];
	s.n_probs = rd16(p + 2);
	if (s.n_probs > AW_PROTO_MAX_PROBS || len != AW_PROTO_SUMMARY_LEN + 4u * (size_t)s.n_probs)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0,
			    "END with %u probabilities in %zu bytes", s.n_probs, len);
	s.prompt_tokens = rd32(p + 4);
	s.gen_tokens = rd32(p + 8);
	s.queue_us = rd32(p + 12);
	s.prefill_us = rd32(p + 16);
	s.decode_us = rd32(p + 20);
	s.n_data = rd32(p + 24);
	s.data_bytes = rd64(p + 28);
	s.probs = p + AW_PROTO_SUMMARY_LEN;
	*ret = s;
	return 0;
}

float aw_proto_summary_prob(const struct aw_proto_summary *s, unsigned i)
{
	if (i >= s->n_probs)
		return NAN;
	return rdf32(s->probs + 4 * i);
}

int aw_proto_error_build(void *buf, size_t cap, uint16_t code, uint32_t retry_after_us,
			 const char *msg)
{
	size_t n = msg ? strnlen(msg, AW_PROTO_ERROR_MAX_MSG) : 0;
	uint8_t *p = buf;

	if (cap < AW_PROTO_ERROR_HDR_LEN + n)
		return -ENOSPC;
	wr16(p, code);
	wr16(p + 2, (uint16_t)n);
	wr32(p + 4, retry_after_us);
	if (n)
		memcpy(p + AW_PROTO_ERROR_HDR_LEN, msg, n);
	return (int)(AW_PROTO_ERROR_HDR_LEN + n);
}

int aw_proto_error_parse(const void *buf, size_t len, struct aw_proto_error *ret,
			 struct aw_proto_err *e)
{
	const uint8_t *p = buf;
	uint16_t n;

	if (len < AW_PROTO_ERROR_HDR_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "ERROR payload of %zu bytes", len);
	n = rd16(p + 2);
	if (n > AW_PROTO_ERROR_MAX_MSG || len != AW_PROTO_ERROR_HDR_LEN + (size_t)n)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0,
			    "ERROR message length %u in a %zu-byte payload", n, len);
	ret->code = rd16(p);
	ret->retry_after_us = rd32(p + 4);
	ret->msg.p = (const char *)p + AW_PROTO_ERROR_HDR_LEN;
	ret->msg.len = n;
	return 0;
}

int aw_proto_progress_build(void *buf, size_t cap, const struct aw_proto_progress *pr)
{
	if (cap < AW_PROTO_PROGRESS_LEN)
		return -ENOSPC;
	wr32(buf, pr->n_sent);
	wr32((uint8_t *)buf + 4, pr->state);
	return AW_PROTO_PROGRESS_LEN;
}

int aw_proto_progress_parse(const void *buf, size_t len, struct aw_proto_progress *ret,
			    struct aw_proto_err *e)
{
	if (len != AW_PROTO_PROGRESS_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "PROGRESS payload of %zu bytes",
			    len);
	ret->n_sent = rd32(buf);
	ret->state = rd32((const uint8_t *)buf + 4);
	return 0;
}

int aw_proto_tool_call_build(void *buf, size_t cap, const struct aw_proto_tool_call *c)
{
	uint8_t *p = buf;
	const size_t n = AW_PROTO_TOOL_CALL_HDR_LEN + (size_t)c->name.len + c->args.len;

	if (c->name.len == 0 || c->name.len > AW_PROTO_MAX_TOOL_NAME)
		return -EINVAL;
	if (cap < n || n > AW_PROTO_MAX_REPLY_MSG)
		return -ENOSPC;
	wr32(p, c->n_tokens);
	wr16(p + 4, c->index);
	wr16(p + 6, (uint16_t)c->name.len);
	wr32(p + 8, c->args.len);
	memcpy(p + AW_PROTO_TOOL_CALL_HDR_LEN, c->name.p, c->name.len);
	if (c->args.len)
		memcpy(p + AW_PROTO_TOOL_CALL_HDR_LEN + c->name.len, c->args.p, c->args.len);
	return (int)n;
}

int aw_proto_frag_add(struct aw_proto_frag *f, const struct aw_proto_hdr *h, const void *pl,
		      const void **ret_p, size_t *ret_len, struct aw_proto_err *e)
{
	const int more = (h->flags & AW_PROTO_F_MORE) != 0;

	if (more && h->type != AW_PROTO_TOOL_CALL)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0,
			    "%s datagram (seq %u) marked MORE: only TOOL_CALL is fragmented",
			    aw_proto_type_name(h->type), h->seq);
	if (f->type && h->type != f->type)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0,
			    "%s fragments missing: %zu bytes so far, then %s (seq %u)",
			    aw_proto_type_name(f->type), f->len, aw_proto_type_name(h->type),
			    h->seq);
	if (!more && !f->type) {
		*ret_p = pl;
		*ret_len = h->payload_len;
		return 1;
	}
	if (f->len + h->payload_len > AW_PROTO_MAX_REPLY_MSG)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "%s reply longer than %u bytes",
			    aw_proto_type_name(h->type), AW_PROTO_MAX_REPLY_MSG);
	if (f->len + h->payload_len > f->cap) {
		size_t cap = f->cap ? f->cap : 4096;
		uint8_t *b;

		while (cap < f->len + h->payload_len)
			cap *= 2;
		b = realloc(f->buf, cap);
		if (!b)
			return -ENOMEM;
		f->buf = b;
		f->cap = cap;
	}
	if (h->payload_len)
		memcpy(f->buf + f->len, pl, h->payload_len);
	f->len += h->payload_len;
	f->type = h->type;
	if (more)
		return 0;
	*ret_p = f->buf;
	*ret_len = f->len;
	f->type = 0;
	f->len = 0;
	return 1;
}

void aw_proto_frag_fini(struct aw_proto_frag *f)
{
	free(f->buf);
	memset(f, 0, sizeof(*f));
}

int aw_proto_tool_call_parse(const void *buf, size_t len, struct aw_proto_tool_call *ret,
			     struct aw_proto_err *e)
{
	const uint8_t *p = buf;
	struct aw_proto_tool_call c;

	if (len < AW_PROTO_TOOL_CALL_HDR_LEN)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0, "TOOL_CALL payload of %zu bytes",
			    len);
	c.n_tokens = rd32(p);
	c.index = rd16(p + 4);
	c.name.len = rd16(p + 6);
	c.args.len = rd32(p + 8);
	if (c.name.len == 0 || c.name.len > AW_PROTO_MAX_TOOL_NAME ||
	    len != AW_PROTO_TOOL_CALL_HDR_LEN + (size_t)c.name.len + c.args.len)
		return fail(e, EBADMSG, AW_PROTO_FAULT_BODY, 0,
			    "TOOL_CALL with a %u-byte name and %u-byte arguments in %zu bytes",
			    c.name.len, c.args.len, len);
	c.name.p = (const char *)p + AW_PROTO_TOOL_CALL_HDR_LEN;
	c.args.p = c.name.p + c.name.len;
	*ret = c;
	return 0;
}
