/* scorers.h — every SCBench scorer (scbench/compute_scores.py + repo_qa_utils.py), the task ->
 * scorer dispatch, and the aggregation of a prediction file per turn, pooled, per Mix sub-task
 * and per category (spec/scbench.md §8).
 *
 * Each scorer reproduces the released code, quirks included, when called with
 * SCB_SCORE_FAITHFUL (the default); SCB_SCORE_INTENDED selects what the code presumably meant
 * (docs/scoring.md lists every difference). Ground truths are cJSON values in the shapes the
 * prediction files store (§4.5): choice_eng [answer_text, letter], qa_eng [answer], mf an
 * integer, vt a list of strings, the rest strings. Scores are fractions in [0, 1]; SCBench
 * prints them x100 with three decimals. Functions return SCB_OK or a negative status with the
 * detail on ctx (a ground truth of the wrong shape is SCB_E_FORMAT). Not thread-safe only in
 * the sense that ctx is written; the functions keep no global state. */
#ifndef SCB_TASKS_SCORERS_H
#define SCB_TASKS_SCORERS_H

#include <stddef.h>

#include "kernels/status.h"

struct cJSON;

enum scb_score_variant {
    SCB_SCORE_FAITHFUL = 0,   /* what the released SCBench code computes */
    SCB_SCORE_INTENDED = 1    /* quirks that change a score fixed (docs/scoring.md) */
};

enum scb_score_mode {
    SCB_SCORE_MULTI_TURN   = 0,   /* records grouped by turn_idx, each turn scored on its own */
    SCB_SCORE_MULTI_REQUEST = 1   /* "scdq": all records pooled */
};

enum scb_scorer_kind {
    SCB_SCORER_KV_RETRIEVAL     = 0,  /* kv, prefix_suffix, kv turns of repoqa_and_kv */
    SCB_SCORER_PASSKEY          = 1,  /* needle turns of summary_with_needles */
    SCB_SCORER_STRING_MATCH_ALL = 2,  /* vt */
    SCB_SCORER_LONGDIALOGUE_QA  = 3,  /* qa_eng (get_score_one_longdialogue_qa_eng) */
    SCB_SCORER_QA_F1_ZH         = 4,  /* qa_chn */
    SCB_SCORER_CHOICE_ENG       = 5,  /* choice_eng */
    SCB_SCORER_MANY_SHOT        = 6,  /* many_shot: the longdialogue scorer on a string answer */
    SCB_SCORER_MATH_FIND        = 7,  /* mf */
    SCB_SCORER_ROUGE_LSUM       = 8,  /* summary, summary turns of summary_with_needles */
    SCB_SCORER_REPOQA           = 9   /* repoqa: needs the whole file (scb_score_records) */
};

/* ---- one prediction ---------------------------------------------------------------------- */
/* pred: UTF-8, NUL-terminated, borrowed. gt: borrowed. *out: the score in [0, 1]. */
int scb_score_kv_retrieval(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                           double *out, struct scb_ctx *ctx);
int scb_score_passkey(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                      double *out, struct scb_ctx *ctx);
int scb_score_string_match_all(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                               double *out, struct scb_ctx *ctx);
int scb_score_longdialogue_qa(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                              double *out, struct scb_ctx *ctx);
int scb_score_qa_f1_zh(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                       double *out, struct scb_ctx *ctx);
int scb_score_choice_eng(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                         double *out, struct scb_ctx *ctx);
int scb_score_math_find(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                        double *out, struct scb_ctx *ctx);
int scb_score_rouge_lsum(const char *pred, const struct cJSON *gt, enum scb_score_variant v,
                         double *out, struct scb_ctx *ctx);
/* Dispatch on kind (every kind but SCB_SCORER_REPOQA, which is SCB_E_INVAL here). */
int scb_score_one(enum scb_scorer_kind kind, const char *pred, const struct cJSON *gt,
                  enum scb_score_variant v, double *out, struct scb_ctx *ctx);

/* normalize_zh_answer (lower, drop ASCII + Chinese punctuation, drop whitespace), UTF-8 in and
 * out (appended to *out, which the caller frees with scb_free). */
int scb_score_normalize_zh(const char *s, char **out, struct scb_ctx *ctx);

/* ---- tasks ------------------------------------------------------------------------------- */
#define SCB_SCORE_N_CATEGORIES 4
extern const char *const scb_score_categories[SCB_SCORE_N_CATEGORIES];
/* "String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking" */

