/* parity_cuda_kvsel.c — the KV-selection kernels (kernels/kvsel_cuda.h) against the CPU
 * reference of methods/snapkv.c and methods/quest.c on a grid of shapes: odd lengths, lengths
 * not a multiple of the page or tile, window 1, GQA ratios 1/4/8, head dims 16/64/128, avg and
 * max pooling, per-query-head and per-KV-head selection, single rows and multi-row chunks,
 * incremental page metadata. Inputs are seeded random bf16 values (the seed is printed; --seed N
 * or SCB_SEED=N reproduces); the reference runs in double on the same bf16-rounded inputs.
 * Device outputs are NaN-poisoned (0xff bytes) before each launch. Suite 'cuda' (exit 77 without a GPU); the
 * same source linked with the host emulation (tests/cuda_host_emul*.c) runs in CI as
 * parity_kvsel_emul. Tolerances, each with its reason:
 *  - pooled SnapKV scores: |dev - ref| <= 2e-5 * max_row|ref| + 1e-7: fp32 exp / sums over at
 *    most W * N terms against double;
 *  - top-k on identical scores (uploaded reference pooled scores, and quantized scores full of
 *    exact ties): EXACT equality with the CPU order (larger first, smaller index on ties);
 *  - SnapKV keep lists from device scores, and Quest page selections from device bounds: every
 *    entry where device and reference differ must be a near-tie, i.e. its reference score
 *    within 1e-4 * max|score| of the reference's k-th score (fp32 vs double rounding of the
 *    bounds can swap such entries, nothing else);
 *  - Quest attention on the reference's page selection: |dev - ref| <= 1e-2 * max_row|ref|:
 *    bf16 output rounding (2^-9 relative) plus fp32 accumulation;
 *  - page metadata built incrementally equals the full rebuild bit for bit (min/max are exact).
 * Then the device bindings themselves (harness/method_dev_kvdrop.c, method_dev_quest.c) on a
 * device KV cache: SnapKV/PyramidKV/StreamingLLM after_prefill keeps on the device exactly the
 * rows its bookkeeping (positions) says, and those positions equal the CPU method's keep lists up
 * to near-tie swaps (at most 2% of a head's list); Quest's decode over a growing cache (single
 * steps, chunks larger than its 64-row batch, a dropped temp segment refilled with new keys)
 * equals methods/quest.c's attention within the attention tolerance above, except rows whose
 * reference page choice is a near-tie (the kp-th and next page bounds within 1e-4 of the largest;
 * at most 2% of the rows: seed 61 gave one such row). */
#include "kernels/kvsel_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness/method_dev.h"
#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "tests/parity_util.h"
#include "kernels/kv_cache.h"
#include "kernels/status.h"
#include "methods/dense.h"
#include "methods/quest.h"
#include "methods/snapkv.h"




static void *dalloc(size_t n)
{
    void *p = NULL;
    CK(scb_cuda_malloc(g_cc, &p, n ? n : 1, &g_err));
    poison(p, n);
    return p;
}
static void *dup_dev(const void *h, size_t n)
{
    void *p = dalloc(n);
    CK(scb_cuda_upload(g_cc, p, h, n, &g_err));
    return p;
}
static void down(void *h, const void *d, size_t n)
{
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, h, d, n, &g_err));
}
static void rand_bf16(uint16_t *bits, float *f, size_t n, float sigma)
{
    for (size_t i = 0; i < n; i++) {
        bits[i] = scb_bf16_from_f32(rng_normal() * sigma);
        f[i] = scb_bf16_to_f32(bits[i]);
    }
}
static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_pass++;
    else g_fail++;
}

/* Reference top-k (larger first, ties to the smaller index, ascending out) of float scores. */
static void ref_topk(const float *s, int n, int k, int32_t *out)
{
    double *d = host_alloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int j = 0; j < n; j++) d[j] = s[j];
    if (scb_quest_top_pages(d, n, k, out) < 0) { fprintf(stderr, "FATAL: out of memory\n"); exit(1); }
    scb_free(d);
}

/* Entries in one ascending list and not the other must be near-ties of the k-th score. */
static int near_tie_sets(const int32_t *a, const int32_t *b, int k, const double *score, int n, double tol,
                         int *n_diff)
{
    unsigned char *in_a = host_alloc((size_t)n), *in_b = host_alloc((size_t)n);
    memset(in_a, 0, (size_t)n);
    memset(in_b, 0, (size_t)n);
    for (int i = 0; i < k; i++) { in_a[a[i]] = 1; in_b[b[i]] = 1; }
    double kth = INFINITY;
    for (int i = 0; i < k; i++) if (score[b[i]] < kth) kth = score[b[i]];   /* b = reference */
    int ok = 1;
    *n_diff = 0;
    for (int j = 0; j < n; j++)
        if (in_a[j] != in_b[j]) {
            (*n_diff)++;
            if (fabs(score[j] - kth) > tol) ok = 0;
        }
    scb_free(in_a);
    scb_free(in_b);
    return ok;
}

/* ---- SnapKV ------------------------------------------------------------------------------ */
static void test_snapkv_case(int N, int W, int Hq, int Hkv, int D, int kernel, int pool, int gqa, int n_select)
{
    const int P = N - W, G = Hq / Hkv, Hs = gqa ? Hkv : Hq, Hout = Hs;
    const size_t cap = (size_t)N + 3;
    uint16_t *qb = host_alloc(sizeof(uint16_t) * (size_t)N * Hq * D);        /* (N, Hq, D) */
    float *qf = host_alloc(sizeof(float) * (size_t)N * Hq * D);
    uint16_t *kb = host_alloc(sizeof(uint16_t) * (size_t)N * Hkv * D);       /* (N, Hkv, D) */
    float *kf = host_alloc(sizeof(float) * (size_t)N * Hkv * D);
    float *vf = host_alloc(sizeof(float) * (size_t)N * Hkv * D);
    uint16_t *ks = host_alloc(sizeof(uint16_t) * (size_t)Hs * cap * D);     /* (Hs, cap, D) storage */
    rand_bf16(qb, qf, (size_t)N * Hq * D, 1.0f);
    rand_bf16(kb, kf, (size_t)N * Hkv * D, 1.0f);
    for (size_t i = 0; i < (size_t)N * Hkv * D; i++) vf[i] = kf[i];
    for (size_t i = 0; i < (size_t)Hs * cap * D; i++) ks[i] = 0x7fc0u;
    for (int s = 0; s < Hs; s++) {
        const int g = gqa ? s : s / G;                                    /* SCBench's repetition */
        for (int j = 0; j < N; j++)
            memcpy(ks + ((size_t)s * cap + j) * D, kb + ((size_t)j * Hkv + g) * D, sizeof(uint16_t) * D);
    }
    struct scb_kv_compress_args ca = {.k = kf, .v = vf, .q = qf, .N = N, .Nq = N, .Hq = Hq, .Hkv = Hkv, .D = D,
                                      .scale = 0.f, .layer = 0, .L = 1};
    float *ref = host_alloc(sizeof(float) * (size_t)Hout * P);
    CK(scb_snapkv_scores(&ca, W, kernel, pool, gqa, ref, &g_err));
    uint16_t *dq = dup_dev(qb, sizeof(uint16_t) * (size_t)N * Hq * D);
    uint16_t *dk = dup_dev(ks, sizeof(uint16_t) * (size_t)Hs * cap * D);
    float *work = dalloc(sizeof(float) * scb_cuda_snapkv_work_floats(Hq, W, N));
    float *dpool = dalloc(sizeof(float) * (size_t)Hout * P);
    CK(scb_cuda_snapkv_scores(g_cc, dq, N, dk, cap, N, Hq, Hs, D, W, 0.f, kernel, pool, gqa, work, dpool, &g_err));
    float *got = host_alloc(sizeof(float) * (size_t)Hout * P);
    down(got, dpool, sizeof(float) * (size_t)Hout * P);
    double worst = 0;
    int finite = 1;
    for (int h = 0; h < Hout; h++) {
        double mx = 0;
        for (int j = 0; j < P; j++) mx = fmax(mx, fabs(ref[(size_t)h * P + j]));
        for (int j = 0; j < P; j++) {
            const double e = fabs((double)got[(size_t)h * P + j] - ref[(size_t)h * P + j]) / (mx + 1e-30);
            if (!isfinite(got[(size_t)h * P + j])) finite = 0;
            if (e > worst) worst = e;
        }
    }
    check(finite && worst <= 2e-5, "snapkv scores N=%d W=%d Hq=%d Hkv=%d D=%d kernel=%d %s gqa=%d: max err %.2e "
          "of row max (tol 2e-5)", N, W, Hq, Hkv, D, kernel, pool ? "maxpool" : "avgpool", gqa, worst);
    /* keep lists: the CPU reference vs the device on its own scores (near-ties may differ) and
     * on the reference's scores (exact) */
    struct scb_kv_keep keep = {0};
    CK(scb_snapkv_select(&ca, W, kernel, pool, gqa, n_select, &keep, &g_err));
    const int n = n_select + W;
    int32_t *didx = dalloc(sizeof(int32_t) * (size_t)Hout * n);
    int32_t *gidx = host_alloc(sizeof(int32_t) * (size_t)Hout * n);
    CK(scb_cuda_snapkv_select(g_cc, dpool, Hout, P, n_select, W, didx, &g_err));
    down(gidx, didx, sizeof(int32_t) * (size_t)Hout * n);
    double *sd = host_alloc(sizeof(double) * (size_t)P);
    int ok = 1, diffs = 0;
    for (int h = 0; h < Hout; h++) {
        const int32_t *r = keep.idx + (size_t)h * keep.cap, *g = gidx + (size_t)h * n;
        double mx = 0;
        for (int j = 0; j < P; j++) { sd[j] = ref[(size_t)h * P + j]; mx = fmax(mx, fabs(sd[j])); }
        int nd = 0;
        if (keep.n[h] != n) ok = 0;
        else if (!near_tie_sets(g, r, n_select, sd, P, 1e-4 * mx, &nd)) ok = 0;
        for (int j = 0; j < W; j++) if (g[n_select + j] != P + j) ok = 0;
        for (int i = 1; i < n; i++) if (g[i] <= g[i - 1]) ok = 0;
        diffs += nd;
    }
    check(ok, "snapkv select n_select=%d (device scores): %d entries differ from the CPU, all near-ties", n_select,
          diffs);
    CK(scb_cuda_upload(g_cc, dpool, ref, sizeof(float) * (size_t)Hout * P, &g_err));
    poison(didx, sizeof(int32_t) * (size_t)Hout * n);
    CK(scb_cuda_snapkv_select(g_cc, dpool, Hout, P, n_select, W, didx, &g_err));
    down(gidx, didx, sizeof(int32_t) * (size_t)Hout * n);
    ok = 1;
    for (int h = 0; h < Hout; h++)
        if (memcmp(gidx + (size_t)h * n, keep.idx + (size_t)h * keep.cap, sizeof(int32_t) * (size_t)n)) ok = 0;
    check(ok, "snapkv select n_select=%d on the reference scores: lists equal the CPU's exactly", n_select);
    scb_kv_keep_fini(&keep);
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, work); scb_cuda_free(g_cc, dpool);
    scb_cuda_free(g_cc, didx);
    scb_free(qb); scb_free(qf); scb_free(kb); scb_free(kf); scb_free(vf); scb_free(ks); scb_free(ref);
    scb_free(got); scb_free(gidx); scb_free(sd);
}

