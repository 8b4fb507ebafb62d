/* loader.h — the weight loader: a file's tensor-data region into memory.
 *
 * A model's weights are one contiguous region of its file (for GGUF: from
 * the aligned end of the tensor-info table to the end of the file). The
 * loader copies that region into memory that the workers will read:
 *
 *   method   how the bytes arrive
 *   uring    io_uring, O_DIRECT, 'queue_depth' reads of 'request_size' bytes
 *            in flight, completions reaped in batches, registered buffers
 *            where granted (the default and the fast path)
 *   read     pread() in a loop into the same memory (a baseline)
 *   mmap     mmap() of the file plus a touch of every page: the weights stay
 *            in the page cache, as llama.cpp does (the usual alternative)
 *
 * The destination is one replica per NUMA node that serves the model
 * (libnuma binds each replica's pages), backed by 1 GiB or 2 MiB hugepages
 * where the system has them and by ordinary pages with transparent-hugepage
 * advice (and a one-line warning) where it has not. Replica 0 is read from
 * the file; the others are copied from it as each request lands, or read
 * from the file in parallel ('replicate').
 *
 * O_DIRECT needs file offsets, lengths and buffer addresses aligned to the
 * device's logical block. The loader reads the covering aligned range
 * [align_down(offset), align_up(offset + size)) (clipped to the end of the
 * file, which may end mid-page) and hands out a pointer to 'offset'. Where
 * O_DIRECT is refused (tmpfs, some filesystems) it falls back to buffered
 * reads with a warning.
 *
 * Work overlaps: as soon as every byte covering a tensor has landed (in all
 * replicas) 'on_tensor' is called, so the engine can repack or convert it
 * while later reads are in flight. Tensors complete in file order. The
 * callbacks run on a thread of their own (AW_LOAD_F_CB_THREAD, on by
 * default), so the thread that submits reads keeps the drive busy while they
 * work; without it (or when the thread cannot be created) on the loading
 * thread. Either way one thread at a time, in file order, and all of them
 * have returned when the load returns.
 *
 * Loads are jobs: aw_loader_start() runs one on its own thread (so that a
 * second model can load while the first serves), aw_loader_wait() collects
 * the result; aw_loader_load() does both on the calling thread. The result
 * is a refcounted struct aw_weights: aw_weights_get()/aw_weights_put(), the
 * memory is released when the last holder puts it.
 *
 * The library never prints. Warnings (hugepages unavailable, O_DIRECT
 * refused, io_uring features degraded) go to 'log' in the options;
 * aw_loader_print_progress() is a ready-made progress sink for programs.
 */
#ifndef AW_LOADER_H
#define AW_LOADER_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "log.h"

enum aw_load_method {
	AW_LOAD_URING = 0, /* io_uring (default) */
	AW_LOAD_READ,	   /* pread() loop */
	AW_LOAD_MMAP,	   /* mmap() + touch every page; replica 0 is the file mapping */
};

enum aw_load_hugepages {
	AW_LOAD_HUGE_AUTO = 0, /* 1 GiB, then 2 MiB hugetlb pages, then THP with a warning */
	AW_LOAD_HUGE_OFF,      /* ordinary pages, no advice */
	AW_LOAD_HUGE_REQUIRE,  /* hugetlb pages or fail with -ENOMEM */
	AW_LOAD_HUGE_THP,      /* ordinary pages with madvise(MADV_HUGEPAGE), no warning */
};

enum aw_load_replicate {
	AW_LOAD_REPL_COPY = 0, /* read replica 0, memcpy each landed request to the others */
	AW_LOAD_REPL_READ,     /* read every replica from the file */
};

/* io_uring features, asked for best-first; a feature the kernel refuses with
 * -EINVAL/-EOPNOTSUPP is dropped and the rest retried (fio style). The
 * granted set is reported in aw_weights_info.features. */
