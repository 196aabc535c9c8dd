/* kernels_cuda.h — the C interface of the CUDA kernels (bf16 activations and weights, fp32
 * accumulation, sm_90): a small context (device, stream, cuBLAS handle, workspace, timing
 * events), device memory helpers, and one plain C launcher per kernel. No CUDA header is
 * included here: C code (the engine, the parity test, the benchmark) includes this file;
 * the definitions live in the .cu files of kernels/cuda/.
 *
 * Conventions
 * - Every launcher returns SCB_OK or a negative enum scb_status, with detail text on `err`
 *   (may be NULL). SCB_E_INVAL for bad shapes/pointers/alignment, SCB_E_CUDA for a CUDA or
 *   cuBLAS failure (the call text, file:line and the CUDA error string are in the message),
 *   SCB_E_DEVICE_OOM when a device allocation fails. A launch error is sticky: the context
 *   remembers it and every later call fails with the same message (the backend is dead).
 * - Launchers are asynchronous on the context's stream; scb_cuda_sync() waits and also reports
 *   errors raised by kernels through the context's device flag (e.g. a token id out of range).
 * - bf16 tensors are uint16_t arrays holding the bf16 bit pattern (upper half of an IEEE
 *   float). All tensor pointers are DEVICE pointers unless said otherwise. Shapes are row-major;
 *   each pointer's comment gives the shape.
 * - Every pointer is borrowed for the call (the stream keeps using it until the next sync). */
#ifndef SCB_KERNELS_KERNELS_CUDA_H
#define SCB_KERNELS_KERNELS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/status.h"   /* C linkage also when included from a .cu file */

/* ---- context ---------------------------------------------------------------------------- */

/* Opaque: device index, cudaStream_t, cublasHandle_t, workspace (split-K partials), a device
 * error flag, timing events, and the sticky error. */
struct scb_cuda_ctx;

/* Number of usable CUDA devices in *n (0 when there is no driver, no device, or the runtime
 * reports an error — never fails). `why` (may be NULL, size n_why) receives the CUDA reason
 * when *n is 0. */
void scb_cuda_device_count(int *n, char *why, size_t n_why);

/* Create a context on device `device` with its own non-blocking stream and cuBLAS handle.
 * workspace_bytes: 0 = default (64 MiB); the decode split-K partials live there. *out = NULL on
 * failure. */
int scb_cuda_ctx_create(struct scb_cuda_ctx **out, int device, size_t workspace_bytes,
                        struct scb_ctx *err);
/* Destroy (NULL is a no-op). Synchronizes first. */
void scb_cuda_ctx_destroy(struct scb_cuda_ctx *cc);

/* Device description: "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 80 GiB, CUDA runtime 13000,
 * driver 13000" written into buf (always NUL-terminated). */
void scb_cuda_describe(const struct scb_cuda_ctx *cc, char *buf, size_t n);
/* Number of streaming multiprocessors and the L2 size in bytes. */
int scb_cuda_sm_count(const struct scb_cuda_ctx *cc);
size_t scb_cuda_l2_bytes(const struct scb_cuda_ctx *cc);

/* Wait for the stream; reports kernel-side errors (device flag) and asynchronous CUDA errors. */
int scb_cuda_sync(struct scb_cuda_ctx *cc, struct scb_ctx *err);

/* ---- memory (device pointers) ----------------------------------------------------------- */
int  scb_cuda_malloc(struct scb_cuda_ctx *cc, void **out, size_t bytes, struct scb_ctx *err);
void scb_cuda_free(struct scb_cuda_ctx *cc, void *p);                /* NULL is a no-op */
/* Host→device and device→host copies (synchronous with respect to the host). */
int scb_cuda_upload(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                    struct scb_ctx *err);
int scb_cuda_download(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                      struct scb_ctx *err);
/* Device→device copy on the stream (asynchronous). */
int scb_cuda_copy(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                  struct scb_ctx *err);
/* Fill n 16-bit (bf16) or 32-bit (fp32) words with a bit pattern (e.g. NaN poison). */
int scb_cuda_fill16(struct scb_cuda_ctx *cc, uint16_t *dst, uint16_t bits, size_t n,
                    struct scb_ctx *err);
