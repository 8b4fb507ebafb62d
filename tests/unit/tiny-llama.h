/* tiny-llama.h — test fixture: a small llama-architecture GGUF image with
 * seeded random weights, written with the project's GGUF writer, with knobs
 * for the cases the model loader must accept (mixed types, tied output, Llama
 * 3 rope factors, GQA) and refuse (another architecture, a missing tensor, a
 * wrong shape, an unsupported type, a missing key).
 *
 * Header-only so that test-model.c and test-aw-infer.c share it. */
#ifndef TINY_LLAMA_H
#define TINY_LLAMA_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

struct tiny_cfg {
	uint32_t vocab, dim, n_layer, n_head, n_head_kv, ffn, ctx;
	uint32_t type;	    /* type of every matrix */
	uint32_t embd_type; /* type of token_embd (and of output) */
	int mixed;	    /* cycle matrix types per layer and tensor */
	int tied;	    /* no output.weight */
	int rope_freqs;	    /* add rope_freqs.weight */
	uint64_t seed;
	const char *arch;      /* "llama" unless set */
	const char *omit;      /* tensor name to leave out */
	const char *reshape;   /* tensor name to give a wrong shape */
	const char *retype;    /* tensor name to store as Q8_1 (unsupported) */
	const char *omit_key;  /* metadata key to leave out */
	int with_tokenizer;    /* add a small "llama" vocabulary */
	int qkv_bias;	       /* add blk.N.attn_{q,k,v}.bias (qwen2 writes them) */
	uint32_t tok_extra;    /* tokenizer tokens beyond vocab (must be refused) */
	const char *nan_scale; /* tensor whose block 1 gets a NaN fp16 scale */
	int tok_json;	       /* with_tokenizer: all 256 byte tokens, then (1) JSON
				* pieces or (2) nothing more (vocab >= 259 + 40) */
};

/* qwen2 files: biases on Q/K/V, keys under "qwen2.", NEOX RoPE */
static inline int tiny_is_qwen2(const struct tiny_cfg *c)
{
	return c->arch && strcmp(c->arch, "qwen2") == 0;
}

static inline void tiny_default(struct tiny_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->vocab = 96;
	c->dim = 64;
	c->n_layer = 2;
	c->n_head = 4;
	c->n_head_kv = 2;
	c->ffn = 96;
	c->ctx = 128;
	c->type = AW_TYPE_F32;
	c->embd_type = AW_TYPE_F32;
	c->seed = 1;
}

static inline uint64_t tiny_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* uniform in [-a, a) */
static inline float tiny_uniform(uint64_t *s, float a)
{
	return a * (2.0f * (float)(tiny_rand(s) >> 40) * 0x1p-24f - 1.0f);
}

struct tiny_img {
	struct aw_gguf_writer *w;
	void *bufs[128]; /* tensor bytes, kept until the write */
	int n;
};

static inline int tiny_add(struct tiny_img *im, const struct tiny_cfg *c, uint64_t *rs,
			   const char *name, uint32_t type, uint64_t ne0, uint64_t ne1, int is_norm)
{
	uint64_t ne[2] = {ne0, ne1};
	uint32_t nd = ne1 ? 2 : 1;

	if (c->omit && strcmp(c->omit, name) == 0)
		return 0;
	if (c->reshape && strcmp(c->reshape, name) == 0)
		ne[0] += 32;
	if (c->retype && strcmp(c->retype, name) == 0)
		type = AW_TYPE_Q8_1;
	const uint64_t n = ne[0] * (ne1 ? ne1 : 1);
	const size_t size = aw_type_row_size(type, ne[0]) * (ne1 ? ne1 : 1);
	float *f = malloc(sizeof(float) * n);
	void *q = calloc(1, size);
	if (!f || !q)
		return -1;
	/* norms near 1, rope factors in [1, 4], matrices scaled by 1/sqrt(cols),
	 * biases (is_norm 3) uniform in [-0.5, 0.5) */
	const float a = 1.7f / sqrtf((float)ne[0]);
	for (uint64_t i = 0; i < n; i++)
		f[i] = is_norm == 1   ? 1.0f + tiny_uniform(rs, 0.2f)
		       : is_norm == 2 ? 1.0f + (float)(i % 4)
		       : is_norm == 3 ? tiny_uniform(rs, 0.5f)
				      : tiny_uniform(rs, a);
	if (type == AW_TYPE_Q8_1) {
		/* not quantizable here: any bytes do, the loader must refuse it */
	} else {
		for (uint64_t r = 0; r < (ne1 ? ne1 : 1); r++)
			aw_quant_row(type, f + r * ne[0],
				     (uint8_t *)q + r * aw_type_row_size(type, ne[0]), ne[0]);
	}
	if (c->nan_scale && strcmp(c->nan_scale, name) == 0 && aw_type_info(type)->block > 1) {
		const uint16_t nan = 0x7e00; /* block 1's d (the first field of the legacy types) */
		memcpy((uint8_t *)q + aw_type_info(type)->size, &nan, 2);
	}
	free(f);
	im->bufs[im->n++] = q;
	return aw_gguf_writer_add_tensor(im->w, name, type, nd, ne, q, size);
}

