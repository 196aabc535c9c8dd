/* cli_generate.c — `scbench generate`: greedy continuation of token ids with the engine,
 * following SCBench's cache semantics (prompt into the global segment, generated tokens into
 * the temp segment). Prints the generated ids on stdout, timings on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/generate.h"
#include "harness/ids.h"
#include "harness/method_bind.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "harness/chat_template.h"
#include "harness/tokenizer.h"
#include "methods/method.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench generate --model DIR (--prompt TEXT [--chat] | --ids 1,2,3) [--max-new N]\n"
        "                        [--then-ids 4,5,6 [--commit]\n"
        "                        [--then-logits FILE]] [--method SPEC|LIST|all] [--backend cpu|cuda]\n"
        "                        [--threads N]\n"
        "\n"
        "Greedy decoding (CPU backend: fp32; CUDA backend: bf16 weights, activations and KV cache,\n"
        "fp32 accumulation, argmax on the GPU). The prompt ids are prefilled into the global part of\n"
        "the KV cache, up to N tokens are generated into the temp part, stopping at any stop id of\n"
        "the model (generation_config.json / config.json eos_token_id, and the tokenizer's eos;\n"
        "not printed). With --prompt prints the continuation as text; with --ids prints the\n"
        "generated ids, space-separated, on one line of stdout. Timings go to stderr.\n"
        "\n"
        "  --model DIR       Hugging Face model directory\n"
        "  --prompt TEXT     prompt text, encoded with the model's tokenizer as HF tokenizer(text)\n"
        "                    does (the post-processor's BOS added)\n"
        "  --chat            with --prompt: render it as one user message through the model's chat\n"
        "                    template (add_generation_prompt) and encode that without added tokens\n"
        "  --ids LIST        prompt token ids, comma- or space-separated\n"
        "  --max-new N       most tokens to generate (default 32)\n"
        "  --then-ids LIST   then drop the temp part (the generated tokens), prefill LIST into the\n"
        "                    global part and generate again (SCBench's next turn); prints a second line\n"
        "  --commit          with --then-ids: keep the generated tokens (commit temp to global)\n"
        "                    instead of dropping them (SCBench's --disable_golden_context)\n"
        "  --then-logits F   with --then-ids: write the float32 logits of every position of the\n"
        "                    second prefill to F (T×V row-major, little-endian)\n"
        "  --method SPEC     long-context method, e.g. snapkv:budget=64 or minference+kivi (see\n"
        "                    `scbench methods`); prints the resolved spec and each turn's costs\n"
        "                    (KV entries, logical/physical bytes, bytes read per decode step,\n"
        "                    first-prefill density, retrieval recall) on stderr. A list of specs\n"
        "                    separated by ';' runs them one after the other on the same prompt;\n"
        "                    'all' is every registered method with its defaults (`scbench methods`\n"
        "                    order), and a later spec of one of them overrides it: 'all;snapkv:budget=64'.\n"
        "                    Each method's output is preceded by a line '== method SPEC' on stdout\n"
        "  --methods LIST    same as --method\n"
        "  --backend B       cpu or cuda (default: cuda when this build has CUDA and a GPU is\n"
        "                    present); every method but cacheblend runs on CUDA\n"
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

/* Costs of the turn just generated (its temp tokens included). */
static int print_costs(struct scb_method_binding *b, const struct scb_kv_cache *kv, const char *what,
                       struct scb_ctx *ctx)
{
    struct scb_turn_costs c;
    char line[512];
    int rc = scb_method_bind_costs(b, kv, &c, ctx);
    if (rc) return rc;
    scb_method_bind_costs_format(&c, line, sizeof line);
    fprintf(stderr, "%s costs: %s\n", what, line);
    return SCB_OK;
}

