/* parity_cuda_kivi.c — the KIVI device kernels (kernels/kivi_cuda.h) against the CPU reference
 * of methods/kivi.c on a grid of shapes (suite 'cuda'; exit 77 without a CUDA device).
 *
 * Each case: a layer's cache storage (Hkv, kcap, D) of seeded random bf16 keys/values; the CPU
 * reference cache (scb_kivi_cache) takes a first prefill of N tokens and M appended tokens (the
 * fp32 values of the same bf16 numbers), the device store quantizes the same token ranges in
 * the same chunks the device binding uses (the prefill's prefix, then R tokens per flush).
 * Checked, with outputs NaN-poisoned first:
 * - quantize + dequantize: the device store dequantized equals scb_kivi_cache_dequant BIT FOR BIT
 *   (tolerance 0: the same fp32 operations — min/max, IEEE subtraction and division, rint half to
 *   even, multiply then add without fusing — on the same inputs);
 * - attention, kernels v1 and v4 (v4 = tensor cores; "kernel 4 asked" on shapes outside v4
 *   checks the fallback to v1): one query row per head over the store + residual + n_extra temp
 *   tokens against scb_kivi_cache_attn (double softmax): rel L2 1e-2 on out (one bf16 rounding
 *   of the output, 2^-9, plus fp32 vs double accumulation; v4's key factors q s are bf16 hi + lo,
 *   ~2^-16 relative, its value weights p s one bf16 each, 2^-9 relative, as FlashAttention rounds
 *   P (measured: out rel ~4e-3), its codes exact in bf16 with a +128 offset taken back out by
 *   exact products, so the same bound holds; a wrong code, scale, head, fragment or mask gives
 *   order-1 errors), abs 1e-3 on lse (fp32 scores);
 * - argument checks (SCB_E_INVAL).
 * --bench times the attention at 32K and 128K keys on Llama-3-8B's attention shape (Hq 32, Hkv 8,
 * D 128) for 2/4/8 bits, kernels v1 and v4 (and v4's output against v1's), v4 over a range of
 * partition counts, next to the dense split-K decode kernel and the bytes each reads. */
#include "kernels/kivi_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "tests/parity_util.h"
#include "methods/kivi.h"






static void report(const char *name, int ok, const char *detail)
{
    printf("  %-72s %s  %s\n", name, detail, ok ? "ok" : "FAIL");
    if (ok) g_pass++; else g_fail++;
}

struct store_dev {
    struct scb_kivi_cuda_store s;
};

static void store_alloc(struct scb_kivi_cuda_store *s, int Hkv, int D, int bits, int group, int cap)
{
    size_t codes, meta;
    memset(s, 0, sizeof *s);
    s->Hkv = Hkv; s->D = D; s->bits = bits; s->group = group; s->cap = cap;
    scb_kivi_cuda_store_bytes(Hkv, D, bits, group, cap, &codes, &meta);
    s->k_codes = dev_alloc(codes); s->v_codes = dev_alloc(codes);
    s->k_scale = dev_alloc(meta); s->k_min = dev_alloc(meta);
    s->v_scale = dev_alloc(meta); s->v_min = dev_alloc(meta);
    CK(scb_cuda_fill32(g_cc, s->k_codes, 0xffffffffu, codes / 4, &g_err));
    CK(scb_cuda_fill32(g_cc, s->v_codes, 0xffffffffu, codes / 4, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)s->k_scale, F32_NAN, meta / 4, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)s->k_min, F32_NAN, meta / 4, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)s->v_scale, F32_NAN, meta / 4, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)s->v_min, F32_NAN, meta / 4, &g_err));
}

static void store_free(struct scb_kivi_cuda_store *s)
{
    scb_cuda_free(g_cc, s->k_codes); scb_cuda_free(g_cc, s->v_codes);
    scb_cuda_free(g_cc, s->k_scale); scb_cuda_free(g_cc, s->k_min);
    scb_cuda_free(g_cc, s->v_scale); scb_cuda_free(g_cc, s->v_min);
}

struct kcase {
    int Hq, Hkv, D, bits, group, R;
    int N, M, n_extra;   /* first prefill, appended global tokens, temp tokens */
    int n_splits;
};

