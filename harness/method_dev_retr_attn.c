/* method_dev_retr_attn.c — RetrievalAttention on the CUDA engine (harness/method_dev.h).
 *
 * The split of the CPU reference (methods/retr_attn.c) kept as SCBench runs it: the RESIDENT
 * keys (sinks [0, n_sink), the n_recent most recent global tokens, the turn's temp tokens) are
 * attended on the device, where the engine keeps every token; the RETRIEVAL runs on the host
 * with the CPU method's index code over a host copy of the keys (the bf16 keys in the
 * key-blocked store of methods/retr_scan.h, downloaded once per token: the first prefill's keys
 * after it, each later global token when it first appears): index=flat scans
 * [n_sink, g_i - n_recent) exactly (the results of scb_retr_flat_topk: fp32 scores of
 * scb_retr_score, as faiss's flat index, ties to the smaller token; scb_retr_step_run's FUSED step: SIMD across keys, the G query heads of a KV head scored
 * in one pass over its keys, each score's radix digit and histogram taken while it is hot, a
 * barrier, then the digit selection, all in ONE dispatch of a thread pool whose workers spin
 * SCB_RETR_SPIN_US (default 1000) microseconds between steps instead of sleeping; the new keys'
 * downloads and the query's share one wait), index=graph builds the CPU's
 * graph per KV head after the first prefill from its queries and inserts tokens as they leave
 * the recent window. Each query head's retrieved ids go up to the device, whose kernel gathers
 * their keys/values and merges the retrieved part with the resident part by log-sum-exp
 * (kernels/retr_attn_cuda.h). A decode chunk of T rows runs as T one-token steps (SCBench's
 * dense_prefix=True; row i sees the global tokens g_i = min(i + Tk - T + 1, Tg)).
 * SCB_RETR_SEARCH=device (the default for index=flat) runs the same exact retrieval on the device
 * instead (scb_retr_flat_topk_cuda: scb_retr_score's fp32 chains over the device cache's keys, a
 * radix top-k with the same ties: the same ids), with no host copy of the keys and no wait for the
 * host inside a step; SCB_RETR_SEARCH=host keeps SCBench's arrangement (the search on the CPU, as
 * above). index=graph always searches on the host.
 * Costs: the CPU cost model (method_bind.c) and the recall of this instance's retrievals.
 * SCB_RETR_PROFILE=1 prints the decode steps' host phases (ms per retrieval step) to stderr per
 * session and at the end; SCB_RETR_HIST=select counts the histograms at selection instead. */
#include "harness/method_dev.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/alloc.h"
#include "kernels/cpu/pool.h"
#include "kernels/kv_cache.h"
#include "kernels/retr_attn_cuda.h"
#include "kernels/util.h"
#include "methods/retr_attn.h"
#include "methods/retr_scan.h"

struct ra_layer {
    uint16_t *kb;                     /* (Hkv, kb_head) host bf16 copy of the global keys, each KV
                                         head a key-blocked store (methods/retr_scan.h) */
    size_t hcap, kb_head;             /* keys per head the store holds; its elements per head */
    int host_n;                       /* global tokens copied */
    struct scb_retr_graph **graphs;   /* (Hkv), index=graph only; NULL entries before a build */
    int cpu_end;                      /* graph: tokens [n_sink, cpu_end) inserted */
    int step_hi, step_end;            /* a graph step (ra_step_prep): the index's end, the bound of the
                                         resident window's end that sizes the recorded launch */
};

/* New keys per layer copied with one wait (decode steps); more (a prefill) go head by head. */
enum { RA_KSTAGE = 64 };