int scb_cuda_fill32(struct scb_cuda_ctx *cc, uint32_t *dst, uint32_t bits, size_t n,
                    struct scb_ctx *err);

/* ---- pinned host memory and asynchronous copies ------------------------------------------ */
/* Page-locked host memory (for copies inside a captured graph). */
int  scb_cuda_host_alloc(struct scb_cuda_ctx *cc, void **out, size_t bytes, struct scb_ctx *err);
void scb_cuda_host_free(struct scb_cuda_ctx *cc, void *p);          /* NULL is a no-op */
/* Copies on the stream that do not wait: src (upload) / dst (download) must be pinned
 * (scb_cuda_host_alloc) and stay valid until the next scb_cuda_sync. */
int scb_cuda_upload_async(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                          struct scb_ctx *err);
int scb_cuda_download_async(struct scb_cuda_ctx *cc, void *dst, const void *src, size_t bytes,
                            struct scb_ctx *err);

/* ---- CUDA graphs -------------------------------------------------------------------------- */
/* A step recorded as a graph: every launcher between scb_cuda_graph_begin and
 * scb_cuda_graph_launch is captured from the context's stream (nothing runs yet; synchronous
 * calls — scb_cuda_upload/download/sync — are not allowed in between), then the executable
 * graph kept in g is updated in place from the new capture (cudaGraphExecUpdate: kernel
 * arguments and grid sizes may change from step to step; a new topology re-instantiates) and
 * launched as one unit, so the GPU runs the step's kernels back to back without per-kernel
 * launch gaps. scb_cuda_graph_abort ends a capture that failed half-way (the stream is usable
 * again; the graph is discarded). */
struct scb_cuda_graph;
int  scb_cuda_graph_create(struct scb_cuda_ctx *cc, struct scb_cuda_graph **out, struct scb_ctx *err);
void scb_cuda_graph_destroy(struct scb_cuda_graph *g);             /* NULL is a no-op */
int  scb_cuda_graph_begin(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err);
int  scb_cuda_graph_launch(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err);
void scb_cuda_graph_abort(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g);
/* Record once, replay many times: scb_cuda_graph_record captures what fn(user, err) launches
 * on the context's stream (nothing runs) and instantiates it as g's executable graph, replacing
 * any earlier one; scb_cuda_graph_replay launches it again as one unit. Everything that changes
 * between replays must live in device memory (or pinned host memory copied inside the graph);
 * fn must not call synchronous launchers. A failed capture leaves g empty. (The host emulation
 * keeps fn and user and calls fn at each replay, so fn must read only what it read at record
 * time plus device memory.) */
typedef int (*scb_cuda_graph_fn)(void *user, struct scb_ctx *err);
int  scb_cuda_graph_record(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, scb_cuda_graph_fn fn,
                           void *user, struct scb_ctx *err);
int  scb_cuda_graph_replay(struct scb_cuda_ctx *cc, struct scb_cuda_graph *g, struct scb_ctx *err);
/* Steps launched so far, and how many of them had to re-instantiate (topology changed) or were
 * recorded anew (scb_cuda_graph_record). */
void scb_cuda_graph_stats(const struct scb_cuda_graph *g, long *launches, long *instantiations);

/* ---- timing (CUDA events on the context's stream) --------------------------------------- */
/* Record the start / stop event; scb_cuda_timer_ms syncs on stop and returns the elapsed ms. */
int scb_cuda_timer_start(struct scb_cuda_ctx *cc, struct scb_ctx *err);
int scb_cuda_timer_stop(struct scb_cuda_ctx *cc, struct scb_ctx *err);
int scb_cuda_timer_ms(struct scb_cuda_ctx *cc, float *ms, struct scb_ctx *err);

/* ---- host-side bf16 helpers (plain C, round-to-nearest-even; NaN stays NaN) ------------- */
uint16_t scb_bf16_from_f32(float f);
float    scb_bf16_to_f32(uint16_t b);

