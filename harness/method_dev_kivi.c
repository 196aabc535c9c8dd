/* method_dev_kivi.c — KIVI on the CUDA engine (harness/method_dev.h): one quantized store per
 * layer on the device (kernels/kivi_cuda.h) with the CPU reference's schedule (methods/kivi.c):
 * after the first prefill of N tokens the keys quantize the first N - N % R tokens and the values
 * the first N - R (if N > R); every later global token joins the residuals one at a time, and a
 * residual longer than R quantizes its first R tokens and keeps the last one. Full-precision
 * tokens (residuals, the turn's temp tokens) stay where the engine keeps them, in the layer's
 * bf16 cache storage. A decode chunk of T rows runs as T one-token steps (SCBench's
 * dense_prefix=True). Costs: the CPU formulas (scb_kivi_cache_bytes) from the device counters. */
#include "harness/method_dev.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/kivi_cuda.h"
#include "kernels/kv_cache.h"
#include "kernels/util.h"
#include "methods/kivi.h"

enum { KIVI_DEV_ELT_BYTES = 2 };   /* bf16: the byte counts of the CPU binding */

struct kivi_dev_layer {
    struct scb_kivi_cuda_store s;   /* device arrays; s.cap 0 = not allocated */
    int active;                     /* quantized store built by this session's first prefill */
    int Tk_q, Tv_q, nk_r, nv_r;     /* as struct scb_kivi_cache */
};

struct kivi_dev {
    struct scb_cuda_ctx *cc;
    int L, Hq, Hkv, D, bits, group, R;
    int requant;                    /* the option requant: quantize appended tokens R at a time */
    struct kivi_dev_layer *layers;  /* (L) */
    float *work;                    /* device: scb_kivi_attn_cuda_work_floats(Hq, D) floats */
};

static void layer_free(struct kivi_dev *st, struct kivi_dev_layer *l)
{
    scb_cuda_free(st->cc, l->s.k_codes); scb_cuda_free(st->cc, l->s.k_scale); scb_cuda_free(st->cc, l->s.k_min);
    scb_cuda_free(st->cc, l->s.v_codes); scb_cuda_free(st->cc, l->s.v_scale); scb_cuda_free(st->cc, l->s.v_min);
    memset(&l->s, 0, sizeof l->s);
}

static void kivi_dev_destroy(void *state)
{
    struct kivi_dev *st = state;
    if (!st) return;
    for (int l = 0; l < st->L && st->layers; l++) layer_free(st, &st->layers[l]);
    scb_free(st->layers);
    scb_cuda_free(st->cc, st->work);
    scb_free(st);
}

static int kivi_dev_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                           struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    *state = NULL;
    struct kivi_dev *st = scb_calloc(1, sizeof *st);
    if (!st) return scb_err(ctx, SCB_E_NOMEM, "kivi (cuda): out of memory");
    st->cc = cc;
    st->L = mi->L; st->Hq = mi->Hq; st->Hkv = mi->Hkv; st->D = mi->D;
    st->bits = scb_method_opt_int(m, "bits");
    st->group = scb_method_opt_int(m, "group");
    st->R = scb_method_opt_int(m, "residual");
    char rq[8] = "";
    st->requant = scb_method_get(m, "requant", rq, sizeof rq) == SCB_OK && !strcmp(rq, "true");
    if (st->D > 256 || st->Hq % st->Hkv || st->Hq / st->Hkv > 16) {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "kivi (cuda): head dim %d (at most 256) or %d query heads per KV head "
                     "(at most 16) not supported by the device kernels", st->D, st->Hkv ? st->Hq / st->Hkv : 0);
        goto out;
    }
    st->layers = scb_calloc((size_t)st->L, sizeof *st->layers);
    if (!st->layers) { rc = scb_err(ctx, SCB_E_NOMEM, "kivi (cuda): out of memory"); goto out; }
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&st->work,
                            sizeof(float) * scb_kivi_attn_cuda_work_floats(st->Hq, st->D), ctx));
    *state = st;
    st = NULL;
out:
    kivi_dev_destroy(st);
    return rc;
}

static int kivi_dev_session_begin(void *state, struct scb_ctx *ctx)
{
    (void)ctx;
    struct kivi_dev *st = state;
    for (int l = 0; l < st->L; l++) st->layers[l].active = 0;
    return SCB_OK;
}

/* The layer's store for a cache of `cap` tokens (allocated once per capacity). */
static int layer_alloc(struct kivi_dev *st, struct kivi_dev_layer *l, size_t cap_tokens, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    int cap = (int)((cap_tokens + (size_t)st->group - 1) / (size_t)st->group * (size_t)st->group);
    if (l->s.cap >= cap) return SCB_OK;
    layer_free(st, l);
    size_t codes, meta;
    scb_kivi_cuda_store_bytes(st->Hkv, st->D, st->bits, st->group, cap, &codes, &meta);
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.k_codes, codes, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.v_codes, codes, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.k_scale, meta, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.k_min, meta, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.v_scale, meta, ctx));
    SCB_TRY(scb_cuda_malloc(st->cc, (void **)&l->s.v_min, meta, ctx));
    l->s.Hkv = st->Hkv; l->s.D = st->D; l->s.bits = st->bits; l->s.group = st->group; l->s.cap = cap;
