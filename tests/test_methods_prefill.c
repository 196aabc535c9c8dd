/* test_methods_prefill.c — prefill patterns against brute force: the dense reference against an
 * independent naive implementation (causal bottom-right, GQA, strided layout), LSE merge,
 * A-shape / Tri-shape masks and sparse attention, MInference estimation, index conversion (the
 * reference converter's superset mask), sparse attention over the converted indices, block-sparse
 * and stream_llm heads, dense equivalences, and the pattern-config reader.
 *
 * Tolerances: reference kernel vs naive = 2e-5 absolute on O(1) outputs (both accumulate in
 * double; they differ only in exp/summation order). Sparse kernels vs the masked reference are
 * compared BITWISE: both call the same row kernel with the same ascending key lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "methods_testutil.h"
#include "methods/a_shape.h"
#include "methods/dense.h"
#include "methods/minference.h"

#define TOL 2e-5

static uint64_t seed;

static uint8_t *causal_mask(int Tq, int Tk)
{
    uint8_t *m = scb_malloc((size_t)Tq * Tk + 1);
    for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++) m[(size_t)i * Tk + j] = (uint8_t)(j <= i + Tk - Tq);
    return m;
}

static void test_dense_vs_naive(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed);
    int shapes[][5] = {{1, 1, 2, 1, 8}, {7, 7, 4, 2, 16}, {5, 37, 6, 2, 8}, {1, 50, 4, 1, 16}, {33, 33, 2, 2, 12}, {0, 4, 2, 1, 4}};
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        int *s = shapes[c];
        struct tu_qkv t; tu_qkv_make(&t, &r, s[0], s[1], s[2], s[3], s[4]);
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_attn_dense_ref(&t.a, &ctx), SCB_OK);
        uint8_t *m = causal_mask(s[0], s[1]);
        tu_naive(&t.a, m, 0, t.o2);
        size_t n = (size_t)s[0] * s[2] * s[4];
        assert_true(tu_maxdiff(t.o, t.o2, n) < TOL);
        /* strided (Hkv, Tk, D) layout gives bitwise the same result */
        float *kh = scb_malloc(sizeof(float) * (size_t)s[1] * s[3] * s[4]), *vh = scb_malloc(sizeof(float) * (size_t)s[1] * s[3] * s[4]);
        for (int j = 0; j < s[1]; j++)
            for (int g = 0; g < s[3]; g++)
                for (int d = 0; d < s[4]; d++) {
                    kh[((size_t)g * s[1] + j) * s[4] + d] = t.k[((size_t)j * s[3] + g) * s[4] + d];
                    vh[((size_t)g * s[1] + j) * s[4] + d] = t.v[((size_t)j * s[3] + g) * s[4] + d];
                }
        struct scb_attn_args b = t.a;
        b.k = kh; b.v = vh; b.out = t.o2; b.kv_tok_stride = (size_t)s[4]; b.kv_head_stride = (size_t)s[1] * s[4];
        assert_int_equal(scb_attn_dense_ref(&b, &ctx), SCB_OK);
        assert_memory_equal(t.o, t.o2, sizeof(float) * n);
        scb_free(kh); scb_free(vh); scb_free(m);
        tu_qkv_free(&t);
    }
    /* bad shapes are errors, not crashes */
    struct tu_qkv t; tu_qkv_make(&t, &r, 4, 4, 3, 2, 8);
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_attn_dense_ref(&t.a, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "Hq % Hkv"));
    t.a.Hq = 4; t.a.Tq = 5;
    assert_int_equal(scb_attn_dense_ref(&t.a, &ctx), SCB_E_INVAL);
    tu_qkv_free(&t);
}

