/* sparse_prefill_sm90.cu — the sparse prefill attention of A-shape, Tri-shape and MInference
 * (kernels/sparse_prefill_cuda.h, scb_cuda_sparse_attn) for Hopper (sm_90a), D = 128: warpgroup
 * MMA (wgmma.mma_async) fed by the bulk tensor copy engine (TMA) and, for MInference's gathered
 * vertical columns, by cp.async gathers into the same swizzled shared-memory layout.
 *
 * One block of three warpgroups owns two consecutive 64-row blocks of one query head; the
 * 64-row block is exactly the unit of the sparse plan (sparse_plan.cuh, the same enumeration as
 * the mma.sync kernel: STREAM heads walk sink then window tiles of 64 keys, LIST heads their
 * block_offset tiles then 64-column chunks of column_index). Warpgroup 0 is the producer: warps
 * 0-1 feed consumer 0 (first row block), warps 2-3 consumer 1, each pair walking its row
 * block's plan with its own ring of 2 or 3 stages. A tile with a contiguous start (sink,
 * window or block tile, any start row) is two TMA box loads of 64 rows x 64 columns for K and
 * two for V (128-byte swizzle; rows past Tk read as zero); a column chunk is gathered by the 64
 * threads with 16-byte cp.async into the same swizzled layout (empty slots zero-filled), waited
 * for, made visible to the async proxy (fence.proxy.async) and then signalled. The key index of
 * every slot is written to shared memory next to the tile. Each stage has one "full" mbarrier
 * (64 producer arrivals + the TMA transaction bytes) and one "empty" mbarrier (128 consumer
 * arrivals). Warpgroups 1 and 2 are the consumers, one row block each: S = Q K^T is m64n64k16
 * wgmma with both operands in shared memory (K-major), online softmax in registers (log2
 * domain, fp32), the exact per-element mask (sp_allowed) on tiles that are not wholly visible
 * (sp_tile_full), P rounded to bf16 in registers and O += P V as m64n128k16 wgmma with A from
 * registers and V read N-major. Two schedules (template): serial (S, softmax, PV) and overlap
 * (S(t) issued together with PV(t-1), FlashAttention-3's intra-warpgroup pipelining); the two
 * consumers run independently, so one's softmax runs under the other's products. setmaxnreg:
 * producer 56, consumers 224 registers per thread. Blocks are issued heaviest (last) row
 * blocks first, all heads of a row-block pair together (heads of one KV head share L2).
 * The computed (row, key) pairs are counted exactly like the mma.sync kernel's (density). */
#include "kernels/sparse_prefill_cuda.h"

#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes from the runtime */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fa2_tile.cuh"
#include "kernels/cuda/sm90_common.cuh"
#include "kernels/cuda/sparse_plan.cuh"

#define S9_D 128
#define S9_THREADS 384                    /* producer + 2 consumer warpgroups */
#define S9_HALF (64 * 128)                 /* bytes of one 64-column half of a 64-row tile */
#define S9_TILE (2 * S9_HALF)              /* one 64 x 128 bf16 tile (Q, a K or a V tile) */
#define S9_OFF_Q(C) ((C) * S9_TILE)
#define S9_OFF_K(C, S) (2 * S9_TILE + ((C) * ST + (S)) * S9_TILE)
#define S9_OFF_V(NS, C, S) (2 * S9_TILE + 2 * (NS) * S9_TILE + ((C) * (NS) + (S)) * S9_TILE)
#define S9_OFF_KEYS(NS) (2 * S9_TILE + 4 * (NS) * S9_TILE)
#define S9_OFF_FLAGS(NS) (S9_OFF_KEYS(NS) + 2 * (NS) * 64 * 4)
#define S9_OFF_BAR(NS) (S9_OFF_FLAGS(NS) + 2 * (NS) * 4)
#define S9_WHO "sm90 sparse attention"
#define S9_SMEM_BYTES(NS) (S9_OFF_BAR(NS) + 16 + 16 * 2 * (NS) + 1024) /* + slack to align to 1 KB */

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* Scale (log2 domain) and mask the S fragment of plan tile `it` (slot keys in keys[64]; the
 * exact rule unless the whole tile is visible) and count the kept pairs. */
