/* kvsel.cu — the KV-selection kernels of kernels/kvsel_cuda.h: SnapKV / PyramidKV window scores
 * (scores tile -> per-row max/sum -> column sums -> pooling), a block-wide deterministic top-k
 * (radix select on order-preserving float keys, ties to the smaller index, output ascending),
 * and Quest's page min/max metadata, sign weights, page upper bounds + top-k and the attention
 * over the selected pages. SIMT fp32 throughout; the selection kernels run once per layer after
 * the prefill (SnapKV) or read O(pages) per step (Quest), so tensor cores would not pay here. */
#include "kernels/cuda/common.cuh"
#include "kernels/kvsel_cuda.h"

#include <cooperative_groups.h>
#include <cub/block/block_scan.cuh>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- block top-k ------------------------------------------------------------------------- */
enum { TOPK_THREADS = 1024, QTOPK_THREADS = 512, QTOPK_SMEM_MAX = 40 * 1024 };  /* + ~3 KiB static: within 48 KiB */

/* Order-preserving key of a float: larger float -> larger unsigned key. */
static __device__ __forceinline__ uint32_t scb_okey(float f)
{
    const uint32_t u = __float_as_uint(f + 0.0f);   /* -0 -> +0: equal scores tie */
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* The k best of s (n) (larger first, ties to the smaller index) into out (k), ascending, as
 * base + index; with out_s also their scores. Called by all NT threads of a block; 1 <= k <= n. */
template <int NT>
static __device__ void scb_block_topk(const float *s, int n, int k, int32_t *out, int base = 0,
                                      float *out_s = nullptr)
{
    typedef cub::BlockScan<int, NT> Scan;
    __shared__ typename Scan::TempStorage scan_tmp;
    /* radix select of the k-th largest key, 8 bits at a time from the top: a 256-bin histogram
     * of the keys matching the prefix so far (warp-aggregated shared atomics: the top bits of
     * similar scores collide), then warp 0 finds the bin holding the k-th largest */
    __shared__ int hist[256];
    __shared__ uint32_t pre_s;
    __shared__ int kk_s;
    const int lane = threadIdx.x % 32;
    if (threadIdx.x == 0) { pre_s = 0; kk_s = k; }
    uint32_t mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += NT) hist[b] = 0;
        __syncthreads();
        const uint32_t prefix = pre_s;
        for (int base = 0; base < n; base += NT) {            /* uniform trip count: full warps */
            const int j = base + threadIdx.x;
            uint32_t bin = 256u;
            if (j < n) {
                const uint32_t key = scb_okey(s[j]);
                if ((key & mask) == prefix) bin = (key >> shift) & 255u;
            }
            const unsigned peers = __match_any_sync(0xffffffffu, bin);
            if (bin < 256u && lane == __ffs(peers) - 1) atomicAdd(&hist[bin], __popc(peers));
        }
        __syncthreads();
        if (threadIdx.x < 32) {
            /* lane L holds bins 255-8L .. 248-8L (descending); prefix sums from the top */
            int c[8], sum = 0;
#pragma unroll
            for (int t = 0; t < 8; t++) { c[t] = hist[255 - 8 * lane - t]; sum += c[t]; }
            int incl = sum;
            for (int o = 1; o < 32; o <<= 1) {
                const int y = __shfl_up_sync(0xffffffffu, incl, o);
                if (lane >= o) incl += y;
            }
            const int excl = incl - sum, kk = kk_s;
            __syncwarp();
            if (excl < kk && kk <= incl) {
                int r = kk - excl, t = 0;
                for (; t < 7 && c[t] < r; t++) r -= c[t];
                kk_s = r;
                pre_s = prefix | ((uint32_t)(255 - 8 * lane - t) << shift);
            }
        }
        mask |= 255u << shift;
        __syncthreads();
    }
    const uint32_t thr = pre_s;                    /* the k-th largest key */
    /* contiguous segments per thread, in index order */
    const int seg = (n + NT - 1) / NT, j0 = threadIdx.x * seg;
    const int j1 = j0 + seg < n ? j0 + seg : n;
    int cgt = 0, ceq = 0;
    for (int j = j0; j < j1; j++) {
        const uint32_t key = scb_okey(s[j]);
        cgt += key > thr;
        ceq += key == thr;
    }
    int gt_total, eq_before, dummy;
    Scan(scan_tmp).ExclusiveSum(cgt, dummy, gt_total);
    __syncthreads();
    Scan(scan_tmp).ExclusiveSum(ceq, eq_before);
    __syncthreads();
    const int need = k - gt_total;                 /* equal keys taken, smallest indices first */
    int take_eq = need - eq_before;
    take_eq = take_eq < 0 ? 0 : (take_eq > ceq ? ceq : take_eq);
    int before;
    Scan(scan_tmp).ExclusiveSum(cgt + take_eq, before);
    __syncthreads();
    int o = before, te = 0;
    for (int j = j0; j < j1; j++) {
        const float sj = s[j];
        const uint32_t key = scb_okey(sj);
        const int take = key > thr || (key == thr && te < take_eq);
        if (take) {
            te += key == thr;
            if (out_s) out_s[o] = sj;
            out[o++] = base + j;
        }
    }
}

/* ---- SnapKV ------------------------------------------------------------------------------ */
enum { SNAP_KT = 32, SNAP_RY = 8, SNAP_DMAX = 256, SNAP_THREADS = 256 };

extern "C" size_t scb_cuda_snapkv_work_floats(int H, int W, int N)
{
    return (size_t)H * W * N + (size_t)H * W * 2;
}

/* S (H, W, N): scale * q_{N-W+r} . k_j for j <= N-W+r, else -inf. Grid (ceil(N/32), H),
 * block (32 keys, 8 rows). */
__global__ void scb_snap_scores_kernel(const uint16_t *q, int Nq, const uint16_t *k, long long cap,
                                       int N, int H, int G, int D, int W, float scale, float *S)
{
    __shared__ float kt[SNAP_KT][SNAP_DMAX + 1];
    const int h = blockIdx.y, s = h / G, j0 = blockIdx.x * SNAP_KT;
    const int tid = threadIdx.y * SNAP_KT + threadIdx.x;
    for (int e = tid; e < SNAP_KT * D; e += SNAP_KT * SNAP_RY) {
        const int r = e / D, d = e % D, j = j0 + r;
        kt[r][d] = j < N ? scb_bf2f(k[((long long)s * cap + j) * D + d]) : 0.f;
    }
    __syncthreads();
    const int j = j0 + threadIdx.x;
    if (j >= N) return;
    for (int r = threadIdx.y; r < W; r += SNAP_RY) {
        const uint16_t *qr = q + ((long long)(Nq - W + r) * H + h) * D;
        float acc = 0.f;
        for (int d = 0; d < D; d++) acc += scb_bf2f(qr[d]) * kt[threadIdx.x][d];
        S[((long long)h * W + r) * N + j] = j <= N - W + r ? acc * scale : -INFINITY;
    }
}

/* Row max and sum of exp over the causal keys of each (h, r). Grid (W, H). */
__global__ void scb_snap_lse_kernel(const float *S, int N, int W, float *ml)
{
    __shared__ float red[SNAP_THREADS / 32];
    const int r = blockIdx.x, h = blockIdx.y, nk = N - W + r + 1;
    const float *row = S + ((long long)h * W + r) * N;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) m = fmaxf(m, row[j]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = m;
    __syncthreads();
    m = red[0];
    for (int i = 1; i < SNAP_THREADS / 32; i++) m = fmaxf(m, red[i]);
    __syncthreads();
    float l = 0.f;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) l += __expf(row[j] - m);
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = l;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.f;
        for (int i = 0; i < SNAP_THREADS / 32; i++) t += red[i];
        ml[((long long)h * W + r) * 2] = m;
        ml[((long long)h * W + r) * 2 + 1] = t;
    }
}

