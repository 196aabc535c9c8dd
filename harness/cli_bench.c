/* cli_bench.c — `scbench bench cpu|cuda`: prefill and decode speed of a model with the engine.
 * On the CPU also the GFLOP/s its matrix products achieve against what cblas_sgemm reaches
 * alone on a large square product on this machine; on CUDA the GEMM TFLOP/s over the forward
 * time, the weight bytes streamed per decode step, and (with or without a long-context method
 * bound through --method) the bytes-moved floor of a decode step: weights + the KV bytes the
 * policy reads per step, at the device-to-device copy bandwidth measured in the same run; for
 * retr_attn also the binding's own floor: the device's bytes (weights, resident and retrieved
 * K/V) at that bandwidth plus the host's index key bytes at the host read bandwidth.
 * Measures and prints; asserts nothing. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "harness/cli.h"
#include "harness/cli_bench_retr.h"
#include "harness/method_bind.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/method.h"
#include "scb_config.h"
#if SCB_HAVE_CUDA
#include "harness/method_dev.h"
#include "kernels/kernels_cuda.h"
#endif

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench bench cpu|cuda --model DIR [--tokens N] [--decode N] [--threads N] [--sgemm-size S]\n"
        "                                [--method SPEC]\n"
        "       scbench bench --backend cpu|cuda --model DIR ...\n"
        "       scbench bench retr-scan [options]   (retr_attn's host flat scan; --help there)\n"
        "\n"
        "CPU speed of the engine: prefill of N prompt tokens (default 128, deterministic ids) and\n"
        "greedy-style decode of --decode tokens (default 16), in tokens/s; the GFLOP/s achieved by\n"
        "the model's matrix products (projections and LM head, 2·T·K·N per product) during\n"
        "prefill and decode, against cblas_sgemm alone on an S×S×S product (default 1024, best of\n"
        "3), and their ratio. Decode is bound by memory bandwidth rather than arithmetic, so the\n"
        "weight bytes it streams per second are printed as well.\n"
        "cuda: the same prefill and decode on the GPU (bf16 weights and KV cache, argmax on the\n"
        "device), after one warm-up turn; GFLOP/s are the GEMM FLOPs over the whole forward time.\n"
        "It also prints the bytes-moved floor of a decode step: the weights plus the KV bytes read\n"
        "per step (what the cache holds at the end of the decode, or with a method what its policy\n"
        "reads: the kept entries, or Quest's page metadata + selected pages) at the bandwidth of a\n"
        "512 MiB device-to-device copy measured in the same run (bytes read + written), and the\n"
        "measured time per token over that floor. With --method retr_attn a second line, the device\n"
        "binding's floor: with the flat index searched on the device (SCB_RETR_SEARCH=device, the\n"
        "default) floor+scan, the weights, the resident K/V, each query head's top_k retrieved K/V,\n"
        "each KV head's bf16 index keys and each query head's fp32 scores (written and read) at\n"
        "that copy bandwidth; with SCB_RETR_SEARCH=host (or index=graph) floor+host, the device's\n"
        "bytes at that copy bandwidth plus the host's (each KV head's bf16 index keys, read once per\n"
        "layer-step) at the host read bandwidth measured here.\n"
        "--method SPEC (cuda): bind a long-context method (e.g. snapkv, quest:budget=2048) for the\n"
        "prefill and decode, as `scbench run` does; prints its per-turn costs.\n");
}

static double sgemm_gflops(size_t s, struct scb_ctx *ctx, int *rc)
{
    float *a = scb_malloc(s * s * sizeof(float)), *b = scb_malloc(s * s * sizeof(float)),
          *c = scb_malloc(s * s * sizeof(float));   /* (S, S) each */
    double best = 0;
    if (!a || !b || !c) { *rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    struct scb_rng r;
    scb_rng_seed(&r, 1);
    for (size_t i = 0; i < s * s; i++) { a[i] = scb_rng_normal(&r); b[i] = scb_rng_normal(&r); }
    for (int rep = 0; rep < 4; rep++) {   /* first run warms up */
        double t0 = scb_now_ms();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s, (int)s, (int)s, 1.0f, a, (int)s, b,
                    (int)s, 0.0f, c, (int)s);
        double ms = scb_now_ms() - t0;
        double g = 2.0 * (double)s * (double)s * (double)s / (ms * 1e6);
        if (rep && g > best) best = g;
    }
