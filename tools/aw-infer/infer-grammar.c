/* infer-grammar.c — aw-infer --json-schema and --grammar-bench.
 *
 * One constrained generation: the matcher's mask goes to the sampler
 * (aw_sample_set_mask), the sampled token goes to the matcher, and the
 * tokens the grammar forces next (aw_grammar_forced) are appended without a
 * forward pass of their own: they join the sampled token in one batch. The
 * generation ends when the matcher is done (only EOS could follow), when the
 * model picks an end-of-generation token the grammar allows, or at -n; after
 * the first quarter of the -n budget the matcher finishes (steers to the
 * nearest end of the value), so that the answer still parses.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "grammar.h"
#include "sample.h"
#include "tok.h"

#include "infer-grammar.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static double cpu_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

struct gen {
	double *mask_us; /* per sampled token */
	size_t n_mask, cap_mask;
	long tokens, ff;
	int complete, stuck;
	char *text;
	size_t len, cap;
};

static int put(struct gen *g, const char *p, size_t n)
{
	if (g->len + n + 1 > g->cap) {
		size_t nc = g->cap ? g->cap * 2 : 1024;
		while (nc < g->len + n + 1)
			nc *= 2;
		char *t = realloc(g->text, nc);
		if (!t)
			return -ENOMEM;
		g->text = t;
		g->cap = nc;
	}
	memcpy(g->text + g->len, p, n);
	g->len += n;
	g->text[g->len] = '\0';
	return 0;
}

static int is_eog(const struct aw_tok *tok, int32_t t)
{
	return aw_tok_is_eog(tok, t);
}

static int generate(const struct infer_model *m, const struct aw_tok *tok,
		    const struct aw_grammar_vocab *v, struct aw_grammar *gr,
		    const struct aw_sample_params *sp0, const int32_t *prompt, int32_t n_prompt,
		    long n_gen, struct gen *out)
{
	struct aw_grammar_matcher *mt = NULL;
	struct aw_sampler *s = NULL;
	struct aw_sample_params sp = *sp0;
	uint32_t words = (uint32_t)(m->n_vocab + 63) / 64;
	uint64_t *mask = calloc(words, sizeof(*mask));
	int32_t batch[257];
	int ret;

	sp.max_tokens = 0;
	sp.n_eos = 0; /* the grammar decides when to end */
	sp.n_stop = 0;
	if (!mask)
		return -ENOMEM;
	if ((ret = aw_grammar_matcher_new(gr, v, &mt)) < 0)
		goto out;
	if ((ret = aw_sample_new(&sp, m->n_vocab, &s)) < 0)
		goto out;
	aw_sample_prime(s, prompt, (size_t)n_prompt);
	m->clear(m->ctx);
	if ((ret = m->forward(m->ctx, prompt, n_prompt, 0)) < 0)
		goto out;
	int32_t pos = n_prompt;
	while (out->tokens < n_gen) {
		/* the last three quarters of the budget steer to the nearest end */
		if (out->tokens >= n_gen / 4)
			aw_grammar_set_finish(mt, 1);
		if (aw_grammar_done(mt)) {
			out->complete = 1;
			break;
		}
		/* thread CPU time: what the mask costs, not when the (shared)
		 * machine happened to preempt us */
		double t0 = cpu_us();
		int cnt = aw_grammar_mask(mt, mask);
		double t1 = cpu_us();
		if (out->n_mask == out->cap_mask) {
			size_t nc = out->cap_mask ? out->cap_mask * 2 : 256;
			double *nm = realloc(out->mask_us, nc * sizeof(*nm));
			if (!nm) {
				ret = -ENOMEM;
				goto out;
			}
			out->mask_us = nm;
			out->cap_mask = nc;
		}
		out->mask_us[out->n_mask++] = t1 - t0;
		if (cnt <= 0) {
			out->stuck = 1;
			break;
		}
		if ((uint32_t)aw_grammar_vocab_n(v) < (uint32_t)m->n_vocab) {
			/* model rows beyond the tokenizer: never allowed */
			for (int32_t t = aw_grammar_vocab_n(v); t < m->n_vocab; t++)
				mask[t >> 6] &= ~(1ull << (t & 63));
		}
		aw_sample_set_mask(s, mask);
		int32_t t = aw_sample_pick(s, m->logits);
		if (t < 0) {
			out->stuck = 1;
			break;
		}
		if ((ret = aw_grammar_accept(mt, t)) < 0) {
			fprintf(stderr, "aw-infer: the grammar refused token %d it allowed\n", t);
			if (getenv("AW_GRAMMAR_DEBUG")) {
				FILE *df = fopen(getenv("AW_GRAMMAR_DEBUG"), "wb");
				if (df) {
					fwrite(out->text, 1, out->len, df);
					fclose(df);
				}
			}
			goto out;
		}
		const char *text;
		size_t tl, pl;
		const char *piece = aw_tok_piece(tok, t, &pl);
		aw_sample_accept(s, t, piece, pl, &text, &tl);
		out->tokens++;
		if (is_eog(tok, t)) {
			out->complete = 1;
			break;
		}
		if ((ret = put(out, piece, pl)) < 0)
			goto out;
		int32_t nb = 0;
		batch[nb++] = t;
		/* fast-forward: the tokens the grammar forces go in the same batch */
		size_t nf = 0;
		aw_grammar_forced(mt, batch + 1, 256, &nf);
		for (size_t i = 0; i < nf; i++) {
			int32_t f = batch[1 + i];
			if (aw_grammar_accept(mt, f) < 0)
				break;
			piece = aw_tok_piece(tok, f, &pl);
			aw_sample_accept(s, f, piece, pl, &text, &tl);
			if ((ret = put(out, piece, pl)) < 0)
				goto out;
			nb++;
			out->ff++;
			out->tokens++;
		}
		if (aw_grammar_done(mt)) {
			out->complete = 1;
			break;
		}
		if (pos + nb > m->ctx_len)
			break;
		if ((ret = m->forward(m->ctx, batch, nb, pos)) < 0)
			goto out;
		pos += nb;
	}
	ret = 0;
out:
	aw_sample_free(s);
	aw_grammar_matcher_free(mt);
	free(mask);
	return ret;
}

