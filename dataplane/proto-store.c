/* proto-store.c — the server side's two bounded tables: reassembly of
 * segmented requests and the retransmit store that deduplicates requests by
 * (client address, request id) and keeps recent replies for RESUME.
 *
 * Both are plain C (no DPDK) so they are unit-tested and fuzzed here and the
 * dataplane just calls them, one instance per lcore (not thread-safe).
 * Entries sit in a chained hash table keyed by (peer, request id) and on age
 * lists (oldest first) so that expiry and eviction never scan the table.
 * Per-client accounting lives in a second small hash table of peers; a peer
 * record disappears when its last entry does.
 *
 * Memory: every byte a table holds is charged to the table and to the client
 * before it is allocated; a request that would cross a limit is refused
 * (reassembly) or makes room by evicting the oldest finished responses and
 * then the oldest datagrams of the growing stream (retransmit store).
 */
#include "proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- intrusive doubly-linked list ---------------------------------------------------- */

struct link {
	struct link *prev, *next;
};

static void list_init(struct link *l)
{
	l->prev = l->next = l;
}

static int list_empty(const struct link *l)
{
	return l->next == l;
}

static void list_add_tail(struct link *head, struct link *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static void list_del(struct link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* ---- hashing ---------------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static uint64_t peer_hash(const struct aw_proto_peer *p)
{
	uint64_t a, b;

	memcpy(&a, p->addr, 8);
	memcpy(&b, p->addr + 8, 8);
	return mix64(a ^ mix64(b ^ ((uint64_t)p->port << 16 | p->family)));
}

static int peer_eq(const struct aw_proto_peer *a, const struct aw_proto_peer *b)
{
	return a->port == b->port && a->family == b->family &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static size_t pow2_at_least(size_t n, size_t lo, size_t hi)
{
	size_t s = lo;

	while (s < n && s < hi)
		s <<= 1;
	return s;
}

int aw_proto_peer_from_sockaddr(const void *sa, size_t len, struct aw_proto_peer *ret)
{
	struct aw_proto_peer p;
	sa_family_t fam;

	if (len < sizeof(sa_family_t))
		return -EINVAL;
	memcpy(&fam, (const char *)sa + offsetof(struct sockaddr, sa_family), sizeof(fam));
	memset(&p, 0, sizeof(p));
	if (fam == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;

		memcpy(&in, sa, sizeof(in));
		memcpy(p.addr, &in.sin_addr, 4);
		p.port = ntohs(in.sin_port);
		p.family = 4;
	} else if (fam == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;

		memcpy(&in6, sa, sizeof(in6));
		memcpy(p.addr, &in6.sin6_addr, 16);
		p.port = ntohs(in6.sin6_port);
		p.family = 6;
	} else {
		return -EAFNOSUPPORT;
	}
	*ret = p;
	return 0;
}

/* ---- per-client accounting --------------------------------------------------------------- */

struct client {
	struct client *hnext;
	struct aw_proto_peer peer;
	uint64_t bytes;	      /* bytes charged to this client */
	uint32_t entries;     /* entries of this client */
	struct link finished; /* rtx: this client's finished entries, oldest first */
};

struct clients {
	struct client **b;
	size_t mask;
};

static int clients_init(struct clients *c, size_t n)
{
	size_t s = pow2_at_least(n, 64, 1u << 20);

	c->b = calloc(s, sizeof(*c->b));
	c->mask = s - 1;
	return c->b ? 0 : -ENOMEM;
}

static struct client *client_find(struct clients *c, const struct aw_proto_peer *p, int create)
{
	size_t i = peer_hash(p) & c->mask;
	struct client *cl;

	for (cl = c->b[i]; cl; cl = cl->hnext)
		if (peer_eq(&cl->peer, p))
			return cl;
	if (!create)
		return NULL;
	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return NULL;
	cl->peer = *p;
	list_init(&cl->finished);
	cl->hnext = c->b[i];
	c->b[i] = cl;
	return cl;
}

/* Free the client record when nothing references it any more. */
static void client_put(struct clients *c, struct client *cl)
{
	struct client **pp;

	if (cl->entries || cl->bytes)
		return;
	for (pp = &c->b[peer_hash(&cl->peer) & c->mask]; *pp; pp = &(*pp)->hnext) {
		if (*pp == cl) {
			*pp = cl->hnext;
			free(cl);
			return;
		}
	}
}

static void clients_fini(struct clients *c)
{
	size_t i;

	if (!c->b)
		return;
	for (i = 0; i <= c->mask; i++) {
		struct client *cl = c->b[i], *n;

		for (; cl; cl = n) {
			n = cl->hnext;
			free(cl);
		}
	}
	free(c->b);
	c->b = NULL;
}

static size_t key_slot(const struct aw_proto_peer *p, uint64_t id, size_t mask)
{
	return mix64(peer_hash(p) ^ id) & mask;
}

/* ---- reassembly ----------------------------------------------------------------------- */

void aw_proto_reasm_limits_default(struct aw_proto_reasm_limits *l)
{
	l->max_msg = AW_PROTO_MAX_MSG;
	l->max_client_bytes = 4u << 20;
	l->max_total_bytes = 64u << 20;
	l->max_client_entries = 64;
	l->max_entries = 4096;
	l->timeout_us = 1000000;
}

struct rentry {
	struct rentry *hnext;
	struct link age; /* table's list, oldest first */
	struct client *cl;
	struct aw_proto_hdr hdr; /* first segment's header */
	struct aw_proto_peer peer;
	uint64_t t0;	 /* first segment's arrival */
	uint32_t n_have; /* segments received */
	uint8_t *bitmap; /* seg_count bits */
	uint8_t data[];	 /* msg_len bytes, then the bitmap */
};

struct aw_proto_reasm {
	struct aw_proto_reasm_limits lim;
	struct rentry **b;
	size_t mask;
	struct link age;
	struct clients cls;
	struct aw_proto_reasm_stats st;
};

struct aw_proto_reasm *aw_proto_reasm_new(const struct aw_proto_reasm_limits *l)
{
	struct aw_proto_reasm *r = calloc(1, sizeof(*r));
	size_t s;

	if (!r)
		return NULL;
	if (l)
		r->lim = *l;
	else
		aw_proto_reasm_limits_default(&r->lim);
	if (r->lim.max_msg == 0 || r->lim.max_msg > AW_PROTO_MAX_MSG * 64u)
		r->lim.max_msg = AW_PROTO_MAX_MSG;
	s = pow2_at_least(r->lim.max_entries, 64, 1u << 20);
	r->b = calloc(s, sizeof(*r->b));
	r->mask = s - 1;
	list_init(&r->age);
	if (!r->b || clients_init(&r->cls, r->lim.max_entries) < 0) {
		aw_proto_reasm_free(r);
		return NULL;
	}
	return r;
}

static struct rentry **rslot(struct aw_proto_reasm *r, const struct aw_proto_peer *p, uint64_t id)
{
	struct rentry **pp = &r->b[key_slot(p, id, r->mask)];

	for (; *pp; pp = &(*pp)->hnext)
		if ((*pp)->hdr.request_id == id && peer_eq(&(*pp)->peer, p))
			break;
	return pp;
}

/* Unlink an entry from the hash, the age list and its client's account; the
 * caller frees or hands it out. */
static void rentry_unlink(struct aw_proto_reasm *r, struct rentry *en)
{
	struct rentry **pp = rslot(r, &en->peer, en->hdr.request_id);

	if (*pp == en)
		*pp = en->hnext;
	list_del(&en->age);
	en->cl->bytes -= en->hdr.msg_len;
	en->cl->entries--;
	r->st.entries--;
	r->st.bytes -= en->hdr.msg_len;
	client_put(&r->cls, en->cl);
	en->cl = NULL;
}

void aw_proto_reasm_free(struct aw_proto_reasm *r)
{
	if (!r)
		return;
	while (!list_empty(&r->age)) {
		struct rentry *en = container_of(r->age.next, struct rentry, age);

		rentry_unlink(r, en);
		free(en);
	}
	clients_fini(&r->cls);
	free(r->b);
	free(r);
}

unsigned aw_proto_reasm_expire(struct aw_proto_reasm *r, uint64_t now_us)
{
	unsigned n = 0;

	while (!list_empty(&r->age)) {
		struct rentry *en = container_of(r->age.next, struct rentry, age);

		if (now_us < en->t0 || now_us - en->t0 < r->lim.timeout_us)
			break;
		rentry_unlink(r, en);
		free(en);
		n++;
	}
	r->st.expired += n;
	return n;
}

static int rfail(struct aw_proto_reasm *r, struct aw_proto_err *e, int errnum,
		 enum aw_proto_fault fault, uint16_t code, const char *msg)
{
	if (fault == AW_PROTO_FAULT_DUPLICATE)
		r->st.duplicates++;
	else if (fault == AW_PROTO_FAULT_LIMIT)
		r->st.refused++;
	else
		r->st.bad++;
	if (e) {
		e->fault = fault;
		e->code = code;
		e->err.code = errnum;
		snprintf(e->err.msg, sizeof(e->err.msg), "%s", msg);
	}
	return -errnum;
}

int aw_proto_reasm_add(struct aw_proto_reasm *r, const struct aw_proto_peer *peer,
		       const struct aw_proto_hdr *h, const void *payload, uint64_t now_us,
		       struct aw_proto_msg *ret_msg, struct aw_proto_err *e)
{
	struct rentry **pp, *en;
	struct client *cl;
	size_t bm;

	aw_proto_reasm_expire(r, now_us);
	if (h->msg_len > r->lim.max_msg) {
		rfail(r, e, EMSGSIZE, AW_PROTO_FAULT_TOO_LONG, AW_PROTO_ERR_TOO_LONG, "");
		if (e)
			snprintf(e->err.msg, sizeof(e->err.msg),
				 "message size: the request of %u bytes exceeds the server's "
				 "message size limit of %u bytes (max_request_bytes)",
				 h->msg_len, r->lim.max_msg);
		return -EMSGSIZE;
	}
	if (h->seg_count <= 1) {
		/* the common case: no copy, no state */
		ret_msg->hdr = *h;
		ret_msg->peer = *peer;
		ret_msg->data = payload;
		ret_msg->len = h->payload_len;
		ret_msg->priv_ = NULL;
		r->st.completed++;
		return 1;
	}
	pp = rslot(r, peer, h->request_id);
	en = *pp;
	if (en) {
		if (en->hdr.type != h->type || en->hdr.msg_len != h->msg_len ||
		    en->hdr.seg_count != h->seg_count || en->hdr.seg_size != h->seg_size) {
			/* the sender changed the message under the same id: drop it all */
			rentry_unlink(r, en);
			free(en);
			return rfail(r, e, EBADMSG, AW_PROTO_FAULT_SEGSIZE,
				     AW_PROTO_ERR_BAD_REQUEST,
				     "segment disagrees with earlier segments of its message");
		}
	} else {
		cl = client_find(&r->cls, peer, 0);
		if (r->st.entries >= r->lim.max_entries ||
		    r->st.bytes + h->msg_len > r->lim.max_total_bytes)
			return rfail(r, e, ENOBUFS, AW_PROTO_FAULT_LIMIT, AW_PROTO_ERR_OVERLOADED,
				     "reassembly table full");
		if (cl && (cl->entries >= r->lim.max_client_entries ||
			   cl->bytes + h->msg_len > r->lim.max_client_bytes))
			return rfail(r, e, ENOBUFS, AW_PROTO_FAULT_LIMIT, AW_PROTO_ERR_OVERLOADED,
				     "client's reassembly share full");
		if (!cl && h->msg_len > r->lim.max_client_bytes)
			return rfail(r, e, ENOBUFS, AW_PROTO_FAULT_LIMIT, AW_PROTO_ERR_OVERLOADED,
				     "message larger than a client's reassembly share");
		bm = ((size_t)h->seg_count + 7) / 8;
		en = calloc(1, sizeof(*en) + h->msg_len + bm);
		if (en)
			cl = client_find(&r->cls, peer, 1);
		if (!en || !cl) {
			free(en);
			return rfail(r, e, ENOMEM, AW_PROTO_FAULT_LIMIT, AW_PROTO_ERR_OVERLOADED,
				     "out of memory");
		}
		en->hdr = *h;
		en->peer = *peer;
		en->t0 = now_us;
		en->cl = cl;
		en->bitmap = en->data + h->msg_len;
		cl->entries++;
		cl->bytes += h->msg_len;
		r->st.entries++;
		r->st.bytes += h->msg_len;
		list_add_tail(&r->age, &en->age);
		en->hnext = r->b[key_slot(peer, h->request_id, r->mask)];
		r->b[key_slot(peer, h->request_id, r->mask)] = en;
	}
	if (en->bitmap[h->seg_index / 8] & (1u << (h->seg_index % 8)))
		return rfail(r, e, EALREADY, AW_PROTO_FAULT_DUPLICATE, 0, "duplicate segment");
	en->bitmap[h->seg_index / 8] |= (uint8_t)(1u << (h->seg_index % 8));
	memcpy(en->data + (size_t)h->seg_index * h->seg_size, payload, h->payload_len);
	if (++en->n_have < en->hdr.seg_count)
		return 0;
	rentry_unlink(r, en);
	ret_msg->hdr = en->hdr;
	ret_msg->peer = en->peer;
	ret_msg->data = en->data;
	ret_msg->len = en->hdr.msg_len;
	ret_msg->priv_ = en;
	r->st.completed++;
	return 1;
}

void aw_proto_reasm_release(struct aw_proto_reasm *r, struct aw_proto_msg *m)
{
	(void)r;
	free(m->priv_);
	m->priv_ = NULL;
	m->data = NULL;
}

void aw_proto_reasm_get_stats(const struct aw_proto_reasm *r, struct aw_proto_reasm_stats *ret)
{
	*ret = r->st;
}

/* ---- retransmit store ------------------------------------------------------------------- */

void aw_proto_rtx_limits_default(struct aw_proto_rtx_limits *l)
{
	l->max_client_bytes = 1u << 20;
	l->max_total_bytes = 64u << 20;
	l->max_entries = 65536;
	l->retain_us = 2000000;
}

struct dgram {
	uint8_t *p;
	uint32_t len;
};

struct xentry {
	struct xentry *hnext;
	struct link age;  /* finished: table's finished list; else the active list */
	struct link cage; /* finished: client's finished list */
	struct client *cl;
	struct aw_proto_peer peer;
	uint64_t id;
	uint64_t t_last; /* last append (or finish) */
	int state;
	uint32_t first_seq, next_seq; /* stored: [first_seq, next_seq) */
	struct dgram *dg;	      /* dg[off .. off + (next_seq - first_seq)) */
	uint32_t off, cap;
	uint64_t bytes;
};

struct aw_proto_rtx {
	struct aw_proto_rtx_limits lim;
	struct xentry **b;
	size_t mask;
	struct link finished; /* oldest first */
	struct link active;   /* least recently appended first */
	struct clients cls;
	struct aw_proto_rtx_stats st;
};

struct aw_proto_rtx *aw_proto_rtx_new(const struct aw_proto_rtx_limits *l)
{
	struct aw_proto_rtx *x = calloc(1, sizeof(*x));
	size_t s;

	if (!x)
		return NULL;
	if (l)
		x->lim = *l;
	else
		aw_proto_rtx_limits_default(&x->lim);
	if (x->lim.max_entries == 0)
		x->lim.max_entries = 1;
	s = pow2_at_least(x->lim.max_entries, 64, 1u << 20);
	x->b = calloc(s, sizeof(*x->b));
	x->mask = s - 1;
	list_init(&x->finished);
	list_init(&x->active);
	if (!x->b || clients_init(&x->cls, x->lim.max_entries) < 0) {
		aw_proto_rtx_free(x);
		return NULL;
	}
	return x;
}

static struct xentry **xslot(struct aw_proto_rtx *x, const struct aw_proto_peer *p, uint64_t id)
{
	struct xentry **pp = &x->b[key_slot(p, id, x->mask)];

	for (; *pp; pp = &(*pp)->hnext)
		if ((*pp)->id == id && peer_eq(&(*pp)->peer, p))
			break;
	return pp;
}

static void xentry_trim_one(struct aw_proto_rtx *x, struct xentry *en)
{
	struct dgram *d = &en->dg[en->off];

	en->bytes -= d->len;
	en->cl->bytes -= d->len;
	x->st.bytes -= d->len;
	free(d->p);
	d->p = NULL;
	en->off++;
	en->first_seq++;
}

static void xentry_destroy(struct aw_proto_rtx *x, struct xentry *en)
{
	struct xentry **pp = xslot(x, &en->peer, en->id);
	struct client *cl = en->cl;

	if (*pp == en)
		*pp = en->hnext;
	while (en->first_seq < en->next_seq)
		xentry_trim_one(x, en);
	list_del(&en->age);
	list_del(&en->cage);
	cl->entries--;
	x->st.entries--;
	client_put(&x->cls, cl);
	free(en->dg);
	free(en);
}

void aw_proto_rtx_free(struct aw_proto_rtx *x)
{
	if (!x)
		return;
	while (!list_empty(&x->finished))
		xentry_destroy(x, container_of(x->finished.next, struct xentry, age));
	while (!list_empty(&x->active))
		xentry_destroy(x, container_of(x->active.next, struct xentry, age));
	clients_fini(&x->cls);
	free(x->b);
	free(x);
}

/* Evict the oldest finished entry (of 'cl' when not NULL). Returns 0 if none. */
static int evict_finished(struct aw_proto_rtx *x, struct client *cl, const struct xentry *keep)
{
	struct xentry *en;

	if (cl) {
		if (list_empty(&cl->finished))
			return 0;
		en = container_of(cl->finished.next, struct xentry, cage);
	} else {
		if (list_empty(&x->finished))
			return 0;
		en = container_of(x->finished.next, struct xentry, age);
	}
	if (en == keep)
		return 0;
	xentry_destroy(x, en);
	x->st.evicted++;
	return 1;
}

int aw_proto_rtx_open(struct aw_proto_rtx *x, const struct aw_proto_peer *peer, uint64_t request_id,
		      uint64_t now_us)
{
	struct xentry **pp = xslot(x, peer, request_id), *en;
	struct client *cl;
	size_t i;

	if (*pp)
		return -EEXIST;
	aw_proto_rtx_expire(x, now_us);
	while (x->st.entries >= x->lim.max_entries)
		if (!evict_finished(x, NULL, NULL))
			return -ENOBUFS;
	en = calloc(1, sizeof(*en));
	cl = en ? client_find(&x->cls, peer, 1) : NULL;
	if (!cl) {
		free(en);
		return -ENOMEM;
	}
	en->peer = *peer;
	en->id = request_id;
	en->cl = cl;
	en->state = AW_PROTO_RTX_QUEUED;
	en->t_last = now_us;
	list_init(&en->cage);
	list_add_tail(&x->active, &en->age);
	cl->entries++;
	x->st.entries++;
	x->st.opened++;
	i = key_slot(peer, request_id, x->mask);
	en->hnext = x->b[i];
	x->b[i] = en;
	return 0;
}

int aw_proto_rtx_state(struct aw_proto_rtx *x, const struct aw_proto_peer *peer,
		       uint64_t request_id, uint32_t *ret_first, uint32_t *ret_next)
{
	struct xentry *en = *xslot(x, peer, request_id);

	if (!en)
		return -ENOENT;
	if (ret_first)
		*ret_first = en->first_seq;
	if (ret_next)
		*ret_next = en->next_seq;
	return en->state;
}

int aw_proto_rtx_append(struct aw_proto_rtx *x, const struct aw_proto_peer *peer,
			uint64_t request_id, uint32_t seq, const void *dgram, size_t len,
			int terminal, uint64_t now_us)
{
	struct xentry *en = *xslot(x, peer, request_id);
	uint8_t *copy;

	if (!en)
		return -ENOENT;
	if (en->state == AW_PROTO_RTX_FINISHED || seq != en->next_seq)
		return -EINVAL;
	if (len > x->lim.max_client_bytes || len > x->lim.max_total_bytes)
		return -ENOBUFS;
	/* make room: the client's oldest finished responses, then anyone's,
	 * then the oldest datagrams of this stream */
	while (en->cl->bytes + len > x->lim.max_client_bytes) {
		if (evict_finished(x, en->cl, en))
			continue;
		if (en->first_seq == en->next_seq)
			return -ENOBUFS; /* other running streams of this client hold it */
		xentry_trim_one(x, en);
		x->st.trimmed++;
	}
	while (x->st.bytes + len > x->lim.max_total_bytes) {
		if (evict_finished(x, NULL, en))
			continue;
		if (en->first_seq == en->next_seq)
			return -ENOBUFS;
		xentry_trim_one(x, en);
		x->st.trimmed++;
	}
	/* room in the datagram array */
	if (en->off + (en->next_seq - en->first_seq) == en->cap) {
		uint32_t n = en->next_seq - en->first_seq;

		if (en->off > 0 && en->off >= en->cap / 2) {
			memmove(en->dg, en->dg + en->off, n * sizeof(*en->dg));
			en->off = 0;
		} else {
			uint32_t ncap = en->cap ? en->cap * 2 : 8;
			struct dgram *nd = realloc(en->dg, ncap * sizeof(*nd));

			if (!nd)
				return -ENOMEM;
			en->dg = nd;
			en->cap = ncap;
		}
	}
	copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, dgram, len);
	if (en->first_seq == en->next_seq)
		en->first_seq = en->next_seq = seq; /* empty window: restart it here */
	en->dg[en->off + (en->next_seq - en->first_seq)].p = copy;
	en->dg[en->off + (en->next_seq - en->first_seq)].len = (uint32_t)len;
	en->next_seq++;
	en->bytes += len;
	en->cl->bytes += len;
	x->st.bytes += len;
	en->t_last = now_us;
	list_del(&en->age);
	if (terminal) {
		en->state = AW_PROTO_RTX_FINISHED;
		list_add_tail(&x->finished, &en->age);
		list_add_tail(&en->cl->finished, &en->cage);
	} else {
		en->state = AW_PROTO_RTX_RUNNING;
		list_add_tail(&x->active, &en->age);
	}
	return 0;
}

int aw_proto_rtx_get(struct aw_proto_rtx *x, const struct aw_proto_peer *peer, uint64_t request_id,
		     uint32_t seq, const void **ret_dgram)
{
	struct xentry *en = *xslot(x, peer, request_id);
	struct dgram *d;

	if (!en || seq < en->first_seq || seq >= en->next_seq)
		return -ENOENT;
	d = &en->dg[en->off + (seq - en->first_seq)];
	*ret_dgram = d->p;
	return (int)d->len;
}

int aw_proto_rtx_drop(struct aw_proto_rtx *x, const struct aw_proto_peer *peer, uint64_t request_id)
{
	struct xentry *en = *xslot(x, peer, request_id);

	if (!en)
		return -ENOENT;
	xentry_destroy(x, en);
	x->st.acked++;
	return 0;
}

unsigned aw_proto_rtx_expire(struct aw_proto_rtx *x, uint64_t now_us)
{
	unsigned n = 0;
	uint64_t idle = x->lim.retain_us * 16;

	while (!list_empty(&x->finished)) {
		struct xentry *en = container_of(x->finished.next, struct xentry, age);

		if (now_us < en->t_last || now_us - en->t_last < x->lim.retain_us)
			break;
		xentry_destroy(x, en);
		n++;
	}
	while (!list_empty(&x->active)) {
		struct xentry *en = container_of(x->active.next, struct xentry, age);

		if (now_us < en->t_last || now_us - en->t_last < idle)
			break;
		xentry_destroy(x, en);
		n++;
	}
	x->st.expired += n;
	return n;
}

void aw_proto_rtx_get_stats(const struct aw_proto_rtx *x, struct aw_proto_rtx_stats *ret)
{
	*ret = x->st;
}