static __device__ __forceinline__ void s9_mask(float (&sc)[32], bool full, const int *keys, const sp_plan &pl,
                                               int rowA, int rowB, int tq, int off, const sp_params &p,
                                               unsigned &cnt)
{
    if (full) {
        cnt += (rowA < p.Tq ? 16u : 0u) + (rowB < p.Tq ? 16u : 0u);
#pragma unroll
        for (int e = 0; e < 32; e++) sc[e] *= p.scale_log2;
    } else {
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int j = keys[nt * 8 + tq * 2 + (e & 1)];
                const int i = (e < 2) ? rowA : rowB;
                const bool ok = sp_allowed(pl, i, j, off, p.dense_from);
                cnt += (ok && i < p.Tq) ? 1u : 0u;
                sc[nt * 4 + e] = ok ? sc[nt * 4 + e] * p.scale_log2 : -INFINITY;
            }
        }
    }
}
/* Online softmax of the scaled, masked fragment: update the row state, return the O rescale
 * factors and P rounded to bf16 as the A fragments of the P V product. */
static __device__ __forceinline__ void s9_softmax(float (&sc)[32], struct scb_fa2_rows &st, float &aA,
                                                  float &aB, uint32_t (&pa)[4][4])
{
    scb_fa2_softmax<8>(sc, st, aA, aB);
    scb_fa2_pack_p<8>(sc, pa);
}
/* 16-byte cp.async to a shared address, zero-filled when !ok. */
static __device__ __forceinline__ void s9_cp16(uint32_t dst, const void *src, bool ok)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(ok ? 16 : 0)
                 : "memory");
}
/* K and V of the 64-key tile starting at key j (KV head kvh) into the stage at kt, vt: the four
 * TMA box loads (two 64-column halves each) that complete on mbarrier full (one thread). */
static __device__ __forceinline__ void s9_tile_tma(uint32_t kt, uint32_t vt, const CUtensorMap *tm_k,
                                                   const CUtensorMap *tm_v, uint32_t full, int j, int kvh,
                                                   int kv_swap)
{
    const int c1 = kv_swap ? kvh : j, c2 = kv_swap ? j : kvh;
    h3_mbar_expect_tx(full, 2 * S9_TILE);
    h3_tma3(kt, tm_k, full, 0, c1, c2);
    h3_tma3(kt + S9_HALF, tm_k, full, 64, c1, c2);
    h3_tma3(vt, tm_v, full, 0, c1, c2);
    h3_tma3(vt + S9_HALF, tm_v, full, 64, c1, c2);
}
/* K and V rows of the slot keys ks[64] (-1: empty, zero-filled) gathered by the 64 producer
 * threads (pt) with 16-byte cp.async into the swizzled stage at kt, vt; waited for, made
 * visible to the async proxy, then every thread arrives on mbarrier full. */
static __device__ __forceinline__ void s9_tile_gather(uint32_t kt, uint32_t vt, const int *ks,
                                                      const uint16_t *kbase, const uint16_t *vbase,
                                                      long long kv_tok, int pt, uint32_t full)
{
#pragma unroll 4
    for (int e = 0; e < 32; e++) {
        const int idx = e * 64 + pt, kv = idx >> 10, rem = idx & 1023;
        const int r = rem >> 4, c16 = rem & 15, half = c16 >> 3, cc = c16 & 7;
        const int j = ks[r];
        const bool ok = j >= 0;
        const uint32_t dst = (kv ? vt : kt) + (uint32_t)half * S9_HALF + (uint32_t)r * 128u +
                             (uint32_t)((cc ^ (r & 7)) << 4);
        const uint16_t *src = (kv ? vbase : kbase) + (ok ? (long long)j * kv_tok + half * 64 + cc * 8 : 0);
        s9_cp16(dst, src, ok);
    }
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    h3_mbar_arrive(full);
}
/* The query head h, row block mblk and tile plan of consumer c (or of the producer half that
 * feeds it): mode 0 takes row block 2 pair + c of head hx, modes 1 and 2 head 2 hx + c of row
 * block pair; ntiles = 0 past the last row block. */
