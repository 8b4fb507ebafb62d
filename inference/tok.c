/* tok.c — SentencePiece BPE and byte-level BPE tokenizers (see tok.h).
 *
 * Loading copies the vocabulary into one text pool, hashes every token text
 * (open addressing), resolves the 256 byte tokens, and for byte-level BPE
 * turns each merge "left right" into an entry of a hash table keyed by the
 * pair of token ids, valued by (rank, id of the merged token). Pieces (the
 * decoded bytes of each token) are computed once at load.
 *
 * Encoding follows llama.cpp step by step (llama-vocab.cpp, unicode.cpp), so
 * that ids match it exactly; the pre-tokenizer regexes are llama.cpp's with
 * \s and \S spelled as the explicit class of llama.cpp's whitespace table
 * (PCRE2's UCP \s does not include U+0085, llama.cpp's does). Text that the
 * regexes see is first decoded with llama.cpp's lenient UTF-8 rules (an
 * invalid byte becomes U+FFFD, overlong forms decode to their code point)
 * and re-encoded as valid UTF-8 for PCRE2; surrogate code points, which
 * llama.cpp passes through, are shown to PCRE2 as U+E000 (also category C)
 * and written back as their 3-byte form.
 */
#include "tok.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "gguf.h"

/* llama.cpp's token attributes (bit flags), derived from token_type. */
enum {
	ATTR_UNDEFINED = 0,
	ATTR_UNKNOWN = 1 << 0,
	ATTR_UNUSED = 1 << 1,
	ATTR_NORMAL = 1 << 2,
	ATTR_CONTROL = 1 << 3,
	ATTR_USER_DEFINED = 1 << 4,
	ATTR_BYTE = 1 << 5,
};

enum pre {
	PRE_NONE, /* SentencePiece */
	PRE_DEFAULT,
	PRE_GPT2,
	PRE_LLAMA3,
	PRE_QWEN2,
	PRE_SMOLLM,
};

#define MAX_REGEX 4

struct tok_entry {
	uint32_t off;  /* text in text_pool */
	uint32_t len;  /* text bytes */
	uint32_t poff; /* piece in piece_pool */
	uint32_t plen; /* piece bytes */
	float score;   /* SentencePiece score */
	uint8_t type;  /* enum aw_tok_type as given */
	uint8_t attr;  /* ATTR_* */
	uint8_t eog;   /* ends generation */
};

struct merge_slot {
	uint64_t key; /* ((left + 1) << 32) | (right + 1); 0 = empty */
	int32_t rank;
	int32_t result;
};

struct aw_tok {
	enum aw_tok_model model;
	enum pre pre;
	char pre_name[32];
	uint32_t n;
	struct tok_entry *tok;
	char *text_pool;
	char *piece_pool;
	uint64_t *ht; /* (hash >> 32) << 32 | (id + 1); 0 = empty */
	uint32_t ht_mask;
	struct merge_slot *mt;
	uint32_t mt_mask;
	int32_t byte_tok[256];
	uint8_t in_token[256]; /* the byte occurs in some token's text */
	char byte_chr[256][2]; /* GPT-2 character of each byte, as UTF-8 */
	uint8_t byte_chr_len[256];
	int32_t *special; /* ids matched by the partition, longest text first */
	uint32_t n_special;
	pcre2_code *re[MAX_REGEX];
	int n_re;
	int32_t bos, eos, unk, pad, eot, eom;
	bool add_bos, add_eos, add_space_prefix, ignore_merges;
	uint32_t max_piece;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);

	while (n >= 8) {
		uint64_t w;

		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	if (n) {
		uint64_t w = 0;

		memcpy(&w, s, n);
		h = (h ^ w) * 0x94d049bb133111ebull;
	}
	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	return h;
}

static uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

static int32_t find_text(const struct aw_tok *t, const char *s, size_t n)
{
	uint64_t h = hash_bytes(s, n);
	uint32_t i = (uint32_t)h & t->ht_mask, fp = (uint32_t)(h >> 32);

	for (;; i = (i + 1) & t->ht_mask) {
		uint64_t v = t->ht[i];

		if (v == 0)
			return AW_TOK_ID_NONE;
		if ((uint32_t)(v >> 32) != fp)
			continue;
		uint32_t id = (uint32_t)v - 1;
		const struct tok_entry *e = &t->tok[id];
		if (e->len == n && memcmp(t->text_pool + e->off, s, n) == 0)
			return (int32_t)id;
	}
}

static const struct merge_slot *find_merge(const struct aw_tok *t, int32_t l, int32_t r)
{
	uint64_t key = ((uint64_t)(uint32_t)(l + 1) << 32) | (uint32_t)(r + 1);
	uint32_t i = (uint32_t)hash_u64(key) & t->mt_mask;

	for (;; i = (i + 1) & t->mt_mask) {
		if (t->mt[i].key == key)
			return &t->mt[i];
		if (t->mt[i].key == 0)
			return NULL;
	}
}

/* GPT-2's byte -> printable code point map and its inverse. */
static uint32_t byte_to_cp(unsigned b)
{
	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae))
		return b;
	/* the other 68 bytes are numbered from 256 in byte order */
	unsigned n = 0;
	for (unsigned x = 0; x < b; x++)
		if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae)))
			n++;
	return 256 + n;
}

static int cp_to_byte(uint32_t cp)
{
	static int16_t inv[324];
	static int ready; /* benign: every thread computes the same table */

	if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
		int16_t tmp[324];

		for (int i = 0; i < 324; i++)
			tmp[i] = -1;
		for (unsigned b = 0; b < 256; b++)
			tmp[byte_to_cp(b)] = (int16_t)b;
		memcpy(inv, tmp, sizeof(inv));
		__atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
	}
	return cp < 324 ? inv[cp] : -1;
}

static size_t put_utf8(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* llama.cpp's unicode_len_utf8(): length implied by a lead byte. */
static size_t lead_len(unsigned char c)
{
	static const unsigned char lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return lookup[c >> 4];
}

/* llama.cpp's lenient decoder (unicode_cpt_from_utf8): checks lead and
 * continuation bits only. Returns the code point and advances *i, or
 * returns 0xFFFD and advances by one byte. Code points above U+10FFFF
 * (which llama.cpp cannot re-encode) are treated as invalid too. */
static uint32_t decode_lenient(const unsigned char *s, size_t n, size_t *i)
{
	size_t k = *i;
	unsigned char c = s[k];
	uint32_t cp;

	if (!(c & 0x80)) {
		*i = k + 1;
		return c;
	}
	if (!(c & 0x40))
		goto bad;
	if (!(c & 0x20)) {
		if (k + 1 >= n || (s[k + 1] & 0xc0) != 0x80)
			goto bad;
		cp = ((uint32_t)(c & 0x1f) << 6) | (s[k + 1] & 0x3f);
		*i = k + 2;
		return cp;
	}
	if (!(c & 0x10)) {
		if (k + 2 >= n || (s[k + 1] & 0xc0) != 0x80 || (s[k + 2] & 0xc0) != 0x80)
			goto bad;
		cp = ((uint32_t)(c & 0x0f) << 12) | ((uint32_t)(s[k + 1] & 0x3f) << 6) |
		     (s[k + 2] & 0x3f);
		*i = k + 3;
		return cp;
	}
	if (!(c & 0x08)) {
		if (k + 3 >= n || (s[k + 1] & 0xc0) != 0x80 || (s[k + 2] & 0xc0) != 0x80 ||
		    (s[k + 3] & 0xc0) != 0x80)
			goto bad;
		cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[k + 1] & 0x3f) << 12) |
		     ((uint32_t)(s[k + 2] & 0x3f) << 6) | (s[k + 3] & 0x3f);
		if (cp > 0x10ffff)
			goto bad;
		*i = k + 4;
		return cp;
	}
bad:
	*i = k + 1;
	return 0xfffd;
}

/* ---- growable arrays ---------------------------------------------------- */

struct buf {
	void *p;
	size_t n, cap, esz;
};

