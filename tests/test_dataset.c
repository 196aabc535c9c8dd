/* test_dataset.c — the SCBench data reader and checker: every hand-written fixture of the 12
 * tasks reads with the fields the released format has (values checked against what the
 * fixture files say), gzip and plain give identical sessions, a line over 1 MB streams, and
 * malformed input (bad JSON, missing/mistyped fields, truncated gzip, empty file) gives an
 * error naming file, line and field with the right status and no crash; Python str(list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "datasets/check.h"
#include "datasets/dataset.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static const char *fixtures(void)
{
    const char *d = getenv("SCB_FIXTURES_DIR");
    return d ? d : "tests/fixtures";
}

static char *fixture(const char *name)
{
    static char buf[4][1024];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 1024, "%s/data/%s", fixtures(), name);
    return b;
}

/* Read all sessions of path; returns the count, fails the test on any error. */
static size_t read_all(const char *path, struct scb_session *out, size_t cap)
{
    struct scb_ctx ctx = {0};
    struct scb_dataset *r = NULL;
    assert_int_equal(scb_dataset_open(&r, path, &ctx), SCB_OK);
    size_t n = 0;
    for (;;) {
        struct scb_session s;
        int got = scb_dataset_next(r, &s, &ctx);
        if (got < 0) fail_msg("%s: %s", path, scb_errmsg(&ctx));
        if (got == 0) break;
        assert_true(n < cap);
        assert_int_equal(s.index, (long)n);
        out[n++] = s;
    }
    scb_dataset_close(r);
    return n;
}

static void free_all(struct scb_session *s, size_t n)
{
    for (size_t i = 0; i < n; i++) scb_session_fini(&s[i]);
}

static const char *const all_tasks[12] = {
    "kv", "prefix_suffix", "vt", "repoqa", "qa_eng", "qa_chn", "choice_eng", "mf", "many_shot",
    "summary", "summary_with_needles", "repoqa_and_kv"};

static void test_every_fixture_reads_and_checks(void **st)
{
    (void)st;
    for (int t = 0; t < 12; t++) {
        char name[128];
        snprintf(name, sizeof name, "scbench_%s.jsonl", all_tasks[t]);
        struct scb_session s[8];
        size_t n = read_all(fixture(name), s, 8);
        assert_true(n >= 2 && n <= 3);
        for (size_t i = 0; i < n; i++) {
            assert_true(s[i].n_turns >= 2 && s[i].n_turns <= 8);
            assert_int_equal(s[i].id, (long long)i);
            assert_true(s[i].context || s[i].context_ints);
            for (size_t j = 0; j < s[i].n_turns; j++) {
                assert_non_null(s[i].turns[j].input);
                assert_non_null(s[i].turns[j].answer);
            }
        }
        free_all(s, n);
        /* the task-aware checker finds nothing wrong in the good fixtures */
        struct scb_check_summary sum;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_check_file(fixture(name), NULL, NULL, NULL, &sum, &ctx), SCB_OK);
        char want[64];
        snprintf(want, sizeof want, "scbench_%s", all_tasks[t]);
        assert_string_equal(sum.task, want);
        if (sum.problems) fail_msg("%s: %ld problems", name, sum.problems);
        assert_int_equal(sum.sessions, (long)n);
    }
}

