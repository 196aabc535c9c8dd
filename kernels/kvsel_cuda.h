/* kvsel_cuda.h — device kernels of the KV-selection methods (kernels/cuda/kvsel.cu): SnapKV /
 * PyramidKV window scoring, pooling and top-k selection (methods/snapkv.h), and Quest's page
 * bounds, page top-k and attention over the selected pages (methods/quest.h). Plain C, device
 * pointers, status return with detail on err; bad arguments -> SCB_E_INVAL. bf16 inputs, fp32
 * arithmetic. Any even head dim D <= 256. Ties in every top-k: the larger score first, then the
 * smaller index (as the CPU reference); selections come out in ascending index order.
 *
 * Caches: k, v are one layer's (Hs, cap, D) bf16 storage (entry j of stored head s at
 * (s * cap + j) * D); query head h of H reads stored head h / (H / Hs). */
#ifndef SCB_KERNELS_KVSEL_CUDA_H
#define SCB_KERNELS_KVSEL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels_cuda.h"
#include "kernels/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- SnapKV / PyramidKV ------------------------------------------------------------------ */

/* fp32 words of work space scb_cuda_snapkv_scores needs: (H, W, N) scores + (H, W, 2) max/sum. */
size_t scb_cuda_snapkv_work_floats(int H, int W, int N);

/* Pooled window scores (methods/snapkv.h scb_snapkv_scores): q (Nq, H, D) bf16 are the prefill
 * queries (rows Nq-W .. Nq-1 are the window), k (Hs, cap, D) the layer's N cached keys. For query
 * head h and window row r (position N-W+r, causal over keys 0..N-W+r): P = softmax_j(scale q.k_j)
 * in fp32; score[h][j] = sum_r P[h][r][j] for j < N-W; gqa = 1 averages the scores of the H/Hkv
 * heads of a group (Hkv = Hs then, one row per stored head), gqa = 0 keeps one row per query head
 * (requires Hs = H). Then pooled (Hout, N-W) = avg (zero padding counted, / kernel) or max pool
 * (pool = 1) with the odd `kernel`, Hout = gqa ? Hs : H. work: scb_cuda_snapkv_work_floats fp32.
 * Requires 1 <= W < N <= cap, W <= Nq, H % Hs == 0. */
int scb_cuda_snapkv_scores(struct scb_cuda_ctx *cc, const uint16_t *q, int Nq, const uint16_t *k,
                           size_t cap, int N, int H, int Hs, int D, int W, float scale, int kernel,
                           int pool, int gqa, float *work, float *pooled, struct scb_ctx *err);

/* Keep lists from pooled (R, P) fp32 scores: row r of idx (R, n_select + W) int32 = the n_select
 * best prefix entries ascending, then the window P .. P+W-1. 0 <= n_select <= P. */
int scb_cuda_snapkv_select(struct scb_cuda_ctx *cc, const float *pooled, int R, int P, int n_select,
                           int W, int32_t *idx, struct scb_ctx *err);

/* ---- Quest ------------------------------------------------------------------------------- */

/* Page metadata: for stored heads s < Hs and pages p in [p0, ceil(T / P)), kmin/kmax
 * (Hs, mp, D) bf16 (exact: min/max of bf16 keys) over the entries p*P .. min((p+1)*P, T)-1 of k
 * (Hs, cap, D). Requires T <= cap, ceil(T / P) <= mp. */
int scb_cuda_quest_meta(struct scb_cuda_ctx *cc, const uint16_t *k, size_t cap, int Hs, int D, int P,
                        int T, int p0, uint16_t *kmin, uint16_t *kmax, int mp, struct scb_ctx *err);

/* Sign weights of a chunk: w (H, D) fp32 = sum over the Tq rows of q (Tq, H, D) of
 * (q > 0 ? +1 : -1). */
int scb_cuda_quest_signs(struct scb_cuda_ctx *cc, const uint16_t *q, int Tq, int H, int D, float *w,
                         struct scb_ctx *err);

/* Page selection of query rows r0 .. r0+nr-1 of q (Tq, H, D): ub (nr, H, np) fp32 with
 * np = ceil(T / P), ub[p] = sum_d q[d] w[d] max_{t in p}(k[t][d] w[d]) from the metadata; sel
 * (nr, H, kp) int32 = the kp pages of largest ub, ascending. 1 <= kp <= np. */
int scb_cuda_quest_select(struct scb_cuda_ctx *cc, const uint16_t *q, int r0, int nr, int H, int Hs,
                          int D, const float *w, const uint16_t *kmin, const uint16_t *kmax, int mp,
                          int T, int P, int kp, float *ub, int32_t *sel, struct scb_ctx *err);

/* Bytes of work space scb_cuda_quest_step_select2 needs for H query heads and metadata of mp
 * pages per head (bounds staging and (H, D) sign weights for the unfused fallback). */
size_t scb_cuda_quest_step_work_bytes(int H, int D, int mp);

