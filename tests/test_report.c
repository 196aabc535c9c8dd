/* test_report.c — reports, statistics, comparisons and figures from the results database.
 * Databases are built through the recorder with rows drawn from a seeded generator; every
 * expected number is computed here from the inserted rows (and cross-checked against the
 * database's own SQL views), never taken from the code under test. Covers: the score
 * hierarchy and costs, the bootstrap on known cases (all-equal scores, a two-valued sample
 * against exact binomial quantiles, paired constant shifts), `scbench report` in its three
 * formats, `scbench compare` on a planted regression / a clean pair / mismatched sessions /
 * a slowdown, and `scbench plot` (every figure written; PNG signature; hostile method names;
 * no gnuplot). Set SCB_KEEP_DEMO=DIR to keep the demo database and figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <math.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"
#include "results/compare.h"
#include "results/db.h"
#include "results/plot.h"
#include "results/recorder.h"
#include "results/report.h"
#include "results/stats.h"

#define SEED 20251127u

static char tmp_root[256];
static const char *exe;   /* scbench, from $SCBENCH */

static void make_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmp_root, name); }

static int group_setup(void **st)
{
    (void)st;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/scb_test_report_XXXXXX");
    if (!mkdtemp(tmp_root)) return -1;
    exe = getenv("SCBENCH");
    printf("# test_report: seed %u, temp dir %s, scbench %s\n", SEED, tmp_root, exe ? exe : "(unset)");
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- a database with known rows ------------------------------------------------------------- */
struct trow {
    char method[96], task[48], mode[16], sub[32];
    int session, turn;
    double score, prefill, ttft, decode, gen, kv, prompt;
};
#define MAX_ROWS 6000
static struct trow rows_a[MAX_ROWS];
static size_t n_rows_a;

static const char *const tasks_known[] = {"kv", "qa_eng", "summary", "summary_with_needles", "repoqa_and_kv", "mf"};
#define N_TASKS_KNOWN 6

static void info_for(struct scb_run_info *ri, const char *cfg, const char *scorer)
{
    memset(ri, 0, sizeof *ri);
    ri->config_json = cfg;
    ri->device = "cpu";
    ri->backend = "cpu";
    ri->model_path = "/models/demo";
    ri->scorer = scorer;
    ri->seed = 1;
    ri->force_new = 1;
}

/* Write the sessions of rows r[0..n) (grouped by method, task, mode, session, consecutive). */
static void write_rows(struct scb_recorder *rec, int64_t run, const struct trow *r, size_t n)
{
    struct scb_ctx ctx = {0};
    struct scb_turn_row tr[16];
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && !strcmp(r[j].method, r[i].method) && !strcmp(r[j].task, r[i].task) &&
               !strcmp(r[j].mode, r[i].mode) && r[j].session == r[i].session) j++;
        assert_true(j - i <= 16);
        for (size_t k = i; k < j; k++) {
            struct scb_turn_row *t = &tr[k - i];
            scb_turn_row_init(t);
            t->method = r[k].method; t->task = r[k].task; t->mode = r[k].mode;
            t->session = r[k].session; t->turn = r[k].turn;
            t->sub_task = r[k].sub[0] ? r[k].sub : NULL;
            t->prediction = "p"; t->gold_json = "\"g\"";
            t->score = r[k].score;
            t->prompt_tokens = (int64_t)r[k].prompt;
            t->generated_tokens = (int64_t)r[k].gen;
            t->prefill_ms = r[k].prefill; t->ttft_ms = r[k].ttft; t->decode_ms = r[k].decode;
            t->kv_bytes_physical = (int64_t)r[k].kv; t->kv_bytes_logical = (int64_t)r[k].kv;
        }
        if (scb_recorder_write_session(rec, run, tr, j - i, &ctx) < 0) fail_msg("write_session: %s", scb_errmsg(&ctx));
        i = j;
    }
}

/* Known rows: two methods, six tasks (all four categories, both Mix tasks), both modes,
 * sessions with 1..5 turns (some turn indices reached by few sessions). */
static size_t gen_rows(struct trow *out, const char *const *methods, int n_methods, uint64_t seed)
{
    struct scb_rng rng;
    scb_rng_seed(&rng, seed);
    size_t n = 0;
    for (int m = 0; m < n_methods; m++)
        for (int t = 0; t < N_TASKS_KNOWN; t++)
            for (int mode = 0; mode < 2; mode++)
                for (int s = 0; s < 7; s++) {
                    int turns = 1 + (int)((s * 3 + t) % 5);
                    for (int u = 0; u < turns; u++) {
                        struct trow *r = &out[n++];
                        memset(r, 0, sizeof *r);
                        snprintf(r->method, sizeof r->method, "%s", methods[m]);
                        snprintf(r->task, sizeof r->task, "%s", tasks_known[t]);
                        snprintf(r->mode, sizeof r->mode, "%s", mode ? "multi_request" : "multi_turn");
                        r->session = s * 2 + (t & 1);   /* non-contiguous ids */
                        r->turn = u;
                        if (!strcmp(tasks_known[t], "summary_with_needles"))
                            snprintf(r->sub, sizeof r->sub, "%s", u % 2 ? "passkey" : "summary");
                        if (!strcmp(tasks_known[t], "repoqa_and_kv"))
                            snprintf(r->sub, sizeof r->sub, "%s", u % 3 == 2 ? "kv" : "repoqa");
                        double p = 0.8 - 0.25 * m - 0.05 * u;
                        r->score = !strcmp(tasks_known[t], "summary") || !strcmp(r->sub, "summary")
                                       ? scb_rng_uniform(&rng) : (scb_rng_uniform(&rng) < p ? 1.0 : 0.0);
                        r->prompt = u == 0 ? 8000 + 1000 * t : 30;
                        r->prefill = (u == 0 ? 500.0 : 10.0) * (1.0 + scb_rng_uniform(&rng));
                        r->ttft = r->prefill + 5 * scb_rng_uniform(&rng);
                        r->gen = 1 + (double)scb_rng_below(&rng, 50);
                        r->decode = r->gen * (20 + 5 * m) * (0.9 + 0.2 * scb_rng_uniform(&rng));
                        r->kv = (double)(1u << 20) * (m ? 0.25 : 1.0) * (1 + t);
                    }
                }
    return n;
}

static int64_t make_db(const char *path, const char *cfg, const char *scorer, const struct trow *r, size_t n)
{
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = 0;
    if (scb_recorder_open(&rec, path, &ctx) < 0) fail_msg("recorder_open: %s", scb_errmsg(&ctx));
    info_for(&ri, cfg, scorer);
    if (scb_recorder_begin_run(rec, &ri, &run, &resumed, &ctx) < 0) fail_msg("begin_run: %s", scb_errmsg(&ctx));
    write_rows(rec, run, r, n);
    assert_int_equal(scb_recorder_finish_run(rec, run, SCB_RUN_FINISHED, NULL, &ctx), SCB_OK);
    scb_recorder_close(rec);
    return run;
}

