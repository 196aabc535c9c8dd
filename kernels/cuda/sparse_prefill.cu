/* sparse_prefill.cu — the sparse prefill kernels of A-shape, Tri-shape and MInference (see
 * kernels/sparse_prefill_cuda.h for the semantics).
 *
 * Sparse attention: the FlashAttention-2 tiling of attn_prefill.cu (fa2_tile.cuh; 4 warps own 64 query rows
 * of one head, mma.sync m16n8k16 bf16 with fp32 accumulators, online softmax in the log2
 * domain, cp.async double buffering), but the key tiles come from a per-(head, row block)
 * plan: STREAM heads walk a sink range [0, s_end) and a window range [w_lo, w_hi) computed from
 * (n_init, n_local, dense_from); LIST heads walk their 64-wide tiles (any start) and then the
 * gathered columns 64 at a time (cp.async of each row through its index). The key index of
 * every slot of the staged tile is kept in shared memory and every element is masked by the
 * exact rule (causal + pattern), so partial tiles, window edges and Tri-shape's dense rows are
 * exact. Each thread counts the pairs it keeps (the reported density). A plain kernel (one
 * block of 64 threads per query row, fp32 throughout) serves head dims other than 64/128.
 *
 * MInference estimation: scores of the last lq queries against all keys (SIMT fp32, 64x64
 * tiles, 4x4 register blocking) into a scratch (nh, lq, N); per-row max / sum; column sums and
 * diagonal sums with one thread per column / diagonal looping over the rows in order
 * (deterministic, no atomics); then per head and per list a 1024-thread block does an exact
 * 4-pass radix select of the k-th largest key (forced entries get the largest key) and a
 * block-scan compaction that applies the tie rule (equal keys: smaller index first) and writes
 * V ascending / S descending. The converter is MInference's one-thread-per-row-block loop. */
#include "kernels/sparse_prefill_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cub/block/block_scan.cuh>

extern "C" {
#include "kernels/alloc.h"   /* plain C header without its own extern "C" */
}
#include "kernels/cuda/attn_common.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fa2_tile.cuh"

#include "kernels/cuda/sparse_plan.cuh"

template <int D>
__global__ void __launch_bounds__(SP_WARPS * 32)
scb_sparse_fa_kernel(const sp_params p)
{
    constexpr int NT = SP_BN / 8;
    __shared__ int keys_s[2][SP_BN];               /* key index of each staged slot, -1 empty */
    const int lane = threadIdx.x & 31, tq = lane & 3;
    const int mblk = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y, kvh = h / p.G;
    const int m0 = mblk * SP_BM;
    const int off = p.Tk - p.Tq;
    sp_plan pl;
    sp_plan_init(p, h, mblk, pl);
    const int pf = m0 + off, plast = min(m0 + SP_BM, p.Tq) - 1 + off;   /* first / last row positions */
    unsigned cnt = 0;

    auto key_of = [&](int t, int r, int &j) { j = sp_slot_key(pl, t, r, p.Tk); return j >= 0; };
    auto staged = [&](int stage, int r, int j) { keys_s[stage][r] = j; };
    /* scale; the exact rule (and the count of kept pairs) unless the whole tile is visible */
    auto mask = [&](float (&s)[NT * 4], int t, int stage, int rowA, int rowB, float &tmA, float &tmB) {
        if (sp_tile_full(pl, t, m0, pf, plast, p.dense_from)) {
            cnt += (rowA < p.Tq ? 2u * NT : 0u) + (rowB < p.Tq ? 2u * NT : 0u);
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt * 4 + e] *= p.scale_log2;
                scb_fa2_tile_max(s, nt, tmA, tmB);
            }
        } else {
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int j = keys_s[stage][nt * 8 + tq * 2 + (e & 1)];
                    const int i = (e < 2) ? rowA : rowB;
                    const bool ok = sp_allowed(pl, i, j, off, p.dense_from);
                    cnt += (ok && i < p.Tq) ? 1u : 0u;
                    s[nt * 4 + e] = ok ? s[nt * 4 + e] * p.scale_log2 : -INFINITY;
                }
                scb_fa2_tile_max(s, nt, tmA, tmB);
            }
        }
    };
    float o[D / 8 * 4];                            /* (D/8, 4) accumulator fragment */
    struct scb_fa2_rows st;
    scb_fa2_block<D, SP_BM, SP_BN, SP_WARPS, SP_PAD>(
        p.q, p.k + (long long)kvh * p.kv_head, p.v + (long long)kvh * p.kv_head, p.k, p.v, p.kv_tok,
        p.Tq, p.Hq, h, m0, pl.ntiles, key_of, staged, mask, o, st);
    const int rowA = m0 + (threadIdx.x >> 5) * 16 + (lane >> 2);
    scb_fa2_store<D / 8, false>(o, st, p.out, NULL, rowA, rowA + 8, p.Tq, p.Hq, h, tq);
    if (p.pairs) {
        for (int o2 = 16; o2 > 0; o2 >>= 1) cnt += __shfl_xor_sync(0xffffffffu, cnt, o2);
        if (lane == 0 && cnt) atomicAdd(p.pairs, (unsigned long long)cnt);
    }
}

/* Plain path: one block of 64 threads per (query row, head); thread r owns slot r of each tile
 * and output dims r, r+64, r+128, r+192. fp32 scores, probabilities and accumulation. */
