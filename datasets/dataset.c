/* dataset.c — streaming SCBench JSONL(.gz) reader, record -> session conversion, session ->
 * JSON line, file-name resolution and Python str(list) formatting (see dataset.h).
 * Lines are assembled from 64 KiB gzread chunks into a growable buffer; only one line is
 * held at a time. Schema checks go through one function (session_from_json) whether the
 * caller wants the first problem (reader) or all of them (scbench data check). */
#include "datasets/dataset.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "kernels/alloc.h"

#define CHUNK (64 * 1024)

struct scb_dataset {
    char          *path;      /* owned */
    gzFile         gz;
    unsigned char *chunk;     /* (CHUNK,) raw bytes from gzread */
    size_t         cpos, clen;
    struct scb_buf line;      /* current line, without the newline */
    long           line_no;   /* 1-based number of the last line read */
    long           n_records; /* non-blank lines seen (row index of the next one) */
    int            eof;
    int            fatal;     /* sticky stream error code (< 0) or 0 */
    char           fatal_msg[SCB_ERRMSG_MAX];
    scb_dataset_issue_fn issue_fn;
    void          *issue_user;
};

int scb_dataset_open(struct scb_dataset **out, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_dataset *r = NULL;
    *out = NULL;
    if (!path) return scb_err(ctx, SCB_E_INVAL, "dataset path is NULL");
    r = scb_calloc(1, sizeof *r);
    if (!r) return scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path);
    r->path = scb_strdup(path);
    r->chunk = scb_malloc(CHUNK);
    if (!r->path || !r->chunk) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
    errno = 0;
    r->gz = gzopen(path, "rb");
    if (!r->gz) {
        rc = scb_err(ctx, SCB_E_IO, "%s: %s", path, errno ? strerror(errno) : "cannot open");
        goto out;
    }
    gzbuffer(r->gz, 256 * 1024);
    *out = r;
    r = NULL;
out:
    scb_dataset_close(r);
    return rc;
}

void scb_dataset_close(struct scb_dataset *r)
{
    if (!r) return;
    if (r->gz) gzclose(r->gz);
    scb_free(r->path);
    scb_free(r->chunk);
    scb_buf_fini(&r->line);
    scb_free(r);
}

void scb_dataset_set_issue_fn(struct scb_dataset *r, scb_dataset_issue_fn fn, void *user)
{
    r->issue_fn = fn;
    r->issue_user = user;
}

int scb_dataset_failed(const struct scb_dataset *r) { return r->fatal != 0; }
const char *scb_dataset_path(const struct scb_dataset *r) { return r->path; }
long scb_dataset_line(const struct scb_dataset *r) { return r->line_no; }

static int set_fatal(struct scb_dataset *r, struct scb_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int set_fatal(struct scb_dataset *r, struct scb_ctx *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->fatal_msg, sizeof r->fatal_msg, fmt, ap);
    va_end(ap);
    r->fatal = code;
    return scb_err(ctx, code, "%s", r->fatal_msg);
}

/* Refill the chunk. Returns bytes available (> 0), 0 at a clean end, < 0 on error. */
static int refill(struct scb_dataset *r, struct scb_ctx *ctx)
{
    int n = gzread(r->gz, r->chunk, CHUNK);
    if (n < 0) {
        int errnum = 0;
        const char *m = gzerror(r->gz, &errnum);
        if (errnum == Z_ERRNO)
            return set_fatal(r, ctx, SCB_E_IO, "%s: read error: %s", r->path, strerror(errno));
        return set_fatal(r, ctx, SCB_E_FORMAT, "%s: corrupt gzip stream (%s)", r->path, m ? m : "?");
    }
    if (n == 0) {
        int errnum = 0;
        const char *m = gzerror(r->gz, &errnum);
        if (errnum == Z_BUF_ERROR)
            return set_fatal(r, ctx, SCB_E_FORMAT, "%s: truncated gzip stream (%s)", r->path,
                             m ? m : "unexpected end of file");
        if (errnum != Z_OK)
            return set_fatal(r, ctx, SCB_E_FORMAT, "%s: corrupt gzip stream (%s)", r->path, m ? m : "?");
        r->eof = 1;
        return 0;
    }
    r->cpos = 0;
    r->clen = (size_t)n;
    return n;
}