static int buf_reserve(struct buf *b, size_t want)
{
	if (want <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < want) {
		if (cap > SIZE_MAX / 2 / b->esz)
			return -ENOMEM;
		cap *= 2;
	}
	void *p = realloc(b->p, cap * b->esz);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int buf_push(struct buf *b, const void *e)
{
	int r = buf_reserve(b, b->n + 1);
	if (r < 0)
		return r;
	memcpy((char *)b->p + b->n * b->esz, e, b->esz);
	b->n++;
	return 0;
}

/* ---- the merge loop: a heap of bigrams over a linked list ---------------- */

struct sym {
	int32_t prev, next;
	uint32_t off, n; /* bytes of the word */
	int32_t id;	 /* BPE: the symbol's token id */
};

/* A bigram in the heap: 'key' orders it (smaller first): the priority in
 * the high 32 bits (SentencePiece: the score mapped so that a higher score
 * is smaller; BPE: the rank), the left symbol's index in the low 32, which
 * makes ties go to the leftmost pair as in llama.cpp. */
struct bigram {
	uint64_t key;
	int32_t right;
	uint32_t size; /* left.n + right.n when pushed: stale if it changed */
};

/* float -> uint32 with the same order, then reversed: higher score first */
static uint32_t score_key(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
	return ~u;
}

static int heap_push(struct buf *h, uint64_t key, int32_t right, uint32_t size)
{
	if (h->n == h->cap) {
		int r = buf_reserve(h, h->n + 1);
		if (r < 0)
			return r;
	}
	struct bigram *a = h->p;
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (a[p].key <= key)
			break;
		a[i] = a[p];
		i = p;
	}
	a[i].key = key;
	a[i].right = right;
	a[i].size = size;
	return 0;
}

static struct bigram heap_pop(struct buf *h)
{
	struct bigram *a = h->p;
	struct bigram top = a[0];
	size_t n = --h->n, i = 0;
	struct bigram last = a[n];

	for (;;) {
		size_t l = 2 * i + 1, m;
		if (l >= n)
			break;
		m = (l + 1 < n && a[l + 1].key < a[l].key) ? l + 1 : l;
		if (last.key <= a[m].key)
			break;
		a[i] = a[m];
		i = m;
	}
	if (n)
		a[i] = last;
	return top;
}

/* Per-call scratch memory. */
struct scratch {
	struct buf out;	   /* int32_t ids */
	struct buf syms;   /* struct sym */
	struct buf heap;   /* struct bigram */
	struct buf text;   /* char: SPM escaped text, BPE encoded word */
	struct buf cps;	   /* uint32_t code points of a fragment */
	struct buf view;   /* char: the UTF-8 PCRE2 sees */
	struct buf vidx;   /* uint32_t: view byte -> code point index */
	struct buf segs;   /* uint32_t: segment lengths (code points) */
	struct buf segs2;  /* uint32_t */
	struct buf frags;  /* struct frag */
	struct buf frags2; /* struct frag */
	struct buf word;   /* char: a pre-tokenized word */
	pcre2_match_data *md;
};

static void scratch_init(struct scratch *s)
{
	memset(s, 0, sizeof(*s));
	s->out.esz = sizeof(int32_t);
	s->syms.esz = sizeof(struct sym);
	s->heap.esz = sizeof(struct bigram);
	s->text.esz = 1;
	s->cps.esz = sizeof(uint32_t);
	s->view.esz = 1;
	s->vidx.esz = sizeof(uint32_t);
	s->segs.esz = sizeof(uint32_t);
	s->segs2.esz = sizeof(uint32_t);
	s->frags.esz = sizeof(uint32_t) * 3;
	s->frags2.esz = sizeof(uint32_t) * 3;
	s->word.esz = 1;
}

static void scratch_fini(struct scratch *s)
{
	free(s->out.p);
	free(s->syms.p);
	free(s->heap.p);
	free(s->text.p);
	free(s->cps.p);
	free(s->view.p);
	free(s->vidx.p);
	free(s->segs.p);
	free(s->segs2.p);
	free(s->frags.p);
	free(s->frags2.p);
	free(s->word.p);
	pcre2_match_data_free(s->md);
}

static int emit(struct scratch *s, int32_t id)
{
	return buf_push(&s->out, &id);
}

/* Split text[0..n) into one symbol per (llama.cpp) UTF-8 character. */
static int make_syms(struct scratch *s, const char *text, size_t n)
{
	size_t off = 0;
	int32_t idx = 0;
	int r;

	s->syms.n = 0;
	if ((r = buf_reserve(&s->syms, n)) < 0)
		return r;
	struct sym *y = s->syms.p;
	while (off < n) {
		size_t len = lead_len((unsigned char)text[off]);
		if (len > n - off)
			len = n - off;
		y[idx].off = (uint32_t)off;
		y[idx].n = (uint32_t)len;
		y[idx].prev = idx - 1;
		off += len;
		y[idx].next = off == n ? -1 : idx + 1;
		y[idx].id = AW_TOK_ID_NONE;
		idx++;
	}
	s->syms.n = (size_t)idx;
	return 0;
}

/* ---- SentencePiece ------------------------------------------------------- */

static int spm_try_bigram(const struct aw_tok *t, struct scratch *s, const char *text, int32_t l,
			  int32_t r)
{
	if (l < 0 || r < 0)
		return 0;
	struct sym *y = s->syms.p;
	uint32_t size = y[l].n + y[r].n;
	int32_t id = find_text(t, text + y[l].off, size);
	if (id < 0)
		return 0;
	return heap_push(&s->heap, ((uint64_t)score_key(t->tok[id].score) << 32) | (uint32_t)l, r,
			 size);
}

/* llama.cpp's llm_tokenizer_spm_session::tokenize on escaped text. */
static int spm_tokenize(const struct aw_tok *t, struct scratch *s, const char *text, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if ((r = make_syms(s, text, n)) < 0)
		return r;
	/* A symbol holding a byte that no token contains can never merge, so
	 * the merge loop runs on each stretch between such symbols on its own
	 * (same result, a small heap: a newline splits Llama text into lines). */
	int32_t nsym = (int32_t)s->syms.n, run = 0;
	for (int32_t i = 0; i <= nsym; i++) {
		if (i < nsym) {
			const struct sym *y = &((struct sym *)s->syms.p)[i];
			bool brk = false;
			for (uint32_t j = 0; j < y->n && !brk; j++)
				brk = !t->in_token[(unsigned char)text[y->off + j]];
			if (!brk)
				continue;
		}
		s->heap.n = 0;
		for (int32_t j = run + 1; j < i; j++)
			if ((r = spm_try_bigram(t, s, text, j - 1, j)) < 0)
				return r;
		run = i + 1;
		while (s->heap.n) {
			struct bigram g = heap_pop(&s->heap);
			struct sym *y = s->syms.p;
			int32_t left = (int32_t)(uint32_t)g.key;
			struct sym *L = &y[left], *R = &y[g.right];

			if (L->n == 0 || R->n == 0 || L->n + R->n != g.size)
				continue;
			L->n += R->n;
			R->n = 0;
			L->next = R->next;
			if (R->next >= 0)
				y[R->next].prev = left;
			if ((r = spm_try_bigram(t, s, text, L->prev, left)) < 0 ||
			    (r = spm_try_bigram(t, s, text, left, L->next)) < 0)
				return r;
		}
	}
	/* every merged symbol is a token; what is left unmerged and unknown
	 * falls back to byte tokens */
	for (int32_t i = 0; i != -1; i = ((struct sym *)s->syms.p)[i].next) {
		const struct sym *y = &((struct sym *)s->syms.p)[i];
		int32_t id = find_text(t, text + y->off, y->n);

		if (id >= 0) {
			if ((r = emit(s, id)) < 0)
				return r;
			continue;
		}
		for (uint32_t j = 0; j < y->n; j++)
			if ((r = emit(s, t->byte_tok[(unsigned char)text[y->off + j]])) < 0)
				return r;
	}
	return 0;
}

/* ---- byte-level BPE ---------------------------------------------------- */

static int bpe_try_bigram(const struct aw_tok *t, struct scratch *s, int32_t l, int32_t r)
{
	if (l < 0 || r < 0)
		return 0;
	struct sym *y = s->syms.p;
	const struct merge_slot *m = find_merge(t, y[l].id, y[r].id);
	if (!m)
		return 0;
	return heap_push(&s->heap, ((uint64_t)(uint32_t)m->rank << 32) | (uint32_t)l, r,
			 y[l].n + y[r].n);
}

