/* model.h — the llama / qwen2 forward pass over a batch of tokens.
 *
 * A model is loaded from an open GGUF file (inference/gguf.h) plus a pointer
 * to its tensor-data region, so that whoever holds the bytes decides where
 * they live: the file mapping (aw_gguf_data()), or the io_uring loader's
 * hugepage buffer (inference/loader.h). Loading checks everything before
 * the first forward pass: the architecture ("llama" or "qwen2"; others are
 * refused by name), the hyper-parameters, every required tensor's presence,
 * shape and type, and that its bytes lie inside the region.
 *
 * Architectures: "llama" (Llama 2/3/3.2, TinyLlama, Mistral, SmolLM2: RoPE on
 * adjacent pairs) and "qwen2" (Qwen2/2.5: biases on Q, K and V, required;
 * RoPE in NEOX mode, pairs (i, i + n_rot/2)). Keys are read under the
 * architecture's prefix ("llama." below stands for "qwen2." in a qwen2 file).
 *
 *   metadata (llama.* / qwen2.*)            default
 *   general.architecture                    "llama" or "qwen2"
 *   llama.embedding_length        dim       required
 *   llama.block_count             n_layer   required
 *   llama.feed_forward_length     ffn_dim   required
 *   llama.attention.head_count    n_head    required
 *   llama.attention.head_count_kv n_head_kv n_head
 *   llama.attention.layer_norm_rms_epsilon  1e-5
 *   llama.rope.freq_base                    10000
 *   llama.rope.dimension_count    n_rot     head_dim (= dim / n_head)
 *   llama.context_length          n_ctx     2048
 *   llama.vocab_size              n_vocab   token_embd's rows
 *   tokenizer.ggml.tokens (if present)      count must equal n_vocab
 *
 *   tensor (ggml order: ne[0] contiguous)   shape
 *   token_embd.weight                       [dim, n_vocab]
 *   output_norm.weight                      [dim]
 *   output.weight                           [dim, n_vocab]; absent: tied to token_embd
 *   rope_freqs.weight (optional)            [n_rot/2] frequency divisors (Llama 3)
 *   blk.N.attn_norm.weight                  [dim]
 *   blk.N.attn_q.weight                     [dim, n_head*head_dim]
 *   blk.N.attn_k.weight, attn_v.weight      [dim, n_head_kv*head_dim]
 *   blk.N.attn_{q,k,v}.bias                 [n_head*head_dim], [kv], [kv]: qwen2
 *                                           (required), llama (optional)
 *   blk.N.attn_output.weight                [n_head*head_dim, dim]
 *   blk.N.ffn_norm.weight                   [dim]
 *   blk.N.ffn_gate.weight, ffn_up.weight    [dim, ffn_dim]
 *   blk.N.ffn_down.weight                   [ffn_dim, dim]
 *
 * Matrices may be F32, F16, BF16, Q8_0 or Q4_0, mixed freely; vectors (norms,
 * rope factors) any of the same, converted to floats at load.
 *
 * The forward pass takes a batch: n tokens, each with its sequence and
 * position, any mix of prefill chunks and single decode tokens of several
 * sequences, and writes logits only for the tokens that ask. Every matrix is
 * read once per batch for all its tokens. The work of one forward pass runs
 * on a thread pool (inference/pool.h) in one aw_pool_run() with spin barriers
 * between the steps; each matrix product is split by output rows; nothing is
 * allocated: scratch is sized at load for max_batch tokens. All arithmetic
 * goes through the kernel table (inference/kern.h) chosen at load.
 */
#ifndef AW_MODEL_H
#define AW_MODEL_H

#include <stdint.h>
#include <stddef.h>

#include "err.h"

struct aw_gguf;
struct aw_kern;
struct aw_kv;
struct aw_pool;

/* Hyper-parameters, as read from the metadata. */
struct aw_model_hparams {
	int32_t n_vocab;   /* tokens */
	int32_t dim;	   /* embedding width */
	int32_t n_layer;   /* transformer blocks */
	int32_t n_head;	   /* query heads */
	int32_t n_head_kv; /* key/value heads (grouped-query attention) */
	int32_t head_dim;  /* dim / n_head */
	int32_t ffn_dim;   /* hidden width of the SwiGLU feed-forward */
	int32_t n_rot;	   /* leading values of a head that RoPE turns */
	int32_t n_ctx;	   /* training context length */
	float rms_eps;	   /* RMSNorm epsilon */
	float rope_base;   /* RoPE theta base */
	int tied;	   /* 1 when output.weight is absent and token_embd serves */
	int rope_factors;  /* 1 when rope_freqs.weight is present */
	const char *arch;  /* general.architecture: "llama" or "qwen2" (static string) */
	int qkv_bias;	   /* 1 when Q, K and V have biases (qwen2) */
};

