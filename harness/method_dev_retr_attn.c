/* method_dev_retr_attn.c — RetrievalAttention on the CUDA engine (harness/method_dev.h).
 *
 * The split of the CPU reference (methods/retr_attn.c) kept as SCBench runs it: the RESIDENT
 * keys (sinks [0, n_sink), the n_recent most recent global tokens, the turn's temp tokens) are
 * attended on the device, where the engine keeps every token; the RETRIEVAL runs on the host
 * with the CPU method's index code over a host copy of the keys (fp32 of the bf16 keys,
 * downloaded once per token: the first prefill's keys after it, each later global token when it
 * first appears): index=flat scans [n_sink, g_i - n_recent) exactly (the results of
 * scb_retr_flat_topk: ties to the smaller token; the G query heads of a KV head scored in one
 * pass over its keys, slices and heads spread over a thread pool), index=graph builds the CPU's
 * graph per KV head after the first prefill from its queries and inserts tokens as they leave
 * the recent window. Each query head's retrieved ids go up to the device, whose kernel gathers
 * their keys/values and merges the retrieved part with the resident part by log-sum-exp
 * (kernels/retr_attn_cuda.h). A decode chunk of T rows runs as T one-token steps (SCBench's
 * dense_prefix=True; row i sees the global tokens g_i = min(i + Tk - T + 1, Tg)).
 * Costs: the CPU cost model (method_bind.c) and the recall of this instance's retrievals. */
#include "harness/method_dev.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/alloc.h"
#include "kernels/cpu/pool.h"
#include "kernels/kv_cache.h"
#include "kernels/retr_attn_cuda.h"
#include "methods/retr_attn.h"

struct ra_layer {
    float *hk;                        /* (Hkv, hcap, D) host fp32 copy of the global keys */
    size_t hcap;
    int host_n;                       /* global tokens copied */
    struct scb_retr_graph **graphs;   /* (Hkv), index=graph only; NULL entries before a build */
    int cpu_end;                      /* graph: tokens [n_sink, cpu_end) inserted */
};

struct ra_dev {
    struct scb_cuda_ctx *cc;
    int L, Hq, Hkv, D;
    int top_k, n_sink, n_recent, graph, M, ef;
    struct ra_layer *layers;          /* (L) */
    struct scb_pool *pool;
    /* device scratch, sized for the cache capacity at first use */
    size_t dcap;                      /* cache capacity the scratch is sized for (0 = none) */
    int stride;                       /* retrieved ids per head: min(top_k, dcap) */
    int32_t *d_idx, *d_n;             /* (Hq, stride), (Hq) */
    float *work;
    /* host scratch */
    int32_t *h_idx, *h_n;             /* (Hq, stride), (Hq) */
    int32_t *exact;                   /* (stride) graph recall */
    uint16_t *q16, *stage;            /* (Hq*D), (dcap*D) bf16 */
    float *qf;                        /* (Hq*D) */
    double *scores;                   /* (Hq, dcap) flat: inner products of the step's index range */
    unsigned char *sel_work;          /* (threads, scb_retr_topk_set_work_bytes(dcap)) flat selection */
    size_t sel_bytes;                 /* bytes of one thread's part of sel_work */
    /* one retrieval step (pool arguments) */
    int step_lo, step_hi, step_g_layer;
    int step_fail;
    double recall_sum;
    int64_t recall_n;
};

static void layer_reset(struct ra_dev *st, struct ra_layer *l)
{
    if (l->graphs)
        for (int g = 0; g < st->Hkv; g++) { scb_retr_graph_destroy(l->graphs[g]); l->graphs[g] = NULL; }
    l->host_n = 0;
    l->cpu_end = 0;
}

static void ra_destroy(void *state)
{
    struct ra_dev *st = state;
    if (!st) return;
    for (int i = 0; st->layers && i < st->L; i++) {
        layer_reset(st, &st->layers[i]);
        scb_free(st->layers[i].graphs);
        scb_free(st->layers[i].hk);
    }
    scb_free(st->layers);
    scb_pool_destroy(st->pool);
    scb_cuda_free(st->cc, st->d_idx); scb_cuda_free(st->cc, st->d_n); scb_cuda_free(st->cc, st->work);
    scb_free(st->h_idx); scb_free(st->h_n); scb_free(st->exact);
    scb_free(st->q16); scb_free(st->stage); scb_free(st->qf); scb_free(st->scores); scb_free(st->sel_work);
    scb_free(st);
}

