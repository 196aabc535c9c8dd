/* test_method_bind.c — every long-context method through the whole engine (harness/method_bind.h)
 * on small random Llama models written by the test (config.json + F32 safetensors, seeded, seed
 * printed; SCB_TEST_SEED overrides) and on the committed transformers fixture llama_gqa:
 *   - with a budget covering the sequence, every KV policy and every prefill pattern whose mask
 *     covers the causal triangle gives BITWISE the logits of the dense engine (no hooks) through
 *     a first prefill, decode steps into temp, drop_temp, a follow-up prefill and decode steps;
 *   - StreamingLLM keeps exactly [0, n_init) + [N - n_local, N) per stored head and layer, new
 *     tokens continue at position `seen`; SnapKV / PyramidKV keep, per stored head (Hq heads by
 *     default, Hkv with gqa=true) and per layer, the selection computed from the engine's own
 *     queries and keys, with PyramidKV's per-layer budgets (spec §5.2 schedule, recomputed here);
 *   - per-turn costs: StreamingLLM entries, SnapKV physical bytes = G x GQA-aware bytes, KIVI-2
 *     bytes from the spec's layout formula (about 1/8 of bf16 plus scales), A-shape density,
 *     retrieval recall;
 *   - a per-query-head policy on a cache of KV heads is refused with a clear message. */
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

#include "harness/method_bind.h"
#include "harness/model.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/method.h"
#include "methods/snapkv.h"

static char tmpdir[256];
static uint64_t SEED = 424242;

struct shape { int dm, ff, nh, nkv, hd, nl, vocab; };
static const struct shape SH1 = {32, 48, 4, 2, 16, 3, 64};   /* G = 2, 3 layers */
static const struct shape SH2 = {32, 40, 8, 2, 16, 2, 80};   /* G = 4 */

/* ---- random model ----------------------------------------------------------------------- */
static void write_model(const char *dir, const struct shape *s, uint64_t seed)
{
    char path[512];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, \"intermediate_size\": %d,\n"
            "\"num_attention_heads\": %d, \"num_key_value_heads\": %d, \"head_dim\": %d, \"num_hidden_layers\": %d,\n"
            "\"vocab_size\": %d, \"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"hidden_act\": \"silu\",\n"
            "\"max_position_embeddings\": 8192, \"eos_token_id\": null}\n",
            s->dm, s->ff, s->nh, s->nkv, s->hd, s->nl, s->vocab);
    fclose(f);
    struct { char name[96]; int r, c; } t[96];
    int n = 0;
#define T(nm, rr, cc) do { snprintf(t[n].name, sizeof t[n].name, "%s", nm); t[n].r = rr; t[n].c = cc; n++; } while (0)
    T("model.embed_tokens.weight", s->vocab, s->dm);
    T("model.norm.weight", s->dm, 0);
    T("lm_head.weight", s->vocab, s->dm);
    for (int l = 0; l < s->nl; l++) {
        char b[96];
#define LT(suffix, rr, cc) do { snprintf(b, sizeof b, "model.layers.%d.%s", l, suffix); T(b, rr, cc); } while (0)
        LT("input_layernorm.weight", s->dm, 0);
        LT("post_attention_layernorm.weight", s->dm, 0);
        LT("self_attn.q_proj.weight", s->nh * s->hd, s->dm);
        LT("self_attn.k_proj.weight", s->nkv * s->hd, s->dm);
        LT("self_attn.v_proj.weight", s->nkv * s->hd, s->dm);
        LT("self_attn.o_proj.weight", s->dm, s->nh * s->hd);
        LT("mlp.gate_proj.weight", s->ff, s->dm);
        LT("mlp.up_proj.weight", s->ff, s->dm);
        LT("mlp.down_proj.weight", s->dm, s->ff);
    }
    struct scb_buf h = {0};
    size_t off = 0;
    scb_buf_puts(&h, "{");
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)t[i].r * (size_t)(t[i].c ? t[i].c : 1);
        if (t[i].c)
            scb_buf_printf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]}",
                           i ? "," : "", t[i].name, t[i].r, t[i].c, off, off + 4 * cnt);
        else
            scb_buf_printf(&h, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                           i ? "," : "", t[i].name, t[i].r, off, off + 4 * cnt);
        off += 4 * cnt;
    }
    scb_buf_puts(&h, "}");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(h.data, 1, h.len, f);
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        size_t cnt = (size_t)t[i].r * (size_t)(t[i].c ? t[i].c : 1);
        float sc = t[i].c ? 1.5f / sqrtf((float)t[i].c) : 0.1f;
        if (strstr(t[i].name, "embed") || strstr(t[i].name, "lm_head")) sc = 1.0f;
        for (size_t j = 0; j < cnt; j++) {
            float v = (t[i].c ? 0.0f : 1.0f) + sc * scb_rng_normal(&r);
            fwrite(&v, 4, 1, f);
        }
    }
    fclose(f);
    scb_buf_fini(&h);
}

struct env {
    struct scb_backend *be;
    struct scb_model *m;
    size_t V;
    char dir[512];
};

static void env_open(struct env *e, const char *dir)
{
    struct scb_ctx ctx = {0};
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "%s", dir);
    assert_int_equal(scb_backend_cpu_create(&e->be, 1, &ctx), SCB_OK);
    int rc = scb_model_load(&e->m, dir, e->be, &ctx);
    if (rc) fprintf(stderr, "%s\n", ctx.msg);
    assert_int_equal(rc, SCB_OK);
    e->V = scb_model_get_config(e->m)->V;
}

static void env_close(struct env *e)
{
    scb_model_destroy(e->m);
    scb_backend_destroy(e->be);
}

static void random_model(struct env *e, const char *name, const struct shape *s, uint64_t seed)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    write_model(dir, s, seed);
    env_open(e, dir);
}

static void fixture_model(struct env *e, const char *name)
{
    const char *fx = getenv("SCB_FIXTURES_DIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", fx ? fx : "tests/fixtures", name);
    env_open(e, dir);
}

static void rand_ids(struct scb_rng *r, int32_t *ids, size_t n, size_t V)
{
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)(1 + scb_rng_below(r, V - 1));
}

static int32_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return (int32_t)b;
}

/* ---- one session ---------------------------------------------------------------------------
 * First prefill A (all logits), nd1 greedy decode steps into temp, drop temp (or commit), a
 * follow-up prefill B (all logits), nd2 decode steps, drop. mode: SESS_DROP (multi-turn),
 * SESS_COMMIT (--disable_golden_context), SESS_REQUEST (multi-request: B is a query in the temp
 * segment). Logits are appended to out:
 * (nA + nd1 + nB + nd2, V). spec NULL: the engine without any binding. */
enum { ND1 = 6, ND2 = 4, CAP = 512 };
enum { SESS_DROP = 0, SESS_COMMIT = 1, SESS_REQUEST = 2 };
struct sess_out {
    float *logits;
    struct scb_turn_costs c1, c2;    /* costs after turn 1 / turn 2 (after drop) */
};

static void forward_ok(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *ids, size_t n, float *lg, int flags)
{
    struct scb_ctx ctx = {0};
    int rc = scb_model_forward(m, kv, ids, n, lg, flags, &ctx);
    if (rc) fprintf(stderr, "forward: %s\n", ctx.msg);
    assert_int_equal(rc, SCB_OK);
}

