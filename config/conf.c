/* conf.c — the key table, value parsers, --set overrides and loading.
 *
 * The table below is the only place where a key exists: its type, unit,
 * default, range and the sentence docs/CONFIG.md shows for it. Loading is
 * INI text (ini.c) -> overrides -> one typed pass over every key of every
 * section, which records where each value came from so that the cross-checks
 * in conf-check.c can name the line. No step stops at the first problem.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf-int.h"

/* ---- the table ----------------------------------------------------------- */

#define KEYN(sec, st, name_, field, type_, unit_, def_, min_, max_, choices_, flags_, doc_)        \
	{                                                                                          \
		.section = sec, .name = name_, .type = type_, .unit = unit_, .def = def_,          \
		.min = min_, .max = max_, .choices = choices_, .doc = doc_,                        \
		.offset = offsetof(st, field), .size = sizeof(((st *)0)->field), .flags = flags_,  \
	}
#define KEY(sec, st, field, type_, unit_, def_, min_, max_, choices_, flags_, doc_)                \
	KEYN(sec, st, #field, field, type_, unit_, def_, min_, max_, choices_, flags_, doc_)

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define TiB (1ull << 40)

#define E  struct aw_conf_eal
#define P  struct aw_conf_port
#define D  struct aw_conf_dataplane
#define G  struct aw_conf_group
#define M  struct aw_conf_model
#define L  struct aw_conf_limits
#define T  struct aw_conf_telemetry
#define LG struct aw_conf_log

const char *const aw_conf_sections[] = {
	"eal", "port", "dataplane", "group", "model", "limits", "telemetry", "log", NULL,
};

const struct aw_conf_key aw_conf_keys[] = {
	/* [eal] */
	KEY("eal", E, main_lcore, AW_CONF_T_CPU, "CPU", "0", 0, AW_TOPO_MAX_CPUS - 1, NULL, 0,
	    "CPU of the EAL main lcore: control thread, telemetry, model loading. Never a "
	    "dataplane CPU."),
	KEY("eal", E, hugepages, AW_CONF_T_BOOL, "", "true", 0, 0, NULL, 0,
	    "Use hugepages for DPDK memory, weights and KV cache; false runs the EAL with "
	    "--no-huge."),
	KEY("eal", E, memory, AW_CONF_T_SIZE, "bytes", "1G", 256 * MiB, 4 * TiB, NULL, 0,
	    "DPDK heap (EAL -m): mbuf pools, rings, request objects. Weights and KV cache come on "
	    "top."),
	KEY("eal", E, file_prefix, AW_CONF_T_STR, "", "agentwire", 1, 63, NULL, 0,
	    "EAL --file-prefix: runtime directory name; give each process on a host its own."),
	KEY("eal", E, args, AW_CONF_T_STR, "", "", 0, AW_CONF_ARGS_LEN - 1, NULL, 0,
	    "Extra EAL arguments, split at blanks (e.g. --log-level=pmd.net.tap:debug). Lcores, "
	    "memory, file prefix and devices come from the other keys."),

	/* [port N] */
	KEY("port", P, device, AW_CONF_T_DEVICE, "", NULL, 0, 0, NULL, 0,
	    "PCI address (0000:17:00.0) or DPDK virtual device with its arguments "
	    "(net_tap0,iface=aw0)."),
	KEYN("port", P, "address", addr, AW_CONF_T_CIDR, "", NULL, 0, 0, NULL, 0,
	     "IPv4 address of the appliance on this port with its prefix length (10.99.0.2/24); it "
	     "answers ARP and ping for it."),
	KEY("port", P, gateway, AW_CONF_T_IPV4, "", "none", 0, 0, NULL, 0,
	    "Next hop for clients outside the port's subnet, or none."),
	KEY("port", P, udp_port, AW_CONF_T_UINT, "UDP port", "7878", 1, 65535, NULL, 0,
	    "UDP port the agentwire protocol listens on."),
	KEY("port", P, rx_queues, AW_CONF_T_UINT, "queues", "0", 1, 1024, NULL, AW_CONF_F_ZERO,
	    "RX queues (RSS spreads flows over them); 0: one per dataplane lcore."),
	KEY("port", P, tx_queues, AW_CONF_T_UINT, "queues", "0", 1, 1024, NULL, AW_CONF_F_ZERO,
	    "TX queues, at least one per dataplane lcore; 0: one per dataplane lcore."),
	KEY("port", P, rx_descriptors, AW_CONF_T_UINT, "descriptors", "1024", 64, 32768, NULL,
	    AW_CONF_F_POW2, "RX ring size of each queue."),
	KEY("port", P, tx_descriptors, AW_CONF_T_UINT, "descriptors", "1024", 64, 32768, NULL,
	    AW_CONF_F_POW2, "TX ring size of each queue."),
	KEY("port", P, mtu, AW_CONF_T_UINT, "bytes", "1500", 68, 9600, NULL, 0,
	    "IP MTU of the port; larger values let a request or response fit in fewer datagrams."),

	/* [dataplane] */
	KEY("dataplane", D, lcores, AW_CONF_T_CPULIST, "CPUs", NULL, 0, 0, NULL, 0,
	    "CPUs of the RX/TX lcores (e.g. 2-3): each polls its RX queues on every port and "
	    "transmits its flows' replies."),
	KEY("dataplane", D, burst, AW_CONF_T_UINT, "packets", "32", 1, 512, NULL, 0,
	    "Packets per rte_eth_rx_burst/tx_burst call."),
	KEY("dataplane", D, idle, AW_CONF_T_ENUM, "", "poll", 0, 0, "poll|yield|sleep", 0,
	    "What an lcore does when RX is empty: poll (lowest latency, one CPU each), yield "
	    "(sched_yield, for shared CPUs), sleep (adaptive short sleeps)."),
	KEY("dataplane", D, mbufs, AW_CONF_T_UINT, "mbufs", "16383", 1023, 4194303, NULL, 0,
	    "Mbufs in the pool of each NUMA node that has dataplane lcores (2^n-1 is optimal)."),
	KEY("dataplane", D, mbuf_cache, AW_CONF_T_UINT, "mbufs", "256", 0, 512, NULL, 0,
	    "Per-lcore mempool cache."),
	KEY("dataplane", D, tx_ring_size, AW_CONF_T_UINT, "entries", "4096", 64, 1048576, NULL,
	    AW_CONF_F_POW2,
	    "Response ring of each dataplane lcore (tokens coming back from the workers)."),
	KEY("dataplane", D, reassembly_slots, AW_CONF_T_UINT, "requests", "1024", 1, 65536, NULL, 0,
	    "Multi-datagram requests being reassembled at once, per lcore."),
	KEY("dataplane", D, reassembly_timeout_ms, AW_CONF_T_UINT, "ms", "200", 1, 60000, NULL, 0,
	    "A partial request older than this is dropped (counted)."),
	KEY("dataplane", D, max_request_bytes, AW_CONF_T_SIZE, "bytes", "64K", 1 * KiB, 16 * MiB,
	    NULL, 0, "Largest reassembled request; larger ones get an error reply."),
	KEY("dataplane", D, retransmit_entries, AW_CONF_T_UINT, "datagrams", "8192", 0, 1048576,
	    NULL, 0,
	    "Sent datagrams kept per lcore until acknowledged or expired; 0 disables repair."),
	KEY("dataplane", D, retransmit_ttl_ms, AW_CONF_T_UINT, "ms", "2000", 1, 600000, NULL, 0,
	    "How long a sent datagram stays available for retransmission."),

	/* [group N] */
	KEY("group", G, lcores, AW_CONF_T_CPULIST, "CPUs", NULL, 0, 0, NULL, 0,
	    "Worker CPUs of this group, all on one NUMA node; the first is the leader that runs "
	    "the scheduler."),
	KEY("group", G, node, AW_CONF_T_NODE, "NUMA node", "auto", 0, AW_TOPO_MAX_NODES - 1, NULL,
	    0,
	    "NUMA node of the group's rings, KV cache and weight replica; auto: the node of its "
	    "CPUs."),
	KEY("group", G, max_batch, AW_CONF_T_UINT, "sequences", "16", 1, 1024, NULL, 0,
	    "Sequences in one forward step."),
	KEY("group", G, max_batch_tokens, AW_CONF_T_UINT, "tokens", "2048", 1, 1048576, NULL, 0,
	    "Tokens in one forward step (decode tokens plus prefill chunks)."),
	KEY("group", G, prefill_chunk, AW_CONF_T_UINT, "tokens", "512", 1, 1048576, NULL, 0,
	    "Prompt tokens of one sequence per step, so a long prompt cannot stall the others."),
	KEY("group", G, kv_cache, AW_CONF_T_SIZE, "bytes", "1G", 1 * MiB, 64 * TiB, NULL, 0,
	    "KV cache pool of the group, on its node."),
	KEY("group", G, kv_block_tokens, AW_CONF_T_UINT, "tokens", "16", 1, 4096, NULL,
	    AW_CONF_F_POW2, "Tokens per KV cache block (the unit of prefix sharing)."),
	KEY("group", G, ring_size, AW_CONF_T_UINT, "entries", "1024", 64, 1048576, NULL,
	    AW_CONF_F_POW2, "Request ring of the group (created on its node)."),
	KEY("group", G, idle, AW_CONF_T_ENUM, "", "poll", 0, 0, "poll|yield|sleep", 0,
	    "What the workers do with no work: poll, yield (for CPUs shared with other threads) or "
	    "sleep."),

	/* [model] */
	KEY("model", M, path, AW_CONF_T_PATH, "", NULL, 1, AW_CONF_PATH_LEN - 1, NULL, 0,
	    "GGUF model file."),
	KEY("model", M, load, AW_CONF_T_ENUM, "", "io_uring", 0, 0, "io_uring|buffered|mmap", 0,
	    "How weights are read: io_uring (O_DIRECT, falls back to buffered reads where "
	    "refused), buffered (read(2)), mmap."),
	KEY("model", M, queue_depth, AW_CONF_T_UINT, "reads", "32", 1, 4096, NULL, 0,
	    "io_uring reads in flight while loading (32 x 8M: the loader's measured best, "
	    "docs/BENCHMARKS.md)."),
	KEY("model", M, request_size, AW_CONF_T_SIZE, "bytes", "8M", 4 * KiB, 64 * MiB, NULL,
	    AW_CONF_F_4K, "Bytes per read while loading (a multiple of 4096 for O_DIRECT)."),
	KEY("model", M, replicas, AW_CONF_T_ENUM, "", "per-node", 0, 0, "per-node|single", 0,
	    "per-node: one copy of the weights on each node that has a group; single: one copy on "
	    "the node of the lowest group."),

	/* [limits] */
	KEY("limits", L, max_prompt_tokens, AW_CONF_T_UINT, "tokens", "4096", 1, 1048576, NULL, 0,
	    "Longest prompt accepted."),
	KEY("limits", L, max_new_tokens, AW_CONF_T_UINT, "tokens", "512", 1, 1048576, NULL, 0,
	    "Most tokens generated for one request (a request may ask for fewer)."),
	KEY("limits", L, queue_depth, AW_CONF_T_UINT, "requests", "256", 1, 1048576, NULL, 0,
	    "Requests waiting per group; beyond it requests get an OVERLOADED reply. At most the "
	    "group's ring_size."),
	KEY("limits", L, default_deadline_ms, AW_CONF_T_UINT, "ms", "30000", 0, 3600000, NULL, 0,
	    "Deadline of a request that sets none; 0: no deadline."),
	KEY("limits", L, max_deadline_ms, AW_CONF_T_UINT, "ms", "300000", 1, 86400000, NULL, 0,
	    "Longest deadline a request may ask for."),
	KEY("limits", L, client_max_inflight, AW_CONF_T_UINT, "requests", "64", 1, 65536, NULL, 0,
	    "Requests one client address may have in flight."),
	KEY("limits", L, client_rate, AW_CONF_T_UINT, "requests/s", "0", 0, 10000000, NULL, 0,
	    "Requests per second per client address; 0: unlimited."),
	KEY("limits", L, max_sessions, AW_CONF_T_UINT, "sessions", "4096", 0, 16777216, NULL, 0,
	    "Sessions whose KV cache is kept between turns."),
	KEY("limits", L, session_ttl_s, AW_CONF_T_UINT, "s", "300", 1, 604800, NULL, 0,
	    "Idle time after which a session's KV cache is released."),

	/* [telemetry] */
	KEY("telemetry", T, enabled, AW_CONF_T_BOOL, "", "true", 0, 0, NULL, 0,
	    "Register the telemetry commands (read with dpdk-telemetry.py)."),
	KEY("telemetry", T, interval_ms, AW_CONF_T_UINT, "ms", "1000", 0, 3600000, NULL, 0,
	    "Period of the counter snapshot that telemetry and the log read; 0: only on request."),
	KEY("telemetry", T, name, AW_CONF_T_STR, "", "/agentwire", 2, 63, NULL, 0,
	    "Prefix of the telemetry commands (/agentwire/stats, ...); starts with '/'."),
	KEY("telemetry", T, metrics, AW_CONF_T_BOOL, "", "true", 0, 0, NULL, 0,
	    "Serve Prometheus metrics at http://metrics_address:metrics_port/metrics (a kernel TCP "
	    "socket on the main lcore's CPU, never on the dataplane or worker lcores)."),
	KEY("telemetry", T, metrics_address, AW_CONF_T_IPV4, "", "127.0.0.1", 0, 0, NULL, 0,
	    "Address the metrics endpoint listens on; 0.0.0.0 for every interface."),
	KEY("telemetry", T, metrics_port, AW_CONF_T_UINT, "", "9478", 1, 65535, NULL, 0,
	    "TCP port of the metrics endpoint."),

	/* [log] */
	KEY("log", LG, level, AW_CONF_T_ENUM, "", "notice", 0, 0, "err|warning|notice|info|debug",
	    0, "agentwire's log level."),
	KEY("log", LG, dpdk_level, AW_CONF_T_ENUM, "", "warning", 0, 0,
	    "emerg|alert|crit|err|warning|notice|info|debug", 0,
	    "DPDK's log level (EAL --log-level)."),
	KEY("log", LG, file, AW_CONF_T_PATH, "", "", 0, AW_CONF_PATH_LEN - 1, NULL, 0,
	    "Log file; empty: standard error."),
	{.name = NULL},
};

/* ---- problems ----------------------------------------------------------- */

void conf_diag(struct aw_conf_report *r, enum aw_conf_severity sev, const char *where,
	       const char *what, const char *fmt, ...)
{
	struct aw_conf_diag *d;
	va_list ap;

	if (sev == AW_CONF_ERROR)
		r->errors++;
	else
		r->warnings++;
	if (r->n >= AW_CONF_MAX_DIAGS)
		return;
	if (!r->diags) {
		r->diags = calloc(AW_CONF_MAX_DIAGS, sizeof(*r->diags));
		if (!r->diags)
			return; /* counted above: the summary still says "N errors" */
	}
	d = &r->diags[r->n++];
	memset(d, 0, sizeof(*d));
	d->severity = sev;
	snprintf(d->where, sizeof(d->where), "%s", where ? where : "");
	snprintf(d->what, sizeof(d->what), "%s", what ? what : "");
	va_start(ap, fmt);
	vsnprintf(d->msg, sizeof(d->msg), fmt, ap);
	va_end(ap);
}

void conf_fix(struct aw_conf_report *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->diags || r->n == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(r->diags[r->n - 1].fix, sizeof(r->diags[0].fix), fmt, ap);
	va_end(ap);
}

void aw_conf_report_print(const struct aw_conf_report *r, FILE *out)
{
	for (unsigned i = 0; i < r->n; i++) {
		const struct aw_conf_diag *d = &r->diags[i];

		fprintf(out, "%s%s%s: %s%s%s\n", d->where, d->where[0] ? ": " : "",
			d->severity == AW_CONF_ERROR ? "error" : "warning", d->what,
			d->what[0] ? ": " : "", d->msg);
		if (d->fix[0])
			fprintf(out, "    fix: %s\n", d->fix);
	}
	if (r->errors + r->warnings > r->n)
		fprintf(out, "(%u more problems not shown)\n", r->errors + r->warnings - r->n);
	if (r->errors || r->warnings)
		fprintf(out, "%u error%s, %u warning%s\n", r->errors, r->errors == 1 ? "" : "s",
			r->warnings, r->warnings == 1 ? "" : "s");
}

void aw_conf_report_fini(struct aw_conf_report *r)
{
	if (!r)
		return;
	free(r->diags);
	memset(r, 0, sizeof(*r));
}

bool aw_conf_report_has(const struct aw_conf_report *r, const char *needle)
{
	for (unsigned i = 0; i < r->n; i++)
		if (strstr(r->diags[i].msg, needle) || strstr(r->diags[i].fix, needle) ||
		    strstr(r->diags[i].what, needle) || strstr(r->diags[i].where, needle))
			return true;
	return false;
}

/* ---- did you mean ------------------------------------------------------- */

unsigned conf_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	unsigned *d, r;

	if (n > 64 || m > 64)
		return 1000;
	d = calloc((n + 1) * (m + 1), sizeof(*d));
	if (!d)
		return 1000;
#define DD(i, j) d[(i) * (m + 1) + (j)]
	for (size_t i = 0; i <= n; i++)
		DD(i, 0) = (unsigned)i;
	for (size_t j = 0; j <= m; j++)
		DD(0, j) = (unsigned)j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			unsigned cost = tolower((unsigned char)a[i - 1]) !=
					tolower((unsigned char)b[j - 1]);
			unsigned v = DD(i - 1, j) + 1;

			if (DD(i, j - 1) + 1 < v)
				v = DD(i, j - 1) + 1;
			if (DD(i - 1, j - 1) + cost < v)
				v = DD(i - 1, j - 1) + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    DD(i - 2, j - 2) + 1 < v)
				v = DD(i - 2, j - 2) + 1;
			DD(i, j) = v;
		}
	r = DD(n, m);
