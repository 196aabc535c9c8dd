/* test_tasks.c — unit tests of tasks/: the task table (names, categories, max new tokens,
 * scorers), the input budgets L of spec/scbench.md §5.1 for every task and mode, the string
 * pieces (str.format, Python str(), the Math.Find prefix regex, replace/split), middle
 * truncation, max_turns cutting, error paths, and whole turn plans compared byte-for-byte with
 * the expected prompts that tests/py/scbench_prompts_ref.py produced through transformers'
 * apply_chat_template with the real Llama-3.1-Instruct template.
 *
 * The plans are built here with a C mock renderer that writes the Llama-3.1-Instruct format
 * (no tools: BOS, system block with the fixed "26 Jul 2024" date, trimmed contents) and a mock
 * encoder (one token per byte, +1000 offset, plus BOS 1 when special tokens are asked for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "datasets/session.h"
#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"
#include "tasks/prompt.h"
#include "tasks/task.h"

/* ---- mocks ------------------------------------------------------------------------------------ */

static int is_ws(unsigned char c) { return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f); }

static int put_trim(struct scb_buf *b, const char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n && is_ws((unsigned char)s[i])) i++;
    while (n > i && is_ws((unsigned char)s[n - 1])) n--;
    return scb_buf_append(b, s + i, n - i);
}

struct mock_renderer {
    int calls;
    int fail_at;         /* fail the Nth call (1-based), 0 = never */
    int drop_delimiter;  /* remove "[SEPSEPSEP]" from contents (a template that mangles it) */
};

/* Llama-3.1-Instruct without tools. */
static int mock_llama31(void *user, const struct scb_chat_msg *m, size_t n, int gen, char **out,
                        struct scb_ctx *ctx)
{
    struct mock_renderer *r = user;
    struct scb_buf b = {0};
    r->calls++;
    if (r->fail_at && r->calls == r->fail_at) return scb_err(ctx, SCB_E_UNSUPPORTED, "mock failure");
    size_t i0 = 0;
    scb_buf_puts(&b, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                     "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    if (n > 0 && !strcmp(m[0].role, "system")) { put_trim(&b, m[0].content); i0 = 1; }
    scb_buf_puts(&b, "<|eot_id|>");
    for (size_t i = i0; i < n; i++) {
        scb_buf_printf(&b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
        if (r->drop_delimiter) {
            char *c = NULL;
            scb_prompt_replace_all(m[i].content, SCB_SEP_DELIMITER, "", &c, ctx);
            put_trim(&b, c);
            scb_free(c);
        } else {
            put_trim(&b, m[i].content);
        }
        scb_buf_puts(&b, "<|eot_id|>");
    }
    if (gen) scb_buf_puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    if (!b.data) return scb_err(ctx, SCB_E_NOMEM, "mock renderer");
    *out = scb_buf_steal(&b);
    return SCB_OK;
}

#define MOCK_BOS 1
static int mock_encode(void *user, const char *text, size_t len, int add_special, int32_t **ids, size_t *n,
                       struct scb_ctx *ctx)
{
    (void)user;
    size_t k = add_special ? 1 : 0;
    int32_t *o = scb_malloc((len + k + 1) * sizeof *o);
    if (!o) return scb_err(ctx, SCB_E_NOMEM, "mock encoder");
    if (add_special) o[0] = MOCK_BOS;
    for (size_t i = 0; i < len; i++) o[k + i] = 1000 + (unsigned char)text[i];
    *ids = o;
    *n = len + k;
    return SCB_OK;
}

/* ---- sessions from the fixture JSONL (released format) -------------------------------------- */

static char *dup_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? scb_strdup(v->valuestring) : NULL;
}

static void session_from_json(struct scb_session *s, const cJSON *j, long index)
{
    memset(s, 0, sizeof *s);
    s->index = index;
    s->id = -1;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(j, "context");
    if (cJSON_IsString(ctx)) {
        s->context = scb_strdup(ctx->valuestring);
    } else if (cJSON_IsArray(ctx)) {
        s->n_context_ints = (size_t)cJSON_GetArraySize(ctx);
        s->context_ints = scb_calloc(s->n_context_ints + 1, sizeof *s->context_ints);
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, ctx) s->context_ints[i++] = (int64_t)v->valuedouble;
    }
    s->lang = dup_str(j, "lang");
    s->repo = dup_str(j, "repo");
    s->task = dup_str(j, "task");
    const cJSON *turns = cJSON_GetObjectItemCaseSensitive(j, "multi_turns");
    s->n_turns = (size_t)cJSON_GetArraySize(turns);
    s->turns = scb_calloc(s->n_turns + 1, sizeof *s->turns);
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, turns) {
        struct scb_turn *u = &s->turns[i++];
        u->input = dup_str(t, "input");
        u->task = dup_str(t, "task");
        u->name = dup_str(t, "name");
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "answer");
        u->answer = a ? cJSON_Duplicate(a, 1) : NULL;
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(t, "options");
        u->options = o ? cJSON_Duplicate(o, 1) : NULL;
    }
}

