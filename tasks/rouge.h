/* rouge.h — ROUGE-Lsum exactly as SCBench gets it: HF evaluate's "rouge" metric
 * (use_stemmer=False, no custom tokenizer) over Google's rouge_score 0.1.2. Tokens: Python
 * str.lower, then maximal runs of [a-z0-9]; sentences: the text split on "\n" with empty pieces
 * dropped; score: summary-level LCS (union LCS of each reference sentence against every
 * prediction sentence, rouge_score's backtracking and tie-breaking, hits capped by token counts),
 * F = 2PR/(P+R). */
#ifndef SCB_TASKS_ROUGE_H
#define SCB_TASKS_ROUGE_H

#include <stddef.h>

#include "kernels/status.h"

struct scb_rouge_score {
    double precision;
    double recall;
    double fmeasure;
};

/* Score prediction against target (rouge_score's argument order: target first).
 * Both are UTF-8, NUL-terminated. Returns SCB_OK or SCB_E_NOMEM. */
int scb_rouge_lsum(const char *target, const char *prediction, struct scb_rouge_score *out,
                   struct scb_ctx *ctx);

#endif
