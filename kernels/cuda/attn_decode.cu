/* attn_decode.cu — split-K decode attention (few query rows, long key range; bf16 in/out, fp32
 * arithmetic) and the log-sum-exp merge of the partitions. Two partition kernels: the tiled one
 * (default, described where it is defined: K/V tiles through shared memory by cp.async, key
 * count optionally from device memory for replayed CUDA graphs) and the earlier v1 kernel
 * (SCB_ATTN_DECODE=v1), described here.
 *
 * v1: grid (n_splits, Hkv, row groups). A block of 4 warps owns one KV head, one partition of the
 * keys and up to MQ query rows that read this KV head (rows r = i*G + gh: query i, head
 * kvh*G + gh), so K and V are read once for all G query heads (GQA without repetition).
 * Each warp takes 32-key sub-tiles in turn: lane l loads key l's row (16-byte loads) and
 * scores it against the MQ queries held in shared memory; the online softmax is per warp
 * (log2 domain); then the warp walks the 32 keys, each lane accumulating D/32 columns of V
 * (coalesced rows). The 4 warps are combined in shared memory and the partition writes its
 * normalised fp32 partial output and log2-sum-exp to the workspace. The merge kernel weighs
 * partitions by exp(lse_s - max) and writes bf16 out and the natural-log lse. */
#include "kernels/kernels_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"

#define DEC_WARPS 4

struct scb_dec_params {
    const uint16_t *q, *k, *v;
    int Tq, Tk, Hq, G, M;        /* M = Tq * G rows per KV head */
    long long kv_tok, kv_head;   /* elements */
    float scale_log2;
    int chunk, n_splits;
    float *part_o;               /* (n_splits, Tq*Hq, D) */
    float *part_lse;             /* (n_splits, Tq*Hq), log2 domain */
    const int32_t *d_tk;         /* device key count (graph replay) or NULL = Tk */
};

/* ---- the pipelined kernel (default) ---------------------------------------------------------
 * Grid (n_splits, Hkv, row groups), 4 warps, up to MQ query rows of one KV head per block (K and
 * V read once for the group). The block's key range is cut into tiles of DEC2_TILE keys that
 * all 128 threads copy into shared memory with cp.async (16-byte chunks, coalesced), DEC2_ST
 * tiles in flight. Scores: warp w takes keys 16w..16w+15 of the tile, 4 at a time, 8 lanes per
 * key (lane i of a group holds 16-byte chunks i, i+8 of the row: each quarter-warp reads 128
 * contiguous bytes, no bank conflict), reduced in the group by 3 shuffles; per-warp online
 * softmax (log2 domain) over the 16 keys; then P·V with lane l accumulating D/32 columns. The
 * key range comes from the device (d_tk) when the launch sits in a replayed CUDA graph: the
 * chunk per split is derived from it in the kernel, so the grid stays fixed. */
#define DEC2_TILE 64
#define DEC2_ST 3

template <int D>
static __device__ __forceinline__ void scb_dec2_load_tile(uint16_t *ks, uint16_t *vs,
                                                          const uint16_t *kb, const uint16_t *vb,
                                                          long long kv_tok, int j0, int kend)
{
    constexpr int CH = D / 8;
    for (int e = threadIdx.x; e < DEC2_TILE * CH; e += DEC_WARPS * 32) {
        const int r = e / CH, c = e % CH, j = j0 + r;
        const bool ok = j < kend;
        const long long src = (long long)(ok ? j : 0) * kv_tok + c * 8;
        scb_cp_async16(ks + r * D + c * 8, kb + src, ok);
        scb_cp_async16(vs + r * D + c * 8, vb + src, ok);
    }
}