/* score (Hout, P): mean over the heads of a list of sum_r exp(S - m) / l. Grid (ceil(P/256), Hout). */
__global__ void scb_snap_colsum_kernel(const float *S, const float *ml, int N, int W, int P, int hpl,
                                       float *score)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x, o = blockIdx.y;
    if (j >= P) return;
    float acc = 0.f;
    for (int h = o * hpl; h < (o + 1) * hpl; h++)
        for (int r = 0; r < W; r++) {
            const long long hr = (long long)h * W + r;
            acc += expf(S[hr * N + j] - ml[hr * 2]) / ml[hr * 2 + 1];
        }
    score[(long long)o * P + j] = acc / (float)hpl;
}

/* pooled (Hout, P) from score (Hout, P). */
__global__ void scb_snap_pool_kernel(const float *x, int P, int kernel, int pool, float *y)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x, o = blockIdx.y, r = kernel / 2;
    if (j >= P) return;
    const float *xr = x + (long long)o * P;
    float acc = pool ? -INFINITY : 0.f;
    for (int t = j - r; t <= j + r; t++) {
        if (t < 0 || t >= P) continue;
        acc = pool ? fmaxf(acc, xr[t]) : acc + xr[t];
    }
    y[(long long)o * P + j] = pool ? acc : acc / (float)kernel;
}

extern "C" int scb_cuda_snapkv_scores(struct scb_cuda_ctx *cc, const uint16_t *q, int Nq, const uint16_t *k,
                                      size_t cap, int N, int H, int Hs, int D, int W, float scale, int kernel,
                                      int pool, int gqa, float *work, float *pooled, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!q || !k || !work || !pooled || W < 1 || W >= N || (size_t)N > cap || W > Nq || H < 1 || Hs < 1 ||
        H % Hs || D < 2 || D % 2 || D > SNAP_DMAX || kernel < 1 || kernel % 2 == 0 || (pool != 0 && pool != 1) ||
        (!gqa && Hs != H)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA snapkv scores: bad arguments (N=%d Nq=%d W=%d cap=%zu H=%d Hs=%d "
                     "D=%d kernel=%d pool=%d gqa=%d)", N, Nq, W, cap, H, Hs, D, kernel, pool, gqa);
        goto out;
    }
    {
        const int P = N - W, Hout = gqa ? Hs : H, hpl = H / Hout;
        float *S = work, *ml = work + (size_t)H * W * N;
        scale = scale != 0.f ? scale : 1.0f / sqrtf((float)D);
        scb_snap_scores_kernel<<<dim3((unsigned)((N + SNAP_KT - 1) / SNAP_KT), (unsigned)H),
                                 dim3(SNAP_KT, SNAP_RY), 0, cc->stream>>>(
            q, Nq, k, (long long)cap, N, H, H / Hs, D, W, scale, S);
        SCB_LAUNCH_CHECK("scb_snap_scores_kernel");
        scb_snap_lse_kernel<<<dim3((unsigned)W, (unsigned)H), SNAP_THREADS, 0, cc->stream>>>(S, N, W, ml);
        SCB_LAUNCH_CHECK("scb_snap_lse_kernel");
        /* column sums into pooled; once they are taken S is dead, so its first Hout * P words
         * hold a copy for the pooling to read (pooling cannot run in place) */
        const dim3 g((unsigned)((P + 255) / 256), (unsigned)Hout);
        scb_snap_colsum_kernel<<<g, 256, 0, cc->stream>>>(S, ml, N, W, P, hpl, pooled);
        SCB_LAUNCH_CHECK("scb_snap_colsum_kernel");
        SCB_CUDA_TRY(cudaMemcpyAsync(S, pooled, (size_t)Hout * P * sizeof(float), cudaMemcpyDeviceToDevice,
                                     cc->stream));
        scb_snap_pool_kernel<<<g, 256, 0, cc->stream>>>(S, P, kernel, pool, pooled);
        SCB_LAUNCH_CHECK("scb_snap_pool_kernel");
    }
out:
    return rc;
}

/* Grid R: row r's top n_select of pooled, then the window. */
__global__ void __launch_bounds__(TOPK_THREADS) scb_snap_select_kernel(const float *pooled, int P, int ns, int W,
                                                                     int32_t *idx)
{
    const int r = blockIdx.x, n = ns + W;
    int32_t *o = idx + (long long)r * n;
    if (ns > 0) scb_block_topk<TOPK_THREADS>(pooled + (long long)r * P, P, ns, o);
    for (int j = threadIdx.x; j < W; j += blockDim.x) o[ns + j] = P + j;
}

extern "C" int scb_cuda_snapkv_select(struct scb_cuda_ctx *cc, const float *pooled, int R, int P, int n_select,
                                      int W, int32_t *idx, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!pooled || !idx || R < 1 || P < 0 || n_select < 0 || n_select > P || W < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA snapkv select: bad arguments (R=%d P=%d n_select=%d W=%d)", R, P,
                     n_select, W);
        goto out;
    }
    scb_snap_select_kernel<<<(unsigned)R, TOPK_THREADS, 0, cc->stream>>>(pooled, P, n_select, W, idx);
    SCB_LAUNCH_CHECK("scb_snap_select_kernel");
out:
    return rc;
}

/* ---- Quest ------------------------------------------------------------------------------- */
enum { QA_WARPS = 8, QA_DL = 8, QA_KEYS = 32 };   /* D <= 32 * QA_DL; entries per attention block */
/* Grid (pages from p0, Hs), block D threads (<= 256). */
__global__ void scb_quest_meta_kernel(const uint16_t *k, long long cap, int D, int P, int T, int p0,
                                      uint16_t *kmin, uint16_t *kmax, int mp)
{
    const int p = p0 + blockIdx.x, s = blockIdx.y;
    const int t0 = p * P, t1 = (p + 1) * P < T ? (p + 1) * P : T;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float mn = INFINITY, mx = -INFINITY;
        for (int t = t0; t < t1; t++) {
            const float x = scb_bf2f(k[((long long)s * cap + t) * D + d]);
            mn = fminf(mn, x);
            mx = fmaxf(mx, x);
        }
        const long long o = ((long long)s * mp + p) * D + d;
        kmin[o] = scb_f2bf(mn);      /* exact: a bf16 value */
        kmax[o] = scb_f2bf(mx);
    }
}

extern "C" int scb_cuda_quest_meta(struct scb_cuda_ctx *cc, const uint16_t *k, size_t cap, int Hs, int D, int P,
                                   int T, int p0, uint16_t *kmin, uint16_t *kmax, int mp, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const int np = P > 0 ? (T + P - 1) / P : 0;
    SCB_CHECK_ALIVE();
    if (!k || !kmin || !kmax || Hs < 1 || D < 2 || D % 2 || D > 256 || P < 1 || T < 0 || (size_t)T > cap ||
        np > mp || p0 < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest meta: bad arguments (Hs=%d D=%d P=%d T=%d cap=%zu mp=%d p0=%d)",
                     Hs, D, P, T, cap, mp, p0);
        goto out;
    }
    if (p0 >= np) goto out;
    scb_quest_meta_kernel<<<dim3((unsigned)(np - p0), (unsigned)Hs), D < 64 ? 64 : (D > 128 ? 256 : 128), 0,
                            cc->stream>>>(k, (long long)cap, D, P, T, p0, kmin, kmax, mp);
    SCB_LAUNCH_CHECK("scb_quest_meta_kernel");
out:
    return rc;
}

/* Grid H, block D threads. */
__global__ void scb_quest_signs_kernel(const uint16_t *q, int Tq, int H, int D, float *w)
{
    const int h = blockIdx.x;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float s = 0.f;
        for (int i = 0; i < Tq; i++) s += scb_bf2f(q[((long long)i * H + h) * D + d]) > 0.f ? 1.f : -1.f;
        w[(long long)h * D + d] = s;
    }
}

