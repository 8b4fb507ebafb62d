/* test-proto.c — the wire codec (dataplane/proto.c): round trips of every
 * message, and every malformed datagram shape with its specific fault. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto.h"

static struct aw_proto_hdr mkhdr(uint8_t type)
{
	struct aw_proto_hdr h;

	memset(&h, 0, sizeof(h));
	h.type = type;
	h.flags = AW_PROTO_F_RETRANSMIT;
	h.server_id = 0x1234;
	h.request_id = 0x0102030405060708ull;
	h.session_id = 0xfedcba9876543210ull;
	h.seq = 77;
	h.tenant_id = 9;
	for (unsigned i = 0; i < AW_PROTO_MAC_LEN; i++)
		h.mac[i] = (uint8_t)(i * 7);
	return h;
}

static void test_header_round_trip_every_type(void **state)
{
	static const uint8_t types[] = {
		AW_PROTO_GENERATE, AW_PROTO_CLASSIFY, AW_PROTO_EMBED,  AW_PROTO_CANCEL,
		AW_PROTO_PING,	   AW_PROTO_STATS,    AW_PROTO_RESUME, AW_PROTO_ACK,
		AW_PROTO_DATA,	   AW_PROTO_END,      AW_PROTO_ERROR,  AW_PROTO_PONG,
		AW_PROTO_PROGRESS,
	};
	uint8_t buf[256], payload[40];
	(void)state;

	for (unsigned i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i + 1);
	for (unsigned t = 0; t < sizeof(types); t++) {
		struct aw_proto_hdr h = mkhdr(types[t]), g;
		struct aw_proto_err e;
		int n = aw_proto_build(buf, sizeof(buf), &h, payload, 3 + t);

		assert_int_equal(n, AW_PROTO_HDR_LEN + 3 + t);
		/* magic 'A' 'W' on the wire, little-endian fields */
		assert_int_equal(buf[0], 'A');
		assert_int_equal(buf[1], 'W');
		assert_int_equal(buf[8], 0x08);
		assert_int_equal(aw_proto_hdr_parse(buf, (size_t)n, 0, &g, &e), 0);
		assert_int_equal(g.version, AW_PROTO_VERSION);
		assert_int_equal(g.type, types[t]);
		assert_int_equal(g.flags, h.flags);
		assert_int_equal(g.server_id, 0x1234);
		assert_true(g.request_id == h.request_id);
		assert_true(g.session_id == h.session_id);
		assert_int_equal(g.seq, 77);
		assert_int_equal(g.seg_index, 0);
		assert_int_equal(g.seg_count, 1);
		assert_int_equal(g.msg_len, 3 + t);
		assert_int_equal(g.payload_len, 3 + t);
		assert_int_equal(g.tenant_id, 9);
		assert_memory_equal(g.mac, h.mac, AW_PROTO_MAC_LEN);
		assert_memory_equal(buf + AW_PROTO_HDR_LEN, payload, 3 + t);
		assert_string_not_equal(aw_proto_type_name(types[t]), "?");
	}
}

/* Build a valid 1-segment PING with 'plen' bytes, then let the caller break it. */
static size_t ping(uint8_t *buf, size_t plen)
{
	struct aw_proto_hdr h = mkhdr(AW_PROTO_PING);
	uint8_t payload[64] = {0};

	return (size_t)aw_proto_build(buf, 256, &h, payload, plen);
}

