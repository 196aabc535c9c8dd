/* pool.c — persistent pthread pool with static range partitioning (see pool.h). A job is
 * published by bumping `gen` (release) after its fields are written; workers that are spinning
 * (scb_pool_set_spin_us) see it without the mutex, sleeping ones are woken under the mutex
 * (gen changes and `sleepers` is read under it, so no wake-up is lost). Completion: `pending`
 * counts down atomically; the caller spins on it for the same time, then sleeps on cv_done (the
 * worker that reaches 0 signals under the mutex). Spinning yields the CPU every ~1000 pauses, so
 * threads that outnumber the free CPUs still get to run. */
#include "kernels/cpu/pool.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "kernels/alloc.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

struct scb_pool {
    int n_threads;
    pthread_t *threads;          /* (n_threads - 1) workers */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    unsigned long gen;           /* incremented per job (atomic; written under mu) */
    int pending;                 /* workers still running the current job (atomic) */
    int sleepers;                /* workers waiting on cv_work (under mu) */
    int stop;                    /* atomic */
    long spin_ns;                /* atomic: how long a worker / the caller spins before sleeping */
    scb_pool_fn fn;
    void *arg;
    size_t n;
};

struct worker_arg { struct scb_pool *p; int idx; };

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static void run_range(struct scb_pool *p, int idx)
{
    size_t n = p->n, nt = (size_t)p->n_threads;
    size_t b = n * (size_t)idx / nt, e = n * (size_t)(idx + 1) / nt;
    if (b < e) p->fn(p->arg, b, e, idx);
}

/* Spin up to spin_ns while gen == seen and no stop; 1 when it changed (a job or stop). */
static int spin_gen(struct scb_pool *p, unsigned long seen)
{
    const long spin = __atomic_load_n(&p->spin_ns, __ATOMIC_RELAXED);
    if (spin <= 0) return 0;
    const long end = now_ns() + spin;
    for (int i = 0;; i++) {
        if (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) != seen || __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE))
            return 1;
        POOL_PAUSE();
        if ((i & 63) == 63) {
            if (now_ns() > end) return 0;
            if ((i & 1023) == 1023) sched_yield();   /* more threads than free CPUs: let them run */
        }
    }
}

static void *worker(void *a)
{
    struct worker_arg *wa = a;
    struct scb_pool *p = wa->p;
    int idx = wa->idx;
    scb_free(wa);
    unsigned long seen = 0;
    for (;;) {
        if (!spin_gen(p, seen)) {
            pthread_mutex_lock(&p->mu);
            while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) && __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen) {
                p->sleepers++;
                pthread_cond_wait(&p->cv_work, &p->mu);
                p->sleepers--;
            }
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) break;
        seen = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
        run_range(p, idx);
        if (__atomic_sub_fetch(&p->pending, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
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
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
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
    p->fn = fn; p->arg = arg; p->n = n;   /* no worker reads these until gen changes */
    __atomic_store_n(&p->pending, p->n_threads - 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&p->mu);
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_RELEASE);
    if (p->sleepers) pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_range(p, 0);
    const long spin = __atomic_load_n(&p->spin_ns, __ATOMIC_RELAXED);
    if (spin > 0) {
        const long end = now_ns() + spin;
        for (int i = 0; __atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0; i++) {
            POOL_PAUSE();
            if ((i & 63) == 63) {
                if (now_ns() > end) break;
                if ((i & 1023) == 1023) sched_yield();
            }
        }
    }
    if (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0) {
        pthread_mutex_lock(&p->mu);
        while (__atomic_load_n(&p->pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void scb_pool_run_sized(struct scb_pool *p, scb_pool_fn fn, void *arg, size_t n, size_t work_per_item)
{
    if (n && n * work_per_item < SCB_POOL_MIN_WORK) { fn(arg, 0, n, 0); return; }
    scb_pool_run(p, fn, arg, n);
}

int scb_pool_threads(const struct scb_pool *p) { return p->n_threads; }

void scb_pool_set_spin_us(struct scb_pool *p, int us)
{
    __atomic_store_n(&p->spin_ns, us > 0 ? (long)us * 1000L : 0L, __ATOMIC_RELAXED);
}
