/* cuda_host_emul_kvsel.c — host emulation of the launchers of kernels/kvsel_cuda.h (SnapKV /
 * PyramidKV scoring and selection, Quest page metadata, selection and attention), written from
 * the semantics the header documents: bf16 storage, fp32 arithmetic, ties to the smaller index.
 * Linked into `scbench_cuda_emul` next to tests/cuda_host_emul.c so CI runs the device method
 * bindings (harness/method_dev_kvdrop.c, method_dev_quest.c) without a GPU. It checks nothing
 * about the kernels themselves (tests/parity_cuda_kvsel.c does, on a GPU). */
#include "kernels/kvsel_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"

#define BF scb_bf16_to_f32

size_t scb_cuda_snapkv_work_floats(int H, int W, int N)
{
    return (size_t)H * W * N + (size_t)H * W * 2;
}

int scb_cuda_snapkv_scores(struct scb_cuda_ctx *cc, const uint16_t *q, int Nq, const uint16_t *k, size_t cap, int N,
                           int H, int Hs, int D, int W, float scale, int kernel, int pool, int gqa, float *work,
                           float *pooled, struct scb_ctx *err)
{
    (void)cc;
    if (!q || !k || !work || !pooled || W < 1 || W >= N || (size_t)N > cap || W > Nq || H < 1 || Hs < 1 || H % Hs ||
        D < 2 || D % 2 || D > 256 || kernel < 1 || kernel % 2 == 0 || (pool != 0 && pool != 1) || (!gqa && Hs != H))
        return scb_err(err, SCB_E_INVAL, "emulated snapkv scores: bad arguments (N=%d W=%d H=%d Hs=%d D=%d)", N, W,
                       H, Hs, D);
    const int P = N - W, Hout = gqa ? Hs : H, hpl = H / Hout, G = H / Hs;
    if (scale == 0.f) scale = 1.0f / sqrtf((float)D);
    float *S = work, *ml = work + (size_t)H * W * N;              /* (H, W, N), (H, W, 2) */
    for (int h = 0; h < H; h++)
        for (int r = 0; r < W; r++) {
            const uint16_t *qr = q + ((size_t)(Nq - W + r) * H + h) * D;
            float *row = S + ((size_t)h * W + r) * N;
            float m = -INFINITY, l = 0.f;
            for (int j = 0; j < N; j++) {
                const uint16_t *kr = k + ((size_t)(h / G) * cap + j) * D;
                float acc = 0.f;
                for (int d = 0; d < D; d++) acc += BF(qr[d]) * BF(kr[d]);
                row[j] = j <= N - W + r ? acc * scale : -INFINITY;
                m = fmaxf(m, row[j]);
            }
            for (int j = 0; j <= N - W + r; j++) l += expf(row[j] - m);
            ml[((size_t)h * W + r) * 2] = m;
            ml[((size_t)h * W + r) * 2 + 1] = l;
        }
    float *score = scb_malloc(sizeof(float) * (size_t)Hout * (P > 0 ? P : 1));   /* (Hout, P) */
    if (!score) return scb_err(err, SCB_E_NOMEM, "emulated snapkv scores: out of memory");
    for (int o = 0; o < Hout; o++)
        for (int j = 0; j < P; j++) {
            float acc = 0.f;
            for (int h = o * hpl; h < (o + 1) * hpl; h++)
                for (int r = 0; r < W; r++) {
                    const size_t hr = (size_t)h * W + r;
                    acc += expf(S[hr * N + j] - ml[hr * 2]) / ml[hr * 2 + 1];
                }
            score[(size_t)o * P + j] = acc / (float)hpl;
        }
    const int rad = kernel / 2;
    for (int o = 0; o < Hout; o++)
        for (int j = 0; j < P; j++) {
            float acc = pool ? -INFINITY : 0.f;
            for (int t = j - rad; t <= j + rad; t++) {
                if (t < 0 || t >= P) continue;
                acc = pool ? fmaxf(acc, score[(size_t)o * P + t]) : acc + score[(size_t)o * P + t];
            }
            pooled[(size_t)o * P + j] = pool ? acc : acc / (float)kernel;
        }
    scb_free(score);
    return SCB_OK;
}

