/* db.c — opening the results database, its schema (version 1) and forward migrations, and
 * the statement/transaction helpers (see db.h). The schema text below is the reference for
 * docs/results.md: tables runs, sessions, turns, bench, task_category and the score views. */
#include "results/db.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "kernels/alloc.h"

#define SCB_DB_BUSY_TIMEOUT_MS 10000

/* ---- task categories (spec/scbench.md §2.1) -------------------------------------------- */
struct task_cat {
    const char *task;      /* canonical config name */
    const char *category;
    int         cat_order; /* the paper's column order */
    const char *paper;     /* the paper's short name */
    int         n_sub;     /* 2 for the Mix tasks (two sub-scores), else 1 */
};

static const struct task_cat task_cats[] = {
    {"scbench_kv",                   "String Retrieval",   1, "Retr.KV",            1},
    {"scbench_prefix_suffix",        "String Retrieval",   1, "Retr.Prefix-Suffix", 1},
    {"scbench_vt",                   "String Retrieval",   1, "Retr.MultiHop",      1},
    {"scbench_repoqa",               "Semantic Retrieval", 2, "Code.RepoQA",        1},
    {"scbench_qa_eng",               "Semantic Retrieval", 2, "En.QA",              1},
    {"scbench_qa_chn",               "Semantic Retrieval", 2, "Zh.QA",              1},
    {"scbench_choice_eng",           "Semantic Retrieval", 2, "En.MultiChoice",     1},
    {"scbench_mf",                   "Global Information", 3, "Math.Find",          1},
    {"scbench_many_shot",            "Global Information", 3, "ICL.ManyShot",       1},
    {"scbench_summary",              "Global Information", 3, "En.Sum",             1},
    {"scbench_summary_with_needles", "Multi-tasking",      4, "Mix.Sum+NIAH",       2},
    {"scbench_repoqa_and_kv",        "Multi-tasking",      4, "Mix.RepoQA+KV",      2},
};
#define N_TASK_CATS (sizeof task_cats / sizeof task_cats[0])

char *scb_db_task_name(const char *name)
{
    if (!name) return NULL;
    if (!strncmp(name, "scbench_", 8)) return scb_strdup(name);
    size_t n = strlen(name);
    char *s = scb_malloc(n + 9);
    if (!s) return NULL;
    memcpy(s, "scbench_", 8);
    memcpy(s + 8, name, n + 1);
    return s;
}

const char *scb_db_task_category(const char *task)
{
    if (!task) return NULL;
    const char *t = strncmp(task, "scbench_", 8) ? task : task + 8;
    for (size_t i = 0; i < N_TASK_CATS; i++)
        if (!strcmp(task_cats[i].task + 8, t)) return task_cats[i].category;
    return NULL;
}