static int ra_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                     struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char index[32] = "";
    *state = NULL;
    struct ra_dev *st = scb_calloc(1, sizeof *st);
    if (!st) return scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory");
    st->cc = cc;
    st->L = mi->L; st->Hq = mi->Hq; st->Hkv = mi->Hkv; st->D = mi->D;
    st->top_k = scb_method_opt_int(m, "top_k");
    st->n_sink = scb_method_opt_int(m, "n_sink");
    st->n_recent = scb_method_opt_int(m, "n_recent");
    st->M = scb_method_opt_int(m, "M");
    st->ef = scb_method_opt_int(m, "ef");
    SCB_TRY(scb_method_get(m, "index", index, sizeof index));
    st->graph = !strcmp(index, "graph");
    if (st->D > 256 || st->D % 2) {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "retr_attn (cuda): head dim %d not supported by the device kernel "
                     "(even, at most 256)", st->D);
        goto out;
    }
    st->layers = scb_calloc((size_t)st->L, sizeof *st->layers);
    if (!st->layers) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory"); goto out; }
    for (int i = 0; st->graph && i < st->L; i++) {
        st->layers[i].graphs = scb_calloc((size_t)st->Hkv, sizeof(struct scb_retr_graph *));
        if (!st->layers[i].graphs) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory"); goto out; }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
    SCB_TRY(scb_pool_create(&st->pool, nt, ctx));
    *state = st;
    st = NULL;
out:
    ra_destroy(st);
    return rc;
}

static int ra_session_begin(void *state, struct scb_ctx *ctx)
{
    (void)ctx;
    struct ra_dev *st = state;
    for (int i = 0; i < st->L; i++) layer_reset(st, &st->layers[i]);
    st->recall_sum = 0.0;
    st->recall_n = 0;
    return SCB_OK;
}

/* Scratch for a cache of cap entries (allocated when the capacity first appears or grows). */
static int ensure_scratch(struct ra_dev *st, size_t cap, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (cap <= st->dcap) return SCB_OK;
    scb_cuda_free(st->cc, st->d_idx); scb_cuda_free(st->cc, st->d_n); scb_cuda_free(st->cc, st->work);
    scb_free(st->h_idx); scb_free(st->h_n); scb_free(st->exact); scb_free(st->q16); scb_free(st->stage); scb_free(st->qf);
    scb_free(st->scores); scb_free(st->sel_work);
    st->d_idx = st->d_n = NULL; st->work = NULL;
    st->h_idx = st->h_n = st->exact = NULL; st->q16 = st->stage = NULL; st->qf = NULL; st->scores = NULL;
    st->sel_work = NULL;
    st->dcap = 0;
    int stride = st->top_k < (int64_t)cap ? st->top_k : (int)cap;
    size_t wf = scb_retr_attn_cuda_work_floats(st->Hq, st->D, (int)cap, stride);
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->d_idx, sizeof(int32_t) * (size_t)st->Hq * stride, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->d_n, sizeof(int32_t) * (size_t)st->Hq, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->work, sizeof(float) * wf, ctx));
    st->h_idx = scb_malloc(sizeof(int32_t) * (size_t)st->Hq * stride);
    st->h_n = scb_malloc(sizeof(int32_t) * (size_t)st->Hq);
    st->exact = scb_malloc(sizeof(int32_t) * (size_t)stride);
    st->q16 = scb_malloc(sizeof(uint16_t) * (size_t)st->Hq * st->D);
    st->qf = scb_malloc(sizeof(float) * (size_t)st->Hq * st->D);
    st->stage = scb_malloc(sizeof(uint16_t) * cap * st->D);
    st->scores = st->graph ? NULL : scb_malloc(sizeof(double) * cap * st->Hq);
    st->sel_bytes = scb_retr_topk_set_work_bytes((int)cap);
    st->sel_work = st->graph ? NULL : scb_malloc(st->sel_bytes * (size_t)scb_pool_threads(st->pool));
    if (!st->h_idx || !st->h_n || !st->exact || !st->q16 || !st->qf || !st->stage ||
        (!st->graph && (!st->scores || !st->sel_work))) {
        rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory");
        goto out;
    }
    st->stride = stride;
    st->dcap = cap;
