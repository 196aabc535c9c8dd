/* cli_export.c — `scbench export`: a run of the results database as SCBench's own result
 * folder (prediction JSONL per method/task/mode plus summary files) or as CSV. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "harness/cli.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "results/db.h"
#include "results/export.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench export --db FILE [--run ID|all] --format csv|scbench [--out DIR]\n"
        "\n"
        "Export results from the database a run wrote.\n"
        "\n"
        "  --db FILE         results database (required)\n"
        "  --run ID          the run to export (default: the newest); 'all' exports every run (csv only)\n"
        "  --format scbench  SCBench's layout: DIR/<model>_<method>/prediction_<task>{_multi_turn|_scdq}.jsonl\n"
        "                    and <model>_<method>{_multi_turn|_scdq}_summary.txt (DIR default: .),\n"
        "                    readable by SCBench's compute_scores.py\n"
        "  --format csv      the turns table as CSV to stdout; with --out DIR writes DIR/turns.csv,\n"
        "                    DIR/runs.csv and DIR/bench.csv\n"
        "  --out DIR         output folder (created if missing)\n"
        "  -h, --help        this text\n"
        "\n"
        "example: scbench export --db results.db --format scbench --out results/\n");
}

static int write_csv_file(struct scb_db *db, const char *dir, const char *table, int64_t run,
                          struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char name[32];
    snprintf(name, sizeof name, "%s.csv", table);
    char *path = scb_path_join(dir, name);
    FILE *f = NULL;
    if (!path) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    f = fopen(path, "w");
    if (!f) { rc = scb_err(ctx, SCB_E_IO, "%s: cannot create: %s", path, strerror(errno)); goto out; }
    rc = scb_export_csv(db, table, run, f, ctx);
    if (fclose(f) != 0 && rc == SCB_OK) rc = scb_err(ctx, SCB_E_IO, "%s: write failed: %s", path, strerror(errno));
    if (rc == SCB_OK) printf("%s\n", path);
out:
    scb_free(path);
    return rc;
}

int scb_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"run", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_path = NULL, *format = NULL, *out = NULL, *run_arg = NULL;
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    int status = 0, c;
    int64_t run = 0;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'r': run_arg = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error("export", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
    if (!db_path) return scb_cli_usage_error("export", "--db FILE is required");
    if (!format) return scb_cli_usage_error("export", "--format csv|scbench is required");
    if (strcmp(format, "csv") && strcmp(format, "scbench"))
        return scb_cli_usage_error("export", "--format must be csv or scbench, got '%s'", format);
    int all = run_arg && !strcmp(run_arg, "all");
    if (all && !strcmp(format, "scbench"))
        return scb_cli_usage_error("export", "--run all works with --format csv only");
    if (run_arg && !all) {
        long v;
        if (scb_cli_parse_long("export", "--run", run_arg, 1, 0x7fffffffL, &v)) return 2;
        run = v;
    }

    if (scb_db_open(&db, db_path, SCB_DB_READONLY, &ctx) < 0) return scb_cli_fail("export", &ctx);
    if (!run && !all && scb_export_latest_run(db, &run, &ctx) < 0) { status = scb_cli_fail("export", &ctx); goto out; }

    if (!strcmp(format, "scbench")) {
        if (scb_export_scbench_dir(db, run, out ? out : ".", stdout, &ctx) < 0) status = scb_cli_fail("export", &ctx);
    } else if (!out) {
        if (scb_export_csv(db, "turns", all ? 0 : run, stdout, &ctx) < 0) status = scb_cli_fail("export", &ctx);
    } else {
        static const char *const tables[] = {"turns", "runs", "bench"};
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            scb_err(&ctx, SCB_E_IO, "%s: cannot create directory: %s", out, strerror(errno));
            status = scb_cli_fail("export", &ctx);
            goto out;
        }
        for (int i = 0; i < 3 && !status; i++)
            if (write_csv_file(db, out, tables[i], all ? 0 : run, &ctx) < 0) status = scb_cli_fail("export", &ctx);
    }
out:
    scb_db_close(db);
    return status;
}
