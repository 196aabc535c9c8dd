/* recorder.h — how a benchmark run writes its results: one `runs` row per command (found
 * again by its configuration key, so rerunning the same command resumes the same run), one
 * transaction per finished session (its `sessions` marker and all its `turns` rows together,
 * so a crash never leaves half a session), and `bench` rows for speed measurements.
 *
 * Typical use by the run driver:
 *
 *     struct scb_recorder *rec; int64_t run; int resumed;
 *     SCB_TRY(scb_recorder_open(&rec, "results.db", ctx));
 *     SCB_TRY(scb_recorder_begin_run(rec, &info, &run, &resumed, ctx));
 *     for each (method, task, mode, session):
 *         SCB_TRY(scb_recorder_session_done(rec, run, method, task, mode, s, &done, ctx));
 *         if (done) continue;
 *         ... run the turns, fill rows[] ...
 *         SCB_TRY(scb_recorder_write_session(rec, run, rows, n_turns, ctx));
 *     scb_recorder_finish_run(rec, run, SCB_RUN_FINISHED, NULL, ctx);
 *     scb_recorder_close(rec);
 *
 * Task names may be given short ("kv") or canonical ("scbench_kv"); they are stored
 * canonical, as are Mix sub-task names. Modes are "multi_turn" and "multi_request"
 * ("scdq" is accepted for the latter). */
#ifndef SCB_RESULTS_RECORDER_H
#define SCB_RESULTS_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"
#include "results/db.h"

enum scb_run_status {
    SCB_RUN_RUNNING     = 0,
    SCB_RUN_FINISHED    = 1,
    SCB_RUN_FAILED      = 2,
    SCB_RUN_INTERRUPTED = 3
};
/* "running", "finished", "failed", "interrupted"; NULL for an unknown value. */
const char *scb_run_status_str(int status);

/* Provenance and configuration of a run. All strings are borrowed for the call; NULL is
 * stored as NULL (host: NULL means gethostname()). The git revision, build options and
 * scbench version come from the build (scb_config.h). */
struct scb_run_info {
    const char *config_json;    /* required: the full resolved configuration as a JSON object
                                   (tasks, modes, method specs with every resolved option,
                                   max_seq_len, max_turns, sessions, scorer variant, ...) */
    const char *host;
    const char *device;         /* "NVIDIA H100 80GB HBM3", "cpu" */
    const char *driver_version;
    const char *cuda_version;
    const char *backend;        /* "cpu" | "cuda" */
    const char *model_path;
    const char *model_hash;     /* content hash of the weights */
    const char *tokenizer_hash;
    const char *dataset_path;
    const char *dataset_hash;
    const char *scorer;         /* scorer variant ("faithful", "intended") */
    int64_t     seed;
    int64_t     max_seq_len;    /* SCBench --max_seq_length; <= 0 stores NULL */
    int         force_new;      /* 1: always start a new run, never resume */
};

/* One scored turn. Strings are borrowed for the call. Every measurement that is negative
 * (use scb_turn_row_init) is stored as NULL ("not measured"). */
struct scb_turn_row {
    const char *method;         /* method spec as given, e.g. "minference+snapkv:budget=2048" */
    const char *task;           /* "kv" or "scbench_kv" */
    const char *mode;           /* "multi_turn" | "multi_request" */
    int64_t     session;        /* 0-based row index in the data file (SCBench's "id") */
    int64_t     turn;           /* 0-based turn index (SCBench's "turn_idx") */
    const char *sub_task;       /* Mix tasks: "scbench_summary", "scbench_passkey", "scbench_repoqa",
                                   "scbench_kv" (short names accepted); else NULL */
    const char *lang;           /* repoqa / repoqa_and_kv: session's language, else NULL */
    const char *repo;           /* repoqa / repoqa_and_kv: session's repository, else NULL */
    const char *func_name;      /* repoqa turns: ground-truth function name, else NULL */
    const char *prediction;     /* the model's answer (required; "" allowed) */
    const char *gold_json;      /* ground truth as SCBench passes it to the scorer, as JSON text
                                   ("\"abc\"", "[\"text\", \"B\"]", "42") (required) */
    double      score;          /* the scorer's value in [0, 1] (required) */
    const char *scorer;         /* scorer variant, NULL if the run has one */
    int64_t     prompt_tokens;      /* tokens fed this turn */
    int64_t     cached_tokens;      /* tokens of the shared context reused from the KV cache */
    int64_t     generated_tokens;
    double      prefill_ms;
    double      ttft_ms;            /* time to first token */
    double      decode_ms;          /* all decode steps of this turn */
    int64_t     kv_entries;         /* logical KV entries kept (tokens x layers x KV heads) */
    int64_t     kv_bytes_logical;   /* bytes those entries need at their dtype */
    int64_t     kv_bytes_physical;  /* bytes actually held (GQA repetition, padding, pages) */
    double      decode_bytes_per_step; /* KV bytes read per decode step (mean) */
    double      prefill_density;    /* fraction of the causal attention computed in prefill */
    int64_t     peak_host_bytes;
    int64_t     peak_device_bytes;
};

