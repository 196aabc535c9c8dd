/* retr_attn.c — RetrievalAttention: flat and graph indexes, selection, merge (see retr_attn.h). */
#include "methods/retr_attn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/dense.h"
#include "methods/retr_scan.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- the score: an fp32 fused multiply-add chain in d order (scb_retr_score) ----------------
 * Written once as an always-inline body and instantiated twice: plainly (fmaf: the C library's,
 * exact on any CPU) and, on x86, for CPUs with FMA (the compiler emits vfmadd231ss). Both round
 * every step once, so their bits are equal; the FMA one is picked at run time for speed. */
static inline __attribute__((always_inline)) float dot_chain(const float *a, const float *b, int D)
{
    float s = 0.0f;
    for (int d = 0; d < D; d++) s = __builtin_fmaf(a[d], b[d], s);
    return s;
}

/* Four queries and two keys per pass: eight independent chains interleaved (for the processor's
 * parallelism), each one dot_chain's sequence of operations, so every score is bit for bit
 * scb_retr_score's. */
static inline __attribute__((always_inline)) void scores_body(const float *q, size_t qs, int nq, const float *keys,
                                                              size_t ks, int n, int D, float *scores, size_t ss)
{
    int r0 = 0;
    for (; r0 + 4 <= nq; r0 += 4) {
        const float *q0 = q + (size_t)r0 * qs, *q1 = q0 + qs, *q2 = q1 + qs, *q3 = q2 + qs;
        float *s0 = scores + (size_t)r0 * ss, *s1 = s0 + ss, *s2 = s1 + ss, *s3 = s2 + ss;
        int t = 0;
        for (; t + 2 <= n; t += 2) {
            const float *ka = keys + (size_t)t * ks, *kb = ka + ks;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
            for (int d = 0; d < D; d++) {
                const float x = ka[d], y = kb[d];
                a0 = __builtin_fmaf(q0[d], x, a0); b0 = __builtin_fmaf(q0[d], y, b0);
                a1 = __builtin_fmaf(q1[d], x, a1); b1 = __builtin_fmaf(q1[d], y, b1);
                a2 = __builtin_fmaf(q2[d], x, a2); b2 = __builtin_fmaf(q2[d], y, b2);
                a3 = __builtin_fmaf(q3[d], x, a3); b3 = __builtin_fmaf(q3[d], y, b3);
            }
            s0[t] = a0; s0[t + 1] = b0;
            s1[t] = a1; s1[t + 1] = b1;
            s2[t] = a2; s2[t + 1] = b2;
            s3[t] = a3; s3[t + 1] = b3;
        }
        for (; t < n; t++) {
            const float *kt = keys + (size_t)t * ks;
            s0[t] = dot_chain(q0, kt, D); s1[t] = dot_chain(q1, kt, D);
            s2[t] = dot_chain(q2, kt, D); s3[t] = dot_chain(q3, kt, D);
        }
    }
    for (; r0 < nq; r0++) {                   /* one query: four keys per pass, four chains */
        const float *q0 = q + (size_t)r0 * qs;
        float *s0 = scores + (size_t)r0 * ss;
        int t = 0;
        for (; t + 4 <= n; t += 4) {
            const float *k0 = keys + (size_t)t * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (int d = 0; d < D; d++) {
                a0 = __builtin_fmaf(q0[d], k0[d], a0); a1 = __builtin_fmaf(q0[d], k1[d], a1);
                a2 = __builtin_fmaf(q0[d], k2[d], a2); a3 = __builtin_fmaf(q0[d], k3[d], a3);
            }
            s0[t] = a0; s0[t + 1] = a1; s0[t + 2] = a2; s0[t + 3] = a3;
        }
        for (; t < n; t++) s0[t] = dot_chain(q0, keys + (size_t)t * ks, D);
    }
}

static float dot_plain(const float *a, const float *b, int D) { return dot_chain(a, b, D); }
static void scores_plain(const float *q, size_t qs, int nq, const float *keys, size_t ks, int n, int D, float *scores,
                         size_t ss)
{
    scores_body(q, qs, nq, keys, ks, n, D, scores, ss);
}

#if defined(__GNUC__) && defined(__x86_64__)
__attribute__((target("fma"))) static float dot_hw(const float *a, const float *b, int D) { return dot_chain(a, b, D); }
__attribute__((target("fma"))) static void scores_hw(const float *q, size_t qs, int nq, const float *keys, size_t ks,
                                                     int n, int D, float *scores, size_t ss)
{
    scores_body(q, qs, nq, keys, ks, n, D, scores, ss);
}

static int have_fma(void)
{
    static int known = -1;   /* a benign race: every thread computes the same value */
    int v = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("fma") != 0;
        __atomic_store_n(&known, v, __ATOMIC_RELAXED);
    }
    return v;
}
#endif

float scb_retr_score(const float *q, const float *k, int D)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (have_fma()) return dot_hw(q, k, D);
#endif
    return dot_plain(q, k, D);
}

struct cand { float s; int32_t id; int32_t node; };
static int cand_desc(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;
    if (a->s > b->s) return -1;
    if (a->s < b->s) return 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int cmp_id_asc(const void *x, const void *y)
{
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static int cand_better(const struct cand *a, const struct cand *b)
{
    return a->s > b->s || (a->s == b->s && a->id < b->id);
}

/* select_top moves the k best of c[0..n) (cand_desc order: a total order, ids are distinct) to
 * c[0..k) in no particular order (Hoare quickselect, median of three); select_sorted then sorts
 * those k: the same first k as sorting all n. */
static void select_top(struct cand *c, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cand_better(&c[mid], &c[lo])) { struct cand t = c[mid]; c[mid] = c[lo]; c[lo] = t; }
        if (cand_better(&c[hi], &c[lo])) { struct cand t = c[hi]; c[hi] = c[lo]; c[lo] = t; }
        if (cand_better(&c[mid], &c[hi])) { struct cand t = c[mid]; c[mid] = c[hi]; c[hi] = t; }
        struct cand piv = c[hi];                     /* median of the three */
        int i = lo, j = hi - 1;
        for (;;) {
            while (cand_better(&c[i], &piv)) i++;
            while (j > lo && cand_better(&piv, &c[j])) j--;
            if (i >= j) break;
            struct cand t = c[i]; c[i] = c[j]; c[j] = t;
            i++; j--;
        }
        struct cand t = c[i]; c[i] = c[hi]; c[hi] = t; /* pivot at its final rank i */
        if (i == k - 1 || i == k) break;
        if (i < k) lo = i + 1;
        else hi = i - 1;
    }
}