/* ---- expected values, computed from the rows --------------------------------------------------- */
static int is_mt(const char *mode) { return !strcmp(mode, "multi_turn"); }

static double exp_sub_score(const struct trow *r, size_t n, const char *method, const char *task, const char *mode,
                            const char *sub, int only_sessions_lt)
{
    if (is_mt(mode)) {
        double sum = 0;
        int k = 0;
        for (int t = 0; t < 32; t++) {
            double s = 0;
            int c = 0;
            for (size_t i = 0; i < n; i++)
                if (!strcmp(r[i].method, method) && !strcmp(r[i].task, task) && !strcmp(r[i].mode, mode) &&
                    !strcmp(r[i].sub, sub) && r[i].turn == t && r[i].session < only_sessions_lt) { s += r[i].score; c++; }
            if (c) { sum += s / c; k++; }
        }
        return k ? 100 * sum / k : NAN;
    }
    double s = 0;
    int c = 0;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(r[i].method, method) && !strcmp(r[i].task, task) && !strcmp(r[i].mode, mode) &&
            !strcmp(r[i].sub, sub) && r[i].session < only_sessions_lt) { s += r[i].score; c++; }
    return c ? 100 * s / c : NAN;
}

static double exp_task_score(const struct trow *r, size_t n, const char *method, const char *task, const char *mode,
                             int lt)
{
    const char *subs[4] = {"", "", "", ""};
    int ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].method, method) || strcmp(r[i].task, task) || strcmp(r[i].mode, mode)) continue;
        int seen = 0;
        for (int k = 0; k < ns; k++) if (!strcmp(subs[k], r[i].sub)) seen = 1;
        if (!seen) subs[ns++] = r[i].sub;
    }
    double s = 0;
    int k = 0;
    for (int q = 0; q < ns; q++) {
        double v = exp_sub_score(r, n, method, task, mode, subs[q], lt);
        if (isfinite(v)) { s += v; k++; }
    }
    return k ? s / k : NAN;
}

static int task_cat(const char *t)
{
    const char *c = scb_db_task_category(t);
    static const char *const names[] = {"String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking"};
    for (int i = 0; i < 4; i++) if (c && !strcmp(c, names[i])) return i;
    return -1;
}

static void exp_cats(const struct trow *r, size_t n, const char *method, const char *mode, double cat[4], double *avg,
                     double *avg_tasks, int lt)
{
    double cs[4] = {0}, ts = 0;
    int cn[4] = {0}, tn = 0;
    for (int t = 0; t < N_TASKS_KNOWN; t++) {
        double v = exp_task_score(r, n, method, tasks_known[t], mode, lt);
        if (!isfinite(v)) continue;
        cs[task_cat(tasks_known[t])] += v; cn[task_cat(tasks_known[t])]++;
        ts += v; tn++;
    }
    double a = 0;
    int an = 0;
    for (int c = 0; c < 4; c++) { cat[c] = cn[c] ? cs[c] / cn[c] : NAN; if (cn[c]) { a += cat[c]; an++; } }
    *avg = an ? a / an : NAN;
    *avg_tasks = tn ? ts / tn : NAN;
}

static double q_double(sqlite3 *h, const char *sql, const char *a, const char *b, const char *c)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    if (a) sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b) sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    if (c) sqlite3_bind_text(st, 3, c, -1, SQLITE_STATIC);
    double v = NAN;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    return v;
}

static const char *const methods_a[] = {"dense", "snapkv:budget=1024"};
static const char *cfg_a = "{\"methods\":[\"dense\",\"snapkv:budget=1024\"],\"scorer\":\"faithful\"}";
static char db_a[512];

static void ensure_db_a(void)
{
    if (db_a[0]) return;
    make_path(db_a, sizeof db_a, "a.db");
    n_rows_a = gen_rows(rows_a, methods_a, 2, SEED);
    make_db(db_a, cfg_a, "faithful", rows_a, n_rows_a);
}

static const struct scb_rep_group *find_g(const struct scb_rep_data *d, const char *method, int mode)
{
    for (size_t i = 0; i < d->n_groups; i++)
        if (!strcmp(d->groups[i].method, method) && d->groups[i].mode == mode) return &d->groups[i];
    return NULL;
}

