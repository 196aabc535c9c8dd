/* method_bind.c — a method spec's prefill pattern and KV policy behind the engine's attention
 * hooks, with SCBench's lifecycle and per-turn cost accounting (see method_bind.h). */
#include "harness/method_bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness/kv_chunks.h"
#include "kernels/alloc.h"
#include "methods/cacheblend.h"
#include "methods/kivi.h"
#include "methods/quest.h"
#include "methods/retr_attn.h"
#include "scb_config.h"
#if SCB_HAVE_CUDA
#include "harness/method_dev.h"
#endif

enum { BIND_ELT_BYTES = 2 };    /* bf16: the dtype SCBench runs and its byte counts assume */

struct scb_method_binding {
    struct scb_model *m;            /* borrowed */
    struct scb_method pre, kvp;     /* owned instances (options copied from the spec) */
    struct scb_model_info mi;
    int per_query;                  /* KV policy selects per query head (SCBench's GQA repetition) */
    size_t Hstore;                  /* heads a cache for this binding stores */
    /* first prefill of the session */
    int64_t first_N;                /* its length, -1 before it */
    double dens_sum;                /* summed attention density of its layers */
    int dens_layers;
    /* Quest: recall of its selected pages vs the exact top keys, over single-token steps */
    double quest_recall_sum;
    int64_t quest_recall_n;
    /* scratch for the after-prefill compression */
    float *kbuf, *vbuf;             /* (N, Hkv, D) packed keys / values of one layer */
    size_t buf_floats;
    size_t *idx;                    /* (N) kept entry indices */
    size_t idx_cap;
    /* CacheBlend: the chunk store and the plan of the session's blended first prefill */
    struct scb_kv_chunks *chunks;   /* NULL unless the prefill pattern is cacheblend */
    int storing;                    /* inside scb_kv_chunks_put: answer the blend hook with NULL */
    struct scb_blend_plan plan;
    uint8_t *valid;                 /* (blend_n) */
    long *chunk_of;                 /* (n_chunks) store index of each prompt chunk */
    size_t n_chunks, blend_n;       /* blend_n 0 = no blended prefill this session */
    int64_t stored_tokens;          /* tokens whose chunk KV this session computed and stored */
#if SCB_HAVE_CUDA
    /* device engine: the methods' device implementations (NULL = dense) and their states */
    const struct scb_dev_method_ops *dpre, *dkvp;
    void *spre, *skvp;
#endif
};

/* ---- argument translation ------------------------------------------------------------------- */
/* The methods' view of one layer's attention: keys/values straight from the cache's (Hstore, cap,
 * D) storage through strides. Every stored head must hold the same number of entries (true for
 * the policies with a decode path, which keep everything). */
static int to_args(const struct scb_method_binding *b, const struct scb_backend_attn *a,
                   struct scb_attn_args *o, struct scb_ctx *ctx)
{
    const struct scb_kv_cache *kv = a->kv;
    size_t n = scb_kv_cache_len(kv, a->layer, 0);
    for (size_t h = 1; h < a->Hkv; h++)
        if (scb_kv_cache_len(kv, a->layer, h) != n)
            return scb_err(ctx, SCB_E_UNSUPPORTED, "method %s+%s: layer %zu stores %zu entries in head 0 but "
                           "%zu in head %zu; this attention path needs equal heads", b->pre.ops->name,
                           b->kvp.ops->name, a->layer, n, scb_kv_cache_len(kv, a->layer, h), h);
    if (n > (size_t)INT32_MAX || a->T > n)
        return scb_err(ctx, SCB_E_INVAL, "method attention: %zu cache entries for %zu queries", n, a->T);
    memset(o, 0, sizeof *o);
    o->q = a->q;
    o->k = scb_kv_cache_k(kv, a->layer, 0);
    o->v = scb_kv_cache_v(kv, a->layer, 0);
    o->out = a->out;
    o->Tq = (int)a->T;
    o->Tk = (int)n;
    o->Hq = (int)a->H;
    o->Hkv = (int)a->Hkv;
    o->D = (int)a->D;
    o->kv_tok_stride = a->D;
    o->kv_head_stride = kv->cap * a->D;
    o->Tk_global = (int)kv->n_global[a->layer * kv->Hkv];
    o->q_pos0 = kv->seen;
    o->scale = a->scale;
    o->layer = (int)a->layer;
    o->density = 1.0;
    return SCB_OK;
}

