/* gguf.c — the GGUF reader: maps a file, checks every byte it will later
 * trust, and indexes keys and tensors.
 *
 * Parsing is one forward pass over the header, the key/values and the tensor
 * infos with a bounds-checked cursor; every length is compared with the bytes
 * left before it is used, and every count is compared with the smallest
 * number of bytes its items could occupy before anything is allocated for it.
 * A second pass over the tensors (sorted by offset) checks the data region.
 * Keys and tensor names go into open-addressing hash tables so that lookups
 * do not scan; string arrays get an offset table so that element i of a
 * 150k-entry vocabulary is one load. See gguf.h for the format.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

struct kv {
	uint64_t key_off;  /* file offset of the key bytes */
	uint64_t key_len;  /* bytes in the key */
	uint32_t type;	   /* enum aw_gguf_type */
	uint64_t val_off;  /* file offset of the value (after the u32 type) */
	uint64_t val_len;  /* bytes of the encoded value */
	uint32_t arr_type; /* arrays: element type */
	uint64_t arr_n;	   /* arrays: element count */
	uint64_t arr_off;  /* arrays: file offset of the first element */
	uint64_t *str_off; /* string arrays: file offset of each element's u64 length */
};

struct aw_gguf {
	const uint8_t *base; /* file image */
	uint64_t len;	     /* bytes in the image */
	void *map;	     /* mmap'd address (aw_gguf_open) or NULL */
	size_t map_len;
	char *path; /* copy of the path, or NULL */
	uint32_t version;
	uint32_t alignment;
	uint64_t n_kv;
	uint64_t n_tensors;
	uint64_t data_off;
	uint64_t data_size;
	struct kv *kvs;			/* (n_kv) */
	struct aw_gguf_tensor *tensors; /* (n_tensors) */
	char *names;			/* NUL-terminated tensor names, back to back */
	uint32_t *kv_hash;		/* open addressing: index + 1, 0 = empty */
	uint32_t *t_hash;
	uint64_t kv_hash_mask;
	uint64_t t_hash_mask;
};

static const struct {
	const char *name;
	size_t size;
} vtypes[AW_GGUF_TYPE_COUNT] = {
	[AW_GGUF_TYPE_UINT8] = {"uint8", 1},	 [AW_GGUF_TYPE_INT8] = {"int8", 1},
	[AW_GGUF_TYPE_UINT16] = {"uint16", 2},	 [AW_GGUF_TYPE_INT16] = {"int16", 2},
	[AW_GGUF_TYPE_UINT32] = {"uint32", 4},	 [AW_GGUF_TYPE_INT32] = {"int32", 4},
	[AW_GGUF_TYPE_FLOAT32] = {"float32", 4}, [AW_GGUF_TYPE_BOOL] = {"bool", 1},
	[AW_GGUF_TYPE_STRING] = {"string", 0},	 [AW_GGUF_TYPE_ARRAY] = {"array", 0},
	[AW_GGUF_TYPE_UINT64] = {"uint64", 8},	 [AW_GGUF_TYPE_INT64] = {"int64", 8},
	[AW_GGUF_TYPE_FLOAT64] = {"float64", 8},
};

size_t aw_gguf_type_size(uint32_t t)
{
	return t < AW_GGUF_TYPE_COUNT ? vtypes[t].size : 0;
}

const char *aw_gguf_type_name(uint32_t t)
{
	return t < AW_GGUF_TYPE_COUNT ? vtypes[t].name : "unknown";
}

/* Fill 'err' and return -EBADMSG (a constant the compiler can follow). */
__attribute__((format(printf, 2, 3))) static int bad(struct aw_err *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;

		err->code = EBADMSG;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* ---- bounds-checked cursor ---- */

struct cur {
	const uint8_t *p;
	uint64_t len;
	uint64_t off;
	struct aw_err *err;
	char what[96]; /* the field being parsed, for error messages */
};

__attribute__((format(printf, 2, 3))) static void cur_what(struct cur *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->what, sizeof(c->what), fmt, ap);
	va_end(ap);
}

static int truncated(struct cur *c, const char *field, uint64_t need)
{
	return bad(c->err,
		   "%s%s%s at offset 0x%llx: truncated (needs %llu bytes, file size 0x%llx)",
		   c->what, c->what[0] ? " " : "", field, (unsigned long long)c->off,
		   (unsigned long long)need, (unsigned long long)c->len);
}

static int rd(struct cur *c, void *dst, uint64_t n, const char *field)
{
	if (n > c->len - c->off)
		return truncated(c, field, n);
	memcpy(dst, c->p + c->off, n);
	c->off += n;
	return 0;
}

