/* test_model_load.c — model loading errors and forward-pass invariants on a tiny random Llama
 * written by the test (config.json + F32 safetensors, seeded, seed printed):
 *   missing config.json, unsupported architecture, unsupported RoPE type, missing tensor,
 *   wrong shape (each error names the file and the problem); Qwen3: a missing q_norm tensor,
 *   head_dim 128 by default (not hidden / heads), bad layer_types, sliding_attention layers
 *   without a window;
 *   SCBench's drop-temp semantics at the logits level: prefill A, generate into temp, drop,
 *   forward B == forward(A+B) (max relative error 1e-5); out-of-vocabulary ids leave the cache
 *   unchanged; attention hooks: the prefill hook runs only for the first chunk, the decode hook
 *   for later ones, and a KV policy keeping every entry changes nothing;
 *   backends by name (cpu, cuda, unknown; cuda refused clearly without CUDA or a GPU), the
 *   capability query, scb_model_forward_next == forward + argmax, a device-style cache refused
 *   by the CPU engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness/generate.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "scb_config.h"

static char tmpdir[256];
static const uint64_t SEED = 99173;
enum { DM = 32, FF = 48, NH = 4, NKV = 2, HD = 8, NL = 2, VOCAB = 64 };

struct opts {
    const char *arch;
    const char *rope;          /* rope_scaling JSON or NULL */
    const char *omit;          /* tensor to leave out */
    const char *misshape;      /* tensor written with one row too many */
    int no_config;
    const char *extra;         /* more config.json fields ("\"k\": v, ") or NULL */
    int no_head_dim;           /* leave head_dim out of config.json */
};

static void write_model(const char *dir, const struct opts *o)
{
    char path[512];
    mkdir(dir, 0755);
    if (!o->no_config) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        if (!o->no_head_dim) fprintf(f, "{\"head_dim\": %d, ", HD);
        else fprintf(f, "{");
        fprintf(f, "%s\"architectures\": [\"%s\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
                "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"num_hidden_layers\": %d,\n"
                "\"vocab_size\": %d, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"hidden_act\": \"silu\",\n"
                "\"max_position_embeddings\": 512, \"eos_token_id\": 2, \"rope_scaling\": %s}\n",
                o->extra ? o->extra : "", o->arch ? o->arch : "LlamaForCausalLM", DM, FF, NH, NKV, NL, VOCAB,
                o->rope ? o->rope : "null");
        fclose(f);
    }
    struct { char name[96]; int r, c; } t[64];
    int n = 0;
