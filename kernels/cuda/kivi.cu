/* kivi.cu — KIVI's quantized KV store on the device: the key (per channel) and value (per
 * token) quantize kernels, a dequantize kernel for the parity test, and the split-K decode
 * attention that reads the packed store, dequantizing on the fly, plus the full-precision bf16
 * entries (residual and temp tokens), merged with log-sum-exp weights (see kivi_cuda.h). */
#include "kernels/kivi_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/attn_common.cuh"

enum { KIVI_THREADS = 128, KIVI_MAXG = 16, KIVI_MAXDT = 2 };   /* D <= KIVI_THREADS * KIVI_MAXDT */

extern "C" void scb_kivi_cuda_store_bytes(int Hkv, int D, int bits, int group, int cap, size_t *codes,
                                          size_t *meta)
{
    *codes = scb_kivi_code_words(Hkv, D, bits, cap) * sizeof(uint32_t);   /* scb_kivi_code_pos's layout */
    *meta = (size_t)Hkv * D * (cap / group) * sizeof(float);
}

extern "C" size_t scb_kivi_attn_cuda_work_floats(int Hq, int D)
{
    return (size_t)SCB_KIVI_MAX_SPLITS * Hq * (D + 2);
}

static int check_store(const struct scb_kivi_cuda_store *s, const char *what, struct scb_ctx *err)
{
    if (!s || !s->k_codes || !s->k_scale || !s->k_min || !s->v_codes || !s->v_scale || !s->v_min ||
        s->Hkv < 1 || s->D < 2 || s->D % 2 || s->D > KIVI_THREADS * KIVI_MAXDT ||
        (s->bits != 2 && s->bits != 4 && s->bits != 8) || s->group < 1 || s->D % s->group ||
        s->group % (32 / s->bits) || s->cap < 0 || s->cap % s->group)
        return scb_err(err, SCB_E_INVAL, "CUDA kivi %s: bad store (Hkv=%d D=%d bits=%d group=%d cap=%d; D even "
                       "<= %d, bits 2/4/8, group divides D and cap and is a multiple of 32/bits)", what,
                       s ? s->Hkv : 0, s ? s->D : 0, s ? s->bits : 0, s ? s->group : 0, s ? s->cap : 0,
                       KIVI_THREADS * KIVI_MAXDT);
    return SCB_OK;
}

/* x_hat = code * s + mn, rounded after the multiply and after the add (the C reference). */
static __device__ __forceinline__ float kivi_deq(uint32_t code, float s, float mn)
{
    return __fadd_rn(__fmul_rn((float)code, s), mn);
}

/* The range of one group of n values x[i * stride] (bf16): lo = min, s = (max - lo) / (2^b - 1)
 * (IEEE division), as scb_kivi_quant_group. */
template <int BITS>
static __device__ void kivi_group_range(const uint16_t *x, size_t stride, int n, float *scale, float *mn)
{
    const float qmax = (float)((1 << BITS) - 1);
    float lo = scb_bf2f(x[0]), hi = lo;
    for (int i = 1; i < n; i++) {
        const float t = scb_bf2f(x[(size_t)i * stride]);
        lo = fminf(lo, t);
        hi = fmaxf(hi, t);
    }
    *scale = __fdiv_rn(__fsub_rn(hi, lo), qmax);
    *mn = lo;
}

/* The code of x in a group of scale s and minimum lo: rint(clamp((x - lo) / s)), 0 when s == 0. */
template <int BITS>
static __device__ __forceinline__ uint32_t kivi_code(float x, float s, float lo)
{
    const float qmax = (float)((1 << BITS) - 1);
    if (s == 0.0f) return 0u;
    const float t = fminf(fmaxf(__fdiv_rn(__fsub_rn(x, lo), s), 0.0f), qmax);
    return (uint32_t)rintf(t);                        /* half to even, as nearbyintf */
}

/* Quantize tokens t0 .. t0+n-1 of x (Hkv, kcap, D) bf16 (keys or values) into the store. Block
 * (32-token block t0/32 + blockIdx.x, KV head blockIdx.y): first the scale/min of the groups the
 * block's tokens in range touch (keys: per channel over `group` tokens, written by the block
 * holding the group's first token; values: per token over `group` channels) into shared memory
 * and the store, then each of the block's code words (scb_kivi_code_pos), fields of tokens
 * outside the range kept. A word never spans two blocks: the launch has no write races. */
enum { KQ_THREADS = 128, KQ_META = 256 * 10 };   /* keys: D <= 256 x (32/group + 2) groups */
template <int BITS, bool KEYS>
__global__ void __launch_bounds__(KQ_THREADS)
kivi_quant_kernel(struct scb_kivi_cuda_store s, const uint16_t *x, long long kcap, int t0, int n)
{
    __shared__ float sc_s[KQ_META], mn_s[KQ_META];   /* keys (group, D) / values (token, D / group) */
    const int D = s.D, grp = s.group, h = blockIdx.y, b = t0 / 32 + (int)blockIdx.x;
    const int lo_t = max(t0, 32 * b), hi_t = min(t0 + n, 32 * b + 32), vg = D / grp;
    const int g_first = lo_t / grp, ng = (hi_t - 1) / grp - g_first + 1;
    const uint16_t *xh = x + (size_t)h * kcap * D;
    if (KEYS) {
        const size_t capg = (size_t)s.cap / grp;
        for (int i = threadIdx.x; i < ng * D; i += KQ_THREADS) {
            const int gl = i / D, d = i % D, gi = g_first + gl;
            float sc, mn;
            kivi_group_range<BITS>(xh + (size_t)gi * grp * D + d, (size_t)D, grp, &sc, &mn);
            sc_s[i] = sc; mn_s[i] = mn;
            if (gi * grp >= 32 * b) {
                const size_t m = ((size_t)h * D + d) * capg + gi;
                s.k_scale[m] = sc; s.k_min[m] = mn;
            }
        }
    } else {
        for (int i = threadIdx.x; i < (hi_t - lo_t) * vg; i += KQ_THREADS) {
            const int t = lo_t + i / vg, c = i % vg;
            float sc, mn;
            kivi_group_range<BITS>(xh + (size_t)t * D + (size_t)c * grp, 1, grp, &sc, &mn);
            sc_s[(t - 32 * b) * vg + c] = sc; mn_s[(t - 32 * b) * vg + c] = mn;
            const size_t m = ((size_t)h * s.cap + t) * vg + c;
            s.v_scale[m] = sc; s.v_min[m] = mn;
        }
    }
    __syncthreads();
    constexpr int LW = BITS / 2, FH = 16 / BITS;      /* words per lane, fields per 16-bit half */
    const int nd = (D + 15) / 16;
    uint32_t *codes = (KEYS ? s.k_codes : s.v_codes) +
                      (((size_t)h * ((s.cap + 31) / 32) + b) * nd) * 32 * LW;
    for (int wi = threadIdx.x; wi < nd * 32 * LW; wi += KQ_THREADS) {
        const int dt = wi / (32 * LW), lane = (wi / LW) % 32, wk = wi % LW, gid = lane >> 2, tig = lane & 3;
        uint32_t word = codes[wi];
#pragma unroll
        for (int j = 0; j < 2; j++)
#pragma unroll
            for (int f = 0; f < FH; f++) {
                const int k = wk * FH + f, r = k >> 2, i = k & 3;
                const int t = 32 * b + (KEYS ? gid + 8 * i : 2 * tig + j + 8 * i);
                const int d = 16 * dt + (KEYS ? 2 * tig + j + 8 * r : gid + 8 * r);
                if (t < lo_t || t >= hi_t || d >= D) continue;
                const int mi = KEYS ? (t / grp - g_first) * D + d : (t - 32 * b) * vg + d / grp;
                const uint32_t c = kivi_code<BITS>(scb_bf2f(xh[(size_t)t * D + d]), sc_s[mi], mn_s[mi]);
                const int bit = 16 * j + f * BITS;
                word = (word & ~(((1u << BITS) - 1u) << bit)) | (c << bit);
            }
        codes[wi] = word;
    }
}

template <int BITS>
static int quant_launch(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, const uint16_t *x,
                        size_t kcap, int t0, int n, int keys, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const dim3 grid((unsigned)((t0 + n - 1) / 32 - t0 / 32 + 1), (unsigned)s->Hkv);
    if (keys)
        kivi_quant_kernel<BITS, true><<<grid, KQ_THREADS, 0, cc->stream>>>(*s, x, (long long)kcap, t0, n);
    else
        kivi_quant_kernel<BITS, false><<<grid, KQ_THREADS, 0, cc->stream>>>(*s, x, (long long)kcap, t0, n);
    SCB_LAUNCH_CHECK("kivi_quant_kernel");
out:
    return rc;
}