static void test_merge(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 1);
    int D = 16, n = 90;
    for (int trial = 0; trial < 20; trial++) {
        float *q = tu_randn(&r, (size_t)D, 1.5f), *k = tu_randn(&r, (size_t)n * D, 1.0f), *v = tu_randn(&r, (size_t)n * D, 1.0f);
        int32_t a[90], b[90]; int na = 0, nb = 0;
        for (int j = 0; j < n; j++) {
            if (trial == 0 || scb_rng_below(&r, 2)) b[nb++] = j; else a[na++] = j;  /* trial 0: empty set */
        }
        double scr[200];
        float o1[16], o2[16], of[16], om[16], l1, l2, lf, lm;
        scb_attn_row_ref(q, k, v, (size_t)D, a, na, D, 0.25f, scr, o1, &l1);
        scb_attn_row_ref(q, k, v, (size_t)D, b, nb, D, 0.25f, scr, o2, &l2);
        scb_attn_row_ref(q, k, v, (size_t)D, NULL, n, D, 0.25f, scr, of, &lf);
        scb_attn_merge(o1, l1, o2, l2, D, om, &lm);
        assert_true(tu_maxdiff(om, of, (size_t)D) < 1e-6);
        assert_true(fabs(lm - lf) < 1e-5);
        scb_free(q); scb_free(k); scb_free(v);
    }
    float z[4] = {1, 2, 3, 4}, o[4], l;
    scb_attn_merge(z, -INFINITY, z, -INFINITY, 4, o, &l);
    assert_true(isinf(l) && l < 0 && o[0] == 0.0f);
}

static void test_ashape_masks(void **st)
{
    (void)st;
    int Ts[] = {1, 5, 64, 100, 257};
    int cfg[][2] = {{0, 1}, {2, 3}, {4, 16}, {128, 50}, {1, 300}};
    for (size_t a = 0; a < 5; a++)
        for (size_t c = 0; c < 5; c++) {
            int T = Ts[a], ni = cfg[c][0], nl = cfg[c][1];
            uint8_t *m = scb_malloc((size_t)T * T);
            int32_t *idx = scb_malloc(sizeof(int32_t) * (size_t)T);
            scb_ashape_mask(T, T, ni, nl, m);
            for (int p = 0; p < T; p++) {
                int cnt = 0, sinks = 0;
                for (int j = 0; j < T; j++) {
                    int want = j <= p && (p - j < nl || j < ni);    /* spec §3.1 */
                    assert_int_equal(m[(size_t)p * T + j], want);
                    cnt += want;
                    sinks += want && p - j >= nl;
                }
                int expect = p + 1 < ni + nl ? p + 1 : ni + nl;
                assert_int_equal(cnt, expect);                     /* min(p+1, n_init+n_local) */
                assert_true(sinks <= ni);
                int n = scb_ashape_keys(p, ni, nl, idx);
                assert_int_equal(n, cnt);
                for (int t = 0; t < n; t++) assert_int_equal(m[(size_t)p * T + idx[t]], 1);
            }
            /* Tri-shape: last n_last rows (clamped to T-1) dense causal, others A-shape */
            int nlast = 7;
            scb_trishape_mask(T, T, ni, nl, nlast, m);
            int eff = nlast < T - 1 ? nlast : T - 1;
            for (int p = 0; p < T; p++)
                for (int j = 0; j < T; j++)
                    assert_int_equal(m[(size_t)p * T + j],
                                     p >= T - eff ? j <= p : (j <= p && (p - j < nl || j < ni)));
            scb_free(m); scb_free(idx);
        }
}

struct mask_u { const uint8_t *m; int Tk, Tq, per_head; };
static int mask_pred(void *u, int h, int i, int j)
{
    struct mask_u *x = u;
    return x->m[((x->per_head ? (size_t)h * x->Tq : 0) + i) * (size_t)x->Tk + j];
}

static void test_ashape_sparse(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 2);
    int cases[][6] = {{150, 150, 4, 20, 0, 0}, {10, 60, 3, 9, 0, 0}, {97, 97, 0, 13, 0, 0}, {130, 130, 5, 17, 1, 11}};
    for (size_t c = 0; c < 4; c++) {
        int Tq = cases[c][0], Tk = cases[c][1], ni = cases[c][2], nl = cases[c][3], tri = cases[c][4], nlast = cases[c][5];
        struct tu_qkv t; tu_qkv_make(&t, &r, Tq, Tk, 4, 2, 16);
        struct scb_ctx ctx = {0};
        uint8_t *m = scb_malloc((size_t)Tq * Tk);
        if (tri) scb_trishape_mask(Tq, Tk, ni, nl, nlast, m); else scb_ashape_mask(Tq, Tk, ni, nl, m);
        if (tri) assert_int_equal(scb_trishape_attn(&t.a, ni, nl, nlast, &ctx), SCB_OK);
        else assert_int_equal(scb_ashape_attn(&t.a, ni, nl, &ctx), SCB_OK);
        double dens = t.a.density;
        struct mask_u mu = {m, Tk, Tq, 0};
        struct scb_attn_args b = t.a; b.out = t.o2;
        assert_int_equal(scb_attn_masked_ref(&b, mask_pred, &mu, &ctx), SCB_OK);
        size_t n = (size_t)Tq * 4 * 16;
        assert_memory_equal(t.o, t.o2, sizeof(float) * n);     /* same keys, same order */
        assert_true(fabs(dens - b.density) < 1e-12);
        double cnt = 0, caus = 0;
        for (int i = 0; i < Tq; i++) for (int j = 0; j < Tk; j++) { cnt += m[(size_t)i * Tk + j]; caus += j <= i + Tk - Tq; }
        assert_true(fabs(dens - cnt / caus) < 1e-12);
        tu_naive(&t.a, m, 0, t.o2);
        assert_true(tu_maxdiff(t.o, t.o2, n) < TOL);
        scb_free(m);
        tu_qkv_free(&t);
    }
}