static void expect_fault(const uint8_t *buf, size_t len, int rc, enum aw_proto_fault fault)
{
	struct aw_proto_hdr h;
	struct aw_proto_err e;

	memset(&e, 0, sizeof(e));
	assert_int_equal(aw_proto_hdr_parse(buf, len, 0, &h, &e), rc);
	assert_int_equal(e.fault, fault);
	assert_int_equal(e.err.code, -rc);
	assert_true(strlen(e.err.msg) > 0);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static void test_malformed_headers(void **state)
{
	uint8_t buf[256];
	size_t n;
	(void)state;

	/* truncated header: every length below 64 */
	n = ping(buf, 8);
	for (size_t l = 0; l < AW_PROTO_HDR_LEN; l++)
		expect_fault(buf, l, -EBADMSG, AW_PROTO_FAULT_TRUNCATED);
	/* wrong magic */
	n = ping(buf, 8);
	buf[0] = 'X';
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_MAGIC);
	/* wrong version */
	n = ping(buf, 8);
	buf[2] = 2;
	expect_fault(buf, n, -EPROTONOSUPPORT, AW_PROTO_FAULT_VERSION);
	buf[2] = 0;
	expect_fault(buf, n, -EPROTONOSUPPORT, AW_PROTO_FAULT_VERSION);
	/* unknown op */
	n = ping(buf, 8);
	buf[3] = 0x09;
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_TYPE);
	buf[3] = 0x00;
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_TYPE);
	buf[3] = 0x87;
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_TYPE);
	/* payload_len larger than the datagram */
	n = ping(buf, 8);
	expect_fault(buf, n - 1, -EBADMSG, AW_PROTO_FAULT_LENGTH);
	put16(buf + 36, 200);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_LENGTH);
	/* payload_len smaller than the datagram (trailing bytes) */
	n = ping(buf, 8);
	expect_fault(buf, n + 1, -EBADMSG, AW_PROTO_FAULT_LENGTH);
	/* msg_len larger than the datagram for a single segment */
	n = ping(buf, 8);
	put32(buf + 32, 9);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	put32(buf + 32, 0xffffffffu);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	/* segment index >= count, count 0 */
	n = ping(buf, 8);
	put16(buf + 28, 1);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGMENT);
	put16(buf + 28, 0);
	put16(buf + 30, 0);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGMENT);
	put16(buf + 28, 5);
	put16(buf + 30, 3);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGMENT);
	/* segments of different sizes: a middle segment shorter than seg_size */
	n = ping(buf, 8);
	put16(buf + 28, 0);
	put16(buf + 30, 3);
	put32(buf + 32, 25);
	put16(buf + 38, 10);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	/* last segment with a length other than msg_len - (count-1)*seg_size */
	put16(buf + 28, 2);
	put32(buf + 32, 29); /* last should carry 9, carries 8 */
	put16(buf + 38, 10);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	/* msg_len that cannot be split as claimed (last segment would be empty) */
	put32(buf + 32, 20);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	/* seg_size 0 with several segments */
	put16(buf + 38, 0);
	expect_fault(buf, n, -EBADMSG, AW_PROTO_FAULT_SEGSIZE);
	/* the fixed last segment is accepted: 3 segments of 10, last 8 */
	put32(buf + 32, 28);
	put16(buf + 38, 10);
	{
		struct aw_proto_hdr h;
		struct aw_proto_err e;

		assert_int_equal(aw_proto_hdr_parse(buf, n, 0, &h, &e), 0);
		assert_int_equal(h.seg_index, 2);
		/* message beyond a receiver's limit */
		memset(&e, 0, sizeof(e));
		assert_int_equal(aw_proto_hdr_parse(buf, n, 27, &h, &e), -EMSGSIZE);
		assert_int_equal(e.fault, AW_PROTO_FAULT_TOO_LONG);
		assert_int_equal(e.code, AW_PROTO_ERR_TOO_LONG);
		/* the client is told which limit: the message size, with both sizes */
		assert_string_equal(e.err.msg, "message size: the request of 28 bytes exceeds the "
					       "server's message size limit of 27 bytes "
					       "(max_request_bytes)");
	}
	/* zero-length payload is a valid header (PING may be empty) */
	n = ping(buf, 0);
	assert_int_equal(n, AW_PROTO_HDR_LEN);
	{
		struct aw_proto_hdr h;

		assert_int_equal(aw_proto_hdr_parse(buf, n, 0, &h, NULL), 0);
		assert_int_equal(h.payload_len, 0);
	}
}

static void test_build_limits(void **state)
{
	uint8_t buf[128];
	struct aw_proto_hdr h = mkhdr(AW_PROTO_PING);
	(void)state;

	assert_int_equal(aw_proto_build(buf, AW_PROTO_HDR_LEN + 3, &h, "abcd", 4), -ENOSPC);
	assert_int_equal(aw_proto_build(buf, sizeof(buf), &h, NULL, 70000), -EMSGSIZE);
	assert_int_equal(aw_proto_seg_count(0, 100), 1);
	assert_int_equal(aw_proto_seg_count(100, 100), 1);
	assert_int_equal(aw_proto_seg_count(101, 100), 2);
	assert_int_equal(aw_proto_seg_count(10, 0), -EINVAL);
	assert_int_equal(aw_proto_seg_count(65536u * 2, 2), -EMSGSIZE);
	assert_int_equal(aw_proto_seg_size_for_mtu(1500, 0), 1408);
	assert_int_equal(aw_proto_seg_size_for_mtu(9000, 0), 8908);
	assert_int_equal(aw_proto_seg_size_for_mtu(1500, 1), 1388);
	assert_int_equal(aw_proto_seg_size_for_mtu(80, 0), 0);
}

static void test_segments_round_trip(void **state)
{
	static uint8_t msg[5000], got[5000], dg[2048];
	struct aw_proto_hdr h = mkhdr(AW_PROTO_GENERATE);
	int n = aw_proto_seg_count(sizeof(msg), 1408);
	(void)state;

	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 31 + 7);
	assert_int_equal(n, 4);
	memset(got, 0, sizeof(got));
	for (int i = n - 1; i >= 0; i--) {
		struct aw_proto_hdr g;
		int l = aw_proto_build_segment(dg, sizeof(dg), &h, msg, sizeof(msg), 1408,
					       (unsigned)i);

		assert_true(l > (int)AW_PROTO_HDR_LEN);
		assert_int_equal(aw_proto_hdr_parse(dg, (size_t)l, 0, &g, NULL), 0);
		assert_int_equal(g.seg_index, i);
		assert_int_equal(g.seg_count, 4);
		assert_int_equal(g.msg_len, sizeof(msg));
		assert_int_equal(g.seg_size, 1408);
		memcpy(got + (size_t)i * 1408, dg + AW_PROTO_HDR_LEN, g.payload_len);
	}
	assert_memory_equal(got, msg, sizeof(msg));
	assert_int_equal(aw_proto_build_segment(dg, sizeof(dg), &h, msg, sizeof(msg), 1408, 4),
			 -EINVAL);
	assert_int_equal(aw_proto_build_segment(dg, 100, &h, msg, sizeof(msg), 1408, 0), -ENOSPC);
}

