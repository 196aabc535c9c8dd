/* cli_score.c — `scbench score`: scores an SCBench prediction JSONL file (ours or the Python
 * original's) as scbench/compute_scores.py does and prints one JSON object. Developer modes
 * (--rouge-pairs, --bleu-pairs, --repoqa-sanitize) score many JSONL pairs in one process for the
 * parity tests against rouge_score, NLTK and tree-sitter. */
#include "harness/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "tasks/bleu.h"
#include "tasks/repoqa.h"
#include "tasks/rouge.h"
#include "tasks/scorers.h"

static const char *CMD = "score";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench score --task TASK --predictions FILE [--mode multi-turn|multi-request]\n"
        "                     [--variant faithful|intended] [--per-record]\n"
        "\n"
        "Scores an SCBench prediction JSONL file (one record per turn: id, turn_idx, prediction,\n"
        "ground_truth, and task / lang / repo / func_name where the task has them) exactly as\n"
        "SCBench's compute_scores.py does, and prints one JSON object:\n"
        "  score      the task score in percent, 3 decimals as SCBench prints it (Mix tasks: a list\n"
        "             of two, [summary, passkey] or [repoqa, kv]); multi-turn: the mean of the\n"
        "             per-turn scores; multi-request: all records pooled (SCBench's scdq number)\n"
        "  per_turn   the score of each turn (Mix tasks: pairs; a turn without a sub-task shows 0,\n"
        "             as SCBench's summary line does), with the turn indices in \"turns\"\n"
        "  summary    the value string SCBench appends to its <tag>_summary.txt line\n"
        "  n, mode, variant, task, category, and \"exact\" (unrounded fractions)\n"
        "\n"
        "options:\n"
        "  --task TASK           SCBench config name (scbench_kv, scbench_summary_with_needles, ...)\n"
        "  --predictions FILE    the prediction JSONL file\n"
        "  --mode MODE           multi-turn (default) or multi-request (SCBench's scdq mode)\n"
        "  --variant V           faithful (default: the released code, quirks included) or\n"
        "                        intended (quirks that change scores fixed; see docs/scoring.md)\n"
        "  --per-record          add \"records\": the score of every record (fraction), in file order\n"
        "  --help                this text\n"
        "\n"
        "developer modes (JSONL in, one result per line out):\n"
        "  --rouge-pairs FILE      {\"target\":..., \"prediction\":...} -> ROUGE-Lsum F (%%.17g)\n"
        "  --bleu-pairs FILE       {\"reference\":..., \"candidate\":...} -> SCBench's BLEU similarity\n"
        "  --repoqa-sanitize FILE  {\"prediction\":..., \"lang\":...} -> extracted code (JSON string)\n");
}

static void put_num(struct scb_buf *b, double x) { scb_buf_printf(b, "%.3f", x * 100.0); }

static void put_json_str(struct scb_buf *b, const char *s)
{
    char *e = NULL;
    cJSON *j = cJSON_CreateString(s);
    if (j) e = cJSON_PrintUnformatted(j);
    scb_buf_puts(b, e ? e : "\"\"");
    if (e) cJSON_free(e);
    cJSON_Delete(j);
}