template <int D, int MQ>
__global__ void __launch_bounds__(DEC_WARPS * 32, 2)
scb_decode_split2_kernel(const struct scb_dec_params p)
{
    constexpr int CPL = D / 64;                    /* 16-byte K chunks per lane (group of 8) */
    constexpr int C = D / 32;                      /* V columns per lane */
    extern __shared__ __align__(16) uint16_t dsm[];/* DEC2_ST x (K tile, V tile), (TILE, D) each */
    __shared__ float ps[DEC_WARPS][MQ][16];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, grp = lane >> 3, gi = lane & 7;
    const int split = blockIdx.x, kvh = blockIdx.y, r0 = blockIdx.z * MQ;
    const int Tk = p.d_tk ? *p.d_tk : p.Tk;
    int chunk = (Tk + p.n_splits - 1) / p.n_splits;
    chunk = (chunk + DEC2_TILE - 1) / DEC2_TILE * DEC2_TILE;
    const int kbeg = split * chunk;
    const int kend = kbeg + chunk < Tk ? kbeg + chunk : Tk;
    const int off = Tk - p.Tq;
    const int ntiles = kend > kbeg ? (kend - kbeg + DEC2_TILE - 1) / DEC2_TILE : 0;
    const uint16_t *kb = p.k + (long long)kvh * p.kv_head;
    const uint16_t *vb = p.v + (long long)kvh * p.kv_head;

    /* start the copies first: the queries are loaded under them */
#pragma unroll
    for (int st = 0; st < DEC2_ST - 1; st++) {
        if (st < ntiles)
            scb_dec2_load_tile<D>(dsm + st * 2 * DEC2_TILE * D, dsm + (st * 2 + 1) * DEC2_TILE * D,
                                  kb, vb, p.kv_tok, kbeg + st * DEC2_TILE, kend);
        scb_cp_async_commit();
    }

    int qi[MQ];
    bool rv[MQ];
    float qr[MQ][CPL * 8];                         /* scaled query dims of this lane's chunks */
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) {
        const int r = r0 + mm;
        rv[mm] = r < p.M;
        qi[mm] = r / p.G;
        const int h = kvh * p.G + r % p.G;
#pragma unroll
        for (int c = 0; c < CPL; c++) {
            float f[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            if (rv[mm]) {
                const uint4 v = *(const uint4 *)(p.q + ((long long)qi[mm] * p.Hq + h) * D +
                                                 (gi + 8 * c) * 8);
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    f[2 * u] = __uint_as_float(w[u] << 16) * p.scale_log2;
                    f[2 * u + 1] = __uint_as_float(w[u] & 0xffff0000u) * p.scale_log2;
                }
            }
#pragma unroll
            for (int e = 0; e < 8; e++) qr[mm][c * 8 + e] = f[e];
        }
    }
    float m[MQ], l[MQ], acc[MQ][C];
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) {
        m[mm] = -INFINITY;
        l[mm] = 0.f;
#pragma unroll
        for (int c = 0; c < C; c++) acc[mm][c] = 0.f;
    }

    for (int it = 0; it < ntiles; it++) {
        const int nt = it + DEC2_ST - 1;
        if (nt < ntiles) {
            const int st = nt % DEC2_ST;
            scb_dec2_load_tile<D>(dsm + st * 2 * DEC2_TILE * D, dsm + (st * 2 + 1) * DEC2_TILE * D,
                                  kb, vb, p.kv_tok, kbeg + nt * DEC2_TILE, kend);
        }
        scb_cp_async_commit();
        scb_cp_async_wait<DEC2_ST - 1>();
        __syncthreads();
        const int st = it % DEC2_ST;
        const uint16_t *ks = dsm + st * 2 * DEC2_TILE * D, *vs = ks + DEC2_TILE * D;
        const int t0 = kbeg + it * DEC2_TILE;          /* key index of tile row 0 */

        /* scores of keys 16*warp + 4*pass + grp */
        float s[4][MQ];
#pragma unroll
        for (int pass = 0; pass < 4; pass++) {
            const int row = warp * 16 + pass * 4 + grp;
            float kf[CPL * 8];
#pragma unroll
            for (int c = 0; c < CPL; c++) {
                const uint4 v = *(const uint4 *)(ks + row * D + (gi + 8 * c) * 8);
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    kf[c * 8 + 2 * u] = __uint_as_float(w[u] << 16);
                    kf[c * 8 + 2 * u + 1] = __uint_as_float(w[u] & 0xffff0000u);
                }
            }
#pragma unroll
            for (int mm = 0; mm < MQ; mm++) {
                float d = 0.f;
#pragma unroll
                for (int e = 0; e < CPL * 8; e++) d = fmaf(qr[mm][e], kf[e], d);
                d += __shfl_xor_sync(0xffffffffu, d, 1);
                d += __shfl_xor_sync(0xffffffffu, d, 2);
                d += __shfl_xor_sync(0xffffffffu, d, 4);
                const int j = t0 + row;
                if (j >= kend || !rv[mm] || j > qi[mm] + off) d = -INFINITY;
                s[pass][mm] = d;
            }
        }
        /* online softmax over the warp's 16 keys */