#undef DD
	free(d);
	return r;
}

const char *conf_suggest(const char *word, const char *const *cands, unsigned n)
{
	size_t len = strlen(word);
	unsigned best = 1000, limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
	const char *pick = NULL;

	for (unsigned i = 0; i < n; i++) {
		unsigned dist = conf_distance(word, cands[i]);

		if (dist < best) {
			best = dist;
			pick = cands[i];
		}
	}
	return best <= limit ? pick : NULL;
}

/* ---- formatting ---------------------------------------------------------- */

const char *conf_fmt_size(uint64_t v, char *buf, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	uint64_t div = 1;

	while (u < 6 && v / div >= 1024) {
		div *= 1024;
		u++;
	}
	if (u == 0 || v % div == 0)
		snprintf(buf, size, "%llu %s", (unsigned long long)(v / div), units[u]);
	else
		snprintf(buf, size, "%.1f %s", (double)v / (double)div, units[u]);
	return buf;
}

static const char *type_name(enum aw_conf_type t)
{
	switch (t) {
	case AW_CONF_T_BOOL:
		return "bool";
	case AW_CONF_T_UINT:
		return "integer";
	case AW_CONF_T_SIZE:
		return "size";
	case AW_CONF_T_STR:
		return "string";
	case AW_CONF_T_PATH:
		return "path";
	case AW_CONF_T_ENUM:
		return "enum";
	case AW_CONF_T_CPU:
		return "CPU";
	case AW_CONF_T_CPULIST:
		return "CPU list";
	case AW_CONF_T_IPV4:
		return "IPv4";
	case AW_CONF_T_CIDR:
		return "IPv4/prefix";
	case AW_CONF_T_DEVICE:
		return "device";
	case AW_CONF_T_NODE:
		return "node";
	}
	return "?";
}