/* 'k' is "llama.<suffix>": written under the file's architecture's prefix
 * (omit_key names the llama spelling whatever the architecture). */
static inline void tiny_key_u32(struct tiny_img *im, const struct tiny_cfg *c, const char *k,
				uint32_t v)
{
	char key[96];

	snprintf(key, sizeof(key), "%s%s", c->arch ? c->arch : "llama", strchr(k, '.'));
	if (!c->omit_key || strcmp(c->omit_key, k) != 0)
		aw_gguf_writer_set_u32(im->w, key, v);
}

static inline void tiny_key_f32(struct tiny_img *im, const struct tiny_cfg *c, const char *k,
				float v)
{
	char key[96];

	snprintf(key, sizeof(key), "%s%s", c->arch ? c->arch : "llama", strchr(k, '.'));
	aw_gguf_writer_set_f32(im->w, key, v);
}

/* A small SentencePiece-style vocabulary: <unk> <s> </s>, 32 byte tokens
 * (<0x20>..), then words; filled up to c->vocab with "tN". */
static inline void tiny_tokenizer(struct tiny_img *im, const struct tiny_cfg *c)
{
	const uint32_t nv = c->vocab + c->tok_extra;
	const char **toks = calloc(nv, sizeof(char *));
	float *scores = calloc(nv, sizeof(float));
	int32_t *types = calloc(nv, sizeof(int32_t));
	char(*names)[16] = calloc(nv, 16);
	static const char *words[] = {"\xe2\x96\x81",
				      "a",
				      "b",
				      "c",
				      "\xe2\x96\x81hello",
				      "\xe2\x96\x81world",
				      "o",
				      "l",
				      "e",
				      "h",
				      "w",
				      "r",
				      "d"};
	/* tok_json 1: pieces that span JSON's boundaries (U+2581 is a space) */
	static const char *json[] = {
		"{\"",
		"\":\xe2\x96\x81",
		"\"}",
		",\xe2\x96\x81\"",
		"\"name\":\xe2\x96\x81\"",
		"name",
		"arguments",
		"\"arguments\"",
		"true",
		"false",
		"null",
		"12",
		"ab",
		"abc",
		"}}",
		"\"]",
		"[\"",
		"0.",
		"\xe2\x96\x81{",
		"query",
		"\n",
		"<tool_call>",
		"</tool_call>",
		"\":",
		"ok",
		"\",\xe2\x96\x81\"",
		"er",
		"in",
		"on",
		"\xe2\x96\x81\"",
	};
	const char **wl = c->tok_json == 1 ? json : words;
	const size_t nw = c->tok_json == 1   ? sizeof(json) / sizeof(json[0])
			  : c->tok_json == 2 ? 0
					     : sizeof(words) / sizeof(words[0]);
	uint32_t i = 0;

	toks[i] = "<unk>", types[i++] = 2;
	toks[i] = "<s>", types[i++] = 3;
	toks[i] = "</s>", types[i++] = 3;
	for (uint32_t b = 0; b < 256 && i < nv - 20; b += c->tok_json ? 1 : 8) {
		snprintf(names[i], 16, "<0x%02X>", b);
		toks[i] = names[i], types[i++] = 6;
	}
	for (size_t w = 0; w < nw && i < nv; w++) {
		toks[i] = wl[w], scores[i] = -(float)w, types[i++] = 1;
	}
	for (; i < nv; i++) {
		snprintf(names[i], 16, "t%u", i);
		toks[i] = names[i], scores[i] = -100.0f - (float)i, types[i] = 1;
	}
	aw_gguf_writer_set_str(im->w, "tokenizer.ggml.model", "llama");
	aw_gguf_writer_set_arr_str(im->w, "tokenizer.ggml.tokens", nv, toks, NULL);
	aw_gguf_writer_set_arr(im->w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32, nv, scores);
	aw_gguf_writer_set_arr(im->w, "tokenizer.ggml.token_type", AW_GGUF_TYPE_INT32, nv, types);
	aw_gguf_writer_set_u32(im->w, "tokenizer.ggml.bos_token_id", 1);
	aw_gguf_writer_set_u32(im->w, "tokenizer.ggml.eos_token_id", 2);
	aw_gguf_writer_set_u32(im->w, "tokenizer.ggml.unknown_token_id", 0);
	free(toks);
	free(scores);
	free(types);
	free(names);
}

