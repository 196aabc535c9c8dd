/* dense.h — the CPU reference of (causal, GQA) attention every method is checked against, and
 * the one row kernel all sparse/compressed variants call, so that a key set equal to the full
 * causal set gives BITWISE the same output as dense attention (same keys, same order, same
 * arithmetic).
 *
 * Arithmetic (spec/methods.md §1.1): s_j = scale * dot(q, k_j) accumulated in double; softmax
 * with the row max subtracted, sums in double; out = sum_j p_j v_j / l in double, stored as
 * float; lse = m + ln(l) (natural log). An empty key set gives out = 0 and lse = -inf.
 * Keys are visited in ascending index order (or the order of the given list). */
#ifndef SCB_METHODS_DENSE_H
#define SCB_METHODS_DENSE_H

#include <stdint.h>

#include "methods/method.h"

/* Resolved strides and scale of an attention call (defaults filled in). */
struct scb_attn_view {
    size_t ts, hs;               /* K/V token and head strides in floats */
    float scale;
    int G;                       /* Hq / Hkv */
};
/* Validate a (shapes, pointers, Hq % Hkv) and fill v. SCB_E_INVAL with a message on bad args. */
int scb_attn_view(const struct scb_attn_args *a, struct scb_attn_view *v, struct scb_ctx *ctx);

/* One query row of one head over keys of one KV head.
 * q: (D); k, v: key j at k + j*ts; idx: n ascending key indices, or NULL for keys [0, n);
 * scratch: >= n + D doubles. out: (D); lse may be NULL. */
void scb_attn_row_ref(const float *q, const float *k, const float *v, size_t ts,
                      const int32_t *idx, int n, int D, float scale, double *scratch,
                      float *out, float *lse);

/* Dense causal attention (bottom-right aligned, GQA). Sets a->density = 1. */
int scb_attn_dense_ref(struct scb_attn_args *a, struct scb_ctx *ctx);

/* Attention where query row i of head h sees key j iff j is causal for i AND
 * allowed(user, h, i, j) != 0. For brute-force tests; O(Tq * Tk) predicate calls.
 * Sets a->density = allowed pairs / causal pairs. */
typedef int (*scb_attn_pred_fn)(void *user, int h, int i, int j);
int scb_attn_masked_ref(struct scb_attn_args *a, scb_attn_pred_fn allowed, void *user,
                        struct scb_ctx *ctx);

/* Attention where the caller lists, for each (query row i, head h), the keys it sees:
 * keys(user, h, i, idx, cap) writes at most cap ascending indices (all causal for row i) and
 * returns their count (or a negative status). cap = Tk. Sets a->density. This is the sparse
 * path of every method (no full mask is built). */
typedef int (*scb_attn_keys_fn)(void *user, int h, int i, int32_t *idx, int cap);
int scb_attn_list_ref(struct scb_attn_args *a, scb_attn_keys_fn keys, void *user,
                      struct scb_ctx *ctx);

/* Attention over a compressed cache: head h's prefix keys are keep's list (for its query head,
 * or KV head h/G when keep->per_kv_head), keys j >= keep->N are always present; plus the causal
 * rule. With an identity keep the result is bitwise equal to scb_attn_dense_ref. */
int scb_attn_keep_ref(struct scb_attn_args *a, const struct scb_kv_keep *keep, struct scb_ctx *ctx);

/* Merge two partial attentions over disjoint key sets (spec §1.3). o1, o2, o: (D); o may alias
 * o1. An lse of -inf contributes nothing; both -inf gives o = 0, lse = -inf. */
void scb_attn_merge(const float *o1, float lse1, const float *o2, float lse2, int D,
                    float *o, float *lse);

#endif