static struct aw_proto_str S(const char *s) {
	struct aw_proto_str r = {s, (uint32_t)strlen(s)};
	return r;
}

static void
test_request_round_trip(void **state)
{
	static const uint8_t types[] = {AW_PROTO_GENERATE, AW_PROTO_CLASSIFY, AW_PROTO_EMBED};
	static uint8_t buf[8192];
	(void)state;

	for (unsigned t = 0; t < 3; t++) {
		struct aw_proto_req r, g;
		struct aw_proto_err e;
		int n;

		aw_proto_req_init(&r);
		r.priority = 3;
		r.req_flags = AW_PROTO_REQF_KEEP_SESSION;
		r.max_new_tokens = 128;
		r.temperature = 0.7f;
		r.top_k = 40;
		r.top_p = 0.9f;
		r.min_p = 0.05f;
		r.repetition_penalty = 1.1f;
		r.deadline_us = 250000;
		r.seed = 0xdeadbeefcafef00dull;
		r.prompt = S("You are a router. Pick a tool for: weather in Paris?");
		if (types[t] == AW_PROTO_GENERATE) {
			r.n_stop = 2;
			r.stop[0] = S("\n\n");
			r.stop[1] = S("</tool>");
			/* (MESSAGES and TOOLS replace PROMPT: test_agent_tlvs) */
			r.response_format = S("{\"type\":\"json\"}");
		}
		if (types[t] == AW_PROTO_CLASSIFY) {
			r.n_labels = 3;
			r.labels[0] = S("weather");
			r.labels[1] = S("search");
			r.labels[2] = S("calendar");
		}
		n = aw_proto_req_build(&r, buf, sizeof(buf));
		assert_int_equal(n, (int)aw_proto_req_size(&r));
		assert_int_equal(aw_proto_req_parse(types[t], buf, (size_t)n, &g, &e), 0);
		assert_int_equal(g.priority, 3);
		assert_int_equal(g.req_flags, AW_PROTO_REQF_KEEP_SESSION);
		assert_int_equal(g.max_new_tokens, 128);
		assert_true(g.temperature == 0.7f && g.top_p == 0.9f && g.min_p == 0.05f);
		assert_true(g.repetition_penalty == 1.1f);
		assert_int_equal(g.top_k, 40);
		assert_int_equal(g.deadline_us, 250000);
		assert_true(g.seed == r.seed);
		assert_int_equal(g.prompt.len, r.prompt.len);
		assert_memory_equal(g.prompt.p, r.prompt.p, r.prompt.len);
		assert_int_equal(g.n_stop, r.n_stop);
		for (unsigned i = 0; i < g.n_stop; i++)
			assert_memory_equal(g.stop[i].p, r.stop[i].p, r.stop[i].len);
		assert_int_equal(g.n_labels, r.n_labels);
		for (unsigned i = 0; i < g.n_labels; i++)
			assert_memory_equal(g.labels[i].p, r.labels[i].p, r.labels[i].len);
		assert_int_equal(g.messages.len, r.messages.len);
		assert_int_equal(g.tools.len, r.tools.len);
		assert_int_equal(g.response_format.len, r.response_format.len);
		/* every shorter prefix is rejected unless it ends on a TLV boundary
		 * after the prompt (dropping whole optional TLVs); never read past */
		for (int l = 0; l < n; l++) {
			int rc;
			size_t prompt_end = AW_PROTO_REQ_FIXED_LEN + 8 + r.prompt.len;

			memset(&e, 0, sizeof(e));
			rc = aw_proto_req_parse(types[t], buf, (size_t)l, &g, &e);
			if (rc == 0) {
				assert_true((size_t)l >= prompt_end);
				assert_int_equal(g.prompt.len, r.prompt.len);
				continue;
			}
			assert_int_equal(rc, -EBADMSG);
			assert_int_equal(e.fault,
					 l == 0 ? AW_PROTO_FAULT_EMPTY : AW_PROTO_FAULT_BODY);
			assert_int_equal(e.code, AW_PROTO_ERR_BAD_REQUEST);
			if ((size_t)l < prompt_end)
				continue;
			/* a cut inside a TLV names the overrun; CLASSIFY cut before
			 * its labels says so */
			if (!strstr(e.err.msg, "runs past") &&
			    !(types[t] == AW_PROTO_CLASSIFY &&
			      strstr(e.err.msg, "without a LABEL")))
				fail_msg("prefix %d: %s", l, e.err.msg);
		}
		assert_int_equal(aw_proto_req_build(&r, buf, (size_t)n - 1), -ENOSPC);
	}
}

