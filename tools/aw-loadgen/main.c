/* aw-loadgen — load generator for agentwire servers (see docs/LOADGEN.md).
 *
 * Open loop: requests leave on a schedule of intended send times (Poisson
 * or constant arrivals at --rate) that never waits for answers; closed loop:
 * --agents N each send, wait for the answer, think, and send again. Every
 * latency is measured from the request's *intended* send time, so a stalled
 * server or a lagging generator shows up as latency instead of silently
 * lowering the offered load (no coordinated omission). Requests whose
 * intended time falls in the warm-up are not counted at all.
 *
 * Transport: libaw_client over a kernel UDP socket (sendmmsg/recvmmsg,
 * optional busy polling); a DPDK transport plugs into the same
 * struct aw_client_transport when the dataplane's port layer exists; an
 * HTTP/1.1 transport (transport-http.c) drives llama-server's streaming
 * /completion API instead, so that both servers are measured by this code.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "arrival.h"
#include "client.h"
#include "hist.h"
#include "http.h"
#include "transport-http.h"
#include "workload.h"
#ifndef AW_LOADGEN_DPDK
#define AW_LOADGEN_DPDK 0
#endif
#if AW_LOADGEN_DPDK
#include "transport-dpdk.h"
#endif

/* error kinds: server codes 1..AW_PROTO_ERR_MAX_-1, then local ones */
enum {
	LG_E_TIMEOUT = AW_PROTO_ERR_MAX_,
	LG_E_BADREPLY,
	LG_E_CANCELLED,
	LG_E_BUSY,	  /* not sent: the in-flight limit was reached */
	LG_E_HTTP_STATUS, /* http: a non-2xx answer */
	LG_E_STREAM_ERR,  /* http: an error event inside the stream */
	LG_E_CONN,	  /* http: the connection failed */
	LG_E_KINDS,
};

static const char *err_kind_name(unsigned k)
{
	switch (k) {
	case LG_E_TIMEOUT:
		return "timeout";
	case LG_E_BADREPLY:
		return "bad_reply";
	case LG_E_CANCELLED:
		return "cancelled";
	case LG_E_BUSY:
		return "inflight_limit";
	case LG_E_HTTP_STATUS:
		return "http_status";
	case LG_E_STREAM_ERR:
		return "stream_error";
	case LG_E_CONN:
		return "connection";
	}
	return aw_proto_code_name(k);
}

struct opstats {
	uint64_t sent, ok, err;
	uint64_t errs[LG_E_KINDS];
	struct aw_hist e2e, ttft, itl;
};

struct lg;

struct lg_req {
	uint64_t intended_ns;
	uint64_t last_ns; /* previous output chunk (0 = none yet) */
	uint8_t op;
	uint8_t measured;
	int agent;
	struct lg *g;
	struct lg_req *next_free;
};

struct lg_opts {
	const char *host, *port;
	const char *workload;
	double rate;
	int arrival;
	unsigned agents;
	double think_us;
	int think_exp;
	double duration_s, warmup_s;
	uint32_t timeout_ms;
	uint32_t max_inflight;
	uint64_t seed;
	int json, busy_poll, progress;
	const char *sweep;
	const char *csv, *plot;
	size_t mtu;
	int dpdk;		/* --transport dpdk */
	int http;		/* --transport http (llama-server /completion) */
	const char *eal_args;	/* --eal */
	const char *local_cidr; /* --local-ip */
};

struct lg {
	struct lg_opts o;
	struct aw_workload wl;
	struct aw_client *c;		/* udp/dpdk */
	struct aw_http_transport *http; /* http */
	char *http_req;			/* one HTTP request being built */
	struct aw_rng rng;
	struct lg_req *pool, *free_list;
	struct opstats *st; /* AW_WL_OPS */
	uint64_t start_ns, warm_end_ns, end_ns;
	/* closed loop */
	uint64_t *agent_due; /* 0 = waiting for an answer */
	uint64_t inflight;
	uint64_t issued, completed;
	uint8_t *body;
};

static volatile int interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- request lifecycle ---- */

static void lg_data(void *ctx, uint64_t id, const void *bytes, size_t len, uint32_t nt,
		    uint64_t now_us)
{
	struct lg_req *q = ctx;
	uint64_t t = now_ns();
	struct lg *g = q->g;
	(void)id, (void)bytes, (void)len, (void)now_us;

	if (q->measured) {
		struct opstats *s = &g->st[q->op];

		if (q->last_ns == 0)
			aw_hist_record(&s->ttft, t - q->intended_ns);
		else
			aw_hist_record(&s->itl, (t - q->last_ns) / (nt ? nt : 1));
	}
	q->last_ns = t;
}

