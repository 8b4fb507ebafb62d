/* tok-cli — encode or decode with a GGUF's tokenizer, for the scripts that
 * compare against llama.cpp (tests/bench/compare-tok.sh, tests/data/
 * make-tok-golden.py).
 *
 *   tok-cli [--bos] [--special] MODEL.gguf FILE|-      ids of all of FILE's bytes
 *   tok-cli --decode MODEL.gguf "ID ID ..."            the text, raw bytes
 *
 * Output of encode: the ids separated by ", " inside [ ] on one line, which
 * is llama-tokenize --ids's format, so the two can be compared with cmp.
 * Exit status: 0, 1 on a load or encode error, 2 on a usage error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok.h"

static int usage(void)
{
	fprintf(stderr, "usage: tok-cli [--bos] [--special] MODEL.gguf FILE|-\n"
			"       tok-cli --decode MODEL.gguf \"ID ID ...\"\n");
	return 2;
}

static char *read_all(const char *path, size_t *ret_n)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (!f)
		return NULL;
	for (;;) {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			char *p = realloc(buf, cap);
			if (!p) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = p;
		}
		size_t k = fread(buf + n, 1, cap - n, f);
		n += k;
		if (k == 0)
			break;
	}
	if (f != stdin)
		fclose(f);
	*ret_n = n;
	return buf;
}

int main(int argc, char **argv)
{
	unsigned flags = 0;
	int decode = 0, i = 1;

	for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (strcmp(argv[i], "--bos") == 0)
			flags |= AW_TOK_ADD_SPECIAL;
		else if (strcmp(argv[i], "--special") == 0)
			flags |= AW_TOK_PARSE_SPECIAL;
		else if (strcmp(argv[i], "--decode") == 0)
			decode = 1;
		else
			return usage();
	}
	if (argc - i != 2)
		return usage();

	struct aw_err err = {0};
	struct aw_gguf *g = NULL;
	struct aw_tok *t = NULL;
	int r = aw_gguf_open(argv[i], &g, &err);
	if (r == 0)
		r = aw_tok_new_from_gguf(g, &t, &err);
	aw_gguf_close(g);
	if (r < 0) {
		fprintf(stderr, "tok-cli: %s: %s\n", argv[i], err.msg[0] ? err.msg : strerror(-r));
		return 1;
	}
	if (decode) {
		size_t cap = 16, n = 0;
		int32_t *ids = malloc(cap * sizeof(*ids));
		char *p = argv[i + 1], *end;
		for (;;) {
			while (*p == ' ' || *p == ',' || *p == '[' || *p == ']')
				p++;
			if (!*p)
				break;
			long v = strtol(p, &end, 10);
			if (end == p) {
				fprintf(stderr, "tok-cli: bad id list\n");
				return 2;
			}
			if (n == cap)
				ids = realloc(ids, (cap *= 2) * sizeof(*ids));
			ids[n++] = (int32_t)v;
			p = end;
		}
		size_t need;
		r = aw_tok_decode(t, ids, n, 0, NULL, 0, &need);
		char *out = malloc(need + 1);
		if (r == -ENOSPC)
			r = aw_tok_decode(t, ids, n, 0, out, need, &need);
		if (r < 0) {
			fprintf(stderr, "tok-cli: decode: %s\n", strerror(-r));
			return 1;
		}
		fwrite(out, 1, need, stdout);
		free(out);
		free(ids);
		aw_tok_free(t);
		return 0;
	}
	size_t len;
	char *text = read_all(argv[i + 1], &len);
	if (!text) {
		fprintf(stderr, "tok-cli: %s: %s\n", argv[i + 1], strerror(errno));
		return 1;
	}
	int32_t *ids;
	size_t n;
	r = aw_tok_encode_alloc(t, text, len, flags, &ids, &n);
	if (r < 0) {
		fprintf(stderr, "tok-cli: encode: %s\n", strerror(-r));
		return 1;
	}
	putchar('[');
	for (size_t k = 0; k < n; k++)
		printf(k ? ", %d" : "%d", ids[k]);
	puts("]");
	free(ids);
	free(text);
	aw_tok_free(t);
	return 0;
}
