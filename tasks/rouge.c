/* rouge.c — ROUGE-Lsum as rouge_score computes it (see rouge.h). Tokens are interned into
 * integer ids; LCS tables are (|ref sentence|+1) x (|pred sentence|+1) ints. */
#include "tasks/rouge.h"

#include <stdint.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "tasks/unicode_tables.h"

/* Interned token table: open addressing over token strings. */
struct tok_table {
    char  **str;    /* (cap) owned token strings or NULL */
    int    *id;     /* (cap) */
    size_t  cap, n;
};

static uint64_t hash_bytes(const char *s, size_t n) { return scb_hash64(s, n, SCB_HASH64_INIT); }

static int tok_intern(struct tok_table *t, const char *s, size_t n, int *out)
{
    if (2 * (t->n + 1) > t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        char **ns = scb_calloc(nc, sizeof *ns);
        int *ni = scb_calloc(nc, sizeof *ni);
        if (!ns || !ni) { scb_free(ns); scb_free(ni); return SCB_E_NOMEM; }
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->str[i]) continue;
            size_t h = (size_t)hash_bytes(t->str[i], strlen(t->str[i])) & (nc - 1);
            while (ns[h]) h = (h + 1) & (nc - 1);
            ns[h] = t->str[i];
            ni[h] = t->id[i];
        }
        scb_free(t->str);
        scb_free(t->id);
        t->str = ns;
        t->id = ni;
        t->cap = nc;
    }
    size_t h = (size_t)hash_bytes(s, n) & (t->cap - 1);
    while (t->str[h]) {
        if (strlen(t->str[h]) == n && !memcmp(t->str[h], s, n)) { *out = t->id[h]; return SCB_OK; }
        h = (h + 1) & (t->cap - 1);
    }
    t->str[h] = scb_strndup(s, n);
    if (!t->str[h]) return SCB_E_NOMEM;
    t->id[h] = (int)t->n++;
    *out = t->id[h];
    return SCB_OK;
}

static void tok_fini(struct tok_table *t)
{
    for (size_t i = 0; i < t->cap; i++) scb_free(t->str[i]);
    scb_free(t->str);
    scb_free(t->id);
}

/* A text as sentences of token ids. */
struct sents {
    int    *tok;    /* (ntok) all token ids, sentence after sentence */
    size_t *start;  /* (ns + 1) offsets into tok */
    size_t  ntok, ns, cap_tok, cap_s;
};

static int sents_push_tok(struct sents *s, int id)
{
    if (s->ntok == s->cap_tok) {
        size_t nc = s->cap_tok ? s->cap_tok * 2 : 256;
        int *p = scb_realloc(s->tok, nc * sizeof *p);
        if (!p) return SCB_E_NOMEM;
        s->tok = p;
        s->cap_tok = nc;
    }
    s->tok[s->ntok++] = id;
    return SCB_OK;
}

static int sents_push_start(struct sents *s, size_t v)
{
    if (s->ns + 1 >= s->cap_s) {
        size_t nc = s->cap_s ? s->cap_s * 2 : 64;
        size_t *p = scb_realloc(s->start, nc * sizeof *p);
        if (!p) return SCB_E_NOMEM;
        s->start = p;
        s->cap_s = nc;
    }
    s->start[s->ns] = v;
    return SCB_OK;
}

/* Tokenize one sentence s[0..len): Python lower, then maximal runs of [a-z0-9]. */
static int flush_tok(struct scb_buf *cur, struct tok_table *tt, struct sents *out)
{
    int rc = SCB_OK, id;
    if (!cur->len) return SCB_OK;
    SCB_TRY(tok_intern(tt, cur->data, cur->len, &id));
    SCB_TRY(sents_push_tok(out, id));
    cur->len = 0;
out:
    return rc;
}

static int tokenize_sentence(const char *s, size_t len, struct tok_table *tt, struct sents *out)
{
    int rc = SCB_OK;
    struct scb_buf cur = {0};
    size_t i = 0;
    while (i < len) {
        uint32_t cp, m[3];
        int adv = scb_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        int k = scb_uc_lower(cp, m);   /* U+03A3 lowers to a Greek sigma either way: never ASCII */
        for (int t = 0; t < k; t++) {
            if ((m[t] >= 'a' && m[t] <= 'z') || (m[t] >= '0' && m[t] <= '9')) SCB_TRY(scb_buf_putc(&cur, (char)m[t]));
            else SCB_TRY(flush_tok(&cur, tt, out));
        }
        i += (size_t)adv;
    }
    SCB_TRY(flush_tok(&cur, tt, out));
out:
    scb_buf_fini(&cur);
    return rc;
}

