/* aw-echod — kernel-UDP agentwire server for PING and STATS (see echod.h).
 *
 *   aw-echod [--listen ADDR] [--port PORT] [--server-id N] [--mtu BYTES] [--busy-poll]
 *
 * The kernel-socket baseline for PING benchmarks and the reference server
 * for the client tests. Stops on SIGINT/SIGTERM. Usage errors exit 2.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echod.h"

static volatile int quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void echod_usage(FILE *f)
{
	fprintf(f, "usage: aw-echod [--listen ADDR] [--port PORT] [--server-id N] [--mtu BYTES]"
		   " [--busy-poll]\n"
		   "  --listen ADDR    address to bind (default 127.0.0.1)\n"
		   "  --port PORT      UDP port (default 7878; 0 = any)\n"
		   "  --server-id N    id carried by every reply (0..65535, default 1)\n"
		   "  --mtu BYTES      largest reply datagram + 28 (default 1500)\n"
		   "  --busy-poll      spin on the socket instead of sleeping in poll()\n");
}

static int parse_num(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"port", required_argument, NULL, 'p'},
		{"server-id", required_argument, NULL, 's'},
		{"mtu", required_argument, NULL, 'm'},
		{"busy-poll", no_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct aw_echod_opts o = {.server_id = 1, .mtu = 1500};
	const char *addr = "127.0.0.1", *port = "7878";
	struct aw_echod *d;
	unsigned long v;
	int c, rc;

	while ((c = getopt_long(argc, argv, "l:p:s:m:bh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			addr = optarg;
			break;
		case 'p':
			if (parse_num(optarg, 65535, &v) < 0) {
				fprintf(stderr, "aw-echod: --port '%s': not a port number\n",
					optarg);
				return 2;
			}
			port = optarg;
			break;
		case 's':
			if (parse_num(optarg, 65535, &v) < 0) {
				fprintf(stderr, "aw-echod: --server-id '%s': want 0..65535\n",
					optarg);
				return 2;
			}
			o.server_id = (uint16_t)v;
			break;
		case 'm':
			if (parse_num(optarg, 65535, &v) < 0 || v < 256) {
				fprintf(stderr, "aw-echod: --mtu '%s': want 256..65535\n", optarg);
				return 2;
			}
			o.mtu = v;
			break;
		case 'b':
			o.busy_poll = 1;
			break;
		case 'h':
			echod_usage(stdout);
			return 0;
		default:
			echod_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "aw-echod: unexpected argument '%s'\n", argv[optind]);
		echod_usage(stderr);
		return 2;
	}
	rc = aw_echod_open(addr, port, &o, &d);
	if (rc < 0) {
		fprintf(stderr, "aw-echod: bind %s:%s: %s\n", addr, port, strerror(-rc));
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("aw-echod: listening on %s:%u (server id %u)\n", addr, aw_echod_port(d),
	       o.server_id);
	fflush(stdout);
	rc = aw_echod_run(d, &quit);
	aw_echod_close(d);
	if (rc < 0) {
		fprintf(stderr, "aw-echod: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
