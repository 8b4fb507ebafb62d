/* test-host.c — `agentwire --check --host` against fake machines
 * (config/host.h). Each test writes a sys/ + proc/ tree into a temporary
 * root, starting from a machine where everything is right, changes one
 * thing and checks that exactly that finding (with its fix) appears and
 * that blockers and warnings are counted as such. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"
#include "host.h"
#include "topo.h"

/* two nodes of 4 CPUs; one PCI NIC on node 0 */
static const char TOPO[] = "[node 0]\ncpus = 0-3\nmemory = 16G\nhugepages = 4G\n"
			   "[node 1]\ncpus = 4-7\nmemory = 16G\nhugepages = 4G\n"
			   "[port 0000:17:00.0]\ndriver = net_ice\nnode = 0\n"
			   "[file /srv/m.gguf]\nsize = 64M\n";
static const char CONF[] = "[eal]\nmain_lcore = 0\nhugepages = true\nmemory = 1G\n"
			   "[port 0]\ndevice = 0000:17:00.0\naddress = 10.0.0.2/24\n"
			   "[dataplane]\nlcores = 1\n"
			   "[group 0]\nlcores = 2-3\nnode = 0\nkv_cache = 64M\n"
			   "[group 1]\nlcores = 5-7\nnode = 1\nkv_cache = 64M\n"
			   "[model]\npath = /srv/m.gguf\nload = io_uring\n";

struct fx {
	char root[64];
	struct aw_conf *conf;
	struct aw_topo *topo;
	struct aw_conf_plan plan;
	struct aw_host_env env;
	char *out;
	size_t out_len;
	unsigned blockers, warnings;
};