/* Profiled phases of ra_decode (SCB_RETR_PROFILE=1). */
enum {
    RA_P_CALL = 0,      /* the whole ra_decode call */
    RA_P_ENQ = 1,       /* enqueue the new keys' and the query's downloads */
    RA_P_WAIT = 2,      /* the one wait for them (and for the device work before: the layer's q) */
    RA_P_PUT = 3,       /* new keys into the key-blocked store */
    RA_P_QCONV = 4,     /* query bf16 -> fp32 */
    RA_P_SCAN = 5,      /* fused step: dispatch to the last scan's end (scores, digits, histograms) */
    RA_P_SEL = 6,       /* fused step: barrier to the last selection's end */
    RA_P_STEP = 7,      /* the whole fused step call */
    RA_P_LAUNCH = 8,    /* id uploads + the attention launch */
    RA_P_PREF = 9,      /* the prefetch dispatch before the wait (SCB_RETR_PREFETCH_KB) */
    RA_NPROF = 10,
};
static const char *const ra_prof_names[RA_NPROF] = {"call", "enqueue", "wait", "put_keys", "q_convert",
                                                    "scan", "select", "step", "upload_launch", "prefetch"};

struct ra_dev {
    struct scb_cuda_ctx *cc;
    int L, Hq, Hkv, D;
    int top_k, n_sink, n_recent, graph, M, ef;
    int dev_scan;                     /* index=flat retrieval on the device (SCB_RETR_SEARCH=device) */
    struct ra_layer *layers;          /* (L) */
    struct scb_pool *pool;
    /* device scratch, sized for the cache capacity at first use */
    size_t dcap;                      /* cache capacity the scratch is sized for (0 = none) */
    int stride;                       /* retrieved ids per head: min(top_k, dcap) */
    int32_t *d_idx, *d_n;             /* (Hq, stride), (Hq) */
    float *work;
    float *d_scores;                  /* (Hq, dcap) device scan's scores (dev_scan only) */
    /* host scratch; h_idx, h_n, q16 and kstage pinned (scb_cuda_host_alloc): asynchronous copies */
    int32_t *h_idx, *h_n;             /* (Hq, stride), (Hq) */
    int32_t *exact, *exact_n;         /* (Hq, stride), (Hq) graph recall: the exact flat sets */
    uint16_t *q16, *stage;            /* (Hq*D), (dcap*D) bf16 */
    uint16_t *kstage;                 /* (Hkv, RA_KSTAGE, D) bf16: a decode step's new keys */
    float *qf;                        /* (Hq*D) */
    float *scores;                    /* (Hq, dcap) scores (scb_retr_score) of the step's index range */
    unsigned char *sel_work;          /* (threads, scb_retr_topk_set_work_bytes(dcap)) flat selection */
    size_t sel_bytes;                 /* bytes of one thread's part of sel_work */
    float *row;                       /* (dcap, D) graph: keys widened for a build / an insert */
    uint16_t *dig;                    /* (Hq, dcap) the fused step's score digits */
    unsigned char *hist_work;         /* the fused step's histograms: scb_retr_step_hist_bytes */
    size_t hist_bytes;
    double recall_sum;
    int64_t recall_n;
    /* SCB_RETR_PROFILE=1: wall times of the decode steps' host phases (ms, summed over a
     * session; printed to stderr when the next session begins and at the end) */
    int prof;
    int hist_sel;                     /* SCB_RETR_HIST=select: histograms counted at selection */
    size_t prefetch;                  /* bytes each scan thread reads ahead while the device computes
                                         the query (SCB_RETR_PREFETCH_KB, default 2048; 0: off) */
    int64_t prof_steps, prof_calls;
    double prof_ms[RA_NPROF];
};

static void layer_reset(struct ra_dev *st, struct ra_layer *l)
{
    if (l->graphs)
        for (int g = 0; g < st->Hkv; g++) { scb_retr_graph_destroy(l->graphs[g]); l->graphs[g] = NULL; }
    l->host_n = 0;
    l->cpu_end = 0;
}

