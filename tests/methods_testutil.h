/* methods_testutil.h — shared helpers of the method tests: the seed (SCB_TEST_SEED overrides
 * the default, always printed), random tensors (never all zeros), an attention-args builder,
 * and an independent naive masked attention (plain double loops over a byte mask) that the
 * reference kernels are checked against. Header-only (static functions) for the test programs. */
#ifndef SCB_TESTS_METHODS_TESTUTIL_H
#define SCB_TESTS_METHODS_TESTUTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/method.h"

static uint64_t tu_seed(const char *test)
{
    const char *e = getenv("SCB_TEST_SEED");
    uint64_t s = e && *e ? strtoull(e, NULL, 0) : 20250214ULL;
    printf("# %s: seed %llu (set SCB_TEST_SEED to change)\n", test, (unsigned long long)s);
    fflush(stdout);
    return s;
}

__attribute__((unused)) static float *tu_randn(struct scb_rng *r, size_t n, float sd)
{
    float *x = scb_malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = sd * scb_rng_normal(r);
    return x;
}

struct tu_qkv { float *q, *k, *v, *o, *o2, *lse; struct scb_attn_args a; };

/* q (Tq, Hq, D), k/v (Tk, Hkv, D) random, outputs NaN-filled. */
__attribute__((unused)) static void tu_qkv_make(struct tu_qkv *t, struct scb_rng *r, int Tq, int Tk, int Hq, int Hkv, int D)
{
    memset(t, 0, sizeof *t);
    t->q = tu_randn(r, (size_t)Tq * Hq * D, 1.0f);
    t->k = tu_randn(r, (size_t)Tk * Hkv * D, 1.0f);
    t->v = tu_randn(r, (size_t)Tk * Hkv * D, 1.0f);
    t->o = scb_malloc(sizeof(float) * (size_t)(Tq ? Tq : 1) * Hq * D);
    t->o2 = scb_malloc(sizeof(float) * (size_t)(Tq ? Tq : 1) * Hq * D);
    t->lse = scb_malloc(sizeof(float) * (size_t)(Tq ? Tq : 1) * Hq);
    for (size_t i = 0; i < (size_t)Tq * Hq * D; i++) t->o[i] = t->o2[i] = NAN;
    t->a.q = t->q; t->a.k = t->k; t->a.v = t->v; t->a.out = t->o;
    t->a.Tq = Tq; t->a.Tk = Tk; t->a.Hq = Hq; t->a.Hkv = Hkv; t->a.D = D;
}

__attribute__((unused)) static void tu_qkv_free(struct tu_qkv *t)
{
    scb_free(t->q); scb_free(t->k); scb_free(t->v); scb_free(t->o); scb_free(t->o2); scb_free(t->lse);
}

/* Naive attention, query head h uses KV head h*Hkv/Hq, mask (Hq, Tq, Tk) or (Tq, Tk) when
 * per_head == 0; NO causal rule added (the mask must contain it). out (Tq, Hq, D). */
__attribute__((unused)) static void tu_naive(const struct scb_attn_args *a, const uint8_t *mask, int per_head, float *out)
{
    int G = a->Hq / a->Hkv;
    double sc = 1.0 / sqrt((double)a->D);
    double *s = malloc(sizeof(double) * (size_t)a->Tk);
    for (int h = 0; h < a->Hq; h++)
        for (int i = 0; i < a->Tq; i++) {
            const uint8_t *m = mask + ((per_head ? (size_t)h * a->Tq : 0) + i) * (size_t)a->Tk;
            const float *q = a->q + ((size_t)i * a->Hq + h) * a->D;
            double mx = -INFINITY, l = 0;
            for (int j = 0; j < a->Tk; j++) {
                if (!m[j]) continue;
                const float *k = a->k + ((size_t)j * a->Hkv + h / G) * a->D;
                double d = 0;
                for (int e = 0; e < a->D; e++) d += (double)q[e] * k[e];
                s[j] = d * sc;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < a->Tk; j++) if (m[j]) l += exp(s[j] - mx);
            for (int e = 0; e < a->D; e++) {
                double acc = 0;
                for (int j = 0; j < a->Tk; j++)
                    if (m[j]) acc += exp(s[j] - mx) / l * a->v[((size_t)j * a->Hkv + h / G) * a->D + e];
                out[((size_t)i * a->Hq + h) * a->D + e] = (float)acc;
            }
        }
    free(s);
}

__attribute__((unused)) static double tu_maxdiff(const float *x, const float *y, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)x[i] - (double)y[i]);
        if (!(d <= m)) m = d;   /* NaN propagates as a huge value */
        if (isnan(d)) return INFINITY;
    }
    return m;
}

#endif
