/* bench_cuda.c — speed of the CUDA kernels against the device's measured ceilings (meson
 * benchmark 'cuda_kernels'; also run by tools/gpu_check.sh).
 *
 * Ceilings measured first: a large bf16 cuBLAS GEMM (TFLOP/s) and a large device-to-device
 * copy (GB/s counting read + write). Then dense causal prefill attention at D=128, Hq=32,
 * Hkv=8 for T = 4K..128K, the FA2 and the sm90 kernel (FLOPs = 4 T^2 D Hq / 2) and split-K decode attention (Tq=1) at
 * Tk = 32K and 128K (bytes = K + V read once, GQA-aware). Each measurement: warm-up, then
 * repeats timed one by one with CUDA events; median, p10, p90. Inputs are larger than L2 or
 * rotated among several copies. Inputs are seeded random bf16 (never zeros). Also: decode at
 * several forced partition counts (tuning data), RMSNorm and a one-token cuBLAS projection
 * (bandwidth-bound pieces of the forward pass). Prints a table
 * last and writes CSV (--csv PATH or SCB_BENCH_CSV). Exit 77 without a GPU. Depends only on
 * libc, libm and the CUDA launchers.
 *
 * --sparse-prefill [--sparse-lengths 32768,65536,131072] [--sparse-inputs iid,rope.5,rope1]
 * [--sparse-paths sm90,fa2]: instead, one layer's prefill attention (Hq=32, Hkv=8, D=128,
 * Llama-3-8B) at each length for dense (the sm90 and the FA2 kernel) vs A-shape
 * (128 + 3968), Tri-shape (+ last 100 rows dense) and MInference vertical-slash with SCBench's
 * default sizes for Llama-3-8B (v=512, s=2048 every head, last_q=64; the time includes the
 * estimation, top-k, index conversion and the density read-back), on two seeded inputs:
 * three seeded inputs: "iid" (q, k, v uniform, unit variance: no structure, the slash selection
 * is random) and "rope.5" / "rope1" (q, k = alpha u_g + noise with alpha 0.5 / 1, u_g a random
 * vector per KV head shared by its query heads, then RoPE with theta 500000 as Llama-3: scores
 * depend on the query-key distance, as in real heads; alpha sets how strongly). Dense and the
 * static patterns do not depend on the inputs and run on "iid" only; "minf-est" is MInference's
 * estimation + top-k + index conversion alone (included in the "minference" time), "minf-vs" the
 * estimation + top-k without the conversion. The sparse
 * methods run on each kernel path of --sparse-paths (fa2 | sm90[:serial|overlap[:2|3[:head|block]]],
 * set through SCB_SPARSE_PREFILL / SCB_SPARSE_SM90_*). Prints ms (median, p10, p90), density, TF/s of
 * the (row, key) pairs computed (4 D Hq pairs / time; for MInference also over the time without
 * the estimation) and the speed-up over both dense kernels at the same length. */
#include "kernels/kernels_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/sparse_prefill_cuda.h"
#include "kernels/status.h"

#define MAX_ROWS 128
#define MAX_REPS 200

struct bench_row {
    char name[48], shape[64];     /* kernel (variant), shape */
    double med, p10, p90;      /* ms */
    double tflops, gbps;       /* achieved (0 = not applicable) */
    double pct;                /* % of the matching ceiling */
};

static struct scb_cuda_ctx *g_cc;
static struct scb_ctx g_err;
static struct bench_row g_rows[MAX_ROWS];
static int g_nrows;
static double g_peak_tflops, g_peak_gbps;
static uint64_t g_rng = 20261126;

static void die(const char *what)
{
    fprintf(stderr, "FATAL: %s: %s\n", what, scb_errmsg(&g_err));
    exit(1);
}
#define CK(expr) do { if ((expr) < 0) die(#expr); } while (0)

