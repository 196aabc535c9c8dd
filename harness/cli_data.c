/* cli_data.c — `scbench data check FILE...` (validate SCBench data files, naming every
 * problem's line and field, with a summary) and `scbench data synth` (seeded SCBench-format
 * synthetic sessions of a target length in a model's tokens). See docs/data.md. */
#include "harness/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "datasets/check.h"
#include "datasets/dataset.h"
#include "datasets/synth.h"
#include "harness/tokenizer.h"
#include "kernels/alloc.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench data check [--task T] FILE...\n"
        "       scbench data synth --task T --tokens N --sessions K --seed S [--model DIR|none]\n"
        "                          [--turns 5] [--out FILE]\n"
        "\n"
        "check   read every line of SCBench JSONL files (.jsonl or .jsonl.gz), report each problem as\n"
        "        FILE:LINE: field 'F' what (all of them, not just the first), then a summary (sessions,\n"
        "        turns, fields seen, min/mean/max context characters). Task-aware checks run when the\n"
        "        file name is scbench_<task>.jsonl[.gz] or --task names the task. Exit 1 on any problem.\n"
        "synth   write K synthetic sessions (one JSON object per line, the released schema) of task T:\n"
        "        scbench_kv, scbench_prefix_suffix, scbench_vt, scbench_mf, scbench_passkey. Each context\n"
        "        has at most N tokens of --model DIR's tokenizer (and about N: within one filler item).\n"
        "        --model none (the default) counts whitespace-separated words instead (approximate).\n"
        "        Same options and seed -> same bytes. --turns: turns per session (default 5; mf <= 5).\n"
        "        --out: output file (default stdout); a name ending in .gz is written gzip-compressed.\n");
}

static void print_issue(void *user, const char *file, long line, const char *field, const char *msg)
{
    FILE *f = user;
    if (line < 0) fprintf(f, "%s: %s\n", file, msg);
    else if (field && *field) fprintf(f, "%s:%ld: field '%s' %s\n", file, line, field, msg);
    else fprintf(f, "%s:%ld: %s\n", file, line, msg);
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"task", required_argument, 0, 't'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *task = NULL;
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 'h') { usage(stdout); return 0; }
        if (c == 't') task = optarg;
        else return scb_cli_usage_error("data check", "unknown option");
    }
    if (optind >= argc) return scb_cli_usage_error("data check", "no FILE given");
    for (int i = optind; i < argc; i++) {
        struct scb_ctx ctx = {0};
        struct scb_check_summary s;
        int rc = scb_check_file(argv[i], task, print_issue, stdout, &s, &ctx);
        if (rc < 0) { scb_cli_fail("data check", &ctx); bad = 1; continue; }
        printf("%s: task %s, %ld sessions, %ld turns, %ld bad lines, %ld problems\n", argv[i],
               *s.task ? s.task : "(unknown: only generic checks)", s.sessions, s.turns, s.lines_bad,
               s.problems);
        printf("  context: %ld strings, %ld integer lists; characters min %zu mean %.1f max %zu\n",
               s.context_str, s.context_ints, s.sessions ? s.ctx_chars_min : 0,
               s.sessions ? s.ctx_chars_sum / (double)s.sessions : 0.0, s.ctx_chars_max);
        printf("  sessions with: id %ld, lang %ld, repo %ld, task %ld; turns with: options %ld, task %ld, "
               "name %ld\n", s.has_id, s.has_lang, s.has_repo, s.has_task, s.turn_options, s.turn_task,
               s.turn_name);
        printf("  answers: %ld strings, %ld numbers, %ld lists\n", s.answer_str, s.answer_num, s.answer_list);
        if (s.problems) bad = 1;
    }
    return bad ? 1 : 0;
}

struct tok_counter { struct scb_tokenizer *tok; struct scb_ctx *ctx; };

