/* recorder.c — run rows, per-session transactions and resume (see recorder.h). */
#include "results/recorder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "scb_config.h"

struct scb_recorder {
    struct scb_db *db;
};

static const char *const run_status_names[] = {"running", "finished", "failed", "interrupted"};

const char *scb_run_status_str(int status)
{
    if (status < 0 || status > SCB_RUN_INTERRUPTED) return NULL;
    return run_status_names[status];
}

void scb_turn_row_init(struct scb_turn_row *r)
{
    memset(r, 0, sizeof *r);
    r->prompt_tokens = r->cached_tokens = r->generated_tokens = -1;
    r->prefill_ms = r->ttft_ms = r->decode_ms = -1;
    r->kv_entries = r->kv_bytes_logical = r->kv_bytes_physical = -1;
    r->decode_bytes_per_step = r->prefill_density = -1;
    r->peak_host_bytes = r->peak_device_bytes = -1;
}

void scb_bench_row_init(struct scb_bench_row *b)
{
    memset(b, 0, sizeof *b);
    b->p10_ms = b->p90_ms = -1;
    b->repeats = -1;
    b->tflops = b->gbps = b->peak_tflops = b->peak_gbps = -1;
}

/* ---- binding helpers: negative measurements and NULL strings become SQL NULL ---------- */
static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}
static void bind_i64_opt(sqlite3_stmt *st, int i, int64_t v)
{
    if (v >= 0) sqlite3_bind_int64(st, i, v);
    else sqlite3_bind_null(st, i);
}
static void bind_dbl_opt(sqlite3_stmt *st, int i, double v)
{
    if (v >= 0) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i);
}

/* Canonical mode name, or NULL. */
static const char *mode_name(const char *m)
{
    if (!m) return NULL;
    if (!strcmp(m, "multi_turn") || !strcmp(m, "multi-turn")) return "multi_turn";
    if (!strcmp(m, "multi_request") || !strcmp(m, "multi-request") || !strcmp(m, "scdq"))
        return "multi_request";
    return NULL;
}

/* ---- open/close ------------------------------------------------------------------------- */
int scb_recorder_open(struct scb_recorder **out, const char *db_path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_recorder *rec = NULL;
    *out = NULL;
    rec = scb_calloc(1, sizeof *rec);
    if (!rec) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    SCB_TRY(scb_db_open(&rec->db, db_path, SCB_DB_READWRITE, ctx));
    *out = rec;
    rec = NULL;
out:
    scb_recorder_close(rec);
    return rc;
}

void scb_recorder_close(struct scb_recorder *rec)
{
    if (!rec) return;
    scb_db_close(rec->db);
    scb_free(rec);
}

struct scb_db *scb_recorder_db(struct scb_recorder *rec) { return rec ? rec->db : NULL; }

/* ---- configuration key ------------------------------------------------------------------ */
static int cmp_child(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(x->string ? x->string : "", y->string ? y->string : "");
}

/* Serialize j with object keys sorted and no whitespace. */
static int canon_json(const cJSON *j, struct scb_buf *b)
{
    int rc = SCB_OK;
    const cJSON **kids = NULL;
    char *leaf = NULL;
    if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
        int obj = cJSON_IsObject(j);
        size_t n = 0, i = 0;
        for (const cJSON *c = j->child; c; c = c->next) n++;
        kids = scb_malloc((n ? n : 1) * sizeof *kids);
        if (!kids) { rc = SCB_E_NOMEM; goto out; }
        for (const cJSON *c = j->child; c; c = c->next) kids[i++] = c;
        if (obj) qsort(kids, n, sizeof *kids, cmp_child);
        SCB_TRY(scb_buf_putc(b, obj ? '{' : '['));
        for (i = 0; i < n; i++) {
            if (i) SCB_TRY(scb_buf_putc(b, ','));
            if (obj) {
                cJSON *key = cJSON_CreateString(kids[i]->string ? kids[i]->string : "");
                leaf = key ? cJSON_PrintUnformatted(key) : NULL;
                cJSON_Delete(key);
                if (!leaf) { rc = SCB_E_NOMEM; goto out; }
                SCB_TRY(scb_buf_puts(b, leaf));
                cJSON_free(leaf);
                leaf = NULL;
                SCB_TRY(scb_buf_putc(b, ':'));
            }
            SCB_TRY(canon_json(kids[i], b));
        }
        SCB_TRY(scb_buf_putc(b, obj ? '}' : ']'));
    } else {
        /* cJSON_PrintUnformatted prints an item's value without its key. */
        leaf = cJSON_PrintUnformatted(j);
        if (!leaf) { rc = SCB_E_NOMEM; goto out; }
        SCB_TRY(scb_buf_puts(b, leaf));
    }
