/* cli_search_patterns.c — `scbench search-patterns`: MInference's offline per-head pattern search
 * (spec/methods.md §2.8) on SCBench sessions. The model's first prefill of each sampled session
 * (prompts built as `scbench run` builds them, harness/prompt_io.h) runs DENSE; at every layer a
 * prefill hook scores, for every query head, each candidate pattern: recall of the dense
 * attention mass and FLOP density (methods/minference_search.h). Per head, the candidate of
 * highest mean recall within the density budget is written in MInference's JSON format, which
 * `minference:config=FILE` reads. */
#include "harness/cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/dataset.h"
#include "harness/model.h"
#include "harness/prompt_io.h"
#include "kernels/alloc.h"
#include "kernels/backend.h"
#include "kernels/kv_cache.h"
#include "kernels/util.h"
#include "methods/minference_search.h"
#include "tasks/task.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench search-patterns --model DIR --data FILE|DIR [--task T] [--sessions N]\n"
        "                               [--out FILE] [--budget F] [--vs LIST] [--stream LIST]\n"
        "                               [--block-topk LIST] [--score-from R] [--last-q N]\n"
        "                               [--mode multi-turn|multi-request] [--max-seq-len N]\n"
        "                               [--max-turns N] [--no-chat-template] [--threads N]\n"
        "\n"
        "MInference's offline pattern search: runs the model's first prefill (dense) on the first N\n"
        "sessions of a task, prompts built exactly as `scbench run` builds them, and for every layer\n"
        "and query head picks among the candidate patterns the one recovering the most dense\n"
        "attention mass (mean over rows >= R of the softmax mass inside the pattern's keys, the keys\n"
        "being those MInference's kernels compute) among the candidates whose density (fraction of\n"
        "the causal attention FLOPs) is <= the budget; if none fits, the cheapest. Writes the choice\n"
        "as MInference's JSON config ([type, vertical_size, slash_size, recall] per head), for\n"
        "--methods minference:config=FILE.\n"
        "\n"
        "  --model DIR         Hugging Face model directory (tokenizer and chat template included)\n"
        "  --data FILE|DIR     an SCBench .jsonl[.gz] file, or a folder with scbench_<task>.jsonl\n"
        "  --task T            task (required with a folder; default: from the file name)\n"
        "  --sessions N        sessions sampled, the first N of the file (default 1)\n"
        "  --out FILE          output JSON (default minference_patterns.json)\n"
        "  --budget F          most density a head may use, in (0, 1] (default 1: no limit beyond\n"
        "                      the candidate sizes, as MInference's own search)\n"
        "  --vs LIST           vertical_and_slash candidates v:s,... (default 30:800,100:750,500:700,\n"
        "                      3500:100, the sizes of §2.8; 'none' for no such candidate)\n"
        "  --stream LIST       stream_llm candidates n_init:n_local,... (default 100:800; 'none')\n"
        "  --block-topk LIST   block_sparse candidates: top-k 64-blocks per row block,... (default\n"
        "                      100, MInference's; 'none'). At inference the minference option\n"
        "                      block_topk decides the top-k: set it to the searched value.\n"
        "  --score-from R      rows scored: r >= R (default 2500, as MInference); a prompt of at most\n"
        "                      R tokens scores its last half\n"
        "  --last-q N          queries of the vertical_and_slash estimate (default 64)\n"
        "  --mode M            whose first prefill: multi-turn (turn 1's prompt, default) or\n"
        "                      multi-request (the shared context part)\n"
        "  --max-seq-len N     SCBench --max_seq_length (default 131072)\n"
        "  --max-turns N       SCBench --max_turns (default 5)\n"
        "  --no-chat-template  plain prompts (SCBench without --use_chat_template)\n"
        "  --threads N         CPU threads (default: all cores)\n");
}

struct search {
    int L, H, Hkv, D, n_cand;
    const struct scb_minf_pattern *cand;
    int score_from, last_q;
    double *rec, *den;            /* (L, H, n_cand) sums over sessions */
    struct scb_ctx *err;
};