static const char *fixtures_dir(void)
{
    const char *d = getenv("SCB_FIXTURES_DIR");
    return d ? d : "tests/fixtures";
}

/* Read a JSONL file into a cJSON array (one item per non-empty line). */
static cJSON *read_jsonl(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    struct scb_ctx c = {0};
    if (scb_file_read(path, &text, &len, &c) < 0) {
        print_error("cannot read %s: %s\n", path, scb_errmsg(&c));
        return NULL;
    }
    cJSON *arr = cJSON_CreateArray();
    char *p = text;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) *e = 0;
        if (*p) {
            cJSON *j = cJSON_Parse(p);
            if (!j) { print_error("bad JSON line in %s\n", path); cJSON_Delete(arr); scb_free(text); return NULL; }
            cJSON_AddItemToArray(arr, j);
        }
        if (!e) break;
        p = e + 1;
    }
    scb_free(text);
    return arr;
}

static size_t load_sessions(const char *task, struct scb_session **out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/prompts/sessions/%s.jsonl", fixtures_dir(), task);
    cJSON *arr = read_jsonl(path);
    assert_non_null(arr);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    struct scb_session *s = scb_calloc(n, sizeof *s);
    for (size_t i = 0; i < n; i++) session_from_json(&s[i], cJSON_GetArrayItem(arr, (int)i), (long)i);
    cJSON_Delete(arr);
    *out = s;
    return n;
}

static void free_sessions(struct scb_session *s, size_t n)
{
    for (size_t i = 0; i < n; i++) scb_session_fini(&s[i]);
    scb_free(s);
}

/* ---- the task table ----------------------------------------------------------------------------- */

static void test_table(void **st)
{
    (void)st;
    static const struct {
        const char *name; enum scb_task_category cat; int mnt; const char *scorer; enum scb_scorer_kind kind;
    } want[] = {
        {"scbench_kv", SCB_CAT_STRING_RETRIEVAL, 150, "kv_retrieval", SCB_SCORER_KV_RETRIEVAL},
        {"scbench_prefix_suffix", SCB_CAT_STRING_RETRIEVAL, 150, "kv_retrieval", SCB_SCORER_KV_RETRIEVAL},
        {"scbench_vt", SCB_CAT_STRING_RETRIEVAL, 30, "string_match_all", SCB_SCORER_STRING_MATCH_ALL},
        {"scbench_repoqa", SCB_CAT_SEMANTIC_RETRIEVAL, 1024, "repoqa", SCB_SCORER_REPOQA},
        {"scbench_qa_eng", SCB_CAT_SEMANTIC_RETRIEVAL, 40, "longdialogue_qa", SCB_SCORER_LONGDIALOGUE_QA},
        {"scbench_qa_chn", SCB_CAT_SEMANTIC_RETRIEVAL, 40, "qa_f1_zh", SCB_SCORER_QA_F1_ZH},
        {"scbench_choice_eng", SCB_CAT_SEMANTIC_RETRIEVAL, 40, "choice_eng", SCB_SCORER_CHOICE_ENG},
        {"scbench_mf", SCB_CAT_GLOBAL_INFO, 5, "math_find", SCB_SCORER_MATH_FIND},
        {"scbench_many_shot", SCB_CAT_GLOBAL_INFO, 10, "many_shot", SCB_SCORER_MANY_SHOT},
        {"scbench_summary", SCB_CAT_GLOBAL_INFO, 200, "rouge_lsum", SCB_SCORER_ROUGE_LSUM},
        {"scbench_summary_with_needles", SCB_CAT_MULTI_TASKING, 0, NULL, 0},
        {"scbench_repoqa_and_kv", SCB_CAT_MULTI_TASKING, 0, NULL, 0},
    };
    assert_int_equal(scb_task_count(), 12);
    assert_null(scb_task_at(12));
    for (size_t i = 0; i < 12; i++) {
        const struct scb_task_ops *t = scb_task_at(i);
        assert_int_equal(t->abi, SCB_TASK_ABI);
        assert_string_equal(t->name, want[i].name);
        assert_int_equal(t->category, want[i].cat);
        assert_ptr_equal(scb_task_find(want[i].name), t);
        assert_ptr_equal(scb_task_find(want[i].name + 8), t);  /* without "scbench_" */
        struct scb_ctx c = {0};
        int mnt = -1;
        if (want[i].mnt) {
            assert_int_equal(scb_task_max_new_tokens(t, NULL, 131072, &mnt, &c), SCB_OK);
            assert_int_equal(mnt, want[i].mnt);
            assert_string_equal(scb_task_scorer(t, NULL), want[i].scorer);
            assert_int_equal(t->subtasks[0].scorer_kind, want[i].kind);
        }
    }
    /* agrees with the scorers' own task table (tasks/scorers.h) */
    for (size_t i = 0; i < 12; i++) {
        const struct scb_task_ops *t = scb_task_at(i);
        const struct scb_score_task *sc = scb_score_task_find(t->name);
        assert_non_null(sc);
        assert_string_equal(scb_score_categories[sc->category], scb_task_category_name(t->category));
        assert_int_equal(sc->mix, t->n_subtasks == 2);
        if (!sc->mix) assert_int_equal(sc->scorer, t->subtasks[0].scorer_kind);
        for (size_t k = 0; sc->mix && k < 2; k++) {
            assert_string_equal(sc->sub[k], t->subtasks[k].name);
            assert_int_equal(sc->sub_scorer[k], t->subtasks[k].scorer_kind);
        }
    }
    assert_null(scb_task_find("scbench_passkey"));
    assert_null(scb_task_find("nope"));
    assert_null(scb_task_find(NULL));
    assert_string_equal(scb_task_category_name(SCB_CAT_MULTI_TASKING), "Multi-tasking");

    /* the typo is real (§4.1, §13.2); the non-chat follow-up says "The letter of" */
    const struct scb_task_ops *ch = scb_task_find("choice_eng");
    assert_non_null(strstr(ch->first_template, "\n\nThe the correct answer is"));
    assert_non_null(strstr(ch->follow_template, "The the correct answer is"));
    assert_non_null(strstr(ch->follow_text_template, "The letter of the correct answer is"));
    assert_string_equal(scb_task_find("summary")->follow_prime, "This paper");
}

