/* attn_prefill.cu — causal GQA prefill attention in the FlashAttention-2 manner (bf16 in/out,
 * fp32 accumulation), tensor cores through inline-PTX mma.sync.m16n8k16 (sm_80+, runs on sm_90).
 *
 * One block of 4 warps owns 64 query rows of one query head (each warp 16 rows) and walks the
 * 64-key tiles its rows can see (bottom-right causal: row i sees key j iff j <= i + Tk - Tq).
 * K/V tiles are staged in shared memory by cp.async, two stages deep; rows are padded by 8
 * bf16 so that ldmatrix and 32-bit fragment loads are free of bank conflicts. S = Q K^T and
 * O += P V run on the tensor cores; the softmax is online, in the log2 domain, fp32; P is
 * rounded to bf16 for the PV product (the accumulator layout of m16n8 is reused as the A
 * operand, as FlashAttention-2 does). Blocks are issued heaviest first (last query tiles). */
#include "kernels/kernels_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"

#define FA_BM 64        /* query rows per block */
#define FA_BN 64        /* keys per tile */
#define FA_WARPS 4
#define FA_PAD 8        /* bf16 of padding per shared-memory row */

struct scb_fa_params {
    const uint16_t *q, *k, *v;
    uint16_t *out;
    float *lse;
    int Tq, Tk, Hq, G;
    long long kv_tok, kv_head;   /* elements */
    float scale_log2;            /* scale * log2(e) */
};

