/* test_results.c — the results database: schema creation and reopening, sessions written and
 * read back, resume by configuration key, the score views against means computed here from
 * the inserted numbers, atomicity of a session under SIGKILL mid-transaction, clear errors
 * for bad files, and the exports (SCBench prediction JSONL checked against Python's
 * json.dumps, summary lines, CSV, the `scbench export` command). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"
#include "results/db.h"
#include "results/export.h"
#include "results/recorder.h"

#define SEED 20251126u

static char tmp_root[256];

static void make_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmp_root, name);
}

static int group_setup(void **st)
{
    (void)st;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/scb_test_results_XXXXXX");
    if (!mkdtemp(tmp_root)) return -1;
    printf("# test_results: seed %u, temp dir %s\n", SEED, tmp_root);
    return 0;
}

static int group_teardown(void **st)
{
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *cfg_a =
    "{\"tasks\": [\"kv\", \"qa_eng\"], \"modes\": [\"multi_turn\"], "
    "\"methods\": [{\"spec\": \"snapkv:budget=2048\", \"budget\": 2048, \"window\": 32}], "
    "\"max_seq_len\": 131072, \"max_turns\": 5, \"sessions\": -1, \"scorer\": \"faithful\"}";
/* Same configuration: other key order, other whitespace. */
static const char *cfg_a2 =
    "{ \"scorer\":\"faithful\", \"sessions\":-1, \"max_turns\":5, \"max_seq_len\":131072,\n"
    "  \"methods\":[{\"window\":32, \"budget\":2048, \"spec\":\"snapkv:budget=2048\"}],\n"
    "  \"modes\":[\"multi_turn\"], \"tasks\":[\"kv\",\"qa_eng\"] }";
/* Different: another budget. */
static const char *cfg_b =
    "{\"tasks\": [\"kv\", \"qa_eng\"], \"modes\": [\"multi_turn\"], "
    "\"methods\": [{\"spec\": \"snapkv:budget=1024\", \"budget\": 1024, \"window\": 32}], "
    "\"max_seq_len\": 131072, \"max_turns\": 5, \"sessions\": -1, \"scorer\": \"faithful\"}";

static void run_info(struct scb_run_info *ri, const char *cfg)
{
    memset(ri, 0, sizeof *ri);
    ri->config_json = cfg;
    ri->device = "cpu";
    ri->backend = "cpu";
    ri->model_path = "/models/Llama-3.1-8B-Instruct/";
    ri->model_hash = "abc123";
    ri->tokenizer_hash = "tok456";
    ri->dataset_path = "/data/scbench";
    ri->dataset_hash = "ds789";
    ri->scorer = "faithful";
    ri->seed = 42;
    ri->max_seq_len = 131072;
}

static int64_t q_i64(struct scb_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *q_text(struct scb_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    char *r = scb_strdup(t ? (const char *)t : "(null)");
    sqlite3_finalize(st);
    return r;
}

/* ---- schema ----------------------------------------------------------------------------- */
static void test_schema_create_and_reopen(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "schema.db");
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_OK);
    int v = 0;
    assert_int_equal(scb_db_schema_version(db, &v, &ctx), SCB_OK);
    assert_int_equal(v, SCB_DB_SCHEMA_VERSION);
    char *jm = q_text(db, "PRAGMA journal_mode");
    assert_string_equal(jm, "wal");
    scb_free(jm);
    assert_int_equal(q_i64(db, "PRAGMA foreign_keys"), 1);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN "
                               "('runs','sessions','turns','bench','task_category')"), 5);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN "
                               "('turn_scores','subtask_scores','task_scores','category_scores','mode_scores',"
                               "'task_costs')"), 6);
    /* Categories as spec/scbench.md §2.1 lists them. */
    static const char *const expect[][2] = {
        {"scbench_kv", "String Retrieval"}, {"scbench_prefix_suffix", "String Retrieval"},
        {"scbench_vt", "String Retrieval"}, {"scbench_repoqa", "Semantic Retrieval"},
        {"scbench_qa_eng", "Semantic Retrieval"}, {"scbench_qa_chn", "Semantic Retrieval"},
        {"scbench_choice_eng", "Semantic Retrieval"}, {"scbench_mf", "Global Information"},
        {"scbench_many_shot", "Global Information"}, {"scbench_summary", "Global Information"},
        {"scbench_summary_with_needles", "Multi-tasking"}, {"scbench_repoqa_and_kv", "Multi-tasking"},
    };
    assert_int_equal(q_i64(db, "SELECT count(*) FROM task_category"), 12);
    for (size_t i = 0; i < 12; i++) {
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT category FROM task_category WHERE task = ?1", -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, expect[i][0], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_string_equal((const char *)sqlite3_column_text(s, 0), expect[i][1]);
        sqlite3_finalize(s);
        assert_string_equal(scb_db_task_category(expect[i][0]), expect[i][1]);
        assert_string_equal(scb_db_task_category(expect[i][0] + 8), expect[i][1]);   /* short name */
    }
    assert_null(scb_db_task_category("scbench_passkey"));
    assert_int_equal(scb_db_exec(db, "INSERT INTO bench(name, median_ms) VALUES ('marker', 1.5)", &ctx), SCB_OK);
    scb_db_close(db);

    /* Reopen: no second schema, the row is there; read-only open works too. */
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_OK);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM task_category"), 12);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM bench WHERE name = 'marker'"), 1);
    scb_db_close(db);
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_OK);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM bench"), 1);
    assert_int_not_equal(scb_db_exec(db, "DELETE FROM bench", &ctx), SCB_OK);
    scb_db_close(db);
}

static void test_bad_files(void **st)
{
    (void)st;
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    char path[512];

    /* Missing folder. */
    make_path(path, sizeof path, "no/such/dir/r.db");
    assert_int_not_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_OK);
    assert_null(db);
    assert_non_null(strstr(scb_errmsg(&ctx), path));

    /* Read-only open of a missing file does not create it. */
    make_path(path, sizeof path, "missing.db");
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&ctx), path));
    assert_false(scb_file_exists(path));

    /* A directory. */
    assert_int_equal(scb_db_open(&db, tmp_root, SCB_DB_READWRITE, &ctx), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&ctx), "directory"));

    /* A text file. */
    make_path(path, sizeof path, "notes.txt");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++) fprintf(f, "this is not a database, line %d\n", i);
    fclose(f);
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_E_FORMAT);
    assert_null(db);
    assert_non_null(strstr(scb_errmsg(&ctx), path));
    assert_non_null(strstr(scb_errmsg(&ctx), "not a database"));
    struct scb_recorder *rec = NULL;
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_E_FORMAT);
    assert_null(rec);
    assert_non_null(strstr(scb_errmsg(&ctx), path));

    /* Some other SQLite database: refused, left untouched. */
    make_path(path, sizeof path, "other.db");
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE photos(id INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&ctx), path));
    assert_non_null(strstr(scb_errmsg(&ctx), "no scbench schema"));

    /* A results database from a newer scbench. */
    make_path(path, sizeof path, "newer.db");
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_OK);
    assert_int_equal(scb_db_exec(db, "PRAGMA user_version = 99", &ctx), SCB_OK);
    scb_db_close(db);
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READWRITE, &ctx), SCB_E_UNSUPPORTED);
    assert_non_null(strstr(scb_errmsg(&ctx), "newer"));
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&ctx), path));
}

