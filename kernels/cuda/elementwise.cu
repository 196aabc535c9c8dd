/* elementwise.cu — the row and elementwise kernels of the forward pass on bf16 tensors, each
 * computing in fp32 and rounding once to bf16 (except RMSNorm, which rounds twice exactly as
 * HF does): RMSNorm, RoPE (rotate_half), SwiGLU, embedding gather, residual add, greedy
 * argmax, fp32<->bf16 conversion. */
#include "kernels/kernels_cuda.h"

#include <math.h>

#include "kernels/cuda/common.cuh"

#define EW_THREADS 256

static unsigned scb_ew_blocks_(size_t n) { return scb_grid_blocks(n, EW_THREADS); }

/* Block-wide sum of v over blockDim.x (a multiple of 32, <= 1024) threads. */
static __device__ float scb_block_sum_(float v)
{
    __shared__ float part[32];
    return scb_block_sum(v, part, (int)(blockDim.x >> 5));
}

/* ---- RMSNorm ---------------------------------------------------------------------------- */

__global__ void scb_rmsnorm_kernel(uint16_t *y, const uint16_t *x, const uint16_t *w, int n,
                                   float eps)
{
    const long long row = blockIdx.x;
    const uint16_t *xr = x + row * n;
    uint16_t *yr = y + row * n;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = scb_bf2f(xr[i]);
        ss += v * v;
    }
    ss = scb_block_sum_(ss);
    const float r = rsqrtf(ss / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float xn = scb_bf2f(scb_f2bf(scb_bf2f(xr[i]) * r));   /* hidden.to(input dtype) */
        yr[i] = scb_f2bf(scb_bf2f(w[i]) * xn);
    }
}

/* The same row norm with 16-byte accesses (n % 8 == 0, rows and w 16-byte aligned, n <= 8 x 4 x
 * blockDim.x): a thread keeps its RMS_V chunks of 8 in registers between the sum and the scaling
 * (the row is read once; in place is safe: every read precedes the block sum's barriers). */
enum { RMS_V = 4 };
__global__ void scb_rmsnorm8_kernel(uint16_t *y, const uint16_t *x, const uint16_t *w, int n, float eps)
{
    const long long row = blockIdx.x;
    const uint4 *xr = reinterpret_cast<const uint4 *>(x + row * n);
    uint4 *yr = reinterpret_cast<uint4 *>(y + row * n);
    const uint4 *w8 = reinterpret_cast<const uint4 *>(w);
    const int n8 = n / 8;
    uint4 v[RMS_V];
    float ss = 0.f;
#pragma unroll
    for (int u = 0; u < RMS_V; u++) {
        const int i = threadIdx.x + u * blockDim.x;
        v[u] = i < n8 ? xr[i] : make_uint4(0u, 0u, 0u, 0u);
        float f[8];
        scb_unpack8(v[u], f);
#pragma unroll
        for (int e = 0; e < 8; e++) ss += f[e] * f[e];
    }
    ss = scb_block_sum_(ss);
    const float r = rsqrtf(ss / (float)n + eps);
#pragma unroll
    for (int u = 0; u < RMS_V; u++) {
        const int i = threadIdx.x + u * blockDim.x;
        if (i >= n8) break;
        float f[8], g[8];
        scb_unpack8(v[u], f);
        scb_unpack8(w8[i], g);
        uint32_t o[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float a = scb_bf2f(scb_f2bf(f[2 * e] * r)), b = scb_bf2f(scb_f2bf(f[2 * e + 1] * r));
            o[e] = scb_pack_bf2(g[2 * e] * a, g[2 * e + 1] * b);
        }
        yr[i] = make_uint4(o[0], o[1], o[2], o[3]);
    }
}

