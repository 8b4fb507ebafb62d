/* topo.c — CPUs and memory per NUMA node, discovered from sysfs or read
 * from a description (see topo.h). The checker in conf-check.c only ever
 * sees a struct aw_topo, so tests describe two-socket servers on a 2-CPU VM.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"
#include "topo.h"

struct aw_topo_port {
	char device[AW_CONF_STR_LEN];
	struct aw_conf_port_caps caps;
};

struct aw_topo_file {
	char path[AW_CONF_PATH_LEN];
	uint64_t size;
};

/* ---- CPU sets ------------------------------------------------------------- */

unsigned aw_cpuset_count(const struct aw_cpuset *s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < AW_TOPO_MAX_CPUS / 64; i++)
		n += (unsigned)__builtin_popcountll(s->bits[i]);
	return n;
}

int aw_cpuset_first(const struct aw_cpuset *s)
{
	for (unsigned i = 0; i < AW_TOPO_MAX_CPUS / 64; i++)
		if (s->bits[i])
			return (int)(i * 64 + (unsigned)__builtin_ctzll(s->bits[i]));
	return -1;
}

static int read_cpu(const char **p, unsigned *ret, struct aw_err *err)
{
	unsigned long v = 0;
	const char *q = *p;

	while (*q == ' ' || *q == '\t')
		q++;
	if (*q == '-')
		return aw_err_set(err, EINVAL, "negative CPU number in CPU list");
	if (!isdigit((unsigned char)*q))
		return aw_err_set(err, EINVAL, "expected a CPU number at '%.20s'",
				  *q ? q : "(end)");
	for (; isdigit((unsigned char)*q); q++) {
		v = v * 10 + (unsigned long)(*q - '0');
		if (v >= AW_TOPO_MAX_CPUS)
			return aw_err_set(err, EINVAL, "CPU number too large (limit %u)",
					  AW_TOPO_MAX_CPUS - 1);
	}
	while (*q == ' ' || *q == '\t')
		q++;
	*ret = (unsigned)v;
	*p = q;
	return 0;
}

int aw_cpuset_parse(const char *s, struct aw_cpuset *ret, struct aw_err *err)
{
	struct aw_cpuset set;
	const char *p = s;

	memset(&set, 0, sizeof(set));
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return aw_err_set(err, EINVAL, "empty CPU list");
	for (;;) {
		unsigned a, b;

		if (read_cpu(&p, &a, err) < 0)
			return -EINVAL;
		b = a;
		if (*p == '-') {
			p++;
			if (read_cpu(&p, &b, err) < 0)
				return -EINVAL;
			if (b < a)
				return aw_err_set(err, EINVAL, "reversed range %u-%u (write %u-%u)",
						  a, b, b, a);
		}
		for (unsigned c = a; c <= b; c++) {
			if (aw_cpuset_has(&set, c))
				return aw_err_set(err, EINVAL, "CPU %u is listed twice", c);
			aw_cpuset_add(&set, c);
		}
		if (!*p)
			break;
		if (*p != ',')
			return aw_err_set(err, EINVAL, "unexpected '%.20s' in CPU list", p);
		p++;
	}
	*ret = set;
	return 0;
}

int aw_cpuset_format(const struct aw_cpuset *s, char *buf, unsigned size)
{
	unsigned n = 0;

	if (size == 0)
		return 0;
	buf[0] = '\0';
	for (unsigned c = 0; c < AW_TOPO_MAX_CPUS; c++) {
		unsigned e = c;
		int w;

		if (!aw_cpuset_has(s, c))
			continue;
		while (e + 1 < AW_TOPO_MAX_CPUS && aw_cpuset_has(s, e + 1))
			e++;
		if (e == c)
			w = snprintf(buf + n, size - n, "%s%u", n ? "," : "", c);
		else
			w = snprintf(buf + n, size - n, "%s%u-%u", n ? "," : "", c, e);
		if (w < 0 || (unsigned)w >= size - n) {
			buf[size - 1] = '\0';
			return (int)size - 1;
		}
		n += (unsigned)w;
		c = e;
	}
	return (int)n;
}

/* ---- discovery ------------------------------------------------------------ */

