/* loader.c — stream a file's tensor-data region into NUMA-local hugepage
 * memory with io_uring (or pread, or mmap for comparison).
 *
 * The region [offset, offset + size) is widened to the covering range of
 * blocks [a0, a_end), aligned to both BLK (4 KiB, so that every read can be
 * O_DIRECT) and the page size (so that the mmap method can map it); that range
 * is cut into chunks of 'request_size' bytes. Chunk i of the file lands at
 * byte i * request_size of each replica's mapping, so the region itself
 * starts (offset - a0) bytes into the mapping. The file may end inside the
 * last block: the read there comes back short at end of file, which is
 * expected and not resubmitted.
 *
 * The io_uring path keeps 'queue_depth' requests in flight, waits for at
 * least one completion per io_uring_enter and reaps all that are ready in
 * one batch. A completion shorter than expected is resubmitted for its
 * remainder (on the buffered fd when the remainder is no longer
 * block-aligned); an error stops submission, drains what is in flight (the
 * kernel may still write into those buffers) and unwinds everything.
 *
 * Completed chunks are tracked in a byte map; a watermark advances over the
 * chunks that are complete in file order, and every tensor span that ends
 * below the watermark is handed to on_tensor. So callbacks come in file
 * order while later reads are still in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/mman.h>
#include <liburing.h>

#include "gguf.h"
#include "loader.h"

/* O_DIRECT alignment of file offsets, lengths and buffers: the largest
 * logical block size of the devices we meet (512 or 4096 bytes). It is not
 * the page size, which is 4, 16 or 64 KiB on Arm servers; the covering range
 * is aligned to the larger of the two (the mmap method maps it, and mmap
 * offsets are whole pages). */
#define BLK	  4096u
#define MAX_BATCH 64
#define GiB	  (1ull << 30)
#define MiB	  (1ull << 20)
/* a registered buffer may not exceed 1 GiB */
#define FIXED_BUF_MAX GiB

struct replica {
	void *map;	/* mmap()ed base, covering [a0, a_end) of the file */
	size_t map_len; /* bytes mapped */
	uint8_t *data;	/* region start inside map */
	int node;	/* -1 = not bound */
};

struct aw_weights {
	atomic_int refs;
	struct aw_weights_info info;
	struct replica rep[AW_LOAD_MAX_REPLICAS];
};

/* One read in flight. */
struct req {
	uint64_t pos;	  /* file offset of the next byte to read */
	uint8_t *buf;	  /* where it lands */
	uint32_t len;	  /* bytes still asked for */
	uint32_t want;	  /* bytes still expected (len clipped at the file end) */
	uint32_t chunk;	  /* chunk index */
	uint16_t replica; /* replica it lands in */
	uint16_t bufidx;  /* registered buffer index */
	int buffered;	  /* 1: read through the buffered fd */
	struct req *next; /* free / retry list */
};

/* The state of one load. */
struct ld {
	const char *path;
	struct aw_load_region rg;
	struct aw_load_opts o;
	atomic_int *cancel; /* set by aw_loader_cancel(); may be NULL */
	struct aw_load_job *job;
	struct aw_err *err;

	int fd_direct; /* -1 when O_DIRECT is refused or off */
	int fd_buf;    /* buffered fd: fallback, unaligned remainders */
	struct stat st0;

	uint64_t a0, a_end, file_size; /* covering block range, file size at start */
	size_t page; /* sysconf(_SC_PAGESIZE): 4 KiB on x86, up to 64 KiB on Arm */
	uint32_t n_chunks;
	size_t rs;
	unsigned n_rep;
	uint8_t *chunk_left; /* per chunk: replicas still to land */
	uint32_t wm;	     /* chunks [0, wm) are complete */
	uint32_t next_span;
	uint64_t bytes_done; /* region bytes landed (counted once per chunk) */
	uint64_t n_completions;
	uint64_t short_reads;
	double t0, t_last_progress;

	struct aw_weights *w;
	int rc; /* first error (negative) */

	/* prefault thread: faults chunks in from the end while reads fill from the front */
	pthread_t pf_th;
	int pf_running;
	atomic_uint front;  /* chunks [0, front) are handed to reads */
	atomic_int pf_stop; /* set when the load ends */
	uint32_t pf_chunks; /* chunks it faulted in (read after the join) */

	/* callback thread: spans [0, cb_avail) have landed; it hands them to the
	 * tensor callbacks in order while the loading thread keeps reading */
	pthread_t cb_th;
	int cb_running;
	pthread_mutex_t cb_mu;
	pthread_cond_t cb_cv;
	uint32_t cb_avail;    /* under cb_mu */
	int cb_stop;	      /* under cb_mu: 1 = finish what is available, 2 = abort */
	atomic_int cb_failed; /* a callback asked to cancel: span index + 1 */
	double cb_busy_s;     /* seconds in the callbacks (read after the join) */
};

struct aw_load_job {
	pthread_t th;
	char *path;
	struct aw_load_region rg;
	struct aw_load_span *spans;
	uint32_t *ids;
	struct aw_load_opts o;
	int nodes[AW_LOAD_MAX_REPLICAS];
	atomic_int cancel;
	pthread_mutex_t mu;
	struct aw_load_progress prog;
	int rc;
	struct aw_weights *w;
	struct aw_err err;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 3, 4))) static void say(struct ld *ld, int level, const char *fmt,
						      ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (ld->o.log)
		ld->o.log(level, "loader", line, ld->o.log_ctx);
	else
		aw_log(AW_LOG_DEBUG, "loader", "%s", line);
}

/* Record the first error; later ones are consequences. */
__attribute__((format(printf, 3, 4))) static int fail(struct ld *ld, int code, const char *fmt, ...)
{
	if (ld->rc == 0) {
		ld->rc = -code;
		if (ld->err) {
			va_list ap;

			ld->err->code = code;
			va_start(ap, fmt);
			vsnprintf(ld->err->msg, sizeof(ld->err->msg), fmt, ap);
			va_end(ap);
		}
	}
	return ld->rc;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* --- memory ------------------------------------------------------------------------------- */

static void replica_free(struct replica *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	r->map = NULL;
}

static int bind_node(void *p, size_t len, int node)
{
	unsigned long mask[16] = {0};

	if (node < 0)
		return 0;
	if ((unsigned)node >= sizeof(mask) * 8)
		return -EINVAL;
	mask[node / (8 * sizeof(long))] |= 1ul << (node % (8 * sizeof(long)));
	if (mbind(p, len, MPOL_BIND, mask, sizeof(mask) * 8, 0) < 0)
		return -errno;
	return 0;
}

/* Map 'len' bytes on 'node': hugetlb pages first (1 GiB when rounding up to
 * them wastes at most an eighth, then 2 MiB), else ordinary pages with THP
 * advice. Bound before the first touch: the pages are allocated by the
 * reads (or the writes) that follow. */
static int mem_map(size_t len, int node, enum aw_load_hugepages mode, void **ret_p,
		   size_t *ret_maplen, size_t *page_size, int *hugetlb)
{
	static const struct {
		size_t size;
		int flag;
	} huge[] = {{GiB, MAP_HUGE_1GB}, {2 * MiB, MAP_HUGE_2MB}};
	void *p = MAP_FAILED;
	size_t maplen = 0;
	unsigned i;
	int ret;

	if (mode == AW_LOAD_HUGE_AUTO || mode == AW_LOAD_HUGE_REQUIRE) {
		for (i = 0; i < sizeof(huge) / sizeof(huge[0]) && p == MAP_FAILED; i++) {
			/* 1 GiB pages only where rounding up wastes at most 1/8 */
			if (huge[i].size == GiB && align_up(len, GiB) - len > len / 8)
				continue;
			maplen = align_up(len, huge[i].size);
			p = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | huge[i].flag, -1, 0);
			if (p != MAP_FAILED) {
				*page_size = huge[i].size;
				*hugetlb = 1;
			}
		}
		if (p == MAP_FAILED && mode == AW_LOAD_HUGE_REQUIRE)
			return -ENOMEM;
	}
	if (p == MAP_FAILED) {
		maplen = align_up(len, 2 * MiB);
		p = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return -errno;
		if (mode != AW_LOAD_HUGE_OFF)
			madvise(p, maplen, MADV_HUGEPAGE);
		*page_size = (size_t)sysconf(_SC_PAGESIZE);
		*hugetlb = 0;
	}
	ret = bind_node(p, maplen, node);
	if (ret < 0) {
		munmap(p, maplen);
		return ret;
	}
	*ret_p = p;
	*ret_maplen = maplen;
	return 0;
}