/* Top-k on scores full of exact ties (values 0..4, some -0.0): order and ties exactly the CPU's. */
static void test_topk_ties(int R, int P, int k)
{
    float *s = host_alloc(sizeof(float) * (size_t)R * P);
    for (size_t i = 0; i < (size_t)R * P; i++) {
        s[i] = (float)(rng_next() % 5) - 2.0f;
        if (s[i] == 0.f && (rng_next() & 1)) s[i] = -0.0f;
    }
    float *ds = dup_dev(s, sizeof(float) * (size_t)R * P);
    int32_t *di = dalloc(sizeof(int32_t) * (size_t)R * (k + 2));
    int32_t *g = host_alloc(sizeof(int32_t) * (size_t)R * (k + 2)), *r = host_alloc(sizeof(int32_t) * (size_t)(k + 1));
    CK(scb_cuda_snapkv_select(g_cc, ds, R, P, k, 2, di, &g_err));
    down(g, di, sizeof(int32_t) * (size_t)R * (k + 2));
    int ok = 1;
    for (int h = 0; h < R; h++) {
        ref_topk(s + (size_t)h * P, P, k, r);
        if (memcmp(g + (size_t)h * (k + 2), r, sizeof(int32_t) * (size_t)k)) ok = 0;
    }
    check(ok, "top-k with exact ties R=%d P=%d k=%d: equal to the CPU order", R, P, k);
    scb_cuda_free(g_cc, ds); scb_cuda_free(g_cc, di);
    scb_free(s); scb_free(g); scb_free(r);
}

/* ---- Quest ------------------------------------------------------------------------------- */
static void test_quest_case(int Tk, int Tq, int Hq, int Hkv, int D, int P, int budget)
{
    const int G = Hq / Hkv, np = (Tk + P - 1) / P, kp = scb_quest_kpages(Tk, P, budget);
    const size_t cap = (size_t)Tk + 5;
    const int mp = (int)((cap + P - 1) / P);
    uint16_t *qb = host_alloc(sizeof(uint16_t) * (size_t)Tq * Hq * D);
    float *qf = host_alloc(sizeof(float) * (size_t)Tq * Hq * D);
    uint16_t *kb = host_alloc(sizeof(uint16_t) * (size_t)Hkv * cap * D), *vb = host_alloc(sizeof(uint16_t) * (size_t)Hkv * cap * D);
    float *kf = host_alloc(sizeof(float) * (size_t)Hkv * cap * D), *vf = host_alloc(sizeof(float) * (size_t)Hkv * cap * D);
    rand_bf16(qb, qf, (size_t)Tq * Hq * D, 1.0f);
    rand_bf16(kb, kf, (size_t)Hkv * cap * D, 1.0f);
    rand_bf16(vb, vf, (size_t)Hkv * cap * D, 1.0f);
    /* reference: selection per (row, head) and the attention */
    int32_t *rsel = host_alloc(sizeof(int32_t) * (size_t)Tq * Hq * kp);
    double *rub = host_alloc(sizeof(double) * (size_t)Tq * Hq * np);
    float *w = host_alloc(sizeof(float) * (size_t)D);
    for (int h = 0; h < Hq; h++) {
        scb_quest_signs(qf + (size_t)h * D, (size_t)Hq * D, Tq, D, w);
        for (int i = 0; i < Tq; i++) {
            double *u = rub + ((size_t)i * Hq + h) * np;
            scb_quest_bounds(qf + ((size_t)i * Hq + h) * D, w, kf + (size_t)(h / G) * cap * D, (size_t)D, Tk, D, P, u);
            scb_quest_top_pages(u, np, kp, rsel + ((size_t)i * Hq + h) * kp);
        }
    }
    float *rout = host_alloc(sizeof(float) * (size_t)Tq * Hq * D);
    struct scb_attn_args a = {.q = qf, .k = kf, .v = vf, .out = rout, .Tq = Tq, .Tk = Tk, .Hq = Hq, .Hkv = Hkv,
                              .D = D, .kv_tok_stride = (size_t)D, .kv_head_stride = cap * D};
    CK(scb_quest_attn(&a, P, budget, &g_err));
    /* device */
    uint16_t *dq = dup_dev(qb, sizeof(uint16_t) * (size_t)Tq * Hq * D);
    uint16_t *dk = dup_dev(kb, sizeof(uint16_t) * (size_t)Hkv * cap * D);
    uint16_t *dv = dup_dev(vb, sizeof(uint16_t) * (size_t)Hkv * cap * D);
    uint16_t *kmin = dalloc(sizeof(uint16_t) * (size_t)Hkv * mp * D), *kmax = dalloc(sizeof(uint16_t) * (size_t)Hkv * mp * D);
    uint16_t *kmin2 = dalloc(sizeof(uint16_t) * (size_t)Hkv * mp * D), *kmax2 = dalloc(sizeof(uint16_t) * (size_t)Hkv * mp * D);
    float *dw = dalloc(sizeof(float) * (size_t)Hq * D);
    float *dub = dalloc(sizeof(float) * (size_t)Tq * Hq * np);
    int32_t *dsel = dalloc(sizeof(int32_t) * (size_t)Tq * Hq * kp);
    uint16_t *dout = dalloc(sizeof(uint16_t) * (size_t)Tq * Hq * D);
    float *dwork = dalloc(sizeof(float) * scb_cuda_quest_attn_work_floats(Tq, Hq, D, kp, P));
    /* metadata: in one go, and incrementally (a prefix of T1 entries, then the rest from the
     * page holding entry T1) */
    const int T1 = Tk > 7 ? Tk - 7 : 1;
    CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, Tk, 0, kmin, kmax, mp, &g_err));
    CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, T1, 0, kmin2, kmax2, mp, &g_err));
    CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, Tk, T1 / P, kmin2, kmax2, mp, &g_err));
    const size_t mn = (size_t)Hkv * mp * D;
    uint16_t *m1 = host_alloc(sizeof(uint16_t) * mn * 2), *m2 = host_alloc(sizeof(uint16_t) * mn * 2);
    down(m1, kmin, sizeof(uint16_t) * mn); down(m1 + mn, kmax, sizeof(uint16_t) * mn);
    down(m2, kmin2, sizeof(uint16_t) * mn); down(m2 + mn, kmax2, sizeof(uint16_t) * mn);
    int ok = 1;
    for (int s = 0; s < Hkv; s++)
        for (int p = 0; p < np; p++)
            for (int d = 0; d < D; d++) {
                float lo = INFINITY, hi = -INFINITY;
                for (int t = p * P; t < (p + 1) * P && t < Tk; t++) {
                    lo = fminf(lo, kf[((size_t)s * cap + t) * D + d]);
                    hi = fmaxf(hi, kf[((size_t)s * cap + t) * D + d]);
                }
                const size_t o = ((size_t)s * mp + p) * D + d;
                if (scb_bf16_to_f32(m1[o]) != lo || scb_bf16_to_f32(m1[mn + o]) != hi || m1[o] != m2[o] ||
                    m1[mn + o] != m2[mn + o]) ok = 0;
            }
    check(ok, "quest meta Tk=%d P=%d Hkv=%d D=%d: exact page min/max, incremental == full", Tk, P, Hkv, D);
    CK(scb_cuda_quest_signs(g_cc, dq, Tq, Hq, D, dw, &g_err));
    CK(scb_cuda_quest_select(g_cc, dq, 0, Tq, Hq, Hkv, D, dw, kmin, kmax, mp, Tk, P, kp, dub, dsel, &g_err));
    int32_t *gsel = host_alloc(sizeof(int32_t) * (size_t)Tq * Hq * kp);
    down(gsel, dsel, sizeof(int32_t) * (size_t)Tq * Hq * kp);
    ok = 1;
    int diffs = 0;
    for (int r = 0; r < Tq * Hq; r++) {
        const double *u = rub + (size_t)r * np;
        double mx = 0;
        for (int p = 0; p < np; p++) mx = fmax(mx, fabs(u[p]));
        int nd = 0;
        for (int i = 1; i < kp; i++) if (gsel[(size_t)r * kp + i] <= gsel[(size_t)r * kp + i - 1]) ok = 0;
        if (ok && !near_tie_sets(gsel + (size_t)r * kp, rsel + (size_t)r * kp, kp, u, np, 1e-4 * mx, &nd)) ok = 0;
        diffs += nd;
    }
    check(ok, "quest select Tk=%d Tq=%d Hq=%d Hkv=%d D=%d P=%d kp=%d: %d pages differ, all near-ties", Tk, Tq, Hq, Hkv,
          D, P, kp, diffs);
    /* attention on the reference's selection, split in two row batches */
    CK(scb_cuda_upload(g_cc, dsel, rsel, sizeof(int32_t) * (size_t)Tq * Hq * kp, &g_err));
    const int r1 = Tq > 1 ? Tq / 2 : Tq;
    CK(scb_cuda_quest_attn(g_cc, dq, dk, dv, cap, dout, 0, r1, Tq, Tk, Hq, Hkv, D, P, kp, dsel, 0.f, dwork, &g_err));
    if (r1 < Tq)
        CK(scb_cuda_quest_attn(g_cc, dq, dk, dv, cap, dout, r1, Tq - r1, Tq, Tk, Hq, Hkv, D, P, kp,
                               dsel + (size_t)r1 * Hq * kp, 0.f, dwork, &g_err));
    uint16_t *gout = host_alloc(sizeof(uint16_t) * (size_t)Tq * Hq * D);
    down(gout, dout, sizeof(uint16_t) * (size_t)Tq * Hq * D);
    double worst = 0;
    int finite = 1;
    for (int r = 0; r < Tq * Hq; r++) {
        double mx = 0;
        for (int d = 0; d < D; d++) mx = fmax(mx, fabs(rout[(size_t)r * D + d]));
        for (int d = 0; d < D; d++) {
            const float g = scb_bf16_to_f32(gout[(size_t)r * D + d]);
            if (!isfinite(g)) finite = 0;
            const double e = fabs((double)g - rout[(size_t)r * D + d]) / (mx > 0 ? mx : 1.0);
            if (e > worst) worst = e;
        }
    }
    check(finite && worst <= 1e-2, "quest attention Tk=%d Tq=%d Hq=%d Hkv=%d D=%d P=%d budget=%d: max err %.2e of row "
          "max (tol 1e-2)", Tk, Tq, Hq, Hkv, D, P, budget, worst);
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, kmin);
    scb_cuda_free(g_cc, kmax); scb_cuda_free(g_cc, kmin2); scb_cuda_free(g_cc, kmax2); scb_cuda_free(g_cc, dw);
    scb_cuda_free(g_cc, dub); scb_cuda_free(g_cc, dsel); scb_cuda_free(g_cc, dout); scb_cuda_free(g_cc, dwork);
    scb_free(qb); scb_free(qf); scb_free(kb); scb_free(vb); scb_free(kf); scb_free(vf); scb_free(rsel);
    scb_free(rub); scb_free(w); scb_free(rout); scb_free(m1); scb_free(m2); scb_free(gsel); scb_free(gout);
}

