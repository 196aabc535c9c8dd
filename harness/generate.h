/* generate.h — greedy decoding over the KV cache with SCBench's segment semantics.
 *
 * scb_generate_greedy() prefills the prompt into the cache's current segment (the mode the
 * caller set: GLOBAL for a shared context / multi-turn prompt, TEMP for a multi-request query),
 * then generates up to max_new tokens into the TEMP segment: token = argmax(logits); stop (not
 * emitted) if token is in the stop set; else emit it and forward it. This is SCBench's loop
 * (spec/scbench.md §6.2), so every emitted token is in the temp segment afterwards. The cache
 * mode is restored on return; the caller then drops (or commits) the temp segment. */
#ifndef SCB_HARNESS_GENERATE_H
#define SCB_HARNESS_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "harness/model.h"
#include "kernels/kv_cache.h"
#include "kernels/status.h"

struct scb_gen_opts {
    size_t max_new;              /* most tokens to generate */
    const int32_t *stop;         /* stop ids (borrowed), e.g. the model config's stop_ids */
    size_t n_stop;
};

struct scb_gen_result {
    int32_t *ids;                /* (n) generated ids, owned (scb_free), stop id not included */
    size_t n;
    int stopped;                 /* 1 when a stop id ended generation */
    double prefill_ms;           /* the prompt's forward */
    double ttft_ms;              /* prompt forward + first argmax (time to first token) */
    double decode_ms;            /* forwards of generated tokens */
};

/* prompt may be empty (n_prompt = 0) only when the cache already holds tokens and last_logits
 * (V) gives the logits to start from; otherwise last_logits may be NULL. */
int scb_generate_greedy(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *prompt,
                        size_t n_prompt, const float *last_logits, const struct scb_gen_opts *o,
                        struct scb_gen_result *res, struct scb_ctx *ctx);
void scb_gen_result_fini(struct scb_gen_result *res);

#endif
