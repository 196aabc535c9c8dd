/* kv_cache.c — the two-segment KV cache (see kv_cache.h). Host fp32 storage, one allocation
 * per array at creation, no allocation on the append path. */
#include "kernels/kv_cache.h"

#include <string.h>

#include "kernels/alloc.h"

int scb_kv_cache_create(struct scb_kv_cache **out, size_t L, size_t Hkv, size_t D, size_t cap,
                        struct scb_ctx *ctx)
{
    return scb_kv_cache_create_heads(out, L, Hkv, Hkv, D, cap, ctx);
}

int scb_kv_cache_create_heads(struct scb_kv_cache **out, size_t L, size_t Hin, size_t Hkv, size_t D,
                              size_t cap, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_kv_cache *kv = NULL;
    *out = NULL;
    if (!L || !Hkv || !D || !cap)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: layers, heads, head_dim and capacity must be > 0 "
                       "(got L=%zu Hkv=%zu D=%zu cap=%zu)", L, Hkv, D, cap);
    if (!Hin || Hkv % Hin)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: %zu stored heads is not a multiple of %zu input heads",
                       Hkv, Hin);
    size_t rows = L * Hkv * cap;
    if (rows / L / Hkv != cap || rows > SIZE_MAX / (D * sizeof(float)))
        return scb_err(ctx, SCB_E_INVAL, "kv cache: size overflow (L=%zu Hkv=%zu D=%zu cap=%zu)",
                       L, Hkv, D, cap);
    kv = scb_calloc(1, sizeof *kv);
    if (!kv) { rc = scb_err(ctx, SCB_E_NOMEM, "kv cache: out of memory"); goto out; }
    kv->L = L; kv->Hkv = Hkv; kv->D = D; kv->cap = cap; kv->Hin = Hin;
    kv->elem_bytes = sizeof(float);
    kv->k = scb_malloc(rows * D * sizeof(float));        /* (L, Hkv, cap, D) */
    kv->v = scb_malloc(rows * D * sizeof(float));        /* (L, Hkv, cap, D) */
    kv->pos = scb_malloc(rows * sizeof(int64_t));        /* (L, Hkv, cap) */
    kv->n_global = scb_calloc(L * Hkv, sizeof(size_t));  /* (L, Hkv) */
    kv->n_temp = scb_calloc(L, sizeof(size_t));          /* (L) */
    if (!kv->k || !kv->v || !kv->pos || !kv->n_global || !kv->n_temp) {
        rc = scb_err(ctx, SCB_E_NOMEM, "kv cache: out of memory allocating %zu MiB for %zu tokens",
                     (size_t)(2 * rows * D * sizeof(float) >> 20), cap);
        goto out;
    }
    kv->mode = SCB_KV_APPEND_GLOBAL;
    *out = kv;
    kv = NULL;
out:
    scb_kv_cache_destroy(kv);
    return rc;
}

int scb_kv_cache_create_external(struct scb_kv_cache **out, size_t L, size_t Hkv, size_t D,
                                 size_t cap, size_t elem_bytes, void *ext,
                                 void (*ext_free)(void *ext), struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_kv_cache *kv = NULL;
    *out = NULL;
    if (!L || !Hkv || !D || !cap || !elem_bytes || !ext) {
        rc = scb_err(ctx, SCB_E_INVAL, "kv cache: layers, heads, head_dim, capacity and element size must "
                     "be > 0 and the storage given (got L=%zu Hkv=%zu D=%zu cap=%zu elem=%zu)", L, Hkv, D,
                     cap, elem_bytes);
        goto out;
    }
    size_t rows = L * Hkv * cap;
    if (rows / L / Hkv != cap) {
        rc = scb_err(ctx, SCB_E_INVAL, "kv cache: size overflow (L=%zu Hkv=%zu cap=%zu)", L, Hkv, cap);
        goto out;
    }
    kv = scb_calloc(1, sizeof *kv);
    if (!kv) { rc = scb_err(ctx, SCB_E_NOMEM, "kv cache: out of memory"); goto out; }
    kv->L = L; kv->Hkv = Hkv; kv->D = D; kv->cap = cap; kv->Hin = Hkv;
    kv->elem_bytes = elem_bytes;
    kv->ext = ext;
    kv->ext_free = ext_free;
    ext = NULL;
    kv->pos = scb_malloc(rows * sizeof(int64_t));        /* (L, Hkv, cap) */
    kv->n_global = scb_calloc(L * Hkv, sizeof(size_t));  /* (L, Hkv) */
    kv->n_temp = scb_calloc(L, sizeof(size_t));          /* (L) */
    if (!kv->pos || !kv->n_global || !kv->n_temp) {
        rc = scb_err(ctx, SCB_E_NOMEM, "kv cache: out of memory for the bookkeeping of %zu tokens", cap);
        goto out;
    }
    kv->mode = SCB_KV_APPEND_GLOBAL;
    *out = kv;
    kv = NULL;
out:
    if (ext && ext_free) ext_free(ext);
    scb_kv_cache_destroy(kv);
    return rc;
}

