/* parity_cuda_prefill.c — the sparse prefill launchers (kernels/sparse_prefill_cuda.h) against
 * the CPU reference of methods/a_shape.c and methods/minference.c on a grid of shapes (suite
 * 'cuda'): odd lengths and lengths not a multiple of the 64 tile, GQA ratios 1/4/8, head dims
 * 64/128 (tensor cores) and 16/32/80 (plain path). Inputs are seeded random bf16 (the seed is
 * printed; --seed N or SCB_SEED reproduces); the reference runs on the bf16 values in double.
 * Device outputs are poisoned with NaN before each launch. Checks and tolerances:
 * - sparse attention (A-shape, Tri-shape, MInference layers): the pair count equals the CPU's
 *   computed pairs EXACTLY (same key sets); outputs within max|dev - ref| <= 2e-2 * max|ref|
 *   and relative L2 <= 1e-2 — bf16 rounding of P before P·V (tensor-core path) and of the
 *   output (2^-9 relative each), fp32 accumulation;
 * - vertical/diagonal sums: relative error <= 1e-4 of the largest sum (fp32 vs double over
 *   <= 64 terms of softmax values computed in fp32);
 * - selections (vertical columns, slash diagonals, block-sparse blocks): equal to the CPU's, or
 *   differing only in near-ties (the CPU scores of every differing index within 1e-5 of the
 *   largest score of the k-th best); a layer whose selection had a near-tie is not compared
 *   element-wise (its key sets legitimately differ), which is reported;
 * - the converter: block_offset/column_index/counts EXACTLY equal (integer algorithm).
 * Kernel paths: every D = 128 shape runs on the default path (the sm90 wgmma/TMA kernel on a
 * compute-capability-9 device whose binary holds sm_90a code, else the mma.sync kernel) and on
 * SCB_SPARSE_PREFILL=fa2; where the sm90 kernel runs, also on its schedule/stage variants
 * (SCB_SPARSE_SM90_SCHEDULE=overlap, SCB_SPARSE_SM90_STAGES=3, SCB_SPARSE_SM90_ORDER=block,
 * SCB_SPARSE_SM90_SHARE=0: A/Tri-shape heads pairs not sharing K/V, SCB_SPARSE_SM90_MERGE=1:
 * MInference head pairs with merged tile lists) and on extra shapes for its
 * pairing of row blocks (one block, odd block counts, GQA 1/4/8). Same tolerances on every path
 * (both round P to bf16 before P·V and accumulate in fp32); pair counts exact.
 * SCB_PARITY_SPARSE_PATHS=fa2 restricts the run to the mma.sync/plain kernels.
 * Exit 77 without a GPU, 0 when every check passes, 1 otherwise. */
#include "kernels/sparse_prefill_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "tests/parity_util.h"
#include "kernels/status.h"
#include "methods/a_shape.h"
#include "methods/dense.h"
#include "methods/minference.h"

static int g_ties;
/* The sparse kernel path under test: the kernel scb_cuda_sparse_attn_kernel names for the
 * current SCB_SPARSE_PREFILL / SCB_SPARSE_SM90_* settings, e.g. "sm90/serial/2". */
static char g_path[64] = "auto";




static void check(int ok, const char *fmt, const char *case_name, double a, double b)
{
    if (ok) { g_pass++; return; }
    g_fail++;
    printf("FAIL %s: ", case_name);
    printf(fmt, a, b);
    printf("\n");
}

/* One shape's inputs: q (N, Hq, D); k, v stored as (Hkv, cap, D) like the engine's cache. */
struct inputs {
    int N, Hq, Hkv, D, cap;
    float *q, *k, *v;              /* host floats of the bf16 values */
    uint16_t *dq, *dk, *dv, *dout; /* device */
    float *out_ref, *out_dev;      /* (N, Hq, D) */
};

static void inputs_make(struct inputs *in, int N, int Hq, int Hkv, int D)
{
    memset(in, 0, sizeof *in);
    in->N = N; in->Hq = Hq; in->Hkv = Hkv; in->D = D; in->cap = N + 3;
    const size_t nq = (size_t)N * Hq * D, nk = (size_t)Hkv * in->cap * D;
    uint16_t *b = host_alloc(sizeof(uint16_t) * (nq > nk ? nq : nk));
    in->q = host_alloc(sizeof(float) * nq);
    in->k = host_alloc(sizeof(float) * nk);
    in->v = host_alloc(sizeof(float) * nk);
    in->out_ref = host_alloc(sizeof(float) * nq);
    in->out_dev = host_alloc(sizeof(float) * nq);
    in->dq = dev_alloc(nq * 2); in->dk = dev_alloc(nk * 2); in->dv = dev_alloc(nk * 2); in->dout = dev_alloc(nq * 2);
    float *dst[3] = {in->q, in->k, in->v};
    uint16_t *ddst[3] = {in->dq, in->dk, in->dv};
    const size_t n[3] = {nq, nk, nk};
    const float sig[3] = {1.5f, 1.5f, 1.0f};
    for (int t = 0; t < 3; t++) {
        for (size_t i = 0; i < n[t]; i++) {
            b[i] = scb_bf16_from_f32(rng_normal() * sig[t]);
            dst[t][i] = scb_bf16_to_f32(b[i]);
        }
        CK(scb_cuda_upload(g_cc, ddst[t], b, n[t] * 2, &g_err));
    }
    scb_free(b);
}