static void put(struct fx *f, const char *rel, const char *text)
{
	char p[512], *s;
	FILE *fp;

	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	for (s = p + strlen(f->root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	fp = fopen(p, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void rm(struct fx *f, const char *rel)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", f->root, rel);
	assert_int_equal(unlink(p), 0);
}

static void link_driver(struct fx *f, const char *drv)
{
	char p[512], target[256];

	put(f, "sys/bus/pci/devices/0000:17:00.0/vendor", "0x8086\n");
	snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/0000:17:00.0/driver", f->root);
	unlink(p);
	snprintf(target, sizeof(target), "../../../bus/pci/drivers/%s", drv);
	assert_int_equal(symlink(target, p), 0);
}

/* A machine ready for CONF. */
static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct aw_conf_report rep = {0};
	struct aw_conf_env cenv = {0};
	struct aw_err e;
	char rel[256];

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/aw-host-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	assert_int_equal(aw_topo_load_buffer("t.topo", TOPO, strlen(TOPO), &f->topo, &e), 0);
	assert_int_equal(aw_conf_load_buffer("t.conf", CONF, strlen(CONF), NULL, 0, &rep, &f->conf),
			 0);
	cenv.topo = f->topo;
	if (aw_conf_validate(f->conf, &cenv, &rep, &f->plan) != 0)
		aw_conf_report_print(&rep, stderr);
	aw_conf_report_fini(&rep);
	assert_true(f->plan.mem[0].total > 0 && f->plan.mem[1].total > 0);

	put(f, "proc/cmdline",
	    "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on iommu=pt "
	    "isolcpus=domain,managed_irq,1-3,5-7 nohz_full=1-3,5-7\n");
	put(f, "proc/mounts",
	    "sysfs /sys sysfs rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs "
	    "rw,pagesize=1024M 0 0\n");
	put(f, "proc/sys/kernel/io_uring_disabled", "0\n");
	put(f, "sys/devices/system/node/node0/cpulist", "0-3\n");
	put(f, "sys/devices/system/node/node1/cpulist", "4-7\n");
	put(f, "sys/devices/system/node/node0/hugepages/hugepages-1048576kB/free_hugepages", "4\n");
	put(f, "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "4\n");
	put(f, "sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "0\n");
	put(f, "sys/devices/system/cpu/online", "0-7\n");
	put(f, "sys/devices/system/cpu/isolated", "1-3,5-7\n");
	for (int cpu = 0; cpu < 8; cpu++) {
		snprintf(rel, sizeof(rel), "sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor",
			 cpu);
		put(f, rel, "performance\n");
	}
	put(f, "sys/kernel/mm/transparent_hugepage/enabled", "always [madvise] never\n");
	put(f, "sys/kernel/iommu_groups/17/type", "DMA\n");
	link_driver(f, "vfio-pci");
	f->env.root = f->root;
	f->env.memlock = UINT64_MAX;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", f->root);
	aw_conf_free(f->conf);
	aw_topo_free(f->topo);
	free(f->out);
	free(f);
	return 0;
}

static void check(struct fx *f)
{
	FILE *o;

	free(f->out);
	f->out = NULL;
	o = open_memstream(&f->out, &f->out_len);
	assert_non_null(o);
	f->blockers = aw_host_check(&f->env, f->conf, &f->plan, o, &f->warnings);
	fclose(o);
	if (getenv("AW_HOST_TEST_VERBOSE"))
		fputs(f->out, stderr);
}

#define assert_has(f, s)                                                                           \
	do {                                                                                       \
		if (!strstr((f)->out, (s)))                                                        \
			fail_msg("no '%s' in:\n%s", (s), (f)->out);                                \
	} while (0)

static void ready_machine_has_nothing_to_say(void **state)
{
	struct fx *f = *state;

	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 0);
	assert_has(f, "host: ok: hugepages: node 0 has 4.0 GiB free");
	assert_has(f, "host: ok: [port 0] 0000:17:00.0 is bound to vfio-pci");
	assert_has(f, "host: ok: IOMMU on");
	assert_has(f, "host: ok: CPUs 1-3,5-7 are isolated");
	assert_has(f, "host: 0 blockers, 0 warnings");
}

static void nic_on_a_kernel_driver(void **state)
{
	struct fx *f = *state;

	link_driver(f, "ice");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: [port 0] 0000:17:00.0 is bound to ice, not vfio-pci");
	assert_has(f, "fix: driverctl set-override 0000:17:00.0 vfio-pci");
}

static void nic_missing(void **state)
{
	struct fx *f = *state;

	rm(f, "sys/bus/pci/devices/0000:17:00.0/driver");
	rm(f, "sys/bus/pci/devices/0000:17:00.0/vendor");
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/sys/bus/pci/devices/0000:17:00.0", f->root);
		assert_int_equal(rmdir(p), 0);
	}
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: [port 0] no PCI device 0000:17:00.0");
}

static void iommu_off(void **state)
{
	struct fx *f = *state;

	rm(f, "sys/kernel/iommu_groups/17/type");
	{
		char p[512];

		snprintf(p, sizeof(p), "%s/sys/kernel/iommu_groups/17", f->root);
		assert_int_equal(rmdir(p), 0);
	}
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: IOMMU off");
	assert_has(f, "intel_iommu=on iommu=pt");
	/* vfio's unsafe no-IOMMU mode: starts, but warned about */
	put(f, "sys/module/vfio/parameters/enable_unsafe_noiommu_mode", "Y\n");
	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 1);
	assert_has(f, "unsafe no-IOMMU mode");
}

static void hugepages_short_on_one_node(void **state)
{
	struct fx *f = *state;

	put(f, "sys/devices/system/node/node1/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: hugepages: node 1 has 0.0 GiB free, the plan needs");
	assert_has(f, "dpdk-hugepages.py --pagesize 1G --node 1 --reserve");
	/* 2 MiB pages count too */
	put(f, "sys/devices/system/node/node1/hugepages/hugepages-2048kB/free_hugepages", "2048\n");
	check(f);
	assert_int_equal(f->blockers, 0);
}

static void hugetlbfs_not_mounted(void **state)
{
	struct fx *f = *state;

	put(f, "proc/mounts", "sysfs /sys sysfs rw 0 0\n");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: hugepages: no hugetlbfs mounted");
}

static void cpus_not_isolated(void **state)
{
	struct fx *f = *state;

	put(f, "sys/devices/system/cpu/isolated", "\n");
	put(f, "proc/cmdline", "root=/dev/sda1 isolcpus=1-3 nohz_full=1-3\n");
	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 1);
	assert_has(f, "warning: CPUs 5-7 (dataplane/workers) are not isolated");
	assert_has(f, "fix: add isolcpus=1-3,5-7 nohz_full=1-3,5-7 rcu_nocbs=1-3,5-7");
}

