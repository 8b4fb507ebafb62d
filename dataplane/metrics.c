/* metrics.c — the /metrics endpoint (metrics.h). */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "aw-config.h"
#include "log.h"
#include "net.h"
#include "proto.h"

/* connections held at once, in total and per client address; idle timeout */
#define MAX_CONNS	 64
#define MAX_CONNS_PER_IP 8
#define CONN_TIMEOUT_S	 10

struct aw_metrics {
	struct MHD_Daemon *mhd;
	struct aw_dp *dp;
	struct aw_dispatch *disp;
	uint64_t scrapes; /* atomic */
	double start_time;
};

static const char *const op_names[AW_DISPATCH_OPS] = {"generate", "classify", "embed"};

static void render_dp(struct aw_prom *p, struct aw_dp *dp)
{
	static const struct {
		enum aw_dp_ctr c;
		const char *name, *help;
	} plain[] = {
		{AW_DP_RX_PKTS, "agentwire_rx_packets_total", "Packets received on the ports."},
		{AW_DP_RX_BYTES, "agentwire_rx_bytes_total", "Bytes received on the ports."},
		{AW_DP_TX_PKTS, "agentwire_tx_packets_total", "Packets transmitted."},
		{AW_DP_TX_BYTES, "agentwire_tx_bytes_total", "Bytes transmitted."},
		{AW_DP_RESENT, "agentwire_retransmitted_datagrams_total",
		 "Response datagrams resent from the retransmit store."},
		{AW_DP_DUPLICATES, "agentwire_duplicate_requests_total",
		 "Requests already known, answered from the store."},
	};
	static const struct {
		enum aw_dp_ctr c;
		const char *op;
	} ops[] = {
		{AW_DP_PING, "ping"},
		{AW_DP_REQ_GENERATE, "generate"},
		{AW_DP_REQ_CLASSIFY, "classify"},
		{AW_DP_REQ_EMBED, "embed"},
		{AW_DP_REQ_CANCEL, "cancel"},
		{AW_DP_REQ_STATS, "stats"},
		{AW_DP_REQ_RESUME, "resume"},
		{AW_DP_REQ_ACK, "ack"},
	};
	struct aw_dp_stats st;

	aw_dp_stats_read(dp, -1, &st);
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		aw_prom_family(p, plain[i].name, "counter", plain[i].help);
		aw_prom_u64(p, plain[i].name, NULL, st.c[plain[i].c]);
	}

	aw_prom_family(p, "agentwire_packet_drops_total", "counter",
		       "Packets and datagrams dropped, by reason.");
	for (int i = 0; i < AW_NET_DROP__COUNT; i++) {
		const char *l[] = {"reason", aw_net_drop_name((enum aw_net_drop)i), NULL};

		aw_prom_u64(p, "agentwire_packet_drops_total", l, st.drop[i]);
	}
	{
		const char *l1[] = {"reason", "tx_queue_full", NULL};
		const char *l2[] = {"reason", "multi_segment", NULL};
		const char *l3[] = {"reason", "no_mbuf", NULL};

		aw_prom_u64(p, "agentwire_packet_drops_total", l1, st.c[AW_DP_TX_DROPPED]);
		aw_prom_u64(p, "agentwire_packet_drops_total", l2, st.c[AW_DP_RX_MULTISEG]);
		aw_prom_u64(p, "agentwire_packet_drops_total", l3, st.c[AW_DP_NO_MBUF]);
	}

	aw_prom_family(p, "agentwire_protocol_faults_total", "counter",
		       "Datagrams the protocol codec refused, by fault.");
	for (unsigned i = 1; i < AW_PROTO_FAULT_MAX_; i++) {
		const char *l[] = {"fault", aw_proto_fault_name(i), NULL};

		aw_prom_u64(p, "agentwire_protocol_faults_total", l, st.fault[i]);
	}

	aw_prom_family(p, "agentwire_request_datagrams_total", "counter",
		       "Request datagrams received, by operation (segments of long requests and "
		       "client retransmissions included; PING answered in place included).");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		const char *l[] = {"op", ops[i].op, NULL};

		aw_prom_u64(p, "agentwire_request_datagrams_total", l, st.c[ops[i].c]);
	}
	aw_prom_family(p, "agentwire_requests_dispatched_total", "counter",
		       "Complete requests handed to a worker group.");
	aw_prom_u64(p, "agentwire_requests_dispatched_total", NULL, st.c[AW_DP_DISPATCHED]);

	aw_prom_family(p, "agentwire_requests_rejected_total", "counter",
		       "Requests answered at once by the dataplane without reaching a worker "
		       "group, by reason.");
	{
		const char *l1[] = {"reason", "overloaded", NULL};
		const char *l2[] = {"reason", "refused", NULL};

		aw_prom_u64(p, "agentwire_requests_rejected_total", l1, st.c[AW_DP_OVERLOADED]);
		aw_prom_u64(p, "agentwire_requests_rejected_total", l2, st.c[AW_DP_REFUSED]);
	}

	aw_prom_family(p, "agentwire_mbufs_in_use", "gauge",
		       "Packet buffers currently allocated from the dataplane's pools.");
	aw_prom_u64(p, "agentwire_mbufs_in_use", NULL, aw_dp_mbufs_in_use(dp));
}