extern "C" int scb_cuda_quest_signs(struct scb_cuda_ctx *cc, const uint16_t *q, int Tq, int H, int D, float *w,
                                    struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!q || !w || Tq < 1 || H < 1 || D < 2 || D % 2 || D > 256) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest signs: bad arguments (Tq=%d H=%d D=%d)", Tq, H, D);
        goto out;
    }
    scb_quest_signs_kernel<<<(unsigned)H, D < 64 ? 64 : (D > 128 ? 256 : 128), 0, cc->stream>>>(q, Tq, H, D, w);
    SCB_LAUNCH_CHECK("scb_quest_signs_kernel");
out:
    return rc;
}

/* ub (nr, H, np): one warp per (page, stored head) reads the page's min/max once (lanes split D)
 * and scores the G query heads of the group. Grid (ceil(np/8), Hs, nr), block 256. */
__global__ void scb_quest_ub_kernel(const uint16_t *q, int r0, int H, int G, int D, const float *w,
                                    const uint16_t *kmin, const uint16_t *kmax, int mp, int np, float *ub)
{
    const int p = blockIdx.x * 8 + threadIdx.x / 32, lane = threadIdx.x % 32, s = blockIdx.y, i = blockIdx.z;
    if (p >= np) return;
    const long long mo = ((long long)s * mp + p) * D;
    float lo[QA_DL], hi[QA_DL];
#pragma unroll
    for (int c = 0; c < QA_DL; c++) {
        const int d = lane + 32 * c;
        lo[c] = d < D ? scb_bf2f(kmin[mo + d]) : 0.f;
        hi[c] = d < D ? scb_bf2f(kmax[mo + d]) : 0.f;
    }
    for (int h = s * G; h < (s + 1) * G; h++) {
        const uint16_t *qr = q + ((long long)(r0 + i) * H + h) * D;
        const float *wh = w + (long long)h * D;
        float u = 0.f;
#pragma unroll
        for (int c = 0; c < QA_DL; c++) {
            const int d = lane + 32 * c;
            if (d < D) {
                const float wd = wh[d];
                const float mx = wd > 0.f ? hi[c] * wd : (wd < 0.f ? lo[c] * wd : 0.f);
                u += scb_bf2f(qr[d]) * wd * mx;
            }
        }
        for (int o = 16; o > 0; o >>= 1) u += __shfl_xor_sync(0xffffffffu, u, o);
        if (lane == 0) ub[((long long)i * H + h) * np + p] = u;
    }
}

/* Grid (H, nr). The row's bounds are staged in shared memory when they fit (np * 4 bytes of
 * dynamic shared memory, use_smem = 1): the radix passes then read shared memory. */
__global__ void __launch_bounds__(QTOPK_THREADS) scb_quest_topk_kernel(const float *ub, int H, int np, int kp,
                                                                     int use_smem, int32_t *sel)
{
    extern __shared__ float sub[];
    const long long row = (long long)blockIdx.y * H + blockIdx.x;
    const float *s = ub + row * np;
    if (use_smem) {
        for (int j = threadIdx.x; j < np; j += QTOPK_THREADS) sub[j] = s[j];
        __syncthreads();
        s = sub;
    }
    scb_block_topk<QTOPK_THREADS>(s, np, kp, sel + row * kp);
}

extern "C" int scb_cuda_quest_select(struct scb_cuda_ctx *cc, const uint16_t *q, int r0, int nr, int H, int Hs,
                                     int D, const float *w, const uint16_t *kmin, const uint16_t *kmax, int mp,
                                     int T, int P, int kp, float *ub, int32_t *sel, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const int np = P > 0 ? (T + P - 1) / P : 0;
    SCB_CHECK_ALIVE();
    if (!q || !w || !kmin || !kmax || !ub || !sel || r0 < 0 || nr < 1 || H < 1 || Hs < 1 || H % Hs || D < 2 ||
        D % 2 || D > 256 || P < 1 || T < 1 || np > mp || kp < 1 || kp > np) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest select: bad arguments (r0=%d nr=%d H=%d Hs=%d D=%d T=%d P=%d "
                     "kp=%d mp=%d)", r0, nr, H, Hs, D, T, P, kp, mp);
        goto out;
    }
    scb_quest_ub_kernel<<<dim3((unsigned)((np + 7) / 8), (unsigned)Hs, (unsigned)nr), 256, 0, cc->stream>>>(
        q, r0, H, H / Hs, D, w, kmin, kmax, mp, np, ub);
    SCB_LAUNCH_CHECK("scb_quest_ub_kernel");
    {
        const size_t smem = (size_t)np * sizeof(float) <= QTOPK_SMEM_MAX ? (size_t)np * sizeof(float) : 0;
        scb_quest_topk_kernel<<<dim3((unsigned)H, (unsigned)nr), QTOPK_THREADS, smem, cc->stream>>>(
            ub, H, np, kp, smem > 0, sel);
    }
    SCB_LAUNCH_CHECK("scb_quest_topk_kernel");
out:
    return rc;
}


extern "C" size_t scb_cuda_quest_step_work_bytes(int H, int D, int mp)
{
    return (size_t)H * (2 * (size_t)mp + 32) * (sizeof(int32_t) + sizeof(float)) + (size_t)H * D * sizeof(float);
}

/* A warp's U chunks of 32 scores from b on (lane j of chunk u: s[b + 32u + j], 0 past j1), all
 * loads issued before any is used. */
template <int U>
static __device__ __forceinline__ void qt_load_warp(const float *s, int b, int lane, int j1, float *v)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int j = b + 32 * u + lane;
        v[u] = j < j1 ? s[j] : 0.0f;
    }
}

/* A block's U loads from base on (thread tid of NT: s[base + u NT + tid], 0 past n), all issued
 * before any is used. */
template <int U, int NT>
static __device__ __forceinline__ void qt_load_block(const float *s, int base, int tid, int n, float *v)
{
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int j = base + u * NT + tid;
        v[u] = j < n ? s[j] : 0.0f;
    }
}

/* Warp 0 of a radix-select pass: the bin (of 256, counts tot) holding the kk-th largest key,
 * counted from the top. Lane L holds bins 255-8L .. 248-8L (descending) and takes prefix sums;
 * the lane whose range holds rank kk writes *pre_s = prefix with the bin at `shift` and *kk_s =
 * the rank within the bin. */
static __device__ __forceinline__ void scb_radix_pick(const int *tot, int lane, int kk, uint32_t prefix, int shift,
                                                      uint32_t *pre_s, int *kk_s)
{
    int c[8], sum = 0;
#pragma unroll
    for (int t = 0; t < 8; t++) { c[t] = tot[255 - 8 * lane - t]; sum += c[t]; }
    int incl = sum;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
    }
    const int excl = incl - sum;
    if (excl < kk && kk <= incl) {
        int rr = kk - excl, bin = 255 - 8 * lane, taken = 0;
#pragma unroll
        for (int t = 0; t < 8; t++)      /* constant indices: c stays in registers */
            if (!taken) {
                if (c[t] < rr && t < 7) rr -= c[t];
                else { taken = 1; bin = 255 - 8 * lane - t; }
            }
        *kk_s = rr;
        *pre_s = prefix | ((uint32_t)bin << shift);
    }
}

/* A warp's ids of its range [j0, j1) of the scores s: every key above thr and the first te keys
 * equal to it, in index order, written from out[o] on as idb + index (U loads a lane in flight). */