static int quant(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, const uint16_t *x, size_t kcap,
                 int t0, int n, int keys, struct scb_ctx *err)
{
    int rc = SCB_OK;
    const char *what = keys ? "quant keys" : "quant values";
    SCB_CHECK_ALIVE();
    if ((rc = check_store(s, what, err)) < 0) goto out;
    if (!x || t0 < 0 || n < 0 || (size_t)t0 + n > kcap || t0 + n > s->cap ||
        (keys && (t0 % s->group || n % s->group))) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kivi %s: tokens %d..%d outside the store (cap %d) or the cache "
                     "(cap %zu)%s", what, t0, t0 + n, s->cap, kcap, keys ? ", or not whole key groups" : "");
        goto out;
    }
    if (n == 0) goto out;
    switch (s->bits) {
    case 2: rc = quant_launch<2>(cc, s, x, kcap, t0, n, keys, err); break;
    case 4: rc = quant_launch<4>(cc, s, x, kcap, t0, n, keys, err); break;
    default: rc = quant_launch<8>(cc, s, x, kcap, t0, n, keys, err); break;
    }
out:
    return rc;
}

extern "C" int scb_kivi_cuda_quant_keys(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                                        const uint16_t *k, size_t kcap, int t0, int n, struct scb_ctx *err)
{
    return quant(cc, s, k, kcap, t0, n, 1, err);
}

extern "C" int scb_kivi_cuda_quant_values(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                                          const uint16_t *v, size_t kcap, int t0, int n, struct scb_ctx *err)
{
    return quant(cc, s, v, kcap, t0, n, 0, err);
}

__global__ void kivi_dequant_kernel(struct scb_kivi_cuda_store s, int nk, int nv, float *k, float *v)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const int D = s.D;
    const uint32_t mask = (1u << s.bits) - 1u;
    const int nmax = nk > nv ? nk : nv;
    if (idx >= (long long)s.Hkv * nmax * D) return;
    const int d = (int)(idx % D);
    const long long r = idx / D;
    const int t = (int)(r % nmax), h = (int)(r / nmax);
    int bit;
    if (t < nk) {
        const size_t row = (size_t)h * D + d, capg = (size_t)s.cap / s.group;
        const uint32_t w = s.k_codes[scb_kivi_code_pos(1, D, s.cap, s.bits, h, t, d, &bit)];
        k[((size_t)h * nk + t) * D + d] = kivi_deq((w >> bit) & mask,
                                                   s.k_scale[row * capg + t / s.group], s.k_min[row * capg + t / s.group]);
    }
    if (t < nv) {
        const size_t tok = (size_t)h * s.cap + t;
        const uint32_t w = s.v_codes[scb_kivi_code_pos(0, D, s.cap, s.bits, h, t, d, &bit)];
        v[((size_t)h * nv + t) * D + d] = kivi_deq((w >> bit) & mask,
                                                   s.v_scale[tok * (D / s.group) + d / s.group],
                                                   s.v_min[tok * (D / s.group) + d / s.group]);
    }
}

extern "C" int scb_kivi_cuda_dequant(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int nk, int nv,
                                     float *k, float *v, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if ((rc = check_store(s, "dequant", err)) < 0) goto out;
    if (!k || !v || nk < 0 || nv < 0 || nk > s->cap || nv > s->cap) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kivi dequant: %d keys / %d values outside the store (cap %d)",
                     nk, nv, s->cap);
        goto out;
    }
    {
        long long items = (long long)s->Hkv * (nk > nv ? nk : nv) * s->D;
        if (items == 0) goto out;
        kivi_dequant_kernel<<<(unsigned)((items + 127) / 128), 128, 0, cc->stream>>>(*s, nk, nv, k, v);
        SCB_LAUNCH_CHECK("kivi_dequant_kernel");
    }
out:
    return rc;
}

/* ---- attention ---------------------------------------------------------------------------
 * Block (split, KV head g), KIVI_THREADS threads, keys [split*chunk, min(n, split*chunk+chunk))
 * in tiles of KIVI_THREADS: thread t scores key j0+t for the G <= GM query heads of g, the
 * tile's online-softmax update per head by one warp, then thread d accumulates channel d (and
 * d + KIVI_THREADS) of P·V (the code blocks of a tile are one contiguous range). GM is a
 * compile-time bound on G (1, 2, 4, 8 or 16) so the per-head loops unroll without waste.
 * Partials (unnormalized output, m, l) go to work (split, Hq, D + 2). */
/* Shared memory of the attention kernel for D, GM, BITS, group (floats; codes are 32-bit words):
 * q (D, GM), p (GM, T), m/l/alpha (3 GM), then one tile's key code blocks (T/32 blocks of
 * ceil(D/16) x 16 bits words, scb_kivi_code_pos), key scale/min (2, D, NTG), value code blocks
 * (as the keys'), value scale/min (2, T, D/group), NTG = the key groups a tile of T tokens can
 * touch. */
/* Kernel v1 keeps a tile's 32 x LW code words (LW = bits/2) in shared memory with the word
 * offset p = lane LW + w XOR-swizzled by kivi_v1_swz(lane, tile) (an involution that leaves the
 * bits it depends on alone): the 8 lanes (gid) one channel's or token's codes sit in, and the two
 * tiles of a warp's 32 value channels, fall in distinct banks (unswizzled, 8 bits had 8-way
 * conflicts). tile counts the tiles staged (block x ceil(D/16) + channel tile). */
template <int LW>
static __device__ __forceinline__ int kivi_v1_swz(int lane, int tile)
{
    if constexpr (LW == 1) return tile & 1;
    else if constexpr (LW == 2) return ((lane >> 4) | ((tile & 1) << 1)) << 1;
    else return ((lane >> 3) << 2) ^ (tile & 1);
}

static size_t attn_smem_floats(int D, int GM, int bits, int group)
{
    const int ntg = KIVI_THREADS / group + 2;
    const size_t cw = (size_t)KIVI_THREADS / 32 * ((D + 15) / 16) * 16 * bits;   /* a tile's code words */
    return (size_t)GM * D + (size_t)GM * KIVI_THREADS + (size_t)((3 * GM + 3) / 4 * 4) + cw +
           2 * (size_t)D * ntg + cw + 2 * (size_t)KIVI_THREADS * (D / group);
}

/* y[h] += w[h] x for the GM heads of a channel / token (w in shared memory, the heads side by
 * side: one 16-byte load for four heads). */
template <int GM>
static __device__ __forceinline__ void kivi_axpy_heads(float (&y)[GM], const float *w, float x)
{
    if constexpr (GM % 4 == 0) {
#pragma unroll
        for (int h = 0; h < GM; h += 4) {
            const float4 wv = *reinterpret_cast<const float4 *>(w + h);
            y[h] = fmaf(wv.x, x, y[h]);
            y[h + 1] = fmaf(wv.y, x, y[h + 1]);
            y[h + 2] = fmaf(wv.z, x, y[h + 2]);
            y[h + 3] = fmaf(wv.w, x, y[h + 3]);
        }
    } else {
#pragma unroll
        for (int h = 0; h < GM; h++) y[h] = fmaf(w[h], x, y[h]);
    }
}

/* Block (split, KV head g), KIVI_THREADS threads, keys [split*chunk, min(n, split*chunk+chunk))
 * in tiles of T = KIVI_THREADS tokens (chunk and the tile starts are multiples of T). Per tile:
 * the tile's packed key codes (swizzled: kivi_v1_swz), key scale/min, value codes and value
 * scale/min are staged into shared memory by all threads at once (independent coalesced loads:
 * a tile's code blocks are one contiguous range), then thread t scores key j0+t for the G <= GM
 * query heads of g,
 * one warp per head updates the online softmax, and thread d accumulates channel d (and
 * d + T) of P·V. Full-precision tokens (residual, temp) are read from the bf16 cache. GM is a
 * compile-time bound on G (1, 2, 4, 8 or 16). Partials (unnormalized output, m, l) go to
 * work (split, Hq, D + 2). */