#pragma unroll
        for (int mm = 0; mm < MQ; mm++) {
            float tm = fmaxf(fmaxf(s[0][mm], s[1][mm]), fmaxf(s[2][mm], s[3][mm]));
            tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 8));
            tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, 16));
            const float nm = fmaxf(m[mm], tm);
            const float u = nm == -INFINITY ? 0.f : nm;
            const float alpha = scb_exp2(m[mm] - u);
            float ls = 0.f;
#pragma unroll
            for (int pass = 0; pass < 4; pass++) {
                const float pr = scb_exp2(s[pass][mm] - u);
                ls += pr;
                if (gi == 0) ps[warp][mm][pass * 4 + grp] = pr;
            }
            ls += __shfl_xor_sync(0xffffffffu, ls, 8);
            ls += __shfl_xor_sync(0xffffffffu, ls, 16);
            m[mm] = nm;
            l[mm] = l[mm] * alpha + ls;            /* warp-uniform */
#pragma unroll
            for (int c = 0; c < C; c++) acc[mm][c] *= alpha;
        }
        __syncwarp();
#pragma unroll 4
        for (int jj = 0; jj < 16; jj++) {
            const uint16_t *vrow = vs + (warp * 16 + jj) * D + lane * C;
            float vf[C];
            if (C == 4) {
                const uint2 vv = *(const uint2 *)vrow;
                vf[0] = __uint_as_float(vv.x << 16);
                vf[1] = __uint_as_float(vv.x & 0xffff0000u);
                vf[2 % C] = __uint_as_float(vv.y << 16);
                vf[3 % C] = __uint_as_float(vv.y & 0xffff0000u);
            } else {
                const uint32_t vv = *(const uint32_t *)vrow;
                vf[0] = __uint_as_float(vv << 16);
                vf[1 % C] = __uint_as_float(vv & 0xffff0000u);
            }
#pragma unroll
            for (int mm = 0; mm < MQ; mm++) {
                const float pr = ps[warp][mm][jj];
#pragma unroll
                for (int c = 0; c < C; c++) acc[mm][c] = fmaf(pr, vf[c], acc[mm][c]);
            }
        }
        __syncthreads();                           /* the stage is refilled next */
    }
    scb_cp_async_wait<0>();
    __syncthreads();

    /* combine the warps (the ring is free now) */
    float *wm = (float *)dsm;                      /* (DEC_WARPS, MQ) */
    float *wl = wm + DEC_WARPS * MQ;               /* (DEC_WARPS, MQ) */
    float *wacc = wl + DEC_WARPS * MQ;             /* (DEC_WARPS, MQ, D) */
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) {
        if (lane == 0) {
            wm[warp * MQ + mm] = m[mm];
            wl[warp * MQ + mm] = l[mm];
        }
#pragma unroll
        for (int c = 0; c < C; c++) wacc[(warp * MQ + mm) * D + lane * C + c] = acc[mm][c];
    }
    __syncthreads();
    for (int e = tid; e < MQ * D; e += DEC_WARPS * 32) {
        const int mm = e / D, d = e % D, r = r0 + mm;
        if (r >= p.M) continue;
        float M_ = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) M_ = fmaxf(M_, wm[w * MQ + mm]);
        const float u = M_ == -INFINITY ? 0.f : M_;
        float L = 0.f, o = 0.f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            const float f = scb_exp2(wm[w * MQ + mm] - u);
            L += f * wl[w * MQ + mm];
            o += f * wacc[(w * MQ + mm) * D + d];
        }
        const int i = r / p.G, h = kvh * p.G + r % p.G;
        const long long row = (long long)split * p.Tq * p.Hq + (long long)i * p.Hq + h;
        p.part_o[row * D + d] = L > 0.f ? o / L : 0.f;
        if (d == 0) p.part_lse[row] = L > 0.f ? M_ + log2f(L) : -INFINITY;
    }
}

