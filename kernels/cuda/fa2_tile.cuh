/* fa2_tile.cuh — private to the prefill attention kernels: the pieces of the FlashAttention-2
 * tile loop that the dense kernel (attn_prefill.cu) and the sparse kernel (sparse_prefill.cu)
 * share, and the online softmax and the output store that the Hopper kernels
 * (attn_prefill_sm90.cu, sparse_prefill_sm90.cu) share with them.
 *
 * scb_fa2_block is the whole block of the mma.sync kernels; the dense and the sparse kernel
 * differ only in the callables it takes (which key each slot holds, and the mask).
 * Every helper is a template over the tile sizes (constexpr in every caller) and is inlined,
 * so each kernel compiles to what it was when it held its own copy: no run-time branch enters
 * the inner loop. Fragment layout (the m16n8 accumulator of mma.sync, which wgmma's m64nN
 * fragment repeats per 8 columns): a thread holds two rows, A = g8 and B = g8 + 8 of its
 * warp's 16, and for n-tile nt the flat elements [nt*4 + 0, +1] (row A, columns 2tq, 2tq+1)
 * and [nt*4 + 2, +3] (row B). Scores are in the log2 domain (scaled by scale * log2 e). */
#ifndef SCB_KERNELS_CUDA_FA2_TILE_CUH
#define SCB_KERNELS_CUDA_FA2_TILE_CUH

#include <math.h>
#include <stdint.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"

/* Online-softmax state of the two rows a thread holds: running max (log2 domain) and this
 * thread's part of the running sum. */
struct scb_fa2_rows {
    float mA, mB, lA, lB;
};

/* Q tile (BM, D) of head h from rows m0.. into shared Qs (BM, LD) by cp.async, zero rows past
 * Tq; q is (Tq, Hq, D). NTHR threads, tid of them. */
template <int D, int BM, int NTHR, int LD>
static __device__ __forceinline__ void scb_fa2_load_q(uint16_t *Qs, const uint16_t *q, int m0,
                                                      int Tq, int Hq, int h, int tid)
{
    constexpr int CH = D / 8;   /* 16-byte chunks per row */
    for (int c = tid; c < BM * CH; c += NTHR) {
        int r = c / CH, col = (c % CH) * 8, i = m0 + r;
        bool ok = i < Tq;
        const uint16_t *src = ok ? q + ((long long)i * Hq + h) * D + col : q;
        scb_cp_async16(Qs + r * LD + col, src, ok);
    }
}

/* The warp's Q rows r0, r0 + 8 of shared Qs (., LD) as m16n8k16 A fragments per k-step. */
template <int KD, int LD>
static __device__ __forceinline__ void scb_fa2_q_frags(uint32_t (&qf)[KD][4], const uint16_t *Qs,
                                                       int r0, int tq)
{
#pragma unroll
    for (int kk = 0; kk < KD; kk++) {
        const int c = kk * 16 + tq * 2;
        qf[kk][0] = *(const uint32_t *)(Qs + r0 * LD + c);
        qf[kk][1] = *(const uint32_t *)(Qs + (r0 + 8) * LD + c);
        qf[kk][2] = *(const uint32_t *)(Qs + r0 * LD + c + 8);
        qf[kk][3] = *(const uint32_t *)(Qs + (r0 + 8) * LD + c + 8);
    }
}

/* s (NT n-tiles of 8 keys, flat) = Q K^T of the warp's 16 rows against the staged key tile
 * ks (NT*8, LD). */
template <int NT, int KD, int LD>
static __device__ __forceinline__ void scb_fa2_qk(float (&s)[NT * 4], const uint32_t (&qf)[KD][4],
                                                  const uint16_t *ks, int lane)
{
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        float *sn = s + nt * 4;
        sn[0] = sn[1] = sn[2] = sn[3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < KD; kk += 2) {
            uint32_t b[4];
            const int mi = lane >> 3, r = lane & 7;
            scb_ldmatrix_x4(b, ks + (nt * 8 + r) * LD + kk * 16 + mi * 8);
            scb_mma_bf16(sn, qf[kk], b[0], b[1]);
            scb_mma_bf16(sn, qf[kk + 1], b[2], b[3]);
        }
    }
}