/* Field values as written in the fixture files. */
static void test_fixture_fields(void **st)
{
    (void)st;
    struct scb_session s[4];
    size_t n = read_all(fixture("scbench_mf.jsonl"), s, 4);
    assert_int_equal(n, 3);
    assert_null(s[0].context);
    assert_int_equal(s[0].n_context_ints, 21);
    assert_int_equal(s[0].context_ints[0], 850);
    assert_int_equal(s[0].context_ints[20], 776);
    assert_true(cJSON_IsNumber(s[0].turns[0].answer));
    assert_int_equal(s[0].turns[0].answer->valueint, 949);
    assert_int_equal(s[0].n_turns, 3);
    assert_int_equal(s[1].n_turns, 2);
    free_all(s, n);

    n = read_all(fixture("scbench_choice_eng.jsonl"), s, 4);
    assert_int_equal(cJSON_GetArraySize(s[0].turns[0].options), 4);
    assert_string_equal(cJSON_GetArrayItem(s[0].turns[0].options, 1)->valuestring, "Elias Bray");
    assert_string_equal(s[0].turns[0].answer->valuestring, "Elias Bray");
    free_all(s, n);

    n = read_all(fixture("scbench_vt.jsonl"), s, 4);
    assert_true(cJSON_IsArray(s[0].turns[0].answer));
    assert_int_equal(cJSON_GetArraySize(s[0].turns[0].answer), 3);
    free_all(s, n);

    n = read_all(fixture("scbench_repoqa.jsonl"), s, 4);
    assert_string_equal(s[0].lang, "python");
    assert_string_equal(s[1].lang, "go");
    assert_string_equal(s[1].repo, "example/netutil");
    assert_string_equal(s[0].turns[1].name, "chunked");
    assert_non_null(strstr(s[0].turns[1].answer->valuestring, "def chunked(items, size):"));
    free_all(s, n);

    n = read_all(fixture("scbench_summary_with_needles.jsonl"), s, 4);
    assert_int_equal(s[0].n_turns, 8);
    for (size_t j = 0; j < 8; j++)
        assert_string_equal(s[0].turns[j].task, j % 2 ? "scbench_passkey" : "scbench_summary");
    assert_string_equal(s[0].turns[3].answer->valuestring, "90517");
    free_all(s, n);

    n = read_all(fixture("scbench_many_shot.jsonl"), s, 4);
    assert_string_equal(s[0].task, "date");
    assert_string_equal(s[1].task, "salient");
    free_all(s, n);

    n = read_all(fixture("scbench_qa_chn.jsonl"), s, 4);
    assert_string_equal(s[0].turns[1].answer->valuestring, "听雨轩");
    assert_int_equal(scb_utf8_length("听雨轩", strlen("听雨轩")), 3);
    free_all(s, n);

    n = read_all(fixture("scbench_repoqa_and_kv.jsonl"), s, 4);
    assert_string_equal(s[0].turns[0].task, "scbench_repoqa");
    assert_string_equal(s[0].turns[0].name, "parse_header");
    assert_string_equal(s[0].turns[1].task, "scbench_kv");
    assert_null(s[0].turns[1].name);
    free_all(s, n);
}

static void gzip_file(const char *src, const char *dst)
{
    char *data = NULL;
    size_t len = 0;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_file_read(src, &data, &len, &ctx), SCB_OK);
    gzFile g = gzopen(dst, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
    scb_free(data);
}

static void assert_same_sessions(const char *a, const char *b)
{
    struct scb_session x[8], y[8];
    size_t n = read_all(a, x, 8), m = read_all(b, y, 8);
    assert_int_equal(n, m);
    for (size_t i = 0; i < n; i++) {
        struct scb_buf ja = {0}, jb = {0};
        assert_int_equal(scb_session_to_json(&x[i], &ja, NULL), SCB_OK);
        assert_int_equal(scb_session_to_json(&y[i], &jb, NULL), SCB_OK);
        assert_string_equal(ja.data, jb.data);
        scb_buf_fini(&ja);
        scb_buf_fini(&jb);
    }
    free_all(x, n);
    free_all(y, m);
}

static void test_gzip_equals_plain(void **st)
{
    (void)st;
    for (int t = 0; t < 12; t++) {
        char name[128], gz[64];
        snprintf(name, sizeof name, "scbench_%s.jsonl", all_tasks[t]);
        snprintf(gz, sizeof gz, "/tmp/scb_test_ds_%d.jsonl.gz", (int)getpid());
        gzip_file(fixture(name), gz);
        assert_same_sessions(fixture(name), gz);
        unlink(gz);
    }
}

/* A session written out and read back is the same session (every field kind). */
static void test_json_roundtrip(void **st)
{
    (void)st;
    char path[64];
    snprintf(path, sizeof path, "/tmp/scb_test_rt_%d.jsonl", (int)getpid());
    for (int t = 0; t < 12; t++) {
        char name[128];
        snprintf(name, sizeof name, "scbench_%s.jsonl", all_tasks[t]);
        struct scb_session s[8];
        size_t n = read_all(fixture(name), s, 8);
        struct scb_buf b = {0};
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(scb_session_to_json(&s[i], &b, NULL), SCB_OK);
            scb_buf_putc(&b, '\n');
        }
        assert_int_equal(scb_file_write(path, b.data, b.len, NULL), SCB_OK);
        scb_buf_fini(&b);
        free_all(s, n);
        assert_same_sessions(fixture(name), path);
    }
    unlink(path);
}