template <int D, int MQ>
__global__ void __launch_bounds__(DEC_WARPS * 32)
scb_decode_split_kernel(const struct scb_dec_params p)
{
    constexpr int C = D / 32;                      /* V columns per lane */
    __shared__ __align__(16) float qs[MQ][D];      /* scaled queries */
    __shared__ float ps[DEC_WARPS][MQ][32];        /* probabilities of the current sub-tile */
    __shared__ float wm[DEC_WARPS][MQ], wl[DEC_WARPS][MQ];
    __shared__ float wacc[DEC_WARPS][MQ][D];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int split = blockIdx.x, kvh = blockIdx.y, r0 = blockIdx.z * MQ;
    const int kbeg = split * p.chunk;
    int kend = kbeg + p.chunk;
    if (kend > p.Tk) kend = p.Tk;
    const int off = p.Tk - p.Tq;

    /* query rows of this group (rows past M are zero and masked) */
    int qi[MQ];
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) qi[mm] = (r0 + mm) / p.G;
    for (int e = tid; e < MQ * D; e += DEC_WARPS * 32) {
        int mm = e / D, d = e % D, r = r0 + mm;
        float x = 0.f;
        if (r < p.M) {
            int i = r / p.G, h = kvh * p.G + r % p.G;
            x = scb_bf2f(p.q[((long long)i * p.Hq + h) * D + d]) * p.scale_log2;
        }
        qs[mm][d] = x;
    }
    __syncthreads();

    float m[MQ], l[MQ], acc[MQ][C];
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) {
        m[mm] = -INFINITY;
        l[mm] = 0.f;
#pragma unroll
        for (int c = 0; c < C; c++) acc[mm][c] = 0.f;
    }
    const uint16_t *kb = p.k + (long long)kvh * p.kv_head;
    const uint16_t *vb = p.v + (long long)kvh * p.kv_head;

    for (int base = kbeg + warp * 32; base < kend; base += DEC_WARPS * 32) {
        const int j = base + lane;
        const bool valid = j < kend;
        float s[MQ];
#pragma unroll
        for (int mm = 0; mm < MQ; mm++) s[mm] = 0.f;
        if (valid) {
            const uint4 *krow = (const uint4 *)(kb + (long long)j * p.kv_tok);
            uint4 kr[D / 8];
#pragma unroll
            for (int c = 0; c < D / 8; c++) kr[c] = __ldg(krow + c);
#pragma unroll
            for (int c = 0; c < D / 8; c++) {
                float kf[8];
                scb_unpack8(kr[c], kf);
#pragma unroll
                for (int mm = 0; mm < MQ; mm++) {
                    const float4 qa = *(const float4 *)&qs[mm][c * 8];
                    const float4 qb = *(const float4 *)&qs[mm][c * 8 + 4];
                    s[mm] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] +
                             qb.x * kf[4] + qb.y * kf[5] + qb.z * kf[6] + qb.w * kf[7];
                }
            }
        }
