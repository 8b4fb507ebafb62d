/* gguf-write.c — the GGUF writer: collects key/values and tensors, then
 * writes a version 3 file in one sequential pass.
 *
 * Values are stored already encoded (the bytes that follow the u32 type in
 * the file), so copying a key from a parsed file is a memcpy and writing is a
 * concatenation. Tensor data is either referenced (add_tensor) or produced
 * by a callback at write time (add_tensor_fill), one tensor at a time, which
 * keeps the memory of a 1 GB model at its largest tensor. Output is a pure
 * function of the calls made: same calls, same bytes.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"

struct wkv {
	char *key;
	uint32_t type;
	uint8_t *raw; /* encoded value */
	size_t raw_len;
};

struct wtensor {
	char *name;
	uint32_t type;
	uint32_t n_dims;
	uint64_t ne[AW_GGUF_MAX_DIMS];
	uint64_t size;
	uint64_t offset; /* in the data region, assigned at write time */
	const void *data;
	aw_gguf_fill_fn *fill;
	void *ctx;
};

struct aw_gguf_writer {
	struct wkv *kvs;
	size_t n_kv, cap_kv;
	struct wtensor *ts;
	size_t n_t, cap_t;
	uint32_t alignment;
};

int aw_gguf_writer_new(struct aw_gguf_writer **ret_w)
{
	struct aw_gguf_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->alignment = AW_GGUF_DEFAULT_ALIGNMENT;
	*ret_w = w;
	return 0;
}

void aw_gguf_writer_free(struct aw_gguf_writer *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_kv; i++) {
		free(w->kvs[i].key);
		free(w->kvs[i].raw);
	}
	for (size_t i = 0; i < w->n_t; i++)
		free(w->ts[i].name);
	free(w->kvs);
	free(w->ts);
	free(w);
}

int aw_gguf_writer_set_raw(struct aw_gguf_writer *w, const char *key, uint32_t type,
			   const void *raw, size_t len)
{
	struct wkv *kv = NULL;
	uint8_t *copy;

	if (!key || !key[0] || type >= AW_GGUF_TYPE_COUNT)
		return -EINVAL;
	if (strcmp(key, "general.alignment") == 0) {
		uint32_t a;

		if (type != AW_GGUF_TYPE_UINT32 || len != 4)
			return -EINVAL;
		memcpy(&a, raw, 4);
		if (a == 0 || (a & (a - 1)))
			return -EINVAL;
		w->alignment = a;
	}
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, raw, len);
	for (size_t i = 0; i < w->n_kv; i++)
		if (strcmp(w->kvs[i].key, key) == 0) {
			kv = &w->kvs[i];
			break;
		}
	if (!kv) {
		char *k;

		if (w->n_kv == w->cap_kv) {
			size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
			struct wkv *n = realloc(w->kvs, cap * sizeof(*n));

			if (!n) {
				free(copy);
				return -ENOMEM;
			}
			w->kvs = n;
			w->cap_kv = cap;
		}
		k = strdup(key);
		if (!k) {
			free(copy);
			return -ENOMEM;
		}
		kv = &w->kvs[w->n_kv++];
		kv->key = k;
		kv->raw = NULL;
	}
	free(kv->raw);
	kv->type = type;
	kv->raw = copy;
	kv->raw_len = len;
	return 0;
}

int aw_gguf_writer_set_scalar(struct aw_gguf_writer *w, const char *key, uint32_t type,
			      const void *v)
{
	size_t n = aw_gguf_type_size(type);

	if (n == 0)
		return -EINVAL;
	if (type == AW_GGUF_TYPE_BOOL && *(const uint8_t *)v > 1)
		return -EINVAL;
	return aw_gguf_writer_set_raw(w, key, type, v, n);
}

int aw_gguf_writer_set_u32(struct aw_gguf_writer *w, const char *key, uint32_t v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_UINT32, &v);
}

int aw_gguf_writer_set_i32(struct aw_gguf_writer *w, const char *key, int32_t v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_INT32, &v);
}

int aw_gguf_writer_set_u64(struct aw_gguf_writer *w, const char *key, uint64_t v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_UINT64, &v);
}

int aw_gguf_writer_set_i64(struct aw_gguf_writer *w, const char *key, int64_t v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_INT64, &v);
}

