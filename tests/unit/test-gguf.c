/* test-gguf.c — the GGUF reader and writer (inference/gguf.c, gguf-write.c).
 *
 * Round trips through the writer check every accessor and getter; a corpus
 * of malformed files, built byte by byte here, checks that each defect is
 * refused with -EBADMSG and a message that names the field; every truncation
 * of a valid file is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"
#include "aw-skip.h"

/* ---- a small valid file made with the writer ---- */

static float f32_data[64 * 2];
static uint8_t q8_data[2 * 34 * 3];
static uint16_t f16_data[8];

static struct aw_gguf_writer *small_writer(void)
{
	struct aw_gguf_writer *w;
	static const char *const toks[] = {"<unk>", "<s>", "", "\xe2\x96\x81the"};
	static const int32_t ints[] = {-1, 0, 7};
	uint64_t ne2[2] = {64, 2}, neq[2] = {64, 3}, ne1[1] = {8};
	uint8_t u8 = 200;
	int8_t i8 = -100;
	uint16_t u16 = 60000;
	int16_t i16 = -30000;

	for (size_t i = 0; i < sizeof(f32_data) / 4; i++)
		f32_data[i] = (float)i * 0.5f;
	for (size_t i = 0; i < sizeof(q8_data); i++)
		q8_data[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < 8; i++)
		f16_data[i] = aw_f32_to_fp16((float)i);

	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(aw_gguf_writer_set_u32(w, "general.alignment", 64), 0);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "t.u8", AW_GGUF_TYPE_UINT8, &u8), 0);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "t.i8", AW_GGUF_TYPE_INT8, &i8), 0);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "t.u16", AW_GGUF_TYPE_UINT16, &u16), 0);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "t.i16", AW_GGUF_TYPE_INT16, &i16), 0);
	assert_int_equal(aw_gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
	assert_int_equal(aw_gguf_writer_set_i32(w, "t.i32", -5), 0);
	assert_int_equal(aw_gguf_writer_set_u64(w, "t.u64", UINT64_MAX), 0);
	assert_int_equal(aw_gguf_writer_set_i64(w, "t.i64", INT64_MIN), 0);
	assert_int_equal(aw_gguf_writer_set_u64(w, "t.u64small", 12), 0);
	assert_int_equal(aw_gguf_writer_set_f32(w, "t.f32", 1.5f), 0);
	assert_int_equal(aw_gguf_writer_set_f64(w, "t.f64", 1e300), 0);
	assert_int_equal(aw_gguf_writer_set_f64(w, "t.f64small", 0.25), 0);
	assert_int_equal(aw_gguf_writer_set_bool(w, "t.bool", true), 0);
	assert_int_equal(aw_gguf_writer_set_strn(w, "t.bin", "a\0b", 3), 0);
	assert_int_equal(aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", 4, toks, NULL), 0);
	assert_int_equal(aw_gguf_writer_set_arr(w, "tokenizer.ints", AW_GGUF_TYPE_INT32, 3, ints),
			 0);
	{
		/* nested: array of 2 arrays of uint8 [1,2] and [3] */
		static const uint8_t nested[] = {
			AW_GGUF_TYPE_UINT8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, /* outer: 2 x array */
			AW_GGUF_TYPE_UINT8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 2,
			AW_GGUF_TYPE_UINT8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3,
		};
		uint8_t raw[sizeof(nested)];

		memcpy(raw, nested, sizeof(raw));
		raw[0] = AW_GGUF_TYPE_ARRAY;
		assert_int_equal(
			aw_gguf_writer_set_raw(w, "t.nested", AW_GGUF_TYPE_ARRAY, raw, sizeof(raw)),
			0);
	}
	/* last set wins, position kept */
	assert_int_equal(aw_gguf_writer_set_i32(w, "t.i32", -7), 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "a.f32", AW_TYPE_F32, 2, ne2, f32_data,
						   sizeof(f32_data)),
			 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "b.q8", AW_TYPE_Q8_0, 2, neq, q8_data,
						   sizeof(q8_data)),
			 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "c.f16", AW_TYPE_F16, 1, ne1, f16_data,
						   sizeof(f16_data)),
			 0);
	return w;
}

static void *small_file(size_t *ret_len)
{
	struct aw_gguf_writer *w = small_writer();
	struct aw_err err;
	void *buf;

	assert_int_equal(aw_gguf_writer_write_buf(w, &buf, ret_len, &err), 0);
	aw_gguf_writer_free(w);
	return buf;
}

