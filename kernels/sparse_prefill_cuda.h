/* sparse_prefill_cuda.h — the C interface of the sparse PREFILL kernels of the long-context
 * methods on the CUDA backend (spec/methods.md §2-3): A-shape, Tri-shape and MInference
 * (vertical-slash with its last-query estimation and MInference's index converter,
 * block-sparse, stream_llm heads). Same conventions as kernels_cuda.h: plain C, bf16 tensors
 * as uint16_t bit patterns, DEVICE pointers unless said otherwise, status return with detail on
 * `err`, SCB_E_INVAL for bad shapes/pointers, asynchronous on the context's stream unless said.
 *
 * Key sets are EXACTLY those of the CPU reference (methods/a_shape.c, methods/minference.c):
 * the sparse kernel visits, per (query head, 64-row block), a list of 64-key tiles (contiguous,
 * start not 64-aligned) and then 64-column chunks of gathered columns, and masks inside each
 * tile per element (causal + the pattern's own rule), so partial tiles are exact. Scores are
 * fp32 (bf16 products accumulated in fp32 on the tensor cores for D 64/128, in fp32 FMAs on the
 * plain path for any other even D <= 256); online softmax in fp32; P rounded to bf16 before P·V
 * on the tensor-core path. A row that sees no key gets out = 0. The estimation (MInference
 * §2.3) is fp32 throughout (scores, softmax, column and diagonal sums in a fixed order: the
 * selection is deterministic); top-k is an exact radix select with the CPU's tie rule (higher
 * score first, then the smaller index). */
#ifndef SCB_KERNELS_SPARSE_PREFILL_CUDA_H
#define SCB_KERNELS_SPARSE_PREFILL_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "kernels/status.h"

struct scb_cuda_ctx;

/* Head pattern kinds of struct scb_sparse_attn_cuda_args.head_pat. */
enum scb_sparse_kind {
    SCB_SPARSE_LIST   = 0,   /* tiles + gathered columns from the index lists (needs Tq == Tk) */
    SCB_SPARSE_STREAM = 1    /* A-shape (n_init sinks + n_local window), Tri-shape with dense_from */
};

/* Sparse causal GQA attention of one layer. Query row i (position p = i + Tk - Tq) of head h
 * (KV head h / (Hq / Hkv)) sees key j iff j <= p and
 *   STREAM head: i >= dense_from  or  p - j < n_local  or  j < n_init            (§3.1-3.2)
 *   LIST head:   j lies in one of the tiles [o, o + 64) of row block m = i / 64
 *                (block_offset[h][m][0 .. block_count[h][m])) or is one of the columns
 *                column_index[h][m][0 .. column_count[h][m])                       (§2.4-2.6)
 * For LIST heads the tiles of one row block must be disjoint, the columns of row block m
 * < 64 m and disjoint from the tiles (what scb_cuda_minf_convert / scb_cuda_minf_block_select
 * produce); offsets >= 0. Tiles every row of the block fully sees skip the per-element mask. */
struct scb_sparse_attn_cuda_args {
    const uint16_t *q;        /* (Tq, Hq, D) bf16, packed */
    const uint16_t *k, *v;    /* key j of KV head g at k + j*kv_tok_stride + g*kv_head_stride */
    uint16_t *out;            /* (Tq, Hq, D) bf16, packed */
    int Tq, Tk, Hq, Hkv, D;   /* D even, <= 256 (tensor cores for 64 and 128) */
    size_t kv_tok_stride;     /* 0 = Hkv*D */
    size_t kv_head_stride;    /* 0 = D */
    float scale;              /* 0 = 1/sqrt(D) */
    const int32_t *head_pat;  /* (Hq, 3) int32 device {kind, n_init, n_local}; NULL = every head
                                 STREAM with the scalars below */
    int n_init, n_local;      /* n_init >= 0, n_local >= 1 */
    int dense_from;           /* STREAM rows i >= dense_from are dense (Tri-shape); >= Tq = none */
    const int32_t *block_offset;  /* (Hq, nblk, lds) int32, nblk = ceil(Tq / 64) */
    const int32_t *block_count;   /* (Hq, nblk) */
    const int32_t *column_index;  /* (Hq, nblk, ldv) */
    const int32_t *column_count;  /* (Hq, nblk) */
    int lds, ldv;
    unsigned long long *pairs;    /* (1) device: += the (row, key) pairs computed; NULL = skip */
};
/* Requirements (else SCB_E_INVAL): Tq >= 1, Tk >= Tq, Hq % Hkv == 0, D even <= 256, strides
 * multiples of 8 and 16-byte aligned q/k/v/out for D 64/128, list arrays given when head_pat is
 * given (they may be NULL when no head is LIST) and Tq == Tk then. */
int scb_cuda_sparse_attn(struct scb_cuda_ctx *cc, const struct scb_sparse_attn_cuda_args *a,
                         struct scb_ctx *err);
/* Which kernel scb_cuda_sparse_attn runs for head dim D on cc's device under the current
 * environment (tensor-core-eligible strides and alignment assumed): "sm90" (wgmma + TMA, D = 128
 * on a compute-capability-9 device with sm_90a code, the default there), "fa2" (mma.sync, D 64
 * and 128 elsewhere) or "plain" (other D); NULL when SCB_SPARSE_PREFILL holds a value other than
 * fa2 / sm90. SCB_SPARSE_PREFILL=fa2 keeps D = 128 on the mma.sync kernel; =sm90 forces the sm90
 * kernel for D = 128 (SCB_E_UNSUPPORTED where it cannot run). */
