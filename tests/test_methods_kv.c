/* test_methods_kv.c — KV policies: StreamingLLM, SnapKV (+ GQA variant), PyramidKV schedule,
 * KIVI quantization/packing/schedule/attention, Quest bounds and selection, RetrievalAttention
 * (flat top-k, graph index recall, merge, sliding), CacheBlend selection, and the invariant that
 * an unlimited budget gives outputs BITWISE identical to dense attention for every policy.
 * Expected numbers come from spec/methods.md (budgets, layouts), or from brute force written
 * here. Tolerances: LSE merge vs one softmax 1e-6 (double arithmetic, different grouping). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "methods_testutil.h"
#include "methods/cacheblend.h"
#include "methods/dense.h"
#include "kernels/kivi_cuda.h"
#include "methods/kivi.h"
#include "methods/quest.h"
#include "methods/retr_attn.h"
#include "methods/snapkv.h"
#include "methods/streamingllm.h"

static uint64_t seed;

/* ---- StreamingLLM --------------------------------------------------------------------------- */
static void test_streamingllm(void **st)
{
    (void)st;
    int Ns[] = {100, 4095, 4096, 5000, 131072};
    int32_t *idx = scb_malloc(sizeof(int32_t) * 131072);
    for (int c = 0; c < 5; c++) {
        int N = Ns[c];
        int n = scb_streamingllm_keep(N, 128, 3968, idx);
        if (N < 4096) { assert_int_equal(n, N); for (int j = 0; j < N; j++) assert_int_equal(idx[j], j); continue; }
        assert_int_equal(n, 4096);
        for (int t = 0; t < n; t++) {
            int j = idx[t];
            assert_true(j < 128 || j >= N - 3968);         /* first 128 + last 3968 */
            if (t) assert_true(idx[t] > idx[t - 1]);
        }
    }
    scb_free(idx);
    /* through the method: per query head (SCBench) or per KV head (gqa=true) */
    struct scb_rng r; scb_rng_seed(&r, seed);
    struct tu_qkv t; tu_qkv_make(&t, &r, 50, 50, 4, 2, 8);
    struct scb_kv_compress_args ca = {t.k, t.v, t.q, 50, 50, 4, 2, 8, 0, 0, 2};
    const char *specs[2] = {"streamingllm:n_init=3,n_local=10", "streamingllm:n_init=3,n_local=10,gqa=true"};
    for (int s = 0; s < 2; s++) {
        struct scb_method_spec sp; struct scb_ctx ctx = {0}; struct scb_kv_keep kp;
        assert_int_equal(scb_method_spec_parse(specs[s], &sp, &ctx), SCB_OK);
        assert_int_equal(scb_method_kv_after_prefill(&sp.kv, &ca, &kp, &ctx), SCB_OK);
        assert_int_equal(kp.H, s ? 2 : 4);
        for (int h = 0; h < kp.H; h++) {
            assert_int_equal(kp.n[h], 13);
            for (int q = 0; q < 13; q++) assert_int_equal(kp.idx[(size_t)h * kp.cap + q], q < 3 ? q : 40 + (q - 3));
        }
        /* decode after compression == dense attention over the explicit kept list (gathered) */
        struct tu_qkv d; tu_qkv_make(&d, &r, 2, 52, 4, 2, 8);
        memcpy(d.k, t.k, sizeof(float) * 50 * 2 * 8); memcpy(d.v, t.v, sizeof(float) * 50 * 2 * 8);
        assert_int_equal(scb_attn_keep_ref(&d.a, &kp, &ctx), SCB_OK);
        float *gk = scb_malloc(sizeof(float) * 15 * 2 * 8), *gv = scb_malloc(sizeof(float) * 15 * 2 * 8);
        int list[15] = {0, 1, 2, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51};
        for (int q = 0; q < 15; q++) { memcpy(gk + q * 16, d.k + list[q] * 16, 64); memcpy(gv + q * 16, d.v + list[q] * 16, 64); }
        struct scb_attn_args g = d.a; g.k = gk; g.v = gv; g.Tk = 15; g.out = d.o2;
        assert_int_equal(scb_attn_dense_ref(&g, &ctx), SCB_OK);
        assert_memory_equal(d.o, d.o2, sizeof(float) * 2 * 4 * 8);
        scb_free(gk); scb_free(gv); tu_qkv_free(&d);
        scb_kv_keep_fini(&kp); scb_method_spec_fini(&sp);
    }
    tu_qkv_free(&t);
}

/* ---- SnapKV ---------------------------------------------------------------------------------- */
static void test_snapkv_pool(void **st)
{
    (void)st;
    float x[6] = {1, 2, 3, 4, 5, 6}, y[6];
    float want[6] = {1.2f, 2.0f, 3.0f, 4.0f, 3.6f, 3.0f};   /* zero-padded mean, kernel 5 */
    scb_snapkv_pool(x, 6, 5, SCB_POOL_AVG, y);
    for (int i = 0; i < 6; i++) assert_true(fabsf(y[i] - want[i]) < 1e-6f);
    float xn[3] = {-1, -2, -3}, yn[3];
    scb_snapkv_pool(xn, 3, 5, SCB_POOL_MAX, yn);            /* padding never wins the max */
    assert_true(yn[0] == -1 && yn[1] == -1 && yn[2] == -1);
    scb_snapkv_pool(xn, 3, 1, SCB_POOL_AVG, yn);
    assert_true(yn[2] == -3);
}