template <int BITS, int GM>
__global__ void __launch_bounds__(KIVI_THREADS, 4)
kivi_attn_part_kernel(struct scb_kivi_cuda_store s, struct scb_kivi_attn_cuda_args a, int G, int chunk, float scale)
{
    extern __shared__ __align__(16) float sm[];
    constexpr int T = KIVI_THREADS, LW = BITS / 2;     /* LW: code words per lane of a block */
    constexpr uint32_t mask = (1u << BITS) - 1u;
    const int D = s.D, tid = threadIdx.x, split = blockIdx.x, g = blockIdx.y, grp = s.group;
    constexpr int TS = 32 * LW;                       /* words per code tile */
    const int ntg = T / grp + 2, vg = D / grp, nd = (D + 15) / 16, WB = nd * 32 * LW;   /* words per block */
    float *q_s = sm;                               /* (D, GM) */
    /* Layout for few shared-memory loads per multiply-add (the kernel is bound by them): q and p
     * hold the GM heads of a channel / token together (one 16-byte load for four heads), the
     * scale and min of a group side by side (one 8-byte load); offsets stay 16 / 8-byte aligned */
    float *p_s = q_s + GM * D;                     /* (T, GM) */
    float *m_s = p_s + GM * T;                     /* (GM) */
    float *l_s = m_s + GM;                         /* (GM) */
    float *al_s = l_s + GM;                        /* (GM) */
    uint32_t *kc_s = reinterpret_cast<uint32_t *>(m_s + (3 * GM + 3) / 4 * 4);   /* (T/32 x nd tiles, TS) key codes */
    float2 *kq_s = reinterpret_cast<float2 *>(kc_s + (size_t)(T / 32) * nd * TS);   /* (D, ntg) key (scale, min) */
    uint32_t *vc_s = reinterpret_cast<uint32_t *>(kq_s + (size_t)D * ntg);   /* (T/32 x nd tiles, TS) value codes */
    float2 *vq_s = reinterpret_cast<float2 *>(vc_s + (size_t)(T / 32) * nd * TS);   /* (T, vg) value (scale, min) */
    const int j_begin = split * chunk;
    const int j_end = min(a.n, j_begin + chunk);
    for (int i = tid; i < GM * D; i += T) {
        const int d = i / GM, h = i % GM;
        q_s[i] = h < G ? scb_bf2f(a.q[((size_t)g * G + h) * D + d]) : 0.0f;
    }
    if (tid < GM) { m_s[tid] = -INFINITY; l_s[tid] = 0.0f; }
    float acc[KIVI_MAXDT][GM];
#pragma unroll
    for (int c = 0; c < KIVI_MAXDT; c++)
#pragma unroll
        for (int h = 0; h < GM; h++) acc[c][h] = 0.0f;
    const size_t capg = (size_t)s.cap / grp, hw = (size_t)((s.cap + 31) / 32) * WB;   /* a head's code words */
    const uint32_t *kc = s.k_codes + (size_t)g * hw;
    const float *ks = s.k_scale + (size_t)g * D * capg, *km = s.k_min + (size_t)g * D * capg;
    const uint32_t *vc = s.v_codes + (size_t)g * hw;
    const float *vs = s.v_scale + (size_t)g * s.cap * vg, *vm = s.v_min + (size_t)g * s.cap * vg;
    const uint16_t *kf = a.k + (size_t)g * a.kcap * D, *vf = a.v + (size_t)g * a.kcap * D;
    const int warp = tid / 32, lane = tid % 32;
    for (int j0 = j_begin; j0 < j_end; j0 += T) {
        /* stage the tile's quantized keys and values */
        const int nk_q = max(0, min(T, min(a.Tk_q, j_end) - j0));     /* quantized keys of the tile */
        const int nv_q = max(0, min(T, min(a.Tv_q, j_end) - j0));     /* quantized values */
        const int g_lo = j0 / grp;
        if (nk_q > 0) {   /* j0 is a multiple of T: whole code blocks */
            const int kg = (j0 + nk_q - 1) / grp - g_lo + 1;
            for (int i = tid; i < (nk_q + 31) / 32 * WB; i += T)
                kc_s[i / TS * TS + (i % TS ^ kivi_v1_swz<LW>(i % TS / LW, i / TS))] = kc[(size_t)j0 / 32 * WB + i];
            for (int i = tid; i < D * kg; i += T) {
                const int d = i / kg, e = i % kg;
                kq_s[d * ntg + e] = make_float2(ks[(size_t)d * capg + g_lo + e], km[(size_t)d * capg + g_lo + e]);
            }
        }
        for (int i = tid; i < (nv_q + 31) / 32 * WB; i += T)
            vc_s[i / TS * TS + (i % TS ^ kivi_v1_swz<LW>(i % TS / LW, i / TS))] = vc[(size_t)j0 / 32 * WB + i];
        for (int i = tid; i < nv_q * vg; i += T) vq_s[i] = make_float2(vs[(size_t)j0 * vg + i], vm[(size_t)j0 * vg + i]);
        __syncthreads();
        const int j = j0 + tid;
        float dot[GM];
#pragma unroll
        for (int h = 0; h < GM; h++) dot[h] = 0.0f;
        if (j < j_end) {
            if (tid < nk_q) {
                /* token tid of the tile: block tid / 32, lane 4 (tid % 8) + (channel % 8) / 2, fields
                 * 4r + i (i = tid % 32 / 8, r = channel % 16 / 8) of half channel % 2 */
                const int i = (tid & 31) >> 3;
                const int gid = tid & 7, tb = (tid >> 5) * nd;    /* the token's lane group, first tile */
                const float2 *kqe = kq_s + (j / grp - g_lo);
                /* r = 0 / 1: the word and shift of field 4r + i; a word (pre-shifted) gives channels
                 * 2tg + j + 8r of its tile (j = 0, 1: bits 0 and 16) */
                const int w0 = i * BITS / 16, w1 = (4 + i) * BITS / 16, s0 = i * BITS % 16, s1 = (4 + i) * BITS % 16;
                auto tile = [&](int d0, auto check) {
                    const int tl = tb + (d0 >> 4);
                    const uint32_t *kct = kc_s + (size_t)tl * TS;
#pragma unroll
                    for (int tg = 0; tg < 4; tg++) {
                        const int ln = 4 * gid + tg, z = kivi_v1_swz<LW>(ln, tl);
                        const uint32_t x0 = kct[(ln * LW + w0) ^ z] >> s0, x1 = kct[(ln * LW + w1) ^ z] >> s1;
#pragma unroll
                        for (int e = 0; e < 4; e++) {             /* channel 2tg + (e & 1) + 8 (e >> 1) */
                            const int d = d0 + 2 * tg + (e & 1) + 8 * (e >> 1);
                            if (!decltype(check)::value || d < D) {
                                const float2 sm2 = kqe[d * ntg];
                                const uint32_t c = ((e >> 1 ? x1 : x0) >> (16 * (e & 1))) & mask;
                                kivi_axpy_heads<GM>(dot, q_s + d * GM, kivi_deq(c, sm2.x, sm2.y));
                            }
                        }
                    }
                };
                int d0 = 0;
                for (; d0 + 16 <= D; d0 += 16) tile(d0, std::false_type{});
                if (d0 < D) tile(d0, std::true_type{});
            } else {
                const uint16_t *kr = kf + (size_t)j * D;
#pragma unroll 4
                for (int d = 0; d < D; d += 2) {
                    const uint32_t two = *reinterpret_cast<const uint32_t *>(kr + d);
                    const float k0 = __uint_as_float(two << 16), k1 = __uint_as_float(two & 0xffff0000u);
#pragma unroll
                    for (int h = 0; h < GM; h++)
                        dot[h] = fmaf(q_s[(d + 1) * GM + h], k1, fmaf(q_s[d * GM + h], k0, dot[h]));
                }
            }
        }
        if constexpr (GM % 4 == 0) {
#pragma unroll
            for (int h = 0; h < GM; h += 4)
                *reinterpret_cast<float4 *>(p_s + tid * GM + h) =
                    j < j_end ? make_float4(dot[h] * scale, dot[h + 1] * scale, dot[h + 2] * scale, dot[h + 3] * scale)
                              : make_float4(-INFINITY, -INFINITY, -INFINITY, -INFINITY);
        } else {
#pragma unroll
            for (int h = 0; h < GM; h++) p_s[tid * GM + h] = j < j_end ? dot[h] * scale : -INFINITY;
        }
        __syncthreads();
        for (int h = warp; h < G; h += T / 32) {
            float mx = -INFINITY;
            for (int i = lane; i < T; i += 32) mx = fmaxf(mx, p_s[i * GM + h]);
            for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            const float m_old = m_s[h], m_new = fmaxf(m_old, mx);
            float sum = 0.0f;
            for (int i = lane; i < T; i += 32) {
                const float sc = p_s[i * GM + h];
                const float ex = sc == -INFINITY ? 0.0f : expf(sc - m_new);
                p_s[i * GM + h] = ex;
                sum += ex;
            }
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp();
            if (lane == 0) {
                const float al = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
                al_s[h] = al;
                l_s[h] = l_s[h] * al + sum;
                m_s[h] = m_new;
            }
        }
        __syncthreads();
        const int nt = min(T, j_end - j0);
#pragma unroll
        for (int c = 0; c < KIVI_MAXDT; c++) {
            const int d = tid + c * T;
            if (d < D) {
#pragma unroll
                for (int h = 0; h < GM; h++) acc[c][h] *= h < G ? al_s[h] : 0.0f;
                /* channel d: lane 4 (d % 8) + (token % 8) / 2 of its channel tile, fields 4r + i
                 * (r = d % 16 / 8, i = token % 32 / 8) of half token % 2 */

                const float2 *vqd = vq_s + d / grp;
                const int r = (d & 15) >> 3;
                auto chunk8 = [&](int t0, auto check) {   /* tokens t0 .. t0 + 7 */
                    const int k = 4 * r + ((t0 & 31) >> 3);
                    const int tl = (t0 >> 5) * nd + (d >> 4), wk = k * BITS / 16, sh = k * BITS % 16;
                    const uint32_t *vct = vc_s + (size_t)tl * TS;
#pragma unroll
                    for (int tg = 0; tg < 4; tg++) {              /* tokens t0 + 2tg, t0 + 2tg + 1 */
                        const int ln = 4 * (d & 7) + tg;
                        const uint32_t x = vct[(ln * LW + wk) ^ kivi_v1_swz<LW>(ln, tl)] >> sh;
#pragma unroll
                        for (int jj = 0; jj < 2; jj++) {
                            const int t = t0 + 2 * tg + jj;
                            if (!decltype(check)::value || t < nv_q) {
                                const float2 sm2 = vqd[t * vg];
                                kivi_axpy_heads<GM>(acc[c], p_s + t * GM,
                                                    kivi_deq((x >> (16 * jj)) & mask, sm2.x, sm2.y));
                            }
                        }
                    }
                };
                int t0 = 0;
                for (; t0 + 8 <= nv_q; t0 += 8) chunk8(t0, std::false_type{});
                if (t0 < nv_q) chunk8(t0, std::true_type{});
                for (int t = nv_q; t < nt; t++) {
                    kivi_axpy_heads<GM>(acc[c], p_s + t * GM, scb_bf2f(vf[(size_t)(j0 + t) * D + d]));
                }
            }
        }
        __syncthreads();
    }
    float *w = a.work + ((size_t)split * a.Hq + (size_t)g * G) * (D + 2);
#pragma unroll
    for (int c = 0; c < KIVI_MAXDT; c++) {
        const int d = tid + c * T;
        if (d < D) {
#pragma unroll
            for (int h = 0; h < GM; h++)
                if (h < G) w[(size_t)h * (D + 2) + d] = acc[c][h];
        }
    }
    if (tid < G) {
        w[(size_t)tid * (D + 2) + D] = m_s[tid];
        w[(size_t)tid * (D + 2) + D + 1] = l_s[tid];
    }
}