struct aw_model_params {
	const struct aw_kern *kern; /* kernel table; NULL: aw_kern_select(NULL) */
	int32_t max_batch;	    /* most tokens per forward pass; 0: 512 */
	int repack;		    /* 1: repack Q8_0/Q4_0 matrices into the kernels'
				     * interleaved layout at load (uses memory of the
				     * same size); 0: read them in place */
	int dequant;		    /* 1: widen every quantized matrix to F32 at load,
				     * so products use unquantized activations: the
				     * reference that measures what activation
				     * quantization costs (4 bytes per weight) */
	int scales_checked;	    /* 1: the caller already ran aw_model_check_tensor()
				     * on every tensor (e.g. from the loader's on_tensor
				     * callback, overlapped with the reads): skip it here */
	const uint8_t *prepacked;   /* NULL, or one flag per tensor of the file
				     * (aw_gguf_tensor_at() index): 1 = its bytes in
				     * 'data' are already in the kernels' layout
				     * (struct aw_model_repacker); with repack = 1 */
};

/* Repacking in place while the loader reads (inference/loader.h): hand
 * aw_model_repacker_tensor() to the loader as its writable tensor callback
 * (on_tensor_rw, tensor_ctx = the repacker). For each tensor the model would
 * repack (the layers' seven matrices and an untied output.weight, Q8_0 or
 * Q4_0, rows a multiple of 16 so the interleaved layout has the file
 * layout's size) it rewrites the bytes in place, 16 rows at a time through
 * a small scratch buffer (tensors at an address the kernels' vector loads
 * would split, i.e. not AW_KERN_ALIGN-aligned, are left alone), so the
 * repacked weights stay in the loader's
 * (hugepage) memory and no second copy is made; then set
 * aw_model_params.prepacked = repacker.done. Matrices it skips are repacked
 * by aw_model_load() as usual. Each tensor's block scales are checked
 * (aw_model_check_tensor) before it is rewritten: a bad one cancels the load
 * with rc = -EINVAL and msg naming it. */
struct aw_model_repacker {
	const struct aw_gguf *g;
	uint8_t *done;	     /* (n_tensors) 1 = repacked in place */
	uint64_t n_done;     /* tensors repacked */
	uint64_t bytes_done; /* their bytes */
	double seconds;	     /* spent repacking (on the loading thread) */
	int rc;		     /* first error (-errno), 0 */
	char msg[160];	     /* with rc = -EINVAL: the tensor that failed its check */
};

/* Returns 0 or -ENOMEM. */
int aw_model_repacker_init(struct aw_model_repacker *rp, const struct aw_gguf *g);
void aw_model_repacker_fini(struct aw_model_repacker *rp);

/* The loader's aw_load_tensor_rw_fn: 'ctx' is the repacker, 'idx' the tensor
 * index, data[r] the tensor in replica r. Returns 0, or nonzero (cancelling
 * the load) when out of memory or the index is out of range (rp->rc says). */
int aw_model_repacker_tensor(void *ctx, uint32_t idx, void *const *data, unsigned n_replicas,
			     uint64_t size);

/* A batch for aw_model_forward(). Tokens of one sequence appear in position
 * order, and the first of them continues the sequence: its position equals
 * the number of positions the KV cache holds for it (drop positions with
 * aw_kv_seq_drop() to rewrite them). */
struct aw_batch {
	int32_t n;	      /* tokens, 1..max_batch */
	const int32_t *token; /* (n) token ids */
	const int32_t *pos;   /* (n) positions */
	const int32_t *seq;   /* (n) sequence ids (KV cache sequences) */
	const int8_t *logits; /* (n) nonzero: produce this token's logits; NULL: only
				* the last token's */
};

struct aw_model;

/* Build a model from the parsed file 'g' whose tensor-data region is 'data'
 * ('size' bytes; it must outlive the model). Returns 0 and sets *ret_m (free
 * with aw_model_free()), or -EINVAL with 'err' naming the problem (wrong
 * architecture, a missing or malformed key, a missing tensor, a wrong shape,
 * an unsupported type, data outside the region), -ENOMEM, or -ENODEV when no
 * kernel table is available. */
int aw_model_load(const struct aw_gguf *g, const void *data, size_t size,
		  const struct aw_model_params *p, struct aw_model **ret_m, struct aw_err *err);

/* Check tensor 'idx' of 'g' whose bytes are at 'data': every block scale of a
 * quantized type is finite (aw_quant_check_row()). Returns 0, or -EINVAL with
 * 'err' naming the tensor, the row and the block. aw_model_load() runs it on
 * each tensor it uses unless params.scales_checked; a loader can run it as
 * each tensor lands (any thread; no state). */