/* One replica on 'node'; *page_size and *hugetlb say what was granted (all
 * replicas of one load ask in the same order, so they normally agree). */
static int replica_alloc(struct ld *ld, struct replica *r, size_t len, int node, size_t *page_size,
			 int *hugetlb)
{
	void *p;
	size_t maplen;
	int ret;

	if (ld->o.fault_nomem)
		return -ENOMEM;
	ret = mem_map(len, node, ld->o.hugepages, &p, &maplen, page_size, hugetlb);
	if (ret < 0)
		return ret;
	r->map = p;
	r->map_len = maplen;
	r->node = node;
	return 0;
}

void *aw_loader_mem_alloc(size_t len, int node, enum aw_load_hugepages mode,
			  struct aw_load_mem *ret_m)
{
	void *p;
	int ret;

	if (len == 0 || mode > AW_LOAD_HUGE_THP) {
		errno = EINVAL;
		return NULL;
	}
	memset(ret_m, 0, sizeof(*ret_m));
	ret = mem_map(len, node, mode, &p, &ret_m->map_len, &ret_m->page_size, &ret_m->hugetlb);
	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	return p;
}

void aw_loader_mem_free(void *p, const struct aw_load_mem *m)
{
	if (p)
		munmap(p, m->map_len);
}

static int weights_alloc(struct ld *ld)
{
	struct aw_weights *w;
	size_t len = ld->a_end - ld->a0;
	unsigned i;
	int ret;

	w = calloc(1, sizeof(*w));
	if (!w)
		return fail(ld, ENOMEM, "out of memory");
	atomic_init(&w->refs, 1);
	ld->w = w;
	w->info.size = ld->rg.size;
	w->info.n_replicas = ld->n_rep;
	w->info.method = ld->o.method;
	for (i = 0; i < AW_LOAD_MAX_REPLICAS; i++)
		w->info.nodes[i] = -1;
	for (i = 0; i < ld->n_rep; i++) {
		int node = ld->o.nodes ? ld->o.nodes[i] : -1;
		size_t ps = 0;
		int huge = 0;

		w->info.nodes[i] = node;
		if (ld->o.method == AW_LOAD_MMAP && i == 0) {
			/* replica 0 is the file mapping itself */
			void *p =
				mmap(NULL, len, PROT_READ, MAP_PRIVATE, ld->fd_buf, (off_t)ld->a0);

			if (p == MAP_FAILED)
				return fail(ld, errno, "mmap %s: %s", ld->path, strerror(errno));
			w->rep[0].map = p;
			w->rep[0].map_len = len;
			w->rep[0].node = -1;
			w->info.nodes[0] = -1;
			w->info.page_size = (size_t)sysconf(_SC_PAGESIZE);
		} else {
			ret = replica_alloc(ld, &w->rep[i], len, node, &ps, &huge);
			if (ret == -ENOMEM)
				return fail(ld, ENOMEM,
					    "cannot allocate %zu bytes for replica %u%s", len, i,
					    ld->o.hugepages == AW_LOAD_HUGE_REQUIRE
						    ? " (hugepages required, none available)"
						    : "");
			if (ret < 0)
				return fail(ld, -ret, "replica %u on node %d: %s", i, node,
					    strerror(-ret));
			if (i == 0 || (ld->o.method == AW_LOAD_MMAP && i == 1)) {
				w->info.page_size = ps;
				w->info.hugetlb = huge;
			}
		}
		w->rep[i].data = (uint8_t *)w->rep[i].map + (ld->rg.offset - ld->a0);
	}
	if (ld->o.method != AW_LOAD_MMAP && !w->info.hugetlb &&
	    ld->o.hugepages == AW_LOAD_HUGE_AUTO)
		say(ld, AW_LOG_WARNING,
		    "hugepages: no hugetlb pages available (see /proc/sys/vm/nr_hugepages): "
		    "using %zu-byte pages with transparent-hugepage advice",
		    w->info.page_size);
	return 0;
}

/* Fault the destination in from the last chunk backwards until meeting the
 * reads coming forward. Fresh anonymous or hugetlb memory must be zeroed and
 * mapped before a read can land in it; done by the submitting thread (inside
 * the O_DIRECT pinning or the buffer registration) that cost is serial with
 * the I/O, here it runs on another core. MADV_POPULATE_WRITE never changes
 * the contents of a present page, so racing with a read that has just been
 * submitted for the same chunk is harmless. */
static void *prefault_main(void *arg)
{
	struct ld *ld = arg;
	uint32_t c;
	unsigned r;

	for (c = ld->n_chunks; c-- > 0;) {
		if (atomic_load_explicit(&ld->pf_stop, memory_order_relaxed) ||
		    c < atomic_load_explicit(&ld->front, memory_order_relaxed))
			break;
		for (r = 0; r < ld->n_rep; r++) {
			struct replica *rp = &ld->w->rep[r];
			size_t off = (size_t)c * ld->rs;
			size_t len = rp->map_len - off < ld->rs ? rp->map_len - off : ld->rs;

			if (madvise((uint8_t *)rp->map + off, len, MADV_POPULATE_WRITE) < 0)
				return NULL; /* before Linux 5.14, or out of memory: the reads fault */
		}
		ld->pf_chunks++;
	}
	return NULL;
}

static void prefault_start(struct ld *ld)
{
	if (ld->o.method == AW_LOAD_MMAP || (ld->o.features_off & AW_LOAD_F_PREFAULT) ||
	    ld->n_chunks < 2)
		return;
	atomic_init(&ld->front, 0);
	atomic_init(&ld->pf_stop, 0);
	if (pthread_create(&ld->pf_th, NULL, prefault_main, ld) == 0) {
		ld->pf_running = 1;
		ld->w->info.features |= AW_LOAD_F_PREFAULT;
	}
}

