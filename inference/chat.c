/* chat.c — JSON reader/writer and per-family chat-template renderers.
 * See chat.h. Each renderer is a transcription of its family's Jinja
 * template; comments quote the template where the behaviour is surprising. */
#include "chat.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

/* ---- buffer ----------------------------------------------------------------- */

static int buf_put(struct aw_chat_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_puts(struct aw_chat_buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

/* ---- JSON parser ------------------------------------------------------------- */

struct jp {
	const char *s;
	size_t n, i;
	struct aw_err *err;
};

static int jp_fail(struct jp *p, const char *what)
{
	return aw_err_set(p->err, EBADMSG, "json: %s at offset %zu", what, p->i);
}

static void jp_ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
			       p->s[p->i] == '\r'))
		p->i++;
}

void aw_json_free(struct aw_json *j)
{
	if (!j)
		return;
	if (j->type == AW_JSON_ARRAY || j->type == AW_JSON_OBJECT) {
		for (size_t k = 0; k < j->len; k++) {
			aw_json_free(j->items[k]);
			if (j->keys)
				free(j->keys[k]);
		}
	}
	free(j->items);
	free(j->keys);
	free(j->key_lens);
	free(j->str);
	free(j);
}

static int put_utf8(struct aw_chat_buf *b, uint32_t c)
{
	char u[4];
	size_t n;

	if (c < 0x80) {
		u[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		u[0] = (char)(0xc0 | (c >> 6));
		u[1] = (char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		u[0] = (char)(0xe0 | (c >> 12));
		u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[2] = (char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (c >> 18));
		u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		u[3] = (char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return buf_put(b, u, n);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	uint32_t c;
	size_t k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		k = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		k = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		k = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((k == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (k == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return k;
}

static int jp_hex4(struct jp *p, uint32_t *ret)
{
	uint32_t v = 0;

	if (p->n - p->i < 4)
		return jp_fail(p, "short \\u escape");
	for (int k = 0; k < 4; k++) {
		char c = p->s[p->i++];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return jp_fail(p, "bad \\u escape");
	}
	*ret = v;
	return 0;
}

/* Parse a string at p->i (which is at '"'); result in b. */
static int jp_string(struct jp *p, struct aw_chat_buf *b)
{
	int r;

	p->i++;
	for (;;) {
		unsigned char c;

		if (p->i >= p->n)
			return jp_fail(p, "unterminated string");
		c = (unsigned char)p->s[p->i];
		if (c == '"') {
			p->i++;
			return buf_put(b, "", 0);
		}
		if (c < 0x20)
			return jp_fail(p, "control character in string");
		if (c == '\\') {
			uint32_t u;
			char e;

			if (++p->i >= p->n)
				return jp_fail(p, "unterminated escape");
			e = p->s[p->i++];
			switch (e) {
			case '"':
				r = buf_put(b, "\"", 1);
				break;
			case '\\':
				r = buf_put(b, "\\", 1);
				break;
			case '/':
				r = buf_put(b, "/", 1);
				break;
			case 'b':
				r = buf_put(b, "\b", 1);
				break;
			case 'f':
				r = buf_put(b, "\f", 1);
				break;
			case 'n':
				r = buf_put(b, "\n", 1);
				break;
			case 'r':
				r = buf_put(b, "\r", 1);
				break;
			case 't':
				r = buf_put(b, "\t", 1);
				break;
			case 'u':
				if ((r = jp_hex4(p, &u)) < 0)
					return r;
				if (u >= 0xd800 && u <= 0xdbff) {
					uint32_t lo;

					if (p->n - p->i < 2 || p->s[p->i] != '\\' ||
					    p->s[p->i + 1] != 'u')
						return jp_fail(p, "lone surrogate");
					p->i += 2;
					if ((r = jp_hex4(p, &lo)) < 0)
						return r;
					if (lo < 0xdc00 || lo > 0xdfff)
						return jp_fail(p, "lone surrogate");
					u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
				} else if (u >= 0xdc00 && u <= 0xdfff) {
					return jp_fail(p, "lone surrogate");
				} else if (u == 0) {
					return jp_fail(p, "NUL in string");
				}
				r = put_utf8(b, u);
				break;
			default:
				return jp_fail(p, "bad escape");
			}
			if (r < 0)
				return r;
		} else {
			size_t k = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);

			if (!k)
				return jp_fail(p, "invalid UTF-8");
			if ((r = buf_put(b, p->s + p->i, k)) < 0)
				return r;
			p->i += k;
		}
	}
}

static int jp_digits(struct jp *p)
{
	size_t s = p->i;

	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i > s;
}

static int jp_value(struct jp *p, int depth, struct aw_json **ret);

static int jp_push(struct aw_json *j, size_t *cap, struct aw_json *v, char *key, size_t klen)
{
	if (j->len == *cap) {
		size_t c = *cap ? *cap * 2 : 4;
		struct aw_json **it = realloc(j->items, c * sizeof(*it));

		if (!it)
			return -ENOMEM;
		j->items = it;
		if (j->type == AW_JSON_OBJECT) {
			char **k = realloc(j->keys, c * sizeof(*k));

			if (!k)
				return -ENOMEM;
			j->keys = k;
			size_t *kl = realloc(j->key_lens, c * sizeof(*kl));

			if (!kl)
				return -ENOMEM;
			j->key_lens = kl;
		}
		*cap = c;
	}
	j->items[j->len] = v;
	if (j->type == AW_JSON_OBJECT) {
		j->keys[j->len] = key;
		j->key_lens[j->len] = klen;
	}
	j->len++;
	return 0;
}

static int jp_container(struct jp *p, int depth, struct aw_json *j)
{
	char close = j->type == AW_JSON_ARRAY ? ']' : '}';
	size_t cap = 0;
	int r;

	p->i++;
	jp_ws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
		return 0;
	}
	for (;;) {
		struct aw_chat_buf kb = {0};
		struct aw_json *v = NULL;

		jp_ws(p);
		if (j->type == AW_JSON_OBJECT) {
			if (p->i >= p->n || p->s[p->i] != '"')
				return jp_fail(p, "expected a key");
			if ((r = jp_string(p, &kb)) < 0) {
				free(kb.p);
				return r;
			}
			for (size_t k = 0; k < j->len; k++) {
				if (j->key_lens[k] == kb.len && !memcmp(j->keys[k], kb.p, kb.len)) {
					free(kb.p);
					return jp_fail(p, "duplicate key");
				}
			}
			jp_ws(p);
			if (p->i >= p->n || p->s[p->i] != ':') {
				free(kb.p);
				return jp_fail(p, "expected ':'");
			}
			p->i++;
		}
		if ((r = jp_value(p, depth + 1, &v)) < 0) {
			free(kb.p);
			return r;
		}
		if ((r = jp_push(j, &cap, v, kb.p, kb.len)) < 0) {
			free(kb.p);
			aw_json_free(v);
			return r;
		}
		jp_ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == close) {
			p->i++;
			return 0;
		}
		return jp_fail(p, "expected ',' or a closing bracket");
	}
}

static int jp_value(struct jp *p, int depth, struct aw_json **ret)
{
	struct aw_json *j;
	int r = 0;

	if (depth > AW_JSON_MAX_DEPTH)
		return jp_fail(p, "nesting too deep");
	jp_ws(p);
	if (p->i >= p->n)
		return jp_fail(p, "unexpected end");
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	char c = p->s[p->i];

	if (c == '{' || c == '[') {
		j->type = c == '{' ? AW_JSON_OBJECT : AW_JSON_ARRAY;
		r = jp_container(p, depth, j);
	} else if (c == '"') {
		struct aw_chat_buf b = {0};

		j->type = AW_JSON_STRING;
		r = jp_string(p, &b);
		j->str = b.p;
		j->len = b.len;
	} else if (c == '-' || (c >= '0' && c <= '9')) {
		size_t s = p->i;

		j->type = AW_JSON_NUMBER;
		if (c == '-')
			p->i++;
		if (p->i < p->n && p->s[p->i] == '0')
			p->i++;
		else if (!jp_digits(p))
			r = jp_fail(p, "bad number");
		if (!r && p->i < p->n && p->s[p->i] == '.') {
			p->i++;
			if (!jp_digits(p))
				r = jp_fail(p, "bad fraction");
		}
		if (!r && p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
			p->i++;
			if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
				p->i++;
			if (!jp_digits(p))
				r = jp_fail(p, "bad exponent");
		}
		if (!r) {
			j->len = p->i - s;
			j->str = malloc(j->len + 1);
			if (!j->str)
				r = -ENOMEM;
			else {
				memcpy(j->str, p->s + s, j->len);
				j->str[j->len] = '\0';
			}
		}
	} else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "true", 4)) {
		j->type = AW_JSON_TRUE;
		p->i += 4;
	} else if (p->n - p->i >= 5 && !memcmp(p->s + p->i, "false", 5)) {
		j->type = AW_JSON_FALSE;
		p->i += 5;
	} else if (p->n - p->i >= 4 && !memcmp(p->s + p->i, "null", 4)) {
		j->type = AW_JSON_NULL;
		p->i += 4;
	} else {
		r = jp_fail(p, "unexpected character");
	}
	if (r < 0) {
		aw_json_free(j);
		return r;
	}
	*ret = j;
	return 0;
}

int aw_json_parse(const char *buf, size_t len, struct aw_json **ret, struct aw_err *err)
{
	struct jp p = {.s = buf, .n = len, .i = 0, .err = err};
	struct aw_json *j = NULL;
	int r;

	if ((r = jp_value(&p, 0, &j)) < 0) {
		if (r == -ENOMEM)
			aw_err_set(err, ENOMEM, "json: out of memory");
		return r;
	}
	jp_ws(&p);
	if (p.i != p.n) {
		aw_json_free(j);
		return jp_fail(&p, "trailing bytes");
	}
	*ret = j;
	return 0;
}

const struct aw_json *aw_json_get(const struct aw_json *obj, const char *key)
{
	size_t kl;

	if (!obj || obj->type != AW_JSON_OBJECT)
		return NULL;
	kl = strlen(key);
	for (size_t k = 0; k < obj->len; k++)
		if (obj->key_lens[k] == kl && !memcmp(obj->keys[k], key, kl))
			return obj->items[k];
	return NULL;
}

/* ---- JSON writer (Python json.dumps) ------------------------------------------- */

static int dump_str(const char *s, size_t n, struct aw_chat_buf *b)
{
	int r = buf_put(b, "\"", 1);

	for (size_t i = 0; i < n && !r; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];

		switch (c) {
		case '"':
			r = buf_put(b, "\\\"", 2);
			break;
		case '\\':
			r = buf_put(b, "\\\\", 2);
			break;
		case '\n':
			r = buf_put(b, "\\n", 2);
			break;
		case '\r':
			r = buf_put(b, "\\r", 2);
			break;
		case '\t':
			r = buf_put(b, "\\t", 2);
			break;
		case '\b':
			r = buf_put(b, "\\b", 2);
			break;
		case '\f':
			r = buf_put(b, "\\f", 2);
			break;
		default:
			if (c < 0x20) {
				snprintf(e, sizeof(e), "\\u%04x", c);
				r = buf_put(b, e, 6);
			} else {
				r = buf_put(b, (const char *)&s[i], 1);
			}
		}
	}
	return r ? r : buf_put(b, "\"", 1);
}

/* Python's repr() of the double nearest to 'lex'. */
static int dump_float(const char *lex, struct aw_chat_buf *b)
{
	double v = strtod(lex, NULL);
	char tmp[40], dig[20], out[48];
	int exp = 0, nd = 0, o = 0;

	if (isinf(v))
		return buf_puts(b, v < 0 ? "-Infinity" : "Infinity");
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	/* tmp is [-]d[.ddd]e±XX */
	const char *t = tmp;

	if (*t == '-')
		out[o++] = '-', t++;
	for (; *t && *t != 'e'; t++)
		if (*t != '.')
			dig[nd++] = *t;
	exp = atoi(t + 1);
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	int decpt = exp + 1;

	if (decpt > -4 && decpt <= 16) {
		if (decpt <= 0) {
			out[o++] = '0', out[o++] = '.';
			for (int k = 0; k < -decpt; k++)
				out[o++] = '0';
			for (int k = 0; k < nd; k++)
				out[o++] = dig[k];
		} else {
			for (int k = 0; k < decpt; k++)
				out[o++] = k < nd ? dig[k] : '0';
			out[o++] = '.';
			if (nd > decpt)
				for (int k = decpt; k < nd; k++)
					out[o++] = dig[k];
			else
				out[o++] = '0';
		}
		out[o] = '\0';
	} else {
		out[o++] = dig[0];
		if (nd > 1) {
			out[o++] = '.';
			for (int k = 1; k < nd; k++)
				out[o++] = dig[k];
		}
		snprintf(out + o, sizeof(out) - (size_t)o, "e%c%02d", exp < 0 ? '-' : '+',
			 abs(exp));
	}
	return buf_puts(b, out);
}

static int dump_indent(struct aw_chat_buf *b, int indent, int level)
{
	int r = buf_put(b, "\n", 1);

	for (int k = 0; k < indent * level && !r; k++)
		r = buf_put(b, " ", 1);
	return r;
}

static int dump(const struct aw_json *j, int indent, int level, struct aw_chat_buf *b)
{
	int r = 0;

	switch (j->type) {
	case AW_JSON_NULL:
		return buf_puts(b, "null");
	case AW_JSON_TRUE:
		return buf_puts(b, "true");
	case AW_JSON_FALSE:
		return buf_puts(b, "false");
	case AW_JSON_STRING:
		return dump_str(j->str, j->len, b);
	case AW_JSON_NUMBER:
		if (strpbrk(j->str, ".eE"))
			return dump_float(j->str, b);
		if (!strcmp(j->str, "-0"))
			return buf_puts(b, "0");
		return buf_put(b, j->str, j->len);
	case AW_JSON_ARRAY:
	case AW_JSON_OBJECT: {
		int obj = j->type == AW_JSON_OBJECT;

		if ((r = buf_puts(b, obj ? "{" : "[")) < 0)
			return r;
		if (!j->len)
			return buf_puts(b, obj ? "}" : "]");
		for (size_t k = 0; k < j->len; k++) {
			if (k && (r = buf_puts(b, indent >= 0 ? "," : ", ")) < 0)
				return r;
			if (indent >= 0 && (r = dump_indent(b, indent, level + 1)) < 0)
				return r;
			if (obj && ((r = dump_str(j->keys[k], j->key_lens[k], b)) < 0 ||
				    (r = buf_puts(b, ": ")) < 0))
				return r;
			if ((r = dump(j->items[k], indent, level + 1, b)) < 0)
				return r;
		}
		if (indent >= 0 && (r = dump_indent(b, indent, level)) < 0)
			return r;
		return buf_puts(b, obj ? "}" : "]");
	}
	}
	return -EINVAL;
}

int aw_json_dump(const struct aw_json *j, int indent, struct aw_chat_buf *out)
{
	return dump(j, indent, 0, out);
}

static int json_equal(const struct aw_json *a, const struct aw_json *b)
{
	if (a->type != b->type) {
		/* Python: 1 == 1.0, but true != 1 only by type here; keep strict */
		return 0;
	}
	switch (a->type) {
	case AW_JSON_NUMBER:
		if (!strpbrk(a->str, ".eE") && !strpbrk(b->str, ".eE"))
			return !strcmp(a->str, b->str);
		return strtod(a->str, NULL) == strtod(b->str, NULL);
	case AW_JSON_STRING:
		return a->len == b->len && !memcmp(a->str, b->str, a->len);
	case AW_JSON_ARRAY:
		if (a->len != b->len)
			return 0;
		for (size_t k = 0; k < a->len; k++)
			if (!json_equal(a->items[k], b->items[k]))
				return 0;
		return 1;
	case AW_JSON_OBJECT:
		if (a->len != b->len)
			return 0;
		for (size_t k = 0; k < a->len; k++) {
			const struct aw_json *o = aw_json_get(b, a->keys[k]);

			if (!o || !json_equal(a->items[k], o))
				return 0;
		}
		return 1;
	default:
		return 1;
	}
}

/* ---- family detection --------------------------------------------------------- */

static int has(const char *t, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(t + i, needle, k))
			return 1;
	return 0;
}