/* scb_cuda_quest_topk against the CPU order, EXACT (same float scores): random scores, scores
 * full of exact ties (a few values, -0 and +0 equal), k = 1, k = n, rows that fit the default
 * shared memory, that need the raised limit, and that stay in global memory. */
static void test_quest_topk(int R, int n, int k, int ties)
{
    float *s = host_alloc(sizeof(float) * (size_t)R * n);
    for (size_t i = 0; i < (size_t)R * n; i++) {
        if (ties) {
            s[i] = (float)(rng_next() % 5) - 2.0f;
            if (s[i] == 0.f && (rng_next() & 1)) s[i] = -0.0f;
        } else {
            s[i] = rng_normal() * 3.0f;
        }
    }
    float *ds = dup_dev(s, sizeof(float) * (size_t)R * n);
    int32_t *di = dalloc(sizeof(int32_t) * (size_t)R * k);
    int32_t *g = host_alloc(sizeof(int32_t) * (size_t)R * k), *r = host_alloc(sizeof(int32_t) * (size_t)k);
    CK(scb_cuda_quest_topk(g_cc, ds, R, n, k, di, &g_err));
    down(g, di, sizeof(int32_t) * (size_t)R * k);
    int ok = 1;
    for (int h = 0; h < R; h++) {
        ref_topk(s + (size_t)h * n, n, k, r);
        if (memcmp(g + (size_t)h * k, r, sizeof(int32_t) * (size_t)k)) ok = 0;
    }
    check(ok, "quest top-k R=%d n=%d k=%d %s: equal to the CPU order", R, n, k, ties ? "with exact ties" : "random");
    scb_cuda_free(g_cc, ds); scb_cuda_free(g_cc, di);
    scb_free(s); scb_free(g); scb_free(r);
}

/* scb_cuda_quest_step_select2 (the default decode-step selection): metadata rebuilt from p0 (0,
 * a page in the middle, the last page, none) equal bit for bit to a full rebuild; bounds within
 * 1e-5 of the row's max |bound| of the CPU's (double) bounds (fp32 sums of D products in another
 * order); pages EXACTLY the CPU top-k of the device's own bounds (the tie rule), and equal to the
 * CPU's selection up to near-ties. Unroll 0 (automatic), 1, 2 and 8. D % 8 != 0 takes the
 * separate launchers (same checks). */