/* The request ended: error kind k (0 = answered). */
static void lg_finish(struct lg_req *q, unsigned k)
{
	struct lg *g = q->g;
	uint64_t t = now_ns();

	g->inflight--;
	g->completed++;
	if (q->measured) {
		struct opstats *s = &g->st[q->op];

		if (k == 0) {
			s->ok++;
			aw_hist_record(&s->e2e, t - q->intended_ns);
		} else {
			s->err++;
			s->errs[k]++;
		}
	}
	if (q->agent >= 0) {
		double think = g->o.think_exp ? aw_rng_exp(&g->rng, g->o.think_us) : g->o.think_us;

		g->agent_due[q->agent] = t + (uint64_t)(think * 1000.0) + 1;
	}
	q->next_free = g->free_list;
	g->free_list = q;
}

static void lg_done(void *ctx, uint64_t id, const struct aw_client_result *res)
{
	unsigned k = 0;
	(void)id;

	if (res->status != 0 || res->summary.finish == AW_PROTO_FINISH_ERROR) {
		k = LG_E_BADREPLY;
		if (res->status == -EREMOTEIO && res->err_code > 0 &&
		    res->err_code < AW_PROTO_ERR_MAX_)
			k = res->err_code;
		else if (res->status == -ETIMEDOUT)
			k = LG_E_TIMEOUT;
		else if (res->status == -ECANCELED)
			k = LG_E_CANCELLED;
	}
	lg_finish(ctx, k);
}

static void lg_http_data(void *ctx, uint32_t n)
{
	lg_data(ctx, 0, NULL, 0, n, 0);
}

static void lg_http_done(void *ctx, int status, int http_status)
{
	unsigned k = 0;

	if (status == -EREMOTEIO)
		k = http_status ? LG_E_HTTP_STATUS : LG_E_STREAM_ERR;
	else if (status == -ETIMEDOUT)
		k = LG_E_TIMEOUT;
	else if (status == -EBADMSG)
		k = LG_E_BADREPLY;
	else if (status < 0)
		k = LG_E_CONN;
	lg_finish(ctx, k);
}

/* http: llama-server's /completion request for w (a GENERATE). */
static int http_submit(struct lg *g, const struct aw_wl_req *w, struct lg_req *q)
{
	size_t cap = 2 * w->prompt_len + 4096;
	char *b = realloc(g->http_req, cap);
	int n;

	if (!b)
		return -ENOMEM;
	g->http_req = b;
	n = aw_http_completion_request(b, cap, g->o.host, g->o.port, w->prompt, w->prompt_len,
				       w->max_new_tokens, w->temperature, w->seed);
	if (n < 0)
		return n;
	return aw_http_transport_submit(g->http, b, (size_t)n, lg_http_data, lg_http_done, q);
}

static int tp_flush(struct lg *g)
{
	return g->http ? 0 : aw_client_flush(g->c);
}

static int tp_poll(struct lg *g)
{
	return g->http ? aw_http_transport_poll(g->http) : aw_client_poll(g->c, 0);
}

static int tp_fd(struct lg *g)
{
	return g->http ? aw_http_transport_fd(g->http) : aw_client_fd(g->c);
}

static void issue(struct lg *g, uint64_t intended, int agent)
{
	struct aw_wl_req w;
	struct lg_req *q = g->free_list;
	int measured = intended >= g->warm_end_ns;
	int rc;

	if (aw_workload_next(&g->wl, &g->rng, g->body, AW_PROTO_MAX_MSG, &w) < 0)
		return;
	if (measured)
		g->st[w.op].sent++;
	if (!q) {
		if (measured) {
			g->st[w.op].err++;
			g->st[w.op].errs[LG_E_BUSY]++;
		}
		if (agent >= 0)
			g->agent_due[agent] = now_ns() + 1000000;
		return;
	}
	g->free_list = q->next_free;
	q->intended_ns = intended;
	q->last_ns = 0;
	q->op = (uint8_t)w.op;
	q->measured = (uint8_t)measured;
	q->agent = agent;
	q->g = g;
	if (g->http)
		rc = http_submit(g, &w, q);
	else
		rc = aw_client_submit(g->c, w.type, w.session_id, w.body, w.len, lg_data, lg_done,
				      q, NULL);
	if (rc < 0) {
		if (measured) {
			/* http: a connection that failed at once is not the limit */
			g->st[w.op].err++;
			g->st[w.op].errs[g->http && rc != -EBUSY ? LG_E_CONN : LG_E_BUSY]++;
		}
		q->next_free = g->free_list;
		g->free_list = q;
		if (agent >= 0)
			g->agent_due[agent] = now_ns() + 1000000;
		return;
	}
	g->inflight++;
	g->issued++;
	if (agent >= 0)
		g->agent_due[agent] = 0;
}