static void run_session(struct env *e, const char *spec_text, const int32_t *A, size_t nA, const int32_t *B,
                        size_t nB, int mode, struct sess_out *so)
{
    struct scb_ctx ctx = {0};
    struct scb_method_spec spec = {0};
    struct scb_method_binding *b = NULL;
    struct scb_kv_cache *kv = NULL;
    size_t V = e->V, rows = nA + ND1 + nB + ND2;
    so->logits = scb_malloc(rows * V * sizeof(float));   /* (rows, V) */
    assert_non_null(so->logits);
    if (spec_text) {
        int rc = scb_method_spec_parse(spec_text, &spec, &ctx);
        if (!rc) rc = scb_method_bind_create(&b, e->m, &spec, &ctx);
        if (!rc) rc = scb_method_bind_kv_create(b, CAP, &kv, &ctx);
        if (!rc) rc = scb_method_bind_session_begin(b, kv, &ctx);
        if (rc) fprintf(stderr, "%s: %s\n", spec_text, ctx.msg);
        assert_int_equal(rc, SCB_OK);
    } else {
        assert_int_equal(scb_model_kv_create(e->m, CAP, &kv, &ctx), SCB_OK);
    }
    float *lg = so->logits;
    for (int turn = 0; turn < 2; turn++) {
        const int32_t *P = turn ? B : A;
        size_t nP = turn ? nB : nA, nd = turn ? ND2 : ND1;
        scb_kv_cache_set_mode(kv, turn && mode == SESS_REQUEST ? SCB_KV_APPEND_TEMP : SCB_KV_APPEND_GLOBAL);
        forward_ok(e->m, kv, P, nP, lg, SCB_FWD_ALL_LOGITS);
        lg += nP * V;
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
        for (size_t s = 0; s < nd; s++) {
            int32_t tok = argmax(lg - V, V);
            forward_ok(e->m, kv, &tok, 1, lg, SCB_FWD_LAST_LOGITS);
            lg += V;
        }
        if (mode == SESS_COMMIT) scb_kv_cache_commit_temp(kv);
        else scb_kv_cache_drop_temp(kv);
        if (b) {
            assert_int_equal(scb_method_bind_turn_end(b, kv, &ctx), SCB_OK);
            assert_int_equal(scb_method_bind_costs(b, kv, turn ? &so->c2 : &so->c1, &ctx), SCB_OK);
        }
    }
    scb_kv_cache_destroy(kv);
    scb_method_bind_destroy(b);
    scb_method_spec_fini(&spec);
}

/* ---- bitwise identity with a covering budget ------------------------------------------------ */
static void check_bitwise(struct env *e, const char *tag, const char *const *specs, size_t nspecs, uint64_t seed,
                          size_t nA, size_t nB, int mode)
{
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    int32_t A[256], B[64];
    rand_ids(&r, A, nA, e->V);
    rand_ids(&r, B, nB, e->V);
    struct sess_out ref = {0};
    run_session(e, NULL, A, nA, B, nB, mode, &ref);
    size_t n = (nA + ND1 + nB + ND2) * e->V;
    for (size_t i = 0; i < nspecs; i++) {
        struct sess_out so = {0};
        run_session(e, specs[i], A, nA, B, nB, mode, &so);
        if (memcmp(so.logits, ref.logits, n * sizeof(float))) {
            size_t j = 0;
            while (so.logits[j] == ref.logits[j]) j++;
            fprintf(stderr, "%s: spec %s differs from dense at logit %zu (row %zu): %.9g vs %.9g\n", tag, specs[i], j,
                    j / e->V, (double)so.logits[j], (double)ref.logits[j]);
        }
        assert_memory_equal(so.logits, ref.logits, n * sizeof(float));
        printf("# %s: %s bitwise dense (%zu logits, first prefill %zu, follow-up %zu%s)\n", tag, specs[i], n, nA, nB,
               mode == SESS_COMMIT ? ", committed" : mode == SESS_REQUEST ? ", query in temp" : "");
        scb_free(so.logits);
    }
    scb_free(ref.logits);
}

/* Budgets, windows and patterns that cover every key of sequences up to 256 tokens. */
static const char *const COVERING[] = {
    "dense",
    "streamingllm:n_init=4,n_local=300",
    "streamingllm:n_init=4,n_local=300,gqa=true",
    "snapkv:budget=300,window=8",
    "snapkv:budget=300,window=8,gqa=true",
    "pyramidkv:budget=300,window=8",
    "pyramidkv:budget=300,window=8,gqa=true",
    "kivi:bits=2,group=16,residual=304",
    "kivi:bits=4,group=16,residual=304",
    "quest:page=1,budget=512",
    "retr_attn:top_k=512,n_sink=4,n_recent=8",
    "a_shape:n_init=4,n_local=300",
    "tri_shape:n_init=4,n_local=300",
    "minference",
    "minference:vertical=400,slash=400",
    "a_shape:n_init=4,n_local=300+snapkv:budget=300,window=8",
    "minference+kivi:group=16,residual=304",
    "tri_shape:n_init=2,n_local=300+quest:page=1,budget=512",
    "cacheblend",
};

static void test_bitwise_random(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    check_bitwise(&e, "random G=2", COVERING, sizeof COVERING / sizeof *COVERING, SEED + 1, 70, 5, SESS_DROP);
    env_close(&e);
    random_model(&e, "m2", &SH2, SEED + 7);
    check_bitwise(&e, "random G=4", COVERING, sizeof COVERING / sizeof *COVERING, SEED + 2, 45, 9, SESS_DROP);
    static const char *const commit_specs[] = {"kivi:group=16,residual=304", "snapkv:budget=300,window=8",
                                               "retr_attn:top_k=512,n_sink=4,n_recent=8"};
    check_bitwise(&e, "random G=4 commit", commit_specs, 3, SEED + 3, 40, 6, SESS_COMMIT);
    check_bitwise(&e, "random G=4 multi-request", COVERING, sizeof COVERING / sizeof *COVERING, SEED + 8, 50, 8,
                  SESS_REQUEST);
    env_close(&e);
}

