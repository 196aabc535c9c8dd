/* jinja.c — the Jinja2 subset of jinja.h. Three stages: the lexer turns the source into
 * tokens (applying trim_blocks / lstrip_blocks / "-" and "+" whitespace control exactly as
 * jinja2's lexer does), the parser builds an AST of statements and expressions, and the
 * evaluator walks the AST over Python-like values, writing the output into a buffer.
 *
 * Memory: the AST lives in an arena owned by the template; every value made while rendering
 * lives in a per-render arena freed at the end, so values share freely with no reference
 * counts (jinja2 data is immutable in transformers' ImmutableSandboxedEnvironment; only
 * namespaces change, in place). */
#include "harness/jinja.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

/* ======================================================================================
 * Arena
 * ====================================================================================== */
struct jblk {
    struct jblk *next;
    size_t used, cap;
    _Alignas(16) char data[];
};
struct jarena { struct jblk *head; };

static void *ar_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        struct jblk *b = scb_malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a->head; b->used = 0; b->cap = cap;
        a->head = b;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static void ar_free(struct jarena *a)
{
    struct jblk *b = a->head;
    while (b) { struct jblk *n = b->next; scb_free(b); b = n; }
    a->head = NULL;
}

/* ======================================================================================
 * Values
 * ====================================================================================== */
enum jt {
    JT_UNDEF = 0, JT_NONE = 1, JT_BOOL = 2, JT_INT = 3, JT_FLOAT = 4, JT_STR = 5,
    JT_LIST = 6, JT_DICT = 7, JT_NS = 8, JT_FUNC = 9
};

struct jstr { size_t n; const char *p; };
struct jv;
struct jlist { size_t n; int tuple; struct jv *v; };
struct jdict { size_t n, cap; struct jv *k, *v; };
struct jfunc;

struct jv {
    int t;
    union {
        long long i;
        double f;
        struct jstr *s;
        struct jlist *l;
        struct jdict *d;
        struct jfunc *fn;
        const char *hint;   /* JT_UNDEF: what was undefined (for error messages), may be NULL */
    } u;
};

enum fnk {
    FN_RANGE = 1, FN_NAMESPACE = 2, FN_DICT = 3, FN_RAISE = 4, FN_STRFTIME = 5,
    FN_METHOD = 6, FN_MACRO = 7, FN_CYCLE = 8
};
struct node;
struct jfunc { int kind; const char *name; struct jv self; const struct node *macro; };

/* ======================================================================================
 * Tokens and AST
 * ====================================================================================== */
enum tk {
    TK_EOF = 0, TK_TEXT = 1, TK_VAR_BEGIN = 2, TK_VAR_END = 3, TK_BLOCK_BEGIN = 4,
    TK_BLOCK_END = 5, TK_NAME = 6, TK_STRING = 7, TK_INT = 8, TK_FLOAT = 9, TK_OP = 10
};
struct tok {
    int type, line;
    const char *p; size_t n;   /* text/name/string value, operator spelling */
    long long i; double f;
};

enum ek {
    E_LIT = 1, E_NAME = 2, E_ATTR = 3, E_ITEM = 4, E_SLICE = 5, E_CALL = 6, E_FILTER = 7,
    E_TEST = 8, E_NOT = 9, E_NEG = 10, E_POS = 11, E_BIN = 12, E_AND = 13, E_OR = 14,
    E_COND = 15, E_LIST = 16, E_TUPLE = 17, E_DICT = 18, E_CMP = 19
};
enum bop {
    OP_ADD = 1, OP_SUB = 2, OP_MUL = 3, OP_DIV = 4, OP_FLOORDIV = 5, OP_MOD = 6, OP_POW = 7,
    OP_CONCAT = 8, OP_EQ = 9, OP_NE = 10, OP_LT = 11, OP_LE = 12, OP_GT = 13, OP_GE = 14,
    OP_IN = 15, OP_NOTIN = 16
};
struct expr {
    int kind, line, op;
    struct jv lit;             /* E_LIT */
    const char *name;          /* E_NAME, E_ATTR, E_FILTER, E_TEST: the name */
    struct expr *a, *b, *c;    /* operands; E_SLICE: a[b:c:args[0]] */
    struct expr **args;        /* call/filter/test args, list/tuple items, dict keys+values */
    const char **kw;           /* keyword names parallel to args (NULL = positional) */
    int nargs;
    int *ops;                  /* E_CMP: nargs-1 operators between args */
    int negate;                /* E_TEST: is not */
};

enum nk {
    N_TEXT = 1, N_OUT = 2, N_IF = 3, N_FOR = 4, N_SET = 5, N_SETBLOCK = 6, N_MACRO = 7,
    N_BREAK = 8, N_CONTINUE = 9, N_BODY = 10
};
struct nlist { struct node **v; size_t n; };
struct node {
    int kind, line;
    const char *text; size_t len;      /* N_TEXT */
    struct expr *e;                    /* N_OUT, N_SET value, N_FOR iterable, N_SETBLOCK filter-less */
    struct expr **conds; struct nlist *bodies; int nconds;   /* N_IF: conds[i] -> bodies[i]; else = bodies[nconds] (n may be 0) */
    const char **targets; int ntargets;  /* N_FOR / N_SET names; N_SET ns attr: target[0]=ns, attr */
    const char *attr;                  /* N_SET: namespace attribute, or NULL */
    struct expr *filter;               /* N_FOR inline if */
    struct nlist body, orelse;         /* N_FOR, N_MACRO, N_SETBLOCK, N_BODY */
    const char *name;                  /* N_MACRO */
    const char **params; struct expr **defaults; int nparams;
};

struct scb_jinja_tmpl {
    struct jarena ar;
    struct nlist root;
};

/* ======================================================================================
 * Lexer
 * ====================================================================================== */
struct lexer {
    const char *s; size_t n, pos;
    int line;
    struct tok *toks; size_t ntok, cap;
    struct jarena *ar;
    struct scb_ctx *ctx;
};

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_alpha_(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int lx_push(struct lexer *L, struct tok t)
{
    if (L->ntok == L->cap) {
        size_t nc = L->cap ? L->cap * 2 : 256;
        struct tok *nt = scb_realloc(L->toks, nc * sizeof *nt);
        if (!nt) return scb_err(L->ctx, SCB_E_NOMEM, "out of memory lexing template");
        L->toks = nt; L->cap = nc;
    }
    L->toks[L->ntok++] = t;
    return SCB_OK;
}

static int count_nl(const char *p, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++) c += p[i] == '\n';
    return c;
}

/* Python string-literal unescaping as jinja2 does (unicode-escape). */
static int lx_string(struct lexer *L, char q, struct tok *t)
{
    size_t start = L->pos + 1, i = start;
    while (i < L->n && L->s[i] != q) {
        if (L->s[i] == '\\' && i + 1 < L->n) i++;
        i++;
    }
    if (i >= L->n) return scb_err(L->ctx, SCB_E_FORMAT, "line %d: unterminated string literal", L->line);
    char *o = ar_alloc(L->ar, i - start + 1);
    if (!o) return scb_err(L->ctx, SCB_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t j = start; j < i; j++) {
        char c = L->s[j];
        if (c != '\\') { o[k++] = c; continue; }
        char e = L->s[++j];
        uint32_t cp; int nd = 0;
        switch (e) {
        case 'n': o[k++] = '\n'; break;
        case 't': o[k++] = '\t'; break;
        case 'r': o[k++] = '\r'; break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'v': o[k++] = '\v'; break;
        case '\n': break;
        case 'x': nd = 2; goto hex;
        case 'u': nd = 4; goto hex;
        case 'U': nd = 8;
        hex:
            cp = 0;
            for (int d = 0; d < nd; d++) {
                char h = j + 1 + d < i ? L->s[j + 1 + d] : 0;
                int v = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                if (v < 0) return scb_err(L->ctx, SCB_E_FORMAT, "line %d: truncated \\%c escape in string literal", L->line, e);
                cp = cp * 16 + (uint32_t)v;
            }
            j += (size_t)nd;
            if (cp > 0x10FFFF) return scb_err(L->ctx, SCB_E_FORMAT, "line %d: bad \\%c escape in string literal", L->line, e);
            k += (size_t)scb_utf8_encode(cp, o + k);   /* <= escape length for \x.. (2 bytes for >0x7f: fits in 4) */
            break;
        default:
            if (e >= '0' && e <= '7') {
                cp = 0;
                int d = 0;
                while (d < 3 && j < i && L->s[j] >= '0' && L->s[j] <= '7') { cp = cp * 8 + (uint32_t)(L->s[j] - '0'); j++; d++; }
                j--;
                k += (size_t)scb_utf8_encode(cp, o + k);
            } else { o[k++] = '\\'; o[k++] = e; }
        }
    }
    o[k] = 0;
    t->type = TK_STRING; t->p = o; t->n = k;
    L->line += count_nl(L->s + L->pos, i + 1 - L->pos);
    L->pos = i + 1;
    return SCB_OK;
}

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<=", NULL};
static const char ops1[] = "+-/*%~[](){}<>=.:|,;";

/* Tokens inside {{ }} or {% %} up to the matching end; is_block selects the end marker. */
static int lx_tag(struct lexer *L, int is_block, int *line_starting)
{
    int rc = SCB_OK, depth = 0;
    char endc = is_block ? '%' : '}';
    for (;;) {
        while (L->pos < L->n && is_ws(L->s[L->pos])) { if (L->s[L->pos] == '\n') L->line++; L->pos++; }
        if (L->pos >= L->n)
            return scb_err(L->ctx, SCB_E_FORMAT, "line %d: unexpected end of template inside %s, expected '%s'",
                           L->line, is_block ? "a block tag" : "an expression", is_block ? "%}" : "}}");
        const char *s = L->s + L->pos;
        size_t rem = L->n - L->pos;
        if (depth == 0) {
            int strip = 0, plus = 0; size_t len = 0;
            if (rem >= 3 && s[0] == '-' && s[1] == endc && s[2] == '}') { strip = 1; len = 3; }
            else if (is_block && rem >= 3 && s[0] == '+' && s[1] == endc && s[2] == '}') { plus = 1; len = 3; }
            else if (rem >= 2 && s[0] == endc && s[1] == '}') len = 2;
            if (len) {
                struct tok t = {is_block ? TK_BLOCK_END : TK_VAR_END, L->line, s, len, 0, 0};
                SCB_TRY(lx_push(L, t));
                L->pos += len;
                char last = '}';
                if (strip) {
                    while (L->pos < L->n && is_ws(L->s[L->pos])) { last = L->s[L->pos]; if (last == '\n') L->line++; L->pos++; }
                } else if (is_block && !plus && L->pos < L->n && L->s[L->pos] == '\n') {
                    last = '\n'; L->line++; L->pos++;   /* trim_blocks */
                }
                *line_starting = last == '\n';
                return SCB_OK;
            }
        }
        struct tok t = {TK_OP, L->line, s, 1, 0, 0};
        if (is_alpha_(s[0])) {
            size_t k = 1;
            while (k < rem && (is_alpha_(s[k]) || is_digit(s[k]))) k++;
            t.type = TK_NAME; t.n = k; L->pos += k;
        } else if (is_digit(s[0])) {
            size_t k = 0; int isf = 0;
            char buf[64]; size_t bn = 0;
            while (k < rem && (is_digit(s[k]) || s[k] == '_')) { if (s[k] != '_' && bn < 63) buf[bn++] = s[k]; k++; }
            if (k + 1 < rem && s[k] == '.' && is_digit(s[k + 1])) {
                isf = 1; buf[bn++] = '.'; k++;
                while (k < rem && (is_digit(s[k]) || s[k] == '_')) { if (s[k] != '_' && bn < 63) buf[bn++] = s[k]; k++; }
            }
            if (k < rem && (s[k] == 'e' || s[k] == 'E')) {
                size_t k2 = k + 1;
                if (k2 < rem && (s[k2] == '+' || s[k2] == '-')) k2++;
                if (k2 < rem && is_digit(s[k2])) {
                    isf = 1;
                    while (k < k2 && bn < 63) buf[bn++] = s[k++];
                    while (k < rem && is_digit(s[k])) { if (bn < 63) buf[bn++] = s[k]; k++; }
                }
            }
            buf[bn] = 0;
            if (isf) { t.type = TK_FLOAT; t.f = strtod(buf, NULL); }
            else { t.type = TK_INT; t.i = strtoll(buf, NULL, 10); }
            t.n = k; L->pos += k;
        } else if (s[0] == '\'' || s[0] == '"') {
            SCB_TRY(lx_string(L, s[0], &t));
        } else {
            size_t k = 0;
            for (int i = 0; ops2[i]; i++)
                if (rem >= 2 && s[0] == ops2[i][0] && s[1] == ops2[i][1]) { k = 2; break; }
            if (!k) {
                if (!strchr(ops1, s[0]) || s[0] == 0)
                    return scb_err(L->ctx, SCB_E_FORMAT, "line %d: unexpected character '%c' in template tag", L->line, s[0]);
                k = 1;
                if (s[0] == '(' || s[0] == '[' || s[0] == '{') depth++;
                if (s[0] == ')' || s[0] == ']' || s[0] == '}') {
                    if (depth == 0) return scb_err(L->ctx, SCB_E_FORMAT, "line %d: unexpected '%c'", L->line, s[0]);
                    depth--;
                }
            }
            t.n = k; L->pos += k;
        }
        SCB_TRY(lx_push(L, t));
    }
out:
    return rc;
}

static int lex(struct lexer *L)
{
    int rc = SCB_OK, line_starting = 1;
    for (;;) {
        size_t q = L->pos;
        int kind = 0;   /* 1 var, 2 block, 3 comment */
        for (; q + 1 < L->n; q++) {
            if (L->s[q] != '{') continue;
            char c = L->s[q + 1];
            if (c == '{') { kind = 1; break; }
            if (c == '%') { kind = 2; break; }
            if (c == '#') { kind = 3; break; }
        }
        if (!kind) {
            if (L->pos < L->n) {
                struct tok t = {TK_TEXT, L->line, L->s + L->pos, L->n - L->pos, 0, 0};
                SCB_TRY(lx_push(L, t));
            }
            break;
        }
        const char *text = L->s + L->pos;
        size_t tn = q - L->pos;
        int tline = L->line;
        L->line += count_nl(text, tn);
        char sign = q + 2 < L->n ? L->s[q + 2] : 0;
        if (sign != '-' && sign != '+') sign = 0;
        if (sign == '-') {
            while (tn > 0 && is_ws(text[tn - 1])) tn--;
        } else if (sign != '+' && kind != 1) {
            size_t lpos = tn;
            while (lpos > 0 && text[lpos - 1] != '\n') lpos--;
            if (lpos > 0 || line_starting) {
                int allws = tn > lpos;
                for (size_t i = lpos; i < tn; i++) if (!is_ws(text[i])) { allws = 0; break; }
                if (allws) tn = lpos;
            }
        }
        if (tn) {
            struct tok t = {TK_TEXT, tline, text, tn, 0, 0};
            SCB_TRY(lx_push(L, t));
        }
        L->pos = q + 2 + (sign ? 1 : 0);
        if (kind == 3) {
            size_t i = L->pos;
            int found = 0;
            for (; i + 1 < L->n; i++) {
                if (L->s[i] == '+' && i + 2 < L->n && L->s[i + 1] == '#' && L->s[i + 2] == '}') { L->line += count_nl(L->s + L->pos, i - L->pos); L->pos = i + 3; line_starting = 0; found = 1; break; }
                if (L->s[i] == '-' && i + 2 < L->n && L->s[i + 1] == '#' && L->s[i + 2] == '}') {
                    L->line += count_nl(L->s + L->pos, i - L->pos);
                    L->pos = i + 3; char last = '}';
                    while (L->pos < L->n && is_ws(L->s[L->pos])) { last = L->s[L->pos]; if (last == '\n') L->line++; L->pos++; }
                    line_starting = last == '\n'; found = 1; break;
                }
                if (L->s[i] == '#' && L->s[i + 1] == '}') {
                    L->line += count_nl(L->s + L->pos, i - L->pos);
                    L->pos = i + 2; line_starting = 0;
                    if (L->pos < L->n && L->s[L->pos] == '\n') { L->pos++; L->line++; line_starting = 1; }
                    found = 1; break;
                }
            }
            if (!found) return scb_err(L->ctx, SCB_E_FORMAT, "line %d: missing end of comment tag '#}'", L->line);
            continue;
        }
        struct tok t = {kind == 1 ? TK_VAR_BEGIN : TK_BLOCK_BEGIN, L->line, L->s + q, 2, 0, 0};
        SCB_TRY(lx_push(L, t));
        SCB_TRY(lx_tag(L, kind == 2, &line_starting));
    }
    {
        struct tok t = {TK_EOF, L->line, "", 0, 0, 0};
        SCB_TRY(lx_push(L, t));
    }
out:
    return rc;
}

/* ======================================================================================
 * Parser
 * ====================================================================================== */
struct parser {
    struct tok *t; size_t i, n;
    struct jarena *ar;
    struct scb_ctx *ctx;
};

static const char *const known_filters[] = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first",
    "float", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "safe", "select",
    "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
    "wordcount", NULL
};
static const char *const known_tests[] = {
    "defined", "undefined", "none", "boolean", "false", "true", "integer", "float", "number",
    "string", "mapping", "iterable", "sequence", "callable", "odd", "even", "divisibleby",
    "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan",
    ">", "ge", ">=", "in", "sameas", "lower", "upper", "filter", "test", NULL
};

static int in_list(const char *const *l, const char *s)
{
    for (int i = 0; l[i]; i++) if (!strcmp(l[i], s)) return 1;
    return 0;
}

static struct tok *cur(struct parser *P) { return &P->t[P->i]; }
static int tok_is_op(const struct tok *t, const char *op) { return t->type == TK_OP && t->n == strlen(op) && !memcmp(t->p, op, t->n); }
static int tok_is_name(const struct tok *t, const char *nm) { return t->type == TK_NAME && t->n == strlen(nm) && !memcmp(t->p, nm, t->n); }

static char *p_strdup(struct parser *P, const char *p, size_t n)
{
    char *s = ar_alloc(P->ar, n + 1);
    if (s) { memcpy(s, p, n); s[n] = 0; }
    return s;
}

static const char *tok_desc(const struct tok *t, char *buf, size_t bn)
{
    switch (t->type) {
    case TK_EOF: return "end of template";
    case TK_BLOCK_END: return "end of statement block";
    case TK_VAR_END: return "end of print statement";
    case TK_STRING: return "string";
    case TK_INT: case TK_FLOAT: return "number";
    default: snprintf(buf, bn, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); return buf;
    }
}

static int p_fail(struct parser *P, const char *what)
{
    char b[64];
    return scb_err(P->ctx, SCB_E_FORMAT, "line %d: expected %s, got %s", cur(P)->line, what, tok_desc(cur(P), b, sizeof b));
}

static int p_expect_op(struct parser *P, const char *op)
{
    if (!tok_is_op(cur(P), op)) {
        char w[16]; snprintf(w, sizeof w, "'%s'", op);
        return p_fail(P, w);
    }
    P->i++;
    return SCB_OK;
}

static struct expr *mk_expr(struct parser *P, int kind, int line)
{
    struct expr *e = ar_alloc(P->ar, sizeof *e);
    if (e) { memset(e, 0, sizeof *e); e->kind = kind; e->line = line; }
    return e;
}

#define P_NEW(var, kind, line) do { if (!((var) = mk_expr(P, (kind), (line)))) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; } } while (0)

