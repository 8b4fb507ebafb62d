/* fuzz-proto.c — libFuzzer target for the wire codec (dataplane/proto.c,
 * proto-store.c).
 *
 * Each input is a sequence of datagrams, each prefixed by a 2-byte length.
 * Every datagram goes through the header parser; accepted ones are re-encoded
 * and must give back the same bytes (reserved field aside), their payload is
 * fed to the body parser that matches the type, and they are pushed through
 * a reassembly table and a retransmit store with small limits, so that the
 * tables see duplicates, conflicts, limits and expiry. Replies also go, in
 * input order, through a reply-fragment gatherer (aw_proto_frag: the MORE
 * flag, runs interrupted by another type, the size limit), whose whole
 * payloads are fed to the body parsers. A crash, a sanitizer report or a
 * failed round trip is a finding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_body(const struct aw_proto_hdr *h, const uint8_t *pl, size_t len)
{
	struct aw_proto_err e;

	switch (h->type) {
	case AW_PROTO_GENERATE:
	case AW_PROTO_CLASSIFY:
	case AW_PROTO_EMBED: {
		static struct aw_proto_req r;
		static uint8_t out[70000];

		if (aw_proto_req_parse(h->type, pl, len, &r, &e) == 0) {
			/* re-encoding a parsed body gives a body that parses the same */
			static struct aw_proto_req g;
			int n = aw_proto_req_build(&r, out, sizeof(out));

			if (n < 0 || aw_proto_req_parse(h->type, out, (size_t)n, &g, &e) != 0 ||
			    g.prompt.len != r.prompt.len || g.n_stop != r.n_stop ||
			    g.n_labels != r.n_labels || (r.prompt.len && !g.prompt.p) ||
			    (r.prompt.len && memcmp(g.prompt.p, r.prompt.p, r.prompt.len) != 0) ||
			    g.messages.len != r.messages.len || g.tools.len != r.tools.len ||
			    g.tool_choice != r.tool_choice || g.tool_name.len != r.tool_name.len ||
			    g.pooling != r.pooling || g.embed_flags != r.embed_flags)
				abort();
		}
		break;
	}
	case AW_PROTO_DATA: {
		uint32_t nt;
		struct aw_proto_str s;

		(void)aw_proto_data_parse(pl, len, &nt, &s, &e);
		break;
	}
	case AW_PROTO_END: {
		struct aw_proto_summary s;

		if (aw_proto_summary_parse(pl, len, &s, &e) == 0)
			for (unsigned i = 0; i < s.n_probs; i++)
				(void)aw_proto_summary_prob(&s, i);
		break;
	}
	case AW_PROTO_ERROR: {
		struct aw_proto_error er;

		(void)aw_proto_error_parse(pl, len, &er, &e);
		break;
	}
	case AW_PROTO_PROGRESS: {
		struct aw_proto_progress p;

		(void)aw_proto_progress_parse(pl, len, &p, &e);
		break;
	}
	case AW_PROTO_TOOL_CALL: {
		struct aw_proto_tool_call c, d;
		static uint8_t out[AW_PROTO_MAX_REPLY_MSG];

		if (aw_proto_tool_call_parse(pl, len, &c, &e) == 0) {
			int n = aw_proto_tool_call_build(out, sizeof(out), &c);
			if (n != (int)len ||
			    aw_proto_tool_call_parse(out, (size_t)n, &d, &e) != 0 ||
			    memcmp(out, pl, len) != 0)
				abort();
		}
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_proto_reasm_limits rl;
	struct aw_proto_rtx_limits xl;
	struct aw_proto_reasm *r;
	struct aw_proto_rtx *x;
	uint64_t now = 0;
	size_t off = 0;

	aw_proto_reasm_limits_default(&rl);
	rl.max_msg = 8192;
	rl.max_client_bytes = 16384;
	rl.max_total_bytes = 32768;
	rl.max_client_entries = 4;
	rl.max_entries = 8;
	rl.timeout_us = 50;
	aw_proto_rtx_limits_default(&xl);
	xl.max_client_bytes = 4096;
	xl.max_total_bytes = 8192;
	xl.max_entries = 8;
	xl.retain_us = 40;
	struct aw_proto_frag fg = {0};

	r = aw_proto_reasm_new(&rl);
	x = aw_proto_rtx_new(&xl);
	if (!r || !x)
		abort();

	while (off + 2 <= size) {
		size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
		const uint8_t *dg = data + off + 2;
		struct aw_proto_hdr h;
		struct aw_proto_err e;
		struct aw_proto_peer peer;
		struct aw_proto_msg m;
		uint8_t again[AW_PROTO_HDR_LEN];

		off += 2;
		if (len > size - off)
			len = size - off;
		off += len;
		now += 7;
		if (aw_proto_hdr_parse(dg, len, 0, &h, &e) != 0) {
			if (e.fault <= AW_PROTO_FAULT_NONE || e.fault >= AW_PROTO_FAULT_MAX_)
				abort();
			continue;
		}
		aw_proto_hdr_write(again, &h);
		if (memcmp(again, dg, 44) != 0 || memcmp(again + 48, dg + 48, 16) != 0)
			abort();
		memset(&peer, 0, sizeof(peer));
		peer.family = 4;
		peer.addr[3] = (uint8_t)(h.server_id & 3);
		peer.port = (uint16_t)(h.tenant_id & 3);

		switch (h.type) {
		case AW_PROTO_RESUME:
		case AW_PROTO_CANCEL: {
			const void *p;

			(void)aw_proto_rtx_get(x, &peer, h.request_id, h.seq, &p);
			break;
		}
		case AW_PROTO_ACK:
			(void)aw_proto_rtx_drop(x, &peer, h.request_id);
			break;
		default:
			if (aw_proto_type_kind(h.type) == 2) {
				/* a reply: store it as if we had sent it */
				uint32_t next;

				if (aw_proto_rtx_state(x, &peer, h.request_id, NULL, &next) < 0)
					(void)aw_proto_rtx_open(x, &peer, h.request_id, now);
				else
					(void)aw_proto_rtx_append(x, &peer, h.request_id, next, dg,
								  len, h.type != AW_PROTO_DATA,
								  now);
				check_body(&h, dg + AW_PROTO_HDR_LEN, h.payload_len);
				/* reply fragments, as a client gathers them */
				const void *fp;
				size_t fl;
				int fr = aw_proto_frag_add(&fg, &h, dg + AW_PROTO_HDR_LEN, &fp, &fl,
							   &e);
				if (fr == 1) {
					if (fl > AW_PROTO_MAX_REPLY_MSG)
						abort();
					check_body(&h, fp, fl);
				} else if (fr < 0) {
					if (fr != -EBADMSG && fr != -ENOMEM)
						abort();
					aw_proto_frag_fini(&fg); /* the client fails the request */
				}
				break;
			}
			if (aw_proto_reasm_add(r, &peer, &h, dg + AW_PROTO_HDR_LEN, now, &m, &e) ==
			    1) {
				if (m.len != m.hdr.msg_len)
					abort();
				check_body(&m.hdr, m.data, m.len);
				aw_proto_reasm_release(r, &m);
			}
		}
		(void)aw_proto_reasm_expire(r, now);
		(void)aw_proto_rtx_expire(x, now);
	}
	aw_proto_frag_fini(&fg);
	aw_proto_reasm_free(r);
	aw_proto_rtx_free(x);
	return 0;
}
