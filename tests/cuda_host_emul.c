/* cuda_host_emul.c — a host (CPU) implementation of the launchers of kernels/kernels_cuda.h that
 * the CUDA engine calls (harness/model_cuda.c, kernels/cuda/backend_cuda.c), written from the
 * semantics the header documents: bf16 storage, fp32 arithmetic, one rounding where the kernels
 * round. Linked into `scbench_cuda_emul` (tests/meson.build) instead of the real kernels, it
 * runs the engine's host logic — weight upload, device KV cache offsets and strides, segment
 * bookkeeping, activation arena, LM-head blocks, argmax, the choice of attention kernel — on a
 * machine without a GPU, so tests/py/engine_cuda.py checks that logic in CI. It checks nothing
 * about the kernels themselves (tests/parity_cuda.c does, on a GPU).
 *
 * "Device" memory is host memory poisoned with 0xff bytes (bf16 and fp32 NaN) at allocation,
 * so a read of anything the engine never wrote shows up as NaN in the logits. Each launcher
 * enforces the argument rules its header states (head dims of the tensor-core kernels, the
 * decode kernel's row limit, cache capacity) and fails with SCB_E_INVAL like the real one. */
#include "kernels/kernels_cuda.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

struct scb_cuda_ctx {
    int device;
};

void scb_cuda_device_count(int *n, char *why, size_t n_why)
{
    *n = 1;
    if (why && n_why) why[0] = 0;
}

int scb_cuda_ctx_create(struct scb_cuda_ctx **out, int device, size_t workspace_bytes, struct scb_ctx *err)
{
    (void)workspace_bytes;
    *out = scb_calloc(1, sizeof **out);
    if (!*out) return scb_err(err, SCB_E_NOMEM, "emulated CUDA context: out of memory");
    (*out)->device = device;
    return SCB_OK;
}

void scb_cuda_ctx_destroy(struct scb_cuda_ctx *cc) { scb_free(cc); }

void scb_cuda_describe(const struct scb_cuda_ctx *cc, char *buf, size_t n)
{
    snprintf(buf, n, "host emulation of the CUDA kernels (device %d)", cc->device);
}

int scb_cuda_sync(struct scb_cuda_ctx *cc, struct scb_ctx *err) { (void)cc; (void)err; return SCB_OK; }

int scb_cuda_malloc(struct scb_cuda_ctx *cc, void **out, size_t bytes, struct scb_ctx *err)
{
    (void)cc;
    *out = scb_malloc(bytes ? bytes : 1);
    if (!*out) return scb_err(err, SCB_E_DEVICE_OOM, "emulated device: out of memory for %zu bytes", bytes);
    memset(*out, 0xff, bytes);                  /* NaN poison */
    return SCB_OK;
}

void scb_cuda_free(struct scb_cuda_ctx *cc, void *p) { (void)cc; scb_free(p); }

int scb_cuda_upload(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes, struct scb_ctx *err)
{
    (void)cc; (void)err;
    memcpy(dst, src, bytes);
    return SCB_OK;
}

int scb_cuda_download(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes, struct scb_ctx *err)
{
    (void)cc; (void)err;
    memcpy(dst, src, bytes);
    return SCB_OK;
}

int scb_cuda_fill16(struct scb_cuda_ctx *cc, uint16_t *dst, uint16_t bits, size_t n, struct scb_ctx *err)
{
    (void)cc; (void)err;
    for (size_t i = 0; i < n; i++) dst[i] = bits;
    return SCB_OK;
}

int scb_cuda_fill32(struct scb_cuda_ctx *cc, uint32_t *dst, uint32_t bits, size_t n, struct scb_ctx *err)
{
    (void)cc; (void)err;
    for (size_t i = 0; i < n; i++) dst[i] = bits;
    return SCB_OK;
}

uint16_t scb_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                              /* nearest even */
    return (uint16_t)(u >> 16);
}

float scb_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define BF scb_bf16_to_f32
#define TOBF scb_bf16_from_f32

