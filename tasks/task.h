/* task.h — the 12 SCBench tasks as a versioned table of plain data (spec/scbench.md §2.1, §4):
 * SCBench config name, category, per-turn max new tokens (Mix tasks: by the turn's sub-task),
 * scorer name, and the exact prompt templates of both shared-context modes, plus the two small
 * interfaces through which the harness lends the task code a chat renderer and a tokenizer
 * (tasks/ never includes harness/ headers; DESIGN.md "Dependency direction").
 *
 * Templates use Python str.format placeholders exactly as SCBench's eval_utils.py spells them:
 * {context} {input} {question} {OPTION_A}..{OPTION_D} {prefix} {pre_ans}. They are filled by
 * scb_prompt_format() (tasks/prompt.h). The table is immutable and safe to share. */
#ifndef SCB_TASKS_TASK_H
#define SCB_TASKS_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/chat_msg.h"
#include "kernels/status.h"
#include "tasks/scorers.h"

#define SCB_TASK_ABI 1

/* ---- interfaces the harness fills in ------------------------------------------------------ */

/* Render msgs[0..n) through the model's chat template (as transformers' apply_chat_template
 * with tokenize=False). *out allocated with scb_malloc, NUL-terminated. */
struct scb_chat_renderer {
    int (*render)(void *user, const struct scb_chat_msg *msgs, size_t n, int add_generation_prompt,
                  char **out, struct scb_ctx *ctx);
    void *user;
};

/* Encode text[0..len) into token ids (*ids allocated with scb_malloc, *n its length).
 * add_special = 1 adds what the tokenizer's post-processor adds (Llama-3: a BOS), as HF
 * tokenizer.encode(text) does by default; 0 as encode(text, add_special_tokens=False). */
struct scb_token_encoder {
    int (*encode)(void *user, const char *text, size_t len, int add_special, int32_t **ids,
                  size_t *n, struct scb_ctx *ctx);
    void *user;
};

/* ---- the task table ------------------------------------------------------------------------ */

enum scb_task_category {
    SCB_CAT_STRING_RETRIEVAL   = 0,
    SCB_CAT_SEMANTIC_RETRIEVAL = 1,
    SCB_CAT_GLOBAL_INFO        = 2,
    SCB_CAT_MULTI_TASKING      = 3
};

/* Which branch of SCBench's create_multiturn_prompt / create_scdq_prompt builds the prompts. */
enum scb_task_family {
    SCB_FAM_PLAIN   = 0,  /* kv, prefix_suffix, vt, repoqa, many_shot, Mix: {input}; gold as str() */
    SCB_FAM_CHOICE  = 1,  /* choice_eng: question + 4 options; gold as stored (a string) */
    SCB_FAM_QA      = 2,  /* qa_eng, qa_chn: question; gold as stored (a string) */
    SCB_FAM_MF      = 3,  /* mf: "What is <target>?" prefix; context = str(list of ints) */
    SCB_FAM_SUMMARY = 4   /* summary: gold as stored; chat follow-ups primed with "This paper" */
};

/* One sub-task of a Mix task (the turn's "task" field) or the single task itself. */
struct scb_subtask {
    const char *name;          /* "scbench_summary", "scbench_passkey", "scbench_repoqa", "scbench_kv" */
    int         max_new_tokens;
    const char *scorer;        /* scorer name, see scb_task_ops.scorer */
    enum scb_scorer_kind scorer_kind;  /* the same scorer as tasks/scorers.h dispatches it */
};

struct scb_task_ops {
    uint32_t    abi;              /* == SCB_TASK_ABI */
    const char *name;             /* SCBench config name, e.g. "scbench_kv" (the --task value) */
    const char *paper_name;       /* "Retr.KV" */
    enum scb_task_category category;
    enum scb_task_family   family;
    int         max_new_tokens;   /* single tasks (DATA_NAME_TO_MAX_NEW_TOKENS); 0 for Mix tasks */
    /* Scorer of a single task, named as tasks/scorers.h's enum scb_scorer_kind:
     * "kv_retrieval", "passkey", "string_match_all", "longdialogue_qa" (qa_eng), "qa_f1_zh"
     * (qa_chn), "choice_eng", "many_shot" (the longdialogue scorer on a string answer),
     * "math_find", "rouge_lsum" (summary), "repoqa" (spec §8.2/§8.3). NULL for Mix tasks. */
    const char *scorer;
    const struct scb_subtask *subtasks;  /* Mix tasks: (n_subtasks,) by turn "task"; else NULL */
    size_t      n_subtasks;
    const char *first_template;   /* §4.1 multiturn_templates (first turn, multi-turn mode) */
    const char *follow_template;  /* §4.2 B: follow-up user content with chat template;
                                     also the follow-up without chat template and without gold */
    const char *follow_text_template; /* §4.2 A: follow-up without chat template ({pre_ans}) */
    const char *context_template; /* §4.4 multi-request context part */
    const char *query_template;   /* §4.4 multi-request query part */
    const char *follow_prime;     /* appended to chat follow-ups ("This paper"), or NULL */
};

/* All tasks in SCBench's order (§2.1). */
size_t scb_task_count(void);
const struct scb_task_ops *scb_task_at(size_t i);      /* NULL when i >= count */
/* Look a task up by config name ("scbench_kv"); the "scbench_" prefix may be left out.
 * NULL when unknown. */
const struct scb_task_ops *scb_task_find(const char *name);

const char *scb_task_category_name(enum scb_task_category c);  /* "String Retrieval", ... */

/* Max new tokens of a turn. subtask = the turn's "task" field (Mix tasks; ignored otherwise).
 * Applies SCBench's rule: a single task's value >= max_seq_length becomes 500; for Mix tasks
 * SCBench asserts max(values) <= max_seq_length, here SCB_E_INVAL. SCB_E_FORMAT when a Mix
 * turn has no or an unknown sub-task. */
int scb_task_max_new_tokens(const struct scb_task_ops *t, const char *subtask, long max_seq_length,
                            int *out, struct scb_ctx *ctx);
/* Scorer name of a turn (Mix: by sub-task). NULL for an unknown sub-task. */
const char *scb_task_scorer(const struct scb_task_ops *t, const char *subtask);

/* The first prompt's token budget L of §5.1:
 *   single tasks: L = max_seq_length - max_new_tokens * max_turn_size
 *   Mix tasks:    L = max_seq_length - (sum(max_new_tokens) * max_turn_size) // 2
 *   multi-request mode: L -= 1000.
 * max_new_tokens after the >= max_seq_length -> 500 rule; max_seq_length -1 means 160000 as in
 * SCBench. L may come out negative (then SCBench does not truncate). */
int scb_task_input_budget(const struct scb_task_ops *t, long max_seq_length, size_t max_turn_size,
                          int multi_request, long *L, struct scb_ctx *ctx);

#endif