/* ---- sessions and resume ---------------------------------------------------------------- */
static void fill_row(struct scb_turn_row *r, const char *method, const char *task, const char *mode,
                     int64_t session, int64_t turn, double score)
{
    scb_turn_row_init(r);
    r->method = method;
    r->task = task;
    r->mode = mode;
    r->session = session;
    r->turn = turn;
    r->prediction = "The value is 1234.";
    r->gold_json = "\"1234\"";
    r->score = score;
}

static void test_sessions_roundtrip(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "sessions.db");
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = -1, done = -1;
    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &run, &resumed, &ctx), SCB_OK);
    assert_true(run > 0);
    assert_int_equal(resumed, 0);
    struct scb_db *db = scb_recorder_db(rec);

    struct scb_turn_row rows[3];
    for (int t = 0; t < 3; t++) fill_row(&rows[t], "snapkv:budget=2048", "kv", "multi_turn", 4, t, t == 1 ? 0.0 : 1.0);
    rows[0].prompt_tokens = 120034; rows[0].cached_tokens = 0; rows[0].generated_tokens = 17;
    rows[0].prefill_ms = 8123.5; rows[0].ttft_ms = 8150.25; rows[0].decode_ms = 310.75;
    rows[0].kv_entries = 2048LL * 32 * 8; rows[0].kv_bytes_logical = 2048LL * 32 * 8 * 128 * 2 * 2;
    rows[0].kv_bytes_physical = 2048LL * 32 * 32 * 128 * 2 * 2; rows[0].decode_bytes_per_step = 1.25e8;
    rows[0].prefill_density = 0.5; rows[0].peak_host_bytes = 123456789; rows[0].peak_device_bytes = 987654321;
    rows[1].prediction = "Line one,\n\"quoted\" — ünïcode ✓";
    rows[1].gold_json = "[\"a\", \"b\"]";
    rows[1].scorer = "intended";

    assert_int_equal(scb_recorder_session_done(rec, run, "snapkv:budget=2048", "scbench_kv", "multi_turn", 4, &done, &ctx),
                     SCB_OK);
    assert_int_equal(done, 0);
    assert_int_equal(scb_recorder_write_session(rec, run, rows, 3, &ctx), SCB_OK);
    /* Short and canonical task names, and the mode alias, find the same session. */
    assert_int_equal(scb_recorder_session_done(rec, run, "snapkv:budget=2048", "scbench_kv", "multi_turn", 4, &done, &ctx),
                     SCB_OK);
    assert_int_equal(done, 1);
    assert_int_equal(scb_recorder_session_done(rec, run, "snapkv:budget=2048", "kv", "multi-turn", 4, &done, &ctx), SCB_OK);
    assert_int_equal(done, 1);
    assert_int_equal(scb_recorder_session_done(rec, run, "snapkv:budget=2048", "kv", "multi_request", 4, &done, &ctx),
                     SCB_OK);
    assert_int_equal(done, 0);
    assert_int_equal(scb_recorder_session_done(rec, run, "dense", "kv", "multi_turn", 4, &done, &ctx), SCB_OK);
    assert_int_equal(done, 0);

    /* Read back every field of turn 0 and the NULLs of turn 2. */
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->h,
        "SELECT task, mode, session, prompt_tokens, cached_tokens, generated_tokens, prefill_ms, ttft_ms, decode_ms, "
        "kv_entries, kv_bytes_logical, kv_bytes_physical, decode_bytes_per_step, prefill_density, peak_host_bytes, "
        "peak_device_bytes, score, prediction, gold, scorer, sub_task FROM turns WHERE run_id = ?1 ORDER BY turn",
        -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, run);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "scbench_kv");
    assert_string_equal((const char *)sqlite3_column_text(s, 1), "multi_turn");
    assert_int_equal(sqlite3_column_int64(s, 2), 4);
    assert_int_equal(sqlite3_column_int64(s, 3), 120034);
    assert_int_equal(sqlite3_column_int64(s, 4), 0);
    assert_int_equal(sqlite3_column_int64(s, 5), 17);
    assert_true(sqlite3_column_double(s, 6) == 8123.5);
    assert_true(sqlite3_column_double(s, 7) == 8150.25);
    assert_true(sqlite3_column_double(s, 8) == 310.75);
    assert_int_equal(sqlite3_column_int64(s, 9), rows[0].kv_entries);
    assert_int_equal(sqlite3_column_int64(s, 10), rows[0].kv_bytes_logical);
    assert_int_equal(sqlite3_column_int64(s, 11), rows[0].kv_bytes_physical);
    assert_true(sqlite3_column_double(s, 12) == 1.25e8);
    assert_true(sqlite3_column_double(s, 13) == 0.5);
    assert_int_equal(sqlite3_column_int64(s, 14), 123456789);
    assert_int_equal(sqlite3_column_int64(s, 15), 987654321);
    assert_true(sqlite3_column_double(s, 16) == 1.0);
    assert_string_equal((const char *)sqlite3_column_text(s, 17), "The value is 1234.");
    assert_string_equal((const char *)sqlite3_column_text(s, 18), "\"1234\"");
    assert_int_equal(sqlite3_column_type(s, 19), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(s, 20), SQLITE_NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 17), rows[1].prediction);
    assert_string_equal((const char *)sqlite3_column_text(s, 19), "intended");
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    for (int c = 3; c <= 15; c++) assert_int_equal(sqlite3_column_type(s, c), SQLITE_NULL);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    assert_int_equal(q_i64(db, "SELECT n_turns FROM sessions"), 3);

    /* Writing the same session again changes nothing. */
    assert_int_equal(scb_recorder_write_session(rec, run, rows, 3, &ctx), SCB_E_INVAL);
    assert_non_null(strstr(scb_errmsg(&ctx), "already holds session 4"));
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns"), 3);

    /* Bad rows are refused before anything is written. */
    struct scb_turn_row bad[2];
    fill_row(&bad[0], "dense", "kv", "multi_turn", 5, 0, 1.0);
    fill_row(&bad[1], "dense", "kv", "multi_turn", 6, 1, 1.0);   /* another session */
    assert_int_equal(scb_recorder_write_session(rec, run, bad, 2, &ctx), SCB_E_INVAL);
    fill_row(&bad[1], "dense", "kv", "multi_turn", 5, 0, 1.0);   /* turn twice */
    assert_int_equal(scb_recorder_write_session(rec, run, bad, 2, &ctx), SCB_E_INVAL);
    fill_row(&bad[1], "dense", "kv", "multi_turn", 5, 1, 1.5);   /* score out of range */
    assert_int_equal(scb_recorder_write_session(rec, run, bad, 2, &ctx), SCB_E_INVAL);
    fill_row(&bad[1], "dense", "kv", "multi_turn", 5, 1, 1.0);
    bad[1].gold_json = "[\"unterminated";
    assert_int_equal(scb_recorder_write_session(rec, run, bad, 2, &ctx), SCB_E_FORMAT);
    fill_row(&bad[1], "dense", "kv", "diagonal", 5, 1, 1.0);
    bad[0].mode = "diagonal";
    assert_int_equal(scb_recorder_write_session(rec, run, bad, 2, &ctx), SCB_E_INVAL);
    fill_row(&bad[0], "dense", "kv", "multi_turn", 5, 0, 1.0);
    assert_int_equal(scb_recorder_write_session(rec, run + 1000, bad, 1, &ctx), SCB_E_NOTFOUND);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sessions"), 1);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns"), 3);

    /* Bench rows. */
    struct scb_bench_row b;
    scb_bench_row_init(&b);
    b.name = "attn_prefill_dense";
    b.shape_json = "{\"T\": 4096, \"H\": 32, \"Hkv\": 8, \"D\": 128}";
    b.dtype = "bf16";
    b.median_ms = 3.25; b.p10_ms = 3.0; b.p90_ms = 3.5; b.repeats = 20; b.tflops = 410.5; b.peak_tflops = 989.0;
    int64_t bid = 0;
    assert_int_equal(scb_recorder_add_bench(rec, run, &b, &bid, &ctx), SCB_OK);
    assert_true(bid > 0);
    assert_int_equal(q_i64(db, "SELECT repeats FROM bench WHERE name = 'attn_prefill_dense'"), 20);
    assert_int_equal(q_i64(db, "SELECT gbps IS NULL AND peak_gbps IS NULL FROM bench WHERE repeats = 20"), 1);
    b.extra_json = "{not json";
    assert_int_equal(scb_recorder_add_bench(rec, 0, &b, NULL, &ctx), SCB_E_DB);

    assert_int_equal(scb_recorder_finish_run(rec, run, SCB_RUN_FAILED, "CUDA error: out of memory", &ctx), SCB_OK);
    char *stt = q_text(db, "SELECT status || '|' || error || '|' || (finished_at IS NOT NULL) FROM runs");
    assert_string_equal(stt, "failed|CUDA error: out of memory|1");
    scb_free(stt);
    assert_int_equal(scb_recorder_finish_run(rec, run + 7, SCB_RUN_FINISHED, NULL, &ctx), SCB_E_NOTFOUND);
    assert_int_equal(scb_recorder_finish_run(rec, run, 17, NULL, &ctx), SCB_E_INVAL);
    scb_recorder_close(rec);
}

