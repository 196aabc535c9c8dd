/* retr_scan.c — RetrievalAttention's exact flat scan over a key-blocked bf16 store, scalar /
 * AVX2 + FMA / AVX-512F with run-time dispatch, and the pooled score + select step (retr_scan.h).
 * Bit identity with scb_retr_score (methods/retr_attn.c): every lane holds one key's fp32 sum,
 * started at +0.0f and updated with one fused multiply-add per channel in d order (vfmadd*ps
 * lane-wise; the scalar path calls fmaf), so every path rounds exactly as the fmaf chain. The
 * unit test tests/test_retr_scan.c compares every path's bits with an fmaf chain written in the
 * test. The fused step (one dispatch: scan + digits + per-thread histograms, a barrier, the digit
 * selection of retr_attn.c) gives the two-phase step's scores and id sets; the test checks that
 * too. */
#include "methods/retr_scan.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/util.h"
#include "methods/retr_attn.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define SCB_RETR_X86 1
#include <immintrin.h>
#else
#define SCB_RETR_X86 0
#endif

enum { KB = SCB_RETR_KB, QR = 4 /* query heads per pass */ };

static float bf16f(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

size_t scb_retr_kb_elems(size_t n, int D)
{
    return (n + KB - 1) / KB * KB * (size_t)D;
}

void scb_retr_kb_put(uint16_t *kb, int D, size_t t, const uint16_t *key)
{
    uint16_t *blk = kb + t / KB * KB * (size_t)D + t % KB;   /* (D, KB) */
    for (int d = 0; d < D; d++) blk[(size_t)d * KB] = key[d];
}

void scb_retr_kb_get(const uint16_t *kb, int D, size_t t, float *out)
{
    const uint16_t *blk = kb + t / KB * KB * (size_t)D + t % KB;   /* (D, KB) */
    for (int d = 0; d < D; d++) out[d] = bf16f(blk[(size_t)d * KB]);
}

void scb_retr_kb_put_rows(uint16_t *kb, int D, size_t t0, const uint16_t *keys, size_t ks, size_t n)
{
    size_t r = 0;
    for (; r < n && (t0 + r) % KB; r++) scb_retr_kb_put(kb, D, t0 + r, keys + r * ks);   /* up to a block edge */
    for (; r + KB <= n; r += KB) {              /* whole blocks: written in order, 16 rows read */
        uint16_t *blk = kb + (t0 + r) / KB * KB * (size_t)D;   /* (D, KB) */
        const uint16_t *src = keys + r * ks;
        for (int d = 0; d < D; d++)
            for (int j = 0; j < KB; j++) blk[(size_t)d * KB + j] = src[(size_t)j * ks + d];
    }
    for (; r < n; r++) scb_retr_kb_put(kb, D, t0 + r, keys + r * ks);
}

/* ---- one block: out[r*os + j] = scb_retr_score(q_r, key j of the block), r < nr <= QR ------ */
typedef void (*blk_fn)(const float *q, size_t qs, int nr, const uint16_t *blk, int D, float *out, size_t os);

/* The scalar kernel, one lane at a time; written once (always inline) and instantiated plainly
 * (fmaf: the C library's, exact on any CPU) and, on x86, for CPUs with FMA (an inline vfmadd,
 * the same single rounding): the path named scalar takes the second where the CPU has it. */
static inline __attribute__((always_inline)) void blk_scalar_body(const float *q, size_t qs, int nr,
                                                                  const uint16_t *blk, int D, float *out, size_t os)
{
    float acc[QR][KB];   /* (nr, KB) */
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < KB; j++) acc[r][j] = 0.0f;
    for (int d = 0; d < D; d++) {
        float k[KB];
        for (int j = 0; j < KB; j++) k[j] = bf16f(blk[(size_t)d * KB + j]);
        for (int r = 0; r < nr; r++) {
            const float p = q[(size_t)r * qs + d];
            for (int j = 0; j < KB; j++) acc[r][j] = __builtin_fmaf(p, k[j], acc[r][j]);
        }
    }
    for (int r = 0; r < nr; r++) memcpy(out + (size_t)r * os, acc[r], sizeof acc[r]);
}

