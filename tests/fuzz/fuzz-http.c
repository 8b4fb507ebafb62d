/* fuzz-http.c — libFuzzer target for aw-loadgen's HTTP response parser
 * (tools/aw-loadgen/http.c). The input is fed in pieces whose sizes come
 * from its first byte, then the connection "ends"; the parser must never
 * read out of bounds, must say why whenever it refuses, must not take bytes
 * beyond what it was given, and must report the same outcome as when the
 * same bytes come in one piece. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Feed all of data in pieces of 'step' (0 = one piece); then EOF when the
 * parser still wants bytes. Returns the outcome; *events, *stopped. */
static int run(struct aw_http_resp *r, const char *data, size_t size, size_t step, size_t *ret_at)
{
	size_t off = 0;
	int rc = 0;

	aw_http_resp_init(r);
	if (!step)
		step = size ? size : 1;
	while (off < size) {
		size_t n = size - off < step ? size - off : step, used = 0;

		rc = aw_http_resp_feed(r, data + off, n, &used);
		if (rc == 1) {
			if (used > n)
				abort();
			*ret_at = off + used;
			return 1;
		}
		if (rc < 0) {
			if (rc != -EBADMSG || !r->why)
				abort();
			*ret_at = 0;
			return rc;
		}
		off += n;
	}
	*ret_at = size;
	rc = aw_http_resp_eof(r);
	if (rc < 0 && !r->why)
		abort();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct aw_http_resp a, b;
	size_t step, at_a, at_b;
	int ra, rb;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] % 17) + 1;
	ra = run(&a, (const char *)data + 1, size - 1, step, &at_a);
	rb = run(&b, (const char *)data + 1, size - 1, 0, &at_b);
	/* the split into reads must not change the outcome */
	if (ra != rb ||
	    (ra == 1 && (at_a != at_b || a.n_events != b.n_events || a.stopped != b.stopped ||
			 a.sse_error != b.sse_error || a.status != b.status)))
		abort();
	return 0;
}
