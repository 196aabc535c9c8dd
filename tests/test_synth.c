/* test_synth.c — synthetic SCBench sessions: same seed gives the same bytes, another seed
 * other sessions; every answer is derived again here from the context alone (kv: the key's
 * value in the parsed JSON, once; prefix-suffix: the only dictionary word with that prefix
 * and suffix; vt: the chain resolved; mf: the statistic recomputed; passkey: the labelled
 * needle); the context reaches the target length of a mock BPE-like counter within a small
 * tolerance and never exceeds it; the output reads back through the reader and passes the
 * task-aware checker. */
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

#include "datasets/check.h"
#include "datasets/dataset.h"
#include "datasets/synth.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

#define SEED 20250101ULL

/* Mock tokenizer, BPE-like: letter runs in pieces of <= 4, digit runs in pieces of <= 3,
 * every other non-space byte one token, spaces and newlines free. Counts calls. */
static long mock_calls;
static int mock_count(void *user, const char *t, size_t n, size_t *out)
{
    (void)user;
    mock_calls++;
    size_t c = 0, i = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == ' ' || ch == '\n') { i++; continue; }
        size_t j = i;
        if ((ch | 32) >= 'a' && (ch | 32) <= 'z') {
            while (j < n && (((unsigned char)t[j] | 32) >= 'a' && ((unsigned char)t[j] | 32) <= 'z')) j++;
            c += (j - i + 3) / 4;
        } else if (ch >= '0' && ch <= '9') {
            while (j < n && t[j] >= '0' && t[j] <= '9') j++;
            c += (j - i + 2) / 3;
        } else {
            j = i + 1;
            c++;
        }
        i = j;
    }
    *out = c;
    return SCB_OK;
}

static const struct scb_token_counter mock = {mock_count, NULL};

static char *synth_bytes(enum scb_synth_task task, size_t tokens, size_t turns, uint64_t seed, long n,
                         size_t *len)
{
    struct scb_synth_opts o = {task, tokens, turns, seed};
    char *buf = NULL;
    size_t sz = 0;
    FILE *f = open_memstream(&buf, &sz);
    assert_non_null(f);
    struct scb_ctx ctx = {0};
    int rc = scb_synth_write(&o, n, &mock, f, &ctx);
    fclose(f);
    if (rc) fail_msg("%s", scb_errmsg(&ctx));
    *len = sz;
    return buf;
}

static void test_determinism(void **st)
{
    (void)st;
    printf("seed %llu\n", (unsigned long long)SEED);
    for (int t = 0; t < SCB_SYNTH_N_TASKS; t++) {
        size_t la, lb, lc;
        char *a = synth_bytes((enum scb_synth_task)t, 3000, 5, SEED, 3, &la);
        char *b = synth_bytes((enum scb_synth_task)t, 3000, 5, SEED, 3, &lb);
        char *c = synth_bytes((enum scb_synth_task)t, 3000, 5, SEED + 1, 3, &lc);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        assert_true(la != lc || memcmp(a, c, la) != 0);
        /* sessions of one file differ from each other */
        char *nl = memchr(a, '\n', la);
        assert_non_null(nl);
        size_t l0 = (size_t)(nl - a);
        char *second = nl + 1;
        assert_true(strncmp(a + 6, second + 6, l0 > 40 ? 40 : l0) != 0);   /* skip {"id": */
        free(a); free(b); free(c);
    }
}

/* ---- derivations ------------------------------------------------------------------------ */

static size_t count_occ(const char *hay, const char *needle)
{
    size_t n = 0, l = strlen(needle);
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return l ? n : 0;
}