static void test_mix_max_new_tokens(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    int v = 0;
    const struct scb_task_ops *sn = scb_task_find("scbench_summary_with_needles");
    const struct scb_task_ops *rk = scb_task_find("scbench_repoqa_and_kv");
    assert_int_equal(scb_task_max_new_tokens(sn, "scbench_summary", 131072, &v, &c), SCB_OK);
    assert_int_equal(v, 800);
    assert_int_equal(scb_task_max_new_tokens(sn, "scbench_passkey", 131072, &v, &c), SCB_OK);
    assert_int_equal(v, 15);
    assert_int_equal(scb_task_max_new_tokens(rk, "scbench_repoqa", 131072, &v, &c), SCB_OK);
    assert_int_equal(v, 1024);
    assert_int_equal(scb_task_max_new_tokens(rk, "scbench_kv", 131072, &v, &c), SCB_OK);
    assert_int_equal(v, 80);
    assert_string_equal(scb_task_scorer(rk, "scbench_kv"), "kv_retrieval");
    assert_string_equal(scb_task_scorer(sn, "scbench_passkey"), "passkey");
    assert_int_equal(sn->subtasks[0].scorer_kind, SCB_SCORER_ROUGE_LSUM);
    assert_int_equal(sn->subtasks[1].scorer_kind, SCB_SCORER_PASSKEY);
    assert_int_equal(rk->subtasks[0].scorer_kind, SCB_SCORER_REPOQA);
    assert_int_equal(rk->subtasks[1].scorer_kind, SCB_SCORER_KV_RETRIEVAL);
    assert_null(scb_task_scorer(sn, "scbench_kv"));
    assert_int_equal(scb_task_max_new_tokens(sn, "scbench_kv", 131072, &v, &c), SCB_E_FORMAT);
    assert_int_equal(scb_task_max_new_tokens(sn, NULL, 131072, &v, &c), SCB_E_FORMAT);
    /* SCBench asserts max(values) <= max_seq_length for the dict case */
    assert_int_equal(scb_task_max_new_tokens(rk, "scbench_kv", 1000, &v, &c), SCB_E_INVAL);
    /* single task: >= max_seq_length becomes 500 */
    const struct scb_task_ops *rq = scb_task_find("repoqa");
    assert_int_equal(scb_task_max_new_tokens(rq, NULL, 1024, &v, &c), SCB_OK);
    assert_int_equal(v, 500);
    assert_int_equal(scb_task_max_new_tokens(rq, NULL, 1025, &v, &c), SCB_OK);
    assert_int_equal(v, 1024);
}

