/* common.cuh — private to the .cu files of kernels/cuda: the layout of struct scb_cuda_ctx,
 * the macros SCB_CUDA_TRY / SCB_CUBLAS_TRY / SCB_LAUNCH_CHECK, and small bf16 device helpers.
 *
 * Error macros need `int rc`, a label `out`, the context `cc` and the error context `err` in
 * scope. They record the failing call's text, file:line and the CUDA (or cuBLAS) error string
 * on err and on the context (sticky: a dead backend keeps failing with the first message). */
#ifndef SCB_KERNELS_CUDA_COMMON_CUH
#define SCB_KERNELS_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdint.h>

#include "kernels/kernels_cuda.h"

struct scb_cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;              /* device, ws_bytes: split-K partials */
    size_t ws_bytes;
    int *d_flag;                  /* device int: kernel-raised error bits (SCB_CUDA_FLAG_*) */
    cudaEvent_t ev_start, ev_stop;
    int sm_count;
    size_t l2_bytes;
    char name[256];
    int cc_major, cc_minor;
    size_t total_mem;
    int sticky;                   /* first error code once the backend is dead, else 0 */
    char sticky_msg[512];
    void *blas_ws;                /* device, SCB_CUBLAS_WS bytes: cuBLAS's workspace (set once, so
                                     a GEMM never allocates, also inside a captured graph) */
};

#define SCB_CUDA_FLAG_EMBED_RANGE 1

/* Record a CUDA failure on err and cc (defined in ctx.cu). Returns SCB_E_CUDA or
 * SCB_E_DEVICE_OOM. */
int scb_cuda_fail_(struct scb_cuda_ctx *cc, struct scb_ctx *err, cudaError_t e, const char *call,
                   const char *file, int line);
int scb_cublas_fail_(struct scb_cuda_ctx *cc, struct scb_ctx *err, cublasStatus_t s,
                     const char *call, const char *file, int line);
/* SCB_E_CUDA with the sticky message when the backend is dead, else SCB_OK. */
int scb_cuda_alive_(struct scb_cuda_ctx *cc, struct scb_ctx *err);

#define SCB_CUDA_TRY(call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) { rc = scb_cuda_fail_(cc, err, e_, #call, __FILE__, __LINE__); \
                             goto out; } } while (0)
#define SCB_CUBLAS_TRY(call) do { cublasStatus_t s_ = (call); \
    if (s_ != CUBLAS_STATUS_SUCCESS) { rc = scb_cublas_fail_(cc, err, s_, #call, __FILE__, \
                                                              __LINE__); goto out; } } while (0)
/* After every kernel launch. */
#define SCB_LAUNCH_CHECK(what) do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) { rc = scb_cuda_fail_(cc, err, e_, "launch " what, __FILE__, \
                                                 __LINE__); goto out; } } while (0)

#define SCB_CHECK_ALIVE() do { if ((rc = scb_cuda_alive_(cc, err)) < 0) goto out; } while (0)

static __device__ __forceinline__ float scb_bf2f(uint16_t b)
{
    return __uint_as_float(((uint32_t)b) << 16);
}
static __device__ __forceinline__ uint16_t scb_f2bf(float f)
{
    __nv_bfloat16 h = __float2bfloat16_rn(f);
    return *reinterpret_cast<uint16_t *>(&h);
}
/* Block-wide max / sum of x over the block's nw warps (every thread gets it): warp shuffles, then
 * red (nw floats of shared memory) summed from warp 0 up. Starts with a barrier, so consecutive
 * calls may share red; its barriers also publish the shared-memory writes made before it. */
static __device__ __forceinline__ float scb_block_max(float x, float *red, int nw)
{
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < nw; i++) r = fmaxf(r, red[i]);
    return r;
}
static __device__ __forceinline__ float scb_block_sum(float x, float *red, int nw)
{
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < nw; i++) r += red[i];
    return r;
}

/* Blocks of `threads` for a grid-strided loop over n items: one item a thread, at most 65535 x 8
 * blocks (the loop takes the rest), at least 1. */
static inline unsigned scb_grid_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 8u) b = 65535u * 8u;
    return (unsigned)(b ? b : 1);
}

/* 1 when p is 16-byte aligned (the 16-byte load / store kernels' condition). */
static inline bool scb_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

/* Eight bf16 (one 16-byte load, the lower address first) widened to fp32 (exact). */
static __device__ __forceinline__ void scb_unpack8(const uint4 v, float f[8])
{
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int u = 0; u < 4; u++) {
        f[2 * u] = __uint_as_float(w[u] << 16);
        f[2 * u + 1] = __uint_as_float(w[u] & 0xffff0000u);
    }
}

/* Two floats to a packed bf16x2 (lo = a, the lower address). */
static __device__ __forceinline__ uint32_t scb_pack_bf2(float a, float b)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
    return *reinterpret_cast<uint32_t *>(&h);
}

#endif
