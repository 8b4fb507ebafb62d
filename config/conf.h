/* conf.h — the agentwire config file: reader, validator, resolved plan.
 *
 * One INI file describes the whole appliance. Its grammar (docs/CONFIG.md):
 *
 *     ; comment                     whole-line comments start with ';' or '#'
 *     [section]                     eal, dataplane, model, limits, telemetry, log
 *     [section N]                   port 0..31, group 0..63
 *     key = value   ; comment       inline comments need a blank before ';' or '#'
 *
 * Loading happens in three steps, and each step reports every problem it finds
 * (never only the first) into a struct aw_conf_report, each with the file and
 * line (or the --set argument), the section and key, what is wrong and the fix:
 *
 *   1. aw_conf_load_file()/aw_conf_load_buffer(): read the INI text (own reader,
 *      see docs/CONFIG.md for why not rte_cfgfile), then apply --set overrides.
 *   2. the same call parses every value against the key table (type, unit,
 *      range) and resolves defaults into struct aw_conf.
 *   3. aw_conf_validate(): cross-checks against the machine described by a
 *      struct aw_conf_env — CPUs and memory per NUMA node (topo.h), port
 *      capabilities, the model file — and builds the plan (lcores, rings,
 *      memory per node) that aw_conf_plan_print() prints.
 *
 * The library needs no DPDK at all, so the checker runs on a laptop against a
 * described topology, and the unit tests need no EAL.
 */
#ifndef AW_CONF_H
#define AW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "topo.h"

#define AW_CONF_MAX_PORTS  32  /* RTE_MAX_ETHPORTS of Debian's DPDK 22.11 */
#define AW_CONF_MAX_GROUPS 64  /* [group 0] .. [group 63] */
#define AW_CONF_MAX_LCORES 128 /* RTE_MAX_LCORE of Debian's DPDK 22.11 */
#define AW_CONF_MAX_LINE   4096
#define AW_CONF_MAX_FILE   (64u << 20)
#define AW_CONF_MAX_DIAGS  100 /* further problems are counted, not stored */
#define AW_CONF_STR_LEN	   256
#define AW_CONF_ARGS_LEN   1024
#define AW_CONF_PATH_LEN   1024

/* ---- the key table ------------------------------------------------------- */

enum aw_conf_type {
	AW_CONF_T_BOOL,	   /* true/false, yes/no, on/off, 1/0 */
	AW_CONF_T_UINT,	   /* decimal integer, no sign, no suffix */
	AW_CONF_T_SIZE,	   /* bytes: decimal integer with optional K/M/G/T (powers of 1024) */
	AW_CONF_T_STR,	   /* free text */
	AW_CONF_T_PATH,	   /* a file name */
	AW_CONF_T_ENUM,	   /* one of the words in 'choices' */
	AW_CONF_T_CPU,	   /* one CPU number */
	AW_CONF_T_CPULIST, /* CPU list: "2-5,8" */
	AW_CONF_T_IPV4,	   /* dotted quad */
	AW_CONF_T_CIDR,	   /* dotted quad with /prefix */
	AW_CONF_T_DEVICE,  /* PCI address DDDD:BB:DD.F or DPDK vdev "net_xxxN[,args]" */
	AW_CONF_T_NODE,	   /* NUMA node number or "auto" */
};

/* One row of the key table. The table is the single source of truth: the
 * parser, the defaults, docs/CONFIG.md (checked by tests/unit/test-conf.c)
 * and the "did you mean" suggestions all come from it. */
struct aw_conf_key {
	const char *section; /* "eal", "port", "group", ... (numbered ones take N) */
	const char *name;    /* key name */
	enum aw_conf_type type;
	const char *unit;    /* "bytes", "packets", "ms", "lcores", ... or "" */
	const char *def;     /* default as written in a file; NULL: required */
	uint64_t min, max;   /* range for UINT/SIZE/CPU (inclusive); max length for STR */
	const char *choices; /* ENUM: "a|b|c" */
	const char *doc;     /* one sentence for docs/CONFIG.md */
	size_t offset;	     /* where the value lives in its section struct */
	size_t size;	     /* sizeof that member */
	unsigned flags;	     /* AW_CONF_F_* */
};

#define AW_CONF_F_POW2 1u /* value must be a power of two */
#define AW_CONF_F_4K   2u /* value must be a multiple of 4096 */
#define AW_CONF_F_ZERO 4u /* 0 is allowed besides [min, max] (means "auto" or "off") */

/* The whole table, terminated by a row with name == NULL. */
extern const struct aw_conf_key aw_conf_keys[];

/* The section names, in documentation order, NULL-terminated. */
extern const char *const aw_conf_sections[];

