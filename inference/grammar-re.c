/* grammar-re.c — the regular expressions of JSON Schema `pattern` and
 * `format`, compiled to byte-level DFAs for the grammar matcher.
 *
 * A pattern is parsed by recursive descent straight into a Thompson NFA
 * whose transitions are 256-bit byte sets. A counted repeat x{n,m} is built
 * by parsing the atom's text again for every copy, so no syntax tree is
 * kept. The NFA becomes a DFA by subset construction over byte equivalence
 * classes, then (when the schema bounds the length) a product with a
 * character counter, and finally every state that cannot reach an accepting
 * state is dropped, so the matcher can never walk into a dead end. Both the
 * NFA and the DFA are capped; a pattern that needs more is refused, which is
 * how pathological patterns ((a|aa)*{1000}, (.*a){30}) fail fast.
 *
 * Characters a pattern can produce are limited to what a JSON string holds
 * without escapes: printable ASCII except '"' and '\\', and any non-ASCII
 * character as valid UTF-8. A pattern names a subset of the strings it
 * matches under JSON Schema's search semantics: the generated string
 * matches the whole pattern (^ and $ at the ends are accepted and implied).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammar-int.h"

#define NFA_MAX 20000 /* NFA states per pattern */

enum { NS_EPS, NS_SET, NS_MATCH };

struct nst {
	uint8_t kind;
	int32_t out, out2; /* EPS: both (or -1); SET: out */
	int32_t set;	   /* SET: index into sets */
};

struct bset {
	uint64_t w[4];
};

struct re {
	const char *p;
	size_t n, pos;
	struct nst *st;
	uint32_t nst, cap;
	struct bset *sets;
	uint32_t nsets, setcap;
	int nonascii_set[12]; /* cached single-range sets for UTF-8 sequences */
	struct aw_err *err;
	int ret;       /* first error */
	int grp_start; /* the group being opened starts the string */
};

struct frag {
	int32_t s, e;
};

static void bs_add(struct bset *b, unsigned lo, unsigned hi)
{
	for (unsigned c = lo; c <= hi; c++)
		b->w[c >> 6] |= 1ull << (c & 63);
}

static int bs_has(const struct bset *b, unsigned c)
{
	return (int)((b->w[c >> 6] >> (c & 63)) & 1);
}

static int fail(struct re *r, int code, const char *what)
{
	if (!r->ret)
		r->ret = aw_err_set(r->err, code, "pattern: %s at offset %zu", what, r->pos);
	return r->ret;
}

static int32_t nst_new(struct re *r, int kind, int32_t out, int32_t out2, int32_t set)
{
	if (r->ret)
		return -1;
	if (r->nst >= NFA_MAX) {
		fail(r, E2BIG, "too complex (NFA state limit)");
		return -1;
	}
	if (r->nst == r->cap) {
		uint32_t nc = r->cap ? r->cap * 2 : 256;
		struct nst *ns = realloc(r->st, nc * sizeof(*ns));
		if (!ns) {
			fail(r, ENOMEM, "out of memory");
			return -1;
		}
		r->st = ns;
		r->cap = nc;
	}
	r->st[r->nst] = (struct nst){(uint8_t)kind, out, out2, set};
	return (int32_t)r->nst++;
}

static int32_t set_new(struct re *r, const struct bset *b)
{
	if (r->ret)
		return -1;
	if (r->nsets == r->setcap) {
		uint32_t nc = r->setcap ? r->setcap * 2 : 64;
		struct bset *ns = realloc(r->sets, nc * sizeof(*ns));
		if (!ns) {
			fail(r, ENOMEM, "out of memory");
			return -1;
		}
		r->sets = ns;
		r->setcap = nc;
	}
	r->sets[r->nsets] = *b;
	return (int32_t)r->nsets++;
}

/* Fragment: one SET transition. */
static struct frag f_set(struct re *r, const struct bset *b)
{
	int32_t e = nst_new(r, NS_EPS, -1, -1, -1);
	int32_t si = set_new(r, b);
	int32_t s = nst_new(r, NS_SET, e, -1, si);
	return (struct frag){s, e};
}

static struct frag f_range(struct re *r, unsigned lo, unsigned hi)
{
	struct bset b = {{0}};
	bs_add(&b, lo, hi);
	return f_set(r, &b);
}

static struct frag f_cat(struct re *r, struct frag a, struct frag b)
{
	if (r->ret)
		return a;
	r->st[a.e].out = b.s;
	return (struct frag){a.s, b.e};
}

static struct frag f_alt(struct re *r, struct frag a, struct frag b)
{
	int32_t e = nst_new(r, NS_EPS, -1, -1, -1);
	int32_t s = nst_new(r, NS_EPS, a.s, b.s, -1);
	if (r->ret)
		return a;
	r->st[a.e].out = e;
	r->st[b.e].out = e;
	return (struct frag){s, e};
}

