/* parity_cuda.c — every CUDA kernel (kernels/kernels_cuda.h) against a CPU reference on a grid
 * of shapes (suite 'cuda'). Inputs are seeded random bf16 values (the seed is printed; pass
 * --seed N or set SCB_SEED to reproduce); the reference runs on the bf16-rounded inputs in
 * double (attention: methods/dense.h, the project's ground truth). Outputs are poisoned with
 * NaN before each launch so an unwritten element fails. Each kernel's tolerance is declared
 * next to its check with the reason. Exits 77 (skipped) when no CUDA device is present, 0 when
 * every check passes, 1 otherwise. Depends only on libc, libm, the CUDA launchers and
 * methods/dense.c (+ kernels/status.c, kernels/alloc.c): no cJSON, no SQLite, no CMocka. */
#include "kernels/kernels_cuda.h"
#include "tests/parity_util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "methods/dense.h"



/* ---- helpers ----------------------------------------------------------------------------- */




/* n random bf16 values ~ N(0, sigma^2) into bits; their exact float values into f. */
static void rand_bf16(uint16_t *bits, float *f, size_t n, float sigma)
{
    for (size_t i = 0; i < n; i++) {
        bits[i] = scb_bf16_from_f32(rng_normal() * sigma);
        f[i] = scb_bf16_to_f32(bits[i]);
    }
}

/* Compare got against ref (n values). Returns 1 if the relative L2 error is within rel_tol,
 * every got is finite where ref is finite, and max |got-ref| <= abs_tol (abs_tol < 0 skips). */
static int compare(const char *name, const float *got, const double *ref, size_t n,
                   double rel_tol, double abs_tol)
{
    double num = 0, den = 0, maxabs = 0;
    size_t bad = 0, first = (size_t)-1;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (!isfinite(r)) {
            if (!(g == r)) { bad++; if (first == (size_t)-1) first = i; }
            continue;
        }
        if (!isfinite(g)) { bad++; if (first == (size_t)-1) first = i; continue; }
        double d = fabs(g - r);
        num += d * d;
        den += r * r;
        if (d > maxabs) maxabs = d;
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    int ok = bad == 0 && rel <= rel_tol && (abs_tol < 0 || maxabs <= abs_tol);
    printf("  %-62s rel %.2e (tol %.0e) maxabs %.2e%s  %s\n", name, rel, rel_tol, maxabs,
           bad ? " NONFINITE" : "", ok ? "ok" : "FAIL");
    if (!ok) {
        if (bad)
            printf("    first non-finite mismatch at %zu: got %g ref %g\n", first,
                   (double)got[first], ref[first]);
        int shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++) {
            double d = fabs((double)got[i] - ref[i]);
            if (isfinite(ref[i]) && d > (abs_tol >= 0 ? abs_tol : 10 * rel_tol * fabs(ref[i]))) {
                printf("    [%zu] got %.6g ref %.6g\n", i, (double)got[i], ref[i]);
                shown++;
            }
        }
        g_fail++;
    } else {
        g_pass++;
    }
    return ok;
}

static void check_exact_i32(const char *name, const int32_t *got, const int32_t *ref, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i]) { if (!bad) first = i; bad++; }
    printf("  %-62s %zu/%zu mismatches  %s\n", name, bad, n, bad ? "FAIL" : "ok");
    if (bad) {
        printf("    first at %zu: got %d ref %d\n", first, got[first], ref[first]);
        g_fail++;
    } else {
        g_pass++;
    }
}

static void check_exact_u16(const char *name, const uint16_t *got, const uint16_t *ref, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != ref[i]) { if (!bad) first = i; bad++; }
    printf("  %-62s %zu/%zu bit mismatches  %s\n", name, bad, n, bad ? "FAIL" : "ok");
    if (bad) {
        printf("    first at %zu: got 0x%04x ref 0x%04x\n", first, got[first], ref[first]);
        g_fail++;
    } else {
        g_pass++;
    }
}

/* ---- attention --------------------------------------------------------------------------- */

/* Attention tolerance: the kernel rounds P to bf16 (relative error <= 2^-9 per probability)
 * before the PV product and rounds the output to bf16 (2^-9), so ||out-ref||/||ref|| lands
 * near 3e-3; 1e-2 leaves room for fp32 accumulation order without hiding a wrong mask or a
 * wrong head (those give errors of order 1). lse is fp32 from fp32 scores of exact bf16
 * products: absolute error <= 1e-3. */
#define ATTN_REL_TOL 1e-2
#define ATTN_LSE_ABS_TOL 1e-3
#define ATTN_GUARD 64   /* elements (128 bytes of bf16: keeps out 16-byte aligned) */

struct attn_case {
    int Tq, Tk, Hq, Hkv, D;
    int head_major;   /* KV laid out (Hkv, cap, D) with cap = Tk + 5 instead of (Tk, Hkv, D) */
    int decode;       /* 0 prefill (automatic choice), 1 split-K decode kernel, 2 plain kernel
                       * (any even D), 3 FA2 prefill kernel, 4 sm90 (wgmma + TMA) prefill kernel,
                       * 5 split-K decode with SCB_ATTN_DECODE=v1 (the earlier kernel), 6 split-K
                       * decode with Tk read from device memory (scb_attn_decode_dev_cuda) */
    int n_splits;     /* decode only: 0 = auto */
};

