/* fuzz-workload.c — libFuzzer target for aw-loadgen's workload parser
 * (tools/aw-loadgen/workload.c). A parsed workload must also synthesize
 * requests that the server-side codec accepts. */
#include <stdint.h>
#include <stdlib.h>

#include "proto.h"
#include "workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[AW_PROTO_MAX_MSG];
	struct aw_workload w;
	struct aw_err err;
	struct aw_rng r;

	aw_workload_default(&w);
	if (aw_workload_parse(&w, (const char *)data, size, "fuzz", &err) < 0)
		return 0;
	/* keep each input cheap: cap what the generator will build */
	if (w.prefix_tokens * w.chars_per_token > 4096 || w.prompt_tokens.a > 512 ||
	    w.prompt_tokens.b > 512)
		return 0;
	if (aw_workload_prepare(&w) < 0)
		abort();
	aw_rng_seed(&r, 1);
	for (int i = 0; i < 8; i++) {
		struct aw_wl_req q;
		struct aw_proto_req body;
		struct aw_proto_err e;

		if (aw_workload_next(&w, &r, buf, sizeof(buf), &q) < 0)
			abort();
		if ((q.type == AW_PROTO_GENERATE || q.type == AW_PROTO_CLASSIFY ||
		     q.type == AW_PROTO_EMBED) &&
		    aw_proto_req_parse(q.type, q.body, q.len, &body, &e) < 0)
			abort();
	}
	aw_workload_fini(&w);
	return 0;
}