static void prof_print(struct ra_dev *st)
{
    if (!st->prof || !st->prof_calls) return;
    fprintf(stderr, "retr_attn profile: %lld decode calls, %lld retrieval steps (layer-steps); ms per retrieval step:",
            (long long)st->prof_calls, (long long)st->prof_steps);
    const double ns = st->prof_steps ? (double)st->prof_steps : 1.0;
    for (int i = 0; i < RA_NPROF; i++) fprintf(stderr, " %s %.4f", ra_prof_names[i], st->prof_ms[i] / ns);
    fprintf(stderr, "  (totals ms:");
    for (int i = 0; i < RA_NPROF; i++) fprintf(stderr, " %s %.2f", ra_prof_names[i], st->prof_ms[i]);
    fprintf(stderr, ")\n");
    st->prof_calls = st->prof_steps = 0;
    memset(st->prof_ms, 0, sizeof st->prof_ms);
}

static void ra_destroy(void *state)
{
    struct ra_dev *st = state;
    if (!st) return;
    prof_print(st);
    for (int i = 0; st->layers && i < st->L; i++) {
        layer_reset(st, &st->layers[i]);
        scb_free(st->layers[i].graphs);
        scb_free(st->layers[i].kb);
    }
    scb_free(st->layers);
    scb_pool_destroy(st->pool);
    scb_cuda_free(st->cc, st->d_idx); scb_cuda_free(st->cc, st->d_n); scb_cuda_free(st->cc, st->work);
    scb_cuda_free(st->cc, st->d_scores);
    scb_cuda_host_free(st->cc, st->h_idx); scb_cuda_host_free(st->cc, st->h_n); scb_cuda_host_free(st->cc, st->q16);
    scb_cuda_host_free(st->cc, st->kstage);
    scb_free(st->exact); scb_free(st->exact_n);
    scb_free(st->stage); scb_free(st->qf); scb_free(st->scores); scb_free(st->sel_work);
    scb_free(st->row); scb_free(st->dig); scb_free(st->hist_work);
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
    {
        const int ds = scb_dev_retr_search_device(ctx);
        if (ds < 0) { rc = ds; goto out; }
        st->dev_scan = ds && !st->graph;
    }
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
    /* the workers spin between the layers' steps (a layer's device work apart) instead of sleeping:
     * SCB_RETR_SPIN_US microseconds, default 1000; 0 sleeps at once */
    const char *spin = getenv("SCB_RETR_SPIN_US");
    scb_pool_set_spin_us(st->pool, spin && *spin ? atoi(spin) : 1000);
    const char *prof = getenv("SCB_RETR_PROFILE");
    st->prof = prof && *prof && strcmp(prof, "0");
    const char *hist = getenv("SCB_RETR_HIST");   /* scan (default) | select: where the fused step counts */
    st->hist_sel = hist && !strcmp(hist, "select");
    const char *pfk = getenv("SCB_RETR_PREFETCH_KB");
    const long pf_kb = pfk && *pfk ? atol(pfk) : 2048;
    st->prefetch = pf_kb > 0 ? (size_t)pf_kb * 1024 : 0;
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
    prof_print(st);
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
    if (st->dcap) SCB_TRY(scb_cuda_sync(st->cc, ctx));   /* no copy from the pinned buffers in flight */
    scb_cuda_free(st->cc, st->d_idx); scb_cuda_free(st->cc, st->d_n); scb_cuda_free(st->cc, st->work);
    scb_cuda_free(st->cc, st->d_scores);
    scb_cuda_host_free(st->cc, st->h_idx); scb_cuda_host_free(st->cc, st->h_n); scb_cuda_host_free(st->cc, st->q16);
    scb_cuda_host_free(st->cc, st->kstage);
    scb_free(st->exact); scb_free(st->exact_n);
    scb_free(st->stage); scb_free(st->qf); scb_free(st->scores); scb_free(st->sel_work); scb_free(st->row);
    scb_free(st->dig); scb_free(st->hist_work);
    st->dig = NULL; st->hist_work = NULL;
    st->d_idx = st->d_n = NULL; st->work = st->d_scores = NULL;
    st->h_idx = st->h_n = st->exact = st->exact_n = NULL; st->q16 = st->stage = st->kstage = NULL; st->qf = NULL;
    st->scores = NULL; st->sel_work = NULL; st->row = NULL;
    st->dcap = 0;
    int stride = st->top_k < (int64_t)cap ? st->top_k : (int)cap;
    size_t wf = scb_retr_attn_cuda_work_floats(st->Hq, st->D, (int)cap, stride);
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->d_idx, sizeof(int32_t) * (size_t)st->Hq * stride, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->d_n, sizeof(int32_t) * (size_t)st->Hq, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->work, sizeof(float) * wf, ctx));
    if (st->dev_scan) {   /* the device scan's scores; the host scan's buffers are not needed */
        SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->d_scores,
                                sizeof(float) * scb_retr_flat_cuda_work_floats(st->Hq, (int)cap), ctx));
        st->stride = stride;
        st->dcap = cap;
        goto out;
    }
    SCB_TRY(scb_cuda_host_alloc(st->cc, (void **)&st->h_idx, sizeof(int32_t) * (size_t)st->Hq * stride, ctx));
    SCB_TRY(scb_cuda_host_alloc(st->cc, (void **)&st->h_n, sizeof(int32_t) * (size_t)st->Hq, ctx));
    SCB_TRY(scb_cuda_host_alloc(st->cc, (void **)&st->q16, sizeof(uint16_t) * (size_t)st->Hq * st->D, ctx));
    SCB_TRY(scb_cuda_host_alloc(st->cc, (void **)&st->kstage, sizeof(uint16_t) * (size_t)st->Hkv * RA_KSTAGE * st->D,
                                ctx));
    st->exact = st->graph ? scb_malloc(sizeof(int32_t) * (size_t)st->Hq * stride) : NULL;
    st->exact_n = st->graph ? scb_malloc(sizeof(int32_t) * (size_t)st->Hq) : NULL;
    st->row = st->graph ? scb_malloc(sizeof(float) * cap * st->D) : NULL;
    st->qf = scb_malloc(sizeof(float) * (size_t)st->Hq * st->D);
    st->stage = scb_malloc(sizeof(uint16_t) * cap * st->D);
    st->scores = scb_malloc(sizeof(float) * cap * st->Hq);
    st->sel_bytes = scb_retr_topk_set_work_bytes((int)cap);
    st->sel_work = scb_malloc(st->sel_bytes * (size_t)scb_pool_threads(st->pool));
    st->dig = scb_malloc(sizeof(uint16_t) * cap * st->Hq);
    st->hist_bytes = scb_retr_step_hist_bytes(scb_pool_threads(st->pool), st->Hq);
    st->hist_work = scb_malloc(st->hist_bytes);
    if (!st->h_idx || !st->h_n || !st->q16 || !st->qf || !st->stage || !st->scores || !st->sel_work || !st->dig ||
        !st->hist_work ||
        (st->graph && (!st->exact || !st->exact_n || !st->row))) {
        rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory");
        goto out;
    }
    st->stride = stride;
    st->dcap = cap;