static __device__ __forceinline__ void s9_role(const sp_params &p, int mode, int hx, int pair, int c, int &h,
                                               int &mblk, sp_plan &pl, int &ntiles)
{
    h = mode ? 2 * hx + c : hx;
    mblk = mode ? pair : 2 * pair + c;
    ntiles = 0;
    if (mblk < p.nblk) {
        sp_plan_init(p, h, mblk, pl);
        ntiles = pl.ntiles;
    }
}
/* First key of a contiguous plan tile (STREAM tiles, LIST block tiles). */
static __device__ __forceinline__ int s9_tile_start(const sp_plan &t, int tile)
{
    if (t.kind == SCB_SPARSE_STREAM)
        return tile < t.nsink ? tile * SP_BN : t.w_lo + (tile - t.nsink) * SP_BN;
    return t.bo[tile];
}
/* The merged walk of two LIST plans of one row block (mode 2): their block tiles in ascending
 * start order, a start present in both lists once (fl = 3), then A's column chunks (fl = 1),
 * then B's (fl = 2). Returns false when done; start = -1 marks a column chunk (cip, cn). */
struct s9_merge { int ia, ib, ca, cb; };
static __device__ __forceinline__ bool s9_merge_next(const sp_plan &A, const sp_plan &B, s9_merge &m, int &start,
                                                     const int32_t *&cip, int &cn, int &fl)
{
    if (m.ia < A.nbo || m.ib < B.nbo) {
        const int a = m.ia < A.nbo ? A.bo[m.ia] : 0x7fffffff, b = m.ib < B.nbo ? B.bo[m.ib] : 0x7fffffff;
        start = min(a, b);
        fl = (a == start ? 1 : 0) | (b == start ? 2 : 0);
        m.ia += a == start ? 1 : 0;
        m.ib += b == start ? 1 : 0;
        cip = NULL;
        cn = 0;
        return true;
    }
    start = -1;
    if (m.ca * SP_BN < A.ncol) {
        fl = 1;
        cip = A.ci + m.ca * SP_BN;
        cn = min(SP_BN, A.ncol - m.ca * SP_BN);
        m.ca++;
        return true;
    }
    if (m.cb * SP_BN < B.ncol) {
        fl = 2;
        cip = B.ci + m.cb * SP_BN;
        cn = min(SP_BN, B.ncol - m.cb * SP_BN);
        m.cb++;
        return true;
    }
    return false;
}
#endif

