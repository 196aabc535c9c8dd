/* model.h — a decoder-only transformer (Llama / Qwen2 / Qwen3 / Mistral family) loaded from a
 * Hugging Face model directory, and its forward pass over the KV cache.
 *
 * Loading: config.json (harness/model_config.h) + safetensors weights (harness/safetensors.h,
 * single file or shards). The CPU backend converts every weight (bf16, f16 or f32 in the file)
 * to fp32 into one arena at load; wrong shapes and missing tensors are reported with the tensor
 * name, expected and found shape, and file.
 *
 * Forward: scb_model_forward() appends n tokens at RoPE positions seen..seen+n-1 to the cache
 * (into the segment of its current mode), computes causal attention with bottom-right
 * alignment over everything the cache holds, and returns logits. The computation follows HF
 * transformers' modeling_llama / qwen2 / qwen3 / mistral in fp32 (RMSNorm with fp32 variance,
 * Qwen3's per-head q_norm/k_norm before RoPE, RoPE rotate_half, SwiGLU, tied or separate LM
 * head).
 *
 * Method seam (struct scb_attn_hooks): SCBench dispatches attention by cache state
 * (spec/scbench.md §6.1): the chunk that starts on an empty cache (the session's first prefill)
 * goes through `prefill` (sparse-prefill methods: A-shape, Tri-shape, MInference), every later
 * chunk (decode steps and follow-up prefills) through `decode` (Quest, RetrievalAttention,
 * attention over quantized entries). After the first prefill's attention of each layer,
 * `after_prefill` may compress that layer's global entries (SnapKV, PyramidKV, StreamingLLM,
 * KIVI) through scb_kv_cache_keep(). NULL hooks mean dense attention / keep everything. */
#ifndef SCB_HARNESS_MODEL_H
#define SCB_HARNESS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model_config.h"
#include "kernels/backend.h"
#include "kernels/kv_cache.h"
#include "kernels/status.h"

struct scb_model;

/* CacheBlend's selective-recompute prefill (spec/methods.md §9.2), offered by the `blend` hook
 * for the first prefill of n tokens on an empty cache when some of them have retrieved KV:
 *   layers < check_layer: an ordinary full prefill of all n tokens;
 *   layer check_layer: fresh Q/K/V of all n tokens; the recomputed set sel =
 *     scb_cacheblend_select(V_fresh, V_retrieved, valid, ratio) (methods/cacheblend.h: the
 *     ratio x |valid| tokens whose values deviate most, plus every token without retrieved KV);
 *     this layer stores the fresh K/V of every token;
 *   layers > check_layer: Q/K/V of the sel tokens only; the layer stores the retrieved K/V with
 *     the sel rows overwritten by the fresh ones;
 *   from the check layer on, the hidden states are those of sel only and the attention is sel's
 *   queries over all n keys, causal BOTTOM-RIGHT aligned (selected query i sees keys
 *   [0, n - |sel| + i]), as LMCache's flash_attn_varlen_func(causal=True) and the original's
 *   LowerTriangularFromBottomRightMask do (inexact for selected rows that are not a suffix).
 * The last token must not be retrieved (valid[n-1] == 0), so it is in sel and its logits exist.
 * With ratio 1 every token is recomputed and the result is bitwise a dense prefill. */
struct scb_blend_plan {
    const uint8_t *valid;    /* (n) 1 = KV retrieved, 0 = computed; valid[n-1] == 0 */
    int check_layer;         /* 0 <= check_layer < L */
    double ratio;            /* in [0, 1] */
    /* fill the valid rows of k, v (n, Hkv, D) with the retrieved K/V of `layer` (keys post-RoPE
     * at their positions in THIS prompt); other rows are left as they are */
    int (*fetch)(void *user, size_t layer, float *k, float *v, struct scb_ctx *ctx);
    void *user;
    int32_t *sel;            /* (n) out: recomputed token indices, ascending */
    size_t n_sel;            /* out */
};

