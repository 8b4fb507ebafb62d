/* workload.c — workload file parser and request synthesis (see workload.h). */
#include "workload.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const char *const op_names[AW_WL_OPS] = {"generate", "classify", "embed",
						"ping",	    "stats",	"tools"};
static const unsigned op_types[AW_WL_OPS] = {AW_PROTO_GENERATE, AW_PROTO_CLASSIFY,
					     AW_PROTO_EMBED,	AW_PROTO_PING,
					     AW_PROTO_STATS,	AW_PROTO_GENERATE};

const char *aw_wl_op_name(unsigned op)
{
	return op < AW_WL_OPS ? op_names[op] : "?";
}

void aw_workload_default(struct aw_workload *w)
{
	memset(w, 0, sizeof(*w));
	w->weight[AW_WL_PING] = 1.0;
	w->prompt_tokens.kind = AW_WL_FIXED;
	w->prompt_tokens.a = 64;
	w->max_new_tokens.kind = AW_WL_FIXED;
	w->max_new_tokens.a = 16;
	w->chars_per_token = 4.0;
	w->labels = 4;
	w->ping_bytes = 64;
	w->tools = 4;
	w->normalize = 1;
}

static int parse_word(const char *s, const char *const *names, unsigned n, uint8_t *ret)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0) {
			*ret = (uint8_t)i;
			return 0;
		}
	return -EINVAL;
}