/* growable arrays of pointers in the parser arena */
struct pvec { void **v; const char **kw; int n, cap; };
static int pv_push(struct parser *P, struct pvec *pv, void *x, const char *kw)
{
    if (pv->n == pv->cap) {
        int nc = pv->cap ? pv->cap * 2 : 4;
        void **nv = ar_alloc(P->ar, (size_t)nc * sizeof *nv);
        const char **nk = ar_alloc(P->ar, (size_t)nc * sizeof *nk);
        if (!nv || !nk) return scb_err(P->ctx, SCB_E_NOMEM, "out of memory");
        if (pv->n) { memcpy(nv, pv->v, (size_t)pv->n * sizeof *nv); memcpy(nk, pv->kw, (size_t)pv->n * sizeof *nk); }
        pv->v = nv; pv->kw = nk; pv->cap = nc;
    }
    pv->kw[pv->n] = kw;
    pv->v[pv->n++] = x;
    return SCB_OK;
}

static int parse_expr(struct parser *P, struct expr **out, int with_cond);
static int parse_unary(struct parser *P, struct expr **out, int with_filter);
static int parse_primary(struct parser *P, struct expr **out);
static int parse_postfix(struct parser *P, struct expr **node);

static int parse_call_args(struct parser *P, struct expr *e)
{
    int rc = SCB_OK;
    struct pvec pv = {0};
    SCB_TRY(p_expect_op(P, "("));
    while (!tok_is_op(cur(P), ")")) {
        if (pv.n) SCB_TRY(p_expect_op(P, ","));
        if (tok_is_op(cur(P), ")")) break;
        if (tok_is_op(cur(P), "*")) { rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unsupported: *args / **kwargs in calls", cur(P)->line); goto out; }
        const char *kw = NULL;
        if (cur(P)->type == TK_NAME && tok_is_op(&P->t[P->i + 1], "=")) {
            kw = p_strdup(P, cur(P)->p, cur(P)->n);
            P->i += 2;
        } else {
            for (int k = 0; k < pv.n; k++)
                if (pv.kw[k]) { rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: positional argument follows keyword argument", cur(P)->line); goto out; }
        }
        struct expr *a;
        SCB_TRY(parse_expr(P, &a, 1));
        SCB_TRY(pv_push(P, &pv, a, kw));
    }
    P->i++;
    e->args = (struct expr **)pv.v; e->kw = pv.kw; e->nargs = pv.n;
out:
    return rc;
}

static int parse_filters_tests(struct parser *P, struct expr **node)
{
    int rc = SCB_OK;
    for (;;) {
        struct tok *t = cur(P);
        if (tok_is_op(t, "|")) {
            P->i++;
            if (cur(P)->type != TK_NAME) { rc = p_fail(P, "a filter name"); goto out; }
            struct expr *f;
            P_NEW(f, E_FILTER, cur(P)->line);
            /* dotted filter names are not used by chat templates; plain names only */
            f->name = p_strdup(P, cur(P)->p, cur(P)->n);
            P->i++;
            if (!in_list(known_filters, f->name)) {
                rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unsupported filter '%s'", f->line, f->name);
                goto out;
            }
            f->a = *node;
            if (tok_is_op(cur(P), "(")) SCB_TRY(parse_call_args(P, f));
            *node = f;
        } else if (tok_is_name(t, "is")) {
            P->i++;
            struct expr *te;
            P_NEW(te, E_TEST, t->line);
            if (tok_is_name(cur(P), "not")) { te->negate = 1; P->i++; }
            struct tok *nt = cur(P);
            if (nt->type == TK_NAME) te->name = p_strdup(P, nt->p, nt->n);
            else if (tok_is_op(nt, "==") || tok_is_op(nt, "!=") || tok_is_op(nt, "<") || tok_is_op(nt, ">") || tok_is_op(nt, "<=") || tok_is_op(nt, ">="))
                te->name = p_strdup(P, nt->p, nt->n);
            else { rc = p_fail(P, "a test name"); goto out; }
            P->i++;
            if (!in_list(known_tests, te->name)) {
                rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unsupported test '%s'", te->line, te->name);
                goto out;
            }
            te->a = *node;
            struct tok *at = cur(P);
            if (tok_is_op(at, "(")) {
                SCB_TRY(parse_call_args(P, te));
            } else if ((at->type == TK_NAME || at->type == TK_STRING || at->type == TK_INT || at->type == TK_FLOAT ||
                        tok_is_op(at, "[") || tok_is_op(at, "{")) &&
                       !tok_is_name(at, "else") && !tok_is_name(at, "or") && !tok_is_name(at, "and")) {
                if (tok_is_name(at, "is")) { rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: you cannot chain multiple tests with is", at->line); goto out; }
                struct expr *arg;
                SCB_TRY(parse_primary(P, &arg));
                SCB_TRY(parse_postfix(P, &arg));
                te->args = ar_alloc(P->ar, sizeof *te->args);
                te->kw = ar_alloc(P->ar, sizeof *te->kw);
                if (!te->args || !te->kw) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
                te->args[0] = arg; te->kw[0] = NULL; te->nargs = 1;
            }
            *node = te;
        } else if (tok_is_op(t, "(")) {
            struct expr *c;
            P_NEW(c, E_CALL, t->line);
            c->a = *node;
            SCB_TRY(parse_call_args(P, c));
            *node = c;
        } else break;
    }
out:
    return rc;
}

static int parse_subscript_part(struct parser *P, struct expr **out)
{
    /* one of: expr | [expr]:[expr][:[expr]] */
    int rc = SCB_OK;
    struct expr *parts[3] = {NULL, NULL, NULL};
    int line = cur(P)->line, np = 0, is_slice = 0;
    for (;;) {
        if (tok_is_op(cur(P), ":")) { is_slice = 1; np++; P->i++; if (np > 2) { rc = p_fail(P, "']'"); goto out; } continue; }
        if (tok_is_op(cur(P), "]")) break;
        if (parts[np]) { rc = p_fail(P, "']'"); goto out; }
        SCB_TRY(parse_expr(P, &parts[np], 1));
    }
    if (!is_slice) { *out = parts[0]; if (!*out) rc = p_fail(P, "an expression"); goto out; }
    struct expr *s;
    P_NEW(s, E_SLICE, line);
    s->b = parts[0]; s->c = parts[1];
    s->args = ar_alloc(P->ar, sizeof *s->args);
    if (!s->args) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    s->args[0] = parts[2];
    *out = s;
out:
    return rc;
}

static int parse_postfix(struct parser *P, struct expr **node)
{
    int rc = SCB_OK;
    for (;;) {
        struct tok *t = cur(P);
        if (tok_is_op(t, ".")) {
            P->i++;
            struct tok *nt = cur(P);
            struct expr *e;
            if (nt->type == TK_NAME) {
                P_NEW(e, E_ATTR, t->line);
                e->name = p_strdup(P, nt->p, nt->n);
                e->a = *node;
            } else if (nt->type == TK_INT) {
                P_NEW(e, E_ITEM, t->line);
                struct expr *k;
                P_NEW(k, E_LIT, t->line);
                k->lit.t = JT_INT; k->lit.u.i = nt->i;
                e->a = *node; e->b = k;
            } else { rc = p_fail(P, "an attribute name"); goto out; }
            P->i++;
            *node = e;
        } else if (tok_is_op(t, "[")) {
            P->i++;
            struct expr *sub;
            SCB_TRY(parse_subscript_part(P, &sub));
            SCB_TRY(p_expect_op(P, "]"));
            if (sub->kind == E_SLICE) { sub->a = *node; *node = sub; }
            else {
                struct expr *e;
                P_NEW(e, E_ITEM, t->line);
                e->a = *node; e->b = sub;
                *node = e;
            }
        } else if (tok_is_op(t, "(")) {
            struct expr *c;
            P_NEW(c, E_CALL, t->line);
            c->a = *node;
            SCB_TRY(parse_call_args(P, c));
            *node = c;
        } else break;
    }
out:
    return rc;
}

static int parse_primary(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    struct tok *t = cur(P);
    struct expr *e = NULL;
    if (t->type == TK_NAME) {
        P_NEW(e, E_LIT, t->line);
        if (tok_is_name(t, "true") || tok_is_name(t, "True")) { e->lit.t = JT_BOOL; e->lit.u.i = 1; }
        else if (tok_is_name(t, "false") || tok_is_name(t, "False")) { e->lit.t = JT_BOOL; e->lit.u.i = 0; }
        else if (tok_is_name(t, "none") || tok_is_name(t, "None")) { e->lit.t = JT_NONE; }
        else { e->kind = E_NAME; e->name = p_strdup(P, t->p, t->n); }
        P->i++;
    } else if (t->type == TK_STRING) {
        /* adjacent string literals concatenate */
        size_t tot = 0, j = P->i;
        while (P->t[j].type == TK_STRING) tot += P->t[j++].n;
        char *buf = ar_alloc(P->ar, tot + 1);
        struct jstr *js = ar_alloc(P->ar, sizeof *js);
        P_NEW(e, E_LIT, t->line);
        if (!buf || !js) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        size_t k = 0;
        while (P->t[P->i].type == TK_STRING) { memcpy(buf + k, P->t[P->i].p, P->t[P->i].n); k += P->t[P->i].n; P->i++; }
        buf[k] = 0;
        js->p = buf; js->n = k;
        e->lit.t = JT_STR; e->lit.u.s = js;
    } else if (t->type == TK_INT) {
        P_NEW(e, E_LIT, t->line); e->lit.t = JT_INT; e->lit.u.i = t->i; P->i++;
    } else if (t->type == TK_FLOAT) {
        P_NEW(e, E_LIT, t->line); e->lit.t = JT_FLOAT; e->lit.u.f = t->f; P->i++;
    } else if (tok_is_op(t, "(")) {
        P->i++;
        struct pvec pv = {0};
        int trailing_comma = 0;
        while (!tok_is_op(cur(P), ")")) {
            if (pv.n) { SCB_TRY(p_expect_op(P, ",")); trailing_comma = 1; if (tok_is_op(cur(P), ")")) break; }
            struct expr *x;
            SCB_TRY(parse_expr(P, &x, 1));
            SCB_TRY(pv_push(P, &pv, x, NULL));
            trailing_comma = 0;
        }
        P->i++;
        if (pv.n == 1 && !trailing_comma) e = pv.v[0];
        else {
            P_NEW(e, E_TUPLE, t->line);
            e->args = (struct expr **)pv.v; e->nargs = pv.n;
        }
    } else if (tok_is_op(t, "[")) {
        P->i++;
        struct pvec pv = {0};
        while (!tok_is_op(cur(P), "]")) {
            if (pv.n) { SCB_TRY(p_expect_op(P, ",")); if (tok_is_op(cur(P), "]")) break; }
            struct expr *x;
            SCB_TRY(parse_expr(P, &x, 1));
            SCB_TRY(pv_push(P, &pv, x, NULL));
        }
        P->i++;
        P_NEW(e, E_LIST, t->line);
        e->args = (struct expr **)pv.v; e->nargs = pv.n;
    } else if (tok_is_op(t, "{")) {
        P->i++;
        struct pvec pv = {0};
        while (!tok_is_op(cur(P), "}")) {
            if (pv.n) { SCB_TRY(p_expect_op(P, ",")); if (tok_is_op(cur(P), "}")) break; }
            struct expr *k, *v;
            SCB_TRY(parse_expr(P, &k, 1));
            SCB_TRY(p_expect_op(P, ":"));
            SCB_TRY(parse_expr(P, &v, 1));
            SCB_TRY(pv_push(P, &pv, k, NULL));
            SCB_TRY(pv_push(P, &pv, v, NULL));
        }
        P->i++;
        P_NEW(e, E_DICT, t->line);
        e->args = (struct expr **)pv.v; e->nargs = pv.n;
    } else {
        rc = p_fail(P, "an expression");
        goto out;
    }
    *out = e;
out:
    return rc;
}

static int parse_unary(struct parser *P, struct expr **out, int with_filter)
{
    int rc = SCB_OK;
    struct tok *t = cur(P);
    struct expr *e;
    if (tok_is_op(t, "-") || tok_is_op(t, "+")) {
        P->i++;
        P_NEW(e, t->p[0] == '-' ? E_NEG : E_POS, t->line);
        SCB_TRY(parse_unary(P, &e->a, 0));
    } else {
        SCB_TRY(parse_primary(P, &e));
    }
    SCB_TRY(parse_postfix(P, &e));
    if (with_filter) SCB_TRY(parse_filters_tests(P, &e));
    *out = e;
out:
    return rc;
}

static int mk_bin(struct parser *P, struct expr **node, int kind, int op, struct expr *rhs, int line)
{
    struct expr *e = mk_expr(P, kind, line);
    if (!e) return scb_err(P->ctx, SCB_E_NOMEM, "out of memory");
    e->op = op; e->a = *node; e->b = rhs;
    *node = e;
    return SCB_OK;
}

static int parse_pow(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_unary(P, out, 1));
    while (tok_is_op(cur(P), "**")) {
        int line = cur(P)->line; P->i++;
        struct expr *r;
        SCB_TRY(parse_unary(P, &r, 1));
        SCB_TRY(mk_bin(P, out, E_BIN, OP_POW, r, line));
    }
out:
    return rc;
}

static int parse_math2(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_pow(P, out));
    for (;;) {
        struct tok *t = cur(P);
        int op = tok_is_op(t, "*") ? OP_MUL : tok_is_op(t, "/") ? OP_DIV : tok_is_op(t, "//") ? OP_FLOORDIV : tok_is_op(t, "%") ? OP_MOD : 0;
        if (!op) break;
        P->i++;
        struct expr *r;
        SCB_TRY(parse_pow(P, &r));
        SCB_TRY(mk_bin(P, out, E_BIN, op, r, t->line));
    }
out:
    return rc;
}

static int parse_concat(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_math2(P, out));
    while (tok_is_op(cur(P), "~")) {
        int line = cur(P)->line; P->i++;
        struct expr *r;
        SCB_TRY(parse_math2(P, &r));
        SCB_TRY(mk_bin(P, out, E_BIN, OP_CONCAT, r, line));
    }
out:
    return rc;
}

static int parse_math1(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_concat(P, out));
    for (;;) {
        struct tok *t = cur(P);
        int op = tok_is_op(t, "+") ? OP_ADD : tok_is_op(t, "-") ? OP_SUB : 0;
        if (!op) break;
        P->i++;
        struct expr *r;
        SCB_TRY(parse_concat(P, &r));
        SCB_TRY(mk_bin(P, out, E_BIN, op, r, t->line));
    }
out:
    return rc;
}

static int parse_compare(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    struct expr *first;
    SCB_TRY(parse_math1(P, &first));
    struct pvec pv = {0};
    int ops[64], nops = 0, line = cur(P)->line;
    for (;;) {
        struct tok *t = cur(P);
        int op = tok_is_op(t, "==") ? OP_EQ : tok_is_op(t, "!=") ? OP_NE : tok_is_op(t, "<") ? OP_LT :
                 tok_is_op(t, "<=") ? OP_LE : tok_is_op(t, ">") ? OP_GT : tok_is_op(t, ">=") ? OP_GE :
                 tok_is_name(t, "in") ? OP_IN : 0;
        if (!op && tok_is_name(t, "not") && tok_is_name(&P->t[P->i + 1], "in")) { op = OP_NOTIN; P->i++; }
        if (!op) break;
        P->i++;
        if (nops == 63) { rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: comparison chain too long", t->line); goto out; }
        if (!pv.n) SCB_TRY(pv_push(P, &pv, first, NULL));
        struct expr *r;
        SCB_TRY(parse_math1(P, &r));
        SCB_TRY(pv_push(P, &pv, r, NULL));
        ops[nops++] = op;
    }
    if (!nops) { *out = first; goto out; }
    struct expr *e;
    P_NEW(e, E_CMP, line);
    e->args = (struct expr **)pv.v; e->nargs = pv.n;
    e->ops = ar_alloc(P->ar, (size_t)nops * sizeof(int));
    if (!e->ops) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    memcpy(e->ops, ops, (size_t)nops * sizeof(int));
    *out = e;
out:
    return rc;
}

static int parse_not(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    if (tok_is_name(cur(P), "not")) {
        struct expr *e;
        P_NEW(e, E_NOT, cur(P)->line);
        P->i++;
        SCB_TRY(parse_not(P, &e->a));
        *out = e;
        goto out;
    }
    rc = parse_compare(P, out);
out:
    return rc;
}

static int parse_and(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_not(P, out));
    while (tok_is_name(cur(P), "and")) {
        int line = cur(P)->line; P->i++;
        struct expr *r;
        SCB_TRY(parse_not(P, &r));
        SCB_TRY(mk_bin(P, out, E_AND, 0, r, line));
    }
out:
    return rc;
}

static int parse_or(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    SCB_TRY(parse_and(P, out));
    while (tok_is_name(cur(P), "or")) {
        int line = cur(P)->line; P->i++;
        struct expr *r;
        SCB_TRY(parse_and(P, &r));
        SCB_TRY(mk_bin(P, out, E_OR, 0, r, line));
    }
out:
    return rc;
}

static int parse_expr(struct parser *P, struct expr **out, int with_cond)
{
    int rc = SCB_OK;
    SCB_TRY(parse_or(P, out));
    while (with_cond && tok_is_name(cur(P), "if")) {
        struct expr *c;
        P_NEW(c, E_COND, cur(P)->line);
        P->i++;
        c->a = *out;
        SCB_TRY(parse_or(P, &c->b));
        if (tok_is_name(cur(P), "else")) { P->i++; SCB_TRY(parse_expr(P, &c->c, 1)); }
        *out = c;
    }
out:
    return rc;
}

/* expression or bare tuple "a, b" (as after {{ or in set) */
static int parse_tuple_expr(struct parser *P, struct expr **out)
{
    int rc = SCB_OK;
    int line = cur(P)->line;
    SCB_TRY(parse_expr(P, out, 1));
    if (!tok_is_op(cur(P), ",")) goto out;
    struct pvec pv = {0};
    SCB_TRY(pv_push(P, &pv, *out, NULL));
    while (tok_is_op(cur(P), ",")) {
        P->i++;
        if (cur(P)->type == TK_BLOCK_END || cur(P)->type == TK_VAR_END) break;
        struct expr *x;
        SCB_TRY(parse_expr(P, &x, 1));
        SCB_TRY(pv_push(P, &pv, x, NULL));
    }
    struct expr *e;
    P_NEW(e, E_TUPLE, line);
    e->args = (struct expr **)pv.v; e->nargs = pv.n;
    *out = e;
out:
    return rc;
}

/* ---- statements ---- */
static int nl_push(struct parser *P, struct nlist *l, struct node *n, size_t *cap)
{
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        struct node **nv = ar_alloc(P->ar, nc * sizeof *nv);
        if (!nv) return scb_err(P->ctx, SCB_E_NOMEM, "out of memory");
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv; *cap = nc;
    }
    l->v[l->n++] = n;
    return SCB_OK;
}

static struct node *mk_node(struct parser *P, int kind, int line)
{
    struct node *n = ar_alloc(P->ar, sizeof *n);
    if (n) { memset(n, 0, sizeof *n); n->kind = kind; n->line = line; }
    return n;
}

#define N_NEW(var, kind, line) do { if (!((var) = mk_node(P, (kind), (line)))) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; } } while (0)

static int expect_block_end(struct parser *P)
{
    if (cur(P)->type != TK_BLOCK_END) return p_fail(P, "end of statement block '%}'");
    P->i++;
    return SCB_OK;
}

static int parse_body(struct parser *P, struct nlist *out, const char *const *ends, const char **which, const char *opener, int open_line);

static int parse_name_list(struct parser *P, const char ***names, int *n)
{
    int rc = SCB_OK;
    struct pvec pv = {0};
    int paren = tok_is_op(cur(P), "(");
    if (paren) P->i++;
    for (;;) {
        if (cur(P)->type != TK_NAME) { rc = p_fail(P, "a variable name"); goto out; }
        SCB_TRY(pv_push(P, &pv, p_strdup(P, cur(P)->p, cur(P)->n), NULL));
        P->i++;
        if (!tok_is_op(cur(P), ",")) break;
        P->i++;
        if (paren && tok_is_op(cur(P), ")")) break;
    }
    if (paren) SCB_TRY(p_expect_op(P, ")"));
    *names = (const char **)pv.v; *n = pv.n;
out:
    return rc;
}

