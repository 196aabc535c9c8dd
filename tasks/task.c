/* task.c — the table of the 12 SCBench tasks (see task.h). Every template string is copied
 * from spec/scbench.md §4 (SCBench's eval_utils.py: multiturn_templates,
 * multiturn_follow_up_templates_in_chat_tempate, multiturn_follow_up_templates,
 * multiturn_templates_scdq), typos included ("The the correct answer is"). Max new tokens are
 * DATA_NAME_TO_MAX_NEW_TOKENS (§2.1); scorers follow compute_scores.py's mapping (§8.2), named as
 * tasks/scorers.h's enum scb_scorer_kind. */
#include "tasks/task.h"

#include <string.h>

/* ---- shared template strings ---------------------------------------------------------------- */

#define T_KV_HEAD "Extract the value corresponding to the specified key in the JSON object below.\n\n"
#define T_REPOQA_HEAD                                                                             \
    "Based on the function description and code context, please retrieve and repeat the exact " \
    "described function from the code context in a code block wrapped by ```:\n\n"
#define T_CHOICE_HEAD "Read the book and answer the question.\n\n"
#define T_CHOICE_Q                                                                               \
    "Question: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\n" \
    "The the correct answer is"
#define T_CHOICE_Q_TEXT                                                                          \
    "Question: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\n" \
    "The letter of the correct answer is"
#define T_QAENG_HEAD "Read the book and answer the question. Be very concise in your answer.\n\n"
#define T_QAENG_Q "Question: {question}\nAnswer:"
#define T_QACHN_HEAD "阅读以下书籍然后回答问题。\n\n"
#define T_QACHN_Q "问题：{question}\n答案："

static const struct scb_subtask sub_kv[] = {{"scbench_kv", 150, "kv_retrieval", SCB_SCORER_KV_RETRIEVAL}};
static const struct scb_subtask sub_prefix_suffix[] = {{"scbench_prefix_suffix", 150, "kv_retrieval", SCB_SCORER_KV_RETRIEVAL}};
static const struct scb_subtask sub_vt[] = {{"scbench_vt", 30, "string_match_all", SCB_SCORER_STRING_MATCH_ALL}};
static const struct scb_subtask sub_repoqa[] = {{"scbench_repoqa", 1024, "repoqa", SCB_SCORER_REPOQA}};
static const struct scb_subtask sub_qa_eng[] = {{"scbench_qa_eng", 40, "longdialogue_qa", SCB_SCORER_LONGDIALOGUE_QA}};
static const struct scb_subtask sub_qa_chn[] = {{"scbench_qa_chn", 40, "qa_f1_zh", SCB_SCORER_QA_F1_ZH}};
static const struct scb_subtask sub_choice[] = {{"scbench_choice_eng", 40, "choice_eng", SCB_SCORER_CHOICE_ENG}};
static const struct scb_subtask sub_mf[] = {{"scbench_mf", 5, "math_find", SCB_SCORER_MATH_FIND}};
static const struct scb_subtask sub_many_shot[] = {{"scbench_many_shot", 10, "many_shot", SCB_SCORER_MANY_SHOT}};
static const struct scb_subtask sub_summary[] = {{"scbench_summary", 200, "rouge_lsum", SCB_SCORER_ROUGE_LSUM}};
/* Mix tasks: DATA_NAME_TO_MAX_NEW_TOKENS dicts, in the dicts' order (the sum is what counts). */
static const struct scb_subtask sub_sum_needles[] = {
    {"scbench_summary", 800, "rouge_lsum", SCB_SCORER_ROUGE_LSUM},
    {"scbench_passkey", 15, "passkey", SCB_SCORER_PASSKEY},
};
static const struct scb_subtask sub_repoqa_kv[] = {
    {"scbench_repoqa", 1024, "repoqa", SCB_SCORER_REPOQA},
    {"scbench_kv", 80, "kv_retrieval", SCB_SCORER_KV_RETRIEVAL},
};

#define PLAIN_TEMPLATES(head)                                                        \
    .first_template = head "{context}\n\n{input}", .follow_template = "{input}",     \
    .follow_text_template = "{pre_ans}\n\n{input}", .context_template = head "{context}", \
    .query_template = "{input}"

