/* cli_bench_retr.h — `scbench bench retr-scan` (harness/cli_bench_retr.c): the host flat scan of
 * RetrievalAttention's device binding, old vs new, with the host's read bandwidth and floor. */
#ifndef SCB_HARNESS_CLI_BENCH_RETR_H
#define SCB_HARNESS_CLI_BENCH_RETR_H

/* argv[0] is "retr-scan"; options as `scbench bench retr-scan --help` prints. Returns the exit
 * status (0 ok, 2 usage error, 1 failure). */
int scb_bench_retr_scan(int argc, char **argv);

#endif
