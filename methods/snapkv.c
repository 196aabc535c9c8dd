/* snapkv.c — SnapKV and PyramidKV selection (see snapkv.h). */
#include "methods/snapkv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/dense.h"

void scb_snapkv_pool(const float *x, int n, int kernel, int pool, float *y)
{
    int r = kernel / 2;
    for (int j = 0; j < n; j++) {
        if (pool == SCB_POOL_MAX) {
            float mx = -INFINITY;
            for (int t = j - r; t <= j + r; t++)
                if (t >= 0 && t < n && x[t] > mx) mx = x[t];
            y[j] = mx;
        } else {
            double s = 0.0;
            for (int t = j - r; t <= j + r; t++)
                if (t >= 0 && t < n) s += x[t];
            y[j] = (float)(s / kernel);
        }
    }
}

int scb_snapkv_scores(const struct scb_kv_compress_args *a, int W, int kernel, int pool, int gqa,
                      float *pooled, struct scb_ctx *ctx)
{
    if (W < 1 || W > a->N || a->Nq < W || !a->q || kernel < 1 || kernel % 2 == 0 || a->Hq % a->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "snapkv: need 1 <= window (%d) <= N (%d), window <= queries "
                       "given (%d), odd kernel (%d)", W, a->N, a->Nq, kernel);
    int rc = SCB_OK;
    int N = a->N, P = N - W, G = a->Hq / a->Hkv, D = a->D;
    int H = gqa ? a->Hkv : a->Hq;
    float scale = a->scale != 0.0f ? a->scale : (float)(1.0 / sqrt((double)D));
    double *s = scb_malloc(sizeof(double) * (size_t)N);
    double *acc = scb_malloc(sizeof(double) * (size_t)(P > 0 ? P : 1));
    float *tmp = scb_malloc(sizeof(float) * (size_t)(P > 0 ? P : 1));
    if (!s || !acc || !tmp) { rc = scb_err(ctx, SCB_E_NOMEM, "snapkv: out of memory"); goto out; }
    for (int hh = 0; hh < H; hh++) {
        for (int j = 0; j < P; j++) acc[j] = 0.0;
        int h0 = gqa ? hh * G : hh, h1 = gqa ? h0 + G : hh + 1;
        for (int h = h0; h < h1; h++) {
            int g = h / G;
            for (int r = 0; r < W; r++) {
                const float *q = a->q + ((size_t)(a->Nq - W + r) * a->Hq + h) * D;
                int nk = N - W + r + 1;           /* causal inside the window block */
                double m = -INFINITY, l = 0.0;
                for (int j = 0; j < nk; j++) {
                    const float *k = a->k + ((size_t)j * a->Hkv + g) * D;
                    double dot = 0.0;
                    for (int d = 0; d < D; d++) dot += (double)q[d] * (double)k[d];
                    s[j] = dot * scale;
                    if (s[j] > m) m = s[j];
                }
                for (int j = 0; j < nk; j++) l += exp(s[j] - m);
                for (int j = 0; j < P; j++) acc[j] += exp(s[j] - m) / l;
            }
        }
        for (int j = 0; j < P; j++) tmp[j] = (float)(acc[j] / (h1 - h0));
        scb_snapkv_pool(tmp, P, kernel, pool, pooled + (size_t)hh * (P > 0 ? P : 0));
    }
out:
    scb_free(s); scb_free(acc); scb_free(tmp);
    return rc;
}

/* Sort helper: score descending, index ascending. */
static const float *g_sort_scores;
static int by_score(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    float a = g_sort_scores[i], b = g_sort_scores[j];
    if (a > b) return -1;
    if (a < b) return 1;
    return (i > j) - (i < j);
}
static int by_index(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    return (i > j) - (i < j);
}

/* Deterministic top-k of s (n) into idx (k entries), ascending indices. Not thread-safe
 * (qsort comparator state); the CPU reference is single-threaded. */
static void topk_sorted(const float *s, int n, int k, int32_t *order, int32_t *idx)
{
    for (int j = 0; j < n; j++) order[j] = j;
    g_sort_scores = s;
    qsort(order, (size_t)n, sizeof *order, by_score);
    memcpy(idx, order, sizeof(int32_t) * (size_t)k);
    qsort(idx, (size_t)k, sizeof *idx, by_index);
}

int scb_snapkv_select(const struct scb_kv_compress_args *a, int W, int kernel, int pool, int gqa,
                      int n_select, struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    int H = gqa ? a->Hkv : a->Hq;
    int rc = scb_kv_keep_init(keep, H, gqa, a->N, ctx);
    if (rc) return rc;
    int P = a->N - W;
    if (n_select < 0 || n_select >= P) { scb_kv_keep_all(keep); return SCB_OK; }
    float *pooled = scb_malloc(sizeof(float) * (size_t)H * (size_t)(P > 0 ? P : 1));
    int32_t *order = scb_malloc(sizeof(int32_t) * (size_t)(P > 0 ? P : 1));
    if (!pooled || !order) { rc = scb_err(ctx, SCB_E_NOMEM, "snapkv: out of memory"); goto out; }
    SCB_TRY(scb_snapkv_scores(a, W, kernel, pool, gqa, pooled, ctx));
    for (int h = 0; h < H; h++) {
        int32_t *li = keep->idx + (size_t)h * keep->cap;
        topk_sorted(pooled + (size_t)h * P, P, n_select, order, li);
        for (int j = 0; j < W; j++) li[n_select + j] = P + j;
        keep->n[h] = n_select + W;
    }
out:
    scb_free(pooled); scb_free(order);
    if (rc) scb_kv_keep_fini(keep);
    return rc;
}