static int search_prefill(struct scb_backend *be, void *user, const struct scb_backend_attn *a,
                          struct scb_ctx *ctx)
{
    struct search *s = user;
    int rc = be->ops->attn_prefill(be, NULL, a, ctx);       /* the model runs dense */
    if (rc) return rc;
    const int N = (int)a->T, G = (int)(a->H / a->Hkv);
    const int r0 = s->score_from < N ? s->score_from : N / 2;
    double *rec = scb_malloc(sizeof(double) * (size_t)s->n_cand), *den = scb_malloc(sizeof(double) * (size_t)s->n_cand);
    if (!rec || !den) { rc = scb_err(ctx, SCB_E_NOMEM, "search-patterns: out of memory"); goto out; }
    for (int h = 0; h < s->H; h++) {
        const float *q = a->q + (size_t)h * a->D;
        const float *k = scb_kv_cache_k(a->kv, a->layer, (size_t)(h / G));    /* (N, D) */
        SCB_TRY(scb_minf_search_head(q, a->H * a->D, k, a->D, N, (int)a->D, a->scale, s->cand, s->n_cand, r0,
                                     s->last_q, rec, den, ctx));
        size_t at = ((size_t)a->layer * s->H + h) * s->n_cand;
        for (int c = 0; c < s->n_cand; c++) {
            s->rec[at + c] += rec[c];
            s->den[at + c] += den[c];
        }
    }
out:
    scb_free(rec);
    scb_free(den);
    return rc;
}

/* "a:b,c:d" (pairs) or "a,b" (singles) into cand; "none" adds nothing. */
static int parse_cands(const char *opt, const char *s, int type, int pairs, struct scb_minf_pattern *cand,
                       int *n, int cap)
{
    if (!strcmp(s, "none")) return 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10), w = 0;
        if (end == p || v < 1 || v > 1000000) goto bad;
        p = end;
        if (pairs) {
            if (*p != ':') goto bad;
            w = strtol(p + 1, &end, 10);
            if (end == p + 1 || w < 1 || w > 1000000) goto bad;
            p = end;
        }
        if (*n >= cap) return scb_cli_usage_error("search-patterns", "%s: at most %d candidates in all", opt, cap);
        cand[(*n)++] = (struct scb_minf_pattern){type, (int)v, pairs ? (int)w : 0};
        if (*p == ',') p++;
        else if (*p) goto bad;
    }
    return 0;
bad:
    return scb_cli_usage_error("search-patterns", "%s: expected %s, got '%s'", opt,
                               pairs ? "a comma-separated list of positive V:S pairs" : "a comma-separated list of positive integers",
                               s);
}

