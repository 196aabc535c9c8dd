/* method_dev.h — device (CUDA) implementations of the long-context methods, behind the device
 * engine's method seam (harness/model.h, struct scb_dev_hooks). harness/method_bind.c binds a
 * method spec to them when the model runs on a device backend, with the same lifecycle as on
 * the CPU (method_bind.h): the first prefill of a session through the prefill pattern's
 * `prefill`, then once per layer the KV policy's `after_prefill` (compaction through
 * scb_kv_cache_keep + scb_cuda_kv_keep, or the policy's own device store), and every later chunk
 * through the KV policy's `decode`. A method without a device implementation is refused with a
 * message naming it.
 *
 * Each implementation is a table (struct scb_dev_method_ops) listed in scb_dev_methods[]
 * (method_dev.c); its state is created from the CPU method instance (methods/method.h), which
 * holds the parsed options (scb_method_opt_int / _float / scb_method_get). Semantics must equal
 * the CPU reference of methods/ (the same key sets and selections; arithmetic in bf16/fp32 as
 * the device kernels do), checked by the CUDA parity tests. KV policies that SCBench runs with
 * dense_prefix=True (KIVI, RetrievalAttention) treat a decode chunk of T > 1 rows as T one-token
 * steps themselves. Built only with CUDA. */
#ifndef SCB_HARNESS_METHOD_DEV_H
#define SCB_HARNESS_METHOD_DEV_H

#include <stddef.h>

#include "harness/method_bind.h"
#include "harness/model.h"
#include "kernels/status.h"
#include "methods/method.h"

struct scb_dev_method_ops {
    const char *name;        /* the method's registry name (methods/method.h), e.g. "snapkv" */
    /* *state from the CPU instance m (its options), the model's shape and the device context
     * cc (struct scb_cuda_ctx *). Device memory it needs for the longest context is allocated
     * lazily by the hooks (never inside a decode step once grown). */
    int  (*create)(void **state, const struct scb_method *m, const struct scb_model_info *mi, void *cc,
                   struct scb_ctx *ctx);
    void (*destroy)(void *state);                                  /* NULL state is a no-op */
    int  (*session_begin)(void *state, struct scb_ctx *ctx);       /* may be NULL */
    int  (*turn_end)(void *state, struct scb_ctx *ctx);            /* may be NULL */
    /* prefill patterns: the first prefill's attention of one layer into a->out; *density = the
     * fraction of the causal mask computed (1 = dense) */
    int  (*prefill)(void *state, const struct scb_dev_attn *a, double *density, struct scb_ctx *ctx);
    /* KV policies: compaction after the first prefill's attention of one layer; NULL = keep all */
    int  (*after_prefill)(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx);
    /* KV policies: a later chunk's attention; NULL = dense over what is kept */
    int  (*decode)(void *state, const struct scb_dev_attn *a, struct scb_ctx *ctx);
    /* optional: correct the costs computed from the cache's counts (physical bytes, bytes read
     * per decode step, recall) with what the device store holds */
    int  (*costs)(void *state, const struct scb_kv_cache *kv, struct scb_turn_costs *c, struct scb_ctx *ctx);
    /* optional, for KV policies with a decode: their one-token steps inside the engine's replayed
     * CUDA graph (the contract of struct scb_dev_hooks' step_graphable / step_prep / step_dev;
     * all three or none). Policies without a decode (dense over what is kept) are graph steps
     * without them. */
    int  (*step_graphable)(void *state, const struct scb_kv_cache *kv, size_t layer);
    int  (*step_prep)(void *state, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx);
    int  (*step_dev)(void *state, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx);
    int  per_query_heads;    /* the cache stores one head per QUERY head (SCBench's GQA repetition for
                                SnapKV/PyramidKV/StreamingLLM) unless the method's option gqa=true */
};

/* Where RetrievalAttention's flat index searches on the CUDA backend (SCB_RETR_SEARCH): 1 on the
 * device (the default), 0 on the host (SCBench's CPU arrangement); SCB_E_INVAL for another value.
 * index=graph searches on the host either way. */
int scb_dev_retr_search_device(struct scb_ctx *ctx);

/* The implementation for a method name, NULL when there is none. */
const struct scb_dev_method_ops *scb_dev_method_find(const char *name);

#endif