int scb_snapkv_n_select(int N, int C, int W)
{
    return N < C ? -1 : C - W;
}

int scb_pyramidkv_n_select(int N, int C, int W, int beta, int L, int layer)
{
    if (N < C) return -1;
    if (N < 2 * (C - W)) return C - W;
    int min_num = (C - W) / beta;
    int max_num = 2 * (C - W) - min_num;
    if (max_num >= N - W) { max_num = N - W; min_num = 2 * (C - W) - max_num; }
    int steps = L > 1 ? (max_num - min_num) / (L - 1) : 0;
    return max_num - layer * steps;
}

/* ---- method entries ------------------------------------------------------------------------ */
struct snap_priv { int budget, window, kernel, gqa, beta; char pooling[SCB_OPT_STR_MAX]; };

#define SNAP_OPTS \
    {"budget", SCB_OPT_INT, offsetof(struct snap_priv, budget), "4096", 2, 1e9, NULL, \
     "max_capacity_prompt C: entries kept per head (C - window selected + window)"}, \
    {"window", SCB_OPT_INT, offsetof(struct snap_priv, window), "32", 1, 1e6, NULL, \
     "observation window: last prefill queries that score the prefix, always kept"}, \
    {"kernel", SCB_OPT_INT, offsetof(struct snap_priv, kernel), "5", 1, 1001, NULL, \
     "pooling kernel size (odd)"}, \
    {"pooling", SCB_OPT_STRING, offsetof(struct snap_priv, pooling), "avgpool", 1, 0, "avgpool|maxpool", \
     "pooling of the window scores"}, \
    {"gqa", SCB_OPT_BOOL, offsetof(struct snap_priv, gqa), "false", 1, 0, NULL, \
     "select per KV head from the group-mean score (beyond SCBench, which selects per query head)"}

static const struct scb_option snap_opts[] = {
    SNAP_OPTS,
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};
static const struct scb_option pyr_opts[] = {
    SNAP_OPTS,
    {"beta", SCB_OPT_INT, offsetof(struct snap_priv, beta), "20", 1, 1e6, NULL,
     "pyramid steepness: the last layer keeps (budget - window) / beta"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int snap_check(const struct snap_priv *p, struct scb_ctx *ctx)
{
    if (p->window >= p->budget)
        return scb_err(ctx, SCB_E_INVAL, "snapkv: window (%d) must be smaller than budget (%d)",
                       p->window, p->budget);
    if (p->kernel % 2 == 0)
        return scb_err(ctx, SCB_E_INVAL, "snapkv: kernel must be odd (got %d)", p->kernel);
    return SCB_OK;
}

static int snap_init(struct scb_method *m, struct scb_ctx *ctx) { return snap_check(m->priv, ctx); }

static int n_select_for(const struct scb_method *m, int N, int L, int layer)
{
    const struct snap_priv *p = m->priv;
    if (m->ops == &scb_method_pyramidkv)
        return scb_pyramidkv_n_select(N, p->budget, p->window, p->beta, L, layer);
    return scb_snapkv_n_select(N, p->budget, p->window);
}

static int snap_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                              struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    const struct snap_priv *p = m->priv;
    int rc = snap_check(p, ctx);
    if (rc) return rc;
    int ns = n_select_for(m, a->N, a->L, a->layer);
    return scb_snapkv_select(a, p->window, p->kernel,
                             strcmp(p->pooling, "maxpool") ? SCB_POOL_AVG : SCB_POOL_MAX,
                             p->gqa, ns, keep, ctx);
}

static void snap_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct snap_priv *p = m->priv;
    const struct scb_model_info *mi = cq->mi;
    int H = p->gqa ? mi->Hkv : mi->Hq;
    int64_t entries = 0, app = cq->T - cq->N;
    for (int l = 0; l < mi->L; l++) {
        int ns = n_select_for(m, (int)cq->N, mi->L, l);
        entries += (ns < 0 ? cq->N : ns + p->window) + app;
    }
    out->kv_entries = entries * mi->Hkv;
    out->kv_bytes = 2 * entries * H * mi->D * cq->elt_bytes;
    out->kv_bytes_device = out->kv_bytes;
    out->read_bytes_step = out->kv_bytes;
    out->prefill_density = 1.0;
}

const struct scb_method_ops scb_method_snapkv = {
    .abi = SCB_METHOD_ABI, .name = "snapkv", .stage = SCB_STAGE_COMPRESSION,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_KV_EVICT,
    .summary = "after the first prefill keep the 4064 prefix tokens the last 32 queries attend to most + those 32",
    .scbench_name = "dense;snapkv",
    .priv_size = sizeof(struct snap_priv), .options = snap_opts,
    .init = snap_init, .kv_after_prefill = snap_after_prefill, .cost = snap_cost,
};

const struct scb_method_ops scb_method_pyramidkv = {
    .abi = SCB_METHOD_ABI, .name = "pyramidkv", .stage = SCB_STAGE_COMPRESSION,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_KV_EVICT,
    .summary = "SnapKV with a per-layer budget falling linearly (7925 .. 206 for 32 layers)",
    .scbench_name = "dense;pyramidkv",
    .priv_size = sizeof(struct snap_priv), .options = pyr_opts,
    .init = snap_init, .kv_after_prefill = snap_after_prefill, .cost = snap_cost,
};
