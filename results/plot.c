/* plot.c — figure data (.dat), gnuplot scripts (.gp) and their rendering (see plot.h). Each
 * script draws its figure twice: PNG (pngcairo, or png where cairo is missing) and SVG. */
#include "results/plot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"

void scb_plot_opts_default(struct scb_plot_opts *o)
{
    memset(o, 0, sizeof *o);
    scb_boot_opts_default(&o->boot);
}

int scb_plot_gp_string(struct scb_buf *b, const char *s)
{
    int rc = scb_buf_putc(b, '\'');
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p);
    for (size_t i = 0; i < n && rc == SCB_OK;) {
        uint32_t cp;
        int k = scb_utf8_decode(p + i, n - i, &cp);
        if (cp == 0xFFFD && !(n - i >= 3 && p[i] == 0xEF && p[i + 1] == 0xBF && p[i + 2] == 0xBD)) rc = scb_buf_putc(b, '?');
        else if (cp < 0x20 || cp == 0x7F) rc = scb_buf_putc(b, ' ');
        else if (cp == '\'') rc = scb_buf_puts(b, "''");
        else rc = scb_buf_append(b, p + i, (size_t)k);
        i += (size_t)k;
    }
    if (rc == SCB_OK) rc = scb_buf_putc(b, '\'');
    return rc;
}

int scb_plot_find_gnuplot(const char *prog)
{
    if (!prog || !*prog) return 0;
    if (strchr(prog, '/')) return access(prog, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t n = e ? (size_t)(e - path) : strlen(path);
        char full[4096];
        if (n > 0 && n + strlen(prog) + 2 < sizeof full) {
            memcpy(full, path, n);
            full[n] = '/';
            strcpy(full + n + 1, prog);
            struct stat sb;
            if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode) && access(full, X_OK) == 0) return 1;
        }
        if (!e) break;
        path = e + 1;
    }
    return 0;
}

/* ---- budgets -------------------------------------------------------------------------------- */
static double json_budget(const cJSON *o)
{
    /* Search an options object (or anything below it) for the budget keys in priority order. */
    static const char *const keys[] = {"budget", "token_budget", "top_k"};
    if (!o) return 0;
    if (cJSON_IsObject(o)) {
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            if (cJSON_IsNumber(v) && v->valuedouble > 0) return v->valuedouble;
        }
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "n_init"), *b = cJSON_GetObjectItemCaseSensitive(o, "n_local");
        if (cJSON_IsNumber(a) && cJSON_IsNumber(b) && a->valuedouble + b->valuedouble > 0) return a->valuedouble + b->valuedouble;
    }
    /* children: the KV axis first ("kv"), then anything else */
    const cJSON *kv = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "kv") : NULL;
    double x = json_budget(kv);
    if (x > 0) return x;
    for (const cJSON *c = o->child; c; c = c->next) {
        if (c == kv || !(cJSON_IsObject(c) || cJSON_IsArray(c))) continue;
        if ((x = json_budget(c)) > 0) return x;
    }
    return 0;
}

int scb_plot_json_budget(const char *method_json, double *budget)
{
    cJSON *j = cJSON_Parse(method_json ? method_json : "");
    *budget = j ? json_budget(j) : 0;
    cJSON_Delete(j);
    return j ? SCB_OK : SCB_E_FORMAT;
}

static void spec_family(const char *spec, char *family, size_t n)
{
    size_t k = 0;
    int skip = 0;
    for (const char *s = spec; *s && k + 1 < n; s++) {
        if (*s == ':') skip = 1;
        else if (*s == '+') { skip = 0; family[k++] = '+'; }
        else if (!skip) family[k++] = *s;
    }
    family[k] = 0;
}

int scb_plot_spec_budget(const char *config_json, const char *spec, char *family, size_t family_n, double *budget)
{
    *budget = 0;
    spec_family(spec, family, family_n);
    if (config_json) {
        cJSON *cfg = cJSON_Parse(config_json);
        const cJSON *ms = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "methods") : NULL;
        for (const cJSON *m = ms ? ms->child : NULL; m && *budget == 0; m = m->next) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(m, "spec");
            if (cJSON_IsString(sp) && !strcmp(sp->valuestring, spec)) *budget = json_budget(m);
        }
        cJSON_Delete(cfg);
        if (*budget > 0) return SCB_OK;
    }
    /* the spec's own options: a+b:k=v,k=v */
    double n_init = -1, n_local = -1, top_k = 0;
    const char *s = spec;
    while (*s) {
        const char *c = strchr(s, ':'), *plus = strchr(s, '+');
        if (!c || (plus && plus < c)) { if (!plus) break; s = plus + 1; continue; }
        const char *e = plus ? plus : s + strlen(s);
        const char *p = c + 1;
        while (p < e) {
            const char *eq = memchr(p, '=', (size_t)(e - p));
            const char *comma = memchr(p, ',', (size_t)(e - p));
            if (!comma) comma = e;
            if (eq && eq < comma) {
                size_t kl = (size_t)(eq - p);
                char *end;
                double v = strtod(eq + 1, &end);
                if (end == comma) {
                    if ((kl == 6 && !strncmp(p, "budget", 6)) || (kl == 12 && !strncmp(p, "token_budget", 12))) *budget = v;
                    else if (kl == 5 && !strncmp(p, "top_k", 5)) top_k = v;
                    else if (kl == 6 && !strncmp(p, "n_init", 6)) n_init = v;
                    else if (kl == 7 && !strncmp(p, "n_local", 7)) n_local = v;
                }
            }
            p = comma + 1;
        }
        s = e;
        if (*s == '+') s++;
    }
    if (*budget <= 0 && top_k > 0) *budget = top_k;
    if (*budget <= 0 && n_init >= 0 && n_local >= 0) *budget = n_init + n_local;
    if (*budget < 0) *budget = 0;
    return SCB_OK;
}

