/* aw-mkmodel — write a llama- or qwen2-architecture GGUF model with seeded
 * random weights and a synthetic (or copied) tokenizer.
 *
 *   aw-mkmodel --out F [--preset tiny|stories15m|stories110m|tinyllama-1.1b|
 *                        qwen2.5-0.5b|llama-3.2-1b|smollm2-135m]
 *              [--arch llama|qwen2] [--dim N --layers N --heads N --kv-heads N
 *               --ffn N --vocab N --ctx N --rope-base X --norm-eps X]
 *              [--rope-scaling llama3|none] [--type T] [--embd-type T]
 *              [--output-type T] [--tied|--untied] [--seed N]
 *              [--tokenizer-from F.gguf]
 *
 * The file carries exactly the metadata and tensor names llama.cpp's "llama"
 * and "qwen2" architectures load, so the same file runs in agentwire and in
 * the peer. qwen2 adds blk.N.attn_{q,k,v}.bias; --rope-scaling llama3 adds
 * rope_freqs.weight, the frequency divisors Llama 3.1/3.2 files carry.
 * Every tensor is generated from (seed, tensor name) alone, at write time and
 * one tensor at a time (the writer's fill callback): the output is a pure
 * function of the arguments, and a 1.1B-parameter file needs only its
 * largest tensor in memory. Weights are uniform with standard deviation
 * 1/sqrt(fan_in), so activations keep unit scale through the layers and the
 * logits are neither flat nor saturated; RMS-norm weights are 1 +- 0.05.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

#define MAX_VOCAB_SYNTH 262144 /* the synthetic vocabulary generator's limit */

struct preset {
	const char *name;
	uint32_t dim, layers, heads, kv_heads, ffn, vocab, ctx;
	float rope_base, norm_eps;
	const char *arch; /* general.architecture */
	bool tied;	  /* no output.weight */
	bool llama3_rope; /* rope_freqs.weight from Llama 3's rope scaling */
};

