/* model.c — weights (one fp32 arena) and the forward pass of Llama / Qwen2 / Qwen3 / Mistral
 * (see model.h); on a device backend the weights, KV cache and forward pass belong to the
 * device engine (harness/model_cuda.h) and this file keeps the checks and bookkeeping. */
#include "harness/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "harness/safetensors.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/cacheblend.h"
#include "scb_config.h"
#if SCB_HAVE_CUDA
#include "harness/model_cuda.h"
#include "kernels/cuda/backend_cuda.h"
#endif

struct layer_w {
    float *attn_norm;              /* (d) */
    float *wq, *wk, *wv, *wo;      /* (H*D, d) (Hkv*D, d) (Hkv*D, d) (d, H*D) */
    float *bq, *bk, *bv, *bo;      /* (H*D) (Hkv*D) (Hkv*D) (d) or NULL */
    float *q_norm, *k_norm;        /* (D) (D): per-head RMSNorm before RoPE (Qwen3) or NULL */
    float *mlp_norm;               /* (d) */
    float *wg, *wu, *wd;           /* (ff, d) (ff, d) (d, ff) */
    float *bg, *bu, *bd;           /* (ff) (ff) (d) or NULL */
};

struct scb_model {
    struct scb_model_config cfg;
    struct scb_backend *be;        /* borrowed */
    float *arena;                  /* all weights, fp32 */
    size_t arena_floats;
    float *embed;                  /* (V, d) */
    float *norm;                   /* (d) */
    float *lm_head;                /* (V, d), = embed when tied */
    struct layer_w *layers;        /* (L) */
    struct scb_attn_hooks hooks;
    struct scb_dev_hooks dev_hooks;  /* the device engine's method hooks */
    /* workspace for up to ws_T tokens */
    size_t ws_T;
    float *x, *xn, *tmp;           /* (T, d) */
    float *q, *att;                /* (T, H*D) */
    float *k, *v;                  /* (T, Hkv*D) */
    float *gate, *up;              /* (T, ff) */
    float *cos, *sin;              /* (T, D/2) */
    struct scb_model_stats stats;
    float *next_logits;            /* (V) host logits of scb_model_forward_next (CPU backend) */
#if SCB_HAVE_CUDA
    struct scb_model_cuda *dev;    /* the device engine, when be->ops->device */
#endif
};

/* ---- loading ------------------------------------------------------------------------------ */
struct wspec { char name[128]; int64_t shape[2]; int ndim; float **dst; };

