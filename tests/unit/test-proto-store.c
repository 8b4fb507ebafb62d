/* test-proto-store.c — the server-side tables of libaw_proto: reassembly
 * (order, duplicates, inconsistent segments, limits, timeouts) and the
 * retransmit store (dedupe, resume window, eviction, trimming, expiry). */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "proto.h"

static struct aw_proto_peer mkpeer(uint8_t last, uint16_t port)
{
	struct aw_proto_peer p;

	memset(&p, 0, sizeof(p));
	p.addr[0] = 10;
	p.addr[3] = last;
	p.port = port;
	p.family = 4;
	return p;
}

/* Segment 'i' of message 'msg' as a parsed header + payload pointer. */
static void seg(const uint8_t *msg, size_t len, size_t seg_size, unsigned i, uint64_t id,
		struct aw_proto_hdr *ret_h, const uint8_t **ret_p, uint8_t *dg, size_t cap)
{
	struct aw_proto_hdr t;
	int n;

	memset(&t, 0, sizeof(t));
	t.type = AW_PROTO_GENERATE;
	t.request_id = id;
	n = aw_proto_build_segment(dg, cap, &t, msg, len, seg_size, i);
	assert_true(n > 0);
	assert_int_equal(aw_proto_hdr_parse(dg, (size_t)n, 0, ret_h, NULL), 0);
	*ret_p = dg + AW_PROTO_HDR_LEN;
}

static void test_reasm_order_and_duplicates(void **state)
{
	static uint8_t msg[1000], dg[512];
	static const unsigned order[] = {3, 1, 1, 0, 3, 2};
	static const int expect[] = {0, 0, -EALREADY, 0, -EALREADY, 1};
	struct aw_proto_reasm *r = aw_proto_reasm_new(NULL);
	struct aw_proto_peer p = mkpeer(1, 5000);
	struct aw_proto_reasm_stats st;
	struct aw_proto_msg m;
	(void)state;

	assert_non_null(r);
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i ^ (i >> 3));
	for (unsigned k = 0; k < 6; k++) {
		struct aw_proto_hdr h;
		const uint8_t *pl;
		struct aw_proto_err e;
		int rc;

		seg(msg, sizeof(msg), 300, order[k], 42, &h, &pl, dg, sizeof(dg));
		memset(&e, 0, sizeof(e));
		rc = aw_proto_reasm_add(r, &p, &h, pl, 10, &m, &e);
		assert_int_equal(rc, expect[k]);
		if (rc == -EALREADY)
			assert_int_equal(e.fault, AW_PROTO_FAULT_DUPLICATE);
	}
	assert_int_equal(m.len, sizeof(msg));
	assert_memory_equal(m.data, msg, sizeof(msg));
	assert_true(m.hdr.request_id == 42);
	aw_proto_reasm_get_stats(r, &st);
	assert_int_equal(st.completed, 1);
	assert_int_equal(st.duplicates, 2);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	aw_proto_reasm_release(r, &m);
	/* the same request id from another port is another message */
	{
		struct aw_proto_hdr h;
		const uint8_t *pl;
		struct aw_proto_peer q = mkpeer(1, 5001);

		seg(msg, sizeof(msg), 300, 0, 42, &h, &pl, dg, sizeof(dg));
		assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 10, &m, NULL), 0);
		assert_int_equal(aw_proto_reasm_add(r, &q, &h, pl, 10, &m, NULL), 0);
		aw_proto_reasm_get_stats(r, &st);
		assert_int_equal(st.entries, 2);
		assert_int_equal(st.bytes, 2 * sizeof(msg));
	}
	/* a single-segment message is delivered at once, without a copy */
	{
		struct aw_proto_hdr h;
		const uint8_t *pl;

		seg(msg, 100, 300, 0, 43, &h, &pl, dg, sizeof(dg));
		assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 10, &m, NULL), 1);
		assert_ptr_equal(m.data, pl);
		assert_int_equal(m.len, 100);
		aw_proto_reasm_release(r, &m);
	}
	aw_proto_reasm_free(r);
}