static void test_quest_step2(int Tk, int Hq, int Hkv, int D, int P, int budget)
{
    const int G = Hq / Hkv, np = (Tk + P - 1) / P, kp = scb_quest_kpages(Tk, P, budget);
    const size_t cap = (size_t)Tk + 11;
    const int mp = (int)((cap + P - 1) / P);
    uint16_t *qb = host_alloc(sizeof(uint16_t) * (size_t)Hq * D);
    float *qf = host_alloc(sizeof(float) * (size_t)Hq * D);
    uint16_t *kb = host_alloc(sizeof(uint16_t) * (size_t)Hkv * cap * D);
    float *kf = host_alloc(sizeof(float) * (size_t)Hkv * cap * D);
    rand_bf16(qb, qf, (size_t)Hq * D, 1.0f);
    rand_bf16(kb, kf, (size_t)Hkv * cap * D, 1.0f);
    int32_t *rsel = host_alloc(sizeof(int32_t) * (size_t)Hq * kp);
    double *rub = host_alloc(sizeof(double) * (size_t)Hq * np);
    float *w = host_alloc(sizeof(float) * (size_t)D);
    for (int h = 0; h < Hq; h++) {
        scb_quest_signs(qf + (size_t)h * D, (size_t)Hq * D, 1, D, w);
        scb_quest_bounds(qf + (size_t)h * D, w, kf + (size_t)(h / G) * cap * D, (size_t)D, Tk, D, P, rub + (size_t)h * np);
        scb_quest_top_pages(rub + (size_t)h * np, np, kp, rsel + (size_t)h * kp);
    }
    uint16_t *dq = dup_dev(qb, sizeof(uint16_t) * (size_t)Hq * D);
    uint16_t *dk = dup_dev(kb, sizeof(uint16_t) * (size_t)Hkv * cap * D);
    const size_t mn = (size_t)Hkv * mp * D;
    uint16_t *kmin = dalloc(sizeof(uint16_t) * mn), *kmax = dalloc(sizeof(uint16_t) * mn);
    CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, Tk, 0, kmin, kmax, mp, &g_err));
    uint16_t *m_ref = host_alloc(sizeof(uint16_t) * mn * 2), *m_got = host_alloc(sizeof(uint16_t) * mn * 2);
    down(m_ref, kmin, sizeof(uint16_t) * mn); down(m_ref + mn, kmax, sizeof(uint16_t) * mn);
    float *ub_got = host_alloc(sizeof(float) * (size_t)Hq * np);
    int32_t *sel_got = host_alloc(sizeof(int32_t) * (size_t)Hq * kp), *own = host_alloc(sizeof(int32_t) * (size_t)kp);
    const int unrolls[4] = {0, 1, 2, 8};
    const int T1s[4] = {1, Tk / 2, Tk - 1, Tk};      /* metadata valid up to T1: p0 = T1 / P */
    for (int ci = 0; ci < 4; ci++) {
        const int T1 = T1s[ci] < 1 ? 1 : T1s[ci];
        const int p0 = ci == 0 ? 0 : (ci == 3 ? np : T1 / P);
        uint16_t *kmin2 = dalloc(sizeof(uint16_t) * mn), *kmax2 = dalloc(sizeof(uint16_t) * mn);
        float *dub = dalloc(sizeof(float) * (size_t)Hq * np);
        int32_t *dsel = dalloc(sizeof(int32_t) * (size_t)Hq * kp);
        void *work = dalloc(scb_cuda_quest_step_work_bytes(Hq, D, mp));
        if (p0 == np) CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, Tk, 0, kmin2, kmax2, mp, &g_err));
        else if (p0 > 0) CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, T1, 0, kmin2, kmax2, mp, &g_err));
        CK(scb_cuda_quest_step_select2(g_cc, dq, Hq, Hkv, D, dk, cap, kmin2, kmax2, mp, Tk, P, p0, kp, unrolls[ci],
                                       dub, dsel, work, &g_err));
        down(m_got, kmin2, sizeof(uint16_t) * mn); down(m_got + mn, kmax2, sizeof(uint16_t) * mn);
        down(ub_got, dub, sizeof(float) * (size_t)Hq * np);
        down(sel_got, dsel, sizeof(int32_t) * (size_t)Hq * kp);
        int ok_meta = 1, ok_ub = 1, ok_own = 1, ok_sel = 1, diffs = 0;
        double worst = 0;
        for (int s2 = 0; s2 < Hkv; s2++)
            for (size_t o = (size_t)s2 * mp * D; o < ((size_t)s2 * mp + np) * D; o++)
                if (m_got[o] != m_ref[o] || m_got[mn + o] != m_ref[mn + o]) ok_meta = 0;
        for (int h = 0; h < Hq; h++) {
            double mx = 0;
            for (int p = 0; p < np; p++) mx = fmax(mx, fabs(rub[(size_t)h * np + p]));
            for (int p = 0; p < np; p++) {
                const double e = fabs((double)ub_got[(size_t)h * np + p] - rub[(size_t)h * np + p]) / (mx > 0 ? mx : 1);
                if (!(e <= 1e-5)) ok_ub = 0;
                if (e > worst || e != e) worst = e;
            }
            const int32_t *gs = sel_got + (size_t)h * kp;
            ref_topk(ub_got + (size_t)h * np, np, kp, own);
            if (memcmp(gs, own, sizeof(int32_t) * (size_t)kp)) ok_own = 0;
            int nd = 0;
            for (int i = 1; i < kp; i++) if (gs[i] <= gs[i - 1]) ok_sel = 0;
            if (ok_sel && !near_tie_sets(gs, rsel + (size_t)h * kp, kp, rub + (size_t)h * np, np, 1e-4 * mx, &nd))
                ok_sel = 0;
            diffs += nd;
        }
        check(ok_meta && ok_ub && ok_own && ok_sel, "quest step select2 Tk=%d Hq=%d Hkv=%d D=%d P=%d kp=%d np=%d p0=%d "
              "unroll=%d: metadata %s, bounds max err %.1e of row max (tol 1e-5), pages %s the CPU top-k of the "
              "device bounds, %d pages differ from the CPU's, all near-ties%s", Tk, Hq, Hkv, D, P, kp, np, p0,
              unrolls[ci], ok_meta ? "exact" : "WRONG", worst, ok_own ? "=" : "!=", diffs, ok_sel ? "" : " (NOT)");
        scb_cuda_free(g_cc, kmin2); scb_cuda_free(g_cc, kmax2); scb_cuda_free(g_cc, dub); scb_cuda_free(g_cc, dsel);
        scb_cuda_free(g_cc, work);
    }
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, kmin); scb_cuda_free(g_cc, kmax);
    scb_free(qb); scb_free(qf); scb_free(kb); scb_free(kf); scb_free(rsel); scb_free(rub); scb_free(w);
    scb_free(m_ref); scb_free(m_got); scb_free(ub_got); scb_free(sel_got); scb_free(own);
}

/* scb_cuda_quest_decode_dev (a graph step: the key count read from the device, the last page
 * rebuilt) against scb_cuda_quest_step_select2 (p0 = the page of entry Tk - 1) + scb_cuda_quest_attn
 * on the same inputs: metadata, bounds, pages and output bit for bit, outputs NaN-poisoned. */
static void test_quest_decode_dev(int Tk, int Hq, int Hkv, int D, int P, int budget)
{
    const int np = (Tk + P - 1) / P, kp = scb_quest_kpages(Tk, P, budget);
    const size_t cap = (size_t)Tk + 37;
    const int mp = (int)((cap + P - 1) / P);
    const size_t nkv = (size_t)Hkv * cap * D, mn = (size_t)Hkv * mp * D;
    uint16_t *qb = host_alloc(sizeof(uint16_t) * (size_t)Hq * D), *kb = host_alloc(sizeof(uint16_t) * nkv),
             *vb = host_alloc(sizeof(uint16_t) * nkv);
    float *scratch = host_alloc(sizeof(float) * nkv);
    rand_bf16(qb, scratch, (size_t)Hq * D, 1.0f);
    rand_bf16(kb, scratch, nkv, 1.0f);
    rand_bf16(vb, scratch, nkv, 1.0f);
    uint16_t *dq = dup_dev(qb, sizeof(uint16_t) * (size_t)Hq * D), *dk = dup_dev(kb, sizeof(uint16_t) * nkv),
             *dv = dup_dev(vb, sizeof(uint16_t) * nkv);
    uint16_t *kmin[2], *kmax[2], *out[2];
    float *ub[2], *work[2];
    int32_t *sel[2];
    uint16_t *nan16 = host_alloc(sizeof(uint16_t) * (size_t)Hq * D);
    for (size_t i = 0; i < (size_t)Hq * D; i++) nan16[i] = 0x7fc0u;
    for (int i = 0; i < 2; i++) {
        kmin[i] = dalloc(sizeof(uint16_t) * mn); kmax[i] = dalloc(sizeof(uint16_t) * mn);
        out[i] = dup_dev(nan16, sizeof(uint16_t) * (size_t)Hq * D);
        ub[i] = dalloc(sizeof(float) * (size_t)Hq * mp);
        sel[i] = dalloc(sizeof(int32_t) * (size_t)Hq * mp);
        work[i] = dalloc(sizeof(float) * scb_cuda_quest_attn_work_floats(1, Hq, D, kp, P));
        CK(scb_cuda_quest_meta(g_cc, dk, cap, Hkv, D, P, Tk - 1, 0, kmin[i], kmax[i], mp, &g_err));  /* the previous step's */
    }
    void *swork = dalloc(scb_cuda_quest_step_work_bytes(Hq, D, mp));
    int32_t *dT = dup_dev(&Tk, sizeof Tk);
    CK(scb_cuda_quest_step_select2(g_cc, dq, Hq, Hkv, D, dk, cap, kmin[0], kmax[0], mp, Tk, P, (Tk - 1) / P, kp, 0,
                                   ub[0], sel[0], swork, &g_err));
    CK(scb_cuda_quest_attn(g_cc, dq, dk, dv, cap, out[0], 0, 1, 1, Tk, Hq, Hkv, D, P, kp, sel[0], 0.f, work[0], &g_err));
    const int fits = scb_cuda_quest_decode_dev_fits(dq, Hq, Hkv, D, dk, kmin[1], kmax[1]);
    if (fits)
        CK(scb_cuda_quest_decode_dev(g_cc, dq, Hq, Hkv, D, dk, dv, cap, kmin[1], kmax[1], mp, dT, P, kp, ub[1], sel[1],
                                     0.f, work[1], out[1], &g_err));
    CK(scb_cuda_sync(g_cc, &g_err));
    int same_meta = 1, same_ub = 1, same_sel = 1, same_out = 1;
    {
        uint16_t *a = host_alloc(sizeof(uint16_t) * mn), *b = host_alloc(sizeof(uint16_t) * mn);
        for (int t = 0; t < 2; t++) {
            down(a, t ? kmax[0] : kmin[0], sizeof(uint16_t) * mn); down(b, t ? kmax[1] : kmin[1], sizeof(uint16_t) * mn);
            for (int s2 = 0; s2 < Hkv; s2++)
                if (memcmp(a + (size_t)s2 * mp * D, b + (size_t)s2 * mp * D, sizeof(uint16_t) * (size_t)np * D)) same_meta = 0;
        }
        scb_free(a); scb_free(b);
        float *ua = host_alloc(sizeof(float) * (size_t)Hq * np), *ubb = host_alloc(sizeof(float) * (size_t)Hq * np);
        down(ua, ub[0], sizeof(float) * (size_t)Hq * np); down(ubb, ub[1], sizeof(float) * (size_t)Hq * np);
        same_ub = !memcmp(ua, ubb, sizeof(float) * (size_t)Hq * np);
        scb_free(ua); scb_free(ubb);
        int32_t *sa = host_alloc(sizeof(int32_t) * (size_t)Hq * kp), *sb = host_alloc(sizeof(int32_t) * (size_t)Hq * kp);
        down(sa, sel[0], sizeof(int32_t) * (size_t)Hq * kp); down(sb, sel[1], sizeof(int32_t) * (size_t)Hq * kp);
        same_sel = !memcmp(sa, sb, sizeof(int32_t) * (size_t)Hq * kp);
        scb_free(sa); scb_free(sb);
        uint16_t *oa = host_alloc(sizeof(uint16_t) * (size_t)Hq * D), *ob = host_alloc(sizeof(uint16_t) * (size_t)Hq * D);
        down(oa, out[0], sizeof(uint16_t) * (size_t)Hq * D); down(ob, out[1], sizeof(uint16_t) * (size_t)Hq * D);
        same_out = !memcmp(oa, ob, sizeof(uint16_t) * (size_t)Hq * D);
        for (size_t i = 0; i < (size_t)Hq * D; i++) if ((ob[i] & 0x7f80u) == 0x7f80u) same_out = 0;   /* NaN/inf left */
        scb_free(oa); scb_free(ob);
    }
    check(fits && same_meta && same_ub && same_sel && same_out, "quest decode, device key count Tk=%d Hq=%d Hkv=%d D=%d "
          "P=%d kp=%d np=%d mp=%d: fits %d, metadata %s, bounds %s, pages %s, output %s (against select2 + attention)",
          Tk, Hq, Hkv, D, P, kp, np, mp, fits, same_meta ? "equal" : "DIFFER", same_ub ? "equal" : "DIFFER",
          same_sel ? "equal" : "DIFFER", same_out ? "equal" : "DIFFERS");
    for (int i = 0; i < 2; i++) {
        scb_cuda_free(g_cc, kmin[i]); scb_cuda_free(g_cc, kmax[i]); scb_cuda_free(g_cc, out[i]);
        scb_cuda_free(g_cc, ub[i]); scb_cuda_free(g_cc, sel[i]); scb_cuda_free(g_cc, work[i]);
    }
    scb_cuda_free(g_cc, swork); scb_cuda_free(g_cc, dT);
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv);
    scb_free(qb); scb_free(kb); scb_free(vb); scb_free(scratch); scb_free(nan16);
}