/* fp32 x as bf16 hi + bf16 lo (x - hi rounded): two packed pairs for (x0, x1). */
static __device__ __forceinline__ void k4_split(float x0, float x1, uint32_t &hi, uint32_t &lo)
{
    const __nv_bfloat162 h = __floats2bfloat162_rn(x0, x1);
    hi = *reinterpret_cast<const uint32_t *>(&h);
    lo = scb_pack_bf2(x0 - __low2float(h), x1 - __high2float(h));
}

/* ---- kernel v4: tensor cores, warps streaming their own keys -------------------------------
 * For D = 128, 2 or 4 bits, G <= 8 query heads per KV head, groups of 32, 64 or 128 (every
 * 32-key step lies in one key group). Each of the 4 warps of a block (split, KV head g) owns a
 * contiguous range of 32-key steps and runs alone: no block barrier after the start. A step's
 * packed key codes, key scale/min, value codes and value scale/min are copied into the warp's
 * shared-memory stage with cp.async while the previous step computes (two stages). Per step:
 * - scores S^T (heads x keys) = F (16 x 128) . C^T (128 x keys): the MMA's 16 rows are the 8 heads'
 *   folded factors q_d s_de in bf16 hi (rows 0-7) and lo = q s - hi (rows 8-15), so one MMA gives
 *   both halves of every product and hi + lo carries ~16 bits of q s; C are the codes plus 128,
 *   exact in bf16 (128 + c built in the mantissa), and one more MMA per k-step with C = 128
 *   everywhere gives the offset's share sum_d F_d 128 (exact products, fp32 sums like the
 *   scores'), subtracted once per step; a lane's words give keys gid and 8 + gid of its four
 *   channels at once. Plus sum_d q_d m_de per head. Full-precision keys
 *   (past Tk_q) multiply the bf16 keys by q (exact in bf16: one MMA, rows 8-15 zero).
 * - online softmax per head in registers (log2 units, ex2): the lane holding head gid's scores of keys 2tig, 2tig+1,
 *   8+2tig, 9+2tig of each 16-key half holds exactly the A fragment P . V needs (no shuffles);
 *   the accumulator is rescaled only when a maximum grows.
 * - O (heads x channels) += P' (heads x 16 tokens) . V (16 tokens x channels), P' = p_t s_tg for
 *   the channel group g rounded to bf16 (as FlashAttention rounds P before P V: 2^-9 relative
 *   per weight), V the value codes (exact bf16), plus sum_t p_t m_tg per channel group in fp32;
 *   tokens past Tv_q use p (bf16) and the bf16 values.
 * The 4 warps' partials are merged in shared memory; the block's (unnormalized O, m, l) goes to
 * work as partition blockIdx.x. */
enum { K4_STEP = 32, K4_WARPS = 4, K4_D = 128, K4_KS = K4_D / 16, K4_MT = K4_D / 16, K4_MAXNG = 4 };

/* One warp's stage: a 32-key step. The step's key and value code blocks as stored (32 tokens x
 * 16 channels per tile, lane-major: scb_kivi_code_pos), so lane reads of its own words are
 * conflict-free; the scale/min of the step's key group at (k-step d/16, tig, slot) where the lane
 * (gid, tig) of k-step d/16 reads channels 2tig, 2tig+1, 2tig+8, 2tig+9 (slots 0..3). */
template <int BITS>
struct k4_stage {
    static constexpr int LW = BITS / 2;                         /* code words per lane and tile */
    static constexpr int WB = K4_KS * 32 * LW;                  /* code words per block (step) */
    uint32_t kc[K4_KS][32][LW];           /* (k-step, lane, word) key codes */
    float ks[K4_KS][4][4], km[K4_KS][4][4];   /* (k-step, tig, slot) key scale / min of the step's group */
    uint32_t vc[K4_MT][32][LW];           /* (channel tile, lane, word) value codes */
    float vs[K4_MAXNG][K4_STEP], vm[K4_MAXNG][K4_STEP];   /* (channel group, token) value scale / min */
};

static __device__ __forceinline__ void k4_cp4(void *smem, const void *gmem)
{
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"((unsigned)__cvta_generic_to_shared(smem)),
                 "l"(gmem) : "memory");
}

/* A lane's step-invariant load offsets (elements from the store's arrays; 32 bits: kivi_v4_fits
 * bounds the store), set once per kernel: a step's source is one add away. */
struct k4_src {
    unsigned hc;    /* code words before KV head g's first block (keys and values alike) */
    unsigned kg;    /* key scale / min: channel `lane` of KV head g, group 0 */
    unsigned kgs;   /* groups between channels lane and lane + 32 */
    unsigned v0;    /* value tokens before KV head g's first (g * cap) */
};

/* Issue the copies of step s0 (a multiple of 32) into st: the key code block and scale/min when
 * the step is quantized (s0 < Tk_q; Tk_q is a multiple of 32), the value code block when any of
 * its tokens is (fields past Tv_q are read but not used) and the quantized values' scale/min
 * (tokens s0 .. min(s0 + 32, Tv_q)). The key group is 128 / NG tokens (the launch picks NG from
 * the store's group), so the step's group index is a shift. */
template <int BITS, int NG>
static __device__ __forceinline__ void k4_load(k4_stage<BITS> &st, int s0, int lane, const struct scb_kivi_cuda_store &s,
                                               const struct scb_kivi_attn_cuda_args &a, const struct k4_src &o)
{
    constexpr int WB = k4_stage<BITS>::WB, GS = K4_D / NG;
    const unsigned u0 = (unsigned)s0, cb = o.hc + (u0 / K4_STEP) * WB;   /* the step's code block */
    if (s0 < a.Tk_q) {
        const unsigned kg = o.kg + u0 / GS;
        const int dd = lane & 15, t = (dd & 7) >> 1, slot = (dd & 1) | ((dd >> 3) << 1);
#pragma unroll
        for (int i = 0; i < WB / 128; i++)
            scb_cp_async16(&st.kc[0][0][0] + 4 * (lane + 32 * i), s.k_codes + cb + 4 * (lane + 32 * i), true);
#pragma unroll
        for (int i = 0; i < K4_D / 32; i++) {
            const int ks = (lane >> 4) + 2 * i;           /* channel lane + 32 i */
            k4_cp4(&st.ks[ks][t][slot], s.k_scale + kg + i * o.kgs);
            k4_cp4(&st.km[ks][t][slot], s.k_min + kg + i * o.kgs);
        }
    }
    const int nv = min(K4_STEP, a.Tv_q - s0);
    const size_t m0 = (size_t)(o.v0 + u0) * NG;
    if (nv > 0) {
#pragma unroll
        for (int i = 0; i < WB / 128; i++)
            scb_cp_async16(&st.vc[0][0][0] + 4 * (lane + 32 * i), s.v_codes + cb + 4 * (lane + 32 * i), true);
    }
    if (nv == K4_STEP) {                              /* the whole step quantized: fixed trip counts */
#pragma unroll
        for (int j = 0; j < NG; j++) {
            const int i = lane + 32 * j, t = i / NG, gv = i % NG;
            k4_cp4(&st.vs[gv][t], s.v_scale + m0 + i);
            k4_cp4(&st.vm[gv][t], s.v_min + m0 + i);
        }
    } else if (nv > 0) {
        for (int i = lane; i < nv * NG; i += 32) {
            const int t = i / NG, gv = i % NG;
            k4_cp4(&st.vs[gv][t], s.v_scale + m0 + i);
            k4_cp4(&st.vm[gv][t], s.v_min + m0 + i);
        }
    }
}

/* Field K (= 4r + i) of a lane's words w of a tile, both halves, as a bf16x2 pair 128 + c (c built
 * in the mantissa: exact; the MMAs take the 128 back out with exact correction products): the
 * fragment register of (key tokens gid + 8i, channels 2tig + 8r, +1) or (value channel gid + 8r,
 * tokens 2tig + 8i, +1). One LOP3 (and a shift for K b mod 16 != 0). */
template <int BITS, int K>
static __device__ __forceinline__ uint32_t k4_field(const uint32_t *w, uint32_t magic)
{
    constexpr int WI = K * BITS / 16, SH = K * BITS % 16;
    uint32_t u;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(u) : "r"(w[WI] >> SH), "n"(BITS == 2 ? 0x00030003 : 0x000F000F), "r"(magic));
    return u;
}

