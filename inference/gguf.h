/* gguf.h — reader and writer for GGUF model files (versions 2 and 3).
 *
 * A GGUF file is a header, a list of typed key/value pairs (metadata), a list
 * of tensor descriptions, padding up to the file's alignment, and the tensor
 * data region. Every integer is little-endian; versions 2 and 3 share this
 * layout (version 3 only allowed big-endian files, which we refuse).
 *
 *   Header
 *   OFFSET SIZE DESCRIPTION
 *   0      4    magic "GGUF" (0x47 0x47 0x55 0x46)
 *   4      4    version (u32): 2 or 3
 *   8      8    n_tensors (u64): number of tensor infos
 *   16     8    n_kv (u64): number of key/value pairs
 *   24     ...  n_kv key/value pairs, then n_tensors tensor infos
 *
 *   String:     u64 length, then 'length' bytes (no NUL terminator)
 *   Key/value:  string key, u32 value type (enum aw_gguf_type), value
 *   Value:      scalar of the type's size (bool is one byte: 0 or 1), a string,
 *               or an array: u32 element type, u64 n, n elements (arrays may
 *               nest)
 *   Tensor info: string name, u32 n_dims (1..4), n_dims x u64 ne (ne[0] is the
 *               contiguous dimension, as in ggml), u32 ggml type (enum aw_type),
 *               u64 offset of the data from the start of the data region
 *   Data region: starts at the end of the tensor infos rounded up to
 *               general.alignment (u32 key, a power of two; default 32). Each
 *               tensor's offset is a multiple of the alignment.
 *
 * The reader checks everything before it believes it: magic, version, counts
 * against the file size, every string and array length, value types, tensor
 * rank and dimension overflow, tensor types (inference/quant.h), row sizes
 * against the block size, that tensor data lies inside the file, is aligned
 * and does not overlap, and refuses duplicate keys and tensor names. On a
 * malformed file the functions return -EBADMSG and fill struct aw_err with the
 * field and the file offset. Nothing is allocated from an unchecked count and
 * nothing aborts. The file is mapped read-only (MAP_PRIVATE, not populated):
 * strings and tensor data are pointers into the mapping, valid until
 * aw_gguf_close().
 *
 * The writer builds a version 3 file: key/values in insertion order, tensor
 * infos in insertion order, data packed in that order, each tensor padded
 * with zero bytes to the alignment (so the file ends aligned; a file without
 * tensors ends after its last key/value). The same calls produce the same bytes.
 */
#ifndef AW_GGUF_H
#define AW_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define AW_GGUF_MAGIC		  0x46554747u /* "GGUF" read as a little-endian u32 */
#define AW_GGUF_DEFAULT_ALIGNMENT 32
#define AW_GGUF_MAX_DIMS	  4
#define AW_GGUF_MAX_NAME	  255 /* longest tensor name accepted (llama.cpp: 63) */
#define AW_GGUF_MAX_DEPTH	  8   /* deepest array nesting accepted */

/* Metadata value types, as stored in the file. */
enum aw_gguf_type {
	AW_GGUF_TYPE_UINT8 = 0,
	AW_GGUF_TYPE_INT8 = 1,
	AW_GGUF_TYPE_UINT16 = 2,
	AW_GGUF_TYPE_INT16 = 3,
	AW_GGUF_TYPE_UINT32 = 4,
	AW_GGUF_TYPE_INT32 = 5,
	AW_GGUF_TYPE_FLOAT32 = 6,
	AW_GGUF_TYPE_BOOL = 7,
	AW_GGUF_TYPE_STRING = 8,
	AW_GGUF_TYPE_ARRAY = 9,
	AW_GGUF_TYPE_UINT64 = 10,
	AW_GGUF_TYPE_INT64 = 11,
	AW_GGUF_TYPE_FLOAT64 = 12,
	AW_GGUF_TYPE_COUNT,
};

/* Size in bytes of one value of scalar type 't'; 0 for strings, arrays and
 * unknown types. */
size_t aw_gguf_type_size(uint32_t t);