enum {
	AW_LOAD_F_SINGLE_ISSUER = 1u << 0, /* IORING_SETUP_SINGLE_ISSUER */
	AW_LOAD_F_DEFER_TASKRUN = 1u << 1, /* IORING_SETUP_DEFER_TASKRUN (needs SINGLE_ISSUER) */
	AW_LOAD_F_COOP_TASKRUN = 1u << 2,  /* IORING_SETUP_COOP_TASKRUN (when DEFER is refused) */
	AW_LOAD_F_FIXED_BUFS = 1u << 3,	   /* io_uring_register_buffers + READ_FIXED */
	AW_LOAD_F_FIXED_FILES = 1u << 4,   /* io_uring_register_files */
	AW_LOAD_F_DIRECT = 1u << 5,	   /* O_DIRECT (not io_uring-specific) */
	AW_LOAD_F_PREFAULT = 1u << 6,  /* a helper thread faults the memory in from the far end */
	AW_LOAD_F_CB_THREAD = 1u << 7, /* tensor callbacks on a thread of their own (see above) */
	AW_LOAD_F_ALL = (1u << 8) - 1,
	/* asked for unless turned off: registered buffers and the prefault thread
	 * measured slower for a one-pass load (each buffer is pinned once either
	 * way; see docs/ARCHITECTURE.md), so they are opt-in */
	AW_LOAD_F_DEFAULT = AW_LOAD_F_ALL & ~(AW_LOAD_F_FIXED_BUFS | AW_LOAD_F_PREFAULT),
};

/* One tensor: where its bytes are inside the data region. */
struct aw_load_span {
	uint64_t offset; /* from the start of the data region */
	uint64_t size;	 /* bytes */
};

/* What to load. 'spans' sorted by offset, each inside [0, size). */
struct aw_load_region {
	uint64_t offset;		  /* file offset of the data region (any alignment) */
	uint64_t size;			  /* bytes; offset + size <= file size */
	const struct aw_load_span *spans; /* n_spans tensors, or NULL */
	const uint32_t *ids;		  /* id passed to on_tensor for span i; NULL = i */
	uint32_t n_spans;
};

struct aw_load_progress {
	uint64_t bytes_done;  /* bytes of the region landed in every replica */
	uint64_t bytes_total; /* region size × 1 (replicas are not counted twice) */
	double seconds;	      /* since the load started */
	double gbps;	      /* bytes_done / seconds / 1e9 */
	double eta_seconds;   /* remaining at the current rate; 0 when done */
	int done;	      /* 1 on the final call */
};

struct aw_weights;

/* Called on the loading thread when every byte of span i has landed in
 * every replica, with idx = region->ids[i] (or i); 'data' points at the
 * tensor in replica 0. A non-zero
 * return cancels the load (-ECANCELED). */
typedef int aw_load_tensor_fn(void *ctx, uint32_t idx, const void *data, uint64_t size);

/* Like aw_load_tensor_fn, with the tensor's address in every replica
 * (data[r], r < n_replicas), writable: the callback may rewrite the tensor
 * in place (repack it into the kernels' layout) while later reads are in
 * flight. No later read or replica copy touches these bytes again. Only for
 * the uring and read methods (the mmap method's replica 0 is the read-only
 * file mapping: -EINVAL). A non-zero return cancels the load (-ECANCELED). */
typedef int aw_load_tensor_rw_fn(void *ctx, uint32_t idx, void *const *data, unsigned n_replicas,
				 uint64_t size);

/* Called on the loading thread at most every 'progress_ms' and once with
 * done = 1. A non-zero return cancels the load. */
typedef int aw_load_progress_fn(void *ctx, const struct aw_load_progress *p);

/* Test-only fault injection. At AW_LOAD_FAULT_READ the hook sees each
 * completion's result before the loader does (io_uring CQE res, pread()
 * return, a touched mmap chunk); 'n' counts completions from 0. Return 'res'
 * to pass it through, a smaller non-negative value for a short read, or
 * -errno. At AW_LOAD_FAULT_OPEN_DIRECT it sees the result of the O_DIRECT
 * open() (an fd or -errno; n = 0): return -EINVAL to act as a filesystem
 * that refuses O_DIRECT. At AW_LOAD_FAULT_RING_SETUP (n = the IORING_SETUP_*
 * flags tried) and AW_LOAD_FAULT_REGISTER (n = AW_LOAD_F_FIXED_BUFS or
 * AW_LOAD_F_FIXED_FILES) it sees 0 or -errno and may turn success into
 * -EINVAL, -EOPNOTSUPP or -EPERM, as an older or locked-down kernel would. */
