/* attn_prefill_sm90.cu — causal GQA prefill attention for Hopper (sm_90a) in the manner of
 * FlashAttention-3: warpgroup MMA (wgmma.mma_async) and the bulk tensor copy engine (TMA),
 * producer/consumer warp specialisation, ping-pong between the consumers. bf16 in/out, fp32
 * scores and accumulation, D = 128. Same contract as scb_attn_prefill_cuda (kernels_cuda.h).
 *
 * One block of three warpgroups owns 128 query rows of one query head. Warpgroup 0 is the
 * producer: one thread issues TMA loads of the Q tile and of 128-key K and V tiles into a ring
 * of 2 or 3 stages; each stage has "full" mbarriers (transaction bytes) for K and for V and
 * "empty" mbarriers for K and for V that the consumers arrive on as soon as they are done with
 * that operand. Warpgroups 1 and 2 are consumers, 64 query rows each: S = Q K^T is one
 * m64n128k16 wgmma per 16 of D with both operands in shared memory (K-major); the online
 * softmax runs on the accumulator fragments in registers (log2 domain); P is rounded to bf16
 * in registers and O += P V is a wgmma with A from registers and V from shared memory read
 * N-major (the transpose bit). Tiles are laid out by TMA with the 128-byte swizzle, as
 * 64-column halves of 128-byte rows: the canonical layout the shared-memory matrix
 * descriptors name with swizzle mode 1 (K-major: SBO = 1024 B between 8-row groups, k-steps
 * advance the start address by 32 B; N-major V: LBO = the other 64-column half, SBO = 1024 B
 * between 8-key groups). KV tiles are walked from the diagonal down, so only the first tile or
 * two of a block need the causal mask; tiles wholly above the diagonal are never loaded.
 *
 * Three schedules of the consumer loop (template parameters; the launcher runs ping-pong with
 * three stages, the fastest measured, docs/performance.md): serial (S, softmax, PV one after
 * the other), overlap (FlashAttention-3's intra-warpgroup pipelining: S(t) and PV(t-1) are
 * issued together and the softmax of S(t) runs while PV(t-1) is in flight) and ping-pong
 * (overlap, plus named barriers that hand the tensor cores from one consumer warpgroup to the
 * other, so that one's softmax runs under the other's products). setmaxnreg gives the producer
 * 40 and the consumers 232 registers per thread. Blocks are issued heaviest (last) query tile
 * first, all heads of one query tile together (heads sharing a KV head share L2). */
#include "kernels/kernels_cuda.h"

#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes from the runtime */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fa2_tile.cuh"
#include "kernels/cuda/sm90_common.cuh"

#define H3_BM 128                          /* query rows per block (2 consumer warpgroups) */
#define H3_BN 128                          /* keys per tile */
#define H3_D 128
#define H3_THREADS 384
#define H3_HALF_Q (H3_BM * 128)            /* bytes of one 64-column half of the Q tile */
#define H3_HALF_KV (H3_BN * 128)           /* bytes of one 64-column half of a K or V tile */
#define H3_TILE_KV (2 * H3_HALF_KV)
#define H3_OFF_K (2 * H3_HALF_Q)
#define H3_OFF_V(S) (H3_OFF_K + (S) * H3_TILE_KV)
#define H3_OFF_BAR(S) (H3_OFF_V(S) + (S) * H3_TILE_KV)
#define H3_WHO "sm90 prefill attention"
#define H3_SMEM_BYTES(S) (H3_OFF_BAR(S) + 128 + 1024) /* + barriers + slack to align to 1024 */

struct scb_h3_params {
    uint16_t *out;   /* (Tq, Hq, 128) */
    float *lse;      /* (Tq, Hq) or NULL */
    int Tq, Tk, Hq, G;
    int kv_swap;     /* 1: K/V tensor maps are (D, Hkv, Tk), 0: (D, Tk, Hkv) */
    float scale_log2;
};

struct h3_mask {
    int rowA, rowB, r_lo, off, Tk, tq;
    float scale_log2;
};

