/* test-conf-eal.c — the EAL arguments a validated plan stands for really
 * start DPDK with that plan: every lcore on the CPU the plan gives it, the
 * main lcore where [eal] main_lcore says, the port's device probed.
 *
 * It loads a config for this machine (dataplane lcore on CPU 1, one worker
 * group sharing CPU 0 with the main lcore, a net_ring port, no hugepages),
 * validates it against the discovered topology, passes aw_conf_eal_argv()
 * to rte_eal_init() and compares. Exit 0 pass, 1 fail, 77 skip (fewer than
 * 2 CPUs in this process's affinity).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "conf.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
			return 1;                                                                  \
		}                                                                                  \
	} while (0)

int main(void)
{
	char model[] = "/tmp/test-conf-eal-XXXXXX", text[1024], prefix[64];
	struct aw_conf_report rep = {0};
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	struct aw_conf *conf = NULL;
	struct aw_topo *topo = NULL;
	struct aw_conf_env env = {0};
	struct aw_err e;
	char **argv = NULL;
	int argc = 0, fd, rc;

	CHECK(plan != NULL);
	CHECK(aw_topo_discover("/sys", &topo, &e) == 0);
	if (!aw_cpuset_has(&topo->allowed, 0) || !aw_cpuset_has(&topo->allowed, 1)) {
		printf("SKIP: needs CPUs 0 and 1 in the affinity\n");
		return 77;
	}
	fd = mkstemp(model);
	CHECK(fd >= 0);
	CHECK(ftruncate(fd, 4096) == 0);
	close(fd);
	snprintf(prefix, sizeof(prefix), "aw-conf-eal-%d", (int)getpid());
	snprintf(text, sizeof(text),
		 "[eal]\nmain_lcore = 0\nhugepages = false\nmemory = 1G\nfile_prefix = %s\n"
		 "[port 0]\ndevice = net_ring0\naddress = 10.97.0.2/24\n"
		 "[dataplane]\nlcores = 1\nidle = yield\nmbufs = 2047\n"
		 "[group 0]\nlcores = 0\nidle = yield\nkv_cache = 16M\n"
		 "[model]\npath = %s\n[log]\ndpdk_level = err\n",
		 prefix, model);
	rc = aw_conf_load_buffer("eal.conf", text, strlen(text), NULL, 0, &rep, &conf);
	aw_conf_report_print(&rep, stderr);
	CHECK(rc == 0);
	env.topo = topo;
	rc = aw_conf_validate(conf, &env, &rep, plan);
	aw_conf_report_print(&rep, stderr);
	CHECK(rc == 0);
	CHECK(plan->n_lcores == 3);
	CHECK(aw_conf_eal_argv(conf, plan, "test-conf-eal", &argv, &argc) == 0);
	for (int i = 0; i < argc; i++)
		fprintf(stderr, "%s%s", argv[i], i + 1 < argc ? " " : "\n");

	rc = rte_eal_init(argc, argv);
	CHECK(rc >= 0);
	CHECK(rte_lcore_count() == plan->n_lcores);
	CHECK(rte_get_main_lcore() == 0);
	for (unsigned i = 0; i < plan->n_lcores; i++) {
		fprintf(stderr, "lcore %u: plan CPU %u, EAL CPU %d\n", plan->lcores[i].lcore,
			plan->lcores[i].cpu, rte_lcore_to_cpu_id((int)plan->lcores[i].lcore));
		CHECK(rte_lcore_is_enabled(plan->lcores[i].lcore));
		CHECK(rte_lcore_to_cpu_id((int)plan->lcores[i].lcore) == (int)plan->lcores[i].cpu);
	}
	CHECK(rte_eth_dev_count_avail() == 1);
	rte_eal_cleanup();
	aw_conf_eal_argv_free(argv);
	aw_conf_free(conf);
	aw_conf_report_fini(&rep);
	aw_topo_free(topo);
	free(plan);
	unlink(model);
	printf("PASS\n");
	return 0;
}
