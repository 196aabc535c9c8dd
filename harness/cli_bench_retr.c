/* cli_bench_retr.c — `scbench bench retr-scan`: the host flat search of RetrievalAttention's
 * device binding (harness/method_dev_retr_attn.c) on random keys of a model's shape, timed per
 * layer-step (one decode token of one layer: every query head scans its KV head's index range
 * [n_sink, T - n_recent), then takes its top-k set):
 *   old   the previous scan: fp32 key-major copy, scb_retr_flat_scores (scalar fp32 fused
 *         multiply-add chains, 4 queries x 2 keys per pass), 4 slices per KV head on the pool;
 *   new   scb_retr_step_run's scan over the key-blocked bf16 store, on every path this CPU has
 *         (scalar, avx2fma, avx512fma), each one's scores checked bit-identical to old's;
 *   select the top-k set selection: old (quickselect, scb_retr_topk_set_qsel) and new (radix
 *         select, scb_retr_topk_set), whose id sets are checked equal;
 *   fused the fused step (SCB_RETR_STEP_FUSED, what the binding runs): scan + digits +
 *         histograms, a barrier, the digit selection, in one dispatch; its scores and id sets
 *         checked equal to the two-phase step's; timed with the pool's workers sleeping between
 *         steps (spin 0) and spinning (--spin-us, default 1000, the binding's default), and
 *         spinning with the histograms counted from the digits at selection (hist_in_select),
 *         each with its phase split (scan, select);
 * and the host's read bandwidth, measured in the same run (each pool thread sums its part of a
 * buffer larger than the caches, best of 3), with the floor of a layer-step: the key bytes the
 * scan reads once (bf16 store; fp32 for the old copy) at that bandwidth. It also checks that the
 * new scores are bit-identical to the old (memcmp) and prints the result. Measures and prints. */
#include "harness/cli_bench_retr.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness/cli.h"
#include "kernels/alloc.h"
#include "kernels/cpu/pool.h"
#include "kernels/util.h"
#include "methods/retr_attn.h"
#include "methods/retr_scan.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define BR_X86 1
#else
#define BR_X86 0
#endif

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench bench retr-scan [--tokens N] [--hq H] [--hkv H] [--d D] [--threads N]\n"
        "                               [--top-k K] [--n-sink S] [--n-recent R] [--reps N] [--bw-mib M]\n"
        "                               [--seed S] [--spin-us U]\n"
        "\n"
        "Host flat search of retr_attn on the CUDA backend, per layer-step (one token, one layer):\n"
        "the old scan (fp32 key-major, scalar), the new key-blocked bf16 scan on each path this CPU\n"
        "supports (scalar, avx2fma, avx512fma; fp32 fused multiply-add scores as SCBench's faiss flat\n"
        "index, each path's bits checked against the old scan's), the top-k selection, and the fused step (scan + histograms\n"
        "+ selection in one dispatch; workers sleeping, then spinning --spin-us between steps, default\n"
        "1000), in ms (median of --reps, default 7, after a warm-up); the host read bandwidth of --threads threads over a --bw-mib buffer\n"
        "(default 1024 MiB) and the floor: key bytes read once / bandwidth. Defaults: a Llama-3-8B\n"
        "layer at 32K (--tokens 32768 --hq 32 --hkv 8 --d 128 --top-k 4096 --n-sink 128\n"
        "--n-recent 512), --threads = online CPUs capped at 16 (what the binding uses).\n");
}

/* ---- read bandwidth ------------------------------------------------------------------------ */
struct bw_job { const uint64_t *buf; size_t n; uint64_t sink[64 * 8]; };

#if BR_X86
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    uint64_t o[4];
    _mm256_storeu_si256((__m256i *)o, _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    uint64_t s = o[0] + o[1] + o[2] + o[3];
    for (; i < n; i++) s += p[i];
    return s;
}
#endif

static uint64_t sum_plain(const uint64_t *p, size_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
    for (; i < n; i++) a += p[i];
    return a + b + c + d;
}