static void blk_scalar(const float *q, size_t qs, int nr, const uint16_t *blk, int D, float *out, size_t os)
{
    blk_scalar_body(q, qs, nr, blk, D, out, os);
}

#if SCB_RETR_X86
/* The kernel NAME for nr query heads: NAME##_n instantiated with nr a constant (1..4). */
#define DEF_NR_DISPATCH(NAME, TARGET)                                                                \
__attribute__((target(TARGET))) static void NAME(const float *q, size_t qs, int nr, const uint16_t *blk, int D, \
                                                 float *out, size_t os)                              \
{                                                                                                    \
    switch (nr) {                                                                                    \
    case 4: NAME##_n(q, qs, 4, blk, D, out, os); break;                                              \
    case 3: NAME##_n(q, qs, 3, blk, D, out, os); break;                                              \
    case 2: NAME##_n(q, qs, 2, blk, D, out, os); break;                                              \
    default: NAME##_n(q, qs, 1, blk, D, out, os); break;                                             \
    }                                                                                                \
}

/* AVX2 + FMA: a block in two ymm of 8 fp32 lanes, nr query heads (<= 4: 8 chains). A channel's
 * 16 bf16 keys (32 bytes) widen by interleaving with zeros: unpacklo gives keys 0-3 and 8-11,
 * unpackhi keys 4-7 and 12-15 (one shuffle each, no shift); the stores put the halves back in
 * key order. */
static inline __attribute__((always_inline, target("avx2,fma"))) void blk_avx2fma_n(
    const float *q, size_t qs, const int nr, const uint16_t *blk, int D, float *out, size_t os)
{
    const __m256i z = _mm256_setzero_si256();
    __m256 a0[QR], a1[QR];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }
    for (int d = 0; d < D; d++) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + (size_t)d * KB));
        const __m256 k0 = _mm256_castsi256_ps(_mm256_unpacklo_epi16(z, h));
        const __m256 k1 = _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, h));
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) {
            const __m256 p = _mm256_set1_ps(q[(size_t)r * qs + d]);
            a0[r] = _mm256_fmadd_ps(p, k0, a0[r]);
            a1[r] = _mm256_fmadd_ps(p, k1, a1[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) {
        float *o = out + (size_t)r * os;
        _mm256_storeu_ps(o, _mm256_permute2f128_ps(a0[r], a1[r], 0x20));
        _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(a0[r], a1[r], 0x31));
    }
}
DEF_NR_DISPATCH(blk_avx2fma, "avx2,fma")

/* AVX-512F: a block in one zmm of 16 fp32 lanes (the channel's 16 bf16 keys zero-extended and
 * shifted), nr query heads (<= 4 chains). Two blocks interleaved (8 chains) measured 1.75x
 * slower on an AMD EPYC (Zen 4), so one block per pass. */
static inline __attribute__((always_inline, target("avx512f"))) void blk_avx512fma_n(
    const float *q, size_t qs, const int nr, const uint16_t *blk, int D, float *out, size_t os)
{
    __m512 acc[QR];
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) acc[r] = _mm512_setzero_ps();
    for (int d = 0; d < D; d++) {
        const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + (size_t)d * KB));
        const __m512 k = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
#pragma GCC unroll 4
        for (int r = 0; r < nr; r++) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[(size_t)r * qs + d]), k, acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < nr; r++) _mm512_storeu_ps(out + (size_t)r * os, acc[r]);
}
DEF_NR_DISPATCH(blk_avx512fma, "avx512f")

__attribute__((target("fma"))) static void blk_scalar_fma(const float *q, size_t qs, int nr, const uint16_t *blk,
                                                          int D, float *out, size_t os)
{
    blk_scalar_body(q, qs, nr, blk, D, out, os);
}
#endif

/* ---- dispatch ------------------------------------------------------------------------------- */
static int g_isa = -1;   /* resolved path, -1 before the first call */

