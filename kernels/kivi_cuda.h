/* kivi_cuda.h — KIVI's quantized KV store on the device (CUDA) and the decode attention that
 * reads it (methods/kivi.h is the CPU reference; ../shared/spec/methods.md §6). Plain C
 * interface with the conventions of kernels_cuda.h: status return, detail on err, DEVICE
 * pointers, asynchronous on the context's stream, SCB_E_INVAL for bad shapes.
 *
 * The store holds the QUANTIZED prefix of one layer's cache; the full-precision tokens (the
 * residual windows and the turn's temp tokens) are read straight from the layer's bf16 cache
 * storage (Hkv, kcap, D), where the engine keeps every token anyway. Token t of the store is
 * token t of the cache.
 *
 * Quantizer (bit-identical to scb_kivi_quant_group on the fp32 values of the bf16 inputs):
 * lo/hi = min/max of the group, s = (hi - lo) / (2^b - 1) in fp32 (IEEE division),
 * code = rint(clamp((x - lo) / s, 0, 2^b - 1)) (half to even), code 0 when s == 0;
 * x_hat = code * s + lo (fp32 multiply, then add: no fused multiply-add, as the C reference).
 * Keys per channel over `group` TOKENS, values per token over `group` CHANNELS.
 *
 * Code layout (scb_kivi_code_pos): both code arrays are tiled in blocks of 32 tokens x 16
 * channels, each block 32 "lanes" of b/2 words, arranged for the tensor-core kernel's fragments
 * (mma m16n8k16, lane = 4 gid + tig): a lane's word holds, in each 16-bit half, the codes its
 * fragment registers need with no byte permutes. Keys: lane (gid, tig) holds tokens gid + 8i
 * (i = 0..3) of channels 2tig + j + 8r (half j, r = 0..1); values: lane (gid, tig) holds channels
 * gid + 8r of tokens 2tig + j + 8i. Field k = 4r + i of half j sits at bit 16j + (k b mod 16) of
 * word k b / 16. The token count is padded to a multiple of 32 and D to one of 16. */
#ifndef SCB_KERNELS_KIVI_CUDA_H
#define SCB_KERNELS_KIVI_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/kernels_cuda.h"

/* One layer's quantized store (device pointers; the caller allocates them with the sizes of
 * scb_kivi_cuda_store_bytes). bits in {2, 4, 8}; group divides D and is a multiple of 32/bits;
 * cap (tokens) a multiple of group. */
struct scb_kivi_cuda_store {
    uint32_t *k_codes;        /* (Hkv, ceil(cap/32), ceil(D/16), 32 lanes, bits/2): scb_kivi_code_pos */
    float *k_scale, *k_min;   /* (Hkv, D, cap/group) */
    uint32_t *v_codes;        /* (Hkv, ceil(cap/32), ceil(D/16), 32 lanes, bits/2): scb_kivi_code_pos */
    float *v_scale, *v_min;   /* (Hkv, cap, D/group) */
    int Hkv, D, bits, group, cap;
};

#ifdef __CUDACC__
#define SCB_KIVI_HD __host__ __device__
#else
#define SCB_KIVI_HD
#endif

/* Word index (from the array's start) and bit (*bit) of the code of token t, channel d of KV head
 * h in a store of D channels, cap tokens, `bits` bits: keys (keys != 0) or values. */
static inline SCB_KIVI_HD size_t scb_kivi_code_pos(int keys, int D, int cap, int bits, int h, int t, int d, int *bit)
{
    const int tt = t & 31, dd = d & 15, k = 4 * (dd >> 3) + (tt >> 3);
    const int lane = keys ? (tt & 7) * 4 + ((dd & 7) >> 1) : (dd & 7) * 4 + ((tt & 7) >> 1);
    const int j = keys ? dd & 1 : tt & 1;
    const size_t nt = ((size_t)cap + 31) / 32, nd = ((size_t)D + 15) / 16;
    *bit = 16 * j + (k * bits) % 16;
    return ((((size_t)h * nt + (size_t)(t / 32)) * nd + (size_t)(d / 16)) * 32 + (size_t)lane) * (size_t)(bits / 2) +
           (size_t)(k * bits / 16);
}

/* 32-bit words of each code array of a store: Hkv x ceil(cap/32) x ceil(D/16) tiles of 16 bits words. */
static inline SCB_KIVI_HD size_t scb_kivi_code_words(int Hkv, int D, int bits, int cap)
{
    return (size_t)Hkv * (((size_t)cap + 31) / 32) * (((size_t)D + 15) / 16) * 16 * (size_t)bits;
}

/* Bytes of each array of a store of this shape: codes (each of k_codes, v_codes) and meta (each
 * of the four scale/min arrays). */
void scb_kivi_cuda_store_bytes(int Hkv, int D, int bits, int group, int cap, size_t *codes, size_t *meta);

