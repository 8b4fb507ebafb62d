/* aw-infer — run, inspect and benchmark a llama GGUF model offline.
 *
 *   aw-infer -m MODEL --prompt-ids "1 2 3" [-n N] [sampling] [-t T] [--kernels K]
 *   aw-infer -m MODEL --info
 *   aw-infer -m MODEL --bench [-p 512] [-n 128] [-t T]
 *   aw-infer -m MODEL --prompt-ids "..." --logits
 *   aw-infer -m MODEL --load uring --load-only
 *   aw-infer -m MODEL -p TEXT --embed mean|cls|last [--no-normalize]
 *   aw-infer -m MODEL -p TEXT --label A --label B ...   (CLASSIFY)
 *
 * It opens the file with the GGUF reader, gets the tensor bytes from the
 * file mapping or from the weight loader (--load), builds the model on the
 * chosen kernel table, and runs the prompt through the batched forward pass
 * in chunks of --batch tokens, then samples token by token. Exit status: 0
 * done, 1 a model or run-time error (bad file, unsupported model, CPU lacks
 * the kernels asked for), 2 a usage error (bad flag or value, prompt longer
 * than the context).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "loader.h"
#include "log.h"
#include "model.h"
#include "pool.h"
#include "quant.h"
#include "sample.h"
#include "score.h"
#include "tok.h"

#include "infer-grammar.h"
#include "infer-tok.h"

#define MAX_CPUS		  256
#define AW_SCHED_MAX_LABELS_INFER 256 /* --label flags */

struct opts {
	const char *model;
	const char *prompt;	/* -p text (or a token count with --bench) */
	const char *prompt_ids; /* --prompt-ids "1 2 3" */
	long n;			/* -n; -1 = default */
	struct aw_sample_params sp;
	bool seed_set;
	int threads;
	int cpus[MAX_CPUS];
	int n_cpus;
	const char *kernels;
	bool ids, info, bench, logits, load_only;
	const char *tokenize;	/* --tokenize TEXT|- */
	const char *detokenize; /* --detokenize "IDS" */
	bool bos, special;	/* --bos, --special */
	int load;		/* -1: the GGUF mapping; else enum aw_load_method */
	unsigned load_off;	/* --load-features-off: AW_LOAD_F_* not to use */
	long ctx;
	long batch;
	int reps;
	bool no_repack;
	bool dequant;	  /* --dequant: F32 weights, unquantized activations */
	uint32_t kv_type; /* AW_TYPE_F16 or AW_TYPE_F32 */
	int verbose;
	/* agent operations (inference/score.h) */
	int embed;	   /* --embed POOL: enum aw_score_pool + 1; 0 = off */
	bool no_normalize; /* --no-normalize */
	const char *labels[AW_SCHED_MAX_LABELS_INFER]; /* --label TEXT (CLASSIFY) */
	int n_labels;
	const char *json_schema;   /* --json-schema FILE */
	const char *grammar_bench; /* --grammar-bench FILE.jsonl */
};

static void infer_usage(FILE *f)
{
	fprintf(f,
		"usage: aw-infer -m MODEL (--prompt-ids \"1 2 3\" | -p PROMPT) [options]\n"
		"       aw-infer -m MODEL --info | --bench | --load-only\n"
		"\n"
		"  -m, --model FILE        llama GGUF file\n"
		"  -p, --prompt TEXT       prompt text (needs the tokenizer); with --bench: a\n"
		"                          token count (default 512)\n"
		"      --prompt-ids LIST   prompt as token ids, space or comma separated\n"
		"  -n, --n-predict N       tokens to generate (default 128), >= 1\n"
		"      --temp T            temperature; 0 = greedy (default 0.8)\n"
		"      --top-k K           keep the K most likely tokens; 0 = off (default 40)\n"
		"      --top-p P           nucleus probability; 1 = off (default 0.95)\n"
		"      --min-p P           drop tokens below P x the best; 0 = off (default 0.05)\n"
		"      --repeat-penalty R  repetition penalty; 1 = off (default 1.0)\n"
		"      --presence-penalty X, --frequency-penalty X  (default 0)\n"
		"      --repeat-last-n N   penalty window (default 64)\n"
		"      --seed S            sampling seed (default: from the clock)\n"
		"      --stop TEXT         stop string (repeatable, up to 16)\n"
		"      --ignore-eos        keep generating after end-of-sequence tokens\n"
		"  -t, --threads N         worker threads (default: one per CPU in --cpus, else "
		"1)\n"
		"      --cpus LIST         pin threads to these CPUs, e.g. 0-1 or 0,2\n"
		"      --kernels NAME      ref | avx2 | avx512 | avx512vnni | neon | dotprod | "
		"i8mm\n"
		"                          (those built for this CPU; default: the best it runs)\n"
		"  -c, --ctx N             context length (default: the model's, at most 4096)\n"
		"  -b, --batch N           most tokens per forward pass (default 512)\n"
		"      --no-repack         read quantized weights in file layout\n"
		"      --dequant           widen quantized weights to f32 at load (products with\n"
		"                          unquantized activations: a reference, 4 B/weight)\n"
		"      --kv-type TYPE      KV cache rows: f16 (default) or f32\n"
		"      --load METHOD       mmap | read | uring: copy the weights with the loader\n"
		"                          (default: use the GGUF reader's file mapping)\n"
		"      --load-only         load the weights, print one JSON line, exit\n"
		"      --load-features-off LIST  loader features not to use (comma-separated:\n"
		"                          direct, cb_thread, ...; for comparisons)\n"
		"      --ids               print generated token ids, not text\n"
		"      --info              print metadata, sizes and kernels, then exit\n"
		"      --logits            print the prompt's last logits, one per line\n"
		"      --embed POOL        print the prompt's embedding (mean | cls | last\n"
		"                          pooling of the final hidden states), one float a line\n"
		"      --no-normalize      with --embed: no L2 normalisation\n"
		"      --label TEXT        CLASSIFY (repeat, up to 256): print each label's\n"
		"                          probability given the prompt, one \"P<TAB>LABEL\" line\n"
		"      --bench             prefill and decode speed as one JSON line\n"
		"      --reps N            benchmark repetitions, best kept (default 3)\n"
		"      --tokenize TEXT|-   print TEXT's token ids on one line (- reads all of\n"
		"                          standard input) and exit; needs no weights\n"
		"      --detokenize IDS    print the text of the ids and exit\n"
		"      --bos               --tokenize: add BOS (if the vocabulary has one)\n"
		"      --special           parse special-token text in --tokenize and -p\n"
		"                          (and print control tokens in --detokenize)\n"
		"      --json-schema FILE  constrain the answer to JSON valid for this schema\n"
		"                          (default -n 1024)\n"
		"      --grammar-bench F   compile each {\"name\", \"schema\"} line of F, run one\n"
		"                          constrained generation each, print JSON lines\n"
		"                          (-p optional; default -n 256)\n"
		"  -v, --verbose           more messages on standard error\n"
		"  -h, --help              this text\n");
}

