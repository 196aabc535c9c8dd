/* cuda_host_emul_prefill.c — host emulation of the sparse prefill launchers of
 * kernels/sparse_prefill_cuda.h that the CUDA method binding calls (harness/method_dev_prefill.c),
 * written from the header's semantics: bf16 storage, fp32 scores and softmax over each row's
 * key set (STREAM: n_init sinks + n_local window, rows >= dense_from dense; LIST: the row
 * block's tiles and columns), one rounding of the output to bf16; the MInference layer through
 * the CPU reference's own selection (methods/minference.h) on the bf16 values. Linked into
 * scbench_cuda_emul with tests/cuda_host_emul.c, so tests/py/method_dev_prefill.py checks the
 * binding's host logic (options, per-layer/per-head patterns, dense fallbacks, density
 * bookkeeping) in CI. It checks nothing about the kernels (tests/parity_cuda_prefill.c does). */
#include "kernels/sparse_prefill_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "methods/minference.h"

#define BF scb_bf16_to_f32
#define TOBF scb_bf16_from_f32

static int row_keys(const struct scb_sparse_attn_cuda_args *a, int h, int i, int32_t *idx)
{
    const int off = a->Tk - a->Tq, p = i + off;
    int kind = SCB_SPARSE_STREAM, n_init = a->n_init, n_local = a->n_local, n = 0;
    if (a->head_pat) {
        kind = a->head_pat[h * 3];
        n_init = a->head_pat[h * 3 + 1];
        n_local = a->head_pat[h * 3 + 2];
    }
    if (kind == SCB_SPARSE_STREAM) {
        const int dense = !a->head_pat && i >= a->dense_from;
        for (int j = 0; j <= p; j++)
            if (dense || p - j < n_local || j < n_init) idx[n++] = j;
        return n;
    }
    const int nblk = (a->Tq + 63) / 64, m = i / 64;
    const size_t hb = (size_t)h * nblk + m;
    uint8_t *seen = scb_calloc((size_t)p + 1, 1);
    if (!seen) return -1;
    for (int t = 0; t < a->block_count[hb]; t++)
        for (int j = a->block_offset[hb * a->lds + t]; j < a->block_offset[hb * a->lds + t] + 64; j++)
            if (j >= 0 && j <= p) seen[j] = 1;
    for (int t = 0; t < a->column_count[hb]; t++) {
        const int j = a->column_index[hb * a->ldv + t];
        if (j >= 0 && j <= p) seen[j] = 1;
    }
    for (int j = 0; j <= p; j++)
        if (seen[j]) idx[n++] = j;
    scb_free(seen);
    return n;
}

/* The emulation runs every head dim on the host; the names follow the real dispatch's contract
 * (an unknown SCB_SPARSE_PREFILL is NULL), with "emul" for the kernel. */
const char *scb_cuda_sparse_attn_kernel(struct scb_cuda_ctx *cc, int D)
{
    const char *sel = getenv("SCB_SPARSE_PREFILL");
    (void)cc;
    (void)D;
    if (sel && *sel && strcmp(sel, "fa2") && strcmp(sel, "sm90")) return NULL;
    return "emul";
}

int scb_cuda_sparse_attn(struct scb_cuda_ctx *cc, const struct scb_sparse_attn_cuda_args *a, struct scb_ctx *err)
{
    (void)cc;
    if (!a || !a->q || !a->k || !a->v || !a->out || a->Tq < 1 || a->Tk < a->Tq || a->Hq < 1 || a->Hkv < 1 ||
        a->Hq % a->Hkv || a->D < 2 || a->D % 2 || a->D > 256)
        return scb_err(err, SCB_E_INVAL, "emulated sparse attention: bad arguments");
    if (!scb_cuda_sparse_attn_kernel(cc, a->D))
        return scb_err(err, SCB_E_INVAL, "SCB_SPARSE_PREFILL='%s': expected 'fa2' or 'sm90' (or unset: automatic)",
                       getenv("SCB_SPARSE_PREFILL"));
    if (!a->head_pat && (a->n_init < 0 || a->n_local < 1))
        return scb_err(err, SCB_E_INVAL, "emulated sparse attention: n_init %d n_local %d", a->n_init, a->n_local);
    if (a->head_pat && a->Tq != a->Tk)
        return scb_err(err, SCB_E_INVAL, "emulated sparse attention: per-head patterns need Tq == Tk");
    const size_t ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    const size_t hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    const float scale = a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D);
    const int G = a->Hq / a->Hkv;
    int32_t *idx = scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1));
    float *p = scb_malloc(sizeof(float) * ((size_t)a->Tk + 1));
    unsigned long long pairs = 0;
    int rc = SCB_OK;
    if (!idx || !p) { rc = scb_err(err, SCB_E_NOMEM, "emulated sparse attention: out of memory"); goto out; }
    for (int i = 0; i < a->Tq; i++)
        for (int h = 0; h < a->Hq; h++) {
            const int n = row_keys(a, h, i, idx);
            if (n < 0) { rc = scb_err(err, SCB_E_NOMEM, "emulated sparse attention: out of memory"); goto out; }
            const uint16_t *q = a->q + ((size_t)i * a->Hq + h) * a->D;      /* (Tq, Hq, D) */
            const size_t g0 = (size_t)(h / G) * hs;
            float m = -INFINITY, l = 0.f;
            for (int t = 0; t < n; t++) {
                const uint16_t *kr = a->k + g0 + (size_t)idx[t] * ts;
                float d = 0.f;
                for (int e = 0; e < a->D; e++) d += BF(q[e]) * BF(kr[e]);
                p[t] = d * scale;
                m = fmaxf(m, p[t]);
            }
            for (int t = 0; t < n; t++) { p[t] = expf(p[t] - m); l += p[t]; }
            for (int e = 0; e < a->D; e++) {
                float o = 0.f;
                for (int t = 0; t < n; t++) o += p[t] * BF(a->v[g0 + (size_t)idx[t] * ts + e]);
                a->out[((size_t)i * a->Hq + h) * a->D + e] = TOBF(n ? o / l : 0.f);
            }
            pairs += (unsigned long long)n;
        }
    if (a->pairs) *a->pairs += pairs;
