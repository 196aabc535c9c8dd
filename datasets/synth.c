/* synth.c — seeded SCBench-format synthetic sessions of a target token length (see synth.h).
 *
 * Every task is built the same way: a head, N "filler" items joined by a separator, a tail,
 * and a few "special" items (vt chain statements, pass-key needles, planted mf extremes)
 * placed among the fillers at fixed fractions of the filler count. Fillers come one by one
 * from the session's item stream, so filler i is the same whatever N ends up being.
 * Sizing: each new filler's own token count is summed (small texts; the whole context is
 * never re-counted per item) until head + specials + fillers reach the target; then the whole
 * context is counted and N is corrected from the mean tokens per filler, keeping a bracket
 * (largest N known to fit, smallest N known not to) so it converges in a few full counts.
 * The queried items and the turns are drawn from the plan stream after N is fixed. */
#include "datasets/synth.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "datasets/dataset.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static const char *const task_names[SCB_SYNTH_N_TASKS] = {
    "scbench_kv", "scbench_prefix_suffix", "scbench_vt", "scbench_mf", "scbench_passkey"};

/* RULER / passkey haystack sentence (the noise used by RULER's variable tracking and by the
 * InfiniteBench/LongLoRA pass-key haystack). */
#define NOISE "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

int scb_synth_task_parse(const char *name, enum scb_synth_task *out, struct scb_ctx *ctx)
{
    const char *b = name && !strncmp(name, "scbench_", 8) ? name + 8 : name;
    for (int i = 0; b && i < SCB_SYNTH_N_TASKS; i++)
        if (!strcmp(b, task_names[i] + 8)) { *out = (enum scb_synth_task)i; return SCB_OK; }
    return scb_err(ctx, SCB_E_NOTFOUND, "unknown synthetic task '%s' (choose scbench_kv, "
                   "scbench_prefix_suffix, scbench_vt, scbench_mf, scbench_passkey)", name ? name : "");
}

const char *scb_synth_task_name(enum scb_synth_task t)
{
    return (int)t >= 0 && (int)t < SCB_SYNTH_N_TASKS ? task_names[t] : NULL;
}

int scb_synth_count_words(void *user, const char *text, size_t len, size_t *n_tokens)
{
    (void)user;
    size_t n = 0;
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        int sp = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    *n_tokens = n;
    return SCB_OK;
}

/* ---- generation state --------------------------------------------------------------------- */

struct special {
    char  *text;   /* owned */
    double frac;   /* position among the fillers, [0, 1) */
    size_t order;  /* tie-break: creation order */
};

struct gen {
    const struct scb_synth_opts *o;
    const struct scb_token_counter *tc;
    struct scb_ctx *ctx;
    struct scb_rng items_rng, plan_rng;
    const char *head, *sep, *tail;
    char  **items;     /* (n_items,) filler texts, owned */
    size_t n_items, cap_items;
    double item_tok_sum;   /* sum of per-filler token counts (item + sep) */
    struct special *spec;  /* (n_spec,) sorted by (frac, order) before building */
    size_t n_spec;
    /* task data */
    int64_t mf_lo, mf_hi;  /* mf fillers lie in [mf_lo, mf_hi] */
    struct scb_buf text;   /* assembled context */
    size_t built_k;        /* filler count text was built with */
};

static int count_tokens(struct gen *g, const char *t, size_t n, size_t *out)
{
    int rc = g->tc->count(g->tc->user, t, n, out);
    if (rc < 0 && g->ctx && g->ctx->code == SCB_OK) scb_err(g->ctx, rc, "token counter failed");
    return rc;
}

static void rand_chars(struct scb_rng *r, const char *alphabet, size_t n, char *out)
{
    size_t a = strlen(alphabet);
    for (size_t i = 0; i < n; i++) out[i] = alphabet[scb_rng_below(r, a)];
    out[n] = 0;
}

/* UUID4-shaped 36-char string: 8-4-4-4-12 lowercase hex, version 4, variant 8..b. */
static void rand_uuid(struct scb_rng *r, char out[37])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 36; i++) out[i] = hex[scb_rng_below(r, 16)];
    out[8] = out[13] = out[18] = out[23] = '-';
    out[14] = '4';
    out[19] = hex[8 + scb_rng_below(r, 4)];
    out[36] = 0;
}

