/* model_cuda.c — the forward pass on the CUDA backend: device bf16 weights, device bf16 KV
 * cache, one activation arena (see model_cuda.h). */
#include "harness/model_cuda.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/cuda/backend_cuda.h"
#include "kernels/kernels_cuda.h"
#include "kernels/util.h"

#define ALIGN_BYTES 256
#define LM_ROWS 64            /* rows of the LM head computed (and downloaded) at a time */

struct dlayer {
    const uint16_t *attn_norm;             /* (d) */
    const uint16_t *wq, *wk, *wv, *wo;     /* (H*D, d) (Hkv*D, d) (Hkv*D, d) (d, H*D); wq|wk|wv
                                              back to back: one (H*D + 2*Hkv*D, d) */
    const uint16_t *bq, *bk, *bv, *bo;     /* (H*D) (Hkv*D) (Hkv*D) (d) or NULL; bq|bk|bv too */
    const uint16_t *q_norm, *k_norm;       /* (D) (D): per-head RMSNorm before RoPE (Qwen3) or NULL */
    const uint16_t *mlp_norm;              /* (d) */
    const uint16_t *wg, *wu, *wd;          /* (ff, d) (ff, d) (d, ff); wu = wg + ff*d: one (2ff, d) */
    const uint16_t *bg, *bu, *bd;          /* (ff) (ff) (d) or NULL; bu = bg + ff */
};

struct scb_model_cuda {
    struct scb_cuda_ctx *cc;               /* borrowed from the backend */
    const struct scb_model_config *c;      /* borrowed */
    void *weights;                         /* device arena of every weight, bf16 */
    size_t weight_bytes;
    const uint16_t *embed;                 /* (V, d) */
    const uint16_t *norm;                  /* (d) */
    const uint16_t *lm_head;               /* (V, d), = embed when tied */
    struct dlayer *layers;                 /* (L) host array of device pointers */
    float *inv_freq;                       /* (D/2) device */
    /* activation arena for up to ws_T tokens (device) */
    void *arena;
    size_t ws_T;
    uint16_t *x, *xn, *tmp;                /* (T, d) */
    uint16_t *q;                           /* (T, H*D); for T = 1 (1, H*D + 2*Hkv*D): q|k|v */
    uint16_t *att;                         /* (T, H*D) */
    uint16_t *k, *v;                       /* (T, Hkv*D) */
    uint16_t *gate;                        /* (T, 2ff): the fused gate|up projection */
    uint16_t *up;                          /* (T, ff): silu(gate) * up */
    float *cos, *sin;                      /* (T, D/2) */
    int32_t *ids;                          /* (T) */
    float *logits;                         /* (min(T, LM_ROWS), V) fp32 */
    int32_t *next;                         /* (1) */
    /* decode steps as CUDA graphs (SCB_CUDA_GRAPHS: 1 = recorded once and replayed,
       rerecord = recorded anew every step, 0 = off) */
    int graphs;                            /* GRAPHS_* */
    struct scb_cuda_graph *graph;
    int32_t *h_io;                         /* (2) pinned host: the step's input id, its argmax */
    /* replayed graphs: what the recorded step baked in (a change records it anew) and the step
       values it reads from device memory */
    struct gkey {
        uint16_t *kc, *vc;                 /* the cache's (L, Hs, cap, D) storage */
        size_t cap, Hs;
        void *arena;                       /* the activation arena (its pointers are baked in) */
        int n_splits;                      /* decode attention partitions */
        struct scb_dev_hooks hooks;        /* the method's step hooks (step_dev NULL: dense) */
        uint64_t hook_key;                 /* what its step_prep said the launches bake in */
        int valid;
    } gk;
    int32_t *h_step;                       /* (2 + 2L) pinned host: id, pos, per layer len, len+1 */
    int32_t *d_step;                       /* (2 + 2L) device copy, written inside the graph */
};

enum { GRAPHS_OFF = 0, GRAPHS_REPLAY = 1, GRAPHS_RERECORD = 2 };

struct kv_dev {
    struct scb_cuda_ctx *cc;               /* borrowed: the backend outlives its caches */
    uint16_t *k, *v;                       /* (L, Hkv, cap, D) bf16 each */
};

static size_t align_up(size_t b) { return (b + ALIGN_BYTES - 1) / ALIGN_BYTES * ALIGN_BYTES; }

/* ---- weights ---------------------------------------------------------------------------- */
struct upload {
    struct scb_model_cuda *d;
    const struct scb_safetensors *st;
    size_t off;                            /* next free byte of the arena (pass 2) */
    size_t total;                          /* bytes needed (pass 1) */
    int pass;                              /* 1: size, 2: upload */
    uint16_t *stage16;                     /* host staging for converted tensors */
    float *stage32;
};

enum { STAGE_ELEMS = 1 << 20 };