template <int U>
static __device__ __forceinline__ void qt_write_range(const float *s, int j0, int j1, int lane, uint32_t thr, int te,
                                                      int o, int32_t *out, int32_t idb)
{
    const unsigned lt = (1u << lane) - 1u;
    int eseen = 0;
    for (int b = j0; b < j1; b += 32 * U) {
        float v[U];
        qt_load_warp<U>(s, b, lane, j1, v);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int j = b + 32 * u + lane;
            const uint32_t key = scb_okey(v[u]);
            const unsigned eqb = __ballot_sync(0xffffffffu, j < j1 && key == thr);
            const bool take = j < j1 && (key > thr || (key == thr && eseen + __popc(eqb & lt) < te));
            const unsigned tb = __ballot_sync(0xffffffffu, take);
            if (take) out[o + __popc(tb & lt)] = idb + j;
            o += __popc(tb);
            eseen += __popc(eqb);
        }
    }
}

/* ---- Quest: the decode-step selection, version 2 (bounds kernel + radix top-k) -------------- */
enum { QT_THREADS = 1024, QT_WARPS = QT_THREADS / 32, QT_HCOPIES = 8, QT_SMEM_DEFAULT = 36 * 1024,  /* + ~10 KiB static */
       QT_SMEM_MAX = 160 * 1024, QB_THREADS = 256, QB_WARPS = QB_THREADS / 32 };

/* Grid R, block QT_THREADS: row r of s (R, n) -> sel (R, kp). use_smem: stage the row in the
 * dynamic shared memory. Radix passes: QT_HCOPIES histogram copies (warp w adds to copy w % 8:
 * fewer warps on one counter; the lanes of a warp that share lane 0's bin add once) summed by
 * threads 0..255; warp 0 scans the 256 bins from the top.
 * Compaction: warp w owns the contiguous indices [w*cw, (w+1)*cw), counts its keys above and equal
 * to the threshold (ballots), warp 0 turns the counts into output offsets and how many equal keys
 * each warp takes (the smallest indices first), then each warp writes its picks in index order. */
template <int QT_UNROLL>
__global__ void __launch_bounds__(QT_THREADS) scb_quest_topk2_kernel(const float *src, int n, int kp, int use_smem,
                                                                   int32_t *sel, const int *T_dev = nullptr,
                                                                   int P = 1, int sel_stride = 0, int32_t id0 = 0)
{
    if (T_dev) n = (*T_dev + P - 1) / P;                  /* the pages of the device's key count */
    extern __shared__ float qt_sm[];
    __shared__ int hist[QT_HCOPIES][256];
    __shared__ int tot[256];
    __shared__ uint32_t pre_s;
    __shared__ int kk_s;
    __shared__ int cnt_gt[QT_WARPS], cnt_eq[QT_WARPS], off_w[QT_WARPS], take_w[QT_WARPS];
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, r = blockIdx.x;
    const float *s = src + (long long)r * n;
    if (use_smem) {
        for (int j = tid; j < n; j += QT_THREADS) qt_sm[j] = s[j];
        s = qt_sm;
    }
    for (int i = tid; i < QT_HCOPIES * 256; i += QT_THREADS) (&hist[0][0])[i] = 0;
    if (tid == 0) { pre_s = 0; kk_s = kp; }
    __syncthreads();
    uint32_t mask = 0, prefix = 0;
    int kk = kp;
    for (int shift = 24; shift >= 0; shift -= 8) {
        int *hw = hist[warp % QT_HCOPIES];
        for (int base = 0; base < n; base += QT_THREADS * QT_UNROLL) {   /* uniform trip count: full warps */
            float v[QT_UNROLL];                               /* QT_UNROLL loads in flight (L2 latency) */
            qt_load_block<QT_UNROLL, QT_THREADS>(s, base, tid, n, v);
#pragma unroll
            for (int u = 0; u < QT_UNROLL; u++) {
                const int j = base + u * QT_THREADS + tid;
                uint32_t bin = 256u;                          /* none */
                if (j < n) {
                    const uint32_t key = scb_okey(v[u]);
                    if ((key & mask) == prefix) bin = (key >> shift) & 255u;
                }
                /* the lanes sharing lane 0's bin (most of them in the first pass: the keys' top bits
                 * are the sign and exponent) add once; the others one by one */
                const uint32_t b0 = __shfl_sync(0xffffffffu, bin, 0);
                const unsigned same = __ballot_sync(0xffffffffu, bin == b0);
                if (lane == 0 && b0 < 256u) atomicAdd(&hw[b0], __popc(same));
                if (bin != b0 && bin < 256u) atomicAdd(&hw[bin], 1);
            }
        }
        __syncthreads();
        if (tid < 256) {
            int t = 0;
#pragma unroll
            for (int c = 0; c < QT_HCOPIES; c++) { t += hist[c][tid]; hist[c][tid] = 0; }
            tot[tid] = t;
        }
        __syncthreads();
        if (warp == 0) scb_radix_pick(tot, lane, kk, prefix, shift, &pre_s, &kk_s);
        __syncthreads();
        prefix = pre_s;
        kk = kk_s;
        mask |= 255u << shift;
    }
    /* prefix = the kp-th largest key; kk = how many keys equal to it are taken (the rest of the
     * kp are the kp - kk keys above it) */
    const uint32_t thr = prefix;
    const int cw = ((n + QT_WARPS - 1) / QT_WARPS + 31) / 32 * 32;
    const int j0 = warp * cw, j1 = min(j0 + cw, n);
    int ngt = 0, neq = 0;
    for (int b = j0; b < j1; b += 32 * QT_UNROLL) {
        float v[QT_UNROLL];
        qt_load_warp<QT_UNROLL>(s, b, lane, j1, v);
#pragma unroll
        for (int u = 0; u < QT_UNROLL; u++) {
            const int j = b + 32 * u + lane;
            const uint32_t key = j < j1 ? scb_okey(v[u]) : 0u;
            ngt += __popc(__ballot_sync(0xffffffffu, j < j1 && key > thr));
            neq += __popc(__ballot_sync(0xffffffffu, j < j1 && key == thr));
        }
    }
    if (lane == 0) { cnt_gt[warp] = ngt; cnt_eq[warp] = neq; }
    __syncthreads();
    if (warp == 0) {
        const int g = cnt_gt[lane], e = cnt_eq[lane];
        int ig = g, ie = e;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int yg = __shfl_up_sync(0xffffffffu, ig, o), ye = __shfl_up_sync(0xffffffffu, ie, o);
            if (lane >= o) { ig += yg; ie += ye; }
        }
        const int gb = ig - g, eb = ie - e;    /* above / equal keys in the warps before */
        const int tb = min(eb, kk);            /* equal keys taken before */
        off_w[lane] = gb + tb;
        take_w[lane] = min(e, kk - tb);
    }
    __syncthreads();
    int32_t *out = sel + (long long)r * (sel_stride > 0 ? sel_stride : kp);   /* row r's ids: id0 + index */
    qt_write_range<QT_UNROLL>(s, j0, j1, lane, thr, take_w[warp], off_w[warp], out, id0);
}

/* The top-k launch over rows of n scores; with T_dev the rows hold ceil(*T_dev / P) scores when it
 * runs, at most n (the row the shared memory is sized for). */
static int scb_quest_topk_launch(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel,
                                 struct scb_ctx *err, const int32_t *T_dev = nullptr, int P = 1, int sel_stride = 0,
                                 int32_t id0 = 0)
{
    static int smem_raised = 0;
    int rc = SCB_OK;
    size_t smem = (size_t)n * sizeof(float);
    if (smem > QT_SMEM_MAX) smem = 0;                      /* the row stays in global memory (L2) */
    if (smem > QT_SMEM_DEFAULT && !smem_raised) {
        SCB_CUDA_TRY(cudaFuncSetAttribute(scb_quest_topk2_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          QT_SMEM_MAX));
        smem_raised = 1;
    }
    if (smem > 0)   /* the row in shared memory: one load a thread at a time */
        scb_quest_topk2_kernel<1><<<(unsigned)R, QT_THREADS, smem, cc->stream>>>(s, n, kp, 1, sel, T_dev, P,
                                                                              sel_stride, id0);
    else            /* the row in global memory (L2): 8 loads a thread in flight (RetrievalAttention at 128K: the
                     * top-k from 217 to 146 us on an H200) */
        scb_quest_topk2_kernel<8><<<(unsigned)R, QT_THREADS, 0, cc->stream>>>(s, n, kp, 0, sel, T_dev, P, sel_stride,
                                                                             id0);
    SCB_LAUNCH_CHECK("scb_quest_topk2_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_quest_topk(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel,
                                   struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!s || !sel || R < 1 || n < 1 || kp < 1 || kp > n) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest top-k: bad arguments (R=%d n=%d kp=%d)", R, n, kp);
        goto out;
    }
    rc = scb_quest_topk_launch(cc, s, R, n, kp, sel, err);