static int parse_double(const char *s, double lo, double hi, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret)
{
	double v;

	if (parse_double(s, lo, hi, &v) < 0 || v != floor(v))
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

int aw_wl_dist_parse(const char *s, struct aw_wl_dist *ret)
{
	char kind[16], *p;
	const char *colon = strchr(s, ':');
	double v[2] = {0, 0};
	int n = 0, want;
	struct aw_wl_dist d;
	char tmp[128];

	if (!colon || (size_t)(colon - s) >= sizeof(kind) || strlen(s) >= sizeof(tmp))
		return -EINVAL;
	memcpy(kind, s, (size_t)(colon - s));
	kind[colon - s] = 0;
	if (strcmp(kind, "fixed") == 0)
		d.kind = AW_WL_FIXED, want = 1;
	else if (strcmp(kind, "uniform") == 0)
		d.kind = AW_WL_UNIFORM, want = 2;
	else if (strcmp(kind, "exp") == 0)
		d.kind = AW_WL_EXP, want = 1;
	else if (strcmp(kind, "normal") == 0)
		d.kind = AW_WL_NORMAL, want = 2;
	else
		return -EINVAL;
	strcpy(tmp, colon + 1);
	for (p = strtok(tmp, ":"); p; p = strtok(NULL, ":")) {
		if (n == 2 || parse_double(p, 0, 1e6, &v[n]) < 0)
			return -EINVAL;
		n++;
	}
	if (n != want)
		return -EINVAL;
	if (d.kind == AW_WL_UNIFORM && v[0] > v[1])
		return -EINVAL;
	if ((d.kind == AW_WL_EXP || d.kind == AW_WL_FIXED) && v[0] <= 0)
		return -EINVAL;
	d.a = v[0];
	d.b = v[1];
	*ret = d;
	return 0;
}

uint32_t aw_wl_dist_sample(const struct aw_wl_dist *d, struct aw_rng *r)
{
	double v = d->a;

	switch (d->kind) {
	case AW_WL_FIXED:
		break;
	case AW_WL_UNIFORM:
		v = (double)aw_rng_range(r, (uint64_t)llround(d->a), (uint64_t)llround(d->b));
		break;
	case AW_WL_EXP:
		v = aw_rng_exp(r, d->a);
		break;
	case AW_WL_NORMAL:
		v = aw_rng_normal(r, d->a, d->b);
		break;
	}
	v = round(v);
	if (!(v >= 1))
		v = 1;
	if (v > 1e6)
		v = 1e6;
	return (uint32_t)v;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int parse_mix(struct aw_workload *w, char *v, const char *name, unsigned line,
		     struct aw_err *err)
{
	double weight[AW_WL_OPS] = {0}, sum = 0;
	char *tok, *save = NULL;
	unsigned listed = 0;

	for (tok = strtok_r(v, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		char *colon = strchr(tok, ':');
		unsigned op;

		if (!colon)
			return aw_err_set(err, EINVAL, "%s:%u: mix: '%s' is not op:weight", name,
					  line, tok);
		*colon = 0;
		for (op = 0; op < AW_WL_OPS; op++)
			if (strcmp(tok, op_names[op]) == 0)
				break;
		if (op == AW_WL_OPS)
			return aw_err_set(err, EINVAL,
					  "%s:%u: mix: unknown op '%s' (generate, classify, embed, "
					  "ping, stats, tools)",
					  name, line, tok);
		if (listed & (1u << op))
			return aw_err_set(err, EINVAL, "%s:%u: mix: op '%s' listed twice", name,
					  line, tok);
		listed |= 1u << op;
		if (parse_double(colon + 1, 0, 1e9, &weight[op]) < 0)
			return aw_err_set(err, EINVAL,
					  "%s:%u: mix: weight '%s' of %s is not a "
					  "number >= 0",
					  name, line, colon + 1, tok);
		sum += weight[op];
	}
	if (!(sum > 0))
		return aw_err_set(err, EINVAL, "%s:%u: mix: weights sum to 0", name, line);
	memcpy(w->weight, weight, sizeof(weight));
	return 0;
}

int aw_workload_parse(struct aw_workload *w, const char *text, size_t len, const char *name,
		      struct aw_err *err)
{
	static const char *const keys[] = {
		"mix",		 "prompt_tokens", "max_new_tokens", "chars_per_token",
		"shared_prefix", "prefix_tokens", "sessions",	    "session_reuse",
		"deadline_us",	 "labels",	  "temperature",    "ping_bytes",
		"tools",	 "tool_choice",	  "pooling",	    "normalize",
	};
	static const char *const choices[] = {"auto", "none", "required"};
	static const char *const pools[] = {"mean", "cls", "last"};
	unsigned seen = 0, line = 0;
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - (text + off)) : len - off;
		char buf[1024], *s, *eq, *k, *v, *hash;
		unsigned ki;
		int rc = 0;

		line++;
		if (l >= sizeof(buf))
			return aw_err_set(err, EINVAL, "%s:%u: line longer than %zu bytes", name,
					  line, sizeof(buf) - 1);
		memcpy(buf, text + off, l);
		buf[l] = 0;
		off += l + (nl ? 1 : 0);
		if (memchr(buf, 0, l))
			return aw_err_set(err, EINVAL, "%s:%u: NUL byte", name, line);
		hash = strchr(buf, '#');
		if (hash)
			*hash = 0;
		s = trim(buf);
		if (!*s)
			continue;
		eq = strchr(s, '=');
		if (!eq)
			return aw_err_set(err, EINVAL, "%s:%u: expected 'key = value', got '%s'",
					  name, line, s);
		*eq = 0;
		k = trim(s);
		v = trim(eq + 1);
		for (ki = 0; ki < sizeof(keys) / sizeof(keys[0]); ki++)
			if (strcmp(k, keys[ki]) == 0)
				break;
		if (ki == sizeof(keys) / sizeof(keys[0]))
			return aw_err_set(err, EINVAL, "%s:%u: unknown key '%s'", name, line, k);
		if (seen & (1u << ki))
			return aw_err_set(err, EINVAL, "%s:%u: key '%s' given twice", name, line,
					  k);
		seen |= 1u << ki;
		if (!*v)
			return aw_err_set(err, EINVAL, "%s:%u: '%s' has no value", name, line, k);
		switch (ki) {
		case 0:
			if ((rc = parse_mix(w, v, name, line, err)) < 0)
				return rc;
			continue;
		case 1:
			rc = aw_wl_dist_parse(v, &w->prompt_tokens);
			break;
		case 2:
			rc = aw_wl_dist_parse(v, &w->max_new_tokens);
			break;
		case 3:
			rc = parse_double(v, 0.5, 64, &w->chars_per_token);
			break;
		case 4:
			rc = parse_double(v, 0, 1, &w->shared_prefix);
			break;
		case 5:
			rc = parse_u32(v, 0, 100000, &w->prefix_tokens);
			break;
		case 6:
			rc = parse_u32(v, 0, 100000000, &w->sessions);
			break;
		case 7:
			rc = parse_double(v, 0, 1, &w->session_reuse);
			break;
		case 8:
			rc = parse_u32(v, 0, 4000000000u, &w->deadline_us);
			break;
		case 9:
			rc = parse_u32(v, 1, AW_PROTO_MAX_LABELS, &w->labels);
			break;
		case 10:
			rc = parse_double(v, 0, 100, &w->temperature);
			break;
		case 11:
			rc = parse_u32(v, 0, 60000, &w->ping_bytes);
			break;
		case 12:
			rc = parse_u32(v, 1, 128, &w->tools);
			break;
		case 13:
			rc = parse_word(v, choices, 3, &w->tool_choice);
			break;
		case 14:
			rc = parse_word(v, pools, 3, &w->pooling);
			break;
		case 15: {
			uint32_t b = 0;
			rc = parse_u32(v, 0, 1, &b);
			w->normalize = (uint8_t)b;
			break;
		}
		}
		if (rc < 0)
			return aw_err_set(
				err, EINVAL, "%s:%u: %s: bad value '%s'%s", name, line, k, v,
				ki == 1 || ki == 2
					? " (fixed:N, uniform:LO:HI, exp:MEAN, normal:MEAN:SD)"
					: "");
	}
	if (w->shared_prefix > 0 && w->prefix_tokens == 0)
		return aw_err_set(err, EINVAL, "%s: shared_prefix > 0 needs prefix_tokens > 0",
				  name);
	return 0;
}

int aw_workload_load(struct aw_workload *w, const char *path, struct aw_err *err)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t n;
	int rc;

	if (!f)
		return aw_err_set(err, errno, "%s: %s", path, strerror(errno));
	text = malloc(1 << 20);
	if (!text) {
		fclose(f);
		return aw_err_set(err, ENOMEM, "out of memory");
	}
	n = fread(text, 1, 1 << 20, f);
	if (n == 1 << 20 || ferror(f)) {
		fclose(f);
		free(text);
		return aw_err_set(err, EFBIG, "%s: unreadable or larger than 1 MiB", path);
	}
	fclose(f);
	rc = aw_workload_parse(w, text, n, path, err);
	free(text);
	return rc;
}