/* ---- one run ---- */

static void progress_line(struct lg *g, uint64_t now, int final)
{
	double el = (double)(now - g->start_ns) / 1e9;
	double total = g->o.warmup_s + g->o.duration_s;
	uint64_t ok = 0, err = 0;
	struct aw_hist *h = &g->st[0].e2e;

	for (unsigned i = 0; i < AW_WL_OPS; i++) {
		ok += g->st[i].ok;
		err += g->st[i].err;
		if (g->st[i].e2e.count > h->count)
			h = &g->st[i].e2e;
	}
	fprintf(stderr,
		"\r[%5.1f/%.1f s] sent %llu  ok %llu  err %llu  in flight %llu  p99 %.1f us%s",
		el < total ? el : total, total, (unsigned long long)g->issued,
		(unsigned long long)ok, (unsigned long long)err, (unsigned long long)g->inflight,
		(double)aw_hist_quantile(h, 0.99) / 1000.0, final ? "\n" : "   ");
}

static int run_once(struct lg *g, double rate)
{
	struct aw_arrival arr;
	uint64_t next = 0, now, last_progress = 0;
	uint64_t drain_ns = (uint64_t)g->o.timeout_ms * 1000000u + 500000000u;
	int open_loop = g->o.agents == 0, issuing = 1, rc;
	unsigned idle_spins = 0;

	for (unsigned i = 0; i < AW_WL_OPS; i++) {
		memset(&g->st[i], 0, offsetof(struct opstats, e2e));
		aw_hist_reset(&g->st[i].e2e);
		aw_hist_reset(&g->st[i].ttft);
		aw_hist_reset(&g->st[i].itl);
	}
	g->issued = g->completed = 0;
	g->start_ns = now_ns();
	g->warm_end_ns = g->start_ns + (uint64_t)(g->o.warmup_s * 1e9);
	g->end_ns = g->warm_end_ns + (uint64_t)(g->o.duration_s * 1e9);
	if (open_loop) {
		rc = aw_arrival_init(&arr, g->o.arrival, rate, g->o.seed);
		if (rc < 0)
			return rc;
		next = g->start_ns + aw_arrival_next(&arr);
	} else {
		for (unsigned a = 0; a < g->o.agents; a++) /* spread the first sends over 1 ms */
			g->agent_due[a] = g->start_ns + (uint64_t)a * 1000000u / g->o.agents + 1;
	}
	for (;;) {
		now = now_ns();
		if (interrupted && issuing) {
			issuing = 0;
			g->end_ns = now;
		}
		if (issuing && open_loop) {
			/* every arrival scheduled before the end is sent, however
			 * late the loop got to it (its lateness counts as latency) */
			while (next <= now && next < g->end_ns) {
				issue(g, next, -1);
				next = g->start_ns + aw_arrival_next(&arr);
			}
			if (next >= g->end_ns)
				issuing = 0;
		} else if (issuing && now >= g->end_ns) {
			issuing = 0;
		} else if (issuing) {
			for (unsigned a = 0; a < g->o.agents; a++)
				if (g->agent_due[a] && g->agent_due[a] <= now)
					issue(g, g->agent_due[a], (int)a);
		}
		(void)tp_flush(g);
		rc = tp_poll(g);
		if (rc < 0)
			return rc;
		/* spinning: give the CPU away now and then while nothing happens
		 * (CPUs are shared: a poller that never yields starves the others) */
		if (g->o.busy_poll && rc == 0 && ++idle_spins % 256 == 0)
			sched_yield();
		if (!issuing && (g->inflight == 0 || now > g->end_ns + drain_ns))
			break;
		if (g->o.progress && now - last_progress > 500000000u) {
			progress_line(g, now, 0);
			last_progress = now;
		}
		if (!g->o.busy_poll) {
			/* sleep in the kernel until a reply or the next send is due
			 * (at most 1 ms, for the client's timers) */
			uint64_t until = now + 1000000u;
			struct pollfd p = {.fd = tp_fd(g), .events = POLLIN};
			struct timespec ts;

			if (issuing && open_loop && next < until)
				until = next;
			if (issuing && !open_loop)
				for (unsigned a = 0; a < g->o.agents; a++)
					if (g->agent_due[a] && g->agent_due[a] < until)
						until = g->agent_due[a];
			/* wake 20 us early and spin the rest: a sleeping thread is
			 * woken late by tens of microseconds, and a late send
			 * counts as latency (times are from the intended send) */
			now = now_ns();
			if (until > now + 30000) {
				ts.tv_sec = 0;
				ts.tv_nsec = (long)(until - now - 20000);
				(void)ppoll(&p, 1, &ts, NULL);
			}
		}
	}
	if (g->o.progress)
		progress_line(g, now_ns(), 1);
	return 0;
}