out:
    if (rc) layer_free(st, l);
    return rc;
}

static int check_layer(const struct kivi_dev *st, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    if (a->layer >= (size_t)st->L || a->Hs != (size_t)st->Hkv || a->D != (size_t)st->D || a->H != (size_t)st->Hq)
        return scb_err(ctx, SCB_E_INVAL, "kivi (cuda): layer %zu with %zu stored heads, %zu query heads, D=%zu "
                       "does not match the model (%d layers, Hkv=%d, H=%d, D=%d)", a->layer, a->Hs, a->H, a->D,
                       st->L, st->Hkv, st->Hq, st->D);
    return SCB_OK;
}

static int kivi_dev_after_prefill(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct kivi_dev *st = state;
    int rc = SCB_OK;
    SCB_TRY(check_layer(st, a, ctx));
    struct kivi_dev_layer *l = &st->layers[a->layer];
    l->active = 0;
    SCB_TRY(layer_alloc(st, l, a->cap, ctx));
    const int N = (int)a->Tk, R = st->R;
    const int kq = N - N % R, vq = N > R ? N - R : 0;
    SCB_TRY(scb_kivi_cuda_quant_keys(st->cc, &l->s, a->k, a->cap, 0, kq, ctx));
    SCB_TRY(scb_kivi_cuda_quant_values(st->cc, &l->s, a->v, a->cap, 0, vq, ctx));
    l->Tk_q = kq; l->Tv_q = vq;
    l->nk_r = N - kq; l->nv_r = N - vq;
    l->active = 1;
out:
    return rc;
}

/* Bring the layer's store up to row i of a's chunk (causal keys nc): every global token up to
 * min(nc, the global segment) joins the residuals one at a time, a residual past R flushing its
 * first R tokens with requant=true. */
static int layer_advance(struct kivi_dev *st, struct kivi_dev_layer *l, const struct scb_dev_attn *a, int nc,
                         size_t row, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const int Tg = (int)a->kv->n_global[a->layer * a->kv->Hkv], R = st->R;
    const int g_end = nc < Tg ? nc : Tg;
    while (l->Tk_q + l->nk_r < g_end) {                     /* append global tokens one at a time */
        l->nk_r++; l->nv_r++;
        if (st->requant && l->nk_r > R) {
            SCB_TRY(scb_kivi_cuda_quant_keys(st->cc, &l->s, a->k, a->cap, l->Tk_q, R, ctx));
            l->Tk_q += R; l->nk_r = 1;
        }
        if (st->requant && l->nv_r > R) {
            SCB_TRY(scb_kivi_cuda_quant_values(st->cc, &l->s, a->v, a->cap, l->Tv_q, R, ctx));
            l->Tv_q += R; l->nv_r = 1;
        }
    }
    if (l->Tk_q + l->nk_r > g_end)
        rc = scb_err(ctx, SCB_E_INVAL, "kivi (cuda): the quantized cache holds %d tokens but row %zu sees only "
                     "%d global keys (was the global segment shortened?)", l->Tk_q + l->nk_r, row, g_end);
out:
    return rc;
}

static int kivi_dev_decode(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct kivi_dev *st = state;
    int rc = SCB_OK;
    SCB_TRY(check_layer(st, a, ctx));
    struct kivi_dev_layer *l = &st->layers[a->layer];
    if (!l->active) return scb_model_dev_dense(a, ctx);   /* no first prefill yet: nothing quantized */
    for (size_t i = 0; i < a->T; i++) {
        const int nc = (int)(i + a->Tk - a->T + 1);         /* causal keys of row i */
        SCB_TRY(layer_advance(st, l, a, nc, i, ctx));
        struct scb_kivi_attn_cuda_args aa = {
            .q = a->q + i * a->H * a->D, .k = a->k, .v = a->v, .kcap = a->cap,
            .Tk_q = l->Tk_q, .Tv_q = l->Tv_q, .n = nc, .Hq = (int)a->H, .scale = a->scale,
            .out = a->out + i * a->H * a->D, .lse = NULL, .work = st->work, .n_splits = 0,
        };
        SCB_TRY(scb_kivi_attn_cuda(st->cc, &l->s, &aa, ctx));
    }
out:
    return rc;
}

/* The one-token step inside the engine's replayed graph: a layer with a store whose attention
 * runs kernel v4 (the one reading its key count from the device); with requant=true a flush
 * must keep Tk_q a multiple of 32, so R must be one. */
