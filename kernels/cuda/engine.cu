/* engine.cu — the two kernels the CUDA engine (harness/model_cuda.c) needs beyond the launchers
 * of attn_*.cu and elementwise.cu: appending a chunk's K/V to the device KV cache (bf16,
 * (Hkv, cap, D) per layer), and a plain attention kernel for head dims the tensor-core kernels
 * do not take (anything even up to 256 other than 64/128: the small fixture models). */
#include "kernels/cuda/common.cuh"

#include <math.h>

/* dst (Hkv, cap, D): rows len..len+T-1 of every stored head h get src (T, Hin, D) head
 * h / (Hkv / Hin). One block per (t, h). */
__global__ void scb_kv_append_kernel(uint16_t *kc, uint16_t *vc, const uint16_t *k,
                                     const uint16_t *v, int Hin, int Hkv, int D, long long cap,
                                     long long len, const int32_t *d_len)
{
    if (d_len) {
        len = *d_len;
        if (len + (long long)(blockIdx.x / Hkv) >= cap) return;
    }
    const int t = blockIdx.x / Hkv, h = blockIdx.x % Hkv, hi = h / (Hkv / Hin);
    const long long dst = ((long long)h * cap + len + t) * D;
    const long long src = ((long long)t * Hin + hi) * D;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        kc[dst + d] = k[src + d];
        vc[dst + d] = v[src + d];
    }
}

/* The same with 16-byte copies (D % 8 == 0, all four arrays 16-byte aligned): item (t, h, c) is
 * channels 8c..8c+7 of row t, stored head h; the T x Hkv x D/8 items grid-strided. */
__global__ void scb_kv_append8_kernel(uint16_t *kc, uint16_t *vc, const uint16_t *k, const uint16_t *v, int T,
                                      int Hin, int Hkv, int D, long long cap, long long len, const int32_t *d_len)
{
    if (d_len) len = *d_len;
    const int d8 = D / 8;
    const long long items = (long long)T * Hkv * d8;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < items;
         e += (long long)gridDim.x * blockDim.x) {
        const long long th = e / d8;
        const int c = (int)(e - th * d8), t = (int)(th / Hkv), h = (int)(th % Hkv), hi = h / (Hkv / Hin);
        if (d_len && len + t >= cap) continue;
        const long long dst = ((long long)h * cap + len + t) * D + 8 * c;
        const long long src = ((long long)t * Hin + hi) * D + 8 * c;
        *reinterpret_cast<uint4 *>(kc + dst) = *reinterpret_cast<const uint4 *>(k + src);
        *reinterpret_cast<uint4 *>(vc + dst) = *reinterpret_cast<const uint4 *>(v + src);
    }
}

/* One launch of the append: the 16-byte kernel where it applies. */
static void kv_append_launch(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, const uint16_t *k,
                             const uint16_t *v, int T, int Hin, int Hkv, int D, size_t cap, size_t len,
                             const int32_t *d_len)
{
    if (D % 8 == 0 && scb_aligned16(kc) && scb_aligned16(vc) && scb_aligned16(k) && scb_aligned16(v)) {
        scb_kv_append8_kernel<<<scb_grid_blocks((size_t)T * Hkv * (D / 8), 256), 256, 0, cc->stream>>>(
            kc, vc, k, v, T, Hin, Hkv, D, (long long)cap, (long long)len, d_len);
    } else {
        scb_kv_append_kernel<<<(unsigned)(T * Hkv), D < 128 ? 64 : 128, 0, cc->stream>>>(
            kc, vc, k, v, Hin, Hkv, D, (long long)cap, (long long)len, d_len);
    }
}

extern "C" int scb_cuda_kv_append(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc,
                                  const uint16_t *k, const uint16_t *v, int T, int Hin, int Hkv,
                                  int D, size_t cap, size_t len, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!kc || !vc || !k || !v || T < 0 || Hin <= 0 || Hkv <= 0 || Hkv % Hin || D <= 0 ||
        len + (size_t)T > cap) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kv append: bad arguments (T=%d Hin=%d Hkv=%d D=%d "
                     "len=%zu cap=%zu)", T, Hin, Hkv, D, len, cap);
        goto out;
    }
    if (T == 0) goto out;
    kv_append_launch(cc, kc, vc, k, v, T, Hin, Hkv, D, cap, len, NULL);
    SCB_LAUNCH_CHECK("scb_kv_append_kernel");
