/* kv_cache.h — the KV cache with SCBench's two segments (DESIGN.md "The KV cache and its
 * lifecycle", spec/scbench.md §6.1), stored on the host in fp32.
 *
 * Per layer and KV head, keys (after RoPE) and values are stored as rows of D floats. Each
 * (layer, KV head) holds its GLOBAL entries (persist across turns) followed by its TEMP entries
 * (generated tokens; in multi-request mode also the query). The append mode says where new
 * tokens go. drop_temp() discards the temp entries and subtracts their count from `seen`, which
 * restores the global part exactly; commit_temp() makes them global (SCBench's
 * --disable_golden_context); clear() empties everything.
 *
 * `seen` counts every token appended (global + temp, minus dropped temp): a new token gets RoPE
 * position `seen` even after a KV policy kept fewer global entries. So "entries stored" (per
 * layer and head) and "positions used" (seen) are separate.
 *
 * Seam for KV policies (SnapKV, PyramidKV, StreamingLLM, KIVI): scb_kv_cache_keep() replaces
 * one (layer, KV head)'s global entries by a selected subset, given ascending entry indices;
 * heads of a layer may keep different counts. Each entry also carries the RoPE position it was
 * appended at (scb_kv_cache_positions), for policies and page selectors that need it.
 *
 * Stored heads vs input heads: a cache may store more heads than the model has KV heads
 * (scb_kv_cache_create_heads): Hkv stored heads, Hin input heads per appended token, Hkv a
 * multiple of Hin; stored head s receives input head s / (Hkv / Hin). This is SCBench's GQA
 * repetition (its SnapKV/PyramidKV/StreamingLLM caches hold one head per QUERY head, so each
 * can keep its own entries); attention reads stored head h / (Hq / Hkv) for query head h, which
 * holds the same data as the model's KV head h / (Hq / Hin) until a policy keeps different
 * entries per stored head. By default Hkv == Hin.
 *
 * Capacity (max entries per layer and head, global + temp) is fixed at creation; appends never
 * allocate. Memory layout per layer: K and V each (Hkv, cap, D) row-major; positions (Hkv, cap).
 *
 * Device storage: a backend that keeps K/V in its own memory (the CUDA engine: bf16, same
 * (L, Hkv, cap, D) layout) creates the cache with scb_kv_cache_create_external(). The segment
 * bookkeeping (counts, seen, positions, drop/commit/clear, check_room) stays here on the host;
 * k and v are NULL, the backend writes the entries itself and records them with
 * scb_kv_cache_append_meta(). Host-data operations (append, the k/v views) then fail or
 * return NULL; scb_kv_cache_keep() compacts only the bookkeeping, the owner moves the entries. */
#ifndef SCB_KERNELS_KV_CACHE_H
#define SCB_KERNELS_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

enum scb_kv_append_mode {
    SCB_KV_APPEND_GLOBAL = 0,  /* appended tokens persist across turns */
    SCB_KV_APPEND_TEMP   = 1   /* appended tokens go to the temp segment (dropped after a turn) */
};

struct scb_kv_cache {
    size_t L, Hkv, D;          /* layers, KV heads, head dimension */
    size_t cap;                /* max entries per (layer, head), global + temp */
    float *k;                  /* (L, Hkv, cap, D) owned */
    float *v;                  /* (L, Hkv, cap, D) owned */
    int64_t *pos;              /* (L, Hkv, cap) RoPE position of each entry, owned */
    size_t *n_global;          /* (L, Hkv) global entries per layer and head */
    size_t *n_temp;            /* (L) temp entries per layer (same for every head of a layer) */
    int64_t seen;              /* positions used: all tokens appended, minus dropped temp tokens */
    int64_t seen_temp;         /* tokens appended to the temp segment since the last drop/commit */
    int mode;                  /* enum scb_kv_append_mode */
    size_t Hin;                /* heads per appended token (the model's KV heads); Hkv % Hin == 0 */
    size_t elem_bytes;         /* bytes of one stored K/V element: 4 (host fp32) or the device's (2, bf16) */
    void *ext;                 /* external (device) K/V storage, owned through ext_free; NULL = host */
    void (*ext_free)(void *ext);
};

/* Create an empty cache for L layers of Hkv heads of dimension D holding at most cap tokens. */
int  scb_kv_cache_create(struct scb_kv_cache **out, size_t L, size_t Hkv, size_t D, size_t cap,
                         struct scb_ctx *ctx);