static int rd_u32(struct cur *c, uint32_t *v, const char *field)
{
	return rd(c, v, 4, field);
}

static int rd_u64(struct cur *c, uint64_t *v, const char *field)
{
	return rd(c, v, 8, field);
}

/* A string: sets *ret_off and *ret_len to its bytes, which lie inside the file. */
static int rd_str(struct cur *c, uint64_t *ret_off, uint64_t *ret_len, const char *field)
{
	uint64_t at = c->off, n = 0;
	int r;

	r = rd_u64(c, &n, field);
	if (r < 0)
		return r;
	if (n > c->len - c->off)
		return bad(c->err,
			   "%s%s%s at offset 0x%llx: length %llu beyond file end (size 0x%llx)",
			   c->what, c->what[0] ? " " : "", field, (unsigned long long)at,
			   (unsigned long long)n, (unsigned long long)c->len);
	*ret_off = c->off;
	*ret_len = n;
	c->off += n;
	return 0;
}

static uint64_t bytes_left(const struct cur *c)
{
	return c->len - c->off;
}

/* ---- hashing ---- */

static uint64_t hash_bytes(const void *s, size_t n)
{
	const uint8_t *p = s;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t hash_cap(uint64_t n)
{
	uint64_t cap = 16;

	while (cap < 2 * n)
		cap <<= 1;
	return cap;
}

static const char *kv_key(const struct aw_gguf *g, const struct kv *kv)
{
	return (const char *)g->base + kv->key_off;
}

/* Find 'key' of 'n' bytes; returns the index or -ENOENT. */
static int kv_lookup(const struct aw_gguf *g, const char *key, size_t n)
{
	if (!g->kv_hash)
		return -ENOENT;
	for (uint64_t h = hash_bytes(key, n) & g->kv_hash_mask;; h = (h + 1) & g->kv_hash_mask) {
		uint32_t slot = g->kv_hash[h];
		const struct kv *kv;

		if (!slot)
			return -ENOENT;
		kv = &g->kvs[slot - 1];
		if (kv->key_len == n && memcmp(kv_key(g, kv), key, n) == 0)
			return (int)(slot - 1);
	}
}

static int t_lookup(const struct aw_gguf *g, const char *name, size_t n)
{
	if (!g->t_hash)
		return -ENOENT;
	for (uint64_t h = hash_bytes(name, n) & g->t_hash_mask;; h = (h + 1) & g->t_hash_mask) {
		uint32_t slot = g->t_hash[h];
		const struct aw_gguf_tensor *t;

		if (!slot)
			return -ENOENT;
		t = &g->tensors[slot - 1];
		if (t->name_len == n && memcmp(t->name, name, n) == 0)
			return (int)(slot - 1);
	}
}

/* ---- metadata ---- */

/* Skip one value of type 'type' at the cursor, checking it. 'depth' counts
 * array nesting. Work is bounded by the file size: every element consumes at
 * least one byte (a nested array at least 12). */
static int skip_value(struct cur *c, uint32_t type, int depth)
{
	uint64_t at = c->off, n = 0, soff, slen;
	uint32_t et = 0;
	uint8_t b = 0;
	int r;

	switch (type) {
	case AW_GGUF_TYPE_STRING:
		return rd_str(c, &soff, &slen, "string value");
	case AW_GGUF_TYPE_BOOL:
		r = rd(c, &b, 1, "bool value");
		if (r < 0)
			return r;
		if (b > 1)
			return bad(c->err, "%s bool value at offset 0x%llx: %u is not 0 or 1",
				   c->what, (unsigned long long)at, b);
		return 0;
	case AW_GGUF_TYPE_ARRAY:
		if (depth >= AW_GGUF_MAX_DEPTH)
			return bad(c->err, "%s array at offset 0x%llx: nested deeper than %d",
				   c->what, (unsigned long long)at, AW_GGUF_MAX_DEPTH);
		r = rd_u32(c, &et, "array element type");
		if (r < 0)
			return r;
		if (et >= AW_GGUF_TYPE_COUNT)
			return bad(c->err,
				   "%s array element type at offset 0x%llx: unknown type %u",
				   c->what, (unsigned long long)at, et);
		r = rd_u64(c, &n, "array length");
		if (r < 0)
			return r;
		if (et == AW_GGUF_TYPE_STRING || et == AW_GGUF_TYPE_ARRAY) {
			uint64_t min = et == AW_GGUF_TYPE_STRING ? 8 : 12;

			if (n > bytes_left(c) / min)
				return bad(c->err,
					   "%s array length at offset 0x%llx: %llu elements beyond "
					   "file end (size 0x%llx)",
					   c->what, (unsigned long long)(at + 4),
					   (unsigned long long)n, (unsigned long long)c->len);
			for (uint64_t i = 0; i < n; i++) {
				r = skip_value(c, et, depth + 1);
				if (r < 0)
					return r;
			}
			return 0;
		}
		if (n > bytes_left(c) / vtypes[et].size)
			return bad(c->err,
				   "%s array length at offset 0x%llx: %llu x %s beyond file end "
				   "(size 0x%llx)",
				   c->what, (unsigned long long)(at + 4), (unsigned long long)n,
				   vtypes[et].name, (unsigned long long)c->len);
		if (et == AW_GGUF_TYPE_BOOL) {
			for (uint64_t i = 0; i < n; i++)
				if (c->p[c->off + i] > 1)
					return bad(c->err,
						   "%s bool element %llu at offset 0x%llx: %u is "
						   "not 0 or 1",
						   c->what, (unsigned long long)i,
						   (unsigned long long)(c->off + i),
						   c->p[c->off + i]);
		}
		c->off += n * vtypes[et].size;
		return 0;
	default:
		if (type >= AW_GGUF_TYPE_COUNT)
			return bad(c->err, "%s value type at offset 0x%llx: unknown type %u",
				   c->what, (unsigned long long)at - 4, type);
		if (vtypes[type].size > bytes_left(c))
			return truncated(c, "value", vtypes[type].size);
		c->off += vtypes[type].size;
		return 0;
	}
}

static int parse_kv(struct aw_gguf *g, struct cur *c, uint64_t i)
{
	struct kv *kv = &g->kvs[i];
	uint64_t at = c->off, type_at;
	int r;

	cur_what(c, "kv[%llu]", (unsigned long long)i);
	r = rd_str(c, &kv->key_off, &kv->key_len, "key");
	if (r < 0)
		return r;
	if (kv->key_len == 0)
		return bad(c->err, "kv[%llu] key at offset 0x%llx: empty key",
			   (unsigned long long)i, (unsigned long long)at);
	if (memchr(g->base + kv->key_off, 0, kv->key_len))
		return bad(c->err, "kv[%llu] key at offset 0x%llx: contains a NUL byte",
			   (unsigned long long)i, (unsigned long long)at);
	cur_what(c, "kv[%llu] '%.*s'", (unsigned long long)i,
		 (int)(kv->key_len < 48 ? kv->key_len : 48), kv_key(g, kv));
	if (kv_lookup(g, kv_key(g, kv), kv->key_len) >= 0)
		return bad(c->err, "%s at offset 0x%llx: duplicate key", c->what,
			   (unsigned long long)at);
	type_at = c->off;
	r = rd_u32(c, &kv->type, "value type");
	if (r < 0)
		return r;
	if (kv->type >= AW_GGUF_TYPE_COUNT)
		return bad(c->err, "%s value type at offset 0x%llx: unknown type %u", c->what,
			   (unsigned long long)type_at, kv->type);
	kv->val_off = c->off;
	if (kv->type == AW_GGUF_TYPE_ARRAY) {
		/* peek at the element type and count (skip_value checks them) */
		r = skip_value(c, kv->type, 0);
		if (r < 0)
			return r;
		memcpy(&kv->arr_type, g->base + kv->val_off, 4);
		memcpy(&kv->arr_n, g->base + kv->val_off + 4, 8);
		kv->arr_off = kv->val_off + 12;
		if (kv->arr_type == AW_GGUF_TYPE_STRING) {
			/* n <= bytes / 8 was checked, so this allocation is bounded by the file */
			uint64_t o = kv->arr_off, n;

			kv->str_off = malloc((kv->arr_n ? kv->arr_n : 1) * sizeof(uint64_t));
			if (!kv->str_off)
				return aw_err_set(c->err, ENOMEM,
						  "%s: out of memory for %llu strings", c->what,
						  (unsigned long long)kv->arr_n);
			for (uint64_t j = 0; j < kv->arr_n; j++) {
				kv->str_off[j] = o;
				memcpy(&n, g->base + o, 8);
				o += 8 + n;
			}
		}
	} else {
		r = skip_value(c, kv->type, 0);
		if (r < 0)
			return r;
	}
	kv->val_len = c->off - kv->val_off;

	/* insert into the key table (its capacity is at least 2 * n_kv) */
	{
		uint64_t h = hash_bytes(kv_key(g, kv), kv->key_len) & g->kv_hash_mask;

		while (g->kv_hash[h])
			h = (h + 1) & g->kv_hash_mask;
		g->kv_hash[h] = (uint32_t)(i + 1);
	}
	return 0;
}

/* ---- tensors ---- */

static int parse_tensor(struct aw_gguf *g, struct cur *c, uint64_t i, char **names_pos)
{
	struct aw_gguf_tensor *t = &g->tensors[i];
	uint64_t at = c->off, name_off = 0, name_len = 0, dims_at, type_at, n, rs;
	const struct aw_type_info *ti;
	char *name;
	int r;

	cur_what(c, "tensor[%llu]", (unsigned long long)i);
	r = rd_str(c, &name_off, &name_len, "name");
	if (r < 0)
		return r;
	if (name_len == 0 || name_len > AW_GGUF_MAX_NAME)
		return bad(c->err, "tensor[%llu] name at offset 0x%llx: length %llu not in 1..%d",
			   (unsigned long long)i, (unsigned long long)at,
			   (unsigned long long)name_len, AW_GGUF_MAX_NAME);
	if (memchr(g->base + name_off, 0, name_len))
		return bad(c->err, "tensor[%llu] name at offset 0x%llx: contains a NUL byte",
			   (unsigned long long)i, (unsigned long long)at);
	name = *names_pos;
	memcpy(name, g->base + name_off, name_len);
	name[name_len] = '\0';
	*names_pos += name_len + 1;
	t->name = name;
	t->name_len = (uint32_t)name_len;
	cur_what(c, "tensor '%.64s'", name);
	if (t_lookup(g, name, name_len) >= 0)
		return bad(c->err, "%s at offset 0x%llx: duplicate tensor name", c->what,
			   (unsigned long long)at);

	dims_at = c->off;
	r = rd_u32(c, &t->n_dims, "n_dims");
	if (r < 0)
		return r;
	if (t->n_dims < 1 || t->n_dims > AW_GGUF_MAX_DIMS)
		return bad(c->err, "%s n_dims at offset 0x%llx: %u not in 1..%d", c->what,
			   (unsigned long long)dims_at, t->n_dims, AW_GGUF_MAX_DIMS);
	n = 1;
	for (uint32_t d = 0; d < AW_GGUF_MAX_DIMS; d++) {
		uint64_t ne_at = c->off;

		t->ne[d] = 1;
		if (d >= t->n_dims)
			continue;
		r = rd_u64(c, &t->ne[d], "ne");
		if (r < 0)
			return r;
		if (t->ne[d] == 0 || t->ne[d] > INT64_MAX)
			return bad(c->err, "%s ne[%u] at offset 0x%llx: %llu out of range", c->what,
				   d, (unsigned long long)ne_at, (unsigned long long)t->ne[d]);
		if (__builtin_mul_overflow(n, t->ne[d], &n) || n > INT64_MAX)
			return bad(c->err, "%s ne[%u] at offset 0x%llx: element count overflows",
				   c->what, d, (unsigned long long)ne_at);
	}
	t->n_elements = n;

	type_at = c->off;
	r = rd_u32(c, &t->type, "type");
	if (r < 0)
		return r;
	ti = aw_type_info(t->type);
	if (!ti)
		return bad(c->err, "%s type at offset 0x%llx: unknown ggml type %u", c->what,
			   (unsigned long long)type_at, t->type);
	if (t->ne[0] % ti->block)
		return bad(c->err,
			   "%s ne[0] at offset 0x%llx: %llu not a multiple of the %s block (%u)",
			   c->what, (unsigned long long)dims_at + 4, (unsigned long long)t->ne[0],
			   ti->name, ti->block);
	rs = t->ne[0] / ti->block * ti->size; /* <= ne[0] * 292: no overflow below 2^63 */
	if (__builtin_mul_overflow(rs, n / t->ne[0], &t->size) || t->size > INT64_MAX)
		return bad(c->err, "%s at offset 0x%llx: data size overflows", c->what,
			   (unsigned long long)dims_at);

	{
		uint64_t off_at = c->off;

		r = rd_u64(c, &t->offset, "offset");
		if (r < 0)
			return r;
		if (t->offset % g->alignment)
			return bad(c->err, "%s offset at offset 0x%llx: 0x%llx not aligned to %u",
				   c->what, (unsigned long long)off_at,
				   (unsigned long long)t->offset, g->alignment);
	}

	{
		uint64_t h = hash_bytes(name, name_len) & g->t_hash_mask;

		while (g->t_hash[h])
			h = (h + 1) & g->t_hash_mask;
		g->t_hash[h] = (uint32_t)(i + 1);
	}
	return 0;
}

static int cmp_by_offset(const void *a, const void *b, void *arg)
{
	const struct aw_gguf_tensor *t = arg;
	uint64_t x = t[*(const uint32_t *)a].offset, y = t[*(const uint32_t *)b].offset;

	return x < y ? -1 : x > y;
}

/* Data of every tensor inside the file, tensors pairwise disjoint. */
static int check_data(struct aw_gguf *g, struct aw_err *err)
{
	uint32_t *order;
	int r = 0;

	if (g->n_tensors == 0)
		return 0;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct aw_gguf_tensor *t = &g->tensors[i];

		if (t->offset > g->data_size || t->size > g->data_size - t->offset)
			return bad(err,
				   "tensor '%.64s': data at file offset 0x%llx + 0x%llx beyond "
				   "file end (size 0x%llx)",
				   t->name, (unsigned long long)(g->data_off + t->offset),
				   (unsigned long long)t->size, (unsigned long long)g->len);
	}
	order = malloc(g->n_tensors * sizeof(*order));
	if (!order)
		return aw_err_set(err, ENOMEM, "out of memory sorting %llu tensors",
				  (unsigned long long)g->n_tensors);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		order[i] = (uint32_t)i;
	qsort_r(order, g->n_tensors, sizeof(*order), cmp_by_offset, g->tensors);
	for (uint64_t i = 1; i < g->n_tensors; i++) {
		const struct aw_gguf_tensor *p = &g->tensors[order[i - 1]],
					    *t = &g->tensors[order[i]];

		if (p->offset + p->size > t->offset) {
			r = bad(err,
				"tensor '%.48s': data at file offset 0x%llx overlaps tensor "
				"'%.48s'",
				t->name, (unsigned long long)(g->data_off + t->offset), p->name);
			break;
		}
	}
	free(order);
	return r;
}