/* Format the key's docs/CONFIG.md table row into buf ("| `key` | type | ... |").
 * Returns the length written (truncated at size-1). */
size_t aw_conf_doc_row(const struct aw_conf_key *k, char *buf, size_t size);

/* ---- the resolved config ----------------------------------------------- */

enum aw_conf_load_method { AW_CONF_LOAD_IO_URING, AW_CONF_LOAD_BUFFERED, AW_CONF_LOAD_MMAP };
enum aw_conf_replicas { AW_CONF_REPLICAS_PER_NODE, AW_CONF_REPLICAS_SINGLE };
enum aw_conf_idle { AW_CONF_IDLE_POLL, AW_CONF_IDLE_YIELD, AW_CONF_IDLE_SLEEP };

struct aw_conf_eal {
	uint32_t main_lcore; /* CPU of the EAL main lcore (control, telemetry, loader) */
	bool hugepages;	     /* false: --no-huge */
	uint64_t memory;     /* bytes, EAL -m */
	char file_prefix[AW_CONF_STR_LEN]; /* --file-prefix */
	char args[AW_CONF_ARGS_LEN];	   /* extra EAL arguments, split on blanks */
};

struct aw_conf_port {
	bool present;		      /* a [port N] section exists */
	char device[AW_CONF_STR_LEN]; /* PCI address or vdev string */
	uint32_t addr;		      /* IPv4, host byte order */
	uint32_t prefix;	      /* 0..32 */
	uint32_t gateway;	      /* 0: none */
	uint32_t udp_port;
	uint32_t rx_queues; /* 0: one per dataplane lcore */
	uint32_t tx_queues; /* 0: one per dataplane lcore */
	uint32_t rx_descriptors;
	uint32_t tx_descriptors;
	uint32_t mtu;
};

struct aw_conf_dataplane {
	struct aw_cpuset lcores;   /* CPUs of the RX/TX lcores */
	uint32_t burst;		   /* packets per rx/tx burst */
	enum aw_conf_idle idle;	   /* what an lcore does when RX is empty */
	uint32_t mbufs;		   /* mbufs per pool (one pool per node with dataplane lcores) */
	uint32_t mbuf_cache;	   /* per-lcore mempool cache */
	uint32_t tx_ring_size;	   /* response ring per dataplane lcore (entries) */
	uint32_t reassembly_slots; /* partial requests per lcore */
	uint32_t reassembly_timeout_ms;
	uint64_t max_request_bytes;  /* largest reassembled request */
	uint32_t retransmit_entries; /* sent datagrams kept per lcore */
	uint32_t retransmit_ttl_ms;
};

struct aw_conf_group {
	bool present;
	struct aw_cpuset lcores;   /* worker CPUs; the first one is the leader */
	int32_t node;		   /* NUMA node; -1 in the file means "auto" (resolved) */
	uint32_t max_batch;	   /* sequences per step */
	uint32_t max_batch_tokens; /* tokens per step */
	uint32_t prefill_chunk;	   /* prompt tokens per sequence per step */
	uint64_t kv_cache;	   /* bytes */
	uint32_t kv_block_tokens;  /* tokens per KV block */
	uint32_t ring_size;	   /* request ring entries (power of two) */
	enum aw_conf_idle idle;	   /* what workers do with no work */
};

struct aw_conf_model {
	char path[AW_CONF_PATH_LEN];
	enum aw_conf_load_method load;
	uint32_t queue_depth;  /* io_uring reads in flight */
	uint64_t request_size; /* bytes per read */
	enum aw_conf_replicas replicas;
};

struct aw_conf_limits {
	uint32_t max_prompt_tokens;
	uint32_t max_new_tokens;
	uint32_t queue_depth;	      /* waiting requests per group before OVERLOADED */
	uint32_t default_deadline_ms; /* 0: none */
	uint32_t max_deadline_ms;
	uint32_t client_max_inflight;
	uint32_t client_rate; /* requests per second per client, 0: unlimited */
	uint32_t max_sessions;
	uint32_t session_ttl_s;
};

struct aw_conf_telemetry {
	bool enabled;
	uint32_t interval_ms;	    /* counter snapshot period; 0: on request only */
	char name[AW_CONF_STR_LEN]; /* command prefix, e.g. "/agentwire" */
	bool metrics;		    /* serve Prometheus /metrics */
	uint32_t metrics_address;   /* IPv4 to listen on (as parse_ipv4 stores it) */
	uint32_t metrics_port;	    /* TCP port */
};

struct aw_conf_log {
	char level[16]; /* err|warning|notice|info|debug */
	char dpdk_level[16];
	char file[AW_CONF_PATH_LEN]; /* "" = standard error */
};

struct aw_conf_src; /* origins (file, line) of every value; private */

