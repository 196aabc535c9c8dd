/* jinja.h — a Jinja2 subset interpreter for chat templates: lexer, parser to an AST, and an
 * evaluator over Python-like values, configured as transformers configures jinja2 for
 * apply_chat_template (trim_blocks, lstrip_blocks, loop controls, HTML autoescape off,
 * `tojson` as json.dumps(ensure_ascii=False), globals raise_exception, strftime_now,
 * namespace, range, dict).
 *
 * Supported: {{ }}, {% %}, {# #}, whitespace control (- and +), if/elif/else, for (loop.*,
 * else, inline `if` filter, tuple unpacking), set (plain, namespace attribute, tuple, block
 * form), macro, break/continue, generation (rendered as its body), the expression grammar of
 * jinja2 (conditional expressions, and/or/not, comparisons, in/not in, is-tests, ~ + - * / //
 * % **, subscripts, slices, attributes, calls, list/tuple/dict literals), common filters,
 * str/dict methods. A construct outside the subset is a compile error naming it and the line.
 * docs/chat-templates.md lists everything. */
#ifndef SCB_HARNESS_JINJA_H
#define SCB_HARNESS_JINJA_H

#include <stddef.h>

#include "kernels/status.h"

struct cJSON;
struct scb_jinja_tmpl;

/* Compile src[0..len). Errors (SCB_E_FORMAT for syntax, SCB_E_UNSUPPORTED for constructs
 * outside the subset) say "line N: ..." on ctx. *out owned; free with scb_jinja_destroy. */
int scb_jinja_compile(struct scb_jinja_tmpl **out, const char *src, size_t len, struct scb_ctx *ctx);
void scb_jinja_destroy(struct scb_jinja_tmpl *t);

/* Render with the variables of the JSON object vars (borrowed; may be NULL). JSON numbers
 * with an integral value become ints, others floats. now_unix: the time strftime_now sees
 * (UTC), 0 = the real local clock as Python's datetime.now(). A template's
 * raise_exception('msg') fails with SCB_E_INVAL and "line N: raise_exception: msg".
 * *out allocated with scb_malloc, NUL-terminated; *out_len (may be NULL) its length. */
int scb_jinja_render(const struct scb_jinja_tmpl *t, const struct cJSON *vars, long long now_unix,
                     char **out, size_t *out_len, struct scb_ctx *ctx);

#endif
