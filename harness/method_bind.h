/* method_bind.h — plugs a long-context method spec (methods/method.h: one prefill pattern + one
 * KV policy) into the engine's attention seam (harness/model.h, struct scb_attn_hooks), with
 * SCBench's lifecycle (spec/scbench.md §6.1):
 *
 *   - the FIRST prefill of a session (the chunk on an empty cache) goes through the prefill
 *     pattern (dense, A-shape, Tri-shape, MInference incl. its per-head config file);
 *   - right after that prefill's attention, once per layer, the KV policy compresses the layer
 *     (StreamingLLM, SnapKV, PyramidKV through scb_kv_cache_keep; KIVI into its quantized
 *     store); tokens appended later are never compressed (KIVI quantizes them as its residual
 *     fills, as SCBench's KiviCache does);
 *   - every later chunk (decode steps, follow-up prompts) goes through the KV policy's decode path
 *     (Quest, RetrievalAttention, KIVI over its quantized store; dense over the kept entries for
 *     the dropping policies and dense). RetrievalAttention and KIVI treat a follow-up prompt as if
 *     it were fed one token at a time (SCBench's dense_prefix=True, §6.5): every row sees the
 *     index / quantized store as it was when its own token was inserted.
 *
 * GQA: by default SnapKV, PyramidKV and StreamingLLM select per QUERY head as SCBench does (its
 * caches hold Hq heads, memory x G): scb_method_bind_kv_create then makes a cache storing Hq
 * heads (kernels/kv_cache.h, scb_kv_cache_create_heads). With the policy option gqa=true only
 * the model's KV heads are stored.
 *
 * Exactness: when a method's key set for a chunk equals the whole causal set (density 1: a
 * budget or pattern covering every key; KIVI with nothing quantized yet), its output is the
 * backend's dense attention, so such a run is BITWISE identical to a dense run through the whole
 * engine. (The methods' own reference kernels compute the same attention in double and differ
 * only in rounding.) */
#ifndef SCB_HARNESS_METHOD_BIND_H
#define SCB_HARNESS_METHOD_BIND_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model.h"
#include "kernels/kv_cache.h"
#include "kernels/status.h"
#include "methods/method.h"

struct scb_method_binding;

/* Create the method instances of spec (prefill pattern + KV policy; options copied, spec stays
 * the caller's), init them with the model's shape, and install attention hooks on m
 * (scb_model_set_attn_hooks). One binding per model at a time (the hooks are the model's). A
 * failure leaves m's hooks untouched. */
int  scb_method_bind_create(struct scb_method_binding **out, struct scb_model *m,
                            const struct scb_method_spec *spec, struct scb_ctx *ctx);
/* Remove the hooks (dense again) and free. NULL-safe. */
void scb_method_bind_destroy(struct scb_method_binding *b);
/* A KV cache suitable for this method: Hq stored heads when the KV policy selects per query head
 * (SCBench's GQA repetition), else the model's KV heads; cap tokens per head. */
int  scb_method_bind_kv_create(struct scb_method_binding *b, size_t cap, struct scb_kv_cache **out,
                               struct scb_ctx *ctx);
/* Heads a cache for this binding stores (Hq or Hkv). */
size_t scb_method_bind_kv_heads(const struct scb_method_binding *b);
/* Per-session reset (called before the first prefill of every session, after
 * scb_kv_cache_clear). Fails when kv is not empty. */
int  scb_method_bind_session_begin(struct scb_method_binding *b, struct scb_kv_cache *kv, struct scb_ctx *ctx);
/* After each turn (after drop_temp / commit_temp). */
int  scb_method_bind_turn_end(struct scb_method_binding *b, struct scb_kv_cache *kv, struct scb_ctx *ctx);

struct scb_turn_costs {
    int64_t kv_entries;          /* logical KV entries kept: entries stored, summed over layers and
                                    stored heads, counted in KV-head units (stored heads x Hkv /
                                    H_store), i.e. tokens x layers x KV heads when nothing is dropped */
    int64_t kv_bytes_logical;    /* kv_entries x 2 (K and V) x D x 2 bytes (bf16, SCBench's dtype) */
    int64_t kv_bytes_physical;   /* bytes actually stored incl. GQA repetition, quant scales/mins and
                                    residuals (KIVI), page metadata (Quest), fp32 index keys
                                    (RetrievalAttention) */
    double  decode_bytes_per_step; /* KV bytes read by one decode step over all layers */
    double  prefill_density;     /* fraction of the causal mask computed in the first prefill
                                    (measured; 1 = dense) */
    double  recall;              /* retrieval methods: mean recall of the retrieved keys vs the exact
                                    top-k (measured for index=graph; 1 for the exact flat index);
                                    Quest: mean fraction of the exact top-n keys by q.k (n = keys
                                    of the selected pages) inside the selected pages, over
                                    single-token decode steps and query heads; else -1 */
    /* CacheBlend (0 for every other method): tokens of the session's first prefill whose stored
     * KV was reused as is, tokens recomputed (selected + never retrieved; reused + recomputed =
     * the prefill's length), and tokens whose chunk KV this session computed into the store */
    int64_t reused_tokens;
    int64_t recomputed_tokens;
    int64_t stored_tokens;
};
/* Costs as of now (call after the turn). */
int  scb_method_bind_costs(struct scb_method_binding *b, const struct scb_kv_cache *kv,
                           struct scb_turn_costs *out, struct scb_ctx *ctx);
/* One line "entries=... logical_bytes=... physical_bytes=... read_bytes_step=... prefill_density=...
 * recall=..." into buf (n bytes). */
void scb_method_bind_costs_format(const struct scb_turn_costs *c, char *buf, size_t n);

#endif
