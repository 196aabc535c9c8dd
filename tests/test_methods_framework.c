/* test_methods_framework.c — the method registry (every method, its stage, axis and SCBench's
 * defaults from spec/methods.md §0.4), typed options, spec parsing (good specs, canonical string
 * and JSON round trips, bad specs and their error texts), hook wrappers (NULL = dense / keep-all),
 * cost accounting, and the `scbench methods` command. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "methods_testutil.h"
#include "methods/dense.h"
#include "methods/method.h"

static uint64_t seed;

static void test_registry(void **st)
{
    (void)st;
    struct { const char *name; int stage, axis; } want[] = {
        {"dense", SCB_STAGE_NONE, SCB_AXIS_BOTH},
        {"a_shape", SCB_STAGE_GENERATION, SCB_AXIS_PREFILL},
        {"tri_shape", SCB_STAGE_GENERATION, SCB_AXIS_PREFILL},
        {"minference", SCB_STAGE_GENERATION, SCB_AXIS_PREFILL},
        {"streamingllm", SCB_STAGE_COMPRESSION, SCB_AXIS_KV},
        {"snapkv", SCB_STAGE_COMPRESSION, SCB_AXIS_KV},
        {"pyramidkv", SCB_STAGE_COMPRESSION, SCB_AXIS_KV},
        {"kivi", SCB_STAGE_COMPRESSION, SCB_AXIS_KV},
        {"cacheblend", SCB_STAGE_RETRIEVAL, SCB_AXIS_PREFILL},
        {"quest", SCB_STAGE_LOADING, SCB_AXIS_KV},
        {"retr_attn", SCB_STAGE_LOADING, SCB_AXIS_KV},
    };
    int n = 0;
    for (const struct scb_method_ops *const *a = scb_method_all(); *a; a++) n++;
    assert_int_equal(n, (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct scb_method_ops *o = scb_method_find(want[i].name);
        assert_non_null(o);
        assert_int_equal(o->abi, SCB_METHOD_ABI);
        assert_int_equal(o->stage, want[i].stage);
        assert_int_equal(o->axis, want[i].axis);
        assert_non_null(o->summary);
        assert_non_null(o->scbench_name);
        struct scb_method m;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_method_create(&m, o, &ctx), SCB_OK);   /* every default parses */
        for (const struct scb_option *op = o->options; op && op->name; op++) {
            char buf[600];
            assert_int_equal(scb_method_get(&m, op->name, buf, sizeof buf), SCB_OK);
            assert_non_null(op->help);
        }
        scb_method_fini(&m);
    }
    assert_null(scb_method_find("nope"));
    assert_string_equal(scb_method_stage_name(SCB_STAGE_LOADING), "loading");
}

static void expect_opt(const struct scb_method *m, const char *name, const char *val)
{
    char buf[600];
    assert_int_equal(scb_method_get(m, name, buf, sizeof buf), SCB_OK);
    if (strcmp(buf, val)) fail_msg("%s.%s = %s, expected %s", m->ops->name, name, buf, val);
}

static void test_defaults(void **st)
{
    (void)st;
    /* spec/methods.md §0.4 */
    struct { const char *method, *opt, *val; } d[] = {
        {"a_shape", "n_init", "128"}, {"a_shape", "n_local", "3968"},
        {"tri_shape", "n_init", "128"}, {"tri_shape", "n_local", "3968"}, {"tri_shape", "n_last", "100"},
        {"minference", "vertical", "512"}, {"minference", "slash", "2048"}, {"minference", "last_q", "64"},
        {"minference", "block_topk", "100"}, {"minference", "starting_layer", "-1"},
        {"streamingllm", "n_init", "128"}, {"streamingllm", "n_local", "3968"},
        {"snapkv", "budget", "4096"}, {"snapkv", "window", "32"}, {"snapkv", "kernel", "5"},
        {"snapkv", "pooling", "avgpool"}, {"snapkv", "gqa", "false"},
        {"pyramidkv", "budget", "4096"}, {"pyramidkv", "window", "32"}, {"pyramidkv", "beta", "20"},
        {"kivi", "bits", "2"}, {"kivi", "group", "32"}, {"kivi", "residual", "32"},
        {"quest", "page", "16"}, {"quest", "budget", "1024"},
        {"retr_attn", "top_k", "4096"}, {"retr_attn", "n_sink", "128"}, {"retr_attn", "n_recent", "512"},
        {"retr_attn", "index", "flat"},
        {"cacheblend", "ratio", "0.15"}, {"cacheblend", "min_tokens", "256"}, {"cacheblend", "chunk", "256"},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        struct scb_method m;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_method_create(&m, scb_method_find(d[i].method), &ctx), SCB_OK);
        expect_opt(&m, d[i].opt, d[i].val);
        scb_method_fini(&m);
    }
}