/* ---- hooks -------------------------------------------------------------------------------- */
static int hook_prefill(struct scb_backend *be, void *user, const struct scb_backend_attn *a,
                        struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    int rc = SCB_OK;
    double density = 1.0;
    if (b->storing) return be->ops->attn_prefill(be, NULL, a, ctx);   /* a chunk computed for the store */
    if (!b->pre.ops->prefill_attn) {
        SCB_TRY(be->ops->attn_prefill(be, NULL, a, ctx));
    } else {
        struct scb_attn_args args;
        SCB_TRY(to_args(b, a, &args, ctx));
        SCB_TRY(scb_method_prefill_attn(&b->pre, &args, ctx));
        density = args.density;
        /* the pattern covered the whole causal triangle: dense attention, computed as dense */
        if (density == 1.0) SCB_TRY(be->ops->attn_prefill(be, NULL, a, ctx));
    }
    if (a->layer == 0) b->first_N = (int64_t)a->T;
    b->dens_sum += density;
    b->dens_layers++;
out:
    return rc;
}

static int grow_scratch(struct scb_method_binding *b, size_t floats, size_t n_idx, struct scb_ctx *ctx)
{
    if (floats > b->buf_floats) {
        scb_free(b->kbuf); scb_free(b->vbuf);
        b->kbuf = scb_malloc(floats * sizeof(float));
        b->vbuf = scb_malloc(floats * sizeof(float));
        b->buf_floats = b->kbuf && b->vbuf ? floats : 0;
        if (!b->buf_floats) return scb_err(ctx, SCB_E_NOMEM, "method binding: out of memory for %zu keys", floats);
    }
    if (n_idx > b->idx_cap) {
        scb_free(b->idx);
        b->idx = scb_malloc(n_idx * sizeof(size_t));
        b->idx_cap = b->idx ? n_idx : 0;
        if (!b->idx) return scb_err(ctx, SCB_E_NOMEM, "method binding: out of memory");
    }
    return SCB_OK;
}

/* Once per layer after the first prefill: the KV policy decides what the layer keeps. */
static int hook_after_prefill(struct scb_backend *be, void *user, struct scb_kv_cache *kv,
                              const struct scb_backend_attn *a, struct scb_ctx *ctx)
{
    (void)be;
    struct scb_method_binding *b = user;
    if (!b->kvp.ops->kv_after_prefill) return SCB_OK;
    int rc = SCB_OK;
    struct scb_kv_keep keep = {0};
    const size_t N = a->T, D = kv->D, Hin = kv->Hin, rep = kv->Hkv / kv->Hin, l = a->layer;
    for (size_t s = 0; s < kv->Hkv; s++)
        if (scb_kv_cache_len(kv, l, s) != N || kv->n_temp[l])
            return scb_err(ctx, SCB_E_INVAL, "%s: layer %zu head %zu holds %zu entries after a first prefill of "
                           "%zu tokens", b->kvp.ops->name, l, s, scb_kv_cache_len(kv, l, s), N);
    SCB_TRY(grow_scratch(b, N * Hin * D, N, ctx));
    float *k = b->kbuf, *v = b->vbuf;            /* (N, Hin, D) */
    for (size_t g = 0; g < Hin; g++) {
        const float *ks = scb_kv_cache_k(kv, l, g * rep), *vs = scb_kv_cache_v(kv, l, g * rep);
        for (size_t t = 0; t < N; t++) {
            memcpy(k + (t * Hin + g) * D, ks + t * D, D * sizeof(float));
            memcpy(v + (t * Hin + g) * D, vs + t * D, D * sizeof(float));
        }
    }
    struct scb_kv_compress_args ca = {
        .k = k, .v = v, .q = a->q, .N = (int)N, .Nq = (int)N, .Hq = (int)a->H, .Hkv = (int)Hin,
        .D = (int)D, .scale = a->scale, .layer = (int)l, .L = (int)kv->L,
    };
    SCB_TRY(scb_method_kv_after_prefill(&b->kvp, &ca, &keep, ctx));
    if (keep.N != (int)N || keep.H != (keep.per_kv_head ? (int)Hin : (int)a->H)) {
        rc = scb_err(ctx, SCB_E_INVAL, "%s: keep lists for %d heads over %d entries, expected %zu heads over %zu",
                     b->kvp.ops->name, keep.H, keep.N, keep.per_kv_head ? Hin : a->H, N);
        goto out;
    }
    if (!keep.per_kv_head && kv->Hkv != a->H) {
        /* per-query-head lists into a cache of fewer heads: only if every group agrees */
        size_t G = a->H / kv->Hkv;
        for (size_t h = 0; h < a->H; h++) {
            size_t h0 = h / G * G;
            if (keep.n[h] != keep.n[h0] ||
                memcmp(keep.idx + h * keep.cap, keep.idx + h0 * keep.cap, sizeof(int32_t) * (size_t)keep.n[h])) {
                rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s selects per query head (SCBench's GQA repetition) but "
                             "the KV cache stores %zu heads for %zu query heads: create it with "
                             "scb_method_bind_kv_create, or use the option gqa=true", b->kvp.ops->name,
                             kv->Hkv, a->H);
                goto out;
            }
        }
    }
    for (size_t s = 0; s < kv->Hkv; s++) {
        size_t list = keep.per_kv_head ? s / rep : s * (a->H / kv->Hkv);
        int n = keep.n[list];
        if ((size_t)n == N) continue;                /* ascending subset of [0, N) of size N: all */
        const int32_t *li = keep.idx + list * (size_t)keep.cap;
        for (int i = 0; i < n; i++) b->idx[i] = (size_t)li[i];
        SCB_TRY(scb_kv_cache_keep(kv, l, s, b->idx, (size_t)n, ctx));
    }
out:
    scb_kv_keep_fini(&keep);
    return rc;
}