static void bw_fn(void *arg, size_t b, size_t e, int tid)
{
    struct bw_job *j = arg;
    for (size_t it = b; it < e; it++) {
        const size_t lo = j->n * it / 64, hi = j->n * (it + 1) / 64;
        uint64_t s;
#if BR_X86
        if (__builtin_cpu_supports("avx2")) s = sum_avx2(j->buf + lo, hi - lo);
        else
#endif
            s = sum_plain(j->buf + lo, hi - lo);
        j->sink[(size_t)tid * 8] += s;
    }
}

/* GB/s (1e9 bytes) of reading mib MiB with the pool; best of 3 after a warm-up. */
static double read_gbps(struct scb_pool *pool, size_t mib, struct scb_ctx *ctx, int *rc);

double scb_bench_host_read_gbps(int threads, size_t mib, struct scb_ctx *ctx, int *rc)
{
    struct scb_pool *pool = NULL;
    *rc = scb_pool_create(&pool, threads, ctx);
    if (*rc < 0) return 0;
    const double g = read_gbps(pool, mib, ctx, rc);
    scb_pool_destroy(pool);
    return g;
}

static double read_gbps(struct scb_pool *pool, size_t mib, struct scb_ctx *ctx, int *rc)
{
    struct bw_job *j = scb_calloc(1, sizeof *j);
    const size_t n = mib * 1048576 / sizeof(uint64_t);
    uint64_t *buf = scb_malloc(n * sizeof(uint64_t));   /* (n) */
    double best = 0;
    if (!j || !buf) { *rc = scb_err(ctx, SCB_E_NOMEM, "bench retr-scan: out of memory for the bandwidth buffer"); goto out; }
    for (size_t i = 0; i < n; i++) buf[i] = i * 0x9E3779B97F4A7C15ull;
    j->buf = buf; j->n = n;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = scb_now_ms();
        scb_pool_run(pool, bw_fn, j, 64);
        double ms = scb_now_ms() - t0;
        double g = (double)(n * sizeof(uint64_t)) / (ms * 1e6);
        if (rep && g > best) best = g;
    }
out:
    scb_free(buf); scb_free(j);
    return best;
}

/* ---- the previous scan (fp32 key-major, 4 slices per KV head) ------------------------------ */
struct old_job { const float *q, *hk; float *scores; int Hq, Hkv, D, T, lo, hi; size_t ss; };

static void old_score(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    const struct old_job *o = arg;
    const int G = o->Hq / o->Hkv, n = o->hi - o->lo;
    for (size_t it = b; it < e; it++) {
        const int g = (int)(it / 4), sl = (int)(it % 4);
        const int t0 = (int)((int64_t)n * sl / 4), t1 = (int)((int64_t)n * (sl + 1) / 4);
        scb_retr_flat_scores(o->q + (size_t)g * G * o->D, (size_t)o->D, G,
                             o->hk + ((size_t)g * o->T + o->lo + t0) * o->D, (size_t)o->D, t1 - t0, o->D,
                             o->scores + (size_t)g * G * o->ss + t0, o->ss);
    }
}

struct old_sel { const float *scores; int n, lo, k, stride; size_t ss, selb; unsigned char *work; int32_t *idx; };

static void old_select(void *arg, size_t b, size_t e, int tid)
{
    const struct old_sel *o = arg;
    for (size_t h = b; h < e; h++)
        scb_retr_topk_set_qsel(o->scores + h * o->ss, o->n, o->lo, o->k, o->idx + h * (size_t)o->stride,
                               o->work + (size_t)tid * o->selb);
}