out:
    return rc;
}

/* Copy global keys [l->host_n, Tg) of every KV head into the host store (zeroed when allocated:
 * the scan reads whole blocks). A decode step's few new keys (<= RA_KSTAGE) are only ENQUEUED
 * into the pinned kstage (*pending = their count; sync_keys_finish puts them after a wait the
 * caller shares with its query download); more (a prefill) are copied head by head here. */
static int sync_keys(struct ra_dev *st, struct ra_layer *l, const struct scb_dev_attn *a, int Tg, int *pending,
                     struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    *pending = 0;
    if (Tg <= l->host_n) return SCB_OK;
    if (l->hcap < a->cap) {
        const size_t kh = scb_retr_kb_elems(a->cap, st->D);
        uint16_t *kb = scb_calloc((size_t)st->Hkv * kh, sizeof(uint16_t));
        if (!kb) return scb_err(ctx, SCB_E_NOMEM, "retr_attn (cuda): out of memory for the host keys");
        for (int g = 0; g < st->Hkv && l->kb; g++)
            memcpy(kb + (size_t)g * kh, l->kb + (size_t)g * l->kb_head,
                   sizeof(uint16_t) * scb_retr_kb_elems((size_t)l->host_n, st->D));
        scb_free(l->kb);
        l->kb = kb;
        l->hcap = a->cap;
        l->kb_head = kh;
    }
    const size_t n = (size_t)(Tg - l->host_n);
    if (n <= RA_KSTAGE) {   /* a decode step: every head's new keys, waited for by the caller */
        for (int g = 0; g < st->Hkv; g++)
            SCB_TRY(scb_cuda_download_async(st->cc, st->kstage + (size_t)g * RA_KSTAGE * st->D,
                                            a->k + ((size_t)g * a->cap + l->host_n) * st->D,
                                            n * st->D * sizeof(uint16_t), ctx));
        *pending = (int)n;
        return SCB_OK;
    }
    for (int g = 0; g < st->Hkv; g++) {
        SCB_TRY(scb_cuda_download(st->cc, st->stage, a->k + ((size_t)g * a->cap + l->host_n) * st->D,
                                  n * st->D * sizeof(uint16_t), ctx));
        scb_retr_kb_put_rows(l->kb + (size_t)g * l->kb_head, st->D, (size_t)l->host_n, st->stage, (size_t)st->D, n);
    }
    l->host_n = Tg;
out:
    return rc;
}

