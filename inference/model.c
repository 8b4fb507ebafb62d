/* model.c — loading a llama-architecture GGUF model and running the forward
 * pass over a batch (see model.h for the metadata and tensors it reads).
 *
 * The forward pass is one aw_pool_run(): every thread walks the same steps
 * and meets the others at a spin barrier wherever a step needs what another
 * thread wrote. Per-token steps (norms, activation quantization, RoPE, KV
 * writes, residuals) split the tokens; matrix products split the output
 * rows, 16 at a time (the kernels' interleave); attention splits (token, KV
 * head) pairs. All buffers are sized at load for max_batch tokens.
 */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "loader.h"
#include "pool.h"
#include "quant.h"

struct layer {
	struct aw_kern_mat wq;		  /* (n_head*head_dim, dim) */
	struct aw_kern_mat wk;		  /* (n_head_kv*head_dim, dim) */
	struct aw_kern_mat wv;		  /* (n_head_kv*head_dim, dim) */
	struct aw_kern_mat wo;		  /* (dim, n_head*head_dim) */
	struct aw_kern_mat gate;	  /* (ffn_dim, dim) */
	struct aw_kern_mat up;		  /* (ffn_dim, dim) */
	struct aw_kern_mat down;	  /* (dim, ffn_dim) */
	float *attn_norm;		  /* (dim) */
	float *ffn_norm;		  /* (dim) */
	float *bq, *bk, *bv;		  /* (q_dim), (kv_dim), (kv_dim) or NULL: qwen2 */
	bool q_attn, q_wo, q_ffn, q_down; /* inputs read as Q8A blocks */
};

struct aw_model {
	struct aw_model_hparams hp;
	const struct aw_kern *k;
	int32_t max_batch;
	struct aw_kern_mat tok_embd; /* (n_vocab, dim) */
	struct aw_kern_mat output;   /* (n_vocab, dim); token_embd when tied */
	float *out_norm;	     /* (dim) */
	float *rope_freqs;	     /* (n_rot/2) or NULL */
	struct aw_kern_rope rope;
	struct layer *layers; /* (n_layer) */
	bool q_out;	      /* the output projection reads Q8A */
	uint64_t weight_bytes, decode_bytes, owned_bytes;
	uint64_t repacked_bytes; /* matrices in the X16 or KQ8 layout: owned or prepacked */
	void **owned;		 /* repacked matrices (when the arena could not be had) */
	int n_owned;
	/* repacked matrices, one mapping: hugetlb pages where available (a
	 * matrix in 4 KiB pages measured ~20 % slower to decode), else THP advice */
	uint8_t *arena;
	struct aw_load_mem arena_mem;
	size_t arena_used;

	/* scratch for max_batch tokens */
	float *x;		 /* (T, dim) residual stream */
	float *xb;		 /* (T, dim) normed input / matmul output */
	float *xb2;		 /* (T, q_dim) attention output */
	float *q;		 /* (T, q_dim) */
	float *kk;		 /* (T, kv_dim) */
	float *vv;		 /* (T, kv_dim) */
	float *hb;		 /* (T, ffn_dim) */
	float *hb2;		 /* (T, ffn_dim) */
	struct aw_block_q8a *xq; /* (T, max(dim, q_dim)/32) */
	struct aw_block_q8a *hq; /* (T, ffn_dim/32): written while other threads
				  * still read xq in the same step */
	int32_t *out_rows;	 /* (2, T) tokens whose output is wanted (logit rows
				  * first), then each one's row in 'hidden' or -1 */
	float *row_y;		 /* (n_vocab) scratch of aw_model_logits_rows(), on use */
	/* sized for the KV cache on first use (once per cache shape) */
	const void **blk; /* (nth, 2, max_blocks_per_seq) block pointers */
	size_t blk_cap;
	int32_t *seq_next; /* (max_seqs) next position per sequence in a batch */
	int32_t seq_cap;
};

/* --- architectures (qwen2 and the llama family's variants) ----------------------- */

/* What differs between the architectures this forward pass runs. Llama 2/3,
 * Llama 3.2, TinyLlama, Mistral and SmolLM/SmolLM2 are all "llama" in GGUF
 * (tied output and rope_freqs.weight are optional tensors there); "qwen2"
 * adds biases to the Q, K and V projections and rotates in NEOX mode, as
 * llama.cpp's converter leaves Qwen's Q/K rows unpermuted. */
struct arch {
	const char *name;   /* general.architecture, and the metadata key prefix */
	uint32_t rope_mode; /* enum aw_kern_rope_mode */
	bool qkv_bias;	    /* blk.N.attn_{q,k,v}.bias required */
};

static const struct arch archs[] = {
	{"llama", AW_KERN_ROPE_NORM, false},
	{"qwen2", AW_KERN_ROPE_NEOX, true},
};

static const struct arch *arch_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
		if (strlen(archs[i].name) == len && memcmp(archs[i].name, name, len) == 0)
			return &archs[i];
	return NULL;
}

/* --- loading -------------------------------------------------------------------- */

struct loadctx {
	const struct aw_gguf *g;
	const uint8_t *data;
	size_t size;
	const uint8_t *prepacked; /* per tensor: already in X16 layout */
	struct aw_err *err;
	struct aw_model *m;
	bool check;		 /* run aw_model_check_tensor() on each tensor */
	const struct arch *arch; /* from general.architecture */
	char key[128];		 /* akey()'s buffer */
};

static bool quantized(uint32_t t)
{
	return t == AW_TYPE_Q8_0 || t == AW_TYPE_Q4_0 || t == AW_TYPE_Q4_1 || t == AW_TYPE_Q5_0 ||
	       t == AW_TYPE_Q5_1 || t == AW_TYPE_Q4_K || t == AW_TYPE_Q5_K || t == AW_TYPE_Q6_K;
}

static bool supported_type(uint32_t t)
{
	return t == AW_TYPE_F32 || t == AW_TYPE_F16 || t == AW_TYPE_BF16 || quantized(t);
}

/* Find tensor 'name' of shape [ne0] (ne1 == 0) or [ne0, ne1]; check type and
 * bounds. Returns the tensor, or NULL with the error set (*missing tells a
 * missing tensor from a bad one when the caller allows absence). */