static void test_roundtrip(void **state)
{
	struct aw_gguf *g;
	struct aw_err err;
	size_t len;
	void *buf = small_file(&len);
	const struct aw_gguf_tensor *t;
	const char *s;
	size_t sl;
	uint32_t et;
	uint64_t n;
	int ki;

	(void)state;
	assert_int_equal(aw_gguf_parse(buf, len, &g, &err), 0);
	assert_int_equal(aw_gguf_version(g), 3);
	assert_int_equal(aw_gguf_n_kv(g), 19);
	assert_int_equal(aw_gguf_n_tensors(g), 3);
	assert_int_equal(aw_gguf_alignment(g), 64);
	assert_int_equal(aw_gguf_file_size(g), len);
	assert_int_equal(aw_gguf_data_offset(g) % 64, 0);
	assert_int_equal(aw_gguf_data_offset(g) + aw_gguf_data_size(g), len);
	assert_ptr_equal(aw_gguf_data(g), (const uint8_t *)buf + aw_gguf_data_offset(g));
	assert_null(aw_gguf_path(g));

	/* keys in insertion order; replaced value keeps its place */
	assert_int_equal(aw_gguf_find_key(g, "general.architecture"), 0);
	assert_int_equal(aw_gguf_find_key(g, "t.i32"), 7);
	assert_int_equal(aw_gguf_find_key(g, "nope"), -ENOENT);
	assert_int_equal(aw_gguf_find_key(g, "t.u"), -ENOENT);
	assert_int_equal(aw_gguf_key_at(g, 1, &s, &sl), 0);
	assert_int_equal(sl, strlen("general.alignment"));
	assert_memory_equal(s, "general.alignment", sl);
	assert_int_equal(aw_gguf_key_at(g, 19, &s, &sl), -ERANGE);
	assert_int_equal(aw_gguf_key_at(g, -1, &s, &sl), -ERANGE);
	assert_int_equal(aw_gguf_kv_type(g, 0), AW_GGUF_TYPE_STRING);
	assert_int_equal(aw_gguf_kv_type(g, 99), -ERANGE);

	assert_int_equal(aw_gguf_get_str(g, "general.architecture", &s, &sl), 0);
	assert_int_equal(sl, 5);
	assert_memory_equal(s, "llama", 5);
	assert_int_equal(aw_gguf_get_str(g, "t.bin", &s, &sl), 0);
	assert_int_equal(sl, 3);
	assert_memory_equal(s, "a\0b", 3);

	/* string array, O(1) elements */
	ki = aw_gguf_find_key(g, "tokenizer.ggml.tokens");
	assert_true(ki >= 0);
	assert_int_equal(aw_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n), 0);
	assert_int_equal(et, AW_GGUF_TYPE_STRING);
	assert_int_equal(n, 4);
	assert_int_equal(aw_gguf_arr_str(g, ki, 3, &s, &sl), 0);
	assert_int_equal(sl, 6);
	assert_memory_equal(s, "\xe2\x96\x81the", 6);
	assert_int_equal(aw_gguf_arr_str(g, ki, 2, &s, &sl), 0);
	assert_int_equal(sl, 0);
	assert_int_equal(aw_gguf_arr_str(g, ki, 0, &s, &sl), 0);
	assert_memory_equal(s, "<unk>", 5);
	assert_int_equal(aw_gguf_arr_str(g, ki, 4, &s, &sl), -ERANGE);
	assert_int_equal(aw_gguf_arr_str(g, 12345, 0, &s, &sl), -ERANGE);
	{
		const void *p;

		assert_int_equal(aw_gguf_arr_data(g, ki, &p), -EINVAL);
		ki = aw_gguf_find_key(g, "tokenizer.ints");
		assert_int_equal(aw_gguf_get_arr(g, "tokenizer.ints", &et, &n), 0);
		assert_int_equal(et, AW_GGUF_TYPE_INT32);
		assert_int_equal(n, 3);
		assert_int_equal(aw_gguf_arr_data(g, ki, &p), 0);
		{
			int32_t v[3];

			memcpy(v, p, sizeof(v));
			assert_int_equal(v[0], -1);
			assert_int_equal(v[2], 7);
		}
		assert_int_equal(aw_gguf_arr_str(g, ki, 0, &s, &sl), -EINVAL);
		/* nested arrays parse; element getters refuse them */
		assert_int_equal(aw_gguf_get_arr(g, "t.nested", &et, &n), 0);
		assert_int_equal(et, AW_GGUF_TYPE_ARRAY);
		assert_int_equal(n, 2);
		ki = aw_gguf_find_key(g, "t.nested");
		assert_int_equal(aw_gguf_arr_data(g, ki, &p), -EINVAL);
		assert_int_equal(aw_gguf_arr_str(g, ki, 0, &s, &sl), -EINVAL);
		assert_int_equal(aw_gguf_get_arr(g, "t.u8", &et, &n), -EINVAL);
		assert_int_equal(aw_gguf_get_arr(g, "t.none", &et, &n), -ENOENT);
	}

	/* tensors */
	assert_int_equal(aw_gguf_find_tensor(g, "b.q8"), 1);
	assert_int_equal(aw_gguf_find_tensor(g, "b.q"), -ENOENT);
	assert_null(aw_gguf_tensor_at(g, 3));
	t = aw_gguf_tensor_at(g, 0);
	assert_string_equal(t->name, "a.f32");
	assert_int_equal(t->n_dims, 2);
	assert_int_equal(t->ne[0], 64);
	assert_int_equal(t->ne[1], 2);
	assert_int_equal(t->ne[2], 1);
	assert_int_equal(t->ne[3], 1);
	assert_int_equal(t->type, AW_TYPE_F32);
	assert_int_equal(t->size, sizeof(f32_data));
	assert_int_equal(t->n_elements, 128);
	assert_memory_equal(aw_gguf_tensor_data(g, t), f32_data, sizeof(f32_data));
	t = aw_gguf_tensor_at(g, 1);
	assert_int_equal(t->offset % 64, 0);
	assert_int_equal(t->size, sizeof(q8_data));
	assert_memory_equal(aw_gguf_tensor_data(g, t), q8_data, sizeof(q8_data));
	t = aw_gguf_tensor_at(g, 2);
	assert_string_equal(t->name, "c.f16");
	assert_int_equal(t->n_dims, 1);
	assert_memory_equal(aw_gguf_tensor_data(g, t), f16_data, sizeof(f16_data));
	/* the last tensor is padded too: the file ends aligned */
	assert_int_equal((t->offset + t->size + 63) / 64 * 64, aw_gguf_data_size(g));
	assert_int_equal(len % 64, 0);

	aw_gguf_close(g);
	free(buf);
}

