/* cli.c — subcommand table and shared CLI helpers (see cli.h). */
#include "harness/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scb_config.h"

static int cmd_version(int argc, char **argv)
{
    (void)argc; (void)argv;
    printf("scbench %s (%s) %s cuda=%d\n", SCB_VERSION, SCB_GIT_REV, SCB_BUILD_OPTIONS, SCB_HAVE_CUDA);
    return 0;
}

static const struct scb_cli_command commands[] = {
    /* {name, summary, function}: one line per command, in the order a user meets them. */
    {"run", "run the benchmark: tasks x modes x methods x sessions, recorded in SQLite", scb_cmd_run},
    {"report", "tables of a run: accuracy per category/task/turn with confidence intervals, costs", scb_cmd_report},
    {"plot", "gnuplot figures (PNG, SVG) of a run: accuracy by turn, budget, KV bytes, latency, bench", scb_cmd_plot},
    {"compare", "regression verdict of a candidate run against a baseline run (exit 1 on regression)", scb_cmd_compare},
    {"export", "export a run of the results database as SCBench prediction files or CSV", scb_cmd_export},
    {"search-patterns", "MInference's offline per-head pattern search on SCBench sessions -> JSON config", scb_cmd_search_patterns},
    {"generate", "greedy continuation of a prompt or token ids under a method, with timings and costs", scb_cmd_generate},
    {"tokenize", "text -> token ids with a model's tokenizer.json (or ids -> text)", scb_cmd_tokenize},
    {"chat-template", "render messages through a model's own chat template", scb_cmd_chat_template},
    {"forward", "token ids -> float32 logits of every position (T x V) in a file", scb_cmd_forward},
    {"prompts", "the exact per-turn prompts and token counts of a task/session/mode as JSONL", scb_cmd_prompts},
    {"score", "score an SCBench prediction JSONL file (ours or the Python original's)", scb_cmd_score},
    {"data", "check SCBench data files; make synthetic SCBench-format sessions (synth)", scb_cmd_data},
    {"tasks", "list the 12 SCBench tasks: category, max new tokens, scorer", scb_cmd_tasks},
    {"methods", "list long-context methods, their stages and options; resolve a method spec", scb_cmd_methods},
    {"bench", "speed: `bench cpu|cuda` prefill and decode tokens/s, matmul rate against the peak", scb_cmd_bench},
    {"version", "print the version and build options", cmd_version},
};

static void print_help(FILE *f)
{
    fprintf(f, "scbench %s (%s) — SCBench, the KV-cache-centric long-context benchmark, in C\n\n",
            SCB_VERSION, SCB_GIT_REV);
    fprintf(f, "usage: scbench <command> [options]   (scbench <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int scb_cli_main(int argc, char **argv)
{
    if (argc < 2) { print_help(stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help")) { print_help(stdout); return 0; }
    if (!strcmp(c, "--version")) { printf("scbench %s (%s)\n", SCB_VERSION, SCB_GIT_REV); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(c, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "scbench: unknown command '%s'; commands are:", c);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) fprintf(stderr, " %s", commands[i].name);
    fprintf(stderr, "\n");
    return 2;
}

int scb_cli_fail(const char *cmd, const struct scb_ctx *ctx)
{
    fprintf(stderr, "scbench %s: %s\n", cmd, scb_errmsg(ctx));
    return 1;
}

int scb_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "scbench %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see scbench %s --help)\n", cmd);
    return 2;
}

int scb_cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi)
        return scb_cli_usage_error(cmd, "%s expects an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
    *out = v;
    return 0;
}

int scb_cli_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || *end || end == s)
        return scb_cli_usage_error(cmd, "%s expects a number, got '%s'", opt, s);
    *out = v;
    return 0;
}

int scb_cli_parse_runs(const char *cmd, const char *arg, int64_t *runs, size_t *n, size_t cap)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (*n >= cap) return scb_cli_usage_error(cmd, "too many --run values (at most %zu)", cap);
        if (scb_cli_parse_long(cmd, "--run", tok, 1, 0x7fffffffL, &v)) return 2;
        runs[(*n)++] = v;
    }
    return 0;
}