int aw_model_check_tensor(const struct aw_gguf *g, uint64_t idx, const void *data,
			  struct aw_err *err);

/* Release 'm' (NULL is fine). */
void aw_model_free(struct aw_model *m);

/* The hyper-parameters. */
const struct aw_model_hparams *aw_model_hparams(const struct aw_model *m);

/* The kernel table the model calls. */
const struct aw_kern *aw_model_kern(const struct aw_model *m);

/* Most tokens per batch. */
int32_t aw_model_max_batch(const struct aw_model *m);

/* Bytes of all tensors the model uses as stored in the file. */
uint64_t aw_model_weight_bytes(const struct aw_model *m);

/* Bytes one decode step of one token reads from the weights: every matrix
 * and vector, plus one row of token_embd (all of it when tied, since the
 * output projection reads it). */
uint64_t aw_model_decode_bytes(const struct aw_model *m);

/* Bytes of matrices the kernels read in the interleaved layout: repacked at
 * load (owned) or in place while loading (params.prepacked). */
uint64_t aw_model_repacked_bytes(const struct aw_model *m);

/* 1 when every matrix the model repacked itself (aw_model_owned_bytes) sits
 * in hugetlb pages; 0 when they are in ordinary pages (THP advice only) or
 * there are none. */
int aw_model_repack_hugetlb(const struct aw_model *m);

/* Bytes of repacked weights the model owns (0 without repacking). */
uint64_t aw_model_owned_bytes(const struct aw_model *m);

/* Floats per K (or V) row of the KV cache: n_head_kv * head_dim. */
int32_t aw_model_kv_dim(const struct aw_model *m);

/* Run the batch: write K/V rows for every token into 'kv' (reserving blocks
 * as needed), and the logits of the tokens that ask into 'logits' ((n_out,
 * n_vocab) floats, in batch order). 'pool' may be NULL (one thread). Returns
 * n_out, or -EINVAL (a token id, sequence id or position out of order, n out
 * of range), -ERANGE (a position beyond the cache's context) or -ENOSPC (KV
 * pool exhausted); nothing is computed on error, although blocks reserved
 * for earlier sequences of the batch stay reserved. */
int aw_model_forward(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
		     struct aw_pool *pool, float *logits);

/* What a token of aw_model_forward_ex()'s batch asks for (bits of
 * b->logits[i]): its logits, and/or its final hidden state (the residual
 * stream after output_norm: what embeddings pool, llama.cpp's "result_norm"). */
#define AW_MODEL_OUT_LOGITS 0x1
#define AW_MODEL_OUT_HIDDEN 0x2

/* aw_model_forward() that also writes, when 'hidden' is not NULL, the hidden
 * state of every token whose b->logits has AW_MODEL_OUT_HIDDEN into 'hidden'
 * ((n_hidden, dim) floats, in batch order); only tokens with
 * AW_MODEL_OUT_LOGITS get logits (the output projection is skipped for the
 * others). 'logits' may be NULL when no token asks for logits. Returns the
 * number of logit rows written, or -errno as aw_model_forward(). */
int aw_model_forward_ex(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
			struct aw_pool *pool, float *logits, float *hidden);

/* K/V rows a forward pass writes for sequence 'src' at positions [from, to)
 * that it also writes into sequence 'dst' (whose block there is its own). */
struct aw_model_mirror {
	int32_t src, dst; /* sequence ids */
	int32_t from, to; /* positions */
};

/* aw_model_forward_ex() over blocks the caller prepared: every position the
 * batch writes is already reserved (aw_kv_seq_reserve()), and sequences of
 * the batch may share the blocks it writes on purpose (aw_kv_seq_share():
 * CLASSIFY's label tokens read the prompt written in the same pass), so the
 * pass reserves and copies nothing. Per layer, every token's K/V (and the
 * mirror[0..n_mirror) copies) is stored before any token's attention reads
 * the cache. Returns as aw_model_forward_ex(), or -EINVAL also when a
 * position is not reserved or a mirror is out of range. */
int aw_model_forward_shared(struct aw_model *m, struct aw_kv *kv, const struct aw_batch *b,
			    const struct aw_model_mirror *mirror, int32_t n_mirror,
			    struct aw_pool *pool, float *logits, float *hidden);

/* Logits of vocabulary rows rows[0..n_rows) for one hidden state 'hidden'
 * (dim floats from aw_model_forward_ex()): out[i] equals entry rows[i] of the
 * full logits, computed from only those rows of the output matrix (each
 * with the kernel tile around it). Runs on the calling thread; not while a
 * forward pass of 'm' runs. Returns 0, -EINVAL (a row out of range) or
 * -ENOMEM. */
int aw_model_logits_rows(struct aw_model *m, const float *hidden, const int32_t *rows,
			 int32_t n_rows, float *out);

#endif
