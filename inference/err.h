/* err.h — the error buffer that parsers of untrusted bytes fill.
 *
 * Every int-returning function in libaw_* returns 0 or -errno. Parsers of
 * untrusted input (GGUF, datagrams, config, tokenizer data) also fill a
 * struct aw_err so that the caller can print one line that names the field
 * and the offset, e.g. "tensor 'blk.3.attn_q.weight': offset 0x1f00 beyond
 * file end (size 0x1e00)". Library code never prints; programs do.
 */
#ifndef AW_ERR_H
#define AW_ERR_H

#include <stdarg.h>
#include <stdio.h>

struct aw_err {
	int code;      /* positive errno value (EBADMSG, EINVAL, ENOMEM, ...) */
	char msg[160]; /* NUL-terminated human-readable message */
};

/* Fill 'err' (which may be NULL) and return -code, so that a parser can
 * write `return aw_err_set(err, EBADMSG, "...", ...);`. */
__attribute__((format(printf, 3, 4))) static inline int aw_err_set(struct aw_err *err, int code,
								   const char *fmt, ...)
{
	if (err) {
		va_list ap;

		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}

/* Reset 'err' to "no error". */
static inline void aw_err_clear(struct aw_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

#endif