const char *scb_cuda_sparse_attn_kernel(struct scb_cuda_ctx *cc, int D);

/* MInference vertical-slash estimation (§2.3) for nh query heads heads[i] (device int32 (nh)):
 * from the last lq = min(last_q, N) queries, A = softmax(scale q k^T) with the causal mask,
 * vert[j] = column sums, diag[d] = diagonal sums (d = query pos - key pos). Columns
 * 0..min(30,k)-1 and diagonals 0..min(100,k)-1 are forced, the rest by score (ties: smaller
 * index). v_size / s_size: (nh) int32 device, the final counts v' = min(N, max(v, 30)),
 * s' = min(N, max(s, 50)) (the caller clamps). Outputs V (nh, ld) ascending (first v_size[i]
 * entries of row i) and S (nh, ld) descending (first s_size[i]); ld >= N.
 * vert_out / diag_out (nh, N) fp32 receive the raw sums (may be NULL).
 * work: device scratch of scb_cuda_minf_vs_work_bytes(nh, lq, N) bytes. */
size_t scb_cuda_minf_vs_work_bytes(int nh, int lq, int N);
int scb_cuda_minf_vs_estimate(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k,
                              size_t kv_tok_stride, size_t kv_head_stride, int N, int Hq, int Hkv,
                              int D, float scale, int last_q, const int32_t *heads, int nh,
                              const int32_t *v_size, const int32_t *s_size, int32_t *V, int32_t *S,
                              int ld, float *vert_out, float *diag_out, void *work,
                              struct scb_ctx *err);

/* MInference's convert_vertical_slash_indexes (§2.4) for nh heads: row i of V (nh, ldvs)
 * ascending with nv[i] entries, of S (nh, ldvs) descending with ns[i] entries ending with 0,
 * into query head heads[i]'s rows of block_offset (Hq, nblk, lds), block_count (Hq, nblk),
 * column_index (Hq, nblk, ldv), column_count (Hq, nblk); needs lds >= ns[i], ldv >= nv[i].
 * nblk = ceil(N / 64). heads, nv, ns: (nh) int32 device. */
int scb_cuda_minf_convert(struct scb_cuda_ctx *cc, int N, const int32_t *V, const int32_t *S, int ldvs,
                          const int32_t *nv, const int32_t *ns, const int32_t *heads, int nh,
                          int32_t *block_offset, int32_t *block_count, int32_t *column_index,
                          int32_t *column_count, int lds, int ldv, struct scb_ctx *err);

/* MInference block-sparse selection (§2.6) for nh query heads heads[i]: mean-pooled 64-row
 * blocks of q and k (N padded by a full block when N % 64 == 0, zero rows in the mean),
 * score = dot (no scale), top kk = min(topk, nb_pad) key blocks per row block (ties: smaller
 * block), ascending; row block a uses min(a + 1, kk) of them. Written as LIST tiles:
 * block_offset[h][a][t] = 64 * block, block_count[h][a] = min(a + 1, kk), column_count = 0, for
 * the a < ceil(N / 64) row blocks. lds >= kk. work: scb_cuda_minf_bs_work_bytes(nh, N, D). */
size_t scb_cuda_minf_bs_work_bytes(int nh, int N, int D);
int scb_cuda_minf_block_select(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k,
                               size_t kv_tok_stride, size_t kv_head_stride, int N, int Hq, int Hkv,
                               int D, int topk, const int32_t *heads, int nh, int32_t *block_offset,
                               int32_t *block_count, int32_t *column_count, int lds, void *work,
                               struct scb_ctx *err);

/* ---- one MInference layer (what the CUDA method binding and the benchmark call) ----------- */
/* Per-head pattern (host): type 0 vertical_and_slash, 1 block_sparse, 2 stream_llm
 * (methods/minference.h enum scb_minf_type), v, s as in the config (ratio applied). */
struct scb_minf_cuda_pattern { int type, v, s; };
/* Device scratch grown on demand (prefill only) and kept between calls. */
struct scb_cuda_minf_ws;
int  scb_cuda_minf_ws_create(struct scb_cuda_minf_ws **out, struct scb_ctx *err);
void scb_cuda_minf_ws_destroy(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws);  /* NULL ok */

/* The sparse prefill of one layer with per-head patterns pat (Hq, host): a->Tq == a->Tk = N
 * >= 2 (the caller runs N == 1 densely); a->head_pat and the list fields are ignored (the
 * launcher builds them). Vertical-slash heads are estimated in groups so that the score
 * scratch stays under 512 MiB. *density = computed pairs / causal pairs of the layer (the
 * device count; this call synchronizes to read it). */
int scb_cuda_minf_prefill(struct scb_cuda_ctx *cc, struct scb_cuda_minf_ws *ws,
                          const struct scb_sparse_attn_cuda_args *a,
                          const struct scb_minf_cuda_pattern *pat, int last_q, int block_topk,
                          double *density, struct scb_ctx *err);

#ifdef __cplusplus
}
#endif

#endif