/* Brute-force pooled scores of head h (or group mean when gqa). */
static void brute_scores(const struct scb_kv_compress_args *a, int W, int gqa, int hh, float *out)
{
    int N = a->N, P = N - W, G = a->Hq / a->Hkv, D = a->D;
    double *acc = calloc(P, sizeof(double)), *s = malloc(sizeof(double) * N);
    int h0 = gqa ? hh * G : hh, h1 = gqa ? h0 + G : hh + 1;
    for (int h = h0; h < h1; h++)
        for (int r = 0; r < W; r++) {
            const float *q = a->q + ((size_t)(a->Nq - W + r) * a->Hq + h) * D;
            double mx = -INFINITY, l = 0;
            for (int j = 0; j <= N - W + r; j++) {
                double d = 0; for (int e = 0; e < D; e++) d += (double)q[e] * a->k[((size_t)j * a->Hkv + h / G) * D + e];
                s[j] = d / sqrt((double)D); if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= N - W + r; j++) l += exp(s[j] - mx);
            for (int j = 0; j < P; j++) acc[j] += exp(s[j] - mx) / l;
        }
    for (int j = 0; j < P; j++) {
        double m = 0;
        for (int t = j - 2; t <= j + 2; t++) if (t >= 0 && t < P) m += acc[t] / (h1 - h0);
        out[j] = (float)(m / 5);
    }
    free(acc); free(s);
}

static void test_snapkv_select(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 1);
    int N = 200, W = 8, C = 64, Hq = 4, Hkv = 2, D = 16, planted = 77;
    struct tu_qkv t; tu_qkv_make(&t, &r, N, N, Hq, Hkv, D);
    /* plant: key 77 of each KV head aligned with its group's window queries, large norm */
    for (int g = 0; g < Hkv; g++)
        for (int e = 0; e < D; e++) {
            double m = 0;
            for (int r2 = N - W; r2 < N; r2++) for (int j = 0; j < 2; j++) m += t.q[((size_t)r2 * Hq + g * 2 + j) * D + e];
            t.k[((size_t)planted * Hkv + g) * D + e] = (float)(m / (W * 2) * 40.0);
        }
    struct scb_kv_compress_args ca = {t.k, t.v, t.q, N, N, Hq, Hkv, D, 0, 0, 1};
    for (int gqa = 0; gqa < 2; gqa++) {
        struct scb_kv_keep kp; struct scb_ctx ctx = {0};
        int H = gqa ? Hkv : Hq, P = N - W;
        float *pooled = scb_malloc(sizeof(float) * H * P), *bp = scb_malloc(sizeof(float) * P);
        assert_int_equal(scb_snapkv_scores(&ca, W, 5, SCB_POOL_AVG, gqa, pooled, &ctx), SCB_OK);
        assert_int_equal(scb_snapkv_select(&ca, W, 5, SCB_POOL_AVG, gqa, C - W, &kp, &ctx), SCB_OK);
        assert_int_equal(kp.H, H);
        assert_int_equal(kp.per_kv_head, gqa);
        for (int h = 0; h < H; h++) {
            brute_scores(&ca, W, gqa, h, bp);
            for (int j = 0; j < P; j++) assert_true(fabsf(bp[j] - pooled[(size_t)h * P + j]) < 1e-6f);
            const int32_t *li = kp.idx + (size_t)h * kp.cap;
            assert_int_equal(kp.n[h], C);                           /* budget - window + window */
            uint8_t in[200] = {0};
            for (int q = 0; q < C; q++) { in[li[q]] = 1; if (q) assert_true(li[q] > li[q - 1]); }
            for (int j = N - W; j < N; j++) assert_true(in[j]);     /* window always kept */
            for (int j = planted - 2; j <= planted + 2; j++) assert_true(in[j]);  /* planted + pooled neighbours */
            float minin = INFINITY, maxout = -INFINITY;
            for (int j = 0; j < P; j++) {
                float s = pooled[(size_t)h * P + j];
                if (in[j]) { if (s < minin) minin = s; } else if (s > maxout) maxout = s;
            }
            assert_true(minin >= maxout);
        }
        scb_free(pooled); scb_free(bp);
        scb_kv_keep_fini(&kp);
    }
    struct scb_ctx ctx = {0}; struct scb_kv_keep kp;
    ca.Nq = 4;   /* fewer queries than the window */
    assert_int_equal(scb_snapkv_select(&ca, W, 5, SCB_POOL_AVG, 0, C - W, &kp, &ctx), SCB_E_INVAL);
    tu_qkv_free(&t);
}

static void test_pyramidkv_schedule(void **st)
{
    (void)st;
    /* spec/methods.md §5.2: C=4096, W=32, beta=20, N >= 8128 */
    int N = 131072;
    struct { int L, first, last; double mean; } c[] = {{32, 7925, 206, 4065.5}, {80, 7925, 262, 4093.5}, {28, 7925, 203, -1}};
    for (int k = 0; k < 3; k++) {
        double sum = 0;
        for (int l = 0; l < c[k].L; l++) sum += scb_pyramidkv_n_select(N, 4096, 32, 20, c[k].L, l);
        assert_int_equal(scb_pyramidkv_n_select(N, 4096, 32, 20, c[k].L, 0), c[k].first);
        assert_int_equal(scb_pyramidkv_n_select(N, 4096, 32, 20, c[k].L, c[k].L - 1), c[k].last);
        if (c[k].mean > 0) assert_true(fabs(sum / c[k].L - c[k].mean) < 1e-9);
    }
    assert_int_equal(scb_pyramidkv_n_select(N, 4096, 32, 20, 32, 1), 7925 - 249);   /* steps 249 */
    assert_int_equal(scb_pyramidkv_n_select(4000, 4096, 32, 20, 32, 5), -1);         /* N < C: keep all */
    assert_int_equal(scb_pyramidkv_n_select(8000, 4096, 32, 20, 32, 5), 4064);       /* N < 2(C-W): SnapKV */
    assert_int_equal(scb_snapkv_n_select(4096, 4096, 32), 4064);
    assert_int_equal(scb_snapkv_n_select(4095, 4096, 32), -1);
    /* through the method, small: C=64, W=8, L=4, N=300: min 2, max 110, steps 36 */
    struct scb_rng r; scb_rng_seed(&r, seed + 2);
    struct tu_qkv t; tu_qkv_make(&t, &r, 300, 300, 2, 1, 8);
    struct scb_method_spec sp; struct scb_ctx ctx = {0};
    assert_int_equal(scb_method_spec_parse("pyramidkv:budget=64,window=8", &sp, &ctx), SCB_OK);
    int want[4] = {110, 74, 38, 2};
    for (int l = 0; l < 4; l++) {
        struct scb_kv_compress_args ca = {t.k, t.v, t.q, 300, 300, 2, 1, 8, 0, l, 4};
        struct scb_kv_keep kp;
        assert_int_equal(scb_method_kv_after_prefill(&sp.kv, &ca, &kp, &ctx), SCB_OK);
        for (int h = 0; h < 2; h++) assert_int_equal(kp.n[h], want[l] + 8);
        scb_kv_keep_fini(&kp);
    }
    scb_method_spec_fini(&sp);
    tu_qkv_free(&t);
}

