/* kv_chunks.h — CacheBlend's KV store (spec/methods.md §9.1, the LMCache part): the K/V of
 * fixed-size token chunks, each computed INDEPENDENTLY (the chunk alone through the model at
 * positions 0..chunk-1, on a scratch cache), keyed by the chunk's token ids (content, not prefix:
 * a chunk is found wherever it sits in a later prompt). Keys are stored post-RoPE at positions
 * 0..chunk-1; scb_kv_chunks_keys re-rotates them to the offset where a prompt uses the chunk
 * (RoPE rotations compose: R(off) R(p) k = R(off + p) k), as CacheBlend does for non-prefix
 * reuse. Storage is fp32, host memory: (L, chunk, Hkv, D) keys and values per chunk. */
#ifndef SCB_HARNESS_KV_CHUNKS_H
#define SCB_HARNESS_KV_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model.h"
#include "kernels/status.h"

struct scb_kv_chunks;

/* A store for model m (borrowed, must outlive the store) with chunks of `chunk` tokens. */
int  scb_kv_chunks_create(struct scb_kv_chunks **out, struct scb_model *m, size_t chunk, struct scb_ctx *ctx);
void scb_kv_chunks_destroy(struct scb_kv_chunks *s);   /* NULL is a no-op */

/* The stored chunk whose ids equal ids[0..chunk), or -1. */
long scb_kv_chunks_find(const struct scb_kv_chunks *s, const int32_t *ids);
/* Compute ids[0..chunk) alone through the model (scb_model_forward on a fresh scratch cache, no
 * logits) and store its K/V unless it is stored already; *index receives its id. The model's
 * hooks see an ordinary first prefill (a blend hook must answer NULL while this runs). */
int  scb_kv_chunks_put(struct scb_kv_chunks *s, const int32_t *ids, long *index, struct scb_ctx *ctx);
/* Layer `layer` of stored chunk `index`: keys re-rotated to start at position off into
 * k (chunk, Hkv, D) with row stride k_stride floats (>= Hkv*D), values copied into v likewise.
 * off = 0 copies the stored keys bit for bit. */
int  scb_kv_chunks_get(struct scb_kv_chunks *s, long index, size_t layer, int64_t off, float *k, float *v,
                       size_t k_stride, struct scb_ctx *ctx);
size_t scb_kv_chunks_count(const struct scb_kv_chunks *s);
size_t scb_kv_chunks_size(const struct scb_kv_chunks *s);     /* tokens per chunk */
/* Bytes the store holds (K and V, fp32). */
size_t scb_kv_chunks_bytes(const struct scb_kv_chunks *s);

#endif