/* "64..32768, power of two", "256 MiB..4 TiB", "poll, yield, sleep" */
static void fmt_range(const struct aw_conf_key *k, char *buf, size_t size)
{
	char a[32], b[32];
	size_t n = 0;

	buf[0] = '\0';
	switch (k->type) {
	case AW_CONF_T_UINT:
	case AW_CONF_T_CPU:
	case AW_CONF_T_NODE:
		n = (size_t)snprintf(buf, size, "%s%llu..%llu",
				     k->type == AW_CONF_T_NODE	 ? "auto or "
				     : k->flags & AW_CONF_F_ZERO ? "0 or "
								 : "",
				     (unsigned long long)k->min, (unsigned long long)k->max);
		break;
	case AW_CONF_T_SIZE:
		n = (size_t)snprintf(buf, size, "%s..%s", conf_fmt_size(k->min, a, sizeof(a)),
				     conf_fmt_size(k->max, b, sizeof(b)));
		break;
	case AW_CONF_T_STR:
	case AW_CONF_T_PATH:
		n = (size_t)snprintf(buf, size, "%llu..%llu bytes", (unsigned long long)k->min,
				     (unsigned long long)k->max);
		break;
	case AW_CONF_T_ENUM:
		for (const char *p = k->choices; *p && n + 3 < size; p++) {
			if (*p == '|') {
				buf[n++] = ',';
				buf[n++] = ' ';
			} else {
				buf[n++] = *p;
			}
		}
		buf[n] = '\0';
		break;
	default:
		n = (size_t)snprintf(buf, size, "-");
		break;
	}
	if (n < size && (k->flags & AW_CONF_F_POW2))
		snprintf(buf + n, size - n, ", power of two");
	if (n < size && (k->flags & AW_CONF_F_4K))
		snprintf(buf + n, size - n, ", multiple of 4096");
}

