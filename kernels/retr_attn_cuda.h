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
};

/* Floats of scratch for at most n_res resident keys and idx_stride retrieved keys per head. */
size_t scb_retr_attn_cuda_work_floats(int Hq, int D, int n_res, int idx_stride);

/* The two parts and their merge. A head with no key at all gets out = 0, lse = -inf. */
int scb_retr_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_retr_attn_cuda_args *a, struct scb_ctx *err);

#ifdef __cplusplus
}
#endif

#endif