static void select_sorted(struct cand *c, int n, int k)
{
    select_top(c, n, k);
    qsort(c, (size_t)k, sizeof *c, cand_desc);
}

int scb_retr_flat_topk(const float *q, const float *keys, size_t ks, const int32_t *ids, int n,
                       int D, int k, int32_t *out_id, float *out_ip)
{
    if (n <= 0 || k <= 0) return 0;
    struct cand *c = scb_malloc(sizeof *c * (size_t)n);
    if (!c) return SCB_E_NOMEM;
    float sc[256];                               /* (256) a chunk of keys' scores */
    for (int t0 = 0; t0 < n; t0 += 256) {
        const int m = n - t0 < 256 ? n - t0 : 256;
        scb_retr_flat_scores(q, 0, 1, keys + (size_t)t0 * ks, ks, m, D, sc, 0);
        for (int t = t0; t < t0 + m; t++) {
            c[t].s = sc[t - t0];
            c[t].id = ids ? ids[t] : t;
            c[t].node = t;
        }
    }
    if (k > n) k = n;
    select_sorted(c, n, k);
    for (int t = 0; t < k; t++) {
        out_id[t] = c[t].id;
        if (out_ip) out_ip[t] = c[t].s;
    }
    scb_free(c);
    return k;
}

void scb_retr_flat_scores(const float *q, size_t qs, int nq, const float *keys, size_t ks, int n, int D,
                          float *scores, size_t ss)
{
#if defined(__GNUC__) && defined(__x86_64__)
    if (have_fma()) { scores_hw(q, qs, nq, keys, ks, n, D, scores, ss); return; }
#endif
    scores_plain(q, qs, nq, keys, ks, n, D, scores, ss);
}

int scb_retr_topk_scores(const float *scores, int n, int32_t id0, int k, int32_t *out_id)
{
    if (n <= 0 || k <= 0) return 0;
    struct cand *c = scb_malloc(sizeof *c * (size_t)n);
    if (!c) return SCB_E_NOMEM;
    for (int t = 0; t < n; t++) {
        c[t].s = scores[t];
        c[t].id = id0 + t;
        c[t].node = t;
    }
    if (k > n) k = n;
    select_sorted(c, n, k);
    for (int t = 0; t < k; t++) out_id[t] = c[t].id;
    scb_free(c);
    return k;
}

static uint32_t score_key(float s) { return scb_retr_score_key(s); }

/* Radix select in two passes over the scores: pass 1 histograms the top 16 bits of the keys;
 * pass 2 writes the ids whose top digit lies above the k-th largest's (certainly taken, in id
 * order) and compacts those of its digit as candidates; the remaining 16 bits are resolved on the
 * candidates (11 bits at a time, stable compaction), which gives the k-th largest key tau; the
 * candidates > tau and the first (smallest-id) ones == tau are merged with the certain ids. The
 * result is the set select_top gives (score descending, ties to the smaller id), in id order. */
enum { TOP_BITS = 16, RDX_BITS = 11 };

/* The end of a radix select, shared by scb_retr_topk_set and scb_retr_topk_set_dig: the m
 * candidates (keys ck, positions cp, in position order) share the top (32 - shift) key bits
 * `prefix`; `need` of them are still to take. The remaining bits are resolved RDX_BITS at a time
 * (stable compaction), which gives the k-th largest key tau; the candidates > tau and the first
 * `need` == tau are merged with the a certain ids already in out_id (id order). hist holds
 * 1 << RDX_BITS counts. Returns the total. */
static int radix_finish(uint32_t *ck, uint32_t *cp, int m, uint32_t need, uint32_t prefix, int shift,
                        uint32_t *hist, int32_t *out_id, int a, int32_t id0)
{
    while (shift > 0) {
        const int bits = shift >= RDX_BITS ? RDX_BITS : shift;
        const uint32_t mask = (1u << bits) - 1;
        shift -= bits;
        memset(hist, 0, sizeof(uint32_t) << bits);
        /* candidates already known to be taken hold UINT32_MAX (no finite score maps to it) */
        for (int i = 0; i < m; i++)
            if (ck[i] != UINT32_MAX) hist[(ck[i] >> shift) & mask]++;
        uint32_t ab = 0;
        int d = (int)mask;
        while (ab + hist[d] < need) ab += hist[d--];
        need -= ab;
        prefix = (prefix << bits) | (uint32_t)d;
        int m2 = 0;
        for (int i = 0; i < m; i++) {                /* keep taken ones and digit >= d, in order */
            const uint32_t dg = (uint32_t)((ck[i] >> shift) & mask);
            if (ck[i] == UINT32_MAX || dg >= (uint32_t)d) {
                ck[m2] = ck[i] == UINT32_MAX || dg == (uint32_t)d ? ck[i] : UINT32_MAX;
                cp[m2] = cp[i];
                m2++;
            }
        }
        m = m2;
    }
    const uint32_t tau = prefix;                 /* the k-th largest key; take `need` of its ties */
    int c = 0;
    for (int i = 0; i < m; i++)
        if (ck[i] > tau || (ck[i] == tau && need > 0)) {
            if (ck[i] == tau) need--;
            cp[c++] = cp[i];
        }
    for (int i = a + c - 1, x = a - 1, y = c - 1; y >= 0; i--) {   /* merge the two id-ordered lists */
        if (x >= 0 && out_id[x] > id0 + (int32_t)cp[y]) out_id[i] = out_id[x--];
        else out_id[i] = id0 + (int32_t)cp[y--];
    }
    return a + c;
}

int scb_retr_topk_set(const float *scores, int n, int32_t id0, int k, int32_t *out_id, void *work)
{
    if (n <= 0 || k <= 0) return 0;
    if (k >= n) {
        for (int t = 0; t < n; t++) out_id[t] = id0 + t;
        return n;
    }
    uint32_t *ck = work;                         /* (m) candidate keys */
    uint32_t *cp = (uint32_t *)(ck + n);         /* (m) their positions */
    uint32_t *hist = cp + n;                     /* (1 << TOP_BITS) */
    memset(hist, 0, sizeof(uint32_t) << TOP_BITS);
    for (int t = 0; t < n; t++) hist[score_key(scores[t]) >> (32 - TOP_BITS)]++;
    uint32_t need = (uint32_t)k, above = 0;
    int b = (1 << TOP_BITS) - 1;
    while (above + hist[b] < need) above += hist[b--];
    need -= above;                               /* still to take from digit b */
    int a = 0, m = 0;
    /* branch-free: both slots are written, the counts advance; in bounds since a <= above < k
     * (the ids above digit b number fewer than k) and m <= t < n */
    for (int t = 0; t < n; t++) {
        const uint32_t key = score_key(scores[t]);
        const int dg = (int)(key >> (32 - TOP_BITS));
        out_id[a] = id0 + t;
        a += dg > b;
        ck[m] = key;
        cp[m] = (uint32_t)t;
        m += dg == b;
    }
    return radix_finish(ck, cp, m, need, (uint32_t)b, 32 - TOP_BITS, hist, out_id, a, id0);
}

