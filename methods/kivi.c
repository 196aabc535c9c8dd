/* kivi.c — KIVI quantized KV cache (see kivi.h). */
#include "methods/kivi.h"

#include <math.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/dense.h"

void scb_kivi_quant_group(const float *x, size_t stride, int n, int bits, uint8_t *codes,
                          float *scale, float *mn)
{
    float lo = x[0], hi = x[0];
    for (int i = 1; i < n; i++) {
        float t = x[(size_t)i * stride];
        if (t < lo) lo = t;
        if (t > hi) hi = t;
    }
    float qmax = (float)((1 << bits) - 1);
    float s = (hi - lo) / qmax;
    for (int i = 0; i < n; i++) {
        if (s == 0.0f) { codes[i] = 0; continue; }
        float t = (x[(size_t)i * stride] - lo) / s;
        if (t < 0.0f) t = 0.0f;
        if (t > qmax) t = qmax;
        codes[i] = (uint8_t)nearbyintf(t);      /* default rounding mode: half to even */
    }
    *scale = s;
    *mn = lo;
}

void scb_kivi_pack(const uint8_t *codes, int n, int bits, uint32_t *words)
{
    int per = 32 / bits;
    for (int w = 0; w < n / per; w++) {
        uint32_t x = 0;
        for (int t = 0; t < per; t++) x |= (uint32_t)codes[w * per + t] << (bits * t);
        words[w] = x;
    }
}

void scb_kivi_unpack(const uint32_t *words, int n, int bits, uint8_t *codes)
{
    int per = 32 / bits;
    uint32_t mask = (1u << bits) - 1u;
    for (int i = 0; i < n; i++) codes[i] = (uint8_t)((words[i / per] >> (bits * (i % per))) & mask);
}

static int kwords(const struct scb_kivi_cache *c, int tokens) { return tokens * c->bits / 32; }

static int grow(struct scb_kivi_cache *c, int need, struct scb_ctx *ctx)
{
    if (need <= c->cap) return SCB_OK;
    int nc = c->cap ? c->cap : 256;
    while (nc < need) nc *= 2;
    nc = (nc + c->group - 1) / c->group * c->group;
    int H = c->Hkv, D = c->D, g = c->group;
    size_t rows = (size_t)H * D;
    uint32_t *kc = scb_calloc(rows * kwords(c, nc), sizeof(uint32_t));
    float *ks = scb_calloc(rows * (nc / g), sizeof(float)), *km = scb_calloc(rows * (nc / g), sizeof(float));
    uint32_t *vc = scb_realloc(c->v_codes, sizeof(uint32_t) * (size_t)H * nc * (D * c->bits / 32));
    if (vc) c->v_codes = vc;
    float *vs = vc ? scb_realloc(c->v_scale, sizeof(float) * (size_t)H * nc * (D / g)) : NULL;
    if (vs) c->v_scale = vs;
    float *vm = vs ? scb_realloc(c->v_min, sizeof(float) * (size_t)H * nc * (D / g)) : NULL;
    if (vm) c->v_min = vm;
    if (!kc || !ks || !km || !vc || !vs || !vm) {
        scb_free(kc); scb_free(ks); scb_free(km);
        return scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory growing to %d tokens", nc);
    }
    /* value stores are (Hkv, cap, .): move head blocks from the old stride to the new one */
    size_t vw = (size_t)D * c->bits / 32, vg = (size_t)D / g;
    for (int h = H - 1; h >= 0 && c->cap; h--) {
        memmove(c->v_codes + (size_t)h * nc * vw, c->v_codes + (size_t)h * c->cap * vw, sizeof(uint32_t) * c->cap * vw);
        memmove(c->v_scale + (size_t)h * nc * vg, c->v_scale + (size_t)h * c->cap * vg, sizeof(float) * c->cap * vg);
        memmove(c->v_min + (size_t)h * nc * vg, c->v_min + (size_t)h * c->cap * vg, sizeof(float) * c->cap * vg);
    }
    for (size_t r = 0; r < rows && c->cap; r++) {
        memcpy(kc + r * kwords(c, nc), c->k_codes + r * kwords(c, c->cap), sizeof(uint32_t) * kwords(c, c->cap));
        memcpy(ks + r * (nc / g), c->k_scale + r * (c->cap / g), sizeof(float) * (c->cap / g));
        memcpy(km + r * (nc / g), c->k_min + r * (c->cap / g), sizeof(float) * (c->cap / g));
    }
    scb_free(c->k_codes); scb_free(c->k_scale); scb_free(c->k_min);
    c->k_codes = kc; c->k_scale = ks; c->k_min = km;
    c->cap = nc;
    return SCB_OK;
}