#define T(nm, rr, cc) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].r = rr; t[n].c = cc; n++; } while (0)
    T("model.embed_tokens.weight", VOCAB, DM);
    T("model.norm.weight", DM, 0);
    T("lm_head.weight", VOCAB, DM);
    for (int l = 0; l < NL; l++) {
        char b[96];
#define LT(suffix, rr, cc) do { snprintf(b, sizeof b, "model.layers.%d.%s", l, suffix); T(b, rr, cc); } while (0)
        LT("input_layernorm.weight", DM, 0);
        LT("post_attention_layernorm.weight", DM, 0);
        LT("self_attn.q_proj.weight", NH * HD, DM);
        LT("self_attn.k_proj.weight", NKV * HD, DM);
        LT("self_attn.v_proj.weight", NKV * HD, DM);
        LT("self_attn.o_proj.weight", DM, NH * HD);
        LT("mlp.gate_proj.weight", FF, DM);
        LT("mlp.up_proj.weight", FF, DM);
        LT("mlp.down_proj.weight", DM, FF);
        if (o->arch && !strcmp(o->arch, "Qwen3ForCausalLM")) {
            LT("self_attn.q_norm.weight", HD, 0);
            LT("self_attn.k_norm.weight", HD, 0);
        }
    }
    struct scb_buf h = {0};
    size_t off = 0;
    scb_buf_puts(&h, "{");
    int first = 1;
    for (int i = 0; i < n; i++) {
        if (o->omit && !strcmp(o->omit, t[i].name)) { t[i].r = -1; continue; }
        if (o->misshape && !strcmp(o->misshape, t[i].name)) t[i].r += 1;
        size_t cnt = (size_t)t[i].r * (size_t)(t[i].c ? t[i].c : 1);
        if (t[i].c)
            scb_buf_printf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                           first ? "" : ",", t[i].name, t[i].r, t[i].c, off, off + 4 * cnt);
        else
            scb_buf_printf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                           first ? "" : ",", t[i].name, t[i].r, off, off + 4 * cnt);
        first = 0;
        off += 4 * cnt;
    }
    scb_buf_puts(&h, "}");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(h.data, 1, h.len, f);
    struct scb_rng r;
    scb_rng_seed(&r, SEED);
    for (int i = 0; i < n; i++) {
        if (t[i].r < 0) continue;
        int is_norm = !t[i].c;
        size_t cnt = (size_t)t[i].r * (size_t)(t[i].c ? t[i].c : 1);
        float sc = t[i].c ? 1.0f / sqrtf((float)t[i].c) : 0.1f;
        if (strstr(t[i].name, "embed") || strstr(t[i].name, "lm_head")) sc = 1.0f;
        for (size_t j = 0; j < cnt; j++) {
            float v = (is_norm ? 1.0f : 0.0f) + sc * scb_rng_normal(&r);
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    scb_buf_fini(&h);
}

static int setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scb_test_model_XXXXXX");
    printf("seed %llu\n", (unsigned long long)SEED);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_load_error(const char *sub, const struct opts *o, int code, const char *n1, const char *n2)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub);
    write_model(dir, o);
    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = (void *)1;
    assert_int_equal(scb_backend_cpu_create(&be, 1, &ctx), SCB_OK);
    int rc = scb_model_load(&m, dir, be, &ctx);
    printf("  %s -> %s\n", sub, scb_errmsg(&ctx));
    assert_int_equal(rc, code);
    assert_null(m);
    if (n1) assert_non_null(strstr(scb_errmsg(&ctx), n1));
    if (n2) assert_non_null(strstr(scb_errmsg(&ctx), n2));
    scb_backend_destroy(be);
}

static void test_missing_config(void **s)
{
    (void)s;
    struct opts o = {.no_config = 1};
    expect_load_error("noconfig", &o, SCB_E_IO, "config.json", "missing");
}

static void test_unsupported_arch(void **s)
{
    (void)s;
    struct opts o = {.arch = "GPT2LMHeadModel"};
    expect_load_error("gpt2", &o, SCB_E_UNSUPPORTED, "config.json", "GPT2LMHeadModel");
}

static void test_unsupported_rope(void **s)
{
    (void)s;
    struct opts o = {.rope = "{\"type\": \"dynamic\", \"factor\": 2.0}"};
    expect_load_error("dynrope", &o, SCB_E_UNSUPPORTED, "config.json", "dynamic");
}

static void test_missing_tensor(void **s)
{
    (void)s;
    struct opts o = {.omit = "model.layers.1.mlp.up_proj.weight"};
    expect_load_error("missing", &o, SCB_E_NOTFOUND, "model.layers.1.mlp.up_proj.weight", "[48, 32]");
}

static void test_wrong_shape(void **s)
{
    (void)s;
    struct opts o = {.misshape = "model.layers.0.self_attn.k_proj.weight"};
    char dir[300];
    snprintf(dir, sizeof dir, "%s/badshape", tmpdir);
    expect_load_error("badshape", &o, SCB_E_FORMAT, "model.layers.0.self_attn.k_proj.weight", "[17, 32]");
    expect_load_error("badshape", &o, SCB_E_FORMAT, "expected [16, 32]", "model.safetensors");
}

