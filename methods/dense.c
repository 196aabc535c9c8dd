/* dense.c — CPU reference attention (see dense.h). fp32 in, double accumulation, fp32 out;
 * deterministic (fixed visiting order), no fast-math. */
#include "methods/dense.h"

#include <math.h>
#include <string.h>

#include "kernels/alloc.h"

int scb_attn_view(const struct scb_attn_args *a, struct scb_attn_view *v, struct scb_ctx *ctx)
{
    if (!a || !a->q || !a->k || !a->v || !a->out)
        return scb_err(ctx, SCB_E_INVAL, "attention: NULL q/k/v/out");
    if (a->Tq < 0 || a->Tk < a->Tq || a->Hq <= 0 || a->Hkv <= 0 || a->D <= 0 || a->Hq % a->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "attention: bad shape Tq=%d Tk=%d Hq=%d Hkv=%d D=%d "
                       "(need 0 <= Tq <= Tk, Hq %% Hkv == 0)", a->Tq, a->Tk, a->Hq, a->Hkv, a->D);
    v->ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    v->hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    v->scale = a->scale != 0.0f ? a->scale : (float)(1.0 / sqrt((double)a->D));
    v->G = a->Hq / a->Hkv;
    return SCB_OK;
}

void scb_attn_row_ref(const float *q, const float *k, const float *v, size_t ts,
                      const int32_t *idx, int n, int D, float scale, double *scratch,
                      float *out, float *lse)
{
    double *s = scratch;        /* (n) */
    double *acc = scratch + n;  /* (D) */
    if (n <= 0) {
        for (int d = 0; d < D; d++) out[d] = 0.0f;
        if (lse) *lse = -INFINITY;
        return;
    }
    double m = -INFINITY;
    for (int t = 0; t < n; t++) {
        const float *kj = k + (size_t)(idx ? idx[t] : t) * ts;
        double dot = 0.0;
        for (int d = 0; d < D; d++) dot += (double)q[d] * (double)kj[d];
        s[t] = dot * (double)scale;
        if (s[t] > m) m = s[t];
    }
    double l = 0.0;
    for (int d = 0; d < D; d++) acc[d] = 0.0;
    for (int t = 0; t < n; t++) {
        double p = exp(s[t] - m);
        l += p;
        const float *vj = v + (size_t)(idx ? idx[t] : t) * ts;
        for (int d = 0; d < D; d++) acc[d] += p * (double)vj[d];
    }
    for (int d = 0; d < D; d++) out[d] = (float)(acc[d] / l);
    if (lse) *lse = (float)(m + log(l));
}

/* Shared driver: rows x heads, each with a key list from `keys` (NULL = causal range). */
static int attn_drive(struct scb_attn_args *a, scb_attn_keys_fn keys, void *user, struct scb_ctx *ctx)
{
    struct scb_attn_view vw;
    int rc = scb_attn_view(a, &vw, ctx);
    if (rc) return rc;
    double *scratch = scb_malloc(sizeof(double) * ((size_t)a->Tk + (size_t)a->D + 1));
    int32_t *idx = keys ? scb_malloc(sizeof(int32_t) * ((size_t)a->Tk + 1)) : NULL;
    if (!scratch || (keys && !idx)) { rc = scb_err(ctx, SCB_E_NOMEM, "attention: out of memory"); goto out; }
    double computed = 0, causal = 0;
    int off = a->Tk - a->Tq;
    for (int i = 0; i < a->Tq; i++) {
        int nc = i + off + 1;  /* causal keys of row i: [0, nc) */
        for (int h = 0; h < a->Hq; h++) {
            int g = h / vw.G;
            const float *q = a->q + ((size_t)i * a->Hq + h) * a->D;
            float *o = a->out + ((size_t)i * a->Hq + h) * a->D;
            float *l = a->lse ? a->lse + (size_t)i * a->Hq + h : NULL;
            int n = nc;
            if (keys) {
                n = keys(user, h, i, idx, a->Tk);
                if (n < 0) { rc = n; goto out; }
                for (int t = 0; t < n; t++)
                    if (idx[t] < 0 || idx[t] >= nc || (t && idx[t] <= idx[t - 1])) {
                        rc = scb_err(ctx, SCB_E_INVAL, "attention: key list of row %d head %d is not "
                                     "ascending causal (entry %d = %d, causal limit %d)", i, h, t, idx[t], nc);
                        goto out;
                    }
            }
            scb_attn_row_ref(q, a->k + (size_t)g * vw.hs, a->v + (size_t)g * vw.hs, vw.ts,
                             keys ? idx : NULL, n, a->D, vw.scale, scratch, o, l);
            computed += n;
            causal += nc;
        }
    }
    a->density = causal > 0 ? computed / causal : 1.0;
out:
    scb_free(scratch);
    scb_free(idx);
    return rc;
}