/* ---- --bench: one layer's Quest decode step at Llama-3-8B's attention shape ------------------ */
static float time_ms(int reps, void (*fn)(void *), void *arg)
{
    float ms = 0;
    fn(arg);
    CK(scb_cuda_timer_start(g_cc, &g_err));
    for (int r = 0; r < reps; r++) fn(arg);
    CK(scb_cuda_timer_stop(g_cc, &g_err));
    CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
    return ms / reps;
}
struct qbench {
    int Tk, H, Hs, D, P, kp, mp, chunks;
    size_t cap;
    uint16_t *q, *k, *v, *out, *kmin, *kmax;
    float *w, *ub, *work;
    int32_t *sel;
    void *swork;
};
static void qb_meta(void *p)
{
    struct qbench *b = p;   /* the per-step metadata update: the last page */
    CK(scb_cuda_quest_meta(g_cc, b->k, b->cap, b->Hs, b->D, b->P, b->Tk, (b->Tk - 1) / b->P, b->kmin, b->kmax, b->mp,
                           &g_err));
}
static void qb_signs(void *p)
{
    struct qbench *b = p;
    CK(scb_cuda_quest_signs(g_cc, b->q, 1, b->H, b->D, b->w, &g_err));
}
static void qb_select(void *p)
{
    struct qbench *b = p;
    CK(scb_cuda_quest_select(g_cc, b->q, 0, 1, b->H, b->Hs, b->D, b->w, b->kmin, b->kmax, b->mp, b->Tk, b->P, b->kp,
                             b->ub, b->sel, &g_err));
}
static void qb_attn(void *p)
{
    struct qbench *b = p;
    CK(scb_cuda_quest_attn(g_cc, b->q, b->k, b->v, b->cap, b->out, 0, 1, 1, b->Tk, b->H, b->Hs, b->D, b->P, b->kp,
                           b->sel, 0.f, b->work, &g_err));
}
static void qb_unfused(void *p) { qb_meta(p); qb_signs(p); qb_select(p); qb_attn(p); }
static void qb_step2(void *p)
{
    struct qbench *b = p;   /* chunks holds the unroll here */
    CK(scb_cuda_quest_step_select2(g_cc, b->q, b->H, b->Hs, b->D, b->k, b->cap, b->kmin, b->kmax, b->mp, b->Tk, b->P,
                                   (b->Tk - 1) / b->P, b->kp, b->chunks, b->ub, b->sel, b->swork, &g_err));
}
static void qb_v2(void *p) { qb_step2(p); qb_attn(p); }
static void qb_topk2(void *p)
{
    struct qbench *b = p;
    CK(scb_cuda_quest_topk(g_cc, b->ub, b->H, (b->Tk + b->P - 1) / b->P, b->kp, b->sel, &g_err));
}
static void qb_dense(void *p)
{
    struct qbench *b = p;
    struct scb_attn_cuda_args da = {0};
    da.q = b->q; da.k = b->k; da.v = b->v; da.out = b->out; da.Tq = 1; da.Tk = b->Tk; da.Hq = b->H; da.Hkv = b->Hs;
    da.D = b->D; da.kv_tok_stride = (size_t)b->D; da.kv_head_stride = b->cap * b->D;
    CK(scb_attn_decode_cuda(g_cc, &da, 0, &g_err));
}

static void bench_quest(int Tk)
{
    struct qbench b = {.Tk = Tk, .H = 32, .Hs = 8, .D = 128, .P = 16};
    const int reps = 50;
    b.kp = scb_quest_kpages(Tk, b.P, 1024);
    b.cap = (size_t)Tk + 128;
    b.mp = (int)((b.cap + b.P - 1) / b.P);
    const size_t nkv = (size_t)b.Hs * b.cap * b.D, meta = (size_t)b.Hs * b.mp * b.D;
    uint16_t *h = host_alloc(nkv * 2);
    for (size_t i = 0; i < nkv; i++) h[i] = scb_bf16_from_f32(rng_normal());
    b.k = dup_dev(h, nkv * 2);
    for (size_t i = 0; i < nkv; i++) h[i] = scb_bf16_from_f32(rng_normal());
    b.v = dup_dev(h, nkv * 2);
    b.q = dup_dev(h, (size_t)b.H * b.D * 2);
    b.out = dalloc((size_t)b.H * b.D * 2);
    b.kmin = dalloc(meta * 2); b.kmax = dalloc(meta * 2);
    b.w = dalloc(sizeof(float) * (size_t)b.H * b.D);
    b.ub = dalloc(sizeof(float) * (size_t)b.H * b.mp);
    b.sel = dalloc(sizeof(int32_t) * (size_t)b.H * b.mp);
    b.work = dalloc(sizeof(float) * scb_cuda_quest_attn_work_floats(1, b.H, b.D, b.kp, b.P));
    b.swork = dalloc(scb_cuda_quest_step_work_bytes(b.H, b.D, b.mp));
    CK(scb_cuda_quest_meta(g_cc, b.k, b.cap, b.Hs, b.D, b.P, Tk, 0, b.kmin, b.kmax, b.mp, &g_err));
    const int np = (Tk + b.P - 1) / b.P;
    const double meta_mb = 2.0 * b.Hs * np * b.D * 2 / 1e6, sel_mb = 2.0 * b.H * b.kp * b.P * b.D * 2 / 1e6;
    printf("bench quest: one layer's decode step, H=%d Hkv=%d D=%d P=%d, %d keys (%d pages, kp %d): metadata %.1f MB, "
           "selected K/V of every query head %.1f MB; mean of %d, CUDA events\n", b.H, b.Hs, b.D, b.P, Tk, np, b.kp,
           meta_mb, sel_mb, reps);
    printf("  quest_bench Tk=%d dense_decode_us %.1f\n", Tk, 1e3 * time_ms(reps, qb_dense, &b));
    printf("  quest_bench Tk=%d unfused_total_us %.1f  meta %.1f  signs %.1f  select(ub+topk) %.1f  attn(+merge) %.1f\n",
           Tk, 1e3 * time_ms(reps, qb_unfused, &b), 1e3 * time_ms(reps, qb_meta, &b), 1e3 * time_ms(reps, qb_signs, &b),
           1e3 * time_ms(reps, qb_select, &b), 1e3 * time_ms(reps, qb_attn, &b));
    const int us[] = {0, 1, 2, 8};
    for (int i = 0; i < 4; i++) {
        b.chunks = us[i];
        printf("  quest_bench Tk=%d v2_total_us %.1f  step_select2 %.1f  (unroll %d%s)\n", Tk,
               1e3 * time_ms(reps, qb_v2, &b), 1e3 * time_ms(reps, qb_step2, &b), us[i], us[i] ? "" : " = auto 4");
    }
    printf("  quest_bench Tk=%d v2_topk_only_us %.1f  (H rows of %d bounds, kp %d; ub2 = step_select2 - this)\n", Tk,
           1e3 * time_ms(reps, qb_topk2, &b), np, b.kp);
    scb_cuda_free(g_cc, b.k); scb_cuda_free(g_cc, b.v); scb_cuda_free(g_cc, b.q); scb_cuda_free(g_cc, b.out);
    scb_cuda_free(g_cc, b.kmin); scb_cuda_free(g_cc, b.kmax); scb_cuda_free(g_cc, b.w); scb_cuda_free(g_cc, b.ub);
    scb_cuda_free(g_cc, b.sel); scb_cuda_free(g_cc, b.work); scb_cuda_free(g_cc, b.swork);
    scb_free(h);
}

