/* conf-check.c — whole-config validation against a machine, and the plan.
 *
 * aw_conf_validate() takes a parsed config (every value already in range)
 * and checks what only the whole file and the machine can tell: which CPU
 * does what and whether it exists, group CPUs against their NUMA node, queue
 * and descriptor counts against the port, memory per node against what the
 * node has, the model file. It assigns DPDK lcore ids on the way (main lcore
 * 0, then the dataplane lcores, then each group's workers) so the plan it
 * prints is the one the daemon runs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

/* ---- port capabilities without a device -------------------------------------- */

int aw_conf_port_caps_builtin(void *ctx, unsigned id, const struct aw_conf_port *port,
			      struct aw_conf_port_caps *caps)
{
	/* Queue limits of DPDK 22.11's virtual devices (driver constants:
	 * RTE_PMD_TAP_MAX_QUEUES, ETH_MEMIF_MAX_NUM_Q_PAIRS,
	 * RTE_PMD_RING_MAX_RX_RINGS, RTE_PMD_AF_PACKET_MAX_RINGS). */
	static const struct {
		const char *prefix;
		uint32_t queues;
		uint32_t desc_max;
	} vdevs[] = {
		{"net_tap", 16, 0},
		{"net_memif", 255, 1u << 14},
		{"net_ring", 16, 0},
		{"net_af_packet", 16, 0},
	};
	const struct aw_topo *t = ctx;

