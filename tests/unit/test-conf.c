/* test-conf.c — libaw_config: the INI reader on every kind of bad input, the
 * value parsers, whole-config validation against described machines, --set
 * overrides, the plans of config/examples/ (golden files), the command line,
 * topology discovery from a fake sysfs tree, and docs/CONFIG.md against the
 * key table. No DPDK, no EAL.
 *
 * Golden plans live in tests/unit/data/conf/NAME.plan; after a deliberate change
 * of the plan format, rewrite them with AW_CONF_WRITE_GOLDEN=1 and review the
 * diff.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "aw-skip.h"

#ifndef AW_SOURCE_ROOT
#error "AW_SOURCE_ROOT must be defined by the build"
#endif

/* A machine: one node, CPUs 0-7, 16 GiB, and the model file of MIN. */
static const char *const TOPO_1N = "[node 0]\n"
				   "cpus = 0-7\n"
				   "memory = 16G\n"
				   "hugepages = 8G\n"
				   "[file /models/m.gguf]\n"
				   "size = 100M\n";

/* Two nodes of 4 CPUs each, 8 GiB each. */
static const char *const TOPO_2N = "[node 0]\n"
				   "cpus = 0-3\n"
				   "memory = 8G\n"
				   "[node 1]\n"
				   "cpus = 4-7\n"
				   "memory = 8G\n"
				   "[file /models/m.gguf]\n"
				   "size = 100M\n";

/* The smallest valid config. */
static const char *const MIN = "[port 0]\n"
			       "device = net_tap0,iface=aw0\n"
			       "address = 10.99.0.2/24\n"
			       "[dataplane]\n"
			       "lcores = 1\n"
			       "[group 0]\n"
			       "lcores = 2-3\n"
			       "[model]\n"
			       "path = /models/m.gguf\n";

struct run {
	struct aw_conf_report rep;
	struct aw_conf *conf;
	struct aw_topo *topo;
	struct aw_conf_plan plan;
	int load_rc, valid_rc;
};

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static struct aw_topo *topo_of(const char *text)
{
	struct aw_topo *t = NULL;
	struct aw_err e;

	assert_int_equal(aw_topo_load_buffer("test.topo", text, strlen(text), &t, &e), 0);
	return t;
}

/* Load 'text' with overrides, and validate against 'topo_text' when it loads. */
static struct run *run_sets(const char *text, size_t len, const char *topo_text,
			    const char *const *sets, unsigned n_sets)
{
	struct run *r = calloc(1, sizeof(*r));

	assert_non_null(r);
	r->load_rc = aw_conf_load_buffer("t.conf", text, len, sets, n_sets, &r->rep, &r->conf);
	r->valid_rc = -1;
	if (r->load_rc == 0) {
		struct aw_conf_env env = {0};

		r->topo = topo_of(topo_text ? topo_text : TOPO_1N);
		env.topo = r->topo;
		r->valid_rc = aw_conf_validate(r->conf, &env, &r->rep, &r->plan);
	}
	if (getenv("AW_CONF_TEST_VERBOSE"))
		aw_conf_report_print(&r->rep, stderr);
	return r;
}

static struct run *run(const char *text, const char *topo_text)
{
	return run_sets(text, strlen(text), topo_text, NULL, 0);
}

static void run_free(struct run *r)
{
	aw_conf_report_fini(&r->rep);
	aw_conf_free(r->conf);
	aw_topo_free(r->topo);
	free(r);
}

/* The report has a problem at 'where' whose text contains 'needle'. */
static bool has_at(const struct run *r, const char *where, const char *needle)
{
	for (unsigned i = 0; i < r->rep.n; i++) {
		const struct aw_conf_diag *d = &r->rep.diags[i];

		if (where && strcmp(d->where, where) != 0)
			continue;
		if (strstr(d->msg, needle) || strstr(d->fix, needle) || strstr(d->what, needle))
			return true;
	}
	return false;
}

static void dump_on_fail(const struct run *r, bool ok)
{
	if (!ok)
		aw_conf_report_print(&r->rep, stderr);
}

#define EXPECT_AT(r, where, needle)                                                                \
	do {                                                                                       \
		bool ok_ = has_at((r), (where), (needle));                                         \
		dump_on_fail((r), ok_);                                                            \
		assert_true(ok_);                                                                  \
	} while (0)

/* MIN with 'extra' appended. */
static char *with(const char *extra)
{
	size_t n = strlen(MIN) + strlen(extra) + 1;
	char *s = malloc(n);

	assert_non_null(s);
	snprintf(s, n, "%s%s", MIN, extra);
	return s;
}

/* ---- good input ----------------------------------------------------------- */

static void test_minimal_valid(void **state)
{
	struct run *r = run(MIN, NULL);

	(void)state;
	dump_on_fail(r, r->valid_rc == 0);
	assert_int_equal(r->load_rc, 0);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->rep.errors, 0);
	assert_int_equal(r->rep.warnings, 0);
	/* defaults from the table */
	assert_int_equal(r->conf->dataplane.burst, 32);
	assert_int_equal(r->conf->ports[0].udp_port, 7878);
	assert_int_equal(r->conf->ports[0].addr, (10u << 24) | (99u << 16) | 2u);
	assert_int_equal(r->conf->ports[0].prefix, 24);
	assert_int_equal(r->conf->groups[0].kv_cache, 1ull << 30);
	assert_int_equal(r->conf->groups[0].node, -1);
	assert_true(r->conf->eal.hugepages);
	assert_string_equal(r->conf->eal.file_prefix, "agentwire");
	assert_string_equal(r->conf->log.level, "notice");
	/* the plan: main 0@0, dataplane 1@1, group 0 on 2-3 (node resolved to 0) */
	assert_int_equal(r->plan.n_lcores, 4);
	assert_string_equal(r->plan.eal_lcores, "0@0,1@1,2@2,3@3");
	assert_int_equal(r->plan.lcores[2].role, AW_CONF_ROLE_WORKER);
	assert_true(r->plan.lcores[2].leader);
	assert_false(r->plan.lcores[3].leader);
	assert_int_equal(r->plan.lcores[3].node, 0);
	assert_int_equal(r->plan.model_size, 100ull << 20);
	assert_int_equal(r->plan.mem[0].weights, 100ull << 20);
	assert_int_equal(r->plan.mem[0].kv, 1ull << 30);
	assert_int_equal(r->plan.mem[0].mbufs, 16383ull * aw_conf_mbuf_bytes(r->conf));
	run_free(r);
}

/* Comments, CRLF, a byte order mark, blanks and "[group  0]" spacing. */
static void test_syntax_variants(void **state)
{
	const char *text = "\xef\xbb\xbf; leading comment\r\n"
			   "# another\r\n"
			   "[port 0]   ; trailing comment\r\n"
			   "  device=net_tap0,iface=aw0\r\n"
			   "address =   10.99.0.2/24   # comment\r\n"
			   "\r\n"
			   "[ dataplane ]\r\n"
			   "lcores = 1\r\n"
			   "[group  0]\r\n"
			   "lcores = 2 - 3\r\n"
			   "kv_cache = 1.5G\r\n"
			   "[model]\r\n"
			   "path = /models/m.gguf";
	struct run *r = run(text, NULL);

	(void)state;
	dump_on_fail(r, r->valid_rc == 0);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->conf->groups[0].kv_cache, 3ull << 29);
	assert_string_equal(r->conf->ports[0].device, "net_tap0,iface=aw0");
	run_free(r);
}

/* ---- bad input: the reader ---------------------------------------------------- */