/* Name of value type 't' ("uint32", "string", ...), or "unknown". */
const char *aw_gguf_type_name(uint32_t t);

/* ---- reader ------------------------------------------------------------- */

struct aw_gguf; /* opaque: a parsed file */

struct aw_gguf_tensor {
	const char *name;	       /* NUL-terminated copy, owned by the aw_gguf */
	uint32_t name_len;	       /* strlen(name) */
	uint32_t n_dims;	       /* 1..4 */
	uint64_t ne[AW_GGUF_MAX_DIMS]; /* elements per dimension, ne[0] contiguous; unused = 1 */
	uint32_t type;		       /* enum aw_type (inference/quant.h) */
	uint64_t offset;	       /* byte offset of the data in the data region (aligned) */
	uint64_t size;	     /* bytes of data: row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] */
	uint64_t n_elements; /* ne[0] * ne[1] * ne[2] * ne[3] */
};

/* Map the GGUF file at 'path' read-only and parse it.
 * Returns 0 and sets *ret_g, or -errno: the open/fstat/mmap error, -EBADMSG
 * for a malformed file, -ENOMEM. 'err' (may be NULL) names the field and file
 * offset on -EBADMSG and the failing call otherwise. The caller owns *ret_g
 * and releases it with aw_gguf_close(); every pointer the accessors return
 * stays valid until then. */
int aw_gguf_open(const char *path, struct aw_gguf **ret_g, struct aw_err *err);

/* Parse a GGUF image held in memory ('buf', 'len' bytes; buf may be unaligned).
 * Same results as aw_gguf_open(). The buffer is not copied: it must stay
 * valid and unchanged until aw_gguf_close(). */
int aw_gguf_parse(const void *buf, size_t len, struct aw_gguf **ret_g, struct aw_err *err);

/* Release a parsed file and its mapping. Accepts NULL. */
void aw_gguf_close(struct aw_gguf *g);

uint32_t aw_gguf_version(const struct aw_gguf *g);   /* 2 or 3 */
uint64_t aw_gguf_n_kv(const struct aw_gguf *g);	     /* number of key/values */
uint64_t aw_gguf_n_tensors(const struct aw_gguf *g); /* number of tensors */
uint32_t aw_gguf_alignment(const struct aw_gguf *g); /* general.alignment or 32 */
uint64_t aw_gguf_file_size(const struct aw_gguf *g); /* bytes in the file/buffer */
/* File offset of the tensor-data region (a multiple of the alignment). Add a
 * tensor's 'offset' to get its file offset (e.g. for O_DIRECT reads). */
uint64_t aw_gguf_data_offset(const struct aw_gguf *g);
/* Bytes from the data offset to the end of the file (0 if the file has no
 * tensors and ends before the padded data offset). */
uint64_t aw_gguf_data_size(const struct aw_gguf *g);
/* Pointer to the start of the mapped data region (NULL if it is empty). */
const void *aw_gguf_data(const struct aw_gguf *g);
/* Path given to aw_gguf_open(), or NULL for aw_gguf_parse(). */
const char *aw_gguf_path(const struct aw_gguf *g);

/* ---- metadata ---- */

/* Index of 'key' (0..n_kv-1), or -ENOENT. Hashed: O(1) on average. */
int aw_gguf_find_key(const struct aw_gguf *g, const char *key);

/* The key at index 'i': sets *ret_key (not NUL-terminated, points into the
 * file) and *ret_len. Returns 0 or -ERANGE (no such index). */
int aw_gguf_key_at(const struct aw_gguf *g, int i, const char **ret_key, size_t *ret_len);

/* Value type of the key at index 'i' (enum aw_gguf_type), or -ERANGE. */
int aw_gguf_kv_type(const struct aw_gguf *g, int i);

/* The raw encoded value of key 'i' (what follows the u32 type in the file,
 * for arrays including their element type and count). Returns 0 or -ERANGE. */
int aw_gguf_kv_raw(const struct aw_gguf *g, int i, const void **ret_ptr, size_t *ret_len);