	(void)id;
	memset(caps, 0, sizeof(*caps));
	caps->node = -1;
	if (t && aw_topo_port_caps(t, port->device, caps))
		return 0;
	for (unsigned i = 0; i < sizeof(vdevs) / sizeof(vdevs[0]); i++) {
		size_t n = strlen(vdevs[i].prefix);

		if (strncmp(port->device, vdevs[i].prefix, n) == 0 && port->device[n] >= '0' &&
		    port->device[n] <= '9') {
			snprintf(caps->driver, sizeof(caps->driver), "%s", vdevs[i].prefix);
			caps->max_rx_queues = vdevs[i].queues;
			caps->max_tx_queues = vdevs[i].queues;
			caps->rx_desc_max = vdevs[i].desc_max;
			caps->tx_desc_max = vdevs[i].desc_max;
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- helpers ------------------------------------------------------------------- */

static const char *size_str(uint64_t v, char *buf)
{
	return conf_fmt_size(v, buf, 32);
}

static uint32_t eff_queues(uint32_t q, uint32_t n_dataplane)
{
	return q ? q : (n_dataplane ? n_dataplane : 1);
}

/* Who owns a CPU: for the "used twice" check. */
struct owner {
	int role; /* -1 free, else enum aw_conf_role */
	unsigned index;
};

static void owner_name(const struct owner *o, char *buf, size_t size)
{
	if (o->role == AW_CONF_ROLE_MAIN)
		snprintf(buf, size, "[eal] main_lcore");
	else if (o->role == AW_CONF_ROLE_DATAPLANE)
		snprintf(buf, size, "[dataplane] lcores");
	else
		snprintf(buf, size, "[group %u] lcores", o->index);
}

static const char *owner_where(const struct aw_conf *c, const struct owner *o)
{
	if (o->role == AW_CONF_ROLE_MAIN)
		return conf_where(c, "eal", 0, "main_lcore");
	if (o->role == AW_CONF_ROLE_DATAPLANE)
		return conf_where(c, "dataplane", 0, "lcores");
	return conf_where(c, "group", (int)o->index, "lcores");
}

static const char *machine_name(const struct aw_topo *t, char *buf, size_t size)
{
	if (strcmp(t->source, "/sys") == 0)
		snprintf(buf, size, "this machine");
	else
		snprintf(buf, size, "the machine described in %s", t->source);
	return buf;
}

/* Report the CPUs of 'set' that do not exist or are outside the affinity,
 * once per list. */
static void check_cpus_exist(const struct aw_topo *t, struct aw_conf_report *rep,
			     const struct aw_cpuset *set, const char *where, const char *what)
{
	struct aw_cpuset missing, denied;
	char list[256], have[256], m[300];
	unsigned nm, nd;

	memset(&missing, 0, sizeof(missing));
	memset(&denied, 0, sizeof(denied));
	for (unsigned cpu = 0; cpu < AW_TOPO_MAX_CPUS; cpu++) {
		if (!aw_cpuset_has(set, cpu))
			continue;
		if (!aw_cpuset_has(&t->online, cpu))
			aw_cpuset_add(&missing, cpu);
		else if (!aw_cpuset_has(&t->allowed, cpu))
			aw_cpuset_add(&denied, cpu);
	}
	nm = aw_cpuset_count(&missing);
	nd = aw_cpuset_count(&denied);
	if (nm) {
		aw_cpuset_format(&missing, list, sizeof(list));
		aw_cpuset_format(&t->online, have, sizeof(have));
		conf_diag(rep, AW_CONF_ERROR, where, what, "CPU%s %s do%s not exist on %s",
			  nm == 1 ? "" : "s", list, nm == 1 ? "es" : "",
			  machine_name(t, m, sizeof(m)));
		conf_fix(rep, "use CPUs %s", have);
	}
	if (nd) {
		aw_cpuset_format(&denied, list, sizeof(list));
		aw_cpuset_format(&t->allowed, have, sizeof(have));
		conf_diag(rep, AW_CONF_ERROR, where, what,
			  "CPU%s %s %s outside this process's CPU affinity (%s)",
			  nd == 1 ? "" : "s", list, nd == 1 ? "is" : "are", have);
		conf_fix(rep,
			 "start agentwire with an affinity (taskset, cgroup cpuset) that includes "
			 "them, or use CPUs %s",
			 have);
	}
}

static bool is_vdev(const char *dev)
{
	return strncmp(dev, "net_", 4) == 0;
}

uint32_t aw_conf_mbuf_bytes(const struct aw_conf *c)
{
	uint32_t mtu = 0, room = 2048;

	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++)
		if (c->ports[p].present && c->ports[p].mtu > mtu)
			mtu = c->ports[p].mtu;
	/* Ethernet header, VLAN tag and FCS around the IP MTU */
	if (mtu + 22 > room)
		room = (mtu + 22 + 1023) & ~1023u;
	return 128 /* struct rte_mbuf */ + 128 /* headroom */ + room + 64 /* mempool header */;
}

/* ---- validation ------------------------------------------------------------------ */

static void add_lcore(struct aw_conf_plan *plan, struct aw_conf_report *rep, const char *where,
		      unsigned cpu, int node, enum aw_conf_role role, unsigned index, bool leader)
{
	struct aw_conf_lcore *l;

	if (plan->n_lcores >= AW_CONF_MAX_LCORES) {
		if (plan->n_lcores == AW_CONF_MAX_LCORES) {
			conf_diag(rep, AW_CONF_ERROR, where, "",
				  "more than %u lcores in total (DPDK's RTE_MAX_LCORE)",
				  AW_CONF_MAX_LCORES);
			conf_fix(rep, "use fewer worker or dataplane CPUs");
			plan->n_lcores++; /* report once */
		}
		return;
	}
	l = &plan->lcores[plan->n_lcores];
	l->lcore = plan->n_lcores;
	l->cpu = cpu;
	l->node = node;
	l->role = role;
	l->index = index;
	l->leader = leader;
	plan->n_lcores++;
}

static int check_cpus(const struct aw_conf *c, const struct aw_topo *t, struct aw_conf_report *rep,
		      struct aw_conf_plan *plan)
{
	struct owner *own = calloc(AW_TOPO_MAX_CPUS, sizeof(*own));
	char a[64], b[64], what[64];
	unsigned di = 0;

	if (!own)
		return -ENOMEM;
	for (unsigned i = 0; i < AW_TOPO_MAX_CPUS; i++)
		own[i].role = -1;

	/* main lcore */
	{
		struct aw_cpuset one;

		memset(&one, 0, sizeof(one));
		aw_cpuset_add(&one, c->eal.main_lcore);
		check_cpus_exist(t, rep, &one, conf_where(c, "eal", 0, "main_lcore"),
				 "[eal] main_lcore");
	}
	check_cpus_exist(t, rep, &c->dataplane.lcores, conf_where(c, "dataplane", 0, "lcores"),
			 "[dataplane] lcores");
	own[c->eal.main_lcore].role = AW_CONF_ROLE_MAIN;
	add_lcore(plan, rep, c->path, c->eal.main_lcore, aw_topo_cpu_node(t, c->eal.main_lcore),
		  AW_CONF_ROLE_MAIN, 0, false);

	/* dataplane lcores: never on the main lcore's CPU (a busy poller next to
	 * the control thread took net_tap's p99 from 62 us to 16 ms) */
	for (unsigned cpu = 0; cpu < AW_TOPO_MAX_CPUS; cpu++) {
		const char *w;

		if (!aw_cpuset_has(&c->dataplane.lcores, cpu))
			continue;
		w = conf_where(c, "dataplane", 0, "lcores");
		if (own[cpu].role == AW_CONF_ROLE_MAIN) {
			conf_diag(rep, AW_CONF_ERROR, w, "[dataplane] lcores",
				  "CPU %u is also the main lcore ([eal] main_lcore at %s)", cpu,
				  conf_where(c, "eal", 0, "main_lcore"));
			conf_fix(rep, "move [eal] main_lcore to a CPU that does not poll packets");
		}
		own[cpu].role = AW_CONF_ROLE_DATAPLANE;
		own[cpu].index = di;
		add_lcore(plan, rep, w, cpu, aw_topo_cpu_node(t, cpu), AW_CONF_ROLE_DATAPLANE, di++,
			  false);
	}
	plan->n_dataplane = di;

	/* worker groups */
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		const struct aw_conf_group *gr = &c->groups[g];
		const char *w = conf_where(c, "group", (int)g, "lcores");
		bool leader = true;

		if (!gr->present)
			continue;
		snprintf(what, sizeof(what), "[group %u] lcores", g);
		check_cpus_exist(t, rep, &gr->lcores, w, what);
		for (unsigned cpu = 0; cpu < AW_TOPO_MAX_CPUS; cpu++) {
			if (!aw_cpuset_has(&gr->lcores, cpu))
				continue;
			if (own[cpu].role == AW_CONF_ROLE_MAIN) {
				/* the control thread sleeps most of the time: a shared CPU
				 * works when the workers give the CPU up (the 2-CPU demo);
				 * a polling worker leaves the control thread only the
				 * scheduler's time slices */
				if (gr->idle == AW_CONF_IDLE_POLL) {
					conf_diag(rep, AW_CONF_WARNING, w, what,
						  "CPU %u is shared with the main lcore while the "
						  "group polls: "
						  "the control thread gets only time slices",
						  cpu);
					conf_fix(rep,
						 "set idle = yield (or sleep) in [group %u], or "
						 "move "
						 "[eal] main_lcore to a CPU of its own",
						 g);
				}
			} else if (own[cpu].role >= 0) {
				owner_name(&own[cpu], a, sizeof(a));
				snprintf(b, sizeof(b), "%s", owner_where(c, &own[cpu]));
				conf_diag(rep, AW_CONF_ERROR, w, what,
					  "CPU %u is already used by %s (%s)", cpu, a, b);
				conf_fix(rep,
					 "give each CPU one role: remove CPU %u from one of the "
					 "two lists",
					 cpu);
			} else {
				own[cpu].role = AW_CONF_ROLE_WORKER;
				own[cpu].index = g;
			}
			add_lcore(plan, rep, w, cpu, aw_topo_cpu_node(t, cpu), AW_CONF_ROLE_WORKER,
				  g, leader);
			leader = false;
		}
	}
	free(own);
	return 0;
}

/* Resolve each group's node and check its CPUs are on it. */
static void check_groups(const struct aw_conf *c, const struct aw_topo *t,
			 struct aw_conf_report *rep, int32_t *nodes)
{
	char what[64], list[256], list2[256];

	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		const struct aw_conf_group *gr = &c->groups[g];
		const char *w;
		int first_node = -2;
		bool spans = false;