#define SPP_T 64
__global__ void __launch_bounds__(SPP_T) scb_sparse_plain_kernel(const sp_params p)
{
    __shared__ float qs[256];
    __shared__ float ps[SPP_T];
    __shared__ int js[SPP_T];
    __shared__ float red[2];
    const int i = blockIdx.x, h = blockIdx.y, tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    const int D = p.D, off = p.Tk - p.Tq, kvh = h / p.G;
    for (int d = tid; d < D; d += SPP_T) qs[d] = scb_bf2f(p.q[((long long)i * p.Hq + h) * D + d]);
    sp_plan pl;
    sp_plan_init(p, h, i / SP_BM, pl);
    const uint16_t *kbase = p.k + (long long)kvh * p.kv_head;
    const uint16_t *vbase = p.v + (long long)kvh * p.kv_head;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    float mrun = -INFINITY, l = 0.f;
    unsigned cnt = 0;
    __syncthreads();
    for (int t = 0; t < pl.ntiles; t++) {
        const int j = sp_slot_key(pl, t, tid, p.Tk);
        const bool ok = sp_allowed(pl, i, j, off, p.dense_from);
        float s = -INFINITY;
        if (ok) {
            const uint16_t *kr = kbase + (long long)j * p.kv_tok;
            float dot = 0.f;
            for (int d = 0; d < D; d++) dot = fmaf(qs[d], scb_bf2f(kr[d]), dot);
            s = dot * p.scale;
            cnt++;
        }
        float mx = s;
        for (int o2 = 16; o2 > 0; o2 >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o2));
        if (lane == 0) red[w] = mx;
        __syncthreads();
        const float tmax = fmaxf(red[0], red[1]);
        __syncthreads();
        const float nm = fmaxf(mrun, tmax);
        if (nm == -INFINITY) continue;            /* uniform: nothing visible yet */
        const float alpha = mrun == -INFINITY ? 0.f : expf(mrun - nm);
        const float pr = ok ? expf(s - nm) : 0.f;
        ps[tid] = pr;
        js[tid] = j;
        float sm = pr;
        for (int o2 = 16; o2 > 0; o2 >>= 1) sm += __shfl_xor_sync(0xffffffffu, sm, o2);
        if (lane == 0) red[w] = sm;
        __syncthreads();
        l = l * alpha + (red[0] + red[1]);
#pragma unroll
        for (int u = 0; u < 4; u++) {
            const int d = tid + u * SPP_T;
            if (d < D) {
                float a = acc[u] * alpha;
                for (int r = 0; r < SPP_T; r++)
                    if (ps[r] != 0.f) a = fmaf(ps[r], scb_bf2f(vbase[(long long)js[r] * p.kv_tok + d]), a);
                acc[u] = a;
            }
        }
        mrun = nm;
        __syncthreads();
    }
    const float il = l > 0.f ? 1.f / l : 0.f;
#pragma unroll
    for (int u = 0; u < 4; u++) {
        const int d = tid + u * SPP_T;
        if (d < D) p.out[((long long)i * p.Hq + h) * D + d] = scb_f2bf(acc[u] * il);
    }
    if (p.pairs) {
        for (int o2 = 16; o2 > 0; o2 >>= 1) cnt += __shfl_xor_sync(0xffffffffu, cnt, o2);
        if (lane == 0 && cnt) atomicAdd(p.pairs, (unsigned long long)cnt);
    }
}

template <int D>
static int sp_launch_fa_(struct scb_cuda_ctx *cc, const sp_params *p, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const size_t smem = (size_t)(SP_BM + 4 * SP_BN) * (D + SP_PAD) * sizeof(uint16_t);
    dim3 grid((unsigned)p->nblk, (unsigned)p->Hq);
    SCB_CUDA_TRY(cudaFuncSetAttribute(scb_sparse_fa_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)smem));
    scb_sparse_fa_kernel<D><<<grid, SP_WARPS * 32, smem, cc->stream>>>(*p);
    SCB_LAUNCH_CHECK("scb_sparse_fa_kernel");
out:
    return rc;
}

/* SCB_SPARSE_PREFILL: -1 unset/empty (automatic), 0 fa2, 1 sm90, -2 anything else. */
static int sp_env_choice_(void)
{
    const char *sel = getenv("SCB_SPARSE_PREFILL");
    if (!sel || !*sel) return -1;
    if (!strcmp(sel, "fa2")) return 0;
    if (!strcmp(sel, "sm90")) return 1;
    return -2;
}

extern "C" const char *scb_cuda_sparse_attn_kernel(struct scb_cuda_ctx *cc, int D)
{
    const int want = sp_env_choice_();
    if (want == -2) return NULL;
    if (D == 128 && (want == 1 || (want < 0 && scb_sparse_sm90_usable_(cc)))) return "sm90";
    return (D == 64 || D == 128) ? "fa2" : "plain";
}

