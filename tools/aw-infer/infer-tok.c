/* infer-tok.c — aw-infer --tokenize / --detokenize and -p prompt encoding.
 *
 * The tokenizer is built from the GGUF's tokenizer.ggml.* keys only, so
 * --tokenize and --detokenize work on a vocabulary-only file too (no weights
 * are needed or loaded). --tokenize - reads standard input to the end, every
 * byte of it (NULs and invalid UTF-8 included).
 */
#include "infer-tok.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "gguf.h"
#include "tok.h"

static struct aw_tok *load(const struct aw_gguf *g)
{
	struct aw_err err = {0};
	struct aw_tok *t;
	int r = aw_tok_new_from_gguf(g, &t, &err);

	if (r < 0) {
		fprintf(stderr, "aw-infer: tokenizer: %s\n", err.msg[0] ? err.msg : strerror(-r));
		return NULL;
	}
	return t;
}

static char *read_stdin(size_t *ret_n)
{
	size_t n = 0, cap = 1 << 16;
	char *buf = malloc(cap);

	while (buf) {
		size_t k = fread(buf + n, 1, cap - n, stdin);
		n += k;
		if (k == 0)
			break;
		if (n == cap) {
			char *p = realloc(buf, cap *= 2);
			if (!p)
				free(buf);
			buf = p;
		}
	}
	if (buf && ferror(stdin)) {
		free(buf);
		return NULL;
	}
	*ret_n = n;
	return buf;
}

/* "1 2, 3" -> ids; -1 (after a message) on a bad list */
static long parse_ids(const struct aw_tok *t, const char *s, int32_t **ret)
{
	size_t cap = 16, n = 0;
	int32_t *ids = malloc(cap * sizeof(*ids));
	char *end;

	while (ids) {
		while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n' || *s == '[' || *s == ']')
			s++;
		if (!*s)
			break;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v >= (long)aw_tok_n_tokens(t)) {
			fprintf(stderr,
				"aw-infer: --detokenize: '%.*s' is not a token id in [0, %u)\n",
				(int)strcspn(s, " ,\t\n"), s, aw_tok_n_tokens(t));
			free(ids);
			return -1;
		}
		if (n == cap) {
			int32_t *p = realloc(ids, (cap *= 2) * sizeof(*ids));
			if (!p) {
				free(ids);
				ids = NULL;
				break;
			}
			ids = p;
		}
		ids[n++] = (int32_t)v;
		s = end;
	}
	if (!ids) {
		fprintf(stderr, "aw-infer: out of memory\n");
		return -1;
	}
	*ret = ids;
	return (long)n;
}

int infer_tok_run(const struct aw_gguf *g, const char *tokenize, const char *detokenize, bool bos,
		  bool special)
{
	struct aw_tok *t = load(g);
	int status = 1;

	if (!t)
		return 1;
	if (tokenize) {
		size_t len;
		char *text = NULL;
		int32_t *ids;
		size_t n;
		if (strcmp(tokenize, "-") == 0) {
			text = read_stdin(&len);
			if (!text) {
				fprintf(stderr, "aw-infer: reading standard input: %s\n",
					strerror(errno));
				goto out;
			}
		}
		int r = aw_tok_encode_alloc(
			t, text ? text : tokenize, text ? len : strlen(tokenize),
			(bos ? AW_TOK_ADD_BOS : 0) | (special ? AW_TOK_PARSE_SPECIAL : 0), &ids,
			&n);
		free(text);
		if (r < 0) {
			fprintf(stderr, "aw-infer: --tokenize: %s\n", strerror(-r));
			goto out;
		}
		for (size_t i = 0; i < n; i++)
			printf(i ? " %d" : "%d", ids[i]);
		printf("\n");
		free(ids);
		status = 0;
	} else {
		int32_t *ids;
		long n = parse_ids(t, detokenize, &ids);
		if (n < 0) {
			status = 2;
			goto out;
		}
		size_t need;
		unsigned flags = special ? AW_TOK_RENDER_SPECIAL : 0;
		int r = aw_tok_decode(t, ids, (size_t)n, flags, NULL, 0, &need);
		char *out = malloc(need + 1);
		if (out && (r == 0 || r == -ENOSPC))
			r = aw_tok_decode(t, ids, (size_t)n, flags, out, need, &need);
		if (out && r == 0) {
			fwrite(out, 1, need, stdout);
			printf("\n");
			status = 0;
		} else {
			fprintf(stderr, "aw-infer: --detokenize: %s\n",
				strerror(out ? -r : ENOMEM));
		}
		free(out);
		free(ids);
	}
	if (fflush(stdout) != 0)
		status = 1;
out:
	aw_tok_free(t);
	return status;
}

int infer_tok_prompt(const struct aw_gguf *g, const char *text, bool special, int32_t n_vocab,
		     int32_t **ret_ids, long *ret_n, struct aw_tok **ret_tok)
{
	struct aw_tok *t = load(g);
	int32_t *ids;
	size_t n;

	if (!t)
		return 1;
	int r = aw_tok_encode_alloc(t, text, strlen(text),
				    AW_TOK_ADD_SPECIAL | (special ? AW_TOK_PARSE_SPECIAL : 0), &ids,
				    &n);
	if (r < 0) {
		fprintf(stderr, "aw-infer: -p: %s\n", strerror(-r));
		aw_tok_free(t);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= n_vocab) {
			fprintf(stderr, "aw-infer: the tokenizer has %u tokens, the model %d\n",
				aw_tok_n_tokens(t), n_vocab);
			free(ids);
			aw_tok_free(t);
			return 1;
		}
	}
	if (n == 0) {
		fprintf(stderr, "aw-infer: -p gives no tokens\n");
		free(ids);
		aw_tok_free(t);
		return 2;
	}
	*ret_ids = ids;
	*ret_n = (long)n;
	*ret_tok = t;
	return 0;
}
