/* report.c — results loaded into memory (runs, turns grouped by run/method/mode/task/session,
 * bench rows), the score hierarchy of the database views recomputed under bootstrap weights,
 * paired differences, costs, and the report writer (Markdown, HTML, tidy CSV). See report.h. */
#include "results/report.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

static const char *const cat_names[SCB_REP_N_CATS] = {
    "String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking"};
static const char *const cat_short[SCB_REP_N_CATS] = {"Retr.String", "Retr.Semantic", "Global", "Multi-task"};

const char *scb_rep_mode_name(int mode) { return mode == SCB_REP_MULTI_REQUEST ? "multi_request" : "multi_turn"; }
const char *scb_rep_category_name(int cat) { return cat >= 0 && cat < SCB_REP_N_CATS ? cat_names[cat] : "Other"; }

/* ---- loading ------------------------------------------------------------------------------ */
static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? scb_strdup((const char *)t) : NULL;
}
static double col_num(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}
static int str_eq(const char *a, const char *b) { return a && b ? !strcmp(a, b) : a == b; }

static void free_run(struct scb_rep_run *r)
{
    scb_free(r->status); scb_free(r->started_at); scb_free(r->finished_at); scb_free(r->model_path);
    scb_free(r->device); scb_free(r->backend); scb_free(r->scorer); scb_free(r->git_rev); scb_free(r->config);
}

static void free_group(struct scb_rep_group *g)
{
    for (size_t i = 0; i < g->n_tasks; i++) {
        struct scb_rep_task *t = &g->tasks[i];
        scb_free(t->task); scb_free(t->sub[0]); scb_free(t->sub[1]);
        scb_free(t->session_ids); scb_free(t->sess_off);
    }
    scb_free(g->tasks); scb_free(g->turns); scb_free(g->method); scb_free(g->label);
}

void scb_rep_data_free(struct scb_rep_data *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_runs; i++) free_run(&d->runs[i]);
    for (size_t i = 0; i < d->n_groups; i++) free_group(&d->groups[i]);
    for (size_t i = 0; i < d->n_bench; i++) {
        struct scb_rep_bench *b = &d->bench[i];
        scb_free(b->name); scb_free(b->shape); scb_free(b->dtype); scb_free(b->device); scb_free(b->backend);
    }
    scb_free(d->runs); scb_free(d->groups); scb_free(d->bench); scb_free(d->db_path);
    scb_free(d);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return SCB_OK;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = scb_realloc(*p, nc * elem);
    if (!q) return SCB_E_NOMEM;
    memset((char *)q + *cap * elem, 0, (nc - *cap) * elem);
    *p = q;
    *cap = nc;
    return SCB_OK;
}

static int load_run(struct scb_db *db, int64_t id, struct scb_rep_run *r, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    SCB_TRY(scb_db_prepare(db, "SELECT status, started_at, finished_at, model_path, device, backend, scorer, "
                               "git_rev, config, max_seq_len, (SELECT count(*) FROM turns t WHERE t.run_id = r.id "
                               "AND t.scorer IS NOT NULL AND t.scorer IS NOT r.scorer) FROM runs r WHERE id = ?1",
                           &st, ctx));
    sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) { rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: no run %lld", db->path, (long long)id); goto out; }
    if (s != SQLITE_ROW) { rc = scb_db_error(db, "reading runs", ctx); goto out; }
    r->id = id;
    r->status = col_dup(st, 0); r->started_at = col_dup(st, 1); r->finished_at = col_dup(st, 2);
    r->model_path = col_dup(st, 3); r->device = col_dup(st, 4); r->backend = col_dup(st, 5);
    r->scorer = col_dup(st, 6); r->git_rev = col_dup(st, 7); r->config = col_dup(st, 8);
    r->max_seq_len = sqlite3_column_int64(st, 9);
    r->mixed_scorers = sqlite3_column_int64(st, 10) > 0;
    {
        char *const got[9] = {r->status, r->started_at, r->finished_at, r->model_path, r->device, r->backend,
                              r->scorer, r->git_rev, r->config};
        for (int i = 0; i < 9; i++)
            if (!got[i] && sqlite3_column_type(st, i) != SQLITE_NULL) rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* Known Mix sub-task order (SCBench prints summary,passkey and repoqa,kv). */
static int sub_rank(const char *s)
{
    static const char *const order[] = {"scbench_summary", "scbench_passkey", "scbench_repoqa", "scbench_kv"};
    for (int i = 0; i < 4; i++) if (str_eq(s, order[i])) return i;
    return 9;
}

/* Turn rows of one group → tasks/sessions index. turns are ordered by task, session, turn;
 * task names are passed alongside (tnames[i] for turn i, borrowed), subs likewise. */
static int index_group(struct scb_rep_group *g, char **tnames, char **subs, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t cap = 0;
    g->max_turn = 0;
    for (size_t i = 0; i < g->n_turns;) {
        size_t j = i;
        while (j < g->n_turns && !strcmp(tnames[j], tnames[i])) j++;
        if (grow((void **)&g->tasks, &cap, g->n_tasks + 1, sizeof *g->tasks) < 0) goto nomem;
        struct scb_rep_task *t = &g->tasks[g->n_tasks++];
        t->task = scb_strdup(tnames[i]);
        if (!t->task) goto nomem;
        t->cat = -1;
        const char *cat = scb_db_task_category(t->task);
        for (int c = 0; cat && c < SCB_REP_N_CATS; c++) if (!strcmp(cat, cat_names[c])) t->cat = c;
        t->paper = t->task;
        /* sub-tasks */
        for (size_t k = i; k < j; k++) {
            int found = -1;
            for (int s = 0; s < t->n_sub; s++) if (str_eq(t->sub[s], subs[k])) found = s;
            if (found < 0) {
                if (t->n_sub == 2) {
                    rc = scb_err(ctx, SCB_E_FORMAT, "task %s has more than two sub-tasks (%s)", t->task,
                                 subs[k] ? subs[k] : "none");
                    goto out;
                }
                if (subs[k] && !(t->sub[t->n_sub] = scb_strdup(subs[k]))) goto nomem;
                t->n_sub++;
            }
        }
        if (t->n_sub == 2 && sub_rank(t->sub[1]) < sub_rank(t->sub[0])) {
            char *x = t->sub[0]; t->sub[0] = t->sub[1]; t->sub[1] = x;
        }
        for (size_t k = i; k < j; k++) {
            g->turns[k].sub = 0;
            if (t->n_sub == 2 && str_eq(subs[k], t->sub[1])) g->turns[k].sub = 1;
            if (g->turns[k].turn + 1 > g->max_turn) g->max_turn = g->turns[k].turn + 1;
        }
        /* sessions */
        size_t ns = 0;
        for (size_t k = i; k < j; k++) if (k == i || g->turns[k].session != g->turns[k - 1].session) ns++;
        t->n_sessions = ns;
        t->session_ids = scb_malloc(ns * sizeof *t->session_ids);
        t->sess_off = scb_malloc((ns + 1) * sizeof *t->sess_off);
        if (!t->session_ids || !t->sess_off) goto nomem;
        ns = 0;
        for (size_t k = i; k < j; k++)
            if (k == i || g->turns[k].session != g->turns[k - 1].session) {
                t->session_ids[ns] = g->turns[k].session;
                t->sess_off[ns++] = k;
            }
        t->sess_off[ns] = j;
        t->cluster0 = g->n_clusters;
        g->n_clusters += ns;
        i = j;
    }
    goto out;
nomem:
    rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    return rc;
}

static const char *paper_name(struct scb_db *db, const char *task)
{
    static const struct { const char *t, *p; } names[] = {
        {"scbench_kv", "Retr.KV"}, {"scbench_prefix_suffix", "Retr.Prefix-Suffix"}, {"scbench_vt", "Retr.MultiHop"},
        {"scbench_repoqa", "Code.RepoQA"}, {"scbench_qa_eng", "En.QA"}, {"scbench_qa_chn", "Zh.QA"},
        {"scbench_choice_eng", "En.MultiChoice"}, {"scbench_mf", "Math.Find"}, {"scbench_many_shot", "ICL.ManyShot"},
        {"scbench_summary", "En.Sum"}, {"scbench_summary_with_needles", "Mix.Sum+NIAH"},
        {"scbench_repoqa_and_kv", "Mix.RepoQA+KV"}};
    (void)db;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) if (!strcmp(names[i].t, task)) return names[i].p;
    return NULL;
}

static int load_groups(struct scb_db *db, struct scb_rep_data *d, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    struct scb_rep_turn *rows = NULL;
    char **tn = NULL, **sn = NULL;
    size_t cap = 0, tcap = 0, scap = 0, gcap = 0;
    char *cur_method = NULL;
    SCB_TRY(scb_db_prepare(db,
        "SELECT t.method, t.mode, t.task, t.sub_task, t.session, t.turn, t.score, t.prompt_tokens, "
        "t.cached_tokens, t.generated_tokens, t.prefill_ms, t.ttft_ms, t.decode_ms, t.kv_entries, "
        "t.kv_bytes_logical, t.kv_bytes_physical, t.decode_bytes_per_step, t.prefill_density, "
        "t.peak_host_bytes, t.peak_device_bytes "
        "FROM turns t LEFT JOIN task_category c ON c.task = t.task WHERE t.run_id = ?1 "
        "ORDER BY (t.method <> 'dense'), t.method, t.mode <> 'multi_turn', coalesce(c.rowid, 1000000), "
        "t.task, t.session, t.turn", &st, ctx));
    for (size_t r = 0; r < d->n_runs; r++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, d->runs[r].id);
        size_t n = 0;
        int s;
        char cur_mode[16] = "";
        for (;;) {
            s = sqlite3_step(st);
            const char *m = s == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
            const char *mode = s == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 1) : NULL;
            if (s != SQLITE_ROW && s != SQLITE_DONE) { rc = scb_db_error(db, "reading turns", ctx); goto out; }
            if (n > 0 && (s == SQLITE_DONE || strcmp(m, cur_method) || strcmp(mode, cur_mode))) {
                /* close the group */
                if (grow((void **)&d->groups, &gcap, d->n_groups + 1, sizeof *d->groups) < 0) goto nomem;
                struct scb_rep_group *g = &d->groups[d->n_groups++];
                g->run = d->runs[r].id;
                g->method = cur_method; cur_method = NULL;
                g->mode = !strcmp(cur_mode, "multi_request") ? SCB_REP_MULTI_REQUEST : SCB_REP_MULTI_TURN;
                g->turns = scb_malloc(n * sizeof *g->turns);
                if (!g->turns) goto nomem;
                memcpy(g->turns, rows, n * sizeof *rows);
                g->n_turns = n;
                SCB_TRY(index_group(g, tn, sn, ctx));
                for (size_t k = 0; k < g->n_tasks; k++) {
                    const char *p = paper_name(db, g->tasks[k].task);
                    if (p) g->tasks[k].paper = p;
                    else g->tasks[k].paper = g->tasks[k].task;
                }
                for (size_t k = 0; k < n; k++) { scb_free(tn[k]); scb_free(sn[k]); tn[k] = sn[k] = NULL; }
                n = 0;
            }
            if (s == SQLITE_DONE) break;
            if (n == 0) {
                scb_free(cur_method);
                if (!(cur_method = scb_strdup(m))) goto nomem;
                snprintf(cur_mode, sizeof cur_mode, "%s", mode);
            }
            if (grow((void **)&rows, &cap, n + 1, sizeof *rows) < 0 || grow((void **)&tn, &tcap, n + 1, sizeof *tn) < 0 ||
                grow((void **)&sn, &scap, n + 1, sizeof *sn) < 0) goto nomem;
            struct scb_rep_turn *t = &rows[n];
            tn[n] = col_dup(st, 2);
            sn[n] = col_dup(st, 3);
            if (!tn[n] || (sqlite3_column_type(st, 3) != SQLITE_NULL && !sn[n])) { n++; goto nomem; }
            t->session = sqlite3_column_int64(st, 4);
            t->turn = sqlite3_column_int(st, 5);
            t->score = sqlite3_column_double(st, 6);
            double *f = &t->prompt_tokens;   /* the 13 measurement fields in column order */
            double *vals[13] = {&t->prompt_tokens, &t->cached_tokens, &t->generated_tokens, &t->prefill_ms,
                                &t->ttft_ms, &t->decode_ms, &t->kv_entries, &t->kv_bytes_logical,
                                &t->kv_bytes_physical, &t->decode_bytes_per_step, &t->prefill_density,
                                &t->peak_host_bytes, &t->peak_device_bytes};
            (void)f;
            for (int k = 0; k < 13; k++) *vals[k] = col_num(st, 7 + k);
            n++;
        }
    }
    goto out;