/* Build the image; write it to 'path' if not NULL, else into *ret_buf and *ret_len
 * (malloc'd). Returns 0 or -1. */
static inline int tiny_write(const struct tiny_cfg *c, const char *path, void **ret_buf,
			     size_t *ret_len)
{
	static const uint32_t cycle[] = {AW_TYPE_Q8_0, AW_TYPE_Q4_0, AW_TYPE_F16, AW_TYPE_BF16,
					 AW_TYPE_F32};
	struct tiny_img im = {0};
	uint64_t rs = c->seed * 0x9e3779b97f4a7c15ull + 1;
	const uint32_t hd = c->dim / c->n_head;
	char name[64];
	int r = 0, k = 0;

	if (aw_gguf_writer_new(&im.w) < 0)
		return -1;
	aw_gguf_writer_set_str(im.w, "general.architecture", c->arch ? c->arch : "llama");
	aw_gguf_writer_set_str(im.w, "general.name", "tiny-test");
	tiny_key_u32(&im, c, "llama.context_length", c->ctx);
	tiny_key_u32(&im, c, "llama.embedding_length", c->dim);
	tiny_key_u32(&im, c, "llama.block_count", c->n_layer);
	tiny_key_u32(&im, c, "llama.feed_forward_length", c->ffn);
	tiny_key_u32(&im, c, "llama.attention.head_count", c->n_head);
	tiny_key_u32(&im, c, "llama.attention.head_count_kv", c->n_head_kv);
	tiny_key_u32(&im, c, "llama.rope.dimension_count", hd);
	tiny_key_f32(&im, c, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
	tiny_key_f32(&im, c, "llama.rope.freq_base", tiny_is_qwen2(c) ? 1e6f : 10000.0f);
	if (c->with_tokenizer)
		tiny_tokenizer(&im, c);

	r |= tiny_add(&im, c, &rs, "token_embd.weight", c->embd_type, c->dim, c->vocab, 0);
	r |= tiny_add(&im, c, &rs, "output_norm.weight", AW_TYPE_F32, c->dim, 0, 1);
	if (!c->tied)
		r |= tiny_add(&im, c, &rs, "output.weight", c->embd_type, c->dim, c->vocab, 0);
	if (c->rope_freqs)
		r |= tiny_add(&im, c, &rs, "rope_freqs.weight", AW_TYPE_F32, hd / 2, 0, 2);
	for (uint32_t l = 0; l < c->n_layer; l++) {
		const struct {
			const char *s;
			uint64_t ne0, ne1;
		} t[] = {
			{"attn_q", c->dim, c->dim},
			{"attn_k", c->dim, (uint64_t)c->n_head_kv * hd},
			{"attn_v", c->dim, (uint64_t)c->n_head_kv * hd},
			{"attn_output", c->dim, c->dim},
			{"ffn_gate", c->dim, c->ffn},
			{"ffn_up", c->dim, c->ffn},
			{"ffn_down", c->ffn, c->dim},
		};
		snprintf(name, sizeof(name), "blk.%u.attn_norm.weight", l);
		r |= tiny_add(&im, c, &rs, name, AW_TYPE_F32, c->dim, 0, 1);
		snprintf(name, sizeof(name), "blk.%u.ffn_norm.weight", l);
		r |= tiny_add(&im, c, &rs, name, c->mixed ? AW_TYPE_F16 : AW_TYPE_F32, c->dim, 0,
			      1);
		for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
			snprintf(name, sizeof(name), "blk.%u.%s.weight", l, t[i].s);
			r |= tiny_add(&im, c, &rs, name, c->mixed ? cycle[k++ % 5] : c->type,
				      t[i].ne0, t[i].ne1, 0);
		}
		for (size_t i = 0; c->qkv_bias && i < 3; i++) {
			/* biases of the order of the products (|x| ~ 1): 3 (1.7/sqrt(n)) */
			snprintf(name, sizeof(name), "blk.%u.%s.bias", l, t[i].s);
			r |= tiny_add(&im, c, &rs, name, AW_TYPE_F32, t[i].ne1, 0, 3);
		}
	}
	if (r == 0) {
		if (path)
			r = aw_gguf_writer_write(im.w, path, NULL);
		else
			r = aw_gguf_writer_write_buf(im.w, ret_buf, ret_len, NULL);
	}
	for (int i = 0; i < im.n; i++)
		free(im.bufs[i]);
	aw_gguf_writer_free(im.w);
	return r == 0 ? 0 : -1;
}

#endif