static void render_groups(struct aw_prom *p, struct aw_dispatch *disp)
{
	static const struct {
		size_t off;
		const char *name, *help;
		double div; /* to the unit of the name */
		int size;   /* aw_hist_size bounds, else latency */
	} hists[] = {
		{offsetof(struct aw_dispatch_group_obs, queue_us), "agentwire_queue_wait_seconds",
		 "Time from a request's arrival to the start of work on it.", 1e6, 0},
		{offsetof(struct aw_dispatch_group_obs, ttft_us),
		 "agentwire_time_to_first_token_seconds",
		 "Time from a request's arrival to its first token sent.", 1e6, 0},
		{offsetof(struct aw_dispatch_group_obs, itl_us),
		 "agentwire_inter_token_latency_seconds",
		 "Time between two consecutive tokens of one request.", 1e6, 0},
		{offsetof(struct aw_dispatch_group_obs, e2e_us),
		 "agentwire_request_duration_seconds",
		 "Time from a request's arrival to its final reply.", 1e6, 0},
		{offsetof(struct aw_dispatch_group_obs, batch_tokens), "agentwire_batch_tokens",
		 "Token positions computed per forward pass.", 1, 1},
		{offsetof(struct aw_dispatch_group_obs, batch_seqs), "agentwire_batch_sequences",
		 "Sequences per forward pass.", 1, 1},
	};
	unsigned n = aw_dispatch_n_groups(disp);
	struct aw_dispatch_group_obs *obs = calloc(n ? n : 1, sizeof(*obs));
	struct aw_dispatch_group_stats *gs = calloc(n ? n : 1, sizeof(*gs));
	char(*gname)[12] = calloc(n ? n : 1, sizeof(*gname));

	if (!obs || !gs || !gname) {
		p->oom = 1;
		goto out;
	}
	for (unsigned g = 0; g < n; g++) {
		aw_dispatch_group_stats(disp, g, &gs[g]);
		aw_dispatch_group_obs(disp, g, &obs[g]);
		snprintf(gname[g], sizeof(gname[g]), "%u", g);
	}

	aw_prom_family(p, "agentwire_requests_total", "counter",
		       "Requests that ended in a worker group, by operation and outcome.");
	for (unsigned g = 0; g < n; g++)
		for (unsigned o = 0; o < AW_DISPATCH_OPS; o++)
			for (unsigned k = 0; k < AW_DISPATCH_OUT__COUNT; k++) {
				const char *l[] = {"group",   gname[g],
						   "op",      op_names[o],
						   "outcome", aw_dispatch_outcome_name(k),
						   NULL};

				aw_prom_u64(p, "agentwire_requests_total", l, obs[g].done[o][k]);
			}

	aw_prom_family(p, "agentwire_tokens_total", "counter",
		       "Tokens processed: prompt tokens read, tokens generated.");
	for (unsigned g = 0; g < n; g++) {
		const char *l1[] = {"group", gname[g], "kind", "prompt", NULL};
		const char *l2[] = {"group", gname[g], "kind", "generated", NULL};

		aw_prom_u64(p, "agentwire_tokens_total", l1, gs[g].tokens_in);
		aw_prom_u64(p, "agentwire_tokens_total", l2, gs[g].tokens_out);
	}

	aw_prom_family(p, "agentwire_busy_seconds_total", "counter",
		       "Time a worker group spent running requests.");
	for (unsigned g = 0; g < n; g++) {
		const char *l[] = {"group", gname[g], NULL};

		aw_prom_double(p, "agentwire_busy_seconds_total", l, (double)gs[g].busy_us / 1e6);
	}

	aw_prom_family(p, "agentwire_queue_depth", "gauge",
		       "Requests waiting in a worker group's ring.");
	for (unsigned g = 0; g < n; g++) {
		const char *l[] = {"group", gname[g], NULL};

		aw_prom_u64(p, "agentwire_queue_depth", l, gs[g].queued);
	}
	aw_prom_family(p, "agentwire_running_requests", "gauge",
		       "Requests a worker group is running now.");
	for (unsigned g = 0; g < n; g++) {
		const char *l[] = {"group", gname[g], NULL};

		aw_prom_u64(p, "agentwire_running_requests", l, gs[g].running);
	}

	aw_prom_family(p, "agentwire_kv_blocks", "gauge",
		       "KV cache blocks of a worker group's pool, used and free.");
	for (unsigned g = 0; g < n; g++) {
		const char *l1[] = {"group", gname[g], "state", "used", NULL};
		const char *l2[] = {"group", gname[g], "state", "free", NULL};
		uint64_t used = obs[g].kv_blocks_used, total = obs[g].kv_blocks_total;

		aw_prom_u64(p, "agentwire_kv_blocks", l1, used);
		aw_prom_u64(p, "agentwire_kv_blocks", l2, total > used ? total - used : 0);
	}

	aw_prom_family(p, "agentwire_prefix_cache_lookup_tokens_total", "counter",
		       "Prompt tokens looked up in the prefix cache.");
	for (unsigned g = 0; g < n; g++) {
		const char *l[] = {"group", gname[g], NULL};

		aw_prom_u64(p, "agentwire_prefix_cache_lookup_tokens_total", l,
			    obs[g].prefix_lookup_tokens);
	}
	aw_prom_family(p, "agentwire_prefix_cache_hit_tokens_total", "counter",
		       "Prompt tokens found in the prefix cache (not recomputed); the hit rate is "
		       "rate(hit) / rate(lookup).");
	for (unsigned g = 0; g < n; g++) {
		const char *l[] = {"group", gname[g], NULL};

		aw_prom_u64(p, "agentwire_prefix_cache_hit_tokens_total", l,
			    obs[g].prefix_hit_tokens);
	}

	for (size_t i = 0; i < sizeof(hists) / sizeof(hists[0]); i++) {
		aw_prom_family(p, hists[i].name, "histogram", hists[i].help);
		for (unsigned g = 0; g < n; g++) {
			const char *l[] = {"group", gname[g], NULL};
			const struct aw_hist *h =
				(const struct aw_hist *)((const char *)&obs[g] + hists[i].off);

			aw_prom_hist(p, hists[i].name, l, h,
				     hists[i].size ? &aw_hist_size : &aw_hist_latency_us,
				     hists[i].div);
		}
	}
out:
	free(obs);
	free(gs);
	free(gname);
}

