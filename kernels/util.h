/* util.h — small shared helpers of the ground floor: a growable byte buffer, whole-file
 * reading, JSON files through cJSON with errors that name the file, paths, UTF-8, clocks,
 * and a seeded random generator (xoshiro-style, reproducible across platforms). */
#ifndef SCB_KERNELS_UTIL_H
#define SCB_KERNELS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

struct cJSON;

/* ---- growable buffer (always NUL-terminated when data != NULL) ------------------------- */
struct scb_buf {
    char  *data;  /* owned; NULL until the first append */
    size_t len;   /* bytes used, excluding the terminating NUL */
    size_t cap;   /* bytes allocated */
};
int  scb_buf_append(struct scb_buf *b, const void *p, size_t n);   /* SCB_OK or SCB_E_NOMEM */
int  scb_buf_puts(struct scb_buf *b, const char *s);
int  scb_buf_printf(struct scb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  scb_buf_putc(struct scb_buf *b, char c);
char *scb_buf_steal(struct scb_buf *b);   /* returns data ("" if empty, owned by caller); resets b */
void scb_buf_fini(struct scb_buf *b);

/* ---- files ------------------------------------------------------------------------------- */
/* Read a whole file into a NUL-terminated buffer (owned, free with scb_free). */
int scb_file_read(const char *path, char **out, size_t *len, struct scb_ctx *ctx);
int scb_file_write(const char *path, const void *data, size_t len, struct scb_ctx *ctx);
int scb_file_exists(const char *path);
/* Join dir and name into a new string (owned). NULL on allocation failure. */
char *scb_path_join(const char *dir, const char *name);

/* Parse a JSON file. On failure the message names the file and the byte offset. Caller
 * frees *out with cJSON_Delete. */
int scb_json_load(const char *path, struct cJSON **out, struct scb_ctx *ctx);

/* ---- UTF-8 ----------------------------------------------------------------------------- */
/* Decode one code point at s[0..n). Returns bytes consumed (1..4); on an invalid sequence
 * returns 1 and sets *cp to 0xFFFD. */
int scb_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Encode cp into out (>= 4 bytes). Returns the byte count. */
int scb_utf8_encode(uint32_t cp, char *out);

/* ---- time -------------------------------------------------------------------------------- */
double scb_now_ms(void);   /* monotonic milliseconds */

/* ---- seeded random numbers (splitmix64 seeding + xoshiro256**) ---------------------------- */
struct scb_rng { uint64_t s[4]; };
void     scb_rng_seed(struct scb_rng *r, uint64_t seed);
uint64_t scb_rng_next(struct scb_rng *r);
double   scb_rng_uniform(struct scb_rng *r);            /* [0, 1) */
uint64_t scb_rng_below(struct scb_rng *r, uint64_t n);   /* [0, n), unbiased */
float    scb_rng_normal(struct scb_rng *r);             /* N(0, 1) */

/* ---- hashing ----------------------------------------------------------------------------- */
/* FNV-1a 64-bit, for content fingerprints in provenance (not cryptographic). */
uint64_t scb_hash64(const void *p, size_t n, uint64_t h);
#define SCB_HASH64_INIT 0xcbf29ce484222325ULL

#endif