static void test_bitwise_fixture(void **st)
{
    (void)st;
    struct env e;
    fixture_model(&e, "llama_gqa");
    check_bitwise(&e, "fixture llama_gqa", COVERING, sizeof COVERING / sizeof *COVERING, SEED + 4, 60, 7, SESS_DROP);
    /* a per-head MInference config: every pattern type, one head left to the default */
    char path[512];
    snprintf(path, sizeof path, "%s/minf_cfg.json", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const struct scb_model_config *c = scb_model_get_config(e.m);
    fprintf(f, "[");
    for (size_t l = 0; l < c->L; l++)
        fprintf(f, "%s{\"0\": [\"vertical_and_slash\", 1000, 6096, 0.9], \"1\": [\"block_sparse\", 100, 800, 0.9],"
                   " \"2\": [\"stream_llm\", 100, 800, 0.9]}", l ? "," : "");
    fprintf(f, "]\n");
    fclose(f);
    char spec[700];
    snprintf(spec, sizeof spec, "minference:config=%s", path);
    const char *specs[] = {spec};
    check_bitwise(&e, "fixture llama_gqa minference config", specs, 1, SEED + 5, 60, 7, SESS_DROP);
    env_close(&e);
    fixture_model(&e, "qwen2_yarn");     /* q/k/v biases, YaRN RoPE, one KV head for 4 query heads */
    check_bitwise(&e, "fixture qwen2_yarn", COVERING, sizeof COVERING / sizeof *COVERING, SEED + 6, 50, 6, SESS_DROP);
    env_close(&e);
}

/* ---- exact kept entries --------------------------------------------------------------------- */
static struct scb_kv_cache *prefill_with(struct env *e, const char *spec_text, const int32_t *A, size_t nA,
                                         struct scb_method_binding **bo, struct scb_method_spec *spec)
{
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    float *lg = scb_malloc(e->V * sizeof(float));
    assert_int_equal(scb_method_spec_parse(spec_text, spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_create(bo, e->m, spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_kv_create(*bo, CAP, &kv, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_session_begin(*bo, kv, &ctx), SCB_OK);
    forward_ok(e->m, kv, A, nA, lg, SCB_FWD_LAST_LOGITS);
    scb_free(lg);
    return kv;
}

static void test_streamingllm_positions(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 10);
    int32_t A[70], B[5], tok[3];
    rand_ids(&r, A, 70, e.V);
    rand_ids(&r, B, 5, e.V);
    rand_ids(&r, tok, 3, e.V);
    for (int gqa = 0; gqa < 2; gqa++) {
        struct scb_method_binding *b = NULL;
        struct scb_method_spec spec = {0};
        struct scb_ctx ctx = {0};
        struct scb_kv_cache *kv = prefill_with(&e, gqa ? "streamingllm:n_init=4,n_local=28,gqa=true"
                                                       : "streamingllm:n_init=4,n_local=28", A, 70, &b, &spec);
        assert_int_equal(kv->Hkv, gqa ? (size_t)SH1.nkv : (size_t)SH1.nh);   /* SCBench stores Hq heads */
        assert_int_equal(kv->seen, 70);
        for (size_t l = 0; l < kv->L; l++)
            for (size_t s = 0; s < kv->Hkv; s++) {
                assert_int_equal(scb_kv_cache_len(kv, l, s), 32);
                const int64_t *p = scb_kv_cache_positions(kv, l, s);
                for (int j = 0; j < 4; j++) assert_int_equal(p[j], j);
                for (int j = 0; j < 28; j++) assert_int_equal(p[4 + j], 42 + j);
            }
        /* a turn: 3 temp tokens, dropped; then the follow-up continues at position 70 */
        float *lg = scb_malloc(5 * e.V * sizeof(float));
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
        for (int i = 0; i < 3; i++) forward_ok(e.m, kv, &tok[i], 1, lg, SCB_FWD_LAST_LOGITS);
        assert_int_equal(kv->seen, 73);
        scb_kv_cache_drop_temp(kv);
        assert_int_equal(scb_method_bind_turn_end(b, kv, &ctx), SCB_OK);
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
        forward_ok(e.m, kv, B, 5, lg, SCB_FWD_ALL_LOGITS);
        assert_int_equal(kv->seen, 75);
        for (size_t l = 0; l < kv->L; l++)
            for (size_t s = 0; s < kv->Hkv; s++) {
                assert_int_equal(scb_kv_cache_len(kv, l, s), 37);   /* appended later, never dropped */
                const int64_t *p = scb_kv_cache_positions(kv, l, s);
                for (int j = 0; j < 5; j++) assert_int_equal(p[32 + j], 70 + j);
            }
        struct scb_turn_costs c;
        assert_int_equal(scb_method_bind_costs(b, kv, &c, &ctx), SCB_OK);
        int64_t entries = (int64_t)SH1.nl * SH1.nkv * 37, logical = entries * 2 * SH1.hd * 2;
        assert_int_equal(c.kv_entries, entries);
        assert_int_equal(c.kv_bytes_logical, logical);
        assert_int_equal(c.kv_bytes_physical, gqa ? logical : logical * (SH1.nh / SH1.nkv));
        assert_true(c.decode_bytes_per_step == (double)c.kv_bytes_physical);
        assert_true(c.prefill_density == 1.0);
        assert_true(c.recall == -1.0);
        printf("# streamingllm gqa=%d: kept [0,4)+[42,70) per head and layer, follow-up at 70..74; "
               "physical %lld bytes, logical %lld\n", gqa, (long long)c.kv_bytes_physical, (long long)logical);
        scb_free(lg);
        scb_kv_cache_destroy(kv);
        scb_method_bind_destroy(b);
        scb_method_spec_fini(&spec);
    }
    env_close(&e);
}

/* Capture of every layer's first-prefill queries and keys from a run without any method. */
struct capture { size_t N, H, Hkv, D, L; float *q, *k, *v; };   /* (L, N, H, D), (L, N, Hkv, D) x 2 */
static int cap_after(struct scb_backend *be, void *user, struct scb_kv_cache *kv, const struct scb_backend_attn *a,
                     struct scb_ctx *ctx)
{
    (void)be; (void)ctx;
    struct capture *c = user;
    size_t l = a->layer, N = c->N, D = c->D;
    memcpy(c->q + l * N * c->H * D, a->q, N * c->H * D * sizeof(float));
    for (size_t g = 0; g < c->Hkv; g++)
        for (size_t t = 0; t < N; t++) {
            memcpy(c->k + ((l * N + t) * c->Hkv + g) * D, scb_kv_cache_k(kv, l, g) + t * D, D * sizeof(float));
            memcpy(c->v + ((l * N + t) * c->Hkv + g) * D, scb_kv_cache_v(kv, l, g) + t * D, D * sizeof(float));
        }
    return SCB_OK;
}

/* PyramidKV's selected prefix entries of layer l (spec/scbench.md §7.4, written out here). */
static int pyramid_budget(int N, int C, int W, int beta, int L, int l)
{
    if (N < C) return N - W;
    if (N < 2 * (C - W)) return C - W;
    int min_num = (C - W) / beta, max_num = 2 * (C - W) - min_num;
    if (max_num >= N - W) { max_num = N - W; min_num = 2 * (C - W) - max_num; }
    return max_num - l * ((max_num - min_num) / (L - 1));
}

static void test_snapkv_pyramid_kept(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    const int N = 70, C = 40, W = 8;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 11);
    int32_t A[70];
    rand_ids(&r, A, (size_t)N, e.V);
    struct capture cp = {(size_t)N, (size_t)SH1.nh, (size_t)SH1.nkv, (size_t)SH1.hd, (size_t)SH1.nl, NULL, NULL, NULL};
    cp.q = scb_malloc(cp.L * cp.N * cp.H * cp.D * sizeof(float));
    cp.k = scb_malloc(cp.L * cp.N * cp.Hkv * cp.D * sizeof(float));
    cp.v = scb_malloc(cp.L * cp.N * cp.Hkv * cp.D * sizeof(float));
    {
        struct scb_ctx ctx = {0};
        struct scb_kv_cache *kv = NULL;
        float *lg = scb_malloc(e.V * sizeof(float));
        struct scb_attn_hooks h = {NULL, NULL, cap_after, &cp};
        scb_model_set_attn_hooks(e.m, &h);
        assert_int_equal(scb_model_kv_create(e.m, CAP, &kv, &ctx), SCB_OK);
        forward_ok(e.m, kv, A, (size_t)N, lg, SCB_FWD_LAST_LOGITS);
        scb_model_set_attn_hooks(e.m, NULL);
        scb_kv_cache_destroy(kv);
        scb_free(lg);
    }
    const char *specs[] = {"snapkv:budget=40,window=8", "snapkv:budget=40,window=8,gqa=true",
                           "pyramidkv:budget=40,window=8", "pyramidkv:budget=40,window=8,gqa=true",
                           "snapkv:budget=40,window=8,pooling=maxpool,kernel=3"};
    int64_t phys[5] = {0};
    for (int si = 0; si < 5; si++) {
        struct scb_method_binding *b = NULL;
        struct scb_method_spec spec = {0};
        struct scb_ctx ctx = {0};
        struct scb_kv_cache *kv = prefill_with(&e, specs[si], A, (size_t)N, &b, &spec);
        int gqa = strstr(specs[si], "gqa=true") != NULL, pyr = strstr(specs[si], "pyramid") != NULL;
        int maxpool = strstr(specs[si], "maxpool") != NULL, kernel = maxpool ? 3 : 5;
        assert_int_equal(kv->Hkv, gqa ? cp.Hkv : cp.H);
        int64_t total = 0;
        for (size_t l = 0; l < cp.L; l++) {
            struct scb_kv_compress_args ca = {
                cp.k + l * cp.N * cp.Hkv * cp.D, cp.v + l * cp.N * cp.Hkv * cp.D, cp.q + l * cp.N * cp.H * cp.D,
                N, N, (int)cp.H, (int)cp.Hkv, (int)cp.D, 0.0f, (int)l, (int)cp.L};
            int nsel = pyr ? pyramid_budget(N, C, W, 20, (int)cp.L, (int)l) : C - W;
            struct scb_kv_keep keep;
            assert_int_equal(scb_snapkv_select(&ca, W, kernel, maxpool ? SCB_POOL_MAX : SCB_POOL_AVG, gqa,
                                               nsel >= N - W ? -1 : nsel, &keep, &ctx), SCB_OK);
            for (size_t s = 0; s < kv->Hkv; s++) {
                size_t n = scb_kv_cache_len(kv, l, s);
                assert_int_equal(n, (size_t)(nsel + W));            /* the layer's budget */
                assert_int_equal(keep.n[s], (int)n);
                const int64_t *p = scb_kv_cache_positions(kv, l, s);
                for (size_t j = 0; j < n; j++) assert_int_equal(p[j], keep.idx[s * (size_t)keep.cap + j]);
                for (int j = 0; j < W; j++) assert_int_equal(p[n - W + j], N - W + j);   /* the window */
                total += (int64_t)n;
            }
            scb_kv_keep_fini(&keep);
        }
        struct scb_turn_costs c;
        assert_int_equal(scb_method_bind_costs(b, kv, &c, &ctx), SCB_OK);
        assert_int_equal(c.kv_bytes_physical, total * 2 * SH1.hd * 2);
        phys[si] = c.kv_bytes_physical;
        printf("# %s: kept entries per stored head and layer match the selection on the engine's own Q/K "
               "(%lld entries stored, physical %lld bytes)\n", specs[si], (long long)total, (long long)c.kv_bytes_physical);
        scb_kv_cache_destroy(kv);
        scb_method_bind_destroy(b);
        scb_method_spec_fini(&spec);
    }
    /* PyramidKV layer budgets really differ (62, 32, 2 prefix entries for 3 layers here) */
    assert_int_not_equal(pyramid_budget(N, C, W, 20, 3, 0), pyramid_budget(N, C, W, 20, 3, 2));
    /* SCBench-faithful per-query-head caches cost G times the GQA-aware ones */
    int G = SH1.nh / SH1.nkv;
    assert_int_equal(phys[0], G * phys[1]);
    assert_int_equal(phys[2], G * phys[3]);
    scb_free(cp.q); scb_free(cp.k); scb_free(cp.v);
    env_close(&e);
}

/* ---- costs ---------------------------------------------------------------------------------- */
/* KIVI bytes per (layer, KV head) after a first prefill of N tokens, from spec/methods.md §6:
 * keys quantize N - N % R tokens, values N - R; 16-bit scale and min per group; fp16 residuals;
 * T - N later global tokens each go to the residuals; with requant (option requant=true) a
 * residual longer than R quantizes R, without (SCBench's default) they all stay fp16. */
static int64_t kivi_bytes_spec_T(int64_t N, int64_t T, int D, int bits, int g, int R, int requant)
{
    int64_t kq = N - N % R, vq = N > R ? N - R : 0, nk = N - kq, nv = N - vq;
    for (int64_t t = N; t < T; t++) {      /* each later token: residual > R quantizes R, keeps 1 */
        if (++nk > R && requant) { kq += R; nk = 1; }
        if (++nv > R && requant) { vq += R; nv = 1; }
    }
    return (kq + vq) * D * bits / 8 + 2 * 2 * (kq * D / g + vq * D / g) + (nk + nv) * D * 2;
}
static int64_t kivi_bytes_spec(int64_t N, int D, int bits, int g, int R) { return kivi_bytes_spec_T(N, N, D, bits, g, R, 0); }

static void test_costs(void **st)
{
    (void)st;
    struct env e;
    fixture_model(&e, "llama_gqa");
    const struct scb_model_config *mc = scb_model_get_config(e.m);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 20);
    int32_t A[300], B[4];
    rand_ids(&r, A, 300, e.V);
    rand_ids(&r, B, 4, e.V);
    struct sess_out so = {0};
    /* KIVI-2 at the defaults (group 32, residual 32) */
    run_session(&e, "kivi", A, 300, B, 4, SESS_DROP, &so);
    int64_t want = (int64_t)mc->L * mc->Hkv * kivi_bytes_spec(300, (int)mc->D, 2, 32, 32);
    assert_int_equal(so.c1.kv_bytes_physical, want);
    assert_int_equal(so.c1.kv_entries, (int64_t)mc->L * mc->Hkv * 300);
    double ratio = (double)so.c1.kv_bytes_physical / (double)so.c1.kv_bytes_logical;
    printf("# kivi-2: %lld bytes stored for %lld bf16 bytes (ratio %.4f: 1/8 codes + 1/16 scales + residuals)\n",
           (long long)so.c1.kv_bytes_physical, (long long)so.c1.kv_bytes_logical, ratio);
    assert_true(ratio > 1.0 / 8 + 1.0 / 16 && ratio < 1.0 / 8 + 1.0 / 16 + 0.1);
    /* after the follow-up (4 tokens fed one at a time): the residuals absorbed them */
    assert_int_equal(so.c2.kv_entries, (int64_t)mc->L * mc->Hkv * 304);
    /* multi-request: the query and answer stay in temp, full precision, never quantized */
    int64_t after_follow_up = so.c2.kv_bytes_physical;
    scb_free(so.logits);
    run_session(&e, "kivi", A, 300, B, 4, SESS_REQUEST, &so);
    assert_int_equal(so.c2.kv_bytes_physical, so.c1.kv_bytes_physical);
    assert_int_equal(so.c1.kv_bytes_physical, want);
    assert_int_equal(after_follow_up, (int64_t)mc->L * mc->Hkv * kivi_bytes_spec_T(300, 304, (int)mc->D, 2, 32, 32, 0));
    scb_free(so.logits);
    /* requant=true: the 4 follow-up tokens overflow the 32-token value residual (300 - 268 = 32
     * values, 12 keys in it after the prefill), so R of them are quantized */
    run_session(&e, "kivi:requant=true", A, 300, B, 4, SESS_DROP, &so);
    assert_int_equal(so.c1.kv_bytes_physical, want);
    assert_int_equal(so.c2.kv_bytes_physical,
                     (int64_t)mc->L * mc->Hkv * kivi_bytes_spec_T(300, 304, (int)mc->D, 2, 32, 32, 1));
    assert_true(so.c2.kv_bytes_physical < after_follow_up);
    scb_free(so.logits);
    /* KIVI-4 */
    run_session(&e, "kivi:bits=4", A, 300, B, 4, SESS_DROP, &so);
    assert_int_equal(so.c1.kv_bytes_physical, (int64_t)mc->L * mc->Hkv * kivi_bytes_spec(300, (int)mc->D, 4, 32, 32));
    scb_free(so.logits);
    /* A-shape density: exact count of the mask */
    run_session(&e, "a_shape:n_init=8,n_local=40", A, 300, B, 4, SESS_DROP, &so);
    double got = 0, tot = 0;
    for (int p = 0; p < 300; p++) { got += p + 1 < 48 ? p + 1 : 48; tot += p + 1; }
    printf("# a_shape 8+40 over 300: density %.6f (expected %.6f)\n", so.c1.prefill_density, got / tot);
    assert_true(fabs(so.c1.prefill_density - got / tot) < 1e-12);
    assert_true(so.c1.recall == -1.0);
    scb_free(so.logits);
    /* retrieval recall: exact flat index = 1; graph index measured in [0, 1] */
    run_session(&e, "retr_attn:top_k=16,n_sink=4,n_recent=16", A, 300, B, 4, SESS_DROP, &so);
    assert_true(so.c1.recall == 1.0);
    struct sess_out dn = {0};
    run_session(&e, "dense", A, 300, B, 4, SESS_DROP, &dn);
    assert_true(so.c1.kv_bytes_physical > dn.c1.kv_bytes_physical);   /* fp32 index keys */
    scb_free(so.logits);
    run_session(&e, "retr_attn:top_k=16,n_sink=4,n_recent=16,index=graph,ef=32", A, 300, B, 4, SESS_DROP, &so);
    printf("# retr_attn graph: recall %.4f vs exact top-16\n", so.c1.recall);
    assert_true(so.c1.recall > 0.0 && so.c1.recall <= 1.0);
    scb_free(so.logits);
    /* Quest reads fewer bytes per step than dense */
    run_session(&e, "quest:budget=64,page=16", A, 300, B, 4, SESS_DROP, &so);
    printf("# quest 64/16: %.0f bytes per step vs dense %.0f\n", so.c1.decode_bytes_per_step, dn.c1.decode_bytes_per_step);
    assert_true(so.c1.decode_bytes_per_step < dn.c1.decode_bytes_per_step / 2);
    printf("# quest 64/16: recall of the exact top keys inside the selected pages %.4f\n", so.c1.recall);
    assert_true(so.c1.recall > 0.0 && so.c1.recall < 1.0);
    scb_free(so.logits);
    run_session(&e, "quest:budget=512,page=1", A, 300, B, 4, SESS_DROP, &so);
    assert_true(so.c1.recall == 1.0);   /* every key selected */
    assert_int_equal(dn.c1.kv_bytes_physical, (int64_t)mc->L * mc->Hkv * 300 * 2 * (int64_t)mc->D * 2);
    assert_true(dn.c1.recall == -1.0 && dn.c1.prefill_density == 1.0);
    scb_free(so.logits);
    scb_free(dn.logits);
    env_close(&e);
}


/* ---- lifecycle: compression after the first prefill's attention, sparse prefill only there ---- */
static const char *const KV_SMALL[] = {
    "streamingllm:n_init=4,n_local=28", "snapkv:budget=40,window=8", "pyramidkv:budget=40,window=8,gqa=true",
    "kivi:group=16,residual=16", "quest:budget=32,page=8", "retr_attn:top_k=8,n_sink=4,n_recent=8",
};
static const char *const PREFILL_SMALL[] = {
    "a_shape:n_init=4,n_local=16", "tri_shape:n_init=4,n_local=16,n_last=8", "minference:vertical=8,slash=8,last_q=16",
};

static void test_lifecycle(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 40);
    int32_t A[300], B[8];
    const size_t nA = 300, nB = 8;
    rand_ids(&r, A, nA, e.V);
    rand_ids(&r, B, nB, e.V);
    struct sess_out ref = {0};
    run_session(&e, NULL, A, nA, B, nB, SESS_DROP, &ref);
    size_t first = nA * e.V, all = (nA + ND1 + nB + ND2) * e.V;
    for (size_t i = 0; i < sizeof KV_SMALL / sizeof *KV_SMALL; i++) {
        struct sess_out so = {0};
        run_session(&e, KV_SMALL[i], A, nA, B, nB, SESS_DROP, &so);
        /* the first prefill's own attention is dense: its logits are exactly dense */
        assert_memory_equal(so.logits, ref.logits, first * sizeof(float));
        /* and the policy acts on every later step */
        int differs = memcmp(so.logits + first, ref.logits + first, (all - first) * sizeof(float)) != 0;
        printf("# %s: first prefill bitwise dense, later steps %s\n", KV_SMALL[i], differs ? "differ" : "EQUAL");
        assert_true(differs);
        scb_free(so.logits);
    }
    for (size_t i = 0; i < sizeof PREFILL_SMALL / sizeof *PREFILL_SMALL; i++) {
        struct sess_out so = {0};
        run_session(&e, PREFILL_SMALL[i], A, nA, B, nB, SESS_DROP, &so);
        int differs = memcmp(so.logits, ref.logits, first * sizeof(float)) != 0;
        printf("# %s: first prefill %s dense, density %.4f\n", PREFILL_SMALL[i], differs ? "differs from" : "EQUALS",
               so.c1.prefill_density);
        assert_true(differs);
        assert_true(so.c1.prefill_density < 1.0);
        scb_free(so.logits);
    }
    scb_free(ref.logits);
    env_close(&e);
}