enum aw_chat_family aw_chat_detect(const char *t, size_t n)
{
	if (!t)
		return AW_CHAT_GENERIC;
	if (has(t, n, "Reasoning Mode") && has(t, n, "/no_think"))
		return AW_CHAT_SMOLLM3;
	if (has(t, n, "json_to_python_type") && has(t, n, "<|im_start|>"))
		return AW_CHAT_HERMES3;
	if (has(t, n, "<|im_start|>") && has(t, n, "<tool_response>") && has(t, n, "<tools>"))
		return AW_CHAT_QWEN25;
	if (has(t, n, "<|start_header_id|>") && has(t, n, "<|eot_id|>"))
		return AW_CHAT_LLAMA3;
	if (has(t, n, "[AVAILABLE_TOOLS]") && has(t, n, "[TOOL_CALLS]") && has(t, n, "[INST]"))
		return AW_CHAT_MISTRAL_NEMO;
	return AW_CHAT_GENERIC;
}

const char *aw_chat_family_name(enum aw_chat_family f)
{
	switch (f) {
	case AW_CHAT_GENERIC:
		return "generic";
	case AW_CHAT_LLAMA3:
		return "llama3";
	case AW_CHAT_QWEN25:
		return "qwen2.5";
	case AW_CHAT_HERMES3:
		return "hermes3";
	case AW_CHAT_MISTRAL_NEMO:
		return "mistral-nemo";
	case AW_CHAT_SMOLLM3:
		return "smollm3";
	}
	return "?";
}