out:
    return rc;
}

/* ---- top-k of long rows: one cluster of TC_CL blocks per row ------------------------------
 * The same selection as scb_quest_topk2_kernel (radix select of the kp-th largest order-preserving
 * key, 8 bits a pass; ties to the smaller index; ids ascending) spread over a thread-block
 * cluster: block r of a row's cluster keeps the keys of its segment [r seg, (r+1) seg) in shared
 * memory; each pass every block histograms its keys, the cluster syncs, and every block sums the
 * TC_CL histograms through distributed shared memory and picks the same bin. The first pass's
 * histogram is taken while the keys load. Then warp w, which owns the contiguous indices
 * [w cw, (w+1) cw) of the segment, counts its keys above the first pass's bin and compacts the keys
 * inside it (the candidates) in place, in index order, at the start of its range; the later
 * passes and the above/equal counts read only those. The compaction offsets of a block are the
 * above/equal counts of the blocks before it; the ids are written from the scores again (L2). */
enum { TC_CL = 8, TC_THREADS = 512, TC_WARPS = TC_THREADS / 32, TC_MAXSEG = 40 * 1024, TC_LOADU = 4, TC_WARPU = 4 };
namespace cg = cooperative_groups;

/* Add key's bin (or nothing: bin >= 256) to hist; the lanes that share lane 0's bin add once. */
static __device__ __forceinline__ void tc_hist_add(int *hist, uint32_t bin, int lane)
{
    const uint32_t b0 = __shfl_sync(0xffffffffu, bin, 0);
    const unsigned same = __ballot_sync(0xffffffffu, bin == b0);
    if (lane == 0 && b0 < 256u) atomicAdd(&hist[b0], __popc(same));
    if (bin != b0 && bin < 256u) atomicAdd(&hist[bin], 1);
}

/* The cluster's pass: sum the TC_CL blocks' histograms into tot, warp 0 picks the bin. The passes
 * alternate between two histograms, so one cluster barrier a pass suffices: a block zeroes a
 * histogram two passes after it was read, and every block's remote reads of it came before the
 * barrier of the pass between. */
static __device__ __forceinline__ void tc_pick(cg::cluster_group &cluster, const int *hist, int *tot, int tid,
                                               int kk, uint32_t prefix, int shift, uint32_t *pre_s, int *kk_s)
{
    cluster.sync();                                       /* every block's histogram complete */
    if (tid < 256) {
        int t = 0;
#pragma unroll
        for (int q = 0; q < TC_CL; q++) t += cluster.map_shared_rank(hist, q)[tid];
        tot[tid] = t;
    }
    __syncthreads();
    if (tid < 32) scb_radix_pick(tot, tid, kk, prefix, shift, pre_s, kk_s);
    __syncthreads();
}

__global__ void __cluster_dims__(TC_CL, 1, 1) __launch_bounds__(TC_THREADS, 3)   /* 3 blocks an SM: one wave */
scb_topk_cluster_kernel(const float *src, int n, int kp, int seg, int32_t *sel, int sel_stride, int32_t id0)
{
    extern __shared__ uint32_t tc_keys[];                 /* (seg) the segment's keys; then each warp's candidates */
    __shared__ int hist[2][256];                          /* pass p: hist[p % 2] */
    __shared__ int tot[256];
    __shared__ uint32_t pre_s;
    __shared__ int kk_s, blk_gt, blk_eq;
    __shared__ int cnt_gt[TC_WARPS], cnt_eq[TC_WARPS], off_w[TC_WARPS], take_w[TC_WARPS];
    cg::cluster_group cluster = cg::this_cluster();
    const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, rank = (int)cluster.block_rank(), r = blockIdx.y;
    const int j0 = rank * seg, j1 = min(n, j0 + seg), m = max(0, j1 - j0);
    const float *s = src + (long long)r * n + j0;
    const unsigned lt = (1u << lane) - 1u;
    /* pass 1 (bits 31..24) while the keys load */
    for (int i = tid; i < 512; i += TC_THREADS) hist[i / 256][i % 256] = 0;
    __syncthreads();
    for (int base = 0; base < m; base += TC_THREADS * TC_LOADU) {   /* uniform trip count: full warps */
        float v[TC_LOADU];
        qt_load_block<TC_LOADU, TC_THREADS>(s, base, tid, m, v);
#pragma unroll
        for (int u = 0; u < TC_LOADU; u++) {
            const int j = base + u * TC_THREADS + tid;
            uint32_t bin = 256u;
            if (j < m) {
                const uint32_t key = scb_okey(v[u]);
                tc_keys[j] = key;
                bin = key >> 24;
            }
            tc_hist_add(hist[0], bin, lane);
        }
    }
    int kk = kp;
    tc_pick(cluster, hist[0], tot, tid, kk, 0u, 24, &pre_s, &kk_s);
    uint32_t prefix = pre_s, mask = 0xff000000u;
    kk = kk_s;
    /* the candidates, compacted in place (a lane reads its key before any lane writes: the ballots) */
    const int cw = ((m + TC_WARPS - 1) / TC_WARPS + 31) / 32 * 32;
    const int a0 = min(m, warp * cw), a1 = min(m, a0 + cw);
    uint32_t *cand = tc_keys + a0;
    int n_above = 0, nl = 0;
    for (int b = a0; b < a1; b += 32) {
        const int j = b + lane;
        const uint32_t key = j < a1 ? tc_keys[j] : 0u;
        n_above += __popc(__ballot_sync(0xffffffffu, j < a1 && (key & mask) > prefix));
        const unsigned cb = __ballot_sync(0xffffffffu, j < a1 && (key & mask) == prefix);
        if ((cb >> lane) & 1u) cand[nl + __popc(cb & lt)] = key;
        nl += __popc(cb);
    }
    /* passes 2..4 (bits 23..0) over the candidates */
    for (int shift = 16, p = 1; shift >= 0; shift -= 8, p++) {
        int *hp = hist[p % 2];
        if (p >= 2) {                                     /* read by the cluster two passes ago */
            for (int i = tid; i < 256; i += TC_THREADS) hp[i] = 0;
            __syncthreads();
        }
        for (int b = 0; b < nl; b += 32) {                 /* uniform a warp */
            const int j = b + lane;
            uint32_t bin = 256u;
            if (j < nl) {
                const uint32_t key = cand[j];
                if ((key & mask) == prefix) bin = (key >> shift) & 255u;
            }
            tc_hist_add(hp, bin, lane);
        }
        tc_pick(cluster, hp, tot, tid, kk, prefix, shift, &pre_s, &kk_s);
        prefix = pre_s;
        kk = kk_s;
        mask |= 255u << shift;
    }
    /* above / equal counts of this warp: the keys above the first bin plus the candidates' */
    const uint32_t thr = prefix;
    int ngt = n_above, neq = 0;
    for (int b = 0; b < nl; b += 32) {
        const int j = b + lane;
        const uint32_t key = j < nl ? cand[j] : 0u;
        ngt += __popc(__ballot_sync(0xffffffffu, j < nl && key > thr));
        neq += __popc(__ballot_sync(0xffffffffu, j < nl && key == thr));
    }
    if (lane == 0) { cnt_gt[warp] = ngt; cnt_eq[warp] = neq; }
    __syncthreads();
    if (tid == 0) {
        int g = 0, e = 0;
        for (int w = 0; w < TC_WARPS; w++) { g += cnt_gt[w]; e += cnt_eq[w]; }
        blk_gt = g; blk_eq = e;
    }
    cluster.sync();                                       /* every block's counts published */
    if (warp == 0) {
        int gb = 0, eb = 0;                               /* above / equal keys in the blocks before */
        for (int q = 0; q < rank; q++) {
            gb += *cluster.map_shared_rank(&blk_gt, q);
            eb += *cluster.map_shared_rank(&blk_eq, q);
        }
        const int g = lane < TC_WARPS ? cnt_gt[lane] : 0, e = lane < TC_WARPS ? cnt_eq[lane] : 0;
        int ig = g, ie = e;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int yg = __shfl_up_sync(0xffffffffu, ig, o), ye = __shfl_up_sync(0xffffffffu, ie, o);
            if (lane >= o) { ig += yg; ie += ye; }
        }
        const int gbw = gb + ig - g, ebw = eb + ie - e;   /* above / equal keys before this warp */
        const int tbw = min(ebw, kk);
        if (lane < TC_WARPS) { off_w[lane] = gbw + tbw; take_w[lane] = max(0, min(e, kk - tbw)); }
    }
    cluster.sync();                                       /* remote reads done (no block exits early) */
    /* the keys again, from the scores */
    qt_write_range<TC_WARPU>(s, a0, a1, lane, thr, take_w[warp], off_w[warp], sel + (long long)r * sel_stride, id0 + j0);
}

