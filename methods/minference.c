/* minference.c — MInference 1.0 sparse prefill (see minference.h). */
#include "methods/minference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/a_shape.h"
#include "methods/dense.h"

#define BM SCB_MINF_BLOCK

/* ---- config ----------------------------------------------------------------------------- */
int scb_minf_config_uniform(struct scb_minf_config *c, int L, int H, int type, int v, int s,
                            struct scb_ctx *ctx)
{
    memset(c, 0, sizeof *c);
    c->p = scb_malloc(sizeof *c->p * (size_t)L * H);
    if (!c->p) return scb_err(ctx, SCB_E_NOMEM, "minference: out of memory");
    c->L = L; c->H = H;
    for (size_t i = 0; i < (size_t)L * H; i++) { c->p[i].type = type; c->p[i].v = v; c->p[i].s = s; }
    return SCB_OK;
}

void scb_minf_config_fini(struct scb_minf_config *c)
{
    if (!c) return;
    scb_free(c->p);
    memset(c, 0, sizeof *c);
}

static int type_from_name(const char *s)
{
    if (!strcmp(s, "vertical_and_slash")) return SCB_MINF_VERTICAL_SLASH;
    if (!strcmp(s, "block_sparse")) return SCB_MINF_BLOCK_SPARSE;
    if (!strcmp(s, "stream_llm")) return SCB_MINF_STREAM_LLM;
    return -1;
}

int scb_minf_config_load(const char *path, int L, int H, struct scb_minf_config *c, struct scb_ctx *ctx)
{
    cJSON *root = NULL;
    int rc = scb_minf_config_uniform(c, L, H, SCB_MINF_VERTICAL_SLASH, 1000, 6096, ctx);
    if (rc) return rc;
    SCB_TRY(scb_json_load(path, &root, ctx));
    if (!cJSON_IsArray(root)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: expected a JSON list with one object per layer", path); goto out; }
    int nl = cJSON_GetArraySize(root);
    if (nl < L) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: has %d layers, the model has %d", path, nl, L); goto out; }
    for (int l = 0; l < L; l++) {
        cJSON *layer = cJSON_GetArrayItem(root, l), *e;
        if (!cJSON_IsObject(layer)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: layer %d is not an object", path, l); goto out; }
        cJSON_ArrayForEach(e, layer) {
            char *end = NULL;
            long h = strtol(e->string, &end, 10);
            if (!*e->string || *end || h < 0 || h >= H) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: layer %d: head key '%s' is not an index in [0, %d)",
                             path, l, e->string, H);
                goto out;
            }
            cJSON *t = cJSON_GetArrayItem(e, 0), *v = cJSON_GetArrayItem(e, 1), *s = cJSON_GetArrayItem(e, 2);
            int ty = cJSON_IsString(t) ? type_from_name(t->valuestring) : -1;
            if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) < 3 || ty < 0 || !cJSON_IsNumber(v) ||
                !cJSON_IsNumber(s) || v->valuedouble < 0 || s->valuedouble < 0 ||
                v->valuedouble > 1e9 || s->valuedouble > 1e9) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: layer %d head %ld: expected [\"vertical_and_slash\"|"
                             "\"block_sparse\"|\"stream_llm\", vertical_size, slash_size, score]", path, l, h);
                goto out;
            }
            struct scb_minf_pattern *p = &c->p[(size_t)l * H + h];
            p->type = ty; p->v = (int)v->valuedouble; p->s = (int)s->valuedouble;
        }
    }
out:
    cJSON_Delete(root);
    if (rc) scb_minf_config_fini(c);
    return rc;
}

/* ---- estimation --------------------------------------------------------------------------- */
static const double *g_scores;
static int by_score_desc(const void *x, const void *y)
{
    int32_t i = *(const int32_t *)x, j = *(const int32_t *)y;
    if (g_scores[i] > g_scores[j]) return -1;
    if (g_scores[i] < g_scores[j]) return 1;
    return (i > j) - (i < j);
}
static int asc(const void *x, const void *y) { int32_t a = *(const int32_t *)x, b = *(const int32_t *)y; return (a > b) - (a < b); }
static int desc(const void *x, const void *y) { return -asc(x, y); }

/* Forced [0, nf) then best of the rest by score, total k; out ascending. */
static void pick(const double *sc, int N, int nf, int k, int32_t *tmp, int32_t *out)
{
    if (nf > k) nf = k;
    int n = 0;
    for (int j = 0; j < nf; j++) out[n++] = j;
    int m = 0;
    for (int j = nf; j < N; j++) tmp[m++] = j;
    g_scores = sc;
    qsort(tmp, (size_t)m, sizeof *tmp, by_score_desc);
    for (int t = 0; n < k && t < m; t++) out[n++] = tmp[t];
    qsort(out, (size_t)n, sizeof *out, asc);
}