static void test_spec_good(void **st)
{
    (void)st;
    struct { const char *in, *pre, *kv, *canon; } g[] = {
        {"dense", "dense", "dense", "dense"},
        {"a_shape", "a_shape", "dense", "a_shape"},
        {"minference", "minference", "dense", "minference"},
        {"snapkv:budget=2048", "dense", "snapkv", "snapkv:budget=2048"},
        {"minference+snapkv", "minference", "snapkv", "minference+snapkv"},
        {"tri_shape+kivi:bits=4", "tri_shape", "kivi", "tri_shape+kivi:bits=4"},
        {"snapkv:budget=1024,window=32", "dense", "snapkv", "snapkv:budget=1024"},
        {"snapkv:window=16,budget=1024", "dense", "snapkv", "snapkv:budget=1024,window=16"},
        {"kivi+minference:ratio=0.5", "minference", "kivi", "minference:ratio=0.5+kivi"},
        {"dense+quest", "dense", "quest", "quest"},
        {"dense+dense", "dense", "dense", "dense"},
        {"retr_attn:index=graph,top_k=64", "dense", "retr_attn", "retr_attn:top_k=64,index=graph"},
        {"snapkv:gqa=yes,pooling=maxpool", "dense", "snapkv", "snapkv:pooling=maxpool,gqa=true"},
        {"cacheblend:ratio=1", "cacheblend", "dense", "cacheblend:ratio=1"},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
        struct scb_method_spec s, s2;
        struct scb_ctx ctx = {0};
        int rc = scb_method_spec_parse(g[i].in, &s, &ctx);
        if (rc) fail_msg("%s: %s", g[i].in, scb_errmsg(&ctx));
        assert_string_equal(s.prefill.ops->name, g[i].pre);
        assert_string_equal(s.kv.ops->name, g[i].kv);
        char *str = NULL, *js = NULL, *str2 = NULL, *js2 = NULL;
        assert_int_equal(scb_method_spec_string(&s, &str, &ctx), SCB_OK);
        if (strcmp(str, g[i].canon)) fail_msg("%s -> '%s', expected '%s'", g[i].in, str, g[i].canon);
        assert_int_equal(scb_method_spec_json(&s, &js, &ctx), SCB_OK);
        /* canonical string parses back to the same spec */
        assert_int_equal(scb_method_spec_parse(str, &s2, &ctx), SCB_OK);
        assert_int_equal(scb_method_spec_string(&s2, &str2, &ctx), SCB_OK);
        assert_int_equal(scb_method_spec_json(&s2, &js2, &ctx), SCB_OK);
        assert_string_equal(str, str2);
        assert_string_equal(js, js2);
        /* JSON carries every option of both axes */
        cJSON *j = cJSON_Parse(js);
        assert_non_null(j);
        assert_string_equal(cJSON_GetObjectItem(j, "spec")->valuestring, g[i].canon);
        const char *axes[2] = {"prefill", "kv"};
        const struct scb_method *ms[2] = {&s.prefill, &s.kv};
        for (int a = 0; a < 2; a++) {
            cJSON *o = cJSON_GetObjectItem(j, axes[a]);
            assert_string_equal(cJSON_GetObjectItem(o, "name")->valuestring, ms[a]->ops->name);
            assert_string_equal(cJSON_GetObjectItem(o, "stage")->valuestring, scb_method_stage_name(ms[a]->ops->stage));
            cJSON *opts = cJSON_GetObjectItem(o, "options");
            int n = 0;
            for (const struct scb_option *op = ms[a]->ops->options; op && op->name; op++, n++)
                assert_non_null(cJSON_GetObjectItem(opts, op->name));
            assert_int_equal(cJSON_GetArraySize(opts), n);
        }
        cJSON_Delete(j);
        scb_free(str); scb_free(js); scb_free(str2); scb_free(js2);
        scb_method_spec_fini(&s); scb_method_spec_fini(&s2);
    }
    /* typed values */
    struct scb_method_spec s;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_method_spec_parse("snapkv:budget=1024,window=32,gqa=true", &s, &ctx), SCB_OK);
    assert_int_equal(scb_method_opt_int(&s.kv, "budget"), 1024);
    assert_int_equal(scb_method_opt_int(&s.kv, "gqa"), 1);
    assert_string_equal(scb_method_opt_str(&s.kv, "pooling"), "avgpool");
    char *js = NULL;
    assert_int_equal(scb_method_spec_json(&s, &js, &ctx), SCB_OK);
    assert_non_null(strstr(js, "\"budget\":1024"));
    assert_non_null(strstr(js, "\"gqa\":true"));
    scb_free(js);
    scb_method_spec_fini(&s);
    assert_int_equal(scb_method_spec_parse("cacheblend:ratio=0.25", &s, &ctx), SCB_OK);
    assert_true(scb_method_opt_float(&s.prefill, "ratio") == 0.25);
    scb_method_spec_fini(&s);
}