/* Read one line into r->line. Returns 1 with a line, 0 at the end, < 0 on error. */
static int read_line(struct scb_dataset *r, struct scb_ctx *ctx)
{
    r->line.len = 0;
    if (r->line.data) r->line.data[0] = 0;
    int got = 0;
    for (;;) {
        if (r->cpos == r->clen) {
            if (r->eof) break;
            int n = refill(r, ctx);
            if (n < 0) return n;
            if (n == 0) break;
        }
        const unsigned char *p = r->chunk + r->cpos;
        size_t avail = r->clen - r->cpos;
        const unsigned char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (scb_buf_append(&r->line, p, take))
            return scb_err(ctx, SCB_E_NOMEM, "%s:%ld: out of memory for a line of %zu bytes", r->path,
                           r->line_no + 1, r->line.len + take);
        got = 1;
        r->cpos += take;
        if (nl) { r->cpos++; break; }
    }
    if (!got) return 0;
    r->line_no++;
    if (r->line.len && r->line.data[r->line.len - 1] == '\r') r->line.data[--r->line.len] = 0;
    if (!r->line.data && scb_buf_append(&r->line, "", 0))
        return scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", r->path);
    return 1;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* ---- record -> session ------------------------------------------------------------------ */

struct conv {
    const char *file;
    long line;
    scb_dataset_issue_fn fn;
    void *user;
    struct scb_ctx *ctx;
    int n_problems;
};

static void problem(struct conv *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct conv *c, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->fn) c->fn(c->user, c->file, c->line, field, msg);
    if (c->n_problems == 0) {
        if (field && *field)
            scb_err(c->ctx, SCB_E_FORMAT, "%s:%ld: field '%s' %s", c->file, c->line, field, msg);
        else
            scb_err(c->ctx, SCB_E_FORMAT, "%s:%ld: %s", c->file, c->line, msg);
    }
    c->n_problems++;
}

static const char *json_type_name(const cJSON *v)
{
    if (!v) return "absent";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "invalid";
}

/* Integral JSON number that fits int64 exactly (|v| <= 2^53). */
static int json_int(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return 0;
    *out = (int64_t)d;
    return 1;
}

/* Optional string field: copies it into *dst. Returns SCB_E_NOMEM only. */
static int opt_string(struct conv *c, const cJSON *obj, const char *key, const char *field, char **dst)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return SCB_OK;
    if (!cJSON_IsString(v)) {
        problem(c, field, "must be a string, got %s", json_type_name(v));
        return SCB_OK;
    }
    *dst = scb_strdup(v->valuestring);
    return *dst ? SCB_OK : SCB_E_NOMEM;
}