int scb_cuda_embed(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *table, int V, int n,
                   const int32_t *ids, int T, struct scb_ctx *err)
{
    (void)cc;
    for (int t = 0; t < T; t++) {                 /* out (T, n) = table (V, n) [ids] */
        if (ids[t] < 0 || ids[t] >= V) return scb_err(err, SCB_E_INVAL, "emulated embed: id %d outside [0, %d)", ids[t], V);
        memcpy(out + (size_t)t * n, table + (size_t)ids[t] * n, (size_t)n * sizeof *out);
    }
    return SCB_OK;
}

int scb_cuda_rope_table(struct scb_cuda_ctx *cc, const float *inv_freq, int half, int64_t pos0, int T,
                        float attn_scale, float *cos_t, float *sin_t, struct scb_ctx *err)
{
    (void)cc; (void)err;
    for (int t = 0; t < T; t++)                   /* cos, sin (T, half) */
        for (int i = 0; i < half; i++) {
            float a = (float)(pos0 + t) * inv_freq[i];
            cos_t[(size_t)t * half + i] = cosf(a) * attn_scale;
            sin_t[(size_t)t * half + i] = sinf(a) * attn_scale;
        }
    return SCB_OK;
}

int scb_cuda_rope_table_dev(struct scb_cuda_ctx *cc, const float *inv_freq, int half, const int32_t *d_pos0,
                            int T, float attn_scale, float *cos_t, float *sin_t, struct scb_ctx *err)
{
    if (!d_pos0 || *d_pos0 < 0) return scb_err(err, SCB_E_INVAL, "emulated rope_table_dev: bad d_pos0");
    return scb_cuda_rope_table(cc, inv_freq, half, *d_pos0, T, attn_scale, cos_t, sin_t, err);
}

int scb_cuda_rope_cs(struct scb_cuda_ctx *cc, uint16_t *x, int T, int H, int D, size_t tok_stride,
                     const float *cos_t, const float *sin_t, struct scb_ctx *err)
{
    (void)cc;
    if (D % 2) return scb_err(err, SCB_E_INVAL, "emulated rope: odd D=%d", D);
    const int half = D / 2;
    const size_t ts = tok_stride ? tok_stride : (size_t)H * D;
    for (int t = 0; t < T; t++)                   /* x (T, H, D), token stride ts */
        for (int h = 0; h < H; h++) {
            uint16_t *r = x + t * ts + (size_t)h * D;
            for (int i = 0; i < half; i++) {
                float a = BF(r[i]), b = BF(r[i + half]);
                float c = cos_t[(size_t)t * half + i], s = sin_t[(size_t)t * half + i];
                r[i] = TOBF(a * c - b * s);
                r[i + half] = TOBF(b * c + a * s);
            }
        }
    return SCB_OK;
}

int scb_cuda_rmsnorm(struct scb_cuda_ctx *cc, uint16_t *y, const uint16_t *x, const uint16_t *w, int T,
                     int n, float eps, struct scb_ctx *err)
{
    (void)cc; (void)err;
    for (int t = 0; t < T; t++) {                 /* y, x (T, n); w (n) */
        const uint16_t *xr = x + (size_t)t * n;
        float ss = 0.f;
        for (int i = 0; i < n; i++) ss += BF(xr[i]) * BF(xr[i]);
        const float r = 1.0f / sqrtf(ss / (float)n + eps);
        for (int i = 0; i < n; i++) y[(size_t)t * n + i] = TOBF(BF(w[i]) * BF(TOBF(BF(xr[i]) * r)));
    }
    return SCB_OK;
}

int scb_cuda_gemm(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x, const uint16_t *W,
                  const uint16_t *bias, int T, int in, int out, int accumulate, struct scb_ctx *err)
{
    (void)cc;
    if (bias && accumulate) return scb_err(err, SCB_E_INVAL, "emulated gemm: bias with accumulate");
    for (int t = 0; t < T; t++)                   /* y (T, out) = x (T, in) W (out, in)^T */
        for (int o = 0; o < out; o++) {
            float s = 0.f;
            for (int i = 0; i < in; i++) s += BF(x[(size_t)t * in + i]) * BF(W[(size_t)o * in + i]);
            if (bias) s += BF(bias[o]);
            size_t e = (size_t)t * out + o;
            if (y_f32) ((float *)y)[e] = (accumulate ? ((float *)y)[e] : 0.f) + s;
            else ((uint16_t *)y)[e] = TOBF((accumulate ? BF(((uint16_t *)y)[e]) : 0.f) + s);
        }
    return SCB_OK;
}