static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int scb_bench_retr_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"tokens", required_argument, 0, 'n'}, {"hq", required_argument, 0, 'q'}, {"hkv", required_argument, 0, 'k'},
        {"d", required_argument, 0, 'd'}, {"threads", required_argument, 0, 't'}, {"top-k", required_argument, 0, 'K'},
        {"n-sink", required_argument, 0, 's'}, {"n-recent", required_argument, 0, 'r'},
        {"reps", required_argument, 0, 'R'}, {"bw-mib", required_argument, 0, 'b'}, {"seed", required_argument, 0, 'S'},
        {"spin-us", required_argument, 0, 'u'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "bench retr-scan";
    long T = 32768, Hq = 32, Hkv = 8, D = 128, threads = 0, K = 4096, sink = 128, recent = 512, reps = 7, bw_mib = 1024,
         seed = 1, spin_us = 1000;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'n': if (scb_cli_parse_long(cmd, "--tokens", optarg, 1, 1 << 24, &T)) return 2; break;
        case 'q': if (scb_cli_parse_long(cmd, "--hq", optarg, 1, 1024, &Hq)) return 2; break;
        case 'k': if (scb_cli_parse_long(cmd, "--hkv", optarg, 1, 1024, &Hkv)) return 2; break;
        case 'd': if (scb_cli_parse_long(cmd, "--d", optarg, 1, SCB_RETR_SCAN_DMAX, &D)) return 2; break;
        case 't': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'K': if (scb_cli_parse_long(cmd, "--top-k", optarg, 1, 1 << 24, &K)) return 2; break;
        case 's': if (scb_cli_parse_long(cmd, "--n-sink", optarg, 0, 1 << 24, &sink)) return 2; break;
        case 'r': if (scb_cli_parse_long(cmd, "--n-recent", optarg, 1, 1 << 24, &recent)) return 2; break;
        case 'R': if (scb_cli_parse_long(cmd, "--reps", optarg, 1, 1000, &reps)) return 2; break;
        case 'b': if (scb_cli_parse_long(cmd, "--bw-mib", optarg, 1, 1 << 16, &bw_mib)) return 2; break;
        case 'S': if (scb_cli_parse_long(cmd, "--seed", optarg, 0, 1L << 40, &seed)) return 2; break;
        case 'u': if (scb_cli_parse_long(cmd, "--spin-us", optarg, 0, 1000000, &spin_us)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (Hq % Hkv) return scb_cli_usage_error(cmd, "--hq %ld is not a multiple of --hkv %ld", Hq, Hkv);
    if (sink + recent >= T)
        return scb_cli_usage_error(cmd, "--tokens %ld leaves no index: need more than --n-sink + --n-recent = %ld", T,
                                   sink + recent);
    if (threads == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nc < 1 ? 1 : nc > 16 ? 16 : nc;
    }

    struct scb_ctx ctx = {0};
    struct scb_pool *pool = NULL;
    int rc = SCB_OK, status = 0;
    const int lo = (int)sink, hi = (int)(T - recent), n = hi - lo, G = (int)(Hq / Hkv);
    const int kk = K < n ? (int)K : n;
    const size_t kbh = scb_retr_kb_elems((size_t)T, (int)D);
    uint16_t *kb = scb_calloc((size_t)Hkv * kbh, sizeof(uint16_t));          /* (Hkv, kbh) */
    float *hk = scb_malloc(sizeof(float) * (size_t)Hkv * T * D);             /* (Hkv, T, D) */
    float *q = scb_malloc(sizeof(float) * (size_t)Hq * D);                   /* (Hq, D) */
    uint16_t *row = scb_malloc(sizeof(uint16_t) * (size_t)D);                /* (D) */
    float *s_old = scb_malloc(sizeof(float) * (size_t)Hq * n);               /* (Hq, n) */
    float *s_new = scb_malloc(sizeof(float) * (size_t)Hq * n);               /* (Hq, n) */
    int32_t *idx = scb_malloc(sizeof(int32_t) * (size_t)Hq * kk), *nidx = scb_malloc(sizeof(int32_t) * (size_t)Hq);
    unsigned char *sel = NULL;
    int32_t *idx_old = NULL;
    double *tm = scb_malloc(sizeof(double) * (size_t)reps);
    if (!kb || !hk || !q || !row || !s_old || !s_new || !idx || !nidx || !tm) {
        rc = scb_err(&ctx, SCB_E_NOMEM, "bench retr-scan: out of memory");
        goto out;
    }
    SCB_TRY(scb_pool_create(&pool, (int)threads, &ctx));
    const size_t selb = scb_retr_topk_set_work_bytes(n);
    sel = scb_malloc(selb * (size_t)threads);
    if (!sel) { rc = scb_err(&ctx, SCB_E_NOMEM, "bench retr-scan: out of memory"); goto out; }
    struct scb_rng r;
    scb_rng_seed(&r, (uint64_t)seed);
    for (long g = 0; g < Hkv; g++)
        for (long t = 0; t < T; t++) {
            for (long d = 0; d < D; d++) {
                float v = scb_rng_normal(&r);
                uint32_t u;
                memcpy(&u, &v, sizeof u);
                row[d] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);   /* bf16, nearest even */
                u = (uint32_t)row[d] << 16;
                memcpy(&hk[((size_t)g * T + t) * D + d], &u, sizeof(float));
            }
            scb_retr_kb_put(kb + (size_t)g * kbh, (int)D, (size_t)t, row);
        }
    for (long i = 0; i < Hq * D; i++) q[i] = scb_rng_normal(&r);

    const double key_old = (double)Hkv * n * D * sizeof(float), key_new = (double)Hkv * n * D * sizeof(uint16_t);
    printf("shape        T=%ld Hq=%ld Hkv=%ld D=%ld index [%d, %d) = %d keys per KV head, top_k %d, seed %ld\n", T, Hq,
           Hkv, D, lo, hi, n, kk, seed);
    printf("threads      %ld (online CPUs %ld)\n", threads, sysconf(_SC_NPROCESSORS_ONLN));
    const double gbps = read_gbps(pool, (size_t)bw_mib, &ctx, &rc);
    if (rc < 0) goto out;
    printf("bandwidth    %.2f GB/s host read, %ld threads over %ld MiB (best of 3)\n", gbps, threads, bw_mib);
    printf("key bytes    new (bf16 store) %.2f MiB per layer-step, old (fp32 copy) %.2f MiB\n", key_new / 1048576.0,
           key_old / 1048576.0);
    const double floor_new = key_new / (gbps * 1e6), floor_old = key_old / (gbps * 1e6);
    printf("floor        new %.3f ms per layer-step, old %.3f ms (key bytes / bandwidth)\n", floor_new, floor_old);

    /* old scan */
    struct old_job oj = {q, hk, s_old, (int)Hq, (int)Hkv, (int)D, (int)T, lo, hi, (size_t)n};
    for (long i = -1; i < reps; i++) {
        double t0 = scb_now_ms();
        scb_pool_run_sized(pool, old_score, &oj, (size_t)Hkv * 4, (size_t)n * D * G / 4);
        if (i >= 0) tm[i] = scb_now_ms() - t0;
    }
    const double ms_old = median(tm, (int)reps);
    printf("old scan     %.3f ms per layer-step  (%.2f GB/s of fp32 keys)\n", ms_old, key_old / (ms_old * 1e6));
    struct scb_retr_step st = {
        .q = q, .Hq = (int)Hq, .Hkv = (int)Hkv, .D = (int)D, .kb = kb, .kb_head = kbh, .lo = lo, .hi = hi,
        .top_k = (int)K, .scores = s_new, .ss = (size_t)n, .sel_work = sel, .sel_bytes = selb, .idx = idx,
        .idx_stride = kk, .n_idx = nidx,
    };
    const enum scb_retr_isa auto_isa = scb_retr_scan_isa();
    double ms_best = 0;
    for (int isa = SCB_RETR_ISA_SCALAR; isa < SCB_RETR_ISA_COUNT; isa++) {
        if (scb_retr_scan_force((enum scb_retr_isa)isa) != SCB_OK) {
            printf("new scan     %-9s not supported by this CPU\n", scb_retr_scan_isa_name((enum scb_retr_isa)isa));
            continue;
        }
        memset(s_new, 0, sizeof(float) * (size_t)Hq * n);
        for (long i = -1; i < reps; i++) {
            double t0 = scb_now_ms();
            SCB_TRY(scb_retr_step_run(pool, &st, 1, &ctx));
            if (i >= 0) tm[i] = scb_now_ms() - t0;
        }
        const double ms = median(tm, (int)reps);
        const int same = !memcmp(s_new, s_old, sizeof(float) * (size_t)Hq * n);
        printf("new scan     %-9s %.3f ms per layer-step  (%.2f GB/s of bf16 keys, %.2fx old, %.2fx floor)  scores %s\n",
               scb_retr_scan_isa_name((enum scb_retr_isa)isa), ms, key_new / (ms * 1e6), ms_old / ms, ms / floor_new,
               same ? "bit-identical to old" : "DIFFER from old");
        if (!same) { rc = scb_err(&ctx, SCB_E_INVAL, "new scan (%s) scores differ from the old scan's",
                                  scb_retr_scan_isa_name((enum scb_retr_isa)isa)); goto out; }
        if (isa == (int)auto_isa) ms_best = ms;
    }
    scb_retr_scan_force(auto_isa);
    for (long i = -1; i < reps; i++) {
        double t0 = scb_now_ms();
        SCB_TRY(scb_retr_step_run(pool, &st, 2, &ctx));
        if (i >= 0) tm[i] = scb_now_ms() - t0;
    }
    const double ms_sel = median(tm, (int)reps);
    idx_old = scb_malloc(sizeof(int32_t) * (size_t)Hq * kk);
    if (!idx_old) { rc = scb_err(&ctx, SCB_E_NOMEM, "bench retr-scan: out of memory"); goto out; }
    struct old_sel os = {s_new, n, lo, (int)K, kk, (size_t)n, selb, sel, idx_old};
    for (long i = -1; i < reps; i++) {
        double t0 = scb_now_ms();
        scb_pool_run_sized(pool, old_select, &os, (size_t)Hq, (size_t)n * 16);
        if (i >= 0) tm[i] = scb_now_ms() - t0;
    }
    const double ms_sel_old = median(tm, (int)reps);
    const int same_sel = !memcmp(idx, idx_old, sizeof(int32_t) * (size_t)Hq * kk);
    printf("select       old %.3f ms, new %.3f ms per layer-step (%.2fx; top-%d set of %d scores, %ld query heads)  "
           "id sets %s\n", ms_sel_old, ms_sel, ms_sel_old / ms_sel, kk, n, Hq, same_sel ? "identical" : "DIFFER");
    if (!same_sel) { rc = scb_err(&ctx, SCB_E_INVAL, "new selection differs from the old one"); goto out; }
    /* the fused step, workers sleeping between steps (spin 0), then spinning */
    int32_t *idx2 = scb_malloc(sizeof(int32_t) * (size_t)Hq * kk), *nidx2 = scb_malloc(sizeof(int32_t) * (size_t)Hq);
    float *s_two = scb_malloc(sizeof(float) * (size_t)Hq * n);              /* (Hq, n) */
    uint16_t *dig = scb_malloc(sizeof(uint16_t) * (size_t)Hq * n);          /* (Hq, n) */
    const size_t hb = scb_retr_step_hist_bytes((int)threads, (int)Hq);
    unsigned char *hw = scb_malloc(hb);
    double ms_fused[3] = {0, 0, 0}, ph[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    if (!idx2 || !nidx2 || !s_two || !dig || !hw) {
        scb_free(idx2); scb_free(nidx2); scb_free(s_two); scb_free(dig); scb_free(hw);
        rc = scb_err(&ctx, SCB_E_NOMEM, "bench retr-scan: out of memory");
        goto out;
    }
    memcpy(s_two, s_new, sizeof(float) * (size_t)Hq * n);
    memcpy(idx2, idx, sizeof(int32_t) * (size_t)Hq * kk);
    memcpy(nidx2, nidx, sizeof(int32_t) * (size_t)Hq);
    st.dig = dig; st.hist_work = hw; st.hist_bytes = hb;
    int same_fused = 1;
    double *tph = scb_malloc(sizeof(double) * 2 * (size_t)reps);
    /* v 0: workers asleep, histograms in the scan; 1: spinning, in the scan; 2: spinning, counted
     * before the selection (hist_in_select) */
    for (int v = 0; v < 3 && tph; v++) {
        scb_pool_set_spin_us(pool, v ? (int)spin_us : 0);
        st.profile = 1;
        st.hist_in_select = v == 2;
        for (long i = -1; i < reps; i++) {
            memset(s_new, 0, sizeof(float) * (size_t)Hq * n);
            memset(idx, 0xff, sizeof(int32_t) * (size_t)Hq * kk);
            if (!v) usleep(300);                 /* the workers fall asleep, as between layers */
            double t0 = scb_now_ms();
            rc = scb_retr_step_run(pool, &st, SCB_RETR_STEP_FUSED, &ctx);
            if (i >= 0) tm[i] = scb_now_ms() - t0;
            if (rc < 0) break;
            if (i >= 0) { tph[i] = st.prof_ms[0]; tph[reps + i] = st.prof_ms[1]; }
            same_fused &= !memcmp(s_new, s_two, sizeof(float) * (size_t)Hq * n) &&
                          !memcmp(idx, idx2, sizeof(int32_t) * (size_t)Hq * kk) &&
                          !memcmp(nidx, nidx2, sizeof(int32_t) * (size_t)Hq);
        }
        if (rc < 0) break;
        ms_fused[v] = median(tm, (int)reps);
        ph[v][0] = median(tph, (int)reps);
        ph[v][1] = median(tph + reps, (int)reps);
    }
    scb_pool_set_spin_us(pool, 0);
    if (!tph && rc >= 0) rc = scb_err(&ctx, SCB_E_NOMEM, "bench retr-scan: out of memory");
    scb_free(tph); scb_free(idx2); scb_free(nidx2); scb_free(s_two); scb_free(dig); scb_free(hw);
    if (rc < 0) goto out;
    printf("fused        asleep %.3f ms (scan %.3f + select %.3f), spinning %.3f ms (%.3f + %.3f), spinning with "
           "the histograms counted at selection %.3f ms (%.3f + %.3f) per layer-step (--spin-us %ld)  scores and id "
           "sets %s\n", ms_fused[0], ph[0][0], ph[0][1], ms_fused[1], ph[1][0], ph[1][1], ms_fused[2], ph[2][0],
           ph[2][1], spin_us, same_fused ? "identical to the two-phase step" : "DIFFER");
    if (!same_fused) { rc = scb_err(&ctx, SCB_E_INVAL, "the fused step differs from the two-phase step"); goto out; }
    printf("step         old %.3f ms, new (%s) %.3f ms per layer-step: %.2fx faster; floor %.3f ms, new/floor %.2f\n",
           ms_old + ms_sel_old, scb_retr_scan_isa_name(auto_isa), ms_best + ms_sel,
           (ms_old + ms_sel_old) / (ms_best + ms_sel), floor_new, (ms_best + ms_sel) / floor_new);
    printf("fused step   %.3f ms asleep / %.3f ms spinning per layer-step vs two-phase %.3f ms: %.2fx / %.2fx; "
           "fused/floor %.2f / %.2f\n", ms_fused[0], ms_fused[1], ms_best + ms_sel, (ms_best + ms_sel) / ms_fused[0],
           (ms_best + ms_sel) / ms_fused[1], ms_fused[0] / floor_new, ms_fused[1] / floor_new);
    printf("csv,retr_scan,T=%ld,Hq=%ld,Hkv=%ld,D=%ld,threads=%ld,isa=%s,gbps=%.3f,floor_ms=%.4f,old_scan_ms=%.4f,"
           "new_scan_ms=%.4f,old_select_ms=%.4f,new_select_ms=%.4f,fused_ms=%.4f,fused_spin_ms=%.4f,"
           "fused_scan_ms=%.4f,fused_select_ms=%.4f,fused_selhist_ms=%.4f\n", T, Hq, Hkv, D, threads,
           scb_retr_scan_isa_name(auto_isa), gbps, floor_new, ms_old, ms_best, ms_sel_old, ms_sel, ms_fused[0],
           ms_fused[1], ph[1][0], ph[1][1], ms_fused[2]);
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
    scb_pool_destroy(pool);
    scb_free(kb); scb_free(hk); scb_free(q); scb_free(row); scb_free(s_old); scb_free(s_new); scb_free(idx);
    scb_free(nidx); scb_free(sel); scb_free(tm); scb_free(idx_old);
    return status;
}