/* One pre-tokenized word: 'w' holds its raw bytes. */
static int bpe_word(const struct aw_tok *t, struct scratch *s, const unsigned char *w, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	if (t->ignore_merges) {
		/* the whole word as a token, looked up in GPT-2's alphabet */
		s->text.n = 0;
		if ((r = buf_reserve(&s->text, 2 * n)) < 0)
			return r;
		char *o = s->text.p;
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			memcpy(o + k, t->byte_chr[w[i]], 2);
			k += t->byte_chr_len[w[i]];
		}
		int32_t id = find_text(t, o, k);
		if (id >= 0)
			return emit(s, id);
	}
	/* one symbol per byte (one GPT-2 character each) */
	s->syms.n = 0;
	if ((r = buf_reserve(&s->syms, n)) < 0)
		return r;
	struct sym *y = s->syms.p;
	for (size_t i = 0; i < n; i++) {
		y[i].off = (uint32_t)i;
		y[i].n = 1;
		y[i].prev = (int32_t)i - 1;
		y[i].next = i + 1 == n ? -1 : (int32_t)i + 1;
		y[i].id = t->byte_tok[w[i]];
	}
	s->syms.n = n;
	s->heap.n = 0;
	for (int32_t i = 1; i < (int32_t)n; i++)
		if ((r = bpe_try_bigram(t, s, i - 1, i)) < 0)
			return r;
	while (s->heap.n) {
		struct bigram g = heap_pop(&s->heap);
		y = s->syms.p;
		int32_t left = (int32_t)(uint32_t)g.key;
		struct sym *L = &y[left], *R = &y[g.right];

		if (L->n == 0 || R->n == 0 || L->n + R->n != g.size)
			continue;
		/* unchanged since the push, so the pair's merge still applies */
		const struct merge_slot *m = find_merge(t, L->id, R->id);
		if (!m)
			continue;
		L->id = m->result;
		L->n += R->n;
		R->n = 0;
		L->next = R->next;
		if (R->next >= 0)
			y[R->next].prev = left;
		if ((r = bpe_try_bigram(t, s, L->prev, left)) < 0 ||
		    (r = bpe_try_bigram(t, s, left, L->next)) < 0)
			return r;
	}
	for (int32_t i = 0; i != -1; i = ((struct sym *)s->syms.p)[i].next)
		if ((r = emit(s, ((struct sym *)s->syms.p)[i].id)) < 0)
			return r;
	return 0;
}

/* Split segments of code points with one regex: matches and the gaps between
 * them both become segments (llama.cpp's unicode_regex_split_stl). */
static int regex_split(const struct aw_tok *t, struct scratch *s, const pcre2_code *re)
{
	const char *view = s->view.p;
	const uint32_t *vidx = s->vidx.p;
	const uint32_t *segs = s->segs.p;
	size_t n_segs = s->segs.n;
	uint32_t cp_start = 0;
	int r;

	(void)t;
	s->segs2.n = 0;
	/* code point index -> view byte offset: walk vidx alongside */
	size_t vb = 0; /* view byte offset of cp_start */
	for (size_t k = 0; k < n_segs; k++) {
		uint32_t len = segs[k];
		/* find the view byte range of [cp_start, cp_start + len) */
		size_t b0 = vb, b1 = vb;
		while (b1 < s->view.n && vidx[b1] < cp_start + len)
			b1++;
		size_t pos = 0, seg_bytes = b1 - b0;
		uint32_t done = 0; /* code points of this segment emitted */
		while (pos < seg_bytes) {
			int rc = pcre2_match(re, (PCRE2_SPTR)(view + b0), seg_bytes, pos,
					     PCRE2_NO_UTF_CHECK, s->md, NULL);
			if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
				rc = pcre2_match(re, (PCRE2_SPTR)(view + b0), seg_bytes, pos,
						 PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s->md, NULL);
			if (rc == PCRE2_ERROR_NOMATCH)
				break;
			if (rc < 0)
				return -EIO;
			PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
			size_t ms = ov[0], me = ov[1];
			uint32_t cs = ms < seg_bytes ? vidx[b0 + ms] - cp_start : len;
			uint32_t ce = me < seg_bytes ? vidx[b0 + me] - cp_start : len;
			if (cs > done) {
				uint32_t gap = cs - done;
				if ((r = buf_push(&s->segs2, &gap)) < 0)
					return r;
			}
			if (me == ms) {
				/* an empty match: step over one code point */
				done = cs;
				pos = me + 1;
				while (pos < seg_bytes && (view[b0 + pos] & 0xc0) == 0x80)
					pos++;
				continue;
			}
			uint32_t ml = ce - cs;
			if ((r = buf_push(&s->segs2, &ml)) < 0)
				return r;
			done = ce;
			pos = me;
		}
		if (done < len) {
			uint32_t rest = len - done;
			if ((r = buf_push(&s->segs2, &rest)) < 0)
				return r;
		}
		cp_start += len;
		vb = b1;
	}
	struct buf tmp = s->segs;
	s->segs = s->segs2;
	s->segs2 = tmp;
	return 0;
}

/* llama.cpp's llm_tokenizer_bpe_session::tokenize on one raw fragment. */
static int bpe_tokenize(const struct aw_tok *t, struct scratch *s, const char *text, size_t n)
{
	const unsigned char *u = (const unsigned char *)text;
	int r;

	if (n == 0)
		return 0;
	/* 1. code points, the lenient way, and the valid UTF-8 PCRE2 sees */
	s->cps.n = 0;
	s->view.n = 0;
	s->vidx.n = 0;
	if ((r = buf_reserve(&s->cps, n)) < 0 || (r = buf_reserve(&s->view, 3 * n)) < 0 ||
	    (r = buf_reserve(&s->vidx, 3 * n)) < 0)
		return r;
	uint32_t *cps = s->cps.p;
	char *view = s->view.p;
	uint32_t *vidx = s->vidx.p;
	size_t i = 0, nc = 0, nv = 0;
	while (i < n) {
		uint32_t cp = decode_lenient(u, n, &i);
		uint32_t vcp = (cp >= 0xd800 && cp <= 0xdfff) ? 0xe000 : cp;
		size_t k = put_utf8(vcp, view + nv);
		for (size_t j = 0; j < k; j++)
			vidx[nv + j] = (uint32_t)nc;
		nv += k;
		cps[nc++] = cp;
	}
	s->cps.n = nc;
	s->view.n = nv;
	s->vidx.n = nv;

	/* 2. the pre-tokenizer regexes, each splitting the previous segments */
	s->segs.n = 0;
	uint32_t all = (uint32_t)nc;
	if ((r = buf_push(&s->segs, &all)) < 0)
		return r;
	for (int k = 0; k < t->n_re; k++)
		if ((r = regex_split(t, s, t->re[k])) < 0)
			return r;

	/* 3. each word back to bytes (llama.cpp's unicode_cpt_to_utf8) and BPE */
	size_t c0 = 0;
	for (size_t k = 0; k < s->segs.n; k++) {
		uint32_t len = ((uint32_t *)s->segs.p)[k];
		if ((r = buf_reserve(&s->word, (size_t)len * 4)) < 0)
			return r;
		size_t m = 0;
		for (uint32_t j = 0; j < len; j++)
			m += put_utf8(((uint32_t *)s->cps.p)[c0 + j], (char *)s->word.p + m);
		c0 += len;
		if ((r = bpe_word(t, s, s->word.p, m)) < 0)
			return r;
	}
	return 0;
}

/* ---- special-token partition -------------------------------------------- */

struct frag {
	uint32_t id; /* token id, or UINT32_MAX for raw text */
	uint32_t off, len;
};

#define FRAG_RAW UINT32_MAX

/* llama.cpp's tokenizer_st_partition: for each special token, longest
 * first, cut every occurrence out of every raw fragment, left to right. */
