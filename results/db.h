/* db.h — the SQLite results database: open or create it, apply the schema (versioned through
 * PRAGMA user_version, migrated forward on open), and small helpers around prepared
 * statements and transactions shared by the recorder, the exports and the reports.
 *
 * Every connection runs with WAL journaling, foreign keys on and a busy timeout, so a reader
 * (report, export) and the writer (a run) can share one file. Values always travel through
 * bound parameters; SQL text is never built from values. docs/results.md describes the
 * tables and views. */
#ifndef SCB_RESULTS_DB_H
#define SCB_RESULTS_DB_H

#include <stdint.h>

#include "kernels/status.h"

struct sqlite3;
struct sqlite3_stmt;

/* Schema version written to PRAGMA user_version by this build. A database with a higher
 * version (made by a newer scbench) is refused; a lower one is migrated on open. */
#define SCB_DB_SCHEMA_VERSION 1

/* Open flags. */
enum scb_db_flags {
    SCB_DB_READWRITE = 0,  /* open an existing database, or create it (and its schema) */
    SCB_DB_READONLY  = 1,  /* open an existing database read-only; never creates or migrates */
    SCB_DB_NOCREATE  = 2   /* read-write, but the file must already exist */
};

struct scb_db {
    struct sqlite3 *h;   /* the connection (owned) */
    char           *path;/* the file name as given (owned) */
    int             readonly;
};

/* Open (or create) the results database at path. *out is set to NULL on failure; the error
 * names the file and says what is wrong (not a database, newer schema, cannot open). */
int  scb_db_open(struct scb_db **out, const char *path, int flags, struct scb_ctx *ctx);
/* Close and free. NULL-safe. */
void scb_db_close(struct scb_db *db);

/* Run static SQL (no values; several statements allowed). */
int scb_db_exec(struct scb_db *db, const char *sql, struct scb_ctx *ctx);
/* Prepare one statement; *st is NULL on failure. */
int scb_db_prepare(struct scb_db *db, const char *sql, struct sqlite3_stmt **st, struct scb_ctx *ctx);
/* Record the connection's current error on ctx as SCB_E_DB: "<path>: <what>: <sqlite message>". */
int scb_db_error(struct scb_db *db, const char *what, struct scb_ctx *ctx);

/* Transactions. begin takes the write lock at once (BEGIN IMMEDIATE), so a busy database
 * is waited for (busy timeout) before any work is done. rollback never fails loudly. */
int  scb_db_begin(struct scb_db *db, struct scb_ctx *ctx);
int  scb_db_commit(struct scb_db *db, struct scb_ctx *ctx);
void scb_db_rollback(struct scb_db *db);

/* The schema version stored in the file. */
int scb_db_schema_version(struct scb_db *db, int *version, struct scb_ctx *ctx);

/* Canonical SCBench config name of a task: "kv" -> "scbench_kv"; names that already start
 * with "scbench_" are returned unchanged. Returns an owned string (NULL on allocation failure
 * or when name is NULL). */
char *scb_db_task_name(const char *name);

/* The category of a task as the paper groups them ("String Retrieval", "Semantic Retrieval",
 * "Global Information", "Multi-tasking"), or NULL for an unknown task. Accepts short or
 * canonical names. The same table fills the task_category table of the database. */
const char *scb_db_task_category(const char *task);

#endif