/* After the wait: the pending new keys from kstage into the store. */
static void sync_keys_finish(struct ra_dev *st, struct ra_layer *l, int *pending)
{
    if (!*pending) return;
    const size_t n = (size_t)*pending;
    for (int g = 0; g < st->Hkv; g++)
        scb_retr_kb_put_rows(l->kb + (size_t)g * l->kb_head, st->D, (size_t)l->host_n,
                             st->kstage + (size_t)g * RA_KSTAGE * st->D, (size_t)st->D, n);
    l->host_n += (int)n;
    *pending = 0;
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
    if (st->dev_scan) goto out;                           /* the device scans its own cache */
    const int N = (int)a->kv->n_global[a->layer * a->kv->Hkv];
    int pend = 0;
    SCB_TRY(sync_keys(st, l, a, N, &pend, ctx));
    if (pend) {
        SCB_TRY(scb_cuda_sync(st->cc, ctx));
        sync_keys_finish(st, l, &pend);
    }
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
        for (int t = lo; t < hi; t++)
            scb_retr_kb_get(l->kb + (size_t)g * l->kb_head, D, (size_t)t, st->row + (size_t)(t - lo) * D);
        rc = scb_retr_graph_build(&l->graphs[g], st->row, (size_t)D, ids, hi - lo, D, tq, (size_t)D, Nq * G, &gp, ctx);
    }
    scb_free(q16);
    if (rc) goto out;
    l->cpu_end = hi;
out:
    scb_free(tq);
    scb_free(ids);
    return rc;
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* The row's attention: resident sinks [0, n_sink) and [hi, nc) (recent window + temp tokens),
 * each query head's retrieved ids from d_idx / d_n, merged by log-sum-exp. */
static int attend_retrieved(struct ra_dev *st, struct scb_retr_attn_cuda_args *ra, int hi, int nc,
                            struct scb_ctx *ctx)
{
    ra->r0_begin = 0; ra->r0_end = st->n_sink; ra->r1_begin = hi; ra->r1_end = nc;
    ra->idx = st->d_idx; ra->n_idx = st->d_n; ra->idx_stride = st->stride;
    return scb_retr_attn_cuda(st->cc, ra, ctx);
}

/* The device search's recall for one row over the index [lo, hi): 1 for every query head (the
 * search is exact) when something was retrieved. */