void aw_gguf_close(struct aw_gguf *g)
{
	if (!g)
		return;
	if (g->kvs)
		for (uint64_t i = 0; i < g->n_kv; i++)
			free(g->kvs[i].str_off);
	free(g->kvs);
	free(g->tensors);
	free(g->names);
	free(g->kv_hash);
	free(g->t_hash);
	free(g->path);
	if (g->map)
		munmap(g->map, g->map_len);
	free(g);
}

static int parse(struct aw_gguf *g, struct aw_err *err)
{
	struct cur c = {.p = g->base, .len = g->len, .err = err};
	uint32_t magic = 0;
	uint64_t names_len = 0, name_bytes_max;
	char *names_pos;
	int r, ai;

	r = rd_u32(&c, &magic, "magic");
	if (r < 0)
		return r;
	if (magic != AW_GGUF_MAGIC)
		return bad(err, "magic at offset 0x0: 0x%08x is not \"GGUF\"", magic);
	r = rd_u32(&c, &g->version, "version");
	if (r < 0)
		return r;
	if (g->version != 2 && g->version != 3) {
		if (g->version == 1)
			return bad(err, "version at offset 0x4: GGUF v1 is not supported");
		if ((g->version & 0xffff) == 0)
			return bad(err,
				   "version at offset 0x4: 0x%08x looks big-endian (not supported)",
				   g->version);
		return bad(err, "version at offset 0x4: %u is not 2 or 3", g->version);
	}
	r = rd_u64(&c, &g->n_tensors, "n_tensors");
	if (r < 0)
		return r;
	r = rd_u64(&c, &g->n_kv, "n_kv");
	if (r < 0)
		return r;
	/* a key/value takes at least 8 + 1 + 4 + 1 bytes, a tensor
	 * info 8 + 1 + 4 + 8 + 4 + 8 */
	if (g->n_kv > bytes_left(&c) / 14 || g->n_kv > INT32_MAX)
		return bad(
			err,
			"n_kv at offset 0x10: %llu key/values cannot fit in the file (size 0x%llx)",
			(unsigned long long)g->n_kv, (unsigned long long)g->len);
	if (g->n_tensors > bytes_left(&c) / 33 || g->n_tensors > INT32_MAX)
		return bad(err,
			   "n_tensors at offset 0x8: %llu tensors cannot fit in the file (size "
			   "0x%llx)",
			   (unsigned long long)g->n_tensors, (unsigned long long)g->len);

	/* key/values */
	g->kvs = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kvs));
	g->kv_hash_mask = hash_cap(g->n_kv) - 1;
	g->kv_hash = calloc(g->kv_hash_mask + 1, sizeof(*g->kv_hash));
	if (!g->kvs || !g->kv_hash)
		return aw_err_set(err, ENOMEM, "out of memory for %llu key/values",
				  (unsigned long long)g->n_kv);
	for (uint64_t i = 0; i < g->n_kv; i++) {
		r = parse_kv(g, &c, i);
		if (r < 0)
			return r;
	}

	/* alignment */
	g->alignment = AW_GGUF_DEFAULT_ALIGNMENT;
	ai = kv_lookup(g, "general.alignment", strlen("general.alignment"));
	if (ai >= 0) {
		const struct kv *kv = &g->kvs[ai];
		uint32_t a;

		if (kv->type != AW_GGUF_TYPE_UINT32)
			return bad(
				err, "kv 'general.alignment' at offset 0x%llx: type %s, not uint32",
				(unsigned long long)kv->val_off - 4, aw_gguf_type_name(kv->type));
		memcpy(&a, g->base + kv->val_off, 4);
		if (a == 0 || (a & (a - 1)))
			return bad(
				err,
				"kv 'general.alignment' at offset 0x%llx: %u is not a power of two",
				(unsigned long long)kv->val_off, a);
		g->alignment = a;
	}

	/* tensor infos; names are copied (at most the bytes left in the file) */
	name_bytes_max = bytes_left(&c);
	if (g->n_tensors) {
		g->tensors = calloc(g->n_tensors, sizeof(*g->tensors));
		g->t_hash_mask = hash_cap(g->n_tensors) - 1;
		g->t_hash = calloc(g->t_hash_mask + 1, sizeof(*g->t_hash));
		/* each name is at most AW_GGUF_MAX_NAME and at most what the file holds */
		names_len = g->n_tensors * (AW_GGUF_MAX_NAME + 1);
		if (names_len > name_bytes_max + g->n_tensors)
			names_len = name_bytes_max + g->n_tensors;
		g->names = malloc(names_len);
		if (!g->tensors || !g->t_hash || !g->names)
			return aw_err_set(err, ENOMEM, "out of memory for %llu tensors",
					  (unsigned long long)g->n_tensors);
	}
	names_pos = g->names;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		r = parse_tensor(g, &c, i, &names_pos);
		if (r < 0)
			return r;
	}

	/* data region */
	g->data_off = (c.off + g->alignment - 1) / g->alignment * g->alignment;
	if (g->data_off > g->len) {
		if (g->n_tensors)
			return bad(err,
				   "data region at offset 0x%llx: beyond file end (size 0x%llx)",
				   (unsigned long long)g->data_off, (unsigned long long)g->len);
		g->data_size = 0;
	} else {
		g->data_size = g->len - g->data_off;
	}
	return check_data(g, err);
}