static const struct preset presets[] = {
	/* every row length (dim, ffn) a multiple of 32, so every type applies */
	{"tiny", 64, 2, 4, 2, 192, 512, 256, 10000.0f, 1e-5f, "llama", false, false},
	{"stories15m", 288, 6, 6, 6, 768, 32000, 256, 10000.0f, 1e-5f, "llama", false, false},
	{"stories110m", 768, 12, 12, 12, 2048, 32000, 1024, 10000.0f, 1e-5f, "llama", false, false},
	{"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048, 10000.0f, 1e-5f, "llama", false,
	 false},
	/* the shapes of the small models agents download (their config.json) */
	{"qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768, 1e6f, 1e-6f, "qwen2", true, false},
	{"llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072, 500000.0f, 1e-5f, "llama", true,
	 true},
	{"smollm2-135m", 576, 30, 9, 3, 1536, 49152, 8192, 100000.0f, 1e-5f, "llama", true, false},
};

struct opts {
	const char *out;
	const char *tokenizer_from;
	struct preset p;
	uint32_t type, embd_type, output_type;
	bool mix; /* --type q4_k_m / q5_k_m: llama.cpp's _M tensor mix */
	bool embd_type_set, output_type_set, vocab_set, tied;
	bool untied_set; /* --untied: force output.weight on a tied preset */
	uint64_t seed;
	uint32_t alignment;	   /* general.alignment */
	const char *chat_template; /* --chat-template FILE: tokenizer.chat_template */
};

/* One tensor to generate: everything the fill callback needs. */
struct spec {
	uint64_t seed;	    /* seed ^ hash(name) */
	uint32_t type;	    /* output type */
	uint64_t ne0;	    /* row length */
	uint64_t rows;	    /* number of rows */
	bool norm;	    /* 1 +- 0.05 instead of +-a */
	float a;	    /* half-width of the uniform distribution */
	const float *fixed; /* when set: these ne0 values (rope factors) */
	float *row;	    /* scratch row of ne0 floats, shared */
};

static void mkmodel_usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s --out FILE [options]\n"
		"  --preset NAME         tiny (default), stories15m, stories110m, tinyllama-1.1b,\n"
		"                        qwen2.5-0.5b, llama-3.2-1b, smollm2-135m\n"
		"  --arch A              llama or qwen2 (default: the preset's)\n"
		"  --dim N               embedding length (1..65536)\n"
		"  --layers N            transformer blocks (1..1024)\n"
		"  --heads N             attention heads (dim %% heads == 0, head dim even)\n"
		"  --kv-heads N          key/value heads (heads %% kv-heads == 0; default: the\n"
		"                        preset's if it divides --heads, else --heads)\n"
		"  --ffn N               feed-forward length (1..262144)\n"
		"  --vocab N             vocabulary size (%d..%d for the synthetic vocabulary)\n"
		"  --ctx N               context length (1..1048576)\n"
		"  --rope-base X         RoPE frequency base (> 0)\n"
		"  --norm-eps X          RMS-norm epsilon (0 < X < 1)\n"
		"  --rope-scaling S      llama3 (rope_freqs.weight as Llama 3.1/3.2: factor 32,\n"
		"                        8192 original context) or none (default: the preset's)\n"
		"  --type T              2D weight type: f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1\n"
		"                        q4_k q5_k q6_k, or the mixes q4_k_m q5_k_m (default f32)\n"
		"  --embd-type T         token_embd.weight type (default: --type)\n"
		"  --output-type T       output.weight type (default: --type)\n"
		"  --tied                no output.weight (tied to token_embd; the default of\n"
		"                        qwen2.5-0.5b, llama-3.2-1b, smollm2-135m)\n"
		"  --untied              write output.weight even for a tied preset\n"
		"  --seed N              random seed (default 1)\n"
		"  --chat-template FILE  store FILE as tokenizer.chat_template\n"
		"  --alignment N         general.alignment: tensor data alignment in bytes, a\n"
		"                        power of two in 32..1048576 (default 32)\n"
		"  --tokenizer-from F    copy the tokenizer.* keys of GGUF file F; vocab = its "
		"size\n"
		"Row lengths (dim, ffn) must be multiples of 32 for block types. K-quant\n"
		"tensors whose row is not a multiple of 256 fall back as llama.cpp's do:\n"
		"q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0. The _m mixes put q6_k on the\n"
		"output (token_embd when tied) and on attn_v/ffn_down of the first and\n"
		"last eighth of the layers and every third layer between.\n",
		prog, 3 + 256 + 1, MAX_VOCAB_SYNTH);
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *ret)
{
	char *end;
	unsigned long long v;

	if (!s[0] || s[0] == '-' || s[0] == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int parse_float(const char *s, float lo_excl, float hi_excl, float *ret)
{
	char *end;
	float v;

	errno = 0;
	v = strtof(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= lo_excl || v >= hi_excl)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_type(const char *s, uint32_t *ret)
{
	static const char *const ok[] = {"f32",	 "f16",	 "bf16", "q8_0", "q4_0", "q4_1",
					 "q5_0", "q5_1", "q4_k", "q5_k", "q6_k"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(s, ok[i]) == 0) {
			*ret = (uint32_t)aw_type_from_name(s);
			return 0;
		}
	return -EINVAL;
}

/* Returns 0, or 2 after printing the problem and the usage. */
static int mkmodel_parse_args(int argc, char **argv, struct opts *o)
{
	enum {
		O_OUT = 256,
		O_PRESET,
		O_DIM,
		O_LAYERS,
		O_HEADS,
		O_KV_HEADS,
		O_FFN,
		O_VOCAB,
		O_CTX,
		O_ROPE,
		O_EPS,
		O_TYPE,
		O_EMBD_TYPE,
		O_OUTPUT_TYPE,
		O_TIED,
		O_SEED,
		O_TOK,
		O_ALIGN,
		O_ARCH,
		O_ROPE_SCALING,
		O_UNTIED,
		O_CHAT_TEMPLATE,
		O_HELP,
	};
	static const struct option lopts[] = {
		{"out", required_argument, NULL, O_OUT},
		{"preset", required_argument, NULL, O_PRESET},
		{"chat-template", required_argument, NULL, O_CHAT_TEMPLATE},
		{"dim", required_argument, NULL, O_DIM},
		{"layers", required_argument, NULL, O_LAYERS},
		{"heads", required_argument, NULL, O_HEADS},
		{"kv-heads", required_argument, NULL, O_KV_HEADS},
		{"ffn", required_argument, NULL, O_FFN},
		{"vocab", required_argument, NULL, O_VOCAB},
		{"ctx", required_argument, NULL, O_CTX},
		{"rope-base", required_argument, NULL, O_ROPE},
		{"norm-eps", required_argument, NULL, O_EPS},
		{"type", required_argument, NULL, O_TYPE},
		{"embd-type", required_argument, NULL, O_EMBD_TYPE},
		{"output-type", required_argument, NULL, O_OUTPUT_TYPE},
		{"tied", no_argument, NULL, O_TIED},
		{"seed", required_argument, NULL, O_SEED},
		{"tokenizer-from", required_argument, NULL, O_TOK},
		{"alignment", required_argument, NULL, O_ALIGN},
		{"arch", required_argument, NULL, O_ARCH},
		{"rope-scaling", required_argument, NULL, O_ROPE_SCALING},
		{"untied", no_argument, NULL, O_UNTIED},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	/* explicit flags override the preset whatever their order: keep them aside */
	struct {
		bool set;
		uint32_t v;
	} dim = {0}, layers = {0}, heads = {0}, kv = {0}, ffn = {0}, vocab = {0}, ctx = {0};
	struct {
		bool set;
		float v;
	} rope = {0}, eps = {0};
	struct {
		bool set;
		bool v;
	} scaling = {0};
	const char *arch = NULL;
	const char *prog = argv[0];
	int c;

	memset(o, 0, sizeof(*o));
	o->p = presets[0];
	o->type = AW_TYPE_F32;
	o->seed = 1;
	o->alignment = AW_GGUF_DEFAULT_ALIGNMENT;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", lopts, NULL)) != -1) {
		const char *bad = NULL;

		switch (c) {
		case O_OUT:
			if (!optarg[0])
				bad = "--out: empty path";
			o->out = optarg;
			break;
		case O_PRESET: {
			size_t i;

			for (i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
				if (strcmp(optarg, presets[i].name) == 0)
					break;
			if (i == sizeof(presets) / sizeof(presets[0]))
				bad = "--preset: unknown preset";
			else
				o->p = presets[i];
			break;
		}
		case O_DIM:
			dim.set = true;
			if (parse_u32(optarg, 1, 65536, &dim.v) < 0)
				bad = "--dim: expected 1..65536";
			break;
		case O_LAYERS:
			layers.set = true;
			if (parse_u32(optarg, 1, 1024, &layers.v) < 0)
				bad = "--layers: expected 1..1024";
			break;
		case O_HEADS:
			heads.set = true;
			if (parse_u32(optarg, 1, 4096, &heads.v) < 0)
				bad = "--heads: expected 1..4096";
			break;
		case O_KV_HEADS:
			kv.set = true;
			if (parse_u32(optarg, 1, 4096, &kv.v) < 0)
				bad = "--kv-heads: expected 1..4096";
			break;
		case O_FFN:
			ffn.set = true;
			if (parse_u32(optarg, 1, 262144, &ffn.v) < 0)
				bad = "--ffn: expected 1..262144";
			break;
		case O_VOCAB:
			vocab.set = true;
			if (parse_u32(optarg, 1, 1u << 24, &vocab.v) < 0)
				bad = "--vocab: expected a positive count";
			break;
		case O_CTX:
			ctx.set = true;
			if (parse_u32(optarg, 1, 1u << 20, &ctx.v) < 0)
				bad = "--ctx: expected 1..1048576";
			break;
		case O_ROPE:
			rope.set = true;
			if (parse_float(optarg, 0.0f, 1e12f, &rope.v) < 0)
				bad = "--rope-base: expected a number > 0";
			break;
		case O_EPS:
			eps.set = true;
			if (parse_float(optarg, 0.0f, 1.0f, &eps.v) < 0)
				bad = "--norm-eps: expected 0 < X < 1";
			break;
		case O_TYPE:
			o->mix = strcmp(optarg, "q4_k_m") == 0 || strcmp(optarg, "q5_k_m") == 0;
			if (o->mix)
				o->type = optarg[1] == '4' ? AW_TYPE_Q4_K : AW_TYPE_Q5_K;
			else if (parse_type(optarg, &o->type) < 0)
				bad = "--type: expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, "
				      "q5_1, "
				      "q4_k, q5_k, q6_k, q4_k_m or q5_k_m";
			break;
		case O_EMBD_TYPE:
			o->embd_type_set = true;
			if (parse_type(optarg, &o->embd_type) < 0)
				bad = "--embd-type: expected a --type other than a mix";
			break;
		case O_OUTPUT_TYPE:
			o->output_type_set = true;
			if (parse_type(optarg, &o->output_type) < 0)
				bad = "--output-type: expected a --type other than a mix";
			break;
		case O_TIED:
			o->tied = true;
			break;
		case O_UNTIED:
			o->untied_set = true;
			break;
		case O_CHAT_TEMPLATE:
			o->chat_template = optarg;
			break;
		case O_ARCH:
			if (strcmp(optarg, "llama") == 0 || strcmp(optarg, "qwen2") == 0)
				arch = strcmp(optarg, "llama") == 0 ? "llama" : "qwen2";
			else
				bad = "--arch: expected llama or qwen2";
			break;
		case O_ROPE_SCALING:
			scaling.set = true;
			if (strcmp(optarg, "llama3") == 0 || strcmp(optarg, "none") == 0)
				scaling.v = optarg[0] == 'l';
			else
				bad = "--rope-scaling: expected llama3 or none";
			break;
		case O_SEED: {
			char *end;

			errno = 0;
			if (!optarg[0] || optarg[0] == '-' || optarg[0] == '+')
				bad = "--seed: expected an unsigned integer";
			else {
				o->seed = strtoull(optarg, &end, 0);
				if (errno || *end)
					bad = "--seed: expected an unsigned integer";
			}
			break;
		}
		case O_ALIGN:
			if (parse_u32(optarg, 32, 1u << 20, &o->alignment) < 0 ||
			    (o->alignment & (o->alignment - 1)))
				bad = "--alignment: expected a power of two in 32..1048576";
			break;
		case O_TOK:
			o->tokenizer_from = optarg;
			break;
		case O_HELP:
			mkmodel_usage(stdout, prog);
			exit(0);
		case ':':
			fprintf(stderr, "%s: option %s needs a value\n", prog, argv[optind - 1]);
			mkmodel_usage(stderr, prog);
			return 2;
		default:
			fprintf(stderr, "%s: unknown option %s\n", prog, argv[optind - 1]);
			mkmodel_usage(stderr, prog);
			return 2;
		}
		if (bad) {
			fprintf(stderr, "%s: %s (got '%s')\n", prog, bad, optarg);
			mkmodel_usage(stderr, prog);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		mkmodel_usage(stderr, prog);
		return 2;
	}
	if (!o->out) {
		fprintf(stderr, "%s: --out is required\n", prog);
		mkmodel_usage(stderr, prog);
		return 2;
	}

	/* explicit values over the preset */
	if (arch)
		o->p.arch = arch;
	if (scaling.set)
		o->p.llama3_rope = scaling.v;
	if (o->tied && o->untied_set) {
		fprintf(stderr, "%s: --tied and --untied exclude each other\n", prog);
		mkmodel_usage(stderr, prog);
		return 2;
	}
	o->tied = (o->tied || o->p.tied) && !o->untied_set;
	if (dim.set)
		o->p.dim = dim.v;
	if (layers.set)
		o->p.layers = layers.v;
	if (heads.set)
		o->p.heads = heads.v;
	if (kv.set)
		o->p.kv_heads = kv.v;
	else if (heads.set && (o->p.kv_heads > o->p.heads || o->p.heads % o->p.kv_heads))
		o->p.kv_heads = o->p.heads; /* the preset's grouping does not fit: plain MHA */
	if (ffn.set)
		o->p.ffn = ffn.v;
	if (ctx.set)
		o->p.ctx = ctx.v;
	if (rope.set)
		o->p.rope_base = rope.v;
	if (eps.set)
		o->p.norm_eps = eps.v;
	o->vocab_set = vocab.set;
	if (vocab.set)
		o->p.vocab = vocab.v;
	if (!o->embd_type_set)
		o->embd_type = o->mix && o->tied ? AW_TYPE_Q6_K : o->type;
	if (!o->output_type_set)
		o->output_type = o->mix ? AW_TYPE_Q6_K : o->type;

	/* consistency */
	{
		const char *bad = NULL;
		uint32_t hd = o->p.heads ? o->p.dim / o->p.heads : 0;

		if (o->p.dim % o->p.heads)
			bad = "dim must be a multiple of heads";
		else if (hd % 2)
			bad = "head dimension (dim / heads) must be even for RoPE";
		else if (o->p.kv_heads > o->p.heads || o->p.heads % o->p.kv_heads)
			bad = "heads must be a multiple of kv-heads";
		else if (!o->tokenizer_from &&
			 (o->p.vocab < 3 + 256 + 1 || o->p.vocab > MAX_VOCAB_SYNTH))
			bad = "vocab out of range for the synthetic vocabulary";
		else if (o->tokenizer_from && vocab.set)
			bad = "--vocab and --tokenizer-from exclude each other";
		else if (aw_type_info(o->type)->block > 1 && (o->p.dim % 32 || o->p.ffn % 32))
			bad = "dim and ffn must be multiples of 32 for block-quantized weights";
		else if (aw_type_info(o->embd_type)->block > 1 && o->p.dim % 32)
			bad = "dim must be a multiple of 32 for a block-quantized embedding";
		else if (aw_type_info(o->output_type)->block > 1 && o->p.dim % 32)
			bad = "dim must be a multiple of 32 for a block-quantized output";
		else if (o->tied && o->output_type_set)
			bad = "a tied model has no output.weight: --output-type does not apply "
			      "(--untied)";
		if (bad) {
			fprintf(stderr, "%s: %s\n", prog, bad);
			mkmodel_usage(stderr, prog);
			return 2;
		}
	}
	return 0;
}

/* ---- deterministic random numbers ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* Uniform in [-1, 1), exactly representable: 24 random bits. */
static float uniform(uint64_t *s)
{
	return (float)(splitmix64(s) >> 40) * 0x1p-23f - 1.0f;
}

static int fill_tensor(void *ctx, const char *name, void *buf, size_t size)
{
	const struct spec *sp = ctx;
	size_t rs = aw_type_row_size(sp->type, sp->ne0);
	uint64_t st = sp->seed;

	(void)name;
	if (rs * sp->rows != size)
		return -EINVAL;
	for (uint64_t r = 0; r < sp->rows; r++) {
		for (uint64_t i = 0; i < sp->ne0; i++)
			sp->row[i] = sp->fixed	? sp->fixed[i]
				     : sp->norm ? 1.0f + 0.05f * uniform(&st)
						: sp->a * uniform(&st);
		if (aw_quant_row(sp->type, sp->row, (uint8_t *)buf + r * rs, sp->ne0) < 0)
			return -EINVAL;
	}
	return 0;
}

/* ---- synthetic SentencePiece vocabulary ---- */

static const char *const words[] = {
	"the",	  "of",	   "and",   "to",     "in",    "is",	"you",	 "that",   "it",    "he",
	"was",	  "for",   "on",    "are",    "as",    "with",	"his",	 "they",   "at",    "be",
	"this",	  "have",  "from",  "or",     "one",   "had",	"by",	 "word",   "but",   "not",
	"what",	  "all",   "were",  "we",     "when",  "your",	"can",	 "said",   "there", "use",
	"an",	  "each",  "which", "she",    "do",    "how",	"their", "if",	   "will",  "up",
	"other",  "about", "out",   "many",   "then",  "them",	"these", "so",	   "some",  "her",
	"would",  "make",  "like",  "him",    "into",  "time",	"has",	 "look",   "two",   "more",
	"write",  "go",	   "see",   "number", "no",    "way",	"could", "people", "my",    "than",
	"first",  "water", "been",  "call",   "who",   "oil",	"its",	 "now",	   "find",  "long",
	"down",	  "day",   "did",   "get",    "come",  "made",	"may",	 "part",   "once",  "upon",
	"little", "girl",  "boy",   "cat",    "dog",   "happy", "sad",	 "big",	   "small", "tool",
	"call",	  "json",  "query", "route",  "agent", "model", "token", "name",   "value", "true",
	"false",  "null",  "Once",  "The",    "She",   "He",	"They",	 "It",	   "One",   "Tim",
	"Lily",	  "Ben",   "Sue",   "Mom",    "Dad",
};

/* Open-addressing set of strings (the pieces generated so far). */
struct strset {
	char **slot;
	size_t cap;
};

static bool strset_add(struct strset *s, const char *str)
{
	uint64_t h = hash_name(str) & (s->cap - 1);

	while (s->slot[h]) {
		if (strcmp(s->slot[h], str) == 0)
			return false;
		h = (h + 1) & (s->cap - 1);
	}
	s->slot[h] = (char *)str;
	return true;
}

struct vocab {
	char **tok;
	float *score;
	int32_t *type;
	uint32_t n, cap;
	struct strset set;
};

static int vocab_add(struct vocab *v, const char *piece, float score, int32_t type)
{
	char *p;

	if (v->n == v->cap)
		return 0;
	p = strdup(piece);
	if (!p)
		return -ENOMEM;
	if (!strset_add(&v->set, p)) {
		free(p);
		return 0;
	}
	v->tok[v->n] = p;
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
	return 0;
}

#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word boundary */

/* Fill v->cap pieces: <unk> <s> </s>, the 256 byte tokens, then normal
 * pieces in a fixed order, each scored below the previous one:
 *   1. the word-boundary mark and single characters (so text never needs
 *      the byte fallback for ASCII letters, digits and punctuation),
 *   2. for each common word, every prefix of its word-initial form
 *      ("\u2581t", "\u2581th", "\u2581the"): a chain of pairwise merges, so a
 *      SentencePiece merger really reaches the whole word,
 *   3. word-initial single characters and the words without the mark,
 *   4. n-grams of lowercase letters (n = 2, 3, 4), plain and word-initial.
 * Deterministic and duplicate-free (later duplicates are skipped). */
static int vocab_build(struct vocab *v)
{
	static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
				    ".,!?'\":;-()[]{}<>/\\_=+*&%$#@~`^|";
	char buf[64];
	float sc = 0.0f;
	int r = 0;

	r |= vocab_add(v, "<unk>", 0.0f, 2);
	r |= vocab_add(v, "<s>", 0.0f, 3);
	r |= vocab_add(v, "</s>", 0.0f, 3);
	for (int b = 0; b < 256; b++) {
		snprintf(buf, sizeof(buf), "<0x%02X>", b);
		r |= vocab_add(v, buf, 0.0f, 6);
	}
	r |= vocab_add(v, SPACE, sc -= 1.0f, 1);
	for (size_t i = 0; chars[i]; i++) {
		snprintf(buf, sizeof(buf), "%c", chars[i]);
		r |= vocab_add(v, buf, sc -= 1.0f, 1);
	}
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t n = strlen(words[i]);

		for (size_t k = 1; k <= n; k++) {
			snprintf(buf, sizeof(buf), SPACE "%.*s", (int)k, words[i]);
			r |= vocab_add(v, buf, sc -= 1.0f, 1);
		}
	}
	for (size_t i = 0; chars[i]; i++) {
		snprintf(buf, sizeof(buf), SPACE "%c", chars[i]);
		r |= vocab_add(v, buf, sc -= 1.0f, 1);
	}
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		r |= vocab_add(v, words[i], sc -= 1.0f, 1);
	for (int n = 2; n <= 4 && v->n < v->cap && r == 0; n++) {
		uint32_t total = 1;

		for (int k = 0; k < n; k++)
			total *= 26;
		for (uint32_t x = 0; x < total && v->n < v->cap && r == 0; x++) {
			char g[8];
			uint32_t y = x;

			for (int k = n - 1; k >= 0; k--) {
				g[k] = (char)('a' + y % 26);
				y /= 26;
			}
			g[n] = '\0';
			r |= vocab_add(v, g, sc -= 1.0f, 1);
			snprintf(buf, sizeof(buf), SPACE "%s", g);
			r |= vocab_add(v, buf, sc -= 1.0f, 1);
		}
	}
	if (r)
		return -ENOMEM;
	return v->n == v->cap ? 0 : -ERANGE;
}

static void vocab_free(struct vocab *v)
{
	for (uint32_t i = 0; i < v->n; i++)
		free(v->tok[i]);
	free(v->tok);
	free(v->score);
	free(v->type);
	free(v->set.slot);
}

static int add_tokenizer(struct aw_gguf_writer *w, uint32_t n)
{
	struct vocab v = {0};
	int r;

	v.cap = n;
	v.set.cap = 1;
	while (v.set.cap < 2 * (size_t)n)
		v.set.cap <<= 1;
	v.tok = calloc(n, sizeof(*v.tok));
	v.score = calloc(n, sizeof(*v.score));
	v.type = calloc(n, sizeof(*v.type));
	v.set.slot = calloc(v.set.cap, sizeof(*v.set.slot));
	if (!v.tok || !v.score || !v.type || !v.set.slot) {
		r = -ENOMEM;
		goto out;
	}
	r = vocab_build(&v);
	if (r < 0)
		goto out;
	if ((r = aw_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) < 0 ||
	    (r = aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", n,
					    (const char *const *)v.tok, NULL)) < 0 ||
	    (r = aw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32, n,
					v.score)) < 0 ||
	    (r = aw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", AW_GGUF_TYPE_INT32, n,
					v.type)) < 0 ||
	    (r = aw_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) < 0 ||
	    (r = aw_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) < 0 ||
	    (r = aw_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) < 0 ||
	    (r = aw_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) < 0 ||
	    (r = aw_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)) < 0)
		goto out;
out:
	vocab_free(&v);
	return r;
}

