/* pystr.h — Python str semantics on code-point arrays, for scorers that must agree with
 * SCBench's Python code character for character: decoding UTF-8 into code points, str.lower
 * (full mappings and the Final_Sigma rule), str.upper, str.strip/str.split (Python whitespace),
 * `in` (substring), and encoding back to UTF-8. Invalid UTF-8 bytes decode to U+FFFD.
 * Lengths and indices are in code points, as Python's are. */
#ifndef SCB_TASKS_PYSTR_H
#define SCB_TASKS_PYSTR_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/util.h"

/* A Python-like string: n code points in cp (owned, NULL when n == 0 is allowed). */
struct scb_pystr {
    uint32_t *cp;
    size_t    n;
    size_t    cap;
};

/* Decode UTF-8 s[0..len) into *out (appends to an initialised/zeroed struct). SCB_OK or NOMEM. */
int  scb_pystr_from_utf8(struct scb_pystr *out, const char *s, size_t len);
int  scb_pystr_push(struct scb_pystr *s, uint32_t cp);
void scb_pystr_fini(struct scb_pystr *s);
/* Encode s[b..e) as UTF-8, appended to out. */
int  scb_pystr_to_utf8(const struct scb_pystr *s, size_t b, size_t e, struct scb_buf *out);

/* out = lower(in) / upper(in) as Python's str.lower / str.upper (out zeroed or emptied first). */
int scb_pystr_lower(const struct scb_pystr *in, struct scb_pystr *out);
int scb_pystr_upper(const struct scb_pystr *in, struct scb_pystr *out);
/* Convenience: UTF-8 -> lowered UTF-8 (appended to out). */
int scb_pystr_lower_utf8(const char *s, size_t len, struct scb_buf *out);

/* Python str.isspace for one code point. */
int scb_pystr_isspace(uint32_t cp);
/* str.strip(): the span [*b, *e) of s without leading/trailing whitespace. */
void scb_pystr_strip(const struct scb_pystr *s, size_t *b, size_t *e);
/* Byte version of strip for UTF-8 text: span [*b, *e) in bytes. */
void scb_pystr_strip_utf8(const char *s, size_t len, size_t *b, size_t *e);
/* Find needle[nb..ne) in hay[hb..he) (Python str.find on the slices). Returns the index in hay
 * (absolute) or (size_t)-1. An empty needle is found at hb. */
size_t scb_pystr_find(const struct scb_pystr *hay, size_t hb, size_t he,
                      const struct scb_pystr *needle, size_t nb, size_t ne);
/* Next whitespace-separated word of s from *pos (str.split() semantics): returns 1 and the
 * span [*wb, *we) or 0 when no word is left. */
int scb_pystr_next_word(const struct scb_pystr *s, size_t *pos, size_t *wb, size_t *we);

#endif
