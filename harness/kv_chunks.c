/* kv_chunks.c — CacheBlend's chunk KV store (see kv_chunks.h). */
#include "harness/kv_chunks.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/kv_cache.h"
#include "kernels/util.h"

struct chunk_entry {
    uint64_t hash;
    int32_t *ids;                  /* (chunk) */
    float *k, *v;                  /* (L, chunk, Hkv, D) keys post-RoPE at 0..chunk-1, values */
};

struct scb_kv_chunks {
    struct scb_model *m;           /* borrowed */
    size_t chunk, L, Hkv, D;
    struct chunk_entry *e;
    size_t n, cap;
    float *cos, *sin;              /* (chunk, D/2) rotation tables of one offset */
};

int scb_kv_chunks_create(struct scb_kv_chunks **out, struct scb_model *m, size_t chunk, struct scb_ctx *ctx)
{
    *out = NULL;
    if (!m || chunk == 0) return scb_err(ctx, SCB_E_INVAL, "kv chunks: no model or chunk size 0");
    const struct scb_model_config *c = scb_model_get_config(m);
    struct scb_kv_chunks *s = scb_calloc(1, sizeof *s);
    if (!s) return scb_err(ctx, SCB_E_NOMEM, "kv chunks: out of memory");
    s->m = m;
    s->chunk = chunk;
    s->L = c->L;
    s->Hkv = c->Hkv;
    s->D = c->D;
    s->cos = scb_malloc(chunk * (c->D / 2) * sizeof(float) + 1);
    s->sin = scb_malloc(chunk * (c->D / 2) * sizeof(float) + 1);
    if (!s->cos || !s->sin) {
        scb_kv_chunks_destroy(s);
        return scb_err(ctx, SCB_E_NOMEM, "kv chunks: out of memory");
    }
    *out = s;
    return SCB_OK;
}

void scb_kv_chunks_destroy(struct scb_kv_chunks *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        scb_free(s->e[i].ids);
        scb_free(s->e[i].k);
        scb_free(s->e[i].v);
    }
    scb_free(s->e);
    scb_free(s->cos);
    scb_free(s->sin);
    scb_free(s);
}

static uint64_t ids_hash(const struct scb_kv_chunks *s, const int32_t *ids)
{
    return scb_hash64(ids, s->chunk * sizeof *ids, 0x5cb1e4dULL);
}

long scb_kv_chunks_find(const struct scb_kv_chunks *s, const int32_t *ids)
{
    uint64_t h = ids_hash(s, ids);
    for (size_t i = 0; i < s->n; i++)
        if (s->e[i].hash == h && !memcmp(s->e[i].ids, ids, s->chunk * sizeof *ids)) return (long)i;
    return -1;
}

int scb_kv_chunks_put(struct scb_kv_chunks *s, const int32_t *ids, long *index, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_kv_cache *kv = NULL;
    struct chunk_entry e = {0};
    long at = scb_kv_chunks_find(s, ids);
    if (at >= 0) { *index = at; return SCB_OK; }
    const size_t row = s->Hkv * s->D, per_layer = s->chunk * row;
    e.hash = ids_hash(s, ids);
    e.ids = scb_malloc(s->chunk * sizeof *e.ids);
    e.k = scb_malloc(s->L * per_layer * sizeof(float));
    e.v = scb_malloc(s->L * per_layer * sizeof(float));
    if (!e.ids || !e.k || !e.v) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "kv chunks: out of memory for a chunk"));
    memcpy(e.ids, ids, s->chunk * sizeof *ids);
    SCB_TRY(scb_model_kv_create(s->m, s->chunk, &kv, ctx));
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    SCB_TRY(scb_model_forward(s->m, kv, ids, s->chunk, NULL, SCB_FWD_LAST_LOGITS, ctx));
    for (size_t l = 0; l < s->L; l++)
        for (size_t g = 0; g < s->Hkv; g++) {
            const float *ks = scb_kv_cache_k(kv, l, g), *vs = scb_kv_cache_v(kv, l, g);   /* (chunk, D) */
            for (size_t t = 0; t < s->chunk; t++) {
                memcpy(e.k + l * per_layer + t * row + g * s->D, ks + t * s->D, s->D * sizeof(float));
                memcpy(e.v + l * per_layer + t * row + g * s->D, vs + t * s->D, s->D * sizeof(float));
            }
        }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        struct chunk_entry *ne = scb_realloc(s->e, cap * sizeof *ne);
        if (!ne) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "kv chunks: out of memory"));
        s->e = ne;
        s->cap = cap;
    }
    s->e[s->n] = e;
    memset(&e, 0, sizeof e);
    *index = (long)s->n++;
out:
    scb_kv_cache_destroy(kv);
    scb_free(e.ids);
    scb_free(e.k);
    scb_free(e.v);
    return rc;
}

int scb_kv_chunks_get(struct scb_kv_chunks *s, long index, size_t layer, int64_t off, float *k, float *v,
                      size_t k_stride, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const size_t row = s->Hkv * s->D, per_layer = s->chunk * row, half = s->D / 2;
    if (index < 0 || (size_t)index >= s->n || layer >= s->L || off < 0 || k_stride < row)
        return scb_err(ctx, SCB_E_INVAL, "kv chunks: no chunk %ld layer %zu (store of %zu chunks, %zu layers), "
                       "offset %lld", index, layer, s->n, s->L, (long long)off);
    const struct chunk_entry *e = &s->e[index];
    for (size_t t = 0; t < s->chunk; t++) {
        memcpy(k + t * k_stride, e->k + layer * per_layer + t * row, row * sizeof(float));
        memcpy(v + t * k_stride, e->v + layer * per_layer + t * row, row * sizeof(float));
    }
    if (off == 0) return SCB_OK;
    struct scb_backend *be = scb_model_backend(s->m);
    const struct scb_model_config *c = scb_model_get_config(s->m);
    /* R(off) for every row: the table of one position repeated; attn_scaling already in the keys */
    SCB_TRY(be->ops->rope_table(be, c->inv_freq, half, off, 1, 1.0f, s->cos, s->sin, ctx));
    for (size_t t = 1; t < s->chunk; t++) {
        memcpy(s->cos + t * half, s->cos, half * sizeof(float));
        memcpy(s->sin + t * half, s->sin, half * sizeof(float));
    }
    if (k_stride == row) {
        SCB_TRY(be->ops->rope(be, k, s->cos, s->sin, s->chunk, s->Hkv, s->D, ctx));
    } else {
        for (size_t t = 0; t < s->chunk; t++)
            SCB_TRY(be->ops->rope(be, k + t * k_stride, s->cos, s->sin, 1, s->Hkv, s->D, ctx));
    }
out:
    return rc;
}

size_t scb_kv_chunks_count(const struct scb_kv_chunks *s) { return s->n; }
size_t scb_kv_chunks_size(const struct scb_kv_chunks *s) { return s->chunk; }
size_t scb_kv_chunks_bytes(const struct scb_kv_chunks *s)
{
    return s->n * 2 * s->L * s->chunk * s->Hkv * s->D * sizeof(float);
}