static const struct aw_gguf_tensor *find(struct loadctx *c, const char *name, uint64_t ne0,
					 uint64_t ne1, bool optional, int *ret)
{
	int i = aw_gguf_find_tensor(c->g, name);
	const struct aw_gguf_tensor *t;

	*ret = 0;
	if (i < 0) {
		if (!optional)
			*ret = aw_err_set(c->err, EINVAL, "missing tensor '%s'", name);
		return NULL;
	}
	t = aw_gguf_tensor_at(c->g, (uint64_t)i);
	if (!t) {
		*ret = aw_err_set(c->err, EINVAL, "tensor '%s' not readable", name);
		return NULL;
	}
	const uint64_t want1 = ne1 ? ne1 : 1;
	if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
		if (ne1)
			*ret = aw_err_set(
				c->err, EINVAL,
				"tensor '%s': shape [%llu, %llu, %llu, %llu], expected "
				"[%llu, %llu]",
				name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
				(unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
				(unsigned long long)ne0, (unsigned long long)ne1);
		else
			*ret = aw_err_set(c->err, EINVAL,
					  "tensor '%s': shape [%llu, %llu, %llu, %llu], expected "
					  "[%llu]",
					  name, (unsigned long long)t->ne[0],
					  (unsigned long long)t->ne[1],
					  (unsigned long long)t->ne[2],
					  (unsigned long long)t->ne[3], (unsigned long long)ne0);
		return NULL;
	}
	if (!supported_type(t->type)) {
		*ret = aw_err_set(
			c->err, EINVAL,
			"tensor '%s': type %s not supported (f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 "
			"q5_1 q4_k q5_k q6_k)",
			name, aw_type_name(t->type));
		return NULL;
	}
	if (t->offset > c->size || t->size > c->size - t->offset) {
		*ret = aw_err_set(
			c->err, EINVAL,
			"tensor '%s': data [%llu, +%llu) outside the %zu-byte data region", name,
			(unsigned long long)t->offset, (unsigned long long)t->size, c->size);
		return NULL;
	}
	/* rows are read as floats, halves or blocks starting with a half */
	const size_t align = t->type == AW_TYPE_F32 ? 4 : 2;
	if ((uintptr_t)(c->data + t->offset) % align) {
		*ret = aw_err_set(c->err, EINVAL, "tensor '%s': data not aligned to %zu bytes",
				  name, align);
		return NULL;
	}
	/* a prepacked tensor was checked by the repacker before it rewrote it */
	if (c->check && !(c->prepacked && c->prepacked[i]) &&
	    aw_model_check_tensor(c->g, (uint64_t)i, c->data + t->offset, c->err) < 0) {
		*ret = -EINVAL;
		return NULL;
	}
	c->m->weight_bytes += t->size;
	return t;
}

static int load_mat(struct loadctx *c, const char *name, uint64_t cols, uint64_t rows,
		    bool optional, struct aw_kern_mat *ret_m, bool *ret_found)
{
	int ret;
	const struct aw_gguf_tensor *t = find(c, name, cols, rows, optional, &ret);

	if (ret_found)
		*ret_found = t != NULL;
	if (!t)
		return ret;
	if (aw_kern_mat_init(t->type, (uint32_t)rows, (uint32_t)cols, c->data + t->offset, ret_m) <
	    0)
		return aw_err_set(c->err, EINVAL, "tensor '%s': %s rows of %llu not supported",
				  name, aw_type_name(t->type), (unsigned long long)cols);
	if (c->prepacked && c->prepacked[aw_gguf_find_tensor(c->g, name)]) {
		/* repacked in place while loading (aw_model_repacker_tensor) */
		aw_kern_mat_prepacked(ret_m, ret_m->data, ret_m);
		c->m->repacked_bytes += t->size;
	}
	c->m->decode_bytes += t->size;
	return 0;
}

static int load_vec(struct loadctx *c, const char *name, uint64_t n, bool optional, float **ret_v)
{
	int ret;
	const struct aw_gguf_tensor *t = find(c, name, n, 0, optional, &ret);

	*ret_v = NULL;
	if (!t)
		return ret;
	float *v = malloc(sizeof(float) * n);
	if (!v)
		return aw_err_set(c->err, ENOMEM, "out of memory");
	if (aw_dequant_row(t->type, c->data + t->offset, v, n) < 0) {
		free(v);
		return aw_err_set(c->err, EINVAL, "tensor '%s': cannot convert %s", name,
				  aw_type_name(t->type));
	}
	c->m->decode_bytes += t->size;
	*ret_v = v;
	return 0;
}

/* "<arch>.<suffix>": the metadata key of the file's architecture. */
static const char *akey(struct loadctx *c, const char *suffix)
{
	snprintf(c->key, sizeof(c->key), "%s.%s", c->arch->name, suffix);
	return c->key;
}

static int get_u32(struct loadctx *c, const char *key, uint32_t def, bool required, uint32_t lo,
		   uint32_t hi, int32_t *ret)
{
	uint32_t v;
	int r = aw_gguf_get_u32(c->g, key, &v);

	if (r == -ENOENT && !required)
		v = def;
	else if (r == -ENOENT)
		return aw_err_set(c->err, EINVAL, "missing key '%s'", key);
	else if (r < 0)
		return aw_err_set(c->err, EINVAL, "key '%s': not an unsigned 32-bit integer", key);
	if (v < lo || v > hi)
		return aw_err_set(c->err, EINVAL, "key '%s': %u outside [%u, %u]", key, v, lo, hi);
	*ret = (int32_t)v;
	return 0;
}

static int get_f32(struct loadctx *c, const char *key, float def, float lo, float hi, float *ret)
{
	float v;
	int r = aw_gguf_get_f32(c->g, key, &v);

	if (r == -ENOENT)
		v = def;
	else if (r < 0)
		return aw_err_set(c->err, EINVAL, "key '%s': not a float", key);
	if (!(v >= lo && v <= hi))
		return aw_err_set(c->err, EINVAL, "key '%s': %g outside [%g, %g]", key, (double)v,
				  (double)lo, (double)hi);
	*ret = v;
	return 0;
}