/* Upload tensor `name` to p (bf16). */
static int upload_at(struct upload *u, uint16_t *p, const char *name, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_st_tensor *t = scb_safetensors_find(u->st, name);
    if (!t) return scb_err(ctx, SCB_E_NOTFOUND, "%s: missing tensor '%s'", scb_safetensors_source(u->st), name);
    if (t->dtype == SCB_DTYPE_BF16)
        return scb_cuda_upload(u->d->cc, p, t->data, t->numel * sizeof(uint16_t), ctx);
    const size_t esz = scb_dtype_size(t->dtype);
    for (size_t o = 0; o < t->numel; o += STAGE_ELEMS) {
        size_t cnt = t->numel - o < STAGE_ELEMS ? t->numel - o : STAGE_ELEMS;
        scb_dtype_to_f32(t->dtype, (const char *)t->data + o * esz, u->stage32, cnt);
        for (size_t i = 0; i < cnt; i++) u->stage16[i] = scb_bf16_from_f32(u->stage32[i]);
        SCB_TRY(scb_cuda_upload(u->d->cc, p + o, u->stage16, cnt * sizeof(uint16_t), ctx));
    }
out:
    return rc;
}

/* Place tensors names[0..n) back to back in the arena (pass 1 counts the bytes, pass 2
 * uploads): dst[i] = start + the elements before it, so projections of the same input form one
 * (sum of rows, in) matrix for a single GEMM (q|k|v, gate|up) and each is still its own. */
static int putn(struct upload *u, const uint16_t **dst[], const char *const names[], size_t n,
                struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t elems = 0;
    for (size_t i = 0; i < n; i++) {
        const struct scb_st_tensor *t = scb_safetensors_find(u->st, names[i]);
        if (!t) return scb_err(ctx, SCB_E_NOTFOUND, "%s: missing tensor '%s'", scb_safetensors_source(u->st), names[i]);
        elems += t->numel;
    }
    const size_t bytes = align_up(elems * sizeof(uint16_t));
    if (u->pass == 1) { u->total += bytes; return SCB_OK; }
    uint16_t *p = (uint16_t *)((char *)u->d->weights + u->off);
    u->off += bytes;
    for (size_t i = 0; i < n; i++) {
        *dst[i] = p;
        SCB_TRY(upload_at(u, p, names[i], ctx));
        p += scb_safetensors_find(u->st, names[i])->numel;
    }
out:
    return rc;
}