static int gguf_new(const void *buf, size_t len, struct aw_gguf **ret_g, struct aw_err *err)
{
	struct aw_gguf *g = calloc(1, sizeof(*g));

	if (!g) {
		aw_err_set(err, ENOMEM, "out of memory");
		return -ENOMEM;
	}
	g->base = buf;
	g->len = len;
	*ret_g = g;
	return 0;
}

int aw_gguf_parse(const void *buf, size_t len, struct aw_gguf **ret_g, struct aw_err *err)
{
	static const uint8_t empty[1];
	struct aw_gguf *g;
	int r;

	aw_err_clear(err);
	r = gguf_new(buf ? buf : empty, buf ? len : 0, &g, err);
	if (r < 0)
		return r;
	r = parse(g, err);
	if (r < 0) {
		aw_gguf_close(g);
		return r;
	}
	*ret_g = g;
	return 0;
}

int aw_gguf_open(const char *path, struct aw_gguf **ret_g, struct aw_err *err)
{
	static const uint8_t empty[1];
	struct aw_gguf *g;
	struct stat st;
	void *map = NULL;
	int fd, r;

	aw_err_clear(err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return aw_err_set(err, errno, "open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = aw_err_set(err, errno, "fstat %s: %s", path, strerror(errno));
		close(fd);
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return aw_err_set(err, EINVAL, "%s: not a regular file", path);
	}
	if (st.st_size > 0) {
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			r = aw_err_set(err, errno, "mmap %s: %s", path, strerror(errno));
			close(fd);
			return r;
		}
	}
	close(fd);
	r = gguf_new(map ? map : empty, map ? (size_t)st.st_size : 0, &g, err);
	if (r < 0) {
		if (map)
			munmap(map, (size_t)st.st_size);
		return r;
	}
	g->map = map;
	g->map_len = (size_t)st.st_size;
	g->path = strdup(path);
	if (!g->path) {
		aw_gguf_close(g);
		return aw_err_set(err, ENOMEM, "out of memory");
	}
	r = parse(g, err);
	if (r < 0) {
		aw_gguf_close(g);
		return r;
	}
	*ret_g = g;
	return 0;
}