/* ---- the model ---- */

/* llama.cpp's use_more_bits(): the _M mixes give attn_v and ffn_down of
 * these layers Q6_K. */
static bool more_bits(uint32_t i, uint32_t n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i >= n / 8 && (i - n / 8) % 3 == 2);
}

/* The type a weight of row length ne0 is written in: the mix's choice, then
 * llama.cpp's fallback for K-quant rows that are not a multiple of 256. */
static uint32_t tensor_type(const struct opts *o, uint32_t t, bool more, uint64_t ne0)
{
	if (o->mix && more)
		t = AW_TYPE_Q6_K;
	if (ne0 % AW_QK_K == 0)
		return t;
	switch (t) {
	case AW_TYPE_Q4_K:
		return AW_TYPE_Q5_0;
	case AW_TYPE_Q5_K:
		return AW_TYPE_Q5_1;
	case AW_TYPE_Q6_K:
		return AW_TYPE_Q8_0;
	default:
		return t;
	}
}

static uint32_t file_type(const struct opts *o)
{
	if (o->mix) /* LLAMA_FTYPE_MOSTLY_Q4_K_M, _Q5_K_M */
		return o->type == AW_TYPE_Q4_K ? 15 : 17;
	switch (o->type) { /* llama.cpp's LLAMA_FTYPE_* */
	case AW_TYPE_Q4_1:
		return 3;
	case AW_TYPE_Q5_0:
		return 8;
	case AW_TYPE_Q5_1:
		return 9;
	case AW_TYPE_Q4_K: /* _S: the plain K types */
		return 14;
	case AW_TYPE_Q5_K:
		return 16;
	case AW_TYPE_Q6_K:
		return 18;
	case AW_TYPE_F16:
		return 1;
	case AW_TYPE_Q4_0:
		return 2;
	case AW_TYPE_Q8_0:
		return 7;
	case AW_TYPE_BF16:
		return 32;
	default:
		return 0;
	}
}