/* Integer getters take any integer type whose value fits. */
static void test_getters(void **state)
{
	struct aw_gguf *g;
	size_t len;
	void *buf = small_file(&len);
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	int64_t i64;
	float f;
	double d;
	bool b;
	const char *s;
	size_t sl;

	(void)state;
	assert_int_equal(aw_gguf_parse(buf, len, &g, NULL), 0);

	assert_int_equal(aw_gguf_get_u32(g, "t.u8", &u32), 0);
	assert_int_equal(u32, 200);
	assert_int_equal(aw_gguf_get_i32(g, "t.u8", &i32), 0);
	assert_int_equal(i32, 200);
	assert_int_equal(aw_gguf_get_u32(g, "t.i8", &u32), -ERANGE);
	assert_int_equal(aw_gguf_get_u64(g, "t.i8", &u64), -ERANGE);
	assert_int_equal(aw_gguf_get_i32(g, "t.i8", &i32), 0);
	assert_int_equal(i32, -100);
	assert_int_equal(aw_gguf_get_i64(g, "t.i16", &i64), 0);
	assert_int_equal(i64, -30000);
	assert_int_equal(aw_gguf_get_u32(g, "t.u16", &u32), 0);
	assert_int_equal(u32, 60000);
	assert_int_equal(aw_gguf_get_u32(g, "t.u32", &u32), 0);
	assert_int_equal(u32, 4000000000u);
	assert_int_equal(aw_gguf_get_i32(g, "t.u32", &i32), -ERANGE);
	assert_int_equal(aw_gguf_get_i64(g, "t.u32", &i64), 0);
	assert_int_equal(i64, 4000000000ll);
	assert_int_equal(aw_gguf_get_i32(g, "t.i32", &i32), 0);
	assert_int_equal(i32, -7);
	assert_int_equal(aw_gguf_get_u64(g, "t.u64", &u64), 0);
	assert_true(u64 == UINT64_MAX);
	assert_int_equal(aw_gguf_get_i64(g, "t.u64", &i64), -ERANGE);
	assert_int_equal(aw_gguf_get_u32(g, "t.u64", &u32), -ERANGE);
	assert_int_equal(aw_gguf_get_u32(g, "t.u64small", &u32), 0);
	assert_int_equal(u32, 12);
	assert_int_equal(aw_gguf_get_i64(g, "t.i64", &i64), 0);
	assert_true(i64 == INT64_MIN);
	assert_int_equal(aw_gguf_get_i32(g, "t.i64", &i32), -ERANGE);
	assert_int_equal(aw_gguf_get_u64(g, "t.i64", &u64), -ERANGE);
	/* wrong kinds */
	assert_int_equal(aw_gguf_get_u32(g, "t.f32", &u32), -EINVAL);
	assert_int_equal(aw_gguf_get_u32(g, "t.bool", &u32), -EINVAL);
	assert_int_equal(aw_gguf_get_u32(g, "general.architecture", &u32), -EINVAL);
	assert_int_equal(aw_gguf_get_i64(g, "tokenizer.ints", &i64), -EINVAL);
	assert_int_equal(aw_gguf_get_u32(g, "missing", &u32), -ENOENT);
	assert_int_equal(aw_gguf_get_i32(g, "missing", &i32), -ENOENT);
	/* floats */
	assert_int_equal(aw_gguf_get_f32(g, "t.f32", &f), 0);
	assert_true(f == 1.5f);
	assert_int_equal(aw_gguf_get_f64(g, "t.f32", &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(aw_gguf_get_f32(g, "t.f64", &f), -ERANGE);
	assert_int_equal(aw_gguf_get_f64(g, "t.f64", &d), 0);
	assert_true(d == 1e300);
	assert_int_equal(aw_gguf_get_f32(g, "t.f64small", &f), 0);
	assert_true(f == 0.25f);
	assert_int_equal(aw_gguf_get_f32(g, "t.u32", &f), -EINVAL);
	assert_int_equal(aw_gguf_get_f32(g, "missing", &f), -ENOENT);
	/* bool and strings */
	assert_int_equal(aw_gguf_get_bool(g, "t.bool", &b), 0);
	assert_true(b);
	assert_int_equal(aw_gguf_get_bool(g, "t.u8", &b), -EINVAL);
	assert_int_equal(aw_gguf_get_bool(g, "missing", &b), -ENOENT);
	assert_int_equal(aw_gguf_get_str(g, "t.u8", &s, &sl), -EINVAL);
	assert_int_equal(aw_gguf_get_str(g, "tokenizer.ggml.tokens", &s, &sl), -EINVAL);
	assert_int_equal(aw_gguf_get_str(g, "missing", &s, &sl), -ENOENT);
	/* outputs are untouched on failure */
	u32 = 42;
	assert_int_equal(aw_gguf_get_u32(g, "t.i8", &u32), -ERANGE);
	assert_int_equal(u32, 42);

	aw_gguf_close(g);
	free(buf);
}

/* Every prefix of a valid file that cuts into its last tensor is refused,
 * without reading past it; cutting only the final padding leaves a valid file. */
static void test_truncated_everywhere(void **state)
{
	size_t len, end;
	uint8_t *buf = small_file(&len);

	(void)state;
	{
		struct aw_gguf *g;
		const struct aw_gguf_tensor *t;

		assert_int_equal(aw_gguf_parse(buf, len, &g, NULL), 0);
		t = aw_gguf_tensor_at(g, 2);
		end = aw_gguf_data_offset(g) + t->offset + t->size;
		aw_gguf_close(g);
		assert_true(end < len);
	}
	for (size_t k = end; k < len; k++) {
		struct aw_gguf *g;

		assert_int_equal(aw_gguf_parse(buf, k, &g, NULL), 0);
		aw_gguf_close(g);
	}
	for (size_t k = 0; k < end; k++) {
		/* a fresh allocation of exactly k bytes, so ASan catches over-reads */
		uint8_t *p = malloc(k ? k : 1);
		struct aw_gguf *g = NULL;
		struct aw_err err;
		int r;

		memcpy(p, buf, k);
		r = aw_gguf_parse(p, k, &g, &err);
		if (r != -EBADMSG)
			fail_msg("prefix of %zu/%zu bytes: %d (%s)", k, len, r, err.msg);
		assert_int_equal(err.code, EBADMSG);
		assert_null(g);
		assert_true(strlen(err.msg) > 0);
		free(p);
	}
	free(buf);
}

/* ---- malformed files, byte by byte ---- */

struct bb {
	uint8_t *p;
	size_t len, cap;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void bb_u8(struct bb *b, uint8_t v)
{
	bb_put(b, &v, 1);
}

static void bb_u32(struct bb *b, uint32_t v)
{
	bb_put(b, &v, 4);
}

static void bb_u64(struct bb *b, uint64_t v)
{
	bb_put(b, &v, 8);
}

static void bb_str(struct bb *b, const char *s)
{
	bb_u64(b, strlen(s));
	bb_put(b, s, strlen(s));
}

static void bb_pad(struct bb *b, size_t align)
{
	while (b->len % align)
		bb_u8(b, 0);
}

static void bb_header(struct bb *b, uint64_t n_tensors, uint64_t n_kv)
{
	bb_put(b, "GGUF", 4);
	bb_u32(b, 3);
	bb_u64(b, n_tensors);
	bb_u64(b, n_kv);
}

static void bb_kv_u32(struct bb *b, const char *key, uint32_t v)
{
	bb_str(b, key);
	bb_u32(b, AW_GGUF_TYPE_UINT32);
	bb_u32(b, v);
}

/* tensor info with n_dims dims */
static void bb_tensor(struct bb *b, const char *name, uint32_t n_dims, const uint64_t *ne,
		      uint32_t type, uint64_t offset)
{
	bb_str(b, name);
	bb_u32(b, n_dims);
	for (uint32_t d = 0; d < n_dims; d++)
		bb_u64(b, ne[d]);
	bb_u32(b, type);
	bb_u64(b, offset);
}

static void bb_zeros(struct bb *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bb_u8(b, 0);
}

/* Parse 'b' and expect -EBADMSG with a message containing 'what' and an
 * offset; then check that a valid file's structure was really needed: the
 * buffer is exactly b->len bytes so ASan catches any over-read. */
static void expect_bad(struct bb *b, const char *what, int line)
{
	uint8_t *p = malloc(b->len ? b->len : 1);
	struct aw_gguf *g = NULL;
	struct aw_err err = {0};
	int r;

	memcpy(p, b->p, b->len);
	r = aw_gguf_parse(p, b->len, &g, &err);
	if (r != -EBADMSG || err.code != EBADMSG)
		fail_msg("line %d: expected -EBADMSG for '%s', got %d (%s)", line, what, r,
			 err.msg);
	if (!strstr(err.msg, what) || !strstr(err.msg, "offset"))
		fail_msg("line %d: message '%s' does not name '%s' and an offset", line, err.msg,
			 what);
	assert_null(g);
	free(p);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

#define EXPECT_BAD(b, what) expect_bad((b), (what), __LINE__)

/* Sanity check of the builder: a hand-built file with two tensors parses. */
static void test_handmade_valid(void **state)
{
	struct bb b = {0};
	uint64_t ne[2] = {32, 2};
	struct aw_gguf *g;
	struct aw_err err;

	(void)state;
	bb_header(&b, 2, 1);
	bb_kv_u32(&b, "general.alignment", 16);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_Q8_0, 0);
	bb_tensor(&b, "y", 1, ne, AW_TYPE_F32, 80);
	bb_pad(&b, 16);
	bb_zeros(&b, 80 + 128);
	assert_int_equal(aw_gguf_parse(b.p, b.len, &g, &err), 0);
	assert_int_equal(aw_gguf_alignment(g), 16);
	assert_int_equal(aw_gguf_tensor_at(g, 0)->size, 68);
	assert_int_equal(aw_gguf_tensor_at(g, 1)->size, 128);
	aw_gguf_close(g);

	/* version 2 reads the same way; no tensors and no padding is fine */
	b.len = 0;
	bb_put(&b, "GGUF", 4);
	bb_u32(&b, 2);
	bb_u64(&b, 0);
	bb_u64(&b, 1);
	bb_kv_u32(&b, "k", 1);
	assert_int_equal(aw_gguf_parse(b.p, b.len, &g, &err), 0);
	assert_int_equal(aw_gguf_version(g), 2);
	assert_int_equal(aw_gguf_data_size(g), 0);
	assert_null(aw_gguf_data(g));
	aw_gguf_close(g);
	free(b.p);
}

static void test_bad_header(void **state)
{
	struct bb b = {0};

	(void)state;
	bb_put(&b, "GGUG", 4);
	bb_u32(&b, 3);
	bb_u64(&b, 0);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "magic");

	bb_put(&b, "GGUF", 4);
	bb_u32(&b, 1);
	bb_u64(&b, 0);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "version");

	bb_put(&b, "GGUF", 4);
	bb_u32(&b, 4);
	bb_u64(&b, 0);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "version");

	bb_put(&b, "GGUF", 4);
	bb_u32(&b, 0x03000000);
	bb_u64(&b, 0);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "big-endian");

	bb_header(&b, 0, UINT64_MAX);
	EXPECT_BAD(&b, "n_kv");

	bb_header(&b, 0, 3); /* 3 key/values need more than the 20 bytes that follow */
	bb_zeros(&b, 20);
	EXPECT_BAD(&b, "n_kv");

	bb_header(&b, 1ull << 40, 0);
	bb_zeros(&b, 64);
	EXPECT_BAD(&b, "n_tensors");

	bb_header(&b, UINT64_MAX, 0);
	EXPECT_BAD(&b, "n_tensors");
}