static void run_case(const struct kcase *c)
{
    const int Hq = c->Hq, Hkv = c->Hkv, D = c->D, R = c->R;
    const int T = c->N + c->M, n = T + c->n_extra;
    const size_t kcap = (size_t)n + 3;
    const int cap = (int)((kcap + c->group - 1) / c->group * c->group);
    const size_t nkv = (size_t)Hkv * kcap * D;
    char name[200], detail[160];
    snprintf(name, sizeof name, "Hq=%d Hkv=%d D=%d bits=%d group=%d R=%d N=%d M=%d temp=%d splits=%d", Hq, Hkv,
             D, c->bits, c->group, R, c->N, c->M, c->n_extra, c->n_splits);
    printf("%s\n", name);
    uint16_t *hk = host_alloc(nkv * 2), *hv = host_alloc(nkv * 2), *hq = host_alloc((size_t)Hq * D * 2);
    float *fq = host_alloc((size_t)Hq * D * 4);
    for (size_t i = 0; i < nkv; i++) {
        hk[i] = scb_bf16_from_f32(rng_normal() * 1.5f + ((i / D) % 7 == 0 ? 2.0f : 0.0f));
        hv[i] = scb_bf16_from_f32(rng_normal());
    }
    for (size_t i = 0; i < (size_t)Hq * D; i++) { hq[i] = scb_bf16_from_f32(rng_normal()); fq[i] = scb_bf16_to_f32(hq[i]); }
    /* token-major fp32 views for the CPU cache: (tokens, Hkv, D) */
    float *tk = host_alloc((size_t)n * Hkv * D * 4), *tv = host_alloc((size_t)n * Hkv * D * 4);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < Hkv; h++)
            for (int d = 0; d < D; d++) {
                tk[((size_t)t * Hkv + h) * D + d] = scb_bf16_to_f32(hk[((size_t)h * kcap + t) * D + d]);
                tv[((size_t)t * Hkv + h) * D + d] = scb_bf16_to_f32(hv[((size_t)h * kcap + t) * D + d]);
            }
    struct scb_kivi_cache *ref = NULL;
    CK(scb_kivi_cache_create(&ref, Hkv, D, c->bits, c->group, R, &g_err));
    CK(scb_kivi_cache_prefill(ref, tk, tv, c->N, &g_err));

    uint16_t *dk = dev_alloc(nkv * 2), *dv = dev_alloc(nkv * 2), *dq = dev_alloc((size_t)Hq * D * 2);
    CK(scb_cuda_upload(g_cc, dk, hk, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dv, hv, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dq, hq, (size_t)Hq * D * 2, &g_err));
    struct scb_kivi_cuda_store s;
    store_alloc(&s, Hkv, D, c->bits, c->group, cap);
    /* the binding's schedule: the prefill's prefix, then one flush of R tokens at a time */
    int Tk_q = ref->Tk_q, Tv_q = ref->Tv_q;
    CK(scb_kivi_cuda_quant_keys(g_cc, &s, dk, kcap, 0, Tk_q, &g_err));
    CK(scb_kivi_cuda_quant_values(g_cc, &s, dv, kcap, 0, Tv_q, &g_err));
    for (int t = c->N; t < T; t++) {
        CK(scb_kivi_cache_append(ref, tk + (size_t)t * Hkv * D, tv + (size_t)t * Hkv * D, &g_err));
        if (ref->Tk_q > Tk_q) { CK(scb_kivi_cuda_quant_keys(g_cc, &s, dk, kcap, Tk_q, R, &g_err)); Tk_q += R; }
        if (ref->Tv_q > Tv_q) { CK(scb_kivi_cuda_quant_values(g_cc, &s, dv, kcap, Tv_q, R, &g_err)); Tv_q += R; }
    }
    if (Tk_q != ref->Tk_q || Tv_q != ref->Tv_q) die("schedule mismatch");

    /* dequantized store vs the reference, bit for bit */
    {
        float *rk = host_alloc((size_t)T * Hkv * D * 4), *rv = host_alloc((size_t)T * Hkv * D * 4);
        scb_kivi_cache_dequant(ref, rk, rv);
        size_t nk = (size_t)Hkv * Tk_q * D, nv = (size_t)Hkv * Tv_q * D;
        float *gk = dev_alloc(nk * 4 + 4), *gv = dev_alloc(nv * 4 + 4);
        float *hk2 = host_alloc(nk * 4), *hv2 = host_alloc(nv * 4);
        CK(scb_cuda_fill32(g_cc, (uint32_t *)gk, F32_NAN, nk + 1, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)gv, F32_NAN, nv + 1, &g_err));
        CK(scb_kivi_cuda_dequant(g_cc, &s, Tk_q, Tv_q, gk, gv, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hk2, gk, nk * 4, &g_err));
        CK(scb_cuda_download(g_cc, hv2, gv, nv * 4, &g_err));
        size_t badk = 0, badv = 0;
        for (int h = 0; h < Hkv; h++)
            for (int t = 0; t < T; t++)
                for (int d = 0; d < D; d++) {
                    float r1 = rk[((size_t)t * Hkv + h) * D + d], r2 = rv[((size_t)t * Hkv + h) * D + d];
                    if (t < Tk_q && memcmp(&r1, &hk2[((size_t)h * Tk_q + t) * D + d], 4)) badk++;
                    if (t < Tv_q && memcmp(&r2, &hv2[((size_t)h * Tv_q + t) * D + d], 4)) badv++;
                }
        snprintf(detail, sizeof detail, "keys %zu/%zu, values %zu/%zu bits differ", badk, nk, badv, nv);
        report("  quantize + dequantize (bit exact)", badk == 0 && badv == 0, detail);
        scb_cuda_free(g_cc, gk); scb_cuda_free(g_cc, gv);
        scb_free(rk); scb_free(rv); scb_free(hk2); scb_free(hv2);
    }

    /* attention vs scb_kivi_cache_attn over cache + temp tokens */
    {
        float *ro = host_alloc((size_t)Hq * D * 4), *rl = host_alloc((size_t)Hq * 4);
        const float scale = 1.0f / sqrtf((float)D);
        CK(scb_kivi_cache_attn(ref, fq, Hq, scale, tk + (size_t)T * Hkv * D, tv + (size_t)T * Hkv * D, c->n_extra,
                               ro, rl, &g_err));
        uint16_t *dout = dev_alloc((size_t)Hq * D * 2);
        float *dlse = dev_alloc((size_t)Hq * 4);
        float *work = dev_alloc(scb_kivi_attn_cuda_work_floats(Hq, D) * 4);
        CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse, F32_NAN, (size_t)Hq, &g_err));
      for (int kern = 1; kern <= 4; kern += 3) {
        CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse, F32_NAN, (size_t)Hq, &g_err));
        struct scb_kivi_attn_cuda_args a = {dq, dk, dv, kcap, Tk_q, Tv_q, n, Hq, scale, dout, dlse, work, c->n_splits,
                                            kern};
        CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        double rel, lmax;
        const int finite = compare_out_lse(dout, dlse, ro, rl, Hq, D, &rel, &lmax);
        snprintf(detail, sizeof detail, "out rel %.2e (tol 1e-2), lse maxabs %.2e (tol 1e-3)%s", rel, lmax,
                 finite ? "" : " NONFINITE");
        const int v4_fits = D == 128 && c->bits <= 4 && Hq / Hkv <= 8 && (c->group == 32 || c->group == 64 ||
                                                                          c->group == 128);
        report(kern == 1  ? "  attention, kernel v1 (store + residual + temp)"
               : v4_fits ? "  attention, kernel v4 tensor cores, warp streams (store + residual + temp)"
                         : "  attention, kernel 4 asked, shape outside v4: v1 runs",
               finite && rel <= 1e-2 && lmax <= 1e-3, detail);
        if (kern == 4 && v4_fits) {
            /* the graph form: the key count read from the device. Sized for n it must equal the
             * host-count launch bit for bit; sized for fewer keys (a graph recorded at an earlier
             * step, the cache grown since) it must still match the reference */
            const int fits = scb_kivi_attn_cuda_dev_fits(g_cc, &s, Hq, Tk_q, n, NULL);
            report("  scb_kivi_attn_cuda_dev_fits agrees (v4 shape)", fits == (Tk_q % 32 == 0), "");
            if (fits) {
                uint16_t *h_host = host_alloc((size_t)Hq * D * 2), *h_dev = host_alloc((size_t)Hq * D * 2);
                int32_t *dn = dev_alloc(4);
                CK(scb_cuda_download(g_cc, h_host, dout, (size_t)Hq * D * 2, &g_err));
                CK(scb_cuda_upload(g_cc, dn, &n, 4, &g_err));
                const int small = Tk_q > Tv_q ? (Tk_q > 1 ? Tk_q : 1) : (Tv_q > 1 ? Tv_q : 1);
                for (int sized = 0; sized < 2; sized++) {
                    CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
                    CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse, F32_NAN, (size_t)Hq, &g_err));
                    a.n = sized ? small : n;
                    a.n_dev = dn;
                    CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
                    CK(scb_cuda_sync(g_cc, &g_err));
                    CK(scb_cuda_download(g_cc, h_dev, dout, (size_t)Hq * D * 2, &g_err));
                    const int fin2 = compare_out_lse(dout, dlse, ro, rl, Hq, D, &rel, &lmax);
                    const int same = !memcmp(h_host, h_dev, (size_t)Hq * D * 2);
                    snprintf(detail, sizeof detail, "launch sized for %d keys, %d on the device: out rel %.2e, lse "
                             "maxabs %.2e%s%s", a.n, n, rel, lmax, fin2 ? "" : " NONFINITE",
                             sized ? "" : same ? ", bit-identical to the host count" : ", DIFFERS from the host count");
                    report(sized ? "  attention, kernel v4, device key count, launch sized for fewer keys"
                                 : "  attention, kernel v4, device key count",
                           fin2 && rel <= 1e-2 && lmax <= 1e-3 && (sized || same), detail);
                }
                a.n = n;
                a.n_dev = NULL;
                scb_cuda_free(g_cc, dn);
                scb_free(h_host); scb_free(h_dev);
            }
        }
      }
        scb_cuda_free(g_cc, dout); scb_cuda_free(g_cc, dlse); scb_cuda_free(g_cc, work);
        scb_free(ro); scb_free(rl);
    }
    store_free(&s);
    scb_kivi_cache_destroy(ref);
    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dq);
    scb_free(hk); scb_free(hv); scb_free(hq); scb_free(fq); scb_free(tk); scb_free(tv);
}