/* Whether the KV policy's last decode call on `layer` was exact dense attention. */
static int decode_was_dense(const struct scb_method_binding *b, int layer, double density)
{
    if (b->kvp.ops == &scb_method_kivi) {
        const struct scb_kivi_cache *c = scb_kivi_method_cache(&b->kvp, layer);
        return !c || (c->Tk_q == 0 && c->Tv_q == 0);
    }
    return density == 1.0;
}

/* Quest's recall on a single-token step: per query head, the fraction of the exact top-n keys by
 * q.k (n = the keys of the pages Quest selects, ties to the smaller index) that lie in those
 * pages. The selection is recomputed with Quest's own functions. */
struct scored { double s; int32_t t; };
static int by_score_desc(const void *x, const void *y)
{
    const struct scored *a = x, *b = y;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->t > b->t) - (a->t < b->t);
}

static int quest_recall(struct scb_method_binding *b, const struct scb_attn_args *a, struct scb_ctx *ctx)
{
    const int P = scb_method_opt_int(&b->kvp, "page"), budget = scb_method_opt_int(&b->kvp, "budget");
    const int T = a->Tk, D = a->D, np = (T + P - 1) / P, kp = scb_quest_kpages(T, P, budget), G = a->Hq / a->Hkv;
    int rc = SCB_OK;
    double *ub = scb_malloc(sizeof(double) * (size_t)np);
    float *w = scb_malloc(sizeof(float) * (size_t)D);
    int32_t *sel = scb_malloc(sizeof(int32_t) * (size_t)(kp > 0 ? kp : 1));
    unsigned char *mark = scb_malloc((size_t)np);
    struct scored *sc = scb_malloc(sizeof(struct scored) * (size_t)T);
    if (!ub || !w || !sel || !mark || !sc) { rc = scb_err(ctx, SCB_E_NOMEM, "quest recall: out of memory"); goto out; }
    for (int h = 0; h < a->Hq; h++) {
        const float *q = a->q + (size_t)h * D;
        const float *k = a->k + (size_t)(h / G) * a->kv_head_stride;
        scb_quest_signs(q, (size_t)a->Hq * D, 1, D, w);
        scb_quest_bounds(q, w, k, a->kv_tok_stride, T, D, P, ub);
        int ns = scb_quest_top_pages(ub, np, kp, sel);
        if (ns < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "quest recall: out of memory"); goto out; }
        memset(mark, 0, (size_t)np);
        int n = 0;
        for (int i = 0; i < ns; i++) {
            mark[sel[i]] = 1;
            n += (sel[i] + 1) * P <= T ? P : T - sel[i] * P;
        }
        for (int t = 0; t < T; t++) {
            const float *kt = k + (size_t)t * a->kv_tok_stride;
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += (double)q[d] * (double)kt[d];
            sc[t].s = dot;
            sc[t].t = t;
        }
        qsort(sc, (size_t)T, sizeof *sc, by_score_desc);
        int hit = 0;
        for (int i = 0; i < n; i++) hit += mark[sc[i].t / P];
        if (n > 0) { b->quest_recall_sum += (double)hit / n; b->quest_recall_n++; }
    }