extern "C" int scb_cuda_rmsnorm(struct scb_cuda_ctx *cc, uint16_t *y, const uint16_t *x,
                                const uint16_t *w, int T, int n, float eps, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!y || !x || !w || T < 0 || n <= 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA rmsnorm: bad arguments (T=%d n=%d)", T, n);
        goto out;
    }
    if (T == 0) goto out;
    if (n % 8 == 0 && n <= 8 * RMS_V * 1024 && scb_aligned16(x) && scb_aligned16(y) && scb_aligned16(w)) {
        /* the fewest warps that hold the row in RMS_V chunks a thread */
        const int thr = ((n / 8 + RMS_V - 1) / RMS_V + 31) / 32 * 32;
        scb_rmsnorm8_kernel<<<(unsigned)T, (unsigned)thr, 0, cc->stream>>>(y, x, w, n, eps);
    } else {
        scb_rmsnorm_kernel<<<(unsigned)T, EW_THREADS, 0, cc->stream>>>(y, x, w, n, eps);
    }
    SCB_LAUNCH_CHECK("scb_rmsnorm_kernel");
out:
    return rc;
}

/* ---- RoPE ------------------------------------------------------------------------------- */

/* The rotation of the pair (x1, x2) = (x_i, x_{i + D/2}) by (cs, sn), one explicit order of
 * operations for every RoPE kernel (the table form equals the position form bit for bit). */
static __device__ __forceinline__ void scb_rot_(float x1, float x2, float cs, float sn, float *y1, float *y2)
{
    *y1 = __fmaf_rn(x1, cs, -__fmul_rn(x2, sn));
    *y2 = __fmaf_rn(x2, cs, __fmul_rn(x1, sn));
}

__global__ void scb_rope_kernel(uint16_t *x, int T, int H, int D, long long tok_stride,
                                const int32_t *pos, const float *inv_freq)
{
    const int t = blockIdx.x, hd = D / 2;
    const float p = (float)pos[t];
    for (int e = threadIdx.x; e < H * hd; e += blockDim.x) {
        const int h = e / hd, i = e % hd;
        uint16_t *xr = x + t * tok_stride + (long long)h * D;
        const float a = p * inv_freq[i];
        float sn, cs;
        sincosf(a, &sn, &cs);
        float y1, y2;
        scb_rot_(scb_bf2f(xr[i]), scb_bf2f(xr[i + hd]), cs, sn, &y1, &y2);
        xr[i] = scb_f2bf(y1);
        xr[i + hd] = scb_f2bf(y2);
    }
}

extern "C" int scb_cuda_rope(struct scb_cuda_ctx *cc, uint16_t *x, int T, int H, int D,
                             size_t tok_stride, const int32_t *pos, const float *inv_freq,
                             struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!x || !pos || !inv_freq || T < 0 || H <= 0 || D <= 0 || D % 2 || D > 256) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA rope: bad arguments (T=%d H=%d D=%d)", T, H, D);
        goto out;
    }
    if (T == 0) goto out;
    scb_rope_kernel<<<(unsigned)T, EW_THREADS, 0, cc->stream>>>(
        x, T, H, D, (long long)(tok_stride ? tok_stride : (size_t)H * D), pos, inv_freq);
    SCB_LAUNCH_CHECK("scb_rope_kernel");
out:
    return rc;
}

__global__ void scb_rope_table_kernel(const float *inv_freq, int half, long long pos0, int T,
                                      float attn_scale, float *cos_t, float *sin_t,
                                      const int32_t *d_pos0)
{
    if (d_pos0) pos0 = *d_pos0;
    const size_t n = (size_t)T * half;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int t = (int)(e / half), i = (int)(e % half);
        const float a = (float)(pos0 + t) * inv_freq[i];
        float sn, cs;
        sincosf(a, &sn, &cs);
        cos_t[e] = cs * attn_scale;
        sin_t[e] = sn * attn_scale;
    }
}

