/* gemv.cu — the bandwidth-bound projection for decode steps: y = x W^T (+ bias | + y) for a
 * few rows of x (T <= SCB_GEMV_MAX_T), bf16 x and W (HF layout (out, in) row-major), fp32
 * accumulation, bf16 or fp32 y. scb_cuda_gemm (ctx.cu) calls it instead of cuBLAS when T is
 * small and the shapes allow 16-byte loads (SCB_GEMV=cublas forces cuBLAS, =gemv forces this).
 *
 * A decode step's projections read every weight once for one token: the time is the bytes of
 * W over memory bandwidth. Each warp owns ROWS output rows; each lane streams 16-byte chunks of
 * those rows (8 bf16) with U chunks per row issued before any is used (ROWS*U independent
 * 16-byte loads in flight per lane; ROWS = 2, U = 4 for one row of x, SCB_GEMV_CFG=ROWS,U picks
 * others for measurement; the weights bypass L1 with ld.global.nc.L1::no_allocate),
 * multiplies them with the matching 8 values of each of the T rows of x (small, read through
 * the cache) and keeps T*ROWS fp32 partial sums; a butterfly reduction over the warp finishes
 * them and one lane per (t, row) adds the bias or the old y and writes the rounded value. */
#include "kernels/kernels_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv.cuh"

#define GEMV_WARPS 8

static __device__ __forceinline__ uint4 scb_ld_stream16(const void *p)
{
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}


/* mode: 0 = y = xW^T, 1 = + bias[o], 2 = + y (accumulate); U chunks per row in flight */
template <int T, int ROWS, int GEMV_U, bool F32>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
scb_gemv_kernel(void *y, const uint16_t *x, const uint16_t *W, const uint16_t *bias, int in,
                int out, int mode)
{
    const int lane = threadIdx.x & 31;
    const long long warp0 = (long long)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    const long long nwarps = (long long)gridDim.x * GEMV_WARPS;
    const int chunks = in >> 3;                       /* 16-byte chunks per row */
    for (long long r0 = warp0 * ROWS; r0 < out; r0 += nwarps * ROWS) {
        float acc[T][ROWS];
#pragma unroll
        for (int t = 0; t < T; t++)
#pragma unroll
            for (int r = 0; r < ROWS; r++) acc[t][r] = 0.f;
        const uint4 *wr[ROWS];
#pragma unroll
        for (int r = 0; r < ROWS; r++) {
            const long long row = r0 + r < out ? r0 + r : out - 1;   /* a clamped row is not written */
            wr[r] = (const uint4 *)(W + row * in);
        }
        for (int c0 = lane; c0 < chunks; c0 += 32 * GEMV_U) {
            uint4 wv[ROWS][GEMV_U];
#pragma unroll
            for (int u = 0; u < GEMV_U; u++) {
                const int c = c0 + 32 * u;
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                    if (c < chunks) wv[r][u] = scb_ld_stream16(wr[r] + c);
            }
#pragma unroll
            for (int u = 0; u < GEMV_U; u++) {
                const int c = c0 + 32 * u;
                if (c < chunks) {
#pragma unroll
                    for (int t = 0; t < T; t++) {
                        float xf[8];
                        scb_unpack8(__ldg((const uint4 *)(x + (long long)t * in) + c), xf);
#pragma unroll
                        for (int r = 0; r < ROWS; r++) {
                            float wf[8];
                            scb_unpack8(wv[r][u], wf);
                            float s = acc[t][r];
#pragma unroll
                            for (int e = 0; e < 8; e++) s = fmaf(xf[e], wf[e], s);
                            acc[t][r] = s;
                        }
                    }
                }
            }
        }
#pragma unroll
        for (int t = 0; t < T; t++)
#pragma unroll
            for (int r = 0; r < ROWS; r++) {
                float s = acc[t][r];
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                const long long row = r0 + r;
                if (lane == ((t * ROWS + r) & 31) && row < out) {
                    const long long e = (long long)t * out + row;
                    if (mode == 1) s += scb_bf2f(bias[row]);
                    if (F32) {
                        if (mode == 2) s = ((float *)y)[e] + s;
                        ((float *)y)[e] = s;
                    } else {
                        if (mode == 2) s = scb_bf2f(((uint16_t *)y)[e]) + s;
                        ((uint16_t *)y)[e] = scb_f2bf(s);
                    }
                }
            }
    }
}