/* §5.1: the values listed in the spec for the defaults (131072, 5 turns). */
static void test_input_budgets(void **st)
{
    (void)st;
    static const struct { const char *task; long L; } want[] = {
        {"scbench_kv", 130322}, {"scbench_prefix_suffix", 130322}, {"scbench_vt", 130922},
        {"scbench_repoqa", 125952}, {"scbench_qa_eng", 130872}, {"scbench_qa_chn", 130872},
        {"scbench_choice_eng", 130872}, {"scbench_mf", 131047}, {"scbench_many_shot", 131022},
        {"scbench_summary", 130072}, {"scbench_summary_with_needles", 129035},
        {"scbench_repoqa_and_kv", 128312},
    };
    struct scb_ctx c = {0};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct scb_task_ops *t = scb_task_find(want[i].task);
        long L = 0;
        assert_int_equal(scb_task_input_budget(t, 131072, 5, 0, &L, &c), SCB_OK);
        assert_int_equal(L, want[i].L);
        assert_int_equal(scb_task_input_budget(t, 131072, 5, 1, &L, &c), SCB_OK);  /* scdq: -1000 */
        assert_int_equal(L, want[i].L - 1000);
    }
    long L = 0;
    /* -1 means 160000 */
    assert_int_equal(scb_task_input_budget(scb_task_find("kv"), -1, 5, 0, &L, &c), SCB_OK);
    assert_int_equal(L, 160000 - 750);
    /* Mix: floor((815 * 3) / 2) = 1222 */
    assert_int_equal(scb_task_input_budget(scb_task_find("summary_with_needles"), 131072, 3, 0, &L, &c), SCB_OK);
    assert_int_equal(L, 131072 - 1222);
    /* the 500 rule enters L; the result may be negative (then nothing is truncated) */
    assert_int_equal(scb_task_input_budget(scb_task_find("repoqa"), 1024, 5, 0, &L, &c), SCB_OK);
    assert_int_equal(L, 1024 - 2500);
    assert_int_equal(scb_task_input_budget(scb_task_find("repoqa_and_kv"), 1000, 5, 0, &L, &c), SCB_E_INVAL);
}

/* ---- string pieces -------------------------------------------------------------------------- */

static void test_format(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    char *o = NULL;
    const char *k[] = {"context", "input"};
    const char *v[] = {"{\"a\": 1} {input}", "Q?"};
    assert_int_equal(scb_prompt_format("X\n\n{context}\n\n{input}{{lit}}", k, v, 2, &o, &c), SCB_OK);
    assert_string_equal(o, "X\n\n{\"a\": 1} {input}\n\nQ?{lit}");  /* values are not re-expanded */
    scb_free(o);
    assert_int_equal(scb_prompt_format("{prefix}", k, v, 2, &o, &c), SCB_E_INVAL);
    assert_null(o);
    assert_non_null(strstr(scb_errmsg(&c), "{prefix}"));
    assert_int_equal(scb_prompt_format("{open", k, v, 2, &o, &c), SCB_E_INVAL);
}

static void pystr_case(const char *json, const char *want)
{
    struct scb_ctx c = {0};
    cJSON *j = cJSON_Parse(json);
    assert_non_null(j);
    char *o = NULL;
    assert_int_equal(scb_prompt_pystr(j, &o, &c), SCB_OK);
    assert_string_equal(o, want);
    scb_free(o);
    cJSON_Delete(j);
}

/* Expected strings are Python 3's str() of json.loads(json). */
static void test_pystr(void **st)
{
    (void)st;
    pystr_case("\"plain text\\n\"", "plain text\n");
    pystr_case("305", "305");
    pystr_case("-120", "-120");
    pystr_case("0.5", "0.5");
    pystr_case("1e-05", "1e-05");
    pystr_case("[\"QPZ\", \"RKD\"]", "['QPZ', 'RKD']");
    pystr_case("[\"it's\", \"say \\\"hi\\\"\", 7]", "[\"it's\", 'say \"hi\"', 7]");
    pystr_case("[\"both ' and \\\"\"]", "['both \\' and \"']");
    pystr_case("[\"tab\\tnl\\nbs\\\\\", \"\\u001b\"]", "['tab\\tnl\\nbs\\\\', '\\x1b']");
    pystr_case("[\"豆豆\", \"\\u00a0\"]", "['豆豆', '\\xa0']");
    pystr_case("[true, false, null, [], {\"k\": [1]}]", "[True, False, None, [], {'k': [1]}]");
    char *o = NULL;
    struct scb_ctx c = {0};
    int64_t ints[] = {12, -7, 305, 0};
    assert_int_equal(scb_prompt_int_list(ints, 4, &o, &c), SCB_OK);
    assert_string_equal(o, "[12, -7, 305, 0]");
    scb_free(o);
    assert_int_equal(scb_prompt_int_list(ints, 0, &o, &c), SCB_OK);
    assert_string_equal(o, "[]");
    scb_free(o);
}

static void mf_case(const char *input, const char *want)
{
    struct scb_ctx c = {0};
    char *o = NULL;
    int rc = scb_prompt_mf_prefix(input, &o, &c);
    if (!want) {
        assert_int_equal(rc, SCB_E_FORMAT);
        assert_null(o);
        return;
    }
    assert_int_equal(rc, SCB_OK);
    assert_string_equal(o, want);
    scb_free(o);
}