static void test_spec_bad(void **st)
{
    (void)st;
    struct { const char *in; int code; const char *n1, *n2; } b[] = {
        {"", SCB_E_INVAL, "empty", NULL},
        {"foo", SCB_E_NOTFOUND, "unknown method 'foo'", "methods are: dense, a_shape, tri_shape, minference"},
        {"snapkv:budgt=1", SCB_E_NOTFOUND, "unknown option 'budgt'", "options are: budget (int, default 4096), window"},
        {"snapkv:budget=abc", SCB_E_INVAL, "option budget expects an integer", "got 'abc'"},
        {"snapkv:budget=0", SCB_E_INVAL, "in [2, 1000000000]", NULL},
        {"snapkv:budget=99999999999", SCB_E_INVAL, "expects an integer", NULL},
        {"a_shape+minference", SCB_E_INVAL, "a_shape and minference are both prefill patterns", "one KV policy"},
        {"snapkv+quest", SCB_E_INVAL, "snapkv and quest are both KV policies", NULL},
        {"a_shape+snapkv+kivi", SCB_E_INVAL, "at most two methods", NULL},
        {"snapkv:", SCB_E_INVAL, "no options after ':'", NULL},
        {"snapkv:budget", SCB_E_INVAL, "'budget' of snapkv is not name=value", NULL},
        {"snapkv:=3", SCB_E_INVAL, "not name=value", NULL},
        {"+snapkv", SCB_E_INVAL, "empty method name", NULL},
        {"snapkv:pooling=median", SCB_E_INVAL, "must be one of avgpool|maxpool", NULL},
        {"snapkv:gqa=maybe", SCB_E_INVAL, "expects true or false", NULL},
        {"minference:ratio=nan", SCB_E_INVAL, "option ratio expects a number", NULL},
        {"dense:x=1", SCB_E_NOTFOUND, "dense: unknown option 'x'; it has no options", NULL},
        {"retr_attn:index=hnsw", SCB_E_INVAL, "flat|graph", NULL},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        struct scb_method_spec s;
        struct scb_ctx ctx = {0};
        int rc = scb_method_spec_parse(b[i].in, &s, &ctx);
        if (rc != b[i].code) fail_msg("'%s': status %d, expected %d (%s)", b[i].in, rc, b[i].code, scb_errmsg(&ctx));
        const char *msg = scb_errmsg(&ctx);
        if (!strstr(msg, b[i].n1) || (b[i].n2 && !strstr(msg, b[i].n2)))
            fail_msg("'%s': message '%s' lacks '%s' / '%s'", b[i].in, msg, b[i].n1, b[i].n2 ? b[i].n2 : "");
        assert_null(s.prefill.ops);
        assert_null(s.kv.ops);
    }
    /* values valid for the parser but not together: reported by init */
    struct scb_model_info mi = {2, 4, 2, 64, "tiny"};
    const char *late[][2] = {{"kivi:bits=3", "must be 2, 4 or 8"}, {"snapkv:budget=32,window=32", "smaller than budget"},
                             {"snapkv:kernel=4", "odd"}, {"kivi:group=24", "divide residual"}};
    for (size_t i = 0; i < 4; i++) {
        struct scb_method_spec s;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_method_spec_parse(late[i][0], &s, &ctx), SCB_OK);
        assert_int_equal(scb_method_init(&s.kv, &mi, &ctx), SCB_E_INVAL);
        if (!strstr(scb_errmsg(&ctx), late[i][1])) fail_msg("'%s': '%s'", late[i][0], scb_errmsg(&ctx));
        scb_method_spec_fini(&s);
    }
}

