/* alloc.h — host allocation through one replaceable table (as SQLite's mem_methods), so tests
 * can fail the Nth allocation and the harness can record peak host bytes per run.
 *
 * scb_malloc/scb_calloc/scb_realloc/scb_free track live and peak bytes (a small header per
 * block). scb_free(NULL) is a no-op. Allocations of size 0 return a valid unique pointer. */
#ifndef SCB_KERNELS_ALLOC_H
#define SCB_KERNELS_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *scb_malloc(size_t n);
void *scb_calloc(size_t count, size_t size);
void *scb_realloc(void *p, size_t n);
void  scb_free(void *p);
char *scb_strdup(const char *s);
char *scb_strndup(const char *s, size_t n);

/* Live and peak bytes allocated through scb_malloc (thread-safe counters). */
size_t scb_alloc_live_bytes(void);
size_t scb_alloc_peak_bytes(void);
void   scb_alloc_reset_peak(void);

/* Fault injection for tests: the Nth allocation from now (1-based) and every later one fail
 * while `sticky` is set, only the Nth otherwise. n = 0 disables. */
void scb_alloc_fail_after(long n, int sticky);

#endif
