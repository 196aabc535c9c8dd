/* cuda_host_emul_kivi.c — host emulation of the KIVI launchers of kernels/kivi_cuda.h for
 * `scbench_cuda_emul` (see cuda_host_emul.c), written from the header's semantics: the
 * quantizer of methods/kivi.c on the fp32 values of the bf16 inputs, the documented store
 * layout, attention with fp32 scores and one bf16 rounding of the output. It lets CI run the
 * device binding's logic (harness/method_dev_kivi.c: schedule, flushes, temp tokens, costs);
 * tests/parity_cuda_kivi.c checks the real kernels on a GPU. */
#include "kernels/kivi_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/kivi.h"

void scb_kivi_cuda_store_bytes(int Hkv, int D, int bits, int group, int cap, size_t *codes, size_t *meta)
{
    *codes = scb_kivi_code_words(Hkv, D, bits, cap) * sizeof(uint32_t);
    *meta = (size_t)Hkv * D * (cap / group) * sizeof(float);
}

size_t scb_kivi_attn_cuda_work_floats(int Hq, int D) { return (size_t)SCB_KIVI_MAX_SPLITS * Hq * (D + 2); }

static int check_store(const struct scb_kivi_cuda_store *s, const char *what, struct scb_ctx *err)
{
    if (!s || !s->k_codes || !s->v_codes || s->Hkv < 1 || s->D < 2 || s->D % 2 || s->D > 256 ||
        (s->bits != 2 && s->bits != 4 && s->bits != 8) || s->group < 1 || s->D % s->group ||
        s->group % (32 / s->bits) || s->cap < 0 || s->cap % s->group)
        return scb_err(err, SCB_E_INVAL, "emulated kivi %s: bad store", what);
    return SCB_OK;
}

/* Store one code at its place in the tiled layout (scb_kivi_code_pos). */
static void put_code(uint32_t *codes, const struct scb_kivi_cuda_store *s, int keys, int h, int t, int d, uint8_t c)
{
    int bit;
    const size_t w = scb_kivi_code_pos(keys, s->D, s->cap, s->bits, h, t, d, &bit);
    const uint32_t mask = ((1u << s->bits) - 1u) << bit;
    codes[w] = (codes[w] & ~mask) | ((uint32_t)c << bit);
}

static int quant(const struct scb_kivi_cuda_store *s, const uint16_t *x, size_t kcap, int t0, int n, int keys,
                 struct scb_ctx *err)
{
    int rc = check_store(s, keys ? "quant keys" : "quant values", err);
    if (rc) return rc;
    if (!x || t0 < 0 || n < 0 || (size_t)t0 + n > kcap || t0 + n > s->cap || (keys && (t0 % s->group || n % s->group)))
        return scb_err(err, SCB_E_INVAL, "emulated kivi quant: tokens %d..%d outside the store", t0, t0 + n);
    const int D = s->D, g = s->group;
    float buf[256];
    uint8_t codes[256];
    for (int h = 0; h < s->Hkv; h++) {
        if (keys) {
            for (int d = 0; d < D; d++) {
                size_t row = (size_t)h * D + d;
                for (int gi = t0 / g; gi < (t0 + n) / g; gi++) {
                    for (int i = 0; i < g; i++) buf[i] = scb_bf16_to_f32(x[((size_t)h * kcap + (size_t)gi * g + i) * D + d]);
                    size_t m = row * (s->cap / g) + gi;
                    scb_kivi_quant_group(buf, 1, g, s->bits, codes, &s->k_scale[m], &s->k_min[m]);
                    for (int i = 0; i < g; i++) put_code(s->k_codes, s, 1, h, gi * g + i, d, codes[i]);
                }
            }
        } else {
            for (int t = t0; t < t0 + n; t++) {
                size_t tok = (size_t)h * s->cap + t;
                for (int c = 0; c < D / g; c++) {
                    for (int i = 0; i < g; i++) buf[i] = scb_bf16_to_f32(x[((size_t)h * kcap + t) * D + (size_t)c * g + i]);
                    size_t m = tok * (D / g) + c;
                    scb_kivi_quant_group(buf, 1, g, s->bits, codes, &s->v_scale[m], &s->v_min[m]);
                    for (int i = 0; i < g; i++) put_code(s->v_codes, s, 0, h, t, c * g + i, codes[i]);
                }
            }
        }
    }
    return SCB_OK;
}

int scb_kivi_cuda_quant_keys(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, const uint16_t *k,
                             size_t kcap, int t0, int n, struct scb_ctx *err)
{
    (void)cc;
    return quant(s, k, kcap, t0, n, 1, err);
}

int scb_kivi_cuda_quant_values(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, const uint16_t *v,
                               size_t kcap, int t0, int n, struct scb_ctx *err)
{
    (void)cc;
    return quant(s, v, kcap, t0, n, 0, err);
}

static float code_at(const uint32_t *codes, const struct scb_kivi_cuda_store *s, int keys, int h, int t, int d)
{
    int bit;
    const size_t w = scb_kivi_code_pos(keys, s->D, s->cap, s->bits, h, t, d, &bit);
    return (float)((codes[w] >> bit) & ((1u << s->bits) - 1u));
}

static float key_at(const struct scb_kivi_cuda_store *s, int h, int t, int d)
{
    size_t row = (size_t)h * s->D + d, m = row * (s->cap / s->group) + t / s->group;
    return code_at(s->k_codes, s, 1, h, t, d) * s->k_scale[m] + s->k_min[m];
}

static float value_at(const struct scb_kivi_cuda_store *s, int h, int t, int d)
{
    size_t tok = (size_t)h * s->cap + t, m = tok * (s->D / s->group) + d / s->group;
    return code_at(s->v_codes, s, 0, h, t, d) * s->v_scale[m] + s->v_min[m];
}

