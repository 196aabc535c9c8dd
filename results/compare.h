/* compare.h — regression verdict of a candidate run against a baseline run (the same or two
 * results databases), for a CI log or a pull-request comment.
 *
 * Turns are matched by (method, mode, task, session): each (method, mode) present in both runs
 * is compared on the sessions both hold, with the paired bootstrap of report.h (both runs'
 * scores recomputed on the same resample of shared sessions). Sessions, tasks or methods
 * present on one side only are listed, never silently dropped. Speed is the ratio
 * candidate / baseline of first-turn prefill time, time to first token and decode ms per
 * token over the shared sessions.
 *
 * Verdict: a (method, mode) regresses when its accuracy drop (baseline − candidate, the
 * paired point estimate of the Avg over categories, in points) exceeds max_accuracy_drop, or
 * when any speed ratio exceeds max_slowdown. */
#ifndef SCB_RESULTS_COMPARE_H
#define SCB_RESULTS_COMPARE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/status.h"
#include "results/db.h"
#include "results/stats.h"

struct scb_cmp_opts {
    struct scb_boot_opts boot;
    double max_accuracy_drop;  /* points (0..100); < 0 disables the check; default 1.0 */
    double max_slowdown;       /* ratio, e.g. 1.10; <= 0 disables the check (the default) */
    int    require_match;      /* 1: any unmatched session, task or method is a regression too */
};
void scb_cmp_opts_default(struct scb_cmp_opts *o);

struct scb_cmp_result {
    int    regression;         /* 1 when a threshold was crossed */
    size_t n_compared;         /* (method, mode) pairs compared */
    size_t n_pairs;            /* shared sessions over all of them */
    size_t n_unmatched;        /* sessions on one side only, plus those of unmatched methods */
    double worst_drop;         /* largest accuracy drop seen (points; NaN if none) */
    double worst_slowdown;     /* largest speed ratio seen (NaN if none measured) */
};

/* Compare run cand_run of cand_db against run base_run of base_db (the two handles may be the
 * same) and write the Markdown verdict to md. SCB_E_NOTFOUND when a run does not exist or the
 * runs share no (method, mode, task, session) at all; the verdict is then not written. */
int scb_cmp_runs(struct scb_db *base_db, int64_t base_run, struct scb_db *cand_db, int64_t cand_run,
                 const struct scb_cmp_opts *o, FILE *md, struct scb_cmp_result *res, struct scb_ctx *ctx);

#endif