/* Plain text, no special tokens added: the context's own tokens. */
static int tok_count(void *user, const char *text, size_t len, size_t *n)
{
    struct tok_counter *tc = user;
    return scb_tokenizer_count(tc->tok, text, len, 0, n, tc->ctx);
}

static int cmd_synth(int argc, char **argv)
{
    static const struct option opts[] = {
        {"task", required_argument, 0, 't'}, {"tokens", required_argument, 0, 'n'},
        {"sessions", required_argument, 0, 'k'}, {"seed", required_argument, 0, 's'},
        {"model", required_argument, 0, 'm'}, {"turns", required_argument, 0, 'r'},
        {"out", required_argument, 0, 'o'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *task = NULL, *model = NULL, *out_path = NULL;
    long tokens = -1, sessions = -1, seed = -1, turns = 5;
    int c, rc;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:n:k:s:m:r:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 't': task = optarg; break;
        case 'n': if ((rc = scb_cli_parse_long("data synth", "--tokens", optarg, 1, 100000000L, &tokens))) return rc; break;
        case 'k': if ((rc = scb_cli_parse_long("data synth", "--sessions", optarg, 1, 1000000L, &sessions))) return rc; break;
        case 's': if ((rc = scb_cli_parse_long("data synth", "--seed", optarg, 0, 0x7fffffffffffffffL, &seed))) return rc; break;
        case 'm': model = optarg; break;
        case 'r': if ((rc = scb_cli_parse_long("data synth", "--turns", optarg, 1, 100, &turns))) return rc; break;
        case 'o': out_path = optarg; break;
        default: return scb_cli_usage_error("data synth", "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error("data synth", "unexpected argument '%s'", argv[optind]);
    if (!task) return scb_cli_usage_error("data synth", "--task is required");
    if (tokens < 0) return scb_cli_usage_error("data synth", "--tokens is required");
    if (sessions < 0) return scb_cli_usage_error("data synth", "--sessions is required");
    if (seed < 0) return scb_cli_usage_error("data synth", "--seed is required");

    struct scb_ctx ctx = {0};
    struct scb_synth_opts o = {0};
    struct scb_tokenizer *tok = NULL;
    struct scb_token_counter tc = {scb_synth_count_words, NULL};
    struct tok_counter tcu = {NULL, &ctx};
    int status = 0;
    if (scb_synth_task_parse(task, &o.task, &ctx) < 0)
        return scb_cli_usage_error("data synth", "%s", scb_errmsg(&ctx));
    o.target_tokens = (size_t)tokens;
    o.n_turns = (size_t)turns;
    o.seed = (uint64_t)seed;
    if (model && strcmp(model, "none")) {
        if (scb_tokenizer_load(&tok, model, &ctx) < 0) { status = scb_cli_fail("data synth", &ctx); goto out; }
        tcu.tok = tok;
        tc.count = tok_count;
        tc.user = &tcu;
    } else {
        fprintf(stderr, "scbench data synth: no --model: lengths are whitespace-separated words (approximate)\n");
    }
    if (out_path) {
        if (scb_synth_write_file(&o, sessions, &tc, out_path, &ctx) < 0) {
            status = scb_cli_fail("data synth", &ctx);
            goto out;
        }
        fprintf(stderr, "scbench data synth: wrote %ld %s sessions (seed %ld, <= %ld tokens each) to %s\n",
                sessions, scb_synth_task_name(o.task), seed, tokens, out_path);
    } else if (scb_synth_write(&o, sessions, &tc, stdout, &ctx) < 0) {
        status = scb_cli_fail("data synth", &ctx);
    }
out:
    scb_tokenizer_destroy(tok);
    return status;
}

int scb_cmd_data(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) { usage(stdout); return 0; }
    if (!strcmp(sub, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(sub, "synth")) return cmd_synth(argc - 1, argv + 1);
    return scb_cli_usage_error("data", "unknown subcommand '%s' (check, synth)", sub);
}