/* ---- accessors ---- */

uint32_t aw_gguf_version(const struct aw_gguf *g)
{
	return g->version;
}

uint64_t aw_gguf_n_kv(const struct aw_gguf *g)
{
	return g->n_kv;
}

uint64_t aw_gguf_n_tensors(const struct aw_gguf *g)
{
	return g->n_tensors;
}

uint32_t aw_gguf_alignment(const struct aw_gguf *g)
{
	return g->alignment;
}

uint64_t aw_gguf_file_size(const struct aw_gguf *g)
{
	return g->len;
}

uint64_t aw_gguf_data_offset(const struct aw_gguf *g)
{
	return g->data_off;
}

uint64_t aw_gguf_data_size(const struct aw_gguf *g)
{
	return g->data_size;
}

const void *aw_gguf_data(const struct aw_gguf *g)
{
	return g->data_size ? g->base + g->data_off : NULL;
}

const char *aw_gguf_path(const struct aw_gguf *g)
{
	return g->path;
}

int aw_gguf_find_key(const struct aw_gguf *g, const char *key)
{
	return kv_lookup(g, key, strlen(key));
}

int aw_gguf_key_at(const struct aw_gguf *g, int i, const char **ret_key, size_t *ret_len)
{
	if (i < 0 || (uint64_t)i >= g->n_kv)
		return -ERANGE;
	*ret_key = kv_key(g, &g->kvs[i]);
	*ret_len = g->kvs[i].key_len;
	return 0;
}

