/* test_kv_cache.c — the two-segment KV cache: drop_temp restores the global part exactly and
 * rewinds `seen`; commit_temp keeps temp entries as global; capacity and segment-order errors
 * leave the cache unchanged; keep() compacts per head while positions continue from `seen`;
 * byte accounting; a cache storing more heads than it is fed (SCBench's GQA repetition) copies
 * input head s / rep into stored head s and keeps per stored head; a cache with external
 * (device) storage keeps the same bookkeeping through append_meta and keep, refuses host data
 * operations and frees its storage exactly once. Inputs are seeded random values (seed printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/alloc.h"
#include "kernels/kv_cache.h"
#include "kernels/util.h"

enum { L = 3, HKV = 2, D = 4, CAP = 16 };
static const uint64_t SEED = 7321;

static void fill(struct scb_rng *r, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = scb_rng_normal(r);
}

/* append T random tokens to every layer, then advance */
static void append_all(struct scb_kv_cache *kv, struct scb_rng *r, size_t T)
{
    float k[CAP * HKV * D], v[CAP * HKV * D];   /* (T, Hkv, D) */
    struct scb_ctx ctx = {0};
    for (size_t l = 0; l < L; l++) {
        fill(r, k, T * HKV * D);
        fill(r, v, T * HKV * D);
        assert_int_equal(scb_kv_cache_append(kv, l, k, v, T, kv->seen, &ctx), SCB_OK);
    }
    scb_kv_cache_advance(kv, T);
}

static void test_drop_temp_restores(void **s)
{
    (void)s;
    printf("seed %llu\n", (unsigned long long)SEED);
    struct scb_rng r;
    scb_rng_seed(&r, SEED);
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    assert_int_equal(scb_kv_cache_create(&kv, L, HKV, D, CAP, &ctx), SCB_OK);
    append_all(kv, &r, 5);
    assert_int_equal(kv->seen, 5);
    size_t bytes = (size_t)L * HKV * CAP * D * sizeof(float);
    float *k0 = scb_malloc(bytes), *v0 = scb_malloc(bytes);
    memcpy(k0, kv->k, bytes);
    memcpy(v0, kv->v, bytes);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    append_all(kv, &r, 3);
    append_all(kv, &r, 1);
    assert_int_equal(kv->seen, 9);
    assert_int_equal(scb_kv_cache_len(kv, 2, 1), 9);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 0)[8], 8);
    scb_kv_cache_drop_temp(kv);
    assert_int_equal(kv->seen, 5);
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < HKV; h++) {
            assert_int_equal(scb_kv_cache_len(kv, l, h), 5);
            size_t o = (l * HKV + h) * CAP * D;
            assert_memory_equal(scb_kv_cache_k(kv, l, h), k0 + o, 5 * D * sizeof(float));
            assert_memory_equal(scb_kv_cache_v(kv, l, h), v0 + o, 5 * D * sizeof(float));
        }
    /* a new turn continues at position 5 */
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    append_all(kv, &r, 2);
    assert_int_equal(kv->seen, 7);
    assert_int_equal(scb_kv_cache_positions(kv, 0, 1)[5], 5);
    assert_int_equal(scb_kv_cache_positions(kv, 0, 1)[6], 6);
    scb_free(k0);
    scb_free(v0);
    scb_kv_cache_clear(kv);
    assert_int_equal(kv->seen, 0);
    assert_int_equal(scb_kv_cache_len(kv, 1, 1), 0);
    scb_kv_cache_destroy(kv);
}