static void test_empty_file(void **state)
{
	struct run *r = run("", NULL);

	(void)state;
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf", "file is empty");
	run_free(r);

	/* only comments: no sections, so every required section is named */
	r = run("; nothing\n\n# here\n", NULL);
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf", "no [dataplane] section");
	EXPECT_AT(r, "t.conf", "no [model] section");
	EXPECT_AT(r, "t.conf", "no [port N] section");
	EXPECT_AT(r, "t.conf", "no [group N] section");
	run_free(r);
}

static void test_binary_garbage(void **state)
{
	char buf[4096];
	uint32_t x = 12345;
	struct run *r;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (char)(x >> 16);
	}
	r = run_sets(buf, sizeof(buf), NULL, NULL, 0);
	assert_int_equal(r->load_rc, -EINVAL);
	assert_true(r->rep.errors > 0);
	EXPECT_AT(r, NULL, "control byte");
	EXPECT_AT(r, NULL, "not a text file");
	run_free(r);

	/* a NUL in an otherwise good file names the line and column */
	{
		char nul[] = "[dataplane]\nlcores = 1\x00\n";

		r = run_sets(nul, sizeof(nul) - 1, NULL, NULL, 0);
		EXPECT_AT(r, "t.conf:2", "control byte 0x00 at column 11 (binary data?)");
		run_free(r);
	}
}

static void test_long_line(void **state)
{
	size_t big = 10u << 20, n;
	char *text = malloc(big + 256);
	struct run *r;

	(void)state;
	assert_non_null(text);
	n = (size_t)sprintf(text, "[model]\npath = ");
	memset(text + n, 'a', big);
	n += big;
	n += (size_t)sprintf(text + n, "\n[dataplane]\nlcroes = 1\n");
	r = run_sets(text, n, NULL, NULL, 0);
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:2", "more than the 4096-byte limit");
	/* parsing went on after the long line */
	EXPECT_AT(r, "t.conf:4", "unknown key 'lcroes'");
	run_free(r);
	free(text);
}

static void test_duplicates(void **state)
{
	char *text =
		with("[group 0]\nmax_batch = 4\n[dataplane]\nlcores = 1\nburst = 8\nburst = 16\n");
	struct run *r = run(text, NULL);

	(void)state;
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:10", "duplicate section [group 0] (first defined at line 6)");
	EXPECT_AT(r, "t.conf:12", "duplicate section [dataplane] (first defined at line 4)");
	EXPECT_AT(r, "t.conf:13", "duplicate key 'lcores' in [dataplane] (first set at line 5)");
	EXPECT_AT(r, "t.conf:15", "duplicate key 'burst' in [dataplane] (first set at line 14)");
	EXPECT_AT(r, "t.conf:15", "keep one 'burst' line in [dataplane]");
	assert_int_equal(r->rep.errors, 4);
	free(text);
	run_free(r);
}

/* The same numbered section spelt two ways, and the reader's size limits. */
static void test_duplicate_spellings_and_limits(void **state)
{
	char *text = with("[group1]\nlcores = 4\n[port 00]\nmtu = 9000\n");
	const char *sets[] = {"group.1.max_batch=8"};
	struct run *r = run(text, NULL);
	size_t cap = 600 * 24, n = 0;
	char *big;

	(void)state;
	EXPECT_AT(r, "t.conf:12", "[port 00] is [port 0] again (first at t.conf:1)");
	/* [group1] alone is fine; an override finds it under any spelling */
	assert_int_equal(r->rep.errors, 1);
	run_free(r);
	free(text);
	text = with("[group1]\nlcores = 4\nmax_batch = 4\n");
	r = run_sets(text, strlen(text), NULL, sets, 1);
	dump_on_fail(r, r->valid_rc == 0);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->conf->groups[1].max_batch, 8);
	run_free(r);
	free(text);

	big = malloc(cap);
	assert_non_null(big);
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(big + n, cap - n, "[x%d]\n", i);
	r = run_sets(big, n, NULL, NULL, 0);
	EXPECT_AT(r, "t.conf:257", "more than 256 sections: giving up");
	run_free(r);
	n = (size_t)snprintf(big, cap, "[limits]\n");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(big + n, cap - n, "k%d = 1\n", i);
	r = run_sets(big, n, NULL, NULL, 0);
	EXPECT_AT(r, "t.conf:258", "more than 256 keys in [limits]");
	assert_false(has_at(r, "t.conf:259", "more than 256 keys"));
	run_free(r);
	free(big);
}

static void test_line_syntax(void **state)
{
	const char *text = "[dataplane]\n"
			   "lcores 2-5\n"   /* 2: missing '=' */
			   "= 5\n"	    /* 3: missing key */
			   "[group 0\n"	    /* 4: no ']' */
			   "[]\n"	    /* 5: empty name */
			   "[model] junk\n" /* 6: text after ']' */
			   "my key = 1\n"   /* 7: bad key name */
			   "[eal]\n";
	struct run *r = run("max_batch = 1\n", NULL);

	(void)state;
	EXPECT_AT(r, "t.conf:1", "key 'max_batch' outside any section");
	run_free(r);
	r = run(text, NULL);
	EXPECT_AT(r, "t.conf:2", "missing '=' in 'lcores 2-5'");
	EXPECT_AT(r, "t.conf:2", "write 'key = value'");
	EXPECT_AT(r, "t.conf:3", "missing key name before '='");
	EXPECT_AT(r, "t.conf:4", "has no closing ']'");
	EXPECT_AT(r, "t.conf:5", "empty section name");
	EXPECT_AT(r, "t.conf:6", "unexpected text 'junk' after the section header");
	EXPECT_AT(r, "t.conf:7", "bad key name 'my key'");
	run_free(r);
}

/* ---- bad input: values ------------------------------------------------------------ */

/* MIN with [sec] key = value set (replacing MIN's line or adding one). */
static char *with_key(const char *sec, const char *key, const char *value)
{
	static const char *const min[][3] = {
		{"port 0", "device", "net_tap0,iface=aw0"},
		{"port 0", "address", "10.99.0.2/24"},
		{"dataplane", "lcores", "1"},
		{"group 0", "lcores", "2-3"},
		{"model", "path", "/models/m.gguf"},
	};
	size_t cap = 4096, n = 0;
	char *out = malloc(cap);
	const char *cur = "";
	bool done = false;

	assert_non_null(out);
	for (unsigned i = 0; i < sizeof(min) / sizeof(min[0]); i++) {
		if (strcmp(cur, min[i][0]) != 0) {
			if (!done && strcmp(cur, sec) == 0) {
				n += (size_t)snprintf(out + n, cap - n, "%s = %s\n", key, value);
				done = true;
			}
			cur = min[i][0];
			n += (size_t)snprintf(out + n, cap - n, "[%s]\n", cur);
		}
		if (strcmp(cur, sec) == 0 && strcmp(min[i][1], key) == 0) {
			n += (size_t)snprintf(out + n, cap - n, "%s = %s\n", key, value);
			done = true;
		} else {
			n += (size_t)snprintf(out + n, cap - n, "%s = %s\n", min[i][1], min[i][2]);
		}
	}
	if (!done && strcmp(cur, sec) == 0)
		n += (size_t)snprintf(out + n, cap - n, "%s = %s\n", key, value);
	else if (!done)
		n += (size_t)snprintf(out + n, cap - n, "[%s]\n%s = %s\n", sec, key, value);
	assert_true(n < cap);
	return out;
}