/* ---- attention -------------------------------------------------------------------------- */

/* Causal (bottom-right aligned) GQA attention over bf16 tensors: query row i sees key j iff
 * j <= i + Tk - Tq; query head h reads KV head h / (Hq / Hkv). fp32 scores, online softmax and
 * accumulation; the probabilities are rounded to bf16 before the PV product (as FlashAttention).
 * A query row that sees no key gets out = 0 and lse = -inf (as methods/dense.h). */
struct scb_attn_cuda_args {
    const uint16_t *q;     /* (Tq, Hq, D) bf16, packed */
    const uint16_t *k;     /* key j of KV head g at k + j*kv_tok_stride + g*kv_head_stride, bf16 */
    const uint16_t *v;     /* same layout as k */
    uint16_t *out;         /* (Tq, Hq, D) bf16, packed */
    float    *lse;         /* (Tq, Hq) fp32 natural-log sum-exp of the scaled scores; NULL = skip */
    int Tq, Tk, Hq, Hkv, D;/* D in {64, 128}; Hq % Hkv == 0 */
    size_t kv_tok_stride;  /* elements between tokens; 0 = Hkv*D (packed (Tk, Hkv, D)) */
    size_t kv_head_stride; /* elements between KV heads; 0 = D */
    float scale;           /* 0 = 1/sqrt(D) */
};
/* Requirements (else SCB_E_INVAL): Tq >= 1, Tk >= 0, D in {64,128}, strides multiples of 8,
 * q/k/v/out 16-byte aligned. */

/* Prefill attention: picks the kernel below. D=128 on an sm_90 device with a binary built for
 * sm_90a runs scb_attn_prefill_sm90_cuda, everything else scb_attn_prefill_fa2_cuda. The
 * environment variable SCB_ATTN_PREFILL=fa2|sm90 forces one (sm90 where it cannot run is an
 * error, SCB_E_UNSUPPORTED); it is read at every call. */
int scb_attn_prefill_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                          struct scb_ctx *err);

/* FlashAttention-2 style prefill: 64-query tiles per block of 4 warps, 64-key tiles through
 * shared memory (cp.async double buffering), mma.sync m16n8k16 bf16 tensor-core products.
 * Any sm_80+ device, D 64 and 128. */
int scb_attn_prefill_fa2_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                              struct scb_ctx *err);

/* FlashAttention-3 style prefill for Hopper (kernels/cuda/attn_prefill_sm90.cu): TMA loads by
 * a producer warpgroup into a 3-stage ring, wgmma (warpgroup MMA) products in two consumer
 * warpgroups that take turns on the tensor cores (ping-pong), 128-query by 128-key tiles.
 * Same arguments and semantics as above; D=128 only; needs compute capability 9.0 and a build
 * with sm_arch=90 (sm_90a code), else SCB_E_UNSUPPORTED. Measurement knobs (environment):
 * SCB_ATTN_SM90_SCHEDULE=serial|overlap|pingpong, SCB_ATTN_SM90_STAGES=2|3. */
int scb_attn_prefill_sm90_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                               struct scb_ctx *err);

/* Split-K decode attention for few query rows (Tq * Hq/Hkv <= 64) over many keys: the keys
 * are cut into partitions processed in parallel, each writing a partial output and its lse to
 * the workspace, then a merge kernel combines them with log-sum-exp weights. n_splits: 0 =
 * automatic (scb_attn_decode_splits); otherwise the number of key partitions (clamped). The
 * kernel: the tiled one (K/V tiles through shared memory by cp.async), or with the environment
 * variable SCB_ATTN_DECODE=v1 the earlier one (direct loads); another value is SCB_E_INVAL. */
int scb_attn_decode_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                         int n_splits, struct scb_ctx *err);

/* The same with the key count read from device memory (*d_tk, int32; a->Tk is ignored) and a
 * fixed number of partitions n_splits >= 1, so the launch can sit in a CUDA graph recorded once
 * and replayed while the cache grows: each partition takes ceil(Tk / n_splits) keys rounded up
 * to a 64-key tile, partitions past the end write an empty partial. Always the tiled kernel. */