static void shape_str(char *buf, size_t n, const int64_t *s, int nd)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < nd && o < n; i++) o += (size_t)snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)s[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

static int add_spec(struct wspec *sp, size_t *ns, float **dst, int64_t r, int64_t c, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int add_spec(struct wspec *sp, size_t *ns, float **dst, int64_t r, int64_t c, const char *fmt, ...)
{
    struct wspec *w = &sp[(*ns)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->name, sizeof w->name, fmt, ap);
    va_end(ap);
    w->shape[0] = r;
    w->shape[1] = c;
    w->ndim = c ? 2 : 1;
    w->dst = dst;
    return 0;
}

int scb_model_load(struct scb_model **out, const char *dir, struct scb_backend *be, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_model *m = NULL;
    struct scb_safetensors *st = NULL;
    struct wspec *sp = NULL;
    *out = NULL;
    m = scb_calloc(1, sizeof *m);
    if (!m) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    m->be = be;
    SCB_TRY(scb_model_config_load(&m->cfg, dir, ctx));
    const struct scb_model_config *c = &m->cfg;
    m->layers = scb_calloc(c->L, sizeof *m->layers);
    sp = scb_calloc(3 + 18 * c->L, sizeof *sp);
    if (!m->layers || !sp) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    SCB_TRY(scb_safetensors_open_dir(&st, dir, ctx));

    const int64_t d = (int64_t)c->d_model, ff = (int64_t)c->d_ff, qd = (int64_t)(c->H * c->D),
                  kvd = (int64_t)(c->Hkv * c->D), V = (int64_t)c->V;
    size_t ns = 0;
    add_spec(sp, &ns, &m->embed, V, d, "model.embed_tokens.weight");
    add_spec(sp, &ns, &m->norm, d, 0, "model.norm.weight");
    if (!c->tie_embeddings) add_spec(sp, &ns, &m->lm_head, V, d, "lm_head.weight");
    for (size_t l = 0; l < c->L; l++) {
        struct layer_w *w = &m->layers[l];
        const char *p = "model.layers";
        add_spec(sp, &ns, &w->attn_norm, d, 0, "%s.%zu.input_layernorm.weight", p, l);
        add_spec(sp, &ns, &w->wq, qd, d, "%s.%zu.self_attn.q_proj.weight", p, l);
        add_spec(sp, &ns, &w->wk, kvd, d, "%s.%zu.self_attn.k_proj.weight", p, l);
        add_spec(sp, &ns, &w->wv, kvd, d, "%s.%zu.self_attn.v_proj.weight", p, l);
        add_spec(sp, &ns, &w->wo, d, qd, "%s.%zu.self_attn.o_proj.weight", p, l);
        if (c->attn_bias || c->qkv_bias) {
            add_spec(sp, &ns, &w->bq, qd, 0, "%s.%zu.self_attn.q_proj.bias", p, l);
            add_spec(sp, &ns, &w->bk, kvd, 0, "%s.%zu.self_attn.k_proj.bias", p, l);
            add_spec(sp, &ns, &w->bv, kvd, 0, "%s.%zu.self_attn.v_proj.bias", p, l);
        }
        if (c->attn_bias) add_spec(sp, &ns, &w->bo, d, 0, "%s.%zu.self_attn.o_proj.bias", p, l);
        if (c->qk_norm) {
            add_spec(sp, &ns, &w->q_norm, (int64_t)c->D, 0, "%s.%zu.self_attn.q_norm.weight", p, l);
            add_spec(sp, &ns, &w->k_norm, (int64_t)c->D, 0, "%s.%zu.self_attn.k_norm.weight", p, l);
        }
        add_spec(sp, &ns, &w->mlp_norm, d, 0, "%s.%zu.post_attention_layernorm.weight", p, l);
        add_spec(sp, &ns, &w->wg, ff, d, "%s.%zu.mlp.gate_proj.weight", p, l);
        add_spec(sp, &ns, &w->wu, ff, d, "%s.%zu.mlp.up_proj.weight", p, l);
        add_spec(sp, &ns, &w->wd, d, ff, "%s.%zu.mlp.down_proj.weight", p, l);
        if (c->mlp_bias) {
            add_spec(sp, &ns, &w->bg, ff, 0, "%s.%zu.mlp.gate_proj.bias", p, l);
            add_spec(sp, &ns, &w->bu, ff, 0, "%s.%zu.mlp.up_proj.bias", p, l);
            add_spec(sp, &ns, &w->bd, d, 0, "%s.%zu.mlp.down_proj.bias", p, l);
        }
    }
    if (be->ops->device && !scb_backend_supports(be, SCB_OP_MODEL, SCB_BDT_BF16)) {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "backend %s cannot run the model", be->ops->name);
        goto out;
    }
    /* validate every tensor before allocating */
    size_t total = 0;
    for (size_t i = 0; i < ns; i++) {
        const struct scb_st_tensor *t = scb_safetensors_find(st, sp[i].name);
        char want[64], got[64];
        shape_str(want, sizeof want, sp[i].shape, sp[i].ndim);
        if (!t) {
            rc = scb_err(ctx, SCB_E_NOTFOUND, "%s: missing tensor '%s' (expected shape %s)",
                         scb_safetensors_source(st), sp[i].name, want);
            goto out;
        }
        int ok = t->ndim == sp[i].ndim;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == sp[i].shape[k];
        if (!ok) {
            shape_str(got, sizeof got, t->shape, t->ndim);
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: tensor '%s' has shape %s, expected %s", t->file,
                         sp[i].name, got, want);
            goto out;
        }
        total += t->numel;
    }
    if (be->ops->device) {
#if SCB_HAVE_CUDA
        SCB_TRY(scb_model_cuda_load(&m->dev, be, &m->cfg, st, ctx));
        *out = m;
        m = NULL;
#else
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "backend %s: this build has no device engine", be->ops->name);
#endif
        goto out;
    }
    m->arena = scb_malloc(total * sizeof(float));
    if (!m->arena) {
        rc = scb_err(ctx, SCB_E_NOMEM, "out of memory for %zu MiB of fp32 weights", total * 4 >> 20);
        goto out;
    }
    m->arena_floats = total;
    size_t off = 0;
    for (size_t i = 0; i < ns; i++) {
        const struct scb_st_tensor *t = scb_safetensors_find(st, sp[i].name);
        *sp[i].dst = m->arena + off;
        scb_dtype_to_f32(t->dtype, t->data, m->arena + off, t->numel);
        off += t->numel;
    }
    if (c->tie_embeddings) m->lm_head = m->embed;
    *out = m;
    m = NULL;
