/* grammar.h — constrained decoding: JSON Schema compiled to a grammar, and a
 * per-sequence matcher that gives the allowed-token mask at each step.
 *
 * Three objects, three lifetimes:
 *
 *   struct aw_grammar        a compiled schema. Immutable after compile except
 *                            for its mask cache (guarded by a mutex), so one
 *                            grammar may serve any number of matchers/threads.
 *   struct aw_grammar_vocab  the token trie and per-token tables of one
 *                            tokenizer, built once (≈0.2 s for 128k tokens)
 *                            and shared read-only by every matcher.
 *   struct aw_grammar_matcher  one sequence's position in the grammar: a set
 *                            of parser stacks plus the history rollback needs.
 *
 * What the grammar generates. A JSON Schema names a set of JSON values; the
 * grammar generates a subset of it, in one fixed layout so that the model
 * never wanders into whitespace: Python's json.dumps() separators (", " and
 * ": "; AW_GRAMMAR_COMPACT: "," and ":"), object members in the schema's
 * `properties` order (optional ones may be skipped, undeclared ones are not
 * generated unless the object is a map: no `properties` and an
 * `additionalProperties` schema), strings without \u escapes, numbers
 * without exponents (at most 15 integer and 6 fraction digits). Every prefix
 * the matcher allows can be completed to a value that validates.
 *
 * The supported subset (other keywords JSON Schema defines are refused,
 * naming the keyword and its path; words it does not define are ignored,
 * as validators ignore them):
 *   type (one or a list), properties, required, additionalProperties,
 *   patternProperties (when no declared name matches), items (schema or
 *   draft-4 tuple list), prefixItems, minItems, maxItems, enum, const,
 *   anyOf, oneOf (when its alternatives provably never both match), allOf
 *   and keywords beside anyOf/oneOf (merged: properties by name, required
 *   united, other keywords equal), $ref to "#", "#/definitions/..",
 *   "#/$defs/.." or any local JSON pointer, minLength, maxLength, pattern
 *   (ECMA-style subset: classes, groups, alternation, quantifiers, anchors
 *   where the string starts/ends; refused beyond AW_GRAMMAR_MAX_DFA
 *   states), format (every format JSON Schema defines: date-time, date,
 *   time, duration, email, idn-email, hostname, idn-hostname, ipv4, ipv6,
 *   uri, uri-reference, iri, iri-reference, uri-template, uuid,
 *   json-pointer, relative-json-pointer, regex; other names are
 *   annotations), minimum, maximum, exclusiveMinimum, exclusiveMaximum
 *   (draft-4 booleans or numbers), minProperties/maxProperties when the
 *   required/declared members already satisfy them, uniqueItems with
 *   maxItems <= 1.
 * Limits: schema nesting (the JSON parser's 64; 128 through $ref and
 * merges), AW_GRAMMAR_MAX_NODES nodes, AW_GRAMMAR_MAX_DFA regex states,
 * AW_GRAMMAR_MAX_PROPS properties per object, AW_GRAMMAR_COMPILE_US of CPU
 * time; past any of them compile refuses. A schema without a finite value
 * (a required member containing itself) is refused; optional parts without
 * one are dropped, so the matcher is never stuck.
 *
 * How a mask is computed (see grammar.c for the full story): the matcher is
 * a pushdown automaton over bytes (objects, arrays, literal tries, string
 * and number lexers as frames on a stack, nondeterminism from anyOf as a
 * set of stacks). The vocabulary's token bytes form a flat pre-order trie
 * that is walked once per mask, stepping the automaton per trie edge and
 * skipping whole subtrees when a prefix dies. Inside free string content,
 * where nearly every token is allowed, the walk is replaced by per-token
 * tables precomputed per vocabulary: a bitset of the tokens that are plain
 * string content of at most k characters, OR-ed with a walk over the few
 * thousand tokens that contain a quote or a backslash. Inside a pattern
 * string, the DFA is stepped inline and per-vocabulary symbol tables give
 * the tokens that stay in a permissive state without a walk. Masks are
 * cached per grammar, keyed by the matcher state.
 */
#ifndef AW_GRAMMAR_H
#define AW_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct aw_json;
struct aw_tok;
struct aw_sample_hook;
struct aw_grammar;
struct aw_grammar_vocab;
struct aw_grammar_matcher;

#define AW_GRAMMAR_MAX_NODES  20000 /* grammar nodes per schema */
#define AW_GRAMMAR_MAX_DFA    2000  /* DFA states per regex (pattern/format) */
#define AW_GRAMMAR_MAX_PROPS  1000  /* properties per object */
#define AW_GRAMMAR_MAX_DEPTH  64    /* nested containers in a generated value */
#define AW_GRAMMAR_COMPILE_US 50000 /* compile budget: µs of thread CPU time */

/* Flags of struct aw_grammar_opts. */
#define AW_GRAMMAR_COMPACT (1u << 0) /* "," and ":" separators (default ", " / ": ") */

struct aw_grammar_opts {
	unsigned flags;	    /* AW_GRAMMAR_* */
	const char *prefix; /* NULL or bytes forced before the JSON value (e.g. "<tool_call>\n") */
	const char *suffix; /* NULL or bytes forced after it (e.g. "\n</tool_call>") */
};