/* ---- schema, version 1 ------------------------------------------------------------------ */
static const char schema_v1[] =
    /* One row per benchmark run (one `scbench run` command; a rerun of the same command
     * resumes the same row, see recorder.h). Timestamps are ISO-8601 UTC text. */
    "CREATE TABLE runs (\n"
    "  id              INTEGER PRIMARY KEY,\n"
    "  config_key      TEXT NOT NULL,\n"
    "  status          TEXT NOT NULL DEFAULT 'running'\n"
    "                  CHECK (status IN ('running','finished','failed','interrupted')),\n"
    "  started_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),\n"
    "  finished_at     TEXT,\n"
    "  resumed_at      TEXT,\n"
    "  resume_count    INTEGER NOT NULL DEFAULT 0,\n"
    "  error           TEXT,\n"
    "  scbench_version TEXT,\n"
    "  git_rev         TEXT,\n"
    "  build_options   TEXT,\n"
    "  host            TEXT,\n"
    "  device          TEXT,\n"
    "  driver_version  TEXT,\n"
    "  cuda_version    TEXT,\n"
    "  backend         TEXT,\n"
    "  model_path      TEXT,\n"
    "  model_hash      TEXT,\n"
    "  tokenizer_hash  TEXT,\n"
    "  dataset_path    TEXT,\n"
    "  dataset_hash    TEXT,\n"
    "  seed            INTEGER,\n"
    "  max_seq_len     INTEGER,\n"
    "  scorer          TEXT,\n"
    "  config          TEXT NOT NULL CHECK (json_valid(config))\n"
    ");\n"
    "CREATE INDEX runs_config_key ON runs(config_key);\n"
    /* One row per finished session, written in the same transaction as its turns: the
     * resume marker. */
    "CREATE TABLE sessions (\n"
    "  run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  method      TEXT NOT NULL,\n"
    "  task        TEXT NOT NULL,\n"
    "  mode        TEXT NOT NULL CHECK (mode IN ('multi_turn','multi_request')),\n"
    "  session     INTEGER NOT NULL CHECK (session >= 0),\n"
    "  n_turns     INTEGER NOT NULL,\n"
    "  finished_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),\n"
    "  PRIMARY KEY (run_id, method, task, mode, session)\n"
    ");\n"
    /* One row per scored turn. score is in [0, 1] as SCBench's scorers return it; the views
     * report percent. NULL in a measurement column means "not measured". */
    "CREATE TABLE turns (\n"
    "  id                INTEGER PRIMARY KEY,\n"
    "  run_id            INTEGER NOT NULL,\n"
    "  method            TEXT NOT NULL,\n"
    "  task              TEXT NOT NULL,\n"
    "  mode              TEXT NOT NULL CHECK (mode IN ('multi_turn','multi_request')),\n"
    "  session           INTEGER NOT NULL,\n"
    "  turn              INTEGER NOT NULL CHECK (turn >= 0),\n"
    "  sub_task          TEXT,\n"
    "  lang              TEXT,\n"
    "  repo              TEXT,\n"
    "  func_name         TEXT,\n"
    "  prompt_tokens     INTEGER,\n"
    "  cached_tokens     INTEGER,\n"
    "  generated_tokens  INTEGER,\n"
    "  prediction        TEXT NOT NULL,\n"
    "  gold              TEXT NOT NULL CHECK (json_valid(gold)),\n"
    "  score             REAL NOT NULL,\n"
    "  scorer            TEXT,\n"
    "  prefill_ms        REAL,\n"
    "  ttft_ms           REAL,\n"
    "  decode_ms         REAL,\n"
    "  kv_entries        INTEGER,\n"
    "  kv_bytes_logical  INTEGER,\n"
    "  kv_bytes_physical INTEGER,\n"
    "  decode_bytes_per_step REAL,\n"
    "  prefill_density   REAL,\n"
    "  peak_host_bytes   INTEGER,\n"
    "  peak_device_bytes INTEGER,\n"
    "  UNIQUE (run_id, method, task, mode, session, turn),\n"
    "  FOREIGN KEY (run_id, method, task, mode, session)\n"
    "    REFERENCES sessions(run_id, method, task, mode, session) ON DELETE CASCADE\n"
    ");\n"
    /* Kernel and end-to-end speed measurements (`scbench bench`); run_id may be NULL. */
    "CREATE TABLE bench (\n"
    "  id          INTEGER PRIMARY KEY,\n"
    "  run_id      INTEGER REFERENCES runs(id) ON DELETE CASCADE,\n"
    "  time        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),\n"
    "  name        TEXT NOT NULL,\n"
    "  shape       TEXT CHECK (shape IS NULL OR json_valid(shape)),\n"
    "  dtype       TEXT,\n"
    "  device      TEXT,\n"
    "  backend     TEXT,\n"
    "  median_ms   REAL NOT NULL,\n"
    "  p10_ms      REAL,\n"
    "  p90_ms      REAL,\n"
    "  repeats     INTEGER,\n"
    "  tflops      REAL,\n"
    "  gbps        REAL,\n"
    "  peak_tflops REAL,\n"
    "  peak_gbps   REAL,\n"
    "  git_rev     TEXT,\n"
    "  extra       TEXT CHECK (extra IS NULL OR json_valid(extra))\n"
    ");\n"
    "CREATE TABLE task_category (\n"
    "  task      TEXT PRIMARY KEY,\n"
    "  category  TEXT NOT NULL,\n"
    "  cat_order INTEGER NOT NULL,\n"
    "  paper     TEXT NOT NULL,\n"
    "  n_sub     INTEGER NOT NULL\n"
    ");\n"
    /* Per turn group (SCBench multi-turn scoring: one score per turn index; Mix tasks one per
     * (turn, sub-task)). */
    "CREATE VIEW turn_scores AS\n"
    "  SELECT run_id, method, task, mode, turn, sub_task,\n"
    "         100.0 * AVG(score) AS score, COUNT(*) AS n\n"
    "  FROM turns GROUP BY run_id, method, task, mode, turn, sub_task;\n"
    /* Per sub-score of a task: multi-turn = mean over turn indices of the per-turn scores
     * (a Mix turn without this sub-task does not count); multi-request = all turns pooled,
     * as SCBench scores scdq mode. sub_task is NULL for the ten single-score tasks. */
    "CREATE VIEW subtask_scores AS\n"
    "  SELECT run_id, method, task, mode, sub_task, AVG(score) AS score, SUM(n) AS n,\n"
    "         COUNT(*) AS n_turn_idx\n"
    "  FROM turn_scores WHERE mode = 'multi_turn'\n"
    "  GROUP BY run_id, method, task, mode, sub_task\n"
    "  UNION ALL\n"
    "  SELECT run_id, method, task, mode, sub_task, 100.0 * AVG(score), COUNT(*),\n"
    "         COUNT(DISTINCT turn)\n"
    "  FROM turns WHERE mode = 'multi_request'\n"
    "  GROUP BY run_id, method, task, mode, sub_task;\n"
    /* Per task: the sub-score, or for a Mix task the mean of its sub-scores present. */
    "CREATE VIEW task_scores AS\n"
    "  SELECT s.run_id, s.method, s.task, s.mode, c.category, c.paper,\n"
    "         AVG(s.score) AS score, SUM(s.n) AS n, COUNT(*) AS n_sub\n"
    "  FROM subtask_scores s LEFT JOIN task_category c ON c.task = s.task\n"
    "  GROUP BY s.run_id, s.method, s.task, s.mode;\n"
    /* Per category: mean of its task scores. */
    "CREATE VIEW category_scores AS\n"
    "  SELECT t.run_id, t.method, t.mode, t.category, c.cat_order,\n"
    "         AVG(t.score) AS score, COUNT(*) AS n_tasks, SUM(t.n) AS n\n"
    "  FROM task_scores t JOIN (SELECT DISTINCT category, cat_order FROM task_category) c\n"
    "    ON c.category = t.category\n"
    "  GROUP BY t.run_id, t.method, t.mode, t.category;\n"
    /* Per mode: mean over categories (avg) and over tasks (avg_tasks). */
    "CREATE VIEW mode_scores AS\n"
    "  SELECT c.run_id, c.method, c.mode, AVG(c.score) AS score, COUNT(*) AS n_categories,\n"
    "         (SELECT AVG(t.score) FROM task_scores t WHERE t.run_id = c.run_id\n"
    "            AND t.method = c.method AND t.mode = c.mode) AS avg_tasks,\n"
    "         SUM(c.n_tasks) AS n_tasks, SUM(c.n) AS n\n"
    "  FROM category_scores c GROUP BY c.run_id, c.method, c.mode;\n"
    /* Per task: what the KV-cache lifecycle cost, averaged over its turns. */
    "CREATE VIEW task_costs AS\n"
    "  SELECT run_id, method, task, mode, COUNT(*) AS n,\n"
    "         AVG(prompt_tokens) AS prompt_tokens, AVG(cached_tokens) AS cached_tokens,\n"
    "         AVG(generated_tokens) AS generated_tokens,\n"
    "         AVG(prefill_ms) AS prefill_ms, AVG(ttft_ms) AS ttft_ms, AVG(decode_ms) AS decode_ms,\n"
    "         SUM(decode_ms) / NULLIF(SUM(CASE WHEN decode_ms IS NOT NULL THEN generated_tokens END), 0)\n"
    "           AS decode_ms_per_token,\n"
    "         AVG(kv_entries) AS kv_entries, AVG(kv_bytes_logical) AS kv_bytes_logical,\n"
    "         AVG(kv_bytes_physical) AS kv_bytes_physical,\n"
    "         AVG(decode_bytes_per_step) AS decode_bytes_per_step,\n"
    "         AVG(prefill_density) AS prefill_density,\n"
    "         MAX(peak_host_bytes) AS peak_host_bytes, MAX(peak_device_bytes) AS peak_device_bytes\n"
    "  FROM turns GROUP BY run_id, method, task, mode;\n";

