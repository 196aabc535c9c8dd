/* cli_run.c — `scbench run`: the benchmark (harness/driver.h) and its closing results table,
 * read back from the database's task_scores view. Ctrl-C stops after the current session;
 * rerunning the same command resumes. */
#include "harness/cli.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness/driver.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "results/db.h"
#include "scb_config.h"
#include "tasks/scorers.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench run [options]\n"
        "\n"
        "Runs SCBench: every task x mode x method x session, scores every turn and records it in\n"
        "the SQLite database. Rerunning the same command resumes where it stopped.\n"
        "\n"
        "  --model DIR          Hugging Face model directory (default: $SCBENCH_MODEL, else the\n"
        "                       built-in model when present)\n"
        "  --data DIR|FILE|synthetic\n"
        "                       released SCBench files (scbench_<task>.jsonl[.gz]) or sessions\n"
        "                       generated on the fly (default: synthetic)\n"
        "  --tasks LIST         comma-separated task names (default: all available; synthetic:\n"
        "                       kv,prefix_suffix,vt,mf,passkey)\n"
        "  --mode M             multi-turn | multi-request | both (default: both)\n"
        "  --methods LIST       method specs separated by ';' or ',' between specs, e.g.\n"
        "                       'dense;snapkv:budget=1024' (default: dense); see scbench methods\n"
        "  --db FILE            results database (default: scbench.db)\n"
        "  --max-seq-len N      SCBench --max_seq_length (default 131072)\n"
        "  --max-turns N        SCBench --max_turns (default 5)\n"
        "  --sessions N         sessions per task (default: all; synthetic: 5)\n"
        "  --synth-tokens N     synthetic context length in model tokens (default 4096)\n"
        "  --seed S             synthetic data seed (default 1)\n"
        "  --no-golden          keep the model's own answers (SCBench --disable_golden_context)\n"
        "  --no-chat-template   prompts without the chat template (SCBench without --use_chat_template)\n"
        "  --scorer V           faithful (SCBench's released code, default) | intended\n"
        "  --threads N          CPU threads (default: all cores)\n"
        "  --backend B          cpu or cuda (default: cuda when this build has CUDA and a GPU is\n"
        "                       present); every method but cacheblend runs on CUDA\n"
        "  --new-run            start a new run even if the same configuration exists\n"
        "  --quiet              no progress line\n");
}

/* Split a method list: specs are separated by ';', or by ',' where the next piece does not look
 * like an option (key=value) of the previous spec. */
static int split_methods(const char *arg, char ***out, size_t *n)
{
    char *copy = scb_strdup(arg);
    char **v = scb_calloc(strlen(arg) + 1, sizeof *v);
    size_t k = 0;
    if (!copy || !v) { scb_free(copy); scb_free(v); return -1; }
    char *cur = NULL;
    struct scb_buf b = {0};
    for (char *tok = strtok(copy, ";,"); tok; tok = strtok(NULL, ";,")) {
        while (*tok == ' ') tok++;
        int is_opt = strchr(tok, '=') && !strchr(tok, ':') && !strchr(tok, '+') && cur;
        if (is_opt) {
            scb_buf_putc(&b, ',');
            scb_buf_puts(&b, tok);
            continue;
        }
        if (cur || b.len) v[k++] = scb_buf_steal(&b);
        cur = tok;
        scb_buf_puts(&b, tok);
    }
    if (b.len) v[k++] = scb_buf_steal(&b);
    scb_buf_fini(&b);
    scb_free(copy);
    *out = v;
    *n = k;
    return 0;
}

static void split_list(char *s, const char **v, size_t *n, size_t cap)
{
    *n = 0;
    for (char *t = strtok(s, ","); t && *n < cap; t = strtok(NULL, ",")) v[(*n)++] = t;
}