		nodes[g] = -1;
		if (!gr->present)
			continue;
		snprintf(what, sizeof(what), "[group %u]", g);
		for (unsigned cpu = 0; cpu < AW_TOPO_MAX_CPUS; cpu++) {
			int n;

			if (!aw_cpuset_has(&gr->lcores, cpu))
				continue;
			n = aw_topo_cpu_node(t, cpu);
			if (n < 0)
				continue; /* reported as a missing CPU */
			if (first_node == -2)
				first_node = n;
			else if (n != first_node)
				spans = true;
		}
		if (gr->node >= 0) {
			struct aw_cpuset wrong;
			int wn = -1;

			w = conf_where(c, "group", (int)g, "node");
			nodes[g] = gr->node;
			if ((unsigned)gr->node >= t->n_nodes || !t->nodes[gr->node].present) {
				conf_diag(rep, AW_CONF_ERROR, w, what,
					  "node %d does not exist on %s (%u node%s)", gr->node,
					  t->source, t->n_nodes, t->n_nodes == 1 ? "" : "s");
				conf_fix(rep, "set node = auto or a node below %u", t->n_nodes);
				continue;
			}
			memset(&wrong, 0, sizeof(wrong));
			for (unsigned cpu = 0; cpu < AW_TOPO_MAX_CPUS; cpu++)
				if (aw_cpuset_has(&gr->lcores, cpu) &&
				    aw_topo_cpu_node(t, cpu) >= 0 &&
				    aw_topo_cpu_node(t, cpu) != gr->node) {
					aw_cpuset_add(&wrong, cpu);
					if (wn < 0)
						wn = aw_topo_cpu_node(t, cpu);
				}
			if (wn >= 0) {
				aw_cpuset_format(&wrong, list, sizeof(list));
				aw_cpuset_format(&t->nodes[gr->node].cpus, list2, sizeof(list2));
				conf_diag(rep, AW_CONF_ERROR,
					  conf_where(c, "group", (int)g, "lcores"), what,
					  "CPUs %s are not on node %d (CPU %u is on node %d): "
					  "workers would read their KV cache and weights across "
					  "the interconnect",
					  list, gr->node, (unsigned)aw_cpuset_first(&wrong), wn);
				if (spans)
					conf_fix(rep,
						 "use CPUs of node %d (%s) only: a group lives on "
						 "one node",
						 gr->node, list2);
				else
					conf_fix(rep, "use CPUs of node %d (%s), or set node = %d",
						 gr->node, list2, wn);
			}
		} else {
			w = conf_where(c, "group", (int)g, "lcores");
			if (spans) {
				conf_diag(rep, AW_CONF_ERROR, w, what,
					  "CPUs span more than one NUMA node; a group lives on one "
					  "node");
				conf_fix(rep, "split it into one [group N] per node");
			}
			nodes[g] = first_node >= 0 ? first_node : 0;
		}
	}
}

static int ilog2_ceil(uint32_t v)
{
	int n = 0;

	while ((1u << n) < v && n < 31)
		n++;
	return n;
}

static void check_ports(const struct aw_conf *c, const struct aw_conf_env *env,
			struct aw_conf_report *rep, struct aw_conf_plan *plan)
{
	aw_conf_port_caps_fn *fn = env->port_caps ? env->port_caps : aw_conf_port_caps_builtin;
	void *ctx = env->port_caps ? env->ctx : (void *)env->topo;
	uint32_t nd = plan->n_dataplane;
	char what[64];

	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
		const struct aw_conf_port *pt = &c->ports[p];
		struct aw_conf_port_caps *caps = &plan->caps[p];
		uint32_t rxq = eff_queues(pt->rx_queues, nd), txq = eff_queues(pt->tx_queues, nd);

		if (!pt->present)
			continue;
		snprintf(what, sizeof(what), "[port %u]", p);