static void run_attn_case(const struct attn_case *c)
{
    const int Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D;
    const int cap = c->head_major ? Tk + 5 : Tk;
    const size_t ts = c->head_major ? (size_t)D : (size_t)Hkv * D;
    const size_t hs = c->head_major ? (size_t)cap * D : (size_t)D;
    const size_t nq = (size_t)Tq * Hq * D, nkv = (size_t)(cap > 0 ? cap : 1) * Hkv * D;
    const size_t rows = (size_t)Tq * Hq;
    uint16_t *hq = host_alloc(nq * 2), *hk = host_alloc(nkv * 2), *hv = host_alloc(nkv * 2);
    float *fq = host_alloc(nq * 4), *fk = host_alloc(nkv * 4), *fv = host_alloc(nkv * 4);
    float *fo = host_alloc(nq * 4), *flse = host_alloc(rows * 4);
    uint16_t *ho = host_alloc(nq * 2);
    float *got = host_alloc(nq * 4), *glse = host_alloc(rows * 4);
    double *ref = host_alloc(nq * 8), *rlse = host_alloc(rows * 8);
    char name[160];

    rand_bf16(hq, fq, nq, 1.0f);
    /* keys with a per-token offset give peaked and flat rows alike */
    rand_bf16(hk, fk, nkv, 1.5f);
    rand_bf16(hv, fv, nkv, 1.0f);

    /* reference (double inside, bf16-rounded inputs) */
    if (Tq <= Tk) {
        struct scb_attn_args a = {0};
        a.q = fq; a.k = fk; a.v = fv; a.out = fo; a.lse = flse;
        a.Tq = Tq; a.Tk = Tk; a.Hq = Hq; a.Hkv = Hkv; a.D = D;
        a.kv_tok_stride = ts; a.kv_head_stride = hs;
        if (scb_attn_dense_ref(&a, &g_err) < 0) die("scb_attn_dense_ref");
    } else {
        /* query rows before Tq - Tk see no key; methods/dense.h's row function handles it */
        double *scratch = host_alloc(sizeof(double) * ((size_t)Tk + D + 1));
        const int G = Hq / Hkv, off = Tk - Tq;
        for (int i = 0; i < Tq; i++)
            for (int h = 0; h < Hq; h++) {
                int n = i + off + 1;
                if (n < 0) n = 0;
                if (n > Tk) n = Tk;
                scb_attn_row_ref(fq + ((size_t)i * Hq + h) * D, fk + (size_t)(h / G) * hs,
                                 fv + (size_t)(h / G) * hs, ts, NULL, n, D,
                                 1.0f / sqrtf((float)D), scratch, fo + ((size_t)i * Hq + h) * D,
                                 flse + (size_t)i * Hq + h);
            }
        scb_free(scratch);
    }
    for (size_t i = 0; i < nq; i++) ref[i] = fo[i];
    for (size_t i = 0; i < rows; i++) rlse[i] = flse[i];

    uint16_t *dq = dev_alloc(nq * 2), *dk = dev_alloc(nkv * 2), *dv = dev_alloc(nkv * 2);
    /* guard regions of ATTN_GUARD elements before and after out and lse catch stray writes */
    uint16_t *dout_g = dev_alloc((nq + 2 * ATTN_GUARD) * 2), *dout = dout_g + ATTN_GUARD;
    float *dlse_g = dev_alloc((rows + 2 * ATTN_GUARD) * 4), *dlse = dlse_g + ATTN_GUARD;
    CK(scb_cuda_upload(g_cc, dq, hq, nq * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dk, hk, nkv * 2, &g_err));
    CK(scb_cuda_upload(g_cc, dv, hv, nkv * 2, &g_err));
    CK(scb_cuda_fill16(g_cc, dout_g, BF16_NAN, nq + 2 * ATTN_GUARD, &g_err));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)dlse_g, F32_NAN, rows + 2 * ATTN_GUARD, &g_err));

    struct scb_attn_cuda_args a = {0};
    a.q = dq; a.k = dk; a.v = dv; a.out = dout; a.lse = dlse;
    a.Tq = Tq; a.Tk = Tk; a.Hq = Hq; a.Hkv = Hkv; a.D = D;
    a.kv_tok_stride = ts; a.kv_head_stride = hs;
    if (c->decode == 4) {
        int rc4 = scb_attn_prefill_sm90_cuda(g_cc, &a, &g_err);
        if (rc4 == SCB_E_UNSUPPORTED) {   /* not a Hopper device, or not built for sm_90a */
            printf("  sm90 prefill Tq=%d Tk=%d: SKIP (%s)\n", Tq, Tk, scb_errmsg(&g_err));
            scb_ctx_clear(&g_err);
            goto done;
        }
        CK(rc4);
    } else if (c->decode == 3)
        CK(scb_attn_prefill_fa2_cuda(g_cc, &a, &g_err));
    else if (c->decode == 2)
        CK(scb_attn_generic_cuda(g_cc, &a, &g_err));
    else if (c->decode == 5) {
        setenv("SCB_ATTN_DECODE", "v1", 1);
        int rc5 = scb_attn_decode_cuda(g_cc, &a, c->n_splits, &g_err);
        unsetenv("SCB_ATTN_DECODE");
        CK(rc5);
    } else if (c->decode == 6) {
        /* the graph form: Tk from the device, a fixed partition count (auto: the count for this
         * Tk), and the host's Tk deliberately wrong so a kernel reading it would fail */
        int32_t *dtk = dev_alloc(sizeof(int32_t)), htk = Tk;
        int ns = c->n_splits ? c->n_splits : scb_attn_decode_splits(g_cc, &a);
        CK(scb_cuda_upload(g_cc, dtk, &htk, sizeof htk, &g_err));
        a.Tk = Tk ? Tk / 2 : 0;
        CK(scb_attn_decode_dev_cuda(g_cc, &a, dtk, ns, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        scb_cuda_free(g_cc, dtk);
    } else if (c->decode)
        CK(scb_attn_decode_cuda(g_cc, &a, c->n_splits, &g_err));
    else
        CK(scb_attn_prefill_cuda(g_cc, &a, &g_err));
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, ho, dout, nq * 2, &g_err));
    CK(scb_cuda_download(g_cc, glse, dlse, rows * 4, &g_err));
    for (size_t i = 0; i < nq; i++) got[i] = scb_bf16_to_f32(ho[i]);
    {
        uint16_t g16[2 * ATTN_GUARD];
        uint32_t g32[2 * ATTN_GUARD];
        int stray = 0;
        CK(scb_cuda_download(g_cc, g16, dout_g, ATTN_GUARD * 2, &g_err));
        CK(scb_cuda_download(g_cc, g16 + ATTN_GUARD, dout + nq, ATTN_GUARD * 2, &g_err));
        CK(scb_cuda_download(g_cc, g32, dlse_g, ATTN_GUARD * 4, &g_err));
        CK(scb_cuda_download(g_cc, g32 + ATTN_GUARD, dlse + rows, ATTN_GUARD * 4, &g_err));
        for (int i = 0; i < 2 * ATTN_GUARD; i++)
            if (g16[i] != BF16_NAN || g32[i] != F32_NAN) stray = 1;
        if (stray) {
            printf("  attention Tq=%d Tk=%d Hq=%d Hkv=%d D=%d wrote outside out/lse  FAIL\n", Tq,
                   Tk, Hq, Hkv, D);
            g_fail++;
        }
    }

    char base[128], splits[24] = "";
    if ((c->decode == 1 || c->decode >= 5) && c->n_splits)
        snprintf(splits, sizeof splits, " splits=%d", c->n_splits);
    snprintf(base, sizeof base, "%s Tq=%d Tk=%d Hq=%d Hkv=%d D=%d%s%s",
             c->decode == 6 ? "decode-devTk" : c->decode == 5 ? "decode-v1"
             : c->decode == 4 ? "prefill-sm90" : c->decode == 3 ? "prefill-fa2"
             : c->decode == 2 ? "generic" : c->decode ? "decode" : "prefill", Tq, Tk, Hq, Hkv, D,
             c->head_major ? " head-major" : "", splits);
    snprintf(name, sizeof name, "%s out", base);
    compare(name, got, ref, nq, ATTN_REL_TOL, -1);
    snprintf(name, sizeof name, "%s lse", base);
    compare(name, glse, rlse, rows, 1.0, ATTN_LSE_ABS_TOL);

done:
    scb_cuda_free(g_cc, dq); scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv);
    scb_cuda_free(g_cc, dout_g); scb_cuda_free(g_cc, dlse_g);
    scb_free(hq); scb_free(hk); scb_free(hv); scb_free(fq); scb_free(fk); scb_free(fv);
    scb_free(fo); scb_free(flse); scb_free(ho); scb_free(got); scb_free(glse);
    scb_free(ref); scb_free(rlse);
}

