/* cacheblend.h — CacheBlend selective recomputation (spec/methods.md §9), the part that is an
 * algorithm rather than storage: choosing which tokens of a prompt whose KV was retrieved are
 * recomputed. At the check layer (1), with fresh V and retrieved V of all n tokens:
 *   dev[t] = mean over (KV heads, dims) of (V_fresh[t] - V_retrieved[t])^2 * valid[t]
 *   sel    = topk(dev, int(ratio * sum(valid)))  U  { t : valid[t] == 0 }, ascending
 * (ties: smaller index). Later layers recompute only the selected rows; their attention is the
 * standard causal kernel called with q_len = |sel| < k_len = n, i.e. bottom-right aligned
 * (scb_attn_dense_ref with Tq = |sel|, Tk = n reproduces it, including its inexactness for
 * non-suffix rows). The rest lives in the engine: the chunk store (harness/kv_chunks.h), the
 * blended prefill (harness/model.h, struct scb_blend_plan) and its wiring and costs
 * (harness/method_bind.c, the `blend` hook); this registry entry carries the options. See
 * docs/methods.md, "CacheBlend in the engine". */
#ifndef SCB_METHODS_CACHEBLEND_H
#define SCB_METHODS_CACHEBLEND_H

#include <stdint.h>

#include "methods/method.h"

/* v_fresh, v_ret: (n, Hkv, D); valid (n) 1 = retrieved, 0 = must be computed.
 * sel (n) receives the selected ascending token indices, *n_sel their count; dev (n) optional. */
int scb_cacheblend_select(const float *v_fresh, const float *v_ret, const uint8_t *valid, int n,
                          int Hkv, int D, double ratio, int32_t *sel, int *n_sel, double *dev,
                          struct scb_ctx *ctx);

extern const struct scb_method_ops scb_method_cacheblend;

#endif
