/* grammar-int.h — internals shared by grammar.c (schema compiler, matcher)
 * and grammar-re.c (regular expression → DFA). Not installed. */
#ifndef AW_GRAMMAR_INT_H
#define AW_GRAMMAR_INT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A byte-level DFA over the characters a JSON string may hold unescaped
 * (no '"', '\\' or control characters; non-ASCII as valid UTF-8). State 0 is
 * the start; next[s * 256 + b] is the next state or -1 (dead: every state
 * kept can still reach an accepting one). */
struct aw_gdfa {
	uint32_t n;	 /* states */
	int32_t *next;	 /* (n, 256) */
	uint8_t *accept; /* (n) 1: the string may end here */
	uint32_t *dist;	 /* (n) fewest bytes to an accepting state */
};

void aw_gdfa_fini(struct aw_gdfa *d);

/* Compile the ECMA-262-style 'pattern' (a subset; see grammar.h) to a DFA
 * matching whole strings, intersected with "length in [min_len, max_len]
 * characters" (max_len UINT32_MAX: unbounded). At most 'max_states' states
 * and about 'max_us' microseconds of construction.
 * Returns 0 and fills *ret, -ENOTSUP (err names the construct), -E2BIG
 * (too many states), -EINVAL (no string matches) or -ENOMEM. */
int aw_gdfa_compile(const char *pattern, size_t len, uint32_t min_len, uint32_t max_len,
		    uint32_t max_states, long max_us, struct aw_gdfa *ret, struct aw_err *err);

#endif
