/* ctx.cu — the CUDA context (device, stream, cuBLAS handle, workspace, error flag, timing
 * events), error reporting, device memory helpers, host bf16 conversion, and the cuBLAS GEMM
 * used for the projections (y = x W^T, HF weight layout). */
#include "kernels/kernels_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "kernels/alloc.h"
}
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemv.cuh"

#define SCB_CUDA_DEFAULT_WS ((size_t)64 << 20)
#define SCB_CUBLAS_WS ((size_t)32 << 20)

/* ---- errors ---------------------------------------------------------------------------- */

static const char *scb_cublas_str_(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_(unknown)";
    }
}

static int scb_cuda_record_(struct scb_cuda_ctx *cc, struct scb_ctx *err, int code,
                            const char *msg, int sticky)
{
    if (cc && sticky && !cc->sticky) {
        cc->sticky = code;
        snprintf(cc->sticky_msg, sizeof cc->sticky_msg, "%s", msg);
    }
    return scb_err(err, code, "%s", msg);
}

int scb_cuda_fail_(struct scb_cuda_ctx *cc, struct scb_ctx *err, cudaError_t e, const char *call,
                   const char *file, int line)
{
    char msg[512];
    int oom = (e == cudaErrorMemoryAllocation);
    snprintf(msg, sizeof msg, "%s:%d: %s: %s (%s)", file, line, call, cudaGetErrorString(e),
             cudaGetErrorName(e));
    /* An allocation failure leaves the device usable; anything else is sticky. */
    if (!oom) (void)cudaGetLastError();
    return scb_cuda_record_(cc, err, oom ? SCB_E_DEVICE_OOM : SCB_E_CUDA, msg, !oom);
}

int scb_cublas_fail_(struct scb_cuda_ctx *cc, struct scb_ctx *err, cublasStatus_t s,
                     const char *call, const char *file, int line)
{
    char msg[512];
    int oom = (s == CUBLAS_STATUS_ALLOC_FAILED);
    snprintf(msg, sizeof msg, "%s:%d: %s: %s", file, line, call, scb_cublas_str_(s));
    return scb_cuda_record_(cc, err, oom ? SCB_E_DEVICE_OOM : SCB_E_CUDA, msg,
                            s == CUBLAS_STATUS_EXECUTION_FAILED);
}

int scb_cuda_alive_(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    if (!cc) return scb_err(err, SCB_E_INVAL, "CUDA: NULL context");
    if (cc->sticky)
        return scb_err(err, cc->sticky, "CUDA backend is dead after an earlier error: %s",
                       cc->sticky_msg);
    return SCB_OK;
}

/* ---- context ----------------------------------------------------------------------------- */

