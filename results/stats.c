/* stats.c — stratified percentile bootstrap over clusters (see stats.h). Deterministic: the
 * replicates are drawn from scb_rng seeded with the caller's seed, stratum by stratum in
 * cluster order, so a report can be regenerated bit for bit. */
#include "results/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

void scb_boot_opts_default(struct scb_boot_opts *o)
{
    o->B = SCB_BOOT_DEFAULT_B;
    o->level = SCB_BOOT_DEFAULT_LEVEL;
    o->seed = SCB_BOOT_DEFAULT_SEED;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double scb_stats_quantile(const double *sorted, size_t n, double q)
{
    if (n == 0) return NAN;
    if (q <= 0) return sorted[0];
    if (q >= 1) return sorted[n - 1];
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n) return sorted[n - 1];
    double f = h - (double)i;
    return sorted[i] + f * (sorted[i + 1] - sorted[i]);
}

int scb_stats_bootstrap(size_t n_clusters, const int *stratum, size_t n_out, scb_boot_fn fn,
                        void *ud, const struct scb_boot_opts *o, struct scb_ci *ci,
                        struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    double *w = NULL;       /* (n_clusters) weights of one replicate */
    double *vals = NULL;    /* (n_out, B) replicate values, output-major */
    double *tmp = NULL;     /* (n_out) one replicate's outputs */
    size_t *order = NULL;   /* (n_clusters) cluster ids grouped by stratum */
    size_t *sstart = NULL;  /* (n_strata + 1) offsets into order */
    int B = o && o->B > 0 ? o->B : SCB_BOOT_DEFAULT_B;
    double level = o && o->level > 0 && o->level < 1 ? o->level : SCB_BOOT_DEFAULT_LEVEL;
    uint64_t seed = o ? o->seed : SCB_BOOT_DEFAULT_SEED;
    int n_strata = 1;

    if (!fn || !ci || (n_out == 0)) return scb_err(ctx, SCB_E_INVAL, "bootstrap: no statistic or no outputs");
    if (stratum)
        for (size_t i = 0; i < n_clusters; i++) {
            if (stratum[i] < 0) return scb_err(ctx, SCB_E_INVAL, "bootstrap: negative stratum %d", stratum[i]);
            if (stratum[i] + 1 > n_strata) n_strata = stratum[i] + 1;
        }
    w = scb_malloc((n_clusters ? n_clusters : 1) * sizeof *w);
    tmp = scb_malloc(n_out * sizeof *tmp);
    if (!w || !tmp) { rc = scb_err(ctx, SCB_E_NOMEM, "bootstrap: out of memory"); goto out; }
    for (size_t i = 0; i < n_clusters; i++) w[i] = 1.0;
    SCB_TRY(fn(ud, w, tmp));
    for (size_t k = 0; k < n_out; k++) {
        ci[k].est = tmp[k];
        ci[k].lo = ci[k].hi = NAN;
        ci[k].n_valid = 0;
    }
    if (n_clusters == 0) goto out;

    vals = scb_malloc(n_out * (size_t)B * sizeof *vals);
    order = scb_malloc(n_clusters * sizeof *order);
    sstart = scb_calloc((size_t)n_strata + 1, sizeof *sstart);
    if (!vals || !order || !sstart) { rc = scb_err(ctx, SCB_E_NOMEM, "bootstrap: out of memory"); goto out; }
    for (size_t i = 0; i < n_clusters; i++) sstart[(stratum ? stratum[i] : 0) + 1]++;
    for (int s = 0; s < n_strata; s++) sstart[s + 1] += sstart[s];
    {
        size_t *fill = scb_malloc((size_t)n_strata * sizeof *fill);
        if (!fill) { rc = scb_err(ctx, SCB_E_NOMEM, "bootstrap: out of memory"); goto out; }
        memcpy(fill, sstart, (size_t)n_strata * sizeof *fill);
        for (size_t i = 0; i < n_clusters; i++) order[fill[stratum ? stratum[i] : 0]++] = i;
        scb_free(fill);
    }

    struct scb_rng rng;
    scb_rng_seed(&rng, seed);
    size_t *nv = scb_calloc(n_out, sizeof *nv);
    if (!nv) { rc = scb_err(ctx, SCB_E_NOMEM, "bootstrap: out of memory"); goto out; }
    for (int b = 0; b < B; b++) {
        memset(w, 0, n_clusters * sizeof *w);
        for (int s = 0; s < n_strata; s++) {
            size_t m = sstart[s + 1] - sstart[s];
            for (size_t j = 0; j < m; j++) w[order[sstart[s] + scb_rng_below(&rng, m)]] += 1.0;
        }
        if ((rc = fn(ud, w, tmp)) < 0) { scb_free(nv); goto out; }
        for (size_t k = 0; k < n_out; k++)
            if (isfinite(tmp[k])) vals[k * (size_t)B + nv[k]++] = tmp[k];
    }
    for (size_t k = 0; k < n_out; k++) {
        double *v = vals + k * (size_t)B;
        qsort(v, nv[k], sizeof *v, cmp_double);
        ci[k].n_valid = (int)nv[k];
        ci[k].lo = scb_stats_quantile(v, nv[k], (1.0 - level) / 2);
        ci[k].hi = scb_stats_quantile(v, nv[k], 1.0 - (1.0 - level) / 2);
    }
    scb_free(nv);
out:
    scb_free(w);
    scb_free(vals);
    scb_free(tmp);
    scb_free(order);
    scb_free(sstart);
    return rc;
}

struct mean_ud { const double *x; size_t n; };

static int mean_fn(void *ud, const double *w, double *out)
{
    const struct mean_ud *m = ud;
    double s = 0, sw = 0;
    for (size_t i = 0; i < m->n; i++) { s += w[i] * m->x[i]; sw += w[i]; }
    out[0] = sw > 0 ? s / sw : NAN;
    return SCB_OK;
}

int scb_stats_bootstrap_mean(const double *x, size_t n, const struct scb_boot_opts *o,
                             struct scb_ci *ci, struct scb_ctx *ctx)
{
    struct mean_ud m = {x, n};
    return scb_stats_bootstrap(n, NULL, 1, mean_fn, &m, o, ci, ctx);
}