/* Scale and mask the S fragment of the key tile starting at kb (the causal and the Tk mask
 * only where the tile reaches past the warpgroup's first row or past Tk), update the row
 * state, return the factors aA, aB that rescale O, and P rounded to bf16 as the A fragments
 * of the PV product (k-step kk = n-tiles 2kk, 2kk+1 of S). */
static __device__ __forceinline__ void h3_softmax(float (&sc)[64], int kb, const struct h3_mask &mk,
                                                  struct scb_fa2_rows &st, float &aA, float &aB,
                                                  uint32_t (&pa)[8][4])
{
    const bool need_mask = (kb + H3_BN > mk.Tk) || (kb + H3_BN - 1 > mk.r_lo + mk.off);
    float tmA = -INFINITY, tmB = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < 16; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float x = sc[nt * 4 + e] * mk.scale_log2;
            if (need_mask) {
                const int jj = kb + nt * 8 + mk.tq * 2 + (e & 1);
                const int i = (e < 2) ? mk.rowA : mk.rowB;
                if (jj >= mk.Tk || jj > i + mk.off) x = -INFINITY;
            }
            sc[nt * 4 + e] = x;
        }
        scb_fa2_tile_max(sc, nt, tmA, tmB);
    }
    scb_fa2_softmax_m<16>(sc, tmA, tmB, st, aA, aB);
    scb_fa2_pack_p<16>(sc, pa);
}