int aw_gguf_writer_set_f32(struct aw_gguf_writer *w, const char *key, float v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_FLOAT32, &v);
}

int aw_gguf_writer_set_f64(struct aw_gguf_writer *w, const char *key, double v)
{
	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_FLOAT64, &v);
}

int aw_gguf_writer_set_bool(struct aw_gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v ? 1 : 0;

	return aw_gguf_writer_set_scalar(w, key, AW_GGUF_TYPE_BOOL, &b);
}

int aw_gguf_writer_set_strn(struct aw_gguf_writer *w, const char *key, const char *s, size_t len)
{
	uint64_t n = len;
	uint8_t *raw = malloc(8 + len);
	int r;

	if (!raw)
		return -ENOMEM;
	memcpy(raw, &n, 8);
	if (len)
		memcpy(raw + 8, s, len);
	r = aw_gguf_writer_set_raw(w, key, AW_GGUF_TYPE_STRING, raw, 8 + len);
	free(raw);
	return r;
}

int aw_gguf_writer_set_str(struct aw_gguf_writer *w, const char *key, const char *s)
{
	return aw_gguf_writer_set_strn(w, key, s, strlen(s));
}

int aw_gguf_writer_set_arr(struct aw_gguf_writer *w, const char *key, uint32_t elem_type,
			   uint64_t n, const void *data)
{
	size_t es = aw_gguf_type_size(elem_type), len;
	uint8_t *raw;
	int r;

	if (es == 0 || n > (SIZE_MAX - 12) / es)
		return -EINVAL;
	if (elem_type == AW_GGUF_TYPE_BOOL)
		for (uint64_t i = 0; i < n; i++)
			if (((const uint8_t *)data)[i] > 1)
				return -EINVAL;
	len = 12 + n * es;
	raw = malloc(len);
	if (!raw)
		return -ENOMEM;
	memcpy(raw, &elem_type, 4);
	memcpy(raw + 4, &n, 8);
	if (n)
		memcpy(raw + 12, data, n * es);
	r = aw_gguf_writer_set_raw(w, key, AW_GGUF_TYPE_ARRAY, raw, len);
	free(raw);
	return r;
}

int aw_gguf_writer_set_arr_str(struct aw_gguf_writer *w, const char *key, uint64_t n,
			       const char *const *strs, const size_t *lens)
{
	uint32_t et = AW_GGUF_TYPE_STRING;
	size_t len = 12, o;
	uint8_t *raw;
	int r;

	for (uint64_t i = 0; i < n; i++)
		len += 8 + (lens ? lens[i] : strlen(strs[i]));
	raw = malloc(len);
	if (!raw)
		return -ENOMEM;
	memcpy(raw, &et, 4);
	memcpy(raw + 4, &n, 8);
	o = 12;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t sl = lens ? lens[i] : strlen(strs[i]);

		memcpy(raw + o, &sl, 8);
		if (sl)
			memcpy(raw + o + 8, strs[i], sl);
		o += 8 + sl;
	}
	r = aw_gguf_writer_set_raw(w, key, AW_GGUF_TYPE_ARRAY, raw, len);
	free(raw);
	return r;
}

int aw_gguf_writer_copy_kvs(struct aw_gguf_writer *w, const struct aw_gguf *g, const char *prefix)
{
	size_t pl = strlen(prefix);
	int copied = 0;

	for (int i = 0; (uint64_t)i < aw_gguf_n_kv(g); i++) {
		const char *k;
		const void *raw;
		size_t kl, rl;
		char *key;
		int r;

		aw_gguf_key_at(g, i, &k, &kl);
		if (kl < pl || memcmp(k, prefix, pl) != 0)
			continue;
		aw_gguf_kv_raw(g, i, &raw, &rl);
		key = strndup(k, kl);
		if (!key)
			return -ENOMEM;
		r = aw_gguf_writer_set_raw(w, key, (uint32_t)aw_gguf_kv_type(g, i), raw, rl);
		free(key);
		if (r < 0)
			return r;
		copied++;
	}
	return copied;
}