/* StreamingLLM through the binding (Hq stored heads) against a hand-written policy on a plain
 * cache of KV heads (after-prefill hook keeping [0, 4) + [N - 28, N) of every head): bitwise. */
struct manual_sllm { size_t n_init, n_local; };
static int manual_keep(struct scb_backend *be, void *user, struct scb_kv_cache *kv, const struct scb_backend_attn *a,
                       struct scb_ctx *ctx)
{
    (void)be;
    const struct manual_sllm *p = user;
    size_t N = a->T, idx[64], n = 0;
    if (N < p->n_init + p->n_local) return SCB_OK;
    for (size_t j = 0; j < p->n_init; j++) idx[n++] = j;
    for (size_t j = N - p->n_local; j < N; j++) idx[n++] = j;
    for (size_t h = 0; h < kv->Hkv; h++) {
        int rc = scb_kv_cache_keep(kv, a->layer, h, idx, n, ctx);
        if (rc) return rc;
    }
    return SCB_OK;
}

static void test_streamingllm_vs_manual(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m2", &SH2, SEED + 7);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 41);
    int32_t A[90], B[7];
    rand_ids(&r, A, 90, e.V);
    rand_ids(&r, B, 7, e.V);
    struct manual_sllm p = {4, 28};
    struct scb_attn_hooks h = {NULL, NULL, manual_keep, &p};
    scb_model_set_attn_hooks(e.m, &h);
    struct sess_out ref = {0}, so = {0}, sg = {0};
    run_session(&e, NULL, A, 90, B, 7, SESS_DROP, &ref);
    scb_model_set_attn_hooks(e.m, NULL);
    run_session(&e, "streamingllm:n_init=4,n_local=28", A, 90, B, 7, SESS_DROP, &so);
    run_session(&e, "streamingllm:n_init=4,n_local=28,gqa=true", A, 90, B, 7, SESS_DROP, &sg);
    size_t all = (90 + ND1 + 7 + ND2) * e.V;
    assert_memory_equal(so.logits, ref.logits, all * sizeof(float));
    assert_memory_equal(sg.logits, ref.logits, all * sizeof(float));
    printf("# streamingllm (Hq = %d stored heads and gqa=true) bitwise equal to a hand-written keep on %d KV heads\n",
           SH2.nh, SH2.nkv);
    assert_int_equal(so.c2.kv_bytes_physical, (SH2.nh / SH2.nkv) * sg.c2.kv_bytes_physical);
    scb_free(ref.logits); scb_free(so.logits); scb_free(sg.logits);
    env_close(&e);
}