/* Typed getters. Each returns 0 and sets *ret, -ENOENT (no such key), -EINVAL
 * (the value has another kind of type) or -ERANGE (the value does not fit).
 * Integer getters accept any integer type (uint8..int64) whose value fits in
 * the requested one; get_bool only a bool; get_f32 a float32, or a float64
 * that is finite in float range (or inf/nan); get_f64 either float type. */
int aw_gguf_get_u32(const struct aw_gguf *g, const char *key, uint32_t *ret);
int aw_gguf_get_u64(const struct aw_gguf *g, const char *key, uint64_t *ret);
int aw_gguf_get_i32(const struct aw_gguf *g, const char *key, int32_t *ret);
int aw_gguf_get_i64(const struct aw_gguf *g, const char *key, int64_t *ret);
int aw_gguf_get_f32(const struct aw_gguf *g, const char *key, float *ret);
int aw_gguf_get_f64(const struct aw_gguf *g, const char *key, double *ret);
int aw_gguf_get_bool(const struct aw_gguf *g, const char *key, bool *ret);

/* A string value: sets *ret_ptr (into the file, NOT NUL-terminated; may hold
 * any bytes) and *ret_len. Returns 0, -ENOENT or -EINVAL. */
int aw_gguf_get_str(const struct aw_gguf *g, const char *key, const char **ret_ptr,
		    size_t *ret_len);

/* An array value: sets *ret_elem_type (enum aw_gguf_type; AW_GGUF_TYPE_ARRAY
 * for nested arrays) and *ret_n. Returns 0, -ENOENT or -EINVAL (not an
 * array). Use aw_gguf_find_key() for the index the two calls below take. */
int aw_gguf_get_arr(const struct aw_gguf *g, const char *key, uint32_t *ret_elem_type,
		    uint64_t *ret_n);

/* Element 'i' of the string array at key index 'key_index', in O(1) (the
 * offsets are tabulated at parse time). Sets *ret_ptr (not NUL-terminated)
 * and *ret_len. Returns 0, -ERANGE (bad key index or i >= n) or -EINVAL (not
 * an array of strings). */
int aw_gguf_arr_str(const struct aw_gguf *g, int key_index, uint64_t i, const char **ret_ptr,
		    size_t *ret_len);

/* First element of the numeric (or bool) array at key index 'key_index':
 * n elements of aw_gguf_type_size(elem_type) bytes each, little-endian and
 * possibly UNALIGNED — copy them out with memcpy, never cast the pointer.
 * Returns 0, -ERANGE (bad key index) or -EINVAL (strings or nested arrays). */
int aw_gguf_arr_data(const struct aw_gguf *g, int key_index, const void **ret_ptr);

/* ---- tensors ---- */

/* Index of the tensor named 'name' (hashed), or -ENOENT. */
int aw_gguf_find_tensor(const struct aw_gguf *g, const char *name);

/* Tensor 'i' in file order, or NULL if i >= n_tensors. Owned by 'g'. */
const struct aw_gguf_tensor *aw_gguf_tensor_at(const struct aw_gguf *g, uint64_t i);

/* Pointer to the mapped data of tensor 't' ('size' bytes, aligned in the file
 * to the file's alignment; the mapping itself is page-aligned for
 * aw_gguf_open()). */
const void *aw_gguf_tensor_data(const struct aw_gguf *g, const struct aw_gguf_tensor *t);

/* ---- writer ------------------------------------------------------------- */

struct aw_gguf_writer; /* opaque */

/* Called by aw_gguf_writer_write() to produce the 'size' bytes of tensor
 * 'name' into 'buf' (a scratch buffer owned by the writer). Returns 0 or
 * -errno, which aborts the write. Lets big files be generated one tensor at a
 * time. */
typedef int aw_gguf_fill_fn(void *ctx, const char *name, void *buf, size_t size);

/* Create an empty writer. Returns 0 and sets *ret_w, or -ENOMEM. The caller
 * frees it with aw_gguf_writer_free(). */
int aw_gguf_writer_new(struct aw_gguf_writer **ret_w);

/* Free a writer and its copies of keys and values. Accepts NULL. */
void aw_gguf_writer_free(struct aw_gguf_writer *w);