extern "C" void scb_cuda_device_count(int *n, char *why, size_t n_why)
{
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    if (e != cudaSuccess) {
        if (why && n_why) snprintf(why, n_why, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
        (void)cudaGetLastError();
        c = 0;
    } else if (c == 0 && why && n_why) {
        snprintf(why, n_why, "cudaGetDeviceCount: 0 devices");
    }
    *n = c;
}

extern "C" int scb_cuda_ctx_create(struct scb_cuda_ctx **out, int device, size_t workspace_bytes,
                                   struct scb_ctx *err)
{
    int rc = SCB_OK;
    struct scb_cuda_ctx *cc = NULL;
    cudaDeviceProp prop;
    *out = NULL;
    cc = (struct scb_cuda_ctx *)scb_calloc(1, sizeof *cc);
    if (!cc) return scb_err(err, SCB_E_NOMEM, "CUDA context: out of host memory");
    cc->device = device;
    cc->ws_bytes = workspace_bytes ? workspace_bytes : SCB_CUDA_DEFAULT_WS;
    SCB_CUDA_TRY(cudaSetDevice(device));
    SCB_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
    snprintf(cc->name, sizeof cc->name, "%s", prop.name);
    cc->sm_count = prop.multiProcessorCount;
    cc->l2_bytes = (size_t)prop.l2CacheSize;
    cc->cc_major = prop.major;
    cc->cc_minor = prop.minor;
    cc->total_mem = prop.totalGlobalMem;
    SCB_CUDA_TRY(cudaStreamCreateWithFlags(&cc->stream, cudaStreamNonBlocking));
    SCB_CUBLAS_TRY(cublasCreate(&cc->blas));
    SCB_CUBLAS_TRY(cublasSetStream(cc->blas, cc->stream));
    SCB_CUDA_TRY(cudaMalloc(&cc->blas_ws, SCB_CUBLAS_WS));
    SCB_CUBLAS_TRY(cublasSetWorkspace(cc->blas, cc->blas_ws, SCB_CUBLAS_WS));
    SCB_CUDA_TRY(cudaMalloc(&cc->workspace, cc->ws_bytes));
    SCB_CUDA_TRY(cudaMalloc((void **)&cc->d_flag, sizeof(int)));
    SCB_CUDA_TRY(cudaMemset(cc->d_flag, 0, sizeof(int)));
    SCB_CUDA_TRY(cudaEventCreate(&cc->ev_start));
    SCB_CUDA_TRY(cudaEventCreate(&cc->ev_stop));
    *out = cc;
    cc = NULL;
out:
    if (cc) scb_cuda_ctx_destroy(cc);
    return rc;
}

extern "C" void scb_cuda_ctx_destroy(struct scb_cuda_ctx *cc)
{
    if (!cc) return;
    (void)cudaSetDevice(cc->device);
    if (cc->stream) (void)cudaStreamSynchronize(cc->stream);
    if (cc->ev_start) (void)cudaEventDestroy(cc->ev_start);
    if (cc->ev_stop) (void)cudaEventDestroy(cc->ev_stop);
    if (cc->d_flag) (void)cudaFree(cc->d_flag);
    if (cc->workspace) (void)cudaFree(cc->workspace);
    if (cc->blas) (void)cublasDestroy(cc->blas);
    if (cc->blas_ws) (void)cudaFree(cc->blas_ws);
    if (cc->stream) (void)cudaStreamDestroy(cc->stream);
    (void)cudaGetLastError();
    scb_free(cc);
}

extern "C" void scb_cuda_describe(const struct scb_cuda_ctx *cc, char *buf, size_t n)
{
    int rt = 0, drv = 0;
    (void)cudaRuntimeGetVersion(&rt);
    (void)cudaDriverGetVersion(&drv);
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.1f GiB, L2 %zu MiB, CUDA runtime %d, driver %d",
             cc->name, cc->cc_major, cc->cc_minor, cc->sm_count,
             (double)cc->total_mem / (1024.0 * 1024.0 * 1024.0), cc->l2_bytes >> 20, rt, drv);
}

extern "C" int scb_cuda_sm_count(const struct scb_cuda_ctx *cc) { return cc->sm_count; }
extern "C" size_t scb_cuda_l2_bytes(const struct scb_cuda_ctx *cc) { return cc->l2_bytes; }

extern "C" int scb_cuda_sync(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    int rc = SCB_OK;
    int flag = 0;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));
    SCB_CUDA_TRY(cudaMemcpy(&flag, cc->d_flag, sizeof flag, cudaMemcpyDeviceToHost));
    if (flag) {
        SCB_CUDA_TRY(cudaMemset(cc->d_flag, 0, sizeof(int)));
        if (flag & SCB_CUDA_FLAG_EMBED_RANGE)
            rc = scb_err(err, SCB_E_INVAL, "CUDA embedding: a token id is outside [0, V)");
        else
            rc = scb_err(err, SCB_E_CUDA, "CUDA: kernel raised error flag 0x%x", flag);
    }
out:
    return rc;
}

/* ---- memory ------------------------------------------------------------------------------ */

extern "C" int scb_cuda_malloc(struct scb_cuda_ctx *cc, void **out, size_t bytes,
                               struct scb_ctx *err)
{
    int rc = SCB_OK;
    *out = NULL;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1));
out:
    if (rc < 0) {
        *out = NULL;
        if (rc == SCB_E_DEVICE_OOM) scb_err_prefix(err, "allocating %zu bytes: ", bytes);
    }
    return rc;
}

extern "C" void scb_cuda_free(struct scb_cuda_ctx *cc, void *p)
{
    (void)cc;
    if (p) (void)cudaFree(p);
}

extern "C" int scb_cuda_upload(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                               struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cc->stream));
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));
out:
    return rc;
}

extern "C" int scb_cuda_download(struct scb_cuda_ctx *cc, void *dst, const void *src,
                                 size_t bytes, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cc->stream));
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));
out:
    return rc;
}

extern "C" int scb_cuda_copy(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                             struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cc->stream));
out:
    return rc;
}

/* ---- pinned memory, asynchronous copies ------------------------------------------------- */

extern "C" int scb_cuda_host_alloc(struct scb_cuda_ctx *cc, void **out, size_t bytes,
                                   struct scb_ctx *err)
{
    int rc = SCB_OK;
    *out = NULL;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaHostAlloc(out, bytes ? bytes : 1, cudaHostAllocDefault));
out:
    if (rc < 0) *out = NULL;
    return rc;
}

