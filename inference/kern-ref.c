/* kern-ref.c — the reference kernels: plain C, one loop per kernel, the math
 * in a comment. This file is the specification that every vector version
 * (kern-avx2.c, kern-avx512.c) is tested against; it is written for clarity,
 * not speed, and never uses SIMD intrinsics. It also runs on any CPU, so it is
 * the last entry of the dispatch table.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "kern-int.h"

/* Activation quantization, per 32-element block:
 *   amax = max |x[j]|,  d = amax / 127,  qs[j] = rint(x[j] / d)  (nearest, ties to even,
 *   computed as x[j] * (1/d) so that vector versions reproduce it bit for bit),
 *   sum = sum_j qs[j].  An all-zero block has d = 0 and qs = 0. */
void aw_kern_ref_quant_q8a(const float *x, struct aw_block_q8a *y, size_t n)
{
	for (size_t b = 0; b < n / AW_KERN_QK; b++) {
		const float *xb = x + b * AW_KERN_QK;
		float amax = 0.0f;
		int32_t sum = 0;

		for (int j = 0; j < AW_KERN_QK; j++)
			amax = fmaxf(amax, fabsf(xb[j]));
		const float d = aw_kern_q8a_scale(amax);
		const float id = amax != 0.0f ? 127.0f / amax : 0.0f;

		y[b].d = d;
		for (int j = 0; j < AW_KERN_QK; j++) {
			int q = (int)rintf(xb[j] * id);

			/* x*id can round up to 127.00001 at most; rint keeps |q| <= 127 */
			y[b].qs[j] = (int8_t)q;
			sum += q;
		}
		y[b].sum = sum;
	}
}

int aw_kern_ref_wq(const struct aw_kern_mat *m, uint32_t r, uint32_t b, uint32_t j)
{
	if (m->layout == AW_KERN_LAYOUT_ROWS) {
		const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_size;

		if (m->type == AW_TYPE_Q8_0)
			return ((const struct aw_block_q8_0 *)row)[b].qs[j];
		const struct aw_block_q4_0 *blk = (const struct aw_block_q4_0 *)row + b;
		const uint8_t v = blk->qs[j & 15];

		return (j < 16 ? (v & 15) : (v >> 4)) - 8;
	}
	const uint8_t *q = aw_kern_x16_q(m, r / 16, b);
	const uint32_t rr = r % 16;

	if (m->type == AW_TYPE_Q8_0)
		return (int)q[(j / 4) * 64 + rr * 4 + j % 4] - 128;
	const uint32_t e = j & 15; /* element within its half */
	const uint8_t v = q[(e / 4) * 64 + rr * 4 + e % 4];
	const int nib = j < 16 ? (v & 15) : (v >> 4);

	if (m->type == AW_TYPE_Q5_0) /* fifth bit: mask j/4, bit 4rr + j%4 */
		return (nib | (int)(aw_kern_x16_q5_mask(m, r / 16, b, j / 4) >> (4 * rr + j % 4) &
				    1) << 4) -
		       16;
	return nib - 8;
}

float aw_kern_ref_wd(const struct aw_kern_mat *m, uint32_t r, uint32_t b)
{
	if (m->layout == AW_KERN_LAYOUT_ROWS) {
		const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_size;

		if (m->type == AW_TYPE_Q8_0)
			return aw_fp16_to_f32(((const struct aw_block_q8_0 *)row)[b].d);
		return aw_fp16_to_f32(((const struct aw_block_q4_0 *)row)[b].d);
	}
	return aw_fp16_to_f32(aw_kern_x16_d(m, r / 16, b)[r % 16]);
}

/* Quant l of sub-block s of a KQ8 super-block (kern.h): Q4_K/Q5_K 0..31,
 * Q6_K's 6-bit value before the -32. Header, scales and d are where GGUF
 * has them. */