nomem:
    rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    scb_free(cur_method);
    if (tn) for (size_t k = 0; k < tcap; k++) scb_free(tn[k]);
    if (sn) for (size_t k = 0; k < scap; k++) scb_free(sn[k]);
    scb_free(tn); scb_free(sn); scb_free(rows);
    return rc;
}

static int make_labels(struct scb_rep_data *d, struct scb_ctx *ctx)
{
    for (size_t i = 0; i < d->n_groups; i++) {
        struct scb_rep_group *g = &d->groups[i];
        int several = 0;
        for (size_t j = 0; j < d->n_groups; j++)
            if (d->groups[j].run != g->run && !strcmp(d->groups[j].method, g->method)) several = 1;
        struct scb_buf b = {0};
        if (several ? scb_buf_printf(&b, "%s (run %lld)", g->method, (long long)g->run) : scb_buf_puts(&b, g->method))
            return scb_err(ctx, SCB_E_NOMEM, "out of memory");
        g->label = scb_buf_steal(&b);
        if (!g->label) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
    return SCB_OK;
}

static int load_bench(struct scb_db *db, struct scb_rep_data *d, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;
    SCB_TRY(scb_db_prepare(db, "SELECT run_id, name, shape, dtype, device, backend, median_ms, p10_ms, p90_ms, "
                               "tflops, gbps, peak_tflops, peak_gbps FROM bench ORDER BY id", &st, ctx));
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t run = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0);
        int keep = run == 0;
        for (size_t r = 0; r < d->n_runs; r++) if (d->runs[r].id == run) keep = 1;
        if (!keep) continue;
        if (grow((void **)&d->bench, &cap, d->n_bench + 1, sizeof *d->bench) < 0) goto nomem;
        struct scb_rep_bench *b = &d->bench[d->n_bench++];
        b->run = run;
        b->name = col_dup(st, 1); b->shape = col_dup(st, 2); b->dtype = col_dup(st, 3);
        b->device = col_dup(st, 4); b->backend = col_dup(st, 5);
        char *const got[5] = {b->name, b->shape, b->dtype, b->device, b->backend};
        for (int k = 0; k < 5; k++) if (!got[k] && sqlite3_column_type(st, k + 1) != SQLITE_NULL) goto nomem;
        b->median_ms = col_num(st, 6); b->p10_ms = col_num(st, 7); b->p90_ms = col_num(st, 8);
        b->tflops = col_num(st, 9); b->gbps = col_num(st, 10); b->peak_tflops = col_num(st, 11);
        b->peak_gbps = col_num(st, 12);
    }
    if (s != SQLITE_DONE) rc = scb_db_error(db, "reading bench", ctx);
    goto out;
nomem:
    rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    sqlite3_finalize(st);
    return rc;
}