static int add_tensor(struct aw_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
		      const uint64_t *ne, struct wtensor **ret_t)
{
	const struct aw_type_info *ti = aw_type_info(type);
	uint64_t n = 1, size;
	struct wtensor *t;
	size_t nl;

	if (!name || !ti || n_dims < 1 || n_dims > AW_GGUF_MAX_DIMS)
		return -EINVAL;
	nl = strlen(name);
	if (nl == 0 || nl > AW_GGUF_MAX_NAME)
		return -EINVAL;
	for (uint32_t d = 0; d < n_dims; d++)
		if (ne[d] == 0 || ne[d] > INT64_MAX || __builtin_mul_overflow(n, ne[d], &n) ||
		    n > INT64_MAX)
			return -EINVAL;
	if (ne[0] % ti->block)
		return -EINVAL;
	if (__builtin_mul_overflow(ne[0] / ti->block * ti->size, n / ne[0], &size) ||
	    size > INT64_MAX)
		return -EINVAL;
	for (size_t i = 0; i < w->n_t; i++)
		if (strcmp(w->ts[i].name, name) == 0)
			return -EEXIST;
	if (w->n_t == w->cap_t) {
		size_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *nt = realloc(w->ts, cap * sizeof(*nt));

		if (!nt)
			return -ENOMEM;
		w->ts = nt;
		w->cap_t = cap;
	}
	t = &w->ts[w->n_t];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	w->n_t++;
	t->type = type;
	t->n_dims = n_dims;
	for (uint32_t d = 0; d < AW_GGUF_MAX_DIMS; d++)
		t->ne[d] = d < n_dims ? ne[d] : 1;
	t->size = size;
	*ret_t = t;
	return 0;
}

int aw_gguf_writer_add_tensor(struct aw_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const uint64_t *ne, const void *data, size_t size)
{
	const struct aw_type_info *ti = aw_type_info(type);
	struct wtensor *t;
	uint64_t n = 1;
	int r;

	/* check the size before adding, so that a refused tensor leaves no trace */
	if (!ti || n_dims < 1 || n_dims > AW_GGUF_MAX_DIMS)
		return -EINVAL;
	for (uint32_t d = 0; d < n_dims; d++)
		if (ne[d] == 0 || __builtin_mul_overflow(n, ne[d], &n))
			return -EINVAL;
	if (ne[0] % ti->block || n / ne[0] * (ne[0] / ti->block * ti->size) != size)
		return -EINVAL;
	r = add_tensor(w, name, type, n_dims, ne, &t);
	if (r < 0)
		return r;
	t->data = data;
	return 0;
}

int aw_gguf_writer_add_tensor_fill(struct aw_gguf_writer *w, const char *name, uint32_t type,
				   uint32_t n_dims, const uint64_t *ne, aw_gguf_fill_fn *fill,
				   void *ctx)
{
	struct wtensor *t;
	int r;

	if (!fill)
		return -EINVAL;
	r = add_tensor(w, name, type, n_dims, ne, &t);
	if (r < 0)
		return r;
	t->fill = fill;
	t->ctx = ctx;
	return 0;
}

/* ---- output ---- */

/* A byte sink: a file descriptor or a growing buffer. */
struct sink {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	uint64_t off; /* bytes written so far */
	struct aw_err *err;
	const char *path;
};

static int put(struct sink *s, const void *p, size_t n)
{
	if (s->fd >= 0) {
		const uint8_t *q = p;

		while (n) {
			ssize_t k = write(s->fd, q, n);

			if (k < 0) {
				if (errno == EINTR)
					continue;
				return aw_err_set(s->err, errno, "write %s: %s", s->path,
						  strerror(errno));
			}
			q += k;
			n -= (size_t)k;
			s->off += (uint64_t)k;
		}
		return 0;
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		uint8_t *nb;

		while (cap < s->len + n)
			cap *= 2;
		nb = realloc(s->buf, cap);
		if (!nb)
			return aw_err_set(s->err, ENOMEM, "out of memory");
		s->buf = nb;
		s->cap = cap;
	}
	if (n)
		memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->off += n;
	return 0;
}