		/* the same device or address twice */
		for (unsigned q = 0; q < p; q++) {
			if (!c->ports[q].present)
				continue;
			if (strcmp(c->ports[q].device, pt->device) == 0) {
				conf_diag(rep, AW_CONF_ERROR,
					  conf_where(c, "port", (int)p, "device"), what,
					  "device '%s' is also [port %u] (%s)", pt->device, q,
					  conf_where(c, "port", (int)q, "device"));
				conf_fix(rep, "each [port N] drives a different device");
			}
			if (c->ports[q].addr == pt->addr) {
				conf_diag(rep, AW_CONF_ERROR,
					  conf_where(c, "port", (int)p, "address"), what,
					  "address is also the address of [port %u]", q);
				conf_fix(rep, "give each port its own address");
			}
		}
		if (pt->gateway) {
			uint32_t mask = 0xffffffffu << (32 - pt->prefix);

			if ((pt->gateway & mask) != (pt->addr & mask)) {
				conf_diag(rep, AW_CONF_ERROR,
					  conf_where(c, "port", (int)p, "gateway"), what,
					  "gateway %u.%u.%u.%u is outside the port's subnet /%u",
					  pt->gateway >> 24, (pt->gateway >> 16) & 255,
					  (pt->gateway >> 8) & 255, pt->gateway & 255, pt->prefix);
				conf_fix(rep,
					 "use a gateway inside the subnet of 'address', or none");
			}
			if (pt->gateway == pt->addr) {
				conf_diag(rep, AW_CONF_ERROR,
					  conf_where(c, "port", (int)p, "gateway"), what,
					  "gateway is the port's own address");
			}
		}
		if (pt->tx_queues && nd && pt->tx_queues < nd) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "port", (int)p, "tx_queues"),
				  what,
				  "%u TX queues for %u dataplane lcores: each lcore needs its own "
				  "TX queue",
				  pt->tx_queues, nd);
			conf_fix(rep, "set tx_queues = %u (or 0: one per lcore)", nd);
		}
		if (pt->rx_queues && nd && pt->rx_queues < nd)
			conf_diag(rep, AW_CONF_WARNING, conf_where(c, "port", (int)p, "rx_queues"),
				  what,
				  "%u RX queues for %u dataplane lcores: %u lcore%s will not poll "
				  "this port",
				  pt->rx_queues, nd, nd - pt->rx_queues,
				  nd - pt->rx_queues == 1 ? "" : "s");

		memset(caps, 0, sizeof(*caps));
		caps->node = -1;
		if (fn(ctx, p, pt, caps) < 0) {
			plan->caps_known[p] = false;
			continue;
		}
		plan->caps_known[p] = true;
		if (caps->max_rx_queues && rxq > caps->max_rx_queues) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "port", (int)p, "rx_queues"),
				  what, "%u RX queues%s, but %s takes at most %u", rxq,
				  pt->rx_queues ? "" : " (one per dataplane lcore)",
				  caps->driver[0] ? caps->driver : "the device",
				  caps->max_rx_queues);
			conf_fix(rep,
				 "set rx_queues to at most %u (and use at most that many dataplane "
				 "lcores)",
				 caps->max_rx_queues);
		}
		if (caps->max_tx_queues && txq > caps->max_tx_queues) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "port", (int)p, "tx_queues"),
				  what, "%u TX queues%s, but %s takes at most %u", txq,
				  pt->tx_queues ? "" : " (one per dataplane lcore)",
				  caps->driver[0] ? caps->driver : "the device",
				  caps->max_tx_queues);
			conf_fix(rep, "use at most %u dataplane lcores for this port",
				 caps->max_tx_queues);
		}
		{
			const struct {
				const char *key;
				uint32_t v, min, max, align;
			} d[2] = {
				{"rx_descriptors", pt->rx_descriptors, caps->rx_desc_min,
				 caps->rx_desc_max, caps->rx_desc_align},
				{"tx_descriptors", pt->tx_descriptors, caps->tx_desc_min,
				 caps->tx_desc_max, caps->tx_desc_align},
			};

			for (unsigned i = 0; i < 2; i++) {
				const char *w = conf_where(c, "port", (int)p, d[i].key);

				if ((d[i].max && d[i].v > d[i].max) ||
				    (d[i].min && d[i].v < d[i].min)) {
					conf_diag(rep, AW_CONF_ERROR, w, what,
						  "%s = %u is outside %u..%u of %s", d[i].key,
						  d[i].v, d[i].min, d[i].max,
						  caps->driver[0] ? caps->driver : "the device");
					conf_fix(rep, "set %s within %u..%u", d[i].key, d[i].min,
						 d[i].max);
				} else if (d[i].align > 1 && d[i].v % d[i].align) {
					conf_diag(rep, AW_CONF_ERROR, w, what,
						  "%s = %u is not a multiple of %u", d[i].key,
						  d[i].v, d[i].align);
				}
			}
		}
		if (caps->max_mtu && pt->mtu > caps->max_mtu) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "port", (int)p, "mtu"), what,
				  "mtu %u is above the device's maximum %u", pt->mtu,
				  caps->max_mtu);
			conf_fix(rep, "set mtu to at most %u", caps->max_mtu);
		}
		if (caps->node >= 0 && nd) {
			bool local = false;

			for (unsigned i = 0; i < plan->n_lcores; i++)
				if (plan->lcores[i].role == AW_CONF_ROLE_DATAPLANE &&
				    plan->lcores[i].node == caps->node)
					local = true;
			if (!local)
				conf_diag(rep, AW_CONF_WARNING,
					  conf_where(c, "dataplane", 0, "lcores"), what,
					  "the device is on node %d but no dataplane lcore is: "
					  "every packet crosses the interconnect",
					  caps->node);
		}
	}
	(void)ilog2_ceil;
}

