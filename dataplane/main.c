/* main.c — the agentwire daemon.
 *
 * Start-up order: parse the command line and load + validate the whole config
 * (libaw_config, no DPDK) before anything else, so that a typo never starts a
 * half-configured appliance; `--check` stops there and prints the plan. The
 * serving path (EAL, ports, worker groups, engine) is aw_daemon_run() (daemon.c).
 */
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "daemon.h"

int main(int argc, char **argv)
{
	struct aw_conf_plan *plan;
	struct aw_conf_cli cli;
	struct aw_conf *conf;
	struct aw_topo *topo;
	int rc;

	rc = aw_conf_cli_parse(argc, argv, &cli, stdout, stderr);
	if (rc != AW_CONF_CLI_RUN)
		return rc;
	if (cli.check) {
		rc = aw_conf_check_main(&cli, stdout, stderr);
		free(cli.sets);
		return rc;
	}

	plan = calloc(1, sizeof(*plan));
	if (!plan) {
		fprintf(stderr, "agentwire: out of memory\n");
		free(cli.sets);
		return 1;
	}
	rc = aw_conf_cli_load(&cli, stderr, &conf, &topo, plan);
	if (rc == 0) {
		aw_daemon_set_cli(&cli); /* SIGHUP re-reads it */
		rc = aw_daemon_run(conf, plan, argv[0]);
		aw_conf_free(conf);
		aw_topo_free(topo);
	}
	free(plan);
	free(cli.sets);
	return rc;
}