static int dev_pairs(const char *path, int kind)
{
    struct scb_ctx ctx = {0};
    char *text = NULL;
    size_t len;
    int rc = scb_file_read(path, &text, &len, &ctx);
    if (rc < 0) return scb_cli_fail(CMD, &ctx);
    long line = 0;
    char *p = text;
    int status = 0;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        if (*p) {
            cJSON *o = cJSON_Parse(p);
            static const char *const k1[] = {"target", "reference", "prediction"};
            static const char *const k2[] = {"prediction", "candidate", "lang"};
            const cJSON *a = o ? cJSON_GetObjectItemCaseSensitive(o, k1[kind]) : NULL;
            const cJSON *c = o ? cJSON_GetObjectItemCaseSensitive(o, k2[kind]) : NULL;
            if (!cJSON_IsString(a) || !cJSON_IsString(c)) {
                fprintf(stderr, "scbench %s: %s:%ld: expected an object with string fields \"%s\" and \"%s\"\n",
                        CMD, path, line, k1[kind], k2[kind]);
                cJSON_Delete(o);
                status = 1;
                break;
            }
            if (kind == 0) {
                struct scb_rouge_score s;
                rc = scb_rouge_lsum(a->valuestring, c->valuestring, &s, &ctx);
                if (rc == 0) printf("%.17g\n", s.fmeasure);
            } else if (kind == 1) {
                double s;
                rc = scb_bleu_similarity(c->valuestring, a->valuestring, &s, &ctx);
                if (rc == 0) printf("%.17g\n", s);
            } else {
                struct scb_buf out = {0}, js = {0};
                rc = scb_repoqa_sanitize(a->valuestring, c->valuestring, &out, &ctx);
                if (rc == 0) { put_json_str(&js, out.data); printf("%s\n", js.data); }
                scb_buf_fini(&out);
                scb_buf_fini(&js);
            }
            cJSON_Delete(o);
            if (rc < 0) { scb_err_prefix(&ctx, "%s:%ld: ", path, line); status = scb_cli_fail(CMD, &ctx); break; }
        }
        if (!nl) break;
        p = nl + 1;
    }
    scb_free(text);
    return status;
}