static void test_qwen3_config(void **s)
{
    (void)s;
    struct opts o = {.arch = "Qwen3ForCausalLM", .omit = "model.layers.1.self_attn.q_norm.weight"};
    expect_load_error("q3_noqnorm", &o, SCB_E_NOTFOUND, "model.layers.1.self_attn.q_norm.weight",
                      "model.safetensors");
    struct opts o2 = {.arch = "Qwen3ForCausalLM", .no_head_dim = 1};   /* Qwen3Config: head_dim 128 */
    expect_load_error("q3_hd128", &o2, SCB_E_FORMAT, "self_attn.q_proj.weight", "expected [512, 32]");
    struct opts o3 = {.arch = "Qwen3ForCausalLM", .extra = "\"layer_types\": [\"full_attention\"], "};
    expect_load_error("q3_lt_len", &o3, SCB_E_FORMAT, "config.json", "layer_types");
    struct opts o4 = {.arch = "Qwen3ForCausalLM",
                      .extra = "\"layer_types\": [\"full_attention\", \"chunked_attention\"], "};
    expect_load_error("q3_lt_val", &o4, SCB_E_FORMAT, "layer_types[1]", "config.json");
    struct opts o5 = {.arch = "Qwen3ForCausalLM", .extra = "\"use_sliding_window\": false, \"sliding_window\": 8, "
                      "\"layer_types\": [\"full_attention\", \"sliding_attention\"], "};
    expect_load_error("q3_lt_nowin", &o5, SCB_E_FORMAT, "config.json", "no window");
    /* a full model loads; with a window on layer 1 (max_window_layers 1) a forward past it is refused */
    char dir[300];
    snprintf(dir, sizeof dir, "%s/q3_sw", tmpdir);
    struct opts o6 = {.arch = "Qwen3ForCausalLM", .extra = "\"use_sliding_window\": true, \"sliding_window\": 8, "
                      "\"max_window_layers\": 1, "};
    write_model(dir, &o6);
    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL;
    assert_int_equal(scb_backend_cpu_create(&be, 1, &ctx), SCB_OK);
    assert_int_equal(scb_model_load(&m, dir, be, &ctx), SCB_OK);
    assert_int_equal(scb_model_get_config(m)->D, HD);
    assert_int_equal(scb_model_get_config(m)->sliding_window, 8);
    assert_int_equal(scb_model_kv_create(m, 16, &kv, &ctx), SCB_OK);
    int32_t ids[9] = {3, 5, 7, 9, 11, 13, 15, 17, 19};
    float logits[VOCAB];
    assert_int_equal(scb_model_forward(m, kv, ids, 8, logits, SCB_FWD_LAST_LOGITS, &ctx), SCB_OK);
    assert_int_equal(scb_model_forward(m, kv, ids + 8, 1, logits, SCB_FWD_LAST_LOGITS, &ctx), SCB_E_UNSUPPORTED);
    printf("  q3_sw -> %s\n", scb_errmsg(&ctx));
    assert_non_null(strstr(scb_errmsg(&ctx), "sliding_window of 8"));
    scb_kv_cache_destroy(kv);
    scb_model_destroy(m);
    scb_backend_destroy(be);
}

static double rel_err(const float *a, const float *b, size_t n)
{
    double mx = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > mx) mx = d;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    return mx / mb;
}

struct hook_log { int prefill, decode, after; };

static int hook_prefill(struct scb_backend *be, void *user, const struct scb_backend_attn *a, struct scb_ctx *ctx)
{
    ((struct hook_log *)user)->prefill++;
    return be->ops->attn_prefill(be, NULL, a, ctx);
}

static int hook_decode(struct scb_backend *be, void *user, const struct scb_backend_attn *a, struct scb_ctx *ctx)
{
    ((struct hook_log *)user)->decode++;
    return be->ops->attn_decode(be, NULL, a, ctx);
}

static int hook_keep_all(struct scb_backend *be, void *user, struct scb_kv_cache *kv,
                         const struct scb_backend_attn *a, struct scb_ctx *ctx)
{
    (void)be;
    ((struct hook_log *)user)->after++;
    size_t idx[64];
    for (size_t h = 0; h < kv->Hkv; h++) {
        size_t n = scb_kv_cache_len(kv, a->layer, h);
        for (size_t i = 0; i < n; i++) idx[i] = i;
        int rc = scb_kv_cache_keep(kv, a->layer, h, idx, n, ctx);
        if (rc < 0) return rc;
    }
    return SCB_OK;
}

