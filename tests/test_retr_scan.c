/* test_retr_scan.c — the key-blocked flat scan of RetrievalAttention's host index
 * (methods/retr_scan.h) against the flat index's score definition (faiss's flat inner-product
 * search in fp32: an fmaf chain in d order from 0.0f, written out here): every score bit for bit
 * (memcmp of the floats) equal to that chain and to scb_retr_flat_scores / scb_retr_score, on
 * every dispatch path this CPU supports (scalar, AVX2 + FMA, AVX-512F, each forced), for odd
 * counts, ranges not aligned to the 16-key blocks (and pairs of whole blocks), D 32/64/96/128,
 * 1..18 query heads; the pooled step's top-k id sets (two-phase and fused) equal to a brute-force
 * sort of the reference scores written here (score descending, ties to the smaller id) and to
 * scb_retr_flat_topk's, on random and ties-heavy inputs (keys and queries drawn from a few
 * integers tie often); the fused step (scan + digits + histograms, one dispatch) against the
 * two-phase step (same scores, same sets) and its digit selection against scb_retr_topk_set
 * (ties, signed zeros, NaNs). Seeded random inputs, seed printed (SCB_TEST_SEED overrides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "kernels/alloc.h"
#include "kernels/cpu/pool.h"
#include "kernels/util.h"
#include "methods/retr_attn.h"
#include "methods/retr_scan.h"

static uint64_t seed = 20261126;

static uint16_t f2bf(float f)   /* round to nearest even (inputs are finite) */
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float bf2f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* the flat index's score: an fp32 fused multiply-add chain in d order (faiss IndexFlatIP) */
static float score_ref(const float *a, const float *b, int D)
{
    float s = 0.0f;
    for (int d = 0; d < D; d++) s = fmaf(a[d], b[d], s);
    return s;
}

/* the order-preserving key of a score (retr_attn.h): bits(s + 0.0f) ^ (sign ? ~0 : 1 << 31) */
static uint32_t key_ref(float s)
{
    s += 0.0f;
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return u ^ ((u >> 31) ? UINT32_MAX : UINT32_C(1) << 31);
}

/* keys (N, D) bf16 rows + their fp32 widening; ties: values from {-2..2} * 0.5 when small */
static void make_keys(struct scb_rng *r, int N, int D, int small, uint16_t *k16, float *k32)
{
    for (size_t i = 0; i < (size_t)N * D; i++) {
        float v = small ? 0.5f * (float)((int)(scb_rng_next(r) % 5) - 2) : scb_rng_normal(r) * 1.7f;
        k16[i] = f2bf(v);
        k32[i] = bf2f(k16[i]);
    }
}

enum { NISA = 3 };
static const enum scb_retr_isa isas[NISA] = {SCB_RETR_ISA_SCALAR, SCB_RETR_ISA_AVX2_FMA, SCB_RETR_ISA_AVX512_FMA};

static void test_put_get(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed);
    const int N = 37, D = 96;
    uint16_t *k16 = scb_malloc(sizeof(uint16_t) * N * D);
    float *k32 = scb_malloc(sizeof(float) * N * D), *row = scb_malloc(sizeof(float) * D);
    uint16_t *kb = scb_calloc(scb_retr_kb_elems(N, D), sizeof(uint16_t));
    assert_int_equal(scb_retr_kb_elems(N, D), (size_t)48 * D);
    make_keys(&r, N, D, 0, k16, k32);
    scb_retr_kb_put_rows(kb, D, 0, k16, D, 5);                              /* part of block 0 */
    scb_retr_kb_put_rows(kb, D, 5, k16 + (size_t)5 * D, D, 30);             /* rest of 0, 1 whole, part of 2 */
    for (int t = 35; t < N; t++) scb_retr_kb_put(kb, D, t, k16 + (size_t)t * D);
    for (int t = 0; t < N; t++) {
        scb_retr_kb_get(kb, D, t, row);
        assert_memory_equal(row, k32 + (size_t)t * D, sizeof(float) * D);
    }
    scb_free(k16); scb_free(k32); scb_free(row); scb_free(kb);
}

