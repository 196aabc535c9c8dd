/* scorers.c — SCBench's scorers, task table, prediction-file reader and aggregation (see
 * scorers.h). Python semantics (str.strip/split/upper/lower, `in`, code-point indexing) come
 * from pystr.h; ROUGE-Lsum from rouge.h; RepoQA from repoqa.h. Each function names the Python
 * function of compute_scores.py it reproduces. */
#include "tasks/scorers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "tasks/pystr.h"
#include "tasks/repoqa.h"
#include "tasks/rouge.h"
#include "tasks/unicode_tables.h"

const char *const scb_score_categories[SCB_SCORE_N_CATEGORIES] = {
    "String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking"};

static const struct scb_score_task TASKS[] = {
    {"scbench_kv", 0, SCB_SCORER_KV_RETRIEVAL, 0, {NULL, NULL}, {0, 0}},
    {"scbench_prefix_suffix", 0, SCB_SCORER_KV_RETRIEVAL, 0, {NULL, NULL}, {0, 0}},
    {"scbench_vt", 0, SCB_SCORER_STRING_MATCH_ALL, 0, {NULL, NULL}, {0, 0}},
    {"scbench_repoqa", 1, SCB_SCORER_REPOQA, 0, {NULL, NULL}, {0, 0}},
    {"scbench_qa_eng", 1, SCB_SCORER_LONGDIALOGUE_QA, 0, {NULL, NULL}, {0, 0}},
    {"scbench_qa_chn", 1, SCB_SCORER_QA_F1_ZH, 0, {NULL, NULL}, {0, 0}},
    {"scbench_choice_eng", 1, SCB_SCORER_CHOICE_ENG, 0, {NULL, NULL}, {0, 0}},
    {"scbench_mf", 2, SCB_SCORER_MATH_FIND, 0, {NULL, NULL}, {0, 0}},
    {"scbench_many_shot", 2, SCB_SCORER_MANY_SHOT, 0, {NULL, NULL}, {0, 0}},
    {"scbench_summary", 2, SCB_SCORER_ROUGE_LSUM, 0, {NULL, NULL}, {0, 0}},
    {"scbench_summary_with_needles", 3, SCB_SCORER_ROUGE_LSUM, 1,
     {"scbench_summary", "scbench_passkey"}, {SCB_SCORER_ROUGE_LSUM, SCB_SCORER_PASSKEY}},
    {"scbench_repoqa_and_kv", 3, SCB_SCORER_REPOQA, 1,
     {"scbench_repoqa", "scbench_kv"}, {SCB_SCORER_REPOQA, SCB_SCORER_KV_RETRIEVAL}},
};

const struct scb_score_task *scb_score_tasks(size_t *n_out)
{
    if (n_out) *n_out = sizeof TASKS / sizeof TASKS[0];
    return TASKS;
}

const struct scb_score_task *scb_score_task_find(const char *name)
{
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof TASKS / sizeof TASKS[0]; i++)
        if (!strcmp(TASKS[i].name, name)) return &TASKS[i];
    return NULL;
}

const char *scb_score_variant_name(enum scb_score_variant v)
{
    return v == SCB_SCORE_INTENDED ? "intended" : "faithful";
}

const char *scb_score_mode_name(enum scb_score_mode m)
{
    return m == SCB_SCORE_MULTI_REQUEST ? "multi-request" : "multi-turn";
}

double scb_score_pyround(double x, int nd)
{
    /* CPython's float round uses a correctly rounded decimal conversion (round-half-even on the
     * exact binary value); glibc's printf does the same, and strtod reads it back exactly. */
    char buf[512];
    if (!isfinite(x)) return x;
    snprintf(buf, sizeof buf, "%.*f", nd, x);
    return strtod(buf, NULL);
}

/* ---- ground-truth helpers ---------------------------------------------------------------- */
/* Iterate the "items" of a ground truth as Python's `for item in gt` does: a list gives its
 * elements (they must be strings), a string gives its characters. Items are UTF-8 strings. */
struct items {
    char  **s;   /* (n) owned */
    size_t  n;
};

static void items_fini(struct items *it)
{
    for (size_t i = 0; i < it->n; i++) scb_free(it->s[i]);
    scb_free(it->s);
    it->s = NULL;
    it->n = 0;
}