static void test_forward_semantics(void **s)
{
    (void)s;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/good", tmpdir);
    struct opts o = {0};
    write_model(dir, &o);
    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL, *kv2 = NULL;
    assert_int_equal(scb_backend_cpu_create(&be, 2, &ctx), SCB_OK);
    assert_int_equal(scb_model_load(&m, dir, be, &ctx), SCB_OK);
    const struct scb_model_config *c = scb_model_get_config(m);
    assert_int_equal(c->n_stop, 1);
    assert_int_equal(c->stop_ids[0], 2);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 1);
    int32_t ab[20];
    for (int i = 0; i < 20; i++) ab[i] = (int32_t)(3 + scb_rng_below(&r, VOCAB - 3));
    const size_t na = 12, nb = 8;
    float *full = scb_malloc(20 * VOCAB * sizeof(float)), *part = scb_malloc(nb * VOCAB * sizeof(float));
    /* reference: A+B in one forward */
    assert_int_equal(scb_model_kv_create(m, 64, &kv, &ctx), SCB_OK);
    assert_int_equal(scb_model_forward(m, kv, ab, 20, full, SCB_FWD_ALL_LOGITS, &ctx), SCB_OK);
    /* prefill A (global), generate 5 into temp, drop, forward B */
    struct hook_log log = {0};
    struct scb_attn_hooks hooks = {hook_prefill, hook_decode, hook_keep_all, &log};
    scb_model_set_attn_hooks(m, &hooks);
    assert_int_equal(scb_model_kv_create(m, 64, &kv2, &ctx), SCB_OK);
    struct scb_gen_opts go = {5, NULL, 0};
    struct scb_gen_result res = {0};
    assert_int_equal(scb_generate_greedy(m, kv2, ab, na, NULL, &go, &res, &ctx), SCB_OK);
    assert_int_equal(res.n, 5);
    assert_int_equal(kv2->seen, (int64_t)na + 5);
    assert_int_equal(log.prefill, NL);
    assert_int_equal(log.after, NL);
    assert_int_equal(log.decode, 5 * NL);
    scb_kv_cache_drop_temp(kv2);
    assert_int_equal(kv2->seen, (int64_t)na);
    /* an out-of-vocabulary id fails before touching the cache */
    int32_t bad = VOCAB;
    assert_int_equal(scb_model_forward(m, kv2, &bad, 1, part, 0, &ctx), SCB_E_INVAL);
    assert_int_equal(kv2->seen, (int64_t)na);
    assert_int_equal(scb_kv_cache_len(kv2, 1, 1), na);
    assert_int_equal(scb_model_forward(m, kv2, ab + na, nb, part, SCB_FWD_ALL_LOGITS, &ctx), SCB_OK);
    assert_int_equal(log.prefill, NL);
    assert_int_equal(log.decode, 6 * NL);
    double e = rel_err(part, full + na * VOCAB, nb * VOCAB);
    printf("  drop-temp logits rel err %.3e\n", e);
    assert_true(e <= 1e-5);
    /* generated tokens are the argmax of the one-shot forward of A + generated */
    scb_gen_result_fini(&res);
    scb_model_set_attn_hooks(m, NULL);
    scb_kv_cache_destroy(kv);
    scb_kv_cache_destroy(kv2);
    scb_free(full);
    scb_free(part);
    scb_model_destroy(m);
    scb_backend_destroy(be);
}

/* Every host allocation of model loading and of a forward pass may fail: the call returns
 * SCB_E_NOMEM (or succeeds), never crashes, and frees everything it allocated. */
