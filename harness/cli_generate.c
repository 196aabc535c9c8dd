/* cli_generate.c — `scbench generate`: greedy continuation of token ids with the engine,
 * following SCBench's cache semantics (prompt into the global segment, generated tokens into
 * the temp segment). Prints the generated ids on stdout, timings on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/generate.h"
#include "harness/ids.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench generate --model DIR --ids 1,2,3 [--max-new N] [--then-ids 4,5,6 [--commit]\n"
        "                        [--then-logits FILE]] [--threads N]\n"
        "\n"
        "Greedy decoding (CPU backend, fp32). The prompt ids are prefilled into the global part of\n"
        "the KV cache, up to N tokens are generated into the temp part, stopping at any stop id of\n"
        "the model (generation_config.json / config.json eos_token_id; not printed). Prints the\n"
        "generated ids, space-separated, on one line of stdout; timings go to stderr.\n"
        "\n"
        "  --model DIR       Hugging Face model directory\n"
        "  --ids LIST        prompt token ids, comma- or space-separated\n"
        "  --max-new N       most tokens to generate (default 32)\n"
        "  --then-ids LIST   then drop the temp part (the generated tokens), prefill LIST into the\n"
        "                    global part and generate again (SCBench's next turn); prints a second line\n"
        "  --commit          with --then-ids: keep the generated tokens (commit temp to global)\n"
        "                    instead of dropping them (SCBench's --disable_golden_context)\n"
        "  --then-logits F   with --then-ids: write the float32 logits of every position of the\n"
        "                    second prefill to F (T×V row-major, little-endian)\n"
        "  --threads N       CPU threads (default: all cores)\n");
}

static void print_ids(const struct scb_gen_result *r)
{
    for (size_t i = 0; i < r->n; i++) printf(i ? " %d" : "%d", r->ids[i]);
    printf("\n");
}

static void print_timing(const char *what, size_t n_prompt, const struct scb_gen_result *r)
{
    fprintf(stderr, "%s: prompt %zu tokens, prefill %.2f ms, ttft %.2f ms, generated %zu tokens%s, "
            "decode %.2f ms (%.2f tokens/s)\n", what, n_prompt, r->prefill_ms, r->ttft_ms, r->n,
            r->stopped ? " (stop id)" : "", r->decode_ms,
            r->decode_ms > 0 ? (double)r->n / (r->decode_ms / 1000.0) : 0.0);
}

int scb_cmd_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"ids", required_argument, 0, 'i'},
        {"max-new", required_argument, 0, 'n'}, {"then-ids", required_argument, 0, 'T'},
        {"commit", no_argument, 0, 'c'}, {"threads", required_argument, 0, 't'},
        {"then-logits", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "generate", *model_dir = NULL, *ids_s = NULL, *then_s = NULL, *then_logits = NULL;
    long threads = 0, max_new = 32;
    int opt, status = 0, commit = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'T': then_s = optarg; break;
        case 'c': commit = 1; break;
        case 'L': then_logits = optarg; break;
        case 'n': if (scb_cli_parse_long(cmd, "--max-new", optarg, 0, 1 << 20, &max_new)) return 2; break;
        case 't': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!model_dir || !ids_s) return scb_cli_usage_error(cmd, "--model and --ids are required");
    if ((then_logits || commit) && !then_s) return scb_cli_usage_error(cmd, "--then-logits and --commit need --then-ids");

    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL;
    int32_t *ids = NULL, *then = NULL;
    float *tl = NULL;
    size_t n = 0, n_then = 0;
    struct scb_gen_result r1 = {0}, r2 = {0};
    int rc = SCB_OK;
    if (scb_ids_parse(ids_s, &ids, &n, &ctx) < 0) { status = scb_cli_usage_error(cmd, "--ids: %s", scb_errmsg(&ctx)); goto done; }
    if (then_s && scb_ids_parse(then_s, &then, &n_then, &ctx) < 0) {
        status = scb_cli_usage_error(cmd, "--then-ids: %s", scb_errmsg(&ctx));
        goto done;
    }
    SCB_TRY(scb_backend_cpu_create(&be, (int)threads, &ctx));
    SCB_TRY(scb_model_load(&m, model_dir, be, &ctx));
    const struct scb_model_config *c = scb_model_get_config(m);
    SCB_TRY(scb_model_kv_create(m, n + n_then + 2 * (size_t)max_new + 2, &kv, &ctx));
    struct scb_gen_opts go = {(size_t)max_new, c->stop_ids, c->n_stop};
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    SCB_TRY(scb_generate_greedy(m, kv, ids, n, NULL, &go, &r1, &ctx));
    print_ids(&r1);
    print_timing("turn 1", n, &r1);
    if (then) {
        if (commit) scb_kv_cache_commit_temp(kv);
        else scb_kv_cache_drop_temp(kv);
        if (then_logits) {
            tl = scb_malloc(n_then * c->V * sizeof(float));   /* (T, V) */
            if (!tl) { rc = scb_err(&ctx, SCB_E_NOMEM, "out of memory"); goto out; }
            double t0 = scb_now_ms();
            SCB_TRY(scb_model_forward(m, kv, then, n_then, tl, SCB_FWD_ALL_LOGITS, &ctx));
            double pms = scb_now_ms() - t0;
            SCB_TRY(scb_file_write(then_logits, tl, n_then * c->V * sizeof(float), &ctx));
            SCB_TRY(scb_generate_greedy(m, kv, NULL, 0, tl + (n_then - 1) * c->V, &go, &r2, &ctx));
            r2.prefill_ms = pms;
            r2.ttft_ms += pms;
        } else {
            SCB_TRY(scb_generate_greedy(m, kv, then, n_then, NULL, &go, &r2, &ctx));
        }
        print_ids(&r2);
        print_timing("turn 2", n_then, &r2);
    }
    size_t entries, logical, physical;
    scb_kv_cache_bytes(kv, &entries, &logical, &physical);
    fprintf(stderr, "kv cache: %lld positions, %zu entries, %.3f MiB logical, %.3f MiB physical\n",
            (long long)kv->seen, entries, (double)logical / 1048576.0, (double)physical / 1048576.0);
    fflush(stdout);
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
done:
    scb_gen_result_fini(&r1);
    scb_gen_result_fini(&r2);
    scb_free(ids);
    scb_free(then);
    scb_free(tl);
    scb_kv_cache_destroy(kv);
    scb_model_destroy(m);
    scb_backend_destroy(be);
    return status;
}
