/* kern.c — choosing the kernel table, and the ISA-independent helpers
 * (matrix descriptors, X16 repacking, row dequantization).
 *
 * The table of variants is ordered best first, like PipeWire's conv_table:
 * aw_kern_select() walks it and takes the first entry whose CPU features are
 * present, after skipping the entries above the AW_ISA cap. Adding an ISA is
 * one file with its own static_library and c_args (inference/meson.build)
 * defining a const struct aw_kern, plus one line here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kern-int.h"
#include "kern-kq-int.h"

struct variant {
	const struct aw_kern *k;
	int (*supported)(void);
};

#if defined(AW_KERN_HAVE_AVX2) || defined(AW_KERN_HAVE_AVX512) || defined(AW_KERN_HAVE_AVX512VNNI)
#include <cpuid.h>
/* F16C is CPUID.1:ECX bit 29; clang 14's __builtin_cpu_supports lacks "f16c". */
static int have_f16c(void)
{
	unsigned a, b, c, d;

	return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

#if defined(AW_KERN_HAVE_AVX2)
static int have_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && have_f16c();
}

#endif
#if defined(AW_KERN_HAVE_AVX512) || defined(AW_KERN_HAVE_AVX512VNNI)
static int have_avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && have_f16c() &&
	       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#endif
#if defined(AW_KERN_HAVE_AVX512VNNI)
static int have_avx512vnni(void)
{
	return have_avx512() && __builtin_cpu_supports("avx512vnni");
}
#endif

#if defined(AW_KERN_HAVE_NEON) || defined(AW_KERN_HAVE_DOTPROD) || defined(AW_KERN_HAVE_I8MM)
#include <sys/auxv.h>
#include <asm/hwcap.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13)
#endif
/* The kernel reports the CPU's features in the aux vector (AT_HWCAP and
 * AT_HWCAP2); Advanced SIMD is architectural on AArch64 but checked anyway. */
static int have_neon(void)
{
	return (getauxval(AT_HWCAP) & HWCAP_ASIMD) != 0;
}

static int have_dotprod(void)
{
	return have_neon() && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
}