static void test_scores_bitwise(void **st)
{
    (void)st;
    const int Ds[] = {32, 64, 96, 128};
    const int nqs[] = {1, 3, 4, 6, 8, 18};
    struct { int N, t0, n; } rg[] = {{1, 0, 1}, {7, 0, 7}, {16, 0, 16}, {333, 0, 333}, {333, 5, 301},
                                     {300, 17, 255}, {129, 128, 1}, {64, 13, 3}, {80, 16, 64}, {96, 0, 48}};
    enum { NRG = sizeof rg / sizeof rg[0] };
    int tested = 0;
    for (int ii = 0; ii < NISA; ii++) {
        if (scb_retr_scan_force(isas[ii]) != SCB_OK) {
            printf("  path %s: not supported by this CPU, skipped\n", scb_retr_scan_isa_name(isas[ii]));
            continue;
        }
        assert_int_equal(scb_retr_scan_isa(), isas[ii]);
        tested++;
        struct scb_rng r; scb_rng_seed(&r, seed + (uint64_t)ii);
        for (int di = 0; di < 4; di++)
            for (int qi = 0; qi < 6; qi++)
                for (int c = 0; c < NRG; c++) {
                    const int D = Ds[di], nq = nqs[qi], N = rg[c].N, t0 = rg[c].t0, n = rg[c].n;
                    uint16_t *k16 = scb_malloc(sizeof(uint16_t) * N * D);
                    float *k32 = scb_malloc(sizeof(float) * N * D), *q = scb_malloc(sizeof(float) * nq * (D + 3));
                    uint16_t *kb = scb_calloc(scb_retr_kb_elems(N, D), sizeof(uint16_t));
                    const size_t ss = (size_t)n + 5;
                    float *s_new = scb_calloc((size_t)nq * ss, sizeof(float));
                    float *s_old = scb_calloc((size_t)nq * ss, sizeof(float));
                    make_keys(&r, N, D, c % 3 == 2, k16, k32);
                    for (int i = 0; i < nq * (D + 3); i++) q[i] = scb_rng_normal(&r);
                    scb_retr_kb_put_rows(kb, D, 0, k16, D, N);
                    scb_retr_kb_scores(q, D + 3, nq, kb, D, t0, n, s_new, ss);
                    scb_retr_flat_scores(q, D + 3, nq, k32 + (size_t)t0 * D, D, n, D, s_old, ss);
                    for (int h = 0; h < nq; h++)
                        for (int t = 0; t < n; t++) {
                            const float *qh = q + (size_t)h * (D + 3), *kt = k32 + (size_t)(t0 + t) * D;
                            const float ref = score_ref(qh, kt, D), one = scb_retr_score(qh, kt, D);
                            if (memcmp(&ref, &s_new[(size_t)h * ss + t], sizeof ref) || memcmp(&ref, &one, sizeof ref)) {
                                fail_msg("path %s D=%d nq=%d N=%d t0=%d n=%d head %d key %d: %.9g (scb_retr_score "
                                         "%.9g) != fmaf chain %.9g (seed %llu)", scb_retr_scan_isa_name(isas[ii]), D,
                                         nq, N, t0, n, h, t, (double)s_new[(size_t)h * ss + t], (double)one,
                                         (double)ref, (unsigned long long)seed);
                            }
                        }
                    assert_memory_equal(s_new, s_old, sizeof(float) * nq * ss);    /* padding untouched too */
                    scb_free(k16); scb_free(k32); scb_free(q); scb_free(kb); scb_free(s_new); scb_free(s_old);
                }
        printf("  path %s: bit-identical to the fmaf chain\n", scb_retr_scan_isa_name(isas[ii]));
    }
    assert_true(tested >= 1);
}