static void test_bad_kv(void **state)
{
	struct bb b = {0};

	(void)state;
	/* key length beyond the file */
	bb_header(&b, 0, 1);
	bb_u64(&b, 1ull << 62);
	bb_zeros(&b, 16);
	EXPECT_BAD(&b, "key");

	/* string value length beyond the file */
	bb_header(&b, 0, 1);
	bb_str(&b, "s");
	bb_u32(&b, AW_GGUF_TYPE_STRING);
	bb_u64(&b, 100);
	bb_put(&b, "abc", 3);
	EXPECT_BAD(&b, "string value");

	/* string length that wraps around */
	bb_header(&b, 0, 1);
	bb_str(&b, "s");
	bb_u32(&b, AW_GGUF_TYPE_STRING);
	bb_u64(&b, UINT64_MAX - 3);
	bb_put(&b, "abcd", 4);
	EXPECT_BAD(&b, "string value");

	/* unknown value type */
	bb_header(&b, 0, 1);
	bb_str(&b, "k");
	bb_u32(&b, 13);
	bb_u32(&b, 0);
	EXPECT_BAD(&b, "value type");

	/* huge numeric array */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, AW_GGUF_TYPE_UINT32);
	bb_u64(&b, 1ull << 61);
	bb_zeros(&b, 16);
	EXPECT_BAD(&b, "array length");

	/* huge string array (would be a huge offset table) */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, AW_GGUF_TYPE_STRING);
	bb_u64(&b, UINT64_MAX);
	bb_zeros(&b, 16);
	EXPECT_BAD(&b, "array length");

	/* string array whose third string runs past the end */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, AW_GGUF_TYPE_STRING);
	bb_u64(&b, 3);
	bb_str(&b, "x");
	bb_str(&b, "y");
	bb_u64(&b, 9);
	bb_put(&b, "z", 1);
	EXPECT_BAD(&b, "string value");

	/* unknown array element type */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, 77);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "array element type");

	/* arrays nested too deep */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	for (int i = 0; i < AW_GGUF_MAX_DEPTH + 1; i++) {
		bb_u32(&b, AW_GGUF_TYPE_ARRAY);
		bb_u64(&b, 1);
	}
	bb_u32(&b, AW_GGUF_TYPE_UINT8);
	bb_u64(&b, 0);
	EXPECT_BAD(&b, "nested");

	/* nested array with a huge inner count */
	bb_header(&b, 0, 1);
	bb_str(&b, "a");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u64(&b, 1);
	bb_u32(&b, AW_GGUF_TYPE_INT64);
	bb_u64(&b, 1ull << 60);
	bb_zeros(&b, 8);
	EXPECT_BAD(&b, "array length");

	/* bool that is neither 0 nor 1, as a value and inside an array */
	bb_header(&b, 0, 1);
	bb_str(&b, "b");
	bb_u32(&b, AW_GGUF_TYPE_BOOL);
	bb_u8(&b, 2);
	EXPECT_BAD(&b, "bool");
	bb_header(&b, 0, 1);
	bb_str(&b, "b");
	bb_u32(&b, AW_GGUF_TYPE_ARRAY);
	bb_u32(&b, AW_GGUF_TYPE_BOOL);
	bb_u64(&b, 3);
	bb_u8(&b, 1);
	bb_u8(&b, 0);
	bb_u8(&b, 9);
	EXPECT_BAD(&b, "bool");

	/* duplicate key */
	bb_header(&b, 0, 2);
	bb_kv_u32(&b, "general.x", 1);
	bb_kv_u32(&b, "general.x", 2);
	EXPECT_BAD(&b, "duplicate key");

	/* empty key, key with a NUL */
	bb_header(&b, 0, 1);
	bb_kv_u32(&b, "", 1);
	EXPECT_BAD(&b, "empty key");
	bb_header(&b, 0, 1);
	bb_u64(&b, 3);
	bb_put(&b, "a\0b", 3);
	bb_u32(&b, AW_GGUF_TYPE_UINT32);
	bb_u32(&b, 1);
	EXPECT_BAD(&b, "NUL");

	/* alignment: not a power of two, zero, wrong type */
	bb_header(&b, 0, 1);
	bb_kv_u32(&b, "general.alignment", 48);
	EXPECT_BAD(&b, "general.alignment");
	bb_header(&b, 0, 1);
	bb_kv_u32(&b, "general.alignment", 0);
	EXPECT_BAD(&b, "general.alignment");
	bb_header(&b, 0, 1);
	bb_str(&b, "general.alignment");
	bb_u32(&b, AW_GGUF_TYPE_UINT64);
	bb_u64(&b, 32);
	EXPECT_BAD(&b, "general.alignment");
}