struct scb_score_task {
    const char *name;                 /* SCBench config name, "scbench_kv" */
    int         category;             /* index into scb_score_categories */
    enum scb_scorer_kind scorer;      /* single tasks */
    int         mix;                  /* 1: two sub-tasks, told apart by each record's "task" */
    const char *sub[2];               /* Mix sub-task names */
    enum scb_scorer_kind sub_scorer[2];
};

/* The 12 released tasks (n_out receives the count). */
const struct scb_score_task *scb_score_tasks(size_t *n_out);
/* Look a task up by name; NULL if unknown. */
const struct scb_score_task *scb_score_task_find(const char *name);

/* ---- prediction records and files -------------------------------------------------------- */
struct scb_score_record {
    long        line;          /* 1-based line in the file (0 if not from a file) */
    long        id;            /* example row index */
    long        turn_idx;      /* 0-based turn */
    const char *prediction;    /* "prediction" (or "pred") */
    const struct cJSON *gt;    /* "ground_truth" (or "label") */
    const char *task;          /* "task" or NULL: the sub-task of a Mix turn */
    const char *lang;          /* repoqa: "lang" */
    const char *repo;          /* repoqa: "repo" */
    const char *func_name;     /* repoqa: "func_name" or NULL */
    const struct cJSON *raw;   /* the whole record object (borrowed) */
};

struct scb_pred_file {
    struct cJSON            **objs;   /* (n) owned parsed lines */
    struct scb_score_record  *recs;   /* (n) pointing into objs */
    size_t                    n;
};

/* Read an SCBench prediction JSONL file (blank lines skipped, as iter_jsonl does). Errors name
 * the file and the line. Free with scb_pred_file_fini. */
int  scb_pred_file_load(const char *path, struct scb_pred_file *out, struct scb_ctx *ctx);
/* Same from a NUL-terminated buffer; name is used in messages. */
int  scb_pred_file_parse(const char *name, const char *text, struct scb_pred_file *out, struct scb_ctx *ctx);
void scb_pred_file_fini(struct scb_pred_file *f);

/* ---- aggregation ------------------------------------------------------------------------- */
struct scb_score_result {
    const struct scb_score_task *task;
    enum scb_score_mode    mode;
    enum scb_score_variant variant;
    int     pair;              /* 1 for Mix tasks: slot 0/1 = sub[0]/sub[1]; else only slot 0 */
    size_t  n;                 /* records that were scored */
    size_t  n_turns;
    long   *turn_idx;          /* (n_turns) turn indices, ascending */
    double *turn;              /* (n_turns, 2) mean score of each turn and slot */
    size_t *turn_n;            /* (n_turns, 2) records behind each value (0: SCBench reports 0) */
    double  overall[2];        /* the task score: multi-turn = mean over the turns that have
                                  records of the slot; multi-request = pooled */
    double  pooled[2];         /* mean over all records of the slot (SCBench's scdq number) */
    size_t  pooled_n[2];
    double *rec_score;         /* (n records given) score of each record, file order */
    int    *rec_slot;          /* (n records given) its slot, -1 if not scored (other sub-task) */
};
void scb_score_result_fini(struct scb_score_result *r);

/* Score records of one task as compute_scores() does. RepoQA needles come from every record of
 * the file (repoqa_and_kv: the repoqa records). Records of a single task that carry a "task"
 * other than the task's name are an error (SCBench crashes on them). */
int scb_score_records(const char *task, const struct scb_score_record *recs, size_t n,
                      enum scb_score_mode mode, enum scb_score_variant v,
                      struct scb_score_result *out, struct scb_ctx *ctx);

/* Task score for category averages: single tasks overall[0], Mix tasks the mean of the two
 * sub-task scores (a documented choice, the release has no aggregation script). */
double scb_score_task_value(const struct scb_score_result *r);

/* Category means and the overall average: given n task names and their values, out[c] is the
 * mean of the values of the tasks in category c (has[c] = 0 and out[c] = 0 when none);
 * *avg is the mean of the categories present. SCB_E_NOTFOUND for an unknown task. */
int scb_score_category_means(const char *const *tasks, const double *values, size_t n,
                             double out[SCB_SCORE_N_CATEGORIES], int has[SCB_SCORE_N_CATEGORIES],
                             double *avg, struct scb_ctx *ctx);

/* Python's round(x, ndigits) for ndigits in [0, 15] (round-half-even on the exact value). */
double scb_score_pyround(double x, int ndigits);

const char *scb_score_variant_name(enum scb_score_variant v);
const char *scb_score_mode_name(enum scb_score_mode m);

#endif