extern "C" int scb_cuda_sparse_attn(struct scb_cuda_ctx *cc, const struct scb_sparse_attn_cuda_args *a,
                                    struct scb_ctx *err)
{
    int rc = SCB_OK;
    sp_params p;
    size_t ts, hs;
    bool tc;
    SCB_CHECK_ALIVE();
    if (!a || !a->q || !a->k || !a->v || !a->out) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA sparse attention: NULL tensor pointer");
        goto out;
    }
    if (a->Tq < 1 || a->Tk < a->Tq || a->Hq < 1 || a->Hkv < 1 || a->Hq % a->Hkv || a->D < 2 || a->D % 2 ||
        a->D > 256) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA sparse attention: bad shape Tq=%d Tk=%d Hq=%d Hkv=%d D=%d (need "
                     "1 <= Tq <= Tk, Hq %% Hkv == 0, D even <= 256)", a->Tq, a->Tk, a->Hq, a->Hkv, a->D);
        goto out;
    }
    if (!a->head_pat && (a->n_init < 0 || a->n_local < 1)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA sparse attention: need n_init >= 0 and n_local >= 1 (got %d, %d)",
                     a->n_init, a->n_local);
        goto out;
    }
    if (a->head_pat && (a->Tq != a->Tk || a->lds < 1 || a->ldv < 1)) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA sparse attention: per-head patterns need Tq == Tk (%d, %d) and "
                     "list widths >= 1 (%d, %d)", a->Tq, a->Tk, a->lds, a->ldv);
        goto out;
    }
    ts = a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D;
    hs = a->kv_head_stride ? a->kv_head_stride : (size_t)a->D;
    tc = (a->D == 64 || a->D == 128) && ts % 8 == 0 && hs % 8 == 0 &&
         !(((uintptr_t)a->q | (uintptr_t)a->k | (uintptr_t)a->v | (uintptr_t)a->out) & 15u);
    p.q = a->q;
    p.k = a->k;
    p.v = a->v;
    p.out = a->out;
    p.Tq = a->Tq;
    p.Tk = a->Tk;
    p.Hq = a->Hq;
    p.G = a->Hq / a->Hkv;
    p.D = a->D;
    p.kv_tok = (long long)ts;
    p.kv_head = (long long)hs;
    p.scale = a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D);
    p.scale_log2 = p.scale * 1.4426950408889634f;
    p.head_pat = a->head_pat;
    p.n_init = a->n_init;
    p.n_local = a->n_local < 1 ? 1 : a->n_local;
    p.dense_from = a->head_pat ? a->Tq : a->dense_from;
    p.bo = a->block_offset;
    p.bc = a->block_count;
    p.ci = a->column_index;
    p.cn = a->column_count;
    p.lds = a->lds;
    p.ldv = a->ldv;
    p.nblk = (a->Tq + SP_BM - 1) / SP_BM;
    p.pairs = a->pairs;
    {
        /* D = 128 on sm_90: the wgmma/TMA kernel unless SCB_SPARSE_PREFILL=fa2 (=sm90 forces it
         * for D = 128 and is an error where it cannot run; other head dims keep their kernel) */
        const int want = sp_env_choice_();
        if (want == -2) {
            rc = scb_err(err, SCB_E_INVAL, "SCB_SPARSE_PREFILL='%s': expected 'fa2' or 'sm90' (or unset: "
                         "automatic)", getenv("SCB_SPARSE_PREFILL"));
            goto out;
        }
        if (tc && a->D == 128 && (want == 1 || (want < 0 && scb_sparse_sm90_usable_(cc)))) {
            rc = scb_sparse_sm90_launch_(cc, &p, err);
            goto out;
        }
    }
    if (tc && a->D == 64) rc = sp_launch_fa_<64>(cc, &p, err);
    else if (tc) rc = sp_launch_fa_<128>(cc, &p, err);
    else {
        scb_sparse_plain_kernel<<<dim3((unsigned)a->Tq, (unsigned)a->Hq), SPP_T, 0, cc->stream>>>(p);
        SCB_LAUNCH_CHECK("scb_sparse_plain_kernel");
    }
out:
    return rc;
}