extern "C" void scb_cuda_host_free(struct scb_cuda_ctx *cc, void *p)
{
    (void)cc;
    if (p) (void)cudaFreeHost(p);
}

extern "C" int scb_cuda_upload_async(struct scb_cuda_ctx *cc, void *dst, const void *src,
                                     size_t bytes, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cc->stream));
out:
    return rc;
}

extern "C" int scb_cuda_download_async(struct scb_cuda_ctx *cc, void *dst, const void *src,
                                       size_t bytes, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cc->stream));
out:
    return rc;
}

/* ---- graphs -------------------------------------------------------------------------------- */

struct scb_cuda_graph {
    cudaGraphExec_t exec;        /* the executable graph, updated in place every step */
    long launches, instantiations;
};

extern "C" int scb_cuda_graph_create(struct scb_cuda_ctx *cc, struct scb_cuda_graph **out,
                                     struct scb_ctx *err)
{
    (void)cc;
    *out = (struct scb_cuda_graph *)scb_calloc(1, sizeof **out);
    return *out ? SCB_OK : scb_err(err, SCB_E_NOMEM, "CUDA graph: out of host memory");
}

extern "C" void scb_cuda_graph_destroy(struct scb_cuda_graph *g)
{
    if (!g) return;
    if (g->exec) (void)cudaGraphExecDestroy(g->exec);
    scb_free(g);
}

extern "C" int scb_cuda_graph_begin(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g,
                                    struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    /* relaxed: the launchers may set kernel attributes while the stream records */
    SCB_CUDA_TRY(cudaStreamBeginCapture(cc->stream, cudaStreamCaptureModeRelaxed));
    (void)g;
out:
    return rc;
}

extern "C" void scb_cuda_graph_abort(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g)
{
    cudaGraph_t tmp = NULL;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(cc->stream, &st) == cudaSuccess && st != cudaStreamCaptureStatusNone)
        (void)cudaStreamEndCapture(cc->stream, &tmp);
    if (tmp) (void)cudaGraphDestroy(tmp);
    (void)cudaGetLastError();
    (void)g;
}

extern "C" int scb_cuda_graph_launch(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g,
                                     struct scb_ctx *err)
{
    int rc = SCB_OK;
    cudaGraph_t graph = NULL;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaStreamEndCapture(cc->stream, &graph));
    if (g->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) != cudaSuccess) {
            (void)cudaGetLastError();          /* topology changed: instantiate anew */
            (void)cudaGraphExecDestroy(g->exec);
            g->exec = NULL;
        }
    }
    if (!g->exec) {
        SCB_CUDA_TRY(cudaGraphInstantiate(&g->exec, graph, 0));
        g->instantiations++;
    }
    SCB_CUDA_TRY(cudaGraphLaunch(g->exec, cc->stream));
    g->launches++;
out:
    if (graph) (void)cudaGraphDestroy(graph);
    return rc;
}

extern "C" int scb_cuda_graph_record(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g,
                                     scb_cuda_graph_fn fn, void *user, struct scb_ctx *err)
{
    int rc = SCB_OK;
    cudaGraph_t graph = NULL;
    int capturing = 0;
    SCB_CHECK_ALIVE();
    if (g->exec) {
        (void)cudaGraphExecDestroy(g->exec);
        g->exec = NULL;
    }
    SCB_CUDA_TRY(cudaStreamBeginCapture(cc->stream, cudaStreamCaptureModeRelaxed));
    capturing = 1;
    SCB_TRY(fn(user, err));
    capturing = 0;
    SCB_CUDA_TRY(cudaStreamEndCapture(cc->stream, &graph));
    SCB_CUDA_TRY(cudaGraphInstantiate(&g->exec, graph, 0));
    g->instantiations++;
out:
    if (capturing) scb_cuda_graph_abort(cc, g);
    if (graph) (void)cudaGraphDestroy(graph);
    return rc;
}

extern "C" int scb_cuda_graph_replay(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g,
                                     struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!g->exec) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA graph: replay before a successful record");
        goto out;
    }
    SCB_CUDA_TRY(cudaGraphLaunch(g->exec, cc->stream));
    g->launches++;
out:
    return rc;
}

extern "C" void scb_cuda_graph_stats(const struct scb_cuda_graph *g, long *launches,
                                     long *instantiations)
{
    *launches = g ? g->launches : 0;
    *instantiations = g ? g->instantiations : 0;
}

template <typename T>
__global__ void scb_fill_kernel(T *dst, T bits, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bits;
}