static void inputs_free(struct inputs *in)
{
    scb_free(in->q); scb_free(in->k); scb_free(in->v); scb_free(in->out_ref); scb_free(in->out_dev);
    scb_cuda_free(g_cc, in->dq); scb_cuda_free(g_cc, in->dk); scb_cuda_free(g_cc, in->dv);
    scb_cuda_free(g_cc, in->dout);
}

static struct scb_attn_args cpu_args(struct inputs *in)
{
    struct scb_attn_args a;
    memset(&a, 0, sizeof a);
    a.q = in->q; a.k = in->k; a.v = in->v; a.out = in->out_ref;
    a.Tq = a.Tk = in->N; a.Hq = in->Hq; a.Hkv = in->Hkv; a.D = in->D;
    a.kv_tok_stride = (size_t)in->D; a.kv_head_stride = (size_t)in->cap * in->D;
    return a;
}

static struct scb_sparse_attn_cuda_args dev_args(struct inputs *in)
{
    struct scb_sparse_attn_cuda_args x;
    memset(&x, 0, sizeof x);
    x.q = in->dq; x.k = in->dk; x.v = in->dv; x.out = in->dout;
    x.Tq = x.Tk = in->N; x.Hq = in->Hq; x.Hkv = in->Hkv; x.D = in->D;
    x.kv_tok_stride = (size_t)in->D; x.kv_head_stride = (size_t)in->cap * in->D;
    return x;
}


/* NaN in every element of the device output (a kernel that skips one leaves NaN). */
static void poison_out(struct inputs *in)
{
    CK(scb_cuda_fill16(g_cc, in->dout, 0x7fc0u, (size_t)in->N * in->Hq * in->D, &g_err));
}

/* Download the device output and compare with out_ref. */
static void compare_out(struct inputs *in, const char *name)
{
    const size_t n = (size_t)in->N * in->Hq * in->D;
    uint16_t *b = host_alloc(n * 2);
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, b, in->dout, n * 2, &g_err));
    double mx = 0, mref = 0, e2 = 0, r2 = 0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        const float g = scb_bf16_to_f32(b[i]), r = in->out_ref[i];
        if (g != g) { nan++; continue; }
        const double d = fabs((double)g - r);
        if (d > mx) mx = d;
        if (fabs(r) > mref) mref = fabs(r);
        e2 += d * d;
        r2 += (double)r * r;
    }
    scb_free(b);
    check(nan == 0, "%.0f NaN (unwritten) outputs%.0f", name, (double)nan, 0);
    const double rel_max = mref > 0 ? mx / mref : mx, rel_l2 = r2 > 0 ? sqrt(e2 / r2) : sqrt(e2);
    check(rel_max <= 2e-2 && rel_l2 <= 1e-2, "max err / max ref %.3g, rel L2 %.3g", name, rel_max, rel_l2);
    printf("  %-48s max-rel %.2e  L2-rel %.2e\n", name, rel_max, rel_l2);
}

static unsigned long long *g_pairs;
static unsigned long long read_pairs(void)
{
    unsigned long long p = 0;
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, &p, g_pairs, sizeof p, &g_err));
    return p;
}
static void zero_pairs(void) { CK(scb_cuda_fill32(g_cc, (uint32_t *)g_pairs, 0, 2, &g_err)); }

static double causal_pairs(int N, int Hq) { return (double)Hq * (double)N * (N + 1) / 2.0; }