/* ---- script helpers ------------------------------------------------------------------------- */
struct fig {
    const char *name;      /* file stem, fixed by this code */
    struct scb_buf dat;    /* numbers only */
    struct scb_buf body;   /* gnuplot commands drawing the figure */
    int w, h;
};

static int gp_title(struct scb_buf *b, const char *cmd, const char *text)
{
    int rc = scb_buf_printf(b, "%s ", cmd);
    if (rc == SCB_OK) rc = scb_plot_gp_string(b, text);
    if (rc == SCB_OK) rc = scb_buf_putc(b, '\n');
    return rc;
}

static int write_file(const char *dir, const char *name, const char *ext, const struct scb_buf *b, FILE *log,
                      struct scb_ctx *ctx)
{
    char fname[256];
    snprintf(fname, sizeof fname, "%s.%s", name, ext);
    char *path = scb_path_join(dir, fname);
    if (!path) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    int rc = scb_file_write(path, b->data ? b->data : "", b->len, ctx);
    if (rc == SCB_OK && log) fprintf(log, "%s\n", path);
    scb_free(path);
    return rc;
}

static int run_gnuplot(const char *prog, const char *dir, const char *script, struct scb_ctx *ctx)
{
    pid_t pid = fork();
    if (pid < 0) return scb_err(ctx, SCB_E_IO, "cannot start %s: %s", prog, strerror(errno));
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(126);
        execlp(prog, prog, script, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return scb_err(ctx, SCB_E_IO, "waiting for %s: %s", prog, strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return scb_err(ctx, SCB_E_IO, "%s/%s: gnuplot failed (%s %d)", dir, script,
                       WIFEXITED(st) ? "exit status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    return SCB_OK;
}

static int emit_fig(struct fig *f, const struct scb_plot_opts *o, struct scb_plot_result *res, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf gp = {0};
    const char *name = f->name;
    SCB_TRY(scb_buf_printf(&gp,
        "# %s.gp — written by scbench plot; data in %s.dat. Render with: gnuplot %s.gp\n"
        "set encoding utf8\n"
        "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
        "  set terminal pngcairo size %d,%d font 'sans,10' noenhanced\n"
        "} else {\n"
        "  set terminal png size %d,%d noenhanced\n"
        "}\n"
        "set output '%s.png'\n", name, name, name, f->w, f->h, f->w, f->h, name));
    SCB_TRY(scb_buf_puts(&gp, f->body.data ? f->body.data : ""));
    SCB_TRY(scb_buf_printf(&gp, "unset output\nset terminal svg size %d,%d font 'sans,10' noenhanced background '#ffffff'\n"
                                "set output '%s.svg'\n", f->w, f->h, name));
    SCB_TRY(scb_buf_puts(&gp, f->body.data ? f->body.data : ""));
    SCB_TRY(scb_buf_puts(&gp, "unset output\n"));
    SCB_TRY(write_file(o->out_dir, name, "dat", &f->dat, o->log, ctx));
    SCB_TRY(write_file(o->out_dir, name, "gp", &gp, o->log, ctx));
    res->n_scripts++;
    if (res->gnuplot_found && !o->no_render) {
        char script[256];
        snprintf(script, sizeof script, "%s.gp", name);
        SCB_TRY(run_gnuplot(o->gnuplot ? o->gnuplot : "gnuplot", o->out_dir, script, ctx));
        res->n_rendered++;
        if (o->log) fprintf(o->log, "%s/%s.png\n%s/%s.svg\n", o->out_dir, name, o->out_dir, name);
    }
out:
    scb_buf_fini(&gp);
    return rc;
}

static void fig_reset(struct fig *f, const char *name, int w, int h)
{
    scb_buf_fini(&f->dat);
    scb_buf_fini(&f->body);
    f->name = name;
    f->w = w;
    f->h = h;
}

static void skip(const struct scb_plot_opts *o, const char *name, const char *why)
{
    if (o->log) fprintf(o->log, "skipped %s: %s\n", name, why);
}

static int dat_num(struct scb_buf *b, double v)
{
    return isfinite(v) ? scb_buf_printf(b, " %.6g", v) : scb_buf_puts(b, " NaN");
}

/* Common look: grid, key outside on the right (never over the data), borders. */
static const char common_style[] =
    "set grid ytics lc rgb '#dddddd'\n"
    "set key outside right top vertical Left reverse noautotitle box lc rgb '#bbbbbb'\n"
    "set border 3\nset xtics nomirror\nset ytics nomirror\n"
    "set datafile missing 'NaN'\n"
    /* 12 distinct colours (Tableau 10 + 2) so that up to 12 methods never share one */
    "set linetype 1 lc rgb '#4e79a7'\nset linetype 2 lc rgb '#f28e2b'\nset linetype 3 lc rgb '#e15759'\n"
    "set linetype 4 lc rgb '#76b7b2'\nset linetype 5 lc rgb '#59a14f'\nset linetype 6 lc rgb '#edc948'\n"
    "set linetype 7 lc rgb '#b07aa1'\nset linetype 8 lc rgb '#ff9da7'\nset linetype 9 lc rgb '#9c755f'\n"
    "set linetype 10 lc rgb '#bab0ac'\nset linetype 11 lc rgb '#000000'\nset linetype 12 lc rgb '#8cd17d'\n"
    "set linetype cycle 12\n";

/* ---- the figures ------------------------------------------------------------------------------ */
struct plot_state {
    const struct scb_rep_data *d;
    struct scb_ci **ci;    /* (n_groups) intervals per group */
};

static int fig_by_turn(struct plot_state *ps, struct fig *f)
{
    int rc = SCB_OK, idx = 0, maxt = 0;
    const struct scb_rep_data *d = ps->d;
    struct scb_buf pl = {0};
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(gp_title(&f->body, "set title", "Accuracy by turn, multi-turn mode (mean over tasks, 95% bootstrap CI)"));
    SCB_TRY(scb_buf_puts(&f->body, "set xlabel 'Turn (follow-up query index)'\nset ylabel 'Accuracy (%)'\n"
                                   "set yrange [0:105]\n"));
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        if (g->mode != SCB_REP_MULTI_TURN) continue;
        if (g->max_turn > maxt) maxt = g->max_turn;
        SCB_TRY(scb_buf_printf(&f->dat, "# block %d: turn score ci_lo ci_hi\n", idx));
        for (int t = 0; t < g->max_turn; t++) {
            const struct scb_ci *c = &ps->ci[i][scb_rep_i_turn(g, t)];
            SCB_TRY(scb_buf_printf(&f->dat, "%d", t + 1));
            SCB_TRY(dat_num(&f->dat, c->est)); SCB_TRY(dat_num(&f->dat, c->lo)); SCB_TRY(dat_num(&f->dat, c->hi));
            SCB_TRY(scb_buf_putc(&f->dat, '\n'));
        }
        SCB_TRY(scb_buf_puts(&f->dat, "\n\n"));
        SCB_TRY(scb_buf_printf(&pl, "%s'%s.dat' index %d using 1:2:3:4 with yerrorlines lw 2 pt %d ps 1.2 title ",
                               idx ? ", \\\n     " : "plot ", f->name, idx, 5 + 2 * (idx % 4)));
        SCB_TRY(scb_plot_gp_string(&pl, g->label));
        idx++;
    }
    if (!idx) { rc = 1; goto out; }
    SCB_TRY(scb_buf_printf(&f->body, "set xrange [0.7:%f]\nset xtics 1\n", maxt + 0.3));
    SCB_TRY(scb_buf_puts(&f->body, pl.data));
    SCB_TRY(scb_buf_putc(&f->body, '\n'));
out:
    scb_buf_fini(&pl);
    return rc;
}

struct bpoint { char family[128]; double budget, est, lo, hi; };
static int cmp_bpoint(const void *a, const void *b)
{
    const struct bpoint *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    return c ? c : (x->budget > y->budget) - (x->budget < y->budget);
}

static int fig_budget(struct plot_state *ps, const struct scb_plot_opts *o, struct fig *f)
{
    int rc = SCB_OK;
    const struct scb_rep_data *d = ps->d;
    int mode = SCB_REP_MULTI_REQUEST, have = 0;
    for (size_t i = 0; i < d->n_groups; i++) if (d->groups[i].mode == mode) have = 1;
    if (!have) mode = SCB_REP_MULTI_TURN;
    struct bpoint *pts = scb_calloc(d->n_groups ? d->n_groups : 1, sizeof *pts);
    struct scb_buf pl = {0};
    size_t np = 0;
    double dense = NAN, bmin = INFINITY, bmax = 0;
    if (!pts) { rc = scb_err(NULL, SCB_E_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        if (g->mode != mode) continue;
        const struct scb_ci *c = &ps->ci[i][scb_rep_i_avg(g)];
        if (!strcmp(g->method, "dense")) { if (!isfinite(dense)) dense = c->est; continue; }
        const char *cfg = NULL;
        for (size_t r = 0; r < d->n_runs; r++) if (d->runs[r].id == g->run) cfg = d->runs[r].config;
        struct bpoint *p = &pts[np];
        SCB_TRY(scb_plot_spec_budget(cfg, g->method, p->family, sizeof p->family, &p->budget));
        if (p->budget <= 0 && o->budget_of) SCB_TRY(o->budget_of(o->budget_ud, g->method, p->family, sizeof p->family, &p->budget));
        if (!(p->budget > 0) || !isfinite(c->est)) continue;
        p->est = c->est; p->lo = c->lo; p->hi = c->hi;
        if (p->budget < bmin) bmin = p->budget;
        if (p->budget > bmax) bmax = p->budget;
        np++;
    }
    if (!np) { rc = 1; goto out; }
    qsort(pts, np, sizeof *pts, cmp_bpoint);
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(gp_title(&f->body, "set title", mode == SCB_REP_MULTI_REQUEST
        ? "Accuracy against token budget, multi-request mode (Avg over categories, 95% CI)"
        : "Accuracy against token budget, multi-turn mode (Avg over categories, 95% CI)"));
    SCB_TRY(scb_buf_puts(&f->body, "set xlabel 'Token budget (KV entries kept or read per head, log scale)'\n"
                                   "set ylabel 'Accuracy (%)'\nset logscale x 2\nset yrange [0:105]\n"));
    SCB_TRY(scb_buf_printf(&f->body, "set xrange [%g:%g]\n", bmin / 1.5, bmax * 1.5));
    int idx = 0;
    for (size_t i = 0; i < np;) {
        size_t j = i;
        SCB_TRY(scb_buf_printf(&f->dat, "# block %d: budget score ci_lo ci_hi\n", idx));
        while (j < np && !strcmp(pts[j].family, pts[i].family)) {
            SCB_TRY(scb_buf_printf(&f->dat, "%.6g", pts[j].budget));
            SCB_TRY(dat_num(&f->dat, pts[j].est)); SCB_TRY(dat_num(&f->dat, pts[j].lo)); SCB_TRY(dat_num(&f->dat, pts[j].hi));
            SCB_TRY(scb_buf_putc(&f->dat, '\n'));
            j++;
        }
        SCB_TRY(scb_buf_puts(&f->dat, "\n\n"));
        SCB_TRY(scb_buf_printf(&pl, "%s'%s.dat' index %d using 1:2:3:4 with yerrorlines lw 2 pt %d ps 1.2 title ",
                               idx ? ", \\\n     " : "plot ", f->name, idx, 5 + 2 * (idx % 4)));
        SCB_TRY(scb_plot_gp_string(&pl, pts[i].family));
        idx++;
        i = j;
    }
    if (isfinite(dense)) SCB_TRY(scb_buf_printf(&pl, ", \\\n     %.6g with lines dt 2 lw 2 lc rgb '#000000' title 'dense (full attention)'", dense));
    SCB_TRY(scb_buf_puts(&f->body, pl.data));
    SCB_TRY(scb_buf_putc(&f->body, '\n'));
out:
    scb_free(pts);
    scb_buf_fini(&pl);
    return rc;
}

static const char *const cat_tick[SCB_REP_N_CATS] = {"String Retr.", "Semantic Retr.", "Global Info.",
                                                          "Multi-tasking"};

static int fig_categories(struct plot_state *ps, int mode, struct fig *f)
{
    int rc = SCB_OK;
    const struct scb_rep_data *d = ps->d;
    size_t gi[64], ng = 0;
    for (size_t i = 0; i < d->n_groups && ng < 64; i++) if (d->groups[i].mode == mode) gi[ng++] = i;
    if (!ng) return 1;
    SCB_TRY(scb_buf_puts(&f->dat, "# category, then per method: score ci_lo ci_hi\n"));
    for (int c = 0; c < SCB_REP_N_CATS; c++) {
        SCB_TRY(scb_buf_printf(&f->dat, "%d", c));
        for (size_t k = 0; k < ng; k++) {
            const struct scb_rep_group *g = &d->groups[gi[k]];
            const struct scb_ci *x = &ps->ci[gi[k]][scb_rep_i_cat(g, c)];
            SCB_TRY(dat_num(&f->dat, x->est));
            SCB_TRY(dat_num(&f->dat, isfinite(x->lo) ? x->lo : x->est));
            SCB_TRY(dat_num(&f->dat, isfinite(x->hi) ? x->hi : x->est));
        }
        SCB_TRY(scb_buf_putc(&f->dat, '\n'));
    }
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(gp_title(&f->body, "set title", mode == SCB_REP_MULTI_REQUEST
        ? "Accuracy by category, multi-request mode (95% bootstrap CI)"
        : "Accuracy by category, multi-turn mode (95% bootstrap CI)"));
    SCB_TRY(scb_buf_puts(&f->body, "set ylabel 'Accuracy (%)'\nset yrange [0:105]\nset xlabel 'Capability (SCBench category)'\n"
                                   "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
                                   "set style fill solid 0.85 border -1\nset boxwidth 0.9\nset bars front\n"
                                   "set xtics ("));
    for (int c = 0; c < SCB_REP_N_CATS; c++) {
        SCB_TRY(scb_plot_gp_string(&f->body, cat_tick[c]));
        SCB_TRY(scb_buf_printf(&f->body, " %d%s", c, c + 1 < SCB_REP_N_CATS ? ", " : ")\n"));
    }
    for (size_t k = 0; k < ng; k++) {
        SCB_TRY(scb_buf_printf(&f->body, "%s'%s.dat' using %zu:%zu:%zu title ", k ? ", \\\n     " : "plot ", f->name,
                               2 + 3 * k, 3 + 3 * k, 4 + 3 * k));
        SCB_TRY(scb_plot_gp_string(&f->body, d->groups[gi[k]].label));
    }
    SCB_TRY(scb_buf_putc(&f->body, '\n'));
out:
    return rc;
}

static int fig_kv(struct plot_state *ps, struct fig *f)
{
    int rc = SCB_OK, idx = 0;
    const struct scb_rep_data *d = ps->d;
    double xmin = INFINITY, xmax = 0;
    struct scb_buf pl = {0};
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        struct scb_rep_cost c;
        scb_rep_cost(g, NULL, -1, &c);
        double kv = isfinite(c.kv_bytes_physical) ? c.kv_bytes_physical : c.kv_bytes_logical;
        const struct scb_ci *a = &ps->ci[i][scb_rep_i_avg(g)];
        if (!(kv > 0) || !isfinite(a->est)) continue;
        double mib = kv / (1024.0 * 1024.0);
        if (mib < xmin) xmin = mib;
        if (mib > xmax) xmax = mib;
        SCB_TRY(scb_buf_printf(&f->dat, "# block %d: kv_mib score ci_lo ci_hi\n%.6g", idx, mib));
        SCB_TRY(dat_num(&f->dat, a->est));
        SCB_TRY(dat_num(&f->dat, isfinite(a->lo) ? a->lo : a->est));
        SCB_TRY(dat_num(&f->dat, isfinite(a->hi) ? a->hi : a->est));
        SCB_TRY(scb_buf_puts(&f->dat, "\n\n\n"));
        struct scb_buf t = {0};
        SCB_TRY(scb_buf_printf(&t, "%s (%s)", g->label, g->mode == SCB_REP_MULTI_REQUEST ? "multi-request" : "multi-turn"));
        rc = scb_buf_printf(&pl, "%s'%s.dat' index %d using 1:2:3:4 with yerrorbars lw 1.5 pt %d ps 1.6 lc %d title ",
                            idx ? ", \\\n     " : "plot ", f->name, idx,
                            g->mode == SCB_REP_MULTI_REQUEST ? 9 : 7, 1 + (int)(i / 2) % 8);
        if (rc == SCB_OK) rc = scb_plot_gp_string(&pl, t.data);
        scb_buf_fini(&t);
        if (rc < 0) goto out;
        idx++;
    }
    if (!idx) { rc = 1; goto out; }
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(gp_title(&f->body, "set title", "Accuracy against KV cache kept (Avg over categories, 95% CI)"));
    SCB_TRY(scb_buf_puts(&f->body, "set xlabel 'KV cache kept per turn (MiB, physical, log scale)'\n"
                                   "set ylabel 'Accuracy (%)'\nset yrange [0:105]\nset logscale x 2\n"));
    SCB_TRY(scb_buf_printf(&f->body, "set xrange [%g:%g]\n", xmin / 1.6, xmax * 1.6));
    SCB_TRY(scb_buf_puts(&f->body, pl.data));
    SCB_TRY(scb_buf_putc(&f->body, '\n'));
out:
    scb_buf_fini(&pl);
    return rc;
}

/* Per-session time of one group over the sessions of tasks whose context bucket is b. */
struct lat { double pre0, pre1, dec; int n; };

static int ctx_bucket(double tokens)
{
    if (!(tokens > 0)) return -1;
    return (int)lround(log2(tokens));
}

static void bucket_name(int b, char *s, size_t n)
{
    double t = ldexp(1.0, b);
    if (t >= 1024 * 1024) snprintf(s, n, "context ~%gM tokens", t / (1024 * 1024));
    else if (t >= 1024) snprintf(s, n, "context ~%gK tokens", t / 1024);
    else snprintf(s, n, "context ~%g tokens", t);
}

static struct lat group_latency(const struct scb_rep_group *g, int bucket)
{
    struct lat L = {0, 0, 0, 0};
    for (size_t ti = 0; ti < g->n_tasks; ti++) {
        const struct scb_rep_task *t = &g->tasks[ti];
        for (size_t s = 0; s < t->n_sessions; s++) {
            double p0 = NAN, p1 = 0, dc = 0;
            int any = 0;
            for (size_t k = t->sess_off[s]; k < t->sess_off[s + 1]; k++) {
                const struct scb_rep_turn *r = &g->turns[k];
                if (r->turn == 0) { p0 = r->prefill_ms; if (ctx_bucket(r->prompt_tokens) != bucket) { any = -1; break; } }
                else if (isfinite(r->prefill_ms)) p1 += r->prefill_ms;
                if (isfinite(r->decode_ms)) { dc += r->decode_ms; any = 1; }
            }
            if (any <= 0 || !isfinite(p0)) continue;
            L.pre0 += p0; L.pre1 += p1; L.dec += dc; L.n++;
        }
    }
    if (L.n) { L.pre0 /= L.n; L.pre1 /= L.n; L.dec /= L.n; }
    return L;
}

static int fig_latency(struct plot_state *ps, int mode, struct fig *f)
{
    int rc = SCB_OK;
    const struct scb_rep_data *d = ps->d;
    int buckets[32], nb = 0;
    for (size_t i = 0; i < d->n_groups; i++) {
        const struct scb_rep_group *g = &d->groups[i];
        if (g->mode != mode) continue;
        for (size_t k = 0; k < g->n_turns; k++) {
            if (g->turns[k].turn != 0 || !isfinite(g->turns[k].prefill_ms)) continue;
            int b = ctx_bucket(g->turns[k].prompt_tokens), seen = 0;
            if (b < 0) continue;
            for (int q = 0; q < nb; q++) if (buckets[q] == b) seen = 1;
            if (!seen && nb < 32) buckets[nb++] = b;
        }
    }
    if (!nb) return 1;
    for (int a = 0; a < nb; a++) for (int b = a + 1; b < nb; b++) if (buckets[b] < buckets[a]) { int x = buckets[a]; buckets[a] = buckets[b]; buckets[b] = x; }
    /* Horizontal bars, one per (context length, method), read top to bottom; method names
     * on the left, the context length on the right. */
    struct scb_buf yt = {0}, y2 = {0};
    double y = 0, xmax = 0;
    int nbar = 0;
    SCB_TRY(scb_buf_puts(&f->dat, "# y prefill_turn1 +later_prefill +decode (cumulative ms per session)\n"));
    for (int q = 0; q < nb; q++) {
        double y0 = y;
        int nin = 0;
        for (size_t i = 0; i < d->n_groups; i++) {
            const struct scb_rep_group *g = &d->groups[i];
            if (g->mode != mode) continue;
            struct lat L = group_latency(g, buckets[q]);
            if (!L.n) continue;
            double c1 = L.pre0, c2 = c1 + L.pre1, c3 = c2 + L.dec;
            if (c3 > xmax) xmax = c3;
            SCB_TRY(scb_buf_printf(&f->dat, "%g %.6g %.6g %.6g\n", y, c1, c2, c3));
            SCB_TRY(scb_buf_puts(&yt, nbar ? ", " : "set ytics nomirror scale 0 ("));
            SCB_TRY(scb_plot_gp_string(&yt, g->label));
            SCB_TRY(scb_buf_printf(&yt, " %g", y));
            y += 1;
            nin++;
            nbar++;
        }
        if (nin) {
            char bn[64];
            bucket_name(buckets[q], bn, sizeof bn);
            SCB_TRY(scb_buf_puts(&y2, y2.len ? ", " : "set y2tics scale 0 ("));
            SCB_TRY(scb_plot_gp_string(&y2, bn));
            SCB_TRY(scb_buf_printf(&y2, " %g", (y0 + y - 1) / 2));
            y += 0.7;   /* gap between context lengths */
        }
    }
    if (!nbar) { rc = 1; goto out; }
    f->h = 160 + 24 * nbar;
    if (f->h < 420) f->h = 420;
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(scb_buf_puts(&f->body, "set key below horizontal reverse Left width 1 spacing 1.2 nobox\nset bmargin 7\nset grid noytics xtics\nset border 1\n"));
    SCB_TRY(gp_title(&f->body, "set title", mode == SCB_REP_MULTI_REQUEST
        ? "Time per session by stage and context length, multi-request mode (mean over sessions)"
        : "Time per session by stage and context length, multi-turn mode (mean over sessions)"));
    SCB_TRY(scb_buf_printf(&f->body, "set xlabel 'Time per session (ms)'\nset xrange [0:%g]\n"
                                     "set yrange [%g:-0.6]\nset y2range [%g:-0.6]\nset style fill solid 0.85 border -1\n",
                           xmax > 0 ? xmax * 1.05 : 1, y - 0.3, y - 0.3));
    SCB_TRY(scb_buf_puts(&f->body, yt.data));
    SCB_TRY(scb_buf_puts(&f->body, ")\n"));
    SCB_TRY(scb_buf_puts(&f->body, y2.data));
    SCB_TRY(scb_buf_puts(&f->body, ")\n"));
    SCB_TRY(scb_buf_printf(&f->body,
        "plot '%s.dat' using (0):1:(0):2:($1-0.4):($1+0.4) with boxxyerror lc rgb '#4e79a7' title 'prefill (turn 1, shared context)', \\\n"
        "     '%s.dat' using (0):1:2:3:($1-0.4):($1+0.4) with boxxyerror lc rgb '#f28e2b' title 'prefill (later turns)', \\\n"
        "     '%s.dat' using (0):1:3:4:($1-0.4):($1+0.4) with boxxyerror lc rgb '#59a14f' title 'decode (all turns)'\n",
        f->name, f->name, f->name));
out:
    scb_buf_fini(&yt);
    scb_buf_fini(&y2);
    return rc;
}

static int fig_bench(struct plot_state *ps, struct fig *f)
{
    int rc = SCB_OK, n = 0;
    const struct scb_rep_data *d = ps->d;
    struct scb_buf yt = {0};
    const char *device = NULL;
    int one_device = 1;
    SCB_TRY(scb_buf_puts(&f->dat, "# y pct_peak_tflops pct_peak_gbps tflops gbps\n"));
    for (size_t i = 0; i < d->n_bench; i++) {
        const struct scb_rep_bench *b = &d->bench[i];
        double pt = 100 * b->tflops / b->peak_tflops, pg = 100 * b->gbps / b->peak_gbps;
        if (!isfinite(pt) && !isfinite(pg)) continue;
        if (!device) device = b->device;
        else if (!b->device || strcmp(device, b->device)) one_device = 0;
        SCB_TRY(scb_buf_printf(&f->dat, "%d", n));
        SCB_TRY(dat_num(&f->dat, pt));
        SCB_TRY(dat_num(&f->dat, pg));
        SCB_TRY(dat_num(&f->dat, isfinite(pt) ? b->tflops : NAN));
        SCB_TRY(dat_num(&f->dat, isfinite(pg) ? b->gbps : NAN));
        SCB_TRY(scb_buf_putc(&f->dat, '\n'));
        struct scb_buf lab = {0};
        rc = scb_buf_puts(&lab, b->name);
        if (rc == SCB_OK && b->shape) {
            /* compact shape: {"T":4096,"H":32} -> T=4096 H=32 */
            cJSON *sh = cJSON_Parse(b->shape);
            for (const cJSON *c = sh ? sh->child : NULL; c && rc == SCB_OK; c = c->next)
                if (cJSON_IsNumber(c)) rc = scb_buf_printf(&lab, " %s=%g", c->string, c->valuedouble);
                else if (cJSON_IsString(c)) rc = scb_buf_printf(&lab, " %s=%s", c->string, c->valuestring);
            cJSON_Delete(sh);
        }
        if (rc == SCB_OK && b->dtype) rc = scb_buf_printf(&lab, " %s", b->dtype);
        if (rc == SCB_OK) rc = scb_buf_puts(&yt, n ? ", " : "set ytics nomirror scale 0 (");
        if (rc == SCB_OK) rc = scb_plot_gp_string(&yt, lab.data);
        if (rc == SCB_OK) rc = scb_buf_printf(&yt, " %d", n);
        scb_buf_fini(&lab);
        if (rc < 0) goto out;
        n++;
    }
    if (!n) { rc = 1; goto out; }
    f->h = 170 + 46 * n;
    if (f->h < 400) f->h = 400;
    SCB_TRY(scb_buf_puts(&f->body, common_style));
    SCB_TRY(scb_buf_puts(&f->body, "set key below horizontal reverse Left width 1 spacing 1.2 nobox\nset bmargin 7\nset grid noytics xtics\nset border 1\n"));
    {
        struct scb_buf t = {0};
        rc = scb_buf_puts(&t, "Achieved throughput against the device limits");
        if (rc == SCB_OK && device && one_device) rc = scb_buf_printf(&t, " (%s)", device);
        if (rc == SCB_OK) rc = gp_title(&f->body, "set title", t.data);
        scb_buf_fini(&t);
        if (rc < 0) goto out;
    }
    SCB_TRY(scb_buf_printf(&f->body, "set xlabel 'Fraction of the device limit (%%)'\nset xrange [0:118]\nset xtics 0,20,100\n"
                                     "set yrange [%g:-0.6]\nset style fill solid 0.85 border -1\n", n - 0.4));
    SCB_TRY(scb_buf_puts(&f->body, yt.data));
    SCB_TRY(scb_buf_puts(&f->body, ")\n"));
    SCB_TRY(scb_buf_printf(&f->body,
        "plot '%s.dat' using (0):($1-0.19):(0):2:($1-0.36):($1-0.02) with boxxyerror lc rgb '#4e79a7' title 'compute: achieved / peak TFLOP/s', \\\n"
        "     '%s.dat' using (0):($1+0.19):(0):3:($1+0.02):($1+0.36) with boxxyerror lc rgb '#e15759' title 'memory: achieved / peak GB/s', \\\n"
        "     '%s.dat' using ($2+1):($1-0.19):(sprintf('%%.3g TFLOP/s', $4)) with labels left font ',9' notitle, \\\n"
        "     '%s.dat' using ($3+1):($1+0.19):(sprintf('%%.4g GB/s', $5)) with labels left font ',9' notitle\n",
        f->name, f->name, f->name, f->name));
out:
    scb_buf_fini(&yt);
    return rc;
}

int scb_plot_write(const struct scb_rep_data *d, const struct scb_plot_opts *o, struct scb_plot_result *res,
                   struct scb_ctx *ctx)
{
    int rc = SCB_OK, r;
    struct plot_state ps = {d, NULL};
    struct fig f = {0};
    memset(res, 0, sizeof *res);
    if (!o->out_dir || !*o->out_dir) return scb_err(ctx, SCB_E_INVAL, "plot: no output folder");
    if (mkdir(o->out_dir, 0777) != 0 && errno != EEXIST)
        return scb_err(ctx, SCB_E_IO, "%s: cannot create directory: %s", o->out_dir, strerror(errno));
    struct stat sb;
    if (stat(o->out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return scb_err(ctx, SCB_E_IO, "%s: not a directory", o->out_dir);
    res->gnuplot_found = scb_plot_find_gnuplot(o->gnuplot ? o->gnuplot : "gnuplot");

    ps.ci = scb_calloc(d->n_groups ? d->n_groups : 1, sizeof *ps.ci);
    if (!ps.ci) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    for (size_t i = 0; i < d->n_groups; i++) {
        ps.ci[i] = scb_malloc(scb_rep_n_out(&d->groups[i]) * sizeof **ps.ci);
        if (!ps.ci[i]) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        SCB_TRY(scb_rep_scores_ci(&d->groups[i], &o->boot, ps.ci[i], ctx));
    }
#define FIG(call, why) do {                                                     \
        r = (call);                                                             \
        if (r < 0) { rc = r == SCB_E_NOMEM ? scb_err(ctx, r, "out of memory") : scb_err(ctx, r, "plot %s: %s", f.name, scb_status_str(r)); goto out; } \
        if (r > 0) skip(o, f.name, why);                                        \
        else SCB_TRY(emit_fig(&f, o, res, ctx));                                \
    } while (0)

    fig_reset(&f, "acc_by_turn", 900, 540);
    FIG(fig_by_turn(&ps, &f), "no multi-turn results");
    fig_reset(&f, "acc_vs_budget", 900, 540);
    FIG(fig_budget(&ps, o, &f), "no method with a token budget (budget, top_k, n_init+n_local)");
    fig_reset(&f, "categories_multi_turn", 1000, 540);
    FIG(fig_categories(&ps, SCB_REP_MULTI_TURN, &f), "no multi-turn results");
    fig_reset(&f, "categories_multi_request", 1000, 540);
    FIG(fig_categories(&ps, SCB_REP_MULTI_REQUEST, &f), "no multi-request results");
    fig_reset(&f, "acc_vs_kv", 900, 540);
    FIG(fig_kv(&ps, &f), "no KV bytes recorded");
    fig_reset(&f, "latency_multi_turn", 1000, 500);
    FIG(fig_latency(&ps, SCB_REP_MULTI_TURN, &f), "no timed multi-turn sessions");
    fig_reset(&f, "latency_multi_request", 1000, 500);
    FIG(fig_latency(&ps, SCB_REP_MULTI_REQUEST, &f), "no timed multi-request sessions");
    fig_reset(&f, "bench", 1000, 500);
    FIG(fig_bench(&ps, &f), "no bench rows with achieved and peak throughput");
#undef FIG
out:
    scb_buf_fini(&f.dat);
    scb_buf_fini(&f.body);
    for (size_t i = 0; i < d->n_groups; i++) scb_free(ps.ci[i]);
    scb_free(ps.ci);
    return rc;
}