static void test_bad_values(void **state)
{
	static const struct {
		const char *sec, *key, *value;
		const char *needle;
	} cases[] = {
		{"dataplane", "burst", "8x", "trailing characters 'x' after the number"},
		{"dataplane", "burst", "-8", "negative number '-8'"},
		{"dataplane", "burst", "+8", "'+8' is not a number"},
		{"dataplane", "burst", "99999999999999999999", "is too large"},
		{"dataplane", "burst", "18446744073709551616", "is too large"},
		{"dataplane", "burst", "0x10", "trailing characters 'x10'"},
		{"dataplane", "burst", "", "empty value, expected a number"},
		{"dataplane", "burst", "513", "513 is out of range (1..512)"},
		{"dataplane", "burst", "eight", "'eight' is not a number"},
		{"dataplane", "idle", "yeild", "did you mean 'yield'?"},
		{"dataplane", "tx_ring_size", "1000", "1000 is not a power of two"},
		{"dataplane", "lcores", "", "empty CPU list"},
		{"group 0", "kv_cache", "-1G", "negative size '-1G'"},
		{"group 0", "kv_cache", "99999999999999999999",
		 "size '99999999999999999999' is too large"},
		{"group 0", "kv_cache", "20000000T", "is too large"},
		{"group 0", "kv_cache", "8X", "unknown unit 'X'"},
		{"group 0", "kv_cache", "1.5", "cannot have a fraction"},
		{"group 0", "kv_cache", "1.G", "digits expected after '.'"},
		{"group 0", "kv_cache", "512", "512 B is out of range (1 MiB..64 TiB)"},
		{"group 0", "kv_cache", "1G junk", "trailing characters"},
		{"group 0", "lcores", "5-2", "reversed range 5-2"},
		{"group 0", "lcores", "2,2", "CPU 2 is listed twice"},
		{"group 0", "lcores", "2;3", "unexpected ';3' in CPU list"},
		{"group 0", "lcores", "4096", "CPU number too large"},
		{"group 0", "lcores", "-1", "negative CPU number"},
		{"group 0", "node", "-1", "negative number"},
		{"group 0", "node", "99", "node 99 is out of range"},
		{"eal", "hugepages", "maybe", "'maybe' is not a boolean"},
		{"eal", "main_lcore", "1,2", "trailing characters ',2'"},
		{"model", "request_size", "2K", "2 KiB is out of range (4 KiB..64 MiB)"},
		{"model", "request_size", "5000", "5000 is not a multiple of 4096"},
		{"model", "request_size", "6K", "is not a multiple of 4096"},
		{"model", "path", "", "empty value"},
		{"port 0", "address", "10.99.0.2", "has no prefix length"},
		{"port 0", "address", "10.99.0.0/24", "is the network address of /24"},
		{"port 0", "address", "10.99.0.255/24", "broadcast address"},
		{"port 0", "address", "224.0.0.1/24", "is not a usable host address"},
		{"port 0", "address", "300.1.1.1/24", "is not an IPv4 address"},
		{"port 0", "address", "10.99.0.2/33", "bad prefix length '33'"},
		{"port 0", "gateway", "10.99.0", "is not an IPv4 address"},
		{"port 0", "device", "eth0", "neither a PCI address nor a DPDK vdev"},
		{"port 0", "device", "net_tap", "is not a DPDK vdev name"},
		{"port 0", "device", "0000:17:00.9", "neither a PCI address"},
		{"port 0", "udp_port", "65536", "65536 is out of range (1..65535)"},
		{"log", "level", "verbose",
		 "'verbose' is not one of err|warning|notice|info|debug"},
		{"telemetry", "name", "x", "'x' is shorter than 2 bytes"},
		{"telemetry", "name", "", "empty value"},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = with_key(cases[i].sec, cases[i].key, cases[i].value);
		struct run *r = run(text, NULL);

		/* exactly one problem, on the line of the value, saying what is wrong */
		if (r->rep.errors != 1 || !has_at(r, NULL, cases[i].needle)) {
			fprintf(stderr, "case %u ([%s] %s = %s) expected '%s', got:\n", i,
				cases[i].sec, cases[i].key, cases[i].value, cases[i].needle);
			aw_conf_report_print(&r->rep, stderr);
			fail();
		}
		assert_int_equal(r->load_rc, -EINVAL);
		free(text);
		run_free(r);
	}
}

/* ---- unknown names ------------------------------------------------------------------- */

static void test_did_you_mean(void **state)
{
	char *text = with("[dataplane]\nlcroes = 1\n"
			  "[grop 1]\nlcores = 4\n"
			  "[group 2]\npath = /x\n"
			  "[modle]\n"
			  "[group]\n"
			  "[model 2]\n"
			  "[group 0]\nLcores = 2\nfrobnicate = 1\n");
	struct run *r = run(text, NULL);

	(void)state;
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:11", "did you mean 'lcores'?");
	EXPECT_AT(r, "t.conf:12", "unknown section [grop 1]");
	EXPECT_AT(r, "t.conf:12", "did you mean [group 1]?");
	EXPECT_AT(r, "t.conf:15", "'path' belongs in [model]");
	EXPECT_AT(r, "t.conf:16", "did you mean [model]?");
	EXPECT_AT(r, "t.conf:17", "section [group] needs a number");
	EXPECT_AT(r, "t.conf:18", "section [model] takes no number");
	EXPECT_AT(r, "t.conf:20", "did you mean 'lcores'?");
	EXPECT_AT(r, "t.conf:21", "keys of [group]: lcores, node");
	/* [group 2] has no lcores */
	EXPECT_AT(r, "t.conf:14", "missing required key 'lcores'");
	free(text);
	run_free(r);
}

/* ---- the whole file ---------------------------------------------------------------- */