void scb_kv_cache_destroy(struct scb_kv_cache *kv)
{
    if (!kv) return;
    if (kv->ext && kv->ext_free) kv->ext_free(kv->ext);
    scb_free(kv->k);
    scb_free(kv->v);
    scb_free(kv->pos);
    scb_free(kv->n_global);
    scb_free(kv->n_temp);
    scb_free(kv);
}

void scb_kv_cache_set_mode(struct scb_kv_cache *kv, int mode)
{
    SCB_ASSERT(mode == SCB_KV_APPEND_GLOBAL || mode == SCB_KV_APPEND_TEMP);
    kv->mode = mode;
}

static size_t row_index(const struct scb_kv_cache *kv, size_t layer, size_t head)
{
    return (layer * kv->Hkv + head) * kv->cap;
}

size_t scb_kv_cache_len(const struct scb_kv_cache *kv, size_t layer, size_t head)
{
    return kv->n_global[layer * kv->Hkv + head] + kv->n_temp[layer];
}

const float *scb_kv_cache_k(const struct scb_kv_cache *kv, size_t layer, size_t head)
{
    if (!kv->k) return NULL;
    return kv->k + row_index(kv, layer, head) * kv->D;
}

const float *scb_kv_cache_v(const struct scb_kv_cache *kv, size_t layer, size_t head)
{
    if (!kv->v) return NULL;
    return kv->v + row_index(kv, layer, head) * kv->D;
}

const int64_t *scb_kv_cache_positions(const struct scb_kv_cache *kv, size_t layer, size_t head)
{
    return kv->pos + row_index(kv, layer, head);
}

int scb_kv_cache_check_room(const struct scb_kv_cache *kv, size_t T, struct scb_ctx *ctx)
{
    for (size_t l = 0; l < kv->L; l++)
        for (size_t h = 0; h < kv->Hkv; h++) {
            size_t n = scb_kv_cache_len(kv, l, h);
            if (n + T > kv->cap)
                return scb_err(ctx, SCB_E_INVAL, "kv cache full: layer %zu head %zu holds %zu entries, "
                               "%zu more would exceed the capacity of %zu tokens", l, h, n, T, kv->cap);
        }
    if (kv->mode == SCB_KV_APPEND_GLOBAL && T > 0 && kv->n_temp[0] > 0)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: cannot append to the global segment while the temp "
                       "segment holds %zu entries (drop or commit it first)", kv->n_temp[0]);
    return SCB_OK;
}

int scb_kv_cache_append_meta(struct scb_kv_cache *kv, size_t layer, size_t T, int64_t pos0,
                             struct scb_ctx *ctx)
{
    if (layer >= kv->L)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: layer %zu out of range (%zu layers)", layer, kv->L);
    if (kv->mode == SCB_KV_APPEND_GLOBAL && T > 0 && kv->n_temp[layer] > 0)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: cannot append to the global segment while the temp "
                       "segment holds %zu entries (drop or commit it first)", kv->n_temp[layer]);
    for (size_t h = 0; h < kv->Hkv; h++)
        if (scb_kv_cache_len(kv, layer, h) + T > kv->cap)
            return scb_err(ctx, SCB_E_INVAL, "kv cache full: layer %zu head %zu holds %zu entries, "
                           "%zu more would exceed the capacity of %zu tokens", layer, h,
                           scb_kv_cache_len(kv, layer, h), T, kv->cap);
    for (size_t h = 0; h < kv->Hkv; h++) {
        size_t base = row_index(kv, layer, h) + scb_kv_cache_len(kv, layer, h);
        for (size_t t = 0; t < T; t++) kv->pos[base + t] = pos0 + (int64_t)t;
        if (kv->mode == SCB_KV_APPEND_GLOBAL) kv->n_global[layer * kv->Hkv + h] += T;
    }
    if (kv->mode == SCB_KV_APPEND_TEMP) kv->n_temp[layer] += T;
    return SCB_OK;
}

