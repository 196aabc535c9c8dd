/* bleu.h — sentence BLEU exactly as NLTK's nltk.translate.bleu_score.sentence_bleu computes it
 * with one reference, weights (0.25, 0.25, 0.25, 0.25) and SmoothingFunction().method4 (NLTK
 * 3.8-3.10: modified precision with clipped counts and denominator max(1, #hyp n-grams), 0 when
 * no unigram matches, brevity penalty, method4 smoothing with k = 5, math.fsum of the weighted
 * logs), plus the tokenization of SCBench's RepoQA similarity: re.split(r"\s+", s.strip()). */
#ifndef SCB_TASKS_BLEU_H
#define SCB_TASKS_BLEU_H

#include <stddef.h>

#include "kernels/status.h"

/* A token list: n tokens, each a byte span of text (borrowed). */
struct scb_tokens {
    const char **ptr;   /* (n) token starts */
    size_t      *len;   /* (n) token byte lengths */
    size_t       n;
    size_t       cap;
};

/* re.split(r"\s+", text.strip()) with Python's Unicode whitespace. Spans point into text
 * (which must outlive toks). An empty or all-space text gives one empty token, as Python does. */
int  scb_bleu_split_ws(const char *text, size_t len, struct scb_tokens *toks);
void scb_tokens_fini(struct scb_tokens *toks);

/* sentence_bleu([ref], hyp, smoothing_function=method4). */
int scb_bleu_sentence(const struct scb_tokens *ref, const struct scb_tokens *hyp, double *out,
                      struct scb_ctx *ctx);

/* SCBench's compute_function_similarity(candidate, reference). */
int scb_bleu_similarity(const char *candidate, const char *reference, double *out, struct scb_ctx *ctx);

/* Python math.fsum (exactly rounded sum) of x[0..n). */
double scb_fsum(const double *x, size_t n);

#endif