enum aw_load_fault_site {
	AW_LOAD_FAULT_READ = 0,
	AW_LOAD_FAULT_OPEN_DIRECT,
	AW_LOAD_FAULT_RING_SETUP,
	AW_LOAD_FAULT_REGISTER,
};
typedef int aw_load_fault_fn(void *ctx, enum aw_load_fault_site site, uint64_t n, int res);

struct aw_load_opts {
	enum aw_load_method method;
	unsigned queue_depth; /* reads in flight; 0 = AW_LOAD_DEFAULT_QD */
	size_t request_size;  /* bytes per read, multiple of 4096; 0 = AW_LOAD_DEFAULT_RS */
	enum aw_load_hugepages hugepages;
	const int *nodes; /* NUMA node of each replica; NULL = one replica, local */
	unsigned n_nodes; /* number of replicas when 'nodes' is set (1..AW_LOAD_MAX_REPLICAS) */
	enum aw_load_replicate replicate;
	unsigned features_off; /* AW_LOAD_F_* never to ask for (tests, tuning) */
	unsigned features_on;  /* AW_LOAD_F_* asked for beyond AW_LOAD_F_DEFAULT */

	aw_load_tensor_fn *on_tensor;
	aw_load_progress_fn *on_progress;
	void *ctx;			    /* passed to on_tensor / on_progress */
	aw_load_tensor_rw_fn *on_tensor_rw; /* after on_tensor, for the same tensor */
	void *tensor_ctx;		    /* passed to on_tensor_rw */
	unsigned progress_ms;		    /* 0 = 200 */

	aw_log_sink_fn *log; /* warnings, one line each; NULL = aw_log at debug */
	void *log_ctx;

	aw_load_fault_fn *fault; /* tests only; NULL in production */
	void *fault_ctx;
	int fault_nomem; /* tests only: fail the replica allocation with -ENOMEM */
};

/* 32 x 8 MiB: the best median of a queue-depth x request-size sweep
 * (docs/BENCHMARKS.md) */
#define AW_LOAD_DEFAULT_QD   32
#define AW_LOAD_DEFAULT_RS   (8u << 20)
#define AW_LOAD_MAX_REPLICAS 8

/* What a finished load did. */
struct aw_weights_info {
	uint64_t size; /* region bytes */
	unsigned n_replicas;
	int nodes[AW_LOAD_MAX_REPLICAS]; /* node of each replica, -1 = not bound */
	enum aw_load_method method;
	size_t page_size;     /* 1 GiB or 2 MiB hugetlb, or the base page size */
	int hugetlb;	      /* 1 when hugetlb pages back the replicas */
	unsigned features;    /* AW_LOAD_F_* granted (uring: all; read/mmap: DIRECT only) */
	unsigned queue_depth; /* as used */
	size_t request_size;  /* as used */
	double seconds;	      /* wall time of the load */
	uint64_t short_reads; /* resubmitted partial completions */
};

/* Load 'region' of the file at 'path' on the calling thread.
 * Returns 0 and sets *ret_w (one reference, the caller's), or -errno with
 * 'err' filled: -ENOENT etc. from open, -EINVAL for bad options or a region
 * beyond the file, -ENOMEM, -EIO (or the read's errno), -ESTALE when the
 * file's size or mtime changed during the load, -ECANCELED. On error every
 * buffer, ring and fd is released. */
int aw_loader_load(const char *path, const struct aw_load_region *region,
		   const struct aw_load_opts *o, struct aw_weights **ret_w, struct aw_err *err);

struct aw_gguf;

/* The region of a parsed GGUF file: its data region, and one span per tensor
 * sorted by offset with ids[i] = the tensor's index for aw_gguf_tensor_at().
 * Sets *ret_rg; the caller frees ret_rg->spans and ret_rg->ids with free().
 * Returns 0, -ENOMEM or -EINVAL (no data region). */
int aw_loader_region_gguf(const struct aw_gguf *g, struct aw_load_region *ret_rg,
			  struct aw_err *err);

/* aw_loader_region_gguf() + aw_loader_load() on aw_gguf_path(g): on_tensor
 * receives tensor indices. */