/* ---- selection from a scan's digits (scb_retr_topk_set_dig) --------------------------------
 * 1. the boundary bin b from the hbits-bit counts; one pass over the digits collects the bin's
 *    positions; 2. their digits' low 16 - hbits bits split the bin again (no score read): the
 *    sub-bin holding the k-th largest gives the threshold digit D*; 3. only the positions whose
 *    digit is D* read their scores: their full keys give the k-th largest key tau and how many of
 *    its ties to take (the first ones: ties to the smaller id); 4. one last pass over the digits
 *    writes, in id order, every id whose digit is > D*, and of those == D* the ones with key > tau
 *    or among the first taken ties. No merge, no sort; branch-free or SIMD passes. */

/* The k-th largest key among ck[0..m) (all sharing the top 32 - shift bits `prefix`), `need` of
 * those still to take: resolved RDX_BITS at a time without moving the keys (a filter by the
 * prefix so far). *ties: how many keys equal to it are taken. */
static uint32_t radix_tau(const uint32_t *ck, int m, uint32_t need, uint32_t prefix, int shift, uint32_t *hist,
                          uint32_t *ties)
{
    while (shift > 0) {
        const int bits = shift >= RDX_BITS ? RDX_BITS : shift, s_old = shift;
        const uint32_t mask = (1u << bits) - 1;
        shift -= bits;
        memset(hist, 0, sizeof(uint32_t) << bits);
        for (int i = 0; i < m; i++)
            if ((ck[i] >> s_old) == prefix) hist[(ck[i] >> shift) & mask]++;
        uint32_t ab = 0;
        int d = (int)mask;
        while (ab + hist[d] < need) ab += hist[d--];
        need -= ab;
        prefix = (prefix << bits) | (uint32_t)d;
    }
    *ties = need;
    return prefix;
}

/* Positions t with lo_c <= dig[t] <= hi_c into cp (ascending); returns their count. */
static int dig_range_scalar(const uint16_t *dig, int n, uint32_t lo_c, uint32_t hi_c, uint32_t *cp)
{
    int m = 0;
    for (int t = 0; t < n; t++) {                /* branch-free: m <= t < n */
        const uint32_t d = dig[t];
        cp[m] = (uint32_t)t;
        m += d >= lo_c && d <= hi_c;
    }
    return m;
}

/* The last pass: ids of digits > dstar, and of those == dstar (keys ck in position order) the
 * ones with key > tau or the first `ties` with key == tau; returns the count written. */
static int dig_emit_scalar(const uint16_t *dig, int n, int32_t id0, uint32_t dstar, const uint32_t *ck,
                           uint32_t tau, uint32_t ties, int32_t *out_id)
{
    int a = 0, j = 0;
    for (int t = 0; t < n; t++) {
        const uint32_t d = dig[t];
        if (d > dstar) {
            out_id[a++] = id0 + t;
        } else if (d == dstar) {
            const uint32_t key = ck[j++];
            if (key > tau || (key == tau && ties > 0)) {
                ties -= key == tau;
                out_id[a++] = id0 + t;
            }
        }
    }
    return a;
}

#if defined(__GNUC__) && defined(__x86_64__)
/* The two digit passes with AVX-512F: 16 digits per step widened to 32 bits and compared; the
 * selected positions / ids compressed in a register (ascending) and stored whole (a masked
 * compress to memory is microcoded on some CPUs): the slots past the count are scratch that
 * later stores overwrite, used only while in bounds (cp: m + 16 <= t + 16 <= n; out_id: k slots,
 * a masked store near the end). */
__attribute__((target("avx512f"))) static int dig_range_avx512(const uint16_t *dig, int n, uint32_t lo_c,
                                                               uint32_t hi_c, uint32_t *cp)
{
    int m = 0, t = 0;
    const __m512i vlo = _mm512_set1_epi32((int)lo_c), vhi = _mm512_set1_epi32((int)hi_c);
    __m512i pos = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; t + 16 <= n; t += 16) {
        const __m512i d = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(dig + t)));
        const __mmask16 in = _mm512_mask_cmple_epu32_mask(_mm512_cmpge_epu32_mask(d, vlo), d, vhi);
        if (in) {
            _mm512_storeu_si512((void *)(cp + m), _mm512_maskz_compress_epi32(in, pos));
            m += __builtin_popcount(in);
        }
        pos = _mm512_add_epi32(pos, _mm512_set1_epi32(16));
    }
    for (; t < n; t++)
        if (dig[t] >= lo_c && dig[t] <= hi_c) cp[m++] = (uint32_t)t;
    return m;
}

__attribute__((target("avx512f"))) static int dig_emit_avx512(const uint16_t *dig, int n, int k, int32_t id0,
                                                              uint32_t dstar, const uint32_t *ck, uint32_t tau,
                                                              uint32_t ties, int32_t *out_id)
{
    int a = 0, j = 0, t = 0;
    const __m512i vd = _mm512_set1_epi32((int)dstar);
    __m512i ids = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                   _mm512_set1_epi32(id0));
    for (; t + 16 <= n; t += 16) {
        const __m512i d = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(dig + t)));
        __mmask16 take = _mm512_cmpgt_epu32_mask(d, vd);
        for (unsigned eq = _mm512_cmpeq_epu32_mask(d, vd); eq; eq &= eq - 1) {   /* the few at D* */
            const uint32_t key = ck[j++];
            if (key > tau || (key == tau && ties > 0)) {
                ties -= key == tau;
                take |= (__mmask16)(eq & -eq);
            }
        }
        if (take) {
            const int c = __builtin_popcount(take);
            const __m512i v = _mm512_maskz_compress_epi32(take, ids);
            if (a + 16 <= k) _mm512_storeu_si512((void *)(out_id + a), v);
            else _mm512_mask_storeu_epi32(out_id + a, (__mmask16)((1u << c) - 1), v);
            a += c;
        }
        ids = _mm512_add_epi32(ids, _mm512_set1_epi32(16));
    }
    return a + dig_emit_scalar(dig + t, n - t, id0 + t, dstar, ck + j, tau, ties, out_id + a);
}
#endif