static int kq8_quant(uint32_t type, const uint8_t *blk, uint32_t s, uint32_t l)
{
	const uint32_t byte = 32 * ((l % 16) / 4) + 4 * s + l % 4, m = l / 4;
	const uint8_t *nib = blk + (type == AW_TYPE_Q4_K ? 16 : type == AW_TYPE_Q5_K ? 48 : 0);
	int v = l < 16 ? nib[byte] & 15 : nib[byte] >> 4;

	if (type == AW_TYPE_Q5_K)
		v |= (blk[16 + 4 * s + l % 4] >> m & 1) << 4;
	else if (type == AW_TYPE_Q6_K)
		v |= (blk[128 + 32 * (m % 2) + 4 * s + l % 4] >> (2 * (m / 2)) & 3) << 4;
	return v;
}

/* Every supported block type, written per 32-element activation block as
 * W[32b+j] = a[j/16] * q[j] + bias with small integer q:
 *   Q4_1:  q = nibble 0..15,        a = d,              bias = m
 *   Q5_0:  q = 5-bit value - 16,    a = d,              bias = 0
 *   Q5_1:  q = 5-bit value 0..31,   a = d,              bias = m
 *   Q4_K:  q = nibble 0..15,        a = d*sc[s],        bias = -dmin*m[s]   (s = b % 8)
 *   Q5_K:  q = 5-bit value 0..31,   a = d*sc[s],        bias = -dmin*m[s]
 *   Q6_K:  q = 6-bit value - 32,    a[g] = d*sc[2s+g],  bias = 0  (two 16-wide scales) */
void aw_kern_ref_kblock(const struct aw_kern_mat *m, uint32_t r, uint32_t b, int8_t q[32],
			float a[2], float *bias)
{
	const uint8_t *row = (const uint8_t *)m->data + (size_t)r * m->row_size;
	const uint32_t s = b % 8; /* sub-block of a 256 super-block */
	const struct aw_type_info *ti = aw_type_info(m->type);
	/* K-quants: the super-block, in GGUF order (KQ8: put back) */
	const uint8_t *kb = ti ? row + (size_t)(b / 8) * ti->size : row;
	const int kq8 = m->layout == AW_KERN_LAYOUT_KQ8;
	*bias = 0.0f;
	switch (m->type) {
	case AW_TYPE_Q4_1: {
		const struct aw_block_q4_1 *k = (const struct aw_block_q4_1 *)row + b;

		for (int j = 0; j < 32; j++)
			q[j] = (int8_t)(j < 16 ? k->qs[j] & 15 : k->qs[j - 16] >> 4);
		a[0] = a[1] = aw_fp16_to_f32(k->d);
		*bias = aw_fp16_to_f32(k->m);
		return;
	}
	case AW_TYPE_Q5_0:
		if (m->layout == AW_KERN_LAYOUT_X16) {
			for (uint32_t j = 0; j < 32; j++)
				q[j] = (int8_t)aw_kern_ref_wq(m, r, b, j);
			a[0] = a[1] = aw_kern_ref_wd(m, r, b);
			return;
		}
		__attribute__((fallthrough));
	case AW_TYPE_Q5_1: {
		const int one = m->type == AW_TYPE_Q5_1;
		const struct aw_block_q5_0 *k0 = (const struct aw_block_q5_0 *)row + b;
		const struct aw_block_q5_1 *k1 = (const struct aw_block_q5_1 *)row + b;
		const uint8_t *qh = one ? k1->qh : k0->qh, *qs = one ? k1->qs : k0->qs;
		const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
				   (uint32_t)qh[3] << 24;

		for (int j = 0; j < 32; j++) {
			const int v = (j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) | (int)((h >> j) & 1)
											<< 4;
			q[j] = (int8_t)(one ? v : v - 16);
		}
		a[0] = a[1] = aw_fp16_to_f32(one ? k1->d : k0->d);
		*bias = one ? aw_fp16_to_f32(k1->m) : 0.0f;
		return;
	}
	case AW_TYPE_Q4_K:
	case AW_TYPE_Q5_K: {
		const int five = m->type == AW_TYPE_Q5_K;
		const struct aw_block_q4_k *k4 = (const struct aw_block_q4_k *)kb;
		const struct aw_block_q5_k *k5 = (const struct aw_block_q5_k *)kb;
		const uint8_t *qs = (five ? k5->qs : k4->qs) + 32 * (s / 2);
		uint8_t sc, mn;

		aw_k_scale_min(five ? k5->scales : k4->scales, (int)s, &sc, &mn);
		for (int j = 0; j < 32; j++) {
			int v = s & 1 ? qs[j] >> 4 : qs[j] & 15;

			if (five)
				v |= (k5->qh[j] >> s & 1) << 4;
			q[j] = (int8_t)(kq8 ? kq8_quant(m->type, kb, s, (uint32_t)j) : v);
		}
		a[0] = a[1] = aw_fp16_to_f32(five ? k5->d : k4->d) * (float)sc;
		*bias = -aw_fp16_to_f32(five ? k5->dmin : k4->dmin) * (float)mn;
		return;
	}
	case AW_TYPE_Q6_K: {
		const struct aw_block_q6_k *k = (const struct aw_block_q6_k *)kb;
		const uint32_t h = s / 4, kk = s % 4;
		const float d = aw_fp16_to_f32(k->d);

		for (int j = 0; j < 32; j++) {
			const uint8_t lo = k->ql[64 * h + 32 * (kk & 1) + (uint32_t)j];
			const int v = (kk < 2 ? lo & 15 : lo >> 4) |
				      (k->qh[32 * h + (uint32_t)j] >> (2 * kk) & 3) << 4;
			q[j] = (int8_t)((kq8 ? kq8_quant(m->type, kb, s, (uint32_t)j) : v) - 32);
		}
		a[0] = d * (float)k->scales[2 * s];
		a[1] = d * (float)k->scales[2 * s + 1];
		return;
	}
	default:
		a[0] = a[1] = 0.0f;
		memset(q, 0, 32);
		return;
	}
}