template <bool OVERLAP, int H3_STAGES, bool PINGPONG>
__global__ void __launch_bounds__(H3_THREADS, 1)
scb_h3_fwd_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                  const __grid_constant__ CUtensorMap tm_v, const struct scb_h3_params p)
{
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ uint8_t h3_smem[];
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(h3_smem);
    const uint32_t base = (raw + 1023u) & ~1023u;       /* swizzle atoms need 1024 alignment */
    const uint32_t sQ = base, sK = base + H3_OFF_K, sV = base + H3_OFF_V(H3_STAGES);
    const uint32_t bar = base + H3_OFF_BAR(H3_STAGES);
    /* barriers (8 bytes each): Q, then per stage full K, full V, empty K, empty V */
    const uint32_t barQ = bar;
#define H3_BAR_FK(s) (bar + 8u + 32u * (s))
#define H3_BAR_FV(s) (bar + 16u + 32u * (s))
#define H3_BAR_EK(s) (bar + 24u + 32u * (s))
#define H3_BAR_EV(s) (bar + 32u + 32u * (s))

    const int tid = threadIdx.x, wgi = tid >> 7;
    const int h = blockIdx.x, mblk = gridDim.y - 1 - blockIdx.y;   /* heaviest tiles first */
    const int kvh = h / p.G, m0 = mblk * H3_BM, off = p.Tk - p.Tq;
    int kmax = m0 + H3_BM + off;                   /* exclusive key bound of this block */
    if (kmax > p.Tk) kmax = p.Tk;
    const int ntiles = kmax > 0 ? (kmax + H3_BN - 1) / H3_BN : 0;

    if (tid == 0) {
        h3_mbar_init(barQ, 1);
#pragma unroll
        for (int s = 0; s < H3_STAGES; s++) {
            h3_mbar_init(H3_BAR_FK(s), 1);
            h3_mbar_init(H3_BAR_FV(s), 1);
            h3_mbar_init(H3_BAR_EK(s), 256);       /* every consumer thread arrives */
            h3_mbar_init(H3_BAR_EV(s), 256);
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wgi == 0) {
        /* ---- producer warpgroup: one thread issues every TMA load ---- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::: "memory");
        if (tid == 0 && ntiles > 0) {
            h3_mbar_expect_tx(barQ, 2 * H3_HALF_Q);
            h3_tma3(sQ, &tm_q, barQ, 0, h, m0);
            h3_tma3(sQ + H3_HALF_Q, &tm_q, barQ, 64, h, m0);
            for (int it = 0; it < ntiles; it++) {
                const int t = ntiles - 1 - it, s = it % H3_STAGES, j = t * H3_BN;
                const int c1 = p.kv_swap ? kvh : j, c2 = p.kv_swap ? j : kvh;
                if (it >= H3_STAGES) h3_mbar_wait(H3_BAR_EK(s), ((it / H3_STAGES) - 1) & 1);
                h3_mbar_expect_tx(H3_BAR_FK(s), H3_TILE_KV);
                h3_tma3(sK + s * H3_TILE_KV, &tm_k, H3_BAR_FK(s), 0, c1, c2);
                h3_tma3(sK + s * H3_TILE_KV + H3_HALF_KV, &tm_k, H3_BAR_FK(s), 64, c1, c2);
                if (it >= H3_STAGES) h3_mbar_wait(H3_BAR_EV(s), ((it / H3_STAGES) - 1) & 1);
                h3_mbar_expect_tx(H3_BAR_FV(s), H3_TILE_KV);
                h3_tma3(sV + s * H3_TILE_KV, &tm_v, H3_BAR_FV(s), 0, c1, c2);
                h3_tma3(sV + s * H3_TILE_KV + H3_HALF_KV, &tm_v, H3_BAR_FV(s), 64, c1, c2);
            }
        }
    } else {
        /* ---- consumer warpgroups: 64 query rows each ---- */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::: "memory");
        const int cw = wgi - 1;
        const int ltid = tid & 127, warp = ltid >> 5, lane = tid & 31;
        const int g8 = lane >> 2, tq = lane & 3;
        const int r_lo = m0 + 64 * cw;               /* first query row of this warpgroup */
        const int rowA = r_lo + warp * 16 + g8, rowB = rowA + 8;
        const uint32_t qa = sQ + (uint32_t)cw * 64u * 128u;
        float o[64];
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] = 0.f;
        struct scb_fa2_rows st = {-INFINITY, -INFINITY, 0.f, 0.f};
        uint32_t pa[8][4];
        if (ntiles > 0) h3_mbar_wait(barQ, 0);
        const struct h3_mask mk = {rowA, rowB, r_lo, off, p.Tk, tq, p.scale_log2};

        if (!OVERLAP) {
            for (int it = 0; it < ntiles; it++) {
                const int s = it % H3_STAGES;
                const unsigned par = (unsigned)(it / H3_STAGES) & 1u;
                float sc[64];
                h3_mbar_wait(H3_BAR_FK(s), par);
                h3_wgmma_fence();
                h3_issue_qk<64, H3_HALF_Q, H3_HALF_KV>(sc, qa, sK + (uint32_t)s * H3_TILE_KV);
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(sc);
                h3_mbar_arrive(H3_BAR_EK(s));
                float aA, aB;
                h3_softmax(sc, (ntiles - 1 - it) * H3_BN, mk, st, aA, aB, pa);
                scb_fa2_scale_o(o, aA, aB);
                h3_mbar_wait(H3_BAR_FV(s), par);
                h3_wgmma_fence();
                h3_issue_pv<8, H3_HALF_KV>(o, pa, sV + (uint32_t)s * H3_TILE_KV);
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(o);
                h3_mbar_arrive(H3_BAR_EV(s));
            }
        } else if (ntiles > 0) {
            /* Software pipelined as FlashAttention-3's intra-warpgroup overlap: S(it) = Q K(it)
             * and O += P(it-1) V(it-1) are issued back to back; the softmax of S(it) runs while
             * the PV product is still in flight, and O is rescaled once it has landed. */
            /* ping-pong: ntiles + 1 issue points per warpgroup; warpgroup 0 goes first */
            const int my_turn = 1 + cw, their_turn = 2 - cw;
            if (PINGPONG && cw == 1) h3_turn_pass(1);
            {
                float sc[64];
                h3_mbar_wait(H3_BAR_FK(0), 0);
                if (PINGPONG) h3_turn_wait(my_turn);
                h3_wgmma_fence();
                h3_issue_qk<64, H3_HALF_Q, H3_HALF_KV>(sc, qa, sK);
                h3_wgmma_commit();
                if (PINGPONG) h3_turn_pass(their_turn);
                h3_wgmma_wait<0>();
                h3_fence_acc(sc);
                h3_mbar_arrive(H3_BAR_EK(0));
                float aA, aB;
                h3_softmax(sc, (ntiles - 1) * H3_BN, mk, st, aA, aB, pa);
            }
            for (int it = 1; it < ntiles; it++) {
                const int s = it % H3_STAGES, sp = (it - 1) % H3_STAGES;
                const unsigned par = (unsigned)(it / H3_STAGES) & 1u;
                const unsigned parp = (unsigned)((it - 1) / H3_STAGES) & 1u;
                float sc[64];
                uint32_t pn[8][4];
                h3_mbar_wait(H3_BAR_FK(s), par);
                h3_mbar_wait(H3_BAR_FV(sp), parp);
                if (PINGPONG) h3_turn_wait(my_turn);
                h3_wgmma_fence();
                h3_issue_qk<64, H3_HALF_Q, H3_HALF_KV>(sc, qa, sK + (uint32_t)s * H3_TILE_KV);
                h3_wgmma_commit();
                h3_issue_pv<8, H3_HALF_KV>(o, pa, sV + (uint32_t)sp * H3_TILE_KV);
                h3_wgmma_commit();
                if (PINGPONG) h3_turn_pass(their_turn);
                h3_wgmma_wait<1>();
                h3_fence_acc(sc);
                h3_mbar_arrive(H3_BAR_EK(s));
                float aA, aB;
                h3_softmax(sc, (ntiles - 1 - it) * H3_BN, mk, st, aA, aB, pn);
                h3_wgmma_wait<0>();
                h3_fence_acc(o);
                h3_keep_p(pa);   /* the PV product read pa until here */
                h3_mbar_arrive(H3_BAR_EV(sp));
                scb_fa2_scale_o(o, aA, aB);
#pragma unroll
                for (int kk = 0; kk < 8; kk++)
#pragma unroll
                    for (int i = 0; i < 4; i++) pa[kk][i] = pn[kk][i];
            }
            const int sl = (ntiles - 1) % H3_STAGES;
            h3_mbar_wait(H3_BAR_FV(sl), (unsigned)((ntiles - 1) / H3_STAGES) & 1u);
            if (PINGPONG) h3_turn_wait(my_turn);
            h3_wgmma_fence();
            h3_issue_pv<8, H3_HALF_KV>(o, pa, sV + (uint32_t)sl * H3_TILE_KV);
            h3_wgmma_commit();
            if (PINGPONG && cw == 0) h3_turn_pass(their_turn);   /* the last pass is 0's */
            h3_wgmma_wait<0>();
            h3_fence_acc(o);
            h3_mbar_arrive(H3_BAR_EV(sl));
        }
        scb_fa2_store<16>(o, st, p.out, p.lse, rowA, rowB, p.Tq, p.Hq, h, tq);
    }
