/* conf-int.h — internals shared by the files of libaw_config: the INI reader
 * that keeps line numbers, "did you mean" and the problem list. */
#ifndef AW_CONF_INT_H
#define AW_CONF_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct ini_entry {
	char *key;
	char *value;
	unsigned line; /* 1-based line in the file, 0 for an override */
	unsigned set;  /* 0 from the file, k for the k-th --set (1-based) */
};

struct ini_section {
	char *name;    /* header text between the brackets, trimmed */
	unsigned line; /* 0 when created by an override */
	unsigned set;
	struct ini_entry *e;
	unsigned n, cap;
	bool too_many; /* more keys than the reader keeps (reported once) */
};

struct ini {
	struct ini_section *s;
	unsigned n, cap;
};

/* Called for each problem: 'line' is 1-based (0: the whole file). */
typedef void ini_problem_fn(void *ctx, unsigned line, const char *msg, const char *fix);

/* Parse 'len' bytes of INI text. Every problem is passed to 'fn'; parsing goes
 * on after a bad line so that all of them are found. Duplicate sections are
 * merged into the first (and reported), duplicate keys keep the first value
 * (and are reported). Returns 0, or -ENOMEM. */
int ini_parse(const char *data, size_t len, struct ini *ini, ini_problem_fn *fn, void *ctx);

void ini_fini(struct ini *ini);

/* strdup() through malloc(), so that allocation-failure tests reach it. */
char *conf_strdup(const char *s);

struct ini_section *ini_add_section(struct ini *ini, const char *name, unsigned line);
int ini_add_entry(struct ini_section *s, const char *key, const char *value, unsigned line,
		  unsigned set);

/* Restricted Damerau-Levenshtein distance, ASCII case-insensitive. */
unsigned conf_distance(const char *a, const char *b);

/* The candidate closest to 'word' if it is close enough to be a likely typo,
 * or NULL. */
const char *conf_suggest(const char *word, const char *const *cands, unsigned n);

/* Add a problem to the report (where/what may be ""). */
__attribute__((format(printf, 5, 6))) void conf_diag(struct aw_conf_report *r,
						     enum aw_conf_severity sev, const char *where,
						     const char *what, const char *fmt, ...);
/* Set the fix of the last stored problem (no-op if it was not stored). */
__attribute__((format(printf, 2, 3))) void conf_fix(struct aw_conf_report *r, const char *fmt, ...);

/* Where key 'name' of [section id] was set: "file:line" or "--set ..."; for
 * a defaulted key (or name NULL) the section header's place, else the file. */
const char *conf_where(const struct aw_conf *c, const char *section, int id, const char *name);

/* Human-readable bytes: "512 MiB", "1.5 GiB", "100 B". */
const char *conf_fmt_size(uint64_t v, char *buf, size_t size);

/* Size of a file by stat(); regular readable files only. */
int conf_stat_size(void *ctx, const char *path, uint64_t *size);

/* Parse a size "1.5G", "512M", "4096", "64KiB" into bytes. Returns 0, or
 * -EINVAL / -ERANGE with msg filled. */
int conf_parse_size(const char *s, uint64_t *ret, char *msg, size_t msglen);

#endif