int scb_retr_scan_supported(enum scb_retr_isa isa)
{
    switch (isa) {
    case SCB_RETR_ISA_SCALAR: return 1;
#if SCB_RETR_X86
    case SCB_RETR_ISA_AVX512_FMA: __builtin_cpu_init(); return __builtin_cpu_supports("avx512f") != 0;
    case SCB_RETR_ISA_AVX2_FMA:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0 && __builtin_cpu_supports("fma") != 0;
#endif
    default: return 0;
    }
}

const char *scb_retr_scan_isa_name(enum scb_retr_isa isa)
{
    switch (isa) {
    case SCB_RETR_ISA_AVX2_FMA: return "avx2fma";
    case SCB_RETR_ISA_AVX512_FMA: return "avx512fma";
    default: return "scalar";
    }
}

enum scb_retr_isa scb_retr_scan_isa(void)
{
    int isa = __atomic_load_n(&g_isa, __ATOMIC_ACQUIRE);
    if (isa >= 0) return (enum scb_retr_isa)isa;
    const char *env = getenv("SCB_RETR_SCAN");
    isa = -1;
    if (env && *env) {
        for (int i = SCB_RETR_ISA_SCALAR; i < SCB_RETR_ISA_COUNT; i++)
            if (!strcmp(env, scb_retr_scan_isa_name((enum scb_retr_isa)i)) && scb_retr_scan_supported((enum scb_retr_isa)i))
                isa = i;
    }
    if (isa < 0)   /* the widest this CPU has; all paths give the same bits */
        isa = scb_retr_scan_supported(SCB_RETR_ISA_AVX512_FMA) ? SCB_RETR_ISA_AVX512_FMA
            : scb_retr_scan_supported(SCB_RETR_ISA_AVX2_FMA)   ? SCB_RETR_ISA_AVX2_FMA : SCB_RETR_ISA_SCALAR;
    __atomic_store_n(&g_isa, isa, __ATOMIC_RELEASE);
    return (enum scb_retr_isa)isa;
}

int scb_retr_scan_force(enum scb_retr_isa isa)
{
    if (!scb_retr_scan_supported(isa)) return SCB_E_UNSUPPORTED;
    __atomic_store_n(&g_isa, (int)isa, __ATOMIC_RELEASE);
    return SCB_OK;
}

static blk_fn pick(void)
{
    switch (scb_retr_scan_isa()) {
#if SCB_RETR_X86
    case SCB_RETR_ISA_AVX512_FMA: return blk_avx512fma;
    case SCB_RETR_ISA_AVX2_FMA: return blk_avx2fma;
    default: __builtin_cpu_init(); return __builtin_cpu_supports("fma") ? blk_scalar_fma : blk_scalar;
#else
    default: return blk_scalar;
#endif
    }
}

/* ---- the scan ----------------------------------------------------------------------------- */
void scb_retr_kb_scores(const float *q, size_t qs, int nq, const uint16_t *kb, int D, size_t t0, int n,
                        float *scores, size_t ss)
{
    if (n <= 0 || nq <= 0 || D <= 0 || D > SCB_RETR_SCAN_DMAX) return;
    const blk_fn fn = pick();
    float edge[QR * KB];                      /* (QR, KB) an edge block's scores */
    const size_t t1 = t0 + (size_t)n, bend = (t1 + KB - 1) / KB;
    for (size_t b = t0 / KB; b < bend; b++) {
        const uint16_t *blk = kb + b * KB * (size_t)D;
        const size_t j0 = b * KB < t0 ? t0 - b * KB : 0, j1 = b * KB + KB > t1 ? t1 - b * KB : KB;
        for (int r0 = 0; r0 < nq; r0 += QR) {
            const int nr = nq - r0 < QR ? nq - r0 : QR;
            if (j0 == 0 && j1 == KB) {       /* a whole block: its scores in place */
                fn(q + (size_t)r0 * qs, qs, nr, blk, D, scores + (size_t)r0 * ss + (b * KB - t0), ss);
                continue;
            }
            fn(q + (size_t)r0 * qs, qs, nr, blk, D, edge, KB);
            for (int r = 0; r < nr; r++) {
                float *srow = scores + (size_t)(r0 + r) * ss;   /* score of key t at t - t0 */
                for (size_t j = j0; j < j1; j++) srow[b * KB + j - t0] = edge[(size_t)r * KB + j];
            }
        }
    }
}

