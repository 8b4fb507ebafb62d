/* ini.c — the INI reader behind the config file and the topology description.
 *
 * Why not rte_cfgfile: DPDK 22.11's reader keeps no line numbers, silently
 * skips a line that has no '=' (so "lcores 2-5" vanishes without a word),
 * stops at the first error and reports it only through rte_log, truncates
 * names at 64 and values at 256 bytes without saying so, and keeps duplicate
 * sections and keys side by side. A validator whose job is to name the line
 * and the fix of every mistake needs all of that, so this reader is ours
 * (docs/CONFIG.md). It takes untrusted bytes: every line is bounded, bad
 * bytes are reported, and parsing goes on after a bad line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

#define MAX_BAD_BYTE_LINES 8
#define INI_MAX_SECTIONS   256 /* 32 ports + 64 groups + 6 others fit with room */
#define INI_MAX_KEYS                                                                               \
	256 /* per section; lookups are linear */ /* after this many lines with control bytes: not a text file */

static char *dup_range(const char *s, size_t n)
{
	char *p = malloc(n + 1);

	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

char *conf_strdup(const char *s)
{
	return dup_range(s, strlen(s));
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trim blanks on both sides of [*b, *e). */
static void trim(const char **b, const char **e)
{
	while (*b < *e && is_blank(**b))
		(*b)++;
	while (*e > *b && is_blank((*e)[-1]))
		(*e)--;
}

struct ini_section *ini_add_section(struct ini *ini, const char *name, unsigned line)
{
	struct ini_section *s;

	if (ini->n == ini->cap) {
		unsigned cap = ini->cap ? ini->cap * 2 : 8;
		void *p = realloc(ini->s, cap * sizeof(*ini->s));

		if (!p)
			return NULL;
		ini->s = p;
		ini->cap = cap;
	}
	s = &ini->s[ini->n];
	memset(s, 0, sizeof(*s));
	s->name = conf_strdup(name);
	if (!s->name)
		return NULL;
	s->line = line;
	ini->n++;
	return s;
}

int ini_add_entry(struct ini_section *s, const char *key, const char *value, unsigned line,
		  unsigned set)
{
	struct ini_entry *e;

	if (s->n == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 8;
		void *p = realloc(s->e, cap * sizeof(*s->e));

		if (!p)
			return -ENOMEM;
		s->e = p;
		s->cap = cap;
	}
	e = &s->e[s->n];
	e->key = conf_strdup(key);
	e->value = conf_strdup(value);
	if (!e->key || !e->value) {
		free(e->key);
		free(e->value);
		return -ENOMEM;
	}
	e->line = line;
	e->set = set;
	s->n++;
	return 0;
}

void ini_fini(struct ini *ini)
{
	if (!ini)
		return;
	for (unsigned i = 0; i < ini->n; i++) {
		for (unsigned j = 0; j < ini->s[i].n; j++) {
			free(ini->s[i].e[j].key);
			free(ini->s[i].e[j].value);
		}
		free(ini->s[i].e);
		free(ini->s[i].name);
	}
	free(ini->s);
	memset(ini, 0, sizeof(*ini));
}

static void problem(ini_problem_fn *fn, void *ctx, unsigned line, const char *fix, const char *fmt,
		    ...) __attribute__((format(printf, 5, 6)));

static void problem(ini_problem_fn *fn, void *ctx, unsigned line, const char *fix, const char *fmt,
		    ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(ctx, line, msg, fix ? fix : "");
}

/* Printable excerpt of a line for messages: at most 40 bytes, quoted. */
static const char *excerpt(const char *b, const char *e, char *buf, size_t size)
{
	size_t n = (size_t)(e - b);

	if (n > 40)
		n = 40;
	snprintf(buf, size, "%.*s%s", (int)n, b, (size_t)(e - b) > 40 ? "..." : "");
	return buf;
}

static int valid_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* Strip an inline comment: ';' or '#' preceded by a blank. */
static const char *comment_start(const char *b, const char *e)
{
	for (const char *p = b + 1; p < e; p++)
		if ((*p == ';' || *p == '#') && is_blank(p[-1]))
			return p;
	return e;
}

static struct ini_section *find_section(struct ini *ini, const char *name)
{
	for (unsigned i = 0; i < ini->n; i++)
		if (strcmp(ini->s[i].name, name) == 0)
			return &ini->s[i];
	return NULL;
}

/* Section headers compare with runs of blanks collapsed: "[group  1]" is
 * "[group 1]". */
static char *normalize_name(const char *b, const char *e)
{
	char *out = malloc((size_t)(e - b) + 1), *o = out;

	if (!out)
		return NULL;
	for (const char *p = b; p < e; p++) {
		if (is_blank(*p)) {
			if (o > out && o[-1] != ' ')
				*o++ = ' ';
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

int ini_parse(const char *data, size_t len, struct ini *ini, ini_problem_fn *fn, void *ctx)
{
	struct ini_section *cur = NULL;
	unsigned lineno = 0, bad_byte_lines = 0;
	const char *p = data, *end = data + len;
	char ex[64];

	if (len > AW_CONF_MAX_FILE) {
		problem(fn, ctx, 0, "a config file is a few kilobytes: check the file name",
			"file is %zu bytes, more than the %u-byte limit", len, AW_CONF_MAX_FILE);
		return 0;
	}
	if (len == 0) {
		problem(fn, ctx, 0, "start from one of config/examples/*.conf", "file is empty");
		return 0;
	}
	/* UTF-8 byte order mark, as some editors write */
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *b = p, *e = nl ? nl : end;
		const char *bad = NULL;

		p = nl ? nl + 1 : end;
		lineno++;
		if (e > b && e[-1] == '\r')
			e--;
		if ((size_t)(e - b) > AW_CONF_MAX_LINE) {
			problem(fn, ctx, lineno, "split the value or fix the file",
				"line is %zu bytes long, more than the %u-byte limit",
				(size_t)(e - b), AW_CONF_MAX_LINE);
			continue;
		}
		for (const char *q = b; q < e; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t') {
				bad = q;
				break;
			} else if (*q == 0x7f) {
				bad = q;
				break;
			}
		if (bad) {
			problem(fn, ctx, lineno, "a config file is plain text: check the file name",
				"control byte 0x%02x at column %zu%s", (unsigned char)*bad,
				(size_t)(bad - b) + 1, *bad == 0 ? " (binary data?)" : "");
			if (++bad_byte_lines >= MAX_BAD_BYTE_LINES) {
				problem(fn, ctx, lineno,
					"a config file is plain text: check the file name",
					"giving up after %u lines with control bytes: this is not "
					"a text file",
					bad_byte_lines);
				return 0;
			}
			continue;
		}
		trim(&b, &e);
		if (b == e || *b == ';' || *b == '#')
			continue;
		e = comment_start(b, e);
		trim(&b, &e);

		if (*b == '[') {
			const char *close = memchr(b, ']', (size_t)(e - b));
			const char *nb = b + 1, *ne;
			struct ini_section *dup;
			char *name;

			if (!close) {
				problem(fn, ctx, lineno, "write the header as [name] or [name N]",
					"section header '%s' has no closing ']'",
					excerpt(b, e, ex, sizeof(ex)));
				cur = NULL;
				continue;
			}
			ne = close;
			trim(&nb, &ne);
			if (close + 1 != e) {
				const char *jb = close + 1, *je = e;

				trim(&jb, &je);
				problem(fn, ctx, lineno,
					"remove the text after ']' (or make it a ; comment)",
					"unexpected text '%s' after the section header",
					excerpt(jb, je, ex, sizeof(ex)));
			}
			if (nb == ne) {
				problem(fn, ctx, lineno, "write the header as [name] or [name N]",
					"empty section name '[]'");
				cur = NULL;
				continue;
			}
			name = normalize_name(nb, ne);
			if (!name)
				return -ENOMEM;
			dup = find_section(ini, name);
			if (dup) {
				char fix[128];

				snprintf(fix, sizeof(fix), "merge the two [%s] sections into one",
					 name);
				problem(fn, ctx, lineno, fix,
					"duplicate section [%s] (first defined at line %u)", name,
					dup->line);
				cur = dup;
			} else if (ini->n >= INI_MAX_SECTIONS) {
				problem(fn, ctx, lineno,
					"a config has about a hundred sections at most",
					"more than %u sections: giving up", INI_MAX_SECTIONS);
				free(name);
				return 0;
			} else {
				cur = ini_add_section(ini, name, lineno);
				if (!cur) {
					free(name);
					return -ENOMEM;
				}
			}
			free(name);
			continue;
		}

		const char *eq = memchr(b, '=', (size_t)(e - b));
		const char *kb = b, *ke, *vb, *ve = e;
		char *key, *value;

		if (!eq) {
			problem(fn, ctx, lineno,
				"write 'key = value' (or start the line with ';' to comment it "
				"out)",
				"missing '=' in '%s'", excerpt(b, e, ex, sizeof(ex)));
			continue;
		}
		ke = eq;
		vb = eq + 1;
		trim(&kb, &ke);
		trim(&vb, &ve);
		if (kb == ke) {
			problem(fn, ctx, lineno, "write 'key = value'",
				"missing key name before '='");
			continue;
		}
		{
			const char *q;

			for (q = kb; q < ke && valid_key_char(*q); q++)
				;
			if (q != ke) {
				problem(fn, ctx, lineno,
					"key names are letters, digits and '_': write 'key = "
					"value'",
					"bad key name '%s'", excerpt(kb, ke, ex, sizeof(ex)));
				continue;
			}
		}
		if (!cur) {
			problem(fn, ctx, lineno, "put the key under a section header such as [eal]",
				"key '%s' outside any section", excerpt(kb, ke, ex, sizeof(ex)));
			continue;
		}
		key = dup_range(kb, (size_t)(ke - kb));
		value = dup_range(vb, (size_t)(ve - vb));
		if (!key || !value) {
			free(key);
			free(value);
			return -ENOMEM;
		}
		{
			unsigned first = 0;

			for (unsigned i = 0; i < cur->n; i++)
				if (strcmp(cur->e[i].key, key) == 0) {
					first = cur->e[i].line ? cur->e[i].line : 1;
					break;
				}
			if (first) {
				char fix[128];

				snprintf(fix, sizeof(fix), "keep one '%s' line in [%s]", key,
					 cur->name);
				problem(fn, ctx, lineno, fix,
					"duplicate key '%s' in [%s] (first set at line %u)", key,
					cur->name, first);
			} else if (cur->n >= INI_MAX_KEYS) {
				if (!cur->too_many)
					problem(fn, ctx, lineno, "remove the extra lines",
						"more than %u keys in [%s]", INI_MAX_KEYS,
						cur->name);
				cur->too_many = true;
			} else if (ini_add_entry(cur, key, value, lineno, 0) < 0) {
				free(key);
				free(value);
				return -ENOMEM;
			}
		}
		free(key);
		free(value);
	}
	return 0;
}