static const struct scb_task_ops tasks[] = {
    {.abi = SCB_TASK_ABI, .name = "scbench_kv", .paper_name = "Retr.KV",
     .category = SCB_CAT_STRING_RETRIEVAL, .family = SCB_FAM_PLAIN, .max_new_tokens = 150,
     .scorer = "kv_retrieval", .subtasks = sub_kv, .n_subtasks = 1, PLAIN_TEMPLATES(T_KV_HEAD)},
    {.abi = SCB_TASK_ABI, .name = "scbench_prefix_suffix", .paper_name = "Retr.Prefix-Suffix",
     .category = SCB_CAT_STRING_RETRIEVAL, .family = SCB_FAM_PLAIN, .max_new_tokens = 150,
     .scorer = "kv_retrieval", .subtasks = sub_prefix_suffix, .n_subtasks = 1, PLAIN_TEMPLATES("")},
    {.abi = SCB_TASK_ABI, .name = "scbench_vt", .paper_name = "Retr.MultiHop",
     .category = SCB_CAT_STRING_RETRIEVAL, .family = SCB_FAM_PLAIN, .max_new_tokens = 30,
     .scorer = "string_match_all", .subtasks = sub_vt, .n_subtasks = 1, PLAIN_TEMPLATES("")},
    {.abi = SCB_TASK_ABI, .name = "scbench_repoqa", .paper_name = "Code.RepoQA",
     .category = SCB_CAT_SEMANTIC_RETRIEVAL, .family = SCB_FAM_PLAIN, .max_new_tokens = 1024,
     .scorer = "repoqa", .subtasks = sub_repoqa, .n_subtasks = 1, PLAIN_TEMPLATES(T_REPOQA_HEAD)},
    {.abi = SCB_TASK_ABI, .name = "scbench_qa_eng", .paper_name = "En.QA",
     .category = SCB_CAT_SEMANTIC_RETRIEVAL, .family = SCB_FAM_QA, .max_new_tokens = 40,
     .scorer = "longdialogue_qa", .subtasks = sub_qa_eng, .n_subtasks = 1,
     .first_template = T_QAENG_HEAD "{context}\n\n" T_QAENG_Q, .follow_template = T_QAENG_Q,
     .follow_text_template = "{pre_ans}\n\n" T_QAENG_Q, .context_template = T_QAENG_HEAD "{context}",
     .query_template = T_QAENG_Q},
    {.abi = SCB_TASK_ABI, .name = "scbench_qa_chn", .paper_name = "Zh.QA",
     .category = SCB_CAT_SEMANTIC_RETRIEVAL, .family = SCB_FAM_QA, .max_new_tokens = 40,
     .scorer = "qa_f1_zh", .subtasks = sub_qa_chn, .n_subtasks = 1,
     .first_template = T_QACHN_HEAD "{context}\n\n" T_QACHN_Q, .follow_template = T_QACHN_Q,
     .follow_text_template = "{pre_ans}\n\n" T_QACHN_Q, .context_template = T_QACHN_HEAD "{context}",
     .query_template = T_QACHN_Q},
    {.abi = SCB_TASK_ABI, .name = "scbench_choice_eng", .paper_name = "En.MultiChoice",
     .category = SCB_CAT_SEMANTIC_RETRIEVAL, .family = SCB_FAM_CHOICE, .max_new_tokens = 40,
     .scorer = "choice_eng", .subtasks = sub_choice, .n_subtasks = 1,
     .first_template = T_CHOICE_HEAD "{context}\n\n" T_CHOICE_Q, .follow_template = T_CHOICE_Q,
     .follow_text_template = "{pre_ans}\n\n" T_CHOICE_Q_TEXT,
     .context_template = T_CHOICE_HEAD "{context}", .query_template = T_CHOICE_Q},
    {.abi = SCB_TASK_ABI, .name = "scbench_mf", .paper_name = "Math.Find",
     .category = SCB_CAT_GLOBAL_INFO, .family = SCB_FAM_MF, .max_new_tokens = 5,
     .scorer = "math_find", .subtasks = sub_mf, .n_subtasks = 1,
     .first_template = "{prefix}\n\n{context}\n\n{input}", .follow_template = "{prefix}\n\n{input}",
     .follow_text_template = "{pre_ans}\n\n{prefix}\n\n{input}",
     .context_template = "{prefix}\n\n{context}", .query_template = "{prefix}\n\n{input}"},
    {.abi = SCB_TASK_ABI, .name = "scbench_many_shot", .paper_name = "ICL.ManyShot",
     .category = SCB_CAT_GLOBAL_INFO, .family = SCB_FAM_PLAIN, .max_new_tokens = 10,
     .scorer = "many_shot", .subtasks = sub_many_shot, .n_subtasks = 1,
     PLAIN_TEMPLATES("")},
    {.abi = SCB_TASK_ABI, .name = "scbench_summary", .paper_name = "En.Sum",
     .category = SCB_CAT_GLOBAL_INFO, .family = SCB_FAM_SUMMARY, .max_new_tokens = 200,
     .scorer = "rouge_lsum", .subtasks = sub_summary, .n_subtasks = 1, PLAIN_TEMPLATES(""),
     .follow_prime = "This paper"},
    {.abi = SCB_TASK_ABI, .name = "scbench_summary_with_needles", .paper_name = "Mix.Sum+NIAH",
     .category = SCB_CAT_MULTI_TASKING, .family = SCB_FAM_PLAIN, .max_new_tokens = 0,
     .scorer = NULL, .subtasks = sub_sum_needles, .n_subtasks = 2, PLAIN_TEMPLATES("")},
    {.abi = SCB_TASK_ABI, .name = "scbench_repoqa_and_kv", .paper_name = "Mix.RepoQA+KV",
     .category = SCB_CAT_MULTI_TASKING, .family = SCB_FAM_PLAIN, .max_new_tokens = 0,
     .scorer = NULL, .subtasks = sub_repoqa_kv, .n_subtasks = 2, PLAIN_TEMPLATES("")},
};