int scb_cmd_search_patterns(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
        {"task", required_argument, 0, 't'}, {"sessions", required_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'}, {"budget", required_argument, 0, 'b'},
        {"vs", required_argument, 0, 'v'}, {"stream", required_argument, 0, 's'},
        {"block-topk", required_argument, 0, 'k'}, {"score-from", required_argument, 0, 'r'},
        {"last-q", required_argument, 0, 'q'}, {"mode", required_argument, 0, 'M'},
        {"max-seq-len", required_argument, 0, 'L'}, {"max-turns", required_argument, 0, 'T'},
        {"no-chat-template", no_argument, 0, 'C'}, {"threads", required_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "search-patterns", *model_dir = NULL, *data = NULL, *task_name = NULL,
               *out_path = "minference_patterns.json";
    const char *vs = "30:800,100:750,500:700,3500:100", *stream = "100:800", *blocks = "100";
    long sessions = 1, score_from = 2500, last_q = 64, max_seq = 131072, max_turns = 5, threads = 0;
    double budget = 1.0;
    int chat = 1, multi_request = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'd': data = optarg; break;
        case 't': task_name = optarg; break;
        case 'o': out_path = optarg; break;
        case 'v': vs = optarg; break;
        case 's': stream = optarg; break;
        case 'k': blocks = optarg; break;
        case 'C': chat = 0; break;
        case 'n': if (scb_cli_parse_long(cmd, "--sessions", optarg, 1, 1L << 20, &sessions)) return 2; break;
        case 'r': if (scb_cli_parse_long(cmd, "--score-from", optarg, 0, 1L << 30, &score_from)) return 2; break;
        case 'q': if (scb_cli_parse_long(cmd, "--last-q", optarg, 1, 1L << 20, &last_q)) return 2; break;
        case 'L': if (scb_cli_parse_long(cmd, "--max-seq-len", optarg, 16, 1L << 30, &max_seq)) return 2; break;
        case 'T': if (scb_cli_parse_long(cmd, "--max-turns", optarg, 1, 1000, &max_turns)) return 2; break;
        case 'j': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'b':
            if (scb_cli_parse_double(cmd, "--budget", optarg, &budget)) return 2;
            if (!(budget > 0.0 && budget <= 1.0)) return scb_cli_usage_error(cmd, "--budget must be in (0, 1], got '%s'", optarg);
            break;
        case 'M':
            if (!strcmp(optarg, "multi-turn") || !strcmp(optarg, "multi_turn")) multi_request = 0;
            else if (!strcmp(optarg, "multi-request") || !strcmp(optarg, "multi_request")) multi_request = 1;
            else return scb_cli_usage_error(cmd, "--mode must be multi-turn or multi-request, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model_dir || !data) return scb_cli_usage_error(cmd, "--model and --data are required");

    struct scb_minf_pattern cand[64];
    int n_cand = 0, st = 0;
    if ((st = parse_cands("--vs", vs, SCB_MINF_VERTICAL_SLASH, 1, cand, &n_cand, 64))) return st;
    if ((st = parse_cands("--stream", stream, SCB_MINF_STREAM_LLM, 1, cand, &n_cand, 64))) return st;
    if ((st = parse_cands("--block-topk", blocks, SCB_MINF_BLOCK_SPARSE, 0, cand, &n_cand, 64))) return st;
    if (n_cand == 0) return scb_cli_usage_error(cmd, "no candidate patterns (--vs, --stream and --block-topk are all 'none')");

    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_prompt_io pio = {0};
    struct scb_dataset *ds = NULL;
    struct scb_kv_cache *kv = NULL;
    struct scb_session s = {0};
    struct scb_turn_plan plan = {0};
    struct search sr = {0};
    struct scb_minf_pattern *pat = NULL;
    double *score = NULL;
    char *path = NULL, *stem = NULL;
    int rc = SCB_OK, status = 0;

    /* the data file and its task */
    if (scb_file_exists(data) && strstr(data, ".jsonl")) {
        path = scb_strdup(data);
        if (!path) SCB_TRY(scb_err(&ctx, SCB_E_NOMEM, "out of memory"));
        if (!task_name) {
            const char *base = strrchr(data, '/');
            stem = scb_strdup(base ? base + 1 : data);
            if (!stem) SCB_TRY(scb_err(&ctx, SCB_E_NOMEM, "out of memory"));
            stem[strcspn(stem, ".")] = 0;
            task_name = stem;
        }
    } else {
        if (!task_name) { status = scb_cli_usage_error(cmd, "--task is required when --data is a folder"); goto done; }
        SCB_TRY(scb_dataset_resolve(data, task_name, &path, &ctx));
    }
    const struct scb_task_ops *task = scb_task_find(task_name);
    if (!task) { status = scb_cli_usage_error(cmd, "unknown task '%s' (see scbench tasks)", task_name); goto done; }

    SCB_TRY(scb_backend_cpu_create(&be, (int)threads, &ctx));
    SCB_TRY(scb_model_load(&m, model_dir, be, &ctx));
    SCB_TRY(scb_prompt_io_load(&pio, model_dir, chat, &ctx));
    const struct scb_model_config *c = scb_model_get_config(m);
    sr.L = (int)c->L; sr.H = (int)c->H; sr.Hkv = (int)c->Hkv; sr.D = (int)c->D;
    sr.cand = cand; sr.n_cand = n_cand; sr.score_from = (int)score_from; sr.last_q = (int)last_q;
    sr.rec = scb_calloc((size_t)sr.L * sr.H * n_cand, sizeof(double));
    sr.den = scb_calloc((size_t)sr.L * sr.H * n_cand, sizeof(double));
    pat = scb_calloc((size_t)sr.L * sr.H, sizeof *pat);
    score = scb_calloc((size_t)sr.L * sr.H, sizeof *score);
    if (!sr.rec || !sr.den || !pat || !score) SCB_TRY(scb_err(&ctx, SCB_E_NOMEM, "out of memory"));
    struct scb_attn_hooks hooks = {search_prefill, NULL, NULL, &sr, NULL};
    scb_model_set_attn_hooks(m, &hooks);

    SCB_TRY(scb_dataset_open(&ds, path, &ctx));
    struct scb_prompt_opts popts;
    long done = 0;
    size_t tokens = 0;
    while (done < sessions) {
        scb_session_fini(&s);
        rc = scb_dataset_next(ds, &s, &ctx);
        if (rc == 0) break;
        if (rc < 0) goto out;
        rc = SCB_OK;
        if (done == 0) scb_prompt_io_opts(&popts, multi_request, chat, 1, max_seq, s.n_turns, max_turns);
        scb_prompt_plan_fini(&plan);
        rc = scb_prompt_io_plan(&pio, &plan, task, &s, &popts, &ctx);
        if (rc < 0) { scb_err_prefix(&ctx, "%s session %ld: ", path, s.index); goto out; }
        const int32_t *ids = multi_request ? plan.context_ids : plan.turns[0].ids;
        size_t n = multi_request ? plan.n_context_ids : plan.turns[0].n_ids;
        if (n < 2) SCB_TRY(scb_err(&ctx, SCB_E_FORMAT, "%s session %ld: a first prefill of %zu tokens", path, s.index, n));
        scb_kv_cache_destroy(kv);
        kv = NULL;
        SCB_TRY(scb_model_kv_create(m, n, &kv, &ctx));
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
        double t0 = scb_now_ms();
        rc = scb_model_forward(m, kv, ids, n, NULL, SCB_FWD_LAST_LOGITS, &ctx);
        if (rc < 0) { scb_err_prefix(&ctx, "%s session %ld: ", path, s.index); goto out; }
        fprintf(stderr, "session %ld: first prefill of %zu tokens searched in %.1f s\n", s.index, n,
                (scb_now_ms() - t0) / 1000.0);
        tokens += n;
        done++;
    }
    if (done == 0) SCB_TRY(scb_err(&ctx, SCB_E_FORMAT, "%s: no sessions", path));

    /* per head: the best candidate by mean recall within the budget */
    int counts[3] = {0, 0, 0};
    double rec_sum = 0.0, den_sum = 0.0;
    double *r = scb_malloc(sizeof(double) * (size_t)n_cand), *d = scb_malloc(sizeof(double) * (size_t)n_cand);
    if (!r || !d) { scb_free(r); scb_free(d); SCB_TRY(scb_err(&ctx, SCB_E_NOMEM, "out of memory")); }
    for (int i = 0; i < sr.L * sr.H; i++) {
        for (int k = 0; k < n_cand; k++) {
            r[k] = sr.rec[(size_t)i * n_cand + k] / (double)done;
            d[k] = sr.den[(size_t)i * n_cand + k] / (double)done;
        }
        int best = scb_minf_search_pick(r, d, n_cand, budget);
        pat[i] = cand[best];
        if (pat[i].type == SCB_MINF_BLOCK_SPARSE) pat[i].s = pat[i].v;
        score[i] = r[best];
        counts[cand[best].type]++;
        rec_sum += r[best];
        den_sum += d[best];
    }
    scb_free(r);
    scb_free(d);
    SCB_TRY(scb_minf_search_write(out_path, sr.L, sr.H, pat, score, &ctx));
    printf("searched %ld session(s), %zu prefill tokens, %d layers x %d heads, %d candidates, budget %g\n",
           done, tokens, sr.L, sr.H, n_cand, budget);
    printf("heads: %d vertical_and_slash, %d block_sparse, %d stream_llm; mean recall %.4f, mean density %.4f\n",
           counts[SCB_MINF_VERTICAL_SLASH], counts[SCB_MINF_BLOCK_SPARSE], counts[SCB_MINF_STREAM_LLM],
           rec_sum / (sr.L * sr.H), den_sum / (sr.L * sr.H));
    printf("wrote %s (use --methods minference:config=%s)\n", out_path, out_path);
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
done:
    if (m) scb_model_set_attn_hooks(m, NULL);
    scb_prompt_plan_fini(&plan);
    scb_session_fini(&s);
    scb_dataset_close(ds);
    scb_kv_cache_destroy(kv);
    scb_prompt_io_fini(&pio);
    scb_model_destroy(m);
    scb_backend_destroy(be);
    scb_free(sr.rec);
    scb_free(sr.den);
    scb_free(pat);
    scb_free(score);
    scb_free(path);
    scb_free(stem);
    return status;
}