int scb_minf_vs_estimate(const float *q, size_t qs, const float *k, size_t ks, int N, int D,
                         float scale, int v_size, int s_size, int last_q, int32_t *V, int *nv,
                         int32_t *S, int *ns, double *vert, double *diag, struct scb_ctx *ctx)
{
    if (N < 1 || D < 1 || last_q < 1) return scb_err(ctx, SCB_E_INVAL, "minference: bad N=%d D=%d last_q=%d", N, D, last_q);
    int rc = SCB_OK;
    v_size = v_size < 30 ? 30 : v_size; if (v_size > N) v_size = N;
    s_size = s_size < 50 ? 50 : s_size; if (s_size > N) s_size = N;
    int lq = last_q < N ? last_q : N;
    double *vs = scb_calloc((size_t)N, sizeof(double)), *ds = scb_calloc((size_t)N, sizeof(double));
    double *row = scb_malloc(sizeof(double) * (size_t)N);
    int32_t *tmp = scb_malloc(sizeof(int32_t) * (size_t)N);
    if (!vs || !ds || !row || !tmp) { rc = scb_err(ctx, SCB_E_NOMEM, "minference: out of memory"); goto out; }
    for (int r = 0; r < lq; r++) {
        int p = N - lq + r;                     /* absolute row */
        const float *qr = q + (size_t)p * qs;
        double m = -INFINITY, l = 0.0;
        for (int j = 0; j <= p; j++) {
            const float *kj = k + (size_t)j * ks;
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += (double)qr[d] * (double)kj[d];
            row[j] = dot * scale;
            if (row[j] > m) m = row[j];
        }
        for (int j = 0; j <= p; j++) l += exp(row[j] - m);
        for (int j = 0; j <= p; j++) {
            double a = exp(row[j] - m) / l;
            vs[j] += a;
            ds[p - j] += a;
        }
    }
    if (vert) memcpy(vert, vs, sizeof(double) * (size_t)N);
    if (diag) memcpy(diag, ds, sizeof(double) * (size_t)N);
    pick(vs, N, 30 < N ? 30 : N, v_size, tmp, V);
    *nv = v_size;
    pick(ds, N, 100 < N ? 100 : N, s_size, tmp, S);
    qsort(S, (size_t)s_size, sizeof *S, desc);
    *ns = s_size;
out:
    scb_free(vs); scb_free(ds); scb_free(row); scb_free(tmp);
    return rc;
}

/* ---- converter (convert_vertical_slash_indexes) ------------------------------------------ */
int scb_minf_convert(int N, const int32_t *V, int nnz_v, const int32_t *S, int nnz_s,
                     int32_t *block_offset, int32_t *block_count, int32_t *column_index,
                     int32_t *column_count, struct scb_ctx *ctx)
{
    if (N < 1 || nnz_v < 1 || nnz_s < 1 || S[nnz_s - 1] != 0)
        return scb_err(ctx, SCB_E_INVAL, "minference converter: need N >= 1, at least one vertical "
                       "and the main diagonal (offset 0) last in the descending slash list");
    int nblk = (N + BM - 1) / BM;
    for (int m = 0; m < nblk; m++) {
        int end_m = m * BM + BM;
        int32_t *bo = block_offset + (size_t)m * nnz_s, *ci = column_index + (size_t)m * nnz_v;
        int nb = 0, nc = 0, s = 0, v = 0;
        int vi = V[v++];
        int si = S[s++];
        while (si >= end_m) si = S[s++];        /* terminates: S ends with 0 */
        si = end_m - si > BM ? end_m - si : BM;
        int rs = si - BM, re = si;
        for (;;) {
            if (vi < re) {
                if (vi < rs) ci[nc++] = vi;
                vi = v < nnz_v ? V[v++] : end_m + BM;
            } else {
                int flush = 0, last = 0;
                if (s < nnz_s) { si = end_m - S[s++]; if (si < BM) si = BM; }
                else flush = last = 1;
                if (!last && si > re + BM) flush = 1;
                if (flush) {
                    for (int x = rs; x < re; x += BM) {
                        if (nb >= nnz_s)
                            return scb_err(ctx, SCB_E_INVAL, "minference converter: row block %d needs more "
                                           "than %d tiles", m, nnz_s);
                        bo[nb++] = x;
                    }
                    if (last) break;
                    rs = si - BM; re = si;
                } else if (si > re) {
                    re += BM;
                }
            }
        }
        block_count[m] = nb;
        column_count[m] = nc;
    }
    return SCB_OK;
}