static void test_all_errors_at_once(void **state)
{
	/* one problem per kind, all in one file: each is reported with its line */
	const char *text = "[eal]\n"
			   "hugepages = perhaps\n" /* 2 */
			   "[port 0]\n"
			   "device = net_tap0\n"
			   "address = 10.99.0.2\n" /* 5 */
			   "[dataplane]\n"
			   "lcores 1\n"	  /* 7 */
			   "burst = 8x\n" /* 8 */
			   "[group 0]\n"
			   "lcores = 2-3\n"
			   "kv_cache = -4G\n" /* 11 */
			   "max_btach = 4\n"  /* 12 */
			   "[model]\n"
			   "path = /models/m.gguf\n"
			   "path = /models/n.gguf\n" /* 15 */
			   "[limtis]\n";	     /* 16 */
	struct run *r = run(text, NULL);

	(void)state;
	assert_int_equal(r->load_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:2", "not a boolean");
	EXPECT_AT(r, "t.conf:5", "no prefix length");
	EXPECT_AT(r, "t.conf:7", "missing '='");
	EXPECT_AT(r, "t.conf:8", "trailing characters");
	EXPECT_AT(r, "t.conf:11", "negative size");
	EXPECT_AT(r, "t.conf:12", "did you mean 'max_batch'?");
	EXPECT_AT(r, "t.conf:15", "duplicate key 'path'");
	EXPECT_AT(r, "t.conf:16", "did you mean [limits]?");
	/* [dataplane] lost its only lcores line (no '='): it is reported missing too */
	EXPECT_AT(r, "t.conf:6", "missing required key 'lcores'");
	assert_int_equal(r->rep.errors, 9);
	run_free(r);
}

/* The report keeps the first AW_CONF_MAX_DIAGS problems and counts the rest. */
static void test_many_errors_capped(void **state)
{
	size_t cap = 300 * 16 + 64, n = 0;
	char *text = malloc(cap);
	struct run *r;
	char *out = NULL;
	size_t olen = 0;
	FILE *f;

	(void)state;
	assert_non_null(text);
	n += (size_t)snprintf(text + n, cap - n, "[dataplane]\n");
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(text + n, cap - n, "junk line %d\n", i);
	r = run_sets(text, n, NULL, NULL, 0);
	assert_int_equal(r->rep.n, AW_CONF_MAX_DIAGS);
	assert_true(r->rep.errors >= 300);
	f = open_memstream(&out, &olen);
	assert_non_null(f);
	aw_conf_report_print(&r->rep, f);
	fclose(f);
	assert_non_null(strstr(out, "more problems not shown"));
	free(out);
	free(text);
	run_free(r);
}

/* ---- cross-checks --------------------------------------------------------------------- */

static void test_cores_used_twice(void **state)
{
	char *text = with("[group 1]\nlcores = 3-4\n[group 2]\nlcores = 1,5\n");
	struct run *r = run(text, NULL);

	(void)state;
	assert_int_equal(r->load_rc, 0);
	assert_int_equal(r->valid_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:11", "CPU 3 is already used by [group 0] lcores (t.conf:7)");
	EXPECT_AT(r, "t.conf:13", "CPU 1 is already used by [dataplane] lcores (t.conf:5)");
	EXPECT_AT(r, "t.conf:13", "give each CPU one role");
	assert_int_equal(r->rep.errors, 2);
	free(text);
	run_free(r);

	/* main lcore on a dataplane CPU: error; on a worker CPU: a warning */
	text = with("[eal]\nmain_lcore = 1\n");
	r = run(text, NULL);
	EXPECT_AT(r, "t.conf:5", "CPU 1 is also the main lcore");
	assert_int_equal(r->valid_rc, -EINVAL);
	free(text);
	run_free(r);
	text = with("[eal]\nmain_lcore = 2\n");
	r = run(text, NULL);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->rep.warnings, 1);
	EXPECT_AT(r, "t.conf:7", "shared with the main lcore");
	free(text);
	run_free(r);
}

static void test_cpus_exist(void **state)
{
	char *text = with("[group 1]\nlcores = 6-9\n");
	struct run *r = run(text, NULL);

	(void)state;
	EXPECT_AT(r, "t.conf:11", "CPUs 8-9 do not exist on the machine described in test.topo");
	EXPECT_AT(r, "t.conf:11", "use CPUs 0-7");
	free(text);
	run_free(r);
}

static void test_cross_node_groups(void **state)
{
	/* explicit node, CPUs of the other node */
	char *text = with("[group 1]\nlcores = 4-5\nnode = 0\n"
			  "[group 3]\nlcores = 7\nnode = 2\n");
	const char *span[] = {"group.0.lcores=3-4"};
	struct run *r = run(text, TOPO_2N);

	(void)state;
	assert_int_equal(r->valid_rc, -EINVAL);
	EXPECT_AT(r, "t.conf:11", "CPUs 4-5 are not on node 0 (CPU 4 is on node 1)");
	EXPECT_AT(r, "t.conf:11", "use CPUs of node 0 (0-3), or set node = 1");
	EXPECT_AT(r, "t.conf:15", "node 2 does not exist");
	assert_int_equal(r->rep.errors, 2);
	free(text);
	run_free(r);

	/* auto with CPUs of both nodes */
	r = run_sets(MIN, strlen(MIN), TOPO_2N, span, 1);
	EXPECT_AT(r, "--set group.0.lcores=3-4", "CPUs span more than one NUMA node");
	EXPECT_AT(r, NULL, "split it into one [group N] per node");
	run_free(r);

	/* auto resolves to the CPUs' node */
	text = with("[group 1]\nlcores = 4-7\n");
	r = run(text, TOPO_2N);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->plan.lcores[r->plan.n_lcores - 1].node, 1);
	/* per-node replicas: weights on both nodes */
	assert_int_equal(r->plan.mem[0].weights, 100ull << 20);
	assert_int_equal(r->plan.mem[1].weights, 100ull << 20);
	free(text);
	run_free(r);

	{
		const char *sets[] = {"group.1.lcores=4-7", "model.replicas=single"};

		r = run_sets(MIN, strlen(MIN), TOPO_2N, sets, 2);
		assert_int_equal(r->valid_rc, 0);
		assert_int_equal(r->plan.mem[0].weights, 100ull << 20);
		assert_int_equal(r->plan.mem[1].weights, 0);
		run_free(r);
	}
}

static int caps_two_queues(void *ctx, unsigned id, const struct aw_conf_port *port,
			   struct aw_conf_port_caps *caps)
{
	(void)port;
	*(unsigned *)ctx += 1;
	memset(caps, 0, sizeof(*caps));
	snprintf(caps->driver, sizeof(caps->driver), "fake%u", id);
	caps->max_rx_queues = 2;
	caps->max_tx_queues = 2;
	caps->rx_desc_max = 512;
	caps->rx_desc_align = 8;
	caps->max_mtu = 1500;
	caps->node = -1;
	return 0;
}

static void test_port_capabilities(void **state)
{
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_topo *t = topo_of(TOPO_1N);
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	struct aw_conf_env env = {.topo = t, .port_caps = caps_two_queues};
	unsigned calls = 0;
	const char *sets[] = {"dataplane.lcores=1,4-5", "port.0.mtu=9000",
			      "port.0.rx_descriptors=1024", "port.0.tx_queues=2"};
	struct run *r;

	(void)state;
	assert_non_null(plan);
	env.ctx = &calls;
	/* through the interface: 3 dataplane lcores on a 2-queue port */
	assert_int_equal(aw_conf_load_buffer("t.conf", MIN, strlen(MIN), sets, 4, &rep, &conf), 0);
	assert_int_equal(aw_conf_validate(conf, &env, &rep, plan), -EINVAL);
	assert_int_equal(calls, 1);
	assert_true(aw_conf_report_has(
		&rep, "3 RX queues (one per dataplane lcore), but fake0 takes at most 2"));
	assert_true(aw_conf_report_has(&rep, "2 TX queues for 3 dataplane lcores"));
	assert_true(aw_conf_report_has(&rep, "rx_descriptors = 1024 is outside 0..512 of fake0"));
	assert_true(aw_conf_report_has(&rep, "mtu 9000 is above the device's maximum 1500"));
	assert_true(aw_conf_report_has(&rep, "--set port.0.mtu=9000"));
	aw_conf_report_fini(&rep);
	aw_conf_free(conf);
	aw_topo_free(t);
	free(plan);

	/* the built-in limits of the virtual devices: net_tap takes 16 queues */
	{
		const char *s2[] = {"port.0.rx_queues=32"};

		r = run_sets(MIN, strlen(MIN), NULL, s2, 1);
		EXPECT_AT(r, "--set port.0.rx_queues=32",
			  "32 RX queues, but net_tap takes at most 16");
		run_free(r);
	}
	/* a described NIC: limits from the topology file, unknown PCI device: skipped */
	{
		const char *topo =
			"[node 0]\ncpus = 0-7\nmemory = 16G\n[file /models/m.gguf]\nsize = 1M\n"
			"[port 0000:03:00.0]\nmax_rx_queues = 4\nmax_tx_queues = 4\n";
		const char *s3[] = {"port.0.device=0000:03:00.0", "port.0.rx_queues=8"};
		const char *s4[] = {"port.0.device=0000:04:00.0", "port.0.rx_queues=8"};

		r = run_sets(MIN, strlen(MIN), topo, s3, 2);
		EXPECT_AT(r, NULL, "8 RX queues, but the device takes at most 4");
		run_free(r);
		r = run_sets(MIN, strlen(MIN), topo, s4, 2);
		assert_int_equal(r->valid_rc, 0);
		assert_false(r->plan.caps_known[0]);
		run_free(r);
	}
	/* a NIC on node 1 with every dataplane lcore on node 0: a warning */
	{
		char topo[512];
		const char *s5[] = {"port.0.device=0000:03:00.0"};

		snprintf(topo, sizeof(topo), "%s[port 0000:03:00.0]\nnode = 1\n", TOPO_2N);
		r = run_sets(MIN, strlen(MIN), topo, s5, 1);
		assert_int_equal(r->valid_rc, 0);
		EXPECT_AT(r, "t.conf:5", "the device is on node 1 but no dataplane lcore is");
		run_free(r);
	}
}