/* ---- pooled step ---------------------------------------------------------------------------- */
enum { SLICE = 1024 };   /* keys per score job item (a multiple of KB) */

static int slices(const struct scb_retr_step *s)
{
    const int a0 = s->lo / KB * KB;
    return (s->hi - a0 + SLICE - 1) / SLICE;
}

/* Item `it` of a step's (KV head, slice) items: its KV head *g and keys [*t0, *t1) within
 * [lo, hi); 0 when the slice holds none of them. ns = slices(s). */
static int slice_keys(const struct scb_retr_step *s, size_t it, int ns, int *g, int *t0, int *t1)
{
    const int a0 = s->lo / KB * KB, sl = (int)(it % (size_t)ns);
    *g = (int)(it / (size_t)ns);
    *t0 = a0 + sl * SLICE;
    *t1 = *t0 + SLICE;
    if (*t0 < s->lo) *t0 = s->lo;
    if (*t1 > s->hi) *t1 = s->hi;
    return *t1 > *t0;
}

static void score_job(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    struct scb_retr_step *s = arg;
    const int G = s->Hq / s->Hkv, ns = slices(s);
    for (size_t it = b; it < e; it++) {
        int g, t0, t1;
        if (!slice_keys(s, it, ns, &g, &t0, &t1)) continue;
        scb_retr_kb_scores(s->q + (size_t)g * G * s->D, (size_t)s->D, G, s->kb + (size_t)g * s->kb_head, s->D,
                           (size_t)t0, t1 - t0, s->scores + (size_t)g * G * s->ss + (t0 - s->lo), s->ss);
    }
}

static void select_job(void *arg, size_t b, size_t e, int tid)
{
    struct scb_retr_step *s = arg;
    for (size_t h = b; h < e; h++) {
        int got = scb_retr_topk_set(s->scores + h * s->ss, s->hi - s->lo, s->lo, s->top_k,
                                    s->idx + h * (size_t)s->idx_stride, s->sel_work + (size_t)tid * s->sel_bytes);
        if (got < 0) { __atomic_store_n(&s->fail, got, __ATOMIC_RELAXED); got = 0; }
        s->n_idx[h] = got;
    }
}

/* ---- score digits: out[j] = scb_retr_score_key(s[j]) >> 16 ----------------------------------
 * key = bits(s + 0.0f) ^ (sign ? ~0 : 1 << 31): the branch-free form of scb_retr_score_key. */
typedef void (*dig_fn)(const float *s, int n, uint16_t *out);

static void dig_scalar(const float *s, int n, uint16_t *out)
{
    for (int j = 0; j < n; j++) out[j] = (uint16_t)(scb_retr_score_key(s[j]) >> 16);
}

#if SCB_RETR_X86
__attribute__((target("avx512f"))) static void dig_avx512(const float *s, int n, uint16_t *out)
{
    const __m512i top = _mm512_set1_epi32((int)(UINT32_C(1) << 31));
    const __m512 zero = _mm512_setzero_ps();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m512i u = _mm512_castps_si512(_mm512_add_ps(_mm512_loadu_ps(s + j), zero));
        const __m512i key = _mm512_xor_si512(u, _mm512_or_si512(_mm512_srai_epi32(u, 31), top));
        _mm256_storeu_si256((__m256i *)(out + j), _mm512_cvtepi32_epi16(_mm512_srli_epi32(key, 16)));
    }
    for (; j < n; j++) out[j] = (uint16_t)(scb_retr_score_key(s[j]) >> 16);
}