out:
    if (rc < 0 && ctx && !strstr(ctx->msg, dir)) scb_err_prefix(ctx, "loading model %s: ", dir);
    scb_safetensors_close(st);
    scb_free(sp);
    scb_model_destroy(m);
    return rc;
}

static void free_ws(struct scb_model *m)
{
    float **bufs[] = {&m->x, &m->xn, &m->tmp, &m->q, &m->att, &m->k, &m->v, &m->gate, &m->up, &m->cos, &m->sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) { scb_free(*bufs[i]); *bufs[i] = NULL; }
    m->ws_T = 0;
}

void scb_model_destroy(struct scb_model *m)
{
    if (!m) return;
    free_ws(m);
#if SCB_HAVE_CUDA
    scb_model_cuda_destroy(m->dev);
#endif
    scb_free(m->next_logits);
    scb_free(m->arena);
    scb_free(m->layers);
    scb_model_config_fini(&m->cfg);
    scb_free(m);
}

const struct scb_model_config *scb_model_get_config(const struct scb_model *m) { return &m->cfg; }
struct scb_backend *scb_model_backend(const struct scb_model *m) { return m->be; }
size_t scb_model_weight_bytes(const struct scb_model *m)
{
#if SCB_HAVE_CUDA
    if (m->dev) return scb_model_cuda_weight_bytes(m->dev);
#endif
    return m->arena_floats * sizeof(float);
}

int scb_model_on_device(const struct scb_model *m) { return m->be->ops->device; }

void *scb_model_device_ctx(const struct scb_model *m)
{
#if SCB_HAVE_CUDA
    if (m->dev) return scb_backend_cuda_ctx(m->be);
#endif
    (void)m;
    return NULL;
}

void scb_model_set_attn_hooks(struct scb_model *m, const struct scb_attn_hooks *h)
{
    if (h) m->hooks = *h;
    else memset(&m->hooks, 0, sizeof m->hooks);
}

int scb_model_kv_create(const struct scb_model *m, size_t cap, struct scb_kv_cache **out, struct scb_ctx *ctx)
{
    return scb_model_kv_create_heads(m, m->cfg.Hkv, cap, out, ctx);
}

int scb_model_kv_create_heads(const struct scb_model *m, size_t Hs, size_t cap, struct scb_kv_cache **out,
                              struct scb_ctx *ctx)
{
    *out = NULL;
    if (!Hs || Hs % m->cfg.Hkv || m->cfg.H % Hs)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: %zu stored heads for a model with %zu KV heads and %zu "
                       "query heads (a multiple of the first dividing the second)", Hs, m->cfg.Hkv, m->cfg.H);
#if SCB_HAVE_CUDA
    if (m->dev) return scb_model_cuda_kv_create(m->dev, Hs, cap, out, ctx);
#endif
    return scb_kv_cache_create_heads(out, m->cfg.L, m->cfg.Hkv, Hs, m->cfg.D, cap, ctx);
}

void scb_model_set_dev_hooks(struct scb_model *m, const struct scb_dev_hooks *h)
{
    if (h) m->dev_hooks = *h;
    else memset(&m->dev_hooks, 0, sizeof m->dev_hooks);
}