int aw_gguf_kv_type(const struct aw_gguf *g, int i)
{
	if (i < 0 || (uint64_t)i >= g->n_kv)
		return -ERANGE;
	return (int)g->kvs[i].type;
}

int aw_gguf_kv_raw(const struct aw_gguf *g, int i, const void **ret_ptr, size_t *ret_len)
{
	if (i < 0 || (uint64_t)i >= g->n_kv)
		return -ERANGE;
	*ret_ptr = g->base + g->kvs[i].val_off;
	*ret_len = g->kvs[i].val_len;
	return 0;
}

static const struct kv *find(const struct aw_gguf *g, const char *key)
{
	int i = aw_gguf_find_key(g, key);

	return i < 0 ? NULL : &g->kvs[i];
}

/* Read an integer value as a sign flag and a magnitude-preserving pair. */
static int get_int(const struct aw_gguf *g, const char *key, bool *ret_neg, uint64_t *ret_u,
		   int64_t *ret_s)
{
	const struct kv *kv = find(g, key);
	const uint8_t *p;
	union {
		uint8_t u8;
		int8_t i8;
		uint16_t u16;
		int16_t i16;
		uint32_t u32;
		int32_t i32;
		uint64_t u64;
		int64_t i64;
	} v;
	int64_t s = 0;
	uint64_t u = 0;
	bool neg = false;

	if (!kv)
		return -ENOENT;
	p = g->base + kv->val_off;
	switch (kv->type) {
	case AW_GGUF_TYPE_UINT8:
		memcpy(&v.u8, p, 1);
		u = v.u8;
		break;
	case AW_GGUF_TYPE_UINT16:
		memcpy(&v.u16, p, 2);
		u = v.u16;
		break;
	case AW_GGUF_TYPE_UINT32:
		memcpy(&v.u32, p, 4);
		u = v.u32;
		break;
	case AW_GGUF_TYPE_UINT64:
		memcpy(&v.u64, p, 8);
		u = v.u64;
		break;
	case AW_GGUF_TYPE_INT8:
		memcpy(&v.i8, p, 1);
		s = v.i8;
		goto sgn;
	case AW_GGUF_TYPE_INT16:
		memcpy(&v.i16, p, 2);
		s = v.i16;
		goto sgn;
	case AW_GGUF_TYPE_INT32:
		memcpy(&v.i32, p, 4);
		s = v.i32;
		goto sgn;
	case AW_GGUF_TYPE_INT64:
		memcpy(&v.i64, p, 8);
		s = v.i64;
		goto sgn;
	default:
		return -EINVAL;
	}
	*ret_neg = false;
	*ret_u = u;
	*ret_s = u > INT64_MAX ? INT64_MAX : (int64_t)u;
	return 0;
sgn:
	neg = s < 0;
	*ret_neg = neg;
	*ret_u = neg ? 0 : (uint64_t)s;
	*ret_s = s;
	return 0;
}

