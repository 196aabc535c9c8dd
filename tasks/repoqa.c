/* repoqa.c — RepoQA scoring as scbench/repo_qa_utils.py does it (see repoqa.h).
 *
 * Function extraction approximates tree-sitter's FUNCTION_QUERY per language:
 *   python      first line `[async] def NAME`; the node runs to the last following line indented
 *               deeper than the def (blank lines and shallower comment lines are skipped over,
 *               triple-quoted strings are followed), as tree-sitter's function_definition does;
 *   go          first top-level `func NAME(` (methods with a receiver are not function_declaration);
 *   rust        first `[pub[(..)]] [const|async|unsafe|extern ".."]* fn NAME` with a body;
 *   typescript  first `[async] function[*] NAME` (an `export` before it is not part of the node);
 *   java        first `[@Annotation|modifier]* [<T>] TYPE NAME(` (annotation lines directly above
 *               are included, as tree-sitter's modifiers are); a body or `;` ends it;
 *   cpp         first `TYPE NAME(...) ... {` outside class bodies (namespace and extern "C"
 *               bodies count as top level) whose declarator is a plain identifier (not `A::f`,
 *               not `*f`/`&f`), as the query's (identifier) declarator demands.
 * The body is the brace-matched block, skipping strings, characters and comments. */
#include "tasks/repoqa.h"

#include <ctype.h>
#include <string.h>

#include "kernels/alloc.h"
#include "tasks/bleu.h"
#include "tasks/pystr.h"
#include "tasks/unicode_tables.h"

static const char *const LANGS[] = {"python", "java", "typescript", "rust", "cpp", "go"};

int scb_repoqa_lang_supported(const char *lang)
{
    if (!lang) return 0;
    for (size_t i = 0; i < sizeof LANGS / sizeof LANGS[0]; i++)
        if (!strcmp(lang, LANGS[i])) return 1;
    return 0;
}

/* ---- code blocks: r"^```(?:\w+)?\s*\n(.*?)(?=^```)```" with DOTALL | MULTILINE ------------- */
static int at_fence(const char *t, size_t n, size_t p)
{
    return (p == 0 || t[p - 1] == '\n') && p + 3 <= n && !memcmp(t + p, "```", 3);
}

int scb_repoqa_code_blocks(const char *text, size_t len,
                           int (*fn)(void *user, const char *block, size_t blen), void *user)
{
    size_t sb, se;
    scb_pystr_strip_utf8(text, len, &sb, &se);
    const char *t = text + sb;
    size_t n = se - sb, pos = 0;
    while (pos < n) {
        size_t p, found_end = 0, cs = 0;
        int ok = 0;
        for (p = pos; p < n; p++) {
            if (!at_fence(t, n, p)) continue;
            size_t q = p + 3;
            while (q < n) {                  /* \w+ (greedy; \s cannot match a word char) */
                uint32_t cp;
                int k = scb_utf8_decode((const unsigned char *)t + q, n - q, &cp);
                if (!scb_uc_is_word(cp)) break;
                q += (size_t)k;
            }
            size_t lastnl = (size_t)-1;
            while (q < n) {                  /* \s*\n: backtrack to the last newline of the run */
                uint32_t cp;
                int k = scb_utf8_decode((const unsigned char *)t + q, n - q, &cp);
                if (!scb_uc_is_space(cp)) break;
                if (cp == '\n') lastnl = q;
                q += (size_t)k;
            }
            if (lastnl == (size_t)-1) continue;
            cs = lastnl + 1;
            for (size_t c = cs; c + 3 <= n; c++) {
                if (at_fence(t, n, c)) { found_end = c; ok = 1; break; }
            }
            if (ok) break;
        }
        if (!ok) break;
        int stop = fn(user, t + cs, found_end - cs);
        if (stop) return stop;
        pos = found_end + 3;
    }
    return 0;
}

