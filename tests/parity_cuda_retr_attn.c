/* parity_cuda_retr_attn.c — RetrievalAttention's device attention (kernels/retr_attn_cuda.h)
 * against the CPU reference of methods/retr_attn.c on a grid of shapes (suite 'cuda'; exit 77
 * without a CUDA device).
 *
 * Each case: one decode row over a layer's cache storage (Hkv, kcap, D) of seeded random bf16
 * keys/values (Tk entries, the first Tg global, the rest temp) and bf16 queries. The host side
 * does what the device binding does (harness/method_dev_retr_attn.c): the retrieval with the
 * CPU index code (scb_retr_flat_topk over [n_sink, Tg - n_recent) of the fp32 copy of the bf16
 * keys), the ids uploaded per query head; the kernel attends the resident ranges and the lists
 * and merges them by log-sum-exp. Reference: scb_retr_attn (selection + one softmax over the
 * sorted union, double) on the same numbers, and scb_retr_attn_row_merged (SCBench's two-part
 * merge) for the lse; the same launch once more as a CUDA graph step runs it (the window's end
 * read from the device, the launch sized for kcap) must give the same bits. Outputs NaN-poisoned
 * first. Tolerance: rel L2 1e-2 on out (one bf16
 * rounding, 2^-9, plus fp32 vs double sums; a wrong key, window or weight gives order-1
 * errors), abs 1e-3 on lse (fp32 scores). Argument checks: SCB_E_INVAL.
 * --bench times one layer's step at 32K keys on Llama-3-8B's attention shape (Hq 32, Hkv 8,
 * D 128; SCBench's top_k 4096, n_sink 128, n_recent 512): the host flat search per query head
 * (single thread, as the CPU method), the upload of the lists and the kernel; and the flat
 * retrieval on the device (scb_retr_flat_topk_cuda) at 32K and 128K keys. PARITY_RETR_SCAN_ONLY=N
 * times only that retrieval at N keys (for a profiler: its launches are the run's only ones).
 * Each case also runs the device retrieval and requires exactly the host's lists (ids and order;
 * cases of repeated keys put ties at the top-k boundary, among the cluster top-k's candidates or
 * not, one a 50K index past the top-k's shared-memory stage). */
#include "kernels/retr_attn_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "kernels/kvsel_cuda.h"
#include "tests/parity_util.h"
#include "kernels/util.h"
#include "methods/dense.h"
#include "methods/retr_attn.h"