/* Create an empty cache storing Hstore heads per layer for tokens of Hin heads (Hstore a
 * multiple of Hin; stored head s holds input head s / (Hstore / Hin)). */
int  scb_kv_cache_create_heads(struct scb_kv_cache **out, size_t L, size_t Hin, size_t Hstore,
                               size_t D, size_t cap, struct scb_ctx *ctx);
/* Create an empty cache whose K/V entries live in external storage `ext` (e.g. device memory,
 * elem_bytes per element), owned from then on: ext_free(ext) runs at destroy (also when the
 * creation fails). Only the bookkeeping (counts, positions) is allocated here. */
int  scb_kv_cache_create_external(struct scb_kv_cache **out, size_t L, size_t Hkv, size_t D,
                                  size_t cap, size_t elem_bytes, void *ext,
                                  void (*ext_free)(void *ext), struct scb_ctx *ctx);
void scb_kv_cache_destroy(struct scb_kv_cache *kv);   /* NULL is a no-op */

/* Where the following appends go. Switching to GLOBAL while temp entries exist is allowed, but
 * a global append with temp entries present fails (drop or commit the temp segment first). */
void scb_kv_cache_set_mode(struct scb_kv_cache *kv, int mode);

/* Append T tokens to one layer: k, v are (T, Hin, D) (keys already rotated), positions start at
 * pos0 (= kv->seen for the model's forward). Goes to the segment of the current mode. Fails with
 * SCB_E_INVAL (message with counts) when the capacity would be exceeded; nothing is written then.
 * Call for every layer, then scb_kv_cache_advance(kv, T) once. */
int scb_kv_cache_append(struct scb_kv_cache *kv, size_t layer, const float *k, const float *v,
                        size_t T, int64_t pos0, struct scb_ctx *ctx);
/* External storage: record that T tokens (positions pos0..) were written to layer's segment of
 * the current mode by the storage owner (same checks and counters as append, no data copy). */
int scb_kv_cache_append_meta(struct scb_kv_cache *kv, size_t layer, size_t T, int64_t pos0,
                             struct scb_ctx *ctx);
/* Whether T more tokens fit in every (layer, head) (checked by the model before a forward). */
int scb_kv_cache_check_room(const struct scb_kv_cache *kv, size_t T, struct scb_ctx *ctx);
/* Account T appended tokens: seen += T (and seen_temp in TEMP mode). */
void scb_kv_cache_advance(struct scb_kv_cache *kv, size_t T);

/* Discard temp entries of every layer; seen -= seen_temp. The global part is untouched. */
void scb_kv_cache_drop_temp(struct scb_kv_cache *kv);
/* Temp entries become global entries (seen unchanged). */
void scb_kv_cache_commit_temp(struct scb_kv_cache *kv);
/* Empty the cache (seen = 0, mode GLOBAL). */
void scb_kv_cache_clear(struct scb_kv_cache *kv);

/* Entries stored for (layer, head): global + temp. */
size_t scb_kv_cache_len(const struct scb_kv_cache *kv, size_t layer, size_t head);
/* Borrowed views of (layer, head): keys (n, D), values (n, D), n = scb_kv_cache_len; NULL when
 * the entries live in external storage. */
const float *scb_kv_cache_k(const struct scb_kv_cache *kv, size_t layer, size_t head);
const float *scb_kv_cache_v(const struct scb_kv_cache *kv, size_t layer, size_t head);
const int64_t *scb_kv_cache_positions(const struct scb_kv_cache *kv, size_t layer, size_t head);

/* KV-policy seam: keep only global entries idx[0..n) (strictly ascending, < n_global) of
 * (layer, head), compacting in place. Requires an empty temp segment. seen is unchanged.
 * External storage: only the bookkeeping (count, positions) is compacted; the storage owner
 * moves the K/V entries itself (the CUDA engine: scb_cuda_kv_keep). */
int scb_kv_cache_keep(struct scb_kv_cache *kv, size_t layer, size_t head, const size_t *idx,
                      size_t n, struct scb_ctx *ctx);

/* Byte accounting. logical: bytes of the K and V entries stored (sum over layers and heads of
 * entries × D × 2 × elem_bytes); physical: bytes allocated for K, V and positions. entries: total
 * stored entries over all layers and heads. */
void scb_kv_cache_bytes(const struct scb_kv_cache *kv, size_t *entries, size_t *logical,
                        size_t *physical);

#endif
