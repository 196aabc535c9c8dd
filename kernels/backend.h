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

/* Operations a backend may be asked about (scb_backend_supports). SCB_OP_MODEL is the whole
 * forward pass run by the backend's own engine on device-resident weights and KV cache (the
 * CUDA backend: harness/model_cuda.h); the others are the entries of the host ops table. */
enum scb_backend_op {
    SCB_OP_MATMUL = 0, SCB_OP_RMSNORM = 1, SCB_OP_ROPE = 2, SCB_OP_SWIGLU = 3, SCB_OP_ADD = 4,
    SCB_OP_EMBED = 5, SCB_OP_ATTN = 6, SCB_OP_ARGMAX = 7, SCB_OP_MODEL = 8
};
/* Element types of a backend's tensors. */
enum scb_backend_dtype { SCB_BDT_F32 = 0, SCB_BDT_BF16 = 1 };

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
    const char *name;                 /* "cpu", "cuda" */
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
    /* Optional capability query: 1 when op (enum scb_backend_op) runs on dtype (enum
     * scb_backend_dtype) tensors. NULL means the fp32 host table above is complete and there is
     * no device engine (the CPU backend). */
    int (*supports)(struct scb_backend *be, int op, int dtype);
    /* 1 when weights, activations and the KV cache live in device memory (alloc/free return
     * device pointers, the host ops above are NULL and the model runs through SCB_OP_MODEL). */
    int device;
};

struct scb_backend {
    const struct scb_backend_ops *ops;
    int n_threads;                    /* worker threads used by the backend's kernels */
    void *priv;                       /* backend state (thread pool, device handles) */
};

/* The CPU reference backend with n_threads threads (0 = number of online cores). */
int  scb_backend_cpu_create(struct scb_backend **out, int n_threads, struct scb_ctx *ctx);
/* The CUDA backend on device `device` (bf16 weights and KV cache, fp32 accumulation; the
 * forward pass runs in harness/model_cuda.c). SCB_E_UNSUPPORTED in a build without CUDA,
 * SCB_E_CUDA when there is no usable device (the message says why). */
int  scb_backend_cuda_create(struct scb_backend **out, int device, struct scb_ctx *ctx);
/* Whether this build has CUDA and a device is usable; why (may be NULL) gets the reason when not. */
int  scb_backend_cuda_available(char *why, size_t n_why);
/* Open a backend by name: "cpu" (n_threads as scb_backend_cpu_create), "cuda" (device 0), or
 * "auto" / NULL: the environment variable SCB_BACKEND when set (cpu or cuda), else cuda when
 * scb_backend_cuda_available, else cpu. Anything else: SCB_E_INVAL. */
int  scb_backend_open(struct scb_backend **out, const char *name, int n_threads, struct scb_ctx *ctx);
/* 1 when be runs op on dtype (a NULL supports query: fp32 host ops yes, SCB_OP_MODEL no). */
int  scb_backend_supports(struct scb_backend *be, int op, int dtype);
/* Destroy any backend through its ops (kernels/backend.c). NULL is a no-op. */
void scb_backend_destroy(struct scb_backend *be);

#endif
