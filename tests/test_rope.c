/* test_rope.c — RoPE against transformers: inverse frequencies, attention scaling and the
 * cos/sin tables of LlamaRotaryEmbedding (torch 2.11 fp32, CPU), dumped on a machine with torch
 * into tests/fixtures/models/rope_reference.json for real-model settings (head_dim 128; default
 * theta 1e4 and 5e5, Llama 3.1 llama3 scaling, llama3 with a small original context, linear,
 * Qwen2.5 YaRN, YaRN with mscale/mscale_all_dim) at positions up to 131071.
 *
 * inv_freq: bit-identical except where torch's vectorised powf (SLEEF, 1-ulp accurate) rounds
 * `theta ** (2i/D)` differently from the correctly rounded pow used here (seen: 1 of 64 values
 * for theta 1e6); so each value must be within 1 ulp, and the exact count is printed. The
 * attention scaling must be identical. cos/sin: the angle is formed in fp32 as torch does, so
 * they differ only where inv_freq does: |diff| <= 1e-5 up to position 131071. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "harness/model_config.h"
#include "kernels/alloc.h"
#include "kernels/backend.h"
#include "kernels/util.h"

static double num(const cJSON *o, const char *k, double dflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(j) ? j->valuedouble : dflt;
}

static void test_rope_vs_transformers(void **s)
{
    (void)s;
    const char *fx = getenv("SCB_FIXTURES_DIR");
    char *path = scb_path_join(fx ? fx : "tests/fixtures", "models/rope_reference.json");
    cJSON *root = NULL;
    struct scb_ctx ctx = {0};
    if (!scb_file_exists(path)) { scb_free(path); skip(); }
    assert_int_equal(scb_json_load(path, &root, &ctx), SCB_OK);
    struct scb_backend *be = NULL;
    assert_int_equal(scb_backend_cpu_create(&be, 1, &ctx), SCB_OK);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    int n_cases = 0;
    for (const cJSON *c = cases->child; c; c = c->next, n_cases++) {
        const cJSON *rp = cJSON_GetObjectItemCaseSensitive(c, "rope_parameters");
        const char *type = cJSON_GetObjectItemCaseSensitive(rp, "rope_type")->valuestring;
        struct scb_rope_params p = {0};
        p.type = !strcmp(type, "linear") ? SCB_ROPE_LINEAR : !strcmp(type, "llama3") ? SCB_ROPE_LLAMA3 :
                 !strcmp(type, "yarn") ? SCB_ROPE_YARN : SCB_ROPE_DEFAULT;
        p.theta = num(rp, "rope_theta", 10000);
        p.factor = num(rp, "factor", 1);
        p.low_freq_factor = num(rp, "low_freq_factor", 1);
        p.high_freq_factor = num(rp, "high_freq_factor", 4);
        p.original_max_pos = num(rp, "original_max_position_embeddings", num(c, "max_position_embeddings", 0));
        p.beta_fast = num(rp, "beta_fast", 0);
        p.beta_slow = num(rp, "beta_slow", 0);
        p.attention_factor = num(rp, "attention_factor", -1);
        p.mscale = num(rp, "mscale", 0);
        p.mscale_all_dim = num(rp, "mscale_all_dim", 0);
        p.truncate = 1;
        size_t D = (size_t)num(c, "head_dim", 0), half = D / 2;
        float inv[256], scale;
        assert_int_equal(scb_rope_inv_freq(&p, D, inv, &scale, &ctx), SCB_OK);
        const cJSON *ji = cJSON_GetObjectItemCaseSensitive(c, "inv_freq");
        assert_int_equal(cJSON_GetArraySize(ji), (int)half);
        int bad_inv = 0;
        for (size_t i = 0; i < half; i++) {
            float want = (float)cJSON_GetArrayItem(ji, (int)i)->valuedouble;
            if (inv[i] != want) {
                assert_true(inv[i] == nextafterf(want, 1.0f) || inv[i] == nextafterf(want, 0.0f));
                if (bad_inv < 3) printf("  %s inv_freq[%zu]: %.9g, transformers %.9g\n", c->string, i, inv[i], want);
                bad_inv++;
            }
        }
        float want_scale = (float)num(c, "attention_scaling", 1);
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(c, "positions");
        const cJSON *jc = cJSON_GetObjectItemCaseSensitive(c, "cos"), *js = cJSON_GetObjectItemCaseSensitive(c, "sin");
        double max_d = 0;
        for (int t = 0; t < cJSON_GetArraySize(pos); t++) {
            int64_t p0 = (int64_t)cJSON_GetArrayItem(pos, t)->valuedouble;
            float cs[128], sn[128];
            assert_int_equal(be->ops->rope_table(be, inv, half, p0, 1, scale, cs, sn, &ctx), SCB_OK);
            for (size_t i = 0; i < half; i++) {
                double dc = fabs(cs[i] - cJSON_GetArrayItem(cJSON_GetArrayItem(jc, t), (int)i)->valuedouble);
                double ds = fabs(sn[i] - cJSON_GetArrayItem(cJSON_GetArrayItem(js, t), (int)i)->valuedouble);
                if (dc > max_d) max_d = dc;
                if (ds > max_d) max_d = ds;
            }
        }
        printf("  %-14s inv_freq 1-ulp differences %d/%zu  attention_scaling %.9g (transformers %.9g)  "
               "max |cos/sin diff| %.3g\n", c->string, bad_inv, half, scale, want_scale, max_d);
        assert_true(bad_inv <= 2);
        assert_true(scale == want_scale);
        assert_true(max_d <= 1e-5);
    }
    assert_true(n_cases >= 5);
    scb_backend_destroy(be);
    cJSON_Delete(root);
    scb_free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rope_vs_transformers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
