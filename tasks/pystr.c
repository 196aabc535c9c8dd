/* pystr.c — Python str semantics on code-point arrays (see pystr.h) and the lookups over the
 * generated Unicode tables (unicode_tables.h). The Final_Sigma rule follows CPython's
 * handle_capital_sigma: U+03A3 lowers to U+03C2 when a cased letter precedes it (skipping
 * case-ignorable characters) and no cased letter follows it (skipping the same). */
#include "tasks/pystr.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "tasks/unicode_tables.h"

/* ---- table lookups ---------------------------------------------------------------------- */
static const struct scb_uc_map *map_find(const struct scb_uc_map *m, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m[mid].cp == cp) return &m[mid];
        if (m[mid].cp < cp) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static int range_has(const struct scb_uc_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int scb_uc_lower(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) { out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp; return 1; }
    if (cp == 0x3A3) { out[0] = 0x3C3; return 1; }
    const struct scb_uc_map *m = map_find(scb_uc_lower_map, scb_uc_lower_map_n, cp);
    if (!m) { out[0] = cp; return 1; }
    for (int i = 0; i < m->n; i++) out[i] = m->to[i];
    return m->n;
}

int scb_uc_upper(uint32_t cp, uint32_t out[3])
{
    if (cp < 0x80) { out[0] = (cp >= 'a' && cp <= 'z') ? cp - 32 : cp; return 1; }
    const struct scb_uc_map *m = map_find(scb_uc_upper_map, scb_uc_upper_map_n, cp);
    if (!m) { out[0] = cp; return 1; }
    for (int i = 0; i < m->n; i++) out[i] = m->to[i];
    return m->n;
}

int scb_uc_is_cased(uint32_t cp) { return range_has(scb_uc_cased_ranges, scb_uc_cased_ranges_n, cp); }
int scb_uc_is_ignorable(uint32_t cp)
{
    return range_has(scb_uc_ignorable_ranges, scb_uc_ignorable_ranges_n, cp);
}
int scb_uc_is_space(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    return range_has(scb_uc_space_ranges, scb_uc_space_ranges_n, cp);
}
int scb_uc_is_word(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    return range_has(scb_uc_word_ranges, scb_uc_word_ranges_n, cp);
}
int scb_uc_digit_value(uint32_t cp)
{
    if (cp < 0x80) return (cp >= '0' && cp <= '9') ? (int)(cp - '0') : -1;
    size_t lo = 0, hi = scb_uc_digit_ranges_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct scb_uc_digit *d = &scb_uc_digit_ranges[mid];
        if (cp < d->lo) hi = mid;
        else if (cp > d->hi) lo = mid + 1;
        else return d->v0 + (int)(cp - d->lo);
    }
    return -1;
}

/* ---- strings ---------------------------------------------------------------------------- */
int scb_pystr_push(struct scb_pystr *s, uint32_t cp)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 32;
        uint32_t *p = scb_realloc(s->cp, nc * sizeof *p);
        if (!p) return SCB_E_NOMEM;
        s->cp = p;
        s->cap = nc;
    }
    s->cp[s->n++] = cp;
    return SCB_OK;
}

void scb_pystr_fini(struct scb_pystr *s)
{
    if (!s) return;
    scb_free(s->cp);
    s->cp = NULL;
    s->n = s->cap = 0;
}

int scb_pystr_from_utf8(struct scb_pystr *out, const char *s, size_t len)
{
    int rc = SCB_OK;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        SCB_TRY(scb_pystr_push(out, cp));
        i += (size_t)k;
    }
out:
    return rc;
}

int scb_pystr_to_utf8(const struct scb_pystr *s, size_t b, size_t e, struct scb_buf *out)
{
    int rc = SCB_OK;
    char tmp[4];
    for (size_t i = b; i < e; i++) {
        int k = scb_utf8_encode(s->cp[i], tmp);
        SCB_TRY(scb_buf_append(out, tmp, (size_t)k));
    }
    if (!out->data) SCB_TRY(scb_buf_append(out, "", 0));
out:
    return rc;
}