int scb_retr_topk_set_dig(const float *scores, const uint16_t *dig, const uint32_t *hist, int hbits, int n,
                          int32_t id0, int k, int32_t *out_id, void *work)
{
    if (n <= 0 || k <= 0) return 0;
    if (k >= n) {
        for (int t = 0; t < n; t++) out_id[t] = id0 + t;
        return n;
    }
    uint32_t *ck = work;                         /* (m) keys of the positions at D* */
    uint32_t *cp = (uint32_t *)(ck + n);         /* (m) candidate positions */
    uint32_t *rh = cp + n;                       /* (1 << RDX_BITS) */
    uint32_t need = (uint32_t)k;
    int b = (1 << hbits) - 1;
    while (hist[b] < need) need -= hist[b--];    /* still to take from bin b */
    const int sh = 16 - hbits;
    const uint32_t lo_c = (uint32_t)b << sh, hi_c = (((uint32_t)b + 1) << sh) - 1;   /* bin b's digits */
#if defined(__GNUC__) && defined(__x86_64__)
    const enum scb_retr_isa isa = scb_retr_scan_isa();   /* the scan's path (forced in tests) */
    const int simd = isa == SCB_RETR_ISA_AVX512_FMA;
#else
    const int simd = 0;
#endif
    int m;
#if defined(__GNUC__) && defined(__x86_64__)
    if (simd) m = dig_range_avx512(dig, n, lo_c, hi_c, cp);
    else
#endif
        m = dig_range_scalar(dig, n, lo_c, hi_c, cp);
    uint32_t dstar = lo_c;
    if (sh > 0) {                                /* the sub-bin from the digits' low bits */
        const uint32_t lmask = (1u << sh) - 1;
        memset(rh, 0, sizeof(uint32_t) << sh);
        for (int i = 0; i < m; i++) rh[dig[cp[i]] & lmask]++;
        uint32_t b2 = lmask;
        while (rh[b2] < need) need -= rh[b2--];
        dstar = lo_c | b2;
        int m2 = 0;
        for (int i = 0; i < m; i++) {            /* branch-free: m2 <= i */
            const uint32_t p = cp[i];
            cp[m2] = p;
            m2 += dig[p] == dstar;
        }
        m = m2;
    }
    for (int i = 0; i < m; i++) ck[i] = score_key(scores[cp[i]]);
    uint32_t ties = 0;
    const uint32_t tau = radix_tau(ck, m, need, (uint32_t)dstar, 16, rh, &ties);
#if defined(__GNUC__) && defined(__x86_64__)
    if (simd) return dig_emit_avx512(dig, n, k, id0, dstar, ck, tau, ties, out_id);
#endif
    return dig_emit_scalar(dig, n, id0, dstar, ck, tau, ties, out_id);
}

/* The previous selection (quickselect on (score, id) records, then marks): the reference the
 * radix select is tested and benchmarked against. */
int scb_retr_topk_set_qsel(const float *scores, int n, int32_t id0, int k, int32_t *out_id, void *work)
{
    if (n <= 0 || k <= 0) return 0;
    struct cand *c = work;
    for (int t = 0; t < n; t++) {
        c[t].s = scores[t];
        c[t].id = id0 + t;
        c[t].node = t;
    }
    if (k >= n) {
        for (int t = 0; t < n; t++) out_id[t] = id0 + t;
        return n;
    }
    select_top(c, n, k);
    /* the k winners in ascending id order without sorting: mark them in the scores' place
     * (c[k..n) holds the losers, whose records are no longer needed), then scan */
    unsigned char *mark = (unsigned char *)(c + k);
    size_t room = (size_t)(n - k) * sizeof *c;
    if (room >= (size_t)n) {
        int32_t *node = out_id;                      /* the winners' positions, staged in out_id */
        for (int t = 0; t < k; t++) node[t] = c[t].node;
        memset(mark, 0, (size_t)n);
        for (int t = 0; t < k; t++) mark[node[t]] = 1;
        int m = 0;
        for (int t = 0; t < n; t++)
            if (mark[t]) out_id[m++] = id0 + t;
        return k;
    }
    for (int t = 0; t < k; t++) out_id[t] = c[t].id;   /* few losers: sort the winners' ids */
    qsort(out_id, (size_t)k, sizeof *out_id, cmp_id_asc);
    return k;
}

size_t scb_retr_topk_set_work_bytes(int n)
{
    if (n <= 0) return 0;
    const size_t radix = (size_t)n * 2 * sizeof(uint32_t) + (sizeof(uint32_t) << TOP_BITS);
    const size_t qsel = (size_t)n * sizeof(struct cand);
    return radix > qsel ? radix : qsel;
}

double scb_retr_recall(const int32_t *a, int na, const int32_t *b, int nb)
{
    if (nb <= 0) return 1.0;
    int hit = 0;
    for (int j = 0; j < nb; j++)
        for (int i = 0; i < na; i++)
            if (a[i] == b[j]) { hit++; break; }
    return (double)hit / nb;
}

/* ---- graph index --------------------------------------------------------------------------- */
struct scb_retr_graph {
    int D, n, cap, maxdeg, ef, n_entry;
    float *keys;      /* (cap, D) */
    int32_t *ids;     /* (cap) */
    int32_t *adj;     /* (cap, maxdeg) node indices */
    int *deg;         /* (cap) */
    int32_t entry[16];
    int last;         /* last inserted node, -1 if none */
};

static int g_reserve(struct scb_retr_graph *g, int need)
{
    if (need <= g->cap) return SCB_OK;
    int nc = g->cap ? g->cap * 2 : 1024;
    while (nc < need) nc *= 2;
    float *k = scb_realloc(g->keys, sizeof(float) * (size_t)nc * g->D);
    if (!k) return SCB_E_NOMEM;
    g->keys = k;
    int32_t *ids = scb_realloc(g->ids, sizeof(int32_t) * (size_t)nc);
    if (!ids) return SCB_E_NOMEM;
    g->ids = ids;
    int32_t *adj = scb_realloc(g->adj, sizeof(int32_t) * (size_t)nc * g->maxdeg);
    if (!adj) return SCB_E_NOMEM;
    g->adj = adj;
    int *deg = scb_realloc(g->deg, sizeof(int) * (size_t)nc);
    if (!deg) return SCB_E_NOMEM;
    g->deg = deg;
    g->cap = nc;
    return SCB_OK;
}