static void count_exact_recall(struct ra_dev *st, int lo, int hi)
{
    if (hi > lo && st->top_k > 0) {
        st->recall_sum += st->Hq;
        st->recall_n += st->Hq;
    }
}

static int ra_decode(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct ra_dev *st = state;
    int rc = SCB_OK, pend = 0;
    const int prof = st->prof;
    double tc = prof ? scb_now_ms() : 0, tp = tc;
#define RA_LAP(ph) do { if (prof) { const double t_ = scb_now_ms(); st->prof_ms[ph] += t_ - tp; tp = t_; } } while (0)
    SCB_TRY(check_layer(st, a, ctx));
    struct ra_layer *l = &st->layers[a->layer];
    SCB_TRY(ensure_scratch(st, a->cap, ctx));
    const int Tg = (int)a->kv->n_global[a->layer * a->kv->Hkv], D = st->D, G = st->Hq / st->Hkv;
    if (prof) tp = scb_now_ms();
    if (!st->dev_scan) SCB_TRY(sync_keys(st, l, a, Tg, &pend, ctx));
    const int use_graph = st->graph && l->graphs[0];
    if (use_graph) {                                     /* slide into the index, as the CPU */
        if (pend) {
            SCB_TRY(scb_cuda_sync(st->cc, ctx));
            sync_keys_finish(st, l, &pend);
        }
        for (int t = l->cpu_end; t < Tg - st->n_recent; t++) {
            if (t < st->n_sink) continue;
            for (int g = 0; g < st->Hkv; g++) {
                scb_retr_kb_get(l->kb + (size_t)g * l->kb_head, D, (size_t)t, st->row);
                SCB_TRY(scb_retr_graph_add(l->graphs[g], st->row, t, ctx));
            }
            l->cpu_end = t + 1;
        }
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
        if (st->dev_scan) {   /* the exact flat retrieval on the device: no host round trip */
            SCB_TRY(scb_retr_flat_topk_cuda(st->cc, ra.q, a->k, a->cap, st->Hq, st->Hkv, D, lo, hi, st->top_k,
                                            st->d_idx, st->stride, st->d_n, st->d_scores, ctx));
            count_exact_recall(st, lo, hi);
            SCB_TRY(attend_retrieved(st, &ra, hi, nc, ctx));
            continue;
        }
        /* pinned q16, after the new keys' downloads: ONE wait covers both (and the previous
         * step's id upload, so h_idx is free) */
        SCB_TRY(scb_cuda_download_async(st->cc, st->q16, ra.q, sizeof(uint16_t) * (size_t)st->Hq * D, ctx));
        RA_LAP(RA_P_ENQ);
        if (st->prefetch) {   /* while the device computes q: warm the start of each thread's keys (lines
                               * the new keys' put will touch are simply written after) */
            const struct scb_retr_step pf = {.Hq = st->Hq, .Hkv = st->Hkv, .D = D, .kb = l->kb, .kb_head = l->kb_head,
                                             .lo = lo, .hi = hi};
            scb_retr_step_prefetch(st->pool, &pf, st->prefetch);
            RA_LAP(RA_P_PREF);
        }
        SCB_TRY(scb_cuda_sync(st->cc, ctx));
        RA_LAP(RA_P_WAIT);
        sync_keys_finish(st, l, &pend);
        RA_LAP(RA_P_PUT);
        for (size_t e = 0; e < (size_t)st->Hq * D; e++) st->qf[e] = scb_bf16_to_f32(st->q16[e]);
        RA_LAP(RA_P_QCONV);
        /* the exact flat step: the retrieval (flat), or the sets the graph's recall is measured on */
        struct scb_retr_step fs = {
            .q = st->qf, .Hq = st->Hq, .Hkv = st->Hkv, .D = D, .kb = l->kb, .kb_head = l->kb_head,
            .lo = lo, .hi = hi, .top_k = st->top_k, .scores = st->scores, .ss = st->dcap,
            .sel_work = st->sel_work, .sel_bytes = st->sel_bytes, .idx_stride = st->stride,
            .idx = use_graph ? st->exact : st->h_idx, .n_idx = use_graph ? st->exact_n : st->h_n,
            .dig = st->dig, .hist_work = st->hist_work, .hist_bytes = st->hist_bytes, .profile = prof,
            .hist_in_select = st->hist_sel,
        };
        SCB_TRY(scb_retr_step_run(st->pool, &fs, SCB_RETR_STEP_FUSED, ctx));
        if (prof) {
            st->prof_ms[RA_P_SCAN] += fs.prof_ms[0];
            st->prof_ms[RA_P_SEL] += fs.prof_ms[1];
            st->prof_steps++;
        }
        RA_LAP(RA_P_STEP);
        if (!use_graph) {
            for (int h = 0; h < st->Hq; h++)
                if (st->h_n[h] > 0) { st->recall_sum += 1.0; st->recall_n++; }   /* exact by construction */
        } else {
            for (int h = 0; h < st->Hq; h++) {
                int32_t *out = st->h_idx + (size_t)h * st->stride;
                const float *q = st->qf + (size_t)h * D;
                int vis = 0, g = h / G;
                int n = scb_retr_graph_search(l->graphs[g], q, st->top_k, hi, out, NULL, &vis, ctx);
                if (n < 0) { rc = n; goto out; }
                const int ne = st->exact_n[h];
                if (ne > 0) {
                    st->recall_sum += scb_retr_recall(out, n, st->exact + (size_t)h * st->stride, ne);
                    st->recall_n++;
                }
                st->h_n[h] = n;
            }
        }
        for (int h = 0; use_graph && h < st->Hq; h++)    /* the flat selection is in id order already */
            qsort(st->h_idx + (size_t)h * st->stride, (size_t)st->h_n[h], sizeof(int32_t), cmp_i32);
        if (prof) tp = scb_now_ms();
        /* no wait: h_idx / h_n are pinned and not written again before the next step's sync */
        SCB_TRY(scb_cuda_upload_async(st->cc, st->d_idx, st->h_idx, sizeof(int32_t) * (size_t)st->Hq * st->stride,
                                      ctx));
        SCB_TRY(scb_cuda_upload_async(st->cc, st->d_n, st->h_n, sizeof(int32_t) * (size_t)st->Hq, ctx));
        SCB_TRY(attend_retrieved(st, &ra, hi, nc, ctx));
        RA_LAP(RA_P_LAUNCH);
    }
    if (pend) {                                          /* no retrieval row: the keys still go in */
        SCB_TRY(scb_cuda_sync(st->cc, ctx));
        sync_keys_finish(st, l, &pend);
    }
    if (prof) {
        st->prof_ms[RA_P_CALL] += scb_now_ms() - tc;
        st->prof_calls++;
    }
#undef RA_LAP
out:
    return rc;
}