/* Expected values: Python f"What is {re.findall(r'The .+ is', s)[0].lower()[:-3]}?" */
static void test_mf_prefix(void **st)
{
    (void)st;
    mf_case("The largest number of the list is: ", "What is the largest number of the list?");
    mf_case("The Median Value in the list is: ", "What is the median value in the list?");
    /* greedy .+ runs to the last " is" of the line */
    mf_case("The answer is: The largest number of the list is: ", "What is the answer is: the largest number of the list?");
    /* ... but not across a newline; the first start that matches wins */
    mf_case("The x\nThe biggest is 3 and this is", "What is the biggest is 3 and this?");
    mf_case("Find it. The min is", "What is the min?");
    mf_case("The is", NULL);            /* .+ needs one char */
    mf_case("The  is", NULL);           /* "The " + one char + " is" needs 8 characters */
    mf_case("The   is", "What is the  ?");
    mf_case("the largest is", NULL);    /* case-sensitive "The" */
    mf_case("The largest\nis", NULL);
    mf_case("The ÄRGER is", "What is the ärger?");  /* Unicode lower() */
    mf_case("The İ and ΟΔΟΣ is", "What is the i\xcc\x87 and οδος?");  /* full mapping, Final_Sigma */
}

static void test_replace_split(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    char *o = NULL;
    assert_int_equal(scb_prompt_replace_all("SYSaSYSbSYSYS", "SYS", "", &o, &c), SCB_OK);
    assert_string_equal(o, "abYS");  /* non-overlapping, left to right, as str.replace */
    scb_free(o);
    assert_int_equal(scb_prompt_split_index("a[S]b[S]c", "[S]", 1, &o, &c), SCB_OK);
    assert_string_equal(o, "b");
    scb_free(o);
    assert_int_equal(scb_prompt_split_index("a[S]b", "[S]", 0, &o, &c), SCB_OK);
    assert_string_equal(o, "a");
    scb_free(o);
    assert_int_equal(scb_prompt_split_index("a[S]b", "[S]", 1, &o, &c), SCB_OK);
    assert_string_equal(o, "b");
    scb_free(o);
    assert_int_equal(scb_prompt_split_index("ab", "[S]", 1, &o, &c), SCB_E_FORMAT);
    assert_null(o);
}

/* ---- truncation ------------------------------------------------------------------------------ */

static void test_truncate_middle(void **st)
{
    (void)st;
    struct scb_ctx c = {0};
    uint64_t seed = 20241215;
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    print_message("truncation seed %llu\n", (unsigned long long)seed);
    for (int iter = 0; iter < 200; iter++) {
        size_t n = (size_t)scb_rng_below(&r, 300);
        long L = (long)scb_rng_below(&r, 320) - 10;  /* includes negatives and L >= n */
        int32_t *ids = scb_malloc((n + 1) * sizeof *ids);
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)scb_rng_below(&r, 128256) + 1;
        int32_t *o = NULL;
        size_t no = 0;
        int rc = scb_prompt_truncate_middle(ids, n, L, &o, &no, &c);
        if (L >= 0 && n > (size_t)L && L / 2 == 0) {
            assert_int_equal(rc, SCB_E_INVAL);  /* Python keeps everything; SCBench's assert fires */
        } else if (L < 0 || n <= (size_t)L) {
            assert_int_equal(rc, SCB_OK);
            assert_int_equal(no, n);
            if (n) assert_memory_equal(o, ids, n * sizeof *ids);
        } else {
            assert_int_equal(rc, SCB_OK);
            size_t h = (size_t)(L / 2);
            assert_int_equal(no, 2 * h);  /* odd L keeps L - 1 */
            for (size_t i = 0; i < h; i++) {
                assert_int_equal(o[i], ids[i]);
                assert_int_equal(o[h + i], ids[n - h + i]);
            }
        }
        scb_free(o);
        scb_free(ids);
    }
}

static void test_turn_cut(void **st)
{
    (void)st;
    struct scb_prompt_opts o;
    scb_prompt_opts_default(&o);
    assert_int_equal(o.use_chat_template, 1);
    assert_int_equal(o.golden_context, 1);
    assert_int_equal(o.max_seq_length, 131072);
    scb_prompt_opts_set_turns(&o, 8, 5);
    assert_int_equal(o.turn_cut, 5);
    assert_int_equal(o.max_turn_size, 5);
    scb_prompt_opts_set_turns(&o, 3, 5);
    assert_int_equal(o.turn_cut, 0);
    assert_int_equal(o.max_turn_size, 3);
    scb_prompt_opts_set_turns(&o, 8, 0);   /* 0 or negative: no cut */
    assert_int_equal(o.turn_cut, 0);
    assert_int_equal(o.max_turn_size, 8);
    scb_prompt_opts_set_turns(&o, 8, 8);
    assert_int_equal(o.turn_cut, 0);
}

/* ---- whole plans against the Python reference's fixtures -------------------------------------- */

struct mode_case {
    const char *suffix;
    const char *fixture_template;
    enum scb_mode mode;
    int chat, golden;
};

