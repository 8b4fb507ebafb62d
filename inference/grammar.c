/* grammar.c — JSON Schema → grammar, and the per-sequence token matcher.
 *
 * The compiled grammar is an array of nodes (object, array, string, number,
 * literal set, alternative, root sequence). Object keys and enum/const
 * values are byte tries; `pattern` and `format` strings are DFAs from
 * grammar-re.c. The matcher runs that grammar as a pushdown automaton over
 * bytes: a frame per open value (immutable, linked to its parent, so that a
 * step allocates only the frames it changes), and a set of stacks where
 * anyOf leaves more than one reading alive.
 *
 * The mask. The vocabulary's token texts are a trie stored flat in
 * pre-order (byte, depth, end of subtree, token). One pass over that array
 * steps the automaton once per trie edge; when no stack survives a byte, the
 * pass jumps to the end of the subtree, so a structural position (after
 * '{', inside a number, inside a key) looks at a few hundred nodes of the
 * 400 000. The one place where almost every token is allowed — free string
 * content — is answered from per-vocabulary tables instead: le[k] is the
 * bitset of tokens that are plain string content of at most k characters
 * (no quote, backslash or control byte, valid UTF-8 so far), and a second,
 * small trie holds the tokens that reach a quote or a backslash, which are
 * walked as above because what follows the quote depends on the context.
 * Masks are cached per grammar keyed by the matcher's exact state, so the
 * repeated positions of arrays of objects cost a copy.
 *
 * The scratch frames of a walk live in a bump arena that is reset per trie
 * level; the frames of accepted states are copied into a history arena, and
 * rollback truncates it.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "chat.h"
#include "grammar-int.h"
#include "grammar.h"
#include "sample.h"
#include "tok.h"

/* ---- compiled grammar ------------------------------------------------------ */

enum gk { GK_ROOT, GK_OBJECT, GK_ARRAY, GK_STRING, GK_NUMBER, GK_LIT, GK_ALT, GK_TEXT };

#define NUM_MAX_INT  15		       /* integer digits generated */
#define NUM_MAX_FRAC 6		       /* fraction digits generated */
#define NUM_LIM	     999999999999999ll /* the largest NUM_MAX_INT-digit integer */
#define ANY_DEPTH    6		       /* nesting of containers from an untyped ("any") schema */
#define ALT_DEPTH    16		       /* anyOf nested inside anyOf without consuming a byte */

struct gnode {
	uint8_t kind;	  /* enum gk */
	uint8_t integer;  /* NUMBER: no fraction */
	uint8_t any;	  /* OBJECT/ARRAY: part of the "any value" grammar (depth-capped) */
	uint32_t n;	  /* OBJECT: declared properties; ALT: alternatives; ROOT: sequence;
			    ARRAY: prefix items */
	uint32_t off;	  /* OBJECT: into props; ALT/ROOT/ARRAY: into kids */
	int32_t sub;	  /* OBJECT: map value node (-1: declared properties); ARRAY: items */
	uint32_t trie;	  /* OBJECT: key trie; LIT: value trie */
	uint32_t lo, hi;  /* ARRAY: item count; STRING: characters (hi UINT32_MAX: none) */
	int32_t dfa;	  /* STRING: index into dfas, -1: free text */
	int64_t ilo, ihi; /* NUMBER: integer values allowed */
	double dlo, dhi;  /* NUMBER: bounds for values with a fraction */
};

struct gprop {
	int32_t node;	     /* value schema */
	uint32_t req_next;   /* first required property index >= this one (n: none) */
	uint32_t koff, klen; /* the serialised key ("name", quotes included) in kblob */
};

/* Byte trie node: children at tkid[kid..kid+nkid) sorted by tbyte. */
struct tnode {
	uint32_t kid;
	uint16_t nkid;
	int32_t leaf;	 /* payload of a string ending here, -1: none */
	uint32_t lo, hi; /* leaves of the subtree: tleaf[lo..hi) */
};

struct mcache;

struct aw_grammar {
	struct gnode *nodes;
	uint32_t nnodes, capnodes;
	struct gprop *props;
	uint32_t nprops, capprops;
	uint32_t *kids;
	uint32_t nkids, capkids;
	struct tnode *tn;
	uint32_t ntn, captn;
	uint8_t *tbyte;
	uint32_t *tkid;
	uint32_t ntk, captk;
	int32_t *tleaf;
	uint32_t ntleaf, captleaf;
	struct aw_gdfa *dfas;
	uint32_t ndfas, capdfas;
	char *kblob; /* serialised property keys */
	uint32_t nkblob, capkblob;
	uint32_t root;
	int any_all; /* aw_grammar_new_any(): every token, always */
	char comma[3], colon[3];
	uint8_t ncomma, ncolon;
	pthread_mutex_t lock; /* guards cache */
	struct mcache *cache;
};

static int grow(void **p, uint32_t *cap, uint32_t need, size_t sz)
{
	if (need <= *cap)
		return 0;
	uint32_t nc = *cap ? *cap : 16;
	while (nc < need)
		nc *= 2;
	void *np = realloc(*p, (size_t)nc * sz);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

#define GROW(g, arr, n, cap, need) grow((void **)&(g)->arr, &(g)->cap, (need), sizeof(*(g)->arr))

/* ---- tries ----------------------------------------------------------------- */

struct tstr {
	const uint8_t *s;
	uint32_t len;
	int32_t payload;
};

static int tstr_cmp(const void *a, const void *b)
{
	const struct tstr *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* Build the trie node for v[lo..hi) (sorted) at depth d; returns its index. */
static int64_t trie_build(struct aw_grammar *g, const struct tstr *v, uint32_t lo, uint32_t hi,
			  uint32_t d, uint32_t leafbase)
{
	if (GROW(g, tn, g->ntn, captn, g->ntn + 1) < 0)
		return -ENOMEM;
	uint32_t me = g->ntn++;
	struct tnode t = {0, 0, -1, leafbase + lo, leafbase + hi};
	uint32_t i = lo;
	if (i < hi && v[i].len == d)
		t.leaf = v[i++].payload;
	/* count children */
	uint32_t nk = 0;
	for (uint32_t j = i; j < hi;) {
		uint8_t b = v[j].s[d];
		while (j < hi && v[j].s[d] == b)
			j++;
		nk++;
	}
	if (g->ntk + nk > g->captk) {
		uint32_t nc = g->captk ? g->captk * 2 : 256;
		while (nc < g->ntk + nk)
			nc *= 2;
		uint8_t *nb = realloc(g->tbyte, nc);
		if (!nb)
			return -ENOMEM;
		g->tbyte = nb;
		uint32_t *nkd = realloc(g->tkid, nc * sizeof(*nkd));
		if (!nkd)
			return -ENOMEM;
		g->tkid = nkd;
		g->captk = nc;
	}
	t.kid = g->ntk;
	t.nkid = (uint16_t)nk;
	g->ntk += nk;
	g->tn[me] = t;
	uint32_t k = 0;
	for (uint32_t j = i; j < hi; k++) {
		uint8_t b = v[j].s[d];
		uint32_t e = j;
		while (e < hi && v[e].s[d] == b)
			e++;
		int64_t c = trie_build(g, v, j, e, d + 1, leafbase);
		if (c < 0)
			return c;
		g->tbyte[t.kid + k] = b;
		g->tkid[t.kid + k] = (uint32_t)c;
		j = e;
	}
	return me;
}

/* A trie of 'n' strings (duplicates dropped); returns the root index. */
static int64_t trie_new(struct aw_grammar *g, struct tstr *v, uint32_t n)
{
	qsort(v, n, sizeof(*v), tstr_cmp);
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!k || tstr_cmp(&v[k - 1], &v[i]))
			v[k++] = v[i];
	if (GROW(g, tleaf, g->ntleaf, captleaf, g->ntleaf + k) < 0)
		return -ENOMEM;
	uint32_t base = g->ntleaf;
	for (uint32_t i = 0; i < k; i++)
		g->tleaf[base + i] = v[i].payload;
	g->ntleaf += k;
	return trie_build(g, v, 0, k, 0, base);
}

static inline int32_t trie_kid(const struct aw_grammar *g, uint32_t t, uint8_t b)
{
	const struct tnode *x = &g->tn[t];
	for (uint32_t i = 0; i < x->nkid; i++)
		if (g->tbyte[x->kid + i] == b)
			return (int32_t)g->tkid[x->kid + i];
	return -1;
}

/* ---- schema compiler ------------------------------------------------------- */

struct memo {
	const struct aw_json *schema;
	int32_t node;
};

struct comp {
	struct aw_grammar *g;
	const struct aw_json *root;
	struct aw_err *err;
	char path[128];
	size_t plen;
	struct memo *memo;
	uint32_t nmemo, capmemo;
	int32_t any; /* node of "any JSON value", -1 until needed */
	struct timespec t0;
	uint32_t ticks;
	/* literal serialisation buffer */
	struct aw_chat_buf buf;
	/* schema objects made by merging (anyOf siblings into alternatives):
	 * shallow, freed after the compile */
	struct aw_json **tmp;
	uint32_t ntmp, captmp;
	uint32_t depth; /* compile() nesting: merges can recurse through $ref */
	struct {
		const char *re; /* pattern text (borrowed) */
		size_t len;
		uint32_t lo, hi;
		int32_t dfa;
	} redone[32]; /* DFAs built so far: the same format repeats */
	uint32_t nredone;
};

static int over_budget(struct comp *c)
{
	if (++c->ticks % 64)
		return 0;
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	long us = (t.tv_sec - c->t0.tv_sec) * 1000000L + (t.tv_nsec - c->t0.tv_nsec) / 1000;
	return us > AW_GRAMMAR_COMPILE_US;
}

__attribute__((format(printf, 3, 4))) static int cerr(struct comp *c, int code, const char *fmt,
						      ...)
{
	char m[112];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	return aw_err_set(c->err, code, "%s at %.40s", m, c->plen ? c->path : "/");
}

static size_t path_push(struct comp *c, const char *seg)
{
	size_t old = c->plen;
	int n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "/%s", seg);
	if (n > 0)
		c->plen += (size_t)n < sizeof(c->path) - c->plen ? (size_t)n
								 : sizeof(c->path) - 1 - c->plen;
	return old;
}

static void path_pop(struct comp *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static int64_t node_new(struct comp *c, const struct gnode *n)
{
	struct aw_grammar *g = c->g;
	if (g->nnodes >= AW_GRAMMAR_MAX_NODES)
		return cerr(c, E2BIG, "schema too large: more than %s grammar nodes", "20000");
	if (over_budget(c))
		return cerr(c, E2BIG, "schema too complex: compile took more than %s", "50 ms");
	if (GROW(g, nodes, g->nnodes, capnodes, g->nnodes + 1) < 0)
		return -ENOMEM;
	g->nodes[g->nnodes] = *n;
	return g->nnodes++;
}

static struct gnode gn(int kind)
{
	struct gnode n = {0};
	n.kind = (uint8_t)kind;
	n.sub = -1;
	n.dfa = -1;
	n.hi = UINT32_MAX;
	return n;
}

static int kids_add(struct aw_grammar *g, uint32_t v)
{
	if (GROW(g, kids, g->nkids, capkids, g->nkids + 1) < 0)
		return -ENOMEM;
	g->kids[g->nkids++] = v;
	return 0;
}

/* JSON string serialisation (what the grammar generates for a literal). */
static int ser_str(struct aw_chat_buf *b, const char *s, size_t n);
static int ser(struct comp *c, const struct aw_json *j, struct aw_chat_buf *b);

static int buf_put(struct aw_chat_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 256;
		while (nc < b->len + n + 1)
			nc *= 2;
		char *np = realloc(b->p, nc);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int ser_str(struct aw_chat_buf *b, const char *s, size_t n)
{
	int r = buf_put(b, "\"", 1);
	for (size_t i = 0; i < n && !r; i++) {
		unsigned char ch = (unsigned char)s[i];
		char e[8];
		if (ch == '"' || ch == '\\') {
			e[0] = '\\';
			e[1] = (char)ch;
			r = buf_put(b, e, 2);
		} else if (ch == '\n') {
			r = buf_put(b, "\\n", 2);
		} else if (ch == '\t') {
			r = buf_put(b, "\\t", 2);
		} else if (ch == '\r') {
			r = buf_put(b, "\\r", 2);
		} else if (ch < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", ch);
			r = buf_put(b, e, 6);
		} else {
			r = buf_put(b, &s[i], 1);
		}
	}
	return r ? r : buf_put(b, "\"", 1);
}

static int ser(struct comp *c, const struct aw_json *j, struct aw_chat_buf *b)
{
	struct aw_grammar *g = c->g;
	int r = 0;
	switch (j->type) {
	case AW_JSON_NULL:
		return buf_put(b, "null", 4);
	case AW_JSON_TRUE:
		return buf_put(b, "true", 4);
	case AW_JSON_FALSE:
		return buf_put(b, "false", 5);
	case AW_JSON_NUMBER:
		return buf_put(b, j->str, j->len);
	case AW_JSON_STRING:
		return ser_str(b, j->str, j->len);
	case AW_JSON_ARRAY:
		r = buf_put(b, "[", 1);
		for (size_t i = 0; i < j->len && !r; i++) {
			if (i)
				r = buf_put(b, g->comma, g->ncomma);
			if (!r)
				r = ser(c, j->items[i], b);
		}
		return r ? r : buf_put(b, "]", 1);
	case AW_JSON_OBJECT:
		r = buf_put(b, "{", 1);
		for (size_t i = 0; i < j->len && !r; i++) {
			if (i)
				r = buf_put(b, g->comma, g->ncomma);
			if (!r)
				r = ser_str(b, j->keys[i], j->key_lens[i]);
			if (!r)
				r = buf_put(b, g->colon, g->ncolon);
			if (!r)
				r = ser(c, j->items[i], b);
		}
		return r ? r : buf_put(b, "}", 1);
	}
	return -EINVAL;
}

/* A literal node generating exactly the serialisations of vals[0..n). */
static int64_t lit_new(struct comp *c, const struct aw_json *const *vals, size_t n)
{
	struct aw_chat_buf b = {0};
	size_t *offs = malloc((n + 1) * sizeof(*offs));
	struct tstr *v = malloc((n + 1) * sizeof(*v));
	int64_t r = 0;

	if (!offs || !v) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && r >= 0; i++) {
		offs[i] = b.len;
		r = ser(c, vals[i], &b);
	}
	offs[n] = b.len;
	if (r < 0)
		goto out;
	if (b.len > 1u << 20) {
		r = cerr(c, E2BIG, "%s too large", "enum/const");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = (struct tstr){(const uint8_t *)b.p + offs[i],
				     (uint32_t)(offs[i + 1] - offs[i]), (int32_t)i};
	int64_t t = trie_new(c->g, v, (uint32_t)n);
	if (t < 0) {
		r = t;
		goto out;
	}
	struct gnode nd = gn(GK_LIT);
	nd.trie = (uint32_t)t;
	r = node_new(c, &nd);
out:
	free(b.p);
	free(offs);
	free(v);
	return r;
}

static int64_t compile(struct comp *c, const struct aw_json *s);

/* Standard keywords this compiler does not implement: refused by name. */
static int is_unsupported(const char *k)
{
	static const char *const uns[] = {
		"not",
		"if",
		"then",
		"else",
		"dependencies",
		"dependentRequired",
		"dependentSchemas",
		"propertyNames",
		"contains",
		"minContains",
		"maxContains",
		"multipleOf",
		"unevaluatedProperties",
		"unevaluatedItems",
		"$dynamicRef",
		"$recursiveRef",
		"$dynamicAnchor",
		"$recursiveAnchor",
	};
	for (size_t i = 0; i < sizeof(uns) / sizeof(uns[0]); i++)
		if (!strcmp(k, uns[i]))
			return 1;
	return 0;
}

static int num_of(const struct aw_json *j, double *ret)
{
	if (!j || j->type != AW_JSON_NUMBER)
		return -1;
	*ret = strtod(j->str, NULL);
	return 0;
}

static int uint_of(const struct aw_json *j, uint32_t *ret)
{
	double d;
	if (num_of(j, &d) < 0 || d < 0 || d != floor(d))
		return -1;
	*ret = d > 4e9 ? UINT32_MAX - 1 : (uint32_t)d;
	return 0;
}

static const char *const kw_object[] = {"properties",	 "required",	  "additionalProperties",
					"minProperties", "maxProperties", "patternProperties"};
static const char *const kw_array[] = {"items",	   "prefixItems", "additionalItems",
				       "minItems", "maxItems",	  "uniqueItems"};
static const char *const kw_string[] = {"minLength", "maxLength", "pattern", "format"};
static const char *const kw_number[] = {"minimum", "maximum", "exclusiveMinimum",
					"exclusiveMaximum"};

static int has_any(const struct aw_json *s, const char *const *kw, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (aw_json_get(s, kw[i]))
			return 1;
	return 0;
}

#define HAS(s, kw) has_any((s), (kw), sizeof(kw) / sizeof((kw)[0]))

static int64_t any_node(struct comp *c);

static int in_list(const char *k, const char *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(k, l[i]))
			return 1;
	return 0;
}

#define IN(k, l) in_list((k), (l), sizeof(l) / sizeof((l)[0]))

/* A keyword that constrains values (vs annotations and unknown words). */
static int is_constraint(const char *k)
{
	return IN(k, kw_object) || IN(k, kw_array) || IN(k, kw_string) || IN(k, kw_number) ||
	       is_unsupported(k) || !strcmp(k, "anyOf") || !strcmp(k, "oneOf") ||
	       !strcmp(k, "allOf") || !strcmp(k, "$ref");
}

static int64_t c_object(struct comp *c, const struct aw_json *s, int any)
{
	const struct aw_json *props = aw_json_get(s, "properties");
	const struct aw_json *req = aw_json_get(s, "required");
	const struct aw_json *addl = aw_json_get(s, "additionalProperties");
	const struct aw_json *minp = aw_json_get(s, "minProperties");
	const struct aw_json *maxp = aw_json_get(s, "maxProperties");
	struct aw_grammar *g = c->g;
	struct gnode nd = gn(GK_OBJECT);
	int64_t r = 0;
	size_t old;

	nd.any = (uint8_t)any;
	if (props && props->type != AW_JSON_OBJECT)
		return cerr(c, ENOTSUP, "'%s' is not an object", "properties");
	if (req && req->type != AW_JSON_ARRAY)
		return cerr(c, ENOTSUP, "'%s' is not an array", "required");
	if (addl && addl->type != AW_JSON_TRUE && addl->type != AW_JSON_FALSE &&
	    addl->type != AW_JSON_OBJECT)
		return cerr(c, ENOTSUP, "'%s' is not a schema", "additionalProperties");
	/* the declared names: properties in order, then required names not in them */
	size_t np = props ? props->len : 0, nreq = req ? req->len : 0;
	if (np + nreq > AW_GRAMMAR_MAX_PROPS)
		return cerr(c, E2BIG, "object with more than %s properties", "1000");
	const char **names = malloc((np + nreq + 1) * sizeof(*names));
	size_t *nlens = malloc((np + nreq + 1) * sizeof(*nlens));
	uint8_t *isreq = calloc(np + nreq + 1, 1);
	int32_t *vals = malloc((np + nreq + 1) * sizeof(*vals));
	struct tstr *ts = malloc((np + nreq + 1) * sizeof(*ts));
	struct aw_chat_buf kb = {0};
	size_t *koff = malloc((np + nreq + 2) * sizeof(*koff));
	size_t n = 0;
	if (!names || !nlens || !isreq || !vals || !ts || !koff) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		names[n] = props->keys[i];
		nlens[n++] = props->key_lens[i];
	}
	for (size_t i = 0; i < nreq; i++) {
		const struct aw_json *q = req->items[i];
		if (q->type != AW_JSON_STRING) {
			r = cerr(c, ENOTSUP, "'%s' holds a non-string", "required");
			goto out;
		}
		size_t k;
		for (k = 0; k < n; k++)
			if (nlens[k] == q->len && !memcmp(names[k], q->str, q->len))
				break;
		if (k == n) {
			names[n] = q->str;
			nlens[n++] = q->len;
		}
		isreq[k] = 1;
	}
	size_t nrequired = 0;
	for (size_t i = 0; i < n; i++)
		nrequired += isreq[i];
	int map = n == 0 && (!addl || addl->type != AW_JSON_FALSE);
	if (minp) {
		uint32_t v;
		if (uint_of(minp, &v) < 0 || (v > nrequired && !map)) {
			r = cerr(c, ENOTSUP, "keyword '%s' beyond the required properties",
				 "minProperties");
			goto out;
		}
		if (map && v > 0) {
			r = cerr(c, ENOTSUP, "keyword '%s' on a map", "minProperties");
			goto out;
		}
	}
	if (maxp) {
		uint32_t v;
		if (uint_of(maxp, &v) < 0 || v < n || map) {
			r = cerr(c, ENOTSUP, "keyword '%s' below the declared properties",
				 "maxProperties");
			goto out;
		}
	}
	const struct aw_json *pp = aw_json_get(s, "patternProperties");
	if (pp) {
		/* it constrains the members whose names match; none of the
		 * declared names may match (undeclared ones are not generated) */
		if (pp->type != AW_JSON_OBJECT || (map && pp->len)) {
			r = cerr(c, ENOTSUP, "keyword '%s' on a map", "patternProperties");
			goto out;
		}
		for (size_t k = 0; k < pp->len && r >= 0; k++) {
			int e;
			PCRE2_SIZE eo;
			pcre2_code *re = pcre2_compile((PCRE2_SPTR)pp->keys[k], pp->key_lens[k],
						       PCRE2_UTF, &e, &eo, NULL);
			pcre2_match_data *md =
				re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
			if (!re || !md)
				r = cerr(c, ENOTSUP,
					 "keyword '%s' with a pattern this engine refuses",
					 "patternProperties");
			for (size_t i = 0; i < n && r >= 0; i++)
				if (pcre2_match(re, (PCRE2_SPTR)names[i], nlens[i], 0, 0, md,
						NULL) >= 0)
					r = cerr(c, ENOTSUP,
						 "keyword '%s' matching property '%.40s'",
						 "patternProperties", names[i]);
			pcre2_match_data_free(md);
			pcre2_code_free(re);
		}
		if (r < 0)
			goto out;
	}
	if (map) {
		/* a map: any keys, values from additionalProperties (or any value) */
		int64_t v;
		if (addl && addl->type == AW_JSON_OBJECT) {
			old = path_push(c, "additionalProperties");
			v = compile(c, addl);
			path_pop(c, old);
		} else {
			v = any_node(c);
		}
		if (v < 0) {
			r = v;
			goto out;
		}
		nd.sub = (int32_t)v;
		r = node_new(c, &nd);
		goto out;
	}
	/* declared properties: value nodes */
	for (size_t i = 0; i < n; i++) {
		const struct aw_json *ps = i < np ? props->items[i] : NULL;
		int64_t v;
		char seg[64];
		snprintf(seg, sizeof(seg), "properties/%.*s", (int)(nlens[i] < 40 ? nlens[i] : 40),
			 names[i]);
		old = path_push(c, seg);
		if (ps)
			v = compile(c, ps);
		else if (addl && addl->type == AW_JSON_OBJECT)
			v = compile(c, addl); /* a required name not in properties */
		else if (addl && addl->type == AW_JSON_FALSE)
			v = cerr(c, EINVAL, "required '%.40s' is not an allowed property",
				 names[i]);
		else
			v = any_node(c);
		path_pop(c, old);
		if (v == -EINVAL && !isreq[i]) {
			vals[i] = -1; /* unsatisfiable optional property: never generated */
			continue;
		}
		if (v < 0) {
			r = v;
			goto out;
		}
		vals[i] = (int32_t)v;
	}
	/* keys: serialised with quotes, into a trie whose payload is the index */
	nd.off = g->nprops;
	nd.n = (uint32_t)n;
	if (GROW(g, props, g->nprops, capprops, g->nprops + (uint32_t)n) < 0) {
		r = -ENOMEM;
		goto out;
	}
	uint32_t nextreq = (uint32_t)n;
	for (size_t i = n; i-- > 0;) {
		if (isreq[i])
			nextreq = (uint32_t)i;
		g->props[g->nprops + i] = (struct gprop){vals[i], nextreq, 0, 0};
	}
	g->nprops += (uint32_t)n;
	size_t nk = 0;
	for (size_t i = 0; i < n; i++) {
		koff[i] = kb.len;
		if ((r = ser_str(&kb, names[i], nlens[i])) < 0)
			goto out;
	}
	koff[n] = kb.len;
	if (grow((void **)&g->kblob, &g->capkblob, g->nkblob + (uint32_t)kb.len + 1, 1) < 0) {
		r = -ENOMEM;
		goto out;
	}
	if (kb.len)
		memcpy(g->kblob + g->nkblob, kb.p, kb.len);
	for (size_t i = 0; i < n; i++) {
		g->props[nd.off + i].koff = g->nkblob + (uint32_t)koff[i];
		g->props[nd.off + i].klen = (uint32_t)(koff[i + 1] - koff[i]);
	}
	g->nkblob += (uint32_t)kb.len;
	for (size_t i = 0; i < n; i++)
		if (vals[i] >= 0)
			ts[nk++] = (struct tstr){(const uint8_t *)kb.p + koff[i],
						 (uint32_t)(koff[i + 1] - koff[i]), (int32_t)i};
	int64_t t = trie_new(g, ts, (uint32_t)nk);
	if (t < 0) {
		r = t;
		goto out;
	}
	nd.trie = (uint32_t)t;
	r = node_new(c, &nd);
out:
	free(names);
	free(nlens);
	free(isreq);
	free(vals);
	free(ts);
	free(koff);
	free(kb.p);
	return r;
}