static int parse_stmt(struct parser *P, struct node **out)
{
    int rc = SCB_OK;
    struct tok *t = cur(P);
    int line = t->line;
    struct node *n = NULL;
    if (t->type != TK_NAME) { rc = p_fail(P, "a statement name"); goto out; }
    char tag[64];
    snprintf(tag, sizeof tag, "%.*s", (int)(t->n > 60 ? 60 : t->n), t->p);
    P->i++;
    if (!strcmp(tag, "if")) {
        N_NEW(n, N_IF, line);
        struct pvec conds = {0};
        struct nlist *bodies = NULL; size_t nb = 0, cb = 0;
        for (;;) {
            struct expr *c;
            SCB_TRY(parse_tuple_expr(P, &c));
            SCB_TRY(expect_block_end(P));
            SCB_TRY(pv_push(P, &conds, c, NULL));
            if (nb == cb) {
                size_t nc = cb ? cb * 2 : 4;
                struct nlist *nbd = ar_alloc(P->ar, nc * sizeof *nbd);
                if (!nbd) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
                if (nb) memcpy(nbd, bodies, nb * sizeof *nbd);
                bodies = nbd; cb = nc;
            }
            memset(&bodies[nb], 0, sizeof bodies[nb]);
            static const char *const ends[] = {"elif", "else", "endif", NULL};
            const char *which;
            SCB_TRY(parse_body(P, &bodies[nb++], ends, &which, "if", line));
            if (!strcmp(which, "elif")) continue;
            if (nb == cb) {
                struct nlist *nbd = ar_alloc(P->ar, (cb + 1) * sizeof *nbd);
                if (!nbd) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
                memcpy(nbd, bodies, nb * sizeof *nbd);
                bodies = nbd; cb++;
            }
            memset(&bodies[nb], 0, sizeof bodies[nb]);
            if (!strcmp(which, "else")) {
                SCB_TRY(expect_block_end(P));
                static const char *const ends2[] = {"endif", NULL};
                SCB_TRY(parse_body(P, &bodies[nb], ends2, &which, "if", line));
            }
            SCB_TRY(expect_block_end(P));
            break;
        }
        n->conds = (struct expr **)conds.v; n->nconds = conds.n; n->bodies = bodies;
    } else if (!strcmp(tag, "for")) {
        N_NEW(n, N_FOR, line);
        SCB_TRY(parse_name_list(P, &n->targets, &n->ntargets));
        if (!tok_is_name(cur(P), "in")) { rc = p_fail(P, "'in'"); goto out; }
        P->i++;
        /* iterable: no conditional expression (the 'if' is the loop filter) */
        SCB_TRY(parse_or(P, &n->e));
        if (tok_is_op(cur(P), ",")) { rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unsupported: iterating a bare tuple", line); goto out; }
        if (tok_is_name(cur(P), "if")) { P->i++; SCB_TRY(parse_expr(P, &n->filter, 1)); }
        if (tok_is_name(cur(P), "recursive")) { rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unsupported: recursive for loops", line); goto out; }
        SCB_TRY(expect_block_end(P));
        static const char *const ends[] = {"else", "endfor", NULL};
        const char *which;
        SCB_TRY(parse_body(P, &n->body, ends, &which, "for", line));
        if (!strcmp(which, "else")) {
            SCB_TRY(expect_block_end(P));
            static const char *const ends2[] = {"endfor", NULL};
            SCB_TRY(parse_body(P, &n->orelse, ends2, &which, "for", line));
        }
        SCB_TRY(expect_block_end(P));
    } else if (!strcmp(tag, "set")) {
        if (cur(P)->type != TK_NAME) { rc = p_fail(P, "a variable name"); goto out; }
        if (tok_is_op(&P->t[P->i + 1], ".")) {
            N_NEW(n, N_SET, line);
            n->targets = ar_alloc(P->ar, sizeof *n->targets);
            if (!n->targets) { rc = scb_err(P->ctx, SCB_E_NOMEM, "out of memory"); goto out; }
            n->targets[0] = p_strdup(P, cur(P)->p, cur(P)->n); n->ntargets = 1;
            P->i += 2;
            if (cur(P)->type != TK_NAME) { rc = p_fail(P, "an attribute name"); goto out; }
            n->attr = p_strdup(P, cur(P)->p, cur(P)->n);
            P->i++;
        } else {
            N_NEW(n, N_SET, line);
            SCB_TRY(parse_name_list(P, &n->targets, &n->ntargets));
        }
        if (cur(P)->type == TK_BLOCK_END && !n->attr && n->ntargets == 1) {
            n->kind = N_SETBLOCK;
            P->i++;
            static const char *const ends[] = {"endset", NULL};
            const char *which;
            SCB_TRY(parse_body(P, &n->body, ends, &which, "set", line));
            SCB_TRY(expect_block_end(P));
        } else {
            SCB_TRY(p_expect_op(P, "="));
            SCB_TRY(parse_tuple_expr(P, &n->e));
            SCB_TRY(expect_block_end(P));
        }
    } else if (!strcmp(tag, "macro")) {
        N_NEW(n, N_MACRO, line);
        if (cur(P)->type != TK_NAME) { rc = p_fail(P, "a macro name"); goto out; }
        n->name = p_strdup(P, cur(P)->p, cur(P)->n);
        P->i++;
        SCB_TRY(p_expect_op(P, "("));
        struct pvec pv = {0}, dv = {0};
        while (!tok_is_op(cur(P), ")")) {
            if (pv.n) SCB_TRY(p_expect_op(P, ","));
            if (cur(P)->type != TK_NAME) { rc = p_fail(P, "a parameter name"); goto out; }
            SCB_TRY(pv_push(P, &pv, p_strdup(P, cur(P)->p, cur(P)->n), NULL));
            P->i++;
            struct expr *d = NULL;
            if (tok_is_op(cur(P), "=")) { P->i++; SCB_TRY(parse_expr(P, &d, 1)); }
            SCB_TRY(pv_push(P, &dv, d, NULL));
        }
        P->i++;
        n->params = (const char **)pv.v; n->defaults = (struct expr **)dv.v; n->nparams = pv.n;
        SCB_TRY(expect_block_end(P));
        static const char *const ends[] = {"endmacro", NULL};
        const char *which;
        SCB_TRY(parse_body(P, &n->body, ends, &which, "macro", line));
        if (cur(P)->type == TK_NAME) P->i++;   /* {% endmacro name %} */
        SCB_TRY(expect_block_end(P));
    } else if (!strcmp(tag, "break") || !strcmp(tag, "continue")) {
        N_NEW(n, tag[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        SCB_TRY(expect_block_end(P));
    } else if (!strcmp(tag, "generation")) {
        N_NEW(n, N_BODY, line);
        SCB_TRY(expect_block_end(P));
        static const char *const ends[] = {"endgeneration", NULL};
        const char *which;
        SCB_TRY(parse_body(P, &n->body, ends, &which, "generation", line));
        SCB_TRY(expect_block_end(P));
    } else {
        static const char *const jinja_tags[] = {"include", "import", "from", "extends", "block", "call",
                                                 "filter", "with", "raw", "do", "autoescape", "trans", NULL};
        rc = scb_err(P->ctx, SCB_E_UNSUPPORTED, "line %d: unknown tag '%s'%s", line, tag,
                     in_list(jinja_tags, tag) ? " (a jinja2 tag outside scbench's Jinja subset)" : "");
        goto out;
    }
    *out = n;
out:
    return rc;
}

/* Parse nodes until {% <one of ends> ; leaves the parser after the end tag's name. ends NULL
 * = top level (until EOF). */
static int parse_body(struct parser *P, struct nlist *out, const char *const *ends, const char **which, const char *opener, int open_line)
{
    int rc = SCB_OK;
    size_t cap = 0;
    for (;;) {
        struct tok *t = cur(P);
        if (t->type == TK_EOF) {
            if (!ends) goto out;
            char exp[128] = ""; size_t k = 0;
            for (int i = 0; ends[i]; i++) k += (size_t)snprintf(exp + k, sizeof exp - k, "%s'%s'", i ? " or " : "", ends[i]);
            rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: unexpected end of template; the '%s' opened on line %d expects %s",
                         t->line, opener, open_line, exp);
            goto out;
        }
        if (t->type == TK_TEXT) {
            struct node *n;
            N_NEW(n, N_TEXT, t->line);
            n->text = t->p; n->len = t->n;
            SCB_TRY(nl_push(P, out, n, &cap));
            P->i++;
        } else if (t->type == TK_VAR_BEGIN) {
            struct node *n;
            N_NEW(n, N_OUT, t->line);
            P->i++;
            SCB_TRY(parse_tuple_expr(P, &n->e));
            if (cur(P)->type != TK_VAR_END) { rc = p_fail(P, "end of print statement '}}'"); goto out; }
            P->i++;
            SCB_TRY(nl_push(P, out, n, &cap));
        } else if (t->type == TK_BLOCK_BEGIN) {
            struct tok *nt = &P->t[P->i + 1];
            if (nt->type == TK_NAME && ends) {
                for (int i = 0; ends[i]; i++)
                    if (tok_is_name(nt, ends[i])) { *which = ends[i]; P->i += 2; goto out; }
            }
            if (nt->type == TK_NAME && nt->n > 3 && !memcmp(nt->p, "end", 3)) {
                char exp[128] = ""; size_t k = 0;
                for (int i = 0; ends && ends[i]; i++) k += (size_t)snprintf(exp + k, sizeof exp - k, "%s'%s'", i ? " or " : "", ends[i]);
                if (ends)
                    rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: unexpected '%.*s'; the '%s' opened on line %d expects %s",
                                 nt->line, (int)nt->n, nt->p, opener, open_line, exp);
                else
                    rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: unexpected '%.*s' with no open block", nt->line, (int)nt->n, nt->p);
                goto out;
            }
            if (nt->type == TK_NAME && (tok_is_name(nt, "else") || tok_is_name(nt, "elif"))) {
                rc = scb_err(P->ctx, SCB_E_FORMAT, "line %d: unexpected '%.*s'%s%s%s", nt->line, (int)nt->n, nt->p,
                             ends ? " inside '" : " with no open block", ends ? opener : "", ends ? "'" : "");
                goto out;
            }
            P->i++;
            struct node *n = NULL;
            SCB_TRY(parse_stmt(P, &n));
            SCB_TRY(nl_push(P, out, n, &cap));
        } else {
            rc = p_fail(P, "template data or a tag");
            goto out;
        }
    }
out:
    return rc;
}

int scb_jinja_compile(struct scb_jinja_tmpl **out, const char *src, size_t len, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct lexer L = {0};
    struct scb_jinja_tmpl *t = NULL;
    char *norm = NULL;
    *out = NULL;
    if (!src) return scb_err(ctx, SCB_E_INVAL, "no template source");
    t = scb_calloc(1, sizeof *t);
    if (!t) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    /* newlines: \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False) */
    norm = ar_alloc(&t->ar, len + 1);
    if (!norm) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') { norm[k++] = '\n'; if (i + 1 < len && src[i + 1] == '\n') i++; }
        else norm[k++] = src[i];
    }
    if (k && norm[k - 1] == '\n') k--;
    norm[k] = 0;
    L.s = norm; L.n = k; L.line = 1; L.ar = &t->ar; L.ctx = ctx;
    SCB_TRY(lex(&L));
    struct parser P = {L.toks, 0, L.ntok, &t->ar, ctx};
    SCB_TRY(parse_body(&P, &t->root, NULL, NULL, NULL, 0));
    *out = t;
    t = NULL;
out:
    scb_free(L.toks);
    if (t) { ar_free(&t->ar); scb_free(t); }
    return rc;
}

void scb_jinja_destroy(struct scb_jinja_tmpl *t)
{
    if (!t) return;
    ar_free(&t->ar);
    scb_free(t);
}

/* ======================================================================================
 * Evaluator: render state, scopes, value helpers
 * ====================================================================================== */
enum { CTL_BREAK = 1, CTL_CONTINUE = 2 };

struct frame { struct frame *parent; struct jdict vars; };

struct rs {
    struct jarena ar;
    struct scb_ctx *ctx;
    struct scb_buf *out;
    struct frame *fr;
    long long now;
    int depth;
};

static int rerr(struct rs *R, int line, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int rerr(struct rs *R, int line, int code, const char *fmt, ...)
{
    char msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return scb_err(R->ctx, code, "line %d: %s", line, msg);
}
#define NOMEM(R) scb_err((R)->ctx, SCB_E_NOMEM, "out of memory rendering template")

static struct jv V_UNDEF(const char *hint) { struct jv v; v.t = JT_UNDEF; v.u.hint = hint; return v; }
static struct jv V_NONE(void) { struct jv v; v.t = JT_NONE; v.u.i = 0; return v; }
static struct jv V_BOOL(int b) { struct jv v; v.t = JT_BOOL; v.u.i = b != 0; return v; }
static struct jv V_INT(long long i) { struct jv v; v.t = JT_INT; v.u.i = i; return v; }
static struct jv V_FLOAT(double f) { struct jv v; v.t = JT_FLOAT; v.u.f = f; return v; }

static int mk_str(struct rs *R, const char *p, size_t n, int copy, struct jv *out)
{
    struct jstr *s = ar_alloc(&R->ar, sizeof *s + (copy ? n + 1 : 0));
    if (!s) return NOMEM(R);
    if (copy) { char *d = (char *)(s + 1); if (n) memcpy(d, p, n); d[n] = 0; p = d; }
    s->p = p; s->n = n;
    out->t = JT_STR; out->u.s = s;
    return SCB_OK;
}
static int mk_cstr(struct rs *R, const char *p, struct jv *out) { return mk_str(R, p, strlen(p), 0, out); }

static int mk_list(struct rs *R, size_t n, int tuple, struct jv *out)
{
    struct jlist *l = ar_alloc(&R->ar, sizeof *l);
    struct jv *v = ar_alloc(&R->ar, (n ? n : 1) * sizeof *v);
    if (!l || !v) return NOMEM(R);
    l->n = n; l->tuple = tuple; l->v = v;
    for (size_t i = 0; i < n; i++) v[i] = V_UNDEF(NULL);
    out->t = JT_LIST; out->u.l = l;
    return SCB_OK;
}

static int mk_dict(struct rs *R, int type, struct jv *out)
{
    struct jdict *d = ar_alloc(&R->ar, sizeof *d);
    if (!d) return NOMEM(R);
    memset(d, 0, sizeof *d);
    out->t = type; out->u.d = d;
    return SCB_OK;
}

static const char *type_name(const struct jv *v)
{
    switch (v->t) {
    case JT_UNDEF: return "Undefined";
    case JT_NONE: return "NoneType";
    case JT_BOOL: return "bool";
    case JT_INT: return "int";
    case JT_FLOAT: return "float";
    case JT_STR: return "str";
    case JT_LIST: return v->u.l->tuple ? "tuple" : "list";
    case JT_DICT: return "dict";
    case JT_NS: return "Namespace";
    default: return "function";
    }
}

static int jv_eq(const struct jv *a, const struct jv *b);

static int dict_find(const struct jdict *d, const struct jv *k, size_t *idx)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(&d->k[i], k)) { *idx = i; return 1; }
    return 0;
}
static int dict_find_s(const struct jdict *d, const char *k, size_t kn, size_t *idx)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JT_STR && d->k[i].u.s->n == kn && !memcmp(d->k[i].u.s->p, k, kn)) { *idx = i; return 1; }
    return 0;
}

static int dict_set(struct rs *R, struct jdict *d, struct jv k, struct jv v)
{
    size_t i;
    if (dict_find(d, &k, &i)) { d->v[i] = v; return SCB_OK; }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 8;
        struct jv *nk = ar_alloc(&R->ar, nc * sizeof *nk), *nv = ar_alloc(&R->ar, nc * sizeof *nv);
        if (!nk || !nv) return NOMEM(R);
        if (d->n) { memcpy(nk, d->k, d->n * sizeof *nk); memcpy(nv, d->v, d->n * sizeof *nv); }
        d->k = nk; d->v = nv; d->cap = nc;
    }
    d->k[d->n] = k; d->v[d->n] = v; d->n++;
    return SCB_OK;
}
static int dict_set_s(struct rs *R, struct jdict *d, const char *k, struct jv v)
{
    struct jv kv;
    int rc = mk_cstr(R, k, &kv);
    return rc ? rc : dict_set(R, d, kv, v);
}

static int truthy(const struct jv *v)
{
    switch (v->t) {
    case JT_UNDEF: case JT_NONE: return 0;
    case JT_BOOL: case JT_INT: return v->u.i != 0;
    case JT_FLOAT: return v->u.f != 0.0;
    case JT_STR: return v->u.s->n != 0;
    case JT_LIST: return v->u.l->n != 0;
    case JT_DICT: return v->u.d->n != 0;
    default: return 1;
    }
}

static int is_num(const struct jv *v) { return v->t == JT_BOOL || v->t == JT_INT || v->t == JT_FLOAT; }
static double num_f(const struct jv *v) { return v->t == JT_FLOAT ? v->u.f : (double)v->u.i; }

static int jv_eq(const struct jv *a, const struct jv *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == JT_FLOAT || b->t == JT_FLOAT) return num_f(a) == num_f(b);
        return a->u.i == b->u.i;
    }
    if (a->t != b->t) return 0;
    switch (a->t) {
    case JT_UNDEF: case JT_NONE: return 1;
    case JT_STR: return a->u.s->n == b->u.s->n && !memcmp(a->u.s->p, b->u.s->p, a->u.s->n);
    case JT_LIST:
        if (a->u.l->tuple != b->u.l->tuple || a->u.l->n != b->u.l->n) return 0;
        for (size_t i = 0; i < a->u.l->n; i++) if (!jv_eq(&a->u.l->v[i], &b->u.l->v[i])) return 0;
        return 1;
    case JT_DICT: {
        if (a->u.d->n != b->u.d->n) return 0;
        for (size_t i = 0; i < a->u.d->n; i++) {
            size_t j;
            if (!dict_find(b->u.d, &a->u.d->k[i], &j) || !jv_eq(&a->u.d->v[i], &b->u.d->v[j])) return 0;
        }
        return 1;
    }
    default: return a->u.d == b->u.d;   /* identity */
    }
}

/* ordering: *res <0, 0, >0; error if the types don't order */
static int jv_cmp(struct rs *R, int line, const struct jv *a, const struct jv *b, int *res)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == JT_FLOAT || b->t == JT_FLOAT) { double x = num_f(a), y = num_f(b); *res = x < y ? -1 : x > y ? 1 : 0; }
        else *res = a->u.i < b->u.i ? -1 : a->u.i > b->u.i ? 1 : 0;
        return SCB_OK;
    }
    if (a->t == JT_STR && b->t == JT_STR) {
        size_t n = a->u.s->n < b->u.s->n ? a->u.s->n : b->u.s->n;
        int c = memcmp(a->u.s->p, b->u.s->p, n);   /* UTF-8 byte order = code point order */
        *res = c ? c : (a->u.s->n < b->u.s->n ? -1 : a->u.s->n > b->u.s->n ? 1 : 0);
        return SCB_OK;
    }
    if (a->t == JT_LIST && b->t == JT_LIST) {
        size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (jv_eq(&a->u.l->v[i], &b->u.l->v[i])) continue;
            return jv_cmp(R, line, &a->u.l->v[i], &b->u.l->v[i], res);
        }
        *res = a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n ? 1 : 0;
        return SCB_OK;
    }
    return rerr(R, line, SCB_E_INVAL, "cannot order '%s' and '%s'", type_name(a), type_name(b));
}

