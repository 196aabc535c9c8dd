/* cli_compare.c — `scbench compare`: a candidate run against a baseline run, paired by session,
 * with a Markdown verdict on stdout and exit status 1 when a threshold is crossed. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "results/compare.h"
#include "results/db.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench compare --db FILE [--db FILE2] --baseline RUN --candidate RUN\n"
        "                       [--max-accuracy-drop X] [--max-slowdown R] [--require-match]\n"
        "\n"
        "Compare a candidate run with a baseline run, matched by method, mode, task and session, and\n"
        "print a Markdown verdict (for a CI log or a pull-request comment) to stdout.\n"
        "\n"
        "  --db FILE               results database; with a second --db, the baseline run is read from the\n"
        "                          first file and the candidate run from the second\n"
        "  --baseline RUN          baseline run id (required)\n"
        "  --candidate RUN         candidate run id (required)\n"
        "  --max-accuracy-drop X   fail when the Avg score of any (method, mode) drops by more than X points\n"
        "                          (paired point estimate; default 1.0; negative disables)\n"
        "  --max-slowdown R        fail when turn-1 prefill, TTFT or decode ms/token of any (method, mode)\n"
        "                          grows by more than the factor R (e.g. 1.10; default: not checked)\n"
        "  --require-match         fail when a session, task or method has no counterpart\n"
        "  --bootstrap B, --seed N, --level P   bootstrap settings (default 2000, %u, 0.95)\n"
        "  -h, --help              this text\n"
        "\n"
        "exit status: 0 no regression, 1 regression (or an error, e.g. nothing in common), 2 usage error\n"
        "example: scbench compare --db base.db --db new.db --baseline 1 --candidate 1 --max-slowdown 1.2\n",
        SCB_BOOT_DEFAULT_SEED);
}

int scb_cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"baseline", required_argument, NULL, 'b'},
        {"candidate", required_argument, NULL, 'c'},
        {"max-accuracy-drop", required_argument, NULL, 'a'},
        {"max-slowdown", required_argument, NULL, 's'},
        {"require-match", no_argument, NULL, 'm'},
        {"bootstrap", required_argument, NULL, 'B'},
        {"seed", required_argument, NULL, 'S'},
        {"level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dbs[2] = {NULL, NULL};
    int n_db = 0, c, status = 0;
    long base = 0, cand = 0, v;
    double x;
    struct scb_cmp_opts co;
    struct scb_cmp_result res;
    struct scb_ctx ctx = {0};
    struct scb_db *db1 = NULL, *db2 = NULL;

    scb_cmp_opts_default(&co);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (n_db == 2) return scb_cli_usage_error("compare", "--db given more than twice");
            dbs[n_db++] = optarg;
            break;
        case 'b': if (scb_cli_parse_long("compare", "--baseline", optarg, 1, 0x7fffffffL, &base)) return 2; break;
        case 'c': if (scb_cli_parse_long("compare", "--candidate", optarg, 1, 0x7fffffffL, &cand)) return 2; break;
        case 'a':
            if (scb_cli_parse_double("compare", "--max-accuracy-drop", optarg, &x)) return 2;
            if (!(x <= 100)) return scb_cli_usage_error("compare", "--max-accuracy-drop is in points (<= 100), got '%s'", optarg);
            co.max_accuracy_drop = x;
            break;
        case 's':
            if (scb_cli_parse_double("compare", "--max-slowdown", optarg, &x)) return 2;
            if (!(x >= 1)) return scb_cli_usage_error("compare", "--max-slowdown is a ratio >= 1 (e.g. 1.1), got '%s'", optarg);
            co.max_slowdown = x;
            break;
        case 'm': co.require_match = 1; break;
        case 'B':
            if (scb_cli_parse_long("compare", "--bootstrap", optarg, 1, 1000000, &v)) return 2;
            co.boot.B = (int)v;
            break;
        case 'S':
            if (scb_cli_parse_long("compare", "--seed", optarg, 0, 0x7fffffffL, &v)) return 2;
            co.boot.seed = (uint64_t)v;
            break;
        case 'l':
            if (scb_cli_parse_double("compare", "--level", optarg, &x)) return 2;
            if (!(x > 0 && x < 1)) return scb_cli_usage_error("compare", "--level must be in (0, 1), got '%s'", optarg);
            co.boot.level = x;
            break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error("compare", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error("compare", "unexpected argument '%s'", argv[optind]);
    if (!n_db) return scb_cli_usage_error("compare", "--db FILE is required");
    if (!base || !cand) return scb_cli_usage_error("compare", "--baseline RUN and --candidate RUN are required");

    if (scb_db_open(&db1, dbs[0], SCB_DB_READONLY, &ctx) < 0) return scb_cli_fail("compare", &ctx);
    if (n_db == 2 && scb_db_open(&db2, dbs[1], SCB_DB_READONLY, &ctx) < 0) { status = scb_cli_fail("compare", &ctx); goto out; }
    if (scb_cmp_runs(db1, base, db2 ? db2 : db1, cand, &co, stdout, &res, &ctx) < 0) {
        status = scb_cli_fail("compare", &ctx);
        goto out;
    }
    fflush(stdout);
    if (res.regression) {
        fprintf(stderr, "scbench compare: regression (worst accuracy drop %.2f points, worst slowdown %.3fx%s)\n",
                res.worst_drop > 0 ? res.worst_drop : 0.0, res.worst_slowdown,
                co.require_match && res.n_unmatched ? ", unmatched sessions" : "");
        status = 1;
    }
out:
    scb_db_close(db2);
    scb_db_close(db1);
    return status;
}
