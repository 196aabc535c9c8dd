/* stats.h — the statistics behind reports and comparisons: a seeded, stratified percentile
 * bootstrap over clusters (SCBench sessions), and the percentile rule it uses.
 *
 * The unit that is resampled is a cluster (one session of one task: all its turns travel
 * together, since turns of a session are not independent). Clusters belong to strata (the
 * task): each replicate draws, within every stratum of n clusters, n clusters with
 * replacement, and hands the statistic a weight per cluster (how often it was drawn, 0..n).
 * The statistic is any function of those weights (the report's hierarchical scores, paired
 * differences), computing several outputs at once. The interval of each output is the
 * percentile interval of its B replicate values (type-7 linear interpolation, as numpy's
 * default). A replicate whose output is NaN (for instance a turn index that no drawn session
 * reaches) does not count for that output; n_valid says how many did. */
#ifndef SCB_RESULTS_STATS_H
#define SCB_RESULTS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

#define SCB_BOOT_DEFAULT_B     2000
#define SCB_BOOT_DEFAULT_SEED  20250122u
#define SCB_BOOT_DEFAULT_LEVEL 0.95

struct scb_boot_opts {
    int      B;        /* replicates (>= 1); <= 0 means SCB_BOOT_DEFAULT_B */
    double   level;    /* interval coverage in (0, 1); <= 0 means 0.95 */
    uint64_t seed;     /* the same seed, data and B give the same intervals */
};
void scb_boot_opts_default(struct scb_boot_opts *o);

/* A point estimate with its interval. */
struct scb_ci {
    double est;        /* the statistic on the data as observed (all weights 1) */
    double lo, hi;     /* percentile interval; NaN when no replicate was valid */
    int    n_valid;    /* replicates with a finite value */
};

/* The statistic: fill out[0..n_out) from the weights w[0..n_clusters) (borrowed for the
 * call). Return SCB_OK or a negative status (stops the bootstrap). NaN = undefined. */
typedef int (*scb_boot_fn)(void *ud, const double *w, double *out);

/* Percentile bootstrap. stratum[i] in [0, n_strata) names cluster i's stratum (NULL: one
 * stratum). ci[0..n_out) receives the estimates and intervals. n_clusters = 0 gives the
 * estimate from fn with no weights and NaN intervals. SCB_E_NOMEM, SCB_E_INVAL or fn's code. */
int scb_stats_bootstrap(size_t n_clusters, const int *stratum, size_t n_out, scb_boot_fn fn,
                        void *ud, const struct scb_boot_opts *o, struct scb_ci *ci,
                        struct scb_ctx *ctx);

/* Bootstrap of a plain mean of x[0..n) (one stratum): the simplest use, for tests and for
 * callers with one value per session. */
int scb_stats_bootstrap_mean(const double *x, size_t n, const struct scb_boot_opts *o,
                             struct scb_ci *ci, struct scb_ctx *ctx);

/* Quantile q in [0, 1] of sorted[0..n) with linear interpolation between order statistics
 * (Hyndman-Fan type 7: h = (n-1) q). NaN when n = 0. */
double scb_stats_quantile(const double *sorted, size_t n, double q);

#endif