static void test_commit_temp(void **s)
{
    (void)s;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 1);
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    assert_int_equal(scb_kv_cache_create(&kv, L, HKV, D, CAP, &ctx), SCB_OK);
    append_all(kv, &r, 4);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    append_all(kv, &r, 3);
    float k6[D];
    memcpy(k6, scb_kv_cache_k(kv, 1, 1) + 6 * D, sizeof k6);
    scb_kv_cache_commit_temp(kv);
    assert_int_equal(kv->seen, 7);
    assert_int_equal(kv->n_global[1 * HKV + 1], 7);
    assert_int_equal(kv->n_temp[1], 0);
    scb_kv_cache_drop_temp(kv);            /* nothing left to drop */
    assert_int_equal(kv->seen, 7);
    assert_memory_equal(scb_kv_cache_k(kv, 1, 1) + 6 * D, k6, sizeof k6);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    append_all(kv, &r, 1);
    assert_int_equal(scb_kv_cache_len(kv, 0, 0), 8);
    scb_kv_cache_destroy(kv);
}

static void test_capacity_and_order_errors(void **s)
{
    (void)s;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 2);
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    assert_int_equal(scb_kv_cache_create(&kv, 0, HKV, D, CAP, &ctx), SCB_E_INVAL);
    assert_null(kv);
    assert_int_equal(scb_kv_cache_create(&kv, L, HKV, D, CAP, &ctx), SCB_OK);
    append_all(kv, &r, 14);
    float k[3 * HKV * D], v[3 * HKV * D];
    fill(&r, k, sizeof k / sizeof k[0]);
    fill(&r, v, sizeof v / sizeof v[0]);
    assert_int_equal(scb_kv_cache_check_room(kv, 3, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "capacity"));
    assert_int_equal(scb_kv_cache_append(kv, 0, k, v, 3, kv->seen, &ctx), SCB_E_INVAL);
    assert_int_equal(scb_kv_cache_len(kv, 0, 0), 14);
    assert_int_equal(scb_kv_cache_check_room(kv, 2, &ctx), SCB_OK);
    /* global append while temp holds entries */
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    append_all(kv, &r, 1);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    assert_int_equal(scb_kv_cache_check_room(kv, 1, &ctx), SCB_E_INVAL);
    assert_int_equal(scb_kv_cache_append(kv, 0, k, v, 1, kv->seen, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "temp"));
    assert_int_equal(scb_kv_cache_len(kv, 0, 0), 15);
    scb_kv_cache_destroy(kv);
}

static void test_keep_per_head(void **s)
{
    (void)s;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 3);
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    assert_int_equal(scb_kv_cache_create(&kv, L, HKV, D, CAP, &ctx), SCB_OK);
    append_all(kv, &r, 8);
    float kcopy[8 * D];
    memcpy(kcopy, scb_kv_cache_k(kv, 1, 0), sizeof kcopy);
    const size_t keep0[] = {0, 3, 7}, keep1[] = {1, 2, 4, 5, 6};
    assert_int_equal(scb_kv_cache_keep(kv, 1, 0, keep0, 3, &ctx), SCB_OK);
    assert_int_equal(scb_kv_cache_keep(kv, 1, 1, keep1, 5, &ctx), SCB_OK);
    const size_t bad[] = {2, 2};
    assert_int_equal(scb_kv_cache_keep(kv, 1, 1, bad, 2, &ctx), SCB_E_INVAL);
    const size_t beyond[] = {9};
    assert_int_equal(scb_kv_cache_keep(kv, 0, 0, beyond, 1, &ctx), SCB_E_INVAL);
    assert_int_equal(scb_kv_cache_len(kv, 1, 0), 3);
    assert_int_equal(scb_kv_cache_len(kv, 1, 1), 5);
    assert_int_equal(scb_kv_cache_len(kv, 0, 0), 8);
    for (size_t i = 0; i < 3; i++) {
        assert_memory_equal(scb_kv_cache_k(kv, 1, 0) + i * D, kcopy + keep0[i] * D, D * sizeof(float));
        assert_int_equal(scb_kv_cache_positions(kv, 1, 0)[i], (int64_t)keep0[i]);
    }
    assert_int_equal(kv->seen, 8);
    size_t entries, logical, physical;
    scb_kv_cache_bytes(kv, &entries, &logical, &physical);
    assert_int_equal(entries, 8 * 4 + 3 + 5);
    assert_int_equal(logical, entries * D * 2 * sizeof(float));
    assert_int_equal(physical, (size_t)L * HKV * CAP * (2 * D * sizeof(float) + sizeof(int64_t)));
    /* positions continue from seen (8), not from the entries kept */
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    append_all(kv, &r, 2);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 0)[3], 8);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 1)[6], 9);
    assert_int_equal(scb_kv_cache_keep(kv, 1, 0, keep0, 1, &ctx), SCB_E_INVAL);   /* temp not empty */
    scb_kv_cache_drop_temp(kv);
    assert_int_equal(kv->seen, 8);
    assert_int_equal(scb_kv_cache_len(kv, 1, 1), 5);
    scb_kv_cache_destroy(kv);
}