size_t aw_conf_doc_row(const struct aw_conf_key *k, char *buf, size_t size)
{
	char range[160];
	int n;

	fmt_range(k, range, sizeof(range));
	n = snprintf(buf, size, "| `%s` | %s | %s | %s%s%s | %s | %s |", k->name,
		     type_name(k->type), k->unit[0] ? k->unit : "-", k->def && k->def[0] ? "`" : "",
		     !k->def	 ? "required"
		     : k->def[0] ? k->def
				 : "empty",
		     k->def && k->def[0] ? "`" : "", range, k->doc);
	if (n < 0)
		return 0;
	return (size_t)n < size ? (size_t)n : size - 1;
}

/* ---- value parsers --------------------------------------------------------
 * Each fills 'msg' (and maybe 'fix') and returns -1 on a bad value. */

struct vctx {
	char msg[256];
	char fix[256];
};

static int bad(struct vctx *v, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(struct vctx *v, const char *fix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
	va_end(ap);
	snprintf(v->fix, sizeof(v->fix), "%s", fix ? fix : "");
	return -1;
}

/* Decimal digits into *ret with overflow detection; sets *endp. */
static int parse_digits(const char *s, uint64_t *ret, const char **endp)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10) {
			while (isdigit((unsigned char)*p))
				p++;
			*endp = p;
			return -ERANGE;
		}
		v = v * 10 + d;
	}
	*ret = v;
	*endp = p;
	return 0;
}

static int parse_uint(struct vctx *v, const char *s, uint64_t *ret)
{
	const char *end;
	int rc;

	if (!*s)
		return bad(v, "write a number", "empty value, expected a number");
	if (*s == '-')
		return bad(v, "write a number of 0 or more", "negative number '%s'", s);
	rc = parse_digits(s, ret, &end);
	if (rc == -EINVAL)
		return bad(v, "write a decimal number such as 64", "'%s' is not a number", s);
	if (rc == -ERANGE)
		return bad(v, "write a smaller number", "number '%.*s' is too large", 40, s);
	if (*end)
		return bad(v, "remove the trailing characters",
			   "trailing characters '%.*s' after the number", 20, end);
	return 0;
}

int conf_parse_size(const char *s, uint64_t *ret, char *msg, size_t msglen)
{
	uint64_t ip = 0, frac = 0, fdiv = 1, mult = 1;
	const char *p, *end;
	int rc;

	if (!*s) {
		snprintf(msg, msglen, "empty value, expected a size such as 512M");
		return -EINVAL;
	}
	if (*s == '-') {
		snprintf(msg, msglen, "negative size '%.40s'", s);
		return -EINVAL;
	}
	rc = parse_digits(s, &ip, &end);
	if (rc == -EINVAL) {
		snprintf(msg, msglen, "'%.40s' is not a size (expected e.g. 4096, 64K, 512M, 1.5G)",
			 s);
		return -EINVAL;
	}
	if (rc == -ERANGE) {
		snprintf(msg, msglen, "size '%.40s' is too large", s);
		return -ERANGE;
	}
	p = end;
	if (*p == '.') {
		unsigned nd = 0;

		p++;
		if (!isdigit((unsigned char)*p)) {
			snprintf(msg, msglen, "'%.40s' is not a size (digits expected after '.')",
				 s);
			return -EINVAL;
		}
		for (; isdigit((unsigned char)*p); p++)
			if (nd < 9) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				fdiv *= 10;
				nd++;
			}
	}
	while (*p == ' ')
		p++;
	switch (toupper((unsigned char)*p)) {
	case 'K':
		mult = 1ull << 10;
		break;
	case 'M':
		mult = 1ull << 20;
		break;
	case 'G':
		mult = 1ull << 30;
		break;
	case 'T':
		mult = 1ull << 40;
		break;
	case 'B':
	case '\0':
		break;
	default:
		snprintf(msg, msglen, "unknown unit '%.20s' (use K, M, G or T, powers of 1024)", p);
		return -EINVAL;
	}
	if (mult > 1) {
		p++;
		if (*p == 'i' || *p == 'I')
			p++;
		if (*p == 'B' || *p == 'b')
			p++;
	} else if (*p) {
		p++;
	}
	if (*p) {
		snprintf(msg, msglen, "trailing characters '%.20s' after the size", p);
		return -EINVAL;
	}
	if (frac && mult == 1) {
		snprintf(msg, msglen, "a size in bytes cannot have a fraction ('%.40s')", s);
		return -EINVAL;
	}
	if (ip > UINT64_MAX / mult) {
		snprintf(msg, msglen, "size '%.40s' is too large", s);
		return -ERANGE;
	}
	*ret = ip * mult + (uint64_t)((__uint128_t)frac * mult / fdiv);
	return 0;
}

static int parse_bool(struct vctx *v, const char *s, bool *ret)
{
	static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
										    "off", "0"};

	for (unsigned i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return bad(v, "write true or false", "'%.40s' is not a boolean", s);
}

