/* retr_attn.h — RetrievalAttention (spec/methods.md §8): after the first prefill, per layer and
 * KV head, a static set stays resident ("GPU": sinks [0, n_sink) and the n_recent most recent
 * global tokens) and the rest goes to a vector index ("CPU"). Each decode step, every query head
 * retrieves its top_k keys by inner product from its KV head's index and attends to
 * static + retrieved + temp tokens; SCBench merges the two partial attentions by log-sum-exp
 * (§1.3), which equals one softmax over the union. Global tokens appended later slide through
 * the recent window into the index one at a time.
 *
 * Indexes: FLAT is SCBench's (papyfaiss FlatIndex: exact maximum inner product over fp32 keys,
 * scored in fp32 as faiss does: scb_retr_score; ties -> smaller token). GRAPH is beyond SCBench, after the paper's attention-aware index (RoarGraph-style):
 * queries and keys are out of distribution to each other, so neighbours are taken from the
 * QUERY side: for each training query (the prefill's queries of the group) its exact top-M keys
 * are linked to its top-1 key (bipartite kNN graph projected onto the keys), every key is also
 * linked to its sequence neighbours (connectivity, RoPE locality), and search is best-first
 * beam search (beam ef >= k) from the most-linked keys; only visited keys are scored.
 * Deviation (both): lse of the retrieved part uses a stable logsumexp; the repo's unshifted sum
 * can overflow. k larger than the index size is clamped (the repo reads index -1). */
#ifndef SCB_METHODS_RETR_ATTN_H
#define SCB_METHODS_RETR_ATTN_H

#include <stdint.h>
#include <string.h>

#include "methods/method.h"

/* The flat index's score (SCBench's papyfaiss FlatIndex = faiss flat inner-product search over
 * fp32 keys): s = 0.0f, then s = fmaf(q[d], k[d], s) for d = 0..D-1, an fp32 fused multiply-add
 * chain in d order. Deterministic, and every SIMD path of methods/retr_scan.h (one key per lane,
 * lane-wise fused multiply-add in d order) gives the same bits. */
float scb_retr_score(const float *q, const float *k, int D);

/* Exact top-k by that score over n keys (key t at keys + t*ks; ids[t] its token id, or t when
 * ids is NULL). Writes min(k, n) token ids sorted by score descending (ties: smaller id) into
 * out_id and their scores into out_ip (may be NULL). Returns the count or a negative status. */
int scb_retr_flat_topk(const float *q, const float *keys, size_t ks, const int32_t *ids, int n,
                       int D, int k, int32_t *out_id, float *out_ip);

/* The flat search in two steps, for callers that scan several queries over the same keys (the
 * device binding: the G query heads of a KV head in one pass over its keys). Scores: the scores
 * (scb_retr_score, bit for bit) of nq queries (row r at q + r*qs) with n keys (key t at
 * keys + t*ks): scores[r*ss + t]. Top-k of n scores of token ids id0.. : the ids
 * scb_retr_flat_topk returns for the same keys (score descending, ties to the smaller id).
 * Returns min(k, n) or a negative status. */
void scb_retr_flat_scores(const float *q, size_t qs, int nq, const float *keys, size_t ks, int n, int D,
                          float *scores, size_t ss);
int  scb_retr_topk_scores(const float *scores, int n, int32_t id0, int k, int32_t *out_id);
/* The same top-k SET as scb_retr_topk_scores, written in ascending id order (what the device
 * kernel consumes), without sorting by score and without allocating: work holds
 * scb_retr_topk_set_work_bytes(n) bytes. Returns min(k, n). */
int  scb_retr_topk_set(const float *scores, int n, int32_t id0, int k, int32_t *out_id, void *work);
size_t scb_retr_topk_set_work_bytes(int n);
/* Order-preserving map of a score to an unsigned 32-bit key: key(a) > key(b) iff a > b, and
 * equal floats (+0.0f and -0.0f included) get equal keys. NaN scores have no defined rank (nor in
 * the score-ordered selections). The radix selections work on these keys; a key's top 16 bits
 * are the score's DIGIT (scb_retr_topk_set_dig). */