static int convert_turn(struct conv *c, const cJSON *t, size_t i, struct scb_turn *out)
{
    char f[96];
    if (!cJSON_IsObject(t)) {
        snprintf(f, sizeof f, "multi_turns[%zu]", i);
        problem(c, f, "must be an object, got %s", json_type_name(t));
        return SCB_OK;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(t, "input");
    snprintf(f, sizeof f, "multi_turns[%zu].input", i);
    if (!in) problem(c, f, "missing");
    else if (!cJSON_IsString(in)) problem(c, f, "must be a string, got %s", json_type_name(in));
    else if (!(out->input = scb_strdup(in->valuestring))) return SCB_E_NOMEM;

    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(t, "answer");
    snprintf(f, sizeof f, "multi_turns[%zu].answer", i);
    if (!ans) problem(c, f, "missing");
    else if (!cJSON_IsString(ans) && !cJSON_IsNumber(ans) && !cJSON_IsArray(ans))
        problem(c, f, "must be a string, a number or a list, got %s", json_type_name(ans));
    else {
        int ok = 1;
        if (cJSON_IsArray(ans)) {
            size_t k = 0;
            for (const cJSON *e = ans->child; e; e = e->next, k++)
                if (!cJSON_IsString(e) && !cJSON_IsNumber(e)) {
                    snprintf(f, sizeof f, "multi_turns[%zu].answer[%zu]", i, k);
                    problem(c, f, "must be a string or a number, got %s", json_type_name(e));
                    ok = 0;
                }
        }
        if (ok && !(out->answer = cJSON_Duplicate(ans, 1))) return SCB_E_NOMEM;
    }

    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(t, "options");
    snprintf(f, sizeof f, "multi_turns[%zu].options", i);
    if (opt && !cJSON_IsNull(opt)) {
        if (!cJSON_IsArray(opt)) problem(c, f, "must be a list of strings, got %s", json_type_name(opt));
        else {
            int ok = 1;
            size_t k = 0;
            for (const cJSON *e = opt->child; e; e = e->next, k++)
                if (!cJSON_IsString(e)) {
                    snprintf(f, sizeof f, "multi_turns[%zu].options[%zu]", i, k);
                    problem(c, f, "must be a string, got %s", json_type_name(e));
                    ok = 0;
                }
            if (ok && !(out->options = cJSON_Duplicate(opt, 1))) return SCB_E_NOMEM;
        }
    }
    int rc;
    snprintf(f, sizeof f, "multi_turns[%zu].task", i);
    if ((rc = opt_string(c, t, "task", f, &out->task))) return rc;
    snprintf(f, sizeof f, "multi_turns[%zu].name", i);
    if ((rc = opt_string(c, t, "name", f, &out->name))) return rc;
    return SCB_OK;
}

static int convert(struct conv *c, const cJSON *obj, struct scb_session *s)
{
    int rc = SCB_OK;
    if (!cJSON_IsObject(obj)) {
        problem(c, "", "line is not a JSON object (got %s)", json_type_name(obj));
        return SCB_OK;
    }
    s->id = -1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    if (id && !cJSON_IsNull(id)) {
        int64_t v;
        if (json_int(id, &v)) s->id = v;
        else problem(c, "id", "must be an integer, got %s", cJSON_IsNumber(id) ? "a non-integer number"
                                                                                : json_type_name(id));
    }

    const cJSON *ctxv = cJSON_GetObjectItemCaseSensitive(obj, "context");
    const char *ctx_field = "context";
    if (!ctxv) { ctxv = cJSON_GetObjectItemCaseSensitive(obj, "input"); ctx_field = "input"; }
    if (!ctxv) problem(c, "context", "missing (and no 'input' fallback)");
    else if (cJSON_IsString(ctxv)) {
        if (!(s->context = scb_strdup(ctxv->valuestring))) return SCB_E_NOMEM;
    } else if (cJSON_IsArray(ctxv) && !strcmp(ctx_field, "context")) {
        size_t n = (size_t)cJSON_GetArraySize(ctxv), k = 0, bad = 0;
        s->context_ints = scb_malloc((n ? n : 1) * sizeof *s->context_ints);
        if (!s->context_ints) return SCB_E_NOMEM;
        for (const cJSON *e = ctxv->child; e; e = e->next, k++) {
            int64_t v = 0;
            if (!json_int(e, &v)) {
                if (bad++ == 0) {
                    char f[64];
                    snprintf(f, sizeof f, "context[%zu]", k);
                    problem(c, f, "must be an integer, got %s", cJSON_IsNumber(e) ? "a non-integer number"
                                                                                   : json_type_name(e));
                }
            }
            s->context_ints[k] = v;
        }
        if (bad > 1) problem(c, "context", "has %zu non-integer elements in all", bad);
        s->n_context_ints = n;
    } else {
        problem(c, ctx_field, "must be a string or a list of integers, got %s", json_type_name(ctxv));
    }

    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(obj, "multi_turns");
    if (!mt) problem(c, "multi_turns", "missing");
    else if (!cJSON_IsArray(mt)) problem(c, "multi_turns", "must be a list, got %s", json_type_name(mt));
    else {
        size_t n = (size_t)cJSON_GetArraySize(mt);
        if (n == 0) problem(c, "multi_turns", "is an empty list");
        else {
            s->turns = scb_calloc(n, sizeof *s->turns);
            if (!s->turns) return SCB_E_NOMEM;
            s->n_turns = n;
            size_t i = 0;
            for (const cJSON *t = mt->child; t; t = t->next, i++)
                if ((rc = convert_turn(c, t, i, &s->turns[i]))) return rc;
        }
    }
    if ((rc = opt_string(c, obj, "lang", "lang", &s->lang))) return rc;
    if ((rc = opt_string(c, obj, "repo", "repo", &s->repo))) return rc;
    if ((rc = opt_string(c, obj, "task", "task", &s->task))) return rc;
    return SCB_OK;
}

int scb_session_from_json(const cJSON *obj, const char *file, long line, struct scb_session *s,
                          scb_dataset_issue_fn fn, void *user, struct scb_ctx *ctx)
{
    struct conv c = {file ? file : "<json>", line, fn, user, ctx, 0};
    memset(s, 0, sizeof *s);
    int rc = convert(&c, obj, s);
    if (rc == SCB_E_NOMEM) rc = scb_err(ctx, SCB_E_NOMEM, "%s:%ld: out of memory", c.file, line);
    else if (c.n_problems) rc = SCB_E_FORMAT;
    if (rc) scb_session_fini(s);
    return rc;
}

int scb_dataset_next(struct scb_dataset *r, struct scb_session *s, struct scb_ctx *ctx)
{
    memset(s, 0, sizeof *s);
    if (r->fatal) return scb_err(ctx, r->fatal, "%s", r->fatal_msg);
    for (;;) {
        int got = read_line(r, ctx);
        if (got < 0) return got;
        if (got == 0) {
            if (r->n_records == 0)
                return set_fatal(r, ctx, SCB_E_FORMAT, "%s: empty file (no sessions)", r->path);
            return 0;
        }
        if (r->line_no == 1 && r->line.len >= 3 && !memcmp(r->line.data, "\xEF\xBB\xBF", 3)) {
            memmove(r->line.data, r->line.data + 3, r->line.len - 2);   /* UTF-8 BOM */
            r->line.len -= 3;
        }
        if (is_blank(r->line.data, r->line.len)) continue;
        break;
    }
    long index = r->n_records++;
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(r->line.data, r->line.len, &end, 0);
    if (!obj) {
        size_t off = end ? (size_t)(end - r->line.data) : 0;
        if (r->issue_fn) {
            char msg[96];
            snprintf(msg, sizeof msg, "invalid JSON near byte %zu", off);
            r->issue_fn(r->issue_user, r->path, r->line_no, "", msg);
        }
        return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: invalid JSON near byte %zu", r->path, r->line_no, off);
    }
    size_t off = (size_t)(end - r->line.data);
    if (!is_blank(end, r->line.len - off)) {
        cJSON_Delete(obj);
        if (r->issue_fn) {
            char msg[128];
            snprintf(msg, sizeof msg, "invalid JSON near byte %zu (text after the object)", off);
            r->issue_fn(r->issue_user, r->path, r->line_no, "", msg);
        }
        return scb_err(ctx, SCB_E_FORMAT, "%s:%ld: invalid JSON near byte %zu (text after the object)",
                       r->path, r->line_no, off);
    }
    int rc = scb_session_from_json(obj, r->path, r->line_no, s, r->issue_fn, r->issue_user, ctx);
    cJSON_Delete(obj);
    if (rc) return rc;
    s->index = index;
    /* Memory: a 10 MB line's buffer is kept for the next line; drop it when it grew huge. */
    if (r->line.cap > (64u << 20)) scb_buf_fini(&r->line);
    return 1;
}

/* ---- session -> JSON ---------------------------------------------------------------------- */

int scb_session_to_json(const struct scb_session *s, struct scb_buf *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *txt = NULL;
    cJSON *o = cJSON_CreateObject(), *mt = NULL;
    if (!o) goto nomem;
    if (!cJSON_AddNumberToObject(o, "id", (double)s->id)) goto nomem;
    if (s->context_ints) {
        cJSON *a = cJSON_AddArrayToObject(o, "context");
        if (!a) goto nomem;
        for (size_t i = 0; i < s->n_context_ints; i++) {
            cJSON *n = cJSON_CreateNumber((double)s->context_ints[i]);
            if (!n || !cJSON_AddItemToArray(a, n)) { cJSON_Delete(n); goto nomem; }
        }
    } else if (!cJSON_AddStringToObject(o, "context", s->context ? s->context : "")) goto nomem;
    if (!(mt = cJSON_AddArrayToObject(o, "multi_turns"))) goto nomem;
    for (size_t i = 0; i < s->n_turns; i++) {
        const struct scb_turn *t = &s->turns[i];
        cJSON *tj = cJSON_CreateObject();
        if (!tj || !cJSON_AddItemToArray(mt, tj)) { cJSON_Delete(tj); goto nomem; }
        if (!cJSON_AddStringToObject(tj, "input", t->input ? t->input : "")) goto nomem;
        cJSON *a = t->answer ? cJSON_Duplicate(t->answer, 1) : cJSON_CreateString("");
        if (!a || !cJSON_AddItemToObject(tj, "answer", a)) { cJSON_Delete(a); goto nomem; }
        if (t->options) {
            cJSON *op = cJSON_Duplicate(t->options, 1);
            if (!op || !cJSON_AddItemToObject(tj, "options", op)) { cJSON_Delete(op); goto nomem; }
        }
        if (t->task && !cJSON_AddStringToObject(tj, "task", t->task)) goto nomem;
        if (t->name && !cJSON_AddStringToObject(tj, "name", t->name)) goto nomem;
    }
    if (s->lang && !cJSON_AddStringToObject(o, "lang", s->lang)) goto nomem;
    if (s->repo && !cJSON_AddStringToObject(o, "repo", s->repo)) goto nomem;
    if (s->task && !cJSON_AddStringToObject(o, "task", s->task)) goto nomem;
    txt = cJSON_PrintUnformatted(o);
    if (!txt) goto nomem;
    if (scb_buf_puts(out, txt)) goto nomem;
    goto out;
nomem:
    rc = scb_err(ctx, SCB_E_NOMEM, "out of memory writing a session as JSON");
out:
    if (txt) cJSON_free(txt);
    cJSON_Delete(o);
    return rc;
}

/* ---- names ---------------------------------------------------------------------------------- */

int scb_dataset_resolve(const char *dir, const char *task, char **path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf tried = {0};
    *path = NULL;
    if (!dir || !task || !*task) return scb_err(ctx, SCB_E_INVAL, "dataset directory or task name missing");
    const char *base = task;
    if (!strncmp(base, "scbench_", 8)) base += 8;
    else if (!strncmp(base, "multi_turn_", 11)) base += 11;
    static const char *const pfx[] = {"scbench_", "multi_turn_"};
    static const char *const ext[] = {".jsonl", ".jsonl.gz"};
    for (int p = 0; p < 2; p++)
        for (int e = 0; e < 2; e++) {
            char name[512];
            snprintf(name, sizeof name, "%s%s%s", pfx[p], base, ext[e]);
            char *full = scb_path_join(dir, name);
            if (!full) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
            if (scb_file_exists(full)) { *path = full; goto out; }
            scb_buf_printf(&tried, "%s%s", tried.len ? ", " : "", name);
            scb_free(full);
        }
    rc = scb_err(ctx, SCB_E_NOTFOUND, "%s: no data file for task '%s' (tried %s)", dir, task,
                 tried.data ? tried.data : "");
out:
    scb_buf_fini(&tried);
    return rc;
}

void scb_dataset_task_from_path(const char *path, char *task, size_t cap)
{
    if (!cap) return;
    task[0] = 0;
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *rest;
    if (!strncmp(b, "scbench_", 8)) rest = b + 8;
    else if (!strncmp(b, "multi_turn_", 11)) rest = b + 11;
    else return;
    const char *dot = strstr(rest, ".jsonl");
    if (!dot || dot == rest) return;
    if (strcmp(dot, ".jsonl") && strcmp(dot, ".jsonl.gz")) return;
    snprintf(task, cap, "scbench_%.*s", (int)(dot - rest), rest);
}

int scb_format_int_list(const int64_t *v, size_t n, struct scb_buf *out)
{
    int rc = scb_buf_putc(out, '[');
    for (size_t i = 0; i < n && !rc; i++)
        rc = scb_buf_printf(out, i ? ", %" PRId64 : "%" PRId64, v[i]);
    if (!rc) rc = scb_buf_putc(out, ']');
    return rc;
}

size_t scb_utf8_length(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) count++;
    return count;
}