template <bool OVERLAP, int ST>
__global__ void __launch_bounds__(S9_THREADS, 1)
scb_sparse_sm90_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                       const __grid_constant__ CUtensorMap tm_v, const sp_params p, int kv_swap, int order,
                       int mode)
{
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
    extern __shared__ uint8_t s9_smem[];
    uint8_t *gbase = s9_smem + ((1024u - ((uint32_t)__cvta_generic_to_shared(s9_smem) & 1023u)) & 1023u);
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(gbase);   /* 1 KB aligned */
    const uint32_t bar = base + S9_OFF_BAR(ST);
    /* barriers: Q of consumer c, then per (c, stage) full and empty */
#define S9_BARQ(c) (bar + 8u * (c))
#define S9_FULL(c, s) (bar + 16u + 16u * ((c) * ST + (s)))
#define S9_EMPTY(c, s) (bar + 24u + 16u * ((c) * ST + (s)))

    const int tid = threadIdx.x, wgi = tid >> 7;
    /* order 0: grid (heads, pairs), all heads of a row-block pair together; 1: grid (pairs,
     * heads), the row blocks of one head together; heaviest (last) row blocks first either way.
     * mode 0: the two consumers take row blocks 2 pair, 2 pair + 1 of head hx, each with its
     * own K/V ring; modes 1, 2 (G even): they take heads 2 hx, 2 hx + 1 (one KV head) of row
     * block `pair`. Mode 1 (STREAM heads, one pattern for all heads): their tile plans are
     * identical and both read one K/V ring that producer warps 0-1 fill (empty = both
     * consumers' 256 arrivals). Mode 2 (per-head patterns): when both heads are LIST heads
     * ("merged"), warps 0-1 fill one ring with the merged walk of both plans (s9_merge_next; a
     * tile start in both lists is loaded once), each slot flagged with its readers; a consumer
     * skips the slots not flagged for it (still waiting and arriving, 256 arrivals); else each
     * consumer has its own ring and plan as in mode 0. */
    const int hx = order ? blockIdx.y : blockIdx.x;
    const int pair = order ? gridDim.x - 1 - blockIdx.x : gridDim.y - 1 - blockIdx.y;
    const int off = p.Tk - p.Tq;
    const bool share = mode == 1;
    bool merged = false;
    sp_plan plA, plB;
    if (mode == 2 && pair < p.nblk) {
        sp_plan_init(p, 2 * hx, pair, plA);
        sp_plan_init(p, 2 * hx + 1, pair, plB);
        merged = plA.kind != SCB_SPARSE_STREAM && plB.kind != SCB_SPARSE_STREAM;
    }
    int *flags = (int *)(gbase + S9_OFF_FLAGS(ST));                   /* (2, ST) slot readers */

    if (tid == 0) {
#pragma unroll
        for (int c = 0; c < 2; c++) {
            h3_mbar_init(S9_BARQ(c), 1);
#pragma unroll
            for (int s = 0; s < ST; s++) {
                h3_mbar_init(S9_FULL(c, s), 64);     /* every thread of the producer half arrives */
                h3_mbar_init(S9_EMPTY(c, s), share || merged ? 256 : 128);   /* every consumer thread that reads */
            }
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();

    if (wgi == 0) {
        /* ---- producer warpgroup: warps 0-1 feed consumer 0, warps 2-3 consumer 1 ---- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 56;\n" ::: "memory");
        const int c = tid >> 6, pt = tid & 63;
        int h, mblk, ntiles;
        sp_plan pl;
        s9_role(p, mode, hx, pair, c, h, mblk, pl, ntiles);
        const int kvh = h / p.G, m0 = mblk * SP_BM;
        const uint32_t sQ = base + S9_OFF_Q(c);
        const uint16_t *kbase = p.k + (long long)kvh * p.kv_head;
        const uint16_t *vbase = p.v + (long long)kvh * p.kv_head;
        if (pt == 0 && ntiles > 0) {
            h3_mbar_expect_tx(S9_BARQ(c), 2 * S9_HALF);
            h3_tma3(sQ, &tm_q, S9_BARQ(c), 0, h, m0);
            h3_tma3(sQ + S9_HALF, &tm_q, S9_BARQ(c), 64, h, m0);
        }
        if (merged && c == 0) {
            /* one ring (0) for both consumers: the merged walk of the two heads' lists */
            s9_merge mg = {0, 0, 0, 0};
            int start, cn, fl;
            const int32_t *cip;
            const int pf = m0 + off;
            for (int it = 0; s9_merge_next(plA, plB, mg, start, cip, cn, fl); it++) {
                const int s = it % ST;
                if (it >= ST) h3_mbar_wait(S9_EMPTY(0, s), (unsigned)((it / ST) - 1) & 1u);
                int *ks = (int *)(gbase + S9_OFF_KEYS(ST)) + s * 64;
                const uint32_t kt = base + S9_OFF_K(0, s), vt = base + S9_OFF_V(ST, 0, s);
                ks[pt] = start >= 0 ? (start + pt < p.Tk ? start + pt : -1) : (pt < cn ? cip[pt] : -1);
                if (pt == 0) flags[s] = fl | ((start >= 0 ? start + SP_BN - 1 <= pf : cn == SP_BN) ? 4 : 0);
                if (start >= 0) {
                    if (pt == 0)
                        s9_tile_tma(kt, vt, &tm_k, &tm_v, S9_FULL(0, s), start, kvh, kv_swap);
                    else
                        h3_mbar_arrive(S9_FULL(0, s));
                } else {
                    asm volatile("bar.sync 1, 64;\n" ::: "memory");
                    s9_tile_gather(kt, vt, ks, kbase, vbase, p.kv_tok, pt, S9_FULL(0, s));
                }
            }
        }
        for (int it = 0; it < ((share || merged) && c ? 0 : merged ? 0 : ntiles); it++) {
            const int s = it % ST;
            if (it >= ST) h3_mbar_wait(S9_EMPTY(c, s), (unsigned)((it / ST) - 1) & 1u);
            int *ks = (int *)(gbase + S9_OFF_KEYS(ST)) + (c * ST + s) * 64;
            const uint32_t kt = base + S9_OFF_K(c, s), vt = base + S9_OFF_V(ST, c, s);
            ks[pt] = sp_slot_key(pl, it, pt, p.Tk);
            const bool gather = pl.kind != SCB_SPARSE_STREAM && it >= pl.nbo;
            if (!gather) {
                if (pt == 0)
                    s9_tile_tma(kt, vt, &tm_k, &tm_v, S9_FULL(c, s), s9_tile_start(pl, it), kvh, kv_swap);
                else
                    h3_mbar_arrive(S9_FULL(c, s));
            } else {
                /* the slot keys of this stage, written by the 64 threads just above */
                asm volatile("bar.sync %0, 64;\n" ::"r"(1 + c) : "memory");
                s9_tile_gather(kt, vt, ks, kbase, vbase, p.kv_tok, pt, S9_FULL(c, s));
            }
        }
    } else {
        /* ---- consumer warpgroups: 64 query rows (one row block) each ---- */
        asm volatile("setmaxnreg.inc.sync.aligned.u32 224;\n" ::: "memory");
        const int c = wgi - 1, rg = share || merged ? 0 : c;   /* rg: the K/V ring this consumer reads */
        int h, mblk, ntiles;
        sp_plan pl;
        s9_role(p, mode, hx, pair, c, h, mblk, pl, ntiles);
        const int m0 = mblk * SP_BM;
        const uint32_t sQ = base + S9_OFF_Q(c);
        const int *keys0 = (const int *)(gbase + S9_OFF_KEYS(ST)) + rg * ST * 64;
        const int ltid = tid & 127, warp = ltid >> 5, lane = tid & 31;
        const int g8 = lane >> 2, tq = lane & 3;
        const int rowA = m0 + warp * 16 + g8, rowB = rowA + 8;
        const int pf = m0 + off, plast = min(m0 + SP_BM, p.Tq) - 1 + off;
        float o[64];
#pragma unroll
        for (int i = 0; i < 64; i++) o[i] = 0.f;
        struct scb_fa2_rows st = {-INFINITY, -INFINITY, 0.f, 0.f};
        uint32_t pa[4][4];
        unsigned cnt = 0;
        if (ntiles > 0) h3_mbar_wait(S9_BARQ(c), 0);
        if (merged) {
            /* the merged ring: every slot is waited for and released; computed when flagged */
            int nslots = 0;
            {
                s9_merge mg = {0, 0, 0, 0};
                int start, cn, fl;
                const int32_t *cip;
                while (s9_merge_next(plA, plB, mg, start, cip, cn, fl)) nslots++;
            }
            for (int it = 0; it < nslots; it++) {
                const int s = it % ST;
                const unsigned par = (unsigned)(it / ST) & 1u;
                h3_mbar_wait(S9_FULL(0, s), par);
                const int fl = flags[s];
                if (fl & (1 << c)) {
                    float sc[32];
                    h3_wgmma_fence();
                    h3_issue_qk<32, S9_HALF, S9_HALF>(sc, sQ, base + S9_OFF_K(0, s));
                    h3_wgmma_commit();
                    h3_wgmma_wait<0>();
                    h3_fence_acc(sc);
                    float aA, aB;
                    s9_mask(sc, (fl & 4) != 0, keys0 + s * 64, pl, rowA, rowB, tq, off, p, cnt);
                    s9_softmax(sc, st, aA, aB, pa);
                    scb_fa2_scale_o(o, aA, aB);
                    h3_wgmma_fence();
                    h3_issue_pv<4, S9_HALF>(o, pa, base + S9_OFF_V(ST, 0, s));
                    h3_wgmma_commit();
                    h3_wgmma_wait<0>();
                    h3_fence_acc(o);
                    h3_keep_p(pa);
                }
                h3_mbar_arrive(S9_EMPTY(0, s));
            }
        } else if (!OVERLAP) {
            for (int it = 0; it < ntiles; it++) {
                const int s = it % ST;
                const unsigned par = (unsigned)(it / ST) & 1u;
                float sc[32];
                h3_mbar_wait(S9_FULL(rg, s), par);
                h3_wgmma_fence();
                h3_issue_qk<32, S9_HALF, S9_HALF>(sc, sQ, base + S9_OFF_K(rg, s));
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(sc);
                float aA, aB;
                s9_mask(sc, sp_tile_full(pl, it, m0, pf, plast, p.dense_from), keys0 + s * 64, pl, rowA, rowB, tq,
                        off, p, cnt);
                s9_softmax(sc, st, aA, aB, pa);
                scb_fa2_scale_o(o, aA, aB);
                h3_wgmma_fence();
                h3_issue_pv<4, S9_HALF>(o, pa, base + S9_OFF_V(ST, rg, s));
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(o);
                h3_keep_p(pa);
                h3_mbar_arrive(S9_EMPTY(rg, s));
            }
        } else if (ntiles > 0) {
            /* S(it) = Q K(it) first; once it has landed and is masked (the mask's irregular
             * code stays outside any wgmma in flight: inside, ptxas serialises the products),
             * O += P(it-1) V(it-1) is issued and the softmax of S(it) runs under it. */
            {
                float sc[32];
                h3_mbar_wait(S9_FULL(rg, 0), 0);
                h3_wgmma_fence();
                h3_issue_qk<32, S9_HALF, S9_HALF>(sc, sQ, base + S9_OFF_K(rg, 0));
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(sc);
                float aA, aB;
                s9_mask(sc, sp_tile_full(pl, 0, m0, pf, plast, p.dense_from), keys0, pl, rowA, rowB, tq, off, p,
                        cnt);
                s9_softmax(sc, st, aA, aB, pa);
            }
            for (int it = 1; it < ntiles; it++) {
                const int s = it % ST, sp = (it - 1) % ST;
                const unsigned par = (unsigned)(it / ST) & 1u;
                float sc[32];
                uint32_t pn[4][4];
                h3_mbar_wait(S9_FULL(rg, s), par);
                h3_wgmma_fence();
                h3_issue_qk<32, S9_HALF, S9_HALF>(sc, sQ, base + S9_OFF_K(rg, s));
                h3_wgmma_commit();
                h3_wgmma_wait<0>();
                h3_fence_acc(sc);
                s9_mask(sc, sp_tile_full(pl, it, m0, pf, plast, p.dense_from), keys0 + s * 64, pl, rowA, rowB, tq,
                        off, p, cnt);
                h3_fence_acc(o);   /* o and pa are final before the product that reads them */
                h3_keep_p(pa);
                h3_fence_acc(sc);
                h3_wgmma_fence();
                h3_issue_pv<4, S9_HALF>(o, pa, base + S9_OFF_V(ST, rg, sp));
                h3_wgmma_commit();
                float aA, aB;
                s9_softmax(sc, st, aA, aB, pn);
                h3_wgmma_wait<0>();
                h3_fence_acc(o);
                h3_keep_p(pa);   /* the PV product read pa until here */
                h3_mbar_arrive(S9_EMPTY(rg, sp));
                scb_fa2_scale_o(o, aA, aB);
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int i = 0; i < 4; i++) pa[kk][i] = pn[kk][i];
            }
            const int sl = (ntiles - 1) % ST;
            h3_fence_acc(o);
            h3_keep_p(pa);
            h3_wgmma_fence();
            h3_issue_pv<4, S9_HALF>(o, pa, base + S9_OFF_V(ST, rg, sl));
            h3_wgmma_commit();
            h3_wgmma_wait<0>();
            h3_fence_acc(o);
            h3_keep_p(pa);   /* the A registers stay untouched until the product has landed */
            h3_mbar_arrive(S9_EMPTY(rg, sl));
        }
        scb_fa2_store<16, false>(o, st, p.out, NULL, rowA, rowB, p.Tq, p.Hq, h, tq);
        if (p.pairs) {
            for (int o2 = 16; o2 > 0; o2 >>= 1) cnt += __shfl_xor_sync(0xffffffffu, cnt, o2);
            if (lane == 0 && cnt) atomicAdd(p.pairs, (unsigned long long)cnt);
        }
    }
#undef S9_BARQ
#undef S9_FULL
#undef S9_EMPTY
#endif
}