static int fill_task_category(struct scb_db *db, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    SCB_TRY(scb_db_prepare(db, "INSERT INTO task_category(task, category, cat_order, paper, n_sub) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)", &st, ctx));
    for (size_t i = 0; i < N_TASK_CATS; i++) {
        sqlite3_bind_text(st, 1, task_cats[i].task, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, task_cats[i].category, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, task_cats[i].cat_order);
        sqlite3_bind_text(st, 4, task_cats[i].paper, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, task_cats[i].n_sub);
        if (sqlite3_step(st) != SQLITE_DONE) { rc = scb_db_error(db, "filling task_category", ctx); goto out; }
        sqlite3_reset(st);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

/* ---- helpers ---------------------------------------------------------------------------- */
int scb_db_error(struct scb_db *db, const char *what, struct scb_ctx *ctx)
{
    const char *msg = db && db->h ? sqlite3_errmsg(db->h) : "no connection";
    return scb_err(ctx, SCB_E_DB, "results database %s: %s: %s", db && db->path ? db->path : "?",
                   what, msg);
}

int scb_db_exec(struct scb_db *db, const char *sql, struct scb_ctx *ctx)
{
    char *em = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &em) != SQLITE_OK) {
        int rc = scb_err(ctx, SCB_E_DB, "results database %s: %s", db->path, em ? em : sqlite3_errmsg(db->h));
        sqlite3_free(em);
        return rc;
    }
    return SCB_OK;
}