/* ---- MInference estimation ----------------------------------------------------------------- */
/* S (nh, lq, N): scale * q_r . k_j for j <= N - lq + r, -inf beyond. */
__global__ void __launch_bounds__(256)
scb_minf_scores_kernel(const uint16_t *q, const uint16_t *k, long long kv_tok, long long kv_head, int N,
                       int Hq, int G, int D, float scale, int lq, const int32_t *heads, float *S)
{
    __shared__ float Qs[64][65], Ks[64][65];
    const int hi = blockIdx.y, h = heads[hi], g = h / G, j0 = blockIdx.x * 64;
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    float acc[4][4];
#pragma unroll
    for (int x = 0; x < 4; x++)
#pragma unroll
        for (int y = 0; y < 4; y++) acc[x][y] = 0.f;
    for (int d0 = 0; d0 < D; d0 += 64) {
        for (int e = tid; e < 64 * 64; e += 256) {
            const int r = e >> 6, dd = e & 63, d = d0 + dd, j = j0 + r;
            Qs[r][dd] = (r < lq && d < D) ? scb_bf2f(q[((long long)(N - lq + r) * Hq + h) * D + d]) : 0.f;
            Ks[r][dd] = (j < N && d < D) ? scb_bf2f(k[(long long)g * kv_head + (long long)j * kv_tok + d]) : 0.f;
        }
        __syncthreads();
        const int dn = min(64, D - d0);
        for (int dd = 0; dd < dn; dd++) {
            float a[4], b[4];
#pragma unroll
            for (int x = 0; x < 4; x++) a[x] = Qs[ty + 16 * x][dd];
#pragma unroll
            for (int y = 0; y < 4; y++) b[y] = Ks[tx + 16 * y][dd];
#pragma unroll
            for (int x = 0; x < 4; x++)
#pragma unroll
                for (int y = 0; y < 4; y++) acc[x][y] = fmaf(a[x], b[y], acc[x][y]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int r = ty + 16 * x;
        if (r >= lq) continue;
#pragma unroll
        for (int y = 0; y < 4; y++) {
            const int j = j0 + tx + 16 * y;
            if (j < N) S[((long long)hi * lq + r) * N + j] = j <= N - lq + r ? acc[x][y] * scale : -INFINITY;
        }
    }
}

/* stats (nh, lq, 2): row max and sum of exp(s - max). */
__global__ void __launch_bounds__(256)
scb_minf_rowstats_kernel(const float *S, int N, int lq, float *stats)
{
    __shared__ float red[8];
    const int r = blockIdx.x, hi = blockIdx.y, tid = threadIdx.x;
    const float *row = S + ((long long)hi * lq + r) * N;
    float m = -INFINITY;
    for (int j = tid; j < N; j += 256) m = fmaxf(m, row[j]);
    m = scb_block_max(m, red, 8);
    float l = 0.f;
    for (int j = tid; j < N; j += 256) l += expf(row[j] - m);
    const float t = scb_block_sum(l, red, 8);
    if (tid == 0) {
        stats[((long long)hi * lq + r) * 2] = m;
        stats[((long long)hi * lq + r) * 2 + 1] = t;
    }
}

/* vert[x] = sum_r A[r][x]; diag[x] = sum_r A[r][N - lq + r - x] (rows in order). */
__global__ void __launch_bounds__(256)
scb_minf_sums_kernel(const float *S, const float *stats, int N, int lq, float *vert, float *diag)
{
    const int hi = blockIdx.y, x = blockIdx.x * 256 + threadIdx.x;
    if (x >= N) return;
    const float *Sh = S + (long long)hi * lq * N;
    const float *st = stats + (long long)hi * lq * 2;
    float vs = 0.f, ds = 0.f;
    for (int r = 0; r < lq; r++) {
        const float m = st[2 * r], il = 1.f / st[2 * r + 1];
        const float *row = Sh + (long long)r * N;
        const float s = row[x];
        if (s != -INFINITY) vs += expf(s - m) * il;
        const int j = N - lq + r - x;
        if (j >= 0) ds += expf(row[j] - m) * il;
    }
    vert[(long long)hi * N + x] = vs;
    diag[(long long)hi * N + x] = ds;
}

static __device__ __forceinline__ unsigned sp_ordered(float f)
{
    unsigned u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Exact top-k of n keys (key(x), larger first, ties: smaller x first) by a 4-pass radix select
 * and a block-scan compaction: out[rank] (ascending x) or out[k - 1 - rank] (descending). */
template <int BT, typename KeyFn>
static __device__ void sp_topk_block(int n, int k, KeyFn key, int32_t *out, bool descending)
{
    typedef cub::BlockScan<int, BT> Scan;
    __shared__ typename Scan::TempStorage scan_ts;
    __shared__ unsigned hist[256];
    __shared__ unsigned s_prefix, s_mask;
    __shared__ int s_rem;
    const int tid = threadIdx.x;
    if (tid == 0) {
        s_prefix = 0;
        s_mask = 0;
        s_rem = k;
    }
    __syncthreads();
    for (int pass = 0; pass < 4; pass++) {
        const int shift = 24 - 8 * pass;
        for (int b = tid; b < 256; b += BT) hist[b] = 0;
        __syncthreads();
        const unsigned prefix = s_prefix, mask = s_mask;
        for (int x = tid; x < n; x += BT) {
            const unsigned kx = key(x);
            if ((kx & mask) == prefix) atomicAdd(&hist[(kx >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            int cum = 0, rem = s_rem, dg = 0;
            for (dg = 255; dg > 0; dg--) {
                if (cum + (int)hist[dg] >= rem) break;
                cum += (int)hist[dg];
            }
            s_rem = rem - cum;
            s_prefix = prefix | ((unsigned)dg << shift);
            s_mask = mask | (255u << shift);
        }
        __syncthreads();
    }
    const unsigned thr = s_prefix;
    const int need = s_rem;
    int eq_base = 0, sel_base = 0;
    for (int base = 0; base < n; base += BT) {
        const int x = base + tid;
        const unsigned kx = x < n ? key(x) : 0u;
        int eq = (x < n && kx == thr) ? 1 : 0, eq_rank, eq_tot;
        Scan(scan_ts).ExclusiveSum(eq, eq_rank, eq_tot);
        __syncthreads();
        int sel = (x < n && (kx > thr || (eq && eq_base + eq_rank < need))) ? 1 : 0, sel_rank, sel_tot;
        Scan(scan_ts).ExclusiveSum(sel, sel_rank, sel_tot);
        __syncthreads();
        if (sel) {
            const int pos = sel_base + sel_rank;
            if (pos < k) out[descending ? k - 1 - pos : pos] = x;
        }
        eq_base += eq_tot;
        sel_base += sel_tot;
    }
}

/* grid (2, nh): x = 0 vertical (V ascending), 1 slash (S descending). */
__global__ void __launch_bounds__(1024)
scb_minf_select_kernel(const float *vert, const float *diag, int N, const int32_t *v_size,
                       const int32_t *s_size, int32_t *V, int32_t *S, int ld)
{
    const int which = blockIdx.x, hi = blockIdx.y;
    const float *src = (which ? diag : vert) + (long long)hi * N;
    int k = which ? s_size[hi] : v_size[hi];
    if (k > N) k = N;
    if (k < 1) return;
    int nf = which ? 100 : 30;
    if (nf > N) nf = N;
    if (nf > k) nf = k;
    auto key = [&](int x) -> unsigned { return x < nf ? 0xffffffffu : sp_ordered(src[x]); };
    sp_topk_block<1024>(N, k, key, (which ? S : V) + (long long)hi * ld, which != 0);
}

extern "C" size_t scb_cuda_minf_vs_work_bytes(int nh, int lq, int N)
{
    return (size_t)nh * ((size_t)lq * N + (size_t)lq * 2 + 2 * (size_t)N) * sizeof(float);
}

extern "C" int scb_cuda_minf_vs_estimate(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k,
                                         size_t kv_tok_stride, size_t kv_head_stride, int N, int Hq, int Hkv,
                                         int D, float scale, int last_q, const int32_t *heads, int nh,
                                         const int32_t *v_size, const int32_t *s_size, int32_t *V, int32_t *S,
                                         int ld, float *vert_out, float *diag_out, void *work,
                                         struct scb_ctx *err)
{
    int rc = SCB_OK;
    int lq;
    float *Sc, *stats, *vert, *diag;
    long long ts, hs;
    SCB_CHECK_ALIVE();
    if (nh == 0) goto out;
    if (!q || !k || !heads || !v_size || !s_size || !V || !S || !work || N < 1 || Hq < 1 || Hkv < 1 ||
        Hq % Hkv || D < 1 || D > 256 || last_q < 1 || nh < 0 || ld < N) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference estimate: bad arguments (N=%d Hq=%d Hkv=%d D=%d last_q=%d "
                     "nh=%d ld=%d)", N, Hq, Hkv, D, last_q, nh, ld);
        goto out;
    }
    lq = last_q < N ? last_q : N;
    ts = (long long)(kv_tok_stride ? kv_tok_stride : (size_t)Hkv * D);
    hs = (long long)(kv_head_stride ? kv_head_stride : (size_t)D);
    Sc = (float *)work;                              /* (nh, lq, N) */
    stats = Sc + (size_t)nh * lq * N;                /* (nh, lq, 2) */
    vert = stats + (size_t)nh * lq * 2;              /* (nh, N) */
    diag = vert + (size_t)nh * N;                    /* (nh, N) */
    scb_minf_scores_kernel<<<dim3((unsigned)((N + 63) / 64), (unsigned)nh), 256, 0, cc->stream>>>(
        q, k, ts, hs, N, Hq, Hq / Hkv, D, scale != 0.f ? scale : 1.0f / sqrtf((float)D), lq, heads, Sc);
    SCB_LAUNCH_CHECK("scb_minf_scores_kernel");
    scb_minf_rowstats_kernel<<<dim3((unsigned)lq, (unsigned)nh), 256, 0, cc->stream>>>(Sc, N, lq, stats);
    SCB_LAUNCH_CHECK("scb_minf_rowstats_kernel");
    scb_minf_sums_kernel<<<dim3((unsigned)((N + 255) / 256), (unsigned)nh), 256, 0, cc->stream>>>(
        Sc, stats, N, lq, vert, diag);
    SCB_LAUNCH_CHECK("scb_minf_sums_kernel");
    scb_minf_select_kernel<<<dim3(2, (unsigned)nh), 1024, 0, cc->stream>>>(vert, diag, N, v_size, s_size, V, S, ld);
    SCB_LAUNCH_CHECK("scb_minf_select_kernel");
    if (vert_out) SCB_CUDA_TRY(cudaMemcpyAsync(vert_out, vert, sizeof(float) * (size_t)nh * N,
                                               cudaMemcpyDeviceToDevice, cc->stream));
    if (diag_out) SCB_CUDA_TRY(cudaMemcpyAsync(diag_out, diag, sizeof(float) * (size_t)nh * N,
                                               cudaMemcpyDeviceToDevice, cc->stream));
out:
    return rc;
}

/* ---- converter ------------------------------------------------------------------------------ */
__global__ void scb_minf_convert_kernel(int N, const int32_t *Vall, const int32_t *Sall, int ldvs,
                                        const int32_t *nvv, const int32_t *nss, const int32_t *heads,
                                        int32_t *block_offset, int32_t *block_count, int32_t *column_index,
                                        int32_t *column_count, int lds, int ldv, int nblk)
{
    const int hi = blockIdx.y, m = blockIdx.x * blockDim.x + threadIdx.x;
    if (m >= nblk) return;
    const int h = heads[hi], nnz_v = nvv[hi], nnz_s = nss[hi];
    const int32_t *V = Vall + (long long)hi * ldvs, *S = Sall + (long long)hi * ldvs;
    const long long hb = (long long)h * nblk + m;
    int32_t *bo = block_offset + hb * lds, *ci = column_index + hb * ldv;
    const int end_m = m * SP_BM + SP_BM;
    int nb = 0, nc = 0, s = 0, v = 0;
    int vi = V[v++];
    int si = S[s++];
    while (si >= end_m && s < nnz_s) si = S[s++];
    si = end_m - si > SP_BM ? end_m - si : SP_BM;
    int rs = si - SP_BM, re = si;
    for (;;) {
        if (vi < re) {
            if (vi < rs) {
                if (nc < ldv) ci[nc] = vi;
                nc++;
            }
            vi = v < nnz_v ? V[v++] : end_m + SP_BM;
        } else {
            int flush = 0, last = 0;
            if (s < nnz_s) {
                si = end_m - S[s++];
                if (si < SP_BM) si = SP_BM;
            } else {
                flush = last = 1;
            }
            if (!last && si > re + SP_BM) flush = 1;
            if (flush) {
                for (int x = rs; x < re; x += SP_BM) {
                    if (nb < lds) bo[nb] = x;
                    nb++;
                }
                if (last) break;
                rs = si - SP_BM;
                re = si;
            } else if (si > re) {
                re += SP_BM;
            }
        }
    }
    block_count[hb] = nb < lds ? nb : lds;
    column_count[hb] = nc < ldv ? nc : ldv;
}

extern "C" int scb_cuda_minf_convert(struct scb_cuda_ctx *cc, int N, const int32_t *V, const int32_t *S, int ldvs,
                                     const int32_t *nv, const int32_t *ns, const int32_t *heads, int nh,
                                     int32_t *block_offset, int32_t *block_count, int32_t *column_index,
                                     int32_t *column_count, int lds, int ldv, struct scb_ctx *err)
{
    int rc = SCB_OK;
    int nblk;
    SCB_CHECK_ALIVE();
    if (nh == 0) goto out;
    if (N < 1 || nh < 0 || !V || !S || !nv || !ns || !heads || !block_offset || !block_count || !column_index ||
        !column_count || lds < 1 || ldv < 1 || ldvs < 1) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference converter: bad arguments (N=%d nh=%d lds=%d ldv=%d)", N, nh,
                     lds, ldv);
        goto out;
    }
    nblk = (N + SP_BM - 1) / SP_BM;
    scb_minf_convert_kernel<<<dim3((unsigned)((nblk + 63) / 64), (unsigned)nh), 64, 0, cc->stream>>>(
        N, V, S, ldvs, nv, ns, heads, block_offset, block_count, column_index, column_count, lds, ldv, nblk);
    SCB_LAUNCH_CHECK("scb_minf_convert_kernel");
out:
    return rc;
}

/* ---- block sparse --------------------------------------------------------------------------- */
/* pooled (nh, 2, nbp, D): mean of the 64 rows of each block (zero rows past N counted). */
__global__ void scb_minf_pool_kernel(const uint16_t *q, const uint16_t *k, long long kv_tok, long long kv_head,
                                     int N, int Hq, int G, int D, const int32_t *heads, int nbp, float *pooled)
{
    const int a = blockIdx.x, hi = blockIdx.y, h = heads[hi], g = h / G;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float sq = 0.f, sk = 0.f;
        for (int r = 0; r < SP_BM; r++) {
            const int i = a * SP_BM + r;
            if (i >= N) break;
            sq += scb_bf2f(q[((long long)i * Hq + h) * D + d]);
            sk += scb_bf2f(k[(long long)g * kv_head + (long long)i * kv_tok + d]);
        }
        pooled[(((long long)hi * 2 + 0) * nbp + a) * D + d] = sq / SP_BM;
        pooled[(((long long)hi * 2 + 1) * nbp + a) * D + d] = sk / SP_BM;
    }
}

/* grid (nblk, nh), 256 threads, dynamic shared memory nbp floats (the scores). */
__global__ void __launch_bounds__(256)
scb_minf_bsel_kernel(const float *pooled, int D, int nbp, int kk, const int32_t *heads, int nblk,
                     int32_t *block_offset, int32_t *block_count, int32_t *column_count, int lds)
{
    extern __shared__ float sc[];
    const int a = blockIdx.x, hi = blockIdx.y, h = heads[hi], tid = threadIdx.x;
    const long long hb = (long long)h * nblk + a;
    int32_t *bo = block_offset + hb * lds;
    if (tid == 0) column_count[hb] = 0;
    if (a + 1 <= kk) {
        for (int t = tid; t <= a; t += 256) bo[t] = t * SP_BM;
        if (tid == 0) block_count[hb] = a + 1;
        return;
    }
    const float *qp = pooled + (((long long)hi * 2 + 0) * nbp + a) * D;
    const float *kp = pooled + ((long long)hi * 2 + 1) * nbp * D;
    for (int b = tid; b <= a; b += 256) {
        float s = 0.f;
        for (int d = 0; d < D; d++) s = fmaf(qp[d], kp[(long long)b * D + d], s);
        sc[b] = s;
    }
    __syncthreads();
    auto key = [&](int x) -> unsigned { return sp_ordered(sc[x]); };
    sp_topk_block<256>(a + 1, kk, key, bo, false);
    __syncthreads();
    for (int t = tid; t < kk; t += 256) bo[t] *= SP_BM;
    if (tid == 0) block_count[hb] = kk;
}

extern "C" size_t scb_cuda_minf_bs_work_bytes(int nh, int N, int D)
{
    const size_t nbp = (size_t)(N + (SP_BM - N % SP_BM)) / SP_BM;
    return (size_t)nh * 2 * nbp * (size_t)D * sizeof(float);
}

extern "C" int scb_cuda_minf_block_select(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k,
                                          size_t kv_tok_stride, size_t kv_head_stride, int N, int Hq, int Hkv,
                                          int D, int topk, const int32_t *heads, int nh, int32_t *block_offset,
                                          int32_t *block_count, int32_t *column_count, int lds, void *work,
                                          struct scb_ctx *err)
{
    int rc = SCB_OK;
    int nbp, kk, nblk;
    size_t smem;
    long long ts, hs;
    SCB_CHECK_ALIVE();
    if (nh == 0) goto out;
    if (!q || !k || !heads || !block_offset || !block_count || !column_count || !work || N < 1 || Hq < 1 ||
        Hkv < 1 || Hq % Hkv || D < 1 || D > 256 || topk < 1 || nh < 0) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference block select: bad arguments (N=%d Hq=%d Hkv=%d D=%d "
                     "topk=%d nh=%d)", N, Hq, Hkv, D, topk, nh);
        goto out;
    }
    nbp = (N + (SP_BM - N % SP_BM)) / SP_BM;
    nblk = (N + SP_BM - 1) / SP_BM;
    kk = topk < nbp ? topk : nbp;
    if (lds < kk) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference block select: lds %d < top-k %d", lds, kk);
        goto out;
    }
    smem = (size_t)nbp * sizeof(float);
    if (smem > 200 * 1024) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference block select: %d blocks exceed shared memory", nbp);
        goto out;
    }
    ts = (long long)(kv_tok_stride ? kv_tok_stride : (size_t)Hkv * D);
    hs = (long long)(kv_head_stride ? kv_head_stride : (size_t)D);
    scb_minf_pool_kernel<<<dim3((unsigned)nblk, (unsigned)nh), 128, 0, cc->stream>>>(
        q, k, ts, hs, N, Hq, Hq / Hkv, D, heads, nbp, (float *)work);
    SCB_LAUNCH_CHECK("scb_minf_pool_kernel");
    /* the padded extra block (N % 64 == 0) is never scored: its score is -inf for every row block */
    SCB_CUDA_TRY(cudaFuncSetAttribute(scb_minf_bsel_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      (int)(smem < 48 * 1024 ? 48 * 1024 : smem)));
    scb_minf_bsel_kernel<<<dim3((unsigned)nblk, (unsigned)nh), 256, smem, cc->stream>>>(
        (const float *)work, D, nbp, kk, heads, nblk, block_offset, block_count, column_count, lds);
    SCB_LAUNCH_CHECK("scb_minf_bsel_kernel");