static void check_limits(const struct aw_conf *c, struct aw_conf_report *rep)
{
	char what[64];

	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		const struct aw_conf_group *gr = &c->groups[g];

		if (!gr->present)
			continue;
		snprintf(what, sizeof(what), "[group %u]", g);
		if (gr->prefill_chunk > gr->max_batch_tokens) {
			conf_diag(rep, AW_CONF_ERROR,
				  conf_where(c, "group", (int)g, "prefill_chunk"), what,
				  "prefill_chunk %u is larger than max_batch_tokens %u",
				  gr->prefill_chunk, gr->max_batch_tokens);
			conf_fix(rep, "set prefill_chunk to at most %u", gr->max_batch_tokens);
		}
		if (gr->max_batch > gr->max_batch_tokens) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "group", (int)g, "max_batch"),
				  what,
				  "max_batch %u is larger than max_batch_tokens %u (each sequence "
				  "takes at least one token per step)",
				  gr->max_batch, gr->max_batch_tokens);
			conf_fix(rep, "raise max_batch_tokens to at least %u", gr->max_batch);
		}
		if (c->limits.queue_depth > gr->ring_size) {
			conf_diag(rep, AW_CONF_ERROR, conf_where(c, "limits", 0, "queue_depth"),
				  "[limits] queue_depth",
				  "%u waiting requests do not fit the %u-entry ring of [group %u]",
				  c->limits.queue_depth, gr->ring_size, g);
			conf_fix(rep, "lower [limits] queue_depth or raise [group %u] ring_size",
				 g);
		}
	}
	if (c->limits.default_deadline_ms > c->limits.max_deadline_ms) {
		conf_diag(rep, AW_CONF_ERROR, conf_where(c, "limits", 0, "default_deadline_ms"),
			  "[limits] default_deadline_ms", "%u ms is above max_deadline_ms (%u ms)",
			  c->limits.default_deadline_ms, c->limits.max_deadline_ms);
	}
	if (c->telemetry.name[0] != '/') {
		conf_diag(rep, AW_CONF_ERROR, conf_where(c, "telemetry", 0, "name"),
			  "[telemetry] name", "'%s' does not start with '/'", c->telemetry.name);
		conf_fix(rep, "write e.g. /agentwire");
	}
	/* EAL options agentwire sets itself must not be given twice */
	{
		static const char *const own[] = {
			"-l",		"-c",	     "--lcores",      "--main-lcore", "-m",
			"--socket-mem", "--no-huge", "--file-prefix", "-a",	      "--allow",
			"--vdev",	"--no-pci",  "--in-memory"};
		char args[AW_CONF_ARGS_LEN], *save = NULL;

		snprintf(args, sizeof(args), "%s", c->eal.args);
		for (char *a = strtok_r(args, " \t", &save); a; a = strtok_r(NULL, " \t", &save)) {
			for (unsigned i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
				size_t n = strlen(own[i]);

				if (strncmp(a, own[i], n) == 0 &&
				    (a[n] == '\0' || a[n] == '=' || (n == 2 && a[n] != '-'))) {
					conf_diag(rep, AW_CONF_ERROR,
						  conf_where(c, "eal", 0, "args"), "[eal] args",
						  "'%s' is set by agentwire itself", a);
					conf_fix(rep,
						 "remove it: lcores come from [dataplane]/[group "
						 "N], memory from [eal] memory/hugepages, devices "
						 "from [port N] device");
				}
			}
		}
	}
}

/* Memory per node: weights, KV, mbufs, rings; then against the node. */
static void check_memory(const struct aw_conf *c, const struct aw_conf_env *env,
			 struct aw_conf_report *rep, struct aw_conf_plan *plan,
			 const int32_t *nodes)
{
	const struct aw_topo *t = env->topo;
	aw_conf_file_size_fn *fsize = env->file_size ? env->file_size : conf_stat_size;
	bool dp_node[AW_TOPO_MAX_NODES] = {false}, weights_node[AW_TOPO_MAX_NODES] = {false};
	uint64_t dpdk_heap = 0;
	char a[32], b[32], cc[32], d[32], e[32];
	int rc;

	/* the model file */
	plan->model_size = 0;
	if (t && aw_topo_file_size(t, c->model.path, &plan->model_size)) {
		rc = 0;
	} else {
		rc = fsize(env->ctx, c->model.path, &plan->model_size);
	}
	if (rc < 0) {
		conf_diag(rep, AW_CONF_ERROR, conf_where(c, "model", 0, "path"), "[model] path",
			  "model file '%s': %s", c->model.path, strerror(-rc));
		conf_fix(rep, "point path at a GGUF file (tools: aw-mkmodel writes test models), "
			      "or --set model.path=FILE");
	} else if (plan->model_size < 32) {
		conf_diag(rep, AW_CONF_ERROR, conf_where(c, "model", 0, "path"), "[model] path",
			  "model file '%s' is %llu bytes: too small to be a GGUF file",
			  c->model.path, (unsigned long long)plan->model_size);
	}

	/* where things live */
	for (unsigned i = 0; i < plan->n_lcores && i < AW_CONF_MAX_LCORES; i++)
		if (plan->lcores[i].role == AW_CONF_ROLE_DATAPLANE && plan->lcores[i].node >= 0)
			dp_node[plan->lcores[i].node] = true;
	if (c->model.replicas == AW_CONF_REPLICAS_SINGLE) {
		for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++)
			if (c->groups[g].present && nodes[g] >= 0) {
				weights_node[nodes[g]] = true;
				break;
			}
	} else {
		for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++)
			if (c->groups[g].present && nodes[g] >= 0)
				weights_node[nodes[g]] = true;
	}
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++) {
		struct aw_conf_node_mem *m = &plan->mem[n];

		memset(m, 0, sizeof(*m));
		if (t && n < t->n_nodes) {
			m->available = t->nodes[n].memory;
			m->hugepages = t->nodes[n].hugepages;
		}
		if (weights_node[n])
			m->weights = plan->model_size;
		if (dp_node[n])
			m->mbufs = (uint64_t)c->dataplane.mbufs * aw_conf_mbuf_bytes(c);
	}
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++)
		if (c->groups[g].present && nodes[g] >= 0 && nodes[g] < AW_TOPO_MAX_NODES) {
			plan->mem[nodes[g]].kv += c->groups[g].kv_cache;
			plan->mem[nodes[g]].rings += (uint64_t)c->groups[g].ring_size * 8;
		}
	for (unsigned i = 0; i < plan->n_lcores && i < AW_CONF_MAX_LCORES; i++) {
		const struct aw_conf_lcore *l = &plan->lcores[i];

		if (l->role == AW_CONF_ROLE_DATAPLANE && l->node >= 0)
			plan->mem[l->node].rings += (uint64_t)c->dataplane.tx_ring_size * 8 +
						    (uint64_t)c->dataplane.retransmit_entries * 64;
	}
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++) {
		struct aw_conf_node_mem *m = &plan->mem[n];

		m->total = m->weights + m->kv + m->mbufs + m->rings;
		dpdk_heap += m->mbufs + m->rings;
		if (!m->total)
			continue;
		if (t && (n >= t->n_nodes || !t->nodes[n].present))
			continue; /* a missing node is reported with its group */
		if (m->available && m->total > m->available) {
			char fix[160] = "";
			size_t len = 0;

			for (unsigned g = 0; g < AW_CONF_MAX_GROUPS && len + 16 < sizeof(fix); g++)
				if (c->groups[g].present && nodes[g] == (int32_t)n)
					len += (size_t)snprintf(fix + len, sizeof(fix) - len,
								"%s%u", len ? ", " : "", g);
			int g0 = -1;

			/* blame the group with the largest KV cache on the node */
			for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++)
				if (c->groups[g].present && nodes[g] == (int32_t)n &&
				    (g0 < 0 || c->groups[g].kv_cache > c->groups[g0].kv_cache))
					g0 = (int)g;
			conf_diag(rep, AW_CONF_ERROR,
				  g0 >= 0 ? conf_where(c, "group", g0, "kv_cache") : c->path,
				  "memory",
				  "node %u needs %s (weights %s, KV cache %s, mbufs and rings %s) "
				  "but has %s",
				  n, size_str(m->total, a), size_str(m->weights, b),
				  size_str(m->kv, cc), size_str(m->mbufs + m->rings, d),
				  size_str(m->available, e));
			conf_fix(rep,
				 "lower kv_cache of [group %s] by %s in total, or move a group to "
				 "another node",
				 fix, size_str(m->total - m->available, a));
		} else if (c->eal.hugepages && m->hugepages < m->total) {
			conf_diag(rep, AW_CONF_WARNING, t ? t->source : "", "memory",
				  "node %u has %s of hugepages reserved; the plan needs %s", n,
				  size_str(m->hugepages, a), size_str(m->total, b));
			conf_fix(rep,
				 "reserve them before starting: echo %llu > "
				 "/sys/devices/system/node/node%u/hugepages/hugepages-2048kB/"
				 "nr_hugepages",
				 (unsigned long long)((m->total + (2u << 20) - 1) >> 21), n);
		}
	}
	if (dpdk_heap > c->eal.memory) {
		conf_diag(rep, AW_CONF_ERROR, conf_where(c, "eal", 0, "memory"), "[eal] memory",
			  "%s is too small for the mbuf pools and rings (%s)",
			  size_str(c->eal.memory, a), size_str(dpdk_heap, b));
		conf_fix(rep, "set [eal] memory to at least %s, or lower [dataplane] mbufs",
			 size_str((dpdk_heap + (64u << 20) + (1u << 20) - 1) &
					  ~(uint64_t)((1u << 20) - 1),
				  a));
	}
}

