/* prompt.c — SCBench prompt assembly and first-prompt truncation (see prompt.h). Each step
 * mirrors a line of SCBench's eval_utils.py (create_multiturn_prompt, create_scdq_prompt,
 * get_ground_truth) or run_scbench.py (truncate_input, the max_input_length formula); the
 * spec sections are cited where the quirk lives. */
#include "tasks/prompt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "tasks/pystr.h"

/* ---- options --------------------------------------------------------------------------------- */

void scb_prompt_opts_default(struct scb_prompt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->mode = SCB_MODE_MULTI_TURN;
    o->use_chat_template = 1;
    o->golden_context = 1;
    o->max_seq_length = 131072;
}

void scb_prompt_opts_set_turns(struct scb_prompt_opts *o, size_t first_session_turns, long max_turns)
{
    o->max_turn_size = first_session_turns;
    o->turn_cut = 0;
    if (max_turns > 0 && (size_t)max_turns < first_session_turns) {
        o->turn_cut = (size_t)max_turns;
        o->max_turn_size = (size_t)max_turns;
    }
}

/* ---- string pieces ------------------------------------------------------------------------- */

static int nomem(struct scb_ctx *ctx) { return scb_err(ctx, SCB_E_NOMEM, "out of memory building a prompt"); }

int scb_prompt_format(const char *tmpl, const char *const *keys, const char *const *vals, size_t n,
                      char **out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf b = {0};
    *out = NULL;
    const char *p = tmpl;
    while (*p) {
        if (p[0] == '{' && p[1] == '{') { SCB_TRY(scb_buf_putc(&b, '{')); p += 2; continue; }
        if (p[0] == '}' && p[1] == '}') { SCB_TRY(scb_buf_putc(&b, '}')); p += 2; continue; }
        if (*p == '{') {
            const char *e = strchr(p + 1, '}');
            if (!e) { rc = scb_err(ctx, SCB_E_INVAL, "template: unmatched '{' in \"%.40s\"", tmpl); goto out; }
            size_t kl = (size_t)(e - p - 1);
            size_t i;
            for (i = 0; i < n; i++)
                if (strlen(keys[i]) == kl && !memcmp(keys[i], p + 1, kl)) break;
            if (i == n || !vals[i]) {
                rc = scb_err(ctx, SCB_E_INVAL, "template: no value for {%.*s}", (int)kl, p + 1);
                goto out;
            }
            SCB_TRY(scb_buf_puts(&b, vals[i]));
            p = e + 1;
            continue;
        }
        const char *q = p;
        while (*q && *q != '{' && *q != '}') q++;
        if (q == p) q++;  /* a lone '}' is copied (Python would raise; no template has one) */
        SCB_TRY(scb_buf_append(&b, p, (size_t)(q - p)));
        p = q;
    }
    *out = scb_buf_steal(&b);
out:
    if (rc == SCB_E_NOMEM) nomem(ctx);
    scb_buf_fini(&b);
    return rc;
}

/* Python's str.isprintable for one code point, for what matters in repr(): ASCII controls,
 * C1 controls, the separators and format characters that occur in text. */
static int py_printable(uint32_t c)
{
    if (c < 0x20 || c == 0x7f) return 0;
    if (c >= 0x80 && c <= 0xa0) return 0;
    if (c == 0xad || c == 0x1680 || c == 0x180e || c == 0x3000 || c == 0xfeff) return 0;
    if (c >= 0x2000 && c <= 0x200f) return 0;
    if (c >= 0x2028 && c <= 0x202f) return 0;
    if (c >= 0x205f && c <= 0x206f) return 0;
    if (c >= 0xd800 && c <= 0xdfff) return 0;
    if (c >= 0xe000 && c <= 0xf8ff) return 0;
    if (c >= 0xfff9 && c <= 0xfffb) return 0;
    if (c == 0xfffe || c == 0xffff) return 0;
    return 1;
}

