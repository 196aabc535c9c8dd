/* test_pool.c — the CPU thread pool (kernels/cpu/pool.h): every index of a job is processed
 * exactly once, by the thread its static range names, for job sizes below, at and above the
 * thread count, over many consecutive jobs (the publish / complete handshake), with the workers
 * sleeping between jobs (spin 0), spinning (scb_pool_set_spin_us), spin switched between jobs,
 * jobs that take longer than the spin, and destruction while the workers spin. Seeded sizes,
 * seed printed (SCB_TEST_SEED overrides). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "kernels/cpu/pool.h"
#include "kernels/util.h"

static uint64_t seed = 20261126;

struct job {
    int *hits;     /* (n) times each index ran */
    int *tid_of;   /* (n) the thread that ran it */
    int nt;
    size_t n;
    long sleep_ns; /* per range, to outlast the spin */
};

static void job_fn(void *arg, size_t b, size_t e, int tid)
{
    struct job *j = arg;
    for (size_t i = b; i < e; i++) {
        __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
        j->tid_of[i] = tid;
    }
    if (j->sleep_ns) {
        struct timespec ts = {0, j->sleep_ns};
        nanosleep(&ts, NULL);
    }
}

static void check_job(struct scb_pool *p, struct job *j)
{
    memset(j->hits, 0, sizeof(int) * j->n);
    memset(j->tid_of, 0xff, sizeof(int) * j->n);
    scb_pool_run(p, job_fn, j, j->n);
    for (size_t i = 0; i < j->n; i++) {
        if (j->hits[i] != 1) fail_msg("n=%zu index %zu ran %d times (seed %llu)", j->n, i, j->hits[i],
                                      (unsigned long long)seed);
        /* static ranges: thread t owns [n*t/nt, n*(t+1)/nt), or the caller alone when n < 2 */
        int want = 0;
        if (j->nt > 1 && j->n >= 2)
            for (int t = 0; t < j->nt; t++)
                if (i >= j->n * (size_t)t / (size_t)j->nt && i < j->n * (size_t)(t + 1) / (size_t)j->nt) want = t;
        assert_int_equal(j->tid_of[i], want);
    }
}

static void test_pool_jobs(void **st)
{
    (void)st;
    struct scb_rng r;
    scb_rng_seed(&r, seed);
    const int nts[] = {1, 2, 3, 5};
    for (int ti = 0; ti < 4; ti++) {
        struct scb_pool *p = NULL;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_pool_create(&p, nts[ti], &ctx), SCB_OK);
        assert_int_equal(scb_pool_threads(p), nts[ti]);
        struct job j = {.hits = malloc(sizeof(int) * 300), .tid_of = malloc(sizeof(int) * 300), .nt = nts[ti]};
        for (int rep = 0; rep < 200; rep++) {
            /* spin: off, 200 us, off again, 1 us (shorter than a job) across the reps */
            if (rep % 50 == 0) scb_pool_set_spin_us(p, (int[]){0, 200, 0, 1}[rep / 50]);
            j.n = rep < 8 ? (size_t)rep : (size_t)scb_rng_below(&r, 300) + 1;
            j.sleep_ns = rep % 37 == 0 ? 300000 : 0;   /* now and then longer than the spin */
            check_job(p, &j);
        }
        scb_pool_set_spin_us(p, 500);
        check_job(p, &j);
        scb_pool_destroy(p);   /* while the workers spin */
        free(j.hits);
        free(j.tid_of);
    }
    scb_pool_destroy(NULL);
}

int main(void)
{
    const char *e = getenv("SCB_TEST_SEED");
    if (e) seed = strtoull(e, NULL, 10);
    printf("test_pool seed %llu\n", (unsigned long long)seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
