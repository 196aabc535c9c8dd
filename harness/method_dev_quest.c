/* method_dev_quest.c — Quest on the CUDA engine (method_dev.h): every decode step and follow-up
 * chunk, per layer and query head, the pages of P cache entries with the largest query-aware
 * upper bound are selected and attended (methods/quest.h semantics: sign weights summed over the
 * chunk's rows, bounds over all the chunk's Tk entries, kpages = min(max(3, min(Tk, budget)/P),
 * ceil(Tk/P)), ties to the smaller page, causal within the chosen pages). The page min/max
 * metadata (bf16, exact) lives on the device per layer and is brought up to date at each call
 * from the first page that changed since the last one (the partial last page is recomputed as it
 * fills; a first prefill or a shrunk cache resets it). When kpages covers every page the engine's dense attention runs (as the CPU binding
 * does when Quest's density is 1). Recall is not computed on the device (costs report -1).
 * A one-row step (decode) runs scb_cuda_quest_step_select2 (metadata of the changed pages and
 * the bounds in one launch, a radix top-k per query head in a second) and the page attention;
 * SCB_QUEST_DECODE=unfused runs the separate launchers instead (same pages up to near-ties;
 * for timing). */
#include "harness/method_dev.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "kernels/kvsel_cuda.h"
#include "kernels/util.h"
#include "methods/quest.h"

enum { QUEST_ROWS = 64 };   /* query rows selected per batch (bounds the ub scratch) */

struct questdev {
    struct scb_cuda_ctx *cc;        /* borrowed */
    int P, budget;
    const struct scb_kv_cache *kv;  /* the cache the metadata describes */
    size_t L, Hs, D, cap, H;
    int mp;                         /* pages per head allocated: ceil(cap / P) */
    uint16_t *kmin, *kmax;          /* device (L, Hs, mp, D) bf16 */
    size_t *valid;                  /* host (L): entries whose pages are up to date */
    float *w;                       /* device (H, D) sign weights */
    float *ub;                      /* device (QUEST_ROWS, H, mp) */
    int32_t *sel;                   /* device (QUEST_ROWS, H, mp) */
    float *work;                    /* device: scb_cuda_quest_attn_work_floats(QUEST_ROWS, H, D, mp, P) */
    void *swork;                    /* device: scb_cuda_quest_step_work_bytes(H, D, mp) */
    int step2;                      /* one-row steps through scb_cuda_quest_step_select2 (default) */
};

static void release(struct questdev *s)
{
    scb_cuda_free(s->cc, s->kmin);
    scb_cuda_free(s->cc, s->kmax);
    scb_cuda_free(s->cc, s->w);
    scb_cuda_free(s->cc, s->ub);
    scb_cuda_free(s->cc, s->sel);
    scb_cuda_free(s->cc, s->work);
    scb_cuda_free(s->cc, s->swork);
    scb_free(s->valid);
    s->kmin = s->kmax = NULL;
    s->w = s->ub = s->work = NULL;
    s->sel = NULL;
    s->swork = NULL;
    s->valid = NULL;
    s->kv = NULL;
}

static int quest_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                        struct scb_ctx *ctx)
{
    (void)mi;
    struct questdev *s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "device quest: out of memory");
    s->cc = cc;
    s->P = scb_method_opt_int(m, "page");
    s->budget = scb_method_opt_int(m, "budget");
    const char *path = getenv("SCB_QUEST_DECODE");
    if (path && strcmp(path, "v2") && strcmp(path, "unfused")) {
        scb_free(s);
        return scb_err(ctx, SCB_E_INVAL, "device quest: SCB_QUEST_DECODE=%s (expected v2 or unfused)", path);
    }
    s->step2 = !path || !strcmp(path, "v2");
    *state = s;
    return SCB_OK;
}

static void quest_destroy(void *state)
{
    struct questdev *s = state;
    if (!s) return;
    release(s);
    scb_free(s);
}

static int quest_session_begin(void *state, struct scb_ctx *ctx)
{
    (void)ctx;
    struct questdev *s = state;
    if (s->valid)
        for (size_t l = 0; l < s->L; l++) s->valid[l] = 0;
    return SCB_OK;
}