int aw_gguf_get_u64(const struct aw_gguf *g, const char *key, uint64_t *ret)
{
	bool neg;
	uint64_t u;
	int64_t s;
	int r = get_int(g, key, &neg, &u, &s);

	if (r < 0)
		return r;
	if (neg)
		return -ERANGE;
	*ret = u;
	return 0;
}

int aw_gguf_get_u32(const struct aw_gguf *g, const char *key, uint32_t *ret)
{
	uint64_t u;
	int r = aw_gguf_get_u64(g, key, &u);

	if (r < 0)
		return r;
	if (u > UINT32_MAX)
		return -ERANGE;
	*ret = (uint32_t)u;
	return 0;
}

int aw_gguf_get_i64(const struct aw_gguf *g, const char *key, int64_t *ret)
{
	bool neg;
	uint64_t u;
	int64_t s;
	int r = get_int(g, key, &neg, &u, &s);

	if (r < 0)
		return r;
	if (!neg && u > INT64_MAX)
		return -ERANGE;
	*ret = s;
	return 0;
}

int aw_gguf_get_i32(const struct aw_gguf *g, const char *key, int32_t *ret)
{
	int64_t s;
	int r = aw_gguf_get_i64(g, key, &s);

	if (r < 0)
		return r;
	if (s < INT32_MIN || s > INT32_MAX)
		return -ERANGE;
	*ret = (int32_t)s;
	return 0;
}