static void test_reasm_inconsistent(void **state)
{
	static uint8_t msg[1000], dg[512];
	struct aw_proto_reasm *r = aw_proto_reasm_new(NULL);
	struct aw_proto_peer p = mkpeer(2, 5000);
	struct aw_proto_hdr h;
	const uint8_t *pl;
	struct aw_proto_msg m;
	struct aw_proto_err e;
	struct aw_proto_reasm_stats st;
	(void)state;

	seg(msg, sizeof(msg), 300, 0, 7, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 0, &m, &e), 0);
	/* same id, segments of a different size: the whole message goes */
	seg(msg, sizeof(msg), 250, 1, 7, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 0, &m, &e), -EBADMSG);
	assert_int_equal(e.fault, AW_PROTO_FAULT_SEGSIZE);
	assert_int_equal(e.code, AW_PROTO_ERR_BAD_REQUEST);
	aw_proto_reasm_get_stats(r, &st);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bad, 1);
	/* same id, different total length */
	seg(msg, sizeof(msg), 300, 0, 8, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 0, &m, &e), 0);
	seg(msg, sizeof(msg) - 1, 300, 1, 8, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &p, &h, pl, 0, &m, &e), -EBADMSG);
	assert_int_equal(e.fault, AW_PROTO_FAULT_SEGSIZE);
	aw_proto_reasm_free(r);
}

static void test_reasm_limits(void **state)
{
	static uint8_t msg[1000], dg[512];
	struct aw_proto_reasm_limits l;
	struct aw_proto_reasm *r;
	struct aw_proto_peer a = mkpeer(3, 1), b = mkpeer(4, 1), c = mkpeer(5, 1);
	struct aw_proto_hdr h;
	const uint8_t *pl;
	struct aw_proto_msg m;
	struct aw_proto_err e;
	(void)state;

	aw_proto_reasm_limits_default(&l);
	l.max_msg = 1500;
	l.max_client_entries = 2;
	l.max_client_bytes = 2500;
	l.max_entries = 3;
	l.max_total_bytes = 100000;
	r = aw_proto_reasm_new(&l);
	assert_non_null(r);

	/* per-client entries: a third incomplete message of client a is refused */
	for (uint64_t id = 1; id <= 3; id++) {
		seg(msg, sizeof(msg), 300, 0, id, &h, &pl, dg, sizeof(dg));
		memset(&e, 0, sizeof(e));
		assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 0, &m, &e),
				 id <= 2 ? 0 : -ENOBUFS);
	}
	assert_int_equal(e.fault, AW_PROTO_FAULT_LIMIT);
	assert_int_equal(e.code, AW_PROTO_ERR_OVERLOADED);
	/* a segment of an existing message of a is still accepted */
	seg(msg, sizeof(msg), 300, 1, 1, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 0, &m, &e), 0);
	/* total entries: b gets one, c is refused (3 in the table) */
	seg(msg, sizeof(msg), 300, 0, 1, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &b, &h, pl, 0, &m, &e), 0);
	assert_int_equal(aw_proto_reasm_add(r, &c, &h, pl, 0, &m, &e), -ENOBUFS);
	/* message beyond max_msg */
	{
		static uint8_t big[2000];

		seg(big, sizeof(big), 300, 0, 9, &h, &pl, dg, sizeof(dg));
		assert_int_equal(aw_proto_reasm_add(r, &c, &h, pl, 0, &m, &e), -EMSGSIZE);
		assert_int_equal(e.fault, AW_PROTO_FAULT_TOO_LONG);
		assert_int_equal(e.code, AW_PROTO_ERR_TOO_LONG);
		assert_string_equal(e.err.msg, "message size: the request of 2000 bytes exceeds "
					       "the server's message size limit of 1500 bytes "
					       "(max_request_bytes)");
	}
	aw_proto_reasm_free(r);

	/* per-client bytes and total bytes */
	l.max_client_entries = 10;
	l.max_entries = 10;
	l.max_client_bytes = 1500;
	l.max_total_bytes = 2500;
	r = aw_proto_reasm_new(&l);
	seg(msg, sizeof(msg), 300, 0, 1, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 0, &m, &e), 0);
	seg(msg, sizeof(msg), 300, 0, 2, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 0, &m, &e), -ENOBUFS); /* 2000 > 1500 */
	assert_int_equal(aw_proto_reasm_add(r, &b, &h, pl, 0, &m, &e), 0);
	assert_int_equal(aw_proto_reasm_add(r, &c, &h, pl, 0, &m, &e), -ENOBUFS); /* 3000 > 2500 */
	/* completing a's message frees its share */
	for (unsigned i = 1; i < 4; i++) {
		seg(msg, sizeof(msg), 300, i, 1, &h, &pl, dg, sizeof(dg));
		assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 0, &m, &e), i < 3 ? 0 : 1);
	}
	aw_proto_reasm_release(r, &m);
	seg(msg, sizeof(msg), 300, 0, 2, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &c, &h, pl, 0, &m, &e), 0);
	aw_proto_reasm_free(r);
}