static void test_attention(void)
{
    static const struct attn_case prefill[] = {
        {1, 1, 4, 4, 64, 0, 0, 0},
        {17, 17, 4, 1, 64, 0, 0, 0},
        {63, 63, 8, 2, 128, 0, 0, 0},
        {64, 64, 4, 4, 128, 0, 0, 0},
        {65, 65, 4, 4, 64, 0, 0, 0},
        {129, 129, 8, 1, 128, 0, 0, 0},
        {100, 300, 8, 2, 128, 0, 0, 0},      /* Tq < Tk: bottom-right causal */
        {1, 257, 8, 8, 64, 0, 0, 0},
        {77, 1000, 32, 4, 128, 1, 0, 0},     /* head-major strided cache, G = 8 */
        {50, 20, 4, 2, 64, 0, 0, 0},         /* Tq > Tk: first 30 rows see no key */
        {513, 513, 8, 1, 64, 1, 0, 0},
        {700, 1031, 8, 2, 128, 0, 0, 0},
    };
    static const struct attn_case decode[] = {
        {1, 1, 32, 8, 128, 0, 1, 0},
        {1, 7, 8, 8, 64, 0, 1, 0},
        {1, 100, 32, 4, 128, 0, 1, 0},
        {1, 1000, 32, 8, 128, 1, 1, 0},
        {1, 4097, 8, 1, 64, 0, 1, 0},
        {1, 4097, 32, 8, 128, 0, 1, 1},      /* one partition */
        {1, 4097, 32, 8, 128, 0, 1, 7},      /* odd partition count */
        {3, 999, 32, 8, 128, 0, 1, 0},       /* few query rows: causal inside the block */
        {16, 2000, 8, 2, 64, 0, 1, 0},       /* 64 rows per KV head: several row groups */
        {1, 40000, 32, 8, 128, 0, 1, 0},
        {2, 40000, 16, 16, 64, 1, 1, 0},
        {1, 0, 8, 2, 64, 0, 1, 0},           /* empty cache: out 0, lse -inf */
        {1, 63, 32, 8, 128, 1, 1, 33},       /* more partitions than 64-key tiles: empty ones */
        {5, 131, 40, 8, 128, 1, 1, 0},       /* G = 5, 25 rows: MQ 8 over four row groups */
    };
    printf("attention (tolerance: rel %.0e on out, abs %.0e on lse)\n", ATTN_REL_TOL,
           ATTN_LSE_ABS_TOL);
    for (size_t i = 0; i < sizeof prefill / sizeof prefill[0]; i++) run_attn_case(&prefill[i]);
    /* every decode case on the tiled kernel (default), the v1 kernel and the device-Tk form */
    for (int kern = 1; kern <= 3; kern++)
        for (size_t i = 0; i < sizeof decode / sizeof decode[0]; i++) {
            struct attn_case c = decode[i];
            c.decode = kern == 1 ? 1 : kern == 2 ? 5 : 6;
            run_attn_case(&c);
        }
    /* prefill kernel on decode shapes and the decode kernel on a prefill-like block agree too */
    static const struct attn_case cross[] = {
        {1, 5000, 32, 8, 128, 0, 0, 0},
        {40, 300, 8, 8, 64, 0, 1, 0},
    };
    for (size_t i = 0; i < sizeof cross / sizeof cross[0]; i++) run_attn_case(&cross[i]);
    /* the plain kernel the engine uses for other head dims (the fp32 P it keeps only makes it
     * closer to the reference than the tensor-core kernels) */
    static const struct attn_case generic[] = {
        {1, 1, 4, 2, 16, 0, 2, 0},
        {17, 17, 4, 2, 16, 0, 2, 0},
        {220, 220, 4, 2, 32, 1, 2, 0},       /* the fixtures' shape, head-major cache */
        {5, 300, 4, 1, 32, 1, 2, 0},         /* follow-up chunk: Tq < Tk */
        {50, 20, 4, 2, 16, 0, 2, 0},         /* Tq > Tk: rows without keys */
        {1, 1000, 8, 2, 80, 0, 2, 0},
        {33, 129, 4, 4, 256, 0, 2, 0},       /* D = 256: two output columns per thread */
        {65, 65, 8, 2, 64, 0, 2, 0},
    };
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++) run_attn_case(&generic[i]);
    /* both prefill kernels by name on one D=128 grid (the automatic choice above runs the sm90
     * kernel for D=128 on Hopper): lengths of 1, odd, one under / at / over the 128-row and
     * 128-key tiles of the sm90 kernel, GQA ratios 1, 4 and 8, Tq < Tk (bottom-right), Tq > Tk
     * (rows without keys, out 0 and lse -inf), the head-major strided cache. Same tolerance as
     * the FA2 kernel and for the same reason: both round P to bf16 before an fp32-accumulated
     * PV product and round out to bf16; only the summation order differs. */
    static const struct attn_case named[] = {
        {1, 1, 4, 4, 128, 0, 0, 0},
        {17, 17, 4, 1, 128, 0, 0, 0},
        {127, 127, 8, 8, 128, 0, 0, 0},
        {128, 128, 8, 2, 128, 0, 0, 0},
        {129, 129, 8, 1, 128, 0, 0, 0},
        {255, 257, 16, 4, 128, 1, 0, 0},
        {100, 300, 8, 2, 128, 0, 0, 0},      /* Tq < Tk: bottom-right causal */
        {77, 1000, 32, 4, 128, 1, 0, 0},     /* head-major strided cache, G = 8 */
        {50, 20, 4, 2, 128, 0, 0, 0},        /* Tq > Tk: first 30 rows see no key */
        {300, 131, 4, 4, 128, 1, 0, 0},      /* Tq > Tk over several query tiles */
        {1, 5000, 32, 8, 128, 0, 0, 0},
        {700, 1031, 8, 2, 128, 0, 0, 0},
        {1000, 1000, 8, 1, 128, 1, 0, 0},
    };
    for (int kern = 3; kern <= 4; kern++)
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
            struct attn_case c = named[i];
            c.decode = kern;
            run_attn_case(&c);
        }
}

/* KV append into the engine's device cache layout: (Hkv, cap, D) per layer, rows len.. of each
 * stored head from head h / (Hkv / Hin) of a packed (T, Hin, D) chunk; exact copies, and rows
 * outside [len, len + T) stay untouched (poison). */
static void test_kv_append(void)
{
    static const int cases[][6] = {   /* T, Hin, Hkv, D, cap, len */
        {1, 8, 8, 128, 40, 0}, {7, 2, 2, 64, 16, 9}, {5, 2, 8, 32, 12, 3}, {33, 1, 4, 16, 33, 0},
        {3, 1, 2, 10, 8, 2},   /* D % 8 != 0: the 2-byte kernel (the others: 16-byte copies) */
    };
    printf("kv append (exact)\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int T = cases[c][0], Hin = cases[c][1], Hkv = cases[c][2], D = cases[c][3];
        const size_t cap = (size_t)cases[c][4], len = (size_t)cases[c][5];
        const size_t nin = (size_t)T * Hin * D, ncache = (size_t)Hkv * cap * D;
        uint16_t *hk = host_alloc(nin * 2), *hv = host_alloc(nin * 2);
        uint16_t *want_k = host_alloc(ncache * 2), *want_v = host_alloc(ncache * 2);
        uint16_t *got_k = host_alloc(ncache * 2), *got_v = host_alloc(ncache * 2);
        float *scratch = host_alloc(nin * 4);
        rand_bf16(hk, scratch, nin, 1.0f);
        rand_bf16(hv, scratch, nin, 1.0f);
        for (size_t i = 0; i < ncache; i++) want_k[i] = want_v[i] = BF16_NAN;
        for (int t = 0; t < T; t++)
            for (int h = 0; h < Hkv; h++) {
                const int hi = h / (Hkv / Hin);
                memcpy(want_k + ((size_t)h * cap + len + t) * D, hk + ((size_t)t * Hin + hi) * D, (size_t)D * 2);
                memcpy(want_v + ((size_t)h * cap + len + t) * D, hv + ((size_t)t * Hin + hi) * D, (size_t)D * 2);
            }
        uint16_t *dk = dev_alloc(nin * 2), *dv = dev_alloc(nin * 2);
        uint16_t *dkc = dev_alloc(ncache * 2), *dvc = dev_alloc(ncache * 2);
        CK(scb_cuda_upload(g_cc, dk, hk, nin * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dv, hv, nin * 2, &g_err));
        CK(scb_cuda_fill16(g_cc, dkc, BF16_NAN, ncache, &g_err));
        CK(scb_cuda_fill16(g_cc, dvc, BF16_NAN, ncache, &g_err));
        int32_t *dlen = dev_alloc(sizeof(int32_t)), hlen = (int32_t)len;
        CK(scb_cuda_upload(g_cc, dlen, &hlen, sizeof hlen, &g_err));
        for (int form = 0; form < 2; form++) {     /* len from the host, then from the device */
            CK(scb_cuda_fill16(g_cc, dkc, BF16_NAN, ncache, &g_err));
            CK(scb_cuda_fill16(g_cc, dvc, BF16_NAN, ncache, &g_err));
            if (form == 0)
                CK(scb_cuda_kv_append(g_cc, dkc, dvc, dk, dv, T, Hin, Hkv, D, cap, len, &g_err));
            else
                CK(scb_cuda_kv_append_dev(g_cc, dkc, dvc, dk, dv, T, Hin, Hkv, D, cap, dlen, &g_err));
            CK(scb_cuda_sync(g_cc, &g_err));
            CK(scb_cuda_download(g_cc, got_k, dkc, ncache * 2, &g_err));
            CK(scb_cuda_download(g_cc, got_v, dvc, ncache * 2, &g_err));
            char name[96];
            snprintf(name, sizeof name, "kv append%s T=%d Hin=%d Hkv=%d D=%d len=%zu keys",
                     form ? "_dev" : "", T, Hin, Hkv, D, len);
            check_exact_u16(name, got_k, want_k, ncache);
            snprintf(name, sizeof name, "kv append%s T=%d Hin=%d Hkv=%d D=%d len=%zu values",
                     form ? "_dev" : "", T, Hin, Hkv, D, len);
            check_exact_u16(name, got_v, want_v, ncache);
        }
        scb_cuda_free(g_cc, dlen);
        scb_cuda_free(g_cc, dk); scb_cuda_free(g_cc, dv); scb_cuda_free(g_cc, dkc); scb_cuda_free(g_cc, dvc);
        scb_free(hk); scb_free(hv); scb_free(want_k); scb_free(want_v); scb_free(got_k); scb_free(got_v);
        scb_free(scratch);
    }
    struct scb_ctx e = {0};
    uint16_t *d = dev_alloc(64);
    if (scb_cuda_kv_append(g_cc, d, d, d, d, 3, 1, 1, 8, 4, 2, &e) != SCB_E_INVAL) {
        printf("  kv append past the capacity not refused  FAIL\n");
        g_fail++;
    } else {
        g_pass++;
    }
    scb_cuda_free(g_cc, d);
}