static int cmp_i32(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

/* The radix selection (scb_retr_topk_set) vs the previous quickselect (scb_retr_topk_set_qsel)
 * and a brute-force full sort written here: ties (scores from a few values), +0.0 and -0.0 (equal
 * scores: ties to the smaller id), negatives, wide magnitudes, n across the 2^16 histogram. */
struct sc_id { float s; int32_t id; };
static int sc_desc(const void *x, const void *y)
{
    const struct sc_id *a = x, *b = y;
    if (a->s > b->s) return -1;
    if (a->s < b->s) return 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void test_select_radix(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed * 13);
    const int ns[] = {1, 2, 17, 1000, 4099, 70001};
    for (int ni = 0; ni < 6; ni++)
        for (int kind = 0; kind < 4; kind++) {
            const int n = ns[ni];
            float *sc = scb_malloc(sizeof(float) * n);
            for (int t = 0; t < n; t++) {
                float v;
                switch (kind) {
                case 0: v = scb_rng_normal(&r) * 11.3f; break;                                 /* distinct */
                case 1: v = (float)((int)(scb_rng_next(&r) % 7) - 3) * 0.25f; break;            /* ties, zeros */
                case 2: v = (scb_rng_next(&r) & 1) ? 0.0f : -0.0f; break;                       /* +0 == -0 */
                default: v = scb_rng_normal(&r) * ldexpf(1.0f, (int)(scb_rng_next(&r) % 200) - 100); break;
                }
                if (kind == 1 && v == 0.0f && (scb_rng_next(&r) & 1)) v = -0.0f;
                sc[t] = v;
            }
            const int ks[] = {1, n / 2 + 1, n - 1, n, n + 5, 4096};
            void *work = scb_malloc(scb_retr_topk_set_work_bytes(n));
            int32_t *a = scb_malloc(sizeof(int32_t) * (n + 8)), *b = scb_malloc(sizeof(int32_t) * (n + 8));
            struct sc_id *all = scb_malloc(sizeof *all * n);
            for (int ki = 0; ki < 6; ki++) {
                const int k = ks[ki];
                if (k < 1) continue;
                const int kk = k < n ? k : n;
                int ga = scb_retr_topk_set(sc, n, 7, k, a, work);
                int gb = scb_retr_topk_set_qsel(sc, n, 7, k, b, work);
                for (int t = 0; t < n; t++) { all[t].s = sc[t]; all[t].id = 7 + t; }
                qsort(all, (size_t)n, sizeof *all, sc_desc);
                int32_t *ref = scb_malloc(sizeof(int32_t) * kk);
                for (int t = 0; t < kk; t++) ref[t] = all[t].id;
                qsort(ref, (size_t)kk, sizeof *ref, cmp_i32);
                assert_int_equal(ga, kk);
                assert_int_equal(gb, kk);
                if (memcmp(a, ref, sizeof(int32_t) * kk) || memcmp(b, ref, sizeof(int32_t) * kk))
                    fail_msg("selection n=%d kind %d k=%d differs from the full sort (seed %llu)", n, kind, k,
                             (unsigned long long)seed);
                scb_free(ref);
            }
            scb_free(sc); scb_free(work); scb_free(a); scb_free(b); scb_free(all);
        }
}

/* scb_retr_topk_set_dig (the fused step's selection: digits and a coarse histogram from the
 * scan) vs scb_retr_topk_set on the same scores: random, ties-heavy (a few values, +0.0 / -0.0),
 * all equal, wide magnitudes, with NaNs (the key order puts them at the ends, as now); every
 * histogram width 1..16 bits; k across the range. */
static void test_select_dig(void **st)
{
    (void)st;
    const uint64_t sd = seed * 31 + 5;
    struct scb_rng r; scb_rng_seed(&r, sd);
    const int ns[] = {1, 3, 16, 33, 1000, 5003, 40000};
    for (int ni = 0; ni < 7; ni++)
        for (int kind = 0; kind < 5; kind++) {
            const int n = ns[ni];
            float *sc = scb_malloc(sizeof(float) * n);
            uint16_t *dig = scb_malloc(sizeof(uint16_t) * n);
            for (int t = 0; t < n; t++) {
                float v;
                switch (kind) {
                case 0: v = scb_rng_normal(&r) * 11.3f; break;
                case 1:
                    v = (float)((int)(scb_rng_next(&r) % 5) - 2) * 0.5f;
                    if (v == 0.0f && (scb_rng_next(&r) & 1)) v = -0.0f;
                    break;
                case 2: v = 3.25f; break;                                                       /* all tie */
                case 3: v = scb_rng_normal(&r) * ldexpf(1.0f, (int)(scb_rng_next(&r) % 200) - 100); break;
                default: v = scb_rng_next(&r) % 97 == 0 ? (scb_rng_next(&r) & 1 ? NAN : -NAN) : scb_rng_normal(&r); break;
                }
                sc[t] = v;
                dig[t] = (uint16_t)(key_ref(v) >> 16);
                if (key_ref(v) != scb_retr_score_key(v))
                    fail_msg("score key of %a: %08x, want %08x", (double)v, scb_retr_score_key(v), key_ref(v));
            }
            uint32_t *hist = scb_malloc(sizeof(uint32_t) << 16);
            void *work = scb_malloc(scb_retr_topk_set_work_bytes(n));
            int32_t *a = scb_malloc(sizeof(int32_t) * (n + 8)), *b = scb_malloc(sizeof(int32_t) * (n + 8));
            const int ks[] = {1, 2, n / 8 + 1, n / 2, n - 1, n, n + 3};
            for (int hb = 1; hb <= 16; hb += (hb < 4 || hb >= 11) ? 1 : 4)
            for (int ii = 0; ii < NISA; ii++) {   /* the digit pass: scalar, or AVX-512 with that path */
                if (scb_retr_scan_force(isas[ii]) != SCB_OK) continue;
                memset(hist, 0, sizeof(uint32_t) << hb);
                for (int t = 0; t < n; t++) hist[dig[t] >> (16 - hb)]++;
                for (int ki = 0; ki < 7; ki++) {
                    const int k = ks[ki];
                    if (k < 1) continue;
                    int ga = scb_retr_topk_set(sc, n, 11, k, a, work);
                    int gb = scb_retr_topk_set_dig(sc, dig, hist, hb, n, 11, k, b, work);
                    assert_int_equal(ga, k < n ? k : n);
                    assert_int_equal(gb, ga);
                    if (memcmp(a, b, sizeof(int32_t) * ga))
                        fail_msg("digit selection (%s) n=%d kind %d bits %d k=%d differs from scb_retr_topk_set "
                                 "(seed %llu)", scb_retr_scan_isa_name(isas[ii]), n, kind, hb, k,
                                 (unsigned long long)seed);
                }
            }
            scb_free(sc); scb_free(dig); scb_free(hist); scb_free(work); scb_free(a); scb_free(b);
        }
}

/* The pooled step (what the device binding runs), two-phase and fused, vs a brute-force sort of
 * the reference scores (score_ref; score descending, ties to the smaller id) and vs
 * scb_retr_flat_topk per query head; ties-heavy cases (small = 1: keys and queries from a few
 * integers) and random ones. */
static void test_step_topk(void **st)
{
    (void)st;
    struct scb_pool *pool = NULL;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_pool_create(&pool, 3, &ctx), SCB_OK);
    struct { int Hq, Hkv, D, N, lo, hi, k, small; } cs[] = {
        {8, 2, 64, 3001, 128, 2489, 100, 0}, {4, 4, 32, 700, 5, 699, 64, 1}, {8, 1, 128, 2100, 16, 2100, 1, 0},
        {6, 2, 96, 515, 3, 400, 500, 1}, {16, 2, 128, 4099, 128, 3587, 1024, 1}, {4, 1, 128, 1300, 16, 1300, 200, 1},
        {4, 1, 128, 2000, 32, 1999, 300, 0},
    };
    for (int ii = 0; ii < NISA; ii++) {
        if (scb_retr_scan_force(isas[ii]) != SCB_OK) continue;
        struct scb_rng r; scb_rng_seed(&r, seed * 7 + (uint64_t)ii);
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            const int Hq = cs[c].Hq, Hkv = cs[c].Hkv, D = cs[c].D, N = cs[c].N, G = Hq / Hkv, lo = cs[c].lo;
            const int n = cs[c].hi - lo, kk = cs[c].k < n ? cs[c].k : n;
            const size_t kbh = scb_retr_kb_elems(N, D);
            uint16_t *k16 = scb_malloc(sizeof(uint16_t) * N * D);
            float *k32 = scb_malloc(sizeof(float) * (size_t)Hkv * N * D), *q = scb_malloc(sizeof(float) * Hq * D);
            uint16_t *kb = scb_calloc(kbh * Hkv, sizeof(uint16_t));
            for (int g = 0; g < Hkv; g++) {
                make_keys(&r, N, D, cs[c].small, k16, k32 + (size_t)g * N * D);
                scb_retr_kb_put_rows(kb + g * kbh, D, 0, k16, D, N);
            }
            for (int i = 0; i < Hq * D; i++) q[i] = cs[c].small ? (float)((int)(scb_rng_next(&r) % 3) - 1) : scb_rng_normal(&r);
            const int nt = scb_pool_threads(pool);
            struct scb_retr_step s = {
                .q = q, .Hq = Hq, .Hkv = Hkv, .D = D, .kb = kb, .kb_head = kbh, .lo = lo, .hi = cs[c].hi,
                .top_k = cs[c].k, .ss = (size_t)N, .sel_bytes = scb_retr_topk_set_work_bytes(N), .idx_stride = kk,
            };
            s.scores = scb_malloc(sizeof(float) * Hq * N);
            s.sel_work = scb_malloc(s.sel_bytes * nt);
            s.idx = scb_malloc(sizeof(int32_t) * Hq * kk);
            s.n_idx = scb_malloc(sizeof(int32_t) * Hq);
            int32_t *ref = scb_malloc(sizeof(int32_t) * kk), *bf = scb_malloc(sizeof(int32_t) * kk);
            struct sc_id *all = scb_malloc(sizeof *all * n);
            assert_int_equal(scb_retr_step_run(pool, &s, SCB_RETR_STEP_BOTH, &ctx), SCB_OK);
            /* the fused step: the same scores (memcmp) and the same id sets as the two-phase one */
            float *sc2 = scb_malloc(sizeof(float) * Hq * N);
            memcpy(sc2, s.scores, sizeof(float) * Hq * N);
            int32_t *idx2 = scb_malloc(sizeof(int32_t) * Hq * kk), *n2 = scb_malloc(sizeof(int32_t) * Hq);
            memcpy(idx2, s.idx, sizeof(int32_t) * Hq * kk);
            memcpy(n2, s.n_idx, sizeof(int32_t) * Hq);
            memset(s.scores, 0, sizeof(float) * Hq * N);
            memset(s.idx, 0xff, sizeof(int32_t) * Hq * kk);
            s.dig = scb_malloc(sizeof(uint16_t) * Hq * N);
            s.hist_bytes = scb_retr_step_hist_bytes(nt, Hq);
            s.hist_work = scb_malloc(s.hist_bytes);
            s.profile = (int)(c % 2);
            for (int rep = 0; rep < 2; rep++) {   /* twice: the histograms are reset per step */
                s.hist_in_select = rep;
                /* the read-ahead the device binding issues before the query is known (all of
                 * each thread's share, then 4 KiB): a hint, the step's results unchanged */
                scb_retr_step_prefetch(pool, &s, rep ? 4096 : (size_t)1 << 30);
                assert_int_equal(scb_retr_step_run(pool, &s, SCB_RETR_STEP_FUSED, &ctx), SCB_OK);
                for (int h = 0; h < Hq; h++)
                    if (memcmp(sc2 + (size_t)h * N, s.scores + (size_t)h * N, sizeof(float) * n) ||
                        s.n_idx[h] != n2[h] || memcmp(idx2 + (size_t)h * kk, s.idx + (size_t)h * kk, sizeof(int32_t) * n2[h]))
                        fail_msg("path %s case %zu head %d: fused step differs from the two-phase step (seed %llu)",
                                 scb_retr_scan_isa_name(isas[ii]), c, h, (unsigned long long)seed);
            }
            if (s.profile) assert_true(s.prof_ms[2] >= s.prof_ms[0] && s.prof_ms[0] >= 0 && s.prof_ms[1] >= 0);
            int ties = 0;
            for (int h = 0; h < Hq; h++) {
                const float *keys = k32 + ((size_t)(h / G) * N + lo) * D;
                for (int t = 0; t < n; t++) {   /* brute force: every score, a full sort */
                    all[t].s = score_ref(q + (size_t)h * D, keys + (size_t)t * D, D);
                    all[t].id = lo + t;
                }
                qsort(all, (size_t)n, sizeof *all, sc_desc);
                if (kk < n && all[kk - 1].s == all[kk].s) ties++;   /* the k-th ties with the next */
                for (int t = 0; t < kk; t++) bf[t] = all[t].id;
                qsort(bf, (size_t)kk, sizeof *bf, cmp_i32);
                int m = scb_retr_flat_topk(q + (size_t)h * D, keys, D, NULL, n, D, cs[c].k, ref, NULL);
                assert_int_equal(m, kk);
                for (int t = 0; t < m; t++) ref[t] += lo;
                qsort(ref, (size_t)m, sizeof *ref, cmp_i32);
                assert_int_equal(s.n_idx[h], m);
                assert_int_equal(n2[h], m);
                if (memcmp(bf, s.idx + (size_t)h * kk, sizeof(int32_t) * m) || memcmp(bf, ref, sizeof(int32_t) * m) ||
                    memcmp(bf, idx2 + (size_t)h * kk, sizeof(int32_t) * m))
                    fail_msg("path %s case %zu head %d: top-%d set differs from the brute-force sort (fused %d, "
                             "two-phase %d, scb_retr_flat_topk %d) (seed %llu)", scb_retr_scan_isa_name(isas[ii]), c, h,
                             m, !memcmp(bf, s.idx + (size_t)h * kk, sizeof(int32_t) * m),
                             !memcmp(bf, idx2 + (size_t)h * kk, sizeof(int32_t) * m), !memcmp(bf, ref, sizeof(int32_t) * m),
                             (unsigned long long)seed);
            }
            if (cs[c].small && kk < n) assert_true(ties > 0);   /* the ties-heavy cases do tie at the boundary */
            scb_free(sc2); scb_free(idx2); scb_free(n2); scb_free(s.dig); scb_free(s.hist_work); scb_free(all);
            scb_free(k16); scb_free(k32); scb_free(q); scb_free(kb); scb_free(s.scores); scb_free(s.sel_work);
            scb_free(s.idx); scb_free(s.n_idx); scb_free(ref); scb_free(bf);
        }
    }
    scb_pool_destroy(pool);
}