static const struct mode_case modes[] = {
    {"multi-turn", "llama31_instruct", SCB_MODE_MULTI_TURN, 1, 1},
    {"multi-turn-nogolden", "llama31_instruct", SCB_MODE_MULTI_TURN, 1, 0},
    {"multi-request", "llama31_instruct", SCB_MODE_MULTI_REQUEST, 1, 1},
    {"multi-turn-nochat", "llama3", SCB_MODE_MULTI_TURN, 0, 1},
    {"multi-turn-nochat-nogolden", "llama3", SCB_MODE_MULTI_TURN, 0, 0},
    {"multi-request-nochat", "llama3", SCB_MODE_MULTI_REQUEST, 0, 1},
};

static const char *rec_str(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static long rec_num(const cJSON *r, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    assert_true(cJSON_IsNumber(v));
    return (long)v->valuedouble;
}

static void check_task_mode(const struct scb_task_ops *t, const struct mode_case *mc)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/prompts/%s/%s_%s.jsonl", fixtures_dir(), mc->fixture_template, t->name,
             mc->suffix);
    cJSON *recs = read_jsonl(path);
    assert_non_null(recs);
    struct scb_session *ss = NULL;
    size_t ns = load_sessions(t->name, &ss);
    const cJSON *hdr = cJSON_GetArrayItem(recs, 0);

    struct scb_prompt_opts o;
    scb_prompt_opts_default(&o);
    o.mode = mc->mode;
    o.use_chat_template = mc->chat;
    o.golden_context = mc->golden;
    scb_prompt_opts_set_turns(&o, ss[0].n_turns, 5);
    struct mock_renderer mr = {0};
    struct scb_chat_renderer rend = {mock_llama31, &mr};
    struct scb_token_encoder enc = {mock_encode, NULL};

    int ri = 1;
    for (size_t si = 0; si < ns; si++) {
        struct scb_turn_plan plan;
        struct scb_ctx c = {0};
        int rc = scb_prompt_plan_build(&plan, t, &ss[si], &o, &rend, &enc, &c);
        if (rc) print_error("%s %s: %s\n", t->name, mc->suffix, scb_errmsg(&c));
        assert_int_equal(rc, SCB_OK);
        assert_int_equal(plan.input_budget, rec_num(hdr, "input_budget"));
        assert_int_equal((long)plan.max_turn_size, rec_num(hdr, "max_turn_size"));
        if (mc->mode == SCB_MODE_MULTI_REQUEST) {
            const cJSON *r = cJSON_GetArrayItem(recs, ri++);
            assert_string_equal(rec_str(r, "part"), "context");
            assert_string_equal(plan.context_prompt, rec_str(r, "prompt"));
            /* mock encoder: BOS + one id per byte, nothing truncated at the default length */
            assert_int_equal(plan.n_context_ids, plan.context_prompt_len + 1);
            assert_int_equal(plan.context_ids[0], MOCK_BOS);
        }
        for (size_t ti = 0; ti < plan.n_turns; ti++) {
            const cJSON *r = cJSON_GetArrayItem(recs, ri++);
            assert_non_null(r);
            assert_int_equal(rec_num(r, "session"), (long)si);
            assert_int_equal(rec_num(r, "turn"), (long)ti);
            const char *want = rec_str(r, "prompt");
            if (strcmp(plan.turns[ti].prompt, want))
                print_error("%s %s session %zu turn %zu:\n have %s\n want %s\n", t->name, mc->suffix, si, ti,
                            plan.turns[ti].prompt, want);
            assert_string_equal(plan.turns[ti].prompt, want);
            assert_int_equal(plan.turns[ti].prompt_len, strlen(want));
            assert_string_equal(plan.turns[ti].subtask, rec_str(r, "task"));
            assert_int_equal(plan.turns[ti].max_new_tokens, rec_num(r, "max_new_tokens"));
            assert_true(cJSON_Compare(plan.turns[ti].ground_truth,
                                      cJSON_GetObjectItemCaseSensitive(r, "ground_truth"), 1));
            assert_non_null(plan.turns[ti].scorer);
            int first = mc->mode == SCB_MODE_MULTI_TURN && ti == 0;
            assert_int_equal(plan.turns[ti].n_ids, plan.turns[ti].prompt_len + (first ? 1 : 0));
        }
        scb_prompt_plan_fini(&plan);
    }
    assert_int_equal(ri, cJSON_GetArraySize(recs));  /* every record was checked */
    free_sessions(ss, ns);
    cJSON_Delete(recs);
}

static void test_plans_vs_reference(void **st)
{
    (void)st;
    for (size_t i = 0; i < scb_task_count(); i++)
        for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) check_task_mode(scb_task_at(i), &modes[m]);
}