int scb_kv_cache_append(struct scb_kv_cache *kv, size_t layer, const float *k, const float *v,
                        size_t T, int64_t pos0, struct scb_ctx *ctx)
{
    if (!kv->k)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "kv cache: its entries live in device memory; host append "
                       "is not available");
    if (layer >= kv->L)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: layer %zu out of range (%zu layers)", layer, kv->L);
    if (kv->mode == SCB_KV_APPEND_GLOBAL && T > 0 && kv->n_temp[layer] > 0)
        return scb_err(ctx, SCB_E_INVAL, "kv cache: cannot append to the global segment while the temp "
                       "segment holds %zu entries (drop or commit it first)", kv->n_temp[layer]);
    for (size_t h = 0; h < kv->Hkv; h++)
        if (scb_kv_cache_len(kv, layer, h) + T > kv->cap)
            return scb_err(ctx, SCB_E_INVAL, "kv cache full: layer %zu head %zu holds %zu entries, "
                           "%zu more would exceed the capacity of %zu tokens", layer, h,
                           scb_kv_cache_len(kv, layer, h), T, kv->cap);
    const size_t D = kv->D, Hkv = kv->Hkv, Hin = kv->Hin, rep = kv->Hkv / kv->Hin;
    for (size_t h = 0; h < Hkv; h++) {
        size_t base = row_index(kv, layer, h) + scb_kv_cache_len(kv, layer, h), hi = h / rep;
        for (size_t t = 0; t < T; t++) {
            memcpy(kv->k + (base + t) * D, k + (t * Hin + hi) * D, D * sizeof(float));
            memcpy(kv->v + (base + t) * D, v + (t * Hin + hi) * D, D * sizeof(float));
            kv->pos[base + t] = pos0 + (int64_t)t;
        }
        if (kv->mode == SCB_KV_APPEND_GLOBAL) kv->n_global[layer * Hkv + h] += T;
    }
    if (kv->mode == SCB_KV_APPEND_TEMP) kv->n_temp[layer] += T;
    return SCB_OK;
}

void scb_kv_cache_advance(struct scb_kv_cache *kv, size_t T)
{
    kv->seen += (int64_t)T;
    if (kv->mode == SCB_KV_APPEND_TEMP) kv->seen_temp += (int64_t)T;
}

void scb_kv_cache_drop_temp(struct scb_kv_cache *kv)
{
    for (size_t l = 0; l < kv->L; l++) kv->n_temp[l] = 0;
    kv->seen -= kv->seen_temp;
    kv->seen_temp = 0;
}

void scb_kv_cache_commit_temp(struct scb_kv_cache *kv)
{
    for (size_t l = 0; l < kv->L; l++) {
        for (size_t h = 0; h < kv->Hkv; h++) kv->n_global[l * kv->Hkv + h] += kv->n_temp[l];
        kv->n_temp[l] = 0;
    }
    kv->seen_temp = 0;
}

void scb_kv_cache_clear(struct scb_kv_cache *kv)
{
    memset(kv->n_global, 0, kv->L * kv->Hkv * sizeof(size_t));
    memset(kv->n_temp, 0, kv->L * sizeof(size_t));
    kv->seen = 0;
    kv->seen_temp = 0;
    kv->mode = SCB_KV_APPEND_GLOBAL;
}

int scb_kv_cache_keep(struct scb_kv_cache *kv, size_t layer, size_t head, const size_t *idx,
                      size_t n, struct scb_ctx *ctx)
{
    if (layer >= kv->L || head >= kv->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "kv cache keep: layer %zu head %zu out of range", layer, head);
    if (kv->n_temp[layer])
        return scb_err(ctx, SCB_E_INVAL, "kv cache keep: temp segment of layer %zu is not empty", layer);
    size_t ng = kv->n_global[layer * kv->Hkv + head];
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= ng || (i && idx[i] <= idx[i - 1]))
            return scb_err(ctx, SCB_E_INVAL, "kv cache keep: index %zu (= %zu) not strictly ascending "
                           "or not below the %zu global entries", i, idx[i], ng);
    const size_t D = kv->D;
    size_t base = row_index(kv, layer, head);
    for (size_t i = 0; i < n; i++) {
        if (idx[i] == i) continue;
        kv->pos[base + i] = kv->pos[base + idx[i]];
        if (!kv->k) continue;              /* external storage: its owner moves the entries */
        memmove(kv->k + (base + i) * D, kv->k + (base + idx[i]) * D, D * sizeof(float));
        memmove(kv->v + (base + i) * D, kv->v + (base + idx[i]) * D, D * sizeof(float));
    }
    kv->n_global[layer * kv->Hkv + head] = n;
    return SCB_OK;
}

void scb_kv_cache_bytes(const struct scb_kv_cache *kv, size_t *entries, size_t *logical,
                        size_t *physical)
{
    size_t e = 0;
    for (size_t l = 0; l < kv->L; l++)
        for (size_t h = 0; h < kv->Hkv; h++) e += scb_kv_cache_len(kv, l, h);
    if (entries) *entries = e;
    if (logical) *logical = e * kv->D * 2 * kv->elem_bytes;
    if (physical) *physical = kv->L * kv->Hkv * kv->cap * (2 * kv->D * kv->elem_bytes + sizeof(int64_t));
}