static void test_attention_errors(void)
{
    struct scb_attn_cuda_args a = {0};
    struct scb_ctx e = {0};
    int rc;
    printf("attention argument checks\n");
    a.Tq = 4; a.Tk = 4; a.Hq = 6; a.Hkv = 4; a.D = 64;
    a.q = a.k = a.v = (const uint16_t *)(uintptr_t)256;
    a.out = (uint16_t *)(uintptr_t)256;
    rc = scb_attn_prefill_cuda(g_cc, &a, &e);
    printf("  %-62s %s (%s)\n", "Hq % Hkv != 0 -> SCB_E_INVAL", rc == SCB_E_INVAL ? "ok" : "FAIL",
           scb_errmsg(&e));
    if (rc == SCB_E_INVAL) g_pass++; else g_fail++;
    a.Hq = 4; a.D = 96;
    rc = scb_attn_decode_cuda(g_cc, &a, 0, &e);
    printf("  %-62s %s (%s)\n", "D = 96 -> SCB_E_INVAL", rc == SCB_E_INVAL ? "ok" : "FAIL",
           scb_errmsg(&e));
    if (rc == SCB_E_INVAL) g_pass++; else g_fail++;
    a.D = 64;
    rc = scb_attn_prefill_sm90_cuda(g_cc, &a, &e);
    printf("  %-62s %s (%s)\n", "sm90 prefill, D = 64 -> SCB_E_UNSUPPORTED",
           rc == SCB_E_UNSUPPORTED ? "ok" : "FAIL", scb_errmsg(&e));
    if (rc == SCB_E_UNSUPPORTED) g_pass++; else g_fail++;
    setenv("SCB_ATTN_PREFILL", "fa3", 1);
    rc = scb_attn_prefill_cuda(g_cc, &a, &e);
    unsetenv("SCB_ATTN_PREFILL");
    printf("  %-62s %s (%s)\n", "SCB_ATTN_PREFILL=fa3 -> SCB_E_INVAL",
           rc == SCB_E_INVAL ? "ok" : "FAIL", scb_errmsg(&e));
    if (rc == SCB_E_INVAL) g_pass++; else g_fail++;
}

/* ---- rows and elementwise ---------------------------------------------------------------- */

/* RMSNorm tolerance: the kernel and the reference apply the same two bf16 roundings (as HF);
 * only the fp32-vs-double sum of squares differs, which flips a rounding now and then (one
 * bf16 ulp, 2^-8 relative) on a few elements: rel 2e-3 overall, no element off by more than
 * 2 ulps (1e-2 relative). */
#define RMSNORM_REL_TOL 2e-3