out:
    return rc;
}

/* Copy global keys [l->host_n, Tg) of every KV head into the host copy. */
static int sync_keys(struct ra_dev *st, struct ra_layer *l, const struct scb_dev_attn *a, int Tg, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (Tg <= l->host_n) return SCB_OK;
    if (l->hcap < a->cap) {
        float *hk = scb_malloc(sizeof(float) * (size_t)st->Hkv * a->cap * st->D);
        if (!hk) return scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory for the host keys");
        for (int g = 0; g < st->Hkv && l->hk; g++)
            memcpy(hk + (size_t)g * a->cap * st->D, l->hk + (size_t)g * l->hcap * st->D,
                   sizeof(float) * (size_t)l->host_n * st->D);
        scb_free(l->hk);
        l->hk = hk;
        l->hcap = a->cap;
    }
    const size_t n = (size_t)(Tg - l->host_n) * st->D;
    for (int g = 0; g < st->Hkv; g++) {
        SCB_TRY(scb_cuda_download(st->cc, st->stage, a->k + ((size_t)g * a->cap + l->host_n) * st->D,
                                  n * sizeof(uint16_t), ctx));
        float *dst = l->hk + ((size_t)g * l->hcap + l->host_n) * st->D;
        for (size_t i = 0; i < n; i++) dst[i] = scb_bf16_to_f32(st->stage[i]);
    }
    l->host_n = Tg;
out:
    return rc;
}

static int check_layer(const struct ra_dev *st, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    if (a->layer >= (size_t)st->L || a->Hs != (size_t)st->Hkv || a->D != (size_t)st->D || a->H != (size_t)st->Hq)
        return scb_err(ctx, SCB_E_INVAL, "retr_attn (cuda): layer %zu with %zu stored heads, %zu query heads, "
                       "D=%zu does not match the model (%d layers, Hkv=%d, H=%d, D=%d)", a->layer, a->Hs, a->H,
                       a->D, st->L, st->Hkv, st->Hq, st->D);
    return SCB_OK;
}

