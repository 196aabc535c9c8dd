/* util.c — see util.h. */
#include "kernels/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"

/* ---- buffer ---------------------------------------------------------------------------- */
static int buf_reserve(struct scb_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return SCB_OK;
    size_t nc = b->cap ? b->cap : 64;
    while (nc < b->len + extra + 1) nc *= 2;
    char *nd = scb_realloc(b->data, nc);
    if (!nd) return SCB_E_NOMEM;
    b->data = nd;
    b->cap = nc;
    return SCB_OK;
}

int scb_buf_append(struct scb_buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n)) return SCB_E_NOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return SCB_OK;
}

int scb_buf_puts(struct scb_buf *b, const char *s) { return scb_buf_append(b, s, strlen(s)); }
int scb_buf_putc(struct scb_buf *b, char c) { return scb_buf_append(b, &c, 1); }

int scb_buf_printf(struct scb_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { va_end(ap2); return SCB_E_INVAL; }
    if (buf_reserve(b, (size_t)n)) { va_end(ap2); return SCB_E_NOMEM; }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return SCB_OK;
}

char *scb_buf_steal(struct scb_buf *b)
{
    char *d = b->data;
    if (!d) d = scb_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void scb_buf_fini(struct scb_buf *b)
{
    scb_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- files ----------------------------------------------------------------------------- */
int scb_file_read(const char *path, char **out, size_t *len, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *data = NULL;
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return scb_err(ctx, SCB_E_IO, "%s: %s", path, strerror(errno));
    struct scb_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (scb_buf_append(&b, chunk, n)) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
    }
    if (ferror(f)) { rc = scb_err(ctx, SCB_E_IO, "%s: read error: %s", path, strerror(errno)); goto out; }
    if (len) *len = b.len;
    data = scb_buf_steal(&b);
    if (!data) { rc = scb_err(ctx, SCB_E_NOMEM, "%s: out of memory", path); goto out; }
    *out = data;
out:
    if (rc) scb_buf_fini(&b);
    fclose(f);
    return rc;
}

int scb_file_write(const char *path, const void *data, size_t len, struct scb_ctx *ctx)
{
    FILE *f = fopen(path, "wb");
    if (!f) return scb_err(ctx, SCB_E_IO, "%s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, len, f);
    int bad = (w != len) | (fclose(f) != 0);
    if (bad) return scb_err(ctx, SCB_E_IO, "%s: write failed: %s", path, strerror(errno));
    return SCB_OK;
}

int scb_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *scb_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = scb_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

int scb_json_load(const char *path, cJSON **out, struct scb_ctx *ctx)
{
    char *txt = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = scb_file_read(path, &txt, &len, ctx);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!j) {
        size_t off = end ? (size_t)(end - txt) : 0;
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: invalid JSON near byte %zu", path, off);
    } else {
        *out = j;
    }
    scb_free(txt);
    return rc;
}

/* ---- UTF-8 ----------------------------------------------------------------------------- */
int scb_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (n == 0) { *cp = 0xFFFD; return 1; }
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len; uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { len = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; v = c & 0x07; min = 0x10000; }
    else { *cp = 0xFFFD; return 1; }
    if ((size_t)len > n) { *cp = 0xFFFD; return 1; }
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) { *cp = 0xFFFD; return 1; }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = 0xFFFD; return 1; }
    *cp = v;
    return len;
}

int scb_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- time ------------------------------------------------------------------------------ */
double scb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- rng ------------------------------------------------------------------------------- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void scb_rng_seed(struct scb_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t scb_rng_next(struct scb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}

double scb_rng_uniform(struct scb_rng *r) { return (double)(scb_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t scb_rng_below(struct scb_rng *r, uint64_t n)
{
    if (n == 0) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do { x = scb_rng_next(r); } while (x >= lim);
    return x % n;
}

float scb_rng_normal(struct scb_rng *r)
{
    double u1 = scb_rng_uniform(r), u2 = scb_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t scb_hash64(const void *p, size_t n, uint64_t h)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 0x100000001b3ULL; }
    return h;
}
