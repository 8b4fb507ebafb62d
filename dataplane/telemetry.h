/* telemetry.h — /agentwire/{stats,groups,model} through rte_telemetry.
 * Read them with Debian's dpdk-telemetry.py:
 *     printf '/agentwire/stats\n' | dpdk-telemetry.py -f <file-prefix>
 */
#ifndef AW_TELEMETRY_H
#define AW_TELEMETRY_H

#include "dataplane.h"
#include "dispatch.h"
#include "engine.h"

/* Register the commands under 'prefix' (NULL: "/agentwire") for these
 * objects, which must stay valid until aw_telemetry_detach(). Call after
 * rte_eal_init(). Returns 0 or -errno. */
int aw_telemetry_init(const char *prefix, struct aw_dp *dp, struct aw_dispatch *disp,
		      const struct aw_engine *engine, const char *model_path);

/* The model file now served (after a live swap), for /agentwire/model. */
void aw_telemetry_set_model(const char *model_path);

/* Forget the objects (before freeing them); later reads answer "stopping". */
void aw_telemetry_detach(void);

#endif
