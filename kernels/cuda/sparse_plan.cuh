/* sparse_plan.cuh — the per-(query head, 64-row block) key-tile plan of the sparse prefill
 * kernels (sparse_prefill.cu: FA2-style mma.sync; sparse_prefill_sm90.cu: wgmma + TMA): the
 * kernel parameters, the enumeration of 64-key tiles (STREAM: sink range then window range;
 * LIST: block_offset tiles then 64-column chunks of column_index), the key of each tile slot,
 * the exact per-element rule and the "whole tile visible" test. */
#ifndef SCB_KERNELS_CUDA_SPARSE_PLAN_CUH
#define SCB_KERNELS_CUDA_SPARSE_PLAN_CUH

#include <stdint.h>

#include "kernels/sparse_prefill_cuda.h"

#define SP_BM 64
#define SP_BN 64
#define SP_WARPS 4
#define SP_PAD 8

struct sp_params {
    const uint16_t *q, *k, *v;
    uint16_t *out;
    int Tq, Tk, Hq, G, D;
    long long kv_tok, kv_head;
    float scale, scale_log2;
    const int32_t *head_pat;
    int n_init, n_local, dense_from;
    const int32_t *bo, *bc, *ci, *cn;
    int lds, ldv, nblk;
    unsigned long long *pairs;
};

/* The key tiles of one (head, row block): uniform over the block. */
struct sp_plan {
    int kind, n_init, n_local;
    int s_end, w_lo, w_hi, nsink;      /* STREAM */
    const int32_t *bo, *ci;            /* LIST */
    int nbo, ncol;
    int ntiles;
};

static __device__ __forceinline__ void sp_plan_init(const sp_params &p, int h, int m, sp_plan &t)
{
    t.kind = SCB_SPARSE_STREAM;
    t.n_init = p.n_init;
    t.n_local = p.n_local;
    if (p.head_pat) {
        t.kind = p.head_pat[h * 3];
        t.n_init = p.head_pat[h * 3 + 1];
        t.n_local = p.head_pat[h * 3 + 2];
    }
    const int off = p.Tk - p.Tq;
    if (t.kind == SCB_SPARSE_STREAM) {
        const int i0 = m * SP_BM;
        const int i1 = min(i0 + SP_BM, p.Tq) - 1;
        const int pf = i0 + off, pl = i1 + off;
        if (i1 >= p.dense_from) {
            t.s_end = 0;
            t.w_lo = 0;
        } else {
            t.w_lo = max(0, pf - t.n_local + 1);
            t.s_end = min(t.n_init, t.w_lo);
        }
        t.w_hi = pl + 1;
        t.nsink = (t.s_end + SP_BN - 1) / SP_BN;
        t.ntiles = t.nsink + (t.w_hi - t.w_lo + SP_BN - 1) / SP_BN;
        t.bo = t.ci = NULL;
        t.nbo = t.ncol = 0;
    } else {
        const long long hb = (long long)h * p.nblk + m;
        t.nbo = p.bc[hb];
        t.ncol = p.cn[hb];
        t.bo = p.bo + hb * p.lds;
        t.ci = p.ci + hb * p.ldv;
        t.ntiles = t.nbo + (t.ncol + SP_BN - 1) / SP_BN;
        t.s_end = t.w_lo = t.w_hi = t.nsink = 0;
    }
}

/* Key index of slot r of tile `tile`, -1 for an empty slot. */
static __device__ __forceinline__ int sp_slot_key(const sp_plan &t, int tile, int r, int Tk)
{
    if (t.kind == SCB_SPARSE_STREAM) {
        if (tile < t.nsink) {
            const int j = tile * SP_BN + r;
            return j < t.s_end ? j : -1;
        }
        const int j = t.w_lo + (tile - t.nsink) * SP_BN + r;
        return j < t.w_hi ? j : -1;
    }
    if (tile < t.nbo) {
        const int j = t.bo[tile] + r;
        return j < Tk ? j : -1;
    }
    const int c = (tile - t.nbo) * SP_BN + r;
    return c < t.ncol ? t.ci[c] : -1;
}

static __device__ __forceinline__ bool sp_allowed(const sp_plan &t, int i, int j, int off, int dense_from)
{
    if (j < 0 || j > i + off) return false;
    if (t.kind != SCB_SPARSE_STREAM) return true;
    return i >= dense_from || (i + off) - j < t.n_local || j < t.n_init;
}

/* 1 when every slot of tile `tile` is a key that every row of the block (rows m0.., first
 * position pf, last pl) may see: no per-element mask needed (uniform over the block). LIST
 * columns are < 64 m by contract (the converter's), so a complete column chunk is full. */
static __device__ __forceinline__ bool sp_tile_full(const sp_plan &t, int tile, int m0, int pf, int pl,
                                                    int dense_from)
{
    if (t.kind == SCB_SPARSE_STREAM) {
        if (tile < t.nsink) {
            const int start = tile * SP_BN;
            return start + SP_BN <= t.s_end && start + SP_BN - 1 <= pf;
        }
        const int start = t.w_lo + (tile - t.nsink) * SP_BN;
        if (start + SP_BN > t.w_hi || start + SP_BN - 1 > pf) return false;
        return m0 >= dense_from || pl - start < t.n_local || start + SP_BN <= t.n_init;
    }
    if (tile < t.nbo) return t.bo[tile] + SP_BN - 1 <= pf;
    return (tile - t.nbo) * SP_BN + SP_BN <= t.ncol;
}

/* The sm90 path (sparse_prefill_sm90.cu): 1 when it can run on cc's device (compute capability
 * 9.x, sm_90a code in the binary); the launcher for D = 128, 16-byte aligned tensors and strides
 * that are multiples of 8 elements. */
int scb_sparse_sm90_usable_(struct scb_cuda_ctx *cc);
int scb_sparse_sm90_launch_(struct scb_cuda_ctx *cc, const sp_params *p, struct scb_ctx *err);

#endif