extern "C" int scb_cuda_topk_rows(struct scb_cuda_ctx *cc, const float *s, int R, int n, int kp, int32_t *sel,
                                  int sel_stride, int32_t id0, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!s || !sel || R < 1 || n < 1 || kp < 1 || kp > n || sel_stride < kp) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA top-k rows: bad arguments (R=%d n=%d kp=%d sel_stride=%d)", R, n, kp,
                     sel_stride);
        goto out;
    }
    {
        static int cluster_ok = -1;   /* SCB_TOPK_CLUSTER=0: one block a row (timing); else clusters
                                       * for rows of at least 4096 scores (n <= TC_CL x TC_MAXSEG) */
        const int seg = ((n + TC_CL - 1) / TC_CL + 31) / 32 * 32;
        if (cluster_ok < 0) {
            const char *e = getenv("SCB_TOPK_CLUSTER");
            cluster_ok = !(e && !strcmp(e, "0"));
            if (cluster_ok && cudaFuncSetAttribute(scb_topk_cluster_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int)(TC_MAXSEG * sizeof(uint32_t))) != cudaSuccess) {
                (void)cudaGetLastError();
                cluster_ok = 0;
            }
        }
        if (cluster_ok && n >= 4096 && seg <= TC_MAXSEG) {
            scb_topk_cluster_kernel<<<dim3(TC_CL, (unsigned)R), TC_THREADS, (size_t)seg * sizeof(uint32_t), cc->stream>>>(
                s, n, kp, seg, sel, sel_stride, id0);
            SCB_LAUNCH_CHECK("scb_topk_cluster_kernel");
        } else {
            rc = scb_quest_topk_launch(cc, s, R, n, kp, sel, err, nullptr, 1, sel_stride, id0);
        }
    }
out:
    return rc;
}

/* Grid (ceil(np / (U * QB_WARPS * 32 / L)), Hs), block QB_THREADS, dynamic shared memory q
 * (G, D) fp32. L lanes per page (a power of two >= D / 8; lane i of a page holds dims 8i..8i+7),
 * 32 / L pages per warp and step, U steps in flight per thread. Page p of the block's run: its
 * min/max (pages >= p0 rebuilt from k first and written back, as scb_quest_meta_kernel) and, per
 * query head h of the group, ub = sum_d q_d w_d mx_d with w_d = sign(q_d) (+1 / -1: the signs of
 * the single row) and mx_d = w_d > 0 ? max * w_d : min * w_d, summed over the page's lanes. */
template <int U>
__global__ void __launch_bounds__(QB_THREADS) scb_quest_ub2_kernel(
    const uint16_t *q, int G, int D, int L, const uint16_t *k, long long cap, uint16_t *kmin, uint16_t *kmax,
    int mp, int T, int P, int p0, int np, float *ub, const int *T_dev = nullptr)
{
    extern __shared__ float qb_sm[];
    if (T_dev) {                  /* a graph step: the key count from the device, its last page rebuilt */
        T = *T_dev;
        p0 = (T - 1) / P;
        np = (T + P - 1) / P;
    }
    const int s = blockIdx.y, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    for (int i = tid; i < G * D; i += QB_THREADS) qb_sm[i] = scb_bf2f(q[(long long)s * G * D + i]);
    const int sub = lane % L, slot = lane / L, PW = 32 / L, d0 = sub * 8;
    const bool act = d0 < D;
    const int run = U * QB_WARPS * PW, pbase = blockIdx.x * run;
    uint4 lo[U], hi[U];                               /* 8 packed bf16 each */
    int pg[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int p = pbase + (u * QB_WARPS + warp) * PW + slot;
        pg[u] = p;
        const long long mo = ((long long)s * mp + p) * D + d0;
        if (act && p < np && p < p0) {
            lo[u] = __ldg((const uint4 *)(kmin + mo));   /* pages < p0: read-only here */
            hi[u] = __ldg((const uint4 *)(kmax + mo));
        } else {
            lo[u] = make_uint4(0u, 0u, 0u, 0u);
            hi[u] = lo[u];
        }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int p = pg[u];
        if (act && p < np && p >= p0) {              /* a changed page: min/max from k */
            const long long mo = ((long long)s * mp + p) * D + d0;
            const int t0 = p * P, t1 = (p + 1) * P < T ? (p + 1) * P : T;
            float mn[8], mx[8];
#pragma unroll
            for (int c = 0; c < 8; c++) { mn[c] = INFINITY; mx[c] = -INFINITY; }
            for (int t = t0; t < t1; t++) {
                float x[8];
                scb_unpack8(*(const uint4 *)(k + ((long long)s * cap + t) * D + d0), x);
#pragma unroll
                for (int c = 0; c < 8; c++) { mn[c] = fminf(mn[c], x[c]); mx[c] = fmaxf(mx[c], x[c]); }
            }
            uint4 a, b;
            a.x = (uint32_t)scb_f2bf(mn[0]) | ((uint32_t)scb_f2bf(mn[1]) << 16);
            a.y = (uint32_t)scb_f2bf(mn[2]) | ((uint32_t)scb_f2bf(mn[3]) << 16);
            a.z = (uint32_t)scb_f2bf(mn[4]) | ((uint32_t)scb_f2bf(mn[5]) << 16);
            a.w = (uint32_t)scb_f2bf(mn[6]) | ((uint32_t)scb_f2bf(mn[7]) << 16);
            b.x = (uint32_t)scb_f2bf(mx[0]) | ((uint32_t)scb_f2bf(mx[1]) << 16);
            b.y = (uint32_t)scb_f2bf(mx[2]) | ((uint32_t)scb_f2bf(mx[3]) << 16);
            b.z = (uint32_t)scb_f2bf(mx[4]) | ((uint32_t)scb_f2bf(mx[5]) << 16);
            b.w = (uint32_t)scb_f2bf(mx[6]) | ((uint32_t)scb_f2bf(mx[7]) << 16);
            *(uint4 *)(kmin + mo) = a;                /* exact: bf16 values */
            *(uint4 *)(kmax + mo) = b;
            lo[u] = a;
            hi[u] = b;
        }
    }
    __syncthreads();                                  /* q staged */
    for (int h = 0; h < G; h++) {
        float qv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
        if (act) {
            const float4 a = *(const float4 *)(qb_sm + h * D + d0), b = *(const float4 *)(qb_sm + h * D + d0 + 4);
            qv[0] = a.x; qv[1] = a.y; qv[2] = a.z; qv[3] = a.w;
            qv[4] = b.x; qv[5] = b.y; qv[6] = b.z; qv[7] = b.w;
        }
        float uu[U];
#pragma unroll
        for (int u = 0; u < U; u++) {
            float l8[8], h8[8], acc = 0.f;
            scb_unpack8(lo[u], l8);
            scb_unpack8(hi[u], h8);
#pragma unroll
            for (int c = 0; c < 8; c++) {
                const float wd = qv[c] > 0.f ? 1.f : -1.f;
                acc += qv[c] * wd * (wd > 0.f ? h8[c] * wd : l8[c] * wd);
            }
            uu[u] = acc;
        }
        for (int off = L / 2; off > 0; off >>= 1)
#pragma unroll
            for (int u = 0; u < U; u++) uu[u] += __shfl_xor_sync(0xffffffffu, uu[u], off);
        if (sub == 0)
#pragma unroll
            for (int u = 0; u < U; u++)
                if (pg[u] < np) ub[(long long)(s * G + h) * np + pg[u]] = uu[u];
    }
}