template <int D>
__global__ void __launch_bounds__(FA_WARPS * 32)
scb_fa2_fwd_kernel(const struct scb_fa_params p)
{
    constexpr int LD = D + FA_PAD;                 /* shared row length in bf16 */
    constexpr int KD = D / 16;                     /* k-steps of Q K^T */
    constexpr int NT = FA_BN / 8;                  /* n-tiles of S */
    constexpr int DT = D / 8;                      /* n-tiles of O */
    constexpr int CH = D / 8;                      /* 16-byte chunks per row */
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *Qs = smem;                           /* (BM, LD) */
    uint16_t *Ks = Qs + FA_BM * LD;                /* (2, BN, LD) */
    uint16_t *Vs = Ks + 2 * FA_BN * LD;            /* (2, BN, LD) */

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g8 = lane >> 2, tq = lane & 3;
    const int mblk = gridDim.x - 1 - blockIdx.x;   /* heaviest tiles first */
    const int h = blockIdx.y, kvh = h / p.G;
    const int m0 = mblk * FA_BM;
    const int off = p.Tk - p.Tq;
    int kmax = m0 + FA_BM + off;                   /* exclusive key bound of this block */
    if (kmax > p.Tk) kmax = p.Tk;
    const int ntiles = kmax > 0 ? (kmax + FA_BN - 1) / FA_BN : 0;
    const uint16_t *kbase = p.k + (long long)kvh * p.kv_head;
    const uint16_t *vbase = p.v + (long long)kvh * p.kv_head;

    /* Q tile (zero rows past Tq) */
    for (int c = tid; c < FA_BM * CH; c += FA_WARPS * 32) {
        int r = c / CH, col = (c % CH) * 8, i = m0 + r;
        bool ok = i < p.Tq;
        const uint16_t *src = ok ? p.q + ((long long)i * p.Hq + h) * D + col : p.q;
        scb_cp_async16(Qs + r * LD + col, src, ok);
    }
    auto load_kv = [&](int t, int stage) {
        uint16_t *ks = Ks + stage * FA_BN * LD, *vs = Vs + stage * FA_BN * LD;
        for (int c = tid; c < FA_BN * CH; c += FA_WARPS * 32) {
            int r = c / CH, col = (c % CH) * 8, j = t * FA_BN + r;
            bool ok = j < p.Tk;
            long long o = ok ? (long long)j * p.kv_tok + col : 0;
            scb_cp_async16(ks + r * LD + col, ok ? kbase + o : p.k, ok);
            scb_cp_async16(vs + r * LD + col, ok ? vbase + o : p.v, ok);
        }
    };
    if (ntiles > 0) load_kv(0, 0);
    scb_cp_async_commit();
    scb_cp_async_wait<0>();
    __syncthreads();

    /* Q fragments (A operand, row-major 16x16 per k-step) */
    uint32_t qf[KD][4];
    {
        const int r0 = warp * 16 + g8;
#pragma unroll
        for (int kk = 0; kk < KD; kk++) {
            const int c = kk * 16 + tq * 2;
            qf[kk][0] = *(const uint32_t *)(Qs + r0 * LD + c);
            qf[kk][1] = *(const uint32_t *)(Qs + (r0 + 8) * LD + c);
            qf[kk][2] = *(const uint32_t *)(Qs + r0 * LD + c + 8);
            qf[kk][3] = *(const uint32_t *)(Qs + (r0 + 8) * LD + c + 8);
        }
    }

    float o[DT][4];
#pragma unroll
    for (int d = 0; d < DT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.f;
    float mA = -INFINITY, mB = -INFINITY, lA = 0.f, lB = 0.f;
    const int rowA = m0 + warp * 16 + g8, rowB = rowA + 8;

    for (int t = 0; t < ntiles; t++) {
        const int stage = t & 1;
        if (t + 1 < ntiles) {
            load_kv(t + 1, stage ^ 1);
            scb_cp_async_commit();
            scb_cp_async_wait<1>();
        } else {
            scb_cp_async_wait<0>();
        }
        __syncthreads();
        const uint16_t *ks = Ks + stage * FA_BN * LD, *vs = Vs + stage * FA_BN * LD;

        /* S = Q K^T */
        float s[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < KD; kk += 2) {
                uint32_t b[4];
                const int mi = lane >> 3, r = lane & 7;
                scb_ldmatrix_x4(b, ks + (nt * 8 + r) * LD + kk * 16 + mi * 8);
                scb_mma_bf16(s[nt], qf[kk], b[0], b[1]);
                scb_mma_bf16(s[nt], qf[kk + 1], b[2], b[3]);
            }
        }

        /* scale, mask, online softmax (log2 domain) */
        const int kb = t * FA_BN;
        const bool need_mask = (kb + FA_BN > p.Tk) || (kb + FA_BN - 1 > m0 + off);
        float tmA = -INFINITY, tmB = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nt][e] * p.scale_log2;
                if (need_mask) {
                    int j = kb + nt * 8 + tq * 2 + (e & 1);
                    int i = (e < 2) ? rowA : rowB;
                    if (j >= p.Tk || j > i + off) x = -INFINITY;
                }
                s[nt][e] = x;
            }
            tmA = fmaxf(tmA, fmaxf(s[nt][0], s[nt][1]));
            tmB = fmaxf(tmB, fmaxf(s[nt][2], s[nt][3]));
        }
        tmA = fmaxf(tmA, __shfl_xor_sync(0xffffffffu, tmA, 1));
        tmA = fmaxf(tmA, __shfl_xor_sync(0xffffffffu, tmA, 2));
        tmB = fmaxf(tmB, __shfl_xor_sync(0xffffffffu, tmB, 1));
        tmB = fmaxf(tmB, __shfl_xor_sync(0xffffffffu, tmB, 2));
        const float nmA = fmaxf(mA, tmA), nmB = fmaxf(mB, tmB);
        const float uA = nmA == -INFINITY ? 0.f : nmA, uB = nmB == -INFINITY ? 0.f : nmB;
        const float aA = scb_exp2(mA - uA), aB = scb_exp2(mB - uB);
        mA = nmA;
        mB = nmB;
        float sA = 0.f, sB = 0.f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            s[nt][0] = scb_exp2(s[nt][0] - uA);
            s[nt][1] = scb_exp2(s[nt][1] - uA);
            s[nt][2] = scb_exp2(s[nt][2] - uB);
            s[nt][3] = scb_exp2(s[nt][3] - uB);
            sA += s[nt][0] + s[nt][1];
            sB += s[nt][2] + s[nt][3];
        }
        lA = lA * aA + sA;
        lB = lB * aB + sB;
#pragma unroll
        for (int d = 0; d < DT; d++) {
            o[d][0] *= aA;
            o[d][1] *= aA;
            o[d][2] *= aB;
            o[d][3] *= aB;
        }

        /* O += P V (P as bf16 A fragments straight from the S accumulators) */
