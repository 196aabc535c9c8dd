/* test_safetensors.c — the safetensors reader on valid and malformed files (each written to a
 * temp dir by the test): truncated file, header length past the end, invalid header JSON,
 * unknown and unsupported dtypes, offsets out of range / inconsistent with the shape /
 * overlapping, a shard index naming a missing tensor; and exact bf16/f16 widening. Every
 * error must name the file (and the tensor where one is involved). */
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

#include "harness/safetensors.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static char tmpdir[256];

static int setup(void **st)
{
    (void)st;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scb_test_st_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* write an 8-byte length + header text (+ data bytes) as tmpdir/name; returns the path (static) */
static const char *write_st(const char *name, const char *hdr, uint64_t claimed_len, size_t data_len)
{
    static char path[400];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(claimed_len >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 37 + 11) & 0xff, f);
    fclose(f);
    return path;
}

static void expect_error(const char *path, int code, const char *needle)
{
    struct scb_ctx ctx = {0};
    struct scb_safetensors *st = (void *)1;
    int rc = scb_safetensors_open(&st, path, &ctx);
    printf("  %s -> %s\n", path, scb_errmsg(&ctx));
    assert_int_equal(rc, code);
    assert_null(st);
    assert_non_null(strstr(scb_errmsg(&ctx), path));
    if (needle) assert_non_null(strstr(scb_errmsg(&ctx), needle));
}

static void test_truncated(void **s)
{
    (void)s;
    static char path[400];
    snprintf(path, sizeof path, "%s/short.safetensors", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite("\x10\x00\x00", 1, 3, f);
    fclose(f);
    expect_error(path, SCB_E_FORMAT, "truncated");
}

static void test_header_past_end(void **s)
{
    (void)s;
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    expect_error(write_st("past.safetensors", h, 100000, 4), SCB_E_FORMAT, "past the end");
}

static void test_invalid_json(void **s)
{
    (void)s;
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]";
    expect_error(write_st("badjson.safetensors", h, strlen(h), 4), SCB_E_FORMAT, "invalid JSON");
}

static void test_unknown_dtype(void **s)
{
    (void)s;
    const char *h = "{\"w\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    expect_error(write_st("unk.safetensors", h, strlen(h), 4), SCB_E_FORMAT, "'w'");
}

static void test_unsupported_dtype(void **s)
{
    (void)s;
    const char *h = "{\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}";
    expect_error(write_st("i64.safetensors", h, strlen(h), 16), SCB_E_UNSUPPORTED, "I64");
}

static void test_offsets_out_of_range(void **s)
{
    (void)s;
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    expect_error(write_st("range.safetensors", h, strlen(h), 8), SCB_E_FORMAT, "out of range");
}

static void test_offsets_vs_shape(void **s)
{
    (void)s;
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}";
    expect_error(write_st("shape.safetensors", h, strlen(h), 24), SCB_E_FORMAT, "'w'");
}

static void test_overlap(void **s)
{
    (void)s;
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    expect_error(write_st("overlap.safetensors", h, strlen(h), 12), SCB_E_FORMAT, "overlap");
}

static void test_valid_and_widening(void **s)
{
    (void)s;
    /* bf16 0x3FC0 = 1.5, 0xC000 = -2; f16 0x3C00 = 1, 0x0001 = 2^-24 (subnormal), 0xFBFF = -65504 */
    char path[400];
    snprintf(path, sizeof path, "%s/ok.safetensors", tmpdir);
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]},"
                    "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[4,10]},"
                    "\"f\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[10,14]}}";
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(h);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(n >> (8 * i));
    fwrite(lb, 1, 8, f);
    fwrite(h, 1, n, f);
    const unsigned char data[14] = {0xC0, 0x3F, 0x00, 0xC0, 0x00, 0x3C, 0x01, 0x00, 0xFF, 0xFB,
                                    0x00, 0x00, 0x40, 0x40};   /* f32 3.0 */
    fwrite(data, 1, sizeof data, f);
    fclose(f);
    struct scb_ctx ctx = {0};
    struct scb_safetensors *st = NULL;
    assert_int_equal(scb_safetensors_open(&st, path, &ctx), SCB_OK);
    assert_int_equal(scb_safetensors_count(st), 3);
    const struct scb_st_tensor *tb = scb_safetensors_find(st, "b"), *th = scb_safetensors_find(st, "h"),
                               *tf = scb_safetensors_find(st, "f");
    assert_non_null(tb); assert_non_null(th); assert_non_null(tf);
    assert_null(scb_safetensors_find(st, "__metadata__"));
    assert_int_equal(tf->ndim, 2);
    float o[3];
    scb_dtype_to_f32(tb->dtype, tb->data, o, 2);
    assert_true(o[0] == 1.5f && o[1] == -2.0f);
    scb_dtype_to_f32(th->dtype, th->data, o, 3);
    assert_true(o[0] == 1.0f && o[1] == ldexpf(1.0f, -24) && o[2] == -65504.0f);
    scb_dtype_to_f32(tf->dtype, tf->data, o, 1);
    assert_true(o[0] == 3.0f);
    scb_safetensors_close(st);
}

