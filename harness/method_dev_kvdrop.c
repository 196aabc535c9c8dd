/* method_dev_kvdrop.c — StreamingLLM, SnapKV and PyramidKV on the CUDA engine (method_dev.h):
 * after the first prefill's attention of each layer the policy picks the entries every stored
 * head keeps — StreamingLLM the first n_init and last n_local, SnapKV/PyramidKV the window
 * queries' pooled attention top-k plus the window, scored and selected on the device
 * (kernels/kvsel_cuda.h) — then scb_cuda_kv_keep compacts the device K/V and scb_kv_cache_keep
 * the host bookkeeping. Decode afterwards is the engine's dense attention over what is kept.
 * Selections, budgets (PyramidKV's per-layer schedule) and identity cases are those of
 * methods/streamingllm.c and methods/snapkv.c; the scores are computed in fp32 from the bf16
 * cache, so near-tied entries may be chosen differently from the fp32/double CPU reference. */
#include "harness/method_dev.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "kernels/kvsel_cuda.h"
#include "methods/snapkv.h"

enum kvdrop_kind { KVDROP_SLLM = 0, KVDROP_SNAP = 1, KVDROP_PYR = 2 };

struct kvdrop {
    enum kvdrop_kind kind;
    struct scb_cuda_ctx *cc;                  /* borrowed */
    int n_init, n_local;                      /* StreamingLLM */
    int budget, window, kernel, pool, beta;   /* SnapKV / PyramidKV */
    int gqa;
    float *work;                              /* device: scb_cuda_snapkv_work_floats */
    size_t work_n;
    float *pooled;                            /* device (Hout, N - W) */
    size_t pooled_n;
    int32_t *didx;                            /* device (Hs, n) keep lists */
    size_t didx_n;
    int32_t *hidx;                            /* host (max(Hs, Hout), n) */
    size_t hidx_n;
    size_t *sidx;                             /* host (n) one list for scb_kv_cache_keep */
    size_t sidx_n;
};

static int grow_dev(struct kvdrop *s, void **p, size_t *have, size_t need, size_t elt, struct scb_ctx *ctx)
{
    if (need <= *have) return SCB_OK;
    scb_cuda_free(s->cc, *p);
    *p = NULL;
    *have = 0;
    int rc = scb_cuda_malloc(s->cc, p, need * elt, ctx);
    if (rc == SCB_OK) *have = need;
    return rc;
}

static int grow_host(void **p, size_t *have, size_t need, size_t elt, struct scb_ctx *ctx)
{
    if (need <= *have) return SCB_OK;
    scb_free(*p);
    *p = scb_malloc(need * elt);
    *have = *p ? need : 0;
    return *p ? SCB_OK : scb_err(ctx, SCB_E_NOMEM, "device KV policy: out of host memory");
}

static int kvdrop_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                         struct scb_ctx *ctx)
{
    (void)mi;
    struct kvdrop *s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "device %s: out of memory", m->ops->name);
    s->cc = cc;
    s->gqa = scb_method_opt_int(m, "gqa");
    if (!strcmp(m->ops->name, "streamingllm")) {
        s->kind = KVDROP_SLLM;
        s->n_init = scb_method_opt_int(m, "n_init");
        s->n_local = scb_method_opt_int(m, "n_local");
    } else {
        s->kind = strcmp(m->ops->name, "pyramidkv") ? KVDROP_SNAP : KVDROP_PYR;
        s->budget = scb_method_opt_int(m, "budget");
        s->window = scb_method_opt_int(m, "window");
        s->kernel = scb_method_opt_int(m, "kernel");
        s->pool = strcmp(scb_method_opt_str(m, "pooling"), "maxpool") ? SCB_POOL_AVG : SCB_POOL_MAX;
        s->beta = s->kind == KVDROP_PYR ? scb_method_opt_int(m, "beta") : 0;
    }
    *state = s;
    return SCB_OK;
}

static void kvdrop_destroy(void *state)
{
    struct kvdrop *s = state;
    if (!s) return;
    scb_cuda_free(s->cc, s->work);
    scb_cuda_free(s->cc, s->pooled);
    scb_cuda_free(s->cc, s->didx);
    scb_free(s->hidx);
    scb_free(s->sidx);
    scb_free(s);
}

/* Compact stored heads s < Hs of the layer to the n entries of host lists hidx (Hs, n). */
static int compact(struct kvdrop *s, const struct scb_dev_attn *a, int n, int uploaded, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const size_t Hs = a->Hs;
    if (!uploaded) {
        SCB_TRY(grow_dev(s, (void **)&s->didx, &s->didx_n, Hs * (size_t)n, sizeof(int32_t), ctx));
        SCB_TRY(scb_cuda_upload(s->cc, s->didx, s->hidx, Hs * (size_t)n * sizeof(int32_t), ctx));
    }
    SCB_TRY(scb_cuda_kv_keep(s->cc, a->k, a->v, (int)Hs, (int)a->D, a->cap, s->didx, n, ctx));
    SCB_TRY(grow_host((void **)&s->sidx, &s->sidx_n, (size_t)n, sizeof(size_t), ctx));
    for (size_t h = 0; h < Hs; h++) {
        for (int i = 0; i < n; i++) s->sidx[i] = (size_t)s->hidx[h * (size_t)n + (size_t)i];
        SCB_TRY(scb_kv_cache_keep(a->kv, a->layer, h, s->sidx, (size_t)n, ctx));
    }
out:
    return rc;
}