static struct frag f_empty(struct re *r)
{
	int32_t e = nst_new(r, NS_EPS, -1, -1, -1);
	return (struct frag){e, e};
}

static struct frag f_opt(struct re *r, struct frag a)
{
	int32_t e = nst_new(r, NS_EPS, -1, -1, -1);
	int32_t s = nst_new(r, NS_EPS, a.s, e, -1);
	if (r->ret)
		return a;
	r->st[a.e].out = e;
	return (struct frag){s, e};
}

static struct frag f_star(struct re *r, struct frag a)
{
	int32_t e = nst_new(r, NS_EPS, -1, -1, -1);
	int32_t s = nst_new(r, NS_EPS, a.s, e, -1);
	if (r->ret)
		return a;
	r->st[a.e].out = s;
	return (struct frag){s, e};
}

/* Any non-ASCII character, as valid UTF-8. */
static struct frag f_nonascii(struct re *r)
{
	static const uint8_t rows[][4][2] = {
		{{0xC2, 0xDF}, {0x80, 0xBF}, {0, 0}, {0, 0}},
		{{0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}, {0, 0}},
		{{0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
		{{0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}, {0, 0}},
		{{0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
		{{0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
		{{0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
		{{0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}},
	};
	struct frag all = {-1, -1};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct frag f = f_range(r, rows[i][0][0], rows[i][0][1]);
		for (int k = 1; k < 4 && rows[i][k][0]; k++)
			f = f_cat(r, f, f_range(r, rows[i][k][0], rows[i][k][1]));
		all = i ? f_alt(r, all, f) : f;
	}
	return all;
}

/* Printable ASCII a JSON string holds unescaped. */
static void safe_ascii(struct bset *b)
{
	bs_add(b, 0x20, 0x7E);
	b->w[0x22 >> 6] &= ~(1ull << (0x22 & 63));
	b->w[0x5C >> 6] &= ~(1ull << (0x5C & 63));
}

static void mask_safe(struct bset *b)
{
	struct bset s = {{0}};
	safe_ascii(&s);
	for (int i = 0; i < 4; i++)
		b->w[i] &= s.w[i];
}

/* A class escape (\d \w \s and negations) into 'b'; returns 1 when handled,
 * and sets *neg_nonascii when the class includes all non-ASCII. */
static int class_escape(int c, struct bset *b, int *nonascii)
{
	struct bset t = {{0}};
	int neg = 0;

	switch (c) {
	case 'D':
		neg = 1;
		__attribute__((fallthrough));
	case 'd':
		bs_add(&t, '0', '9');
		break;
	case 'W':
		neg = 1;
		__attribute__((fallthrough));
	case 'w':
		bs_add(&t, '0', '9');
		bs_add(&t, 'a', 'z');
		bs_add(&t, 'A', 'Z');
		bs_add(&t, '_', '_');
		break;
	case 'S':
		neg = 1;
		__attribute__((fallthrough));
	case 's':
		bs_add(&t, ' ', ' ');
		break;
	default:
		return 0;
	}
	if (neg) {
		struct bset s = {{0}};
		safe_ascii(&s);
		for (int i = 0; i < 4; i++)
			b->w[i] |= s.w[i] & ~t.w[i];
		*nonascii = 1;
	} else {
		for (int i = 0; i < 4; i++)
			b->w[i] |= t.w[i];
	}
	return 1;
}

/* A single-character escape's value, or -1. */
static int char_escape(struct re *r, int c)
{
	switch (c) {
	case 'n':
	case 'r':
	case 't':
	case 'f':
	case 'v':
	case '0':
		return 0x0A; /* control characters: never produced, fine to name */
	case 'x': {
		if (r->pos + 2 > r->n)
			return -2;
		int v = 0;
		for (int k = 0; k < 2; k++) {
			int h = r->p[r->pos++];
			v = v * 16 + (h >= '0' && h <= '9'		   ? h - '0'
				      : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10
									   : -1000);
		}
		return v < 0 ? -2 : v;
	}
	case 'u': {
		if (r->pos + 4 > r->n)
			return -2;
		int v = 0;
		for (int k = 0; k < 4; k++) {
			int h = r->p[r->pos++];
			v = v * 16 + (h >= '0' && h <= '9'		   ? h - '0'
				      : (h | 32) >= 'a' && (h | 32) <= 'f' ? (h | 32) - 'a' + 10
									   : -100000);
		}
		if (v < 0)
			return -2;
		return v < 0x80 ? v : -3;
	}
	default:
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			return -3; /* \b, \B, \1, \p ...: unsupported */
		return c;	   /* escaped punctuation */
	}
}

static struct frag parse_alt(struct re *r, int depth, int start);

/* A bracket class after '['. */
static struct frag parse_class(struct re *r)
{
	struct bset b = {{0}};
	int neg = 0, nonascii = 0, first = 1;

	if (r->pos < r->n && r->p[r->pos] == '^') {
		neg = 1;
		r->pos++;
	}
	for (;;) {
		if (r->pos >= r->n) {
			fail(r, ENOTSUP, "unterminated class");
			return f_empty(r);
		}
		unsigned c = (unsigned char)r->p[r->pos++];
		if (c == ']' && !first)
			break;
		first = 0;
		int lo;
		if (c == '\\') {
			if (r->pos >= r->n) {
				fail(r, ENOTSUP, "trailing backslash");
				return f_empty(r);
			}
			int e = (unsigned char)r->p[r->pos++];
			if (class_escape(e, &b, &nonascii))
				continue;
			if (e == 'b')
				e = 0x08, lo = 0x08;
			else
				lo = char_escape(r, e);
			if (lo < 0) {
				fail(r, ENOTSUP, "unsupported escape in class");
				return f_empty(r);
			}
		} else if (c >= 0x80) {
			fail(r, ENOTSUP, "non-ASCII character in a class");
			return f_empty(r);
		} else {
			lo = (int)c;
		}
		int hi = lo;
		if (r->pos + 1 < r->n && r->p[r->pos] == '-' && r->p[r->pos + 1] != ']') {
			r->pos++;
			unsigned d = (unsigned char)r->p[r->pos++];
			if (d == '\\') {
				if (r->pos >= r->n) {
					fail(r, ENOTSUP, "trailing backslash");
					return f_empty(r);
				}
				hi = char_escape(r, (unsigned char)r->p[r->pos++]);
			} else {
				hi = d >= 0x80 ? -3 : (int)d;
			}
			if (hi < 0) {
				fail(r, ENOTSUP, "unsupported class range end");
				return f_empty(r);
			}
			if (hi < lo) {
				fail(r, ENOTSUP, "class range out of order");
				return f_empty(r);
			}
		}
		bs_add(&b, (unsigned)lo, (unsigned)hi);
	}
	if (neg) {
		struct bset s = {{0}};
		safe_ascii(&s);
		for (int i = 0; i < 4; i++)
			b.w[i] = s.w[i] & ~b.w[i];
		nonascii = !nonascii;
	} else {
		mask_safe(&b);
	}
	int any = 0;
	for (int i = 0; i < 4; i++)
		any |= b.w[i] != 0;
	if (any && nonascii)
		return f_alt(r, f_set(r, &b), f_nonascii(r));
	if (nonascii)
		return f_nonascii(r);
	return f_set(r, &b); /* possibly empty: matches nothing */
}

static struct frag parse_atom(struct re *r, int depth)
{
	unsigned c = (unsigned char)r->p[r->pos++];
	struct bset b = {{0}};

	switch (c) {
	case '(': {
		if (r->pos < r->n && r->p[r->pos] == '?') {
			if (r->pos + 1 < r->n && r->p[r->pos + 1] == ':') {
				r->pos += 2;
			} else if (r->pos + 1 < r->n && r->p[r->pos + 1] == '<' &&
				   r->pos + 2 < r->n && r->p[r->pos + 2] != '=' &&
				   r->p[r->pos + 2] != '!') {
				const char *gt = memchr(r->p + r->pos, '>', r->n - r->pos);
				if (!gt) {
					fail(r, ENOTSUP, "bad group name");
					return f_empty(r);
				}
				r->pos = (size_t)(gt - r->p) + 1;
			} else {
				fail(r, ENOTSUP, "lookaround or group flag");
				return f_empty(r);
			}
		}
		int start = r->grp_start;
		r->grp_start = 0;
		struct frag f = parse_alt(r, depth + 1, start);
		if (r->pos >= r->n || r->p[r->pos] != ')') {
			fail(r, ENOTSUP, "unbalanced parenthesis");
			return f;
		}
		r->pos++;
		return f;
	}
	case '[':
		return parse_class(r);
	case '.':
		safe_ascii(&b);
		return f_alt(r, f_set(r, &b), f_nonascii(r));
	case '\\': {
		if (r->pos >= r->n) {
			fail(r, ENOTSUP, "trailing backslash");
			return f_empty(r);
		}
		int e = (unsigned char)r->p[r->pos++];
		int nonascii = 0;
		if (class_escape(e, &b, &nonascii)) {
			mask_safe(&b);
			return nonascii ? f_alt(r, f_set(r, &b), f_nonascii(r)) : f_set(r, &b);
		}
		int v = char_escape(r, e);
		if (v < 0) {
			fail(r, ENOTSUP,
			     "unsupported escape (\\b, backreference, \\p or non-ASCII)");
			return f_empty(r);
		}
		bs_add(&b, (unsigned)v, (unsigned)v);
		mask_safe(&b);
		return f_set(r, &b);
	}
	case '^':
	case '$':
		fail(r, ENOTSUP, "anchor inside the pattern");
		return f_empty(r);
	case '*':
	case '+':
	case '?':
	case '{':
		if (c == '{' && !(r->pos < r->n && r->p[r->pos] >= '0' && r->p[r->pos] <= '9')) {
			bs_add(&b, c, c);
			return f_set(r, &b);
		}
		fail(r, ENOTSUP, "nothing to repeat");
		return f_empty(r);
	default:
		if (c < 0x80) {
			bs_add(&b, c, c);
			mask_safe(&b);
			return f_set(r, &b);
		}
		/* a literal UTF-8 character: its bytes in sequence */
		{
			int nb = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
			if (!nb || r->pos + (size_t)nb - 1 > r->n) {
				fail(r, ENOTSUP, "invalid UTF-8");
				return f_empty(r);
			}
			struct frag f = f_range(r, c, c);
			for (int k = 1; k < nb; k++) {
				unsigned d = (unsigned char)r->p[r->pos++];
				if ((d & 0xC0) != 0x80) {
					fail(r, ENOTSUP, "invalid UTF-8");
					return f;
				}
				f = f_cat(r, f, f_range(r, d, d));
			}
			return f;
		}
	}
}

static int parse_count(struct re *r, long *ret)
{
	long v = 0;
	size_t p0 = r->pos;
	while (r->pos < r->n && r->p[r->pos] >= '0' && r->p[r->pos] <= '9') {
		v = v * 10 + (r->p[r->pos++] - '0');
		if (v > 100000)
			return -1;
	}
	if (r->pos == p0)
		return -1;
	*ret = v;
	return 0;
}

/* Does p[a..b) hold an anchor outside classes and escapes? */
static int has_anchor(const struct re *r, size_t a, size_t b)
{
	int cls = 0;
	for (size_t i = a; i < b; i++) {
		char ch = r->p[i];
		if (ch == '\\') {
			i++;
			continue;
		}
		if (cls) {
			if (ch == ']')
				cls = 0;
			continue;
		}
		if (ch == '[') {
			cls = 1;
			if (i + 1 < b && r->p[i + 1] == ']')
				i++;
			continue;
		}
		if (ch == '^' || ch == '$')
			return 1;
	}
	return 0;
}

static struct frag parse_repeat(struct re *r, int depth)
{
	size_t a0 = r->pos;
	struct frag f = parse_atom(r, depth);
	size_t a1 = r->pos;
	long lo, hi;

	if (r->ret || r->pos >= r->n)
		return f;
	char q = r->p[r->pos];
	if (q == '*' || q == '+' || q == '?') {
		lo = q == '+' ? 1 : 0;
		hi = q == '?' ? 1 : -1;
		r->pos++;
	} else if (q == '{' && r->pos + 1 < r->n && r->p[r->pos + 1] >= '0' &&
		   r->p[r->pos + 1] <= '9') {
		r->pos++;
		if (parse_count(r, &lo) < 0) {
			fail(r, E2BIG, "repeat count too large");
			return f;
		}
		hi = lo;
		if (r->pos < r->n && r->p[r->pos] == ',') {
			r->pos++;
			if (r->pos < r->n && r->p[r->pos] == '}')
				hi = -1;
			else if (parse_count(r, &hi) < 0 || hi < lo) {
				fail(r, E2BIG, "bad repeat count");
				return f;
			}
		}
		if (r->pos >= r->n || r->p[r->pos] != '}') {
			fail(r, ENOTSUP, "bad repeat");
			return f;
		}
		r->pos++;
	} else {
		return f;
	}
	if (has_anchor(r, a0, a1)) {
		fail(r, ENOTSUP, "anchor in a repeated group");
		return f;
	}
	if (r->pos < r->n && r->p[r->pos] == '?')
		r->pos++; /* lazy: same language */
	if (r->pos < r->n && (r->p[r->pos] == '*' || r->p[r->pos] == '+' || r->p[r->pos] == '{')) {
		if (r->p[r->pos] != '{' ||
		    (r->pos + 1 < r->n && r->p[r->pos + 1] >= '0' && r->p[r->pos + 1] <= '9')) {
			fail(r, ENOTSUP, "nested quantifier");
			return f;
		}
	}
	size_t after = r->pos;
	/* copies: the first is f; re-parse the atom for each further one */
	struct frag out;
	long copies = hi < 0 ? (lo > 0 ? lo : 1) : hi;
	if (copies == 0) {
		r->pos = after;
		return f_empty(r);
	}
	if (copies * (long)(a1 - a0 + 1) > NFA_MAX) {
		fail(r, E2BIG, "too complex (repeat)");
		return f;
	}
	out = f_empty(r);
	for (long i = 0; i < copies && !r->ret; i++) {
		struct frag c;
		if (i == 0) {
			c = f;
		} else {
			r->pos = a0;
			r->grp_start = 0; /* later copies never start the string */
			c = parse_atom(r, depth);
		}
		if (hi < 0 && i == copies - 1) {
			if (lo == 0) {
				c = f_star(r, c);
			} else {
				r->pos = a0;
				r->grp_start = 0;
				struct frag x = parse_atom(r, depth);
				c = f_cat(r, c, f_star(r, x));
			}
		} else if (i >= lo)
			c = f_opt(r, c);
		out = f_cat(r, out, c);
	}
	r->pos = after;
	return out;
}

/* Only ')' left after position i: the string ends there. */
static int only_closers(const struct re *r, size_t i)
{
	for (; i < r->n; i++)
		if (r->p[i] != ')')
			return 0;
	return 1;
}

/* 'start': this sequence begins at the start of the string, so '^' in
 * front of its first atom is empty; '$' is accepted where the string ends
 * (only ')' follow, or '|' at the top level). Elsewhere anchors are
 * refused: the whole-match generator could not honour them. */
static struct frag parse_concat(struct re *r, int depth, int start)
{
	struct frag f = f_empty(r);
	while (!r->ret && r->pos < r->n && r->p[r->pos] != '|' && r->p[r->pos] != ')') {
		if (r->p[r->pos] == '^') {
			if (!start) {
				fail(r, ENOTSUP, "anchor inside the pattern");
				break;
			}
			r->pos++;
			continue;
		}
		if (r->p[r->pos] == '$') {
			size_t nx = r->pos + 1;
			if (!(only_closers(r, nx) ||
			      (depth == 0 && nx < r->n && r->p[nx] == '|'))) {
				fail(r, ENOTSUP, "anchor inside the pattern");
				break;
			}
			r->pos++;
			continue;
		}
		r->grp_start = start;
		f = f_cat(r, f, parse_repeat(r, depth));
		r->grp_start = 0;
		start = 0;
	}
	return f;
}

static struct frag parse_alt(struct re *r, int depth, int start)
{
	if (depth > 100) {
		fail(r, E2BIG, "too deeply nested");
		return f_empty(r);
	}
	struct frag f = parse_concat(r, depth, start);
	while (!r->ret && r->pos < r->n && r->p[r->pos] == '|') {
		r->pos++;
		f = f_alt(r, f, parse_concat(r, depth, start));
	}
	return f;
}

/* ---- subset construction ---- */

struct sset {
	uint32_t off, n; /* NFA states in 'pool' */
	uint64_t hash;
};

struct dbuild {
	struct re *r;
	uint32_t *pool;
	size_t npool, poolcap;
	struct sset *sets;
	uint32_t nsets, setcap;
	int32_t *ht; /* hash table of set indices, -1 empty */
	uint32_t htcap;
	uint32_t *stamp, cur;
	uint32_t *stack;
};

static uint64_t hash_ids(const uint32_t *v, uint32_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ v[i]) * 1099511628211ull;
	return h ^ n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Epsilon closure of the states appended at pool[from..npool): keeps the
 * SET and MATCH states only (EPS states carry no information). */
static void closure(struct dbuild *d, const uint32_t *seed, uint32_t nseed, uint32_t **ret,
		    uint32_t *ret_n, uint32_t *scratch)
{
	uint32_t sp = 0, n = 0;
	d->cur++;
	for (uint32_t i = 0; i < nseed; i++)
		if (d->stamp[seed[i]] != d->cur) {
			d->stamp[seed[i]] = d->cur;
			d->stack[sp++] = seed[i];
		}
	while (sp) {
		uint32_t s = d->stack[--sp];
		const struct nst *x = &d->r->st[s];
		if (x->kind == NS_EPS) {
			if (x->out >= 0 && d->stamp[x->out] != d->cur) {
				d->stamp[x->out] = d->cur;
				d->stack[sp++] = (uint32_t)x->out;
			}
			if (x->out2 >= 0 && d->stamp[x->out2] != d->cur) {
				d->stamp[x->out2] = d->cur;
				d->stack[sp++] = (uint32_t)x->out2;
			}
		} else {
			scratch[n++] = s;
		}
	}
	qsort(scratch, n, sizeof(*scratch), cmp_u32);
	*ret = scratch;
	*ret_n = n;
}

/* Find or add the set; returns its index, or -1 on a limit/ENOMEM. */
static int32_t sset_intern(struct dbuild *d, const uint32_t *v, uint32_t n, uint32_t max)
{
	uint64_t h = hash_ids(v, n);
	uint32_t i = (uint32_t)h & (d->htcap - 1);
	for (; d->ht[i] >= 0; i = (i + 1) & (d->htcap - 1)) {
		struct sset *s = &d->sets[d->ht[i]];
		if (s->hash == h && s->n == n && !memcmp(d->pool + s->off, v, n * sizeof(*v)))
			return d->ht[i];
	}
	if (d->nsets >= max)
		return -2;
	if (d->nsets == d->setcap) {
		uint32_t nc = d->setcap * 2;
		struct sset *ns = realloc(d->sets, nc * sizeof(*ns));
		if (!ns)
			return -1;
		d->sets = ns;
		d->setcap = nc;
	}
	if (d->npool + n > d->poolcap) {
		size_t nc = (d->poolcap + n) * 2;
		uint32_t *np = realloc(d->pool, nc * sizeof(*np));
		if (!np)
			return -1;
		d->pool = np;
		d->poolcap = nc;
	}
	memcpy(d->pool + d->npool, v, n * sizeof(*v));
	d->sets[d->nsets] = (struct sset){(uint32_t)d->npool, n, h};
	d->npool += n;
	d->ht[i] = (int32_t)d->nsets;
	return (int32_t)d->nsets++;
}

void aw_gdfa_fini(struct aw_gdfa *d)
{
	if (!d)
		return;
	free(d->next);
	free(d->accept);
	free(d->dist);
	d->next = NULL;
	d->accept = NULL;
	d->dist = NULL;
	d->n = 0;
}

/* Keep the states that can reach an accepting one; renumber. */
static int prune(struct aw_gdfa *d, struct aw_err *err)
{
	uint32_t n = d->n;
	uint8_t *live = calloc(n ? n : 1, 1);
	int32_t *map = malloc((n ? n : 1) * sizeof(*map));
	if (!live || !map) {
		free(live);
		free(map);
		return aw_err_set(err, ENOMEM, "pattern: out of memory");
	}
	for (uint32_t s = 0; s < n; s++)
		live[s] = d->accept[s];
	for (int changed = 1; changed;) {
		changed = 0;
		for (uint32_t s = 0; s < n; s++) {
			if (live[s])
				continue;
			for (int b = 0; b < 256; b++) {
				int32_t t = d->next[(size_t)s * 256 + b];
				if (t >= 0 && live[t]) {
					live[s] = 1;
					changed = 1;
					break;
				}
			}
		}
	}
	if (!n || !live[0]) {
		free(live);
		free(map);
		return aw_err_set(err, EINVAL, "pattern: no string satisfies it");
	}
	uint32_t k = 0;
	for (uint32_t s = 0; s < n; s++)
		map[s] = live[s] ? (int32_t)k++ : -1;
	for (uint32_t s = 0; s < n; s++) {
		if (!live[s])
			continue;
		uint32_t ns = (uint32_t)map[s];
		for (int b = 0; b < 256; b++) {
			int32_t t = d->next[(size_t)s * 256 + b];
			d->next[(size_t)ns * 256 + b] = t >= 0 ? map[t] : -1;
		}
		d->accept[ns] = d->accept[s];
	}
	d->n = k;
	free(live);
	free(map);
	return 0;
}

/* Product with a character counter: length in [lo, hi] characters. */
static int with_length(struct aw_gdfa *d, uint32_t lo, uint32_t hi, uint32_t max_states,
		       struct aw_err *err)
{
	uint32_t cap = hi != UINT32_MAX ? hi : lo; /* counter saturates at cap when unbounded */
	uint64_t space = (uint64_t)d->n * (cap + 1);
	if (space > 50u * 1000 * 1000)
		return aw_err_set(err, E2BIG, "pattern with length bounds: too many states");
	int32_t *id = malloc(space * sizeof(*id));
	uint32_t *q = malloc((size_t)max_states * 2 * sizeof(*q));
	int32_t *next = malloc((size_t)max_states * 256 * sizeof(*next));
	uint8_t *acc = malloc(max_states);
	if (!id || !q || !next || !acc) {
		free(id);
		free(q);
		free(next);
		free(acc);
		return aw_err_set(err, ENOMEM, "pattern: out of memory");
	}
	memset(id, 0xff, space * sizeof(*id));
	uint32_t n = 0, head = 0;
	id[0] = 0;
	q[0] = 0;
	q[1] = 0;
	n = 1;
	while (head < n) {
		uint32_t s = q[head * 2], c = q[head * 2 + 1];
		acc[head] = d->accept[s] && c >= lo;
		for (int b = 0; b < 256; b++) {
			int32_t t = d->next[(size_t)s * 256 + b];
			int32_t r = -1;
			if (t >= 0) {
				uint32_t c2 = c + ((b & 0xC0) != 0x80);
				if (c2 > cap) {
					if (hi != UINT32_MAX)
						t = -1;
					c2 = cap;
				}
				if (t >= 0) {
					uint64_t k = (uint64_t)t * (cap + 1) + c2;
					if (id[k] < 0) {
						if (n >= max_states) {
							free(id);
							free(q);
							free(next);
							free(acc);
							return aw_err_set(
								err, E2BIG,
								"pattern with length bounds: "
								"more than %u DFA states",
								max_states);
						}
						id[k] = (int32_t)n;
						q[n * 2] = (uint32_t)t;
						q[n * 2 + 1] = c2;
						n++;
					}
					r = id[k];
				}
			}
			next[(size_t)head * 256 + b] = r;
		}
		head++;
	}
	free(id);
	free(q);
	free(d->next);
	free(d->accept);
	d->next = next;
	d->accept = acc;
	d->n = n;
	return 0;
}

int aw_gdfa_compile(const char *pattern, size_t len, uint32_t min_len, uint32_t max_len,
		    uint32_t max_states, long max_us, struct aw_gdfa *ret, struct aw_err *err)
{
	struct re r = {.p = pattern, .n = len, .err = err};
	struct dbuild d = {.r = &r};
	struct aw_gdfa dfa = {0};
	uint32_t *scratch = NULL, *tgt = NULL, *setcls_off = NULL, tgtcap = 0;
	uint8_t *setcls = NULL;
	struct timespec t0;
	int rc = 0;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);

	/* 1. parse into an NFA; ^ and $ at the ends are implied */
	if (r.n && r.p[0] == '^')
		r.pos = 1;
	struct frag f = parse_alt(&r, 0, 1);
	if (!r.ret && r.pos < r.n)
		fail(&r, ENOTSUP, "unbalanced parenthesis");
	int32_t m = nst_new(&r, NS_MATCH, -1, -1, -1);
	if (r.ret) {
		rc = r.ret;
		goto out;
	}
	r.st[f.e].out = m;

	/* 2. byte equivalence classes over all the sets */
	uint8_t cls[256] = {0};
	int ncls = 1;
	for (uint32_t i = 0; i < r.nsets; i++) {
		int map[512];
		memset(map, -1, sizeof(map));
		int nn = 0;
		uint8_t nc[256];
		for (int b = 0; b < 256; b++) {
			int key = cls[b] * 2 + bs_has(&r.sets[i], (unsigned)b);
			if (map[key] < 0)
				map[key] = nn++;
			nc[b] = (uint8_t)map[key];
		}
		memcpy(cls, nc, sizeof(cls));
		ncls = nn;
	}
	int rep[256];
	for (int c = 0; c < ncls; c++)
		rep[c] = -1;
	for (int b = 0; b < 256; b++)
		if (rep[cls[b]] < 0)
			rep[cls[b]] = b;

	/* 3. subset construction */
	d.stamp = calloc(r.nst, sizeof(*d.stamp));
	d.stack = malloc(r.nst * sizeof(*d.stack));
	scratch = malloc(r.nst * sizeof(*scratch));
	tgtcap = r.nst;
	tgt = malloc(tgtcap * sizeof(*tgt));
	d.setcap = 64;
	d.sets = malloc(d.setcap * sizeof(*d.sets));
	d.htcap = 1;
	while (d.htcap < max_states * 2)
		d.htcap <<= 1;
	d.ht = malloc(d.htcap * sizeof(*d.ht));
	dfa.next = malloc((size_t)max_states * 256 * sizeof(*dfa.next));
	dfa.accept = calloc(max_states, 1);
	if (!d.stamp || !d.stack || !scratch || !tgt || !d.sets || !d.ht || !dfa.next ||
	    !dfa.accept) {
		rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
		goto out;
	}
	memset(d.ht, 0xff, d.htcap * sizeof(*d.ht));
	{
		uint32_t *v, nv, start = (uint32_t)f.s;
		closure(&d, &start, 1, &v, &nv, scratch);
		if (sset_intern(&d, v, nv, max_states) < 0) {
			rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
			goto out;
		}
	}
	/* the classes each byte set holds, once */
	setcls_off = malloc((r.nsets + 1) * sizeof(*setcls_off));
	setcls = malloc(((size_t)r.nsets * (size_t)ncls + 1) * sizeof(*setcls));
	if (!setcls_off || !setcls) {
		rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
		goto out;
	}
	{
		uint32_t k = 0;
		for (uint32_t i = 0; i < r.nsets; i++) {
			setcls_off[i] = k;
			for (int c = 0; c < ncls; c++)
				if (bs_has(&r.sets[i], (unsigned)rep[c]))
					setcls[k++] = (uint8_t)c;
		}
		setcls_off[r.nsets] = k;
	}
	for (uint32_t s = 0; s < d.nsets; s++) {
		int32_t row[256];
		uint32_t cnt[257] = {0};
		if ((s & 15) == 0) {
			struct timespec t;
			clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
			if ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 >
			    max_us) {
				rc = aw_err_set(err, E2BIG, "pattern: DFA construction over %ld us",
						max_us);
				goto out;
			}
		}
		/* targets bucketed by class: one pass over the NFA states */
		uint32_t total = 0;
		for (uint32_t k = 0; k < d.sets[s].n; k++) {
			const struct nst *x = &r.st[d.pool[d.sets[s].off + k]];
			if (x->kind == NS_MATCH)
				dfa.accept[s] = 1;
			else if (x->kind == NS_SET)
				for (uint32_t q = setcls_off[x->set]; q < setcls_off[x->set + 1];
				     q++) {
					cnt[setcls[q] + 1]++;
					total++;
				}
		}
		if (total > tgtcap) {
			free(tgt);
			tgtcap = total * 2;
			tgt = malloc(tgtcap * sizeof(*tgt));
			if (!tgt) {
				rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
				goto out;
			}
		}
		for (int c = 0; c < ncls; c++)
			cnt[c + 1] += cnt[c];
		uint32_t fill[256];
		memcpy(fill, cnt, sizeof(fill));
		for (uint32_t k = 0; k < d.sets[s].n; k++) {
			const struct nst *x = &r.st[d.pool[d.sets[s].off + k]];
			if (x->kind == NS_SET)
				for (uint32_t q = setcls_off[x->set]; q < setcls_off[x->set + 1];
				     q++)
					tgt[fill[setcls[q]]++] = (uint32_t)x->out;
		}
		for (int c = 0; c < ncls; c++) {
			uint32_t nt = cnt[c + 1] - cnt[c];
			int32_t t = -1;
			if (nt) {
				uint32_t *v, nv;
				closure(&d, tgt + cnt[c], nt, &v, &nv, scratch);
				t = sset_intern(&d, v, nv, max_states);
				if (t == -2) {
					rc = aw_err_set(err, E2BIG,
							"pattern: more than %u DFA states",
							max_states);
					goto out;
				}
				if (t < 0) {
					rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
					goto out;
				}
			}
			row[c] = t;
		}
		for (int b = 0; b < 256; b++)
			dfa.next[(size_t)s * 256 + b] = row[cls[b]];
	}
	dfa.n = d.nsets;

	/* 4. length bounds, then drop dead states */
	if (min_len > 0 || max_len != UINT32_MAX) {
		if ((rc = prune(&dfa, err)) < 0)
			goto out;
		if ((rc = with_length(&dfa, min_len, max_len, max_states, err)) < 0)
			goto out;
	}
	if ((rc = prune(&dfa, err)) < 0)
		goto out;
	/* 5. distance to acceptance (for finishing), by relaxation */
	dfa.dist = malloc(dfa.n * sizeof(*dfa.dist));
	if (!dfa.dist) {
		rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
		goto out;
	}
	{
		/* BFS from the accepting states over reversed edges (CSR) */
		uint32_t n = dfa.n;
		uint32_t *cnt = calloc((size_t)n + 1, sizeof(*cnt));
		uint32_t *src = malloc((size_t)n * 256 * sizeof(*src));
		uint32_t *q = malloc((size_t)n * sizeof(*q));
		if (!cnt || !src || !q) {
			free(cnt);
			free(src);
			free(q);
			rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
			goto out;
		}
		for (size_t e = 0; e < (size_t)n * 256; e++)
			if (dfa.next[e] >= 0)
				cnt[dfa.next[e] + 1]++;
		for (uint32_t s = 0; s < n; s++)
			cnt[s + 1] += cnt[s];
		uint32_t *fill = malloc((size_t)n * sizeof(*fill));
		if (!fill) {
			free(cnt);
			free(src);
			free(q);
			rc = aw_err_set(err, ENOMEM, "pattern: out of memory");
			goto out;
		}
		memcpy(fill, cnt, (size_t)n * sizeof(*fill));
		for (size_t e = 0; e < (size_t)n * 256; e++)
			if (dfa.next[e] >= 0)
				src[fill[dfa.next[e]]++] = (uint32_t)(e / 256);
		uint32_t head = 0, tail = 0;
		for (uint32_t s = 0; s < n; s++) {
			dfa.dist[s] = dfa.accept[s] ? 0 : UINT32_MAX;
			if (dfa.accept[s])
				q[tail++] = s;
		}
		while (head < tail) {
			uint32_t t = q[head++];
			for (uint32_t k = cnt[t]; k < cnt[t + 1]; k++) {
				uint32_t s = src[k];
				if (dfa.dist[s] == UINT32_MAX) {
					dfa.dist[s] = dfa.dist[t] + 1;
					q[tail++] = s;
				}
			}
		}
		free(cnt);
		free(src);
		free(q);
		free(fill);
	}
	*ret = dfa;
	dfa.next = NULL;
	dfa.accept = NULL;
	dfa.dist = NULL;
out:
	aw_gdfa_fini(&dfa);
	free(r.st);
	free(r.sets);
	free(d.pool);
	free(d.sets);
	free(d.ht);
	free(d.stamp);
	free(d.stack);
	free(scratch);
	free(tgt);
	free(setcls);
	free(setcls_off);
	return rc;
}
