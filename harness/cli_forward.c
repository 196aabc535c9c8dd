/* cli_forward.c — `scbench forward`: token ids → float32 logits of every position (T×V
 * row-major, little-endian) written to a file; prints "T V" on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "harness/ids.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench forward --model DIR --ids 1,2,3 --out FILE [--backend cpu|cuda] [--threads N]\n"
        "\n"
        "Runs the token ids through the model in one forward pass (CPU backend: fp32; CUDA\n"
        "backend: bf16 weights and activations, fp32 accumulation and logits) and writes\n"
        "the logits of every position to FILE as float32, T×V row-major, little-endian. Prints\n"
        "\"T V\" on stdout.\n"
        "\n"
        "  --model DIR     Hugging Face model directory (config.json + safetensors)\n"
        "  --ids LIST      token ids, comma- or space-separated\n"
        "  --out FILE      output file\n"
        "  --backend B     cpu or cuda (default: cuda when this build has CUDA and a GPU is present)\n"
        "  --threads N     CPU threads (default: all cores); results do not depend on it\n");
}

int scb_cmd_forward(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"ids", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"backend", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "forward", *model_dir = NULL, *ids_s = NULL, *out_path = NULL, *backend = NULL;
    long threads = 0;
    int opt, status = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'i': ids_s = optarg; break;
        case 'o': out_path = optarg; break;
        case 'b': backend = optarg; break;
        case 't': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (backend && strcmp(backend, "cpu") && strcmp(backend, "cuda") && strcmp(backend, "auto"))
        return scb_cli_usage_error(cmd, "--backend: expected cpu or cuda, got '%s'", backend);
    if (!model_dir || !ids_s || !out_path) return scb_cli_usage_error(cmd, "--model, --ids and --out are required");

    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    size_t n = 0;
    int rc = SCB_OK;
    if ((rc = scb_ids_parse(ids_s, &ids, &n, &ctx)) < 0) { status = scb_cli_usage_error(cmd, "--ids: %s", scb_errmsg(&ctx)); goto done; }
    SCB_TRY(scb_backend_open(&be, backend, (int)threads, &ctx));
    SCB_TRY(scb_model_load(&m, model_dir, be, &ctx));
    const struct scb_model_config *c = scb_model_get_config(m);
    SCB_TRY(scb_model_kv_create(m, n, &kv, &ctx));
    logits = scb_malloc(n * c->V * sizeof(float));   /* (T, V) */
    if (!logits) { rc = scb_err(&ctx, SCB_E_NOMEM, "out of memory for %zu×%zu logits", n, c->V); goto out; }
    SCB_TRY(scb_model_forward(m, kv, ids, n, logits, SCB_FWD_ALL_LOGITS, &ctx));
    SCB_TRY(scb_file_write(out_path, logits, n * c->V * sizeof(float), &ctx));
    printf("%zu %zu\n", n, c->V);
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
done:
    scb_free(logits);
    scb_free(ids);
    scb_kv_cache_destroy(kv);
    scb_model_destroy(m);
    scb_backend_destroy(be);
    return status;
}