static int py_repr_str(struct scb_buf *b, const char *s)
{
    int rc = SCB_OK;
    char q = (strchr(s, '\'') && !strchr(s, '"')) ? '"' : '\'';
    SCB_TRY(scb_buf_putc(b, q));
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        int k = scb_utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (c == (uint32_t)q || c == '\\') { SCB_TRY(scb_buf_putc(b, '\\')); SCB_TRY(scb_buf_putc(b, (char)c)); }
        else if (c == '\n') SCB_TRY(scb_buf_puts(b, "\\n"));
        else if (c == '\r') SCB_TRY(scb_buf_puts(b, "\\r"));
        else if (c == '\t') SCB_TRY(scb_buf_puts(b, "\\t"));
        else if (py_printable(c)) SCB_TRY(scb_buf_append(b, s + i, (size_t)k));
        else if (c < 0x100) SCB_TRY(scb_buf_printf(b, "\\x%02x", c));
        else if (c < 0x10000) SCB_TRY(scb_buf_printf(b, "\\u%04x", c));
        else SCB_TRY(scb_buf_printf(b, "\\U%08x", c));
        i += (size_t)k;
    }
    SCB_TRY(scb_buf_putc(b, q));
out:
    return rc;
}

static int py_number(struct scb_buf *b, double v)
{
    if (isfinite(v) && v == floor(v) && fabs(v) < 9.2e18) return scb_buf_printf(b, "%lld", (long long)v);
    if (isnan(v)) return scb_buf_puts(b, "nan");
    if (isinf(v)) return scb_buf_puts(b, v > 0 ? "inf" : "-inf");
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {  /* shortest repr that round-trips, as Python's repr */
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    return scb_buf_puts(b, tmp);
}

static int py_repr(struct scb_buf *b, const cJSON *v, int top)
{
    int rc = SCB_OK;
    if (cJSON_IsString(v)) {
        if (top) return scb_buf_puts(b, v->valuestring);
        return py_repr_str(b, v->valuestring);
    }
    if (cJSON_IsNumber(v)) return py_number(b, v->valuedouble);
    if (cJSON_IsTrue(v)) return scb_buf_puts(b, "True");
    if (cJSON_IsFalse(v)) return scb_buf_puts(b, "False");
    if (cJSON_IsNull(v)) return scb_buf_puts(b, "None");
    int obj = cJSON_IsObject(v);
    SCB_TRY(scb_buf_putc(b, obj ? '{' : '['));
    const cJSON *it;
    int first = 1;
    cJSON_ArrayForEach(it, v) {
        if (!first) SCB_TRY(scb_buf_puts(b, ", "));
        first = 0;
        if (obj) { SCB_TRY(py_repr_str(b, it->string ? it->string : "")); SCB_TRY(scb_buf_puts(b, ": ")); }
        SCB_TRY(py_repr(b, it, 0));
    }
    SCB_TRY(scb_buf_putc(b, obj ? '}' : ']'));
out:
    return rc;
}

int scb_prompt_pystr(const cJSON *v, char **out, struct scb_ctx *ctx)
{
    struct scb_buf b = {0};
    *out = NULL;
    if (!v) return scb_err(ctx, SCB_E_FORMAT, "missing answer");
    int rc = py_repr(&b, v, 1);
    if (rc < 0) { scb_buf_fini(&b); return nomem(ctx); }
    *out = scb_buf_steal(&b);
    return SCB_OK;
}

int scb_prompt_int_list(const int64_t *v, size_t n, char **out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf b = {0};
    *out = NULL;
    SCB_TRY(scb_buf_putc(&b, '['));
    for (size_t i = 0; i < n; i++) SCB_TRY(scb_buf_printf(&b, i ? ", %lld" : "%lld", (long long)v[i]));
    SCB_TRY(scb_buf_putc(&b, ']'));
    *out = scb_buf_steal(&b);
out:
    if (rc < 0) nomem(ctx);
    scb_buf_fini(&b);
    return rc;
}

int scb_prompt_mf_prefix(const char *input, char **out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf b = {0};
    *out = NULL;
    size_t n = strlen(input);
    /* re.findall(r"The .+ is", input)[0]: the first start p with "The ", then greedy ".+"
     * (no newline, at least one char) backtracking to the last " is" of that line. */
    for (size_t p = 0; p + 4 <= n; p++) {
        if (memcmp(input + p, "The ", 4)) continue;
        size_t line_end = p + 4;
        while (line_end < n && input[line_end] != '\n') line_end++;
        if (line_end < p + 8) continue;  /* need 1 char of .+ plus " is" */
        for (size_t q = line_end - 3; q >= p + 5; q--) {
            if (!memcmp(input + q, " is", 3)) {
                SCB_TRY(scb_buf_puts(&b, "What is "));
                /* match.lower()[:-3]: lower the whole match (Python's full case mapping, whose
                 * Final_Sigma rule sees the " is"), then drop " is" (3 bytes) */
                SCB_TRY(scb_pystr_lower_utf8(input + p, q + 3 - p, &b));
                b.len -= 3;
                b.data[b.len] = 0;
                SCB_TRY(scb_buf_putc(&b, '?'));
                *out = scb_buf_steal(&b);
                goto out;
            }
        }
    }
    rc = scb_err(ctx, SCB_E_FORMAT, "Math.Find input has no \"The ... is\" (SCBench's prefix regex): \"%.80s\"",
                 input);
out:
    if (rc == SCB_E_NOMEM) nomem(ctx);
    scb_buf_fini(&b);
    return rc;
}

int scb_prompt_replace_all(const char *s, const char *old, const char *repl, char **out,
                           struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf b = {0};
    *out = NULL;
    size_t ol = strlen(old);
    const char *p = s;
    if (ol) {
        const char *hit;
        while ((hit = strstr(p, old))) {
            SCB_TRY(scb_buf_append(&b, p, (size_t)(hit - p)));
            SCB_TRY(scb_buf_puts(&b, repl));
            p = hit + ol;
        }
    }
    SCB_TRY(scb_buf_puts(&b, p));
    *out = scb_buf_steal(&b);
out:
    if (rc < 0) nomem(ctx);
    scb_buf_fini(&b);
    return rc;
}

int scb_prompt_split_index(const char *s, const char *sep, size_t index, char **out,
                           struct scb_ctx *ctx)
{
    *out = NULL;
    size_t sl = strlen(sep);
    const char *start = s;
    for (size_t i = 0; i < index; i++) {
        const char *hit = strstr(start, sep);
        if (!hit)
            return scb_err(ctx, SCB_E_FORMAT,
                           "rendered prompt has %zu piece(s) around \"%s\", piece %zu wanted (the chat "
                           "template dropped the delimiter)", i + 1, sep, index);
        start = hit + sl;
    }
    const char *end = strstr(start, sep);
    size_t len = end ? (size_t)(end - start) : strlen(start);
    *out = scb_strndup(start, len);
    return *out ? SCB_OK : nomem(ctx);
}

int scb_prompt_truncate_middle(const int32_t *ids, size_t n, long L, int32_t **out, size_t *n_out,
                               struct scb_ctx *ctx)
{
    *out = NULL;
    *n_out = 0;
    size_t keep = n;
    size_t half = 0;
    if (L >= 0 && n > (size_t)L) {
        half = (size_t)(L / 2);
        if (half == 0)
            return scb_err(ctx, SCB_E_INVAL,
                           "input budget L=%ld is too small to truncate a %zu-token prompt (SCBench's "
                           "truncate_by_tokens assertion fails)", L, n);
        keep = 2 * half;
    }
    int32_t *o = scb_malloc((keep ? keep : 1) * sizeof *o);
    if (!o) return nomem(ctx);
    if (keep == n) {
        if (n) memcpy(o, ids, n * sizeof *o);
    } else {
        memcpy(o, ids, half * sizeof *o);                     /* tokens[:L//2] */
        memcpy(o + half, ids + n - half, half * sizeof *o);   /* tokens[-(L//2):] */
    }
    *out = o;
    *n_out = keep;
    return SCB_OK;
}

int scb_prompt_ground_truth(const struct scb_task_ops *task, const struct scb_turn *turn,
                            cJSON **out, struct scb_ctx *ctx)
{
    *out = NULL;
    if (!turn->answer) return scb_err(ctx, SCB_E_FORMAT, "turn has no answer");
    cJSON *ans = cJSON_Duplicate(turn->answer, 1);
    if (!ans) return nomem(ctx);
    if (task->family == SCB_FAM_CHOICE) {
        /* [ans_, "ABCD"[options.index(ans_)]] */
        int idx = -1, i = 0;
        const cJSON *o;
        cJSON_ArrayForEach(o, turn->options) {
            if (cJSON_Compare(o, turn->answer, 1)) { idx = i; break; }
            i++;
        }
        if (idx < 0 || idx > 3) {
            cJSON_Delete(ans);
            return scb_err(ctx, SCB_E_FORMAT, "choice turn: answer is %s the options' first four",
                           idx < 0 ? "not among" : "beyond");
        }
        char letter[2] = {"ABCD"[idx], 0};
        cJSON *arr = cJSON_CreateArray();
        cJSON *l = cJSON_CreateString(letter);
        if (!arr || !l) { cJSON_Delete(arr); cJSON_Delete(l); cJSON_Delete(ans); return nomem(ctx); }
        cJSON_AddItemToArray(arr, ans);
        cJSON_AddItemToArray(arr, l);
        *out = arr;
        return SCB_OK;
    }
    if (!strcmp(task->name, "scbench_qa_eng")) {
        cJSON *arr = cJSON_CreateArray();
        if (!arr) { cJSON_Delete(ans); return nomem(ctx); }
        cJSON_AddItemToArray(arr, ans);
        *out = arr;
        return SCB_OK;
    }
    *out = ans;
    return SCB_OK;
}

/* ---- plan building ------------------------------------------------------------------------ */

/* The values a template may ask for, for one turn. */
struct fill {
    const char *keys[9];
    const char *vals[9];
    size_t n;
};

static void fill_add(struct fill *f, const char *k, const char *v)
{
    f->keys[f->n] = k;
    f->vals[f->n] = v;
    f->n++;
}

/* Question/options/input of turn t (options checked for choice turns). */
static int fill_turn(struct fill *f, const struct scb_task_ops *task, const struct scb_turn *t,
                     size_t ti, struct scb_ctx *ctx)
{
    if (!t->input) return scb_err(ctx, SCB_E_FORMAT, "turn %zu has no input", ti);
    fill_add(f, "input", t->input);
    fill_add(f, "question", t->input);
    if (task->family == SCB_FAM_CHOICE) {
        static const char *const names[4] = {"OPTION_A", "OPTION_B", "OPTION_C", "OPTION_D"};
        if (!cJSON_IsArray(t->options) || cJSON_GetArraySize(t->options) < 4)
            return scb_err(ctx, SCB_E_FORMAT, "choice turn %zu needs a list of 4 options", ti);
        for (int k = 0; k < 4; k++) {
            const cJSON *o = cJSON_GetArrayItem(t->options, k);
            if (!cJSON_IsString(o))
                return scb_err(ctx, SCB_E_FORMAT, "choice turn %zu: option %d is not a string", ti, k);
            fill_add(f, names[k], o->valuestring);
        }
    }
    return SCB_OK;
}

static int render1(const struct scb_chat_renderer *r, const struct scb_chat_msg *m, size_t n, int gen,
                   char **out, struct scb_ctx *ctx)
{
    int rc = r->render(r->user, m, n, gen, out, ctx);
    if (rc < 0) scb_err_prefix(ctx, "chat template: ");
    return rc;
}

/* Gold answer of a turn as the assistant message content: str(answer) for the generic and
 * Math.Find branches, the stored value (must be a string) for choice/qa/summary. */
static int gold_content(const struct scb_task_ops *task, const struct scb_turn *t, size_t ti, char **out,
                        struct scb_ctx *ctx)
{
    if (task->family == SCB_FAM_CHOICE || task->family == SCB_FAM_QA || task->family == SCB_FAM_SUMMARY) {
        if (!cJSON_IsString(t->answer))
            return scb_err(ctx, SCB_E_FORMAT, "%s turn %zu: the answer must be a string to be the "
                           "previous assistant message", task->name, ti);
    }
    return scb_prompt_pystr(t->answer, out, ctx);
}

static int encode_into(const struct scb_token_encoder *e, const char *text, size_t len, int add_special,
                       long L, int32_t **ids, size_t *n, size_t *n_full, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    int32_t *raw = NULL;
    size_t nraw = 0;
    *ids = NULL;
    *n = *n_full = 0;
    if (!e) return SCB_OK;
    rc = e->encode(e->user, text, len, add_special, &raw, &nraw, ctx);
    if (rc < 0) { scb_err_prefix(ctx, "tokenizer: "); return rc; }
    *n_full = nraw;
    if (add_special) {  /* only the first prompt is truncated (§5.1) */
        rc = scb_prompt_truncate_middle(raw, nraw, L, ids, n, ctx);
        scb_free(raw);
        return rc;
    }
    *ids = raw;
    *n = nraw;
    return SCB_OK;
}

static int build_multi_turn(struct scb_turn_plan *plan, const struct scb_task_ops *task,
                            const struct scb_session *s, size_t nt, const char *context,
                            char **prefixes, const struct scb_chat_renderer *r, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_prompt_opts *o = &plan->opts;
    char *user = NULL, *rendered = NULL, *sys = NULL, *gold = NULL, *tmp = NULL;
    struct fill f;

    /* P[0] */
    memset(&f, 0, sizeof f);
    SCB_TRY(fill_turn(&f, task, &s->turns[0], 0, ctx));
    fill_add(&f, "context", context);
    if (task->family == SCB_FAM_MF) fill_add(&f, "prefix", prefixes[0]);
    SCB_TRY(scb_prompt_format(task->first_template, f.keys, f.vals, f.n, &user, ctx));
    if (o->use_chat_template) {
        struct scb_chat_msg m = {"user", user};
        SCB_TRY(render1(r, &m, 1, 1, &plan->turns[0].prompt, ctx));
        scb_free(user);
    } else {
        plan->turns[0].prompt = user;
    }
    user = NULL;

    if (o->use_chat_template && nt > 1) {
        /* SYS: with the generation prompt under golden context, without it otherwise */
        struct scb_chat_msg m = {"system", ""};
        SCB_TRY(render1(r, &m, 1, o->golden_context ? 1 : 0, &sys, ctx));
    }
    for (size_t i = 1; i < nt; i++) {
        const struct scb_turn *t = &s->turns[i];
        memset(&f, 0, sizeof f);
        SCB_TRY(fill_turn(&f, task, t, i, ctx));
        if (o->use_chat_template) {
            /* Math.Find chat follow-ups use the prefix of the LAST turn (§4.3 quirk) */
            if (task->family == SCB_FAM_MF) fill_add(&f, "prefix", prefixes[nt - 1]);
            SCB_TRY(scb_prompt_format(task->follow_template, f.keys, f.vals, f.n, &user, ctx));
            if (o->golden_context) {
                SCB_TRY(gold_content(task, &s->turns[i - 1], i - 1, &gold, ctx));
                struct scb_chat_msg m[3] = {{"system", ""}, {"assistant", gold}, {"user", user}};
                SCB_TRY(render1(r, m, 3, 1, &rendered, ctx));
            } else {
                struct scb_chat_msg m = {"user", user};
                SCB_TRY(render1(r, &m, 1, 1, &rendered, ctx));
            }
            SCB_TRY(scb_prompt_replace_all(rendered, sys, "", &tmp, ctx));
            if (task->follow_prime) {
                struct scb_buf b = {0};
                if (scb_buf_puts(&b, tmp) < 0 || scb_buf_puts(&b, task->follow_prime) < 0) {
                    scb_buf_fini(&b);
                    rc = nomem(ctx);
                    goto out;
                }
                scb_free(tmp);
                tmp = scb_buf_steal(&b);
            }
            plan->turns[i].prompt = tmp;
            tmp = NULL;
        } else {
            if (task->family == SCB_FAM_MF) fill_add(&f, "prefix", prefixes[i]);  /* per-turn prefix */
            if (o->golden_context) {
                SCB_TRY(scb_prompt_pystr(s->turns[i - 1].answer, &gold, ctx));  /* "{pre_ans}".format */
                fill_add(&f, "pre_ans", gold);
                SCB_TRY(scb_prompt_format(task->follow_text_template, f.keys, f.vals, f.n,
                                          &plan->turns[i].prompt, ctx));
            } else {
                SCB_TRY(scb_prompt_format(task->follow_template, f.keys, f.vals, f.n,
                                          &plan->turns[i].prompt, ctx));
            }
        }
        scb_free(user); user = NULL;
        scb_free(rendered); rendered = NULL;
        scb_free(gold); gold = NULL;
    }
out:
    scb_free(user);
    scb_free(rendered);
    scb_free(sys);
    scb_free(gold);
    scb_free(tmp);
    return rc;
}

static int build_multi_request(struct scb_turn_plan *plan, const struct scb_task_ops *task,
                               const struct scb_session *s, size_t nt, const char *context,
                               char **prefixes, const struct scb_chat_renderer *r, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_prompt_opts *o = &plan->opts;
    char *part = NULL, *rendered = NULL, *with_sep = NULL;
    struct fill f;

    memset(&f, 0, sizeof f);
    fill_add(&f, "context", context);
    /* Math.Find quirk: the context part's {prefix} is the raw first-turn input (§4.4) */
    if (task->family == SCB_FAM_MF) {
        if (!s->turns[0].input) { rc = scb_err(ctx, SCB_E_FORMAT, "turn 0 has no input"); goto out; }
        fill_add(&f, "prefix", s->turns[0].input);
    }
    SCB_TRY(scb_prompt_format(task->context_template, f.keys, f.vals, f.n, &part, ctx));
    if (o->use_chat_template) {
        struct scb_buf b = {0};
        if (scb_buf_puts(&b, part) < 0 || scb_buf_puts(&b, SCB_SEP_DELIMITER) < 0) {
            scb_buf_fini(&b);
            rc = nomem(ctx);
            goto out;
        }
        with_sep = scb_buf_steal(&b);
        struct scb_chat_msg m = {"user", with_sep};
        SCB_TRY(render1(r, &m, 1, 1, &rendered, ctx));
        SCB_TRY(scb_prompt_split_index(rendered, SCB_SEP_DELIMITER, 0, &plan->context_prompt, ctx));
        scb_free(part);
        scb_free(with_sep); with_sep = NULL;
        scb_free(rendered); rendered = NULL;
    } else {
        plan->context_prompt = part;
    }
    part = NULL;
    plan->context_prompt_len = strlen(plan->context_prompt);

    for (size_t i = 0; i < nt; i++) {
        memset(&f, 0, sizeof f);
        SCB_TRY(fill_turn(&f, task, &s->turns[i], i, ctx));
        if (task->family == SCB_FAM_MF) fill_add(&f, "prefix", prefixes[i]);
        SCB_TRY(scb_prompt_format(task->query_template, f.keys, f.vals, f.n, &part, ctx));
        if (o->use_chat_template) {
            struct scb_buf b = {0};
            if (scb_buf_puts(&b, SCB_SEP_DELIMITER) < 0 || scb_buf_puts(&b, part) < 0) {
                scb_buf_fini(&b);
                rc = nomem(ctx);
                goto out;
            }
            with_sep = scb_buf_steal(&b);
            struct scb_chat_msg m[2] = {{"system", ""}, {"user", with_sep}};
            SCB_TRY(render1(r, m, 2, 1, &rendered, ctx));
            SCB_TRY(scb_prompt_split_index(rendered, SCB_SEP_DELIMITER, 1, &plan->turns[i].prompt, ctx));
            scb_free(part);
            scb_free(with_sep); with_sep = NULL;
            scb_free(rendered); rendered = NULL;
        } else {
            plan->turns[i].prompt = part;
        }
        part = NULL;
    }
out:
    scb_free(part);
    scb_free(rendered);
    scb_free(with_sep);
    return rc;
}

int scb_prompt_plan_build(struct scb_turn_plan *plan, const struct scb_task_ops *task,
                          const struct scb_session *s, const struct scb_prompt_opts *opts,
                          const struct scb_chat_renderer *renderer,
                          const struct scb_token_encoder *encoder, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *context_owned = NULL;
    char **prefixes = NULL;
    memset(plan, 0, sizeof *plan);
    if (!task || !s || !opts) return scb_err(ctx, SCB_E_INVAL, "prompt plan: missing task, session or options");
    if (task->abi != SCB_TASK_ABI) return scb_err(ctx, SCB_E_INVAL, "task %s: ABI %u, expected %u",
                                                  task->name, task->abi, SCB_TASK_ABI);
    if (opts->use_chat_template && (!renderer || !renderer->render))
        return scb_err(ctx, SCB_E_INVAL, "prompt plan: the chat template is on but no renderer was given");
    plan->task = task;
    plan->opts = *opts;
    if (plan->opts.mode == SCB_MODE_MULTI_REQUEST) plan->opts.golden_context = 1; /* no effect in scdq */

    size_t nt = s->n_turns;
    if (opts->turn_cut && opts->turn_cut < nt) nt = opts->turn_cut;
    if (nt == 0) { rc = scb_err(ctx, SCB_E_FORMAT, "no turns"); goto out; }
    plan->max_turn_size = opts->max_turn_size ? opts->max_turn_size : nt;
    SCB_TRY(scb_task_input_budget(task, opts->max_seq_length, plan->max_turn_size,
                                  opts->mode == SCB_MODE_MULTI_REQUEST, &plan->input_budget, ctx));

    const char *context = s->context;
    if (!context) {
        if (!s->context_ints && s->n_context_ints) {
            rc = scb_err(ctx, SCB_E_FORMAT, "no context");
            goto out;
        }
        if (!s->context_ints && task->family != SCB_FAM_MF) {
            rc = scb_err(ctx, SCB_E_FORMAT, "no context");
            goto out;
        }
        SCB_TRY(scb_prompt_int_list(s->context_ints, s->n_context_ints, &context_owned, ctx));
        context = context_owned;
    }

    plan->turns = scb_calloc(nt, sizeof *plan->turns);
    if (!plan->turns) { rc = nomem(ctx); goto out; }
    plan->n_turns = nt;
    for (size_t i = 0; i < nt; i++) {
        struct scb_plan_turn *pt = &plan->turns[i];
        const struct scb_turn *t = &s->turns[i];
        SCB_TRY(scb_task_max_new_tokens(task, t->task, opts->max_seq_length, &pt->max_new_tokens, ctx));
        const struct scb_subtask *st = NULL;
        for (size_t k = 0; k < task->n_subtasks; k++)
            if (task->n_subtasks == 1 || (t->task && !strcmp(task->subtasks[k].name, t->task)))
                st = &task->subtasks[k];
        pt->subtask = st ? st->name : task->name;
        pt->scorer = st ? st->scorer : NULL;
        rc = scb_prompt_ground_truth(task, t, &pt->ground_truth, ctx);
        if (rc < 0) { scb_err_prefix(ctx, "turn %zu: ", i); goto out; }
    }

    if (task->family == SCB_FAM_MF) {
        prefixes = scb_calloc(nt, sizeof *prefixes);
        if (!prefixes) { rc = nomem(ctx); goto out; }
        for (size_t i = 0; i < nt; i++) {
            if (!s->turns[i].input) { rc = scb_err(ctx, SCB_E_FORMAT, "turn %zu has no input", i); goto out; }
            SCB_TRY(scb_prompt_mf_prefix(s->turns[i].input, &prefixes[i], ctx));
        }
    }

    if (opts->mode == SCB_MODE_MULTI_REQUEST)
        rc = build_multi_request(plan, task, s, nt, context, prefixes, renderer, ctx);
    else
        rc = build_multi_turn(plan, task, s, nt, context, prefixes, renderer, ctx);
    if (rc < 0) goto out;

    /* token ids: the first prompt with specials + truncation, the rest without */
    if (opts->mode == SCB_MODE_MULTI_REQUEST) {
        SCB_TRY(encode_into(encoder, plan->context_prompt, plan->context_prompt_len, 1, plan->input_budget,
                            &plan->context_ids, &plan->n_context_ids, &plan->n_context_ids_full, ctx));
    }
    for (size_t i = 0; i < nt; i++) {
        struct scb_plan_turn *pt = &plan->turns[i];
        pt->prompt_len = strlen(pt->prompt);
        int first = opts->mode == SCB_MODE_MULTI_TURN && i == 0;
        SCB_TRY(encode_into(encoder, pt->prompt, pt->prompt_len, first, plan->input_budget, &pt->ids,
                            &pt->n_ids, &pt->n_ids_full, ctx));
    }
out:
    if (prefixes)
        for (size_t i = 0; i < nt; i++) scb_free(prefixes[i]);
    scb_free(prefixes);
    scb_free(context_owned);
    if (rc < 0) {
        if (rc != SCB_E_NOMEM) scb_err_prefix(ctx, "%s session %ld: ", task->name, s->index);
        scb_prompt_plan_fini(plan);
    }
    return rc;
}

void scb_prompt_plan_fini(struct scb_turn_plan *plan)
{
    if (!plan) return;
    for (size_t i = 0; i < plan->n_turns; i++) {
        scb_free(plan->turns[i].prompt);
        scb_free(plan->turns[i].ids);
        cJSON_Delete(plan->turns[i].ground_truth);
    }
    scb_free(plan->turns);
    scb_free(plan->context_prompt);
    scb_free(plan->context_ids);
    memset(plan, 0, sizeof *plan);
}