int scb_kivi_cache_create(struct scb_kivi_cache **out, int Hkv, int D, int bits, int group, int R,
                          struct scb_ctx *ctx)
{
    *out = NULL;
    if (Hkv < 1 || D < 1 || (bits != 2 && bits != 4 && bits != 8) || group < 1 || R < 1 ||
        R % group || D % group || group % (32 / bits))
        return scb_err(ctx, SCB_E_INVAL, "kivi: unsupported shape: bits=%d (2, 4 or 8), group=%d must "
                       "divide residual=%d and head dim D=%d, and be a multiple of %d", bits, group, R, D,
                       bits ? 32 / bits : 0);
    struct scb_kivi_cache *c = scb_calloc(1, sizeof *c);
    if (!c) return scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory");
    c->Hkv = Hkv; c->D = D; c->bits = bits; c->group = group; c->R = R;
    c->requant = 1;
    c->res_cap = R + 1;
    c->k_res = scb_malloc(sizeof(float) * (size_t)Hkv * (R + 1) * D);
    c->v_res = scb_malloc(sizeof(float) * (size_t)Hkv * (R + 1) * D);
    int rc = (c->k_res && c->v_res) ? grow(c, 256, ctx) : scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory");
    if (rc) { scb_kivi_cache_destroy(c); return rc; }
    *out = c;
    return SCB_OK;
}

void scb_kivi_cache_destroy(struct scb_kivi_cache *c)
{
    if (!c) return;
    scb_free(c->k_codes); scb_free(c->k_scale); scb_free(c->k_min);
    scb_free(c->v_codes); scb_free(c->v_scale); scb_free(c->v_min);
    scb_free(c->k_res); scb_free(c->v_res);
    scb_free(c);
}

/* Quantize n key tokens src[t] (t < n, token stride ts, head stride hs) at positions Tk_q.. */
static void quant_keys(struct scb_kivi_cache *c, const float *src, size_t ts, size_t hs, int n)
{
    int g = c->group, D = c->D;
    uint8_t codes[256];
    uint32_t words[64];
    for (int h = 0; h < c->Hkv; h++)
        for (int d = 0; d < D; d++) {
            size_t row = (size_t)h * D + d;
            for (int t0 = 0; t0 < n; t0 += g) {
                int gi = (c->Tk_q + t0) / g;
                scb_kivi_quant_group(src + (size_t)t0 * ts + h * hs + d, ts, g, c->bits, codes,
                                     &c->k_scale[row * (c->cap / g) + gi], &c->k_min[row * (c->cap / g) + gi]);
                scb_kivi_pack(codes, g, c->bits, words);
                memcpy(c->k_codes + row * kwords(c, c->cap) + kwords(c, c->Tk_q + t0), words,
                       sizeof(uint32_t) * kwords(c, g));
            }
        }
    c->Tk_q += n;
}

static void quant_values(struct scb_kivi_cache *c, const float *src, size_t ts, size_t hs, int n)
{
    int g = c->group, D = c->D;
    size_t vw = (size_t)D * c->bits / 32, vg = (size_t)D / g;
    uint8_t codes[256];
    for (int h = 0; h < c->Hkv; h++)
        for (int t = 0; t < n; t++) {
            size_t tok = (size_t)h * c->cap + c->Tv_q + t;
            for (int d0 = 0; d0 < D; d0 += g) {
                scb_kivi_quant_group(src + (size_t)t * ts + h * hs + d0, 1, g, c->bits, codes,
                                     &c->v_scale[tok * vg + d0 / g], &c->v_min[tok * vg + d0 / g]);
                scb_kivi_pack(codes, g, c->bits, c->v_codes + tok * vw + (size_t)d0 * c->bits / 32);
            }
        }
    c->Tv_q += n;
}

int scb_kivi_cache_len(const struct scb_kivi_cache *c) { return c->Tk_q + c->nk_r; }

/* Room for n residual tokens per head: the residual buffers (Hkv, res_cap, D) grow (doubling)
 * when the store keeps appended tokens in full precision (requant == 0). */