static void test_scores_match_rows_and_views(void **st)
{
    (void)st;
    ensure_db_a();
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    struct scb_rep_data *d = NULL;
    assert_int_equal(scb_db_open(&db, db_a, SCB_DB_READONLY, &ctx), SCB_OK);
    assert_int_equal(scb_rep_load(db, NULL, 0, &d, &ctx), SCB_OK);
    assert_int_equal(d->n_groups, 4);
    for (int m = 0; m < 2; m++)
        for (int mode = 0; mode < 2; mode++) {
            const char *mname = mode ? "multi_request" : "multi_turn";
            const struct scb_rep_group *g = find_g(d, methods_a[m], mode);
            assert_non_null(g);
            assert_int_equal(g->n_tasks, N_TASKS_KNOWN);
            double *out = malloc(scb_rep_n_out(g) * sizeof *out);
            assert_int_equal(scb_rep_scores(g, NULL, out, &ctx), SCB_OK);
            for (size_t t = 0; t < g->n_tasks; t++) {
                const char *short_name = g->tasks[t].task + 8;
                double e = exp_task_score(rows_a, n_rows_a, methods_a[m], short_name, mname, 1 << 30);
                assert_float_equal(out[t], e, 1e-9);
                double v = q_double(db->h, "SELECT score FROM task_scores WHERE method = ?1 AND task = ?2 AND mode = ?3",
                                    methods_a[m], g->tasks[t].task, mname);
                assert_float_equal(out[t], v, 1e-9);
            }
            double cat[4], avg, avg_t;
            exp_cats(rows_a, n_rows_a, methods_a[m], mname, cat, &avg, &avg_t, 1 << 30);
            for (int c = 0; c < 4; c++) assert_float_equal(out[scb_rep_i_cat(g, c)], cat[c], 1e-9);
            assert_float_equal(out[scb_rep_i_avg(g)], avg, 1e-9);
            assert_float_equal(out[scb_rep_i_avg_tasks(g)], avg_t, 1e-9);
            assert_float_equal(out[scb_rep_i_avg(g)],
                               q_double(db->h, "SELECT score FROM mode_scores WHERE method = ?1 AND mode = ?2", methods_a[m], mname, NULL), 1e-9);
            assert_float_equal(out[scb_rep_i_avg_tasks(g)],
                               q_double(db->h, "SELECT avg_tasks FROM mode_scores WHERE method = ?1 AND mode = ?2", methods_a[m], mname, NULL), 1e-9);
            /* per turn: mean over tasks of each task's mean-of-subs at that turn */
            for (int tu = 0; tu < g->max_turn; tu++) {
                double s = 0;
                int k = 0;
                for (int t = 0; t < N_TASKS_KNOWN; t++) {
                    double ss = 0;
                    int sk = 0;
                    const char *subs[2] = {"", ""};
                    int ns = 0;
                    for (size_t i = 0; i < n_rows_a; i++) {
                        const struct trow *r = &rows_a[i];
                        if (strcmp(r->method, methods_a[m]) || strcmp(r->task, tasks_known[t]) || strcmp(r->mode, mname) || r->turn != tu) continue;
                        int seen = 0;
                        for (int q = 0; q < ns; q++) if (!strcmp(subs[q], r->sub)) seen = 1;
                        if (!seen) subs[ns++] = r->sub;
                    }
                    for (int q = 0; q < ns; q++) {
                        double a = 0;
                        int c = 0;
                        for (size_t i = 0; i < n_rows_a; i++) {
                            const struct trow *r = &rows_a[i];
                            if (!strcmp(r->method, methods_a[m]) && !strcmp(r->task, tasks_known[t]) && !strcmp(r->mode, mname) &&
                                r->turn == tu && !strcmp(r->sub, subs[q])) { a += r->score; c++; }
                        }
                        ss += 100 * a / c; sk++;
                    }
                    if (sk) { s += ss / sk; k++; }
                }
                assert_float_equal(out[scb_rep_i_turn(g, tu)], s / k, 1e-9);
            }
            /* costs */
            struct scb_rep_cost cs;
            scb_rep_cost(g, NULL, -1, &cs);
            double dsum = 0, gsum = 0, p0 = 0, kv = 0;
            int n0 = 0, nall = 0;
            for (size_t i = 0; i < n_rows_a; i++) {
                const struct trow *r = &rows_a[i];
                if (strcmp(r->method, methods_a[m]) || strcmp(r->mode, mname)) continue;
                dsum += r->decode; gsum += r->gen; kv += r->kv; nall++;
                if (r->turn == 0) { p0 += r->prefill; n0++; }
            }
            assert_float_equal(cs.decode_ms_per_token, dsum / gsum, 1e-9);
            assert_float_equal(cs.prefill_ms, p0 / n0, 1e-9);
            assert_float_equal(cs.kv_bytes_physical, kv / nall, 1e-6);
            assert_int_equal(cs.n_turns, nall);
            assert_true(isnan(cs.peak_device_bytes));   /* never recorded: not measured, not zero */
            free(out);
        }
    scb_rep_data_free(d);
    scb_db_close(db);
}

/* ---- bootstrap on known cases --------------------------------------------------------------- */
static void test_bootstrap_all_equal(void **st)
{
    (void)st;
    double x[25];
    for (int i = 0; i < 25; i++) x[i] = 0.625;
    struct scb_boot_opts o;
    scb_boot_opts_default(&o);
    struct scb_ci ci;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_stats_bootstrap_mean(x, 25, &o, &ci, &ctx), SCB_OK);
    assert_float_equal(ci.est, 0.625, 1e-12);
    assert_float_equal(ci.lo, 0.625, 1e-12);
    assert_float_equal(ci.hi, 0.625, 1e-12);
    assert_int_equal(ci.n_valid, SCB_BOOT_DEFAULT_B);
}

/* n sessions, k of them score 1: the bootstrap mean is Binomial(n, k/n)/n, so the percentile
 * interval must sit at its exact 2.5 % and 97.5 % quantiles (within one atom 1/n, since the
 * empirical quantile of B draws can land on a neighbouring atom). */
static double binom_quantile(int n, double p, double q)
{
    double cdf = 0;
    for (int j = 0; j <= n; j++) {
        double lc = lgamma(n + 1.0) - lgamma(j + 1.0) - lgamma(n - j + 1.0);
        cdf += exp(lc + j * log(p) + (n - j) * log1p(-p));
        if (cdf >= q) return (double)j / n;
    }
    return 1.0;
}

static void test_bootstrap_two_valued(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    const int ns[] = {20, 40, 13};
    const int ks[] = {6, 31, 2};
    for (int c = 0; c < 3; c++) {
        int n = ns[c], k = ks[c];
        double x[64];
        /* order the ones pseudo-randomly (seeded) so the draw is not aligned with them */
        struct scb_rng rng;
        scb_rng_seed(&rng, SEED + (uint64_t)c);
        for (int i = 0; i < n; i++) x[i] = 0;
        for (int placed = 0; placed < k;) { int i = (int)scb_rng_below(&rng, (uint64_t)n); if (x[i] == 0) { x[i] = 1; placed++; } }
        struct scb_boot_opts o = {20000, 0.95, SEED};
        struct scb_ci ci;
        assert_int_equal(scb_stats_bootstrap_mean(x, (size_t)n, &o, &ci, &ctx), SCB_OK);
        double p = (double)k / n;
        double qlo = binom_quantile(n, p, 0.025), qhi = binom_quantile(n, p, 0.975);
        printf("# two-valued n=%d k=%d: bootstrap [%.4f, %.4f], binomial quantiles [%.4f, %.4f]\n", n, k, ci.lo, ci.hi, qlo, qhi);
        assert_float_equal(ci.est, p, 1e-12);
        assert_true(fabs(ci.lo - qlo) <= 1.0 / n + 1e-12);
        assert_true(fabs(ci.hi - qhi) <= 1.0 / n + 1e-12);
        assert_true(ci.lo < p && p < ci.hi);
        /* same seed, same interval; another seed, an interval of the same distribution */
        struct scb_ci again;
        assert_int_equal(scb_stats_bootstrap_mean(x, (size_t)n, &o, &again, &ctx), SCB_OK);
        assert_true(again.lo == ci.lo && again.hi == ci.hi);
    }
}

static void test_quantile_type7(void **st)
{
    (void)st;
    const double v[] = {1, 2, 4, 8};
    /* numpy.quantile([1,2,4,8], q) (linear): 0.25 -> 1.75, 0.5 -> 3, 0.9 -> 6.8 */
    assert_float_equal(scb_stats_quantile(v, 4, 0.25), 1.75, 1e-12);
    assert_float_equal(scb_stats_quantile(v, 4, 0.5), 3.0, 1e-12);
    assert_float_equal(scb_stats_quantile(v, 4, 0.9), 6.8, 1e-12);
    assert_float_equal(scb_stats_quantile(v, 4, 0.0), 1.0, 1e-12);
    assert_float_equal(scb_stats_quantile(v, 4, 1.0), 8.0, 1e-12);
    assert_true(isnan(scb_stats_quantile(v, 0, 0.5)));
}