template <int T, int ROWS, int U>
static void scb_gemv_launch_(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x,
                             const uint16_t *W, const uint16_t *bias, int in, int out, int mode)
{
    const long long warps = (out + ROWS - 1) / ROWS;
    long long blocks = (warps + GEMV_WARPS - 1) / GEMV_WARPS;
    if (blocks > 65535LL * 16) blocks = 65535LL * 16;
    if (y_f32)
        scb_gemv_kernel<T, ROWS, U, true><<<(unsigned)blocks, GEMV_WARPS * 32, 0, cc->stream>>>(
            y, x, W, bias, in, out, mode);
    else
        scb_gemv_kernel<T, ROWS, U, false><<<(unsigned)blocks, GEMV_WARPS * 32, 0, cc->stream>>>(
            y, x, W, bias, in, out, mode);
}

/* SCB_GEMV_CFG=ROWS,U (measurement only, one-row products): rows per warp 1|2|4 and chunks per
 * row in flight 2|4|8; unset or anything else = the default 2,4. */
static int scb_gemv_cfg_(void)
{
    const char *e = getenv("SCB_GEMV_CFG");
    int r = 2, u = 4;
    if (e && sscanf(e, "%d,%d", &r, &u) == 2 && (r == 1 || r == 2 || r == 4) &&
        (u == 2 || u == 4 || u == 8))
        return r * 16 + u;
    return 2 * 16 + 4;
}

int scb_gemv_mode_(void)
{
    const char *e = getenv("SCB_GEMV");
    if (!e || !*e || !strcmp(e, "auto")) return SCB_GEMV_AUTO;
    if (!strcmp(e, "cublas")) return SCB_GEMV_CUBLAS;
    if (!strcmp(e, "gemv")) return SCB_GEMV_FORCE;
    return -1;
}

int scb_gemv_fits_(const void *y, const uint16_t *x, const uint16_t *W, int T, int in)
{
    (void)y;
    return T >= 1 && T <= SCB_GEMV_MAX_T && in % 8 == 0 && !(((uintptr_t)x | (uintptr_t)W) & 15u);
}

int scb_gemv_cuda_(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x,
                   const uint16_t *W, const uint16_t *bias, int T, int in, int out,
                   int accumulate, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const int mode = accumulate ? 2 : bias ? 1 : 0;
    if (T == 1) {
        switch (scb_gemv_cfg_()) {
        case 1 * 16 + 2: scb_gemv_launch_<1, 1, 2>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 1 * 16 + 4: scb_gemv_launch_<1, 1, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 1 * 16 + 8: scb_gemv_launch_<1, 1, 8>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 2 * 16 + 2: scb_gemv_launch_<1, 2, 2>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 2 * 16 + 8: scb_gemv_launch_<1, 2, 8>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 4 * 16 + 2: scb_gemv_launch_<1, 4, 2>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 4 * 16 + 4: scb_gemv_launch_<1, 4, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 4 * 16 + 8: scb_gemv_launch_<1, 4, 8>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        default: scb_gemv_launch_<1, 2, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        }
    } else {
        switch (T) {
        case 2: scb_gemv_launch_<2, 2, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 3: scb_gemv_launch_<3, 2, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 4: scb_gemv_launch_<4, 2, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 5: scb_gemv_launch_<5, 1, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 6: scb_gemv_launch_<6, 1, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        case 7: scb_gemv_launch_<7, 1, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        default: scb_gemv_launch_<8, 1, 4>(cc, y, y_f32, x, W, bias, in, out, mode); break;
        }
    }
    SCB_LAUNCH_CHECK("scb_gemv_kernel");
out:
    return rc;
}