/* The code of value token tl (step-local), channel ch from a stage (the partial-step path). */
template <int BITS>
static __device__ __forceinline__ uint32_t k4_vcode(const k4_stage<BITS> &S, int tl, int ch)
{
    const int k = 4 * ((ch & 15) >> 3) + (tl >> 3);
    const uint32_t w = S.vc[ch >> 4][(ch & 7) * 4 + ((tl & 7) >> 1)][k * BITS / 16];
    return (w >> (16 * (tl & 1) + k * BITS % 16)) & ((1u << BITS) - 1u);
}

/* A fragment of the factors x0..x3 (columns 2tig, 2tig+1, 2tig+8, 2tig+9 of row gid): hi parts
 * in rows 0-7, lo parts in rows 8-15. */
static __device__ __forceinline__ void k4_split_a(float x0, float x1, float x8, float x9, uint32_t A[4])
{
    k4_split(x0, x1, A[0], A[1]);
    k4_split(x8, x9, A[2], A[3]);
}

template <int BITS, int NG, int MINB>
__global__ void __launch_bounds__(128, MINB)
kivi_attn_part4_kernel(struct scb_kivi_cuda_store s, struct scb_kivi_attn_cuda_args a, int G, float scale, int ilv)
{
    extern __shared__ __align__(16) unsigned char sm4[];
    constexpr int MTG = K4_MT / NG, LW = BITS / 2;       /* 16-channel tiles per value group; words per lane */
    float4 *q4 = reinterpret_cast<float4 *>(sm4);         /* (K4_KS, 32): q of head gid, channels 2tig.. of lane */
    k4_stage<BITS> *sb = reinterpret_cast<k4_stage<BITS> *>(sm4 + sizeof(float4) * K4_KS * 32) + 2 * (threadIdx.x >> 5);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gid = lane >> 2, tig = lane & 3;
    const int g = blockIdx.y;
    struct k4_src lo;                                     /* the lane's load offsets */
    {
        const unsigned capg = (unsigned)s.cap / (K4_D / NG);
        lo.hc = (unsigned)g * ((unsigned)s.cap / K4_STEP) * (unsigned)k4_stage<BITS>::WB;
        lo.kg = ((unsigned)g * K4_D + lane) * capg;
        lo.kgs = 32u * capg;
        lo.v0 = (unsigned)g * (unsigned)s.cap;
    }
    /* the block's steps [b0, b1); warp w takes b0 + w, b0 + w + 4, ... (ilv: neighbouring warps
     * read neighbouring keys, sharing cache sectors) or its own quarter. The steps whose keys and
     * values are all quantized (the fast path) are spread over the first blocks; the rest (steps
     * with full-precision tokens: the residual's values, the temp tokens; their per-token path
     * costs several fast steps) over the last ceil(rest / 16) blocks, at most 4 a warp, so they
     * run beside the fast steps instead of after them in the last block */
    const int n = a.n_dev ? *a.n_dev : a.n;                /* keys attended (device count: graphs) */
    const int n_steps = (n + K4_STEP - 1) / K4_STEP;
    const int n_fast = min(n_steps, min(a.Tk_q, a.Tv_q) / K4_STEP), n_slow = n_steps - n_fast;
    const int nblk = (int)gridDim.x, bx = (int)blockIdx.x;
    const int nb_slow = n_fast == 0 ? nblk : (n_slow == 0 || nblk == 1) ? 0 : min(nblk - 1, (n_slow + 15) / 16);
    const int nb_fast = nblk - nb_slow;
    const bool in_fast = bx < nb_fast;
    const int r0 = in_fast ? 0 : n_fast;                             /* the block's region of steps */
    const int rn = in_fast ? (nb_slow ? n_fast : n_steps) : n_steps - r0;
    const int rb = in_fast ? nb_fast : nb_slow, rj = in_fast ? bx : bx - nb_fast;
    const int b0 = r0 + (int)((long long)rn * rj / rb);
    const int b1 = r0 + (int)((long long)rn * (rj + 1) / rb);
    const int st0 = ilv ? b0 + warp : b0 + (b1 - b0) * warp / K4_WARPS;
    const int st1 = ilv ? b1 : b0 + (b1 - b0) * (warp + 1) / K4_WARPS;
    const int sst = ilv ? K4_WARPS : 1;
    const int j_end = n;
    if (st0 < st1) k4_load<BITS, NG>(sb[0], st0 * K4_STEP, lane, s, a, lo);   /* in flight while q loads */
    scb_cp_async_commit();
    for (int i = tid; i < K4_KS * 32; i += 128) {
        const int ks = i >> 5, h = (i & 31) >> 2, d = ks * 16 + 2 * (i & 3);
        const uint16_t *qh = a.q + ((size_t)g * G + h) * K4_D;
        q4[i] = h < G ? make_float4(scb_bf2f(qh[d]), scb_bf2f(qh[d + 1]), scb_bf2f(qh[d + 8]), scb_bf2f(qh[d + 9]))
                      : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    __syncthreads();
    const uint16_t *kf = a.k + (size_t)g * a.kcap * K4_D, *vf = a.v + (size_t)g * a.kcap * K4_D;
    uint32_t magic;                                       /* 0x43004300 (bf16 128, 128) in a register */
    asm volatile("mov.b32 %0, 0x43004300;" : "=r"(magic));
    const float sl2 = scale * 1.4426950408889634f;       /* scores in log2 units: ex2 for exp */
    float acc[K4_MT][4];   /* O^T tiles: channels 16mt + gid (+8) x heads 2tig, 2tig+1 */
#pragma unroll
    for (int b = 0; b < K4_MT; b++) acc[b][0] = acc[b][1] = acc[b][2] = acc[b][3] = 0.0f;
    float v128[4] = {0.0f, 0.0f, 0.0f, 0.0f};   /* row gid < NG: sum_t P'_t 128 of channel group gid,
                                                  heads 2tig, 2tig+1 (the value codes' offset) */
    float vb[NG];          /* head gid: the lane's part of sum_t p_t m_tg per channel group */
#pragma unroll
    for (int v = 0; v < NG; v++) vb[v] = 0.0f;
    float m_run = -INFINITY, l_run = 0.0f;
    for (int st = st0, it = 0; st < st1; st += sst, it++) {
        const int s0 = st * K4_STEP;
        k4_stage<BITS> &S = sb[it & 1];
        scb_cp_async_wait<0>();
        __syncwarp();
        if (st + sst < st1) k4_load<BITS, NG>(sb[(it + 1) & 1], s0 + sst * K4_STEP, lane, s, a, lo);
        scb_cp_async_commit();
        float x[2][2][2];                                 /* (half, n-block, pair): keys 16h + 8b + 2tig + i */
        if (s0 < a.Tk_q) {                                /* quantized keys: the whole step */
            /* per k-step: the factors q s of the step's key group (hi, lo) and sum_d q m (a
             * lane's partial over its channels), then the codes of both 16-key halves */
            float c[2][2][4];
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int b = 0; b < 2; b++) c[h][b][0] = c[h][b][1] = c[h][b][2] = c[h][b][3] = 0.0f;
            float kb = 0.0f;
            float k128[4] = {0.0f, 0.0f, 0.0f, 0.0f};    /* sum_d F_d 128: the codes' offset, hi / lo rows */
#pragma unroll
            for (int ks = 0; ks < K4_KS; ks++) {
                uint32_t fa[4];
                {
                    const float4 q = q4[ks * 32 + lane];
                    const float4 sc = *reinterpret_cast<const float4 *>(S.ks[ks][tig]);
                    const float4 mn = *reinterpret_cast<const float4 *>(S.km[ks][tig]);
                    k4_split_a(q.x * sc.x, q.y * sc.y, q.z * sc.z, q.w * sc.w, fa);
                    kb = fmaf(q.x, mn.x, kb); kb = fmaf(q.y, mn.y, kb); kb = fmaf(q.z, mn.z, kb); kb = fmaf(q.w, mn.w, kb);
                }
                uint32_t kw[LW];                          /* the lane's words of the k-step's tile */
                if constexpr (LW == 1) kw[0] = S.kc[ks][lane][0];
                else { const uint2 w2 = *reinterpret_cast<const uint2 *>(S.kc[ks][lane]); kw[0] = w2.x; kw[1] = w2.y; }
                /* keys 16h + 8b + gid (field i = 2h + b): channels 2tig, 2tig+1 (r = 0) and
                 * 2tig+8, 2tig+9 (r = 1) */
                scb_mma_bf16(c[0][0], fa, k4_field<BITS, 0>(kw, magic), k4_field<BITS, 4>(kw, magic));
                scb_mma_bf16(c[0][1], fa, k4_field<BITS, 1>(kw, magic), k4_field<BITS, 5>(kw, magic));
                scb_mma_bf16(c[1][0], fa, k4_field<BITS, 2>(kw, magic), k4_field<BITS, 6>(kw, magic));
                scb_mma_bf16(c[1][1], fa, k4_field<BITS, 3>(kw, magic), k4_field<BITS, 7>(kw, magic));
                scb_mma_bf16(k128, fa, magic, magic);    /* every column: sum over the k-step of F 128 */
            }
            kb += __shfl_xor_sync(0xffffffffu, kb, 1);
            kb += __shfl_xor_sync(0xffffffffu, kb, 2);
            kb -= k128[0] + k128[2];                      /* the codes' 128 offset (exact products) */
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int b = 0; b < 2; b++) {
                    x[h][b][0] = (c[h][b][0] + c[h][b][2] + kb) * sl2;
                    x[h][b][1] = (c[h][b][1] + c[h][b][3] + kb) * sl2;
                }
        } else {                                          /* full-precision keys: bf16 k times q */
#pragma unroll
            for (int h = 0; h < 2; h++)
#pragma unroll
                for (int b = 0; b < 2; b++) {
                    const int kr = s0 + 16 * h + 8 * b + gid;        /* the key of the lane's B column */
                    const uint32_t *kp = reinterpret_cast<const uint32_t *>(kf + (size_t)kr * K4_D) + tig;
                    float c[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                    for (int ks = 0; ks < K4_KS; ks++) {
                        const float4 q = q4[ks * 32 + lane];
                        const uint32_t A[4] = {scb_pack_bf2(q.x, q.y), 0u, scb_pack_bf2(q.z, q.w), 0u};
                        scb_mma_bf16(c, A, kr < j_end ? kp[8 * ks] : 0u, kr < j_end ? kp[8 * ks + 4] : 0u);
                    }
                    const int kc = s0 + 16 * h + 8 * b + 2 * tig;    /* the keys of the lane's C columns */
                    x[h][b][0] = kc < j_end ? c[0] * sl2 : -INFINITY;
                    x[h][b][1] = kc + 1 < j_end ? c[1] * sl2 : -INFINITY;
                }
        }
        /* online softmax of head gid over the step's 32 keys (8 per lane, 4 lanes per head) */
        float mx = -INFINITY;
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int b = 0; b < 2; b++) mx = fmaxf(mx, fmaxf(x[h][b][0], x[h][b][1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m_run, mx);             /* finite: every step has a key below j_end */
        const float alpha = scb_exp2(m_run - m_new);     /* 2^-inf = 0 on the first step */
        float ps = 0.0f;
#pragma unroll
        for (int h = 0; h < 2; h++)
#pragma unroll
            for (int b = 0; b < 2; b++)
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    x[h][b][i] = scb_exp2(x[h][b][i] - m_new);   /* masked keys: 2^-inf = 0 */
                    ps += x[h][b][i];
                }
        ps += __shfl_xor_sync(0xffffffffu, ps, 1);
        ps += __shfl_xor_sync(0xffffffffu, ps, 2);
        l_run = l_run * alpha + ps;
        m_run = m_new;
        if (__any_sync(0xffffffffu, alpha != 1.0f)) {
            /* the accumulator's heads 2tig, 2tig+1 take the alphas of the lanes holding them */
            const float a0 = __shfl_sync(0xffffffffu, alpha, 8 * tig), a1 = __shfl_sync(0xffffffffu, alpha, 8 * tig + 4);
#pragma unroll
            for (int b = 0; b < K4_MT; b++) { acc[b][0] *= a0; acc[b][1] *= a1; acc[b][2] *= a0; acc[b][3] *= a1; }
            v128[0] *= a0; v128[1] *= a1;
#pragma unroll
            for (int v = 0; v < NG; v++) vb[v] *= alpha;
        }
        /* O^T (channels x heads) += V^T (channels x 16 tokens) . P'^T (tokens x heads) over the two
         * 16-token halves: the lane's p (head gid, tokens 2tig, 2tig+1, 2tig+8, 2tig+9) are exactly
         * its B fragment; P' = p s_tg in bf16 */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int t0 = 16 * h + 2 * tig;              /* step-local token of p[h][0][0] */
            const float p0 = x[h][0][0], p1 = x[h][0][1], p8 = x[h][1][0], p9 = x[h][1][1];
            if (s0 + 16 * h + 16 <= a.Tv_q) {             /* all 16 tokens quantized */
#pragma unroll
                for (int v = 0; v < NG; v++) {
                    const float2 s01 = *reinterpret_cast<const float2 *>(&S.vs[v][t0]);
                    const float2 s89 = *reinterpret_cast<const float2 *>(&S.vs[v][t0 + 8]);
                    const float2 m01 = *reinterpret_cast<const float2 *>(&S.vm[v][t0]);
                    const float2 m89 = *reinterpret_cast<const float2 *>(&S.vm[v][t0 + 8]);
                    const uint32_t b0 = scb_pack_bf2(p0 * s01.x, p1 * s01.y), b1 = scb_pack_bf2(p8 * s89.x, p9 * s89.y);
                    {   /* the codes below carry +128: row v of a 128 matrix times P' counts it */
                        const uint32_t o = gid == v ? magic : 0u, A128[4] = {o, 0u, o, 0u};
                        scb_mma_bf16(v128, A128, b0, b1);
                    }
                    vb[v] = fmaf(p0, m01.x, fmaf(p1, m01.y, fmaf(p8, m89.x, fmaf(p9, m89.y, vb[v]))));
#pragma unroll
                    for (int mt = v * MTG; mt < (v + 1) * MTG; mt++) {   /* channels 16mt .. 16mt + 15 */
                        uint32_t vw[LW];                                 /* the lane's words of tile mt */
                        if constexpr (LW == 1) vw[0] = S.vc[mt][lane][0];
                        else { const uint2 w2 = *reinterpret_cast<const uint2 *>(S.vc[mt][lane]); vw[0] = w2.x; vw[1] = w2.y; }
                        /* channels gid (r = 0), gid + 8 (r = 1) of tokens t0, t0+1 (i = 2h) and
                         * t0+8, t0+9 (i = 2h + 1) */
                        uint32_t A[4];
                        if (h == 0) {
                            A[0] = k4_field<BITS, 0>(vw, magic); A[1] = k4_field<BITS, 4>(vw, magic);
                            A[2] = k4_field<BITS, 1>(vw, magic); A[3] = k4_field<BITS, 5>(vw, magic);
                        } else {
                            A[0] = k4_field<BITS, 2>(vw, magic); A[1] = k4_field<BITS, 6>(vw, magic);
                            A[2] = k4_field<BITS, 3>(vw, magic); A[3] = k4_field<BITS, 7>(vw, magic);
                        }
                        scb_mma_bf16(acc[mt], A, b0, b1);
                    }
                }
            } else {                                      /* some tokens full precision (or past the end) */
                int tok[4];
                tok[0] = s0 + t0; tok[1] = tok[0] + 1; tok[2] = tok[0] + 8; tok[3] = tok[0] + 9;
                const float p[4] = {p0, p1, p8, p9};
#pragma unroll
                for (int v = 0; v < NG; v++) {
                    float f[4];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        const int tl = tok[i] - s0;
                        const bool qz = tok[i] < a.Tv_q;
                        f[i] = qz ? p[i] * S.vs[v][tl] : p[i];
                        if (qz) vb[v] = fmaf(p[i], S.vm[v][tl], vb[v]);
                    }
                    const uint32_t b0 = scb_pack_bf2(f[0], f[1]), b1 = scb_pack_bf2(f[2], f[3]);
#pragma unroll
                    for (int mt = v * MTG; mt < (v + 1) * MTG; mt++) {
                        uint32_t e[2][4];                 /* (channel gid / gid + 8, token i) */
#pragma unroll
                        for (int r = 0; r < 2; r++) {
                            const int ch = 16 * mt + 8 * r + gid;
#pragma unroll
                            for (int i = 0; i < 4; i++) {
                                if (tok[i] < a.Tv_q) {
                                    e[r][i] = scb_f2bf((float)k4_vcode<BITS>(S, tok[i] - s0, ch));
                                } else {
                                    e[r][i] = tok[i] < j_end ? vf[(size_t)tok[i] * K4_D + ch] : 0u;
                                }
                            }
                        }
                        const uint32_t A[4] = {e[0][0] | (e[0][1] << 16), e[1][0] | (e[1][1] << 16),
                                               e[0][2] | (e[0][3] << 16), e[1][2] | (e[1][3] << 16)};
                        scb_mma_bf16(acc[mt], A, b0, b1);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int v = 0; v < NG; v++) {
        vb[v] += __shfl_xor_sync(0xffffffffu, vb[v], 1);
        vb[v] += __shfl_xor_sync(0xffffffffu, vb[v], 2);
        /* minus the value codes' offset: head gid's share sits in lane (v, gid / 2), column gid & 1 */
        const float c0 = __shfl_sync(0xffffffffu, v128[0], 4 * v + (gid >> 1));
        const float c1 = __shfl_sync(0xffffffffu, v128[1], 4 * v + (gid >> 1));
        vb[v] -= (gid & 1) ? c1 : c0;
    }
    /* the 4 warps' partials merged through shared memory (the stages are free now): one partial
     * per block goes to work, partition blockIdx.x. Row of a (warp, head): O (D), m, l, the value
     * bias of each channel group (NG) */
    constexpr int RS = K4_D + 2 + K4_MAXNG;
    __syncthreads();
    float *pw = reinterpret_cast<float *>(sb - 2 * warp);  /* (warps, 8 heads, RS) */
    {
        float *w0 = pw + ((size_t)warp * 8 + 2 * tig) * RS, *w1 = w0 + RS;
#pragma unroll
        for (int mt = 0; mt < K4_MT; mt++) {
            w0[16 * mt + gid] = acc[mt][0]; w1[16 * mt + gid] = acc[mt][1];
            w0[16 * mt + gid + 8] = acc[mt][2]; w1[16 * mt + gid + 8] = acc[mt][3];
        }
        if (tig == 0) {
            float *w = pw + ((size_t)warp * 8 + gid) * RS;
            w[K4_D] = m_run * 0.6931471805599453f; w[K4_D + 1] = l_run;   /* m back to natural-log units */
#pragma unroll
            for (int v = 0; v < NG; v++) w[K4_D + 2 + v] = vb[v];
        }
    }
    __syncthreads();
    for (int h = 0; h < G; h++) {
        const float *hw = pw + (size_t)h * RS;
        const size_t ws = (size_t)8 * RS;
        float M = -INFINITY;
#pragma unroll
        for (int u = 0; u < K4_WARPS; u++) M = fmaxf(M, hw[u * ws + K4_D]);
        float o = 0.0f, L = 0.0f;
#pragma unroll
        for (int u = 0; u < K4_WARPS; u++) {
            const float m = hw[u * ws + K4_D];
            if (m != -INFINITY) {
                const float e = expf(m - M);
                o = fmaf(hw[u * ws + tid] + hw[u * ws + K4_D + 2 + tid / (K4_D / NG)], e, o);
                L = fmaf(hw[u * ws + K4_D + 1], e, L);
            }
        }
        float *w = a.work + ((size_t)blockIdx.x * a.Hq + (size_t)g * G + h) * (K4_D + 2);
        w[tid] = o;
        if (tid == 0) { w[K4_D] = M; w[K4_D + 1] = L; }
    }
}

/* Which partition kernel runs: SCB_KIVI_ATTN=v4 (the default) the tensor-core kernel with warps
 * streaming their own keys where it applies (kivi_v4_fits; on an H200, KIVI-2, one layer: 40.0 µs
 * at 32K keys and 112.8 µs at 128K against v1's 61 and 229), else v1 (dequantize per element,
 * every shape the store allows). Kernels v2 (SIMT, folded factors) and v3 (a first tensor-core
 * kernel) were measured slower than v1 and removed. */
static int kivi_attn_version(int asked)
{
    static int v = 0;
    if (asked == 1 || asked == 4) return asked;
    if (!v) {
        const char *e = getenv("SCB_KIVI_ATTN");
        v = e && !strcmp(e, "v1") ? 1 : 4;
    }
    return v;
}

/* Shapes kernel v4 runs: D = 128, 2 or 4 bits, G <= 8, groups of 32, 64 or 128 (a 32-key step in
 * one key group), Tk_q a multiple of 32 (the store quantizes keys in whole groups), a store of
 * fewer than 2^32 key elements (its loads use 32-bit offsets). */
static int kivi_v4_fits(const struct scb_kivi_cuda_store *s, const struct scb_kivi_attn_cuda_args *a, int G)
{
    return s->D == K4_D && (s->bits == 2 || s->bits == 4) && G <= 8 &&
           (s->group == 32 || s->group == 64 || s->group == 128) && a->Tk_q % K4_STEP == 0 &&
           (size_t)s->Hkv * K4_D * (size_t)s->cap < ((size_t)1 << 32);   /* k4_src's 32-bit offsets */
}

/* Blocks per SM kernel v4 is compiled for (its register bound): SCB_KIVI_V4_MINB=2 (up to 255
 * registers), 3 (168, the default) or 4 (128); read once. */
static int kivi_v4_minb(void)
{
    static int m = 0;
    if (!m) {
        const char *e = getenv("SCB_KIVI_V4_MINB");
        m = e && !strcmp(e, "2") ? 2 : e && !strcmp(e, "4") ? 4 : 3;
    }
    return m;
}

/* One-time set-up of a kernel v4 instantiation (not on every decode step): its dynamic shared
 * memory allowed, and the blocks resident per SM from the occupancy calculator (registers and
 * shared memory; at least 1). */
template <int BITS, int NG, int MINB>
static cudaError_t part4_setup(size_t smem, int *bps)
{
    static int cached = 0;
    static cudaError_t err = cudaSuccess;
    if (!cached) {
        int n = 0;
        if (smem > 48 * 1024)
            err = cudaFuncSetAttribute(kivi_attn_part4_kernel<BITS, NG, MINB>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err == cudaSuccess &&
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kivi_attn_part4_kernel<BITS, NG, MINB>, 32 * K4_WARPS,
                                                          smem) != cudaSuccess)
            n = 1;
        cached = n > 0 ? n : 1;
    }
    *bps = cached;
    return err;
}

/* Blocks per KV head of a v4 launch over n keys: `blocks` if > 0, else one full wave of bps
 * resident blocks per SM; at most SCB_KIVI_MAX_SPLITS and one 32-key step per warp. */
static int part4_blocks(int blocks, int bps, int sms, int Hkv, int n)
{
    if (blocks <= 0) blocks = bps * sms / Hkv;
    const int steps = (n + K4_STEP - 1) / K4_STEP;
    if (blocks > SCB_KIVI_MAX_SPLITS) blocks = SCB_KIVI_MAX_SPLITS;
    if (blocks > (steps + K4_WARPS - 1) / K4_WARPS) blocks = (steps + K4_WARPS - 1) / K4_WARPS;
    return blocks < 1 ? 1 : blocks;
}

/* Launch kernel v4 with `blocks` blocks per KV head (<= 0: one full wave of resident blocks),
 * at most SCB_KIVI_MAX_SPLITS and one 32-key step per warp; the partitions launched go to
 * *splits. */
template <int BITS, int NG, int MINB>
static cudaError_t part4_launch_mb(cudaStream_t st, const struct scb_kivi_cuda_store *s,
                                   const struct scb_kivi_attn_cuda_args *a, int G, float scale, int blocks, int sms,
                                   int *splits, bool count_only = false)
{
    const size_t smem = sizeof(float4) * K4_KS * 32 + 2 * K4_WARPS * sizeof(k4_stage<BITS>);
    int bps = 1;
    cudaError_t e = part4_setup<BITS, NG, MINB>(smem, &bps);
    if (e != cudaSuccess) return e;
    blocks = part4_blocks(blocks, bps, sms, s->Hkv, a->n);
    *splits = blocks;
    if (count_only) return cudaSuccess;                   /* scb_kivi_attn_cuda_dev_fits */
    static int ilv = -1;   /* SCB_KIVI_V4_ORDER=contig: each warp a quarter of the block's keys */
    if (ilv < 0) {
        const char *ev = getenv("SCB_KIVI_V4_ORDER");
        ilv = !(ev && !strcmp(ev, "contig"));
    }
    kivi_attn_part4_kernel<BITS, NG, MINB><<<dim3((unsigned)blocks, (unsigned)s->Hkv), 32 * K4_WARPS, smem, st>>>(
        *s, *a, G, scale, ilv);
    return cudaGetLastError();
}

template <int BITS, int NG>
static cudaError_t part4_launch_ng(cudaStream_t st, const struct scb_kivi_cuda_store *s,
                                   const struct scb_kivi_attn_cuda_args *a, int G, float scale, int blocks, int sms,
                                   int *splits, bool count_only)
{
    switch (kivi_v4_minb()) {
    case 2: return part4_launch_mb<BITS, NG, 2>(st, s, a, G, scale, blocks, sms, splits, count_only);
    case 4: return part4_launch_mb<BITS, NG, 4>(st, s, a, G, scale, blocks, sms, splits, count_only);
    default: return part4_launch_mb<BITS, NG, 3>(st, s, a, G, scale, blocks, sms, splits, count_only);
    }
}

template <int BITS>
static cudaError_t part4_launch(cudaStream_t st, const struct scb_kivi_cuda_store *s,
                                const struct scb_kivi_attn_cuda_args *a, int G, float scale, int blocks, int sms,
                                int *splits, bool count_only = false)
{
    switch (s->group) {
    case 32: return part4_launch_ng<BITS, 4>(st, s, a, G, scale, blocks, sms, splits, count_only);
    case 64: return part4_launch_ng<BITS, 2>(st, s, a, G, scale, blocks, sms, splits, count_only);
    default: return part4_launch_ng<BITS, 1>(st, s, a, G, scale, blocks, sms, splits, count_only);
    }
}

template <int BITS, int GM>
static cudaError_t part_launch_gm(dim3 grid, cudaStream_t st, const struct scb_kivi_cuda_store *s,
                                  const struct scb_kivi_attn_cuda_args *a, int G, int chunk, float scale)
{
    const size_t smem = sizeof(float) * attn_smem_floats(s->D, GM, BITS, s->group);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kivi_attn_part_kernel<BITS, GM>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    kivi_attn_part_kernel<BITS, GM><<<grid, KIVI_THREADS, smem, st>>>(*s, *a, G, chunk, scale);
    return cudaGetLastError();
}

template <int BITS>
static cudaError_t part_launch(dim3 grid, cudaStream_t st, const struct scb_kivi_cuda_store *s,
                               const struct scb_kivi_attn_cuda_args *a, int G, int chunk, float scale)
{
    if (G <= 1) return part_launch_gm<BITS, 1>(grid, st, s, a, G, chunk, scale);
    if (G <= 2) return part_launch_gm<BITS, 2>(grid, st, s, a, G, chunk, scale);
    if (G <= 4) return part_launch_gm<BITS, 4>(grid, st, s, a, G, chunk, scale);
    if (G <= 8) return part_launch_gm<BITS, 8>(grid, st, s, a, G, chunk, scale);
    return part_launch_gm<BITS, 16>(grid, st, s, a, G, chunk, scale);
}

/* Merge of the partitions' partials of head blockIdx.x: the weights e^(m_s - M) computed once
 * into shared memory, then thread d sums its channel over the partitions with independent loads
 * (the partitions are many: a serial dependent loop per channel cost ~0.2 µs per partition). */
enum { KIVI_MERGE_THREADS = 128 };
__global__ void __launch_bounds__(KIVI_MERGE_THREADS)
kivi_attn_merge_kernel(const float *work, int n_splits, int Hq, int D, uint16_t *out, float *lse)
{
    __shared__ float w_s[SCB_KIVI_MAX_SPLITS];
    __shared__ float red[KIVI_MERGE_THREADS / 32];
    const int h = blockIdx.x, tid = threadIdx.x;
    const size_t st = (size_t)Hq * (D + 2);
    const float *wh = work + (size_t)h * (D + 2);
    float M = -INFINITY;
    for (int s = tid; s < n_splits; s += KIVI_MERGE_THREADS) M = fmaxf(M, wh[s * st + D]);
    M = scb_block_max(M, red, KIVI_MERGE_THREADS / 32);
    float L = 0.0f;
    for (int s = tid; s < n_splits; s += KIVI_MERGE_THREADS) {
        const float m = wh[s * st + D];
        const float e = m == -INFINITY ? 0.0f : expf(m - M);
        w_s[s] = e;
        L = fmaf(wh[s * st + D + 1], e, L);
    }
    L = scb_block_sum(L, red, KIVI_MERGE_THREADS / 32);   /* its barriers also publish w_s */
    for (int d = tid; d < D; d += KIVI_MERGE_THREADS) {
        float o0 = 0.0f, o1 = 0.0f, o2 = 0.0f, o3 = 0.0f;
        int s = 0;
        for (; s + 4 <= n_splits; s += 4) {
            o0 = fmaf(wh[s * st + d], w_s[s], o0);   /* e = 0 rows are zeros: safe to add */
            o1 = fmaf(wh[(s + 1) * st + d], w_s[s + 1], o1);
            o2 = fmaf(wh[(s + 2) * st + d], w_s[s + 2], o2);
            o3 = fmaf(wh[(s + 3) * st + d], w_s[s + 3], o3);
        }
        for (; s < n_splits; s++) o0 = fmaf(wh[s * st + d], w_s[s], o0);
        const float o = (o0 + o1) + (o2 + o3);
        out[(size_t)h * D + d] = scb_f2bf(L > 0.0f ? o / L : 0.0f);
    }
    if (tid == 0 && lse) lse[h] = L > 0.0f ? M + logf(L) : -INFINITY;
}

/* The SCB_KIVI_SPLITS timing knob (blocks per KV head of kernel v4; 0 = one full wave); read once. */
static int kivi_v4_env_splits(void)
{
    static int v = -1;
    if (v < 0) {
        const char *es = getenv("SCB_KIVI_SPLITS");
        v = es && atoi(es) > 0 ? atoi(es) : 0;
    }
    return v;
}

extern "C" int scb_kivi_attn_cuda_dev_fits(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int Hq,
                                           int Tk_q, int n, int *splits)
{
    if (splits) *splits = 0;
    if (!cc || !s || s->Hkv < 1 || Hq < 1 || Hq % s->Hkv || Tk_q < 0 || n < 0) return 0;
    struct scb_kivi_attn_cuda_args a;
    memset(&a, 0, sizeof a);
    a.Tk_q = Tk_q; a.n = n; a.Hq = Hq;
    const int G = Hq / s->Hkv;
    if (kivi_attn_version(0) != 4 || !kivi_v4_fits(s, &a, G)) return 0;
    int sp = 0;
    const cudaError_t e = s->bits == 2
        ? part4_launch<2>(cc->stream, s, &a, G, 1.0f, kivi_v4_env_splits(), scb_cuda_sm_count(cc), &sp, true)
        : part4_launch<4>(cc->stream, s, &a, G, 1.0f, kivi_v4_env_splits(), scb_cuda_sm_count(cc), &sp, true);
    if (e != cudaSuccess) return 0;
    if (splits) *splits = sp;
    return 1;
}

extern "C" int scb_kivi_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                                  const struct scb_kivi_attn_cuda_args *a, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if ((rc = check_store(s, "attention", err)) < 0) goto out;
    if (!a || !a->q || !a->k || !a->v || !a->out || !a->work || a->n < 0 || (size_t)a->n > a->kcap ||
        a->Tk_q < 0 || a->Tv_q < 0 || a->Tk_q > a->n || a->Tv_q > a->n || a->Tk_q > s->cap || a->Tv_q > s->cap ||
        a->Hq < 1 || a->Hq % s->Hkv || a->Hq / s->Hkv > KIVI_MAXG) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kivi attention: bad arguments (n=%d Tk_q=%d Tv_q=%d kcap=%zu cap=%d "
                     "Hq=%d Hkv=%d; Hq/Hkv <= %d)", a ? a->n : 0, a ? a->Tk_q : 0, a ? a->Tv_q : 0,
                     a ? a->kcap : 0, s->cap, a ? a->Hq : 0, s->Hkv, KIVI_MAXG);
        goto out;
    }
    {
        const char *ev = getenv("SCB_KIVI_ATTN");
        if ((ev && strcmp(ev, "v1") && strcmp(ev, "v4")) || a->kernel < 0 || a->kernel == 2 || a->kernel == 3 ||
            a->kernel > 4) {
            rc = scb_err(err, SCB_E_INVAL, "CUDA kivi attention: kernel %d / SCB_KIVI_ATTN=%s (expected 0, 1 or 4 / "
                         "v1 or v4; kernels 2 and 3 were removed)",
                         a->kernel, ev ? ev : "(unset)");
            goto out;
        }
    }
    {
        const int G = a->Hq / s->Hkv, D = s->D, ver = kivi_attn_version(a->kernel);
        const int v4 = ver == 4 && kivi_v4_fits(s, a, G);
        if (a->n_dev && !v4) {
            rc = scb_err(err, SCB_E_INVAL, "CUDA kivi attention: a device key count needs kernel v4 "
                         "(scb_kivi_attn_cuda_dev_fits: D=%d bits=%d group=%d Hq/Hkv=%d Tk_q=%d)",
                         D, s->bits, s->group, G, a->Tk_q);
            goto out;
        }
        const int tile = KIVI_THREADS;
        const float scale = a->scale != 0.0f ? a->scale : 1.0f / sqrtf((float)D);
        int splits = a->n_splits;
        cudaError_t e = cudaSuccess;
        if (v4) {
            /* v4: one partition per block (its 4 warps merged inside); blocks per KV head: one wave
             * of the blocks per SM its register bound allows (kivi_v4_minb) unless n_splits or
             * SCB_KIVI_SPLITS=N (blocks per KV head) says; at most SCB_KIVI_MAX_SPLITS, and one
             * 32-key step per warp */
            if (splits <= 0) splits = kivi_v4_env_splits();
            e = s->bits == 2 ? part4_launch<2>(cc->stream, s, a, G, scale, splits, scb_cuda_sm_count(cc), &splits)
                             : part4_launch<4>(cc->stream, s, a, G, scale, splits, scb_cuda_sm_count(cc), &splits);
        } else {
            /* v1: 4 blocks per SM (its register bound), one wave; SCB_KIVI_SPLITS does not apply */
            if (splits <= 0) splits = (4 * scb_cuda_sm_count(cc) + s->Hkv - 1) / s->Hkv;
            if (splits > SCB_KIVI_MAX_SPLITS) splits = SCB_KIVI_MAX_SPLITS;
            if (splits < 1) splits = 1;
            int chunk = (a->n + splits - 1) / splits;
            chunk = (chunk + tile - 1) / tile * tile;
            if (chunk < tile) chunk = tile;
            splits = a->n ? (a->n + chunk - 1) / chunk : 1;
            dim3 grid((unsigned)splits, (unsigned)s->Hkv);
            switch (s->bits) {
            case 2: e = part_launch<2>(grid, cc->stream, s, a, G, chunk, scale); break;
            case 4: e = part_launch<4>(grid, cc->stream, s, a, G, chunk, scale); break;
            default: e = part_launch<8>(grid, cc->stream, s, a, G, chunk, scale); break;
            }
        }
        SCB_CUDA_TRY(e);
        kivi_attn_merge_kernel<<<(unsigned)a->Hq, KIVI_MERGE_THREADS, 0, cc->stream>>>(a->work, splits, a->Hq, D, a->out, a->lse);
        SCB_LAUNCH_CHECK("kivi_attn_merge_kernel");
    }
out:
    return rc;
}