static int put(struct upload *u, const uint16_t **dst, struct scb_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int put(struct upload *u, const uint16_t **dst, struct scb_ctx *ctx, const char *fmt, ...)
{
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const uint16_t **dsts[1] = {dst};
    const char *names[1] = {name};
    return putn(u, dsts, names, 1, ctx);
}

static int walk(struct upload *u, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_model_cuda *d = u->d;
    const struct scb_model_config *c = d->c;
    SCB_TRY(put(u, &d->embed, ctx, "model.embed_tokens.weight"));
    SCB_TRY(put(u, &d->norm, ctx, "model.norm.weight"));
    if (!c->tie_embeddings) SCB_TRY(put(u, &d->lm_head, ctx, "lm_head.weight"));
    for (size_t l = 0; l < c->L; l++) {
        struct dlayer *w = &d->layers[l];
        const char *p = "model.layers";
        SCB_TRY(put(u, &w->attn_norm, ctx, "%s.%zu.input_layernorm.weight", p, l));
        char n0[160], n1[160], n2[160];
        const char *names[3] = {n0, n1, n2};
        snprintf(n0, sizeof n0, "%s.%zu.self_attn.q_proj.weight", p, l);
        snprintf(n1, sizeof n1, "%s.%zu.self_attn.k_proj.weight", p, l);
        snprintf(n2, sizeof n2, "%s.%zu.self_attn.v_proj.weight", p, l);
        const uint16_t **qkv[3] = {&w->wq, &w->wk, &w->wv};
        SCB_TRY(putn(u, qkv, names, 3, ctx));                             /* (H*D + 2*Hkv*D, d) */
        SCB_TRY(put(u, &w->wo, ctx, "%s.%zu.self_attn.o_proj.weight", p, l));
        if (c->attn_bias || c->qkv_bias) {
            snprintf(n0, sizeof n0, "%s.%zu.self_attn.q_proj.bias", p, l);
            snprintf(n1, sizeof n1, "%s.%zu.self_attn.k_proj.bias", p, l);
            snprintf(n2, sizeof n2, "%s.%zu.self_attn.v_proj.bias", p, l);
            const uint16_t **bqkv[3] = {&w->bq, &w->bk, &w->bv};
            SCB_TRY(putn(u, bqkv, names, 3, ctx));                        /* (H*D + 2*Hkv*D) */
        }
        if (c->attn_bias) SCB_TRY(put(u, &w->bo, ctx, "%s.%zu.self_attn.o_proj.bias", p, l));
        if (c->qk_norm) {
            SCB_TRY(put(u, &w->q_norm, ctx, "%s.%zu.self_attn.q_norm.weight", p, l));     /* (D) */
            SCB_TRY(put(u, &w->k_norm, ctx, "%s.%zu.self_attn.k_norm.weight", p, l));     /* (D) */
        }
        SCB_TRY(put(u, &w->mlp_norm, ctx, "%s.%zu.post_attention_layernorm.weight", p, l));
        snprintf(n0, sizeof n0, "%s.%zu.mlp.gate_proj.weight", p, l);
        snprintf(n1, sizeof n1, "%s.%zu.mlp.up_proj.weight", p, l);
        const uint16_t **gu[2] = {&w->wg, &w->wu};
        SCB_TRY(putn(u, gu, names, 2, ctx));                              /* (2ff, d) */
        SCB_TRY(put(u, &w->wd, ctx, "%s.%zu.mlp.down_proj.weight", p, l));
        if (c->mlp_bias) {
            snprintf(n0, sizeof n0, "%s.%zu.mlp.gate_proj.bias", p, l);
            snprintf(n1, sizeof n1, "%s.%zu.mlp.up_proj.bias", p, l);
            const uint16_t **bgu[2] = {&w->bg, &w->bu};
            SCB_TRY(putn(u, bgu, names, 2, ctx));                         /* (2ff) */
            SCB_TRY(put(u, &w->bd, ctx, "%s.%zu.mlp.down_proj.bias", p, l));
        }
    }
out:
    return rc;
}

int scb_model_cuda_load(struct scb_model_cuda **out, struct scb_backend *be,
                        const struct scb_model_config *c, const struct scb_safetensors *st,
                        struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_model_cuda *d = NULL;
    struct upload u = {0};
    *out = NULL;
    struct scb_cuda_ctx *cc = scb_backend_cuda_ctx(be);
    if (!cc) return scb_err(ctx, SCB_E_INVAL, "CUDA engine: backend '%s' is not the CUDA backend", be->ops->name);
    if (c->D % 2 || c->D > 256)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "CUDA engine: head_dim %zu is not supported (even, at most 256)",
                       c->D);
    d = scb_calloc(1, sizeof *d);
    if (!d) return scb_err(ctx, SCB_E_NOMEM, "CUDA engine: out of memory");
    d->cc = cc;
    d->c = c;
    d->layers = scb_calloc(c->L, sizeof *d->layers);
    if (!d->layers) { rc = scb_err(ctx, SCB_E_NOMEM, "CUDA engine: out of memory"); goto out; }
    u.d = d;
    u.st = st;
    u.pass = 1;
    SCB_TRY(walk(&u, ctx));
    SCB_TRY(scb_cuda_malloc(cc, &d->weights, u.total, ctx));
    d->weight_bytes = u.total;
    u.stage16 = scb_malloc(STAGE_ELEMS * sizeof(uint16_t));
    u.stage32 = scb_malloc(STAGE_ELEMS * sizeof(float));
    if (!u.stage16 || !u.stage32) { rc = scb_err(ctx, SCB_E_NOMEM, "CUDA engine: out of memory"); goto out; }
    u.pass = 2;
    SCB_TRY(walk(&u, ctx));
    if (c->tie_embeddings) d->lm_head = d->embed;
    /* on by default: the step recorded once and replayed was faster at every length measured
     * (H200: 0.981 vs 1.049 ms/token at 4K, 1.114 vs 1.196 at 32K, 1.556 vs 1.640 at 128K;
     * docs/performance.md); SCB_CUDA_GRAPHS=0 turns graphs off, =rerecord records every step */
    const char *g = getenv("SCB_CUDA_GRAPHS");
    if (g && !strcmp(g, "0")) d->graphs = GRAPHS_OFF;
    else if (!g || !*g || !strcmp(g, "1") || !strcmp(g, "replay")) d->graphs = GRAPHS_REPLAY;
    else if (!strcmp(g, "rerecord")) d->graphs = GRAPHS_RERECORD;
    else {
        rc = scb_err(ctx, SCB_E_INVAL, "CUDA engine: SCB_CUDA_GRAPHS='%s' (expected 0, 1 or rerecord)", g);
        goto out;
    }
    if (d->graphs) {
        SCB_TRY(scb_cuda_graph_create(cc, &d->graph, ctx));
        SCB_TRY(scb_cuda_host_alloc(cc, (void **)&d->h_io, 2 * sizeof(int32_t), ctx));
    }
    if (d->graphs == GRAPHS_REPLAY) {
        SCB_TRY(scb_cuda_host_alloc(cc, (void **)&d->h_step, (2 + 2 * c->L) * sizeof(int32_t), ctx));
        SCB_TRY(scb_cuda_malloc(cc, (void **)&d->d_step, (2 + 2 * c->L) * sizeof(int32_t), ctx));
    }
    SCB_TRY(scb_cuda_malloc(cc, (void **)&d->inv_freq, c->D / 2 * sizeof(float), ctx));
    SCB_TRY(scb_cuda_upload(cc, d->inv_freq, c->inv_freq, c->D / 2 * sizeof(float), ctx));
    *out = d;
    d = NULL;
out:
    if (rc < 0 && ctx && !strstr(ctx->msg, "CUDA")) scb_err_prefix(ctx, "CUDA engine: ");
    scb_free(u.stage16);
    scb_free(u.stage32);
    scb_model_cuda_destroy(d);
    return rc;
}