static int read_small(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, size - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* "Node 0 MemTotal:  1234 kB" or "MemTotal:  1234 kB" */
static uint64_t meminfo_total(const char *path)
{
	char buf[8192], *p;
	unsigned long long kb;

	if (read_small(path, buf, sizeof(buf)) < 0)
		return 0;
	p = strstr(buf, "MemTotal:");
	if (!p || sscanf(p + 9, "%llu", &kb) != 1)
		return 0;
	return (uint64_t)kb * 1024;
}

/* Hugepage bytes reserved on one node: every page size's nr_hugepages. */
static uint64_t node_hugepages(const char *dir)
{
	char path[512], buf[64];
	struct dirent *de;
	uint64_t total = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/hugepages", dir);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned long long kb, n;

		if (sscanf(de->d_name, "hugepages-%llukB", &kb) != 1)
			continue;
		snprintf(path, sizeof(path), "%s/hugepages/%s/nr_hugepages", dir, de->d_name);
		if (read_small(path, buf, sizeof(buf)) == 0 && sscanf(buf, "%llu", &n) == 1)
			total += (uint64_t)n * kb * 1024;
	}
	closedir(d);
	return total;
}

int aw_topo_discover(const char *sysfs, struct aw_topo **ret, struct aw_err *err)
{
	struct aw_topo *t = calloc(1, sizeof(*t));
	char path[512], buf[4096];
	struct aw_err e;
	cpu_set_t aff;

	if (!t)
		return aw_err_set(err, ENOMEM, "out of memory");
	snprintf(t->source, sizeof(t->source), "%s", sysfs);
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++) {
		struct aw_topo_node *nd = &t->nodes[n];
		char dir[300];

		snprintf(dir, sizeof(dir), "%s/devices/system/node/node%u", sysfs, n);
		snprintf(path, sizeof(path), "%s/cpulist", dir);
		if (read_small(path, buf, sizeof(buf)) < 0)
			continue;
		nd->present = true;
		/* a memory-only node has an empty cpulist */
		if (buf[0] && aw_cpuset_parse(buf, &nd->cpus, &e) < 0) {
			aw_topo_free(t);
			return aw_err_set(err, EINVAL, "%s: %s", path, e.msg);
		}
		snprintf(path, sizeof(path), "%s/meminfo", dir);
		nd->memory = meminfo_total(path);
		nd->hugepages = node_hugepages(dir);
		t->n_nodes = n + 1;
		for (unsigned i = 0; i < AW_TOPO_MAX_CPUS / 64; i++)
			t->online.bits[i] |= nd->cpus.bits[i];
	}
	if (t->n_nodes == 0) {
		/* kernel without NUMA: one node with every online CPU */
		struct aw_topo_node *nd = &t->nodes[0];

		snprintf(path, sizeof(path), "%s/devices/system/cpu/online", sysfs);
		if (read_small(path, buf, sizeof(buf)) < 0 ||
		    aw_cpuset_parse(buf, &nd->cpus, &e) < 0) {
			aw_topo_free(t);
			return aw_err_set(err, ENOENT, "%s: cannot read the online CPUs", path);
		}
		nd->present = true;
		nd->memory = meminfo_total("/proc/meminfo");
		snprintf(path, sizeof(path), "%s/kernel/mm", sysfs);
		nd->hugepages = node_hugepages(path);
		t->n_nodes = 1;
		t->online = nd->cpus;
	}
	t->allowed = t->online;
	if (strcmp(sysfs, "/sys") == 0 && sched_getaffinity(0, sizeof(aff), &aff) == 0) {
		memset(&t->allowed, 0, sizeof(t->allowed));
		for (unsigned c = 0; c < AW_TOPO_MAX_CPUS && c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &aff))
				aw_cpuset_add(&t->allowed, c);
	}
	*ret = t;
	return 0;
}

/* ---- description ------------------------------------------------------------ */

struct topo_ctx {
	struct aw_err *err;
	const char *name;
	bool failed;
};

static void topo_problem(void *ctx, unsigned line, const char *msg, const char *fix)
{
	struct topo_ctx *c = ctx;

	(void)fix;
	if (c->failed)
		return;
	c->failed = true;
	aw_err_set(c->err, EINVAL, "%s:%u: %s", c->name, line, msg);
}