static void test_wrappers_and_cost(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed);
    struct tu_qkv t; tu_qkv_make(&t, &r, 20, 20, 4, 2, 8);
    struct scb_ctx ctx = {0};
    struct scb_method_spec s;
    assert_int_equal(scb_method_spec_parse("dense", &s, &ctx), SCB_OK);
    struct scb_model_info mi = {3, 4, 2, 8, "tiny"};
    assert_int_equal(scb_method_init(&s.prefill, &mi, &ctx), SCB_OK);
    assert_int_equal(scb_method_prefill_attn(&s.prefill, &t.a, &ctx), SCB_OK);
    struct scb_attn_args b = t.a; b.out = t.o2;
    assert_int_equal(scb_attn_dense_ref(&b, &ctx), SCB_OK);
    assert_memory_equal(t.o, t.o2, sizeof(float) * 20 * 4 * 8);
    assert_int_equal(scb_method_decode_attn(&s.kv, &t.a, &ctx), SCB_OK);
    assert_memory_equal(t.o, t.o2, sizeof(float) * 20 * 4 * 8);
    struct scb_kv_compress_args ca = {t.k, t.v, t.q, 20, 20, 4, 2, 8, 0, 0, 3};
    struct scb_kv_keep kp;
    assert_int_equal(scb_method_kv_after_prefill(&s.kv, &ca, &kp, &ctx), SCB_OK);
    assert_int_equal(kp.H, 2);
    for (int h = 0; h < 2; h++) assert_int_equal(kp.n[h], 20);
    scb_kv_keep_fini(&kp);
    assert_int_equal(scb_method_turn_end(&s.kv, &ctx), SCB_OK);
    scb_method_spec_fini(&s);
    tu_qkv_free(&t);

    /* cost: Llama-3.1-8B shape, 128K prompt, bf16 */
    struct scb_model_info ll = {32, 32, 8, 128, "llama"};
    struct scb_cost_query cq = {&ll, 131072, 131072 + 100, 2};
    struct scb_cost dense, c;
    scb_method_cost_dense(&cq, &dense);
    assert_true(dense.kv_entries == (int64_t)32 * 8 * cq.T);
    assert_true(dense.kv_bytes == (int64_t)2 * 32 * 8 * cq.T * 128 * 2);
    const char *sp[] = {"streamingllm", "streamingllm:gqa=true", "snapkv", "pyramidkv", "kivi", "kivi:bits=4", "quest", "retr_attn", "a_shape"};
    int64_t bytes[9];
    for (int i = 0; i < 9; i++) {
        assert_int_equal(scb_method_spec_parse(sp[i], &s, &ctx), SCB_OK);
        struct scb_method *m = strcmp(sp[i], "a_shape") ? &s.kv : &s.prefill;
        scb_method_cost(m, &cq, &c);
        bytes[i] = c.kv_bytes;
        if (i == 0) {   /* 4096 + 100 tokens, stored for Hq = 32 heads (GQA repetition) */
            assert_true(c.kv_entries == (int64_t)32 * 8 * 4196);
            assert_true(c.kv_bytes == (int64_t)2 * 32 * 32 * 4196 * 128 * 2);
        }
        if (i == 2) assert_true(c.kv_bytes == bytes[0]);                 /* same 4096 budget */
        if (i == 3) {   /* mean PyramidKV budget over 32 layers: 4065.5 selected + 32 window */
            assert_true(c.kv_entries == (int64_t)8 * (130096 + 32 * 32 + 32 * 100));   /* 4065.5 * 32 = 130096 */
        }
        if (i == 8) assert_true(c.prefill_density < 0.07 && c.prefill_density > 0.05);
        scb_method_spec_fini(&s);
    }
    assert_true(bytes[0] == 4 * bytes[1]);                               /* G = 4 */
    assert_true(bytes[4] < dense.kv_bytes / 5 && bytes[4] > dense.kv_bytes / 6);  /* 2-bit: ~5.3x */
    assert_true(bytes[5] > bytes[4] && bytes[5] < dense.kv_bytes / 3);
    assert_true(bytes[6] > dense.kv_bytes);                              /* Quest adds page metadata */
    assert_true(bytes[7] > dense.kv_bytes);                              /* fp32 keys on the CPU index */
}