static int items_of(const cJSON *gt, int string_as_one, const char *what, struct items *it,
                    struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    it->s = NULL;
    it->n = 0;
    if (cJSON_IsString(gt)) {
        const char *s = gt->valuestring;
        size_t len = strlen(s);
        if (string_as_one) {
            it->s = scb_malloc(sizeof *it->s);
            if (!it->s || !(it->s[0] = scb_strdup(s))) { rc = SCB_E_NOMEM; goto out; }
            it->n = 1;
            goto out;
        }
        it->s = scb_malloc((len ? len : 1) * sizeof *it->s);
        if (!it->s) { rc = SCB_E_NOMEM; goto out; }
        size_t i = 0;
        while (i < len) {
            uint32_t cp;
            int k = scb_utf8_decode((const unsigned char *)s + i, len - i, &cp);
            if (!(it->s[it->n] = scb_strndup(s + i, (size_t)k))) { rc = SCB_E_NOMEM; goto out; }
            it->n++;
            i += (size_t)k;
        }
    } else if (cJSON_IsArray(gt)) {
        int m = cJSON_GetArraySize(gt);
        it->s = scb_malloc((m ? (size_t)m : 1) * sizeof *it->s);
        if (!it->s) { rc = SCB_E_NOMEM; goto out; }
        const cJSON *e;
        cJSON_ArrayForEach(e, gt) {
            if (!cJSON_IsString(e)) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: ground_truth list items must be strings", what);
                goto out;
            }
            if (!(it->s[it->n] = scb_strdup(e->valuestring))) { rc = SCB_E_NOMEM; goto out; }
            it->n++;
        }
    } else {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: ground_truth must be a string or a list of strings", what);
    }
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "%s: out of memory", what);
    if (rc < 0) items_fini(it);
    return rc;
}

/* Python `s in gt` for a list gt (element equality) or a string gt (substring). */
static int gt_contains(const cJSON *gt, const char *s)
{
    if (cJSON_IsString(gt)) return strstr(gt->valuestring, s) != NULL;
    if (cJSON_IsArray(gt)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, gt)
            if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return 1;
    }
    return 0;
}

/* ---- kv_retrieval: label in pred ------------------------------------------------------- */
int scb_score_kv_retrieval(const char *pred, const cJSON *gt, enum scb_score_variant v,
                           double *out, struct scb_ctx *ctx)
{
    (void)v;
    *out = 0.0;
    if (!cJSON_IsString(gt))
        return scb_err(ctx, SCB_E_FORMAT, "kv_retrieval: ground_truth must be a string");
    *out = strstr(pred, gt->valuestring) ? 1.0 : 0.0;
    return SCB_OK;
}

/* ---- passkey: label == first_int_match(pred) --------------------------------------------- */
int scb_score_passkey(const char *pred, const cJSON *gt, enum scb_score_variant v, double *out,
                      struct scb_ctx *ctx)
{
    (void)ctx;
    *out = 0.0;
    if (cJSON_IsArray(gt)) gt = cJSON_GetArrayItem(gt, 0);
    /* first_int_match: re.split("[^0-9]", pred), first non-empty piece ("" if none) */
    const char *p = pred;
    while (*p && !(*p >= '0' && *p <= '9')) p++;
    const char *q = p;
    while (*q >= '0' && *q <= '9') q++;
    size_t dl = (size_t)(q - p);
    if (cJSON_IsString(gt)) {
        *out = (strlen(gt->valuestring) == dl && !memcmp(gt->valuestring, p, dl)) ? 1.0 : 0.0;
    } else if (cJSON_IsNumber(gt) && v == SCB_SCORE_INTENDED) {
        /* intended: an integer passkey equals the digits of its decimal form */
        char buf[64];
        double d = gt->valuedouble;
        if (d == floor(d) && fabs(d) < 1e18) {
            snprintf(buf, sizeof buf, "%.0f", d);
            *out = (strlen(buf) == dl && !memcmp(buf, p, dl)) ? 1.0 : 0.0;
        }
    }
    /* faithful: a non-string label never equals a string (quirk 16) */
    return SCB_OK;
}

/* ---- string_match_all: round(sum(r.lower() in pred.lower()) / len(ref), 2) ------------- */
int scb_score_string_match_all(const char *pred, const cJSON *gt, enum scb_score_variant v,
                               double *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct items it = {0};
    struct scb_buf pl = {0}, rl = {0};
    *out = 0.0;
    SCB_TRY(items_of(gt, v == SCB_SCORE_INTENDED, "string_match_all", &it, ctx));
    if (it.n == 0) {
        rc = scb_err(ctx, SCB_E_FORMAT, "string_match_all: empty ground_truth (SCBench divides by its length)");
        goto out;
    }
    SCB_TRY(scb_pystr_lower_utf8(pred, strlen(pred), &pl));
    double hits = 0.0;
    for (size_t i = 0; i < it.n; i++) {
        rl.len = 0;
        SCB_TRY(scb_pystr_lower_utf8(it.s[i], strlen(it.s[i]), &rl));
        hits += strstr(pl.data, rl.data) ? 1.0 : 0.0;
    }
    *out = scb_score_pyround(hits / (double)it.n, 2);
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "string_match_all: out of memory");
    items_fini(&it);
    scb_buf_fini(&pl);
    scb_buf_fini(&rl);
    return rc;
}