static void test_ashape_dense_identity(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 3);
    struct scb_ctx ctx = {0};
    int T = 77;
    struct tu_qkv t; tu_qkv_make(&t, &r, T, T, 4, 1, 8);
    size_t n = (size_t)T * 4 * 8;
    assert_int_equal(scb_attn_dense_ref(&t.a, &ctx), SCB_OK);
    struct scb_attn_args b = t.a; b.out = t.o2;
    assert_int_equal(scb_ashape_attn(&b, 0, T, &ctx), SCB_OK);          /* n_local >= T */
    assert_memory_equal(t.o, t.o2, sizeof(float) * n);
    assert_true(b.density == 1.0);
    assert_int_equal(scb_ashape_attn(&b, 128, 3968, &ctx), SCB_OK);     /* SCBench defaults, T small */
    assert_memory_equal(t.o, t.o2, sizeof(float) * n);
    assert_int_equal(scb_trishape_attn(&b, 2, 5, T - 1, &ctx), SCB_OK); /* n_last = T-1 -> dense */
    assert_memory_equal(t.o, t.o2, sizeof(float) * n);
    assert_int_equal(scb_trishape_attn(&b, 2, 5, 10, &ctx), SCB_OK);    /* last 10 rows exactly dense */
    assert_memory_equal(t.o + (size_t)(T - 10) * 4 * 8, t.o2 + (size_t)(T - 10) * 4 * 8, sizeof(float) * 10 * 4 * 8);
    assert_true(b.density < 1.0);
    assert_int_equal(scb_ashape_attn(&b, 0, 0, &ctx), SCB_E_INVAL);
    tu_qkv_free(&t);
}

/* ---- MInference ------------------------------------------------------------------------------ */
static void test_minf_estimate(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 4);
    int Ns[] = {40, 100, 203};
    for (int c = 0; c < 3; c++) {
        int N = Ns[c], D = 8, lq = N < 64 ? N : 64;
        float *q = tu_randn(&r, (size_t)N * D, 1.0f), *k = tu_randn(&r, (size_t)N * D, 1.0f);
        double *vert = scb_malloc(sizeof(double) * N), *diag = scb_malloc(sizeof(double) * N);
        int32_t *V = scb_malloc(sizeof(int32_t) * N), *S = scb_malloc(sizeof(int32_t) * N);
        int nv, ns;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_minf_vs_estimate(q, D, k, D, N, D, 0.35f, 35, 120, 64, V, &nv, S, &ns, vert, diag, &ctx), SCB_OK);
        /* explicit A, column and diagonal sums */
        double *A = calloc((size_t)lq * N, sizeof(double));
        for (int rr = 0; rr < lq; rr++) {
            int p = N - lq + rr; double mx = -INFINITY, l = 0;
            for (int j = 0; j <= p; j++) {
                double d = 0; for (int e = 0; e < D; e++) d += (double)q[(size_t)p * D + e] * k[(size_t)j * D + e];
                A[(size_t)rr * N + j] = d * 0.35f; if (A[(size_t)rr * N + j] > mx) mx = A[(size_t)rr * N + j];
            }
            for (int j = 0; j <= p; j++) l += exp(A[(size_t)rr * N + j] - mx);
            for (int j = 0; j <= p; j++) A[(size_t)rr * N + j] = exp(A[(size_t)rr * N + j] - mx) / l;
        }
        for (int d = 0; d < N; d++) {
            double sd = 0, sv = 0;
            for (int rr = 0; rr < lq; rr++) { int j = N - lq + rr - d; if (j >= 0) sd += A[(size_t)rr * N + j]; sv += A[(size_t)rr * N + d]; }
            assert_true(fabs(sd - diag[d]) < 1e-9);
            assert_true(fabs(sv - vert[d]) < 1e-9);
        }
        int vexp = N < 35 ? N : 35, sexp = N < 120 ? N : 120;
        assert_int_equal(nv, vexp);
        assert_int_equal(ns, sexp);
        uint8_t *inV = calloc(N, 1), *inS = calloc(N, 1);
        for (int t = 0; t < nv; t++) { inV[V[t]] = 1; if (t) assert_true(V[t] > V[t - 1]); }
        for (int t = 0; t < ns; t++) { inS[S[t]] = 1; if (t) assert_true(S[t] < S[t - 1]); }
        for (int j = 0; j < 30 && j < N; j++) assert_int_equal(inV[j], 1);      /* forced columns */
        for (int d = 0; d < 100 && d < N; d++) assert_int_equal(inS[d], 1);     /* forced diagonals */
        /* chosen non-forced entries score at least as high as every unchosen one */
        double minV = INFINITY, maxNotV = -INFINITY, minS = INFINITY, maxNotS = -INFINITY;
        for (int j = 30; j < N; j++) { if (inV[j]) { if (vert[j] < minV) minV = vert[j]; } else if (vert[j] > maxNotV) maxNotV = vert[j]; }
        for (int d = 100; d < N; d++) { if (inS[d]) { if (diag[d] < minS) minS = diag[d]; } else if (diag[d] > maxNotS) maxNotS = diag[d]; }
        assert_true(minV >= maxNotV);
        assert_true(minS >= maxNotS);
        free(A); free(inV); free(inS);
        scb_free(q); scb_free(k); scb_free(vert); scb_free(diag); scb_free(V); scb_free(S);
    }
}