static int partition(const struct aw_tok *t, struct scratch *s, const char *text, size_t n,
		     bool parse_special)
{
	int r;

	s->frags.n = 0;
	if (n == 0)
		return 0;
	struct frag f0 = {FRAG_RAW, 0, (uint32_t)n};
	if ((r = buf_push(&s->frags, &f0)) < 0)
		return r;
	for (uint32_t k = 0; k < t->n_special; k++) {
		int32_t id = t->special[k];
		const struct tok_entry *e = &t->tok[id];
		const char *st = t->text_pool + e->off;
		bool any = false;

		if (!parse_special && (e->attr & (ATTR_CONTROL | ATTR_UNKNOWN)))
			continue;
		/* quick reject: does it occur in any raw fragment? */
		for (size_t j = 0; j < s->frags.n && !any; j++) {
			const struct frag *f = &((struct frag *)s->frags.p)[j];
			if (f->id == FRAG_RAW && memmem(text + f->off, f->len, st, e->len))
				any = true;
		}
		if (!any)
			continue;
		s->frags2.n = 0;
		for (size_t j = 0; j < s->frags.n; j++) {
			struct frag f = ((struct frag *)s->frags.p)[j];
			if (f.id != FRAG_RAW) {
				if ((r = buf_push(&s->frags2, &f)) < 0)
					return r;
				continue;
			}
			uint32_t off = f.off, end = f.off + f.len;
			for (;;) {
				const char *m = memmem(text + off, end - off, st, e->len);
				if (!m)
					break;
				uint32_t mo = (uint32_t)(m - text);
				if (mo > off) {
					struct frag l = {FRAG_RAW, off, mo - off};
					if ((r = buf_push(&s->frags2, &l)) < 0)
						return r;
				}
				struct frag tk = {(uint32_t)id, mo, e->len};
				if ((r = buf_push(&s->frags2, &tk)) < 0)
					return r;
				off = mo + e->len;
			}
			if (off < end) {
				struct frag rest = {FRAG_RAW, off, end - off};
				if ((r = buf_push(&s->frags2, &rest)) < 0)
					return r;
			}
		}
		struct buf tmp = s->frags;
		s->frags = s->frags2;
		s->frags2 = tmp;
	}
	return 0;
}

/* ---- encode ------------------------------------------------------------- */

static int encode(const struct aw_tok *t, struct scratch *s, const char *text, size_t len,
		  unsigned flags)
{
	bool add_bos = (flags & AW_TOK_ADD_BOS) || ((flags & AW_TOK_ADD_SPECIAL) && t->add_bos);
	bool add_eos = (flags & AW_TOK_ADD_EOS) || ((flags & AW_TOK_ADD_SPECIAL) && t->add_eos);
	int r;

	if (len > INT32_MAX)
		return -EOVERFLOW;
	if (!text && len)
		return -EINVAL;
	if (add_bos && t->bos >= 0 && (r = emit(s, t->bos)) < 0)
		return r;
	if ((r = partition(t, s, text, len, flags & AW_TOK_PARSE_SPECIAL)) < 0)
		return r;
	if (t->model == AW_TOK_MODEL_BPE && !s->md) {
		s->md = pcre2_match_data_create(4, NULL);
		if (!s->md)
			return -ENOMEM;
	}
	bool prev_special = true; /* SentencePiece: a space before the first text */
	for (size_t j = 0; j < s->frags.n; j++) {
		const struct frag *f = &((struct frag *)s->frags.p)[j];

		if (f->id != FRAG_RAW) {
			if ((r = emit(s, (int32_t)f->id)) < 0)
				return r;
			prev_special = true;
			continue;
		}
		if (t->model == AW_TOK_MODEL_BPE) {
			if ((r = bpe_tokenize(t, s, text + f->off, f->len)) < 0)
				return r;
			continue;
		}
		/* SentencePiece: optional leading space, ' ' -> U+2581 */
		s->text.n = 0;
		if ((r = buf_reserve(&s->text, 3 * ((size_t)f->len + 1))) < 0)
			return r;
		char *o = s->text.p;
		size_t k = 0;
		if (t->add_space_prefix && prev_special) {
			memcpy(o, "\xe2\x96\x81", 3);
			k = 3;
		}
		for (uint32_t i = 0; i < f->len; i++) {
			char c = text[f->off + i];
			if (c == ' ') {
				memcpy(o + k, "\xe2\x96\x81", 3);
				k += 3;
			} else {
				o[k++] = c;
			}
		}
		s->text.n = k;
		if ((r = spm_tokenize(t, s, o, k)) < 0)
			return r;
		prev_special = false;
	}
	if (add_eos && t->eos >= 0 && (r = emit(s, t->eos)) < 0)
		return r;
	return 0;
}

int aw_tok_encode(const struct aw_tok *t, const char *text, size_t len, unsigned flags,
		  int32_t *out, size_t cap, size_t *ret_n)
{
	struct scratch s;
	int r;

	scratch_init(&s);
	r = encode(t, &s, text, len, flags);
	if (r == 0) {
		if (s.out.n > cap) {
			r = -ENOSPC;
		} else if (s.out.n) {
			memcpy(out, s.out.p, s.out.n * sizeof(int32_t));
		}
		*ret_n = s.out.n;
	}
	scratch_fini(&s);
	return r;
}

int aw_tok_encode_alloc(const struct aw_tok *t, const char *text, size_t len, unsigned flags,
			int32_t **ret_ids, size_t *ret_n)
{
	struct scratch s;
	int r;

	scratch_init(&s);
	r = encode(t, &s, text, len, flags);
	if (r == 0) {
		int32_t *ids = malloc(s.out.n ? s.out.n * sizeof(int32_t) : 1);
		if (!ids) {
			r = -ENOMEM;
		} else {
			if (s.out.n)
				memcpy(ids, s.out.p, s.out.n * sizeof(int32_t));
			*ret_ids = ids;
			*ret_n = s.out.n;
		}
	}
	scratch_fini(&s);
	return r;
}

/* ---- decode ------------------------------------------------------------- */

const char *aw_tok_piece(const struct aw_tok *t, int32_t id, size_t *ret_len)
{
	if (id < 0 || (uint32_t)id >= t->n)
		return NULL;
	*ret_len = t->tok[id].plen;
	return t->piece_pool + t->tok[id].poff;
}

const char *aw_tok_text(const struct aw_tok *t, int32_t id, size_t *ret_len)
{
	if (id < 0 || (uint32_t)id >= t->n)
		return NULL;
	*ret_len = t->tok[id].len;
	return t->text_pool + t->tok[id].off;
}

/* The piece a decoder shows for 'id' under 'flags'; false if it shows none. */
static void shown_piece(const struct aw_tok *t, int32_t id, unsigned flags, const char **p,
			size_t *n)
{
	const struct tok_entry *e = &t->tok[id];

	if (!(flags & AW_TOK_RENDER_SPECIAL) && (e->attr & (ATTR_CONTROL | ATTR_UNKNOWN))) {
		*p = "";
		*n = 0;
		return;
	}
	*p = t->piece_pool + e->poff;
	*n = e->plen;
}

int aw_tok_decode(const struct aw_tok *t, const int32_t *ids, size_t n, unsigned flags, char *out,
		  size_t cap, size_t *ret_n)
{
	bool at_start = true;
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		if (ids[i] < 0 || (uint32_t)ids[i] >= t->n)
			return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *p;
		size_t k;

		shown_piece(t, ids[i], flags, &p, &k);
		bool shown = k > 0;
		if (at_start && k && t->add_space_prefix && !(flags & AW_TOK_KEEP_SPACE) &&
		    p[0] == ' ' && !(t->tok[ids[i]].attr & (ATTR_CONTROL | ATTR_UNKNOWN))) {
			p++;
			k--;
		}
		if (ids[i] == t->bos)
			at_start = true;
		else if (shown)
			at_start = false;
		if (k && total + k <= cap)
			memcpy(out + total, p, k);
		total += k;
	}
	*ret_n = total;
	return total > cap ? -ENOSPC : 0;
}

void aw_tok_stream_init(struct aw_tok_stream *s, const struct aw_tok *t, unsigned flags)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->flags = flags;
	s->at_start = 1;
}

size_t aw_tok_stream_max(const struct aw_tok *t)
{
	return 3 * ((size_t)t->max_piece + 4);
}

/* A strict UTF-8 state machine (Unicode Table 3-7): complete sequences pass,
 * an ill-formed subsequence becomes one U+FFFD. */
struct u8 {
	unsigned char seq[4];
	unsigned n, need;
	unsigned char lo, hi;
	char *o;
	size_t k;
};

static void u8_fffd(struct u8 *u)
{
	memcpy(u->o + u->k, "\xef\xbf\xbd", 3);
	u->k += 3;
}