static int parse_long(const char *s, long lo, long hi, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_float(const char *s, float *ret)
{
	char *end;
	float v;

	errno = 0;
	v = strtof(s, &end);
	if (errno || end == s || *end || !isfinite(v))
		return -EINVAL;
	*ret = v;
	return 0;
}

enum {
	OPT_PROMPT_IDS = 256,
	OPT_TEMP,
	OPT_TOP_K,
	OPT_TOP_P,
	OPT_MIN_P,
	OPT_REPEAT_PENALTY,
	OPT_PRESENCE,
	OPT_FREQUENCY,
	OPT_REPEAT_LAST_N,
	OPT_SEED,
	OPT_STOP,
	OPT_IGNORE_EOS,
	OPT_CPUS,
	OPT_KERNELS,
	OPT_NO_REPACK,
	OPT_DEQUANT,
	OPT_KV_TYPE,
	OPT_LOAD,
	OPT_LOAD_ONLY,
	OPT_LOAD_FEATURES_OFF,
	OPT_IDS,
	OPT_INFO,
	OPT_LOGITS,
	OPT_EMBED,
	OPT_NO_NORMALIZE,
	OPT_LABEL,
	OPT_BENCH,
	OPT_REPS,
	OPT_TOKENIZE,
	OPT_DETOKENIZE,
	OPT_BOS,
	OPT_SPECIAL,
	OPT_JSON_SCHEMA,
	OPT_GRAMMAR_BENCH,
};

static bool ignore_eos;

/* Returns 0, or 2 after printing what is wrong. */
static int infer_parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{"model", required_argument, NULL, 'm'},
		{"prompt", required_argument, NULL, 'p'},
		{"prompt-ids", required_argument, NULL, OPT_PROMPT_IDS},
		{"n-predict", required_argument, NULL, 'n'},
		{"temp", required_argument, NULL, OPT_TEMP},
		{"top-k", required_argument, NULL, OPT_TOP_K},
		{"top-p", required_argument, NULL, OPT_TOP_P},
		{"min-p", required_argument, NULL, OPT_MIN_P},
		{"repeat-penalty", required_argument, NULL, OPT_REPEAT_PENALTY},
		{"presence-penalty", required_argument, NULL, OPT_PRESENCE},
		{"frequency-penalty", required_argument, NULL, OPT_FREQUENCY},
		{"repeat-last-n", required_argument, NULL, OPT_REPEAT_LAST_N},
		{"seed", required_argument, NULL, OPT_SEED},
		{"stop", required_argument, NULL, OPT_STOP},
		{"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
		{"threads", required_argument, NULL, 't'},
		{"cpus", required_argument, NULL, OPT_CPUS},
		{"kernels", required_argument, NULL, OPT_KERNELS},
		{"ctx", required_argument, NULL, 'c'},
		{"batch", required_argument, NULL, 'b'},
		{"no-repack", no_argument, NULL, OPT_NO_REPACK},
		{"dequant", no_argument, NULL, OPT_DEQUANT},
		{"kv-type", required_argument, NULL, OPT_KV_TYPE},
		{"load", required_argument, NULL, OPT_LOAD},
		{"load-features-off", required_argument, NULL, OPT_LOAD_FEATURES_OFF},
		{"load-only", no_argument, NULL, OPT_LOAD_ONLY},
		{"ids", no_argument, NULL, OPT_IDS},
		{"info", no_argument, NULL, OPT_INFO},
		{"logits", no_argument, NULL, OPT_LOGITS},
		{"embed", required_argument, NULL, OPT_EMBED},
		{"no-normalize", no_argument, NULL, OPT_NO_NORMALIZE},
		{"label", required_argument, NULL, OPT_LABEL},
		{"bench", no_argument, NULL, OPT_BENCH},
		{"reps", required_argument, NULL, OPT_REPS},
		{"tokenize", required_argument, NULL, OPT_TOKENIZE},
		{"detokenize", required_argument, NULL, OPT_DETOKENIZE},
		{"bos", no_argument, NULL, OPT_BOS},
		{"special", no_argument, NULL, OPT_SPECIAL},
		{"json-schema", required_argument, NULL, OPT_JSON_SCHEMA},
		{"grammar-bench", required_argument, NULL, OPT_GRAMMAR_BENCH},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	long v;
	int c, r;

	memset(o, 0, sizeof(*o));
	o->n = -1;
	o->load = -1;
	o->ctx = 0;
	o->batch = 512;
	o->reps = 3;
	o->kv_type = AW_TYPE_F16;
	aw_sample_params_default(&o->sp);
	o->sp.temperature = 0.8f;
	o->sp.top_k = 40;
	o->sp.top_p = 0.95f;
	o->sp.min_p = 0.05f;

	while ((c = getopt_long(argc, argv, "m:p:n:t:c:b:vh", lopts, NULL)) != -1) {
		const char *bad = NULL;

		switch (c) {
		case 'm':
			o->model = optarg;
			break;
		case 'p':
			o->prompt = optarg;
			break;
		case OPT_PROMPT_IDS:
			o->prompt_ids = optarg;
			break;
		case 'n':
			if (parse_long(optarg, 1, 1 << 24, &o->n) < 0)
				bad = "-n must be an integer >= 1";
			break;
		case OPT_TEMP:
			if (parse_float(optarg, &o->sp.temperature) < 0 || o->sp.temperature < 0)
				bad = "--temp must be a number >= 0";
			break;
		case OPT_TOP_K:
			if (parse_long(optarg, 0, INT32_MAX, &v) < 0)
				bad = "--top-k must be an integer >= 0";
			o->sp.top_k = (int32_t)v;
			break;
		case OPT_TOP_P:
			if (parse_float(optarg, &o->sp.top_p) < 0 || o->sp.top_p <= 0 ||
			    o->sp.top_p > 1)
				bad = "--top-p must be in (0, 1]";
			break;
		case OPT_MIN_P:
			if (parse_float(optarg, &o->sp.min_p) < 0 || o->sp.min_p < 0 ||
			    o->sp.min_p > 1)
				bad = "--min-p must be in [0, 1]";
			break;
		case OPT_REPEAT_PENALTY:
			if (parse_float(optarg, &o->sp.repeat_penalty) < 0 ||
			    o->sp.repeat_penalty <= 0)
				bad = "--repeat-penalty must be > 0";
			break;
		case OPT_PRESENCE:
			if (parse_float(optarg, &o->sp.presence_penalty) < 0)
				bad = "--presence-penalty must be a number";
			break;
		case OPT_FREQUENCY:
			if (parse_float(optarg, &o->sp.frequency_penalty) < 0)
				bad = "--frequency-penalty must be a number";
			break;
		case OPT_REPEAT_LAST_N:
			if (parse_long(optarg, 0, 1 << 20, &v) < 0)
				bad = "--repeat-last-n must be in [0, 1048576]";
			o->sp.penalty_last_n = (int32_t)v;
			break;
		case OPT_SEED: {
			char *end;
			errno = 0;
			unsigned long long s = strtoull(optarg, &end, 0);
			if (errno || end == optarg || *end || optarg[0] == '-')
				bad = "--seed must be an unsigned integer";
			o->sp.seed = s;
			o->seed_set = true;
			break;
		}
		case OPT_STOP:
			if (o->sp.n_stop >= AW_SAMPLE_MAX_STOP)
				bad = "at most 16 --stop strings";
			else if (!optarg[0])
				bad = "--stop needs a non-empty string";
			else
				o->sp.stop[o->sp.n_stop++] = optarg;
			break;
		case OPT_IGNORE_EOS:
			ignore_eos = true;
			break;
		case 't':
			if (parse_long(optarg, 1, MAX_CPUS, &v) < 0)
				bad = "-t must be in [1, 256]";
			o->threads = (int)v;
			break;
		case OPT_CPUS:
			r = aw_pool_parse_cpus(optarg, o->cpus, MAX_CPUS);
			if (r <= 0)
				bad = "--cpus wants a list such as 0-3,8";
			o->n_cpus = r > 0 ? r : 0;
			break;
		case OPT_KERNELS:
			o->kernels = optarg;
			break;
		case 'c':
			if (parse_long(optarg, 1, 1 << 24, &o->ctx) < 0)
				bad = "-c must be an integer >= 1";
			break;
		case 'b':
			if (parse_long(optarg, 1, 1 << 16, &o->batch) < 0)
				bad = "-b must be in [1, 65536]";
			break;
		case OPT_NO_REPACK:
			o->no_repack = true;
			break;
		case OPT_LOAD_FEATURES_OFF:
			if (aw_loader_parse_features(optarg, &o->load_off) < 0)
				bad = "--load-features-off: a comma-separated list of loader "
				      "features (e.g. cb_thread,prefault)";
			break;
		case OPT_DEQUANT:
			o->dequant = true;
			break;
		case OPT_KV_TYPE:
			if (strcasecmp(optarg, "f16") == 0)
				o->kv_type = AW_TYPE_F16;
			else if (strcasecmp(optarg, "f32") == 0)
				o->kv_type = AW_TYPE_F32;
			else
				bad = "--kv-type must be f16 or f32";
			break;
		case OPT_LOAD:
			r = aw_loader_parse_method(optarg);
			if (r < 0)
				bad = "--load must be mmap, read or uring";
			o->load = r;
			break;
		case OPT_LOAD_ONLY:
			o->load_only = true;
			break;
		case OPT_IDS:
			o->ids = true;
			break;
		case OPT_INFO:
			o->info = true;
			break;
		case OPT_LOGITS:
			o->logits = true;
			break;
		case OPT_EMBED: {
			int p = aw_score_pool_parse(optarg);
			if (p < 0) {
				fprintf(stderr, "aw-infer: --embed: mean, cls or last (got '%s')\n",
					optarg);
				return 2;
			}
			o->embed = p + 1;
			break;
		}
		case OPT_NO_NORMALIZE:
			o->no_normalize = true;
			break;
		case OPT_LABEL:
			if (o->n_labels >= AW_SCHED_MAX_LABELS_INFER || !optarg[0]) {
				fprintf(stderr, "aw-infer: --label: 1..256 non-empty labels\n");
				return 2;
			}
			o->labels[o->n_labels++] = optarg;
			break;
		case OPT_BENCH:
			o->bench = true;
			break;
		case OPT_REPS:
			if (parse_long(optarg, 1, 1000, &v) < 0)
				bad = "--reps must be in [1, 1000]";
			o->reps = (int)v;
			break;
		case OPT_TOKENIZE:
			o->tokenize = optarg;
			break;
		case OPT_DETOKENIZE:
			o->detokenize = optarg;
			break;
		case OPT_BOS:
			o->bos = true;
			break;
		case OPT_SPECIAL:
			o->special = true;
			break;
		case OPT_JSON_SCHEMA:
			o->json_schema = optarg;
			break;
		case OPT_GRAMMAR_BENCH:
			o->grammar_bench = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			infer_usage(stdout);
			exit(0);
		default:
			infer_usage(stderr);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "aw-infer: %s (got '%s')\n", bad, optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aw-infer: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->model) {
		fprintf(stderr, "aw-infer: -m MODEL is required\n");
		infer_usage(stderr);
		return 2;
	}
	if (o->load_only && o->load < 0)
		o->load = AW_LOAD_URING;
	if (o->kernels) {
		bool known = false;
		const struct aw_kern *k;
		for (unsigned i = 0; (k = aw_kern_variant(i, NULL)); i++)
			known |= strcasecmp(k->name, o->kernels) == 0;
		if (!known) {
			fprintf(stderr, "aw-infer: unknown --kernels '%s' (known:", o->kernels);
			for (unsigned i = 0; (k = aw_kern_variant(i, NULL)); i++)
				fprintf(stderr, " %s", k->name);
			fprintf(stderr, ")\n");
			return 2;
		}
	}
	int modes =
		o->info + o->bench + o->logits + o->load_only + (o->embed > 0) + (o->n_labels > 0);
	if (modes > 1) {
		fprintf(stderr, "aw-infer: --info, --bench, --logits, --load-only, --embed and "
				"--label exclude each other\n");
		return 2;
	}
	if (o->no_normalize && !o->embed) {
		fprintf(stderr, "aw-infer: --no-normalize goes with --embed\n");
		return 2;
	}
	if (o->n_labels && !o->prompt) {
		fprintf(stderr, "aw-infer: --label needs -p (the labels are text)\n");
		return 2;
	}
	if (o->tokenize && o->detokenize) {
		fprintf(stderr, "aw-infer: --tokenize and --detokenize exclude each other\n");
		return 2;
	}
	if ((o->tokenize || o->detokenize) &&
	    (o->prompt || o->prompt_ids || o->info || o->bench || o->load_only || o->logits)) {
		fprintf(stderr, "aw-infer: --tokenize/--detokenize run alone\n");
		return 2;
	}
	if (o->bos && !o->tokenize) {
		fprintf(stderr, "aw-infer: --bos goes with --tokenize (-p adds BOS as the model "
				"says)\n");
		return 2;
	}
	if ((o->json_schema || o->grammar_bench) &&
	    (modes || o->tokenize || o->detokenize || o->ids ||
	     (o->json_schema && o->grammar_bench))) {
		fprintf(stderr, "aw-infer: --json-schema and --grammar-bench run alone (with a "
				"prompt and sampling options)\n");
		return 2;
	}
	if (!o->info && !o->bench && !o->load_only && !o->prompt && !o->prompt_ids &&
	    !o->tokenize && !o->detokenize && !o->grammar_bench) {
		fprintf(stderr, "aw-infer: give a prompt (-p or --prompt-ids)\n");
		return 2;
	}
	if (o->prompt && o->prompt_ids) {
		fprintf(stderr, "aw-infer: -p and --prompt-ids exclude each other\n");
		return 2;
	}
	if (o->threads && o->n_cpus && o->threads != o->n_cpus) {
		fprintf(stderr, "aw-infer: -t %d but --cpus lists %d CPUs\n", o->threads,
			o->n_cpus);
		return 2;
	}
	if (!o->threads)
		o->threads = o->n_cpus ? o->n_cpus : 1;
	if (!o->seed_set)
		o->sp.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	return 0;
}

/* Parse "1 2 3" or "1,2,3" into a malloc'd array. Returns the count or -1. */
static long parse_ids(const char *s, int32_t n_vocab, int32_t **ret)
{
	size_t cap = 16, n = 0;
	int32_t *ids = malloc(cap * sizeof(*ids));

	while (ids && *s) {
		char *end;
		long v;

		while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end == s || v < 0 || v >= n_vocab ||
		    (*end && *end != ' ' && *end != ',' && *end != '\t' && *end != '\n')) {
			fprintf(stderr,
				"aw-infer: --prompt-ids: '%.*s' is not a token id in [0, %d)\n",
				(int)strcspn(s, " ,\t\n"), s, n_vocab);
			free(ids);
			return -1;
		}
		if (n == cap) {
			int32_t *ni = realloc(ids, 2 * cap * sizeof(*ids));
			if (!ni)
				break;
			ids = ni;
			cap *= 2;
		}
		ids[n++] = (int32_t)v;
		s = end;
	}
	if (!ids)
		return -1;
	*ret = ids;
	return (long)n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct run {
	struct opts *o;
	struct aw_gguf *g;
	struct aw_weights *w;
	struct aw_model *m;
	struct aw_kv *kv;
	struct aw_pool *pool;
	float *logits;
	struct aw_tok *tok; /* from -p: decodes the output */
	int32_t n_vocab;
	int32_t ctx;
};

/* Feed tokens [0, n) of 'seq' starting at position 'pos0' in chunks of the
 * model's batch; logits of the last token land in r->logits. Returns 0 or
 * -errno. */
static int prefill(struct run *r, int32_t seq, const int32_t *tok, int32_t n, int32_t pos0)
{
	const int32_t B = aw_model_max_batch(r->m);
	int32_t *pos = malloc(sizeof(int32_t) * (size_t)B),
		*sq = malloc(sizeof(int32_t) * (size_t)B);
	int ret = 0;

	if (!pos || !sq) {
		free(pos);
		free(sq);
		return -ENOMEM;
	}
	for (int32_t i = 0; i < n && ret >= 0; i += B) {
		const int32_t k = n - i < B ? n - i : B;
		for (int32_t j = 0; j < k; j++) {
			pos[j] = pos0 + i + j;
			sq[j] = seq;
		}
		struct aw_batch b = {k, tok + i, pos, sq, NULL};
		ret = aw_model_forward(r->m, r->kv, &b, r->pool, r->logits);
	}
	free(pos);
	free(sq);
	return ret < 0 ? ret : 0;
}

static int step(struct run *r, int32_t seq, int32_t tok, int32_t pos)
{
	struct aw_batch b = {1, &tok, &pos, &seq, NULL};
	int ret = aw_model_forward(r->m, r->kv, &b, r->pool, r->logits);

	return ret < 0 ? ret : 0;
}

static const char *forward_error(int e)
{
	switch (e) {
	case -ENOSPC:
		return "KV cache full";
	case -ERANGE:
		return "context full";
	case -ENOMEM:
		return "out of memory";
	default:
		return "invalid batch";
	}
}

static void print_info(struct run *r)
{
	const struct aw_model_hparams *hp = aw_model_hparams(r->m);
	const char *name = "";
	size_t nlen = 0;
	int supported;
	const struct aw_kern *k;

	aw_gguf_get_str(r->g, "general.name", &name, &nlen);
	printf("file:            %s\n", r->o->model);
	printf("name:            %.*s\n", (int)nlen, name);
	printf("architecture:    %s%s\n", hp->arch, hp->qkv_bias ? " (Q/K/V biases)" : "");
	printf("gguf version:    %u, %" PRIu64 " tensors, %" PRIu64 " keys\n",
	       aw_gguf_version(r->g), aw_gguf_n_tensors(r->g), aw_gguf_n_kv(r->g));
	printf("vocabulary:      %d\n", hp->n_vocab);
	printf("dim:             %d\n", hp->dim);
	printf("layers:          %d\n", hp->n_layer);
	printf("heads:           %d (kv %d, head_dim %d)\n", hp->n_head, hp->n_head_kv,
	       hp->head_dim);
	printf("ffn:             %d\n", hp->ffn_dim);
	printf("context:         %d (training), %d (this run)\n", hp->n_ctx, r->ctx);
	printf("rope:            base %g, %d dims%s%s\n", (double)hp->rope_base, hp->n_rot,
	       hp->rope_factors ? ", frequency factors" : "",
	       strcmp(hp->arch, "qwen2") == 0 ? ", neox pairs" : "");
	printf("rms eps:         %g\n", (double)hp->rms_eps);
	printf("output:          %s\n", hp->tied ? "tied to token_embd" : "output.weight");
	printf("types:          ");
	{
		uint64_t count[AW_TYPE_COUNT] = {0};
		for (uint64_t i = 0; i < aw_gguf_n_tensors(r->g); i++) {
			const struct aw_gguf_tensor *t = aw_gguf_tensor_at(r->g, i);
			if (t && t->type < AW_TYPE_COUNT)
				count[t->type]++;
		}
		for (int t = 0; t < AW_TYPE_COUNT; t++)
			if (count[t])
				printf(" %s:%" PRIu64, aw_type_name((uint32_t)t), count[t]);
		printf("\n");
	}
	printf("weight bytes:    %" PRIu64 "\n", aw_model_weight_bytes(r->m));
	printf("decode bytes:    %" PRIu64 " per token\n", aw_model_decode_bytes(r->m));
	printf("repacked bytes:  %" PRIu64 " (%" PRIu64 " in place in the loaded weights)\n",
	       aw_model_repacked_bytes(r->m),
	       aw_model_repacked_bytes(r->m) - aw_model_owned_bytes(r->m));
	printf("kv cache bytes:  %zu (%s rows)\n", aw_kv_bytes(r->kv), aw_type_name(r->kv->c.type));
	printf("kernels:         %s (compiled:", aw_model_kern(r->m)->name);
	for (unsigned i = 0; (k = aw_kern_variant(i, &supported)); i++)
		printf(" %s%s", k->name, supported ? "" : "[cpu lacks]");
	printf(")\n");
	printf("threads:         %u\n", r->pool ? aw_pool_size(r->pool) : 1);
	printf("batch:           %d tokens\n", aw_model_max_batch(r->m));
	if (r->w) {
		const struct aw_weights_info *wi = aw_weights_info(r->w);
		printf("weights memory:  %s load, %s pages of %zu bytes\n",
		       aw_loader_method_name(wi->method), wi->hugetlb ? "hugetlb" : "ordinary",
		       wi->page_size);
	} else {
		printf("weights memory:  GGUF file mapping\n");
	}
}

static int bench(struct run *r, long n_prompt, long n_gen)
{
	const struct opts *o = r->o;
	int32_t *tok = malloc(sizeof(int32_t) * (size_t)n_prompt);
	uint64_t s = 0x2545f4914f6cdd1dull;
	double best_pp = INFINITY, best_tg = INFINITY;
	int ret = 0;

	if (!tok)
		return -ENOMEM;
	for (long i = 0; i < n_prompt; i++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		tok[i] = (int32_t)(s % (uint64_t)r->n_vocab);
	}
	/* warm-up: touch every weight once */
	if ((ret = step(r, 0, tok[0], 0)) < 0)
		goto out;
	aw_kv_seq_clear(r->kv, 0);
	for (int rep = 0; rep < o->reps; rep++) {
		double t0 = now();
		if ((ret = prefill(r, 0, tok, (int32_t)n_prompt, 0)) < 0)
			goto out;
		double t1 = now();
		aw_kv_seq_clear(r->kv, 0);
		/* decode from an empty sequence, as llama-bench's tg test does */
		int32_t t = tok[0];
		for (long i = 0; i < n_gen; i++) {
			if ((ret = step(r, 0, t, (int32_t)i)) < 0)
				goto out;
			int32_t best = 0;
			for (int32_t j = 1; j < r->n_vocab; j++)
				if (r->logits[j] > r->logits[best])
					best = j;
			t = best;
		}
		double t2 = now();
		aw_kv_seq_clear(r->kv, 0);
		if (t1 - t0 < best_pp)
			best_pp = t1 - t0;
		if (t2 - t1 < best_tg)
			best_tg = t2 - t1;
	}
	const double pp = (double)n_prompt / best_pp, tg = (double)n_gen / best_tg;
	const uint64_t db = aw_model_decode_bytes(r->m);
	printf("{\"model\":\"%s\",\"kernels\":\"%s\",\"threads\":%u,\"batch\":%d,"
	       "\"prefill_tokens\":%ld,\"prefill_seconds\":%.6f,\"prefill_tok_s\":%.2f,"
	       "\"decode_tokens\":%ld,\"decode_seconds\":%.6f,\"decode_tok_s\":%.2f,"
	       "\"weight_bytes\":%" PRIu64 ",\"decode_bytes_per_token\":%" PRIu64
	       ",\"decode_gbps\":%.3f,\"reps\":%d,\"repacked\":%s}\n",
	       o->model, aw_model_kern(r->m)->name, r->pool ? aw_pool_size(r->pool) : 1,
	       aw_model_max_batch(r->m), n_prompt, best_pp, pp, n_gen, best_tg, tg,
	       aw_model_weight_bytes(r->m), db, (double)db * tg / 1e9, o->reps,
	       aw_model_repacked_bytes(r->m) ? "true" : "false");
out:
	free(tok);
	return ret;
}

/* Generate from the prompt: sample, print, feed back. */
static int generate(struct run *r, const int32_t *prompt, int32_t n_prompt, long n_gen)
{
	struct opts *o = r->o;
	struct aw_sampler *s = NULL;
	int ret;

	if (ignore_eos)
		o->sp.n_eos = 0;
	o->sp.max_tokens = (int32_t)n_gen;
	if ((ret = aw_sample_new(&o->sp, r->n_vocab, &s)) < 0) {
		fprintf(stderr, "aw-infer: bad sampling parameters\n");
		return ret;
	}
	aw_sample_prime(s, prompt, (size_t)n_prompt);
	struct aw_tok_stream st;
	char *tbuf = NULL;
	if (r->tok) {
		/* the prompt came from text: the output continues it, space and all */
		aw_tok_stream_init(&st, r->tok, AW_TOK_KEEP_SPACE);
		tbuf = malloc(aw_tok_stream_max(r->tok));
		if (!tbuf) {
			ret = -ENOMEM;
			goto out;
		}
	}
	double t0 = now();
	if ((ret = prefill(r, 0, prompt, n_prompt, 0)) < 0)
		goto out;
	double t1 = now();
	int32_t pos = n_prompt, n_out = 0;
	enum aw_sample_finish fin = AW_SAMPLE_CONTINUE;
	while (fin == AW_SAMPLE_CONTINUE) {
		int32_t t = aw_sample_pick(s, r->logits);
		const char *text;
		size_t len;
		char piece[32], *pp = piece;
		int plen = 0;

		if (t < 0) {
			fprintf(stderr, "aw-infer: no token allowed\n");
			ret = -EINVAL;
			goto out;
		}
		/* text through the streaming decoder (whole UTF-8 characters only);
		 * without a tokenizer the "text" of a token is its id */
		if (!o->ids && r->tok) {
			size_t k = 0;
			if (aw_tok_stream_push(&st, t, tbuf, aw_tok_stream_max(r->tok), &k) < 0)
				k = 0;
			pp = tbuf;
			plen = (int)k;
		} else if (!o->ids) {
			plen = snprintf(piece, sizeof(piece), "%s%d", n_out ? " " : "", t);
		}
		fin = aw_sample_accept(s, t, pp, (size_t)plen, &text, &len);
		n_out++;
		if (o->ids)
			printf("%s%d", n_out > 1 ? " " : "", t);
		else
			fwrite(text, 1, len, stdout);
		fflush(stdout);
		if (fin != AW_SAMPLE_CONTINUE)
			break;
		if (pos >= r->ctx) {
			fin = AW_SAMPLE_LENGTH;
			if (o->verbose)
				fprintf(stderr, "aw-infer: context full\n");
			break;
		}
		if ((ret = step(r, 0, t, pos++)) < 0)
			goto out;
	}
	if (r->tok && !o->ids) {
		/* an incomplete character held back at the end comes out as U+FFFD */
		size_t k = 0;
		if (aw_tok_stream_flush(&st, tbuf, aw_tok_stream_max(r->tok), &k) == 0)
			fwrite(tbuf, 1, k, stdout);
	}
	printf("\n");
	double t2 = now();
	if (o->verbose)
		fprintf(stderr,
			"aw-infer: %d prompt tokens in %.3f s (%.1f tok/s), %d generated in %.3f "
			"s (%.1f tok/s), finish: %s\n",
			n_prompt, t1 - t0, n_prompt / (t1 - t0), n_out, t2 - t1, n_out / (t2 - t1),
			aw_sample_finish_name(fin));
	ret = 0;
out:
	free(tbuf);
	aw_sample_free(s);
	return ret;
}

/* The model as infer-grammar.c sees it. */
static int im_forward(void *ctx, const int32_t *tok, int32_t n, int32_t pos0)
{
	return prefill(ctx, 0, tok, n, pos0);
}

static void im_clear(void *ctx)
{
	struct run *r = ctx;
	aw_kv_seq_clear(r->kv, 0);
}

static int run_grammar(struct run *r, const int32_t *prompt, int32_t n_prompt)
{
	struct opts *o = r->o;
	struct aw_err err = {0};
	int32_t bos;
	struct infer_model im = {r,	     im_forward, im_clear,  r->logits,
				 r->n_vocab, r->ctx,	 o->verbose};

	if (!r->tok && aw_tok_new_from_gguf(r->g, &r->tok, &err) < 0) {
		fprintf(stderr, "aw-infer: %s: no tokenizer: %s\n", o->model, err.msg);
		return 1;
	}
	if (aw_tok_n_tokens(r->tok) > (uint32_t)r->n_vocab) {
		fprintf(stderr, "aw-infer: the vocabulary is larger than the model's output\n");
		return 1;
	}
	if (!n_prompt) {
		/* --grammar-bench without -p: start from BOS (or token 0) */
		bos = aw_tok_bos(r->tok) >= 0 ? aw_tok_bos(r->tok) : 0;
		prompt = &bos;
		n_prompt = 1;
	}
	if (o->json_schema)
		return infer_grammar_schema(&im, r->tok, &o->sp, o->json_schema, prompt, n_prompt,
					    o->n > 0 ? o->n : 1024);
	return infer_grammar_bench(&im, r->tok, &o->sp, o->grammar_bench, prompt, n_prompt,
				   o->n > 0 ? o->n : 256);
}

/* The loader's on_tensor: check each tensor's block scales as it lands. */
struct check_ctx {
	const struct aw_gguf *g;
	struct aw_err *err;
	FILE *progress; /* aw_loader_print_progress's sink, or NULL */
	bool failed;
};

static int check_tensor(void *ctx, uint32_t idx, const void *data, uint64_t size)
{
	struct check_ctx *cc = ctx;

	(void)size;
	if (aw_model_check_tensor(cc->g, idx, data, cc->err) < 0) {
		cc->failed = true;
		return 1; /* cancels the load */
	}
	return 0;
}

/* The loader's progress: on a terminal one line rewritten in place
 * (cc->progress = stderr), otherwise a log line about once a second and a final one. */
static int progress(void *ctx, const struct aw_load_progress *p)
{
	struct check_ctx *cc = ctx;
	char line[128];

	if (cc->progress)
		return aw_loader_print_progress(cc->progress, p);
	aw_log(AW_LOG_NOTICE, "load", "%s", aw_loader_progress_format(p, line, sizeof(line)));
	return 0;
}

/* --embed / --label: the direct CLASSIFY and EMBED of inference/score.h.
 * Returns the exit status. */
static int agent_op(struct run *r, const int32_t *prompt, int32_t n_prompt)
{
	const struct opts *o = r->o;
	int ret, status = 1;

	if (o->embed) {
		const int32_t dim = aw_model_hparams(r->m)->dim;
		float *v = malloc(sizeof(float) * (size_t)dim);
		if (!v)
			return 1;
		ret = aw_score_embed(r->m, r->kv, r->pool, prompt, n_prompt,
				     (enum aw_score_pool)(o->embed - 1), !o->no_normalize, v);
		if (ret < 0) {
			fprintf(stderr, "aw-infer: embed: %s\n", forward_error(ret));
		} else {
			for (int32_t i = 0; i < dim; i++)
				printf("%.9g\n", (double)v[i]);
			status = 0;
		}
		free(v);
		return status;
	}
	int32_t *lab[AW_SCHED_MAX_LABELS_INFER] = {0}, len[AW_SCHED_MAX_LABELS_INFER];
	float probs[AW_SCHED_MAX_LABELS_INFER];
	int n = 0;
	for (; n < o->n_labels; n++) {
		size_t k = 0;
		if (aw_tok_encode_alloc(r->tok, o->labels[n], strlen(o->labels[n]), 0, &lab[n],
					&k) < 0 ||
		    k == 0 || (long)k + n_prompt > r->ctx) {
			fprintf(stderr, "aw-infer: --label '%s': %s\n", o->labels[n],
				k == 0 ? "tokenizes to nothing" : "too long for the context");
			free(lab[n]);
			status = 2;
			goto out;
		}
		len[n] = (int32_t)k;
	}
	ret = aw_score_classify(r->m, r->kv, r->pool, prompt, n_prompt, (const int32_t *const *)lab,
				len, n, probs, NULL);
	if (ret < 0) {
		fprintf(stderr, "aw-infer: classify: %s\n", forward_error(ret));
	} else {
		for (int i = 0; i < n; i++)
			printf("%.6f\t%s\n", (double)probs[i], o->labels[i]);
		status = 0;
	}
out:
	for (int i = 0; i < n; i++)
		free(lab[i]);
	return status;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct run r = {0};
	struct aw_err err = {0};
	int32_t *prompt = NULL;
	long n_prompt = 0;
	int ret, status = 1;

	if (infer_parse_args(argc, argv, &o) != 0)
		return 2;
	r.o = &o;
	if (o.verbose)
		aw_log_level = AW_LOG_INFO + (o.verbose > 1);

	const struct aw_kern *kern = aw_kern_select(o.kernels);
	if (!kern) {
		fprintf(stderr, "aw-infer: this CPU cannot run the '%s' kernels\n", o.kernels);
		return 1;
	}

	ret = aw_gguf_open(o.model, &r.g, &err);
	if (ret < 0) {
		fprintf(stderr, "aw-infer: %s: %s\n", o.model,
			err.msg[0] ? err.msg : strerror(-ret));
		return 1;
	}
	if (o.tokenize || o.detokenize) {
		/* the tokenizer alone: no weights needed */
		status = infer_tok_run(r.g, o.tokenize, o.detokenize, o.bos, o.special);
		goto out;
	}

	const void *data = aw_gguf_data(r.g);
	size_t size = aw_gguf_data_size(r.g);
	bool scales_checked = false;
	struct aw_err cerr = {0};
	struct check_ctx cc = {.g = r.g, .err = &cerr};
	struct aw_model_repacker rp = {0};
	bool repack_inplace = false;
	if (o.load >= 0) {
		/* block scales are checked as each tensor lands, while later
		 * reads are in flight (the model then skips its own pass) */
		struct aw_load_opts lo = {.method = (enum aw_load_method)o.load,
					  .features_off = o.load_off,
					  .on_tensor = check_tensor,
					  .ctx = &cc};
		/* a progress line on a terminal, log lines (-v) otherwise */
		const bool tty = isatty(STDERR_FILENO);
		lo.on_progress = progress;
		cc.progress = tty ? stderr : NULL;
		lo.progress_ms = tty ? 100 : 1000;
		/* repack each matrix in place as it lands, while later reads are in
		 * flight: the repacked weights stay in the loader's hugepages */
		repack_inplace =
			!o.no_repack && !o.dequant && !o.load_only && o.load != AW_LOAD_MMAP;
		if (repack_inplace) {
			if (aw_model_repacker_init(&rp, r.g) < 0) {
				fprintf(stderr, "aw-infer: out of memory\n");
				goto out;
			}
			lo.on_tensor_rw = aw_model_repacker_tensor;
			lo.tensor_ctx = &rp;
		}
		ret = aw_loader_load_gguf(r.g, &lo, &r.w, &err);
		if (ret < 0 && cc.failed) {
			fprintf(stderr, "aw-infer: %s: %s\n", o.model, cerr.msg);
			aw_model_repacker_fini(&rp);
			goto out;
		}
		if (ret < 0) {
			fprintf(stderr, "aw-infer: loading %s: %s\n", o.model,
				rp.rc	     ? (rp.msg[0] ? rp.msg : strerror(-rp.rc))
				: err.msg[0] ? err.msg
					     : strerror(-ret));
			aw_model_repacker_fini(&rp);
			goto out;
		}
		if (o.load_only) {
			char buf[512];
			printf("%s\n", aw_loader_info_json(aw_weights_info(r.w), buf, sizeof(buf)));
			status = 0;
			goto out;
		}
		if (repack_inplace)
			aw_log(AW_LOG_INFO, "load",
			       "repacked %" PRIu64
			       " matrices (%.2f GB) in place while loading, %.2f s",
			       rp.n_done, rp.bytes_done / 1e9, rp.seconds);
		data = aw_weights_data(r.w, 0);
		size = aw_weights_info(r.w)->size;
		scales_checked = true;
	}

	struct aw_model_params mp = {.kern = kern,
				     .max_batch = (int32_t)o.batch,
				     .repack = !o.no_repack,
				     .dequant = o.dequant,
				     .scales_checked = scales_checked,
				     .prepacked = repack_inplace ? rp.done : NULL};
	ret = aw_model_load(r.g, data, size, &mp, &r.m, &err);
	aw_model_repacker_fini(&rp);
	if (ret < 0) {
		fprintf(stderr, "aw-infer: %s: %s\n", o.model,
			err.msg[0] ? err.msg : strerror(-ret));
		goto out;
	}
	if (aw_model_owned_bytes(r.m))
		aw_log(AW_LOG_INFO, "load", "repacked %.2f GB at load into %s (%s)",
		       aw_model_owned_bytes(r.m) / 1e9,
		       aw_model_repack_hugetlb(r.m) ? "hugetlb pages"
						    : "ordinary pages with THP advice",
		       aw_model_repack_hugetlb(r.m)
			       ? "as the kernels want"
			       : "no hugetlb pages: see /proc/sys/vm/nr_hugepages");
	const struct aw_model_hparams *hp = aw_model_hparams(r.m);
	r.n_vocab = hp->n_vocab;

	/* the prompt, before anything big is allocated */
	long n_gen = o.n > 0 ? o.n : 128;
	if (o.prompt_ids) {
		n_prompt = parse_ids(o.prompt_ids, r.n_vocab, &prompt);
		if (n_prompt < 0) {
			status = 2;
			goto out;
		}
		if (n_prompt == 0 && !o.bench) {
			fprintf(stderr, "aw-infer: --prompt-ids is empty\n");
			status = 2;
			goto out;
		}
	} else if (o.bench) {
		long v = 512;
		if (o.prompt && parse_long(o.prompt, 1, 1 << 20, &v) < 0) {
			fprintf(stderr, "aw-infer: with --bench, -p is a token count (got '%s')\n",
				o.prompt);
			status = 2;
			goto out;
		}
		n_prompt = v;
	} else if (o.prompt) {
		status = infer_tok_prompt(r.g, o.prompt, o.special, r.n_vocab, &prompt, &n_prompt,
					  &r.tok);
		if (status != 0)
			goto out;
		status = 1;
	}
	if (o.bench && o.prompt_ids)
		n_prompt = n_prompt > 0 ? n_prompt : 512;
	/* --prompt-ids on a file with a tokenizer: still print text */
	if (!r.tok && !o.ids && !o.bench && !o.logits && !o.info &&
	    aw_gguf_find_key(r.g, "tokenizer.ggml.model") >= 0 &&
	    aw_tok_new_from_gguf(r.g, &r.tok, &err) == 0 &&
	    aw_tok_n_tokens(r.tok) > (uint32_t)r.n_vocab) {
		aw_tok_free(r.tok); /* a vocabulary larger than the model's: ids only */
		r.tok = NULL;
	}

	/* the context: the model's (at most 4096 unless -c), and what the run needs */
	long ctx = o.ctx ? o.ctx : (hp->n_ctx < 4096 ? hp->n_ctx : 4096);
	if (o.bench) {
		long need = n_prompt > n_gen ? n_prompt : n_gen;
		if (!o.ctx && need > ctx)
			ctx = need;
	}
	if (n_prompt > ctx || (o.bench && n_gen > ctx)) {
		fprintf(stderr,
			"aw-infer: the prompt (%ld tokens) is longer than the context (%ld)\n",
			o.bench && n_gen > n_prompt ? n_gen : n_prompt, ctx);
		status = 2;
		goto out;
	}
	r.ctx = (int32_t)ctx;

	struct aw_kv_config kc = {.n_layer = hp->n_layer,
				  .kv_dim = aw_model_kv_dim(r.m),
				  .block_size = 16,
				  .max_seqs = 1,
				  .max_seq_len = (int32_t)ctx,
				  .type = o.kv_type};
	if ((ret = aw_kv_new(&kc, &r.kv)) < 0) {
		fprintf(stderr, "aw-infer: KV cache of %ld positions: %s\n", ctx, strerror(-ret));
		goto out;
	}
	if (o.threads > 1) {
		ret = aw_pool_new((unsigned)o.threads, o.n_cpus ? o.cpus : NULL, &r.pool);
		if (ret < 0) {
			fprintf(stderr, "aw-infer: thread pool of %d: %s\n", o.threads,
				strerror(-ret));
			goto out;
		}
	} else if (o.n_cpus) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(o.cpus[0], &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0) {
			fprintf(stderr, "aw-infer: pinning to CPU %d: %s\n", o.cpus[0],
				strerror(errno));
			goto out;
		}
	}
	r.logits = malloc(sizeof(float) * (size_t)r.n_vocab);
	if (!r.logits) {
		fprintf(stderr, "aw-infer: out of memory\n");
		goto out;
	}
	if (o.verbose)
		fprintf(stderr, "aw-infer: kernels %s, %d threads, context %ld\n", kern->name,
			o.threads, ctx);

	if (o.info) {
		print_info(&r);
		status = 0;
	} else if (o.json_schema || o.grammar_bench) {
		status = run_grammar(&r, prompt, (int32_t)n_prompt);
	} else if (o.bench) {
		ret = bench(&r, n_prompt, n_gen);
		if (ret < 0)
			fprintf(stderr, "aw-infer: bench: %s\n", forward_error(ret));
		else
			status = 0;
	} else if (o.embed || o.n_labels) {
		status = agent_op(&r, prompt, (int32_t)n_prompt);
	} else if (o.logits) {
		ret = prefill(&r, 0, prompt, (int32_t)n_prompt, 0);
		if (ret < 0) {
			fprintf(stderr, "aw-infer: %s\n", forward_error(ret));
		} else {
			for (int32_t i = 0; i < r.n_vocab; i++)
				printf("%.9g\n", (double)r.logits[i]);
			status = 0;
		}
	} else {
		/* end-of-sequence from the file's tokenizer metadata */
		uint32_t eos;
		if (aw_gguf_get_u32(r.g, "tokenizer.ggml.eos_token_id", &eos) == 0 &&
		    eos < (uint32_t)r.n_vocab)
			o.sp.eos[o.sp.n_eos++] = (int32_t)eos;
		/* and the end-of-turn token (<|eot_id|>, <|im_end|>, ...) */
		int32_t eot = r.tok ? aw_tok_eot(r.tok) : AW_TOK_ID_NONE;
		if (eot >= 0 && eot < r.n_vocab && (o.sp.n_eos == 0 || o.sp.eos[0] != eot) &&
		    o.sp.n_eos < AW_SAMPLE_MAX_EOS)
			o.sp.eos[o.sp.n_eos++] = eot;
		ret = generate(&r, prompt, (int32_t)n_prompt, n_gen);
		if (ret < 0)
			fprintf(stderr, "aw-infer: %s\n", forward_error(ret));
		else
			status = 0;
	}
out:
	free(prompt);
	free(r.logits);
	aw_pool_free(r.pool);
	aw_kv_free(r.kv);
	aw_model_free(r.m);
	aw_weights_put(r.w);
	aw_tok_free(r.tok);
	aw_gguf_close(r.g);
	return status;
}
