/* cacheblend.c — CacheBlend token selection (see cacheblend.h). */
#include "methods/cacheblend.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"

static const double *g_dev;
static int by_dev(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    if (g_dev[i] > g_dev[j]) return -1;
    if (g_dev[i] < g_dev[j]) return 1;
    return (i > j) - (i < j);
}
static int asc(const void *x, const void *y) { int32_t a = *(const int32_t *)x, b = *(const int32_t *)y; return (a > b) - (a < b); }

int scb_cacheblend_select(const float *v_fresh, const float *v_ret, const uint8_t *valid, int n,
                          int Hkv, int D, double ratio, int32_t *sel, int *n_sel, double *dev_out,
                          struct scb_ctx *ctx)
{
    if (n < 0 || Hkv < 1 || D < 1 || !(ratio >= 0.0 && ratio <= 1.0))
        return scb_err(ctx, SCB_E_INVAL, "cacheblend: bad n=%d Hkv=%d D=%d ratio=%g (ratio in [0, 1])", n, Hkv, D, ratio);
    double *dev = scb_malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    int32_t *ord = scb_malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    uint8_t *in = scb_calloc((size_t)(n > 0 ? n : 1), 1);
    if (!dev || !ord || !in) {
        scb_free(dev); scb_free(ord); scb_free(in);
        return scb_err(ctx, SCB_E_NOMEM, "cacheblend: out of memory");
    }
    int nvalid = 0;
    size_t row = (size_t)Hkv * D;
    for (int t = 0; t < n; t++) {
        double s = 0.0;
        for (size_t e = 0; e < row; e++) {
            double d = (double)v_fresh[t * row + e] - (double)v_ret[t * row + e];
            s += d * d;
        }
        dev[t] = valid[t] ? s / (double)row : 0.0;
        nvalid += valid[t] ? 1 : 0;
        ord[t] = t;
    }
    int k = (int)(ratio * nvalid);
    g_dev = dev;
    qsort(ord, (size_t)n, sizeof *ord, by_dev);
    for (int t = 0; t < k && t < n; t++) in[ord[t]] = 1;
    int m = 0;
    for (int t = 0; t < n; t++) if (in[t] || !valid[t]) sel[m++] = t;
    qsort(sel, (size_t)m, sizeof *sel, asc);
    *n_sel = m;
    if (dev_out) memcpy(dev_out, dev, sizeof(double) * (size_t)n);
    scb_free(dev); scb_free(ord); scb_free(in);
    return SCB_OK;
}

struct blend_priv { double ratio; int min_tokens, chunk, check_layer; };

static const struct scb_option blend_opts[] = {
    {"ratio", SCB_OPT_FLOAT, offsetof(struct blend_priv, ratio), "0.15", 0, 1, NULL,
     "fraction of retrieved tokens recomputed (LMCache blend_recompute_ratio)"},
    {"min_tokens", SCB_OPT_INT, offsetof(struct blend_priv, min_tokens), "256", 0, 1e9, NULL,
     "blending only for prefills of at least this many tokens"},
    {"chunk", SCB_OPT_INT, offsetof(struct blend_priv, chunk), "256", 1, 1e9, NULL,
     "KV store chunk size in tokens (chunks keyed by content, each computed alone)"},
    {"check_layer", SCB_OPT_INT, offsetof(struct blend_priv, check_layer), "1", 0, 1e6, NULL,
     "layer whose value deviation selects the recomputed tokens"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

const struct scb_method_ops scb_method_cacheblend = {
    .abi = SCB_METHOD_ABI, .name = "cacheblend", .stage = SCB_STAGE_RETRIEVAL,
    .axis = SCB_AXIS_PREFILL, .caps = SCB_CAP_CPU | SCB_CAP_RETRIEVAL,
    .summary = "reuse stored KV of a shared context, recomputing the 15% of tokens whose values deviate most",
    .scbench_name = "vllm_blend;dense",
    .priv_size = sizeof(struct blend_priv), .options = blend_opts,
};
