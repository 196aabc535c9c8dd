/* prompt.h — SCBench's prompt assembly, byte-exact (spec/scbench.md §4, §5.1, §6): a session
 * becomes a "turn plan" holding, per turn, the exact string SCBench builds, the token ids to
 * feed (the first prompt middle-truncated on token ids), the max new tokens, the sub-task,
 * the scorer and the ground truth; in multi-request mode also the context part.
 *
 * Reproduced as SCBench's code does it (quirks included):
 *  - multi-turn, chat template, golden context: P[0] = render([user: first template]);
 *    P[i] = render([system "", assistant gold(i-1), user follow-up(i)]).replace(SYS, "") with
 *    SYS = render([system ""], add_generation_prompt=True) (every occurrence replaced); En.Sum
 *    follow-ups get "This paper" appended; Math.Find follow-ups all use the LAST turn's prefix;
 *  - without golden context (--disable_golden_context): P[i] = render([user follow-up(i)])
 *    .replace(render([system ""], add_generation_prompt=False), "");
 *  - without chat template: the raw templates (§4.2 A with the gold answer spliced in as text,
 *    or §4.2 B without golden context);
 *  - multi-request: ctx = render([user: ctx + "[SEPSEPSEP]"]).split("[SEPSEPSEP]")[0],
 *    q_i = render([system "", user: "[SEPSEPSEP]" + q_i]).split("[SEPSEPSEP]")[1]; Math.Find's
 *    context prefix is the raw first-turn input;
 *  - gold answers as Python str() (lists as "['X1', 'X2']"), Math.Find's context as
 *    str(list) "[1, 2, -3]";
 *  - the first prompt (multi-turn P[0], multi-request ctx) encoded with special tokens (the
 *    double BOS of Llama-3 is kept) and cut to ids[:L//2] + ids[-(L//2):] when longer than L
 *    (task.h scb_task_input_budget); later prompts encoded without special tokens, never cut.
 * The engine-side part of --disable_golden_context (generated tokens stay in the cache, an EOS
 * is prepended to the next prompt when generation stopped without one) is the driver's. */
#ifndef SCB_TASKS_PROMPT_H
#define SCB_TASKS_PROMPT_H

#include <stddef.h>
#include <stdint.h>

#include "datasets/session.h"
#include "kernels/status.h"
#include "tasks/task.h"

struct cJSON;

enum scb_mode {
    SCB_MODE_MULTI_TURN    = 0,
    SCB_MODE_MULTI_REQUEST = 1  /* SCBench "scdq", --same_context_different_query */
};

#define SCB_SEP_DELIMITER "[SEPSEPSEP]"

struct scb_prompt_opts {
    enum scb_mode mode;       /* default SCB_MODE_MULTI_TURN */
    int    use_chat_template; /* default 1 (the paper scripts pass --use_chat_template) */
    int    golden_context;    /* default 1; 0 = --disable_golden_context (multi-turn only) */
    long   max_seq_length;    /* default 131072; -1 means 160000 as in SCBench */
    /* Turn handling of §3.3, decided once per dataset (scb_prompt_opts_set_turns):
     * turn_cut     0 = use every turn of a session, else only its first turn_cut turns;
     * max_turn_size the turn count that enters L (0 = this session's own turn count). */
    size_t turn_cut;
    size_t max_turn_size;
};

/* Defaults as above. */
void scb_prompt_opts_default(struct scb_prompt_opts *o);

/* SCBench's --max_turns logic (§3.3): max_turn_size = turns of the dataset's FIRST session;
 * if 0 < max_turns < that, every session is cut to max_turns turns and max_turn_size =
 * max_turns. (A later session with more turns than the first is not cut when max_turns >=
 * the first session's count; that is SCBench's behaviour.) Default max_turns is 5. */
void scb_prompt_opts_set_turns(struct scb_prompt_opts *o, size_t first_session_turns, long max_turns);

struct scb_plan_turn {
    char    *prompt;          /* owned: the exact string SCBench builds for this turn (multi-turn:
                                 P[i]; multi-request: the query part q_i) */
    size_t   prompt_len;
    int32_t *ids;             /* owned: (n_ids,) ids to feed; NULL when no encoder was given */
    size_t   n_ids;
    size_t   n_ids_full;      /* before truncation (differs only for the first prompt) */
    int      max_new_tokens;
    const char *subtask;      /* static: the turn's task (Mix: its sub-task) */
    const char *scorer;       /* static: scorer name (task.h) */
    struct cJSON *ground_truth;  /* owned: get_ground_truth (§4.5) */
};

