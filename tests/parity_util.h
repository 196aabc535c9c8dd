/* parity_util.h — the harness shared by the CUDA parity tests (tests/parity_cuda*.c, each its own
 * executable): the kernel context and error context every test launches on, pass/fail counters,
 * a seeded splitmix64 generator (uniform and normal draws: the seed is printed by each test),
 * fatal-error helpers for setup failures (a launch that fails where a test expects success ends
 * the program with the CUDA message), host and device allocation, and NaN poisoning of device
 * buffers so a kernel that leaves an output element unwritten is caught, and parity_start: the
 * command line every test shares. Header-only, static: include it once per test program. */
#ifndef SCB_TESTS_PARITY_UTIL_H
#define SCB_TESTS_PARITY_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/kernels_cuda.h"
#include "kernels/status.h"

#define BF16_NAN 0x7fc0u
#define F32_NAN 0x7fc00000u

static struct scb_cuda_ctx *g_cc;     /* the context every launch uses */
static struct scb_ctx g_err;          /* detail of the last failure */
static int g_fail, g_pass;            /* checks failed / passed */
static uint64_t g_rng;                /* splitmix64 state */
static uint64_t g_seed;               /* the seed the run started from (printed at the end) */

static inline uint64_t rng_next(void)
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double rng_unit(void) { return (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0); }
static inline float rng_uniform(float lo, float hi) { return lo + (hi - lo) * (float)rng_unit(); }
static inline float rng_normal(void)
{
    double u1 = rng_unit(), u2 = rng_unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A setup step failed: print what and the CUDA detail, end the test program. */
static inline void die(const char *what)
{
    fprintf(stderr, "FATAL: %s: %s\n", what, scb_errmsg(&g_err));
    exit(1);
}
#define CK(expr) do { if ((expr) < 0) die(#expr); } while (0)

static inline void *host_alloc(size_t n)
{
    void *p = scb_malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "FATAL: out of host memory (%zu bytes)\n", n); exit(1); }
    return p;
}
static inline void *dev_alloc(size_t n)
{
    void *p = NULL;
    CK(scb_cuda_malloc(g_cc, &p, n ? n : 16, &g_err));
    return p;
}
/* Fill n bytes of device memory with 0xff (NaN as bf16 and fp32, -1 as int32). */
static inline void poison(void *d, size_t n)
{
    unsigned char *h = host_alloc(n);
    memset(h, 0xff, n);
    CK(scb_cuda_upload(g_cc, d, h, n, &g_err));
    scb_free(h);
}

/* The start every parity test shares: --seed N (or SCB_SEED=N; default: the time), one optional
 * boolean flag (`flag`, e.g. "--bench", may be NULL; *flag_set = 1 when given), --help (prints
 * "usage: NAME [--seed N] [FLAG]   (or SCB_SEED=N)" then `help`); skips without a GPU; seeds g_rng
 * and prints the seed; creates g_cc and prints the device. Returns -1 to go on, else the exit
 * status (0 after --help, 2 on a bad argument, 77 without a device). */
/* Downloads a decode attention's result (bf16 out (H, D), fp32 lse (H)) and compares it with
 * the reference (ro (H, D), rl (H), fp32): *rel = relative L2 error of out, *lmax = largest
 * |lse - rl|; returns 0 when a value came back non-finite (NaN pre-fill left or produced). */
static inline int compare_out_lse(const uint16_t *dout, const float *dlse, const float *ro, const float *rl,
                                  int H, int D, double *rel, double *lmax)
{
    uint16_t *ho = host_alloc((size_t)H * D * 2);
    float *gl = host_alloc((size_t)H * 4);
    CK(scb_cuda_download(g_cc, ho, dout, (size_t)H * D * 2, &g_err));
    CK(scb_cuda_download(g_cc, gl, dlse, (size_t)H * 4, &g_err));
    double num = 0, den = 0;
    int finite = 1;
    *lmax = 0;
    for (size_t i = 0; i < (size_t)H * D; i++) {
        const double g = scb_bf16_to_f32(ho[i]), r = ro[i];
        if (!isfinite(g)) finite = 0;
        num += (g - r) * (g - r);
        den += r * r;
    }
    for (int h = 0; h < H; h++) {
        if (!isfinite(gl[h])) finite = 0;
        if (fabs((double)gl[h] - rl[h]) > *lmax) *lmax = fabs((double)gl[h] - rl[h]);
    }
    *rel = den > 0 ? sqrt(num / den) : sqrt(num);
    scb_free(ho);
    scb_free(gl);
    return finite;
}

static inline int parity_start(const char *name, int argc, char **argv, const char *help, const char *flag,
                               int *flag_set)
{
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("SCB_SEED");
    char why[256] = "", desc[512];
    int ndev = 0;
    if (env && *env) seed = strtoull(env, NULL, 10);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (flag && !strcmp(argv[i], flag)) {
            *flag_set = 1;
        } else if (!strcmp(argv[i], "--help")) {
            printf("usage: %s [--seed N]%s%s%s   (or SCB_SEED=N)\n%s", name, flag ? " [" : "", flag ? flag : "",
                   flag ? "]" : "", help);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", name, argv[i]);
            return 2;
        }
    }
    scb_cuda_device_count(&ndev, why, sizeof why);
    if (ndev <= 0) {
        printf("%s: SKIP: no CUDA device (%s)\n", name, why);
        return 77;
    }
    g_rng = g_seed = seed;
    printf("%s: seed %llu (reproduce with --seed %llu)\n", name, (unsigned long long)seed, (unsigned long long)seed);
    CK(scb_cuda_ctx_create(&g_cc, 0, 0, &g_err));
    scb_cuda_describe(g_cc, desc, sizeof desc);
    printf("device: %s\n", desc);
    return -1;
}

#endif