/* ---- UTF-8 / Python string helpers ---- */
static size_t u8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
    return c;
}
static int py_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}
static int u8_dec(const char *p, size_t n, size_t i, uint32_t *cp)
{
    return scb_utf8_decode((const unsigned char *)p + i, n - i, cp);
}
/* byte offset of the code point before position i */
static size_t u8_prev(const char *p, size_t i)
{
    do i--; while (i > 0 && ((unsigned char)p[i] & 0xC0) == 0x80);
    return i;
}
static int in_chars(uint32_t c, const struct jstr *chars)
{
    if (!chars) return py_space(c);
    for (size_t i = 0; i < chars->n;) {
        uint32_t d; i += (size_t)u8_dec(chars->p, chars->n, i, &d);
        if (d == c) return 1;
    }
    return 0;
}
/* strip: which 1 = left, 2 = right, 3 = both; chars NULL = whitespace */
static void str_strip(const struct jstr *s, const struct jstr *chars, int which, size_t *b, size_t *e)
{
    size_t i = 0, j = s->n;
    if (which & 1)
        while (i < j) { uint32_t c; int k = u8_dec(s->p, s->n, i, &c); if (!in_chars(c, chars)) break; i += (size_t)k; }
    if (which & 2)
        while (j > i) { size_t pj = u8_prev(s->p, j); uint32_t c; u8_dec(s->p, s->n, pj, &c); if (!in_chars(c, chars)) break; j = pj; }
    *b = i; *e = j;
}

/* ---- Python str() / repr() ---- */
static int fmt_float(struct scb_buf *b, double f)
{
    if (isnan(f)) return scb_buf_puts(b, "nan");
    if (isinf(f)) return scb_buf_puts(b, f < 0 ? "-inf" : "inf");
    char buf[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*e", prec - 1, f);
        if (strtod(buf, NULL) == f) break;
    }
    /* buf: d.ddde[+-]XX with prec significant digits */
    char digits[32]; int nd = 0;
    const char *q = buf;
    int neg = 0;
    if (*q == '-') { neg = 1; q++; }
    for (; *q && *q != 'e'; q++) if (is_digit(*q)) digits[nd++] = *q;
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char o[64]; int k = 0;
    if (neg) o[k++] = '-';
    if (exp10 >= -5 && exp10 < 16) {   /* repr: fixed unless exp < -4 or >= 16 */
        if (exp10 < -4) goto sci;
        if (exp10 < 0) {
            o[k++] = '0'; o[k++] = '.';
            for (int z = 0; z < -exp10 - 1; z++) o[k++] = '0';
            for (int d = 0; d < nd; d++) o[k++] = digits[d];
        } else {
            for (int d = 0; d <= exp10; d++) o[k++] = d < nd ? digits[d] : '0';
            o[k++] = '.';
            if (nd > exp10 + 1) for (int d = exp10 + 1; d < nd; d++) o[k++] = digits[d];
            else o[k++] = '0';
        }
        o[k] = 0;
        return scb_buf_puts(b, o);
    }
sci:
    o[k++] = digits[0];
    if (nd > 1) { o[k++] = '.'; for (int d = 1; d < nd; d++) o[k++] = digits[d]; }
    k += snprintf(o + k, sizeof o - (size_t)k, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    return scb_buf_puts(b, o);
}

static int repr_str(struct scb_buf *b, const struct jstr *s)
{
    int rc = SCB_OK;
    char q = '\'';
    if (memchr(s->p, '\'', s->n) && !memchr(s->p, '"', s->n)) q = '"';
    SCB_TRY(scb_buf_putc(b, q));
    for (size_t i = 0; i < s->n;) {
        uint32_t c; int k = u8_dec(s->p, s->n, i, &c);
        char e[16];
        if (c == (uint32_t)q || c == '\\') { e[0] = '\\'; e[1] = (char)c; e[2] = 0; SCB_TRY(scb_buf_puts(b, e)); }
        else if (c == '\n') SCB_TRY(scb_buf_puts(b, "\\n"));
        else if (c == '\r') SCB_TRY(scb_buf_puts(b, "\\r"));
        else if (c == '\t') SCB_TRY(scb_buf_puts(b, "\\t"));
        else if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad) { snprintf(e, sizeof e, "\\x%02x", c); SCB_TRY(scb_buf_puts(b, e)); }
        else if ((c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) ||
                 c == 0x3000 || c == 0xfeff || c == 0x1680) { snprintf(e, sizeof e, "\\u%04x", c); SCB_TRY(scb_buf_puts(b, e)); }
        else SCB_TRY(scb_buf_append(b, s->p + i, (size_t)k));
        i += (size_t)k;
    }
    SCB_TRY(scb_buf_putc(b, q));
out:
    return rc;
}

static int to_str(struct rs *R, const struct jv *v, struct scb_buf *b, int repr);

static int to_str(struct rs *R, const struct jv *v, struct scb_buf *b, int repr)
{
    int rc = SCB_OK;
    switch (v->t) {
    case JT_UNDEF: return SCB_OK;
    case JT_NONE: return scb_buf_puts(b, "None");
    case JT_BOOL: return scb_buf_puts(b, v->u.i ? "True" : "False");
    case JT_INT: return scb_buf_printf(b, "%lld", v->u.i);
    case JT_FLOAT: return fmt_float(b, v->u.f);
    case JT_STR: return repr ? repr_str(b, v->u.s) : scb_buf_append(b, v->u.s->p, v->u.s->n);
    case JT_LIST:
        SCB_TRY(scb_buf_putc(b, v->u.l->tuple ? '(' : '['));
        for (size_t i = 0; i < v->u.l->n; i++) {
            if (i) SCB_TRY(scb_buf_puts(b, ", "));
            SCB_TRY(to_str(R, &v->u.l->v[i], b, 1));
        }
        if (v->u.l->tuple && v->u.l->n == 1) SCB_TRY(scb_buf_putc(b, ','));
        SCB_TRY(scb_buf_putc(b, v->u.l->tuple ? ')' : ']'));
        break;
    case JT_DICT: case JT_NS:
        SCB_TRY(scb_buf_puts(b, v->t == JT_NS ? "<Namespace {" : "{"));
        for (size_t i = 0; i < v->u.d->n; i++) {
            if (i) SCB_TRY(scb_buf_puts(b, ", "));
            SCB_TRY(to_str(R, &v->u.d->k[i], b, 1));
            SCB_TRY(scb_buf_puts(b, ": "));
            SCB_TRY(to_str(R, &v->u.d->v[i], b, 1));
        }
        SCB_TRY(scb_buf_puts(b, v->t == JT_NS ? "}>" : "}"));
        break;
    default:
        SCB_TRY(scb_buf_printf(b, "<function %s>", v->u.fn->name ? v->u.fn->name : "?"));
    }
out:
    return rc;
}

/* str(v) as a new string value */
static int str_of(struct rs *R, const struct jv *v, struct jv *out)
{
    if (v->t == JT_STR) { *out = *v; return SCB_OK; }
    struct scb_buf b = {0};
    int rc = to_str(R, v, &b, 0);
    if (rc == SCB_OK) rc = mk_str(R, b.data ? b.data : "", b.len, 1, out);
    scb_buf_fini(&b);
    return rc;
}
static int buf_to_str(struct rs *R, struct scb_buf *b, struct jv *out)
{
    int rc = mk_str(R, b->data ? b->data : "", b->len, 1, out);
    scb_buf_fini(b);
    return rc;
}

/* ---- JSON (json.dumps with ensure_ascii=False) ---- */
struct json_opts { const char *indent; int has_indent; const char *item_sep, *key_sep; int sort_keys; };

static int json_str(struct scb_buf *b, const char *p, size_t n)
{
    int rc = SCB_OK;
    SCB_TRY(scb_buf_putc(b, '"'));
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        const char *e = NULL; char u[8];
        if (c == '"') e = "\\\""; else if (c == '\\') e = "\\\\"; else if (c == '\n') e = "\\n";
        else if (c == '\r') e = "\\r"; else if (c == '\t') e = "\\t"; else if (c == '\b') e = "\\b";
        else if (c == '\f') e = "\\f"; else if (c < 0x20) { snprintf(u, sizeof u, "\\u%04x", c); e = u; }
        if (!e) continue;
        SCB_TRY(scb_buf_append(b, p + run, i - run));
        SCB_TRY(scb_buf_puts(b, e));
        run = i + 1;
    }
    SCB_TRY(scb_buf_append(b, p + run, n - run));
    SCB_TRY(scb_buf_putc(b, '"'));
out:
    return rc;
}

static int json_nl(struct scb_buf *b, const struct json_opts *o, int level)
{
    int rc = scb_buf_putc(b, '\n');
    for (int i = 0; rc == SCB_OK && i < level; i++) rc = scb_buf_puts(b, o->indent);
    return rc;
}

static int json_dump(struct rs *R, int line, const struct jv *v, struct scb_buf *b, const struct json_opts *o, int level)
{
    int rc = SCB_OK;
    switch (v->t) {
    case JT_NONE: return scb_buf_puts(b, "null");
    case JT_BOOL: return scb_buf_puts(b, v->u.i ? "true" : "false");
    case JT_INT: return scb_buf_printf(b, "%lld", v->u.i);
    case JT_FLOAT:
        if (isnan(v->u.f)) return scb_buf_puts(b, "NaN");
        if (isinf(v->u.f)) return scb_buf_puts(b, v->u.f < 0 ? "-Infinity" : "Infinity");
        return fmt_float(b, v->u.f);
    case JT_STR: return json_str(b, v->u.s->p, v->u.s->n);
    case JT_LIST:
        if (!v->u.l->n) return scb_buf_puts(b, "[]");
        SCB_TRY(scb_buf_putc(b, '['));
        for (size_t i = 0; i < v->u.l->n; i++) {
            if (i) SCB_TRY(scb_buf_puts(b, o->item_sep));
            if (o->has_indent) SCB_TRY(json_nl(b, o, level + 1));
            SCB_TRY(json_dump(R, line, &v->u.l->v[i], b, o, level + 1));
        }
        if (o->has_indent) SCB_TRY(json_nl(b, o, level));
        SCB_TRY(scb_buf_putc(b, ']'));
        break;
    case JT_DICT: {
        struct jdict *d = v->u.d;
        if (!d->n) return scb_buf_puts(b, "{}");
        size_t *ord = scb_malloc(d->n * sizeof *ord);
        if (!ord) return NOMEM(R);
        for (size_t i = 0; i < d->n; i++) ord[i] = i;
        if (o->sort_keys)   /* insertion sort: dicts here are small */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = ord[i], j = i;
                while (j > 0) {
                    int c = 0;
                    if ((rc = jv_cmp(R, line, &d->k[ord[j - 1]], &d->k[x], &c)) < 0) { scb_free(ord); return rc; }
                    if (c <= 0) break;
                    ord[j] = ord[j - 1]; j--;
                }
                ord[j] = x;
            }
        rc = scb_buf_putc(b, '{');
        for (size_t ii = 0; rc == SCB_OK && ii < d->n; ii++) {
            size_t i = ord[ii];
            if (ii) rc = scb_buf_puts(b, o->item_sep);
            if (rc == SCB_OK && o->has_indent) rc = json_nl(b, o, level + 1);
            if (rc < 0) break;
            const struct jv *k = &d->k[i];
            if (k->t == JT_STR) rc = json_str(b, k->u.s->p, k->u.s->n);
            else if (k->t == JT_INT || k->t == JT_FLOAT || k->t == JT_BOOL || k->t == JT_NONE) {
                struct scb_buf kb = {0};
                rc = json_dump(R, line, k, &kb, o, 0);
                if (rc == SCB_OK) rc = json_str(b, kb.data, kb.len);
                scb_buf_fini(&kb);
            } else rc = rerr(R, line, SCB_E_INVAL, "tojson: keys must be str, int, float, bool or None, not %s", type_name(k));
            if (rc == SCB_OK) rc = scb_buf_puts(b, o->key_sep);
            if (rc == SCB_OK) rc = json_dump(R, line, &d->v[i], b, o, level + 1);
        }
        scb_free(ord);
        if (rc < 0) return rc;
        if (o->has_indent) SCB_TRY(json_nl(b, o, level));
        SCB_TRY(scb_buf_putc(b, '}'));
        break;
    }
    default:
        return rerr(R, line, SCB_E_INVAL, "tojson: object of type %s is not JSON serializable", type_name(v));
    }
out:
    return rc;
}

/* ---- cJSON -> value ---- */
static int from_cjson(struct rs *R, const cJSON *j, struct jv *out)
{
    int rc = SCB_OK;
    if (!j || cJSON_IsNull(j)) { *out = V_NONE(); return SCB_OK; }
    if (cJSON_IsBool(j)) { *out = V_BOOL(cJSON_IsTrue(j)); return SCB_OK; }
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.007199254740992e15) *out = V_INT((long long)d);
        else *out = V_FLOAT(d);
        return SCB_OK;
    }
    if (cJSON_IsString(j)) return mk_cstr(R, j->valuestring, out);
    if (cJSON_IsArray(j)) {
        int n = cJSON_GetArraySize(j), i = 0;
        SCB_TRY(mk_list(R, (size_t)n, 0, out));
        for (const cJSON *c = j->child; c; c = c->next, i++) SCB_TRY(from_cjson(R, c, &out->u.l->v[i]));
        return SCB_OK;
    }
    if (cJSON_IsObject(j)) {
        SCB_TRY(mk_dict(R, JT_DICT, out));
        for (const cJSON *c = j->child; c; c = c->next) {
            struct jv v;
            SCB_TRY(from_cjson(R, c, &v));
            SCB_TRY(dict_set_s(R, out->u.d, c->string ? c->string : "", v));
        }
        return SCB_OK;
    }
    *out = V_NONE();
out:
    return rc;
}

/* ======================================================================================
 * Scopes, attribute and item access
 * ====================================================================================== */
static int lookup(struct rs *R, const char *name, struct jv *out)
{
    size_t n = strlen(name), i;
    for (struct frame *f = R->fr; f; f = f->parent)
        if (dict_find_s(&f->vars, name, n, &i)) { *out = f->vars.v[i]; return 1; }
    return 0;
}

static int set_var(struct rs *R, const char *name, struct jv v) { return dict_set_s(R, &R->fr->vars, name, v); }

static int push_frame(struct rs *R, struct frame *parent, struct frame **out)
{
    struct frame *f = ar_alloc(&R->ar, sizeof *f);
    if (!f) return NOMEM(R);
    memset(f, 0, sizeof *f);
    f->parent = parent;
    *out = f;
    return SCB_OK;
}

static int mk_func(struct rs *R, int kind, const char *name, const struct jv *self, struct jv *out)
{
    struct jfunc *fn = ar_alloc(&R->ar, sizeof *fn);
    if (!fn) return NOMEM(R);
    memset(fn, 0, sizeof *fn);
    fn->kind = kind; fn->name = name;
    fn->self = self ? *self : V_UNDEF(NULL);
    out->t = JT_FUNC; out->u.fn = fn;
    return SCB_OK;
}

static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower", "title",
    "capitalize", "replace", "find", "rfind", "count", "splitlines", "isdigit", "isalpha", "isalnum",
    "isspace", "isupper", "islower", "join", NULL
};
static const char *const dict_methods[] = {"items", "keys", "values", "get", NULL};
static const char *const list_methods[] = {"index", "count", NULL};

static const char *undef_hint(struct rs *R, const struct jv *obj, const char *name)
{
    char buf[200];
    const char *tn = obj->t == JT_DICT ? "dict object" : obj->t == JT_STR ? "str object" : obj->t == JT_LIST ? "list object" : type_name(obj);
    snprintf(buf, sizeof buf, "'%s' has no attribute '%s'", tn, name);
    char *h = ar_alloc(&R->ar, strlen(buf) + 1);
    if (h) strcpy(h, buf);
    return h;
}

static int undef_error(struct rs *R, int line, const struct jv *u)
{
    return rerr(R, line, SCB_E_INVAL, "%s", u->u.hint ? u->u.hint : "undefined value used");
}

static int get_attr(struct rs *R, int line, const struct jv *obj, const char *name, struct jv *out)
{
    size_t i;
    switch (obj->t) {
    case JT_UNDEF: return undef_error(R, line, obj);
    case JT_DICT:
        if (in_list(dict_methods, name)) return mk_func(R, FN_METHOD, name, obj, out);
        /* fallthrough */
    case JT_NS:
        if (dict_find_s(obj->u.d, name, strlen(name), &i)) { *out = obj->u.d->v[i]; return SCB_OK; }
        break;
    case JT_STR:
        if (in_list(str_methods, name)) return mk_func(R, FN_METHOD, name, obj, out);
        break;
    case JT_LIST:
        if (in_list(list_methods, name)) return mk_func(R, FN_METHOD, name, obj, out);
        break;
    default: break;
    }
    *out = V_UNDEF(undef_hint(R, obj, name));
    return SCB_OK;
}

/* Python index normalisation: returns 0 if out of range */
static int py_index(long long i, size_t n, size_t *out)
{
    if (i < 0) i += (long long)n;
    if (i < 0 || (unsigned long long)i >= n) return 0;
    *out = (size_t)i;
    return 1;
}

static int get_item(struct rs *R, int line, const struct jv *obj, const struct jv *key, struct jv *out)
{
    size_t i;
    switch (obj->t) {
    case JT_UNDEF: return undef_error(R, line, obj);
    case JT_DICT: case JT_NS:
        if (dict_find(obj->u.d, key, &i)) { *out = obj->u.d->v[i]; return SCB_OK; }
        break;
    case JT_LIST:
        if ((key->t == JT_INT || key->t == JT_BOOL) && py_index(key->u.i, obj->u.l->n, &i)) { *out = obj->u.l->v[i]; return SCB_OK; }
        break;
    case JT_STR:
        if (key->t == JT_INT || key->t == JT_BOOL) {
            const struct jstr *s = obj->u.s;
            size_t n = u8_len(s->p, s->n);
            if (!py_index(key->u.i, n, &i)) break;
            size_t b = 0;
            for (size_t c = 0; c < i; c++) { uint32_t cp; b += (size_t)u8_dec(s->p, s->n, b, &cp); }
            uint32_t cp; int k = u8_dec(s->p, s->n, b, &cp);
            return mk_str(R, s->p + b, (size_t)k, 0, out);
        }
        break;
    default: break;
    }
    if (key->t == JT_STR) {
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s", (int)(key->u.s->n > 250 ? 250 : key->u.s->n), key->u.s->p);
        return get_attr(R, line, obj, nm, out);
    }
    struct scb_buf kb = {0};
    to_str(R, key, &kb, 1);
    char buf[200];
    snprintf(buf, sizeof buf, "'%s object' has no element %s", type_name(obj), kb.data ? kb.data : "");
    scb_buf_fini(&kb);
    char *h = ar_alloc(&R->ar, strlen(buf) + 1);
    if (h) strcpy(h, buf);
    *out = V_UNDEF(h);
    return SCB_OK;
}

/* slice indices as Python's PySlice_AdjustIndices; returns the count */
static size_t slice_adjust(long long n, const struct jv *st, const struct jv *sp, long long step, long long *start)
{
    long long a, b;
    int has_a = st && st->t != JT_NONE && st->t != JT_UNDEF, has_b = sp && sp->t != JT_NONE && sp->t != JT_UNDEF;
    if (step > 0) {
        a = has_a ? st->u.i : 0; b = has_b ? sp->u.i : n;
        if (a < 0) { a += n; if (a < 0) a = 0; } else if (a > n) a = n;
        if (b < 0) { b += n; if (b < 0) b = 0; } else if (b > n) b = n;
        *start = a;
        return b > a ? (size_t)((b - a - 1) / step + 1) : 0;
    }
    a = has_a ? st->u.i : n - 1; b = has_b ? sp->u.i : -1 - n;
    if (a < 0) { a += n; if (a < 0) a = -1; } else if (a >= n) a = n - 1;
    if (b < 0) { b += n; if (b < 0) b = -1; } else if (b >= n) b = n - 1;
    *start = a;
    return a > b ? (size_t)((a - b - 1) / (-step) + 1) : 0;
}