out:
    if (leaf) cJSON_free(leaf);
    scb_free(kids);
    return rc;
}

static int key_field(struct scb_buf *b, const char *name, const char *v)
{
    /* name=<len>:<value>; so that no two different field lists serialize alike */
    if (!v) return scb_buf_printf(b, "%s=-;", name);
    return scb_buf_printf(b, "%s=%zu:%s;", name, strlen(v), v);
}

int scb_recorder_config_key(const struct scb_run_info *info, char out[25], struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    cJSON *j = NULL;
    struct scb_buf b = {0};
    out[0] = '\0';
    if (!info || !info->config_json)
        return scb_err(ctx, SCB_E_INVAL, "run info: the configuration JSON is missing");
    j = cJSON_ParseWithOpts(info->config_json, NULL, 1);
    if (!j) {
        const char *e = cJSON_GetErrorPtr();
        rc = scb_err(ctx, SCB_E_FORMAT, "run info: the configuration is not valid JSON (error at byte %zu)",
                     e && e >= info->config_json ? (size_t)(e - info->config_json) : (size_t)0);
        goto out;
    }
    if (!cJSON_IsObject(j)) {
        rc = scb_err(ctx, SCB_E_FORMAT, "run info: the configuration must be a JSON object");
        goto out;
    }
    rc = canon_json(j, &b);
    if (rc == SCB_OK) rc = key_field(&b, "|model", info->model_path);
    if (rc == SCB_OK) rc = key_field(&b, "model_hash", info->model_hash);
    if (rc == SCB_OK) rc = key_field(&b, "tokenizer_hash", info->tokenizer_hash);
    if (rc == SCB_OK) rc = key_field(&b, "dataset", info->dataset_path);
    if (rc == SCB_OK) rc = key_field(&b, "dataset_hash", info->dataset_hash);
    if (rc == SCB_OK) rc = key_field(&b, "scorer", info->scorer);
    if (rc == SCB_OK)
        rc = scb_buf_printf(&b, "seed=%lld;max_seq_len=%lld;", (long long)info->seed,
                            (long long)(info->max_seq_len > 0 ? info->max_seq_len : 0));
    if (rc < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    snprintf(out, 25, "fnv1a64:%016llx",
             (unsigned long long)scb_hash64(b.data, b.len, SCB_HASH64_INIT));
out:
    cJSON_Delete(j);
    scb_buf_fini(&b);
    return rc;
}

/* ---- runs ------------------------------------------------------------------------------- */
int scb_recorder_begin_run(struct scb_recorder *rec, const struct scb_run_info *info,
                           int64_t *run_id, int *resumed, struct scb_ctx *ctx)
{
    int rc = SCB_OK, in_tx = 0;
    sqlite3_stmt *st = NULL;
    char key[25];
    char host[256];
    struct scb_db *db = rec->db;
    *run_id = 0;
    *resumed = 0;
    SCB_TRY(scb_recorder_config_key(info, key, ctx));
    SCB_TRY(scb_db_begin(db, ctx));
    in_tx = 1;

    int64_t found = 0;
    if (!info->force_new) {
        SCB_TRY(scb_db_prepare(db, "SELECT id FROM runs WHERE config_key = ?1 ORDER BY id DESC LIMIT 1",
                               &st, ctx));
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        int s = sqlite3_step(st);
        if (s == SQLITE_ROW) found = sqlite3_column_int64(st, 0);
        else if (s != SQLITE_DONE) { rc = scb_db_error(db, "looking for a run to resume", ctx); goto out; }
        sqlite3_finalize(st);
        st = NULL;
    }
    if (found) {
        SCB_TRY(scb_db_prepare(db, "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, "
                               "resume_count = resume_count + 1, "
                               "resumed_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE id = ?1", &st, ctx));
        sqlite3_bind_int64(st, 1, found);
        if (sqlite3_step(st) != SQLITE_DONE) { rc = scb_db_error(db, "resuming a run", ctx); goto out; }
        *run_id = found;
        *resumed = 1;
    } else {
        const char *h = info->host;
        if (!h) {
            if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
            host[sizeof host - 1] = '\0';
            h = host;
        }
        SCB_TRY(scb_db_prepare(db,
            "INSERT INTO runs (config_key, scbench_version, git_rev, build_options, host, device, "
            "driver_version, cuda_version, backend, model_path, model_hash, tokenizer_hash, dataset_path, "
            "dataset_hash, seed, max_seq_len, scorer, config) VALUES "
            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)", &st, ctx));
        bind_text(st, 1, key);
        bind_text(st, 2, SCB_VERSION);
        bind_text(st, 3, SCB_GIT_REV);
        bind_text(st, 4, SCB_BUILD_OPTIONS);
        bind_text(st, 5, h);
        bind_text(st, 6, info->device);
        bind_text(st, 7, info->driver_version);
        bind_text(st, 8, info->cuda_version);
        bind_text(st, 9, info->backend);
        bind_text(st, 10, info->model_path);
        bind_text(st, 11, info->model_hash);
        bind_text(st, 12, info->tokenizer_hash);
        bind_text(st, 13, info->dataset_path);
        bind_text(st, 14, info->dataset_hash);
        sqlite3_bind_int64(st, 15, info->seed);
        bind_i64_opt(st, 16, info->max_seq_len > 0 ? info->max_seq_len : -1);
        bind_text(st, 17, info->scorer);
        bind_text(st, 18, info->config_json);
        if (sqlite3_step(st) != SQLITE_DONE) { rc = scb_db_error(db, "inserting a run", ctx); goto out; }
        *run_id = sqlite3_last_insert_rowid(db->h);
    }
    SCB_TRY(scb_db_commit(db, ctx));
    in_tx = 0;
out:
    sqlite3_finalize(st);
    if (in_tx) scb_db_rollback(db);
    if (rc < 0) { *run_id = 0; *resumed = 0; }
    return rc;
}

int scb_recorder_finish_run(struct scb_recorder *rec, int64_t run_id, int status,
                            const char *error_text, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    const char *s = scb_run_status_str(status);
    if (!s) return scb_err(ctx, SCB_E_INVAL, "finish run %lld: unknown status %d", (long long)run_id, status);
    SCB_TRY(scb_db_prepare(rec->db,
        "UPDATE runs SET status = ?2, error = ?3, finished_at = CASE WHEN ?2 = 'running' THEN NULL "
        "ELSE strftime('%Y-%m-%dT%H:%M:%fZ','now') END WHERE id = ?1", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, s, -1, SQLITE_STATIC);
    bind_text(st, 3, error_text);
    if (sqlite3_step(st) != SQLITE_DONE) { rc = scb_db_error(rec->db, "finishing a run", ctx); goto out; }
    if (sqlite3_changes(rec->db->h) != 1)
        rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: no run with id %lld", rec->db->path,
                     (long long)run_id);
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- sessions --------------------------------------------------------------------------- */
int scb_recorder_session_done(struct scb_recorder *rec, int64_t run_id, const char *method,
                              const char *task, const char *mode, int64_t session, int *done,
                              struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    char *t = NULL;
    const char *m = mode_name(mode);
    *done = 0;
    if (!method || !task || !m)
        return scb_err(ctx, SCB_E_INVAL, "session lookup: method, task and mode (multi_turn|multi_request) "
                       "are required (mode '%s')", mode ? mode : "(null)");
    t = scb_db_task_name(task);
    if (!t) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    SCB_TRY(scb_db_prepare(rec->db, "SELECT 1 FROM sessions WHERE run_id = ?1 AND method = ?2 AND task = ?3 "
                           "AND mode = ?4 AND session = ?5", &st, ctx));
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, method);
    bind_text(st, 3, t);
    bind_text(st, 4, m);
    sqlite3_bind_int64(st, 5, session);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *done = 1;
    else if (s != SQLITE_DONE) rc = scb_db_error(rec->db, "looking up a session", ctx);
out:
    sqlite3_finalize(st);
    scb_free(t);
    return rc;
}

static int check_rows(const struct scb_turn_row *rows, size_t n, struct scb_ctx *ctx)
{
    if (!rows || n == 0) return scb_err(ctx, SCB_E_INVAL, "write session: no turns");
    const struct scb_turn_row *r0 = &rows[0];
    if (!r0->method || !r0->task || !mode_name(r0->mode))
        return scb_err(ctx, SCB_E_INVAL, "write session: method, task and mode (multi_turn|multi_request) "
                       "are required (mode '%s')", r0->mode ? r0->mode : "(null)");
    if (r0->session < 0) return scb_err(ctx, SCB_E_INVAL, "write session: negative session index");
    for (size_t i = 0; i < n; i++) {
        const struct scb_turn_row *r = &rows[i];
        if (!r->method || strcmp(r->method, r0->method) || !r->task || strcmp(r->task, r0->task) ||
            mode_name(r->mode) != mode_name(r0->mode) || r->session != r0->session)
            return scb_err(ctx, SCB_E_INVAL, "write session: row %zu belongs to another session than row 0 "
                           "(all rows of one call share method, task, mode and session)", i);
        if (r->turn < 0) return scb_err(ctx, SCB_E_INVAL, "write session: row %zu has a negative turn index", i);
        if (!r->prediction) return scb_err(ctx, SCB_E_INVAL, "write session: row %zu has no prediction", i);
        if (!r->gold_json) return scb_err(ctx, SCB_E_INVAL, "write session: row %zu has no gold answer", i);
        cJSON *g = cJSON_ParseWithOpts(r->gold_json, NULL, 1);
        if (!g) return scb_err(ctx, SCB_E_FORMAT, "write session: row %zu: gold answer is not valid JSON: %.80s",
                               i, r->gold_json);
        cJSON_Delete(g);
        if (!(r->score >= 0.0 && r->score <= 1.0))
            return scb_err(ctx, SCB_E_INVAL, "write session: row %zu: score %g is outside [0, 1]", i, r->score);
        for (size_t k = 0; k < i; k++)
            if (rows[k].turn == r->turn)
                return scb_err(ctx, SCB_E_INVAL, "write session: turn %lld appears twice (rows %zu and %zu)",
                               (long long)r->turn, k, i);
    }
    return SCB_OK;
}

int scb_recorder_write_session(struct scb_recorder *rec, int64_t run_id,
                               const struct scb_turn_row *rows, size_t n, struct scb_ctx *ctx)
{
    int rc = SCB_OK, in_tx = 0;
    sqlite3_stmt *ss = NULL, *ts = NULL;
    char *task = NULL, *sub = NULL;
    struct scb_db *db = rec->db;
    SCB_TRY(check_rows(rows, n, ctx));
    const char *mode = mode_name(rows[0].mode);
    task = scb_db_task_name(rows[0].task);
    if (!task) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }

    SCB_TRY(scb_db_begin(db, ctx));
    in_tx = 1;
    SCB_TRY(scb_db_prepare(db, "INSERT INTO sessions (run_id, method, task, mode, session, n_turns) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)", &ss, ctx));
    sqlite3_bind_int64(ss, 1, run_id);
    bind_text(ss, 2, rows[0].method);
    bind_text(ss, 3, task);
    bind_text(ss, 4, mode);
    sqlite3_bind_int64(ss, 5, rows[0].session);
    sqlite3_bind_int64(ss, 6, (int64_t)n);
    if (sqlite3_step(ss) != SQLITE_DONE) {
        int ec = sqlite3_extended_errcode(db->h);
        if (ec == SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = scb_err(ctx, SCB_E_INVAL, "results database %s: run %lld already holds session %lld of %s/%s/%s",
                         db->path, (long long)run_id, (long long)rows[0].session, rows[0].method, task, mode);
        else if (ec == SQLITE_CONSTRAINT_FOREIGNKEY)
            rc = scb_err(ctx, SCB_E_NOTFOUND, "results database %s: no run with id %lld", db->path,
                         (long long)run_id);
        else
            rc = scb_db_error(db, "inserting a session", ctx);
        goto out;
    }
    SCB_TRY(scb_db_prepare(db,
        "INSERT INTO turns (run_id, method, task, mode, session, turn, sub_task, lang, repo, func_name, "
        "prompt_tokens, cached_tokens, generated_tokens, prediction, gold, score, scorer, prefill_ms, ttft_ms, "
        "decode_ms, kv_entries, kv_bytes_logical, kv_bytes_physical, decode_bytes_per_step, prefill_density, "
        "peak_host_bytes, peak_device_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
        "?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)", &ts, ctx));
    for (size_t i = 0; i < n; i++) {
        const struct scb_turn_row *r = &rows[i];
        scb_free(sub);
        sub = NULL;
        if (r->sub_task && !(sub = scb_db_task_name(r->sub_task))) {
            rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
            goto out;
        }
        sqlite3_reset(ts);
        sqlite3_clear_bindings(ts);
        sqlite3_bind_int64(ts, 1, run_id);
        bind_text(ts, 2, r->method);
        bind_text(ts, 3, task);
        bind_text(ts, 4, mode);
        sqlite3_bind_int64(ts, 5, r->session);
        sqlite3_bind_int64(ts, 6, r->turn);
        bind_text(ts, 7, sub);
        bind_text(ts, 8, r->lang);
        bind_text(ts, 9, r->repo);
        bind_text(ts, 10, r->func_name);
        bind_i64_opt(ts, 11, r->prompt_tokens);
        bind_i64_opt(ts, 12, r->cached_tokens);
        bind_i64_opt(ts, 13, r->generated_tokens);
        bind_text(ts, 14, r->prediction);
        bind_text(ts, 15, r->gold_json);
        sqlite3_bind_double(ts, 16, r->score);
        bind_text(ts, 17, r->scorer);
        bind_dbl_opt(ts, 18, r->prefill_ms);
        bind_dbl_opt(ts, 19, r->ttft_ms);
        bind_dbl_opt(ts, 20, r->decode_ms);
        bind_i64_opt(ts, 21, r->kv_entries);
        bind_i64_opt(ts, 22, r->kv_bytes_logical);
        bind_i64_opt(ts, 23, r->kv_bytes_physical);
        bind_dbl_opt(ts, 24, r->decode_bytes_per_step);
        bind_dbl_opt(ts, 25, r->prefill_density);
        bind_i64_opt(ts, 26, r->peak_host_bytes);
        bind_i64_opt(ts, 27, r->peak_device_bytes);
        if (sqlite3_step(ts) != SQLITE_DONE) {
            rc = scb_db_error(db, "inserting a turn", ctx);
            scb_err_prefix(ctx, "session %lld turn %lld: ", (long long)r->session, (long long)r->turn);
            goto out;
        }
    }
    SCB_TRY(scb_db_commit(db, ctx));
    in_tx = 0;
out:
    sqlite3_finalize(ss);
    sqlite3_finalize(ts);
    if (in_tx) scb_db_rollback(db);
    scb_free(task);
    scb_free(sub);
    return rc;
}

/* ---- bench ------------------------------------------------------------------------------ */
int scb_recorder_add_bench(struct scb_recorder *rec, int64_t run_id, const struct scb_bench_row *b,
                           int64_t *bench_id, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    if (bench_id) *bench_id = 0;
    if (!b || !b->name || !*b->name) return scb_err(ctx, SCB_E_INVAL, "bench row: a name is required");
    if (!(b->median_ms >= 0)) return scb_err(ctx, SCB_E_INVAL, "bench row %s: median_ms must be >= 0", b->name);
    SCB_TRY(scb_db_prepare(rec->db,
        "INSERT INTO bench (run_id, name, shape, dtype, device, backend, median_ms, p10_ms, p90_ms, repeats, "
        "tflops, gbps, peak_tflops, peak_gbps, git_rev, extra) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
        "?10, ?11, ?12, ?13, ?14, ?15, ?16)", &st, ctx));
    if (run_id > 0) sqlite3_bind_int64(st, 1, run_id);
    else sqlite3_bind_null(st, 1);
    bind_text(st, 2, b->name);
    bind_text(st, 3, b->shape_json);
    bind_text(st, 4, b->dtype);
    bind_text(st, 5, b->device);
    bind_text(st, 6, b->backend);
    sqlite3_bind_double(st, 7, b->median_ms);
    bind_dbl_opt(st, 8, b->p10_ms);
    bind_dbl_opt(st, 9, b->p90_ms);
    bind_i64_opt(st, 10, b->repeats);
    bind_dbl_opt(st, 11, b->tflops);
    bind_dbl_opt(st, 12, b->gbps);
    bind_dbl_opt(st, 13, b->peak_tflops);
    bind_dbl_opt(st, 14, b->peak_gbps);
    bind_text(st, 15, SCB_GIT_REV);
    bind_text(st, 16, b->extra_json);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = scb_db_error(rec->db, "inserting a bench row", ctx);
        scb_err_prefix(ctx, "bench %s: ", b->name);
        goto out;
    }
    if (bench_id) *bench_id = sqlite3_last_insert_rowid(rec->db->h);
out:
    sqlite3_finalize(st);
    return rc;
}