/* ---- output ---- */

static void print_hist_row(const char *op, const char *metric, const struct aw_hist *h,
			   const struct opstats *s, double secs, int first)
{
	if (first)
		printf("%-9s %9llu %9llu %7llu %10.1f  ", op, (unsigned long long)s->sent,
		       (unsigned long long)s->ok, (unsigned long long)s->err, (double)s->ok / secs);
	else
		printf("%-9s %9s %9s %7s %10s  ", "", "", "", "", "");
	printf("%-5s %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f\n", metric, aw_hist_mean(h) / 1000.0,
	       (double)aw_hist_quantile(h, 0.5) / 1000.0, (double)aw_hist_quantile(h, 0.9) / 1000.0,
	       (double)aw_hist_quantile(h, 0.99) / 1000.0,
	       (double)aw_hist_quantile(h, 0.999) / 1000.0, (double)h->max / 1000.0);
}

static void print_table(struct lg *g, double rate)
{
	double secs = g->o.duration_s;

	if (g->o.agents)
		printf("closed loop: %u agents, think %.0f us (%s), %.1f s measured after %.1f s "
		       "warm-up, server %s:%s\n",
		       g->o.agents, g->o.think_us, g->o.think_exp ? "exponential" : "constant",
		       g->o.duration_s, g->o.warmup_s, g->o.host, g->o.port);
	else
		printf("open loop: %s arrivals at %.1f/s, %.1f s measured after %.1f s warm-up, "
		       "server %s:%s\n",
		       g->o.arrival == AW_ARRIVAL_POISSON ? "poisson" : "constant", rate,
		       g->o.duration_s, g->o.warmup_s, g->o.host, g->o.port);
	printf("latency in us from the intended send time\n");
	printf("%-9s %9s %9s %7s %10s  %-5s %9s %9s %9s %9s %9s %9s\n", "op", "sent", "ok", "err",
	       "ok/s", "what", "mean", "p50", "p90", "p99", "p99.9", "max");
	for (unsigned i = 0; i < AW_WL_OPS; i++) {
		struct opstats *s = &g->st[i];

		if (!s->sent)
			continue;
		print_hist_row(aw_wl_op_name(i), "e2e", &s->e2e, s, secs, 1);
		if (s->ttft.count && i != AW_WL_PING)
			print_hist_row("", "ttft", &s->ttft, s, secs, 0);
		if (s->itl.count)
			print_hist_row("", "itl", &s->itl, s, secs, 0);
		for (unsigned k = 1; k < LG_E_KINDS; k++)
			if (s->errs[k])
				printf("%-9s   error %s: %llu\n", "", err_kind_name(k),
				       (unsigned long long)s->errs[k]);
	}
}

static void json_hist(const char *name, const struct aw_hist *h, int comma)
{
	printf("\"%s\":{\"count\":%llu,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
	       "\"p999\":%.3f,\"max\":%.3f}%s",
	       name, (unsigned long long)h->count, aw_hist_mean(h) / 1000.0,
	       (double)aw_hist_quantile(h, 0.5) / 1000.0, (double)aw_hist_quantile(h, 0.9) / 1000.0,
	       (double)aw_hist_quantile(h, 0.99) / 1000.0,
	       (double)aw_hist_quantile(h, 0.999) / 1000.0, (double)h->max / 1000.0,
	       comma ? "," : "");
}