static int read_hparams(struct loadctx *c, struct aw_model_hparams *hp)
{
	const char *arch;
	size_t len;
	int r;

	r = aw_gguf_get_str(c->g, "general.architecture", &arch, &len);
	if (r < 0)
		return aw_err_set(c->err, EINVAL, "missing key 'general.architecture'");
	c->arch = arch_find(arch, len);
	if (!c->arch)
		return aw_err_set(c->err, EINVAL,
				  "architecture '%.*s' not supported (llama, qwen2)",
				  (int)(len > 64 ? 64 : len), arch);
	hp->arch = c->arch->name;
	if ((r = get_u32(c, akey(c, "embedding_length"), 0, true, 1, 1 << 16, &hp->dim)) < 0 ||
	    (r = get_u32(c, akey(c, "block_count"), 0, true, 1, 1024, &hp->n_layer)) < 0 ||
	    (r = get_u32(c, akey(c, "feed_forward_length"), 0, true, 1, 1 << 18, &hp->ffn_dim)) <
		    0 ||
	    (r = get_u32(c, akey(c, "attention.head_count"), 0, true, 1, 1024, &hp->n_head)) < 0 ||
	    (r = get_u32(c, akey(c, "attention.head_count_kv"), (uint32_t)hp->n_head, false, 1,
			 1024, &hp->n_head_kv)) < 0 ||
	    (r = get_u32(c, akey(c, "context_length"), 2048, false, 1, 1 << 24, &hp->n_ctx)) < 0)
		return r;
	if (hp->dim % hp->n_head)
		return aw_err_set(c->err, EINVAL,
				  "embedding_length %d is not a multiple of head_count %d", hp->dim,
				  hp->n_head);
	if (hp->n_head % hp->n_head_kv)
		return aw_err_set(c->err, EINVAL,
				  "head_count %d is not a multiple of head_count_kv %d", hp->n_head,
				  hp->n_head_kv);
	hp->head_dim = hp->dim / hp->n_head;
	int32_t kl;
	if ((r = get_u32(c, akey(c, "attention.key_length"), (uint32_t)hp->head_dim, false, 1,
			 1 << 16, &kl)) < 0)
		return r;
	if (kl != hp->head_dim)
		return aw_err_set(c->err, EINVAL,
				  "key_length %d differs from embedding_length/head_count %d "
				  "(not supported)",
				  kl, hp->head_dim);
	if ((r = get_u32(c, akey(c, "attention.value_length"), (uint32_t)hp->head_dim, false, 1,
			 1 << 16, &kl)) < 0)
		return r;
	if (kl != hp->head_dim)
		return aw_err_set(c->err, EINVAL,
				  "value_length %d differs from embedding_length/head_count %d "
				  "(not supported)",
				  kl, hp->head_dim);
	if ((r = get_u32(c, akey(c, "rope.dimension_count"), (uint32_t)hp->head_dim, false, 2,
			 (uint32_t)hp->head_dim, &hp->n_rot)) < 0)
		return r;
	if (hp->n_rot % 2)
		return aw_err_set(c->err, EINVAL, "rope.dimension_count %d is odd", hp->n_rot);
	if ((r = get_f32(c, akey(c, "attention.layer_norm_rms_epsilon"), 1e-5f, 0.0f, 1.0f,
			 &hp->rms_eps)) < 0 ||
	    (r = get_f32(c, akey(c, "rope.freq_base"), 10000.0f, 1.0f, 1e12f, &hp->rope_base)) < 0)
		return r;
	/* the vocabulary: from the key, else from token_embd's rows */
	int ti = aw_gguf_find_tensor(c->g, "token_embd.weight");
	uint32_t nv;
	r = aw_gguf_get_u32(c->g, akey(c, "vocab_size"), &nv);
	if (r == 0) {
		hp->n_vocab = (int32_t)nv;
	} else if (ti >= 0) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(c->g, (uint64_t)ti);
		hp->n_vocab = t && t->ne[1] <= (1u << 24) ? (int32_t)t->ne[1] : 0;
	} else {
		return aw_err_set(c->err, EINVAL, "missing tensor 'token_embd.weight'");
	}
	if (hp->n_vocab <= 0 || hp->n_vocab > (1 << 24))
		return aw_err_set(c->err, EINVAL, "vocabulary size %d out of range", hp->n_vocab);
	/* the tokenizer's ids index the embedding: the counts must agree */
	uint32_t et;
	uint64_t n_tok;
	if (aw_gguf_get_arr(c->g, "tokenizer.ggml.tokens", &et, &n_tok) == 0 &&
	    n_tok != (uint64_t)hp->n_vocab)
		return aw_err_set(
			c->err, EINVAL,
			"tokenizer.ggml.tokens has %llu tokens but the model's vocabulary "
			"is %d",
			(unsigned long long)n_tok, hp->n_vocab);
	return 0;
}

/* Bytes repack() takes for 'w' (aligned), 0 when it leaves it alone. */
static size_t repack_bytes(const struct aw_kern_mat *w)
{
	size_t sz;

	if (w->layout != AW_KERN_LAYOUT_ROWS || !quantized(w->type))
		return 0;
	sz = aw_kern_repack_size(w->type, w->rows, w->cols);
	return (sz + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1);
}

static int repack(struct loadctx *c, struct aw_kern_mat *w)
{
	size_t sz;
	void *dst;
	struct aw_model *m = c->m;

	if (w->layout != AW_KERN_LAYOUT_ROWS || !quantized(w->type))
		return 0;
	sz = aw_kern_repack_size(w->type, w->rows, w->cols);
	if (sz == 0)
		return 0;
	const size_t asz = (sz + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1);
	if (m->arena && m->arena_mem.map_len - m->arena_used >= asz) {
		dst = m->arena + m->arena_used;
		m->arena_used += asz;
	} else {
		dst = aligned_alloc(AW_KERN_ALIGN, asz);
		if (!dst)
			return aw_err_set(c->err, ENOMEM, "out of memory repacking weights");
		m->owned[m->n_owned++] = dst;
	}
	if (aw_kern_repack(w, dst, w) < 0)
		return aw_err_set(c->err, EINVAL, "repacking a %s matrix failed",
				  aw_type_name(w->type));
	m->owned_bytes += sz;
	m->repacked_bytes += sz;
	return 0;
}

/* --- repacking in place while loading ------------------------------------------------- */

/* The matrices aw_model_load() repacks: the layers' seven and output.weight,
 * or token_embd.weight when the file has no output.weight (tied: the output
 * projection streams the whole table every token, the lookup reads one row
 * of either layout). */
static bool repack_name(const struct aw_gguf *g, const char *name)
{
	static const char *const sfx[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
					  "ffn_gate", "ffn_up", "ffn_down"};
	char s[32];
	int n = 0;
	unsigned l;

	if (strcmp(name, "output.weight") == 0)
		return true;
	if (strcmp(name, "token_embd.weight") == 0)
		return aw_gguf_find_tensor(g, "output.weight") < 0;
	if (sscanf(name, "blk.%u.%31[a-z_].weight%n", &l, s, &n) != 2 || name[n] != '\0')
		return false;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++)
		if (strcmp(s, sfx[i]) == 0)
			return true;
	return false;
}

int aw_model_repacker_init(struct aw_model_repacker *rp, const struct aw_gguf *g)
{
	uint64_t n = aw_gguf_n_tensors(g);

	memset(rp, 0, sizeof(*rp));
	rp->g = g;
	rp->done = calloc(n ? n : 1, 1);
	return rp->done ? 0 : -ENOMEM;
}