static void prefault_stop(struct ld *ld)
{
	if (!ld->pf_running)
		return;
	atomic_store(&ld->pf_stop, 1);
	pthread_join(ld->pf_th, NULL);
	ld->pf_running = 0;
	say(ld, AW_LOG_DEBUG, "prefault: %u of %u chunks faulted in ahead of the reads",
	    ld->pf_chunks, ld->n_chunks);
}

/* --- completion bookkeeping ---------------------------------------------------------------- */

static int progress(struct ld *ld, int done)
{
	struct aw_load_progress p;
	double t = now_s();
	int stop = 0;

	if (!done &&
	    (t - ld->t_last_progress) * 1e3 < (ld->o.progress_ms ? ld->o.progress_ms : 200))
		return 0;
	ld->t_last_progress = t;
	p.bytes_done = ld->bytes_done;
	p.bytes_total = ld->rg.size;
	p.seconds = t - ld->t0;
	p.gbps = p.seconds > 0 ? p.bytes_done / p.seconds / 1e9 : 0;
	p.eta_seconds = (p.bytes_done && !done)
				? (double)(p.bytes_total - p.bytes_done) * p.seconds / p.bytes_done
				: 0;
	p.done = done;
	if (ld->job) {
		pthread_mutex_lock(&ld->job->mu);
		ld->job->prog = p;
		pthread_mutex_unlock(&ld->job->mu);
	}
	if (ld->o.on_progress)
		stop = ld->o.on_progress(ld->o.ctx, &p);
	if (stop && !done)
		return fail(ld, ECANCELED, "load cancelled by the progress callback");
	return 0;
}

static bool cancelled(struct ld *ld)
{
	if (ld->cb_running && atomic_load_explicit(&ld->cb_failed, memory_order_relaxed))
		return true; /* cb_stop() reports it */
	if (ld->cancel && atomic_load_explicit(ld->cancel, memory_order_relaxed)) {
		fail(ld, ECANCELED, "load cancelled");
		return true;
	}
	return ld->rc != 0;
}

/* Region bytes that chunk 'c' covers. */
static uint64_t chunk_region_bytes(struct ld *ld, uint32_t c)
{
	uint64_t s = ld->a0 + (uint64_t)c * ld->rs, e = s + ld->rs;
	uint64_t rs = ld->rg.offset, re = ld->rg.offset + ld->rg.size;

	if (s < rs)
		s = rs;
	if (e > re)
		e = re;
	return e > s ? e - s : 0;
}

/* The tensor callbacks for span i. Returns nonzero when one asks to cancel. */
static int tensor_callbacks(struct ld *ld, uint32_t i)
{
	const struct aw_load_span *sp = &ld->rg.spans[i];
	const uint32_t id = ld->rg.ids ? ld->rg.ids[i] : i;

	if (ld->o.on_tensor &&
	    ld->o.on_tensor(ld->o.ctx, id, ld->w->rep[0].data + sp->offset, sp->size))
		return 1;
	if (ld->o.on_tensor_rw) {
		void *d[AW_LOAD_MAX_REPLICAS];

		for (unsigned r = 0; r < ld->n_rep; r++)
			d[r] = ld->w->rep[r].data + sp->offset;
		if (ld->o.on_tensor_rw(ld->o.tensor_ctx, id, d, ld->n_rep, sp->size))
			return 1;
	}
	return 0;
}

static void *cb_main(void *arg)
{
	struct ld *ld = arg;
	uint32_t i = 0;

	for (;;) {
		uint32_t avail;
		int stop;

		pthread_mutex_lock(&ld->cb_mu);
		while (ld->cb_avail == i && !ld->cb_stop)
			pthread_cond_wait(&ld->cb_cv, &ld->cb_mu);
		avail = ld->cb_avail;
		stop = ld->cb_stop;
		pthread_mutex_unlock(&ld->cb_mu);
		if (stop == 2 || (stop && i == avail))
			return NULL;
		for (; i < avail; i++) {
			const double t = now_s();
			const int cancel = tensor_callbacks(ld, i);

			ld->cb_busy_s += now_s() - t;
			if (cancel) {
				atomic_store(&ld->cb_failed, (int)i + 1);
				return NULL;
			}
		}
	}
}

static void cb_start(struct ld *ld)
{
	if (!(ld->o.on_tensor || ld->o.on_tensor_rw) ||
	    (ld->o.features_off & AW_LOAD_F_CB_THREAD) || ld->rg.n_spans == 0)
		return;
	pthread_mutex_init(&ld->cb_mu, NULL);
	pthread_cond_init(&ld->cb_cv, NULL);
	atomic_init(&ld->cb_failed, 0);
	if (pthread_create(&ld->cb_th, NULL, cb_main, ld) == 0) {
		ld->cb_running = 1;
		ld->w->info.features |= AW_LOAD_F_CB_THREAD;
		return;
	}
	pthread_cond_destroy(&ld->cb_cv);
	pthread_mutex_destroy(&ld->cb_mu);
}

/* Let the callback thread finish the landed tensors (or abort when the load
 * failed), join it, and report a cancel it saw. */
static void cb_stop(struct ld *ld)
{
	int failed;

	if (!ld->cb_running)
		return;
	pthread_mutex_lock(&ld->cb_mu);
	ld->cb_stop = ld->rc ? 2 : 1;
	pthread_cond_signal(&ld->cb_cv);
	pthread_mutex_unlock(&ld->cb_mu);
	pthread_join(ld->cb_th, NULL);
	ld->cb_running = 0;
	pthread_cond_destroy(&ld->cb_cv);
	pthread_mutex_destroy(&ld->cb_mu);
	failed = atomic_load(&ld->cb_failed);
	if (failed)
		fail(ld, ECANCELED, "load cancelled by the tensor callback (tensor %d)",
		     failed - 1);
	say(ld, AW_LOG_DEBUG, "tensor callbacks: %.3f s on their own thread", ld->cb_busy_s);
}

/* One replica of chunk 'c' has fully landed. */
static void chunk_landed(struct ld *ld, uint32_t c, unsigned replica)
{
	if (ld->o.replicate == AW_LOAD_REPL_COPY && ld->n_rep > 1) {
		/* copy the landed bytes to every other replica while reads are in flight */
		uint64_t off = (uint64_t)c * ld->rs;
		uint64_t end = ld->a_end < ld->file_size ? ld->a_end : ld->file_size;
		uint64_t n = ld->rs;
		unsigned i;

		if (ld->a0 + off + n > end)
			n = end - (ld->a0 + off);
		for (i = 1; i < ld->n_rep; i++)
			memcpy((uint8_t *)ld->w->rep[i].map + off,
			       (const uint8_t *)ld->w->rep[0].map + off, n);
		ld->chunk_left[c] = 0;
	} else {
		(void)replica;
		ld->chunk_left[c]--;
	}
	if (ld->chunk_left[c])
		return;
	ld->bytes_done += chunk_region_bytes(ld, c);

	/* advance the watermark and hand out the tensors below it */
	while (ld->wm < ld->n_chunks && ld->chunk_left[ld->wm] == 0)
		ld->wm++;
	if (ld->o.on_tensor || ld->o.on_tensor_rw) {
		uint64_t landed = ld->a0 + (uint64_t)ld->wm * ld->rs;
		uint32_t n = ld->next_span;

		landed = landed > ld->rg.offset ? landed - ld->rg.offset : 0;
		if (ld->wm == ld->n_chunks)
			landed = ld->rg.size;
		while (n < ld->rg.n_spans &&
		       ld->rg.spans[n].offset + ld->rg.spans[n].size <= landed)
			n++;
		if (ld->cb_running) { /* the callback thread takes them */
			ld->next_span = n;
			pthread_mutex_lock(&ld->cb_mu);
			ld->cb_avail = n;
			pthread_cond_signal(&ld->cb_cv);
			pthread_mutex_unlock(&ld->cb_mu);
			return;
		}
		while (ld->rc == 0 && ld->next_span < n) {
			if (tensor_callbacks(ld, ld->next_span))
				fail(ld, ECANCELED,
				     "load cancelled by the tensor callback (tensor %u)",
				     ld->next_span);
			ld->next_span++;
		}
	}
}