/* Llama 3's rope scaling (factor 32, low/high frequency factors 1 and 4,
 * original context 8192) as frequency divisors, one per rotated pair:
 * wavelengths shorter than 8192/4 keep their frequency, longer than 8192
 * are divided by 32, and in between the divisor blends smoothly. */
static void llama3_rope_factors(float base, uint32_t head_dim, float *ret)
{
	const double factor = 32.0, lo = 1.0, hi = 4.0, ctx = 8192.0, pi = 3.14159265358979323846;

	for (uint32_t i = 0; i < head_dim / 2; i++) {
		const double freq = pow((double)base, -2.0 * i / head_dim), wl = 2.0 * pi / freq;

		if (wl < ctx / hi)
			ret[i] = 1.0f;
		else if (wl > ctx / lo)
			ret[i] = (float)factor;
		else {
			const double smooth = (ctx / wl - lo) / (hi - lo);
			ret[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
		}
	}
}

int main(int argc, char **argv)
{
	static float rope_factors[65536 / 2];
	struct opts o;
	struct aw_gguf_writer *w = NULL;
	struct aw_gguf *tok = NULL;
	struct spec *specs = NULL;
	float *row = NULL;
	size_t n_specs = 0, max_specs;
	struct aw_err err;
	char name[96];
	int r, status = 1;
	uint32_t kv_dim;

	r = mkmodel_parse_args(argc, argv, &o);
	if (r)
		return r;
	kv_dim = o.p.dim / o.p.heads * o.p.kv_heads;
	if (o.p.llama3_rope)
		llama3_rope_factors(o.p.rope_base, o.p.dim / o.p.heads, rope_factors);

	if (aw_gguf_writer_new(&w) < 0)
		goto oom;
	if (o.tokenizer_from) {
		uint32_t et;
		uint64_t n;

		r = aw_gguf_open(o.tokenizer_from, &tok, &err);
		if (r < 0) {
			fprintf(stderr, "aw-mkmodel: %s\n", err.msg);
			goto out;
		}
		if (aw_gguf_get_arr(tok, "tokenizer.ggml.tokens", &et, &n) < 0 ||
		    et != AW_GGUF_TYPE_STRING || n == 0 || n > (1u << 24)) {
			fprintf(stderr, "aw-mkmodel: %s: no usable tokenizer.ggml.tokens array\n",
				o.tokenizer_from);
			goto out;
		}
		o.p.vocab = (uint32_t)n;
	}

	/* metadata, in the order llama.cpp's converter writes it, under the
	 * architecture's prefix */
	{
		char gname[64];
		const char *a = o.p.arch;
#define K(suffix) (snprintf(key, sizeof(key), "%s.%s", a, (suffix)), key)
		char key[96];

		snprintf(gname, sizeof(gname), "agentwire-random-%s-%ux%u", a, o.p.dim, o.p.layers);
		if (aw_gguf_writer_set_str(w, "general.architecture", a) < 0 ||
		    aw_gguf_writer_set_str(w, "general.name", gname) < 0 ||
		    aw_gguf_writer_set_u32(w, "general.alignment", o.alignment) < 0 ||
		    aw_gguf_writer_set_u32(w, "general.file_type", file_type(&o)) < 0 ||
		    aw_gguf_writer_set_u32(w, K("vocab_size"), o.p.vocab) < 0 ||
		    aw_gguf_writer_set_u32(w, K("context_length"), o.p.ctx) < 0 ||
		    aw_gguf_writer_set_u32(w, K("embedding_length"), o.p.dim) < 0 ||
		    aw_gguf_writer_set_u32(w, K("block_count"), o.p.layers) < 0 ||
		    aw_gguf_writer_set_u32(w, K("feed_forward_length"), o.p.ffn) < 0 ||
		    aw_gguf_writer_set_u32(w, K("rope.dimension_count"), o.p.dim / o.p.heads) < 0 ||
		    aw_gguf_writer_set_f32(w, K("rope.freq_base"), o.p.rope_base) < 0 ||
		    aw_gguf_writer_set_u32(w, K("attention.head_count"), o.p.heads) < 0 ||
		    aw_gguf_writer_set_u32(w, K("attention.head_count_kv"), o.p.kv_heads) < 0 ||
		    aw_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), o.p.norm_eps) <
			    0)
			goto oom;
#undef K
	}
	if (tok) {
		r = aw_gguf_writer_copy_kvs(w, tok, "tokenizer.");
		if (r < 0)
			goto oom;
	} else {
		r = add_tokenizer(w, o.p.vocab);
		if (r == -ENOMEM)
			goto oom;
		if (r < 0) {
			fprintf(stderr, "aw-mkmodel: cannot build a vocabulary of %u pieces\n",
				o.p.vocab);
			goto out;
		}
	}
	if (o.chat_template) {
		/* a template for the chat family tests (agent operations) */
		static char tmpl[1 << 16];
		FILE *tf = fopen(o.chat_template, "rb");
		size_t tn = tf ? fread(tmpl, 1, sizeof(tmpl) - 1, tf) : 0;
		if (tf)
			fclose(tf);
		if (!tf || tn == 0) {
			fprintf(stderr, "aw-mkmodel: --chat-template %s: unreadable or empty\n",
				o.chat_template);
			goto out;
		}
		tmpl[tn] = '\0';
		if (aw_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl) < 0)
			goto oom;
	}

	/* tensors: specs first (the writer keeps pointers to them) */
	max_specs = 4 + 12 * (size_t)o.p.layers;
	specs = calloc(max_specs, sizeof(*specs));
	row = malloc(sizeof(float) * (o.p.dim > o.p.ffn ? o.p.dim : o.p.ffn));
	if (!specs || !row)
		goto oom;