static int topo_uint(const char *v, uint32_t *ret)
{
	char *end;
	unsigned long x;

	if (!isdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || x > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)x;
	return 0;
}

static int topo_port_key(struct aw_conf_port_caps *c, const char *k, const char *v)
{
	static const struct {
		const char *name;
		size_t off;
	} f[] = {
#define F(x) {#x, offsetof(struct aw_conf_port_caps, x)}
		F(max_rx_queues), F(max_tx_queues), F(rx_desc_min), F(rx_desc_max),
		F(rx_desc_align), F(tx_desc_min),   F(tx_desc_max), F(tx_desc_align),
		F(max_mtu),	  F(speed_mbps),
#undef F
	};

	if (strcmp(k, "driver") == 0) {
		snprintf(c->driver, sizeof(c->driver), "%s", v);
		return 0;
	}
	if (strcmp(k, "node") == 0) {
		uint32_t n;

		if (topo_uint(v, &n) < 0 || n >= AW_TOPO_MAX_NODES)
			return -EINVAL;
		c->node = (int32_t)n;
		return 0;
	}
	for (unsigned i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (strcmp(k, f[i].name) == 0)
			return topo_uint(v, (uint32_t *)((char *)c + f[i].off));
	return -ENOENT;
}

int aw_topo_load_buffer(const char *name, const char *data, size_t len, struct aw_topo **ret,
			struct aw_err *err)
{
	struct topo_ctx ctx = {.err = err, .name = name};
	struct ini ini = {0};
	struct aw_topo *t;
	char msg[160];
	int rc;

	t = calloc(1, sizeof(*t));
	if (!t)
		return aw_err_set(err, ENOMEM, "out of memory");
	snprintf(t->source, sizeof(t->source), "%s", name);
	rc = ini_parse(data, len, &ini, topo_problem, &ctx);
	if (rc < 0) {
		aw_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	if (ctx.failed) {
		rc = -EINVAL;
		goto fail;
	}
	for (unsigned i = 0; i < ini.n; i++) {
		struct ini_section *s = &ini.s[i];
		unsigned node;
		int n = 0;

		if (sscanf(s->name, "node %u%n", &node, &n) == 1 && (size_t)n == strlen(s->name)) {
			struct aw_topo_node *nd;

			if (node >= AW_TOPO_MAX_NODES) {
				rc = aw_err_set(err, EINVAL, "%s:%u: node %u out of range", name,
						s->line, node);
				goto fail;
			}
			nd = &t->nodes[node];
			nd->present = true;
			if (node + 1 > t->n_nodes)
				t->n_nodes = node + 1;
			for (unsigned j = 0; j < s->n; j++) {
				struct ini_entry *e = &s->e[j];
				struct aw_err ce;
				int bad = 0;

				if (strcmp(e->key, "cpus") == 0)
					bad = e->value[0] &&
					      aw_cpuset_parse(e->value, &nd->cpus, &ce) < 0;
				else if (strcmp(e->key, "memory") == 0)
					bad = conf_parse_size(e->value, &nd->memory, msg,
							      sizeof(msg)) < 0;
				else if (strcmp(e->key, "hugepages") == 0)
					bad = conf_parse_size(e->value, &nd->hugepages, msg,
							      sizeof(msg)) < 0;
				else {
					rc = aw_err_set(err, EINVAL,
							"%s:%u: unknown key '%s' in [%s] (cpus, "
							"memory, hugepages)",
							name, e->line, e->key, s->name);
					goto fail;
				}
				if (bad) {
					rc = aw_err_set(err, EINVAL,
							"%s:%u: bad value '%.40s' for %s", name,
							e->line, e->value, e->key);
					goto fail;
				}
			}
			for (unsigned w = 0; w < AW_TOPO_MAX_CPUS / 64; w++) {
				if (t->online.bits[w] & nd->cpus.bits[w]) {
					rc = aw_err_set(err, EINVAL,
							"%s:%u: [%s] shares CPUs with another node",
							name, s->line, s->name);
					goto fail;
				}
				t->online.bits[w] |= nd->cpus.bits[w];
			}
		} else if (strncmp(s->name, "port ", 5) == 0) {
			struct aw_topo_port *p;
			void *np = realloc(t->ports, (t->n_ports + 1) * sizeof(*t->ports));

			if (!np) {
				rc = aw_err_set(err, ENOMEM, "out of memory");
				goto fail;
			}
			t->ports = np;
			p = &t->ports[t->n_ports++];
			memset(p, 0, sizeof(*p));
			p->caps.node = -1;
			snprintf(p->device, sizeof(p->device), "%s", s->name + 5);
			for (unsigned j = 0; j < s->n; j++)
				if (topo_port_key(&p->caps, s->e[j].key, s->e[j].value) < 0) {
					rc = aw_err_set(err, EINVAL,
							"%s:%u: bad port key or value '%s = %.40s'",
							name, s->e[j].line, s->e[j].key,
							s->e[j].value);
					goto fail;
				}
		} else if (strncmp(s->name, "file ", 5) == 0) {
			struct aw_topo_file *f;
			void *np = realloc(t->files, (t->n_files + 1) * sizeof(*t->files));

			if (!np) {
				rc = aw_err_set(err, ENOMEM, "out of memory");
				goto fail;
			}
			t->files = np;
			f = &t->files[t->n_files++];
			memset(f, 0, sizeof(*f));
			snprintf(f->path, sizeof(f->path), "%s", s->name + 5);
			for (unsigned j = 0; j < s->n; j++)
				if (strcmp(s->e[j].key, "size") != 0 ||
				    conf_parse_size(s->e[j].value, &f->size, msg, sizeof(msg)) <
					    0) {
					rc = aw_err_set(err, EINVAL,
							"%s:%u: [file] takes 'size = BYTES'", name,
							s->e[j].line);
					goto fail;
				}
		} else {
			rc = aw_err_set(err, EINVAL,
					"%s:%u: unknown section [%s] ([node N], [port DEVICE], "
					"[file PATH])",
					name, s->line, s->name);
			goto fail;
		}
	}
	if (t->n_nodes == 0) {
		rc = aw_err_set(err, EINVAL, "%s: no [node N] section", name);
		goto fail;
	}
	t->allowed = t->online;
	ini_fini(&ini);
	*ret = t;
	return 0;
fail:
	ini_fini(&ini);
	aw_topo_free(t);
	return rc < 0 ? rc : -EINVAL;
}

int aw_topo_load_file(const char *path, struct aw_topo **ret, struct aw_err *err)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;
	int rc;

	if (!f)
		return aw_err_set(err, errno, "%s: %s", path, strerror(errno));
	buf = malloc(1u << 20);
	if (!buf) {
		fclose(f);
		return aw_err_set(err, ENOMEM, "out of memory");
	}
	n = fread(buf, 1, 1u << 20, f);
	if (!feof(f)) {
		fclose(f);
		free(buf);
		return aw_err_set(err, EFBIG, "%s: larger than 1 MiB", path);
	}
	fclose(f);
	rc = aw_topo_load_buffer(path, buf, n, ret, err);
	free(buf);
	return rc;
}

void aw_topo_free(struct aw_topo *t)
{
	if (!t)
		return;
	free(t->ports);
	free(t->files);
	free(t);
}

int aw_topo_cpu_node(const struct aw_topo *t, unsigned cpu)
{
	for (unsigned n = 0; n < t->n_nodes; n++)
		if (t->nodes[n].present && aw_cpuset_has(&t->nodes[n].cpus, cpu))
			return (int)n;
	return -1;
}

bool aw_topo_port_caps(const struct aw_topo *t, const char *device, struct aw_conf_port_caps *caps)
{
	for (unsigned i = 0; i < t->n_ports; i++)
		if (strcmp(t->ports[i].device, device) == 0) {
			*caps = t->ports[i].caps;
			return true;
		}
	return false;
}

bool aw_topo_file_size(const struct aw_topo *t, const char *path, uint64_t *size)
{
	for (unsigned i = 0; i < t->n_files; i++)
		if (strcmp(t->files[i].path, path) == 0) {
			*size = t->files[i].size;
			return true;
		}
	return false;
}