static int run_cmd(const char *cmd, char *out, size_t n)
{
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t got = fread(out, 1, n - 1, p);
    out[got] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **st)
{
    (void)st;
    const char *exe = getenv("SCBENCH");
    if (!exe) skip();
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' methods", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    for (const struct scb_method_ops *const *a = scb_method_all(); *a; a++) assert_non_null(strstr(out, (*a)->name));
    assert_non_null(strstr(out, "stage 4 loading"));
    assert_non_null(strstr(out, "max_capacity_prompt"));
    snprintf(cmd, sizeof cmd, "'%s' methods --json", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 11);
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "'%s' methods --resolve 'tri_shape+kivi:bits=4'", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "tri_shape+kivi:bits=4\n{\"spec\""));
    snprintf(cmd, sizeof cmd, "'%s' methods --resolve 'snapkv:budget=x' 2>&1", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "scbench methods: method spec 'snapkv:budget=x'"));
    /* --cost: StreamingLLM on Llama-3.1-8B's shape keeps 4096 tokens x 32 layers x 8 KV heads,
     * stored for 32 query heads in bf16; A-shape's density over 8192 tokens follows §3.1 */
    snprintf(cmd, sizeof cmd, "'%s' methods --resolve a_shape+streamingllm --cost 8192", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"kv_entries\":1048576,\"kv_bytes\":2147483648,"));
    {
        double got = 0, tot = 8192.0 * 8193 / 2;
        for (int p = 0; p < 8192; p++) got += p + 1 < 4096 ? p + 1 : 4096;
        char want[64];
        snprintf(want, sizeof want, "\"prefill_density\":%.6f}", got / tot);
        assert_non_null(strstr(out, want));
    }
    snprintf(cmd, sizeof cmd, "'%s' methods --cost 5 2>&1", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' methods --resolve dense --cost 9:3 2>&1", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' methods --help", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: scbench methods"));
    snprintf(cmd, sizeof cmd, "'%s' methods --bogus 2>&1", exe);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
}

/* Every allocation failure in the parser and the algorithms is reported as SCB_E_NOMEM and leaks
 * nothing (run under ASan in CI), never a crash. */