int aw_loader_load_gguf(const struct aw_gguf *g, const struct aw_load_opts *o,
			struct aw_weights **ret_w, struct aw_err *err);

struct aw_load_job;

/* Start the same load on a new thread. 'path', 'region' (and its spans) and
 * 'o' are copied; callbacks run on the new thread. Returns 0 and sets
 * *ret_job, or -errno. The caller must aw_loader_wait() every job. */
int aw_loader_start(const char *path, const struct aw_load_region *region,
		    const struct aw_load_opts *o, struct aw_load_job **ret_job, struct aw_err *err);

/* Ask a running job to stop; it ends with -ECANCELED at its next completion
 * batch (reads in flight are drained first). Safe from any thread. */
void aw_loader_cancel(struct aw_load_job *job);

/* Latest progress of a running job (thread-safe snapshot). */
void aw_loader_poll(struct aw_load_job *job, struct aw_load_progress *ret_p);

/* Wait for the job, free it (it is invalid afterwards) and return its
 * result as aw_loader_load() does. */
int aw_loader_wait(struct aw_load_job *job, struct aw_weights **ret_w, struct aw_err *err);

/* Take another reference; returns 'w'. */
struct aw_weights *aw_weights_get(struct aw_weights *w);

/* Drop a reference; the last one unmaps every replica. Accepts NULL. */
void aw_weights_put(struct aw_weights *w);

/* The data region in replica 'r' (0..n_replicas-1): byte i of the region is
 * at ((const uint8_t *)aw_weights_data(w, r))[i]. NULL for a bad 'r'. */
const void *aw_weights_data(const struct aw_weights *w, unsigned r);

/* The replica for NUMA node 'node' (replica 0 when none is bound there). */
const void *aw_weights_data_node(const struct aw_weights *w, int node);

const struct aw_weights_info *aw_weights_info(const struct aw_weights *w);

/* Memory for weights a program writes itself (e.g. matrices repacked at
 * load), from the loader's allocator: 'len' bytes bound to NUMA node 'node'
 * (-1: not bound), hugetlb pages per 'mode' (AUTO: 1 GiB or 2 MiB pages
 * where available, else ordinary pages with THP advice), zero-filled.
 * Returns the address and fills *ret_m (what was granted; pass it to
 * aw_loader_mem_free), or NULL with errno set (ENOMEM, EINVAL). */
struct aw_load_mem {
	size_t map_len;	  /* bytes mapped */
	size_t page_size; /* hugetlb page size, or the base page size */
	int hugetlb;	  /* 1 when hugetlb pages back it */
};
void *aw_loader_mem_alloc(size_t len, int node, enum aw_load_hugepages mode,
			  struct aw_load_mem *ret_m);
void aw_loader_mem_free(void *p, const struct aw_load_mem *m);

/* "uring", "read", "mmap"; aw_loader_parse_method returns the method or -EINVAL. */
const char *aw_loader_method_name(enum aw_load_method m);
int aw_loader_parse_method(const char *s);

/* Parse a comma-separated list of feature names (as aw_loader_features_str
 * writes them) into AW_LOAD_F_* bits. Returns 0 or -EINVAL. */
int aw_loader_parse_features(const char *list, unsigned *ret);

/* Comma-separated names of AW_LOAD_F_* bits into buf ("single_issuer,defer_taskrun,...").
 * Returns buf. */
char *aw_loader_features_str(unsigned features, char *buf, size_t len);

/* Format one progress line ("1.23/2.20 GB  1.85 GB/s  ETA 0.5 s") into buf. */
char *aw_loader_progress_format(const struct aw_load_progress *p, char *buf, size_t len);

/* A ready-made aw_load_progress_fn for programs: 'ctx' is a FILE *. On a
 * terminal it rewrites one line with '\r' (ending it on done); otherwise it
 * writes a line about once a second and a final one. Never cancels. */
int aw_loader_print_progress(void *ctx, const struct aw_load_progress *p);

/* The JSON line of `aw-infer --load-only`: {"bytes":..,"seconds":..,"gbps":..,
 * "method":"uring","hugepages":true,...} without a newline. Returns buf. */
char *aw_loader_info_json(const struct aw_weights_info *info, char *buf, size_t len);

#endif
