/* bench-load.c — time one weight load and print it as a JSON line.
 *
 *   bench-load FILE [--method uring|read|mmap] [--qd N] [--rs SIZE]
 *              [--gguf] [--offset N --size N] [--nodes 0,0]
 *              [--replicate copy|read] [--hugepages auto|off|require|thp]
 *              [--features-off LIST] [--features-on LIST] [--drop-caches] [--repeat N] [--progress]
 *              [--verify] [--verbose]
 *
 * The region is the whole file, the GGUF data region (--gguf) or
 * [--offset, --offset + --size). --drop-caches drops the page cache before
 * each run (root: /proc/sys/vm/drop_caches; otherwise posix_fadvise
 * DONTNEED on the file). tests/bench/bench-load.sh drives it beside fio.
 * Usage errors exit 2, load errors 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf.h"
#include "loader.h"

static void bench_usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s FILE [--method uring|read|mmap] [--qd N] [--rs SIZE[K|M]] [--gguf]\n"
		"       [--offset N --size N] [--nodes N,N,...] [--replicate copy|read]\n"
		"       [--hugepages auto|off|require|thp] [--features-off LIST] [--features-on "
		"LIST]\n"
		"       [--drop-caches]\n"
		"       [--repeat N] [--progress] [--verify] [--verbose]\n"
		"LIST: "
		"single_issuer,defer_taskrun,coop_taskrun,fixed_bufs,fixed_files,direct,prefault,\n"
		"cb_thread\n",
		prog);
}

static int parse_u64(const char *s, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	else if (*end == 'G' || *end == 'g')
		v <<= 30, end++;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void drop_caches(const char *path)
{
	FILE *f;
	int fd;

	sync();
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f) {
		fputs("3\n", f);
		if (fclose(f) == 0)
			return;
	}
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

/* Compare every replica with the file, read through a second, buffered path. */
static int verify_load(const char *path, const struct aw_load_region *rg, struct aw_weights *w)
{
	const struct aw_weights_info *info = aw_weights_info(w);
	size_t chunk = 1 << 20;
	uint8_t *buf = malloc(chunk);
	uint64_t off;
	unsigned r;
	int fd = open(path, O_RDONLY), ret = 0;

	if (fd < 0 || !buf) {
		fprintf(stderr, "bench-load: verify: %s\n", strerror(errno));
		free(buf);
		return 1;
	}
	for (off = 0; off < rg->size && !ret; off += chunk) {
		size_t n = rg->size - off < chunk ? rg->size - off : chunk;

		if (pread(fd, buf, n, (off_t)(rg->offset + off)) != (ssize_t)n) {
			fprintf(stderr, "bench-load: verify: short read at %" PRIu64 "\n", off);
			ret = 1;
		}
		for (r = 0; r < info->n_replicas && !ret; r++)
			if (memcmp((const uint8_t *)aw_weights_data(w, r) + off, buf, n)) {
				fprintf(stderr,
					"bench-load: verify: replica %u differs near %" PRIu64 "\n",
					r, off);
				ret = 1;
			}
	}
	if (!ret)
		fprintf(stderr, "bench-load: verified %" PRIu64 " bytes x %u replicas\n", rg->size,
			info->n_replicas);
	close(fd);
	free(buf);
	return ret;
}