/* Fold n-tile nt of the score fragment s into this thread's row maxima tmA, tmB. */
template <int N>
static __device__ __forceinline__ void scb_fa2_tile_max(const float (&s)[N], int nt, float &tmA,
                                                        float &tmB)
{
    tmA = fmaxf(tmA, fmaxf(s[nt * 4 + 0], s[nt * 4 + 1]));
    tmB = fmaxf(tmB, fmaxf(s[nt * 4 + 2], s[nt * 4 + 3]));
}

/* Online softmax of a scaled, masked score fragment s (NT n-tiles; -inf = masked): update the
 * row state st, leave exp2(s - new max) in s and return the factors aA, aB that rescale the
 * accumulator (scb_fa2_scale_o). A row with nothing visible yet keeps max -inf and sum 0. */
/* The same with this thread's maxima tmA, tmB of rows A, B over the tile already taken (by the
 * caller's masking loop, scb_fa2_tile_max per n-tile). */
template <int NT>
static __device__ __forceinline__ void scb_fa2_softmax_m(float (&s)[NT * 4], float tmA, float tmB,
                                                         struct scb_fa2_rows &st, float &aA, float &aB)
{
    tmA = fmaxf(tmA, __shfl_xor_sync(0xffffffffu, tmA, 1));
    tmA = fmaxf(tmA, __shfl_xor_sync(0xffffffffu, tmA, 2));
    tmB = fmaxf(tmB, __shfl_xor_sync(0xffffffffu, tmB, 1));
    tmB = fmaxf(tmB, __shfl_xor_sync(0xffffffffu, tmB, 2));
    const float nmA = fmaxf(st.mA, tmA), nmB = fmaxf(st.mB, tmB);
    const float uA = nmA == -INFINITY ? 0.f : nmA, uB = nmB == -INFINITY ? 0.f : nmB;
    aA = scb_exp2(st.mA - uA);
    aB = scb_exp2(st.mB - uB);
    st.mA = nmA;
    st.mB = nmB;
    float sA = 0.f, sB = 0.f;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        s[nt * 4 + 0] = scb_exp2(s[nt * 4 + 0] - uA);
        s[nt * 4 + 1] = scb_exp2(s[nt * 4 + 1] - uA);
        s[nt * 4 + 2] = scb_exp2(s[nt * 4 + 2] - uB);
        s[nt * 4 + 3] = scb_exp2(s[nt * 4 + 3] - uB);
        sA += s[nt * 4 + 0] + s[nt * 4 + 1];
        sB += s[nt * 4 + 2] + s[nt * 4 + 3];
    }
    st.lA = st.lA * aA + sA;
    st.lB = st.lB * aB + sB;
}

template <int NT>
static __device__ __forceinline__ void scb_fa2_softmax(float (&s)[NT * 4], struct scb_fa2_rows &st,
                                                       float &aA, float &aB)
{
    float tmA = -INFINITY, tmB = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < NT; nt++) scb_fa2_tile_max(s, nt, tmA, tmB);
    scb_fa2_softmax_m<NT>(s, tmA, tmB, st, aA, aB);
}

/* Accumulator o (flat fragment, rows A and B) times aA (row A), aB (row B). */
template <int N>
static __device__ __forceinline__ void scb_fa2_scale_o(float (&o)[N], float aA, float aB)
{
#pragma unroll
    for (int d = 0; d < N / 4; d++) {
        o[d * 4 + 0] *= aA;
        o[d * 4 + 1] *= aA;
        o[d * 4 + 2] *= aB;
        o[d * 4 + 3] *= aB;
    }
}

/* P (NT n-tiles of probabilities) rounded to bf16 as m16n8k16 A fragments: k-step kk (16 keys)
 * is n-tiles 2kk, 2kk + 1 (the accumulator layout reused as the A operand). */