static void report(const char *name, int ok, const char *detail)
{
    printf("  %-60s %s  %s\n", name, detail, ok ? "ok" : "FAIL");
    if (ok) g_pass++; else g_fail++;
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

struct rcase { int Hq, Hkv, D, Tk, Tg, n_sink, n_recent, top_k, dup; };   /* dup: keys repeat (ties) */

/* The host half of one step, as the binding: lists (Hq, stride), counts (Hq); returns the
 * resident ranges. */
static void host_select(const struct rcase *c, const float *hk, size_t kcap, const float *fq, int stride,
                        int32_t *lists, int32_t *cnt, int *r)
{
    const int G = c->Hq / c->Hkv, nc = c->Tk, g_i = nc < c->Tg ? nc : c->Tg;
    if (g_i < c->n_sink + c->n_recent) {
        r[0] = 0; r[1] = nc; r[2] = nc; r[3] = nc;
        for (int h = 0; h < c->Hq; h++) cnt[h] = 0;
        return;
    }
    const int lo = c->n_sink, hi = g_i - c->n_recent;
    for (int h = 0; h < c->Hq; h++) {
        int32_t *out = lists + (size_t)h * stride;
        int n = scb_retr_flat_topk(fq + (size_t)h * c->D, hk + ((size_t)(h / G) * kcap + lo) * c->D, (size_t)c->D,
                                   NULL, hi - lo, c->D, c->top_k, out, NULL);
        if (n < 0) die("scb_retr_flat_topk");
        for (int t = 0; t < n; t++) out[t] += lo;
        qsort(out, (size_t)n, sizeof *out, cmp_i32);
        cnt[h] = n;
    }
    r[0] = 0; r[1] = c->n_sink; r[2] = hi; r[3] = nc;
}

static void run_case(const struct rcase *c)
{
    const int Hq = c->Hq, Hkv = c->Hkv, D = c->D, Tk = c->Tk;
    const size_t kcap = (size_t)Tk + 263, nkv = (size_t)Hkv * kcap * D;   /* room for a graph step's bound */
    char name[200], detail[160];
    snprintf(name, sizeof name, "Hq=%d Hkv=%d D=%d Tk=%d Tg=%d sink=%d recent=%d top_k=%d", Hq, Hkv, D, Tk, c->Tg,
             c->n_sink, c->n_recent, c->top_k);
    printf("%s\n", name);
    uint16_t *hk = host_alloc(nkv * 2), *hv = host_alloc(nkv * 2), *hq = host_alloc((size_t)Hq * D * 2);
    float *fk = host_alloc(nkv * 4), *fv = host_alloc(nkv * 4), *fq = host_alloc((size_t)Hq * D * 4);
    for (size_t i = 0; i < nkv; i++) {
        hk[i] = scb_bf16_from_f32(rng_normal() * 1.5f);
        hv[i] = scb_bf16_from_f32(rng_normal());
    }
    /* dup > 0: every key a copy of one of `dup` rows (equal scores, ties at the top-k boundary);
     * dup < 0: the keys of the second half copies of -dup rows (concentrated scores in one half: there the
     * cluster top-k's warps read their whole ranges, in the other half only their candidates) */
    const int nd = c->dup < 0 ? -c->dup : c->dup, t_dup = c->dup < 0 ? Tk / 2 : nd;
    if (c->dup)
        for (int g = 0; g < Hkv; g++)
            for (int t = t_dup; t < Tk; t++)
                memcpy(hk + ((size_t)g * kcap + t) * D, hk + ((size_t)g * kcap + (size_t)(t % nd)) * D,
                       sizeof(uint16_t) * D);
    for (size_t i = 0; i < nkv; i++) { fk[i] = scb_bf16_to_f32(hk[i]); fv[i] = scb_bf16_to_f32(hv[i]); }
    for (size_t i = 0; i < (size_t)Hq * D; i++) { hq[i] = scb_bf16_from_f32(rng_normal()); fq[i] = scb_bf16_to_f32(hq[i]); }

    /* reference: the CPU method's whole path on the same numbers */
    float *ro = host_alloc((size_t)Hq * D * 4), *rl = host_alloc((size_t)Hq * 4);
    struct scb_attn_args ra = {0};
    ra.q = fq; ra.k = fk; ra.v = fv; ra.out = ro; ra.lse = rl;
    ra.Tq = 1; ra.Tk = Tk; ra.Hq = Hq; ra.Hkv = Hkv; ra.D = D;
    ra.kv_tok_stride = (size_t)D; ra.kv_head_stride = kcap * D; ra.Tk_global = c->Tg; ra.q_pos0 = Tk - 1;
    CK(scb_retr_attn(&ra, c->n_sink, c->n_recent, c->top_k, &g_err));
    /* SCBench's two-part merge of the same row (its lse) */
    float *mo = host_alloc((size_t)D * 4), ml_max = 0;
    for (int h = 0; h < Hq; h++) {
        float ml;
        CK(scb_retr_attn_row_merged(&ra, 0, h, c->n_sink, c->n_recent, c->top_k, mo, &ml, &g_err));
        if (fabsf(ml - rl[h]) > ml_max) ml_max = fabsf(ml - rl[h]);
    }

    const int stride = c->top_k < Tk ? c->top_k : Tk;
    int32_t *lists = host_alloc(sizeof(int32_t) * (size_t)Hq * stride), *cnt = host_alloc(sizeof(int32_t) * (size_t)Hq);
    int r[4];
    host_select(c, fk, kcap, fq, stride, lists, cnt, r);

    uint16_t *dk = dev_alloc(nkv * 2), *dv = dev_alloc(nkv * 2), *dq = dev_alloc((size_t)Hq * D * 2);
    uint16_t *dout = dev_alloc((size_t)Hq * D * 2);
    float *dlse = dev_alloc((size_t)Hq * 4);
    int32_t *didx = dev_alloc(sizeof(int32_t) * (size_t)Hq * stride), *dcnt = dev_alloc(sizeof(int32_t) * (size_t)Hq);
    size_t wf = scb_retr_attn_cuda_work_floats(Hq, D, (r[1] - r[0]) + (r[3] - r[2]), stride);
    float *work = dev_alloc(wf * 4);
    CK(scb_cuda_upload(g_cc, dk, hk, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dv, hv, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dq, hq, (size_t)Hq * D * 2, &g_err));
    CK(scb_cuda_upload(g_cc, didx, lists, sizeof(int32_t) * (size_t)Hq * stride, &g_err));
    CK(scb_cuda_upload(g_cc, dcnt, cnt, sizeof(int32_t) * (size_t)Hq, &g_err));
    CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse, F32_NAN, (size_t)Hq, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)work, F32_NAN, wf, &g_err));
    struct scb_retr_attn_cuda_args a = {dq, dk, dv, kcap, Hq, Hkv, D, r[0], r[1], r[2], r[3], didx, dcnt, stride,
                                        0.0f, dout, dlse, work};
    CK(scb_retr_attn_cuda(g_cc, &a, &g_err));
    CK(scb_cuda_sync(g_cc, &g_err));
    double rel, lmax;
    const int finite = compare_out_lse(dout, dlse, ro, rl, Hq, D, &rel, &lmax);
    snprintf(detail, sizeof detail, "out rel %.2e (tol 1e-2), lse maxabs %.2e (tol 1e-3; merged-vs-union %.1e)%s", rel,
             lmax, (double)ml_max, finite ? "" : " NONFINITE");
    report("  resident + retrieved, lse-merged", finite && rel <= 1e-2 && lmax <= 1e-3, detail);

    /* a graph step's launch: the second range's end read from the device, the launch sized for
     * the bound kcap (empty chunks past the end): the same bits */
    {
        uint16_t *o1 = host_alloc((size_t)Hq * D * 2), *o2 = host_alloc((size_t)Hq * D * 2);
        float *l1 = host_alloc((size_t)Hq * 4), *l2 = host_alloc((size_t)Hq * 4);
        int32_t *dend = dev_alloc(sizeof(int32_t));
        size_t wb = scb_retr_attn_cuda_work_floats(Hq, D, (r[1] - r[0]) + ((int)kcap - r[2]), stride);
        float *wk2 = dev_alloc(wb * 4);
        CK(scb_cuda_download(g_cc, o1, dout, (size_t)Hq * D * 2, &g_err));
        CK(scb_cuda_download(g_cc, l1, dlse, (size_t)Hq * 4, &g_err));
        CK(scb_cuda_upload(g_cc, dend, &r[3], sizeof(int32_t), &g_err));
        CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)Hq * D, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse, F32_NAN, (size_t)Hq, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)wk2, F32_NAN, wb, &g_err));
        struct scb_retr_attn_cuda_args b = a;
        b.r1_end = (int)kcap; b.r1_end_dev = dend; b.work = wk2;
        CK(scb_retr_attn_cuda(g_cc, &b, &g_err));
        CK(scb_cuda_download(g_cc, o2, dout, (size_t)Hq * D * 2, &g_err));
        CK(scb_cuda_download(g_cc, l2, dlse, (size_t)Hq * 4, &g_err));
        const int same = !memcmp(o1, o2, (size_t)Hq * D * 2) && !memcmp(l1, l2, (size_t)Hq * 4);
        snprintf(detail, sizeof detail, "end %d from the device, launch bound %zu: %s", r[3], kcap,
                 same ? "identical" : "DIFFERENT");
        report("  device end (graph step) = host end, bit for bit", same, detail);
        scb_cuda_free(g_cc, dend); scb_cuda_free(g_cc, wk2);
        scb_free(o1); scb_free(o2); scb_free(l1); scb_free(l2);
    }

    /* the flat retrieval on the device (SCB_RETR_SEARCH=device): exactly the host's lists */
    if (r[1] == c->n_sink && r[2] > c->n_sink) {   /* the row retrieves from a non-empty index */
        const int lo = c->n_sink, hi = r[2];
        float *dsc = dev_alloc(sizeof(float) * scb_retr_flat_cuda_work_floats(Hq, hi - lo));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)didx, 0xffffffffu, (size_t)Hq * stride, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)dcnt, 0xffffffffu, (size_t)Hq, &g_err));
        CK(scb_retr_flat_topk_cuda(g_cc, dq, dk, kcap, Hq, Hkv, D, lo, hi, c->top_k, didx, stride, dcnt, dsc, &g_err));
        int32_t *gl = host_alloc(sizeof(int32_t) * (size_t)Hq * stride), *gc = host_alloc(sizeof(int32_t) * (size_t)Hq);
        CK(scb_cuda_download(g_cc, gl, didx, sizeof(int32_t) * (size_t)Hq * stride, &g_err));
        CK(scb_cuda_download(g_cc, gc, dcnt, sizeof(int32_t) * (size_t)Hq, &g_err));
        int bad = 0;
        for (int h = 0; h < Hq; h++) {
            if (gc[h] != cnt[h]) { bad++; continue; }
            if (memcmp(gl + (size_t)h * stride, lists + (size_t)h * stride, sizeof(int32_t) * (size_t)cnt[h])) bad++;
        }
        snprintf(detail, sizeof detail, "%d of %d heads' lists differ from the host's (%d ids each)", bad, Hq, cnt[0]);
        report("  device flat top-k = the host's lists (ids, order)", bad == 0, detail);
        scb_free(gl); scb_free(gc);
        scb_cuda_free(g_cc, dsc);
    }

    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dout);
    scb_cuda_free(g_cc, dlse); scb_cuda_free(g_cc, didx); scb_cuda_free(g_cc, dcnt); scb_cuda_free(g_cc, work);
    scb_free(hk); scb_free(hv); scb_free(hq); scb_free(fk); scb_free(fv); scb_free(fq);
    scb_free(ro); scb_free(rl); scb_free(mo); scb_free(lists); scb_free(cnt);
}