static void u8_feed(struct u8 *u, unsigned char b)
{
again:
	if (u->n == 0) {
		if (b < 0x80) {
			u->o[u->k++] = (char)b;
			return;
		}
		u->lo = 0x80;
		u->hi = 0xbf;
		if (b >= 0xc2 && b <= 0xdf) {
			u->need = 1;
		} else if (b >= 0xe0 && b <= 0xef) {
			u->need = 2;
			if (b == 0xe0)
				u->lo = 0xa0;
			if (b == 0xed)
				u->hi = 0x9f;
		} else if (b >= 0xf0 && b <= 0xf4) {
			u->need = 3;
			if (b == 0xf0)
				u->lo = 0x90;
			if (b == 0xf4)
				u->hi = 0x8f;
		} else {
			u8_fffd(u);
			return;
		}
		u->seq[u->n++] = b;
		return;
	}
	if (b < u->lo || b > u->hi) {
		u8_fffd(u);
		u->n = 0;
		goto again;
	}
	u->seq[u->n++] = b;
	u->lo = 0x80;
	u->hi = 0xbf;
	if (--u->need == 0) {
		memcpy(u->o + u->k, u->seq, u->n);
		u->k += u->n;
		u->n = 0;
	}
}

int aw_tok_stream_push(struct aw_tok_stream *s, int32_t id, char *out, size_t cap, size_t *ret_n)
{
	const struct aw_tok *t = s->t;
	const char *p;
	size_t k;

	if (id < 0 || (uint32_t)id >= t->n)
		return -EINVAL;
	if (cap < aw_tok_stream_max(t))
		return -ENOSPC;
	shown_piece(t, id, s->flags, &p, &k);
	bool shown = k > 0;
	if (s->at_start && k && t->add_space_prefix && !(s->flags & AW_TOK_KEEP_SPACE) &&
	    p[0] == ' ' && !(t->tok[id].attr & (ATTR_CONTROL | ATTR_UNKNOWN))) {
		p++;
		k--;
	}
	if (id == t->bos)
		s->at_start = 1;
	else if (shown)
		s->at_start = 0;

	struct u8 u = {.o = out};
	for (unsigned i = 0; i < s->n_pend; i++)
		u8_feed(&u, s->pend[i]);
	for (size_t i = 0; i < k; i++)
		u8_feed(&u, (unsigned char)p[i]);
	memcpy(s->pend, u.seq, u.n);
	s->n_pend = u.n;
	*ret_n = u.k;
	return 0;
}

int aw_tok_stream_flush(struct aw_tok_stream *s, char *out, size_t cap, size_t *ret_n)
{
	size_t k = 0;

	if (s->n_pend) {
		if (cap < 3)
			return -ENOSPC;
		memcpy(out, "\xef\xbf\xbd", 3);
		k = 3;
	}
	aw_tok_stream_init(s, s->t, s->flags);
	*ret_n = k;
	return 0;
}

/* ---- accessors ---------------------------------------------------------- */

uint32_t aw_tok_n_tokens(const struct aw_tok *t)
{
	return t->n;
}

enum aw_tok_model aw_tok_model(const struct aw_tok *t)
{
	return t->model;
}

const char *aw_tok_pre(const struct aw_tok *t)
{
	return t->pre_name;
}

int32_t aw_tok_bos(const struct aw_tok *t)
{
	return t->bos;
}

int32_t aw_tok_eos(const struct aw_tok *t)
{
	return t->eos;
}

int32_t aw_tok_eot(const struct aw_tok *t)
{
	return t->eot;
}

int32_t aw_tok_unk(const struct aw_tok *t)
{
	return t->unk;
}

int32_t aw_tok_pad(const struct aw_tok *t)
{
	return t->pad;
}

int aw_tok_add_bos(const struct aw_tok *t)
{
	return t->add_bos;
}

int aw_tok_add_eos(const struct aw_tok *t)
{
	return t->add_eos;
}

int aw_tok_add_space_prefix(const struct aw_tok *t)
{
	return t->add_space_prefix;
}

enum aw_tok_type aw_tok_token_type(const struct aw_tok *t, int32_t id)
{
	if (id < 0 || (uint32_t)id >= t->n)
		return AW_TOK_TYPE_UNDEFINED;
	return (enum aw_tok_type)t->tok[id].type;
}

int aw_tok_is_eog(const struct aw_tok *t, int32_t id)
{
	if (id < 0 || (uint32_t)id >= t->n)
		return 0;
	return t->tok[id].eog;
}

int32_t aw_tok_find(const struct aw_tok *t, const char *text, size_t len)
{
	return find_text(t, text, len);
}

/* ---- loading ------------------------------------------------------------ */

void aw_tok_vocab_init(struct aw_tok_vocab *v)
{
	memset(v, 0, sizeof(*v));
	v->bos = v->eos = v->unk = v->pad = AW_TOK_ID_DEFAULT;
	v->eot = v->eom = AW_TOK_ID_DEFAULT;
	v->add_bos = v->add_eos = v->add_space_prefix = -1;
}

void aw_tok_free(struct aw_tok *t)
{
	if (!t)
		return;
	for (int i = 0; i < MAX_REGEX; i++)
		pcre2_code_free(t->re[i]);
	free(t->tok);
	free(t->text_pool);
	free(t->piece_pool);
	free(t->ht);
	free(t->mt);
	free(t->special);
	free(t);
}

/* \s of llama.cpp's tables (unicode_set_whitespace), for use inside [...] */
#define WS                                                                                         \
	"\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"         \
	"\\x{202F}\\x{205F}\\x{3000}"

#define RE_GPT2                                                                                    \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS   \
	"])"

#define RE_LLAMA3(NUM)                                                                             \
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"  \
	"|" NUM "| ?[^" WS "\\p{L}\\p{N}]+[\\r\\n]*|[" WS "]*[\\r\\n]+|[" WS "]+(?![^" WS          \
	"])|[" WS "]+"