static void log_stderr(int level, const char *module, const char *line, void *ctx)
{
	(void)ctx;
	if (level > aw_log_level)
		return;
	fprintf(stderr, "%s: %s%s\n", module, level <= AW_LOG_WARNING ? "warning: " : "", line);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"method", required_argument, NULL, 'm'},
		{"qd", required_argument, NULL, 'q'},
		{"rs", required_argument, NULL, 'r'},
		{"gguf", no_argument, NULL, 'g'},
		{"offset", required_argument, NULL, 'o'},
		{"size", required_argument, NULL, 's'},
		{"nodes", required_argument, NULL, 'n'},
		{"replicate", required_argument, NULL, 'R'},
		{"hugepages", required_argument, NULL, 'H'},
		{"features-off", required_argument, NULL, 'F'},
		{"features-on", required_argument, NULL, 'O'},
		{"drop-caches", no_argument, NULL, 'd'},
		{"repeat", required_argument, NULL, 'N'},
		{"progress", no_argument, NULL, 'p'},
		{"verbose", no_argument, NULL, 'v'},
		{"verify", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct aw_load_opts o = {0};
	struct aw_load_region rg = {0};
	int nodes[AW_LOAD_MAX_REPLICAS];
	uint64_t v, repeat = 1, i;
	int c, use_gguf = 0, drop = 0, verify = 0, have_off = 0, have_size = 0, ret = 0;
	const char *path;
	struct aw_gguf *g = NULL;
	struct aw_err err;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if ((ret = aw_loader_parse_method(optarg)) < 0)
				goto usage;
			o.method = (enum aw_load_method)ret;
			break;
		case 'q':
			if (parse_u64(optarg, &v) || v == 0 || v > 4096)
				goto usage;
			o.queue_depth = (unsigned)v;
			break;
		case 'r':
			if (parse_u64(optarg, &v) || v == 0 || v % 4096 || v > (1u << 30))
				goto usage;
			o.request_size = v;
			break;
		case 'g':
			use_gguf = 1;
			break;
		case 'o':
			if (parse_u64(optarg, &rg.offset))
				goto usage;
			have_off = 1;
			break;
		case 's':
			if (parse_u64(optarg, &rg.size) || rg.size == 0)
				goto usage;
			have_size = 1;
			break;
		case 'n': {
			char buf[256], *tok, *save;

			snprintf(buf, sizeof(buf), "%s", optarg);
			o.n_nodes = 0;
			for (tok = strtok_r(buf, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (o.n_nodes == AW_LOAD_MAX_REPLICAS || parse_u64(tok, &v) ||
				    v > 1023)
					goto usage;
				nodes[o.n_nodes++] = (int)v;
			}
			if (!o.n_nodes)
				goto usage;
			o.nodes = nodes;
			break;
		}
		case 'R':
			if (!strcmp(optarg, "copy"))
				o.replicate = AW_LOAD_REPL_COPY;
			else if (!strcmp(optarg, "read"))
				o.replicate = AW_LOAD_REPL_READ;
			else
				goto usage;
			break;
		case 'H':
			if (!strcmp(optarg, "auto"))
				o.hugepages = AW_LOAD_HUGE_AUTO;
			else if (!strcmp(optarg, "off"))
				o.hugepages = AW_LOAD_HUGE_OFF;
			else if (!strcmp(optarg, "require"))
				o.hugepages = AW_LOAD_HUGE_REQUIRE;
			else if (!strcmp(optarg, "thp"))
				o.hugepages = AW_LOAD_HUGE_THP;
			else
				goto usage;
			break;
		case 'F':
			if (aw_loader_parse_features(optarg, &o.features_off))
				goto usage;
			break;
		case 'O':
			if (aw_loader_parse_features(optarg, &o.features_on))
				goto usage;
			break;
		case 'd':
			drop = 1;
			break;
		case 'N':
			if (parse_u64(optarg, &repeat) || repeat == 0 || repeat > 1000)
				goto usage;
			break;
		case 'p':
			o.on_progress = aw_loader_print_progress;
			o.ctx = stderr;
			break;
		case 'v':
			aw_log_level = AW_LOG_DEBUG;
			break;
		case 'V':
			verify = 1;
			break;
		case 'h':
			bench_usage(argv[0]);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1 || (use_gguf && (have_off || have_size)) || have_off != have_size)
		goto usage;
	path = argv[optind];
	o.log = log_stderr;
	if (use_gguf) {
		if (aw_gguf_open(path, &g, &err)) {
			fprintf(stderr, "bench-load: %s\n", err.msg);
			return 1;
		}
		if (aw_loader_region_gguf(g, &rg, &err)) {
			fprintf(stderr, "bench-load: %s\n", err.msg);
			aw_gguf_close(g);
			return 1;
		}
	} else if (!have_size) {
		struct stat st;

		if (stat(path, &st) < 0) {
			fprintf(stderr, "bench-load: stat %s: %s\n", path, strerror(errno));
			return 1;
		}
		rg.size = (uint64_t)st.st_size;
	}
	for (i = 0; i < repeat; i++) {
		struct aw_weights *w;
		char json[512];

		if (drop)
			drop_caches(path);
		ret = aw_loader_load(path, &rg, &o, &w, &err);
		if (ret) {
			fprintf(stderr, "bench-load: %s\n", err.msg);
			break;
		}
		printf("%s\n", aw_loader_info_json(aw_weights_info(w), json, sizeof(json)));
		if (verify && (ret = verify_load(path, &rg, w)))
			break;
		fflush(stdout);
		aw_weights_put(w);
	}
	if (g) {
		free((void *)rg.spans);
		free((void *)rg.ids);
		aw_gguf_close(g);
	}
	return ret ? 1 : 0;
usage:
	bench_usage(argv[0]);
	return 2;
}