int aw_conf_validate(const struct aw_conf *c, const struct aw_conf_env *env,
		     struct aw_conf_report *rep, struct aw_conf_plan *plan)
{
	int32_t nodes[AW_CONF_MAX_GROUPS];
	unsigned before = rep->errors;
	size_t len = 0;

	memset(plan, 0, sizeof(*plan));
	if (!env || !env->topo) {
		conf_diag(rep, AW_CONF_ERROR, c->path, "", "no machine topology to check against");
		return -EINVAL;
	}
	if (check_cpus(c, env->topo, rep, plan) < 0)
		return -ENOMEM;
	check_groups(c, env->topo, rep, nodes);
	/* workers run on their group's node (resolved "auto") */
	for (unsigned i = 0; i < plan->n_lcores && i < AW_CONF_MAX_LCORES; i++)
		if (plan->lcores[i].role == AW_CONF_ROLE_WORKER && plan->lcores[i].node < 0)
			plan->lcores[i].node = nodes[plan->lcores[i].index];
	check_ports(c, env, rep, plan);
	check_limits(c, rep);
	check_memory(c, env, rep, plan, nodes);

	for (unsigned i = 0;
	     i < plan->n_lcores && i < AW_CONF_MAX_LCORES && len + 16 < sizeof(plan->eal_lcores);
	     i++)
		len += (size_t)snprintf(plan->eal_lcores + len, sizeof(plan->eal_lcores) - len,
					"%s%u@%u", i ? "," : "", plan->lcores[i].lcore,
					plan->lcores[i].cpu);
	return rep->errors > before ? -EINVAL : 0;
}

/* ---- the plan ------------------------------------------------------------------ */

