/* daemon.h — the serving part of the agentwire daemon.
 *
 * main.c parses the command line and validates the config (libaw_config);
 * aw_daemon_run() then does the rest: EAL from the plan, ports, worker
 * groups, the engine, telemetry; serves until SIGINT/SIGTERM; stops
 * receiving, lets every in-flight request end with a final message, frees
 * everything and reports mbuf leaks.
 */
#ifndef AW_DAEMON_H
#define AW_DAEMON_H

#include "conf.h"

/* Serve with 'conf' and its validated 'plan'. Returns the process exit
 * status: 0 after a clean shutdown, 1 when start-up failed, 3 when mbufs
 * leaked. 'argv0' names the program for the EAL. */
/* The command line to re-read on SIGHUP (config reload, live model swap:
 * dataplane/reload.h); call before aw_daemon_run(). Without it SIGHUP does
 * nothing. 'cli' must outlive the run. */
void aw_daemon_set_cli(const struct aw_conf_cli *cli);

int aw_daemon_run(const struct aw_conf *conf, const struct aw_conf_plan *plan, const char *argv0);

#endif