/* ---- the bindings (harness/method_dev_*.c) on a device cache -------------------------------- */
static void no_free(void *p) { (void)p; }
static int g_dummy_ext;

/* A device KV cache of L layers x Hs stored heads for tokens of Hin heads (bookkeeping only; the
 * storage of the tested layer is passed to the binding directly). */
static struct scb_kv_cache *fake_cache(size_t L, size_t Hin, size_t Hs, size_t D, size_t cap)
{
    struct scb_kv_cache *kv = NULL;
    CK(scb_kv_cache_create_external(&kv, L, Hs, D, cap, sizeof(uint16_t), &g_dummy_ext, no_free, &g_err));
    kv->Hin = Hin;
    return kv;
}

static void test_binding_kvdrop(const char *spec, int N, int Hq, int Hkv, int D, int L, int layer)
{
    struct scb_method_spec sp;
    CK(scb_method_spec_parse(spec, &sp, &g_err));
    const struct scb_model_info mi = {L, Hq, Hkv, D, NULL};
    CK(scb_method_init(&sp.kv, &mi, &g_err));
    const struct scb_dev_method_ops *ops = scb_dev_method_find(sp.kv.ops->name);
    if (!ops) { check(0, "binding %s: no device implementation", spec); scb_method_spec_fini(&sp); return; }
    char gq[16] = "false";
    scb_method_get(&sp.kv, "gqa", gq, sizeof gq);
    const int gqa = !strcmp(gq, "true"), Hs = gqa ? Hkv : Hq, G = Hq / Hkv;
    const size_t cap = (size_t)N + 4;
    uint16_t *qb = host_alloc(sizeof(uint16_t) * (size_t)N * Hq * D), *kb = host_alloc(sizeof(uint16_t) * (size_t)N * Hkv * D);
    uint16_t *vb = host_alloc(sizeof(uint16_t) * (size_t)N * Hkv * D);
    float *qf = host_alloc(sizeof(float) * (size_t)N * Hq * D), *kf = host_alloc(sizeof(float) * (size_t)N * Hkv * D);
    float *vf = host_alloc(sizeof(float) * (size_t)N * Hkv * D);
    rand_bf16(qb, qf, (size_t)N * Hq * D, 1.0f);
    rand_bf16(kb, kf, (size_t)N * Hkv * D, 1.0f);
    rand_bf16(vb, vf, (size_t)N * Hkv * D, 1.0f);
    uint16_t *ks = host_alloc(sizeof(uint16_t) * (size_t)Hs * cap * D), *vs = host_alloc(sizeof(uint16_t) * (size_t)Hs * cap * D);
    memset(ks, 0xff, sizeof(uint16_t) * (size_t)Hs * cap * D);
    memset(vs, 0xff, sizeof(uint16_t) * (size_t)Hs * cap * D);
    for (int s = 0; s < Hs; s++) {
        const int g = s / (Hs / Hkv);
        for (int j = 0; j < N; j++) {
            memcpy(ks + ((size_t)s * cap + j) * D, kb + ((size_t)j * Hkv + g) * D, sizeof(uint16_t) * D);
            memcpy(vs + ((size_t)s * cap + j) * D, vb + ((size_t)j * Hkv + g) * D, sizeof(uint16_t) * D);
        }
    }
    uint16_t *dq = dup_dev(qb, sizeof(uint16_t) * (size_t)N * Hq * D);
    uint16_t *dk = dup_dev(ks, sizeof(uint16_t) * (size_t)Hs * cap * D), *dv = dup_dev(vs, sizeof(uint16_t) * (size_t)Hs * cap * D);
    struct scb_kv_cache *kv = fake_cache((size_t)L, (size_t)Hkv, (size_t)Hs, (size_t)D, cap);
    for (int l = 0; l < L; l++) CK(scb_kv_cache_append_meta(kv, (size_t)l, (size_t)N, 0, &g_err));
    scb_kv_cache_advance(kv, (size_t)N);
    void *st = NULL;
    CK(ops->create(&st, &sp.kv, &mi, g_cc, &g_err));
    if (ops->session_begin) CK(ops->session_begin(st, &g_err));
    const struct scb_dev_attn at = {.cc = g_cc, .q = dq, .out = NULL, .k = dk, .v = dv, .kv = kv,
                                    .layer = (size_t)layer, .T = (size_t)N, .H = (size_t)Hq, .Hs = (size_t)Hs,
                                    .D = (size_t)D, .cap = cap, .Tk = (size_t)N, .scale = 1.0f / sqrtf((float)D)};
    CK(ops->after_prefill(st, &at, &g_err));
    /* the CPU method on the same inputs */
    struct scb_kv_compress_args ca = {.k = kf, .v = vf, .q = qf, .N = N, .Nq = N, .Hq = Hq, .Hkv = Hkv, .D = D,
                                      .scale = 0.f, .layer = layer, .L = L};
    struct scb_kv_keep keep = {0};
    CK(scb_method_kv_after_prefill(&sp.kv, &ca, &keep, &g_err));
    CK(scb_cuda_download(g_cc, ks, dk, sizeof(uint16_t) * (size_t)Hs * cap * D, &g_err));
    CK(scb_cuda_download(g_cc, vs, dv, sizeof(uint16_t) * (size_t)Hs * cap * D, &g_err));
    int rows_ok = 1, lists_ok = 1, diffs = 0;
    size_t kept = 0;
    for (int s = 0; s < Hs; s++) {
        const size_t n = scb_kv_cache_len(kv, (size_t)layer, (size_t)s);
        const int64_t *pos = scb_kv_cache_positions(kv, (size_t)layer, (size_t)s);
        const int list = keep.per_kv_head ? s / (Hs / Hkv) : (gqa ? s : s);
        const int g = s / (Hs / Hkv);
        kept += n;
        if ((int)n != keep.n[list]) { lists_ok = 0; continue; }
        for (size_t i = 0; i < n; i++) {
            const int64_t j = pos[i];
            if (j < 0 || j >= N || (i && j <= pos[i - 1])) { rows_ok = 0; break; }
            if (memcmp(ks + ((size_t)s * cap + i) * D, kb + ((size_t)j * Hkv + g) * D, sizeof(uint16_t) * D) ||
                memcmp(vs + ((size_t)s * cap + i) * D, vb + ((size_t)j * Hkv + g) * D, sizeof(uint16_t) * D))
                rows_ok = 0;
        }
        /* positions vs the CPU list: count the entries in one and not the other */
        const int32_t *r = keep.idx + (size_t)list * keep.cap;
        size_t a = 0, b = 0;
        int nd = 0;
        while (a < n || b < (size_t)keep.n[list]) {
            if (b >= (size_t)keep.n[list] || (a < n && pos[a] < r[b])) { nd++; a++; }
            else if (a >= n || r[b] < pos[a]) { nd++; b++; }
            else { a++; b++; }
        }
        if (nd > 2 + (int)n / 50) lists_ok = 0;
        diffs += nd;
    }
    (void)G;
    check(rows_ok && lists_ok, "binding %s N=%d Hq=%d Hkv=%d D=%d layer %d/%d: %zu entries kept over %d stored heads, "
          "device rows = bookkeeping, %d list entries differ from the CPU (near-ties)", spec, N, Hq, Hkv, D, layer, L,
          kept, Hs, diffs);
    scb_kv_keep_fini(&keep);
    ops->destroy(st);
    scb_kv_cache_destroy(kv);
    scb_method_spec_fini(&sp);
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv);
    scb_free(qb); scb_free(kb); scb_free(vb); scb_free(qf); scb_free(kf); scb_free(vf); scb_free(ks); scb_free(vs);
}