static const struct {
	const char *name;
	enum pre pre;
	bool ignore_merges, add_bos;
	const char *re[MAX_REGEX];
} pre_table[] = {
	{"default",
	 PRE_DEFAULT,
	 false,
	 false,
	 {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
	{"gpt-2", PRE_GPT2, false, false, {RE_GPT2}},
	{"llama-bpe", PRE_LLAMA3, true, true, {RE_LLAMA3("\\p{N}{1,3}")}},
	{"llama3", PRE_LLAMA3, true, true, {RE_LLAMA3("\\p{N}{1,3}")}},
	{"llama-v3", PRE_LLAMA3, true, true, {RE_LLAMA3("\\p{N}{1,3}")}},
	{"qwen2", PRE_QWEN2, false, false, {RE_LLAMA3("\\p{N}")}},
	{"smollm", PRE_SMOLLM, false, false, {"\\p{N}", RE_GPT2}},
};

static int compile_regexes(struct aw_tok *t, int k, struct aw_err *err)
{
	for (int i = 0; i < MAX_REGEX && pre_table[k].re[i]; i++) {
		int ec;
		PCRE2_SIZE eo;
		pcre2_code *re =
			pcre2_compile((PCRE2_SPTR)pre_table[k].re[i], PCRE2_ZERO_TERMINATED,
				      PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &ec, &eo, NULL);
		if (!re) {
			PCRE2_UCHAR msg[96];
			pcre2_get_error_message(ec, msg, sizeof(msg));
			return aw_err_set(err, EINVAL, "pre-tokenizer '%s' regex %d: %s at %zu",
					  pre_table[k].name, i, (const char *)msg, (size_t)eo);
		}
		/* JIT where the platform has it; the interpreter otherwise */
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
		t->re[i] = re;
		t->n_re = i + 1;
	}
	return 0;
}

/* Texts llama.cpp promotes to control tokens and to end-of-generation. */
static const char *const eog_texts[] = {
	"<|eot_id|>",
	"<|im_end|>",
	"<|end|>",
	"<|return|>",
	"<|call|>",
	"<|flush|>",
	"<|calls|>",
	"<end_of_turn>",
	"<|endoftext|>",
	"</s>",
	"<|eom_id|>",
	"<EOT>",
	"_<EOT>",
	"[EOT]",
	"[EOS]",
	"<|end_of_text|>",
	"<end_of_utterance>",
	"<eos>",
	"<turn|>",
	"<|tool_response>",
	"<\xef\xbd\x9c\x65nd\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
	"[e~[",
};
/* the ones llama.cpp also picks as "the" end-of-turn token */
static bool eot_candidate(const char *s)
{
	return strcmp(s, "<|return|>") && strcmp(s, "<|call|>") && strcmp(s, "<|flush|>") &&
	       strcmp(s, "<|calls|>") && strcmp(s, "</s>") && strcmp(s, "<|eom_id|>") &&
	       strcmp(s, "[EOS]") && strcmp(s, "<eos>") && strcmp(s, "<turn|>") &&
	       strcmp(s, "<|tool_response>") && strcmp(s, "[e~[");
}
static const char *const fim_texts[] = {
	"<|fim_prefix|>",
	"<fim-prefix>",
	"<fim_prefix>",
	"<PRE>",
	"\xe2\x96\x81<PRE>",
	"<|code_prefix|>",
	"<|prefix|>",
	"<|fim_suffix|>",
	"<fim-suffix>",
	"<fim_suffix>",
	"<SUF>",
	"\xe2\x96\x81<SUF>",
	"<|code_suffix|>",
	"<|suffix|>",
	"<|fim_middle|>",
	"<fim-middle>",
	"<fim_middle>",
	"<MID>",
	"\xe2\x96\x81<MID>",
	"<|code_middle|>",
	"<|middle|>",
	"<|fim_pad|>",
	"<fim-pad>",
	"<fim_pad>",
	"<PAD>",
	"[PAD]",
	"<|fim_repo|>",
	"<|repo_name|>",
	"<fim-repo>",
	"<REPO>",
	"<reponame>",
	"<|file_sep|>",
	"<\xef\xbd\x9c\x66im\xe2\x96\x81\x62\x65gin\xef\xbd\x9c>",
	"<\xef\xbd\x9c\x66im\xe2\x96\x81hole\xef\xbd\x9c>",
	"<\xef\xbd\x9c\x66im\xe2\x96\x81\x65nd\xef\xbd\x9c>",
};

static uint8_t attr_of_type(int32_t type)
{
	switch (type) {
	case AW_TOK_TYPE_NORMAL:
		return ATTR_NORMAL;
	case AW_TOK_TYPE_UNKNOWN:
		return ATTR_UNKNOWN;
	case AW_TOK_TYPE_CONTROL:
		return ATTR_CONTROL;
	case AW_TOK_TYPE_USER_DEFINED:
		return ATTR_USER_DEFINED;
	case AW_TOK_TYPE_UNUSED:
		return ATTR_UNUSED;
	case AW_TOK_TYPE_BYTE:
		return ATTR_BYTE;
	default:
		return ATTR_UNDEFINED;
	}
}

/* "<0xNN>" -> NN, or -1 */
static int hex_byte(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
		return -1;
	int v = 0;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

static int32_t resolve_id(int64_t given, int32_t dflt, uint32_t n)
{
	if (dflt >= 0 && (uint32_t)dflt >= n)
		dflt = AW_TOK_ID_NONE;
	if (given == AW_TOK_ID_DEFAULT)
		return dflt;
	if (given < 0)
		return AW_TOK_ID_NONE;
	if ((uint64_t)given >= n)
		return dflt; /* llama.cpp: "bad special token", keeps the default */
	return (int32_t)given;
}

/* Compute the decoded piece of every token. */
static int build_pieces(struct aw_tok *t, size_t pool_bytes)
{
	/* a decoded piece is never longer than the text (U+2581 -> 1 byte,
	 * GPT-2 characters -> 1 byte, unknown code points copied) */
	t->piece_pool = malloc(pool_bytes ? pool_bytes : 1);
	if (!t->piece_pool)
		return -ENOMEM;
	size_t k = 0;
	for (uint32_t id = 0; id < t->n; id++) {
		struct tok_entry *e = &t->tok[id];
		const char *s = t->text_pool + e->off;
		e->poff = (uint32_t)k;
		if (e->attr & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER_DEFINED)) {
			memcpy(t->piece_pool + k, s, e->len);
			k += e->len;
		} else if (e->attr & ATTR_NORMAL) {
			if (t->model == AW_TOK_MODEL_SPM) {
				for (uint32_t i = 0; i < e->len; i++) {
					if (i + 2 < e->len &&
					    memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
						t->piece_pool[k++] = ' ';
						i += 2;
					} else {
						t->piece_pool[k++] = s[i];
					}
				}
			} else {
				size_t i = 0;
				while (i < e->len) {
					size_t i0 = i;
					uint32_t cp = decode_lenient((const unsigned char *)s,
								     e->len, &i);
					int b = cp_to_byte(cp);
					if (b >= 0 && !(cp == 0xfffd && i == i0 + 1)) {
						t->piece_pool[k++] = (char)b;
					} else {
						/* not in GPT-2's alphabet: copy as is */
						memcpy(t->piece_pool + k, s + i0, i - i0);
						k += i - i0;
					}
				}
			}
		} else if (e->attr & ATTR_BYTE) {
			int b = hex_byte(s, e->len);
			if (b >= 0) {
				t->piece_pool[k++] = (char)b;
			} else {
				memcpy(t->piece_pool + k, s, e->len);
				k += e->len;
			}
		}
		e->plen = (uint32_t)k - e->poff;
		if (e->plen > t->max_piece)
			t->max_piece = e->plen;
	}
	return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx)
{
	const struct aw_tok *t = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	if (t->tok[x].len != t->tok[y].len)
		return t->tok[x].len > t->tok[y].len ? -1 : 1;
	return x < y ? -1 : x > y;
}

int aw_tok_new(const struct aw_tok_vocab *v, struct aw_tok **ret_t, struct aw_err *err)
{
	struct aw_tok *t;
	int r;

	aw_err_clear(err);
	if (!v->model)
		return aw_err_set(err, EINVAL, "tokenizer.ggml.model: missing");
	if (v->n_tokens == 0 || !v->tokens)
		return aw_err_set(err, EBADMSG, "tokenizer.ggml.tokens: empty");
	if (v->n_tokens > (1u << 30))
		return aw_err_set(err, EBADMSG, "tokenizer.ggml.tokens: %u tokens is too many",
				  v->n_tokens);
	if (v->n_scores && (v->n_scores != v->n_tokens || !v->scores))
		return aw_err_set(err, EBADMSG, "tokenizer.ggml.scores: %u scores for %u tokens",
				  v->n_scores, v->n_tokens);
	if (v->n_types && (v->n_types != v->n_tokens || !v->types))
		return aw_err_set(err, EBADMSG, "tokenizer.ggml.token_type: %u types for %u tokens",
				  v->n_types, v->n_tokens);

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n = v->n_tokens;
	if (strcmp(v->model, "llama") == 0) {
		t->model = AW_TOK_MODEL_SPM;
		t->pre = PRE_NONE;
	} else if (strcmp(v->model, "gpt2") == 0) {
		t->model = AW_TOK_MODEL_BPE;
		const char *pre = v->pre && v->pre[0] ? v->pre : "default";
		int k = -1;
		for (size_t i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]); i++)
			if (strcmp(pre_table[i].name, pre) == 0)
				k = (int)i;
		if (k < 0) {
			r = aw_err_set(err, EINVAL,
				       "tokenizer.ggml.pre: '%.40s' is not supported (llama-bpe, "
				       "qwen2, smollm, gpt-2, default)",
				       pre);
			goto fail;
		}
		t->pre = pre_table[k].pre;
		t->ignore_merges = pre_table[k].ignore_merges;
		t->add_bos = pre_table[k].add_bos;
		snprintf(t->pre_name, sizeof(t->pre_name), "%s", pre_table[k].name);
		if ((r = compile_regexes(t, k, err)) < 0)
			goto fail;
	} else {
		r = aw_err_set(err, EINVAL,
			       "tokenizer.ggml.model: '%.40s' is not supported (llama, gpt2)",
			       v->model);
		goto fail;
	}

	/* tokens: copy the texts, hash them */
	size_t pool = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		if (!v->tokens[i]) {
			r = aw_err_set(err, EBADMSG, "tokenizer.ggml.tokens[%u]: missing", i);
			goto fail;
		}
		pool += v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);
	}
	if (pool > UINT32_MAX - 1) {
		r = aw_err_set(err, EBADMSG, "tokenizer.ggml.tokens: %zu bytes of text", pool);
		goto fail;
	}
	t->tok = calloc(t->n, sizeof(*t->tok));
	t->text_pool = malloc(pool ? pool : 1);
	uint32_t hsize = 16;
	while (hsize < 2 * t->n)
		hsize *= 2;
	t->ht = calloc(hsize, sizeof(uint64_t));
	t->ht_mask = hsize - 1;
	if (!t->tok || !t->text_pool || !t->ht) {
		r = -ENOMEM;
		goto fail;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		struct tok_entry *e = &t->tok[i];
		size_t len = v->token_lens ? v->token_lens[i] : strlen(v->tokens[i]);

		memcpy(t->text_pool + off, v->tokens[i], len);
		e->off = (uint32_t)off;
		e->len = (uint32_t)len;
		e->score = v->n_scores ? v->scores[i] : 0.0f;
		e->type = v->n_types ? (uint8_t)(v->types[i] >= 0 && v->types[i] <= 6 ? v->types[i]
										      : 0)
				     : AW_TOK_TYPE_NORMAL;
		e->attr = v->n_types ? attr_of_type(v->types[i]) : ATTR_NORMAL;
		off += len;
		if (len == 0) {
			r = aw_err_set(err, EBADMSG, "tokenizer.ggml.tokens[%u]: empty token", i);
			goto fail;
		}
		if (find_text(t, t->text_pool + e->off, len) >= 0) {
			r = aw_err_set(err, EBADMSG,
				       "tokenizer.ggml.tokens[%u]: duplicate of token %d ('%.*s')",
				       i, find_text(t, t->text_pool + e->off, len),
				       (int)(len < 40 ? len : 40), t->text_pool + e->off);
			goto fail;
		}
		uint64_t hv = hash_bytes(t->text_pool + e->off, len);
		uint32_t h = (uint32_t)hv & t->ht_mask;
		while (t->ht[h])
			h = (h + 1) & t->ht_mask;
		t->ht[h] = (hv >> 32 << 32) | (i + 1);
	}

	for (size_t i = 0; i < pool; i++)
		t->in_token[(unsigned char)t->text_pool[i]] = 1;

	/* special ids and flags, llama.cpp's defaults first */
	if (t->model == AW_TOK_MODEL_SPM) {
		t->bos = resolve_id(v->bos, 1, t->n);
		t->eos = resolve_id(v->eos, 2, t->n);
		t->unk = resolve_id(v->unk, 0, t->n);
		t->add_bos = true;
		t->add_eos = false;
		t->add_space_prefix = true;
	} else {
		t->bos = resolve_id(v->bos, 11, t->n);
		t->eos = resolve_id(v->eos, 11, t->n);
		t->unk = resolve_id(v->unk, AW_TOK_ID_NONE, t->n);
		t->add_eos = false;
		t->add_space_prefix = false;
	}
	t->pad = resolve_id(v->pad, AW_TOK_ID_NONE, t->n);
	t->eot = resolve_id(v->eot, AW_TOK_ID_NONE, t->n);
	t->eom = resolve_id(v->eom, AW_TOK_ID_NONE, t->n);
	if (v->add_bos >= 0)
		t->add_bos = v->add_bos;
	if (v->add_eos >= 0)
		t->add_eos = v->add_eos;
	if (v->add_space_prefix >= 0)
		t->add_space_prefix = v->add_space_prefix;

	/* texts llama.cpp turns into control / end-of-generation tokens */
	for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++) {
		int32_t id = find_text(t, eog_texts[i], strlen(eog_texts[i]));
		if (id >= 0) {
			t->tok[id].attr |= ATTR_CONTROL;
			t->tok[id].eog = 1;
			if (t->eot < 0 && eot_candidate(eog_texts[i]))
				t->eot = id;
		}
	}
	for (size_t i = 0; i < sizeof(fim_texts) / sizeof(fim_texts[0]); i++) {
		int32_t id = find_text(t, fim_texts[i], strlen(fim_texts[i]));
		if (id >= 0)
			t->tok[id].attr |= ATTR_CONTROL;
	}
	static const char *const ud_texts[] = {"<|channel|>", "<|message|>", "<|start|>",
					       "<|constrain|>"};
	for (size_t i = 0; i < sizeof(ud_texts) / sizeof(ud_texts[0]); i++) {
		int32_t id = find_text(t, ud_texts[i], strlen(ud_texts[i]));
		if (id >= 0)
			t->tok[id].attr = ATTR_USER_DEFINED;
	}
	if (t->eos >= 0)
		t->tok[t->eos].eog = 1;
	if (t->eot >= 0)
		t->tok[t->eot].eog = 1;
	if (t->eom >= 0)
		t->tok[t->eom].eog = 1;

	/* byte tokens */
	for (unsigned b = 0; b < 256; b++) {
		int32_t id;
		if (t->model == AW_TOK_MODEL_SPM) {
			char hx[7];
			snprintf(hx, sizeof(hx), "<0x%02X>", b);
			id = find_text(t, hx, 6);
			if (id < 0) {
				char c = (char)b;
				id = find_text(t, &c, 1);
			}
			if (id < 0)
				id = t->unk;
			if (id < 0) {
				r = aw_err_set(err, EBADMSG,
					       "tokenizer.ggml.tokens: no byte token <0x%02X> "
					       "(and no unknown token)",
					       b);
				goto fail;
			}
		} else {
			char u[4];
			size_t k = put_utf8(byte_to_cp(b), u);
			memcpy(t->byte_chr[b], u, 2);
			t->byte_chr_len[b] = (uint8_t)k;
			id = find_text(t, u, k);
			if (id < 0) {
				r = aw_err_set(err, EBADMSG,
					       "tokenizer.ggml.tokens: no token for byte 0x%02X "
					       "(byte-level BPE needs all 256)",
					       b);
				goto fail;
			}
		}
		t->byte_tok[b] = id;
	}

	/* merges: (left id, right id) -> (rank, merged id); the first of a
	 * duplicated pair wins, as in llama.cpp */
	if (t->model == AW_TOK_MODEL_BPE) {
		if (v->n_merges == 0 || !v->merges) {
			r = aw_err_set(err, ENOENT, "tokenizer.ggml.merges: missing");
			goto fail;
		}
		if (v->n_merges > (1u << 30)) {
			r = aw_err_set(err, EBADMSG, "tokenizer.ggml.merges: too many");
			goto fail;
		}
		uint32_t msize = 16;
		while (msize < 2 * v->n_merges)
			msize *= 2;
		t->mt = calloc(msize, sizeof(*t->mt));
		t->mt_mask = msize - 1;
		char *tmp = NULL;
		size_t tmp_cap = 0;
		if (!t->mt) {
			r = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < v->n_merges; i++) {
			const char *m = v->merges[i];
			size_t len = m ? (v->merge_lens ? v->merge_lens[i] : strlen(m)) : 0;
			const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
			if (!sp) {
				free(tmp);
				r = aw_err_set(err, EBADMSG,
					       "tokenizer.ggml.merges[%u]: not \"left right\"", i);
				goto fail;
			}
			size_t ll = (size_t)(sp - m), rl = len - ll - 1;
			int32_t a = find_text(t, m, ll), b = find_text(t, sp + 1, rl);
			if (a < 0 || b < 0) {
				free(tmp);
				r = aw_err_set(
					err, EBADMSG,
					"tokenizer.ggml.merges[%u]: '%.*s' is not a token", i,
					(int)(a < 0 ? (ll < 40 ? ll : 40) : (rl < 40 ? rl : 40)),
					a < 0 ? m : sp + 1);
				goto fail;
			}
			if (ll + rl > tmp_cap) {
				char *p = realloc(tmp, ll + rl);
				if (!p) {
					free(tmp);
					r = -ENOMEM;
					goto fail;
				}
				tmp = p;
				tmp_cap = ll + rl;
			}
			memcpy(tmp, m, ll);
			memcpy(tmp + ll, sp + 1, rl);
			int32_t res = find_text(t, tmp, ll + rl);
			if (res < 0) {
				free(tmp);
				r = aw_err_set(err, EBADMSG,
					       "tokenizer.ggml.merges[%u]: result '%.*s' is not a "
					       "token",
					       i, (int)(ll + rl < 40 ? ll + rl : 40), m);
				goto fail;
			}
			uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
			uint32_t h = (uint32_t)hash_u64(key) & t->mt_mask;
			while (t->mt[h].key && t->mt[h].key != key)
				h = (h + 1) & t->mt_mask;
			if (t->mt[h].key == 0) {
				t->mt[h].key = key;
				t->mt[h].rank = (int32_t)i;
				t->mt[h].result = res;
			}
		}
		free(tmp);
	}

	/* special tokens for the partition: control, user-defined, unknown;
	 * longest text first (ties by id: llama.cpp's sort is unstable) */
	uint32_t ns = 0;
	for (uint32_t i = 0; i < t->n; i++)
		if (t->tok[i].attr & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
			ns++;
	if (ns) {
		t->special = malloc(ns * sizeof(int32_t));
		if (!t->special) {
			r = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < t->n; i++)
			if (t->tok[i].attr & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN))
				t->special[t->n_special++] = (int32_t)i;
		qsort_r(t->special, ns, sizeof(int32_t), cmp_special, t);
	}

	if ((r = build_pieces(t, pool)) < 0)
		goto fail;
	*ret_t = t;
	return 0;