static const char *const words[] = {
	"the",	  "agent", "tool",  "call",   "search", "weather", "route", "json",
	"schema", "user",  "query", "answer", "select", "result",  "city",  "date",
};

/* Deterministic pseudo-text of about 'n' characters. */
static void fill_text(char *out, size_t n, struct aw_rng *r)
{
	size_t i = 0;

	while (i < n) {
		const char *wd = words[aw_rng_next(r) % (sizeof(words) / sizeof(words[0]))];
		size_t l = strlen(wd);

		if (i + l + 1 > n) {
			memset(out + i, 'x', n - i);
			break;
		}
		memcpy(out + i, wd, l);
		out[i + l] = ' ';
		i += l + 1;
	}
}

int aw_workload_prepare(struct aw_workload *w)
{
	struct aw_rng r;

	free(w->prefix);
	w->prefix_len = (size_t)(w->prefix_tokens * w->chars_per_token);
	w->prefix = malloc(w->prefix_len + 1);
	if (!w->prefix)
		return -ENOMEM;
	aw_rng_seed(&r, 1);
	fill_text(w->prefix, w->prefix_len, &r);
	w->next_session = (uint64_t)w->sessions + 1;
	return 0;
}

void aw_workload_fini(struct aw_workload *w)
{
	free(w->prefix);
	w->prefix = NULL;
}

int aw_workload_next(struct aw_workload *w, struct aw_rng *r, uint8_t *buf, size_t cap,
		     struct aw_wl_req *ret)
{
	double sum = 0, x;
	unsigned op;
	int n;