static void derive_kv(const struct scb_session *s)
{
    cJSON *obj = cJSON_Parse(s->context);
    assert_non_null(obj);
    assert_true(cJSON_IsObject(obj));
    for (size_t i = 0; i < s->n_turns; i++) {
        const char *in = s->turns[i].input;
        assert_int_equal(strncmp(in, "Key: \"", 6), 0);
        char key[64];
        const char *q = strchr(in + 6, '"');
        assert_non_null(q);
        snprintf(key, sizeof key, "%.*s", (int)(q - in - 6), in + 6);
        assert_int_equal(strlen(key), 36);
        assert_string_equal(q, "\"\nThe value associated with the specified key is: ");
        cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
        assert_non_null(v);
        assert_string_equal(v->valuestring, s->turns[i].answer->valuestring);
        assert_int_equal(count_occ(s->context, s->turns[i].answer->valuestring), 1);
        assert_int_equal(count_occ(s->context, key), 1);
        for (size_t j = 0; j < i; j++) assert_string_not_equal(s->turns[j].input, in);
    }
    cJSON_Delete(obj);
}

static void derive_prefix_suffix(const struct scb_session *s)
{
    assert_int_equal(strncmp(s->context, "Dictionary = ['", 15), 0);
    /* split the Python list repr */
    char *copy = scb_strdup(s->context + 15);
    size_t n = strlen(copy);
    assert_string_equal(copy + n - 2, "']");
    copy[n - 2] = 0;
    size_t cap = 1;
    for (char *p = copy; (p = strstr(p, "', '")); p += 4) cap++;
    char **w = calloc(cap, sizeof *w);
    size_t k = 0;
    for (char *p = copy;;) {
        w[k++] = p;
        char *e = strstr(p, "', '");
        if (!e) break;
        *e = 0;
        p = e + 4;
    }
    assert_int_equal(k, cap);
    for (size_t i = 0; i < k; i++) {
        size_t l = strlen(w[i]);
        assert_true(l >= 65 && l < 123);
    }
    for (size_t t = 0; t < s->n_turns; t++) {
        char px[64], sx[64];
        assert_int_equal(sscanf(s->turns[t].input, "Prefix: %63[^;]; Suffix: %63[^.].", px, sx), 2);
        assert_non_null(strstr(s->turns[t].input, "The word with both prefix and suffix from the dict is?"));
        size_t matches = 0;
        const char *found = NULL;
        for (size_t i = 0; i < k; i++) {
            size_t l = strlen(w[i]), lp = strlen(px), ls = strlen(sx);
            if (l >= lp && l >= ls && !strncmp(w[i], px, lp) && !strcmp(w[i] + l - ls, sx)) {
                matches++;
                found = w[i];
            }
        }
        assert_int_equal(matches, 1);
        assert_string_equal(found, s->turns[t].answer->valuestring);
    }
    free(w);
    scb_free(copy);
}