/* Brute-force construction of the reference converter's mask for row block m, written on
 * boolean column arrays: tiles [x-64, x) with x = max(end_m - d, 64) for every d < end_m in S
 * (descending d = ascending x); a tile starting more than 64 past the current range end opens a
 * new range; one ending past it extends the range by exactly 64 (whole tiles, hence the
 * superset); verticals are kept as single columns when left of the range they are compared
 * with and outside every range; verticals right of the last range are dropped. */
static void brute_block(int N, int m, const int32_t *V, int nv, const int32_t *S, int ns, uint8_t *cov, uint8_t *col)
{
    int end_m = m * 64 + 64;
    memset(cov, 0, (size_t)N + 128); memset(col, 0, (size_t)N + 128);
    int rs = -1, re = -1;
    int *starts = malloc(sizeof(int) * (ns + 1)), *ends = malloc(sizeof(int) * (ns + 1)), nr = 0;
    for (int t = 0; t < ns; t++) {
        if (S[t] >= end_m) continue;
        int x = end_m - S[t] > 64 ? end_m - S[t] : 64;
        if (rs < 0) { rs = x - 64; re = x; continue; }
        if (x > re + 64) { starts[nr] = rs; ends[nr++] = re; rs = x - 64; re = x; }
        else if (x > re) re += 64;
    }
    starts[nr] = rs; ends[nr++] = re;
    for (int q = 0; q < nr; q++) for (int c = starts[q]; c < ends[q]; c++) if (c < N + 128) cov[c] = 1;
    for (int t = 0; t < nv; t++) {
        int c = V[t];
        if (c >= ends[nr - 1] || cov[c]) continue;     /* right of last range or covered */
        col[c] = 1;
    }
    free(starts); free(ends);
}

static void random_vs(struct scb_rng *r, int N, int32_t *V, int *nv, int32_t *S, int *ns)
{
    uint8_t *u = calloc(N, 1);
    int want = 1 + (int)scb_rng_below(r, (uint64_t)N);
    *nv = 0;
    for (int t = 0; t < want; t++) u[scb_rng_below(r, (uint64_t)N)] = 1;
    for (int j = 0; j < N; j++) if (u[j]) V[(*nv)++] = j;
    memset(u, 0, N);
    u[0] = 1;                                          /* main diagonal always (s_size >= 100) */
    want = (int)scb_rng_below(r, (uint64_t)N);
    for (int t = 0; t < want; t++) u[scb_rng_below(r, (uint64_t)N)] = 1;
    *ns = 0;
    for (int d = N - 1; d >= 0; d--) if (u[d]) S[(*ns)++] = d;
    free(u);
}