/* Next filler item of the task into *out (owned). */
static int next_item(struct gen *g, char **out)
{
    struct scb_rng *r = &g->items_rng;
    char buf[160];
    switch (g->o->task) {
    case SCB_SYNTH_KV: {
        char k[37], v[37];
        rand_uuid(r, k);
        rand_uuid(r, v);
        snprintf(buf, sizeof buf, "\"%s\": \"%s\"", k, v);
        break;
    }
    case SCB_SYNTH_PREFIX_SUFFIX: {
        size_t n = 65 + (size_t)scb_rng_below(r, 123 - 65);   /* length in [65, 123) */
        buf[0] = '\'';
        rand_chars(r, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", n, buf + 1);
        buf[n + 1] = '\'';
        buf[n + 2] = 0;
        break;
    }
    case SCB_SYNTH_MF: {
        int64_t v = g->mf_lo + (int64_t)scb_rng_below(r, (uint64_t)(g->mf_hi - g->mf_lo + 1));
        snprintf(buf, sizeof buf, "%" PRId64, v);
        break;
    }
    case SCB_SYNTH_VT:
    case SCB_SYNTH_PASSKEY:
        snprintf(buf, sizeof buf, "%s", NOISE);
        break;
    default:
        return scb_err(g->ctx, SCB_E_INVAL, "invalid synthetic task %d", (int)g->o->task);
    }
    *out = scb_strdup(buf);
    return *out ? SCB_OK : scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
}

static int push_item(struct gen *g)
{
    int rc = SCB_OK;
    char *it = NULL;
    if (g->n_items == g->cap_items) {
        size_t nc = g->cap_items ? 2 * g->cap_items : 1024;
        char **ni = scb_realloc(g->items, nc * sizeof *ni);
        if (!ni) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
        g->items = ni;
        g->cap_items = nc;
    }
    SCB_TRY(next_item(g, &it));
    size_t n1 = 0, n2 = 0;
    SCB_TRY(count_tokens(g, it, strlen(it), &n1));
    SCB_TRY(count_tokens(g, g->sep, strlen(g->sep), &n2));
    g->item_tok_sum += (double)(n1 + n2);
    g->items[g->n_items++] = it;
    it = NULL;
out:
    scb_free(it);
    return rc;
}

static int ensure_items(struct gen *g, size_t k)
{
    int rc = SCB_OK;
    while (g->n_items < k) SCB_TRY(push_item(g));
out:
    return rc;
}

static int add_special(struct gen *g, const char *text, double frac)
{
    struct special *ns = scb_realloc(g->spec, (g->n_spec + 1) * sizeof *ns);
    if (!ns) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    g->spec = ns;
    char *t = scb_strdup(text);
    if (!t) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    g->spec[g->n_spec] = (struct special){t, frac, g->n_spec};
    g->n_spec++;
    return SCB_OK;
}

static int cmp_special(const void *a, const void *b)
{
    const struct special *x = a, *y = b;
    if (x->frac != y->frac) return x->frac < y->frac ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Position (0..k) of special j before filler pos. */
static size_t spec_pos(const struct special *sp, size_t k)
{
    size_t p = (size_t)floor(sp->frac * (double)(k + 1));
    return p > k ? k : p;
}

/* Assemble head + merge(fillers[0..k), specials) + tail into g->text. */
static int build(struct gen *g, size_t k)
{
    int rc = SCB_OK;
    struct scb_buf *b = &g->text;
    b->len = 0;
    SCB_TRY(scb_buf_puts(b, g->head));
    size_t j = 0, pieces = 0;
    for (size_t i = 0; i <= k; i++) {
        while (j < g->n_spec && spec_pos(&g->spec[j], k) == i) {
            if (pieces++) SCB_TRY(scb_buf_puts(b, g->sep));
            SCB_TRY(scb_buf_puts(b, g->spec[j].text));
            j++;
        }
        if (i == k) break;
        if (pieces++) SCB_TRY(scb_buf_puts(b, g->sep));
        SCB_TRY(scb_buf_puts(b, g->items[i]));
    }
    SCB_TRY(scb_buf_puts(b, g->tail));
out:
    if (rc) rc = scb_err(g->ctx, SCB_E_NOMEM, "out of memory building a context");
    return rc;
}

static int count_built(struct gen *g, size_t k, size_t *tok)
{
    int rc = SCB_OK;
    SCB_TRY(ensure_items(g, k));
    SCB_TRY(build(g, k));
    g->built_k = k;
    SCB_TRY(count_tokens(g, g->text.data, g->text.len, tok));
out:
    return rc;
}

/* Choose the filler count: largest k >= min_k (approximately) with tokens <= target.
 * parity: 0 any, 1 = k + n_spec must be odd (mf median). */
static int size_context(struct gen *g, size_t min_k, int parity, size_t *k_out, size_t *tok_out)
{
    int rc = SCB_OK;
    size_t target = g->o->target_tokens, fixed = 0, tok = 0;
    if (g->n_spec) qsort(g->spec, g->n_spec, sizeof *g->spec, cmp_special);
    SCB_TRY(count_built(g, 0, &fixed));
    while ((double)fixed + g->item_tok_sum < (double)target || g->n_items < min_k)
        SCB_TRY(push_item(g));
    long best = -1;                  /* largest k known to fit */
    size_t best_tok = 0, bad = SIZE_MAX;  /* smallest k known not to fit */
    size_t k = g->n_items;
    for (int iter = 0; iter < 16; iter++) {
        if (parity && (k + g->n_spec) % 2 == 0) k = k > 0 ? k - 1 : k + 1;
        SCB_TRY(count_built(g, k, &tok));
        double avg = g->n_items ? g->item_tok_sum / (double)g->n_items : 1.0;
        if (avg < 1.0) avg = 1.0;
        size_t step = parity ? 2 : 1;
        size_t next;
        if (tok <= target) {
            if ((long)k > best) { best = (long)k; best_tok = tok; }
            double gap = (double)(target - tok);
            if (gap < avg || k + step >= bad) break;
            next = k + (size_t)(gap / avg);
        } else {
            if (k < bad) bad = k;
            if (k <= min_k) break;
            double over = (double)(tok - target);
            size_t d = (size_t)ceil(over / avg);
            next = d >= k ? 0 : k - d;
        }
        if ((long)next <= best) next = (size_t)best + step;
        if (next >= bad) next = bad >= step ? bad - step : 0;
        if (next < min_k) next = min_k;
        if (next == k || ((long)next <= best && best >= 0) || next >= bad) break;
        k = next;
    }
    if (best < 0 || (size_t)best < min_k) {
        rc = scb_err(g->ctx, SCB_E_INVAL, "%s: --tokens %zu is too small for %zu turns (the smallest "
                     "context has %zu tokens)", task_names[g->o->task], target, g->o->n_turns, tok);
        goto out;
    }
    if (g->built_k != (size_t)best) SCB_TRY(count_built(g, (size_t)best, &tok));
    *k_out = (size_t)best;
    *tok_out = best_tok;
out:
    return rc;
}

/* ---- per-task plans and turns --------------------------------------------------------------- */

static int add_turn(struct scb_session *s, const char *input, cJSON *answer, struct scb_ctx *ctx)
{
    struct scb_turn *t = &s->turns[s->n_turns];
    t->input = scb_strdup(input);
    t->answer = answer;
    if (!t->input || !answer) {
        scb_free(t->input);
        cJSON_Delete(answer);
        t->input = NULL;
        t->answer = NULL;
        return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
    s->n_turns++;
    return SCB_OK;
}

/* n distinct indices of [0, k), in draw order. */
static void pick_distinct(struct scb_rng *r, size_t k, size_t n, size_t *out)
{
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            size_t v = (size_t)scb_rng_below(r, k), dup = 0;
            for (size_t j = 0; j < i; j++) dup |= out[j] == v;
            if (!dup) { out[i] = v; break; }
        }
    }
}

static int turns_kv(struct gen *g, size_t k, struct scb_session *s)
{
    int rc = SCB_OK;
    size_t *q = scb_malloc(g->o->n_turns * sizeof *q);
    if (!q) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    pick_distinct(&g->plan_rng, k, g->o->n_turns, q);
    for (size_t i = 0; i < g->o->n_turns; i++) {
        const char *it = g->items[q[i]];   /* "KEY": "VALUE" with 36-char key and value */
        char key[37], val[37], input[160];
        memcpy(key, it + 1, 36); key[36] = 0;
        memcpy(val, it + 41, 36); val[36] = 0;
        snprintf(input, sizeof input, "Key: \"%s\"\nThe value associated with the specified key is: ", key);
        SCB_TRY(add_turn(s, input, cJSON_CreateString(val), g->ctx));
    }
out:
    scb_free(q);
    return rc;
}

static int turns_prefix_suffix(struct gen *g, size_t k, struct scb_session *s)
{
    int rc = SCB_OK;
    size_t *q = scb_malloc(g->o->n_turns * sizeof *q);
    if (!q) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    pick_distinct(&g->plan_rng, k, g->o->n_turns, q);
    for (size_t i = 0; i < g->o->n_turns; i++) {
        const char *w = g->items[q[i]] + 1;           /* strip the quotes */
        size_t wl = strlen(w) - 1;
        /* shortest equal prefix/suffix length (>= 3) that no other string shares */
        size_t L = 3;
        for (; L <= wl / 2; L++) {
            int clash = 0;
            for (size_t j = 0; j < k && !clash; j++) {
                if (j == q[i]) continue;
                const char *o = g->items[j] + 1;
                size_t ol = strlen(o) - 1;
                clash = ol >= L && !memcmp(o, w, L) && !memcmp(o + ol - L, w + wl - L, L);
            }
            if (!clash) break;
        }
        if (L > wl / 2) { rc = scb_err(g->ctx, SCB_E_INVAL, "duplicate dictionary string"); goto out; }
        char input[400], ans[160];
        snprintf(input, sizeof input, "Prefix: %.*s; Suffix: %.*s. The word with both prefix and suffix "
                 "from the dict is? ", (int)L, w, (int)L, w + wl - L);
        snprintf(ans, sizeof ans, "%.*s", (int)wl, w);
        SCB_TRY(add_turn(s, input, cJSON_CreateString(ans), g->ctx));
    }
out:
    scb_free(q);
    return rc;
}

/* vt: one chain of 3 variables (2 hops) per turn plus one unqueried chain. */
#define VT_HOPS 2
struct vt_plan { char var[VT_HOPS + 1][6]; int value; };

static int plan_vt(struct gen *g, struct vt_plan **out, size_t *n_chains)
{
    size_t nc = g->o->n_turns + 1;
    struct vt_plan *p = scb_calloc(nc, sizeof *p);
    if (!p) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    for (size_t c = 0; c < nc; c++) {
        for (;;) {   /* distinct value */
            p[c].value = 10000 + (int)scb_rng_below(&g->plan_rng, 90000);
            int dup = 0;
            for (size_t d = 0; d < c; d++) dup |= p[d].value == p[c].value;
            if (!dup) break;
        }
        for (int h = 0; h <= VT_HOPS; h++)
            for (;;) {   /* distinct 5-letter name */
                rand_chars(&g->plan_rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ", 5, p[c].var[h]);
                int dup = 0;
                for (size_t d = 0; d <= c; d++)
                    for (int e = 0; e <= VT_HOPS; e++)
                        if ((d != c || e != h) && (d < c || e < h) && !strcmp(p[d].var[e], p[c].var[h])) dup = 1;
                if (!dup) break;
            }
        double fr[VT_HOPS + 1];
        for (int h = 0; h <= VT_HOPS; h++) fr[h] = scb_rng_uniform(&g->plan_rng);
        for (int a = 0; a <= VT_HOPS; a++)   /* sort: the chain appears in order */
            for (int b = a + 1; b <= VT_HOPS; b++)
                if (fr[b] < fr[a]) { double t = fr[a]; fr[a] = fr[b]; fr[b] = t; }
        for (int h = 0; h <= VT_HOPS; h++) {
            char st[64];
            if (h == 0) snprintf(st, sizeof st, "VAR %s = %d", p[c].var[0], p[c].value);
            else snprintf(st, sizeof st, "VAR %s = %s", p[c].var[h], p[c].var[h - 1]);
            int rc = add_special(g, st, fr[h]);
            if (rc) { scb_free(p); return rc; }
        }
    }
    *out = p;
    *n_chains = nc;
    return SCB_OK;
}

static int turns_vt(struct gen *g, const struct vt_plan *p, struct scb_session *s)
{
    int rc = SCB_OK;
    for (size_t i = 0; i < g->o->n_turns; i++) {
        char input[400];
        snprintf(input, sizeof input, "Question: Find all variables that are assigned the value %d in the "
                 "text above. Answer: According to the chain(s) of variable assignment in the text above, "
                 "%d variables are assigned the value %d, they are: ", p[i].value, VT_HOPS + 1, p[i].value);
        cJSON *a = cJSON_CreateArray();
        for (int h = 0; a && h <= VT_HOPS; h++) {
            cJSON *v = cJSON_CreateString(p[i].var[h]);
            if (!v || !cJSON_AddItemToArray(a, v)) { cJSON_Delete(v); cJSON_Delete(a); a = NULL; }
        }
        SCB_TRY(add_turn(s, input, a, g->ctx));
    }
out:
    return rc;
}

/* passkey: one labelled needle per turn. */
static const char *const pk_colors[] = {"red", "blue", "green", "silver", "golden", "purple", "orange",
                                        "white", "black", "amber", "crimson", "ivory"};
static const char *const pk_things[] = {"falcon", "door", "river", "lantern", "garden", "tower", "violin",
                                        "harbor", "meadow", "comet", "bridge", "orchard"};
struct pk_plan { char label[40]; char key[16]; };

static int plan_passkey(struct gen *g, struct pk_plan **out)
{
    size_t n = g->o->n_turns, nl = 12 * 12;
    if (n > nl) return scb_err(g->ctx, SCB_E_INVAL, "scbench_passkey supports at most %zu turns", nl);
    struct pk_plan *p = scb_calloc(n, sizeof *p);
    if (!p) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    size_t *lab = scb_malloc(n * sizeof *lab);
    if (!lab) { scb_free(p); return scb_err(g->ctx, SCB_E_NOMEM, "out of memory"); }
    pick_distinct(&g->plan_rng, nl, n, lab);
    for (size_t i = 0; i < n; i++) {
        snprintf(p[i].label, sizeof p[i].label, "%s %s", pk_colors[lab[i] / 12], pk_things[lab[i] % 12]);
        for (;;) {
            snprintf(p[i].key, sizeof p[i].key, "%d", 10000 + (int)scb_rng_below(&g->plan_rng, 90000));
            int dup = 0;
            for (size_t d = 0; d < i; d++) dup |= !strcmp(p[d].key, p[i].key);
            if (!dup) break;
        }
        char st[200];
        snprintf(st, sizeof st, "The pass key of the %s is %s. Remember it. %s is the pass key of the %s.",
                 p[i].label, p[i].key, p[i].key, p[i].label);
        int rc = add_special(g, st, scb_rng_uniform(&g->plan_rng));
        if (rc) { scb_free(p); scb_free(lab); return rc; }
    }
    scb_free(lab);
    *out = p;
    return SCB_OK;
}

static int turns_passkey(struct gen *g, const struct pk_plan *p, struct scb_session *s)
{
    int rc = SCB_OK;
    for (size_t i = 0; i < g->o->n_turns; i++) {
        char input[200];
        snprintf(input, sizeof input, "What is the pass key of the %s?", p[i].label);
        SCB_TRY(add_turn(s, input, cJSON_CreateString(p[i].key), g->ctx));
    }
out:
    return rc;
}

/* mf: fillers in [lo2+1, hi2-1]; lo < lo2 and hi2 < hi planted once each. */
static const char *const mf_stat_name[5] = {"largest number", "smallest number", "median",
                                            "second largest number", "second smallest number"};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int plan_mf(struct gen *g, int64_t planted[4])
{
    /* 3-digit numbers (paper: num_digits = 3): lo in [0, 100), hi in (899, 999] */
    planted[0] = (int64_t)scb_rng_below(&g->plan_rng, 100);          /* smallest */
    planted[1] = planted[0] + 1 + (int64_t)scb_rng_below(&g->plan_rng, 50);   /* second smallest */
    planted[3] = 900 + (int64_t)scb_rng_below(&g->plan_rng, 100);    /* largest */
    planted[2] = planted[3] - 1 - (int64_t)scb_rng_below(&g->plan_rng, 50);   /* second largest */
    g->mf_lo = planted[1] + 1;
    g->mf_hi = planted[2] - 1;
    for (int i = 0; i < 4; i++) {
        char t[32];
        snprintf(t, sizeof t, "%" PRId64, planted[i]);
        int rc = add_special(g, t, scb_rng_uniform(&g->plan_rng));
        if (rc) return rc;
    }
    return SCB_OK;
}

static int turns_mf(struct gen *g, struct scb_session *s)
{
    int rc = SCB_OK;
    size_t n = s->n_context_ints;
    int64_t *sorted = scb_malloc(n * sizeof *sorted);
    if (!sorted) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    memcpy(sorted, s->context_ints, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_i64);
    int perm[5] = {0, 1, 2, 3, 4};
    for (int i = 4; i > 0; i--) {
        int j = (int)scb_rng_below(&g->plan_rng, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < g->o->n_turns; i++) {
        int st = perm[i];
        int64_t v = st == 0 ? sorted[n - 1] : st == 1 ? sorted[0] : st == 2 ? sorted[n / 2]
                  : st == 3 ? sorted[n - 2] : sorted[1];
        char input[200];
        snprintf(input, sizeof input, "You should answer with only one number, no other words. "
                 "The %s of the list is: ", mf_stat_name[st]);
        SCB_TRY(add_turn(s, input, cJSON_CreateNumber((double)v), g->ctx));
    }
out:
    scb_free(sorted);
    return rc;
}

/* Parse the assembled "[a, b, ...]" text into ints. */
static int mf_context_ints(struct gen *g, struct scb_session *s)
{
    size_t n = 1;
    for (size_t i = 0; i < g->text.len; i++) n += g->text.data[i] == ',';
    s->context_ints = scb_malloc(n * sizeof *s->context_ints);
    if (!s->context_ints) return scb_err(g->ctx, SCB_E_NOMEM, "out of memory");
    const char *p = g->text.data + 1;
    size_t k = 0;
    while (*p && *p != ']') {
        char *end;
        s->context_ints[k++] = strtoll(p, &end, 10);
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    s->n_context_ints = k;
    return SCB_OK;
}

static uint64_t stream_seed(uint64_t seed, int task, long index, const char *what)
{
    uint64_t h = SCB_HASH64_INIT;
    h = scb_hash64(&seed, sizeof seed, h);
    h = scb_hash64(task_names[task], strlen(task_names[task]), h);
    int64_t ix = index;
    h = scb_hash64(&ix, sizeof ix, h);
    return scb_hash64(what, strlen(what), h);
}

int scb_synth_session(const struct scb_synth_opts *o, long index, const struct scb_token_counter *tc,
                      struct scb_session *s, size_t *ctx_tokens, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct gen g = {0};
    struct vt_plan *vt = NULL;
    struct pk_plan *pk = NULL;
    memset(s, 0, sizeof *s);
    if (ctx_tokens) *ctx_tokens = 0;
    if (!o || !tc || !tc->count) return scb_err(ctx, SCB_E_INVAL, "synth: options or token counter missing");
    if (!scb_synth_task_name(o->task)) return scb_err(ctx, SCB_E_INVAL, "synth: invalid task %d", (int)o->task);
    if (o->n_turns < 1 || o->n_turns > 100)
        return scb_err(ctx, SCB_E_INVAL, "%s: --turns must be in [1, 100], got %zu", task_names[o->task], o->n_turns);
    if (o->task == SCB_SYNTH_MF && o->n_turns > 5)
        return scb_err(ctx, SCB_E_INVAL, "scbench_mf: at most 5 turns (largest, smallest, median, second "
                       "largest, second smallest), got %zu", o->n_turns);
    g.o = o;
    g.tc = tc;
    g.ctx = ctx;
    scb_rng_seed(&g.items_rng, stream_seed(o->seed, (int)o->task, index, "items"));
    scb_rng_seed(&g.plan_rng, stream_seed(o->seed, (int)o->task, index, "plan"));
    size_t min_k = 0;
    int parity = 0;
    int64_t planted[4];
    switch (o->task) {
    case SCB_SYNTH_KV:
        g.head = "{"; g.sep = ", "; g.tail = "}"; min_k = o->n_turns;
        break;
    case SCB_SYNTH_PREFIX_SUFFIX:
        g.head = "Dictionary = ["; g.sep = ", "; g.tail = "]"; min_k = o->n_turns;
        break;
    case SCB_SYNTH_VT: {
        size_t nc;
        g.head = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
        g.sep = "\n"; g.tail = "";
        SCB_TRY(plan_vt(&g, &vt, &nc));
        break;
    }
    case SCB_SYNTH_MF:
        g.head = "["; g.sep = ", "; g.tail = "]"; parity = 1;
        SCB_TRY(plan_mf(&g, planted));
        break;
    case SCB_SYNTH_PASSKEY:
        g.head = "There is important info hidden inside a lot of irrelevant text. Find it and memorize it. "
                 "I will quiz you about the important information there.\n\n";
        g.sep = " "; g.tail = "";
        SCB_TRY(plan_passkey(&g, &pk));
        break;
    }
    size_t k = 0, tok = 0;
    SCB_TRY(size_context(&g, min_k, parity, &k, &tok));
    s->index = index;
    s->id = index;
    s->turns = scb_calloc(o->n_turns, sizeof *s->turns);
    if (!s->turns) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if (o->task == SCB_SYNTH_MF) {
        SCB_TRY(mf_context_ints(&g, s));
    } else {
        s->context = scb_strdup(g.text.data);
        if (!s->context) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    }
    switch (o->task) {
    case SCB_SYNTH_KV: SCB_TRY(turns_kv(&g, k, s)); break;
    case SCB_SYNTH_PREFIX_SUFFIX: SCB_TRY(turns_prefix_suffix(&g, k, s)); break;
    case SCB_SYNTH_VT: SCB_TRY(turns_vt(&g, vt, s)); break;
    case SCB_SYNTH_MF: SCB_TRY(turns_mf(&g, s)); break;
    case SCB_SYNTH_PASSKEY: SCB_TRY(turns_passkey(&g, pk, s)); break;
    }
    if (ctx_tokens) *ctx_tokens = tok;
out:
    if (rc) scb_session_fini(s);
    for (size_t i = 0; i < g.n_items; i++) scb_free(g.items[i]);
    scb_free(g.items);
    for (size_t i = 0; i < g.n_spec; i++) scb_free(g.spec[i].text);
    scb_free(g.spec);
    scb_buf_fini(&g.text);
    scb_free(vt);
    scb_free(pk);
    return rc;
}

int scb_synth_write(const struct scb_synth_opts *o, long n_sessions, const struct scb_token_counter *tc,
                    FILE *f, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_session s = {0};
    struct scb_buf line = {0};
    for (long i = 0; i < n_sessions; i++) {
        SCB_TRY(scb_synth_session(o, i, tc, &s, NULL, ctx));
        line.len = 0;
        SCB_TRY(scb_session_to_json(&s, &line, ctx));
        SCB_TRY(scb_buf_putc(&line, '\n'));
        if (fwrite(line.data, 1, line.len, f) != line.len) {
            rc = scb_err(ctx, SCB_E_IO, "write failed");
            goto out;
        }
        scb_session_fini(&s);
    }
out:
    scb_session_fini(&s);
    scb_buf_fini(&line);
    return rc;
}

int scb_synth_write_file(const struct scb_synth_opts *o, long n_sessions,
                         const struct scb_token_counter *tc, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_session s = {0};
    struct scb_buf line = {0};
    size_t pl = strlen(path);
    int gz = pl > 3 && !strcmp(path + pl - 3, ".gz");
    FILE *f = NULL;
    gzFile g = NULL;
    if (gz) g = gzopen(path, "wb");
    else f = fopen(path, "wb");
    if (!f && !g) return scb_err(ctx, SCB_E_IO, "%s: cannot open for writing", path);
    for (long i = 0; i < n_sessions; i++) {
        SCB_TRY(scb_synth_session(o, i, tc, &s, NULL, ctx));
        line.len = 0;
        SCB_TRY(scb_session_to_json(&s, &line, ctx));
        if (scb_buf_putc(&line, '\n')) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        int ok = gz ? gzwrite(g, line.data, (unsigned)line.len) == (int)line.len
                    : fwrite(line.data, 1, line.len, f) == line.len;
        if (!ok) { rc = scb_err(ctx, SCB_E_IO, "%s: write failed", path); goto out; }
        scb_session_fini(&s);
    }
out:
    if (g && gzclose(g) != Z_OK && rc == SCB_OK) rc = scb_err(ctx, SCB_E_IO, "%s: write failed", path);
    if (f && fclose(f) != 0 && rc == SCB_OK) rc = scb_err(ctx, SCB_E_IO, "%s: write failed", path);
    if (rc) unlink(path);
    scb_session_fini(&s);
    scb_buf_fini(&line);
    return rc;
}