/* Top-k of R rows of n fp32 scores s (R, n): sel (R, kp) int32 = the kp indices of largest
 * score, ties (equal scores; -0 equals +0) to the smaller index, ascending. One block of 1024
 * threads per row: the row staged in shared memory (read from global memory when it does not
 * fit), a 4-pass 8-bit radix select of the kp-th largest key (order-preserving uint32 keys,
 * shared-memory histograms), then a compaction in index order. 1 <= kp <= n. */
int scb_cuda_quest_topk(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel,
                        struct scb_ctx *err);
/* The same selection with row r's ids at sel + r * sel_stride (sel_stride >= kp) and id0 added
 * to every index (a row of scores of tokens id0, id0 + 1, ...): RetrievalAttention's flat top-k
 * on the device (kernels/retr_attn_cuda.h). Rows of 4096 to 327680 scores run on a cluster of 8
 * blocks each (the segment's keys in each block's shared memory, the histograms summed through
 * distributed shared memory; SCB_TOPK_CLUSTER=0 turns it off for timing), others as above. */
int scb_cuda_topk_rows(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel, int sel_stride,
                       int32_t id0, struct scb_ctx *err);

/* The selection of ONE decode row (Tq = 1; the hot path of harness/method_dev_quest.c, the
 * default there; SCB_QUEST_DECODE=unfused runs the separate launchers): exactly
 * scb_cuda_quest_meta(k, cap, Hs, D, P, T, p0, kmin, kmax, mp) followed by
 * scb_cuda_quest_signs(q, 1, ...) and scb_cuda_quest_select(q, 0, 1, ...) with the row's own
 * signs, i.e. the metadata of pages >= p0 rebuilt from k, ub (H, np) fp32 and sel (H, kp) int32
 * (the kp pages of largest ub, ties to the smaller page, ascending) written, in two launches: per (run of pages, stored head) one block
 * of 256 threads reads each page's min/max once with 16-byte loads (8 dims a thread, ceil(D/8)
 * threads a page, `unroll` pages a thread in flight: 0 = automatic (4); 1, 2, 4, 8 for the bench)
 * and writes the bounds of the G query heads of the group; then scb_cuda_quest_topk over the H
 * rows. Shapes it cannot take (D % 8 != 0, pointers not 16-byte aligned) run the metadata, signs
 * and select launchers instead (same results). work: scb_cuda_quest_step_work_bytes(H, D, mp). */
int scb_cuda_quest_step_select2(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D,
                                const uint16_t *k, size_t cap, uint16_t *kmin, uint16_t *kmax, int mp,
                                int T, int P, int p0, int kp, int unroll, float *ub, int32_t *sel,
                                void *work, struct scb_ctx *err);

/* One decode row's selection and attention with the key count read from the DEVICE int32 T_dev
 * (a graph step recorded once and replayed while the cache grows): exactly
 * scb_cuda_quest_step_select2(q, H, Hs, D, k, cap, kmin, kmax, mp, T, P, p0 = (T - 1) / P, kp, ...)
 * then scb_cuda_quest_attn(q, k, v, cap, out, 0, 1, 1, T, ...) with T = *T_dev when they run:
 * the metadata of pages before the last must be current (the previous step's). Grids sized for
 * mp pages (mp * P >= cap). Shapes: scb_cuda_quest_decode_dev_fits. ub, sel: as select2's (H, mp)
 * and (H, kp); work: scb_cuda_quest_attn_work_floats(1, H, D, kp, P). */
int scb_cuda_quest_decode_dev(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D, const uint16_t *k,
                              const uint16_t *v, size_t cap, uint16_t *kmin, uint16_t *kmax, int mp,
                              const int32_t *T_dev, int P, int kp, float *ub, int32_t *sel, float scale, float *work,
                              uint16_t *out, struct scb_ctx *err);
/* 1 when scb_cuda_quest_decode_dev takes these shapes and pointers: D % 8 == 0, D <= 256,
 * 16-byte aligned q, k, kmin, kmax, the group's q in 48 KiB of shared memory (select2's fused
 * path). */
int scb_cuda_quest_decode_dev_fits(const void *q, int H, int Hs, int D, const void *k, const void *kmin,
                                   const void *kmax);

/* fp32 words of work space scb_cuda_quest_attn needs for nr rows: (nr, H, S, D + 2) partials,
 * S = ceil(kp * P / 32) blocks of selected entries per row and head. */
size_t scb_cuda_quest_attn_work_floats(int nr, int H, int D, int kp, int P);

/* Attention of query rows r0 .. r0+nr-1 of a chunk of Tq rows over Tk cached entries: row i sees
 * the entries j of its selected pages sel (nr, H, kp) with j <= i + Tk - Tq (fp32 scores and
 * probabilities, online softmax; the selected entries are split into blocks of 32 whose partial
 * results are merged with log-sum-exp weights); out (Tq, H, D) bf16 rows r0.. written; a row
 * that sees no entry gets 0. k, v (Hs, cap, D). work: scb_cuda_quest_attn_work_floats. */
int scb_cuda_quest_attn(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                        size_t cap, uint16_t *out, int r0, int nr, int Tq, int Tk, int H, int Hs, int D,
                        int P, int kp, const int32_t *sel, float scale, float *work, struct scb_ctx *err);

#ifdef __cplusplus
}
#endif

#endif