static void test_resume(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "resume.db");
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    struct scb_run_info ri;
    int64_t r1 = 0, r2 = 0, r3 = 0, r4 = 0, r5 = 0;
    int resumed = -1, done = -1;
    char k1[25], k2[25], k3[25];

    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_config_key(&ri, k1, &ctx), SCB_OK);
    ri.config_json = cfg_a2;
    ri.host = "another-host";   /* host and device do not enter the key */
    ri.device = "NVIDIA H100";
    assert_int_equal(scb_recorder_config_key(&ri, k2, &ctx), SCB_OK);
    assert_string_equal(k1, k2);
    assert_int_equal(strncmp(k1, "fnv1a64:", 8), 0);
    assert_int_equal(strlen(k1), 24);
    ri.config_json = cfg_b;
    assert_int_equal(scb_recorder_config_key(&ri, k3, &ctx), SCB_OK);
    assert_string_not_equal(k1, k3);
    ri.config_json = "[1, 2]";
    assert_int_equal(scb_recorder_config_key(&ri, k3, &ctx), SCB_E_FORMAT);
    ri.config_json = "{\"tasks\": [";
    assert_int_equal(scb_recorder_config_key(&ri, k3, &ctx), SCB_E_FORMAT);

    /* First command: one session done, then "crash" (no finish). */
    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r1, &resumed, &ctx), SCB_OK);
    assert_int_equal(resumed, 0);
    struct scb_turn_row rows[2];
    fill_row(&rows[0], "snapkv:budget=2048", "kv", "multi_turn", 0, 0, 1.0);
    fill_row(&rows[1], "snapkv:budget=2048", "kv", "multi_turn", 0, 1, 0.0);
    assert_int_equal(scb_recorder_write_session(rec, r1, rows, 2, &ctx), SCB_OK);
    scb_recorder_close(rec);

    /* Same command again (keys reordered): same run, session 0 is done, session 1 is not. */
    run_info(&ri, cfg_a2);
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r2, &resumed, &ctx), SCB_OK);
    assert_int_equal(r2, r1);
    assert_int_equal(resumed, 1);
    struct scb_db *db = scb_recorder_db(rec);
    assert_int_equal(q_i64(db, "SELECT resume_count FROM runs"), 1);
    assert_int_equal(scb_recorder_session_done(rec, r2, "snapkv:budget=2048", "kv", "multi_turn", 0, &done, &ctx), SCB_OK);
    assert_int_equal(done, 1);
    assert_int_equal(scb_recorder_session_done(rec, r2, "snapkv:budget=2048", "kv", "multi_turn", 1, &done, &ctx), SCB_OK);
    assert_int_equal(done, 0);
    fill_row(&rows[0], "snapkv:budget=2048", "kv", "multi_turn", 1, 0, 1.0);
    fill_row(&rows[1], "snapkv:budget=2048", "kv", "multi_turn", 1, 1, 1.0);
    assert_int_equal(scb_recorder_write_session(rec, r2, rows, 2, &ctx), SCB_OK);
    assert_int_equal(scb_recorder_finish_run(rec, r2, SCB_RUN_FINISHED, NULL, &ctx), SCB_OK);

    /* A finished run is resumed too (nothing left to do, nothing duplicated). */
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r3, &resumed, &ctx), SCB_OK);
    assert_int_equal(r3, r1);
    assert_int_equal(resumed, 1);
    char *s = q_text(db, "SELECT status || '|' || (finished_at IS NULL) || '|' || resume_count FROM runs");
    assert_string_equal(s, "running|1|2");
    scb_free(s);
    assert_int_equal(scb_recorder_finish_run(rec, r3, SCB_RUN_FINISHED, NULL, &ctx), SCB_OK);

    /* A different configuration is a new run; so is force_new. */
    run_info(&ri, cfg_b);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r4, &resumed, &ctx), SCB_OK);
    assert_true(r4 != r1);
    assert_int_equal(resumed, 0);
    ri.seed = 43;   /* another seed, same JSON: a new run */
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r5, &resumed, &ctx), SCB_OK);
    assert_true(r5 != r4 && r5 != r1);
    run_info(&ri, cfg_a);
    ri.force_new = 1;
    int64_t r6 = 0;
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r6, &resumed, &ctx), SCB_OK);
    assert_int_equal(resumed, 0);
    assert_true(r6 > r5);
    /* Now the newest run of cfg_a is r6 and a plain rerun resumes that one. */
    ri.force_new = 0;
    int64_t r7 = 0;
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &r7, &resumed, &ctx), SCB_OK);
    assert_int_equal(r7, r6);
    assert_int_equal(resumed, 1);

    assert_int_equal(q_i64(db, "SELECT count(*) FROM runs"), 4);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sessions"), 2);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns"), 4);
    char key_sql[128];
    snprintf(key_sql, sizeof key_sql, "SELECT count(DISTINCT config_key) FROM runs");
    assert_int_equal(q_i64(db, key_sql), 3);
    char *prov = q_text(db, "SELECT git_rev IS NOT NULL AND build_options IS NOT NULL AND host IS NOT NULL "
                            "AND json_extract(config, '$.max_turns') = 5 FROM runs WHERE id = 1");
    assert_string_equal(prov, "1");
    scb_free(prov);
    scb_recorder_close(rec);
}