int scb_cuda_kv_append(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, const uint16_t *k,
                       const uint16_t *v, int T, int Hin, int Hkv, int D, size_t cap, size_t len,
                       struct scb_ctx *err)
{
    (void)cc;
    if (Hin <= 0 || Hkv % Hin || len + (size_t)T > cap)
        return scb_err(err, SCB_E_INVAL, "emulated kv append: Hin=%d Hkv=%d len=%zu T=%d cap=%zu", Hin, Hkv,
                       len, T, cap);
    for (int t = 0; t < T; t++)                   /* kc, vc (Hkv, cap, D) <- k, v (T, Hin, D) */
        for (int h = 0; h < Hkv; h++) {
            int hi = h / (Hkv / Hin);
            memcpy(kc + ((size_t)h * cap + len + t) * D, k + ((size_t)t * Hin + hi) * D, (size_t)D * 2);
            memcpy(vc + ((size_t)h * cap + len + t) * D, v + ((size_t)t * Hin + hi) * D, (size_t)D * 2);
        }
    return SCB_OK;
}

int scb_cuda_kv_append_dev(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, const uint16_t *k,
                           const uint16_t *v, int T, int Hin, int Hkv, int D, size_t cap, const int32_t *d_len,
                           struct scb_ctx *err)
{
    /* the real kernel skips rows past cap (the engine checks room first); here that is an error */
    if (!d_len || *d_len < 0) return scb_err(err, SCB_E_INVAL, "emulated kv append (device len): bad d_len");
    return scb_cuda_kv_append(cc, kc, vc, k, v, T, Hin, Hkv, D, cap, (size_t)*d_len, err);
}

int scb_cuda_kv_keep(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, int Hs, int D, size_t cap,
                     const int32_t *idx, int n, struct scb_ctx *err)
{
    (void)cc;
    if (Hs <= 0 || D <= 0 || D % 8 || n < 0 || (size_t)n > cap)
        return scb_err(err, SCB_E_INVAL, "emulated kv keep: Hs=%d D=%d n=%d cap=%zu", Hs, D, n, cap);
    for (int s = 0; s < Hs; s++)                  /* kc, vc (Hs, cap, D): rows idx[s][i] -> i */
        for (int i = 0; i < n; i++) {
            const int32_t j = idx[(size_t)s * n + i];
            if (j < i || (size_t)j >= cap || (i && j <= idx[(size_t)s * n + i - 1]))
                return scb_err(err, SCB_E_INVAL, "emulated kv keep: head %d index %d = %d not ascending", s, i, j);
            memmove(kc + ((size_t)s * cap + i) * D, kc + ((size_t)s * cap + j) * D, (size_t)D * 2);
            memmove(vc + ((size_t)s * cap + i) * D, vc + ((size_t)s * cap + j) * D, (size_t)D * 2);
        }
    return SCB_OK;
}

/* Pinned memory and asynchronous copies: host memory and plain copies here. */
int scb_cuda_host_alloc(struct scb_cuda_ctx *cc, void **out, size_t bytes, struct scb_ctx *err)
{
    (void)cc;
    *out = scb_malloc(bytes ? bytes : 1);
    return *out ? SCB_OK : scb_err(err, SCB_E_NOMEM, "emulated pinned alloc: out of memory");
}

void scb_cuda_host_free(struct scb_cuda_ctx *cc, void *p)
{
    (void)cc;
    scb_free(p);
}

int scb_cuda_upload_async(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes, struct scb_ctx *err)
{
    return scb_cuda_upload(cc, dst, src, bytes, err);
}

int scb_cuda_download_async(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                            struct scb_ctx *err)
{
    return scb_cuda_download(cc, dst, src, bytes, err);
}

/* Graphs: the emulated launchers run at once, so "capturing" runs the step eagerly and launching
 * it has nothing left to do; the counters still count steps, so the engine's choice of graph
 * steps is visible to tests. A recorded graph (scb_cuda_graph_record) keeps fn and user and
 * runs fn again at every replay: what fn reads from "device" memory then is what the real graph
 * reads, and it must take nothing else from the host that changed since the record. */
struct scb_cuda_graph {
    long launches, begun, records;
    scb_cuda_graph_fn fn;
    void *user;
};