static char *slurp(const char *path, size_t *ret_n)
{
	FILE *f = fopen(path, "rb");
	char *b = NULL;
	size_t n = 0, cap = 0;
	if (!f)
		return NULL;
	for (;;) {
		if (n + 65536 > cap) {
			cap = cap ? cap * 2 : 65536;
			char *nb = realloc(b, cap + 1);
			if (!nb) {
				free(b);
				fclose(f);
				return NULL;
			}
			b = nb;
		}
		size_t k = fread(b + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	b[n] = '\0';
	*ret_n = n;
	return b;
}

int infer_grammar_schema(const struct infer_model *m, const struct aw_tok *tok,
			 const struct aw_sample_params *sp, const char *path, const int32_t *prompt,
			 int32_t n_prompt, long n_gen)
{
	struct aw_err err = {0};
	struct aw_grammar *g = NULL;
	struct aw_grammar_vocab *v = NULL;
	struct gen out = {0};
	size_t n;
	int status = 1;
	char *buf = slurp(path, &n);

	if (!buf) {
		fprintf(stderr, "aw-infer: --json-schema %s: %s\n", path, strerror(errno));
		return 2;
	}
	int r = aw_grammar_compile(buf, n, NULL, &g, &err);
	free(buf);
	if (r < 0) {
		fprintf(stderr, "aw-infer: --json-schema %s: %s\n", path, err.msg);
		return 2;
	}
	if (aw_grammar_vocab_new(tok, &v) < 0) {
		fprintf(stderr, "aw-infer: out of memory\n");
		goto out;
	}
	if ((r = generate(m, tok, v, g, sp, prompt, n_prompt, n_gen, &out)) < 0) {
		fprintf(stderr, "aw-infer: constrained generation: %s\n", strerror(-r));
		goto out;
	}
	fwrite(out.text ? out.text : "", 1, out.len, stdout);
	printf("\n");
	if (!out.complete)
		fprintf(stderr,
			"aw-infer: stopped after %ld tokens before the value was complete\n",
			out.tokens);
	else if (m->verbose)
		fprintf(stderr, "aw-infer: %ld tokens, %ld of them forced\n", out.tokens, out.ff);
	status = out.complete ? 0 : 1;
out:
	free(out.text);
	free(out.mask_us);
	aw_grammar_vocab_free(v);
	aw_grammar_free(g);
	return status;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* A JSON string (quotes included) of 'n' bytes. */
static void json_str(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

int infer_grammar_bench(const struct infer_model *m, const struct aw_tok *tok,
			const struct aw_sample_params *sp, const char *path, const int32_t *prompt,
			int32_t n_prompt, long n_gen)
{
	struct aw_grammar_vocab *v = NULL;
	size_t n;
	char *buf = slurp(path, &n);
	double *all = NULL, *comp = NULL, *compc = NULL;
	size_t nall = 0, capall = 0, ncomp = 0, capcomp = 0;
	long schemas = 0, compiled = 0, complete = 0, stuck = 0, tokens = 0, ff = 0, bad = 0;
	int status = 1;

	if (!buf) {
		fprintf(stderr, "aw-infer: --grammar-bench %s: %s\n", path, strerror(errno));
		return 2;
	}
	double t0 = now_us();
	if (aw_grammar_vocab_new(tok, &v) < 0) {
		fprintf(stderr, "aw-infer: out of memory\n");
		goto out;
	}
	double vocab_ms = (now_us() - t0) / 1000;
	for (char *line = buf, *end; line < buf + n; line = end + 1) {
		end = memchr(line, '\n', (size_t)(buf + n - line));
		if (!end)
			end = buf + n;
		if (end == line)
			continue;
		struct aw_json *j = NULL;
		struct aw_err err = {0};
		struct aw_grammar *g = NULL;
		schemas++;
		double c0 = now_us(), cc0 = cpu_us();
		int r = aw_json_parse(line, (size_t)(end - line), &j, &err);
		const struct aw_json *name = r == 0 ? aw_json_get(j, "name") : NULL;
		const struct aw_json *schema = r == 0 ? aw_json_get(j, "schema") : NULL;
		if (r == 0 && !schema) {
			r = -EBADMSG;
			snprintf(err.msg, sizeof(err.msg), "line without \"schema\"");
		}
		if (r == 0)
			r = aw_grammar_compile_json(schema, NULL, &g, &err);
		double c1 = now_us(), cc1 = cpu_us();
		printf("{\"name\":");
		if (name && name->type == AW_JSON_STRING)
			json_str(stdout, name->str, name->len);
		else
			printf("\"#%ld\"", schemas);
		printf(",\"compiled\":%s,\"compile_us\":%.1f,\"compile_cpu_us\":%.1f",
		       r == 0 ? "true" : "false", c1 - c0, cc1 - cc0);
		if (r < 0) {
			printf(",\"error\":");
			json_str(stdout, err.msg, strlen(err.msg));
			printf("}\n");
			aw_json_free(j);
			continue;
		}
		compiled++;
		if (ncomp == capcomp) {
			capcomp = capcomp ? capcomp * 2 : 1024;
			double *nc = realloc(comp, capcomp * sizeof(*nc));
			if (!nc)
				goto nomem;
			comp = nc;
			nc = realloc(compc, capcomp * sizeof(*nc));
			if (!nc)
				goto nomem;
			compc = nc;
		}
		compc[ncomp] = cc1 - cc0;
		comp[ncomp++] = c1 - c0;
		struct gen out = {0};
		r = generate(m, tok, v, g, sp, prompt, n_prompt, n_gen, &out);
		if (r < 0) {
			fprintf(stderr, "aw-infer: generation: %s\n", strerror(-r));
			bad++;
		}
		qsort(out.mask_us, out.n_mask, sizeof(double), cmp_d);
		double sum = 0;
		for (size_t i = 0; i < out.n_mask; i++)
			sum += out.mask_us[i];
		printf(",\"nodes\":%zu,\"tokens\":%ld,\"ff_tokens\":%ld,\"complete\":%s%s,"
		       "\"mask_us\":{\"n\":%zu,\"avg\":%.2f,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}"
		       ","
		       "\"output\":",
		       aw_grammar_n_nodes(g), out.tokens, out.ff, out.complete ? "true" : "false",
		       out.stuck ? ",\"stuck\":true" : "", out.n_mask,
		       out.n_mask ? sum / (double)out.n_mask : 0, pct(out.mask_us, out.n_mask, 0.5),
		       pct(out.mask_us, out.n_mask, 0.99),
		       out.n_mask ? out.mask_us[out.n_mask - 1] : 0);
		json_str(stdout, out.text ? out.text : "", out.len);
		printf("}\n");
		fflush(stdout);
		complete += out.complete;
		stuck += out.stuck;
		tokens += out.tokens;
		ff += out.ff;
		if (nall + out.n_mask > capall) {
			size_t nc = capall ? capall : 4096;
			while (nc < nall + out.n_mask)
				nc *= 2;
			double *na = realloc(all, nc * sizeof(*na));
			if (!na)
				goto nomem;
			all = na;
			capall = nc;
		}
		memcpy(all + nall, out.mask_us, out.n_mask * sizeof(double));
		nall += out.n_mask;
		free(out.mask_us);
		free(out.text);
		aw_grammar_free(g);
		aw_json_free(j);
	}
	qsort(all, nall, sizeof(double), cmp_d);
	qsort(comp, ncomp, sizeof(double), cmp_d);
	if (ncomp)
		qsort(compc, ncomp, sizeof(double), cmp_d);
	double sum = 0;
	for (size_t i = 0; i < nall; i++)
		sum += all[i];
	printf("{\"summary\":{\"schemas\":%ld,\"compiled\":%ld,\"refused\":%ld,\"complete\":%ld,"
	       "\"stuck\":%ld,\"tokens\":%ld,\"ff_tokens\":%ld,\"vocab\":%d,\"vocab_build_ms\":%."
	       "1f,"
	       "\"compile_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
	       "\"compile_cpu_us\":{\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
	       "\"mask_us\":{\"n\":%zu,\"avg\":%.2f,\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}}\n",
	       schemas, compiled, schemas - compiled, complete, stuck, tokens, ff,
	       aw_grammar_vocab_n(v), vocab_ms, pct(comp, ncomp, 0.5), pct(comp, ncomp, 0.99),
	       ncomp ? comp[ncomp - 1] : 0, pct(compc, ncomp, 0.5), pct(compc, ncomp, 0.99),
	       ncomp ? compc[ncomp - 1] : 0, nall, nall ? sum / (double)nall : 0,
	       pct(all, nall, 0.5), pct(all, nall, 0.99), nall ? all[nall - 1] : 0);
	status = bad ? 1 : 0;
	goto out;
nomem:
	fprintf(stderr, "aw-infer: out of memory\n");
out:
	free(all);
	free(comp);
	free(compc);
	free(buf);
	aw_grammar_vocab_free(v);
	return status;
}