void scb_minf_index_fini(struct scb_minf_index *ix)
{
    if (!ix) return;
    scb_free(ix->block_offset); scb_free(ix->block_count);
    scb_free(ix->column_index); scb_free(ix->column_count);
    memset(ix, 0, sizeof *ix);
}

int scb_minf_index_build(struct scb_minf_index *ix, int N, const int32_t *V, int nnz_v,
                         const int32_t *S, int nnz_s, struct scb_ctx *ctx)
{
    memset(ix, 0, sizeof *ix);
    ix->N = N; ix->nblk = (N + BM - 1) / BM; ix->nnz_v = nnz_v; ix->nnz_s = nnz_s;
    ix->block_offset = scb_malloc(sizeof(int32_t) * (size_t)ix->nblk * (nnz_s > 0 ? nnz_s : 1));
    ix->block_count = scb_malloc(sizeof(int32_t) * (size_t)ix->nblk);
    ix->column_index = scb_malloc(sizeof(int32_t) * (size_t)ix->nblk * (nnz_v > 0 ? nnz_v : 1));
    ix->column_count = scb_malloc(sizeof(int32_t) * (size_t)ix->nblk);
    if (!ix->block_offset || !ix->block_count || !ix->column_index || !ix->column_count) {
        scb_minf_index_fini(ix);
        return scb_err(ctx, SCB_E_NOMEM, "minference: out of memory");
    }
    int rc = scb_minf_convert(N, V, nnz_v, S, nnz_s, ix->block_offset, ix->block_count,
                              ix->column_index, ix->column_count, ctx);
    if (rc) scb_minf_index_fini(ix);
    return rc;
}

int scb_minf_index_row(const struct scb_minf_index *ix, int r, int32_t *idx)
{
    int m = r / BM, n = 0;
    const int32_t *bo = ix->block_offset + (size_t)m * ix->nnz_s;
    const int32_t *ci = ix->column_index + (size_t)m * ix->nnz_v;
    for (int t = 0; t < ix->column_count[m]; t++)
        if (ci[t] <= r) idx[n++] = ci[t];
    for (int b = 0; b < ix->block_count[m]; b++)
        for (int c = bo[b]; c < bo[b] + BM && c <= r; c++) idx[n++] = c;
    qsort(idx, (size_t)n, sizeof *idx, asc);
    int u = 0;                                   /* dedup (the structure is disjoint; be safe) */
    for (int t = 0; t < n; t++)
        if (!u || idx[t] != idx[u - 1]) idx[u++] = idx[t];
    return u;
}

/* ---- block sparse ------------------------------------------------------------------------- */
int scb_minf_block_select(const float *q, size_t qs, const float *k, size_t ks, int N, int D,
                          int topk, int32_t *blocks, int32_t *n_used, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    int Np = N + (BM - N % BM), nb = Np / BM;
    int kk = topk < nb ? topk : nb;
    double *qp = scb_calloc((size_t)nb * D, sizeof(double)), *kp = scb_calloc((size_t)nb * D, sizeof(double));
    double *sc = scb_malloc(sizeof(double) * (size_t)nb);
    int32_t *ord = scb_malloc(sizeof(int32_t) * (size_t)nb);
    if (!qp || !kp || !sc || !ord || kk < 1) { rc = scb_err(ctx, kk < 1 ? SCB_E_INVAL : SCB_E_NOMEM, "minference block_sparse: %s", kk < 1 ? "top_k must be >= 1" : "out of memory"); goto out; }
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) {
            qp[(size_t)(i / BM) * D + d] += q[(size_t)i * qs + d];
            kp[(size_t)(i / BM) * D + d] += k[(size_t)i * ks + d];
        }
    for (size_t t = 0; t < (size_t)nb * D; t++) { qp[t] /= BM; kp[t] /= BM; }
    for (int a = 0; a < nb; a++) {
        for (int b = 0; b < nb; b++) {
            double s = 0.0;
            for (int d = 0; d < D; d++) s += qp[(size_t)a * D + d] * kp[(size_t)b * D + d];
            sc[b] = b > a ? -INFINITY : s;
            ord[b] = b;
        }
        g_scores = sc;
        qsort(ord, (size_t)nb, sizeof *ord, by_score_desc);
        int32_t *out = blocks + (size_t)a * kk;
        memcpy(out, ord, sizeof(int32_t) * (size_t)kk);
        qsort(out, (size_t)kk, sizeof *out, asc);
        n_used[a] = a + 1 < kk ? a + 1 : kk;
    }