/* The one-token step inside the engine's replayed graph (struct scb_dev_hooks): the flat search on
 * the device, for a step whose entry goes to the temp segment — generation, where the index
 * [n_sink, Tg - n_recent) of the Tg global tokens stays put and only the resident window's end,
 * the entry count, grows; the attention reads that end from the device. Other steps (index=graph,
 * the host search, global appends, a context inside the resident window) are plain launches. */
static int ra_step_graphable(void *state, const struct scb_kv_cache *kv, size_t layer)
{
    const struct ra_dev *st = state;
    if (!st->dev_scan || st->graph || layer >= (size_t)st->L || kv->mode != SCB_KV_APPEND_TEMP ||
        kv->Hkv != (size_t)st->Hkv || st->dcap < kv->cap)
        return 0;
    const size_t tg = kv->n_global[layer * kv->Hkv];
    for (size_t h = 1; h < kv->Hkv; h++)
        if (kv->n_global[layer * kv->Hkv + h] != tg) return 0;
    return scb_kv_cache_len(kv, layer, 0) + 1 <= kv->cap && tg >= (size_t)(st->n_sink + st->n_recent);
}

/* Host side of a graph step: the recall it counts, the index range and the window's bound (the
 * largest end with the same number of resident chunks: the graph is recorded anew when the count
 * of chunks changes, every SCB_RETR_CHUNK tokens), and the key of what the launches bake in. */