/* One kernel path: SCB_SPARSE_PREFILL (NULL = unset) and the sm90 knobs; sets g_path. */
struct path { const char *sel, *sched, *stages, *order, *share, *merge; };
static void path_set(const struct path *pt, int D)
{
    if (pt->sel) setenv("SCB_SPARSE_PREFILL", pt->sel, 1); else unsetenv("SCB_SPARSE_PREFILL");
    if (pt->sched) setenv("SCB_SPARSE_SM90_SCHEDULE", pt->sched, 1); else unsetenv("SCB_SPARSE_SM90_SCHEDULE");
    if (pt->stages) setenv("SCB_SPARSE_SM90_STAGES", pt->stages, 1); else unsetenv("SCB_SPARSE_SM90_STAGES");
    if (pt->order) setenv("SCB_SPARSE_SM90_ORDER", pt->order, 1); else unsetenv("SCB_SPARSE_SM90_ORDER");
    if (pt->share) setenv("SCB_SPARSE_SM90_SHARE", pt->share, 1); else unsetenv("SCB_SPARSE_SM90_SHARE");
    if (pt->merge) setenv("SCB_SPARSE_SM90_MERGE", pt->merge, 1); else unsetenv("SCB_SPARSE_SM90_MERGE");
    const char *k = scb_cuda_sparse_attn_kernel(g_cc, D);
    if (k && !strcmp(k, "sm90"))
        snprintf(g_path, sizeof g_path, "sm90/%s/%s/%s%s%s", pt->sched ? pt->sched : "serial",
                 pt->stages ? pt->stages : "2", pt->order ? pt->order : "head",
                 pt->share && !strcmp(pt->share, "0") ? "/noshare" : "", pt->merge && !strcmp(pt->merge, "1") ? "/merge" : "");
    else snprintf(g_path, sizeof g_path, "%s", k ? k : "?");
}

/* ---- A-shape / Tri-shape --------------------------------------------------------------------- */
/* The CPU reference once, then every kernel path of paths[0 .. npaths). */
static void test_shape(struct inputs *in, int n_init, int n_local, int n_last, int tri, const struct path *paths,
                       int npaths)
{
    char name[200];
    struct scb_attn_args a = cpu_args(in);
    if (tri) CK(scb_trishape_attn(&a, n_init, n_local, n_last, &g_err));
    else CK(scb_ashape_attn(&a, n_init, n_local, &g_err));
    int nl = n_last > in->N - 1 ? in->N - 1 : n_last;
    for (int pi = 0; pi < npaths; pi++) {
        path_set(&paths[pi], in->D);
        snprintf(name, sizeof name, "[%s] %s N=%d Hq=%d Hkv=%d D=%d init=%d local=%d last=%d", g_path,
                 tri ? "tri_shape" : "a_shape", in->N, in->Hq, in->Hkv, in->D, n_init, n_local, n_last);
        struct scb_sparse_attn_cuda_args x = dev_args(in);
        x.n_init = n_init; x.n_local = n_local; x.dense_from = tri ? in->N - nl : in->N;
        x.pairs = g_pairs;
        poison_out(in);
        zero_pairs();
        CK(scb_cuda_sparse_attn(g_cc, &x, &g_err));
        const double want = a.density * causal_pairs(in->N, in->Hq);
        const unsigned long long got = read_pairs();
        check(fabs((double)got - want) < 0.5, "pairs %.0f, CPU %.0f", name, (double)got, want);
        compare_out(in, name);
    }
}

/* ---- MInference ------------------------------------------------------------------------------ */
/* Is every index in the symmetric difference of (a, na) and (b, nb) a near-tie of the CPU scores? */
static int sets_match(const int32_t *a, int na, const int32_t *b, int nb, const double *score, int N,
                      int nforced, int *tie)
{
    uint8_t *in_a = scb_calloc((size_t)N, 1), *in_b = scb_calloc((size_t)N, 1);
    int ok = 1;
    double kth = INFINITY, mx = 0;
    *tie = 0;
    for (int t = 0; t < na; t++) in_a[a[t]] = 1;
    for (int t = 0; t < nb; t++) in_b[b[t]] = 1;
    for (int x = 0; x < N; x++) if (fabs(score[x]) > mx) mx = fabs(score[x]);
    for (int x = nforced; x < N; x++) if (in_a[x] && score[x] < kth) kth = score[x];
    for (int x = 0; x < N; x++) {
        if (in_a[x] == in_b[x]) continue;
        if (x >= nforced && kth < INFINITY && fabs(score[x] - kth) <= 1e-5 * (mx > 0 ? mx : 1)) *tie = 1;
        else ok = 0;
    }
    if (na != nb) ok = 0;
    scb_free(in_a); scb_free(in_b);
    return ok;
}