static int do_slice(struct rs *R, int line, const struct jv *obj, const struct jv *st, const struct jv *sp, const struct jv *stepv, struct jv *out)
{
    int rc = SCB_OK;
    long long step = 1, start;
    const struct jv *bounds[2] = {st, sp};
    for (int k = 0; k < 2; k++)
        if (bounds[k] && bounds[k]->t != JT_NONE && bounds[k]->t != JT_UNDEF && bounds[k]->t != JT_INT && bounds[k]->t != JT_BOOL)
            return rerr(R, line, SCB_E_INVAL, "slice indices must be integers or None, not %s", type_name(bounds[k]));
    if (stepv && stepv->t != JT_NONE && stepv->t != JT_UNDEF) {
        if (stepv->t != JT_INT) return rerr(R, line, SCB_E_INVAL, "slice step must be an integer");
        step = stepv->u.i;
        if (!step) return rerr(R, line, SCB_E_INVAL, "slice step cannot be zero");
    }
    if (obj->t == JT_LIST) {
        size_t cnt = slice_adjust((long long)obj->u.l->n, st, sp, step, &start);
        SCB_TRY(mk_list(R, cnt, obj->u.l->tuple, out));
        for (size_t i = 0; i < cnt; i++) out->u.l->v[i] = obj->u.l->v[start + (long long)i * step];
    } else if (obj->t == JT_STR) {
        const struct jstr *s = obj->u.s;
        size_t n = u8_len(s->p, s->n);
        size_t cnt = slice_adjust((long long)n, st, sp, step, &start);
        if (n == s->n && step == 1) return mk_str(R, s->p + start, cnt, 0, out);
        size_t *off = scb_malloc((n + 1) * sizeof *off);
        if (!off) return NOMEM(R);
        for (size_t b = 0, c = 0; c <= n; c++) { off[c] = b; if (c < n) { uint32_t cp; b += (size_t)u8_dec(s->p, s->n, b, &cp); } }
        struct scb_buf b = {0};
        for (size_t i = 0; rc == SCB_OK && i < cnt; i++) {
            size_t ci = (size_t)(start + (long long)i * step);
            rc = scb_buf_append(&b, s->p + off[ci], off[ci + 1] - off[ci]);
        }
        scb_free(off);
        if (rc < 0) { scb_buf_fini(&b); return NOMEM(R); }
        return buf_to_str(R, &b, out);
    } else if (obj->t == JT_UNDEF) {
        return undef_error(R, line, obj);
    } else {
        return rerr(R, line, SCB_E_INVAL, "'%s' object is not subscriptable", type_name(obj));
    }
out:
    return rc;
}

/* items of an iterable: list/tuple items, dict keys, string characters, undefined = empty */
static int iter_items(struct rs *R, int line, const struct jv *v, struct jv **items, size_t *n)
{
    int rc = SCB_OK;
    switch (v->t) {
    case JT_UNDEF: *items = NULL; *n = 0; return SCB_OK;
    case JT_LIST: *items = v->u.l->v; *n = v->u.l->n; return SCB_OK;
    case JT_DICT: case JT_NS: *items = v->u.d->k; *n = v->u.d->n; return SCB_OK;
    case JT_STR: {
        const struct jstr *s = v->u.s;
        size_t cnt = u8_len(s->p, s->n);
        struct jv *a = ar_alloc(&R->ar, (cnt ? cnt : 1) * sizeof *a);
        if (!a) return NOMEM(R);
        for (size_t b = 0, c = 0; c < cnt; c++) {
            uint32_t cp; int k = u8_dec(s->p, s->n, b, &cp);
            SCB_TRY(mk_str(R, s->p + b, (size_t)k, 0, &a[c]));
            b += (size_t)k;
        }
        *items = a; *n = cnt;
        return SCB_OK;
    }
    default:
        return rerr(R, line, SCB_E_INVAL, "'%s' object is not iterable", type_name(v));
    }
out:
    return rc;
}

/* ======================================================================================
 * Operators
 * ====================================================================================== */
static int binop(struct rs *R, int line, int op, const struct jv *a, const struct jv *b, struct jv *out)
{
    int rc = SCB_OK;
    static const char *const opn[] = {"", "+", "-", "*", "/", "//", "%", "**", "~"};
    if (op == OP_CONCAT) {
        struct scb_buf buf = {0};
        rc = to_str(R, a, &buf, 0);
        if (rc == SCB_OK) rc = to_str(R, b, &buf, 0);
        if (rc < 0) { scb_buf_fini(&buf); return NOMEM(R); }
        return buf_to_str(R, &buf, out);
    }
    if (a->t == JT_UNDEF) return undef_error(R, line, a);
    if (b->t == JT_UNDEF) return undef_error(R, line, b);
    if (is_num(a) && is_num(b)) {
        int fl = a->t == JT_FLOAT || b->t == JT_FLOAT || op == OP_DIV;
        long long x = a->u.i, y = b->u.i, r = 0;
        double fx = num_f(a), fy = num_f(b);
        switch (op) {
        case OP_ADD: if (fl) { *out = V_FLOAT(fx + fy); return SCB_OK; } if (__builtin_add_overflow(x, y, &r)) goto ovf; *out = V_INT(r); return SCB_OK;
        case OP_SUB: if (fl) { *out = V_FLOAT(fx - fy); return SCB_OK; } if (__builtin_sub_overflow(x, y, &r)) goto ovf; *out = V_INT(r); return SCB_OK;
        case OP_MUL: if (fl) { *out = V_FLOAT(fx * fy); return SCB_OK; } if (__builtin_mul_overflow(x, y, &r)) goto ovf; *out = V_INT(r); return SCB_OK;
        case OP_DIV: if (fy == 0) goto zdiv; *out = V_FLOAT(fx / fy); return SCB_OK;
        case OP_FLOORDIV:
            if (fl) { if (fy == 0) goto zdiv; *out = V_FLOAT(floor(fx / fy)); return SCB_OK; }
            if (!y) goto zdiv;
            r = x / y; if ((x % y != 0) && ((x < 0) != (y < 0))) r--;
            *out = V_INT(r); return SCB_OK;
        case OP_MOD:
            if (fl) { if (fy == 0) goto zdiv; double m = fmod(fx, fy); if (m != 0 && ((m < 0) != (fy < 0))) m += fy; *out = V_FLOAT(m); return SCB_OK; }
            if (!y) goto zdiv;
            r = x % y; if (r != 0 && ((r < 0) != (y < 0))) r += y;
            *out = V_INT(r); return SCB_OK;
        case OP_POW:
            if (fl || y < 0) { *out = V_FLOAT(pow(fx, fy)); return SCB_OK; }
            r = 1;
            for (long long k = 0; k < y; k++) if (__builtin_mul_overflow(r, x, &r)) goto ovf;
            *out = V_INT(r); return SCB_OK;
        default: break;
        }
    }
    if (op == OP_ADD && a->t == JT_STR && b->t == JT_STR) {
        size_t n = a->u.s->n + b->u.s->n;
        struct jstr *s = ar_alloc(&R->ar, sizeof *s + n + 1);
        if (!s) return NOMEM(R);
        char *d = (char *)(s + 1);
        memcpy(d, a->u.s->p, a->u.s->n); memcpy(d + a->u.s->n, b->u.s->p, b->u.s->n); d[n] = 0;
        s->p = d; s->n = n;
        out->t = JT_STR; out->u.s = s;
        return SCB_OK;
    }
    if (op == OP_ADD && a->t == JT_LIST && b->t == JT_LIST && a->u.l->tuple == b->u.l->tuple) {
        SCB_TRY(mk_list(R, a->u.l->n + b->u.l->n, a->u.l->tuple, out));
        if (a->u.l->n) memcpy(out->u.l->v, a->u.l->v, a->u.l->n * sizeof *a->u.l->v);
        if (b->u.l->n) memcpy(out->u.l->v + a->u.l->n, b->u.l->v, b->u.l->n * sizeof *b->u.l->v);
        return SCB_OK;
    }
    if (op == OP_MUL && (((a->t == JT_STR || a->t == JT_LIST) && (b->t == JT_INT || b->t == JT_BOOL)) ||
                         ((b->t == JT_STR || b->t == JT_LIST) && (a->t == JT_INT || a->t == JT_BOOL)))) {
        const struct jv *seq = a->t == JT_STR || a->t == JT_LIST ? a : b;
        long long k = (seq == a ? b : a)->u.i;
        if (k < 0) k = 0;
        if (seq->t == JT_STR) {
            if (k && seq->u.s->n * (unsigned long long)k > (1ull << 30)) return rerr(R, line, SCB_E_INVAL, "string repetition too large");
            struct scb_buf buf = {0};
            for (long long i = 0; i < k; i++) if (scb_buf_append(&buf, seq->u.s->p, seq->u.s->n) < 0) { scb_buf_fini(&buf); return NOMEM(R); }
            return buf_to_str(R, &buf, out);
        }
        if (k && seq->u.l->n * (unsigned long long)k > (1ull << 24)) return rerr(R, line, SCB_E_INVAL, "list repetition too large");
        SCB_TRY(mk_list(R, seq->u.l->n * (size_t)k, seq->u.l->tuple, out));
        for (long long i = 0; i < k; i++)
            if (seq->u.l->n) memcpy(out->u.l->v + (size_t)i * seq->u.l->n, seq->u.l->v, seq->u.l->n * sizeof *seq->u.l->v);
        return SCB_OK;
    }
    if (op == OP_MOD && a->t == JT_STR)
        return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: printf-style string formatting with '%%'");
    return rerr(R, line, SCB_E_INVAL, "unsupported operand type(s) for %s: '%s' and '%s'", opn[op], type_name(a), type_name(b));
zdiv:
    return rerr(R, line, SCB_E_INVAL, "division by zero");
ovf:
    return rerr(R, line, SCB_E_UNSUPPORTED, "integer overflow (values beyond 64 bits are not supported)");
out:
    return rc;
}

static int contains(struct rs *R, int line, const struct jv *hay, const struct jv *needle, int *res)
{
    size_t i;
    switch (hay->t) {
    case JT_STR:
        if (needle->t != JT_STR) return rerr(R, line, SCB_E_INVAL, "'in <string>' requires string as left operand, not %s", type_name(needle));
        *res = needle->u.s->n == 0 || memmem(hay->u.s->p, hay->u.s->n, needle->u.s->p, needle->u.s->n) != NULL;
        return SCB_OK;
    case JT_LIST:
        *res = 0;
        for (i = 0; i < hay->u.l->n; i++) if (jv_eq(&hay->u.l->v[i], needle)) { *res = 1; break; }
        return SCB_OK;
    case JT_DICT: case JT_NS: *res = dict_find(hay->u.d, needle, &i); return SCB_OK;
    case JT_UNDEF: *res = 0; return SCB_OK;
    default: return rerr(R, line, SCB_E_INVAL, "argument of type '%s' is not iterable", type_name(hay));
    }
}

static int compare(struct rs *R, int line, int op, const struct jv *a, const struct jv *b, int *res)
{
    int c, rc;
    switch (op) {
    case OP_EQ: *res = jv_eq(a, b); return SCB_OK;
    case OP_NE: *res = !jv_eq(a, b); return SCB_OK;
    case OP_IN: return contains(R, line, b, a, res);
    case OP_NOTIN: rc = contains(R, line, b, a, res); *res = !*res; return rc;
    default:
        if (a->t == JT_UNDEF) return undef_error(R, line, a);
        if (b->t == JT_UNDEF) return undef_error(R, line, b);
        if ((rc = jv_cmp(R, line, a, b, &c)) < 0) return rc;
        *res = op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
        return SCB_OK;
    }
}

/* ======================================================================================
 * Calls: arguments, builtins, methods, filters, tests
 * ====================================================================================== */
struct cargs { int n; struct jv *v; const char **kw; };

/* positional argument pos, or keyword name; returns 1 when given */
static int arg(const struct cargs *a, int pos, const char *name, struct jv *out)
{
    int p = 0;
    for (int i = 0; i < a->n; i++) {
        if (a->kw && a->kw[i]) { if (name && !strcmp(a->kw[i], name)) { *out = a->v[i]; return 1; } continue; }
        if (p++ == pos) { *out = a->v[i]; return 1; }
    }
    return 0;
}
static int npos(const struct cargs *a)
{
    int p = 0;
    for (int i = 0; i < a->n; i++) p += !(a->kw && a->kw[i]);
    return p;
}

static int eval(struct rs *R, const struct expr *e, struct jv *out);
static int exec_list(struct rs *R, const struct nlist *l);

static int eval_args(struct rs *R, const struct expr *e, struct cargs *ca)
{
    int rc = SCB_OK;
    ca->n = e->nargs; ca->kw = e->kw;
    ca->v = ar_alloc(&R->ar, (size_t)(e->nargs ? e->nargs : 1) * sizeof *ca->v);
    if (!ca->v) return NOMEM(R);
    for (int i = 0; i < e->nargs; i++) SCB_TRY(eval(R, e->args[i], &ca->v[i]));
out:
    return rc;
}

/* Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (what chat
 * templates meet); other scripts are left as they are. */
static uint32_t cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c == 0x131) return 'I';
    if (c == 0x17f) return 'S';
    if ((c >= 0xe0 && c <= 0xfe && c != 0xf7)) return c - 32;
    if (c == 0xff) return 0x178;
    if (c == 0xb5) return 0x39c;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x138 && c != 0x149) {
        int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_upper ? !(c & 1) : (c & 1)) return c - 1;
        return c;
    }
    if (c >= 0x1c4 && c <= 0x1cc) return c - (c - 0x1c4) % 3;
    if (c >= 0x1f1 && c <= 0x1f3) return 0x1f1;
    if (c == 0x3c2) return 0x3a3;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 63;
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 37;
    if (c >= 0x3b1 && c <= 0x3cb) return c - 32;
    if (c >= 0x430 && c <= 0x44f) return c - 32;
    if (c >= 0x450 && c <= 0x45f) return c - 80;
    return c;
}
static uint32_t cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') return c + 32;
    if ((c >= 0xc0 && c <= 0xde && c != 0xd7)) return c + 32;
    if (c == 0x178) return 0xff;
    if (c >= 0x100 && c <= 0x17f && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17f) {
        int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e);
        if (odd_upper ? (c & 1) : !(c & 1)) return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) return c + 32;
    if (c >= 0x1c4 && c <= 0x1cc) return c - (c - 0x1c4) % 3 + 2;
    if (c >= 0x1f1 && c <= 0x1f3) return 0x1f3;
    if (c == 0x386) return 0x3ac;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 63;
    if (c >= 0x388 && c <= 0x38a) return c + 37;
    if (c >= 0x410 && c <= 0x42f) return c + 32;
    if (c >= 0x400 && c <= 0x40f) return c + 80;
    return c;
}
/* titlecase: the Latin digraphs have a distinct title form; otherwise the upper case */
static uint32_t cp_title(uint32_t c)
{
    if (c >= 0x1c4 && c <= 0x1cc) return c - (c - 0x1c4) % 3 + 1;
    if (c >= 0x1f1 && c <= 0x1f3) return 0x1f2;
    return cp_upper(c);
}
static int cp_cased(uint32_t c) { return cp_upper(c) != c || cp_lower(c) != c || c == 0xdf; }

static int str_case(struct rs *R, const struct jstr *s, int mode, struct jv *out)
{
    /* mode 1 upper, 2 lower, 3 python str.title, 4 capitalize, 5 jinja's title filter */
    struct scb_buf b = {0};
    int rc = SCB_OK, prev_cased = 0, word_start = 1, first = 1;
    for (size_t i = 0; i < s->n && rc == SCB_OK;) {
        uint32_t c, o;
        int k = u8_dec(s->p, s->n, i, &c);
        i += (size_t)k;
        int up = 0;
        switch (mode) {
        case 1: up = 1; break;
        case 2: up = 0; break;
        case 3: up = !prev_cased; prev_cased = cp_cased(c); break;
        case 4: up = first; break;
        default:
            if (c == '-' || py_space(c) || c == '(' || c == '{' || c == '[' || c == '<') { word_start = 1; up = -1; }
            else { up = word_start; word_start = 0; }
        }
        first = 0;
        if (up < 0) o = c;
        else if (up && c == 0xdf) { rc = scb_buf_puts(&b, (mode == 1 || mode == 5) ? "SS" : "Ss"); continue; }
        else o = !up ? cp_lower(c) : (mode == 3 || mode == 4) ? cp_title(c) : cp_upper(c);
        char e[4];
        rc = scb_buf_append(&b, e, (size_t)scb_utf8_encode(o, e));
    }
    if (rc < 0) { scb_buf_fini(&b); return NOMEM(R); }
    return buf_to_str(R, &b, out);
}

static int str_replace(struct rs *R, const struct jstr *s, const struct jstr *old, const struct jstr *nw, long long count, struct jv *out)
{
    struct scb_buf b = {0};
    int rc = SCB_OK;
    size_t i = 0;
    long long done = 0;
    if (old->n == 0) {
        /* Python inserts nw between every character (and at both ends) */
        for (; i <= s->n && (count < 0 || done < count) && rc == SCB_OK;) {
            rc = scb_buf_append(&b, nw->p, nw->n); done++;
            if (i == s->n) { i++; break; }
            uint32_t cp; int k = u8_dec(s->p, s->n, i, &cp);
            if (rc == SCB_OK) rc = scb_buf_append(&b, s->p + i, (size_t)k);
            i += (size_t)k;
        }
        if (rc == SCB_OK && i <= s->n) rc = scb_buf_append(&b, s->p + i, s->n - i);
    } else {
        while (rc == SCB_OK && i <= s->n) {
            const char *f = (count < 0 || done < count) ? memmem(s->p + i, s->n - i, old->p, old->n) : NULL;
            if (!f) { rc = scb_buf_append(&b, s->p + i, s->n - i); break; }
            size_t at = (size_t)(f - s->p);
            rc = scb_buf_append(&b, s->p + i, at - i);
            if (rc == SCB_OK) rc = scb_buf_append(&b, nw->p, nw->n);
            i = at + old->n; done++;
        }
    }
    if (rc < 0) { scb_buf_fini(&b); return NOMEM(R); }
    return buf_to_str(R, &b, out);
}

static int str_split(struct rs *R, int line, const struct jstr *s, const struct jv *sepv, long long maxsplit, struct jv *out)
{
    int rc = SCB_OK;
    struct jv tmp[1];
    size_t cap = 8, n = 0;
    struct jv *items = scb_malloc(cap * sizeof *items);
    if (!items) return NOMEM(R);
#define PUSH(p_, n_) do { \
        if (n == cap) { struct jv *ni = scb_realloc(items, cap * 2 * sizeof *ni); if (!ni) { rc = NOMEM(R); goto out; } items = ni; cap *= 2; } \
        if ((rc = mk_str(R, (p_), (n_), 0, tmp)) < 0) goto out; \
        items[n++] = tmp[0]; \
    } while (0)
    if (sepv && sepv->t == JT_STR) {
        const struct jstr *sep = sepv->u.s;
        if (!sep->n) { rc = rerr(R, line, SCB_E_INVAL, "split: empty separator"); goto out; }
        size_t i = 0;
        long long done = 0;
        for (;;) {
            const char *f = (maxsplit < 0 || done < maxsplit) ? memmem(s->p + i, s->n - i, sep->p, sep->n) : NULL;
            if (!f) { PUSH(s->p + i, s->n - i); break; }
            PUSH(s->p + i, (size_t)(f - s->p) - i);
            i = (size_t)(f - s->p) + sep->n; done++;
        }
    } else if (!sepv || sepv->t == JT_NONE) {
        size_t i = 0;
        long long done = 0;
        for (;;) {
            while (i < s->n) { uint32_t c; int k = u8_dec(s->p, s->n, i, &c); if (!py_space(c)) break; i += (size_t)k; }
            if (i >= s->n) break;
            if (maxsplit >= 0 && done >= maxsplit) {
                size_t b, e; struct jstr rest = {s->n - i, s->p + i};
                str_strip(&rest, NULL, 2, &b, &e);
                PUSH(s->p + i, e); break;
            }
            size_t j = i;
            while (j < s->n) { uint32_t c; int k = u8_dec(s->p, s->n, j, &c); if (py_space(c)) break; j += (size_t)k; }
            PUSH(s->p + i, j - i); done++;
            i = j;
        }
    } else { rc = rerr(R, line, SCB_E_INVAL, "split: separator must be a string or None"); goto out; }
