/* export.c — SCBench prediction JSONL, summary lines, CSV and the Python original's result
 * folder layout, read from the results database (see export.h). */
#include "results/export.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "kernels/alloc.h"

/* ---- Python-style JSON ------------------------------------------------------------------ */
int scb_export_py_json_string(struct scb_buf *b, const char *s, size_t n)
{
    int rc = SCB_OK;
    const unsigned char *p = (const unsigned char *)s;
    SCB_TRY(scb_buf_putc(b, '"'));
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) {
            switch (c) {
            case '"':  SCB_TRY(scb_buf_puts(b, "\\\"")); break;
            case '\\': SCB_TRY(scb_buf_puts(b, "\\\\")); break;
            case '\n': SCB_TRY(scb_buf_puts(b, "\\n")); break;
            case '\r': SCB_TRY(scb_buf_puts(b, "\\r")); break;
            case '\t': SCB_TRY(scb_buf_puts(b, "\\t")); break;
            case '\b': SCB_TRY(scb_buf_puts(b, "\\b")); break;
            case '\f': SCB_TRY(scb_buf_puts(b, "\\f")); break;
            default:
                if (c < 0x20) SCB_TRY(scb_buf_printf(b, "\\u%04x", c));
                else SCB_TRY(scb_buf_putc(b, (char)c));
            }
            i++;
            continue;
        }
        uint32_t cp;
        int len = scb_utf8_decode(p + i, n - i, &cp);
        if (cp == 0xFFFD && len == 1) SCB_TRY(scb_buf_append(b, "\xEF\xBF\xBD", 3));
        else SCB_TRY(scb_buf_append(b, p + i, (size_t)len));
        i += (size_t)len;
    }
    SCB_TRY(scb_buf_putc(b, '"'));
out:
    return rc;
}