#include "methods/kivi.h"
#include "methods/minference.h"
#include "methods/retr_attn.h"
#include "methods/snapkv.h"
static int run_all_once(struct tu_qkv *t, const float *qp)
{
    struct scb_ctx ctx = {0};
    int rc, worst = SCB_OK;
#define NOTE(x) do { rc = (x); if (rc != SCB_OK && rc != SCB_E_NOMEM) return rc; if (rc) worst = rc; } while (0)
    struct scb_method_spec s;
    rc = scb_method_spec_parse("minference:ratio=0.5+snapkv:budget=40,window=8", &s, &ctx);
    NOTE(rc);
    if (!rc) {
        char *js = NULL, *str = NULL;
        NOTE(scb_method_spec_json(&s, &js, &ctx));
        NOTE(scb_method_spec_string(&s, &str, &ctx));
        scb_free(js); scb_free(str);
        struct scb_model_info mi = {1, 4, 2, 16, "tiny"};
        rc = scb_method_init(&s.prefill, &mi, &ctx);
        NOTE(rc);
        if (!rc) NOTE(scb_method_prefill_attn(&s.prefill, &t->a, &ctx));
        struct scb_kv_compress_args ca = {t->k, t->v, qp, 100, 100, 4, 2, 16, 0, 0, 1};
        struct scb_kv_keep kp;
        rc = scb_method_kv_after_prefill(&s.kv, &ca, &kp, &ctx);
        NOTE(rc);
        if (!rc) scb_kv_keep_fini(&kp);
        scb_method_spec_fini(&s);
    }
    struct scb_kivi_cache *c = NULL;
    rc = scb_kivi_cache_create(&c, 2, 16, 2, 16, 32, &ctx);
    NOTE(rc);
    if (!rc) {
        rc = scb_kivi_cache_prefill(c, t->k, t->v, 100, &ctx);
        NOTE(rc);
        float o[4 * 16];
        if (!rc) NOTE(scb_kivi_cache_attn(c, t->q, 4, 0.0f, NULL, NULL, 0, o, NULL, &ctx));
        scb_kivi_cache_destroy(c);
    }
    struct scb_retr_graph *g = NULL;
    rc = scb_retr_graph_build(&g, t->k, 32, NULL, 100, 16, qp, 64, 50, NULL, &ctx);
    NOTE(rc);
    if (!rc) {
        NOTE(scb_retr_graph_add(g, t->k, 100, &ctx));
        int32_t id[8]; int v;
        rc = scb_retr_graph_search(g, t->q, 8, INT32_MAX, id, NULL, &v, &ctx);
        NOTE(rc < 0 ? rc : SCB_OK);
        scb_retr_graph_destroy(g);
    }
    NOTE(scb_retr_attn(&t->a, 4, 8, 10, &ctx));
#undef NOTE
    return worst;
}

static void test_alloc_failures(void **st)
{
    (void)st;
    struct scb_rng r; scb_rng_seed(&r, seed + 1);
    struct tu_qkv t; tu_qkv_make(&t, &r, 100, 100, 4, 2, 16);
    float *qp = tu_randn(&r, (size_t)100 * 4 * 16, 1.0f);
    size_t live = scb_alloc_live_bytes();
    assert_int_equal(run_all_once(&t, qp), SCB_OK);
    assert_int_equal(scb_alloc_live_bytes(), live);
    int failures = 0;
    for (long n = 1; n < 400; n++) {
        scb_alloc_fail_after(n, 0);
        int rc = run_all_once(&t, qp);
        scb_alloc_fail_after(0, 0);
        assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
        failures += rc == SCB_E_NOMEM;
        assert_int_equal(scb_alloc_live_bytes(), live);     /* nothing leaked on any path */
    }
    assert_true(failures > 50);
    scb_free(qp);
    tu_qkv_free(&t);
}

int main(void)
{
    seed = tu_seed("test_methods_framework");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_spec_good),
        cmocka_unit_test(test_spec_bad),
        cmocka_unit_test(test_wrappers_and_cost),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