/* A JSON string (the host name comes from the command line). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_json(struct lg *g, double rate)
{
	int first = 1;
	char server[512];

	snprintf(server, sizeof(server), "%s:%s", g->o.host, g->o.port);
	printf("{\"server\":");
	json_str(server);
	printf(",\"transport\":\"%s\"", g->o.http ? "http" : g->o.dpdk ? "dpdk" : "udp");
	printf(",\"mode\":\"%s\",", g->o.agents ? "closed" : "open");
	if (g->o.agents)
		printf("\"agents\":%u,\"think_us\":%.1f,", g->o.agents, g->o.think_us);
	else
		printf("\"arrival\":\"%s\",\"rate\":%.3f,",
		       g->o.arrival == AW_ARRIVAL_POISSON ? "poisson" : "constant", rate);
	printf("\"duration_s\":%.3f,\"warmup_s\":%.3f,\"unit\":\"us\",\"ops\":{", g->o.duration_s,
	       g->o.warmup_s);
	for (unsigned i = 0; i < AW_WL_OPS; i++) {
		struct opstats *s = &g->st[i];
		int firste = 1;

		if (!s->sent)
			continue;
		printf("%s\"%s\":{\"sent\":%llu,\"ok\":%llu,\"err\":%llu,\"ok_per_s\":%.3f,",
		       first ? "" : ",", aw_wl_op_name(i), (unsigned long long)s->sent,
		       (unsigned long long)s->ok, (unsigned long long)s->err,
		       (double)s->ok / g->o.duration_s);
		first = 0;
		printf("\"errors\":{");
		for (unsigned k = 1; k < LG_E_KINDS; k++) {
			if (!s->errs[k])
				continue;
			printf("%s\"%s\":%llu", firste ? "" : ",", err_kind_name(k),
			       (unsigned long long)s->errs[k]);
			firste = 0;
		}
		printf("},");
		json_hist("e2e_us", &s->e2e, 1);
		json_hist("ttft_us", &s->ttft, 1);
		json_hist("itl_us", &s->itl, 0);
		printf("}");
	}
	printf("}}\n");
}

/* ---- sweep ---- */

static int run_sweep(struct lg *g)
{
	char *list = strdup(g->o.sweep), *tok, *save = NULL;
	FILE *csv = fopen(g->o.csv, "w");
	struct aw_hist *all = malloc(sizeof(*all));
	int rows = 0;

	if (!list || !csv || !all) {
		fprintf(stderr, "aw-loadgen: %s: %s\n", g->o.csv, strerror(errno));
		free(list);
		free(all);
		if (csv)
			fclose(csv);
		return 1;
	}
	fprintf(csv, "offered_per_s,ok_per_s,errors,p50_us,p90_us,p99_us,p999_us,max_us\n");
	if (!g->o.json)
		printf("%10s %10s %8s %9s %9s %9s %9s %9s\n", "offered/s", "ok/s", "errors", "p50",
		       "p90", "p99", "p99.9", "max");
	for (tok = strtok_r(list, ",", &save); tok && !interrupted;
	     tok = strtok_r(NULL, ",", &save)) {
		double rate = strtod(tok, NULL);
		uint64_t ok = 0, err = 0;

		if (run_once(g, rate) < 0)
			break;
		aw_hist_reset(all);
		for (unsigned i = 0; i < AW_WL_OPS; i++) {
			aw_hist_merge(all, &g->st[i].e2e);
			ok += g->st[i].ok;
			err += g->st[i].err;
		}
		fprintf(csv, "%.3f,%.3f,%llu,%.3f,%.3f,%.3f,%.3f,%.3f\n", rate,
			(double)ok / g->o.duration_s, (unsigned long long)err,
			(double)aw_hist_quantile(all, 0.5) / 1000.0,
			(double)aw_hist_quantile(all, 0.9) / 1000.0,
			(double)aw_hist_quantile(all, 0.99) / 1000.0,
			(double)aw_hist_quantile(all, 0.999) / 1000.0, (double)all->max / 1000.0);
		fflush(csv);
		if (g->o.json)
			print_json(g, rate);
		else
			printf("%10.1f %10.1f %8llu %9.1f %9.1f %9.1f %9.1f %9.1f\n", rate,
			       (double)ok / g->o.duration_s, (unsigned long long)err,
			       (double)aw_hist_quantile(all, 0.5) / 1000.0,
			       (double)aw_hist_quantile(all, 0.9) / 1000.0,
			       (double)aw_hist_quantile(all, 0.99) / 1000.0,
			       (double)aw_hist_quantile(all, 0.999) / 1000.0,
			       (double)all->max / 1000.0);
		fflush(stdout);
		rows++;
	}
	fclose(csv);
	free(list);
	free(all);
	if (rows && g->o.plot) {
		char cmd[64];
		FILE *gp;

		snprintf(cmd, sizeof(cmd), "command -v gnuplot >/dev/null 2>&1");
		if (system(cmd) != 0) {
			fprintf(stderr,
				"aw-loadgen: gnuplot not found (Debian: gnuplot-nox): wrote "
				"%s only\n",
				g->o.csv);
			return 0;
		}
		gp = popen("gnuplot", "w");
		if (!gp)
			return 1;
		fprintf(gp,
			"set terminal png size 900,600\nset output '%s'\nset datafile separator "
			"','\nset key top left\nset logscale y\nset grid\n"
			"set title 'aw-loadgen: latency vs throughput (%s:%s)'\n"
			"set xlabel 'offered requests/s'\nset ylabel 'latency from intended send "
			"(us)'\nset y2label 'answered requests/s'\nset y2tics\n"
			"plot '%s' skip 1 using 1:4 with linespoints title 'p50', '' skip 1 using "
			"1:6 with linespoints title 'p99', '' skip 1 using 1:7 with linespoints "
			"title 'p99.9', '' skip 1 using 1:2 axes x1y2 with lines dashtype 2 "
			"title 'answered/s'\n",
			g->o.plot, g->o.host, g->o.port, g->o.csv);
		if (pclose(gp) != 0) {
			fprintf(stderr, "aw-loadgen: gnuplot failed\n");
			return 1;
		}
		fprintf(stderr, "aw-loadgen: wrote %s and %s\n", g->o.csv, g->o.plot);
	}
	return 0;
}