/* The bounds launch of select2 (U pages in flight per thread) over `pages` pages per stored head;
 * with T_dev the kernel takes T, p0 and np from the device's key count. */
static int quest_ub2_launch(struct scb_cuda_ctx *cc, const uint16_t *q, int G, int D, int Hs, const uint16_t *k,
                            size_t cap, uint16_t *kmin, uint16_t *kmax, int mp, int T, int P, int p0, int pages, int U,
                            float *ub, const int32_t *T_dev, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const size_t qsm = sizeof(float) * (size_t)G * D;
    int L = 1;
    while (L * 8 < D) L <<= 1;
    const int run = U * QB_WARPS * (32 / L);
    const dim3 g((unsigned)((pages + run - 1) / run), (unsigned)Hs);
#define SCB_QB2(UU) scb_quest_ub2_kernel<UU><<<g, QB_THREADS, qsm, cc->stream>>>( \
        q, G, D, L, k, (long long)cap, kmin, kmax, mp, T, P, p0, pages, ub, T_dev)
    if (U == 1) SCB_QB2(1);
    else if (U == 2) SCB_QB2(2);
    else if (U == 4) SCB_QB2(4);
    else SCB_QB2(8);
#undef SCB_QB2
    SCB_LAUNCH_CHECK("scb_quest_ub2_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_quest_step_select2(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D,
                                           const uint16_t *k, size_t cap, uint16_t *kmin, uint16_t *kmax, int mp,
                                           int T, int P, int p0, int kp, int unroll, float *ub, int32_t *sel,
                                           void *work, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const int np = P > 0 ? (T + P - 1) / P : 0;
    SCB_CHECK_ALIVE();
    if (!q || !k || !kmin || !kmax || !ub || !sel || !work || H < 1 || Hs < 1 || H % Hs || D < 2 || D % 2 ||
        D > 256 || P < 1 || T < 1 || (size_t)T > cap || np > mp || p0 < 0 || kp < 1 || kp > np ||
        (unroll != 0 && unroll != 1 && unroll != 2 && unroll != 4 && unroll != 8)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest step select2: bad arguments (H=%d Hs=%d D=%d T=%d cap=%zu P=%d "
                     "p0=%d kp=%d mp=%d unroll=%d)", H, Hs, D, T, cap, P, p0, kp, mp, unroll);
        goto out;
    }
    {
        const int G = H / Hs;
        const size_t qsm = sizeof(float) * (size_t)G * D;
        const int aligned = !(((uintptr_t)q | (uintptr_t)k | (uintptr_t)kmin | (uintptr_t)kmax) & 15u);
        if (D % 8 || !aligned || qsm > 48 * 1024) {      /* the separate launchers */
            float *w = (float *)((char *)work + (size_t)H * (2 * (size_t)mp + 32) * (sizeof(int32_t) + sizeof(float)));
            if ((rc = scb_cuda_quest_meta(cc, k, cap, Hs, D, P, T, p0, kmin, kmax, mp, err)) < 0) goto out;
            if ((rc = scb_cuda_quest_signs(cc, q, 1, H, D, w, err)) < 0) goto out;
            rc = scb_cuda_quest_select(cc, q, 0, 1, H, Hs, D, w, kmin, kmax, mp, T, P, kp, ub, sel, err);
            goto out;
        }
        if ((rc = quest_ub2_launch(cc, q, G, D, Hs, k, cap, kmin, kmax, mp, T, P, p0, np, unroll ? unroll : 4, ub,
                                   NULL, err)) < 0)
            goto out;
        rc = scb_quest_topk_launch(cc, ub, H, np, kp, sel, err);
    }
out:
    return rc;
}

extern "C" size_t scb_cuda_quest_attn_work_floats(int nr, int H, int D, int kp, int P)
{
    const long long S = ((long long)kp * P + QA_KEYS - 1) / QA_KEYS;
    return (size_t)nr * H * S * (D + 2);
}

/* Grid (H, nr, S), block 32 * QA_WARPS: block z takes the selected entries z*QA_KEYS ..
 * (z+1)*QA_KEYS-1 (in page order), each warp an online softmax over a strided share of them
 * (lanes split D, DL = ceil(D / 32) values per lane); the warp's QA_KEYS / QA_WARPS key and value
 * rows are all loaded before the first dot product (independent loads in flight instead of one
 * row per round trip), then folded in entry order. The warps merge in shared memory and the
 * block writes its partial (m, l, acc[D]) to work (nr, H, S, D + 2). */
template <int DL>
__global__ void __launch_bounds__(32 * QA_WARPS) scb_quest_attn_kernel(
    const uint16_t *q, const uint16_t *k, const uint16_t *v, long long cap, int r0, int Tq, int Tk,
    int H, int G, int D, int P, int kp, const int32_t *sel, float scale, float *work, const int *Tk_dev = nullptr)
{
    constexpr int U = QA_KEYS / QA_WARPS;
    if (Tk_dev) Tk = *Tk_dev;
    __shared__ float wm[QA_WARPS], wl[QA_WARPS];
    __shared__ float wacc[QA_WARPS][32 * QA_DL];
    const int h = blockIdx.x, i = blockIdx.y, z = blockIdx.z, S = gridDim.z, gi = r0 + i, s = h / G;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int nc = gi + Tk - Tq + 1;
    const int32_t *sl = sel + ((long long)i * H + h) * kp;
    float qv[DL], acc[DL];
    const uint16_t *qr = q + ((long long)gi * H + h) * D;
#pragma unroll
    for (int c = 0; c < DL; c++) {
        const int d = lane + 32 * c;
        qv[c] = d < D ? scb_bf2f(qr[d]) * scale : 0.f;
        acc[c] = 0.f;
    }
    const uint16_t *kh = k + (long long)s * cap * D, *vh = v + (long long)s * cap * D;
    const int e1 = (z + 1) * QA_KEYS < kp * P ? (z + 1) * QA_KEYS : kp * P;
    int jj[U];
    uint16_t kx[U][DL], vx[U][DL];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int e = z * QA_KEYS + warp + u * QA_WARPS;
        int j = -1;
        if (e < e1) {
            const int jt = sl[e / P] * P + e % P;
            if (jt < nc) j = jt;
        }
        jj[u] = j;
        const uint16_t *kr = kh + (long long)(j < 0 ? 0 : j) * D, *vr = vh + (long long)(j < 0 ? 0 : j) * D;
#pragma unroll
        for (int c = 0; c < DL; c++) {
            const int d = lane + 32 * c;
            const bool ok = j >= 0 && d < D;
            kx[u][c] = ok ? kr[d] : (uint16_t)0;
            vx[u][c] = ok ? vr[d] : (uint16_t)0;
        }
    }
    float dot[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
        dot[u] = 0.f;
#pragma unroll
        for (int c = 0; c < DL; c++)
            if (lane + 32 * c < D) dot[u] += qv[c] * scb_bf2f(kx[u][c]);
    }
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int u = 0; u < U; u++) dot[u] += __shfl_xor_sync(0xffffffffu, dot[u], o);
    float m = -INFINITY, l = 0.f;