static uint64_t rng_next(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A device buffer of n random bf16 values in [-sigma, sigma) (uploaded in 16 MiB pieces). */
static uint16_t *rand_dev_bf16(size_t n, float sigma)
{
    const size_t piece = (size_t)8 << 20;
    uint16_t *d = NULL, *h = scb_malloc(piece * 2);
    if (!h) { fprintf(stderr, "FATAL: host memory\n"); exit(1); }
    CK(scb_cuda_malloc(g_cc, (void **)&d, n * 2, &g_err));
    for (size_t o = 0; o < n; o += piece) {
        size_t m = n - o < piece ? n - o : piece;
        for (size_t i = 0; i < m; i++) {
            float u = (float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
            h[i] = scb_bf16_from_f32(u * sigma);
        }
        CK(scb_cuda_upload(g_cc, d + o, h, m * 2, &g_err));
    }
    scb_free(h);
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Time fn(arg, rep) reps times after warm warm-ups; fills med/p10/p90 (ms). */
typedef void (*bench_fn)(void *arg, int rep);
static void time_it(bench_fn fn, void *arg, int warm, int reps, struct bench_row *r)
{
    double t[MAX_REPS];
    if (reps > MAX_REPS) reps = MAX_REPS;
    for (int i = 0; i < warm; i++) fn(arg, i);
    CK(scb_cuda_sync(g_cc, &g_err));
    for (int i = 0; i < reps; i++) {
        float ms;
        CK(scb_cuda_timer_start(g_cc, &g_err));
        fn(arg, i);
        CK(scb_cuda_timer_stop(g_cc, &g_err));
        CK(scb_cuda_timer_ms(g_cc, &ms, &g_err));
        t[i] = ms;
    }
    CK(scb_cuda_sync(g_cc, &g_err));
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    r->med = t[reps / 2];
    r->p10 = t[(reps * 10) / 100];
    r->p90 = t[(reps * 90) / 100 < reps ? (reps * 90) / 100 : reps - 1];
}

static struct bench_row *new_row(const char *name, const char *shape)
{
    if (g_nrows >= MAX_ROWS) { fprintf(stderr, "FATAL: too many rows\n"); exit(1); }
    struct bench_row *r = &g_rows[g_nrows++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    return r;
}

static void print_row(const struct bench_row *r)
{
    printf("%-18s %-32s %9.3f %9.3f %9.3f", r->name, r->shape, r->med, r->p10, r->p90);
    if (r->tflops > 0) printf(" %8.1f TFLOP/s", r->tflops);
    if (r->gbps > 0) printf(" %8.0f GB/s", r->gbps);
    if (r->pct > 0) printf(" %5.1f%%", r->pct);
    printf("\n");
    fflush(stdout);
}

/* ---- ceilings ----------------------------------------------------------------------------- */

struct gemm_arg { uint16_t *x, *w, *y; int n; };
static void gemm_fn(void *p, int rep)
{
    struct gemm_arg *a = p;
    (void)rep;
    CK(scb_cuda_gemm(g_cc, a->y, 0, a->x, a->w, NULL, a->n, a->n, a->n, 0, &g_err));
}

struct copy_arg { void *dst, *src; size_t bytes; };
static void copy_fn(void *p, int rep)
{
    struct copy_arg *a = p;
    (void)rep;
    CK(scb_cuda_copy(g_cc, a->dst, a->src, a->bytes, &g_err));
}

static void bench_peaks(int quick)
{
    const int n = quick ? 4096 : 8192;
    char shape[64];
    struct gemm_arg g;
    struct copy_arg c;
    printf("[bench] GEMM peak (cuBLAS bf16, %d^3)...\n", n);
    fflush(stdout);
    g.n = n;
    g.x = rand_dev_bf16((size_t)n * n, 1.0f);
    g.w = rand_dev_bf16((size_t)n * n, 1.0f);
    g.y = rand_dev_bf16((size_t)n * n, 1.0f);
    snprintf(shape, sizeof shape, "M=N=K=%d", n);
    struct bench_row *r = new_row("gemm_bf16_peak", shape);
    time_it(gemm_fn, &g, 5, quick ? 10 : 30, r);
    r->tflops = 2.0 * n * (double)n * n / (r->med * 1e-3) / 1e12;
    g_peak_tflops = r->tflops;
    print_row(r);
    scb_cuda_free(g_cc, g.x); scb_cuda_free(g_cc, g.w); scb_cuda_free(g_cc, g.y);

    c.bytes = quick ? ((size_t)256 << 20) : ((size_t)1 << 30);
    printf("[bench] copy peak (device to device, %zu MiB)...\n", c.bytes >> 20);
    fflush(stdout);
    c.src = rand_dev_bf16(c.bytes / 2, 1.0f);
    CK(scb_cuda_malloc(g_cc, &c.dst, c.bytes, &g_err));
    snprintf(shape, sizeof shape, "%zu MiB", c.bytes >> 20);
    r = new_row("copy_peak", shape);
    time_it(copy_fn, &c, 3, quick ? 10 : 30, r);
    r->gbps = 2.0 * (double)c.bytes / (r->med * 1e-3) / 1e9;
    g_peak_gbps = r->gbps;
    print_row(r);
    scb_cuda_free(g_cc, c.src); scb_cuda_free(g_cc, c.dst);
}

/* ---- attention ---------------------------------------------------------------------------- */

#define NSETS_MAX 4
struct attn_arg {
    struct scb_attn_cuda_args a[NSETS_MAX];
    int nsets, decode, n_splits;
    int kern;   /* prefill: 0 FA2 kernel, 1 sm90 (wgmma + TMA) kernel; decode: 2 = the
                   device-Tk (graph) form, Tk from dtk */
    int32_t *dtk;
};
static void attn_fn(void *p, int rep)
{
    struct attn_arg *x = p;
    const struct scb_attn_cuda_args *a = &x->a[rep % x->nsets];
    if (x->decode && x->kern == 2)
        CK(scb_attn_decode_dev_cuda(g_cc, a, x->dtk,
                                    x->n_splits ? x->n_splits : scb_attn_decode_splits(g_cc, a),
                                    &g_err));
    else if (x->decode)
        CK(scb_attn_decode_cuda(g_cc, a, x->n_splits, &g_err));
    else if (x->kern)
        CK(scb_attn_prefill_sm90_cuda(g_cc, a, &g_err));
    else
        CK(scb_attn_prefill_fa2_cuda(g_cc, a, &g_err));
}

/* Free the q/k/v of each input set (the shared output is the caller's). */
static void attn_arg_free(struct attn_arg *x)
{
    for (int i = 0; i < x->nsets; i++) {
        scb_cuda_free(g_cc, (void *)x->a[i].q);
        scb_cuda_free(g_cc, (void *)x->a[i].k);
        scb_cuda_free(g_cc, (void *)x->a[i].v);
    }
}

/* Time one decode-attention configuration and print its row with the bandwidth it reached
 * reading `bytes` per call. */
static void decode_row(const char *name, const char *shape, struct attn_arg *x, int warm, int reps, double bytes)
{
    struct bench_row *r = new_row(name, shape);
    time_it(attn_fn, x, warm, reps, r);
    r->gbps = bytes / (r->med * 1e-3) / 1e9;
    r->pct = g_peak_gbps > 0 ? 100.0 * r->gbps / g_peak_gbps : 0;
    print_row(r);
}

/* The decode kernel at each partition count of ns (rows "<prefix>=N"; tuning data), then back
 * to the automatic choice. */
static void decode_splits_sweep(const char *prefix, const int *ns, size_t nn, const char *shape, struct attn_arg *x,
                                double bytes)
{
    for (size_t v = 0; v < nn; v++) {
        char nm[48];
        x->n_splits = ns[v];
        snprintf(nm, sizeof nm, "%s=%d", prefix, ns[v]);
        decode_row(nm, shape, x, 3, 30, bytes);
    }
    x->n_splits = 0;
}

static void bench_attention(int quick, int prefill_only)
{
    const int Hq = 32, Hkv = 8, D = 128;
    static const int Tp[] = {4096, 8192, 16384, 32768, 65536, 131072};
    static const int Td[] = {32768, 131072};
    const int np = quick ? 2 : 6;
    char shape[64];
    /* does the sm90 kernel run here? (one tiny call; SCB_E_UNSUPPORTED = no) */
    int have_sm90 = 0;
    {
        struct scb_attn_cuda_args a = {0};
        uint16_t *t = rand_dev_bf16((size_t)4 * 128, 1.0f), *o = NULL;
        CK(scb_cuda_malloc(g_cc, (void **)&o, (size_t)4 * 128 * 2, &g_err));
        a.q = a.k = a.v = t; a.out = o;
        a.Tq = a.Tk = 4; a.Hq = a.Hkv = 1; a.D = 128;
        int rc = scb_attn_prefill_sm90_cuda(g_cc, &a, &g_err);
        if (rc == SCB_E_UNSUPPORTED)
            printf("[bench] sm90 prefill kernel not run: %s\n", scb_errmsg(&g_err));
        else
            CK(rc);
        have_sm90 = rc == SCB_OK;
        CK(scb_cuda_sync(g_cc, &g_err));
        scb_cuda_free(g_cc, t); scb_cuda_free(g_cc, o);
    }
    for (int s = 0; s < np; s++) {
        const int T = Tp[s];
        struct attn_arg x;
        memset(&x, 0, sizeof x);
        /* rotate input sets while Q+K+V of one set fits in L2 twice over */
        size_t set_bytes = (size_t)T * (Hq + 2 * Hkv) * D * 2;
        x.nsets = set_bytes < 2 * scb_cuda_l2_bytes(g_cc) ? 3 : 1;
        printf("[bench] prefill attention T=%d (%d input set%s)...\n", T, x.nsets,
               x.nsets > 1 ? "s" : "");
        fflush(stdout);
        uint16_t *out = NULL;
        CK(scb_cuda_malloc(g_cc, (void **)&out, (size_t)T * Hq * D * 2, &g_err));
        for (int i = 0; i < x.nsets; i++) {
            struct scb_attn_cuda_args *a = &x.a[i];
            a->q = rand_dev_bf16((size_t)T * Hq * D, 2.0f);
            a->k = rand_dev_bf16((size_t)T * Hkv * D, 2.0f);
            a->v = rand_dev_bf16((size_t)T * Hkv * D, 1.0f);
            a->out = out;
            a->Tq = a->Tk = T; a->Hq = Hq; a->Hkv = Hkv; a->D = D;
        }
        snprintf(shape, sizeof shape, "T=%d Hq=%d Hkv=%d D=%d", T, Hq, Hkv, D);
        for (int kern = 0; kern <= have_sm90; kern++) {
            x.kern = kern;
            struct bench_row *r = new_row(kern ? "prefill_causal_sm90" : "prefill_causal_fa2",
                                          shape);
            int reps = T >= 65536 ? 4 : T >= 16384 ? 8 : 20;
            time_it(attn_fn, &x, T >= 65536 ? 1 : 2, quick ? 5 : reps, r);
            /* causal FLOPs as the FlashAttention papers count them: half of 4 T^2 D per head */
            r->tflops = 4.0 * (double)T * T * D * Hq / 2.0 / (r->med * 1e-3) / 1e12;
            r->pct = g_peak_tflops > 0 ? 100.0 * r->tflops / g_peak_tflops : 0;
            print_row(r);
        }
        attn_arg_free(&x);
        scb_cuda_free(g_cc, out);
    }
    for (int s = 0; s < (prefill_only ? 0 : 2); s++) {
        const int Tk = quick ? Td[s] / 4 : Td[s];
        struct attn_arg x;
        memset(&x, 0, sizeof x);
        size_t kv_bytes = (size_t)Tk * Hkv * D * 2 * 2;
        x.decode = 1;
        x.nsets = kv_bytes < scb_cuda_l2_bytes(g_cc) * 2 ? 3 : 1;
        printf("[bench] decode attention Tk=%d (%d input set%s)...\n", Tk, x.nsets,
               x.nsets > 1 ? "s" : "");
        fflush(stdout);
        uint16_t *out = NULL;
        CK(scb_cuda_malloc(g_cc, (void **)&out, (size_t)Hq * D * 2, &g_err));
        for (int i = 0; i < x.nsets; i++) {
            struct scb_attn_cuda_args *a = &x.a[i];
            a->q = rand_dev_bf16((size_t)Hq * D, 2.0f);
            a->k = rand_dev_bf16((size_t)Tk * Hkv * D, 2.0f);
            a->v = rand_dev_bf16((size_t)Tk * Hkv * D, 1.0f);
            a->out = out;
            a->Tq = 1; a->Tk = Tk; a->Hq = Hq; a->Hkv = Hkv; a->D = D;
        }
        snprintf(shape, sizeof shape, "Tq=1 Tk=%d Hq=%d Hkv=%d D=%d", Tk, Hq, Hkv, D);
        const double bytes = (double)kv_bytes + 2.0 * Hq * D * 2;
        decode_row("decode_splitk", shape, &x, 5, quick ? 10 : 50, bytes);
        /* partition counts around the automatic choice (tuning data; automatic = 0) */
        if (s == 1 && !quick) {
            static const int ns[] = {16, 64, 132, 264, 528};
            decode_splits_sweep("decode_splits", ns, sizeof ns / sizeof ns[0], shape, &x, bytes);
        }
        attn_arg_free(&x);
        scb_cuda_free(g_cc, out);
    }
}

/* ---- forward-pass pieces: RMSNorm and a one-token projection (both bandwidth-bound) ------ */

struct norm_arg { uint16_t *x, *w, *y; int T, n; };
static void norm_fn(void *p, int rep)
{
    struct norm_arg *a = p;
    (void)rep;
    CK(scb_cuda_rmsnorm(g_cc, a->y, a->x, a->w, a->T, a->n, 1e-6f, &g_err));
}

struct gemv_arg { uint16_t *x, *w[3], *y; int in, out, nsets; };
static void gemv_fn(void *p, int rep)
{
    struct gemv_arg *a = p;
    CK(scb_cuda_gemm(g_cc, a->y, 0, a->x, a->w[rep % a->nsets], NULL, 1, a->in, a->out, 0,
                     &g_err));
}

static void bench_forward_pieces(int quick)
{
    char shape[64];
    struct norm_arg na;
    struct gemv_arg ga;
    na.T = quick ? 1024 : 8192;
    na.n = 4096;
    printf("[bench] rmsnorm T=%d n=%d...\n", na.T, na.n);
    fflush(stdout);
    na.x = rand_dev_bf16((size_t)na.T * na.n, 2.0f);
    na.w = rand_dev_bf16((size_t)na.n, 1.0f);
    na.y = rand_dev_bf16((size_t)na.T * na.n, 1.0f);
    snprintf(shape, sizeof shape, "T=%d n=%d", na.T, na.n);
    struct bench_row *r = new_row("rmsnorm", shape);
    time_it(norm_fn, &na, 3, 30, r);
    r->gbps = 2.0 * na.T * (double)na.n * 2 / (r->med * 1e-3) / 1e9;
    r->pct = g_peak_gbps > 0 ? 100.0 * r->gbps / g_peak_gbps : 0;
    print_row(r);
    scb_cuda_free(g_cc, na.x); scb_cuda_free(g_cc, na.w); scb_cuda_free(g_cc, na.y);

    ga.in = 4096;
    ga.out = 14336;     /* a Llama-3-8B MLP projection: 117 MB of bf16 weights */
    ga.nsets = 3;
    printf("[bench] one-token projection %dx%d (cuBLAS)...\n", ga.out, ga.in);
    fflush(stdout);
    ga.x = rand_dev_bf16((size_t)ga.in, 1.0f);
    for (int i = 0; i < ga.nsets; i++) ga.w[i] = rand_dev_bf16((size_t)ga.in * ga.out, 0.05f);
    ga.y = rand_dev_bf16((size_t)ga.out, 1.0f);
    snprintf(shape, sizeof shape, "T=1 in=%d out=%d", ga.in, ga.out);
    r = new_row("gemv_bf16", shape);
    time_it(gemv_fn, &ga, 3, 30, r);
    r->gbps = (double)ga.in * ga.out * 2 / (r->med * 1e-3) / 1e9;
    r->pct = g_peak_gbps > 0 ? 100.0 * r->gbps / g_peak_gbps : 0;
    print_row(r);
    scb_cuda_free(g_cc, ga.x); scb_cuda_free(g_cc, ga.y);
    for (int i = 0; i < ga.nsets; i++) scb_cuda_free(g_cc, ga.w[i]);
}

/* ---- decode pieces (--decode): the projections of a Llama-3-8B decode step through cuBLAS and
 * the GEMV kernel (SCB_GEMV), and decode attention (tiled, v1, device-Tk, forced partitions) at
 * 4K, 32K and 128K keys; bytes = weights (projections) or K + V (attention) read once ------ */

struct gemv2_arg { uint16_t *x, *w[3], *y; int T, in, out, nsets; };
static void gemv2_fn(void *p, int rep)
{
    struct gemv2_arg *a = p;
    CK(scb_cuda_gemm(g_cc, a->y, 0, a->x, a->w[rep % a->nsets], NULL, a->T, a->in, a->out, 0,
                     &g_err));
}

static void bench_decode_pieces(void)
{
    static const int shapes[][3] = {   /* T, in, out */
        {1, 4096, 6144}, {1, 4096, 4096}, {1, 4096, 28672}, {1, 14336, 4096}, {1, 4096, 128256},
        {4, 4096, 28672}, {8, 4096, 6144},
    };
    char shape[64];
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        struct gemv2_arg g;
        memset(&g, 0, sizeof g);
        g.T = shapes[i][0]; g.in = shapes[i][1]; g.out = shapes[i][2];
        const size_t wb = (size_t)g.in * g.out * 2;
        g.nsets = wb < 3 * scb_cuda_l2_bytes(g_cc) ? 3 : 1;
        printf("[bench] projection T=%d %dx%d (%d weight set%s)...\n", g.T, g.out, g.in, g.nsets,
               g.nsets > 1 ? "s" : "");
        fflush(stdout);
        g.x = rand_dev_bf16((size_t)g.T * g.in, 1.0f);
        for (int k = 0; k < g.nsets; k++) g.w[k] = rand_dev_bf16((size_t)g.in * g.out, 0.05f);
        g.y = rand_dev_bf16((size_t)g.T * g.out, 1.0f);
        snprintf(shape, sizeof shape, "T=%d in=%d out=%d", g.T, g.in, g.out);
        for (int mode = 0; mode < 2; mode++) {
            setenv("SCB_GEMV", mode ? "auto" : "cublas", 1);
            struct bench_row *r = new_row(mode ? "proj_gemv" : "proj_cublas", shape);
            time_it(gemv2_fn, &g, 3, 30, r);
            r->gbps = (double)wb / (r->med * 1e-3) / 1e9;
            r->pct = g_peak_gbps > 0 ? 100.0 * r->gbps / g_peak_gbps : 0;
            print_row(r);
        }
        if (g.T == 1) {
            /* other GEMV layouts (SCB_GEMV_CFG=rows per warp,chunks in flight): tuning data */
            static const char *cfgs[] = {"1,4", "4,4", "2,8", "4,8", "2,2"};
            for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
                char nm[48];
                setenv("SCB_GEMV_CFG", cfgs[k], 1);
                snprintf(nm, sizeof nm, "proj_gemv_%cx%c", cfgs[k][0], cfgs[k][2]);   /* no comma: CSV */
                struct bench_row *r = new_row(nm, shape);
                time_it(gemv2_fn, &g, 3, 30, r);
                r->gbps = (double)wb / (r->med * 1e-3) / 1e9;
                r->pct = g_peak_gbps > 0 ? 100.0 * r->gbps / g_peak_gbps : 0;
                print_row(r);
            }
            unsetenv("SCB_GEMV_CFG");
        }
        unsetenv("SCB_GEMV");
        scb_cuda_free(g_cc, g.x); scb_cuda_free(g_cc, g.y);
        for (int k = 0; k < g.nsets; k++) scb_cuda_free(g_cc, g.w[k]);
    }
    const int Hq = 32, Hkv = 8, D = 128;
    static const int Td[] = {4096, 32768, 131072};
    for (int s = 0; s < 3; s++) {
        const int Tk = Td[s];
        struct attn_arg x;
        memset(&x, 0, sizeof x);
        const size_t kv_bytes = (size_t)Tk * Hkv * D * 2 * 2;
        x.decode = 1;
        x.nsets = kv_bytes < scb_cuda_l2_bytes(g_cc) * 2 ? 3 : 1;
        printf("[bench] decode attention Tk=%d (%d input set%s)...\n", Tk, x.nsets,
               x.nsets > 1 ? "s" : "");
        fflush(stdout);
        uint16_t *out = NULL;
        int32_t htk = Tk;
        CK(scb_cuda_malloc(g_cc, (void **)&out, (size_t)Hq * D * 2, &g_err));
        CK(scb_cuda_malloc(g_cc, (void **)&x.dtk, sizeof(int32_t), &g_err));
        CK(scb_cuda_upload(g_cc, x.dtk, &htk, sizeof htk, &g_err));
        for (int i = 0; i < x.nsets; i++) {
            struct scb_attn_cuda_args *a = &x.a[i];
            /* the engine's cache layout: head-major (Hkv, cap, D) */
            a->q = rand_dev_bf16((size_t)Hq * D, 2.0f);
            a->k = rand_dev_bf16((size_t)Tk * Hkv * D, 2.0f);
            a->v = rand_dev_bf16((size_t)Tk * Hkv * D, 1.0f);
            a->out = out;
            a->Tq = 1; a->Tk = Tk; a->Hq = Hq; a->Hkv = Hkv; a->D = D;
            a->kv_tok_stride = D; a->kv_head_stride = (size_t)Tk * D;
        }
        snprintf(shape, sizeof shape, "Tq=1 Tk=%d Hq=%d Hkv=%d D=%d", Tk, Hq, Hkv, D);
        const double bytes = (double)kv_bytes + 2.0 * Hq * D * 2;
        static const char *names[] = {"dec_tiled", "dec_v1", "dec_devTk"};
        for (int v = 0; v < 3; v++) {
            if (v == 1) setenv("SCB_ATTN_DECODE", "v1", 1);
            x.kern = v == 2 ? 2 : 0;
            decode_row(names[v], shape, &x, 5, 50, bytes);
            if (v == 1) unsetenv("SCB_ATTN_DECODE");
        }
        x.kern = 0;
        if (Tk >= 32768) {
            static const int ns[] = {16, 33, 66, 132, 264};
            decode_splits_sweep("dec_tiled_splits", ns, sizeof ns / sizeof ns[0], shape, &x, bytes);
        }
        attn_arg_free(&x);
        scb_cuda_free(g_cc, out);
        scb_cuda_free(g_cc, x.dtk);
    }
}

/* ---- sparse prefill (A-shape, Tri-shape, MInference) --------------------------------------- */
struct sp_arg {
    int kind;                                  /* 0 dense, 1 a_shape, 2 tri_shape, 3 minference,
                                                  4 minference estimation + conversion only,
                                                  5 estimation alone (scores, sums, top-k) */
    int32_t *hinfo, *V, *S, *lists;            /* kind 4: heads/v/s (3, Hq), V, S (Hq, T), index lists */
    void *work;
    int hc;
    struct scb_attn_cuda_args d;
    struct scb_sparse_attn_cuda_args s;
    struct scb_minf_cuda_pattern *pat;
    struct scb_cuda_minf_ws *ws;
    double density;
};
static void sp_fn(void *p, int rep)
{
    (void)rep;
    struct sp_arg *x = p;
    if (x->kind == 0) CK(scb_attn_prefill_cuda(g_cc, &x->d, &g_err));
    else if (x->kind == 3) CK(scb_cuda_minf_prefill(g_cc, x->ws, &x->s, x->pat, 64, 100, &x->density, &g_err));
    else if (x->kind == 4 || x->kind == 5) {
        const int T = x->s.Tq, H = x->s.Hq, nblk = (T + 63) / 64;
        for (int g0 = 0; g0 < H; g0 += x->hc)
            CK(scb_cuda_minf_vs_estimate(g_cc, x->s.q, x->s.k, 0, 0, T, H, x->s.Hkv, x->s.D, 0.f, 64, x->hinfo + g0,
                                         H - g0 < x->hc ? H - g0 : x->hc, x->hinfo + H + g0, x->hinfo + 2 * H + g0,
                                         x->V + (size_t)g0 * T, x->S + (size_t)g0 * T, T, NULL, NULL, x->work,
                                         &g_err));
        int32_t *bo = x->lists, *bc = bo + (size_t)H * nblk * 2048, *ci = bc + (size_t)H * nblk;
        int32_t *cn = ci + (size_t)H * nblk * 512;
        if (x->kind == 4)
            CK(scb_cuda_minf_convert(g_cc, T, x->V, x->S, T, x->hinfo + H, x->hinfo + 2 * H, x->hinfo, H, bo, bc, ci,
                                     cn, 2048, 512, &g_err));
    }
    else CK(scb_cuda_sparse_attn(g_cc, &x->s, &g_err));
}

/* (T, H, D) bf16 on the device: structured (alpha * u[h / G] + unit noise, then RoPE) or iid
 * (alpha = 0). */
static uint16_t *sp_inputs(int T, int H, int G, int D, float alpha, const uint16_t *u)
{
    const size_t n = (size_t)T * H * D, piece = (size_t)8 << 20;
    uint16_t *d = NULL, *h = scb_malloc(piece * 2);
    if (!h) { fprintf(stderr, "FATAL: host memory\n"); exit(1); }
    CK(scb_cuda_malloc(g_cc, (void **)&d, n * 2, &g_err));
    for (size_t o = 0; o < n; o += piece) {
        size_t m = n - o < piece ? n - o : piece;
        for (size_t i = 0; i < m; i++) {
            const size_t e = o + i;
            float x = ((float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f) * 1.7320508f;
            if (alpha > 0) x += alpha * scb_bf16_to_f32(u[((e / D) % H) / G * D + e % D]);
            h[i] = scb_bf16_from_f32(x);
        }
        CK(scb_cuda_upload(g_cc, d + o, h, m * 2, &g_err));
    }
    scb_free(h);
    if (alpha > 0) {
        int32_t *pos = NULL, *hp = scb_malloc(sizeof(int32_t) * (size_t)T);
        float *inv = NULL, hinv[128];
        for (int t = 0; t < T; t++) hp[t] = t;
        for (int i = 0; i < D / 2; i++) hinv[i] = (float)pow(500000.0, -2.0 * i / D);
        CK(scb_cuda_malloc(g_cc, (void **)&pos, sizeof(int32_t) * (size_t)T, &g_err));
        CK(scb_cuda_malloc(g_cc, (void **)&inv, sizeof(float) * (size_t)D / 2, &g_err));
        CK(scb_cuda_upload(g_cc, pos, hp, sizeof(int32_t) * (size_t)T, &g_err));
        CK(scb_cuda_upload(g_cc, inv, hinv, sizeof(float) * (size_t)D / 2, &g_err));
        CK(scb_cuda_rope(g_cc, d, T, H, D, 0, pos, inv, &g_err));
        CK(scb_cuda_sync(g_cc, &g_err));
        scb_cuda_free(g_cc, pos);
        scb_cuda_free(g_cc, inv);
        scb_free(hp);
    }
    return d;
}

/* One sparse kernel path of --sparse-paths: "fa2" | "sm90" [":" serial|overlap [":" 2|3]]. */
struct sp_path { char sel[40], sched[40], stages[40], order[40], label[160]; };
static int sp_path_parse(const char *tok, size_t n, struct sp_path *pt)
{
    char buf[40];
    if (n == 0 || n >= sizeof buf) return -1;
    memcpy(buf, tok, n);
    buf[n] = 0;
    memset(pt, 0, sizeof *pt);
    char *f1 = strchr(buf, ':'), *f2 = NULL, *f3 = NULL;
    if (f1) { *f1++ = 0; f2 = strchr(f1, ':'); if (f2) *f2++ = 0; }
    if (f2) { f3 = strchr(f2, ':'); if (f3) *f3++ = 0; }
    if (strcmp(buf, "fa2") && strcmp(buf, "sm90")) return -1;
    if ((f1 || f2) && strcmp(buf, "sm90")) return -1;
    if (f1 && strcmp(f1, "serial") && strcmp(f1, "overlap")) return -1;
    if (f2 && strcmp(f2, "2") && strcmp(f2, "3")) return -1;
    if (f3 && strcmp(f3, "head") && strcmp(f3, "block")) return -1;
    snprintf(pt->sel, sizeof pt->sel, "%s", buf);
    snprintf(pt->sched, sizeof pt->sched, "%s", f1 ? f1 : "");
    snprintf(pt->stages, sizeof pt->stages, "%s", f2 ? f2 : "");
    snprintf(pt->order, sizeof pt->order, "%s", f3 ? f3 : "");
    if (!strcmp(buf, "sm90"))
        snprintf(pt->label, sizeof pt->label, "sm90/%s/%s%s", f1 ? f1 : "serial", f2 ? f2 : "2",
                 f3 && !strcmp(f3, "block") ? "/blk" : "");
    else snprintf(pt->label, sizeof pt->label, "fa2");
    return 0;
}
static void sp_path_set(const struct sp_path *pt)
{
    setenv("SCB_SPARSE_PREFILL", pt->sel, 1);
    if (pt->sched[0]) setenv("SCB_SPARSE_SM90_SCHEDULE", pt->sched, 1); else unsetenv("SCB_SPARSE_SM90_SCHEDULE");
    if (pt->stages[0]) setenv("SCB_SPARSE_SM90_STAGES", pt->stages, 1); else unsetenv("SCB_SPARSE_SM90_STAGES");
    if (pt->order[0]) setenv("SCB_SPARSE_SM90_ORDER", pt->order, 1); else unsetenv("SCB_SPARSE_SM90_ORDER");
}

/* inputs: indices into {iid, rope.5, rope1} in run order; paths: the sparse kernel paths. */
static void bench_sparse_prefill(const int *lens, int nlen, const int *inputs, int ninputs,
                                 const struct sp_path *paths, int npaths, int no_dense)
{
    const int Hq = 32, Hkv = 8, D = 128, G = Hq / Hkv;
    int Tmax = 0;
    for (int i = 0; i < nlen; i++) Tmax = lens[i] > Tmax ? lens[i] : Tmax;
    printf("sparse prefill: one layer, Hq=%d Hkv=%d D=%d, seed %llu; A-shape 128+3968, Tri-shape +100 dense rows, "
           "MInference vertical-slash v=512 s=2048 (SCBench's Llama-3-8B default), last_q 64\n", Hq, Hkv, D,
           (unsigned long long)g_rng);
    printf("TF/s = 4 * D * Hq * (computed pairs) / time (QK^T and PV of the pairs actually computed); for minference "
           "'attn' is the time minus the minf-est median (estimation + top-k + conversion) at the same T and inputs\n");
    uint16_t u[8 * 128];
    for (int i = 0; i < Hkv * D; i++)
        u[i] = scb_bf16_from_f32(((float)((rng_next() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f) * 1.7320508f);
    struct scb_minf_cuda_pattern pat[32];
    for (int h = 0; h < Hq; h++) { pat[h].type = 0; pat[h].v = 512; pat[h].s = 2048; }
    struct scb_cuda_minf_ws *ws = NULL;
    CK(scb_cuda_minf_ws_create(&ws, &g_err));
    uint16_t *out = NULL;
    CK(scb_cuda_malloc(g_cc, (void **)&out, (size_t)Tmax * Hq * D * 2, &g_err));
    /* estimation-only buffers (kind 4) */
    int32_t hinfo_h[3 * 32], *hinfo = NULL, *Vb = NULL, *Sb = NULL, *lists = NULL;
    void *work = NULL;
    const int hc = 16;
    for (int h = 0; h < Hq; h++) { hinfo_h[h] = h; hinfo_h[Hq + h] = 0; hinfo_h[2 * Hq + h] = 0; }
    CK(scb_cuda_malloc(g_cc, (void **)&hinfo, sizeof hinfo_h, &g_err));
    CK(scb_cuda_malloc(g_cc, (void **)&Vb, sizeof(int32_t) * (size_t)Hq * Tmax, &g_err));
    CK(scb_cuda_malloc(g_cc, (void **)&Sb, sizeof(int32_t) * (size_t)Hq * Tmax, &g_err));
    CK(scb_cuda_malloc(g_cc, (void **)&lists, sizeof(int32_t) * (size_t)Hq * ((Tmax + 63) / 64) * (2048 + 512 + 2),
                       &g_err));
    CK(scb_cuda_malloc(g_cc, &work, scb_cuda_minf_vs_work_bytes(hc, 64, Tmax), &g_err));
    double dense_ms[8][2];   /* [length][0 sm90, 1 fa2] */
    memset(dense_ms, 0, sizeof dense_ms);
    static const float alphas[] = {0.0f, 0.5f, 1.0f};
    static const char *in_names[] = {"iid", "rope.5", "rope1"};
    static const char *names[] = {"dense", "a_shape", "tri_shape", "minference", "minf-est", "minf-vs"};
    printf("\n%-7s %-10s %-14s %-6s %9s %9s %9s %8s %7s %8s %8s  %s\n", "T", "method", "kernel", "inputs", "ms(med)",
           "ms(p10)", "ms(p90)", "density", "TF/s", "vs-sm90", "vs-fa2", "notes");
    for (int ii = 0; ii < ninputs; ii++) {
        const int in = inputs[ii];
        uint16_t *q = sp_inputs(Tmax, Hq, G, D, alphas[in], u), *k = sp_inputs(Tmax, Hkv, 1, D, alphas[in], u);
        uint16_t *v = sp_inputs(Tmax, Hkv, 1, D, 0.f, u);
        for (int li = 0; li < nlen; li++) {
            const int T = lens[li];
            const double causal = (double)T * (T + 1) / 2.0;
            for (int h = 0; h < Hq; h++) { hinfo_h[Hq + h] = 512 < T ? 512 : T; hinfo_h[2 * Hq + h] = 2048 < T ? 2048 : T; }
            CK(scb_cuda_upload(g_cc, hinfo, hinfo_h, sizeof hinfo_h, &g_err));
            double est_ms = 0;
            /* rows: dense sm90 + fa2 (first input only), minf-est, then per path the sparse kinds */
            int plan[64][2], nplan = 0;   /* {kind, path index (-1 / dense: 0 sm90, 1 fa2)} */
            if (ii == 0 && !no_dense) { plan[nplan][0] = 0; plan[nplan++][1] = 0; plan[nplan][0] = 0; plan[nplan++][1] = 1; }
            plan[nplan][0] = 4; plan[nplan++][1] = -1;
            plan[nplan][0] = 5; plan[nplan++][1] = -1;
            for (int pi = 0; pi < npaths && nplan < 60; pi++)
                for (int kind = 1; kind <= 3; kind++) {
                    if (ii > 0 && kind < 3) continue;    /* the static patterns: input-independent */
                    plan[nplan][0] = kind; plan[nplan++][1] = pi;
                }
            for (int e = 0; e < nplan; e++) {
                const int kind = plan[e][0], pi = plan[e][1];
                char kname[192] = "-";
                if (kind == 0) {
                    setenv("SCB_ATTN_PREFILL", pi == 0 ? "sm90" : "fa2", 1);
                    snprintf(kname, sizeof kname, "%s", pi == 0 ? "sm90" : "fa2");
                } else if (kind < 4) {
                    sp_path_set(&paths[pi]);
                    const char *mg = getenv("SCB_SPARSE_SM90_MERGE"), *sh = getenv("SCB_SPARSE_SM90_SHARE");
                    const int is90 = !strcmp(paths[pi].sel, "sm90");
                    snprintf(kname, sizeof kname, "%s%s%s", paths[pi].label,
                             is90 && mg && !strcmp(mg, "1") ? "/merge" : "", is90 && sh && !strcmp(sh, "0") ? "/noshare" : "");
                }
                struct sp_arg x;
                memset(&x, 0, sizeof x);
                x.kind = kind;
                x.d = (struct scb_attn_cuda_args){.q = q, .k = k, .v = v, .out = out, .lse = NULL, .Tq = T, .Tk = T,
                                                  .Hq = Hq, .Hkv = Hkv, .D = D};
                x.s.q = q; x.s.k = k; x.s.v = v; x.s.out = out;
                x.s.Tq = x.s.Tk = T; x.s.Hq = Hq; x.s.Hkv = Hkv; x.s.D = D;
                x.s.n_init = 128; x.s.n_local = 3968;
                x.s.dense_from = kind == 2 ? T - 100 : T;
                x.pat = pat;
                x.ws = ws;
                x.hinfo = hinfo; x.V = Vb; x.S = Sb; x.lists = lists; x.work = work; x.hc = hc;
                double w = 128.0 + 3968.0, got = 0;
                for (int r = 0; r < T; r++) got += (kind == 2 && r >= T - 100) || r + 1 < w ? r + 1 : w;
                x.density = kind == 0 ? 1.0 : got / causal;
                if (kind == 0 && pi == 0) {
                    /* the sm90 dense kernel may not exist here: probe once */
                    struct scb_ctx perr;
                    memset(&perr, 0, sizeof perr);
                    if (scb_attn_prefill_cuda(g_cc, &x.d, &perr) < 0) {
                        printf("%-7d %-10s %-14s %-6s  (not run: %s)\n", T, "dense", "sm90", in_names[in],
                               scb_errmsg(&perr));
                        unsetenv("SCB_ATTN_PREFILL");
                        continue;
                    }
                }
                const int reps = T >= 100000 ? 3 : 5;
                struct bench_row r;
                memset(&r, 0, sizeof r);
                time_it(sp_fn, &x, 1, reps, &r);
                unsetenv("SCB_ATTN_PREFILL");
                if (kind == 0) dense_ms[li][pi] = r.med;
                if (kind >= 4) {
                    if (kind == 4) est_ms = r.med;
                    printf("%-7d %-10s %-14s %-6s %9.3f %9.3f %9.3f %8s %7s %8s %8s\n", T, names[kind], "-",
                           in_names[in], r.med, r.p10, r.p90, "-", "-", "-", "-");
                } else {
                    const double flops = 4.0 * D * Hq * x.density * causal;
                    char notes[96] = "";
                    if (kind == 3 && est_ms > 0 && r.med > est_ms)
                        snprintf(notes, sizeof notes, "attn %.3f ms = %.1f TF/s", r.med - est_ms,
                                 flops / ((r.med - est_ms) * 1e-3) / 1e12);
                    char s1[16] = "-", s2[16] = "-";
                    if (dense_ms[li][0] > 0) snprintf(s1, sizeof s1, "%.2fx", dense_ms[li][0] / r.med);
                    if (dense_ms[li][1] > 0) snprintf(s2, sizeof s2, "%.2fx", dense_ms[li][1] / r.med);
                    printf("%-7d %-10s %-14s %-6s %9.3f %9.3f %9.3f %8.4f %7.1f %8s %8s  %s\n", T, names[kind], kname,
                           in_names[in], r.med, r.p10, r.p90, x.density, flops / (r.med * 1e-3) / 1e12, s1, s2, notes);
                }
                fflush(stdout);
            }
        }
        scb_cuda_free(g_cc, q);
        scb_cuda_free(g_cc, k);
        scb_cuda_free(g_cc, v);
    }
    unsetenv("SCB_SPARSE_PREFILL");
    unsetenv("SCB_SPARSE_SM90_SCHEDULE");
    unsetenv("SCB_SPARSE_SM90_STAGES");
    unsetenv("SCB_SPARSE_SM90_ORDER");
    scb_cuda_free(g_cc, hinfo);
    scb_cuda_free(g_cc, Vb);
    scb_cuda_free(g_cc, Sb);
    scb_cuda_free(g_cc, lists);
    scb_cuda_free(g_cc, work);
    scb_cuda_free(g_cc, out);
    scb_cuda_minf_ws_destroy(g_cc, ws);
}

int main(int argc, char **argv)
{
    const char *csv = getenv("SCB_BENCH_CSV");
    int quick = 0, prefill_only = 0, ndev = 0, sparse = 0, decode = 0, lens[8] = {32768, 65536, 131072}, nlen = 3;
    int inputs[3] = {0, 1, 2}, ninputs = 3, npaths = 2, no_dense = 0;
    struct sp_path paths[8];
    sp_path_parse("sm90", 4, &paths[0]);
    sp_path_parse("fa2", 3, &paths[1]);
    char why[256] = "", desc[512];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv = argv[++i];
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else if (!strcmp(argv[i], "--prefill-only")) {
            prefill_only = 1;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            g_rng = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--decode")) {
            decode = 1;
        } else if (!strcmp(argv[i], "--sparse-prefill")) {
            sparse = 1;
        } else if (!strcmp(argv[i], "--sparse-lengths") && i + 1 < argc) {
            char *e = argv[++i];
            nlen = 0;
            while (*e && nlen < 8) {
                long t = strtol(e, &e, 10);
                if (t < 2 || t > (1 << 20)) { fprintf(stderr, "bench_cuda: bad --sparse-lengths\n"); return 2; }
                lens[nlen++] = (int)t;
                if (*e == ',') e++;
            }
        } else if (!strcmp(argv[i], "--sparse-no-dense")) {
            no_dense = 1;
        } else if (!strcmp(argv[i], "--sparse-inputs") && i + 1 < argc) {
            const char *e = argv[++i];
            ninputs = 0;
            while (*e && ninputs < 3) {
                size_t n = strcspn(e, ",");
                if (n == 3 && !strncmp(e, "iid", 3)) inputs[ninputs++] = 0;
                else if (n == 6 && !strncmp(e, "rope.5", 6)) inputs[ninputs++] = 1;
                else if (n == 5 && !strncmp(e, "rope1", 5)) inputs[ninputs++] = 2;
                else { fprintf(stderr, "bench_cuda: bad --sparse-inputs (iid, rope.5, rope1)\n"); return 2; }
                e += n;
                if (*e == ',') e++;
            }
        } else if (!strcmp(argv[i], "--sparse-paths") && i + 1 < argc) {
            const char *e = argv[++i];
            npaths = 0;
            while (*e && npaths < 8) {
                size_t n = strcspn(e, ",");
                if (sp_path_parse(e, n, &paths[npaths]) < 0) {
                    fprintf(stderr, "bench_cuda: bad --sparse-paths entry '%.*s' (fa2 | sm90[:serial|overlap[:2|3[:head|block]]])\n",
                            (int)n, e);
                    return 2;
                }
                npaths++;
                e += n;
                if (*e == ',') e++;
            }
        } else if (!strcmp(argv[i], "--help")) {
            printf("usage: bench_cuda [--csv PATH] [--quick] [--prefill-only]   (or SCB_BENCH_CSV=PATH)\n"
                   "       bench_cuda --sparse-prefill [--sparse-lengths 32768,65536,131072] [--seed N]\n"
                   "                  [--sparse-inputs iid,rope.5,rope1] [--sparse-paths sm90,fa2] [--sparse-no-dense]\n"
                   "       bench_cuda --decode [--csv PATH]\n"
                   "Times the CUDA kernels against the measured GEMM and copy ceilings.\n"
                   "--prefill-only: the prefill attention rows alone (no ceilings).\n"
                   "--sparse-prefill: one layer's prefill attention: dense (sm90 and fa2 kernels) vs A-shape,\n"
                   "  Tri-shape, MInference on each sparse kernel path (fa2 | sm90[:serial|overlap[:2|3[:head|block]]]),\n"
                   "  inputs in the order given.\n"
                   "--decode: the ceilings, then a decode step's pieces: Llama-3-8B projections through\n"
                   "  cuBLAS and the GEMV kernel, decode attention (tiled, v1, device-Tk, partitions) at 4K-128K.\n");
            return 0;
        } else {
            fprintf(stderr, "bench_cuda: unknown argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    scb_cuda_device_count(&ndev, why, sizeof why);
    if (ndev <= 0) {
        printf("bench_cuda: SKIP: no CUDA device (%s)\n", why);
        return 77;
    }
    CK(scb_cuda_ctx_create(&g_cc, 0, 0, &g_err));
    scb_cuda_describe(g_cc, desc, sizeof desc);
    printf("device: %s\n", desc);
    if (sparse) {
        bench_sparse_prefill(lens, nlen, inputs, ninputs, paths, npaths, no_dense);
        scb_cuda_ctx_destroy(g_cc);
        return 0;
    }
    if (!prefill_only) bench_peaks(quick);
    if (decode) {
        bench_decode_pieces();
    } else {
        bench_attention(quick, prefill_only);
        if (!prefill_only) bench_forward_pieces(quick);
    }

    printf("\n%-18s %-32s %9s %9s %9s  achieved / %% of measured ceiling\n", "kernel", "shape",
           "ms(med)", "ms(p10)", "ms(p90)");
    for (int i = 0; i < g_nrows; i++) print_row(&g_rows[i]);
    if (csv && *csv) {
        FILE *f = fopen(csv, "w");
        if (!f) {
            fprintf(stderr, "bench_cuda: cannot write %s\n", csv);
            scb_cuda_ctx_destroy(g_cc);
            return 1;
        }
        fprintf(f, "impl,kernel,shape,ms_median,ms_p10,ms_p90,tflops,gbps,pct_of_peak,device\n");
        for (int i = 0; i < g_nrows; i++) {
            const struct bench_row *r = &g_rows[i];
            fprintf(f, "scbench,%s,%s,%.4f,%.4f,%.4f,%.2f,%.1f,%.1f,\"%s\"\n", r->name, r->shape,
                    r->med, r->p10, r->p90, r->tflops, r->gbps, r->pct, desc);
        }
        fclose(f);
        printf("bench_cuda: wrote %s\n", csv);
    }
    scb_cuda_ctx_destroy(g_cc);
    return 0;
}
