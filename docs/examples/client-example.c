/* client-example.c — the libaw_client example of docs/CLIENT.md (built as
 * build/tools/aw-client-example so that it keeps compiling).
 *
 *   aw-client-example HOST PORT
 *
 * A synchronous PING and STATS, a synchronous GENERATE, then 100 PINGs in
 * flight at once with a callback each. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"

static unsigned done_ok;

static void on_done(void *ctx, uint64_t id, const struct aw_client_result *res)
{
	(void)ctx, (void)id;
	if (res->status == 0)
		done_ok++;
}

int main(int argc, char **argv)
{
	struct aw_client *c;
	struct aw_client_result res;
	struct aw_proto_req req;
	char text[4096];
	uint64_t rtt;
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: aw-client-example HOST PORT\n");
		return 2;
	}
	rc = aw_client_open(argv[1], argv[2], NULL, &c); /* NULL: default options */
	if (rc < 0) {
		fprintf(stderr, "open: %s\n", strerror(-rc));
		return 1;
	}

	/* 1. synchronous calls */
	if (aw_client_ping(c, "hello", 5, &rtt) == 0)
		printf("PING rtt %llu us\n", (unsigned long long)rtt);
	if (aw_client_stats(c, text, sizeof(text)) == 0)
		printf("STATS:\n%s", text);

	aw_proto_req_init(&req); /* sampling "off": greedy, no limits */
	req.prompt.p = "Pick a tool for: weather in Paris?";
	req.prompt.len = (uint32_t)strlen(req.prompt.p);
	req.max_new_tokens = 32;
	req.deadline_us = 200000;
	rc = aw_client_request(c, AW_PROTO_GENERATE, 0, &req, text, sizeof(text), &res);
	if (rc == 0)
		printf("GENERATE: %s (%u tokens, finish %s)\n", text, res.summary.gen_tokens,
		       aw_proto_finish_name(res.summary.finish));
	else if (rc == -EREMOTEIO)
		printf("GENERATE refused: %s: %s\n", aw_proto_code_name(res.err_code), res.err_msg);
	else
		printf("GENERATE failed: %s\n", strerror(-rc));

	/* 2. asynchronous: many requests in flight on one socket */
	for (unsigned i = 0; i < 100; i++)
		if (aw_client_submit(c, AW_PROTO_PING, 0, &i, sizeof(i), NULL, on_done, NULL,
				     NULL) < 0)
			break;
	while (aw_client_inflight(c) > 0)
		if (aw_client_poll(c, 100) < 0)
			break;
	printf("%u of 100 PINGs answered\n", done_ok);
	aw_client_close(c);
	return 0;
}