int scb_attn_decode_dev_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                             const int32_t *d_tk, int n_splits, struct scb_ctx *err);
/* The automatic partition count of scb_attn_decode_cuda for a (n_splits = 0): enough blocks
 * for one wave over the SMs, at least one tile of keys each (SCB_ATTN_DECODE=v1: the earlier
 * kernel, about 4 blocks per SM, 128 keys each). */
int scb_attn_decode_splits(const struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a);

/* Plain attention for any even D <= 256 (same semantics and arguments as above, no alignment
 * or stride requirements beyond element granularity): one block per (query row, head), fp32
 * scores, online softmax, fp32 probabilities in P·V. Slow (no tensor cores, no K/V reuse);
 * the engine uses it only for head dims the two kernels above reject. */
int scb_attn_generic_cuda(struct scb_cuda_ctx *cc, const struct scb_attn_cuda_args *a,
                          struct scb_ctx *err);

/* ---- KV cache ---------------------------------------------------------------------------- */

/* Append a chunk to one layer of the device KV cache: kc, vc are that layer's (Hkv, cap, D)
 * bf16 storage; rows len..len+T-1 of stored head h get head h / (Hkv / Hin) of k, v
 * (T, Hin, D) bf16 packed. SCB_E_INVAL when len + T > cap. */
int scb_cuda_kv_append(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, const uint16_t *k,
                       const uint16_t *v, int T, int Hin, int Hkv, int D, size_t cap, size_t len,
                       struct scb_ctx *err);
/* The same with len read from device memory (*d_len, int32) for a CUDA graph replayed every
 * step; the caller checks len + T <= cap on the host (the kernel skips rows past cap). */
int scb_cuda_kv_append_dev(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, const uint16_t *k,
                           const uint16_t *v, int T, int Hin, int Hkv, int D, size_t cap,
                           const int32_t *d_len, struct scb_ctx *err);

/* A KV policy's compaction of one layer (SnapKV, PyramidKV, StreamingLLM on the device):
 * kc, vc are the layer's (Hs, cap, D) bf16 storage; stored head s keeps its rows
 * idx[s*n + i], i < n (idx: (Hs, n) int32 device, strictly ascending per head, < the head's
 * entries) as rows 0..n-1, in place. D a multiple of 8. Pair it with scb_kv_cache_keep() for
 * the host bookkeeping. */
int scb_cuda_kv_keep(struct scb_cuda_ctx *cc, uint16_t *kc, uint16_t *vc, int Hs, int D,
                     size_t cap, const int32_t *idx, int n, struct scb_ctx *err);

/* ---- row and elementwise kernels (bf16 in/out, fp32 arithmetic, one rounding) ------------ */

/* RMSNorm as HF Llama/Qwen2: r = rsqrt(mean(x^2) + eps) in fp32; y = bf16(w * bf16(x * r)).
 * x, y: (T, n) bf16 (y may alias x); w: (n) bf16. */
int scb_cuda_rmsnorm(struct scb_cuda_ctx *cc, uint16_t *y, const uint16_t *x, const uint16_t *w,
                     int T, int n, float eps, struct scb_ctx *err);

/* RoPE, rotate_half convention, in place on x: (T, H, D) bf16 with token stride tok_stride
 * elements (0 = H*D). For i < D/2 with angle a = pos[t] * inv_freq[i] (fp32, sin/cos fp32):
 * x[i] <- x[i]cos a - x[i+D/2] sin a; x[i+D/2] <- x[i+D/2] cos a + x[i] sin a.
 * pos: (T) int32 device; inv_freq: (D/2) fp32 device. D even, <= 256. */
int scb_cuda_rope(struct scb_cuda_ctx *cc, uint16_t *x, int T, int H, int D, size_t tok_stride,
                  const int32_t *pos, const float *inv_freq, struct scb_ctx *err);