__global__ void scb_rope_cs_kernel(uint16_t *x, int H, int D, long long tok_stride,
                                   const float *cos_t, const float *sin_t)
{
    const int t = blockIdx.x, hd = D / 2;
    for (int e = threadIdx.x; e < H * hd; e += blockDim.x) {
        const int h = e / hd, i = e % hd;
        uint16_t *xr = x + t * tok_stride + (long long)h * D;
        const float cs = cos_t[(size_t)t * hd + i], sn = sin_t[(size_t)t * hd + i];
        float y1, y2;
        scb_rot_(scb_bf2f(xr[i]), scb_bf2f(xr[i + hd]), cs, sn, &y1, &y2);
        xr[i] = scb_f2bf(y1);
        xr[i + hd] = scb_f2bf(y2);
    }
}

/* The table form with 16-byte accesses (D % 16 == 0, token rows and tables 16-byte aligned):
 * item (t, h, c) rotates channels 8c..8c+7 of head h with their partners D/2 on; the T x H x D/16
 * items grid-strided. */
__global__ void scb_rope_cs8_kernel(uint16_t *x, int T, int H, int D, long long tok_stride, const float *cos_t,
                                    const float *sin_t)
{
    const int hd = D / 2, c8 = hd / 8;
    const long long items = (long long)T * H * c8;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < items;
         e += (long long)gridDim.x * blockDim.x) {
        const long long th = e / c8;
        const int c = (int)(e - th * c8), h = (int)(th % H), t = (int)(th / H);
        uint16_t *xr = x + t * tok_stride + (long long)h * D + 8 * c;
        const float4 *cp = reinterpret_cast<const float4 *>(cos_t + (size_t)t * hd + 8 * c);
        const float4 *sp = reinterpret_cast<const float4 *>(sin_t + (size_t)t * hd + 8 * c);
        const float4 ca = cp[0], cb = cp[1], sa = sp[0], sb = sp[1];
        const float cs[8] = {ca.x, ca.y, ca.z, ca.w, cb.x, cb.y, cb.z, cb.w};
        const float sn[8] = {sa.x, sa.y, sa.z, sa.w, sb.x, sb.y, sb.z, sb.w};
        float a[8], b[8];
        scb_unpack8(*reinterpret_cast<const uint4 *>(xr), a);
        scb_unpack8(*reinterpret_cast<const uint4 *>(xr + hd), b);
        uint32_t o1[4], o2[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float y1a, y2a, y1b, y2b;
            scb_rot_(a[2 * u], b[2 * u], cs[2 * u], sn[2 * u], &y1a, &y2a);
            scb_rot_(a[2 * u + 1], b[2 * u + 1], cs[2 * u + 1], sn[2 * u + 1], &y1b, &y2b);
            o1[u] = scb_pack_bf2(y1a, y1b);
            o2[u] = scb_pack_bf2(y2a, y2b);
        }
        *reinterpret_cast<uint4 *>(xr) = make_uint4(o1[0], o1[1], o1[2], o1[3]);
        *reinterpret_cast<uint4 *>(xr + hd) = make_uint4(o2[0], o2[1], o2[2], o2[3]);
    }
}

