/* report.h — reading a run's results back into memory and turning them into the paper's
 * tables: scores per category, task, turn and mode with percentile-bootstrap confidence
 * intervals over sessions, paired differences against full attention on the same sessions,
 * and the cost of each method (prefill, time to first token, decode ms/token, KV bytes kept,
 * bytes read per step, peak memory). compare.h and plot.h build on the same structures.
 *
 * Scores follow the database views (docs/results.md): per turn index the mean over the
 * sessions that reach it; multi-turn task score = mean of the per-turn scores, multi-request =
 * all turns pooled; Mix tasks = mean of their two sub-scores; category = mean of its tasks;
 * "Avg" = mean of the categories ("Avg tasks" = mean of the tasks). All in percent.
 *
 * Confidence intervals: stratified percentile bootstrap (stats.h) that resamples the
 * sessions of each task with replacement (all turns of a session together) and recomputes
 * the whole hierarchy; B = 2000, level 95 %, fixed seed by default. Paired differences resample
 * the sessions present for both methods and compute both scores on the same draw. */
#ifndef SCB_RESULTS_REPORT_H
#define SCB_RESULTS_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/status.h"
#include "results/db.h"
#include "results/stats.h"

#define SCB_REP_N_CATS 4
enum scb_rep_mode { SCB_REP_MULTI_TURN = 0, SCB_REP_MULTI_REQUEST = 1 };
/* "multi_turn" / "multi_request" */
const char *scb_rep_mode_name(int mode);
/* "String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking". */
const char *scb_rep_category_name(int cat);

/* Provenance of one run (strings owned, NULL when the column is NULL). */
struct scb_rep_run {
    int64_t id;
    char *status, *started_at, *finished_at, *model_path, *device, *backend, *scorer, *git_rev;
    char *config;          /* the resolved configuration JSON */
    int64_t max_seq_len;   /* 0 = none */
    int mixed_scorers;     /* 1 when some turns name a scorer variant other than the run's */
};

/* One turns row. Measurements not recorded are NaN. */
struct scb_rep_turn {
    int64_t session;
    int     turn;
    int     sub;           /* index into the task's sub[] (0 for single-score tasks) */
    double  score;         /* [0, 1] */
    double  prompt_tokens, cached_tokens, generated_tokens;
    double  prefill_ms, ttft_ms, decode_ms;
    double  kv_entries, kv_bytes_logical, kv_bytes_physical, decode_bytes_per_step;
    double  prefill_density, peak_host_bytes, peak_device_bytes;
};

/* The turns of one task in a group, by session. Session k (0-based, ascending ids) owns
 * turns [sess_off[k], sess_off[k+1]) of the group and is cluster cluster0 + k. */
struct scb_rep_task {
    char   *task;          /* canonical name, owned */
    const char *paper;     /* the paper's short name ("Retr.KV"), or task */
    int     cat;           /* 0..3 (paper column order), -1 for an unknown task */
    char   *sub[2];        /* sub-task names (Mix tasks), NULL for single-score tasks; owned */
    int     n_sub;
    size_t  n_sessions;
    int64_t *session_ids;  /* (n_sessions) */
    size_t  *sess_off;     /* (n_sessions + 1) */
    size_t  cluster0;
};

/* All turns of one (run, method, mode). */
struct scb_rep_group {
    int64_t run;
    char   *method;        /* method spec as recorded, owned */
    char   *label;         /* display name: method, or "method (run N)" when several runs
                              hold that method; owned */
    int     mode;          /* enum scb_rep_mode */
    struct scb_rep_task *tasks;  /* ordered by category, then the paper's task order */
    size_t  n_tasks;
    struct scb_rep_turn *turns;  /* ordered by task, session, turn */
    size_t  n_turns;
    size_t  n_clusters;    /* sessions over all tasks */
    int     max_turn;      /* 1 + largest turn index */
};

/* One bench row (NaN = not recorded). */
struct scb_rep_bench {
    int64_t run;           /* 0 = standalone */
    char *name, *shape, *dtype, *device, *backend;   /* owned */
    double median_ms, p10_ms, p90_ms, tflops, gbps, peak_tflops, peak_gbps;
};

struct scb_rep_data {
    char *db_path;                         /* owned */
    struct scb_rep_run   *runs;   size_t n_runs;
    struct scb_rep_group *groups; size_t n_groups;
    struct scb_rep_bench *bench;  size_t n_bench;
};

/* Load runs[0..n_runs) (n_runs = 0: the newest run) with all their turns, and the bench rows
 * of those runs plus standalone ones. A run id that does not exist is SCB_E_NOTFOUND naming
 * it; a database without runs is SCB_E_NOTFOUND. *out NULL on failure. */
int  scb_rep_load(struct scb_db *db, const int64_t *runs, size_t n_runs, struct scb_rep_data **out,
                  struct scb_ctx *ctx);
void scb_rep_data_free(struct scb_rep_data *d);   /* NULL-safe */

/* ---- scores ------------------------------------------------------------------------------ */
/* Output vector of a group's statistic: task scores, then categories, Avg, Avg tasks, then
 * the per-turn score (mean over the tasks reaching that turn index) for turn 0..max_turn-1. */