struct scb_attn_hooks {
    scb_attn_fn prefill;     /* first prefill on an empty cache; NULL = backend dense */
    scb_attn_fn decode;      /* every later chunk; NULL = backend dense */
    /* once per layer after the first prefill's attention (a->q are that chunk's queries);
     * NULL = keep every entry */
    int (*after_prefill)(struct scb_backend *be, void *user, struct scb_kv_cache *kv,
                         const struct scb_backend_attn *a, struct scb_ctx *ctx);
    void *user;              /* passed to every hook, borrowed */
    /* called at the start of a first prefill on an empty cache (only when the caller wants the
     * last position's logits or none): set *plan to blend retrieved KV into it
     * (struct scb_blend_plan, owned by the hook's owner), or leave it NULL for an ordinary
     * prefill. It may itself run scb_model_forward on other caches (to compute KV to store);
     * those calls see this hook again and must be answered with NULL. NULL hook = never. */
    int (*blend)(struct scb_model *m, void *user, const int32_t *ids, size_t n,
                 struct scb_blend_plan **plan, struct scb_ctx *ctx);
};

/* The device engine's method seam (the CUDA backend): the same lifecycle as struct
 * scb_attn_hooks (first prefill on an empty cache -> `prefill`, then `after_prefill` once per
 * layer; every later chunk -> `decode`), on device tensors. One layer's attention: */
struct scb_dev_attn {
    void *cc;                 /* struct scb_cuda_ctx * (kernels/kernels_cuda.h), borrowed */
    const uint16_t *q;        /* (T, H, D) bf16 device: the chunk's queries after RoPE */
    uint16_t *out;            /* (T, H, D) bf16 device: the attention output to write */
    uint16_t *k, *v;          /* (Hs, cap, D) bf16 device: this layer's cache storage; entry j of
                                 stored head s at k + (s * cap + j) * D; the chunk already appended */
    struct scb_kv_cache *kv;  /* the cache's host bookkeeping (lengths, positions, seen) */
    size_t layer;
    size_t T, H, Hs, D;       /* Hs = heads STORED (kv->Hkv): query head h reads s = h / (H / Hs) */
    size_t cap;               /* entries per stored head allocated */
    size_t Tk;                /* entries of stored head 0 after the append (the causal rule is
                                 bottom-right: query i sees entry j iff j <= i + Tk - T) */
    float scale;              /* 1/sqrt(D) */
};
typedef int (*scb_dev_attn_fn)(void *user, const struct scb_dev_attn *a, struct scb_ctx *ctx);
struct scb_dev_hooks {
    scb_dev_attn_fn prefill;        /* first prefill's attention; NULL = dense */
    scb_dev_attn_fn decode;         /* every later chunk's attention; NULL = dense */
    scb_dev_attn_fn after_prefill;  /* after the first prefill's attention (a->q: its queries);
                                       may compact the layer (scb_kv_cache_keep + the device
                                       gather); NULL = keep everything */
    void *user;
    /* Optional, for a decode hook whose one-token step can be part of the engine's replayed CUDA
     * graph (harness/model_cuda.c); with step_graphable NULL, steps with a decode hook are plain
     * launches. step_graphable says, with no side effect, whether layer `layer`'s next one-token
     * step can run in the graph (1) or not (0). When every layer says 1, step_prep runs on the
     * host before the graph for every layer in order, after the step's entry is appended to the
     * cache's bookkeeping (a: T = 1, Tk = the entries after the append; q/out the engine's
     * buffers): it does the step's own bookkeeping, may enqueue work on the stream (it runs
     * before the graph), and returns in *key what the layer's recorded launches bake in (a change
     * records the graph anew). step_dev launches the layer's attention inside the graph, reading
     * the entry count (a->Tk at a replay) from the device int32 n_dev (its a->kv is NULL: it runs
     * while the graph is recorded, not at each step); NULL = the engine's dense decode attention
     * over the cache. */
    int (*step_graphable)(void *user, const struct scb_kv_cache *kv, size_t layer);
    int (*step_prep)(void *user, const struct scb_dev_attn *a, uint64_t *key, struct scb_ctx *ctx);
    int (*step_dev)(void *user, const struct scb_dev_attn *a, const int32_t *n_dev, struct scb_ctx *ctx);
};