/* One tensor 't' with the given info and 'data' bytes of data after padding. */
static void one_tensor(struct bb *b, uint32_t n_dims, const uint64_t *ne, uint32_t type,
		       uint64_t offset, size_t data)
{
	bb_header(b, 1, 0);
	bb_tensor(b, "t", n_dims, ne, type, offset);
	bb_pad(b, 32);
	bb_zeros(b, data);
}

static void test_bad_tensor(void **state)
{
	struct bb b = {0};
	uint64_t ne[5] = {32, 2, 1, 1, 1};

	(void)state;
	one_tensor(&b, 5, ne, AW_TYPE_F32, 0, 256);
	EXPECT_BAD(&b, "n_dims");
	one_tensor(&b, 0, ne, AW_TYPE_F32, 0, 256);
	EXPECT_BAD(&b, "n_dims");

	ne[1] = 0;
	one_tensor(&b, 2, ne, AW_TYPE_F32, 0, 256);
	EXPECT_BAD(&b, "ne[1]");
	ne[1] = 1ull << 63;
	one_tensor(&b, 2, ne, AW_TYPE_F32, 0, 256);
	EXPECT_BAD(&b, "ne[1]");
	ne[0] = 1ull << 32;
	ne[1] = 1ull << 32;
	one_tensor(&b, 2, ne, AW_TYPE_F32, 0, 256);
	EXPECT_BAD(&b, "overflows");
	/* element count fits, byte count does not */
	ne[0] = (1ull << 63) - 32; /* 2^63 - 32 elements are 1.06 * 2^63 bytes of q8_0 */
	ne[1] = 1;
	one_tensor(&b, 1, ne, AW_TYPE_Q8_0, 0, 256);
	EXPECT_BAD(&b, "overflows");
	ne[0] = 32;
	ne[1] = 2;

	one_tensor(&b, 2, ne, 4 /* removed Q4_2 */, 0, 256);
	EXPECT_BAD(&b, "unknown ggml type");
	one_tensor(&b, 2, ne, 1000, 0, 256);
	EXPECT_BAD(&b, "unknown ggml type");

	ne[0] = 33;
	one_tensor(&b, 2, ne, AW_TYPE_Q8_0, 0, 256);
	EXPECT_BAD(&b, "multiple");
	ne[0] = 32;

	one_tensor(&b, 2, ne, AW_TYPE_F32, 16, 512);
	EXPECT_BAD(&b, "not aligned");
	one_tensor(&b, 2, ne, AW_TYPE_F32, 0, 255); /* needs 256 */
	EXPECT_BAD(&b, "beyond file end");
	one_tensor(&b, 2, ne, AW_TYPE_F32, UINT64_MAX - 31, 256);
	EXPECT_BAD(&b, "beyond file end");

	/* overlap: x at [0,256), y at [224, 480) */
	bb_header(&b, 2, 0);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 0);
	bb_tensor(&b, "y", 2, ne, AW_TYPE_F32, 224);
	bb_pad(&b, 32);
	bb_zeros(&b, 1024);
	EXPECT_BAD(&b, "overlaps");
	/* same offset, listed in reverse order */
	bb_header(&b, 2, 0);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 512);
	bb_tensor(&b, "y", 1, ne, AW_TYPE_F32, 512);
	bb_pad(&b, 32);
	bb_zeros(&b, 1024);
	EXPECT_BAD(&b, "overlaps");

	/* duplicate names */
	bb_header(&b, 2, 0);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 0);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 256);
	bb_pad(&b, 32);
	bb_zeros(&b, 512);
	EXPECT_BAD(&b, "duplicate tensor name");

	/* empty and over-long names */
	bb_header(&b, 1, 0);
	bb_tensor(&b, "", 2, ne, AW_TYPE_F32, 0);
	bb_pad(&b, 32);
	bb_zeros(&b, 256);
	EXPECT_BAD(&b, "name");
	{
		char longname[AW_GGUF_MAX_NAME + 2];

		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		bb_header(&b, 1, 0);
		bb_tensor(&b, longname, 2, ne, AW_TYPE_F32, 0);
		bb_pad(&b, 32);
		bb_zeros(&b, 256);
		EXPECT_BAD(&b, "name");
	}

	/* tensor infos end exactly at the file end: no data region */
	bb_header(&b, 1, 0);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 0);
	bb_u8(&b, 0);
	EXPECT_BAD(&b, "data region");

	/* alignment from the file is applied to the offsets */
	bb_header(&b, 2, 1);
	bb_kv_u32(&b, "general.alignment", 512);
	bb_tensor(&b, "x", 2, ne, AW_TYPE_F32, 0);
	bb_tensor(&b, "y", 2, ne, AW_TYPE_F32, 256);
	bb_pad(&b, 512);
	bb_zeros(&b, 1024);
	EXPECT_BAD(&b, "not aligned");
}