/* A candidate that scores exactly 0.2 less on every turn of every shared session: the paired
 * difference is -20 points with a zero-width interval, although each side's own interval is wide. */
static void test_paired_constant_shift(void **st)
{
    (void)st;
    static struct trow r[MAX_ROWS];
    const char *const ms[] = {"dense", "quest"};
    size_t n = gen_rows(r, ms, 2, SEED + 7);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].method, "dense")) continue;
        r[i].score = 0.3 + 0.5 * ((r[i].session + r[i].turn) % 2);
    }
    /* quest = dense - 0.2, same sessions */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(r[i].method, "quest")) continue;
        for (size_t j = 0; j < n; j++)
            if (!strcmp(r[j].method, "dense") && !strcmp(r[j].task, r[i].task) && !strcmp(r[j].mode, r[i].mode) &&
                r[j].session == r[i].session && r[j].turn == r[i].turn) r[i].score = r[j].score - 0.2;
    }
    char path[512];
    make_path(path, sizeof path, "shift.db");
    make_db(path, "{\"methods\":[\"dense\",\"quest\"]}", "intended", r, n);
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    struct scb_rep_data *d = NULL;
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_OK);
    assert_int_equal(scb_rep_load(db, NULL, 0, &d, &ctx), SCB_OK);
    for (int mode = 0; mode < 2; mode++) {
        const struct scb_rep_group *g = find_g(d, "quest", mode), *b = scb_rep_find_baseline(d, g, "dense");
        assert_non_null(b);
        assert_string_equal(b->method, "dense");
        struct scb_rep_pairing p;
        assert_int_equal(scb_rep_pair(g, b, &p, &ctx), SCB_OK);
        assert_int_equal(p.n, g->n_clusters);
        assert_int_equal(p.only_cand + p.only_base, 0);
        struct scb_boot_opts o = {500, 0.95, SEED};
        struct scb_ci *ci = malloc(scb_rep_n_out(g) * sizeof *ci), *own = malloc(scb_rep_n_out(g) * sizeof *own);
        assert_int_equal(scb_rep_diff_ci(g, b, &p, &o, ci, NULL, NULL, &ctx), SCB_OK);
        assert_int_equal(scb_rep_scores_ci(g, &o, own, &ctx), SCB_OK);
        for (size_t k = 0; k < scb_rep_n_out(g); k++) {
            if (!isfinite(ci[k].est)) continue;
            assert_float_equal(ci[k].est, -20.0, 1e-9);
            assert_float_equal(ci[k].lo, -20.0, 1e-9);
            assert_float_equal(ci[k].hi, -20.0, 1e-9);
        }
        assert_true(own[scb_rep_i_avg(g)].hi - own[scb_rep_i_avg(g)].lo > 1.0);
        free(ci); free(own);
        scb_rep_pairing_fini(&p);
    }
    scb_rep_data_free(d);
    scb_db_close(db);
}

/* ---- report output ------------------------------------------------------------------------ */
static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n = 0;
    struct scb_ctx ctx = {0};
    if (scb_file_read(path, &s, &n, &ctx) < 0) return NULL;
    char *c = strdup(s);   /* plain malloc, so callers free() it */
    scb_free(s);
    return c;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int s = system(cmd);
    return WIFEXITED(s) ? WEXITSTATUS(s) : 255;
}

/* Find "table,run,method,mode,key," in the CSV and return its value column. */
static double csv_value(const char *csv, const char *prefix, double *lo, double *hi)
{
    const char *p = strstr(csv, prefix);
    if (!p) return NAN;
    p += strlen(prefix);
    char *e;
    double v = strtod(p, &e);
    if (*e == ',' && lo) *lo = strtod(e + 1, &e);
    if (*e == ',' && hi) *hi = strtod(e + 1, &e);
    return v;
}