/* KIVI and RetrievalAttention see a follow-up prompt as if it were fed one token at a time
 * (SCBench's dense_prefix=True): the chunk's rows equal token-by-token forwards (up to the
 * matmul rounding of a chunk vs one row) and KIVI ends with the same quantized store. */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num) num = d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return den > 0 ? num / den : num;
}

static void test_follow_up_token_by_token(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 42);
    enum { NA = 70, NB = 40 };
    int32_t A[NA], B[NB];
    rand_ids(&r, A, NA, e.V);
    rand_ids(&r, B, NB, e.V);
    const char *specs[] = {"kivi:group=16,residual=16", "retr_attn:top_k=8,n_sink=4,n_recent=8",
                           "retr_attn:top_k=8,n_sink=4,n_recent=8,index=graph,ef=16"};
    float *chunk = scb_malloc(NB * e.V * sizeof(float)), *step = scb_malloc(NB * e.V * sizeof(float));
    for (size_t si = 0; si < 3; si++) {
        struct scb_turn_costs c[2];
        for (int mode = 0; mode < 2; mode++) {
            struct scb_method_binding *b = NULL;
            struct scb_method_spec spec = {0};
            struct scb_ctx ctx = {0};
            struct scb_kv_cache *kv = prefill_with(&e, specs[si], A, NA, &b, &spec);
            if (mode == 0) forward_ok(e.m, kv, B, NB, chunk, SCB_FWD_ALL_LOGITS);
            else for (size_t i = 0; i < NB; i++) forward_ok(e.m, kv, &B[i], 1, step + i * e.V, SCB_FWD_LAST_LOGITS);
            assert_int_equal(scb_method_bind_costs(b, kv, &c[mode], &ctx), SCB_OK);
            scb_kv_cache_destroy(kv);
            scb_method_bind_destroy(b);
            scb_method_spec_fini(&spec);
        }
        double err = rel_err(chunk, step, NB * e.V);
        printf("# %s: follow-up of %d tokens as one chunk vs one token at a time: max rel err %.3g\n", specs[si], NB, err);
        assert_true(err < 1e-5);
        assert_int_equal(c[0].kv_bytes_physical, c[1].kv_bytes_physical);
    }
    scb_free(chunk); scb_free(step);
    env_close(&e);
}