#pragma unroll
        for (int kk = 0; kk < FA_BN / 16; kk++) {
            uint32_t a[4];
            a[0] = scb_pack_bf2(s[2 * kk][0], s[2 * kk][1]);
            a[1] = scb_pack_bf2(s[2 * kk][2], s[2 * kk][3]);
            a[2] = scb_pack_bf2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = scb_pack_bf2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int dt = 0; dt < DT; dt += 2) {
                uint32_t b[4];
                const int mi = lane >> 3, r = lane & 7;
                scb_ldmatrix_x4_trans(b, vs + (kk * 16 + (mi & 1) * 8 + r) * LD +
                                             (dt + (mi >> 1)) * 8);
                scb_mma_bf16(o[dt], a, b[0], b[1]);
                scb_mma_bf16(o[dt + 1], a, b[2], b[3]);
            }
        }
        __syncthreads();   /* the next iteration's cp.async overwrites this stage */
    }

    /* finish: full row sums across the quad, normalise, store */
    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    const float iA = lA > 0.f ? 1.f / lA : 0.f, iB = lB > 0.f ? 1.f / lB : 0.f;
    if (rowA < p.Tq) {
        uint16_t *dst = p.out + ((long long)rowA * p.Hq + h) * D + tq * 2;
#pragma unroll
        for (int d = 0; d < DT; d++)
            *(uint32_t *)(dst + d * 8) = scb_pack_bf2(o[d][0] * iA, o[d][1] * iA);
        if (p.lse && tq == 0)
            p.lse[(long long)rowA * p.Hq + h] =
                lA > 0.f ? (mA + log2f(lA)) * 0.69314718055994531f : -INFINITY;
    }
    if (rowB < p.Tq) {
        uint16_t *dst = p.out + ((long long)rowB * p.Hq + h) * D + tq * 2;
#pragma unroll
        for (int d = 0; d < DT; d++)
            *(uint32_t *)(dst + d * 8) = scb_pack_bf2(o[d][2] * iB, o[d][3] * iB);
        if (p.lse && tq == 0)
            p.lse[(long long)rowB * p.Hq + h] =
                lB > 0.f ? (mB + log2f(lB)) * 0.69314718055994531f : -INFINITY;
    }
}

template <int D>
static int scb_fa2_launch_(struct scb_cuda_ctx *cc, const struct scb_fa_params *p,
                           struct scb_ctx *err)
{
    int rc = SCB_OK;
    const size_t smem = (size_t)(FA_BM + 4 * FA_BN) * (D + FA_PAD) * sizeof(uint16_t);
    dim3 grid((unsigned)((p->Tq + FA_BM - 1) / FA_BM), (unsigned)p->Hq);
    SCB_CUDA_TRY(cudaFuncSetAttribute(scb_fa2_fwd_kernel<D>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    scb_fa2_fwd_kernel<D><<<grid, FA_WARPS * 32, smem, cc->stream>>>(*p);
    SCB_LAUNCH_CHECK("scb_fa2_fwd_kernel");
out:
    return rc;
}

extern "C" int scb_attn_prefill_fa2_cuda(struct scb_cuda_ctx *cc,
                                         const struct scb_attn_cuda_args *a, struct scb_ctx *err)
{
    int rc = SCB_OK;
    struct scb_fa_params p;
    SCB_CHECK_ALIVE();
    SCB_TRY(scb_attn_cuda_check_(a, "prefill (fa2)", err));
    p.q = a->q;
    p.k = a->k;
    p.v = a->v;
    p.out = a->out;
    p.lse = a->lse;
    p.Tq = a->Tq;
    p.Tk = a->Tk;
    p.Hq = a->Hq;
    p.G = a->Hq / a->Hkv;
    p.kv_tok = (long long)(a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D);
    p.kv_head = (long long)(a->kv_head_stride ? a->kv_head_stride : (size_t)a->D);
    p.scale_log2 = (a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D)) * 1.4426950408889634f;
    if (a->D == 64)
        rc = scb_fa2_launch_<64>(cc, &p, err);
    else
        rc = scb_fa2_launch_<128>(cc, &p, err);
out:
    return rc;
}

extern "C" int scb_attn_prefill_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                                     struct scb_ctx *err)
{
    const char *sel = getenv("SCB_ATTN_PREFILL");
    if (sel && *sel) {
        if (!strcmp(sel, "fa2")) return scb_attn_prefill_fa2_cuda(cc, a, err);
        if (!strcmp(sel, "sm90")) return scb_attn_prefill_sm90_cuda(cc, a, err);
        return scb_err(err, SCB_E_INVAL,
                       "SCB_ATTN_PREFILL='%s': expected 'fa2' or 'sm90' (or unset: automatic)",
                       sel);
    }
    if (a && a->D == 128 && scb_attn_sm90_usable_(cc))
        return scb_attn_prefill_sm90_cuda(cc, a, err);
    return scb_attn_prefill_fa2_cuda(cc, a, err);
}