static void test_report_cli(void **st)
{
    (void)st;
    if (!exe) { skip(); return; }
    ensure_db_a();
    char out[512], err[512];
    make_path(out, sizeof out, "report.csv");
    make_path(err, sizeof err, "report.err");
    assert_int_equal(sh("'%s' report --db '%s' --format csv --bootstrap 300 > '%s' 2> '%s'", exe, db_a, out, err), 0);
    char *csv = slurp(out);
    assert_non_null(csv);
    assert_non_null(strstr(csv, "table,run,method,mode,key,value,ci_lo,ci_hi,n\r\n"));
    for (int m = 0; m < 2; m++)
        for (int mode = 0; mode < 2; mode++) {
            const char *mname = mode ? "multi_request" : "multi_turn";
            double cat[4], avg, avg_t;
            exp_cats(rows_a, n_rows_a, methods_a[m], mname, cat, &avg, &avg_t, 1 << 30);
            char key[256];
            double lo = NAN, hi = NAN;
            snprintf(key, sizeof key, "average,1,%s,%s,avg_categories,", methods_a[m], mname);
            double v = csv_value(csv, key, &lo, &hi);
            assert_true(fabs(v - avg) <= 1e-5 * fabs(avg) + 1e-9);
            assert_true(lo <= v && v <= hi && hi - lo > 0);
            snprintf(key, sizeof key, "category,1,%s,%s,Global Information,", methods_a[m], mname);
            v = csv_value(csv, key, NULL, NULL);
            assert_true(fabs(v - cat[2]) <= 1e-5 * fabs(cat[2]) + 1e-9);
            if (m == 1) {
                /* difference against dense on the same sessions (all shared here) */
                double cd[4], ad, atd;
                exp_cats(rows_a, n_rows_a, "dense", mname, cd, &ad, &atd, 1 << 30);
                snprintf(key, sizeof key, "diff_vs_baseline,1,%s,%s,avg_categories,", methods_a[m], mname);
                v = csv_value(csv, key, &lo, &hi);
                assert_true(fabs(v - (avg - ad)) <= 1e-4);
                assert_true(lo <= v && v <= hi);
            }
        }
    free(csv);

    /* Markdown: main table, scorer variant, the method; HTML escapes */
    make_path(out, sizeof out, "report.md");
    assert_int_equal(sh("'%s' report --db '%s' --bootstrap 200 > '%s'", exe, db_a, out), 0);
    char *md = slurp(out);
    assert_non_null(md);
    assert_non_null(strstr(md, "Scorer variant: faithful"));
    assert_non_null(strstr(md, "| Method | MT Retr.String |"));
    assert_non_null(strstr(md, "| snapkv:budget=1024 |"));
    assert_non_null(strstr(md, "Difference against dense"));
    assert_non_null(strstr(md, "Per turn, multi-turn mode"));
    assert_non_null(strstr(md, "B = 200"));
    free(md);
    make_path(out, sizeof out, "report.html");
    assert_int_equal(sh("'%s' report --db '%s' --format html --bootstrap 100 > '%s'", exe, db_a, out), 0);
    char *html = slurp(out);
    assert_non_null(strstr(html, "<table>"));
    assert_non_null(strstr(html, "</html>"));
    free(html);

    /* two runs in one report: the method both hold is labelled by run, and run 2's method is
     * paired with run 1's dense (the only baseline selected) */
    {
        static struct trow r2[MAX_ROWS];
        char db2[512];
        make_path(db2, sizeof db2, "two_runs.db");
        make_db(db2, cfg_a, "faithful", rows_a, n_rows_a);
        size_t n2 = 0;
        for (size_t i = 0; i < n_rows_a; i++)
            if (!strcmp(rows_a[i].method, "snapkv:budget=1024")) r2[n2++] = rows_a[i];
        make_db(db2, "{\"methods\":[\"snapkv:budget=1024\"],\"scorer\":\"intended\"}", "intended", r2, n2);
        assert_int_equal(sh("'%s' report --db '%s' --run 1,2 --bootstrap 100 > '%s'", exe, db2, out), 0);
        char *two = slurp(out);
        assert_non_null(strstr(two, "| snapkv:budget=1024 (run 1) |"));
        assert_non_null(strstr(two, "| snapkv:budget=1024 (run 2) |"));
        assert_non_null(strstr(two, "faithful (run 1), intended (run 2)"));
        free(two);
        assert_int_equal(sh("'%s' report --db '%s' --run 2 --format csv --bootstrap 100 > '%s'", exe, db2, out), 0);
        two = slurp(out);
        assert_null(strstr(two, "diff_vs_baseline"));   /* run 2 alone has no dense */
        free(two);
        assert_int_equal(sh("'%s' report --db '%s' --run 1 --run 2 --format csv --bootstrap 100 > '%s'", exe, db2, out), 0);
        two = slurp(out);
        assert_non_null(strstr(two, "diff_vs_baseline,2,snapkv:budget=1024,multi_turn,avg_categories,"));
        free(two);
    }

    /* errors */
    assert_int_equal(sh("'%s' report --db '%s/missing.db' > /dev/null 2> '%s'", exe, tmp_root, err), 1);
    char *e = slurp(err);
    assert_non_null(strstr(e, "missing.db"));
    free(e);
    assert_int_equal(sh("'%s' report --db '%s' --run 99 > /dev/null 2> '%s'", exe, db_a, err), 1);
    e = slurp(err);
    assert_non_null(strstr(e, "no run 99"));
    free(e);
    {
        char junk[512];
        make_path(junk, sizeof junk, "junk.db");
        FILE *f = fopen(junk, "w");
        fputs("this is not an SQLite file, just text long enough to have a header......................\n", f);
        fclose(f);
        assert_int_equal(sh("'%s' report --db '%s' > /dev/null 2> '%s'", exe, junk, err), 1);
        e = slurp(err);
        assert_non_null(strstr(e, "junk.db"));
        free(e);
        assert_int_equal(sh("'%s' plot --db '%s' --out '%s/jf' > /dev/null 2> '%s'", exe, junk, tmp_root, err), 1);
        assert_int_equal(sh("'%s' compare --db '%s' --baseline 1 --candidate 1 > /dev/null 2> '%s'", exe, junk, err), 1);
        e = slurp(err);
        assert_non_null(strstr(e, "junk.db"));
        free(e);
    }
    assert_int_equal(sh("'%s' report --db '%s' --format pdf > /dev/null 2>&1", exe, db_a), 2);
    assert_int_equal(sh("'%s' report > /dev/null 2>&1", exe), 2);
    assert_int_equal(sh("'%s' report --help > /dev/null", exe), 0);
}