static int cmp_desc(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

/* Whether the CPU reference's page choice for one query row is a near-tie: the kp-th and
 * (kp+1)-th largest page bounds (scb_quest_bounds with the chunk's sign weights w) within
 * 1e-4 of the largest magnitude, so fp32 bounds on the device may keep the other page. */
static int quest_row_near_tie(const float *q, const float *w, const float *k, size_t ks, int Tk, int D, int P,
                              int budget)
{
    const int np = (Tk + P - 1) / P, kp = scb_quest_kpages(Tk, P, budget);
    if (kp >= np) return 0;
    double *ub = host_alloc(sizeof(double) * (size_t)np);
    scb_quest_bounds(q, w, k, ks, Tk, D, P, ub);
    double mx = 0;
    for (int p = 0; p < np; p++) mx = fmax(mx, fabs(ub[p]));
    qsort(ub, (size_t)np, sizeof *ub, cmp_desc);
    const int tie = ub[kp - 1] - ub[kp] <= 1e-4 * mx;   /* the kp-th largest against the next */
    scb_free(ub);
    return tie;
}

static void test_binding_quest(int N, int Hq, int Hkv, int D, int P, int budget)
{
    char spec[64];
    snprintf(spec, sizeof spec, "quest:page=%d,budget=%d", P, budget);
    struct scb_method_spec sp;
    CK(scb_method_spec_parse(spec, &sp, &g_err));
    const struct scb_model_info mi = {1, Hq, Hkv, D, NULL};
    CK(scb_method_init(&sp.kv, &mi, &g_err));
    const struct scb_dev_method_ops *ops = scb_dev_method_find("quest");
    if (!ops) { check(0, "binding quest: no device implementation"); scb_method_spec_fini(&sp); return; }
    static const int chunks[] = {1, 1, 7, 1, 70, 1, -1 /* drop temp */, 9, 1, 1};
    const int nch = (int)(sizeof chunks / sizeof chunks[0]);
    const size_t cap = (size_t)N + 100, nel = (size_t)Hkv * cap * D;
    uint16_t *kb = host_alloc(sizeof(uint16_t) * nel), *vb = host_alloc(sizeof(uint16_t) * nel);
    float *kf = host_alloc(sizeof(float) * nel), *vf = host_alloc(sizeof(float) * nel);
    rand_bf16(kb, kf, nel, 1.0f);
    rand_bf16(vb, vf, nel, 1.0f);
    uint16_t *dk = dup_dev(kb, sizeof(uint16_t) * nel), *dv = dup_dev(vb, sizeof(uint16_t) * nel);
    const size_t qmax = (size_t)70 * Hq * D;
    uint16_t *qb = host_alloc(sizeof(uint16_t) * qmax), *ob = host_alloc(sizeof(uint16_t) * qmax);
    float *qf = host_alloc(sizeof(float) * qmax), *rout = host_alloc(sizeof(float) * qmax);
    uint16_t *dq = dalloc(sizeof(uint16_t) * qmax), *dout = dalloc(sizeof(uint16_t) * qmax);
    struct scb_kv_cache *kv = fake_cache(1, (size_t)Hkv, (size_t)Hkv, (size_t)D, cap);
    void *st = NULL;
    CK(ops->create(&st, &sp.kv, &mi, g_cc, &g_err));
    if (ops->session_begin) CK(ops->session_begin(st, &g_err));
    CK(scb_kv_cache_append_meta(kv, 0, (size_t)N, 0, &g_err));
    scb_kv_cache_advance(kv, (size_t)N);
    struct scb_dev_attn at = {.cc = g_cc, .q = dq, .out = dout, .k = dk, .v = dv, .kv = kv, .layer = 0,
                              .T = (size_t)N, .H = (size_t)Hq, .Hs = (size_t)Hkv, .D = (size_t)D, .cap = cap,
                              .Tk = (size_t)N, .scale = 1.0f / sqrtf((float)D)};
    if (ops->after_prefill) CK(ops->after_prefill(st, &at, &g_err));
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    double worst = 0;
    int finite = 1, rows = 0, ties = 0;
    float *w = host_alloc(sizeof(float) * (size_t)D);
    for (int c = 0; c < nch; c++) {
        if (chunks[c] < 0) {
            /* drop the temp segment and overwrite its rows with new keys, as a next turn would */
            scb_kv_cache_drop_temp(kv);
            scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
            rand_bf16(kb, kf, nel, 1.0f);
            rand_bf16(vb, vf, nel, 1.0f);
            /* keep the global rows as they were on the device: re-upload only rows >= len */
            const size_t len = scb_kv_cache_len(kv, 0, 0);
            uint16_t *old = host_alloc(sizeof(uint16_t) * nel);
            CK(scb_cuda_download(g_cc, old, dk, sizeof(uint16_t) * nel, &g_err));
            for (int s = 0; s < Hkv; s++)
                for (size_t j = 0; j < len; j++)
                    for (int d = 0; d < D; d++) {
                        const size_t o = ((size_t)s * cap + j) * D + d;
                        kb[o] = old[o];
                        kf[o] = scb_bf16_to_f32(old[o]);
                    }
            CK(scb_cuda_download(g_cc, old, dv, sizeof(uint16_t) * nel, &g_err));
            for (int s = 0; s < Hkv; s++)
                for (size_t j = 0; j < len; j++)
                    for (int d = 0; d < D; d++) {
                        const size_t o = ((size_t)s * cap + j) * D + d;
                        vb[o] = old[o];
                        vf[o] = scb_bf16_to_f32(old[o]);
                    }
            scb_free(old);
            CK(scb_cuda_upload(g_cc, dk, kb, sizeof(uint16_t) * nel, &g_err));
            CK(scb_cuda_upload(g_cc, dv, vb, sizeof(uint16_t) * nel, &g_err));
            continue;
        }
        const int T = chunks[c];
        CK(scb_kv_cache_append_meta(kv, 0, (size_t)T, kv->seen, &g_err));
        scb_kv_cache_advance(kv, (size_t)T);
        const int Tk = (int)scb_kv_cache_len(kv, 0, 0);
        rand_bf16(qb, qf, (size_t)T * Hq * D, 1.0f);
        CK(scb_cuda_upload(g_cc, dq, qb, sizeof(uint16_t) * (size_t)T * Hq * D, &g_err));
        poison(dout, sizeof(uint16_t) * (size_t)T * Hq * D);
        at.T = (size_t)T;
        at.Tk = (size_t)Tk;
        CK(ops->decode(st, &at, &g_err));
        down(ob, dout, sizeof(uint16_t) * (size_t)T * Hq * D);
        struct scb_attn_args a = {.q = qf, .k = kf, .v = vf, .out = rout, .Tq = T, .Tk = Tk, .Hq = Hq, .Hkv = Hkv,
                                  .D = D, .kv_tok_stride = (size_t)D, .kv_head_stride = cap * D};
        CK(scb_quest_attn(&a, P, budget, &g_err));
        for (int r = 0; r < T * Hq; r++) {
            double mx = 0, rw = 0;
            for (int d = 0; d < D; d++) mx = fmax(mx, fabs(rout[(size_t)r * D + d]));
            for (int d = 0; d < D; d++) {
                const float g = scb_bf16_to_f32(ob[(size_t)r * D + d]);
                if (!isfinite(g)) finite = 0;
                const double e = fabs((double)g - rout[(size_t)r * D + d]) / (mx > 0 ? mx : 1.0);
                if (e > rw) rw = e;
            }
            rows++;
            if (rw > 1e-2) {   /* allowed only where the reference's page choice is a near-tie */
                const int h = r % Hq;
                scb_quest_signs(qf + (size_t)h * D, (size_t)Hq * D, T, D, w);
                if (quest_row_near_tie(qf + (size_t)r * D, w, kf + (size_t)(h / (Hq / Hkv)) * cap * D, (size_t)D, Tk,
                                       D, P, budget)) {
                    ties++;
                    continue;
                }
            }
            if (rw > worst) worst = rw;
        }
    }
    scb_free(w);
    check(finite && worst <= 1e-2 && ties * 50 <= rows,
          "binding %s N=%d Hq=%d Hkv=%d D=%d: decode steps, chunks of 7/9/70 rows, a dropped and refilled temp "
          "segment: max err %.2e of row max (tol 1e-2) outside %d of %d rows whose reference page choice is a "
          "near-tie (at most 2%%)", spec, N, Hq, Hkv, D, worst, ties, rows);
    ops->destroy(st);
    scb_kv_cache_destroy(kv);
    scb_method_spec_fini(&sp);
    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dout);
    scb_free(kb); scb_free(vb); scb_free(kf); scb_free(vf); scb_free(qb); scb_free(ob); scb_free(qf); scb_free(rout);
}

static void test_errors(void)
{
    float *p = dalloc(64);
    int32_t *ix = dalloc(64);
    struct scb_ctx e = {0};
    check(scb_cuda_snapkv_select(g_cc, p, 1, 4, 5, 1, ix, &e) == SCB_E_INVAL, "snapkv select n_select > P refused");
    check(scb_cuda_snapkv_scores(g_cc, (uint16_t *)p, 4, (uint16_t *)p, 8, 4, 2, 2, 16, 4, 0.f, 5, 0, 0, p, p, &e) ==
          SCB_E_INVAL, "snapkv scores W >= N refused");
    check(scb_cuda_snapkv_scores(g_cc, (uint16_t *)p, 8, (uint16_t *)p, 8, 8, 4, 2, 16, 2, 0.f, 5, 0, 0, p, p, &e) ==
          SCB_E_INVAL, "snapkv scores per-query-head lists over fewer stored heads refused");
    check(scb_cuda_quest_select(g_cc, (uint16_t *)p, 0, 1, 2, 2, 16, p, (uint16_t *)p, (uint16_t *)p, 2, 40, 16, 3,
                                p, ix, &e) == SCB_E_INVAL, "quest select with too few metadata pages refused");
    check(scb_cuda_quest_attn(g_cc, (uint16_t *)p, (uint16_t *)p, (uint16_t *)p, 8, (uint16_t *)p, 0, 1, 1, 8, 2, 2,
                              258, 16, 1, ix, 0.f, p, &e) == SCB_E_INVAL, "quest attention D > 256 refused");
    check(scb_cuda_quest_topk(g_cc, p, 1, 4, 5, ix, &e) == SCB_E_INVAL, "quest top-k kp > n refused");
    check(scb_cuda_quest_step_select2(g_cc, (uint16_t *)p, 2, 2, 16, (uint16_t *)p, 8, (uint16_t *)p, (uint16_t *)p, 1,
                                      8, 16, 0, 1, 3, p, ix, p, &e) == SCB_E_INVAL,
          "quest step select2 unroll 3 refused");
    scb_cuda_free(g_cc, p);
    scb_cuda_free(g_cc, ix);
}