#undef PUSH
    SCB_TRY(mk_list(R, n, 0, out));
    if (n) memcpy(out->u.l->v, items, n * sizeof *items);
out:
    scb_free(items);
    return rc;
}

static int splitlines(struct rs *R, const struct jstr *s, struct jv *out)
{
    int rc = SCB_OK;
    size_t n = 0, i = 0, start = 0;
    struct jv *items = NULL; size_t cap = 0;
    while (i < s->n) {
        uint32_t c; int k = u8_dec(s->p, s->n, i, &c);
        int brk = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e || c == 0x85 || c == 0x2028 || c == 0x2029;
        size_t next = i + (size_t)k;
        if (c == '\r' && next < s->n && s->p[next] == '\n') next++;
        if (brk) {
            if (n == cap) { size_t nc = cap ? cap * 2 : 8; struct jv *ni = scb_realloc(items, nc * sizeof *ni); if (!ni) { rc = NOMEM(R); goto out; } items = ni; cap = nc; }
            SCB_TRY(mk_str(R, s->p + start, i - start, 0, &items[n])); n++;
            start = next;
        }
        i = next;
    }
    if (start < s->n) {
        if (n == cap) { size_t nc = cap ? cap * 2 : 8; struct jv *ni = scb_realloc(items, nc * sizeof *ni); if (!ni) { rc = NOMEM(R); goto out; } items = ni; cap = nc; }
        SCB_TRY(mk_str(R, s->p + start, s->n - start, 0, &items[n])); n++;
    }
    SCB_TRY(mk_list(R, n, 0, out));
    if (n) memcpy(out->u.l->v, items, n * sizeof *items);
out:
    scb_free(items);
    return rc;
}

static int join_items(struct rs *R, int line, const struct jv *seq, const struct jstr *sep, const char *attr, struct jv *out);

static int call_method(struct rs *R, int line, const struct jfunc *fn, const struct cargs *ca, struct jv *out)
{
    int rc = SCB_OK;
    const struct jv *self = &fn->self;
    const char *m = fn->name;
    struct jv a0 = V_UNDEF(NULL), a1 = V_UNDEF(NULL), a2 = V_UNDEF(NULL);
    int h0 = arg(ca, 0, NULL, &a0), h1 = arg(ca, 1, NULL, &a1), h2 = arg(ca, 2, NULL, &a2);
    (void)h2;
    if (self->t == JT_STR) {
        const struct jstr *s = self->u.s;
        if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
            const struct jstr *chars = NULL;
            if (h0 && a0.t == JT_STR) chars = a0.u.s;
            else if (h0 && a0.t != JT_NONE) return rerr(R, line, SCB_E_INVAL, "%s arg must be None or str", m);
            size_t b, e;
            str_strip(s, chars, m[0] == 'l' ? 1 : m[0] == 'r' ? 2 : 3, &b, &e);
            return mk_str(R, s->p + b, e - b, 0, out);
        }
        if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
            struct jv sep = V_NONE(), ms = V_INT(-1);
            arg(ca, 0, "sep", &sep); arg(ca, 1, "maxsplit", &ms);
            if (ms.t != JT_INT) return rerr(R, line, SCB_E_INVAL, "%s: maxsplit must be an integer", m);
            if (m[0] == 'r' && ms.u.i >= 0) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: rsplit with maxsplit");
            return str_split(R, line, s, &sep, ms.u.i, out);
        }
        if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
            if (!h0) return rerr(R, line, SCB_E_INVAL, "%s() takes at least 1 argument", m);
            if (h1) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: %s with start/end", m);
            const struct jv *cands = &a0; size_t nc = 1;
            if (a0.t == JT_LIST) { cands = a0.u.l->v; nc = a0.u.l->n; }
            int r = 0;
            for (size_t i = 0; i < nc; i++) {
                if (cands[i].t != JT_STR) return rerr(R, line, SCB_E_INVAL, "%s first arg must be str or a tuple of str", m);
                const struct jstr *x = cands[i].u.s;
                if (x->n <= s->n && !memcmp(m[0] == 's' ? s->p : s->p + s->n - x->n, x->p, x->n)) { r = 1; break; }
            }
            *out = V_BOOL(r);
            return SCB_OK;
        }
        if (!strcmp(m, "upper")) return str_case(R, s, 1, out);
        if (!strcmp(m, "lower")) return str_case(R, s, 2, out);
        if (!strcmp(m, "title")) return str_case(R, s, 3, out);
        if (!strcmp(m, "capitalize")) return str_case(R, s, 4, out);
        if (!strcmp(m, "replace")) {
            if (!h0 || !h1 || a0.t != JT_STR || a1.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "replace() expects two strings");
            long long cnt = -1;
            if (h2) { if (a2.t != JT_INT) return rerr(R, line, SCB_E_INVAL, "replace() count must be an integer"); cnt = a2.u.i; }
            return str_replace(R, s, a0.u.s, a1.u.s, cnt, out);
        }
        if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "count")) {
            if (!h0 || a0.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "%s() expects a string", m);
            if (h1) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: %s with start/end", m);
            const struct jstr *x = a0.u.s;
            if (!strcmp(m, "count")) {
                long long c = 0;
                if (!x->n) c = (long long)u8_len(s->p, s->n) + 1;
                else for (size_t i = 0; i + x->n <= s->n;) { const char *f = memmem(s->p + i, s->n - i, x->p, x->n); if (!f) break; c++; i = (size_t)(f - s->p) + x->n; }
                *out = V_INT(c); return SCB_OK;
            }
            long long pos = -1;
            if (m[0] == 'f') { const char *f = x->n ? memmem(s->p, s->n, x->p, x->n) : s->p; if (f) pos = (long long)u8_len(s->p, (size_t)(f - s->p)); }
            else for (size_t i = s->n + 1; i-- > 0;) if (i + x->n <= s->n && !memcmp(s->p + i, x->p, x->n)) { pos = (long long)u8_len(s->p, i); break; }
            *out = V_INT(pos); return SCB_OK;
        }
        if (!strcmp(m, "splitlines")) return splitlines(R, s, out);
        if (!strncmp(m, "is", 2)) {
            int r = s->n > 0, any_cased = 0;
            for (size_t i = 0; i < s->n;) {
                uint32_t c; int k = u8_dec(s->p, s->n, i, &c); i += (size_t)k;
                int dg = c >= '0' && c <= '9', al = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
                if (!strcmp(m, "isdigit")) r &= dg;
                else if (!strcmp(m, "isalpha")) r &= al;
                else if (!strcmp(m, "isalnum")) r &= al || dg;
                else if (!strcmp(m, "isspace")) r &= py_space(c);
                else if (!strcmp(m, "isupper")) { if (cp_upper(c) != c) r = 0; if (cp_cased(c)) any_cased = 1; }
                else if (!strcmp(m, "islower")) { if (cp_lower(c) != c) r = 0; if (cp_cased(c)) any_cased = 1; }
            }
            if (!strcmp(m, "isupper") || !strcmp(m, "islower")) r = r && any_cased;
            *out = V_BOOL(r); return SCB_OK;
        }
        if (!strcmp(m, "join")) {
            if (!h0) return rerr(R, line, SCB_E_INVAL, "join() takes exactly one argument");
            return join_items(R, line, &a0, s, NULL, out);
        }
    } else if (self->t == JT_DICT) {
        struct jdict *d = self->u.d;
        if (!strcmp(m, "get")) {
            size_t i;
            if (!h0) return rerr(R, line, SCB_E_INVAL, "get expected at least 1 argument");
            if (dict_find(d, &a0, &i)) *out = d->v[i];
            else *out = h1 ? a1 : V_NONE();
            return SCB_OK;
        }
        if (!strcmp(m, "keys") || !strcmp(m, "values")) {
            SCB_TRY(mk_list(R, d->n, 0, out));
            for (size_t i = 0; i < d->n; i++) out->u.l->v[i] = m[0] == 'k' ? d->k[i] : d->v[i];
            return SCB_OK;
        }
        if (!strcmp(m, "items")) {
            SCB_TRY(mk_list(R, d->n, 0, out));
            for (size_t i = 0; i < d->n; i++) {
                struct jv t;
                SCB_TRY(mk_list(R, 2, 1, &t));
                t.u.l->v[0] = d->k[i]; t.u.l->v[1] = d->v[i];
                out->u.l->v[i] = t;
            }
            return SCB_OK;
        }
    } else if (self->t == JT_LIST) {
        if (!h0) return rerr(R, line, SCB_E_INVAL, "%s() takes exactly one argument", m);
        long long c = 0, idx = -1;
        for (size_t i = 0; i < self->u.l->n; i++)
            if (jv_eq(&self->u.l->v[i], &a0)) { c++; if (idx < 0) idx = (long long)i; }
        if (!strcmp(m, "count")) { *out = V_INT(c); return SCB_OK; }
        if (idx < 0) return rerr(R, line, SCB_E_INVAL, "list.index(x): x not in list");
        *out = V_INT(idx); return SCB_OK;
    }
    return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported method '%s' of %s", m, type_name(self));
out:
    return rc;
}

static int call_macro(struct rs *R, int line, const struct jfunc *fn, const struct cargs *ca, struct jv *out)
{
    int rc = SCB_OK;
    const struct node *mn = fn->macro;
    struct frame *saved = R->fr, *f = NULL;
    struct scb_buf *saved_out = R->out, buf = {0};
    if (R->depth > 100) return rerr(R, line, SCB_E_INVAL, "macro recursion too deep");
    if (npos(ca) > mn->nparams) return rerr(R, line, SCB_E_INVAL, "macro '%s' takes not more than %d argument(s)", mn->name, mn->nparams);
    SCB_TRY(push_frame(R, (struct frame *)fn->self.u.d, &f));
    for (int i = 0; i < ca->n; i++)
        if (ca->kw && ca->kw[i]) {
            int ok = 0;
            for (int p = 0; p < mn->nparams; p++) ok |= !strcmp(mn->params[p], ca->kw[i]);
            if (!ok) return rerr(R, line, SCB_E_INVAL, "macro '%s' has no argument '%s'", mn->name, ca->kw[i]);
        }
    R->fr = f;
    for (int p = 0; p < mn->nparams; p++) {
        struct jv v;
        if (!arg(ca, p, mn->params[p], &v)) {
            if (mn->defaults[p]) { if ((rc = eval(R, mn->defaults[p], &v)) < 0) goto out; }
            else { char h[200]; snprintf(h, sizeof h, "'%s' is undefined", mn->params[p]); char *hh = ar_alloc(&R->ar, strlen(h) + 1); if (hh) strcpy(hh, h); v = V_UNDEF(hh); }
        }
        SCB_TRY(set_var(R, mn->params[p], v));
    }
    R->out = &buf;
    R->depth++;
    rc = exec_list(R, &mn->body);
    R->depth--;
    if (rc > 0) rc = SCB_OK;
    if (rc == SCB_OK) rc = mk_str(R, buf.data ? buf.data : "", buf.len, 1, out);
out:
    R->fr = saved;
    R->out = saved_out;
    scb_buf_fini(&buf);
    return rc;
}

static int call_value(struct rs *R, int line, const struct jv *callee, const struct cargs *ca, struct jv *out)
{
    int rc = SCB_OK;
    if (callee->t == JT_UNDEF) return undef_error(R, line, callee);
    if (callee->t != JT_FUNC) return rerr(R, line, SCB_E_INVAL, "'%s' object is not callable", type_name(callee));
    const struct jfunc *fn = callee->u.fn;
    struct jv a0 = V_UNDEF(NULL), a1 = V_UNDEF(NULL), a2 = V_UNDEF(NULL);
    switch (fn->kind) {
    case FN_RANGE: {
        int np = npos(ca);
        long long st = 0, sp = 0, step = 1;
        if (np < 1 || np > 3) return rerr(R, line, SCB_E_INVAL, "range expected 1 to 3 arguments");
        arg(ca, 0, NULL, &a0);
        if (np >= 2) arg(ca, 1, NULL, &a1);
        if (np == 3) arg(ca, 2, NULL, &a2);
        if (a0.t != JT_INT || (np >= 2 && a1.t != JT_INT) || (np == 3 && a2.t != JT_INT)) return rerr(R, line, SCB_E_INVAL, "range arguments must be integers");
        if (np == 1) sp = a0.u.i; else { st = a0.u.i; sp = a1.u.i; if (np == 3) step = a2.u.i; }
        if (!step) return rerr(R, line, SCB_E_INVAL, "range() arg 3 must not be zero");
        long long cnt = step > 0 ? (sp > st ? (sp - st - 1) / step + 1 : 0) : (st > sp ? (st - sp - 1) / (-step) + 1 : 0);
        if (cnt > 100000) return rerr(R, line, SCB_E_INVAL, "range too big (more than 100000 items, as jinja2's sandbox)");
        SCB_TRY(mk_list(R, (size_t)cnt, 0, out));
        for (long long i = 0; i < cnt; i++) out->u.l->v[i] = V_INT(st + i * step);
        return SCB_OK;
    }
    case FN_NAMESPACE: case FN_DICT:
        SCB_TRY(mk_dict(R, fn->kind == FN_NAMESPACE ? JT_NS : JT_DICT, out));
        for (int i = 0; i < ca->n; i++) {
            if (ca->kw && ca->kw[i]) {
                if (fn->kind == FN_NAMESPACE && ca->kw[i][0] == '_')
                    return rerr(R, line, SCB_E_INVAL, "chat templates cannot store underscore-prefixed attributes on a namespace");
                SCB_TRY(dict_set_s(R, out->u.d, ca->kw[i], ca->v[i]));
            } else if (i == 0 && (ca->v[i].t == JT_DICT || ca->v[i].t == JT_NS)) {
                for (size_t k = 0; k < ca->v[i].u.d->n; k++) SCB_TRY(dict_set(R, out->u.d, ca->v[i].u.d->k[k], ca->v[i].u.d->v[k]));
            } else return rerr(R, line, SCB_E_INVAL, "%s() takes keyword arguments or one mapping", fn->kind == FN_DICT ? "dict" : "namespace");
        }
        return SCB_OK;
    case FN_RAISE: {
        struct scb_buf b = {0};
        if (arg(ca, 0, "message", &a0)) to_str(R, &a0, &b, 0);
        rc = rerr(R, line, SCB_E_INVAL, "raise_exception: %s", b.data ? b.data : "");
        scb_buf_fini(&b);
        return rc;
    }
    case FN_STRFTIME: {
        if (!arg(ca, 0, "format", &a0) || a0.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "strftime_now expects a format string");
        struct tm tm;
        time_t tt = R->now ? (time_t)R->now : time(NULL);
        if (R->now) gmtime_r(&tt, &tm); else localtime_r(&tt, &tm);
        char fmt[256], res[512];
        snprintf(fmt, sizeof fmt, "%.*s", (int)(a0.u.s->n > 250 ? 250 : a0.u.s->n), a0.u.s->p);
        size_t n = fmt[0] ? strftime(res, sizeof res, fmt, &tm) : 0;
        return mk_str(R, res, n, 1, out);
    }
    case FN_METHOD: return call_method(R, line, fn, ca, out);
    case FN_MACRO: return call_macro(R, line, fn, ca, out);
    case FN_CYCLE: {
        if (!ca->n) return rerr(R, line, SCB_E_INVAL, "no items for cycling given");
        *out = ca->v[fn->self.u.i % ca->n];
        return SCB_OK;
    }
    default: return rerr(R, line, SCB_E_INVAL, "not callable");
    }
out:
    return rc;
}

/* attribute path "a.b.0" as jinja's make_attrgetter */
static int attr_path(struct rs *R, int line, const struct jv *obj, const struct jstr *path, struct jv *out)
{
    int rc = SCB_OK;
    struct jv cur = *obj;
    size_t i = 0;
    while (i <= path->n) {
        const char *dot = memchr(path->p + i, '.', path->n - i);
        size_t e = dot ? (size_t)(dot - path->p) : path->n;
        struct jv key;
        int isint = e > i;
        for (size_t k = i; k < e; k++) isint &= is_digit(path->p[k]);
        if (isint) key = V_INT(strtoll(path->p + i, NULL, 10));
        else SCB_TRY(mk_str(R, path->p + i, e - i, 0, &key));
        if (cur.t == JT_UNDEF) { *out = cur; return SCB_OK; }
        SCB_TRY(get_item(R, line, &cur, &key, &cur));
        i = e + 1;
    }
    *out = cur;
out:
    return rc;
}

static int apply_test(struct rs *R, int line, const char *name, const struct jv *v, const struct cargs *ca, int *res);
static int apply_filter(struct rs *R, int line, const char *name, const struct jv *v, const struct cargs *ca, struct jv *out);

static int join_items(struct rs *R, int line, const struct jv *seq, const struct jstr *sep, const char *attr, struct jv *out)
{
    int rc = SCB_OK;
    struct jv *items; size_t n;
    struct scb_buf b = {0};
    SCB_TRY(iter_items(R, line, seq, &items, &n));
    for (size_t i = 0; i < n; i++) {
        struct jv x = items[i];
        if (attr) { struct jstr p = {strlen(attr), attr}; SCB_TRY(attr_path(R, line, &x, &p, &x)); }
        if (i && sep && (rc = scb_buf_append(&b, sep->p, sep->n)) < 0) goto out;
        if ((rc = to_str(R, &x, &b, 0)) < 0) goto out;
    }
    rc = buf_to_str(R, &b, out);
out:
    scb_buf_fini(&b);
    return rc;
}

/* select/reject/selectattr/rejectattr */
static int filter_select(struct rs *R, int line, const struct jv *v, const struct cargs *ca, int by_attr, int keep, struct jv *out)
{
    int rc = SCB_OK;
    struct jv *items; size_t n, k = 0;
    SCB_TRY(iter_items(R, line, v, &items, &n));
    int first = by_attr ? 1 : 0;
    struct jv attrv = V_UNDEF(NULL), testv = V_UNDEF(NULL);
    if (by_attr && (!arg(ca, 0, NULL, &attrv) || attrv.t != JT_STR)) return rerr(R, line, SCB_E_INVAL, "selectattr/rejectattr needs an attribute name");
    int has_test = arg(ca, first, NULL, &testv);
    if (has_test && testv.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "test name must be a string");
    char tname[64] = "";
    if (has_test) {
        snprintf(tname, sizeof tname, "%.*s", (int)(testv.u.s->n > 60 ? 60 : testv.u.s->n), testv.u.s->p);
        if (!in_list(known_tests, tname)) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported test '%s'", tname);
    }
    struct cargs targs = {0, NULL, NULL};
    if (ca->n > first + 1) { targs.n = ca->n - first - 1; targs.v = ca->v + first + 1; targs.kw = ca->kw ? ca->kw + first + 1 : NULL; }
    SCB_TRY(mk_list(R, n, 0, out));
    for (size_t i = 0; i < n; i++) {
        struct jv x = items[i];
        if (by_attr) SCB_TRY(attr_path(R, line, &x, attrv.u.s, &x));
        int r;
        if (has_test) SCB_TRY(apply_test(R, line, tname, &x, &targs, &r));
        else r = truthy(&x);
        if (r == keep) out->u.l->v[k++] = items[i];
    }
    out->u.l->n = k;
out:
    return rc;
}