static void test_minf_converter(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 5);
    for (int trial = 0; trial < 120; trial++) {
        int N = trial < 4 ? (int[]){1, 63, 64, 65}[trial] : 1 + (int)scb_rng_below(&r, 700);
        int32_t *V = scb_malloc(sizeof(int32_t) * N), *S = scb_malloc(sizeof(int32_t) * N), *idx = scb_malloc(sizeof(int32_t) * N);
        int nv, ns;
        random_vs(&r, N, V, &nv, S, &ns);
        if (trial % 10 == 1) { nv = 0; for (int j = 0; j < N; j++) V[nv++] = j; }           /* all columns */
        if (trial % 10 == 2) { ns = 0; for (int d = N - 1; d >= 0; d--) S[ns++] = d; }        /* all diagonals */
        struct scb_minf_index ix;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_minf_index_build(&ix, N, V, nv, S, ns, &ctx), SCB_OK);
        uint8_t *cov = malloc((size_t)N + 128), *col = malloc((size_t)N + 128);
        uint8_t *inV = calloc(N, 1), *inS = calloc(N, 1);
        for (int t = 0; t < nv; t++) inV[V[t]] = 1;
        for (int t = 0; t < ns; t++) inS[S[t]] = 1;
        for (int m = 0; m < ix.nblk; m++) {
            brute_block(N, m, V, nv, S, ns, cov, col);
            assert_true(ix.block_count[m] <= ns);
            assert_true(ix.column_count[m] <= nv);
            /* list structure: columns < start_m, disjoint from tiles; tiles disjoint */
            const int32_t *bo = ix.block_offset + (size_t)m * ns, *ci = ix.column_index + (size_t)m * nv;
            for (int b = 0; b < ix.block_count[m]; b++)
                for (int b2 = b + 1; b2 < ix.block_count[m]; b2++) assert_true(abs(bo[b] - bo[b2]) >= 64);
            for (int t = 0; t < ix.column_count[m]; t++) {
                assert_true(ci[t] < m * 64);
                for (int b = 0; b < ix.block_count[m]; b++) assert_false(ci[t] >= bo[b] && ci[t] < bo[b] + 64);
            }
            for (int rr = m * 64; rr < m * 64 + 64 && rr < N; rr++) {
                int n = scb_minf_index_row(&ix, rr, idx), t = 0;
                for (int c = 0; c <= rr; c++) {
                    int want = cov[c] || col[c];
                    int got = t < n && idx[t] == c;
                    assert_int_equal(got, want);
                    t += got;
                    /* superset of the ideal vertical-or-slash mask */
                    if (inV[c] || inS[rr - c]) assert_true(got);
                    if (trial % 10 == 1 || trial % 10 == 2) assert_true(got);     /* dense */
                }
                assert_int_equal(t, n);
            }
        }
        free(cov); free(col); free(inV); free(inS);
        scb_minf_index_fini(&ix);
        scb_free(V); scb_free(S); scb_free(idx);
    }
    struct scb_ctx ctx = {0};
    int32_t V[1] = {0}, S[2] = {5, 3};
    struct scb_minf_index ix;
    assert_int_equal(scb_minf_index_build(&ix, 10, V, 1, S, 2, &ctx), SCB_E_INVAL);   /* no d = 0 */
    assert_non_null(strstr(scb_errmsg(&ctx), "main diagonal"));
}

struct pat_u { struct scb_minf_pattern *pat; struct scb_minf_index *ix; int32_t *blocks, *used; int nb, kk; };