static void print_table(const char *db_path, int64_t run_id)
{
    struct scb_db *db = NULL;
    struct scb_ctx c = {0};
    if (scb_db_open(&db, db_path, SCB_DB_READONLY, &c)) {
        fprintf(stderr, "scbench run: cannot read back results: %s\n", scb_errmsg(&c));
        return;
    }
    sqlite3_stmt *st = NULL;
    int w = 6;   /* method column: as wide as the longest method spec of the run */
    if (scb_db_prepare(db, "SELECT MAX(LENGTH(method)) FROM task_scores WHERE run_id = ?1", &st, &c) == SCB_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) > w) w = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    const char *sql =
        "SELECT method, mode, task, score, n FROM task_scores WHERE run_id = ?1 "
        "ORDER BY method, mode, task";
    if (scb_db_prepare(db, sql, &st, &c) == SCB_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        printf("\n%-*s %-14s %-30s %8s %6s\n", w, "method", "mode", "task", "score", "turns");
        while (sqlite3_step(st) == SQLITE_ROW) {
            printf("%-*s %-14s %-30s %8.1f %6d\n", w, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                   sqlite3_column_double(st, 3), sqlite3_column_int(st, 4));
        }
        sqlite3_finalize(st);
    }
    sql = "SELECT method, mode, score, avg_tasks FROM mode_scores WHERE run_id = ?1 ORDER BY method, mode";
    if (scb_db_prepare(db, sql, &st, &c) == SCB_OK) {
        sqlite3_bind_int64(st, 1, run_id);
        printf("\n%-*s %-14s %14s %14s\n", w, "method", "mode", "avg(category)", "avg(tasks)");
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("%-*s %-14s %14.1f %14.1f\n", w, (const char *)sqlite3_column_text(st, 0),
                   (const char *)sqlite3_column_text(st, 1), sqlite3_column_double(st, 2),
                   sqlite3_column_double(st, 3));
        sqlite3_finalize(st);
    }
    scb_db_close(db);
}