static int64_t c_array(struct comp *c, const struct aw_json *s, int any)
{
	const struct aw_json *items = aw_json_get(s, "items");
	const struct aw_json *prefix = aw_json_get(s, "prefixItems");
	const struct aw_json *addi = aw_json_get(s, "additionalItems");
	const struct aw_json *uniq = aw_json_get(s, "uniqueItems");
	struct gnode nd = gn(GK_ARRAY);
	int64_t v;
	size_t old;

	nd.any = (uint8_t)any;
	if (aw_json_get(s, "minItems") && uint_of(aw_json_get(s, "minItems"), &nd.lo) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a count", "minItems");
	if (aw_json_get(s, "maxItems") && uint_of(aw_json_get(s, "maxItems"), &nd.hi) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a count", "maxItems");
	if (items && items->type == AW_JSON_ARRAY) {
		if (prefix)
			return cerr(c, ENOTSUP, "'%s' with a list of items", "prefixItems");
		prefix = items;
		items = addi && addi->type == AW_JSON_OBJECT ? addi : NULL;
	} else if (addi) {
		/* additionalItems without a tuple: no effect */
	}
	if (uniq && uniq->type == AW_JSON_TRUE && nd.hi > 1)
		return cerr(c, ENOTSUP, "keyword '%s'", "uniqueItems");
	uint32_t npre = prefix ? (uint32_t)prefix->len : 0;
	if (prefix && prefix->type != AW_JSON_ARRAY)
		return cerr(c, ENOTSUP, "'%s' is not a list", "prefixItems");
	int32_t *pk = malloc((npre + 1) * sizeof(*pk));
	if (!pk)
		return -ENOMEM;
	for (uint32_t i = 0; i < npre; i++) {
		char seg[32];
		snprintf(seg, sizeof(seg), "items/%u", i);
		old = path_push(c, seg);
		v = compile(c, prefix->items[i]);
		path_pop(c, old);
		if (v < 0) {
			free(pk);
			return v;
		}
		pk[i] = (int32_t)v;
	}
	if (items && items->type != AW_JSON_FALSE) {
		old = path_push(c, "items");
		v = items->type == AW_JSON_TRUE ? any_node(c) : compile(c, items);
		path_pop(c, old);
		if (v == -EINVAL) {
			v = -1; /* no item satisfies it: only the empty array (if allowed) */
		} else if (v < 0) {
			free(pk);
			return v;
		}
		nd.sub = (int32_t)v;
	} else if (!items && !prefix) {
		v = any_node(c);
		if (v < 0) {
			free(pk);
			return v;
		}
		nd.sub = (int32_t)v;
	}
	if (nd.sub < 0 && nd.hi > npre)
		nd.hi = npre; /* nothing may follow the tuple */
	nd.n = npre;
	nd.off = c->g->nkids;
	for (uint32_t i = 0; i < npre; i++)
		if (kids_add(c->g, (uint32_t)pk[i]) < 0) {
			free(pk);
			return -ENOMEM;
		}
	free(pk);
	if (nd.lo > nd.hi)
		return cerr(c, EINVAL, "no array satisfies %s", "minItems/maxItems");
	if (nd.lo > 100000)
		return cerr(c, E2BIG, "'%s' too large", "minItems");
	return node_new(c, &nd);
}

static const struct {
	const char *name;
	const char *re;
} formats[] = {
	{"date", "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"},
	{"time",
	 "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):"
	 "[0-5][0-9])"},
	{"date-time",
	 "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:"
	 "[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"},
	{"uuid", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"},
	{"email", "[a-z0-9]+(\\.[a-z0-9]+){0,2}@[a-z0-9]+(\\.[a-z0-9]+){0,2}\\.[a-z]{2,6}"},
	{"ipv4",
	 "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?"
	 "[0-9])){3}"},
	{"ipv6", "[0-9a-f]{1,4}(:[0-9a-f]{1,4}){7}"},
	{"hostname", "[a-z0-9]{1,30}(\\.[a-z0-9]{1,30}){0,3}"},
	{"uri", "https?://[a-z0-9]+(\\.[a-z0-9]+){0,3}(/[a-zA-Z0-9_~.-]+){0,5}"},
	/* a URI is also a URI reference, an IRI, a template without variables */
	{"uri-reference", "https?://[a-z0-9]+(\\.[a-z0-9]+){0,3}(/[a-zA-Z0-9_~.-]+){0,5}"},
	{"iri", "https?://[a-z0-9]+(\\.[a-z0-9]+){0,3}(/[a-zA-Z0-9_~.-]+){0,5}"},
	{"iri-reference", "https?://[a-z0-9]+(\\.[a-z0-9]+){0,3}(/[a-zA-Z0-9_~.-]+){0,5}"},
	{"uri-template", "https?://[a-z0-9]+(\\.[a-z0-9]+){0,3}(/[a-zA-Z0-9_~.-]+){0,5}"},
	{"idn-email", "[a-z0-9]+(\\.[a-z0-9]+){0,2}@[a-z0-9]+(\\.[a-z0-9]+){0,2}\\.[a-z]{2,6}"},
	{"idn-hostname", "[a-z0-9]{1,30}(\\.[a-z0-9]{1,30}){0,3}"},
	{"json-pointer", "(/[a-z0-9]{1,10}){0,5}"},
	{"relative-json-pointer", "[1-9]?[0-9](/[a-z0-9]{1,10}){0,5}"},
	{"regex", "[a-z0-9]{1,20}"},
	{"duration", "P[1-9][0-9]{0,2}D"},
};

static int64_t c_string(struct comp *c, const struct aw_json *s)
{
	const struct aw_json *pat = aw_json_get(s, "pattern");
	const struct aw_json *fmt = aw_json_get(s, "format");
	struct gnode nd = gn(GK_STRING);
	const char *re = NULL;
	size_t relen = 0;

	if (aw_json_get(s, "minLength") && uint_of(aw_json_get(s, "minLength"), &nd.lo) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a count", "minLength");
	if (aw_json_get(s, "maxLength") && uint_of(aw_json_get(s, "maxLength"), &nd.hi) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a count", "maxLength");
	if (nd.lo > nd.hi)
		return cerr(c, EINVAL, "no string satisfies %s", "minLength/maxLength");
	if (nd.lo > 100000)
		return cerr(c, E2BIG, "'%s' too large", "minLength");
	if (pat) {
		if (pat->type != AW_JSON_STRING)
			return cerr(c, ENOTSUP, "'%s' is not a string", "pattern");
		re = pat->str;
		relen = pat->len;
	}
	if (fmt) {
		if (fmt->type != AW_JSON_STRING)
			return cerr(c, ENOTSUP, "'%s' is not a string", "format");
		size_t i;
		for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
			if (!strcmp(fmt->str, formats[i].name))
				break;
		if (i < sizeof(formats) / sizeof(formats[0])) {
			if (re)
				return cerr(c, ENOTSUP, "'%s' together with 'format'", "pattern");
			re = formats[i].re;
			relen = strlen(re);
		}
		/* other names are no format JSON Schema defines: validators
		 * treat them as annotations, and so does this compiler */
	}
	if (re) {
		struct aw_grammar *g = c->g;
		struct aw_gdfa d;
		struct aw_err e;
		for (uint32_t i = 0; i < c->nredone; i++)
			if (c->redone[i].len == relen && c->redone[i].lo == nd.lo &&
			    c->redone[i].hi == nd.hi && !memcmp(c->redone[i].re, re, relen)) {
				nd.dfa = c->redone[i].dfa;
				nd.lo = 0;
				nd.hi = UINT32_MAX;
				return node_new(c, &nd);
			}
		struct timespec t;
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
		long left = AW_GRAMMAR_COMPILE_US - ((t.tv_sec - c->t0.tv_sec) * 1000000L +
						     (t.tv_nsec - c->t0.tv_nsec) / 1000);
		int rc = left <= 0 ? aw_err_set(&e, E2BIG, "compile time budget spent")
				   : aw_gdfa_compile(re, relen, nd.lo, nd.hi, AW_GRAMMAR_MAX_DFA,
						     left, &d, &e);
		if (rc < 0)
			return cerr(c, -rc, "%.100s", e.msg);
		if (GROW(g, dfas, g->ndfas, capdfas, g->ndfas + 1) < 0) {
			aw_gdfa_fini(&d);
			return -ENOMEM;
		}
		g->dfas[g->ndfas] = d;
		nd.dfa = (int32_t)g->ndfas++;
		if (c->nredone < 32) {
			c->redone[c->nredone].re = re;
			c->redone[c->nredone].len = relen;
			c->redone[c->nredone].lo = nd.lo;
			c->redone[c->nredone].hi = nd.hi;
			c->redone[c->nredone++].dfa = nd.dfa;
		}
		nd.lo = 0;
		nd.hi = UINT32_MAX; /* in the DFA now */
	}
	return node_new(c, &nd);
}

static int64_t c_number(struct comp *c, const struct aw_json *s, int integer)
{
	struct gnode nd = gn(GK_NUMBER);
	double lo = -INFINITY, hi = INFINITY, v;
	int xlo = 0, xhi = 0;
	const struct aw_json *j;
	const double lim = (double)NUM_LIM;

	nd.integer = (uint8_t)integer;
	if ((j = aw_json_get(s, "minimum")) && num_of(j, &lo) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a number", "minimum");
	if ((j = aw_json_get(s, "maximum")) && num_of(j, &hi) < 0)
		return cerr(c, ENOTSUP, "'%s' is not a number", "maximum");
	if ((j = aw_json_get(s, "exclusiveMinimum"))) {
		if (j->type == AW_JSON_TRUE)
			xlo = 1;
		else if (num_of(j, &v) == 0) {
			if (v >= lo)
				lo = v, xlo = 1;
		} else if (j->type != AW_JSON_FALSE)
			return cerr(c, ENOTSUP, "'%s' is not a number", "exclusiveMinimum");
	}
	if ((j = aw_json_get(s, "exclusiveMaximum"))) {
		if (j->type == AW_JSON_TRUE)
			xhi = 1;
		else if (num_of(j, &v) == 0) {
			if (v <= hi)
				hi = v, xhi = 1;
		} else if (j->type != AW_JSON_FALSE)
			return cerr(c, ENOTSUP, "'%s' is not a number", "exclusiveMaximum");
	}
	/* integer values allowed */
	double il = xlo ? floor(lo) + 1 : ceil(lo);
	double ih = xhi ? ceil(hi) - 1 : floor(hi);
	if (il < -lim)
		il = -lim;
	if (ih > lim)
		ih = lim;
	nd.ilo = (int64_t)il;
	nd.ihi = (int64_t)ih;
	nd.dlo = lo;
	nd.dhi = hi;
	if (nd.ilo > nd.ihi)
		return cerr(c, EINVAL, "no %s in the range (fractions only with an integer inside)",
			    integer ? "integer" : "number");
	return node_new(c, &nd);
}

static int64_t alt_new(struct comp *c, const int32_t *v, uint32_t n)
{
	struct gnode nd = gn(GK_ALT);
	if (n == 1)
		return v[0];
	nd.off = c->g->nkids;
	nd.n = n;
	for (uint32_t i = 0; i < n; i++)
		if (kids_add(c->g, (uint32_t)v[i]) < 0)
			return -ENOMEM;
	return node_new(c, &nd);
}

/* The "any JSON value" grammar: shared, recursive, container depth capped. */
static int64_t any_node(struct comp *c)
{
	if (c->any >= 0)
		return c->any;
	struct gnode alt = gn(GK_ALT);
	int64_t a = node_new(c, &alt);
	if (a < 0)
		return a;
	c->any = (int32_t)a;
	struct gnode o = gn(GK_OBJECT), r = gn(GK_ARRAY), s = gn(GK_STRING), n = gn(GK_NUMBER);
	o.any = r.any = 1;
	o.sub = r.sub = (int32_t)a;
	n.ilo = -999999999;
	n.ihi = 999999999;
	n.dlo = -INFINITY;
	n.dhi = INFINITY;
	static const char *const kw[] = {"true", "false", "null"};
	struct aw_json lits[3];
	const struct aw_json *lp[3];
	for (int i = 0; i < 3; i++) {
		memset(&lits[i], 0, sizeof(lits[i]));
		lits[i].type = i == 0 ? AW_JSON_TRUE : i == 1 ? AW_JSON_FALSE : AW_JSON_NULL;
		lp[i] = &lits[i];
	}
	(void)kw;
	int64_t ids[5] = {node_new(c, &o), node_new(c, &r), node_new(c, &s), node_new(c, &n),
			  lit_new(c, lp, 3)};
	for (int i = 0; i < 5; i++)
		if (ids[i] < 0)
			return ids[i];
	struct aw_grammar *g = c->g;
	g->nodes[a].off = g->nkids;
	g->nodes[a].n = 5;
	for (int i = 0; i < 5; i++)
		if (kids_add(g, (uint32_t)ids[i]) < 0)
			return -ENOMEM;
	return a;
}

/* First bytes a node's values can start with (for oneOf disjointness). */
static void first_bytes(const struct aw_grammar *g, uint32_t id, uint64_t fb[4], int depth)
{
	const struct gnode *n = &g->nodes[id];
	if (depth > 32) {
		memset(fb, 0xff, 32);
		return;
	}
	switch (n->kind) {
	case GK_OBJECT:
		fb['{' >> 6] |= 1ull << ('{' & 63);
		break;
	case GK_ARRAY:
		fb['[' >> 6] |= 1ull << ('[' & 63);
		break;
	case GK_STRING:
		fb['"' >> 6] |= 1ull << ('"' & 63);
		break;
	case GK_NUMBER:
		for (int b = '0'; b <= '9'; b++)
			fb[b >> 6] |= 1ull << (b & 63);
		fb['-' >> 6] |= 1ull << ('-' & 63);
		break;
	case GK_LIT: {
		const struct tnode *t = &g->tn[n->trie];
		for (uint32_t i = 0; i < t->nkid; i++) {
			uint8_t b = g->tbyte[t->kid + i];
			fb[b >> 6] |= 1ull << (b & 63);
		}
		break;
	}
	case GK_ALT:
		for (uint32_t i = 0; i < n->n; i++)
			first_bytes(g, g->kids[n->off + i], fb, depth + 1);
		break;
	default:
		memset(fb, 0xff, 32);
	}
}

/* A literal node's single value if it has exactly one (as a trie path). */
static int lit_disjoint(const struct aw_grammar *g, uint32_t a, uint32_t b)
{
	/* walk both tries together: disjoint when no string is in both */
	struct {
		uint32_t x, y;
	} st[512];
	int sp = 0;
	const struct gnode *na = &g->nodes[a], *nb = &g->nodes[b];
	if (na->kind != GK_LIT || nb->kind != GK_LIT)
		return 0;
	st[sp].x = na->trie;
	st[sp++].y = nb->trie;
	while (sp) {
		sp--;
		uint32_t x = st[sp].x, y = st[sp].y;
		if (g->tn[x].leaf >= 0 && g->tn[y].leaf >= 0)
			return 0;
		const struct tnode *tx = &g->tn[x];
		for (uint32_t i = 0; i < tx->nkid; i++) {
			int32_t k = trie_kid(g, y, g->tbyte[tx->kid + i]);
			if (k >= 0) {
				if (sp == 512)
					return 0;
				st[sp].x = g->tkid[tx->kid + i];
				st[sp++].y = (uint32_t)k;
			}
		}
	}
	return 1;
}

/* oneOf alternatives i and j can never both match what the grammar emits. */
/* Declared property of object node y with serialised key k, or -1. */
static int32_t prop_find(const struct aw_grammar *g, const struct gnode *y, const char *k,
			 uint32_t kl)
{
	int32_t t = (int32_t)y->trie;
	for (uint32_t i = 0; i < kl && t >= 0; i++)
		t = trie_kid(g, (uint32_t)t, (uint8_t)k[i]);
	return t >= 0 ? g->tn[t].leaf : -1;
}

/* Does object x reject every object object y generates? Yes when x
 * requires a member y never writes, or one whose literal values y's never
 * equal. */
static int rejects(const struct aw_grammar *g, const struct gnode *x, const struct gnode *y)
{
	for (uint32_t i = 0; i < x->n; i++) {
		const struct gprop *p = &g->props[x->off + i];
		if (p->req_next != i || p->node < 0)
			continue;
		int32_t j = prop_find(g, y, g->kblob + p->koff, p->klen);
		if (j < 0)
			return 1;
		const struct gprop *q = &g->props[y->off + (uint32_t)j];
		if (q->node >= 0 && lit_disjoint(g, (uint32_t)p->node, (uint32_t)q->node))
			return 1;
	}
	return 0;
}

static int disjoint(const struct aw_grammar *g, uint32_t a, uint32_t b)
{
	uint64_t fa[4] = {0}, fb[4] = {0};
	first_bytes(g, a, fa, 0);
	first_bytes(g, b, fb, 0);
	if (!((fa[0] & fb[0]) | (fa[1] & fb[1]) | (fa[2] & fb[2]) | (fa[3] & fb[3])))
		return 1;
	if (lit_disjoint(g, a, b))
		return 1;
	const struct gnode *x = &g->nodes[a], *y = &g->nodes[b];
	if (x->kind == GK_OBJECT && y->kind == GK_OBJECT && x->sub < 0 && y->sub < 0)
		return rejects(g, x, y) && rejects(g, y, x);
	return 0;
}

static const struct aw_json *resolve(struct comp *c, const char *ref);

/* A shallow JSON object or array (keys and values borrowed), owned by c. */
static struct aw_json *tmp_new(struct comp *c, enum aw_json_type type, size_t cap)
{
	struct aw_json *j = calloc(1, sizeof(*j));
	if (!j || grow((void **)&c->tmp, &c->captmp, c->ntmp + 1, sizeof(*c->tmp)) < 0) {
		free(j);
		return NULL;
	}
	c->tmp[c->ntmp++] = j;
	j->type = type;
	j->items = calloc(cap + 1, sizeof(*j->items));
	j->keys = calloc(cap + 1, sizeof(*j->keys));
	j->key_lens = calloc(cap + 1, sizeof(*j->key_lens));
	return j->items && j->keys && j->key_lens ? j : NULL;
}

static void tmp_free(struct comp *c)
{
	for (uint32_t i = 0; i < c->ntmp; i++) {
		free(c->tmp[i]->items);
		free(c->tmp[i]->keys);
		free(c->tmp[i]->key_lens);
		free(c->tmp[i]);
	}
	free(c->tmp);
}

static int json_same(struct comp *c, const struct aw_json *a, const struct aw_json *b)
{
	struct aw_chat_buf x = {0}, y = {0};
	int same = a == b ||
		   (!ser(c, a, &x) && !ser(c, b, &y) && x.len == y.len && !memcmp(x.p, y.p, x.len));
	free(x.p);
	free(y.p);
	return same;
}

/* The schema "a and b" for the keywords this compiler merges: properties
 * (by name, recursively), required (union), equal values of anything
 * else; a $ref-only side is resolved first. 'skip' (the combinator being
 * expanded) is left out of a. Returns the merged object or NULL with the
 * error in *ret_err. */
static const struct aw_json *merge(struct comp *c, const struct aw_json *a, const char *skip,
				   const struct aw_json *b, int depth, int *ret_err)
{
	for (int k = 0; k < 8 && b->type == AW_JSON_OBJECT && aw_json_get(b, "$ref"); k++) {
		const struct aw_json *ref = aw_json_get(b, "$ref");
		for (size_t i = 0; i < b->len; i++)
			if (strcmp(b->keys[i], "$ref") && is_constraint(b->keys[i]))
				goto nomerge;
		const struct aw_json *t = ref->type == AW_JSON_STRING ? resolve(c, ref->str) : NULL;
		if (!t)
			goto nomerge;
		b = t;
	}
	if (b->type == AW_JSON_TRUE) {
		b = NULL;
	} else if (b->type != AW_JSON_OBJECT || depth > 16) {
		goto nomerge;
	}
	struct aw_json *m = tmp_new(c, AW_JSON_OBJECT, a->len + (b ? b->len : 0));
	if (!m) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	for (size_t i = 0; i < a->len; i++) {
		if (skip && !strcmp(a->keys[i], skip))
			continue;
		m->keys[m->len] = a->keys[i];
		m->key_lens[m->len] = a->key_lens[i];
		m->items[m->len++] = a->items[i];
	}
	for (size_t i = 0; b && i < b->len; i++) {
		size_t k;
		for (k = 0; k < m->len; k++)
			if (!strcmp(m->keys[k], b->keys[i]))
				break;
		if (k == m->len) {
			m->keys[m->len] = b->keys[i];
			m->key_lens[m->len] = b->key_lens[i];
			m->items[m->len++] = b->items[i];
			continue;
		}
		const struct aw_json *x = m->items[k], *y = b->items[i];
		const char *kw = b->keys[i];
		if (!strcmp(kw, "properties") && x->type == AW_JSON_OBJECT &&
		    y->type == AW_JSON_OBJECT) {
			struct aw_json *pm = tmp_new(c, AW_JSON_OBJECT, x->len + y->len);
			if (!pm) {
				*ret_err = -ENOMEM;
				return NULL;
			}
			for (size_t p = 0; p < x->len; p++) {
				pm->keys[pm->len] = x->keys[p];
				pm->key_lens[pm->len] = x->key_lens[p];
				pm->items[pm->len++] = x->items[p];
			}
			for (size_t p = 0; p < y->len; p++) {
				size_t q;
				for (q = 0; q < pm->len; q++)
					if (pm->key_lens[q] == y->key_lens[p] &&
					    !memcmp(pm->keys[q], y->keys[p], y->key_lens[p]))
						break;
				if (q == pm->len) {
					pm->keys[pm->len] = y->keys[p];
					pm->key_lens[pm->len] = y->key_lens[p];
					pm->items[pm->len++] = y->items[p];
				} else if (pm->items[q]->type == AW_JSON_OBJECT) {
					const struct aw_json *sub =
						merge(c, pm->items[q], NULL, y->items[p], depth + 1,
						      ret_err);
					if (!sub)
						return NULL;
					pm->items[q] = (struct aw_json *)(uintptr_t)sub;
				} else if (pm->items[q]->type != AW_JSON_TRUE ||
					   y->items[p]->type != AW_JSON_TRUE) {
					goto nomerge;
				}
			}
			m->items[k] = pm;
		} else if (!strcmp(kw, "required") && x->type == AW_JSON_ARRAY &&
			   y->type == AW_JSON_ARRAY) {
			struct aw_json *rq = tmp_new(c, AW_JSON_ARRAY, x->len + y->len);
			if (!rq) {
				*ret_err = -ENOMEM;
				return NULL;
			}
			for (size_t p = 0; p < x->len; p++)
				rq->items[rq->len++] = x->items[p];
			for (size_t p = 0; p < y->len; p++)
				rq->items[rq->len++] = y->items[p];
			m->items[k] = rq;
		} else if (is_constraint(kw) || !strcmp(kw, "type") || !strcmp(kw, "enum") ||
			   !strcmp(kw, "const")) {
			if (!json_same(c, x, y)) {
				*ret_err = cerr(c, ENOTSUP,
						"'%s' both beside and inside anyOf/oneOf", kw);
				return NULL;
			}
		}
	}
	return m;
nomerge:
	*ret_err = cerr(c, ENOTSUP, "%s", "anyOf/oneOf beside constraints it cannot merge");
	return NULL;
}

static int64_t c_combo(struct comp *c, const struct aw_json *s, const char *kw)
{
	const struct aw_json *l = aw_json_get(s, kw);
	if (!l || l->type != AW_JSON_ARRAY || l->len == 0)
		return cerr(c, ENOTSUP, "'%s' is not a non-empty list", kw);
	int siblings = 0;
	for (size_t k = 0; k < s->len; k++)
		if (strcmp(s->keys[k], kw) &&
		    (is_constraint(s->keys[k]) || !strcmp(s->keys[k], "type")))
			siblings = 1;
	int32_t *v = malloc(l->len * sizeof(*v));
	uint32_t n = 0;
	if (!v)
		return -ENOMEM;
	if (!strcmp(kw, "allOf")) {
		/* one schema that has every keyword of every part (and of the siblings) */
		free(v);
		const struct aw_json *m = s;
		const char *skip = kw;
		for (size_t i = 0; i < l->len; i++) {
			int e = 0;
			m = merge(c, m, skip, l->items[i], 0, &e);
			if (!m)
				return e;
			skip = NULL;
		}
		return compile(c, m);
	}
	int64_t r = 0;
	for (size_t i = 0; i < l->len; i++) {
		char seg[32];
		snprintf(seg, sizeof(seg), "%s/%zu", kw, i);
		size_t old = path_push(c, seg);
		const struct aw_json *alt = l->items[i];
		if (siblings) {
			/* the keywords beside the combinator apply to every alternative */
			int e = 0;
			alt = merge(c, s, kw, alt, 0, &e);
			if (!alt) {
				path_pop(c, old);
				free(v);
				return e;
			}
		}
		r = compile(c, alt);
		path_pop(c, old);
		if (r == -EINVAL && strcmp(kw, "allOf")) {
			r = 0;
			continue; /* unsatisfiable alternative: dropped */
		}
		if (r < 0) {
			free(v);
			return r;
		}
		v[n++] = (int32_t)r;
	}
	if (!n) {
		free(v);
		return cerr(c, EINVAL, "no alternative of '%s' is satisfiable", kw);
	}
	if (!strcmp(kw, "oneOf"))
		for (uint32_t i = 0; i < n; i++)
			for (uint32_t j = i + 1; j < n; j++)
				if (!disjoint(c->g, (uint32_t)v[i], (uint32_t)v[j])) {
					free(v);
					return cerr(c, ENOTSUP,
						    "'%s' alternatives that may overlap", "oneOf");
				}
	r = alt_new(c, v, n);
	free(v);
	return r;
}

/* Resolve a local $ref ("#", "#/definitions/x", "#/$defs/x", JSON pointer). */
static const struct aw_json *resolve(struct comp *c, const char *ref)
{
	if (ref[0] != '#')
		return NULL;
	const struct aw_json *cur = c->root;
	const char *p = ref + 1;
	if (!*p)
		return cur;
	if (*p != '/')
		return NULL;
	while (*p == '/') {
		p++;
		char seg[256];
		size_t n = 0;
		while (*p && *p != '/' && n < sizeof(seg) - 1) {
			if (*p == '~' && p[1] == '0')
				seg[n++] = '~', p += 2;
			else if (*p == '~' && p[1] == '1')
				seg[n++] = '/', p += 2;
			else if (*p == '%' && p[1] && p[2]) {
				char h[3] = {p[1], p[2], 0};
				seg[n++] = (char)strtol(h, NULL, 16);
				p += 3;
			} else
				seg[n++] = *p++;
		}
		seg[n] = '\0';
		if (cur->type == AW_JSON_OBJECT) {
			cur = aw_json_get(cur, seg);
		} else if (cur->type == AW_JSON_ARRAY) {
			char *e;
			unsigned long i = strtoul(seg, &e, 10);
			cur = *e || i >= cur->len ? NULL : cur->items[i];
		} else {
			cur = NULL;
		}
		if (!cur)
			return NULL;
	}
	return *p ? NULL : cur;
}

static int64_t c_ref(struct comp *c, const struct aw_json *s)
{
	const struct aw_json *ref = aw_json_get(s, "$ref");
	if (ref->type != AW_JSON_STRING)
		return cerr(c, ENOTSUP, "'%s' is not a string", "$ref");
	for (size_t k = 0; k < s->len; k++)
		if (strcmp(s->keys[k], "$ref") &&
		    (is_constraint(s->keys[k]) || !strcmp(s->keys[k], "type") ||
		     !strcmp(s->keys[k], "enum") || !strcmp(s->keys[k], "const")))
			return cerr(c, ENOTSUP, "'%s' beside $ref", s->keys[k]);
	const struct aw_json *t = resolve(c, ref->str);
	if (!t)
		return cerr(c, ENOTSUP, "$ref '%.60s' (only local references)", ref->str);
	for (uint32_t i = 0; i < c->nmemo; i++)
		if (c->memo[i].schema == t)
			return c->memo[i].node;
	/* reserve the node first so that recursive references find it */
	struct gnode ph = gn(GK_ALT);
	int64_t id = node_new(c, &ph);
	if (id < 0)
		return id;
	if (grow((void **)&c->memo, &c->capmemo, c->nmemo + 1, sizeof(*c->memo)) < 0)
		return -ENOMEM;
	c->memo[c->nmemo++] = (struct memo){t, (int32_t)id};
	char seg[80];
	snprintf(seg, sizeof(seg), "$ref(%.60s)", ref->str);
	size_t old = path_push(c, seg);
	int64_t b = compile(c, t);
	path_pop(c, old);
	if (b < 0)
		return b;
	c->g->nodes[id] = c->g->nodes[b];
	return id;
}

static int64_t c_typed(struct comp *c, const struct aw_json *s, const char *type)
{
	if (!strcmp(type, "object"))
		return c_object(c, s, 0);
	if (!strcmp(type, "array"))
		return c_array(c, s, 0);
	if (!strcmp(type, "string"))
		return c_string(c, s);
	if (!strcmp(type, "number"))
		return c_number(c, s, 0);
	if (!strcmp(type, "integer"))
		return c_number(c, s, 1);
	if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
		struct aw_json t[2];
		const struct aw_json *tp[2] = {&t[0], &t[1]};
		memset(t, 0, sizeof(t));
		t[0].type = type[0] == 'b' ? AW_JSON_TRUE : AW_JSON_NULL;
		t[1].type = AW_JSON_FALSE;
		return lit_new(c, tp, type[0] == 'b' ? 2 : 1);
	}
	return cerr(c, ENOTSUP, "type '%.40s'", type);
}

static int type_matches(const struct aw_json *v, const char *type)
{
	switch (v->type) {
	case AW_JSON_NULL:
		return !strcmp(type, "null");
	case AW_JSON_TRUE:
	case AW_JSON_FALSE:
		return !strcmp(type, "boolean");
	case AW_JSON_STRING:
		return !strcmp(type, "string");
	case AW_JSON_ARRAY:
		return !strcmp(type, "array");
	case AW_JSON_OBJECT:
		return !strcmp(type, "object");
	case AW_JSON_NUMBER:
		if (!strcmp(type, "number"))
			return 1;
		if (!strcmp(type, "integer")) {
			double d = strtod(v->str, NULL);
			return d == floor(d) && fabs(d) < 9e15;
		}
		return 0;
	}
	return 0;
}

static int64_t c_enum(struct comp *c, const struct aw_json *s)
{
	const struct aw_json *en = aw_json_get(s, "enum");
	const struct aw_json *cn = aw_json_get(s, "const");
	const struct aw_json *ty = aw_json_get(s, "type");
	for (size_t k = 0; k < s->len; k++) {
		const char *kw = s->keys[k];
		if (strcmp(kw, "enum") && strcmp(kw, "const") && strcmp(kw, "type") &&
		    is_constraint(kw))
			return cerr(c, ENOTSUP, "'%s' beside enum/const", kw);
	}
	if (en && en->type != AW_JSON_ARRAY)
		return cerr(c, ENOTSUP, "'%s' is not a list", "enum");
	size_t n = cn ? 1 : en->len;
	const struct aw_json **v = malloc((n + 1) * sizeof(*v));
	size_t k = 0;
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct aw_json *x = cn ? cn : en->items[i];
		if (cn && en) {
			/* both: the const must be in the enum */
			size_t j;
			for (j = 0; j < en->len; j++) {
				struct aw_chat_buf a = {0}, b = {0};
				int same = !ser(c, x, &a) && !ser(c, en->items[j], &b) &&
					   a.len == b.len && !memcmp(a.p, b.p, a.len);
				free(a.p);
				free(b.p);
				if (same)
					break;
			}
			if (j == en->len)
				continue;
		}
		int ok = 1;
		if (ty && ty->type == AW_JSON_STRING) {
			ok = type_matches(x, ty->str);
		} else if (ty && ty->type == AW_JSON_ARRAY) {
			ok = 0;
			for (size_t j = 0; j < ty->len; j++)
				if (ty->items[j]->type == AW_JSON_STRING &&
				    type_matches(x, ty->items[j]->str))
					ok = 1;
		}
		if (ok)
			v[k++] = x;
	}
	if (!k) {
		free(v);
		return cerr(c, EINVAL, "no value of %s satisfies the schema", "enum/const");
	}
	int64_t r = lit_new(c, v, k);
	free(v);
	return r;
}

static int64_t compile_one(struct comp *c, const struct aw_json *s);

static int64_t compile(struct comp *c, const struct aw_json *s)
{
	if (c->depth >= 2 * AW_GRAMMAR_MAX_DEPTH)
		return cerr(c, E2BIG, "schema nested more than %d deep (through $ref or merges)",
			    2 * AW_GRAMMAR_MAX_DEPTH);
	c->depth++;
	int64_t r = compile_one(c, s);
	c->depth--;
	return r;
}

static int64_t compile_one(struct comp *c, const struct aw_json *s)
{
	if (s->type == AW_JSON_TRUE)
		return any_node(c);
	if (s->type == AW_JSON_FALSE)
		return cerr(c, EINVAL, "schema %s matches nothing", "false");
	if (s->type != AW_JSON_OBJECT)
		return cerr(c, ENOTSUP, "a schema must be an object or a boolean%s", "");
	for (size_t k = 0; k < s->len; k++)
		if (is_unsupported(s->keys[k]))
			return cerr(c, ENOTSUP, "keyword '%s'", s->keys[k]);
	if (aw_json_get(s, "$ref"))
		return c_ref(c, s);
	if (aw_json_get(s, "anyOf"))
		return aw_json_get(s, "oneOf") || aw_json_get(s, "allOf")
			       ? cerr(c, ENOTSUP, "'%s' beside anyOf", "oneOf/allOf")
			       : c_combo(c, s, "anyOf");
	if (aw_json_get(s, "oneOf"))
		return aw_json_get(s, "allOf") ? cerr(c, ENOTSUP, "'%s' beside oneOf", "allOf")
					       : c_combo(c, s, "oneOf");
	if (aw_json_get(s, "allOf"))
		return c_combo(c, s, "allOf");
	if (aw_json_get(s, "enum") || aw_json_get(s, "const"))
		return c_enum(c, s);
	const struct aw_json *ty = aw_json_get(s, "type");
	if (!ty) {
		if (HAS(s, kw_object))
			return c_object(c, s, 0);
		if (HAS(s, kw_array))
			return c_array(c, s, 0);
		if (HAS(s, kw_string))
			return c_string(c, s);
		if (HAS(s, kw_number))
			return c_number(c, s, 0);
		return any_node(c);
	}
	if (ty->type == AW_JSON_STRING)
		return c_typed(c, s, ty->str);
	if (ty->type != AW_JSON_ARRAY || ty->len == 0 || ty->len > 7)
		return cerr(c, ENOTSUP, "'%s' is not a type name or list", "type");
	int32_t v[8];
	uint32_t n = 0;
	for (size_t i = 0; i < ty->len; i++) {
		if (ty->items[i]->type != AW_JSON_STRING)
			return cerr(c, ENOTSUP, "'%s' is not a type name or list", "type");
		int64_t r = c_typed(c, s, ty->items[i]->str);
		if (r == -EINVAL)
			continue;
		if (r < 0)
			return r;
		v[n++] = (int32_t)r;
	}
	if (!n)
		return cerr(c, EINVAL, "no value satisfies %s", "the schema");
	return alt_new(c, v, n);
}

static struct aw_grammar *grammar_alloc(unsigned flags)
{
	struct aw_grammar *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	pthread_mutex_init(&g->lock, NULL);
	if (flags & AW_GRAMMAR_COMPACT) {
		memcpy(g->comma, ",", 2);
		memcpy(g->colon, ":", 2);
		g->ncomma = g->ncolon = 1;
	} else {
		memcpy(g->comma, ", ", 3);
		memcpy(g->colon, ": ", 3);
		g->ncomma = g->ncolon = 2;
	}
	return g;
}

static int64_t text_lit(struct comp *c, const char *s)
{
	struct tstr t = {(const uint8_t *)s, (uint32_t)strlen(s), 0};
	int64_t tr = trie_new(c->g, &t, 1);
	if (tr < 0)
		return tr;
	struct gnode nd = gn(GK_LIT);
	nd.trie = (uint32_t)tr;
	return node_new(c, &nd);
}

/* Keep only what can be finished: a node is finite when some value of it
 * is (objects: every required member; arrays: empty allowed or a finite
 * item; alternatives: one finite alternative). Unfinishable alternatives,
 * optional members and array items are dropped so that the matcher never
 * enters them; returns 0, or -EINVAL when the root cannot be finished
 * (e.g. a required member that contains itself). */
static int prune_infinite(struct aw_grammar *g)
{
	uint8_t *ok = calloc(g->nnodes ? g->nnodes : 1, 1);
	if (!ok)
		return -ENOMEM;
	for (int changed = 1; changed;) {
		changed = 0;
		for (uint32_t i = 0; i < g->nnodes; i++) {
			if (ok[i])
				continue;
			const struct gnode *n = &g->nodes[i];
			int v = 1;
			switch (n->kind) {
			case GK_OBJECT:
				if (n->sub >= 0)
					break; /* maps may be empty */
				for (uint32_t k = 0; k < n->n && v; k++) {
					const struct gprop *p = &g->props[n->off + k];
					if (p->req_next == k && (p->node < 0 || !ok[p->node]))
						v = 0;
				}
				break;
			case GK_ARRAY:
				for (uint32_t k = 0; k < n->lo && k < n->n && v; k++)
					v = ok[g->kids[n->off + k]];
				if (v && n->lo > n->n)
					v = n->sub >= 0 && ok[n->sub];
				break;
			case GK_ALT:
			case GK_ROOT:
				v = n->kind == GK_ROOT;
				for (uint32_t k = 0; k < n->n; k++) {
					int kk = ok[g->kids[n->off + k]];
					v = n->kind == GK_ROOT ? v && kk : v || kk;
				}
				break;
			default:
				break;
			}
			if (v) {
				ok[i] = 1;
				changed = 1;
			}
		}
	}
	int r = ok[g->root] ? 0 : -EINVAL;
	for (uint32_t i = 0; i < g->nnodes && !r; i++) {
		struct gnode *n = &g->nodes[i];
		if (n->kind == GK_ALT) {
			uint32_t k = 0;
			for (uint32_t j = 0; j < n->n; j++)
				if (ok[g->kids[n->off + j]])
					g->kids[n->off + k++] = g->kids[n->off + j];
			n->n = k;
		} else if (n->kind == GK_OBJECT && n->sub < 0) {
			for (uint32_t k = 0; k < n->n; k++)
				if (g->props[n->off + k].node >= 0 &&
				    !ok[g->props[n->off + k].node])
					g->props[n->off + k].node = -1;
		} else if (n->kind == GK_ARRAY) {
			if (n->sub >= 0 && !ok[n->sub] && n->hi > n->n)
				n->hi = n->n;
			for (uint32_t k = n->lo; k < n->n && k < n->hi; k++)
				if (!ok[g->kids[n->off + k]])
					n->hi = k; /* the tuple stops before it */
		}
	}
	free(ok);
	return r;
}

int aw_grammar_compile_json(const struct aw_json *schema, const struct aw_grammar_opts *o,
			    struct aw_grammar **ret, struct aw_err *err)
{
	struct comp c = {0};
	int64_t r;

	aw_err_clear(err);
	c.g = grammar_alloc(o ? o->flags : 0);
	if (!c.g)
		return aw_err_set(err, ENOMEM, "out of memory");
	c.root = schema;
	c.err = err;
	c.any = -1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c.t0);
	int32_t seq[3];
	uint32_t n = 0;
	if (o && o->prefix && *o->prefix) {
		if ((r = text_lit(&c, o->prefix)) < 0)
			goto fail;
		seq[n++] = (int32_t)r;
	}
	if ((r = compile(&c, schema)) < 0)
		goto fail;
	seq[n++] = (int32_t)r;
	if (o && o->suffix && *o->suffix) {
		if ((r = text_lit(&c, o->suffix)) < 0)
			goto fail;
		seq[n++] = (int32_t)r;
	}
	struct gnode root = gn(GK_ROOT);
	root.off = c.g->nkids;
	root.n = n;
	for (uint32_t i = 0; i < n; i++)
		if ((r = kids_add(c.g, (uint32_t)seq[i])) < 0)
			goto fail;
	if ((r = node_new(&c, &root)) < 0)
		goto fail;
	c.g->root = (uint32_t)r;
	if ((r = prune_infinite(c.g)) < 0) {
		if (r == -EINVAL)
			aw_err_set(err, EINVAL,
				   "no finite value satisfies the schema (a required "
				   "member contains itself)");
		goto fail;
	}
	free(c.memo);
	tmp_free(&c);
	*ret = c.g;
	return 0;
fail:
	if (r == -ENOMEM)
		aw_err_set(err, ENOMEM, "out of memory");
	free(c.memo);
	tmp_free(&c);
	aw_grammar_free(c.g);
	return (int)r;
}

int aw_grammar_compile(const char *buf, size_t len, const struct aw_grammar_opts *o,
		       struct aw_grammar **ret, struct aw_err *err)
{
	struct aw_json *j;
	int r = aw_json_parse(buf, len, &j, err);
	if (r < 0)
		return r;
	r = aw_grammar_compile_json(j, o, ret, err);
	aw_json_free(j);
	return r;
}

int aw_grammar_new_any(struct aw_grammar **ret)
{
	struct aw_grammar *g = grammar_alloc(0);
	if (!g)
		return -ENOMEM;
	struct gnode t = gn(GK_TEXT), root = gn(GK_ROOT);
	if (GROW(g, nodes, 0, capnodes, 2) < 0 || kids_add(g, 0) < 0) {
		aw_grammar_free(g);
		return -ENOMEM;
	}
	g->nodes[0] = t;
	root.off = 0;
	root.n = 1;
	g->nodes[1] = root;
	g->nnodes = 2;
	g->root = 1;
	g->any_all = 1;
	*ret = g;
	return 0;
}

static void cache_free(struct aw_grammar *g);

void aw_grammar_free(struct aw_grammar *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->ndfas; i++)
		aw_gdfa_fini(&g->dfas[i]);
	cache_free(g);
	pthread_mutex_destroy(&g->lock);
	free(g->dfas);
	free(g->nodes);
	free(g->props);
	free(g->kids);
	free(g->tn);
	free(g->tbyte);
	free(g->tkid);
	free(g->tleaf);
	free(g->kblob);
	free(g);
}

size_t aw_grammar_n_nodes(const struct aw_grammar *g)
{
	return g->nnodes;
}

/* ---- free string content: a fixed byte DFA ---------------------------------- *
 * States: 0 between characters, 1 after a backslash, 2/3/4 needing 1/2/3
 * continuation bytes, 5 after E0 (A0-BF), 6 after ED (80-9F), 7 after F0
 * (90-BF), 8 after F4 (80-8F). A character is counted at its first byte. */
enum { FS_BASE, FS_ESC, FS_C1, FS_C2, FS_C3, FS_E0, FS_ED, FS_F0, FS_F4, FS_N };

static int8_t fs_next[FS_N][256];
static pthread_once_t fs_once = PTHREAD_ONCE_INIT;

static void fs_init(void)
{
	memset(fs_next, -1, sizeof(fs_next));
	for (int b = 0x20; b < 0x7F; b++)
		if (b != '"' && b != '\\')
			fs_next[FS_BASE][b] = FS_BASE;
	fs_next[FS_BASE]['\\'] = FS_ESC;
	for (int b = 0xC2; b <= 0xDF; b++)
		fs_next[FS_BASE][b] = FS_C1;
	fs_next[FS_BASE][0xE0] = FS_E0;
	for (int b = 0xE1; b <= 0xEF; b++)
		fs_next[FS_BASE][b] = FS_C2;
	fs_next[FS_BASE][0xED] = FS_ED;
	fs_next[FS_BASE][0xF0] = FS_F0;
	for (int b = 0xF1; b <= 0xF3; b++)
		fs_next[FS_BASE][b] = FS_C3;
	fs_next[FS_BASE][0xF4] = FS_F4;
	static const char esc[] = "\"\\/bfnrt";
	for (const char *e = esc; *e; e++)
		fs_next[FS_ESC][(unsigned char)*e] = FS_BASE;
	for (int b = 0x80; b <= 0xBF; b++) {
		fs_next[FS_C1][b] = FS_BASE;
		fs_next[FS_C2][b] = FS_C1;
		fs_next[FS_C3][b] = FS_C2;
	}
	for (int b = 0xA0; b <= 0xBF; b++)
		fs_next[FS_E0][b] = FS_C1;
	for (int b = 0x80; b <= 0x9F; b++)
		fs_next[FS_ED][b] = FS_C1;
	for (int b = 0x90; b <= 0xBF; b++)
		fs_next[FS_F0][b] = FS_C2;
	for (int b = 0x80; b <= 0x8F; b++)
		fs_next[FS_F4][b] = FS_C2;
}

/* ---- vocabulary ----------------------------------------------------------------- */

#define PURE_MAX 48 /* plain-content tokens longer than this (chars) go to the quote trie */

/* Symbols of token text, for the pattern-string tables: printable ASCII
 * 0x20..0x7E as 0..94, SYM_U a byte of a complete non-ASCII character,
 * SYM_X a byte of an invalid or unfinished UTF-8 sequence, SYM_CTRL a
 * control byte. A set of them is two words. */
enum { SYM_U = 95, SYM_X = 96, SYM_CTRL = 97, SYM_N = 98 };

struct symset {
	uint64_t w[2];
};

static inline int sym_ascii(uint8_t b)
{
	return b >= 0x20 && b < 0x7F ? b - 0x20 : SYM_CTRL;
}

static inline void sym_add(struct symset *s, int sym)
{
	s->w[sym >> 6] |= 1ull << (sym & 63);
}

static inline int sym_has(const struct symset *s, int sym)
{
	return (int)(s->w[sym >> 6] >> (sym & 63) & 1);
}

static inline int sym_within(const struct symset *a, const struct symset *b)
{
	return !(a->w[0] & ~b->w[0]) && !(a->w[1] & ~b->w[1]);
}

struct fnode {
	uint32_t end;  /* index after the subtree */
	int32_t tok;   /* a token ending here, -1: none */
	uint8_t byte;  /* edge byte */
	uint8_t depth; /* 1-based */
};

struct ftrie {
	uint32_t n;	    /* nodes */
	struct fnode *nd;   /* (n) pre-order */
	uint32_t root[256]; /* the depth-1 node of each first byte, UINT32_MAX: none */
};

struct aw_grammar_vocab {
	const struct aw_tok *t;
	int32_t n_vocab;
	uint32_t words; /* bitset words */
	char *blob;	/* token bytes */
	uint32_t *off;	/* (n_vocab + 1) into blob; control tokens empty */
	int32_t *same;	/* (n_vocab) next token with identical bytes, -1 */
	struct ftrie all;
	struct ftrie quote; /* tokens with a backslash (or too long): walked */
	/* the same tokens split for strings without an upper bound in reach:
	 * those that stay string content (a bitset) and those that close it */
	uint64_t *qcontent;
	struct ftrie qclose;
	/* tokens "content, then a closing quote, then a suffix": grouped by
	 * suffix; qt[grp[g]..grp[g+1]) sorted by k (characters before the quote) */
	struct ftrie sfx; /* distinct non-empty suffixes; tok[] = group */
	uint32_t *grp;
	struct qtok *qt;
	uint32_t ngrp, g_empty; /* g_empty: the empty suffix's group or UINT32_MAX */
	int32_t *eog;
	uint32_t neog;
	uint8_t maxdepth;
	uint64_t *le; /* (PURE_MAX + 1, words): pure tokens of <= k characters */
	/* pattern strings (see walk_dfa): tokens by the symbols they contain */
	struct symset *sub; /* (all.n) symbols below each node of 'all' */
	uint64_t *first;    /* (SYM_U + 1, words): whole tokens whose first character is sym */
	uint64_t *rest;	    /* (SYM_N, words): tokens with sym after their first character */
};

struct qtok {
	uint32_t k; /* characters before the quote */
	int32_t id;
};

struct sref {
	const char *s; /* suffix */
	uint32_t len;
	uint32_t k;
	int32_t id;
};

static int sref_cmp(const void *a, const void *b)
{
	const struct sref *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

struct tokref {
	const char *s;
	uint32_t len;
	int32_t id;
};

static int tokref_cmp(const void *a, const void *b)
{
	const struct tokref *x = a, *y = b;
	uint32_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c)
		return c;
	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static void ftrie_free(struct ftrie *f)
{
	free(f->nd);
	memset(f, 0, sizeof(*f));
}

/* Flat pre-order trie of the sorted tokens r[0..n). */
static int ftrie_build(struct ftrie *f, struct aw_grammar_vocab *v, struct tokref *r, uint32_t n)
{
	size_t cap = 0;
	for (uint32_t i = 0; i < n; i++)
		cap += r[i].len;
	cap++;
	f->nd = malloc(cap * sizeof(*f->nd));
	uint32_t *stk = malloc(256 * sizeof(*stk));
	for (int c = 0; c < 256; c++)
		f->root[c] = UINT32_MAX;
	if (!f->nd || !stk) {
		free(stk);
		return -ENOMEM;
	}
	uint32_t nn = 0, sp = 0; /* stk[d-1]: node index on the current path at depth d */
	const struct tokref *prev = NULL;
	for (uint32_t i = 0; i < n; i++) {
		const struct tokref *t = &r[i];
		uint32_t common = 0;
		if (prev) {
			while (common < prev->len && common < t->len && common < sp &&
			       prev->s[common] == t->s[common])
				common++;
		}
		if (prev && common == t->len && common == prev->len && v) {
			/* identical bytes: chain */
			int32_t last = f->nd[stk[common - 1]].tok;
			while (v->same[last] >= 0)
				last = v->same[last];
			v->same[last] = t->id;
			continue;
		}
		while (sp > common)
			f->nd[stk[--sp]].end = nn;
		for (uint32_t d = common; d < t->len; d++) {
			f->nd[nn].byte = (uint8_t)t->s[d];
			f->nd[nn].depth = (uint8_t)(d + 1);
			f->nd[nn].tok = -1;
			if (!d)
				f->root[(uint8_t)t->s[0]] = nn;
			stk[sp++] = nn++;
		}
		f->nd[stk[sp - 1]].tok = t->id;
		prev = t;
	}
	while (sp)
		f->nd[stk[--sp]].end = nn;
	f->n = nn;
	free(stk);
	return 0;
}

/* The symbol tables: per token, its first character's symbol and the
 * symbols after it (a token with invalid or unfinished UTF-8 or a control
 * byte is in no 'first' set); per node of the 'all' trie, the symbols of
 * the nodes below it (a non-ASCII byte is SYM_U when the UTF-8 is valid so
 * far, SYM_X otherwise; a node where a token ends inside a character adds
 * SYM_X). */
static int sym_tables(struct aw_grammar_vocab *v)
{
	const struct ftrie *f = &v->all;
	size_t w = v->words;
	v->first = calloc((size_t)(SYM_U + 1) * w, sizeof(uint64_t));
	v->rest = calloc((size_t)SYM_N * w, sizeof(uint64_t));
	v->sub = calloc(f->n ? f->n : 1, sizeof(*v->sub));
	uint8_t *lab = malloc(f->n ? f->n : 1);
	if (!v->first || !v->rest || !v->sub || !lab) {
		free(lab);
		return -ENOMEM;
	}
	for (int32_t i = 0; i < v->n_vocab; i++) {
		const uint8_t *p = (const uint8_t *)v->blob + v->off[i];
		uint32_t len = v->off[i + 1] - v->off[i];
		int fsst = FS_BASE, fsym = -1, bad = 0, past = 0;
		uint64_t bit = 1ull << (i & 63);
		for (uint32_t k = 0; k < len; k++) {
			int ns, sy;
			if (k && fsst == FS_BASE)
				past = 1; /* past the first character */
			if (fsst == FS_BASE && p[k] < 0x80) {
				ns = FS_BASE;
				sy = sym_ascii(p[k]);
			} else {
				ns = fs_next[fsst][p[k]];
				sy = ns < 0 ? SYM_X : SYM_U;
			}
			if (sy == SYM_X || sy == SYM_CTRL)
				bad = 1;
			if (!k)
				fsym = sy;
			if (past)
				v->rest[(size_t)sy * w + (size_t)(i >> 6)] |= bit;
			fsst = ns < 0 ? FS_BASE : ns;
		}
		if (len && !bad && fsst == FS_BASE)
			v->first[(size_t)fsym * w + (size_t)(i >> 6)] |= bit;
	}
	/* node labels, parents, then the sets bottom-up (children follow parents) */
	uint32_t *par = malloc((f->n ? f->n : 1) * sizeof(*par));
	if (!par) {
		free(lab);
		return -ENOMEM;
	}
	int fsd[257];
	uint32_t pst[257];
	fsd[0] = FS_BASE;
	for (uint32_t j = 0; j < f->n; j++) {
		uint32_t d = f->nd[j].depth;
		int fp = fsd[d - 1], ns, sy;
		uint8_t b = f->nd[j].byte;
		if (fp == FS_BASE && b < 0x80) {
			ns = FS_BASE;
			sy = sym_ascii(b);
		} else {
			ns = fp < 0 ? -1 : fs_next[fp][b];
			sy = ns < 0 ? SYM_X : SYM_U;
		}
		fsd[d] = ns;
		pst[d] = j;
		par[j] = d > 1 ? pst[d - 1] : UINT32_MAX;
		lab[j] = (uint8_t)sy;
		if (f->nd[j].tok >= 0 && ns != FS_BASE)
			lab[j] |= 0x80; /* a token ends inside a character */
	}
	for (uint32_t j = f->n; j-- > 0;) {
		if (par[j] == UINT32_MAX)
			continue;
		struct symset *ps = &v->sub[par[j]];
		ps->w[0] |= v->sub[j].w[0];
		ps->w[1] |= v->sub[j].w[1];
		sym_add(ps, lab[j] & 0x7f);
		if (lab[j] & 0x80)
			sym_add(ps, SYM_X);
	}
	free(par);
	free(lab);
	return 0;
}

/* Split the quote trie's tokens q[0..n) (distinct texts; 'same' chains the
 * rest): from FS_BASE, a token that stays string content goes to the
 * qcontent bitset, one that closes the string to the qclose trie, one with
 * bytes no string takes to neither. */
static int quote_split(struct aw_grammar_vocab *v, const struct tokref *q, uint32_t n)
{
	struct tokref *c = malloc((n ? n : 1) * sizeof(*c));
	uint32_t nc = 0;
	v->qcontent = calloc(v->words, sizeof(uint64_t));
	if (!c || !v->qcontent) {
		free(c);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		int st = FS_BASE, closes = 0;
		for (uint32_t k = 0; k < q[i].len && st >= 0; k++) {
			uint8_t b = (uint8_t)q[i].s[k];
			if (st == FS_BASE && b == '"') {
				closes = 1;
				break;
			}
			st = fs_next[st][b];
		}
		if (closes)
			c[nc++] = q[i];
		else if (st >= 0)
			for (int32_t t = q[i].id; t >= 0; t = v->same[t])
				v->qcontent[t >> 6] |= 1ull << (t & 63);
	}
	/* c is sorted (q was), and its texts distinct: no 'same' chaining */
	int r = ftrie_build(&v->qclose, NULL, c, nc);
	free(c);
	return r;
}

int aw_grammar_vocab_new(const struct aw_tok *t, struct aw_grammar_vocab **ret)
{
	struct aw_grammar_vocab *v = calloc(1, sizeof(*v));
	struct tokref *r = NULL, *q = NULL;
	struct sref *sq = NULL;
	uint32_t n = aw_tok_n_tokens(t), nr = 0, nq = 0, nsq = 0;
	size_t total = 0;

	pthread_once(&fs_once, fs_init);
	if (!v)
		return -ENOMEM;
	v->t = t;
	v->n_vocab = (int32_t)n;
	v->words = (n + 63) / 64;
	v->off = malloc((n + 1) * sizeof(*v->off));
	v->same = malloc(n * sizeof(*v->same));
	v->eog = malloc(n * sizeof(*v->eog));
	r = malloc(n * sizeof(*r));
	q = malloc(n * sizeof(*q));
	sq = malloc(n * sizeof(*sq));
	v->le = calloc((size_t)(PURE_MAX + 1) * v->words, sizeof(uint64_t));
	if (!v->off || !v->same || !v->eog || !r || !q || !sq || !v->le)
		goto nomem;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;
		enum aw_tok_type ty = aw_tok_token_type(t, (int32_t)i);
		aw_tok_piece(t, (int32_t)i, &len);
		if (ty == AW_TOK_TYPE_CONTROL || ty == AW_TOK_TYPE_UNUSED ||
		    ty == AW_TOK_TYPE_UNKNOWN || len > 255)
			len = 0;
		total += len;
	}
	v->blob = malloc(total + 1);
	if (!v->blob)
		goto nomem;
	total = 0;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;
		enum aw_tok_type ty = aw_tok_token_type(t, (int32_t)i);
		const char *p = aw_tok_piece(t, (int32_t)i, &len);
		v->same[i] = -1;
		v->off[i] = (uint32_t)total;
		if (aw_tok_is_eog(t, (int32_t)i))
			v->eog[v->neog++] = (int32_t)i;
		if (ty == AW_TOK_TYPE_CONTROL || ty == AW_TOK_TYPE_UNUSED ||
		    ty == AW_TOK_TYPE_UNKNOWN || len > 255 || !len)
			continue;
		memcpy(v->blob + total, p, len);
		r[nr++] = (struct tokref){v->blob + total, (uint32_t)len, (int32_t)i};
		total += len;
		if (len > v->maxdepth)
			v->maxdepth = (uint8_t)len;
		/* classify from the start of free string content */
		int s = FS_BASE, chars = 0, cls = 0; /* 0 pure, 1 walked, 2 never, 3 quote+suffix */
		for (size_t k = 0; k < len; k++) {
			uint8_t b = (uint8_t)p[k];
			if (s == FS_BASE && b == '"') {
				cls = 3;
				sq[nsq++] = (struct sref){v->blob + total - len + k + 1,
							  (uint32_t)(len - k - 1), (uint32_t)chars,
							  (int32_t)i};
				break;
			}
			if (s == FS_BASE && b == '\\') {
				cls = 1;
				break;
			}
			int ns = fs_next[s][b];
			if (ns < 0) {
				cls = 2;
				break;
			}
			if (s == FS_BASE)
				chars++;
			s = ns;
		}
		if (cls == 0 && chars > PURE_MAX)
			cls = 1;
		if (cls == 0) {
			for (int k = chars; k <= PURE_MAX; k++)
				v->le[(size_t)k * v->words + i / 64] |= 1ull << (i % 64);
		} else if (cls == 1) {
			q[nq++] = r[nr - 1];
		}
	}
	v->off[n] = (uint32_t)total;
	qsort(r, nr, sizeof(*r), tokref_cmp);
	qsort(q, nq, sizeof(*q), tokref_cmp);
	if (ftrie_build(&v->all, v, r, nr) < 0 || sym_tables(v) < 0)
		goto nomem;
	/* the quote trie chains identical tokens through 'same' too: rebuild
	 * would double-chain, so build it from the distinct texts only */
	{
		uint32_t k = 0;
		for (uint32_t i = 0; i < nq; i++)
			if (!k || q[k - 1].len != q[i].len || memcmp(q[k - 1].s, q[i].s, q[i].len))
				q[k++] = q[i];
		nq = k;
	}
	if (ftrie_build(&v->quote, v, q, nq) < 0 || quote_split(v, q, nq) < 0)
		goto nomem;
	/* quote tokens grouped by suffix */
	qsort(sq, nsq, sizeof(*sq), sref_cmp);
	v->qt = malloc((nsq + 1) * sizeof(*v->qt));
	v->grp = malloc((nsq + 2) * sizeof(*v->grp));
	v->g_empty = UINT32_MAX;
	if (!v->qt || !v->grp)
		goto nomem;
	{
		uint32_t ns = 0;
		for (uint32_t i = 0; i < nsq; i++) {
			if (!i || sq[i].len != sq[i - 1].len ||
			    memcmp(sq[i].s, sq[i - 1].s, sq[i].len)) {
				v->grp[v->ngrp] = i;
				if (sq[i].len)
					r[ns++] = (struct tokref){sq[i].s, sq[i].len,
								  (int32_t)v->ngrp};
				else
					v->g_empty = v->ngrp;
				v->ngrp++;
			}
			v->qt[i] = (struct qtok){sq[i].k, sq[i].id};
		}
		v->grp[v->ngrp] = nsq;
		if (ftrie_build(&v->sfx, NULL, r, ns) < 0)
			goto nomem;
	}
	free(r);
	free(q);
	free(sq);
	*ret = v;
	return 0;
nomem:
	free(r);
	free(q);
	free(sq);
	aw_grammar_vocab_free(v);
	return -ENOMEM;
}

void aw_grammar_vocab_free(struct aw_grammar_vocab *v)
{
	if (!v)
		return;
	ftrie_free(&v->all);
	ftrie_free(&v->quote);
	ftrie_free(&v->qclose);
	free(v->qcontent);
	ftrie_free(&v->sfx);
	free(v->qt);
	free(v->grp);
	free(v->blob);
	free(v->off);
	free(v->same);
	free(v->eog);
	free(v->le);
	free(v->sub);
	free(v->first);
	free(v->rest);
	free(v);
}

int32_t aw_grammar_vocab_n(const struct aw_grammar_vocab *v)
{
	return v->n_vocab;
}

/* ---- matcher -------------------------------------------------------------------- */

enum ph {
	P_NEED, /* ROOT: enter kid a with the next byte */
	P_DONE,
	P_OSTART,
	P_OFIRST,
	P_OKEY,	   /* a: key trie node */
	P_OMAPKEY, /* child: the key string */
	P_OCOLON,  /* a: bytes of the colon matched; x: property */
	P_OVALNEED,
	P_OVAL, /* child: the value */
	P_ONEXT,
	P_OSEP, /* a: bytes of the comma matched */
	P_OKEYNEED,
	P_ASTART,
	P_AFIRST,
	P_AITEM, /* child */
	P_ANEXT,
	P_ASEP,
	P_AITEMNEED,
	P_SSTART,
	P_SBODY, /* a: DFA state; b: characters (free text) */
	P_NSTART,
	P_NMINUS,
	P_NZERO,
	P_NINT,
	P_NDOT,
	P_NFRAC,
	P_LIT, /* a: trie node */
	P_TEXT,
};

struct frame {
	const struct frame *up;
	uint32_t node;
	uint8_t ph;
	uint8_t neg;
	uint16_t depth; /* containers open, this one included */
	uint32_t a, b;
	int64_t x;
};

#define MAX_STACKS 32
#define SCRATCH	   (1u << 16) /* frames in the scratch arena */
#define HCHUNK	   4096	      /* frames per history chunk */

struct hist {
	uint32_t soff, n;     /* stacks[soff..soff+n) */
	uint32_t chunk, used; /* history arena position before this step */
	uint8_t done;
};

struct aw_grammar_matcher {
	struct aw_grammar *g;
	const struct aw_grammar_vocab *v;
	/* scratch arena and the stack-set buffer of a walk */
	struct frame *scr;
	uint32_t nscr;
	const struct frame **out;
	uint32_t nout, capout;
	/* history: persistent frames in chunks, and one state per step */
	struct frame **chunks;
	uint32_t nchunks, capchunks, chunk, used;
	const struct frame **stacks;
	uint32_t nstacks, capstacks;
	struct hist *h;
	uint32_t nh, caph; /* h[nh-1] is the current state */
	uint32_t alt_depth;
	int finish; /* aw_grammar_set_finish() */
	uint64_t *tmpmask;
	uint64_t *covbuf; /* (words) scratch of cover() */
	uint8_t *keybuf;
	size_t keycap;
};

static inline struct frame *fnew(struct aw_grammar_matcher *m, const struct frame *src)
{
	if (m->nscr >= SCRATCH)
		return NULL;
	struct frame *f = &m->scr[m->nscr++];
	*f = *src;
	return f;
}

static inline void emit(struct aw_grammar_matcher *m, const struct frame *f)
{
	if (!f)
		return;
	if (m->nout == m->capout) {
		uint32_t nc = m->capout * 2;
		const struct frame **no = realloc(m->out, nc * sizeof(*no));
		if (!no)
			return;
		m->out = no;
		m->capout = nc;
	}
	m->out[m->nout++] = f;
}

static void feed(struct aw_grammar_matcher *m, const struct frame *f, int c);

/* The parent 'p' after its child completed. */
static struct frame *advance(struct aw_grammar_matcher *m, const struct frame *p)
{
	const struct aw_grammar *g = m->g;
	struct frame t = *p;
	switch (p->ph) {
	case P_NEED:
		t.a++;
		if (t.a == g->nodes[p->node].n)
			t.ph = P_DONE;
		break;
	case P_OMAPKEY:
		t.ph = P_OCOLON;
		t.a = 0;
		break;
	case P_OVAL:
		t.ph = P_ONEXT;
		break;
	case P_AITEM:
		t.ph = P_ANEXT;
		t.b++;
		break;
	default:
		return NULL;
	}
	return fnew(m, &t);
}

/* 'f' completed: pop it; with c >= 0 the parent goes on with byte c. */
static void done(struct aw_grammar_matcher *m, const struct frame *f, int c)
{
	struct frame *p = advance(m, f->up);
	if (!p)
		return;
	if (c < 0)
		emit(m, p);
	else
		feed(m, p, c);
}

static void enter(struct aw_grammar_matcher *m, const struct frame *parent, uint32_t node, int c)
{
	const struct gnode *n = &m->g->nodes[node];
	if (n->kind == GK_ALT) {
		if (m->alt_depth >= ALT_DEPTH)
			return;
		m->alt_depth++;
		for (uint32_t i = 0; i < n->n; i++) {
			const struct gnode *k = &m->g->nodes[m->g->kids[n->off + i]];
			if (m->finish && k->any && n->n > 1)
				continue; /* finishing: no new containers inside "any" */
			enter(m, parent, m->g->kids[n->off + i], c);
		}
		m->alt_depth--;
		return;
	}
	struct frame f = {parent, node, 0, 0, parent->depth, 0, 0, 0};
	switch (n->kind) {
	case GK_OBJECT:
	case GK_ARRAY:
		f.depth++;
		if (f.depth > AW_GRAMMAR_MAX_DEPTH || (n->any && f.depth > ANY_DEPTH))
			return;
		f.ph = n->kind == GK_OBJECT ? P_OSTART : P_ASTART;
		break;
	case GK_STRING:
		f.ph = P_SSTART;
		break;
	case GK_NUMBER:
		f.ph = P_NSTART;
		break;
	case GK_LIT:
		f.ph = P_LIT;
		f.a = n->trie;
		break;
	case GK_TEXT:
		f.ph = P_TEXT;
		break;
	default:
		return;
	}
	feed(m, &f, c);
}

static struct frame *with(struct aw_grammar_matcher *m, const struct frame *f, int ph, uint32_t a)
{
	struct frame t = *f;
	t.ph = (uint8_t)ph;
	t.a = a;
	return fnew(m, &t);
}

/* Is there a declared property j in [b, first required >= b] whose key
 * continues through key-trie node 't'? */
static int key_ok(const struct aw_grammar_matcher *m, const struct gnode *n, uint32_t t, uint32_t b,
		  int start)
{
	const struct aw_grammar *g = m->g;
	if (b >= n->n)
		return 0;
	uint32_t r = g->props[n->off + b].req_next;
	uint32_t lo = b;
	if (m->finish && start) {
		if (r >= n->n)
			return 0; /* finishing: optional members are skipped */
		lo = r;
	}
	const struct tnode *x = &g->tn[t];
	for (uint32_t i = x->lo; i < x->hi; i++) {
		int32_t j = g->tleaf[i];
		if ((uint32_t)j >= lo && (uint32_t)j <= r &&
		    g->props[n->off + (uint32_t)j].node >= 0)
			return 1;
	}
	return 0;
}

static inline int req_left(const struct aw_grammar *g, const struct gnode *n, uint32_t b)
{
	return b < n->n && g->props[n->off + b].req_next < n->n;
}

static const int64_t p10[] = {1,
			      10,
			      100,
			      1000,
			      10000,
			      100000,
			      1000000,
			      10000000,
			      100000000,
			      1000000000,
			      10000000000,
			      100000000000,
			      1000000000000,
			      10000000000000,
			      100000000000000,
			      1000000000000000};

/* Can an integer part with sign 'neg', value 'm' and 'd' digits (d = 0:
 * none yet) still end inside [ilo, ihi]? */
static int num_feasible(const struct gnode *n, int neg, int64_t m, uint32_t d)
{
	if (d == 0) {
		if (neg)
			return n->ilo <= 0;
		return n->ihi >= 0;
	}
	if (m == 0) { /* "0" or "-0": no more digits */
		return n->ilo <= 0 && n->ihi >= 0;
	}
	for (uint32_t k = 0; k + d <= NUM_MAX_INT; k++) {
		int64_t lo = m * p10[k], hi = lo + p10[k] - 1;
		if (neg) {
			int64_t t = -hi;
			hi = -lo;
			lo = t;
		}
		if (hi >= n->ilo && lo <= n->ihi)
			return 1;
	}
	return 0;
}

static int num_valid(const struct gnode *n, int neg, int64_t m)
{
	int64_t v = neg ? -m : m;
	return v >= n->ilo && v <= n->ihi;
}

static int frac_ok(const struct gnode *n, int neg, int64_t m)
{
	if (n->integer || !num_valid(n, neg, m))
		return 0;
	double v = neg ? -(double)m : (double)m;
	if (neg)
		return v - 1 >= n->dlo;
	return v + 1 <= n->dhi;
}

static void feed(struct aw_grammar_matcher *m, const struct frame *f, int c)
{
	const struct aw_grammar *g = m->g;
	const struct gnode *n = f->node == UINT32_MAX ? NULL : &g->nodes[f->node];
	struct frame t;

	switch (f->ph) {
	case P_NEED:
		enter(m, f, g->kids[n->off + f->a], c);
		return;
	case P_DONE:
		return;
	/* objects */
	case P_OSTART:
		if (c == '{')
			emit(m, with(m, f, P_OFIRST, 0));
		return;
	case P_OFIRST:
		if (c == '}') {
			if (n->sub >= 0 || !req_left(g, n, 0))
				done(m, f, -1);
			return;
		}
		__attribute__((fallthrough));
	case P_OKEYNEED:
		if (c != '"')
			return;
		if (n->sub >= 0) {
			if (m->finish && f->ph == P_OFIRST)
				return;
			struct frame *p = with(m, f, P_OMAPKEY, 0);
			if (!p)
				return;
			/* the key: free text, a string frame without a node */
			t = (struct frame){p, UINT32_MAX, P_SBODY, 0, f->depth, FS_BASE, 0, 0};
			emit(m, fnew(m, &t));
			return;
		} else {
			int32_t k = trie_kid(g, n->trie, '"');
			if (k >= 0 && key_ok(m, n, (uint32_t)k, f->b, f->ph == P_OFIRST))
				emit(m, with(m, f, P_OKEY, (uint32_t)k));
			return;
		}
	case P_OKEY: {
		int32_t k = trie_kid(g, f->a, (uint8_t)c);
		if (k < 0 || !key_ok(m, n, (uint32_t)k, f->b, 0))
			return;
		int32_t leaf = g->tn[k].leaf;
		if (leaf >= 0) {
			t = *f;
			t.ph = P_OCOLON;
			t.a = 0;
			t.x = leaf;
			t.b = (uint32_t)leaf + 1;
			emit(m, fnew(m, &t));
		} else {
			emit(m, with(m, f, P_OKEY, (uint32_t)k));
		}
		return;
	}
	case P_OCOLON:
		if (c != (uint8_t)g->colon[f->a])
			return;
		emit(m, with(m, f, f->a + 1 == g->ncolon ? P_OVALNEED : P_OCOLON, f->a + 1));
		return;
	case P_OVALNEED: {
		struct frame *p = with(m, f, P_OVAL, 0);
		if (p)
			enter(m, p,
			      n->sub >= 0 ? (uint32_t)n->sub
					  : (uint32_t)g->props[n->off + f->x].node,
			      c);
		return;
	}
	case P_ONEXT:
		if (c == '}') {
			if (n->sub >= 0 || !req_left(g, n, f->b))
				done(m, f, -1);
			return;
		}
		if (c == (uint8_t)g->comma[0] && ((n->sub >= 0 && !m->finish) || f->b < n->n)) {
			if (n->sub < 0) {
				/* some key must still be possible */
				int32_t k = trie_kid(g, n->trie, '"');
				if (k < 0 || !key_ok(m, n, (uint32_t)k, f->b, 1))
					return;
			}
			emit(m, with(m, f, g->ncomma == 1 ? P_OKEYNEED : P_OSEP, 1));
		}
		return;
	case P_OSEP:
		if (c == (uint8_t)g->comma[f->a])
			emit(m, with(m, f, f->a + 1 == g->ncomma ? P_OKEYNEED : P_OSEP, f->a + 1));
		return;
	/* arrays */
	case P_ASTART:
		if (c == '[')
			emit(m, with(m, f, P_AFIRST, 0));
		return;
	case P_AFIRST:
		if (c == ']') {
			if (n->lo == 0)
				done(m, f, -1);
			return;
		}
		if (m->finish && n->lo == 0)
			return;
		__attribute__((fallthrough));
	case P_AITEMNEED: {
		if (f->b >= n->hi)
			return;
		int32_t item = f->b < n->n ? (int32_t)g->kids[n->off + f->b] : n->sub;
		if (item < 0)
			return;
		struct frame *p = with(m, f, P_AITEM, 0);
		if (p)
			enter(m, p, (uint32_t)item, c);
		return;
	}
	case P_ANEXT:
		if (c == ']') {
			if (f->b >= n->lo)
				done(m, f, -1);
			return;
		}
		if (c == (uint8_t)g->comma[0] && f->b < n->hi && (f->b < n->n || n->sub >= 0) &&
		    !(m->finish && f->b >= n->lo))
			emit(m, with(m, f, g->ncomma == 1 ? P_AITEMNEED : P_ASEP, 1));
		return;
	case P_ASEP:
		if (c == (uint8_t)g->comma[f->a])
			emit(m, with(m, f, f->a + 1 == g->ncomma ? P_AITEMNEED : P_ASEP, f->a + 1));
		return;
	/* strings */
	case P_SSTART:
		if (c == '"') {
			t = *f;
			t.ph = P_SBODY;
			t.a = 0;
			t.b = 0;
			emit(m, fnew(m, &t));
		}
		return;
	case P_SBODY: {
		int32_t dfa = n ? n->dfa : -1;
		uint32_t lo = n ? n->lo : 0;
		uint32_t hi = n ? n->hi : UINT32_MAX;
		if (dfa < 0) {
			if (c == '"' && f->a == FS_BASE) {
				if (f->b >= lo)
					done(m, f, -1);
				return;
			}
			int ns = fs_next[f->a][c];
			if (ns < 0 || (m->finish && f->a == FS_BASE && f->b >= lo))
				return;
			t = *f;
			if (f->a == FS_BASE) {
				if (f->b >= hi)
					return;
				t.b++;
			}
			t.a = (uint32_t)ns;
			emit(m, fnew(m, &t));
		} else {
			const struct aw_gdfa *d = &g->dfas[dfa];
			if (c == '"') {
				if (d->accept[f->a])
					done(m, f, -1);
				return;
			}
			int32_t ns = d->next[(size_t)f->a * 256 + c];
			if (ns < 0 || (m->finish && d->dist[ns] >= d->dist[f->a]))
				return;
			emit(m, with(m, f, P_SBODY, (uint32_t)ns));
		}
		return;
	}
	/* numbers: b = integer digits, x = magnitude, a = fraction digits */
	case P_NSTART:
	case P_NMINUS:
		if (c == '-' && f->ph == P_NSTART) {
			if (num_feasible(n, 1, 0, 0)) {
				t = *f;
				t.ph = P_NMINUS;
				t.neg = 1;
				emit(m, fnew(m, &t));
			}
			return;
		}
		if (c >= '0' && c <= '9' && num_feasible(n, f->neg, c - '0', 1)) {
			t = *f;
			t.ph = c == '0' ? P_NZERO : P_NINT;
			t.x = c - '0';
			t.b = 1;
			emit(m, fnew(m, &t));
		}
		return;
	case P_NZERO:
	case P_NINT:
		if (c >= '0' && c <= '9' && f->ph == P_NINT && f->b < NUM_MAX_INT &&
		    !(m->finish && num_valid(n, f->neg, f->x)) &&
		    num_feasible(n, f->neg, f->x * 10 + (c - '0'), f->b + 1)) {
			t = *f;
			t.x = f->x * 10 + (c - '0');
			t.b++;
			emit(m, fnew(m, &t));
		} else if (c == '.' && !m->finish && frac_ok(n, f->neg, f->x)) {
			emit(m, with(m, f, P_NDOT, 0));
		}
		if (num_valid(n, f->neg, f->x))
			done(m, f, c);
		return;
	case P_NDOT:
		if (c >= '0' && c <= '9')
			emit(m, with(m, f, P_NFRAC, 1));
		return;
	case P_NFRAC:
		if (c >= '0' && c <= '9' && f->a < NUM_MAX_FRAC && !m->finish)
			emit(m, with(m, f, P_NFRAC, f->a + 1));
		done(m, f, c);
		return;
	case P_LIT: {
		int32_t k = trie_kid(g, f->a, (uint8_t)c);
		if (k >= 0) {
			if (g->tn[k].leaf >= 0 && g->tn[k].nkid == 0)
				done(m, f, -1);
			else
				emit(m, with(m, f, P_LIT, (uint32_t)k));
		}
		if (g->tn[f->a].leaf >= 0)
			done(m, f, c);
		return;
	}
	case P_TEXT:
		emit(m, fnew(m, f));
		return;
	}
}

/* Can the stack topped by 'f' end the document now? */
static int stack_can_end(const struct aw_grammar *g, const struct frame *f)
{
	if (f->ph == P_DONE)
		return 1;
	if (f->node == UINT32_MAX)
		return 0;
	const struct gnode *n = &g->nodes[f->node];
	int can;
	switch (f->ph) {
	case P_NZERO:
	case P_NINT:
		can = num_valid(n, f->neg, f->x);
		break;
	case P_NFRAC:
	case P_TEXT:
		can = 1;
		break;
	case P_LIT:
		can = g->tn[f->a].leaf >= 0;
		break;
	default:
		can = 0;
	}
	if (!can || !f->up)
		return 0;
	const struct frame *p = f->up;
	return p->ph == P_NEED && p->a + 1 == g->nodes[p->node].n;
}

/* ---- history arena ---- */

static struct frame *halloc(struct aw_grammar_matcher *m)
{
	if (m->used == HCHUNK) {
		m->chunk++;
		m->used = 0;
	}
	if (m->chunk == m->nchunks) {
		if (grow((void **)&m->chunks, &m->capchunks, m->nchunks + 1, sizeof(*m->chunks)) <
		    0)
			return NULL;
		m->chunks[m->nchunks] = malloc(HCHUNK * sizeof(struct frame));
		if (!m->chunks[m->nchunks])
			return NULL;
		m->nchunks++;
	}
	return &m->chunks[m->chunk][m->used++];
}

static inline int in_scratch(const struct aw_grammar_matcher *m, const struct frame *f)
{
	return f >= m->scr && f < m->scr + SCRATCH;
}

static const struct frame *persist(struct aw_grammar_matcher *m, const struct frame *f)
{
	if (!f || !in_scratch(m, f))
		return f;
	const struct frame *up = persist(m, f->up);
	if (f->up && !up)
		return NULL;
	struct frame *n = halloc(m);
	if (!n)
		return NULL;
	*n = *f;
	n->up = up;
	return n;
}

static struct hist *cur(struct aw_grammar_matcher *m)
{
	return &m->h[m->nh - 1];
}

/* Append the state out[from..nout) (scratch frames) as a new step. */
static int push_state(struct aw_grammar_matcher *m, uint32_t from, int isdone)
{
	struct hist h = {m->nstacks, 0, m->chunk, m->used, (uint8_t)isdone};
	uint32_t n = m->nout - from;
	if (n > MAX_STACKS)
		n = MAX_STACKS;
	if (grow((void **)&m->stacks, &m->capstacks, m->nstacks + n, sizeof(*m->stacks)) < 0 ||
	    grow((void **)&m->h, &m->caph, m->nh + 1, sizeof(*m->h)) < 0)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct frame *p = persist(m, m->out[from + i]);
		if (!p)
			return -ENOMEM;
		/* drop exact duplicates (anyOf readings that merged) */
		uint32_t k;
		for (k = 0; k < h.n; k++) {
			const struct frame *a = m->stacks[h.soff + k], *b = p;
			while (a && b && a->node == b->node && a->ph == b->ph && a->a == b->a &&
			       a->b == b->b && a->x == b->x && a->neg == b->neg && a->up != b->up)
				a = a->up, b = b->up;
			if (a == b)
				break;
		}
		if (k == h.n)
			m->stacks[h.soff + h.n++] = p;
	}
	m->nstacks += h.n;
	m->h[m->nh++] = h;
	return 0;
}