void aw_model_repacker_fini(struct aw_model_repacker *rp)
{
	free(rp->done);
	rp->done = NULL;
}

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int aw_model_repacker_tensor(void *ctx, uint32_t idx, void *const *data, unsigned n_replicas,
			     uint64_t size)
{
	struct aw_model_repacker *rp = ctx;
	const struct aw_gguf_tensor *t = aw_gguf_tensor_at(rp->g, idx);
	struct aw_kern_mat src, dst;
	double t0 = mono_s();

	if (!t) {
		rp->rc = -EINVAL;
		return 1;
	}
	if (!repack_name(rp->g, t->name) || t->ne[2] != 1 || t->ne[3] != 1 || t->ne[1] == 0 ||
	    t->ne[1] % 16 || t->ne[0] > UINT32_MAX || t->ne[1] > UINT32_MAX || t->size != size ||
	    n_replicas == 0)
		return 0;
	const uint32_t rows = (uint32_t)t->ne[1], cols = (uint32_t)t->ne[0];
	/* in place only where the interleaved layout has the file layout's size,
	 * group g of 16 rows landing where those rows were */
	if (aw_kern_mat_init(t->type, rows, cols, data[0], &src) < 0 ||
	    aw_kern_repack_size(t->type, rows, cols) != size ||
	    aw_kern_repack_size(t->type, 16, cols) != 16 * src.row_size)
		return 0;
	/* the model skips its scale check for prepacked tensors: do it here,
	 * on the file layout */
	struct aw_err cerr;
	if (aw_model_check_tensor(rp->g, idx, data[0], &cerr) < 0) {
		snprintf(rp->msg, sizeof(rp->msg), "%s", cerr.msg);
		rp->rc = -EINVAL;
		return 1;
	}
	/* the X16 kernels' vector loads want AW_KERN_ALIGN: a tensor the file
	 * puts off that alignment (GGUF only promises 32) is left to
	 * aw_model_load(), which repacks it into its aligned arena. The KQ8
	 * kernels load unaligned: any place will do. */
	aw_kern_mat_prepacked(&src, data[0], &dst);
	if ((uintptr_t)data[0] % AW_KERN_ALIGN && dst.layout != AW_KERN_LAYOUT_KQ8)
		return 0;
	const size_t gbytes = 16 * src.row_size;
	void *tmp = aligned_alloc(AW_KERN_ALIGN,
				  (gbytes + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1));
	if (!tmp) {
		rp->rc = -ENOMEM;
		return 1;
	}
	for (uint32_t g0 = 0; g0 < rows; g0 += 16) {
		uint8_t *grp = (uint8_t *)data[0] + (size_t)g0 * src.row_size;
		struct aw_kern_mat sub;

		aw_kern_mat_init(t->type, 16, cols, grp, &sub);
		aw_kern_repack(&sub, tmp, &dst);
		memcpy(grp, tmp, gbytes);
	}
	free(tmp);
	/* the other replicas: a copy is cheaper than repacking again */
	for (unsigned r = 1; r < n_replicas; r++)
		memcpy(data[r], data[0], size);
	rp->done[idx] = 1;
	rp->n_done++;
	rp->bytes_done += size;
	rp->seconds += mono_s() - t0;
	return 0;
}

static void *scratch(size_t n, size_t elem)
{
	size_t bytes = (n * elem + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1);

	return aligned_alloc(AW_KERN_ALIGN, bytes ? bytes : AW_KERN_ALIGN);
}

/* --- load-time checks and the float-activation reference (qwen2 helper) -------- */

int aw_model_check_tensor(const struct aw_gguf *g, uint64_t idx, const void *data,
			  struct aw_err *err)
{
	const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, idx);
	size_t blk;

	if (!t)
		return aw_err_set(err, EINVAL, "tensor %llu not in the file",
				  (unsigned long long)idx);
	const uint64_t n = t->n_elements;
	int r = aw_quant_check_row(t->type, data, (size_t)n, &blk);
	if (r == -ERANGE) {
		const struct aw_type_info *ti = aw_type_info(t->type);
		const uint64_t per_row = t->ne[0] / ti->block;
		return aw_err_set(err, EINVAL,
				  "tensor '%s': %s block %zu (row %llu) has a NaN or infinite "
				  "scale",
				  t->name, aw_type_name(t->type), blk,
				  (unsigned long long)(blk / per_row));
	}
	if (r < 0)
		return aw_err_set(err, EINVAL, "tensor '%s': type %s cannot be checked", t->name,
				  aw_type_name(t->type));
	return 0;
}

/* Replace a quantized matrix by its F32 widening (params.dequant). */
static int widen(struct loadctx *c, struct aw_kern_mat *w)
{
	struct aw_model *m = c->m;

	if (!quantized(w->type))
		return 0;
	const size_t rb = aw_type_row_size(w->type, w->cols);
	const size_t sz = (size_t)w->rows * w->cols * sizeof(float);
	float *dst = aligned_alloc(AW_KERN_ALIGN,
				   (sz + AW_KERN_ALIGN - 1) & ~(size_t)(AW_KERN_ALIGN - 1));
	if (!dst)
		return aw_err_set(c->err, ENOMEM, "out of memory widening weights to f32");
	m->owned[m->n_owned++] = dst;
	for (uint32_t r = 0; r < w->rows; r++)
		if (aw_dequant_row(w->type, (const uint8_t *)w->data + r * rb,
				   dst + (size_t)r * w->cols, w->cols) < 0)
			return aw_err_set(c->err, EINVAL, "cannot widen a %s matrix",
					  aw_type_name(w->type));
	if (aw_kern_mat_init(AW_TYPE_F32, w->rows, w->cols, dst, w) < 0)
		return aw_err_set(c->err, EINVAL, "cannot describe a widened matrix");
	m->owned_bytes += sz;
	return 0;
}

