/* bench-pingpong.c — the plainest PING client there is: one blocking kernel
 * UDP socket, one request in flight, send, recv, repeat. It is the baseline
 * against which aw-loadgen's own latency overhead is measured
 * (tests/bench/bench-loadgen.sh).
 *
 *   bench-pingpong HOST PORT COUNT [PAYLOAD_BYTES]
 *
 * Prints "pingpong n=N p50_us=.. p90_us=.. p99_us=.. max_us=.. rate_per_s=..".
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "proto.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
	static struct aw_hist h;
	uint8_t dg[2048], rx[2048], payload[1024] = {0};
	struct aw_proto_hdr hdr;
	long count, plen = 64;
	uint64_t t0, start;
	int fd, n;

	if (argc < 4 || (count = atol(argv[3])) <= 0 ||
	    (argc > 4 && ((plen = atol(argv[4])) < 0 || plen > 1024))) {
		fprintf(stderr, "usage: bench-pingpong HOST PORT COUNT [PAYLOAD_BYTES<=1024]\n");
		return 2;
	}
	if (getaddrinfo(argv[1], argv[2], &hints, &ai) != 0)
		return 1;
	fd = socket(ai->ai_family, SOCK_DGRAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		return 1;
	freeaddrinfo(ai);
	{
		struct timeval tv = {1, 0};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	aw_hist_reset(&h);
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = AW_PROTO_PING;
	start = now_ns();
	for (long i = 0; i < count; i++) {
		hdr.request_id = (uint64_t)i + 1;
		n = aw_proto_build(dg, sizeof(dg), &hdr, payload, (size_t)plen);
		t0 = now_ns();
		if (send(fd, dg, (size_t)n, 0) != n)
			return 1;
		for (;;) {
			struct aw_proto_hdr r;
			ssize_t k = recv(fd, rx, sizeof(rx), 0);

			if (k < 0) {
				fprintf(stderr, "bench-pingpong: no answer to request %ld\n",
					i + 1);
				return 1;
			}
			if (aw_proto_hdr_parse(rx, (size_t)k, 0, &r, NULL) == 0 &&
			    r.request_id == hdr.request_id && r.type == AW_PROTO_PONG)
				break;
		}
		aw_hist_record(&h, now_ns() - t0);
	}
	printf("pingpong n=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f rate_per_s=%.0f\n",
	       count, aw_hist_quantile(&h, 0.5) / 1e3, aw_hist_quantile(&h, 0.9) / 1e3,
	       aw_hist_quantile(&h, 0.99) / 1e3, h.max / 1e3,
	       (double)count / ((double)(now_ns() - start) / 1e9));
	close(fd);
	return 0;
}