static void test_index_missing_tensor(void **s)
{
    (void)s;
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/sharded", tmpdir);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    snprintf(path, sizeof path, "%s/m-1.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(h);
    unsigned char lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (unsigned char)(n >> (8 * i));
    fwrite(lb, 1, 8, f); fwrite(h, 1, n, f); fwrite("\0\0\x80\x3f", 1, 4, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    f = fopen(path, "w");
    fputs("{\"weight_map\": {\"a\": \"m-1.safetensors\", \"b\": \"m-1.safetensors\"}}", f);
    fclose(f);
    struct scb_ctx ctx = {0};
    struct scb_safetensors *st = NULL;
    int rc = scb_safetensors_open_dir(&st, dir, &ctx);
    printf("  %s\n", scb_errmsg(&ctx));
    assert_int_equal(rc, SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&ctx), "index.json"));
    assert_non_null(strstr(scb_errmsg(&ctx), "'b'"));
    /* fixed index: loads, tensor a = 1.0 */
    f = fopen(path, "w");
    fputs("{\"weight_map\": {\"a\": \"m-1.safetensors\"}}", f);
    fclose(f);
    assert_int_equal(scb_safetensors_open_dir(&st, dir, &ctx), SCB_OK);
    const struct scb_st_tensor *t = scb_safetensors_find(st, "a");
    assert_non_null(t);
    float v;
    scb_dtype_to_f32(t->dtype, t->data, &v, 1);
    assert_true(v == 1.0f);
    scb_safetensors_close(st);
}

static void test_missing_dir_files(void **s)
{
    (void)s;
    struct scb_ctx ctx = {0};
    struct scb_safetensors *st = NULL;
    assert_int_equal(scb_safetensors_open_dir(&st, tmpdir, &ctx), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&ctx), tmpdir));
}

/* Seeded random corruption of a valid file (byte flips in the length and header, truncation):
 * open either succeeds or fails with a message naming the file — never crashes or reads
 * outside the file (run under ASan/valgrind to see the latter). */
static void test_random_corruption(void **s)
{
    (void)s;
    const uint64_t seed = 424242;
    printf("seed %llu\n", (unsigned long long)seed);
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a.weight\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}";
    size_t hl = strlen(h), total = 8 + hl + 28;
    unsigned char *good = malloc(total), *bad = malloc(total);
    for (int i = 0; i < 8; i++) good[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(good + 8, h, hl);
    for (size_t i = 0; i < 28; i++) good[8 + hl + i] = (unsigned char)(i * 13 + 1);
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    char path[400];
    snprintf(path, sizeof path, "%s/fuzz.safetensors", tmpdir);
    int n_ok = 0, n_err = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(bad, good, total);
        size_t len = total;
        int flips = 1 + (int)scb_rng_below(&r, 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)scb_rng_below(&r, 8 + hl);
            bad[pos] = (unsigned char)scb_rng_below(&r, 256);
        }
        if (scb_rng_below(&r, 4) == 0) len = (size_t)scb_rng_below(&r, total);
        FILE *f = fopen(path, "wb");
        fwrite(bad, 1, len, f);
        fclose(f);
        struct scb_ctx ctx = {0};
        struct scb_safetensors *st = NULL;
        int rc = scb_safetensors_open(&st, path, &ctx);
        if (rc == SCB_OK) {
            n_ok++;
            for (size_t i = 0; i < scb_safetensors_count(st); i++) {
                const struct scb_st_tensor *t = scb_safetensors_at(st, i);
                float tmp[8];
                if (t->numel <= 8) scb_dtype_to_f32(t->dtype, t->data, tmp, t->numel);
            }
            scb_safetensors_close(st);
        } else {
            n_err++;
            assert_null(st);
            assert_non_null(strstr(scb_errmsg(&ctx), path));
        }
    }
    printf("  %d opened, %d rejected with a message\n", n_ok, n_err);
    assert_true(n_err > 100);
    free(good);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_past_end),
        cmocka_unit_test(test_invalid_json),
        cmocka_unit_test(test_unknown_dtype),
        cmocka_unit_test(test_unsupported_dtype),
        cmocka_unit_test(test_offsets_out_of_range),
        cmocka_unit_test(test_offsets_vs_shape),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_valid_and_widening),
        cmocka_unit_test(test_index_missing_tensor),
        cmocka_unit_test(test_missing_dir_files),
        cmocka_unit_test(test_random_corruption),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