/* ---- rendering helpers ---------------------------------------------------------- */

struct rd {
	struct aw_chat_buf b;
	struct aw_chat_seg *segs;
	size_t n_segs, cap_segs;
	int r; /* first error */
	struct aw_err *err;
	const struct aw_chat_opts *o;
};

static void emit(struct rd *d, const char *s, size_t n, int special)
{
	if (d->r || !n)
		return;
	if (d->n_segs && d->segs[d->n_segs - 1].special == special) {
		d->segs[d->n_segs - 1].len += n;
	} else {
		if (d->n_segs == d->cap_segs) {
			size_t c = d->cap_segs ? d->cap_segs * 2 : 16;
			struct aw_chat_seg *g = realloc(d->segs, c * sizeof(*g));

			if (!g) {
				d->r = -ENOMEM;
				return;
			}
			d->segs = g;
			d->cap_segs = c;
		}
		d->segs[d->n_segs++] =
			(struct aw_chat_seg){.off = d->b.len, .len = n, .special = special};
	}
	d->r = buf_put(&d->b, s, n);
}

#define S(d, lit) emit((d), (lit), strlen(lit), 1)
static void P(struct rd *d, const char *s, size_t n)
{
	emit(d, s, n, 0);
}

static int fail(struct rd *d, int code, const char *msg)
{
	if (!d->r)
		d->r = aw_err_set(d->err, code, "chat: %s", msg);
	return d->r;
}

/* A string member; sets d->r when it is absent or not a string. */
static const struct aw_json *str_of(struct rd *d, const struct aw_json *obj, const char *key)
{
	const struct aw_json *v = aw_json_get(obj, key);

	if (!v || v->type != AW_JSON_STRING) {
		char m[96];

		snprintf(m, sizeof(m), "'%s' must be a string", key);
		fail(d, EINVAL, m);
		return NULL;
	}
	return v;
}

static void Pstr(struct rd *d, const struct aw_json *v)
{
	if (v)
		P(d, v->str, v->len);
}

