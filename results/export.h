/* export.h — getting results out of the database in the formats other tools read:
 *  - SCBench's own prediction JSONL (spec/scbench.md §8.1), byte-for-byte as the Python
 *    original writes it (json.dumps(..., ensure_ascii=False), keys in its order), so the
 *    official compute_scores.py can score a run of this program;
 *  - SCBench's summary lines (§8.4): per-turn scores (multi-turn) or the pooled score
 *    (multi-request, "scdq_mode"), percent with 3 decimals, Mix tasks as "a,b";
 *  - CSV of the turns, runs or bench table (RFC 4180 quoting, header row, NULL = empty);
 *  - a whole run as the Python original lays out its result folder (§9).
 * Everything reads through bound parameters; nothing here writes to the database. */
#ifndef SCB_RESULTS_EXPORT_H
#define SCB_RESULTS_EXPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/status.h"
#include "kernels/util.h"
#include "results/db.h"

/* The newest run's id (largest id); SCB_E_NOTFOUND when the database holds no run. */
int scb_export_latest_run(struct scb_db *db, int64_t *run_id, struct scb_ctx *ctx);

/* Write the prediction records of (run, method, task, mode) to f, one JSON object per line,
 * ordered by session then turn: {"id", "turn_idx", "prediction", "ground_truth"} plus
 * "task" (Mix tasks: the turn's sub-task), and "lang", "repo", "func_name" for
 * scbench_repoqa (scbench_repoqa_and_kv: lang and repo always, func_name on repoqa turns).
 * task may be short or canonical; mode is "multi_turn" or "multi_request". *n_lines (may be
 * NULL) receives the number of records; none is not an error. */
int scb_export_predictions(struct scb_db *db, int64_t run_id, const char *method, const char *task,
                           const char *mode, FILE *f, size_t *n_lines, struct scb_ctx *ctx);

/* Write SCBench's summary line for (run, method, task, mode) to f:
 *   multi-turn:    "<tag>,<task>,<max_seq_len>,<turn0>,<turn1>,..."
 *   multi-request: "<tag>,<task>,scdq_mode,<max_seq_len>,<score>"
 * Scores are 100 x the mean of the stored per-turn scores, summed in file order as Python
 * does; for Mix tasks each position holds "<sub1>,<sub2>" (summary,passkey or repoqa,kv)
 * with 0.000 for a sub-task absent there. The max_seq_len field is left out when the run
 * has none (as SCBench does for -1). */
int scb_export_summary_line(struct scb_db *db, int64_t run_id, const char *method, const char *task,
                            const char *mode, const char *tag, FILE *f, struct scb_ctx *ctx);

/* CSV of table "turns", "runs" or "bench" (run_id <= 0: every run). */
int scb_export_csv(struct scb_db *db, const char *table, int64_t run_id, FILE *f, struct scb_ctx *ctx);

/* Write a run in the Python original's layout under out_dir (created if missing):
 *   <out_dir>/<model>_<method>/prediction_<task>{_multi_turn|_scdq}.jsonl
 *   <out_dir>/<model>_<method>/<model>_<method>{_multi_turn|_scdq}_summary.txt
 * where <model> is the base name of the run's model path and <method> the method spec with
 * ':' -> '_' and ',' -> '-' (other characters outside [A-Za-z0-9._+=-] -> '_'). Existing
 * files are replaced. Each written path is printed to log when log is not NULL. */
int scb_export_scbench_dir(struct scb_db *db, int64_t run_id, const char *out_dir, FILE *log,
                           struct scb_ctx *ctx);

/* Append s[0..n) as a JSON string the way Python's json.dumps(ensure_ascii=False) writes it
 * (escapes \" \\ \n \r \t \b \f, other control bytes as \u00XX, invalid UTF-8 as U+FFFD). */
int scb_export_py_json_string(struct scb_buf *b, const char *s, size_t n);
/* Append the JSON text json as json.dumps(json.loads(text), ensure_ascii=False) writes it:
 * ", " and ": " separators, strings re-escaped as above, integers as written, other numbers
 * in Python's float repr (1e3 -> 1000.0, 2.50 -> 2.5). SCB_E_FORMAT if not JSON. */
int scb_export_py_json_value(struct scb_buf *b, const char *json, struct scb_ctx *ctx);

#endif