/* Zero the strings, set every measurement to -1 (NULL) and score to 0. */
void scb_turn_row_init(struct scb_turn_row *row);

/* One speed measurement. Negative numbers are stored as NULL. */
struct scb_bench_row {
    const char *name;           /* required: "attn_prefill_dense", "e2e_decode", ... */
    const char *shape_json;     /* {"T":4096,"H":32,...} or NULL */
    const char *dtype;
    const char *device;
    const char *backend;
    double      median_ms;      /* required, >= 0 */
    double      p10_ms;
    double      p90_ms;
    int64_t     repeats;
    double      tflops;         /* achieved */
    double      gbps;           /* achieved */
    double      peak_tflops;    /* the device's limit */
    double      peak_gbps;
    const char *extra_json;     /* any further detail as a JSON object, or NULL */
};
void scb_bench_row_init(struct scb_bench_row *row);

struct scb_recorder;

/* Open (or create) the database at db_path. *out is NULL on failure. */
int  scb_recorder_open(struct scb_recorder **out, const char *db_path, struct scb_ctx *ctx);
void scb_recorder_close(struct scb_recorder *rec);   /* NULL-safe */
/* The database the recorder writes (borrowed), for exports and reports. */
struct scb_db *scb_recorder_db(struct scb_recorder *rec);

/* The configuration key of info: "fnv1a64:<16 hex>" of the canonical (sorted keys, no
 * whitespace) configuration JSON together with model path/hash, tokenizer hash, dataset
 * path/hash, seed, max_seq_len and scorer. Host, device, git revision and build options do
 * not enter it, so a rebuilt binary resumes the same run. out must hold 25 bytes. */
int scb_recorder_config_key(const struct scb_run_info *info, char out[25], struct scb_ctx *ctx);

/* Start a run, or resume the newest run with the same configuration key (whatever its
 * status): *resumed = 1, its status goes back to "running", resume_count increases, and the
 * sessions it already holds stay. With info->force_new a new run is always started. */
int scb_recorder_begin_run(struct scb_recorder *rec, const struct scb_run_info *info,
                           int64_t *run_id, int *resumed, struct scb_ctx *ctx);

/* *done = 1 if that session was already written for this run. */
int scb_recorder_session_done(struct scb_recorder *rec, int64_t run_id, const char *method,
                              const char *task, const char *mode, int64_t session, int *done,
                              struct scb_ctx *ctx);

/* Write one finished session: rows[0..n) are its turns (n >= 1, all with the same method,
 * task, mode and session, distinct turn indices). One transaction: the session marker and
 * all turns, or nothing. A session already recorded is an error (SCB_E_INVAL) and changes
 * nothing. */
int scb_recorder_write_session(struct scb_recorder *rec, int64_t run_id,
                               const struct scb_turn_row *rows, size_t n, struct scb_ctx *ctx);

/* Mark the run finished/failed/interrupted (error_text may be NULL) and stamp finished_at. */
int scb_recorder_finish_run(struct scb_recorder *rec, int64_t run_id, int status,
                            const char *error_text, struct scb_ctx *ctx);

/* Record one speed measurement; run_id <= 0 stores none. *bench_id may be NULL. */
int scb_recorder_add_bench(struct scb_recorder *rec, int64_t run_id, const struct scb_bench_row *b,
                           int64_t *bench_id, struct scb_ctx *ctx);

#endif