static void add_edge(struct scb_retr_graph *g, int u, int v)
{
    if (u == v) return;
    int32_t *a = g->adj + (size_t)u * g->maxdeg;
    for (int i = 0; i < g->deg[u]; i++) if (a[i] == v) return;
    if (g->deg[u] < g->maxdeg) a[g->deg[u]++] = v;
}

void scb_retr_graph_destroy(struct scb_retr_graph *g)
{
    if (!g) return;
    scb_free(g->keys); scb_free(g->ids); scb_free(g->adj); scb_free(g->deg);
    scb_free(g);
}

int scb_retr_graph_size(const struct scb_retr_graph *g) { return g->n; }

/* Binary heap of candidates; max = 1 for a max-heap on s, else min-heap. */
struct heap { struct cand *a; int n, cap, max; };
static int h_better(const struct heap *h, const struct cand *x, const struct cand *y)
{
    return h->max ? x->s > y->s : x->s < y->s;
}
static void h_push(struct heap *h, struct cand c)
{
    int i = h->n++;
    h->a[i] = c;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!h_better(h, &h->a[i], &h->a[p])) break;
        struct cand t = h->a[i]; h->a[i] = h->a[p]; h->a[p] = t;
        i = p;
    }
}
static struct cand h_pop(struct heap *h)
{
    struct cand top = h->a[0];
    h->a[0] = h->a[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, b = i;
        if (l < h->n && h_better(h, &h->a[l], &h->a[b])) b = l;
        if (r < h->n && h_better(h, &h->a[r], &h->a[b])) b = r;
        if (b == i) break;
        struct cand t = h->a[i]; h->a[i] = h->a[b]; h->a[b] = t;
        i = b;
    }
    return top;
}

/* Beam search; results (node, score) sorted desc into res (up to ef). */
static int g_search(const struct scb_retr_graph *g, const float *q, int ef, int32_t id_limit,
                    struct cand *res, int *n_res, int *visited)
{
    int rc = SCB_OK;
    *n_res = 0; *visited = 0;
    if (g->n == 0) return SCB_OK;
    uint8_t *seen = scb_calloc((size_t)g->n, 1);
    struct heap C = {scb_malloc(sizeof(struct cand) * ((size_t)g->n + 16)), 0, g->n + 16, 1};
    struct heap R = {scb_malloc(sizeof(struct cand) * ((size_t)ef + 2)), 0, ef + 2, 0};
    if (!seen || !C.a || !R.a) { rc = SCB_E_NOMEM; goto out; }
    for (int e = 0; e < g->n_entry; e++) {
        int u = g->entry[e];
        if (u < 0 || u >= g->n || seen[u]) continue;
        seen[u] = 1; (*visited)++;
        struct cand c = {scb_retr_score(q, g->keys + (size_t)u * g->D, g->D), g->ids[u], u};
        h_push(&C, c);
        if (g->ids[u] < id_limit) { h_push(&R, c); if (R.n > ef) h_pop(&R); }
    }
    while (C.n) {
        struct cand c = h_pop(&C);
        if (R.n >= ef && c.s < R.a[0].s) break;
        const int32_t *a = g->adj + (size_t)c.node * g->maxdeg;
        for (int i = 0; i < g->deg[c.node]; i++) {
            int u = a[i];
            if (seen[u]) continue;
            seen[u] = 1; (*visited)++;
            struct cand x = {scb_retr_score(q, g->keys + (size_t)u * g->D, g->D), g->ids[u], u};
            if (R.n < ef || x.s > R.a[0].s) {
                h_push(&C, x);
                if (g->ids[u] < id_limit) { h_push(&R, x); if (R.n > ef) h_pop(&R); }
            }
        }
    }
    memcpy(res, R.a, sizeof(struct cand) * (size_t)R.n);
    *n_res = R.n;
    qsort(res, (size_t)R.n, sizeof *res, cand_desc);
out:
    scb_free(seen); scb_free(C.a); scb_free(R.a);
    return rc;
}

int scb_retr_graph_search(const struct scb_retr_graph *g, const float *q, int k, int32_t id_limit,
                          int32_t *out_id, float *out_ip, int *visited, struct scb_ctx *ctx)
{
    int ef = g->ef > k ? g->ef : k, n = 0, vis = 0;
    struct cand *res = scb_malloc(sizeof *res * ((size_t)ef + 2));
    if (!res) return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    int rc = g_search(g, q, ef, id_limit, res, &n, &vis);
    if (rc) { scb_free(res); return scb_err(ctx, rc, "retr_attn: out of memory"); }
    if (k > n) k = n;
    for (int t = 0; t < k; t++) { out_id[t] = res[t].id; if (out_ip) out_ip[t] = (float)res[t].s; }
    if (visited) *visited = vis;
    scb_free(res);
    return k;
}

int scb_retr_graph_add(struct scb_retr_graph *g, const float *key, int32_t id, struct scb_ctx *ctx)
{
    if (g_reserve(g, g->n + 1)) return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    int u = g->n;
    enum { NN = 8 };
    struct cand res[64];
    int nr = 0, vis = 0;
    if (g->n > 0 && g_search(g, key, 32, INT32_MAX, res, &nr, &vis))
        return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    memcpy(g->keys + (size_t)u * g->D, key, sizeof(float) * g->D);
    g->ids[u] = id;
    g->deg[u] = 0;
    g->n++;
    if (g->last >= 0) { add_edge(g, u, g->last); add_edge(g, g->last, u); }
    for (int i = 0; i < nr && i < NN; i++) { add_edge(g, u, res[i].node); add_edge(g, res[i].node, u); }
    if (g->n_entry == 0) { g->entry[0] = u; g->n_entry = 1; }
    g->last = u;
    return SCB_OK;
}

