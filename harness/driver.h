/* driver.h — the SCBench run driver: for every method spec × task × mode × session it builds
 * the turn plan (tasks/prompt.h), runs the KV-cache lifecycle of spec/scbench.md §6 on the
 * engine (first prefill into the global segment under the method's prefill pattern and
 * compression; answers generated into the temp segment and dropped; in multi-request mode the
 * query too), scores every turn (tasks/scorers.h) and records one transaction per finished
 * session (results/recorder.h). Rerunning the same configuration resumes: finished sessions are
 * skipped, nothing is duplicated.
 *
 * Data: a folder of released files (scbench_<task>.jsonl[.gz]), one file, or "synthetic"
 * (sessions generated on the fly by datasets/synth.h at --synth-tokens model tokens). */
#ifndef SCB_HARNESS_DRIVER_H
#define SCB_HARNESS_DRIVER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

enum scb_run_modes {
    SCB_RUN_MULTI_TURN    = 1 << 0,
    SCB_RUN_MULTI_REQUEST = 1 << 1
};

struct scb_run_opts {
    const char  *model_dir;        /* HF model directory */
    const char  *data;             /* folder, file, or "synthetic" */
    const char *const *tasks;      /* (n_tasks,) task names; n_tasks 0 = all available */
    size_t       n_tasks;
    int          modes;            /* enum scb_run_modes bits */
    const char *const *methods;    /* (n_methods,) method specs; 0 = {"dense"} */
    size_t       n_methods;
    const char  *db_path;          /* SQLite results database */
    long         max_seq_len;      /* SCBench --max_seq_length (default 131072) */
    long         max_turns;        /* SCBench --max_turns (default 5) */
    long         sessions;         /* sessions per task, -1 = all */
    long         synth_tokens;     /* synthetic context length in model tokens */
    uint64_t     seed;             /* synthetic data seed */
    int          golden;           /* 1 = golden previous answers (SCBench default) */
    int          chat_template;    /* 1 = --use_chat_template (the paper's setting) */
    int          variant;          /* enum scb_score_variant */
    int          threads;          /* CPU threads, 0 = all cores */
    int          progress;         /* 1 = progress line on stderr */
    int          force_new;        /* 1 = never resume, always a new run */
    volatile sig_atomic_t *stop;   /* set by a signal handler: stop after the current session */
};

void scb_run_opts_default(struct scb_run_opts *o);

/* Summary of what a run did, for the caller's final table. */
struct scb_run_summary {
    int64_t run_id;
    int     resumed;
    long    sessions_done;        /* sessions run now */
    long    sessions_skipped;     /* already in the database */
    long    turns_done;
};

/* Run the benchmark. SCB_E_INTERRUPTED when *o->stop was set (finished sessions are kept). */
int scb_driver_run(const struct scb_run_opts *o, struct scb_run_summary *sum, struct scb_ctx *ctx);

#endif