static void test_errors(void)
{
    printf("argument checks\n");
    uint16_t *d = dev_alloc(4096 * 2);
    float *work = dev_alloc(4096 * 4);
    struct scb_retr_attn_cuda_args a = {d, d, d, 16, 4, 2, 64, 0, 4, 8, 16, NULL, NULL, 0, 0.0f, d, NULL, work};
    a.D = 258;
    report("D=258 refused", scb_retr_attn_cuda(g_cc, &a, &g_err) == SCB_E_INVAL, "");
    a.D = 64; a.r1_begin = 2;
    report("overlapping ranges refused", scb_retr_attn_cuda(g_cc, &a, &g_err) == SCB_E_INVAL, "");
    a.r1_begin = 8; a.r1_end = 17;
    report("range past kcap refused", scb_retr_attn_cuda(g_cc, &a, &g_err) == SCB_E_INVAL, "");
    a.r1_end = 16; a.idx_stride = 4;
    report("lists without ids refused", scb_retr_attn_cuda(g_cc, &a, &g_err) == SCB_E_INVAL, "");
    a.Hq = 3;
    a.idx_stride = 0;
    report("Hq % Hkv != 0 refused", scb_retr_attn_cuda(g_cc, &a, &g_err) == SCB_E_INVAL, "");
    scb_cuda_free(g_cc, d); scb_cuda_free(g_cc, work);
}