out:
    scb_free(ub); scb_free(w); scb_free(sel); scb_free(mark); scb_free(sc);
    return rc;
}

/* KV policies SCBench runs with dense_prefix=True (§6.5): follow-up prompts are fed one token at
 * a time, so every token is inserted into the retrieval index / quantized store before the next
 * one attends. */
static int one_token_at_a_time(const struct scb_method_binding *b)
{
    return b->kvp.ops == &scb_method_kivi || b->kvp.ops == &scb_method_retr_attn;
}

static int hook_decode(struct scb_backend *be, void *user, const struct scb_backend_attn *a,
                       struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    int rc = SCB_OK;
    if (!b->kvp.ops->decode_attn) return be->ops->attn_decode(be, NULL, a, ctx);
    struct scb_attn_args args;
    SCB_TRY(to_args(b, a, &args, ctx));
    int all_dense = 1;
    if (a->T > 1 && one_token_at_a_time(b)) {
        const size_t row = a->H * a->D;
        const int Tk = args.Tk, Tg = args.Tk_global > 0 ? args.Tk_global : args.Tk;
        for (int i = 0; i < args.Tq; i++) {        /* row i as a one-token step over its causal keys */
            struct scb_attn_args r = args;
            r.q = a->q + (size_t)i * row;
            r.out = a->out + (size_t)i * row;
            r.Tq = 1;
            r.Tk = Tk - args.Tq + i + 1;
            r.Tk_global = Tg < r.Tk ? Tg : r.Tk;
            r.q_pos0 = args.q_pos0 + i;
            SCB_TRY(scb_method_decode_attn(&b->kvp, &r, ctx));
            all_dense = all_dense && decode_was_dense(b, r.layer, r.density);
        }
    } else {
        SCB_TRY(scb_method_decode_attn(&b->kvp, &args, ctx));
        all_dense = decode_was_dense(b, args.layer, args.density);
        if (b->kvp.ops == &scb_method_quest && args.Tq == 1) SCB_TRY(quest_recall(b, &args, ctx));
    }
    if (all_dense) SCB_TRY(be->ops->attn_decode(be, NULL, a, ctx));
out:
    return rc;
}

/* ---- CacheBlend --------------------------------------------------------------------------- */
/* The retrieved K/V of one layer for the prompt being blended: chunk c at offset c * chunk. */
static int blend_fetch(void *user, size_t layer, float *k, float *v, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    const size_t C = scb_kv_chunks_size(b->chunks), row = (size_t)b->mi.Hkv * (size_t)b->mi.D;
    for (size_t c = 0; c < b->n_chunks; c++) {
        int rc = scb_kv_chunks_get(b->chunks, b->chunk_of[c], layer, (int64_t)(c * C), k + c * C * row,
                                   v + c * C * row, row, ctx);
        if (rc) return rc;
    }
    return SCB_OK;
}

/* First prefill of a session under cacheblend: the prompt's full chunks before its last token
 * are looked up in the store (computed independently and stored when missing: the session's
 * context is stored chunk by chunk the first time it is prefilled) and blended; the rest (the
 * trailing partial chunk, which holds the last token) is computed. */