static int hex4(const char *s, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* Decode the JSON string starting after its opening quote at *pp into raw UTF-8 (appended
 * to tmp); *pp ends after the closing quote. The text was validated by cJSON already. */
static int decode_json_string(const char **pp, struct scb_buf *tmp)
{
    int rc = SCB_OK;
    const char *p = *pp;
    char enc[4];
    while (*p && *p != '"') {
        if (*p != '\\') { SCB_TRY(scb_buf_putc(tmp, *p)); p++; continue; }
        p++;
        char e = *p++;
        switch (e) {
        case 'b': SCB_TRY(scb_buf_putc(tmp, '\b')); break;
        case 'f': SCB_TRY(scb_buf_putc(tmp, '\f')); break;
        case 'n': SCB_TRY(scb_buf_putc(tmp, '\n')); break;
        case 'r': SCB_TRY(scb_buf_putc(tmp, '\r')); break;
        case 't': SCB_TRY(scb_buf_putc(tmp, '\t')); break;
        case 'u': {
            uint32_t u = 0, lo = 0;
            if (hex4(p, &u) < 0) { rc = SCB_E_FORMAT; goto out; }
            p += 4;
            if (u >= 0xD800 && u <= 0xDBFF && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, &lo) == 0 &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if (u >= 0xD800 && u <= 0xDFFF) {
                u = 0xFFFD;  /* a lone surrogate cannot be written as UTF-8 */
            }
            SCB_TRY(scb_buf_append(tmp, enc, (size_t)scb_utf8_encode(u, enc)));
            break;
        }
        default: SCB_TRY(scb_buf_putc(tmp, e)); break;  /* \" \\ \/ */
        }
    }
    if (*p == '"') p++;
    *pp = p;
out:
    return rc;
}

/* A JSON number as Python prints it after json.loads: an integer stays as written (minus a
 * "-0" sign), anything with a fraction or exponent becomes a float in repr() form: the
 * shortest digits that round-trip, fixed notation for 1e-4 <= |x| < 1e16 (with ".0" when
 * integral), else d.ddde+XX. */
static int py_number(struct scb_buf *b, const char *s, size_t n)
{
    char tok[64], buf[40];
    if (n >= sizeof tok) return scb_buf_append(b, s, n);   /* long integers: verbatim */
    memcpy(tok, s, n);
    tok[n] = '\0';
    if (!strpbrk(tok, ".eE")) {
        if (!strcmp(tok, "-0")) return scb_buf_putc(b, '0');
        return scb_buf_puts(b, tok);
    }
    double v = strtod(tok, NULL);
    if (v == 0) return scb_buf_puts(b, signbit(v) ? "-0.0" : "0.0");
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* buf = [-]d[.ddd]e<sign>XX */
    int neg = buf[0] == '-';
    char digits[24];
    size_t nd = 0;
    const char *q = buf + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int exp10 = atoi(q + 1), decpt = exp10 + 1;
    int rc = neg ? scb_buf_putc(b, '-') : SCB_OK;
    if (rc < 0) return rc;
    if (decpt <= -4 || decpt > 16) {
        rc = scb_buf_putc(b, digits[0]);
        if (rc == SCB_OK && nd > 1) rc = scb_buf_printf(b, ".%s", digits + 1);
        if (rc == SCB_OK) rc = scb_buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (decpt <= 0) {
        rc = scb_buf_puts(b, "0.");
        for (int i = 0; i < -decpt && rc == SCB_OK; i++) rc = scb_buf_putc(b, '0');
        if (rc == SCB_OK) rc = scb_buf_puts(b, digits);
    } else if ((size_t)decpt >= nd) {
        rc = scb_buf_puts(b, digits);
        for (size_t i = nd; i < (size_t)decpt && rc == SCB_OK; i++) rc = scb_buf_putc(b, '0');
        if (rc == SCB_OK) rc = scb_buf_puts(b, ".0");
    } else {
        rc = scb_buf_append(b, digits, (size_t)decpt);
        if (rc == SCB_OK) rc = scb_buf_putc(b, '.');
        if (rc == SCB_OK) rc = scb_buf_puts(b, digits + decpt);
    }
    return rc;
}

int scb_export_py_json_value(struct scb_buf *b, const char *json, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf tmp = {0};
    cJSON *j = json ? cJSON_ParseWithOpts(json, NULL, 1) : NULL;
    if (!j) return scb_err(ctx, SCB_E_FORMAT, "not valid JSON: %.80s", json ? json : "(null)");
    cJSON_Delete(j);
    const char *p = json;
    while (*p) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { p++; continue; }
        if (c == '"') {
            p++;
            tmp.len = 0;
            rc = decode_json_string(&p, &tmp);
            if (rc == SCB_OK) rc = scb_export_py_json_string(b, tmp.data ? tmp.data : "", tmp.len);
        } else if (c == ',') { rc = scb_buf_puts(b, ", "); p++; }
        else if (c == ':') { rc = scb_buf_puts(b, ": "); p++; }
        else if (c == '[' || c == ']' || c == '{' || c == '}') { rc = scb_buf_putc(b, c); p++; }
        else {
            const char *s = p;
            while (*p && strchr("0123456789+-.eEtruefalsn", *p)) p++;
            if (p == s) { rc = SCB_E_FORMAT; break; }
            if (*s == '-' || (*s >= '0' && *s <= '9')) rc = py_number(b, s, (size_t)(p - s));
            else rc = scb_buf_append(b, s, (size_t)(p - s));   /* true, false, null */
        }
        if (rc < 0) break;
    }
    if (rc == SCB_E_FORMAT) rc = scb_err(ctx, rc, "cannot re-emit JSON: %.80s", json);
    else if (rc < 0) rc = scb_err(ctx, rc, "out of memory");
    scb_buf_fini(&tmp);
    return rc;
}

/* ---- helpers ---------------------------------------------------------------------------- */
static const char *mode_name(const char *m)
{
    if (!m) return NULL;
    if (!strcmp(m, "multi_turn") || !strcmp(m, "multi-turn")) return "multi_turn";
    if (!strcmp(m, "multi_request") || !strcmp(m, "multi-request") || !strcmp(m, "scdq")) return "multi_request";
    return NULL;
}

static int write_buf(FILE *f, const struct scb_buf *b, struct scb_ctx *ctx)
{
    if (b->len && fwrite(b->data, 1, b->len, f) != b->len)
        return scb_err(ctx, SCB_E_IO, "writing the export: %s", strerror(errno));
    return SCB_OK;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(st, i);
}

int scb_export_latest_run(struct scb_db *db, int64_t *run_id, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    *run_id = 0;
    SCB_TRY(scb_db_prepare(db, "SELECT max(id) FROM runs", &st, ctx));
    if (sqlite3_step(st) != SQLITE_ROW) { rc = scb_db_error(db, "finding the newest run", ctx); goto out; }
    if (sqlite3_column_type(st, 0) == SQLITE_NULL)
        rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: holds no run", db->path);
    else
        *run_id = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- predictions ------------------------------------------------------------------------ */
int scb_export_predictions(struct scb_db *db, int64_t run_id, const char *method, const char *task,
                           const char *mode, FILE *f, size_t *n_lines, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    struct scb_buf b = {0};
    char *t = NULL;
    size_t n = 0;
    const char *m = mode_name(mode);
    if (n_lines) *n_lines = 0;
    if (!method || !task || !m)
        return scb_err(ctx, SCB_E_INVAL, "export predictions: method, task and mode (multi_turn|multi_request) "
                       "are required");
    t = scb_db_task_name(task);
    if (!t) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    int is_repoqa = !strcmp(t, "scbench_repoqa"), is_rkv = !strcmp(t, "scbench_repoqa_and_kv");
    SCB_TRY(scb_db_prepare(db,
        "SELECT session, turn, prediction, gold, sub_task, lang, repo, func_name FROM turns "
        "WHERE run_id = ?1 AND method = ?2 AND task = ?3 AND mode = ?4 ORDER BY session, turn", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, method, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, t, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, m, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *pred = (const char *)sqlite3_column_text(st, 2);
        int pred_len = sqlite3_column_bytes(st, 2);
        const char *gold = col_text(st, 3), *sub = col_text(st, 4);
        const char *fields[3] = {col_text(st, 5), col_text(st, 6), col_text(st, 7)};
        static const char *const names[3] = {"lang", "repo", "func_name"};
        b.len = 0;
        int e = scb_buf_printf(&b, "{\"id\": %lld, \"turn_idx\": %lld, \"prediction\": ",
                               (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1));
        if (e == SCB_OK) e = scb_export_py_json_string(&b, pred ? pred : "", pred ? (size_t)pred_len : 0);
        if (e == SCB_OK) e = scb_buf_puts(&b, ", \"ground_truth\": ");
        if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
        rc = scb_export_py_json_value(&b, gold, ctx);
        if (rc < 0) {
            scb_err_prefix(ctx, "results database %s: run %lld %s session %lld turn %lld: gold: ", db->path,
                           (long long)run_id, t, (long long)sqlite3_column_int64(st, 0),
                           (long long)sqlite3_column_int64(st, 1));
            goto out;
        }
        if (sub) {
            e = scb_buf_puts(&b, ", \"task\": ");
            if (e == SCB_OK) e = scb_export_py_json_string(&b, sub, strlen(sub));
        }
        /* §8.1: repoqa: lang, repo, func_name; repoqa_and_kv: lang, repo, and func_name on
         * its repoqa turns. */
        int nf = is_repoqa ? 3 : is_rkv ? (sub && !strcmp(sub, "scbench_repoqa") ? 3 : 2) : 0;
        for (int k = 0; k < nf && e == SCB_OK; k++) {
            e = scb_buf_printf(&b, ", \"%s\": ", names[k]);
            if (e == SCB_OK)
                e = fields[k] ? scb_export_py_json_string(&b, fields[k], strlen(fields[k])) : scb_buf_puts(&b, "null");
        }
        if (e == SCB_OK) e = scb_buf_puts(&b, "}\n");
        if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
        SCB_TRY(write_buf(f, &b, ctx));
        n++;
    }
    if (s != SQLITE_DONE) { rc = scb_db_error(db, "reading turns", ctx); goto out; }
    if (n_lines) *n_lines = n;
out:
    sqlite3_finalize(st);
    scb_buf_fini(&b);
    scb_free(t);
    return rc;
}

/* ---- summary lines ---------------------------------------------------------------------- */
/* Sub-task pair of a Mix task in SCBench's print order, or NULL. */
static const char *const *mix_subtasks(const char *task)
{
    static const char *const swn[2] = {"scbench_summary", "scbench_passkey"};
    static const char *const rkv[2] = {"scbench_repoqa", "scbench_kv"};
    if (!strcmp(task, "scbench_summary_with_needles")) return swn;
    if (!strcmp(task, "scbench_repoqa_and_kv")) return rkv;
    return NULL;
}

struct acc { double sum; long n; };   /* Python: sum(scores) / len(scores), left to right */

struct turn_group {
    int64_t    turn;
    struct acc a[2];   /* [0]: the task's score (or Mix sub-task 1), [1]: Mix sub-task 2 */
};

static int put_score(struct scb_buf *b, const struct acc *a)
{
    double v = a->n ? a->sum / (double)a->n : 0.0;
    return scb_buf_printf(b, "%.3f", v * 100);
}

int scb_export_summary_line(struct scb_db *db, int64_t run_id, const char *method, const char *task,
                            const char *mode, const char *tag, FILE *f, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    struct scb_buf b = {0};
    struct turn_group *g = NULL;
    size_t ng = 0, capg = 0;
    char *t = NULL;
    int64_t max_seq_len = -1;
    const char *m = mode_name(mode);
    if (!method || !task || !m || !tag)
        return scb_err(ctx, SCB_E_INVAL, "summary line: method, task, mode and tag are required");
    t = scb_db_task_name(task);
    if (!t) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    const char *const *mix = mix_subtasks(t);
    int scdq = !strcmp(m, "multi_request");

    SCB_TRY(scb_db_prepare(db, "SELECT max_seq_len FROM runs WHERE id = ?1", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: no run with id %lld", db->path, (long long)run_id);
        goto out;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL) max_seq_len = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;

    SCB_TRY(scb_db_prepare(db, "SELECT turn, score, sub_task FROM turns WHERE run_id = ?1 AND method = ?2 "
                           "AND task = ?3 AND mode = ?4 ORDER BY session, turn", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, method, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, t, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, m, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t turn = scdq ? 0 : sqlite3_column_int64(st, 0);   /* scdq: one pooled group */
        double score = sqlite3_column_double(st, 1);
        const char *sub = col_text(st, 2);
        size_t k = 0;
        while (k < ng && g[k].turn != turn) k++;   /* groups in order of first appearance */
        if (k == ng) {
            if (ng == capg) {
                size_t nc = capg ? 2 * capg : 16;
                struct turn_group *ngp = scb_realloc(g, nc * sizeof *g);
                if (!ngp) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
                g = ngp;
                capg = nc;
            }
            memset(&g[ng], 0, sizeof g[ng]);
            g[ng++].turn = turn;
        }
        int slot = 0;
        if (mix) {
            if (sub && !strcmp(sub, mix[0])) slot = 0;
            else if (sub && !strcmp(sub, mix[1])) slot = 1;
            else continue;   /* SCBench ignores records of other sub-tasks */
        }
        g[k].a[slot].sum += score;
        g[k].a[slot].n++;
    }
    if (s != SQLITE_DONE) { rc = scb_db_error(db, "reading turns", ctx); goto out; }
    if (ng == 0) {
        rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: run %lld has no %s turns of %s for method %s",
                     db->path, (long long)run_id, m, t, method);
        goto out;
    }
    int e = scb_buf_printf(&b, "%s,%s,", tag, t);
    if (e == SCB_OK && scdq) e = scb_buf_puts(&b, "scdq_mode,");
    if (e == SCB_OK && max_seq_len >= 0) e = scb_buf_printf(&b, "%lld,", (long long)max_seq_len);
    for (size_t k = 0; k < ng && e == SCB_OK; k++) {
        if (k) e = scb_buf_putc(&b, ',');
        if (e == SCB_OK) e = put_score(&b, &g[k].a[0]);
        if (e == SCB_OK && mix) {
            e = scb_buf_putc(&b, ',');
            if (e == SCB_OK) e = put_score(&b, &g[k].a[1]);
        }
    }
    if (e == SCB_OK) e = scb_buf_putc(&b, '\n');
    if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
    SCB_TRY(write_buf(f, &b, ctx));
out:
    sqlite3_finalize(st);
    scb_buf_fini(&b);
    scb_free(g);
    scb_free(t);
    return rc;
}

/* ---- CSV -------------------------------------------------------------------------------- */
static int csv_field(struct scb_buf *b, const char *s)
{
    if (!s) return SCB_OK;
    if (!strpbrk(s, ",\"\r\n")) return scb_buf_puts(b, s);
    int rc = scb_buf_putc(b, '"');
    for (const char *p = s; *p && rc == SCB_OK; p++)
        rc = *p == '"' ? scb_buf_puts(b, "\"\"") : scb_buf_putc(b, *p);
    if (rc == SCB_OK) rc = scb_buf_putc(b, '"');
    return rc;
}

int scb_export_csv(struct scb_db *db, const char *table, int64_t run_id, FILE *f, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    struct scb_buf b = {0};
    const char *sql;
    if (!table) table = "turns";
    /* Whole statements per table: the table name is never pasted into SQL. */
    if (!strcmp(table, "turns"))
        sql = "SELECT * FROM turns WHERE ?1 <= 0 OR run_id = ?1 "
              "ORDER BY run_id, method, task, mode, session, turn";
    else if (!strcmp(table, "runs"))
        sql = "SELECT * FROM runs WHERE ?1 <= 0 OR id = ?1 ORDER BY id";
    else if (!strcmp(table, "bench"))
        sql = "SELECT * FROM bench WHERE ?1 <= 0 OR run_id = ?1 ORDER BY id";
    else
        return scb_err(ctx, SCB_E_INVAL, "CSV export: unknown table '%s' (turns, runs, bench)", table);
    SCB_TRY(scb_db_prepare(db, sql, &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    int nc = sqlite3_column_count(st), e = SCB_OK;
    for (int i = 0; i < nc && e == SCB_OK; i++) {
        if (i) e = scb_buf_putc(&b, ',');
        if (e == SCB_OK) e = csv_field(&b, sqlite3_column_name(st, i));
    }
    if (e == SCB_OK) e = scb_buf_puts(&b, "\r\n");
    if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
    SCB_TRY(write_buf(f, &b, ctx));
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        b.len = 0;
        for (int i = 0; i < nc && e == SCB_OK; i++) {
            if (i) e = scb_buf_putc(&b, ',');
            if (e == SCB_OK) e = csv_field(&b, col_text(st, i));
        }
        if (e == SCB_OK) e = scb_buf_puts(&b, "\r\n");
        if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
        SCB_TRY(write_buf(f, &b, ctx));
    }
    if (s != SQLITE_DONE) rc = scb_db_error(db, "reading rows for CSV", ctx);
out:
    sqlite3_finalize(st);
    scb_buf_fini(&b);
    return rc;
}

/* ---- result folder ---------------------------------------------------------------------- */
static int mkdir_p(const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *p = scb_strdup(path);
    if (!p) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    for (char *q = p + 1; ; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                rc = scb_err(ctx, SCB_E_IO, "%s: cannot create directory: %s", p, strerror(errno));
                break;
            }
            *q = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (rc == SCB_OK && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        rc = scb_err(ctx, SCB_E_IO, "%s: not a directory", path);
    scb_free(p);
    return rc;
}

static int sanitize_name(struct scb_buf *b, const char *s)
{
    int rc = SCB_OK;
    for (const char *p = s; *p && rc == SCB_OK; p++) {
        char c = *p;
        if (c == ':') c = '_';
        else if (c == ',') c = '-';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   strchr("._+=-", c)))
            c = '_';
        rc = scb_buf_putc(b, c);
    }
    return rc;
}

static char *model_base(const char *model_path)
{
    if (!model_path || !*model_path) return scb_strdup("model");
    size_t n = strlen(model_path);
    while (n > 1 && model_path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && model_path[s - 1] != '/') s--;
    return scb_strndup(model_path + s, n - s);
}

static int open_out(const char *path, FILE **f, struct scb_ctx *ctx)
{
    *f = fopen(path, "w");
    if (!*f) return scb_err(ctx, SCB_E_IO, "%s: cannot create: %s", path, strerror(errno));
    return SCB_OK;
}

static int close_out(const char *path, FILE *f, struct scb_ctx *ctx)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return scb_err(ctx, SCB_E_IO, "%s: write failed: %s", path, strerror(errno));
    return SCB_OK;
}

int scb_export_scbench_dir(struct scb_db *db, int64_t run_id, const char *out_dir, FILE *log,
                           struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL, *tt = NULL;
    char *base = NULL;
    struct scb_buf dir = {0}, path = {0}, tag = {0};
    FILE *f = NULL, *sf = NULL;
    char *spath = NULL;

    SCB_TRY(scb_db_prepare(db, "SELECT model_path FROM runs WHERE id = ?1", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: no run with id %lld", db->path, (long long)run_id);
        goto out;
    }
    base = model_base(col_text(st, 0));
    if (!base) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    sqlite3_finalize(st);
    st = NULL;
    SCB_TRY(mkdir_p(out_dir, ctx));

    SCB_TRY(scb_db_prepare(db, "SELECT DISTINCT method, mode FROM turns WHERE run_id = ?1 ORDER BY method, mode",
                           &st, ctx));
    SCB_TRY(scb_db_prepare(db, "SELECT t.task FROM (SELECT DISTINCT task FROM turns WHERE run_id = ?1 AND "
                           "method = ?2 AND mode = ?3) t LEFT JOIN task_category c ON c.task = t.task "
                           "ORDER BY c.cat_order IS NULL, c.cat_order, t.task", &tt, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *method = col_text(st, 0), *mode = col_text(st, 1);
        const char *suffix = !strcmp(mode, "multi_request") ? "_scdq" : "_multi_turn";
        int e;
        dir.len = tag.len = 0;
        e = scb_buf_printf(&dir, "%s/%s_", out_dir, base);
        if (e == SCB_OK) e = sanitize_name(&dir, method);
        if (e == SCB_OK) e = scb_buf_printf(&tag, "%s_", base);
        if (e == SCB_OK) e = sanitize_name(&tag, method);
        if (e == SCB_OK) e = scb_buf_puts(&tag, suffix);
        if (e < 0) { rc = scb_err(ctx, e, "out of memory"); goto out; }
        SCB_TRY(mkdir_p(dir.data, ctx));

        path.len = 0;
        if (scb_buf_printf(&path, "%s/%s_summary.txt", dir.data, tag.data) < 0) {
            rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
            goto out;
        }
        spath = scb_buf_steal(&path);
        SCB_TRY(open_out(spath, &sf, ctx));

        sqlite3_reset(tt);
        sqlite3_bind_int64(tt, 1, run_id);
        sqlite3_bind_text(tt, 2, method, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(tt, 3, mode, -1, SQLITE_TRANSIENT);
        int s2;
        while ((s2 = sqlite3_step(tt)) == SQLITE_ROW) {
            const char *task = col_text(tt, 0);
            path.len = 0;
            if (scb_buf_printf(&path, "%s/prediction_%s%s.jsonl", dir.data, task, suffix) < 0) {
                rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
                goto out;
            }
            SCB_TRY(open_out(path.data, &f, ctx));
            size_t n = 0;
            rc = scb_export_predictions(db, run_id, method, task, mode, f, &n, ctx);
            int rc2 = close_out(path.data, f, ctx);
            f = NULL;
            if (rc < 0) goto out;
            SCB_TRY(rc2);
            if (log) fprintf(log, "%s (%zu records)\n", path.data, n);
            SCB_TRY(scb_export_summary_line(db, run_id, method, task, mode, tag.data, sf, ctx));
        }
        if (s2 != SQLITE_DONE) { rc = scb_db_error(db, "listing tasks", ctx); goto out; }
        rc = close_out(spath, sf, ctx);
        sf = NULL;
        SCB_TRY(rc);
        if (log) fprintf(log, "%s\n", spath);
        scb_free(spath);
        spath = NULL;
    }
    if (s != SQLITE_DONE) rc = scb_db_error(db, "listing methods and modes", ctx);
out:
    if (f) fclose(f);
    if (sf) fclose(sf);
    sqlite3_finalize(st);
    sqlite3_finalize(tt);
    scb_free(base);
    scb_free(spath);
    scb_buf_fini(&dir);
    scb_buf_fini(&path);
    scb_buf_fini(&tag);
    return rc;
}