/* A first prefill of this layer (the cache was empty): its pages are all new. */
static int quest_after_prefill(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    (void)ctx;
    struct questdev *s = state;
    if (s->valid && s->kv == a->kv && a->layer < s->L) s->valid[a->layer] = 0;
    return SCB_OK;
}

/* (Re)allocate the metadata and scratch for the cache and shape of a (once per cache). */
static int ensure(struct questdev *s, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    const struct scb_kv_cache *kv = a->kv;
    if (s->kv == kv && s->L == kv->L && s->Hs == a->Hs && s->D == a->D && s->cap == a->cap && s->H == a->H)
        return SCB_OK;
    release(s);
    int rc = SCB_OK;
    s->L = kv->L;
    s->Hs = a->Hs;
    s->D = a->D;
    s->cap = a->cap;
    s->H = a->H;
    s->mp = (int)((a->cap + (size_t)s->P - 1) / (size_t)s->P);
    const size_t meta = s->L * s->Hs * (size_t)s->mp * s->D;
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->kmin, meta * sizeof(uint16_t), ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->kmax, meta * sizeof(uint16_t), ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->w, s->H * s->D * sizeof(float), ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->ub, (size_t)QUEST_ROWS * s->H * (size_t)s->mp * sizeof(float), ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->sel, (size_t)QUEST_ROWS * s->H * (size_t)s->mp * sizeof(int32_t),
                            ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, (void **)&s->work,
                            scb_cuda_quest_attn_work_floats(QUEST_ROWS, (int)s->H, (int)s->D, s->mp, s->P) * sizeof(float),
                            ctx));
    SCB_TRY(scb_cuda_malloc(s->cc, &s->swork, scb_cuda_quest_step_work_bytes((int)s->H, (int)s->D, s->mp), ctx));
    s->valid = scb_calloc(s->L, sizeof *s->valid);
    if (!s->valid) { rc = scb_err(ctx, SCB_E_NOMEM, "device quest: out of memory"); goto out; }
    s->kv = kv;
out:
    if (rc) release(s);
    return rc;
}

static int quest_decode(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct questdev *s = state;
    int rc = SCB_OK;
    const size_t l = a->layer;
    for (size_t h = 1; h < a->Hs; h++)
        if (scb_kv_cache_len(a->kv, l, h) != a->Tk)
            return scb_err(ctx, SCB_E_UNSUPPORTED, "quest: layer %zu stores %zu entries in head 0 but %zu in "
                           "head %zu; Quest needs equal heads", l, a->Tk, scb_kv_cache_len(a->kv, l, h), h);
    SCB_TRY(ensure(s, a, ctx));
    const int Tk = (int)a->Tk, T = (int)a->T, P = s->P, H = (int)a->H, Hs = (int)a->Hs, D = (int)a->D;
    /* entries before this chunk were there at the last call unless the cache shrank meanwhile */
    if (s->valid[l] > a->Tk - a->T) s->valid[l] = a->Tk - a->T;
    const int np = (Tk + P - 1) / P, kp = scb_quest_kpages(Tk, P, s->budget);
    if (kp >= np) return scb_model_dev_dense(a, ctx);            /* every page: dense */
    const size_t moff = l * s->Hs * (size_t)s->mp * s->D;
    if (T == 1 && s->step2) {                                   /* a decode step: 2 + 2 launches */
        const int p0 = (int)(s->valid[l] / (size_t)P);
        SCB_TRY(scb_cuda_quest_step_select2(s->cc, a->q, H, Hs, D, a->k, a->cap, s->kmin + moff, s->kmax + moff,
                                            s->mp, Tk, P, p0, kp, 0, s->ub, s->sel, s->swork, ctx));
        s->valid[l] = a->Tk;
        return scb_cuda_quest_attn(s->cc, a->q, a->k, a->v, a->cap, a->out, 0, 1, 1, Tk, H, Hs, D, P, kp, s->sel,
                                   a->scale, s->work, ctx);
    }
    SCB_TRY(scb_cuda_quest_meta(s->cc, a->k, a->cap, Hs, D, P, Tk, (int)(s->valid[l] / (size_t)P),
                                s->kmin + moff, s->kmax + moff, s->mp, ctx));
    s->valid[l] = a->Tk;
    SCB_TRY(scb_cuda_quest_signs(s->cc, a->q, T, H, D, s->w, ctx));
    for (int r0 = 0; r0 < T; r0 += QUEST_ROWS) {
        const int nr = T - r0 < QUEST_ROWS ? T - r0 : QUEST_ROWS;
        SCB_TRY(scb_cuda_quest_select(s->cc, a->q, r0, nr, H, Hs, D, s->w, s->kmin + moff, s->kmax + moff, s->mp,
                                      Tk, P, kp, s->ub, s->sel, ctx));
        SCB_TRY(scb_cuda_quest_attn(s->cc, a->q, a->k, a->v, a->cap, a->out, r0, nr, T, Tk, H, Hs, D, P, kp,
                                    s->sel, a->scale, s->work, ctx));
    }
out:
    return rc;
}