int scb_cuda_graph_create(struct scb_cuda_ctx *cc, struct scb_cuda_graph **out, struct scb_ctx *err)
{
    (void)cc;
    *out = scb_calloc(1, sizeof **out);
    return *out ? SCB_OK : scb_err(err, SCB_E_NOMEM, "emulated graph: out of memory");
}

void scb_cuda_graph_destroy(struct scb_cuda_graph *g) { scb_free(g); }

int scb_cuda_graph_begin(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err)
{
    (void)cc;
    if (g->begun) return scb_err(err, SCB_E_INVAL, "emulated graph: capture already in progress");
    g->begun = 1;
    return SCB_OK;
}

int scb_cuda_graph_launch(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err)
{
    (void)cc;
    if (!g->begun) return scb_err(err, SCB_E_INVAL, "emulated graph: launch without a capture");
    g->begun = 0;
    g->launches++;
    return SCB_OK;
}

int scb_cuda_graph_record(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, scb_cuda_graph_fn fn, void *user,
                          struct scb_ctx *err)
{
    (void)cc;
    if (g->begun) return scb_err(err, SCB_E_INVAL, "emulated graph: record during a capture");
    g->fn = fn;
    g->user = user;
    g->records++;
    return SCB_OK;
}

int scb_cuda_graph_replay(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err)
{
    (void)cc;
    if (!g->fn) return scb_err(err, SCB_E_INVAL, "emulated graph: replay before a record");
    g->launches++;
    return g->fn(g->user, err);
}

void scb_cuda_graph_abort(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g)
{
    (void)cc;
    g->begun = 0;
}

void scb_cuda_graph_stats(const struct scb_cuda_graph *g, long *launches, long *instantiations)
{
    *launches = g ? g->launches : 0;
    *instantiations = g ? (g->records ? g->records : g->launches ? 1 : 0) : 0;
}

/* Dense causal GQA attention, bottom-right aligned, fp32 softmax; out rounded to bf16. */
static int attention(const struct scb_attn_cuda_args *a, struct scb_ctx *err)
{
    const int G = a->Hq / a->Hkv;
    const size_t ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    const size_t hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    const float scale = a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D);
    float *p = scb_malloc(((size_t)a->Tk + 1) * sizeof(float));   /* (Tk) scores, then weights */
    if (!p) return scb_err(err, SCB_E_NOMEM, "emulated attention: out of memory");
    for (int t = 0; t < a->Tq; t++)
        for (int h = 0; h < a->Hq; h++) {
            const int g = h / G;
            const uint16_t *q = a->q + ((size_t)t * a->Hq + h) * a->D;
            const long long last = (long long)t + a->Tk - a->Tq;
            const int nk = last < 0 ? 0 : (last + 1 < a->Tk ? (int)(last + 1) : a->Tk);
            float m = -INFINITY, l = 0.f;
            for (int j = 0; j < nk; j++) {
                const uint16_t *kr = a->k + j * ts + g * hs;
                float d = 0.f;
                for (int i = 0; i < a->D; i++) d += BF(q[i]) * BF(kr[i]);
                p[j] = d * scale;
                m = fmaxf(m, p[j]);
            }
            for (int j = 0; j < nk; j++) { p[j] = expf(p[j] - m); l += p[j]; }
            for (int i = 0; i < a->D; i++) {
                float o = 0.f;
                for (int j = 0; j < nk; j++) o += p[j] * BF(a->v[j * ts + g * hs + i]);
                a->out[((size_t)t * a->Hq + h) * a->D + i] = TOBF(nk ? o / l : 0.f);
            }
            if (a->lse) a->lse[(size_t)t * a->Hq + h] = nk ? m + logf(l) : -INFINITY;
        }
    scb_free(p);
    return SCB_OK;
}

static int check_tc(const struct scb_attn_cuda_args *a, const char *what, struct scb_ctx *err)
{
    if (a->D != 64 && a->D != 128)
        return scb_err(err, SCB_E_INVAL, "emulated %s attention: head dim D=%d (supported: 64, 128)", what, a->D);
    size_t ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    size_t hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    if (ts % 8 || hs % 8 || (((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) & 15u))
        return scb_err(err, SCB_E_INVAL, "emulated %s attention: strides or alignment", what);
    return SCB_OK;
}

int scb_attn_prefill_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a, struct scb_ctx *err)
{
    (void)cc;
    int rc = check_tc(a, "prefill", err);
    return rc ? rc : attention(a, err);
}