static void test_errors(void)
{
    printf("argument checks\n");
    struct scb_kivi_cuda_store s;
    store_alloc(&s, 2, 64, 2, 32, 256);
    uint16_t *dk = dev_alloc((size_t)2 * 256 * 64 * 2);
    struct scb_kivi_cuda_store bad = s;
    bad.bits = 3;
    report("bits=3 refused", scb_kivi_cuda_quant_keys(g_cc, &bad, dk, 256, 0, 32, &g_err) == SCB_E_INVAL, "");
    report("key range not whole groups refused", scb_kivi_cuda_quant_keys(g_cc, &s, dk, 256, 16, 32, &g_err) == SCB_E_INVAL, "");
    report("value range past the store refused", scb_kivi_cuda_quant_values(g_cc, &s, dk, 300, 250, 10, &g_err) == SCB_E_INVAL, "");
    float *work = dev_alloc(scb_kivi_attn_cuda_work_floats(64, 64) * 4);
    uint16_t *out = dev_alloc((size_t)64 * 64 * 2);
    struct scb_kivi_attn_cuda_args a = {dk, dk, dk, 256, 0, 0, 10, 64, 0.0f, out, NULL, work, 0};
    report("Hq/Hkv = 32 refused", scb_kivi_attn_cuda(g_cc, &s, &a, &g_err) == SCB_E_INVAL, "");
    a.Hq = 8; a.Tk_q = 20;
    report("Tk_q > n refused", scb_kivi_attn_cuda(g_cc, &s, &a, &g_err) == SCB_E_INVAL, "");
    a.Tk_q = 0;
    static const int refused[] = {2, 3, 5};            /* 2, 3: removed kernels */
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char nm[48];
        a.kernel = refused[i];
        snprintf(nm, sizeof nm, "kernel %d refused", refused[i]);
        report(nm, scb_kivi_attn_cuda(g_cc, &s, &a, &g_err) == SCB_E_INVAL, "");
    }
    a.kernel = 1;
    int32_t *dn = dev_alloc(4);
    a.n_dev = dn;
    report("device key count with kernel v1 refused", scb_kivi_attn_cuda(g_cc, &s, &a, &g_err) == SCB_E_INVAL, "");
    a.n_dev = NULL;
    scb_cuda_free(g_cc, dn);
    a.kernel = 0;
    setenv("SCB_KIVI_ATTN", "v2", 1);
    report("SCB_KIVI_ATTN=v2 refused", scb_kivi_attn_cuda(g_cc, &s, &a, &g_err) == SCB_E_INVAL, "");
    unsetenv("SCB_KIVI_ATTN");
    /* n = 0: out 0, lse -inf */
    float *lse = dev_alloc(8 * 4);
    uint16_t ho[8 * 64];
    float hl[8];
    a.Tk_q = 0; a.n = 0; a.lse = lse;
    for (int kern = 1; kern <= 4; kern += 3) {
        a.kernel = kern;
        CK(scb_cuda_fill16(g_cc, out, BF16_NAN, 8 * 64, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)lse, F32_NAN, 8, &g_err));
        CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, ho, out, sizeof ho, &g_err));
        CK(scb_cuda_download(g_cc, hl, lse, sizeof hl, &g_err));
        int ok = 1;
        for (int i = 0; i < 8 * 64; i++) ok &= ho[i] == 0;
        for (int i = 0; i < 8; i++) ok &= isinf(hl[i]) && hl[i] < 0;
        char nm[64];
        snprintf(nm, sizeof nm, "n = 0: out 0, lse -inf (kernel %d)", kern);
        report(nm, ok, "");
    }
    scb_cuda_free(g_cc, work); scb_cuda_free(g_cc, out); scb_cuda_free(g_cc, lse); scb_cuda_free(g_cc, dk);
    store_free(&s);
}