static void test_stored_heads(void **s)
{
    (void)s;
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    struct scb_rng r;
    scb_rng_seed(&r, SEED + 5);
    assert_int_not_equal(scb_kv_cache_create_heads(&kv, L, HKV, 3, D, CAP, &ctx), SCB_OK);   /* 3 % 2 */
    assert_non_null(strstr(ctx.msg, "multiple"));
    assert_null(kv);
    enum { REP = 3, HS = HKV * REP, T = 5 };
    assert_int_equal(scb_kv_cache_create_heads(&kv, L, HKV, HS, D, CAP, &ctx), SCB_OK);
    assert_int_equal(kv->Hkv, HS);
    assert_int_equal(kv->Hin, HKV);
    float k[T * HKV * D], v[T * HKV * D];   /* (T, Hin, D) */
    for (size_t l = 0; l < L; l++) {
        fill(&r, k, T * HKV * D);
        fill(&r, v, T * HKV * D);
        assert_int_equal(scb_kv_cache_append(kv, l, k, v, T, kv->seen, &ctx), SCB_OK);
        for (size_t h = 0; h < HS; h++) {
            assert_int_equal(scb_kv_cache_len(kv, l, h), T);
            for (size_t t = 0; t < T; t++) {
                assert_memory_equal(scb_kv_cache_k(kv, l, h) + t * D, k + (t * HKV + h / REP) * D, D * sizeof(float));
                assert_memory_equal(scb_kv_cache_v(kv, l, h) + t * D, v + (t * HKV + h / REP) * D, D * sizeof(float));
            }
        }
    }
    scb_kv_cache_advance(kv, T);
    /* replicas of one input head may keep different entries */
    size_t keep0[2] = {0, 4}, keep1[3] = {1, 2, 3};
    assert_int_equal(scb_kv_cache_keep(kv, 1, 0, keep0, 2, &ctx), SCB_OK);
    assert_int_equal(scb_kv_cache_keep(kv, 1, 1, keep1, 3, &ctx), SCB_OK);
    assert_int_equal(scb_kv_cache_len(kv, 1, 0), 2);
    assert_int_equal(scb_kv_cache_len(kv, 1, 1), 3);
    assert_int_equal(scb_kv_cache_len(kv, 1, 2), T);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 0)[1], 4);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 1)[0], 1);
    size_t entries, logical, physical;
    scb_kv_cache_bytes(kv, &entries, &logical, &physical);
    assert_int_equal(entries, (size_t)(L * HS * T - (T - 2) - (T - 3)));
    assert_int_equal(physical, (size_t)L * HS * CAP * (2 * D * sizeof(float) + sizeof(int64_t)));
    scb_kv_cache_destroy(kv);
}

/* external storage: a stand-in object whose free is counted */
static int ext_frees;
static void ext_free(void *p) { ext_frees++; scb_free(p); }