static int req_fault(unsigned type, const struct aw_proto_req *r, uint8_t *buf, size_t cap,
		     const char *needle)
{
	struct aw_proto_req g;
	struct aw_proto_err e;
	int n = aw_proto_req_build(r, buf, cap);
	int rc;

	assert_true(n > 0);
	memset(&e, 0, sizeof(e));
	rc = aw_proto_req_parse(type, buf, (size_t)n, &g, &e);
	if (rc == 0)
		return 0;
	assert_int_equal(e.fault, AW_PROTO_FAULT_BODY);
	if (!strstr(e.err.msg, needle))
		fail_msg("message '%s' lacks '%s'", e.err.msg, needle);
	return rc;
}

static void test_request_malformed(void **state)
{
	static uint8_t buf[65536];
	struct aw_proto_req r, g;
	struct aw_proto_err e;
	int n;
	(void)state;

	aw_proto_req_init(&r);
	r.prompt = S("hello");
	r.temperature = NAN;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "temperature"),
			 -EBADMSG);
	r.temperature = -1.0f;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "temperature"),
			 -EBADMSG);
	r.temperature = INFINITY;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "temperature"),
			 -EBADMSG);
	r.temperature = 1.0f;
	r.top_p = 1.5f;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "top_p"), -EBADMSG);
	r.top_p = 1.0f;
	r.min_p = -0.1f;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "min_p"), -EBADMSG);
	r.min_p = 0.0f;
	r.repetition_penalty = 0.0f;
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "repetition_penalty"),
			 -EBADMSG);
	r.repetition_penalty = 1.0f;
	/* CLASSIFY without labels, GENERATE with labels */
	assert_int_equal(req_fault(AW_PROTO_CLASSIFY, &r, buf, sizeof(buf), "LABEL"), -EBADMSG);
	r.n_labels = 1;
	r.labels[0] = S("x");
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "LABEL"), -EBADMSG);
	r.n_labels = 0;
	/* empty / too long stop string */
	r.n_stop = 1;
	r.stop[0] = S("");
	assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "STOP"), -EBADMSG);
	{
		char longstop[80];

		memset(longstop, 'a', sizeof(longstop) - 1);
		longstop[sizeof(longstop) - 1] = 0;
		r.stop[0] = S(longstop);
		assert_int_equal(req_fault(AW_PROTO_GENERATE, &r, buf, sizeof(buf), "STOP"),
				 -EBADMSG);
	}
	r.n_stop = 0;
	/* build refuses more stop strings than the protocol allows */
	r.n_stop = AW_PROTO_MAX_STOP + 1;
	assert_int_equal(aw_proto_req_build(&r, buf, sizeof(buf)), -EINVAL);
	r.n_stop = 0;

	/* hand-made bodies: missing prompt, duplicate prompt, critical tag, bad fixed_len */
	n = aw_proto_req_build(&r, buf, sizeof(buf));
	assert_true(n > 0);
	/* duplicate PROMPT: append a copy of the TLV */
	memcpy(buf + n, buf + AW_PROTO_REQ_FIXED_LEN, 8 + 5);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n + 13, &g, &e),
			 -EBADMSG);
	assert_non_null(strstr(e.err.msg, "repeated"));
	/* an unknown non-critical tag is skipped, a critical one refused */
	put16(buf + n, 77);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n + 13, &g, &e), 0);
	put16(buf + n, 77 | AW_PROTO_TAG_CRITICAL);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n + 13, &g, &e),
			 -EBADMSG);
	assert_non_null(strstr(e.err.msg, "critical"));
	/* TLV length beyond the body */
	put16(buf + n, 77);
	put32(buf + n + 4, 6);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n + 13, &g, &e),
			 -EBADMSG);
	assert_non_null(strstr(e.err.msg, "runs past"));
	/* no PROMPT at all: only the fixed block */
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, AW_PROTO_REQ_FIXED_LEN, &g, &e),
			 -EBADMSG);
	assert_non_null(strstr(e.err.msg, "PROMPT"));
	/* fixed_len too small and beyond the body */
	put16(buf, 39);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n, &g, &e), -EBADMSG);
	assert_non_null(strstr(e.err.msg, "fixed_len"));
	put16(buf, 60000);
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n, &g, &e), -EBADMSG);
	assert_non_null(strstr(e.err.msg, "fixed_len"));
	/* a longer fixed block (a later version) is accepted: its tail skipped */
	{
		static uint8_t b2[256];

		n = aw_proto_req_build(&r, buf, sizeof(buf));
		memcpy(b2, buf, AW_PROTO_REQ_FIXED_LEN);
		memset(b2 + AW_PROTO_REQ_FIXED_LEN, 0xee, 8);
		memcpy(b2 + AW_PROTO_REQ_FIXED_LEN + 8, buf + AW_PROTO_REQ_FIXED_LEN,
		       (size_t)n - AW_PROTO_REQ_FIXED_LEN);
		put16(b2, AW_PROTO_REQ_FIXED_LEN + 8);
		assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, b2, (size_t)n + 8, &g, &e),
				 0);
		assert_int_equal(g.prompt.len, 5);
	}
	/* no body for these types */
	assert_int_equal(aw_proto_req_parse(AW_PROTO_PING, buf, (size_t)n, &g, &e), -EBADMSG);
	assert_int_equal(e.fault, AW_PROTO_FAULT_TYPE);
}