/* ---- compare --------------------------------------------------------------------------------- */
static void test_compare(void **st)
{
    (void)st;
    if (!exe) { skip(); return; }
    ensure_db_a();
    static struct trow r[MAX_ROWS];
    char db_c[512], out[512], err[512];
    make_path(out, sizeof out, "cmp.md");
    make_path(err, sizeof err, "cmp.err");

    /* clean: the same rows in another database */
    make_path(db_c, sizeof db_c, "clean.db");
    make_db(db_c, cfg_a, "faithful", rows_a, n_rows_a);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 200 > '%s'", exe, db_a, db_c, out), 0);
    char *md = slurp(out);
    assert_non_null(strstr(md, "no regression"));
    assert_non_null(strstr(md, "| +0.0 [+0.0, +0.0] |"));
    free(md);

    /* planted regression: snapkv loses every retrieval hit of kv in the candidate */
    memcpy(r, rows_a, n_rows_a * sizeof *r);
    for (size_t i = 0; i < n_rows_a; i++)
        if (!strcmp(r[i].method, "snapkv:budget=1024") && !strcmp(r[i].task, "kv")) r[i].score = 0;
    make_path(db_c, sizeof db_c, "regressed.db");
    make_db(db_c, cfg_a, "faithful", r, n_rows_a);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 200 > '%s' 2> '%s'",
                        exe, db_a, db_c, out, err), 1);
    md = slurp(out);
    assert_non_null(strstr(md, "❌ regression"));
    assert_non_null(strstr(md, "❌ accuracy"));
    free(md);
    /* the drop of the Avg equals the kv drop / 3 tasks in String Retrieval... computed here: */
    {
        double cb[4], ab, atb, cc[4], ac, atc;
        exp_cats(rows_a, n_rows_a, "snapkv:budget=1024", "multi_turn", cb, &ab, &atb, 1 << 30);
        exp_cats(r, n_rows_a, "snapkv:budget=1024", "multi_turn", cc, &ac, &atc, 1 << 30);
        assert_true(ab - ac > 1.0);
        struct scb_ctx ctx = {0};
        struct scb_db *d1 = NULL, *d2 = NULL;
        struct scb_cmp_opts o;
        struct scb_cmp_result res;
        scb_cmp_opts_default(&o);
        o.boot.B = 100;
        o.max_accuracy_drop = (ab - ac) + 0.01;   /* just above the multi-turn drop */
        assert_int_equal(scb_db_open(&d1, db_a, SCB_DB_READONLY, &ctx), SCB_OK);
        assert_int_equal(scb_db_open(&d2, db_c, SCB_DB_READONLY, &ctx), SCB_OK);
        FILE *devnull = fopen("/dev/null", "w");
        assert_int_equal(scb_cmp_runs(d1, 1, d2, 1, &o, devnull, &res, &ctx), SCB_OK);
        double mr_b[4], mr_ab, mr_atb, mr_c[4], mr_ac, mr_atc;
        exp_cats(rows_a, n_rows_a, "snapkv:budget=1024", "multi_request", mr_b, &mr_ab, &mr_atb, 1 << 30);
        exp_cats(r, n_rows_a, "snapkv:budget=1024", "multi_request", mr_c, &mr_ac, &mr_atc, 1 << 30);
        double worst = fmax(ab - ac, mr_ab - mr_ac);
        assert_float_equal(res.worst_drop, worst, 1e-9);
        assert_int_equal(res.regression, worst > o.max_accuracy_drop);
        o.max_accuracy_drop = worst + 0.01;
        assert_int_equal(scb_cmp_runs(d1, 1, d2, 1, &o, devnull, &res, &ctx), SCB_OK);
        assert_int_equal(res.regression, 0);
        fclose(devnull);
        scb_db_close(d1);
        scb_db_close(d2);
    }

    /* mismatched sessions: the candidate lacks two kv sessions and has an extra method */
    size_t n = 0;
    for (size_t i = 0; i < n_rows_a; i++) {
        if (!strcmp(rows_a[i].task, "kv") && !strcmp(rows_a[i].mode, "multi_turn") &&
            !strcmp(rows_a[i].method, "dense") && (rows_a[i].session == 2 || rows_a[i].session == 6)) continue;
        r[n++] = rows_a[i];
    }
    size_t n_extra = 0;
    for (size_t i = 0; i < n_rows_a; i++)
        if (!strcmp(rows_a[i].method, "dense") && !strcmp(rows_a[i].task, "mf") && !strcmp(rows_a[i].mode, "multi_turn")) {
            r[n] = rows_a[i];
            snprintf(r[n].method, sizeof r[n].method, "streamingllm");
            n++;
            n_extra++;
        }
    make_path(db_c, sizeof db_c, "mismatch.db");
    make_db(db_c, cfg_a, "faithful", r, n);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 100 > '%s'", exe, db_a, db_c, out), 0);
    md = slurp(out);
    assert_non_null(strstr(md, "Not compared"));
    assert_non_null(strstr(md, "`dense` multi_turn, scbench_kv: 2 sessions only in the baseline (2, 6)"));
    assert_non_null(strstr(md, "`streamingllm` multi_turn: only in the candidate (7 sessions)"));
    free(md);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 100 --require-match > /dev/null",
                        exe, db_a, db_c), 1);

    /* slowdown: decode 1.5x slower everywhere */
    memcpy(r, rows_a, n_rows_a * sizeof *r);
    for (size_t i = 0; i < n_rows_a; i++) r[i].decode *= 1.5;
    make_path(db_c, sizeof db_c, "slow.db");
    make_db(db_c, cfg_a, "faithful", r, n_rows_a);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 100 > '%s'", exe, db_a, db_c, out), 0);
    md = slurp(out);
    assert_non_null(strstr(md, "1.500×"));
    free(md);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 100 --max-slowdown 1.2 > '%s'",
                        exe, db_a, db_c, out), 1);
    md = slurp(out);
    assert_non_null(strstr(md, "❌ speed"));
    free(md);
    assert_int_equal(sh("'%s' compare --db '%s' --db '%s' --baseline 1 --candidate 1 --bootstrap 100 --max-slowdown 1.6 > /dev/null",
                        exe, db_a, db_c), 0);

    /* usage errors and nothing in common */
    assert_int_equal(sh("'%s' compare --db '%s' --baseline 1 > /dev/null 2>&1", exe, db_a), 2);
    assert_int_equal(sh("'%s' compare --db '%s' --baseline 1 --candidate 1 --max-slowdown 0.5 > /dev/null 2>&1", exe, db_a), 2);
    assert_int_equal(sh("'%s' compare --db '%s' --baseline 1 --candidate 7 > /dev/null 2> '%s'", exe, db_a, err), 1);
    char *e = slurp(err);
    assert_non_null(strstr(e, "no run 7"));
    free(e);
}

/* ---- plots -------------------------------------------------------------------------------------- */
/* A demo database: dense, SnapKV at three budgets, StreamingLLM, Quest, MInference, and (when
 * hostile) a method name full of quotes and backquotes; 12 tasks; both modes; accuracy falls with the budget and, for the dropping
 * methods, with the turn; costs scale with the KV kept. Plus bench rows. */