/* The first prompt is truncated on ids with L; follow-ups are not. */
static void test_plan_truncation(void **st)
{
    (void)st;
    struct scb_session *ss = NULL;
    size_t ns = load_sessions("scbench_kv", &ss);
    struct mock_renderer mr = {0};
    struct scb_chat_renderer rend = {mock_llama31, &mr};
    struct scb_token_encoder enc = {mock_encode, NULL};
    for (int mode = 0; mode < 2; mode++) {
        struct scb_prompt_opts o;
        scb_prompt_opts_default(&o);
        o.mode = (enum scb_mode)mode;
        scb_prompt_opts_set_turns(&o, ss[0].n_turns, 5);
        /* L = msl - 150 * 3 (- 1000) = 101 -> keeps 50 + 50 */
        o.max_seq_length = 101 + 450 + (mode ? 1000 : 0);
        struct scb_turn_plan p;
        struct scb_ctx c = {0};
        assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("kv"), &ss[0], &o, &rend, &enc, &c), SCB_OK);
        assert_int_equal(p.input_budget, 101);
        const char *s = mode ? p.context_prompt : p.turns[0].prompt;
        size_t len = strlen(s);
        const int32_t *ids = mode ? p.context_ids : p.turns[0].ids;
        size_t n = mode ? p.n_context_ids : p.turns[0].n_ids;
        size_t nfull = mode ? p.n_context_ids_full : p.turns[0].n_ids_full;
        assert_int_equal(nfull, len + 1);
        assert_int_equal(n, 100);
        assert_int_equal(ids[0], MOCK_BOS);
        for (size_t i = 1; i < 50; i++) assert_int_equal(ids[i], 1000 + (unsigned char)s[i - 1]);
        for (size_t i = 0; i < 50; i++) assert_int_equal(ids[50 + i], 1000 + (unsigned char)s[len - 50 + i]);
        for (size_t t = mode ? 0 : 1; t < p.n_turns; t++) {
            assert_int_equal(p.turns[t].n_ids, p.turns[t].prompt_len);
            assert_int_equal(p.turns[t].n_ids_full, p.turns[t].prompt_len);
            assert_int_equal(p.turns[t].ids[0], 1000 + (unsigned char)p.turns[t].prompt[0]);
        }
        scb_prompt_plan_fini(&p);
    }
    /* without an encoder: strings only */
    struct scb_prompt_opts o;
    scb_prompt_opts_default(&o);
    struct scb_turn_plan p;
    struct scb_ctx c = {0};
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("kv"), &ss[0], &o, &rend, NULL, &c), SCB_OK);
    assert_null(p.turns[0].ids);
    assert_int_equal(p.turns[0].n_ids, 0);
    assert_non_null(p.turns[0].prompt);
    scb_prompt_plan_fini(&p);
    free_sessions(ss, ns);
}