static void Pjson(struct rd *d, const struct aw_json *v, int indent)
{
	struct aw_chat_buf t = {0};

	if (d->r)
		return;
	if (!v) {
		fail(d, EINVAL, "missing value for tojson");
		return;
	}
	if ((d->r = aw_json_dump(v, indent, &t)) == 0)
		P(d, t.p, t.len);
	free(t.p);
}

static const char *role_of(const struct aw_json *m)
{
	const struct aw_json *r = aw_json_get(m, "role");

	return r && r->type == AW_JSON_STRING ? r->str : "";
}

static int is_role(const struct aw_json *m, const char *role)
{
	return !strcmp(role_of(m), role);
}

/* Python str.isspace() for the code point at s (length k). */
static int py_space(const unsigned char *s, size_t k)
{
	uint32_t c;

	if (k == 1)
		return (s[0] >= 9 && s[0] <= 13) || s[0] == ' ' || (s[0] >= 0x1c && s[0] <= 0x1f);
	if (k == 2)
		c = ((s[0] & 0x1fu) << 6) | (s[1] & 0x3fu);
	else if (k == 3)
		c = ((s[0] & 0x0fu) << 12) | ((s[1] & 0x3fu) << 6) | (s[2] & 0x3fu);
	else
		return 0;
	return c == 0x85 || c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) ||
	       c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

static size_t cp_len(const unsigned char *s, size_t n)
{
	size_t k = utf8_len(s, n);

	return k ? k : 1;
}

/* Python's str.strip() (lead, trail) / rstrip() (trail only) on s[0..n). */
static void py_strip(const char *s, size_t n, int lead, size_t *ret_off, size_t *ret_len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t a = 0, e = n;

	while (lead && a < e) {
		size_t k = cp_len(u + a, e - a);

		if (!py_space(u + a, k))
			break;
		a += k;
	}
	while (e > a) {
		size_t b = e - 1;

		while (b > a && (u[b] & 0xc0) == 0x80)
			b--;
		if (!py_space(u + b, e - b))
			break;
		e = b;
	}
	*ret_off = a;
	*ret_len = e - a;
}

/* Jinja's trim filter on a value: strings are stripped, absent is "". */
static void Ptrim(struct rd *d, const struct aw_json *v)
{
	size_t a, n;

	if (!v)
		return;
	if (v->type != AW_JSON_STRING) {
		fail(d, ENOTSUP, "trim of a non-string is not reproduced");
		return;
	}
	py_strip(v->str, v->len, 1, &a, &n);
	P(d, v->str + a, n);
}

static size_t n_codepoints(const char *s, size_t n)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* ---- Llama 3.x -------------------------------------------------------------------- */