/* ---- arguments ---- */

static void loadgen_usage(FILE *f)
{
	fprintf(f,
		"usage: aw-loadgen [options]\n"
		"  -s, --server HOST:PORT   server (default 127.0.0.1:7878)\n"
		"  -w, --workload FILE      workload file (docs/LOADGEN.md; default: 64-byte "
		"PINGs)\n"
		"  -r, --rate R             open loop: R requests/s (default 1000)\n"
		"      --arrival KIND       poisson (default) or constant\n"
		"  -a, --agents N           closed loop: N agents instead of --rate\n"
		"      --think-us T         closed loop think time (default 0)\n"
		"      --think-exp          exponential think times with mean T\n"
		"  -d, --duration S         measured seconds (default 10)\n"
		"      --warmup S           seconds before measuring (default 2)\n"
		"      --timeout-ms MS      per-request limit (default 5000)\n"
		"      --max-inflight N     in-flight limit, power of two (default 4096)\n"
		"      --mtu BYTES          path MTU for segmenting requests (default 1500)\n"
		"      --seed N             random seed (default 1)\n"
		"      --busy-poll          spin on the socket (uses a whole core)\n"
		"      --transport T        udp (kernel sockets, default), dpdk (if built with "
		"DPDK),\n"
		"                           or http: llama-server's POST /completion (streamed; "
		"generate only)\n"
		"      --eal ARGS           dpdk: EAL arguments, e.g. \"--no-huge -m 512 --no-pci\n"
		"                           --file-prefix=lg "
		"--vdev=net_memif0,role=client,socket=S\"\n"
		"      --local-ip A/N       dpdk: our IPv4 address and prefix (default "
		"10.99.0.3/24)\n"
		"      --json               machine-readable output\n"
		"      --sweep R1,R2,...    open-loop runs at each rate: table + CSV + PNG\n"
		"      --csv FILE           sweep CSV (default aw-loadgen-sweep.csv)\n"
		"      --plot FILE          sweep PNG via gnuplot (default aw-loadgen-sweep.png)\n"
		"      --no-progress        no live progress line (default: on when stderr is a "
		"terminal)\n");
}

static int num(const char *opt, const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "aw-loadgen: %s '%s': want a number in [%g, %g]\n", opt, s, lo, hi);
		return -1;
	}
	*ret = v;
	return 0;
}