int scb_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"tasks", required_argument, 0, 't'}, {"mode", required_argument, 0, 'M'},
        {"methods", required_argument, 0, 'x'}, {"db", required_argument, 0, 'b'},
        {"max-seq-len", required_argument, 0, 'L'}, {"max-turns", required_argument, 0, 'T'},
        {"sessions", required_argument, 0, 'n'}, {"synth-tokens", required_argument, 0, 'k'},
        {"seed", required_argument, 0, 's'}, {"no-golden", no_argument, 0, 'G'},
        {"no-chat-template", no_argument, 0, 'C'}, {"scorer", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 'j'}, {"new-run", no_argument, 0, 'N'},
        {"backend", required_argument, 0, 'B'},
        {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct scb_run_opts o;
    scb_run_opts_default(&o);
    o.progress = isatty(2);
    const char *tasks[64];
    size_t n_tasks = 0;
    char *tasks_arg = NULL;
    char **methods = NULL;
    size_t n_methods = 0;
    long v;
    int c, status = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case 'd': o.data = optarg; break;
        case 't': scb_free(tasks_arg); tasks_arg = scb_strdup(optarg); break;
        case 'M':
            if (!strcmp(optarg, "multi-turn") || !strcmp(optarg, "multi_turn")) o.modes = SCB_RUN_MULTI_TURN;
            else if (!strcmp(optarg, "multi-request") || !strcmp(optarg, "multi_request") || !strcmp(optarg, "scdq"))
                o.modes = SCB_RUN_MULTI_REQUEST;
            else if (!strcmp(optarg, "both")) o.modes = SCB_RUN_MULTI_TURN | SCB_RUN_MULTI_REQUEST;
            else { status = scb_cli_usage_error("run", "--mode must be multi-turn, multi-request or both, got '%s'", optarg); goto out; }
            break;
        case 'x':
            if (methods) { for (size_t i = 0; i < n_methods; i++) scb_free(methods[i]); scb_free(methods); }
            if (split_methods(optarg, &methods, &n_methods)) { fprintf(stderr, "scbench run: out of memory\n"); status = 1; goto out; }
            break;
        case 'b': o.db_path = optarg; break;
        case 'L': if ((status = scb_cli_parse_long("run", "--max-seq-len", optarg, 16, 1L << 30, &o.max_seq_len))) goto out; break;
        case 'T': if ((status = scb_cli_parse_long("run", "--max-turns", optarg, 1, 1000, &o.max_turns))) goto out; break;
        case 'n': if ((status = scb_cli_parse_long("run", "--sessions", optarg, 1, 1L << 30, &o.sessions))) goto out; break;
        case 'k': if ((status = scb_cli_parse_long("run", "--synth-tokens", optarg, 64, 1L << 24, &o.synth_tokens))) goto out; break;
        case 's': if ((status = scb_cli_parse_long("run", "--seed", optarg, 0, 0x7fffffffL, &v))) goto out; o.seed = (uint64_t)v; break;
        case 'G': o.golden = 0; break;
        case 'C': o.chat_template = 0; break;
        case 'S':
            if (!strcmp(optarg, "faithful")) o.variant = SCB_SCORE_FAITHFUL;
            else if (!strcmp(optarg, "intended")) o.variant = SCB_SCORE_INTENDED;
            else { status = scb_cli_usage_error("run", "--scorer must be faithful or intended, got '%s'", optarg); goto out; }
            break;
        case 'B':
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda") && strcmp(optarg, "auto")) {
                status = scb_cli_usage_error("run", "--backend: expected cpu or cuda, got '%s'", optarg);
                goto out;
            }
            o.backend = optarg;
            break;
        case 'j': if ((status = scb_cli_parse_long("run", "--threads", optarg, 0, 1024, &v))) goto out; o.threads = (int)v; break;
        case 'N': o.force_new = 1; break;
        case 'q': o.progress = 0; break;
        case 'h': usage(stdout); goto out;
        default: status = 2; goto out;
        }
    }
    if (optind < argc) { status = scb_cli_usage_error("run", "unexpected argument '%s'", argv[optind]); goto out; }
    if (!o.model_dir) o.model_dir = getenv("SCBENCH_MODEL");
    if (!o.model_dir && scb_file_exists(SCB_BUILTIN_MODEL_DIR "/config.json")) o.model_dir = SCB_BUILTIN_MODEL_DIR;
    if (!o.model_dir) { status = scb_cli_usage_error("run", "no model: give --model DIR (or set SCBENCH_MODEL)"); goto out; }
    if (tasks_arg) split_list(tasks_arg, tasks, &n_tasks, 64);
    o.tasks = tasks;
    o.n_tasks = n_tasks;
    o.methods = (const char *const *)methods;
    o.n_methods = n_methods;
    g_stop = 0;
    o.stop = &g_stop;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct scb_ctx ctx = {0};
    struct scb_run_summary sum;
    double t0 = scb_now_ms();
    int rc = scb_driver_run(&o, &sum, &ctx);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == SCB_E_INTERRUPTED) {
        fprintf(stderr, "scbench run: interrupted; %ld sessions recorded in %s (run %lld); rerun the same command to resume\n",
                sum.sessions_done, o.db_path, (long long)sum.run_id);
        status = 130;
        goto out;
    }
    if (rc) { status = scb_cli_fail("run", &ctx); goto out; }
    print_table(o.db_path, sum.run_id);
    printf("\nrun %lld%s: %ld sessions run, %ld already recorded, %ld turns, %.1f s\n",
           (long long)sum.run_id, sum.resumed ? " (resumed)" : "", sum.sessions_done,
           sum.sessions_skipped, sum.turns_done, (scb_now_ms() - t0) / 1000.0);
    printf("database: %s\n", o.db_path);
out:
    scb_free(tasks_arg);
    if (methods) { for (size_t i = 0; i < n_methods; i++) scb_free(methods[i]); scb_free(methods); }
    return status;
}