int scb_model_dev_dense(const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
#if SCB_HAVE_CUDA
    return scb_model_cuda_dense(a, ctx);
#else
    (void)a;
    return scb_err(ctx, SCB_E_UNSUPPORTED, "device attention: this scbench was built without CUDA");
#endif
}

/* graph_steps: the device engine's counter minus its value at the last reset */
static long graph_steps_now(const struct scb_model *m)
{
    long steps = 0, inst = 0;
#if SCB_HAVE_CUDA
    if (m->dev) scb_model_cuda_graph_stats(m->dev, &steps, &inst);
#else
    (void)m;
#endif
    (void)inst;
    return steps;
}

void scb_model_stats(const struct scb_model *m, struct scb_model_stats *out)
{
    *out = m->stats;
    out->graph_steps = graph_steps_now(m) - m->stats.graph_steps;
}

void scb_model_stats_reset(struct scb_model *m)
{
    memset(&m->stats, 0, sizeof m->stats);
    m->stats.graph_steps = graph_steps_now(m);     /* the baseline, subtracted by scb_model_stats */
}

/* ---- forward ------------------------------------------------------------------------------ */
static int ensure_ws(struct scb_model *m, size_t T, struct scb_ctx *ctx)
{
    if (T <= m->ws_T) return SCB_OK;
    const struct scb_model_config *c = &m->cfg;
    free_ws(m);
    size_t d = c->d_model, qd = c->H * c->D, kvd = c->Hkv * c->D, ff = c->d_ff, half = c->D / 2;
    m->x = scb_malloc(T * d * sizeof(float));
    m->xn = scb_malloc(T * d * sizeof(float));
    m->tmp = scb_malloc(T * d * sizeof(float));
    m->q = scb_malloc(T * qd * sizeof(float));
    m->att = scb_malloc(T * qd * sizeof(float));
    m->k = scb_malloc(T * kvd * sizeof(float));
    m->v = scb_malloc(T * kvd * sizeof(float));
    m->gate = scb_malloc(T * ff * sizeof(float));
    m->up = scb_malloc(T * ff * sizeof(float));
    m->cos = scb_malloc(T * half * sizeof(float) + 1);
    m->sin = scb_malloc(T * half * sizeof(float) + 1);
    if (!m->x || !m->xn || !m->tmp || !m->q || !m->att || !m->k || !m->v || !m->gate || !m->up ||
        !m->cos || !m->sin) {
        free_ws(m);
        return scb_err(ctx, SCB_E_NOMEM, "forward: out of memory for the activations of %zu tokens", T);
    }
    m->ws_T = T;
    return SCB_OK;
}

static int mm(struct scb_model *m, const float *x, const float *w, const float *b, float *y, size_t T,
              size_t K, size_t N, struct scb_ctx *ctx)
{
    double t0 = scb_now_ms();
    int rc = m->be->ops->matmul(m->be, x, w, b, y, T, K, N, ctx);
    m->stats.matmul_ms += scb_now_ms() - t0;
    m->stats.matmul_flops += 2.0 * (double)T * (double)K * (double)N;
    return rc;
}

/* Qwen3's q_norm / k_norm: RMSNorm over each head's D values of q (T*H rows) and k (T*Hkv
 * rows), in place, before RoPE; nothing for the other architectures. */
static int qk_norm(struct scb_model *m, const struct layer_w *w, size_t T, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = &m->cfg;
    if (!w->q_norm) return SCB_OK;
    const float eps = (float)c->rms_eps;
    SCB_TRY(m->be->ops->rmsnorm(m->be, m->q, w->q_norm, m->q, T * c->H, c->D, eps, ctx));    /* (T*H, D) */
    SCB_TRY(m->be->ops->rmsnorm(m->be, m->k, w->k_norm, m->k, T * c->Hkv, c->D, eps, ctx));  /* (T*Hkv, D) */
out:
    return rc;
}

