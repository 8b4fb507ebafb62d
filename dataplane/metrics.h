/* metrics.h — Prometheus /metrics for the daemon, served by libmicrohttpd.
 *
 * One HTTP server thread on the control plane (it inherits the main lcore's
 * CPU affinity: never a dataplane or worker CPU) answers GET /metrics with
 * the text format (prom.h). Each scrape reads the dataplane's per-lcore
 * counters (aw_dp_stats_read), the worker groups' counters and observations
 * (aw_dispatch_group_stats/_obs) with relaxed loads — it takes no lock the
 * lcores take, so a slow or flooding scraper cannot stall them. Connections
 * are capped (in total and per client address) and time out.
 *
 * Families (all prefixed agentwire_; latencies in seconds):
 *   counters   rx/tx packets and bytes, packet_drops{reason}, protocol_faults{fault},
 *              request_datagrams{op}, requests_dispatched,
 *              requests{group,op,outcome},
 *              requests_rejected{reason}, tokens{group,kind}, busy_seconds{group},
 *              prefix_cache_lookup_tokens / _hit_tokens{group}, metrics_scrapes
 *   gauges     queue_depth{group}, running_requests{group}, kv_blocks{group,state},
 *              mbufs_in_use, build_info{version}, start_time_seconds
 *   histograms queue_wait_seconds, time_to_first_token_seconds,
 *              inter_token_latency_seconds, request_duration_seconds,
 *              batch_tokens, batch_sequences  (each {group})
 */
#ifndef AW_METRICS_H
#define AW_METRICS_H

#include <stdint.h>

#include "dataplane.h"
#include "dispatch.h"
#include "prom.h"

struct aw_metrics;

/* Listen on IPv4 'addr' (host byte order) and TCP 'port', serving the
 * counters of 'dp' and 'disp' (either may be NULL), which must stay valid
 * until aw_metrics_free(). Returns 0 and sets *ret_m, or -errno (-EADDRINUSE
 * when the port is taken) after logging why. */
int aw_metrics_new(uint32_t addr, uint16_t port, struct aw_dp *dp, struct aw_dispatch *disp,
		   struct aw_metrics **ret_m);

/* Render the current metrics into 'p' (the handler's work; tests call it).
 * Returns 0 or -ENOMEM. */
int aw_metrics_render(struct aw_metrics *m, struct aw_prom *p);

/* Stop serving and free; in-flight scrapes finish first. Accepts NULL. */
void aw_metrics_free(struct aw_metrics *m);

#endif