/* Mix sessions of 6 turns are cut to 5 (default max_turns) and L uses 5. */
static void test_plan_max_turns(void **st)
{
    (void)st;
    struct scb_session *ss = NULL;
    size_t ns = load_sessions("scbench_repoqa_and_kv", &ss);
    assert_int_equal(ss[0].n_turns, 6);
    struct mock_renderer mr = {0};
    struct scb_chat_renderer rend = {mock_llama31, &mr};
    struct scb_prompt_opts o;
    scb_prompt_opts_default(&o);
    scb_prompt_opts_set_turns(&o, ss[0].n_turns, 5);
    struct scb_turn_plan p;
    struct scb_ctx c = {0};
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("repoqa_and_kv"), &ss[0], &o, &rend, NULL, &c), SCB_OK);
    assert_int_equal(p.n_turns, 5);
    assert_int_equal(p.input_budget, 128312);
    assert_string_equal(p.turns[0].subtask, "scbench_repoqa");
    assert_int_equal(p.turns[0].max_new_tokens, 1024);
    assert_string_equal(p.turns[1].subtask, "scbench_kv");
    assert_int_equal(p.turns[1].max_new_tokens, 80);
    assert_string_equal(p.turns[1].scorer, "kv_retrieval");
    scb_prompt_plan_fini(&p);
    scb_prompt_opts_set_turns(&o, ss[0].n_turns, 2);
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("repoqa_and_kv"), &ss[0], &o, &rend, NULL, &c), SCB_OK);
    assert_int_equal(p.n_turns, 2);
    assert_int_equal(p.input_budget, 131072 - (1104 * 2) / 2);
    scb_prompt_plan_fini(&p);
    free_sessions(ss, ns);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static void test_plan_errors(void **st)
{
    (void)st;
    struct mock_renderer mr = {0};
    struct scb_chat_renderer rend = {mock_llama31, &mr};
    struct scb_prompt_opts o;
    scb_prompt_opts_default(&o);
    struct scb_turn_plan p;
    struct scb_ctx c = {0};

    /* mf input without "The ... is" */
    struct scb_session *ss = NULL;
    size_t ns = load_sessions("scbench_mf", &ss);
    scb_free(ss[0].turns[1].input);
    ss[0].turns[1].input = scb_strdup("what is the largest number?");
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("mf"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&c), "The ... is"));
    assert_non_null(strstr(scb_errmsg(&c), "scbench_mf session 0: "));
    assert_null(p.turns);
    free_sessions(ss, ns);

    /* choice answer not among the options; options missing */
    ns = load_sessions("scbench_choice_eng", &ss);
    cJSON_Delete(ss[0].turns[1].answer);
    ss[0].turns[1].answer = cJSON_CreateString("Fifty");
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("choice_eng"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&c), "scbench_choice_eng session 0: turn 1: "));
    cJSON_Delete(ss[0].turns[1].answer);
    ss[0].turns[1].answer = cJSON_CreateString("Forty");
    cJSON_Delete(ss[0].turns[2].options);
    ss[0].turns[2].options = NULL;
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("choice_eng"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    free_sessions(ss, ns);

    /* Mix turn with an unknown sub-task; qa turn with a non-string gold answer */
    ns = load_sessions("scbench_summary_with_needles", &ss);
    scb_free(ss[0].turns[1].task);
    ss[0].turns[1].task = scb_strdup("scbench_kv");
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("summary_with_needles"), &ss[0], &o, &rend, NULL, &c),
                     SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&c), "scbench_kv"));
    free_sessions(ss, ns);
    ns = load_sessions("scbench_qa_chn", &ss);
    cJSON_Delete(ss[0].turns[0].answer);
    ss[0].turns[0].answer = cJSON_CreateNumber(40);
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    /* the same answer is fine without chat template (str.format does str()) */
    o.use_chat_template = 0;
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, NULL, NULL, &c), SCB_OK);
    assert_non_null(strstr(p.turns[1].prompt, "40\n\n问题："));
    scb_prompt_plan_fini(&p);
    o.use_chat_template = 1;
    cJSON_Delete(ss[0].turns[0].answer);
    ss[0].turns[0].answer = cJSON_CreateString("豆豆");

    /* chat template on but no renderer; session without turns */
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, NULL, NULL, &c), SCB_E_INVAL);
    size_t keep = ss[0].n_turns;
    ss[0].n_turns = 0;
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    ss[0].n_turns = keep;

    /* a renderer that loses the delimiter; a renderer that fails (its error passes through) */
    o.mode = SCB_MODE_MULTI_REQUEST;
    mr.drop_delimiter = 1;
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, &rend, NULL, &c), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&c), SCB_SEP_DELIMITER));
    mr.drop_delimiter = 0;
    mr.calls = 0;
    mr.fail_at = 2;
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, &rend, NULL, &c),
                     SCB_E_UNSUPPORTED);
    assert_non_null(strstr(scb_errmsg(&c), "mock failure"));
    mr.fail_at = 0;

    /* a budget too small to truncate */
    struct scb_token_encoder enc = {mock_encode, NULL};
    o.mode = SCB_MODE_MULTI_TURN;
    o.max_seq_length = 40 * 3 + 1;  /* L = 1 */
    assert_int_equal(scb_prompt_plan_build(&p, scb_task_find("qa_chn"), &ss[0], &o, &rend, &enc, &c), SCB_E_INVAL);
    free_sessions(ss, ns);
}

/* Every allocation failure is reported as SCB_E_NOMEM (or passes), never a crash or a leak. */
static void test_plan_alloc_failures(void **st)
{
    (void)st;
    struct scb_session *ss = NULL;
    size_t ns = load_sessions("scbench_mf", &ss);
    struct mock_renderer mr = {0};
    struct scb_chat_renderer rend = {mock_llama31, &mr};
    struct scb_token_encoder enc = {mock_encode, NULL};
    for (int mode = 0; mode < 2; mode++) {
        struct scb_prompt_opts o;
        scb_prompt_opts_default(&o);
        o.mode = (enum scb_mode)mode;
        int ok = 0;
        for (long k = 1; k < 2000 && !ok; k++) {
            size_t live = scb_alloc_live_bytes();
            struct scb_turn_plan p;
            struct scb_ctx c = {0};
            scb_alloc_fail_after(k, 0);
            int rc = scb_prompt_plan_build(&p, scb_task_find("mf"), &ss[0], &o, &rend, &enc, &c);
            scb_alloc_fail_after(0, 0);
            if (rc == SCB_OK) {
                ok = 1;
                scb_prompt_plan_fini(&p);
            } else {
                assert_int_equal(rc, SCB_E_NOMEM);
                assert_null(p.turns);
            }
            assert_int_equal(scb_alloc_live_bytes(), live);
        }
        assert_true(ok);
    }
    free_sessions(ss, ns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_mix_max_new_tokens),
        cmocka_unit_test(test_input_budgets),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_pystr),
        cmocka_unit_test(test_mf_prefix),
        cmocka_unit_test(test_replace_split),
        cmocka_unit_test(test_truncate_middle),
        cmocka_unit_test(test_turn_cut),
        cmocka_unit_test(test_plans_vs_reference),
        cmocka_unit_test(test_plan_truncation),
        cmocka_unit_test(test_plan_max_turns),
        cmocka_unit_test(test_plan_errors),
        cmocka_unit_test(test_plan_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