out:
    scb_free(idx);
    scb_free(p);
    return rc;
}

struct scb_cuda_minf_ws { int unused; };

int scb_cuda_minf_ws_create(struct scb_cuda_minf_ws **out, struct scb_ctx *err)
{
    *out = scb_calloc(1, sizeof **out);
    return *out ? SCB_OK : scb_err(err, SCB_E_NOMEM, "emulated minference: out of memory");
}

void scb_cuda_minf_ws_destroy(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws)
{
    (void)cc;
    scb_free(ws);
}

int scb_cuda_minf_prefill(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws,
                          const struct scb_sparse_attn_cuda_args *a, const struct scb_minf_cuda_pattern *pat,
                          int last_q, int block_topk, double *density, struct scb_ctx *err)
{
    (void)cc;
    if (!ws || !a || !pat || !density || a->Tq != a->Tk || a->Tq < 2 || last_q < 1 || block_topk < 1)
        return scb_err(err, SCB_E_INVAL, "emulated minference prefill: bad arguments");
    const int N = a->Tq, H = a->Hq, Hk = a->Hkv, D = a->D;
    const size_t ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)Hk * D;
    const size_t hs = a->kv_head_stride ? a->kv_head_stride : (size_t)D;
    int rc = SCB_OK;
    float *q = scb_malloc(sizeof(float) * (size_t)N * H * D);      /* (N, H, D) */
    float *o = scb_malloc(sizeof(float) * (size_t)N * H * D);      /* (N, H, D) */
    float *k = scb_malloc(sizeof(float) * (size_t)N * Hk * D);     /* (N, Hk, D) */
    float *v = scb_malloc(sizeof(float) * (size_t)N * Hk * D);     /* (N, Hk, D) */
    struct scb_minf_pattern *pp = scb_malloc(sizeof *pp * (size_t)H);
    if (!q || !o || !k || !v || !pp) { rc = scb_err(err, SCB_E_NOMEM, "emulated minference: out of memory"); goto out; }
    for (size_t t = 0; t < (size_t)N * H * D; t++) q[t] = BF(a->q[t]);
    for (int j = 0; j < N; j++)
        for (int g = 0; g < Hk; g++)
            for (int e = 0; e < D; e++) {
                k[((size_t)j * Hk + g) * D + e] = BF(a->k[(size_t)g * hs + (size_t)j * ts + e]);
                v[((size_t)j * Hk + g) * D + e] = BF(a->v[(size_t)g * hs + (size_t)j * ts + e]);
            }
    for (int h = 0; h < H; h++) { pp[h].type = pat[h].type; pp[h].v = pat[h].v; pp[h].s = pat[h].s; }
    struct scb_attn_args x;
    memset(&x, 0, sizeof x);
    x.q = q; x.k = k; x.v = v; x.out = o;
    x.Tq = N; x.Tk = N; x.Hq = H; x.Hkv = Hk; x.D = D;
    x.scale = a->scale;
    SCB_TRY(scb_minf_attn(&x, pp, block_topk, last_q, err));
    for (size_t t = 0; t < (size_t)N * H * D; t++) a->out[t] = TOBF(o[t]);
    *density = x.density;
out:
    scb_free(q); scb_free(o); scb_free(k); scb_free(v); scb_free(pp);
    return rc;
}