out:
    scb_free(a); scb_free(b); scb_free(c);
    return best;
}

/* Device engine: a warm-up turn (prefill + decode, which also sizes the activation arena), then
 * the timed turn on a cleared cache; forward_next keeps the argmax on the device. */
/* Device-to-device copy bandwidth in GB/s (bytes read + written), best of 3 copies of 512 MiB
 * after a warm-up; 0 when it cannot be measured. */
static double copy_gbps(struct scb_model *m, struct scb_ctx *ctx)
{
    double best = 0;
#if SCB_HAVE_CUDA
    struct scb_cuda_ctx *cc = scb_model_device_ctx(m);
    const size_t bytes = (size_t)1 << 29;
    void *a = NULL, *b = NULL;
    if (!cc || scb_cuda_malloc(cc, &a, bytes, ctx) || scb_cuda_malloc(cc, &b, bytes, ctx)) goto out;
    for (int rep = 0; rep < 4; rep++) {
        float ms = 0;
        if (scb_cuda_timer_start(cc, ctx) || scb_cuda_copy(cc, b, a, bytes, ctx) || scb_cuda_timer_stop(cc, ctx) ||
            scb_cuda_timer_ms(cc, &ms, ctx))
            break;
        const double g = 2.0 * (double)bytes / ((double)ms * 1e6);
        if (rep && g > best) best = g;
    }
out:
    if (cc) { scb_cuda_free(cc, a); scb_cuda_free(cc, b); }
#else
    (void)m; (void)ctx;
#endif
    return best;
}