void aw_conf_plan_print(const struct aw_conf *c, const struct aw_conf_env *env,
			const struct aw_conf_plan *plan, FILE *out)
{
	const struct aw_topo *t = env ? env->topo : NULL;
	char a[32], b[32], cc[32], d[32], e[32], f[32], list[256];

	fprintf(out, "agentwire plan for %s\n\n", c->path);
	if (t) {
		fprintf(out, "machine (%s): %u NUMA node%s\n", t->source, t->n_nodes,
			t->n_nodes == 1 ? "" : "s");
		for (unsigned n = 0; n < t->n_nodes; n++) {
			if (!t->nodes[n].present)
				continue;
			aw_cpuset_format(&t->nodes[n].cpus, list, sizeof(list));
			fprintf(out, "  node %u: CPUs %s, memory %s, hugepages %s\n", n,
				list[0] ? list : "none", size_str(t->nodes[n].memory, a),
				size_str(t->nodes[n].hugepages, b));
		}
	}

	fprintf(out, "\nlcores:\n  %-6s %-5s %-5s %s\n", "lcore", "cpu", "node", "role");
	for (unsigned i = 0; i < plan->n_lcores && i < AW_CONF_MAX_LCORES; i++) {
		const struct aw_conf_lcore *l = &plan->lcores[i];
		unsigned j = i;

		/* one line for a run of workers of a group on consecutive CPUs */
		while (l->role == AW_CONF_ROLE_WORKER && !l->leader && j + 1 < plan->n_lcores &&
		       j + 1 < AW_CONF_MAX_LCORES &&
		       plan->lcores[j + 1].role == AW_CONF_ROLE_WORKER &&
		       !plan->lcores[j + 1].leader && plan->lcores[j + 1].index == l->index &&
		       plan->lcores[j + 1].cpu == plan->lcores[j].cpu + 1 &&
		       plan->lcores[j + 1].node == l->node)
			j++;
		if (j > i) {
			snprintf(list, sizeof(list), "%u-%u", l->lcore, plan->lcores[j].lcore);
			snprintf(a, sizeof(a), "%u-%u", l->cpu, plan->lcores[j].cpu);
			fprintf(out, "  %-6s %-5s %-5d group %u workers (%u): matmul slices\n",
				list, a, l->node, l->index, j - i + 1);
			i = j;
			continue;
		}
		fprintf(out, "  %-6u %-5u %-5d ", l->lcore, l->cpu, l->node);
		switch (l->role) {
		case AW_CONF_ROLE_MAIN:
			fprintf(out, "main: control, telemetry, model loading\n");
			break;
		case AW_CONF_ROLE_DATAPLANE: {
			size_t n = 0;

			list[0] = '\0';
			for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
				uint32_t rxq = eff_queues(c->ports[p].rx_queues, plan->n_dataplane);

				if (!c->ports[p].present)
					continue;
				for (uint32_t q = l->index; q < rxq && n + 24 < sizeof(list);
				     q += plan->n_dataplane)
					n += (size_t)snprintf(list + n, sizeof(list) - n,
							      "%sp%u/q%u", n ? " " : "", p, q);
			}
			fprintf(out, "dataplane %u: rx %s, tx queue %u on each port, %s\n",
				l->index, list[0] ? list : "(none)", l->index,
				c->dataplane.idle == AW_CONF_IDLE_POLL	  ? "polls"
				: c->dataplane.idle == AW_CONF_IDLE_YIELD ? "yields when idle"
									  : "sleeps when idle");
			break;
		}
		case AW_CONF_ROLE_WORKER:
			fprintf(out, "group %u %s\n", l->index,
				l->leader ? "leader: scheduler + matmul slice"
					  : "worker: matmul slice");
			break;
		}
	}

	fprintf(out, "\nports:\n");
	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
		const struct aw_conf_port *pt = &c->ports[p];
		const struct aw_conf_port_caps *k = &plan->caps[p];

		if (!pt->present)
			continue;
		fprintf(out, "  port %u: %s  %u.%u.%u.%u/%u udp %u mtu %u\n", p, pt->device,
			pt->addr >> 24, (pt->addr >> 16) & 255, (pt->addr >> 8) & 255,
			pt->addr & 255, pt->prefix, pt->udp_port, pt->mtu);
		fprintf(out, "    rx %u queue%s x %u descriptors, tx %u queue%s x %u descriptors",
			eff_queues(pt->rx_queues, plan->n_dataplane),
			eff_queues(pt->rx_queues, plan->n_dataplane) == 1 ? "" : "s",
			pt->rx_descriptors, eff_queues(pt->tx_queues, plan->n_dataplane),
			eff_queues(pt->tx_queues, plan->n_dataplane) == 1 ? "" : "s",
			pt->tx_descriptors);
		if (pt->gateway)
			fprintf(out, ", gateway %u.%u.%u.%u", pt->gateway >> 24,
				(pt->gateway >> 16) & 255, (pt->gateway >> 8) & 255,
				pt->gateway & 255);
		fprintf(out, "\n");
		if (plan->caps_known[p]) {
			fprintf(out, "    device limits (%s): %u rx / %u tx queues",
				k->driver[0] ? k->driver : "described", k->max_rx_queues,
				k->max_tx_queues);
			if (k->speed_mbps)
				fprintf(out, ", %u Gb/s", k->speed_mbps / 1000);
			if (k->node >= 0)
				fprintf(out, ", node %d", k->node);
			fprintf(out, "\n");
		} else
			fprintf(out, "    device limits: unknown until the port is probed (checked "
				     "at start-up)\n");
	}

	fprintf(out, "\nrings:\n");
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++)
		if (c->groups[g].present)
			fprintf(out,
				"  group %u requests: %u entries (%u may wait before OVERLOADED)\n",
				g, c->groups[g].ring_size, c->limits.queue_depth);
	fprintf(out, "  dataplane responses: %u x %u entries\n", plan->n_dataplane,
		c->dataplane.tx_ring_size);
	fprintf(out, "  retransmit store: %u x %u datagrams, %u ms\n", plan->n_dataplane,
		c->dataplane.retransmit_entries, c->dataplane.retransmit_ttl_ms);

	fprintf(out, "\ngroups:\n");
	for (unsigned g = 0; g < AW_CONF_MAX_GROUPS; g++) {
		const struct aw_conf_group *gr = &c->groups[g];
		int node = -1;

		if (!gr->present)
			continue;
		for (unsigned i = 0; i < plan->n_lcores && i < AW_CONF_MAX_LCORES; i++)
			if (plan->lcores[i].role == AW_CONF_ROLE_WORKER &&
			    plan->lcores[i].index == g)
				node = plan->lcores[i].node;
		aw_cpuset_format(&gr->lcores, list, sizeof(list));
		fprintf(out,
			"  group %u: node %d, CPUs %s (%u), batch %u seq / %u tokens, prefill "
			"chunk %u, KV %s in %u-token blocks, %s when idle\n",
			g, node, list, aw_cpuset_count(&gr->lcores), gr->max_batch,
			gr->max_batch_tokens, gr->prefill_chunk, size_str(gr->kv_cache, a),
			gr->kv_block_tokens,
			gr->idle == AW_CONF_IDLE_POLL	 ? "polls"
			: gr->idle == AW_CONF_IDLE_YIELD ? "yields"
							 : "sleeps");
	}

	fprintf(out, "\nmodel: %s (%s), loaded with %s, %u x %s reads, %s\n", c->model.path,
		plan->model_size ? size_str(plan->model_size, a) : "size unknown",
		c->model.load == AW_CONF_LOAD_IO_URING	 ? "io_uring"
		: c->model.load == AW_CONF_LOAD_BUFFERED ? "buffered reads"
							 : "mmap",
		c->model.queue_depth, size_str(c->model.request_size, b),
		c->model.replicas == AW_CONF_REPLICAS_PER_NODE ? "one copy per node with a group"
							       : "one copy");

	fprintf(out, "\nmemory per node:\n  %-5s %-10s %-10s %-10s %-10s %-10s %s\n", "node",
		"weights", "kv", "mbufs", "rings", "total", "available");
	for (unsigned n = 0; n < AW_TOPO_MAX_NODES; n++) {
		const struct aw_conf_node_mem *m = &plan->mem[n];

		if (!m->total)
			continue;
		fprintf(out, "  %-5u %-10s %-10s %-10s %-10s %-10s %s\n", n,
			size_str(m->weights, a), size_str(m->kv, b), size_str(m->mbufs, cc),
			size_str(m->rings, d), size_str(m->total, e), size_str(m->available, f));
	}

	{
		char **argv = NULL;
		int argc = 0;

		if (aw_conf_eal_argv(c, plan, "agentwire", &argv, &argc) == 0) {
			fprintf(out, "\nEAL:");
			for (int i = 1; i < argc; i++)
				fprintf(out, " %s", argv[i]);
			fprintf(out, "\n");
			aw_conf_eal_argv_free(argv);
		} else {
			fprintf(out, "\nEAL: (out of memory)\n");
		}
	}
}