int main(int argc, char **argv)
{
    int quick = 0, do_bench = 0, nargs = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);   /* lines reach a log even when a time limit kills the run */
    char *args[64];
    for (int i = 0; i < argc && nargs < 64; i++) {   /* --bench: parity_start takes one flag */
        if (i > 0 && !strcmp(argv[i], "--bench")) do_bench = 1;
        else args[nargs++] = argv[i];
    }
    argc = nargs;
    argv = args;
    int rc0 = parity_start("parity_cuda_kvsel", argc, argv,
                           "Checks the SnapKV/PyramidKV and Quest kernels against the CPU reference; exit 77 without a GPU.\n"
                           "--quick: the smaller shapes only (the host emulation in CI).\n"
                           "--bench: also time (first) one layer's Quest decode step (fused and unfused, per launcher) at\n"
                           "32K and 128K keys, Llama-3-8B's attention shape.\n",
                           "--quick", &quick);
    if (rc0 >= 0) return rc0;
    if (do_bench) {   /* first: a job's time limit then cuts tests, not the timings */
        bench_quest(32768);
        bench_quest(131072);
        fflush(stdout);
    }
    /* SnapKV: (N, W, Hq, Hkv, D, kernel, pool, gqa, n_select) */
    test_snapkv_case(37, 1, 4, 4, 16, 1, 0, 0, 10);
    test_snapkv_case(37, 8, 8, 2, 16, 5, 1, 0, 20);
    test_snapkv_case(101, 8, 8, 2, 64, 5, 0, 1, 33);
    test_snapkv_case(300, 32, 8, 1, 64, 7, 0, 0, 100);
    test_snapkv_case(257, 16, 8, 8, 128, 5, 1, 1, 64);
    if (!quick) {
        test_snapkv_case(1000, 32, 32, 8, 128, 5, 0, 0, 500);
        test_snapkv_case(2049, 32, 32, 4, 128, 5, 0, 1, 1000);
        test_snapkv_case(4100, 32, 16, 2, 64, 5, 1, 0, 4000);
    }
    test_topk_ties(3, 50, 7);
    test_topk_ties(2, 3000, 1000);
    test_topk_ties(1, 5000, 4999);
    /* Quest: (Tk, Tq, Hq, Hkv, D, P, budget) */
    test_quest_case(40, 1, 4, 4, 16, 16, 16);
    test_quest_case(333, 1, 8, 2, 64, 16, 64);
    test_quest_case(333, 3, 8, 1, 64, 5, 40);
    test_quest_case(301, 17, 8, 8, 128, 16, 100);
    if (!quick) {
        test_quest_case(4100, 1, 32, 8, 128, 16, 1024);
        test_quest_case(4099, 9, 32, 4, 128, 16, 512);
        test_quest_case(8191, 70, 16, 2, 64, 16, 1024);
    }
    /* the radix top-k: (R, n, k, ties) */
    test_quest_topk(3, 1, 1, 0);
    test_quest_topk(2, 31, 31, 1);
    test_quest_topk(4, 777, 64, 0);
    test_quest_topk(4, 777, 64, 1);
    test_quest_topk(2, 1025, 1025, 1);
    test_quest_topk(32, 2049, 64, 0);
    if (!quick) {
        test_quest_topk(32, 8200, 64, 0);          /* over the default shared memory: raised limit */
        test_quest_topk(8, 8200, 64, 1);
        test_quest_topk(3, 50001, 1000, 0);        /* over the raised limit: read from global memory */
        test_quest_topk(2, 50001, 333, 1);
        test_quest_topk(2, 12345, 12345, 0);
    }
    /* the decode-step selection v2: (Tk, Hq, Hkv, D, P, budget); GQA 1/4/8/16, D 16..256, odd
     * page counts, kp = np, D % 8 != 0 (the separate launchers) */
    test_quest_step2(333, 8, 2, 64, 16, 64);
    test_quest_step2(201, 8, 8, 16, 5, 40);
    test_quest_step2(777, 8, 1, 32, 16, 128);
    test_quest_step2(1001, 32, 8, 128, 16, 256);
    test_quest_step2(96, 4, 4, 32, 16, 4096);     /* kp = np */
    test_quest_step2(40, 8, 2, 64, 16, 16);       /* kp = np = 3 */
    test_quest_step2(250, 4, 1, 20, 7, 60);       /* D % 8 != 0 */
    test_quest_step2(517, 16, 1, 48, 16, 96);
    if (!quick) {
        test_quest_step2(4099, 32, 8, 128, 16, 1024);
        test_quest_step2(40001, 32, 8, 128, 16, 1024);
        test_quest_step2(131200, 32, 8, 128, 16, 1024);
        test_quest_step2(9000, 16, 1, 256, 16, 512);
        test_quest_step2(5003, 64, 4, 128, 16, 1024);
        test_quest_step2(3001, 32, 2, 96, 16, 512);
        test_quest_step2(2001, 8, 8, 256, 32, 1024);
        test_quest_step2(1999, 8, 1, 8, 16, 300);
        test_quest_step2(4097, 16, 4, 2, 16, 1024);
        test_quest_decode_dev(1000, 32, 8, 128, 16, 256);    /* mid-page */
        test_quest_decode_dev(4097, 32, 8, 128, 16, 1024);   /* the first entry of a new page */
        test_quest_decode_dev(4096, 32, 8, 128, 16, 1024);   /* the last entry of a page */
        test_quest_decode_dev(517, 8, 2, 64, 16, 128);
        test_quest_decode_dev(3001, 32, 2, 96, 16, 512);
        test_quest_decode_dev(2001, 8, 8, 256, 32, 1024);
        test_quest_decode_dev(33001, 32, 8, 128, 16, 4096);  /* 32K */
    }
    test_errors();
    /* the bindings: (spec, N, Hq, Hkv, D, L, layer) */
    test_binding_kvdrop("streamingllm:n_init=3,n_local=40", 101, 8, 2, 64, 2, 1);
    test_binding_kvdrop("streamingllm:n_init=3,n_local=40,gqa=true", 101, 8, 2, 16, 2, 0);
    test_binding_kvdrop("snapkv:budget=48,window=8", 203, 8, 2, 64, 2, 0);
    test_binding_kvdrop("snapkv:budget=48,window=8,pooling=maxpool,gqa=true", 203, 8, 2, 128, 2, 1);
    test_binding_kvdrop("pyramidkv:budget=48,window=8", 203, 4, 4, 32, 4, 3);
    test_binding_kvdrop("pyramidkv:budget=48,window=8,gqa=true", 203, 8, 1, 64, 4, 0);
    if (!quick) test_binding_kvdrop("snapkv:budget=1024,window=32", 4099, 32, 8, 128, 2, 1);
    test_binding_quest(203, 8, 2, 64, 16, 64);
    test_binding_quest(150, 4, 4, 32, 5, 30);
    if (!quick) test_binding_quest(4100, 32, 8, 128, 16, 1024);
    {   /* an unknown path is refused when the method is created */
        struct scb_method_spec sp;
        const struct scb_model_info mi = {1, 8, 2, 64, NULL};
        const struct scb_dev_method_ops *ops = scb_dev_method_find("quest");
        void *st = NULL;
        struct scb_ctx e = {0};
        CK(scb_method_spec_parse("quest", &sp, &g_err));
        CK(scb_method_init(&sp.kv, &mi, &g_err));
        setenv("SCB_QUEST_DECODE", "bogus", 1);
        const int rc = ops ? ops->create(&st, &sp.kv, &mi, g_cc, &e) : SCB_OK;
        check(rc == SCB_E_INVAL && st == NULL, "binding quest: SCB_QUEST_DECODE=bogus refused (%s)", e.msg);
        if (ops && st) ops->destroy(st);
        unsetenv("SCB_QUEST_DECODE");
        scb_method_spec_fini(&sp);
    }
    setenv("SCB_QUEST_DECODE", "unfused", 1);   /* the separate launchers for one-row steps too */
    test_binding_quest(203, 8, 2, 64, 16, 64);
    if (!quick) test_binding_quest(4100, 32, 8, 128, 16, 1024);
    setenv("SCB_QUEST_DECODE", "v2", 1);        /* named explicitly (also the default above) */
    test_binding_quest(150, 4, 4, 32, 5, 30);
    unsetenv("SCB_QUEST_DECODE");
    scb_cuda_ctx_destroy(g_cc);
    printf("parity_cuda_kvsel: %d passed, %d failed (seed %llu)\n", g_pass, g_fail, (unsigned long long)g_seed);
    return g_fail ? 1 : 0;
}
