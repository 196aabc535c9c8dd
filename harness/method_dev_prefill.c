/* method_dev_prefill.c — the sparse prefill patterns on the CUDA backend (harness/method_dev.h):
 * A-shape, Tri-shape and MInference, through kernels/sparse_prefill_cuda.h. Same key sets and
 * densities as methods/a_shape.c and methods/minference.c:
 * - a_shape / tri_shape: every query head STREAM with (n_init, n_local); Tri-shape's last
 *   n_last = min(n_last, T - 1) rows dense. A pattern that covers the whole causal triangle
 *   (T <= n_init + n_local for the sparse rows) runs the dense kernel, as the CPU binding does.
 *   The density is the exact count sum_rows min(p + 1, n_init + n_local) (dense rows p + 1)
 *   over the causal pairs, as the CPU reference counts it.
 * - minference: the per-(layer, query head) patterns of the CPU instance's parsed config
 *   (m->state, struct scb_minf_config, ratio applied); layers below starting_layer, a prefill of
 *   one token and any call with T != Tk run dense (density 1), as minf_prefill / scb_minf_attn
 *   do. Otherwise one scb_cuda_minf_prefill (estimation, conversion, block selection, sparse
 *   attention) whose density is the kernel's own count of computed pairs. */
#include "harness/method_dev.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/sparse_prefill_cuda.h"
#include "methods/minference.h"

/* ---- A-shape / Tri-shape ---------------------------------------------------------------------- */
struct dev_shape {
    int n_init, n_local, n_last, tri;
};

static int shape_create(void **state, const struct scb_method *m, int tri, struct scb_ctx *ctx)
{
    struct dev_shape *s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "%s (cuda): out of memory", m->ops->name);
    s->n_init = scb_method_opt_int(m, "n_init");
    s->n_local = scb_method_opt_int(m, "n_local");
    s->n_last = tri ? scb_method_opt_int(m, "n_last") : 0;
    s->tri = tri;
    *state = s;
    return SCB_OK;
}

static int ashape_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                         struct scb_ctx *ctx)
{
    (void)mi; (void)cc;
    return shape_create(state, m, 0, ctx);
}

static int trishape_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                           struct scb_ctx *ctx)
{
    (void)mi; (void)cc;
    return shape_create(state, m, 1, ctx);
}

static void shape_destroy(void *state) { scb_free(state); }

static struct scb_sparse_attn_cuda_args dev_args(const struct scb_dev_attn *a)
{
    struct scb_sparse_attn_cuda_args x;
    memset(&x, 0, sizeof x);
    x.q = a->q;
    x.k = a->k;
    x.v = a->v;
    x.out = a->out;
    x.Tq = (int)a->T;
    x.Tk = (int)a->Tk;
    x.Hq = (int)a->H;
    x.Hkv = (int)a->Hs;
    x.D = (int)a->D;
    x.kv_tok_stride = a->D;                 /* (Hs, cap, D) storage */
    x.kv_head_stride = a->cap * a->D;
    x.scale = a->scale;
    return x;
}

static int shape_prefill(void *state, const struct scb_dev_attn *a, double *density, struct scb_ctx *ctx)
{
    const struct dev_shape *s = state;
    const int64_t T = (int64_t)a->T, off = (int64_t)a->Tk - T, w = (int64_t)s->n_init + s->n_local;
    int64_t n_last = s->tri ? s->n_last : 0;
    if (n_last > T - 1) n_last = T - 1;
    if (n_last < 0) n_last = 0;
    const int64_t dense_from = T - n_last;
    /* exact pair counts, as scb_ashape_keys / the CPU driver count them */
    double got = 0, causal = 0;
    for (int64_t i = 0; i < T; i++) {
        const int64_t nc = i + off + 1;
        causal += (double)nc;
        got += (double)(i >= dense_from || nc < w ? nc : w);
    }
    *density = causal > 0 ? got / causal : 1.0;
    if (got == causal) return scb_model_dev_dense(a, ctx);
    struct scb_sparse_attn_cuda_args x = dev_args(a);
    x.n_init = s->n_init;
    x.n_local = s->n_local;
    x.dense_from = (int)dense_from;
    return scb_cuda_sparse_attn(a->cc, &x, ctx);
}

const struct scb_dev_method_ops scb_dev_a_shape = {
    .name = "a_shape", .create = ashape_create, .destroy = shape_destroy, .prefill = shape_prefill,
};

const struct scb_dev_method_ops scb_dev_tri_shape = {
    .name = "tri_shape", .create = trishape_create, .destroy = shape_destroy, .prefill = shape_prefill,
};

/* ---- MInference ------------------------------------------------------------------------------- */
struct dev_minf {
    const struct scb_minf_config *cfg;    /* borrowed from the CPU instance (lives as long as the binding) */
    int last_q, block_topk, starting_layer;
    struct scb_minf_cuda_pattern *pat;    /* (Hq) one layer's patterns */
    struct scb_cuda_minf_ws *ws;
    void *cc;
};

static void minf_destroy(void *state)
{
    struct dev_minf *s = state;
    if (!s) return;
    scb_cuda_minf_ws_destroy(s->cc, s->ws);
    scb_free(s->pat);
    scb_free(s);
}

static int minf_create(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                       struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_minf_config *c = m->state;
    if (!c || c->L != mi->L || c->H != mi->Hq)
        return scb_err(ctx, SCB_E_INVAL, "minference (cuda): the method instance has no config for %d layers x %d "
                       "heads", mi->L, mi->Hq);
    struct dev_minf *s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "minference (cuda): out of memory");
    s->cfg = c;
    s->cc = cc;
    s->last_q = scb_method_opt_int(m, "last_q");
    s->block_topk = scb_method_opt_int(m, "block_topk");
    s->starting_layer = scb_method_opt_int(m, "starting_layer");
    s->pat = scb_malloc(sizeof *s->pat * (size_t)c->H);
    if (!s->pat) { rc = scb_err(ctx, SCB_E_NOMEM, "minference (cuda): out of memory"); goto out; }
    SCB_TRY(scb_cuda_minf_ws_create(&s->ws, ctx));
    *state = s;
    s = NULL;
out:
    minf_destroy(s);
    return rc;
}

static int minf_prefill(void *state, const struct scb_dev_attn *a, double *density, struct scb_ctx *ctx)
{
    struct dev_minf *s = state;
    const struct scb_minf_config *c = s->cfg;
    if (a->layer >= (size_t)c->L || a->H != (size_t)c->H)
        return scb_err(ctx, SCB_E_INVAL, "minference (cuda): layer %zu / %zu heads outside the config (%d x %d)",
                       a->layer, a->H, c->L, c->H);
    *density = 1.0;
    if ((long)a->layer < s->starting_layer || a->T != a->Tk || a->T <= 1) return scb_model_dev_dense(a, ctx);
    for (int h = 0; h < c->H; h++) {
        const struct scb_minf_pattern *p = &c->p[a->layer * (size_t)c->H + (size_t)h];
        s->pat[h].type = p->type;
        s->pat[h].v = p->v;
        s->pat[h].s = p->s;
    }
    struct scb_sparse_attn_cuda_args x = dev_args(a);
    return scb_cuda_minf_prefill(a->cc, s->ws, &x, s->pat, s->last_q, s->block_topk, density, ctx);
}

const struct scb_dev_method_ops scb_dev_minference = {
    .name = "minference", .create = minf_create, .destroy = minf_destroy, .prefill = minf_prefill,
};