/* Rows sel of src (rows of `w` floats) into dst, in order (dst may not alias src). */
static void gather_rows(float *dst, const float *src, const int32_t *sel, size_t n_sel, size_t w)
{
    for (size_t i = 0; i < n_sel; i++) memcpy(dst + i * w, src + (size_t)sel[i] * w, w * sizeof(float));
}

/* The first prefill of n tokens with CacheBlend's selective recompute (struct scb_blend_plan in
 * model.h). The workspace holds n rows; from the check layer on only the first |sel| are live. */
static int forward_blend(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                         struct scb_blend_plan *p, float *logits, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = &m->cfg;
    const struct scb_backend_ops *ops = m->be->ops;
    struct scb_backend *be = m->be;
    const size_t d = c->d_model, qd = c->H * c->D, kvd = c->Hkv * c->D, ff = c->d_ff, half = c->D / 2;
    const float eps = (float)c->rms_eps;
    const int64_t pos0 = kv->seen;
    float *rk = scb_malloc(n * kvd * sizeof(float));     /* (n, Hkv, D) retrieved keys of a layer */
    float *rv = scb_malloc(n * kvd * sizeof(float));     /* (n, Hkv, D) retrieved values */
    float *cs = scb_malloc(n * half * sizeof(float) + 1);   /* (n_sel, D/2) rope tables of sel */
    float *sn = scb_malloc(n * half * sizeof(float) + 1);
    float *gq = scb_malloc(n * qd * sizeof(float));      /* (n_sel, H, D) gathered queries */
    float *gx = scb_malloc(n * d * sizeof(float));       /* (n_sel, d) gathered residual */
    if (!rk || !rv || !cs || !sn || !gq || !gx) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "blend: out of memory for %zu tokens", n));
    if (p->check_layer < 0 || (size_t)p->check_layer >= c->L || !(p->ratio >= 0.0 && p->ratio <= 1.0) ||
        !p->valid || !p->fetch || !p->sel || p->valid[n - 1])
        SCB_TRY(scb_err(ctx, SCB_E_INVAL, "blend: bad plan (check layer %d of %zu, ratio %g, last token %s)",
                        p->check_layer, c->L, p->ratio, p->valid && p->valid[n - 1] ? "retrieved" : "computed"));
    SCB_TRY(ops->embed(be, m->embed, ids, n, d, m->x, ctx));
    SCB_TRY(ops->rope_table(be, c->inv_freq, half, pos0, n, c->attn_scaling, m->cos, m->sin, ctx));
    size_t T = n;                 /* live rows of the workspace */
    const size_t check = (size_t)p->check_layer;
    for (size_t l = 0; l < c->L; l++) {
        const struct layer_w *w = &m->layers[l];
        const float *cosl = l > check ? cs : m->cos, *sinl = l > check ? sn : m->sin;
        SCB_TRY(ops->rmsnorm(be, m->x, w->attn_norm, m->xn, T, d, eps, ctx));
        SCB_TRY(mm(m, m->xn, w->wq, w->bq, m->q, T, d, qd, ctx));    /* (T, H, D) */
        SCB_TRY(mm(m, m->xn, w->wk, w->bk, m->k, T, d, kvd, ctx));   /* (T, Hkv, D) */
        SCB_TRY(mm(m, m->xn, w->wv, w->bv, m->v, T, d, kvd, ctx));   /* (T, Hkv, D) */
        SCB_TRY(qk_norm(m, w, T, ctx));
        SCB_TRY(ops->rope(be, m->q, cosl, sinl, T, c->H, c->D, ctx));
        SCB_TRY(ops->rope(be, m->k, cosl, sinl, T, c->Hkv, c->D, ctx));
        const float *q = m->q;
        if (l < check) {
            SCB_TRY(scb_kv_cache_append(kv, l, m->k, m->v, n, pos0, ctx));
        } else if (l == check) {
            memcpy(rv, m->v, n * kvd * sizeof(float));          /* rows without retrieved KV: no deviation */
            SCB_TRY(p->fetch(p->user, l, rk, rv, ctx));
            int n_sel = 0;
            SCB_TRY(scb_cacheblend_select(m->v, rv, p->valid, (int)n, (int)c->Hkv, (int)c->D, p->ratio,
                                          p->sel, &n_sel, NULL, ctx));
            p->n_sel = (size_t)n_sel;
            SCB_TRY(scb_kv_cache_append(kv, l, m->k, m->v, n, pos0, ctx));
            if (p->n_sel < n) {
                gather_rows(gq, m->q, p->sel, p->n_sel, qd);
                q = gq;
                gather_rows(gx, m->x, p->sel, p->n_sel, d);
                memcpy(m->x, gx, p->n_sel * d * sizeof(float));
            }
            gather_rows(cs, m->cos, p->sel, p->n_sel, half);
            gather_rows(sn, m->sin, p->sel, p->n_sel, half);
            T = p->n_sel;
        } else {
            SCB_TRY(p->fetch(p->user, l, rk, rv, ctx));
            for (size_t i = 0; i < T; i++) {
                memcpy(rk + (size_t)p->sel[i] * kvd, m->k + i * kvd, kvd * sizeof(float));
                memcpy(rv + (size_t)p->sel[i] * kvd, m->v + i * kvd, kvd * sizeof(float));
            }
            SCB_TRY(scb_kv_cache_append(kv, l, rk, rv, n, pos0, ctx));
        }
        struct scb_backend_attn a = {
            .q = q, .out = m->att, .kv = kv, .layer = l, .T = T, .H = c->H, .Hkv = kv->Hkv, .D = c->D,
            .scale = (float)(1.0 / sqrt((double)c->D)),
        };
        SCB_TRY(ops->attn_prefill(be, NULL, &a, ctx));
        SCB_TRY(mm(m, m->att, w->wo, w->bo, m->tmp, T, qd, d, ctx));
        SCB_TRY(ops->add(be, m->x, m->tmp, T * d, ctx));
        SCB_TRY(ops->rmsnorm(be, m->x, w->mlp_norm, m->xn, T, d, eps, ctx));
        SCB_TRY(mm(m, m->xn, w->wg, w->bg, m->gate, T, d, ff, ctx));  /* (T, ff) */
        SCB_TRY(mm(m, m->xn, w->wu, w->bu, m->up, T, d, ff, ctx));    /* (T, ff) */
        SCB_TRY(ops->swiglu(be, m->gate, m->up, m->gate, T * ff, ctx));
        SCB_TRY(mm(m, m->gate, w->wd, w->bd, m->tmp, T, ff, d, ctx));
        SCB_TRY(ops->add(be, m->x, m->tmp, T * d, ctx));
    }
    scb_kv_cache_advance(kv, n);
    if (logits) {
        SCB_TRY(ops->rmsnorm(be, m->x + (T - 1) * d, m->norm, m->xn, 1, d, eps, ctx));
        SCB_TRY(mm(m, m->xn, m->lm_head, NULL, logits, 1, d, c->V, ctx));   /* (V) */
    }
    m->stats.tokens += n;