static int ra_step_prep(void *state, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx)
{
    struct ra_dev *st = state;
    int rc = SCB_OK;
    SCB_TRY(check_layer(st, a, ctx));
    SCB_TRY(ensure_scratch(st, a->cap, ctx));
    struct ra_layer *l = &st->layers[a->layer];
    const int Tg = (int)a->kv->n_global[a->layer * a->kv->Hkv], nc = (int)a->Tk, lo = st->n_sink;
    const int hi = Tg - st->n_recent;
    if (a->T != 1 || nc <= Tg || hi < lo || (size_t)nc > a->cap) {
        rc = scb_err(ctx, SCB_E_INVAL, "retr_attn (cuda): layer %zu's step (%zu rows, %d entries, %d global) does not "
                     "fit a graph step", a->layer, a->T, nc, Tg);
        goto out;
    }
    const int n_res = st->n_sink + (nc - hi), rch = (n_res + SCB_RETR_CHUNK - 1) / SCB_RETR_CHUNK;
    const int64_t end = (int64_t)hi + (int64_t)rch * SCB_RETR_CHUNK - st->n_sink;
    l->step_hi = hi;
    l->step_end = end < (int64_t)a->cap ? (int)end : (int)a->cap;
    count_exact_recall(st, lo, hi);
    const uint64_t v[] = {(uint64_t)(uintptr_t)a->k, (uint64_t)(uintptr_t)a->v, (uint64_t)a->cap,
                          (uint64_t)(uintptr_t)a->q, (uint64_t)(uintptr_t)a->out, (uint64_t)(uintptr_t)st->d_idx,
                          (uint64_t)(uintptr_t)st->d_n, (uint64_t)(uintptr_t)st->d_scores,
                          (uint64_t)(uintptr_t)st->work, (uint64_t)st->stride, (uint64_t)hi, (uint64_t)l->step_end};
    *key = scb_hash64(v, sizeof v, SCB_HASH64_INIT);
out:
    return rc;
}

/* The layer's search and attention inside the graph: the index range and the bound from the
 * step's prep, the window's end (the entry count) from the device. */
static int ra_step_dev(void *state, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx)
{
    struct ra_dev *st = state;
    int rc = SCB_OK;
    const struct ra_layer *l = &st->layers[a->layer];
    struct scb_retr_attn_cuda_args ra = {
        .q = a->q, .k = a->k, .v = a->v, .kcap = a->cap, .Hq = st->Hq, .Hkv = st->Hkv, .D = st->D,
        .scale = a->scale, .out = a->out, .lse = NULL, .work = st->work, .r1_end_dev = n_dev,
    };
    SCB_TRY(scb_retr_flat_topk_cuda(st->cc, a->q, a->k, a->cap, st->Hq, st->Hkv, st->D, st->n_sink, l->step_hi,
                                    st->top_k, st->d_idx, st->stride, st->d_n, st->d_scores, ctx));
    rc = attend_retrieved(st, &ra, l->step_hi, l->step_end, ctx);
out:
    return rc;
}

int scb_dev_retr_search_device(struct scb_ctx *ctx)
{
    const char *e = getenv("SCB_RETR_SEARCH");
    if (!e || !*e || !strcmp(e, "device")) return 1;
    if (!strcmp(e, "host")) return 0;
    return scb_err(ctx, SCB_E_INVAL, "SCB_RETR_SEARCH=%s: expected device (the default) or host", e);
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
    .step_graphable = ra_step_graphable,
    .step_prep = ra_step_prep,
    .step_dev = ra_step_dev,
};