static float ref_wf(const struct aw_kern_mat *m, uint32_t r, uint32_t i)
{
	const void *row = (const uint8_t *)m->data + (size_t)r * m->row_size;

	switch (m->type) {
	case AW_TYPE_F16:
		return aw_fp16_to_f32(((const aw_fp16 *)row)[i]);
	case AW_TYPE_BF16:
		return aw_bf16_to_f32(((const aw_bf16 *)row)[i]);
	default:
		return ((const float *)row)[i];
	}
}

/* Matrix product.
 *   Float weights:  y[t][r] = sum_i W[r][i] * X[t][i], accumulated in float in order of i.
 *   Q8_0 / Q4_0:    y[t][r] = sum_b (dW[r][b] * dX[t][b]) * isum,
 *                   isum = sum_{j<32} qW[r][32b+j] * qX[t][32b+j]  (exact int32),
 *                   the float product dW*dX rounded once, then times isum, accumulated
 *                   in float in order of b.
 *   Other block types (aw_kern_ref_kblock's form W = a[j/16]*q[j] + bias, per block b):
 *                   y[t][r] = sum_b dX * (a0 * isum0 + a1 * isum1 + bias * sumX),
 *                   isum_g = sum_{j in half g} q[j] * qX[j] (exact int32), sumX = the
 *                   activation block's stored sum, so the min/bias term costs no
 *                   second pass; the bracket evaluated left to right in float. */