out:
    scb_free(rk); scb_free(rv); scb_free(cs); scb_free(sn); scb_free(gq); scb_free(gx);
    return rc;
}

/* Checks shared by both engines: nothing is computed or changed when one fails. */
static int forward_check(const struct scb_model *m, const struct scb_kv_cache *kv, const int32_t *ids,
                         size_t n, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = &m->cfg;
    if (n == 0) return scb_err(ctx, SCB_E_INVAL, "forward: no tokens");
    if (kv->L != c->L || kv->Hin != c->Hkv || kv->D != c->D || kv->Hkv % kv->Hin || c->H % kv->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "forward: KV cache shaped (L=%zu, Hkv=%zu, D=%zu, %zu stored heads) "
                       "for a model with (%zu, %zu, %zu, %zu query heads)", kv->L, kv->Hin, kv->D, kv->Hkv,
                       c->L, c->Hkv, c->D, c->H);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= c->V)
            return scb_err(ctx, SCB_E_INVAL, "forward: token id %d at index %zu is outside the vocabulary "
                           "(%zu)", ids[i], i, c->V);
    SCB_TRY(scb_kv_cache_check_room(kv, n, ctx));
    const int64_t pos0 = kv->seen;
    if (c->sliding_window > 0 && pos0 + (int64_t)n > c->sliding_window)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "forward: the sequence reaches %lld tokens, past the model's "
                       "sliding_window of %lld (sliding-window attention is not implemented)",
                       (long long)(pos0 + (int64_t)n), (long long)c->sliding_window);
    if (m->be->ops->device && !kv->ext)
        return scb_err(ctx, SCB_E_INVAL, "forward: a host KV cache given to a model on the %s backend "
                       "(create it with scb_model_kv_create)", m->be->ops->name);
    if (!m->be->ops->device && !kv->k)
        return scb_err(ctx, SCB_E_INVAL, "forward: a device KV cache given to a model on the %s backend",
                       m->be->ops->name);
    if (m->be->ops->device && (m->hooks.prefill || m->hooks.decode || m->hooks.after_prefill || m->hooks.blend))
        return scb_err(ctx, SCB_E_UNSUPPORTED, "forward: attention hooks (long-context methods) are not "
                       "available on the %s backend yet", m->be->ops->name);