static void test_reply_payloads(void **state)
{
	uint8_t buf[2048];
	struct aw_proto_err e;
	(void)state;

	/* DATA */
	{
		uint32_t nt;
		struct aw_proto_str s;
		int n = aw_proto_data_build(buf, sizeof(buf), 3, "abc def", 7);

		assert_int_equal(n, 11);
		assert_int_equal(aw_proto_data_parse(buf, (size_t)n, &nt, &s, &e), 0);
		assert_int_equal(nt, 3);
		assert_int_equal(s.len, 7);
		assert_memory_equal(s.p, "abc def", 7);
		assert_int_equal(aw_proto_data_parse(buf, 3, &nt, &s, &e), -EBADMSG);
		assert_int_equal(aw_proto_data_build(buf, 8, 1, "abcdefgh", 8), -ENOSPC);
	}
	/* END with probabilities */
	{
		struct aw_proto_summary s = {0}, g;
		float probs[3] = {0.25f, 0.5f, 0.25f};
		int n;

		s.finish = AW_PROTO_FINISH_LENGTH;
		s.n_probs = 3;
		s.prompt_tokens = 100;
		s.gen_tokens = 20;
		s.queue_us = 5;
		s.prefill_us = 600;
		s.decode_us = 7000;
		s.n_data = 19;
		s.data_bytes = 1ull << 33;
		s.model = 255;
		n = aw_proto_summary_build(buf, sizeof(buf), &s, probs);
		assert_int_equal(n, AW_PROTO_SUMMARY_LEN + 12);
		assert_int_equal(buf[1], 255); /* the model tag sits in byte 1 */
		assert_int_equal(aw_proto_summary_parse(buf, (size_t)n, &g, &e), 0);
		assert_int_equal(g.finish, AW_PROTO_FINISH_LENGTH);
		assert_int_equal(g.model, 255);
		assert_int_equal(g.prompt_tokens, 100);
		assert_int_equal(g.gen_tokens, 20);
		assert_int_equal(g.queue_us, 5);
		assert_int_equal(g.prefill_us, 600);
		assert_int_equal(g.decode_us, 7000);
		assert_int_equal(g.n_data, 19);
		assert_true(g.data_bytes == 1ull << 33);
		assert_true(aw_proto_summary_prob(&g, 1) == 0.5f);
		assert_true(isnan(aw_proto_summary_prob(&g, 3)));
		assert_int_equal(aw_proto_summary_parse(buf, (size_t)n - 1, &g, &e), -EBADMSG);
		assert_int_equal(aw_proto_summary_parse(buf, (size_t)n + 4, &g, &e), -EBADMSG);
		buf[0] = AW_PROTO_FINISH_MAX_;
		assert_int_equal(aw_proto_summary_parse(buf, (size_t)n, &g, &e), -EBADMSG);
		for (unsigned f = 0; f < AW_PROTO_FINISH_MAX_; f++)
			assert_string_not_equal(aw_proto_finish_name(f), "?");
	}
	/* ERROR */
	{
		struct aw_proto_error g;
		char longmsg[300];
		int n = aw_proto_error_build(buf, sizeof(buf), AW_PROTO_ERR_OVERLOADED, 1500,
					     "queue full");

		assert_int_equal(n, AW_PROTO_ERROR_HDR_LEN + 10);
		assert_int_equal(aw_proto_error_parse(buf, (size_t)n, &g, &e), 0);
		assert_int_equal(g.code, AW_PROTO_ERR_OVERLOADED);
		assert_int_equal(g.retry_after_us, 1500);
		assert_int_equal(g.msg.len, 10);
		assert_memory_equal(g.msg.p, "queue full", 10);
		assert_int_equal(aw_proto_error_parse(buf, (size_t)n - 1, &g, &e), -EBADMSG);
		assert_int_equal(aw_proto_error_parse(buf, 4, &g, &e), -EBADMSG);
		memset(longmsg, 'x', sizeof(longmsg) - 1);
		longmsg[sizeof(longmsg) - 1] = 0;
		n = aw_proto_error_build(buf, sizeof(buf), AW_PROTO_ERR_INTERNAL, 0, longmsg);
		assert_int_equal(n, AW_PROTO_ERROR_HDR_LEN + AW_PROTO_ERROR_MAX_MSG);
		assert_int_equal(aw_proto_error_parse(buf, (size_t)n, &g, &e), 0);
		for (unsigned c = 1; c < AW_PROTO_ERR_MAX_; c++)
			assert_string_not_equal(aw_proto_code_name(c), "?");
	}
	/* PROGRESS */
	{
		struct aw_proto_progress p = {12, 2}, g;
		int n = aw_proto_progress_build(buf, sizeof(buf), &p);

		assert_int_equal(n, AW_PROTO_PROGRESS_LEN);
		assert_int_equal(aw_proto_progress_parse(buf, (size_t)n, &g, &e), 0);
		assert_int_equal(g.n_sent, 12);
		assert_int_equal(g.state, 2);
		assert_int_equal(aw_proto_progress_parse(buf, 7, &g, &e), -EBADMSG);
	}
}