int scb_cmd_generate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"ids", required_argument, 0, 'i'},
        {"max-new", required_argument, 0, 'n'}, {"then-ids", required_argument, 0, 'T'},
        {"commit", no_argument, 0, 'c'}, {"threads", required_argument, 0, 't'},
        {"then-logits", required_argument, 0, 'L'}, {"method", required_argument, 0, 'M'},
        {"methods", required_argument, 0, 'M'},
        {"prompt", required_argument, 0, 'p'}, {"chat", no_argument, 0, 'C'},
        {"backend", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "generate", *model_dir = NULL, *ids_s = NULL, *then_s = NULL, *then_logits = NULL,
               *method_s = NULL, *prompt = NULL, *backend = NULL;
    long threads = 0, max_new = 32;
    int opt, status = 0, commit = 0, chat = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'T': then_s = optarg; break;
        case 'c': commit = 1; break;
        case 'L': then_logits = optarg; break;
        case 'M': method_s = optarg; break;
        case 'p': prompt = optarg; break;
        case 'C': chat = 1; break;
        case 'b': backend = optarg; break;
        case 'n': if (scb_cli_parse_long(cmd, "--max-new", optarg, 0, 1 << 20, &max_new)) return 2; break;
        case 't': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (backend && strcmp(backend, "cpu") && strcmp(backend, "cuda") && strcmp(backend, "auto"))
        return scb_cli_usage_error(cmd, "--backend: expected cpu or cuda, got '%s'", backend);
    if (!model_dir || (!ids_s == !prompt))
        return scb_cli_usage_error(cmd, "--model and one of --prompt or --ids are required");
    if (chat && !prompt) return scb_cli_usage_error(cmd, "--chat needs --prompt");
    if ((then_logits || commit) && !then_s) return scb_cli_usage_error(cmd, "--then-logits and --commit need --then-ids");

    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL;
    int32_t *ids = NULL, *then = NULL;
    float *tl = NULL;
    size_t n = 0, n_then = 0;
    struct scb_gen_result r1 = {0}, r2 = {0};
    struct scb_method_spec spec = {0};
    struct scb_method_binding *bind = NULL;
    char **mlist = NULL, *mcopy = NULL;
    size_t n_mlist = 0;
    struct scb_tokenizer *tok = NULL;
    struct scb_chat_template *tmpl = NULL;
    char *spec_json = NULL, *rendered = NULL, *text = NULL;
    int32_t stop[SCB_MAX_STOP_IDS + 1];
    size_t n_stop = 0;
    int rc = SCB_OK;
    if (method_s) {
        /* a ';'-separated list, "all" expanded; every spec parsed before the model loads */
        const char *pieces[64];
        size_t n_pieces = 0;
        if (!(mcopy = scb_strdup(method_s))) { rc = scb_err(&ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        for (char *t = strtok(mcopy, ";"); t && n_pieces < 64; t = strtok(NULL, ";")) pieces[n_pieces++] = t;
        if (n_pieces == 0) { status = scb_cli_usage_error(cmd, "--method: empty"); goto done; }
        SCB_TRY(scb_method_list_expand(pieces, n_pieces, &mlist, &n_mlist, &ctx));
        for (size_t k = 0; k < n_mlist; k++) {
            if (scb_method_spec_parse(mlist[k], &spec, &ctx) < 0) {
                status = scb_cli_usage_error(cmd, "--method: %s", scb_errmsg(&ctx));
                goto done;
            }
            scb_method_spec_fini(&spec);
            memset(&spec, 0, sizeof spec);
        }
    }
    if (ids_s && scb_ids_parse(ids_s, &ids, &n, &ctx) < 0) { status = scb_cli_usage_error(cmd, "--ids: %s", scb_errmsg(&ctx)); goto done; }
    if (prompt) {
        SCB_TRY(scb_tokenizer_load(&tok, model_dir, &ctx));
        if (chat) {
            struct scb_chat_msg msg = {"user", prompt};
            SCB_TRY(scb_chat_template_load(&tmpl, model_dir, &ctx));
            SCB_TRY(scb_chat_template_render(tmpl, &msg, 1, 1, &rendered, &ctx));
            SCB_TRY(scb_tokenizer_encode(tok, rendered, strlen(rendered), 0, &ids, &n, &ctx));
        } else {
            SCB_TRY(scb_tokenizer_encode(tok, prompt, strlen(prompt), SCB_TOK_ADD_SPECIAL, &ids, &n, &ctx));
        }
        if (n == 0) { status = scb_cli_usage_error(cmd, "--prompt encodes to no tokens"); goto done; }
    }
    if (then_s && scb_ids_parse(then_s, &then, &n_then, &ctx) < 0) {
        status = scb_cli_usage_error(cmd, "--then-ids: %s", scb_errmsg(&ctx));
        goto done;
    }
    SCB_TRY(scb_backend_open(&be, backend, (int)threads, &ctx));
    SCB_TRY(scb_model_load(&m, model_dir, be, &ctx));
    const struct scb_model_config *c = scb_model_get_config(m);
    size_t cap = n + n_then + 2 * (size_t)max_new + 2;
    /* HF stop set: the tokenizer's eos (with --prompt) + the model's eos ids */
    if (tok && scb_tokenizer_eos_id(tok) >= 0) stop[n_stop++] = scb_tokenizer_eos_id(tok);
    for (size_t i = 0; i < c->n_stop; i++)
        if (!n_stop || c->stop_ids[i] != stop[0]) stop[n_stop++] = c->stop_ids[i];
    for (size_t mi = 0; mi < (method_s ? n_mlist : 1); mi++) {
    if (method_s) {
        SCB_TRY(scb_method_spec_parse(mlist[mi], &spec, &ctx));
        SCB_TRY(scb_method_spec_json(&spec, &spec_json, &ctx));
        fprintf(stderr, "method: %s\n", spec_json);
        if (n_mlist > 1) printf("== method %s\n", mlist[mi]);
        SCB_TRY(scb_method_bind_create(&bind, m, &spec, &ctx));
        SCB_TRY(scb_method_bind_kv_create(bind, cap, &kv, &ctx));
        SCB_TRY(scb_method_bind_session_begin(bind, kv, &ctx));
    } else {
        SCB_TRY(scb_model_kv_create(m, cap, &kv, &ctx));
    }
    struct scb_gen_opts go = {(size_t)max_new, stop, n_stop};
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    SCB_TRY(scb_generate_greedy(m, kv, ids, n, NULL, &go, &r1, &ctx));
    if (tok) {
        size_t len = 0;
        SCB_TRY(scb_tokenizer_decode(tok, r1.ids, r1.n, &text, &len, &ctx));
        fwrite(text, 1, len, stdout);
        printf("\n");
    } else {
        print_ids(&r1);
    }
    print_timing("turn 1", n, &r1);
    if (bind) SCB_TRY(print_costs(bind, kv, "turn 1", &ctx));
    if (then) {
        if (commit) scb_kv_cache_commit_temp(kv);
        else scb_kv_cache_drop_temp(kv);
        if (bind) SCB_TRY(scb_method_bind_turn_end(bind, kv, &ctx));
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
        if (bind) SCB_TRY(print_costs(bind, kv, "turn 2", &ctx));
    }
    size_t entries, logical, physical;
    scb_kv_cache_bytes(kv, &entries, &logical, &physical);
    fprintf(stderr, "kv cache: %lld positions, %zu entries, %.3f MiB logical, %.3f MiB physical\n",
            (long long)kv->seen, entries, (double)logical / 1048576.0, (double)physical / 1048576.0);
    fflush(stdout);
    /* next method: a fresh cache and binding */
    scb_gen_result_fini(&r1);
    scb_gen_result_fini(&r2);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    scb_free(tl);
    tl = NULL;
    scb_free(text);
    text = NULL;
    scb_free(spec_json);
    spec_json = NULL;
    scb_kv_cache_destroy(kv);
    kv = NULL;
    scb_method_bind_destroy(bind);
    bind = NULL;
    scb_method_spec_fini(&spec);
    memset(&spec, 0, sizeof spec);
    }
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
done:
    scb_gen_result_fini(&r1);
    scb_gen_result_fini(&r2);
    scb_free(ids);
    scb_free(then);
    scb_free(tl);
    scb_kv_cache_destroy(kv);
    scb_method_bind_destroy(bind);
    scb_method_spec_fini(&spec);
    scb_method_list_free(mlist, n_mlist);
    scb_free(mcopy);
    scb_free(spec_json);
    scb_free(rendered);
    scb_free(text);
    scb_chat_template_destroy(tmpl);
    scb_tokenizer_destroy(tok);
    scb_model_destroy(m);
    scb_backend_destroy(be);
    return status;
}
