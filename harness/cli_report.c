/* cli_report.c — `scbench report`: the paper's tables from the results database, with
 * bootstrap confidence intervals and paired differences against full attention. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "kernels/alloc.h"
#include "results/db.h"
#include "results/report.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench report --db FILE [--run ID ...] [--format md|html|csv] [options]\n"
        "\n"
        "Tables of a run (or several) from the results database: accuracy per category for each method,\n"
        "multi-turn and multi-request side by side (the paper's main table), paired differences against\n"
        "full attention, per-task and per-turn tables, and the cost of each method. Written to stdout.\n"
        "\n"
        "  --db FILE              results database (required)\n"
        "  --run ID               run to report; repeat or separate by commas for several (default: the newest)\n"
        "  --format md|html|csv   Markdown (default), a standalone HTML page, or tidy CSV\n"
        "                         (table,run,method,mode,key,value,ci_lo,ci_hi,n)\n"
        "  --baseline METHOD      method the differences are taken against (default: dense)\n"
        "  --bootstrap B          bootstrap replicates (default 2000; 0 is not allowed)\n"
        "  --seed N               bootstrap seed (default %u)\n"
        "  --level P              interval coverage in (0, 1) (default 0.95)\n"
        "  -h, --help             this text\n"
        "\n"
        "Intervals: percentile bootstrap resampling sessions within each task (see docs/reports.md).\n"
        "example: scbench report --db results.db --format md > report.md\n", SCB_BOOT_DEFAULT_SEED);
}

int scb_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"run", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"baseline", required_argument, NULL, 'b'},
        {"bootstrap", required_argument, NULL, 'B'},
        {"seed", required_argument, NULL, 's'},
        {"level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_path = NULL;
    int64_t runs[64];
    size_t n_runs = 0;
    struct scb_rep_opts ro;
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    struct scb_rep_data *d = NULL;
    int status = 0, c;
    long v;
    double x;

    scb_rep_opts_default(&ro);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'r': if (scb_cli_parse_runs("report", optarg, runs, &n_runs, 64)) return 2; break;
        case 'f':
            if (!strcmp(optarg, "md")) ro.format = SCB_REP_MD;
            else if (!strcmp(optarg, "html")) ro.format = SCB_REP_HTML;
            else if (!strcmp(optarg, "csv")) ro.format = SCB_REP_CSV;
            else return scb_cli_usage_error("report", "--format must be md, html or csv, got '%s'", optarg);
            break;
        case 'b': ro.baseline_method = optarg; break;
        case 'B':
            if (scb_cli_parse_long("report", "--bootstrap", optarg, 1, 1000000, &v)) return 2;
            ro.boot.B = (int)v;
            break;
        case 's':
            if (scb_cli_parse_long("report", "--seed", optarg, 0, 0x7fffffffL, &v)) return 2;
            ro.boot.seed = (uint64_t)v;
            break;
        case 'l':
            if (scb_cli_parse_double("report", "--level", optarg, &x)) return 2;
            if (!(x > 0 && x < 1)) return scb_cli_usage_error("report", "--level must be in (0, 1), got '%s'", optarg);
            ro.boot.level = x;
            break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error("report", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    if (!db_path) return scb_cli_usage_error("report", "--db FILE is required");

    if (scb_db_open(&db, db_path, SCB_DB_READONLY, &ctx) < 0) return scb_cli_fail("report", &ctx);
    if (scb_rep_load(db, runs, n_runs, &d, &ctx) < 0 || scb_rep_write(d, &ro, stdout, &ctx) < 0)
        status = scb_cli_fail("report", &ctx);
    if (!status && fflush(stdout) != 0) { scb_err(&ctx, SCB_E_IO, "writing to stdout failed"); status = scb_cli_fail("report", &ctx); }
    scb_rep_data_free(d);
    scb_db_close(db);
    return status;
}