/* ---- views ------------------------------------------------------------------------------ */
struct vrow { const char *method, *task, *mode, *sub; int session, turn; double score; };
#define MAXV 256
static struct vrow vrows[MAXV];
static int nv;

static int same(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

static const char *cat_of(const char *task) { return scb_db_task_category(task); }

/* Expected values, computed directly from the inserted rows (percent). */
static double exp_turn(const char *m, const char *t, const char *mode, int turn, const char *sub, int *n)
{
    double s = 0; int c = 0;
    for (int i = 0; i < nv; i++)
        if (!strcmp(vrows[i].method, m) && !strcmp(vrows[i].task, t) && !strcmp(vrows[i].mode, mode) &&
            vrows[i].turn == turn && same(vrows[i].sub, sub)) { s += vrows[i].score; c++; }
    if (n) *n = c;
    return c ? 100.0 * s / c : NAN;
}

static double exp_sub(const char *m, const char *t, const char *mode, const char *sub)
{
    if (!strcmp(mode, "multi_request")) {
        double s = 0; int c = 0;
        for (int i = 0; i < nv; i++)
            if (!strcmp(vrows[i].method, m) && !strcmp(vrows[i].task, t) && !strcmp(vrows[i].mode, mode) &&
                same(vrows[i].sub, sub)) { s += vrows[i].score; c++; }
        return c ? 100.0 * s / c : NAN;
    }
    double s = 0; int c = 0;
    for (int turn = 0; turn < 16; turn++) {
        int n = 0;
        double v = exp_turn(m, t, mode, turn, sub, &n);
        if (n) { s += v; c++; }
    }
    return c ? s / c : NAN;
}

static double exp_task(const char *m, const char *t, const char *mode)
{
    const char *subs[4]; int ns = 0;
    for (int i = 0; i < nv; i++) {
        if (strcmp(vrows[i].method, m) || strcmp(vrows[i].task, t) || strcmp(vrows[i].mode, mode)) continue;
        int k = 0;
        while (k < ns && !same(subs[k], vrows[i].sub)) k++;
        if (k == ns) subs[ns++] = vrows[i].sub;
    }
    double s = 0;
    for (int k = 0; k < ns; k++) s += exp_sub(m, t, mode, subs[k]);
    return ns ? s / ns : NAN;
}

static double exp_cat(const char *m, const char *mode, const char *cat, int *n_tasks)
{
    const char *tasks[16]; int nt = 0;
    for (int i = 0; i < nv; i++) {
        if (strcmp(vrows[i].method, m) || strcmp(vrows[i].mode, mode) || strcmp(cat_of(vrows[i].task), cat)) continue;
        int k = 0;
        while (k < nt && strcmp(tasks[k], vrows[i].task)) k++;
        if (k == nt) tasks[nt++] = vrows[i].task;
    }
    double s = 0;
    for (int k = 0; k < nt; k++) s += exp_task(m, tasks[k], mode);
    *n_tasks = nt;
    return nt ? s / nt : NAN;
}

static void add_v(const char *m, const char *t, const char *mode, const char *sub, int session, int turn, double score)
{
    assert_true(nv < MAXV);
    vrows[nv++] = (struct vrow){m, t, mode, sub, session, turn, score};
}

/* Build the known rows: 2 methods; kv multi-turn with sessions of unequal turn counts;
 * a Mix task in both modes; qa_eng and mf multi-request. Scores are seeded and mostly
 * fractional. */
static void build_view_rows(void)
{
    struct scb_rng r;
    scb_rng_seed(&r, SEED);
    nv = 0;
    static const char *const methods[2] = {"dense", "streamingllm:n_local=1024"};
    for (int mi = 0; mi < 2; mi++) {
        const char *m = methods[mi];
        for (int s = 0; s < 3; s++)   /* kv: session 2 has only 2 turns */
            for (int t = 0; t < (s == 2 ? 2 : 4); t++)
                add_v(m, "scbench_kv", "multi_turn", NULL, s, t, (double)scb_rng_below(&r, 2));
        for (int s = 0; s < 2; s++)   /* vt: fractional scores */
            for (int t = 0; t < 3; t++)
                add_v(m, "scbench_vt", "multi_turn", NULL, s, t, (double)scb_rng_below(&r, 101) / 100.0);
        for (int s = 0; s < 3; s++)   /* summary_with_needles: summary on even turns, passkey on odd */
            for (int t = 0; t < 5; t++)
                add_v(m, "scbench_summary_with_needles", "multi_turn", t % 2 ? "scbench_passkey" : "scbench_summary",
                      s, t, t % 2 ? (double)scb_rng_below(&r, 2) : scb_rng_uniform(&r));
        for (int s = 0; s < 2; s++)
            for (int t = 0; t < 4; t++)
                add_v(m, "scbench_summary_with_needles", "multi_request", t % 2 ? "scbench_passkey" : "scbench_summary",
                      s, t, t % 2 ? (double)scb_rng_below(&r, 2) : scb_rng_uniform(&r));
        for (int s = 0; s < 4; s++)
            for (int t = 0; t < 3; t++)
                add_v(m, "scbench_qa_eng", "multi_request", NULL, s, t, (double)scb_rng_below(&r, 2));
        for (int s = 0; s < 2; s++)
            for (int t = 0; t < 2; t++)
                add_v(m, "scbench_mf", "multi_request", NULL, s, t, (double)scb_rng_below(&r, 2));
    }
}

static int64_t write_view_rows(struct scb_recorder *rec, const char *cfg, struct scb_ctx *ctx)
{
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = 0;
    run_info(&ri, cfg);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &run, &resumed, ctx), SCB_OK);
    struct scb_turn_row rows[16];
    int i = 0;
    while (i < nv) {
        int j = i, n = 0;
        while (j < nv && !strcmp(vrows[j].method, vrows[i].method) && !strcmp(vrows[j].task, vrows[i].task) &&
               !strcmp(vrows[j].mode, vrows[i].mode) && vrows[j].session == vrows[i].session) {
            fill_row(&rows[n], vrows[j].method, vrows[j].task, vrows[j].mode, vrows[j].session, vrows[j].turn,
                     vrows[j].score);
            rows[n].sub_task = vrows[j].sub;
            n++; j++;
        }
        assert_int_equal(scb_recorder_write_session(rec, run, rows, (size_t)n, ctx), SCB_OK);
        i = j;
    }
    return run;
}