/* ---- host side ---------------------------------------------------------------------------- */

int scb_sparse_sm90_usable_(struct scb_cuda_ctx *cc)
{
    static int built = -1;
    if (!cc || cc->cc_major != 9) return 0;
    if (built < 0) {
        struct cudaFuncAttributes fa;
        if (cudaFuncGetAttributes(&fa, scb_sparse_sm90_kernel<false, 2>) == cudaSuccess)
            built = fa.binaryVersion == 90;
        else {
            (void)cudaGetLastError();
            built = 0;
        }
    }
    return built;
}

int scb_sparse_sm90_launch_(struct scb_cuda_ctx *cc, const sp_params *pp, struct scb_ctx *err)
{
    static scb_sm90_encode_fn enc = NULL;
    int rc = SCB_OK;
    CUtensorMap mq, mk, mv;
    int kv_swap;
    const sp_params p = *pp;
    if (p.D != S9_D) {
        rc = scb_err(err, SCB_E_UNSUPPORTED, "sm90 sparse attention: head dim D=%d (D=128 only)", p.D);
        goto out;
    }
    if (!scb_sparse_sm90_usable_(cc)) {
        rc = scb_err(err, SCB_E_UNSUPPORTED, "sm90 sparse attention: needs compute capability 9.0 and a "
                     "binary built for sm_90a (this device is %d.%d)", cc->cc_major, cc->cc_minor);
        goto out;
    }
    SCB_TRY(scb_sm90_encoder(cc, &enc, S9_WHO, err));
    kv_swap = p.kv_head < p.kv_tok;
    /* Q (Tq, Hq, D) as (D, Hq, Tq), box 64 rows of one head */
    SCB_TRY(scb_sm90_map(enc, &mq, p.q, (uint64_t)p.Hq, (uint64_t)p.Tq, (uint64_t)S9_D, (uint64_t)p.Hq * S9_D, 1,
                    64, S9_WHO, "Q", err));
    {
        const uint64_t hkv = (uint64_t)(p.Hq / p.G), tk = (uint64_t)p.Tk;
        const uint64_t ts = (uint64_t)p.kv_tok, hs = (uint64_t)p.kv_head;
        if (kv_swap) {
            SCB_TRY(scb_sm90_map(enc, &mk, p.k, hkv, tk, hs, ts, 1, 64, S9_WHO, "K", err));
            SCB_TRY(scb_sm90_map(enc, &mv, p.v, hkv, tk, hs, ts, 1, 64, S9_WHO, "V", err));
        } else {
            SCB_TRY(scb_sm90_map(enc, &mk, p.k, tk, hkv, ts, hs, 64, 1, S9_WHO, "K", err));
            SCB_TRY(scb_sm90_map(enc, &mv, p.v, tk, hkv, ts, hs, 64, 1, S9_WHO, "V", err));
        }
    }
    {
        /* schedule and ring depth (per consumer): serial with 2 stages unless the measurement
         * knobs SCB_SPARSE_SM90_SCHEDULE=serial|overlap, SCB_SPARSE_SM90_STAGES=2|3 say otherwise
         * (ptxas serialises the overlap variant's wgmma chains, warning C7513: unmeasured) */
        const char *v = getenv("SCB_SPARSE_SM90_SCHEDULE"), *sv = getenv("SCB_SPARSE_SM90_STAGES");
        /* issue order: SCB_SPARSE_SM90_ORDER=head (0) | block (1); unset: block for per-head
         * patterns (MInference: consecutive blocks walk one head's lists, whose columns and
         * ranges stay in L2; 85 vs 95 ms at 128K on an H200), head for one pattern for all
         * heads (A-shape, Tri-shape: 19.4 vs 21.0 ms) */
        const char *ov = getenv("SCB_SPARSE_SM90_ORDER");
        const int order = ov && *ov ? !strcmp(ov, "block") : p.head_pat != 0;
        if (ov && *ov && !order && strcmp(ov, "head")) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_SPARSE_SM90_ORDER='%s': expected head|block", ov);
            goto out;
        }
        /* K/V shared by two heads of one KV head (one STREAM pattern for every head, G even)
         * unless SCB_SPARSE_SM90_SHARE=0 */
        const char *shv = getenv("SCB_SPARSE_SM90_SHARE");
        if (shv && *shv && strcmp(shv, "0") && strcmp(shv, "1")) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_SPARSE_SM90_SHARE='%s': expected 0|1", shv);
            goto out;
        }
        const int share = !p.head_pat && p.G % 2 == 0 && !(shv && !strcmp(shv, "0"));
        /* per-head patterns: head pairs with merged lists only with SCB_SPARSE_SM90_MERGE=1 */
        const char *mgv = getenv("SCB_SPARSE_SM90_MERGE");
        if (mgv && *mgv && strcmp(mgv, "0") && strcmp(mgv, "1")) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_SPARSE_SM90_MERGE='%s': expected 0|1", mgv);
            goto out;
        }
        const int merge = p.head_pat && p.G % 2 == 0 && mgv && !strcmp(mgv, "1");
        const int mode = share ? 1 : merge ? 2 : 0;
        const int serial = !v || !*v || !strcmp(v, "serial"), three = sv && !strcmp(sv, "3");
        if ((v && *v && !serial && strcmp(v, "overlap")) || (sv && *sv && !three && strcmp(sv, "2"))) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_SPARSE_SM90_SCHEDULE='%s' / SCB_SPARSE_SM90_STAGES='%s': "
                         "expected serial|overlap and 2|3", v ? v : "", sv ? sv : "");
            goto out;
        }
        void (*kern)(const CUtensorMap, const CUtensorMap, const CUtensorMap, const sp_params, int, int, int) =
            serial ? (three ? scb_sparse_sm90_kernel<false, 3> : scb_sparse_sm90_kernel<false, 2>)
                   : (three ? scb_sparse_sm90_kernel<true, 3> : scb_sparse_sm90_kernel<true, 2>);
        const size_t smem = three ? S9_SMEM_BYTES(3) : S9_SMEM_BYTES(2);
        const unsigned npair = mode ? (unsigned)p.nblk : (unsigned)((p.nblk + 1) / 2);
        const unsigned nh = mode ? (unsigned)(p.Hq / 2) : (unsigned)p.Hq;
        dim3 grid(order ? npair : nh, order ? nh : npair);
        SCB_CUDA_TRY(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        kern<<<grid, S9_THREADS, smem, cc->stream>>>(mq, mk, mv, p, kv_swap, order, mode);
        SCB_LAUNCH_CHECK("scb_sparse_sm90_kernel");
    }
out:
    return rc;
}