/* ---- get_score_one_longdialogue_qa_eng: any(item.upper() in pred.strip().upper()) ------- */
int scb_score_longdialogue_qa(const char *pred, const cJSON *gt, enum scb_score_variant v,
                              double *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct items it = {0};
    struct scb_pystr p = {0}, pu = {0}, g = {0}, gu = {0};
    *out = 0.0;
    SCB_TRY(items_of(gt, v == SCB_SCORE_INTENDED, "longdialogue_qa", &it, ctx));
    SCB_TRY(scb_pystr_from_utf8(&p, pred, strlen(pred)));
    size_t b, e;
    scb_pystr_strip(&p, &b, &e);
    struct scb_pystr ps = {p.cp + b, e - b, 0};
    SCB_TRY(scb_pystr_upper(&ps, &pu));
    for (size_t i = 0; i < it.n; i++) {
        g.n = 0;
        SCB_TRY(scb_pystr_from_utf8(&g, it.s[i], strlen(it.s[i])));
        SCB_TRY(scb_pystr_upper(&g, &gu));
        if (scb_pystr_find(&pu, 0, pu.n, &gu, 0, gu.n) != (size_t)-1) { *out = 1.0; break; }
    }
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "longdialogue_qa: out of memory");
    items_fini(&it);
    scb_pystr_fini(&p); scb_pystr_fini(&pu); scb_pystr_fini(&g); scb_pystr_fini(&gu);
    return rc;
}

/* ---- qa_f1_score_zh ------------------------------------------------------------------------ */
static int is_zh_punct(uint32_t c)
{
    static const char *const cn =
        "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏.";
    if (c < 0x80) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
                         (c >= 0x7B && c <= 0x7E);
    size_t i = 0, n = strlen(cn);
    while (i < n) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)cn + i, n - i, &cp);
        if (cp == c) return 1;
        i += (size_t)k;
    }
    return 0;
}

static int normalize_zh(const char *s, struct scb_pystr *out)
{
    int rc = SCB_OK;
    struct scb_pystr a = {0}, l = {0};
    out->n = 0;
    SCB_TRY(scb_pystr_from_utf8(&a, s, strlen(s)));
    SCB_TRY(scb_pystr_lower(&a, &l));
    for (size_t i = 0; i < l.n; i++) {
        uint32_t c = l.cp[i];
        if (is_zh_punct(c) || scb_pystr_isspace(c)) continue;
        SCB_TRY(scb_pystr_push(out, c));
    }
out:
    scb_pystr_fini(&a);
    scb_pystr_fini(&l);
    return rc;
}

int scb_score_normalize_zh(const char *s, char **out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_pystr n = {0};
    struct scb_buf b = {0};
    *out = NULL;
    SCB_TRY(normalize_zh(s, &n));
    SCB_TRY(scb_pystr_to_utf8(&n, 0, n.n, &b));
    *out = scb_buf_steal(&b);
out:
    if (rc < 0) scb_err(ctx, rc, "normalize_zh: out of memory");
    scb_pystr_fini(&n);
    scb_buf_fini(&b);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* f1_score over code-point multisets: Counter(prediction) & Counter(ground_truth). */
static double char_f1(struct scb_pystr *p, struct scb_pystr *g)
{
    if (p->n) qsort(p->cp, p->n, sizeof(uint32_t), cmp_u32);
    if (g->n) qsort(g->cp, g->n, sizeof(uint32_t), cmp_u32);
    size_t i = 0, j = 0, same = 0;
    while (i < p->n && j < g->n) {
        if (p->cp[i] == g->cp[j]) { same++; i++; j++; }
        else if (p->cp[i] < g->cp[j]) i++;
        else j++;
    }
    if (same == 0) return 0.0;
    double precision = 1.0 * (double)same / (double)p->n;
    double recall = 1.0 * (double)same / (double)g->n;
    return (2 * precision * recall) / (precision + recall);
}

int scb_score_qa_f1_zh(const char *pred, const cJSON *gt, enum scb_score_variant v, double *out,
                       struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct items it = {0};
    struct scb_pystr np = {0}, ng = {0};
    *out = 0.0;
    SCB_TRY(items_of(gt, v == SCB_SCORE_INTENDED, "qa_f1_zh", &it, ctx));
    double f1 = 0.0;
    for (size_t i = 0; i < it.n; i++) {
        SCB_TRY(normalize_zh(pred, &np));
        SCB_TRY(normalize_zh(it.s[i], &ng));
        double f = char_f1(&np, &ng);
        if (f > f1) f1 = f;
    }
    *out = f1;
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "qa_f1_zh: out of memory");
    items_fini(&it);
    scb_pystr_fini(&np);
    scb_pystr_fini(&ng);
    return rc;
}