/* Every allocation of parse + bind + first prefill (with compression) + a decode step failing
 * in turn: SCB_E_NOMEM, no leak. */
static void test_allocation_failures(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 50);
    int32_t A[40], tok = 5;
    rand_ids(&r, A, 40, e.V);
    float *lg = scb_malloc(40 * e.V * sizeof(float));
    const char *specs[] = {"snapkv:budget=16,window=4", "kivi:group=16,residual=16", "minference:vertical=4,slash=4,last_q=8",
                           "retr_attn:top_k=4,n_sink=2,n_recent=4,index=graph", "a_shape:n_init=2,n_local=8+quest:budget=8,page=4",
                           "streamingllm:n_init=2,n_local=8", "cacheblend:chunk=8,min_tokens=16"};
    {   /* warm the model's workspace and the backend's scratch */
        struct sess_out so = {0};
        run_session(&e, NULL, A, 40, &tok, 1, SESS_DROP, &so);
        scb_free(so.logits);
    }
    for (size_t si = 0; si < sizeof specs / sizeof *specs; si++) {
        int ok = 0;
        long n;
        for (n = 1; n < 2000 && !ok; n++) {
            struct scb_ctx ctx = {0};
            struct scb_method_spec spec = {0};
            struct scb_method_binding *b = NULL;
            struct scb_kv_cache *kv = NULL;
            struct scb_turn_costs c = {0};
            size_t live0 = scb_alloc_live_bytes();
            scb_alloc_fail_after(n, 0);
            int rc = scb_method_spec_parse(specs[si], &spec, &ctx);
            if (!rc) rc = scb_method_bind_create(&b, e.m, &spec, &ctx);
            if (!rc) rc = scb_method_bind_kv_create(b, 64, &kv, &ctx);
            if (!rc) rc = scb_method_bind_session_begin(b, kv, &ctx);
            /* the blended prefill gives the last position's logits only */
            const int flags = strstr(specs[si], "cacheblend") ? SCB_FWD_LAST_LOGITS : SCB_FWD_ALL_LOGITS;
            if (!rc) rc = scb_model_forward(e.m, kv, A, 40, lg, flags, &ctx);
            if (!rc && flags == SCB_FWD_LAST_LOGITS) {   /* it did blend: 4 chunks of 8 stored */
                rc = scb_method_bind_costs(b, kv, &c, &ctx);
                if (!rc) assert_true(c.stored_tokens == 32 && c.recomputed_tokens > 0 && c.reused_tokens > 0);
            }
            if (!rc) { scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP); rc = scb_model_forward(e.m, kv, &tok, 1, lg, 0, &ctx); }
            if (!rc) rc = scb_model_forward(e.m, kv, &tok, 1, lg, 0, &ctx);
            if (!rc) rc = scb_method_bind_costs(b, kv, &c, &ctx);
            scb_alloc_fail_after(0, 0);
            if (rc == SCB_OK) ok = 1;
            else assert_int_equal(rc, SCB_E_NOMEM);
            scb_kv_cache_destroy(kv);
            scb_method_bind_destroy(b);
            scb_method_spec_fini(&spec);
            assert_int_equal(scb_alloc_live_bytes(), live0);
        }
        printf("# %s: each of %ld allocations failing in turn gives SCB_E_NOMEM without a leak\n", specs[si], n - 2);
        assert_true(ok);
    }
    scb_free(lg);
    env_close(&e);
}


/* Measured costs after a two-turn session agree with the static cost model behind
 * `scbench methods --cost` (the methods' cost hooks) at the same lengths. */
static void test_costs_match_model(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 60);
    int32_t A[90], B[9];
    rand_ids(&r, A, 90, e.V);
    rand_ids(&r, B, 9, e.V);
    const char *specs[] = {"dense", "streamingllm:n_init=4,n_local=28", "streamingllm:n_init=4,n_local=28,gqa=true",
                           "snapkv:budget=40,window=8", "snapkv:budget=40,window=8,gqa=true",
                           "pyramidkv:budget=40,window=8", "kivi:group=16,residual=16", "kivi:bits=4,group=16,residual=32",
                           "a_shape:n_init=4,n_local=300"};
    struct scb_model_info mi = {SH1.nl, SH1.nh, SH1.nkv, SH1.hd, NULL};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) {
        struct sess_out so = {0};
        run_session(&e, specs[i], A, 90, B, 9, SESS_DROP, &so);
        struct scb_ctx ctx = {0};
        struct scb_method_spec spec = {0};
        assert_int_equal(scb_method_spec_parse(specs[i], &spec, &ctx), SCB_OK);
        assert_int_equal(scb_method_init(&spec.kv, &mi, &ctx), SCB_OK);
        struct scb_cost_query cq = {&mi, 90, 99, 2};
        struct scb_cost c;
        scb_method_cost(&spec.kv, &cq, &c);
        printf("# %s: measured entries %lld physical %lld, cost model %lld / %lld\n", specs[i],
               (long long)so.c2.kv_entries, (long long)so.c2.kv_bytes_physical, (long long)c.kv_entries,
               (long long)c.kv_bytes);
        assert_int_equal(so.c2.kv_entries, c.kv_entries);
        assert_int_equal(so.c2.kv_bytes_physical, c.kv_bytes);
        assert_true(so.c2.decode_bytes_per_step == (double)c.read_bytes_step);
        scb_method_spec_fini(&spec);
        scb_free(so.logits);
    }
    env_close(&e);
}