/* MESSAGES / TOOLS / TOOL_CHOICE / EMBED_OPTS / TOOL_CALL (agent operations) */
static void agent_bad(unsigned type, const struct aw_proto_req *r, const char *why)
{
	static uint8_t buf[4096];
	struct aw_proto_req g;
	struct aw_proto_err e;
	int n = aw_proto_req_build(r, buf, sizeof(buf));

	assert_true(n > 0);
	memset(&e, 0, sizeof(e));
	assert_int_equal(aw_proto_req_parse(type, buf, (size_t)n, &g, &e), -EBADMSG);
	assert_int_equal(e.code, AW_PROTO_ERR_BAD_REQUEST);
	assert_non_null(strstr(e.err.msg, why));
}

/* a TLV appended by hand to a valid body */
static void agent_bad_tlv(unsigned type, uint16_t tag, const void *v, uint32_t vlen,
			  const char *why)
{
	static uint8_t buf[4096];
	struct aw_proto_req r, g;
	struct aw_proto_err e;

	aw_proto_req_init(&r);
	r.prompt = S("hi");
	if (type == AW_PROTO_CLASSIFY) {
		r.n_labels = 1;
		r.labels[0] = S("a");
	}
	int n = aw_proto_req_build(&r, buf, sizeof(buf));
	assert_true(n > 0);
	buf[n] = (uint8_t)tag;
	buf[n + 1] = (uint8_t)(tag >> 8);
	buf[n + 2] = buf[n + 3] = 0;
	memcpy(buf + n + 4, &vlen, 4);
	memcpy(buf + n + 8, v, vlen);
	memset(&e, 0, sizeof(e));
	assert_int_equal(aw_proto_req_parse(type, buf, (size_t)n + 8 + vlen, &g, &e), -EBADMSG);
	assert_non_null(strstr(e.err.msg, why));
}