static void test_reasm_timeout(void **state)
{
	static uint8_t msg[1000], dg[512];
	struct aw_proto_reasm_limits l;
	struct aw_proto_reasm *r;
	struct aw_proto_peer a = mkpeer(6, 1);
	struct aw_proto_hdr h;
	const uint8_t *pl;
	struct aw_proto_msg m;
	struct aw_proto_reasm_stats st;
	(void)state;

	aw_proto_reasm_limits_default(&l);
	l.timeout_us = 1000;
	r = aw_proto_reasm_new(&l);
	seg(msg, sizeof(msg), 300, 0, 1, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 5000, &m, NULL), 0);
	seg(msg, sizeof(msg), 300, 0, 2, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 5500, &m, NULL), 0);
	assert_int_equal(aw_proto_reasm_expire(r, 5999), 0);
	assert_int_equal(aw_proto_reasm_expire(r, 6000), 1); /* id 1 only */
	aw_proto_reasm_get_stats(r, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.expired, 1);
	/* a late segment of the expired message starts over (does not complete) */
	for (unsigned i = 1; i < 4; i++) {
		seg(msg, sizeof(msg), 300, i, 1, &h, &pl, dg, sizeof(dg));
		assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 6000, &m, NULL), 0);
	}
	/* expiry also runs inside add: id 2 is gone at 6500 */
	seg(msg, sizeof(msg), 300, 1, 2, &h, &pl, dg, sizeof(dg));
	assert_int_equal(aw_proto_reasm_add(r, &a, &h, pl, 6500, &m, NULL), 0);
	aw_proto_reasm_get_stats(r, &st);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.entries, 2);
	aw_proto_reasm_free(r);
}

/* ---- retransmit store ---- */

static int app(struct aw_proto_rtx *x, const struct aw_proto_peer *p, uint64_t id, uint32_t seq,
	       size_t len, int term, uint64_t now)
{
	uint8_t buf[4096];

	memset(buf, (int)(seq & 0xff), len);
	return aw_proto_rtx_append(x, p, id, seq, buf, len, term, now);
}