/* Compile the JSON Schema in 'buf' (len bytes of JSON text); 'o' may be NULL.
 * Returns 0 and sets *ret (free with aw_grammar_free()), -EBADMSG for
 * malformed JSON, -ENOTSUP for a keyword or construct outside the subset
 * (err->msg names it and its JSON path, e.g. "keyword 'not' at
 * /properties/a"), -E2BIG when a limit is exceeded (err names it), -EINVAL
 * for a schema no value satisfies (e.g. minimum > maximum), or -ENOMEM. */
int aw_grammar_compile(const char *buf, size_t len, const struct aw_grammar_opts *o,
		       struct aw_grammar **ret, struct aw_err *err);

/* Same from a parsed schema (not kept). */
int aw_grammar_compile_json(const struct aw_json *schema, const struct aw_grammar_opts *o,
			    struct aw_grammar **ret, struct aw_err *err);

/* A grammar that allows every token at every step, EOS included: sampling
 * under it is sampling without a grammar. Returns 0 or -ENOMEM. */
int aw_grammar_new_any(struct aw_grammar **ret);

/* Release 'g' (NULL is fine). No matcher may still use it. */
void aw_grammar_free(struct aw_grammar *g);

/* Number of grammar nodes (a size measure for reports). */
size_t aw_grammar_n_nodes(const struct aw_grammar *g);

/* Build the per-vocabulary tables from 't' (kept: it must outlive 'v';
 * aw_grammar_forced() encodes with it).
 * Control, unused and undefined tokens are never allowed inside the grammar;
 * end-of-generation tokens (aw_tok_is_eog) are allowed exactly when the
 * value is complete. Returns 0 and sets *ret, or -ENOMEM. */
int aw_grammar_vocab_new(const struct aw_tok *t, struct aw_grammar_vocab **ret);
void aw_grammar_vocab_free(struct aw_grammar_vocab *v);
int32_t aw_grammar_vocab_n(const struct aw_grammar_vocab *v); /* n_vocab: mask bits */

/* A matcher at the start of 'g' for vocabulary 'v' (both must outlive it).
 * Returns 0 and sets *ret, or -ENOMEM. */
int aw_grammar_matcher_new(struct aw_grammar *g, const struct aw_grammar_vocab *v,
			   struct aw_grammar_matcher **ret);
void aw_grammar_matcher_free(struct aw_grammar_matcher *m);

/* Back to the start (history dropped). */
void aw_grammar_matcher_reset(struct aw_grammar_matcher *m);

/* Write the allowed-token bitset (ceil(n_vocab/64) words, bit t of word t/64
 * set when token t may come next) to 'allowed'. Returns the number of
 * allowed tokens (0: the matcher is stuck, which a well-formed grammar never
 * is) or -ENOMEM. */
int aw_grammar_mask(struct aw_grammar_matcher *m, uint64_t *allowed);

/* Advance by 'token'. Returns 0, or -EINVAL when the token is not allowed
 * (the matcher is unchanged). An EOS token ends the matcher (done). */
int aw_grammar_accept(struct aw_grammar_matcher *m, int32_t token);

/* Advance by raw bytes (e.g. text a caller forces). Returns 0 or -EINVAL
 * (unchanged). Counts as one step for rollback. */
int aw_grammar_accept_bytes(struct aw_grammar_matcher *m, const char *b, size_t n);

/* Undo the last 'n' accepts. Returns 0, or -EINVAL when fewer than n
 * steps were taken (nothing undone). */
int aw_grammar_rollback(struct aw_grammar_matcher *m, size_t n);

/* Finishing (on = 1): from now on allow only what brings the value to its
 * nearest end — no new optional members, items, map entries or digits,
 * strings close as soon as their minimum length is met, patterns move
 * toward acceptance. For a max_tokens budget: turn it on when the budget
 * runs short so the answer still parses. Affects mask and accept alike. */
void aw_grammar_set_finish(struct aw_grammar_matcher *m, int on);

/* Steps that can be rolled back (accepts since the start/reset). */
size_t aw_grammar_n_steps(const struct aw_grammar_matcher *m);

/* Tokens the grammar forces from here (fast-forward): the bytes that every
 * continuation must start with, tokenized, minus the last token (which a
 * longer token could span) unless nothing but EOS can follow them. Writes at most 'cap' ids to 'out' and sets
 * *ret_n; does not accept them (the caller feeds them to the model in one
 * batch and then calls aw_grammar_accept() for each). Returns 0 or -ENOMEM. */
int aw_grammar_forced(struct aw_grammar_matcher *m, int32_t *out, size_t cap, size_t *ret_n);

/* The forced bytes themselves (at most 'cap'; *ret_n set). Returns 0. */
int aw_grammar_forced_bytes(struct aw_grammar_matcher *m, char *out, size_t cap, size_t *ret_n);

/* 1 when the value is complete (EOS would be allowed), else 0. */
int aw_grammar_can_end(struct aw_grammar_matcher *m);

/* 1 after an EOS token was accepted, or when nothing but EOS may follow. */
int aw_grammar_done(struct aw_grammar_matcher *m);

/* Fill 'h' so that aw_sample_pick()/aw_sample_accept() mask and advance 'm',
 * and so that its 'forced' gives aw_grammar_forced()'s tokens (fast-forward),
 * or, when nothing but end-of-generation may follow, the vocabulary's first
 * end-of-generation token (the sampler's EOS list must name it). */
void aw_grammar_sample_hook(struct aw_grammar_matcher *m, struct aw_sample_hook *h);

#endif
