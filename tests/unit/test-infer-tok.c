/* test-infer-tok — aw-infer --tokenize / --detokenize / --bos / --special on a
 * vocabulary-only GGUF written here: the ids printed, standard input read to
 * the end (NULs and invalid UTF-8 included), the text printed back, and the
 * usage errors (exit 2). $AW_INFER is the binary.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gguf.h"
#include "aw-skip.h"

static char model[64] = "/tmp/test-infer-tok-XXXXXX";
static char empty[64] = "/tmp/test-infer-tok-e-XXXXXX";

/* <unk> <s> </s>, 256 byte tokens, then these pieces */
enum { P_SPACE = 259, P_A, P_B, P_SA, P_SAB };

static void write_model(void)
{
	static char text[264][16];
	const char *tok[264];
	float score[264] = {0};
	int32_t type[264];
	const char *pieces[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81\x61",
				"\xe2\x96\x81\x61\x62"};
	const float ps[] = {-10, -20, -21, -1, -0.5f};
	uint32_t n = 0;

	snprintf(text[n], 16, "<unk>");
	type[n++] = 2;
	snprintf(text[n], 16, "<s>");
	type[n++] = 3;
	snprintf(text[n], 16, "</s>");
	type[n++] = 3;
	for (int b = 0; b < 256; b++, n++) {
		snprintf(text[n], 16, "<0x%02X>", b);
		type[n] = 6;
	}
	for (int i = 0; i < 5; i++, n++) {
		snprintf(text[n], 16, "%s", pieces[i]);
		type[n] = 1;
		score[n] = ps[i];
	}
	for (uint32_t i = 0; i < n; i++)
		tok[i] = text[i];

	struct aw_gguf_writer *w;
	struct aw_err err;
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama"), 0);
	assert_int_equal(aw_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", n, tok, NULL), 0);
	assert_int_equal(
		aw_gguf_writer_set_arr(w, "tokenizer.ggml.scores", AW_GGUF_TYPE_FLOAT32, n, score),
		0);
	assert_int_equal(
		aw_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", AW_GGUF_TYPE_INT32, n, type),
		0);
	int fd = mkstemp(model);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(aw_gguf_writer_write(w, model, &err), 0);
	aw_gguf_writer_free(w);

	/* a GGUF without any tokenizer keys */
	assert_int_equal(aw_gguf_writer_new(&w), 0);
	assert_int_equal(aw_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
	fd = mkstemp(empty);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(aw_gguf_writer_write(w, empty, &err), 0);
	aw_gguf_writer_free(w);
}

/* Run aw-infer with 'argv' (NULL-terminated, argv[0] ignored) and 'in' on
 * standard input; returns the exit status, output in 'out'. */
static int run(const char *const *argv, const char *in, size_t in_len, char *out, size_t cap)
{
	int pin[2], pout[2];
	assert_int_equal(pipe(pin), 0);
	assert_int_equal(pipe(pout), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		close(pin[1]);
		close(pout[0]);
		execv(getenv("AW_INFER"), (char *const *)argv);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	if (in_len)
		assert_int_equal(write(pin[1], in, in_len), (ssize_t)in_len);
	close(pin[1]);
	size_t n = 0;
	ssize_t k;
	while ((k = read(pout[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	close(pout[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define RUN(in, inlen, ...)                                                                        \
	run((const char *const[]){"aw-infer", "-m", model, __VA_ARGS__, NULL}, in, inlen, out,     \
	    sizeof(out))

static void tokenize(void **state)
{
	(void)state;
	char out[4096], want[256];

	assert_int_equal(RUN(NULL, 0, "--tokenize", "ab"), 0);
	snprintf(want, sizeof(want), "%d\n", P_SAB);
	assert_string_equal(out, want);
	assert_int_equal(RUN(NULL, 0, "--tokenize", "ab", "--bos"), 0);
	snprintf(want, sizeof(want), "1 %d\n", P_SAB);
	assert_string_equal(out, want);
	/* special-token text: bytes unless --special */
	assert_int_equal(RUN(NULL, 0, "--tokenize", "</s>"), 0);
	snprintf(want, sizeof(want), "%d %d %d %d %d\n", P_SPACE, 3 + '<', 3 + '/', 3 + 's',
		 3 + '>');
	assert_string_equal(out, want);
	assert_int_equal(RUN(NULL, 0, "--tokenize", "</s>", "--special"), 0);
	assert_string_equal(out, "2\n");
	/* standard input, every byte: a NUL, an invalid byte, a newline */
	assert_int_equal(RUN("a\0b\xff\n", 5, "--tokenize", "-"), 0);
	snprintf(want, sizeof(want), "%d %d %d %d %d\n", P_SA, 3 + 0, P_B, 3 + 0xff, 3 + '\n');
	assert_string_equal(out, want);
	/* empty input: an empty line */
	assert_int_equal(RUN(NULL, 0, "--tokenize", "-"), 0);
	assert_string_equal(out, "\n");
}

static void detokenize(void **state)
{
	(void)state;
	char out[4096], ids[64];

	snprintf(ids, sizeof(ids), "1 %d %d 2", P_SAB, P_SPACE);
	assert_int_equal(RUN(NULL, 0, "--detokenize", ids), 0);
	assert_string_equal(out, "ab \n");
	assert_int_equal(RUN(NULL, 0, "--detokenize", ids, "--special"), 0);
	assert_string_equal(out, "<s>ab </s>\n");
	snprintf(ids, sizeof(ids), "%d,%d", 3 + 0xc3, 3 + 0xa9);
	assert_int_equal(RUN(NULL, 0, "--detokenize", ids), 0);
	assert_string_equal(out, "\xc3\xa9\n");
}

static void errors(void **state)
{
	(void)state;
	char out[4096];

	assert_int_equal(RUN(NULL, 0, "--detokenize", "1 x"), 2);
	assert_int_equal(RUN(NULL, 0, "--detokenize", "99999"), 2);
	assert_int_equal(RUN(NULL, 0, "--detokenize", "-1"), 2);
	assert_int_equal(RUN(NULL, 0, "--tokenize", "a", "--detokenize", "1"), 2);
	assert_int_equal(RUN(NULL, 0, "--tokenize", "a", "--prompt-ids", "1"), 2);
	assert_int_equal(RUN(NULL, 0, "--bos", "--prompt-ids", "1"), 2);
	assert_int_equal(RUN(NULL, 0, "--tokenize"), 2);
	/* no tokenizer in the file: a clear error, exit 1 */
	assert_int_equal(
		run((const char *const[]){"aw-infer", "-m", empty, "--tokenize", "a", NULL}, NULL,
		    0, out, sizeof(out)),
		1);
}

/* -p goes through the tokenizer: same ids as --prompt-ids of its encoding
 * (BOS, then ▁ab), on a tiny random model that carries this vocabulary. */
static void prompt(void **state)
{
	(void)state;
	char out[4096], out2[4096], tiny[64] = "/tmp/test-infer-tok-m-XXXXXX", ids[32];
	const char *mk = getenv("AW_MKMODEL");

	if (!mk)
		AW_SKIP("AW_MKMODEL not set");
	int fd = mkstemp(tiny);
	assert_true(fd >= 0);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		execl(mk, "aw-mkmodel", "--out", tiny, "--tokenizer-from", model, (char *)NULL);
		_exit(127);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	snprintf(ids, sizeof(ids), "1 %d", P_SAB);
	assert_int_equal(run((const char *const[]){"aw-infer", "-m", tiny, "-p", "ab", "-n", "6",
						   "--temp", "0", "--ids", NULL},
			     NULL, 0, out, sizeof(out)),
			 0);
	assert_int_equal(run((const char *const[]){"aw-infer", "-m", tiny, "--prompt-ids", ids,
						   "-n", "6", "--temp", "0", "--ids", NULL},
			     NULL, 0, out2, sizeof(out2)),
			 0);
	assert_string_equal(out, out2);
	assert_true(strlen(out) > 6);
	/* and as text: whatever comes out is whole UTF-8 characters */
	assert_int_equal(run((const char *const[]){"aw-infer", "-m", tiny, "-p", "ab", "-n", "6",
						   "--temp", "0", NULL},
			     NULL, 0, out, sizeof(out)),
			 0);
	unlink(tiny);
}

int main(void)
{
	if (!getenv("AW_INFER"))
		return 77;
	write_model();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tokenize),
		cmocka_unit_test(detokenize),
		cmocka_unit_test(errors),
		cmocka_unit_test(prompt),
	};
	int r = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(model);
	unlink(empty);
	return r;
}