static int parse_enum(struct vctx *v, const struct aw_conf_key *k, const char *s, int *ret)
{
	const char *cands[16];
	char words[256], *save = NULL, *w;
	unsigned n = 0;
	const char *sug;

	snprintf(words, sizeof(words), "%s", k->choices);
	for (w = strtok_r(words, "|", &save); w && n < 16; w = strtok_r(NULL, "|", &save)) {
		if (strcmp(w, s) == 0) {
			*ret = (int)n;
			return 0;
		}
		cands[n++] = w;
	}
	sug = conf_suggest(s, cands, n);
	if (sug) {
		char fix[96];

		snprintf(fix, sizeof(fix), "did you mean '%s'?", sug);
		return bad(v, fix, "'%.40s' is not one of %s", s, k->choices);
	}
	return bad(v, NULL, "'%.40s' is not one of %s", s, k->choices);
}

static int parse_ipv4(struct vctx *v, const char *s, uint32_t *ret)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return bad(v, "write a dotted quad such as 10.99.0.1",
			   "'%.40s' is not an IPv4 address", s);
	*ret = ntohl(a.s_addr);
	return 0;
}

static int parse_cidr(struct vctx *v, const char *s, uint32_t *addr, uint32_t *prefix)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	uint64_t pl;
	const char *end;

	if (!slash)
		return bad(v, "add the prefix length, e.g. 10.99.0.2/24",
			   "'%.40s' has no prefix length", s);
	if ((size_t)(slash - s) >= sizeof(buf))
		return bad(v, "write e.g. 10.99.0.2/24", "'%.40s' is not an IPv4 address", s);
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (parse_ipv4(v, buf, addr) < 0)
		return -1;
	if (parse_digits(slash + 1, &pl, &end) < 0 || *end || pl > 32)
		return bad(v, "write a prefix length of 1..32, e.g. /24",
			   "bad prefix length '%.20s'", slash + 1);
	if (pl == 0)
		return bad(v, "write a prefix length of 1..32, e.g. /24", "prefix length 0");
	*prefix = (uint32_t)pl;
	if (*addr == 0 || (*addr >> 28) == 0xe || (*addr >> 28) == 0xf || (*addr >> 24) == 127)
		return bad(v, "use a unicast address of the port's subnet",
			   "%s is not a usable host address", buf);
	if (pl < 31) {
		uint32_t host = *addr & ~(0xffffffffu << (32 - pl));

		if (host == 0 || host == ~(0xffffffffu << (32 - pl)))
			return bad(v, "use a host address, not the network or broadcast address",
				   "%s is the %s address of /%llu", buf,
				   host == 0 ? "network" : "broadcast", (unsigned long long)pl);
	}
	return 0;
}

static bool is_pci(const char *s)
{
	unsigned dom, bus, dev, fn;
	int n = 0;

	if (sscanf(s, "%4x:%2x:%2x.%1u%n", &dom, &bus, &dev, &fn, &n) == 4 &&
	    (size_t)n == strlen(s))
		return strlen(s) == 12 && fn < 8 && dev < 32;
	n = 0;
	if (sscanf(s, "%2x:%2x.%1u%n", &bus, &dev, &fn, &n) == 3 && (size_t)n == strlen(s))
		return strlen(s) == 7 && fn < 8 && dev < 32;
	return false;
}

static int parse_device(struct vctx *v, const char *s)
{
	const char *p;

	if (is_pci(s))
		return 0;
	if (strncmp(s, "net_", 4) == 0) {
		for (p = s + 4; *p && *p != ','; p++)
			if (!isalnum((unsigned char)*p) && *p != '_')
				break;
		if (p > s + 4 && (*p == '\0' || *p == ',') && isdigit((unsigned char)p[-1])) {
			if (strchr(s, ' ') || strchr(s, '\t'))
				return bad(v, "remove blanks from the device arguments",
					   "device '%.60s' contains a blank", s);
			return 0;
		}
		return bad(v, "name the vdev with a number, e.g. net_tap0,iface=aw0",
			   "'%.60s' is not a DPDK vdev name (net_<driver><N>[,args])", s);
	}
	return bad(v,
		   "write a PCI address such as 0000:17:00.0 or a vdev such as net_tap0,iface=aw0",
		   "'%.60s' is neither a PCI address nor a DPDK vdev", s);
}