int scb_rep_load(struct scb_db *db, const int64_t *runs, size_t n_runs, struct scb_rep_data **out,
                 struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_rep_data *d = NULL;
    sqlite3_stmt *st = NULL;
    *out = NULL;
    d = scb_calloc(1, sizeof *d);
    if (!d || !(d->db_path = scb_strdup(db->path))) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    int64_t newest = 0;
    if (n_runs == 0) {
        SCB_TRY(scb_db_prepare(db, "SELECT max(id) FROM runs", &st, ctx));
        if (sqlite3_step(st) != SQLITE_ROW) { rc = scb_db_error(db, "reading runs", ctx); goto out; }
        newest = sqlite3_column_int64(st, 0);
        if (newest <= 0) { rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: holds no run", db->path); goto out; }
        runs = &newest;
        n_runs = 1;
    }
    d->runs = scb_calloc(n_runs, sizeof *d->runs);
    if (!d->runs) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n_runs; i++) {
        for (size_t j = 0; j < i; j++)
            if (runs[j] == runs[i]) { rc = scb_err(ctx, SCB_E_INVAL, "run %lld given twice", (long long)runs[i]); goto out; }
        d->n_runs = i + 1;
        SCB_TRY(load_run(db, runs[i], &d->runs[i], ctx));
    }
    SCB_TRY(load_groups(db, d, ctx));
    SCB_TRY(make_labels(d, ctx));
    SCB_TRY(load_bench(db, d, ctx));
    *out = d;
    d = NULL;
out:
    sqlite3_finalize(st);
    scb_rep_data_free(d);
    return rc;
}

/* ---- scores ------------------------------------------------------------------------------- */
static double mean_finite(const double *x, size_t n)
{
    double s = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (isfinite(x[i])) { s += x[i]; k++; }
    return k ? s / (double)k : NAN;
}

