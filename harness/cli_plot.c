/* cli_plot.c — `scbench plot`: gnuplot figures (PNG and SVG) of runs in the results database.
 * Method budgets that a spec leaves at their defaults are resolved through the method
 * registry, so "snapkv" plots at SnapKV's default budget. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "harness/cli.h"
#include "kernels/alloc.h"
#include "methods/method.h"
#include "results/db.h"
#include "results/plot.h"
#include "results/report.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench plot --db FILE --out DIR [--run ID ...] [--gnuplot PROG] [--no-render]\n"
        "\n"
        "Figures of a run (or several) as PNG and SVG, with the data (.dat) and gnuplot scripts (.gp)\n"
        "beside them: accuracy by turn, accuracy against token budget, category scores, accuracy\n"
        "against KV bytes kept, time per session by stage and context length, bench throughput\n"
        "against the device limits. Written file names are printed to stdout.\n"
        "\n"
        "  --db FILE       results database (required)\n"
        "  --out DIR       output folder, created if missing (required)\n"
        "  --run ID        run to plot; repeat or separate by commas (default: the newest)\n"
        "  --gnuplot PROG  gnuplot program (default: gnuplot on PATH)\n"
        "  --no-render     write the .dat and .gp files only\n"
        "  --bootstrap B, --seed N   error-bar bootstrap settings (default 2000, %u)\n"
        "  -h, --help      this text\n"
        "\n"
        "Without gnuplot the .dat and .gp files are written, a message says so on stderr and the exit\n"
        "status is 0; render later with `cd DIR && gnuplot NAME.gp`.\n"
        "example: scbench plot --db results.db --out figures/\n", SCB_BOOT_DEFAULT_SEED);
}

/* Budget of a spec with every default resolved by the method registry. */
static int budget_from_registry(void *ud, const char *spec, char *family, size_t family_n, double *budget)
{
    (void)ud; (void)family; (void)family_n;
    struct scb_method_spec ms;
    struct scb_ctx ctx = {0};
    char *json = NULL;
    *budget = 0;
    if (scb_method_spec_parse(spec, &ms, &ctx) < 0) return SCB_OK;   /* unknown spec: no budget */
    if (scb_method_spec_json(&ms, &json, &ctx) == SCB_OK) scb_plot_json_budget(json, budget);
    scb_free(json);
    scb_method_spec_fini(&ms);
    return SCB_OK;
}

int scb_cmd_plot(int argc, char **argv)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'},
        {"out", required_argument, NULL, 'o'},
        {"run", required_argument, NULL, 'r'},
        {"gnuplot", required_argument, NULL, 'g'},
        {"no-render", no_argument, NULL, 'n'},
        {"bootstrap", required_argument, NULL, 'B'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *db_path = NULL;
    int64_t runs[64];
    size_t n_runs = 0;
    struct scb_plot_opts po;
    struct scb_plot_result res;
    struct scb_ctx ctx = {0};
    struct scb_db *db = NULL;
    struct scb_rep_data *d = NULL;
    int status = 0, c;
    long v;

    scb_plot_opts_default(&po);
    po.budget_of = budget_from_registry;
    po.log = stdout;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': db_path = optarg; break;
        case 'o': po.out_dir = optarg; break;
        case 'r': if (scb_cli_parse_runs("plot", optarg, runs, &n_runs, 64)) return 2; break;
        case 'g': po.gnuplot = optarg; break;
        case 'n': po.no_render = 1; break;
        case 'B':
            if (scb_cli_parse_long("plot", "--bootstrap", optarg, 1, 1000000, &v)) return 2;
            po.boot.B = (int)v;
            break;
        case 's':
            if (scb_cli_parse_long("plot", "--seed", optarg, 0, 0x7fffffffL, &v)) return 2;
            po.boot.seed = (uint64_t)v;
            break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error("plot", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error("plot", "unexpected argument '%s'", argv[optind]);
    if (!db_path) return scb_cli_usage_error("plot", "--db FILE is required");
    if (!po.out_dir || !*po.out_dir) return scb_cli_usage_error("plot", "--out DIR is required");

    if (scb_db_open(&db, db_path, SCB_DB_READONLY, &ctx) < 0) return scb_cli_fail("plot", &ctx);
    if (scb_rep_load(db, runs, n_runs, &d, &ctx) < 0 || scb_plot_write(d, &po, &res, &ctx) < 0) {
        status = scb_cli_fail("plot", &ctx);
    } else if (!res.gnuplot_found && !po.no_render) {
        fprintf(stderr, "scbench plot: gnuplot ('%s') not found: wrote %zu data files and scripts to %s but no images; "
                        "install gnuplot (Debian: apt-get install gnuplot-nox) and run `gnuplot NAME.gp` there\n",
                po.gnuplot ? po.gnuplot : "gnuplot", res.n_scripts, po.out_dir);
    }
    scb_rep_data_free(d);
    scb_db_close(db);
    return status;
}
