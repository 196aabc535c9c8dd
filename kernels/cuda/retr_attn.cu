/* retr_attn.cu — RetrievalAttention's device attention (see retr_attn_cuda.h): partial softmax
 * attention over chunks of SCB_RETR_CHUNK keys — the resident ranges' chunks and the retrieved
 * lists' chunks, one block per (chunk, query head) — each writing its unnormalized output,
 * max and sum; a merge kernel combines all partials of a head with log-sum-exp weights (the
 * resident part and the retrieved part are merged exactly as SCBench merges them, §1.3). */
#include "kernels/retr_attn_cuda.h"

#include <math.h>

#include "kernels/cuda/common.cuh"

enum { RA_THREADS = 128, RA_MAXD = 256 };

static int n_resident(const struct scb_retr_attn_cuda_args *a)
{
    return (a->r0_end - a->r0_begin) + (a->r1_end - a->r1_begin);
}

static int chunks(int n) { return (n + SCB_RETR_CHUNK - 1) / SCB_RETR_CHUNK; }

extern "C" size_t scb_retr_attn_cuda_work_floats(int Hq, int D, int n_res, int idx_stride)
{
    return (size_t)(chunks(n_res) + chunks(idx_stride) + 1) * Hq * (D + 2);
}

__global__ void __launch_bounds__(RA_THREADS)
retr_part_kernel(struct scb_retr_attn_cuda_args a, int res_chunks, float scale)
{
    __shared__ float q_s[RA_MAXD];
    __shared__ float p_s[SCB_RETR_CHUNK];
    __shared__ int j_s[SCB_RETR_CHUNK];
    __shared__ float red[RA_THREADS / 32];
    const int h = blockIdx.y, c = blockIdx.x, tid = threadIdx.x, D = a.D;
    const int g = h / (a.Hq / a.Hkv);
    const int warp = tid / 32, lane = tid % 32;
    for (int d = tid; d < D; d += RA_THREADS) q_s[d] = scb_bf2f(a.q[(size_t)h * D + d]);
    int cnt;
    if (c < res_chunks) {
        const int len0 = a.r0_end - a.r0_begin, n_res = len0 + (a.r1_end - a.r1_begin), base = c * SCB_RETR_CHUNK;
        cnt = min(SCB_RETR_CHUNK, n_res - base);
        for (int i = tid; i < cnt; i += RA_THREADS) {
            const int vi = base + i;
            j_s[i] = vi < len0 ? a.r0_begin + vi : a.r1_begin + (vi - len0);
        }
    } else {
        const int base = (c - res_chunks) * SCB_RETR_CHUNK;
        const int nh = a.n_idx ? a.n_idx[h] : 0;
        cnt = max(0, min(SCB_RETR_CHUNK, nh - base));
        for (int i = tid; i < cnt; i += RA_THREADS) j_s[i] = a.idx[(size_t)h * a.idx_stride + base + i];
    }
    __syncthreads();
    const uint16_t *kh = a.k + (size_t)g * a.kcap * D, *vh = a.v + (size_t)g * a.kcap * D;
    /* scores: one warp per key, lanes over channel pairs (a row read coalesced) */
    for (int i = warp; i < cnt; i += RA_THREADS / 32) {
        const uint16_t *kr = kh + (size_t)j_s[i] * D;
        float dot = 0.0f;
        for (int d = 2 * lane; d < D; d += 64) {
            const uint32_t two = *reinterpret_cast<const uint32_t *>(kr + d);
            dot = fmaf(q_s[d + 1], __uint_as_float(two & 0xffff0000u), fmaf(q_s[d], __uint_as_float(two << 16), dot));
        }
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        if (lane == 0) p_s[i] = dot * scale;
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int i = tid; i < cnt; i += RA_THREADS) mx = fmaxf(mx, p_s[i]);
    mx = scb_block_max(mx, red, RA_THREADS / 32);
    float sum = 0.0f;
    for (int i = tid; i < cnt; i += RA_THREADS) {
        const float e = expf(p_s[i] - mx);
        p_s[i] = e;
        sum += e;
    }
    sum = scb_block_sum(sum, red, RA_THREADS / 32);          /* its barriers also publish p_s */
    float *w = a.work + ((size_t)c * a.Hq + h) * (D + 2);
    for (int d = tid; d < D; d += RA_THREADS) {
        float acc = 0.0f;
        for (int i = 0; i < cnt; i++) acc = fmaf(p_s[i], scb_bf2f(vh[(size_t)j_s[i] * D + d]), acc);
        w[d] = acc;
    }
    if (tid == 0) {
        w[D] = cnt > 0 ? mx : -INFINITY;
        w[D + 1] = cnt > 0 ? sum : 0.0f;
    }
}