int scb_rep_scores(const struct scb_rep_group *g, const double *w, double *out, struct scb_ctx *ctx)
{
    size_t nt = g->max_turn > 0 ? (size_t)g->max_turn : 1;
    double *num = scb_malloc(nt * 2 * 2 * sizeof *num);   /* (max_turn, 2 subs) sums and weights */
    double *turn_sum = scb_calloc(nt, sizeof *turn_sum);   /* (max_turn) across tasks */
    int *turn_n = scb_calloc(nt, sizeof *turn_n);
    if (!num || !turn_sum || !turn_n) {
        scb_free(num); scb_free(turn_sum); scb_free(turn_n);
        return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
    double *den = num + nt * 2;
    double cat_sum[SCB_REP_N_CATS] = {0};
    int cat_n[SCB_REP_N_CATS] = {0};
    double task_sum = 0;
    int task_n = 0;
    for (size_t ti = 0; ti < g->n_tasks; ti++) {
        const struct scb_rep_task *t = &g->tasks[ti];
        memset(num, 0, nt * 2 * 2 * sizeof *num);
        double pool_num[2] = {0, 0}, pool_den[2] = {0, 0};
        for (size_t s = 0; s < t->n_sessions; s++) {
            double ws = w ? w[t->cluster0 + s] : 1.0;
            if (ws == 0) continue;
            for (size_t k = t->sess_off[s]; k < t->sess_off[s + 1]; k++) {
                const struct scb_rep_turn *r = &g->turns[k];
                num[(size_t)r->turn * 2 + (size_t)r->sub] += ws * r->score;
                den[(size_t)r->turn * 2 + (size_t)r->sub] += ws;
                pool_num[r->sub] += ws * r->score;
                pool_den[r->sub] += ws;
            }
        }
        double sub_score[2] = {NAN, NAN};
        for (int sb = 0; sb < t->n_sub; sb++) {
            if (g->mode == SCB_REP_MULTI_REQUEST) {
                if (pool_den[sb] > 0) sub_score[sb] = 100.0 * pool_num[sb] / pool_den[sb];
            } else {
                double s = 0;
                int k = 0;
                for (size_t tu = 0; tu < nt; tu++)
                    if (den[tu * 2 + (size_t)sb] > 0) { s += num[tu * 2 + (size_t)sb] / den[tu * 2 + (size_t)sb]; k++; }
                if (k) sub_score[sb] = 100.0 * s / k;
            }
        }
        double ts = mean_finite(sub_score, (size_t)t->n_sub);
        out[ti] = ts;
        if (isfinite(ts)) {
            task_sum += ts; task_n++;
            if (t->cat >= 0) { cat_sum[t->cat] += ts; cat_n[t->cat]++; }
        }
        for (size_t tu = 0; tu < (size_t)g->max_turn; tu++) {
            double v[2] = {NAN, NAN};
            for (int sb = 0; sb < t->n_sub; sb++)
                if (den[tu * 2 + (size_t)sb] > 0) v[sb] = 100.0 * num[tu * 2 + (size_t)sb] / den[tu * 2 + (size_t)sb];
            double m = mean_finite(v, (size_t)t->n_sub);
            if (isfinite(m)) { turn_sum[tu] += m; turn_n[tu]++; }
        }
    }
    double cs[SCB_REP_N_CATS];
    for (int c = 0; c < SCB_REP_N_CATS; c++) {
        cs[c] = cat_n[c] ? cat_sum[c] / cat_n[c] : NAN;
        out[scb_rep_i_cat(g, c)] = cs[c];
    }
    out[scb_rep_i_avg(g)] = mean_finite(cs, SCB_REP_N_CATS);
    out[scb_rep_i_avg_tasks(g)] = task_n ? task_sum / task_n : NAN;
    for (int tu = 0; tu < g->max_turn; tu++) out[scb_rep_i_turn(g, tu)] = turn_n[tu] ? turn_sum[tu] / turn_n[tu] : NAN;
    scb_free(num); scb_free(turn_sum); scb_free(turn_n);
    return SCB_OK;
}

struct one_ud { const struct scb_rep_group *g; struct scb_ctx *ctx; };
static int one_fn(void *ud, const double *w, double *out)
{
    struct one_ud *u = ud;
    return scb_rep_scores(u->g, w, out, u->ctx);
}

static int *group_strata(const struct scb_rep_group *g)
{
    int *s = scb_malloc((g->n_clusters ? g->n_clusters : 1) * sizeof *s);
    if (!s) return NULL;
    for (size_t ti = 0; ti < g->n_tasks; ti++)
        for (size_t k = 0; k < g->tasks[ti].n_sessions; k++) s[g->tasks[ti].cluster0 + k] = (int)ti;
    return s;
}

int scb_rep_scores_ci(const struct scb_rep_group *g, const struct scb_boot_opts *o, struct scb_ci *ci,
                      struct scb_ctx *ctx)
{
    int *strata = group_strata(g);
    if (!strata) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    struct one_ud u = {g, ctx};
    int rc = scb_stats_bootstrap(g->n_clusters, strata, scb_rep_n_out(g), one_fn, &u, o, ci, ctx);
    scb_free(strata);
    return rc;
}

void scb_rep_pairing_fini(struct scb_rep_pairing *p)
{
    if (!p) return;
    scb_free(p->cg); scb_free(p->cb); scb_free(p->stratum); scb_free(p->task_map);
    memset(p, 0, sizeof *p);
}

int scb_rep_pair(const struct scb_rep_group *cand, const struct scb_rep_group *base,
                 struct scb_rep_pairing *p, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    memset(p, 0, sizeof *p);
    size_t nc = cand->n_clusters ? cand->n_clusters : 1;
    p->cg = scb_malloc(nc * sizeof *p->cg);
    p->cb = scb_malloc(nc * sizeof *p->cb);
    p->stratum = scb_malloc(nc * sizeof *p->stratum);
    p->task_map = scb_malloc((cand->n_tasks ? cand->n_tasks : 1) * sizeof *p->task_map);
    if (!p->cg || !p->cb || !p->stratum || !p->task_map) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    size_t matched_base = 0;
    for (size_t i = 0; i < cand->n_tasks; i++) {
        const struct scb_rep_task *tc = &cand->tasks[i];
        p->task_map[i] = -1;
        for (size_t j = 0; j < base->n_tasks; j++) if (!strcmp(base->tasks[j].task, tc->task)) p->task_map[i] = (int)j;
        if (p->task_map[i] < 0) { p->only_cand += tc->n_sessions; continue; }
        const struct scb_rep_task *tb = &base->tasks[p->task_map[i]];
        size_t a = 0, b = 0;   /* both session id lists ascend */
        while (a < tc->n_sessions && b < tb->n_sessions) {
            if (tc->session_ids[a] == tb->session_ids[b]) {
                p->cg[p->n] = tc->cluster0 + a;
                p->cb[p->n] = tb->cluster0 + b;
                p->stratum[p->n++] = (int)i;
                a++; b++; matched_base++;
            } else if (tc->session_ids[a] < tb->session_ids[b]) { a++; p->only_cand++; }
            else b++;
        }
        p->only_cand += tc->n_sessions - a;
    }
    p->only_base = base->n_clusters - matched_base;
out:
    if (rc < 0) scb_rep_pairing_fini(p);
    return rc;
}

struct diff_ud {
    const struct scb_rep_group *c, *b;
    const struct scb_rep_pairing *p;
    double *wc, *wb, *oc, *ob;
    struct scb_ctx *ctx;
};

/* Scores of both sides on the weighted common sessions, the baseline's mapped to cand's layout. */
static int diff_sides(struct diff_ud *u, const double *w)
{
    int rc = SCB_OK;
    memset(u->wc, 0, (u->c->n_clusters ? u->c->n_clusters : 1) * sizeof *u->wc);
    memset(u->wb, 0, (u->b->n_clusters ? u->b->n_clusters : 1) * sizeof *u->wb);
    for (size_t k = 0; k < u->p->n; k++) {
        double x = w ? w[k] : 1.0;
        u->wc[u->p->cg[k]] += x;
        u->wb[u->p->cb[k]] += x;
    }
    SCB_TRY(scb_rep_scores(u->c, u->wc, u->oc, u->ctx));
    SCB_TRY(scb_rep_scores(u->b, u->wb, u->ob, u->ctx));
out:
    return rc;
}

static double base_at(const struct diff_ud *u, size_t k)
{
    const struct scb_rep_group *c = u->c, *b = u->b;
    if (k < c->n_tasks) return u->p->task_map[k] >= 0 ? u->ob[u->p->task_map[k]] : NAN;
    if (k < c->n_tasks + SCB_REP_N_CATS + 2) return u->ob[b->n_tasks + (k - c->n_tasks)];
    int tu = (int)(k - scb_rep_i_turn(c, 0));
    return tu < b->max_turn ? u->ob[scb_rep_i_turn(b, tu)] : NAN;
}

static int diff_fn(void *ud, const double *w, double *out)
{
    struct diff_ud *u = ud;
    int rc = diff_sides(u, w);
    if (rc < 0) return rc;
    for (size_t k = 0; k < scb_rep_n_out(u->c); k++) out[k] = u->oc[k] - base_at(u, k);
    return SCB_OK;
}

int scb_rep_diff_ci(const struct scb_rep_group *cand, const struct scb_rep_group *base,
                    const struct scb_rep_pairing *p, const struct scb_boot_opts *o,
                    struct scb_ci *ci, double *side_cand, double *side_base, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct diff_ud u = {cand, base, p, NULL, NULL, NULL, NULL, ctx};
    u.wc = scb_malloc((cand->n_clusters ? cand->n_clusters : 1) * sizeof *u.wc);
    u.wb = scb_malloc((base->n_clusters ? base->n_clusters : 1) * sizeof *u.wb);
    u.oc = scb_malloc(scb_rep_n_out(cand) * sizeof *u.oc);
    u.ob = scb_malloc(scb_rep_n_out(base) * sizeof *u.ob);
    if (!u.wc || !u.wb || !u.oc || !u.ob) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if (side_cand || side_base) {
        SCB_TRY(diff_sides(&u, NULL));
        for (size_t k = 0; k < scb_rep_n_out(cand); k++) {
            if (side_cand) side_cand[k] = u.oc[k];
            if (side_base) side_base[k] = base_at(&u, k);
        }
    }
    SCB_TRY(scb_stats_bootstrap(p->n, p->stratum, scb_rep_n_out(cand), diff_fn, &u, o, ci, ctx));
out:
    scb_free(u.wc); scb_free(u.wb); scb_free(u.oc); scb_free(u.ob);
    return rc;
}

/* ---- costs -------------------------------------------------------------------------------- */
struct acc { double s; size_t n; };
static void acc_add(struct acc *a, double v) { if (isfinite(v)) { a->s += v; a->n++; } }
static double acc_mean(const struct acc *a) { return a->n ? a->s / (double)a->n : NAN; }

void scb_rep_cost(const struct scb_rep_group *g, const double *w, int task, struct scb_rep_cost *c)
{
    struct acc ctx_tok = {0}, pre0 = {0}, pre1 = {0}, ttft = {0}, dec = {0}, kvl = {0}, kvp = {0}, kve = {0},
               bps = {0}, dens = {0};
    double dec_ms = 0, dec_tok = 0, ph = NAN, pd = NAN;
    size_t n = 0;
    for (size_t ti = 0; ti < g->n_tasks; ti++) {
        if (task >= 0 && (size_t)task != ti) continue;
        const struct scb_rep_task *t = &g->tasks[ti];
        for (size_t s = 0; s < t->n_sessions; s++) {
            if (w && !(w[t->cluster0 + s] > 0)) continue;
            for (size_t k = t->sess_off[s]; k < t->sess_off[s + 1]; k++) {
                const struct scb_rep_turn *r = &g->turns[k];
                n++;
                if (r->turn == 0) {
                    acc_add(&ctx_tok, r->prompt_tokens);
                    acc_add(&pre0, r->prefill_ms);
                    acc_add(&dens, r->prefill_density);
                } else acc_add(&pre1, r->prefill_ms);
                acc_add(&ttft, r->ttft_ms);
                acc_add(&dec, r->decode_ms);
                if (isfinite(r->decode_ms) && isfinite(r->generated_tokens)) { dec_ms += r->decode_ms; dec_tok += r->generated_tokens; }
                acc_add(&kvl, r->kv_bytes_logical);
                acc_add(&kvp, r->kv_bytes_physical);
                acc_add(&kve, r->kv_entries);
                acc_add(&bps, r->decode_bytes_per_step);
                if (isfinite(r->peak_host_bytes) && !(ph >= r->peak_host_bytes)) ph = r->peak_host_bytes;
                if (isfinite(r->peak_device_bytes) && !(pd >= r->peak_device_bytes)) pd = r->peak_device_bytes;
            }
        }
    }
    c->context_tokens = acc_mean(&ctx_tok);
    c->prefill_ms = acc_mean(&pre0);
    c->followup_prefill_ms = acc_mean(&pre1);
    c->ttft_ms = acc_mean(&ttft);
    c->decode_ms = acc_mean(&dec);
    c->decode_ms_per_token = dec_tok > 0 ? dec_ms / dec_tok : NAN;
    c->kv_bytes_logical = acc_mean(&kvl);
    c->kv_bytes_physical = acc_mean(&kvp);
    c->kv_entries = acc_mean(&kve);
    c->decode_bytes_per_step = acc_mean(&bps);
    c->prefill_density = acc_mean(&dens);
    c->peak_host_bytes = ph;
    c->peak_device_bytes = pd;
    c->n_turns = n;
}

/* ---- writing -------------------------------------------------------------------------------- */
void scb_rep_opts_default(struct scb_rep_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = SCB_REP_MD;
    scb_boot_opts_default(&o->boot);
    o->baseline_method = "dense";
}

const char *scb_rep_fmt_bytes(double v, char *buf, size_t n)
{
    if (!isfinite(v)) snprintf(buf, n, "—");
    else if (v >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", v / (1024.0 * 1024 * 1024));
    else if (v >= 1024.0 * 1024) snprintf(buf, n, "%.1f MiB", v / (1024.0 * 1024));
    else if (v >= 1024.0) snprintf(buf, n, "%.1f KiB", v / 1024.0);
    else snprintf(buf, n, "%.0f B", v);
    return buf;
}

const struct scb_rep_group *scb_rep_find_baseline(const struct scb_rep_data *d, const struct scb_rep_group *g,
                                                  const char *method)
{
    if (!method) method = "dense";
    if (!strcmp(g->method, method)) return NULL;
    const struct scb_rep_group *other = NULL;
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *b = &d->groups[i];
        if (b->mode != g->mode || strcmp(b->method, method)) continue;
        if (b->run == g->run) return b;
        if (!other) other = b;
    }
    return other;
}

char *scb_rep_scorer_text(const struct scb_rep_data *d)
{
    struct scb_buf b = {0};
    int same = 1, mixed = 0, rc = SCB_OK;
    for (size_t i = 0; i < d->n_runs; i++) {
        if (!str_eq(d->runs[i].scorer, d->runs[0].scorer)) same = 0;
        if (d->runs[i].mixed_scorers) mixed = 1;
    }
    if (same) rc = scb_buf_puts(&b, d->n_runs && d->runs[0].scorer ? d->runs[0].scorer : "not recorded");
    else
        for (size_t i = 0; i < d->n_runs && rc == SCB_OK; i++)
            rc = scb_buf_printf(&b, "%s%s (run %lld)", i ? ", " : "", d->runs[i].scorer ? d->runs[i].scorer : "not recorded",
                                (long long)d->runs[i].id);
    if (mixed && rc == SCB_OK) rc = scb_buf_puts(&b, "; some turns were scored with another variant (turns.scorer)");
    if (rc < 0) { scb_buf_fini(&b); return NULL; }
    return scb_buf_steal(&b);
}

/* Emitter: the same tables as Markdown or HTML. Cells are escaped for the format. */
struct em { FILE *f; int fmt; };

static void em_text(struct em *e, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (e->fmt == SCB_REP_HTML) {
            if (c == '&') fputs("&amp;", e->f);
            else if (c == '<') fputs("&lt;", e->f);
            else if (c == '>') fputs("&gt;", e->f);
            else if (c == '"') fputs("&quot;", e->f);
            else if (c < 0x20) fputc(' ', e->f);
            else fputc(c, e->f);
        } else {
            if (c == '|' || c == '\\' || c == '*' || c == '`' || c == '<' || c == '>') {
                fputc('\\', e->f);
                fputc(c, e->f);
            } else if (c < 0x20) fputc(' ', e->f);
            else fputc(c, e->f);
        }
    }
}

