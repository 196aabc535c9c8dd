/* minference.h — MInference 1.0 sparse prefill (spec/methods.md §2) as SCBench runs it: one
 * pattern per (layer, query head) read from MInference's JSON config, or a uniform default.
 *
 * vertical_and_slash (§2.3-2.5): from the last lq = min(64, N) queries, A = softmax(scale q k^T)
 * with the causal mask inside the last lq x lq block; vertical score = column sums, slash score
 * = diagonal sums (d = query pos - key pos). Columns 0..29 and diagonals 0..99 are forced; then
 * the best remaining by score (ties: smaller index) up to v' = min(N, max(v, 30)) columns and
 * s' = min(N, max(s, 50)) diagonals (if s' < 100 the s' nearest diagonals are kept, including
 * d = 0; SCBench keeps an arbitrary subset of its forced set there). The (V, S) sets are
 * converted per 64-row block EXACTLY like MInference's convert_vertical_slash_indexes (64-wide
 * column tiles that need not be 64-aligned, merged into ranges whose length is a multiple of 64,
 * plus single columns left of the tiles; verticals right of the last range dropped). The
 * effective mask (row r sees c iff c <= r and c is in a tile or the column list of r's block) is
 * a superset of the ideal vertical-or-slash mask, and is what is computed.
 * block_sparse (§2.6): mean-pooled 64-row blocks of Q and K (zero padding counted; N is padded
 * by a full block even when N % 64 == 0, as in the repo), top 100 key blocks per row block.
 * stream_llm: A-shape with n_init = v, n_local = s.
 * The prefill of N == 1 and any call with Tq != Tk (not a first prefill) are dense. */
#ifndef SCB_METHODS_MINFERENCE_H
#define SCB_METHODS_MINFERENCE_H

#include <stdint.h>

#include "methods/method.h"

#define SCB_MINF_BLOCK 64

enum scb_minf_type {
    SCB_MINF_VERTICAL_SLASH = 0,
    SCB_MINF_BLOCK_SPARSE   = 1,
    SCB_MINF_STREAM_LLM     = 2
};

struct scb_minf_pattern { int type; int v, s; };

/* Per (layer, query head) patterns. */
struct scb_minf_config {
    int L, H;
    struct scb_minf_pattern *p;  /* (L, H) owned */
};

/* Every head (type, v, s). */
int  scb_minf_config_uniform(struct scb_minf_config *c, int L, int H, int type, int v, int s,
                             struct scb_ctx *ctx);
/* MInference JSON: a list with one object per layer, keys = query-head index as a string,
 * values = [type, vertical_size, slash_size, score]. A missing head gets MInference's default
 * (vertical_and_slash, 1000, 6096). Errors name the file, layer and head. The file must have at
 * least L layers and its head keys must be < H. */
int  scb_minf_config_load(const char *path, int L, int H, struct scb_minf_config *c, struct scb_ctx *ctx);
void scb_minf_config_fini(struct scb_minf_config *c);

/* Estimation of one head (last_q: estimation queries, 64 in SCBench). q: row i at q + i*qs (N rows, D); k: key j at k + j*ks.
 * Outputs: V (nv ascending columns) and S (ns descending diagonal offsets), capacities >= N.
 * vert (N) and diag (N) receive the raw scores when non-NULL. */
int scb_minf_vs_estimate(const float *q, size_t qs, const float *k, size_t ks, int N, int D,
                         float scale, int v_size, int s_size, int last_q, int32_t *V, int *nv, int32_t *S,
                         int *ns, double *vert, double *diag, struct scb_ctx *ctx);

/* MInference's index converter for one head: N rows, V ascending (nnz_v), S descending (nnz_s,
 * must contain 0 — asserted by SCB_E_INVAL otherwise). Outputs per row block m < ceil(N/64):
 * block_offset (nblk, nnz_s), block_count (nblk), column_index (nblk, nnz_v), column_count (nblk). */
int scb_minf_convert(int N, const int32_t *V, int nnz_v, const int32_t *S, int nnz_s,
                     int32_t *block_offset, int32_t *block_count, int32_t *column_index,
                     int32_t *column_count, struct scb_ctx *ctx);

/* The converted structure of one head, as a reusable object. */
struct scb_minf_index {
    int N, nblk, nnz_v, nnz_s;
    int32_t *block_offset;   /* (nblk, nnz_s) */
    int32_t *block_count;    /* (nblk) */
    int32_t *column_index;   /* (nblk, nnz_v) */
    int32_t *column_count;   /* (nblk) */
};
int  scb_minf_index_build(struct scb_minf_index *ix, int N, const int32_t *V, int nnz_v,
                          const int32_t *S, int nnz_s, struct scb_ctx *ctx);
void scb_minf_index_fini(struct scb_minf_index *ix);
/* Keys of row r, ascending, into idx (capacity >= r + 1). Returns the count. */
int  scb_minf_index_row(const struct scb_minf_index *ix, int r, int32_t *idx);

/* Block-sparse selection of one head: blocks (nb_pad, topk) key-block ids ascending, n_used
 * (nb_pad) how many row block a uses. nb_pad = (N + 64 - N % 64) / 64. */
int scb_minf_block_select(const float *q, size_t qs, const float *k, size_t ks, int N, int D,
                          int topk, int32_t *blocks, int32_t *n_used, struct scb_ctx *ctx);

/* Sparse prefill of one layer with per-head patterns pat (Hq). a->Tq == a->Tk. density set. */
int scb_minf_attn(struct scb_attn_args *a, const struct scb_minf_pattern *pat, int block_topk,
                  int last_q, struct scb_ctx *ctx);

extern const struct scb_method_ops scb_method_minference;

#endif
