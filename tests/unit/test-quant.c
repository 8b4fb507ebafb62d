/* test-quant.c — the reference conversions in inference/quant.c: fp16 and
 * bf16 against exact expectations (every fp16 value round-trips, rounding is
 * to nearest even), and block quantizers against the bounds their arithmetic
 * guarantees. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static float bits_f32(uint32_t u)
{
	float f;

	memcpy(&f, &u, 4);
	return f;
}

/* Every one of the 65536 half values survives a round trip (NaNs stay NaN). */
static void test_fp16_roundtrip(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = aw_fp16_to_f32((aw_fp16)h);
		aw_fp16 back = aw_f32_to_fp16(f);

		if (isnan(f)) {
			assert_true(isnan(aw_fp16_to_f32(back)));
			continue;
		}
		assert_int_equal(back, h);
	}
}

/* Values exactly half-way between two halves round to the even one. */
static void test_fp16_rounding(void **state)
{
	(void)state;
	/* 1 + 2^-11 lies between 1 (0x3c00) and 1 + 2^-10 (0x3c01): even is 0x3c00 */
	assert_int_equal(aw_f32_to_fp16(1.0f + 0x1p-11f), 0x3c00);
	/* 1 + 3*2^-11 lies between 0x3c01 and 0x3c02: even is 0x3c02 */
	assert_int_equal(aw_f32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02);
	assert_int_equal(aw_f32_to_fp16(65504.0f), 0x7bff);
	assert_int_equal(aw_f32_to_fp16(65520.0f), 0x7c00); /* rounds to inf */
	assert_int_equal(aw_f32_to_fp16(1e10f), 0x7c00);
	assert_int_equal(aw_f32_to_fp16(-1e10f), 0xfc00);
	assert_int_equal(aw_f32_to_fp16(0x1p-24f), 0x0001);   /* smallest subnormal */
	assert_int_equal(aw_f32_to_fp16(0x1p-25f), 0x0000);   /* tie to even: 0 */
	assert_int_equal(aw_f32_to_fp16(0x1.8p-25f), 0x0001); /* above the tie */
	assert_int_equal(aw_f32_to_fp16(-0.0f), 0x8000);
	assert_true(isnan(aw_fp16_to_f32(aw_f32_to_fp16(NAN))));
}

static void test_bf16(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = aw_bf16_to_f32((aw_bf16)h);
		if (!isnan(f))
			assert_int_equal(aw_f32_to_bf16(f), h);
	}
	/* 1 + 2^-8 is the tie between 1 and 1 + 2^-7: even is 1.0 (0x3f80) */
	assert_int_equal(aw_f32_to_bf16(bits_f32(0x3f808000)), 0x3f80);
	assert_int_equal(aw_f32_to_bf16(bits_f32(0x3f818000)), 0x3f82);
	assert_true(isnan(aw_bf16_to_f32(aw_f32_to_bf16(NAN))));
}

static void test_type_table(void **state)
{
	(void)state;
	assert_int_equal(aw_type_row_size(AW_TYPE_Q8_0, 64), 68);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_0, 64), 36);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_0, 33), 0);
	assert_int_equal(aw_type_row_size(AW_TYPE_F16, 3), 6);
	assert_int_equal(aw_type_row_size(AW_TYPE_Q4_K, 256), 144);
	assert_int_equal(aw_type_row_size(5, 32), 0); /* a removed GGML type */
	assert_int_equal(aw_type_row_size(1000, 32), 0);
	assert_int_equal(aw_type_from_name("Q8_0"), AW_TYPE_Q8_0);
	assert_int_equal(aw_type_from_name("bf16"), AW_TYPE_BF16);
	assert_true(aw_type_from_name("q9_9") < 0);
	assert_string_equal(aw_type_name(AW_TYPE_Q6_K), "q6_k");
	assert_string_equal(aw_type_name(77), "unknown");
}

/* Q8_0: |x - deq(q(x))| <= d/2 per element (rounding), plus the fp16 error
 * of d itself times |q| <= 127: |d16 - d| <= d * 2^-11. */
static void test_q8_0_bounds(void **state)
{
	enum { N = 32 * 37 };
	static float x[N], y[N];
	static struct aw_block_q8_0 q[N / 32];

	(void)state;
	srand(1);
	for (int i = 0; i < N; i++)
		x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * (i % 7 == 0 ? 100.0f : 2.0f);
	for (int i = 0; i < 32; i++)
		x[64 + i] = 0.0f; /* an all-zero block */
	aw_quant_row(AW_TYPE_Q8_0, x, q, N);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q8_0, q, y, N), 0);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		const float d = amax / 127.0f;
		for (int j = 0; j < 32; j++) {
			const float err = fabsf(x[b * 32 + j] - y[b * 32 + j]);
			assert_true(err <= d * 0.5f + 127.0f * d * 0x1p-11f + 1e-30f);
		}
	}
	for (int i = 0; i < 32; i++)
		assert_true(y[64 + i] == 0.0f);
}

/* Q4_0: the element of largest magnitude maps to -8 exactly; the others are
 * within d/2 (rounding) except at the clamp of +7.5 (then within d). */
static void test_q4_0_bounds(void **state)
{
	enum { N = 32 * 19 };
	static float x[N], y[N];
	static struct aw_block_q4_0 q[N / 32];

	(void)state;
	srand(2);
	for (int i = 0; i < N; i++)
		x[i] = ((float)rand() / (float)RAND_MAX - 0.5f) * 3.0f;
	aw_quant_row(AW_TYPE_Q4_0, x, q, N);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_0, q, y, N), 0);
	for (int b = 0; b < N / 32; b++) {
		float amax = 0;
		for (int j = 0; j < 32; j++)
			amax = fmaxf(amax, fabsf(x[b * 32 + j]));
		const float d = amax / 8.0f;
		for (int j = 0; j < 32; j++) {
			const float err = fabsf(x[b * 32 + j] - y[b * 32 + j]);
			assert_true(err <= d * (1.0f + 0x1p-10f) + 1e-30f);
		}
	}
	/* the known layout: 16 low nibbles then 16 high nibbles */
	float z[32];
	for (int j = 0; j < 32; j++)
		z[j] = (float)(j - 16) / 2.0f; /* -8 .. 7.5 */
	struct aw_block_q4_0 one;
	aw_quant_q4_0(z, &one, 32);
	assert_int_equal(aw_fp16_to_f32(one.d), 1.0f); /* max -8 -> d = 1 */
	assert_int_equal(one.qs[0] & 0x0f, 0);	       /* z[0] = -8 -> q = 0 */
	assert_int_equal(one.qs[0] >> 4, 8);	       /* z[16] = 0 -> q = 8 */
}

static void test_bad_args(void **state)
{
	float x[33] = {0};
	uint8_t buf[64];

	(void)state;
	assert_int_equal(aw_quant_row(AW_TYPE_Q8_0, x, buf, 33), -22);
	assert_int_equal(aw_dequant_row(AW_TYPE_Q4_0, buf, x, 31), -22);
	assert_int_equal(aw_dequant_row(999, buf, x, 1), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp16_roundtrip), cmocka_unit_test(test_fp16_rounding),
		cmocka_unit_test(test_bf16),	       cmocka_unit_test(test_type_table),
		cmocka_unit_test(test_q8_0_bounds),    cmocka_unit_test(test_q4_0_bounds),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