/* ---- --bench -------------------------------------------------------------------------------- */
static void bench(int Tk)
{
    const int Hq = 32, Hkv = 8, D = 128, R = 32, group = 32, reps = 50;
    const size_t kcap = (size_t)Tk + 64;
    const size_t nkv = (size_t)Hkv * kcap * D;
    printf("bench: one layer's decode attention, Hq=%d Hkv=%d D=%d, %d keys (R=%d group=%d), mean of %d\n",
           Hq, Hkv, D, Tk, R, group, reps);
    uint16_t *dk = dev_alloc(nkv * 2), *dv = dev_alloc(nkv * 2), *dq = dev_alloc((size_t)Hq * D * 2);
    uint16_t *dout = dev_alloc((size_t)Hq * D * 2);
    float *work = dev_alloc(scb_kivi_attn_cuda_work_floats(Hq, D) * 4), ms = 0;
    uint16_t *h = host_alloc(nkv * 2);
    for (size_t i = 0; i < nkv; i++) h[i] = scb_bf16_from_f32(rng_normal());
    CK(scb_cuda_upload(g_cc, dk, h, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dv, h, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dq, h, (size_t)Hq * D * 2, &g_err));
    /* dense split-K decode over the same keys */
    struct scb_attn_cuda_args da = {0};
    da.q = dq; da.k = dk; da.v = dv; da.out = dout; da.Tq = 1; da.Tk = Tk; da.Hq = Hq; da.Hkv = Hkv; da.D = D;
    da.kv_tok_stride = D; da.kv_head_stride = kcap * D;
    CK(scb_attn_decode_cuda(g_cc, &da, 0, &g_err));
    CK(scb_cuda_timer_start(g_cc, &g_err));
    for (int r = 0; r < reps; r++) CK(scb_attn_decode_cuda(g_cc, &da, 0, &g_err));
    CK(scb_cuda_timer_stop(g_cc, &g_err));
    CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
    double dense_bytes = 2.0 * Hkv * Tk * D * 2;
    printf("  %-8s %8.1f us  reads %7.2f MB  %6.0f GB/s\n", "dense", 1e3 * ms / reps, dense_bytes / 1e6,
           dense_bytes / (1e-3 * ms / reps) / 1e9);
    for (int bits = 2; bits <= 8; bits *= 2) {
        struct scb_kivi_cuda_store s;
        int cap = (int)((kcap + group - 1) / group * group);
        store_alloc(&s, Hkv, D, bits, group, cap);
        /* SCB_KIVI_BENCH_TAIL=N: N full-precision tokens at the end (keys and values past the
         * store: temp tokens, as in a decode; default: the residual's R values, keys all quantized) */
        const char *tl = getenv("SCB_KIVI_BENCH_TAIL");
        const int tail = tl ? atoi(tl) : -1;
        int kq = Tk - Tk % R, vq = Tk - R;
        if (tail >= 0 && tail < Tk) { kq = (Tk - tail) / R * R; vq = Tk - tail; }
        CK(scb_kivi_cuda_quant_keys(g_cc, &s, dk, kcap, 0, kq, &g_err));
        CK(scb_kivi_cuda_quant_values(g_cc, &s, dv, kcap, 0, vq, &g_err));
        struct scb_kivi_attn_cuda_args a = {dq, dk, dv, kcap, kq, vq, Tk, Hq, 0.0f, dout, NULL, work, 0, 1};
        float kms[5] = {0, 0, 0, 0, 0};
        uint16_t *o1 = host_alloc((size_t)Hq * D * 2), *o3 = host_alloc((size_t)Hq * D * 2);
        for (int kern = 1; kern <= 4; kern += 3) {
            a.kernel = kern;
            CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
            CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
            CK(scb_cuda_sync(g_cc, &g_err));
            if (kern == 1 || kern == 4) CK(scb_cuda_download(g_cc, kern == 1 ? o1 : o3, dout, (size_t)Hq * D * 2, &g_err));
            CK(scb_cuda_timer_start(g_cc, &g_err));
            for (int r = 0; r < reps; r++) CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
            CK(scb_cuda_timer_stop(g_cc, &g_err));
            CK(scb_cuda_timer_ms(g_cc, &kms[kern], &g_err));
        }
        double num = 0, den = 0;
        for (size_t i = 0; i < (size_t)Hq * D; i++) {
            double x = scb_bf16_to_f32(o3[i]), y = scb_bf16_to_f32(o1[i]);
            num += (x - y) * (x - y);
            den += y * y;
        }
        scb_free(o1); scb_free(o3);
        ms = bits <= 4 ? kms[4] : kms[1];
        printf("  kivi_bench Tk=%d bits=%d v1_us %.1f v4_us %.1f  v4/v1 speedup %.2fx  v4 vs v1 out rel %.1e\n", Tk,
               bits, 1e3 * kms[1] / reps, 1e3 * kms[4] / reps, kms[1] / kms[4], den > 0 ? sqrt(num / den) : -1.0);
        /* bytes the kernel reads: codes + fp32 scale/min of the quantized part + bf16 rest */
        double bytes = (double)Hkv * ((double)(kq + vq) * D * bits / 8 + 2.0 * (kq + vq) * D / group * 4 +
                                      (double)((Tk - kq) + (Tk - vq)) * D * 2);
        double cpu_formula = (double)scb_kivi_bytes(Tk, Tk, Hkv, D, bits, group, R, 1, 2, 2);
        float qms = 0;
        CK(scb_cuda_timer_start(g_cc, &g_err));
        for (int r = 0; r < reps; r++) {
            CK(scb_kivi_cuda_quant_keys(g_cc, &s, dk, kcap, 0, R, &g_err));
            CK(scb_kivi_cuda_quant_values(g_cc, &s, dv, kcap, 0, R, &g_err));
        }
        CK(scb_cuda_timer_stop(g_cc, &g_err));
        CK(scb_cuda_timer_ms(g_cc, &qms, &g_err));
        printf("  kivi-%d   %8.1f us  reads %7.2f MB  %6.0f GB/s  (store by the CPU formula, 2-byte scales: %.2f MB); "
               "flush of R tokens %.1f us\n", bits, 1e3 * ms / reps, bytes / 1e6, bytes / (1e-3 * ms / reps) / 1e9,
               cpu_formula / 1e6, 1e3 * qms / reps);
        static const int sps[] = {16, 33, 49, 66, 99, 132, 198, 264};
        for (size_t k = 0; bits <= 4 && k < sizeof sps / sizeof sps[0]; k++) {   /* key partitions per KV head */
            a.n_splits = sps[k];
            a.kernel = 4;
            CK(scb_cuda_timer_start(g_cc, &g_err));
            for (int r = 0; r < reps; r++) CK(scb_kivi_attn_cuda(g_cc, &s, &a, &g_err));
            CK(scb_cuda_timer_stop(g_cc, &g_err));
            CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
            printf("    kivi-%d (kernel v4) with %3d partitions per KV head: %8.1f us\n", bits, sps[k], 1e3 * ms / reps);
        }
        store_free(&s);
    }
    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dout);
    scb_cuda_free(g_cc, work);
    scb_free(h);
}