/* Parse 's' for key 'k' into the member at 'dst'. */
static int parse_value(struct vctx *v, const struct aw_conf_key *k, const char *s, void *dst)
{
	uint64_t u;
	char range[160], a[32], b[32];

	switch (k->type) {
	case AW_CONF_T_BOOL:
		return parse_bool(v, s, (bool *)dst);
	case AW_CONF_T_UINT:
	case AW_CONF_T_CPU:
		if (parse_uint(v, s, &u) < 0) {
			if (!v->fix[0] || strstr(v->fix, "number")) {
				fmt_range(k, range, sizeof(range));
				snprintf(v->fix, sizeof(v->fix), "write a number in %s", range);
			}
			return -1;
		}
		if (!(u == 0 && (k->flags & AW_CONF_F_ZERO)) && (u < k->min || u > k->max)) {
			fmt_range(k, range, sizeof(range));
			return bad(v, NULL, "%llu is out of range (%s)", (unsigned long long)u,
				   range);
		}
		if ((k->flags & AW_CONF_F_POW2) && (u & (u - 1)))
			return bad(v, NULL, "%llu is not a power of two", (unsigned long long)u);
		*(uint32_t *)dst = (uint32_t)u;
		return 0;
	case AW_CONF_T_NODE:
		if (strcmp(s, "auto") == 0) {
			*(int32_t *)dst = -1;
			return 0;
		}
		if (parse_uint(v, s, &u) < 0) {
			snprintf(v->fix, sizeof(v->fix), "write auto or a node number 0..%u",
				 AW_TOPO_MAX_NODES - 1);
			return -1;
		}
		if (u > k->max)
			return bad(v, NULL, "node %llu is out of range (0..%llu)",
				   (unsigned long long)u, (unsigned long long)k->max);
		*(int32_t *)dst = (int32_t)u;
		return 0;
	case AW_CONF_T_SIZE:
		if (conf_parse_size(s, &u, v->msg, sizeof(v->msg)) < 0) {
			snprintf(v->fix, sizeof(v->fix), "write a size in %s..%s, e.g. 512M or 2G",
				 conf_fmt_size(k->min, a, sizeof(a)),
				 conf_fmt_size(k->max, b, sizeof(b)));
			return -1;
		}
		if (u < k->min || u > k->max)
			return bad(v, NULL, "%s is out of range (%s..%s)",
				   conf_fmt_size(u, range, 32), conf_fmt_size(k->min, a, sizeof(a)),
				   conf_fmt_size(k->max, b, sizeof(b)));
		if ((k->flags & AW_CONF_F_4K) && (u % 4096))
			return bad(v, "round it to a multiple of 4096",
				   "%llu is not a multiple of 4096", (unsigned long long)u);
		*(uint64_t *)dst = u;
		return 0;
	case AW_CONF_T_STR:
	case AW_CONF_T_PATH:
		if (!*s && k->min)
			return bad(v, NULL, "empty value");
		if (strlen(s) < k->min)
			return bad(v, NULL, "'%s' is shorter than %llu bytes", s,
				   (unsigned long long)k->min);
		if (strlen(s) > k->max || strlen(s) >= k->size)
			return bad(v, NULL, "value is %zu bytes long, more than %llu", strlen(s),
				   (unsigned long long)k->max);
		memcpy(dst, s, strlen(s) + 1);
		return 0;
	case AW_CONF_T_ENUM: {
		int idx = 0;

		if (parse_enum(v, k, s, &idx) < 0)
			return -1;
		if (k->size == sizeof(int))
			*(int *)dst = idx;
		if (k->size > sizeof(int)) /* stored as text (log levels) */
			snprintf(dst, k->size, "%s", s);
		return 0;
	}
	case AW_CONF_T_CPULIST: {
		struct aw_err e;

		if (aw_cpuset_parse(s, dst, &e) < 0)
			return bad(v, "write CPUs as a list such as 2-5,8", "%s", e.msg);
		return 0;
	}
	case AW_CONF_T_IPV4:
		if (strcmp(s, "none") == 0) {
			*(uint32_t *)dst = 0;
			return 0;
		}
		return parse_ipv4(v, s, dst);
	case AW_CONF_T_CIDR: {
		uint32_t *pair = dst;

		return parse_cidr(v, s, &pair[0], &pair[1]);
	}
	case AW_CONF_T_DEVICE:
		if (parse_device(v, s) < 0)
			return -1;
		if (strlen(s) >= k->size)
			return bad(v, NULL, "device string is longer than %zu bytes", k->size - 1);
		memcpy(dst, s, strlen(s) + 1);
		return 0;
	}
	return bad(v, NULL, "internal: unknown type");
}

/* ---- where values came from ------------------------------------------------ */

struct src_ent {
	const struct aw_conf_key *k; /* NULL: the section header */
	int sec;		     /* index in aw_conf_sections */
	int id;			     /* N of [port N]/[group N], 0 otherwise */
	char where[AW_CONF_PATH_LEN + 32];
};

struct aw_conf_src {
	struct src_ent *v;
	unsigned n, cap;
};

static int src_add(struct aw_conf *c, const struct aw_conf_key *k, int sec, int id,
		   const char *where)
{
	struct aw_conf_src *s = c->src;

	if (s->n == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 64;
		void *p = realloc(s->v, cap * sizeof(*s->v));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n].k = k;
	s->v[s->n].sec = sec;
	s->v[s->n].id = id;
	snprintf(s->v[s->n].where, sizeof(s->v[0].where), "%s", where);
	s->n++;
	return 0;
}

static int section_index(const char *word)
{
	for (int i = 0; aw_conf_sections[i]; i++)
		if (strcmp(aw_conf_sections[i], word) == 0)
			return i;
	return -1;
}

static bool numbered(int sec)
{
	return strcmp(aw_conf_sections[sec], "port") == 0 ||
	       strcmp(aw_conf_sections[sec], "group") == 0;
}

/* Where key 'name' of [section id] was set: "file:line", "--set ..." or,
 * when defaulted, the section header ("file:line") or the file name. */
const char *conf_where(const struct aw_conf *c, const char *section, int id, const char *name)
{
	int sec = section_index(section);
	const char *hdr = NULL;

	if (!c->src)
		return c->path;
	for (unsigned i = 0; i < c->src->n; i++) {
		const struct src_ent *e = &c->src->v[i];

		if (e->sec != sec || e->id != id)
			continue;
		if (!e->k)
			hdr = e->where;
		else if (name && strcmp(e->k->name, name) == 0)
			return e->where;
	}
	return hdr ? hdr : c->path;
}

static const struct aw_conf_key *find_key(const char *section, const char *name)
{
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++)
		if (strcmp(k->section, section) == 0 && strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

static void *section_base(struct aw_conf *c, int sec, int id)
{
	const char *s = aw_conf_sections[sec];

	if (!strcmp(s, "eal"))
		return &c->eal;
	if (!strcmp(s, "port"))
		return &c->ports[id];
	if (!strcmp(s, "dataplane"))
		return &c->dataplane;
	if (!strcmp(s, "group"))
		return &c->groups[id];
	if (!strcmp(s, "model"))
		return &c->model;
	if (!strcmp(s, "limits"))
		return &c->limits;
	if (!strcmp(s, "telemetry"))
		return &c->telemetry;
	return &c->log;
}

/* Split a header "group 1" / "group1" / "group.1" into word and number.
 * Returns 0, or -1 when the text after the word is not a plain number. */
static int split_header(const char *name, char *word, size_t wsize, long *id)
{
	size_t n = 0;
	const char *p = name;
	uint64_t v;
	const char *end;

	while (*p && (isalpha((unsigned char)*p) || *p == '_' || *p == '-') && n + 1 < wsize)
		word[n++] = *p++;
	word[n] = '\0';
	*id = -1;
	if (*p == ' ' || *p == '.')
		p++;
	if (!*p)
		return n ? 0 : -1;
	if (parse_digits(p, &v, &end) < 0 || *end || v > 100000)
		return -1;
	*id = (long)v;
	return 0;
}

static void defaults_for(struct aw_conf *c, int sec, int id)
{
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++) {
		struct vctx v;

		if (strcmp(k->section, aw_conf_sections[sec]) != 0 || !k->def)
			continue;
		/* defaults parse by construction (tests/unit/test-conf.c checks each) */
		(void)parse_value(&v, k, k->def, (char *)section_base(c, sec, id) + k->offset);
	}
}

struct load_ctx {
	struct aw_conf_report *rep;
	const char *name;
};

static void ini_problem(void *ctx, unsigned line, const char *msg, const char *fix)
{
	struct load_ctx *l = ctx;
	char where[AW_CONF_PATH_LEN + 32];

	if (line)
		snprintf(where, sizeof(where), "%s:%u", l->name, line);
	else
		snprintf(where, sizeof(where), "%s", l->name);
	conf_diag(l->rep, AW_CONF_ERROR, where, "", "%s", msg);
	if (fix[0])
		conf_fix(l->rep, "%s", fix);
}

