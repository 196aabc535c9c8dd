/* minference_search.c — per-head pattern scoring and the config writer (see minference_search.h). */
#include "methods/minference_search.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "methods/a_shape.h"

const char *scb_minf_type_name(int type)
{
    switch (type) {
    case SCB_MINF_BLOCK_SPARSE: return "block_sparse";
    case SCB_MINF_STREAM_LLM: return "stream_llm";
    default: return "vertical_and_slash";
    }
}

/* Per-candidate state: the structure MInference builds for this head. */
struct cand_state {
    struct scb_minf_index ix;      /* vertical_and_slash */
    int32_t *blocks, *n_used;      /* block_sparse: (nb, kk), (nb) */
    int nb, kk;
};

static int cand_keys(const struct scb_minf_pattern *p, const struct cand_state *st, int r, int32_t *idx)
{
    switch (p->type) {
    case SCB_MINF_STREAM_LLM: return scb_ashape_keys(r, p->v, p->s > 0 ? p->s : 1, idx);
    case SCB_MINF_BLOCK_SPARSE: {
        int a = r / SCB_MINF_BLOCK, n = 0;
        const int32_t *bl = st->blocks + (size_t)a * st->kk;
        for (int t = 0; t < st->n_used[a]; t++)
            for (int c = bl[t] * SCB_MINF_BLOCK; c < (bl[t] + 1) * SCB_MINF_BLOCK && c <= r; c++) idx[n++] = c;
        return n;
    }
    default: return scb_minf_index_row(&st->ix, r, idx);
    }
}

int scb_minf_search_head(const float *q, size_t qs, const float *k, size_t ks, int N, int D, float scale,
                         const struct scb_minf_pattern *cand, int n_cand, int r0, int last_q,
                         double *recall, double *density, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (N < 1 || D < 1 || n_cand < 1)
        return scb_err(ctx, SCB_E_INVAL, "pattern search: N=%d D=%d with %d candidates", N, D, n_cand);
    if (scale == 0.0f) scale = (float)(1.0 / sqrt((double)D));
    if (r0 < 0) r0 = 0;
    if (r0 > N - 1) r0 = N - 1;
    struct cand_state *st = scb_calloc((size_t)n_cand, sizeof *st);
    int32_t *V = scb_malloc(sizeof(int32_t) * (size_t)N), *S = scb_malloc(sizeof(int32_t) * (size_t)N);
    int32_t *idx = scb_malloc(sizeof(int32_t) * (size_t)N);
    double *p = scb_malloc(sizeof(double) * (size_t)N);        /* (N) one row of A */
    if (!st || !V || !S || !idx || !p) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "pattern search: out of memory"));
    const int nb_pad = (N + SCB_MINF_BLOCK - N % SCB_MINF_BLOCK) / SCB_MINF_BLOCK;
    for (int c = 0; c < n_cand; c++) {
        const struct scb_minf_pattern *pc = &cand[c];
        if (pc->type == SCB_MINF_VERTICAL_SLASH) {
            int nv = 0, ns = 0;
            SCB_TRY(scb_minf_vs_estimate(q, qs, k, ks, N, D, scale, pc->v, pc->s, last_q, V, &nv, S, &ns,
                                         NULL, NULL, ctx));
            SCB_TRY(scb_minf_index_build(&st[c].ix, N, V, nv, S, ns, ctx));
        } else if (pc->type == SCB_MINF_BLOCK_SPARSE) {
            st[c].nb = nb_pad;
            st[c].kk = pc->v < nb_pad ? (pc->v > 0 ? pc->v : 1) : nb_pad;
            st[c].blocks = scb_malloc(sizeof(int32_t) * (size_t)nb_pad * st[c].kk);
            st[c].n_used = scb_malloc(sizeof(int32_t) * (size_t)nb_pad);
            if (!st[c].blocks || !st[c].n_used) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "pattern search: out of memory"));
            SCB_TRY(scb_minf_block_select(q, qs, k, ks, N, D, st[c].kk, st[c].blocks, st[c].n_used, ctx));
        } else if (pc->type != SCB_MINF_STREAM_LLM) {
            SCB_TRY(scb_err(ctx, SCB_E_INVAL, "pattern search: candidate %d has unknown type %d", c, pc->type));
        }
        recall[c] = 0.0;
        density[c] = 0.0;
    }
    for (int r = 0; r < N; r++) {
        const int scored = r >= r0;
        if (scored) {   /* dense causal softmax of row r, in double */
            const float *qr = q + (size_t)r * qs;
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j <= r; j++) {
                const float *kj = k + (size_t)j * ks;
                double s = 0.0;
                for (int d = 0; d < D; d++) s += (double)qr[d] * (double)kj[d];
                p[j] = s * (double)scale;
                if (p[j] > mx) mx = p[j];
            }
            for (int j = 0; j <= r; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
            for (int j = 0; j <= r; j++) p[j] /= sum;
        }
        for (int c = 0; c < n_cand; c++) {
            int n = cand_keys(&cand[c], &st[c], r, idx);
            density[c] += (double)n;
            if (scored) {
                double m = 0.0;
                for (int i = 0; i < n; i++) m += p[idx[i]];
                recall[c] += m;
            }
        }
    }
    for (int c = 0; c < n_cand; c++) {
        recall[c] /= (double)(N - r0);
        density[c] /= (double)N * (double)(N + 1) / 2.0;
    }