static int kivi_dev_step_graphable(void *state, const struct scb_kv_cache *kv, size_t layer)
{
    struct kivi_dev *st = state;
    if (layer >= (size_t)st->L || (st->requant && st->R % 32)) return 0;
    const struct kivi_dev_layer *l = &st->layers[layer];
    const int n = (int)scb_kv_cache_len(kv, layer, 0) + 1;
    return l->active && scb_kivi_attn_cuda_dev_fits(st->cc, &l->s, st->Hq, l->Tk_q, n, NULL);
}

/* Host side of a graph step: the bookkeeping (and any flush, enqueued before the graph) and the
 * key of what the recorded launch bakes in (store, Tk_q, Tv_q, partitions). */
static int kivi_dev_step_prep(void *state, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx)
{
    struct kivi_dev *st = state;
    int rc = SCB_OK;
    SCB_TRY(check_layer(st, a, ctx));
    struct kivi_dev_layer *l = &st->layers[a->layer];
    if (!l->active || a->T != 1) {
        rc = scb_err(ctx, SCB_E_INVAL, "kivi (cuda): a graph step on layer %zu without a store or with %zu rows",
                     a->layer, a->T);
        goto out;
    }
    SCB_TRY(layer_advance(st, l, a, (int)a->Tk, 0, ctx));
    int splits = 0;
    if (!scb_kivi_attn_cuda_dev_fits(st->cc, &l->s, st->Hq, l->Tk_q, (int)a->Tk, &splits)) {
        rc = scb_err(ctx, SCB_E_INVAL, "kivi (cuda): layer %zu's step no longer fits kernel v4 (Tk_q=%d)", a->layer,
                     l->Tk_q);
        goto out;
    }
    const uint64_t v[] = {(uint64_t)(uintptr_t)l->s.k_codes, (uint64_t)l->s.cap, (uint64_t)l->Tk_q,
                          (uint64_t)l->Tv_q, (uint64_t)splits, (uint64_t)(uintptr_t)a->k, (uint64_t)a->cap};
    *key = scb_hash64(v, sizeof v, SCB_HASH64_INIT);
out:
    return rc;
}

/* The layer's attention inside the graph: the launch of kivi_dev_decode's one row, its key count
 * read from the device (the partitions those of a->Tk, as step_prep keyed them). */
static int kivi_dev_step_dev(void *state, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx)
{
    struct kivi_dev *st = state;
    const struct kivi_dev_layer *l = &st->layers[a->layer];
    const struct scb_kivi_attn_cuda_args aa = {
        .q = a->q, .k = a->k, .v = a->v, .kcap = a->cap, .Tk_q = l->Tk_q, .Tv_q = l->Tv_q, .n = (int)a->Tk,
        .Hq = (int)a->H, .scale = a->scale, .out = a->out, .lse = NULL, .work = st->work, .n_splits = 0,
        .n_dev = n_dev,
    };
    return scb_kivi_attn_cuda(st->cc, &l->s, &aa, ctx);
}

/* Physical bytes as the CPU binding counts them (method_bind.c): the quantized store with
 * 2-byte scales and minima, residual tokens at 2 bytes, temp tokens in full precision. */
static int kivi_dev_costs(void *state, const struct scb_kv_cache *kv, struct scb_turn_costs *c, struct scb_ctx *ctx)
{
    (void)ctx;
    struct kivi_dev *st = state;
    const int64_t row = 2 * (int64_t)kv->D * KIVI_DEV_ELT_BYTES;
    int64_t phys = 0;
    for (size_t l = 0; l < kv->L && l < (size_t)st->L; l++) {
        const struct kivi_dev_layer *dl = &st->layers[l];
        int64_t n = (int64_t)scb_kv_cache_len(kv, l, 0), nq = 0;
        if (dl->active) {
            struct scb_kivi_cache q = {.Hkv = st->Hkv, .D = st->D, .bits = st->bits, .group = st->group, .R = st->R,
                                       .requant = st->requant,
                                       .Tk_q = dl->Tk_q, .Tv_q = dl->Tv_q, .nk_r = dl->nk_r, .nv_r = dl->nv_r};
            phys += scb_kivi_cache_bytes(&q, KIVI_DEV_ELT_BYTES, KIVI_DEV_ELT_BYTES);
            nq = scb_kivi_cache_len(&q);
        }
        phys += (n - nq) * (int64_t)kv->Hkv * row;
    }
    c->kv_bytes_physical = phys;
    c->decode_bytes_per_step = (double)phys;
    return SCB_OK;
}

const struct scb_dev_method_ops scb_dev_kivi = {
    .name = "kivi",
    .create = kivi_dev_create,
    .destroy = kivi_dev_destroy,
    .session_begin = kivi_dev_session_begin,
    .after_prefill = kivi_dev_after_prefill,
    .decode = kivi_dev_decode,
    .costs = kivi_dev_costs,
    .step_graphable = kivi_dev_step_graphable,
    .step_prep = kivi_dev_step_prep,
    .step_dev = kivi_dev_step_dev,
};