/* Bytes a read of 'len' at 'pos' should return: clipped at the file end. */
static uint32_t expect_len(struct ld *ld, uint64_t pos, uint32_t len)
{
	if (pos >= ld->file_size)
		return 0;
	if (pos + len > ld->file_size)
		return (uint32_t)(ld->file_size - pos);
	return len;
}

/* Judge a completion of 'r' with result 'res'. Returns 1 when the request must
 * be resubmitted (its fields updated), 0 when it is finished (landed or
 * failed: see ld->rc). */
static int req_complete(struct ld *ld, struct req *r, int res)
{
	if (ld->o.fault)
		res = ld->o.fault(ld->o.fault_ctx, AW_LOAD_FAULT_READ, ld->n_completions, res);
	ld->n_completions++;
	if (res == -EINVAL && !r->buffered && ld->fd_direct >= 0) {
		/* O_DIRECT accepted by open() but refused by read(): go buffered */
		say(ld, AW_LOG_WARNING, "O_DIRECT refused by the filesystem of %s: buffered reads",
		    ld->path);
		close(ld->fd_direct);
		ld->fd_direct = -1;
		r->buffered = 1;
		return 1;
	}
	if (res == -EAGAIN || res == -EINTR)
		return 1;
	if (res < 0) {
		fail(ld, -res, "read %s at offset %" PRIu64 " (%u bytes): %s", ld->path, r->pos,
		     r->len, strerror(-res));
		return 0;
	}
	if ((uint32_t)res >= r->want) {
		chunk_landed(ld, r->chunk, r->replica);
		return 0;
	}
	if (res == 0) {
		fail(ld, EIO,
		     "%s: unexpected end of file at offset %" PRIu64 " (expected %" PRIu64
		     " bytes)",
		     ld->path, r->pos, ld->file_size);
		return 0;
	}
	/* short read: ask for the rest; O_DIRECT only while it stays aligned */
	ld->short_reads++;
	r->pos += (uint32_t)res;
	r->buf += (uint32_t)res;
	r->len -= (uint32_t)res;
	r->want -= (uint32_t)res;
	if (res % BLK)
		r->buffered = 1;
	return 1;
}

/* Next (chunk, replica) to read, or false when everything is issued. */
static bool next_read(struct ld *ld, uint32_t *chunk, unsigned *replica, uint32_t *cursor)
{
	unsigned per = ld->o.replicate == AW_LOAD_REPL_READ ? ld->n_rep : 1;

	if (*cursor >= (uint64_t)ld->n_chunks * per)
		return false;
	*chunk = *cursor / per;
	*replica = *cursor % per;
	(*cursor)++;
	return true;
}

static void req_init(struct ld *ld, struct req *r, uint32_t c, unsigned replica)
{
	uint64_t off = (uint64_t)c * ld->rs;
	uint64_t len = ld->rs;

	if (ld->a0 + off + len > ld->a_end)
		len = ld->a_end - (ld->a0 + off);
	r->pos = ld->a0 + off;
	r->buf = (uint8_t *)ld->w->rep[replica].map + off;
	r->len = (uint32_t)len;
	r->want = expect_len(ld, r->pos, r->len);
	r->chunk = c;
	r->replica = (uint16_t)replica;
	atomic_store_explicit(&ld->front, c + 1, memory_order_relaxed);
	r->buffered = ld->fd_direct < 0;
}

/* --- pread and mmap paths ------------------------------------------------------------------ */

static void load_pread(struct ld *ld)
{
	uint32_t cursor = 0, c;
	unsigned replica;
	struct req r;

	while (!cancelled(ld) && next_read(ld, &c, &replica, &cursor)) {
		req_init(ld, &r, c, replica);
		for (;;) {
			int fd = r.buffered ? ld->fd_buf : ld->fd_direct;
			ssize_t n = pread(fd, r.buf, r.len, (off_t)r.pos);

			if (!req_complete(ld, &r, n < 0 ? -errno : (int)n))
				break;
			if (cancelled(ld))
				break;
		}
		progress(ld, 0);
	}
}

static void load_mmap(struct ld *ld)
{
	const volatile uint8_t *p = ld->w->rep[0].map;
	volatile uint8_t sink = 0;
	uint32_t c;

	madvise(ld->w->rep[0].map, ld->w->rep[0].map_len, MADV_SEQUENTIAL);
	for (c = 0; c < ld->n_chunks && !cancelled(ld); c++) {
		uint64_t off = (uint64_t)c * ld->rs;
		uint64_t end = off + ld->rs;
		struct req r;

		if (ld->a0 + end > ld->a_end)
			end = ld->a_end - ld->a0;
		if (ld->a0 + end > ld->file_size)
			end = ld->file_size - ld->a0;
		/* touch one byte per page: the fault reads the page in */
		for (uint64_t i = off; i < end; i += ld->page)
			sink ^= p[i];
		req_init(ld, &r, c, 0);
		req_complete(ld, &r, (int)r.want);
		progress(ld, 0);
	}
	(void)sink;
}

/* --- io_uring path ------------------------------------------------------------------------- */

static const unsigned setup_flag[] = {
	[0] = IORING_SETUP_SINGLE_ISSUER,
	[1] = IORING_SETUP_DEFER_TASKRUN,
	[2] = IORING_SETUP_COOP_TASKRUN,
};

static unsigned setup_flags(unsigned f)
{
	unsigned flags = 0, i;

	for (i = 0; i < 3; i++)
		if (f & (1u << i))
			flags |= setup_flag[i];
	return flags;
}

/* Create the ring, dropping one setup feature per -EINVAL/-EOPNOTSUPP:
 * SINGLE_ISSUER|DEFER_TASKRUN, then SINGLE_ISSUER|COOP_TASKRUN, then
 * COOP_TASKRUN, then none. */