/* Setters. Keys are kept in the order first set; setting a key again replaces
 * its value in place (last set wins). Keys and values are copied. Return 0,
 * -EINVAL (empty key, bad type, general.alignment not a power-of-two u32) or
 * -ENOMEM. */
int aw_gguf_writer_set_u32(struct aw_gguf_writer *w, const char *key, uint32_t v);
int aw_gguf_writer_set_i32(struct aw_gguf_writer *w, const char *key, int32_t v);
int aw_gguf_writer_set_u64(struct aw_gguf_writer *w, const char *key, uint64_t v);
int aw_gguf_writer_set_i64(struct aw_gguf_writer *w, const char *key, int64_t v);
int aw_gguf_writer_set_f32(struct aw_gguf_writer *w, const char *key, float v);
int aw_gguf_writer_set_f64(struct aw_gguf_writer *w, const char *key, double v);
int aw_gguf_writer_set_bool(struct aw_gguf_writer *w, const char *key, bool v);
/* Any scalar type: 'v' points at one value of aw_gguf_type_size(type) bytes
 * in host order (little-endian). */
int aw_gguf_writer_set_scalar(struct aw_gguf_writer *w, const char *key, uint32_t type,
			      const void *v);
/* String of 'len' bytes (may hold any bytes). */
int aw_gguf_writer_set_strn(struct aw_gguf_writer *w, const char *key, const char *s, size_t len);
/* NUL-terminated string. */
int aw_gguf_writer_set_str(struct aw_gguf_writer *w, const char *key, const char *s);
/* Numeric or bool array: 'n' elements of scalar type 'elem_type' at 'data'. */
int aw_gguf_writer_set_arr(struct aw_gguf_writer *w, const char *key, uint32_t elem_type,
			   uint64_t n, const void *data);
/* String array: strs[i] of lens[i] bytes, or NUL-terminated if lens is NULL. */
int aw_gguf_writer_set_arr_str(struct aw_gguf_writer *w, const char *key, uint64_t n,
			       const char *const *strs, const size_t *lens);
/* Any value given as its raw encoding (what aw_gguf_kv_raw() returns). The
 * bytes are copied as they are, not checked: use it with validated input. */
int aw_gguf_writer_set_raw(struct aw_gguf_writer *w, const char *key, uint32_t type,
			   const void *raw, size_t len);

/* Copy every key/value of 'g' whose key starts with 'prefix' (e.g.
 * "tokenizer.") into 'w', in file order. Returns the number copied or
 * -ENOMEM. */
int aw_gguf_writer_copy_kvs(struct aw_gguf_writer *w, const struct aw_gguf *g, const char *prefix);

/* Add a tensor whose data is 'data' ('size' bytes, which must equal the size
 * that type and shape give). The data is NOT copied: it must stay valid until
 * aw_gguf_writer_write() returns. Returns 0, -EINVAL (bad name, rank, shape,
 * type, row not a multiple of the block, wrong size), -EEXIST (name already
 * added) or -ENOMEM. */
int aw_gguf_writer_add_tensor(struct aw_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const uint64_t *ne, const void *data, size_t size);

/* Same, but the data is produced at write time by fill(ctx, ...), one tensor
 * at a time, so that a large file never has to be in memory at once. */
int aw_gguf_writer_add_tensor_fill(struct aw_gguf_writer *w, const char *name, uint32_t type,
				   uint32_t n_dims, const uint64_t *ne, aw_gguf_fill_fn *fill,
				   void *ctx);

/* Write the file to 'path' (via 'path'.tmp and rename, so a failed write
 * leaves no partial file under 'path'). Returns 0 or -errno with 'err' filled
 * (may be NULL). The writer may be written again. */
int aw_gguf_writer_write(struct aw_gguf_writer *w, const char *path, struct aw_err *err);

/* Write the file into a malloc'd buffer: sets *ret_buf (caller frees with
 * free()) and *ret_len. Returns 0 or -errno. */
int aw_gguf_writer_write_buf(struct aw_gguf_writer *w, void **ret_buf, size_t *ret_len,
			     struct aw_err *err);

#endif