static void where_of(char *buf, size_t size, const char *file, unsigned line, unsigned set,
		     const char *const *sets)
{
	if (set)
		snprintf(buf, size, "--set %.200s", sets[set - 1]);
	else if (line)
		snprintf(buf, size, "%s:%u", file, line);
	else
		snprintf(buf, size, "%s", file);
}

/* Remove blanks at both ends, in place. */
static void trim_blanks(char *s)
{
	size_t n = strlen(s), b = 0;

	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	while (s[b] == ' ' || s[b] == '\t')
		b++;
	memmove(s, s + b, n - b + 1);
}

/* Apply "section.key=value" overrides to the INI text. */
static int apply_sets(struct ini *ini, const char *const *sets, unsigned n_sets,
		      struct aw_conf_report *rep)
{
	for (unsigned i = 0; i < n_sets; i++) {
		const char *s = sets[i], *eq = strchr(s, '='), *dot;
		char where[256], secname[80], word[40], key[80], value[AW_CONF_PATH_LEN + 64];
		struct ini_section *sec = NULL;
		long id;

		snprintf(where, sizeof(where), "--set %.200s", s);
		if (eq && strlen(eq + 1) >= sizeof(value)) {
			conf_diag(rep, AW_CONF_ERROR, where, "",
				  "value is %zu bytes long, more than %zu", strlen(eq + 1),
				  sizeof(value) - 1);
			continue;
		}
		if (eq) {
			snprintf(value, sizeof(value), "%s", eq + 1);
			trim_blanks(value);
		}
		if (!eq) {
			conf_diag(rep, AW_CONF_ERROR, where, "", "missing '=' in the override");
			conf_fix(rep,
				 "write --set section.key=value, e.g. --set group.0.max_batch=32");
			continue;
		}
		for (dot = eq; dot > s && *dot != '.'; dot--)
			;
		if (dot == s || (size_t)(eq - dot - 1) >= sizeof(key) ||
		    (size_t)(dot - s) >= sizeof(secname) || eq == dot + 1) {
			conf_diag(rep, AW_CONF_ERROR, where, "", "expected section.key=value");
			conf_fix(rep,
				 "write --set section.key=value, e.g. --set group.0.max_batch=32");
			continue;
		}
		memcpy(key, dot + 1, (size_t)(eq - dot - 1));
		key[eq - dot - 1] = '\0';
		trim_blanks(key);
		memcpy(secname, s, (size_t)(dot - s));
		secname[dot - s] = '\0';
		if (split_header(secname, word, sizeof(word), &id) < 0) {
			conf_diag(rep, AW_CONF_ERROR, where, "", "bad section '%s'", secname);
			conf_fix(rep, "write the section as a name or name.N, e.g. group.1");
			continue;
		}
		if (id >= 0)
			snprintf(secname, sizeof(secname), "%s %ld", word, id);
		else
			snprintf(secname, sizeof(secname), "%s", word);
		/* the file may spell it "[group1]" or "[group 01]": compare parsed */
		for (unsigned j = 0; j < ini->n && !sec; j++) {
			char w2[40];
			long id2;

			if (split_header(ini->s[j].name, w2, sizeof(w2), &id2) == 0 &&
			    strcmp(w2, word) == 0 && id2 == id)
				sec = &ini->s[j];
		}
		if (!sec) {
			sec = ini_add_section(ini, secname, 0);
			if (!sec)
				return -ENOMEM;
			sec->set = i + 1;
		}
		{
			bool done = false;

			for (unsigned j = 0; j < sec->n; j++)
				if (strcmp(sec->e[j].key, key) == 0) {
					char *nv = conf_strdup(value);

					if (!nv)
						return -ENOMEM;
					free(sec->e[j].value);
					sec->e[j].value = nv;
					sec->e[j].line = 0;
					sec->e[j].set = i + 1;
					done = true;
				}
			if (!done && ini_add_entry(sec, key, value, 0, i + 1) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Suggest where an unknown key belongs: a close name in its own section, or
 * the same name in another section. */
static void suggest_key(struct aw_conf_report *rep, const char *section, const char *key)
{
	const char *cands[64];
	unsigned n = 0;
	const char *s;

	for (const struct aw_conf_key *k = aw_conf_keys; k->name && n < 64; k++)
		if (strcmp(k->section, section) == 0)
			cands[n++] = k->name;
	s = conf_suggest(key, cands, n);
	if (s) {
		conf_fix(rep, "did you mean '%s'?", s);
		return;
	}
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++)
		if (strcmp(k->name, key) == 0) {
			conf_fix(rep, "'%s' belongs in [%s%s]", key, k->section,
				 numbered(section_index(k->section)) ? " N" : "");
			return;
		}
	{
		char list[512];
		size_t len = 0;

		list[0] = '\0';
		for (unsigned i = 0; i < n && len + 40 < sizeof(list); i++)
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
						i ? ", " : "", cands[i]);
		conf_fix(rep, "keys of [%s]: %s", section, list);
	}
}

static int resolve(struct aw_conf *c, struct ini *ini, const char *const *sets,
		   struct aw_conf_report *rep)
{
	bool seen_single[16] = {false};
	bool any_port = false, any_group = false;

	for (int s = 0; aw_conf_sections[s]; s++)
		if (!numbered(s))
			defaults_for(c, s, 0);

	for (unsigned i = 0; i < ini->n; i++) {
		struct ini_section *is = &ini->s[i];
		char where[AW_CONF_PATH_LEN + 32], word[40], what[64];
		int sec;
		long id;

		where_of(where, sizeof(where), c->path, is->line, is->set, sets);
		if (split_header(is->name, word, sizeof(word), &id) < 0 ||
		    (sec = section_index(word)) < 0) {
			const char *sug = conf_suggest(word, aw_conf_sections, 8);

			conf_diag(rep, AW_CONF_ERROR, where, "", "unknown section [%.60s]",
				  is->name);
			if (sug && numbered(section_index(sug)))
				conf_fix(rep, "did you mean [%s %ld]?", sug, id < 0 ? 0 : id);
			else if (sug)
				conf_fix(rep, "did you mean [%s]?", sug);
			else
				conf_fix(rep, "sections are [eal], [port N], [dataplane], [group "
					      "N], [model], [limits], [telemetry], [log]");
			continue;
		}
		if (numbered(sec)) {
			long max =
				strcmp(word, "port") == 0 ? AW_CONF_MAX_PORTS : AW_CONF_MAX_GROUPS;

			if (id < 0) {
				conf_diag(rep, AW_CONF_ERROR, where, "",
					  "section [%s] needs a number", word);
				conf_fix(rep, "write [%s 0], [%s 1], ...", word, word);
				continue;
			}
			if (id >= max) {
				conf_diag(rep, AW_CONF_ERROR, where, "",
					  "[%s %ld]: number out of range (0..%ld)", word, id,
					  max - 1);
				continue;
			}
			if ((strcmp(word, "port") == 0 && c->ports[id].present) ||
			    (strcmp(word, "group") == 0 && c->groups[id].present)) {
				conf_diag(rep, AW_CONF_ERROR, where, "",
					  "[%s] is [%s %ld] again (first at %s)", is->name, word,
					  id, conf_where(c, word, (int)id, NULL));
				conf_fix(rep, "merge the two sections into one [%s %ld]", word, id);
				continue;
			}
			if (strcmp(word, "port") == 0) {
				c->ports[id].present = true;
				any_port = true;
			} else {
				c->groups[id].present = true;
				any_group = true;
			}
			defaults_for(c, sec, (int)id);
			snprintf(what, sizeof(what), "[%s %ld]", word, id);
		} else {
			if (id >= 0) {
				conf_diag(rep, AW_CONF_ERROR, where, "",
					  "section [%s] takes no number", word);
				conf_fix(rep, "write [%s]", word);
				continue;
			}
			id = 0;
			if (seen_single[sec]) {
				conf_diag(rep, AW_CONF_ERROR, where, "",
					  "[%s] is [%s] again (first at %s)", is->name, word,
					  conf_where(c, word, 0, NULL));
				conf_fix(rep, "merge the two sections into one [%s]", word);
				continue;
			}
			seen_single[sec] = true;
			snprintf(what, sizeof(what), "[%s]", word);
		}
		if (src_add(c, NULL, sec, (int)id, where) < 0)
			return -ENOMEM;

		/* every key of the section */
		for (unsigned j = 0; j < is->n; j++) {
			struct ini_entry *e = &is->e[j];
			const struct aw_conf_key *k = find_key(word, e->key);
			char kwhere[AW_CONF_PATH_LEN + 32], kwhat[128];
			struct vctx v = {{0}, {0}};

			where_of(kwhere, sizeof(kwhere), c->path, e->line, e->set, sets);
			snprintf(kwhat, sizeof(kwhat), "%s %s", what, e->key);
			if (!k) {
				conf_diag(rep, AW_CONF_ERROR, kwhere, what, "unknown key '%.60s'",
					  e->key);
				suggest_key(rep, word, e->key);
				continue;
			}
			if (parse_value(&v, k, e->value,
					(char *)section_base(c, sec, (int)id) + k->offset) < 0) {
				conf_diag(rep, AW_CONF_ERROR, kwhere, kwhat, "%s", v.msg);
				if (v.fix[0])
					conf_fix(rep, "%s", v.fix);
				continue;
			}
			if (src_add(c, k, sec, (int)id, kwhere) < 0)
				return -ENOMEM;
		}
		/* required keys */
		for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++) {
			bool have = false;

			if (k->def || strcmp(k->section, word) != 0)
				continue;
			for (unsigned j = 0; j < is->n; j++)
				if (strcmp(is->e[j].key, k->name) == 0)
					have = true;
			if (!have) {
				conf_diag(rep, AW_CONF_ERROR, where, what,
					  "missing required key '%s'", k->name);
				conf_fix(rep, "add '%s = ...' (%s): %s", k->name,
					 type_name(k->type), k->doc);
			}
		}
	}

	/* required sections */
	if (!seen_single[section_index("dataplane")]) {
		conf_diag(rep, AW_CONF_ERROR, c->path, "", "no [dataplane] section");
		conf_fix(rep, "add [dataplane] with 'lcores = CPUs' for the RX/TX lcores");
	}
	if (!seen_single[section_index("model")]) {
		conf_diag(rep, AW_CONF_ERROR, c->path, "", "no [model] section");
		conf_fix(rep, "add [model] with 'path = FILE.gguf'");
	}
	if (!any_port) {
		conf_diag(rep, AW_CONF_ERROR, c->path, "", "no [port N] section");
		conf_fix(rep, "add [port 0] with 'device' and 'address' (see config/examples/)");
	}
	if (!any_group) {
		conf_diag(rep, AW_CONF_ERROR, c->path, "", "no [group N] section");
		conf_fix(rep, "add [group 0] with 'lcores = CPUs' for the workers");
	}
	return 0;
}

int aw_conf_load_buffer(const char *name, const char *data, size_t len, const char *const *sets,
			unsigned n_sets, struct aw_conf_report *rep, struct aw_conf **ret_conf)
{
	struct load_ctx l = {.rep = rep, .name = name};
	struct ini ini = {0};
	struct aw_conf *c;
	unsigned errors_before = rep->errors;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->src = calloc(1, sizeof(*c->src));
	if (!c->src) {
		free(c);
		return -ENOMEM;
	}
	snprintf(c->path, sizeof(c->path), "%s", name);
	rc = ini_parse(data, len, &ini, ini_problem, &l);
	if (rc == 0)
		rc = apply_sets(&ini, sets, n_sets, rep);
	if (rc == 0)
		rc = resolve(c, &ini, sets, rep);
	ini_fini(&ini);
	if (rc == 0 && rep->errors > errors_before)
		rc = -EINVAL;
	if (rc < 0) {
		aw_conf_free(c);
		return rc;
	}
	*ret_conf = c;
	return 0;
}

int aw_conf_load_file(const char *path, const char *const *sets, unsigned n_sets,
		      struct aw_conf_report *rep, struct aw_conf **ret_conf)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		conf_diag(rep, AW_CONF_ERROR, path, "", "cannot open: %s", strerror(-rc));
		conf_fix(rep, "check the path given to -c");
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		conf_diag(rep, AW_CONF_ERROR, path, "", "not a regular file");
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > AW_CONF_MAX_FILE) {
		conf_diag(rep, AW_CONF_ERROR, path, "",
			  "file is %llu bytes, more than the %u-byte limit",
			  (unsigned long long)st.st_size, AW_CONF_MAX_FILE);
		conf_fix(rep, "a config file is a few kilobytes: check the file name");
		close(fd);
		return -EINVAL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	rc = aw_conf_load_buffer(path, buf, len, sets, n_sets, rep, ret_conf);
	free(buf);
	return rc;
}

void aw_conf_free(struct aw_conf *conf)
{
	if (!conf)
		return;
	if (conf->src)
		free(conf->src->v);
	free(conf->src);
	free(conf);
}

int conf_stat_size(void *ctx, const char *path, uint64_t *size)
{
	struct stat st;

	(void)ctx;
	if (stat(path, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EISDIR;
	if (access(path, R_OK) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}