void scb_model_cuda_destroy(struct scb_model_cuda *d)
{
    if (!d) return;
    scb_cuda_free(d->cc, d->arena);
    scb_cuda_graph_destroy(d->graph);
    scb_cuda_host_free(d->cc, d->h_io);
    scb_cuda_host_free(d->cc, d->h_step);
    scb_cuda_free(d->cc, d->d_step);
    scb_cuda_free(d->cc, d->inv_freq);
    scb_cuda_free(d->cc, d->weights);
    scb_free(d->layers);
    scb_free(d);
}

size_t scb_model_cuda_weight_bytes(const struct scb_model_cuda *d) { return d->weight_bytes; }

void scb_model_cuda_graph_stats(const struct scb_model_cuda *d, long *steps, long *instantiations)
{
    scb_cuda_graph_stats(d->graph, steps, instantiations);
}

/* ---- KV cache ---------------------------------------------------------------------------- */
static void kv_dev_free(void *p)
{
    struct kv_dev *s = p;
    if (!s) return;
    scb_cuda_free(s->cc, s->k);
    scb_cuda_free(s->cc, s->v);
    scb_free(s);
}

int scb_model_cuda_kv_is_device(const struct scb_kv_cache *kv) { return kv->ext_free == kv_dev_free; }

int scb_model_cuda_kv_create(struct scb_model_cuda *d, size_t Hs, size_t cap, struct scb_kv_cache **out,
                             struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = d->c;
    struct kv_dev *s = NULL;
    *out = NULL;
    if (!cap) return scb_err(ctx, SCB_E_INVAL, "kv cache: capacity must be > 0");
    if (!Hs || Hs % c->Hkv || c->H % Hs)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: %zu stored heads for %zu KV heads and %zu query heads", Hs,
                       c->Hkv, c->H);
    const size_t elems = c->L * Hs * cap * c->D;                 /* (L, Hs, cap, D) */
    if (elems / cap != c->L * Hs * c->D)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: size overflow for %zu tokens", cap);
    s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "kv cache: out of memory");
    s->cc = d->cc;
    rc = scb_cuda_malloc(d->cc, (void **)&s->k, elems * sizeof(uint16_t), ctx);
    if (rc == SCB_OK) rc = scb_cuda_malloc(d->cc, (void **)&s->v, elems * sizeof(uint16_t), ctx);
    if (rc < 0) {
        scb_err_prefix(ctx, "device KV cache of %zu tokens (%zu MiB): ", cap,
                       (size_t)(2 * elems * sizeof(uint16_t) >> 20));
        kv_dev_free(s);
        return rc;
    }
    rc = scb_kv_cache_create_external(out, c->L, Hs, c->D, cap, sizeof(uint16_t), s, kv_dev_free, ctx);
    if (rc == SCB_OK) (*out)->Hin = c->Hkv;
    return rc;
}

/* ---- forward ----------------------------------------------------------------------------- */
static int ensure_ws(struct scb_model_cuda *d, size_t T, struct scb_ctx *ctx)
{
    if (T <= d->ws_T) return SCB_OK;
    const struct scb_model_config *c = d->c;
    const size_t dm = c->d_model, qd = c->H * c->D, kvd = c->Hkv * c->D, ff = c->d_ff, half = c->D / 2;
    const size_t lm = T < LM_ROWS ? T : LM_ROWS;
    const size_t sz[] = {
        T * dm * 2, T * dm * 2, T * dm * 2, (T * qd + 2 * kvd) * 2, T * qd * 2, T * kvd * 2, T * kvd * 2,
        T * ff * 2 * 2, T * ff * 2, T * half * 4, T * half * 4, T * 4, lm * c->V * 4, 4,
    };
    size_t total = 0, off[sizeof sz / sizeof sz[0]];
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) { off[i] = total; total += align_up(sz[i]); }
    scb_cuda_free(d->cc, d->arena);
    d->arena = NULL;
    d->ws_T = 0;
    int rc = scb_cuda_malloc(d->cc, &d->arena, total, ctx);
    if (rc < 0) return scb_err_prefix(ctx, "CUDA engine: activations of %zu tokens (%zu MiB): ", T, total >> 20), rc;
    char *a = d->arena;
    d->x = (uint16_t *)(a + off[0]);
    d->xn = (uint16_t *)(a + off[1]);
    d->tmp = (uint16_t *)(a + off[2]);
    d->q = (uint16_t *)(a + off[3]);
    d->att = (uint16_t *)(a + off[4]);
    d->k = (uint16_t *)(a + off[5]);
    d->v = (uint16_t *)(a + off[6]);
    d->gate = (uint16_t *)(a + off[7]);
    d->up = (uint16_t *)(a + off[8]);
    d->cos = (float *)(a + off[9]);
    d->sin = (float *)(a + off[10]);
    d->ids = (int32_t *)(a + off[11]);
    d->logits = (float *)(a + off[12]);
    d->next = (int32_t *)(a + off[13]);
    d->ws_T = T;
    return SCB_OK;
}

/* Dense attention of one layer over the device cache: the tensor-core kernels for D 64/128
 * (split-K decode when the query block is small), the plain kernel otherwise. */
