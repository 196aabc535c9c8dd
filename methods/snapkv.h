/* snapkv.h — SnapKV and PyramidKV KV dropping (spec/methods.md §5), once after the first prefill.
 *
 * Scoring per query head h (SCBench repeats K/V to Hq heads first): the last W prefill queries
 * (positions N-W .. N-1) attend causally to all N keys; P = softmax_j(scale * q_r . k_j);
 * score[h][j] = sum_r P[h][r][j] for j in [0, N-W); pooled = avgpool1d(score, kernel, stride 1,
 * pad kernel/2, zero padding counted in the mean) or maxpool (padding never wins). The top
 * (C - W) prefix entries by pooled score are kept plus the W window entries. SCBench keeps them
 * in torch.topk order; here they are sorted ascending (attention over cached entries is order
 * independent up to fp summation order, and sorting makes an identity selection bitwise dense).
 * Ties: higher score first, then the smaller index (deterministic; torch's order is unspecified).
 * Deviation: scores are kept in fp32/double; SCBench rounds P and the sums to bf16.
 *
 * GQA-aware variant (gqa = 1, beyond SCBench; KVCache-Factory's gqa_score_agg): the window
 * scores of the G query heads of a group are AVERAGED (mean of the per-head column sums, before
 * pooling), and one list per KV head is selected. SCBench's default selects per query head and
 * so stores Hq heads.
 *
 * PyramidKV: the number of selected prefix entries per layer l of L follows
 * min_num = (C-W)//beta, max_num = 2(C-W) - min_num (clamped when max_num >= N-W),
 * steps = (max_num - min_num)//(L-1), cap(l) = max_num - l*steps; N < C keeps all,
 * N < 2(C-W) behaves as SnapKV. For C=4096, W=32, beta=20, L=32: 7925 (layer 0) .. 206 (layer 31). */
#ifndef SCB_METHODS_SNAPKV_H
#define SCB_METHODS_SNAPKV_H

#include <stdint.h>

#include "methods/method.h"

enum scb_snapkv_pool { SCB_POOL_AVG = 0, SCB_POOL_MAX = 1 };

/* Pool a score row x (n) into y (n) with the given odd kernel (zero-padded mean, or max over
 * the valid entries). */
void scb_snapkv_pool(const float *x, int n, int kernel, int pool, float *y);

/* Pooled scores. pooled: (H, N - W) with H = Hq (gqa = 0) or Hkv (gqa = 1). a->Nq >= W. */
int scb_snapkv_scores(const struct scb_kv_compress_args *a, int W, int kernel, int pool, int gqa,
                      float *pooled, struct scb_ctx *ctx);

/* Select n_select prefix entries + the W window per head into keep (initialised here).
 * n_select < 0 means keep everything (identity). */
int scb_snapkv_select(const struct scb_kv_compress_args *a, int W, int kernel, int pool, int gqa,
                      int n_select, struct scb_kv_keep *keep, struct scb_ctx *ctx);

/* Number of prefix entries SnapKV selects for capacity C: -1 (keep all) when N < C, else C - W. */
int scb_snapkv_n_select(int N, int C, int W);
/* PyramidKV: selected prefix entries of `layer` (0-based) of L, -1 = keep all. */
int scb_pyramidkv_n_select(int N, int C, int W, int beta, int L, int layer);

extern const struct scb_method_ops scb_method_snapkv;
extern const struct scb_method_ops scb_method_pyramidkv;

#endif