int scb_cmd_score(int argc, char **argv)
{
    static const struct option opts[] = {
        {"task", required_argument, NULL, 't'},
        {"predictions", required_argument, NULL, 'p'},
        {"mode", required_argument, NULL, 'm'},
        {"variant", required_argument, NULL, 'v'},
        {"per-record", no_argument, NULL, 'r'},
        {"rouge-pairs", required_argument, NULL, 'R'},
        {"bleu-pairs", required_argument, NULL, 'B'},
        {"repoqa-sanitize", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *task = NULL, *path = NULL, *dev = NULL;
    int dev_kind = -1, per_record = 0;
    enum scb_score_mode mode = SCB_SCORE_MULTI_TURN;
    enum scb_score_variant variant = SCB_SCORE_FAITHFUL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': task = optarg; break;
        case 'p': path = optarg; break;
        case 'm':
            if (!strcmp(optarg, "multi-turn")) mode = SCB_SCORE_MULTI_TURN;
            else if (!strcmp(optarg, "multi-request") || !strcmp(optarg, "scdq")) mode = SCB_SCORE_MULTI_REQUEST;
            else return scb_cli_usage_error(CMD, "--mode must be multi-turn or multi-request, got '%s'", optarg);
            break;
        case 'v':
            if (!strcmp(optarg, "faithful")) variant = SCB_SCORE_FAITHFUL;
            else if (!strcmp(optarg, "intended")) variant = SCB_SCORE_INTENDED;
            else return scb_cli_usage_error(CMD, "--variant must be faithful or intended, got '%s'", optarg);
            break;
        case 'r': per_record = 1; break;
        case 'R': dev = optarg; dev_kind = 0; break;
        case 'B': dev = optarg; dev_kind = 1; break;
        case 'S': dev = optarg; dev_kind = 2; break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (dev) return dev_pairs(dev, dev_kind);
    if (!task) return scb_cli_usage_error(CMD, "--task is required");
    if (!path) return scb_cli_usage_error(CMD, "--predictions is required");
    if (!scb_score_task_find(task)) {
        size_t nt;
        const struct scb_score_task *all = scb_score_tasks(&nt);
        struct scb_buf names = {0};
        for (size_t i = 0; i < nt; i++) scb_buf_printf(&names, "%s%s", i ? ", " : "", all[i].name);
        int r = scb_cli_usage_error(CMD, "unknown task '%s' (tasks: %s)", task, names.data);
        scb_buf_fini(&names);
        return r;
    }

    struct scb_ctx ctx = {0};
    struct scb_pred_file pf = {0};
    struct scb_score_result res = {0};
    struct scb_buf o = {0};
    int status = 0;
    if (scb_pred_file_load(path, &pf, &ctx) < 0) { status = scb_cli_fail(CMD, &ctx); goto out; }
    if (scb_score_records(task, pf.recs, pf.n, mode, variant, &res, &ctx) < 0) {
        scb_err_prefix(&ctx, "%s: ", path);
        status = scb_cli_fail(CMD, &ctx);
        goto out;
    }
    const struct scb_score_task *t = res.task;
    scb_buf_puts(&o, "{\"task\": ");
    put_json_str(&o, t->name);
    scb_buf_puts(&o, ", \"category\": ");
    put_json_str(&o, scb_score_categories[t->category]);
    scb_buf_printf(&o, ", \"mode\": \"%s\", \"variant\": \"%s\", \"n\": %zu, \"score\": ",
                   scb_score_mode_name(mode), scb_score_variant_name(variant), res.n);
    if (t->mix) {
        scb_buf_puts(&o, "[");
        put_num(&o, res.overall[0]);
        scb_buf_puts(&o, ", ");
        put_num(&o, res.overall[1]);
        scb_buf_printf(&o, "], \"subtasks\": [\"%s\", \"%s\"]", t->sub[0], t->sub[1]);
    } else {
        put_num(&o, res.overall[0]);
    }
    scb_buf_puts(&o, ", \"turns\": [");
    for (size_t i = 0; i < res.n_turns; i++) scb_buf_printf(&o, "%s%ld", i ? ", " : "", res.turn_idx[i]);
    scb_buf_puts(&o, "], \"per_turn\": [");
    for (size_t i = 0; i < res.n_turns; i++) {
        if (i) scb_buf_puts(&o, ", ");
        if (t->mix) {
            scb_buf_puts(&o, "[");
            put_num(&o, res.turn[2 * i]);
            scb_buf_puts(&o, ", ");
            put_num(&o, res.turn[2 * i + 1]);
            scb_buf_puts(&o, "]");
        } else {
            put_num(&o, res.turn[2 * i]);
        }
    }
    /* SCBench's summary-file value string: per turn in order of first appearance in the file
     * (multi-turn) or the pooled value(s) (scdq), "%.3f" of x100, comma-separated */
    scb_buf_puts(&o, "], \"summary\": \"");
    if (mode == SCB_SCORE_MULTI_REQUEST) {
        put_num(&o, res.overall[0]);
        if (t->mix) { scb_buf_puts(&o, ","); put_num(&o, res.overall[1]); }
    } else {
        size_t emitted = 0;
        for (size_t i = 0; i < pf.n; i++) {
            size_t k;
            for (k = 0; k < i; k++)
                if (pf.recs[k].turn_idx == pf.recs[i].turn_idx) break;
            if (k < i) continue;   /* not the first record of its turn */
            size_t ti = 0;
            while (ti < res.n_turns && res.turn_idx[ti] != pf.recs[i].turn_idx) ti++;
            if (emitted++) scb_buf_puts(&o, ",");
            put_num(&o, res.turn[2 * ti]);
            if (t->mix) { scb_buf_puts(&o, ","); put_num(&o, res.turn[2 * ti + 1]); }
        }
    }
    scb_buf_puts(&o, "\", \"exact\": {\"overall\": [");
    int ns = t->mix ? 2 : 1;
    for (int s = 0; s < ns; s++) scb_buf_printf(&o, "%s%.17g", s ? ", " : "", res.overall[s]);
    scb_buf_puts(&o, "], \"pooled\": [");
    for (int s = 0; s < ns; s++) scb_buf_printf(&o, "%s%.17g", s ? ", " : "", res.pooled[s]);
    scb_buf_puts(&o, "], \"per_turn\": [");
    for (size_t i = 0; i < res.n_turns; i++) {
        scb_buf_puts(&o, i ? ", [" : "[");
        for (int s = 0; s < ns; s++) scb_buf_printf(&o, "%s%.17g", s ? ", " : "", res.turn[2 * i + (size_t)s]);
        scb_buf_puts(&o, "]");
    }
    scb_buf_puts(&o, "]}");
    if (per_record) {
        scb_buf_puts(&o, ", \"records\": [");
        for (size_t i = 0; i < pf.n; i++) {
            if (i) scb_buf_puts(&o, ", ");
            if (res.rec_slot[i] < 0) scb_buf_puts(&o, "null");
            else scb_buf_printf(&o, "%.17g", res.rec_score[i]);
        }
        scb_buf_puts(&o, "]");
    }
    scb_buf_puts(&o, "}\n");
    fputs(o.data, stdout);
out:
    scb_buf_fini(&o);
    scb_score_result_fini(&res);
    scb_pred_file_fini(&pf);
    return status;
}
