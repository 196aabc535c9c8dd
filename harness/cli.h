/* cli.h — the scbench command line: a table of subcommands, each a function that takes the
 * arguments after the command name (argv[0] = command name) and returns the process exit
 * status (0 success, 1 failure, 2 usage error). Commands print results to stdout and errors,
 * prefixed "scbench <cmd>: ", to stderr. Only main() calls exit. */
#ifndef SCB_HARNESS_CLI_H
#define SCB_HARNESS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

struct scb_cli_command {
    const char *name;
    const char *summary;                     /* one line for `scbench --help` */
    int (*run)(int argc, char **argv);      /* argv[0] is the command name */
};

/* Dispatch: argv[1] names the command. Returns the exit status. */
int scb_cli_main(int argc, char **argv);

/* Print "scbench CMD: message" from ctx to stderr; returns 1 (the failure exit status). */
int scb_cli_fail(const char *cmd, const struct scb_ctx *ctx);
/* Print "scbench CMD: usage error text" + a hint to run --help; returns 2. */
int scb_cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse integers/floats from option arguments; on error prints a usage error naming opt. */
int scb_cli_parse_long(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);
/* Parse a --run value "3" or "3,4" (run ids >= 1), appending to runs[0..cap); *n counts them.
 * Returns 0, or the usage exit status (2) after printing the error. */
int scb_cli_parse_runs(const char *cmd, const char *arg, int64_t *runs, size_t *n, size_t cap);
int scb_cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);

/* Subcommands (harness/cli_*.c), one declaration per command. */
int scb_cmd_tasks(int argc, char **argv);
int scb_cmd_export(int argc, char **argv);
int scb_cmd_methods(int argc, char **argv);
int scb_cmd_score(int argc, char **argv);
int scb_cmd_forward(int argc, char **argv);
int scb_cmd_generate(int argc, char **argv);
int scb_cmd_bench(int argc, char **argv);
int scb_cmd_chat_template(int argc, char **argv);
int scb_cmd_tokenize(int argc, char **argv);
int scb_cmd_report(int argc, char **argv);
int scb_cmd_plot(int argc, char **argv);
int scb_cmd_compare(int argc, char **argv);
int scb_cmd_data(int argc, char **argv);

int scb_cmd_prompts(int argc, char **argv);
int scb_cmd_run(int argc, char **argv);
int scb_cmd_search_patterns(int argc, char **argv);

#endif