static int put_zeros(struct sink *s, uint64_t n)
{
	static const uint8_t zeros[256];

	while (n) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		int r = put(s, zeros, k);

		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

static int put_u32(struct sink *s, uint32_t v)
{
	return put(s, &v, 4);
}

static int put_u64(struct sink *s, uint64_t v)
{
	return put(s, &v, 8);
}

static int put_str(struct sink *s, const char *str)
{
	size_t n = strlen(str);
	int r = put_u64(s, n);

	return r < 0 ? r : put(s, str, n);
}

static uint64_t align_up(uint64_t x, uint32_t a)
{
	return (x + a - 1) / a * a;
}

static int emit(struct aw_gguf_writer *w, struct sink *s)
{
	uint64_t off = 0, max = 0;
	void *scratch = NULL;
	int r;

	/* assign offsets */
	for (size_t i = 0; i < w->n_t; i++) {
		w->ts[i].offset = off;
		off = align_up(off + w->ts[i].size, w->alignment);
		if (w->ts[i].fill && w->ts[i].size > max)
			max = w->ts[i].size;
	}

	if ((r = put_u32(s, AW_GGUF_MAGIC)) < 0 || (r = put_u32(s, 3)) < 0 ||
	    (r = put_u64(s, w->n_t)) < 0 || (r = put_u64(s, w->n_kv)) < 0)
		return r;
	for (size_t i = 0; i < w->n_kv; i++) {
		const struct wkv *kv = &w->kvs[i];

		if ((r = put_str(s, kv->key)) < 0 || (r = put_u32(s, kv->type)) < 0 ||
		    (r = put(s, kv->raw, kv->raw_len)) < 0)
			return r;
	}
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->ts[i];

		if ((r = put_str(s, t->name)) < 0 || (r = put_u32(s, t->n_dims)) < 0)
			return r;
		for (uint32_t d = 0; d < t->n_dims; d++)
			if ((r = put_u64(s, t->ne[d])) < 0)
				return r;
		if ((r = put_u32(s, t->type)) < 0 || (r = put_u64(s, t->offset)) < 0)
			return r;
	}
	/* the data region starts aligned; a file without tensors ends here */
	if (w->n_t && (r = put_zeros(s, align_up(s->off, w->alignment) - s->off)) < 0)
		return r;

	if (max) {
		scratch = malloc(max);
		if (!scratch)
			return aw_err_set(s->err, ENOMEM, "out of memory for a %llu-byte tensor",
					  (unsigned long long)max);
	}
	for (size_t i = 0; i < w->n_t; i++) {
		const struct wtensor *t = &w->ts[i];
		const void *data = t->data;

		if (t->fill) {
			r = t->fill(t->ctx, t->name, scratch, t->size);
			if (r < 0) {
				r = aw_err_set(s->err, -r, "tensor '%.64s': fill failed: %s",
					       t->name, strerror(-r));
				goto out;
			}
			data = scratch;
		}
		if ((r = put(s, data, t->size)) < 0)
			goto out;
		/* pad every tensor, the last too (as ggml does): the file ends aligned */
		if ((r = put_zeros(s, align_up(t->size, w->alignment) - t->size)) < 0)
			goto out;
	}
	r = 0;
out:
	free(scratch);
	return r;
}

int aw_gguf_writer_write_buf(struct aw_gguf_writer *w, void **ret_buf, size_t *ret_len,
			     struct aw_err *err)
{
	struct sink s = {.fd = -1, .err = err};
	int r;

	aw_err_clear(err);
	r = emit(w, &s);
	if (r < 0) {
		free(s.buf);
		return r;
	}
	*ret_buf = s.buf ? s.buf : malloc(1);
	if (!*ret_buf)
		return aw_err_set(err, ENOMEM, "out of memory");
	*ret_len = s.len;
	return 0;
}

int aw_gguf_writer_write(struct aw_gguf_writer *w, const char *path, struct aw_err *err)
{
	struct sink s = {.fd = -1, .err = err, .path = path};
	char *tmp;
	int r;

	aw_err_clear(err);
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return aw_err_set(err, ENOMEM, "out of memory");
	s.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (s.fd < 0) {
		r = aw_err_set(err, errno, "open %s: %s", tmp, strerror(errno));
		free(tmp);
		return r;
	}
	r = emit(w, &s);
	if (close(s.fd) < 0 && r == 0)
		r = aw_err_set(err, errno, "close %s: %s", tmp, strerror(errno));
	if (r == 0 && rename(tmp, path) < 0)
		r = aw_err_set(err, errno, "rename %s to %s: %s", tmp, path, strerror(errno));
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}