static int ra_after_prefill(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct ra_dev *st = state;
    int rc = SCB_OK;
    float *tq = NULL;
    int32_t *ids = NULL;
    SCB_TRY(check_layer(st, a, ctx));
    struct ra_layer *l = &st->layers[a->layer];
    layer_reset(st, l);
    SCB_TRY(ensure_scratch(st, a->cap, ctx));
    const int N = (int)a->kv->n_global[a->layer * a->kv->Hkv];
    SCB_TRY(sync_keys(st, l, a, N, ctx));
    if (!st->graph) goto out;
    /* the CPU's graph per KV head over [n_sink, N - n_recent), trained on the prefill's queries */
    int lo = st->n_sink, hi = N - st->n_recent;
    if (hi < lo) hi = lo;
    const int G = st->Hq / st->Hkv, Nq = (int)a->T, D = st->D;
    size_t nqe = (size_t)Nq * st->Hq * D;
    uint16_t *q16 = scb_malloc(sizeof(uint16_t) * (nqe ? nqe : 1));
    tq = scb_malloc(sizeof(float) * (size_t)(Nq > 0 ? Nq : 1) * G * D);
    ids = scb_malloc(sizeof(int32_t) * (size_t)(hi - lo + 1));
    if (!q16 || !tq || !ids) { scb_free(q16); rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory"); goto out; }
    rc = scb_cuda_download(st->cc, q16, a->q, nqe * sizeof(uint16_t), ctx);
    for (int t = lo; t < hi; t++) ids[t - lo] = t;
    struct scb_retr_graph_params gp = {st->M, 32, st->ef, 4};
    for (int g = 0; g < st->Hkv && !rc; g++) {
        for (int r = 0; r < Nq; r++)
            for (int j = 0; j < G; j++)
                for (int d = 0; d < D; d++)
                    tq[((size_t)r * G + j) * D + d] = scb_bf16_to_f32(q16[((size_t)r * st->Hq + g * G + j) * D + d]);
        rc = scb_retr_graph_build(&l->graphs[g], l->hk + ((size_t)g * l->hcap + lo) * D, (size_t)D, ids, hi - lo, D,
                                  tq, (size_t)D, Nq * G, &gp, ctx);
    }
    scb_free(q16);
    if (rc) goto out;
    l->cpu_end = hi;
out:
    scb_free(tq);
    scb_free(ids);
    return rc;
}

/* Flat search of one step in two pool jobs: the inner products of the G query heads of a KV
 * head in one pass over a slice of its keys (the keys are read once per KV head, not once per
 * query head), then each query head's top-k — the set of ids scb_retr_flat_topk would return,
 * in ascending id order (methods/retr_attn.h: same double sums, same order and tie rule). */
enum { RA_SLICES = 4 };

static void score_job(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    struct ra_dev *st = arg;
    const struct ra_layer *l = &st->layers[st->step_g_layer];
    const int G = st->Hq / st->Hkv, lo = st->step_lo, n = st->step_hi - st->step_lo;
    for (size_t it = b; it < e; it++) {
        const int g = (int)(it / RA_SLICES), sl = (int)(it % RA_SLICES);
        const int t0 = (int)((int64_t)n * sl / RA_SLICES), t1 = (int)((int64_t)n * (sl + 1) / RA_SLICES);
        scb_retr_flat_scores(st->qf + (size_t)g * G * st->D, (size_t)st->D, G,
                             l->hk + ((size_t)g * l->hcap + lo + t0) * st->D, (size_t)st->D, t1 - t0, st->D,
                             st->scores + (size_t)g * G * st->dcap + t0, st->dcap);
    }
}

static void select_job(void *arg, size_t b, size_t e, int tid)
{
    struct ra_dev *st = arg;
    for (size_t h = b; h < e; h++) {
        int got = scb_retr_topk_set(st->scores + h * st->dcap, st->step_hi - st->step_lo, st->step_lo, st->top_k,
                                    st->h_idx + h * (size_t)st->stride, st->sel_work + (size_t)tid * st->sel_bytes);
        if (got < 0) { st->step_fail = got; got = 0; }
        st->h_n[h] = got;
    }
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static int ra_decode(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct ra_dev *st = state;
    int rc = SCB_OK;
    SCB_TRY(check_layer(st, a, ctx));
    struct ra_layer *l = &st->layers[a->layer];
    SCB_TRY(ensure_scratch(st, a->cap, ctx));
    const int Tg = (int)a->kv->n_global[a->layer * a->kv->Hkv], D = st->D, G = st->Hq / st->Hkv;
    SCB_TRY(sync_keys(st, l, a, Tg, ctx));
    const int use_graph = st->graph && l->graphs[0];
    if (use_graph)                                       /* slide into the index, as the CPU */
        for (int t = l->cpu_end; t < Tg - st->n_recent; t++) {
            if (t < st->n_sink) continue;
            for (int g = 0; g < st->Hkv; g++)
                SCB_TRY(scb_retr_graph_add(l->graphs[g], l->hk + ((size_t)g * l->hcap + t) * D, t, ctx));
            l->cpu_end = t + 1;
        }
    for (size_t i = 0; i < a->T; i++) {
        const int nc = (int)(i + a->Tk - a->T + 1);
        const int g_i = nc < Tg ? nc : Tg;
        struct scb_retr_attn_cuda_args ra = {
            .q = a->q + i * a->H * D, .k = a->k, .v = a->v, .kcap = a->cap, .Hq = st->Hq, .Hkv = st->Hkv, .D = D,
            .scale = a->scale, .out = a->out + i * a->H * D, .lse = NULL, .work = st->work,
        };
        if (g_i < st->n_sink + st->n_recent) {           /* every key resident */
            ra.r0_begin = 0; ra.r0_end = nc; ra.r1_begin = nc; ra.r1_end = nc;
            SCB_TRY(scb_retr_attn_cuda(st->cc, &ra, ctx));
            continue;
        }
        const int lo = st->n_sink, hi = g_i - st->n_recent;
        SCB_TRY(scb_cuda_download(st->cc, st->q16, ra.q, sizeof(uint16_t) * (size_t)st->Hq * D, ctx));
        for (size_t e = 0; e < (size_t)st->Hq * D; e++) st->qf[e] = scb_bf16_to_f32(st->q16[e]);
        if (!use_graph) {
            st->step_lo = lo; st->step_hi = hi; st->step_g_layer = (int)a->layer; st->step_fail = 0;
            scb_pool_run_sized(st->pool, score_job, st, (size_t)st->Hkv * RA_SLICES, (size_t)(hi - lo) * D * G / RA_SLICES);
            scb_pool_run_sized(st->pool, select_job, st, (size_t)st->Hq, (size_t)(hi - lo) * 16);
            if (st->step_fail) { rc = scb_err(ctx, st->step_fail, "retr_attn (cuda): flat search failed"); goto out; }
            for (int h = 0; h < st->Hq; h++)
                if (st->h_n[h] > 0) { st->recall_sum += 1.0; st->recall_n++; }   /* exact by construction */
        } else {
            for (int h = 0; h < st->Hq; h++) {
                int32_t *out = st->h_idx + (size_t)h * st->stride;
                const float *q = st->qf + (size_t)h * D;
                int vis = 0, g = h / G;
                int n = scb_retr_graph_search(l->graphs[g], q, st->top_k, hi, out, NULL, &vis, ctx);
                if (n < 0) { rc = n; goto out; }
                int ne = scb_retr_flat_topk(q, l->hk + ((size_t)g * l->hcap + lo) * D, (size_t)D, NULL, hi - lo, D,
                                            st->top_k, st->exact, NULL);
                if (ne < 0) { rc = scb_err(ctx, ne, "retr_attn (cuda): exact search failed"); goto out; }
                for (int t = 0; t < ne; t++) st->exact[t] += lo;
                if (ne > 0) { st->recall_sum += scb_retr_recall(out, n, st->exact, ne); st->recall_n++; }
                st->h_n[h] = n;
            }
        }
        for (int h = 0; use_graph && h < st->Hq; h++)    /* the flat selection is in id order already */
            qsort(st->h_idx + (size_t)h * st->stride, (size_t)st->h_n[h], sizeof(int32_t), cmp_i32);
        SCB_TRY(scb_cuda_upload(st->cc, st->d_idx, st->h_idx, sizeof(int32_t) * (size_t)st->Hq * st->stride, ctx));
        SCB_TRY(scb_cuda_upload(st->cc, st->d_n, st->h_n, sizeof(int32_t) * (size_t)st->Hq, ctx));
        ra.r0_begin = 0; ra.r0_end = st->n_sink; ra.r1_begin = hi; ra.r1_end = nc;
        ra.idx = st->d_idx; ra.n_idx = st->d_n; ra.idx_stride = st->stride;
        SCB_TRY(scb_retr_attn_cuda(st->cc, &ra, ctx));
    }
out:
    return rc;
}

static int ra_costs(void *state, const struct scb_kv_cache *kv, struct scb_turn_costs *c, struct scb_ctx *ctx)
{
    (void)kv; (void)ctx;
    const struct ra_dev *st = state;
    c->recall = st->recall_n ? st->recall_sum / (double)st->recall_n : -1.0;
    return SCB_OK;
}

const struct scb_dev_method_ops scb_dev_retr_attn = {
    .name = "retr_attn",
    .create = ra_create,
    .destroy = ra_destroy,
    .session_begin = ra_session_begin,
    .after_prefill = ra_after_prefill,
    .decode = ra_decode,
    .costs = ra_costs,
};