static void em_heading(struct em *e, int level, const char *text)
{
    if (e->fmt == SCB_REP_HTML) { fprintf(e->f, "<h%d>", level); em_text(e, text); fprintf(e->f, "</h%d>\n", level); }
    else { for (int i = 0; i < level; i++) fputc('#', e->f); fputc(' ', e->f); em_text(e, text); fputs("\n\n", e->f); }
}

/* A paragraph of trusted text (ours; may hold Markdown emphasis in md). */
static void em_para(struct em *e, const char *text)
{
    if (e->fmt == SCB_REP_HTML) fprintf(e->f, "<p>%s</p>\n", text);
    else fprintf(e->f, "%s\n\n", text);
}

static void em_row(struct em *e, char **cells, int n, int header)
{
    if (e->fmt == SCB_REP_HTML) {
        fputs("<tr>", e->f);
        for (int i = 0; i < n; i++) {
            fputs(header ? "<th>" : (i ? "<td class=\"n\">" : "<td>"), e->f);
            em_text(e, cells[i] ? cells[i] : "");
            fputs(header ? "</th>" : "</td>", e->f);
        }
        fputs("</tr>\n", e->f);
    } else {
        fputc('|', e->f);
        for (int i = 0; i < n; i++) { fputc(' ', e->f); em_text(e, cells[i] ? cells[i] : ""); fputs(" |", e->f); }
        fputc('\n', e->f);
        if (header) {
            fputc('|', e->f);
            for (int i = 0; i < n; i++) fputs(i ? "---:|" : "---|", e->f);
            fputc('\n', e->f);
        }
    }
}
static void em_table_begin(struct em *e) { if (e->fmt == SCB_REP_HTML) fputs("<table>\n", e->f); }
static void em_table_end(struct em *e) { fputs(e->fmt == SCB_REP_HTML ? "</table>\n" : "\n", e->f); }

/* A growable row of owned cells. */
struct row { char **c; int n, cap; };
static int row_add(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int row_add(struct row *r, const char *fmt, ...)
{
    if (r->n == r->cap) {
        int nc = r->cap ? r->cap * 2 : 16;
        char **q = scb_realloc(r->c, (size_t)nc * sizeof *q);
        if (!q) return SCB_E_NOMEM;
        r->c = q;
        r->cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int k = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (k < 0) return SCB_E_NOMEM;
    r->c[r->n] = scb_strdup(s);
    free(s);
    if (!r->c[r->n]) return SCB_E_NOMEM;
    r->n++;
    return SCB_OK;
}
static void row_clear(struct row *r) { for (int i = 0; i < r->n; i++) scb_free(r->c[i]); r->n = 0; }
static void row_fini(struct row *r) { row_clear(r); scb_free(r->c); memset(r, 0, sizeof *r); }

/* No "-0.0": values that print as zero print without a sign. */
static double nz(double v) { return fabs(v) < 0.05 ? 0.0 : v; }

static int add_ci(struct row *r, const struct scb_ci *c, int sign)
{
    if (!isfinite(c->est)) return row_add(r, "—");
    if (!isfinite(c->lo)) return row_add(r, sign ? "%+.1f" : "%.1f", nz(c->est));
    return row_add(r, sign ? "%+.1f [%+.1f, %+.1f]" : "%.1f [%.1f, %.1f]", nz(c->est), nz(c->lo), nz(c->hi));
}
static int add_num(struct row *r, double v, const char *fmt)
{
    return isfinite(v) ? row_add(r, fmt, v) : row_add(r, "—");
}

/* Per group: its intervals and (against the baseline) paired differences. */
struct gstat {
    struct scb_ci *ci;     /* (n_out) */
    struct scb_ci *diff;   /* (n_out) or NULL */
    const struct scb_rep_group *base;
    struct scb_rep_pairing pair;
};

/* Method rows: distinct (run, method) in group order. */
static size_t method_rows(const struct scb_rep_data *d, size_t *first /* (n_groups) */)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_groups; i++) {
        int seen = 0;
        for (size_t k = 0; k < n; k++)
            if (d->groups[first[k]].run == d->groups[i].run && !strcmp(d->groups[first[k]].method, d->groups[i].method)) seen = 1;
        if (!seen) first[n++] = i;
    }
    return n;
}
static int find_group(const struct scb_rep_data *d, const struct scb_rep_group *like, int mode)
{
    for (size_t i = 0; i < d->n_groups; i++)
        if (d->groups[i].run == like->run && d->groups[i].mode == mode && !strcmp(d->groups[i].method, like->method))
            return (int)i;
    return -1;
}

