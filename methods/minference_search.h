/* minference_search.h — MInference's offline per-head pattern search (spec/methods.md §2.8),
 * the scoring part: for one (layer, query head) of a dense prefill, how much of the dense
 * attention each candidate pattern recovers and what it costs.
 *
 *   recall[c]  = mean over rows r in [r0, N) of sum_{j in M_c(r)} A[r, j], A the dense causal
 *                softmax(q k^T * scale) (computed in double), M_c(r) the keys candidate c lets row
 *                r see: EXACTLY the keys MInference's kernels compute at inference (methods/
 *                minference.h): vertical_and_slash from its last-q estimate converted to 64-blocks
 *                (scb_minf_index_row), block_sparse from its mean-pooled top-k 64-blocks,
 *                stream_llm as A-shape (n_init = v, n_local = s);
 *   density[c] = |M_c ∩ causal| / (N (N + 1) / 2) over every row: the fraction of the dense
 *                prefill's attention FLOPs the pattern spends.
 * The choice (scb_minf_search_pick) is the candidate of highest recall among those whose density
 * is within the FLOP budget. */
#ifndef SCB_METHODS_MINFERENCE_SEARCH_H
#define SCB_METHODS_MINFERENCE_SEARCH_H

#include <stddef.h>

#include "methods/minference.h"

/* One head: q row i at q + i*qs (N rows of D), key j at k + j*ks. cand (n_cand): type and sizes
 * (block_sparse: v = top-k 64-blocks per row block). Rows r0.. (clamped to [0, N-1]) are scored.
 * recall, density (n_cand) out. */
int scb_minf_search_head(const float *q, size_t qs, const float *k, size_t ks, int N, int D, float scale,
                         const struct scb_minf_pattern *cand, int n_cand, int r0, int last_q,
                         double *recall, double *density, struct scb_ctx *ctx);

/* The chosen candidate: highest recall among those with density <= budget (ties: lower density,
 * then the earlier candidate); when none fits the budget, the one of lowest density. */
int scb_minf_search_pick(const double *recall, const double *density, int n_cand, double budget);

/* Write a config in MInference's JSON format (§2.2): a list of L objects, key = query head as a
 * string, value [type, vertical_size, slash_size, score]. pat, score (L, H). */
int scb_minf_search_write(const char *path, int L, int H, const struct scb_minf_pattern *pat,
                          const double *score, struct scb_ctx *ctx);

const char *scb_minf_type_name(int type);   /* "vertical_and_slash", "block_sparse", "stream_llm" */

#endif