out:
    return rc;
}

extern "C" int scb_cuda_kv_append_dev(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc,
                                      const uint16_t *k, const uint16_t *v, int T, int Hin,
                                      int Hkv, int D, size_t cap, const int32_t *d_len,
                                      struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!kc || !vc || !k || !v || !d_len || T < 0 || Hin <= 0 || Hkv <= 0 || Hkv % Hin ||
        D <= 0 || (size_t)T > cap) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kv append (device len): bad arguments (T=%d Hin=%d "
                     "Hkv=%d D=%d cap=%zu%s)", T, Hin, Hkv, D, cap, d_len ? "" : ", NULL d_len");
        goto out;
    }
    if (T == 0) goto out;
    kv_append_launch(cc, kc, vc, k, v, T, Hin, Hkv, D, cap, 0, d_len);
    SCB_LAUNCH_CHECK("scb_kv_append_kernel");
out:
    return rc;
}

/* In-place compaction of one layer: stored head s keeps rows idx[s*n + i] (strictly ascending)
 * as its rows i = 0..n-1. One block per head walks the rows in tiles of KEEP_ROWS in order:
 * a tile is read into shared memory before it is written, and later tiles read rows
 * idx[i] >= i beyond every row written so far, so no row is overwritten before it is read. */
enum { KEEP_ROWS = 16 };
__global__ void scb_kv_keep_kernel(uint16_t *kc, uint16_t *vc, const int32_t *idx, int n, int D,
                                   long long cap)
{
    extern __shared__ uint4 tile[];                  /* (2, KEEP_ROWS, D) bf16 as 16-byte words */
    const int s = blockIdx.x, w = D / 8;             /* 16-byte words per row */
    uint4 *kt = tile, *vt = tile + KEEP_ROWS * w;
    uint4 *kh = (uint4 *)(kc + (long long)s * cap * D), *vh = (uint4 *)(vc + (long long)s * cap * D);
    const int32_t *ix = idx + (long long)s * n;
    for (int i0 = 0; i0 < n; i0 += KEEP_ROWS) {
        const int cnt = n - i0 < KEEP_ROWS ? n - i0 : KEEP_ROWS;
        for (int e = threadIdx.x; e < cnt * w; e += blockDim.x) {
            const int r = e / w, c = e % w;
            const long long src = (long long)ix[i0 + r] * w + c;
            kt[e] = kh[src];
            vt[e] = vh[src];
        }
        __syncthreads();
        for (int e = threadIdx.x; e < cnt * w; e += blockDim.x) {
            const long long dst = (long long)(i0 + e / w) * w + e % w;
            kh[dst] = kt[e];
            vh[dst] = vt[e];
        }
        __syncthreads();
    }
}

extern "C" int scb_cuda_kv_keep(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, int Hs, int D,
                                size_t cap, const int32_t *idx, int n, struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!kc || !vc || !idx || Hs <= 0 || D <= 0 || D % 8 || n < 0 || (size_t)n > cap ||
        ((uintptr_t)kc | (uintptr_t)vc) % 16) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA kv keep: bad arguments (Hs=%d D=%d n=%d cap=%zu; D a multiple "
                     "of 8, 16-byte aligned storage)", Hs, D, n, cap);
        goto out;
    }
    if (n == 0) goto out;
    scb_kv_keep_kernel<<<(unsigned)Hs, 128, (size_t)2 * KEEP_ROWS * D * sizeof(uint16_t), cc->stream>>>(
        kc, vc, idx, n, D, (long long)cap);
    SCB_LAUNCH_CHECK("scb_kv_keep_kernel");
out:
    return rc;
}

enum { GEN_THREADS = 128 };

/* One block per (query row t, head h): keys in tiles of GEN_THREADS (one score per thread),
 * online softmax in fp32, P·V with fp32 probabilities (not rounded), D <= 2 * GEN_THREADS. */