static void test_memory_per_node(void **state)
{
	const char *sets[] = {"group.0.kv_cache=20G"};
	struct run *r = run_sets(MIN, strlen(MIN), NULL, sets, 1);

	(void)state;
	assert_int_equal(r->valid_rc, -EINVAL);
	EXPECT_AT(r, "--set group.0.kv_cache=20G",
		  "node 0 needs 20.1 GiB (weights 100 MiB, KV cache 20 GiB");
	EXPECT_AT(r, NULL, "but has 16 GiB");
	EXPECT_AT(r, NULL, "lower kv_cache of [group 0]");
	run_free(r);

	/* within memory but above the reserved hugepages: a warning with the command */
	{
		const char *s2[] = {"group.0.kv_cache=10G"};

		r = run_sets(MIN, strlen(MIN), NULL, s2, 1);
		assert_int_equal(r->valid_rc, 0);
		EXPECT_AT(r, NULL, "node 0 has 8 GiB of hugepages reserved");
		EXPECT_AT(r, NULL,
			  "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages");
		run_free(r);
	}
	/* the DPDK heap must hold the mbuf pools */
	{
		const char *s3[] = {"dataplane.mbufs=262143", "eal.memory=256M"};

		r = run_sets(MIN, strlen(MIN), NULL, s3, 2);
		EXPECT_AT(r, "--set eal.memory=256M", "256 MiB is too small for the mbuf pools");
		run_free(r);
	}
}

static void test_model_file(void **state)
{
	char path[] = "/tmp/test-conf-model-XXXXXX";
	char set[128];
	const char *sets[1] = {set};
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	struct aw_topo *t = topo_of("[node 0]\ncpus = 0-7\nmemory = 16G\n");
	struct aw_conf_env env = {.topo = t};
	int fd;

	(void)state;
	assert_non_null(plan);
	/* missing: the default file_size is stat() */
	snprintf(set, sizeof(set), "model.path=/nonexistent/agentwire/m.gguf");
	assert_int_equal(aw_conf_load_buffer("t.conf", MIN, strlen(MIN), sets, 1, &rep, &conf), 0);
	assert_int_equal(aw_conf_validate(conf, &env, &rep, plan), -EINVAL);
	assert_true(aw_conf_report_has(
		&rep, "model file '/nonexistent/agentwire/m.gguf': No such file or directory"));
	aw_conf_free(conf);
	aw_conf_report_fini(&rep);

	/* a directory is not a model */
	snprintf(set, sizeof(set), "model.path=/tmp");
	assert_int_equal(aw_conf_load_buffer("t.conf", MIN, strlen(MIN), sets, 1, &rep, &conf), 0);
	assert_int_equal(aw_conf_validate(conf, &env, &rep, plan), -EINVAL);
	assert_true(aw_conf_report_has(&rep, "model file '/tmp'"));
	aw_conf_free(conf);
	aw_conf_report_fini(&rep);

	/* a real file: its size goes into the plan */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 123456), 0);
	close(fd);
	snprintf(set, sizeof(set), "model.path=%s", path);
	assert_int_equal(aw_conf_load_buffer("t.conf", MIN, strlen(MIN), sets, 1, &rep, &conf), 0);
	assert_int_equal(aw_conf_validate(conf, &env, &rep, plan), 0);
	assert_int_equal(plan->model_size, 123456);
	aw_conf_free(conf);
	aw_conf_report_fini(&rep);
	unlink(path);
	aw_topo_free(t);
	free(plan);
}

static void test_other_checks(void **state)
{
	static const struct {
		const char *set;
		const char *needle;
	} cases[] = {
		{"group.0.prefill_chunk=4096",
		 "prefill_chunk 4096 is larger than max_batch_tokens 2048"},
		{"group.0.max_batch_tokens=8", "max_batch 16 is larger than max_batch_tokens 8"},
		{"limits.queue_depth=2048",
		 "2048 waiting requests do not fit the 1024-entry ring of [group 0]"},
		{"limits.default_deadline_ms=400000", "above max_deadline_ms"},
		{"telemetry.name=agentwire", "does not start with '/'"},
		{"eal.args=--no-huge --log-level=8", "'--no-huge' is set by agentwire itself"},
		{"eal.args=-l 0-3", "'-l' is set by agentwire itself"},
		{"port.0.gateway=10.1.0.1", "gateway 10.1.0.1 is outside the port's subnet /24"},
		{"port.1.device=net_tap0,iface=aw0", "also [port 0]"},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *sets[2] = {cases[i].set, "port.1.address=10.98.0.2/24"};
		unsigned n = strncmp(cases[i].set, "port.1.", 7) == 0 ? 2 : 1;
		struct run *r = run_sets(MIN, strlen(MIN), NULL, sets, n);

		if (!has_at(r, NULL, cases[i].needle)) {
			fprintf(stderr, "case %s expected '%s', got:\n", cases[i].set,
				cases[i].needle);
			aw_conf_report_print(&r->rep, stderr);
			fail();
		}
		assert_int_equal(r->valid_rc, -EINVAL);
		run_free(r);
	}
}

/* ---- --set ----------------------------------------------------------------------------- */

static void test_set_overrides(void **state)
{
	const char *sets[] = {
		"group.0.max_batch=32", /* replaces a default */
		"dataplane.lcores=1,4", /* replaces a file value */
		"group1.lcores=5",	/* a new section, "group1" spelling */
		"group 2.lcores=6",	/* "group 2" spelling */
		"eal.hugepages=false",	"limits.max_new_tokens = 77 ", /* blanks as in a file */
	};
	struct run *r = run_sets(MIN, strlen(MIN), NULL, sets, 6);

	(void)state;
	dump_on_fail(r, r->valid_rc == 0);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(r->conf->groups[0].max_batch, 32);
	assert_true(r->conf->groups[1].present);
	assert_true(r->conf->groups[2].present);
	assert_false(r->conf->eal.hugepages);
	assert_int_equal(r->conf->limits.max_new_tokens, 77);
	assert_int_equal(r->plan.n_dataplane, 2);
	assert_string_equal(r->plan.eal_lcores, "0@0,1@1,2@4,3@2,4@3,5@5,6@6");
	run_free(r);

	/* overrides are validated the same way, named by the argument */
	{
		const char *bad[] = {"group.0.max_batch=0",
				     "group.0.max_bach=3",
				     "grop.0.lcores=1",
				     "dataplane.burst",
				     "nodot=3",
				     "group.0.lcores=2-3,1"};

		r = run_sets(MIN, strlen(MIN), NULL, bad, 6);
		assert_int_equal(r->load_rc, -EINVAL);
		EXPECT_AT(r, "--set group.0.max_batch=0", "0 is out of range (1..1024)");
		EXPECT_AT(r, "--set group.0.max_bach=3", "did you mean 'max_batch'?");
		EXPECT_AT(r, "--set grop.0.lcores=1", "did you mean [group 0]?");
		EXPECT_AT(r, "--set dataplane.burst", "missing '=' in the override");
		EXPECT_AT(r, "--set nodot=3", "expected section.key=value");
		run_free(r);
	}
	/* an override longer than any value */
	{
		char *longset = malloc(3100);
		const char *ls[1] = {longset};

		assert_non_null(longset);
		snprintf(longset, 3100, "model.path=/%03000d", 7);
		r = run_sets(MIN, strlen(MIN), NULL, ls, 1);
		assert_int_equal(r->load_rc, -EINVAL);
		EXPECT_AT(r, NULL, "value is 3001 bytes long");
		run_free(r);
		free(longset);
	}
	/* the override wins over the file, the later override over the earlier */
	{
		const char *two[] = {"dataplane.burst=8", "dataplane.burst=16"};
		char *text = with("[limits]\nmax_new_tokens = 100\n");
		const char *three[] = {"limits.max_new_tokens=200"};

		r = run_sets(MIN, strlen(MIN), NULL, two, 2);
		assert_int_equal(r->conf->dataplane.burst, 16);
		run_free(r);
		r = run_sets(text, strlen(text), NULL, three, 1);
		assert_int_equal(r->conf->limits.max_new_tokens, 200);
		run_free(r);
		free(text);
	}
	/* an override's cross-check problem names the override */
	{
		const char *ov[] = {"group.0.lcores=1-2"};

		r = run_sets(MIN, strlen(MIN), NULL, ov, 1);
		EXPECT_AT(r, "--set group.0.lcores=1-2",
			  "CPU 1 is already used by [dataplane] lcores");
		run_free(r);
	}
}