/* top-k of s (n): larger first (-0 == +0), ties to the smaller index; out ascending */
static const float *g_s;
static int by_desc(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    float a = g_s[i] + 0.0f, b = g_s[j] + 0.0f;
    if (a != b) return a > b ? -1 : 1;
    return (i > j) - (i < j);
}
static int by_asc(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    return (i > j) - (i < j);
}
static int topk(const float *s, int n, int k, int32_t *out, struct scb_ctx *err)
{
    int32_t *ord = scb_malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!ord) return scb_err(err, SCB_E_NOMEM, "emulated top-k: out of memory");
    for (int j = 0; j < n; j++) ord[j] = j;
    g_s = s;
    qsort(ord, (size_t)n, sizeof *ord, by_desc);
    memcpy(out, ord, sizeof(int32_t) * (size_t)k);
    qsort(out, (size_t)k, sizeof *out, by_asc);
    scb_free(ord);
    return SCB_OK;
}

int scb_cuda_snapkv_select(struct scb_cuda_ctx *cc, const float *pooled, int R, int P, int n_select, int W,
                           int32_t *idx, struct scb_ctx *err)
{
    (void)cc;
    if (!pooled || !idx || R < 1 || P < 0 || n_select < 0 || n_select > P || W < 0)
        return scb_err(err, SCB_E_INVAL, "emulated snapkv select: bad arguments");
    const int n = n_select + W;
    for (int r = 0; r < R; r++) {
        int32_t *o = idx + (size_t)r * n;
        int rc = topk(pooled + (size_t)r * P, P, n_select, o, err);
        if (rc) return rc;
        for (int j = 0; j < W; j++) o[n_select + j] = P + j;
    }
    return SCB_OK;
}

int scb_cuda_quest_meta(struct scb_cuda_ctx *cc, const uint16_t *k, size_t cap, int Hs, int D, int P, int T, int p0,
                        uint16_t *kmin, uint16_t *kmax, int mp, struct scb_ctx *err)
{
    (void)cc;
    const int np = P > 0 ? (T + P - 1) / P : 0;
    if (!k || !kmin || !kmax || Hs < 1 || D < 2 || D % 2 || D > 256 || P < 1 || T < 0 || (size_t)T > cap ||
        np > mp || p0 < 0)
        return scb_err(err, SCB_E_INVAL, "emulated quest meta: bad arguments (T=%d P=%d mp=%d)", T, P, mp);
    for (int s = 0; s < Hs; s++)
        for (int p = p0; p < np; p++)
            for (int d = 0; d < D; d++) {
                float mn = INFINITY, mx = -INFINITY;
                for (int t = p * P; t < (p + 1) * P && t < T; t++) {
                    const float x = BF(k[((size_t)s * cap + t) * D + d]);
                    mn = fminf(mn, x);
                    mx = fmaxf(mx, x);
                }
                kmin[((size_t)s * mp + p) * D + d] = scb_bf16_from_f32(mn);
                kmax[((size_t)s * mp + p) * D + d] = scb_bf16_from_f32(mx);
            }
    return SCB_OK;
}

int scb_cuda_quest_signs(struct scb_cuda_ctx *cc, const uint16_t *q, int Tq, int H, int D, float *w,
                         struct scb_ctx *err)
{
    (void)cc;
    if (!q || !w || Tq < 1 || H < 1 || D < 2 || D % 2 || D > 256)
        return scb_err(err, SCB_E_INVAL, "emulated quest signs: bad arguments");
    for (int h = 0; h < H; h++)
        for (int d = 0; d < D; d++) {
            float s = 0.f;
            for (int i = 0; i < Tq; i++) s += BF(q[((size_t)i * H + h) * D + d]) > 0.f ? 1.f : -1.f;
            w[(size_t)h * D + d] = s;
        }
    return SCB_OK;
}

int scb_cuda_quest_select(struct scb_cuda_ctx *cc, const uint16_t *q, int r0, int nr, int H, int Hs, int D,
                          const float *w, const uint16_t *kmin, const uint16_t *kmax, int mp, int T, int P, int kp,
                          float *ub, int32_t *sel, struct scb_ctx *err)
{
    (void)cc;
    const int np = P > 0 ? (T + P - 1) / P : 0;
    if (!q || !w || !kmin || !kmax || !ub || !sel || r0 < 0 || nr < 1 || H < 1 || Hs < 1 || H % Hs || D < 2 ||
        D % 2 || D > 256 || P < 1 || T < 1 || np > mp || kp < 1 || kp > np)
        return scb_err(err, SCB_E_INVAL, "emulated quest select: bad arguments (T=%d P=%d kp=%d)", T, P, kp);
    const int G = H / Hs;
    for (int i = 0; i < nr; i++)
        for (int h = 0; h < H; h++) {
            const uint16_t *qr = q + ((size_t)(r0 + i) * H + h) * D;
            const float *wh = w + (size_t)h * D;
            float *u = ub + ((size_t)i * H + h) * np;
            for (int p = 0; p < np; p++) {
                const size_t mo = ((size_t)(h / G) * mp + p) * D;
                float acc = 0.f;
                for (int d = 0; d < D; d++) {
                    const float wd = wh[d];
                    const float mx = wd > 0.f ? BF(kmax[mo + d]) * wd : (wd < 0.f ? BF(kmin[mo + d]) * wd : 0.f);
                    acc += BF(qr[d]) * wd * mx;
                }
                u[p] = acc;
            }
            int rc = topk(u, np, kp, sel + ((size_t)i * H + h) * kp, err);
            if (rc) return rc;
        }
    return SCB_OK;
}

