/* conf-cli.c — agentwire's command line and `agentwire --check`.
 *
 * The daemon's main() (dataplane/main.c) stays a thin caller: it parses the
 * arguments here, and for --check the whole job (load, validate against the
 * real or a described machine, print the problems and the plan) happens here
 * too, without DPDK.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "aw-config.h"
#include "conf-int.h"
#include "host.h"

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s -c FILE [--set section.key=value]... [--check [--topology FILE] "
		"[--host]]\n"
		"\n"
		"Serve small language models to AI agents over UDP, with DPDK.\n"
		"\n"
		"  -c, --config FILE     the config file (docs/CONFIG.md; examples in "
		"config/examples/)\n"
		"  -s, --set S.K=V       override one key, e.g. --set group.0.max_batch=32 "
		"(repeatable)\n"
		"      --check           validate the config, print the resolved plan, exit 0 "
		"(valid)\n"
		"                        or 1 (invalid); never starts DPDK\n"
		"      --topology FILE   with --check: check against a described machine instead "
		"of\n"
		"                        this one (NUMA nodes, CPUs, memory, ports)\n"
		"      --host            with --check: also inspect this machine (hugepages "
		"per node,\n"
		"                        NIC driver, IOMMU, isolated CPUs, governor, THP, "
		"memlock,\n"
		"                        io_uring) and print each problem with its fix; exit "
		"1 when\n"
		"                        something blocks a start\n"
		"      --host-root DIR   with --host: read sys/ and proc/ under DIR (tests, "
		"images)\n"
		"  -h, --help            this text\n"
		"  -V, --version         the version\n"
		"\n"
		"Exit status: 0 success, 1 invalid config or failure, 2 usage error.\n",
		prog);
}

int aw_conf_cli_parse(int argc, char **argv, struct aw_conf_cli *cli, FILE *out, FILE *err)
{
	enum { OPT_CHECK = 256, OPT_TOPOLOGY, OPT_HOST, OPT_HOST_ROOT };
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"set", required_argument, NULL, 's'},
		{"check", no_argument, NULL, OPT_CHECK},
		{"topology", required_argument, NULL, OPT_TOPOLOGY},
		{"host", no_argument, NULL, OPT_HOST},
		{"host-root", required_argument, NULL, OPT_HOST_ROOT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *prog = argc > 0 && argv[0] ? argv[0] : "agentwire";
	int c;

	memset(cli, 0, sizeof(*cli));
	cli->sets = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*cli->sets));
	if (!cli->sets) {
		fprintf(err, "%s: out of memory\n", prog);
		return 1;
	}
	optind = 0; /* glibc: full re-initialisation, so tests can parse twice */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (cli->config) {
				fprintf(err, "%s: -c given twice\n", prog);
				goto usage_err;
			}
			cli->config = optarg;
			break;
		case 's':
			if (!strchr(optarg, '=') || !strchr(optarg, '.') ||
			    strchr(optarg, '.') > strchr(optarg, '=')) {
				fprintf(err, "%s: --set '%s': expected section.key=value\n", prog,
					optarg);
				goto usage_err;
			}
			cli->sets[cli->n_sets++] = optarg;
			break;
		case OPT_CHECK:
			cli->check = true;
			break;
		case OPT_TOPOLOGY:
			cli->topology = optarg;
			break;
		case OPT_HOST:
			cli->host = true;
			break;
		case OPT_HOST_ROOT:
			cli->host_root = optarg;
			break;
		case 'h':
			usage(out, prog);
			free(cli->sets);
			cli->sets = NULL;
			return 0;
		case 'V':
			fprintf(out, "agentwire %s\n", AW_VERSION);
			free(cli->sets);
			cli->sets = NULL;
			return 0;
		case ':':
			fprintf(err, "%s: option '%s' needs an argument\n", prog, argv[optind - 1]);
			goto usage_err;
		default:
			fprintf(err, "%s: unknown option '%s'\n", prog, argv[optind - 1]);
			goto usage_err;
		}
	}
	if (optind < argc) {
		fprintf(err, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		goto usage_err;
	}
	if (!cli->config) {
		fprintf(err, "%s: no config file: give -c FILE\n", prog);
		goto usage_err;
	}
	if (cli->topology && !cli->check) {
		fprintf(err, "%s: --topology only works with --check\n", prog);
		goto usage_err;
	}
	if (cli->host && !cli->check) {
		fprintf(err, "%s: --host only works with --check\n", prog);
		goto usage_err;
	}
	if (cli->host_root && !cli->host) {
		fprintf(err, "%s: --host-root only works with --host\n", prog);
		goto usage_err;
	}
	return AW_CONF_CLI_RUN;
usage_err:
	fprintf(err, "Try '%s --help'.\n", prog);
	free(cli->sets);
	cli->sets = NULL;
	return 2;
}

static int load_all(const struct aw_conf_cli *cli, FILE *err, struct aw_conf **ret_conf,
		    struct aw_topo **ret_topo, struct aw_conf_plan *plan, struct aw_conf_env *env)
{
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_topo *topo = NULL;
	struct aw_err e;
	int rc;

	rc = cli->topology ? aw_topo_load_file(cli->topology, &topo, &e)
			   : aw_topo_discover("/sys", &topo, &e);
	if (rc < 0) {
		fprintf(err, "agentwire: topology: %s\n", e.msg);
		return 1;
	}
	rc = aw_conf_load_file(cli->config, cli->sets, cli->n_sets, &rep, &conf);
	if (rc == 0) {
		memset(env, 0, sizeof(*env));
		env->topo = topo;
		rc = aw_conf_validate(conf, env, &rep, plan);
	}
	aw_conf_report_print(&rep, err);
	aw_conf_report_fini(&rep);
	if (rc < 0) {
		if (rc == -ENOMEM)
			fprintf(err, "agentwire: out of memory\n");
		fprintf(err, "%s: invalid configuration\n", cli->config);
		aw_conf_free(conf);
		aw_topo_free(topo);
		return 1;
	}
	*ret_conf = conf;
	*ret_topo = topo;
	return 0;
}

int aw_conf_check_main(const struct aw_conf_cli *cli, FILE *out, FILE *err)
{
	struct aw_conf_plan *plan = calloc(1, sizeof(*plan));
	struct aw_conf *conf;
	struct aw_topo *topo;
	struct aw_conf_env env;
	int rc;

	if (!plan) {
		fprintf(err, "agentwire: out of memory\n");
		return 1;
	}
	rc = load_all(cli, err, &conf, &topo, plan, &env);
	if (rc == 0) {
		aw_conf_plan_print(conf, &env, plan, out);
		fprintf(out, "\n%s: valid\n", cli->config);
		if (cli->host) {
			struct aw_host_env henv;

			aw_host_env_self(&henv);
			if (cli->host_root)
				henv.root = cli->host_root;
			fputc('\n', out);
			if (aw_host_check(&henv, conf, plan, out, NULL) > 0) {
				fprintf(out, "%s: this machine is not ready (see BLOCKER above)\n",
					cli->config);
				rc = 1;
			}
		}
		aw_conf_free(conf);
		aw_topo_free(topo);
	}
	free(plan);
	return rc;
}

int aw_conf_cli_load(const struct aw_conf_cli *cli, FILE *err, struct aw_conf **ret_conf,
		     struct aw_topo **ret_topo, struct aw_conf_plan *plan)
{
	struct aw_conf_env env;

	return load_all(cli, err, ret_conf, ret_topo, plan, &env);
}