static void test_rmsnorm(void)
{
    static const int shapes[][2] = {{1, 64}, {5, 4096}, {3, 4095}, {7, 896}};
    printf("rmsnorm (tolerance rel %.0e)\n", RMSNORM_REL_TOL);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int T = shapes[s][0], n = shapes[s][1];
        size_t N = (size_t)T * n;
        uint16_t *hx = host_alloc(N * 2), *hw = host_alloc(n * 2), *hy = host_alloc(N * 2);
        float *fx = host_alloc(N * 4), *fw = host_alloc(n * 4), *got = host_alloc(N * 4);
        double *ref = host_alloc(N * 8);
        const float eps = 1e-6f;
        rand_bf16(hx, fx, N, 2.0f);
        for (int i = 0; i < n; i++) {
            hw[i] = scb_bf16_from_f32(rng_uniform(0.5f, 1.5f));
            fw[i] = scb_bf16_to_f32(hw[i]);
        }
        for (int t = 0; t < T; t++) {
            double ss = 0;
            for (int i = 0; i < n; i++) ss += (double)fx[(size_t)t * n + i] * fx[(size_t)t * n + i];
            float r = (float)(1.0 / sqrt(ss / n + eps));
            for (int i = 0; i < n; i++) {
                float xn = scb_bf16_to_f32(scb_bf16_from_f32(fx[(size_t)t * n + i] * r));
                ref[(size_t)t * n + i] = scb_bf16_to_f32(scb_bf16_from_f32(fw[i] * xn));
            }
        }
        uint16_t *dx = dev_alloc(N * 2), *dw = dev_alloc(n * 2), *dy = dev_alloc(N * 2);
        CK(scb_cuda_upload(g_cc, dx, hx, N * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dw, hw, n * 2, &g_err));
        CK(scb_cuda_fill16(g_cc, dy, BF16_NAN, N, &g_err));
        CK(scb_cuda_rmsnorm(g_cc, dy, dx, dw, T, n, eps, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hy, dy, N * 2, &g_err));
        for (size_t i = 0; i < N; i++) got[i] = scb_bf16_to_f32(hy[i]);
        char name[96];
        snprintf(name, sizeof name, "rmsnorm T=%d n=%d", T, n);
        compare(name, got, ref, N, RMSNORM_REL_TOL, -1);
        /* in place (y aliases x) gives the same bits */
        CK(scb_cuda_rmsnorm(g_cc, dx, dx, dw, T, n, eps, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        uint16_t *hy2 = host_alloc(N * 2);
        CK(scb_cuda_download(g_cc, hy2, dx, N * 2, &g_err));
        snprintf(name, sizeof name, "rmsnorm T=%d n=%d in place == out of place", T, n);
        check_exact_u16(name, hy2, hy, N);
        scb_free(hy2);
        scb_cuda_free(g_cc, dx); scb_cuda_free(g_cc, dw); scb_cuda_free(g_cc, dy);
        scb_free(hx); scb_free(hw); scb_free(hy); scb_free(fx); scb_free(fw); scb_free(got);
        scb_free(ref);
    }
}

/* RoPE tolerance: fp32 angle pos*inv_freq (as HF), sin/cos and rotation in fp32, one bf16
 * rounding of the result (2^-9 relative): rel 4e-3. The reference takes sin/cos in double of
 * the same fp32 angle, so a wrong range reduction at large positions would show. */
#define ROPE_REL_TOL 4e-3

static void test_rope(void)
{
    static const int shapes[][3] = {{9, 3, 128}, {17, 4, 64}, {1, 32, 128}, {5, 2, 24}};   /* D 24: the 2-byte rope_cs */
    printf("rope (tolerance rel %.0e)\n", ROPE_REL_TOL);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int T = shapes[s][0], H = shapes[s][1], D = shapes[s][2];
        size_t ts = (size_t)H * D + (s == 1 ? 8 : 0);   /* one case with a padded token stride */
        size_t N = (size_t)T * ts;
        double theta = s == 0 ? 10000.0 : 1000000.0;
        uint16_t *hx = host_alloc(N * 2), *hy = host_alloc(N * 2);
        float *fx = host_alloc(N * 4), *inv = host_alloc((size_t)D / 2 * 4), *got;
        int32_t *pos = host_alloc((size_t)T * 4);
        double *ref = host_alloc(N * 8);
        size_t nn = (size_t)T * H * D, k = 0;
        got = host_alloc(nn * 4);
        double *ref2 = host_alloc(nn * 8);
        rand_bf16(hx, fx, N, 1.0f);
        for (int i = 0; i < D / 2; i++) inv[i] = (float)pow(theta, -2.0 * i / D);
        for (int t = 0; t < T; t++)   /* position 0 once (identity), else up to 128K */
            pos[t] = (t == 0 && s == 0) ? 0 : (int32_t)(rng_next() % 131072);
        for (size_t i = 0; i < N; i++) ref[i] = fx[i];
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < D / 2; i++) {
                    size_t b = (size_t)t * ts + (size_t)h * D;
                    float ang = (float)pos[t] * inv[i];
                    double c = cos((double)ang), sn = sin((double)ang);
                    double x1 = fx[b + i], x2 = fx[b + i + D / 2];
                    ref[b + i] = x1 * c - x2 * sn;
                    ref[b + i + D / 2] = x2 * c + x1 * sn;
                }
        uint16_t *dx = dev_alloc(N * 2);
        int32_t *dpos = dev_alloc((size_t)T * 4);
        float *dinv = dev_alloc((size_t)D / 2 * 4);
        CK(scb_cuda_upload(g_cc, dx, hx, N * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dpos, pos, (size_t)T * 4, &g_err));
        CK(scb_cuda_upload(g_cc, dinv, inv, (size_t)D / 2 * 4, &g_err));
        CK(scb_cuda_rope(g_cc, dx, T, H, D, ts, dpos, dinv, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hy, dx, N * 2, &g_err));
        for (int t = 0; t < T; t++)
            for (size_t e = 0; e < (size_t)H * D; e++, k++) {
                got[k] = scb_bf16_to_f32(hy[(size_t)t * ts + e]);
                ref2[k] = ref[(size_t)t * ts + e];
            }
        char name[96];
        snprintf(name, sizeof name, "rope T=%d H=%d D=%d theta=%g stride=%zu", T, H, D, theta, ts);
        compare(name, got, ref2, nn, ROPE_REL_TOL, -1);
        /* two-step form (backend.h rope_table + rope): tables against double, then the same
         * bits as the one-step kernel (attn_scale = 1) */
        {
            const int half = D / 2;
            float *dcos = dev_alloc((size_t)T * half * 4), *dsin = dev_alloc((size_t)T * half * 4);
            float *hcos = host_alloc((size_t)T * half * 4), *hsin = host_alloc((size_t)T * half * 4);
            double *rcs = host_alloc((size_t)T * half * 2 * 8);
            float *gcs = host_alloc((size_t)T * half * 2 * 4);
            uint16_t *hy2 = host_alloc(N * 2);
            const int64_t pos0 = s == 2 ? 100000 : 3;
            const float asc = s == 1 ? 1.25f : 1.0f;
            CK(scb_cuda_rope_table(g_cc, dinv, half, pos0, T, asc, dcos, dsin, &g_err));
            CK(scb_cuda_sync(g_cc, &g_err));
            CK(scb_cuda_download(g_cc, hcos, dcos, (size_t)T * half * 4, &g_err));
            CK(scb_cuda_download(g_cc, hsin, dsin, (size_t)T * half * 4, &g_err));
            for (int t = 0; t < T; t++)
                for (int i = 0; i < half; i++) {
                    float ang = (float)(pos0 + t) * inv[i];
                    size_t e = (size_t)t * half + i;
                    rcs[2 * e] = cos((double)ang) * asc;
                    rcs[2 * e + 1] = sin((double)ang) * asc;
                    gcs[2 * e] = hcos[e];
                    gcs[2 * e + 1] = hsin[e];
                }
            /* ROPE_TABLE tolerance: fp32 sincosf, 2 ulp: abs 1e-6 */
            snprintf(name, sizeof name, "rope_table half=%d T=%d pos0=%lld scale=%g", half, T,
                     (long long)pos0, (double)asc);
            compare(name, gcs, rcs, (size_t)T * half * 2, 1e-6, 1e-6);
            {
                /* the graph form (pos0 read from the device): the same bits */
                int32_t *dp0 = dev_alloc(sizeof(int32_t)), hp0 = (int32_t)pos0;
                float *dc2 = dev_alloc((size_t)T * half * 4), *ds2 = dev_alloc((size_t)T * half * 4);
                uint32_t *h2 = host_alloc((size_t)T * half * 2 * 4), *h1 = host_alloc((size_t)T * half * 2 * 4);
                CK(scb_cuda_upload(g_cc, dp0, &hp0, sizeof hp0, &g_err));
                CK(scb_cuda_fill32(g_cc, (uint32_t *)dc2, F32_NAN, (size_t)T * half, &g_err));
                CK(scb_cuda_fill32(g_cc, (uint32_t *)ds2, F32_NAN, (size_t)T * half, &g_err));
                CK(scb_cuda_rope_table_dev(g_cc, dinv, half, dp0, T, asc, dc2, ds2, &g_err));
                CK(scb_cuda_sync(g_cc, &g_err));
                CK(scb_cuda_download(g_cc, h2, dc2, (size_t)T * half * 4, &g_err));
                CK(scb_cuda_download(g_cc, h2 + (size_t)T * half, ds2, (size_t)T * half * 4, &g_err));
                memcpy(h1, hcos, (size_t)T * half * 4);
                memcpy(h1 + (size_t)T * half, hsin, (size_t)T * half * 4);
                check_exact_i32("rope_table_dev = rope_table (bits)", (const int32_t *)h2,
                                (const int32_t *)h1, (size_t)T * half * 2);
                scb_cuda_free(g_cc, dp0); scb_cuda_free(g_cc, dc2); scb_cuda_free(g_cc, ds2);
                scb_free(h2); scb_free(h1);
            }
            if (asc == 1.0f) {
                /* positions pos0 + t in the one-step kernel too */
                int32_t *pos2 = host_alloc((size_t)T * 4);
                uint16_t *dx2 = dev_alloc(N * 2);
                uint16_t *hy1 = host_alloc(N * 2);
                for (int t = 0; t < T; t++) pos2[t] = (int32_t)(pos0 + t);
                CK(scb_cuda_upload(g_cc, dpos, pos2, (size_t)T * 4, &g_err));
                CK(scb_cuda_upload(g_cc, dx, hx, N * 2, &g_err));
                CK(scb_cuda_upload(g_cc, dx2, hx, N * 2, &g_err));
                CK(scb_cuda_rope(g_cc, dx, T, H, D, ts, dpos, dinv, &g_err));
                CK(scb_cuda_rope_cs(g_cc, dx2, T, H, D, ts, dcos, dsin, &g_err));
                CK(scb_cuda_sync(g_cc, &g_err));
                CK(scb_cuda_download(g_cc, hy1, dx, N * 2, &g_err));
                CK(scb_cuda_download(g_cc, hy2, dx2, N * 2, &g_err));
                snprintf(name, sizeof name, "rope_cs(tables) == rope(positions) T=%d H=%d D=%d", T,
                         H, D);
                check_exact_u16(name, hy2, hy1, N);
                scb_cuda_free(g_cc, dx2);
                scb_free(pos2); scb_free(hy1);
            }
            scb_cuda_free(g_cc, dcos); scb_cuda_free(g_cc, dsin);
            scb_free(hcos); scb_free(hsin); scb_free(rcs); scb_free(gcs); scb_free(hy2);
        }
        /* the padding between tokens is untouched */
        int pad_ok = 1;
        for (int t = 0; t < T; t++)
            for (size_t e = (size_t)H * D; e < ts; e++)
                if (hy[(size_t)t * ts + e] != hx[(size_t)t * ts + e]) pad_ok = 0;
        if (!pad_ok) { printf("  rope wrote into the token padding  FAIL\n"); g_fail++; }
        scb_cuda_free(g_cc, dx); scb_cuda_free(g_cc, dpos); scb_cuda_free(g_cc, dinv);
        scb_free(hx); scb_free(hy); scb_free(fx); scb_free(inv); scb_free(pos); scb_free(ref);
        scb_free(got); scb_free(ref2);
    }
}

