/* log.c — default stderr sink and level handling for aw_log(). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int aw_log_level = AW_LOG_NOTICE;

static aw_log_sink_fn *sink_fn;
static void *sink_ctx;

static const char *const level_names[8] = {
	[AW_LOG_ERR] = "err",	[AW_LOG_WARNING] = "warning", [AW_LOG_NOTICE] = "notice",
	[AW_LOG_INFO] = "info", [AW_LOG_DEBUG] = "debug",
};

void aw_log_set_sink(aw_log_sink_fn *fn, void *ctx)
{
	sink_fn = fn;
	sink_ctx = ctx;
}

int aw_log_parse_level(const char *s)
{
	char *end;
	long v;

	for (int i = AW_LOG_ERR; i <= AW_LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	if (strcmp(s, "error") == 0)
		return AW_LOG_ERR;
	if (strcmp(s, "warn") == 0)
		return AW_LOG_WARNING;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < AW_LOG_ERR || v > AW_LOG_DEBUG)
		return -EINVAL;
	return (int)v;
}

void aw_log_emit(int level, const char *module, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (sink_fn) {
		sink_fn(level, module, line, sink_ctx);
		return;
	}
	if (level < AW_LOG_ERR)
		level = AW_LOG_ERR;
	if (level > AW_LOG_DEBUG)
		level = AW_LOG_DEBUG;
	fprintf(stderr, "%s: %s: %s\n", level_names[level], module, line);
}