__global__ void retr_merge_kernel(const float *work, int n_chunks, int Hq, int D, uint16_t *out, float *lse)
{
    const int h = blockIdx.x;
    float M = -INFINITY;
    for (int s = 0; s < n_chunks; s++) M = fmaxf(M, work[((size_t)s * Hq + h) * (D + 2) + D]);
    float L = 0.0f;
    for (int s = 0; s < n_chunks; s++) {
        const float m = work[((size_t)s * Hq + h) * (D + 2) + D];
        if (m != -INFINITY) L += work[((size_t)s * Hq + h) * (D + 2) + D + 1] * expf(m - M);
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.0f;
        for (int s = 0; s < n_chunks; s++) {
            const float m = work[((size_t)s * Hq + h) * (D + 2) + D];
            if (m != -INFINITY) o += work[((size_t)s * Hq + h) * (D + 2) + d] * expf(m - M);
        }
        out[(size_t)h * D + d] = scb_f2bf(L > 0.0f ? o / L : 0.0f);
    }
    if (threadIdx.x == 0 && lse) lse[h] = L > 0.0f ? M + logf(L) : -INFINITY;
}

extern "C" int scb_retr_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_retr_attn_cuda_args *a,
                                  struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!a || !a->q || !a->k || !a->v || !a->out || !a->work || a->Hkv < 1 || a->Hq < 1 || a->Hq % a->Hkv ||
        a->D < 2 || a->D % 2 || a->D > RA_MAXD || a->r0_begin < 0 || a->r0_end < a->r0_begin ||
        a->r1_begin < a->r0_end || a->r1_end < a->r1_begin || (size_t)a->r1_end > a->kcap || a->idx_stride < 0 ||
        (a->idx_stride > 0 && (!a->idx || !a->n_idx))) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA retr_attn: bad arguments (Hq=%d Hkv=%d D=%d ranges [%d,%d) [%d,%d) "
                     "kcap=%zu idx_stride=%d; D even <= %d, ordered disjoint ranges)", a ? a->Hq : 0,
                     a ? a->Hkv : 0, a ? a->D : 0, a ? a->r0_begin : 0, a ? a->r0_end : 0, a ? a->r1_begin : 0,
                     a ? a->r1_end : 0, a ? a->kcap : 0, a ? a->idx_stride : 0, RA_MAXD);
        goto out;
    }
    {
        const int rch = chunks(n_resident(a)), tch = chunks(a->idx_stride);
        const int n = rch + tch > 0 ? rch + tch : 1;
        const float scale = a->scale != 0.0f ? a->scale : 1.0f / sqrtf((float)a->D);
        dim3 grid((unsigned)n, (unsigned)a->Hq);
        retr_part_kernel<<<grid, RA_THREADS, 0, cc->stream>>>(*a, rch, scale);
        SCB_LAUNCH_CHECK("retr_part_kernel");
        retr_merge_kernel<<<(unsigned)a->Hq, 128, 0, cc->stream>>>(a->work, n, a->Hq, a->D, a->out, a->lse);
        SCB_LAUNCH_CHECK("retr_merge_kernel");
    }
out:
    return rc;
}