static void derive_vt(const struct scb_session *s)
{
    /* parse "VAR NAME = VALUE" lines; resolve references */
    char names[64][8], refs[64][8];
    int n = 0;
    const char *p = s->context;
    while ((p = strstr(p, "VAR "))) {
        assert_true(n < 64);
        assert_int_equal(sscanf(p, "VAR %7s = %7s", names[n], refs[n]), 2);
        n++;
        p += 4;
    }
    assert_int_equal(n, (int)(s->n_turns + 1) * 3);
    for (size_t t = 0; t < s->n_turns; t++) {
        int value = 0;
        assert_int_equal(sscanf(s->turns[t].input, "Question: Find all variables that are assigned the value %d",
                                &value), 1);
        /* the set of variables resolving to value */
        int hit[64] = {0}, nh = 0;
        for (int i = 0; i < n; i++) {
            const char *r = refs[i];
            int guard = 0;
            while (r[0] < '0' || r[0] > '9') {      /* follow to an earlier definition */
                int j = -1;
                for (int k = 0; k < i || (j < 0 && k < n); k++)
                    if (!strcmp(names[k], r)) { j = k; break; }
                assert_true(j >= 0 && j < i);      /* defined before use */
                r = refs[j];
                assert_true(++guard < 64);
            }
            if (atoi(r) == value) { hit[i] = 1; nh++; }
        }
        const cJSON *a = s->turns[t].answer;
        assert_true(cJSON_IsArray(a));
        assert_int_equal(cJSON_GetArraySize(a), nh);
        for (const cJSON *e = a->child; e; e = e->next) {
            int ok = 0;
            for (int i = 0; i < n; i++) ok |= hit[i] && !strcmp(names[i], e->valuestring);
            assert_true(ok);
        }
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void derive_mf(const struct scb_session *s)
{
    size_t n = s->n_context_ints;
    assert_non_null(s->context_ints);
    assert_true(n % 2 == 1);
    int64_t *v = malloc(n * sizeof *v);
    memcpy(v, s->context_ints, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp64);
    for (size_t t = 0; t < s->n_turns; t++) {
        const char *in = s->turns[t].input;
        /* SCBench: re.findall(r"The .+ is", input)[0].lower()[:-3] (greedy) */
        const char *a = strstr(in, "The ");
        assert_non_null(a);
        const char *b = NULL;
        for (const char *q = strstr(a + 4, " is"); q; q = strstr(q + 1, " is")) b = q;
        assert_non_null(b);
        char target[128];
        snprintf(target, sizeof target, "%.*s", (int)(b - a), a);
        int64_t want;
        if (!strcmp(target, "The largest number of the list")) want = v[n - 1];
        else if (!strcmp(target, "The smallest number of the list")) want = v[0];
        else if (!strcmp(target, "The median of the list")) want = v[n / 2];
        else if (!strcmp(target, "The second largest number of the list")) want = v[n - 2];
        else if (!strcmp(target, "The second smallest number of the list")) want = v[1];
        else fail_msg("unexpected mf question '%s'", in);
        assert_true(cJSON_IsNumber(s->turns[t].answer));
        assert_int_equal((int64_t)s->turns[t].answer->valuedouble, want);
        assert_true(want >= 0 && want <= 999);   /* 3 digits, never negative (the scorer drops '-') */
        for (size_t j = 0; j < t; j++) assert_string_not_equal(s->turns[j].input, in);
    }
    /* the extremes are unique, so "second largest" is not the largest again */
    assert_true(v[n - 1] != v[n - 2] && v[0] != v[1]);
    free(v);
}

static void derive_passkey(const struct scb_session *s)
{
    for (size_t t = 0; t < s->n_turns; t++) {
        char label[64];
        assert_int_equal(sscanf(s->turns[t].input, "What is the pass key of the %63[^?]?", label), 1);
        char needle[128];
        snprintf(needle, sizeof needle, "The pass key of the %s is ", label);
        assert_int_equal(count_occ(s->context, needle), 1);
        const char *p = strstr(s->context, needle) + strlen(needle);
        char digits[16];
        assert_int_equal(sscanf(p, "%15[0-9]", digits), 1);
        assert_true(cJSON_IsString(s->turns[t].answer));
        assert_string_equal(digits, s->turns[t].answer->valuestring);
        assert_int_equal(strlen(digits), 5);
    }
}

static size_t recount(const struct scb_session *s)
{
    size_t n = 0;
    if (s->context) { mock_count(NULL, s->context, strlen(s->context), &n); return n; }
    struct scb_buf b = {0};
    scb_format_int_list(s->context_ints, s->n_context_ints, &b);
    mock_count(NULL, b.data, b.len, &n);
    scb_buf_fini(&b);
    return n;
}

static void test_answers_derivable_and_length(void **st)
{
    (void)st;
    size_t targets[3] = {1500, 6000, 40000};
    for (int t = 0; t < SCB_SYNTH_N_TASKS; t++) {
        for (int g = 0; g < 3; g++) {
            for (long idx = 0; idx < 2; idx++) {
                struct scb_synth_opts o = {(enum scb_synth_task)t, targets[g], 5, SEED + (uint64_t)g};
                struct scb_session s;
                struct scb_ctx ctx = {0};
                size_t tok = 0;
                mock_calls = 0;
                if (scb_synth_session(&o, idx, &mock, &s, &tok, &ctx)) fail_msg("%s", scb_errmsg(&ctx));
                assert_int_equal(s.n_turns, 5);
                assert_int_equal(s.id, idx);
                size_t real = recount(&s);
                assert_int_equal(real, tok);
                assert_true(tok <= targets[g]);
                /* within 2% (or 60 tokens, about two filler items) of the target */
                size_t tol = targets[g] / 50 > 60 ? targets[g] / 50 : 60;
                if (targets[g] - tok > tol)
                    fail_msg("%s target %zu got %zu", scb_synth_task_name(o.task), targets[g], tok);
                switch (o.task) {
                case SCB_SYNTH_KV: derive_kv(&s); break;
                case SCB_SYNTH_PREFIX_SUFFIX: derive_prefix_suffix(&s); break;
                case SCB_SYNTH_VT: derive_vt(&s); break;
                case SCB_SYNTH_MF: derive_mf(&s); break;
                case SCB_SYNTH_PASSKEY: derive_passkey(&s); break;
                }
                scb_session_fini(&s);
            }
        }
    }
}

/* The counter is called per item plus a few whole-context counts, not per item on the whole. */
static void test_counting_is_incremental(void **st)
{
    (void)st;
    struct scb_synth_opts o = {SCB_SYNTH_KV, 60000, 5, SEED};
    struct scb_session s;
    struct scb_ctx ctx = {0};
    size_t tok;
    mock_calls = 0;
    long bytes_before = 0;
    assert_int_equal(scb_synth_session(&o, 0, &mock, &s, &tok, &ctx), SCB_OK);
    size_t items = 0;
    for (const char *p = s.context; (p = strstr(p, "\": \"")); p++) items++;
    /* per item: item + separator; plus at most ~20 whole-context counts */
    assert_true((size_t)mock_calls <= 2 * items + 64);
    (void)bytes_before;
    scb_session_fini(&s);
}

static void test_word_counter_and_files(void **st)
{
    (void)st;
    size_t n = 0;
    assert_int_equal(scb_synth_count_words(NULL, "  a bb\tccc\n\nd ", 14, &n), SCB_OK);
    assert_int_equal(n, 4);
    char dir[] = "/tmp/scb_test_synth_XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct scb_token_counter words = {scb_synth_count_words, NULL};
    for (int t = 0; t < SCB_SYNTH_N_TASKS; t++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, scb_synth_task_name((enum scb_synth_task)t));
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        struct scb_synth_opts o = {(enum scb_synth_task)t, 2000, t == SCB_SYNTH_MF ? 3 : 5, SEED};
        struct scb_ctx ctx = {0};
        if (scb_synth_write(&o, 2, &words, f, &ctx)) fail_msg("%s", scb_errmsg(&ctx));
        fclose(f);
        struct scb_check_summary sum;
        struct scb_ctx c2 = {0};
        assert_int_equal(scb_check_file(path, NULL, NULL, NULL, &sum, &c2), SCB_OK);
        assert_string_equal(sum.task, scb_synth_task_name((enum scb_synth_task)t));
        assert_int_equal(sum.problems, 0);
        assert_int_equal(sum.sessions, 2);
        assert_int_equal(sum.turns, t == SCB_SYNTH_MF ? 6 : 10);
        /* reads back identical to a fresh generation */
        struct scb_dataset *r = NULL;
        assert_int_equal(scb_dataset_open(&r, path, &c2), SCB_OK);
        for (long i = 0; i < 2; i++) {
            struct scb_session a, b;
            assert_int_equal(scb_dataset_next(r, &a, &c2), 1);
            assert_int_equal(scb_synth_session(&o, i, &words, &b, NULL, &c2), SCB_OK);
            struct scb_buf ja = {0}, jb = {0};
            scb_session_to_json(&a, &ja, NULL);
            scb_session_to_json(&b, &jb, NULL);
            assert_string_equal(ja.data, jb.data);
            scb_buf_fini(&ja); scb_buf_fini(&jb);
            scb_session_fini(&a); scb_session_fini(&b);
        }
        scb_dataset_close(r);
        unlink(path);
    }
    rmdir(dir);
}

/* .gz output reads back as the same sessions as plain output; a failed write leaves no file. */
static void test_write_file_gz(void **st)
{
    (void)st;
    char plain[64], gz[64];
    snprintf(plain, sizeof plain, "/tmp/scb_test_sw_%d.jsonl", (int)getpid());
    snprintf(gz, sizeof gz, "/tmp/scb_test_sw_%d.jsonl.gz", (int)getpid());
    struct scb_synth_opts o = {SCB_SYNTH_PASSKEY, 1500, 4, SEED};
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_synth_write_file(&o, 3, &mock, plain, &ctx), SCB_OK);
    assert_int_equal(scb_synth_write_file(&o, 3, &mock, gz, &ctx), SCB_OK);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    assert_int_equal(scb_file_read(plain, &a, &la, NULL), SCB_OK);
    assert_int_equal(scb_file_read(gz, &b, &lb, NULL), SCB_OK);
    assert_true(lb > 2 && (unsigned char)b[0] == 0x1f && (unsigned char)b[1] == 0x8b);   /* gzip magic */
    scb_free(b);
    struct scb_dataset *r = NULL;
    assert_int_equal(scb_dataset_open(&r, gz, &ctx), SCB_OK);
    struct scb_buf all = {0};
    struct scb_session s;
    while (scb_dataset_next(r, &s, &ctx) == 1) {
        scb_session_to_json(&s, &all, NULL);
        scb_buf_putc(&all, '\n');
        scb_session_fini(&s);
    }
    scb_dataset_close(r);
    assert_int_equal(all.len, la);
    assert_memory_equal(all.data, a, la);
    scb_buf_fini(&all);
    scb_free(a);
    unlink(plain);
    unlink(gz);
    o.target_tokens = 5;   /* too small: error, and no file left behind */
    assert_int_equal(scb_synth_write_file(&o, 1, &mock, plain, &ctx), SCB_E_INVAL);
    assert_false(scb_file_exists(plain));
    assert_int_equal(scb_synth_write_file(&o, 1, &mock, "/nonexistent/dir/x.jsonl", &ctx), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&ctx), "/nonexistent/dir/x.jsonl"));
}