int scb_model_cuda_dense(const struct scb_dev_attn *a, struct scb_ctx *ctx)
{
    struct scb_cuda_ctx *cc = a->cc;
    struct scb_attn_cuda_args x = {
        .q = a->q, .k = a->k, .v = a->v, .out = a->out, .lse = NULL,
        .Tq = (int)a->T, .Tk = (int)a->Tk, .Hq = (int)a->H, .Hkv = (int)a->Hs, .D = (int)a->D,
        .kv_tok_stride = a->D, .kv_head_stride = a->cap * a->D, .scale = a->scale,
    };
    if (a->D != 64 && a->D != 128) return scb_attn_generic_cuda(cc, &x, ctx);
    if (a->T * (a->H / a->Hs) <= 64) return scb_attn_decode_cuda(cc, &x, 0, ctx);
    return scb_attn_prefill_cuda(cc, &x, ctx);
}

/* The launches of one dense single-token decode step that wants the argmax, for a graph
 * recorded once and replayed: everything that changes between steps comes from d->d_step
 * (copied from the pinned d->h_step by the first node), everything else is d->gk and the
 * model's fixed pointers. */
static int replay_step_launches(void *user, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_model_cuda *d = user;
    const struct scb_model_config *c = d->c;
    struct scb_cuda_ctx *cc = d->cc;
    const struct gkey *g = &d->gk;
    const int dm = (int)c->d_model, qd = (int)(c->H * c->D), kvd = (int)(c->Hkv * c->D), ff = (int)c->d_ff,
              V = (int)c->V, H = (int)c->H, Hkv = (int)c->Hkv, D = (int)c->D;
    const float eps = (float)c->rms_eps;
    SCB_TRY(scb_cuda_upload_async(cc, d->d_step, d->h_step, (2 + 2 * c->L) * sizeof(int32_t), ctx));
    SCB_TRY(scb_cuda_embed(cc, d->x, d->embed, V, dm, d->d_step, 1, ctx));                   /* (1, d) */
    SCB_TRY(scb_cuda_rope_table_dev(cc, d->inv_freq, D / 2, d->d_step + 1, 1, c->attn_scaling, d->cos, d->sin,
                                    ctx));
    for (size_t l = 0; l < c->L; l++) {
        const struct dlayer *w = &d->layers[l];
        const size_t lay = l * g->Hs * g->cap * c->D;
        SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x, w->attn_norm, 1, dm, eps, ctx));
        SCB_TRY(scb_cuda_gemm(cc, d->q, 0, d->xn, w->wq, w->bq, 1, dm, qd + 2 * kvd, 0, ctx)); /* q|k|v */
        uint16_t *kk = d->q + qd, *vv = d->q + qd + kvd;
        if (w->q_norm) {
            SCB_TRY(scb_cuda_rmsnorm(cc, d->q, d->q, w->q_norm, H, D, eps, ctx));            /* (H, D) */
            SCB_TRY(scb_cuda_rmsnorm(cc, kk, kk, w->k_norm, Hkv, D, eps, ctx));              /* (Hkv, D) */
        }
        SCB_TRY(scb_cuda_rope_cs(cc, d->q, 1, H, D, 0, d->cos, d->sin, ctx));
        SCB_TRY(scb_cuda_rope_cs(cc, kk, 1, Hkv, D, 0, d->cos, d->sin, ctx));
        SCB_TRY(scb_cuda_kv_append_dev(cc, g->kc + lay, g->vc + lay, kk, vv, 1, Hkv, (int)g->Hs, D, g->cap,
                                       d->d_step + 2 + 2 * l, ctx));
        const struct scb_attn_cuda_args x = {
            .q = d->q, .k = g->kc + lay, .v = g->vc + lay, .out = d->att, .lse = NULL,
            .Tq = 1, .Tk = 0, .Hq = H, .Hkv = (int)g->Hs, .D = D,
            .kv_tok_stride = c->D, .kv_head_stride = g->cap * c->D, .scale = (float)(1.0 / sqrt((double)c->D)),
        };
        if (g->hooks.step_dev) {
            const struct scb_dev_attn at = {
                .cc = cc, .q = d->q, .out = d->att, .k = g->kc + lay, .v = g->vc + lay, .kv = NULL, .layer = l,
                .T = 1, .H = c->H, .Hs = g->Hs, .D = c->D, .cap = g->cap, .Tk = (size_t)d->h_step[3 + 2 * l],
                .scale = x.scale,
            };
            SCB_TRY(g->hooks.step_dev(g->hooks.user, &at, d->d_step + 3 + 2 * l, ctx));         /* (1, H, D) */
        } else {
            SCB_TRY(scb_attn_decode_dev_cuda(cc, &x, d->d_step + 3 + 2 * l, g->n_splits, ctx)); /* (1, H, D) */
        }
        SCB_TRY(scb_cuda_gemm(cc, d->tmp, 0, d->att, w->wo, w->bo, 1, qd, dm, 0, ctx));
        SCB_TRY(scb_cuda_add(cc, d->x, d->tmp, (size_t)dm, ctx));
        SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x, w->mlp_norm, 1, dm, eps, ctx));
        SCB_TRY(scb_cuda_gemm(cc, d->gate, 0, d->xn, w->wg, w->bg, 1, dm, 2 * ff, 0, ctx));
        SCB_TRY(scb_cuda_swiglu(cc, d->up, d->gate, d->gate + ff, 1, ff, 2 * (size_t)ff, ctx));
        SCB_TRY(scb_cuda_gemm(cc, d->tmp, 0, d->up, w->wd, w->bd, 1, ff, dm, 0, ctx));
        SCB_TRY(scb_cuda_add(cc, d->x, d->tmp, (size_t)dm, ctx));
    }
    SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x, d->norm, 1, dm, eps, ctx));
    SCB_TRY(scb_cuda_gemm(cc, d->logits, 1, d->xn, d->lm_head, NULL, 1, dm, V, 0, ctx));
    SCB_TRY(scb_cuda_argmax(cc, d->next, d->logits, 0, 1, V, ctx));
    SCB_TRY(scb_cuda_download_async(cc, d->h_io + 1, d->next, sizeof(int32_t), ctx));
