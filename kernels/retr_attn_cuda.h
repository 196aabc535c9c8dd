/* retr_attn_cuda.h — RetrievalAttention's attention on the device (CUDA): one query row per
 * head over the RESIDENT keys (sink and recent window + temp tokens: two index ranges, the same
 * for every head) and the RETRIEVED keys (a per-head list chosen on the host by the CPU index,
 * methods/retr_attn.h), each part computed with its log-sum-exp and the two merged with
 * log-sum-exp weights (spec §1.3), which equals one softmax over the union (the CPU reference,
 * scb_retr_attn). Plain C interface with the conventions of kernels_cuda.h. */
#ifndef SCB_KERNELS_RETR_ATTN_CUDA_H
#define SCB_KERNELS_RETR_ATTN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/kernels_cuda.h"

enum { SCB_RETR_CHUNK = 256 };   /* keys per partial (one block per chunk and head) */

struct scb_retr_attn_cuda_args {
    const uint16_t *q;          /* (Hq, D) bf16: one query row */
    const uint16_t *k, *v;      /* (Hkv, kcap, D) bf16: the layer's cache storage */
    size_t kcap;
    int Hq, Hkv, D;             /* Hq % Hkv == 0; D even, <= 256 */
    int r0_begin, r0_end;       /* resident keys [r0_begin, r0_end) ∪ [r1_begin, r1_end) */
    int r1_begin, r1_end;       /*   (disjoint, < kcap; empty ranges allowed) */
    const int32_t *idx;         /* (Hq, idx_stride) int32 device: retrieved keys of head h are
                                   idx[h*idx_stride + i], i < n_idx[h] (disjoint from the
                                   resident ranges, < kcap); may be NULL when idx_stride = 0 */
    const int32_t *n_idx;       /* (Hq) int32 device, each in [0, idx_stride] */
    int idx_stride;
    float scale;                /* 0 = 1/sqrt(D) */
    uint16_t *out;              /* (Hq, D) bf16 */
    float *lse;                 /* (Hq) fp32 natural-log sum-exp of the union, or NULL */
    float *work;                /* device scratch, scb_retr_attn_cuda_work_floats floats */
    const int32_t *r1_end_dev;  /* int32 device or NULL: when set, the second range ends at
                                   *r1_end_dev, read when the kernel runs (a CUDA graph's step,
                                   the key count from the device), in [r1_begin, r1_end]: r1_end
                                   is then the bound that sizes the launch */
};

/* Floats of scratch for at most n_res resident keys and idx_stride retrieved keys per head. */
size_t scb_retr_attn_cuda_work_floats(int Hq, int D, int n_res, int idx_stride);

/* The two parts and their merge. A head with no key at all gets out = 0, lse = -inf. */
int scb_retr_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_retr_attn_cuda_args *a, struct scb_ctx *err);

/* The flat index's retrieval on the device (SCB_RETR_SEARCH=device in harness/method_dev_retr_attn.c):
 * the exact top-k the host scan computes (methods/retr_attn.h, scb_retr_flat_topk), the same ids.
 * For query head h (KV head h / (Hq/Hkv)) and each key t in [lo, hi) of k (Hkv, kcap, D) bf16:
 * the score s = 0, s = fmaf(q_d, k_td, s) for d = 0..D-1 in fp32 (the bf16 values widened;
 * scb_retr_score's bits), into scores (Hq, hi - lo); then the kp = min(top_k, hi - lo) tokens of
 * largest score (ties, -0 = +0 included, to the smaller token) into idx (Hq, idx_stride) in
 * ascending order, and n_idx[h] = kp. hi == lo gives n_idx = 0. D even, <= 256; kp <= idx_stride.
 * scores: scb_retr_flat_cuda_work_floats(Hq, hi - lo) floats of device scratch. */
size_t scb_retr_flat_cuda_work_floats(int Hq, int n);
int scb_retr_flat_topk_cuda(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, size_t kcap, int Hq,
                            int Hkv, int D, int lo, int hi, int top_k, int32_t *idx, int idx_stride, int32_t *n_idx,
                            float *scores, struct scb_ctx *err);

#ifdef __cplusplus
}
#endif

#endif