static void test_views(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "views.db");
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    build_view_rows();
    int64_t run = write_view_rows(rec, cfg_a, &ctx);
    /* A second run with other scores must not leak into the first one's views. */
    for (int i = 0; i < nv; i++) vrows[i].score = 1.0 - vrows[i].score;
    int64_t run2 = write_view_rows(rec, cfg_b, &ctx);
    for (int i = 0; i < nv; i++) vrows[i].score = 1.0 - vrows[i].score;
    assert_true(run2 != run);
    struct scb_db *db = scb_recorder_db(rec);
    const double tol = 1e-9;
    sqlite3_stmt *s = NULL;

    /* turn_scores */
    int n_groups = 0;
    assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT method, task, mode, turn, sub_task, score, n FROM turn_scores "
                                        "WHERE run_id = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, run);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int n = 0;
        double e = exp_turn((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
                            (const char *)sqlite3_column_text(s, 2), sqlite3_column_int(s, 3),
                            (const char *)sqlite3_column_text(s, 4), &n);
        assert_true(fabs(sqlite3_column_double(s, 5) - e) < tol);
        assert_int_equal(sqlite3_column_int(s, 6), n);
        n_groups++;
    }
    sqlite3_finalize(s);
    /* per method: kv 4 + vt 3 + swn-mt 5 + swn-mr 4 + qa 3 + mf 2 turn groups */
    assert_int_equal(n_groups, 2 * (4 + 3 + 5 + 4 + 3 + 2));

    /* task_scores: the kv turn counts differ (3,3,2,2 sessions per turn), so the mean of
     * per-turn means differs from the pooled mean; check that we got the former. */
    int n_tasks = 0;
    assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT method, task, mode, score, n, category FROM task_scores "
                                        "WHERE run_id = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, run);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(s, 0), *t = (const char *)sqlite3_column_text(s, 1),
                   *mode = (const char *)sqlite3_column_text(s, 2);
        double e = exp_task(m, t, mode);
        assert_true(fabs(sqlite3_column_double(s, 3) - e) < tol);
        int n = 0;
        for (int i = 0; i < nv; i++)
            if (!strcmp(vrows[i].method, m) && !strcmp(vrows[i].task, t) && !strcmp(vrows[i].mode, mode)) n++;
        assert_int_equal(sqlite3_column_int(s, 4), n);
        assert_string_equal((const char *)sqlite3_column_text(s, 5), cat_of(t));
        n_tasks++;
    }
    sqlite3_finalize(s);
    assert_int_equal(n_tasks, 2 * 6);

    /* A worked case by hand: the Mix task in multi-request mode is the mean of the pooled
     * summary score and the pooled passkey score. */
    {
        double ssum = 0, psum = 0; int sn = 0, pn = 0;
        for (int i = 0; i < nv; i++)
            if (!strcmp(vrows[i].method, "dense") && !strcmp(vrows[i].task, "scbench_summary_with_needles") &&
                !strcmp(vrows[i].mode, "multi_request")) {
                if (!strcmp(vrows[i].sub, "scbench_summary")) { ssum += vrows[i].score; sn++; }
                else { psum += vrows[i].score; pn++; }
            }
        double e = 100.0 * (ssum / sn + psum / pn) / 2;
        assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT score FROM task_scores WHERE run_id = ?1 AND method = 'dense' "
                                            "AND task = 'scbench_summary_with_needles' AND mode = 'multi_request'",
                                            -1, &s, NULL), SQLITE_OK);
        sqlite3_bind_int64(s, 1, run);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        assert_true(fabs(sqlite3_column_double(s, 0) - e) < tol);
        sqlite3_finalize(s);
    }

    /* category_scores */
    int n_cats = 0;
    assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT method, mode, category, score, n_tasks FROM category_scores "
                                        "WHERE run_id = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, run);
    while (sqlite3_step(s) == SQLITE_ROW) {
        int nt = 0;
        double e = exp_cat((const char *)sqlite3_column_text(s, 0), (const char *)sqlite3_column_text(s, 1),
                           (const char *)sqlite3_column_text(s, 2), &nt);
        assert_true(fabs(sqlite3_column_double(s, 3) - e) < tol);
        assert_int_equal(sqlite3_column_int(s, 4), nt);
        n_cats++;
    }
    sqlite3_finalize(s);
    /* per method: multi_turn {String, Multi}, multi_request {Semantic, Global, Multi} */
    assert_int_equal(n_cats, 2 * 5);

    /* mode_scores */
    static const char *const cats[4] = {"String Retrieval", "Semantic Retrieval", "Global Information", "Multi-tasking"};
    assert_int_equal(sqlite3_prepare_v2(db->h, "SELECT method, mode, score, avg_tasks, n_categories FROM mode_scores "
                                        "WHERE run_id = ?1", -1, &s, NULL), SQLITE_OK);
    sqlite3_bind_int64(s, 1, run);
    int n_modes = 0;
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(s, 0), *mode = (const char *)sqlite3_column_text(s, 1);
        double cs = 0, ts = 0; int nc = 0, ntt = 0;
        for (int c = 0; c < 4; c++) {
            int nt = 0;
            double v = exp_cat(m, mode, cats[c], &nt);
            if (nt) { cs += v; nc++; }
        }
        const char *seen[16]; int ns = 0;
        for (int i = 0; i < nv; i++) {
            if (strcmp(vrows[i].method, m) || strcmp(vrows[i].mode, mode)) continue;
            int k = 0;
            while (k < ns && strcmp(seen[k], vrows[i].task)) k++;
            if (k == ns) { seen[ns++] = vrows[i].task; ts += exp_task(m, vrows[i].task, mode); ntt++; }
        }
        assert_true(fabs(sqlite3_column_double(s, 2) - cs / nc) < tol);
        assert_true(fabs(sqlite3_column_double(s, 3) - ts / ntt) < tol);
        assert_int_equal(sqlite3_column_int(s, 4), nc);
        n_modes++;
    }
    sqlite3_finalize(s);
    assert_int_equal(n_modes, 4);
    scb_recorder_close(rec);
}

/* ---- SIGKILL in the middle of a session's transaction ----------------------------------- */
static int kill_pipe_fd = -1;
static int kill_base_changes;

static int progress_stop(void *arg)
{
    sqlite3 *h = arg;
    /* Inside write_session's transaction, once the session row and two turns are in. */
    if (!sqlite3_get_autocommit(h) && sqlite3_total_changes(h) - kill_base_changes >= 3) {
        char c = 'k';
        if (write(kill_pipe_fd, &c, 1) != 1) _exit(3);
        for (;;) pause();
    }
    return 0;
}