int aw_model_load(const struct aw_gguf *g, const void *data, size_t size,
		  const struct aw_model_params *p, struct aw_model **ret_m, struct aw_err *err)
{
	struct aw_model *m;
	struct loadctx c = {.g = g,
			    .data = data,
			    .size = size,
			    .prepacked = p && p->repack ? p->prepacked : NULL,
			    .err = err};
	char name[96];
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return aw_err_set(err, ENOMEM, "out of memory");
	c.m = m;
	c.check = !(p && p->scales_checked);
	if (c.prepacked && p->dequant) {
		r = aw_err_set(err, EINVAL, "prepacked weights cannot be widened (dequant)");
		goto fail;
	}
	m->k = p && p->kern ? p->kern : aw_kern_select(NULL);
	if (!m->k) {
		r = aw_err_set(err, ENODEV, "no kernel table for this CPU");
		goto fail;
	}
	m->max_batch = p && p->max_batch > 0 ? p->max_batch : 512;
	if (m->max_batch > (1 << 16)) {
		r = aw_err_set(err, EINVAL, "max_batch %d too large", m->max_batch);
		goto fail;
	}

	struct aw_model_hparams *hp = &m->hp;
	if ((r = read_hparams(&c, hp)) < 0)
		goto fail;
	const uint64_t dim = (uint64_t)hp->dim, q_dim = (uint64_t)hp->n_head * hp->head_dim,
		       kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim, ffn = (uint64_t)hp->ffn_dim,
		       nv = (uint64_t)hp->n_vocab;

	/* global tensors */
	if ((r = load_mat(&c, "token_embd.weight", dim, nv, false, &m->tok_embd, NULL)) < 0)
		goto fail;
	/* decode reads one row of the embedding, not the table */
	m->decode_bytes -= aw_type_row_size(m->tok_embd.type, dim) * (nv - 1);
	bool has_out;
	if ((r = load_mat(&c, "output.weight", dim, nv, true, &m->output, &has_out)) < 0)
		goto fail;
	if (!has_out) {
		hp->tied = 1;
		m->output = m->tok_embd;
		m->decode_bytes += aw_type_row_size(m->tok_embd.type, dim) * (nv - 1);
	}
	if ((r = load_vec(&c, "output_norm.weight", dim, false, &m->out_norm)) < 0)
		goto fail;
	if ((r = load_vec(&c, "rope_freqs.weight", (uint64_t)hp->n_rot / 2, true, &m->rope_freqs)) <
	    0)
		goto fail;
	hp->rope_factors = m->rope_freqs != NULL;
	m->rope = (struct aw_kern_rope){.mode = c.arch->rope_mode,
					.head_dim = (uint32_t)hp->head_dim,
					.n_rot = (uint32_t)hp->n_rot,
					.freq_base = hp->rope_base,
					.freq_factors = m->rope_freqs};

	/* layers */
	m->layers = calloc((size_t)hp->n_layer, sizeof(*m->layers));
	m->owned = calloc((size_t)hp->n_layer * 7 + 2, sizeof(void *));
	if (!m->layers || !m->owned) {
		r = aw_err_set(err, ENOMEM, "out of memory");
		goto fail;
	}
	for (int32_t l = 0; l < hp->n_layer; l++) {
		struct layer *L = &m->layers[l];
		const struct {
			const char *suffix;
			uint64_t cols, rows;
			struct aw_kern_mat *m;
		} mats[] = {
			{"attn_q", dim, q_dim, &L->wq},	  {"attn_k", dim, kv_dim, &L->wk},
			{"attn_v", dim, kv_dim, &L->wv},  {"attn_output", q_dim, dim, &L->wo},
			{"ffn_gate", dim, ffn, &L->gate}, {"ffn_up", dim, ffn, &L->up},
			{"ffn_down", ffn, dim, &L->down},
		};
		for (size_t i = 0; i < sizeof(mats) / sizeof(mats[0]); i++) {
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, mats[i].suffix);
			if ((r = load_mat(&c, name, mats[i].cols, mats[i].rows, false, mats[i].m,
					  NULL)) < 0)
				goto fail;
		}
		snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
		if ((r = load_vec(&c, name, dim, false, &L->attn_norm)) < 0)
			goto fail;
		snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
		if ((r = load_vec(&c, name, dim, false, &L->ffn_norm)) < 0)
			goto fail;
		/* Q/K/V biases: required by qwen2, optional in llama files (as llama.cpp) */
		const struct {
			const char *suffix;
			uint64_t n;
			float **v;
		} biases[] = {{"attn_q", q_dim, &L->bq},
			      {"attn_k", kv_dim, &L->bk},
			      {"attn_v", kv_dim, &L->bv}};
		for (size_t i = 0; i < 3; i++) {
			snprintf(name, sizeof(name), "blk.%d.%s.bias", l, biases[i].suffix);
			if ((r = load_vec(&c, name, biases[i].n, !c.arch->qkv_bias, biases[i].v)) <
			    0)
				goto fail;
		}
		if (L->bq || L->bk || L->bv)
			hp->qkv_bias = 1;
		L->q_attn = quantized(L->wq.type) || quantized(L->wk.type) || quantized(L->wv.type);
		L->q_wo = quantized(L->wo.type);
		L->q_ffn = quantized(L->gate.type) || quantized(L->up.type);
		L->q_down = quantized(L->down.type);
	}
	/* the float-activation reference: every matrix widened to F32 (the
	 * output separately when tied: the embedding lookup stays as stored) */
	if (p && p->dequant) {
		for (int32_t l = 0; l < hp->n_layer; l++) {
			struct layer *L = &m->layers[l];
			struct aw_kern_mat *ms[] = {&L->wq,   &L->wk, &L->wv,  &L->wo,
						    &L->gate, &L->up, &L->down};
			for (size_t i = 0; i < 7; i++)
				if ((r = widen(&c, ms[i])) < 0)
					goto fail;
			L->q_attn = L->q_wo = L->q_ffn = L->q_down = false;
		}
		if ((r = widen(&c, &m->output)) < 0)
			goto fail;
	}
	m->q_out = quantized(m->output.type);

	/* repack the matrices the kernels read faster interleaved */
	if (p && p->repack && !p->dequant) {
		/* one arena for every matrix repacked here */
		size_t total = 0;
		for (int32_t l = 0; l < hp->n_layer; l++) {
			const struct layer *L = &m->layers[l];
			const struct aw_kern_mat *ms[] = {&L->wq,   &L->wk, &L->wv,  &L->wo,
							  &L->gate, &L->up, &L->down};
			for (size_t i = 0; i < 7; i++)
				total += repack_bytes(ms[i]);
		}
		total += repack_bytes(hp->tied ? &m->tok_embd : &m->output);
		if (total)
			m->arena = aw_loader_mem_alloc(total, -1, AW_LOAD_HUGE_AUTO, &m->arena_mem);
		for (int32_t l = 0; l < hp->n_layer; l++) {
			struct layer *L = &m->layers[l];
			struct aw_kern_mat *ms[] = {&L->wq,   &L->wk, &L->wv,  &L->wo,
						    &L->gate, &L->up, &L->down};
			for (size_t i = 0; i < 7; i++)
				if ((r = repack(&c, ms[i])) < 0)
					goto fail;
		}
		if ((r = repack(&c, hp->tied ? &m->tok_embd : &m->output)) < 0)
			goto fail;
		if (hp->tied)
			m->output = m->tok_embd;
	}

	/* scratch */
	const size_t T = (size_t)m->max_batch;
	const size_t widest = dim > q_dim ? dim : q_dim;
	m->x = scratch(T * dim, sizeof(float));
	m->xb = scratch(T * dim, sizeof(float));
	m->xb2 = scratch(T * q_dim, sizeof(float));
	m->q = scratch(T * q_dim, sizeof(float));
	m->kk = scratch(T * kv_dim, sizeof(float));
	m->vv = scratch(T * kv_dim, sizeof(float));
	m->hb = scratch(T * ffn, sizeof(float));
	m->hb2 = scratch(T * ffn, sizeof(float));
	m->xq = scratch(T * (widest / AW_KERN_QK + 1), sizeof(struct aw_block_q8a));
	m->hq = scratch(T * (ffn / AW_KERN_QK + 1), sizeof(struct aw_block_q8a));
	m->out_rows = scratch(2 * T, sizeof(int32_t)); /* rows, then hidden indices */
	if (!m->x || !m->xb || !m->xb2 || !m->q || !m->kk || !m->vv || !m->hb || !m->hb2 ||
	    !m->xq || !m->hq || !m->out_rows) {
		r = aw_err_set(err, ENOMEM, "out of memory for %zu-token scratch", T);
		goto fail;
	}
	*ret_m = m;
	return 0;
fail:
	aw_model_free(m);
	return r;
}

void aw_model_free(struct aw_model *m)
{
	if (!m)
		return;
	if (m->layers) {
		for (int32_t l = 0; l < m->hp.n_layer; l++) {
			free(m->layers[l].attn_norm);
			free(m->layers[l].ffn_norm);
			free(m->layers[l].bq);
			free(m->layers[l].bk);
			free(m->layers[l].bv);
		}
	}
	for (int i = 0; i < m->n_owned; i++)
		free(m->owned[i]);
	aw_loader_mem_free(m->arena, &m->arena_mem);
	free(m->owned);
	free(m->layers);
	free(m->out_norm);
	free(m->rope_freqs);
	free(m->x);
	free(m->xb);
	free(m->xb2);
	free(m->q);
	free(m->kk);
	free(m->vv);
	free(m->hb);
	free(m->hb2);
	free(m->xq);
	free(m->hq);
	free(m->out_rows);
	free(m->row_y);
	free(m->blk);
	free(m->seq_next);
	free(m);
}