/* The one-token step inside the engine's replayed graph (scb_cuda_quest_decode_dev: the key count
 * from the device, the last page rebuilt): the default fused path, the metadata current up to the
 * step's previous entry, equal heads, fewer pages selected than there are. */
static int quest_step_graphable(void *state, const struct scb_kv_cache *kv, size_t layer)
{
    const struct questdev *s = state;
    if (!s->step2 || s->kv != kv || !s->valid || layer >= s->L || s->D % 8 ||
        sizeof(float) * (s->H / s->Hs) * s->D > 48 * 1024)
        return 0;
    const size_t len = scb_kv_cache_len(kv, layer, 0);
    for (size_t h = 1; h < s->Hs; h++)
        if (scb_kv_cache_len(kv, layer, h) != len) return 0;
    const int Tk = (int)len + 1, np = (Tk + s->P - 1) / s->P;
    return s->valid[layer] == len && len + 1 <= s->cap && scb_quest_kpages(Tk, s->P, s->budget) < np;
}

/* Host side of a graph step: the metadata counts the step's entry from now on (the graph rebuilds
 * its page), and the key of what the recorded launches bake in. */
static int quest_step_prep(void *state, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx)
{
    struct questdev *s = state;
    int rc = SCB_OK;
    SCB_TRY(ensure(s, a, ctx));
    const size_t moff = a->layer * s->Hs * (size_t)s->mp * s->D;
    const int Tk = (int)a->Tk, kp = scb_quest_kpages(Tk, s->P, s->budget);
    if (a->T != 1 || s->valid[a->layer] + 1 != a->Tk || kp >= (Tk + s->P - 1) / s->P ||
        !scb_cuda_quest_decode_dev_fits(a->q, (int)a->H, (int)a->Hs, (int)a->D, a->k, s->kmin + moff, s->kmax + moff)) {
        rc = scb_err(ctx, SCB_E_INVAL, "device quest: layer %zu's step (%zu rows, %zu entries, %zu current) does not "
                     "fit a graph step", a->layer, a->T, a->Tk, s->valid[a->layer]);
        goto out;
    }
    s->valid[a->layer] = a->Tk;
    const uint64_t v[] = {(uint64_t)(uintptr_t)s->kmin, (uint64_t)(uintptr_t)s->ub, (uint64_t)(uintptr_t)s->work,
                          (uint64_t)s->mp, (uint64_t)kp, (uint64_t)(uintptr_t)a->k, (uint64_t)a->cap};
    *key = scb_hash64(v, sizeof v, SCB_HASH64_INIT);
out:
    return rc;
}

/* The layer's selection and attention inside the graph, the key count read from the device. */
static int quest_step_dev(void *state, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx)
{
    struct questdev *s = state;
    const size_t moff = a->layer * s->Hs * (size_t)s->mp * s->D;
    const int kp = scb_quest_kpages((int)a->Tk, s->P, s->budget);
    return scb_cuda_quest_decode_dev(s->cc, a->q, (int)a->H, (int)a->Hs, (int)a->D, a->k, a->v, a->cap, s->kmin + moff,
                                     s->kmax + moff, s->mp, n_dev, s->P, kp, s->ub, s->sel, a->scale, s->work, a->out,
                                     ctx);
}

const struct scb_dev_method_ops scb_dev_quest = {
    .name = "quest", .create = quest_create, .destroy = quest_destroy, .session_begin = quest_session_begin,
    .after_prefill = quest_after_prefill, .decode = quest_decode, .per_query_heads = 0,
    .step_graphable = quest_step_graphable, .step_prep = quest_step_prep, .step_dev = quest_step_dev,
};