static void test_external_storage(void **s)
{
    (void)s;
    struct scb_ctx ctx = {0};
    struct scb_kv_cache *kv = NULL;
    ext_frees = 0;
    void *ext = scb_malloc(8);
    assert_int_equal(scb_kv_cache_create_external(&kv, L, HKV, D, CAP, 2, ext, ext_free, &ctx), SCB_OK);
    assert_null(scb_kv_cache_k(kv, 0, 0));
    assert_null(scb_kv_cache_v(kv, 0, 0));
    /* prompt of 5 into global, 3 generated into temp, drop: seen and counts as on the host */
    for (size_t l = 0; l < L; l++) assert_int_equal(scb_kv_cache_append_meta(kv, l, 5, kv->seen, &ctx), SCB_OK);
    scb_kv_cache_advance(kv, 5);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    for (size_t l = 0; l < L; l++) assert_int_equal(scb_kv_cache_append_meta(kv, l, 3, kv->seen, &ctx), SCB_OK);
    scb_kv_cache_advance(kv, 3);
    assert_int_equal(scb_kv_cache_len(kv, 2, 1), 8);
    assert_int_equal(scb_kv_cache_positions(kv, 2, 1)[7], 7);
    size_t entries, logical, physical;
    scb_kv_cache_bytes(kv, &entries, &logical, &physical);
    assert_int_equal(entries, (size_t)(L * HKV * 8));
    assert_int_equal(logical, (size_t)(L * HKV * 8 * D * 2 * 2));        /* bf16 elements */
    assert_int_equal(physical, (size_t)L * HKV * CAP * (2 * D * 2 + sizeof(int64_t)));
    scb_kv_cache_drop_temp(kv);
    assert_int_equal(kv->seen, 5);
    assert_int_equal(scb_kv_cache_len(kv, 0, 0), 5);
    /* a global append while temp holds entries is refused, as is overflow */
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    assert_int_equal(scb_kv_cache_append_meta(kv, 0, 1, kv->seen, &ctx), SCB_OK);
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
    assert_int_equal(scb_kv_cache_append_meta(kv, 0, 1, kv->seen, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(ctx.msg, "temp segment"));
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    assert_int_equal(scb_kv_cache_append_meta(kv, 1, CAP, kv->seen, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(ctx.msg, "kv cache full"));
    /* host data operations are refused */
    float k[HKV * D] = {1}, v[HKV * D] = {2};
    assert_int_equal(scb_kv_cache_append(kv, 0, k, v, 1, kv->seen, &ctx), SCB_E_UNSUPPORTED);
    assert_non_null(strstr(ctx.msg, "device memory"));
    /* keep compacts the bookkeeping only (the owner moves the entries) */
    scb_kv_cache_clear(kv);
    for (size_t l = 0; l < L; l++) assert_int_equal(scb_kv_cache_append_meta(kv, l, 6, kv->seen, &ctx), SCB_OK);
    scb_kv_cache_advance(kv, 6);
    size_t idx[3] = {1, 4, 5};
    assert_int_equal(scb_kv_cache_keep(kv, 1, 1, idx, 3, &ctx), SCB_OK);
    assert_int_equal(scb_kv_cache_len(kv, 1, 1), 3);
    assert_int_equal(scb_kv_cache_len(kv, 1, 0), 6);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 1)[1], 4);
    assert_int_equal(scb_kv_cache_positions(kv, 1, 1)[2], 5);
    assert_int_equal(kv->seen, 6);
    size_t bad[2] = {3, 2};
    assert_int_equal(scb_kv_cache_keep(kv, 1, 0, bad, 2, &ctx), SCB_E_INVAL);
    assert_int_equal(ext_frees, 0);
    scb_kv_cache_destroy(kv);
    assert_int_equal(ext_frees, 1);
    /* a failed creation frees the storage it was given */
    ext = scb_malloc(8);
    assert_int_equal(scb_kv_cache_create_external(&kv, L, HKV, D, 0, 2, ext, ext_free, &ctx), SCB_E_INVAL);
    assert_null(kv);
    assert_int_equal(ext_frees, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop_temp_restores),
        cmocka_unit_test(test_commit_temp),
        cmocka_unit_test(test_capacity_and_order_errors),
        cmocka_unit_test(test_keep_per_head),
        cmocka_unit_test(test_stored_heads),
        cmocka_unit_test(test_external_storage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