/* ---- KIVI ------------------------------------------------------------------------------------ */
static void test_kivi_pack_quant(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 3);
    int bitsv[3] = {2, 4, 8};
    for (int b = 0; b < 3; b++) {
        int bits = bitsv[b], per = 32 / bits;
        uint8_t codes[64], back[64];
        uint32_t words[16];
        for (int i = 0; i < 64; i++) codes[i] = (uint8_t)scb_rng_below(&r, 1u << bits);
        scb_kivi_pack(codes, 64, bits, words);
        scb_kivi_unpack(words, 64, bits, back);
        assert_memory_equal(codes, back, 64);
        for (int w = 0; w < 64 / per; w++) {      /* element t of a word at bits [b*t, b*t+b) */
            uint64_t x = 0;
            for (int t = 0; t < per; t++) x |= (uint64_t)codes[w * per + t] << (bits * t);
            assert_true(words[w] == (uint32_t)x);
        }
        for (int trial = 0; trial < 50; trial++) {
            float x[32], sc, mn;
            float spread = (float)(0.01 + 10 * scb_rng_uniform(&r)), off = (float)(5 * scb_rng_normal(&r));
            for (int i = 0; i < 32; i++) x[i] = off + spread * scb_rng_normal(&r);
            scb_kivi_quant_group(x, 1, 32, bits, codes, &sc, &mn);
            float lo = x[0], hi = x[0];
            for (int i = 1; i < 32; i++) { if (x[i] < lo) lo = x[i]; if (x[i] > hi) hi = x[i]; }
            assert_true(mn == lo);
            assert_true(fabs(sc - (hi - lo) / ((1 << bits) - 1)) <= 1e-6 * fabs(sc));
            for (int i = 0; i < 32; i++) {
                assert_true(codes[i] < (1u << bits));
                float xh = codes[i] * sc + mn;
                /* bound implied by the bit width and the group's min/max: half a step (+ fp32 rounding) */
                assert_true(fabsf(x[i] - xh) <= sc / 2 + 1e-5f * (fabsf(x[i]) + fabsf(mn) + sc));
            }
        }
    }
    float c[32], sc, mn; uint8_t codes[32];
    for (int i = 0; i < 32; i++) c[i] = 1.5f;
    scb_kivi_quant_group(c, 1, 32, 2, codes, &sc, &mn);                 /* constant group */
    assert_true(sc == 0.0f && mn == 1.5f);
    for (int i = 0; i < 32; i++) assert_int_equal(codes[i], 0);
}

/* The device store's tiled code layout (kernels/kivi_cuda.h, scb_kivi_code_pos): every code of a
 * store has its own aligned bit field inside the array, and the pairs the tensor-core kernel's
 * fragment registers take sit in one word, 16 bits apart: keys, channels 2c and 2c + 1 of a
 * token; values, tokens 2u and 2u + 1 of a channel. */
static void test_kivi_cuda_code_layout(void **st)
{
    (void)st;
    const int Ds[] = {6, 16, 96, 128, 256}, caps[] = {32, 48, 160}, bitsv[] = {2, 4, 8};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 3; c++) {
                const int D = Ds[a], cap = caps[b], bits = bitsv[c], Hkv = 2;
                const size_t words = scb_kivi_code_words(Hkv, D, bits, cap);
                for (int keys = 0; keys < 2; keys++) {
                    uint32_t *used = calloc(words, sizeof(uint32_t));
                    assert_non_null(used);
                    for (int h = 0; h < Hkv; h++)
                        for (int t = 0; t < cap; t++)
                            for (int d = 0; d < D; d++) {
                                int bit;
                                const size_t w = scb_kivi_code_pos(keys, D, cap, bits, h, t, d, &bit);
                                assert_true(w < words && bit >= 0 && bit % bits == 0 && bit + bits <= 32);
                                const uint32_t m = ((1u << bits) - 1u) << bit;
                                assert_true((used[w] & m) == 0);   /* no two codes share a bit */
                                used[w] |= m;
                                if ((keys ? d : t) % 2 == 0) {     /* the pair partner: + 16 bits, same word */
                                    int bit2;
                                    const size_t w2 = keys ? scb_kivi_code_pos(keys, D, cap, bits, h, t, d + 1, &bit2)
                                                           : scb_kivi_code_pos(keys, D, cap, bits, h, t + 1, d, &bit2);
                                    if (keys ? d + 1 < D : t + 1 < cap) assert_true(w2 == w && bit2 == bit + 16);
                                }
                            }
                    free(used);
                }
            }
}