static int bench_device(struct scb_model *m, const char *model_dir, long tokens, long ndec, const char *method,
                        struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = scb_model_get_config(m);
    struct scb_kv_cache *kv = NULL;
    struct scb_method_spec spec = {0};
    struct scb_method_binding *bind = NULL;
    struct scb_turn_costs costs = {0};
    int32_t *ids = scb_malloc((size_t)tokens * sizeof *ids);
    if (!ids) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    if (method) {
        SCB_TRY(scb_method_spec_parse(method, &spec, ctx));
        SCB_TRY(scb_method_bind_create(&bind, m, &spec, ctx));
        SCB_TRY(scb_method_bind_kv_create(bind, (size_t)(tokens + ndec), &kv, ctx));
    } else {
        SCB_TRY(scb_model_kv_create(m, (size_t)(tokens + ndec), &kv, ctx));
    }
    struct scb_rng r;
    scb_rng_seed(&r, 1234);
    for (long i = 0; i < tokens; i++) ids[i] = (int32_t)scb_rng_below(&r, c->V);
    struct scb_model_stats sp, sd;
    for (int rep = 0; rep < 2; rep++) {
        int32_t tok;
        scb_kv_cache_clear(kv);
        if (bind) SCB_TRY(scb_method_bind_session_begin(bind, kv, ctx));
        scb_model_stats_reset(m);
        SCB_TRY(scb_model_forward_next(m, kv, ids, (size_t)tokens, &tok, ctx));
        scb_model_stats(m, &sp);
        scb_model_stats_reset(m);
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
        for (long i = 0; i < ndec; i++) SCB_TRY(scb_model_forward_next(m, kv, &tok, 1, &tok, ctx));
        scb_model_stats(m, &sd);
        if (bind) SCB_TRY(scb_method_bind_costs(bind, kv, &costs, ctx));
    }
    /* KV bytes one decode step reads at the end of the decode: the policy's (method), or every
     * stored entry's K and V (dense) */
    double kv_read = 0;
    if (bind) {
        kv_read = costs.decode_bytes_per_step;
    } else {
        for (size_t l = 0; l < kv->L; l++)
            for (size_t h = 0; h < kv->Hkv; h++) kv_read += (double)scb_kv_cache_len(kv, l, h) * 2.0 * kv->D * 2.0;
    }
    const double bw = copy_gbps(m, ctx);
    const double wbytes = (double)scb_model_weight_bytes(m), ms_tok = sd.forward_ms / (double)ndec;
    const double floor_ms = bw > 0 ? (wbytes + kv_read) / (bw * 1e6) : 0;
    printf("model        %s  %s  L=%zu d=%zu ff=%zu H=%zu Hkv=%zu D=%zu V=%zu  weights %.1f MiB bf16 (GPU)\n",
           model_dir, c->arch_name, c->L, c->d_model, c->d_ff, c->H, c->Hkv, c->D, c->V,
           (double)scb_model_weight_bytes(m) / 1048576.0);
    printf("prefill      %ld tokens  %.2f ms  %.1f tokens/s  gemm %.2f GFLOP/s over the forward time\n",
           tokens, sp.forward_ms, (double)tokens / (sp.forward_ms / 1000.0),
           sp.matmul_flops / (sp.forward_ms * 1e6));
    printf("decode       %ld tokens  %.2f ms  %.1f tokens/s  %.3f ms/token  gemm %.2f GFLOP/s\n",
           ndec, sd.forward_ms, (double)ndec / (sd.forward_ms / 1000.0), sd.forward_ms / (double)ndec,
           sd.matmul_flops / (sd.forward_ms * 1e6));
    printf("decode reads %.2f GB/s of weights (%.1f MiB per token)\n",
           (double)scb_model_weight_bytes(m) * (double)ndec / (sd.forward_ms * 1e6),
           (double)scb_model_weight_bytes(m) / 1048576.0);
    if (bind) {
        char line[512];
        scb_method_bind_costs_format(&costs, line, sizeof line);
        printf("method       %s  costs at the end of the decode: %s\n", method, line);
    }
    printf("copy         512 MiB device-to-device: %.0f GB/s (bytes read + written)\n", bw);
    printf("floor        %.3f ms/token = (weights %.1f MiB + KV read %.1f MiB per token) / copy bandwidth;"
           "  measured %.3f ms/token = %.2fx the floor  [%s, %ld + %ld tokens]\n",
           floor_ms, wbytes / 1048576.0, kv_read / 1048576.0, ms_tok, floor_ms > 0 ? ms_tok / floor_ms : 0.0,
           method ? method : "dense", tokens, ndec);
    if (method && !strcmp(spec.kv.ops->name, "retr_attn")) {
        /* the binding's own floor: the device reads the weights, the resident K/V (sinks, recent
         * window, temp tokens) and each query head's top_k retrieved K/V per layer; the host reads
         * each KV head's bf16 index keys once per layer-step (the G query heads share the pass);
         * the two run one after the other, so their floors add */
        const long Tg = tokens, sink = scb_method_opt_int(&spec.kv, "n_sink"), rec = scb_method_opt_int(&spec.kv, "n_recent");
        const long nidx = Tg > sink + rec ? Tg - sink - rec : 0, res = (Tg < sink + rec ? Tg : sink + rec) + ndec;
        const long topk = scb_method_opt_int(&spec.kv, "top_k"), kk = topk < nidx ? topk : nidx;
        const double row = (double)c->D * 2.0;   /* bf16 */
        const double dev_kv = (double)c->L * (2.0 * c->Hkv * res * row + 2.0 * c->H * kk * row);
        const double host_b = (double)c->L * c->Hkv * nidx * row;
        char iname[32] = "";
        SCB_TRY(scb_method_get(&spec.kv, "index", iname, sizeof iname));
#if SCB_HAVE_CUDA
        const int dscan = strcmp(iname, "graph") ? scb_dev_retr_search_device(ctx) : 0;
#else
        const int dscan = 0;   /* no device binding in this build */
#endif
        if (dscan < 0) { rc = dscan; goto out; }
        if (dscan) {
            /* SCB_RETR_SEARCH=device: the device also reads each KV head's index keys once per
             * layer-step and writes and reads each query head's fp32 score of every index key */
            const double scan_b = host_b + (double)c->L * c->H * nidx * 4.0 * 2.0;
            const double f_ms = bw > 0 ? (wbytes + dev_kv + scan_b) / (bw * 1e6) : 0;
            printf("floor+scan   %.3f ms/token = (weights %.1f MiB + resident and retrieved K/V %.1f MiB + index keys and "
                   "scores %.1f MiB per token) / copy bandwidth;  measured %.3f ms/token = %.2fx this floor  "
                   "[retr_attn, search on the device (SCB_RETR_SEARCH=device): index %ld keys per KV head, top_k %ld, "
                   "resident %ld]\n", f_ms, wbytes / 1048576.0, dev_kv / 1048576.0, scan_b / 1048576.0, ms_tok,
                   f_ms > 0 ? ms_tok / f_ms : 0.0, nidx, kk, res);
            goto graph_line;
        }
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        const int hthreads = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;   /* as the binding's pool */
        int hrc = SCB_OK;
        const double hbw = scb_bench_host_read_gbps(hthreads, 1024, ctx, &hrc);
        if (hrc < 0) { rc = hrc; goto out; }
        const double dev_ms = bw > 0 ? (wbytes + dev_kv) / (bw * 1e6) : 0, host_ms = hbw > 0 ? host_b / (hbw * 1e6) : 0;
        printf("floor+host   %.3f ms/token = device %.3f ms ((weights %.1f MiB + resident and retrieved K/V %.1f MiB "
               "per token) / copy bandwidth) + host %.3f ms (bf16 index keys %.1f MiB per token / host read %.1f GB/s, "
               "%d threads);  measured %.3f ms/token = %.2fx this floor  [retr_attn device binding: index %ld keys per "
               "KV head, top_k %ld, resident %ld]\n", dev_ms + host_ms, dev_ms, wbytes / 1048576.0, dev_kv / 1048576.0,
               host_ms, host_b / 1048576.0, hbw, hthreads, ms_tok, dev_ms + host_ms > 0 ? ms_tok / (dev_ms + host_ms) : 0.0,
               nidx, kk, res);
    }
graph_line:
    printf("decode graph %ld of %ld steps ran as one CUDA graph each (default: recorded once and replayed; "
           "SCB_CUDA_GRAPHS=0: off, =rerecord: recorded every step)\n",
           sd.graph_steps, ndec);
out:
    scb_free(ids);
    scb_method_bind_destroy(bind);
    scb_method_spec_fini(&spec);
    scb_kv_cache_destroy(kv);
    return rc;
}