size_t scb_cuda_quest_step_work_bytes(int H, int D, int mp)
{
    return (size_t)H * (2 * (size_t)mp + 32) * (sizeof(int32_t) + sizeof(float)) + (size_t)H * D * sizeof(float);
}

int scb_cuda_quest_topk(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel,
                        struct scb_ctx *err)
{
    (void)cc;
    if (!s || !sel || R < 1 || n < 1 || kp < 1 || kp > n)
        return scb_err(err, SCB_E_INVAL, "emulated quest top-k: bad arguments (R=%d n=%d kp=%d)", R, n, kp);
    for (int r = 0; r < R; r++) {
        int rc = topk(s + (size_t)r * n, n, kp, sel + (size_t)r * kp, err);
        if (rc) return rc;
    }
    return SCB_OK;
}

int scb_cuda_topk_rows(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel, int sel_stride,
                       int32_t id0, struct scb_ctx *err)
{
    (void)cc;
    if (!s || !sel || R < 1 || n < 1 || kp < 1 || kp > n || sel_stride < kp)
        return scb_err(err, SCB_E_INVAL, "emulated top-k rows: bad arguments (R=%d n=%d kp=%d sel_stride=%d)", R, n,
                       kp, sel_stride);
    for (int r = 0; r < R; r++) {
        int32_t *o = sel + (size_t)r * sel_stride;
        int rc = topk(s + (size_t)r * n, n, kp, o, err);
        if (rc) return rc;
        for (int i = 0; i < kp; i++) o[i] += id0;
    }
    return SCB_OK;
}

/* The documented semantics: metadata from p0, the row's own signs, the one-row selection. */
int scb_cuda_quest_step_select2(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D, const uint16_t *k,
                                size_t cap, uint16_t *kmin, uint16_t *kmax, int mp, int T, int P, int p0, int kp,
                                int unroll, float *ub, int32_t *sel, void *work, struct scb_ctx *err)
{
    const int np = P > 0 ? (T + P - 1) / P : 0;
    if (unroll != 0 && unroll != 1 && unroll != 2 && unroll != 4 && unroll != 8)
        return scb_err(err, SCB_E_INVAL, "emulated quest step select2: bad unroll %d", unroll);
    if (!q || !k || !kmin || !kmax || !ub || !sel || !work || H < 1 || Hs < 1 || H % Hs || D < 2 || D % 2 ||
        D > 256 || P < 1 || T < 1 || (size_t)T > cap || np > mp || p0 < 0 || kp < 1 || kp > np)
        return scb_err(err, SCB_E_INVAL, "emulated quest step select2: bad arguments (T=%d P=%d kp=%d)", T, P, kp);
    float *w = (float *)((char *)work + (size_t)H * (2 * (size_t)mp + 32) * (sizeof(int32_t) + sizeof(float)));
    int rc = scb_cuda_quest_meta(cc, k, cap, Hs, D, P, T, p0, kmin, kmax, mp, err);
    if (rc == SCB_OK) rc = scb_cuda_quest_signs(cc, q, 1, H, D, w, err);
    if (rc == SCB_OK) rc = scb_cuda_quest_select(cc, q, 0, 1, H, Hs, D, w, kmin, kmax, mp, T, P, kp, ub, sel, err);
    return rc;
}

size_t scb_cuda_quest_attn_work_floats(int nr, int H, int D, int kp, int P)
{
    return (size_t)nr * H * (((size_t)kp * P + 31) / 32) * (D + 2);
}