static void test_kivi_cache(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 4);
    int Hkv = 2, D = 64, Hq = 4, N = 100;
    float *k = tu_randn(&r, (size_t)(N + 40) * Hkv * D, 1.0f), *v = tu_randn(&r, (size_t)(N + 40) * Hkv * D, 1.0f);
    struct scb_ctx ctx = {0};
    for (int bits = 2; bits <= 4; bits += 2) {
        struct scb_kivi_cache *c;
        assert_int_equal(scb_kivi_cache_create(&c, Hkv, D, bits, 32, 32, &ctx), SCB_OK);
        assert_int_equal(scb_kivi_cache_prefill(c, k, v, N, &ctx), SCB_OK);
        /* spec §6.6: N = 100 -> keys 96 q + 4 f, values 68 q + 32 f */
        assert_int_equal(c->Tk_q, 96); assert_int_equal(c->nk_r, 4);
        assert_int_equal(c->Tv_q, 68); assert_int_equal(c->nv_r, 32);
        int64_t want = (int64_t)Hkv * ((96 + 68) * D * bits / 8 + 2 * (96 * D / 32 + 68 * D / 32) * 2 + (4 + 32) * D * 2);
        assert_true(scb_kivi_cache_bytes(c, 2, 2) == want);
        assert_true(scb_kivi_bytes(N, N, Hkv, D, bits, 32, 32, 1, 2, 2) == want);
        assert_int_equal(scb_kivi_cache_append(c, k + (size_t)N * Hkv * D, v + (size_t)N * Hkv * D, &ctx), SCB_OK);
        assert_int_equal(c->Tk_q, 96); assert_int_equal(c->nk_r, 5);       /* keys 96 q + 5 f */
        assert_int_equal(c->Tv_q, 100); assert_int_equal(c->nv_r, 1);      /* values 68 q + 33 -> 100 q + 1 f */
        for (int t = N + 1; t < N + 40; t++)
            assert_int_equal(scb_kivi_cache_append(c, k + (size_t)t * Hkv * D, v + (size_t)t * Hkv * D, &ctx), SCB_OK);
        int T = N + 40;
        assert_int_equal(scb_kivi_cache_len(c), T);
        assert_int_equal(c->Tk_q, 128); assert_int_equal(c->nk_r, 12);
        assert_true(scb_kivi_cache_bytes(c, 2, 2) == scb_kivi_bytes(N, T, Hkv, D, bits, 32, 32, 1, 2, 2));
        /* dequantized error within half a step of each group's own min/max */
        float *kd = scb_malloc(sizeof(float) * (size_t)T * Hkv * D), *vd = scb_malloc(sizeof(float) * (size_t)T * Hkv * D);
        scb_kivi_cache_dequant(c, kd, vd);
        double qmax = (1 << bits) - 1;
        for (int g = 0; g < Hkv; g++)
            for (int d = 0; d < D; d++)
                for (int t = 0; t < T; t++) {
                    size_t e = ((size_t)t * Hkv + g) * D + d;
                    if (t >= c->Tk_q) { assert_true(kd[e] == k[e]); continue; }
                    double lo = INFINITY, hi = -INFINITY;
                    for (int u = t / 32 * 32; u < t / 32 * 32 + 32; u++) { double x = k[((size_t)u * Hkv + g) * D + d]; if (x < lo) lo = x; if (x > hi) hi = x; }
                    assert_true(fabs(kd[e] - k[e]) <= (hi - lo) / qmax / 2 + 1e-5);
                }
        for (int g = 0; g < Hkv; g++)
            for (int t = 0; t < T; t++)
                for (int d = 0; d < D; d++) {
                    size_t e = ((size_t)t * Hkv + g) * D + d;
                    if (t >= c->Tv_q) { assert_true(vd[e] == v[e]); continue; }
                    double lo = INFINITY, hi = -INFINITY;
                    for (int u = d / 32 * 32; u < d / 32 * 32 + 32; u++) { double x = v[((size_t)t * Hkv + g) * D + u]; if (x < lo) lo = x; if (x > hi) hi = x; }
                    assert_true(fabs(vd[e] - v[e]) <= (hi - lo) / qmax / 2 + 1e-5);
                }
        /* attention on the packed cache == reference attention on the dequantized cache */
        float *q = tu_randn(&r, (size_t)Hq * D, 1.0f), *o = scb_malloc(sizeof(float) * Hq * D), *o2 = scb_malloc(sizeof(float) * Hq * D);
        assert_int_equal(scb_kivi_cache_attn(c, q, Hq, 0.0f, NULL, NULL, 0, o, NULL, &ctx), SCB_OK);
        struct scb_attn_args a = {q, kd, vd, o2, NULL, 1, T, Hq, Hkv, D, 0, 0, 0, 0, 0, 0, 0};
        assert_int_equal(scb_attn_dense_ref(&a, &ctx), SCB_OK);
        assert_memory_equal(o, o2, sizeof(float) * Hq * D);
        /* and it differs from full-precision attention (quantization is real) */
        a.k = k; a.v = v;
        assert_int_equal(scb_attn_dense_ref(&a, &ctx), SCB_OK);
        assert_true(tu_maxdiff(o, o2, (size_t)Hq * D) > 1e-4);
        scb_free(q); scb_free(o); scb_free(o2); scb_free(kd); scb_free(vd);
        scb_kivi_cache_destroy(c);
    }
    struct scb_kivi_cache *c;
    assert_int_equal(scb_kivi_cache_create(&c, Hkv, 48, 2, 32, 32, &ctx), SCB_E_INVAL);   /* D % group */
    scb_free(k); scb_free(v);
}

static void test_kivi_method(void **st)
{
    (void)st;
    /* method hooks: prefill N, then a follow-up chunk of 3 global tokens and 2 temp tokens; equals
     * the cache API driven by hand (tokens appended one at a time, temp in full precision) */
    struct scb_rng r; scb_rng_seed(&r, seed + 5);
    int N = 70, Hq = 4, Hkv = 2, D = 32, Tq = 5, Tk = N + Tq;
    struct tu_qkv t; tu_qkv_make(&t, &r, Tq, Tk, Hq, Hkv, D);
    struct scb_model_info mi = {1, Hq, Hkv, D, "tiny"};
    struct scb_method_spec sp; struct scb_ctx ctx = {0}; struct scb_kv_keep kp;
    assert_int_equal(scb_method_spec_parse("kivi", &sp, &ctx), SCB_OK);
    assert_int_equal(scb_method_init(&sp.kv, &mi, &ctx), SCB_OK);
    struct scb_kv_compress_args ca = {t.k, t.v, t.q, N, 1, Hq, Hkv, D, 0, 0, 1};
    assert_int_equal(scb_method_kv_after_prefill(&sp.kv, &ca, &kp, &ctx), SCB_OK);
    scb_kv_keep_fini(&kp);
    t.a.Tk_global = N + 3;
    assert_int_equal(scb_method_decode_attn(&sp.kv, &t.a, &ctx), SCB_OK);
    struct scb_kivi_cache *c;
    assert_int_equal(scb_kivi_cache_create(&c, Hkv, D, 2, 32, 32, &ctx), SCB_OK);
    c->requant = 0;                       /* the method's default: SCBench's KiviCache.update */
    assert_int_equal(scb_kivi_cache_prefill(c, t.k, t.v, N, &ctx), SCB_OK);
    for (int i = 0; i < Tq; i++) {
        int nc = N + i + 1, g_end = nc < N + 3 ? nc : N + 3;
        while (scb_kivi_cache_len(c) < g_end) {
            int u = scb_kivi_cache_len(c);
            assert_int_equal(scb_kivi_cache_append(c, t.k + (size_t)u * Hkv * D, t.v + (size_t)u * Hkv * D, &ctx), SCB_OK);
        }
        assert_int_equal(scb_kivi_cache_attn(c, t.q + (size_t)i * Hq * D, Hq, 0.0f, t.k + (size_t)g_end * Hkv * D,
                                             t.v + (size_t)g_end * Hkv * D, nc - g_end, t.o2 + (size_t)i * Hq * D, NULL, &ctx), SCB_OK);
    }
    assert_memory_equal(t.o, t.o2, sizeof(float) * Tq * Hq * D);
    scb_kivi_cache_destroy(c);
    scb_method_spec_fini(&sp);
    tu_qkv_free(&t);
}