static void build_demo_db(const char *path, int hostile)
{
    static const char *const tasks[] = {"kv", "prefix_suffix", "vt", "repoqa", "qa_eng", "qa_chn", "choice_eng",
                                        "mf", "many_shot", "summary", "summary_with_needles", "repoqa_and_kv"};
    static const char *const methods[] = {"dense", "snapkv:budget=1024", "snapkv:budget=4096", "snapkv:budget=16384",
                                          "streamingllm:n_local=4032", "quest:budget=2048", "minference",
                                          "x'`touch INJECTED`\"@q<b>|"};
    static const double keep[] = {1.0, 1024.0 / 32768, 4096.0 / 32768, 16384.0 / 32768, 4096.0 / 32768, 1.0, 1.0, 0.5};
    static struct trow r[12000];
    struct scb_rng rng;
    scb_rng_seed(&rng, SEED + 99);
    size_t n = 0;
    for (int m = 0; m < (hostile ? 8 : 7); m++)
        for (int t = 0; t < 12; t++)
            for (int mode = 0; mode < 2; mode++)
                for (int s = 0; s < 6; s++)
                    for (int u = 0; u < 5; u++) {
                        struct trow *x = &r[n++];
                        memset(x, 0, sizeof *x);
                        snprintf(x->method, sizeof x->method, "%s", methods[m]);
                        snprintf(x->task, sizeof x->task, "%s", tasks[t]);
                        snprintf(x->mode, sizeof x->mode, "%s", mode ? "multi_request" : "multi_turn");
                        x->session = s;
                        x->turn = u;
                        if (t == 10) snprintf(x->sub, sizeof x->sub, "%s", u % 2 ? "passkey" : "summary");
                        if (t == 11) snprintf(x->sub, sizeof x->sub, "%s", u % 2 ? "kv" : "repoqa");
                        double base = t < 3 ? 0.85 : t < 7 ? 0.6 : t < 10 ? 0.45 : 0.55;
                        double k = keep[m];
                        double drop = k < 1 ? (t < 3 ? 0.9 : 0.35) * (1 - sqrt(k)) : (m == 6 ? 0.05 : m == 5 ? 0.08 : 0);
                        double turn_pen = k < 1 && mode == 0 ? 0.06 * u : (mode == 0 ? -0.02 * u : 0);
                        double p = fmin(0.98, fmax(0.02, base - drop - turn_pen));
                        x->score = scb_rng_uniform(&rng) < p ? 1.0 : 0.0;
                        double ctxlen = (t == 8 ? 16384.0 : t < 6 ? 65536.0 : 131072.0);
                        x->prompt = u == 0 ? ctxlen : 40;
                        double pre_speed = m == 6 ? 0.35 : 1.0;
                        x->prefill = u == 0 ? 0.06 * ctxlen * pre_speed * (1 + 0.05 * scb_rng_uniform(&rng)) : 25;
                        x->gen = 20 + (double)scb_rng_below(&rng, 40);
                        x->decode = x->gen * (12 + 20 * k) * (0.95 + 0.1 * scb_rng_uniform(&rng));
                        x->ttft = x->prefill + 12 + 20 * k;
                        x->kv = ctxlen * k * 131072.0;   /* bytes: 128 KiB per token (Llama-3.1-8B bf16) */
                    }
    make_db(path, "{\"methods\":[\"dense\",\"snapkv:budget=1024\",\"snapkv:budget=4096\",\"snapkv:budget=16384\","
                  "\"streamingllm:n_local=4032\",\"quest:budget=2048\",\"minference\"],\"scorer\":\"faithful\"}",
            "faithful", r, n);
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    static const struct { const char *name, *shape; double ms, tf, gb; } bb[] = {
        {"attn_prefill_dense", "{\"T\":32768,\"H\":32,\"D\":128}", 95.0, 465.0, 150.0},
        {"attn_prefill_minference", "{\"T\":32768,\"H\":32,\"D\":128}", 40.0, 210.0, 260.0},
        {"attn_decode_dense", "{\"T\":32768,\"Hkv\":8,\"D\":128}", 0.09, 2.9, 2900.0},
        {"attn_decode_quest", "{\"T\":32768,\"Hkv\":8,\"D\":128}", 0.02, 1.2, 1850.0},
        {"matmul_bf16", "{\"M\":4096,\"N\":4096,\"K\":4096}", 0.21, 655.0, 480.0},
    };
    for (size_t i = 0; i < sizeof bb / sizeof bb[0]; i++) {
        struct scb_bench_row b;
        scb_bench_row_init(&b);
        b.name = bb[i].name; b.shape_json = bb[i].shape; b.dtype = "bf16"; b.device = "NVIDIA H100 80GB HBM3";
        b.backend = "cuda"; b.median_ms = bb[i].ms; b.p10_ms = bb[i].ms * 0.97; b.p90_ms = bb[i].ms * 1.04;
        b.repeats = 50; b.tflops = bb[i].tf; b.gbps = bb[i].gb; b.peak_tflops = 989.0; b.peak_gbps = 3350.0;
        assert_int_equal(scb_recorder_add_bench(rec, 1, &b, NULL, &ctx), SCB_OK);
    }
    scb_recorder_close(rec);
}

static const char *const figures[] = {"acc_by_turn", "acc_vs_budget", "categories_multi_turn",
                                      "categories_multi_request", "acc_vs_kv", "latency_multi_turn",
                                      "latency_multi_request", "bench"};

static off_t file_size(const char *dir, const char *name, const char *ext)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.%s", dir, name, ext);
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

static void test_plot(void **st)
{
    (void)st;
    if (!exe) { skip(); return; }
    const char *keep = getenv("SCB_KEEP_DEMO");
    char db[512], dir[512], out[600], err[600];
    if (keep && *keep) {
        snprintf(db, sizeof db, "%s/demo.db", keep);
        snprintf(dir, sizeof dir, "%s/figures", keep);
        mkdir(keep, 0777);
        unlink(db);
    } else {
        make_path(db, sizeof db, "demo.db");
        make_path(dir, sizeof dir, "figs");
    }
    int hostile = !(keep && *keep);   /* the kept demo (docs/img) has no hostile method name */
    build_demo_db(db, hostile);
    snprintf(out, sizeof out, "%s.out", dir);
    snprintf(err, sizeof err, "%s.err", dir);
    int have = scb_plot_find_gnuplot("gnuplot");
    printf("# gnuplot %s\n", have ? "found" : "missing: images not checked");
    assert_int_equal(sh("cd '%s' && '%s' plot --db '%s' --out '%s' --bootstrap 300 > '%s' 2> '%s'", tmp_root, exe, db, dir, out, err), 0);
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        assert_true(file_size(dir, figures[i], "dat") > 0);
        assert_true(file_size(dir, figures[i], "gp") > 0);
        if (!have) continue;
        assert_true(file_size(dir, figures[i], "png") > 1000);
        assert_true(file_size(dir, figures[i], "svg") > 1000);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.png", dir, figures[i]);
        FILE *f = fopen(p, "rb");
        unsigned char sig[8] = {0};
        assert_int_equal(fread(sig, 1, 8, f), 8);
        fclose(f);
        static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        assert_memory_equal(sig, png_sig, 8);
        snprintf(p, sizeof p, "%s/%s.svg", dir, figures[i]);
        char *svg = slurp(p);
        assert_non_null(strstr(svg, "<svg"));
        free(svg);
    }
    /* the hostile method name reached gnuplot only as a literal: nothing was executed */
    char inj[700];
    snprintf(inj, sizeof inj, "%s/INJECTED", dir);
    assert_int_equal(access(inj, F_OK), -1);
    snprintf(inj, sizeof inj, "%s/INJECTED", tmp_root);
    assert_int_equal(access(inj, F_OK), -1);
    if (have && hostile) {
        char p[1024];
        snprintf(p, sizeof p, "%s/categories_multi_turn.svg", dir);
        char *svg = slurp(p);
        assert_non_null(strstr(svg, "x'`touch INJECTED`\"@q&lt;b>|"));   /* gnuplot escapes < only */
        free(svg);
    }
    if (hostile) {
        /* the reports escape it too: HTML entities, Markdown table pipes */
        assert_int_equal(sh("'%s' report --db '%s' --format html --bootstrap 20 > '%s'", exe, db, out), 0);
        char *html = slurp(out);
        assert_non_null(strstr(html, "<td>x'`touch INJECTED`&quot;@q&lt;b&gt;|</td>"));
        free(html);
        assert_int_equal(sh("'%s' report --db '%s' --bootstrap 20 > '%s'", exe, db, out), 0);
        char *md = slurp(out);
        assert_non_null(strstr(md, "| x'\\`touch INJECTED\\`\"@q\\<b\\>\\| |"));
        free(md);
    }
    /* the budget figure holds the three SnapKV budgets */
    char p[1024];
    snprintf(p, sizeof p, "%s/acc_vs_budget.dat", dir);
    char *dat = slurp(p);
    assert_non_null(strstr(dat, "\n1024 "));
    assert_non_null(strstr(dat, "\n4096 "));
    assert_non_null(strstr(dat, "\n16384 "));
    free(dat);

    /* no gnuplot: scripts and data, a message, exit 0 */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/nognuplot", tmp_root);
    assert_int_equal(sh("'%s' plot --db '%s' --out '%s' --gnuplot /nonexistent/gnuplot --bootstrap 50 > /dev/null 2> '%s'",
                        exe, db, dir2, err), 0);
    char *e = slurp(err);
    assert_non_null(strstr(e, "not found"));
    free(e);
    assert_true(file_size(dir2, "acc_by_turn", "gp") > 0);
    assert_int_equal(file_size(dir2, "acc_by_turn", "png"), -1);
    /* usage */
    assert_int_equal(sh("'%s' plot --db '%s' > /dev/null 2>&1", exe, db), 2);
    assert_int_equal(sh("'%s' plot --help > /dev/null", exe), 0);
}