template <int NT>
static __device__ __forceinline__ void scb_fa2_pack_p(const float (&s)[NT * 4],
                                                      uint32_t (&pa)[NT / 2][4])
{
#pragma unroll
    for (int kk = 0; kk < NT / 2; kk++) {
        pa[kk][0] = scb_pack_bf2(s[(2 * kk) * 4 + 0], s[(2 * kk) * 4 + 1]);
        pa[kk][1] = scb_pack_bf2(s[(2 * kk) * 4 + 2], s[(2 * kk) * 4 + 3]);
        pa[kk][2] = scb_pack_bf2(s[(2 * kk + 1) * 4 + 0], s[(2 * kk + 1) * 4 + 1]);
        pa[kk][3] = scb_pack_bf2(s[(2 * kk + 1) * 4 + 2], s[(2 * kk + 1) * 4 + 3]);
    }
}

/* o (DT n-tiles of 8 output dims, flat) += P V: P from the probabilities s of BN keys, the
 * staged value tile vs (BN, LD) read transposed by ldmatrix. */
template <int BN, int DT, int LD>
static __device__ __forceinline__ void scb_fa2_pv(float (&o)[DT * 4], const float (&s)[BN / 8 * 4],
                                                  const uint16_t *vs, int lane)
{
    uint32_t pa[BN / 16][4];
    scb_fa2_pack_p<BN / 8>(s, pa);
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
#pragma unroll
        for (int dt = 0; dt < DT; dt += 2) {
            uint32_t b[4];
            const int mi = lane >> 3, r = lane & 7;
            scb_ldmatrix_x4_trans(b, vs + (kk * 16 + (mi & 1) * 8 + r) * LD + (dt + (mi >> 1)) * 8);
            scb_mma_bf16(o + dt * 4, pa[kk], b[0], b[1]);
            scb_mma_bf16(o + (dt + 1) * 4, pa[kk], b[2], b[3]);
        }
    }
}

/* One block's whole FlashAttention-2 pass (NWARPS warps, BM = 16 * NWARPS query rows from m0 of
 * query head h, BN-key tiles; head dim D; shared rows padded to D + PAD bf16): Q staged once,
 * K/V tiles 0..ntiles-1 staged by cp.async two deep into the dynamic shared memory
 * ((BM + 4 BN) (D + PAD) bf16), S = Q K^T, mask, online softmax, O += P V on the tensor cores.
 * What differs between the dense and the sparse kernel comes in as three callables:
 *   key_of(t, r, j) -> bool: j = the key index of slot r of tile t; false: the slot is empty
 *     (reads as zero);
 *   staged(stage, r, j): once per slot as it is staged (the sparse kernel records its keys);
 *   mask(s, t, stage, rowA, rowB, tmA, tmB): scale s (NT*4 flat, log2 domain), set what the
 *     rows may not see to -inf and fold each n-tile into the row maxima (scb_fa2_tile_max).
 * On return o (D/8 n-tiles, flat) and st hold the unnormalised rows for scb_fa2_store. q is
 * (Tq, Hq, D); k, v point at the KV head's first token (token stride kv_tok elements). */