/* ---- Quest ----------------------------------------------------------------------------------- */
static void test_quest(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 6);
    int D = 16;
    /* upper bound: ub[p] >= q.k for every key of the page (single row, fp32 inputs, double math) */
    for (int trial = 0; trial < 30; trial++) {
        int T = 1 + (int)scb_rng_below(&r, 300), np = (T + 15) / 16;
        float *q = tu_randn(&r, (size_t)D, 1.0f), *k = tu_randn(&r, (size_t)T * D, 1.0f), w[16];
        double *ub = scb_malloc(sizeof(double) * np);
        if (trial == 0) q[3] = 0.0f;                         /* q[d] == 0 counts as sign -1 */
        scb_quest_signs(q, D, 1, D, w);
        for (int d = 0; d < D; d++) assert_true(w[d] == (q[d] > 0 ? 1.0f : -1.0f));
        scb_quest_bounds(q, w, k, D, T, D, 16, ub);
        for (int t = 0; t < T; t++) {
            double s = 0; for (int d = 0; d < D; d++) s += (double)q[d] * k[(size_t)t * D + d];
            assert_true(ub[t / 16] >= s - 1e-9);
        }
        scb_free(q); scb_free(k); scb_free(ub);
    }
    assert_int_equal(scb_quest_kpages(1000, 16, 1024), 62);   /* T < B: one page short of ceil */
    assert_int_equal(scb_quest_kpages(5000, 16, 1024), 64);
    assert_int_equal(scb_quest_kpages(20, 16, 1024), 2);
    assert_int_equal(scb_quest_kpages(100, 16, 16), 3);       /* at least 3 */
    /* selection per row with the summed-sign quirk == brute force; output == masked attention */
    int Tq = 3, Tk = 150, Hq = 2, Hkv = 1;
    struct tu_qkv t; tu_qkv_make(&t, &r, Tq, Tk, Hq, Hkv, D);
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_quest_attn(&t.a, 16, 64, &ctx), SCB_OK);     /* 4 pages of 10 */
    uint8_t *m = calloc((size_t)Hq * Tq * Tk, 1);
    int np = (Tk + 15) / 16;
    for (int h = 0; h < Hq; h++) {
        double w[16] = {0};
        for (int i = 0; i < Tq; i++) for (int d = 0; d < D; d++) w[d] += t.q[((size_t)i * Hq + h) * D + d] > 0 ? 1 : -1;
        for (int i = 0; i < Tq; i++) {
            double ub[10]; int used[10] = {0};
            for (int p = 0; p < np; p++) {
                ub[p] = 0;
                for (int d = 0; d < D; d++) {
                    double mx = -INFINITY;
                    for (int u = p * 16; u < p * 16 + 16 && u < Tk; u++) { double x = t.k[(size_t)u * D + d] * w[d]; if (x > mx) mx = x; }
                    ub[p] += t.q[((size_t)i * Hq + h) * D + d] * w[d] * mx;
                }
            }
            for (int s = 0; s < 4; s++) {
                int b = -1;
                for (int p = 0; p < np; p++) if (!used[p] && (b < 0 || ub[p] > ub[b])) b = p;
                used[b] = 1;
                for (int u = b * 16; u < b * 16 + 16 && u < Tk; u++) m[((size_t)h * Tq + i) * Tk + u] = (uint8_t)(u <= i + Tk - Tq);
            }
        }
    }
    tu_naive(&t.a, m, 1, t.o2);
    assert_true(tu_maxdiff(t.o, t.o2, (size_t)Tq * Hq * D) < 2e-5);
    free(m);
    /* budget >= T with T a multiple of 16 -> bitwise dense (q_len 1 and a chunk of 4) */
    for (int tq = 1; tq <= 4; tq += 3) {
        struct tu_qkv d; tu_qkv_make(&d, &r, tq, 160, 4, 2, D);
        assert_int_equal(scb_quest_attn(&d.a, 16, 160, &ctx), SCB_OK);
        struct scb_attn_args b = d.a; b.out = d.o2;
        assert_int_equal(scb_attn_dense_ref(&b, &ctx), SCB_OK);
        assert_memory_equal(d.o, d.o2, sizeof(float) * tq * 4 * D);
        tu_qkv_free(&d);
    }
    tu_qkv_free(&t);
}

/* ---- RetrievalAttention ------------------------------------------------------------------------ */
/* The flat index's score (spec/methods.md §8.2: faiss's flat inner-product search over fp32
 * keys): an fp32 fused multiply-add chain in d order from 0.0f. */
static float retr_score_ref(const float *q, const float *k, int D)
{
    float s = 0.0f;
    for (int d = 0; d < D; d++) s = fmaf(q[d], k[d], s);
    return s;
}