int scb_retr_graph_build(struct scb_retr_graph **out, const float *keys, size_t ks,
                         const int32_t *ids, int n, int D, const float *queries, size_t qs, int nq,
                         const struct scb_retr_graph_params *p, struct scb_ctx *ctx)
{
    *out = NULL;
    int rc = SCB_OK;
    struct scb_retr_graph *g = scb_calloc(1, sizeof *g);
    int32_t *top = NULL;
    int *pivots = NULL;
    if (!g) return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    g->D = D;
    g->maxdeg = p && p->max_degree > 0 ? p->max_degree : 32;
    g->ef = p && p->ef > 0 ? p->ef : 64;
    int M = p && p->M > 0 ? p->M : 16;
    int ne = p && p->n_entry > 0 ? p->n_entry : 4;
    if (ne > 16) ne = 16;
    g->last = -1;
    if (g_reserve(g, n > 0 ? n : 1)) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory"); goto out; }
    for (int t = 0; t < n; t++) {
        memcpy(g->keys + (size_t)t * D, keys + (size_t)t * ks, sizeof(float) * D);
        g->ids[t] = ids ? ids[t] : t;
        g->deg[t] = 0;
    }
    g->n = n;
    for (int t = 1; t < n; t++) { add_edge(g, t, t - 1); add_edge(g, t - 1, t); }   /* sequence links */
    top = scb_malloc(sizeof(int32_t) * (size_t)(M > 0 ? M : 1));
    pivots = scb_calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    if (!top || !pivots) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory"); goto out; }
    for (int i = 0; i < nq && n > 0; i++) {             /* query-side links (RoarGraph projection) */
        int m = scb_retr_flat_topk(queries + (size_t)i * qs, g->keys, (size_t)D, NULL, n, D, M, top, NULL);
        if (m < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory"); goto out; }
        if (m == 0) continue;
        pivots[top[0]]++;
        for (int j = 1; j < m; j++) { add_edge(g, top[0], top[j]); add_edge(g, top[j], top[0]); }
    }
    for (int e = 0; e < ne && e < n; e++) {            /* entries: most frequent pivots */
        int best = -1;
        for (int t = 0; t < n; t++) {
            int taken = 0;
            for (int f = 0; f < g->n_entry; f++) if (g->entry[f] == t) taken = 1;
            if (!taken && (best < 0 || pivots[t] > pivots[best])) best = t;
        }
        g->entry[g->n_entry++] = best;
    }
    g->last = n - 1;
    *out = g;
    g = NULL;
out:
    scb_free(top); scb_free(pivots);
    scb_retr_graph_destroy(g);
    return rc;
}

/* ---- selection and attention ----------------------------------------------------------------- */
int scb_retr_static_keys(int Tg, int n_sink, int n_recent, int32_t *idx)
{
    int n = 0;
    if (Tg < n_sink + n_recent) { for (int j = 0; j < Tg; j++) idx[n++] = j; return n; }
    for (int j = 0; j < n_sink; j++) idx[n++] = j;
    for (int j = Tg - n_recent; j < Tg; j++) idx[n++] = j;
    return n;
}

struct retr_state {
    struct scb_retr_graph **g; int *cpu_end;   /* index=graph only: (L * Hkv), (L); NULL for flat */
    double recall_sum; int64_t recall_n;       /* retrievals and their summed recall since reset */
};
static void retr_state_stats(struct retr_state *s, double **sum, int64_t **n)
{
    *sum = &s->recall_sum;
    *n = &s->recall_n;
}

struct retr_u {
    const struct scb_attn_args *a;
    struct scb_attn_view vw;
    int n_sink, n_recent, top_k;
    struct scb_retr_graph **graphs;   /* (Hkv) or NULL = flat over args' keys */
    int32_t *ids; float *ips;         /* scratch (Tk) */
    struct scb_ctx *ctx;
    double visited, cpu_total;        /* stats: keys scored / keys in the index */
    double *recall_sum; int64_t *recall_n; /* optional: recall vs the exact top-k, accumulated */
    int32_t *exact;                   /* scratch (Tk) for the exact top-k (graph + recall) */
};

static int asc(const void *x, const void *y) { int32_t a = *(const int32_t *)x, b = *(const int32_t *)y; return (a > b) - (a < b); }

/* Retrieved ids of (row i, head h), sorted ascending; returns count. *cpu_end: index range end. */
static int retrieve(struct retr_u *u, int h, int i, int32_t *out, int *g_i_out)
{
    const struct scb_attn_args *a = u->a;
    int Tg = a->Tk_global > 0 ? a->Tk_global : a->Tk;
    int nc = i + a->Tk - a->Tq + 1;
    int g_i = nc < Tg ? nc : Tg;
    *g_i_out = g_i;
    if (g_i < u->n_sink + u->n_recent) return 0;
    int lo = u->n_sink, hi = g_i - u->n_recent;          /* index holds [lo, hi) */
    const float *q = a->q + ((size_t)i * a->Hq + h) * a->D;
    int g = h / u->vw.G, n;
    if (u->graphs) {
        int vis = 0;
        n = scb_retr_graph_search(u->graphs[g], q, u->top_k, hi, out, NULL, &vis, u->ctx);
        u->visited += vis;
        if (n >= 0 && u->recall_sum && u->exact) {     /* exact top-k of the same index range */
            int ne = scb_retr_flat_topk(q, a->k + (size_t)g * u->vw.hs + (size_t)lo * u->vw.ts, u->vw.ts, NULL,
                                        hi - lo, a->D, u->top_k, u->exact, NULL);
            for (int t = 0; t < ne; t++) u->exact[t] += lo;
            if (ne > 0) { *u->recall_sum += scb_retr_recall(out, n, u->exact, ne); ++*u->recall_n; }
        }
    } else {
        n = scb_retr_flat_topk(q, a->k + (size_t)g * u->vw.hs + (size_t)lo * u->vw.ts, u->vw.ts, NULL,
                               hi - lo, a->D, u->top_k, out, NULL);
        for (int t = 0; t < n; t++) out[t] += lo;
        u->visited += hi - lo;
        if (n > 0 && u->recall_sum) { *u->recall_sum += 1.0; ++*u->recall_n; }   /* exact by construction */
    }
    u->cpu_total += hi - lo;
    if (n > 0) qsort(out, (size_t)n, sizeof *out, asc);
    return n;
}

static int retr_keys(void *user, int h, int i, int32_t *idx, int cap)
{
    (void)cap;
    struct retr_u *u = user;
    const struct scb_attn_args *a = u->a;
    int nc = i + a->Tk - a->Tq + 1, g_i;
    int nr = retrieve(u, h, i, u->ids, &g_i);
    if (nr < 0) return nr;
    if (g_i < u->n_sink + u->n_recent) { for (int j = 0; j < nc; j++) idx[j] = j; return nc; }
    int n = 0;
    for (int j = 0; j < u->n_sink; j++) idx[n++] = j;
    for (int t = 0; t < nr; t++) idx[n++] = u->ids[t];
    for (int j = g_i - u->n_recent; j < nc; j++) idx[n++] = j;   /* recent window + temp */
    return n;
}

static int retr_drive(struct scb_attn_args *a, int n_sink, int n_recent, int top_k,
                      struct scb_retr_graph **graphs, struct retr_state *st, struct scb_ctx *ctx)
{
    struct retr_u u = {0};
    int rc = scb_attn_view(a, &u.vw, ctx);
    if (rc) return rc;
    if (n_sink < 0 || n_recent < 1 || top_k < 1)
        return scb_err(ctx, SCB_E_INVAL, "retr_attn: need n_sink >= 0, n_recent >= 1, top_k >= 1");
    u.a = a; u.n_sink = n_sink; u.n_recent = n_recent; u.top_k = top_k; u.graphs = graphs; u.ctx = ctx;
    u.ids = scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1));
    if (st) retr_state_stats(st, &u.recall_sum, &u.recall_n);
    if (st && graphs) u.exact = scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1));
    if (!u.ids || (st && graphs && !u.exact)) {
        scb_free(u.ids); scb_free(u.exact);
        return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    }
    rc = scb_attn_list_ref(a, retr_keys, &u, ctx);
    scb_free(u.ids); scb_free(u.exact);
    return rc;
}