/* ---- lexical mask for brace languages: 1 = code byte, 0 = inside string/char/comment ---- */
static int is_ident_start(unsigned char c) { return isalpha(c) || c == '_' || c >= 0x80; }
static int is_ident(unsigned char c) { return isalnum(c) || c == '_' || c >= 0x80; }

static unsigned char *code_mask(const char *s, size_t n, const char *lang)
{
    unsigned char *m = scb_malloc(n + 1);
    if (!m) return NULL;
    int rust = !strcmp(lang, "rust");
    int backtick = !strcmp(lang, "typescript") || !strcmp(lang, "go");
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '/' && i + 1 < n && s[i + 1] == '/') {
            while (i < n && s[i] != '\n') m[i++] = 0;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            m[i++] = 0; m[i++] = 0;
            while (i < n && !(s[i] == '*' && i + 1 < n && s[i + 1] == '/')) m[i++] = 0;
            if (i < n) { m[i++] = 0; m[i++] = 0; }
        } else if (c == '"' || (c == '`' && backtick) || c == '\'') {
            if (c == '\'' && rust) {   /* char literal 'x' / '\n', otherwise a lifetime */
                size_t j = i + 1;
                if (j < n && s[j] == '\\') { j += 2; while (j < n && s[j] != '\'' && j - i < 12) j++; }
                else if (j < n) { uint32_t cp; j += (size_t)scb_utf8_decode((const unsigned char *)s + j, n - j, &cp); }
                if (!(j < n && s[j] == '\'')) { m[i++] = 1; continue; }
            }
            m[i++] = 0;
            while (i < n && s[i] != c) {
                if (s[i] == '\\' && c != '`' && i + 1 < n) m[i++] = 0;
                if (s[i] == '\n' && c != '`' && c != '"') break;   /* unterminated char literal */
                m[i++] = 0;
            }
            if (i < n) m[i++] = 0;
        } else {
            m[i++] = 1;
        }
    }
    return m;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

static size_t word_at(const char *s, size_t n, size_t i, const char *w)
{
    size_t l = strlen(w);
    if (i + l > n || memcmp(s + i, w, l)) return 0;
    if (i + l < n && is_ident((unsigned char)s[i + l])) return 0;
    return l;
}

static size_t ident_at(const char *s, size_t n, size_t i)
{
    if (i >= n || !is_ident_start((unsigned char)s[i])) return 0;
    size_t j = i;
    while (j < n && is_ident((unsigned char)s[j])) j++;
    return j - i;
}

/* Match a balanced pair open..close from s[i] == open over code bytes; returns the index after
 * the closing byte, or 0 if unbalanced. */
static size_t match_pair(const char *s, const unsigned char *m, size_t n, size_t i, char open, char close)
{
    int d = 0;
    for (size_t j = i; j < n; j++) {
        if (!m[j]) continue;
        if (s[j] == open) d++;
        else if (s[j] == close && --d == 0) return j + 1;
    }
    return 0;
}

/* From after the function name: find the body and return the end of the node (after '}'),
 * or for java's body-less methods the ';'. 0 if this is not a definition. */
static size_t body_end(const char *lang, const char *s, const unsigned char *m, size_t n, size_t i)
{
    int depth = 0;
    int java = !strcmp(lang, "java");
    for (size_t j = i; j < n; j++) {
        if (!m[j]) continue;
        char c = s[j];
        if (c == '(' || c == '[') depth++;
        else if (c == ')' || c == ']') depth--;
        else if (depth == 0 && c == ';') return java ? j + 1 : 0;
        else if (depth == 0 && c == '=' && !strcmp(lang, "cpp")) return 0;
        else if (c == '{') {
            size_t k = j;
            while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t' || s[k - 1] == '\n')) k--;
            int type_brace = 0;
            if (!strcmp(lang, "go") && ((k >= 9 && !memcmp(s + k - 9, "interface", 9)) ||
                                        (k >= 6 && !memcmp(s + k - 6, "struct", 6))))
                type_brace = 1;
            if (!strcmp(lang, "typescript") && depth == 0 && k > i &&
                strchr(":|&,<", s[k - 1]))
                type_brace = 1;
            if (depth > 0) type_brace = 1;
            size_t e = match_pair(s, m, n, j, '{', '}');
            if (!e) return 0;
            if (type_brace) { j = e - 1; continue; }
            return e;
        }
    }
    return 0;
}