static void test_retr_flat_and_merge(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 7);
    int D = 16, n = 500, k = 37;
    float *q = tu_randn(&r, D, 1.0f), *keys = tu_randn(&r, (size_t)n * D, 1.0f), ip[500];
    int32_t id[500], ids[500];
    for (int t = 0; t < n; t++) ids[t] = 1000 + t;
    assert_int_equal(scb_retr_flat_topk(q, keys, D, ids, n, D, k, id, ip), k);
    float *s = malloc(sizeof(float) * n);
    for (int t = 0; t < n; t++) s[t] = retr_score_ref(q, keys + (size_t)t * D, D);
    for (int a = 0; a < k; a++) {                       /* brute force: a-th largest */
        int b = -1;
        for (int t = 0; t < n; t++) {
            int taken = 0;
            for (int c = 0; c < a; c++) if (id[c] == 1000 + t) taken = 1;
            if (!taken && (b < 0 || s[t] > s[b])) b = t;
        }
        assert_int_equal(id[a], 1000 + b);
        assert_memory_equal(&ip[a], &s[b], sizeof(float));   /* its score, bit for bit */
    }
    assert_int_equal(scb_retr_flat_topk(q, keys, D, NULL, 5, D, 50, id, NULL), 5);   /* k clamped */
    assert_true(scb_retr_recall(id, 5, id, 5) == 1.0);
    int32_t half[2] = {id[0], 99999};
    assert_true(scb_retr_recall(half, 2, id, 4) == 0.25);
    free(s); scb_free(q); scb_free(keys);
    int32_t st_[700];
    assert_int_equal(scb_retr_static_keys(1000, 128, 512, st_), 640);
    for (int t = 0; t < 640; t++) assert_int_equal(st_[t], t < 128 ? t : 1000 - 512 + (t - 128));
    /* merged two partials == one softmax over the union */
    struct tu_qkv t; tu_qkv_make(&t, &r, 2, 300, 4, 2, D);
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_retr_attn(&t.a, 4, 16, 40, &ctx), SCB_OK);
    assert_true(t.a.density < 0.3);
    for (int i = 0; i < 2; i++)
        for (int h = 0; h < 4; h++) {
            float o[16], l;
            assert_int_equal(scb_retr_attn_row_merged(&t.a, i, h, 4, 16, 40, o, &l, &ctx), SCB_OK);
            assert_true(tu_maxdiff(o, t.o + ((size_t)i * 4 + h) * D, D) < 1e-6);
        }
    tu_qkv_free(&t);
}

/* The flat search's selection (quickselect + sort of the k best) and its two-step form
 * (scb_retr_flat_scores + scb_retr_topk_scores) and the id-ordered set the CUDA binding takes
 * (scb_retr_topk_set) against a brute-force full sort written here, on keys with many exact ties
 * (integer values): same ids, same order (score descending, ties to the smaller id; the set: the
 * same ids ascending), the same fp32 scores bit for bit. */