/* The flat retrieval on the device at Tk keys (scores + top-k of one layer's step), us. */
static void bench_device_scan(int Tk)
{
    const struct rcase c = {32, 8, 128, Tk, Tk, 128, 512, 4096, 0};
    const int Hq = c.Hq, Hkv = c.Hkv, D = c.D, reps = 20, lo = c.n_sink, hi = Tk - c.n_recent;
    const size_t kcap = (size_t)Tk + 64, nkv = (size_t)Hkv * kcap * D;
    uint16_t *h = host_alloc(nkv * 2);
    for (size_t i = 0; i < nkv; i++) h[i] = scb_bf16_from_f32(rng_normal());
    uint16_t *dk = dev_alloc(nkv * 2), *dq = dev_alloc((size_t)Hq * D * 2);
    CK(scb_cuda_upload(g_cc, dk, h, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dq, h, (size_t)Hq * D * 2, &g_err));
    int32_t *didx = dev_alloc(sizeof(int32_t) * (size_t)Hq * c.top_k), *dcnt = dev_alloc(sizeof(int32_t) * (size_t)Hq);
    float *dsc = dev_alloc(sizeof(float) * scb_retr_flat_cuda_work_floats(Hq, hi - lo)), ms = 0;
    CK(scb_retr_flat_topk_cuda(g_cc, dq, dk, kcap, Hq, Hkv, D, lo, hi, c.top_k, didx, c.top_k, dcnt, dsc, &g_err));
    CK(scb_cuda_timer_start(g_cc, &g_err));
    for (int i = 0; i < reps; i++)
        CK(scb_retr_flat_topk_cuda(g_cc, dq, dk, kcap, Hq, Hkv, D, lo, hi, c.top_k, didx, c.top_k, dcnt, dsc, &g_err));
    CK(scb_cuda_timer_stop(g_cc, &g_err));
    CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
    const double keys = (double)Hkv * (hi - lo) * D * 2, us = 1e3 * ms / reps;
    printf("  device flat retrieval, %6d keys          %9.1f us  (bf16 keys %.1f MB: %.0f GB/s; scores + top-%d of %d "
           "heads)\n", Tk, us, keys / 1e6, keys / (us * 1e3), c.top_k, Hq);
    CK(scb_cuda_timer_start(g_cc, &g_err));
    for (int i = 0; i < reps; i++) CK(scb_cuda_topk_rows(g_cc, dsc, Hq, hi - lo, c.top_k, didx, c.top_k, lo, &g_err));
    CK(scb_cuda_timer_stop(g_cc, &g_err));
    CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
    printf("    of which the top-k alone                  %9.1f us\n", 1e3 * ms / reps);
    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, didx); scb_cuda_free(g_cc, dcnt);
    scb_cuda_free(g_cc, dsc);
    scb_free(h);
}