static int have_i8mm(void)
{
	return have_dotprod() && (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0;
}
#endif

static int have_any(void)
{
	return 1;
}

static const struct variant variants[] = {
#if defined(AW_KERN_HAVE_AVX512VNNI)
	{&aw_kern_avx512vnni, have_avx512vnni},
#endif
#if defined(AW_KERN_HAVE_AVX512)
	{&aw_kern_avx512, have_avx512},
#endif
#if defined(AW_KERN_HAVE_AVX2)
	{&aw_kern_avx2, have_avx2},
#endif
#if defined(AW_KERN_HAVE_I8MM)
	{&aw_kern_i8mm, have_i8mm},
#endif
#if defined(AW_KERN_HAVE_DOTPROD)
	{&aw_kern_dotprod, have_dotprod},
#endif
#if defined(AW_KERN_HAVE_NEON)
	{&aw_kern_neon, have_neon},
#endif
	{&aw_kern_ref, have_any},
};

#define N_VARIANTS (sizeof(variants) / sizeof(variants[0]))

const struct aw_kern *aw_kern_variant(unsigned i, int *ret_supported)
{
	if (i >= N_VARIANTS)
		return NULL;
	if (ret_supported)
		*ret_supported = variants[i].supported();
	return variants[i].k;
}

static int find(const char *name)
{
	for (unsigned i = 0; i < N_VARIANTS; i++)
		if (strcasecmp(variants[i].k->name, name) == 0)
			return (int)i;
	return -1;
}

const struct aw_kern *aw_kern_select(const char *force)
{
	unsigned first = 0;

	if (force) {
		int i = find(force);

		if (i < 0 || !variants[i].supported())
			return NULL;
		return variants[i].k;
	}
	const char *cap = getenv("AW_ISA");

	if (cap && *cap) {
		int i = find(cap);

		if (i >= 0)
			first = (unsigned)i;
	}
	for (unsigned i = first; i < N_VARIANTS; i++)
		if (variants[i].supported())
			return variants[i].k;
	return &aw_kern_ref;
}

int aw_kern_mat_init(uint32_t type, uint32_t rows, uint32_t cols, const void *data,
		     struct aw_kern_mat *ret_m)
{
	switch (type) {
	case AW_TYPE_F32:
	case AW_TYPE_F16:
	case AW_TYPE_BF16:
	case AW_TYPE_Q8_0:
	case AW_TYPE_Q4_0:
	case AW_TYPE_Q4_1:
	case AW_TYPE_Q5_0:
	case AW_TYPE_Q5_1:
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K:
	case AW_TYPE_Q6_K:
		break;
	default:
		return -EINVAL;
	}
	const size_t row_size = aw_type_row_size(type, cols);

	if (row_size == 0 || rows == 0)
		return -EINVAL;
	*ret_m = (struct aw_kern_mat){
		.type = type,
		.layout = AW_KERN_LAYOUT_ROWS,
		.rows = rows,
		.cols = cols,
		.row_size = row_size,
		.data = data,
	};
	return 0;
}

size_t aw_kern_repack_size(uint32_t type, uint32_t rows, uint32_t cols)
{
	if (aw_kern_kq_repackable(type)) /* KQ8: the GGUF rows, reordered */
		return rows && cols % 256 == 0 ? (size_t)rows * aw_type_row_size(type, cols) : 0;
	if (!aw_kern_x16_type(type) || cols % AW_KERN_QK || rows == 0)
		return 0;
	return (size_t)((rows + 15) / 16) * aw_kern_x16_group_bytes(type, cols / AW_KERN_QK);
}

void aw_kern_mat_prepacked(const struct aw_kern_mat *src, const void *data,
			   struct aw_kern_mat *ret_m)
{
	*ret_m = *src;
	ret_m->data = data;
	if (aw_kern_kq_repackable(src->type)) {
		ret_m->layout = AW_KERN_LAYOUT_KQ8;
	} else {
		ret_m->layout = AW_KERN_LAYOUT_X16;
		ret_m->row_size = 0;
	}
}

int aw_kern_repack(const struct aw_kern_mat *src, void *dst, struct aw_kern_mat *ret_m)
{
	if (aw_kern_kq_repackable(src->type))
		return aw_kern_kq_repack(src, dst, ret_m);
	const size_t size = aw_kern_repack_size(src->type, src->rows, src->cols);
	const uint32_t nb = src->cols / AW_KERN_QK;
	const uint32_t groups = (src->rows + 15) / 16;
	const size_t qbytes = aw_kern_x16_qbytes(src->type);
	const size_t gbytes = aw_kern_x16_group_bytes(src->type, nb);

	if (size == 0 || src->layout != AW_KERN_LAYOUT_ROWS)
		return -EINVAL;
	/* Both layouts move quants in 4-byte runs (four consecutive quants of
	 * one row): copy them as 32-bit words. The load is the cost of a cold
	 * start, so this loop runs at memory speed rather than byte by byte. */
	for (uint32_t g = 0; g < groups; g++) {
		uint8_t *gq = (uint8_t *)dst + g * gbytes;
		aw_fp16 *gd = (aw_fp16 *)(gq + nb * qbytes);

		if (g * 16 + 16 > src->rows || src->type == AW_TYPE_Q5_0)
			memset(gq, 0, gbytes); /* a padded last group; Q5_0's masks are ORed */
		for (uint32_t rr = 0; rr < 16; rr++) {
			const uint32_t r = g * 16 + rr;
			uint32_t w;

			if (r >= src->rows) {
				/* padding rows: scale 0; Q8_0 quant 0 is stored as 0x80 */
				if (src->type == AW_TYPE_Q8_0)
					for (uint32_t b = 0; b < nb; b++)
						for (uint32_t k = 0; k < 8; k++)
							memset(gq + b * qbytes + k * 64 + rr * 4,
							       0x80, 4);
				continue;
			}
			const uint8_t *row = (const uint8_t *)src->data + (size_t)r * src->row_size;

			for (uint32_t b = 0; b < nb; b++) {
				uint8_t *q = gq + b * qbytes + rr * 4;

				if (src->type == AW_TYPE_Q8_0) {
					const struct aw_block_q8_0 *blk =
						(const struct aw_block_q8_0 *)row + b;

					gd[16 * b + rr] = blk->d;
					/* word k of the row's block: quants 4k..4k+3, unsigned */
					for (uint32_t k = 0; k < 8; k++) {
						memcpy(&w, blk->qs + 4 * k, 4);
						w ^= 0x80808080u;
						memcpy(q + k * 64, &w, 4);
					}
				} else if (src->type == AW_TYPE_Q5_0) {
					const struct aw_block_q5_0 *blk =
						(const struct aw_block_q5_0 *)row + b;
					uint32_t qh;

					gd[16 * b + rr] = blk->d;
					for (uint32_t v = 0; v < 4; v++) {
						memcpy(&w, blk->qs + 4 * v, 4);
						memcpy(q + v * 64, &w, 4);
					}
					/* mask k, bit 4rr+j = qh bit 4k+j (elements 4k..4k+3) */
					memcpy(&qh, blk->qh, 4);
					for (uint32_t k = 0; k < 8; k++) {
						uint8_t *mk = gq + b * qbytes + 256 + 8 * k;
						uint64_t mv;

						memcpy(&mv, mk, 8);
						mv |= (uint64_t)(qh >> (4 * k) & 15) << (4 * rr);
						memcpy(mk, &mv, 8);
					}
				} else {
					const struct aw_block_q4_0 *blk =
						(const struct aw_block_q4_0 *)row + b;

					gd[16 * b + rr] = blk->d;
					/* GGML's byte e holds elements e and e+16, as ours do */
					for (uint32_t v = 0; v < 4; v++) {
						memcpy(&w, blk->qs + 4 * v, 4);
						memcpy(q + v * 64, &w, 4);
					}
				}
			}
		}
	}
	*ret_m = *src;
	ret_m->layout = AW_KERN_LAYOUT_X16;
	ret_m->row_size = 0;
	ret_m->data = dst;
	return 0;
}

void aw_kern_mat_row(const struct aw_kern_mat *m, uint32_t r, float *dst)
{
	if (m->layout == AW_KERN_LAYOUT_KQ8) {
		const struct aw_type_info *ti = aw_type_info(m->type);
		const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_size;
		uint8_t blk[256];

		for (uint32_t b = 0; b < m->cols / 256; b++) {
			aw_kern_kq_block(m->type, row + b * ti->size, blk, 1);
			aw_dequant_row(m->type, blk, dst + 256 * b, 256);
		}
		return;
	}
	if (m->layout == AW_KERN_LAYOUT_ROWS) {
		aw_dequant_row(m->type, (const uint8_t *)m->data + (size_t)r * m->row_size, dst,
			       m->cols);
		return;
	}
	const uint32_t g = r / 16, rr = r % 16;

	for (uint32_t b = 0; b < m->cols / AW_KERN_QK; b++) {
		const uint8_t *q = aw_kern_x16_q(m, g, b);
		const float d = aw_fp16_to_f32(aw_kern_x16_d(m, g, b)[rr]);
		float *o = dst + b * AW_KERN_QK;

		for (uint32_t j = 0; j < 16; j++) {
			if (m->type == AW_TYPE_Q5_0) {
				o[j] = d * (float)aw_kern_ref_wq(m, r, b, j);
				o[j + 16] = d * (float)aw_kern_ref_wq(m, r, b, j + 16);
			} else if (m->type == AW_TYPE_Q8_0) {
				o[j] = d * (float)((int)q[(j / 4) * 64 + rr * 4 + j % 4] - 128);
				o[j + 16] = d * (float)((int)q[(j / 4 + 4) * 64 + rr * 4 + j % 4] -
							128);
			} else {
				const uint8_t v = q[(j / 4) * 64 + rr * 4 + j % 4];

				o[j] = d * (float)((v & 15) - 8);
				o[j + 16] = d * (float)((v >> 4) - 8);
			}
		}
	}
}
