/* backend.h — the compute backend interface: a table of tensor operations plus memory and
 * synchronisation, so the model's forward pass is written once and runs on the CPU reference
 * backend (kernels/cpu/, fp32, deterministic) or a device backend added later (CUDA).
 *
 * All tensors are row-major float arrays in the backend's memory (host memory for the CPU
 * backend). Shapes are given in the comments; T = tokens of the chunk, H = query heads,
 * Hkv = KV heads, D = head dim, K/N = input/output features.
 *
 * Attention seam: attention goes through scb_attn_fn functions taking struct scb_backend_attn.
 * The backend provides the dense ones (attn_prefill for a chunk, attn_decode for one token);
 * long-context methods substitute their own through the model's hooks (harness/model.h,
 * struct scb_attn_hooks): sparse prefill (A-shape, Tri-shape, MInference) replaces the first
 * prefill's attention, page/top-k selection (Quest, RetrievalAttention) replaces the decode
 * attention. Causality is "bottom-right": with n = entries of the (layer, head) in the cache
 * after appending the chunk, query i of the chunk sees cache entry j iff j <= i + (n - T).
 *
 * Determinism: every CPU op computes each output element in one thread with a fixed reduction
 * order, so results are bit-identical for any thread count. */
#ifndef SCB_KERNELS_BACKEND_H
#define SCB_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

struct scb_kv_cache;
struct scb_backend;

/* Arguments of one layer's attention over the KV cache (the chunk's K/V already appended). */
struct scb_backend_attn {
    const float *q;                   /* (T, H, D) queries after RoPE */
    float *out;                       /* (T, H, D) attention output */
    const struct scb_kv_cache *kv;    /* borrowed; keys/values of (layer, head) via kv_cache.h */
    size_t layer;
    size_t T, H, Hkv, D;              /* Hkv = heads STORED in kv (kv->Hkv, a multiple of the model's
                                         KV heads when the cache repeats them): query head h reads
                                         stored head h / (H / Hkv) */
    float scale;                      /* softmax scale, 1/sqrt(D) */
};

/* One attention implementation (dense, sparse prefill, sparse decode). user: the hook owner's
 * state (NULL for the backend's own). */
typedef int (*scb_attn_fn)(struct scb_backend *be, void *user, const struct scb_backend_attn *a,
                           struct scb_ctx *ctx);

struct scb_backend_ops {
    const char *name;                 /* "cpu" */
    void  (*destroy)(struct scb_backend *be);             /* frees be and its state */
    void *(*alloc)(struct scb_backend *be, size_t bytes);   /* NULL on failure */
    void  (*free)(struct scb_backend *be, void *p);
    int   (*sync)(struct scb_backend *be, struct scb_ctx *ctx);

    /* y (T, N) = x (T, K) · w (N, K)^T (+ b (N) when b != NULL) */
    int (*matmul)(struct scb_backend *be, const float *x, const float *w, const float *b, float *y,
                  size_t T, size_t K, size_t N, struct scb_ctx *ctx);
    /* y (T, D) = w (D) * (x * rsqrt(mean(x^2) + eps)), as HF LlamaRMSNorm in fp32; y may be x */
    int (*rmsnorm)(struct scb_backend *be, const float *x, const float *w, float *y, size_t T,
                   size_t D, float eps, struct scb_ctx *ctx);
    /* cos, sin (T, D/2) for positions pos0..pos0+T-1: angle = (float)pos * inv_freq[i] in fp32,
     * then cos/sin times attn_scale, as HF's rotary embedding. */
    int (*rope_table)(struct scb_backend *be, const float *inv_freq, size_t half, int64_t pos0,
                      size_t T, float attn_scale, float *cos, float *sin, struct scb_ctx *ctx);
    /* x (T, H, D) rotated in place with HF's rotate_half convention, cos/sin (T, D/2) */
    int (*rope)(struct scb_backend *be, float *x, const float *cos, const float *sin, size_t T,
                size_t H, size_t D, struct scb_ctx *ctx);
    /* out (n) = silu(gate) * up; out may alias gate */
    int (*swiglu)(struct scb_backend *be, const float *gate, const float *up, float *out, size_t n,
                  struct scb_ctx *ctx);
    /* y (n) += x (n) (residual) */
    int (*add)(struct scb_backend *be, float *y, const float *x, size_t n, struct scb_ctx *ctx);
    /* out (T, D) = table (V, D) rows ids[0..T) (ids checked < V by the caller) */
    int (*embed)(struct scb_backend *be, const float *table, const int32_t *ids, size_t T, size_t D,
                 float *out, struct scb_ctx *ctx);
    scb_attn_fn attn_prefill;         /* dense causal attention of a chunk (bottom-right) */
    scb_attn_fn attn_decode;          /* dense attention of T (usually 1) new tokens over the cache */
    /* *out = first index of the maximum of x (n) (as torch.argmax) */
    int (*argmax)(struct scb_backend *be, const float *x, size_t n, int32_t *out, struct scb_ctx *ctx);
};

struct scb_backend {
    const struct scb_backend_ops *ops;
    int n_threads;                    /* worker threads used by the backend's kernels */
    void *priv;                       /* backend state (thread pool, device handles) */
};

/* The CPU reference backend with n_threads threads (0 = number of online cores). */
int  scb_backend_cpu_create(struct scb_backend **out, int n_threads, struct scb_ctx *ctx);
/* Destroy any backend through its ops (kernels/backend.c). NULL is a no-op. */
void scb_backend_destroy(struct scb_backend *be);

#endif