/* Estimation + converter for every head with (v, s); returns 1 if a near-tie made sets differ. */
static int test_vs(struct inputs *in, int v_size, int s_size, int last_q)
{
    const int N = in->N, H = in->Hq, D = in->D;
    const int lq = last_q < N ? last_q : N;
    int v = v_size < 30 ? 30 : v_size, s = s_size < 50 ? 50 : s_size;
    if (v > N) v = N;
    if (s > N) s = N;
    char name[160];
    snprintf(name, sizeof name, "minference estimate N=%d Hq=%d Hkv=%d D=%d v=%d s=%d", N, H, in->Hkv, D, v_size, s_size);
    int32_t *hh = host_alloc(sizeof(int32_t) * 3 * H);
    for (int h = 0; h < H; h++) { hh[h] = h; hh[H + h] = v; hh[2 * H + h] = s; }
    int32_t *dh = dev_alloc(sizeof(int32_t) * 3 * H);
    CK(scb_cuda_upload(g_cc, dh, hh, sizeof(int32_t) * 3 * H, &g_err));
    int32_t *dV = dev_alloc(sizeof(int32_t) * (size_t)H * N), *dS = dev_alloc(sizeof(int32_t) * (size_t)H * N);
    float *dvert = dev_alloc(sizeof(float) * (size_t)H * N), *ddiag = dev_alloc(sizeof(float) * (size_t)H * N);
    void *work = dev_alloc(scb_cuda_minf_vs_work_bytes(H, lq, N));
    CK(scb_cuda_fill32(g_cc, (uint32_t *)dV, 0xffffffffu, (size_t)H * N, &g_err));
    CK(scb_cuda_minf_vs_estimate(g_cc, in->dq, in->dk, (size_t)D, (size_t)in->cap * D, N, H, in->Hkv, D, 0.f, last_q,
                                 dh, H, dh + H, dh + 2 * H, dV, dS, N, dvert, ddiag, work, &g_err));
    int32_t *V = host_alloc(sizeof(int32_t) * (size_t)H * N), *S = host_alloc(sizeof(int32_t) * (size_t)H * N);
    float *vert = host_alloc(sizeof(float) * (size_t)H * N), *diag = host_alloc(sizeof(float) * (size_t)H * N);
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, V, dV, sizeof(int32_t) * (size_t)H * N, &g_err));
    CK(scb_cuda_download(g_cc, S, dS, sizeof(int32_t) * (size_t)H * N, &g_err));
    CK(scb_cuda_download(g_cc, vert, dvert, sizeof(float) * (size_t)H * N, &g_err));
    CK(scb_cuda_download(g_cc, diag, ddiag, sizeof(float) * (size_t)H * N, &g_err));
    int32_t *cV = host_alloc(sizeof(int32_t) * N), *cS = host_alloc(sizeof(int32_t) * N);
    double *cvert = host_alloc(sizeof(double) * N), *cdiag = host_alloc(sizeof(double) * N);
    const float scale = 1.0f / sqrtf((float)D);
    int any_tie = 0, sets_ok = 1, order_ok = 1;
    double sum_err = 0;
    /* converter inputs: the CPU's own V / S, so the converter is checked exactly */
    int32_t *hV = host_alloc(sizeof(int32_t) * (size_t)H * N), *hS = host_alloc(sizeof(int32_t) * (size_t)H * N);
    for (int h = 0; h < H; h++) {
        int nv = 0, ns = 0;
        CK(scb_minf_vs_estimate(in->q + (size_t)h * D, (size_t)H * D, in->k + (size_t)(h / (H / in->Hkv)) * in->cap * D,
                                (size_t)D, N, D, scale, v_size, s_size, last_q, cV, &nv, cS, &ns, cvert, cdiag, &g_err));
        double mv = 0, md = 0, ev = 0, ed = 0;
        for (int x = 0; x < N; x++) {
            mv = fmax(mv, fabs(cvert[x])); md = fmax(md, fabs(cdiag[x]));
            ev = fmax(ev, fabs(vert[(size_t)h * N + x] - cvert[x]));
            ed = fmax(ed, fabs(diag[(size_t)h * N + x] - cdiag[x]));
        }
        sum_err = fmax(sum_err, fmax(mv > 0 ? ev / mv : ev, md > 0 ? ed / md : ed));
        int tie = 0;
        const int32_t *dVh = V + (size_t)h * N, *dSh = S + (size_t)h * N;
        for (int t = 1; t < nv; t++) if (dVh[t] <= dVh[t - 1]) order_ok = 0;
        for (int t = 1; t < ns; t++) if (dSh[t] >= dSh[t - 1]) order_ok = 0;
        if (!sets_match(cV, nv, dVh, v, cvert, N, 30, &tie)) sets_ok = 0;
        any_tie |= tie;
        if (!sets_match(cS, ns, dSh, s, cdiag, N, 100, &tie)) sets_ok = 0;
        any_tie |= tie;
        memcpy(hV + (size_t)h * N, cV, sizeof(int32_t) * nv);
        memcpy(hS + (size_t)h * N, cS, sizeof(int32_t) * ns);
    }
    check(sum_err <= 1e-4, "vertical/diagonal sums rel err %.3g (tol %.0g)", name, sum_err, 1e-4);
    check(sets_ok, "selected columns/diagonals differ beyond near-ties%.0f%.0f", name, 0, 0);
    check(order_ok, "V not ascending or S not descending%.0f%.0f", name, 0, 0);
    if (any_tie) { g_ties++; printf("  NOTE %s: near-tie selections differ (allowed)\n", name); }
    printf("  %-48s sums rel err %.2e\n", name, sum_err);

    /* converter on the CPU's lists */
    const int nblk = (N + 63) / 64;
    struct scb_minf_index ix;
    int32_t *dbo = dev_alloc(sizeof(int32_t) * (size_t)H * nblk * s), *dbc = dev_alloc(sizeof(int32_t) * (size_t)H * nblk);
    int32_t *dci = dev_alloc(sizeof(int32_t) * (size_t)H * nblk * v), *dcc = dev_alloc(sizeof(int32_t) * (size_t)H * nblk);
    CK(scb_cuda_upload(g_cc, dV, hV, sizeof(int32_t) * (size_t)H * N, &g_err));
    CK(scb_cuda_upload(g_cc, dS, hS, sizeof(int32_t) * (size_t)H * N, &g_err));
    CK(scb_cuda_minf_convert(g_cc, N, dV, dS, N, dh + H, dh + 2 * H, dh, H, dbo, dbc, dci, dcc, s, v, &g_err));
    int32_t *bo = host_alloc(sizeof(int32_t) * (size_t)H * nblk * s), *bc = host_alloc(sizeof(int32_t) * (size_t)H * nblk);
    int32_t *ci = host_alloc(sizeof(int32_t) * (size_t)H * nblk * v), *cc = host_alloc(sizeof(int32_t) * (size_t)H * nblk);
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, bo, dbo, sizeof(int32_t) * (size_t)H * nblk * s, &g_err));
    CK(scb_cuda_download(g_cc, bc, dbc, sizeof(int32_t) * (size_t)H * nblk, &g_err));
    CK(scb_cuda_download(g_cc, ci, dci, sizeof(int32_t) * (size_t)H * nblk * v, &g_err));
    CK(scb_cuda_download(g_cc, cc, dcc, sizeof(int32_t) * (size_t)H * nblk, &g_err));
    int conv_ok = 1;
    for (int h = 0; h < H; h++) {
        CK(scb_minf_index_build(&ix, N, hV + (size_t)h * N, v, hS + (size_t)h * N, s, &g_err));
        for (int m = 0; m < nblk; m++) {
            const size_t hb = (size_t)h * nblk + m;
            if (bc[hb] != ix.block_count[m] || cc[hb] != ix.column_count[m]) { conv_ok = 0; continue; }
            for (int t = 0; t < bc[hb]; t++) if (bo[hb * s + t] != ix.block_offset[(size_t)m * s + t]) conv_ok = 0;
            for (int t = 0; t < cc[hb]; t++) if (ci[hb * v + t] != ix.column_index[(size_t)m * v + t]) conv_ok = 0;
        }
        scb_minf_index_fini(&ix);
    }
    snprintf(name, sizeof name, "minference convert N=%d v=%d s=%d", N, v, s);
    check(conv_ok, "block_offset / column_index differ from the CPU converter%.0f%.0f", name, 0, 0);
    scb_free(bo); scb_free(bc); scb_free(ci); scb_free(cc); scb_free(hV); scb_free(hS);
    scb_cuda_free(g_cc, dbo); scb_cuda_free(g_cc, dbc); scb_cuda_free(g_cc, dci); scb_cuda_free(g_cc, dcc);
    scb_free(hh); scb_free(V); scb_free(S); scb_free(vert); scb_free(diag); scb_free(cV); scb_free(cS);
    scb_free(cvert); scb_free(cdiag);
    scb_cuda_free(g_cc, dh); scb_cuda_free(g_cc, dV); scb_cuda_free(g_cc, dS); scb_cuda_free(g_cc, dvert);
    scb_cuda_free(g_cc, ddiag); scb_cuda_free(g_cc, work);
    return any_tie;
}