static void test_long_line(void **st)
{
    (void)st;
    uint64_t seed = 1234567;
    printf("seed %llu\n", (unsigned long long)seed);
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    size_t n = 1536 * 1024 + 77;   /* > 1 MB, not a multiple of the 64 KiB chunk */
    char *ctxt = scb_malloc(n + 1);
    assert_non_null(ctxt);
    for (size_t i = 0; i < n; i++) ctxt[i] = "abcdefgh ijklmnop.\\\""[scb_rng_below(&r, 20)];
    ctxt[n] = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", 7);
    cJSON_AddStringToObject(o, "context", ctxt);
    cJSON *mt = cJSON_AddArrayToObject(o, "multi_turns");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "input", "q");
    cJSON_AddStringToObject(t, "answer", "a");
    cJSON_AddItemToArray(mt, t);
    char *line = cJSON_PrintUnformatted(o);
    struct scb_buf b = {0};
    for (int k = 0; k < 3; k++) { scb_buf_puts(&b, line); scb_buf_putc(&b, '\n'); }
    char plain[64], gz[64];
    snprintf(plain, sizeof plain, "/tmp/scb_test_long_%d.jsonl", (int)getpid());
    snprintf(gz, sizeof gz, "/tmp/scb_test_long_%d.jsonl.gz", (int)getpid());
    assert_int_equal(scb_file_write(plain, b.data, b.len, NULL), SCB_OK);
    gzip_file(plain, gz);
    const char *paths[2] = {plain, gz};
    for (int p = 0; p < 2; p++) {
        struct scb_session s[4];
        size_t m = read_all(paths[p], s, 4);
        assert_int_equal(m, 3);
        for (size_t i = 0; i < m; i++) {
            assert_int_equal(strlen(s[i].context), n);
            assert_memory_equal(s[i].context, ctxt, n);
            assert_int_equal(s[i].id, 7);
        }
        free_all(s, m);
    }
    unlink(plain);
    unlink(gz);
    scb_buf_fini(&b);
    cJSON_free(line);
    cJSON_Delete(o);
    scb_free(ctxt);
}

/* A UTF-8 byte-order mark, CRLF line ends and blank lines are tolerated. */
static void test_bom_crlf_blank(void **st)
{
    (void)st;
    char path[64];
    snprintf(path, sizeof path, "/tmp/scb_test_bom_%d.jsonl", (int)getpid());
    const char *body = "\xEF\xBB\xBF{\"id\": 4, \"context\": \"c\", \"multi_turns\": [{\"input\": \"q\", "
                       "\"answer\": \"a\"}]}\r\n\n   \n{\"input\": \"fallback\", \"multi_turns\": "
                       "[{\"input\": \"q\", \"answer\": [\"x\", 2]}]}\r\n";
    assert_int_equal(scb_file_write(path, body, strlen(body), NULL), SCB_OK);
    struct scb_session s[4];
    size_t n = read_all(path, s, 4);
    assert_int_equal(n, 2);
    assert_int_equal(s[0].id, 4);
    assert_string_equal(s[0].context, "c");
    assert_int_equal(s[1].id, -1);
    assert_string_equal(s[1].context, "fallback");     /* the 'input' fallback of §3.2 */
    assert_int_equal(cJSON_GetArraySize(s[1].turns[0].answer), 2);
    free_all(s, n);
    unlink(path);
}

/* Read until the first error; return it, with the message in ctx. */
static int first_error(const char *path, struct scb_ctx *ctx, long *n_ok)
{
    struct scb_dataset *r = NULL;
    int rc = scb_dataset_open(&r, path, ctx);
    if (rc < 0) return rc;
    *n_ok = 0;
    for (;;) {
        struct scb_session s;
        rc = scb_dataset_next(r, &s, ctx);
        if (rc <= 0) break;
        (*n_ok)++;
        scb_session_fini(&s);
    }
    scb_dataset_close(r);
    return rc;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("'%s' does not contain '%s'", hay, needle);
}

