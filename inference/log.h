/* log.h — levelled logging for programs, with a replaceable sink.
 *
 * Library code (libaw_*) logs at debug level at most; programs log errors.
 * aw_log() checks the level before formatting, so a disabled level costs a
 * compare. The daemon replaces the sink with one that forwards to rte_log,
 * which keeps inference/ free of DPDK headers. Hot loops never log.
 */
#ifndef AW_LOG_H
#define AW_LOG_H

enum aw_log_level {
	AW_LOG_ERR = 3,
	AW_LOG_WARNING = 4,
	AW_LOG_NOTICE = 5,
	AW_LOG_INFO = 6,
	AW_LOG_DEBUG = 7,
};

/* A sink receives one formatted line without a trailing newline. */
typedef void aw_log_sink_fn(int level, const char *module, const char *line, void *ctx);

extern int aw_log_level; /* messages above this level are dropped; default AW_LOG_NOTICE */

/* Replace the sink (NULL restores the default: standard error). */
void aw_log_set_sink(aw_log_sink_fn *fn, void *ctx);

/* Parse "err|warning|notice|info|debug" (or 3..7). Returns the level or -EINVAL. */
int aw_log_parse_level(const char *s);

__attribute__((format(printf, 3, 4))) void aw_log_emit(int level, const char *module,
						       const char *fmt, ...);

#define aw_log(level, module, ...)                                                                 \
	do {                                                                                       \
		if ((level) <= aw_log_level)                                                       \
			aw_log_emit((level), (module), __VA_ARGS__);                               \
	} while (0)

#endif