__attribute__((target("avx2"))) static void dig_avx2(const float *s, int n, uint16_t *out)
{
    const __m256i top = _mm256_set1_epi32((int)(UINT32_C(1) << 31));
    const __m256 zero = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256i u = _mm256_castps_si256(_mm256_add_ps(_mm256_loadu_ps(s + j), zero));
        const __m256i key = _mm256_srli_epi32(_mm256_xor_si256(u, _mm256_or_si256(_mm256_srai_epi32(u, 31), top)), 16);
        _mm_storeu_si128((__m128i *)(out + j),   /* the 16-bit halves (< 65536: no saturation) */
                         _mm_packus_epi32(_mm256_castsi256_si128(key), _mm256_extracti128_si256(key, 1)));
    }
    for (; j < n; j++) out[j] = (uint16_t)(scb_retr_score_key(s[j]) >> 16);
}
#endif

static dig_fn pick_dig(void)
{
    switch (scb_retr_scan_isa()) {
#if SCB_RETR_X86
    case SCB_RETR_ISA_AVX512_FMA: return dig_avx512;
    case SCB_RETR_ISA_AVX2_FMA: return dig_avx2;
#endif
    default: return dig_scalar;
    }
}

/* ---- the fused step ----------------------------------------------------------------------- */
enum { HB = SCB_RETR_HIST_BITS, NBIN = 1 << SCB_RETR_HIST_BITS, HSTR = NBIN + 16 /* a head's histogram, padded: no two at one cache set */ };

/* hist_work: per thread (stride hw_stride bytes): 2 doubles (profile: scan end, selection end),
 * Hq "used" flags, padding to 64, Hq histograms of NBIN counts, one merged histogram. */
static size_t hw_head(int Hq) { return ((2 * sizeof(double) + (size_t)Hq) + 63) / 64 * 64; }
static size_t hw_stride(int Hq) { return hw_head(Hq) + sizeof(uint32_t) * HSTR * ((size_t)Hq + 1); }

size_t scb_retr_step_hist_bytes(int threads, int Hq)
{
    return (size_t)(threads < 1 ? 1 : threads) * hw_stride(Hq < 1 ? 1 : Hq);
}

/* Wait until all nt threads arrived: spin (the others finish within microseconds when the work
 * is balanced), then yield (more threads than free CPUs). */