#define N_TASKS (sizeof tasks / sizeof tasks[0])

size_t scb_task_count(void) { return N_TASKS; }

const struct scb_task_ops *scb_task_at(size_t i) { return i < N_TASKS ? &tasks[i] : NULL; }

const struct scb_task_ops *scb_task_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < N_TASKS; i++) {
        if (!strcmp(tasks[i].name, name)) return &tasks[i];
        if (!strcmp(tasks[i].name + strlen("scbench_"), name)) return &tasks[i];
    }
    return NULL;
}

const char *scb_task_category_name(enum scb_task_category c)
{
    switch (c) {
    case SCB_CAT_STRING_RETRIEVAL: return "String Retrieval";
    case SCB_CAT_SEMANTIC_RETRIEVAL: return "Semantic Retrieval";
    case SCB_CAT_GLOBAL_INFO: return "Global Information";
    case SCB_CAT_MULTI_TASKING: return "Multi-tasking";
    }
    return "unknown";
}

static int is_mix(const struct scb_task_ops *t) { return t->max_new_tokens == 0; }

static const struct scb_subtask *find_subtask(const struct scb_task_ops *t, const char *subtask)
{
    if (!is_mix(t)) return &t->subtasks[0];
    if (!subtask) return NULL;
    for (size_t i = 0; i < t->n_subtasks; i++)
        if (!strcmp(t->subtasks[i].name, subtask)) return &t->subtasks[i];
    return NULL;
}

static long norm_seq_length(long max_seq_length)
{
    return max_seq_length == -1 ? 160000 : max_seq_length;  /* run_scbench.py: -1 -> 160_000 */
}

int scb_task_max_new_tokens(const struct scb_task_ops *t, const char *subtask, long max_seq_length,
                            int *out, struct scb_ctx *ctx)
{
    *out = 0;
    if (!t) return scb_err(ctx, SCB_E_INVAL, "no task given");
    long msl = norm_seq_length(max_seq_length);
    if (is_mix(t)) {
        int mx = 0;
        for (size_t i = 0; i < t->n_subtasks; i++)
            if (t->subtasks[i].max_new_tokens > mx) mx = t->subtasks[i].max_new_tokens;
        if (mx > msl)
            return scb_err(ctx, SCB_E_INVAL,
                           "%s: max_new_tokens %d exceeds max_seq_length %ld (SCBench asserts this)",
                           t->name, mx, msl);
        const struct scb_subtask *st = find_subtask(t, subtask);
        if (!st)
            return scb_err(ctx, SCB_E_FORMAT, "%s: turn sub-task %s%s%s is not one of %s, %s", t->name,
                           subtask ? "'" : "", subtask ? subtask : "(missing \"task\" field)",
                           subtask ? "'" : "", t->subtasks[0].name, t->subtasks[1].name);
        *out = st->max_new_tokens;
        return SCB_OK;
    }
    *out = t->max_new_tokens >= msl ? 500 : t->max_new_tokens;
    return SCB_OK;
}

const char *scb_task_scorer(const struct scb_task_ops *t, const char *subtask)
{
    if (!t) return NULL;
    const struct scb_subtask *st = find_subtask(t, subtask);
    return st ? st->scorer : NULL;
}

int scb_task_input_budget(const struct scb_task_ops *t, long max_seq_length, size_t max_turn_size,
                          int multi_request, long *L, struct scb_ctx *ctx)
{
    *L = 0;
    if (!t) return scb_err(ctx, SCB_E_INVAL, "no task given");
    long msl = norm_seq_length(max_seq_length);
    long turns = (long)max_turn_size;
    long budget;
    if (is_mix(t)) {
        int rc, dummy;
        /* the same assertion SCBench makes before computing L */
        if ((rc = scb_task_max_new_tokens(t, t->subtasks[0].name, msl, &dummy, ctx)) < 0) return rc;
        long sum = 0;
        for (size_t i = 0; i < t->n_subtasks; i++) sum += t->subtasks[i].max_new_tokens;
        long prod = sum * turns;
        /* Python floor division; prod >= 0 here */
        budget = msl - prod / 2;
    } else {
        int mnt = t->max_new_tokens >= msl ? 500 : t->max_new_tokens;
        budget = msl - (long)mnt * turns;
    }
    if (multi_request) budget -= 1000;
    *L = budget;
    return SCB_OK;
}