out:
    scb_free(qp); scb_free(kp); scb_free(sc); scb_free(ord);
    return rc;
}

/* ---- per-layer sparse prefill ------------------------------------------------------------- */
struct minf_u {
    int N, G, n_init_dummy;
    const struct scb_minf_pattern *pat;
    struct scb_minf_index *ix;     /* (Hq) for vertical_slash heads */
    int32_t *blocks, *n_used;      /* (Hq, nb, kk), (Hq, nb) for block_sparse heads */
    int nb, kk;
};

static int minf_keys(void *u, int h, int i, int32_t *idx, int cap)
{
    (void)cap;
    struct minf_u *m = u;
    const struct scb_minf_pattern *p = &m->pat[h];
    switch (p->type) {
    case SCB_MINF_STREAM_LLM: return scb_ashape_keys(i, p->v, p->s > 0 ? p->s : 1, idx);
    case SCB_MINF_BLOCK_SPARSE: {
        int a = i / BM, n = 0;
        const int32_t *bl = m->blocks + ((size_t)h * m->nb + a) * m->kk;
        for (int t = 0; t < m->n_used[(size_t)h * m->nb + a]; t++)
            for (int c = bl[t] * BM; c < bl[t] * BM + BM && c <= i; c++) idx[n++] = c;
        return n;
    }
    default: return scb_minf_index_row(&m->ix[h], i, idx);
    }
}

int scb_minf_attn(struct scb_attn_args *a, const struct scb_minf_pattern *pat, int block_topk,
                  int last_q, struct scb_ctx *ctx)
{
    struct scb_attn_view vw;
    int rc = scb_attn_view(a, &vw, ctx);
    if (rc) return rc;
    if (a->Tq != a->Tk || a->Tq <= 1) return scb_attn_dense_ref(a, ctx);
    int N = a->Tq, H = a->Hq, D = a->D;
    struct minf_u u = {0};
    u.N = N; u.G = vw.G; u.pat = pat;
    u.nb = (N + (BM - N % BM)) / BM;
    u.kk = block_topk < u.nb ? block_topk : u.nb;
    if (u.kk < 1) u.kk = 1;
    u.ix = scb_calloc((size_t)H, sizeof *u.ix);
    u.blocks = scb_malloc(sizeof(int32_t) * (size_t)H * u.nb * u.kk);
    u.n_used = scb_malloc(sizeof(int32_t) * (size_t)H * u.nb);
    int32_t *V = scb_malloc(sizeof(int32_t) * (size_t)N), *S = scb_malloc(sizeof(int32_t) * (size_t)N);
    if (!u.ix || !u.blocks || !u.n_used || !V || !S) { rc = scb_err(ctx, SCB_E_NOMEM, "minference: out of memory"); goto out; }
    size_t qs = (size_t)H * D;
    for (int h = 0; h < H; h++) {
        const float *q = a->q + (size_t)h * D, *k = a->k + (size_t)(h / vw.G) * vw.hs;
        if (pat[h].type == SCB_MINF_VERTICAL_SLASH) {
            int nv = 0, ns = 0;
            SCB_TRY(scb_minf_vs_estimate(q, qs, k, vw.ts, N, D, vw.scale, pat[h].v, pat[h].s, last_q,
                                         V, &nv, S, &ns, NULL, NULL, ctx));
            SCB_TRY(scb_minf_index_build(&u.ix[h], N, V, nv, S, ns, ctx));
        } else if (pat[h].type == SCB_MINF_BLOCK_SPARSE) {
            SCB_TRY(scb_minf_block_select(q, qs, k, vw.ts, N, D, u.kk, u.blocks + (size_t)h * u.nb * u.kk,
                                          u.n_used + (size_t)h * u.nb, ctx));
        }
    }
    rc = scb_attn_list_ref(a, minf_keys, &u, ctx);
out:
    if (u.ix) for (int h = 0; h < H; h++) scb_minf_index_fini(&u.ix[h]);
    scb_free(u.ix); scb_free(u.blocks); scb_free(u.n_used); scb_free(V); scb_free(S);
    return rc;
}

/* ---- method entry -------------------------------------------------------------------------- */
struct minf_priv {
    char config[SCB_OPT_STR_MAX];
    int vertical, slash, last_q, block_topk, starting_layer;
    double ratio;
};