/* ---- get_score_one_longbook_choice_eng ------------------------------------------------- */
static int startswith_cp(const struct scb_pystr *s, size_t from, const char *prefix)
{
    struct scb_pystr p = {0};
    int r = 0;
    if (scb_pystr_from_utf8(&p, prefix, strlen(prefix)) < 0) return -1;
    if (s->n - from >= p.n && !memcmp(s->cp + from, p.cp, p.n * sizeof(uint32_t))) r = 1;
    scb_pystr_fini(&p);
    return r;
}

int scb_score_choice_eng(const char *pred, const cJSON *gt, enum scb_score_variant v, double *out,
                         struct scb_ctx *ctx)
{
    (void)v;
    int rc = SCB_OK;
    struct scb_pystr p = {0}, q = {0};
    struct scb_buf tmp = {0};
    struct items it = {0};
    *out = 0.0;
    if (!cJSON_IsArray(gt) && !cJSON_IsString(gt)) {
        rc = scb_err(ctx, SCB_E_FORMAT, "choice_eng: ground_truth must be [answer_text, letter]");
        goto out;
    }
    SCB_TRY(scb_pystr_from_utf8(&p, pred, strlen(pred)));
    size_t b, e;
    scb_pystr_strip(&p, &b, &e);
    if (b == e) goto out;
    uint32_t c0 = p.cp[b];
    if (c0 == 'A' || c0 == 'B' || c0 == 'C' || c0 == 'D') {
        char s[2] = {(char)c0, 0};
        *out = gt_contains(gt, s) ? 1.0 : 0.0;
        goto out;
    }
    SCB_TRY(scb_pystr_to_utf8(&p, b, e, &tmp));
    if (gt_contains(gt, tmp.data)) { *out = 1.0; goto out; }
    /* replace \n " ' . , ? ! { } by spaces, then collapse double spaces */
    for (size_t i = b; i < e; i++) {
        uint32_t c = p.cp[i];
        if (c == '\n' || c == '"' || c == '\'' || c == '.' || c == ',' || c == '?' || c == '!' ||
            c == '{' || c == '}')
            c = ' ';
        if (c == ' ' && q.n && q.cp[q.n - 1] == ' ') continue;
        SCB_TRY(scb_pystr_push(&q, c));
    }
    static const char *const prefixes[] = {"answer is:", "answer:", "answer is", "option is"};
    for (size_t k = 0; k < 4; k++) {
        struct scb_pystr pf = {0};
        SCB_TRY(scb_pystr_from_utf8(&pf, prefixes[k], strlen(prefixes[k])));
        size_t idx = scb_pystr_find(&q, 0, q.n, &pf, 0, pf.n);
        size_t pl = pf.n;
        scb_pystr_fini(&pf);
        if (idx == (size_t)-1) continue;
        if (q.n < idx + pl + 1) goto out;   /* the prediction ends with this prefix */
        size_t from = idx + pl + 1;
        SCB_TRY(items_of(gt, 0, "choice_eng", &it, ctx));
        for (size_t i = 0; i < it.n; i++) {   /* for s in label: after_prefix.startswith(s) */
            int r = startswith_cp(&q, from, it.s[i]);
            if (r < 0) { rc = SCB_E_NOMEM; goto out; }
            if (r) { *out = 1.0; break; }
        }
        goto out;
    }
    /* first word that is a substring of "ABCD" */
    size_t pos = 0, wb, we;
    while (scb_pystr_next_word(&q, &pos, &wb, &we)) {
        int sub = 0;
        static const char ab[] = "ABCD";
        size_t wl = we - wb;
        for (size_t st = 0; st + wl <= 4 && !sub; st++) {
            size_t k;
            for (k = 0; k < wl; k++)
                if (q.cp[wb + k] != (uint32_t)(unsigned char)ab[st + k]) break;
            if (k == wl) sub = 1;
        }
        if (sub) {
            tmp.len = 0;
            SCB_TRY(scb_pystr_to_utf8(&q, wb, we, &tmp));
            *out = gt_contains(gt, tmp.data) ? 1.0 : 0.0;
            goto out;
        }
    }
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "choice_eng: out of memory");
    scb_pystr_fini(&p);
    scb_pystr_fini(&q);
    scb_buf_fini(&tmp);
    items_fini(&it);
    return rc;
}