/* The two-step form of kernels/backend.h (rope_table + rope): cos, sin (T, D/2) fp32 device for
 * positions pos0..pos0+T-1, angle = (float)pos * inv_freq[i] in fp32, cos/sin in fp32 times
 * attn_scale; then x (T, H, D) bf16 rotated in place from the tables (same formula as
 * scb_cuda_rope, which it equals bit for bit when attn_scale = 1). */
int scb_cuda_rope_table(struct scb_cuda_ctx *cc, const float *inv_freq, int half, int64_t pos0,
                        int T, float attn_scale, float *cos_t, float *sin_t, struct scb_ctx *err);
int scb_cuda_rope_cs(struct scb_cuda_ctx *cc, uint16_t *x, int T, int H, int D, size_t tok_stride,
                     const float *cos_t, const float *sin_t, struct scb_ctx *err);
/* rope_table with pos0 read from device memory (*d_pos0, int32 >= 0), for a replayed graph. */
int scb_cuda_rope_table_dev(struct scb_cuda_ctx *cc, const float *inv_freq, int half,
                            const int32_t *d_pos0, int T, float attn_scale, float *cos_t,
                            float *sin_t, struct scb_ctx *err);

/* SwiGLU: out[t][f] = silu(gate[t][f]) * up[t][f], silu(g) = g / (1 + exp(-g)).
 * gate, up: row t at gate + t*ld_in (ld_in = 0 means F); out: (T, F) bf16 packed. */
int scb_cuda_swiglu(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *gate,
                    const uint16_t *up, int T, int F, size_t ld_in, struct scb_ctx *err);

/* Embedding gather: out[t] = table[ids[t]]; table: (V, n) bf16; ids: (T) int32 device;
 * out: (T, n) bf16. An id outside [0, V) fills its row with NaN and raises the device flag,
 * reported by the next scb_cuda_sync as SCB_E_INVAL. */
int scb_cuda_embed(struct scb_cuda_ctx *cc, uint16_t *out, const uint16_t *table, int V, int n,
                   const int32_t *ids, int T, struct scb_ctx *err);

/* Residual add in place: x[i] = bf16(x[i] + y[i]), n elements. */
int scb_cuda_add(struct scb_cuda_ctx *cc, uint16_t *x, const uint16_t *y, size_t n,
                 struct scb_ctx *err);

/* Greedy argmax per row: idx[t] = smallest j with logits[t][j] maximal (NaN ignored; a row of
 * NaN gives 0). logits: (T, V) fp32 (is_bf16 = 0) or bf16 (is_bf16 = 1); idx: (T) int32. */
int scb_cuda_argmax(struct scb_cuda_ctx *cc, int32_t *idx, const void *logits, int is_bf16,
                    int T, int V, struct scb_ctx *err);

/* fp32 <-> bf16 conversion of n elements (round to nearest even). */
int scb_cuda_f32_to_bf16(struct scb_cuda_ctx *cc, uint16_t *dst, const float *src, size_t n,
                         struct scb_ctx *err);
int scb_cuda_bf16_to_f32(struct scb_cuda_ctx *cc, float *dst, const uint16_t *src, size_t n,
                         struct scb_ctx *err);

/* ---- GEMM (cuBLAS) ---------------------------------------------------------------------- */

/* Projection y = x W^T (+ bias) (+ y when accumulate) with the HF weight layout, bf16 inputs,
 * fp32 compute, one rounding of the result: x: (T, in) bf16; W: (out, in) bf16; bias: (out)
 * bf16 or NULL (e.g. Qwen2's q/k/v biases); y: (T, out), bf16 (y_f32 = 0) or fp32 (y_f32 = 1,
 * e.g. logits). cublasGemmEx with CUBLAS_COMPUTE_32F; a bias is broadcast into y first and
 * added by beta = 1, so bias and accumulate cannot be combined (SCB_E_INVAL). */
int scb_cuda_gemm(struct scb_cuda_ctx *cc, void *y, int y_f32, const uint16_t *x,
                  const uint16_t *W, const uint16_t *bias, int T, int in, int out, int accumulate,
                  struct scb_ctx *err);

#ifdef __cplusplus
}
#endif

#endif
