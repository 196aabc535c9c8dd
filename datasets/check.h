/* check.h — validation of SCBench data files (`scbench data check`): every line is read
 * through the dataset reader with all schema problems collected, then task-aware checks run
 * when the file name says which task it holds (spec/scbench.md §3.2): choice_eng options are
 * 4 strings and the answer is one of them; mf contexts are integer lists and answers
 * integers; vt answers are lists of strings; Mix turns name an allowed sub-task; repoqa
 * sessions have lang/repo and their turns a function name; passkey answers digit strings. */
#ifndef SCB_DATASETS_CHECK_H
#define SCB_DATASETS_CHECK_H

#include <stddef.h>

#include "datasets/dataset.h"
#include "datasets/session.h"
#include "kernels/status.h"

/* What a checked file holds (counts over the sessions that parsed). */
struct scb_check_summary {
    char   task[64];          /* task from the file name, "" when unknown */
    long   lines_bad;         /* lines that did not parse into a session */
    long   problems;          /* all problems reported (parse + task-aware + stream) */
    long   sessions;          /* sessions that parsed */
    long   turns;
    long   context_str, context_ints;                 /* sessions per context kind */
    long   has_id, has_lang, has_repo, has_task;      /* sessions with these top-level fields */
    long   turn_options, turn_task, turn_name;        /* turns with these fields */
    long   answer_str, answer_num, answer_list;       /* turns per answer type */
    size_t ctx_chars_min, ctx_chars_max;              /* context length in characters (code points;
                                                         Math.Find: of Python str(list)) */
    double ctx_chars_sum;
};

/* Task-aware checks of one parsed session; each problem goes to fn (may be NULL) with file
 * and line. task is "scbench_<name>" or "" (then nothing task-specific is checked).
 * Returns the number of problems found. */
long scb_check_session(const struct scb_session *s, const char *task, const char *file, long line,
                       scb_dataset_issue_fn fn, void *user);

/* Check a whole file: every problem of every line goes to fn (line -1 = the file as a whole,
 * e.g. a truncated gzip stream or an empty file) and is counted in sum->problems.
 * task overrides the task taken from the file name when non-NULL and non-empty.
 * Returns SCB_OK when the file could be read to its end or to a stream error (problems do
 * not make it fail), SCB_E_IO when it cannot be opened, SCB_E_NOMEM. */
int scb_check_file(const char *path, const char *task, scb_dataset_issue_fn fn, void *user,
                   struct scb_check_summary *sum, struct scb_ctx *ctx);

#endif