static void test_rtx_basic(void **state)
{
	struct aw_proto_rtx *x = aw_proto_rtx_new(NULL);
	struct aw_proto_peer a = mkpeer(1, 9), b = mkpeer(1, 10);
	const void *d;
	uint32_t first, next;
	struct aw_proto_rtx_stats st;
	(void)state;

	assert_int_equal(aw_proto_rtx_state(x, &a, 5, NULL, NULL), -ENOENT);
	assert_int_equal(aw_proto_rtx_open(x, &a, 5, 0), 0);
	assert_int_equal(aw_proto_rtx_open(x, &a, 5, 0), -EEXIST);
	assert_int_equal(aw_proto_rtx_open(x, &b, 5, 0), 0); /* other client, same id */
	assert_int_equal(aw_proto_rtx_state(x, &a, 5, &first, &next), AW_PROTO_RTX_QUEUED);
	assert_int_equal(next, 0);
	assert_int_equal(app(x, &a, 5, 1, 10, 0, 1), -EINVAL); /* out of order */
	for (uint32_t s = 0; s < 5; s++)
		assert_int_equal(app(x, &a, 5, s, 100 + s, s == 4, 1), 0);
	assert_int_equal(aw_proto_rtx_state(x, &a, 5, &first, &next), AW_PROTO_RTX_FINISHED);
	assert_int_equal(first, 0);
	assert_int_equal(next, 5);
	assert_int_equal(app(x, &a, 5, 5, 10, 0, 1), -EINVAL); /* after the terminal */
	assert_int_equal(aw_proto_rtx_get(x, &a, 5, 3, &d), 103);
	assert_int_equal(((const uint8_t *)d)[0], 3);
	assert_int_equal(aw_proto_rtx_get(x, &a, 5, 5, &d), -ENOENT);
	assert_int_equal(aw_proto_rtx_get(x, &b, 5, 0, &d), -ENOENT);
	assert_int_equal(app(x, &a, 77, 0, 10, 0, 1), -ENOENT);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.bytes, 100 + 101 + 102 + 103 + 104);
	assert_int_equal(aw_proto_rtx_drop(x, &a, 5), 0);
	assert_int_equal(aw_proto_rtx_drop(x, &a, 5), -ENOENT);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.bytes, 0);
	assert_int_equal(st.acked, 1);
	aw_proto_rtx_free(x);
}

static void test_rtx_eviction(void **state)
{
	struct aw_proto_rtx_limits l;
	struct aw_proto_rtx *x;
	struct aw_proto_peer a = mkpeer(1, 1), b = mkpeer(2, 1);
	struct aw_proto_rtx_stats st;
	uint32_t first, next;
	const void *d;
	(void)state;

	aw_proto_rtx_limits_default(&l);
	l.max_client_bytes = 1000;
	l.max_total_bytes = 1500;
	l.max_entries = 4;
	x = aw_proto_rtx_new(&l);

	/* client a: two finished responses of 400 bytes */
	for (uint64_t id = 1; id <= 2; id++) {
		assert_int_equal(aw_proto_rtx_open(x, &a, id, id), 0);
		assert_int_equal(app(x, &a, id, 0, 200, 0, id), 0);
		assert_int_equal(app(x, &a, id, 1, 200, 1, id), 0);
	}
	/* a third response of a needs 300: a's oldest finished (id 1) goes */
	assert_int_equal(aw_proto_rtx_open(x, &a, 3, 3), 0);
	assert_int_equal(app(x, &a, 3, 0, 300, 0, 3), 0);
	assert_int_equal(aw_proto_rtx_state(x, &a, 1, NULL, NULL), -ENOENT);
	assert_int_equal(aw_proto_rtx_state(x, &a, 2, NULL, NULL), AW_PROTO_RTX_FINISHED);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.bytes, 700);
	/* client b needs 900 of the 1500 total: a's finished id 2 is evicted */
	assert_int_equal(aw_proto_rtx_open(x, &b, 1, 4), 0);
	assert_int_equal(app(x, &b, 1, 0, 900, 0, 4), 0);
	assert_int_equal(aw_proto_rtx_state(x, &a, 2, NULL, NULL), -ENOENT);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.bytes, 1200);
	/* b's stream grows past its share: its oldest datagrams are trimmed, the
	 * resume window moves forward */
	assert_int_equal(app(x, &b, 1, 1, 90, 0, 5), 0);
	assert_int_equal(app(x, &b, 1, 2, 100, 0, 5), 0); /* 1090 > 1000: seq 0 trimmed */
	assert_int_equal(aw_proto_rtx_state(x, &b, 1, &first, &next), AW_PROTO_RTX_RUNNING);
	assert_int_equal(first, 1);
	assert_int_equal(next, 3);
	assert_int_equal(aw_proto_rtx_get(x, &b, 1, 0, &d), -ENOENT);
	assert_int_equal(aw_proto_rtx_get(x, &b, 1, 2, &d), 100);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.trimmed, 1);
	/* a datagram larger than a client's share is refused */
	assert_int_equal(app(x, &b, 1, 3, 1001, 0, 5), -ENOBUFS);
	/* entries: 2 live (a:3 running, b:1 running); fill to 4, then a fifth
	 * open fails while none is finished, and succeeds once one is */
	assert_int_equal(aw_proto_rtx_open(x, &a, 10, 6), 0);
	assert_int_equal(aw_proto_rtx_open(x, &a, 11, 6), 0);
	assert_int_equal(aw_proto_rtx_open(x, &a, 12, 6), -ENOBUFS);
	assert_int_equal(app(x, &a, 10, 0, 10, 1, 6), 0);
	assert_int_equal(aw_proto_rtx_open(x, &a, 12, 6), 0);
	assert_int_equal(aw_proto_rtx_state(x, &a, 10, NULL, NULL), -ENOENT);
	aw_proto_rtx_free(x);
}