static int hook_blend(struct scb_model *m, void *user, const int32_t *ids, size_t n,
                      struct scb_blend_plan **plan, struct scb_ctx *ctx)
{
    (void)m;
    struct scb_method_binding *b = user;
    int rc = SCB_OK;
    *plan = NULL;
    if (!b->chunks || b->storing) return SCB_OK;
    const size_t C = scb_kv_chunks_size(b->chunks);
    const int check = scb_method_opt_int(&b->pre, "check_layer");
    if (n < (size_t)scb_method_opt_int(&b->pre, "min_tokens") || check >= b->mi.L || (n - 1) / C == 0)
        return SCB_OK;
    scb_free(b->valid);
    scb_free(b->chunk_of);
    scb_free(b->plan.sel);
    memset(&b->plan, 0, sizeof b->plan);
    b->n_chunks = (n - 1) / C;
    b->blend_n = 0;
    b->valid = scb_calloc(n, 1);
    b->chunk_of = scb_calloc(b->n_chunks, sizeof *b->chunk_of);
    b->plan.sel = scb_malloc(n * sizeof *b->plan.sel);
    if (!b->valid || !b->chunk_of || !b->plan.sel) return scb_err(ctx, SCB_E_NOMEM, "cacheblend: out of memory");
    b->storing = 1;
    for (size_t c = 0; c < b->n_chunks; c++) {
        b->chunk_of[c] = scb_kv_chunks_find(b->chunks, ids + c * C);
        if (b->chunk_of[c] < 0) {
            rc = scb_kv_chunks_put(b->chunks, ids + c * C, &b->chunk_of[c], ctx);
            if (rc) break;
            b->stored_tokens += (int64_t)C;
        }
    }
    b->storing = 0;
    if (rc) return rc;
    memset(b->valid, 1, b->n_chunks * C);
    b->plan.valid = b->valid;
    b->plan.check_layer = check;
    b->plan.ratio = scb_method_opt_float(&b->pre, "ratio");
    b->plan.fetch = blend_fetch;
    b->plan.user = b;
    b->blend_n = n;
    b->first_N = (int64_t)n;
    *plan = &b->plan;
    return SCB_OK;
}

/* ---- the device engine (harness/method_dev.h) --------------------------------------------- */
#if SCB_HAVE_CUDA
static int dev_prefill(void *user, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    int rc = SCB_OK;
    double density = 1.0;
    if (b->dpre) SCB_TRY(b->dpre->prefill(b->spre, a, &density, ctx));
    else SCB_TRY(scb_model_dev_dense(a, ctx));
    if (a->layer == 0) b->first_N = (int64_t)a->T;
    b->dens_sum += density;
    b->dens_layers++;
out:
    return rc;
}

static int dev_after_prefill(void *user, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    return b->dkvp && b->dkvp->after_prefill ? b->dkvp->after_prefill(b->skvp, a, ctx) : SCB_OK;
}

static int dev_decode(void *user, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    return b->dkvp && b->dkvp->decode ? b->dkvp->decode(b->skvp, a, ctx) : scb_model_dev_dense(a, ctx);
}

/* The one-token step in the engine's replayed graph: a policy without a decode (dense over what
 * it kept) always, one with a decode when it implements the step hooks and says so. */
static int dev_step_graphable(void *user, const struct scb_kv_cache *kv, size_t layer)
{
    struct scb_method_binding *b = user;
    if (!b->dkvp || !b->dkvp->decode) return 1;
    return b->dkvp->step_graphable ? b->dkvp->step_graphable(b->skvp, kv, layer) : 0;
}

static int dev_step_prep(void *user, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    *key = 0;
    return b->dkvp && b->dkvp->decode && b->dkvp->step_prep ? b->dkvp->step_prep(b->skvp, a, key, ctx) : SCB_OK;
}

static int dev_step_dev(void *user, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx)
{
    struct scb_method_binding *b = user;
    return b->dkvp->step_dev(b->skvp, a, n_dev, ctx);
}

/* Find the device implementation of one side (NULL ops for dense) and create its state. */
static int dev_side(const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                    const struct scb_dev_method_ops **ops, void **state, struct scb_ctx *ctx)
{
    *ops = NULL;
    *state = NULL;
    if (!strcmp(m->ops->name, "dense")) return SCB_OK;
    const struct scb_dev_method_ops *o = scb_dev_method_find(m->ops->name);
    if (!o) return scb_err(ctx, SCB_E_UNSUPPORTED, "method %s is not available on the CUDA backend yet "
                           "(run it with --backend cpu)", m->ops->name);
    int rc = o->create(state, m, mi, cc, ctx);
    if (rc == SCB_OK) *ops = o;
    return rc;
}

