/* cli_prompts.c — `scbench prompts`: the exact per-turn prompt strings SCBench builds for a
 * task's sessions, with their token counts, as JSONL (docs/tasks.md). It lends the task code
 * the model's chat template (harness/chat_template.h) and tokenizer (harness/tokenizer.h)
 * through the small interfaces of tasks/task.h and reads sessions with datasets/dataset.h.
 *
 * Output, one JSON object per line:
 *   multi-turn:    {"session", "turn", "task", "max_new_tokens", "prompt", "n_tokens",
 *                   "n_tokens_full", "ground_truth"[, "ids" (turn 0, with --ids)]}
 *   multi-request: {"session", "part": "context", "prompt", "n_tokens", "n_tokens_full"[, "ids"]}
 *                  then per query {"session", "turn", "part": "query", "task", ...as above}
 * n_tokens of the first prompt is after SCBench's middle truncation, n_tokens_full before.
 *
 * Wiring (integrator): add `{"prompts", "the exact per-turn prompts of a task as JSONL",
 * scb_cmd_prompts},` to commands[] in cli.c, `int scb_cmd_prompts(int argc, char **argv);` to
 * cli.h, and 'cli_prompts.c' to harness/meson.build once tokenizer.c, chat_template.c and
 * datasets/dataset.c are on main. */
#include "harness/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "datasets/dataset.h"
#include "harness/chat_template.h"
#include "harness/tokenizer.h"
#include "kernels/alloc.h"
#include "tasks/prompt.h"
#include "tasks/task.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scbench prompts --model DIR --data FILE --task T [options]\n\n"
            "Prints, per turn, the exact prompt string SCBench builds and its token count, as\n"
            "JSONL (one object per turn; in multi-request mode a context record first).\n\n"
            "  --model DIR               tokenizer.json + tokenizer_config.json (chat template)\n"
            "  --data FILE               SCBench file (scbench_<task>.jsonl[.gz])\n"
            "  --task T                  SCBench config name (scbench tasks lists them)\n"
            "  --mode M                  multi-turn (default) or multi-request\n"
            "  --session I               only session I (0-based row index)\n"
            "  --no-chat-template        raw templates, as SCBench without --use_chat_template\n"
            "  --disable-golden-context  follow-ups without the gold previous answer\n"
            "  --max-seq-length N        context window for the truncation budget (131072; -1 = 160000)\n"
            "  --max-turns N             keep the first N turns (5; 0 = all), decided on session 0\n"
            "  --ids                     also print the first prompt's token ids (after truncation)\n"
            "  --time UNIX               date the chat template's strftime_now sees (default: now)\n"
            "  -h, --help\n");
}

struct adapters {
    const struct scb_chat_template *tmpl;
    const struct scb_tokenizer *tok;
};

static int render_fn(void *user, const struct scb_chat_msg *msgs, size_t n, int gen, char **out,
                     struct scb_ctx *ctx)
{
    const struct adapters *a = user;
    return scb_chat_template_render(a->tmpl, msgs, n, gen, out, ctx);
}

static int encode_fn(void *user, const char *text, size_t len, int add_special, int32_t **ids, size_t *n,
                     struct scb_ctx *ctx)
{
    const struct adapters *a = user;
    return scb_tokenizer_encode(a->tok, text, len, add_special ? SCB_TOK_ADD_SPECIAL : 0, ids, n, ctx);
}

static int add_ids(cJSON *o, const int32_t *ids, size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "ids");
    if (!arr) return SCB_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *v = cJSON_CreateNumber((double)ids[i]);
        if (!v) return SCB_E_NOMEM;
        cJSON_AddItemToArray(arr, v);
    }
    return SCB_OK;
}

static int print_obj(cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    if (!txt) return SCB_E_NOMEM;
    fputs(txt, stdout);
    fputc('\n', stdout);
    cJSON_free(txt);
    return SCB_OK;
}

static int emit_plan(const struct scb_turn_plan *p, long session, int with_ids)
{
    int rc = SCB_OK;
    cJSON *o = NULL;
    int mr = p->opts.mode == SCB_MODE_MULTI_REQUEST;
    if (mr) {
        o = cJSON_CreateObject();
        if (!o || !cJSON_AddNumberToObject(o, "session", (double)session) ||
            !cJSON_AddStringToObject(o, "part", "context") ||
            !cJSON_AddStringToObject(o, "prompt", p->context_prompt) ||
            !cJSON_AddNumberToObject(o, "n_tokens", (double)p->n_context_ids) ||
            !cJSON_AddNumberToObject(o, "n_tokens_full", (double)p->n_context_ids_full)) {
            rc = SCB_E_NOMEM;
            goto out;
        }
        if (with_ids) SCB_TRY(add_ids(o, p->context_ids, p->n_context_ids));
        SCB_TRY(print_obj(o));
        cJSON_Delete(o);
        o = NULL;
    }
    for (size_t i = 0; i < p->n_turns; i++) {
        const struct scb_plan_turn *t = &p->turns[i];
        o = cJSON_CreateObject();
        if (!o || !cJSON_AddNumberToObject(o, "session", (double)session) ||
            !cJSON_AddNumberToObject(o, "turn", (double)i) ||
            (mr && !cJSON_AddStringToObject(o, "part", "query")) ||
            !cJSON_AddStringToObject(o, "task", t->subtask) ||
            !cJSON_AddNumberToObject(o, "max_new_tokens", t->max_new_tokens) ||
            !cJSON_AddStringToObject(o, "prompt", t->prompt) ||
            !cJSON_AddNumberToObject(o, "n_tokens", (double)t->n_ids) ||
            !cJSON_AddNumberToObject(o, "n_tokens_full", (double)t->n_ids_full)) {
            rc = SCB_E_NOMEM;
            goto out;
        }
        cJSON *gt = cJSON_Duplicate(t->ground_truth, 1);
        if (!gt) { rc = SCB_E_NOMEM; goto out; }
        cJSON_AddItemToObject(o, "ground_truth", gt);
        if (with_ids && !mr && i == 0) SCB_TRY(add_ids(o, t->ids, t->n_ids));
        SCB_TRY(print_obj(o));
        cJSON_Delete(o);
        o = NULL;
    }
out:
    cJSON_Delete(o);
    return rc;
}