out:
    return rc;
}

/* One decode step through the replayed graph (recorded again when what it baked in changed). */
static int forward_replay(struct scb_model_cuda *d, struct scb_kv_cache *kv, int32_t id, int32_t *next,
                          const struct scb_dev_hooks *hooks, double *flops, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = d->c;
    struct scb_cuda_ctx *cc = d->cc;
    const struct kv_dev *s = kv->ext;
    const int64_t pos0 = kv->seen;
    size_t maxlen = 0;
    for (size_t l = 0; l < c->L; l++) {
        const size_t len = scb_kv_cache_len(kv, l, 0);
        if (len + 1 > kv->cap)
            return scb_err(ctx, SCB_E_INVAL, "CUDA engine: layer %zu's cache is full (%zu of %zu)", l, len, kv->cap);
        if (len > maxlen) maxlen = len;
        d->h_step[2 + 2 * l] = (int32_t)len;
        d->h_step[3 + 2 * l] = (int32_t)(len + 1);
    }
    d->h_step[0] = id;
    d->h_step[1] = (int32_t)pos0;
    const struct scb_attn_cuda_args sa = {.Tq = 1, .Tk = (int)(maxlen + 1), .Hq = (int)c->H, .Hkv = (int)kv->Hkv,
                                          .D = (int)c->D};
    struct gkey want = {.kc = s->k, .vc = s->v, .cap = kv->cap, .Hs = kv->Hkv, .arena = d->arena,
                        .n_splits = scb_attn_decode_splits(cc, &sa), .valid = 1};
    for (size_t l = 0; l < c->L; l++) SCB_TRY(scb_kv_cache_append_meta(kv, l, 1, pos0, ctx));
    if (hooks->decode) {
        /* the method's host side of the step, layer by layer (its bookkeeping sees the appended
         * entry, as its decode hook would), and what its launches bake in */
        want.hooks = *hooks;
        want.hook_key = SCB_HASH64_INIT;
        for (size_t l = 0; l < c->L; l++) {
            const size_t lay = l * kv->Hkv * kv->cap * c->D;
            const struct scb_dev_attn at = {
                .cc = cc, .q = d->q, .out = d->att, .k = s->k + lay, .v = s->v + lay, .kv = kv, .layer = l,
                .T = 1, .H = c->H, .Hs = kv->Hkv, .D = c->D, .cap = kv->cap, .Tk = (size_t)d->h_step[3 + 2 * l],
                .scale = (float)(1.0 / sqrt((double)c->D)),
            };
            uint64_t k = 0;
            if (hooks->step_prep) SCB_TRY(hooks->step_prep(hooks->user, &at, &k, ctx));
            want.hook_key = scb_hash64(&k, sizeof k, want.hook_key);
        }
    }
    const struct gkey *h = &d->gk;
    if (!h->valid || h->kc != want.kc || h->vc != want.vc || h->cap != want.cap || h->Hs != want.Hs ||
        h->arena != want.arena || h->n_splits != want.n_splits || h->hooks.user != want.hooks.user ||
        h->hooks.step_dev != want.hooks.step_dev || h->hook_key != want.hook_key) {
        d->gk = want;
        rc = scb_cuda_graph_record(cc, d->graph, replay_step_launches, d, ctx);
        if (rc < 0) {
            d->gk.valid = 0;
            scb_err_prefix(ctx, "CUDA engine: recording the decode step as a CUDA graph (SCB_CUDA_GRAPHS=0 turns "
                           "graphs off): ");
            return rc;
        }
    }
    SCB_TRY(scb_cuda_graph_replay(cc, d->graph, ctx));
    scb_kv_cache_advance(kv, 1);
    SCB_TRY(scb_cuda_sync(cc, ctx));
    *next = d->h_io[1];
    if (flops) {
        const double dm = (double)c->d_model, qd = (double)(c->H * c->D), kvd = (double)(c->Hkv * c->D);
        *flops = 2.0 * c->L * (dm * qd + 2.0 * dm * kvd + qd * dm + 3.0 * dm * c->d_ff) + 2.0 * dm * c->V;
    }
out:
    return rc;
}