static int ring_setup(struct ld *ld, struct io_uring *ring, unsigned qd, unsigned *feat)
{
	static const unsigned ladder[] = {
		AW_LOAD_F_SINGLE_ISSUER | AW_LOAD_F_DEFER_TASKRUN,
		AW_LOAD_F_SINGLE_ISSUER | AW_LOAD_F_COOP_TASKRUN,
		AW_LOAD_F_COOP_TASKRUN,
		0,
	};
	unsigned i, want = ~ld->o.features_off;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(ladder) / sizeof(ladder[0]); i++) {
		struct io_uring_params p;
		unsigned f = ladder[i] & want;

		if (f != ladder[i] ||
		    ((f & AW_LOAD_F_DEFER_TASKRUN) && !(f & AW_LOAD_F_SINGLE_ISSUER)))
			continue;
		memset(&p, 0, sizeof(p));
		p.flags = setup_flags(f);
		ret = io_uring_queue_init_params(qd, ring, &p);
		if (ld->o.fault) {
			int f2 = ld->o.fault(ld->o.fault_ctx, AW_LOAD_FAULT_RING_SETUP, p.flags,
					     ret);

			if (ret == 0 && f2 < 0)
				io_uring_queue_exit(ring);
			ret = f2 < 0 ? f2 : ret;
		}
		if (ret == 0) {
			*feat |= f;
			return 0;
		}
		if (ret != -EINVAL && ret != -EOPNOTSUPP)
			return ret;
		say(ld, AW_LOG_INFO, "io_uring setup flags 0x%x refused (%s): trying fewer",
		    setup_flags(f), strerror(-ret));
	}
	return ret;
}

/* Register each replica's mapping in pieces of at most 1 GiB cut at chunk
 * boundaries, so that every request lies inside one registered buffer. */
