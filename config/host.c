/* host.c — the machine's readiness for a config (host.h). */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "topo.h"

struct ctx {
	const struct aw_host_env *env;
	FILE *out;
	unsigned blockers, warnings;
};

enum sev { OK, WARN, BLOCK };

static void finding(struct ctx *c, enum sev s, const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void finding(struct ctx *c, enum sev s, const char *fix, const char *fmt, ...)
{
	static const char *const tag[] = {"ok", "warning", "BLOCKER"};
	va_list ap;

	fprintf(c->out, "host: %s: ", tag[s]);
	va_start(ap, fmt);
	vfprintf(c->out, fmt, ap);
	va_end(ap);
	fputc('\n', c->out);
	if (fix && s != OK)
		fprintf(c->out, "    fix: %s\n", fix);
	if (s == WARN)
		c->warnings++;
	else if (s == BLOCK)
		c->blockers++;
}

static void path_of(const struct ctx *c, const char *rel, char *buf, size_t len)
{
	const char *r = c->env->root;
	size_t n = strlen(r);

	snprintf(buf, len, "%s%s%s", r, n && r[n - 1] == '/' ? "" : "/", rel);
}

/* Read the file 'rel' under root into buf (trailing newlines cut).
 * Returns 0 or -errno. */
static int slurp(const struct ctx *c, const char *rel, char *buf, size_t len)
{
	char p[PATH_MAX];
	FILE *f;
	size_t n;

	path_of(c, rel, p, sizeof(p));
	f = fopen(p, "r");
	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

static bool exists(const struct ctx *c, const char *rel)
{
	char p[PATH_MAX];

	path_of(c, rel, p, sizeof(p));
	return access(p, F_OK) == 0;
}

static double gib(uint64_t b)
{
	return (double)b / (double)(1ull << 30);
}

static bool is_vdev(const char *dev)
{
	return strncmp(dev, "net_", 4) == 0 || strncmp(dev, "eth_", 4) == 0;
}

/* --- hugepages --------------------------------------------------------------- */

/* Free hugepage bytes in directory 'rel' (hugepages-SkB/ entries); -1 if none. */
static int64_t free_huge(const struct ctx *c, const char *rel)
{
	char p[PATH_MAX], f[PATH_MAX + 64], v[64];
	struct dirent *de;
	int64_t total = -1;
	DIR *d;

	path_of(c, rel, p, sizeof(p));
	d = opendir(p);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		unsigned long kb;

		if (sscanf(de->d_name, "hugepages-%lukB", &kb) != 1)
			continue;
		snprintf(f, sizeof(f), "%s/%s/free_hugepages", rel, de->d_name);
		if (slurp(c, f, v, sizeof(v)) < 0)
			continue;
		if (total < 0)
			total = 0;
		total += (int64_t)(strtoull(v, NULL, 10) * kb * 1024);
	}
	closedir(d);
	return total;
}

static bool hugetlbfs_mounted(const struct ctx *c)
{
	char *buf = malloc(65536);
	bool found;

	if (!buf)
		return false;
	found = slurp(c, "proc/mounts", buf, 65536) == 0 && strstr(buf, " hugetlbfs ");
	free(buf);
	return found;
}

static void check_hugepages(struct ctx *c, const struct aw_conf *conf,
			    const struct aw_conf_plan *plan)
{
	char fix[256], rel[128];
	bool numa = exists(c, "sys/devices/system/node/node0");

	if (!conf->eal.hugepages) {
		finding(c, WARN,
			"set [eal] hugepages = true and reserve hugepages (docs/OPERATIONS.md)",
			"hugepages: the config runs DPDK with --no-huge (4 KiB pages: fine for "
			"tests, slower and not DMA-safe for physical NICs)");
		return;
	}
	if (!hugetlbfs_mounted(c))
		finding(c, BLOCK, "dpdk-hugepages.py --mount (or enable dev-hugepages.mount)",
			"hugepages: no hugetlbfs mounted (proc/mounts)");
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++) {
		uint64_t need = plan->mem[n].total;
		int64_t have;

		if (!need)
			continue;
		if (numa)
			snprintf(rel, sizeof(rel), "sys/devices/system/node/node%u/hugepages", n);
		else
			snprintf(rel, sizeof(rel), "sys/kernel/mm/hugepages");
		have = free_huge(c, rel);
		if (have < 0)
			have = 0;
		snprintf(fix, sizeof(fix),
			 "dpdk-hugepages.py --pagesize 1G --node %u --reserve %.0fG (or "
			 "hugepagesz=1G hugepages=N on the kernel command line)",
			 n, gib(need) + 1.0);
		finding(c, (uint64_t)have >= need ? OK : BLOCK, fix,
			"hugepages: node %u has %.1f GiB free, the plan needs %.1f GiB", n,
			gib((uint64_t)have), gib(need));
	}
}

