/* attn_prefill.cu — causal GQA prefill attention in the FlashAttention-2 manner (bf16 in/out,
 * fp32 accumulation), tensor cores through inline-PTX mma.sync.m16n8k16 (sm_80+, runs on sm_90).
 *
 * One block of 4 warps owns 64 query rows of one query head (each warp 16 rows) and walks the
 * 64-key tiles its rows can see (bottom-right causal: row i sees key j iff j <= i + Tk - Tq);
 * the tile loop's pieces are shared with the sparse kernel (fa2_tile.cuh).
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
#include "kernels/cuda/fa2_tile.cuh"

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
    constexpr int NT = FA_BN / 8;                  /* n-tiles of S */
    const int lane = threadIdx.x & 31, tq = lane & 3;
    const int mblk = gridDim.x - 1 - blockIdx.x;   /* heaviest tiles first */
    const int h = blockIdx.y, kvh = h / p.G;
    const int m0 = mblk * FA_BM;
    const int off = p.Tk - p.Tq;
    int kmax = m0 + FA_BM + off;                   /* exclusive key bound of this block */
    if (kmax > p.Tk) kmax = p.Tk;
    const int ntiles = kmax > 0 ? (kmax + FA_BN - 1) / FA_BN : 0;

    /* tile t holds keys t*BN.., zero past Tk */
    auto key_of = [&](int t, int r, int &j) { j = t * FA_BN + r; return j < p.Tk; };
    auto staged = [](int, int, int) {};
    /* scale; the causal and the Tk mask only where the tile reaches past them */
    auto mask = [&](float (&s)[NT * 4], int t, int, int rowA, int rowB, float &tmA, float &tmB) {
        const int kb = t * FA_BN;
        const bool need_mask = (kb + FA_BN > p.Tk) || (kb + FA_BN - 1 > m0 + off);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float x = s[nt * 4 + e] * p.scale_log2;
                if (need_mask) {
                    int j = kb + nt * 8 + tq * 2 + (e & 1);
                    int i = (e < 2) ? rowA : rowB;
                    if (j >= p.Tk || j > i + off) x = -INFINITY;
                }
                s[nt * 4 + e] = x;
            }
            scb_fa2_tile_max(s, nt, tmA, tmB);
        }
    };
    float o[D / 8 * 4];                            /* (D/8, 4) accumulator fragment */
    struct scb_fa2_rows st;
    scb_fa2_block<D, FA_BM, FA_BN, FA_WARPS, FA_PAD>(
        p.q, p.k + (long long)kvh * p.kv_head, p.v + (long long)kvh * p.kv_head, p.k, p.v, p.kv_tok,
        p.Tq, p.Hq, h, m0, ntiles, key_of, staged, mask, o, st);
    const int rowA = m0 + (threadIdx.x >> 5) * 16 + (lane >> 2);
    scb_fa2_store<D / 8>(o, st, p.out, p.lse, rowA, rowA + 8, p.Tq, p.Hq, h, tq);
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