int scb_db_prepare(struct scb_db *db, const char *sql, struct sqlite3_stmt **st, struct scb_ctx *ctx)
{
    *st = NULL;
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return scb_db_error(db, "preparing a statement", ctx);
    }
    return SCB_OK;
}

int scb_db_begin(struct scb_db *db, struct scb_ctx *ctx) { return scb_db_exec(db, "BEGIN IMMEDIATE", ctx); }
int scb_db_commit(struct scb_db *db, struct scb_ctx *ctx) { return scb_db_exec(db, "COMMIT", ctx); }
void scb_db_rollback(struct scb_db *db)
{
    if (db && db->h && !sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static int query_int(struct scb_db *db, const char *sql, int *v, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    sqlite3_stmt *st = NULL;
    SCB_TRY(scb_db_prepare(db, sql, &st, ctx));
    int s = sqlite3_step(st);
    if (s != SQLITE_ROW) { rc = scb_db_error(db, "reading the database header", ctx); goto out; }
    *v = sqlite3_column_int(st, 0);
out:
    sqlite3_finalize(st);
    return rc;
}

int scb_db_schema_version(struct scb_db *db, int *version, struct scb_ctx *ctx)
{
    return query_int(db, "PRAGMA user_version", version, ctx);
}

/* Create or migrate the schema to SCB_DB_SCHEMA_VERSION inside one transaction. */
static int migrate(struct scb_db *db, struct scb_ctx *ctx)
{
    int rc = SCB_OK, version = 0, n_objects = 0, in_tx = 0;
    SCB_TRY(scb_db_begin(db, ctx));
    in_tx = 1;
    SCB_TRY(scb_db_schema_version(db, &version, ctx));
    if (version > SCB_DB_SCHEMA_VERSION) {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "results database %s: schema version %d is newer than "
                     "this scbench understands (%d); use a newer scbench", db->path, version,
                     SCB_DB_SCHEMA_VERSION);
        goto out;
    }
    if (version == 0) {
        SCB_TRY(query_int(db, "SELECT count(*) FROM sqlite_schema", &n_objects, ctx));
        if (n_objects > 0) {
            rc = scb_err(ctx, SCB_E_FORMAT, "results database %s: an SQLite database with %d other "
                         "objects and no scbench schema; refusing to add tables to it", db->path, n_objects);
            goto out;
        }
        SCB_TRY(scb_db_exec(db, schema_v1, ctx));
        SCB_TRY(fill_task_category(db, ctx));
        version = 1;
    }
    /* Later versions: `if (version == 1) { ALTER ...; version = 2; }` and so on. */
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", version);  /* an integer constant */
    SCB_TRY(scb_db_exec(db, pragma, ctx));
    SCB_TRY(scb_db_commit(db, ctx));
    in_tx = 0;
out:
    if (in_tx) scb_db_rollback(db);
    return rc;
}

int scb_db_open(struct scb_db **out, const char *path, int flags, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_db *db = NULL;
    *out = NULL;
    if (!path || !*path) return scb_err(ctx, SCB_E_INVAL, "results database: empty file name");

    struct stat sb;
    int exists = stat(path, &sb) == 0;
    if (exists && S_ISDIR(sb.st_mode))
        return scb_err(ctx, SCB_E_IO, "results database %s: is a directory, not a file", path);
    if (!exists && (flags == SCB_DB_READONLY || flags == SCB_DB_NOCREATE))
        return scb_err(ctx, SCB_E_IO, "results database %s: %s", path, strerror(errno));

    db = scb_calloc(1, sizeof *db);
    if (!db) return scb_err(ctx, SCB_E_NOMEM, "results database %s: out of memory", path);
    db->path = scb_strdup(path);
    if (!db->path) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    db->readonly = flags == SCB_DB_READONLY;

    int oflags = db->readonly ? SQLITE_OPEN_READONLY
                              : SQLITE_OPEN_READWRITE | (flags == SCB_DB_NOCREATE ? 0 : SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &db->h, oflags | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        rc = scb_err(ctx, SCB_E_IO, "results database %s: cannot open: %s", path,
                     db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(db->h, 1);
    sqlite3_busy_timeout(db->h, SCB_DB_BUSY_TIMEOUT_MS);

    /* The first statement reads the header: a file that is not a database fails here. */
    int v = 0;
    if (sqlite3_exec(db->h, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) != SQLITE_OK) {
        int ec = sqlite3_errcode(db->h) & 0xff;
        rc = scb_err(ctx, ec == SQLITE_NOTADB ? SCB_E_FORMAT : SCB_E_DB,
                     "results database %s: %s%s", path, sqlite3_errmsg(db->h),
                     ec == SQLITE_NOTADB ? " (not an SQLite file)" : "");
        goto out;
    }
    SCB_TRY(scb_db_exec(db, "PRAGMA foreign_keys = ON", ctx));
    if (!db->readonly) {
        SCB_TRY(scb_db_exec(db, "PRAGMA journal_mode = WAL", ctx));
        SCB_TRY(scb_db_exec(db, "PRAGMA synchronous = NORMAL", ctx));
        SCB_TRY(migrate(db, ctx));
    } else {
        SCB_TRY(scb_db_schema_version(db, &v, ctx));
        if (v == 0 || v > SCB_DB_SCHEMA_VERSION) {
            rc = scb_err(ctx, SCB_E_FORMAT, "results database %s: %s (schema version %d, this scbench "
                         "reads %d)", path, v == 0 ? "not an scbench results database" : "made by a newer scbench",
                         v, SCB_DB_SCHEMA_VERSION);
            goto out;
        }
    }
    *out = db;
    db = NULL;
out:
    scb_db_close(db);
    return rc;
}

void scb_db_close(struct scb_db *db)
{
    if (!db) return;
    if (db->h) sqlite3_close_v2(db->h);
    scb_free(db->path);
    scb_free(db);
}
