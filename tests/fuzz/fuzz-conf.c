/* fuzz-conf.c — libFuzzer target for the config reader and validator.
 *
 * The input is split at the first "\n%%\n": the part before is the config
 * text, each line after it is one --set override. The config is loaded,
 * validated against a fixed described machine (two nodes, a described NIC,
 * the model file) and its plan is printed to a memory stream, so the whole
 * path an operator's file takes is exercised: reader, value parsers,
 * suggestions, cross-checks and the printer. A crash, leak, sanitizer report
 * or an inconsistent report (an error count without a stored problem) fails.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char topo_text[] = "[node 0]\ncpus = 0-7\nmemory = 16G\nhugepages = 4G\n"
				"[node 1]\ncpus = 8-15\nmemory = 16G\n"
				"[port 0000:17:00.0]\nmax_rx_queues = 8\nmax_tx_queues = 8\n"
				"rx_desc_max = 4096\nmax_mtu = 9000\nnode = 0\n"
				"[file /models/m.gguf]\nsize = 100M\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct aw_topo *topo;
	const char *text = (const char *)data, *sep;
	size_t text_len = size;
	char *sets_buf = NULL;
	const char *sets[16];
	unsigned n_sets = 0;
	struct aw_conf_report rep = {0};
	struct aw_conf *conf = NULL;
	struct aw_conf_plan *plan;
	int rc;

	if (!topo) {
		struct aw_err e;

		if (aw_topo_load_buffer("fuzz.topo", topo_text, sizeof(topo_text) - 1, &topo, &e) <
		    0)
			abort();
	}
	sep = memmem(data, size, "\n%%\n", 4);
	if (sep) {
		size_t rest = size - (size_t)(sep + 4 - text);
		char *p, *save = NULL;

		text_len = (size_t)(sep - text);
		sets_buf = malloc(rest + 1);
		if (!sets_buf)
			return 0;
		memcpy(sets_buf, sep + 4, rest);
		sets_buf[rest] = '\0';
		for (p = strtok_r(sets_buf, "\n", &save); p && n_sets < 16;
		     p = strtok_r(NULL, "\n", &save))
			sets[n_sets++] = p;
	}
	rc = aw_conf_load_buffer("fuzz.conf", text, text_len, sets, n_sets, &rep, &conf);
	if (rc == 0) {
		struct aw_conf_env env = {.topo = topo};
		FILE *f;
		char *out = NULL;
		size_t olen = 0;

		plan = calloc(1, sizeof(*plan));
		if (plan) {
			aw_conf_validate(conf, &env, &rep, plan);
			f = open_memstream(&out, &olen);
			if (f) {
				aw_conf_plan_print(conf, &env, plan, f);
				fclose(f);
			}
			free(out);
			free(plan);
		}
	} else if (rc == -EINVAL && rep.errors == 0) {
		abort(); /* refused without saying why */
	}
	if (rep.errors + rep.warnings && !rep.n)
		abort();
	{
		FILE *f = fopen("/dev/null", "w");

		if (f) {
			aw_conf_report_print(&rep, f);
			fclose(f);
		}
	}
	aw_conf_report_fini(&rep);
	aw_conf_free(conf);
	free(sets_buf);
	return 0;
}