static int grow_res(struct scb_kivi_cache *c, int n, struct scb_ctx *ctx)
{
    if (n <= c->res_cap) return SCB_OK;
    int nc = c->res_cap;
    while (nc < n) nc *= 2;
    const size_t D = (size_t)c->D;
    float *kr = scb_malloc(sizeof(float) * (size_t)c->Hkv * nc * D);   /* (Hkv, nc, D) */
    float *vr = scb_malloc(sizeof(float) * (size_t)c->Hkv * nc * D);   /* (Hkv, nc, D) */
    if (!kr || !vr) {
        scb_free(kr); scb_free(vr);
        return scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory growing the residual to %d tokens", nc);
    }
    for (int h = 0; h < c->Hkv; h++) {
        memcpy(kr + (size_t)h * nc * D, c->k_res + (size_t)h * c->res_cap * D, sizeof(float) * (size_t)c->nk_r * D);
        memcpy(vr + (size_t)h * nc * D, c->v_res + (size_t)h * c->res_cap * D, sizeof(float) * (size_t)c->nv_r * D);
    }
    scb_free(c->k_res); scb_free(c->v_res);
    c->k_res = kr; c->v_res = vr;
    c->res_cap = nc;
    return SCB_OK;
}

int scb_kivi_cache_prefill(struct scb_kivi_cache *c, const float *k, const float *v, int N,
                           struct scb_ctx *ctx)
{
    if (scb_kivi_cache_len(c) || N < 0) return scb_err(ctx, SCB_E_INVAL, "kivi: prefill into a non-empty cache");
    int rc = grow(c, N + c->R + 1, ctx);
    if (rc) return rc;
    size_t ts = (size_t)c->Hkv * c->D, hs = (size_t)c->D;
    int kq = N - N % c->R, vq = N > c->R ? N - c->R : 0;
    quant_keys(c, k, ts, hs, kq);
    quant_values(c, v, ts, hs, vq);
    c->nk_r = N - kq;
    c->nv_r = N - vq;
    for (int h = 0; h < c->Hkv; h++) {
        for (int t = 0; t < c->nk_r; t++)
            memcpy(c->k_res + ((size_t)h * c->res_cap + t) * c->D, k + (size_t)(kq + t) * ts + h * hs, sizeof(float) * c->D);
        for (int t = 0; t < c->nv_r; t++)
            memcpy(c->v_res + ((size_t)h * c->res_cap + t) * c->D, v + (size_t)(vq + t) * ts + h * hs, sizeof(float) * c->D);
    }
    return SCB_OK;
}

int scb_kivi_cache_append(struct scb_kivi_cache *c, const float *k, const float *v, struct scb_ctx *ctx)
{
    int rc = grow(c, scb_kivi_cache_len(c) + c->R + 2, ctx);
    if (!rc) rc = grow_res(c, (c->nk_r > c->nv_r ? c->nk_r : c->nv_r) + 1, ctx);
    if (rc) return rc;
    size_t rs = (size_t)c->res_cap * c->D;   /* residual head stride */
    for (int h = 0; h < c->Hkv; h++) {
        memcpy(c->k_res + h * rs + (size_t)c->nk_r * c->D, k + (size_t)h * c->D, sizeof(float) * c->D);
        memcpy(c->v_res + h * rs + (size_t)c->nv_r * c->D, v + (size_t)h * c->D, sizeof(float) * c->D);
    }
    c->nk_r++; c->nv_r++;
    if (c->requant && c->nk_r > c->R) {
        quant_keys(c, c->k_res, (size_t)c->D, rs, c->R);
        for (int h = 0; h < c->Hkv; h++) memmove(c->k_res + h * rs, c->k_res + h * rs + (size_t)c->R * c->D, sizeof(float) * c->D);
        c->nk_r = 1;
    }
    if (c->requant && c->nv_r > c->R) {
        quant_values(c, c->v_res, (size_t)c->D, rs, c->R);
        for (int h = 0; h < c->Hkv; h++) memmove(c->v_res + h * rs, c->v_res + h * rs + (size_t)c->R * c->D, sizeof(float) * c->D);
        c->nv_r = 1;
    }
    return SCB_OK;
}