fail:
	aw_tok_free(t);
	return r;
}

/* ---- from a GGUF file ----------------------------------------------------- */

struct str_arr {
	const char **p;
	uint32_t *len;
	uint32_t n;
};

static int get_str_arr(const struct aw_gguf *g, const char *key, struct str_arr *a, bool required,
		       struct aw_err *err)
{
	uint32_t et;
	uint64_t n;
	int r = aw_gguf_get_arr(g, key, &et, &n);

	memset(a, 0, sizeof(*a));
	if (r == -ENOENT)
		return required ? aw_err_set(err, ENOENT, "%s: missing", key) : 0;
	if (r < 0 || et != AW_GGUF_TYPE_STRING)
		return aw_err_set(err, EBADMSG, "%s: not an array of strings", key);
	if (n > (1u << 30))
		return aw_err_set(err, EBADMSG, "%s: %llu entries is too many", key,
				  (unsigned long long)n);
	int ki = aw_gguf_find_key(g, key);
	a->p = malloc((n ? n : 1) * sizeof(*a->p));
	a->len = malloc((n ? n : 1) * sizeof(*a->len));
	if (!a->p || !a->len)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++) {
		size_t l;
		if (aw_gguf_arr_str(g, ki, i, &a->p[i], &l) < 0 || l > UINT32_MAX)
			return aw_err_set(err, EBADMSG, "%s[%llu]: unreadable", key,
					  (unsigned long long)i);
		a->len[i] = (uint32_t)l;
	}
	a->n = (uint32_t)n;
	return 0;
}