static void csv_field(FILE *f, const char *s)
{
    if (!s) return;
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', f);
        for (; *s; s++) { if (*s == '"') fputc('"', f); fputc(*s, f); }
        fputc('"', f);
    } else fputs(s, f);
}
static void csv_num(FILE *f, double v) { if (isfinite(v)) fprintf(f, "%.6g", v); }
static void csv_line(FILE *f, const char *table, const struct scb_rep_group *g, const char *mode, const char *key,
                     double v, double lo, double hi, double n)
{
    csv_field(f, table); fputc(',', f);
    if (g) fprintf(f, "%lld", (long long)g->run);
    fputc(',', f); if (g) csv_field(f, g->method);
    fputc(',', f); csv_field(f, mode);
    fputc(',', f); csv_field(f, key);
    fputc(',', f); csv_num(f, v);
    fputc(',', f); csv_num(f, lo);
    fputc(',', f); csv_num(f, hi);
    fputc(',', f); csv_num(f, n);
    fputs("\r\n", f);
}

static size_t task_sessions(const struct scb_rep_group *g)
{
    return g->n_clusters;
}

static int write_csv(const struct scb_rep_data *d, const struct gstat *gs, FILE *f)
{
    fputs("table,run,method,mode,key,value,ci_lo,ci_hi,n\r\n", f);
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        const char *mode = scb_rep_mode_name(g->mode);
        const struct scb_ci *c = gs[i].ci;
        for (int k = 0; k < SCB_REP_N_CATS; k++)
            csv_line(f, "category", g, mode, cat_names[k], c[scb_rep_i_cat(g, k)].est, c[scb_rep_i_cat(g, k)].lo,
                     c[scb_rep_i_cat(g, k)].hi, (double)task_sessions(g));
        csv_line(f, "average", g, mode, "avg_categories", c[scb_rep_i_avg(g)].est, c[scb_rep_i_avg(g)].lo,
                 c[scb_rep_i_avg(g)].hi, (double)task_sessions(g));
        csv_line(f, "average", g, mode, "avg_tasks", c[scb_rep_i_avg_tasks(g)].est, c[scb_rep_i_avg_tasks(g)].lo,
                 c[scb_rep_i_avg_tasks(g)].hi, (double)task_sessions(g));
        for (size_t t = 0; t < g->n_tasks; t++)
            csv_line(f, "task", g, mode, g->tasks[t].task, c[t].est, c[t].lo, c[t].hi, (double)g->tasks[t].n_sessions);
        for (int t = 0; t < g->max_turn; t++) {
            char key[32];
            snprintf(key, sizeof key, "turn_%d", t);
            csv_line(f, "turn", g, mode, key, c[scb_rep_i_turn(g, t)].est, c[scb_rep_i_turn(g, t)].lo,
                     c[scb_rep_i_turn(g, t)].hi, NAN);
        }
        if (gs[i].diff) {
            const struct scb_ci *df = gs[i].diff;
            double n = (double)gs[i].pair.n;
            for (int k = 0; k < SCB_REP_N_CATS; k++)
                csv_line(f, "diff_vs_baseline", g, mode, cat_names[k], df[scb_rep_i_cat(g, k)].est,
                         df[scb_rep_i_cat(g, k)].lo, df[scb_rep_i_cat(g, k)].hi, n);
            csv_line(f, "diff_vs_baseline", g, mode, "avg_categories", df[scb_rep_i_avg(g)].est, df[scb_rep_i_avg(g)].lo,
                     df[scb_rep_i_avg(g)].hi, n);
            csv_line(f, "diff_vs_baseline", g, mode, "avg_tasks", df[scb_rep_i_avg_tasks(g)].est,
                     df[scb_rep_i_avg_tasks(g)].lo, df[scb_rep_i_avg_tasks(g)].hi, n);
            for (size_t t = 0; t < g->n_tasks; t++)
                csv_line(f, "diff_vs_baseline", g, mode, g->tasks[t].task, df[t].est, df[t].lo, df[t].hi, n);
        }
        struct scb_rep_cost cs;
        scb_rep_cost(g, NULL, -1, &cs);
        static const char *const keys[] = {"context_tokens", "prefill_ms", "followup_prefill_ms", "ttft_ms",
                                           "decode_ms", "decode_ms_per_token", "kv_bytes_logical", "kv_bytes_physical",
                                           "kv_entries", "decode_bytes_per_step", "prefill_density",
                                           "peak_host_bytes", "peak_device_bytes"};
        const double vals[] = {cs.context_tokens, cs.prefill_ms, cs.followup_prefill_ms, cs.ttft_ms, cs.decode_ms,
                               cs.decode_ms_per_token, cs.kv_bytes_logical, cs.kv_bytes_physical, cs.kv_entries,
                               cs.decode_bytes_per_step, cs.prefill_density, cs.peak_host_bytes, cs.peak_device_bytes};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            csv_line(f, "cost", g, mode, keys[k], vals[k], NAN, NAN, (double)cs.n_turns);
    }
    for (size_t i = 0; i < d->n_bench; i++) {
        const struct scb_rep_bench *b = &d->bench[i];
        struct scb_buf key = {0};
        if (scb_buf_printf(&key, "%s %s", b->name, b->shape ? b->shape : "") < 0) return SCB_E_NOMEM;
        const char *k = key.data;
        csv_field(f, "bench"); fputc(',', f);
        if (b->run) fprintf(f, "%lld", (long long)b->run);
        fputs(",,,", f); csv_field(f, k); fputc(',', f); csv_num(f, b->median_ms); fputc(',', f);
        csv_num(f, b->p10_ms); fputc(',', f); csv_num(f, b->p90_ms); fputs(",\r\n", f);
        scb_buf_fini(&key);
    }
    return SCB_OK;
}

