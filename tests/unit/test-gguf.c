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
	assert_int_equal(t->offset + t->size, aw_gguf_data_size(g));

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

/* Every proper prefix of a valid file is refused, without reading past it. */
static void test_truncated_everywhere(void **state)
{
	size_t len;
	uint8_t *buf = small_file(&len);

	(void)state;
	for (size_t k = 0; k < len; k++) {
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_truncated_everywhere),
		cmocka_unit_test(test_file_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