static void test_sigkill_mid_session(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "killed.db");
    struct scb_ctx ctx = {0};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct scb_recorder *rec = NULL;
        struct scb_run_info ri;
        int64_t run = 0;
        int resumed = 0;
        run_info(&ri, cfg_a);
        if (scb_recorder_open(&rec, path, &ctx) || scb_recorder_begin_run(rec, &ri, &run, &resumed, &ctx)) _exit(2);
        struct scb_turn_row rows[6];
        for (int t = 0; t < 6; t++) fill_row(&rows[t], "dense", "kv", "multi_turn", 0, t, t % 2);
        if (scb_recorder_write_session(rec, run, rows, 6, &ctx)) _exit(2);   /* session 0 commits */
        for (int t = 0; t < 6; t++) fill_row(&rows[t], "dense", "kv", "multi_turn", 1, t, 1.0);
        sqlite3 *h = scb_recorder_db(rec)->h;
        kill_pipe_fd = fds[1];
        kill_base_changes = sqlite3_total_changes(h);
        sqlite3_progress_handler(h, 1, progress_stop, h);
        scb_recorder_write_session(rec, run, rows, 6, &ctx);   /* session 1: killed inside */
        _exit(4);   /* not reached */
    }
    close(fds[1]);
    char c = 0;
    ssize_t got = read(fds[0], &c, 1);
    close(fds[0]);
    if (got != 1) {
        int stw = 0;
        waitpid(pid, &stw, 0);
        fail_msg("child did not reach the middle of the transaction (exit status %d)", WEXITSTATUS(stw));
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* The database is consistent: session 0 whole, nothing of session 1. */
    struct scb_recorder *rec = NULL;
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    struct scb_db *db = scb_recorder_db(rec);
    char *ic = q_text(db, "PRAGMA integrity_check");
    assert_string_equal(ic, "ok");
    scb_free(ic);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db->h, "PRAGMA foreign_key_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sessions"), 1);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns WHERE session = 0"), 6);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns WHERE session = 1"), 0);

    /* Rerunning resumes the run and writes session 1 once. */
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = 0, done = 0;
    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &run, &resumed, &ctx), SCB_OK);
    assert_int_equal(resumed, 1);
    assert_int_equal(scb_recorder_session_done(rec, run, "dense", "kv", "multi_turn", 1, &done, &ctx), SCB_OK);
    assert_int_equal(done, 0);
    struct scb_turn_row rows[6];
    for (int t = 0; t < 6; t++) fill_row(&rows[t], "dense", "kv", "multi_turn", 1, t, 1.0);
    assert_int_equal(scb_recorder_write_session(rec, run, rows, 6, &ctx), SCB_OK);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns"), 12);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM runs"), 1);
    scb_recorder_close(rec);
}

/* ---- exports ---------------------------------------------------------------------------- */
struct erow {
    const char *task, *mode, *sub, *lang, *repo, *func, *pred, *gold;
    int session, turn;
    double score;
};

static const struct erow erows[] = {
    {"scbench_kv", "multi_turn", NULL, NULL, NULL, NULL, "The value is \"9f1e-77\".\nDone", "\"9f1e-77\"", 0, 0, 1.0},
    {"scbench_kv", "multi_turn", NULL, NULL, NULL, NULL, "Tab\there, ctrl \x01, slash \\ and ✓ 中文", "\"abc\"", 0, 1, 0.0},
    {"scbench_kv", "multi_turn", NULL, NULL, NULL, NULL, "", "\"x\"", 1, 0, 0.0},
    {"scbench_kv", "multi_turn", NULL, NULL, NULL, NULL, "x y", "\"x\"", 1, 1, 1.0},
    {"scbench_repoqa_and_kv", "multi_turn", "scbench_repoqa", "python", "psf/requests", "get_auth",
     "```python\ndef get_auth():\n    pass\n```", "\"def get_auth():\\n    pass\\n\"", 0, 0, 1.0},
    {"scbench_repoqa_and_kv", "multi_turn", "scbench_kv", "python", "psf/requests", NULL, "value: 12", "\"12\"", 0, 1, 1.0},
    {"scbench_repoqa_and_kv", "multi_turn", "scbench_repoqa", "python", "psf/requests", "merge",
     "nope", "\"def merge(a, b):\\n    return a\\n\"", 0, 2, 0.0},
    {"scbench_repoqa_and_kv", "multi_turn", "scbench_repoqa", "python", "psf/requests", "get_auth",
     "def get_auth", "\"def get_auth():\\n    pass\\n\"", 1, 0, 0.0},
    {"scbench_repoqa_and_kv", "multi_turn", "scbench_kv", "python", "psf/requests", NULL, "no", "\"13\"", 1, 1, 0.0},
    {"scbench_choice_eng", "multi_request", NULL, NULL, NULL, NULL, "B", "[\"the garden\",\"B\"]", 0, 0, 1.0},
    {"scbench_choice_eng", "multi_request", NULL, NULL, NULL, NULL, "A", "[\"a \\u00e9t\\u00e9 \\ud83d\\ude00\", \"C\"]", 0, 1, 0.0},
    {"scbench_choice_eng", "multi_request", NULL, NULL, NULL, NULL, "C", "[\"x\", \"C\"]", 1, 0, 1.0},
    {"scbench_mf", "multi_request", NULL, NULL, NULL, NULL, "The answer is 42", "42", 0, 0, 1.0},
    {"scbench_mf", "multi_request", NULL, NULL, NULL, NULL, "7.5", "[7.5, -3, 1e3, true, null, 1e16, 1e15, 1.5e-5, 0.0001, -0.0, -0, 123456789012345678, 2.50, 1E+2, 0.1, 1e-7, 3.141592653589793, 2.2250738585072014e-308, 1.7976931348623157e308]", 0, 1, 0.0},
};
#define N_EROWS (sizeof erows / sizeof erows[0])

static int64_t write_export_rows(const char *path, struct scb_ctx *ctx)
{
    struct scb_recorder *rec = NULL;
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = 0;
    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_open(&rec, path, ctx), SCB_OK);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &run, &resumed, ctx), SCB_OK);
    size_t i = 0;
    while (i < N_EROWS) {
        struct scb_turn_row rows[8];
        size_t n = 0;
        size_t j = i;
        while (j < N_EROWS && !strcmp(erows[j].task, erows[i].task) && !strcmp(erows[j].mode, erows[i].mode) &&
               erows[j].session == erows[i].session) {
            struct scb_turn_row *r = &rows[n++];
            fill_row(r, "minference+snapkv:budget=2048,window=32", erows[j].task, erows[j].mode, erows[j].session,
                     erows[j].turn, erows[j].score);
            r->sub_task = erows[j].sub;
            r->lang = erows[j].lang;
            r->repo = erows[j].repo;
            r->func_name = erows[j].func;
            r->prediction = erows[j].pred;
            r->gold_json = erows[j].gold;
            j++;
        }
        assert_int_equal(scb_recorder_write_session(rec, run, rows, n, ctx), SCB_OK);
        i = j;
    }
    scb_recorder_finish_run(rec, run, SCB_RUN_FINISHED, NULL, ctx);
    scb_recorder_close(rec);
    return run;
}

static char *slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    struct scb_ctx ctx = {0};
    if (scb_file_read(path, &data, &len, &ctx) != SCB_OK) return NULL;
    return data;
}

