/* streamingllm.h — StreamingLLM KV dropping as SCBench runs it (spec/methods.md §4): once, right
 * after the first prefill of N tokens, keep positions [0, n_init) and [N - n_local, N) when
 * N >= n_init + n_local, else keep everything. No re-rotation (keys keep their RoPE), no
 * eviction later. Defaults 128 + 3968. SCBench stores the kept set per query head (Hq heads,
 * GQA repeated); option gqa=true stores Hkv heads (beyond SCBench; same outputs, fewer bytes). */
#ifndef SCB_METHODS_STREAMINGLLM_H
#define SCB_METHODS_STREAMINGLLM_H

#include <stdint.h>

#include "methods/method.h"

/* Kept prefix indices, ascending, into idx (capacity >= min(N, n_init + n_local)). Returns the
 * count. */
int scb_streamingllm_keep(int N, int n_init, int n_local, int32_t *idx);

extern const struct scb_method_ops scb_method_streamingllm;

#endif