out:
    return rc;
}

/* ---- one MInference layer ------------------------------------------------------------------- */
struct scb_cuda_minf_ws {
    void *lists;                /* block_offset, block_count, column_index, column_count */
    size_t lists_bytes;
    int32_t *small;             /* head_pat (Hq,3) + vs heads/v/s (3*Hq) + bs heads (Hq) */
    size_t small_bytes;
    void *work;
    size_t work_bytes;
    int32_t *VS;                /* V, S (2, nvs, N) */
    size_t vs_bytes;
    unsigned long long *pairs;
    int32_t *host;              /* host copy of small */
    size_t host_n;
};

extern "C" int scb_cuda_minf_ws_create(struct scb_cuda_minf_ws **out, struct scb_ctx *err)
{
    *out = (struct scb_cuda_minf_ws *)scb_calloc(1, sizeof **out);
    return *out ? SCB_OK : scb_err(err, SCB_E_NOMEM, "CUDA minference: out of memory");
}

extern "C" void scb_cuda_minf_ws_destroy(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws)
{
    if (!ws) return;
    if (cc) cudaStreamSynchronize(cc->stream);
    cudaFree(ws->lists);
    cudaFree(ws->small);
    cudaFree(ws->work);
    cudaFree(ws->VS);
    cudaFree(ws->pairs);
    scb_free(ws->host);
    scb_free(ws);
}

