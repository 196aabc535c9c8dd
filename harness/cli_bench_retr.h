/* cli_bench_retr.h — `scbench bench retr-scan` (harness/cli_bench_retr.c): the host flat scan of
 * RetrievalAttention's device binding, old vs new, with the host's read bandwidth and floor. */
#ifndef SCB_HARNESS_CLI_BENCH_RETR_H
#define SCB_HARNESS_CLI_BENCH_RETR_H

/* argv[0] is "retr-scan"; options as `scbench bench retr-scan --help` prints. Returns the exit
 * status (0 ok, 2 usage error, 1 failure). */
int scb_bench_retr_scan(int argc, char **argv);

#include <stddef.h>

#include "kernels/status.h"

/* The host's read bandwidth in GB/s (1e9 bytes): `threads` pool threads each summing their part
 * of a mib MiB buffer, best of 3 after a warm-up (what `bench retr-scan` prints; `bench cuda
 * --method retr_attn` uses it for the host part of the floor). *rc: SCB_OK or a negative status
 * (detail in ctx). */
double scb_bench_host_read_gbps(int threads, size_t mib, struct scb_ctx *ctx, int *rc);

#endif