static void test_minf_sparse(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 6);
    int N = 300, Hq = 4, Hkv = 2, D = 16;
    struct tu_qkv t; tu_qkv_make(&t, &r, N, N, Hq, Hkv, D);
    struct scb_minf_pattern pat[4] = {{SCB_MINF_VERTICAL_SLASH, 40, 110}, {SCB_MINF_VERTICAL_SLASH, 30, 50},
                                      {SCB_MINF_BLOCK_SPARSE, 0, 0}, {SCB_MINF_STREAM_LLM, 4, 32}};
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_minf_attn(&t.a, pat, 2, 64, &ctx), SCB_OK);
    /* build the per-head mask independently of scb_minf_attn's plumbing */
    uint8_t *m = calloc((size_t)Hq * N * N, 1);
    int32_t *V = scb_malloc(sizeof(int32_t) * N), *S = scb_malloc(sizeof(int32_t) * N), *idx = scb_malloc(sizeof(int32_t) * N);
    float sc = 1.0f / sqrtf((float)D);
    for (int h = 0; h < 2; h++) {
        int nv, ns;
        assert_int_equal(scb_minf_vs_estimate(t.q + (size_t)h * D, (size_t)Hq * D, t.k + (size_t)(h / 2) * D, (size_t)Hkv * D, N, D, sc,
                                              pat[h].v, pat[h].s, 64, V, &nv, S, &ns, NULL, NULL, &ctx), SCB_OK);
        if (h == 1) { for (int d = 0; d < 50; d++) assert_int_equal(S[ns - 1 - d], d); }  /* s' < 100: nearest */
        struct scb_minf_index ix;
        assert_int_equal(scb_minf_index_build(&ix, N, V, nv, S, ns, &ctx), SCB_OK);
        for (int i = 0; i < N; i++) { int n = scb_minf_index_row(&ix, i, idx); for (int q = 0; q < n; q++) m[((size_t)h * N + i) * N + idx[q]] = 1; }
        scb_minf_index_fini(&ix);
    }
    /* block sparse, top 2 blocks: brute force on pooled means with padding of a full block */
    int nb = (N + 64 - N % 64) / 64;
    double qp[8][16] = {{0}}, kp[8][16] = {{0}};
    for (int i = 0; i < N; i++) for (int d = 0; d < D; d++) { qp[i / 64][d] += t.q[((size_t)i * Hq + 2) * D + d] / 64.0; kp[i / 64][d] += t.k[((size_t)i * Hkv + 1) * D + d] / 64.0; }
    for (int a = 0; a < nb; a++) {
        double best[2] = {-INFINITY, -INFINITY}; int bi[2] = {-1, -1};
        for (int b = 0; b <= a; b++) {
            double s = 0; for (int d = 0; d < D; d++) s += qp[a][d] * kp[b][d];
            if (s > best[0]) { best[1] = best[0]; bi[1] = bi[0]; best[0] = s; bi[0] = b; }
            else if (s > best[1]) { best[1] = s; bi[1] = b; }
        }
        for (int i = a * 64; i < a * 64 + 64 && i < N; i++)
            for (int q = 0; q < 2; q++) if (bi[q] >= 0) for (int c = bi[q] * 64; c < bi[q] * 64 + 64 && c <= i; c++) m[((size_t)2 * N + i) * N + c] = 1;
    }
    for (int i = 0; i < N; i++) for (int j = 0; j <= i; j++) m[((size_t)3 * N + i) * N + j] = (uint8_t)scb_ashape_allowed(i, j, 4, 32);
    struct mask_u mu = {m, N, N, 1};
    struct scb_attn_args b = t.a; b.out = t.o2;
    assert_int_equal(scb_attn_masked_ref(&b, mask_pred, &mu, &ctx), SCB_OK);
    assert_memory_equal(t.o, t.o2, sizeof(float) * (size_t)N * Hq * D);
    assert_true(fabs(t.a.density - b.density) < 1e-12);
    assert_true(t.a.density < 0.9);
    tu_naive(&t.a, m, 1, t.o2);
    assert_true(tu_maxdiff(t.o, t.o2, (size_t)N * Hq * D) < TOL);
    free(m); scb_free(V); scb_free(S); scb_free(idx);
    tu_qkv_free(&t);
}

static void test_minf_dense_equiv(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 7);
    int Ns[] = {65, 190};
    for (int c = 0; c < 2; c++) {
        int N = Ns[c];
        struct tu_qkv t; tu_qkv_make(&t, &r, N, N, 2, 1, 8);
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_attn_dense_ref(&t.a, &ctx), SCB_OK);
        struct scb_minf_pattern cases[3][2] = {
            {{SCB_MINF_VERTICAL_SLASH, N, 50}, {SCB_MINF_VERTICAL_SLASH, N, 100}},   /* all columns */
            {{SCB_MINF_VERTICAL_SLASH, 30, N}, {SCB_MINF_VERTICAL_SLASH, 0, N}},     /* all diagonals */
            {{SCB_MINF_BLOCK_SPARSE, 0, 0}, {SCB_MINF_STREAM_LLM, 0, N}}};           /* top_k >= blocks */
        for (int k = 0; k < 3; k++) {
            struct scb_attn_args b = t.a; b.out = t.o2;
            assert_int_equal(scb_minf_attn(&b, cases[k], 100, 64, &ctx), SCB_OK);
            assert_memory_equal(t.o, t.o2, sizeof(float) * (size_t)N * 2 * 8);
            assert_true(b.density == 1.0);
        }
        tu_qkv_free(&t);
    }
}