static const char *const JAVA_MODS[] = {"public", "protected", "private", "static", "final", "abstract",
    "synchronized", "native", "default", "strictfp", "transient", "volatile", NULL};
static const char *const TYPE_KEYWORDS[] = {"return", "new", "throw", "else", "if", "while", "for",
    "switch", "case", "do", "try", "catch", "goto", "delete", "using", "typedef", "operator",
    "co_return", "co_yield", "package", "import", "class", "struct", "enum", "interface", "extends",
    "implements", "namespace", "template", "assert", "yield", "sizeof", NULL};

static int is_kw(const char *s, size_t l, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == l && !memcmp(s, list[i], l)) return 1;
    return 0;
}

/* Try a header at line-content start p. Returns 1 with [*b, *e) on success. */
static int try_header(const char *lang, const char *s, const unsigned char *m, size_t n, size_t p,
                      size_t line_start_prev_annot, size_t *b, size_t *e)
{
    size_t i = p, l;
    if (!strcmp(lang, "go")) {
        if (!(l = word_at(s, n, i, "func"))) return 0;
        i = skip_ws(s, n, i + l);
        if (!(l = ident_at(s, n, i))) return 0;
        i = skip_ws(s, n, i + l);
        if (i >= n || (s[i] != '(' && s[i] != '[')) return 0;
        size_t en = body_end(lang, s, m, n, i);
        if (!en) return 0;
        *b = p; *e = en;
        return 1;
    }
    if (!strcmp(lang, "rust")) {
        if ((l = word_at(s, n, i, "pub"))) {
            i += l;
            if (i < n && s[i] == '(') { size_t k = match_pair(s, m, n, i, '(', ')'); if (!k) return 0; i = k; }
            i = skip_ws(s, n, i);
        }
        for (;;) {
            if ((l = word_at(s, n, i, "const")) || (l = word_at(s, n, i, "async")) ||
                (l = word_at(s, n, i, "unsafe"))) { i = skip_ws(s, n, i + l); continue; }
            if ((l = word_at(s, n, i, "extern"))) {
                i = skip_ws(s, n, i + l);
                if (i < n && s[i] == '"') { i++; while (i < n && s[i] != '"') i++; i = skip_ws(s, n, i + 1); }
                continue;
            }
            break;
        }
        if (!(l = word_at(s, n, i, "fn"))) return 0;
        i = skip_ws(s, n, i + l);
        if (!(l = ident_at(s, n, i))) return 0;
        size_t en = body_end(lang, s, m, n, i + l);
        if (!en) return 0;
        *b = p; *e = en;
        return 1;
    }
    if (!strcmp(lang, "typescript")) {
        if ((l = word_at(s, n, i, "export"))) {
            i = skip_ws(s, n, i + l);
            if ((l = word_at(s, n, i, "default"))) i = skip_ws(s, n, i + l);
        }
        size_t st = i;
        if ((l = word_at(s, n, i, "async"))) i = skip_ws(s, n, i + l);
        if (!(l = word_at(s, n, i, "function"))) {
            if (!(i + 9 <= n && !memcmp(s + i, "function*", 9))) return 0;
            l = 8;
        }
        i = skip_ws(s, n, i + l);
        if (i < n && s[i] == '*') i = skip_ws(s, n, i + 1);
        if (!(l = ident_at(s, n, i))) return 0;
        i = skip_ws(s, n, i + l);
        if (i >= n || (s[i] != '(' && s[i] != '<')) return 0;
        size_t en = body_end(lang, s, m, n, i);
        if (!en) return 0;
        *b = st; *e = en;
        return 1;
    }
    if (!strcmp(lang, "java")) {
        for (;;) {
            if (i < n && s[i] == '@' && (l = ident_at(s, n, i + 1))) {
                i += 1 + l;
                while (i < n && s[i] == '.' && (l = ident_at(s, n, i + 1))) i += 1 + l;
                if (i < n && s[i] == '(') { size_t k = match_pair(s, m, n, i, '(', ')'); if (!k) return 0; i = k; }
                i = skip_ws(s, n, i);
                continue;
            }
            int mod = 0;
            for (int k = 0; JAVA_MODS[k]; k++)
                if ((l = word_at(s, n, i, JAVA_MODS[k]))) { i = skip_ws(s, n, i + l); mod = 1; break; }
            if (!mod) break;
        }
        if (i < n && s[i] == '<') { size_t k = match_pair(s, m, n, i, '<', '>'); if (!k) return 0; i = skip_ws(s, n, k); }
        size_t ts = i;
        if (!(l = ident_at(s, n, i))) return 0;
        if (is_kw(s + ts, l, TYPE_KEYWORDS)) return 0;
        i += l;
        for (;;) {
            if (i < n && s[i] == '.' && (l = ident_at(s, n, i + 1))) { i += 1 + l; continue; }
            if (i < n && s[i] == '<') { size_t k = match_pair(s, m, n, i, '<', '>'); if (!k) return 0; i = k; continue; }
            if (i + 1 < n && s[i] == '[' && s[i + 1] == ']') { i += 2; continue; }
            break;
        }
        if (i >= n || (s[i] != ' ' && s[i] != '\t')) return 0;
        i = skip_ws(s, n, i);
        if (!(l = ident_at(s, n, i))) return 0;
        i = skip_ws(s, n, i + l);
        if (i >= n || s[i] != '(') return 0;
        size_t en = body_end(lang, s, m, n, i);
        if (!en) return 0;
        *b = line_start_prev_annot < p ? line_start_prev_annot : p;
        *e = en;
        return 1;
    }
    if (!strcmp(lang, "cpp")) {
        /* TYPE ... NAME ( : scan to the first '(' on this line */
        size_t j = i;
        while (j < n && s[j] != '(' && s[j] != '\n' && s[j] != ';' && s[j] != '=' && s[j] != '{') j++;
        if (j >= n || s[j] != '(') return 0;
        size_t k = j;
        while (k > i && (s[k - 1] == ' ' || s[k - 1] == '\t')) k--;
        size_t ne = k;
        while (k > i && is_ident((unsigned char)s[k - 1])) k--;
        if (k == ne || !is_ident_start((unsigned char)s[k])) return 0;
        if (k == i) return 0;   /* no type before the name */
        if (s[k - 1] != ' ' && s[k - 1] != '\t') return 0;   /* `*f`, `&f`, `A::f`, `a.f` */
        size_t t = k;
        while (t > i && (s[t - 1] == ' ' || s[t - 1] == '\t')) t--;
        unsigned char last = (unsigned char)s[t - 1];
        if (!(is_ident(last) || last == '>')) return 0;   /* type ends with `*` or `&` */
        l = ident_at(s, n, i);
        if (l && is_kw(s + i, l, TYPE_KEYWORDS)) return 0;
        if (!l && s[i] != ':') return 0;
        size_t en = body_end(lang, s, m, n, j);
        if (!en) return 0;
        *b = p; *e = en;
        return 1;
    }
    return 0;
}