static void bench(void)
{
    const struct rcase c = {32, 8, 128, 32768, 32768, 128, 512, 4096, 0};
    const int Hq = c.Hq, Hkv = c.Hkv, D = c.D, reps = 20;
    const size_t kcap = (size_t)c.Tk + 64, nkv = (size_t)Hkv * kcap * D;
    printf("bench: one layer's step, Hq=%d Hkv=%d D=%d, %d keys, n_sink %d, n_recent %d, top_k %d\n", Hq, Hkv, D, c.Tk,
           c.n_sink, c.n_recent, c.top_k);
    uint16_t *h = host_alloc(nkv * 2);
    float *fk = host_alloc(nkv * 4), *fq = host_alloc((size_t)Hq * D * 4);
    for (size_t i = 0; i < nkv; i++) { h[i] = scb_bf16_from_f32(rng_normal()); fk[i] = scb_bf16_to_f32(h[i]); }
    for (size_t i = 0; i < (size_t)Hq * D; i++) fq[i] = fk[i];
    uint16_t *dk = dev_alloc(nkv * 2), *dv = dev_alloc(nkv * 2), *dq = dev_alloc((size_t)Hq * D * 2);
    uint16_t *dout = dev_alloc((size_t)Hq * D * 2);
    CK(scb_cuda_upload(g_cc, dk, h, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dv, h, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dq, h, (size_t)Hq * D * 2, &g_err));
    const int stride = c.top_k;
    int32_t *lists = host_alloc(sizeof(int32_t) * (size_t)Hq * stride), *cnt = host_alloc(sizeof(int32_t) * (size_t)Hq);
    int r[4];
    double t0 = scb_now_ms();
    host_select(&c, fk, kcap, fq, stride, lists, cnt, r);
    double sel_ms = scb_now_ms() - t0;
    int32_t *didx = dev_alloc(sizeof(int32_t) * (size_t)Hq * stride), *dcnt = dev_alloc(sizeof(int32_t) * (size_t)Hq);
    size_t wf = scb_retr_attn_cuda_work_floats(Hq, D, (r[1] - r[0]) + (r[3] - r[2]), stride);
    float *work = dev_alloc(wf * 4), ms = 0;
    t0 = scb_now_ms();
    for (int i = 0; i < reps; i++) {
        CK(scb_cuda_upload(g_cc, didx, lists, sizeof(int32_t) * (size_t)Hq * stride, &g_err));
        CK(scb_cuda_upload(g_cc, dcnt, cnt, sizeof(int32_t) * (size_t)Hq, &g_err));
    }
    double up_ms = (scb_now_ms() - t0) / reps;
    struct scb_retr_attn_cuda_args a = {dq, dk, dv, kcap, Hq, Hkv, D, r[0], r[1], r[2], r[3], didx, dcnt, stride,
                                        0.0f, dout, NULL, work};
    CK(scb_retr_attn_cuda(g_cc, &a, &g_err));
    CK(scb_cuda_timer_start(g_cc, &g_err));
    for (int i = 0; i < reps; i++) CK(scb_retr_attn_cuda(g_cc, &a, &g_err));
    CK(scb_cuda_timer_stop(g_cc, &g_err));
    CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
    /* the kernel reads, per query head, its resident + retrieved K and V rows (bf16) */
    double bytes = (double)Hq * ((c.n_sink + c.n_recent + c.top_k) * 2.0 * D * 2);
    double scan = (double)Hq * (c.Tg - c.n_sink - c.n_recent) * D * 4;
    printf("  host flat search (1 thread, all %d heads) %9.2f ms   (fp32 keys scanned %.1f MB)\n", Hq, sel_ms, scan / 1e6);
    printf("  upload of the lists                        %9.3f ms\n", up_ms);
    printf("  device attention                            %9.1f us  reads %.2f MB  %.0f GB/s\n", 1e3 * ms / reps,
           bytes / 1e6, bytes / (1e-3 * ms / reps) / 1e9);
    scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dout);
    scb_cuda_free(g_cc, didx); scb_cuda_free(g_cc, dcnt); scb_cuda_free(g_cc, work);
    scb_free(h); scb_free(fk); scb_free(fq); scb_free(lists); scb_free(cnt);
}