static void test_rtx_expiry(void **state)
{
	struct aw_proto_rtx_limits l;
	struct aw_proto_rtx *x;
	struct aw_proto_peer a = mkpeer(1, 1);
	struct aw_proto_rtx_stats st;
	(void)state;

	aw_proto_rtx_limits_default(&l);
	l.retain_us = 100;
	x = aw_proto_rtx_new(&l);
	assert_int_equal(aw_proto_rtx_open(x, &a, 1, 0), 0);
	assert_int_equal(app(x, &a, 1, 0, 10, 1, 1000), 0); /* finished at 1000 */
	assert_int_equal(aw_proto_rtx_open(x, &a, 2, 1000), 0);
	assert_int_equal(app(x, &a, 2, 0, 10, 0, 1050), 0); /* running, last at 1050 */
	assert_int_equal(aw_proto_rtx_expire(x, 1099), 0);
	assert_int_equal(aw_proto_rtx_expire(x, 1100), 1);
	assert_int_equal(aw_proto_rtx_state(x, &a, 1, NULL, NULL), -ENOENT);
	assert_int_equal(aw_proto_rtx_state(x, &a, 2, NULL, NULL), AW_PROTO_RTX_RUNNING);
	/* a stalled stream is forgotten after 16 retention periods of silence */
	assert_int_equal(aw_proto_rtx_expire(x, 1050 + 1599), 0);
	assert_int_equal(aw_proto_rtx_expire(x, 1050 + 1600), 1);
	aw_proto_rtx_get_stats(x, &st);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.entries, 0);
	assert_int_equal(st.bytes, 0);
	aw_proto_rtx_free(x);
}

static void test_peer_from_sockaddr(void **state)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct aw_proto_peer p;
	(void)state;

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(4242);
	in.sin_addr.s_addr = htonl(0x7f000001);
	assert_int_equal(aw_proto_peer_from_sockaddr(&in, sizeof(in), &p), 0);
	assert_int_equal(p.family, 4);
	assert_int_equal(p.port, 4242);
	assert_int_equal(p.addr[0], 127);
	assert_int_equal(p.addr[3], 1);
	assert_int_equal(p.addr[4], 0);
	assert_int_equal(aw_proto_peer_from_sockaddr(&in, 4, &p), -EAFNOSUPPORT);
	memset(&in6, 0, sizeof(in6));
	in6.sin6_family = AF_INET6;
	in6.sin6_port = htons(1);
	in6.sin6_addr.s6_addr[15] = 1;
	assert_int_equal(aw_proto_peer_from_sockaddr(&in6, sizeof(in6), &p), 0);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.addr[15], 1);
	in6.sin6_family = AF_UNIX;
	assert_int_equal(aw_proto_peer_from_sockaddr(&in6, sizeof(in6), &p), -EAFNOSUPPORT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reasm_order_and_duplicates),
		cmocka_unit_test(test_reasm_inconsistent),
		cmocka_unit_test(test_reasm_limits),
		cmocka_unit_test(test_reasm_timeout),
		cmocka_unit_test(test_rtx_basic),
		cmocka_unit_test(test_rtx_eviction),
		cmocka_unit_test(test_rtx_expiry),
		cmocka_unit_test(test_peer_from_sockaddr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