static int find_python(const char *s, size_t n, size_t *b, size_t *e)
{
    size_t ls = 0;
    while (ls < n) {
        size_t le = ls;
        while (le < n && s[le] != '\n') le++;
        size_t cs = ls;
        while (cs < le && (s[cs] == ' ' || s[cs] == '\t')) cs++;
        size_t ind = cs - ls, i = cs, l;
        if ((l = word_at(s, n, i, "async"))) { i += l; while (i < le && (s[i] == ' ' || s[i] == '\t')) i++; }
        if ((l = word_at(s, n, i, "def")) && i + l < le && (s[i + l] == ' ' || s[i + l] == '\t')) {
            i += l;
            while (i < le && (s[i] == ' ' || s[i] == '\t')) i++;
            size_t il = ident_at(s, n, i);
            size_t k = i + il;
            while (k < le && (s[k] == ' ' || s[k] == '\t')) k++;
            if (il && k < le && s[k] == '(') {
                /* header: to the ':' at bracket depth 0 */
                int d = 0;
                size_t j = k, colon = 0;
                char q = 0;
                for (; j < n; j++) {
                    char c = s[j];
                    if (q) { if (c == '\\') j++; else if (c == q) q = 0; continue; }
                    if (c == '"' || c == '\'') q = c;
                    else if (c == '(' || c == '[' || c == '{') d++;
                    else if (c == ')' || c == ']' || c == '}') d--;
                    else if (c == ':' && d == 0) { colon = j; break; }
                }
                if (colon) {
                    size_t he = colon;
                    while (he < n && s[he] != '\n') he++;
                    size_t r = colon + 1;
                    while (r < he && (s[r] == ' ' || s[r] == '\t' || s[r] == '\r')) r++;
                    size_t end = he;
                    while (end > colon && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r')) end--;
                    if (r < he && s[r] != '#') { *b = cs; *e = end; return 1; }   /* one-liner */
                    size_t p = he + 1;
                    int triple = 0;
                    while (p < n) {
                        size_t qe = p;
                        while (qe < n && s[qe] != '\n') qe++;
                        size_t qc = p;
                        while (qc < qe && (s[qc] == ' ' || s[qc] == '\t' || s[qc] == '\r')) qc++;
                        int blank = qc == qe;
                        if (!triple && !blank && qc - p <= ind) {
                            if (s[qc] == '#') { p = qe + 1; continue; }
                            break;
                        }
                        if (!blank || triple) {
                            if (!blank) {
                                end = qe;
                                while (end > qc && (s[end - 1] == ' ' || s[end - 1] == '\t' || s[end - 1] == '\r')) end--;
                            }
                            for (size_t x = qc; x + 2 < qe + 1 && x + 3 <= n; x++)
                                if ((s[x] == '"' || s[x] == '\'') && s[x + 1] == s[x] && s[x + 2] == s[x]) { triple = !triple; x += 2; }
                        }
                        p = qe + 1;
                    }
                    *b = cs; *e = end;
                    return 1;
                }
            }
        }
        ls = le + 1;
    }
    return 0;
}

int scb_repoqa_find_function(const char *lang, const char *code, size_t len, size_t *b, size_t *e)
{
    if (!strcmp(lang, "python")) return find_python(code, len, b, e);
    unsigned char *m = code_mask(code, len, lang);
    if (!m) return 0;
    int found = 0, depth = 0, top_only = !strcmp(lang, "go") || !strcmp(lang, "cpp");
    size_t annot = (size_t)-1;   /* start of the run of annotation lines directly above (java) */
    unsigned char kind[256];     /* per open brace: 1 = transparent (C++ namespace / extern) */
    size_t nest = 0;
    size_t ls = 0;
    while (ls < len && !found) {
        size_t le = ls;
        while (le < len && code[le] != '\n') le++;
        size_t cs = ls;
        while (cs < le && (code[cs] == ' ' || code[cs] == '\t')) cs++;
        if (cs < le && m[cs] && (!top_only || depth == 0))
            found = try_header(lang, code, m, len, cs, annot, b, e);
        if (!found) {
            int annot_line = cs < le && code[cs] == '@';
            if (annot_line) { if (annot == (size_t)-1) annot = cs; }
            else if (cs < le) annot = (size_t)-1;
            for (size_t j = ls; j < le; j++) {
                if (!m[j]) continue;
                if (code[j] == '{') {
                    /* C++ namespace and extern "C" bodies hold top-level functions: not counted */
                    int transparent = 0;
                    if (!strcmp(lang, "cpp")) {
                        size_t h = j;
                        while (h > 0 && !(m[h - 1] && (code[h - 1] == ';' || code[h - 1] == '{' || code[h - 1] == '}'))) h--;
                        while (h < j && (code[h] == ' ' || code[h] == '\t' || code[h] == '\n')) h++;
                        transparent = word_at(code, len, h, "namespace") || word_at(code, len, h, "extern");
                    }
                    if (nest < sizeof kind) kind[nest] = (unsigned char)transparent;
                    nest++;
                    if (!transparent) depth++;
                } else if (code[j] == '}') {
                    if (nest > 0) nest--;
                    if (!(nest < sizeof kind && kind[nest])) depth--;
                }
            }
        }
        ls = le + 1;
    }
    scb_free(m);
    return found;
}

/* ---- sanitize and evaluate ------------------------------------------------------------- */
struct san_state {
    const char *lang;
    const char *first;
    size_t      first_len;
    int         have_first;
    const char *fn;
    size_t      fn_len;
    int         have_fn;
};

static int san_block(void *user, const char *block, size_t blen)
{
    struct san_state *st = user;
    if (!st->have_first) { st->first = block; st->first_len = blen; st->have_first = 1; }
    size_t b, e;
    if (scb_repoqa_find_function(st->lang, block, blen, &b, &e)) {
        st->fn = block + b;
        st->fn_len = e - b;
        st->have_fn = 1;
        return 1;
    }
    return 0;
}

int scb_repoqa_sanitize(const char *prediction, const char *lang, struct scb_buf *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (!scb_repoqa_lang_supported(lang))
        return scb_err(ctx, SCB_E_INVAL, "repoqa: unsupported language '%s' (python, java, typescript, rust, cpp, go)",
                       lang ? lang : "(null)");
    struct san_state st = {.lang = lang};
    size_t len = strlen(prediction);
    scb_repoqa_code_blocks(prediction, len, san_block, &st);
    if (st.have_fn) SCB_TRY(scb_buf_append(out, st.fn, st.fn_len));
    else if (st.have_first) SCB_TRY(scb_buf_append(out, st.first, st.first_len));
    else {
        size_t b, e;
        scb_pystr_strip_utf8(prediction, len, &b, &e);
        SCB_TRY(scb_buf_append(out, prediction + b, e - b));
    }
    if (!out->data) SCB_TRY(scb_buf_append(out, "", 0));
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, rc, "repoqa: out of memory");
    return rc;
}

