/* bleu.c — NLTK-compatible sentence BLEU with smoothing method4 (see bleu.h). N-grams are
 * compared as tuples of interned token ids: both sides are sorted and merged, so the cost is
 * O((H + R) log(H + R)) per order. */
#include "tasks/bleu.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "tasks/unicode_tables.h"

static int toks_push(struct scb_tokens *t, const char *p, size_t n)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 64;
        const char **np = scb_realloc(t->ptr, nc * sizeof *np);
        if (!np) return SCB_E_NOMEM;
        t->ptr = np;
        size_t *nl = scb_realloc(t->len, nc * sizeof *nl);
        if (!nl) return SCB_E_NOMEM;
        t->len = nl;
        t->cap = nc;
    }
    t->ptr[t->n] = p;
    t->len[t->n] = n;
    t->n++;
    return SCB_OK;
}

void scb_tokens_fini(struct scb_tokens *t)
{
    if (!t) return;
    scb_free(t->ptr);
    scb_free(t->len);
    memset(t, 0, sizeof *t);
}

int scb_bleu_split_ws(const char *text, size_t len, struct scb_tokens *toks)
{
    int rc = SCB_OK;
    /* strip, then split on runs of whitespace; after strip no empty token can appear except
     * when the stripped text is empty (Python returns ['']). */
    size_t i = 0, b = 0, e = len;
    while (b < e) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)text + b, e - b, &cp);
        if (!scb_uc_is_space(cp)) break;
        b += (size_t)k;
    }
    /* find the end: last non-space code point */
    size_t last_end = b;
    for (i = b; i < e;) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)text + i, e - i, &cp);
        i += (size_t)k;
        if (!scb_uc_is_space(cp)) last_end = i;
    }
    e = last_end;
    size_t st = b;
    i = b;
    while (i < e) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)text + i, e - i, &cp);
        if (scb_uc_is_space(cp)) {
            SCB_TRY(toks_push(toks, text + st, i - st));
            i += (size_t)k;
            while (i < e) {
                k = scb_utf8_decode((const unsigned char *)text + i, e - i, &cp);
                if (!scb_uc_is_space(cp)) break;
                i += (size_t)k;
            }
            st = i;
        } else {
            i += (size_t)k;
        }
    }
    SCB_TRY(toks_push(toks, text + st, e - st));
out:
    return rc;
}

double scb_fsum(const double *x, size_t n)
{
    /* Shewchuk's non-overlapping partials, final rounding as CPython's math_fsum. */
    double p[64];
    size_t np = 0;
    for (size_t k = 0; k < n; k++) {
        double v = x[k];
        size_t i = 0;
        for (size_t j = 0; j < np; j++) {
            double y = p[j];
            if (fabs(v) < fabs(y)) { double t = v; v = y; y = t; }
            double hi = v + y;
            double lo = y - (hi - v);
            if (lo != 0.0) p[i++] = lo;
            v = hi;
        }
        np = i;
        p[np++] = v;
    }
    double hi = 0.0;
    if (np > 0) {
        size_t m = np;
        hi = p[--m];
        double lo = 0.0;
        while (m > 0) {
            double xv = hi, y = p[--m];
            hi = xv + y;
            double yr = hi - xv;
            lo = y - yr;
            if (lo != 0.0) break;
        }
        if (m > 0 && ((lo < 0.0 && p[m - 1] < 0.0) || (lo > 0.0 && p[m - 1] > 0.0))) {
            double y = lo * 2.0;
            double xv = hi + y;
            double yr = xv - hi;
            if (y == yr) hi = xv;
        }
    }
    return hi;
}

/* token interning by sorting spans */
struct span_ix { const char *p; size_t n; size_t idx; };

static int span_cmp(const void *a, const void *b)
{
    const struct span_ix *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    if (c) return c;
    return (x->n > y->n) - (x->n < y->n);
}

struct gram { uint32_t id[4]; };
static _Thread_local int tl_gram_n;

static int gram_cmp(const void *a, const void *b)
{
    const struct gram *x = a, *y = b;
    for (int i = 0; i < tl_gram_n; i++)
        if (x->id[i] != y->id[i]) return x->id[i] < y->id[i] ? -1 : 1;
    return 0;
}