static void barrier(int *arrived, int nt)
{
    __atomic_add_fetch(arrived, 1, __ATOMIC_ACQ_REL);
    for (long spin = 0; __atomic_load_n(arrived, __ATOMIC_ACQUIRE) < nt; spin++) {
        if (spin < 4000) {
#if SCB_RETR_X86
            _mm_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

static void fused_job(void *arg, size_t pb, size_t pe, int tid)
{
    (void)tid;
    struct scb_retr_step *s = arg;
    const int G = s->Hq / s->Hkv, ns = slices(s), n = s->hi - s->lo, nt = s->nt;
    const size_t stride = hw_stride(s->Hq);
    const dig_fn digits = pick_dig();
    for (size_t p = pb; p < pe; p++) {            /* one participant per thread (pe = pb + 1) */
        unsigned char *mine = s->hist_work + p * stride;
        double *times = (double *)mine;           /* (2) */
        unsigned char *used = mine + 2 * sizeof(double);   /* (Hq) */
        uint32_t *hists = (uint32_t *)(mine + hw_head(s->Hq));   /* (Hq, HSTR) */
        uint32_t *merged = hists + (size_t)s->Hq * HSTR;        /* (NBIN) */
        memset(used, 0, (size_t)s->Hq);
        /* 1. my contiguous share of the (KV head, slice) items: scores, digits, histograms */
        const size_t items = (size_t)s->Hkv * ns, i0 = items * p / (size_t)nt, i1 = items * (p + 1) / (size_t)nt;
        for (size_t it = i0; it < i1; it++) {
            int g, t0, t1;
            if (!slice_keys(s, it, ns, &g, &t0, &t1)) continue;
            const size_t off = (size_t)(t0 - s->lo);
            scb_retr_kb_scores(s->q + (size_t)g * G * s->D, (size_t)s->D, G, s->kb + (size_t)g * s->kb_head, s->D,
                               (size_t)t0, t1 - t0, s->scores + (size_t)g * G * s->ss + off, s->ss);
            for (int r = 0; r < G; r++) {
                const int h = g * G + r;
                const float *sr = s->scores + (size_t)h * s->ss + off;
                uint16_t *dr = s->dig + (size_t)h * s->ss + off;
                if (!used[h]) { memset(hists + (size_t)h * HSTR, 0, sizeof(uint32_t) * NBIN); used[h] = 1; }
                digits(sr, t1 - t0, dr);
            }
            if (s->hist_in_select) continue;
            for (int r = 0; r < G; r++) {   /* the slice's digits are in L1 now */
                uint32_t *hist = hists + (size_t)(g * G + r) * HSTR;
                const uint16_t *dr = s->dig + (size_t)(g * G + r) * s->ss + off;
                for (int j = 0; j < t1 - t0; j++) hist[dr[j] >> (16 - HB)]++;
            }
        }
        if (s->profile) times[0] = scb_now_ms();
        barrier(&s->arrived, nt);
        /* 2. my share of the query heads: sum their histograms, select */
        const int h0 = (int)((size_t)s->Hq * p / (size_t)nt), h1 = (int)((size_t)s->Hq * (p + 1) / (size_t)nt);
        for (int h = h0; h < h1; h++) {
            memset(merged, 0, sizeof(uint32_t) * NBIN);
            if (s->hist_in_select) {
                const uint16_t *dr = s->dig + (size_t)h * s->ss;
                for (int t = 0; t < n; t++) merged[dr[t] >> (16 - HB)]++;
            }
            for (int u = 0; u < nt && !s->hist_in_select; u++) {
                const unsigned char *other = s->hist_work + (size_t)u * stride;
                if (!other[2 * sizeof(double) + h]) continue;
                const uint32_t *oh = (const uint32_t *)(other + hw_head(s->Hq)) + (size_t)h * HSTR;
                for (int b = 0; b < NBIN; b++) merged[b] += oh[b];
            }
            int got = scb_retr_topk_set_dig(s->scores + (size_t)h * s->ss, s->dig + (size_t)h * s->ss, merged, HB, n,
                                            s->lo, s->top_k, s->idx + (size_t)h * s->idx_stride,
                                            s->sel_work + p * s->sel_bytes);
            if (got < 0) { __atomic_store_n(&s->fail, got, __ATOMIC_RELAXED); got = 0; }
            s->n_idx[h] = got;
        }
        if (s->profile) times[1] = scb_now_ms();
    }
}

/* Threads of a fused dispatch: 1 (inline) for a small step, as scb_pool_run_sized decides. */
static int fused_threads(struct scb_pool *pool, const struct scb_retr_step *s)
{
    const size_t work = (size_t)s->Hkv * (size_t)(s->hi - s->lo) * (size_t)s->D * (size_t)(s->Hq / s->Hkv);
    return work < SCB_POOL_MIN_WORK ? 1 : scb_pool_threads(pool);
}

struct prefetch_arg {
    const struct scb_retr_step *s;
    size_t bytes;
    int nt;
};

/* Participant p reads one word per 64-byte line of the first a->bytes of its items' keys (the
 * fused step's partition), in the order the scan will read them. */
static void prefetch_job(void *arg, size_t pb, size_t pe, int tid)
{
    (void)tid;
    const struct prefetch_arg *a = arg;
    const struct scb_retr_step *s = a->s;
    const int ns = slices(s);
    const size_t blk_bytes = (size_t)KB * s->D * sizeof(uint16_t);
    for (size_t p = pb; p < pe; p++) {
        const size_t items = (size_t)s->Hkv * ns, i0 = items * p / (size_t)a->nt, i1 = items * (p + 1) / (size_t)a->nt;
        size_t left = a->bytes;
        uint64_t acc = 0;
        for (size_t it = i0; it < i1 && left > 0; it++) {
            int g, t0, t1;
            if (!slice_keys(s, it, ns, &g, &t0, &t1)) continue;
            const unsigned char *b = (const unsigned char *)(s->kb + (size_t)g * s->kb_head + (size_t)(t0 / KB) * KB * s->D);
            size_t n = (size_t)((t1 - 1) / KB - t0 / KB + 1) * blk_bytes;
            if (n > left) n = left;
            for (size_t o = 0; o < n; o += 64) {
                uint64_t w;
                memcpy(&w, b + o, sizeof w);
                acc ^= w;
            }
            left -= n;
        }
        __asm__ __volatile__("" : : "r"(acc));   /* the reads are the point: keep them */
    }
}

void scb_retr_step_prefetch(struct scb_pool *pool, const struct scb_retr_step *s, size_t bytes)
{
    if (!pool || !s || !s->kb || bytes == 0 || s->Hkv <= 0 || s->Hq % s->Hkv || s->hi <= s->lo) return;
    struct prefetch_arg a = {s, bytes, fused_threads(pool, s)};
    if (a.nt > 1) scb_pool_run(pool, prefetch_job, &a, (size_t)a.nt);
}

int scb_retr_step_run(struct scb_pool *pool, struct scb_retr_step *s, int which, struct scb_ctx *ctx)
{
    const int n = s->hi - s->lo;
    if (s->Hkv <= 0 || s->Hq % s->Hkv || s->D <= 0 || s->D > SCB_RETR_SCAN_DMAX || n < 0 || (size_t)n > s->ss ||
        (s->top_k < n ? s->top_k : n) > s->idx_stride || s->sel_bytes < scb_retr_topk_set_work_bytes(n))
        return scb_err(ctx, SCB_E_INVAL, "retr_attn flat step: bad shape (Hq=%d Hkv=%d D=%d range [%d, %d) "
                       "scores %zu, top_k %d, stride %d, selection scratch %zu bytes)", s->Hq, s->Hkv, s->D, s->lo,
                       s->hi, s->ss, s->top_k, s->idx_stride, s->sel_bytes);
    if (which < SCB_RETR_STEP_SCORE || which > SCB_RETR_STEP_FUSED)
        return scb_err(ctx, SCB_E_INVAL, "retr_attn flat step: unknown phase selector %d", which);
    const int fused = which == SCB_RETR_STEP_FUSED;
    const int threads = scb_pool_threads(pool);
    if (fused && (!s->dig || !s->hist_work || s->hist_bytes < scb_retr_step_hist_bytes(threads, s->Hq)))
        return scb_err(ctx, SCB_E_INVAL, "retr_attn flat step: the fused step needs digit scratch and %zu bytes of "
                       "histogram scratch (got %zu)", scb_retr_step_hist_bytes(threads, s->Hq), s->hist_bytes);
    s->fail = 0;
    const int G = s->Hq / s->Hkv;
    if (n == 0) {
        for (int h = 0; h < s->Hq && (which & 6); h++) s->n_idx[h] = 0;
        return SCB_OK;
    }
    if (fused) {
        const double t0 = s->profile ? scb_now_ms() : 0;
        /* small steps run inline (as scb_pool_run_sized): waking the workers costs more */
        s->nt = fused_threads(pool, s);
        s->arrived = 0;
        if (s->nt == 1) fused_job(s, 0, 1, 0);
        else scb_pool_run(pool, fused_job, s, (size_t)s->nt);
        if (s->profile) {
            const double t1 = scb_now_ms();
            double scan = 0, sel = 0;
            for (int u = 0; u < s->nt; u++) {
                const double *tm = (const double *)(s->hist_work + (size_t)u * hw_stride(s->Hq));
                if (tm[0] - t0 > scan) scan = tm[0] - t0;
                if (tm[1] - t0 > sel) sel = tm[1] - t0;
            }
            s->prof_ms[0] = scan;
            s->prof_ms[1] = sel - scan;
            s->prof_ms[2] = t1 - t0;
        }
    } else {
        if (which & SCB_RETR_STEP_SCORE)
            scb_pool_run_sized(pool, score_job, s, (size_t)s->Hkv * slices(s), (size_t)SLICE * s->D * G);
        if (which & SCB_RETR_STEP_SELECT)
            scb_pool_run_sized(pool, select_job, s, (size_t)s->Hq, (size_t)n * 16);
    }
    if (s->fail) return scb_err(ctx, s->fail, "retr_attn: flat selection failed");
    return SCB_OK;
}
