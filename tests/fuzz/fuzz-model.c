/* fuzz-model.c — libFuzzer target for the model loader (inference/model.c)
 * on top of the GGUF reader: whatever the reader accepts, the loader must
 * either refuse with -EINVAL/-ENOMEM and a message, or build a model whose
 * forward pass runs without touching memory outside the tensors, the
 * scratch and the KV cache (ASan/UBSan turn any slip into a crash).
 *
 * The first input byte picks options (repack or not, tokens to run); the
 * rest is the GGUF image. Reference kernels only: the vector kernels have
 * their own tests against them. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "kern.h"
#include "kv.h"
#include "model.h"
#include "quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every tensor value finite and within the fp16 range. */
static int weights_sane(const struct aw_gguf *g)
{
	for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);
		const uint64_t rows = t->n_elements / t->ne[0];
		float *row = malloc(sizeof(float) * t->ne[0]);
		const size_t rs = aw_type_row_size(t->type, t->ne[0]);
		int ok = row != NULL;

		for (uint64_t r = 0; ok && r < rows; r++) {
			if (aw_dequant_row(t->type,
					   (const uint8_t *)aw_gguf_tensor_data(g, t) + r * rs, row,
					   t->ne[0]) < 0)
				continue; /* a type the model refuses anyway */
			for (uint64_t j = 0; j < t->ne[0]; j++)
				if (!(fabsf(row[j]) <= 65504.0f))
					ok = 0;
		}
		free(row);
		if (!ok)
			return 0;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_gguf *g = NULL;
	struct aw_model *m = NULL;
	struct aw_kv *kv = NULL;
	struct aw_err err;

	if (size < 1)
		return 0;
	const uint8_t opt = data[0];
	/* the image in an aligned buffer, as a file mapping would be; the
	 * loader itself refuses tensors the file's alignment leaves unaligned */
	uint8_t *img = malloc(size - 1 + 1);
	if (!img)
		return 0;
	memcpy(img, data + 1, size - 1);
	if (aw_gguf_parse(img, size - 1, &g, &err) < 0) {
		free(img);
		return 0;
	}
	struct aw_model_params p = {.kern = &aw_kern_ref, .max_batch = 4, .repack = opt & 1};
	int r = aw_model_load(g, aw_gguf_data(g), aw_gguf_data_size(g), &p, &m, &err);
	if (r < 0) {
		if ((r != -EINVAL && r != -ENOMEM) || !err.msg[0])
			abort(); /* every refusal explains itself */
		goto out;
	}
	/* The kernels' contract is finite inputs of sane magnitude (quantizing a
	 * NaN activation to int8 is undefined); a file of garbage weights loads
	 * but is not run. */
	if (!weights_sane(g))
		goto out;
	const struct aw_model_hparams *hp = aw_model_hparams(m);
	/* keep the run small: big shapes only need to load */
	if ((uint64_t)hp->dim * hp->n_layer * (hp->ffn_dim + hp->dim) > (1u << 24))
		goto out;
	struct aw_kv_config kc = {
		hp->n_layer, aw_model_kv_dim(m), 4, 2, 8, 0, (opt & 4) ? AW_TYPE_F16 : AW_TYPE_F32};
	if (aw_kv_new(&kc, &kv) < 0)
		goto out;
	float *logits = malloc(sizeof(float) * (size_t)hp->n_vocab * 3);
	if (!logits)
		goto out;
	const int32_t tok[3] = {0, hp->n_vocab - 1, (opt >> 1) % hp->n_vocab};
	const int32_t pos[3] = {0, 1, 0}, seq[3] = {0, 0, 1};
	const int8_t want[3] = {1, 1, 1};
	struct aw_batch b = {3, tok, pos, seq, want};
	if (aw_model_forward(m, kv, &b, NULL, logits) != 3)
		abort();
	/* one decode step on each sequence */
	const int32_t pos2[2] = {2, 1}, seq2[2] = {0, 1};
	struct aw_batch b2 = {2, tok, pos2, seq2, NULL};
	if (aw_model_forward(m, kv, &b2, NULL, logits) != 1)
		abort();
	free(logits);
out:
	aw_kv_free(kv);
	aw_model_free(m);
	aw_gguf_close(g);
	free(img);
	return 0;
}