/* Figures without rendering (data and scripts only). */
static int plot_no_render(const struct scb_rep_data *d, struct scb_ctx *ctx)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/alloc_figs", tmp_root);
    struct scb_plot_opts po;
    struct scb_plot_result res;
    scb_plot_opts_default(&po);
    po.out_dir = dir;
    po.no_render = 1;
    po.boot.B = 3;
    return scb_plot_write(d, &po, &res, ctx);
}

/* Every allocation of load + report (each format) + plot data + compare fails in turn: each
 * run ends in a clean error or success, never a crash or a leak. */
static void test_allocation_failures(void **st)
{
    (void)st;
    static struct trow r[400];
    const char *const ms[] = {"dense", "snapkv"};
    static struct trow all[MAX_ROWS];
    size_t n = gen_rows(all, ms, 2, SEED + 3);
    /* a small database: the first tasks' rows only */
    size_t m = 0;
    for (size_t i = 0; i < n && m < 400; i++)
        if (!strcmp(all[i].task, "kv") || !strcmp(all[i].task, "summary_with_needles")) r[m++] = all[i];
    char path[512];
    make_path(path, sizeof path, "alloc.db");
    make_db(path, "{\"methods\":[\"dense\",\"snapkv\"]}", "faithful", r, m);
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_OK);
    FILE *devnull = fopen("/dev/null", "w");
    int fails = 0;
    long done = 0;
    for (long k = 1; k < 100000 && !done; k++) {
        size_t live = scb_alloc_live_bytes();
        struct scb_rep_data *d = NULL;
        struct scb_rep_opts ro;
        scb_rep_opts_default(&ro);
        ro.boot.B = 3;
        scb_alloc_fail_after(k, 0);
        int rc = scb_rep_load(db, NULL, 0, &d, &ctx);
        for (int f = 0; rc == SCB_OK && f < 3; f++) { ro.format = f; rc = scb_rep_write(d, &ro, devnull, &ctx); }
        if (rc == SCB_OK) {
            struct scb_cmp_opts co;
            struct scb_cmp_result res;
            scb_cmp_opts_default(&co);
            co.boot.B = 3;
            rc = scb_cmp_runs(db, 1, db, 1, &co, devnull, &res, &ctx);
        }
        if (rc == SCB_OK) rc = plot_no_render(d, &ctx);   /* last: it writes files */
        scb_alloc_fail_after(0, 0);
        scb_rep_data_free(d);
        if (rc == SCB_OK) done = k;
        else { assert_int_equal(rc, SCB_E_NOMEM); fails++; }
        assert_int_equal(scb_alloc_live_bytes(), live);
    }
    /* the first success must be the first k past the last allocation, not a swallowed failure:
     * with every allocation from k on failing (sticky), the same work still succeeds */
    {
        struct scb_rep_data *d = NULL;
        struct scb_rep_opts ro;
        struct scb_cmp_opts co;
        struct scb_cmp_result res;
        scb_rep_opts_default(&ro);
        ro.boot.B = 3;
        scb_cmp_opts_default(&co);
        co.boot.B = 3;
        scb_alloc_fail_after(done, 1);
        int rc = scb_rep_load(db, NULL, 0, &d, &ctx);
        for (int f = 0; rc == SCB_OK && f < 3; f++) { ro.format = f; rc = scb_rep_write(d, &ro, devnull, &ctx); }
        if (rc == SCB_OK) rc = scb_cmp_runs(db, 1, db, 1, &co, devnull, &res, &ctx);
        if (rc == SCB_OK) rc = plot_no_render(d, &ctx);
        scb_alloc_fail_after(0, 0);
        scb_rep_data_free(d);
        if (rc != SCB_OK) printf("# sticky failure from allocation %ld: %s\n", done, scb_errmsg(&ctx));
        assert_int_equal(rc, SCB_OK);
    }
    printf("# allocation failures survived: %d\n", fails);
    assert_true(done);
    assert_true(fails > 50);
    fclose(devnull);
    scb_db_close(db);
}

static void test_budget_parsing(void **st)
{
    (void)st;
    char fam[128];
    double b;
    scb_plot_spec_budget(NULL, "snapkv:budget=2048,window=32", fam, sizeof fam, &b);
    assert_float_equal(b, 2048, 0); assert_string_equal(fam, "snapkv");
    scb_plot_spec_budget(NULL, "minference+quest:page=16,budget=512", fam, sizeof fam, &b);
    assert_float_equal(b, 512, 0); assert_string_equal(fam, "minference+quest");
    scb_plot_spec_budget(NULL, "streamingllm:n_init=4,n_local=1020", fam, sizeof fam, &b);
    assert_float_equal(b, 1024, 0);
    scb_plot_spec_budget(NULL, "retr_attn:top_k=100", fam, sizeof fam, &b);
    assert_float_equal(b, 100, 0);
    scb_plot_spec_budget(NULL, "kivi:bits=4", fam, sizeof fam, &b);
    assert_float_equal(b, 0, 0);
    /* the run configuration (resolved options) wins over the spec text */
    scb_plot_spec_budget("{\"methods\":[{\"spec\":\"snapkv\",\"prefill\":{\"name\":\"dense\",\"options\":{}},"
                         "\"kv\":{\"name\":\"snapkv\",\"options\":{\"budget\":4096,\"window\":32}}}]}",
                         "snapkv", fam, sizeof fam, &b);
    assert_float_equal(b, 4096, 0);
    struct scb_buf s = {0};
    assert_int_equal(scb_plot_gp_string(&s, "a'b\nc`d"), SCB_OK);
    assert_string_equal(s.data, "'a''b c`d'");
    scb_buf_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_type7),
        cmocka_unit_test(test_bootstrap_all_equal),
        cmocka_unit_test(test_bootstrap_two_valued),
        cmocka_unit_test(test_scores_match_rows_and_views),
        cmocka_unit_test(test_paired_constant_shift),
        cmocka_unit_test(test_report_cli),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_budget_parsing),
        cmocka_unit_test(test_plot),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