/* SwiGLU tolerance: fp32 silu and product, one bf16 rounding (2^-9 relative): rel 4e-3. */
#define SWIGLU_REL_TOL 4e-3

static void test_swiglu(void)
{
  /* F = 1000: the 16-byte kernel; F = 1001: the scalar one */
  for (int F = 1000; F <= 1001; F++) {
    char name[96];
    const int T = 7;
    const size_t ld = 2 * (size_t)F;      /* fused (T, 2F) gate|up layout */
    size_t NI = (size_t)T * ld, NO = (size_t)T * F;
    uint16_t *hin = host_alloc(NI * 2), *ho = host_alloc(NO * 2);
    float *fin = host_alloc(NI * 4), *got = host_alloc(NO * 4);
    double *ref = host_alloc(NO * 8);
    if (F == 1000) printf("swiglu (tolerance rel %.0e)\n", SWIGLU_REL_TOL);
    rand_bf16(hin, fin, NI, 3.0f);
    for (int t = 0; t < T; t++)
        for (int f = 0; f < F; f++) {
            double g = fin[(size_t)t * ld + f], u = fin[(size_t)t * ld + F + f];
            ref[(size_t)t * F + f] = g / (1.0 + exp(-g)) * u;
        }
    uint16_t *din = dev_alloc(NI * 2), *dout = dev_alloc(NO * 2);
    CK(scb_cuda_upload(g_cc, din, hin, NI * 2, &g_err));
    CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, NO, &g_err));
    CK(scb_cuda_swiglu(g_cc, dout, din, din + F, T, F, ld, &g_err));
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, ho, dout, NO * 2, &g_err));
    for (size_t i = 0; i < NO; i++) got[i] = scb_bf16_to_f32(ho[i]);
    snprintf(name, sizeof name, "swiglu T=7 F=%d fused gate|up rows", F);
    compare(name, got, ref, NO, SWIGLU_REL_TOL, -1);
    scb_cuda_free(g_cc, din); scb_cuda_free(g_cc, dout);
    scb_free(hin); scb_free(ho); scb_free(fin); scb_free(got); scb_free(ref);
  }
}