static int dev_bind(struct scb_method_binding *b, struct scb_model *m, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    void *cc = scb_model_device_ctx(m);
    if (b->pre.ops == &scb_method_cacheblend)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "method cacheblend is not available on the CUDA backend yet "
                       "(run it with --backend cpu)");
    SCB_TRY(dev_side(&b->pre, &b->mi, cc, &b->dpre, &b->spre, ctx));
    SCB_TRY(dev_side(&b->kvp, &b->mi, cc, &b->dkvp, &b->skvp, ctx));
    if (b->dpre && !b->dpre->prefill) {
        rc = scb_err(ctx, SCB_E_INVAL, "method %s: its device implementation has no prefill", b->pre.ops->name);
        goto out;
    }
    struct scb_dev_hooks h = {dev_prefill, dev_decode, dev_after_prefill, b, dev_step_graphable, dev_step_prep,
                              b->dkvp && b->dkvp->decode && b->dkvp->step_dev ? dev_step_dev : NULL};
    scb_model_set_dev_hooks(m, &h);
out:
    return rc;
}
#endif

/* ---- lifecycle ---------------------------------------------------------------------------- */
static int copy_method(struct scb_method *dst, const struct scb_method *src, const struct scb_model_info *mi,
                       struct scb_ctx *ctx)
{
    const struct scb_method_ops *ops = src->ops ? src->ops : scb_method_find("dense");
    if (!ops) return scb_err(ctx, SCB_E_NOTFOUND, "method binding: no dense method registered");
    int rc = scb_method_create(dst, ops, ctx);
    if (rc) return rc;
    if (src->priv && ops->priv_size) memcpy(dst->priv, src->priv, ops->priv_size);
    return scb_method_init(dst, mi, ctx);   /* its messages name the method */
}

void scb_method_bind_destroy(struct scb_method_binding *b)
{
    if (!b) return;
    if (b->m) scb_model_set_attn_hooks(b->m, NULL);
#if SCB_HAVE_CUDA
    if (b->m && scb_model_on_device(b->m)) scb_model_set_dev_hooks(b->m, NULL);
    if (b->dpre) b->dpre->destroy(b->spre);
    if (b->dkvp) b->dkvp->destroy(b->skvp);
#endif
    scb_method_fini(&b->pre);
    scb_method_fini(&b->kvp);
    scb_free(b->kbuf);
    scb_free(b->vbuf);
    scb_free(b->idx);
    scb_kv_chunks_destroy(b->chunks);
    scb_free(b->valid);
    scb_free(b->chunk_of);
    scb_free(b->plan.sel);
    scb_free(b);
}