out:
    return rc;
}

#if SCB_HAVE_CUDA
static int forward_device(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                          float *logits, int flags, int32_t *next, struct scb_ctx *ctx)
{
    double t_start = scb_now_ms(), fl = 0;
    int rc = forward_check(m, kv, ids, n, ctx);
    if (rc == SCB_OK)
        rc = scb_model_cuda_forward(m->dev, kv, ids, n, logits, (flags & SCB_FWD_ALL_LOGITS) != 0, next,
                                    &m->dev_hooks, &fl, ctx);
    if (rc == SCB_OK) {
        m->stats.tokens += n;
        m->stats.matmul_flops += fl;
    }
    m->stats.forward_ms += scb_now_ms() - t_start;
    return rc;
}
#endif

int scb_model_forward(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                      float *logits, int flags, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = &m->cfg;
    const struct scb_backend_ops *ops = m->be->ops;
    struct scb_backend *be = m->be;
#if SCB_HAVE_CUDA
    if (m->dev) return forward_device(m, kv, ids, n, logits, flags, NULL, ctx);
#endif
    double t_start = scb_now_ms();
    SCB_TRY(forward_check(m, kv, ids, n, ctx));
    const int64_t pos0 = kv->seen;
    size_t before = 0;
    for (size_t h = 0; h < kv->Hkv; h++) before += scb_kv_cache_len(kv, 0, h);
    const int first_prefill = before == 0;
    if (first_prefill && m->hooks.blend && !(flags & SCB_FWD_ALL_LOGITS)) {
        struct scb_blend_plan *plan = NULL;
        SCB_TRY(m->hooks.blend(m, m->hooks.user, ids, n, &plan, ctx));
        if (plan) {
            SCB_TRY(ensure_ws(m, n, ctx));
            rc = forward_blend(m, kv, ids, n, plan, logits, ctx);
            goto out;
        }
    }
    SCB_TRY(ensure_ws(m, n, ctx));

    const size_t d = c->d_model, qd = c->H * c->D, kvd = c->Hkv * c->D, ff = c->d_ff, half = c->D / 2;
    const float eps = (float)c->rms_eps;
    float *x = m->x;        /* (n, d) residual stream */
    float *xn = m->xn;      /* (n, d) normed */
    SCB_TRY(ops->embed(be, m->embed, ids, n, d, x, ctx));
    SCB_TRY(ops->rope_table(be, c->inv_freq, half, pos0, n, c->attn_scaling, m->cos, m->sin, ctx));
    for (size_t l = 0; l < c->L; l++) {
        const struct layer_w *w = &m->layers[l];
        SCB_TRY(ops->rmsnorm(be, x, w->attn_norm, xn, n, d, eps, ctx));
        SCB_TRY(mm(m, xn, w->wq, w->bq, m->q, n, d, qd, ctx));    /* (n, H, D) */
        SCB_TRY(mm(m, xn, w->wk, w->bk, m->k, n, d, kvd, ctx));   /* (n, Hkv, D) */
        SCB_TRY(mm(m, xn, w->wv, w->bv, m->v, n, d, kvd, ctx));   /* (n, Hkv, D) */
        SCB_TRY(qk_norm(m, w, n, ctx));
        SCB_TRY(ops->rope(be, m->q, m->cos, m->sin, n, c->H, c->D, ctx));
        SCB_TRY(ops->rope(be, m->k, m->cos, m->sin, n, c->Hkv, c->D, ctx));
        SCB_TRY(scb_kv_cache_append(kv, l, m->k, m->v, n, pos0, ctx));
        struct scb_backend_attn a = {
            .q = m->q, .out = m->att, .kv = kv, .layer = l, .T = n, .H = c->H, .Hkv = kv->Hkv, .D = c->D,
            .scale = (float)(1.0 / sqrt((double)c->D)),
        };
        if (first_prefill) {
            if (m->hooks.prefill) SCB_TRY(m->hooks.prefill(be, m->hooks.user, &a, ctx));
            else SCB_TRY(ops->attn_prefill(be, NULL, &a, ctx));
            if (m->hooks.after_prefill) SCB_TRY(m->hooks.after_prefill(be, m->hooks.user, kv, &a, ctx));
        } else {
            if (m->hooks.decode) SCB_TRY(m->hooks.decode(be, m->hooks.user, &a, ctx));
            else SCB_TRY(ops->attn_decode(be, NULL, &a, ctx));
        }
        SCB_TRY(mm(m, m->att, w->wo, w->bo, m->tmp, n, qd, d, ctx));
        SCB_TRY(ops->add(be, x, m->tmp, n * d, ctx));
        SCB_TRY(ops->rmsnorm(be, x, w->mlp_norm, xn, n, d, eps, ctx));
        SCB_TRY(mm(m, xn, w->wg, w->bg, m->gate, n, d, ff, ctx));  /* (n, ff) */
        SCB_TRY(mm(m, xn, w->wu, w->bu, m->up, n, d, ff, ctx));    /* (n, ff) */
        SCB_TRY(ops->swiglu(be, m->gate, m->up, m->gate, n * ff, ctx));
        SCB_TRY(mm(m, m->gate, w->wd, w->bd, m->tmp, n, ff, d, ctx));
        SCB_TRY(ops->add(be, x, m->tmp, n * d, ctx));
    }
    scb_kv_cache_advance(kv, n);
    if (!logits) {
        /* a prefill whose logits nobody reads (multi-request context part): no LM head */
    } else if (flags & SCB_FWD_ALL_LOGITS) {
        SCB_TRY(ops->rmsnorm(be, x, m->norm, xn, n, d, eps, ctx));
        SCB_TRY(mm(m, xn, m->lm_head, NULL, logits, n, d, c->V, ctx));   /* (n, V) */
    } else {
        SCB_TRY(ops->rmsnorm(be, x + (n - 1) * d, m->norm, xn, 1, d, eps, ctx));
        SCB_TRY(mm(m, xn, m->lm_head, NULL, logits, 1, d, c->V, ctx));   /* (V) */
    }
    m->stats.tokens += n;
out:
    m->stats.forward_ms += scb_now_ms() - t_start;
    return rc;
}

int scb_model_forward_next(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                           int32_t *next, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
#if SCB_HAVE_CUDA
    if (m->dev) return forward_device(m, kv, ids, n, NULL, SCB_FWD_LAST_LOGITS, next, ctx);
#endif
    if (!m->next_logits) {
        m->next_logits = scb_malloc(m->cfg.V * sizeof(float));     /* (V) */
        if (!m->next_logits) return scb_err(ctx, SCB_E_NOMEM, "forward: out of memory for the logits");
    }
    SCB_TRY(scb_model_forward(m, kv, ids, n, m->next_logits, SCB_FWD_LAST_LOGITS, ctx));
    SCB_TRY(m->be->ops->argmax(m->be, m->next_logits, m->cfg.V, next, ctx));
out:
    return rc;
}