const struct aw_model_hparams *aw_model_hparams(const struct aw_model *m)
{
	return &m->hp;
}

const struct aw_kern *aw_model_kern(const struct aw_model *m)
{
	return m->k;
}

int32_t aw_model_max_batch(const struct aw_model *m)
{
	return m->max_batch;
}

uint64_t aw_model_weight_bytes(const struct aw_model *m)
{
	return m->weight_bytes;
}

uint64_t aw_model_decode_bytes(const struct aw_model *m)
{
	return m->decode_bytes;
}

int aw_model_repack_hugetlb(const struct aw_model *m)
{
	return m->arena && m->arena_mem.hugetlb && m->n_owned == 0;
}

uint64_t aw_model_repacked_bytes(const struct aw_model *m)
{
	return m->repacked_bytes;
}

uint64_t aw_model_owned_bytes(const struct aw_model *m)
{
	return m->owned_bytes;
}

int32_t aw_model_kv_dim(const struct aw_model *m)
{
	return m->hp.n_head_kv * m->hp.head_dim;
}

/* --- forward ------------------------------------------------------------------------- */

struct fwd {
	struct aw_model *m;
	struct aw_kv *kv;
	const struct aw_batch *b;
	struct aw_pool *pool;
	int32_t n_out;	 /* rows normed at the end (logit rows first) */
	int32_t n_logit; /* of those, rows projected to logits */
	float *logits;
	float *hidden;			      /* (n_hidden, dim) normed hidden states, or NULL */
	size_t blk_per_thread;		      /* block pointers per thread (K and V) */
	const struct aw_model_mirror *mirror; /* (n_mirror) extra K/V stores */
	int32_t n_mirror;
};

static inline void barrier(struct fwd *f, unsigned nth)
{
	if (nth > 1)
		aw_pool_barrier(f->pool);
}

/* y[t][r] for this thread's share of W's rows */
static inline void mm(const struct aw_kern *k, const struct aw_kern_mat *w,
		      const struct aw_kern_in *in, float *y, size_t ldy, unsigned ith, unsigned nth)
{
	uint32_t r0, r1;

	aw_pool_split(w->rows, AW_KERN_TILE, ith, nth, &r0, &r1);
	if (r0 < r1)
		k->matmul(w, in, y, ldy, r0, r1);
}

static void quant_rows(const struct aw_kern *k, const float *x, struct aw_block_q8a *xq,
		       size_t n_in, uint32_t t0, uint32_t t1)
{
	if (t1 > t0)
		k->quant_q8a(x + (size_t)t0 * n_in, xq + (size_t)t0 * (n_in / AW_KERN_QK),
			     (size_t)(t1 - t0) * n_in);
}

/* Write one K or V row into the cache in the cache's type. */
static void kv_store(const struct aw_kv *kv, void *dst, const float *src, size_t n)
{
	if (kv->c.type == AW_TYPE_F16) {
		aw_fp16 *h = dst;

		for (size_t i = 0; i < n; i++)
			h[i] = aw_f32_to_fp16(src[i]);
	} else {
		memcpy(dst, src, n * sizeof(float));
	}
}