/* Quantize key tokens t0..t0+n-1 of the cache storage k (Hkv, kcap, D) bf16 into the store at
 * the same token positions (per channel, one group = `group` consecutive tokens). t0 and n
 * multiples of group, t0 + n <= min(cap, kcap). */
int scb_kivi_cuda_quant_keys(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                             const uint16_t *k, size_t kcap, int t0, int n, struct scb_ctx *err);
/* Quantize value tokens t0..t0+n-1 of v (Hkv, kcap, D) bf16 (per token, groups of `group`
 * channels). t0 + n <= min(cap, kcap). */
int scb_kivi_cuda_quant_values(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                               const uint16_t *v, size_t kcap, int t0, int n, struct scb_ctx *err);

/* Dequantize the store's first nk key / nv value tokens into fp32 k, v (Hkv, nk|nv, D) (for
 * the parity test). */
int scb_kivi_cuda_dequant(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int nk, int nv,
                          float *k, float *v, struct scb_ctx *err);

/* One query row per head over keys 0..n-1: key j < Tk_q (value j < Tv_q) dequantized from the
 * store, the others read from the bf16 storage k/v (Hkv, kcap, D). Query head h reads KV head
 * h / (Hq / Hkv). fp32 scores (scaled), online softmax, fp32 probabilities in P·V; the keys
 * are cut into n_splits partitions whose partial results are merged with log-sum-exp weights.
 * n == 0 gives out = 0 and lse = -inf. */
struct scb_kivi_attn_cuda_args {
    const uint16_t *q;        /* (Hq, D) bf16 */
    const uint16_t *k, *v;    /* (Hkv, kcap, D) bf16: full-precision entries */
    size_t kcap;
    int Tk_q, Tv_q;           /* quantized key / value tokens (<= n, <= the store's cap) */
    int n;                    /* keys attended */
    int Hq;                   /* Hq % Hkv == 0, Hq / Hkv <= 16 */
    float scale;              /* 0 = 1/sqrt(D) */
    uint16_t *out;            /* (Hq, D) bf16 */
    float *lse;               /* (Hq) fp32 natural-log sum-exp of the scaled scores, or NULL */
    float *work;              /* device scratch of scb_kivi_attn_cuda_work_floats(Hq, D) floats */
    int n_splits;             /* 0 = automatic; else clamped to [1, SCB_KIVI_MAX_SPLITS] */
    int kernel;               /* partition kernel: 0 = default (the environment variable
                               * SCB_KIVI_ATTN=v1|v4, else 4), 1 = dequantize each element (x = c s + m,
                               * then q . x; every shape), 4 = tensor cores (mma.sync m16n8k16): the
                               * codes as exact bf16 integers times the folded factors q s and p s
                               * (q . x = sum_d (q_d s_d) c_d + sum_d q_d m_d; likewise for p . v)
                               * split into bf16 hi + lo parts, fp32 accumulation, every warp
                               * streaming its own 32-key steps through a cp.async double buffer;
                               * for D = 128, 2 or 4 bits, Hq/Hkv <= 8, group 32, 64 or 128, else 1
                               * runs. 2 and 3 (removed kernels) are SCB_E_INVAL. With kernel 4 and
                               * n_splits 0 the environment variable SCB_KIVI_SPLITS=N sets the
                               * blocks per KV head (timing only; default one full wave) */
    const int32_t *n_dev;     /* NULL, or a DEVICE int32 read when the kernel runs: the keys attended
                               * then (n is the count the launch is sized for; the partitions and
                               * the grid stay those of n), for a launch recorded once in a CUDA
                               * graph and replayed as the cache grows; <= kcap, >= Tk_q and Tv_q
                               * at every run. Kernel v4 only (scb_kivi_attn_cuda_dev_fits) */
};
enum { SCB_KIVI_MAX_SPLITS = 256 };
size_t scb_kivi_attn_cuda_work_floats(int Hq, int D);
int scb_kivi_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s,
                       const struct scb_kivi_attn_cuda_args *a, struct scb_ctx *err);

/* 1 when an attention of Hq query heads over n keys with Tk_q quantized keys runs kernel v4 (the
 * only kernel taking n_dev): D = 128, 2 or 4 bits, Hq/Hkv <= 8, groups of 32, 64 or 128, Tk_q a
 * multiple of 32, and SCB_KIVI_ATTN not v1; *splits (may be NULL) = the partitions such a launch
 * uses (what a graph recording it bakes in). 0 otherwise. */
int scb_kivi_attn_cuda_dev_fits(struct scb_cuda_ctx *cc, const struct scb_kivi_cuda_store *s, int Hq, int Tk_q,
                                int n, int *splits);

#ifdef __cplusplus
}
#endif

#endif