/* Writer refuses what the reader would refuse. */
static void test_writer_checks(void **state)
{
	struct aw_gguf_writer *w;
	uint64_t ne[5] = {32, 2, 1, 1, 1};
	float data[64] = {0};
	uint8_t two = 2;

	(void)state;
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_u32(w, "general.alignment", 24), -EINVAL);
	assert_int_equal(aw_gguf_writer_set_u64(w, "general.alignment", 32), -EINVAL);
	assert_int_equal(aw_gguf_writer_set_u32(w, "", 1), -EINVAL);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "k", AW_GGUF_TYPE_STRING, "x"), -EINVAL);
	assert_int_equal(aw_gguf_writer_set_scalar(w, "k", AW_GGUF_TYPE_BOOL, &two), -EINVAL);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", AW_TYPE_F32, 2, ne, data, 255), -EINVAL);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", AW_TYPE_F32, 5, ne, data, 256), -EINVAL);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", 4, 2, ne, data, 256), -EINVAL);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "", AW_TYPE_F32, 2, ne, data, 256), -EINVAL);
	ne[0] = 31;
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", AW_TYPE_Q8_0, 1, ne, data, 34), -EINVAL);
	ne[0] = 32;
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", AW_TYPE_F32, 2, ne, data, 256), 0);
	assert_int_equal(aw_gguf_writer_add_tensor(w, "t", AW_TYPE_F32, 2, ne, data, 256), -EEXIST);
	aw_gguf_writer_free(w);
	aw_gguf_writer_free(NULL);
}