static void test_bad_json(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    long ok = 0;
    const char *p = fixture("bad/bad_json.jsonl");
    assert_int_equal(first_error(p, &ctx, &ok), SCB_E_FORMAT);
    assert_int_equal(ok, 1);
    char want[1200];
    snprintf(want, sizeof want, "%s:2: invalid JSON near byte", p);
    assert_contains(scb_errmsg(&ctx), want);
    /* the reader goes on after a bad line: line 3 reads */
    struct scb_dataset *r = NULL;
    struct scb_session s;
    assert_int_equal(scb_dataset_open(&r, p, &ctx), SCB_OK);
    assert_int_equal(scb_dataset_next(r, &s, &ctx), 1);
    scb_session_fini(&s);
    assert_int_equal(scb_dataset_next(r, &s, &ctx), SCB_E_FORMAT);
    assert_int_equal(scb_dataset_next(r, &s, &ctx), 1);
    assert_int_equal(s.id, 2);
    assert_int_equal(s.index, 2);
    assert_int_equal(scb_dataset_line(r), 3);
    scb_session_fini(&s);
    assert_int_equal(scb_dataset_next(r, &s, &ctx), 0);
    scb_dataset_close(r);
}

static void test_missing_turns(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    long ok = 0;
    const char *p = fixture("bad/missing_turns.jsonl");
    assert_int_equal(first_error(p, &ctx, &ok), SCB_E_FORMAT);
    char want[1200];
    snprintf(want, sizeof want, "%s:2: field 'multi_turns' missing", p);
    assert_string_equal(scb_errmsg(&ctx), want);
}

struct issues { int n; char text[16][256]; };

static void collect(void *user, const char *file, long line, const char *field, const char *msg)
{
    struct issues *is = user;
    if (is->n < 16) snprintf(is->text[is->n], 256, "%ld|%s|%s", line, field, msg);
    is->n++;
}

static int has_issue(const struct issues *is, const char *prefix)
{
    for (int i = 0; i < is->n && i < 16; i++)
        if (!strncmp(is->text[i], prefix, strlen(prefix))) return 1;
    return 0;
}

static void test_wrong_types_all_reported(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    struct issues is = {0};
    struct scb_check_summary sum;
    const char *p = fixture("bad/wrong_types.jsonl");
    assert_int_equal(scb_check_file(p, NULL, collect, &is, &sum, &ctx), SCB_OK);
    for (int i = 0; i < is.n; i++) printf("  issue: %s\n", is.text[i]);
    assert_true(has_issue(&is, "1|id|must be an integer"));
    assert_true(has_issue(&is, "1|context|must be a string or a list of integers"));
    assert_true(has_issue(&is, "1|multi_turns[0].input|must be a string"));
    assert_true(has_issue(&is, "1|multi_turns[0].answer|must be a string, a number or a list"));
    assert_true(has_issue(&is, "1|multi_turns[0].options[1]|must be a string"));
    assert_true(has_issue(&is, "1|multi_turns[1].input|missing"));
    assert_true(has_issue(&is, "1|lang|must be a string"));
    assert_int_equal(is.n, 7);
    assert_int_equal(sum.problems, 7);
    assert_int_equal(sum.lines_bad, 1);
    assert_int_equal(sum.sessions, 0);
    /* the reader alone names the first */
    long ok = 0;
    assert_int_equal(first_error(p, &ctx, &ok), SCB_E_FORMAT);
    char want[1200];
    snprintf(want, sizeof want, "%s:1: field 'id' must be an integer", p);
    assert_contains(scb_errmsg(&ctx), want);
}

static void test_empty_file(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    long ok = 0;
    const char *p = fixture("bad/empty.jsonl");
    assert_int_equal(first_error(p, &ctx, &ok), SCB_E_FORMAT);
    char want[1200];
    snprintf(want, sizeof want, "%s: empty file", p);
    assert_contains(scb_errmsg(&ctx), want);
    struct issues is = {0};
    struct scb_check_summary sum;
    assert_int_equal(scb_check_file(p, NULL, collect, &is, &sum, &ctx), SCB_OK);
    assert_int_equal(sum.problems, 1);
    assert_true(has_issue(&is, "-1||"));
}

