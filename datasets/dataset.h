/* dataset.h — streaming reader of the released SCBench files (spec/scbench.md §3):
 * data/scbench_<name>.jsonl or .jsonl.gz (zlib's gz* functions read plain and gzip alike),
 * one session (JSON object) per line. Lines are read one at a time into a growable buffer,
 * so a 361 MB file with 10 MB lines never sits in memory whole.
 *
 * Errors name the file, the 1-based line number and the field:
 *   "data/scbench_kv.jsonl:17: field 'multi_turns' missing"
 *   "data/scbench_kv.jsonl:3: invalid JSON near byte 120"
 *   "data/scbench_kv.jsonl.gz: truncated gzip stream"
 *   "data/scbench_kv.jsonl: empty file"
 * A bad line (SCB_E_FORMAT from scb_dataset_next) leaves the reader usable: the next call
 * goes on with the following line. A stream error (truncated gzip, read error) is final:
 * every later call returns it again. */
#ifndef SCB_DATASETS_DATASET_H
#define SCB_DATASETS_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/session.h"
#include "kernels/status.h"
#include "kernels/util.h"

struct cJSON;
struct scb_dataset;

/* Called once per schema problem found in a line: file, 1-based line, the field path
 * ("multi_turns[2].answer", "" for the line as a whole) and what is wrong. */
typedef void (*scb_dataset_issue_fn)(void *user, const char *file, long line, const char *field,
                                     const char *msg);

/* Open path for reading (plain or gzip). *out owned by the caller (scb_dataset_close).
 * Returns SCB_E_IO when the file cannot be opened. */
int scb_dataset_open(struct scb_dataset **out, const char *path, struct scb_ctx *ctx);

/* Read the next session into *s (zeroed first; the caller frees it with scb_session_fini).
 * Returns 1 with a session, 0 at the end, < 0 on error (*s then holds nothing):
 * SCB_E_FORMAT for a bad line (invalid JSON, missing or mistyped field; the reader goes on
 * with the next line on the following call), for a truncated gzip stream, or for an empty
 * file (no session at all); SCB_E_IO for a read error; SCB_E_NOMEM.
 * s->index counts the sessions returned so far (0-based row index, bad lines included, as
 * the row index of the file). Blank lines are skipped. */
int scb_dataset_next(struct scb_dataset *r, struct scb_session *s, struct scb_ctx *ctx);

/* Report every schema problem of a line to fn (instead of stopping at the first one); the
 * ctx message of scb_dataset_next still names the first. fn == NULL turns this off. */
void scb_dataset_set_issue_fn(struct scb_dataset *r, scb_dataset_issue_fn fn, void *user);

/* Nonzero once the reader hit a final stream error (truncated or corrupt gzip, read error,
 * empty file): later scb_dataset_next calls only repeat it. */
int scb_dataset_failed(const struct scb_dataset *r);

/* Close; NULL-safe. */
void scb_dataset_close(struct scb_dataset *r);

/* The path given to open (borrowed) and the 1-based number of the last line read. */
const char *scb_dataset_path(const struct scb_dataset *r);
long        scb_dataset_line(const struct scb_dataset *r);

/* Convert one parsed record to a session (spec §3.2): "context" as a string or a list of
 * integers, else the "input" fallback; "multi_turns" with per-turn "input", "answer"
 * (string / number / list), "options", "task", "name"; top-level "id", "lang", "repo",
 * "task". Every problem is passed to fn (may be NULL) with file and line as given; the
 * first also goes to ctx as "file:line: field 'X' ...". Returns SCB_OK or SCB_E_FORMAT
 * (*s then holds nothing) or SCB_E_NOMEM. */
int scb_session_from_json(const struct cJSON *obj, const char *file, long line,
                          struct scb_session *s, scb_dataset_issue_fn fn, void *user,
                          struct scb_ctx *ctx);

/* Serialize a session as one released-format JSON line (no trailing newline) appended to
 * out: {"id", "context", "multi_turns": [{"input", "answer", ["options"], ["task"],
 * ["name"]}], ["lang", "repo", "task"]}. Fields are written in that order. */
int scb_session_to_json(const struct scb_session *s, struct scb_buf *out, struct scb_ctx *ctx);

/* Find the file of a task in dir: dir/scbench_<t>.jsonl, dir/scbench_<t>.jsonl.gz, then
 * the pre-2024-12-14 names dir/multi_turn_<t>.jsonl[.gz] (§3.1). task may be given as
 * "scbench_kv", "multi_turn_kv" or "kv". *path owned by the caller (scb_free).
 * SCB_E_NOTFOUND (message lists the names tried) when none exists. */
int scb_dataset_resolve(const char *dir, const char *task, char **path, struct scb_ctx *ctx);

/* The task a file name says ("…/scbench_kv.jsonl.gz" -> "scbench_kv", also from
 * multi_turn_<t>); writes "" when the name follows neither pattern. */
void scb_dataset_task_from_path(const char *path, char *task, size_t cap);

/* Append the Python str() of an int list ("[1, -2, 3]", "[]") to out. */
int scb_format_int_list(const int64_t *v, size_t n, struct scb_buf *out);

/* Number of Unicode code points of UTF-8 text (Python len of the decoded string). */
size_t scb_utf8_length(const char *s, size_t n);

#endif