static int loadgen_parse_args(int argc, char **argv, struct lg_opts *o)
{
	static const struct option longopts[] = {
		{"server", required_argument, NULL, 's'},
		{"workload", required_argument, NULL, 'w'},
		{"rate", required_argument, NULL, 'r'},
		{"arrival", required_argument, NULL, 'A'},
		{"agents", required_argument, NULL, 'a'},
		{"think-us", required_argument, NULL, 'T'},
		{"think-exp", no_argument, NULL, 'E'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'W'},
		{"timeout-ms", required_argument, NULL, 'o'},
		{"max-inflight", required_argument, NULL, 'm'},
		{"mtu", required_argument, NULL, 'M'},
		{"seed", required_argument, NULL, 'S'},
		{"busy-poll", no_argument, NULL, 'b'},
		{"transport", required_argument, NULL, 't'},
		{"eal", required_argument, NULL, 'e'},
		{"local-ip", required_argument, NULL, 'L'},
		{"json", no_argument, NULL, 'j'},
		{"sweep", required_argument, NULL, 'x'},
		{"csv", required_argument, NULL, 'c'},
		{"plot", required_argument, NULL, 'p'},
		{"no-progress", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static char hostbuf[256];
	int c, rate_given = 0;
	double v;

	while ((c = getopt_long(argc, argv, "s:w:r:a:d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': {
			const char *colon = strrchr(optarg, ':');

			if (!colon || colon == optarg || !colon[1] ||
			    (size_t)(colon - optarg) >= sizeof(hostbuf) ||
			    num("--server port", colon + 1, 1, 65535, &v) < 0) {
				fprintf(stderr, "aw-loadgen: --server '%s': want HOST:PORT\n",
					optarg);
				return -1;
			}
			memcpy(hostbuf, optarg, (size_t)(colon - optarg));
			hostbuf[colon - optarg] = 0;
			o->host = hostbuf;
			o->port = colon + 1;
			break;
		}
		case 'w':
			o->workload = optarg;
			break;
		case 'r':
			if (num("--rate", optarg, 1e-3, 1e8, &o->rate) < 0)
				return -1;
			rate_given = 1;
			break;
		case 'A':
			o->arrival = aw_arrival_parse_kind(optarg);
			if (o->arrival < 0) {
				fprintf(stderr, "aw-loadgen: --arrival '%s': poisson or constant\n",
					optarg);
				return -1;
			}
			break;
		case 'a':
			if (num("--agents", optarg, 1, 65536, &v) < 0 || v != floor(v))
				return -1;
			o->agents = (unsigned)v;
			break;
		case 'T':
			if (num("--think-us", optarg, 0, 1e9, &o->think_us) < 0)
				return -1;
			break;
		case 'E':
			o->think_exp = 1;
			break;
		case 'd':
			if (num("--duration", optarg, 0.001, 86400, &o->duration_s) < 0)
				return -1;
			break;
		case 'W':
			if (num("--warmup", optarg, 0, 3600, &o->warmup_s) < 0)
				return -1;
			break;
		case 'o':
			if (num("--timeout-ms", optarg, 1, 3600000, &v) < 0)
				return -1;
			o->timeout_ms = (uint32_t)v;
			break;
		case 'm':
			if (num("--max-inflight", optarg, 1, 1 << 20, &v) < 0 ||
			    ((unsigned)v & ((unsigned)v - 1)) || v != floor(v)) {
				fprintf(stderr, "aw-loadgen: --max-inflight: a power of two\n");
				return -1;
			}
			o->max_inflight = (uint32_t)v;
			break;
		case 'M':
			if (num("--mtu", optarg, 576, 65535, &v) < 0)
				return -1;
			o->mtu = (size_t)v;
			break;
		case 'S':
			if (num("--seed", optarg, 0, 1e18, &v) < 0)
				return -1;
			o->seed = (uint64_t)v;
			break;
		case 'b':
			o->busy_poll = 1;
			break;
		case 't':
			o->dpdk = o->http = 0;
			if (strcmp(optarg, "udp") == 0) {
			} else if (strcmp(optarg, "http") == 0) {
				o->http = 1;
			} else if (strcmp(optarg, "dpdk") == 0 && AW_LOADGEN_DPDK) {
				o->dpdk = 1;
			} else {
				fprintf(stderr, "aw-loadgen: --transport '%s': udp, http%s\n",
					optarg,
					AW_LOADGEN_DPDK ? " or dpdk"
							: " (this build has no DPDK transport)");
				return -1;
			}
			break;
		case 'e':
			o->eal_args = optarg;
			break;
		case 'L':
			o->local_cidr = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'x': {
			char *dup = strdup(optarg), *tok, *save = NULL;
			int n = 0;

			if (!dup)
				return -1;
			for (tok = strtok_r(dup, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				if (num("--sweep rate", tok, 1e-3, 1e8, &v) < 0) {
					free(dup);
					return -1;
				}
				n++;
			}
			free(dup);
			if (n == 0) {
				fprintf(stderr, "aw-loadgen: --sweep: want R1,R2,...\n");
				return -1;
			}
			o->sweep = optarg;
			break;
		}
		case 'c':
			o->csv = optarg;
			break;
		case 'p':
			o->plot = optarg;
			break;
		case 'n':
			o->progress = 0;
			break;
		case 'h':
			loadgen_usage(stdout);
			exit(0);
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "aw-loadgen: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->agents && (rate_given || o->sweep)) {
		fprintf(stderr, "aw-loadgen: --agents (closed loop) excludes --rate/--sweep\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct lg g;
	struct aw_client_opts co;
	struct aw_err err;
	int rc;

	memset(&g, 0, sizeof(g));
	g.o.host = "127.0.0.1";
	g.o.port = "7878";
	g.o.rate = 1000;
	g.o.arrival = AW_ARRIVAL_POISSON;
	g.o.duration_s = 10;
	g.o.warmup_s = 2;
	g.o.timeout_ms = 5000;
	g.o.max_inflight = 4096;
	g.o.seed = 1;
	g.o.csv = "aw-loadgen-sweep.csv";
	g.o.plot = "aw-loadgen-sweep.png";
	g.o.mtu = 1500;
	g.o.progress = isatty(2);
	if (loadgen_parse_args(argc, argv, &g.o) < 0) {
		loadgen_usage(stderr);
		return 2;
	}
	aw_workload_default(&g.wl);
	if (g.o.workload && aw_workload_load(&g.wl, g.o.workload, &err) < 0) {
		fprintf(stderr, "aw-loadgen: %s\n", err.msg);
		return 2;
	}
	if (g.o.http) {
		for (unsigned i = 0; i < AW_WL_OPS; i++)
			if (i != AW_WL_GENERATE && g.wl.weight[i] > 0) {
				fprintf(stderr,
					"aw-loadgen: --transport http: the workload's mix may hold "
					"only generate (llama-server's /completion), not %s\n",
					aw_wl_op_name(i));
				return 2;
			}
	}
	if (aw_workload_prepare(&g.wl) < 0)
		return 1;
	aw_client_opts_default(&co);
	co.timeout_us = (uint64_t)g.o.timeout_ms * 1000u;
	co.max_inflight = g.o.max_inflight;
	co.busy_poll = (uint8_t)g.o.busy_poll;
	co.batch_tx = 1;
	co.mtu = g.o.mtu;
#if AW_LOADGEN_DPDK
	if (g.o.dpdk) {
		struct aw_client_transport *t;

		co.busy_poll = 1; /* the port has no descriptor to sleep on */
		g.o.busy_poll = 1;
		rc = aw_dpdk_transport_open(g.o.eal_args,
					    g.o.local_cidr ? g.o.local_cidr : "10.99.0.3/24",
					    g.o.host, (uint16_t)atoi(g.o.port), &t);
		if (rc < 0) {
			fprintf(stderr, "aw-loadgen: DPDK transport to %s:%s: %s\n", g.o.host,
				g.o.port, strerror(-rc));
			return 1;
		}
		rc = aw_client_new(t, &co, &g.c);
	} else
#endif
		if (g.o.http)
		rc = aw_http_transport_open(g.o.host, g.o.port, g.o.max_inflight,
					    (uint64_t)g.o.timeout_ms * 1000000u, &g.http);
	else
		rc = aw_client_open(g.o.host, g.o.port, &co, &g.c);
	if (rc < 0) {
		fprintf(stderr, "aw-loadgen: %s:%s: %s\n", g.o.host, g.o.port, strerror(-rc));
		return 1;
	}
	g.pool = calloc(g.o.max_inflight, sizeof(*g.pool));
	g.st = calloc(AW_WL_OPS, sizeof(*g.st));
	g.body = malloc(AW_PROTO_MAX_MSG);
	g.agent_due = calloc(g.o.agents ? g.o.agents : 1, sizeof(*g.agent_due));
	if (!g.pool || !g.st || !g.body || !g.agent_due) {
		fprintf(stderr, "aw-loadgen: out of memory\n");
		return 1;
	}
	for (uint32_t i = 0; i < g.o.max_inflight; i++) {
		g.pool[i].next_free = g.free_list;
		g.free_list = &g.pool[i];
	}
	aw_rng_seed(&g.rng, g.o.seed ^ 0x5eedull);
	signal(SIGINT, on_sigint);
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* sleep to the microsecond */
	if (g.o.sweep) {
		rc = run_sweep(&g);
	} else {
		rc = run_once(&g, g.o.rate);
		if (rc < 0)
			fprintf(stderr, "aw-loadgen: %s\n", strerror(-rc));
		else if (g.o.json)
			print_json(&g, g.o.rate);
		else
			print_table(&g, g.o.rate);
		rc = rc < 0;
	}
	if (g.http)
		aw_http_transport_close(g.http);
	else
		aw_client_close(g.c);
	free(g.http_req);
	aw_workload_fini(&g.wl);
	free(g.pool);
	free(g.st);
	free(g.body);
	free(g.agent_due);
	return rc;
}
