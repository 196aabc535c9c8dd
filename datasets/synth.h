/* synth.h — seeded generators of SCBench-format synthetic sessions (spec/scbench.md §2.2,
 * paper Table 3) whose context has a target length in a model's tokens. The generator does
 * not know the tokenizer: it gets a token counter (the CLI passes the model's tokenizer, tests
 * a mock). Output sessions have the released schema (dataset.h writes them as JSON lines),
 * so they go through the same reader, prompts and scorers as the real files.
 *
 * Tasks (answers are always derivable from the context; see docs/data.md for the wording):
 *   scbench_kv            JSON object of 36-char UUID keys/values; each turn asks another key
 *   scbench_prefix_suffix "Dictionary = [...]" of random strings; each turn a (prefix, suffix)
 *                         pair that matches exactly one string
 *   scbench_vt            RULER variable tracking: chains VAR X = 12345 / VAR Y = X in noise;
 *                         answer = list of the chain's variable names
 *   scbench_mf            list of integers; turns ask largest/smallest/median/second largest/
 *                         second smallest ("The ... is" wording); answers ints (at most 5 turns)
 *   scbench_passkey       noise haystack with labelled numeric pass keys; answers digit strings
 *
 * Determinism: the same (options, session index, counter) give the same bytes. Each session's
 * random streams are seeded from (seed, task, index) only. */
#ifndef SCB_DATASETS_SYNTH_H
#define SCB_DATASETS_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "datasets/session.h"
#include "kernels/status.h"

/* Counts the tokens of text[0..len) (no special tokens added). Returns SCB_OK or < 0. */
struct scb_token_counter {
    int (*count)(void *user, const char *text, size_t len, size_t *n_tokens);
    void *user;
};

enum scb_synth_task {
    SCB_SYNTH_KV            = 0,
    SCB_SYNTH_PREFIX_SUFFIX = 1,
    SCB_SYNTH_VT            = 2,
    SCB_SYNTH_MF            = 3,
    SCB_SYNTH_PASSKEY       = 4
};
#define SCB_SYNTH_N_TASKS 5

struct scb_synth_opts {
    enum scb_synth_task task;
    size_t   target_tokens;  /* context length to reach, in the counter's tokens */
    size_t   n_turns;        /* turns per session (>= 1; mf at most 5) */
    uint64_t seed;
};

/* "scbench_kv" or "kv" -> SCB_SYNTH_KV, etc. SCB_E_NOTFOUND (message lists the tasks) else. */
int scb_synth_task_parse(const char *name, enum scb_synth_task *out, struct scb_ctx *ctx);
/* "scbench_kv", ...; NULL for an invalid value. */
const char *scb_synth_task_name(enum scb_synth_task t);

/* Make session number index (0-based; also its "id"). The context has at most
 * o->target_tokens tokens and, unless the target is smaller than what the turns need, at least
 * target minus about one filler item (a few tokens); *ctx_tokens (may be NULL) gets the count.
 * *s is owned by the caller (scb_session_fini). SCB_E_INVAL when the target is too small for
 * the turns (the message says the minimum) or n_turns is out of range; counter errors pass
 * through. */
int scb_synth_session(const struct scb_synth_opts *o, long index, const struct scb_token_counter *tc,
                      struct scb_session *s, size_t *ctx_tokens, struct scb_ctx *ctx);

/* Write n_sessions sessions (indices 0..n-1) as JSON lines to f. */
int scb_synth_write(const struct scb_synth_opts *o, long n_sessions, const struct scb_token_counter *tc,
                    FILE *f, struct scb_ctx *ctx);

/* Write them to path: gzip-compressed when path ends in ".gz", else plain. A partly written
 * file is removed on failure. */
int scb_synth_write_file(const struct scb_synth_opts *o, long n_sessions,
                         const struct scb_token_counter *tc, const char *path, struct scb_ctx *ctx);

/* The approximate counter used without a model: number of whitespace-separated words. */
int scb_synth_count_words(void *user, const char *text, size_t len, size_t *n_tokens);

#endif