extern "C" int scb_cuda_rope_table(struct scb_cuda_ctx *cc, const float *inv_freq, int half,
                                   int64_t pos0, int T, float attn_scale, float *cos_t,
                                   float *sin_t, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!inv_freq || !cos_t || !sin_t || half <= 0 || T < 0 || pos0 < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA rope_table: bad arguments (half=%d T=%d pos0=%lld)",
                     half, T, (long long)pos0);
        goto out;
    }
    if (T == 0) goto out;
    scb_rope_table_kernel<<<scb_ew_blocks_((size_t)T * half), EW_THREADS, 0, cc->stream>>>(
        inv_freq, half, (long long)pos0, T, attn_scale, cos_t, sin_t, (const int32_t *)NULL);
    SCB_LAUNCH_CHECK("scb_rope_table_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_rope_table_dev(struct scb_cuda_ctx *cc, const float *inv_freq, int half,
                                       const int32_t *d_pos0, int T, float attn_scale,
                                       float *cos_t, float *sin_t, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!inv_freq || !cos_t || !sin_t || !d_pos0 || half <= 0 || T < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA rope_table_dev: bad arguments (half=%d T=%d%s)",
                     half, T, d_pos0 ? "" : ", NULL d_pos0");
        goto out;
    }
    if (T == 0) goto out;
    scb_rope_table_kernel<<<scb_ew_blocks_((size_t)T * half), EW_THREADS, 0, cc->stream>>>(
        inv_freq, half, 0, T, attn_scale, cos_t, sin_t, d_pos0);
    SCB_LAUNCH_CHECK("scb_rope_table_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_rope_cs(struct scb_cuda_ctx *cc, uint16_t *x, int T, int H, int D,
                                size_t tok_stride, const float *cos_t, const float *sin_t,
                                struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!x || !cos_t || !sin_t || T < 0 || H <= 0 || D <= 0 || D % 2) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA rope_cs: bad arguments (T=%d H=%d D=%d)", T, H, D);
        goto out;
    }
    if (T == 0) goto out;
    {
        const size_t ts = tok_stride ? tok_stride : (size_t)H * D;
        if (D % 16 == 0 && ts % 8 == 0 && scb_aligned16(x) && scb_aligned16(cos_t) && scb_aligned16(sin_t))
            scb_rope_cs8_kernel<<<scb_ew_blocks_((size_t)T * H * (D / 16)), EW_THREADS, 0, cc->stream>>>(
                x, T, H, D, (long long)ts, cos_t, sin_t);
        else
            scb_rope_cs_kernel<<<(unsigned)T, EW_THREADS, 0, cc->stream>>>(x, H, D, (long long)ts, cos_t, sin_t);
    }
    SCB_LAUNCH_CHECK("scb_rope_cs_kernel");
out:
    return rc;
}

/* ---- SwiGLU ----------------------------------------------------------------------------- */

/* silu(g) * u in fp32, one explicit order for both SwiGLU kernels. */
static __device__ __forceinline__ float scb_silu_mul_(float g, float u)
{
    return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

__global__ void scb_swiglu_kernel(uint16_t *out, const uint16_t *gate, const uint16_t *up,
                                  int T, int F, long long ld)
{
    const size_t n = (size_t)T * F;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t t = e / F, f = e % F;
        out[e] = scb_f2bf(scb_silu_mul_(scb_bf2f(gate[t * ld + f]), scb_bf2f(up[t * ld + f])));
    }
}

/* The same with 16-byte accesses (F and ld multiples of 8, 16-byte aligned rows): item (t, c) is
 * elements 8c..8c+7 of row t; 32-bit index arithmetic (T x F / 8 < 2^31). */
__global__ void scb_swiglu8_kernel(uint16_t *out, const uint16_t *gate, const uint16_t *up, int T, int F, int ld)
{
    const int f8 = F / 8, items = T * f8;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < items; e += gridDim.x * blockDim.x) {
        const int t = e / f8, c = e - t * f8;
        const size_t in = (size_t)t * ld + 8 * (size_t)c;
        float g[8], u[8];
        scb_unpack8(*reinterpret_cast<const uint4 *>(gate + in), g);
        scb_unpack8(*reinterpret_cast<const uint4 *>(up + in), u);
        uint32_t o[4];
#pragma unroll
        for (int k = 0; k < 4; k++)
            o[k] = scb_pack_bf2(scb_silu_mul_(g[2 * k], u[2 * k]), scb_silu_mul_(g[2 * k + 1], u[2 * k + 1]));
        *reinterpret_cast<uint4 *>(out + (size_t)t * F + 8 * (size_t)c) = make_uint4(o[0], o[1], o[2], o[3]);
    }
}