/* ---- the examples -------------------------------------------------------------------- */

static void check_golden(const char *name, const char *text, const char *golden_path)
{
	size_t glen;
	char *golden;

	if (getenv("AW_CONF_WRITE_GOLDEN")) {
		FILE *f = fopen(golden_path, "w");

		assert_non_null(f);
		fputs(text, f);
		fclose(f);
		fprintf(stderr, "# wrote %s\n", golden_path);
		return;
	}
	golden = read_all(golden_path, &glen);
	if (strcmp(golden, text) != 0) {
		fprintf(stderr, "# plan of %s differs from %s; got:\n%s", name, golden_path, text);
		fail();
	}
	free(golden);
}

/* Check config/examples/NAME.conf against TOPO and compare the plan. */
static void check_example(const char *name, const char *topo_path)
{
	char path[512], golden[512];
	char *text, *topo_text, *out = NULL;
	size_t len, olen = 0;
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_topo *t = NULL;
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	struct aw_conf_env env = {0};
	struct aw_err e;
	FILE *f;

	assert_non_null(plan);
	snprintf(path, sizeof(path), "%s/config/examples/%s.conf", AW_SOURCE_ROOT, name);
	text = read_all(path, &len);
	topo_text = read_all(topo_path, NULL);
	assert_int_equal(aw_topo_load_buffer(strrchr(topo_path, '/') + 1, topo_text,
					     strlen(topo_text), &t, &e),
			 0);
	env.topo = t;
	snprintf(path, sizeof(path), "%s.conf", name);
	assert_int_equal(aw_conf_load_buffer(path, text, len, NULL, 0, &rep, &conf), 0);
	if (aw_conf_validate(conf, &env, &rep, plan) != 0) {
		aw_conf_report_print(&rep, stderr);
		fail();
	}
	f = open_memstream(&out, &olen);
	assert_non_null(f);
	aw_conf_report_print(&rep, f);
	aw_conf_plan_print(conf, &env, plan, f);
	fclose(f);
	snprintf(golden, sizeof(golden), "%s/tests/unit/data/conf/%s.plan", AW_SOURCE_ROOT, name);
	check_golden(name, out, golden);
	free(out);
	free(text);
	free(topo_text);
	aw_conf_report_fini(&rep);
	aw_conf_free(conf);
	aw_topo_free(t);
	free(plan);
}

static void test_example_two_socket(void **state)
{
	char topo[512];

	(void)state;
	snprintf(topo, sizeof(topo), "%s/config/examples/two-socket-100g.topo", AW_SOURCE_ROOT);
	check_example("two-socket-100g", topo);
}

static void test_example_memif(void **state)
{
	char topo[512];

	(void)state;
	snprintf(topo, sizeof(topo), "%s/tests/unit/data/conf/one-node-8cpu.topo", AW_SOURCE_ROOT);
	check_example("memif-bench", topo);
}

static void test_example_demo(void **state)
{
	char topo[512];

	(void)state;
	snprintf(topo, sizeof(topo), "%s/tests/unit/data/conf/demo-2cpu.topo", AW_SOURCE_ROOT);
	check_example("demo", topo);
}

/* The two-socket example broken in the ways an operator breaks it. */
static void test_example_two_socket_broken(void **state)
{
	char path[512];
	char *text, *topo_text;
	size_t len;
	const char *sets[] = {"group.1.lcores=18-33",	/* reaches into node 1 and the dataplane */
			      "group.3.kv_cache=200G"}; /* node 1 over its 256 GiB */
	struct run *r;

	(void)state;
	snprintf(path, sizeof(path), "%s/config/examples/two-socket-100g.conf", AW_SOURCE_ROOT);
	text = read_all(path, &len);
	snprintf(path, sizeof(path), "%s/config/examples/two-socket-100g.topo", AW_SOURCE_ROOT);
	topo_text = read_all(path, NULL);
	r = run_sets(text, len, topo_text, sets, 2);
	assert_int_equal(r->valid_rc, -EINVAL);
	EXPECT_AT(r, "--set group.1.lcores=18-33", "CPUs 32-33 are not on node 0");
	EXPECT_AT(r, "--set group.1.lcores=18-33", "CPU 32 is on node 1");
	EXPECT_AT(r, "--set group.1.lcores=18-33", "use CPUs of node 0 (0-31,64-95) only");
	EXPECT_AT(r, "--set group.3.kv_cache=200G", "node 1 needs 298.8 GiB");
	EXPECT_AT(r, "--set group.3.kv_cache=200G", "but has 256 GiB");
	run_free(r);
	{
		const char *s2[] = {"port.1.rx_queues=1024", "dataplane.lcores=2-3,34-35,64"};

		r = run_sets(text, len, topo_text, s2, 2);
		/* 5 TX queues is fine on mlx5; the warning-free plan has 5 dataplane lcores */
		assert_int_equal(r->valid_rc, 0);
		assert_int_equal(r->plan.n_dataplane, 5);
		run_free(r);
	}
	free(text);
	free(topo_text);
}

/* The EAL arguments are the plan's, in one freeable block. */
static void test_eal_argv(void **state)
{
	const char *sets[] = {"eal.args=--log-level=pmd.net.tap:8   --huge-unlink",
			      "eal.hugepages=false", "log.dpdk_level=debug",
			      "port.1.device=0000:03:00.0", "port.1.address=10.98.0.2/24"};
	const char *want[] = {"prog",
			      "--lcores",
			      "0@0,1@1,2@2,3@3",
			      "--main-lcore",
			      "0",
			      "--file-prefix",
			      "agentwire",
			      "--no-huge",
			      "-m",
			      "1024",
			      "--vdev=net_tap0,iface=aw0",
			      "-a",
			      "0000:03:00.0",
			      "--log-level=8",
			      "--log-level=pmd.net.tap:8",
			      "--huge-unlink"};
	struct run *r = run_sets(MIN, strlen(MIN), NULL, sets, 5);
	char **argv = NULL;
	int argc = 0;

	(void)state;
	dump_on_fail(r, r->valid_rc == 0);
	assert_int_equal(r->valid_rc, 0);
	assert_int_equal(aw_conf_eal_argv(r->conf, &r->plan, "prog", &argv, &argc), 0);
	assert_int_equal(argc, sizeof(want) / sizeof(want[0]));
	for (int i = 0; i < argc; i++)
		assert_string_equal(argv[i], want[i]);
	assert_null(argv[argc]);
	/* rte_eal_init() overwrites pointers; freeing must not depend on them */
	argv[3] = argv[0];
	aw_conf_eal_argv_free(argv);
	run_free(r);
}

