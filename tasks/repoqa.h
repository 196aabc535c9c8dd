/* repoqa.h — SCBench's RepoQA scoring (scbench/repo_qa_utils.py): extract the answer function
 * from a prediction (sanitize_output), compare it with every needle function of the repository
 * by NLTK BLEU (compute_function_similarity), and count a hit when the most similar needle is the
 * asked function and the similarity reaches the threshold (0.8 for the reported pass@1).
 *
 * Code blocks are found exactly as the regex r"^```(?:\w+)?\s*\n(.*?)(?=^```)```" (DOTALL,
 * MULTILINE) finds them. SCBench then asks tree-sitter for the first function node of each
 * block; tree-sitter grammars are not available to a C build on Debian 12, so this module
 * APPROXIMATES that query per language (docs/scoring.md lists the rules and their limits). */
#ifndef SCB_TASKS_REPOQA_H
#define SCB_TASKS_REPOQA_H

#include <stddef.h>

#include "kernels/status.h"
#include "kernels/util.h"

#define SCB_REPOQA_THRESHOLD 0.8

/* One needle: a function of the repository and its name (both borrowed). */
struct scb_repoqa_needle {
    const char *name;   /* may be NULL (a record without func_name) */
    const char *code;
};

/* Is lang one of python, java, typescript, rust, cpp, go? */
int scb_repoqa_lang_supported(const char *lang);

/* The code blocks of text (already stripped or not: the function strips it, as SCBench does).
 * Calls fn(user, block, len) for each block in order; stops early if fn returns non-zero. */
int scb_repoqa_code_blocks(const char *text, size_t len,
                           int (*fn)(void *user, const char *block, size_t blen), void *user);

/* First function of code[0..len) for lang (the approximation of SCBench's tree-sitter query).
 * Returns 1 and the byte span [*b, *e) if one is found, else 0. */
int scb_repoqa_find_function(const char *lang, const char *code, size_t len, size_t *b, size_t *e);

/* sanitize_output(prediction, lang): appends the extracted text to out. */
int scb_repoqa_sanitize(const char *prediction, const char *lang, struct scb_buf *out, struct scb_ctx *ctx);

/* needle_evaluator: best needle (strictly greater similarity wins, ties keep the first, start 0).
 * *best is the index of the best needle or -1 when no similarity exceeded 0; *best_sim its
 * similarity. *correct = best needle's name equals func_name and best_sim >= threshold. */
int scb_repoqa_evaluate(const char *prediction, const char *lang, const char *func_name,
                        const struct scb_repoqa_needle *needles, size_t n_needles, double threshold,
                        int *correct, long *best, double *best_sim, struct scb_ctx *ctx);

#endif