int main(int argc, char **argv)
{
    int do_bench = 0;
    int rc0 = parity_start("parity_cuda_kivi", argc, argv,
                           "KIVI device kernels against methods/kivi.c; exit 77 without a GPU. --bench also times\n"
                           "the decode attention at 32K keys.\n",
                           "--bench", &do_bench);
    if (rc0 >= 0) return rc0;
    static const struct kcase cases[] = {
        /* Hq Hkv  D bits group  R     N    M temp splits */
        {4, 1, 32, 2, 32, 32, 1000, 37, 5, 0},
        {8, 2, 64, 4, 32, 64, 777, 100, 0, 0},
        {32, 8, 128, 2, 32, 32, 4097, 45, 17, 0},
        {32, 8, 128, 2, 32, 32, 4097, 45, 17, 1},
        {32, 8, 128, 4, 32, 32, 3001, 70, 3, 7},
        {8, 1, 128, 8, 64, 128, 2500, 3, 0, 0},
        {16, 1, 256, 4, 32, 32, 333, 50, 2, 0},
        {6, 6, 16, 2, 16, 16, 17, 1, 0, 0},
        {14, 2, 64, 2, 32, 64, 40, 5, 3, 0},          /* N < R: values all full precision first */
        {4, 2, 96, 8, 32, 32, 64, 0, 0, 0},           /* N a multiple of R, D not a power of 2 */
        {28, 4, 128, 2, 32, 32, 33000, 40, 9, 0},     /* long: many partitions, G = 7 */
        {32, 8, 128, 2, 16, 32, 2049, 31, 4, 0},      /* group 16: 10 key groups per v1 tile, v4 falls back */
        {16, 1, 256, 8, 4, 32, 500, 40, 3, 0},        /* D 256, group 4, G 16: v1 only */
        {12, 12, 128, 4, 32, 32, 1031, 33, 0, 3},     /* GQA 1 */
        /* groups 16..128, GQA 1/4/8, odd lengths, R != group */
        {8, 8, 128, 8, 16, 16, 1500, 20, 5, 0},       /* bits 8, group 16, GQA 1 */
        {32, 4, 128, 4, 128, 128, 2000, 130, 7, 0},   /* G = 8, a key group spanning two 64-key tiles */
        {16, 4, 64, 2, 16, 48, 999, 61, 13, 5},       /* R = 48, odd everything */
        {4, 1, 128, 2, 32, 32, 20, 3, 2, 0},          /* N < R: no quantized token at all */
        {8, 1, 32, 4, 16, 16, 4099, 17, 1, 0},        /* D = 32, G = 8 */
        {32, 8, 128, 8, 32, 64, 5003, 77, 6, 0},      /* bits 8 on the Llama shape, R = 64 */
        {32, 8, 128, 4, 32, 32, 8191, 1, 63, 2},      /* two partitions, many temp tokens */
        /* kernel v4 (D 128, 2/4 bits, groups 32/64/128) */
        {16, 2, 128, 2, 64, 64, 3000, 90, 5, 0},      /* group 64, G = 8 */
        {8, 2, 128, 4, 64, 128, 1234, 300, 11, 0},    /* group 64, R 128, values mixed inside a step */
        {4, 4, 128, 2, 128, 128, 700, 0, 31, 9},      /* group 128, GQA 1, 9 partitions */
        {32, 8, 128, 2, 32, 32, 40000, 77, 1, 0},     /* long, odd total */
    };
    /* profiling knobs (--bench): SCB_KIVI_BENCH_ONLY=1 skips the parity cases, SCB_KIVI_BENCH_TK=N
     * times N keys only, SCB_KIVI_BENCH_TAIL=N puts N full-precision tokens at the end */
    const char *only = getenv("SCB_KIVI_BENCH_ONLY"), *btk = getenv("SCB_KIVI_BENCH_TK");
    if (!(do_bench && only && !strcmp(only, "1"))) {
        printf("kivi quantize / dequantize / attention vs methods/kivi.c\n");
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
        test_errors();
    }
    if (do_bench) {
        if (btk && atoi(btk) > 0) {
            bench(atoi(btk));
        } else {
            bench(32768);
            bench(131072);
        }
    }
    printf("parity_cuda_kivi: %d passed, %d failed\n", g_pass, g_fail);
    scb_cuda_ctx_destroy(g_cc);
    return g_fail ? 1 : 0;
}
