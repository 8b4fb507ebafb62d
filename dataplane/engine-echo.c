/* engine-echo.c — the transport test engine (see engine.h).
 *
 * No model: GENERATE streams the prompt back one whitespace-delimited word
 * per token (a word keeps its following blanks), up to max_new_tokens, then
 * finishes with "stop" (prompt exhausted) or "length". An optional delay per
 * token (aw_engine_echo_set_delay) stands in for decode time so that
 * overload and cancellation can be tested. Output is a pure function of the
 * request, so tests compare it byte for byte.
 */
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct echo {
	uint32_t delay_us; /* per token */
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int echo_generate(void *state, const struct aw_proto_req *req, aw_engine_emit_fn *emit,
			 void *emit_ctx, struct aw_engine_result *res)
{
	struct echo *st = state;
	const char *p = req->prompt.p;
	size_t n = req->prompt.len, i = 0;
	uint64_t t0 = now_us();

	if (req->temperature < 0) {
		snprintf(res->error, sizeof(res->error), "temperature %g < 0", req->temperature);
		return -EINVAL;
	}
	/* count the prompt's words ("prefill") */
	for (size_t k = 0; k < n; k++)
		if (p[k] != ' ' && (k == 0 || p[k - 1] == ' '))
			res->prompt_tokens++;
	res->prefill_us = (uint32_t)(now_us() - t0);
	t0 = now_us();
	res->finish = AW_PROTO_FINISH_STOP;
	while (i < n) {
		size_t j = i;

		if (res->gen_tokens == req->max_new_tokens) {
			res->finish = AW_PROTO_FINISH_LENGTH;
			break;
		}
		while (j < n && p[j] == ' ') /* leading blanks belong to the first word */
			j++;
		if (j == n)
			break; /* only blanks left: no word */
		while (j < n && p[j] != ' ')
			j++;
		while (j < n && p[j] == ' ')
			j++;
		if (st->delay_us) {
			struct timespec ts = {0, (long)st->delay_us * 1000};

			nanosleep(&ts, NULL);
		}
		res->gen_tokens++;
		if (emit(emit_ctx, p + i, j - i, 1))
			break; /* the caller knows why */
		i = j;
	}
	res->decode_us = (uint32_t)(now_us() - t0);
	return 0;
}

static void echo_describe(void *state, char *buf, size_t cap)
{
	struct echo *st = state;

	snprintf(buf, cap, "{\"engine\": \"echo\", \"model\": null, \"delay_us\": %u}",
		 st->delay_us);
}

static void echo_free(void *state)
{
	free(state);
}

static const struct aw_engine_ops echo_ops = {
	.name = "echo",
	.generate = echo_generate,
	.describe = echo_describe,
	.free = echo_free,
};

int aw_engine_echo_init(struct aw_engine *e, uint32_t delay_us)
{
	struct echo *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	st->delay_us = delay_us;
	e->ops = &echo_ops;
	e->state = st;
	return 0;
}

void aw_engine_fini(struct aw_engine *e)
{
	if (e->ops && e->ops->free)
		e->ops->free(e->state);
	e->ops = NULL;
	e->state = NULL;
}