int scb_kivi_cuda_dequant(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int nk, int nv,
                          float *k, float *v, struct scb_ctx *err)
{
    (void)cc;
    int rc = check_store(s, "dequant", err);
    if (rc) return rc;
    if (!k || !v || nk < 0 || nv < 0 || nk > s->cap || nv > s->cap)
        return scb_err(err, SCB_E_INVAL, "emulated kivi dequant: bad counts");
    for (int h = 0; h < s->Hkv; h++)
        for (int d = 0; d < s->D; d++) {
            for (int t = 0; t < nk; t++) k[((size_t)h * nk + t) * s->D + d] = key_at(s, h, t, d);
            for (int t = 0; t < nv; t++) v[((size_t)h * nv + t) * s->D + d] = value_at(s, h, t, d);
        }
    return SCB_OK;
}

int scb_kivi_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                       const struct scb_kivi_attn_cuda_args *a, struct scb_ctx *err)
{
    int rc = check_store(s, "attention", err);
    if (rc) return rc;
    if (!a || !a->q || !a->k || !a->v || !a->out || !a->work || a->n < 0 || (size_t)a->n > a->kcap ||
        a->Tk_q < 0 || a->Tv_q < 0 || a->Tk_q > a->n || a->Tv_q > a->n || a->Tk_q > s->cap || a->Tv_q > s->cap ||
        a->Hq < 1 || a->Hq % s->Hkv || a->Hq / s->Hkv > 16 || a->kernel < 0 || a->kernel == 2 || a->kernel == 3 || a->kernel > 4)
        return scb_err(err, SCB_E_INVAL, "emulated kivi attention: bad arguments");
    const char *ev = getenv("SCB_KIVI_ATTN");   /* both kernels compute the same function */
    if (ev && strcmp(ev, "v1") && strcmp(ev, "v4"))
        return scb_err(err, SCB_E_INVAL, "emulated kivi attention: SCB_KIVI_ATTN=%s (expected v1 or v4)", ev);
    if (a->n_dev && !scb_kivi_attn_cuda_dev_fits(cc, s, a->Hq, a->Tk_q, a->n, NULL))
        return scb_err(err, SCB_E_INVAL, "emulated kivi attention: a device key count needs kernel v4");
    /* a device key count is read when the "kernel runs": here, now (a replayed graph calls again) */
    const int D = s->D, G = a->Hq / s->Hkv, n = a->n_dev ? *a->n_dev : a->n;
    if (n < 0 || (size_t)n > a->kcap || a->Tk_q > n || a->Tv_q > n)
        return scb_err(err, SCB_E_INVAL, "emulated kivi attention: device key count %d outside [max(Tk_q, Tv_q), "
                       "kcap]", n);
    const float scale = a->scale != 0.0f ? a->scale : 1.0f / sqrtf((float)D);
    float *sc = scb_malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!sc) return scb_err(err, SCB_E_NOMEM, "emulated kivi attention: out of memory");
    for (int h = 0; h < a->Hq; h++) {
        const int g = h / G;
        float q[256], o[256];
        for (int d = 0; d < D; d++) { q[d] = scb_bf16_to_f32(a->q[(size_t)h * D + d]); o[d] = 0.0f; }
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            float dot = 0.0f;
            for (int d = 0; d < D; d++)
                dot += q[d] * (j < a->Tk_q ? key_at(s, g, j, d) : scb_bf16_to_f32(a->k[((size_t)g * a->kcap + j) * D + d]));
            sc[j] = dot * scale;
            if (sc[j] > mx) mx = sc[j];
        }
        float l = 0.0f;
        for (int j = 0; j < n; j++) {
            float p = expf(sc[j] - mx);
            l += p;
            for (int d = 0; d < D; d++)
                o[d] += p * (j < a->Tv_q ? value_at(s, g, j, d) : scb_bf16_to_f32(a->v[((size_t)g * a->kcap + j) * D + d]));
        }
        for (int d = 0; d < D; d++) a->out[(size_t)h * D + d] = scb_bf16_from_f32(n ? o[d] / l : 0.0f);
        if (a->lse) a->lse[h] = n ? mx + logf(l) : -INFINITY;
    }
    scb_free(sc);
    return SCB_OK;
}

/* The real launcher's rule (kernels/kivi_cuda.h): kernel v4 for D 128, 2 or 4 bits, Hq/Hkv <= 8,
 * groups of 32/64/128, Tk_q % 32 == 0, SCB_KIVI_ATTN not v1; the partitions of one full wave of 3
 * blocks per SM on a 132-SM card, at most one 32-key step per warp of 4 (the graph key only). */
int scb_kivi_attn_cuda_dev_fits(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int Hq, int Tk_q,
                                int n, int *splits)
{
    (void)cc;
    if (splits) *splits = 0;
    if (!s || s->Hkv < 1 || Hq < 1 || Hq % s->Hkv || Tk_q < 0 || n < 0) return 0;
    const char *ev = getenv("SCB_KIVI_ATTN");
    if (ev && !strcmp(ev, "v1")) return 0;
    if (s->D != 128 || (s->bits != 2 && s->bits != 4) || Hq / s->Hkv > 8 ||
        (s->group != 32 && s->group != 64 && s->group != 128) || Tk_q % 32)
        return 0;
    int b = 3 * 132 / s->Hkv, cap = ((n + 31) / 32 + 3) / 4;
    if (b > SCB_KIVI_MAX_SPLITS) b = SCB_KIVI_MAX_SPLITS;
    if (b > cap) b = cap;
    if (splits) *splits = b < 1 ? 1 : b;
    return 1;
}