void aw_grammar_matcher_reset(struct aw_grammar_matcher *m)
{
	m->nh = 0;
	m->nstacks = 0;
	m->chunk = 0;
	m->used = 0;
	m->nscr = 0;
	m->nout = 0;
	struct frame root = {NULL, m->g->root, P_NEED, 0, 0, 0, 0, 0};
	emit(m, fnew(m, &root));
	push_state(m, 0, 0);
	m->nout = 0;
	m->nscr = 0;
}

int aw_grammar_matcher_new(struct aw_grammar *g, const struct aw_grammar_vocab *v,
			   struct aw_grammar_matcher **ret)
{
	struct aw_grammar_matcher *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_once(&fs_once, fs_init);
	m->g = g;
	m->v = v;
	m->scr = malloc(SCRATCH * sizeof(*m->scr));
	m->capout = 4096;
	m->out = malloc(m->capout * sizeof(*m->out));
	m->tmpmask = malloc(v->words * sizeof(uint64_t));
	m->covbuf = malloc(v->words * sizeof(uint64_t));
	if (!m->scr || !m->out || !m->tmpmask || !m->covbuf) {
		aw_grammar_matcher_free(m);
		return -ENOMEM;
	}
	aw_grammar_matcher_reset(m);
	if (m->nh != 1) {
		aw_grammar_matcher_free(m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

void aw_grammar_matcher_free(struct aw_grammar_matcher *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->nchunks; i++)
		free(m->chunks[i]);
	free(m->chunks);
	free(m->stacks);
	free(m->h);
	free(m->scr);
	free(m->out);
	free(m->tmpmask);
	free(m->covbuf);
	free(m->keybuf);
	free(m);
}

void aw_grammar_set_finish(struct aw_grammar_matcher *m, int on)
{
	m->finish = !!on;
}

size_t aw_grammar_n_steps(const struct aw_grammar_matcher *m)
{
	return m->nh - 1;
}

static int state_can_end(struct aw_grammar_matcher *m)
{
	struct hist *h = cur(m);
	for (uint32_t i = 0; i < h->n; i++)
		if (stack_can_end(m->g, m->stacks[h->soff + i]))
			return 1;
	return 0;
}

int aw_grammar_can_end(struct aw_grammar_matcher *m)
{
	return cur(m)->done || m->g->any_all || state_can_end(m);
}

/* Feed bytes b[0..n) to the current state into out[from..]; returns the
 * number of stacks alive (scratch frames). */
static uint32_t run_bytes(struct aw_grammar_matcher *m, const uint8_t *b, size_t n,
			  uint32_t *ret_from)
{
	struct hist *h = cur(m);
	uint32_t from = m->nout;
	for (uint32_t i = 0; i < h->n; i++)
		emit(m, m->stacks[h->soff + i]);
	for (size_t k = 0; k < n; k++) {
		uint32_t s = from, e = m->nout;
		if (s == e)
			break;
		from = e;
		for (uint32_t i = s; i < e; i++)
			feed(m, m->out[i], b[k]);
		if (m->nout - from > MAX_STACKS)
			m->nout = from + MAX_STACKS;
	}
	*ret_from = from;
	return m->nout - from;
}

static int accept_bytes(struct aw_grammar_matcher *m, const uint8_t *b, size_t n)
{
	uint32_t from;
	m->nout = 0;
	m->nscr = 0;
	if (cur(m)->done)
		return -EINVAL;
	if (m->g->any_all) {
		/* nothing to track: repeat the state */
		m->nout = 0;
		struct hist *h = cur(m);
		emit(m, m->stacks[h->soff]);
		return push_state(m, 0, 0);
	}
	if (!run_bytes(m, b, n, &from)) {
		m->nout = 0;
		m->nscr = 0;
		return -EINVAL;
	}
	int r = push_state(m, from, 0);
	m->nout = 0;
	m->nscr = 0;
	return r;
}

static int is_eog(const struct aw_grammar_vocab *v, int32_t tok)
{
	for (uint32_t i = 0; i < v->neog; i++)
		if (v->eog[i] == tok)
			return 1;
	return 0;
}

int aw_grammar_accept(struct aw_grammar_matcher *m, int32_t token)
{
	const struct aw_grammar_vocab *v = m->v;
	if (token < 0 || token >= v->n_vocab || cur(m)->done)
		return -EINVAL;
	if (m->g->any_all)
		return accept_bytes(m, NULL, 0); /* allows everything, EOS never ends it */
	if (is_eog(v, token)) {
		if (!aw_grammar_can_end(m))
			return -EINVAL;
		struct hist h = *cur(m);
		if (grow((void **)&m->h, &m->caph, m->nh + 1, sizeof(*m->h)) < 0)
			return -ENOMEM;
		h.chunk = m->chunk;
		h.used = m->used;
		h.done = 1;
		m->h[m->nh++] = h;
		return 0;
	}
	uint32_t len = v->off[token + 1] - v->off[token];
	if (!len)
		return m->g->any_all ? accept_bytes(m, NULL, 0) : -EINVAL;
	return accept_bytes(m, (const uint8_t *)v->blob + v->off[token], len);
}

int aw_grammar_accept_bytes(struct aw_grammar_matcher *m, const char *b, size_t n)
{
	return accept_bytes(m, (const uint8_t *)b, n);
}

int aw_grammar_rollback(struct aw_grammar_matcher *m, size_t n)
{
	if (n > m->nh - 1)
		return -EINVAL;
	while (n--) {
		struct hist *h = &m->h[m->nh - 1];
		m->chunk = h->chunk;
		m->used = h->used;
		m->nstacks = h->soff;
		m->nh--;
	}
	/* keep the stack buffer consistent with the surviving top */
	struct hist *h = cur(m);
	m->nstacks = h->soff + h->n;
	return 0;
}

/* ---- the mask ------------------------------------------------------------------- */

struct lvl {
	uint32_t start, n, scr;
};

/* Walk trie 'f' from state out[0..n0): set the bits of tokens that survive. */
struct qrange {
	uint32_t kmin, kmax; /* characters before the quote allowed */
};

static void set_group(const struct aw_grammar_vocab *v, uint32_t g, const struct qrange *q,
		      uint64_t *mask, int *count)
{
	for (uint32_t i = v->grp[g]; i < v->grp[g + 1]; i++) {
		uint32_t k = v->qt[i].k;
		if (k < q->kmin)
			continue;
		if (k > q->kmax)
			break;
		int32_t t = v->qt[i].id;
		uint64_t bit = 1ull << (t & 63);
		if (!(mask[t >> 6] & bit)) {
			mask[t >> 6] |= bit;
			(*count)++;
		}
	}
}

static inline void set_tok(const struct aw_grammar_vocab *v, int32_t t, uint64_t *mask, int *count)
{
	for (; t >= 0; t = v->same[t]) {
		uint64_t bit = 1ull << (t & 63);
		if (!(mask[t >> 6] & bit)) {
			mask[t >> 6] |= bit;
			(*count)++;
		}
	}
}

/* Walk trie 'f' from state out[0..n0): set the bits of tokens that survive
 * (with 'q': f's payloads are suffix groups, filtered by q). */
static void walk_range(struct aw_grammar_matcher *m, const struct ftrie *f, uint32_t i0,
		       uint32_t i1, uint32_t dbase, uint32_t s0, uint32_t n0, uint64_t *mask,
		       int *count, const struct qrange *q)
{
	struct lvl lv[257];
	const struct aw_grammar_vocab *v = m->v;
	lv[0] = (struct lvl){s0, n0, m->nscr};
	for (uint32_t i = i0; i < i1;) {
		uint32_t d = f->nd[i].depth - dbase;
		const struct lvl *p = &lv[d - 1];
		m->nout = p->start + p->n;
		m->nscr = p->scr;
		uint32_t from = m->nout;
		int c = f->nd[i].byte;
		for (uint32_t k = p->start; k < from; k++)
			feed(m, m->out[k], c);
		uint32_t alive = m->nout - from;
		if (!alive) {
			i = f->nd[i].end;
			continue;
		}
		if (alive > MAX_STACKS) {
			m->nout = from + MAX_STACKS;
			alive = MAX_STACKS;
		}
		lv[d] = (struct lvl){from, alive, m->nscr};
		if (q) {
			if (f->nd[i].tok >= 0)
				set_group(v, (uint32_t)f->nd[i].tok, q, mask, count);
			i++;
			continue;
		}
		for (int32_t t = f->nd[i].tok; t >= 0; t = v->same[t]) {
			uint64_t bit = 1ull << (t & 63);
			if (!(mask[t >> 6] & bit)) {
				mask[t >> 6] |= bit;
				(*count)++;
			}
		}
		i++;
	}
}

/* The whole trie: its first level through the root table, so that first
 * bytes no stack takes cost no visit of the node array. */
static void walk(struct aw_grammar_matcher *m, const struct ftrie *f, uint32_t n0, uint64_t *mask,
		 int *count, const struct qrange *q)
{
	const struct aw_grammar_vocab *v = m->v;
	uint32_t scr0 = m->nscr;
	for (int c = 0; c < 256; c++) {
		uint32_t r = f->root[c];
		if (r == UINT32_MAX)
			continue;
		m->nout = n0;
		m->nscr = scr0;
		for (uint32_t k = 0; k < n0; k++)
			feed(m, m->out[k], c);
		uint32_t alive = m->nout - n0;
		if (!alive)
			continue;
		if (alive > MAX_STACKS) {
			m->nout = n0 + MAX_STACKS;
			alive = MAX_STACKS;
		}
		if (q) {
			if (f->nd[r].tok >= 0)
				set_group(v, (uint32_t)f->nd[r].tok, q, mask, count);
		} else {
			set_tok(v, f->nd[r].tok, mask, count);
		}
		walk_range(m, f, r + 1, f->nd[r].end, 1, n0, alive, mask, count, q);
	}
	m->nout = n0;
	m->nscr = scr0;
}

/* ---- pattern strings ----
 * The stacks' tops are all inside one pattern string, in one DFA state s0:
 * the DFA is stepped inline (one table lookup per trie edge, no frames), and
 * the general walk takes over only below a closing quote. A permissive state
 * would still visit most of the 400 000-node trie of a 128k vocabulary, so
 * most tokens are first set from the vocabulary's symbol tables ("cover"):
 * for a first character c taking s0 to y, where L(y) is the set of symbols
 * that loop on y (a non-ASCII symbol when every non-ASCII character does),
 * every token starting with c whose later symbols are all in L(y) is
 * allowed (it ends in y, and every DFA state kept is live):
 *     mask |= first[c] & ~OR{rest[x] : x not in L(y)}.
 * The walk then skips a subtree when its path so far is such a token's
 * prefix and every symbol below it is in L(y): all its tokens are set. */

#define COVER_CAND 16 /* first-character targets considered */
#define COVER_MIN  24 /* a target is covered when at least this many symbols loop on it */
#define UMEMO	   64

struct umemo {
	uint32_t n;
	uint32_t key[UMEMO];
	int32_t val[UMEMO];
};

/* From DFA state t in the middle of a UTF-8 character (UTF-8 state f): the
 * one state every valid completion ends in, or -1 (none, several, a dead
 * one, or the memo is full). */
static int32_t u_walk(const struct aw_gdfa *d, uint32_t t, int f, struct umemo *mm)
{
	uint32_t key = t * FS_N + (uint32_t)f;
	for (uint32_t i = 0; i < mm->n; i++)
		if (mm->key[i] == key)
			return mm->val[i];
	if (mm->n == UMEMO)
		return -1;
	int32_t r = -2;
	for (int b = 0x80; b < 0xC0; b++) {
		int nf = fs_next[f][b];
		if (nf < 0)
			continue;
		int32_t nt = d->next[(size_t)t * 256 + b];
		int32_t got = nt < 0 ? -1 : nf == FS_BASE ? nt : u_walk(d, (uint32_t)nt, nf, mm);
		if (got < 0 || (r != -2 && got != r)) {
			r = -1;
			break;
		}
		r = got;
	}
	if (r == -2)
		r = -1;
	if (mm->n < UMEMO) {
		mm->key[mm->n] = key;
		mm->val[mm->n++] = r;
	}
	return r;
}

/* The one state every non-ASCII character takes s to (all live), or -1. */
static int32_t u_target(const struct aw_gdfa *d, uint32_t s)
{
	struct umemo mm;
	int32_t r = -2;
	mm.n = 0;
	for (int b = 0xC2; b <= 0xF4; b++) {
		int nf = fs_next[FS_BASE][b];
		if (nf < 0)
			continue;
		int32_t nt = d->next[(size_t)s * 256 + b];
		int32_t got = nt < 0 ? -1 : u_walk(d, (uint32_t)nt, nf, &mm);
		if (got < 0 || (r != -2 && got != r))
			return -1;
		r = got;
	}
	return r < 0 ? -1 : r;
}

/* L(y): the symbols that loop on y. */
static struct symset loops(const struct aw_gdfa *d, uint32_t y)
{
	struct symset l = {{0, 0}};
	for (int b = 0x20; b < 0x7F; b++)
		if (b != '"' && b != '\\' && d->next[(size_t)y * 256 + b] == (int32_t)y)
			sym_add(&l, b - 0x20);
	if (u_target(d, y) == (int32_t)y)
		sym_add(&l, SYM_U);
	return l;
}

struct cover {
	int8_t k[SYM_U + 1]; /* per first symbol: index into y/l, -1: not covered */
	uint32_t n;
	int32_t y[COVER_CAND];
	struct symset l[COVER_CAND];
	uint8_t on[COVER_CAND];
};

/* Fill 'cv' for DFA state s0 and set the covered tokens in 'mask'. */
static void cover(struct aw_grammar_matcher *m, const struct aw_gdfa *d, uint32_t s0,
		  struct cover *cv, uint64_t *mask)
{
	const struct aw_grammar_vocab *v = m->v;
	size_t w = v->words;
	memset(cv->k, -1, sizeof(cv->k));
	cv->n = 0;
	for (int f = 0; f <= SYM_U; f++) {
		int32_t y;
		if (f == SYM_U) {
			y = u_target(d, s0);
		} else {
			int b = f + 0x20;
			y = b == '"' || b == '\\' ? -1 : d->next[(size_t)s0 * 256 + b];
		}
		if (y < 0)
			continue;
		uint32_t j = 0;
		while (j < cv->n && cv->y[j] != y)
			j++;
		if (j == cv->n) {
			if (cv->n == COVER_CAND)
				continue;
			cv->y[j] = y;
			cv->l[j] = loops(d, (uint32_t)y);
			cv->on[j] = __builtin_popcountll(cv->l[j].w[0]) +
					    __builtin_popcountll(cv->l[j].w[1]) >=
				    COVER_MIN;
			cv->n++;
		}
		if (cv->on[j])
			cv->k[f] = (int8_t)j;
	}
	uint64_t *notr = m->covbuf;
	for (uint32_t j = 0; j < cv->n; j++) {
		if (!cv->on[j])
			continue;
		memset(notr, 0, w * sizeof(uint64_t));
		for (int x = 0; x < SYM_N; x++) {
			if (sym_has(&cv->l[j], x))
				continue;
			const uint64_t *r = v->rest + (size_t)x * w;
			for (size_t i = 0; i < w; i++)
				notr[i] |= r[i];
		}
		for (int f = 0; f <= SYM_U; f++) {
			if (cv->k[f] != (int8_t)j)
				continue;
			const uint64_t *fs = v->first + (size_t)f * w;
			for (size_t i = 0; i < w; i++)
				mask[i] |= fs[i] & ~notr[i];
		}
	}
}

static inline int utf8_step(int st, uint8_t c)
{
	if (st < 0)
		return -1;
	return st == FS_BASE && c < 0x80 ? FS_BASE : fs_next[st][c];
}

static void walk_dfa(struct aw_grammar_matcher *m, const struct frame *const *tops, uint32_t ntop,
		     uint64_t *mask, int *count)
{
	const struct aw_grammar_vocab *v = m->v;
	const struct ftrie *f = &v->all;
	const struct aw_gdfa *d = &m->g->dfas[m->g->nodes[tops[0]->node].dfa];
	uint32_t st[257];
	int8_t cy[257], fsd[257];
	struct cover cv;
	if (m->finish) {
		memset(cv.k, -1, sizeof(cv.k));
		cv.n = 0;
	} else {
		cover(m, d, tops[0]->a, &cv, mask);
	}
	st[0] = tops[0]->a;
	cy[0] = -2; /* before the first character */
	fsd[0] = FS_BASE;
	for (uint32_t i = 0; i < f->n;) {
		uint32_t dep = f->nd[i].depth, s = st[dep - 1];
		uint8_t c = f->nd[i].byte;
		if (c == '"') {
			if (d->accept[s]) {
				/* the string closes here; the parents take the rest */
				m->nout = 0;
				m->nscr = 0;
				for (uint32_t k = 0; k < ntop; k++) {
					struct frame t = *tops[k];
					t.a = s;
					done(m, &t, -1);
				}
				uint32_t n0 = m->nout;
				if (n0) {
					set_tok(v, f->nd[i].tok, mask, count);
					walk_range(m, f, i + 1, f->nd[i].end, dep, 0, n0, mask,
						   count, NULL);
				}
			}
			i = f->nd[i].end;
			continue;
		}
		int32_t ns = d->next[(size_t)s * 256 + c];
		if (ns < 0 || (m->finish && d->dist[ns] >= d->dist[s])) {
			i = f->nd[i].end;
			continue;
		}
		st[dep] = (uint32_t)ns;
		set_tok(v, f->nd[i].tok, mask, count);
		int fs = utf8_step(fsd[dep - 1], c), k = cy[dep - 1];
		fsd[dep] = (int8_t)fs;
		if (k == -2)
			k = c >= 0x80 ? cv.k[SYM_U] : c >= 0x20 && c < 0x7F ? cv.k[c - 0x20] : -1;
		else if (k >= 0 && !sym_has(&cv.l[k], c >= 0x80 ? SYM_U : sym_ascii(c)))
			k = -1;
		if (fs < 0)
			k = -1;
		cy[dep] = (int8_t)k;
		if (k >= 0 && sym_within(&v->sub[i], &cv.l[k])) {
			i = f->nd[i].end; /* every token below is covered */
			continue;
		}
		i++;
	}
}

/* ---- mask cache: exact state -> allowed tokens (as a sorted id list or a
 * bitset), per grammar ---- */

#define CACHE_MAX_BYTES (16u << 20)

struct centry {
	uint64_t hash;
	uint8_t *key;
	uint32_t klen;
	int32_t count;
	uint32_t nids; /* ids stored, or UINT32_MAX: bitset */
	void *data;
};

struct mcache {
	struct centry *e;
	uint32_t cap, n;
	size_t bytes;
};

static void cache_free(struct aw_grammar *g)
{
	struct mcache *c = g->cache;
	if (!c)
		return;
	for (uint32_t i = 0; i < c->cap; i++)
		if (c->e[i].key) {
			free(c->e[i].key);
			free(c->e[i].data);
		}
	free(c->e);
	free(c);
	g->cache = NULL;
}

/* Serialise the current state (all stacks, all frames) as the cache key. */
static uint32_t state_key(struct aw_grammar_matcher *m, uint64_t *ret_hash)
{
	struct hist *h = cur(m);
	size_t need = 0;
	for (uint32_t i = 0; i < h->n; i++)
		for (const struct frame *f = m->stacks[h->soff + i]; f; f = f->up)
			need += 24;
	need += 8 * h->n + 16;
	if (need > m->keycap) {
		free(m->keybuf);
		m->keybuf = malloc(need);
		m->keycap = m->keybuf ? need : 0;
		if (!m->keybuf)
			return 0;
	}
	uint8_t *p = m->keybuf;
	memcpy(p, &m->v, sizeof(m->v));
	p[7] ^= (uint8_t)m->finish; /* pointers are aligned: the low byte's top bit is free */
	p += 8;
	for (uint32_t i = 0; i < h->n; i++) {
		for (const struct frame *f = m->stacks[h->soff + i]; f; f = f->up) {
			uint32_t b = f->b;
			if (f->ph == P_SBODY) {
				/* the count matters only against the bounds */
				const struct gnode *n =
					f->node == UINT32_MAX ? NULL : &m->g->nodes[f->node];
				/* free text: the count matters against lo, and against hi
				 * only within reach of one token (<= 255 bytes) */
				if (!n)
					b = 0;
				else if (n->dfa < 0 && b >= n->lo &&
					 (n->hi == UINT32_MAX || n->hi - b > 256))
					b = n->lo;
			}
			int64_t x = f->x;
			if (f->ph >= P_NSTART && f->ph <= P_NFRAC && f->node != UINT32_MAX) {
				/* a number without bounds in reach: the digits so far
				 * matter only by their count (ph tells a leading 0) */
				const struct gnode *n = &m->g->nodes[f->node];
				if (n->ilo <= -NUM_LIM && n->ihi >= NUM_LIM && n->dlo <= -1e15 &&
				    n->dhi >= 1e15)
					x = x != 0;
			}
			memcpy(p, &f->node, 4);
			p[4] = f->ph;
			p[5] = f->neg;
			memcpy(p + 6, &f->depth, 2);
			memcpy(p + 8, &f->a, 4);
			memcpy(p + 12, &b, 4);
			memcpy(p + 16, &x, 8);
			p += 24;
		}
		memset(p, 0xee, 8);
		p += 8;
	}
	uint32_t len = (uint32_t)(p - m->keybuf);
	uint64_t hv = 1469598103934665603ull;
	for (uint32_t i = 0; i < len; i++)
		hv = (hv ^ m->keybuf[i]) * 1099511628211ull;
	*ret_hash = hv;
	return len;
}

static int cache_get(struct aw_grammar_matcher *m, uint64_t hv, uint32_t klen, uint64_t *mask)
{
	struct aw_grammar *g = m->g;
	int r = -1;
	pthread_mutex_lock(&g->lock);
	struct mcache *c = g->cache;
	if (c) {
		for (uint32_t i = (uint32_t)hv & (c->cap - 1); c->e[i].key;
		     i = (i + 1) & (c->cap - 1)) {
			struct centry *e = &c->e[i];
			if (e->hash == hv && e->klen == klen && !memcmp(e->key, m->keybuf, klen)) {
				if (e->nids == UINT32_MAX) {
					memcpy(mask, e->data, m->v->words * sizeof(uint64_t));
				} else {
					memset(mask, 0, m->v->words * sizeof(uint64_t));
					const int32_t *ids = e->data;
					for (uint32_t k = 0; k < e->nids; k++)
						mask[ids[k] >> 6] |= 1ull << (ids[k] & 63);
				}
				r = e->count;
				break;
			}
		}
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}

static void cache_put(struct aw_grammar_matcher *m, uint64_t hv, uint32_t klen,
		      const uint64_t *mask, int count)
{
	struct aw_grammar *g = m->g;
	size_t words = m->v->words;
	int sparse = (size_t)count * 4 < words * 8;
	size_t dbytes = sparse ? (size_t)count * 4 : words * 8;
	pthread_mutex_lock(&g->lock);
	struct mcache *c = g->cache;
	if (!c) {
		c = g->cache = calloc(1, sizeof(*c));
		if (c) {
			c->cap = 1024;
			c->e = calloc(c->cap, sizeof(*c->e));
			if (!c->e) {
				free(c);
				c = g->cache = NULL;
			}
		}
	}
	if (!c || c->bytes + dbytes + klen > CACHE_MAX_BYTES)
		goto out;
	if ((c->n + 1) * 2 > c->cap) {
		uint32_t nc = c->cap * 2;
		struct centry *ne = calloc(nc, sizeof(*ne));
		if (!ne)
			goto out;
		for (uint32_t i = 0; i < c->cap; i++) {
			if (!c->e[i].key)
				continue;
			uint32_t k = (uint32_t)c->e[i].hash & (nc - 1);
			while (ne[k].key)
				k = (k + 1) & (nc - 1);
			ne[k] = c->e[i];
		}
		free(c->e);
		c->e = ne;
		c->cap = nc;
	}
	uint32_t i = (uint32_t)hv & (c->cap - 1);
	for (; c->e[i].key; i = (i + 1) & (c->cap - 1))
		if (c->e[i].hash == hv && c->e[i].klen == klen &&
		    !memcmp(c->e[i].key, m->keybuf, klen))
			goto out; /* another thread put it */
	struct centry e = {hv, malloc(klen), klen, count, 0, malloc(dbytes ? dbytes : 1)};
	if (!e.key || !e.data) {
		free(e.key);
		free(e.data);
		goto out;
	}
	memcpy(e.key, m->keybuf, klen);
	if (sparse) {
		int32_t *ids = e.data;
		uint32_t k = 0;
		for (size_t w = 0; w < words; w++)
			for (uint64_t x = mask[w]; x; x &= x - 1)
				ids[k++] = (int32_t)(w * 64 + (size_t)__builtin_ctzll(x));
		e.nids = k;
	} else {
		memcpy(e.data, mask, dbytes);
		e.nids = UINT32_MAX;
	}
	c->e[i] = e;
	c->n++;
	c->bytes += dbytes + klen;
out:
	pthread_mutex_unlock(&g->lock);
}

/* Characters a free string at FS_BASE may still take within one token. */
static uint32_t free_room(const struct aw_grammar_matcher *m, const struct frame *top)
{
	uint32_t hi = top->node == UINT32_MAX ? UINT32_MAX : m->g->nodes[top->node].hi;
	uint32_t lo = top->node == UINT32_MAX ? 0 : m->g->nodes[top->node].lo;
	uint32_t room = hi == UINT32_MAX ? PURE_MAX : hi - top->b;
	if (room > PURE_MAX)
		room = PURE_MAX;
	if (m->finish && top->b < lo && lo - top->b < room)
		room = lo - top->b; /* finishing: no further than the minimum */
	return room;
}

/* 1: every top is free string content at a character boundary with the same
 * bounds left; 2: every top is in the same pattern DFA state; 0: neither. */
static int string_kind(const struct aw_grammar_matcher *m, const struct frame *const *tops,
		       uint32_t n)
{
	const struct aw_grammar *g = m->g;
	const struct frame *t0 = tops[0];
	if (!n || t0->ph != P_SBODY)
		return 0;
	int32_t dfa = t0->node == UINT32_MAX ? -1 : g->nodes[t0->node].dfa;
	if (dfa < 0 && t0->a != FS_BASE)
		return 0;
	for (uint32_t i = 1; i < n; i++) {
		const struct frame *t = tops[i];
		if (t->ph != P_SBODY || t->a != t0->a)
			return 0;
		int32_t td = t->node == UINT32_MAX ? -1 : g->nodes[t->node].dfa;
		if (td != dfa)
			return 0;
		if (dfa < 0) {
			/* the same bounds from here on */
			uint32_t lo0 = t0->node == UINT32_MAX ? 0 : g->nodes[t0->node].lo;
			uint32_t hi0 = t0->node == UINT32_MAX ? UINT32_MAX : g->nodes[t0->node].hi;
			uint32_t lo = t->node == UINT32_MAX ? 0 : g->nodes[t->node].lo;
			uint32_t hi = t->node == UINT32_MAX ? UINT32_MAX : g->nodes[t->node].hi;
			uint32_t need0 = t0->b < lo0 ? lo0 - t0->b : 0;
			uint32_t need = t->b < lo ? lo - t->b : 0;
			uint32_t left0 = hi0 == UINT32_MAX ? UINT32_MAX : hi0 - t0->b;
			uint32_t left = hi == UINT32_MAX ? UINT32_MAX : hi - t->b;
			if (need != need0 || left != left0)
				return 0;
		}
	}
	return dfa < 0 ? 1 : 2;
}

/* Free string content (the tops in 'tops' share bounds and state, see
 * string_kind): plain tokens from the tables, the rest walked. Sets bits
 * in 'mask' without counting them. */
static void free_mask(struct aw_grammar_matcher *m, const struct frame *const *tops, uint32_t n,
		      uint64_t *mask)
{
	const struct aw_grammar_vocab *v = m->v;
	const struct frame *top = tops[0];
	uint32_t hi = top->node == UINT32_MAX ? UINT32_MAX : m->g->nodes[top->node].hi;
	uint32_t lo = top->node == UINT32_MAX ? 0 : m->g->nodes[top->node].lo;
	uint32_t room = free_room(m, top);
	int count = 0;
	if (!(m->finish && top->b >= lo)) {
		const uint64_t *le = v->le + (size_t)room * v->words;
		for (uint32_t w = 0; w < v->words; w++)
			mask[w] |= le[w];
	}
	m->nout = 0;
	m->nscr = 0;
	for (uint32_t i = 0; i < n; i++)
		emit(m, tops[i]);
	if (!m->finish && (hi == UINT32_MAX || hi - top->b > 255)) {
		/* no bound within a token's reach (<= 255 bytes) */
		for (uint32_t w = 0; w < v->words; w++)
			mask[w] |= v->qcontent[w];
		walk(m, &v->qclose, n, mask, &count, NULL);
	} else {
		walk(m, &v->quote, n, mask, &count, NULL);
	}
	/* content, closing quote, suffix: the suffix is checked once per
	 * distinct suffix from the states after the string closed */
	struct qrange q = {top->b < lo ? lo - top->b : 0,
			   hi == UINT32_MAX ? UINT32_MAX : hi - top->b};
	if (m->finish) {
		uint32_t lim = top->b < lo ? lo - top->b : 0;
		if (lim < q.kmax)
			q.kmax = lim;
	}
	if (q.kmin <= q.kmax) {
		m->nout = 0;
		m->nscr = 0;
		for (uint32_t i = 0; i < n; i++)
			done(m, tops[i], -1);
		uint32_t n0 = m->nout;
		if (n0 && v->g_empty != UINT32_MAX)
			set_group(v, v->g_empty, &q, mask, &count);
		if (n0)
			walk(m, &v->sfx, n0, mask, &count, &q);
	}
}

int aw_grammar_mask(struct aw_grammar_matcher *m, uint64_t *allowed)
{
	const struct aw_grammar_vocab *v = m->v;
	struct hist *h = cur(m);
	int count = 0;

	if (m->g->any_all) {
		memset(allowed, 0xff, v->words * sizeof(uint64_t));
		if (v->n_vocab % 64)
			allowed[v->words - 1] = (1ull << (v->n_vocab % 64)) - 1;
		return v->n_vocab;
	}
	memset(allowed, 0, v->words * sizeof(uint64_t));
	if (h->done)
		return 0;
	uint64_t hv = 0;
	uint32_t klen = state_key(m, &hv);
	if (klen) {
		int r = cache_get(m, hv, klen, allowed);
		if (r >= 0)
			return r;
	}
	m->nout = 0;
	m->nscr = 0;
	for (uint32_t i = 0; i < h->n; i++)
		emit(m, m->stacks[h->soff + i]);
	/* the tops of all stacks inside strings: the fast paths, once per group
	 * of tops in the same string state (their masks are united) */
	const struct frame *const *tops = &m->stacks[h->soff];
	const struct frame *grp[MAX_STACKS];
	uint8_t used[MAX_STACKS] = {0};
	int kind = h->n <= MAX_STACKS ? string_kind(m, tops, 1) : 0;
	for (uint32_t i = 1; kind && i < h->n; i++)
		if (!string_kind(m, tops + i, 1))
			kind = 0;
	if (kind) {
		for (uint32_t i = 0; i < h->n; i++) {
			if (used[i])
				continue;
			uint32_t ng = 0;
			for (uint32_t j = i; j < h->n; j++) {
				const struct frame *pair[2] = {tops[i], tops[j]};
				if (!used[j] && (j == i || string_kind(m, pair, 2))) {
					used[j] = 1;
					grp[ng++] = tops[j];
				}
			}
			if (string_kind(m, grp, 1) == 1)
				free_mask(m, grp, ng, allowed);
			else
				walk_dfa(m, grp, ng, allowed, &count);
		}
		count = 0; /* table bits were set uncounted */
		for (uint32_t w = 0; w < v->words; w++)
			count += __builtin_popcountll(allowed[w]);
	} else {
		walk(m, &v->all, h->n, allowed, &count, NULL);
	}
	if (state_can_end(m))
		for (uint32_t i = 0; i < v->neog; i++) {
			int32_t t = v->eog[i];
			if (!(allowed[t >> 6] & (1ull << (t & 63)))) {
				allowed[t >> 6] |= 1ull << (t & 63);
				count++;
			}
		}
	m->nout = 0;
	m->nscr = 0;
	if (klen)
		cache_put(m, hv, klen, allowed, count);
	return count;
}

/* ---- fast-forward --------------------------------------------------------------- */

int aw_grammar_forced_bytes(struct aw_grammar_matcher *m, char *out, size_t cap, size_t *ret_n)
{
	size_t n = 0;
	struct hist *h = cur(m);

	*ret_n = 0;
	if (m->g->any_all || h->done || state_can_end(m))
		return 0;
	m->nout = 0;
	m->nscr = 0;
	for (uint32_t i = 0; i < h->n; i++)
		emit(m, m->stacks[h->soff + i]);
	uint32_t s = 0, e = m->nout;
	while (n < cap) {
		int only = -1, many = 0;
		uint32_t ns = 0, ne = 0;
		for (int c = 0; c < 256 && !many; c++) {
			uint32_t mark = m->nout, scr = m->nscr;
			for (uint32_t i = s; i < e; i++)
				feed(m, m->out[i], c);
			if (m->nout > mark) {
				if (only >= 0) {
					many = 1;
				} else {
					only = c;
					ns = mark;
					ne = m->nout;
					continue; /* keep these frames */
				}
			}
			m->nout = mark;
			m->nscr = scr;
		}
		if (many || only < 0)
			break;
		/* the state after 'only' is out[ns..ne); can it end? */
		int can = 0;
		for (uint32_t i = ns; i < ne; i++)
			can |= stack_can_end(m->g, m->out[i]);
		out[n++] = (char)only;
		s = ns;
		e = ne;
		if (can)
			break;
	}
	m->nout = 0;
	m->nscr = 0;
	*ret_n = n;
	return 0;
}

int aw_grammar_forced(struct aw_grammar_matcher *m, int32_t *out, size_t cap, size_t *ret_n)
{
	char buf[256];
	size_t nb, n = 0;
	const struct aw_grammar_vocab *v = m->v;

	*ret_n = 0;
	aw_grammar_forced_bytes(m, buf, sizeof(buf), &nb);
	if (!nb)
		return 0;
	int32_t ids[256];
	size_t nid = 0;
	if (aw_tok_model(v->t) == AW_TOK_MODEL_BPE) {
		if (aw_tok_encode(v->t, buf, nb, 0, ids, 256, &nid) < 0)
			nid = 0;
	} else {
		/* greedy longest match over the trie */
		size_t pos = 0;
		while (pos < nb && nid < 256) {
			int32_t best = -1;
			size_t blen = 0;
			uint32_t i = 0;
			for (size_t d = 0; pos + d < nb && i < v->all.n;) {
				/* find child with byte buf[pos+d] at depth d+1 */
				while (i < v->all.n && v->all.nd[i].depth == d + 1 &&
				       v->all.nd[i].byte != (uint8_t)buf[pos + d])
					i = v->all.nd[i].end;
				if (i >= v->all.n || v->all.nd[i].depth != d + 1)
					break;
				d++;
				if (v->all.nd[i].tok >= 0) {
					best = v->all.nd[i].tok;
					blen = d;
				}
				i++;
			}
			if (best < 0)
				break;
			ids[nid++] = best;
			pos += blen;
		}
	}
	/* keep the tokens whose bytes are exactly the forced prefix, minus the
	 * last — unless nothing but EOS can follow the forced bytes (then no
	 * longer token can span past them) */
	size_t pos = 0, keep_last = 0;
	if (nid > 0 && nb < sizeof(buf) && aw_grammar_accept_bytes(m, buf, nb) == 0) {
		keep_last = (size_t)aw_grammar_done(m);
		aw_grammar_rollback(m, 1);
	}
	for (size_t i = 0; i + 1 - keep_last < nid && n < cap; i++) {
		uint32_t len = v->off[ids[i] + 1] - v->off[ids[i]];
		if (!len || pos + len > nb || memcmp(v->blob + v->off[ids[i]], buf + pos, len))
			break;
		out[n++] = ids[i];
		pos += len;
	}
	*ret_n = n;
	return 0;
}

int aw_grammar_done(struct aw_grammar_matcher *m)
{
	struct hist *h = cur(m);
	if (h->done)
		return 1;
	if (m->g->any_all)
		return 0;
	/* nothing but EOS: every stack is finished */
	for (uint32_t i = 0; i < h->n; i++)
		if (m->stacks[h->soff + i]->ph != P_DONE)
			return 0;
	return 1;
}

/* ---- sampler hook ------------------------------------------------------------------ */

static void hook_fill(void *ctx, uint64_t *allowed, int32_t n_vocab)
{
	struct aw_grammar_matcher *m = ctx;
	const struct aw_grammar_vocab *v = m->v;
	aw_grammar_mask(m, m->tmpmask);
	uint32_t words = (uint32_t)(n_vocab + 63) / 64;
	for (uint32_t w = 0; w < words; w++)
		allowed[w] &= w < v->words ? m->tmpmask[w] : 0;
}

static void hook_accept(void *ctx, int32_t token)
{
	aw_grammar_accept(ctx, token);
}

/* Fast-forward: the forced tokens, or an end-of-generation token when
 * nothing else may follow (not after one was accepted). */
static int32_t hook_forced(void *ctx, int32_t *out, int32_t cap)
{
	struct aw_grammar_matcher *m = ctx;
	size_t n = 0;

	if (cap <= 0)
		return 0;
	if (aw_grammar_done(m)) {
		if (cur(m)->done || !m->v->neog)
			return 0;
		out[0] = m->v->eog[0];
		return 1;
	}
	if (aw_grammar_forced(m, out, (size_t)cap, &n) < 0)
		return 0;
	return (int32_t)n;
}

void aw_grammar_sample_hook(struct aw_grammar_matcher *m, struct aw_sample_hook *h)
{
	h->fill = hook_fill;
	h->accept = hook_accept;
	h->ctx = m;
	h->forced = hook_forced;
}
