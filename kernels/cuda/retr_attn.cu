/* retr_attn.cu — RetrievalAttention's device attention (see retr_attn_cuda.h): partial softmax
 * attention over chunks of SCB_RETR_CHUNK keys — the resident ranges' chunks and the retrieved
 * lists' chunks, one block per (chunk, query head) — each writing its unnormalized output,
 * max and sum; a merge kernel combines all partials of a head with log-sum-exp weights (the
 * resident part and the retrieved part are merged exactly as SCBench merges them, §1.3). Where
 * D/8 is a power of two (rows 16-byte aligned) a row is read as D/8 lanes' 16-byte loads, 4 rows a
 * lane group in flight, for the scores and for P.V (102 -> 33 us a layer at 32K on an H200);
 * other D take one warp per key. Also the flat index's retrieval on the device (at the end). */
#include "kernels/retr_attn_cuda.h"

#include <math.h>
#include <stdlib.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/attn_common.cuh"
#include "kernels/kvsel_cuda.h"

enum { RA_THREADS = 128, RA_MAXD = 256, RA_U = 4 };   /* RA_U: rows a thread has in flight */

static int n_resident(const struct scb_retr_attn_cuda_args *a)
{
    return (a->r0_end - a->r0_begin) + (a->r1_end - a->r1_begin);
}

static int chunks(int n) { return (n + SCB_RETR_CHUNK - 1) / SCB_RETR_CHUNK; }

extern "C" size_t scb_retr_attn_cuda_work_floats(int Hq, int D, int n_res, int idx_stride)
{
    return (size_t)(chunks(n_res) + chunks(idx_stride) + 1) * Hq * (D + 2);
}

/* The 16-byte chunk sl of rows j_s[i0 + u step] (u < RA_U, zeros past cnt) of a (kcap, D) head:
 * RA_U independent loads in flight. */
static __device__ __forceinline__ void ra_load_rows(const uint16_t *base, const int *j_s, int i0, int step, int cnt,
                                                    int D, int sl, uint4 *w)
{
#pragma unroll
    for (int u = 0; u < RA_U; u++) {
        const int i = i0 + u * step;
        w[u] = i < cnt ? *reinterpret_cast<const uint4 *>(base + (size_t)j_s[i] * D + 8 * sl) : make_uint4(0, 0, 0, 0);
    }
}