int main(int argc, char **argv)
{
    int do_bench = 0;
    int rc0 = parity_start("parity_cuda_retr_attn", argc, argv,
                           "RetrievalAttention's device attention against methods/retr_attn.c; exit 77 without a GPU.\n"
                           "--bench also times one layer's step at 32K keys.\n",
                           "--bench", &do_bench);
    if (rc0 >= 0) return rc0;
    const char *only = getenv("PARITY_RETR_SCAN_ONLY");   /* N: time only the search at N keys (profilers) */
    if (only && atoi(only) > 0) {
        bench_device_scan(atoi(only));
        scb_cuda_ctx_destroy(g_cc);
        return 0;
    }
    static const struct rcase cases[] = {
        /* Hq Hkv  D     Tk     Tg sink recent top_k */
        {4, 1, 32, 300, 300, 4, 16, 8},
        {8, 2, 64, 1000, 990, 16, 64, 100},          /* 10 temp tokens */
        {32, 8, 128, 5000, 4999, 128, 512, 1024},
        {32, 4, 128, 3001, 3001, 128, 512, 4096},    /* top_k > index: dense */
        {8, 1, 128, 777, 700, 0, 32, 33},            /* no sink, G = 8 */
        {16, 1, 256, 513, 513, 8, 8, 300},           /* D = 256 */
        {6, 6, 96, 200, 200, 4, 16, 50},             /* G = 1, D not a power of 2 */
        {4, 2, 64, 40, 40, 16, 32, 8},               /* Tg < n_sink + n_recent: all resident */
        {28, 4, 128, 33000, 33000, 128, 512, 4096},  /* long */
        {8, 2, 64, 6000, 6000, 4, 32, 300, 7},       /* 7 distinct keys: ties at the boundary */
        {4, 4, 128, 50000, 50000, 16, 64, 2048, 0},  /* an index past the top-k's shared-memory stage */
        {8, 2, 64, 40000, 40000, 4, 32, 3000, 2000}, /* 2000 distinct keys: ties among the candidates */
        {8, 2, 64, 40000, 40000, 4, 32, 3000, 50},   /* 50 distinct keys: every warp reads its whole range */
        {8, 2, 128, 70000, 70000, 8, 64, 4096, -40}, /* half random, half 40 distinct keys */
    };
    printf("retr_attn resident + retrieved attention vs methods/retr_attn.c\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    test_errors();
    if (do_bench) {
        bench();
        bench_device_scan(32768);
        bench_device_scan(131072);
    }
    printf("parity_cuda_retr_attn: %d passed, %d failed\n", g_pass, g_fail);
    scb_cuda_ctx_destroy(g_cc);
    return g_fail ? 1 : 0;
}