/* Block-sparse selection vs the CPU's; returns 1 on an allowed near-tie. */
static int test_bs(struct inputs *in, int topk)
{
    const int N = in->N, H = in->Hq, D = in->D, G = H / in->Hkv;
    const int nbp = (N + (64 - N % 64)) / 64, nblk = (N + 63) / 64, kk = topk < nbp ? topk : nbp;
    char name[160];
    snprintf(name, sizeof name, "minference block_select N=%d Hq=%d D=%d topk=%d", N, H, D, topk);
    int32_t *hh = host_alloc(sizeof(int32_t) * H);
    for (int h = 0; h < H; h++) hh[h] = h;
    int32_t *dh = dev_alloc(sizeof(int32_t) * H);
    CK(scb_cuda_upload(g_cc, dh, hh, sizeof(int32_t) * H, &g_err));
    int32_t *dbo = dev_alloc(sizeof(int32_t) * (size_t)H * nblk * kk), *dbc = dev_alloc(sizeof(int32_t) * (size_t)H * nblk);
    int32_t *dcc = dev_alloc(sizeof(int32_t) * (size_t)H * nblk);
    void *work = dev_alloc(scb_cuda_minf_bs_work_bytes(H, N, D));
    CK(scb_cuda_minf_block_select(g_cc, in->dq, in->dk, (size_t)D, (size_t)in->cap * D, N, H, in->Hkv, D, topk, dh, H,
                                  dbo, dbc, dcc, kk, work, &g_err));
    int32_t *bo = host_alloc(sizeof(int32_t) * (size_t)H * nblk * kk), *bc = host_alloc(sizeof(int32_t) * (size_t)H * nblk);
    int32_t *cc = host_alloc(sizeof(int32_t) * (size_t)H * nblk);
    CK(scb_cuda_sync(g_cc, &g_err));
    CK(scb_cuda_download(g_cc, bo, dbo, sizeof(int32_t) * (size_t)H * nblk * kk, &g_err));
    CK(scb_cuda_download(g_cc, bc, dbc, sizeof(int32_t) * (size_t)H * nblk, &g_err));
    CK(scb_cuda_download(g_cc, cc, dcc, sizeof(int32_t) * (size_t)H * nblk, &g_err));
    int32_t *blocks = host_alloc(sizeof(int32_t) * (size_t)nbp * kk), *used = host_alloc(sizeof(int32_t) * nbp);
    double *qp = host_alloc(sizeof(double) * (size_t)nbp * D), *kp = host_alloc(sizeof(double) * (size_t)nbp * D);
    double *sc = host_alloc(sizeof(double) * nbp);
    int ok = 1, any_tie = 0;
    for (int h = 0; h < H; h++) {
        const float *q = in->q + (size_t)h * D, *k = in->k + (size_t)(h / G) * in->cap * D;
        CK(scb_minf_block_select(q, (size_t)H * D, k, (size_t)D, N, D, topk, blocks, used, &g_err));
        memset(qp, 0, sizeof(double) * (size_t)nbp * D);
        memset(kp, 0, sizeof(double) * (size_t)nbp * D);
        for (int i = 0; i < N; i++)
            for (int d = 0; d < D; d++) {
                qp[(size_t)(i / 64) * D + d] += q[(size_t)i * H * D + d] / 64.0;
                kp[(size_t)(i / 64) * D + d] += k[(size_t)i * D + d] / 64.0;
            }
        for (int a = 0; a < nblk; a++) {
            const size_t hb = (size_t)h * nblk + a;
            if (bc[hb] != used[a] || cc[hb] != 0) { ok = 0; continue; }
            for (int b = 0; b < nbp; b++) {
                double s = 0;
                for (int d = 0; d < D; d++) s += qp[(size_t)a * D + d] * kp[(size_t)b * D + d];
                sc[b] = b > a ? -INFINITY : s;
            }
            int32_t dl[1024], cl[1024];
            int n = used[a] < 1024 ? used[a] : 1024;
            for (int t = 0; t < n; t++) { dl[t] = bo[hb * kk + t] / 64; cl[t] = blocks[(size_t)a * kk + t]; }
            int tie = 0;
            if (!sets_match(cl, n, dl, n, sc, nbp, 0, &tie)) ok = 0;
            any_tie |= tie;
            for (int t = 0; t < n; t++) if (bo[hb * kk + t] % 64) ok = 0;
        }
    }
    check(ok, "selected blocks differ beyond near-ties%.0f%.0f", name, 0, 0);
    if (any_tie) { g_ties++; printf("  NOTE %s: near-tie selections differ (allowed)\n", name); }
    printf("  %-48s %s\n", name, ok ? "ok" : "MISMATCH");
    scb_free(hh); scb_free(bo); scb_free(bc); scb_free(cc); scb_free(blocks); scb_free(used); scb_free(qp);
    scb_free(kp); scb_free(sc);
    scb_cuda_free(g_cc, dh); scb_cuda_free(g_cc, dbo); scb_cuda_free(g_cc, dbc); scb_cuda_free(g_cc, dcc);
    scb_cuda_free(g_cc, work);
    return any_tie;
}