static int kvdrop_after_prefill(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct kvdrop *s = state;
    int rc = SCB_OK;
    const struct scb_kv_cache *kv = a->kv;
    const size_t N = a->T, l = a->layer;
    const char *name = s->kind == KVDROP_SLLM ? "streamingllm" : s->kind == KVDROP_SNAP ? "snapkv" : "pyramidkv";
    for (size_t h = 0; h < a->Hs; h++)
        if (scb_kv_cache_len(kv, l, h) != N || kv->n_temp[l] || a->Tk != N)
            return scb_err(ctx, SCB_E_INVAL, "%s: layer %zu head %zu holds %zu entries after a first prefill of "
                           "%zu tokens", name, l, h, scb_kv_cache_len(kv, l, h), N);
    if (s->kind == KVDROP_SLLM) {
        if (N < (size_t)s->n_init + (size_t)s->n_local) return SCB_OK;      /* keeps everything */
        const int n = s->n_init + s->n_local;
        SCB_TRY(grow_host((void **)&s->hidx, &s->hidx_n, a->Hs * (size_t)n, sizeof(int32_t), ctx));
        for (size_t h = 0; h < a->Hs; h++) {
            int32_t *li = s->hidx + h * (size_t)n;
            int c = 0;
            for (int j = 0; j < s->n_init; j++) li[c++] = j;
            for (int j = (int)N - s->n_local; j < (int)N; j++) li[c++] = j;
        }
        return compact(s, a, n, 0, ctx);
    }
    if (s->window >= s->budget || s->kernel % 2 == 0)
        return scb_err(ctx, SCB_E_INVAL, "%s: window (%d) must be smaller than budget (%d), kernel (%d) odd", name,
                       s->window, s->budget, s->kernel);
    const int W = s->window, P = (int)N - W, L = (int)kv->L;
    const int ns = s->kind == KVDROP_PYR ? scb_pyramidkv_n_select((int)N, s->budget, W, s->beta, L, (int)l)
                                         : scb_snapkv_n_select((int)N, s->budget, W);
    if (ns < 0 || ns >= P) return SCB_OK;                                   /* identity */
    const int H = (int)a->H, Hs = (int)a->Hs, Hin = (int)kv->Hin;
    const int Hout = s->gqa ? Hin : H, n = ns + W;
    if (Hs % Hout)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s selects per %s head (%d lists) but the KV cache stores %d heads: "
                       "create it with scb_method_bind_kv_create, or use the option gqa=%s", name,
                       s->gqa ? "KV" : "query", Hout, Hs, s->gqa ? "false" : "true");
    /* scores over the stored heads; a per-KV-head selection reads stored head g * (Hs / Hin), a
     * view with Hin heads whose head stride is (Hs / Hin) * cap entries */
    const int Hsc = s->gqa ? Hin : Hs;                     /* heads of the scoring cache view */
    const size_t cap_sc = s->gqa ? a->cap * (size_t)(Hs / Hin) : a->cap;
    SCB_TRY(grow_dev(s, (void **)&s->work, &s->work_n, scb_cuda_snapkv_work_floats(H, W, (int)N), sizeof(float),
                     ctx));
    SCB_TRY(grow_dev(s, (void **)&s->pooled, &s->pooled_n, (size_t)Hout * P, sizeof(float), ctx));
    SCB_TRY(grow_dev(s, (void **)&s->didx, &s->didx_n, (size_t)(Hs > Hout ? Hs : Hout) * n, sizeof(int32_t), ctx));
    SCB_TRY(grow_host((void **)&s->hidx, &s->hidx_n, (size_t)(Hs > Hout ? Hs : Hout) * n, sizeof(int32_t), ctx));
    SCB_TRY(scb_cuda_snapkv_scores(s->cc, a->q, (int)a->T, a->k, cap_sc, (int)N, H, Hsc, (int)a->D, W, a->scale,
                                   s->kernel, s->pool, s->gqa, s->work, s->pooled, ctx));
    SCB_TRY(scb_cuda_snapkv_select(s->cc, s->pooled, Hout, P, ns, W, s->didx, ctx));
    SCB_TRY(scb_cuda_download(s->cc, s->hidx, s->didx, (size_t)Hout * n * sizeof(int32_t), ctx));
    if (Hs != Hout) {
        /* stored head h keeps list h / (Hs / Hout): expand from the back, in place */
        for (int h = Hs - 1; h >= 0; h--)
            memmove(s->hidx + (size_t)h * n, s->hidx + (size_t)(h / (Hs / Hout)) * n, (size_t)n * sizeof(int32_t));
    }
    rc = compact(s, a, n, Hs == Hout, ctx);
out:
    return rc;
}

#define KVDROP_OPS(nm) { \
    .name = nm, .create = kvdrop_create, .destroy = kvdrop_destroy, .after_prefill = kvdrop_after_prefill, \
    .per_query_heads = 1 }

const struct scb_dev_method_ops scb_dev_streamingllm = KVDROP_OPS("streamingllm");
const struct scb_dev_method_ops scb_dev_snapkv = KVDROP_OPS("snapkv");
const struct scb_dev_method_ops scb_dev_pyramidkv = KVDROP_OPS("pyramidkv");