#pragma unroll
        for (int mm = 0; mm < MQ; mm++) {
            float x = s[mm];
            if (!valid || r0 + mm >= p.M || j > qi[mm] + off) x = -INFINITY;
            float tm = x;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) tm = fmaxf(tm, __shfl_xor_sync(0xffffffffu, tm, o));
            const float nm = fmaxf(m[mm], tm);
            const float u = nm == -INFINITY ? 0.f : nm;
            const float alpha = scb_exp2(m[mm] - u);
            const float pr = scb_exp2(x - u);
            m[mm] = nm;
            l[mm] = l[mm] * alpha + pr;       /* lane-partial; alpha is warp-uniform */
#pragma unroll
            for (int c = 0; c < C; c++) acc[mm][c] *= alpha;
            ps[warp][mm][lane] = pr;
        }
        __syncwarp();
        const int nvalid = kend - base < 32 ? kend - base : 32;
        for (int jj = 0; jj < nvalid; jj++) {
            const uint16_t *vrow = vb + (long long)(base + jj) * p.kv_tok + lane * C;
            float vf[C];
            if (C == 4) {
                const uint2 vv = __ldg((const uint2 *)vrow);
                vf[0] = __uint_as_float(vv.x << 16);
                vf[1] = __uint_as_float(vv.x & 0xffff0000u);
                vf[2 % C] = __uint_as_float(vv.y << 16);
                vf[3 % C] = __uint_as_float(vv.y & 0xffff0000u);
            } else {
                const uint32_t vv = __ldg((const uint32_t *)vrow);
                vf[0] = __uint_as_float(vv << 16);
                vf[1 % C] = __uint_as_float(vv & 0xffff0000u);
            }
#pragma unroll
            for (int mm = 0; mm < MQ; mm++) {
                const float pr = ps[warp][mm][jj];
#pragma unroll
                for (int c = 0; c < C; c++) acc[mm][c] += pr * vf[c];
            }
        }
        __syncwarp();
    }

    /* combine the warps */
#pragma unroll
    for (int mm = 0; mm < MQ; mm++) {
        float ls = l[mm];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) ls += __shfl_xor_sync(0xffffffffu, ls, o);
        if (lane == 0) {
            wm[warp][mm] = m[mm];
            wl[warp][mm] = ls;
        }
#pragma unroll
        for (int c = 0; c < C; c++) wacc[warp][mm][lane * C + c] = acc[mm][c];
    }
    __syncthreads();
    for (int e = tid; e < MQ * D; e += DEC_WARPS * 32) {
        const int mm = e / D, d = e % D, r = r0 + mm;
        if (r >= p.M) continue;
        float M_ = -INFINITY;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) M_ = fmaxf(M_, wm[w][mm]);
        const float u = M_ == -INFINITY ? 0.f : M_;
        float L = 0.f, o = 0.f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++) {
            const float f = scb_exp2(wm[w][mm] - u);
            L += f * wl[w][mm];
            o += f * wacc[w][mm][d];
        }
        const int i = r / p.G, h = kvh * p.G + r % p.G;
        const long long row = (long long)split * p.Tq * p.Hq + (long long)i * p.Hq + h;
        p.part_o[row * D + d] = L > 0.f ? o / L : 0.f;
        if (d == 0) p.part_lse[row] = L > 0.f ? M_ + log2f(L) : -INFINITY;
    }
}