struct scb_turn_plan {
    const struct scb_task_ops *task;  /* borrowed (static table) */
    struct scb_prompt_opts opts;
    long     input_budget;    /* L of §5.1 */
    size_t   max_turn_size;   /* the value that entered L */
    /* multi-request only (NULL/0 in multi-turn mode): the context part */
    char    *context_prompt;  /* owned */
    size_t   context_prompt_len;
    int32_t *context_ids;     /* owned: (n_context_ids,) truncated */
    size_t   n_context_ids;
    size_t   n_context_ids_full;
    struct scb_plan_turn *turns;  /* owned: (n_turns,) */
    size_t   n_turns;
};

/* Build the plan of one session. renderer is required when opts->use_chat_template; encoder may
 * be NULL (strings only: no ids, no truncation). Errors: SCB_E_FORMAT when the session does not
 * fit the task (no turns, choice turn without 4 options or with an answer not among them, a
 * Math.Find input without "The ... is", a Mix turn with an unknown sub-task, a chat follow-up
 * whose gold answer must be a string and is not, a query part without [SEPSEPSEP] after
 * rendering); SCB_E_INVAL for a budget SCBench's own assertion rejects; errors of the renderer or
 * encoder pass through. On error *plan is left empty (fini-safe). */
int scb_prompt_plan_build(struct scb_turn_plan *plan, const struct scb_task_ops *task,
                          const struct scb_session *s, const struct scb_prompt_opts *opts,
                          const struct scb_chat_renderer *renderer,
                          const struct scb_token_encoder *encoder, struct scb_ctx *ctx);
void scb_prompt_plan_fini(struct scb_turn_plan *plan);

/* ---- the pieces, public for tests and other tools ------------------------------------------ */

/* Python str.format for the placeholders of task.h: each {name} of tmpl is replaced by the value
 * of the key name (keys[i] -> vals[i]); an unknown name is SCB_E_INVAL (Python KeyError). "{{"
 * and "}}" are literal braces. *out owned (scb_malloc). */
int scb_prompt_format(const char *tmpl, const char *const *keys, const char *const *vals, size_t n,
                      char **out, struct scb_ctx *ctx);

/* Python str(v) of a JSON value: a string as is; an integral number as an integer; other numbers
 * as Python's shortest repr; true/false/null as True/False/None; lists/objects as Python's repr
 * ("['a', \"b'c\", 3]", "{'k': 1}"). Non-ASCII characters are kept as Python does for
 * printable text; control characters are escaped (\n, \t, \x1b, ...). *out owned. */
int scb_prompt_pystr(const struct cJSON *v, char **out, struct scb_ctx *ctx);

/* Python str(list_of_ints): "[1, 2, -3]" ("[]" when n = 0). *out owned. */
int scb_prompt_int_list(const int64_t *v, size_t n, char **out, struct scb_ctx *ctx);

/* Math.Find prefix: "What is " + re.findall(r"The .+ is", input)[0].lower()[:-3] + "?".
 * SCB_E_FORMAT when the input has no match (SCBench raises IndexError). *out owned. */
int scb_prompt_mf_prefix(const char *input, char **out, struct scb_ctx *ctx);

/* Python s.replace(old, new) (all non-overlapping occurrences, left to right; an empty old
 * inserts nothing here — SCBench's SYS is never empty). *out owned. */
int scb_prompt_replace_all(const char *s, const char *old, const char *repl, char **out,
                           struct scb_ctx *ctx);

/* Python s.split(sep)[index]; SCB_E_FORMAT when there are fewer pieces. *out owned. */
int scb_prompt_split_index(const char *s, const char *sep, size_t index, char **out,
                           struct scb_ctx *ctx);

/* SCBench's truncate_input(ids, L, "middle"): L < 0 or n <= L keeps everything; else
 * ids[:L//2] + ids[-(L//2):]. SCB_E_INVAL when L//2 == 0 < n - L (Python would keep the whole
 * list there and SCBench's own assertion fails). *out owned, *n_out its length. */
int scb_prompt_truncate_middle(const int32_t *ids, size_t n, long L, int32_t **out, size_t *n_out,
                               struct scb_ctx *ctx);

/* Ground truth of one turn (§4.5): choice_eng [answer, letter], qa_eng [answer], else the
 * answer as stored. *out owned (cJSON_Delete). */
int scb_prompt_ground_truth(const struct scb_task_ops *task, const struct scb_turn *turn,
                            struct cJSON **out, struct scb_ctx *ctx);

#endif