int scb_retr_attn(struct scb_attn_args *a, int n_sink, int n_recent, int top_k, struct scb_ctx *ctx)
{
    return retr_drive(a, n_sink, n_recent, top_k, NULL, NULL, ctx);
}

int scb_retr_attn_row_merged(const struct scb_attn_args *a, int i, int h, int n_sink, int n_recent,
                             int top_k, float *out, float *lse, struct scb_ctx *ctx)
{
    struct retr_u u = {0};
    int rc = scb_attn_view(a, &u.vw, ctx);
    if (rc) return rc;
    u.a = a; u.n_sink = n_sink; u.n_recent = n_recent; u.top_k = top_k; u.ctx = ctx;
    int nc = i + a->Tk - a->Tq + 1, D = a->D, g_i;
    int32_t *ret = scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1));
    int32_t *st = scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1));
    double *scr = scb_malloc(sizeof(double) * ((size_t)a->Tk + D + 1));
    float *o1 = scb_malloc(sizeof(float) * (size_t)D), *o2 = scb_malloc(sizeof(float) * (size_t)D);
    if (!ret || !st || !scr || !o1 || !o2) { rc = scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory"); goto out; }
    int nr = retrieve(&u, h, i, ret, &g_i);
    if (nr < 0) { rc = nr; goto out; }
    int ns = 0;
    if (g_i < n_sink + n_recent) { for (int j = 0; j < nc; j++) st[ns++] = j; }
    else {
        for (int j = 0; j < n_sink; j++) st[ns++] = j;
        for (int j = g_i - n_recent; j < nc; j++) st[ns++] = j;
    }
    const float *q = a->q + ((size_t)i * a->Hq + h) * D;
    const float *k = a->k + (size_t)(h / u.vw.G) * u.vw.hs, *v = a->v + (size_t)(h / u.vw.G) * u.vw.hs;
    float l1, l2;
    scb_attn_row_ref(q, k, v, u.vw.ts, ret, nr, D, u.vw.scale, scr, o1, &l1);   /* "CPU" part */
    scb_attn_row_ref(q, k, v, u.vw.ts, st, ns, D, u.vw.scale, scr, o2, &l2);    /* "GPU" part */
    scb_attn_merge(o1, l1, o2, l2, D, out, lse);
out:
    scb_free(ret); scb_free(st); scb_free(scr); scb_free(o1); scb_free(o2);
    return rc;
}

/* ---- method entry ----------------------------------------------------------------------------
 * State (index=graph): per layer, Hkv graphs over the global tokens that left the resident set.
 * decode_attn slides newly global tokens into the graphs, then searches them. index=flat needs
 * no state: it scans args' keys, exactly SCBench's FlatIndex. */
struct retr_priv { int top_k, n_sink, n_recent, M, ef; char index[SCB_OPT_STR_MAX]; };