int scb_cuda_quest_attn(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, const uint16_t *v, size_t cap,
                        uint16_t *out, int r0, int nr, int Tq, int Tk, int H, int Hs, int D, int P, int kp,
                        const int32_t *sel, float scale, float *work, struct scb_ctx *err)
{
    (void)cc;
    if (!q || !k || !v || !out || !sel || !work || r0 < 0 || nr < 1 || r0 + nr > Tq || Tq > Tk || (size_t)Tk > cap ||
        H < 1 || Hs < 1 || H % Hs || D < 2 || D % 2 || D > 256 || P < 1 || kp < 1)
        return scb_err(err, SCB_E_INVAL, "emulated quest attention: bad arguments");
    if (scale == 0.f) scale = 1.0f / sqrtf((float)D);
    const int G = H / Hs;
    float *acc = scb_malloc(sizeof(float) * (size_t)D);
    if (!acc) return scb_err(err, SCB_E_NOMEM, "emulated quest attention: out of memory");
    for (int i = 0; i < nr; i++)
        for (int h = 0; h < H; h++) {
            const int gi = r0 + i, nc = gi + Tk - Tq + 1;
            const uint16_t *qr = q + ((size_t)gi * H + h) * D;
            const int32_t *sl = sel + ((size_t)i * H + h) * kp;
            const uint16_t *kh = k + (size_t)(h / G) * cap * D, *vh = v + (size_t)(h / G) * cap * D;
            float m = -INFINITY, l = 0.f;
            for (int d = 0; d < D; d++) acc[d] = 0.f;
            for (int t = 0; t < kp; t++)
                for (int j = sl[t] * P; j < (sl[t] + 1) * P && j < nc; j++) {
                    float dot = 0.f;
                    for (int d = 0; d < D; d++) dot += BF(qr[d]) * scale * BF(kh[(size_t)j * D + d]);
                    const float mn = fmaxf(m, dot), corr = expf(m - mn), pj = expf(dot - mn);
                    l = l * corr + pj;
                    for (int d = 0; d < D; d++) acc[d] = acc[d] * corr + pj * BF(vh[(size_t)j * D + d]);
                    m = mn;
                }
            uint16_t *o = out + ((size_t)gi * H + h) * D;
            for (int d = 0; d < D; d++) o[d] = scb_bf16_from_f32(l > 0.f ? acc[d] / l : 0.f);
        }
    scb_free(acc);
    return SCB_OK;
}

/* The header's semantics: the key count read now (a replayed graph calls again), the last page's
 * metadata rebuilt, the one-row selection, the attention. */
int scb_cuda_quest_decode_dev_fits(const void *q, int H, int Hs, int D, const void *k, const void *kmin,
                                   const void *kmax)
{
    const int G = Hs > 0 ? H / Hs : 0;
    return q && k && kmin && kmax && H >= 1 && Hs >= 1 && H % Hs == 0 && D >= 8 && D % 8 == 0 && D <= 256 &&
           !(((uintptr_t)q | (uintptr_t)k | (uintptr_t)kmin | (uintptr_t)kmax) & 15u) &&
           sizeof(float) * (size_t)G * D <= 48 * 1024;
}

int scb_cuda_quest_decode_dev(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D, const uint16_t *k,
                              const uint16_t *v, size_t cap, uint16_t *kmin, uint16_t *kmax, int mp,
                              const int32_t *T_dev, int P, int kp, float *ub, int32_t *sel, float scale, float *work,
                              uint16_t *out, struct scb_ctx *err)
{
    if (!scb_cuda_quest_decode_dev_fits(q, H, Hs, D, k, kmin, kmax) || !v || !out || !T_dev || !ub || !sel ||
        !work || P < 1 || mp < 1 || (size_t)mp * P < cap || kp < 1 || kp > mp)
        return scb_err(err, SCB_E_INVAL, "emulated quest decode (device count): bad arguments");
    const int T = *T_dev;
    if (T < 1 || (size_t)T > cap || kp > (T + P - 1) / P)
        return scb_err(err, SCB_E_INVAL, "emulated quest decode (device count): key count %d (cap %zu, kp %d)", T,
                       cap, kp);
    float *w = scb_malloc(sizeof(float) * (size_t)H * D);
    if (!w) return scb_err(err, SCB_E_NOMEM, "emulated quest decode: out of memory");
    int rc = scb_cuda_quest_meta(cc, k, cap, Hs, D, P, T, (T - 1) / P, kmin, kmax, mp, err);
    if (rc == SCB_OK) rc = scb_cuda_quest_signs(cc, q, 1, H, D, w, err);
    if (rc == SCB_OK) rc = scb_cuda_quest_select(cc, q, 0, 1, H, Hs, D, w, kmin, kmax, mp, T, P, kp, ub, sel, err);
    if (rc == SCB_OK) rc = scb_cuda_quest_attn(cc, q, k, v, cap, out, 0, 1, 1, T, H, Hs, D, P, kp, sel, scale, work, err);
    scb_free(w);
    return rc;
}