static void test_agent_tlvs(void **state)
{
	static uint8_t buf[4096];
	struct aw_proto_req r, g;
	struct aw_proto_err e;
	int n;

	(void)state;
	/* messages + tools + a named tool choice instead of a prompt */
	aw_proto_req_init(&r);
	r.prompt.p = NULL;
	r.messages = S("[{\"role\":\"user\",\"content\":\"weather in Paris?\"}]");
	r.tools = S("[{\"type\":\"function\",\"function\":{\"name\":\"weather\"}}]");
	r.tool_choice = AW_PROTO_TOOLS_NAMED;
	r.tool_name = S("weather");
	r.response_format = S("{\"type\":\"object\"}");
	n = aw_proto_req_build(&r, buf, sizeof(buf));
	assert_int_equal(n, (int)aw_proto_req_size(&r));
	assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n, &g, &e), 0);
	assert_null(g.prompt.p);
	assert_int_equal(g.messages.len, r.messages.len);
	assert_memory_equal(g.messages.p, r.messages.p, r.messages.len);
	assert_memory_equal(g.tools.p, r.tools.p, r.tools.len);
	assert_int_equal(g.tool_choice, AW_PROTO_TOOLS_NAMED);
	assert_int_equal(g.tool_name.len, 7);
	assert_memory_equal(g.tool_name.p, "weather", 7);
	assert_int_equal(g.embed_flags, AW_PROTO_EMBED_NORMALIZE); /* the default */
	/* every mode round-trips */
	for (uint8_t m = 0; m < AW_PROTO_TOOLS_NAMED; m++) {
		r.tool_choice = m;
		n = aw_proto_req_build(&r, buf, sizeof(buf));
		assert_int_equal(aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n, &g, &e), 0);
		assert_int_equal(g.tool_choice, m);
		assert_int_equal(g.tool_name.len, 0);
	}
	/* embed options */
	aw_proto_req_init(&r);
	r.prompt = S("query: pasta");
	r.pooling = AW_PROTO_POOL_LAST;
	r.embed_flags = 0;
	n = aw_proto_req_build(&r, buf, sizeof(buf));
	assert_int_equal(n, (int)aw_proto_req_size(&r));
	assert_int_equal(aw_proto_req_parse(AW_PROTO_EMBED, buf, (size_t)n, &g, &e), 0);
	assert_int_equal(g.pooling, AW_PROTO_POOL_LAST);
	assert_int_equal(g.embed_flags, 0);
	/* defaults are not written: an old body parses to mean + normalised */
	r.pooling = AW_PROTO_POOL_MEAN;
	r.embed_flags = AW_PROTO_EMBED_NORMALIZE;
	assert_int_equal(aw_proto_req_size(&r), AW_PROTO_REQ_FIXED_LEN + 8 + 12);

	/* what may not go together */
	aw_proto_req_init(&r);
	r.prompt = S("hi");
	r.messages = S("[]");
	agent_bad(AW_PROTO_GENERATE, &r, "both PROMPT and MESSAGES");
	aw_proto_req_init(&r);
	r.prompt = S("hi");
	r.tools = S("[]");
	agent_bad(AW_PROTO_GENERATE, &r, "TOOLS without MESSAGES");
	aw_proto_req_init(&r);
	r.prompt.p = NULL;
	r.messages = S("[]");
	r.tool_choice = AW_PROTO_TOOLS_REQUIRED;
	agent_bad(AW_PROTO_GENERATE, &r, "TOOL_CHOICE without TOOLS");
	r.tool_choice = AW_PROTO_TOOLS_AUTO;
	r.tools = S("[]");
	agent_bad(AW_PROTO_EMBED, &r, "TOOLS in a EMBED");
	aw_proto_req_init(&r);
	r.prompt = S("hi");
	r.response_format = S("{}");
	agent_bad(AW_PROTO_EMBED, &r, "RESPONSE_FORMAT in a EMBED");
	aw_proto_req_init(&r);
	r.prompt = S("hi");
	r.pooling = AW_PROTO_POOL_CLS;
	agent_bad(AW_PROTO_GENERATE, &r, "EMBED_OPTS in a GENERATE");
	/* an empty JSON TLV is refused (fuzz-proto found one that parsed and
	 * then vanished from the rebuilt body): MESSAGES, TOOLS,
	 * RESPONSE_FORMAT appended raw with length 0 */
	{
		static const uint16_t tags[] = {AW_PROTO_TAG_MESSAGES, AW_PROTO_TAG_TOOLS,
						AW_PROTO_TAG_RESPONSE_FORMAT};

		for (size_t k = 0; k < 3; k++) {
			aw_proto_req_init(&r);
			r.prompt.p = NULL;
			if (tags[k] == AW_PROTO_TAG_MESSAGES)
				r.prompt = S("hi");
			else
				r.messages = S("[]");
			n = aw_proto_req_build(&r, buf, sizeof(buf));
			assert_true(n > 0);
			memset(buf + n, 0, 8);
			buf[n] = (uint8_t)(tags[k] & 0xff);
			buf[n + 1] = (uint8_t)(tags[k] >> 8);
			assert_int_equal(
				aw_proto_req_parse(AW_PROTO_GENERATE, buf, (size_t)n + 8, &g, &e),
				-EBADMSG);
			assert_non_null(strstr(e.err.msg, "is empty"));
		}
	}
	/* the builder refuses what it cannot write */
	aw_proto_req_init(&r);
	r.prompt = S("hi");
	r.tool_choice = AW_PROTO_TOOLS_NAMED;
	assert_int_equal(aw_proto_req_build(&r, buf, sizeof(buf)), -EINVAL);
	r.tool_choice = 9;
	assert_int_equal(aw_proto_req_build(&r, buf, sizeof(buf)), -EINVAL);
	r.tool_choice = 0;
	r.pooling = 3;
	assert_int_equal(aw_proto_req_build(&r, buf, sizeof(buf)), -EINVAL);
	/* hand-made bad TLVs */
	const uint8_t opts_badpool[4] = {3, 1, 0, 0}, opts_badflag[4] = {0, 0x80, 0, 0};
	agent_bad_tlv(AW_PROTO_EMBED, AW_PROTO_TAG_EMBED_OPTS, opts_badpool, 4, "pooling 3");
	agent_bad_tlv(AW_PROTO_EMBED, AW_PROTO_TAG_EMBED_OPTS, opts_badflag, 4, "flags 0x80");
	agent_bad_tlv(AW_PROTO_EMBED, AW_PROTO_TAG_EMBED_OPTS, opts_badpool, 3, "of 3 bytes");
	const uint8_t mode9[1] = {9}, named_empty[1] = {3}, auto_name[3] = {0, 'x', 'y'};
	agent_bad_tlv(AW_PROTO_GENERATE, AW_PROTO_TAG_TOOL_CHOICE, mode9, 1, "mode 9");
	agent_bad_tlv(AW_PROTO_GENERATE, AW_PROTO_TAG_TOOL_CHOICE, mode9, 0, "mode -1");
	agent_bad_tlv(AW_PROTO_GENERATE, AW_PROTO_TAG_TOOL_CHOICE, named_empty, 1, "0-byte name");
	agent_bad_tlv(AW_PROTO_GENERATE, AW_PROTO_TAG_TOOL_CHOICE, auto_name, 3, "2-byte name");
	uint8_t longname[70] = {3};
	memset(longname + 1, 'n', 69);
	agent_bad_tlv(AW_PROTO_GENERATE, AW_PROTO_TAG_TOOL_CHOICE, longname, 66, "65-byte name");

	/* TOOL_CALL replies */
	struct aw_proto_tool_call c = {.n_tokens = 17,
				       .index = 2,
				       .name = S("get_weather"),
				       .args = S("{\"city\": \"Paris\"}")},
				  d;
	n = aw_proto_tool_call_build(buf, sizeof(buf), &c);
	assert_int_equal(n, 12 + 11 + 17);
	assert_int_equal(aw_proto_tool_call_parse(buf, (size_t)n, &d, &e), 0);
	assert_int_equal(d.n_tokens, 17);
	assert_int_equal(d.index, 2);
	assert_memory_equal(d.name.p, "get_weather", 11);
	assert_int_equal(d.args.len, 17);
	assert_memory_equal(d.args.p, c.args.p, 17);
	for (int l = 0; l < n; l++)
		assert_int_equal(aw_proto_tool_call_parse(buf, (size_t)l, &d, &e), -EBADMSG);
	assert_int_equal(aw_proto_tool_call_build(buf, 20, &c), -ENOSPC);
	c.name.len = 0;
	assert_int_equal(aw_proto_tool_call_build(buf, sizeof(buf), &c), -EINVAL);
	assert_string_equal(aw_proto_type_name(AW_PROTO_TOOL_CALL), "TOOL_CALL");
	assert_int_equal(aw_proto_type_kind(AW_PROTO_TOOL_CALL), 2);
	assert_string_equal(aw_proto_finish_name(AW_PROTO_FINISH_TOOL_CALLS), "tool_calls");
}