static void forward_thread(void *ctx, unsigned ith, unsigned nth)
{
	struct fwd *f = ctx;
	struct aw_model *m = f->m;
	const struct aw_kern *k = m->k;
	const struct aw_model_hparams *hp = &m->hp;
	const struct aw_batch *b = f->b;
	struct aw_kv *kv = f->kv;
	const uint32_t n = (uint32_t)b->n;
	const size_t dim = (size_t)hp->dim, q_dim = (size_t)hp->n_head * (size_t)hp->head_dim,
		     kv_dim = (size_t)hp->n_head_kv * (size_t)hp->head_dim,
		     ffn = (size_t)hp->ffn_dim;
	const uint32_t gqa = (uint32_t)(hp->n_head / hp->n_head_kv);
	const uint32_t B = (uint32_t)kv->c.block_size;
	const float scale = 1.0f / sqrtf((float)hp->head_dim);
	const bool head_blocks = ((size_t)gqa * (size_t)hp->head_dim) % AW_KERN_QK == 0;
	const size_t es = kv->c.type == AW_TYPE_F16 ? 2 : 4; /* bytes per cached value */
	const void **kblk = m->blk + ith * f->blk_per_thread;
	const void **vblk = kblk + f->blk_per_thread / 2;
	uint32_t t0, t1;

	aw_pool_split(n, 1, ith, nth, &t0, &t1);

	/* token embeddings: dequantize one row per token */
	for (uint32_t t = t0; t < t1; t++)
		aw_kern_mat_row(&m->tok_embd, (uint32_t)b->token[t], m->x + t * dim);

	for (int32_t l = 0; l < hp->n_layer; l++) {
		const struct layer *L = &m->layers[l];

		/* attention norm, and the activations quantized once for Q, K, V */
		for (uint32_t t = t0; t < t1; t++)
			k->rmsnorm(m->xb + t * dim, m->x + t * dim, L->attn_norm, dim, hp->rms_eps);
		if (L->q_attn)
			quant_rows(k, m->xb, m->xq, dim, t0, t1);
		barrier(f, nth);

		/* Q, K, V: each weight read once for the whole batch */
		struct aw_kern_in in = {n, (uint32_t)dim, m->xb, m->xq};
		mm(k, &L->wq, &in, m->q, q_dim, ith, nth);
		mm(k, &L->wk, &in, m->kk, kv_dim, ith, nth);
		mm(k, &L->wv, &in, m->vv, kv_dim, ith, nth);
		barrier(f, nth);

		/* Q/K/V biases (qwen2), then RoPE on Q and K at each token's
		 * position; K and V into the cache */
		for (uint32_t t = t0; t < t1; t++) {
			if (L->bq)
				k->add(m->q + t * q_dim, m->q + t * q_dim, L->bq, q_dim);
			if (L->bk)
				k->add(m->kk + t * kv_dim, m->kk + t * kv_dim, L->bk, kv_dim);
			if (L->bv)
				k->add(m->vv + t * kv_dim, m->vv + t * kv_dim, L->bv, kv_dim);
		}
		if (t1 > t0) {
			k->rope(m->q + t0 * q_dim, q_dim, t1 - t0, b->pos + t0,
				(uint32_t)hp->n_head, &m->rope);
			k->rope(m->kk + t0 * kv_dim, kv_dim, t1 - t0, b->pos + t0,
				(uint32_t)hp->n_head_kv, &m->rope);
		}
		for (uint32_t t = t0; t < t1; t++) {
			kv_store(kv, aw_kv_k(kv, l, b->seq[t], b->pos[t]), m->kk + t * kv_dim,
				 kv_dim);
			kv_store(kv, aw_kv_v(kv, l, b->seq[t], b->pos[t]), m->vv + t * kv_dim,
				 kv_dim);
			for (int32_t i = 0; i < f->n_mirror; i++) {
				const struct aw_model_mirror *mr = &f->mirror[i];
				if (b->seq[t] != mr->src || b->pos[t] < mr->from ||
				    b->pos[t] >= mr->to)
					continue;
				kv_store(kv, aw_kv_k(kv, l, mr->dst, b->pos[t]), m->kk + t * kv_dim,
					 kv_dim);
				kv_store(kv, aw_kv_v(kv, l, mr->dst, b->pos[t]), m->vv + t * kv_dim,
					 kv_dim);
			}
		}
		barrier(f, nth);

		/* attention of each token over its own sequence, positions 0..pos
		 * (causal); one item per (token, KV head) */
		uint32_t i0, i1, cur_t = UINT32_MAX;
		aw_pool_split(n * (uint32_t)hp->n_head_kv, 1, ith, nth, &i0, &i1);
		for (uint32_t it = i0; it < i1; it++) {
			const uint32_t t = it / (uint32_t)hp->n_head_kv,
				       h = it % (uint32_t)hp->n_head_kv;
			const uint32_t n_kv = (uint32_t)b->pos[t] + 1;

			if (t != cur_t) {
				const uint32_t nb = (n_kv + B - 1) / B;
				for (uint32_t j = 0; j < nb; j++) {
					int32_t blk = aw_kv_block(kv, b->seq[t], (int32_t)(j * B));
					kblk[j] = aw_kv_block_k(kv, blk, l);
					vblk[j] = aw_kv_block_v(kv, blk, l);
				}
				cur_t = t;
			}
			const struct aw_kern_kv K = {kblk, B, kv->c.type, kv->row_bytes,
						     h * (size_t)hp->head_dim * es};
			const struct aw_kern_kv V = {vblk, B, kv->c.type, kv->row_bytes,
						     h * (size_t)hp->head_dim * es};
			const size_t off = t * q_dim + (size_t)h * gqa * (size_t)hp->head_dim;
			k->attn(m->xb2 + off, (size_t)hp->head_dim, m->q + off,
				(size_t)hp->head_dim, gqa, &K, &V, n_kv, (uint32_t)hp->head_dim,
				scale);
			if (L->q_wo && head_blocks)
				k->quant_q8a(m->xb2 + off, m->xq + off / AW_KERN_QK,
					     (size_t)gqa * (size_t)hp->head_dim);
		}
		barrier(f, nth);

		/* output projection (activations quantized above when a KV head's
		 * query heads fill whole Q8A blocks, else here) */
		if (L->q_wo && !head_blocks) {
			quant_rows(k, m->xb2, m->xq, q_dim, t0, t1);
			barrier(f, nth);
		}
		in = (struct aw_kern_in){n, (uint32_t)q_dim, m->xb2, m->xq};
		mm(k, &L->wo, &in, m->xb, dim, ith, nth);
		barrier(f, nth);

		/* residual, FFN norm */
		for (uint32_t t = t0; t < t1; t++) {
			k->add(m->x + t * dim, m->x + t * dim, m->xb + t * dim, dim);
			k->rmsnorm(m->xb + t * dim, m->x + t * dim, L->ffn_norm, dim, hp->rms_eps);
		}
		if (L->q_ffn)
			quant_rows(k, m->xb, m->xq, dim, t0, t1);
		barrier(f, nth);

		/* SwiGLU: down(silu(gate x) * up x). Each thread owns a slice of
		 * the hidden rows, 32 at a time, for gate and up alike, so it can
		 * apply silu*up and quantize its own activation blocks (Q8A blocks
		 * are independent) without waiting for the others. */
		in = (struct aw_kern_in){n, (uint32_t)dim, m->xb, m->xq};
		uint32_t f0, f1;
		aw_pool_split((uint32_t)ffn, AW_KERN_QK, ith, nth, &f0, &f1);
		if (f0 < f1) {
			k->matmul(&L->gate, &in, m->hb, ffn, f0, f1);
			k->matmul(&L->up, &in, m->hb2, ffn, f0, f1);
			for (uint32_t t = 0; t < n; t++) {
				float *h = m->hb + t * ffn + f0;
				k->silu_mul(h, h, m->hb2 + t * ffn + f0, f1 - f0);
				if (L->q_down)
					k->quant_q8a(
						h, m->hq + t * (ffn / AW_KERN_QK) + f0 / AW_KERN_QK,
						f1 - f0);
			}
		}
		barrier(f, nth);
		in = (struct aw_kern_in){n, (uint32_t)ffn, m->hb, m->hq};
		mm(k, &L->down, &in, m->xb, dim, ith, nth);
		barrier(f, nth);

		/* residual (the next layer's norm reads the same tokens: no barrier) */
		for (uint32_t t = t0; t < t1; t++)
			k->add(m->x + t * dim, m->x + t * dim, m->xb + t * dim, dim);
	}
	barrier(f, nth);

	/* final norm of the tokens that want logits, then the output projection */
	uint32_t o0, o1;
	aw_pool_split((uint32_t)f->n_out, 1, ith, nth, &o0, &o1);
	for (uint32_t o = o0; o < o1; o++)
		k->rmsnorm(m->xb + o * dim, m->x + (size_t)m->out_rows[o] * dim, m->out_norm, dim,
			   hp->rms_eps);
	if (m->q_out)
		quant_rows(k, m->xb, m->xq, dim, o0,
			   o1 < (uint32_t)f->n_logit ? o1 : (uint32_t)f->n_logit);
	if (f->hidden)
		for (uint32_t o = o0; o < o1; o++)
			if (m->out_rows[m->max_batch + o] >= 0)
				memcpy(f->hidden + (size_t)m->out_rows[m->max_batch + o] * dim,
				       m->xb + o * dim, dim * sizeof(float));
	barrier(f, nth);
	if (f->n_logit > 0) {
		struct aw_kern_in in = {(uint32_t)f->n_logit, (uint32_t)dim, m->xb, m->xq};
		mm(k, &m->output, &in, f->logits, (size_t)hp->n_vocab, ith, nth);
	}
}

static int forward(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
		   const struct aw_model_mirror *mirror, int32_t n_mirror, struct aw_pool *pool,
		   float *logits, float *hidden);

static void forward_one(void *ctx, unsigned ith, unsigned nth)
{
	forward_thread(ctx, ith, nth);
}

int aw_model_forward(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
		     struct aw_pool *pool, float *logits)
{
	return aw_model_forward_ex(m, kv, b, pool, logits, NULL);
}

/* what token i of 'b' asks for (AW_MODEL_OUT_* bits); without 'hidden' any
 * nonzero flag means logits, as aw_model_forward() documents */