struct bf_cand { float s; int32_t id; };
static int bf_cmp(const void *x, const void *y)
{
    const struct bf_cand *a = x, *b = y;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int i32_asc(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static void test_retr_select_vs_sort(void **st)
{
    (void)st;
    struct scb_rng rng;
    scb_rng_seed(&rng, seed + 7);
    for (int it = 0; it < 300; it++) {
        const int n = 1 + (int)(scb_rng_next(&rng) % 400), D = 1 + (int)(scb_rng_next(&rng) % 9);
        const int k = 1 + (int)(scb_rng_next(&rng) % 450), nq = 1 + (int)(scb_rng_next(&rng) % 9);
        const int span = it % 2 ? 3 : 1000;                /* span 3: ties everywhere */
        float *q = malloc(sizeof(float) * (size_t)nq * D), *keys = malloc(sizeof(float) * (size_t)n * D);
        float *sc = malloc(sizeof(float) * (size_t)nq * n);
        struct bf_cand *c = malloc(sizeof *c * (size_t)n);
        int32_t *got = malloc(sizeof(int32_t) * (size_t)(k + 1)), *got2 = malloc(sizeof(int32_t) * (size_t)(k + 1));
        int32_t *got3 = malloc(sizeof(int32_t) * (size_t)(k + 1)), *want3 = malloc(sizeof(int32_t) * (size_t)(k + 1));
        void *work = malloc(scb_retr_topk_set_work_bytes(n));
        assert_non_null(q); assert_non_null(keys); assert_non_null(sc); assert_non_null(c);
        assert_non_null(got); assert_non_null(got2); assert_non_null(got3); assert_non_null(want3);
        assert_non_null(work);
        for (int i = 0; i < nq * D; i++) q[i] = (float)((int)(scb_rng_next(&rng) % 5) - 2);
        for (int i = 0; i < n * D; i++) keys[i] = (float)((int)(scb_rng_next(&rng) % span) - span / 2);
        scb_retr_flat_scores(q, (size_t)D, nq, keys, (size_t)D, n, D, sc, (size_t)n);
        for (int r = 0; r < nq; r++) {
            for (int t = 0; t < n; t++) {
                const float s = retr_score_ref(q + r * D, keys + t * D, D);
                c[t].s = s;
                c[t].id = 100 + t;
                assert_memory_equal(&s, &sc[(size_t)r * n + t], sizeof s);
            }
            qsort(c, (size_t)n, sizeof *c, bf_cmp);
            const int kk = k < n ? k : n;
            assert_int_equal(scb_retr_flat_topk(q + r * D, keys, (size_t)D, NULL, n, D, k, got, NULL), kk);
            assert_int_equal(scb_retr_topk_scores(sc + (size_t)r * n, n, 100, k, got2), kk);
            for (int t = 0; t < kk; t++) {
                assert_int_equal(got[t] + 100, c[t].id);
                assert_int_equal(got2[t], c[t].id);
            }
            assert_int_equal(scb_retr_topk_set(sc + (size_t)r * n, n, 100, k, got3, work), kk);
            for (int t = 0; t < kk; t++) want3[t] = c[t].id;
            qsort(want3, (size_t)kk, sizeof *want3, i32_asc);
            for (int t = 0; t < kk; t++) assert_int_equal(got3[t], want3[t]);
        }
        free(q); free(keys); free(sc); free(c); free(got); free(got2); free(got3); free(want3); free(work);
    }
}

/* spec/methods.md §8.5 "flat top-k equals brute-force sort (ties excluded)": the fp32 flat search
 * against a brute force computed in DOUBLE on random data (D 128, normal keys and queries, as the
 * model's), skipping the (query, k) cases whose k-th and (k+1)-th double scores are within a
 * relative 1e-5 of each other (a near-tie fp32 rounding may order either way): the id sets
 * must be equal. */
static int dbl_desc(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

static void test_retr_flat_vs_double(void **st)
{
    (void)st;
    struct scb_rng r;
    scb_rng_seed(&r, seed + 21);
    const int D = 128, n = 3000, nq = 24, ks[] = {1, 7, 64, 500, 2999};
    float *keys = tu_randn(&r, (size_t)n * D, 1.0f), *q = tu_randn(&r, (size_t)nq * D, 1.0f);
    double *s = malloc(sizeof(double) * n), *sorted = malloc(sizeof(double) * n);
    int32_t *got = malloc(sizeof(int32_t) * n);
    unsigned char *in = malloc((size_t)n);
    assert_non_null(s); assert_non_null(sorted); assert_non_null(got); assert_non_null(in);
    int checked = 0, skipped = 0;
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * D;
        for (int t = 0; t < n; t++) {
            double a = 0.0;
            for (int d = 0; d < D; d++) a += (double)qi[d] * (double)keys[(size_t)t * D + d];
            s[t] = a;
        }
        memcpy(sorted, s, sizeof(double) * n);
        qsort(sorted, (size_t)n, sizeof *sorted, dbl_desc);
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            const int k = ks[ki];
            const double sk = sorted[k - 1], sk1 = sorted[k];
            if (fabs(sk - sk1) <= 1e-5 * fmax(fabs(sk), fabs(sk1))) { skipped++; continue; }
            assert_int_equal(scb_retr_flat_topk(qi, keys, (size_t)D, NULL, n, D, k, got, NULL), k);
            memset(in, 0, (size_t)n);
            for (int t = 0; t < k; t++) in[got[t]] = 1;
            for (int t = 0; t < n; t++)   /* in the fp32 set iff in the double top k (scores > the (k+1)-th) */
                if (in[t] != (s[t] >= sk))
                    fail_msg("query %d k=%d: key %d (double score %.17g, k-th %.17g) %s the fp32 top-k (seed %llu)", i,
                             k, t, s[t], sk, in[t] ? "in" : "not in", (unsigned long long)seed);
            checked++;
        }
    }
    printf("# flat top-k vs double brute force: %d cases equal, %d near-ties skipped\n", checked, skipped);
    assert_true(checked >= 100);
    free(s); free(sorted); free(got); free(in); scb_free(keys); scb_free(q);
}

static void test_retr_graph(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 8);
    /* queries and keys from different distributions (shifted means), as in the paper */
    int D = 32, n = 3000, nq = 400, ntest = 40, k = 10;
    float mu_k[32], mu_q[32];
    for (int d = 0; d < D; d++) { mu_k[d] = 1.5f * scb_rng_normal(&r) / sqrtf(D) * 4; mu_q[d] = 1.5f * scb_rng_normal(&r) / sqrtf(D) * 4; }
    float *keys = tu_randn(&r, (size_t)n * D, 1.0f), *qs = tu_randn(&r, (size_t)(nq + ntest) * D, 0.7f);
    for (int t = 0; t < n; t++) for (int d = 0; d < D; d++) keys[(size_t)t * D + d] += mu_k[d];
    for (int t = 0; t < nq + ntest; t++) for (int d = 0; d < D; d++) qs[(size_t)t * D + d] += mu_q[d];
    struct scb_retr_graph *g;
    struct scb_ctx ctx = {0};
    struct scb_retr_graph_params p = {16, 32, 96, 4};
    assert_int_equal(scb_retr_graph_build(&g, keys, D, NULL, n - 200, D, qs, D, nq, &p, &ctx), SCB_OK);
    for (int t = n - 200; t < n; t++) assert_int_equal(scb_retr_graph_add(g, keys + (size_t)t * D, t, &ctx), SCB_OK);
    assert_int_equal(scb_retr_graph_size(g), n);
    double rec = 0, vis = 0;
    int32_t a[10], b[10];
    for (int i = 0; i < ntest; i++) {
        const float *q = qs + (size_t)(nq + i) * D;
        int v = 0;
        assert_int_equal(scb_retr_graph_search(g, q, k, INT32_MAX, a, NULL, &v, &ctx), k);
        assert_int_equal(scb_retr_flat_topk(q, keys, D, NULL, n, D, k, b, NULL), k);
        rec += scb_retr_recall(a, k, b, k);
        vis += v;
    }
    rec /= ntest; vis /= ntest * (double)n;
    printf("# graph index: recall@%d %.3f, keys scored %.1f%% (seeded synthetic OOD case)\n", k, rec, 100 * vis);
    assert_true(rec >= 0.85);
    assert_true(vis < 0.35);
    /* id_limit excludes tokens */
    int v;
    int m = scb_retr_graph_search(g, qs, k, 100, a, NULL, &v, &ctx);
    for (int t = 0; t < m; t++) assert_true(a[t] < 100);
    scb_retr_graph_destroy(g);
    scb_free(keys); scb_free(qs);
}