/* A whole layer with mixed per-head patterns: the CPU reference once, then every path. */
static void test_minf_layer(struct inputs *in, const struct scb_minf_pattern *pat, int last_q, int topk, int skip_values,
                            struct scb_cuda_minf_ws *ws, const char *label, const struct path *paths, int npaths)
{
    char name[200];
    struct scb_attn_args a = cpu_args(in);
    CK(scb_minf_attn(&a, pat, topk, last_q, &g_err));
    struct scb_minf_cuda_pattern *dp = host_alloc(sizeof *dp * in->Hq);
    for (int h = 0; h < in->Hq; h++) { dp[h].type = pat[h].type; dp[h].v = pat[h].v; dp[h].s = pat[h].s; }
    for (int pi = 0; pi < npaths; pi++) {
        path_set(&paths[pi], in->D);
        snprintf(name, sizeof name, "[%s] minference layer %s N=%d Hq=%d Hkv=%d D=%d", g_path, label, in->N, in->Hq,
                 in->Hkv, in->D);
        struct scb_sparse_attn_cuda_args x = dev_args(in);
        double dens = -1;
        poison_out(in);
        CK(scb_cuda_minf_prefill(g_cc, ws, &x, dp, last_q, topk, &dens, &g_err));
        if (skip_values) {
            printf("  NOTE %s: a near-tie changed a selection; values and density not compared\n", name);
            continue;
        }
        check(dens == a.density, "density %.9f, CPU %.9f", name, dens, a.density);
        compare_out(in, name);
    }
    scb_free(dp);
}