int scb_method_bind_create(struct scb_method_binding **out, struct scb_model *m,
                           const struct scb_method_spec *spec, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    *out = NULL;
    if (!m || !spec) return scb_err(ctx, SCB_E_INVAL, "method binding: NULL model or spec");
    struct scb_method_binding *b = scb_calloc(1, sizeof *b);
    if (!b) return scb_err(ctx, SCB_E_NOMEM, "method binding: out of memory");
    const struct scb_model_config *c = scb_model_get_config(m);
    b->mi = (struct scb_model_info){(int)c->L, (int)c->H, (int)c->Hkv, (int)c->D, NULL};
    SCB_TRY(copy_method(&b->pre, &spec->prefill, &b->mi, ctx));
    SCB_TRY(copy_method(&b->kvp, &spec->kv, &b->mi, ctx));
    if (b->pre.ops->axis == SCB_AXIS_KV || b->kvp.ops->axis == SCB_AXIS_PREFILL) {
        rc = scb_err(ctx, SCB_E_INVAL, "method binding: %s is not a prefill pattern or %s not a KV policy",
                     b->pre.ops->name, b->kvp.ops->name);
        goto out;
    }
    char gqa[16];
    b->per_query = b->kvp.ops->kv_after_prefill && scb_method_get(&b->kvp, "gqa", gqa, sizeof gqa) == SCB_OK &&
                   !strcmp(gqa, "false");
    b->Hstore = b->per_query ? c->H : c->Hkv;
    b->first_N = -1;
    b->m = m;
    if (scb_model_on_device(m)) {
        /* the device engine: the methods' device implementations behind struct scb_dev_hooks */
#if SCB_HAVE_CUDA
        b->m = NULL;                        /* a failure must leave m's hooks untouched */
        SCB_TRY(dev_bind(b, m, ctx));
        b->m = m;
        scb_model_set_attn_hooks(m, NULL);
        *out = b;
        b = NULL;
#else
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "method binding: no device engine in this build");
#endif
        goto out;
    }
    if (b->pre.ops == &scb_method_cacheblend) {
        if (b->kvp.ops->kv_after_prefill || b->kvp.ops->decode_attn) {
            rc = scb_err(ctx, SCB_E_UNSUPPORTED, "method binding: cacheblend runs with the dense KV policy only "
                         "(SCBench's vllm_blend;dense), not with %s", b->kvp.ops->name);
            goto out;
        }
        SCB_TRY(scb_kv_chunks_create(&b->chunks, m, (size_t)scb_method_opt_int(&b->pre, "chunk"), ctx));
    }
    struct scb_attn_hooks h = {hook_prefill, hook_decode, hook_after_prefill, b, hook_blend};
    scb_model_set_attn_hooks(m, &h);
    *out = b;
    b = NULL;
out:
    scb_method_bind_destroy(b);
    return rc;
}

size_t scb_method_bind_kv_heads(const struct scb_method_binding *b) { return b->Hstore; }

int scb_method_bind_kv_create(struct scb_method_binding *b, size_t cap, struct scb_kv_cache **out,
                              struct scb_ctx *ctx)
{
    return scb_model_kv_create_heads(b->m, b->Hstore, cap, out, ctx);
}

int scb_method_bind_session_begin(struct scb_method_binding *b, struct scb_kv_cache *kv, struct scb_ctx *ctx)
{
    size_t entries = 0;
    scb_kv_cache_bytes(kv, &entries, NULL, NULL);
    if (entries || kv->seen)
        return scb_err(ctx, SCB_E_INVAL, "method binding: a session must start on an empty KV cache (it holds "
                       "%zu entries; call scb_kv_cache_clear first)", entries);
    b->first_N = -1;
    b->dens_sum = 0.0;
    b->dens_layers = 0;
    b->quest_recall_sum = 0.0;
    b->quest_recall_n = 0;
    b->blend_n = 0;
    b->stored_tokens = 0;
    scb_retr_attn_recall_reset(&b->kvp);
#if SCB_HAVE_CUDA
    int rc = SCB_OK;
    if (b->dpre && b->dpre->session_begin) SCB_TRY(b->dpre->session_begin(b->spre, ctx));
    if (b->dkvp && b->dkvp->session_begin) SCB_TRY(b->dkvp->session_begin(b->skvp, ctx));
out:
    return rc;
#else
    return SCB_OK;
#endif
}

int scb_method_bind_turn_end(struct scb_method_binding *b, struct scb_kv_cache *kv, struct scb_ctx *ctx)
{
    (void)kv;
    int rc = scb_method_turn_end(&b->pre, ctx);
    if (!rc) rc = scb_method_turn_end(&b->kvp, ctx);
#if SCB_HAVE_CUDA
    if (!rc && b->dpre && b->dpre->turn_end) rc = b->dpre->turn_end(b->spre, ctx);
    if (!rc && b->dkvp && b->dkvp->turn_end) rc = b->dkvp->turn_end(b->skvp, ctx);
#endif
    return rc;
}