int scb_cmd_prompts(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"data", required_argument, NULL, 'd'},
        {"task", required_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'M'},
        {"session", required_argument, NULL, 's'},
        {"no-chat-template", no_argument, NULL, 'C'},
        {"disable-golden-context", no_argument, NULL, 'G'},
        {"max-seq-length", required_argument, NULL, 'L'},
        {"max-turns", required_argument, NULL, 'T'},
        {"ids", no_argument, NULL, 'i'},
        {"time", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *cmd = "prompts", *model = NULL, *data = NULL, *task_name = NULL;
    long session = -1, max_turns = 5, max_seq = 131072, unix_time = 0;
    int with_ids = 0, c;
    struct scb_prompt_opts opts;
    scb_prompt_opts_default(&opts);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': data = optarg; break;
        case 't': task_name = optarg; break;
        case 'M':
            if (!strcmp(optarg, "multi-turn")) opts.mode = SCB_MODE_MULTI_TURN;
            else if (!strcmp(optarg, "multi-request")) opts.mode = SCB_MODE_MULTI_REQUEST;
            else return scb_cli_usage_error(cmd, "--mode is multi-turn or multi-request, got '%s'", optarg);
            break;
        case 's': if (scb_cli_parse_long(cmd, "--session", optarg, 0, 1L << 40, &session)) return 2; break;
        case 'C': opts.use_chat_template = 0; break;
        case 'G': opts.golden_context = 0; break;
        case 'L': if (scb_cli_parse_long(cmd, "--max-seq-length", optarg, -1, 1L << 40, &max_seq)) return 2; break;
        case 'T': if (scb_cli_parse_long(cmd, "--max-turns", optarg, -1, 1L << 20, &max_turns)) return 2; break;
        case 'i': with_ids = 1; break;
        case 'D': if (scb_cli_parse_long(cmd, "--time", optarg, 0, 1L << 40, &unix_time)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model || !data || !task_name) return scb_cli_usage_error(cmd, "--model, --data and --task are required");
    if (max_seq == 0) return scb_cli_usage_error(cmd, "--max-seq-length must be positive or -1");
    opts.max_seq_length = max_seq;
    const struct scb_task_ops *task = scb_task_find(task_name);
    if (!task) return scb_cli_usage_error(cmd, "unknown task '%s' (scbench tasks lists them)", task_name);

    int rc = SCB_OK;
    struct scb_ctx ctx = {0};
    struct scb_tokenizer *tok = NULL;
    struct scb_chat_template *tmpl = NULL;
    struct scb_dataset *ds = NULL;
    struct scb_session s;
    struct scb_turn_plan plan;
    memset(&s, 0, sizeof s);
    memset(&plan, 0, sizeof plan);
    SCB_TRY(scb_tokenizer_load(&tok, model, &ctx));
    if (opts.use_chat_template) {
        SCB_TRY(scb_chat_template_load(&tmpl, model, &ctx));
        if (unix_time) scb_chat_template_set_time(tmpl, unix_time);
    }
    struct adapters ad = {tmpl, tok};
    struct scb_chat_renderer rend = {render_fn, &ad};
    struct scb_token_encoder enc = {encode_fn, &ad};
    SCB_TRY(scb_dataset_open(&ds, data, &ctx));
    int first = 1, found = 0;
    long n_sessions = 0;
    for (;;) {
        int got = scb_dataset_next(ds, &s, &ctx);
        if (got < 0) { rc = got; goto out; }
        if (got == 0) break;
        if (first) {  /* SCBench decides the turn count on the first example (§3.3) */
            scb_prompt_opts_set_turns(&opts, s.n_turns, max_turns);
            first = 0;
        }
        long index = s.index;
        n_sessions = index + 1;
        if (session < 0 || index == session) {
            found = 1;
            rc = scb_prompt_plan_build(&plan, task, &s, &opts, opts.use_chat_template ? &rend : NULL, &enc, &ctx);
            if (rc < 0) { scb_err_prefix(&ctx, "%s: ", data); goto out; }
            rc = emit_plan(&plan, s.index, with_ids);
            if (rc < 0) { scb_err(&ctx, rc, "writing the output"); goto out; }
            scb_prompt_plan_fini(&plan);
        }
        scb_session_fini(&s);
        if (session >= 0 && index >= session) break;
    }
    if (!found) {
        rc = scb_err(&ctx, SCB_E_INVAL, "%s: no session %ld (the file has %ld)", data, session, n_sessions);
        goto out;
    }
    if (fflush(stdout) != 0) rc = scb_err(&ctx, SCB_E_IO, "writing stdout failed");
out:
    scb_prompt_plan_fini(&plan);
    scb_session_fini(&s);
    scb_dataset_close(ds);
    scb_chat_template_destroy(tmpl);
    scb_tokenizer_destroy(tok);
    return rc < 0 ? scb_cli_fail(cmd, &ctx) : 0;
}