static int fill_pattern(void *ctx, const char *name, void *buf, size_t size)
{
	(void)name;
	memset(buf, *(int *)ctx, size);
	return 0;
}

static int fill_fail(void *ctx, const char *name, void *buf, size_t size)
{
	(void)ctx;
	(void)name;
	(void)buf;
	(void)size;
	return -EIO;
}

/* Tensors produced by callbacks, copying tokenizer keys, determinism. */
static void test_writer_fill_copy(void **state)
{
	struct aw_gguf_writer *w, *w2;
	struct aw_gguf *src, *g;
	uint64_t ne[2] = {64, 3};
	int pat = 0x5a;
	void *sbuf, *buf, *buf2;
	size_t slen, len, len2;
	struct aw_err err;
	const char *s;
	size_t sl;
	uint32_t et;
	uint64_t n;
	int ki;

	(void)state;
	sbuf = small_file(&slen);
	assert_int_equal(aw_gguf_parse(sbuf, slen, &src, &err), 0);

	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(aw_gguf_writer_copy_kvs(w, src, "tokenizer."), 2);
	assert_int_equal(aw_gguf_writer_copy_kvs(w, src, "t.nested"), 1);
	assert_int_equal(
		aw_gguf_writer_add_tensor_fill(w, "f", AW_TYPE_Q4_0, 2, ne, fill_pattern, &pat), 0);
	assert_int_equal(aw_gguf_writer_write_buf(w, &buf, &len, &err), 0);
	assert_int_equal(aw_gguf_writer_write_buf(w, &buf2, &len2, &err), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);

	assert_int_equal(aw_gguf_parse(buf, len, &g, &err), 0);
	assert_int_equal(aw_gguf_n_kv(g), 4);
	assert_int_equal(aw_gguf_alignment(g), 32);
	ki = aw_gguf_find_key(g, "tokenizer.ggml.tokens");
	assert_int_equal(ki, 1);
	assert_int_equal(aw_gguf_arr_str(g, ki, 3, &s, &sl), 0);
	assert_memory_equal(s, "\xe2\x96\x81the", 6);
	assert_int_equal(aw_gguf_get_arr(g, "t.nested", &et, &n), 0);
	assert_int_equal(et, AW_GGUF_TYPE_ARRAY);
	{
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, 0);
		const uint8_t *d = aw_gguf_tensor_data(g, t);

		assert_int_equal(t->size, 3 * 2 * 18);
		for (size_t i = 0; i < t->size; i++)
			assert_int_equal(d[i], 0x5a);
	}
	aw_gguf_close(g);

	/* a failing callback aborts the write and names the tensor */
	assert_int_equal(aw_gguf_writer_new(&w2), 0);
	assert_int_equal(
		aw_gguf_writer_add_tensor_fill(w2, "bad", AW_TYPE_F32, 2, ne, fill_fail, NULL), 0);
	free(buf2);
	assert_int_equal(aw_gguf_writer_write_buf(w2, &buf2, &len2, &err), -EIO);
	assert_non_null(strstr(err.msg, "bad"));
	aw_gguf_writer_free(w2);

	aw_gguf_writer_free(w);
	aw_gguf_close(src);
	free(buf);
	free(sbuf);
}