/* ---- command line -------------------------------------------------------------------- */

static int cli(int argc, const char *const *argv, struct aw_conf_cli *c, char **out, char **err)
{
	size_t ol = 0, el = 0;
	FILE *fo = open_memstream(out, &ol), *fe = open_memstream(err, &el);
	int rc;

	assert_non_null(fo);
	assert_non_null(fe);
	rc = aw_conf_cli_parse(argc, (char **)argv, c, fo, fe);
	fclose(fo);
	fclose(fe);
	return rc;
}

static void test_cli(void **state)
{
	static const struct {
		int argc;
		const char *argv[8];
		int rc;
		const char *needle;
	} cases[] = {
		{1, {"agentwire"}, 2, "no config file: give -c FILE"},
		{2, {"agentwire", "--help"}, 0, "usage: agentwire -c FILE"},
		{2, {"agentwire", "-V"}, 0, "agentwire 0."},
		{2, {"agentwire", "--bogus"}, 2, "unknown option '--bogus'"},
		{2, {"agentwire", "-c"}, 2, "needs an argument"},
		{4, {"agentwire", "-c", "x.conf", "extra"}, 2, "unexpected argument 'extra'"},
		{5,
		 {"agentwire", "-c", "x.conf", "--set", "burst=3"},
		 2,
		 "expected section.key=value"},
		{5,
		 {"agentwire", "-c", "x.conf", "--set", "dataplane.burst"},
		 2,
		 "expected section.key=value"},
		{5, {"agentwire", "-c", "a", "-c", "b"}, 2, "-c given twice"},
		{5,
		 {"agentwire", "-c", "x.conf", "--topology", "t"},
		 2,
		 "--topology only works with --check"},
	};
	struct aw_conf_cli c;

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL, *err = NULL;
		int rc = cli(cases[i].argc, cases[i].argv, &c, &out, &err);

		if (rc != cases[i].rc ||
		    (!strstr(out, cases[i].needle) && !strstr(err, cases[i].needle))) {
			fprintf(stderr, "case %u: rc %d, out '%s', err '%s'\n", i, rc, out, err);
			fail();
		}
		free(out);
		free(err);
	}
	{
		const char *argv[] = {"agentwire", "--check", "-c", "x.conf",
				      "--set",	   "a.b=1",   "-s", "c.1.d=2"};
		char *out = NULL, *err = NULL;

		assert_int_equal(cli(8, argv, &c, &out, &err), AW_CONF_CLI_RUN);
		assert_true(c.check);
		assert_string_equal(c.config, "x.conf");
		assert_int_equal(c.n_sets, 2);
		assert_string_equal(c.sets[0], "a.b=1");
		assert_string_equal(c.sets[1], "c.1.d=2");
		free(c.sets);
		free(out);
		free(err);
	}
}

/* agentwire --check end to end, on files: 0 for a valid config, 1 otherwise. */
static void test_check_main(void **state)
{
	char conf_path[] = "/tmp/test-conf-XXXXXX", topo_path[] = "/tmp/test-topo-XXXXXX";
	struct aw_conf_cli c = {0};
	char *out = NULL, *err = NULL;
	size_t ol = 0, el = 0;
	const char *sets[] = {"group.0.lcores=1"};
	FILE *fo, *fe;
	int fd;

	(void)state;
	fd = mkstemp(conf_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, MIN, strlen(MIN)), (ssize_t)strlen(MIN));
	close(fd);
	fd = mkstemp(topo_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, TOPO_1N, strlen(TOPO_1N)), (ssize_t)strlen(TOPO_1N));
	close(fd);

	c.config = conf_path;
	c.check = true;
	c.topology = topo_path;
	fo = open_memstream(&out, &ol);
	fe = open_memstream(&err, &el);
	assert_int_equal(aw_conf_check_main(&c, fo, fe), 0);
	fclose(fo);
	fclose(fe);
	assert_non_null(strstr(out, "agentwire plan for"));
	assert_non_null(strstr(out, ": valid"));
	assert_non_null(strstr(out, "EAL: --lcores 0@0,1@1,2@2,3@3"));
	free(out);
	free(err);

	c.sets = sets;
	c.n_sets = 1;
	fo = open_memstream(&out, &ol);
	fe = open_memstream(&err, &el);
	assert_int_equal(aw_conf_check_main(&c, fo, fe), 1);
	fclose(fo);
	fclose(fe);
	assert_non_null(strstr(err, "--set group.0.lcores=1: error: [group 0] lcores: CPU 1 is "
				    "already used by [dataplane] lcores"));
	assert_non_null(strstr(err, "invalid configuration"));
	assert_null(strstr(out, "agentwire plan for"));
	free(out);
	free(err);

	/* a config file that does not exist */
	c.config = "/nonexistent/agentwire.conf";
	c.n_sets = 0;
	fo = open_memstream(&out, &ol);
	fe = open_memstream(&err, &el);
	assert_int_equal(aw_conf_check_main(&c, fo, fe), 1);
	fclose(fo);
	fclose(fe);
	assert_non_null(strstr(err, "cannot open: No such file or directory"));
	free(out);
	free(err);
	unlink(conf_path);
	unlink(topo_path);
}

/* ---- topology --------------------------------------------------------------------------- */