int scb_attn_dense_ref(struct scb_attn_args *a, struct scb_ctx *ctx)
{
    return attn_drive(a, NULL, NULL, ctx);
}

struct masked_u { struct scb_attn_args *a; scb_attn_pred_fn fn; void *user; };
static int masked_keys(void *u, int h, int i, int32_t *idx, int cap)
{
    struct masked_u *m = u;
    int nc = i + m->a->Tk - m->a->Tq + 1, n = 0;
    for (int j = 0; j < nc && n < cap; j++)
        if (m->fn(m->user, h, i, j)) idx[n++] = j;
    return n;
}

int scb_attn_masked_ref(struct scb_attn_args *a, scb_attn_pred_fn allowed, void *user,
                        struct scb_ctx *ctx)
{
    struct masked_u m = {a, allowed, user};
    return attn_drive(a, masked_keys, &m, ctx);
}

int scb_attn_list_ref(struct scb_attn_args *a, scb_attn_keys_fn keys, void *user, struct scb_ctx *ctx)
{
    return attn_drive(a, keys, user, ctx);
}

struct keep_u { struct scb_attn_args *a; const struct scb_kv_keep *kp; int G; };
static int keep_keys(void *u, int h, int i, int32_t *idx, int cap)
{
    struct keep_u *k = u;
    int nc = i + k->a->Tk - k->a->Tq + 1, n = 0;
    int list = k->kp->per_kv_head ? h / k->G : h;
    const int32_t *li = k->kp->idx + (size_t)list * k->kp->cap;
    for (int t = 0; t < k->kp->n[list] && n < cap; t++)
        if (li[t] < nc) idx[n++] = li[t];
    for (int j = k->kp->N; j < nc && n < cap; j++) idx[n++] = j;
    return n;
}

int scb_attn_keep_ref(struct scb_attn_args *a, const struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    if (!keep || !keep->idx || !keep->n || keep->N > a->Tk)
        return scb_err(ctx, SCB_E_INVAL, "attention: keep lists missing or longer than the cache");
    int G = a->Hkv > 0 ? a->Hq / a->Hkv : 1;
    if (keep->H != (keep->per_kv_head ? a->Hkv : a->Hq))
        return scb_err(ctx, SCB_E_INVAL, "attention: keep has %d lists, expected %d", keep->H,
                       keep->per_kv_head ? a->Hkv : a->Hq);
    struct keep_u k = {a, keep, G};
    return attn_drive(a, keep_keys, &k, ctx);
}

void scb_attn_merge(const float *o1, float lse1, const float *o2, float lse2, int D,
                    float *o, float *lse)
{
    if (isinf(lse1) && lse1 < 0 && isinf(lse2) && lse2 < 0) {
        for (int d = 0; d < D; d++) o[d] = 0.0f;
        *lse = -INFINITY;
        return;
    }
    double mx = lse1 > lse2 ? lse1 : lse2;
    double l = mx + log(exp((double)lse1 - mx) + exp((double)lse2 - mx));
    double w1 = exp((double)lse1 - l), w2 = exp((double)lse2 - l);
    for (int d = 0; d < D; d++) o[d] = (float)(w1 * (double)o1[d] + w2 * (double)o2[d]);
    *lse = (float)l;
}

int scb_kv_keep_init(struct scb_kv_keep *kp, int H, int per_kv_head, int N, struct scb_ctx *ctx)
{
    memset(kp, 0, sizeof *kp);
    if (H <= 0 || N < 0) return scb_err(ctx, SCB_E_INVAL, "kv keep: bad H=%d N=%d", H, N);
    kp->H = H; kp->per_kv_head = per_kv_head; kp->N = N; kp->cap = N > 0 ? N : 1;
    kp->idx = scb_malloc(sizeof(int32_t) * (size_t)H * kp->cap);
    kp->n = scb_calloc((size_t)H, sizeof(int));
    if (!kp->idx || !kp->n) {
        scb_kv_keep_fini(kp);
        return scb_err(ctx, SCB_E_NOMEM, "kv keep: out of memory (%d x %d)", H, N);
    }
    return SCB_OK;
}

void scb_kv_keep_fini(struct scb_kv_keep *kp)
{
    if (!kp) return;
    scb_free(kp->idx);
    scb_free(kp->n);
    memset(kp, 0, sizeof *kp);
}

void scb_kv_keep_all(struct scb_kv_keep *kp)
{
    for (int h = 0; h < kp->H; h++) {
        for (int j = 0; j < kp->N; j++) kp->idx[(size_t)h * kp->cap + j] = j;
        kp->n[h] = kp->N;
    }
}