int scb_bleu_sentence(const struct scb_tokens *ref, const struct scb_tokens *hyp, double *out,
                      struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t H = hyp->n, R = ref->n, T = H + R;
    struct span_ix *sp = NULL;
    uint32_t *ids = NULL;              /* (T) ids: hyp first, then ref */
    struct gram *gh = NULL, *gr = NULL;
    *out = 0.0;
    sp = scb_malloc((T ? T : 1) * sizeof *sp);
    ids = scb_malloc((T ? T : 1) * sizeof *ids);
    gh = scb_malloc((H ? H : 1) * sizeof *gh);
    gr = scb_malloc((R ? R : 1) * sizeof *gr);
    if (!sp || !ids || !gh || !gr) { rc = scb_err(ctx, SCB_E_NOMEM, "bleu: out of memory"); goto out; }
    for (size_t i = 0; i < H; i++) sp[i] = (struct span_ix){hyp->ptr[i], hyp->len[i], i};
    for (size_t i = 0; i < R; i++) sp[H + i] = (struct span_ix){ref->ptr[i], ref->len[i], H + i};
    qsort(sp, T, sizeof *sp, span_cmp);
    uint32_t next = 0;
    for (size_t i = 0; i < T; i++) {
        if (i > 0 && span_cmp(&sp[i - 1], &sp[i])) next++;
        ids[sp[i].idx] = next;
    }
    const uint32_t *hid = ids, *rid = ids + H;

    long num[4], den[4];
    for (int n = 1; n <= 4; n++) {
        size_t nh = H >= (size_t)n ? H - (size_t)n + 1 : 0;
        size_t nr = R >= (size_t)n ? R - (size_t)n + 1 : 0;
        for (size_t i = 0; i < nh; i++) { memset(&gh[i], 0, sizeof gh[i]); memcpy(gh[i].id, hid + i, (size_t)n * 4); }
        for (size_t i = 0; i < nr; i++) { memset(&gr[i], 0, sizeof gr[i]); memcpy(gr[i].id, rid + i, (size_t)n * 4); }
        tl_gram_n = n;
        qsort(gh, nh, sizeof *gh, gram_cmp);
        qsort(gr, nr, sizeof *gr, gram_cmp);
        long clipped = 0;
        size_t a = 0, b = 0;
        while (a < nh) {
            size_t a2 = a;
            while (a2 < nh && !gram_cmp(&gh[a], &gh[a2])) a2++;
            while (b < nr && gram_cmp(&gr[b], &gh[a]) < 0) b++;
            size_t b2 = b;
            while (b2 < nr && !gram_cmp(&gr[b2], &gh[a])) b2++;
            size_t ch = a2 - a, cr = b2 - b;
            clipped += (long)(ch < cr ? ch : cr);
            a = a2;
            b = b2;
        }
        num[n - 1] = clipped;
        den[n - 1] = nh > 0 ? (long)nh : 1;
    }
    if (num[0] == 0) goto out;   /* NLTK returns 0 when no unigram matches */

    double bp;
    if (H > R) bp = 1.0;
    else if (H == 0) bp = 0.0;
    else bp = exp(1.0 - (double)R / (double)H);

    double p[4];
    int keep[4];
    int incvnt = 1;
    for (int i = 0; i < 4; i++) {
        keep[i] = num[i] > 0;
        p[i] = (double)num[i] / (double)den[i];
        if (num[i] == 0 && H > 1) {
            double numerator = 1.0 / ((double)((1L << incvnt) * 5) / log((double)H));
            p[i] = numerator / (double)den[i];
            keep[i] = p[i] > 0;
            incvnt++;
        }
    }
    double terms[4];
    size_t nt = 0;
    for (int i = 0; i < 4; i++)
        if (keep[i]) terms[nt++] = 0.25 * log(p[i]);
    *out = bp * exp(scb_fsum(terms, nt));
out:
    scb_free(sp); scb_free(ids); scb_free(gh); scb_free(gr);
    return rc;
}

int scb_bleu_similarity(const char *candidate, const char *reference, double *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_tokens c = {0}, r = {0};
    if ((rc = scb_bleu_split_ws(candidate, strlen(candidate), &c)) < 0 ||
        (rc = scb_bleu_split_ws(reference, strlen(reference), &r)) < 0) {
        rc = scb_err(ctx, SCB_E_NOMEM, "bleu: out of memory");
        goto out;
    }
    SCB_TRY(scb_bleu_sentence(&r, &c, out, ctx));
out:
    scb_tokens_fini(&c);
    scb_tokens_fini(&r);
    return rc;
}