void aw_kern_ref_matmul(const struct aw_kern_mat *w, const struct aw_kern_in *in, float *y,
			size_t ldy, uint32_t r0, uint32_t r1)
{
	const uint32_t nb = w->cols / AW_KERN_QK;
	const int quant = w->type == AW_TYPE_Q8_0 || w->type == AW_TYPE_Q4_0;
	const int kq = aw_kern_type_kq(w->type);

	for (uint32_t t = 0; t < in->n_tok; t++) {
		for (uint32_t r = r0; r < r1; r++) {
			float acc = 0.0f;

			if (kq) {
				for (uint32_t b = 0; b < nb; b++) {
					const struct aw_block_q8a *xb = in->xq + (size_t)t * nb + b;
					int8_t q[32];
					float a[2], bias;
					int32_t isum[2] = {0, 0};

					aw_kern_ref_kblock(w, r, b, q, a, &bias);
					for (uint32_t j = 0; j < AW_KERN_QK; j++)
						isum[j / 16] += q[j] * xb->qs[j];
					acc += xb->d *
					       (a[0] * (float)isum[0] + a[1] * (float)isum[1] +
						bias * (float)xb->sum);
				}
				y[(size_t)t * ldy + r] = acc;
				continue;
			}
			if (!quant) {
				const float *x = in->x + (size_t)t * in->n_in;

				for (uint32_t i = 0; i < w->cols; i++)
					acc += ref_wf(w, r, i) * x[i];
				y[(size_t)t * ldy + r] = acc;
				continue;
			}
			for (uint32_t b = 0; b < nb; b++) {
				const struct aw_block_q8a *xb = in->xq + (size_t)t * nb + b;
				int32_t isum = 0;

				for (uint32_t j = 0; j < AW_KERN_QK; j++)
					isum += aw_kern_ref_wq(w, r, b, j) * xb->qs[j];
				const float s = aw_kern_ref_wd(w, r, b) * xb->d;

				acc += s * (float)isum;
			}
			y[(size_t)t * ldy + r] = acc;
		}
	}
}

/* y[i] = x[i] * (1 / sqrt(ss / n + eps)) * w[i], ss = sum x^2 accumulated in float. */
void aw_kern_ref_rmsnorm(float *y, const float *x, const float *w, size_t n, float eps)
{
	float ss = 0.0f;

	for (size_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	const float scale = 1.0f / sqrtf(ss / (float)n + eps);

	for (size_t i = 0; i < n; i++)
		y[i] = x[i] * scale * w[i];
}

void aw_kern_rope_freqs(double *freq, const struct aw_kern_rope *rope)
{
	for (uint32_t i = 0; i < rope->n_rot / 2; i++) {
		freq[i] = pow((double)rope->freq_base, -2.0 * i / rope->n_rot);
		if (rope->freq_factors)
			freq[i] /= rope->freq_factors[i];
	}
}

/* The same frequencies by the recurrence freq[i] = freq[i-1] * base^(-2/n_rot)
 * (one pow instead of n_rot/2), padded with zeros to a multiple of 8 entries:
 * each step rounds once more, so freq[i] is within 2 (i + 1) 2^-53 relative of
 * aw_kern_rope_freqs()'s, and an angle pos * freq[i] within |pos| n_rot 2^-53
 * radians of the reference's (1e-9 at pos 2^17, n_rot 128; a float ulp of 1
 * is 1.2e-7). For the vector kernels; 'freq' holds (n_rot/2 + 7) / 8 * 8. */
void aw_kern_rope_freqs_fast(double *freq, const struct aw_kern_rope *rope)
{
	const uint32_t half = rope->n_rot / 2;
	const double r = pow((double)rope->freq_base, -2.0 / rope->n_rot);
	double f = 1.0;

	for (uint32_t i = 0; i < half; i++, f *= r)
		freq[i] = rope->freq_factors ? f / rope->freq_factors[i] : f;
	for (uint32_t i = half; i < (half + 7) / 8 * 8; i++)
		freq[i] = 0.0;
}

void aw_kern_rope_angles(float *cs, int32_t pos, const double *freq, uint32_t n_rot)
{
	for (uint32_t i = 0; i < n_rot / 2; i++) {
		double s, c;

		sincos((double)pos * freq[i], &s, &c);
		cs[2 * i] = (float)c;
		cs[2 * i + 1] = (float)s;
	}
}

/* (a, b) <- (a c - b s, a s + b c) with c, s from aw_kern_rope_angles(). */
void aw_kern_ref_rope(float *x, size_t ldx, uint32_t n_tok, const int32_t *pos, uint32_t n_heads,
		      const struct aw_kern_rope *rope)
{
	float cs[1024];
	double freq[512];
	const uint32_t half = rope->n_rot / 2;

	assert(rope->n_rot <= 1024 && rope->n_rot <= rope->head_dim);
	aw_kern_rope_freqs(freq, rope);
	for (uint32_t t = 0; t < n_tok; t++) {
		if (t == 0 || pos[t] != pos[t - 1])
			aw_kern_rope_angles(cs, pos[t], freq, rope->n_rot);
		for (uint32_t h = 0; h < n_heads; h++) {
			float *xh = x + t * ldx + (size_t)h * rope->head_dim;

			for (uint32_t i = 0; i < half; i++) {
				const uint32_t ia = rope->mode == AW_KERN_ROPE_NEOX ? i : 2 * i;
				const uint32_t ib =
					rope->mode == AW_KERN_ROPE_NEOX ? i + half : 2 * i + 1;
				const float a = xh[ia], b = xh[ib];
				const float c = cs[2 * i], s = cs[2 * i + 1];

				xh[ia] = a * c - b * s;
				xh[ib] = a * s + b * c;
			}
		}
	}
}

/* x[i] = exp(x[i] - m) / sum, m = max x, sum = sum_j exp(x[j] - m) in float. */
void aw_kern_ref_softmax(float *x, size_t n)
{
	float m = -INFINITY, sum = 0.0f;

	for (size_t i = 0; i < n; i++)
		m = fmaxf(m, x[i]);
	for (size_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - m);
		sum += x[i];
	}
	const float inv = 1.0f / sum;

	for (size_t i = 0; i < n; i++)
		x[i] *= inv;
}