static void cpu_offline_missing_or_on_another_node(void **state)
{
	struct fx *f = *state;
	char p[512];

	put(f, "sys/devices/system/cpu/online", "0-5,7\n");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: CPUs 6 of the config are offline");
	assert_has(f, "fix: chcpu -e 6");
	put(f, "sys/devices/system/cpu/online", "0-7\n");
	/* the kernel says CPU 5 is on node 0: [group 1] claims node 1 */
	put(f, "sys/devices/system/node/node0/cpulist", "0-3,5\n");
	put(f, "sys/devices/system/node/node1/cpulist", "4,6-7\n");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: CPU 5 (group 1 worker) is not on node 1");
	/* a machine without CPU 7 at all */
	rm(f, "sys/devices/system/cpu/cpu7/cpufreq/scaling_governor");
	snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu7/cpufreq", f->root);
	assert_int_equal(rmdir(p), 0);
	snprintf(p, sizeof(p), "%s/sys/devices/system/cpu/cpu7", f->root);
	assert_int_equal(rmdir(p), 0);
	check(f);
	assert_has(f, "BLOCKER: CPUs 7 of the config do not exist here");
}

static void governor_thp_memlock(void **state)
{
	struct fx *f = *state;

	put(f, "sys/devices/system/cpu/cpu3/cpufreq/scaling_governor", "powersave\n");
	put(f, "sys/kernel/mm/transparent_hugepage/enabled", "[always] madvise never\n");
	f->env.memlock = 8 << 20;
	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 3);
	assert_has(f, "warning: CPUs 3: frequency governor is not 'performance'");
	assert_has(f, "fix: cpupower -c 3 frequency-set -g performance");
	assert_has(f, "warning: transparent hugepages: always");
	assert_has(f, "warning: memlock limit 8 MiB");
	assert_has(f, "LimitMEMLOCK=infinity");
}

static void io_uring_disabled(void **state)
{
	struct fx *f = *state;

	put(f, "proc/sys/kernel/io_uring_disabled", "2\n");
	check(f);
	assert_int_equal(f->blockers, 1);
	assert_has(f, "BLOCKER: io_uring is disabled for every process");
	assert_has(f, "sysctl -w kernel.io_uring_disabled=0");
	f->conf->model.load = AW_CONF_LOAD_BUFFERED; /* not needed: a warning */
	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 1);
	put(f, "proc/sys/kernel/io_uring_disabled", "1\n");
	check(f);
	assert_int_equal(f->warnings, 1);
	assert_has(f, "io_uring_group");
}

static void no_huge_vdev_config(void **state)
{
	struct fx *f = *state;

	f->conf->eal.hugepages = false;
	snprintf(f->conf->ports[0].device, sizeof(f->conf->ports[0].device), "net_tap0,iface=aw0");
	rm(f, "sys/kernel/iommu_groups/17/type"); /* irrelevant without a PCI port */
	check(f);
	assert_int_equal(f->blockers, 0);
	assert_int_equal(f->warnings, 1);
	assert_has(f, "ok: [port 0] net_tap0,iface=aw0 is a virtual device");
	assert_has(f, "warning: hugepages: the config runs DPDK with --no-huge");
}

static void empty_root_blocks_safely(void **state)
{
	struct fx *f = *state;

	f->env.root = "/nonexistent-aw-root";
	check(f); /* nothing readable: no crash, and the NIC/hugepages block */
	assert_true(f->blockers >= 2);
	assert_has(f, "no hugetlbfs mounted");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(ready_machine_has_nothing_to_say),
		T(nic_on_a_kernel_driver),
		T(nic_missing),
		T(iommu_off),
		T(hugepages_short_on_one_node),
		T(hugetlbfs_not_mounted),
		T(cpus_not_isolated),
		T(cpu_offline_missing_or_on_another_node),
		T(governor_thp_memlock),
		T(io_uring_disabled),
		T(no_huge_vdev_config),
		T(empty_root_blocks_safely),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