struct aw_conf {
	char path[AW_CONF_PATH_LEN]; /* file name as given, for messages */
	struct aw_conf_eal eal;
	struct aw_conf_port ports[AW_CONF_MAX_PORTS];
	struct aw_conf_dataplane dataplane;
	struct aw_conf_group groups[AW_CONF_MAX_GROUPS];
	struct aw_conf_model model;
	struct aw_conf_limits limits;
	struct aw_conf_telemetry telemetry;
	struct aw_conf_log log;
	struct aw_conf_src *src;
};

/* ---- problems ---------------------------------------------------------- */

enum aw_conf_severity { AW_CONF_ERROR, AW_CONF_WARNING };

struct aw_conf_diag {
	enum aw_conf_severity severity;
	char where[AW_CONF_PATH_LEN + 32]; /* "file.conf:12", "--set #2", "file.conf" */
	char what[64];			   /* "[group 1] lcores" or "" */
	char msg[320];			   /* what is wrong */
	char fix[320];			   /* what to do, or "" */
};

struct aw_conf_report {
	struct aw_conf_diag *diags; /* the first AW_CONF_MAX_DIAGS problems, in order */
	unsigned n;		    /* stored */
	unsigned errors;	    /* counted, including those not stored */
	unsigned warnings;
};

/* Print every problem as "where: error: what: msg\n    fix: ...\n" and a
 * summary line. */
void aw_conf_report_print(const struct aw_conf_report *r, FILE *out);

/* Free the stored problems; the struct can be reused. Accepts NULL. */
void aw_conf_report_fini(struct aw_conf_report *r);

/* True when some stored problem's message or fix contains 'needle'
 * (tests and the fuzzer use it). */
bool aw_conf_report_has(const struct aw_conf_report *r, const char *needle);

/* ---- loading ----------------------------------------------------------- */

/* Read the INI file 'path', apply the 'n_sets' overrides "section.key=value"
 * (section may be "group.1", "group1" or "group 1"), parse every value and
 * resolve defaults. Every problem goes into 'rep' (which must be zeroed or
 * fresh from aw_conf_report_fini). Returns 0 and sets *ret_conf when no error
 * was found (warnings allowed); -EINVAL when the report holds errors; -ENOMEM.
 * The caller owns *ret_conf and frees it with aw_conf_free(). */
int aw_conf_load_file(const char *path, const char *const *sets, unsigned n_sets,
		      struct aw_conf_report *rep, struct aw_conf **ret_conf);

/* The same for text in memory; 'name' is used in messages. 'data' need not be
 * NUL-terminated and may hold any bytes. */
int aw_conf_load_buffer(const char *name, const char *data, size_t len, const char *const *sets,
			unsigned n_sets, struct aw_conf_report *rep, struct aw_conf **ret_conf);

void aw_conf_free(struct aw_conf *conf);

/* ---- the machine it runs on ------------------------------------------------ */

/* What a port can take (rte_eth_dev_info's limits). A zero field is unknown. */
struct aw_conf_port_caps {
	char driver[32];
	uint32_t max_rx_queues, max_tx_queues;
	uint32_t rx_desc_min, rx_desc_max, rx_desc_align;
	uint32_t tx_desc_min, tx_desc_max, tx_desc_align;
	uint32_t max_mtu;
	uint32_t speed_mbps;
	int32_t node; /* NUMA node of the device, -1 unknown */
};

/* Fill *caps for port 'id'. Returns 0, or -ENOENT when unknown (then the
 * queue checks are skipped and the plan says so). */
typedef int aw_conf_port_caps_fn(void *ctx, unsigned id, const struct aw_conf_port *port,
				 struct aw_conf_port_caps *caps);

/* Size of the file at 'path'. Returns 0 and sets *size, or -errno. */
typedef int aw_conf_file_size_fn(void *ctx, const char *path, uint64_t *size);

struct aw_conf_env {
	const struct aw_topo *topo;	 /* CPUs and memory per node (required) */
	aw_conf_port_caps_fn *port_caps; /* NULL: aw_conf_port_caps_builtin */
	aw_conf_file_size_fn *file_size; /* NULL: stat() */
	void *ctx;			 /* passed to both */
};

/* Port capabilities without a probed device: the topology's described ports
 * ([port N] sections in a topology file, matched by device name), then the
 * fixed limits of DPDK 22.11's virtual devices (net_tap, net_memif, net_ring,
 * net_af_packet). 'ctx' is the struct aw_topo. */
int aw_conf_port_caps_builtin(void *ctx, unsigned id, const struct aw_conf_port *port,
			      struct aw_conf_port_caps *caps);

/* ---- validation and the plan ----------------------------------------------- */

enum aw_conf_role { AW_CONF_ROLE_MAIN, AW_CONF_ROLE_DATAPLANE, AW_CONF_ROLE_WORKER };