static int sort_key_cmp(struct rs *R, int line, const struct jv *a, const struct jv *b, int case_sens, int *res)
{
    if (!case_sens && a->t == JT_STR && b->t == JT_STR) {
        struct jv la, lb;
        int rc = str_case(R, a->u.s, 2, &la);
        if (rc == SCB_OK) rc = str_case(R, b->u.s, 2, &lb);
        if (rc < 0) return rc;
        return jv_cmp(R, line, &la, &lb, res);
    }
    return jv_cmp(R, line, a, b, res);
}

static int apply_filter(struct rs *R, int line, const char *f, const struct jv *v, const struct cargs *ca, struct jv *out)
{
    int rc = SCB_OK;
    struct jv a0 = V_UNDEF(NULL), a1 = V_UNDEF(NULL), a2 = V_UNDEF(NULL);
    if (!strcmp(f, "length") || !strcmp(f, "count")) {
        switch (v->t) {
        case JT_STR: *out = V_INT((long long)u8_len(v->u.s->p, v->u.s->n)); return SCB_OK;
        case JT_LIST: *out = V_INT((long long)v->u.l->n); return SCB_OK;
        case JT_DICT: case JT_NS: *out = V_INT((long long)v->u.d->n); return SCB_OK;
        case JT_UNDEF: *out = V_INT(0); return SCB_OK;
        default: return rerr(R, line, SCB_E_INVAL, "object of type '%s' has no len()", type_name(v));
        }
    }
    if (!strcmp(f, "trim")) {
        struct jv s;
        SCB_TRY(str_of(R, v, &s));
        const struct jstr *chars = NULL;
        if (arg(ca, 0, "chars", &a0) && a0.t == JT_STR) chars = a0.u.s;
        size_t b, e;
        str_strip(s.u.s, chars, 3, &b, &e);
        return mk_str(R, s.u.s->p + b, e - b, 0, out);
    }
    if (!strcmp(f, "upper") || !strcmp(f, "lower") || !strcmp(f, "capitalize") || !strcmp(f, "title")) {
        struct jv s;
        SCB_TRY(str_of(R, v, &s));
        return str_case(R, s.u.s, f[0] == 'u' ? 1 : f[0] == 'l' ? 2 : f[0] == 'c' ? 4 : 5, out);
    }
    if (!strcmp(f, "string")) return str_of(R, v, out);
    if (!strcmp(f, "safe")) { *out = *v; return SCB_OK; }
    if (!strcmp(f, "e") || !strcmp(f, "escape")) {
        struct jv s;
        SCB_TRY(str_of(R, v, &s));
        struct scb_buf b = {0};
        for (size_t i = 0; i < s.u.s->n && rc == SCB_OK; i++) {
            char c = s.u.s->p[i];
            rc = c == '&' ? scb_buf_puts(&b, "&amp;") : c == '<' ? scb_buf_puts(&b, "&lt;") : c == '>' ? scb_buf_puts(&b, "&gt;") :
                 c == '"' ? scb_buf_puts(&b, "&#34;") : c == '\'' ? scb_buf_puts(&b, "&#39;") : scb_buf_putc(&b, c);
        }
        if (rc < 0) { scb_buf_fini(&b); return NOMEM(R); }
        return buf_to_str(R, &b, out);
    }
    if (!strcmp(f, "tojson")) {
        /* transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        struct json_opts o = {"", 0, ", ", ": ", 0};
        char ind[64] = "";
        if (arg(ca, 0, "ensure_ascii", &a0) && truthy(&a0)) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: tojson(ensure_ascii=True)");
        if (arg(ca, 1, "indent", &a1) && a1.t != JT_NONE) {
            if (a1.t == JT_INT) { long long k = a1.u.i < 0 ? 0 : a1.u.i > 32 ? 32 : a1.u.i; memset(ind, ' ', (size_t)k); ind[k] = 0; }
            else if (a1.t == JT_STR) snprintf(ind, sizeof ind, "%.*s", (int)(a1.u.s->n > 60 ? 60 : a1.u.s->n), a1.u.s->p);
            else return rerr(R, line, SCB_E_INVAL, "tojson: indent must be an integer or a string");
            o.indent = ind; o.has_indent = 1; o.item_sep = ",";
        }
        if (arg(ca, 2, "separators", &a2) && a2.t != JT_NONE) {
            if (a2.t != JT_LIST || a2.u.l->n != 2 || a2.u.l->v[0].t != JT_STR || a2.u.l->v[1].t != JT_STR)
                return rerr(R, line, SCB_E_INVAL, "tojson: separators must be a pair of strings");
            char *s0 = ar_alloc(&R->ar, a2.u.l->v[0].u.s->n + 1), *s1 = ar_alloc(&R->ar, a2.u.l->v[1].u.s->n + 1);
            if (!s0 || !s1) return NOMEM(R);
            memcpy(s0, a2.u.l->v[0].u.s->p, a2.u.l->v[0].u.s->n); s0[a2.u.l->v[0].u.s->n] = 0;
            memcpy(s1, a2.u.l->v[1].u.s->p, a2.u.l->v[1].u.s->n); s1[a2.u.l->v[1].u.s->n] = 0;
            o.item_sep = s0; o.key_sep = s1;
        }
        struct jv sk;
        if (arg(ca, 3, "sort_keys", &sk)) o.sort_keys = truthy(&sk);
        struct scb_buf b = {0};
        rc = json_dump(R, line, v, &b, &o, 0);
        if (rc < 0) { scb_buf_fini(&b); return rc; }
        return buf_to_str(R, &b, out);
    }
    if (!strcmp(f, "default") || !strcmp(f, "d")) {
        struct jv dv = V_NONE(), bo = V_BOOL(0);
        if (!arg(ca, 0, "default_value", &dv)) SCB_TRY(mk_str(R, "", 0, 0, &dv));
        arg(ca, 1, "boolean", &bo);
        *out = (v->t == JT_UNDEF || (truthy(&bo) && !truthy(v))) ? dv : *v;
        return SCB_OK;
    }
    if (!strcmp(f, "first") || !strcmp(f, "last")) {
        struct jv *items; size_t n;
        SCB_TRY(iter_items(R, line, v, &items, &n));
        *out = n ? items[f[0] == 'f' ? 0 : n - 1] : V_UNDEF("no first item, sequence was empty");
        return SCB_OK;
    }
    if (!strcmp(f, "join")) {
        struct jv sep, attrv;
        const char *attr = NULL;
        if (!arg(ca, 0, "d", &sep)) SCB_TRY(mk_str(R, "", 0, 0, &sep));
        if (sep.t != JT_STR) SCB_TRY(str_of(R, &sep, &sep));
        if (arg(ca, 1, "attribute", &attrv)) {
            if (attrv.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "join: attribute must be a string");
            char *a = ar_alloc(&R->ar, attrv.u.s->n + 1);
            if (!a) return NOMEM(R);
            memcpy(a, attrv.u.s->p, attrv.u.s->n); a[attrv.u.s->n] = 0; attr = a;
        }
        return join_items(R, line, v, sep.u.s, attr, out);
    }
    if (!strcmp(f, "int")) {
        struct jv dflt = V_INT(0);
        arg(ca, 0, "default", &dflt);
        if (v->t == JT_INT || v->t == JT_BOOL) { *out = V_INT(v->u.i); return SCB_OK; }
        if (v->t == JT_FLOAT) { *out = isfinite(v->u.f) ? V_INT((long long)v->u.f) : dflt; return SCB_OK; }
        if (v->t == JT_STR) {
            char buf[128];
            snprintf(buf, sizeof buf, "%.*s", (int)(v->u.s->n > 120 ? 120 : v->u.s->n), v->u.s->p);
            char *e;
            long long x = strtoll(buf, &e, 10);
            while (*e && is_ws(*e)) e++;
            if (e != buf && !*e) { *out = V_INT(x); return SCB_OK; }
            double d = strtod(buf, &e);
            while (*e && is_ws(*e)) e++;
            if (e != buf && !*e && isfinite(d)) { *out = V_INT((long long)d); return SCB_OK; }
        }
        *out = dflt;
        return SCB_OK;
    }
    if (!strcmp(f, "float")) {
        struct jv dflt = V_FLOAT(0.0);
        arg(ca, 0, "default", &dflt);
        if (is_num(v)) { *out = V_FLOAT(num_f(v)); return SCB_OK; }
        if (v->t == JT_STR) {
            char buf[128], *e;
            snprintf(buf, sizeof buf, "%.*s", (int)(v->u.s->n > 120 ? 120 : v->u.s->n), v->u.s->p);
            double d = strtod(buf, &e);
            while (*e && is_ws(*e)) e++;
            if (e != buf && !*e) { *out = V_FLOAT(d); return SCB_OK; }
        }
        *out = dflt;
        return SCB_OK;
    }
    if (!strcmp(f, "abs")) {
        if (v->t == JT_INT || v->t == JT_BOOL) { *out = V_INT(v->u.i < 0 ? -v->u.i : v->u.i); return SCB_OK; }
        if (v->t == JT_FLOAT) { *out = V_FLOAT(fabs(v->u.f)); return SCB_OK; }
        return rerr(R, line, SCB_E_INVAL, "bad operand type for abs(): '%s'", type_name(v));
    }
    if (!strcmp(f, "round")) {
        struct jv prec = V_INT(0), meth;
        arg(ca, 0, "precision", &prec);
        if (arg(ca, 1, "method", &meth) && !(meth.t == JT_STR && meth.u.s->n == 6 && !memcmp(meth.u.s->p, "common", 6)))
            return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported: round with a method other than 'common'");
        if (!is_num(v)) return rerr(R, line, SCB_E_INVAL, "round: not a number");
        char buf[400];
        snprintf(buf, sizeof buf, "%.*f", (int)(prec.u.i < 0 ? 0 : prec.u.i > 30 ? 30 : prec.u.i), num_f(v));
        *out = V_FLOAT(strtod(buf, NULL));
        return SCB_OK;
    }
    if (!strcmp(f, "replace")) {
        struct jv s;
        SCB_TRY(str_of(R, v, &s));
        if (!arg(ca, 0, "old", &a0) || !arg(ca, 1, "new", &a1)) return rerr(R, line, SCB_E_INVAL, "replace needs old and new");
        SCB_TRY(str_of(R, &a0, &a0));
        SCB_TRY(str_of(R, &a1, &a1));
        long long cnt = -1;
        if (arg(ca, 2, "count", &a2) && a2.t == JT_INT) cnt = a2.u.i;
        return str_replace(R, s.u.s, a0.u.s, a1.u.s, cnt, out);
    }
    if (!strcmp(f, "items")) {
        if (v->t == JT_UNDEF) return mk_list(R, 0, 0, out);
        if (v->t != JT_DICT && v->t != JT_NS) return rerr(R, line, SCB_E_INVAL, "items: can only get item pairs from a mapping");
        struct jfunc fn = {FN_METHOD, "items", *v, NULL};
        struct cargs none = {0, NULL, NULL};
        if (v->t == JT_NS) fn.self.t = JT_DICT;
        return call_method(R, line, &fn, &none, out);
    }
    if (!strcmp(f, "list")) {
        struct jv *items; size_t n;
        SCB_TRY(iter_items(R, line, v, &items, &n));
        SCB_TRY(mk_list(R, n, 0, out));
        if (n) memcpy(out->u.l->v, items, n * sizeof *items);
        return SCB_OK;
    }
    if (!strcmp(f, "reverse")) {
        if (v->t == JT_STR) { struct jv st = V_NONE(), sp = V_NONE(), step = V_INT(-1); return do_slice(R, line, v, &st, &sp, &step, out); }
        struct jv *items; size_t n;
        SCB_TRY(iter_items(R, line, v, &items, &n));
        SCB_TRY(mk_list(R, n, 0, out));
        for (size_t i = 0; i < n; i++) out->u.l->v[i] = items[n - 1 - i];
        return SCB_OK;
    }
    if (!strcmp(f, "select") || !strcmp(f, "reject") || !strcmp(f, "selectattr") || !strcmp(f, "rejectattr"))
        return filter_select(R, line, v, ca, strstr(f, "attr") != NULL, f[0] == 's', out);
    if (!strcmp(f, "map")) {
        struct jv *items; size_t n;
        SCB_TRY(iter_items(R, line, v, &items, &n));
        struct jv attrv, dflt;
        int has_attr = arg(ca, -1, "attribute", &attrv), has_dflt = arg(ca, -1, "default", &dflt);
        SCB_TRY(mk_list(R, n, 0, out));
        if (has_attr) {
            if (attrv.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "map: attribute must be a string");
            for (size_t i = 0; i < n; i++) {
                SCB_TRY(attr_path(R, line, &items[i], attrv.u.s, &out->u.l->v[i]));
                if (has_dflt && out->u.l->v[i].t == JT_UNDEF) out->u.l->v[i] = dflt;
            }
            return SCB_OK;
        }
        if (!arg(ca, 0, NULL, &a0) || a0.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "map needs a filter name or attribute=");
        char fname[64];
        snprintf(fname, sizeof fname, "%.*s", (int)(a0.u.s->n > 60 ? 60 : a0.u.s->n), a0.u.s->p);
        if (!in_list(known_filters, fname)) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported filter '%s'", fname);
        struct cargs rest = {ca->n - 1, ca->v + 1, ca->kw ? ca->kw + 1 : NULL};
        for (size_t i = 0; i < n; i++) SCB_TRY(apply_filter(R, line, fname, &items[i], &rest, &out->u.l->v[i]));
        return SCB_OK;
    }
    if (!strcmp(f, "attr")) {
        if (!arg(ca, 0, "name", &a0) || a0.t != JT_STR) return rerr(R, line, SCB_E_INVAL, "attr needs a name");
        char nm[256];
        snprintf(nm, sizeof nm, "%.*s", (int)(a0.u.s->n > 250 ? 250 : a0.u.s->n), a0.u.s->p);
        if (v->t == JT_DICT) { *out = V_UNDEF(undef_hint(R, v, nm)); if (in_list(dict_methods, nm)) return get_attr(R, line, v, nm, out); return SCB_OK; }
        return get_attr(R, line, v, nm, out);
    }
    if (!strcmp(f, "indent")) {
        struct jv s, w = V_INT(4), first = V_BOOL(0), blank = V_BOOL(0);
        SCB_TRY(str_of(R, v, &s));
        arg(ca, 0, "width", &w); arg(ca, 1, "first", &first); arg(ca, 2, "blank", &blank);
        struct scb_buf ind = {0}, b = {0};
        if (w.t == JT_STR) rc = scb_buf_append(&ind, w.u.s->p, w.u.s->n);
        else if (w.t == JT_INT) for (long long i = 0; i < w.u.i && rc == SCB_OK; i++) rc = scb_buf_putc(&ind, ' ');
        else { return rerr(R, line, SCB_E_INVAL, "indent: width must be an integer or a string"); }
        /* s + "\n" then splitlines, as jinja's do_indent */
        struct jv lines, s2;
        struct scb_buf tmp = {0};
        if (rc == SCB_OK) rc = scb_buf_append(&tmp, s.u.s->p, s.u.s->n);
        if (rc == SCB_OK) rc = scb_buf_putc(&tmp, '\n');
        if (rc < 0) { scb_buf_fini(&ind); scb_buf_fini(&tmp); return NOMEM(R); }
        SCB_TRY(buf_to_str(R, &tmp, &s2));
        rc = splitlines(R, s2.u.s, &lines);
        for (size_t i = 0; rc == SCB_OK && i < lines.u.l->n; i++) {
            const struct jstr *ln = lines.u.l->v[i].u.s;
            if (i) rc = scb_buf_putc(&b, '\n');
            if (rc == SCB_OK && i && (truthy(&blank) || ln->n)) rc = scb_buf_append(&b, ind.data ? ind.data : "", ind.len);
            if (rc == SCB_OK) rc = scb_buf_append(&b, ln->p, ln->n);
        }
        if (rc == SCB_OK && truthy(&first)) {
            struct scb_buf fb = {0};
            rc = scb_buf_append(&fb, ind.data ? ind.data : "", ind.len);
            if (rc == SCB_OK) rc = scb_buf_append(&fb, b.data ? b.data : "", b.len);
            scb_buf_fini(&b); b = fb;
        }
        scb_buf_fini(&ind);
        if (rc < 0) { scb_buf_fini(&b); return rc; }
        return buf_to_str(R, &b, out);
    }
    if (!strcmp(f, "sort") || !strcmp(f, "unique") || !strcmp(f, "min") || !strcmp(f, "max") || !strcmp(f, "dictsort")) {
        struct jv *items; size_t n;
        struct jv rev = V_BOOL(0), cs = V_BOOL(0), attrv = V_NONE();
        int dsort = !strcmp(f, "dictsort");
        struct jv pairs;
        if (dsort) {
            if (v->t != JT_DICT) return rerr(R, line, SCB_E_INVAL, "dictsort: not a mapping");
            struct jfunc fn = {FN_METHOD, "items", *v, NULL};
            struct cargs none = {0, NULL, NULL};
            SCB_TRY(call_method(R, line, &fn, &none, &pairs));
            items = pairs.u.l->v; n = pairs.u.l->n;
            arg(ca, 0, "case_sensitive", &cs); arg(ca, 2, "reverse", &rev);
        } else {
            SCB_TRY(iter_items(R, line, v, &items, &n));
            if (!strcmp(f, "sort")) { arg(ca, 0, "reverse", &rev); arg(ca, 1, "case_sensitive", &cs); arg(ca, 2, "attribute", &attrv); }
            else { arg(ca, 0, "case_sensitive", &cs); arg(ca, 1, "attribute", &attrv); }
        }
        struct jv *keys = ar_alloc(&R->ar, (n ? n : 1) * sizeof *keys);
        size_t *ord = ar_alloc(&R->ar, (n ? n : 1) * sizeof *ord);
        if (!keys || !ord) return NOMEM(R);
        for (size_t i = 0; i < n; i++) {
            ord[i] = i;
            if (dsort) keys[i] = items[i].u.l->v[0];
            else if (attrv.t == JT_STR) SCB_TRY(attr_path(R, line, &items[i], attrv.u.s, &keys[i]));
            else keys[i] = items[i];
        }
        if (!strcmp(f, "unique")) {
            size_t k = 0;
            SCB_TRY(mk_list(R, n, 0, out));
            for (size_t i = 0; i < n; i++) {
                int dup = 0;
                for (size_t j = 0; j < i && !dup; j++) {
                    int c;
                    SCB_TRY(sort_key_cmp(R, line, &keys[j], &keys[i], truthy(&cs), &c));
                    dup = c == 0;
                }
                if (!dup) out->u.l->v[k++] = items[i];
            }
            out->u.l->n = k;
            return SCB_OK;
        }
        /* stable insertion sort */
        for (size_t i = 1; i < n; i++) {
            size_t x = ord[i], j = i;
            while (j > 0) {
                int c;
                SCB_TRY(sort_key_cmp(R, line, &keys[ord[j - 1]], &keys[x], truthy(&cs), &c));
                if (truthy(&rev) ? c >= 0 : c <= 0) break;
                ord[j] = ord[j - 1]; j--;
            }
            ord[j] = x;
        }
        if (!strcmp(f, "min") || !strcmp(f, "max")) {
            if (!n) { *out = V_UNDEF("no min/max item, sequence was empty"); return SCB_OK; }
            /* python min/max return the first of equal extremes */
            size_t best = 0;
            for (size_t i = 1; i < n; i++) {
                int c;
                SCB_TRY(sort_key_cmp(R, line, &keys[i], &keys[best], truthy(&cs), &c));
                if (f[1] == 'i' ? c < 0 : c > 0) best = i;
            }
            *out = items[best];
            return SCB_OK;
        }
        SCB_TRY(mk_list(R, n, 0, out));
        for (size_t i = 0; i < n; i++) out->u.l->v[i] = items[ord[i]];
        return SCB_OK;
    }
    if (!strcmp(f, "sum")) {
        struct jv *items; size_t n;
        struct jv attrv = V_NONE(), acc = V_INT(0);
        SCB_TRY(iter_items(R, line, v, &items, &n));
        arg(ca, 0, "attribute", &attrv); arg(ca, 1, "start", &acc);
        for (size_t i = 0; i < n; i++) {
            struct jv x = items[i];
            if (attrv.t == JT_STR) SCB_TRY(attr_path(R, line, &x, attrv.u.s, &x));
            SCB_TRY(binop(R, line, OP_ADD, &acc, &x, &acc));
        }
        *out = acc;
        return SCB_OK;
    }
    if (!strcmp(f, "wordcount")) {
        struct jv s, parts, sepn = V_NONE();
        SCB_TRY(str_of(R, v, &s));
        SCB_TRY(str_split(R, line, s.u.s, &sepn, -1, &parts));
        *out = V_INT((long long)parts.u.l->n);
        return SCB_OK;
    }
    return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported filter '%s'", f);
out:
    return rc;
}