int scb_cmd_bench(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'}, {"tokens", required_argument, 0, 'n'},
        {"decode", required_argument, 0, 'd'}, {"threads", required_argument, 0, 't'},
        {"sgemm-size", required_argument, 0, 's'}, {"backend", required_argument, 0, 'b'},
        {"method", required_argument, 0, 'M'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmd = "bench", *model_dir = NULL, *target = NULL, *method = NULL;
    long threads = 0, tokens = 128, ndec = 16, ssize = 1024;
    int opt, status = 0;
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { usage(stdout); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "retr-scan")) return scb_bench_retr_scan(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "cpu") || !strcmp(argv[1], "cuda"))) {
        target = argv[1];
        argc--; argv++;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': model_dir = optarg; break;
        case 'n': if (scb_cli_parse_long(cmd, "--tokens", optarg, 1, 1 << 20, &tokens)) return 2; break;
        case 'd': if (scb_cli_parse_long(cmd, "--decode", optarg, 1, 1 << 20, &ndec)) return 2; break;
        case 't': if (scb_cli_parse_long(cmd, "--threads", optarg, 0, 1024, &threads)) return 2; break;
        case 's': if (scb_cli_parse_long(cmd, "--sgemm-size", optarg, 16, 16384, &ssize)) return 2; break;
        case 'b':
            if (target && strcmp(target, optarg))
                return scb_cli_usage_error(cmd, "target '%s' and --backend %s disagree", target, optarg);
            target = optarg;
            break;
        case 'M': method = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!target) return scb_cli_usage_error(cmd, "expected a target: 'cpu' or 'cuda' (or --backend)");
    if (strcmp(target, "cpu") && strcmp(target, "cuda"))
        return scb_cli_usage_error(cmd, "unknown target '%s' (expected cpu or cuda)", target);
    if (!model_dir) return scb_cli_usage_error(cmd, "--model is required");
    if (method && strcmp(target, "cuda"))
        return scb_cli_usage_error(cmd, "--method is measured on the cuda target only (bench cuda --method SPEC)");

    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int rc = SCB_OK;
    SCB_TRY(scb_backend_open(&be, target, (int)threads, &ctx));
    SCB_TRY(scb_model_load(&m, model_dir, be, &ctx));
    if (be->ops->device) {
        rc = bench_device(m, model_dir, tokens, ndec, method, &ctx);
        goto out;
    }
    const struct scb_model_config *c = scb_model_get_config(m);
    SCB_TRY(scb_model_kv_create(m, (size_t)(tokens + ndec), &kv, &ctx));
    ids = scb_malloc((size_t)tokens * sizeof *ids);
    logits = scb_malloc(c->V * sizeof(float));   /* (V) */
    if (!ids || !logits) { rc = scb_err(&ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    struct scb_rng r;
    scb_rng_seed(&r, 1234);
    for (long i = 0; i < tokens; i++) ids[i] = (int32_t)scb_rng_below(&r, c->V);

    struct scb_model_stats sp, sd;
    scb_model_stats_reset(m);
    SCB_TRY(scb_model_forward(m, kv, ids, (size_t)tokens, logits, SCB_FWD_LAST_LOGITS, &ctx));
    scb_model_stats(m, &sp);
    scb_model_stats_reset(m);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    for (long i = 0; i < ndec; i++) {
        int32_t tok;
        SCB_TRY(be->ops->argmax(be, logits, c->V, &tok, &ctx));
        SCB_TRY(scb_model_forward(m, kv, &tok, 1, logits, SCB_FWD_LAST_LOGITS, &ctx));
    }
    scb_model_stats(m, &sd);
    double peak = sgemm_gflops((size_t)ssize, &ctx, &rc);
    if (rc < 0) goto out;
    double gp = sp.matmul_flops / (sp.matmul_ms * 1e6), gd = sd.matmul_flops / (sd.matmul_ms * 1e6);
    printf("model        %s  %s  L=%zu d=%zu ff=%zu H=%zu Hkv=%zu D=%zu V=%zu  weights %.1f MiB fp32\n",
           model_dir, c->arch_name, c->L, c->d_model, c->d_ff, c->H, c->Hkv, c->D, c->V,
           (double)scb_model_weight_bytes(m) / 1048576.0);
    printf("threads      %d\n", be->n_threads);
    printf("prefill      %ld tokens  %.2f ms  %.1f tokens/s  matmul %.2f GFLOP/s (%.0f%% of forward time)\n",
           tokens, sp.forward_ms, (double)tokens / (sp.forward_ms / 1000.0), gp,
           100.0 * sp.matmul_ms / sp.forward_ms);
    printf("decode       %ld tokens  %.2f ms  %.1f tokens/s  matmul %.2f GFLOP/s (%.0f%% of forward time)\n",
           ndec, sd.forward_ms, (double)ndec / (sd.forward_ms / 1000.0), gd,
           100.0 * sd.matmul_ms / sd.forward_ms);
    printf("decode reads %.2f GB/s of weights (%.1f MiB per token)\n",
           (double)scb_model_weight_bytes(m) * (double)ndec / (sd.forward_ms * 1e6),
           (double)scb_model_weight_bytes(m) / 1048576.0);
    printf("sgemm        %ld^3 alone: %.2f GFLOP/s\n", ssize, peak);
    printf("ratio        prefill matmul / sgemm = %.2f   decode matmul / sgemm = %.2f\n",
           peak > 0 ? gp / peak : 0.0, peak > 0 ? gd / peak : 0.0);
out:
    if (rc < 0) status = scb_cli_fail(cmd, &ctx);
    scb_free(ids);
    scb_free(logits);
    scb_kv_cache_destroy(kv);
    scb_model_destroy(m);
    scb_backend_destroy(be);
    return status;
}
