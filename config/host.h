/* host.h — `agentwire --check --host`: is this machine ready for this config?
 *
 * aw_host_check() reads the machine's state under 'root' ("/" in production;
 * the tests point it at a fake tree holding sys/ and proc/ files) and compares
 * it with the validated config and its plan. Each check prints one finding:
 *
 *     host: ok: hugepages: node 0 has 16.0 GiB free, the plan needs 9.4 GiB
 *     host: BLOCKER: [port 0] 0000:17:00.0 is bound to ice, not vfio-pci
 *         fix: driverctl set-override 0000:17:00.0 vfio-pci
 *     host: warning: CPU 2 (dataplane lcore 0) is not isolated
 *         fix: add isolcpus=2-5 nohz_full=2-5 rcu_nocbs=2-5 to the kernel command line
 *
 * A blocker stops the daemon from starting (or from working: no hugepages,
 * NIC on a kernel driver, no IOMMU for vfio, CPU offline, io_uring off when
 * the config loads with it); a warning costs latency or throughput (CPU not
 * isolated, governor not performance, transparent hugepages always, memlock
 * too low outside the unit, no cpufreq at all is fine).
 *
 * Files read (under root): proc/cmdline, proc/mounts,
 * proc/sys/kernel/io_uring_disabled, sys/devices/system/node/nodeN/hugepages/
 * hugepages-SkB/free_hugepages (or sys/kernel/mm/hugepages/ without NUMA),
 * sys/devices/system/node/nodeN/cpulist, sys/devices/system/cpu/{online,
 * isolated}, sys/devices/system/cpu/cpuN/cpufreq/scaling_governor,
 * sys/kernel/mm/transparent_hugepage/enabled, sys/bus/pci/devices/ADDR/driver,
 * sys/kernel/iommu_groups/, sys/module/vfio/parameters/enable_unsafe_noiommu_mode.
 */
#ifndef AW_HOST_H
#define AW_HOST_H

#include <stdint.h>
#include <stdio.h>

#include "conf.h"

/* What the files cannot say. */
struct aw_host_env {
	const char *root; /* "/" or a fake tree */
	uint64_t memlock; /* RLIMIT_MEMLOCK soft limit in bytes, UINT64_MAX: unlimited */
};

/* Fill 'env' for this process: root "/" and its RLIMIT_MEMLOCK. */
void aw_host_env_self(struct aw_host_env *env);

/* Check the machine against 'conf' and its 'plan' (aw_conf_validate()),
 * printing every finding to 'out'. Returns the number of blockers and sets
 * *ret_warnings to the number of warnings. */
unsigned aw_host_check(const struct aw_host_env *env, const struct aw_conf *conf,
		       const struct aw_conf_plan *plan, FILE *out, unsigned *ret_warnings);

#endif