/* Embedding, residual add, argmax and conversions are exact: bit-for-bit equality. */
static void test_embed_add_argmax_convert(void)
{
    char name[96];
    printf("embedding, add, argmax, conversions (exact)\n");
    for (int n = 96; n <= 97; n++) {   /* embedding gather: 16-byte copies, scalar */
        const int V = 1000, T = 33;
        uint16_t *tab = host_alloc((size_t)V * n * 2), *ho = host_alloc((size_t)T * n * 2);
        uint16_t *ref = host_alloc((size_t)T * n * 2);
        float *ftab = host_alloc((size_t)V * n * 4);
        int32_t *ids = host_alloc((size_t)T * 4);
        rand_bf16(tab, ftab, (size_t)V * n, 1.0f);
        for (int t = 0; t < T; t++) ids[t] = t == 0 ? V - 1 : (int32_t)(rng_next() % V);
        for (int t = 0; t < T; t++) memcpy(ref + (size_t)t * n, tab + (size_t)ids[t] * n, n * 2);
        uint16_t *dtab = dev_alloc((size_t)V * n * 2), *dout = dev_alloc((size_t)T * n * 2);
        int32_t *dids = dev_alloc((size_t)T * 4);
        CK(scb_cuda_upload(g_cc, dtab, tab, (size_t)V * n * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dids, ids, (size_t)T * 4, &g_err));
        CK(scb_cuda_fill16(g_cc, dout, BF16_NAN, (size_t)T * n, &g_err));
        CK(scb_cuda_embed(g_cc, dout, dtab, V, n, dids, T, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, ho, dout, (size_t)T * n * 2, &g_err));
        snprintf(name, sizeof name, "embed V=1000 n=%d T=33", n);
        check_exact_u16(name, ho, ref, (size_t)T * n);
        /* an id out of range is reported by the next sync, and the context stays usable */
        ids[5] = V;
        CK(scb_cuda_upload(g_cc, dids, ids, (size_t)T * 4, &g_err));
        CK(scb_cuda_embed(g_cc, dout, dtab, V, n, dids, T, &g_err));
        struct scb_ctx e = {0};
        int rc = scb_cuda_sync(g_cc, &e);
        int rc2 = scb_cuda_sync(g_cc, &g_err);
        int ok = rc == SCB_E_INVAL && rc2 == SCB_OK;
        printf("  %-62s %s (%s)\n", "embed id == V -> SCB_E_INVAL at sync, then usable",
               ok ? "ok" : "FAIL", scb_errmsg(&e));
        if (ok) g_pass++; else g_fail++;
        scb_cuda_free(g_cc, dtab); scb_cuda_free(g_cc, dout); scb_cuda_free(g_cc, dids);
        scb_free(tab); scb_free(ho); scb_free(ref); scb_free(ftab); scb_free(ids);
    }
    for (size_t n = 100000; n <= 100003; n += 3) {   /* residual add: 16-byte chunks, scalar */
        uint16_t *hx = host_alloc(n * 2), *hy = host_alloc(n * 2), *ho = host_alloc(n * 2);
        uint16_t *ref = host_alloc(n * 2);
        float *fx = host_alloc(n * 4), *fy = host_alloc(n * 4);
        rand_bf16(hx, fx, n, 4.0f);
        rand_bf16(hy, fy, n, 1.0f);
        for (size_t i = 0; i < n; i++) ref[i] = scb_bf16_from_f32(fx[i] + fy[i]);
        uint16_t *dx = dev_alloc(n * 2), *dy = dev_alloc(n * 2);
        CK(scb_cuda_upload(g_cc, dx, hx, n * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dy, hy, n * 2, &g_err));
        CK(scb_cuda_add(g_cc, dx, dy, n, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, ho, dx, n * 2, &g_err));
        snprintf(name, sizeof name, "add n=%zu", n);
        check_exact_u16(name, ho, ref, n);
        scb_cuda_free(g_cc, dx); scb_cuda_free(g_cc, dy);
        scb_free(hx); scb_free(hy); scb_free(ho); scb_free(ref); scb_free(fx); scb_free(fy);
    }
    for (int bf = 0; bf <= 1; bf++) {   /* argmax over a Qwen2-sized vocabulary */
        const int T = 5, V = 151936;
        size_t N = (size_t)T * V;
        float *lf = host_alloc(N * 4);
        uint16_t *lb = host_alloc(N * 2);
        int32_t *ref = host_alloc((size_t)T * 4), *got = host_alloc((size_t)T * 4);
        for (size_t i = 0; i < N; i++) {
            lf[i] = rng_normal() * 3.0f;
            lb[i] = scb_bf16_from_f32(lf[i]);
            if (bf) lf[i] = scb_bf16_to_f32(lb[i]);
        }
        /* row 1: a tie between two maxima (the first wins); row 2: max at the last index;
         * row 3: max at index 0; row 4: some NaN entries are ignored */
        lf[(size_t)1 * V + 77] = lf[(size_t)1 * V + 150000] = 100.0f;
        lf[(size_t)2 * V + V - 1] = 100.0f;
        lf[(size_t)3 * V + 0] = 100.0f;
        lf[(size_t)4 * V + 10] = NAN;
        lf[(size_t)4 * V + 11] = 90.0f;
        for (int r = 1; r <= 4; r++)
            for (int j = 0; j < V; j++) lb[(size_t)r * V + j] = scb_bf16_from_f32(lf[(size_t)r * V + j]);
        for (int t = 0; t < T; t++) {
            int bi = -1;
            for (int j = 0; j < V; j++) {
                float v = lf[(size_t)t * V + j];
                if (v != v) continue;
                if (bi < 0 || v > lf[(size_t)t * V + bi]) bi = j;
            }
            ref[t] = bi;
        }
        void *dl = dev_alloc(bf ? N * 2 : N * 4);
        int32_t *didx = dev_alloc((size_t)T * 4);
        CK(scb_cuda_upload(g_cc, dl, bf ? (void *)lb : (void *)lf, bf ? N * 2 : N * 4, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)didx, 0xffffffffu, (size_t)T, &g_err));
        CK(scb_cuda_argmax(g_cc, didx, dl, bf, T, V, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, got, didx, (size_t)T * 4, &g_err));
        snprintf(name, sizeof name, "argmax %s T=%d V=%d (ties, ends, NaN)", bf ? "bf16" : "fp32",
                 T, V);
        check_exact_i32(name, got, ref, (size_t)T);
        scb_cuda_free(g_cc, dl); scb_cuda_free(g_cc, didx);
        scb_free(lf); scb_free(lb); scb_free(ref); scb_free(got);
    }
    {   /* conversions, including halfway cases, infinities, NaN and subnormals */
        const size_t n = 65536 + 8;
        float *hf = host_alloc(n * 4), *back = host_alloc(n * 4), *ref2 = host_alloc(n * 4);
        uint16_t *hb = host_alloc(n * 2), *ref = host_alloc(n * 2);
        for (size_t i = 0; i < 65536; i++) {
            uint32_t u = ((uint32_t)i << 16) | (uint32_t)(rng_next() & 0xffffu);
            if (i % 7 == 0) u = ((uint32_t)i << 16) | 0x8000u;        /* exact ties */
            memcpy(&hf[i], &u, 4);
        }
        hf[65536] = INFINITY; hf[65537] = -INFINITY; hf[65538] = 1e-40f; hf[65539] = -1e-42f;
        hf[65540] = 3.4028235e38f; hf[65541] = 0.0f; hf[65542] = -0.0f; hf[65543] = 1.0f;
        for (size_t i = 0; i < n; i++) ref[i] = scb_bf16_from_f32(hf[i]);
        float *df = dev_alloc(n * 4);
        uint16_t *db = dev_alloc(n * 2);
        CK(scb_cuda_upload(g_cc, df, hf, n * 4, &g_err));
        CK(scb_cuda_f32_to_bf16(g_cc, db, df, n, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hb, db, n * 2, &g_err));
        /* the bf16 -> f32 reference is taken from the device's own bits (NaN payload kept) */
        for (size_t i = 0; i < n; i++) ref2[i] = scb_bf16_to_f32(hb[i]);
        /* NaN payloads may differ: compare NaN-ness for NaN inputs */
        for (size_t i = 0; i < n; i++)
            if (hf[i] != hf[i] && (hb[i] & 0x7fffu) > 0x7f80u) hb[i] = ref[i];
        check_exact_u16("f32_to_bf16 every exponent, ties, inf, subnormal", hb, ref, n);
        CK(scb_cuda_fill32(g_cc, (uint32_t *)df, F32_NAN, n, &g_err));
        CK(scb_cuda_bf16_to_f32(g_cc, df, db, n, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, back, df, n * 4, &g_err));
        check_exact_u16("bf16_to_f32 round trip (bits)", (const uint16_t *)back,
                        (const uint16_t *)ref2, n * 2);
        scb_cuda_free(g_cc, df); scb_cuda_free(g_cc, db);
        scb_free(hf); scb_free(back); scb_free(ref2); scb_free(hb); scb_free(ref);
    }
}

/* GEMM tolerance: bf16 products are exact in fp32 and cuBLAS accumulates in fp32 (rel ~1e-6
 * for these depths); a bf16 output adds one rounding (2^-9): rel 4e-3 for bf16 y, 1e-4 for
 * fp32 y. */
#define GEMM_REL_TOL_BF16 4e-3
#define GEMM_REL_TOL_F32 1e-4

/* Shapes: the cuBLAS path (T > 8, or in % 8 != 0) and the decode GEMV (gemv.cu: T <= 8,
 * in % 8 == 0) on odd sizes: a row count not a multiple of the two rows a warp owns, a chunk
 * count (in / 8) not a multiple of the 128 chunks a warp loads per pass, in = 8 (one chunk),
 * every T from 1 to 8. Each shape runs under SCB_GEMV=cublas and SCB_GEMV=auto. */
static void test_gemm_shapes(const char *mode);
static void test_gemm(void)
{
    const char *old = getenv("SCB_GEMV");
    char *saved = old ? scb_strdup(old) : NULL;
    setenv("SCB_GEMV", "cublas", 1);
    test_gemm_shapes("cublas");
    setenv("SCB_GEMV", "auto", 1);
    test_gemm_shapes("auto");
    /* the measurement-only GEMV layouts (rows per warp, chunks in flight) on the same shapes */
    setenv("SCB_GEMV_CFG", "4,8", 1);
    test_gemm_shapes("auto cfg 4,8");
    setenv("SCB_GEMV_CFG", "1,2", 1);
    test_gemm_shapes("auto cfg 1,2");
    unsetenv("SCB_GEMV_CFG");
    {
        /* unknown values are refused with a message naming the variable */
        struct scb_ctx e = {0};
        uint16_t *d = dev_alloc(4096);
        struct scb_attn_cuda_args a = {0};
        setenv("SCB_GEMV", "fast", 1);
        int r1 = scb_cuda_gemm(g_cc, d, 0, d, d, NULL, 1, 8, 8, 0, &e);
        int ok1 = r1 == SCB_E_INVAL && strstr(scb_errmsg(&e), "SCB_GEMV");
        scb_ctx_clear(&e);
        a.q = a.k = a.v = d; a.out = d + 1024;
        a.Tq = 1; a.Tk = 8; a.Hq = 1; a.Hkv = 1; a.D = 64;
        setenv("SCB_ATTN_DECODE", "fast", 1);
        int r2 = scb_attn_decode_cuda(g_cc, &a, 0, &e);
        int ok2 = r2 == SCB_E_INVAL && strstr(scb_errmsg(&e), "SCB_ATTN_DECODE");
        unsetenv("SCB_ATTN_DECODE");
        scb_ctx_clear(&e);
        printf("  %-62s %s\n", "SCB_GEMV=fast / SCB_ATTN_DECODE=fast refused", ok1 && ok2 ? "ok" : "FAIL");
        if (ok1 && ok2) g_pass++;
        else g_fail++;
        scb_cuda_free(g_cc, d);
    }
    if (saved) setenv("SCB_GEMV", saved, 1);
    else unsetenv("SCB_GEMV");
    scb_free(saved);
}