#pragma unroll
    for (int u = 0; u < U; u++) {
        if (jj[u] < 0) continue;
        const float mn = fmaxf(m, dot[u]), corr = expf(m - mn), pj = expf(dot[u] - mn);
        l = l * corr + pj;
#pragma unroll
        for (int c = 0; c < DL; c++) {
            const int d = lane + 32 * c;
            acc[c] = acc[c] * corr + (d < D ? pj * scb_bf2f(vx[u][c]) : 0.f);
        }
        m = mn;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
#pragma unroll
    for (int c = 0; c < DL; c++) wacc[warp][lane + 32 * c] = acc[c];
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < QA_WARPS; w++) M = fmaxf(M, wm[w]);
    float *part = work + (((long long)i * H + h) * S + z) * (D + 2);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f;
        if (M != -INFINITY)
            for (int w = 0; w < QA_WARPS; w++)
                if (wm[w] != -INFINITY) o += wacc[w][d] * expf(wm[w] - M);
        part[2 + d] = o;
    }
    if (threadIdx.x == 0) {
        float L = 0.f;
        if (M != -INFINITY)
            for (int w = 0; w < QA_WARPS; w++) L += wm[w] == -INFINITY ? 0.f : wl[w] * expf(wm[w] - M);
        part[0] = M;
        part[1] = L;
    }
}

/* Grid (H, nr), block 128: combine the S partials of a row into out (bf16). */
__global__ void scb_quest_merge_kernel(const float *work, int S, int r0, int H, int D, uint16_t *out)
{
    const int h = blockIdx.x, i = blockIdx.y;
    const float *base = work + ((long long)i * H + h) * S * (D + 2);
    float M = -INFINITY;
    for (int z = 0; z < S; z++) M = fmaxf(M, base[(long long)z * (D + 2)]);
    float L = 0.f;
    if (M != -INFINITY)
        for (int z = 0; z < S; z++) {
            const float mz = base[(long long)z * (D + 2)];
            if (mz != -INFINITY) L += base[(long long)z * (D + 2) + 1] * expf(mz - M);
        }
    uint16_t *orow = out + ((long long)(r0 + i) * H + h) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float o = 0.f;
        if (M != -INFINITY)
            for (int z = 0; z < S; z++) {
                const float mz = base[(long long)z * (D + 2)];
                if (mz != -INFINITY) o += base[(long long)z * (D + 2) + 2 + d] * expf(mz - M);
            }
        orow[d] = scb_f2bf(L > 0.f ? o / L : 0.f);
    }
}

/* The attention and merge launches of scb_cuda_quest_attn (Tk_dev: the key count from the device). */
static int quest_attn_launch(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                             size_t cap, uint16_t *out, int r0, int nr, int Tq, int Tk, int H, int Hs, int D, int P,
                             int kp, const int32_t *sel, float scale, float *work, const int32_t *Tk_dev,
                             struct scb_ctx *err)
{
    int rc = SCB_OK;
    scale = scale != 0.f ? scale : 1.0f / sqrtf((float)D);
    const int S = (int)(((long long)kp * P + QA_KEYS - 1) / QA_KEYS);
    const dim3 grid((unsigned)H, (unsigned)nr, (unsigned)S);
#define SCB_QA(DLV) scb_quest_attn_kernel<DLV><<<grid, 32 * QA_WARPS, 0, cc->stream>>>( \
        q, k, v, (long long)cap, r0, Tq, Tk, H, H / Hs, D, P, kp, sel, scale, work, Tk_dev)
    if (D <= 32) SCB_QA(1);
    else if (D <= 64) SCB_QA(2);
    else if (D <= 128) SCB_QA(4);
    else SCB_QA(QA_DL);
#undef SCB_QA
    SCB_LAUNCH_CHECK("scb_quest_attn_kernel");
    scb_quest_merge_kernel<<<dim3((unsigned)H, (unsigned)nr), 128, 0, cc->stream>>>(work, S, r0, H, D, out);
    SCB_LAUNCH_CHECK("scb_quest_merge_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_quest_decode_dev_fits(const void *q, int H, int Hs, int D, const void *k, const void *kmin,
                                              const void *kmax)
{
    const int G = Hs > 0 ? H / Hs : 0;
    return q && k && kmin && kmax && H >= 1 && Hs >= 1 && H % Hs == 0 && D >= 8 && D % 8 == 0 && D <= 32 * QA_DL &&
           !(((uintptr_t)q | (uintptr_t)k | (uintptr_t)kmin | (uintptr_t)kmax) & 15u) &&
           sizeof(float) * (size_t)G * D <= 48 * 1024;
}

extern "C" int scb_cuda_quest_attn(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k,
                                   const uint16_t *v, size_t cap, uint16_t *out, int r0, int nr, int Tq, int Tk,
                                   int H, int Hs, int D, int P, int kp, const int32_t *sel, float scale,
                                   float *work, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!q || !k || !v || !out || !sel || !work || r0 < 0 || nr < 1 || r0 + nr > Tq || Tq > Tk ||
        (size_t)Tk > cap || H < 1 || Hs < 1 || H % Hs || D < 2 || D % 2 || D > 32 * QA_DL || P < 1 || kp < 1) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest attention: bad arguments (r0=%d nr=%d Tq=%d Tk=%d cap=%zu H=%d "
                     "Hs=%d D=%d P=%d kp=%d)", r0, nr, Tq, Tk, cap, H, Hs, D, P, kp);
        goto out;
    }
    rc = quest_attn_launch(cc, q, k, v, cap, out, r0, nr, Tq, Tk, H, Hs, D, P, kp, sel, scale, work, NULL, err);
out:
    return rc;
}

extern "C" int scb_cuda_quest_decode_dev(struct scb_cuda_ctx *cc, const uint16_t *q, int H, int Hs, int D,
                                         const uint16_t *k, const uint16_t *v, size_t cap, uint16_t *kmin,
                                         uint16_t *kmax, int mp, const int32_t *T_dev, int P, int kp, float *ub,
                                         int32_t *sel, float scale, float *work, uint16_t *out, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!scb_cuda_quest_decode_dev_fits(q, H, Hs, D, k, kmin, kmax) || !v || !out || !T_dev || !ub || !sel ||
        !work || P < 1 || mp < 1 || (size_t)mp * P < cap || kp < 1 || kp > mp) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA quest decode (device count): bad arguments (H=%d Hs=%d D=%d cap=%zu "
                     "P=%d mp=%d kp=%d, 16-byte aligned q/k/kmin/kmax, D %% 8 == 0)", H, Hs, D, cap, P, mp, kp);
        goto out;
    }
    {
        /* the bounds: a grid for every page the cache can hold (blocks past the device's page
         * count only stage q), the last page rebuilt from k; the top-k over the device's page
         * count (its row staged in shared memory when mp pages fit); the attention */
        if ((rc = quest_ub2_launch(cc, q, H / Hs, D, Hs, k, cap, kmin, kmax, mp, 1, P, 0, mp, 4, ub, T_dev, err)) < 0 ||
            (rc = scb_quest_topk_launch(cc, ub, H, mp, kp, sel, err, T_dev, P)) < 0)
            goto out;
        rc = quest_attn_launch(cc, q, k, v, cap, out, 0, 1, 1, 1, H, Hs, D, P, kp, sel, scale, work, T_dev, err);
    }
out:
    return rc;
}