static const struct scb_option retr_opts[] = {
    {"top_k", SCB_OPT_INT, offsetof(struct retr_priv, top_k), "4096", 1, 1e9, NULL,
     "keys retrieved per query head per step"},
    {"n_sink", SCB_OPT_INT, offsetof(struct retr_priv, n_sink), "128", 0, 1e9, NULL,
     "first tokens always resident"},
    {"n_recent", SCB_OPT_INT, offsetof(struct retr_priv, n_recent), "512", 1, 1e9, NULL,
     "most recent global tokens always resident"},
    {"index", SCB_OPT_STRING, offsetof(struct retr_priv, index), "flat", 1, 0, "flat|graph",
     "flat: exact inner-product scan (SCBench); graph: query-guided graph index (paper, beyond SCBench)"},
    {"M", SCB_OPT_INT, offsetof(struct retr_priv, M), "16", 1, 4096, NULL,
     "graph: exact neighbours per training query used to link keys"},
    {"ef", SCB_OPT_INT, offsetof(struct retr_priv, ef), "128", 1, 1e9, NULL,
     "graph: search beam width (raised to top_k when smaller)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int retr_is_graph(const struct scb_method *m)
{
    return !strcmp(((const struct retr_priv *)m->priv)->index, "graph");
}

static void retr_free_layer(struct scb_method *m, struct retr_state *s, int l)
{
    for (int g = 0; g < m->mi.Hkv; g++) {
        scb_retr_graph_destroy(s->g[(size_t)l * m->mi.Hkv + g]);
        s->g[(size_t)l * m->mi.Hkv + g] = NULL;
    }
    s->cpu_end[l] = 0;
}

static int retr_init(struct scb_method *m, struct scb_ctx *ctx)
{
    struct retr_state *s = scb_calloc(1, sizeof *s);
    if (s && !retr_is_graph(m)) { m->state = s; return SCB_OK; }
    if (s) s->g = scb_calloc((size_t)m->mi.L * m->mi.Hkv, sizeof *s->g);
    if (s && s->g) s->cpu_end = scb_calloc((size_t)m->mi.L, sizeof(int));
    if (!s || !s->g || !s->cpu_end) {
        if (s) { scb_free(s->g); scb_free(s); }
        return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
    }
    m->state = s;
    return SCB_OK;
}

static void retr_fini(struct scb_method *m)
{
    struct retr_state *s = m->state;
    if (!s) return;
    for (int l = 0; s->g && l < m->mi.L; l++) retr_free_layer(m, s, l);
    scb_free(s->g); scb_free(s->cpu_end); scb_free(s);
    m->state = NULL;
}

static int retr_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                              struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    const struct retr_priv *p = m->priv;
    int rc = scb_kv_keep_init(keep, a->Hkv, 1, a->N, ctx);
    if (rc) return rc;
    scb_kv_keep_all(keep);              /* everything is kept, partly in the index */
    struct retr_state *s = m->state;
    if (!s || !s->g) return SCB_OK;
    if (a->layer < 0 || a->layer >= m->mi.L) return scb_err(ctx, SCB_E_INVAL, "retr_attn: bad layer %d", a->layer);
    retr_free_layer(m, s, a->layer);
    int lo = p->n_sink, hi = a->N - p->n_recent;
    if (hi < lo) hi = lo;                /* too short: nothing in the index yet */
    int G = a->Hq / a->Hkv;
    struct scb_retr_graph_params gp = {p->M, 32, p->ef, 4};
    for (int g = 0; g < a->Hkv; g++) {
        /* training queries: the given prefill queries of the G heads of the group */
        float *tq = scb_malloc(sizeof(float) * (size_t)(a->Nq > 0 ? a->Nq : 1) * G * a->D);
        if (!tq) return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory");
        for (int r = 0; r < a->Nq; r++)
            for (int j = 0; j < G; j++)
                memcpy(tq + ((size_t)r * G + j) * a->D, a->q + ((size_t)r * a->Hq + g * G + j) * a->D,
                       sizeof(float) * a->D);
        int32_t *ids = scb_malloc(sizeof(int32_t) * (size_t)(hi - lo + 1));
        if (!ids) { scb_free(tq); return scb_err(ctx, SCB_E_NOMEM, "retr_attn: out of memory"); }
        for (int t = lo; t < hi; t++) ids[t - lo] = t;
        rc = scb_retr_graph_build(&s->g[(size_t)a->layer * a->Hkv + g], a->k + ((size_t)lo * a->Hkv + g) * a->D,
                                  (size_t)a->Hkv * a->D, ids, hi - lo, a->D, tq, (size_t)a->D, a->Nq * G, &gp, ctx);
        scb_free(tq); scb_free(ids);
        if (rc) return rc;
    }
    s->cpu_end[a->layer] = hi;
    return SCB_OK;
}

static int retr_decode(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    const struct retr_priv *p = m->priv;
    struct retr_state *s = m->state;
    if (!s || !s->g) return retr_drive(a, p->n_sink, p->n_recent, p->top_k, NULL, s, ctx);
    struct scb_attn_view vw;
    int rc = scb_attn_view(a, &vw, ctx);
    if (rc) return rc;
    if (a->layer < 0 || a->layer >= m->mi.L || a->Hkv != m->mi.Hkv)
        return scb_err(ctx, SCB_E_INVAL, "retr_attn: layer %d / %d KV heads outside the model", a->layer, a->Hkv);
    struct scb_retr_graph **gs = s->g + (size_t)a->layer * a->Hkv;
    if (!gs[0]) return retr_drive(a, p->n_sink, p->n_recent, p->top_k, NULL, s, ctx);
    int Tg = a->Tk_global > 0 ? a->Tk_global : a->Tk;
    for (int t = s->cpu_end[a->layer]; t < Tg - p->n_recent; t++) {   /* slide into the index */
        if (t < p->n_sink) continue;
        for (int g = 0; g < a->Hkv; g++) {
            rc = scb_retr_graph_add(gs[g], a->k + (size_t)t * vw.ts + (size_t)g * vw.hs, t, ctx);
            if (rc) return rc;
        }
        s->cpu_end[a->layer] = t + 1;
    }
    return retr_drive(a, p->n_sink, p->n_recent, p->top_k, gs, s, ctx);
}

static void retr_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct retr_priv *p = m->priv;
    const struct scb_model_info *mi = cq->mi;
    scb_method_cost_dense(cq, out);
    int64_t res = cq->N < p->n_sink + p->n_recent ? cq->T : p->n_sink + p->n_recent + (cq->T - cq->N);
    int64_t cpu = cq->T - res;
    int64_t row = (int64_t)mi->D * cq->elt_bytes;
    out->kv_bytes_device = 2 * (int64_t)mi->L * mi->Hkv * res * row;
    /* CPU keys are fp32 in the index (as papyfaiss), values in the model dtype */
    out->kv_bytes = out->kv_bytes_device + (int64_t)mi->L * mi->Hkv * cpu * mi->D * (4 + cq->elt_bytes);
    int64_t k = p->top_k < cpu ? p->top_k : cpu;
    /* per step: resident K/V + (flat) every CPU key scanned once per query head + top_k values */
    out->read_bytes_step = out->kv_bytes_device +
        (int64_t)mi->L * mi->Hq * (cpu * mi->D * 4 + k * row);
}

const struct scb_method_ops scb_method_retr_attn = {
    .abi = SCB_METHOD_ABI, .name = "retr_attn", .stage = SCB_STAGE_LOADING,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_SPARSE_DECODE | SCB_CAP_RETRIEVAL,
    .summary = "RetrievalAttention: 128 sink + 512 recent resident, top-4096 keys per step from a CPU index",
    .scbench_name = "dense;retr_attn",
    .priv_size = sizeof(struct retr_priv), .options = retr_opts,
    .init = retr_init, .kv_after_prefill = retr_after_prefill, .decode_attn = retr_decode,
    .cost = retr_cost, .fini = retr_fini,
};

int scb_retr_attn_recall(const struct scb_method *m, double *recall)
{
    const struct retr_state *s = m && m->ops == &scb_method_retr_attn ? m->state : NULL;
    if (!s || !s->recall_n) { *recall = -1.0; return 0; }
    *recall = s->recall_sum / (double)s->recall_n;
    return 1;
}

void scb_retr_attn_recall_reset(struct scb_method *m)
{
    struct retr_state *s = m && m->ops == &scb_method_retr_attn ? m->state : NULL;
    if (s) { s->recall_sum = 0.0; s->recall_n = 0; }
}
