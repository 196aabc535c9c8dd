/* pool.h — a small persistent pthread pool for the CPU kernels: run fn(arg, i) for i in
 * [0, n) split into contiguous static ranges, one per thread (the caller is thread 0). Each
 * index is processed by exactly one thread, so kernels that compute each output within one
 * index are deterministic for any thread count. */
#ifndef SCB_KERNELS_CPU_POOL_H
#define SCB_KERNELS_CPU_POOL_H

#include <stddef.h>

#include "kernels/status.h"

struct scb_pool;

/* tid: the running thread's index in [0, n_threads) (for per-thread scratch). */
typedef void (*scb_pool_fn)(void *arg, size_t begin, size_t end, int tid);

/* n_threads >= 1 (1 = no worker threads). */
int  scb_pool_create(struct scb_pool **out, int n_threads, struct scb_ctx *ctx);
void scb_pool_destroy(struct scb_pool *p);   /* NULL is a no-op */
/* Run fn over [0, n); returns when all ranges are done. Not reentrant. */
void scb_pool_run(struct scb_pool *p, scb_pool_fn fn, void *arg, size_t n);
/* As scb_pool_run, but runs fn inline on the calling thread when n * work_per_item (a rough
 * count of floating-point operations) is below SCB_POOL_MIN_WORK: waking the workers costs more
 * than such small jobs (a small model's decode step). Each item is computed by one thread either
 * way, so results do not depend on the choice. */
#define SCB_POOL_MIN_WORK ((size_t)1 << 17)
void scb_pool_run_sized(struct scb_pool *p, scb_pool_fn fn, void *arg, size_t n, size_t work_per_item);
int  scb_pool_threads(const struct scb_pool *p);
/* After a job, workers spin up to `us` microseconds for the next one before they sleep, and the
 * caller spins as long for the workers to finish: a job that follows within that time starts
 * without a wake-up (futex) round trip, at the price of busy CPUs meanwhile. 0 (the default):
 * sleep at once. */
void scb_pool_set_spin_us(struct scb_pool *p, int us);

#endif