static int out_kind(const struct aw_batch *b, int32_t i, const float *hidden)
{
	if (!b->logits)
		return i == b->n - 1 ? AW_MODEL_OUT_LOGITS : 0;
	if (!hidden)
		return b->logits[i] ? AW_MODEL_OUT_LOGITS : 0;
	return b->logits[i] & (AW_MODEL_OUT_LOGITS | AW_MODEL_OUT_HIDDEN);
}

int aw_model_forward_ex(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
			struct aw_pool *pool, float *logits, float *hidden)
{
	return forward(m, kv, b, NULL, -1, pool, logits, hidden);
}

int aw_model_forward_shared(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
			    const struct aw_model_mirror *mirror, int32_t n_mirror,
			    struct aw_pool *pool, float *logits, float *hidden)
{
	if (n_mirror < 0 || (n_mirror > 0 && !mirror))
		return -EINVAL;
	return forward(m, kv, b, mirror, n_mirror, pool, logits, hidden);
}

/* the forward pass; n_mirror < 0: reserve blocks here (copy-on-write),
 * else the caller reserved them (aw_model_forward_shared()) */
static int forward(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
		   const struct aw_model_mirror *mirror, int32_t n_mirror, struct aw_pool *pool,
		   float *logits, float *hidden)
{
	const unsigned nth = pool ? aw_pool_size(pool) : 1;
	int32_t n_out = 0, n_logit = 0, n_hidden = 0;
	int r;

	if (!b || b->n <= 0 || b->n > m->max_batch || !b->token || !b->pos || !b->seq)
		return -EINVAL;
	if (kv->c.n_layer != m->hp.n_layer || kv->c.kv_dim != aw_model_kv_dim(m))
		return -EINVAL;

	/* one-time sizing for this cache's shape (not per step) */
	const size_t per_thread = 2 * (size_t)kv->max_blocks_per_seq;
	if (m->blk_cap < per_thread * nth) {
		const void **nb = realloc(m->blk, per_thread * nth * sizeof(void *));
		if (!nb)
			return -ENOMEM;
		m->blk = nb;
		m->blk_cap = per_thread * nth;
	}
	if (m->seq_cap < kv->c.max_seqs) {
		int32_t *ns = realloc(m->seq_next, (size_t)kv->c.max_seqs * sizeof(int32_t));
		if (!ns)
			return -ENOMEM;
		m->seq_next = ns;
		m->seq_cap = kv->c.max_seqs;
	}

	/* validate: ids in range, each sequence continues where its cache ends */
	for (int32_t i = 0; i < b->n; i++) {
		if (b->token[i] < 0 || b->token[i] >= m->hp.n_vocab || b->seq[i] < 0 ||
		    b->seq[i] >= kv->c.max_seqs)
			return -EINVAL;
		m->seq_next[b->seq[i]] = aw_kv_seq_len(kv, b->seq[i]);
	}
	for (int32_t i = 0; i < b->n; i++) {
		if (b->pos[i] != m->seq_next[b->seq[i]])
			return -EINVAL;
		if (b->pos[i] >= kv->c.max_seq_len)
			return -ERANGE;
		m->seq_next[b->seq[i]]++;
		if (out_kind(b, i, hidden) & AW_MODEL_OUT_LOGITS)
			n_logit++;
	}
	/* output rows: logit rows first (the projection reads them contiguous),
	 * then rows that want only their hidden state; hidden rows in batch order */
	int32_t *hid = m->out_rows + m->max_batch;
	int32_t o_l = 0, o_h = n_logit;
	for (int32_t i = 0; i < b->n; i++) {
		const int kind = out_kind(b, i, hidden);
		int32_t o;
		if (!kind)
			continue;
		o = (kind & AW_MODEL_OUT_LOGITS) ? o_l++ : o_h++;
		m->out_rows[o] = i;
		hid[o] = (kind & AW_MODEL_OUT_HIDDEN) ? n_hidden++ : -1;
	}
	n_out = o_h;
	if (n_logit > 0 && !logits)
		return -EINVAL;
	/* reserve each sequence's blocks once (the first token of it), or check
	 * the caller did */
	for (int32_t i = 0; i < b->n && n_mirror < 0; i++) {
		const int32_t s = b->seq[i];
		if (b->pos[i] == aw_kv_seq_len(kv, s) &&
		    (r = aw_kv_seq_reserve(kv, s, m->seq_next[s])) < 0)
			return r;
	}
	for (int32_t i = 0; i < b->n && n_mirror >= 0; i++)
		if (b->pos[i] >= aw_kv_seq_n_blocks(kv, b->seq[i]) * kv->c.block_size)
			return -EINVAL;
	for (int32_t i = 0; i < n_mirror; i++) {
		const struct aw_model_mirror *mr = &mirror[i];
		if (mr->src < 0 || mr->src >= kv->c.max_seqs || mr->dst < 0 ||
		    mr->dst >= kv->c.max_seqs || mr->dst == mr->src || mr->from < 0 ||
		    mr->to > aw_kv_seq_n_blocks(kv, mr->dst) * kv->c.block_size)
			return -EINVAL;
	}

	struct fwd f = {m,
			kv,
			b,
			pool,
			n_out,
			n_logit,
			logits,
			hidden,
			per_thread,
			mirror,
			n_mirror > 0 ? n_mirror : 0};
	if (nth > 1)
		aw_pool_run(pool, forward_one, &f);
	else
		forward_thread(&f, 0, 1);

	for (int32_t i = 0; i < b->n; i++)
		aw_kv_seq_set_len(kv, b->seq[i], m->seq_next[b->seq[i]]);
	return n_logit;
}

int aw_model_logits_rows(struct aw_model *m, const float *hidden, const int32_t *rows,
			 int32_t n_rows, float *out)
{
	const struct aw_kern *k = m->k;
	const size_t dim = (size_t)m->hp.dim;

	for (int32_t i = 0; i < n_rows; i++)
		if (rows[i] < 0 || rows[i] >= m->hp.n_vocab)
			return -EINVAL;
	if (!m->row_y) {
		m->row_y = malloc(sizeof(float) * (size_t)m->hp.n_vocab);
		if (!m->row_y)
			return -ENOMEM;
	}
	/* the same activation rounding as the forward pass's projection */
	memcpy(m->xb, hidden, dim * sizeof(float));
	if (m->q_out)
		quant_rows(k, m->xb, m->xq, dim, 0, 1);
	const struct aw_kern_in in = {1, (uint32_t)dim, m->xb, m->xq};
	for (int32_t i = 0; i < n_rows; i++) {
		/* the kernels compute whole tiles of AW_KERN_TILE rows */
		const uint32_t r0 = (uint32_t)rows[i] / AW_KERN_TILE * AW_KERN_TILE;
		uint32_t r1 = r0 + AW_KERN_TILE;
		if (r1 > m->output.rows)
			r1 = m->output.rows;
		k->matmul(&m->output, &in, m->row_y, (size_t)m->hp.n_vocab, r0, r1);
		out[i] = m->row_y[rows[i]];
	}
	return 0;
}