int scb_repoqa_evaluate(const char *prediction, const char *lang, const char *func_name,
                        const struct scb_repoqa_needle *needles, size_t n_needles, double threshold,
                        int *correct, long *best, double *best_sim, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf san = {0};
    struct scb_tokens ct = {0}, nt = {0};
    *correct = 0;
    *best = -1;
    *best_sim = 0.0;
    SCB_TRY(scb_repoqa_sanitize(prediction, lang, &san, ctx));
    if (scb_bleu_split_ws(san.data, san.len, &ct) < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "repoqa: out of memory"); goto out; }
    for (size_t i = 0; i < n_needles; i++) {
        double sim;
        nt.n = 0;
        const char *code = needles[i].code ? needles[i].code : "";
        if (scb_bleu_split_ws(code, strlen(code), &nt) < 0) { rc = scb_err(ctx, SCB_E_NOMEM, "repoqa: out of memory"); goto out; }
        SCB_TRY(scb_bleu_sentence(&nt, &ct, &sim, ctx));
        if (sim > *best_sim) { *best_sim = sim; *best = (long)i; }
    }
    if (*best >= 0 && func_name && needles[*best].name && !strcmp(needles[*best].name, func_name) &&
        *best_sim >= threshold)
        *correct = 1;
out:
    scb_buf_fini(&san);
    scb_tokens_fini(&ct);
    scb_tokens_fini(&nt);
    return rc;
}