/* --- NICs and the IOMMU ---------------------------------------------------------- */

static void check_ports(struct ctx *c, const struct aw_conf *conf)
{
	char rel[256], p[PATH_MAX], link[PATH_MAX], fix[256], v[16];
	bool any_pci = false, iommu;
	ssize_t n;

	for (unsigned i = 0; i < AW_CONF_MAX_PORTS; i++) {
		const char *dev = conf->ports[i].device;
		const char *drv;

		if (!conf->ports[i].present)
			continue;
		if (is_vdev(dev)) {
			finding(c, OK, NULL, "[port %u] %s is a virtual device (no NIC to bind)", i,
				dev);
			continue;
		}
		any_pci = true;
		snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%.*s", (int)strcspn(dev, ","), dev);
		if (!exists(c, rel)) {
			finding(c, BLOCK, "check the PCI address with lspci -D",
				"[port %u] no PCI device %s on this machine", i, dev);
			continue;
		}
		snprintf(rel + strlen(rel), sizeof(rel) - strlen(rel), "/driver");
		path_of(c, rel, p, sizeof(p));
		n = readlink(p, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		drv = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
		snprintf(fix, sizeof(fix), "driverctl set-override %.*s vfio-pci",
			 (int)strcspn(dev, ","), dev);
		if (strcmp(drv, "vfio-pci") == 0)
			finding(c, OK, NULL, "[port %u] %s is bound to vfio-pci", i, dev);
		else if (strcmp(drv, "mlx5_core") == 0)
			finding(c, OK, NULL,
				"[port %u] %s is on mlx5_core (DPDK's mlx5 PMD works alongside the "
				"kernel driver)",
				i, dev);
		else if (!drv[0])
			finding(c, BLOCK, fix, "[port %u] %s has no driver bound", i, dev);
		else
			finding(c, BLOCK, fix, "[port %u] %s is bound to %s, not vfio-pci", i, dev,
				drv);
	}
	if (!any_pci)
		return;
	path_of(c, "sys/kernel/iommu_groups", p, sizeof(p));
	{
		DIR *d = opendir(p);
		struct dirent *de;

		iommu = false;
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.')
				iommu = true;
		if (d)
			closedir(d);
	}
	if (iommu) {
		finding(c, OK, NULL, "IOMMU on (sys/kernel/iommu_groups is populated)");
	} else if (slurp(c, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode", v,
			 sizeof(v)) == 0 &&
		   (v[0] == 'Y' || v[0] == '1')) {
		finding(c, WARN,
			"turn the IOMMU on (intel_iommu=on iommu=pt, VT-d/AMD-Vi in the firmware)",
			"IOMMU off; vfio runs in unsafe no-IOMMU mode (no DMA isolation, needs "
			"CAP_SYS_ADMIN for physical addresses)");
	} else {
		finding(c, BLOCK,
			"add intel_iommu=on iommu=pt to the kernel command line (AMD: on by "
			"default) and enable VT-d/AMD-Vi in the firmware",
			"IOMMU off: vfio-pci cannot give the NIC to DPDK");
	}
}

/* --- CPUs -------------------------------------------------------------------------- */

/* The CPU list after "key=" in the kernel command line (isolcpus may carry
 * flags first: "isolcpus=domain,managed_irq,2-5"). */
static void cmdline_cpus(const char *cmdline, const char *key, struct aw_cpuset *set)
{
	size_t kl = strlen(key);

	for (const char *s = cmdline; (s = strstr(s, key)); s += kl) {
		char list[512], *l = list;
		struct aw_cpuset one;
		struct aw_err e;

		if (s != cmdline && s[-1] != ' ')
			continue;
		snprintf(list, sizeof(list), "%.*s", (int)strcspn(s + kl, " "), s + kl);
		/* skip leading flags (letters) */
		while (*l && !(*l >= '0' && *l <= '9')) {
			char *comma = strchr(l, ',');

			if (!comma) {
				l += strlen(l);
				break;
			}
			l = comma + 1;
		}
		memset(&one, 0, sizeof(one));
		if (*l && aw_cpuset_parse(l, &one, &e) == 0)
			for (unsigned w = 0; w < AW_TOPO_MAX_CPUS / 64; w++)
				set->bits[w] |= one.bits[w];
	}
}

static const char *role_name(const struct aw_conf_lcore *l, char *buf, size_t len)
{
	if (l->role == AW_CONF_ROLE_MAIN)
		snprintf(buf, len, "main lcore");
	else if (l->role == AW_CONF_ROLE_DATAPLANE)
		snprintf(buf, len, "dataplane lcore %u", l->index);
	else
		snprintf(buf, len, "group %u worker", l->index);
	return buf;
}

static void check_cpus(struct ctx *c, const struct aw_conf *conf, const struct aw_conf_plan *plan)
{
	struct aw_cpuset online, isolated, nohz, want, not_iso, slow, missing, offline;
	char *cmdline = malloc(8192);
	char buf[4096], rel[128], who[64], list[512], fix[2048];
	struct aw_err e;
	bool any_freq = false;

	if (!cmdline)
		return;
	memset(&online, 0, sizeof(online));
	memset(&isolated, 0, sizeof(isolated));
	memset(&nohz, 0, sizeof(nohz));
	memset(&want, 0, sizeof(want));
	memset(&not_iso, 0, sizeof(not_iso));
	memset(&slow, 0, sizeof(slow));
	memset(&missing, 0, sizeof(missing));
	memset(&offline, 0, sizeof(offline));
	if (slurp(c, "sys/devices/system/cpu/online", buf, sizeof(buf)) < 0 ||
	    aw_cpuset_parse(buf, &online, &e) < 0)
		memset(&online, 0xff, sizeof(online)); /* unknown: assume online */
	if (slurp(c, "sys/devices/system/cpu/isolated", buf, sizeof(buf)) == 0 && buf[0])
		aw_cpuset_parse(buf, &isolated, &e);
	if (slurp(c, "proc/cmdline", cmdline, 8192) < 0)
		cmdline[0] = '\0';
	cmdline_cpus(cmdline, "isolcpus=", &isolated);
	cmdline_cpus(cmdline, "nohz_full=", &nohz);

	for (unsigned i = 0; i < plan->n_lcores; i++) {
		const struct aw_conf_lcore *l = &plan->lcores[i];
		char gov[64];

		role_name(l, who, sizeof(who));
		snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpu%u", l->cpu);
		if (!exists(c, rel)) {
			aw_cpuset_add(&missing, l->cpu);
			continue;
		}
		if (!aw_cpuset_has(&online, l->cpu)) {
			aw_cpuset_add(&offline, l->cpu);
			continue;
		}
		/* the node the config claims for a worker group */
		if (l->role == AW_CONF_ROLE_WORKER && l->index < AW_CONF_MAX_GROUPS &&
		    conf->groups[l->index].node >= 0) {
			struct aw_cpuset ncpus;
			int node = conf->groups[l->index].node;

			memset(&ncpus, 0, sizeof(ncpus));
			snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/cpulist", node);
			if (slurp(c, rel, buf, sizeof(buf)) == 0 &&
			    aw_cpuset_parse(buf, &ncpus, &e) == 0 && !aw_cpuset_has(&ncpus, l->cpu))
				finding(c, BLOCK,
					"give the group CPUs of its node (lscpu -e shows CPU/NODE)",
					"CPU %u (%s) is not on node %d, which [group %u] claims",
					l->cpu, who, node, l->index);
		}
		if (l->role != AW_CONF_ROLE_MAIN) {
			aw_cpuset_add(&want, l->cpu);
			if (!aw_cpuset_has(&isolated, l->cpu) || !aw_cpuset_has(&nohz, l->cpu))
				aw_cpuset_add(&not_iso, l->cpu);
		}
		snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpu%u/cpufreq/scaling_governor",
			 l->cpu);
		if (slurp(c, rel, gov, sizeof(gov)) == 0) {
			any_freq = true;
			if (strcmp(gov, "performance") != 0)
				aw_cpuset_add(&slow, l->cpu);
		}
	}
	if (aw_cpuset_count(&missing)) {
		aw_cpuset_format(&missing, list, sizeof(list));
		finding(c, BLOCK,
			"use CPUs this machine has (lscpu -e), or --topology to check "
			"for another machine",
			"CPUs %s of the config do not exist here", list);
	}
	if (aw_cpuset_count(&offline)) {
		aw_cpuset_format(&offline, list, sizeof(list));
		snprintf(fix, sizeof(fix), "chcpu -e %s", list);
		finding(c, BLOCK, fix, "CPUs %s of the config are offline", list);
	}
	if (aw_cpuset_count(&want)) {
		aw_cpuset_format(&want, list, sizeof(list));
		if (aw_cpuset_count(&not_iso)) {
			char bad[512];

			aw_cpuset_format(&not_iso, bad, sizeof(bad));
			snprintf(fix, sizeof(fix),
				 "add isolcpus=%s nohz_full=%s rcu_nocbs=%s to the kernel command "
				 "line (update-grub, reboot)",
				 list, list, list);
			finding(c, WARN, fix,
				"CPUs %s (dataplane/workers) are not isolated from the scheduler "
				"(isolcpus and nohz_full)",
				bad);
		} else {
			finding(c, OK, NULL, "CPUs %s are isolated (isolcpus, nohz_full)", list);
		}
	}
	if (!any_freq) {
		finding(c, OK, NULL, "no cpufreq on the configured CPUs (fixed frequency or a VM)");
	} else if (aw_cpuset_count(&slow)) {
		aw_cpuset_format(&slow, list, sizeof(list));
		snprintf(fix, sizeof(fix), "cpupower -c %s frequency-set -g performance", list);
		finding(c, WARN, fix, "CPUs %s: frequency governor is not 'performance'", list);
	} else {
		finding(c, OK, NULL, "frequency governor 'performance' on the configured CPUs");
	}
	free(cmdline);
}