__global__ void __launch_bounds__(RA_THREADS)
retr_part_kernel(struct scb_retr_attn_cuda_args a, int res_chunks, float scale)
{
    __shared__ float q_s[RA_MAXD];
    __shared__ float p_s[SCB_RETR_CHUNK];
    __shared__ int j_s[SCB_RETR_CHUNK];
    __shared__ float red[RA_THREADS / 32];
    __shared__ float red_s[RA_THREADS * 8];           /* (key groups, D) P.V partial sums (VEC path) */
    const int h = blockIdx.y, c = blockIdx.x, tid = threadIdx.x, D = a.D;
    const int g = h / (a.Hq / a.Hkv);
    const int warp = tid / 32, lane = tid % 32;
    for (int d = tid; d < D; d += RA_THREADS) q_s[d] = scb_bf2f(a.q[(size_t)h * D + d]);
    int cnt;
    if (c < res_chunks) {
        const int r1_end = a.r1_end_dev ? *a.r1_end_dev : a.r1_end;   /* a graph step: from the device */
        const int len0 = a.r0_end - a.r0_begin, n_res = len0 + (r1_end - a.r1_begin), base = c * SCB_RETR_CHUNK;
        cnt = max(0, min(SCB_RETR_CHUNK, n_res - base));  /* a chunk past a device count: empty */
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
    /* VEC (D/8 lanes a row, D/8 a power of two, rows 16-byte aligned): a row is D/8 lanes' 16-byte
     * loads; RA_U rows a lane group in flight */
    const int lpk = D / 8;
    const bool vec = (D % 8) == 0 && (lpk & (lpk - 1)) == 0 && ((uintptr_t)a.k & 15) == 0 && ((uintptr_t)a.v & 15) == 0;
    if (vec) {
        /* scores: a group of lpk lanes per key (32/lpk keys a warp at once), 8 channels a lane,
         * the group's partial sums reduced by shuffles */
        const int kpw = 32 / lpk, sub = lane / lpk, sl = lane % lpk, step = (RA_THREADS / 32) * kpw;
        float qf[8];
#pragma unroll
        for (int e = 0; e < 8; e++) qf[e] = q_s[8 * sl + e];
        for (int b0 = warp * kpw; b0 < cnt; b0 += RA_U * step) {   /* warp-uniform trip count (shuffles) */
            const int i0 = b0 + sub;
            uint4 w[RA_U];
            ra_load_rows(kh, j_s, i0, step, cnt, D, sl, w);
#pragma unroll
            for (int u = 0; u < RA_U; u++) {
                float x[8], dot = 0.0f;
                scb_unpack8(w[u], x);
#pragma unroll
                for (int e = 0; e < 8; e++) dot = fmaf(qf[e], x[e], dot);
                for (int o = lpk / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
                const int i = i0 + u * step;
                if (sl == 0 && i < cnt) p_s[i] = dot * scale;
            }
        }
    } else {
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
    if (vec) {
        /* P.V: thread (key group kg, 8-channel chunk sl) sums keys kg, kg + ng, ... of its chunk
         * (RA_U 16-byte value loads in flight), then the ng groups' sums are added in shared memory */
        const int sl = tid % lpk, kg = tid / lpk, ng = RA_THREADS / lpk;
        float acc[8];
#pragma unroll
        for (int e = 0; e < 8; e++) acc[e] = 0.0f;
        for (int i0 = kg; i0 < cnt; i0 += RA_U * ng) {
            uint4 v[RA_U];
            ra_load_rows(vh, j_s, i0, ng, cnt, D, sl, v);
#pragma unroll
            for (int u = 0; u < RA_U; u++) {
                const int i = i0 + u * ng;
                const float p = i < cnt ? p_s[i] : 0.0f;
                float x[8];
                scb_unpack8(v[u], x);
#pragma unroll
                for (int e = 0; e < 8; e++) acc[e] = fmaf(p, x[e], acc[e]);
            }
        }
        __syncthreads();                                   /* p_s / j_s reads done: reuse red_s */
#pragma unroll
        for (int e = 0; e < 8; e++) red_s[kg * D + 8 * sl + e] = acc[e];
        __syncthreads();
        for (int d = tid; d < D; d += RA_THREADS) {
            float o = 0.0f;
            for (int k2 = 0; k2 < ng; k2++) o += red_s[k2 * D + d];
            w[d] = o;
        }
    } else {
        for (int d = tid; d < D; d += RA_THREADS) {
            float acc = 0.0f;
            for (int i = 0; i < cnt; i++) acc = fmaf(p_s[i], scb_bf2f(vh[(size_t)j_s[i] * D + d]), acc);
            w[d] = acc;
        }
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

/* ---- the flat index's retrieval on the device ----------------------------------------------
 * Scores: block (RF_KEYS keys, KV head g) of RF_KEYS threads, a thread one key; the G query heads'
 * q (fp32) in shared memory, padded with zero rows to a multiple of RF_HEADS heads (16-byte q
 * loads, no clamped indices). STAGED (D % 8 == 0, D <= 128, 16-byte aligned rows): the block's
 * key rows are first copied into shared memory with coalesced 16-byte loads (rows padded by 16
 * bytes: a quarter-warp's row reads fall in distinct banks), else each thread reads its own row
 * from global memory. DD: D known at compile time (0: at run time). RF_HEADS heads' fused
 * multiply-add chains at a time (independent chains, each in d order: scb_retr_score's bits).
 * (Two keys a thread and 64-key blocks were measured no faster: docs/performance.md.) */
enum { RF_KEYS = 128, RF_HEADS = 4, RF_MAXSD = 128 };

extern "C" size_t scb_retr_flat_cuda_work_floats(int Hq, int n) { return (size_t)Hq * (size_t)(n > 0 ? n : 1); }

/* A thread's key (row kr) against the G heads of qg ((Gp, D) fp32): its score column c of the G
 * score rows of n (srow), in scb_retr_score's order of operations. VEC: 16-byte row loads
 * (D % 8 == 0, aligned rows). */
template <int DD>
static __device__ __forceinline__ void rf_dot_store(const float *qg, const uint16_t *kr, bool vec, int G, int D, int n,
                                                    int c, float *srow)
{
    for (int h0 = 0; h0 < G; h0 += RF_HEADS) {
        float acc[RF_HEADS];
#pragma unroll
        for (int j = 0; j < RF_HEADS; j++) acc[j] = 0.0f;
        if (vec) {
#pragma unroll
            for (int d0 = 0; d0 < D; d0 += 8) {
                float x[8];
                scb_unpack8(*reinterpret_cast<const uint4 *>(kr + d0), x);
#pragma unroll
                for (int j = 0; j < RF_HEADS; j++) {
                    const float4 *qv = reinterpret_cast<const float4 *>(qg + (size_t)(h0 + j) * D + d0);
                    const float4 qa = qv[0], qb = qv[1];
                    const float qh[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
                    for (int e = 0; e < 8; e++) acc[j] = fmaf(qh[e], x[e], acc[j]);
                }
            }
        } else {
            for (int d = 0; d < D; d++) {
                const float x = scb_bf2f(kr[d]);
#pragma unroll
                for (int j = 0; j < RF_HEADS; j++) acc[j] = fmaf(qg[(size_t)(h0 + j) * D + d], x, acc[j]);
            }
        }
#pragma unroll
        for (int j = 0; j < RF_HEADS; j++)
            if (h0 + j < G) srow[(size_t)(h0 + j) * n + c] = acc[j];
    }
}

/* q (G heads of KV head g) into shared memory as fp32, zero rows up to Gp. */
static __device__ __forceinline__ void rf_load_q(float *dst, const uint16_t *q, int g, int G, int Gp, int D, int tid,
                                                 int nt)
{
    for (int i = tid; i < Gp * D; i += nt) dst[i] = i < G * D ? scb_bf2f(q[(size_t)g * G * D + i]) : 0.0f;
}

template <bool STAGED, int DD>
__global__ void __launch_bounds__(RF_KEYS)
retr_flat_scores_kernel(const uint16_t *q, const uint16_t *k, size_t kcap, int Hq, int Hkv, int Drt, int lo, int n,
                        float *scores)
{
    extern __shared__ __align__(16) float rf_q[];         /* (Gp, D) fp32, then (RF_KEYS, D + 8) bf16 rows */
    const int D = DD ? DD : Drt, g = blockIdx.y, G = Hq / Hkv, Gp = (G + RF_HEADS - 1) / RF_HEADS * RF_HEADS;
    const int tid = threadIdx.x, t0 = blockIdx.x * RF_KEYS;
    const uint16_t *kh = k + ((size_t)g * kcap + (size_t)lo) * D;
    uint16_t *rows = reinterpret_cast<uint16_t *>(rf_q + Gp * D);
    const int RS = D + 8;                                  /* staged row stride (elements) */
    if constexpr (STAGED) {
        const int cpr = D / 8, nk = min(RF_KEYS, n - t0);  /* 16-byte chunks per row, keys here */
        for (int i = tid; i < nk * cpr; i += RF_KEYS) {    /* cp.async: every copy in flight at once */
            const int r = i / cpr, c = i % cpr;
            scb_cp_async16(rows + (size_t)r * RS + 8 * c, kh + (size_t)(t0 + r) * D + 8 * c, true);
        }
        scb_cp_async_commit();
    }
    rf_load_q(rf_q, q, g, G, Gp, D, tid, RF_KEYS);        /* while the rows are in flight */
    if constexpr (STAGED) scb_cp_async_wait<0>();
    __syncthreads();
    if (t0 + tid >= n) return;
    const uint16_t *kr = STAGED ? rows + (size_t)tid * RS : kh + (size_t)(t0 + tid) * D;
    const bool vec = STAGED || ((D % 8) == 0 && ((uintptr_t)kr & 15) == 0);
    rf_dot_store<DD>(rf_q, kr, vec, G, D, n, t0 + tid, scores + (size_t)g * G * n);
}

template <bool STAGED, int DD>
static int retr_flat_scores_launch(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, size_t kcap, int Hq,
                                   int Hkv, int D, int lo, int n, float *scores, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const int Gp = (Hq / Hkv + RF_HEADS - 1) / RF_HEADS * RF_HEADS;
    const size_t smem = sizeof(float) * (size_t)Gp * D + (STAGED ? sizeof(uint16_t) * (size_t)RF_KEYS * (D + 8) : 0);
    const dim3 grid((unsigned)((n + RF_KEYS - 1) / RF_KEYS), (unsigned)Hkv);
    if (smem > 48 * 1024)
        SCB_CUDA_TRY(cudaFuncSetAttribute(retr_flat_scores_kernel<STAGED, DD>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    retr_flat_scores_kernel<STAGED, DD><<<grid, RF_KEYS, smem, cc->stream>>>(q, k, kcap, Hq, Hkv, D, lo, n, scores);
    SCB_LAUNCH_CHECK("retr_flat_scores_kernel");
out:
    return rc;
}

extern "C" int scb_retr_flat_topk_cuda(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, size_t kcap,
                                       int Hq, int Hkv, int D, int lo, int hi, int top_k, int32_t *idx, int idx_stride,
                                       int32_t *n_idx, float *scores, struct scb_ctx *err)
{
    int rc = SCB_OK, n = hi - lo, kp = top_k < n ? top_k : n;
    SCB_CHECK_ALIVE();
    if (!q || !k || !n_idx || Hkv < 1 || Hq < 1 || Hq % Hkv || D < 2 || D % 2 || D > RA_MAXD || lo < 0 || n < 0 ||
        (size_t)hi > kcap || top_k < 0 || (n > 0 && (!idx || !scores || kp > idx_stride))) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA retr_attn flat top-k: bad arguments (Hq=%d Hkv=%d D=%d keys [%d,%d) "
                     "kcap=%zu top_k=%d idx_stride=%d)", Hq, Hkv, D, lo, hi, kcap, top_k, idx_stride);
        goto out;
    }
    SCB_TRY(scb_cuda_fill32(cc, (uint32_t *)n_idx, (uint32_t)(kp > 0 ? kp : 0), (size_t)Hq, err));
    if (kp <= 0) goto out;
    {
        static int direct = -1;   /* SCB_RETR_SEARCH_DIRECT=1: rows read from global memory (timing) */
        if (direct < 0) direct = getenv("SCB_RETR_SEARCH_DIRECT") != nullptr;
        const bool staged = D % 8 == 0 && D <= RF_MAXSD && ((uintptr_t)k & 15) == 0 && !direct;
        int (*launch)(struct scb_cuda_ctx *, const uint16_t *, const uint16_t *, size_t, int, int, int, int, int,
                      float *, struct scb_ctx *) = retr_flat_scores_launch<false, 0>;
        if (staged && D == 128) launch = retr_flat_scores_launch<true, 128>;
        else if (staged && D == 64) launch = retr_flat_scores_launch<true, 64>;
        else if (staged) launch = retr_flat_scores_launch<true, 0>;
        SCB_TRY(launch(cc, q, k, kcap, Hq, Hkv, D, lo, n, scores, err));
    }
    rc = scb_cuda_topk_rows(cc, scores, Hq, n, kp, idx, idx_stride, lo, err);
out:
    return rc;
}
