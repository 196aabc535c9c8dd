/* backend_cuda.h — what the CUDA engine (harness/model_cuda.c) needs from a CUDA backend
 * created by scb_backend_cuda_create() (kernels/backend.h): its kernel context. */
#ifndef SCB_KERNELS_CUDA_BACKEND_CUDA_H
#define SCB_KERNELS_CUDA_BACKEND_CUDA_H

#include "kernels/backend.h"
#include "kernels/kernels_cuda.h"

/* The kernel context (stream, cuBLAS handle, workspace) of a CUDA backend; NULL when be is not
 * one. Borrowed: lives as long as be. */
struct scb_cuda_ctx *scb_backend_cuda_ctx(struct scb_backend *be);

#endif