template <int D, int BM, int BN, int NWARPS, int PAD, class KeyFn, class StagedFn, class MaskFn>
static __device__ __forceinline__ void scb_fa2_block(const uint16_t *q, const uint16_t *kbase,
                                                     const uint16_t *vbase, const uint16_t *k0,
                                                     const uint16_t *v0, long long kv_tok, int Tq,
                                                     int Hq, int h, int m0, int ntiles,
                                                     KeyFn key_of, StagedFn staged, MaskFn mask,
                                                     float (&o)[D / 8 * 4], struct scb_fa2_rows &st)
{
    constexpr int LD = D + PAD;                    /* shared row length in bf16 */
    constexpr int KD = D / 16;                     /* k-steps of Q K^T */
    constexpr int NT = BN / 8;                     /* n-tiles of S */
    constexpr int DT = D / 8;                      /* n-tiles of O */
    constexpr int CH = D / 8;                      /* 16-byte chunks per row */
    constexpr int NTHR = NWARPS * 32;
    static_assert(BM == 16 * NWARPS, "one warp per 16 query rows");
    extern __shared__ __align__(16) uint16_t smem[];
    uint16_t *Qs = smem;                           /* (BM, LD) */
    uint16_t *Ks = Qs + BM * LD;                   /* (2, BN, LD) */
    uint16_t *Vs = Ks + 2 * BN * LD;               /* (2, BN, LD) */
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int g8 = lane >> 2, tq = lane & 3;

    scb_fa2_load_q<D, BM, NTHR, LD>(Qs, q, m0, Tq, Hq, h, tid);
    auto load_kv = [&](int t, int stage) {
        uint16_t *ks = Ks + stage * BN * LD, *vs = Vs + stage * BN * LD;
        for (int c = tid; c < BN * CH; c += NTHR) {
            int r = c / CH, col = (c % CH) * 8;
            int j;
            bool ok = key_of(t, r, j);
            long long o = ok ? (long long)j * kv_tok + col : 0;
            scb_cp_async16(ks + r * LD + col, ok ? kbase + o : k0, ok);
            scb_cp_async16(vs + r * LD + col, ok ? vbase + o : v0, ok);
            if (col == 0) staged(stage, r, j);
        }
    };
    if (ntiles > 0) load_kv(0, 0);
    scb_cp_async_commit();
    scb_cp_async_wait<0>();
    __syncthreads();

    uint32_t qf[KD][4];                            /* Q as A fragments, per k-step */
    scb_fa2_q_frags<KD, LD>(qf, Qs, warp * 16 + g8, tq);

#pragma unroll
    for (int d = 0; d < DT * 4; d++) o[d] = 0.f;
    st.mA = st.mB = -INFINITY;
    st.lA = st.lB = 0.f;
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
        const uint16_t *ks = Ks + stage * BN * LD, *vs = Vs + stage * BN * LD;

        float s[NT * 4];                           /* (NT, 4) score fragment */
        scb_fa2_qk<NT, KD, LD>(s, qf, ks, lane);
        float tmA = -INFINITY, tmB = -INFINITY;
        mask(s, t, stage, rowA, rowB, tmA, tmB);
        float aA, aB;
        scb_fa2_softmax_m<NT>(s, tmA, tmB, st, aA, aB);
        scb_fa2_scale_o(o, aA, aB);
        scb_fa2_pv<BN, DT, LD>(o, s, vs, lane);
        __syncthreads();   /* the next iteration's cp.async overwrites this stage */
    }
}

/* Finish two rows: sum the row sums over the quad, normalise o (DT n-tiles = D / 8 dims) and
 * store rows rowA, rowB (< Tq) of head h into out (Tq, Hq, D) as bf16; with lse (Tq, Hq) not
 * NULL also the natural-log log-sum-exp (-inf for a row that saw no key); LSE = false: no
 * log-sum-exp (lse unused). Rows A and B are written out one after the other on purpose: as a
 * two-iteration loop the sm90 kernels compile to 8 more instructions (tools/cuda_regs.sh). */
template <int DT, bool LSE = true>
static __device__ __forceinline__ void scb_fa2_store(const float (&o)[DT * 4],
                                                     const struct scb_fa2_rows &st, uint16_t *out,
                                                     float *lse, int rowA, int rowB, int Tq, int Hq,
                                                     int h, int tq)
{
    constexpr int D = DT * 8;
    float lA = st.lA, lB = st.lB;
    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    const float iA = lA > 0.f ? 1.f / lA : 0.f, iB = lB > 0.f ? 1.f / lB : 0.f;
    if (rowA < Tq) {
        uint16_t *dst = out + ((long long)rowA * Hq + h) * D + tq * 2;
#pragma unroll
        for (int d = 0; d < DT; d++)
            *(uint32_t *)(dst + d * 8) = scb_pack_bf2(o[d * 4 + 0] * iA, o[d * 4 + 1] * iA);
        if (LSE && lse && tq == 0)
            lse[(long long)rowA * Hq + h] =
                lA > 0.f ? (st.mA + log2f(lA)) * 0.69314718055994531f : -INFINITY;
    }
    if (rowB < Tq) {
        uint16_t *dst = out + ((long long)rowB * Hq + h) * D + tq * 2;
#pragma unroll
        for (int d = 0; d < DT; d++)
            *(uint32_t *)(dst + d * 8) = scb_pack_bf2(o[d * 4 + 2] * iB, o[d * 4 + 3] * iB);
        if (LSE && lse && tq == 0)
            lse[(long long)rowB * Hq + h] =
                lB > 0.f ? (st.mB + log2f(lB)) * 0.69314718055994531f : -INFINITY;
    }
}

#endif