static int apply_test(struct rs *R, int line, const char *t, const struct jv *v, const struct cargs *ca, int *res)
{
    int rc = SCB_OK;
    struct jv a0 = V_UNDEF(NULL);
    int h0 = arg(ca, 0, NULL, &a0);
    if (!strcmp(t, "defined")) *res = v->t != JT_UNDEF;
    else if (!strcmp(t, "undefined")) *res = v->t == JT_UNDEF;
    else if (!strcmp(t, "none")) *res = v->t == JT_NONE;
    else if (!strcmp(t, "boolean")) *res = v->t == JT_BOOL;
    else if (!strcmp(t, "true")) *res = v->t == JT_BOOL && v->u.i;
    else if (!strcmp(t, "false")) *res = v->t == JT_BOOL && !v->u.i;
    else if (!strcmp(t, "integer")) *res = v->t == JT_INT;
    else if (!strcmp(t, "float")) *res = v->t == JT_FLOAT;
    else if (!strcmp(t, "number")) *res = is_num(v);
    else if (!strcmp(t, "string")) *res = v->t == JT_STR;
    else if (!strcmp(t, "mapping")) *res = v->t == JT_DICT;
    else if (!strcmp(t, "iterable")) *res = v->t == JT_STR || v->t == JT_LIST || v->t == JT_DICT || v->t == JT_UNDEF;
    else if (!strcmp(t, "sequence")) *res = v->t == JT_STR || v->t == JT_LIST || v->t == JT_DICT || v->t == JT_UNDEF;
    else if (!strcmp(t, "callable")) *res = v->t == JT_FUNC;
    else if (!strcmp(t, "odd") || !strcmp(t, "even")) {
        if (v->t != JT_INT && v->t != JT_BOOL) return rerr(R, line, SCB_E_INVAL, "test '%s' needs an integer", t);
        *res = (int)((v->u.i % 2 + 2) % 2) == (t[0] == 'o');
    } else if (!strcmp(t, "divisibleby")) {
        if (!h0 || (v->t != JT_INT && v->t != JT_BOOL) || a0.t != JT_INT) return rerr(R, line, SCB_E_INVAL, "divisibleby needs integers");
        if (!a0.u.i) return rerr(R, line, SCB_E_INVAL, "division by zero");
        *res = v->u.i % a0.u.i == 0;
    } else if (!strcmp(t, "lower") || !strcmp(t, "upper")) {
        struct jv s; struct cargs none = {0, NULL, NULL};
        if (v->t != JT_STR) { *res = 0; return SCB_OK; }
        struct jfunc fn = {FN_METHOD, t[0] == 'l' ? "islower" : "isupper", *v, NULL};
        SCB_TRY(call_method(R, line, &fn, &none, &s));
        *res = (int)s.u.i;
    } else if (!strcmp(t, "sameas")) {
        *res = v->t == a0.t && (v->t == JT_NONE || v->t == JT_UNDEF || (v->t == JT_BOOL && v->u.i == a0.u.i) ||
                                (v->t != JT_BOOL && v->t != JT_NONE && !memcmp(&v->u, &a0.u, sizeof v->u)));
    } else if (!strcmp(t, "filter") || !strcmp(t, "test")) {
        char nm[64] = "";
        if (a0.t == JT_STR) snprintf(nm, sizeof nm, "%.*s", (int)(a0.u.s->n > 60 ? 60 : a0.u.s->n), a0.u.s->p);
        *res = in_list(t[0] == 'f' ? known_filters : known_tests, nm);
    } else {
        int op = !strcmp(t, "eq") || !strcmp(t, "equalto") || !strcmp(t, "==") ? OP_EQ :
                 !strcmp(t, "ne") || !strcmp(t, "!=") ? OP_NE :
                 !strcmp(t, "lt") || !strcmp(t, "lessthan") || !strcmp(t, "<") ? OP_LT :
                 !strcmp(t, "le") || !strcmp(t, "<=") ? OP_LE :
                 !strcmp(t, "gt") || !strcmp(t, "greaterthan") || !strcmp(t, ">") ? OP_GT :
                 !strcmp(t, "ge") || !strcmp(t, ">=") ? OP_GE : !strcmp(t, "in") ? OP_IN : 0;
        if (!op) return rerr(R, line, SCB_E_UNSUPPORTED, "unsupported test '%s'", t);
        if (!h0) return rerr(R, line, SCB_E_INVAL, "test '%s' needs an argument", t);
        return compare(R, line, op, v, &a0, res);
    }
out:
    return rc;
}

/* ======================================================================================
 * Expression evaluation
 * ====================================================================================== */
static int eval(struct rs *R, const struct expr *e, struct jv *out)
{
    int rc = SCB_OK;
    struct jv a, b;
    struct cargs ca;
    switch (e->kind) {
    case E_LIT: *out = e->lit; return SCB_OK;
    case E_NAME:
        if (!lookup(R, e->name, out)) {
            char h[200];
            snprintf(h, sizeof h, "'%s' is undefined", e->name);
            char *hh = ar_alloc(&R->ar, strlen(h) + 1);
            if (!hh) return NOMEM(R);
            strcpy(hh, h);
            *out = V_UNDEF(hh);
        }
        return SCB_OK;
    case E_ATTR:
        SCB_TRY(eval(R, e->a, &a));
        return get_attr(R, e->line, &a, e->name, out);
    case E_ITEM:
        SCB_TRY(eval(R, e->a, &a));
        SCB_TRY(eval(R, e->b, &b));
        return get_item(R, e->line, &a, &b, out);
    case E_SLICE: {
        struct jv st = V_NONE(), sp = V_NONE(), step = V_NONE();
        SCB_TRY(eval(R, e->a, &a));
        if (e->b) SCB_TRY(eval(R, e->b, &st));
        if (e->c) SCB_TRY(eval(R, e->c, &sp));
        if (e->args[0]) SCB_TRY(eval(R, e->args[0], &step));
        return do_slice(R, e->line, &a, &st, &sp, &step, out);
    }
    case E_CALL:
        SCB_TRY(eval(R, e->a, &a));
        SCB_TRY(eval_args(R, e, &ca));
        return call_value(R, e->line, &a, &ca, out);
    case E_FILTER:
        SCB_TRY(eval(R, e->a, &a));
        SCB_TRY(eval_args(R, e, &ca));
        return apply_filter(R, e->line, e->name, &a, &ca, out);
    case E_TEST: {
        int r;
        SCB_TRY(eval(R, e->a, &a));
        SCB_TRY(eval_args(R, e, &ca));
        SCB_TRY(apply_test(R, e->line, e->name, &a, &ca, &r));
        *out = V_BOOL(e->negate ? !r : r);
        return SCB_OK;
    }
    case E_NOT:
        SCB_TRY(eval(R, e->a, &a));
        *out = V_BOOL(!truthy(&a));
        return SCB_OK;
    case E_NEG: case E_POS:
        SCB_TRY(eval(R, e->a, &a));
        if (a.t == JT_UNDEF) return undef_error(R, e->line, &a);
        if (a.t == JT_INT || a.t == JT_BOOL) { *out = V_INT(e->kind == E_NEG ? -a.u.i : a.u.i); return SCB_OK; }
        if (a.t == JT_FLOAT) { *out = V_FLOAT(e->kind == E_NEG ? -a.u.f : a.u.f); return SCB_OK; }
        return rerr(R, e->line, SCB_E_INVAL, "bad operand type for unary %c: '%s'", e->kind == E_NEG ? '-' : '+', type_name(&a));
    case E_BIN:
        SCB_TRY(eval(R, e->a, &a));
        SCB_TRY(eval(R, e->b, &b));
        return binop(R, e->line, e->op, &a, &b, out);
    case E_AND:
        SCB_TRY(eval(R, e->a, &a));
        if (!truthy(&a)) { *out = a; return SCB_OK; }
        return eval(R, e->b, out);
    case E_OR:
        SCB_TRY(eval(R, e->a, &a));
        if (truthy(&a)) { *out = a; return SCB_OK; }
        return eval(R, e->b, out);
    case E_COND:
        SCB_TRY(eval(R, e->b, &b));
        if (truthy(&b)) return eval(R, e->a, out);
        if (e->c) return eval(R, e->c, out);
        *out = V_UNDEF("the inline if-expression evaluated to false and no else section was defined");
        return SCB_OK;
    case E_LIST: case E_TUPLE:
        SCB_TRY(mk_list(R, (size_t)e->nargs, e->kind == E_TUPLE, out));
        for (int i = 0; i < e->nargs; i++) SCB_TRY(eval(R, e->args[i], &out->u.l->v[i]));
        return SCB_OK;
    case E_DICT: {
        struct jv d;
        SCB_TRY(mk_dict(R, JT_DICT, &d));
        for (int i = 0; i + 1 < e->nargs; i += 2) {
            SCB_TRY(eval(R, e->args[i], &a));
            SCB_TRY(eval(R, e->args[i + 1], &b));
            if (a.t == JT_LIST && !a.u.l->tuple) return rerr(R, e->line, SCB_E_INVAL, "unhashable type: 'list'");
            if (a.t == JT_DICT || a.t == JT_NS) return rerr(R, e->line, SCB_E_INVAL, "unhashable type: 'dict'");
            SCB_TRY(dict_set(R, d.u.d, a, b));
        }
        *out = d;
        return SCB_OK;
    }
    case E_CMP: {
        SCB_TRY(eval(R, e->args[0], &a));
        int r = 1;
        for (int i = 1; i < e->nargs && r; i++) {
            SCB_TRY(eval(R, e->args[i], &b));
            SCB_TRY(compare(R, e->line, e->ops[i - 1], &a, &b, &r));
            a = b;
        }
        *out = V_BOOL(r);
        return SCB_OK;
    }
    default:
        return rerr(R, e->line, SCB_E_INVAL, "internal: unknown expression kind %d", e->kind);
    }
out:
    return rc;
}

/* ======================================================================================
 * Statements
 * ====================================================================================== */
static int assign_targets(struct rs *R, int line, const char *const *names, int n, const struct jv *v)
{
    if (n == 1) return set_var(R, names[0], *v);
    struct jv *items; size_t cnt;
    int rc = iter_items(R, line, v, &items, &cnt);
    if (rc < 0) return rc;
    if (v->t == JT_UNDEF || cnt != (size_t)n)
        return rerr(R, line, SCB_E_INVAL, "cannot unpack %zu value(s) into %d name(s)", cnt, n);
    for (int i = 0; i < n; i++) if ((rc = set_var(R, names[i], items[i])) < 0) return rc;
    return SCB_OK;
}

static int exec_for(struct rs *R, const struct node *n)
{
    int rc = SCB_OK;
    struct jv it;
    struct jv *items; size_t cnt;
    struct frame *saved = R->fr;
    SCB_TRY(eval(R, n->e, &it));
    SCB_TRY(iter_items(R, n->line, &it, &items, &cnt));
    if (n->filter) {
        struct jv *kept = ar_alloc(&R->ar, (cnt ? cnt : 1) * sizeof *kept);
        size_t k = 0;
        if (!kept) { rc = NOMEM(R); goto out; }
        for (size_t i = 0; i < cnt; i++) {
            struct frame *f = NULL;
            struct jv c;
            SCB_TRY(push_frame(R, saved, &f));
            R->fr = f;
            SCB_TRY(assign_targets(R, n->line, n->targets, n->ntargets, &items[i]));
            SCB_TRY(eval(R, n->filter, &c));
            R->fr = saved;
            if (truthy(&c)) kept[k++] = items[i];
        }
        items = kept; cnt = k;
    }
    for (size_t i = 0; i < cnt; i++) {
        struct frame *f = NULL;
        struct jv loop, cyc;
        SCB_TRY(push_frame(R, saved, &f));
        R->fr = f;
        SCB_TRY(mk_dict(R, JT_DICT, &loop));
        struct jdict *d = loop.u.d;
        SCB_TRY(dict_set_s(R, d, "index", V_INT((long long)i + 1)));
        SCB_TRY(dict_set_s(R, d, "index0", V_INT((long long)i)));
        SCB_TRY(dict_set_s(R, d, "revindex", V_INT((long long)(cnt - i))));
        SCB_TRY(dict_set_s(R, d, "revindex0", V_INT((long long)(cnt - i - 1))));
        SCB_TRY(dict_set_s(R, d, "first", V_BOOL(i == 0)));
        SCB_TRY(dict_set_s(R, d, "last", V_BOOL(i + 1 == cnt)));
        SCB_TRY(dict_set_s(R, d, "length", V_INT((long long)cnt)));
        SCB_TRY(dict_set_s(R, d, "depth", V_INT(1)));
        SCB_TRY(dict_set_s(R, d, "depth0", V_INT(0)));
        SCB_TRY(dict_set_s(R, d, "previtem", i ? items[i - 1] : V_UNDEF("there is no previous item")));
        SCB_TRY(dict_set_s(R, d, "nextitem", i + 1 < cnt ? items[i + 1] : V_UNDEF("there is no next item")));
        struct jv idx = V_INT((long long)i);
        SCB_TRY(mk_func(R, FN_CYCLE, "loop.cycle", &idx, &cyc));
        SCB_TRY(dict_set_s(R, d, "cycle", cyc));
        SCB_TRY(set_var(R, "loop", loop));
        SCB_TRY(assign_targets(R, n->line, n->targets, n->ntargets, &items[i]));
        rc = exec_list(R, &n->body);
        R->fr = saved;
        if (rc < 0) goto out;
        if (rc == CTL_BREAK) { rc = SCB_OK; break; }
        rc = SCB_OK;
    }
    if (!cnt && n->orelse.n) {
        struct frame *f = NULL;
        SCB_TRY(push_frame(R, saved, &f));
        R->fr = f;
        rc = exec_list(R, &n->orelse);
    }
out:
    R->fr = saved;
    return rc;
}

static int exec_node(struct rs *R, const struct node *n)
{
    int rc = SCB_OK;
    struct jv v;
    switch (n->kind) {
    case N_TEXT:
        if (scb_buf_append(R->out, n->text, n->len) < 0) return NOMEM(R);
        return SCB_OK;
    case N_OUT:
        SCB_TRY(eval(R, n->e, &v));
        if (to_str(R, &v, R->out, 0) < 0) return NOMEM(R);
        return SCB_OK;
    case N_IF:
        for (int i = 0; i < n->nconds; i++) {
            SCB_TRY(eval(R, n->conds[i], &v));
            if (truthy(&v)) return exec_list(R, &n->bodies[i]);
        }
        return exec_list(R, &n->bodies[n->nconds]);
    case N_FOR: return exec_for(R, n);
    case N_SET:
        SCB_TRY(eval(R, n->e, &v));
        if (n->attr) {
            struct jv ns;
            if (!lookup(R, n->targets[0], &ns) || ns.t != JT_NS)
                return rerr(R, n->line, SCB_E_INVAL, "cannot assign attribute on non-namespace object '%s'", n->targets[0]);
            if (n->attr[0] == '_') return rerr(R, n->line, SCB_E_INVAL, "chat templates cannot store underscore-prefixed attributes on a namespace");
            return dict_set_s(R, ns.u.d, n->attr, v);
        }
        return assign_targets(R, n->line, n->targets, n->ntargets, &v);
    case N_SETBLOCK: {
        struct scb_buf *saved = R->out, buf = {0};
        R->out = &buf;
        rc = exec_list(R, &n->body);
        R->out = saved;
        if (rc == SCB_OK) rc = mk_str(R, buf.data ? buf.data : "", buf.len, 1, &v);
        scb_buf_fini(&buf);
        if (rc < 0) return rc;
        return set_var(R, n->targets[0], v);
    }
    case N_MACRO: {
        struct jv fn;
        SCB_TRY(mk_func(R, FN_MACRO, n->name, NULL, &fn));
        fn.u.fn->macro = n;
        fn.u.fn->self.t = JT_NS;                       /* carries the defining frame */
        fn.u.fn->self.u.d = (struct jdict *)(void *)R->fr;
        return set_var(R, n->name, fn);
    }
    case N_BREAK: return CTL_BREAK;
    case N_CONTINUE: return CTL_CONTINUE;
    case N_BODY: return exec_list(R, &n->body);
    default: return rerr(R, n->line, SCB_E_INVAL, "internal: unknown node kind %d", n->kind);
    }
out:
    return rc;
}

static int exec_list(struct rs *R, const struct nlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        int rc = exec_node(R, l->v[i]);
        if (rc != SCB_OK) return rc;   /* error or loop control */
    }
    return SCB_OK;
}

int scb_jinja_render(const struct scb_jinja_tmpl *t, const struct cJSON *vars, long long now_unix,
                     char **out, size_t *out_len, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf buf = {0};
    struct rs R;
    memset(&R, 0, sizeof R);
    R.ctx = ctx; R.out = &buf; R.now = now_unix;
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return scb_err(ctx, SCB_E_INVAL, "no template");
    struct frame *builtins = NULL, *user = NULL, *top = NULL;
    SCB_TRY(push_frame(&R, NULL, &builtins));
    R.fr = builtins;
    static const struct { const char *name; int kind; } globals[] = {
        {"range", FN_RANGE}, {"namespace", FN_NAMESPACE}, {"dict", FN_DICT},
        {"raise_exception", FN_RAISE}, {"strftime_now", FN_STRFTIME},
    };
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
        struct jv fn;
        SCB_TRY(mk_func(&R, globals[i].kind, globals[i].name, NULL, &fn));
        SCB_TRY(set_var(&R, globals[i].name, fn));
    }
    SCB_TRY(push_frame(&R, builtins, &user));
    R.fr = user;
    if (vars && cJSON_IsObject(vars))
        for (const cJSON *c = vars->child; c; c = c->next) {
            struct jv v;
            SCB_TRY(from_cjson(&R, c, &v));
            SCB_TRY(set_var(&R, c->string ? c->string : "", v));
        }
    SCB_TRY(push_frame(&R, user, &top));
    R.fr = top;
    rc = exec_list(&R, &t->root);
    if (rc > 0) rc = scb_err(ctx, SCB_E_FORMAT, "'break' or 'continue' outside a for loop");
    if (rc < 0) goto out;
    if (out_len) *out_len = buf.len;
    *out = scb_buf_steal(&buf);
    if (!*out) rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    scb_buf_fini(&buf);
    ar_free(&R.ar);
    return rc;
}