/* ---- get_score_one_math_find: first match of \d+\.\d+|\d+ ---------------------------------- */
int scb_score_math_find(const char *pred, const cJSON *gt, enum scb_score_variant v, double *out,
                        struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_pystr p = {0};
    struct scb_buf num = {0};
    *out = 0.0;
    if (cJSON_IsArray(gt)) gt = cJSON_GetArrayItem(gt, 0);
    int is_int;
    double label;
    if (cJSON_IsBool(gt)) { is_int = 1; label = cJSON_IsTrue(gt) ? 1.0 : 0.0; }
    else if (cJSON_IsNumber(gt)) { label = gt->valuedouble; is_int = label == floor(label); }
    else { rc = scb_err(ctx, SCB_E_FORMAT, "math_find: ground_truth must be a number (SCBench raises TypeError)"); goto out; }

    SCB_TRY(scb_pystr_from_utf8(&p, pred, strlen(pred)));
    /* re.search: leftmost start; at a start the first alternative (\d+\.\d+) wins if it matches */
    size_t i, n = p.n;
    for (i = 0; i < n; i++)
        if (scb_uc_digit_value(p.cp[i]) >= 0) break;
    if (i == n) goto out;
    int neg = 0;
    if (v == SCB_SCORE_INTENDED && i > 0 && p.cp[i - 1] == '-') neg = 1;
    size_t j = i;
    while (j < n && scb_uc_digit_value(p.cp[j]) >= 0) j++;
    size_t end = j;
    if (j + 1 < n && p.cp[j] == '.' && scb_uc_digit_value(p.cp[j + 1]) >= 0) {
        size_t k = j + 1;
        while (k < n && scb_uc_digit_value(p.cp[k]) >= 0) k++;
        end = k;
    }
    if (neg) SCB_TRY(scb_buf_putc(&num, '-'));
    for (size_t k = i; k < end; k++) {   /* float() accepts any Unicode decimal digit */
        int d = scb_uc_digit_value(p.cp[k]);
        SCB_TRY(scb_buf_putc(&num, d >= 0 ? (char)('0' + d) : '.'));
    }
    double x = strtod(num.data, NULL);
    if (is_int) {
        if (!isfinite(x)) goto out;   /* Python: int(inf) raises OverflowError */
        *out = trunc(x) == label ? 1.0 : 0.0;
    } else {
        *out = x == label ? 1.0 : 0.0;
    }
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "math_find: out of memory");
    scb_pystr_fini(&p);
    scb_buf_fini(&num);
    return rc;
}

/* ---- get_score_one_longbook_sum_eng: HF evaluate rouge, rougeLsum F ---------------------- */
int scb_score_rouge_lsum(const char *pred, const cJSON *gt, enum scb_score_variant v, double *out,
                         struct scb_ctx *ctx)
{
    (void)v;
    *out = 0.0;
    if (!cJSON_IsString(gt))
        return scb_err(ctx, SCB_E_FORMAT, "rougeLsum: ground_truth must be a string");
    struct scb_rouge_score s;
    int rc = scb_rouge_lsum(gt->valuestring, pred, &s, ctx);
    if (rc == SCB_OK) *out = s.fmeasure;
    return rc;
}

int scb_score_one(enum scb_scorer_kind kind, const char *pred, const cJSON *gt,
                  enum scb_score_variant v, double *out, struct scb_ctx *ctx)
{
    switch (kind) {
    case SCB_SCORER_KV_RETRIEVAL:     return scb_score_kv_retrieval(pred, gt, v, out, ctx);
    case SCB_SCORER_PASSKEY:          return scb_score_passkey(pred, gt, v, out, ctx);
    case SCB_SCORER_STRING_MATCH_ALL: return scb_score_string_match_all(pred, gt, v, out, ctx);
    case SCB_SCORER_LONGDIALOGUE_QA:
    case SCB_SCORER_MANY_SHOT:        return scb_score_longdialogue_qa(pred, gt, v, out, ctx);
    case SCB_SCORER_QA_F1_ZH:         return scb_score_qa_f1_zh(pred, gt, v, out, ctx);
    case SCB_SCORER_CHOICE_ENG:       return scb_score_choice_eng(pred, gt, v, out, ctx);
    case SCB_SCORER_MATH_FIND:        return scb_score_math_find(pred, gt, v, out, ctx);
    case SCB_SCORER_ROUGE_LSUM:       return scb_score_rouge_lsum(pred, gt, v, out, ctx);
    case SCB_SCORER_REPOQA:
        break;
    }
    *out = 0.0;
    return scb_err(ctx, SCB_E_INVAL, "scorer %d needs the whole prediction file (scb_score_records)", (int)kind);
}