static int register_bufs(struct ld *ld, struct io_uring *ring, size_t *piece)
{
	struct iovec *iov;
	size_t len = ld->a_end - ld->a0;
	unsigned per, n, i, k = 0;
	int ret;

	*piece = (FIXED_BUF_MAX / ld->rs) * ld->rs;
	if (*piece == 0)
		return -EINVAL;
	per = (unsigned)((len + *piece - 1) / *piece);
	n = per * ld->n_rep;
	iov = calloc(n, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	for (i = 0; i < ld->n_rep; i++) {
		size_t off;

		for (off = 0; off < len; off += *piece) {
			iov[k].iov_base = (uint8_t *)ld->w->rep[i].map + off;
			iov[k].iov_len = len - off < *piece ? len - off : *piece;
			k++;
		}
	}
	ret = io_uring_register_buffers(ring, iov, n);
	free(iov);
	return ret;
}

static void load_uring(struct ld *ld)
{
	struct io_uring ring;
	struct req *reqs = NULL, *free_list = NULL, *retry = NULL;
	unsigned qd = ld->o.queue_depth ? ld->o.queue_depth : AW_LOAD_DEFAULT_QD;
	unsigned feat = ld->fd_direct >= 0 ? AW_LOAD_F_DIRECT : 0, want = ~ld->o.features_off;
	uint32_t cursor = 0;
	unsigned inflight = 0, i, per_rep = 0;
	size_t piece = 0;
	char fs[160];
	int ret;

	ret = ring_setup(ld, &ring, qd, &feat);
	if (ret == -EPERM || ret == -ENOSYS) {
		say(ld, AW_LOG_WARNING, "io_uring unavailable (%s): falling back to pread",
		    strerror(-ret));
		ld->w->info.method = AW_LOAD_READ;
		ld->w->info.features |= feat;
		load_pread(ld);
		return;
	}
	if (ret < 0) {
		fail(ld, -ret, "io_uring_queue_init(%u): %s", qd, strerror(-ret));
		return;
	}
	if (want & AW_LOAD_F_FIXED_BUFS) {
		double t = now_s();

		ret = register_bufs(ld, &ring, &piece);
		if (ld->o.fault && ret == 0)
			ret = ld->o.fault(ld->o.fault_ctx, AW_LOAD_FAULT_REGISTER,
					  AW_LOAD_F_FIXED_BUFS, 0);
		if (ret < 0)
			io_uring_unregister_buffers(&ring);
		say(ld, AW_LOG_DEBUG, "io_uring: registering %u x %zu MiB: %s in %.3f s", ld->n_rep,
		    (size_t)((ld->a_end - ld->a0) >> 20), ret ? strerror(-ret) : "ok", now_s() - t);
		if (ret == 0) {
			feat |= AW_LOAD_F_FIXED_BUFS;
			per_rep = (unsigned)((ld->a_end - ld->a0 + piece - 1) / piece);
		} else {
			say(ld, AW_LOG_INFO, "io_uring: registered buffers refused (%s)",
			    strerror(-ret));
		}
	}
	if (want & AW_LOAD_F_FIXED_FILES) {
		int fds[2] = {ld->fd_direct, ld->fd_buf};

		ret = io_uring_register_files(&ring, fds, 2);
		if (ld->o.fault && ret == 0) {
			ret = ld->o.fault(ld->o.fault_ctx, AW_LOAD_FAULT_REGISTER,
					  AW_LOAD_F_FIXED_FILES, 0);
			if (ret < 0)
				io_uring_unregister_files(&ring);
		}
		if (ret == 0)
			feat |= AW_LOAD_F_FIXED_FILES;
		else
			say(ld, AW_LOG_INFO, "io_uring: registered files refused (%s)",
			    strerror(-ret));
	}
	ld->w->info.features |= feat;
	ld->w->info.queue_depth = qd;
	say(ld, AW_LOG_INFO, "io_uring: depth %u, %zu KiB requests, features %s", qd, ld->rs >> 10,
	    aw_loader_features_str(feat, fs, sizeof(fs)));

	reqs = calloc(qd, sizeof(*reqs));
	if (!reqs) {
		fail(ld, ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < qd; i++) {
		reqs[i].next = free_list;
		free_list = &reqs[i];
	}

	for (;;) {
		struct io_uring_cqe *cqes[MAX_BATCH];
		unsigned n;
		bool stop = cancelled(ld);

		/* fill the submission queue: retries first, then new chunks */
		while (!stop) {
			struct io_uring_sqe *sqe;
			struct req *r;
			uint32_t c;
			unsigned replica;
			int fd, fdi;

			if (retry) {
				r = retry;
				retry = r->next;
			} else if (free_list && next_read(ld, &c, &replica, &cursor)) {
				r = free_list;
				free_list = r->next;
				req_init(ld, r, c, replica);
			} else {
				break;
			}
			if (!r->buffered && ld->fd_direct < 0)
				r->buffered = 1;
			fdi = r->buffered ? 1 : 0;
			fd = (feat & AW_LOAD_F_FIXED_FILES) ? fdi
							    : (fdi ? ld->fd_buf : ld->fd_direct);
			sqe = io_uring_get_sqe(&ring);
			if (feat & AW_LOAD_F_FIXED_BUFS) {
				uint64_t off =
					(uint64_t)(r->buf - (uint8_t *)ld->w->rep[r->replica].map);

				io_uring_prep_read_fixed(sqe, fd, r->buf, r->len, r->pos,
							 (int)(r->replica * per_rep + off / piece));
			} else {
				io_uring_prep_read(sqe, fd, r->buf, r->len, r->pos);
			}
			if (feat & AW_LOAD_F_FIXED_FILES)
				sqe->flags |= IOSQE_FIXED_FILE;
			io_uring_sqe_set_data(sqe, r);
			inflight++;
		}
		if (inflight == 0)
			break;

		/* one syscall: submit what is queued and wait for at least one */
		ret = io_uring_submit_and_wait(&ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			/* the queued SQEs may not have reached the kernel: nothing
			 * to drain safely but what did; give up on new work */
			fail(ld, -ret, "io_uring_submit_and_wait: %s", strerror(-ret));
		}

		/* reap a batch */
		n = io_uring_peek_batch_cqe(&ring, cqes, MAX_BATCH);
		for (i = 0; i < n; i++) {
			struct req *r = io_uring_cqe_get_data(cqes[i]);
			int res = cqes[i]->res;

			inflight--;
			if (ld->rc == 0 && req_complete(ld, r, res) && ld->rc == 0) {
				r->next = retry;
				retry = r;
			} else {
				r->next = free_list;
				free_list = r;
			}
		}
		io_uring_cq_advance(&ring, n);
		if (n && ld->rc == 0)
			progress(ld, 0);
		if (ret < 0 && ld->rc != 0 && n == 0 && inflight) {
			/* cannot wait any more: the kernel refused the ring; the
			 * exit below cancels and waits for what is in flight */
			break;
		}
	}
out:
	/* io_uring_queue_exit() waits for requests still in flight */
	io_uring_queue_exit(&ring);
	free(reqs);
}

/* --- the load ------------------------------------------------------------------------------ */

static int check_opts(struct ld *ld)
{
	const struct aw_load_opts *o = &ld->o;
	const struct aw_load_region *rg = &ld->rg;
	uint32_t i;

	if (o->hugepages > AW_LOAD_HUGE_THP)
		return fail(ld, EINVAL, "unknown hugepages mode %d", (int)o->hugepages);
	if (o->method > AW_LOAD_MMAP)
		return fail(ld, EINVAL, "unknown load method %d", (int)o->method);
	if (ld->rs == 0 || ld->rs % BLK || ld->rs > FIXED_BUF_MAX)
		return fail(ld, EINVAL, "request size %zu: must be a multiple of 4096 up to 1 GiB",
			    ld->rs);
	if (o->queue_depth > 4096)
		return fail(ld, EINVAL, "queue depth %u: at most 4096", o->queue_depth);
	if (o->nodes && (o->n_nodes == 0 || o->n_nodes > AW_LOAD_MAX_REPLICAS))
		return fail(ld, EINVAL, "%u NUMA nodes: between 1 and %d", o->n_nodes,
			    AW_LOAD_MAX_REPLICAS);
	if (o->nodes) {
		int maxnode = numa_available() < 0 ? 0 : numa_max_node();

		for (i = 0; i < o->n_nodes; i++)
			if (o->nodes[i] < 0 || o->nodes[i] > maxnode)
				return fail(ld, EINVAL, "NUMA node %d does not exist (max %d)",
					    o->nodes[i], maxnode);
	}
	if (o->on_tensor_rw && o->method == AW_LOAD_MMAP)
		return fail(ld, EINVAL,
			    "a writable tensor callback needs the uring or read method (the "
			    "mmap method's replica 0 is the read-only file mapping)");
	if (rg->size == 0)
		return fail(ld, EINVAL, "empty data region");
	if (rg->n_spans && !rg->spans)
		return fail(ld, EINVAL, "%u tensor spans but no array", rg->n_spans);
	for (i = 0; i < rg->n_spans; i++) {
		const struct aw_load_span *s = &rg->spans[i];

		if (s->offset > rg->size || s->size > rg->size - s->offset)
			return fail(ld, EINVAL,
				    "tensor %u: [%" PRIu64 ", +%" PRIu64
				    ") beyond the region (%" PRIu64 " bytes)",
				    i, s->offset, s->size, rg->size);
		if (i && s->offset < rg->spans[i - 1].offset)
			return fail(ld, EINVAL, "tensor %u: spans not sorted by offset", i);
	}
	return 0;
}

static int file_changed(struct ld *ld)
{
	struct stat st;

	if (fstat(ld->fd_buf, &st) < 0)
		return fail(ld, errno, "fstat %s: %s", ld->path, strerror(errno));
	if (st.st_size != ld->st0.st_size || st.st_mtim.tv_sec != ld->st0.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != ld->st0.st_mtim.tv_nsec) {
		ld->rc = 0; /* this explains any read error seen before */
		return fail(ld, ESTALE, "%s changed during the load (size %jd -> %jd, mtime %s)",
			    ld->path, (intmax_t)ld->st0.st_size, (intmax_t)st.st_size,
			    st.st_mtim.tv_sec != ld->st0.st_mtim.tv_sec ||
					    st.st_mtim.tv_nsec != ld->st0.st_mtim.tv_nsec
				    ? "changed"
				    : "same");
	}
	return 0;
}

static int load(struct ld *ld, struct aw_weights **ret_w)
{
	struct aw_load_opts *o = &ld->o;

	ld->fd_direct = ld->fd_buf = -1;
	/* from here on features_off holds everything not asked for */
	o->features_off |= AW_LOAD_F_ALL & ~(AW_LOAD_F_DEFAULT | o->features_on);
	ld->rs = o->request_size ? o->request_size : AW_LOAD_DEFAULT_RS;
	ld->n_rep = o->nodes ? o->n_nodes : 1;
	ld->t0 = ld->t_last_progress = now_s();
	if (o->method == AW_LOAD_MMAP)
		o->replicate = AW_LOAD_REPL_COPY; /* the mapping is the only "read" */
	aw_err_clear(ld->err);
	if (check_opts(ld))
		goto out;

	ld->fd_buf = open(ld->path, O_RDONLY | O_CLOEXEC);
	if (ld->fd_buf < 0) {
		fail(ld, errno, "open %s: %s", ld->path, strerror(errno));
		goto out;
	}
	if (fstat(ld->fd_buf, &ld->st0) < 0) {
		fail(ld, errno, "fstat %s: %s", ld->path, strerror(errno));
		goto out;
	}
	ld->file_size = (uint64_t)ld->st0.st_size;
	if (ld->rg.offset > ld->file_size || ld->rg.size > ld->file_size - ld->rg.offset) {
		fail(ld, EINVAL,
		     "%s: data region [%" PRIu64 ", +%" PRIu64 ") beyond the file end (%" PRIu64
		     ")",
		     ld->path, ld->rg.offset, ld->rg.size, ld->file_size);
		goto out;
	}
	{
		const long ps = sysconf(_SC_PAGESIZE);
		/* both powers of two: the larger is a multiple of the smaller */
		const uint64_t unit = ps > (long)BLK ? (uint64_t)ps : BLK;

		ld->page = ps > 0 ? (size_t)ps : BLK;
		ld->a0 = ld->rg.offset / unit * unit;
		ld->a_end = align_up(ld->rg.offset + ld->rg.size, unit);
	}
	ld->n_chunks = (uint32_t)((ld->a_end - ld->a0 + ld->rs - 1) / ld->rs);
	if ((uint64_t)ld->n_chunks * ld->rs < ld->a_end - ld->a0) {
		fail(ld, EINVAL, "region too large for request size %zu", ld->rs);
		goto out;
	}

	/* 'read' is the plain baseline: buffered pread() */
	if (o->method == AW_LOAD_URING && !(o->features_off & AW_LOAD_F_DIRECT)) {
		int fd = open(ld->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
		int res = fd < 0 ? -errno : fd;

		if (o->fault)
			res = o->fault(o->fault_ctx, AW_LOAD_FAULT_OPEN_DIRECT, 0, res);
		if (res < 0) {
			if (fd >= 0)
				close(fd);
			say(ld, AW_LOG_WARNING, "O_DIRECT refused for %s (%s): buffered reads",
			    ld->path, strerror(-res));
		} else {
			ld->fd_direct = fd;
		}
	}
	ld->chunk_left = malloc(ld->n_chunks);
	if (!ld->chunk_left) {
		fail(ld, ENOMEM, "out of memory");
		goto out;
	}
	memset(ld->chunk_left, o->replicate == AW_LOAD_REPL_READ ? (int)ld->n_rep : 1,
	       ld->n_chunks);
	if (weights_alloc(ld))
		goto out;
	ld->w->info.request_size = ld->rs;
	ld->w->info.queue_depth = o->method == AW_LOAD_URING ? 0 : 1;
	ld->w->info.features = ld->fd_direct >= 0 ? AW_LOAD_F_DIRECT : 0;
	ld->t0 = ld->t_last_progress = now_s();
	prefault_start(ld);
	cb_start(ld);

	switch (o->method) {
	case AW_LOAD_URING:
		load_uring(ld);
		break;
	case AW_LOAD_READ:
		load_pread(ld);
		break;
	case AW_LOAD_MMAP:
		load_mmap(ld);
		break;
	}
	prefault_stop(ld);
	cb_stop(ld);
	if (ld->fd_direct < 0)
		ld->w->info.features &= ~AW_LOAD_F_DIRECT;
	if (ld->rc == 0 && ld->wm != ld->n_chunks)
		fail(ld, EIO, "internal: %u of %u chunks complete", ld->wm, ld->n_chunks);
	if (ld->rc != -ECANCELED)
		file_changed(ld);
	if (ld->rc == 0) {
		ld->w->info.seconds = now_s() - ld->t0;
		ld->w->info.short_reads = ld->short_reads;
		progress(ld, 1);
	}
out:
	if (ld->fd_direct >= 0)
		close(ld->fd_direct);
	if (ld->fd_buf >= 0)
		close(ld->fd_buf);
	free(ld->chunk_left);
	if (ld->rc) {
		aw_weights_put(ld->w);
		return ld->rc;
	}
	*ret_w = ld->w;
	return 0;
}

int aw_loader_load(const char *path, const struct aw_load_region *region,
		   const struct aw_load_opts *o, struct aw_weights **ret_w, struct aw_err *err)
{
	static const struct aw_load_opts defaults;
	struct ld ld;

	if (!path || !region || !ret_w)
		return aw_err_set(err, EINVAL, "aw_loader_load: NULL argument");
	memset(&ld, 0, sizeof(ld));
	ld.path = path;
	ld.rg = *region;
	ld.o = o ? *o : defaults;
	ld.err = err;
	return load(&ld, ret_w);
}

/* --- GGUF ------------------------------------------------------------------------------------ */

static int cmp_span(const void *a, const void *b, void *ctx)
{
	const struct aw_load_span *sp = ctx;
	uint64_t x = sp[*(const uint32_t *)a].offset, y = sp[*(const uint32_t *)b].offset;

	return x < y ? -1 : x > y;
}

int aw_loader_region_gguf(const struct aw_gguf *g, struct aw_load_region *ret_rg,
			  struct aw_err *err)
{
	uint64_t n = aw_gguf_n_tensors(g), i;
	struct aw_load_span *by_tensor = NULL, *spans = NULL;
	uint32_t *ids = NULL;

	if (aw_gguf_data_size(g) == 0)
		return aw_err_set(err, EINVAL, "%s: no tensor data",
				  aw_gguf_path(g) ? aw_gguf_path(g) : "GGUF");
	if (n > UINT32_MAX)
		return aw_err_set(err, EINVAL, "%" PRIu64 " tensors: too many", n);
	if (n) {
		by_tensor = malloc(n * sizeof(*by_tensor));
		spans = malloc(n * sizeof(*spans));
		ids = malloc(n * sizeof(*ids));
		if (!by_tensor || !spans || !ids) {
			free(by_tensor);
			free(spans);
			free(ids);
			return aw_err_set(err, ENOMEM, "out of memory");
		}
	}
	for (i = 0; i < n; i++) {
		const struct aw_gguf_tensor *t = aw_gguf_tensor_at(g, i);

		by_tensor[i].offset = t->offset;
		by_tensor[i].size = t->size;
		ids[i] = (uint32_t)i;
	}
	/* infos need not be in offset order: sort the ids, then the spans */
	if (n)
		qsort_r(ids, n, sizeof(*ids), cmp_span, by_tensor);
	for (i = 0; i < n; i++)
		spans[i] = by_tensor[ids[i]];
	free(by_tensor);
	memset(ret_rg, 0, sizeof(*ret_rg));
	ret_rg->offset = aw_gguf_data_offset(g);
	ret_rg->size = aw_gguf_data_size(g);
	ret_rg->spans = spans;
	ret_rg->ids = ids;
	ret_rg->n_spans = (uint32_t)n;
	return 0;
}

int aw_loader_load_gguf(const struct aw_gguf *g, const struct aw_load_opts *o,
			struct aw_weights **ret_w, struct aw_err *err)
{
	struct aw_load_region rg;
	int ret;

	if (!aw_gguf_path(g))
		return aw_err_set(err, EINVAL, "GGUF parsed from memory: no file to load from");
	ret = aw_loader_region_gguf(g, &rg, err);
	if (ret)
		return ret;
	ret = aw_loader_load(aw_gguf_path(g), &rg, o, ret_w, err);
	free((void *)rg.spans);
	free((void *)rg.ids);
	return ret;
}

/* --- jobs ------------------------------------------------------------------------------------- */

static void *job_main(void *arg)
{
	struct aw_load_job *job = arg;
	struct ld ld;

	memset(&ld, 0, sizeof(ld));
	ld.path = job->path;
	ld.rg = job->rg;
	ld.o = job->o;
	ld.cancel = &job->cancel;
	ld.job = job;
	ld.err = &job->err;
	job->rc = load(&ld, &job->w);
	return NULL;
}

static void job_free(struct aw_load_job *job)
{
	if (!job)
		return;
	pthread_mutex_destroy(&job->mu);
	free(job->spans);
	free(job->ids);
	free(job->path);
	free(job);
}

int aw_loader_start(const char *path, const struct aw_load_region *region,
		    const struct aw_load_opts *o, struct aw_load_job **ret_job, struct aw_err *err)
{
	struct aw_load_job *job;
	int ret;

	if (!path || !region || !ret_job)
		return aw_err_set(err, EINVAL, "aw_loader_start: NULL argument");
	if (o && o->nodes && (o->n_nodes == 0 || o->n_nodes > AW_LOAD_MAX_REPLICAS))
		return aw_err_set(err, EINVAL, "%u NUMA nodes: between 1 and %d", o->n_nodes,
				  AW_LOAD_MAX_REPLICAS);
	job = calloc(1, sizeof(*job));
	if (!job)
		return aw_err_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&job->mu, NULL);
	atomic_init(&job->cancel, 0);
	job->path = strdup(path);
	job->rg = *region;
	if (o)
		job->o = *o;
	if (region->n_spans && region->spans) {
		job->spans = malloc(region->n_spans * sizeof(*job->spans));
		if (job->spans)
			memcpy(job->spans, region->spans, region->n_spans * sizeof(*job->spans));
		job->rg.spans = job->spans;
	}
	if (region->n_spans && region->ids) {
		job->ids = malloc(region->n_spans * sizeof(*job->ids));
		if (job->ids)
			memcpy(job->ids, region->ids, region->n_spans * sizeof(*job->ids));
		job->rg.ids = job->ids;
	}
	if (!job->path || (region->n_spans && region->spans && !job->spans) ||
	    (region->n_spans && region->ids && !job->ids)) {
		job_free(job);
		return aw_err_set(err, ENOMEM, "out of memory");
	}
	if (job->o.nodes) {
		memcpy(job->nodes, job->o.nodes, job->o.n_nodes * sizeof(int));
		job->o.nodes = job->nodes;
	}
	job->prog.bytes_total = region->size;
	ret = pthread_create(&job->th, NULL, job_main, job);
	if (ret) {
		job_free(job);
		return aw_err_set(err, ret, "pthread_create: %s", strerror(ret));
	}
	*ret_job = job;
	return 0;
}

void aw_loader_cancel(struct aw_load_job *job)
{
	if (job)
		atomic_store(&job->cancel, 1);
}

void aw_loader_poll(struct aw_load_job *job, struct aw_load_progress *ret_p)
{
	pthread_mutex_lock(&job->mu);
	*ret_p = job->prog;
	pthread_mutex_unlock(&job->mu);
}

int aw_loader_wait(struct aw_load_job *job, struct aw_weights **ret_w, struct aw_err *err)
{
	int rc;

	pthread_join(job->th, NULL);
	rc = job->rc;
	if (rc == 0) {
		if (ret_w)
			*ret_w = job->w;
		else
			aw_weights_put(job->w);
		aw_err_clear(err);
	} else if (err) {
		*err = job->err;
	}
	job_free(job);
	return rc;
}

/* --- handles ------------------------------------------------------------------------------- */

struct aw_weights *aw_weights_get(struct aw_weights *w)
{
	if (w)
		atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
	return w;
}

void aw_weights_put(struct aw_weights *w)
{
	unsigned i;

	if (!w || atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < AW_LOAD_MAX_REPLICAS; i++)
		replica_free(&w->rep[i]);
	free(w);
}

const void *aw_weights_data(const struct aw_weights *w, unsigned r)
{
	if (!w || r >= w->info.n_replicas)
		return NULL;
	return w->rep[r].data;
}

const void *aw_weights_data_node(const struct aw_weights *w, int node)
{
	unsigned i;

	if (!w)
		return NULL;
	for (i = 0; i < w->info.n_replicas; i++)
		if (w->info.nodes[i] == node)
			return w->rep[i].data;
	return w->rep[0].data;
}

const struct aw_weights_info *aw_weights_info(const struct aw_weights *w)
{
	return w ? &w->info : NULL;
}

/* --- names and printing ------------------------------------------------------------------- */

static const char *const method_names[] = {"uring", "read", "mmap"};
static const char *const feature_names[] = {"single_issuer", "defer_taskrun", "coop_taskrun",
					    "fixed_bufs",    "fixed_files",   "direct",
					    "prefault",	     "cb_thread"};
#define N_FEATURES 8

const char *aw_loader_method_name(enum aw_load_method m)
{
	return (unsigned)m < 3 ? method_names[m] : "?";
}

int aw_loader_parse_method(const char *s)
{
	int i;

	for (i = 0; s && i < 3; i++)
		if (!strcmp(s, method_names[i]))
			return i;
	return -EINVAL;
}

int aw_loader_parse_features(const char *list, unsigned *ret)
{
	unsigned f = 0, i;
	const char *p = list;

	if (!list)
		return -EINVAL;
	while (*p) {
		size_t n = strcspn(p, ",");

		for (i = 0; i < N_FEATURES; i++)
			if (strlen(feature_names[i]) == n && !strncmp(p, feature_names[i], n))
				break;
		if (i == N_FEATURES)
			return -EINVAL;
		f |= 1u << i;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -EINVAL;
	}
	*ret = f;
	return 0;
}

char *aw_loader_features_str(unsigned features, char *buf, size_t len)
{
	size_t k = 0;
	unsigned i;

	if (!len)
		return buf;
	buf[0] = '\0';
	for (i = 0; i < N_FEATURES; i++) {
		if (!(features & (1u << i)))
			continue;
		int n = snprintf(buf + k, len - k, "%s%s", k ? "," : "", feature_names[i]);

		if (n < 0 || (size_t)n >= len - k)
			break;
		k += (size_t)n;
	}
	if (k == 0)
		snprintf(buf, len, "none");
	return buf;
}

char *aw_loader_progress_format(const struct aw_load_progress *p, char *buf, size_t len)
{
	snprintf(buf, len, "loading %.2f/%.2f GB  %5.1f%%  %.2f GB/s  %s %.1f s",
		 p->bytes_done / 1e9, p->bytes_total / 1e9,
		 p->bytes_total ? 100.0 * p->bytes_done / p->bytes_total : 100.0, p->gbps,
		 p->done ? "in" : "ETA", p->done ? p->seconds : p->eta_seconds);
	return buf;
}

int aw_loader_print_progress(void *ctx, const struct aw_load_progress *p)
{
	static __thread double last_line;
	FILE *f = ctx ? ctx : stderr;
	char line[128];

	aw_loader_progress_format(p, line, sizeof(line));
	if (isatty(fileno(f))) {
		fprintf(f, "\r%s\033[K%s", line, p->done ? "\n" : "");
	} else if (p->done || p->seconds - last_line >= 1.0 || p->seconds < last_line) {
		fprintf(f, "%s\n", line);
		last_line = p->done ? 0 : p->seconds;
	}
	fflush(f);
	return 0;
}

char *aw_loader_info_json(const struct aw_weights_info *info, char *buf, size_t len)
{
	char fs[160];

	snprintf(buf, len,
		 "{\"bytes\":%" PRIu64 ",\"seconds\":%.6f,\"gbps\":%.3f,\"method\":\"%s\","
		 "\"hugepages\":%s,\"page_size\":%zu,\"replicas\":%u,\"queue_depth\":%u,"
		 "\"request_size\":%zu,\"features\":\"%s\"}",
		 info->size, info->seconds,
		 info->seconds > 0 ? info->size / info->seconds / 1e9 : 0,
		 aw_loader_method_name(info->method), info->hugetlb ? "true" : "false",
		 info->page_size, info->n_replicas, info->queue_depth, info->request_size,
		 aw_loader_features_str(info->features, fs, sizeof(fs)));
	return buf;
}