static int sp_grow_(struct scb_cuda_ctx *cc, void **p, size_t *have, size_t need, struct scb_ctx *err)
{
    int rc = SCB_OK;
    if (need <= *have && *p) return SCB_OK;
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));
    cudaFree(*p);
    *p = NULL;
    *have = 0;
    SCB_CUDA_TRY(cudaMalloc(p, need));
    *have = need;
out:
    return rc;
}

#define SP_SCORE_BUDGET ((size_t)512 << 20)

extern "C" int scb_cuda_minf_prefill(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws,
                                     const struct scb_sparse_attn_cuda_args *a,
                                     const struct scb_minf_cuda_pattern *pat, int last_q, int block_topk,
                                     double *density, struct scb_ctx *err)
{
    int rc = SCB_OK;
    struct scb_sparse_attn_cuda_args x;
    unsigned long long pairs = 0;
    int N, Hq, nblk, nbp, kk, lq, lds = 1, ldv = 1, nvs = 0, nbs = 0, hc;
    size_t need, work_need;
    int32_t *hp, *vs_h, *vs_v, *vs_s, *bs_h;
    int32_t *bo, *bc, *ci, *cn;
    SCB_CHECK_ALIVE();
    if (!ws || !a || !pat || !density || a->Tq != a->Tk || a->Tq < 2 || last_q < 1 || block_topk < 1) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA minference prefill: bad arguments (need Tq == Tk >= 2, last_q >= 1, "
                     "block_topk >= 1)");
        goto out;
    }
    N = a->Tq;
    Hq = a->Hq;
    nblk = (N + SP_BM - 1) / SP_BM;
    nbp = (N + (SP_BM - N % SP_BM)) / SP_BM;
    kk = block_topk < nbp ? block_topk : nbp;
    lq = last_q < N ? last_q : N;
    if (ws->host_n < (size_t)Hq * 7) {
        scb_free(ws->host);
        ws->host = (int32_t *)scb_malloc(sizeof(int32_t) * (size_t)Hq * 7);
        ws->host_n = ws->host ? (size_t)Hq * 7 : 0;
        if (!ws->host) {
            rc = scb_err(err, SCB_E_NOMEM, "CUDA minference: out of memory");
            goto out;
        }
    }
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));   /* the host copy is reused: last upload done */
    hp = ws->host;
    vs_h = hp + 3 * Hq;
    vs_v = vs_h + Hq;
    vs_s = vs_v + Hq;
    bs_h = vs_s + Hq;
    for (int h = 0; h < Hq; h++) {
        const struct scb_minf_cuda_pattern *P = &pat[h];
        if (P->type == 2) {
            hp[3 * h] = SCB_SPARSE_STREAM;
            hp[3 * h + 1] = P->v;
            hp[3 * h + 2] = P->s > 0 ? P->s : 1;
        } else if (P->type == 1) {
            hp[3 * h] = SCB_SPARSE_LIST;
            hp[3 * h + 1] = hp[3 * h + 2] = 0;
            bs_h[nbs++] = h;
            if (kk > lds) lds = kk;
        } else if (P->type == 0) {
            int v = P->v < 30 ? 30 : P->v, s = P->s < 50 ? 50 : P->s;
            if (v > N) v = N;
            if (s > N) s = N;
            hp[3 * h] = SCB_SPARSE_LIST;
            hp[3 * h + 1] = hp[3 * h + 2] = 0;
            vs_h[nvs] = h;
            vs_v[nvs] = v;
            vs_s[nvs] = s;
            nvs++;
            if (s > lds) lds = s;
            if (v > ldv) ldv = v;
        } else {
            rc = scb_err(err, SCB_E_INVAL, "CUDA minference prefill: head %d has pattern type %d", h, P->type);
            goto out;
        }
    }
    /* buffers */
    need = sizeof(int32_t) * (size_t)Hq * nblk * ((size_t)lds + (size_t)ldv + 2);
    SCB_TRY(sp_grow_(cc, &ws->lists, &ws->lists_bytes, need, err));
    SCB_TRY(sp_grow_(cc, (void **)&ws->small, &ws->small_bytes, sizeof(int32_t) * (size_t)Hq * 7, err));
    hc = nvs;
    if (nvs > 0) {
        size_t per = scb_cuda_minf_vs_work_bytes(1, lq, N);
        hc = (int)(SP_SCORE_BUDGET / per);
        if (hc < 1) hc = 1;
        if (hc > nvs) hc = nvs;
    }
    work_need = 16;
    if (nvs > 0) work_need = scb_cuda_minf_vs_work_bytes(hc, lq, N);
    if (nbs > 0 && scb_cuda_minf_bs_work_bytes(nbs, N, a->D) > work_need)
        work_need = scb_cuda_minf_bs_work_bytes(nbs, N, a->D);
    SCB_TRY(sp_grow_(cc, &ws->work, &ws->work_bytes, work_need, err));
    SCB_TRY(sp_grow_(cc, (void **)&ws->VS, &ws->vs_bytes, sizeof(int32_t) * 2 * (size_t)(nvs > 0 ? nvs : 1) * N, err));
    if (!ws->pairs) SCB_CUDA_TRY(cudaMalloc((void **)&ws->pairs, sizeof *ws->pairs));
    SCB_CUDA_TRY(cudaMemcpyAsync(ws->small, ws->host, sizeof(int32_t) * (size_t)Hq * 7, cudaMemcpyHostToDevice,
                                 cc->stream));
    bo = (int32_t *)ws->lists;
    bc = bo + (size_t)Hq * nblk * lds;
    ci = bc + (size_t)Hq * nblk;
    cn = ci + (size_t)Hq * nblk * ldv;
    {
        const int32_t *d_vs_h = ws->small + 3 * Hq, *d_vs_v = d_vs_h + Hq, *d_vs_s = d_vs_v + Hq, *d_bs_h = d_vs_s + Hq;
        int32_t *V = ws->VS, *S = ws->VS + (size_t)(nvs > 0 ? nvs : 1) * N;
        for (int g0 = 0; g0 < nvs; g0 += hc) {
            const int n = nvs - g0 < hc ? nvs - g0 : hc;
            SCB_TRY(scb_cuda_minf_vs_estimate(cc, a->q, a->k, a->kv_tok_stride, a->kv_head_stride, N, Hq, a->Hkv,
                                              a->D, a->scale, last_q, d_vs_h + g0, n, d_vs_v + g0, d_vs_s + g0,
                                              V + (size_t)g0 * N, S + (size_t)g0 * N, N, NULL, NULL, ws->work, err));
        }
        SCB_TRY(scb_cuda_minf_convert(cc, N, V, S, N, d_vs_v, d_vs_s, d_vs_h, nvs, bo, bc, ci, cn, lds, ldv, err));
        SCB_TRY(scb_cuda_minf_block_select(cc, a->q, a->k, a->kv_tok_stride, a->kv_head_stride, N, Hq, a->Hkv,
                                           a->D, block_topk, d_bs_h, nbs, bo, bc, cn, lds, ws->work, err));
    }
    x = *a;
    x.head_pat = ws->small;
    x.block_offset = bo;
    x.block_count = bc;
    x.column_index = ci;
    x.column_count = cn;
    x.lds = lds;
    x.ldv = ldv;
    x.dense_from = N;
    x.pairs = ws->pairs;
    SCB_CUDA_TRY(cudaMemsetAsync(ws->pairs, 0, sizeof *ws->pairs, cc->stream));
    SCB_TRY(scb_cuda_sparse_attn(cc, &x, err));
    SCB_CUDA_TRY(cudaMemcpyAsync(&pairs, ws->pairs, sizeof pairs, cudaMemcpyDeviceToHost, cc->stream));
    SCB_CUDA_TRY(cudaStreamSynchronize(cc->stream));
    *density = (double)pairs / ((double)Hq * ((double)N * (double)(N + 1) / 2.0));
out:
    return rc;
}