int aw_gguf_get_f64(const struct aw_gguf *g, const char *key, double *ret)
{
	const struct kv *kv = find(g, key);
	float f;

	if (!kv)
		return -ENOENT;
	if (kv->type == AW_GGUF_TYPE_FLOAT32) {
		memcpy(&f, g->base + kv->val_off, 4);
		*ret = f;
		return 0;
	}
	if (kv->type == AW_GGUF_TYPE_FLOAT64) {
		memcpy(ret, g->base + kv->val_off, 8);
		return 0;
	}
	return -EINVAL;
}

int aw_gguf_get_f32(const struct aw_gguf *g, const char *key, float *ret)
{
	double d;
	int r = aw_gguf_get_f64(g, key, &d);

	if (r < 0)
		return r;
	if (isfinite(d) && fabs(d) > FLT_MAX)
		return -ERANGE;
	*ret = (float)d;
	return 0;
}

int aw_gguf_get_bool(const struct aw_gguf *g, const char *key, bool *ret)
{
	const struct kv *kv = find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != AW_GGUF_TYPE_BOOL)
		return -EINVAL;
	*ret = g->base[kv->val_off] != 0;
	return 0;
}

int aw_gguf_get_str(const struct aw_gguf *g, const char *key, const char **ret_ptr, size_t *ret_len)
{
	const struct kv *kv = find(g, key);
	uint64_t n;

	if (!kv)
		return -ENOENT;
	if (kv->type != AW_GGUF_TYPE_STRING)
		return -EINVAL;
	memcpy(&n, g->base + kv->val_off, 8);
	*ret_ptr = (const char *)g->base + kv->val_off + 8;
	*ret_len = n;
	return 0;
}

int aw_gguf_get_arr(const struct aw_gguf *g, const char *key, uint32_t *ret_elem_type,
		    uint64_t *ret_n)
{
	const struct kv *kv = find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != AW_GGUF_TYPE_ARRAY)
		return -EINVAL;
	*ret_elem_type = kv->arr_type;
	*ret_n = kv->arr_n;
	return 0;
}

int aw_gguf_arr_str(const struct aw_gguf *g, int key_index, uint64_t i, const char **ret_ptr,
		    size_t *ret_len)
{
	const struct kv *kv;
	uint64_t n;

	if (key_index < 0 || (uint64_t)key_index >= g->n_kv)
		return -ERANGE;
	kv = &g->kvs[key_index];
	if (kv->type != AW_GGUF_TYPE_ARRAY || kv->arr_type != AW_GGUF_TYPE_STRING)
		return -EINVAL;
	if (i >= kv->arr_n)
		return -ERANGE;
	memcpy(&n, g->base + kv->str_off[i], 8);
	*ret_ptr = (const char *)g->base + kv->str_off[i] + 8;
	*ret_len = n;
	return 0;
}

int aw_gguf_arr_data(const struct aw_gguf *g, int key_index, const void **ret_ptr)
{
	const struct kv *kv;

	if (key_index < 0 || (uint64_t)key_index >= g->n_kv)
		return -ERANGE;
	kv = &g->kvs[key_index];
	if (kv->type != AW_GGUF_TYPE_ARRAY || kv->arr_type == AW_GGUF_TYPE_STRING ||
	    kv->arr_type == AW_GGUF_TYPE_ARRAY)
		return -EINVAL;
	*ret_ptr = g->base + kv->arr_off;
	return 0;
}

int aw_gguf_find_tensor(const struct aw_gguf *g, const char *name)
{
	return t_lookup(g, name, strlen(name));
}

const struct aw_gguf_tensor *aw_gguf_tensor_at(const struct aw_gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const void *aw_gguf_tensor_data(const struct aw_gguf *g, const struct aw_gguf_tensor *t)
{
	return g->base + g->data_off + t->offset;
}