__global__ void scb_attn_generic_kernel(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                        uint16_t *out, float *lse, int Tq, int Tk, int Hq,
                                        int Hkv, int D, long long tok, long long head,
                                        float scale)
{
    extern __shared__ float sm[];
    float *qs = sm;                    /* (D) */
    float *p = sm + D;                 /* (GEN_THREADS) */
    float *red = p + GEN_THREADS;      /* (GEN_THREADS / 32) */
    const int t = blockIdx.x / Hq, h = blockIdx.x % Hq, g = h / (Hq / Hkv);
    const int tid = threadIdx.x;
    const long long qrow = ((long long)t * Hq + h) * D;
    for (int d = tid; d < D; d += GEN_THREADS) qs[d] = scb_bf2f(q[qrow + d]);
    __syncthreads();
    const long long last = (long long)t + Tk - Tq;          /* keys j <= last are visible */
    const int nk = last < 0 ? 0 : (last + 1 < Tk ? (int)(last + 1) : Tk);
    float m = -INFINITY, l = 0.f, acc0 = 0.f, acc1 = 0.f;
    for (int j0 = 0; j0 < nk; j0 += GEN_THREADS) {
        const int j = j0 + tid;
        float s = -INFINITY;
        if (j < nk) {
            const uint16_t *kr = k + (long long)j * tok + (long long)g * head;
            float dot = 0.f;
            for (int d = 0; d < D; d++) dot += qs[d] * scb_bf2f(kr[d]);
            s = dot * scale;
        }
        const float mnew = fmaxf(m, scb_block_max(s, red, GEN_THREADS / 32));
        const float pj = j < nk ? expf(s - mnew) : 0.f;
        p[tid] = pj;
        const float sum = scb_block_sum(pj, red, GEN_THREADS / 32);   /* its barriers also publish p[] */
        const float corr = expf(m - mnew);           /* 0 on the first tile (m = -inf) */
        l = l * corr + sum;
        acc0 *= corr;
        acc1 *= corr;
        m = mnew;
        const int cnt = nk - j0 < GEN_THREADS ? nk - j0 : GEN_THREADS;
        for (int jj = 0; jj < cnt; jj++) {
            const uint16_t *vr = v + (long long)(j0 + jj) * tok + (long long)g * head;
            const float pw = p[jj];
            if (tid < D) acc0 += pw * scb_bf2f(vr[tid]);
            if (tid + GEN_THREADS < D) acc1 += pw * scb_bf2f(vr[tid + GEN_THREADS]);
        }
        __syncthreads();                             /* p[] is rewritten by the next tile */
    }
    const float inv = nk > 0 ? 1.f / l : 0.f;
    if (tid < D) out[qrow + tid] = scb_f2bf(acc0 * inv);
    if (tid + GEN_THREADS < D) out[qrow + tid + GEN_THREADS] = scb_f2bf(acc1 * inv);
    if (lse && tid == 0) lse[(long long)t * Hq + h] = nk > 0 ? m + logf(l) : -INFINITY;
}

extern "C" int scb_attn_generic_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                                     struct scb_ctx *err)
{
    int rc = SCB_OK;
    SCB_CHECK_ALIVE();
    if (!a->q || !a->k || !a->v || !a->out || a->Tq < 1 || a->Tk < 0 || a->Hq <= 0 ||
        a->Hkv <= 0 || a->Hq % a->Hkv || a->D <= 0 || a->D % 2 || a->D > 2 * GEN_THREADS) {
        rc = scb_err(err, SCB_E_INVAL, "CUDA generic attention: bad arguments (Tq=%d Tk=%d Hq=%d "
                     "Hkv=%d D=%d; D even and <= %d, Hq a multiple of Hkv)", a->Tq, a->Tk, a->Hq,
                     a->Hkv, a->D, 2 * GEN_THREADS);
        goto out;
    }
    {
        const long long tok = (long long)(a->kv_tok_stride ? a->kv_tok_stride : (size_t)a->Hkv * a->D);
        const long long head = (long long)(a->kv_head_stride ? a->kv_head_stride : (size_t)a->D);
        const float scale = a->scale != 0.f ? a->scale : 1.0f / sqrtf((float)a->D);
        const size_t smem = ((size_t)a->D + GEN_THREADS + GEN_THREADS / 32) * sizeof(float);
        scb_attn_generic_kernel<<<(unsigned)(a->Tq * a->Hq), GEN_THREADS, smem, cc->stream>>>(
            a->q, a->k, a->v, a->out, a->lse, a->Tq, a->Tk, a->Hq, a->Hkv, a->D, tok, head, scale);
        SCB_LAUNCH_CHECK("scb_attn_generic_kernel");
    }
out:
    return rc;
}
