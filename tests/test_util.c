/* test_util.c — unit tests of the ground floor: status/context, tracked allocation with fault
 * injection, the growable buffer, UTF-8, JSON file errors, and the seeded RNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"

static void test_err_ctx(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    assert_int_equal(scb_err(&c, SCB_E_IO, "%s: %d", "file.bin", 7), SCB_E_IO);
    assert_string_equal(scb_errmsg(&c), "file.bin: 7");
    scb_err_prefix(&c, "loading %s: ", "model");
    assert_string_equal(scb_errmsg(&c), "loading model: file.bin: 7");
    scb_ctx_clear(&c);
    assert_string_equal(scb_errmsg(&c), "SCB_OK");
    assert_string_equal(scb_status_str(SCB_E_FORMAT), "SCB_E_FORMAT");
}

static void test_alloc_tracking(void **st)
{
    (void)st;
    size_t live0 = scb_alloc_live_bytes();
    char *p = scb_malloc(1000);
    assert_non_null(p);
    assert_int_equal(scb_alloc_live_bytes(), live0 + 1000);
    p = scb_realloc(p, 5000);
    assert_non_null(p);
    assert_int_equal(scb_alloc_live_bytes(), live0 + 5000);
    assert_true(scb_alloc_peak_bytes() >= live0 + 5000);
    scb_free(p);
    assert_int_equal(scb_alloc_live_bytes(), live0);
    scb_free(NULL);
}

static void test_alloc_fault_injection(void **st)
{
    (void)st;
    scb_alloc_fail_after(2, 0);
    void *a = scb_malloc(8);
    void *b = scb_malloc(8);
    void *c = scb_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    scb_free(a);
    scb_free(c);
    scb_alloc_fail_after(0, 0);
}

static void test_buf(void **st)
{
    (void)st;
    struct scb_buf b = {0};
    for (int i = 0; i < 1000; i++) assert_int_equal(scb_buf_printf(&b, "%d,", i), SCB_OK);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_int_equal(b.len, strlen(b.data));
    char *s = scb_buf_steal(&b);
    assert_null(b.data);
    assert_true(strlen(s) > 3000);
    scb_free(s);
    s = scb_buf_steal(&b);
    assert_string_equal(s, "");
    scb_free(s);
}

static void test_utf8(void **st)
{
    (void)st;
    const uint32_t cps[] = {0x41, 0xE9, 0x4E2D, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char o[4];
        int n = scb_utf8_encode(cps[i], o);
        uint32_t back = 0;
        assert_int_equal(scb_utf8_decode((const unsigned char *)o, (size_t)n, &back), n);
        assert_int_equal(back, cps[i]);
    }
    uint32_t cp;
    const unsigned char bad[] = {0xC3, 0x28};
    assert_int_equal(scb_utf8_decode(bad, 2, &cp), 1);
    assert_int_equal(cp, 0xFFFD);
    const unsigned char overlong[] = {0xC0, 0xAF};
    scb_utf8_decode(overlong, 2, &cp);
    assert_int_equal(cp, 0xFFFD);
}

static void test_json_errors(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    cJSON *j = NULL;
    assert_int_equal(scb_json_load("/nonexistent/x.json", &j, &c), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&c), "/nonexistent/x.json"));
    char path[] = "/tmp/scb_test_json_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("{\"a\": [1, 2,", f);
    fclose(f);
    assert_int_equal(scb_json_load(path, &j, &c), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&c), path));
    assert_non_null(strstr(scb_errmsg(&c), "invalid JSON"));
    remove(path);
}

static void test_rng(void **st)
{
    (void)st;
    const uint64_t seed = 1234;
    printf("rng seed %llu\n", (unsigned long long)seed);
    struct scb_rng a, b;
    scb_rng_seed(&a, seed);
    scb_rng_seed(&b, seed);
    for (int i = 0; i < 100; i++) assert_true(scb_rng_next(&a) == scb_rng_next(&b));
    double sum = 0, sq = 0;
    for (int i = 0; i < 20000; i++) { float x = scb_rng_normal(&a); sum += x; sq += (double)x * x; }
    assert_true(sum / 20000 < 0.05 && sum / 20000 > -0.05);
    assert_true(sq / 20000 > 0.95 && sq / 20000 < 1.05);
    for (int i = 0; i < 1000; i++) assert_true(scb_rng_below(&a, 7) < 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_ctx),
        cmocka_unit_test(test_alloc_tracking),
        cmocka_unit_test(test_alloc_fault_injection),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_rng),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
