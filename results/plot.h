/* plot.h — gnuplot figures of the results: for each figure a data file (NAME.dat, numbers
 * only) and a script (NAME.gp) are written to the output folder, and gnuplot (an external
 * program) renders NAME.png and NAME.svg from them. Where gnuplot is missing the .dat and .gp
 * files are still written, so the figures can be made elsewhere with `gnuplot NAME.gp`.
 *
 * Figures (docs/reports.md shows them):
 *   acc_by_turn          accuracy by turn per method, multi-turn mode (mean over tasks, 95 % CI)
 *   acc_vs_budget        accuracy against token budget per method family, multi-request mode
 *                        (multi-turn when no multi-request data), full attention as a line
 *   categories_<mode>    category scores per method (bars with 95 % CI)
 *   acc_vs_kv            accuracy against KV bytes kept per method and mode
 *   latency_<mode>       time per session: context prefill, later prefills, decoding, per method
 *                        and context length
 *   bench                achieved TFLOP/s and GB/s as a percentage of the device limits
 * A figure whose data are absent (no multi-turn turns, no budgets, nothing timed, no bench rows)
 * is skipped and the reason is logged.
 *
 * Safety: user strings (method specs, task names, devices) appear only as gnuplot
 * single-quoted string literals (no command substitution there; quotes doubled, control
 * bytes replaced), never in data files; gnuplot runs with the output folder as working
 * directory via fork/exec (no shell), and every file name it sees is fixed by this code. */
#ifndef SCB_RESULTS_PLOT_H
#define SCB_RESULTS_PLOT_H

#include <stddef.h>
#include <stdio.h>

#include "kernels/status.h"
#include "kernels/util.h"
#include "results/report.h"

/* Token budget of a method spec, for the budget figure: *budget > 0 and family (the method
 * names without options, "minference+snapkv") filled, or *budget = 0 when the spec has none.
 * Supplied by the caller that knows the methods' defaults (the CLI resolves specs through
 * the method registry); may be NULL. */
typedef int (*scb_plot_budget_fn)(void *ud, const char *spec, char *family, size_t family_n, double *budget);

struct scb_plot_opts {
    const char *out_dir;           /* created if missing (parents must exist) */
    const char *gnuplot;           /* program name or path; NULL = "gnuplot" on PATH */
    int         no_render;         /* 1: write .dat and .gp only */
    struct scb_boot_opts boot;     /* intervals drawn as error bars */
    scb_plot_budget_fn budget_of;  /* may be NULL */
    void       *budget_ud;
    FILE       *log;               /* each written file and skipped figure, or NULL */
};
void scb_plot_opts_default(struct scb_plot_opts *o);

struct scb_plot_result {
    int    gnuplot_found;          /* 0 when the program could not be found (nothing rendered) */
    size_t n_scripts;              /* figures written as .dat + .gp */
    size_t n_rendered;             /* figures rendered to PNG and SVG */
};

/* Write (and render) every figure of d. gnuplot missing is not an error (res->gnuplot_found
 * = 0); gnuplot failing on a script is SCB_E_IO naming the script. */
int scb_plot_write(const struct scb_rep_data *d, const struct scb_plot_opts *o, struct scb_plot_result *res,
                   struct scb_ctx *ctx);

/* The token budget of spec according to the run's configuration JSON (config_json may be
 * NULL) or the spec's own options: "budget", then "top_k", then n_init + n_local. family
 * receives the method names without options. *budget = 0 when none is found. */
int scb_plot_spec_budget(const char *config_json, const char *spec, char *family, size_t family_n, double *budget);

/* The token budget found in one method's JSON (the shape scb_method_spec_json writes, or any
 * object holding "budget", "token_budget", "top_k" or "n_init" + "n_local"); 0 if none. */
int scb_plot_json_budget(const char *method_json, double *budget);

/* Append s as a gnuplot single-quoted string literal ('' for ', control bytes and invalid
 * UTF-8 as '?'). */
int scb_plot_gp_string(struct scb_buf *b, const char *s);

/* Locate the gnuplot program: a name with '/' is checked as is, otherwise PATH is searched.
 * Returns 1 if it exists and is executable. */
int scb_plot_find_gnuplot(const char *prog);

#endif
