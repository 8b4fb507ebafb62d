/* fuzz-gguf.c — libFuzzer target for the GGUF reader (inference/gguf.c).
 *
 * Parses the input; when the reader accepts it, touches everything the
 * accessors hand out (every key, every getter, every string-array element,
 * the first and last byte of every tensor), then re-emits the file through
 * the writer and checks that the reader accepts the copy and sees the same
 * keys and tensors. ASan/UBSan turn any over-read into a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static volatile uint8_t sink;

static void walk(const struct aw_gguf *g)
{
	for (int i = 0; (uint64_t)i < aw_gguf_n_kv(g); i++) {
		const char *k, *s;
		size_t kl, sl;
		char key[256];
		uint32_t et, u32;
		uint64_t n, u64;
		int32_t i32;
		int64_t i64;
		float f;
		double d;
		bool b;
		const void *p;

		aw_gguf_key_at(g, i, &k, &kl);
		if (kl >= sizeof(key))
			continue;
		memcpy(key, k, kl);
		key[kl] = '\0';
		if (aw_gguf_find_key(g, key) != i)
			abort();
		(void)aw_gguf_get_u32(g, key, &u32);
		(void)aw_gguf_get_u64(g, key, &u64);
		(void)aw_gguf_get_i32(g, key, &i32);
		(void)aw_gguf_get_i64(g, key, &i64);
		(void)aw_gguf_get_f32(g, key, &f);
		(void)aw_gguf_get_f64(g, key, &d);
		(void)aw_gguf_get_bool(g, key, &b);
		if (aw_gguf_get_str(g, key, &s, &sl) == 0 && sl)
			sink ^= (uint8_t)(s[0] ^ s[sl - 1]);
		if (aw_gguf_get_arr(g, key, &et, &n) == 0) {
			if (et == AW_GGUF_TYPE_STRING) {
				for (uint64_t j = 0; j < n; j++)
					if (aw_gguf_arr_str(g, i, j, &s, &sl) == 0 && sl)
						sink ^= (uint8_t)(s[0] ^ s[sl - 1]);
			} else if (aw_gguf_arr_data(g, i, &p) == 0 && n) {
				size_t es = aw_gguf_type_size(et);

				sink ^= ((const uint8_t *)p)[n * es - 1];
			}
		}
	}
	for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);
		const uint8_t *p = aw_gguf_tensor_data(g, t);

		if (aw_gguf_find_tensor(g, t->name) != (int)i)
			abort();
		sink ^= (uint8_t)(p[0] ^ p[t->size - 1]);
	}
}

/* Re-emit through the writer; the reader must accept the copy unchanged. */
static void rewrite(const struct aw_gguf *g)
{
	struct aw_gguf_writer *w;
	struct aw_gguf *g2;
	void *buf;
	size_t len;

	/* keep the copy small: padding grows with the alignment */
	if (aw_gguf_data_size(g) > (1u << 20) || aw_gguf_alignment(g) > (1u << 16) ||
	    aw_gguf_writer_new(&w) < 0)
		return;
	if (aw_gguf_writer_copy_kvs(w, g, "") != (int)aw_gguf_n_kv(g))
		abort();
	for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);

		if (aw_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne,
					      aw_gguf_tensor_data(g, t), t->size) < 0)
			abort();
	}
	if (aw_gguf_writer_write_buf(w, &buf, &len, NULL) == 0) {
		if (aw_gguf_parse(buf, len, &g2, NULL) < 0)
			abort();
		if (aw_gguf_n_kv(g2) != aw_gguf_n_kv(g) ||
		    aw_gguf_n_tensors(g2) != aw_gguf_n_tensors(g) ||
		    aw_gguf_alignment(g2) != aw_gguf_alignment(g))
			abort();
		for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
			const struct aw_gguf_tensor *a = aw_gguf_tensor_at(g, i);
			const struct aw_gguf_tensor *b = aw_gguf_tensor_at(g2, i);

			if (strcmp(a->name, b->name) || a->size != b->size ||
			    memcmp(aw_gguf_tensor_data(g, a), aw_gguf_tensor_data(g2, b), a->size))
				abort();
		}
		aw_gguf_close(g2);
		free(buf);
	}
	aw_gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct aw_gguf *g;
	struct aw_err err;

	if (aw_gguf_parse(data, size, &g, &err) < 0) {
		if (err.code == 0 || err.msg[0] == '\0')
			abort(); /* every refusal must explain itself */
		return 0;
	}
	walk(g);
	rewrite(g);
	aw_gguf_close(g);
	return 0;
}