/* Dequantize head h into k (T, D), v (T, D) rows (token stride ts, base pointers of head). */
static void dequant_head(const struct scb_kivi_cache *c, int h, float *k, float *v, size_t ts)
{
    int g = c->group, D = c->D;
    uint8_t codes[256];
    size_t rs = (size_t)c->res_cap * D;
    for (int d = 0; d < D; d++) {
        size_t row = (size_t)h * D + d;
        for (int t0 = 0; t0 < c->Tk_q; t0 += g) {
            scb_kivi_unpack(c->k_codes + row * kwords(c, c->cap) + kwords(c, t0), g, c->bits, codes);
            float s = c->k_scale[row * (c->cap / g) + t0 / g], mn = c->k_min[row * (c->cap / g) + t0 / g];
            for (int t = 0; t < g; t++) k[(size_t)(t0 + t) * ts + d] = (float)codes[t] * s + mn;
        }
    }
    for (int t = 0; t < c->nk_r; t++) memcpy(k + (size_t)(c->Tk_q + t) * ts, c->k_res + h * rs + (size_t)t * D, sizeof(float) * D);
    size_t vw = (size_t)D * c->bits / 32, vg = (size_t)D / g;
    for (int t = 0; t < c->Tv_q; t++) {
        size_t tok = (size_t)h * c->cap + t;
        for (int d0 = 0; d0 < D; d0 += g) {
            scb_kivi_unpack(c->v_codes + tok * vw + (size_t)d0 * c->bits / 32, g, c->bits, codes);
            float s = c->v_scale[tok * vg + d0 / g], mn = c->v_min[tok * vg + d0 / g];
            for (int d = 0; d < g; d++) v[(size_t)t * ts + d0 + d] = (float)codes[d] * s + mn;
        }
    }
    for (int t = 0; t < c->nv_r; t++) memcpy(v + (size_t)(c->Tv_q + t) * ts, c->v_res + h * rs + (size_t)t * D, sizeof(float) * D);
}

void scb_kivi_cache_dequant(const struct scb_kivi_cache *c, float *k, float *v)
{
    for (int h = 0; h < c->Hkv; h++)
        dequant_head(c, h, k + (size_t)h * c->D, v + (size_t)h * c->D, (size_t)c->Hkv * c->D);
}

int scb_kivi_cache_attn(const struct scb_kivi_cache *c, const float *q, int Hq, float scale,
                        const float *extra_k, const float *extra_v, int n_extra,
                        float *out, float *lse, struct scb_ctx *ctx)
{
    if (Hq % c->Hkv) return scb_err(ctx, SCB_E_INVAL, "kivi: Hq=%d not a multiple of Hkv=%d", Hq, c->Hkv);
    int T = scb_kivi_cache_len(c), n = T + n_extra, D = c->D, G = Hq / c->Hkv;
    if (scale == 0.0f) scale = (float)(1.0 / sqrt((double)D));
    float *k = scb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * D);
    float *v = scb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * D);
    double *scr = scb_malloc(sizeof(double) * ((size_t)n + D + 1));
    int rc = SCB_OK;
    if (!k || !v || !scr) { rc = scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory"); goto out; }
    for (int g = 0; g < c->Hkv; g++) {
        dequant_head(c, g, k, v, (size_t)D);
        for (int t = 0; t < n_extra; t++) {
            memcpy(k + (size_t)(T + t) * D, extra_k + ((size_t)t * c->Hkv + g) * D, sizeof(float) * D);
            memcpy(v + (size_t)(T + t) * D, extra_v + ((size_t)t * c->Hkv + g) * D, sizeof(float) * D);
        }
        for (int h = g * G; h < g * G + G; h++)
            scb_attn_row_ref(q + (size_t)h * D, k, v, (size_t)D, NULL, n, D, scale, scr,
                             out + (size_t)h * D, lse ? lse + h : NULL);
    }
out:
    scb_free(k); scb_free(v); scb_free(scr);
    return rc;
}

int64_t scb_kivi_bytes(int64_t N, int64_t T, int Hkv, int D, int bits, int group, int R, int requant,
                       int elt_bytes, int scale_bytes)
{
    int64_t kq = N - N % R, vq = N > R ? N - R : 0, nk = N - kq, nv = N - vq;
    for (int64_t t = N; t < T; t++) {
        if (++nk > R && requant) { kq += R; nk = 1; }
        if (++nv > R && requant) { vq += R; nv = 1; }
    }
    int64_t codes = (kq + vq) * D * bits / 8;
    int64_t meta = 2 * (kq * D / group + vq * D / group) * scale_bytes;
    int64_t res = (nk + nv) * D * (int64_t)elt_bytes;
    return (int64_t)Hkv * (codes + meta + res);
}

