/* gemv.cuh — private to kernels/cuda: the few-row projection kernel of gemv.cu that
 * scb_cuda_gemm (ctx.cu) dispatches to for decode steps. */
#ifndef SCB_KERNELS_CUDA_GEMV_CUH
#define SCB_KERNELS_CUDA_GEMV_CUH

#include <stdint.h>

#include "kernels/kernels_cuda.h"

#define SCB_GEMV_MAX_T 8

enum scb_gemv_mode { SCB_GEMV_AUTO = 0, SCB_GEMV_CUBLAS = 1, SCB_GEMV_FORCE = 2 };

/* SCB_GEMV from the environment (read at every call): unset/auto, cublas, gemv; -1 unknown. */
int scb_gemv_mode_(void);
/* 1 when the GEMV kernel can take this product: 1 <= T <= SCB_GEMV_MAX_T, in % 8 == 0, x and W
 * 16-byte aligned. */
int scb_gemv_fits_(const void *y, const uint16_t *x, const uint16_t *W, int T, int in);
/* y (T, out) = x (T, in) W (out, in)^T, + bias (mode of scb_cuda_gemm), on cc's stream. The
 * caller has checked the arguments and scb_gemv_fits_. */
int scb_gemv_cuda_(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x,
                   const uint16_t *W, const uint16_t *bias, int T, int in, int out,
                   int accumulate, struct scb_ctx *err);

#endif