static uint32_t final_sigma(const struct scb_pystr *in, size_t i)
{
    size_t j = i;
    uint32_t c = 0;
    int found = 0;
    while (j > 0) {
        c = in->cp[--j];
        if (!scb_uc_is_ignorable(c)) { found = 1; break; }
    }
    int fs = found && scb_uc_is_cased(c);
    if (fs && i + 1 < in->n) {
        size_t k;
        for (k = i + 1; k < in->n; k++) {
            c = in->cp[k];
            if (!scb_uc_is_ignorable(c)) break;
        }
        fs = k == in->n || !scb_uc_is_cased(c);
    }
    return fs ? 0x3C2 : 0x3C3;
}

int scb_pystr_lower(const struct scb_pystr *in, struct scb_pystr *out)
{
    int rc = SCB_OK;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t m[3];
        int k;
        if (in->cp[i] == 0x3A3) { m[0] = final_sigma(in, i); k = 1; }
        else k = scb_uc_lower(in->cp[i], m);
        for (int t = 0; t < k; t++) SCB_TRY(scb_pystr_push(out, m[t]));
    }
out:
    return rc;
}

int scb_pystr_upper(const struct scb_pystr *in, struct scb_pystr *out)
{
    int rc = SCB_OK;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t m[3];
        int k = scb_uc_upper(in->cp[i], m);
        for (int t = 0; t < k; t++) SCB_TRY(scb_pystr_push(out, m[t]));
    }
out:
    return rc;
}

int scb_pystr_lower_utf8(const char *s, size_t len, struct scb_buf *out)
{
    int rc = SCB_OK;
    struct scb_pystr a = {0}, b = {0};
    SCB_TRY(scb_pystr_from_utf8(&a, s, len));
    SCB_TRY(scb_pystr_lower(&a, &b));
    SCB_TRY(scb_pystr_to_utf8(&b, 0, b.n, out));
out:
    scb_pystr_fini(&a);
    scb_pystr_fini(&b);
    return rc;
}

int scb_pystr_isspace(uint32_t cp) { return scb_uc_is_space(cp); }

void scb_pystr_strip(const struct scb_pystr *s, size_t *b, size_t *e)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi && scb_uc_is_space(s->cp[lo])) lo++;
    while (hi > lo && scb_uc_is_space(s->cp[hi - 1])) hi--;
    *b = lo;
    *e = hi;
}

void scb_pystr_strip_utf8(const char *s, size_t len, size_t *b, size_t *e)
{
    size_t lo = 0, hi = len;
    while (lo < hi) {
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)s + lo, hi - lo, &cp);
        if (!scb_uc_is_space(cp)) break;
        lo += (size_t)k;
    }
    while (hi > lo) {
        size_t st = hi - 1;
        while (st > lo && ((unsigned char)s[st] & 0xC0) == 0x80 && hi - st < 4) st--;
        uint32_t cp;
        int k = scb_utf8_decode((const unsigned char *)s + st, hi - st, &cp);
        if ((size_t)k != hi - st) { st = hi - 1; scb_utf8_decode((const unsigned char *)s + st, 1, &cp); }
        if (!scb_uc_is_space(cp)) break;
        hi = st;
    }
    *b = lo;
    *e = hi;
}

size_t scb_pystr_find(const struct scb_pystr *hay, size_t hb, size_t he,
                      const struct scb_pystr *needle, size_t nb, size_t ne)
{
    size_t m = ne - nb;
    if (he < hb || he - hb < m) return (size_t)-1;
    if (m == 0) return hb;
    for (size_t i = hb; i + m <= he; i++) {
        if (hay->cp[i] != needle->cp[nb]) continue;
        if (!memcmp(hay->cp + i, needle->cp + nb, m * sizeof(uint32_t))) return i;
    }
    return (size_t)-1;
}

int scb_pystr_next_word(const struct scb_pystr *s, size_t *pos, size_t *wb, size_t *we)
{
    size_t i = *pos;
    while (i < s->n && scb_uc_is_space(s->cp[i])) i++;
    if (i >= s->n) { *pos = i; return 0; }
    size_t st = i;
    while (i < s->n && !scb_uc_is_space(s->cp[i])) i++;
    *wb = st;
    *we = i;
    *pos = i;
    return 1;
}