/* ---- CacheBlend -------------------------------------------------------------------------------- */
static void test_cacheblend(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 9);
    int n = 300, H = 2, D = 8;
    float *vf = tu_randn(&r, (size_t)n * H * D, 1.0f), *vr = scb_malloc(sizeof(float) * n * H * D);
    for (int e = 0; e < n * H * D; e++) vr[e] = vf[e] + 1e-4f * scb_rng_normal(&r);
    int planted[20];
    for (int i = 0; i < 20; i++) {
        planted[i] = 7 + 13 * i;
        for (int e = 0; e < H * D; e++) vr[planted[i] * H * D + e] += scb_rng_normal(&r);
    }
    uint8_t valid[300];
    for (int t = 0; t < n; t++) valid[t] = t < n - 10;
    int32_t sel[300]; int ns; double dev[300];
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_cacheblend_select(vf, vr, valid, n, H, D, 0.15, sel, &ns, dev, &ctx), SCB_OK);
    assert_int_equal(ns, (int)(0.15 * 290) + 10);
    uint8_t in[300] = {0};
    for (int t = 0; t < ns; t++) { in[sel[t]] = 1; if (t) assert_true(sel[t] > sel[t - 1]); }
    for (int i = 0; i < 20; i++) assert_true(in[planted[i]]);          /* perturbed tokens recomputed */
    for (int t = n - 10; t < n; t++) assert_true(in[t]);               /* not retrieved -> computed */
    assert_true(in[n - 1]);
    for (int t = 0; t < n; t++) {                                      /* deviation definition */
        double s = 0; for (int e = 0; e < H * D; e++) { double d = (double)vf[t * H * D + e] - (double)vr[t * H * D + e]; s += d * d; }
        assert_true(fabs(dev[t] - (valid[t] ? s / (H * D) : 0)) < 1e-12);
    }
    assert_int_equal(scb_cacheblend_select(vf, vr, valid, n, H, D, 1.0, sel, &ns, NULL, &ctx), SCB_OK);
    assert_int_equal(ns, n);                                           /* r = 1: full prefill */
    assert_int_equal(scb_cacheblend_select(vf, vr, valid, n, H, D, 0.0, sel, &ns, NULL, &ctx), SCB_OK);
    assert_int_equal(ns, 10);
    memset(valid, 0, sizeof valid);
    assert_int_equal(scb_cacheblend_select(vf, vr, valid, n, H, D, 0.15, sel, &ns, NULL, &ctx), SCB_OK);
    assert_int_equal(ns, n);                                           /* nothing retrieved */
    assert_int_equal(scb_cacheblend_select(vf, vr, valid, n, H, D, 1.5, sel, &ns, NULL, &ctx), SCB_E_INVAL);
    scb_free(vf); scb_free(vr);
}

/* ---- the unlimited-budget invariant ------------------------------------------------------------- */
static void test_unlimited_budget_bitwise(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 10);
    int N = 93, Tq = 3, Tk = N + Tq, Hq = 4, Hkv = 2, D = 32;   /* Tk = 96: a multiple of Quest's page */
    const char *specs[] = {"dense", "streamingllm:n_init=4,n_local=92", "streamingllm:n_init=0,n_local=200",
                           "snapkv:budget=97", "snapkv:budget=96,window=8", "snapkv:budget=96,window=8,gqa=true",
                           "pyramidkv:budget=97", "kivi:residual=128,group=32", "quest:budget=112",
                           "quest:budget=4096,page=16", "retr_attn:n_sink=4,n_recent=8,top_k=200",
                           "retr_attn:n_sink=4,n_recent=8,top_k=200,index=graph"};
    for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++) {
        struct tu_qkv t; tu_qkv_make(&t, &r, Tq, Tk, Hq, Hkv, D);
        struct scb_ctx ctx = {0};
        t.a.layer = 1;
        struct scb_attn_args dn = t.a; dn.out = t.o2;
        assert_int_equal(scb_attn_dense_ref(&dn, &ctx), SCB_OK);
        struct scb_method_spec sp;
        struct scb_model_info mi = {2, Hq, Hkv, D, "tiny"};
        assert_int_equal(scb_method_spec_parse(specs[s], &sp, &ctx), SCB_OK);
        if (scb_method_init(&sp.kv, &mi, &ctx)) fail_msg("%s: %s", specs[s], scb_errmsg(&ctx));
        float *qp = tu_randn(&r, (size_t)N * Hq * D, 1.0f);   /* the prefill's queries */
        struct scb_kv_compress_args ca = {t.k, t.v, qp, N, N, Hq, Hkv, D, 0, 1, 2};
        struct scb_kv_keep kp;
        if (scb_method_kv_after_prefill(&sp.kv, &ca, &kp, &ctx)) fail_msg("%s: %s", specs[s], scb_errmsg(&ctx));
        for (int h = 0; h < kp.H; h++) assert_int_equal(kp.n[h], N);    /* identity */
        assert_int_equal(scb_attn_keep_ref(&t.a, &kp, &ctx), SCB_OK);
        assert_memory_equal(t.o, t.o2, sizeof(float) * Tq * Hq * D);
        for (size_t e = 0; e < (size_t)Tq * Hq * D; e++) t.o[e] = NAN;
        if (scb_method_decode_attn(&sp.kv, &t.a, &ctx)) fail_msg("%s: %s", specs[s], scb_errmsg(&ctx));
        if (memcmp(t.o, t.o2, sizeof(float) * Tq * Hq * D)) fail_msg("%s: decode output differs from dense", specs[s]);
        scb_kv_keep_fini(&kp);
        scb_method_spec_fini(&sp);
        scb_free(qp);
        tu_qkv_free(&t);
    }
}

int main(void)
{
    seed = tu_seed("test_methods_kv");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_streamingllm),
        cmocka_unit_test(test_snapkv_pool),
        cmocka_unit_test(test_snapkv_select),
        cmocka_unit_test(test_pyramidkv_schedule),
        cmocka_unit_test(test_kivi_pack_quant),
        cmocka_unit_test(test_kivi_cuda_code_layout),
        cmocka_unit_test(test_kivi_cache),
        cmocka_unit_test(test_kivi_method),
        cmocka_unit_test(test_quest),
        cmocka_unit_test(test_retr_flat_and_merge),
        cmocka_unit_test(test_retr_select_vs_sort),
        cmocka_unit_test(test_retr_flat_vs_double),
        cmocka_unit_test(test_retr_graph),
        cmocka_unit_test(test_cacheblend),
        cmocka_unit_test(test_unlimited_budget_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