static void test_gemm_shapes(const char *mode)
{
    static const int shapes[][3] = {{37, 520, 264}, {1, 896, 4864}, {130, 1000, 77},
                                    {1, 8, 3}, {1, 1032, 1001}, {2, 4104, 515}, {3, 200, 33},
                                    {4, 1024, 130}, {5, 72, 67}, {6, 2056, 9}, {7, 136, 257},
                                    {8, 4096, 301}, {1, 13, 50}, {9, 264, 40}, {1, 14336, 64}};
    printf("gemm y = x W^T, SCB_GEMV=%s (tolerance rel %.0e bf16 out, %.0e fp32 out)\n", mode,
           GEMM_REL_TOL_BF16, GEMM_REL_TOL_F32);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int T = shapes[s][0], in = shapes[s][1], outf = shapes[s][2];
        size_t nx = (size_t)T * in, nw = (size_t)outf * in, ny = (size_t)T * outf;
        uint16_t *hx = host_alloc(nx * 2), *hw = host_alloc(nw * 2), *hy = host_alloc(ny * 2);
        uint16_t *hy0 = host_alloc(ny * 2);
        float *fx = host_alloc(nx * 4), *fw = host_alloc(nw * 4), *got = host_alloc(ny * 4);
        float *fy0 = host_alloc(ny * 4);
        double *ref = host_alloc(ny * 8), *ref_acc = host_alloc(ny * 8);
        rand_bf16(hx, fx, nx, 1.0f);
        rand_bf16(hw, fw, nw, 0.05f);
        rand_bf16(hy0, fy0, ny, 1.0f);
        for (int t = 0; t < T; t++)
            for (int o = 0; o < outf; o++) {
                double acc = 0;
                for (int i = 0; i < in; i++)
                    acc += (double)fx[(size_t)t * in + i] * fw[(size_t)o * in + i];
                ref[(size_t)t * outf + o] = acc;
                ref_acc[(size_t)t * outf + o] = acc + fy0[(size_t)t * outf + o];
            }
        uint16_t *dx = dev_alloc(nx * 2), *dw = dev_alloc(nw * 2), *dy = dev_alloc(ny * 2);
        float *dyf = dev_alloc(ny * 4);
        CK(scb_cuda_upload(g_cc, dx, hx, nx * 2, &g_err));
        CK(scb_cuda_upload(g_cc, dw, hw, nw * 2, &g_err));
        CK(scb_cuda_fill16(g_cc, dy, BF16_NAN, ny, &g_err));
        CK(scb_cuda_fill32(g_cc, (uint32_t *)dyf, F32_NAN, ny, &g_err));
        CK(scb_cuda_gemm(g_cc, dy, 0, dx, dw, NULL, T, in, outf, 0, &g_err));
        CK(scb_cuda_gemm(g_cc, dyf, 1, dx, dw, NULL, T, in, outf, 0, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hy, dy, ny * 2, &g_err));
        for (size_t i = 0; i < ny; i++) got[i] = scb_bf16_to_f32(hy[i]);
        char name[96];
        snprintf(name, sizeof name, "gemm[%s] T=%d in=%d out=%d bf16 y", mode, T, in, outf);
        compare(name, got, ref, ny, GEMM_REL_TOL_BF16, -1);
        CK(scb_cuda_download(g_cc, got, dyf, ny * 4, &g_err));
        snprintf(name, sizeof name, "gemm[%s] T=%d in=%d out=%d fp32 y", mode, T, in, outf);
        compare(name, got, ref, ny, GEMM_REL_TOL_F32, -1);
        /* accumulate: y = x W^T + y (residual fused into the projection) */
        CK(scb_cuda_upload(g_cc, dy, hy0, ny * 2, &g_err));
        CK(scb_cuda_gemm(g_cc, dy, 0, dx, dw, NULL, T, in, outf, 1, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        CK(scb_cuda_download(g_cc, hy, dy, ny * 2, &g_err));
        for (size_t i = 0; i < ny; i++) got[i] = scb_bf16_to_f32(hy[i]);
        snprintf(name, sizeof name, "gemm[%s] T=%d in=%d out=%d bf16 y += x W^T", mode, T, in, outf);
        compare(name, got, ref_acc, ny, GEMM_REL_TOL_BF16, -1);
        /* bias: y = x W^T + b, bf16 and fp32 y */
        {
            uint16_t *hb = host_alloc((size_t)outf * 2);
            float *fb = host_alloc((size_t)outf * 4);
            double *ref_b = host_alloc(ny * 8);
            uint16_t *db = dev_alloc((size_t)outf * 2);
            rand_bf16(hb, fb, (size_t)outf, 0.5f);
            for (size_t i = 0; i < ny; i++) ref_b[i] = ref[i] + fb[i % (size_t)outf];
            CK(scb_cuda_upload(g_cc, db, hb, (size_t)outf * 2, &g_err));
            CK(scb_cuda_fill16(g_cc, dy, BF16_NAN, ny, &g_err));
            CK(scb_cuda_fill32(g_cc, (uint32_t *)dyf, F32_NAN, ny, &g_err));
            CK(scb_cuda_gemm(g_cc, dy, 0, dx, dw, db, T, in, outf, 0, &g_err));
            CK(scb_cuda_gemm(g_cc, dyf, 1, dx, dw, db, T, in, outf, 0, &g_err));
            CK(scb_cuda_sync(g_cc, &g_err));
            CK(scb_cuda_download(g_cc, hy, dy, ny * 2, &g_err));
            for (size_t i = 0; i < ny; i++) got[i] = scb_bf16_to_f32(hy[i]);
            snprintf(name, sizeof name, "gemm[%s] T=%d in=%d out=%d bf16 y = x W^T + b", mode, T, in, outf);
            compare(name, got, ref_b, ny, GEMM_REL_TOL_BF16, -1);
            CK(scb_cuda_download(g_cc, got, dyf, ny * 4, &g_err));
            snprintf(name, sizeof name, "gemm[%s] T=%d in=%d out=%d fp32 y = x W^T + b", mode, T, in, outf);
            compare(name, got, ref_b, ny, GEMM_REL_TOL_F32, -1);
            scb_cuda_free(g_cc, db);
            scb_free(hb); scb_free(fb); scb_free(ref_b);
        }
        scb_cuda_free(g_cc, dx); scb_cuda_free(g_cc, dw); scb_cuda_free(g_cc, dy);
        scb_cuda_free(g_cc, dyf);
        scb_free(hx); scb_free(hw); scb_free(hy); scb_free(hy0); scb_free(fx); scb_free(fw);
        scb_free(got); scb_free(fy0); scb_free(ref); scb_free(ref_acc);
    }
}

int main(int argc, char **argv)
{
    int rc0 = parity_start("parity_cuda", argc, argv,
                           "Checks every CUDA kernel against the CPU reference; exit 77 without a GPU.\n",
                           NULL, NULL);
    if (rc0 >= 0) return rc0;
    test_attention();
    test_attention_errors();
    test_kv_append();
    test_rmsnorm();
    test_rope();
    test_swiglu();
    test_embed_add_argmax_convert();
    test_gemm();
    scb_cuda_ctx_destroy(g_cc);
    printf("parity_cuda: %d passed, %d failed (seed %llu)\n", g_pass, g_fail,
           (unsigned long long)g_seed);
    return g_fail ? 1 : 0;
}