/* ---- prediction files -------------------------------------------------------------------- */
void scb_pred_file_fini(struct scb_pred_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) cJSON_Delete(f->objs[i]);
    scb_free(f->objs);
    scb_free(f->recs);
    memset(f, 0, sizeof *f);
}

static const char *opt_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int parse_record(const char *name, long line, const cJSON *o, struct scb_score_record *r,
                        struct scb_ctx *ctx)
{
    memset(r, 0, sizeof *r);
    r->line = line;
    r->raw = o;
    if (!cJSON_IsObject(o)) return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: a record must be a JSON object", name, line);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    r->id = cJSON_IsNumber(v) ? (long)v->valuedouble : -1;
    v = cJSON_GetObjectItemCaseSensitive(o, "turn_idx");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: \"turn_idx\" must be a non-negative integer", name, line);
    r->turn_idx = (long)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(o, "prediction");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(o, "pred");
    if (!v) return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: no \"prediction\" field", name, line);
    if (!cJSON_IsString(v)) return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: \"prediction\" must be a string", name, line);
    r->prediction = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(o, "ground_truth");
    if (!v) v = cJSON_GetObjectItemCaseSensitive(o, "label");
    if (!v) return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: no \"ground_truth\" field", name, line);
    r->gt = v;
    v = cJSON_GetObjectItemCaseSensitive(o, "task");
    if (v && !cJSON_IsString(v)) return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: \"task\" must be a string", name, line);
    r->task = v ? v->valuestring : NULL;
    r->lang = opt_string(o, "lang");
    r->repo = opt_string(o, "repo");
    r->func_name = opt_string(o, "func_name");
    return SCB_OK;
}

int scb_pred_file_parse(const char *name, const char *text, struct scb_pred_file *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    const char *p = text;
    long line = 0;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        line++;
        size_t b, e;
        scb_pystr_strip_utf8(p, len, &b, &e);
        if (b < e) {
            if (out->n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                cJSON **no = scb_realloc(out->objs, nc * sizeof *no);
                if (!no) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", name); goto out; }
                out->objs = no;
                struct scb_score_record *nr = scb_realloc(out->recs, nc * sizeof *nr);
                if (!nr) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", name); goto out; }
                out->recs = nr;
                cap = nc;
            }
            const char *endp = NULL;
            cJSON *o = cJSON_ParseWithLengthOpts(p, len, &endp, 0);
            if (!o) {
                size_t off = endp && endp >= p ? (size_t)(endp - p) : 0;
                rc = scb_err(ctx, SCB_E_FORMAT, "%s:%ld: invalid JSON near column %zu", name, line, off + 1);
                goto out;
            }
            out->objs[out->n] = o;
            out->n++;
            SCB_TRY(parse_record(name, line, o, &out->recs[out->n - 1], ctx));
        }
        if (!nl) break;
        p = nl + 1;
    }
out:
    if (rc < 0) scb_pred_file_fini(out);
    return rc;
}

int scb_pred_file_load(const char *path, struct scb_pred_file *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    SCB_TRY(scb_file_read(path, &text, &len, ctx));
    if (strlen(text) != len) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: contains a NUL byte", path); goto out; }
    SCB_TRY(scb_pred_file_parse(path, text, out, ctx));
    if (out->n == 0) rc = scb_err(ctx, SCB_E_FORMAT, "%s: no prediction records", path);
out:
    scb_free(text);
    if (rc < 0) scb_pred_file_fini(out);
    return rc;
}

/* ---- aggregation ------------------------------------------------------------------------- */
void scb_score_result_fini(struct scb_score_result *r)
{
    if (!r) return;
    scb_free(r->turn_idx);
    scb_free(r->turn);
    scb_free(r->turn_n);
    scb_free(r->rec_score);
    scb_free(r->rec_slot);
    memset(r, 0, sizeof *r);
}

struct needles {
    struct scb_repoqa_needle *v;  /* (n) */
    const char **repo;            /* (n) repo of each needle */
    size_t n;
};

/* needle_by_repo: every record (of sub-task scbench_repoqa when mix) in file order. */
static int collect_needles(const struct scb_score_record *recs, size_t n, int mix, struct needles *nd,
                           struct scb_ctx *ctx)
{
    nd->v = scb_malloc((n ? n : 1) * sizeof *nd->v);
    nd->repo = scb_malloc((n ? n : 1) * sizeof *nd->repo);
    nd->n = 0;
    if (!nd->v || !nd->repo) return scb_err(ctx, SCB_E_NOMEM, "repoqa: out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct scb_score_record *r = &recs[i];
        if (mix && !(r->task && !strcmp(r->task, "scbench_repoqa"))) continue;
        if (!r->repo) return scb_err(ctx, SCB_E_FORMAT, "line %ld: repoqa record without \"repo\"", r->line);
        if (!cJSON_IsString(r->gt))
            return scb_err(ctx, SCB_E_FORMAT, "line %ld: repoqa ground_truth must be the function source (string)", r->line);
        /* from a file: the key must exist (SCBench indexes it); from the driver: a name */
        if (r->raw ? !cJSON_GetObjectItemCaseSensitive(r->raw, "func_name") : !r->func_name)
            return scb_err(ctx, SCB_E_FORMAT, "line %ld: repoqa record without \"func_name\"", r->line);
        nd->v[nd->n].name = r->func_name;
        nd->v[nd->n].code = r->gt->valuestring;
        nd->repo[nd->n] = r->repo;
        nd->n++;
    }
    return SCB_OK;
}