static int write_tables(const struct scb_rep_data *d, const struct gstat *gs, const struct scb_rep_opts *o,
                        FILE *f, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct em e = {f, o->format};
    struct row r = {0};
    size_t *mrow = scb_malloc((d->n_groups ? d->n_groups : 1) * sizeof *mrow);
    char *scorer = scb_rep_scorer_text(d);
    char line[1024];
    if (!mrow || !scorer) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    size_t nm = method_rows(d, mrow);
    const char *base = o->baseline_method ? o->baseline_method : "dense";
#define ADD(...) do { if (row_add(&r, __VA_ARGS__) < 0) goto nomem; } while (0)
#define ROW(hdr) do { em_row(&e, r.c, r.n, hdr); row_clear(&r); } while (0)

    if (e.fmt == SCB_REP_HTML)
        fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>scbench report</title>\n<style>"
              "body{font-family:sans-serif;max-width:90em;margin:1em auto}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
              "td,th{border:1px solid #bbb;padding:0.2em 0.5em}td.n{text-align:right;font-variant-numeric:tabular-nums}"
              "th{background:#eee}</style></head><body>\n", f);
    em_heading(&e, 1, "SCBench report");

    /* runs */
    em_table_begin(&e);
    ADD("run"); ADD("status"); ADD("started"); ADD("model"); ADD("device"); ADD("backend"); ADD("scorer"); ADD("git");
    ADD("max_seq_len");
    ROW(1);
    for (size_t i = 0; i < d->n_runs; i++) {
        const struct scb_rep_run *ru = &d->runs[i];
        ADD("%lld", (long long)ru->id); ADD("%s", ru->status ? ru->status : ""); ADD("%s", ru->started_at ? ru->started_at : "");
        ADD("%s", ru->model_path ? ru->model_path : ""); ADD("%s", ru->device ? ru->device : "");
        ADD("%s", ru->backend ? ru->backend : ""); ADD("%s", ru->scorer ? ru->scorer : "not recorded");
        ADD("%s", ru->git_rev ? ru->git_rev : "");
        if (ru->max_seq_len > 0) ADD("%lld", (long long)ru->max_seq_len); else ADD("—");
        ROW(0);
    }
    em_table_end(&e);
    fputs(e.fmt == SCB_REP_HTML ? "<p>Database: <code>" : "Database: `", f);
    for (const char *s = d->db_path; *s; s++) {
        if (e.fmt == SCB_REP_HTML) { char c[2] = {*s, 0}; em_text(&e, c); }
        else fputc(*s == '`' ? '\'' : (unsigned char)*s < 0x20 ? ' ' : *s, f);
    }
    fputs(e.fmt == SCB_REP_HTML ? "</code>. " : "`. ", f);
    fputs("Scorer variant: ", f);
    em_text(&e, scorer);
    fputs(e.fmt == SCB_REP_HTML ? " (<em>faithful</em> = SCBench's released compute_scores.py with its quirks; "
                                  "<em>intended</em> = the metric the paper describes).</p>\n"
                                : " (*faithful* = SCBench's released compute_scores.py with its quirks; "
                                  "*intended* = the metric the paper describes).\n\n", f);
    snprintf(line, sizeof line,
             "Scores are percent. Task score: multi-turn = mean over turn indices of the mean over the sessions "
             "reaching that turn; multi-request = all turns pooled; Mix tasks = mean of their two sub-scores. "
             "Category = mean of its tasks; Avg = mean of the categories present. Intervals: %g%% percentile "
             "bootstrap, B = %d, seed %llu, resampling sessions with replacement within each task (a session's "
             "turns stay together) and recomputing every level. Differences are paired: both methods scored on "
             "the sessions they share, on the same resamples.",
             100 * (o->boot.level > 0 ? o->boot.level : SCB_BOOT_DEFAULT_LEVEL),
             o->boot.B > 0 ? o->boot.B : SCB_BOOT_DEFAULT_B, (unsigned long long)o->boot.seed);
    em_para(&e, line);
    if (d->n_groups == 0) em_para(&e, "The selected runs hold no scored turns yet.");

    /* main table */
    if (d->n_groups) {
        em_heading(&e, 2, "Main table: accuracy by category (paper Table 4 layout)");
        em_table_begin(&e);
        ADD("Method");
        for (int m = 0; m < 2; m++) {
            for (int c = 0; c < SCB_REP_N_CATS; c++) ADD("%s %s", m ? "MR" : "MT", cat_short[c]);
            ADD("%s Avg", m ? "MR" : "MT");
        }
        ROW(1);
        for (size_t k = 0; k < nm; k++) {
            const struct scb_rep_group *like = &d->groups[mrow[k]];
            ADD("%s", like->label);
            for (int m = 0; m < 2; m++) {
                int gi = find_group(d, like, m);
                for (int c = 0; c <= SCB_REP_N_CATS; c++) {
                    if (gi < 0) { ADD("—"); continue; }
                    const struct scb_rep_group *g = &d->groups[gi];
                    if (add_ci(&r, &gs[gi].ci[c < SCB_REP_N_CATS ? scb_rep_i_cat(g, c) : scb_rep_i_avg(g)], 0) < 0) goto nomem;
                }
            }
            ROW(0);
        }
        em_table_end(&e);
        em_para(&e, "MT = multi-turn mode, MR = multi-request mode (SCBench's scdq). Cells: score [95% interval]; "
                    "— = no data.");

        /* paired differences */
        int any = 0;
        for (size_t i = 0; i < d->n_groups; i++) if (gs[i].diff) any = 1;
        snprintf(line, sizeof line, "Difference against %s (paired by session)", base);
        em_heading(&e, 2, line);
        if (!any) {
            em_para(&e, "No method has a baseline to pair with in the selected runs.");
        } else {
            em_table_begin(&e);
            ADD("Method");
            for (int m = 0; m < 2; m++) {
                for (int c = 0; c < SCB_REP_N_CATS; c++) ADD("%s Δ %s", m ? "MR" : "MT", cat_short[c]);
                ADD("%s Δ Avg", m ? "MR" : "MT");
                ADD("%s pairs", m ? "MR" : "MT");
            }
            ROW(1);
            for (size_t k = 0; k < nm; k++) {
                const struct scb_rep_group *like = &d->groups[mrow[k]];
                int has = 0;
                for (int m = 0; m < 2; m++) { int gi = find_group(d, like, m); if (gi >= 0 && gs[gi].diff) has = 1; }
                if (!has) continue;
                ADD("%s", like->label);
                for (int m = 0; m < 2; m++) {
                    int gi = find_group(d, like, m);
                    for (int c = 0; c <= SCB_REP_N_CATS; c++) {
                        if (gi < 0 || !gs[gi].diff) { ADD("—"); continue; }
                        const struct scb_rep_group *g = &d->groups[gi];
                        if (add_ci(&r, &gs[gi].diff[c < SCB_REP_N_CATS ? scb_rep_i_cat(g, c) : scb_rep_i_avg(g)], 1) < 0)
                            goto nomem;
                    }
                    if (gi < 0 || !gs[gi].diff) ADD("—");
                    else if (gs[gi].pair.only_cand || gs[gi].pair.only_base)
                        ADD("%zu (+%zu/%zu unpaired)", gs[gi].pair.n, gs[gi].pair.only_cand, gs[gi].pair.only_base);
                    else ADD("%zu", gs[gi].pair.n);
                }
                ROW(0);
            }
            em_table_end(&e);
            snprintf(line, sizeof line, "Δ = method − %s in points, computed on the sessions both hold; an interval "
                     "that excludes 0 is a difference at the 95%% level. \"unpaired\" counts sessions only the "
                     "method / only %s has (left out of Δ).", base, base);
            em_para(&e, line);
        }

        /* per task */
        for (int m = 0; m < 2; m++) {
            size_t cols[64];
            size_t nc = 0;
            for (size_t k = 0; k < nm && nc < 64; k++) {
                int gi = find_group(d, &d->groups[mrow[k]], m);
                if (gi >= 0) cols[nc++] = (size_t)gi;
            }
            if (!nc) continue;
            snprintf(line, sizeof line, "Per task, %s mode", m ? "multi-request" : "multi-turn");
            em_heading(&e, 2, line);
            em_table_begin(&e);
            ADD("Task"); ADD("Category"); ADD("Sessions");
            for (size_t c = 0; c < nc; c++) ADD("%s", d->groups[cols[c]].label);
            ROW(1);
            /* union of tasks in category order: walk the canonical order from the groups */
            const char *seen[64];
            size_t ns = 0;
            for (int ci = 0; ci <= SCB_REP_N_CATS; ci++)
                for (size_t c = 0; c < nc; c++) {
                    const struct scb_rep_group *g = &d->groups[cols[c]];
                    for (size_t t = 0; t < g->n_tasks; t++) {
                        if (g->tasks[t].cat != (ci < SCB_REP_N_CATS ? ci : -1)) continue;
                        int dup = 0;
                        for (size_t q = 0; q < ns; q++) if (!strcmp(seen[q], g->tasks[t].task)) dup = 1;
                        if (!dup && ns < 64) seen[ns++] = g->tasks[t].task;
                    }
                }
            for (size_t q = 0; q < ns; q++) {
                    const struct scb_rep_task *tk = NULL;
                    size_t sess = 0;
                    for (size_t c = 0; c < nc; c++) {
                        const struct scb_rep_group *g = &d->groups[cols[c]];
                        for (size_t t = 0; t < g->n_tasks; t++)
                            if (!strcmp(g->tasks[t].task, seen[q])) { if (!tk) tk = &g->tasks[t]; if (g->tasks[t].n_sessions > sess) sess = g->tasks[t].n_sessions; }
                    }
                    ADD("%s", tk->paper); ADD("%s", scb_rep_category_name(tk->cat)); ADD("%zu", sess);
                    for (size_t c = 0; c < nc; c++) {
                        const struct scb_rep_group *g = &d->groups[cols[c]];
                        int found = -1;
                        for (size_t t = 0; t < g->n_tasks; t++) if (!strcmp(g->tasks[t].task, seen[q])) found = (int)t;
                        if (found < 0) ADD("—");
                        else if (add_ci(&r, &gs[cols[c]].ci[found], 0) < 0) goto nomem;
                    }
                    ROW(0);
                }
            ADD("Avg (tasks)"); ADD("%s", ""); ADD("%s", "");
            for (size_t c = 0; c < nc; c++)
                if (add_ci(&r, &gs[cols[c]].ci[scb_rep_i_avg_tasks(&d->groups[cols[c]])], 0) < 0) goto nomem;
            ROW(0);
            em_table_end(&e);
        }

        /* per turn */
        for (int m = 0; m < 2; m++) {
            int maxt = 0, any_g = 0;
            for (size_t i = 0; i < d->n_groups; i++)
                if (d->groups[i].mode == m) { any_g = 1; if (d->groups[i].max_turn > maxt) maxt = d->groups[i].max_turn; }
            if (!any_g) continue;
            snprintf(line, sizeof line, "Per turn, %s mode (mean over tasks of the per-turn score)",
                     m ? "multi-request" : "multi-turn");
            em_heading(&e, 2, line);
            em_table_begin(&e);
            ADD("Method");
            for (int t = 0; t < maxt; t++) ADD("%s %d", m ? "Request" : "Turn", t + 1);
            ROW(1);
            for (size_t k = 0; k < nm; k++) {
                int gi = find_group(d, &d->groups[mrow[k]], m);
                if (gi < 0) continue;
                const struct scb_rep_group *g = &d->groups[gi];
                ADD("%s", g->label);
                for (int t = 0; t < maxt; t++) {
                    if (t >= g->max_turn) ADD("—");
                    else if (add_ci(&r, &gs[gi].ci[scb_rep_i_turn(g, t)], 0) < 0) goto nomem;
                }
                ROW(0);
            }
            em_table_end(&e);
        }

        /* costs */
        em_heading(&e, 2, "Cost per method");
        em_table_begin(&e);
        ADD("Method"); ADD("Mode"); ADD("Context tokens"); ADD("Prefill ms (turn 1)"); ADD("Prefill ms (later)");
        ADD("TTFT ms"); ADD("Decode ms/token"); ADD("KV kept (physical)"); ADD("KV kept (logical)");
        ADD("Read/step"); ADD("Prefill density"); ADD("Peak host"); ADD("Peak device");
        ROW(1);
        for (size_t k = 0; k < nm; k++)
            for (int m = 0; m < 2; m++) {
                int gi = find_group(d, &d->groups[mrow[k]], m);
                if (gi < 0) continue;
                const struct scb_rep_group *g = &d->groups[gi];
                struct scb_rep_cost cs;
                char b1[32];
                scb_rep_cost(g, NULL, -1, &cs);
                ADD("%s", g->label); ADD("%s", m ? "multi-request" : "multi-turn");
                if (add_num(&r, cs.context_tokens, "%.0f") < 0 || add_num(&r, cs.prefill_ms, "%.1f") < 0 ||
                    add_num(&r, cs.followup_prefill_ms, "%.1f") < 0 || add_num(&r, cs.ttft_ms, "%.1f") < 0 ||
                    add_num(&r, cs.decode_ms_per_token, "%.2f") < 0) goto nomem;
                ADD("%s", scb_rep_fmt_bytes(cs.kv_bytes_physical, b1, sizeof b1));
                ADD("%s", scb_rep_fmt_bytes(cs.kv_bytes_logical, b1, sizeof b1));
                ADD("%s", scb_rep_fmt_bytes(cs.decode_bytes_per_step, b1, sizeof b1));
                if (add_num(&r, cs.prefill_density, "%.3f") < 0) goto nomem;
                ADD("%s", scb_rep_fmt_bytes(cs.peak_host_bytes, b1, sizeof b1));
                ADD("%s", scb_rep_fmt_bytes(cs.peak_device_bytes, b1, sizeof b1));
                ROW(0);
            }
        em_table_end(&e);
        em_para(&e, "Means over all turns of all tasks, except: context tokens, turn-1 prefill and density are means "
                    "over first turns (the shared context's prefill); decode ms/token = total decode time / total "
                    "generated tokens; peaks are maxima. KV kept = bytes of the KV cache held after the turn "
                    "(logical: what the kept entries need at their dtype; physical: what is allocated, GQA "
                    "repetition and padding included). Read/step = KV bytes read per decode step. — = not measured.");
    }

    if (d->n_bench) {
        em_heading(&e, 2, "Speed measurements (bench)");
        em_table_begin(&e);
        ADD("Name"); ADD("Shape"); ADD("dtype"); ADD("Device"); ADD("Median ms [p10, p90]"); ADD("TFLOP/s");
        ADD("%% of peak"); ADD("GB/s"); ADD("%% of peak");
        ROW(1);
        for (size_t i = 0; i < d->n_bench; i++) {
            const struct scb_rep_bench *b = &d->bench[i];
            ADD("%s", b->name); ADD("%s", b->shape ? b->shape : ""); ADD("%s", b->dtype ? b->dtype : "");
            ADD("%s", b->device ? b->device : "");
            if (isfinite(b->p10_ms) && isfinite(b->p90_ms)) ADD("%.4g [%.4g, %.4g]", b->median_ms, b->p10_ms, b->p90_ms);
            else ADD("%.4g", b->median_ms);
            if (add_num(&r, b->tflops, "%.2f") < 0 || add_num(&r, 100 * b->tflops / b->peak_tflops, "%.1f") < 0 ||
                add_num(&r, b->gbps, "%.1f") < 0 || add_num(&r, 100 * b->gbps / b->peak_gbps, "%.1f") < 0) goto nomem;
            ROW(0);
        }
        em_table_end(&e);
    }
    if (e.fmt == SCB_REP_HTML) fputs("</body></html>\n", f);
    goto out;