static void test_errors(void **st)
{
    (void)st;
    struct scb_session s;
    struct scb_ctx ctx = {0};
    struct scb_synth_opts o = {SCB_SYNTH_VT, 20, 5, SEED};   /* 15 chain statements cannot fit */
    assert_int_equal(scb_synth_session(&o, 0, &mock, &s, NULL, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "too small"));
    assert_null(s.turns);
    o = (struct scb_synth_opts){SCB_SYNTH_MF, 2000, 6, SEED};
    assert_int_equal(scb_synth_session(&o, 0, &mock, &s, NULL, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "at most 5 turns"));
    o = (struct scb_synth_opts){SCB_SYNTH_KV, 2000, 0, SEED};
    assert_int_equal(scb_synth_session(&o, 0, &mock, &s, NULL, &ctx), SCB_E_INVAL);
    enum scb_synth_task t;
    assert_int_equal(scb_synth_task_parse("kv", &t, &ctx), SCB_OK);
    assert_int_equal(t, SCB_SYNTH_KV);
    assert_int_equal(scb_synth_task_parse("scbench_passkey", &t, &ctx), SCB_OK);
    assert_int_equal(t, SCB_SYNTH_PASSKEY);
    assert_int_equal(scb_synth_task_parse("scbench_qa_eng", &t, &ctx), SCB_E_NOTFOUND);
    assert_non_null(strstr(scb_errmsg(&ctx), "scbench_prefix_suffix"));
}

/* Allocation failures anywhere give SCB_E_NOMEM and leak nothing. */
static void test_alloc_failures(void **st)
{
    (void)st;
    size_t live0 = scb_alloc_live_bytes();
    for (long n = 1; n < 120; n++) {
        struct scb_session s;
        struct scb_ctx ctx = {0};
        struct scb_synth_opts o = {(enum scb_synth_task)(n % SCB_SYNTH_N_TASKS), 400, 3, SEED};
        scb_alloc_fail_after(n, 0);
        int rc = scb_synth_session(&o, 0, &mock, &s, NULL, &ctx);
        scb_alloc_fail_after(0, 0);
        assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
        if (rc == SCB_OK) scb_session_fini(&s);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_answers_derivable_and_length),
        cmocka_unit_test(test_counting_is_incremental),
        cmocka_unit_test(test_word_counter_and_files),
        cmocka_unit_test(test_write_file_gz),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