static int score_repoqa_record(const struct scb_score_record *r, const struct needles *nd, double *out,
                               struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_repoqa_needle *sel = NULL;
    size_t k = 0;
    *out = 0.0;
    if (!r->lang || !scb_repoqa_lang_supported(r->lang))
        return scb_err(ctx, SCB_E_FORMAT, "line %ld: repoqa \"lang\" must be one of python, java, typescript, rust, cpp, go",
                       r->line);
    if (!r->repo) return scb_err(ctx, SCB_E_FORMAT, "line %ld: repoqa record without \"repo\"", r->line);
    sel = scb_malloc((nd->n ? nd->n : 1) * sizeof *sel);
    if (!sel) return scb_err(ctx, SCB_E_NOMEM, "repoqa: out of memory");
    for (size_t i = 0; i < nd->n; i++)
        if (!strcmp(nd->repo[i], r->repo)) sel[k++] = nd->v[i];
    if (k == 0) { rc = scb_err(ctx, SCB_E_FORMAT, "line %ld: no needles for repo '%s'", r->line, r->repo); goto out; }
    int correct;
    long best;
    double sim;
    SCB_TRY(scb_repoqa_evaluate(r->prediction, r->lang, r->func_name, sel, k, SCB_REPOQA_THRESHOLD,
                                &correct, &best, &sim, ctx));
    *out = correct ? 1.0 : 0.0;
out:
    scb_free(sel);
    return rc;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int scb_score_records(const char *task, const struct scb_score_record *recs, size_t n,
                      enum scb_score_mode mode, enum scb_score_variant v,
                      struct scb_score_result *res, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct needles nd = {0};
    double *val = NULL;   /* (n) score of each record */
    int *slot = NULL;     /* (n) 0/1 slot of each record, -1 = not scored */
    memset(res, 0, sizeof *res);
    const struct scb_score_task *t = scb_score_task_find(task);
    if (!t) return scb_err(ctx, SCB_E_NOTFOUND, "unknown task '%s'", task ? task : "(null)");
    res->task = t;
    res->mode = mode;
    res->variant = v;
    res->pair = t->mix;
    if (n == 0) return scb_err(ctx, SCB_E_FORMAT, "%s: no prediction records", task);

    val = scb_calloc(n, sizeof *val);
    slot = scb_malloc(n * sizeof *slot);
    if (!val || !slot) { rc = scb_err(ctx, SCB_E_NOMEM, "score: out of memory"); goto out; }

    int repo = t->scorer == SCB_SCORER_REPOQA;
    if (repo) SCB_TRY(collect_needles(recs, n, t->mix, &nd, ctx));

    for (size_t i = 0; i < n; i++) {
        const struct scb_score_record *r = &recs[i];
        slot[i] = -1;
        enum scb_scorer_kind kind = t->scorer;
        if (t->mix) {
            if (!r->task) { rc = scb_err(ctx, SCB_E_FORMAT, "line %ld: a %s record needs \"task\"", r->line, t->name); goto out; }
            if (!strcmp(r->task, t->sub[0])) { slot[i] = 0; kind = t->sub_scorer[0]; }
            else if (!strcmp(r->task, t->sub[1])) { slot[i] = 1; kind = t->sub_scorer[1]; }
            else continue;   /* SCBench ignores other sub-tasks */
        } else {
            if (r->task && strcmp(r->task, t->name)) {
                rc = scb_err(ctx, SCB_E_FORMAT, "line %ld: record task '%s' is not '%s'", r->line, r->task, t->name);
                goto out;
            }
            slot[i] = 0;
        }
        if (kind == SCB_SCORER_REPOQA) {
            SCB_TRY(score_repoqa_record(r, &nd, &val[i], ctx));
        } else if (t->mix && slot[i] == 1 && kind == SCB_SCORER_KV_RETRIEVAL &&
                   mode == SCB_SCORE_MULTI_REQUEST && v == SCB_SCORE_FAITHFUL) {
            /* quirk 15: scdq scores `label in record_dict` (a key lookup) */
            if (!cJSON_IsString(r->gt)) {
                rc = scb_err(ctx, SCB_E_FORMAT, "line %ld: kv ground_truth must be a string", r->line);
                goto out;
            }
            val[i] = cJSON_GetObjectItemCaseSensitive(r->raw, r->gt->valuestring) ? 1.0 : 0.0;
        } else {
            rc = scb_score_one(kind, r->prediction, r->gt, v, &val[i], ctx);
            if (rc < 0) { scb_err_prefix(ctx, "line %ld: ", r->line); goto out; }
        }
        res->n++;
    }

    /* turns present (ascending) */
    long *tu = scb_malloc(n * sizeof *tu);
    if (!tu) { rc = scb_err(ctx, SCB_E_NOMEM, "score: out of memory"); goto out; }
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) tu[nt++] = recs[i].turn_idx;
    qsort(tu, nt, sizeof *tu, cmp_long);
    size_t u = 0;
    for (size_t i = 0; i < nt; i++)
        if (i == 0 || tu[i] != tu[i - 1]) tu[u++] = tu[i];
    res->turn_idx = tu;
    res->n_turns = u;
    res->turn = scb_calloc(2 * u, sizeof *res->turn);
    res->turn_n = scb_calloc(2 * u, sizeof *res->turn_n);
    if (!res->turn || !res->turn_n) { rc = scb_err(ctx, SCB_E_NOMEM, "score: out of memory"); goto out; }
    /* Python: sum(scores) / len(scores), summed in file order */
    for (size_t i = 0; i < n; i++) {
        if (slot[i] < 0) continue;
        long *hit = bsearch(&recs[i].turn_idx, tu, u, sizeof *tu, cmp_long);
        size_t ti = (size_t)(hit - tu);
        res->turn[2 * ti + (size_t)slot[i]] += val[i];
        res->turn_n[2 * ti + (size_t)slot[i]]++;
        res->pooled[slot[i]] += val[i];
        res->pooled_n[slot[i]]++;
    }
    for (size_t ti = 0; ti < u; ti++)
        for (int s = 0; s < 2; s++)
            if (res->turn_n[2 * ti + (size_t)s]) res->turn[2 * ti + (size_t)s] /= (double)res->turn_n[2 * ti + (size_t)s];
    for (int s = 0; s < 2; s++) {
        if (res->pooled_n[s]) res->pooled[s] /= (double)res->pooled_n[s];
        if (mode == SCB_SCORE_MULTI_REQUEST) {
            res->overall[s] = res->pooled[s];
        } else {
            double sum = 0.0;
            size_t cnt = 0;
            for (size_t ti = 0; ti < u; ti++)
                if (res->turn_n[2 * ti + (size_t)s]) { sum += res->turn[2 * ti + (size_t)s]; cnt++; }
            res->overall[s] = cnt ? sum / (double)cnt : 0.0;
        }
    }
    if (!t->mix && res->pooled_n[0] == 0) rc = scb_err(ctx, SCB_E_FORMAT, "%s: no prediction records", task);
    res->rec_score = val;
    res->rec_slot = slot;
    val = NULL;
    slot = NULL;
out:
    scb_free(nd.v);
    scb_free(nd.repo);
    scb_free(val);
    scb_free(slot);
    if (rc < 0) scb_score_result_fini(res);
    return rc;
}