struct aw_conf_lcore {
	uint32_t lcore; /* DPDK lcore id */
	uint32_t cpu;
	int32_t node;
	enum aw_conf_role role;
	uint32_t index; /* dataplane lcore index, or group number */
	bool leader;	/* worker: first lcore of its group */
};

struct aw_conf_node_mem {
	uint64_t weights, kv, mbufs, rings, total; /* bytes planned on this node */
	uint64_t available;			   /* the node's memory (topology) */
	uint64_t hugepages;			   /* hugepage memory reserved on the node */
};

struct aw_conf_plan {
	struct aw_conf_lcore lcores[AW_CONF_MAX_LCORES];
	unsigned n_lcores;
	uint32_t n_dataplane; /* dataplane lcores */
	uint64_t model_size;  /* bytes, 0 if unknown */
	struct aw_conf_node_mem mem[AW_TOPO_MAX_NODES];
	struct aw_conf_port_caps caps[AW_CONF_MAX_PORTS];
	bool caps_known[AW_CONF_MAX_PORTS];
	char eal_lcores[1024]; /* the --lcores argument, "0@0,1@1,2@0" */
};

/* Cross-check 'conf' against 'env' and fill *plan. Every problem goes into
 * 'rep'. Returns 0 when no error was found, -EINVAL otherwise (-ENOMEM when
 * it could not check). 'plan' is filled as far as possible either way. It
 * can be called again, e.g. with probed port limits after rte_eal_init(). */
int aw_conf_validate(const struct aw_conf *conf, const struct aw_conf_env *env,
		     struct aw_conf_report *rep, struct aw_conf_plan *plan);

/* Print the resolved plan: machine, lcores (lcore, CPU, node, role), ports
 * and queues, rings and sizes, memory per node, EAL arguments. */
void aw_conf_plan_print(const struct aw_conf *conf, const struct aw_conf_env *env,
			const struct aw_conf_plan *plan, FILE *out);

/* The arguments for rte_eal_init() that the plan stands for: 'prog',
 * --lcores (plan->eal_lcores), --main-lcore 0, --file-prefix, --no-huge and
 * -m (MiB), --no-pci when every port is a vdev, --vdev=DEVICE or -a PCI per
 * port, --log-level=N from [log] dpdk_level, then [eal] args split at blanks.
 * Returns 0 and sets *ret_argv (NULL-terminated, free with
 * aw_conf_eal_argv_free(): one block, so rte_eal_init() may reorder and
 * overwrite its pointers) and
 * *ret_argc, or -ENOMEM. */
int aw_conf_eal_argv(const struct aw_conf *conf, const struct aw_conf_plan *plan, const char *prog,
		     char ***ret_argv, int *ret_argc);
void aw_conf_eal_argv_free(char **argv);

/* Bytes of one mbuf in the plan's estimate: struct rte_mbuf (128), headroom
 * (128), data room (2048, or the largest port MTU plus 22 rounded up to 1 KiB
 * for jumbo frames) and the mempool object header (64). */
uint32_t aw_conf_mbuf_bytes(const struct aw_conf *conf);

/* ---- the agentwire command line ---------------------------------------------- */

struct aw_conf_cli {
	const char *config; /* -c FILE */
	const char **sets;  /* --set values, in order (points into argv) */
	unsigned n_sets;
	bool check;	       /* --check */
	const char *topology;  /* --topology FILE (with --check only) */
	bool host;	       /* --host: also inspect this machine (config/host.h) */
	const char *host_root; /* --host-root DIR: inspect the tree under DIR instead of / */
};

#define AW_CONF_CLI_RUN (-1) /* aw_conf_cli_parse: go on */

/* Parse agentwire's arguments. Returns AW_CONF_CLI_RUN to go on, or the exit
 * status: 0 after --help/--version (printed to 'out'), 2 after a usage error
 * (printed to 'err'). The caller frees cli->sets with free(). */
int aw_conf_cli_parse(int argc, char **argv, struct aw_conf_cli *cli, FILE *out, FILE *err);

/* agentwire --check: load, validate against the real machine (or the
 * --topology file), print the problems to 'err' and the plan to 'out'.
 * Returns the exit status: 0 valid, 1 invalid. Never touches DPDK. */
int aw_conf_check_main(const struct aw_conf_cli *cli, FILE *out, FILE *err);

/* Load and validate for serving: like --check without the plan. Returns 0
 * and sets *ret_conf and *plan, or 1 after printing the problems to 'err'. */
int aw_conf_cli_load(const struct aw_conf_cli *cli, FILE *err, struct aw_conf **ret_conf,
		     struct aw_topo **ret_topo, struct aw_conf_plan *plan);

#endif