static void put(const char *dir, const char *rel, const char *text)
{
	char path[512], cmd[600];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s' && rmdir '%s/%s'", dir, rel, dir, rel);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_topo_discover_fake_sysfs(void **state)
{
	char dir[] = "/tmp/test-conf-sysfs-XXXXXX", cmd[600];
	struct aw_topo *t = NULL;
	struct aw_err e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	put(dir, "devices/system/node/node0/cpulist", "0-3,8-11\n");
	put(dir, "devices/system/node/node0/meminfo",
	    "Node 0 MemTotal:       65536000 kB\nNode 0 MemFree: 1 kB\n");
	put(dir, "devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "512\n");
	put(dir, "devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages", "2\n");
	put(dir, "devices/system/node/node1/cpulist", "4-7,12-15\n");
	put(dir, "devices/system/node/node1/meminfo", "Node 1 MemTotal:       1024 kB\n");
	put(dir, "devices/system/node/node2/cpulist", "\n"); /* memory-only node */
	assert_int_equal(aw_topo_discover(dir, &t, &e), 0);
	assert_int_equal(t->n_nodes, 3);
	assert_int_equal(aw_cpuset_count(&t->nodes[0].cpus), 8);
	assert_int_equal(aw_topo_cpu_node(t, 12), 1);
	assert_int_equal(aw_topo_cpu_node(t, 16), -1);
	assert_int_equal(t->nodes[0].memory, 65536000ull * 1024);
	assert_int_equal(t->nodes[0].hugepages, (512ull << 21) + (2ull << 30));
	assert_int_equal(t->nodes[1].memory, 1024ull * 1024);
	assert_int_equal(aw_cpuset_count(&t->nodes[2].cpus), 0);
	assert_int_equal(aw_cpuset_count(&t->online), 16);
	aw_topo_free(t);

	/* a kernel without NUMA: one node from the online CPUs */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/devices/system/node'", dir);
	assert_int_equal(system(cmd), 0);
	put(dir, "devices/system/cpu/online", "0-5\n");
	assert_int_equal(aw_topo_discover(dir, &t, &e), 0);
	assert_int_equal(t->n_nodes, 1);
	assert_int_equal(aw_cpuset_count(&t->nodes[0].cpus), 6);
	aw_topo_free(t);

	/* nothing at all */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(aw_topo_discover(dir, &t, &e), -ENOENT);
}

static void test_topo_discover_real(void **state)
{
	struct aw_topo *t = NULL;
	struct aw_err e;

	(void)state;
	if (access("/sys/devices/system/cpu/online", R_OK) != 0)
		AW_SKIP("no /sys/devices/system/cpu/online");
	assert_int_equal(aw_topo_discover("/sys", &t, &e), 0);
	assert_true(t->n_nodes >= 1);
	assert_true(aw_cpuset_count(&t->online) >= 1);
	assert_true(aw_cpuset_count(&t->allowed) >= 1);
	assert_true(t->nodes[0].memory > 0);
	aw_topo_free(t);
}

static void test_topo_description_errors(void **state)
{
	static const struct {
		const char *text;
		const char *needle;
	} cases[] = {
		{"", "file is empty"},
		{"[node 0]\ncpus = 0-3\n[node 1]\ncpus = 3-4\n", "shares CPUs with another node"},
		{"[node 0]\ncpus = x\n", "bad value 'x' for cpus"},
		{"[node 0]\nmemory = -1\n", "bad value '-1' for memory"},
		{"[node 0]\nmemroy = 1G\n", "unknown key 'memroy'"},
		{"[node 99]\n", "node 99 out of range"},
		{"[nodes 0]\n", "unknown section [nodes 0]"},
		{"[port 0000:01:00.0]\nmax_rx_queues = lots\n", "bad port key or value"},
		{"[file /x]\nsize = 1Q\n", "[file] takes 'size = BYTES'"},
		{"[file /x]\nsize = 1M\n", "no [node N] section"},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aw_topo *t = NULL;
		struct aw_err e = {0};

		assert_int_equal(
			aw_topo_load_buffer("x.topo", cases[i].text, strlen(cases[i].text), &t, &e),
			-EINVAL);
		if (!strstr(e.msg, cases[i].needle)) {
			fprintf(stderr, "case %u: '%s'\n", i, e.msg);
			fail();
		}
	}
}

static void test_cpuset(void **state)
{
	struct aw_cpuset s;
	struct aw_err e;
	char buf[64];

	(void)state;
	assert_int_equal(aw_cpuset_parse("2-5,8", &s, &e), 0);
	assert_int_equal(aw_cpuset_count(&s), 5);
	assert_true(aw_cpuset_has(&s, 8));
	assert_false(aw_cpuset_has(&s, 6));
	assert_int_equal(aw_cpuset_first(&s), 2);
	aw_cpuset_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "2-5,8");
	assert_int_equal(aw_cpuset_parse(" 0 , 1023 ", &s, &e), 0);
	aw_cpuset_format(&s, buf, sizeof(buf));
	assert_string_equal(buf, "0,1023");
	assert_int_equal(aw_cpuset_parse("", &s, &e), -EINVAL);
	assert_int_equal(aw_cpuset_parse("1,", &s, &e), -EINVAL);
	assert_int_equal(aw_cpuset_parse("1-", &s, &e), -EINVAL);
	assert_int_equal(aw_cpuset_parse("1024", &s, &e), -EINVAL);
	assert_int_equal(aw_cpuset_parse("99999999999999999999999", &s, &e), -EINVAL);
	assert_int_equal(aw_cpuset_parse("1-3,2", &s, &e), -EINVAL);
	assert_string_equal(e.msg, "CPU 2 is listed twice");
	/* formatting truncates rather than overflows */
	assert_int_equal(aw_cpuset_parse("0,2,4,6,8,10,12,14", &s, &e), 0);
	assert_int_equal(aw_cpuset_format(&s, buf, 8), 7);
	assert_int_equal(strlen(buf), 7);
}

/* ---- the key table and docs/CONFIG.md ------------------------------------------------------ */

/* Every default parses and loads through the same path as a user's value. */
static void test_defaults_parse(void **state)
{
	(void)state;
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++) {
		char set[300];
		const char *sets[1] = {set};
		struct run *r;

		assert_non_null(k->doc);
		assert_true(strlen(k->doc) > 10);
		if (!k->def)
			continue;
		snprintf(set, sizeof(set), "%s%s.%s=%s", k->section,
			 strcmp(k->section, "port") == 0 || strcmp(k->section, "group") == 0 ? ".0"
											     : "",
			 k->name, k->def);
		r = run_sets(MIN, strlen(MIN), NULL, sets, 1);
		if (r->load_rc != 0) {
			fprintf(stderr, "default of %s.%s does not load:\n", k->section, k->name);
			aw_conf_report_print(&r->rep, stderr);
			fail();
		}
		run_free(r);
	}
}

/* docs/CONFIG.md documents every key exactly as the table says, and nothing else. */
static void test_docs_cover_every_key(void **state)
{
	char path[512], row[1024], heading[64];
	char *doc, *line, *save = NULL;
	unsigned rows = 0, keys = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/docs/CONFIG.md", AW_SOURCE_ROOT);
	doc = read_all(path, NULL);
	for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++) {
		const char *sec, *next;
		size_t end;

		keys++;
		aw_conf_doc_row(k, row, sizeof(row));
		snprintf(heading, sizeof(heading), "\n### [%s%s]\n", k->section,
			 strcmp(k->section, "port") == 0 || strcmp(k->section, "group") == 0 ? " N"
											     : "");
		sec = strstr(doc, heading);
		if (!sec) {
			fprintf(stderr, "docs/CONFIG.md has no heading '%s'\n", heading + 1);
			fail();
			continue; /* not reached: fail() is not marked noreturn */
		}
		next = strstr(sec + 1, "\n### ");
		end = next ? (size_t)(next - sec) : strlen(sec);
		if (!memmem(sec, end, row, strlen(row))) {
			fprintf(stderr, "docs/CONFIG.md, section [%s], lacks the row:\n%s\n",
				k->section, row);
			fail();
		}
	}
	/* no row for a key the code does not know */
	for (line = strtok_r(doc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64];

		if (sscanf(line, "| `%63[a-z_0-9]` |", name) == 1 && strstr(line, "|") == line) {
			bool known = false;

			for (const struct aw_conf_key *k = aw_conf_keys; k->name; k++)
				if (strcmp(k->name, name) == 0)
					known = true;
			if (!known) {
				fprintf(stderr, "docs/CONFIG.md documents unknown key '%s'\n",
					name);
				fail();
			}
			rows++;
		}
	}
	assert_true(rows >= keys);
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_valid),
		cmocka_unit_test(test_syntax_variants),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_binary_garbage),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_duplicate_spellings_and_limits),
		cmocka_unit_test(test_line_syntax),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_did_you_mean),
		cmocka_unit_test(test_all_errors_at_once),
		cmocka_unit_test(test_many_errors_capped),
		cmocka_unit_test(test_cores_used_twice),
		cmocka_unit_test(test_cpus_exist),
		cmocka_unit_test(test_cross_node_groups),
		cmocka_unit_test(test_port_capabilities),
		cmocka_unit_test(test_memory_per_node),
		cmocka_unit_test(test_model_file),
		cmocka_unit_test(test_other_checks),
		cmocka_unit_test(test_set_overrides),
		cmocka_unit_test(test_example_two_socket),
		cmocka_unit_test(test_example_memif),
		cmocka_unit_test(test_example_demo),
		cmocka_unit_test(test_example_two_socket_broken),
		cmocka_unit_test(test_eal_argv),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_check_main),
		cmocka_unit_test(test_topo_discover_fake_sysfs),
		cmocka_unit_test(test_topo_discover_real),
		cmocka_unit_test(test_topo_description_errors),
		cmocka_unit_test(test_cpuset),
		cmocka_unit_test(test_defaults_parse),
		cmocka_unit_test(test_docs_cover_every_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
