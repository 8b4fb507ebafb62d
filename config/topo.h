/* topo.h — the machine a config is checked against: CPUs and memory per NUMA
 * node, and (when described) port capabilities and file sizes.
 *
 * Two sources, one struct:
 *   aw_topo_discover()   the real machine, from /sys/devices/system/node
 *                        (cpulist, meminfo, hugepages) and the process's CPU
 *                        affinity; one node from /proc/meminfo when the kernel
 *                        has no NUMA.
 *   aw_topo_load*()      a described machine, an INI text such as
 *
 *       [node 0]
 *       cpus = 0-23,48-71
 *       memory = 192G
 *       hugepages = 64G
 *       [port 0000:17:00.0]            ; matched against [port N] device
 *       driver = mlx5_pci
 *       max_rx_queues = 1024 ...
 *       [file /srv/models/m.gguf]      ; model file size, instead of stat()
 *       size = 1.7G
 *
 * so that `agentwire --check --topology FILE` checks a server's config on a
 * laptop and the tests check the examples against fixed machines.
 */
#ifndef AW_TOPO_H
#define AW_TOPO_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define AW_TOPO_MAX_CPUS  1024
#define AW_TOPO_MAX_NODES 32

/* A set of CPU numbers 0..AW_TOPO_MAX_CPUS-1. */
struct aw_cpuset {
	uint64_t bits[AW_TOPO_MAX_CPUS / 64];
};

static inline void aw_cpuset_add(struct aw_cpuset *s, unsigned cpu)
{
	s->bits[cpu / 64] |= 1ull << (cpu % 64);
}

static inline bool aw_cpuset_has(const struct aw_cpuset *s, unsigned cpu)
{
	return cpu < AW_TOPO_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

unsigned aw_cpuset_count(const struct aw_cpuset *s);

/* Lowest CPU in the set, or -1 when empty. */
int aw_cpuset_first(const struct aw_cpuset *s);

/* Parse "2-5,8" (blanks allowed around numbers). Returns 0, or -EINVAL with
 * 'err' naming the problem (junk, reversed range, CPU too large, a CPU listed
 * twice, empty list). */
int aw_cpuset_parse(const char *s, struct aw_cpuset *ret, struct aw_err *err);

/* Format as a compact list "0-3,8". Returns the length (truncated at size-1). */
int aw_cpuset_format(const struct aw_cpuset *s, char *buf, unsigned size);

struct aw_topo_node {
	bool present;
	struct aw_cpuset cpus; /* CPUs of this node */
	uint64_t memory;       /* bytes (MemTotal) */
	uint64_t hugepages;    /* bytes of hugepages reserved on the node */
};

struct aw_topo_port; /* described port capabilities (private) */
struct aw_topo_file; /* described file sizes (private) */

struct aw_topo {
	char source[256]; /* "/sys" or the description's file name */
	struct aw_topo_node nodes[AW_TOPO_MAX_NODES];
	unsigned n_nodes;	  /* highest present node + 1 */
	struct aw_cpuset online;  /* every CPU of every node */
	struct aw_cpuset allowed; /* CPUs this process may run on (affinity) */
	struct aw_topo_port *ports;
	unsigned n_ports;
	struct aw_topo_file *files;
	unsigned n_files;
};

/* Discover the running machine. Returns 0 and sets *ret (free with
 * aw_topo_free), or -errno with 'err' set. 'sysfs' is the root to read,
 * normally "/sys" (tests point it at a fake tree). */
int aw_topo_discover(const char *sysfs, struct aw_topo **ret, struct aw_err *err);

/* Read a described machine from a file or from memory. Returns 0 and sets
 * *ret, or -EINVAL with 'err' naming the line. */
int aw_topo_load_file(const char *path, struct aw_topo **ret, struct aw_err *err);
int aw_topo_load_buffer(const char *name, const char *data, size_t len, struct aw_topo **ret,
			struct aw_err *err);

void aw_topo_free(struct aw_topo *t);

/* Node of 'cpu', or -1. */
int aw_topo_cpu_node(const struct aw_topo *t, unsigned cpu);

/* Described port capabilities for 'device' (exact match). Returns true and
 * fills the fields that were described (zero: unknown). */
struct aw_conf_port_caps;
bool aw_topo_port_caps(const struct aw_topo *t, const char *device, struct aw_conf_port_caps *caps);

/* Described size of 'path'. Returns true and sets *size. */
bool aw_topo_file_size(const struct aw_topo *t, const char *path, uint64_t *size);

#endif