static void write_file(const char *path, const char *txt)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(txt, f);
    fclose(f);
}

static void test_minf_config(void **st)
{
    (void)st;
    char path[] = "/tmp/scb_minf_cfgXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct scb_minf_config c;
    struct scb_ctx ctx = {0};
    write_file(path, "[{\"0\": [\"vertical_and_slash\", 512, 2048, 0.96], \"2\": [\"stream_llm\", 100, 800, 0.5]},"
                     " {\"1\": [\"block_sparse\", 0, 0, 0.1], \"3\": [\"vertical_and_slash\", 30, 800, 0.9]}]");
    assert_int_equal(scb_minf_config_load(path, 2, 4, &c, &ctx), SCB_OK);
    assert_int_equal(c.p[0].type, SCB_MINF_VERTICAL_SLASH); assert_int_equal(c.p[0].v, 512); assert_int_equal(c.p[0].s, 2048);
    assert_int_equal(c.p[1].v, 1000); assert_int_equal(c.p[1].s, 6096);     /* missing -> default */
    assert_int_equal(c.p[2].type, SCB_MINF_STREAM_LLM);
    assert_int_equal(c.p[5].type, SCB_MINF_BLOCK_SPARSE);
    assert_int_equal(c.p[7].v, 30);
    scb_minf_config_fini(&c);
    /* through the method and a spec with config= */
    char spec[600];
    snprintf(spec, sizeof spec, "minference:config=%s", path);
    struct scb_method_spec s;
    assert_int_equal(scb_method_spec_parse(spec, &s, &ctx), SCB_OK);
    struct scb_model_info mi = {2, 4, 2, 8, "tiny"};
    assert_int_equal(scb_method_init(&s.prefill, &mi, &ctx), SCB_OK);
    scb_method_spec_fini(&s);
    struct { const char *txt; const char *needle; int L; } bad[] = {
        {"{\"0\": 1}", "one object per layer", 1},
        {"[{\"x\": [\"vertical_and_slash\", 1, 2, 0]}]", "head key 'x'", 1},
        {"[{\"9\": [\"vertical_and_slash\", 1, 2, 0]}]", "head key '9'", 1},
        {"[{\"0\": [\"diagonal\", 1, 2, 0]}]", "layer 0 head 0", 1},
        {"[{}]", "has 1 layers, the model has 2", 2},
        {"[{\"0\": [\"vertical_and_slash\", 1", "invalid JSON", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i].txt);
        scb_ctx_clear(&ctx);
        int rc = scb_minf_config_load(path, bad[i].L, 4, &c, &ctx);
        assert_true(rc == SCB_E_FORMAT);
        assert_non_null(strstr(scb_errmsg(&ctx), path));
        if (!strstr(scb_errmsg(&ctx), bad[i].needle)) fail_msg("message '%s' lacks '%s'", scb_errmsg(&ctx), bad[i].needle);
    }
    unlink(path);
    assert_int_equal(scb_minf_config_load(path, 1, 4, &c, &ctx), SCB_E_IO);
    /* uniform default when no config: every head (512, 2048) */
    assert_int_equal(scb_method_spec_parse("minference", &s, &ctx), SCB_OK);
    assert_int_equal(scb_method_init(&s.prefill, &mi, &ctx), SCB_OK);
    const struct scb_minf_config *u = s.prefill.state;
    for (int i = 0; i < 8; i++) { assert_int_equal(u->p[i].v, 512); assert_int_equal(u->p[i].s, 2048); }
    scb_method_spec_fini(&s);
}

int main(void)
{
    seed = tu_seed("test_methods_prefill");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_vs_naive),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_ashape_masks),
        cmocka_unit_test(test_ashape_sparse),
        cmocka_unit_test(test_ashape_dense_identity),
        cmocka_unit_test(test_minf_estimate),
        cmocka_unit_test(test_minf_converter),
        cmocka_unit_test(test_minf_sparse),
        cmocka_unit_test(test_minf_dense_equiv),
        cmocka_unit_test(test_minf_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