/* SCBench's own StreamingLLM setting (128 + 3968) on a prompt longer than 4096 tokens. */
static void test_streamingllm_defaults_long(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    enum { N = 4150 };
    int32_t *A = scb_malloc(N * sizeof(int32_t));
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 70);
    rand_ids(&r, A, N, e.V);
    struct scb_method_binding *b = NULL;
    struct scb_method_spec spec = {0};
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    float *lg = scb_malloc(e.V * sizeof(float));
    assert_int_equal(scb_method_spec_parse("streamingllm", &spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_create(&b, e.m, &spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_kv_create(b, N + 8, &kv, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_session_begin(b, kv, &ctx), SCB_OK);
    forward_ok(e.m, kv, A, N, lg, SCB_FWD_LAST_LOGITS);
    int32_t t = argmax(lg, e.V);
    forward_ok(e.m, kv, &t, 1, lg, SCB_FWD_LAST_LOGITS);
    for (size_t l = 0; l < kv->L; l++)
        for (size_t s = 0; s < kv->Hkv; s++) {
            assert_int_equal(scb_kv_cache_len(kv, l, s), 4096 + 1);
            const int64_t *p = scb_kv_cache_positions(kv, l, s);
            for (int j = 0; j < 128; j++) assert_int_equal(p[j], j);
            for (int j = 0; j < 3968; j++) assert_int_equal(p[128 + j], N - 3968 + j);
            assert_int_equal(p[4096], N);
        }
    struct scb_turn_costs c;
    assert_int_equal(scb_method_bind_costs(b, kv, &c, &ctx), SCB_OK);
    assert_int_equal(c.kv_entries, (int64_t)SH1.nl * SH1.nkv * 4097);
    printf("# streamingllm defaults, prompt %d: 128 + 3968 kept per head and layer, next token at %d; %lld entries\n",
           N, N, (long long)c.kv_entries);
    scb_kv_cache_destroy(kv);
    scb_method_bind_destroy(b);
    scb_method_spec_fini(&spec);
    scb_free(lg);
    scb_free(A);
    env_close(&e);
}

static void test_refusals(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "m1", &SH1, SEED);
    struct scb_ctx ctx = {0};
    struct scb_method_spec spec = {0};
    struct scb_method_binding *b = NULL;
    struct scb_kv_cache *kv = NULL;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 30);
    int32_t A[50];
    rand_ids(&r, A, 50, e.V);
    float *lg = scb_malloc(e.V * sizeof(float));
    assert_int_equal(scb_method_spec_parse("snapkv:budget=20,window=4", &spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_create(&b, e.m, &spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_kv_heads(b), (size_t)SH1.nh);
    /* a cache of KV heads cannot hold SCBench's per-query-head selection */
    assert_int_equal(scb_model_kv_create(e.m, CAP, &kv, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_session_begin(b, kv, &ctx), SCB_OK);
    assert_int_not_equal(scb_model_forward(e.m, kv, A, 50, lg, 0, &ctx), SCB_OK);
    printf("# refusal: %s\n", ctx.msg);
    assert_non_null(strstr(ctx.msg, "gqa=true"));
    /* a session must start on an empty cache */
    scb_kv_cache_clear(kv);
    scb_method_bind_destroy(b);   /* hooks removed: dense again */
    b = NULL;
    forward_ok(e.m, kv, A, 10, lg, 0);
    assert_int_equal(scb_method_bind_create(&b, e.m, &spec, &ctx), SCB_OK);
    assert_int_not_equal(scb_method_bind_session_begin(b, kv, &ctx), SCB_OK);
    assert_non_null(strstr(ctx.msg, "empty"));
    scb_kv_cache_destroy(kv);
    scb_method_bind_destroy(b);
    scb_method_spec_fini(&spec);
    /* a model shape the method cannot serve: KIVI group must divide the head dim (16) */
    assert_int_equal(scb_method_spec_parse("kivi:group=32,residual=32", &spec, &ctx), SCB_OK);
    assert_int_not_equal(scb_method_bind_create(&b, e.m, &spec, &ctx), SCB_OK);
    printf("# refusal: %s\n", ctx.msg);
    assert_non_null(strstr(ctx.msg, "kivi:"));
    assert_null(b);
    scb_method_spec_fini(&spec);
    scb_free(lg);
    env_close(&e);
}

/* ---- CacheBlend through the engine ------------------------------------------------------------ */
struct blend_run {
    struct scb_method_spec spec;
    struct scb_method_binding *b;
    struct scb_kv_cache *kv;
    float *logits;                 /* (V) of the last prompt token */
    struct scb_turn_costs costs;
};

static void blend_prefill(struct env *e, const char *spec, const int32_t *ids, size_t n, struct blend_run *r)
{
    struct scb_ctx ctx = {0};
    memset(r, 0, sizeof *r);
    r->logits = scb_malloc(e->V * sizeof(float));
    assert_non_null(r->logits);
    if (spec) {
        assert_int_equal(scb_method_spec_parse(spec, &r->spec, &ctx), SCB_OK);
        assert_int_equal(scb_method_bind_create(&r->b, e->m, &r->spec, &ctx), SCB_OK);
        assert_int_equal(scb_method_bind_kv_create(r->b, n + 8, &r->kv, &ctx), SCB_OK);
        assert_int_equal(scb_method_bind_session_begin(r->b, r->kv, &ctx), SCB_OK);
    } else {
        assert_int_equal(scb_model_kv_create(e->m, n + 8, &r->kv, &ctx), SCB_OK);
    }
    scb_kv_cache_set_mode(r->kv, SCB_KV_APPEND_GLOBAL);
    int rc = scb_model_forward(e->m, r->kv, ids, n, r->logits, SCB_FWD_LAST_LOGITS, &ctx);
    if (rc) fprintf(stderr, "%s\n", ctx.msg);
    assert_int_equal(rc, SCB_OK);
    if (r->b) assert_int_equal(scb_method_bind_costs(r->b, r->kv, &r->costs, &ctx), SCB_OK);
}

static void blend_run_fini(struct blend_run *r)
{
    scb_method_bind_destroy(r->b);
    scb_method_spec_fini(&r->spec);
    scb_kv_cache_destroy(r->kv);
    scb_free(r->logits);
}

/* ratio 1 recomputes every token: bitwise the dense engine (logits, every K/V entry, a decode
 * step after it), although the chunk store was filled and the blend path taken. */
static void test_cacheblend_ratio1_dense(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "cb1", &SH1, SEED + 40);
    struct scb_rng rng;
    scb_rng_seed(&rng, SEED + 41);
    const size_t n = 300, C = 64;
    int32_t ids[300];
    rand_ids(&rng, ids, n, e.V);
    struct blend_run d, bl;
    blend_prefill(&e, NULL, ids, n, &d);
    blend_prefill(&e, "cacheblend:ratio=1,chunk=64,min_tokens=64", ids, n, &bl);
    assert_int_equal(bl.costs.stored_tokens, (int64_t)((n - 1) / C * C));
    assert_int_equal(bl.costs.reused_tokens, 0);
    assert_int_equal(bl.costs.recomputed_tokens, (int64_t)n);
    assert_true(bl.costs.prefill_density == 1.0);
    assert_memory_equal(d.logits, bl.logits, e.V * sizeof(float));
    const struct scb_model_config *c = scb_model_get_config(e.m);
    for (size_t l = 0; l < c->L; l++)
        for (size_t h = 0; h < c->Hkv; h++) {
            assert_int_equal(scb_kv_cache_len(bl.kv, l, h), n);
            assert_memory_equal(scb_kv_cache_k(d.kv, l, h), scb_kv_cache_k(bl.kv, l, h), n * c->D * sizeof(float));
            assert_memory_equal(scb_kv_cache_v(d.kv, l, h), scb_kv_cache_v(bl.kv, l, h), n * c->D * sizeof(float));
        }
    /* a decode step over the blended cache (the binding's hooks are the model's now) */
    struct scb_ctx ctx = {0};
    int32_t nxt = ids[7];
    float *l2 = scb_malloc(e.V * sizeof(float));
    assert_int_equal(scb_model_forward(e.m, bl.kv, &nxt, 1, l2, SCB_FWD_LAST_LOGITS, &ctx), SCB_OK);
    scb_method_bind_destroy(bl.b);
    bl.b = NULL;
    assert_int_equal(scb_model_forward(e.m, d.kv, &nxt, 1, d.logits, SCB_FWD_LAST_LOGITS, &ctx), SCB_OK);
    assert_memory_equal(d.logits, l2, e.V * sizeof(float));
    scb_free(l2);
    blend_run_fini(&d);
    blend_run_fini(&bl);
    env_close(&e);
}

/* ratio 0: past the check layer, every retrieved row of the cache is the KV of its chunk computed
 * ALONE (a dense forward of the chunk at positions 0..63, run here without any hook), keys
 * rotated to the chunk's offset (rotation recomputed here in double); layers up to the check
 * layer and the trailing rows are the dense prefill's. The recomputed set is exactly the
 * trailing partial chunk. */
static void test_cacheblend_ratio0_reuse(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "cb0", &SH1, SEED + 42);
    struct scb_rng rng;
    scb_rng_seed(&rng, SEED + 43);
    const size_t n = 300, C = 64, nc = (n - 1) / C;
    int32_t ids[300];
    rand_ids(&rng, ids, n, e.V);
    memcpy(ids + 2 * C, ids, C * sizeof *ids);     /* chunk 2 repeats chunk 0: stored once */
    struct blend_run d, bl;
    blend_prefill(&e, NULL, ids, n, &d);
    blend_prefill(&e, "cacheblend:ratio=0,chunk=64,min_tokens=64,check_layer=1", ids, n, &bl);
    assert_int_equal(bl.costs.stored_tokens, (int64_t)((nc - 1) * C));
    assert_int_equal(bl.costs.reused_tokens, (int64_t)(nc * C));
    assert_int_equal(bl.costs.recomputed_tokens, (int64_t)(n - nc * C));
    assert_true(bl.costs.prefill_density < 1.0);
    scb_method_bind_destroy(bl.b);                  /* dense model again for the chunks alone */
    bl.b = NULL;
    const struct scb_model_config *c = scb_model_get_config(e.m);
    const size_t D = c->D, half = D / 2;
    struct scb_ctx ctx = {0};
    double maxerr = 0.0;
    for (size_t ch = 0; ch < nc; ch++) {
        struct scb_kv_cache *one = NULL;
        assert_int_equal(scb_model_kv_create(e.m, C, &one, &ctx), SCB_OK);
        scb_kv_cache_set_mode(one, SCB_KV_APPEND_GLOBAL);
        assert_int_equal(scb_model_forward(e.m, one, ids + ch * C, C, NULL, SCB_FWD_LAST_LOGITS, &ctx), SCB_OK);
        const double off = (double)(ch * C);
        for (size_t l = 0; l < c->L; l++)
            for (size_t h = 0; h < c->Hkv; h++) {
                const float *kb = scb_kv_cache_k(bl.kv, l, h) + ch * C * D, *vb = scb_kv_cache_v(bl.kv, l, h) + ch * C * D;
                if (l <= 1) {   /* up to the check layer: the dense prefill's entries */
                    assert_memory_equal(kb, scb_kv_cache_k(d.kv, l, h) + ch * C * D, C * D * sizeof(float));
                    assert_memory_equal(vb, scb_kv_cache_v(d.kv, l, h) + ch * C * D, C * D * sizeof(float));
                    continue;
                }
                assert_memory_equal(vb, scb_kv_cache_v(one, l, h), C * D * sizeof(float));
                const float *k1 = scb_kv_cache_k(one, l, h);
                for (size_t t = 0; t < C; t++)
                    for (size_t i = 0; i < half; i++) {
                        double th = off * pow(10000.0, -2.0 * (double)i / (double)D);
                        double a = k1[t * D + i], b = k1[t * D + i + half];
                        double r0 = a * cos(th) - b * sin(th), r1 = b * cos(th) + a * sin(th);
                        double e0 = fabs(r0 - kb[t * D + i]), e1 = fabs(r1 - kb[t * D + i + half]);
                        if (e0 > maxerr) maxerr = e0;
                        if (e1 > maxerr) maxerr = e1;
                    }
                if (ch == 0) assert_memory_equal(kb, k1, C * D * sizeof(float));
            }
        scb_kv_cache_destroy(one);
    }
    printf("# cacheblend ratio 0: max |re-rotated key - double rotation| = %.3g\n", maxerr);
    assert_true(maxerr < 1e-4);
    /* the tail's own K/V are fresh at every layer (their inputs never saw reused KV before the
     * layer after the check layer) and equal the dense prefill's; its logits read the reused,
     * context-free KV of layer 2 and differ */
    const size_t last = c->L - 1;
    assert_memory_equal(scb_kv_cache_k(bl.kv, last, 0) + nc * C * D, scb_kv_cache_k(d.kv, last, 0) + nc * C * D,
                        (n - nc * C) * D * sizeof(float));
    assert_memory_not_equal(d.logits, bl.logits, e.V * sizeof(float));
    blend_run_fini(&d);
    blend_run_fini(&bl);
    env_close(&e);
}

/* below min_tokens or with a KV policy: no blending / a clear refusal */
static void test_cacheblend_refusals(void **st)
{
    (void)st;
    struct env e;
    random_model(&e, "cb2", &SH1, SEED + 44);
    struct scb_ctx ctx = {0};
    struct scb_method_spec spec = {0};
    struct scb_method_binding *b = NULL;
    assert_int_equal(scb_method_spec_parse("cacheblend+snapkv", &spec, &ctx), SCB_OK);
    assert_int_equal(scb_method_bind_create(&b, e.m, &spec, &ctx), SCB_E_UNSUPPORTED);
    assert_non_null(strstr(ctx.msg, "cacheblend"));
    assert_null(b);
    scb_method_spec_fini(&spec);
    struct scb_rng rng;
    scb_rng_seed(&rng, SEED + 45);
    int32_t ids[100];
    rand_ids(&rng, ids, 100, e.V);
    struct blend_run r;
    blend_prefill(&e, "cacheblend:chunk=64", ids, 100, &r);   /* min_tokens 256 > 100: dense */
    assert_int_equal(r.costs.stored_tokens, 0);
    assert_int_equal(r.costs.recomputed_tokens, 0);
    assert_true(r.costs.prefill_density == 1.0);
    blend_run_fini(&r);
    env_close(&e);
}

static int setup(void **st)
{
    (void)st;
    const char *s = getenv("SCB_TEST_SEED");
    if (s && *s) SEED = strtoull(s, NULL, 0);
    printf("# seed %llu (set SCB_TEST_SEED to change)\n", (unsigned long long)SEED);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scb_test_bind_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bitwise_random),
        cmocka_unit_test(test_bitwise_fixture),
        cmocka_unit_test(test_streamingllm_positions),
        cmocka_unit_test(test_snapkv_pyramid_kept),
        cmocka_unit_test(test_costs),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_streamingllm_vs_manual),
        cmocka_unit_test(test_follow_up_token_by_token),
        cmocka_unit_test(test_costs_match_model),
        cmocka_unit_test(test_streamingllm_defaults_long),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_cacheblend_ratio1_dense),
        cmocka_unit_test(test_cacheblend_ratio0_reuse),
        cmocka_unit_test(test_cacheblend_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