#undef H3_BAR_FK
#undef H3_BAR_FV
#undef H3_BAR_EK
#undef H3_BAR_EV
#endif
}

/* ---- host side ---------------------------------------------------------------------------- */

/* 1 when this binary holds sm_90a machine code for the kernel (cached). */
static int scb_h3_built_(void)
{
    static int built = -1;
    if (built < 0) {
        struct cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, scb_h3_fwd_kernel<false, 2, false>) == cudaSuccess)
            built = fa.binaryVersion == 90;
        else {
            (void)cudaGetLastError();
            built = 0;
        }
    }
    return built;
}

int scb_attn_sm90_usable_(struct scb_cuda_ctx *cc)
{
    return cc && cc->cc_major == 9 && scb_h3_built_();
}

extern "C" int scb_attn_prefill_sm90_cuda(struct scb_cuda_ctx *cc,
                                          const struct scb_attn_cuda_args *a, struct scb_ctx *err)
{
    static scb_sm90_encode_fn enc = NULL;
    int rc = SCB_OK;
    struct scb_h3_params p;
    CUtensorMap mq, mk, mv;
    size_t ts, hs;
    int Tk1;
    SCB_CHECK_ALIVE();
    SCB_TRY(scb_attn_cuda_check_(a, "sm90 prefill", err));
    if (a->D != H3_D) {
        rc = scb_err(err, SCB_E_UNSUPPORTED,
                     "sm90 prefill attention: head dim D=%d (this kernel takes D=128 only)", a->D);
        goto out;
    }
    if (cc->cc_major != 9) {
        rc = scb_err(err, SCB_E_UNSUPPORTED,
                     "sm90 prefill attention: needs compute capability 9.0 (this device is %d.%d)",
                     cc->cc_major, cc->cc_minor);
        goto out;
    }
    if (!scb_h3_built_()) {
        rc = scb_err(err, SCB_E_UNSUPPORTED,
                     "sm90 prefill attention: not compiled for sm_90a (build with sm_arch=90)");
        goto out;
    }
    SCB_TRY(scb_sm90_encoder(cc, &enc, H3_WHO, err));
    ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    p.out = a->out;
    p.lse = a->lse;
    p.Tq = a->Tq;
    p.Tk = a->Tk;
    p.Hq = a->Hq;
    p.G = a->Hq / a->Hkv;
    p.kv_swap = hs < ts;
    p.scale_log2 = (a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D)) * 1.4426950408889634f;
    /* Q (Tq, Hq, D) as (D, Hq, Tq); K/V with the smaller stride in the middle dimension */
    SCB_TRY(scb_sm90_map(enc, &mq, a->q, (uint64_t)a->Hq, (uint64_t)a->Tq, (uint64_t)a->D,
                        (uint64_t)a->Hq * a->D, 1, H3_BM, H3_WHO, "Q", err));
    if (a->Tk == 0) {
        mk = mq;   /* never read: every row sees no key */
        mv = mq;
    } else {
        Tk1 = a->Tk;
        if (p.kv_swap) {
            SCB_TRY(scb_sm90_map(enc, &mk, a->k, (uint64_t)a->Hkv, (uint64_t)Tk1, hs, ts, 1, H3_BN,
                                H3_WHO, "K", err));
            SCB_TRY(scb_sm90_map(enc, &mv, a->v, (uint64_t)a->Hkv, (uint64_t)Tk1, hs, ts, 1, H3_BN,
                                H3_WHO, "V", err));
        } else {
            SCB_TRY(scb_sm90_map(enc, &mk, a->k, (uint64_t)Tk1, (uint64_t)a->Hkv, ts, hs, H3_BN, 1,
                                H3_WHO, "K", err));
            SCB_TRY(scb_sm90_map(enc, &mv, a->v, (uint64_t)Tk1, (uint64_t)a->Hkv, ts, hs, H3_BN, 1,
                                H3_WHO, "V", err));
        }
    }
    {
        dim3 grid((unsigned)a->Hq, (unsigned)((a->Tq + H3_BM - 1) / H3_BM));
        /* schedule and ring depth: ping-pong with 3 stages unless the measurement knobs
         * SCB_ATTN_SM90_SCHEDULE=serial|overlap|pingpong, SCB_ATTN_SM90_STAGES=2|3 say
         * otherwise (docs/performance.md has the comparison) */
        const char *v = getenv("SCB_ATTN_SM90_SCHEDULE"), *st = getenv("SCB_ATTN_SM90_STAGES");
        const int pp = !v || !*v || !strcmp(v, "pingpong");
        const int ov = pp || !strcmp(v, "overlap"), three = !st || !*st || strcmp(st, "2");
        if ((v && *v && !ov && strcmp(v, "serial")) ||
            (st && *st && strcmp(st, "2") && strcmp(st, "3"))) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_ATTN_SM90_SCHEDULE='%s' / SCB_ATTN_SM90_STAGES="
                         "'%s': expected serial|overlap|pingpong and 2|3", v ? v : "",
                         st ? st : "");
            goto out;
        }
        void (*kern)(const CUtensorMap, const CUtensorMap, const CUtensorMap,
                     const struct scb_h3_params) =
            pp ? (three ? scb_h3_fwd_kernel<true, 3, true> : scb_h3_fwd_kernel<true, 2, true>)
            : ov ? (three ? scb_h3_fwd_kernel<true, 3, false> : scb_h3_fwd_kernel<true, 2, false>)
               : (three ? scb_h3_fwd_kernel<false, 3, false> : scb_h3_fwd_kernel<false, 2, false>);
        const size_t smem = three ? H3_SMEM_BYTES(3) : H3_SMEM_BYTES(2);
        SCB_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          (int)smem));
        kern<<<grid, H3_THREADS, smem, cc->stream>>>(mq, mk, mv, p);
        SCB_LAUNCH_CHECK("scb_h3_fwd_kernel");
    }
out:
    return rc;
}