/* One block per (query row, head): out = sum_s 2^(lse_s - max) o_s / sum_s 2^(lse_s - max). */
__global__ void scb_decode_merge_kernel(const float *part_o, const float *part_lse, int n_splits,
                                        int rows, int D, uint16_t *out, float *lse)
{
    const int row = blockIdx.x;
    float M_ = -INFINITY;
    for (int s = 0; s < n_splits; s++) M_ = fmaxf(M_, part_lse[(long long)s * rows + row]);
    const float u = M_ == -INFINITY ? 0.f : M_;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float L = 0.f, o = 0.f;
        for (int s = 0; s < n_splits; s++) {
            const float f = exp2f(part_lse[(long long)s * rows + row] - u);
            L += f;
            o += f * part_o[((long long)s * rows + row) * D + d];
        }
        out[(long long)row * D + d] = scb_f2bf(L > 0.f ? o / L : 0.f);
        if (lse && d == 0) lse[row] = L > 0.f ? (M_ + log2f(L)) * 0.69314718055994531f : -INFINITY;
    }
}

template <int D, int MQ>
static int scb_decode_launch_(struct scb_cuda_ctx *cc, const struct scb_dec_params *p, int v1,
                              struct scb_ctx *err)
{
    int rc = SCB_OK;
    dim3 grid((unsigned)p->n_splits, (unsigned)(p->Hq / p->G), (unsigned)((p->M + MQ - 1) / MQ));
    if (v1) {
        scb_decode_split_kernel<D, MQ><<<grid, DEC_WARPS * 32, 0, cc->stream>>>(*p);
        SCB_LAUNCH_CHECK("scb_decode_split_kernel");
    } else {
        const size_t smem = (size_t)DEC2_ST * 2 * DEC2_TILE * D * sizeof(uint16_t);
        static int attr_set = 0;                  /* per (D, MQ) instantiation */
        if (!attr_set) {
            SCB_CUDA_TRY(cudaFuncSetAttribute(scb_decode_split2_kernel<D, MQ>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              (int)smem));
            attr_set = 1;
        }
        scb_decode_split2_kernel<D, MQ><<<grid, DEC_WARPS * 32, smem, cc->stream>>>(*p);
        SCB_LAUNCH_CHECK("scb_decode_split2_kernel");
    }
out:
    return rc;
}

template <int D>
static int scb_decode_dispatch_(struct scb_cuda_ctx *cc, const struct scb_dec_params *p, int v1,
                                struct scb_ctx *err)
{
    if (p->M <= 1) return scb_decode_launch_<D, 1>(cc, p, v1, err);
    if (p->M <= 2) return scb_decode_launch_<D, 2>(cc, p, v1, err);
    if (p->M <= 4) return scb_decode_launch_<D, 4>(cc, p, v1, err);
    return scb_decode_launch_<D, 8>(cc, p, v1, err);
}

/* SCB_ATTN_DECODE: unset/"tiled" = the pipelined kernel, "v1" = the earlier one; -1 unknown. */
static int scb_decode_v1_(void)
{
    const char *e = getenv("SCB_ATTN_DECODE");
    if (!e || !*e || !strcmp(e, "tiled")) return 0;
    if (!strcmp(e, "v1")) return 1;
    return -1;
}

extern "C" int scb_attn_decode_splits(const struct scb_cuda_ctx *cc,
                                      const struct scb_attn_cuda_args *a)
{
    const int G = a->Hq / a->Hkv, M = a->Tq * G, groups = (M + 7) / 8;
    const int v1 = scb_decode_v1_() == 1;
    /* v1: about 4 blocks per SM, at least 128 keys per partition; tiled: one wave of 2 blocks
     * per SM (shared-memory bound), at least one 64-key tile per partition */
    const int per_sm = v1 ? 4 : 2, min_keys = v1 ? 128 : DEC2_TILE;
    const int want = (per_sm * cc->sm_count + a->Hkv * groups - 1) / (a->Hkv * groups);
    const int most = (a->Tk + min_keys - 1) / min_keys;
    int n = want < most ? want : most;
    return n < 1 ? 1 : n;
}