/* The sparse attention layers of one shape on every path. */
static void run_sparse(struct inputs *in, int tie, struct scb_cuda_minf_ws *ws, const struct path *paths, int npaths)
{
    const int Hq = in->Hq;
    test_shape(in, 16, 100, 0, 0, paths, npaths);
    test_shape(in, 0, 77, 0, 0, paths, npaths);
    test_shape(in, 4, 64, 40, 1, paths, npaths);
    test_shape(in, 128, 3968, 100, 1, paths, npaths);   /* the defaults: dense at these lengths */
    /* mixed heads: vertical-slash (small and defaults), block-sparse, stream_llm */
    struct scb_minf_pattern *pat = host_alloc(sizeof *pat * Hq);
    for (int h = 0; h < Hq; h++) {
        switch (h % 4) {
        case 0: pat[h] = (struct scb_minf_pattern){SCB_MINF_VERTICAL_SLASH, 100, 300}; break;
        case 1: pat[h] = (struct scb_minf_pattern){SCB_MINF_BLOCK_SPARSE, 0, 0}; break;
        case 2: pat[h] = (struct scb_minf_pattern){SCB_MINF_STREAM_LLM, 8, 50}; break;
        default: pat[h] = (struct scb_minf_pattern){SCB_MINF_VERTICAL_SLASH, 512, 2048}; break;
        }
    }
    test_minf_layer(in, pat, 64, 3, tie, ws, "mixed", paths, npaths);
    for (int h = 0; h < Hq; h++) pat[h] = (struct scb_minf_pattern){SCB_MINF_VERTICAL_SLASH, 40, 60};
    test_minf_layer(in, pat, 64, 3, tie, ws, "vertical_slash(40,60)", paths, npaths);
    scb_free(pat);
}

/* npaths kernel paths for D = 128 (the default path only for other D). */
static void run_shape(int N, int Hq, int Hkv, int D, struct scb_cuda_minf_ws *ws, const struct path *paths,
                      int npaths, int estimate)
{
    struct inputs in;
    inputs_make(&in, N, Hq, Hkv, D);
    printf("shape N=%d Hq=%d Hkv=%d D=%d\n", N, Hq, Hkv, D);
    int tie = 0;
    if (estimate) {
        tie |= test_vs(&in, 40, 60, 64);
        tie |= test_vs(&in, 512, 2048, 64);
        if (N >= 400) tie |= test_vs(&in, 100, 300, 64);       /* both selections partly by score */
        tie |= test_bs(&in, 3);
    }
    run_sparse(&in, tie, ws, paths, D == 128 ? npaths : 1);
    path_set(&paths[0], D);
    inputs_free(&in);
}