static void test_missing_file(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    struct scb_dataset *r = NULL;
    assert_int_equal(scb_dataset_open(&r, "/nonexistent/scbench_kv.jsonl", &ctx), SCB_E_IO);
    assert_null(r);
    assert_contains(scb_errmsg(&ctx), "/nonexistent/scbench_kv.jsonl");
}

static void test_truncated_gzip(void **st)
{
    (void)st;
    char gz[64];
    snprintf(gz, sizeof gz, "/tmp/scb_test_trunc_%d.jsonl.gz", (int)getpid());
    /* a compressible multi-line file, gzipped, then cut at several points */
    gzip_file(fixture("scbench_kv.jsonl"), gz);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(scb_file_read(gz, &data, &len, NULL), SCB_OK);
    size_t cuts[4] = {len / 3, len / 2, len - 9, len - 1};
    for (int c = 0; c < 4; c++) {
        assert_int_equal(scb_file_write(gz, data, cuts[c], NULL), SCB_OK);
        struct scb_ctx ctx = {0};
        long ok = 0;
        assert_int_equal(first_error(gz, &ctx, &ok), SCB_E_FORMAT);
        char want[128];
        snprintf(want, sizeof want, "%s: truncated gzip stream", gz);
        assert_contains(scb_errmsg(&ctx), want);
        if (c < 2) assert_true(ok < 3);   /* late cuts lose only the trailer */
        /* the error is final: later calls repeat it */
        struct scb_dataset *r = NULL;
        struct scb_session s;
        assert_int_equal(scb_dataset_open(&r, gz, &ctx), SCB_OK);
        int got;
        while ((got = scb_dataset_next(r, &s, &ctx)) == 1 || (got < 0 && !scb_dataset_failed(r)))
            if (got == 1) scb_session_fini(&s);
        assert_int_equal(got, SCB_E_FORMAT);
        assert_int_equal(scb_dataset_next(r, &s, &ctx), SCB_E_FORMAT);
        scb_dataset_close(r);
    }
    scb_free(data);
    unlink(gz);
}

static void test_task_aware_checks(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    struct scb_check_summary sum;
    struct issues is = {0};
    assert_int_equal(scb_check_file(fixture("bad/scbench_choice_eng.jsonl"), NULL, collect, &is, &sum, &ctx), SCB_OK);
    assert_true(has_issue(&is, "1|multi_turns[1].options|has 3 options, expected 4"));
    assert_true(has_issue(&is, "1|multi_turns[1].answer|is not one of the options"));
    assert_int_equal(sum.problems, 2);

    memset(&is, 0, sizeof is);
    assert_int_equal(scb_check_file(fixture("bad/scbench_repoqa_and_kv.jsonl"), NULL, collect, &is, &sum, &ctx), SCB_OK);
    assert_true(has_issue(&is, "1|repo|missing"));
    assert_true(has_issue(&is, "1|multi_turns[0].name|missing"));
    assert_true(has_issue(&is, "1|multi_turns[1].task|'scbench_summary' is not scbench_repoqa or scbench_kv"));
    assert_int_equal(sum.problems, 3);

    memset(&is, 0, sizeof is);
    assert_int_equal(scb_check_file(fixture("bad/scbench_mf.jsonl"), NULL, collect, &is, &sum, &ctx), SCB_OK);
    assert_true(has_issue(&is, "1|context[1]|must be an integer"));
    assert_int_equal(sum.lines_bad, 1);

    memset(&is, 0, sizeof is);
    assert_int_equal(scb_check_file(fixture("bad/scbench_vt.jsonl"), NULL, collect, &is, &sum, &ctx), SCB_OK);
    assert_true(has_issue(&is, "1|multi_turns[0].answer|must be a non-empty list"));
    assert_int_equal(sum.problems, 1);

    /* the same mf file body under a name without a task: only generic checks */
    memset(&is, 0, sizeof is);
    assert_int_equal(scb_check_file(fixture("scbench_kv.jsonl"), "scbench_mf", collect, &is, &sum, &ctx), SCB_OK);
    assert_true(has_issue(&is, "1|context|must be a list of integers"));
}