extern "C" int scb_cuda_swiglu(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *gate,
                               const uint16_t *up, int T, int F, size_t ld_in,
                               struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!out || !gate || !up || T < 0 || F <= 0 || (ld_in && ld_in < (size_t)F)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA swiglu: bad arguments (T=%d F=%d ld=%zu)", T, F,
                     ld_in);
        goto out;
    }
    if (T == 0) goto out;
    {
        const size_t ld = ld_in ? ld_in : (size_t)F;
        if (F % 8 == 0 && ld % 8 == 0 && (size_t)T * ld < ((size_t)1 << 31) && scb_aligned16(out) && scb_aligned16(gate) &&
            scb_aligned16(up))
            scb_swiglu8_kernel<<<scb_ew_blocks_((size_t)T * (F / 8)), EW_THREADS, 0, cc->stream>>>(out, gate, up, T, F,
                                                                                                 (int)ld);
        else
            scb_swiglu_kernel<<<scb_ew_blocks_((size_t)T * F), EW_THREADS, 0, cc->stream>>>(out, gate, up, T, F,
                                                                                        (long long)ld);
    }
    SCB_LAUNCH_CHECK("scb_swiglu_kernel");
out:
    return rc;
}

/* ---- embedding gather ------------------------------------------------------------------- */

__global__ void scb_embed_kernel(uint16_t *out, const uint16_t *table, int V, int n,
                                 const int32_t *ids, int *flag)
{
    const long long t = blockIdx.x;
    const int id = ids[t];
    const bool ok = id >= 0 && id < V;
    if (!ok && threadIdx.x == 0) atomicOr(flag, SCB_CUDA_FLAG_EMBED_RANGE);
    if ((n & 7) == 0 && (((uintptr_t)out | (uintptr_t)table) & 15) == 0) {   /* 16-byte copies */
        const uint4 nan8 = make_uint4(0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u, 0x7fc07fc0u);
        const uint4 *src = reinterpret_cast<const uint4 *>(table + (long long)(ok ? id : 0) * n);
        uint4 *dst = reinterpret_cast<uint4 *>(out + t * n);
        for (int i = threadIdx.x; i < n / 8; i += blockDim.x) dst[i] = ok ? src[i] : nan8;
        return;
    }
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        out[t * n + i] = ok ? table[(long long)id * n + i] : (uint16_t)0x7fc0;
}

extern "C" int scb_cuda_embed(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *table,
                              int V, int n, const int32_t *ids, int T, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!out || !table || !ids || V <= 0 || n <= 0 || T < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA embed: bad arguments (V=%d n=%d T=%d)", V, n, T);
        goto out;
    }
    if (T == 0) goto out;
    scb_embed_kernel<<<(unsigned)T, EW_THREADS, 0, cc->stream>>>(out, table, V, n, ids,
                                                                  cc->d_flag);
    SCB_LAUNCH_CHECK("scb_embed_kernel");
out:
    return rc;
}

/* ---- residual add ----------------------------------------------------------------------- */

__global__ void scb_add_kernel(uint16_t *x, const uint16_t *y, size_t n)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x)
        x[e] = scb_f2bf(scb_bf2f(x[e]) + scb_bf2f(y[e]));
}

/* The same on n8 chunks of 8 (16-byte accesses). */
__global__ void scb_add8_kernel(uint4 *x, const uint4 *y, size_t n8)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n8;
         e += (size_t)gridDim.x * blockDim.x) {
        float a[8], b[8];
        scb_unpack8(x[e], a);
        scb_unpack8(y[e], b);
        uint32_t o[4];
#pragma unroll
        for (int k = 0; k < 4; k++) o[k] = scb_pack_bf2(a[2 * k] + b[2 * k], a[2 * k + 1] + b[2 * k + 1]);
        x[e] = make_uint4(o[0], o[1], o[2], o[3]);
    }
}