/* --- memory and io_uring --------------------------------------------------------- */

static void check_memory(struct ctx *c, const struct aw_conf *conf, const struct aw_conf_plan *plan)
{
	char v[256];
	uint64_t total = 0;

	if (slurp(c, "sys/kernel/mm/transparent_hugepage/enabled", v, sizeof(v)) == 0) {
		if (strstr(v, "[always]"))
			finding(c, WARN,
				"transparent_hugepage=madvise on the kernel command line (or echo "
				"madvise > /sys/kernel/mm/transparent_hugepage/enabled)",
				"transparent hugepages: always (khugepaged compaction stalls)");
		else
			finding(c, OK, NULL, "transparent hugepages: %s", v);
	}
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++)
		total += plan->mem[n].total;
	if (c->env->memlock != UINT64_MAX && c->env->memlock < total)
		finding(c, WARN,
			"LimitMEMLOCK=infinity (agentwire@.service sets it) or ulimit -l unlimited",
			"memlock limit %.0f MiB is below the %.0f MiB the plan pins (fine for "
			"root, "
			"which has CAP_IPC_LOCK)",
			(double)c->env->memlock / 1048576.0, (double)total / 1048576.0);
	else
		finding(c, OK, NULL, "memlock limit %s",
			c->env->memlock == UINT64_MAX ? "unlimited" : "covers the plan");

	if (slurp(c, "proc/sys/kernel/io_uring_disabled", v, sizeof(v)) < 0 || v[0] == '0') {
		finding(c, OK, NULL, "io_uring permitted");
	} else {
		bool uses = conf->model.load == AW_CONF_LOAD_IO_URING;
		const char *fix =
			"sysctl -w kernel.io_uring_disabled=0 (and in /etc/sysctl.d/), or "
			"[model] load = buffered";

		if (v[0] == '2')
			finding(c, uses ? BLOCK : WARN, fix,
				"io_uring is disabled for every process "
				"(kernel.io_uring_disabled=2)%s",
				uses ? " and [model] load = io_uring" : "");
		else
			finding(c, WARN, fix,
				"io_uring only for CAP_SYS_ADMIN or kernel.io_uring_group "
				"(kernel.io_uring_disabled=1); the unit drops CAP_SYS_ADMIN");
	}
}

void aw_host_env_self(struct aw_host_env *env)
{
	struct rlimit rl;

	env->root = "/";
	env->memlock = UINT64_MAX;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		env->memlock = (uint64_t)rl.rlim_cur;
}

unsigned aw_host_check(const struct aw_host_env *env, const struct aw_conf *conf,
		       const struct aw_conf_plan *plan, FILE *out, unsigned *ret_warnings)
{
	struct ctx c = {.env = env, .out = out};

	check_hugepages(&c, conf, plan);
	check_ports(&c, conf);
	check_cpus(&c, conf, plan);
	check_memory(&c, conf, plan);
	fprintf(out, "host: %u blocker%s, %u warning%s\n", c.blockers, c.blockers == 1 ? "" : "s",
		c.warnings, c.warnings == 1 ? "" : "s");
	if (ret_warnings)
		*ret_warnings = c.warnings;
	return c.blockers;
}