/* The reference for the byte format: Python's json.dumps(ensure_ascii=False) of the same
 * records (key order kept by json.loads). Returns NULL when python3 is unavailable. */
static char *python_dumps(const char *in_path, const char *out_path)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "with open(sys.argv[1], encoding=\"utf-8\") as f, open(sys.argv[2], \"w\", encoding=\"utf-8\") as o:\n"
             "    for line in f: o.write(json.dumps(json.loads(line), ensure_ascii=False) + \"\\n\")\n' '%s' '%s'",
             in_path, out_path);
    if (system(cmd) != 0) return NULL;
    return slurp(out_path);
}

static void check_prediction_file(const char *text, const char *task, const char *mode)
{
    /* Parse every line back and compare with the rows written. */
    const char *p = text;
    size_t k = 0;
    for (size_t i = 0; i < N_EROWS; i++) {
        const struct erow *e = &erows[i];
        if (strcmp(e->task, task) || strcmp(e->mode, mode)) continue;
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char *line = scb_strndup(p, (size_t)(nl - p));
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        assert_int_equal(cJSON_GetObjectItem(j, "id")->valueint, e->session);
        assert_int_equal(cJSON_GetObjectItem(j, "turn_idx")->valueint, e->turn);
        assert_string_equal(cJSON_GetObjectItem(j, "prediction")->valuestring, e->pred);
        cJSON *g = cJSON_Parse(e->gold);
        assert_true(cJSON_Compare(cJSON_GetObjectItem(j, "ground_truth"), g, 1));
        cJSON_Delete(g);
        /* First keys in SCBench's order. */
        assert_string_equal(j->child->string, "id");
        assert_string_equal(j->child->next->string, "turn_idx");
        assert_string_equal(j->child->next->next->string, "prediction");
        assert_string_equal(j->child->next->next->next->string, "ground_truth");
        cJSON *t = cJSON_GetObjectItem(j, "task");
        if (e->sub) assert_string_equal(t->valuestring, e->sub);
        else assert_null(t);
        int rkv = !strcmp(task, "scbench_repoqa_and_kv");
        cJSON *lang = cJSON_GetObjectItem(j, "lang"), *repo = cJSON_GetObjectItem(j, "repo"),
              *fn = cJSON_GetObjectItem(j, "func_name");
        if (rkv) {
            assert_string_equal(lang->valuestring, e->lang);
            assert_string_equal(repo->valuestring, e->repo);
            if (!strcmp(e->sub, "scbench_repoqa")) assert_string_equal(fn->valuestring, e->func);
            else assert_null(fn);
        } else {
            assert_null(lang);
            assert_null(repo);
            assert_null(fn);
        }
        cJSON_Delete(j);
        scb_free(line);
        p = nl + 1;
        k++;
    }
    assert_true(k > 0);
    assert_int_equal(*p, '\0');
}

static void test_export_predictions(void **st)
{
    (void)st;
    char path[512], out[512], ref[512];
    make_path(path, sizeof path, "export.db");
    struct scb_ctx ctx = {0};
    int64_t run = write_export_rows(path, &ctx);
    struct scb_db *db = NULL;
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_OK);
    int64_t latest = 0;
    assert_int_equal(scb_export_latest_run(db, &latest, &ctx), SCB_OK);
    assert_int_equal(latest, run);

    static const char *const cases[][2] = {
        {"kv", "multi_turn"}, {"scbench_repoqa_and_kv", "multi_turn"}, {"choice_eng", "multi_request"},
        {"scbench_mf", "scdq"},
    };
    for (size_t c = 0; c < 4; c++) {
        make_path(out, sizeof out, "pred.jsonl");
        make_path(ref, sizeof ref, "pred_ref.jsonl");
        FILE *f = fopen(out, "w");
        assert_non_null(f);
        size_t n = 0;
        assert_int_equal(scb_export_predictions(db, run, "minference+snapkv:budget=2048,window=32", cases[c][0],
                                                cases[c][1], f, &n, &ctx), SCB_OK);
        fclose(f);
        assert_true(n > 0);
        char *text = slurp(out);
        assert_non_null(text);
        char *task = scb_db_task_name(cases[c][0]);
        check_prediction_file(text, task, !strcmp(cases[c][1], "scdq") ? "multi_request" : cases[c][1]);
        char *py = python_dumps(out, ref);
        if (py) assert_string_equal(text, py);
        else printf("# python3 not available: byte comparison with json.dumps skipped\n");
        scb_free(py);
        scb_free(text);
        scb_free(task);
    }
    /* No rows for an unknown method: empty output, not an error. */
    FILE *f = tmpfile();
    size_t n = 7;
    assert_int_equal(scb_export_predictions(db, run, "none", "kv", "multi_turn", f, &n, &ctx), SCB_OK);
    assert_int_equal(n, 0);
    fclose(f);
    scb_db_close(db);
}

static char *summary_of(struct scb_db *db, int64_t run, const char *task, const char *mode)
{
    char p[512];
    make_path(p, sizeof p, "summary.txt");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    struct scb_ctx ctx = {0};
    int rc = scb_export_summary_line(db, run, "minference+snapkv:budget=2048,window=32", task, mode, "TAG", f, &ctx);
    fclose(f);
    assert_int_equal(rc, SCB_OK);
    return slurp(p);
}