static void test_step_bad_shape(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    struct scb_pool *pool = NULL;
    assert_int_equal(scb_pool_create(&pool, 1, &ctx), SCB_OK);
    struct scb_retr_step s = {.Hq = 6, .Hkv = 4, .D = 64, .lo = 0, .hi = 10, .top_k = 4, .ss = 10, .idx_stride = 4,
                              .sel_bytes = scb_retr_topk_set_work_bytes(10)};
    assert_int_equal(scb_retr_step_run(pool, &s, 3, &ctx), SCB_E_INVAL);       /* 6 heads over 4 */
    assert_non_null(strstr(ctx.msg, "Hq=6 Hkv=4"));
    s.Hq = 8; s.ss = 5;
    assert_int_equal(scb_retr_step_run(pool, &s, 3, &ctx), SCB_E_INVAL);       /* scores too short */
    s.ss = 10; s.D = SCB_RETR_SCAN_DMAX + 2;
    assert_int_equal(scb_retr_step_run(pool, &s, 3, &ctx), SCB_E_INVAL);
    s.D = 64;
    assert_int_equal(scb_retr_step_run(pool, &s, SCB_RETR_STEP_FUSED, &ctx), SCB_E_INVAL);   /* no scratch */
    assert_non_null(strstr(ctx.msg, "fused step"));
    assert_int_equal(scb_retr_step_run(pool, &s, 9, &ctx), SCB_E_INVAL);
    scb_pool_destroy(pool);
}

int main(void)
{
    const char *e = getenv("SCB_TEST_SEED");
    if (e) seed = strtoull(e, NULL, 10);
    printf("test_retr_scan seed %llu\n", (unsigned long long)seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_scores_bitwise),
        cmocka_unit_test(test_select_radix),
        cmocka_unit_test(test_select_dig),
        cmocka_unit_test(test_step_topk),
        cmocka_unit_test(test_step_bad_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