static float kv_get(const struct aw_kern_kv *kv, uint32_t i, uint32_t d)
{
	const void *row = aw_kern_kv_row(kv, i);

	if (kv->type == AW_TYPE_F16)
		return aw_fp16_to_f32(((const aw_fp16 *)row)[d]);
	return ((const float *)row)[d];
}

/* For each head h:  s_i = scale * sum_d q[h][d] K[i][d],  m = max s,
 *   l = sum_i exp(s_i - m),  out[h][d] = sum_i exp(s_i - m) * V[i][d] / l.
 * Two passes over K (max, then weights) and one over V; float throughout. */
void aw_kern_ref_attn(float *out, size_t ldo, const float *q, size_t ldq, uint32_t n_q,
		      const struct aw_kern_kv *k, const struct aw_kern_kv *v, uint32_t n_kv,
		      uint32_t head_dim, float scale)
{
	for (uint32_t h = 0; h < n_q; h++) {
		const float *qh = q + h * ldq;
		float *oh = out + h * ldo;
		float m = -INFINITY, l = 0.0f;

		for (uint32_t i = 0; i < n_kv; i++) {
			float s = 0.0f;

			for (uint32_t d = 0; d < head_dim; d++)
				s += qh[d] * kv_get(k, i, d);
			m = fmaxf(m, s * scale);
		}
		for (uint32_t d = 0; d < head_dim; d++)
			oh[d] = 0.0f;
		for (uint32_t i = 0; i < n_kv; i++) {
			float s = 0.0f;

			for (uint32_t d = 0; d < head_dim; d++)
				s += qh[d] * kv_get(k, i, d);
			const float p = expf(s * scale - m);

			l += p;
			for (uint32_t d = 0; d < head_dim; d++)
				oh[d] += p * kv_get(v, i, d);
		}
		for (uint32_t d = 0; d < head_dim; d++)
			oh[d] /= l;
	}
}

/* y = g / (1 + exp(-g)) * u */
void aw_kern_ref_silu_mul(float *y, const float *g, const float *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void aw_kern_ref_add(float *y, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = a[i] + b[i];
}

const struct aw_kern aw_kern_ref = {
	.name = "ref",
	.quant_q8a = aw_kern_ref_quant_q8a,
	.matmul = aw_kern_ref_matmul,
	.rmsnorm = aw_kern_ref_rmsnorm,
	.rope = aw_kern_ref_rope,
	.softmax = aw_kern_ref_softmax,
	.attn = aw_kern_ref_attn,
	.silu_mul = aw_kern_ref_silu_mul,
	.add = aw_kern_ref_add,
};