static void test_export_summary_and_csv(void **st)
{
    (void)st;
    char path[512], p2[512];
    make_path(path, sizeof path, "export2.db");
    struct scb_ctx ctx = {0};
    int64_t run = write_export_rows(path, &ctx);
    struct scb_db *db = NULL;
    assert_int_equal(scb_db_open(&db, path, SCB_DB_READONLY, &ctx), SCB_OK);

    /* kv multi-turn: turn 0 scores {1, 0} -> 50.000, turn 1 {0, 1} -> 50.000. */
    char *s = summary_of(db, run, "kv", "multi_turn");
    assert_string_equal(s, "TAG,scbench_kv,131072,50.000,50.000\n");
    scb_free(s);
    /* repoqa_and_kv multi-turn: turn 0 repoqa {1, 0} -> 50, no kv -> 0; turn 1 kv {1, 0} -> 50,
     * no repoqa -> 0; turn 2 repoqa {0} -> 0, kv -> 0. */
    s = summary_of(db, run, "scbench_repoqa_and_kv", "multi_turn");
    assert_string_equal(s, "TAG,scbench_repoqa_and_kv,131072,50.000,0.000,0.000,50.000,0.000,0.000\n");
    scb_free(s);
    /* choice_eng multi-request pooled: {1, 0, 1} -> 66.667 */
    s = summary_of(db, run, "choice_eng", "multi_request");
    assert_string_equal(s, "TAG,scbench_choice_eng,scdq_mode,131072,66.667\n");
    scb_free(s);
    FILE *f = tmpfile();
    assert_int_equal(scb_export_summary_line(db, run, "dense", "kv", "multi_turn", "TAG", f, &ctx), SCB_E_NOTFOUND);
    fclose(f);

    /* CSV: header, one line per turn; the quoted prediction with a newline survives. */
    make_path(p2, sizeof p2, "turns.csv");
    f = fopen(p2, "w");
    assert_int_equal(scb_export_csv(db, "turns", run, f, &ctx), SCB_OK);
    fclose(f);
    char *csv = slurp(p2);
    assert_non_null(csv);
    assert_int_equal(strncmp(csv, "id,run_id,method,task,mode,session,turn,sub_task,", 49), 0);
    assert_non_null(strstr(csv, ",\"The value is \"\"9f1e-77\"\".\nDone\","));
    assert_non_null(strstr(csv, ",\"minference+snapkv:budget=2048,window=32\","));
    size_t crlf = 0;
    for (const char *q = csv; (q = strstr(q, "\r\n")); q += 2) crlf++;
    assert_int_equal(crlf, N_EROWS + 1);
    scb_free(csv);
    f = tmpfile();
    assert_int_equal(scb_export_csv(db, "sqlite_schema", run, f, &ctx), SCB_E_INVAL);
    fclose(f);

    /* Python-style helpers on their own. */
    struct scb_buf b = {0};
    assert_int_equal(scb_export_py_json_string(&b, "a\xff" "b\x7f", 4), SCB_OK);
    assert_string_equal(b.data, "\"a\xEF\xBF\xBD" "b\x7f\"");
    b.len = 0;
    assert_int_equal(scb_export_py_json_value(&b, "{\"k\":[1,2.50,\"\\u0041\\n\"]}", &ctx), SCB_OK);
    assert_string_equal(b.data, "{\"k\": [1, 2.5, \"A\\n\"]}");   /* json.dumps(json.loads(...)) */
    b.len = 0;
    assert_int_equal(scb_export_py_json_value(&b, "[1,", &ctx), SCB_E_FORMAT);
    scb_buf_fini(&b);
    scb_db_close(db);
}

static void test_export_cli(void **st)
{
    (void)st;
    const char *exe = getenv("SCBENCH");
    if (!exe || !*exe) { printf("# SCBENCH not set: CLI check skipped\n"); return; }
    char path[512], dir[512], cmd[2048], file[1024];
    make_path(path, sizeof path, "cli.db");
    make_path(dir, sizeof dir, "cli_out/nested");
    struct scb_ctx ctx = {0};
    write_export_rows(path, &ctx);
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --format scbench --out '%s' >/dev/null", exe, path, dir);
    assert_int_equal(system(cmd), 0);
    static const char *const files[] = {
        "prediction_scbench_kv_multi_turn.jsonl", "prediction_scbench_repoqa_and_kv_multi_turn.jsonl",
        "prediction_scbench_choice_eng_scdq.jsonl", "prediction_scbench_mf_scdq.jsonl",
        "Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32_multi_turn_summary.txt",
        "Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32_scdq_summary.txt",
    };
    for (size_t i = 0; i < 6; i++) {
        snprintf(file, sizeof file, "%s/Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32/%s", dir, files[i]);
        assert_true(scb_file_exists(file));
    }
    snprintf(file, sizeof file, "%s/Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32/%s", dir, files[5]);
    char *sum = slurp(file);
    assert_string_equal(sum,
        "Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32_scdq,scbench_choice_eng,scdq_mode,131072,66.667\n"
        "Llama-3.1-8B-Instruct_minference+snapkv_budget=2048-window=32_scdq,scbench_mf,scdq_mode,131072,50.000\n");
    scb_free(sum);

    /* CSV to a folder, and to stdout. */
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --format csv --out '%s/csv' >/dev/null", exe, path, tmp_root);
    assert_int_equal(system(cmd), 0);
    snprintf(file, sizeof file, "%s/csv/runs.csv", tmp_root);
    assert_true(scb_file_exists(file));
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --format csv | grep -c scbench_mf | grep -qx 2", exe, path);
    assert_int_equal(system(cmd), 0);

    /* Errors: missing file, not a database, unknown format, unknown run. */
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s/nope.db' --format csv 2>&1 | grep -q 'nope.db'", exe, tmp_root);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --format csv >/dev/null 2>&1", exe, dir);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --format xml >/dev/null 2>&1", exe, path);
    assert_int_equal(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "'%s' export --db '%s' --run 99 --format scbench --out '%s' 2>&1 | grep -q 'no run with id 99'",
             exe, path, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "'%s' export --help | grep -q 'usage: scbench export'", exe);
    assert_int_equal(system(cmd), 0);
}

/* ---- allocation failures ---------------------------------------------------------------- */
static void test_alloc_failures(void **st)
{
    (void)st;
    char path[512];
    make_path(path, sizeof path, "nomem.db");
    struct scb_ctx ctx = {0};
    struct scb_recorder *rec = NULL;
    struct scb_run_info ri;
    int64_t run = 0;
    int resumed = 0, ok_writes = 0;
    run_info(&ri, cfg_a);
    assert_int_equal(scb_recorder_open(&rec, path, &ctx), SCB_OK);
    assert_int_equal(scb_recorder_begin_run(rec, &ri, &run, &resumed, &ctx), SCB_OK);
    for (int n = 1; n <= 12; n++) {
        struct scb_turn_row rows[2];
        fill_row(&rows[0], "dense", "repoqa_and_kv", "multi_turn", n, 0, 1.0);
        fill_row(&rows[1], "dense", "repoqa_and_kv", "multi_turn", n, 1, 0.0);
        rows[0].sub_task = "repoqa";
        rows[1].sub_task = "kv";
        scb_alloc_fail_after(n, 1);
        int rc = scb_recorder_write_session(rec, run, rows, 2, &ctx);
        scb_alloc_fail_after(0, 0);
        assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
        if (rc == SCB_OK) ok_writes++;
        FILE *f = tmpfile();
        scb_alloc_fail_after(n, 1);
        rc = scb_export_predictions(scb_recorder_db(rec), run, "dense", "repoqa_and_kv", "multi_turn", f, NULL, &ctx);
        int rc2 = scb_export_summary_line(scb_recorder_db(rec), run, "dense", "repoqa_and_kv", "multi_turn", "T", f, &ctx);
        scb_alloc_fail_after(0, 0);
        fclose(f);
        assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
        assert_true(rc2 == SCB_OK || rc2 == SCB_E_NOMEM || rc2 == SCB_E_NOTFOUND);
    }
    struct scb_db *db = scb_recorder_db(rec);
    assert_true(ok_writes > 0 && ok_writes < 12);   /* some failed, some got through */
    assert_int_equal(q_i64(db, "SELECT count(*) FROM sessions"), ok_writes);
    assert_int_equal(q_i64(db, "SELECT count(*) FROM turns"), 2 * ok_writes);
    char *ic = q_text(db, "PRAGMA integrity_check");
    assert_string_equal(ic, "ok");
    scb_free(ic);
    scb_recorder_close(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_create_and_reopen),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_sessions_roundtrip),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_sigkill_mid_session),
        cmocka_unit_test(test_export_predictions),
        cmocka_unit_test(test_export_summary_and_csv),
        cmocka_unit_test(test_export_cli),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