static int scb_attn_decode_run_(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                                const int32_t *d_tk, int n_splits, struct scb_ctx *err)
{
    int rc = SCB_OK;
    struct scb_dec_params p;
    size_t per_split, rows;
    int max_splits, v1;
    SCB_CHECK_ALIVE();
    SCB_TRY(scb_attn_cuda_check_(a, "decode", err));
    v1 = scb_decode_v1_();
    if (v1 < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA decode attention: SCB_ATTN_DECODE='%s' (expected "
                     "tiled or v1)", getenv("SCB_ATTN_DECODE"));
        goto out;
    }
    if (d_tk) v1 = 0;                              /* only the tiled kernel reads Tk on the device */
    p.q = a->q;
    p.k = a->k;
    p.v = a->v;
    p.Tq = a->Tq;
    p.Tk = a->Tk;
    p.Hq = a->Hq;
    p.G = a->Hq / a->Hkv;
    p.M = a->Tq * p.G;
    p.d_tk = d_tk;
    p.kv_tok = (long long)(a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D);
    p.kv_head = (long long)(a->kv_head_stride ? a->kv_head_stride : (size_t)a->D);
    p.scale_log2 = (a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D)) * 1.4426950408889634f;
    rows = (size_t)a->Tq * a->Hq;
    per_split = rows * ((size_t)a->D + 1) * sizeof(float);
    max_splits = (int)(cc->ws_bytes / per_split);
    if (max_splits < 1) {
        rc = scb_err(err, SCB_E_INVAL,
                     "CUDA decode attention: Tq*Hq=%zu rows need %zu bytes of workspace, have "
                     "%zu (use prefill attention for long query blocks)", rows, per_split,
                     cc->ws_bytes);
        goto out;
    }
    if (n_splits <= 0) n_splits = scb_attn_decode_splits(cc, a);
    if (n_splits > max_splits) n_splits = max_splits;
    if (n_splits > 65535) n_splits = 65535;
    if (n_splits < 1) n_splits = 1;
    if (d_tk) {
        p.chunk = 0;                               /* derived from *d_tk in the kernel */
        p.n_splits = n_splits;
    } else {
        p.chunk = (a->Tk + n_splits - 1) / n_splits;
        if (!v1) p.chunk = (p.chunk + DEC2_TILE - 1) / DEC2_TILE * DEC2_TILE;
        if (p.chunk < 1) p.chunk = 1;
        p.n_splits = (a->Tk + p.chunk - 1) / p.chunk;
        if (p.n_splits < 1) p.n_splits = 1;
    }
    p.part_o = (float *)cc->workspace;
    p.part_lse = p.part_o + (size_t)p.n_splits * rows * a->D;
    if (a->D == 64)
        SCB_TRY(scb_decode_dispatch_<64>(cc, &p, v1, err));
    else
        SCB_TRY(scb_decode_dispatch_<128>(cc, &p, v1, err));
    scb_decode_merge_kernel<<<(unsigned)rows, a->D, 0, cc->stream>>>(
        p.part_o, p.part_lse, p.n_splits, (int)rows, a->D, a->out, a->lse);
    SCB_LAUNCH_CHECK("scb_decode_merge_kernel");
out:
    return rc;
}

extern "C" int scb_attn_decode_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                                    int n_splits, struct scb_ctx *err)
{
    return scb_attn_decode_run_(cc, a, NULL, n_splits, err);
}

extern "C" int scb_attn_decode_dev_cuda(struct scb_cuda_ctx *cc,
                                        const struct scb_attn_cuda_args *a, const int32_t *d_tk,
                                        int n_splits, struct scb_ctx *err)
{
    int rc = SCB_OK;
    if (!d_tk || n_splits < 1) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA decode attention (device Tk): need d_tk and "
                     "n_splits >= 1 (got %s, %d)", d_tk ? "d_tk" : "NULL", n_splits);
        goto out;
    }
    rc = scb_attn_decode_run_(cc, a, d_tk, n_splits, err);
out:
    return rc;
}
