/* alloc.c — tracked host allocation with fault injection (see alloc.h). Each block carries a
 * 16-byte header holding its size so that live/peak counts stay exact. */
#include "kernels/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16

static atomic_size_t g_live;
static atomic_size_t g_peak;
static atomic_long   g_fail_countdown; /* 0 = off */
static atomic_int    g_fail_sticky;

static int should_fail(void)
{
    long c = atomic_load(&g_fail_countdown);
    if (c <= 0) return 0;
    if (c == 1) {
        if (!atomic_load(&g_fail_sticky)) atomic_store(&g_fail_countdown, 0);
        return 1;
    }
    atomic_fetch_sub(&g_fail_countdown, 1);
    return 0;
}

static void account(size_t add)
{
    size_t live = atomic_fetch_add(&g_live, add) + add;
    size_t peak = atomic_load(&g_peak);
    while (live > peak && !atomic_compare_exchange_weak(&g_peak, &peak, live)) {}
}

void *scb_malloc(size_t n)
{
    if (should_fail() || n > SIZE_MAX - HDR) return NULL;
    unsigned char *p = malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    account(n);
    return p + HDR;
}

void *scb_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = scb_malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *scb_realloc(void *p, size_t n)
{
    if (!p) return scb_malloc(n);
    if (should_fail() || n > SIZE_MAX - HDR) return NULL;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, b, sizeof old);
    unsigned char *nb = realloc(b, n + HDR);
    if (!nb) return NULL;
    memcpy(nb, &n, sizeof n);
    atomic_fetch_sub(&g_live, old);
    account(n);
    return nb + HDR;
}

void scb_free(void *p)
{
    if (!p) return;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t n;
    memcpy(&n, b, sizeof n);
    atomic_fetch_sub(&g_live, n);
    free(b);
}

char *scb_strndup(const char *s, size_t n)
{
    char *d = scb_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *scb_strdup(const char *s) { return s ? scb_strndup(s, strlen(s)) : NULL; }

size_t scb_alloc_live_bytes(void) { return atomic_load(&g_live); }
size_t scb_alloc_peak_bytes(void) { return atomic_load(&g_peak); }
void   scb_alloc_reset_peak(void) { atomic_store(&g_peak, atomic_load(&g_live)); }

void scb_alloc_fail_after(long n, int sticky)
{
    atomic_store(&g_fail_sticky, sticky);
    atomic_store(&g_fail_countdown, n);
}
