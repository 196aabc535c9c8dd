/* quest.c — Quest page selection (see quest.h). */
#include "methods/quest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/dense.h"

void scb_quest_signs(const float *q, size_t qs, int Tq, int D, float *w)
{
    for (int d = 0; d < D; d++) w[d] = 0.0f;
    for (int i = 0; i < Tq; i++)
        for (int d = 0; d < D; d++) w[d] += q[(size_t)i * qs + d] > 0.0f ? 1.0f : -1.0f;
}

void scb_quest_bounds(const float *q, const float *w, const float *k, size_t ks, int T, int D,
                      int P, double *ub)
{
    int np = (T + P - 1) / P;
    for (int p = 0; p < np; p++) {
        int t1 = (p + 1) * P < T ? (p + 1) * P : T;
        double u = 0.0;
        for (int d = 0; d < D; d++) {
            double mx = -INFINITY;
            for (int t = p * P; t < t1; t++) {
                double x = (double)k[(size_t)t * ks + d] * w[d];
                if (x > mx) mx = x;
            }
            u += (double)q[d] * w[d] * mx;
        }
        ub[p] = u;
    }
}

int scb_quest_kpages(int T, int P, int budget)
{
    int np = (T + P - 1) / P;
    int kp = (T < budget ? T : budget) / P;
    if (kp < 3) kp = 3;
    return kp < np ? kp : np;
}

static const double *g_ub;
static int by_ub(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    if (g_ub[i] > g_ub[j]) return -1;
    if (g_ub[i] < g_ub[j]) return 1;
    return (i > j) - (i < j);
}
static int asc(const void *x, const void *y) { int32_t a = *(const int32_t *)x, b = *(const int32_t *)y; return (a > b) - (a < b); }

int scb_quest_top_pages(const double *ub, int np, int kp, int32_t *sel)
{
    int32_t *ord = scb_malloc(sizeof(int32_t) * (size_t)(np > 0 ? np : 1));
    if (!ord) return SCB_E_NOMEM;
    for (int p = 0; p < np; p++) ord[p] = p;
    g_ub = ub;
    qsort(ord, (size_t)np, sizeof *ord, by_ub);
    if (kp > np) kp = np;
    memcpy(sel, ord, sizeof(int32_t) * (size_t)kp);
    qsort(sel, (size_t)kp, sizeof *sel, asc);
    scb_free(ord);
    return kp;
}

struct quest_u {
    int P, np, kp;
    int32_t *sel;      /* (Tq, Hq, kp) selected pages */
    int Tq, Tk, Hq;
};

static int quest_keys(void *u, int h, int i, int32_t *idx, int cap)
{
    (void)cap;
    struct quest_u *q = u;
    int nc = i + q->Tk - q->Tq + 1, n = 0;
    const int32_t *s = q->sel + ((size_t)i * q->Hq + h) * q->kp;
    for (int t = 0; t < q->kp; t++)
        for (int j = s[t] * q->P; j < (s[t] + 1) * q->P && j < nc; j++) idx[n++] = j;
    return n;
}

int scb_quest_attn(struct scb_attn_args *a, int page, int budget, struct scb_ctx *ctx)
{
    struct scb_attn_view vw;
    int rc = scb_attn_view(a, &vw, ctx);
    if (rc) return rc;
    if (page < 1 || budget < 1) return scb_err(ctx, SCB_E_INVAL, "quest: page (%d) and budget (%d) must be >= 1", page, budget);
    struct quest_u u = {page, (a->Tk + page - 1) / page, scb_quest_kpages(a->Tk, page, budget), NULL, a->Tq, a->Tk, a->Hq};
    double *ub = scb_malloc(sizeof(double) * (size_t)(u.np > 0 ? u.np : 1));
    float *w = scb_malloc(sizeof(float) * (size_t)a->D);
    u.sel = scb_malloc(sizeof(int32_t) * (size_t)(a->Tq > 0 ? a->Tq : 1) * a->Hq * (u.kp > 0 ? u.kp : 1));
    if (!ub || !w || !u.sel) { rc = scb_err(ctx, SCB_E_NOMEM, "quest: out of memory"); goto out; }
    size_t qs = (size_t)a->Hq * a->D;
    for (int h = 0; h < a->Hq; h++) {
        const float *k = a->k + (size_t)(h / vw.G) * vw.hs;
        scb_quest_signs(a->q + (size_t)h * a->D, qs, a->Tq, a->D, w);
        for (int i = 0; i < a->Tq; i++) {
            scb_quest_bounds(a->q + (size_t)i * qs + (size_t)h * a->D, w, k, vw.ts, a->Tk, a->D, page, ub);
            int r = scb_quest_top_pages(ub, u.np, u.kp, u.sel + ((size_t)i * a->Hq + h) * u.kp);
            if (r < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "quest: out of memory"); goto out; }
        }
    }
    rc = scb_attn_list_ref(a, quest_keys, &u, ctx);
out:
    scb_free(ub); scb_free(w); scb_free(u.sel);
    return rc;
}

struct quest_priv { int page, budget; };

static const struct scb_option quest_opts[] = {
    {"page", SCB_OPT_INT, offsetof(struct quest_priv, page), "16", 1, 1e6, NULL,
     "page (chunk) size in cache entries"},
    {"budget", SCB_OPT_INT, offsetof(struct quest_priv, budget), "1024", 1, 1e9, NULL,
     "token budget per query row (budget / page pages, at least 3)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int quest_decode(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    const struct quest_priv *p = m->priv;
    return scb_quest_attn(a, p->page, p->budget, ctx);
}

static void quest_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct quest_priv *p = m->priv;
    const struct scb_model_info *mi = cq->mi;
    scb_method_cost_dense(cq, out);
    /* SCBench simulates Quest by masking; an efficient Quest keeps page min/max metadata
     * (2 * D per page per KV head) and reads the metadata + the selected pages. */
    int64_t np = (cq->T + p->page - 1) / p->page;
    int64_t meta = (int64_t)mi->L * mi->Hkv * np * 2 * mi->D * cq->elt_bytes;
    int64_t kp = scb_quest_kpages((int)cq->T, p->page, p->budget);
    int64_t sel = kp * p->page < cq->T ? kp * p->page : cq->T;
    out->kv_bytes += meta;
    out->kv_bytes_device = out->kv_bytes;
    out->read_bytes_step = meta + 2 * (int64_t)mi->L * mi->Hq * sel * mi->D * cq->elt_bytes;
}

const struct scb_method_ops scb_method_quest = {
    .abi = SCB_METHOD_ABI, .name = "quest", .stage = SCB_STAGE_LOADING,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_SPARSE_DECODE,
    .summary = "per decode step, attend only to the 64 pages of 16 tokens with the highest query-aware upper bound",
    .scbench_name = "dense;quest",
    .priv_size = sizeof(struct quest_priv), .options = quest_opts,
    .decode_attn = quest_decode, .cost = quest_cost,
};