static const struct scb_option minf_opts[] = {
    {"config", SCB_OPT_STRING, offsetof(struct minf_priv, config), "", 1, 0, NULL,
     "per-head pattern file in MInference's JSON format (empty: every head vertical_and_slash "
     "with the sizes below)"},
    {"vertical", SCB_OPT_INT, offsetof(struct minf_priv, vertical), "512", 0, 1e9, NULL,
     "vertical columns per head when no config is given (SCBench's Llama-3.1-8B file: 512)"},
    {"slash", SCB_OPT_INT, offsetof(struct minf_priv, slash), "2048", 0, 1e9, NULL,
     "slash diagonals per head when no config is given (SCBench's Llama-3.1-8B file: 2048)"},
    {"ratio", SCB_OPT_FLOAT, offsetof(struct minf_priv, ratio), "1", 0, 1e6, NULL,
     "multiplies every head's vertical and slash sizes (int truncation), minference_ratio"},
    {"last_q", SCB_OPT_INT, offsetof(struct minf_priv, last_q), "64", 1, 1e6, NULL,
     "queries used to estimate the pattern"},
    {"block_topk", SCB_OPT_INT, offsetof(struct minf_priv, block_topk), "100", 1, 1e9, NULL,
     "key blocks per row block for block_sparse heads"},
    {"starting_layer", SCB_OPT_INT, offsetof(struct minf_priv, starting_layer), "-1", -1, 1e6, NULL,
     "layers below it use dense prefill (-1: all layers sparse)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int minf_init(struct scb_method *m, struct scb_ctx *ctx)
{
    const struct minf_priv *p = m->priv;
    struct scb_minf_config *c = scb_calloc(1, sizeof *c);
    if (!c) return scb_err(ctx, SCB_E_NOMEM, "minference: out of memory");
    int rc = p->config[0] ? scb_minf_config_load(p->config, m->mi.L, m->mi.Hq, c, ctx)
                          : scb_minf_config_uniform(c, m->mi.L, m->mi.Hq, SCB_MINF_VERTICAL_SLASH,
                                                    p->vertical, p->slash, ctx);
    if (rc) { scb_free(c); return rc; }
    if (p->ratio != 1.0)
        for (size_t i = 0; i < (size_t)c->L * c->H; i++) {
            c->p[i].v = (int)(c->p[i].v * p->ratio);
            c->p[i].s = (int)(c->p[i].s * p->ratio);
        }
    m->state = c;
    return SCB_OK;
}

static void minf_fini(struct scb_method *m)
{
    if (!m->state) return;
    scb_minf_config_fini(m->state);
    scb_free(m->state);
    m->state = NULL;
}

static int minf_prefill(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    const struct minf_priv *p = m->priv;
    const struct scb_minf_config *c = m->state;
    if (!c) return scb_err(ctx, SCB_E_INVAL, "minference: method used before scb_method_init");
    if (a->layer < 0 || a->layer >= c->L || a->Hq != c->H)
        return scb_err(ctx, SCB_E_INVAL, "minference: layer %d / %d heads outside the config (%d x %d)",
                       a->layer, a->Hq, c->L, c->H);
    if (a->layer < p->starting_layer) return scb_attn_dense_ref(a, ctx);
    return scb_minf_attn(a, c->p + (size_t)a->layer * c->H, p->block_topk, p->last_q, ctx);
}

static void minf_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct minf_priv *p = m->priv;
    scb_method_cost_dense(cq, out);
    /* upper bound of the vertical-slash density: each row sees at most v + 64*s keys */
    double N = (double)cq->N, tot = N * (N + 1) / 2, got = 0;
    double w = (double)p->vertical + 64.0 * p->slash;
    for (double r = 0; r < N; r += 1) got += r + 1 < w ? r + 1 : w;
    out->prefill_density = tot > 0 ? got / tot : 1.0;
}

const struct scb_method_ops scb_method_minference = {
    .abi = SCB_METHOD_ABI, .name = "minference", .stage = SCB_STAGE_GENERATION,
    .axis = SCB_AXIS_PREFILL, .caps = SCB_CAP_CPU | SCB_CAP_SPARSE_PREFILL,
    .summary = "dynamic sparse prefill: per-head vertical-slash / block-sparse patterns estimated from the last 64 queries",
    .scbench_name = "vllm_minference;dense",
    .priv_size = sizeof(struct minf_priv), .options = minf_opts,
    .init = minf_init, .prefill_attn = minf_prefill, .cost = minf_cost, .fini = minf_fini,
};