/* Single-byte corruptions of a valid file never crash and are either
 * refused with a message or still describe a consistent file. */
static void test_bitflips(void **state)
{
	size_t len;
	uint8_t *buf = small_file(&len);
	uint8_t *p = malloc(len);

	(void)state;
	for (size_t k = 0; k < len; k++) {
		static const uint8_t vals[] = {0x00, 0xff, 0x80, 0x01};

		for (size_t v = 0; v < sizeof(vals); v++) {
			struct aw_gguf *g = NULL;
			struct aw_err err = {0};
			int r;

			memcpy(p, buf, len);
			p[k] ^= vals[v] ? vals[v] : p[k];
			r = aw_gguf_parse(p, len, &g, &err);
			if (r == 0) {
				for (uint64_t i = 0; i < aw_gguf_n_tensors(g); i++) {
					const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);

					assert_true(aw_gguf_data_offset(g) + t->offset + t->size <=
						    len);
				}
				aw_gguf_close(g);
			} else {
				assert_int_equal(r, -EBADMSG);
				assert_true(strlen(err.msg) > 0);
			}
		}
	}
	free(p);
	free(buf);
}

static void test_file_roundtrip(void **state)
{
	struct aw_gguf_writer *w = small_writer();
	char path[] = "/tmp/test-gguf-XXXXXX";
	struct aw_gguf *g;
	struct aw_err err;
	size_t len;
	void *buf;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(aw_gguf_writer_write(w, path, &err), 0);
	assert_int_equal(aw_gguf_writer_write_buf(w, &buf, &len, &err), 0);
	assert_int_equal(aw_gguf_open(path, &g, &err), 0);
	assert_string_equal(aw_gguf_path(g), path);
	assert_int_equal(aw_gguf_file_size(g), len);
	/* file and buffer are the same bytes */
	assert_memory_equal(aw_gguf_data(g), (uint8_t *)buf + aw_gguf_data_offset(g),
			    aw_gguf_data_size(g));
	aw_gguf_close(g);
	aw_gguf_close(NULL);
	unlink(path);
	assert_int_equal(aw_gguf_open(path, &g, &err), -ENOENT);
	assert_int_equal(err.code, ENOENT);
	assert_non_null(strstr(err.msg, path));
	free(buf);
	aw_gguf_writer_free(w);
}

/* The fuzzer's seed corpus (tests/fuzz/corpus/gguf) holds valid files only. */
static void test_seed_corpus(void **state)
{
	static const char *const seeds[] = {"empty-v2", "types", "llama", "mkmodel-min"};
	const char *dir = getenv("AW_GGUF_CORPUS");

	(void)state;
	if (!dir)
		AW_SKIP("no corpus directory given");
	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		char path[4096];
		struct aw_gguf *g;
		struct aw_err err;

		snprintf(path, sizeof(path), "%s/%s", dir, seeds[i]);
		if (aw_gguf_open(path, &g, &err) < 0)
			fail_msg("%s: %s", path, err.msg);
		aw_gguf_close(g);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_file_roundtrip),
		cmocka_unit_test(test_handmade_valid),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_kv),
		cmocka_unit_test(test_bad_tensor),
		cmocka_unit_test(test_writer_checks),
		cmocka_unit_test(test_writer_fill_copy),
		cmocka_unit_test(test_bitflips),
		cmocka_unit_test(test_seed_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