/* 1 when a one-token step with these hooks can be the replayed graph: no decode hook, or one
 * whose step_graphable says yes for every layer. */
static int hooks_graphable(const struct scb_dev_hooks *hooks, const struct scb_kv_cache *kv, size_t L)
{
    if (!hooks->decode) return 1;
    if (!hooks->step_graphable) return 0;
    for (size_t l = 0; l < L; l++)
        if (!hooks->step_graphable(hooks->user, kv, l)) return 0;
    return 1;
}

int scb_model_cuda_forward(struct scb_model_cuda *d, struct scb_kv_cache *kv, const int32_t *ids,
                           size_t n, float *logits, int all_logits, int32_t *next,
                           const struct scb_dev_hooks *hooks, double *flops, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = d->c;
    struct scb_cuda_ctx *cc = d->cc;
    const struct kv_dev *s = kv->ext;
    if (!scb_model_cuda_kv_is_device(kv) || kv->Hin != c->Hkv || kv->Hkv % c->Hkv || c->H % kv->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "CUDA engine: the KV cache is not a device cache of this model "
                       "(create it with scb_model_kv_create)");
    static const struct scb_dev_hooks no_hooks = {0};
    int capturing = 0;                       /* a re-recorded graph's capture is open */
    if (!hooks) hooks = &no_hooks;
    size_t before = 0;                       /* entries before this chunk: 0 = the first prefill */
    for (size_t h = 0; h < kv->Hkv; h++) before += scb_kv_cache_len(kv, 0, h);
    const int first_prefill = before == 0;
    SCB_TRY(ensure_ws(d, n, ctx));
    const int T = (int)n, dm = (int)c->d_model, qd = (int)(c->H * c->D), kvd = (int)(c->Hkv * c->D),
              ff = (int)c->d_ff, V = (int)c->V, H = (int)c->H, Hkv = (int)c->Hkv, D = (int)c->D;
    const float eps = (float)c->rms_eps;
    const int64_t pos0 = kv->seen;
    double fl = 0;
    /* a dense single-token step that only wants the argmax runs as one CUDA graph: recorded once
     * and replayed (the decode attention kernel for D 64/128 reads its key count from the device),
     * or recorded anew every step */
    const int graph_step = d->graphs && n == 1 && !logits && next && !first_prefill;
    if (graph_step && d->graphs == GRAPHS_REPLAY && (c->D == 64 || c->D == 128) && kv->seen < INT32_MAX &&
        kv->cap < INT32_MAX && hooks_graphable(hooks, kv, c->L))
        return forward_replay(d, kv, ids[0], next, hooks, flops, ctx);
    const int graph = graph_step && !hooks->decode && d->graphs == GRAPHS_RERECORD;
    if (graph) {
        d->h_io[0] = ids[0];
        SCB_TRY(scb_cuda_graph_begin(cc, d->graph, ctx));
        capturing = 1;
        SCB_TRY(scb_cuda_upload_async(cc, d->ids, d->h_io, sizeof(int32_t), ctx));
    } else {
        SCB_TRY(scb_cuda_upload(cc, d->ids, ids, n * sizeof(int32_t), ctx));
    }
    SCB_TRY(scb_cuda_embed(cc, d->x, d->embed, V, dm, d->ids, T, ctx));               /* (T, d) */
    SCB_TRY(scb_cuda_rope_table(cc, d->inv_freq, D / 2, pos0, T, c->attn_scaling, d->cos, d->sin, ctx));
    for (size_t l = 0; l < c->L; l++) {
        const struct dlayer *w = &d->layers[l];
        const size_t len = scb_kv_cache_len(kv, l, 0);
        const size_t lay = l * kv->Hkv * kv->cap * kv->D;
        SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x, w->attn_norm, T, dm, eps, ctx));
        uint16_t *kk = d->k, *vv = d->v;                                                  /* (T, Hkv, D) */
        if (T == 1) {
            /* one token: q|k|v in one GEMM, each part packed as it is a single row */
            SCB_TRY(scb_cuda_gemm(cc, d->q, 0, d->xn, w->wq, w->bq, 1, dm, qd + 2 * kvd, 0, ctx));
            kk = d->q + qd;
            vv = d->q + qd + kvd;
        } else {
            SCB_TRY(scb_cuda_gemm(cc, d->q, 0, d->xn, w->wq, w->bq, T, dm, qd, 0, ctx));  /* (T, H, D) */
            SCB_TRY(scb_cuda_gemm(cc, kk, 0, d->xn, w->wk, w->bk, T, dm, kvd, 0, ctx));
            SCB_TRY(scb_cuda_gemm(cc, vv, 0, d->xn, w->wv, w->bv, T, dm, kvd, 0, ctx));
        }
        if (w->q_norm) {
            /* Qwen3: RMSNorm over each head's D values, in place; q is T*H packed rows of D and
             * k T*Hkv (for T = 1 both sit in the q|k|v row) */
            SCB_TRY(scb_cuda_rmsnorm(cc, d->q, d->q, w->q_norm, T * H, D, eps, ctx));       /* (T*H, D) */
            SCB_TRY(scb_cuda_rmsnorm(cc, kk, kk, w->k_norm, T * Hkv, D, eps, ctx));         /* (T*Hkv, D) */
        }
        SCB_TRY(scb_cuda_rope_cs(cc, d->q, T, H, D, 0, d->cos, d->sin, ctx));
        SCB_TRY(scb_cuda_rope_cs(cc, kk, T, Hkv, D, 0, d->cos, d->sin, ctx));
        SCB_TRY(scb_cuda_kv_append(cc, s->k + lay, s->v + lay, kk, vv, T, Hkv, (int)kv->Hkv, D,
                                   kv->cap, len, ctx));
        SCB_TRY(scb_kv_cache_append_meta(kv, l, n, pos0, ctx));
        const struct scb_dev_attn at = {
            .cc = cc, .q = d->q, .out = d->att, .k = s->k + lay, .v = s->v + lay, .kv = kv, .layer = l,
            .T = n, .H = c->H, .Hs = kv->Hkv, .D = c->D, .cap = kv->cap, .Tk = len + n,
            .scale = (float)(1.0 / sqrt((double)c->D)),
        };
        scb_dev_attn_fn fn = first_prefill ? hooks->prefill : hooks->decode;
        if (fn) SCB_TRY(fn(hooks->user, &at, ctx));                                      /* (T, H, D) */
        else SCB_TRY(scb_model_cuda_dense(&at, ctx));
        if (first_prefill && hooks->after_prefill) SCB_TRY(hooks->after_prefill(hooks->user, &at, ctx));
        SCB_TRY(scb_cuda_gemm(cc, d->tmp, 0, d->att, w->wo, w->bo, T, qd, dm, 0, ctx));
        SCB_TRY(scb_cuda_add(cc, d->x, d->tmp, n * (size_t)dm, ctx));
        SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x, w->mlp_norm, T, dm, eps, ctx));
        /* gate|up in one GEMM: (T, 2ff), row t = [gate_t, up_t] */
        SCB_TRY(scb_cuda_gemm(cc, d->gate, 0, d->xn, w->wg, w->bg, T, dm, 2 * ff, 0, ctx));
        SCB_TRY(scb_cuda_swiglu(cc, d->up, d->gate, d->gate + ff, T, ff, 2 * (size_t)ff, ctx)); /* (T, ff) */
        SCB_TRY(scb_cuda_gemm(cc, d->tmp, 0, d->up, w->wd, w->bd, T, ff, dm, 0, ctx));
        SCB_TRY(scb_cuda_add(cc, d->x, d->tmp, n * (size_t)dm, ctx));
        fl += 2.0 * T * ((double)dm * qd + 2.0 * dm * kvd + (double)qd * dm + 3.0 * dm * ff);
    }
    scb_kv_cache_advance(kv, n);
    if (logits || next) {
        const size_t r_begin = logits && all_logits ? 0 : n - 1;
        const size_t blk = n < LM_ROWS ? n : LM_ROWS;
        size_t cnt = 0;
        for (size_t r0 = r_begin; r0 < n; r0 += cnt) {
            cnt = n - r0 < blk ? n - r0 : blk;
            SCB_TRY(scb_cuda_rmsnorm(cc, d->xn, d->x + r0 * (size_t)dm, d->norm, (int)cnt, dm, eps, ctx));
            SCB_TRY(scb_cuda_gemm(cc, d->logits, 1, d->xn, d->lm_head, NULL, (int)cnt, dm, V, 0, ctx));
            fl += 2.0 * (double)cnt * dm * V;
            if (logits) {
                float *dst = all_logits ? logits + r0 * (size_t)V : logits;
                SCB_TRY(scb_cuda_download(cc, dst, d->logits, cnt * (size_t)V * sizeof(float), ctx));
            }
        }
        if (next) {
            SCB_TRY(scb_cuda_argmax(cc, d->next, d->logits + (cnt - 1) * (size_t)V, 0, 1, V, ctx));
            if (capturing) {
                SCB_TRY(scb_cuda_download_async(cc, d->h_io + 1, d->next, sizeof(int32_t), ctx));
                capturing = 0;
                SCB_TRY(scb_cuda_graph_launch(cc, d->graph, ctx));
                SCB_TRY(scb_cuda_sync(cc, ctx));
                *next = d->h_io[1];
            } else {
                SCB_TRY(scb_cuda_download(cc, next, d->next, sizeof(int32_t), ctx));
            }
        }
    }
    SCB_TRY(scb_cuda_sync(cc, ctx));
    if (flops) *flops = fl;
out:
    if (capturing) {
        scb_cuda_graph_abort(cc, d->graph);
        scb_err_prefix(ctx, "CUDA engine: recording the decode step as a CUDA graph (unset "
                       "SCB_CUDA_GRAPHS to turn graphs off): ");
    }
    return rc;
}
