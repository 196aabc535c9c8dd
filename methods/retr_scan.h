/* retr_scan.h — RetrievalAttention's exact flat search over a key-blocked bf16 key store, for
 * the device binding's host index (harness/method_dev_retr_attn.c) and its benchmark.
 *
 * Store: the keys of one KV head as blocks of SCB_RETR_KB keys; block b holds keys
 * [b*KB, b*KB + KB) as (D, KB) bf16, so channel d of the KB keys is one 32-byte run. bf16 is
 * lossless here: the keys ARE bf16 on the device, and the fp32 key the score reads is their exact
 * widening, done in registers (a shift).
 *
 * Scan: each score is bit for bit scb_retr_score's (methods/retr_attn.h: faiss's flat
 * inner-product search in fp32, as SCBench's papyfaiss FlatIndex): s = 0.0f, then
 * s = fmaf(q[d], k[d], s) in d order. The SIMD paths put one key in each lane (ACROSS keys), so
 * every lane performs exactly that chain of fused multiply-adds; several query heads share each
 * key load. Paths: scalar (portable, the C library's fmaf), AVX2 + FMA (a block in two ymm of 8
 * lanes), AVX-512F (a block in one zmm of 16 lanes; AVX-512F includes FMA); the best this CPU has
 * is chosen at run time; the environment variable SCB_RETR_SCAN=scalar|avx2fma|avx512fma or
 * scb_retr_scan_force() pins one (tests, benchmark). A separate fp32 multiply and add would round
 * twice and give other bits: no such path exists. */
#ifndef SCB_METHODS_RETR_SCAN_H
#define SCB_METHODS_RETR_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/cpu/pool.h"
#include "kernels/status.h"

enum { SCB_RETR_KB = 16 };   /* keys per block */

/* The automatic choice takes the first supported of AVX512_FMA, AVX2_FMA, SCALAR (all three
 * bit-identical). */
enum scb_retr_isa {
    SCB_RETR_ISA_SCALAR = 0,
    SCB_RETR_ISA_AVX2_FMA = 1,
    SCB_RETR_ISA_AVX512_FMA = 2,
    SCB_RETR_ISA_COUNT = 3,
};

/* bf16 elements a store of n keys of dimension D takes (whole blocks). */
size_t scb_retr_kb_elems(size_t n, int D);
/* Write key t (D bf16 values) into the store / read it back widened to fp32. */
void scb_retr_kb_put(uint16_t *kb, int D, size_t t, const uint16_t *key);
void scb_retr_kb_get(const uint16_t *kb, int D, size_t t, float *out);
/* Write n consecutive keys t0.. (row r at keys + r*ks, bf16) into the store. */
void scb_retr_kb_put_rows(uint16_t *kb, int D, size_t t0, const uint16_t *keys, size_t ks, size_t n);

/* Scores of nq queries (row r at q + r*qs, fp32) against keys [t0, t0 + n) of the store kb:
 * scores[r*ss + (t - t0)] = scb_retr_score(q_r, key_t) exactly. Keys of the blocks the range touches are
 * read (the whole first and last block), so those blocks must be initialised (a zeroed or filled
 * store). D <= SCB_RETR_SCAN_DMAX. */
enum { SCB_RETR_SCAN_DMAX = 512 };
void scb_retr_kb_scores(const float *q, size_t qs, int nq, const uint16_t *kb, int D, size_t t0, int n,
                        float *scores, size_t ss);

/* The path the scan uses (resolved on first call: SCB_RETR_SCAN, else the best this CPU has). */
enum scb_retr_isa scb_retr_scan_isa(void);
/* Pin a path: SCB_OK, or SCB_E_UNSUPPORTED when this CPU (or build) lacks it (path unchanged). */
int  scb_retr_scan_force(enum scb_retr_isa isa);
int  scb_retr_scan_supported(enum scb_retr_isa isa);
const char *scb_retr_scan_isa_name(enum scb_retr_isa isa);

/* One retrieval step of the flat index for all query heads, on a pool: the G query heads of
 * each KV head scored in one pass over slices of its keys [lo, hi), then each query head's top-k
 * id set in ascending id order (scb_retr_topk_set: the ids scb_retr_flat_topk returns).
 * The FUSED step (which = SCB_RETR_STEP_FUSED) does both in ONE pool dispatch: each thread
 * scores its contiguous share of the (KV head, slice) items and, while the scores are hot,
 * writes each score's 16-bit digit (scb_retr_score_key >> 16) and counts its top
 * SCB_RETR_HIST_BITS bits in its own histogram per query head; after a barrier (spin, then
 * yield) each query head's histograms are summed and scb_retr_topk_set_dig selects: one pass over
 * the digits plus the boundary bin's candidates. Same scores, same id sets as which = 3. */
enum { SCB_RETR_HIST_BITS = 12 };
enum {
    SCB_RETR_STEP_SCORE = 1,
    SCB_RETR_STEP_SELECT = 2,
    SCB_RETR_STEP_BOTH = 3,    /* score, then select: two dispatches (the previous step) */
    SCB_RETR_STEP_FUSED = 4,   /* the fused step; needs dig and hist_work */
};
struct scb_retr_step {
    const float *q;            /* (Hq, D) fp32 queries of the step */
    int Hq, Hkv, D;
    const uint16_t *kb;        /* (Hkv, kb_head) key stores, one per KV head */
    size_t kb_head;            /* bf16 elements between KV heads' stores */
    int lo, hi, top_k;         /* index range [lo, hi); ids retrieved per query head */
    float *scores;             /* (Hq, ss) scratch: scores of keys [lo, hi) */
    size_t ss;
    unsigned char *sel_work;   /* (threads, sel_bytes) scratch: scb_retr_topk_set_work_bytes(hi - lo) each */
    size_t sel_bytes;
    int32_t *idx;              /* (Hq, idx_stride) out: ascending ids */
    int idx_stride;
    int32_t *n_idx;            /* (Hq) out: ids per head */
    /* fused step only */
    uint16_t *dig;             /* (Hq, ss) scratch: the scores' digits */
    unsigned char *hist_work;  /* scratch: scb_retr_step_hist_bytes(threads, Hq) bytes */
    size_t hist_bytes;
    int hist_in_select;        /* nonzero: the scan writes only the digits; each query head's
                                  histogram is counted from them before its selection */
    int profile;               /* nonzero: fill prof_ms */
    double prof_ms[3];         /* fused step, when profile: [0] dispatch to the last scan's end
                                  (score + digits + histograms), [1] barrier to the last
                                  selection's end, [2] the whole call */
    /* internal */
    int fail;                  /* first negative status of a job */
    int nt;                    /* threads of the fused dispatch */
    int arrived;               /* fused: threads past the scan */
};
/* Warm the caches for the fused step before its query is known (the device binding calls it
 * while the device computes the query): each thread of the step's dispatch reads the first
 * `bytes` of the keys its share of the fused step will scan, so the scan starts on cached lines.
 * Same partition as SCB_RETR_STEP_FUSED (needs Hkv, D, kb, kb_head, lo, hi; no query, no
 * output); nothing to do for a step that would run inline. */
void scb_retr_step_prefetch(struct scb_pool *pool, const struct scb_retr_step *s, size_t bytes);
/* Bytes of hist_work for a pool of `threads` threads and Hq query heads. */
size_t scb_retr_step_hist_bytes(int threads, int Hq);
/* which: SCB_RETR_STEP_SCORE, _SELECT, _BOTH or _FUSED. */
int scb_retr_step_run(struct scb_pool *pool, struct scb_retr_step *s, int which, struct scb_ctx *ctx);

#endif
