/* pool.c — persistent pthread pool with static range partitioning (see pool.h). */
#include "kernels/cpu/pool.h"

#include <pthread.h>

#include "kernels/alloc.h"

struct scb_pool {
    int n_threads;
    pthread_t *threads;          /* (n_threads - 1) workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    unsigned long gen;           /* incremented per job */
    int pending;                 /* workers still running the current job */
    int stop;
    scb_pool_fn fn;
    void *arg;
    size_t n;
};

struct worker_arg { struct scb_pool *p; int idx; };

static void run_range(struct scb_pool *p, int idx)
{
    size_t n = p->n, nt = (size_t)p->n_threads;
    size_t b = n * (size_t)idx / nt, e = n * (size_t)(idx + 1) / nt;
    if (b < e) p->fn(p->arg, b, e, idx);
}

static void *worker(void *a)
{
    struct worker_arg *wa = a;
    struct scb_pool *p = wa->p;
    int idx = wa->idx;
    scb_free(wa);
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_range(p, idx);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int scb_pool_create(struct scb_pool **out, int n_threads, struct scb_ctx *ctx)
{
    *out = NULL;
    if (n_threads < 1) n_threads = 1;
    struct scb_pool *p = scb_calloc(1, sizeof *p);
    if (!p) return scb_err(ctx, SCB_E_NOMEM, "thread pool: out of memory");
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = scb_calloc((size_t)n_threads, sizeof(pthread_t));
    if (!p->threads) { scb_pool_destroy(p); return scb_err(ctx, SCB_E_NOMEM, "thread pool: out of memory"); }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *wa = scb_malloc(sizeof *wa);
        if (!wa) { p->n_threads = i; scb_pool_destroy(p); return scb_err(ctx, SCB_E_NOMEM, "thread pool: out of memory"); }
        wa->p = p; wa->idx = i;
        if (pthread_create(&p->threads[i - 1], NULL, worker, wa) != 0) {
            scb_free(wa);
            p->n_threads = i;
            scb_pool_destroy(p);
            return scb_err(ctx, SCB_E_NOMEM, "thread pool: cannot start thread %d", i);
        }
    }
    *out = p;
    return SCB_OK;
}

void scb_pool_destroy(struct scb_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    if (p->threads)
        for (int i = 1; i < p->n_threads; i++) pthread_join(p->threads[i - 1], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    scb_free(p->threads);
    scb_free(p);
}

void scb_pool_run(struct scb_pool *p, scb_pool_fn fn, void *arg, size_t n)
{
    if (p->n_threads == 1 || n < 2) { if (n) fn(arg, 0, n, 0); return; }
    pthread_mutex_lock(&p->mu);
    p->fn = fn; p->arg = arg; p->n = n;
    p->pending = p->n_threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_range(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void scb_pool_run_sized(struct scb_pool *p, scb_pool_fn fn, void *arg, size_t n, size_t work_per_item)
{
    if (n && n * work_per_item < SCB_POOL_MIN_WORK) { fn(arg, 0, n, 0); return; }
    scb_pool_run(p, fn, arg, n);
}

int scb_pool_threads(const struct scb_pool *p) { return p->n_threads; }
