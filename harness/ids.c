/* ids.c — token-id list parsing (see ids.h). */
#include "harness/ids.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>

#include "kernels/alloc.h"

int scb_ids_parse(const char *s, int32_t **ids, size_t *n, struct scb_ctx *ctx)
{
    size_t cap = 16, k = 0;
    int32_t *v = scb_malloc(cap * sizeof *v);
    *ids = NULL;
    *n = 0;
    if (!v) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    const char *p = s;
    for (;;) {
        while (*p == ',' || isspace((unsigned char)*p)) p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > 2147483647L || (*end && *end != ',' && !isspace((unsigned char)*end))) {
            scb_free(v);
            return scb_err(ctx, SCB_E_INVAL, "token ids: item %zu (at character %zu) is not a non-negative "
                           "integer: '%.20s'", k, (size_t)(p - s), p);
        }
        if (k == cap) {
            int32_t *nv = scb_realloc(v, 2 * cap * sizeof *v);
            if (!nv) { scb_free(v); return scb_err(ctx, SCB_E_NOMEM, "out of memory"); }
            v = nv;
            cap *= 2;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    if (!k) { scb_free(v); return scb_err(ctx, SCB_E_INVAL, "token ids: empty list"); }
    *ids = v;
    *n = k;
    return SCB_OK;
}