static int split_text(const char *text, struct tok_table *tt, struct sents *out)
{
    int rc = SCB_OK;
    size_t len = strlen(text), b = 0;
    while (b <= len) {
        const char *nl = memchr(text + b, '\n', len - b);
        size_t e = nl ? (size_t)(nl - text) : len;
        if (e > b) {   /* rouge_score drops empty pieces only */
            SCB_TRY(sents_push_start(out, out->ntok));
            SCB_TRY(tokenize_sentence(text + b, e - b, tt, out));
            out->ns++;
        }
        b = e + 1;
    }
    SCB_TRY(sents_push_start(out, out->ntok));
out:
    return rc;
}

int scb_rouge_lsum(const char *target, const char *prediction, struct scb_rouge_score *res,
                   struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct tok_table tt = {0};
    struct sents R = {0}, C = {0};
    int *cnt_r = NULL, *cnt_c = NULL;   /* (n_ids) token counts */
    int *tab = NULL;                    /* ((rows+1) * (cols+1)) LCS table */
    unsigned char *in_union = NULL;     /* (longest ref sentence) */
    size_t tab_cap = 0;
    memset(res, 0, sizeof *res);

    SCB_TRY(split_text(target, &tt, &R));
    SCB_TRY(split_text(prediction, &tt, &C));
    if (R.ns == 0 || C.ns == 0 || R.ntok == 0 || C.ntok == 0) goto out;

    cnt_r = scb_calloc(tt.n, sizeof *cnt_r);
    cnt_c = scb_calloc(tt.n, sizeof *cnt_c);
    size_t maxr = 0;
    for (size_t s = 0; s < R.ns; s++) {
        size_t l = R.start[s + 1] - R.start[s];
        if (l > maxr) maxr = l;
    }
    in_union = scb_calloc(maxr + 1, 1);
    if (!cnt_r || !cnt_c || !in_union) { rc = scb_err(ctx, SCB_E_NOMEM, "rouge: out of memory"); goto out; }
    for (size_t i = 0; i < R.ntok; i++) cnt_r[R.tok[i]]++;
    for (size_t i = 0; i < C.ntok; i++) cnt_c[C.tok[i]]++;

    long hits = 0;
    for (size_t s = 0; s < R.ns; s++) {
        const int *ref = R.tok + R.start[s];
        size_t rows = R.start[s + 1] - R.start[s];
        memset(in_union, 0, maxr + 1);
        for (size_t c = 0; c < C.ns && rows; c++) {
            const int *can = C.tok + C.start[c];
            size_t cols = C.start[c + 1] - C.start[c];
            if (!cols) continue;
            size_t need = (rows + 1) * (cols + 1);
            if (need > tab_cap) {
                int *p = scb_realloc(tab, need * sizeof *p);
                if (!p) { rc = scb_err(ctx, SCB_E_NOMEM, "rouge: out of memory"); goto out; }
                tab = p;
                tab_cap = need;
            }
            size_t W = cols + 1;
            for (size_t j = 0; j <= cols; j++) tab[j] = 0;
            for (size_t i = 1; i <= rows; i++) {
                tab[i * W] = 0;
                for (size_t j = 1; j <= cols; j++) {
                    if (ref[i - 1] == can[j - 1]) tab[i * W + j] = tab[(i - 1) * W + j - 1] + 1;
                    else {
                        int a = tab[(i - 1) * W + j], b = tab[i * W + j - 1];
                        tab[i * W + j] = a > b ? a : b;
                    }
                }
            }
            /* rouge_score _backtrack_norec */
            size_t i = rows, j = cols;
            while (i > 0 && j > 0) {
                if (ref[i - 1] == can[j - 1]) { in_union[i - 1] = 1; i--; j--; }
                else if (tab[i * W + j - 1] > tab[(i - 1) * W + j]) j--;
                else i--;
            }
        }
        for (size_t i = 0; i < rows; i++) {
            if (!in_union[i]) continue;
            int t = ref[i];
            if (cnt_c[t] > 0 && cnt_r[t] > 0) { hits++; cnt_c[t]--; cnt_r[t]--; }
        }
    }
    double recall = (double)hits / (double)R.ntok;
    double precision = (double)hits / (double)C.ntok;
    res->recall = recall;
    res->precision = precision;
    res->fmeasure = (precision + recall > 0) ? 2 * precision * recall / (precision + recall) : 0.0;
out:
    if (rc == SCB_E_NOMEM && ctx && !ctx->code) scb_err(ctx, rc, "rouge: out of memory");
    tok_fini(&tt);
    scb_free(R.tok); scb_free(R.start); scb_free(C.tok); scb_free(C.start);
    scb_free(cnt_r); scb_free(cnt_c); scb_free(tab); scb_free(in_union);
    return rc;
}