static inline uint32_t scb_retr_score_key(float s)
{
    s += 0.0f;                           /* -0.0f -> +0.0f */
    uint32_t u;
    memcpy(&u, &s, sizeof u);
    return (u >> 31) ? ~u : (u | (UINT32_C(1) << 31));
}
/* The same set as scb_retr_topk_set from what a scan has already computed (the fused step of
 * methods/retr_scan.h): dig[t] = scb_retr_score_key(scores[t]) >> 16 and hist[b] = the number of
 * t with dig[t] >> (16 - hbits) == b (1 << hbits bins, 1 <= hbits <= 16). Two passes over the
 * 2-byte digits (the boundary bin's positions; at the end the ids, in order) and the bin split
 * again by the digits' low bits; only the positions whose digit equals the k-th largest's read
 * their scores. No merge, no sort (the digit passes use AVX-512F when the scan's path,
 * scb_retr_scan_isa, is the AVX-512 one). work: scb_retr_topk_set_work_bytes(n) bytes. Returns
 * min(k, n). */
int  scb_retr_topk_set_dig(const float *scores, const uint16_t *dig, const uint32_t *hist, int hbits, int n,
                           int32_t id0, int k, int32_t *out_id, void *work);
/* The same result by the previous method (quickselect on (score, id) records; work as above):
 * the reference scb_retr_topk_set (a radix select, two passes over the scores) is tested and
 * benchmarked against. */
int  scb_retr_topk_set_qsel(const float *scores, int n, int32_t id0, int k, int32_t *out_id, void *work);

struct scb_retr_graph_params {
    int M;            /* query-side neighbours per training query (default 16) */
    int max_degree;   /* edges kept per key (default 32) */
    int ef;           /* search beam width (>= k is enforced) */
    int n_entry;      /* entry points (default 4) */
};

struct scb_retr_graph;   /* opaque: keys copied in, adjacency lists */

/* Build over n keys (token ids ids[t]) with nq training queries (row i at queries + i*qs). */
int  scb_retr_graph_build(struct scb_retr_graph **out, const float *keys, size_t ks,
                          const int32_t *ids, int n, int D, const float *queries, size_t qs, int nq,
                          const struct scb_retr_graph_params *p, struct scb_ctx *ctx);
/* Insert one key (token id). Linked to the previous inserted token and its nearest keys by a
 * search with the key itself. */
int  scb_retr_graph_add(struct scb_retr_graph *g, const float *key, int32_t id, struct scb_ctx *ctx);
int  scb_retr_graph_size(const struct scb_retr_graph *g);
/* Approximate top-k: out_id/out_ip as scb_retr_flat_topk; *visited = keys scored. Tokens with
 * id >= id_limit are skipped (causality inside a chunk); pass INT32_MAX for none. */
int  scb_retr_graph_search(const struct scb_retr_graph *g, const float *q, int k, int32_t id_limit,
                           int32_t *out_id, float *out_ip, int *visited, struct scb_ctx *ctx);
void scb_retr_graph_destroy(struct scb_retr_graph *g);   /* NULL is a no-op */

/* |a ∩ b| / |b|: recall of a (retrieved) against b (exact). */
double scb_retr_recall(const int32_t *a, int na, const int32_t *b, int nb);

/* The resident ("GPU") global tokens when the global segment has Tg tokens. */
int scb_retr_static_keys(int Tg, int n_sink, int n_recent, int32_t *idx);

/* RetrievalAttention of a chunk with a FLAT index over args' own keys: for row i the index holds
 * global tokens [n_sink, g_i - n_recent) (g_i = global keys visible to the row); static, temp and
 * retrieved keys are attended as one sorted union (bitwise dense when top_k covers the index).
 * density = computed / causal pairs. If the global segment is shorter than n_sink + n_recent
 * every key is static (the repo asserts instead). */
int scb_retr_attn(struct scb_attn_args *a, int n_sink, int n_recent, int top_k, struct scb_ctx *ctx);

/* The same for one row, computed as SCBench does: partial attention over the retrieved keys and
 * partial attention over static + temp keys, merged by log-sum-exp. q (D) of query head h of a,
 * row i. out (D), lse. For tests of the merge path. */
int scb_retr_attn_row_merged(const struct scb_attn_args *a, int i, int h, int n_sink, int n_recent,
                             int top_k, float *out, float *lse, struct scb_ctx *ctx);

extern const struct scb_method_ops scb_method_retr_attn;

/* Mean recall of the keys retrieved by a retr_attn instance's decode path against the exact
 * top-k of the same index (flat: 1 by construction; graph: measured by an exact scan next to
 * every search), over every retrieval since init or the last reset. Returns 1 and sets *recall,
 * or returns 0 with *recall = -1 when nothing was retrieved (or m is another method). */
int  scb_retr_attn_recall(const struct scb_method *m, double *recall);
void scb_retr_attn_recall_reset(struct scb_method *m);

#endif