int main(int argc, char **argv)
{
    int rc0 = parity_start("parity_cuda_prefill", argc, argv,
                           "Checks the sparse prefill kernels (A-shape, Tri-shape, MInference) against the CPU\n"
                           "reference; exit 77 without a GPU.\n",
                           NULL, NULL);
    if (rc0 >= 0) return rc0;
    g_pairs = dev_alloc(16);
    struct scb_cuda_minf_ws *ws = NULL;
    CK(scb_cuda_minf_ws_create(&ws, &g_err));
    /* kernel paths: the default (sm90 on a compute-capability-9 device with sm_90a code, else
     * fa2) and fa2 everywhere; on sm90 devices also the measurement variants */
    static const struct path paths_all[] = {
        {NULL, NULL, NULL, NULL, NULL, NULL}, {"fa2", NULL, NULL, NULL, NULL, NULL},
        {"sm90", "overlap", NULL, NULL, NULL, NULL}, {"sm90", "serial", "3", NULL, "0", NULL},
        {"sm90", "overlap", "3", "block", "0", NULL}, {"sm90", NULL, NULL, NULL, NULL, "1"},
        {"sm90", NULL, "3", "block", NULL, "1"},
    };
    /* SCB_PARITY_SPARSE_PATHS=fa2: only the mma.sync/plain kernels (a run that a faulting sm90
     * kernel cannot take down) */
    const char *only = getenv("SCB_PARITY_SPARSE_PATHS");
    const int only_fa2 = only && !strcmp(only, "fa2");
    const struct path *paths = only_fa2 ? &paths_all[1] : paths_all;
    path_set(&paths[0], 128);
    const char *k0 = scb_cuda_sparse_attn_kernel(g_cc, 128);
    const int sm90 = k0 && !strcmp(k0, "sm90");
    printf("sparse kernel for D=128 on the first path: %s\n", k0 ? k0 : "?");
    static const int shapes[][4] = {
        /* N, Hq, Hkv, D */
        {37, 4, 4, 64}, {64, 8, 1, 128}, {200, 8, 2, 128}, {333, 8, 1, 64}, {517, 4, 4, 128},
        {700, 8, 8, 64}, {1000, 8, 1, 128}, {1531, 4, 1, 128}, {300, 4, 1, 32}, {259, 8, 2, 16},
        {190, 2, 2, 80},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        run_shape(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3], ws, paths, only_fa2 ? 1 : 2, 1);
    if (sm90) {
        /* the sm90 kernel's variants, and shapes that stress its pairing of row blocks (odd
         * block counts, one row block, GQA 1/4/8, lengths one past a tile) */
        static const int s9shapes[][4] = {
            {2, 4, 1, 128}, {63, 8, 8, 128}, {65, 8, 2, 128}, {129, 32, 8, 128}, {1000, 4, 1, 128},
            {2049, 2, 2, 128},
        };
        for (size_t s = 0; s < sizeof s9shapes / sizeof s9shapes[0]; s++)
            run_shape(s9shapes[s][0], s9shapes[s][1], s9shapes[s][2], s9shapes[s][3], ws, paths_all, 7, 1);
    } else if (!only_fa2) {
        printf("NOTE the sm90 sparse kernel cannot run here (needs compute capability 9.0 and sm_90a code): only "
               "the fa2/plain paths were checked\n");
    }
    /* the kernel choice */
    {
        struct inputs in;
        inputs_make(&in, 100, 4, 2, 128);
        struct scb_sparse_attn_cuda_args x = dev_args(&in);
        x.n_init = 4; x.n_local = 20; x.dense_from = in.N;
        setenv("SCB_SPARSE_PREFILL", "fa3", 1);
        check(scb_cuda_sparse_attn_kernel(g_cc, 128) == NULL && scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_INVAL,
              "SCB_SPARSE_PREFILL=fa3 accepted (%.0f%.0f)", "sparse kernel choice", 0, 0);
        setenv("SCB_SPARSE_PREFILL", "sm90", 1);
        if (!sm90 && !only_fa2)
            check(scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_UNSUPPORTED,
                  "SCB_SPARSE_PREFILL=sm90 on a device without the sm90 kernel not refused (%.0f%.0f)",
                  "sparse kernel choice", 0, 0);
        setenv("SCB_SPARSE_SM90_SCHEDULE", "pingpong", 1);
        if (sm90)
            check(scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_INVAL,
                  "SCB_SPARSE_SM90_SCHEDULE=pingpong accepted (%.0f%.0f)", "sparse kernel choice", 0, 0);
        unsetenv("SCB_SPARSE_SM90_SCHEDULE");
        setenv("SCB_SPARSE_SM90_SHARE", "2", 1);
        if (sm90)
            check(scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_INVAL,
                  "SCB_SPARSE_SM90_SHARE=2 accepted (%.0f%.0f)", "sparse kernel choice", 0, 0);
        unsetenv("SCB_SPARSE_SM90_SHARE");
        setenv("SCB_SPARSE_SM90_MERGE", "yes", 1);
        if (sm90)
            check(scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_INVAL,
                  "SCB_SPARSE_SM90_MERGE=yes accepted (%.0f%.0f)", "sparse kernel choice", 0, 0);
        unsetenv("SCB_SPARSE_SM90_MERGE");
        unsetenv("SCB_SPARSE_PREFILL");
        CK(scb_cuda_sync(g_cc, &g_err));
        inputs_free(&in);
    }
    /* argument errors */
    {
        struct scb_sparse_attn_cuda_args x;
        memset(&x, 0, sizeof x);
        check(scb_cuda_sparse_attn(g_cc, &x, &g_err) == SCB_E_INVAL, "NULL args accepted (%.0f%.0f)",
              "sparse attention errors", 0, 0);
    }
    scb_cuda_minf_ws_destroy(g_cc, ws);
    scb_cuda_free(g_cc, g_pairs);
    scb_cuda_ctx_destroy(g_cc);
    printf("parity_cuda_prefill: %d passed, %d failed (%d near-tie selections)\n", g_pass, g_fail, g_ties);
    return g_fail ? 1 : 0;
}