#define ADD(nm, type_, ne0_, rows_, norm_, a_)                                                     \
	do {                                                                                       \
		struct spec *sp = &specs[n_specs++];                                               \
		uint64_t ne_[2] = {(ne0_), (rows_)};                                               \
		sp->seed = o.seed ^ hash_name(nm);                                                 \
		sp->type = (type_);                                                                \
		sp->ne0 = (ne0_);                                                                  \
		sp->rows = (rows_);                                                                \
		sp->norm = (norm_);                                                                \
		sp->a = (a_);                                                                      \
		sp->row = row;                                                                     \
		sp->fixed = NULL;                                                                  \
		r = aw_gguf_writer_add_tensor_fill(w, (nm), sp->type, (rows_) == 1 ? 1 : 2, ne_,   \
						   fill_tensor, sp);                               \
		if (r < 0) {                                                                       \
			fprintf(stderr, "aw-mkmodel: tensor %s: %s\n", (nm), strerror(-r));        \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

	{
		/* uniform on [-a, a] has std a / sqrt(3): a = sqrt(3 / fan_in) gives 1/sqrt(fan_in) */
		float a_dim = sqrtf(3.0f / (float)o.p.dim), a_ffn = sqrtf(3.0f / (float)o.p.ffn);

		const uint32_t nl = o.p.layers;
#define TT(t_, more_, ne0_) tensor_type(&o, (t_), (more_), (ne0_))
		/* tied: the table is also the output matrix, so it takes the
		 * output's scale (logits of unit scale, as trained models have);
		 * the first RMS norm makes the layers indifferent to it */
		ADD("token_embd.weight", TT(o.embd_type, false, o.p.dim), o.p.dim, o.p.vocab, false,
		    o.tied ? a_dim : sqrtf(3.0f));
		ADD("output_norm.weight", AW_TYPE_F32, o.p.dim, 1, true, 0.0f);
		if (!o.tied)
			ADD("output.weight", TT(o.output_type, false, o.p.dim), o.p.dim, o.p.vocab,
			    false, a_dim);
		if (o.p.llama3_rope) {
			ADD("rope_freqs.weight", AW_TYPE_F32, o.p.dim / o.p.heads / 2, 1, false,
			    0.0f);
			specs[n_specs - 1].fixed = rope_factors;
		}
		for (uint32_t l = 0; l < o.p.layers; l++) {
			snprintf(name, sizeof(name), "blk.%u.attn_norm.weight", l);
			ADD(name, AW_TYPE_F32, o.p.dim, 1, true, 0.0f);
			snprintf(name, sizeof(name), "blk.%u.attn_q.weight", l);
			ADD(name, TT(o.type, false, o.p.dim), o.p.dim, o.p.dim, false, a_dim);
			snprintf(name, sizeof(name), "blk.%u.attn_k.weight", l);
			ADD(name, TT(o.type, false, o.p.dim), o.p.dim, kv_dim, false, a_dim);
			snprintf(name, sizeof(name), "blk.%u.attn_v.weight", l);
			ADD(name, TT(o.type, more_bits(l, nl), o.p.dim), o.p.dim, kv_dim, false,
			    a_dim);
			snprintf(name, sizeof(name), "blk.%u.attn_output.weight", l);
			ADD(name, TT(o.type, false, o.p.dim), o.p.dim, o.p.dim, false, a_dim);
			snprintf(name, sizeof(name), "blk.%u.ffn_norm.weight", l);
			ADD(name, AW_TYPE_F32, o.p.dim, 1, true, 0.0f);
			snprintf(name, sizeof(name), "blk.%u.ffn_gate.weight", l);
			ADD(name, TT(o.type, false, o.p.dim), o.p.dim, o.p.ffn, false, a_dim);
			snprintf(name, sizeof(name), "blk.%u.ffn_down.weight", l);
			ADD(name, TT(o.type, more_bits(l, nl), o.p.ffn), o.p.ffn, o.p.dim, false,
			    a_ffn);
			snprintf(name, sizeof(name), "blk.%u.ffn_up.weight", l);
			ADD(name, TT(o.type, false, o.p.dim), o.p.dim, o.p.ffn, false, a_dim);
			if (strcmp(o.p.arch, "qwen2") == 0) {
				/* biases of the order of the products they add to (sd 1/2;
				 * Qwen's K biases are larger still) */
				static const char *const b[] = {"attn_q", "attn_k", "attn_v"};
				const uint32_t n[] = {o.p.dim, kv_dim, kv_dim};
				for (int i = 0; i < 3; i++) {
					snprintf(name, sizeof(name), "blk.%u.%s.bias", l, b[i]);
					ADD(name, AW_TYPE_F32, n[i], 1, false, 0.866f);
				}
			}
		}
	}
#undef TT
#undef ADD

	r = aw_gguf_writer_write(w, o.out, &err);
	if (r < 0) {
		fprintf(stderr, "aw-mkmodel: %s\n", err.msg);
		goto out;
	}
	status = 0;
	goto out;
oom:
	fprintf(stderr, "aw-mkmodel: out of memory\n");
out:
	aw_gguf_writer_free(w);
	aw_gguf_close(tok);
	free(specs);
	free(row);
	return status;
}