out:
    if (st)
        for (int c = 0; c < n_cand; c++) {
            scb_minf_index_fini(&st[c].ix);
            scb_free(st[c].blocks);
            scb_free(st[c].n_used);
        }
    scb_free(st); scb_free(V); scb_free(S); scb_free(idx); scb_free(p);
    return rc;
}

int scb_minf_search_pick(const double *recall, const double *density, int n_cand, double budget)
{
    int best = -1, cheapest = 0;
    for (int c = 0; c < n_cand; c++) {
        if (density[c] < density[cheapest]) cheapest = c;
        if (density[c] > budget) continue;
        if (best < 0 || recall[c] > recall[best] || (recall[c] == recall[best] && density[c] < density[best]))
            best = c;
    }
    return best >= 0 ? best : cheapest;
}

int scb_minf_search_write(const char *path, int L, int H, const struct scb_minf_pattern *pat,
                          const double *score, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *text = NULL;
    FILE *f = NULL;
    cJSON *root = cJSON_CreateArray();
    if (!root) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    for (int l = 0; l < L; l++) {
        cJSON *layer = cJSON_CreateObject();
        if (!layer || !cJSON_AddItemToArray(root, layer)) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
        for (int h = 0; h < H; h++) {
            const struct scb_minf_pattern *p = &pat[(size_t)l * H + h];
            char key[16];
            snprintf(key, sizeof key, "%d", h);
            cJSON *v = cJSON_CreateArray();
            if (!v || !cJSON_AddItemToObject(layer, key, v)) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
            double sc = round(score[(size_t)l * H + h] * 1e6) / 1e6;
            cJSON_AddItemToArray(v, cJSON_CreateString(scb_minf_type_name(p->type)));
            cJSON_AddItemToArray(v, cJSON_CreateNumber(p->v));
            cJSON_AddItemToArray(v, cJSON_CreateNumber(p->s));
            cJSON_AddItemToArray(v, cJSON_CreateNumber(sc));
        }
    }
    text = cJSON_PrintUnformatted(root);
    if (!text) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
    f = fopen(path, "w");
    if (!f) SCB_TRY(scb_err(ctx, SCB_E_IO, "%s: cannot write: %s", path, strerror(errno)));
    if (fputs(text, f) < 0 || fputc('\n', f) < 0) SCB_TRY(scb_err(ctx, SCB_E_IO, "%s: write failed", path));
out:
    if (f && fclose(f) && !rc) rc = scb_err(ctx, SCB_E_IO, "%s: write failed", path);
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}