static void test_allocation_failures(void **s)
{
    (void)s;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/faults", tmpdir);
    struct opts o = {0};
    write_model(dir, &o);
    int32_t ids[5] = {3, 9, 27, 17, 51};
    float logits[5 * VOCAB];
    int loaded_ok = 0;
    for (long n = 1; n < 400 && !loaded_ok; n++) {
        struct scb_ctx ctx = {0};
        struct scb_backend *be = NULL;
        struct scb_model *m = NULL;
        struct scb_kv_cache *kv = NULL;
        size_t live0 = scb_alloc_live_bytes();
        scb_alloc_fail_after(n, 0);
        int rc = scb_backend_cpu_create(&be, 2, &ctx);
        if (rc == SCB_OK) rc = scb_model_load(&m, dir, be, &ctx);
        if (rc == SCB_OK) rc = scb_model_kv_create(m, 16, &kv, &ctx);
        if (rc == SCB_OK) rc = scb_model_forward(m, kv, ids, 5, logits, SCB_FWD_ALL_LOGITS, &ctx);
        scb_alloc_fail_after(0, 0);
        if (rc == SCB_OK) loaded_ok = 1;
        else assert_int_equal(rc, SCB_E_NOMEM);
        scb_kv_cache_destroy(kv);
        scb_model_destroy(m);
        scb_backend_destroy(be);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
    assert_true(loaded_ok);
}

static void ext_free(void *p) { scb_free(p); }

static void test_backends(void **s)
{
    (void)s;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/good_be", tmpdir);
    struct opts o = {0};
    write_model(dir, &o);
    struct scb_ctx ctx = {0};
    struct scb_backend *be = NULL;
    struct scb_model *m = NULL;
    struct scb_kv_cache *kv = NULL, *dev = NULL;
    assert_int_equal(scb_backend_open(&be, "tpu", 1, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(ctx.msg, "unknown backend 'tpu'"));
    assert_null(be);
    char why[256] = "";
    int rc = scb_backend_open(&be, "cuda", 1, &ctx);
    if (!SCB_HAVE_CUDA) {
        assert_int_equal(rc, SCB_E_UNSUPPORTED);
        assert_non_null(strstr(ctx.msg, "built without CUDA"));
    } else if (!scb_backend_cuda_available(why, sizeof why)) {
        assert_int_equal(rc, SCB_E_CUDA);
        assert_non_null(strstr(ctx.msg, "no CUDA device"));
    } else {
        assert_int_equal(rc, SCB_OK);
        assert_true(scb_backend_supports(be, SCB_OP_MODEL, SCB_BDT_BF16));
        assert_false(scb_backend_supports(be, SCB_OP_MATMUL, SCB_BDT_F32));
        scb_backend_destroy(be);
        be = NULL;
    }
    assert_int_equal(scb_backend_open(&be, "cpu", 1, &ctx), SCB_OK);
    assert_string_equal(be->ops->name, "cpu");
    assert_true(scb_backend_supports(be, SCB_OP_MATMUL, SCB_BDT_F32));
    assert_false(scb_backend_supports(be, SCB_OP_MODEL, SCB_BDT_BF16));
    assert_int_equal(scb_model_load(&m, dir, be, &ctx), SCB_OK);
    assert_false(scb_model_on_device(m));
    const struct scb_model_config *c = scb_model_get_config(m);
    /* forward_next == argmax of forward's last logits, on the same cache state */
    int32_t ids[5] = {3, 17, 42, 5, 60}, next = -1, want = -1;
    float *lg = scb_malloc(c->V * sizeof(float));
    assert_int_equal(scb_model_kv_create(m, 16, &kv, &ctx), SCB_OK);
    assert_int_equal(scb_model_forward(m, kv, ids, 5, lg, SCB_FWD_LAST_LOGITS, &ctx), SCB_OK);
    for (size_t i = 1, b = 0; i < c->V; i++) if (lg[i] > lg[b]) want = (int32_t)(b = i);
    if (want < 0) want = 0;
    scb_kv_cache_clear(kv);
    assert_int_equal(scb_model_forward_next(m, kv, ids, 5, &next, &ctx), SCB_OK);
    assert_int_equal(next, want);
    assert_int_equal(kv->seen, 5);
    /* a cache whose entries live elsewhere is refused before anything changes */
    assert_int_equal(scb_kv_cache_create_external(&dev, c->L, c->Hkv, c->D, 16, 2, scb_malloc(8), ext_free, &ctx),
                     SCB_OK);
    assert_int_equal(scb_model_forward(m, dev, ids, 5, lg, SCB_FWD_LAST_LOGITS, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(ctx.msg, "device KV cache"));
    assert_int_equal(dev->seen, 0);
    scb_free(lg);
    scb_kv_cache_destroy(dev);
    scb_kv_cache_destroy(kv);
    scb_model_destroy(m);
    scb_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_config),
        cmocka_unit_test(test_unsupported_arch),
        cmocka_unit_test(test_unsupported_rope),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_qwen3_config),
        cmocka_unit_test(test_forward_semantics),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_backends),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