static int get_id(const struct aw_gguf *g, const char *key, int64_t *ret, struct aw_err *err)
{
	uint32_t v;
	int r = aw_gguf_get_u32(g, key, &v);

	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		int32_t s;
		if (aw_gguf_get_i32(g, key, &s) == 0 && s == -1) {
			*ret = AW_TOK_ID_NONE;
			return 0;
		}
		return aw_err_set(err, EBADMSG, "%s: not a token id", key);
	}
	*ret = v;
	return 0;
}

static int get_flag(const struct aw_gguf *g, const char *key, int *ret, struct aw_err *err)
{
	bool b;
	int r = aw_gguf_get_bool(g, key, &b);

	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return aw_err_set(err, EBADMSG, "%s: not a bool", key);
	*ret = b;
	return 0;
}

int aw_tok_new_from_gguf(const struct aw_gguf *g, struct aw_tok **ret_t, struct aw_err *err)
{
	struct aw_tok_vocab v;
	struct str_arr toks = {0}, merges = {0};
	float *scores = NULL;
	int32_t *types = NULL;
	char model[32], pre[64];
	const char *s;
	size_t sl;
	int r;

	aw_tok_vocab_init(&v);
	if ((r = aw_gguf_get_str(g, "tokenizer.ggml.model", &s, &sl)) < 0) {
		r = aw_err_set(err, r == -ENOENT ? ENOENT : EBADMSG, "tokenizer.ggml.model: %s",
			       r == -ENOENT ? "missing" : "not a string");
		goto out;
	}
	snprintf(model, sizeof(model), "%.*s", (int)(sl < 31 ? sl : 31), s);
	if (sl >= sizeof(model) || memchr(s, 0, sl))
		model[0] = '?';
	v.model = model;
	pre[0] = 0;
	if (aw_gguf_get_str(g, "tokenizer.ggml.pre", &s, &sl) == 0) {
		snprintf(pre, sizeof(pre), "%.*s", (int)(sl < 63 ? sl : 63), s);
		if (sl >= sizeof(pre) || memchr(s, 0, sl))
			pre[0] = '?';
	}
	v.pre = pre;

	if ((r = get_str_arr(g, "tokenizer.ggml.tokens", &toks, true, err)) < 0)
		goto out;
	v.n_tokens = toks.n;
	v.tokens = toks.p;
	v.token_lens = toks.len;
	if ((r = get_str_arr(g, "tokenizer.ggml.merges", &merges, false, err)) < 0)
		goto out;
	v.n_merges = merges.n;
	v.merges = merges.p;
	v.merge_lens = merges.len;

	uint32_t et;
	uint64_t n;
	r = aw_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n);
	if (r == 0) {
		const void *d;
		if (et != AW_GGUF_TYPE_FLOAT32 || n > (1u << 30) ||
		    aw_gguf_arr_data(g, aw_gguf_find_key(g, "tokenizer.ggml.scores"), &d) < 0) {
			r = aw_err_set(err, EBADMSG, "tokenizer.ggml.scores: not an f32 array");
			goto out;
		}
		scores = malloc((n ? n : 1) * sizeof(float));
		if (!scores) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(scores, d, n * sizeof(float));
		v.n_scores = (uint32_t)n;
		v.scores = scores;
		if (n == 0)
			v.n_scores = UINT32_MAX; /* present but empty: a count mismatch */
	} else if (r != -ENOENT) {
		r = aw_err_set(err, EBADMSG, "tokenizer.ggml.scores: not an array");
		goto out;
	}
	r = aw_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n);
	if (r == 0) {
		const void *d;
		size_t es = aw_gguf_type_size(et);
		if ((et != AW_GGUF_TYPE_INT32 && et != AW_GGUF_TYPE_UINT32) || n > (1u << 30) ||
		    aw_gguf_arr_data(g, aw_gguf_find_key(g, "tokenizer.ggml.token_type"), &d) < 0) {
			r = aw_err_set(err, EBADMSG, "tokenizer.ggml.token_type: not an i32 array");
			goto out;
		}
		types = malloc((n ? n : 1) * sizeof(int32_t));
		if (!types) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(types, d, n * es);
		v.n_types = n ? (uint32_t)n : UINT32_MAX;
		v.types = types;
	} else if (r != -ENOENT) {
		r = aw_err_set(err, EBADMSG, "tokenizer.ggml.token_type: not an array");
		goto out;
	}
	if ((r = get_id(g, "tokenizer.ggml.bos_token_id", &v.bos, err)) < 0 ||
	    (r = get_id(g, "tokenizer.ggml.eos_token_id", &v.eos, err)) < 0 ||
	    (r = get_id(g, "tokenizer.ggml.unknown_token_id", &v.unk, err)) < 0 ||
	    (r = get_id(g, "tokenizer.ggml.padding_token_id", &v.pad, err)) < 0 ||
	    (r = get_id(g, "tokenizer.ggml.eot_token_id", &v.eot, err)) < 0 ||
	    (r = get_id(g, "tokenizer.ggml.eom_token_id", &v.eom, err)) < 0 ||
	    (r = get_flag(g, "tokenizer.ggml.add_bos_token", &v.add_bos, err)) < 0 ||
	    (r = get_flag(g, "tokenizer.ggml.add_eos_token", &v.add_eos, err)) < 0 ||
	    (r = get_flag(g, "tokenizer.ggml.add_space_prefix", &v.add_space_prefix, err)) < 0)
		goto out;
	r = aw_tok_new(&v, ret_t, err);
out:
	free(toks.p);
	free(toks.len);
	free(merges.p);
	free(merges.len);
	free(scores);
	free(types);
	return r;
}