int64_t scb_kivi_cache_bytes(const struct scb_kivi_cache *c, int elt_bytes, int scale_bytes)
{
    int64_t codes = ((int64_t)c->Tk_q + c->Tv_q) * c->D * c->bits / 8;
    int64_t meta = 2 * ((int64_t)c->Tk_q * c->D / c->group + (int64_t)c->Tv_q * c->D / c->group) * scale_bytes;
    int64_t res = ((int64_t)c->nk_r + c->nv_r) * c->D * elt_bytes;
    return (int64_t)c->Hkv * (codes + meta + res);
}

/* ---- method entry ---------------------------------------------------------------------------
 * State: one scb_kivi_cache per layer holding the GLOBAL segment. decode_attn first appends the
 * global tokens the engine has that the cache lacks (one at a time, as SCBench feeds follow-ups),
 * then attends over dequantized cache + the temp segment in full precision. */
struct kivi_priv { int bits, group, residual, requant; };

static const struct scb_option kivi_opts[] = {
    {"bits", SCB_OPT_INT, offsetof(struct kivi_priv, bits), "2", 2, 8, NULL,
     "bits per code for keys and values (2 or 4; 8 also accepted)"},
    {"group", SCB_OPT_INT, offsetof(struct kivi_priv, group), "32", 1, 256, NULL,
     "quantization group: tokens per key group, channels per value group"},
    {"residual", SCB_OPT_INT, offsetof(struct kivi_priv, residual), "32", 1, 1e6, NULL,
     "full-precision residual window (tokens)"},
    {"requant", SCB_OPT_BOOL, offsetof(struct kivi_priv, requant), "false", 0, 0, NULL,
     "also quantize tokens appended after the first prefill, R at a time as the residual "
     "overflows (the KIVI paper; MInference's legacy_update). Default false: SCBench's "
     "KiviCache.update quantizes the first prefill only"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int kivi_check(const struct kivi_priv *p, int D, struct scb_ctx *ctx)
{
    if ((p->bits != 2 && p->bits != 4 && p->bits != 8) || p->residual % p->group ||
        (D > 0 && D % p->group) || p->group % (32 / p->bits))
        return scb_err(ctx, SCB_E_INVAL, "kivi: bits=%d must be 2, 4 or 8; group=%d must divide residual=%d "
                       "and the head dim %d", p->bits, p->group, p->residual, D);
    return SCB_OK;
}

static int kivi_init(struct scb_method *m, struct scb_ctx *ctx)
{
    int rc = kivi_check(m->priv, m->mi.D, ctx);
    if (rc) return rc;
    m->state = scb_calloc((size_t)m->mi.L, sizeof(struct scb_kivi_cache *));
    return m->state ? SCB_OK : scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory");
}

static void kivi_fini(struct scb_method *m)
{
    struct scb_kivi_cache **cs = m->state;
    if (!cs) return;
    for (int l = 0; l < m->mi.L; l++) scb_kivi_cache_destroy(cs[l]);
    scb_free(cs);
    m->state = NULL;
}

static int kivi_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                              struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    const struct kivi_priv *p = m->priv;
    struct scb_kivi_cache **cs = m->state;
    if (!cs || a->layer < 0 || a->layer >= m->mi.L)
        return scb_err(ctx, SCB_E_INVAL, "kivi: layer %d outside the model (or init not called)", a->layer);
    scb_kivi_cache_destroy(cs[a->layer]);
    cs[a->layer] = NULL;
    int rc = scb_kivi_cache_create(&cs[a->layer], a->Hkv, a->D, p->bits, p->group, p->residual, ctx);
    if (!rc) cs[a->layer]->requant = p->requant;
    if (!rc) rc = scb_kivi_cache_prefill(cs[a->layer], a->k, a->v, a->N, ctx);
    if (!rc) rc = scb_kv_keep_init(keep, a->Hkv, 1, a->N, ctx);
    if (!rc) scb_kv_keep_all(keep);
    return rc;
}

static int kivi_decode(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    struct scb_attn_view vw;
    int rc = scb_attn_view(a, &vw, ctx);
    if (rc) return rc;
    struct scb_kivi_cache **cs = m->state;
    struct scb_kivi_cache *c = cs && a->layer >= 0 && a->layer < m->mi.L ? cs[a->layer] : NULL;
    if (!c) return scb_attn_dense_ref(a, ctx);       /* no first prefill yet: nothing quantized */
    int Tg = a->Tk_global > 0 ? a->Tk_global : a->Tk;
    int H = a->Hkv, D = a->D;
    float *kt = scb_malloc(sizeof(float) * (size_t)(a->Tk + 1) * H * D);
    float *vt = scb_malloc(sizeof(float) * (size_t)(a->Tk + 1) * H * D);
    if (!kt || !vt) { rc = scb_err(ctx, SCB_E_NOMEM, "kivi: out of memory"); goto out; }
    for (int i = 0; i < a->Tq; i++) {
        int nc = i + a->Tk - a->Tq + 1;              /* causal keys of row i */
        int g_end = nc < Tg ? nc : Tg;
        while (scb_kivi_cache_len(c) < g_end) {       /* append global tokens one at a time */
            int t = scb_kivi_cache_len(c);
            for (int g = 0; g < H; g++) {
                memcpy(kt + (size_t)g * D, a->k + (size_t)t * vw.ts + g * vw.hs, sizeof(float) * D);
                memcpy(vt + (size_t)g * D, a->v + (size_t)t * vw.ts + g * vw.hs, sizeof(float) * D);
            }
            SCB_TRY(scb_kivi_cache_append(c, kt, vt, ctx));
        }
        if (scb_kivi_cache_len(c) > g_end) {
            rc = scb_err(ctx, SCB_E_INVAL, "kivi: the quantized cache holds %d tokens but row %d sees only %d "
                         "global keys (was the global segment shortened?)", scb_kivi_cache_len(c), i, g_end);
            goto out;
        }
        int ne = nc - g_end;                          /* temp tokens, full precision */
        for (int t = 0; t < ne; t++)
            for (int g = 0; g < H; g++) {
                memcpy(kt + ((size_t)t * H + g) * D, a->k + (size_t)(g_end + t) * vw.ts + g * vw.hs, sizeof(float) * D);
                memcpy(vt + ((size_t)t * H + g) * D, a->v + (size_t)(g_end + t) * vw.ts + g * vw.hs, sizeof(float) * D);
            }
        SCB_TRY(scb_kivi_cache_attn(c, a->q + (size_t)i * a->Hq * D, a->Hq, vw.scale, kt, vt, ne,
                                    a->out + (size_t)i * a->Hq * D, a->lse ? a->lse + (size_t)i * a->Hq : NULL, ctx));
    }
    a->density = 1.0;
out:
    scb_free(kt); scb_free(vt);
    return rc;
}

static void kivi_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct kivi_priv *p = m->priv;
    const struct scb_model_info *mi = cq->mi;
    scb_method_cost_dense(cq, out);
    out->kv_bytes = (int64_t)mi->L * scb_kivi_bytes(cq->N, cq->T, mi->Hkv, mi->D, p->bits, p->group,
                                                    p->residual, p->requant, cq->elt_bytes, 2);
    out->kv_bytes_device = out->kv_bytes;
    out->read_bytes_step = out->kv_bytes;
}

const struct scb_method_ops scb_method_kivi = {
    .abi = SCB_METHOD_ABI, .name = "kivi", .stage = SCB_STAGE_COMPRESSION,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_KV_QUANT,
    .summary = "2-bit asymmetric KV quantization: keys per channel, values per token, 32-token full-precision residual",
    .scbench_name = "dense;kivi",
    .priv_size = sizeof(struct kivi_priv), .options = kivi_opts,
    .init = kivi_init, .kv_after_prefill = kivi_after_prefill, .decode_attn = kivi_decode,
    .cost = kivi_cost, .fini = kivi_fini,
};

const struct scb_kivi_cache *scb_kivi_method_cache(const struct scb_method *m, int layer)
{
    if (!m || m->ops != &scb_method_kivi || !m->state || layer < 0 || layer >= m->mi.L) return NULL;
    return ((struct scb_kivi_cache *const *)m->state)[layer];
}