/* Reply fragments (aw_proto_frag_add): a lone datagram passes through; a
 * run gives the concatenation; a cut run, MORE on another type and a run
 * beyond AW_PROTO_MAX_REPLY_MSG are refused with a message. */
static void test_reply_fragments(void **state)
{
	static uint8_t chunk[65536];
	struct aw_proto_frag f = {0};
	struct aw_proto_hdr h = {.type = AW_PROTO_TOOL_CALL};
	struct aw_proto_err e;
	const void *p;
	size_t len;
	(void)state;

	h.payload_len = 3;
	assert_int_equal(aw_proto_frag_add(&f, &h, "abc", &p, &len, &e), 1);
	assert_ptr_equal(p, "abc");
	assert_int_equal(len, 3);
	h.flags = AW_PROTO_F_MORE;
	assert_int_equal(aw_proto_frag_add(&f, &h, "abc", &p, &len, &e), 0);
	h.seq = 1;
	assert_int_equal(aw_proto_frag_add(&f, &h, "def", &p, &len, &e), 0);
	h.flags = 0;
	h.seq = 2;
	h.payload_len = 1;
	assert_int_equal(aw_proto_frag_add(&f, &h, "g", &p, &len, &e), 1);
	assert_int_equal(len, 7);
	assert_memory_equal(p, "abcdefg", 7);
	/* a run cut by the terminal */
	h.flags = AW_PROTO_F_MORE;
	h.seq = 3;
	assert_int_equal(aw_proto_frag_add(&f, &h, "x", &p, &len, &e), 0);
	h.type = AW_PROTO_END;
	h.flags = 0;
	h.seq = 4;
	assert_int_equal(aw_proto_frag_add(&f, &h, "y", &p, &len, &e), -EBADMSG);
	assert_string_equal(e.err.msg, "TOOL_CALL fragments missing: 1 bytes so far, then END "
				       "(seq 4)");
	aw_proto_frag_fini(&f);
	/* MORE on DATA */
	h.type = AW_PROTO_DATA;
	h.flags = AW_PROTO_F_MORE;
	assert_int_equal(aw_proto_frag_add(&f, &h, "y", &p, &len, &e), -EBADMSG);
	assert_string_equal(e.err.msg,
			    "DATA datagram (seq 4) marked MORE: only TOOL_CALL is fragmented");
	/* beyond 1 MiB: 16 full fragments fit exactly, one more byte does not */
	h.type = AW_PROTO_TOOL_CALL;
	h.payload_len = 65535;
	unsigned i;
	for (i = 0; i < 16; i++)
		assert_int_equal(aw_proto_frag_add(&f, &h, chunk, &p, &len, &e), 0);
	h.payload_len = 16;
	assert_int_equal(aw_proto_frag_add(&f, &h, chunk, &p, &len, &e), 0);
	h.payload_len = 1;
	assert_int_equal(aw_proto_frag_add(&f, &h, chunk, &p, &len, &e), -EBADMSG);
	assert_string_equal(e.err.msg, "TOOL_CALL reply longer than 1048576 bytes");
	aw_proto_frag_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip_every_type),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_build_limits),
		cmocka_unit_test(test_segments_round_trip),
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_malformed),
		cmocka_unit_test(test_reply_payloads),
		cmocka_unit_test(test_agent_tlvs),
		cmocka_unit_test(test_reply_fragments),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