int scb_attn_decode_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a, int n_splits,
                         struct scb_ctx *err)
{
    (void)cc; (void)n_splits;
    int rc = check_tc(a, "decode", err);
    if (rc) return rc;
    if (a->Tq * (a->Hq / a->Hkv) > 64)
        return scb_err(err, SCB_E_INVAL, "emulated decode attention: Tq*G = %d > 64", a->Tq * (a->Hq / a->Hkv));
    return attention(a, err);
}

int scb_attn_decode_dev_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a, const int32_t *d_tk,
                             int n_splits, struct scb_ctx *err)
{
    if (!d_tk || *d_tk < 0 || n_splits < 1)
        return scb_err(err, SCB_E_INVAL, "emulated decode attention (device Tk): need d_tk and n_splits >= 1");
    struct scb_attn_cuda_args b = *a;
    b.Tk = *d_tk;
    return scb_attn_decode_cuda(cc, &b, n_splits, err);
}

int scb_attn_decode_splits(const struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a)
{
    (void)cc;
    const int most = (a->Tk + 63) / 64;             /* 132 SMs, 2 blocks each, as the real one */
    const int want = (264 + a->Hkv - 1) / a->Hkv;
    return most < 1 ? 1 : (want < most ? want : most);
}

int scb_attn_generic_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a, struct scb_ctx *err)
{
    (void)cc;
    if (a->D % 2 || a->D > 256) return scb_err(err, SCB_E_INVAL, "emulated generic attention: D=%d", a->D);
    return attention(a, err);
}

int scb_cuda_add(struct scb_cuda_ctx *cc, uint16_t *x, const uint16_t *y, size_t n, struct scb_ctx *err)
{
    (void)cc; (void)err;
    for (size_t i = 0; i < n; i++) x[i] = TOBF(BF(x[i]) + BF(y[i]));
    return SCB_OK;
}

int scb_cuda_swiglu(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *gate, const uint16_t *up, int T,
                    int F, size_t ld_in, struct scb_ctx *err)
{
    (void)cc; (void)err;
    const size_t ld = ld_in ? ld_in : (size_t)F;
    for (int t = 0; t < T; t++)                   /* out (T, F) */
        for (int f = 0; f < F; f++) {
            float g = BF(gate[t * ld + f]), u = BF(up[t * ld + f]);
            out[(size_t)t * F + f] = TOBF(g / (1.0f + expf(-g)) * u);
        }
    return SCB_OK;
}

int scb_cuda_argmax(struct scb_cuda_ctx *cc, int32_t *idx, const void *logits, int is_bf16, int T, int V,
                    struct scb_ctx *err)
{
    (void)cc;
    if (is_bf16) return scb_err(err, SCB_E_INVAL, "emulated argmax: bf16 logits not emulated");
    for (int t = 0; t < T; t++) {                 /* logits (T, V) fp32 */
        const float *r = (const float *)logits + (size_t)t * V;
        int b = -1;
        for (int j = 0; j < V; j++)
            if (r[j] == r[j] && (b < 0 || r[j] > r[b])) b = j;
        idx[t] = b < 0 ? 0 : b;
    }
    return SCB_OK;
}

/* Device-to-device copy and the event timer (`scbench bench cuda` measures the copy bandwidth):
 * a memmove, and host wall time between start and stop. */
int scb_cuda_copy(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes, struct scb_ctx *err)
{
    (void)cc; (void)err;
    memmove(dst, src, bytes);
    return SCB_OK;
}

static double g_timer_t0, g_timer_t1;
int scb_cuda_timer_start(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    (void)cc; (void)err;
    g_timer_t0 = scb_now_ms();
    return SCB_OK;
}
int scb_cuda_timer_stop(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    (void)cc; (void)err;
    g_timer_t1 = scb_now_ms();
    return SCB_OK;
}
int scb_cuda_timer_ms(struct scb_cuda_ctx *cc, float *ms, struct scb_ctx *err)
{
    (void)cc; (void)err;
    *ms = (float)(g_timer_t1 - g_timer_t0);
    return SCB_OK;
}