/* ---- costs -------------------------------------------------------------------------------- */
int scb_method_bind_costs(struct scb_method_binding *b, const struct scb_kv_cache *kv,
                          struct scb_turn_costs *out, struct scb_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    const struct scb_model_config *c = scb_model_get_config(b->m);
    if (kv->L != c->L || kv->Hin != c->Hkv || kv->D != c->D)
        return scb_err(ctx, SCB_E_INVAL, "method costs: KV cache of another model shape");
    const int64_t row = 2 * (int64_t)kv->D * BIND_ELT_BYTES;          /* K + V of one entry */
    int64_t stored = 0;
    for (size_t l = 0; l < kv->L; l++)
        for (size_t s = 0; s < kv->Hkv; s++) stored += (int64_t)scb_kv_cache_len(kv, l, s);
    out->kv_entries = (stored * (int64_t)kv->Hin + (int64_t)kv->Hkv / 2) / (int64_t)kv->Hkv;
    out->kv_bytes_logical = out->kv_entries * row;
    out->kv_bytes_physical = stored * row;
    if (b->kvp.ops == &scb_method_kivi) {
        int64_t phys = 0;
        for (size_t l = 0; l < kv->L; l++) {
            const struct scb_kivi_cache *q = scb_kivi_method_cache(&b->kvp, (int)l);
            int64_t n = (int64_t)scb_kv_cache_len(kv, l, 0), nq = q ? scb_kivi_cache_len(q) : 0;
            if (q) phys += scb_kivi_cache_bytes(q, BIND_ELT_BYTES, BIND_ELT_BYTES);
            phys += (n - nq) * (int64_t)kv->Hkv * row;   /* temp tokens: full precision */
        }
        out->kv_bytes_physical = phys;
        out->decode_bytes_per_step = (double)phys;
    } else if (b->kvp.ops->decode_attn) {
        /* Quest / RetrievalAttention keep every entry; their extra storage (page metadata, fp32
         * index keys) and per-step reads follow from the lengths: the policy's cost model */
        struct scb_cost cost;
        int64_t T = (int64_t)scb_kv_cache_len(kv, 0, 0);
        struct scb_cost_query cq = {&b->mi, b->first_N >= 0 && b->first_N <= T ? b->first_N : T, T, BIND_ELT_BYTES};
        scb_method_cost(&b->kvp, &cq, &cost);
        out->kv_bytes_physical = cost.kv_bytes;
        out->decode_bytes_per_step = (double)cost.read_bytes_step;
    } else {
        out->decode_bytes_per_step = (double)out->kv_bytes_physical;
    }
    out->prefill_density = b->dens_layers ? b->dens_sum / b->dens_layers : 1.0;
    if (b->blend_n) {
        /* blended first prefill: layers below the check layer are full; from it on, |sel| queries
         * over n keys bottom-right aligned (query i sees n - |sel| + i + 1 keys) */
        const double n = (double)b->blend_n, ns = (double)b->plan.n_sel;
        const double frac = (ns * (n - ns) + ns * (ns + 1) / 2) / (n * (n + 1) / 2);
        const int L = b->mi.L, check = b->plan.check_layer;
        out->prefill_density = ((double)check + (double)(L - check) * frac) / (double)L;
        int64_t reused = 0;
        for (size_t t = 0; t < b->blend_n; t++) reused += b->valid[t];
        for (size_t i = 0; i < b->plan.n_sel; i++) reused -= b->valid[b->plan.sel[i]];
        out->reused_tokens = reused;
        out->recomputed_tokens = (int64_t)b->blend_n - reused;
    }
    out->stored_tokens = b->stored_tokens;
    out->recall = -1.0;
    if (b->kvp.ops == &scb_method_retr_attn) scb_retr_attn_recall(&b->kvp, &out->recall);
    if (b->kvp.ops == &scb_method_quest && b->quest_recall_n)
        out->recall = b->quest_recall_sum / (double)b->quest_recall_n;
#if SCB_HAVE_CUDA
    if (b->dkvp && b->dkvp->costs) return b->dkvp->costs(b->skvp, kv, out, ctx);
#endif
    return SCB_OK;
}

void scb_method_bind_costs_format(const struct scb_turn_costs *c, char *buf, size_t n)
{
    snprintf(buf, n, "entries=%lld logical_bytes=%lld physical_bytes=%lld read_bytes_step=%.0f "
             "prefill_density=%.6f recall=%.4f reused=%lld recomputed=%lld stored=%lld",
             (long long)c->kv_entries, (long long)c->kv_bytes_logical,
             (long long)c->kv_bytes_physical, c->decode_bytes_per_step, c->prefill_density, c->recall,
             (long long)c->reused_tokens, (long long)c->recomputed_tokens, (long long)c->stored_tokens);
}