enum scb_forward_flags {
    SCB_FWD_LAST_LOGITS = 0,      /* logits (V) of the last position only */
    SCB_FWD_ALL_LOGITS  = 1 << 0  /* logits (n, V) of every position */
};

/* Cumulative counters since load (or the last reset), for `scbench bench`. */
struct scb_model_stats {
    double matmul_flops;     /* 2·T·K·N summed over the projections and LM head */
    double matmul_ms;        /* time inside the backend's matmul */
    double forward_ms;       /* time inside scb_model_forward */
    size_t tokens;           /* tokens forwarded */
    long graph_steps;        /* device engine: forwards run as one CUDA graph */
};

/* Load the model in dir onto backend be (borrowed; must outlive the model). */
int  scb_model_load(struct scb_model **out, const char *dir, struct scb_backend *be, struct scb_ctx *ctx);
void scb_model_destroy(struct scb_model *m);   /* NULL is a no-op */

const struct scb_model_config *scb_model_get_config(const struct scb_model *m);
struct scb_backend *scb_model_backend(const struct scb_model *m);
/* Bytes of the weights: the fp32 host arena, or the device's bf16 copy. */
size_t scb_model_weight_bytes(const struct scb_model *m);

/* Install attention hooks (copied; NULL restores dense). A model on a device backend refuses
 * to forward with these host hooks installed (SCB_E_UNSUPPORTED): its methods come through
 * struct scb_dev_hooks. */
void scb_model_set_attn_hooks(struct scb_model *m, const struct scb_attn_hooks *h);

/* A KV cache shaped for this model (L, Hkv, D) holding at most cap tokens: host fp32 on the
 * CPU backend, device bf16 (scb_kv_cache_create_external) on a device backend. */
int scb_model_kv_create(const struct scb_model *m, size_t cap, struct scb_kv_cache **out,
                        struct scb_ctx *ctx);
/* The same storing Hs heads (a multiple of the model's KV heads dividing its query heads:
 * SCBench's per-query-head selection, kernels/kv_cache.h scb_kv_cache_create_heads). */
int scb_model_kv_create_heads(const struct scb_model *m, size_t Hs, size_t cap, struct scb_kv_cache **out,
                              struct scb_ctx *ctx);

/* Install device attention hooks (copied; NULL restores dense). Only a model on a device
 * backend runs them. */
void scb_model_set_dev_hooks(struct scb_model *m, const struct scb_dev_hooks *h);
/* The device engine's dense attention for a (what a NULL hook runs): over Tk entries of every
 * stored head. Device builds only (SCB_E_UNSUPPORTED otherwise). */
int scb_model_dev_dense(const struct scb_dev_attn *a, struct scb_ctx *ctx);

/* Forward n >= 1 tokens ids (each < V) through the model, appending them to kv at positions
 * kv->seen.. (kv->seen advances by n). logits: (n, V) with SCB_FWD_ALL_LOGITS, else (V) for the
 * last position; logits may be NULL (the LM head is skipped). Errors before any computation (bad id, cache full, global append with a
 * non-empty temp segment, sliding window needed) leave kv unchanged. */
int scb_model_forward(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                      float *logits, int flags, struct scb_ctx *ctx);

/* Forward as scb_model_forward and return the greedy next token: *next = argmax of the last
 * position's logits (first index of the maximum). On a device backend the argmax runs on the
 * device and only the id is copied back; on the CPU it is the backend's argmax of the fp32
 * logits (the same ids as scb_model_forward + argmax, bit for bit). */
int scb_model_forward_next(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n,
                           int32_t *next, struct scb_ctx *ctx);
/* 1 when the model runs on a device backend (weights and KV cache in device memory). */
int scb_model_on_device(const struct scb_model *m);
/* The device kernel context (struct scb_cuda_ctx *, kernels/kernels_cuda.h) of a model on the
 * CUDA backend; NULL otherwise. */
void *scb_model_device_ctx(const struct scb_model *m);

void scb_model_stats(const struct scb_model *m, struct scb_model_stats *out);
void scb_model_stats_reset(struct scb_model *m);

#endif