static int argv_push(char ***argv, int *argc, int *cap, const char *s)
{
	if (*argc + 2 > *cap) {
		int ncap = *cap ? *cap * 2 : 32;
		char **p = realloc(*argv, (size_t)ncap * sizeof(**argv));

		if (!p)
			return -ENOMEM;
		*argv = p;
		*cap = ncap;
	}
	(*argv)[*argc] = conf_strdup(s);
	if (!(*argv)[*argc])
		return -ENOMEM;
	(*argc)++;
	(*argv)[*argc] = NULL;
	return 0;
}

static void argv_tmp_free(char **argv)
{
	if (!argv)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

/* One block: the pointer array, then the strings. rte_eal_init() reorders
 * and overwrites pointers of the array it is given, so nothing may depend on
 * them to free the strings. */
static char **argv_pack(char **tmp, int argc)
{
	size_t bytes = (size_t)(argc + 1) * sizeof(char *);
	char **out, *p;

	for (int i = 0; i < argc; i++)
		bytes += strlen(tmp[i]) + 1;
	out = malloc(bytes);
	if (!out)
		return NULL;
	p = (char *)(out + argc + 1);
	for (int i = 0; i < argc; i++) {
		size_t n = strlen(tmp[i]) + 1;

		memcpy(p, tmp[i], n);
		out[i] = p;
		p += n;
	}
	out[argc] = NULL;
	return out;
}

void aw_conf_eal_argv_free(char **argv)
{
	free(argv);
}

int aw_conf_eal_argv(const struct aw_conf *c, const struct aw_conf_plan *plan, const char *prog,
		     char ***ret_argv, int *ret_argc)
{
	/* RTE_LOG_EMERG (1) .. RTE_LOG_DEBUG (8), in the order of the enum choices */
	static const char *const levels[] = {"emerg",	"alert",  "crit", "err",
					     "warning", "notice", "info", "debug"};
	char **argv = NULL, buf[AW_CONF_STR_LEN + 16], args[AW_CONF_ARGS_LEN], *save = NULL;
	int argc = 0, cap = 0, rc = 0, level = 5;
	bool any_pci = false;

	for (unsigned i = 0; i < 8; i++)
		if (strcmp(c->log.dpdk_level, levels[i]) == 0)
			level = (int)i + 1;
	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++)
		if (c->ports[p].present && !is_vdev(c->ports[p].device))
			any_pci = true;
	rc |= argv_push(&argv, &argc, &cap, prog);
	rc |= argv_push(&argv, &argc, &cap, "--lcores");
	rc |= argv_push(&argv, &argc, &cap, plan->eal_lcores);
	rc |= argv_push(&argv, &argc, &cap, "--main-lcore");
	rc |= argv_push(&argv, &argc, &cap, "0");
	rc |= argv_push(&argv, &argc, &cap, "--file-prefix");
	rc |= argv_push(&argv, &argc, &cap, c->eal.file_prefix);
	if (!c->eal.hugepages)
		rc |= argv_push(&argv, &argc, &cap, "--no-huge");
	rc |= argv_push(&argv, &argc, &cap, "-m");
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(c->eal.memory >> 20));
	rc |= argv_push(&argv, &argc, &cap, buf);
	if (!any_pci)
		rc |= argv_push(&argv, &argc, &cap, "--no-pci");
	for (unsigned p = 0; p < AW_CONF_MAX_PORTS; p++) {
		if (!c->ports[p].present)
			continue;
		if (is_vdev(c->ports[p].device)) {
			snprintf(buf, sizeof(buf), "--vdev=%s", c->ports[p].device);
			rc |= argv_push(&argv, &argc, &cap, buf);
		} else {
			rc |= argv_push(&argv, &argc, &cap, "-a");
			rc |= argv_push(&argv, &argc, &cap, c->ports[p].device);
		}
	}
	snprintf(buf, sizeof(buf), "--log-level=%d", level);
	rc |= argv_push(&argv, &argc, &cap, buf);
	snprintf(args, sizeof(args), "%s", c->eal.args);
	for (char *a = strtok_r(args, " \t", &save); a; a = strtok_r(NULL, " \t", &save))
		rc |= argv_push(&argv, &argc, &cap, a);
	if (rc) {
		argv_tmp_free(argv);
		return -ENOMEM;
	}
	*ret_argv = argv_pack(argv, argc);
	argv_tmp_free(argv);
	if (!*ret_argv)
		return -ENOMEM;
	*ret_argc = argc;
	return 0;
}
