/* check.c — whole-file and task-aware validation of SCBench data (see check.h). */
#include "datasets/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

struct issue_sink {
    scb_dataset_issue_fn fn;
    void *user;
    long n;
};

static void count_issue(void *user, const char *file, long line, const char *field, const char *msg)
{
    struct issue_sink *k = user;
    k->n++;
    if (k->fn) k->fn(k->user, file, line, field, msg);
}

static void issue(scb_dataset_issue_fn fn, void *user, long *n, const char *file, long line,
                  const char *field, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void issue(scb_dataset_issue_fn fn, void *user, long *n, const char *file, long line,
                  const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    (*n)++;
    if (fn) fn(user, file, line, field, msg);
}

static int is_digit_string(const char *s)
{
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static int is_int_number(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
}

static const char *const repoqa_langs[] = {"python", "java", "typescript", "rust", "cpp", "go"};

/* Checks of one turn by (sub-)task. */
static void check_turn(const struct scb_turn *t, size_t i, const char *task, const char *file,
                       long line, scb_dataset_issue_fn fn, void *user, long *n)
{
    char f[96];
    snprintf(f, sizeof f, "multi_turns[%zu].answer", i);
    const cJSON *a = t->answer;
    if (!strcmp(task, "scbench_choice_eng")) {
        char fo[96];
        snprintf(fo, sizeof fo, "multi_turns[%zu].options", i);
        if (!t->options) issue(fn, user, n, file, line, fo, "missing (choice_eng turns have 4 options)");
        else if (cJSON_GetArraySize(t->options) != 4)
            issue(fn, user, n, file, line, fo, "has %d options, expected 4", cJSON_GetArraySize(t->options));
        if (!cJSON_IsString(a)) issue(fn, user, n, file, line, f, "must be the option text (a string)");
        else if (t->options) {
            int found = 0;
            for (const cJSON *o = t->options->child; o; o = o->next)
                if (cJSON_IsString(o) && !strcmp(o->valuestring, a->valuestring)) found = 1;
            if (!found) issue(fn, user, n, file, line, f, "is not one of the options");
        }
    } else if (!strcmp(task, "scbench_mf")) {
        if (!is_int_number(a)) issue(fn, user, n, file, line, f, "must be an integer (Math.Find)");
    } else if (!strcmp(task, "scbench_vt")) {
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0)
            issue(fn, user, n, file, line, f, "must be a non-empty list of variable names (vt)");
        else
            for (const cJSON *e = a->child; e; e = e->next)
                if (!cJSON_IsString(e)) {
                    issue(fn, user, n, file, line, f, "must hold only strings (vt variable names)");
                    break;
                }
    } else if (!strcmp(task, "scbench_passkey")) {
        const cJSON *g = cJSON_IsArray(a) ? a->child : a;
        if (!cJSON_IsString(g) || !is_digit_string(g->valuestring))
            issue(fn, user, n, file, line, f, "must be a digit string (passkey; an integer never scores, §13.16)");
    } else if (!strcmp(task, "scbench_repoqa")) {
        snprintf(f, sizeof f, "multi_turns[%zu].name", i);
        if (!t->name || !*t->name) issue(fn, user, n, file, line, f, "missing (repoqa turns name their function)");
        snprintf(f, sizeof f, "multi_turns[%zu].answer", i);
        if (!cJSON_IsString(a)) issue(fn, user, n, file, line, f, "must be the function source (a string)");
    } else if (!strcmp(task, "scbench_kv") || !strcmp(task, "scbench_prefix_suffix") ||
               !strcmp(task, "scbench_summary") || !strcmp(task, "scbench_qa_eng") ||
               !strcmp(task, "scbench_qa_chn") || !strcmp(task, "scbench_many_shot")) {
        if (!cJSON_IsString(a)) issue(fn, user, n, file, line, f, "must be a string for %s", task);
        else if (!*a->valuestring) issue(fn, user, n, file, line, f, "is empty");
    }
}

long scb_check_session(const struct scb_session *s, const char *task, const char *file, long line,
                       scb_dataset_issue_fn fn, void *user)
{
    long n = 0;
    if (!task) task = "";
    if (s->context && !*s->context) issue(fn, user, &n, file, line, "context", "is empty");
    for (size_t i = 0; i < s->n_turns; i++)
        if (s->turns[i].input && !*s->turns[i].input) {
            char f[96];
            snprintf(f, sizeof f, "multi_turns[%zu].input", i);
            issue(fn, user, &n, file, line, f, "is empty");
        }
    if (!*task) return n;

    int mix_needles = !strcmp(task, "scbench_summary_with_needles");
    int mix_repo = !strcmp(task, "scbench_repoqa_and_kv");
    int repo = mix_repo || !strcmp(task, "scbench_repoqa");
    if (!strcmp(task, "scbench_mf") && !s->context_ints)
        issue(fn, user, &n, file, line, "context", "must be a list of integers (Math.Find)");
    if (strcmp(task, "scbench_mf") && s->context_ints)
        issue(fn, user, &n, file, line, "context", "is a list of integers, expected a string for %s", task);
    if (!strcmp(task, "scbench_many_shot") && !s->task)
        issue(fn, user, &n, file, line, "task", "missing (many_shot sessions name their BIG-Bench task)");
    if (repo) {
        if (!s->lang) issue(fn, user, &n, file, line, "lang", "missing (repoqa sessions name their language)");
        else {
            int ok = 0;
            for (size_t k = 0; k < sizeof repoqa_langs / sizeof *repoqa_langs; k++)
                if (!strcmp(s->lang, repoqa_langs[k])) ok = 1;
            if (!ok) issue(fn, user, &n, file, line, "lang",
                           "'%s' is not one of python, java, typescript, rust, cpp, go", s->lang);
        }
        if (!s->repo) issue(fn, user, &n, file, line, "repo", "missing (repoqa sessions name their repository)");
    }
    for (size_t i = 0; i < s->n_turns; i++) {
        const struct scb_turn *t = &s->turns[i];
        const char *sub = task;
        if (mix_needles || mix_repo) {
            char f[96];
            snprintf(f, sizeof f, "multi_turns[%zu].task", i);
            const char *a = mix_needles ? "scbench_summary" : "scbench_repoqa";
            const char *b = mix_needles ? "scbench_passkey" : "scbench_kv";
            if (!t->task) { issue(fn, user, &n, file, line, f, "missing (Mix turns name their sub-task)"); continue; }
            if (strcmp(t->task, a) && strcmp(t->task, b)) {
                issue(fn, user, &n, file, line, f, "'%s' is not %s or %s", t->task, a, b);
                continue;
            }
            sub = t->task;
        }
        check_turn(t, i, sub, file, line, fn, user, &n);
    }
    return n;
}

static int ctx_chars(const struct scb_session *s, struct scb_buf *tmp, size_t *n)
{
    if (s->context) { *n = scb_utf8_length(s->context, strlen(s->context)); return SCB_OK; }
    tmp->len = 0;
    int rc = scb_format_int_list(s->context_ints, s->n_context_ints, tmp);
    *n = tmp->len;
    return rc;
}

int scb_check_file(const char *path, const char *task, scb_dataset_issue_fn fn, void *user,
                   struct scb_check_summary *sum, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_dataset *r = NULL;
    struct scb_session s = {0};
    struct scb_buf tmp = {0};
    struct issue_sink sink = {fn, user, 0};
    memset(sum, 0, sizeof *sum);
    if (task && *task) snprintf(sum->task, sizeof sum->task, "%s", task);
    else scb_dataset_task_from_path(path, sum->task, sizeof sum->task);
    SCB_TRY(scb_dataset_open(&r, path, ctx));
    scb_dataset_set_issue_fn(r, count_issue, &sink);
    for (;;) {
        struct scb_ctx lc = {0};
        int got = scb_dataset_next(r, &s, &lc);
        if (got == 0) break;
        if (got < 0) {
            if (got == SCB_E_NOMEM) { rc = scb_err(ctx, got, "%s", scb_errmsg(&lc)); goto out; }
            if (scb_dataset_failed(r)) {
                /* stream-level: name the file, no line (the message starts with "path: ") */
                const char *m = scb_errmsg(&lc);
                size_t pl = strlen(path);
                if (!strncmp(m, path, pl) && m[pl] == ':' && m[pl + 1] == ' ') m += pl + 2;
                count_issue(&sink, path, -1, "", m);
                break;
            }
            sum->lines_bad++;
            continue;
        }
        long line = scb_dataset_line(r);
        sink.n += scb_check_session(&s, sum->task, path, line, fn, user);
        sum->sessions++;
        sum->turns += (long)s.n_turns;
        if (s.context_ints) sum->context_ints++; else sum->context_str++;
        if (s.id >= 0) sum->has_id++;
        if (s.lang) sum->has_lang++;
        if (s.repo) sum->has_repo++;
        if (s.task) sum->has_task++;
        for (size_t i = 0; i < s.n_turns; i++) {
            const struct scb_turn *t = &s.turns[i];
            if (t->options) sum->turn_options++;
            if (t->task) sum->turn_task++;
            if (t->name) sum->turn_name++;
            if (cJSON_IsString(t->answer)) sum->answer_str++;
            else if (cJSON_IsNumber(t->answer)) sum->answer_num++;
            else if (cJSON_IsArray(t->answer)) sum->answer_list++;
        }
        size_t c = 0;
        if (ctx_chars(&s, &tmp, &c)) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
        if (sum->sessions == 1 || c < sum->ctx_chars_min) sum->ctx_chars_min = c;
        if (c > sum->ctx_chars_max) sum->ctx_chars_max = c;
        sum->ctx_chars_sum += (double)c;
        scb_session_fini(&s);
    }
out:
    sum->problems = sink.n;
    scb_session_fini(&s);
    scb_buf_fini(&tmp);
    scb_dataset_close(r);
    return rc;
}
