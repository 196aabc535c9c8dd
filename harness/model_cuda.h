/* model_cuda.h — the model's forward pass on the CUDA backend (internal to harness/model.c,
 * built only with CUDA): bf16 weights resident on the device (uploaded once at load: bf16 as
 * stored, f16/f32 rounded to bf16), a device KV cache in bf16 with the host bookkeeping of
 * kernels/kv_cache.h (scb_kv_cache_create_external), one device activation arena sized from
 * the largest chunk forwarded so far (a decode step never allocates), cuBLAS GEMMs with fp32
 * accumulation for the projections and the LM head, the attention kernels of
 * kernels_cuda.h over the cache in place, and greedy argmax on the device.
 *
 * Numerics follow HF transformers running the model in bf16: the residual stream and every
 * activation are bf16, RMSNorm/RoPE/SwiGLU compute in fp32 and round once, GEMMs accumulate in
 * fp32; logits are fp32 (the LM head's accumulator, not rounded). Methods come in through the
 * device hooks of model.h (struct scb_dev_hooks; harness/method_bind_dev.c installs them). */
#ifndef SCB_HARNESS_MODEL_CUDA_H
#define SCB_HARNESS_MODEL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model.h"
#include "harness/model_config.h"
#include "harness/safetensors.h"
#include "kernels/backend.h"
#include "kernels/kv_cache.h"
#include "kernels/status.h"

struct scb_model_cuda;

/* Upload the weights of st (names and shapes already validated by model.c) for config c
 * (borrowed; must outlive the engine) onto the CUDA backend be (borrowed). */
int  scb_model_cuda_load(struct scb_model_cuda **out, struct scb_backend *be,
                         const struct scb_model_config *c, const struct scb_safetensors *st,
                         struct scb_ctx *ctx);
void scb_model_cuda_destroy(struct scb_model_cuda *d);    /* NULL is a no-op */
/* Device bytes of the bf16 weights. */
size_t scb_model_cuda_weight_bytes(const struct scb_model_cuda *d);
/* Decode steps run as CUDA graphs so far (0 when SCB_CUDA_GRAPHS=0 turned them off) and how
 * many of them re-instantiated the graph. A step is a graph when it forwards one token with
 * dense decode attention (no decode hook) and wants only the argmax (scb_model_forward_next). */
void scb_model_cuda_graph_stats(const struct scb_model_cuda *d, long *steps, long *instantiations);

/* A device KV cache (bf16, (L, Hs, cap, D)) for this model, storing Hs heads (the model's KV
 * heads, or more for per-query-head KV policies: kernels/kv_cache.h). */
int scb_model_cuda_kv_create(struct scb_model_cuda *d, size_t Hs, size_t cap, struct scb_kv_cache **out,
                             struct scb_ctx *ctx);
/* Dense attention of a (harness/model.h) over its Tk entries per stored head. */
int scb_model_cuda_dense(const struct scb_dev_attn *a, struct scb_ctx *ctx);
/* Whether kv was made by scb_model_cuda_kv_create (of any engine). */
int scb_model_cuda_kv_is_device(const struct scb_kv_cache *kv);

/* Forward n tokens (ids checked < V, room checked by the caller) at positions kv->seen.. and
 * advance kv. logits (host): (n, V) when all_logits, else (V) of the last position; NULL skips
 * the download. next (host, may be NULL): the argmax of the last position's logits, computed
 * on the device (only the id is copied back). With logits and next both NULL the LM head is
 * skipped. hooks (may be NULL = dense): the method seam of harness/model.h, run per layer as the
 * CPU engine runs struct scb_attn_hooks. *flops (may be NULL) gets the 2·T·K·N of the GEMMs run. */
int scb_model_cuda_forward(struct scb_model_cuda *d, struct scb_kv_cache *kv, const int32_t *ids,
                           size_t n, float *logits, int all_logits, int32_t *next,
                           const struct scb_dev_hooks *hooks, double *flops, struct scb_ctx *ctx);

#endif
