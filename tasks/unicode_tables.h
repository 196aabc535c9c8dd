/* unicode_tables.h — Unicode data for reproducing Python's str semantics in the scorers:
 * full lower/upper case mappings, the two classes Python's Final_Sigma rule looks at,
 * whitespace (str.isspace, = `\s` of `re`), decimal digits (str.isdecimal, = `\d` of `re`)
 * and word characters (`\w` of `re`). The tables are generated from CPython by
 * tools/gen_unicode_tables.py into unicode_tables.c; lookups are binary searches. */
#ifndef SCB_TASKS_UNICODE_TABLES_H
#define SCB_TASKS_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

struct scb_uc_map   { uint32_t cp; uint8_t n; uint32_t to[3]; };  /* cp -> to[0..n) */
struct scb_uc_range { uint32_t lo, hi; };                          /* inclusive */
struct scb_uc_digit { uint32_t lo, hi; int v0; };                  /* value(cp) = v0 + cp - lo */

extern const struct scb_uc_map   scb_uc_lower_map[];   /* str.lower, except U+03A3 (context) */
extern const size_t              scb_uc_lower_map_n;
extern const struct scb_uc_map   scb_uc_upper_map[];   /* str.upper */
extern const size_t              scb_uc_upper_map_n;
extern const struct scb_uc_range scb_uc_cased_ranges[];     /* cased and not case-ignorable */
extern const size_t              scb_uc_cased_ranges_n;
extern const struct scb_uc_range scb_uc_ignorable_ranges[]; /* case-ignorable */
extern const size_t              scb_uc_ignorable_ranges_n;
extern const struct scb_uc_range scb_uc_space_ranges[];
extern const size_t              scb_uc_space_ranges_n;
extern const struct scb_uc_range scb_uc_word_ranges[];
extern const size_t              scb_uc_word_ranges_n;
extern const struct scb_uc_digit scb_uc_digit_ranges[];
extern const size_t              scb_uc_digit_ranges_n;

/* Case mapping of one code point: writes 1..3 code points to out, returns the count. */
int scb_uc_lower(uint32_t cp, uint32_t out[3]);   /* U+03A3 maps to U+03C3 here; see pystr */
int scb_uc_upper(uint32_t cp, uint32_t out[3]);
int scb_uc_is_cased(uint32_t cp);       /* 1 if cased (and not case-ignorable) */
int scb_uc_is_ignorable(uint32_t cp);   /* 1 if case-ignorable */
int scb_uc_is_space(uint32_t cp);       /* Python str.isspace */
int scb_uc_is_word(uint32_t cp);        /* Python re `\w` (str.isalnum or '_') */
int scb_uc_digit_value(uint32_t cp);    /* 0..9 for str.isdecimal characters, else -1 */

#endif