	for (op = 0; op < AW_WL_OPS; op++)
		sum += w->weight[op];
	if (!(sum > 0))
		return -EINVAL;
	/* the first op whose cumulative weight reaches x (x in (0, sum]) */
	x = aw_rng_unit(r) * sum;
	for (op = 0; op < AW_WL_OPS; op++) {
		if (w->weight[op] > 0 && x <= w->weight[op])
			break;
		x -= w->weight[op];
	}
	if (op == AW_WL_OPS) /* rounding at the top end: the last op with weight */
		for (op = AW_WL_OPS - 1; w->weight[op] <= 0; op--)
			;
	memset(ret, 0, sizeof(*ret));
	ret->op = op;
	ret->type = op_types[op];
	ret->body = buf;
	if (w->sessions && op == AW_WL_GENERATE) {
		if (aw_rng_unit(r) <= w->session_reuse)
			ret->session_id = aw_rng_range(r, 1, w->sessions);
		else
			ret->session_id = w->next_session++;
	}
	if (op == AW_WL_PING) {
		if (cap < w->ping_bytes)
			return -ENOSPC;
		for (uint32_t i = 0; i < w->ping_bytes; i++)
			buf[i] = (uint8_t)aw_rng_next(r);
		ret->len = w->ping_bytes;
		return 0;
	}
	if (op == AW_WL_STATS)
		return 0;
	{
		static char text[1 << 20];
		static char labels[AW_PROTO_MAX_LABELS][16];
		static char msgs[(1 << 20) + 256], tools[128 * 160];
		struct aw_proto_req q;
		size_t plen =
			(size_t)(aw_wl_dist_sample(&w->prompt_tokens, r) * w->chars_per_token);
		size_t pre = 0;

		if (w->prefix_len && aw_rng_unit(r) <= w->shared_prefix) {
			pre = w->prefix_len;
			memcpy(text, w->prefix, pre);
		}
		if (pre + plen > sizeof(text))
			plen = sizeof(text) - pre;
		fill_text(text + pre, plen, r);
		aw_proto_req_init(&q);
		q.prompt.p = text;
		q.prompt.len = (uint32_t)(pre + plen);
		q.max_new_tokens = aw_wl_dist_sample(&w->max_new_tokens, r);
		q.temperature = (float)w->temperature;
		q.deadline_us = w->deadline_us;
		q.seed = aw_rng_next(r);
		ret->prompt = text;
		ret->prompt_len = pre + plen;
		ret->max_new_tokens = q.max_new_tokens;
		ret->temperature = q.temperature;
		ret->seed = q.seed;
		if (ret->session_id)
			q.req_flags = AW_PROTO_REQF_KEEP_SESSION;
		if (op == AW_WL_TOOLS) {
			/* the prefix as the system message, the rest as the user's */
			int m = snprintf(msgs, sizeof(msgs),
					 "[{\"role\": \"system\", \"content\": \"%.*s\"}, "
					 "{\"role\": \"user\", \"content\": \"%.*s\"}]",
					 (int)pre, text, (int)plen, text + pre);
			size_t t = (size_t)snprintf(tools, sizeof(tools), "[");
			for (uint32_t i = 0; i < w->tools; i++)
				t += (size_t)snprintf(
					tools + t, sizeof(tools) - t,
					"%s{\"type\": \"function\", \"function\": {\"name\": "
					"\"tool%u\", \"parameters\": {\"type\": \"object\", "
					"\"properties\": {\"q\": {\"type\": \"string\"}}}}}",
					i ? ", " : "", i);
			t += (size_t)snprintf(tools + t, sizeof(tools) - t, "]");
			q.prompt.p = NULL;
			q.prompt.len = 0;
			q.messages.p = msgs;
			q.messages.len =
				(uint32_t)(m < (int)sizeof(msgs) ? m : (int)sizeof(msgs) - 1);
			q.tools.p = tools;
			q.tools.len = (uint32_t)t;
			q.tool_choice = w->tool_choice;
		}
		if (op == AW_WL_EMBED) {
			q.pooling = w->pooling;
			q.embed_flags = w->normalize ? AW_PROTO_EMBED_NORMALIZE : 0;
		}
		if (op == AW_WL_CLASSIFY) {
			q.n_labels = w->labels;
			for (uint32_t i = 0; i < w->labels; i++) {
				snprintf(labels[i], sizeof(labels[i]), "label%u", i);
				q.labels[i].p = labels[i];
				q.labels[i].len = (uint32_t)strlen(labels[i]);
			}
		}
		n = aw_proto_req_build(&q, buf, cap);
		if (n < 0)
			return n;
		ret->len = (size_t)n;
	}
	return 0;
}
