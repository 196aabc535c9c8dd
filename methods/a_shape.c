/* a_shape.c — A-shape and Tri-shape prefill patterns (see a_shape.h). */
#include "methods/a_shape.h"

#include <stddef.h>

#include "methods/dense.h"

int scb_ashape_allowed(int p, int j, int n_init, int n_local)
{
    return j >= 0 && j <= p && (p - j < n_local || j < n_init);
}

int scb_ashape_keys(int p, int n_init, int n_local, int32_t *idx)
{
    int w0 = p - n_local + 1;               /* first window key */
    if (w0 < 0) w0 = 0;
    int ns = n_init < w0 ? n_init : w0;     /* sinks strictly before the window */
    if (ns < 0) ns = 0;
    int n = 0;
    for (int j = 0; j < ns; j++) idx[n++] = j;
    for (int j = w0; j <= p; j++) idx[n++] = j;
    return n;
}

struct shape_u { int off, n_init, n_local, dense_from; };
static int shape_keys(void *u, int h, int i, int32_t *idx, int cap)
{
    (void)h; (void)cap;
    struct shape_u *s = u;
    int p = i + s->off;
    if (i >= s->dense_from) {
        for (int j = 0; j <= p; j++) idx[j] = j;
        return p + 1;
    }
    return scb_ashape_keys(p, s->n_init, s->n_local, idx);
}

static int check(int n_init, int n_local, struct scb_ctx *ctx)
{
    if (n_init < 0 || n_local < 1)
        return scb_err(ctx, SCB_E_INVAL, "a_shape: need n_init >= 0 and n_local >= 1 (got %d, %d)",
                       n_init, n_local);
    return SCB_OK;
}

int scb_ashape_attn(struct scb_attn_args *a, int n_init, int n_local, struct scb_ctx *ctx)
{
    int rc = check(n_init, n_local, ctx);
    if (rc) return rc;
    struct shape_u s = {a->Tk - a->Tq, n_init, n_local, a->Tq};
    return scb_attn_list_ref(a, shape_keys, &s, ctx);
}

static int tri_last(int Tq, int n_last)
{
    if (n_last > Tq - 1) n_last = Tq - 1;
    return n_last < 0 ? 0 : n_last;
}

int scb_trishape_attn(struct scb_attn_args *a, int n_init, int n_local, int n_last,
                      struct scb_ctx *ctx)
{
    int rc = check(n_init, n_local, ctx);
    if (rc) return rc;
    if (n_last < 0) return scb_err(ctx, SCB_E_INVAL, "tri_shape: n_last must be >= 0 (got %d)", n_last);
    struct shape_u s = {a->Tk - a->Tq, n_init, n_local, a->Tq - tri_last(a->Tq, n_last)};
    return scb_attn_list_ref(a, shape_keys, &s, ctx);
}

void scb_ashape_mask(int Tq, int Tk, int n_init, int n_local, uint8_t *mask)
{
    for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++)
            mask[(size_t)i * Tk + j] = (uint8_t)scb_ashape_allowed(i + Tk - Tq, j, n_init, n_local);
}

void scb_trishape_mask(int Tq, int Tk, int n_init, int n_local, int n_last, uint8_t *mask)
{
    int from = Tq - tri_last(Tq, n_last);
    for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++) {
            int p = i + Tk - Tq;
            mask[(size_t)i * Tk + j] = (uint8_t)(i >= from ? j <= p
                                                 : scb_ashape_allowed(p, j, n_init, n_local));
        }
}

/* ---- method entries ------------------------------------------------------------------------ */
struct ashape_priv { int n_init, n_local, n_last; };

static const struct scb_option ashape_opts[] = {
    {"n_init", SCB_OPT_INT, offsetof(struct ashape_priv, n_init), "128", 0, 1e9, NULL,
     "attention-sink keys every row sees (first tokens)"},
    {"n_local", SCB_OPT_INT, offsetof(struct ashape_priv, n_local), "3968", 1, 1e9, NULL,
     "local window per row, the query itself included"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};
static const struct scb_option trishape_opts[] = {
    {"n_init", SCB_OPT_INT, offsetof(struct ashape_priv, n_init), "128", 0, 1e9, NULL,
     "attention-sink keys every row sees (first tokens)"},
    {"n_local", SCB_OPT_INT, offsetof(struct ashape_priv, n_local), "3968", 1, 1e9, NULL,
     "local window per row, the query itself included"},
    {"n_last", SCB_OPT_INT, offsetof(struct ashape_priv, n_last), "100", 0, 1e9, NULL,
     "last query rows that attend densely (clamped to prompt length - 1)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int ashape_prefill(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    struct ashape_priv *p = m->priv;
    return scb_ashape_attn(a, p->n_init, p->n_local, ctx);
}
static int trishape_prefill(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    struct ashape_priv *p = m->priv;
    return scb_trishape_attn(a, p->n_init, p->n_local, p->n_last, ctx);
}

/* Exact density over a causal N x N prefill. */
static double ashape_density(int64_t N, int64_t n_init, int64_t n_local, int64_t n_last)
{
    if (N <= 0) return 1.0;
    if (n_last > N - 1) n_last = N - 1;
    if (n_last < 0) n_last = 0;
    double total = (double)N * (double)(N + 1) / 2.0, got = 0;
    int64_t w = n_init + n_local;
    for (int64_t p = 0; p < N; p++) got += (p >= N - n_last) ? (double)(p + 1) : (double)(p + 1 < w ? p + 1 : w);
    return got / total;
}

static void ashape_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct ashape_priv *p = m->priv;
    scb_method_cost_dense(cq, out);
    out->prefill_density = ashape_density(cq->N, p->n_init, p->n_local,
                                          m->ops == &scb_method_tri_shape ? p->n_last : 0);
}

const struct scb_method_ops scb_method_a_shape = {
    .abi = SCB_METHOD_ABI, .name = "a_shape", .stage = SCB_STAGE_GENERATION,
    .axis = SCB_AXIS_PREFILL, .caps = SCB_CAP_CPU | SCB_CAP_SPARSE_PREFILL,
    .summary = "static sparse prefill: 128 sink keys + 3968-key local window per query",
    .scbench_name = "vllm_a_shape;dense",
    .priv_size = sizeof(struct ashape_priv), .options = ashape_opts,
    .prefill_attn = ashape_prefill, .cost = ashape_cost,
};

const struct scb_method_ops scb_method_tri_shape = {
    .abi = SCB_METHOD_ABI, .name = "tri_shape", .stage = SCB_STAGE_GENERATION,
    .axis = SCB_AXIS_PREFILL, .caps = SCB_CAP_CPU | SCB_CAP_SPARSE_PREFILL,
    .summary = "A-shape prefill, but the last 100 query rows attend densely (SCBench's own method)",
    .scbench_name = "vllm_tri_shape;dense",
    .priv_size = sizeof(struct ashape_priv), .options = trishape_opts,
    .prefill_attn = trishape_prefill, .cost = ashape_cost,
};