#undef ADD
#undef ROW
nomem:
    rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    row_fini(&r);
    scb_free(mrow);
    scb_free(scorer);
    return rc;
}

int scb_rep_write(const struct scb_rep_data *d, const struct scb_rep_opts *o, FILE *f, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct gstat *gs = scb_calloc(d->n_groups ? d->n_groups : 1, sizeof *gs);
    if (!gs) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        gs[i].ci = scb_malloc(scb_rep_n_out(g) * sizeof *gs[i].ci);
        if (!gs[i].ci) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        SCB_TRY(scb_rep_scores_ci(g, &o->boot, gs[i].ci, ctx));
        gs[i].base = scb_rep_find_baseline(d, g, o->baseline_method);
        if (gs[i].base) {
            SCB_TRY(scb_rep_pair(g, gs[i].base, &gs[i].pair, ctx));
            if (gs[i].pair.n == 0) continue;
            gs[i].diff = scb_malloc(scb_rep_n_out(g) * sizeof *gs[i].diff);
            if (!gs[i].diff) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
            SCB_TRY(scb_rep_diff_ci(g, gs[i].base, &gs[i].pair, &o->boot, gs[i].diff, NULL, NULL, ctx));
        }
    }
    if (o->format == SCB_REP_CSV) {
        if (write_csv(d, gs, f) < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    }
    else SCB_TRY(write_tables(d, gs, o, f, ctx));
    if (ferror(f)) rc = scb_err(ctx, SCB_E_IO, "writing the report failed");
out:
    for (size_t i = 0; i < d->n_groups; i++) {
        scb_free(gs[i].ci);
        scb_free(gs[i].diff);
        scb_rep_pairing_fini(&gs[i].pair);
    }
    scb_free(gs);
    return rc;
}