double scb_score_task_value(const struct scb_score_result *r)
{
    return r->pair ? (r->overall[0] + r->overall[1]) / 2.0 : r->overall[0];
}

int scb_score_category_means(const char *const *tasks, const double *values, size_t n,
                             double out[SCB_SCORE_N_CATEGORIES], int has[SCB_SCORE_N_CATEGORIES],
                             double *avg, struct scb_ctx *ctx)
{
    size_t cnt[SCB_SCORE_N_CATEGORIES] = {0};
    for (int c = 0; c < SCB_SCORE_N_CATEGORIES; c++) { out[c] = 0.0; has[c] = 0; }
    *avg = 0.0;
    for (size_t i = 0; i < n; i++) {
        const struct scb_score_task *t = scb_score_task_find(tasks[i]);
        if (!t) return scb_err(ctx, SCB_E_NOTFOUND, "unknown task '%s'", tasks[i]);
        out[t->category] += values[i];
        cnt[t->category]++;
    }
    size_t nc = 0;
    for (int c = 0; c < SCB_SCORE_N_CATEGORIES; c++) {
        if (!cnt[c]) continue;
        out[c] /= (double)cnt[c];
        has[c] = 1;
        *avg += out[c];
        nc++;
    }
    if (nc) *avg /= (double)nc;
    return SCB_OK;
}