static inline size_t scb_rep_n_out(const struct scb_rep_group *g) { return g->n_tasks + SCB_REP_N_CATS + 2 + (size_t)g->max_turn; }
static inline size_t scb_rep_i_cat(const struct scb_rep_group *g, int c) { return g->n_tasks + (size_t)c; }
static inline size_t scb_rep_i_avg(const struct scb_rep_group *g) { return g->n_tasks + SCB_REP_N_CATS; }
static inline size_t scb_rep_i_avg_tasks(const struct scb_rep_group *g) { return g->n_tasks + SCB_REP_N_CATS + 1; }
static inline size_t scb_rep_i_turn(const struct scb_rep_group *g, int t) { return g->n_tasks + SCB_REP_N_CATS + 2 + (size_t)t; }

/* Scores of g (percent) with weights w[0..n_clusters) (NULL = every session once) into
 * out[0..scb_rep_n_out(g)); NaN where nothing is weighted. SCB_E_NOMEM possible. */
int scb_rep_scores(const struct scb_rep_group *g, const double *w, double *out, struct scb_ctx *ctx);

/* Scores with intervals: ci[0..scb_rep_n_out(g)). */
int scb_rep_scores_ci(const struct scb_rep_group *g, const struct scb_boot_opts *o, struct scb_ci *ci,
                      struct scb_ctx *ctx);

/* Sessions two groups share: (task, session) pairs present in both. */
struct scb_rep_pairing {
    size_t  n;             /* common sessions */
    size_t *cg, *cb;       /* (n) cluster index in the candidate and in the baseline group */
    int    *stratum;       /* (n) the candidate's task index */
    int    *task_map;      /* (cand n_tasks) baseline task index, -1 if the baseline lacks it */
    size_t  only_cand, only_base;  /* sessions present in one group only */
};
int  scb_rep_pair(const struct scb_rep_group *cand, const struct scb_rep_group *base,
                  struct scb_rep_pairing *p, struct scb_ctx *ctx);
void scb_rep_pairing_fini(struct scb_rep_pairing *p);

/* Paired difference cand - base on the common sessions, in cand's output layout; the est of
 * each entry is the difference on the common sessions (which can differ from the difference
 * of the two headline scores when the groups hold different sessions). side_cand/side_base
 * (may be NULL) receive each side's scores on the common sessions. */
int scb_rep_diff_ci(const struct scb_rep_group *cand, const struct scb_rep_group *base,
                    const struct scb_rep_pairing *p, const struct scb_boot_opts *o,
                    struct scb_ci *ci, double *side_cand, double *side_base, struct scb_ctx *ctx);

/* ---- costs ------------------------------------------------------------------------------- */
struct scb_rep_cost {
    double context_tokens;       /* mean prompt tokens of first turns (turn 0) */
    double prefill_ms;           /* mean prefill time of first turns (the shared context) */
    double followup_prefill_ms;  /* mean prefill time of later turns */
    double ttft_ms;              /* mean over all turns */
    double decode_ms;            /* mean decode time of a turn */
    double decode_ms_per_token;  /* sum of decode ms / sum of generated tokens */
    double kv_bytes_logical, kv_bytes_physical, kv_entries;  /* means over turns */
    double decode_bytes_per_step;/* mean */
    double prefill_density;      /* mean over first turns */
    double peak_host_bytes, peak_device_bytes;               /* max */
    size_t n_turns;
};
/* Costs of g over the turns of sessions with w[cluster] > 0 (w NULL: all); task < 0 for all
 * tasks, else that task only. NaN where nothing was measured. */
void scb_rep_cost(const struct scb_rep_group *g, const double *w, int task, struct scb_rep_cost *c);

/* ---- the report ---------------------------------------------------------------------------- */
enum scb_rep_format { SCB_REP_MD = 0, SCB_REP_HTML = 1, SCB_REP_CSV = 2 };

struct scb_rep_opts {
    int format;                  /* enum scb_rep_format */
    struct scb_boot_opts boot;
    const char *baseline_method; /* paired differences against this method; NULL = "dense" */
};
void scb_rep_opts_default(struct scb_rep_opts *o);

/* Write the report of d to f: header (runs, scorer variant, statistics), main table (per
 * method: four categories and Avg, multi-turn and multi-request side by side), paired
 * differences against the baseline method, per-task and per-turn tables, costs, bench. CSV is
 * one tidy table: table,run,method,mode,key,value,ci_lo,ci_hi,n. */
int scb_rep_write(const struct scb_rep_data *d, const struct scb_rep_opts *o, FILE *f, struct scb_ctx *ctx);

/* The group of the baseline method for g: same mode, same run preferred, else the first
 * selected run holding it; NULL when none (or g is itself the baseline). */
const struct scb_rep_group *scb_rep_find_baseline(const struct scb_rep_data *d, const struct scb_rep_group *g,
                                                  const char *method);

/* The scorer variants of the data in words ("faithful", "intended", "faithful (run 1), intended
 * (run 2)", or "not recorded"). Owned string. */
char *scb_rep_scorer_text(const struct scb_rep_data *d);

/* Format a byte count as "12.3 MiB" (or "—" for NaN) into buf. */
const char *scb_rep_fmt_bytes(double bytes, char *buf, size_t n);

#endif