extern "C" int scb_cuda_add(struct scb_cuda_ctx *cc, uint16_t *x, const uint16_t *y, size_t n,
                            struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!x || !y) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA add: NULL pointer");
        goto out;
    }
    if (n == 0) goto out;
    if (n % 8 == 0 && scb_aligned16(x) && scb_aligned16(y))
        scb_add8_kernel<<<scb_ew_blocks_(n / 8), EW_THREADS, 0, cc->stream>>>((uint4 *)x, (const uint4 *)y, n / 8);
    else
        scb_add_kernel<<<scb_ew_blocks_(n), EW_THREADS, 0, cc->stream>>>(x, y, n);
    SCB_LAUNCH_CHECK("scb_add_kernel");
out:
    return rc;
}

/* ---- argmax ----------------------------------------------------------------------------- */

/* (v, i) beats (bv, bi) when v is larger, or equal with a smaller index; NaN never wins. */
static __device__ __forceinline__ void scb_argmax_take_(float &bv, int &bi, float v, int i)
{
    if (v != v) return;
    if (bi < 0 || v > bv || (v == bv && i < bi)) {
        bv = v;
        bi = i;
    }
}

template <bool BF16>
__global__ void scb_argmax_kernel(int32_t *idx, const void *logits, int V)
{
    const long long row = blockIdx.x;
    float bv = -INFINITY;
    int bi = -1;
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float v = BF16 ? scb_bf2f(((const uint16_t *)logits)[row * V + j])
                       : ((const float *)logits)[row * V + j];
        scb_argmax_take_(bv, bi, v, j);
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0) scb_argmax_take_(bv, bi, ov, oi);
    }
    __shared__ float sv[32];
    __shared__ int si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sv[warp] = bv;
        si[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (si[w] >= 0) scb_argmax_take_(bv, bi, sv[w], si[w]);
        idx[row] = bi < 0 ? 0 : bi;
    }
}

extern "C" int scb_cuda_argmax(struct scb_cuda_ctx *cc, int32_t *idx, const void *logits,
                               int is_bf16, int T, int V, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!idx || !logits || T < 0 || V <= 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA argmax: bad arguments (T=%d V=%d)", T, V);
        goto out;
    }
    if (T == 0) goto out;
    if (is_bf16)
        scb_argmax_kernel<true><<<(unsigned)T, 1024, 0, cc->stream>>>(idx, logits, V);
    else
        scb_argmax_kernel<false><<<(unsigned)T, 1024, 0, cc->stream>>>(idx, logits, V);
    SCB_LAUNCH_CHECK("scb_argmax_kernel");
out:
    return rc;
}

/* ---- conversions ------------------------------------------------------------------------ */

__global__ void scb_f2bf_kernel(uint16_t *dst, const float *src, size_t n)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x)
        dst[e] = scb_f2bf(src[e]);
}

__global__ void scb_bf2f_kernel(float *dst, const uint16_t *src, size_t n)
{
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x)
        dst[e] = scb_bf2f(src[e]);
}

extern "C" int scb_cuda_f32_to_bf16(struct scb_cuda_ctx *cc, uint16_t *dst, const float *src,
                                    size_t n, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!dst || !src) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA f32_to_bf16: NULL pointer");
        goto out;
    }
    if (n == 0) goto out;
    scb_f2bf_kernel<<<scb_ew_blocks_(n), EW_THREADS, 0, cc->stream>>>(dst, src, n);
    SCB_LAUNCH_CHECK("scb_f2bf_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_bf16_to_f32(struct scb_cuda_ctx *cc, float *dst, const uint16_t *src,
                                    size_t n, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!dst || !src) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA bf16_to_f32: NULL pointer");
        goto out;
    }
    if (n == 0) goto out;
    scb_bf2f_kernel<<<scb_ew_blocks_(n), EW_THREADS, 0, cc->stream>>>(dst, src, n);
    SCB_LAUNCH_CHECK("scb_bf2f_kernel");
out:
    return rc;
}