static void render_llama3(struct rd *d, const struct aw_json *msgs, size_t n,
			  const struct aw_json *tools)
{
	size_t i = 0;
	const struct aw_json *sys = NULL;

	S(d, d->o->bos ? d->o->bos : "");
	if (!n) {
		fail(d, EINVAL, "no messages");
		return;
	}
	if (is_role(msgs->items[0], "system")) {
		sys = aw_json_get(msgs->items[0], "content");
		i = 1;
	}
	S(d, "<|start_header_id|>system<|end_header_id|>\n\n");
	if (tools)
		S(d, "Environment: ipython\n");
	S(d, "Cutting Knowledge Date: December 2023\n");
	S(d, "Today Date: ");
	P(d, d->o->date ? d->o->date : "26 Jul 2024",
	  strlen(d->o->date ? d->o->date : "26 Jul 2024"));
	S(d, "\n\n");
	Ptrim(d, sys);
	S(d, "<|eot_id|>");
	if (tools) {
		if (i >= n) {
			fail(d, EINVAL,
			     "Cannot put tools in the first user message when there's no first "
			     "user message!");
			return;
		}
		S(d, "<|start_header_id|>user<|end_header_id|>\n\n");
		S(d,
		  "Given the following functions, please respond with a JSON for a function call ");
		S(d, "with its proper arguments that best answers the given prompt.\n\n");
		S(d, "Respond in the format {\"name\": function name, \"parameters\": dictionary "
		     "of argument name and its value}.");
		S(d, "Do not use variables.\n\n");
		for (size_t k = 0; k < tools->len; k++) {
			Pjson(d, tools->items[k], 4);
			S(d, "\n\n");
		}
		Ptrim(d, aw_json_get(msgs->items[i], "content"));
		S(d, "<|eot_id|>");
		i++;
	}
	for (; i < n && !d->r; i++) {
		const struct aw_json *m = msgs->items[i];
		const struct aw_json *tc = aw_json_get(m, "tool_calls");
		int tool = is_role(m, "tool") || is_role(m, "ipython");

		if (!tool && !tc) {
			const struct aw_json *role = str_of(d, m, "role");

			S(d, "<|start_header_id|>");
			Pstr(d, role);
			S(d, "<|end_header_id|>\n\n");
			Ptrim(d, aw_json_get(m, "content"));
			S(d, "<|eot_id|>");
		} else if (tc) {
			const struct aw_json *f;

			if (tc->type != AW_JSON_ARRAY || tc->len != 1) {
				fail(d, EINVAL,
				     "This model only supports single tool-calls at once!");
				return;
			}
			f = aw_json_get(tc->items[0], "function");
			S(d, "<|start_header_id|>assistant<|end_header_id|>\n\n");
			S(d, "{\"name\": \"");
			Pstr(d, str_of(d, f, "name"));
			S(d, "\", ");
			S(d, "\"parameters\": ");
			Pjson(d, aw_json_get(f, "arguments"), -1);
			S(d, "}");
			S(d, "<|eot_id|>");
		} else {
			const struct aw_json *c = aw_json_get(m, "content");

			S(d, "<|start_header_id|>ipython<|end_header_id|>\n\n");
			/* "content is mapping or content is iterable": strings too */
			if (c && (c->type == AW_JSON_STRING || c->type == AW_JSON_ARRAY ||
				  c->type == AW_JSON_OBJECT))
				Pjson(d, c, -1);
			else
				fail(d, ENOTSUP,
				     "tool content that is not a string, array or object");
			S(d, "<|eot_id|>");
		}
	}
	if (d->o->add_generation_prompt)
		S(d, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* ---- Qwen2.5 ------------------------------------------------------------------------- */

static int truthy(const struct aw_json *v)
{
	if (!v)
		return 0;
	switch (v->type) {
	case AW_JSON_NULL:
	case AW_JSON_FALSE:
		return 0;
	case AW_JSON_TRUE:
		return 1;
	case AW_JSON_NUMBER:
		return strtod(v->str, NULL) != 0;
	default:
		return v->len != 0;
	}
}

static const struct aw_json *call_fn(const struct aw_json *tc)
{
	const struct aw_json *f = aw_json_get(tc, "function");

	return f ? f : tc;
}

static void render_qwen25(struct rd *d, const struct aw_json *msgs, size_t n,
			  const struct aw_json *tools)
{
	static const char *def =
		"You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
	int first_sys;

	if (!n) {
		fail(d, EINVAL, "no messages");
		return;
	}
	first_sys = is_role(msgs->items[0], "system");
	if (tools) {
		S(d, "<|im_start|>system\n");
		if (first_sys)
			Pstr(d, str_of(d, msgs->items[0], "content"));
		else
			S(d, def);
		S(d, "\n\n# Tools\n\nYou may call one or more functions to assist with the user "
		     "query.\n\nYou are provided with function signatures within <tools></tools> "
		     "XML tags:\n<tools>");
		for (size_t k = 0; k < tools->len; k++) {
			S(d, "\n");
			Pjson(d, tools->items[k], -1);
		}
		S(d,
		  "\n</tools>\n\nFor each function call, return a json object with function name "
		  "and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
		  "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n");
	} else if (first_sys) {
		S(d, "<|im_start|>system\n");
		Pstr(d, str_of(d, msgs->items[0], "content"));
		S(d, "<|im_end|>\n");
	} else {
		S(d, "<|im_start|>system\n");
		S(d, def);
		S(d, "<|im_end|>\n");
	}
	for (size_t i = 0; i < n && !d->r; i++) {
		const struct aw_json *m = msgs->items[i];
		const struct aw_json *tc = aw_json_get(m, "tool_calls");

		if (is_role(m, "user") || (is_role(m, "system") && i) ||
		    (is_role(m, "assistant") && !truthy(tc))) {
			S(d, "<|im_start|>");
			Pstr(d, str_of(d, m, "role"));
			S(d, "\n");
			Pstr(d, str_of(d, m, "content"));
			S(d, "<|im_end|>\n");
		} else if (is_role(m, "assistant")) {
			const struct aw_json *c = aw_json_get(m, "content");

			S(d, "<|im_start|>assistant");
			if (truthy(c)) {
				S(d, "\n");
				Pstr(d, str_of(d, m, "content"));
			}
			if (tc->type != AW_JSON_ARRAY) {
				fail(d, ENOTSUP, "tool_calls must be an array");
				return;
			}
			for (size_t k = 0; k < tc->len; k++) {
				const struct aw_json *f = call_fn(tc->items[k]);

				S(d, "\n<tool_call>\n{\"name\": \"");
				Pstr(d, str_of(d, f, "name"));
				S(d, "\", \"arguments\": ");
				Pjson(d, aw_json_get(f, "arguments"), -1);
				S(d, "}\n</tool_call>");
			}
			S(d, "<|im_end|>\n");
		} else if (is_role(m, "tool")) {
			if (i == 0 || !is_role(msgs->items[i - 1], "tool"))
				S(d, "<|im_start|>user");
			S(d, "\n<tool_response>\n");
			Pstr(d, str_of(d, m, "content"));
			S(d, "\n</tool_response>");
			if (i + 1 == n || !is_role(msgs->items[i + 1], "tool"))
				S(d, "<|im_end|>\n");
		}
	}
	if (d->o->add_generation_prompt)
		S(d, "<|im_start|>assistant\n");
}

/* ---- Hermes 3 ----------------------------------------------------------------------- */

/* The template's json_to_python_type macro on a spec whose "type" is 'type'
 * (NULL: undefined) and whose additionalProperties is 'addl' (NULL: undefined). */
static void pytype_t(struct rd *d, const struct aw_json *type, const struct aw_json *addl,
		     int depth);

static void pytype(struct rd *d, const struct aw_json *spec, int depth)
{
	pytype_t(d, aw_json_get(spec, "type"), aw_json_get(spec, "additionalProperties"), depth);
}

static void pytype_t(struct rd *d, const struct aw_json *type, const struct aw_json *addl,
		     int depth)
{
	static const char *map[][2] = {
		{"string", "str"}, {"number", "float"}, {"integer", "int"}, {"boolean", "bool"}};

	if (d->r)
		return;
	if (depth > 32) {
		fail(d, EINVAL, "json_to_python_type: recursion too deep");
		return;
	}
	if (type && type->type == AW_JSON_STRING) {
		for (size_t k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
			if (!strcmp(type->str, map[k][0])) {
				S(d, map[k][1]);
				return;
			}
		}
		if (!strcmp(type->str, "array")) {
			/* json_spec|items passes the spec's items(), whose .type is
			 * undefined, and undefined is iterable: always "list[Union[]]" */
			S(d, "list[Union[]]");
			return;
		}
		if (!strcmp(type->str, "object")) {
			if (addl) {
				S(d, "dict[str, ");
				pytype(d, addl, depth + 1);
				S(d, "]");
			} else {
				S(d, "dict");
			}
			return;
		}
		/* an unknown type string is iterated char by char, forever */
		fail(d, EINVAL, "json_to_python_type: unbounded recursion on an unknown type");
		return;
	}
	if (!type || type->type == AW_JSON_ARRAY || type->type == AW_JSON_OBJECT) {
		S(d, "Union[");
		for (size_t k = 0; type && k < type->len; k++) {
			if (type->type == AW_JSON_ARRAY) {
				pytype_t(d, type->items[k], NULL, depth + 1);
			} else {
				struct aw_json key = {.type = AW_JSON_STRING,
						      .str = type->keys[k],
						      .len = type->key_lens[k]};

				pytype_t(d, &key, NULL, depth + 1);
			}
			if (k + 1 < type->len)
				S(d, ",");
		}
		S(d, "]");
		return;
	}
	S(d, "Any");
}

static void render_hermes3(struct rd *d, const struct aw_json *msgs, size_t n,
			   const struct aw_json *tools)
{
	S(d, d->o->bos ? d->o->bos : "");
	S(d, "<|im_start|>system\n");
	S(d, "You are a function calling AI model. You are provided with function signatures "
	     "within <tools></tools> XML tags. You may call one or more functions to assist with "
	     "the user query. Don't make assumptions about what values to plug into functions. "
	     "Here are the available tools: <tools> ");
	for (size_t k = 0; tools && k < tools->len && !d->r; k++) {
		const struct aw_json *t = call_fn(tools->items[k]);
		const struct aw_json *name = str_of(d, t, "name");
		const struct aw_json *params = aw_json_get(t, "parameters");
		const struct aw_json *props = aw_json_get(params, "properties");
		const struct aw_json *ret = aw_json_get(t, "return");

		if (!props || props->type != AW_JSON_OBJECT) {
			fail(d, EINVAL, "tool parameters.properties must be an object");
			return;
		}
		S(d, "{\"type\": \"function\", \"function\": ");
		S(d, "{\"name\": \"");
		Pstr(d, name);
		S(d, "\", ");
		S(d, "\"description\": \"");
		Pstr(d, name);
		S(d, "(");
		for (size_t j = 0; j < props->len; j++) {
			P(d, props->keys[j], props->key_lens[j]);
			S(d, ": ");
			pytype(d, props->items[j], 0);
			if (j + 1 < props->len)
				S(d, ", ");
		}
		S(d, ")");
		if (ret) {
			S(d, " -> ");
			pytype(d, ret, 0);
		}
		S(d, " - ");
		Pstr(d, str_of(d, t, "description"));
		S(d, "\n\n");
		for (size_t j = 0; j < props->len; j++) {
			if (!j)
				S(d, "    Args:\n");
			S(d, "        ");
			P(d, props->keys[j], props->key_lens[j]);
			S(d, "(");
			pytype(d, props->items[j], 0);
			S(d, "): ");
			Ptrim(d, aw_json_get(props->items[j], "description"));
		}
		if (ret && aw_json_get(ret, "description")) {
			S(d, "\n    Returns:\n        ");
			Pstr(d, str_of(d, ret, "description"));
		}
		S(d, "\"");
		S(d, ", \"parameters\": ");
		if (!props->len)
			S(d, "{}");
		else
			Pjson(d, params, -1);
		S(d, "}");
		if (k + 1 < tools->len)
			S(d, "\n");
	}
	S(d, " </tools>");
	S(d, "Use the following pydantic model json schema for each tool call you will make: "
	     "{\"properties\": {\"name\": {\"title\": \"Name\", \"type\": \"string\"}, "
	     "\"arguments\": {\"title\": \"Arguments\", \"type\": \"object\"}}, \"required\": "
	     "[\"name\", \"arguments\"], \"title\": \"FunctionCall\", \"type\": \"object\"}}\n");
	S(d, "For each function call return a json object with function name and arguments within "
	     "<tool_call></tool_call> XML tags as follows:\n");
	S(d, "<tool_call>\n");
	S(d, "{\"name\": <function-name>, \"arguments\": <args-dict>}\n");
	S(d, "</tool_call><|im_end|>\n");
	for (size_t i = 0; i < n && !d->r; i++) {
		const struct aw_json *m = msgs->items[i];
		const struct aw_json *tc = aw_json_get(m, "tool_calls");

		if (is_role(m, "user") || is_role(m, "system") ||
		    (is_role(m, "assistant") && !tc)) {
			S(d, "<|im_start|>");
			Pstr(d, str_of(d, m, "role"));
			S(d, "\n");
			Pstr(d, str_of(d, m, "content"));
			S(d, "<|im_end|>\n");
		} else if (is_role(m, "assistant")) {
			S(d, "<|im_start|>assistant");
			if (tc->type != AW_JSON_ARRAY) {
				fail(d, EINVAL, "tool_calls must be an array");
				return;
			}
			for (size_t k = 0; k < tc->len; k++) {
				const struct aw_json *f = call_fn(tc->items[k]);
				const struct aw_json *a = aw_json_get(f, "arguments");

				S(d, "\n<tool_call>\n");
				S(d, "{");
				S(d, "\"name\": \"");
				Pstr(d, str_of(d, f, "name"));
				S(d, "\"");
				S(d, ", ");
				if (a) {
					S(d, "\"arguments\": ");
					if (a->type == AW_JSON_STRING)
						Pstr(d, a);
					else
						Pjson(d, a, -1);
				}
				S(d, "}");
				S(d, "\n</tool_call>");
			}
			S(d, "<|im_end|>\n");
		} else if (is_role(m, "tool")) {
			int last = i + 1 == n;

			if (i && !is_role(msgs->items[i - 1], "tool"))
				S(d, "<|im_start|>tool\n");
			S(d, "<tool_response>\n");
			Pstr(d, str_of(d, m, "content"));
			S(d, last ? "\n</tool_response>" : "\n</tool_response>\n");
			if (last || !is_role(msgs->items[i + 1], "tool"))
				S(d, "<|im_end|>");
		}
	}
	if (d->o->add_generation_prompt)
		S(d, "<|im_start|>assistant\n");
}

/* ---- Mistral Nemo ------------------------------------------------------------------- */

static int is_call_msg(const struct aw_json *m)
{
	const struct aw_json *tc = aw_json_get(m, "tool_calls");

	return tc && tc->type != AW_JSON_NULL;
}

static void check_id(struct rd *d, const struct aw_json *id)
{
	if (!id || id->type != AW_JSON_STRING || n_codepoints(id->str, id->len) != 9)
		fail(d, EINVAL, "Tool call IDs should be alphanumeric strings with length 9!");
}

static void render_mistral(struct rd *d, const struct aw_json *msgs, size_t n,
			   const struct aw_json *tools)
{
	const struct aw_json *sys = NULL, *last_user = NULL;
	size_t i0 = 0, idx = 0;

	if (!n) {
		fail(d, EINVAL, "no messages");
		return;
	}
	if (is_role(msgs->items[0], "system")) {
		sys = aw_json_get(msgs->items[0], "content");
		i0 = 1;
	}
	for (size_t i = i0; i < n; i++) {
		const struct aw_json *m = msgs->items[i];

		if (is_role(m, "user"))
			last_user = m;
		if (!(is_role(m, "tool") || is_role(m, "tool_results") || is_call_msg(m))) {
			if (is_role(m, "user") != (idx % 2 == 0)) {
				fail(d, EINVAL,
				     "After the optional system message, conversation roles must "
				     "alternate user/assistant/user/assistant/...");
				return;
			}
			idx++;
		}
	}
	S(d, d->o->bos ? d->o->bos : "");
	for (size_t i = i0; i < n && !d->r; i++) {
		const struct aw_json *m = msgs->items[i];

		if (is_role(m, "user")) {
			if (tools && json_equal(m, last_user)) {
				S(d, "[AVAILABLE_TOOLS][");
				for (size_t k = 0; k < tools->len && !d->r; k++) {
					const struct aw_json *f =
						aw_json_get(tools->items[k], "function");
					size_t nk = 0, seen = 0;

					if (!f || f->type != AW_JSON_OBJECT) {
						fail(d, EINVAL, "tool without a function object");
						return;
					}
					for (size_t j = 0; j < f->len; j++)
						nk += strcmp(f->keys[j], "return") != 0;
					S(d, "{\"type\": \"function\", \"function\": {");
					for (size_t j = 0; j < f->len; j++) {
						const struct aw_json *v = f->items[j];

						if (!strcmp(f->keys[j], "return"))
							continue;
						S(d, "\"");
						P(d, f->keys[j], f->key_lens[j]);
						if (v->type == AW_JSON_STRING) {
							S(d, "\": \"");
							Pstr(d, v);
							S(d, "\"");
						} else {
							S(d, "\": ");
							Pjson(d, v, -1);
						}
						if (++seen < nk)
							S(d, ", ");
					}
					S(d, "}}");
					S(d, k + 1 < tools->len ? ", " : "]");
				}
				S(d, "[/AVAILABLE_TOOLS]");
			}
			if (i + 1 == n && sys) {
				if (sys->type != AW_JSON_STRING) {
					fail(d, EINVAL, "system content must be a string");
					return;
				}
				S(d, "[INST]");
				Pstr(d, sys);
				S(d, "\n\n");
				Pstr(d, str_of(d, m, "content"));
				S(d, "[/INST]");
			} else {
				S(d, "[INST]");
				Pstr(d, str_of(d, m, "content"));
				S(d, "[/INST]");
			}
		} else if (is_call_msg(m)) {
			const struct aw_json *tc = aw_json_get(m, "tool_calls");

			S(d, "[TOOL_CALLS][");
			if (tc->type != AW_JSON_ARRAY) {
				fail(d, ENOTSUP, "tool_calls must be an array");
				return;
			}
			for (size_t k = 0; k < tc->len && !d->r; k++) {
				struct aw_chat_buf t = {0};
				const struct aw_json *f = aw_json_get(tc->items[k], "function");
				const struct aw_json *id = aw_json_get(tc->items[k], "id");

				if (!f) {
					fail(d, EINVAL, "tool call without a function");
					return;
				}
				if ((d->r = aw_json_dump(f, -1, &t)) == 0)
					P(d, t.p, t.len - 1); /* out[:-1] */
				free(t.p);
				check_id(d, id);
				S(d, ", \"id\": \"");
				Pstr(d, id);
				S(d, "\"}");
				if (k + 1 < tc->len) {
					S(d, ", ");
				} else {
					S(d, "]");
					S(d, d->o->eos ? d->o->eos : "");
				}
			}
		} else if (is_role(m, "assistant")) {
			Pstr(d, str_of(d, m, "content"));
			S(d, d->o->eos ? d->o->eos : "");
		} else if (is_role(m, "tool_results") || is_role(m, "tool")) {
			const struct aw_json *c = aw_json_get(m, "content");
			const struct aw_json *cc = aw_json_get(c, "content");

			if (cc)
				c = cc;
			if (!c || c->type != AW_JSON_STRING) {
				/* content|string would print a Python repr */
				fail(d, ENOTSUP, "tool result content must be a string");
				return;
			}
			S(d, "[TOOL_RESULTS]{\"content\": ");
			Pstr(d, c);
			S(d, ", ");
			check_id(d, aw_json_get(m, "tool_call_id"));
			S(d, "\"call_id\": \"");
			Pstr(d, aw_json_get(m, "tool_call_id"));
			S(d, "\"}[/TOOL_RESULTS]");
		} else {
			fail(d, EINVAL,
			     "Only user and assistant roles are supported, with the exception of "
			     "an initial optional system message!");
		}
	}
}

/* ---- SmolLM3 ------------------------------------------------------------------------ */

static void remove_all(struct aw_chat_buf *b, const char *pat)
{
	size_t k = strlen(pat), o = 0;

	for (size_t i = 0; i < b->len;) {
		if (i + k <= b->len && !memcmp(b->p + i, pat, k)) {
			i += k;
			continue;
		}
		b->p[o++] = b->p[i++];
	}
	b->len = o;
	b->p[o] = '\0';
}

static void render_smollm3(struct rd *d, const struct aw_json *msgs, size_t n)
{
	int think = 1;
	struct aw_chat_buf ci = {0};

	if (!n) {
		fail(d, EINVAL, "no messages");
		return;
	}
	S(d, "<|im_start|>system\n");
	if (is_role(msgs->items[0], "system")) {
		const struct aw_json *sm = str_of(d, msgs->items[0], "content");
		size_t a, l;

		if (!sm)
			return;
		if (has(sm->str, sm->len, "/no_think"))
			think = 0;
		else if (has(sm->str, sm->len, "/think"))
			think = 1;
		if ((d->r = buf_put(&ci, sm->str, sm->len)) < 0)
			return;
		remove_all(&ci, "/no_think");
		remove_all(&ci, "/think");
		py_strip(ci.p, ci.len, 0, &a, &l);
		ci.len = l;
	}
	S(d, "## Metadata\n\n");
	S(d, "Knowledge Cutoff Date: June 2025\n");
	S(d, "Reasoning Mode: ");
	S(d, think ? "/think" : "/no_think");
	S(d, "\n\n");
	S(d, "## Custom Instructions\n\n");
	if (ci.len) {
		P(d, ci.p, ci.len);
		S(d, "\n\n");
	} else if (think) {
		S(d, "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your "
		     "role as an assistant involves thoroughly exploring questions through a "
		     "systematic thinking process before providing the final precise and accurate "
		     "solutions. This requires engaging in a comprehensive cycle of analysis, "
		     "summarizing, exploration, reassessment, reflection, backtracking, and "
		     "iteration to develop well-considered thinking process. Please structure your "
		     "response into two main sections: Thought and Solution using the specified "
		     "format: <think> Thought section </think> Solution section. In the Thought "
		     "section, detail your reasoning process in steps. Each step should include "
		     "detailed considerations such as analysing questions, summarizing relevant "
		     "findings, brainstorming new ideas, verifying the accuracy of the current "
		     "steps, refining any errors, and revisiting previous steps. In the Solution "
		     "section, based on various attempts, explorations, and reflections from the "
		     "Thought section, systematically present the final solution that you deem "
		     "correct. The Solution section should be logical, accurate, and concise and "
		     "detail necessary steps needed to reach the conclusion.\n\n");
	} else {
		S(d, "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n");
	}
	free(ci.p);
	S(d, "<|im_end|>\n");
	for (size_t i = 0; i < n && !d->r; i++) {
		const struct aw_json *m = msgs->items[i];
		const struct aw_json *c = aw_json_get(m, "content");
		const char *s = c && c->type == AW_JSON_STRING ? c->str : "";
		size_t l = c && c->type == AW_JSON_STRING ? c->len : 0;

		if (is_role(m, "user") || is_role(m, "tool")) {
			S(d, "<|im_start|>user\n");
			P(d, s, l);
			S(d, "<|im_end|>\n");
		} else if (is_role(m, "assistant")) {
			while (l && *s == '\n')
				s++, l--;
			S(d, "<|im_start|>assistant\n");
			if (!think)
				S(d, "<think>\n\n</think>\n");
			P(d, s, l);
			S(d, "<|im_end|>\n");
		}
	}
	if (d->o->add_generation_prompt) {
		S(d, "<|im_start|>assistant\n");
		if (!think)
			S(d, "<think>\n\n</think>\n");
	}
}

/* ---- generic ChatML ----------------------------------------------------------------- */

static void render_generic(struct rd *d, const struct aw_json *msgs, size_t n)
{
	for (size_t i = 0; i < n && !d->r; i++) {
		S(d, "<|im_start|>");
		Pstr(d, str_of(d, msgs->items[i], "role"));
		S(d, "\n");
		Pstr(d, str_of(d, msgs->items[i], "content"));
		S(d, "<|im_end|>\n");
	}
	if (d->o->add_generation_prompt)
		S(d, "<|im_start|>assistant\n");
}

int aw_chat_render(enum aw_chat_family f, const struct aw_json *req, const struct aw_chat_opts *o,
		   struct aw_chat_prompt *ret, struct aw_err *err)
{
	static const struct aw_chat_opts dflt = {.add_generation_prompt = 1};
	const struct aw_json *msgs = aw_json_get(req, "messages");
	const struct aw_json *tools = aw_json_get(req, "tools");
	struct rd d = {.err = err, .o = o ? o : &dflt};

	if (!msgs || msgs->type != AW_JSON_ARRAY)
		return aw_err_set(err, EINVAL, "chat: 'messages' must be an array");
	for (size_t i = 0; i < msgs->len; i++)
		if (msgs->items[i]->type != AW_JSON_OBJECT)
			return aw_err_set(err, EINVAL, "chat: message %zu is not an object", i);
	if (tools && tools->type == AW_JSON_NULL)
		tools = NULL;
	if (tools && tools->type != AW_JSON_ARRAY)
		return aw_err_set(err, EINVAL, "chat: 'tools' must be an array");
	if (tools && !tools->len)
		tools = NULL;
	switch (f) {
	case AW_CHAT_LLAMA3:
		render_llama3(&d, msgs, msgs->len, tools);
		break;
	case AW_CHAT_QWEN25:
		render_qwen25(&d, msgs, msgs->len, tools);
		break;
	case AW_CHAT_HERMES3:
		render_hermes3(&d, msgs, msgs->len, tools);
		break;
	case AW_CHAT_MISTRAL_NEMO:
		render_mistral(&d, msgs, msgs->len, tools);
		break;
	case AW_CHAT_SMOLLM3:
		render_smollm3(&d, msgs, msgs->len);
		break;
	case AW_CHAT_GENERIC:
		if (tools) {
			d.r = aw_err_set(err, ENOTSUP, "chat: the generic template has no tools");
			break;
		}
		render_generic(&d, msgs, msgs->len);
		break;
	}
	if (!d.r && !d.b.p)
		d.r = buf_put(&d.b, "", 0);
	if (d.r) {
		if (d.r == -ENOMEM)
			aw_err_set(err, ENOMEM, "chat: out of memory");
		free(d.b.p);
		free(d.segs);
		return d.r;
	}
	ret->text = d.b.p;
	ret->len = d.b.len;
	ret->segs = d.segs;
	ret->n_segs = d.n_segs;
	return 0;
}

void aw_chat_prompt_fini(struct aw_chat_prompt *p)
{
	if (!p)
		return;
	free(p->text);
	free(p->segs);
	memset(p, 0, sizeof(*p));
}

/* ---- tokenization --------------------------------------------------------------------- */

static int ids_push(int32_t **ids, size_t *n, size_t *cap, const int32_t *v, size_t k)
{
	if (*n + k > *cap) {
		size_t c = *cap ? *cap : 64;
		int32_t *p;

		while (c < *n + k)
			c *= 2;
		p = realloc(*ids, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*ids = p;
		*cap = c;
	}
	memcpy(*ids + *n, v, k * sizeof(*v));
	*n += k;
	return 0;
}

static int encode_plain(const struct aw_tok *t, const char *s, size_t len, int32_t **ids, size_t *n,
			size_t *cap)
{
	int32_t *part = NULL;
	size_t np = 0;
	int r;

	if (!len)
		return 0;
	if ((r = aw_tok_encode_alloc(t, s, len, 0, &part, &np)) < 0)
		return r;
	r = ids_push(ids, n, cap, part, np);
	free(part);
	return r;
}

int aw_chat_tokenize(const struct aw_tok *t, const struct aw_chat_prompt *p, int32_t **ret_ids,
		     size_t *ret_n, struct aw_err *err)
{
	uint32_t nv = aw_tok_n_tokens(t);
	int32_t *ids = NULL, *ctl = NULL;
	size_t n = 0, cap = 0, nctl = 0, plain_start = 0;
	int r = 0;

	/* the control tokens, longest text first wins at a position */
	ctl = malloc((nv ? nv : 1) * sizeof(*ctl));
	if (!ctl)
		return aw_err_set(err, ENOMEM, "chat: out of memory");
	for (uint32_t id = 0; id < nv; id++) {
		size_t l;

		if (aw_tok_token_type(t, (int32_t)id) == AW_TOK_TYPE_CONTROL &&
		    aw_tok_text(t, (int32_t)id, &l) && l)
			ctl[nctl++] = (int32_t)id;
	}
	for (size_t s = 0; s < p->n_segs && !r; s++) {
		const struct aw_chat_seg *g = &p->segs[s];

		if (!g->special)
			continue;
		for (size_t i = g->off; i < g->off + g->len && !r;) {
			int32_t best = -1;
			size_t best_len = 0;

			for (size_t k = 0; k < nctl; k++) {
				size_t l;
				const char *x = aw_tok_text(t, ctl[k], &l);

				if (l > best_len && l <= g->off + g->len - i &&
				    !memcmp(p->text + i, x, l))
					best = ctl[k], best_len = l;
			}
			if (best < 0) {
				i++;
				continue;
			}
			r = encode_plain(t, p->text + plain_start, i - plain_start, &ids, &n, &cap);
			if (!r)
				r = ids_push(&ids, &n, &cap, &best, 1);
			i += best_len;
			plain_start = i;
		}
	}
	if (!r)
		r = encode_plain(t, p->text + plain_start, p->len - plain_start, &ids, &n, &cap);
	free(ctl);
	if (r) {
		free(ids);
		return aw_err_set(err, -r, "chat: tokenization failed");
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}
