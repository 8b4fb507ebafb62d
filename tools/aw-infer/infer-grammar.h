/* infer-grammar.h — aw-infer's constrained modes (infer-grammar.c):
 * --json-schema FILE (print one constrained answer) and --grammar-bench
 * FILE.jsonl (compile every schema, run one constrained generation each,
 * print one JSON line per schema and a summary line).
 *
 * main.c owns the model; these functions reach it through struct
 * infer_model so that they need none of main.c's internals.
 */
#ifndef AW_INFER_GRAMMAR_H
#define AW_INFER_GRAMMAR_H

#include <stdint.h>

struct aw_tok;
struct aw_sample_params;

struct infer_model {
	void *ctx;
	/* run tokens [0, n) at positions pos0.. of sequence 0; logits of the
	 * last one land in 'logits'. Returns 0 or -errno. */
	int (*forward)(void *ctx, const int32_t *tok, int32_t n, int32_t pos0);
	/* forget sequence 0 (before the next generation) */
	void (*clear)(void *ctx);
	const float *logits; /* (n_vocab) */
	int32_t n_vocab;
	int32_t ctx_len; /* positions available */
	int verbose;
};

/* --json-schema: compile 'path', generate from 'prompt' under it, print the
 * answer on stdout. Returns the exit status (0; 1 on errors; 2 for a schema
 * that does not compile, after printing why). */
int infer_grammar_schema(const struct infer_model *m, const struct aw_tok *tok,
			 const struct aw_sample_params *sp, const char *path, const int32_t *prompt,
			 int32_t n_prompt, long n_gen);

/* --grammar-bench: one line per {"name", "schema"} of 'path':
 *   {"name":..,"compiled":true,"compile_us":..,"tokens":..,"ff_tokens":..,
 *    "complete":..,"mask_us":{"avg":..,"p50":..,"p99":..,"max":..},"output":".."}
 * or {"name":..,"compiled":false,"compile_us":..,"error":".."}; then
 *   {"summary":{...}}
 * Returns the exit status. */
int infer_grammar_bench(const struct infer_model *m, const struct aw_tok *tok,
			const struct aw_sample_params *sp, const char *path, const int32_t *prompt,
			int32_t n_prompt, long n_gen);

#endif