static void test_int_list_format(void **st)
{
    (void)st;
    /* Python: str([1, 2, 3]) == "[1, 2, 3]"; str([]) == "[]"; str([-5]) == "[-5]" */
    struct scb_buf b = {0};
    int64_t v[4] = {1, -20, 300, INT64_MIN};
    assert_int_equal(scb_format_int_list(v, 0, &b), SCB_OK);
    assert_string_equal(b.data, "[]");
    b.len = 0;
    assert_int_equal(scb_format_int_list(v, 1, &b), SCB_OK);
    assert_string_equal(b.data, "[1]");
    b.len = 0;
    assert_int_equal(scb_format_int_list(v, 4, &b), SCB_OK);
    assert_string_equal(b.data, "[1, -20, 300, -9223372036854775808]");
    scb_buf_fini(&b);
}

static void test_resolve_and_task_names(void **st)
{
    (void)st;
    char dir[] = "/tmp/scb_test_dir_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p1[128], p2[128];
    snprintf(p1, sizeof p1, "%s/multi_turn_kv.jsonl.gz", dir);
    snprintf(p2, sizeof p2, "%s/scbench_vt.jsonl", dir);
    assert_int_equal(scb_file_write(p1, "x", 1, NULL), SCB_OK);
    assert_int_equal(scb_file_write(p2, "x", 1, NULL), SCB_OK);
    char *path = NULL;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_dataset_resolve(dir, "scbench_kv", &path, &ctx), SCB_OK);
    assert_string_equal(path, p1);
    scb_free(path);
    assert_int_equal(scb_dataset_resolve(dir, "vt", &path, &ctx), SCB_OK);
    assert_string_equal(path, p2);
    scb_free(path);
    assert_int_equal(scb_dataset_resolve(dir, "mf", &path, &ctx), SCB_E_NOTFOUND);
    assert_null(path);
    assert_contains(scb_errmsg(&ctx), "scbench_mf.jsonl.gz");
    unlink(p1);
    unlink(p2);
    rmdir(dir);

    char t[64];
    scb_dataset_task_from_path("data/scbench_repoqa_and_kv.jsonl.gz", t, sizeof t);
    assert_string_equal(t, "scbench_repoqa_and_kv");
    scb_dataset_task_from_path("multi_turn_kv.jsonl", t, sizeof t);
    assert_string_equal(t, "scbench_kv");
    scb_dataset_task_from_path("/x/mydata.jsonl", t, sizeof t);
    assert_string_equal(t, "");
    scb_dataset_task_from_path("/x/scbench_kv.json", t, sizeof t);
    assert_string_equal(t, "");
}

/* Every allocation failure while reading gives SCB_E_NOMEM or a clean result, never a crash
 * or a leak. */
static void test_alloc_failures(void **st)
{
    (void)st;
    size_t live0 = scb_alloc_live_bytes();
    for (long n = 1; n < 200; n++) {
        struct scb_ctx ctx = {0};
        struct scb_dataset *r = NULL;
        scb_alloc_fail_after(n, 0);
        int rc = scb_dataset_open(&r, fixture("scbench_repoqa.jsonl"), &ctx);
        if (rc == SCB_OK) {
            struct scb_session s;
            int got;
            while ((got = scb_dataset_next(r, &s, &ctx)) == 1) scb_session_fini(&s);
            assert_true(got == 0 || got == SCB_E_NOMEM);
        } else {
            assert_int_equal(rc, SCB_E_NOMEM);
        }
        scb_dataset_close(r);
        scb_alloc_fail_after(0, 0);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
}

/* The checker under allocation failures: SCB_E_NOMEM or a full result, no leak. */
static void test_check_alloc_failures(void **st)
{
    (void)st;
    size_t live0 = scb_alloc_live_bytes();
    for (long n = 1; n < 150; n++) {
        struct scb_ctx ctx = {0};
        struct scb_check_summary sum;
        scb_alloc_fail_after(n, 0);
        int rc = scb_check_file(fixture("scbench_mf.jsonl"), NULL, NULL, NULL, &sum, &ctx);
        scb_alloc_fail_after(0, 0);
        assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_fixture_reads_and_checks),
        cmocka_unit_test(test_fixture_fields),
        cmocka_unit_test(test_gzip_equals_plain),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_bom_crlf_blank),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_missing_turns),
        cmocka_unit_test(test_wrong_types_all_reported),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_truncated_gzip),
        cmocka_unit_test(test_task_aware_checks),
        cmocka_unit_test(test_int_list_format),
        cmocka_unit_test(test_resolve_and_task_names),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_check_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