template <typename T>
static int scb_fill_(struct scb_cuda_ctx *cc, T *dst, T bits, size_t n, struct scb_ctx *err)
{
    int rc = SCB_OK;
    unsigned blocks;
    SCB_CHECK_ALIVE();
    if (n == 0) goto out;
    blocks = (unsigned)((n + 255) / 256 < 65535 ? (n + 255) / 256 : 65535);
    scb_fill_kernel<T><<<blocks, 256, 0, cc->stream>>>(dst, bits, n);
    SCB_LAUNCH_CHECK("scb_fill_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_fill16(struct scb_cuda_ctx *cc, uint16_t *dst, uint16_t bits, size_t n,
                               struct scb_ctx *err)
{
    return scb_fill_<uint16_t>(cc, dst, bits, n, err);
}

extern "C" int scb_cuda_fill32(struct scb_cuda_ctx *cc, uint32_t *dst, uint32_t bits, size_t n,
                               struct scb_ctx *err)
{
    return scb_fill_<uint32_t>(cc, dst, bits, n, err);
}

/* ---- timing ------------------------------------------------------------------------------ */

extern "C" int scb_cuda_timer_start(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaEventRecord(cc->ev_start, cc->stream));
out:
    return rc;
}

extern "C" int scb_cuda_timer_stop(struct scb_cuda_ctx *cc, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaEventRecord(cc->ev_stop, cc->stream));
out:
    return rc;
}

extern "C" int scb_cuda_timer_ms(struct scb_cuda_ctx *cc, float *ms, struct scb_ctx *err)
{
    int rc = SCB_OK;
    *ms = 0.0f;
    SCB_CHECK_ALIVE();
    SCB_CUDA_TRY(cudaEventSynchronize(cc->ev_stop));
    SCB_CUDA_TRY(cudaEventElapsedTime(ms, cc->ev_start, cc->ev_stop));
out:
    return rc;
}

/* ---- host bf16 ------------------------------------------------------------------------- */

extern "C" uint16_t scb_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

extern "C" float scb_bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- GEMM -------------------------------------------------------------------------------- */

/* y[t][o] = bias[o] for every row t (bf16 -> bf16 or fp32, exact). */
template <bool F32>
__global__ void scb_bias_rows_kernel(void *y, const uint16_t *bias, int T, int n)
{
    const size_t total = (size_t)T * n;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const uint16_t b = bias[e % n];
        if (F32)
            ((float *)y)[e] = __uint_as_float((uint32_t)b << 16);
        else
            ((uint16_t *)y)[e] = b;
    }
}

extern "C" int scb_cuda_gemm(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x,
                             const uint16_t *W, const uint16_t *bias, int T, int in, int out_f,
                             int accumulate, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const float alpha = 1.0f, beta = (accumulate || bias) ? 1.0f : 0.0f;
    int gmode;
    SCB_CHECK_ALIVE();
    if (!y || !x || !W || T < 0 || in <= 0 || out_f <= 0 || (bias && accumulate)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA gemm: bad arguments (T=%d in=%d out=%d%s)", T, in,
                     out_f, bias && accumulate ? ", bias with accumulate" : "");
        goto out;
    }
    if (T == 0) goto out;
    gmode = scb_gemv_mode_();
    if (gmode < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA gemm: SCB_GEMV='%s' (expected auto, cublas or gemv)",
                     getenv("SCB_GEMV"));
        goto out;
    }
    if (gmode != SCB_GEMV_CUBLAS && scb_gemv_fits_(y, x, W, T, in)) {
        /* few rows (decode): the weights are streamed once by the GEMV kernel */
        rc = scb_gemv_cuda_(cc, y, y_f32, x, W, bias, T, in, out_f, accumulate, err);
        goto out;
    }
    if (bias) {
        size_t total = (size_t)T * out_f;
        unsigned blocks = (unsigned)((total + 255) / 256 < 65535 ? (total + 255) / 256 : 65535);
        if (y_f32)
            scb_bias_rows_kernel<true><<<blocks, 256, 0, cc->stream>>>(y, bias, T, out_f);
        else
            scb_bias_rows_kernel<false><<<blocks, 256, 0, cc->stream>>>(y, bias, T, out_f);
        SCB_LAUNCH_CHECK("scb_bias_rows_kernel");
    }
    /* Column-major view: y^T (out x T) = W (in x out, col-major = (out, in) row-major)^T
     * times x^T (in x T). */
    SCB_CUBLAS_TRY(cublasGemmEx(cc->blas, CUBLAS_OP_T, CUBLAS_OP_N, out_f, T, in, &alpha,
                                W, CUDA_R_16BF, in, x, CUDA_R_16BF, in, &beta,
                                y, y_f32 ? CUDA_R_32F : CUDA_R_16BF, out_f,
                                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
out:
    return rc;
}