int aw_metrics_render(struct aw_metrics *m, struct aw_prom *p)
{
	const char *ver[] = {"version", AW_VERSION, NULL};

	aw_prom_family(p, "agentwire_build_info", "gauge", "Version of the running agentwire.");
	aw_prom_u64(p, "agentwire_build_info", ver, 1);
	aw_prom_family(p, "agentwire_start_time_seconds", "gauge",
		       "Start time of the daemon, seconds since the Unix epoch.");
	aw_prom_double(p, "agentwire_start_time_seconds", NULL, m->start_time);
	aw_prom_family(p, "agentwire_metrics_scrapes_total", "counter",
		       "Requests for /metrics answered.");
	aw_prom_u64(p, "agentwire_metrics_scrapes_total", NULL,
		    __atomic_load_n(&m->scrapes, __ATOMIC_RELAXED));
	if (m->dp)
		render_dp(p, m->dp);
	if (m->disp)
		render_groups(p, m->disp);
	return aw_prom_status(p);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
			      void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
	enum MHD_Result rc;

	if (!r) {
		if (mode == MHD_RESPMEM_MUST_FREE)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_size, void **con_cls)
{
	static char not_found[] = "not found: the metrics are at /metrics\n";
	static char not_allowed[] = "method not allowed: use GET\n";
	static char no_memory[] = "out of memory\n";
	struct aw_metrics *m = cls;
	struct aw_prom p;

	(void)version;
	(void)upload;
	if (!*con_cls) { /* first call for this request: headers only */
		*con_cls = m;
		return MHD_YES;
	}
	if (*upload_size) { /* a body we never asked for: discard it */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
			      strlen(not_allowed), MHD_RESPMEM_PERSISTENT);
	if (strcmp(url, "/metrics") != 0)
		return answer(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found, strlen(not_found),
			      MHD_RESPMEM_PERSISTENT);
	__atomic_fetch_add(&m->scrapes, 1, __ATOMIC_RELAXED);
	aw_prom_init(&p);
	if (aw_metrics_render(m, &p) < 0 || !p.buf) {
		aw_prom_fini(&p);
		return answer(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", no_memory,
			      strlen(no_memory), MHD_RESPMEM_PERSISTENT);
	}
	/* the response owns the text now */
	return answer(c, MHD_HTTP_OK, AW_PROM_CONTENT_TYPE, p.buf, p.len, MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	aw_log(AW_LOG_WARNING, "metrics", "%s", msg);
}

int aw_metrics_new(uint32_t addr, uint16_t port, struct aw_dp *dp, struct aw_dispatch *disp,
		   struct aw_metrics **ret_m)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct aw_metrics *m = calloc(1, sizeof(*m));
	struct timespec now;
	char ip[INET_ADDRSTRLEN];

	if (!m)
		return -ENOMEM;
	m->dp = dp;
	m->disp = disp;
	clock_gettime(CLOCK_REALTIME, &now);
	m->start_time = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
	sa.sin_addr.s_addr = htonl(addr);
	sa.sin_port = htons(port);
	inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
	errno = 0;
	/* libmicrohttpd's default SO_REUSEADDR only: no LISTENING_ADDRESS_REUSE,
	 * whose SO_REUSEPORT would let a second daemon share the port and split
	 * the scrapes between the two (dp-tap-prometheus checks the refusal). */
	m->mhd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, port, NULL,
		NULL, handler, m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
		(struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNS,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_CONNS_PER_IP,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
	if (!m->mhd) {
		int rc = errno ? -errno : -EADDRINUSE;

		aw_log(AW_LOG_ERR, "metrics",
		       "cannot listen on %s:%u (%s); set [telemetry] metrics_port or "
		       "metrics = false",
		       ip, port, strerror(-rc));
		free(m);
		return rc;
	}
	aw_log(AW_LOG_NOTICE, "metrics", "http://%s:%u/metrics", ip, port);
	*ret_m = m;
	return 0;
}

void aw_metrics_free(struct aw_metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	free(m);
}
