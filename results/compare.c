/* compare.c — paired comparison of two runs and its Markdown verdict (see compare.h). */
#include "results/compare.h"

#include <math.h>
#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "results/report.h"

void scb_cmp_opts_default(struct scb_cmp_opts *o)
{
    memset(o, 0, sizeof *o);
    scb_boot_opts_default(&o->boot);
    o->max_accuracy_drop = 1.0;
    o->max_slowdown = 0;
    o->require_match = 0;
}

/* Markdown-safe text: escape what would change the table or emphasis. */
static void md_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (strchr("|\\*`<>", c)) { fputc('\\', f); fputc(c, f); }
        else if (c < 0x20) fputc(' ', f);
        else fputc(c, f);
    }
}

static double nz(double v) { return fabs(v) < 0.05 ? 0.0 : v; }

static void fmt_ratio(char *b, size_t n, double r) { if (isfinite(r)) snprintf(b, n, "%.3f×", r); else snprintf(b, n, "—"); }

static void run_line(FILE *f, const char *what, const struct scb_rep_data *d)
{
    const struct scb_rep_run *r = &d->runs[0];
    fprintf(f, "- %s: run %lld of `", what, (long long)r->id);
    for (const char *s = d->db_path; *s; s++) fputc(*s == '`' ? '\'' : (unsigned char)*s < 0x20 ? ' ' : *s, f);
    fputs("`", f);
    if (r->model_path) { fputs(", model ", f); md_text(f, r->model_path); }
    if (r->device) { fputs(", device ", f); md_text(f, r->device); }
    if (r->git_rev) { fputs(", git ", f); md_text(f, r->git_rev); }
    fputs(", scorer ", f);
    md_text(f, r->scorer ? r->scorer : "not recorded");
    if (r->status) { fputs(", ", f); md_text(f, r->status); }
    fputc('\n', f);
}

struct cmp_row {
    const struct scb_rep_group *b, *c;
    struct scb_rep_pairing p;
    struct scb_ci *diff;       /* (n_out of c) */
    double *sc, *sb;           /* (n_out of c) sides on the shared sessions */
    double r_prefill, r_ttft, r_decode;
    int acc_fail, speed_fail;
};

static void list_unpaired(FILE *f, const struct scb_rep_group *x, const struct scb_rep_group *y, const char *side)
{
    /* sessions of x that y lacks, per task */
    for (size_t i = 0; i < x->n_tasks; i++) {
        const struct scb_rep_task *t = &x->tasks[i];
        const struct scb_rep_task *u = NULL;
        for (size_t j = 0; j < y->n_tasks; j++) if (!strcmp(y->tasks[j].task, t->task)) u = &y->tasks[j];
        size_t miss = 0;
        for (size_t s = 0; s < t->n_sessions; s++) {
            int found = 0;
            for (size_t q = 0; u && q < u->n_sessions; q++) if (u->session_ids[q] == t->session_ids[s]) { found = 1; break; }
            if (!found) miss++;
        }
        if (!miss) continue;
        fputs("- `", f);
        for (const char *s = x->method; *s; s++) fputc(*s == '`' ? '\'' : *s, f);
        fprintf(f, "` %s, %s: ", scb_rep_mode_name(x->mode), t->task);
        if (!u) { fprintf(f, "task only in the %s (%zu sessions)\n", side, t->n_sessions); continue; }
        fprintf(f, "%zu session%s only in the %s (", miss, miss == 1 ? "" : "s", side);
        size_t shown = 0;
        for (size_t s = 0; s < t->n_sessions && shown < 10; s++) {
            int found = 0;
            for (size_t q = 0; q < u->n_sessions; q++) if (u->session_ids[q] == t->session_ids[s]) { found = 1; break; }
            if (!found) fprintf(f, "%s%lld", shown++ ? ", " : "", (long long)t->session_ids[s]);
        }
        fprintf(f, "%s)\n", miss > 10 ? ", …" : "");
    }
}

int scb_cmp_runs(struct scb_db *base_db, int64_t base_run, struct scb_db *cand_db, int64_t cand_run,
                 const struct scb_cmp_opts *o, FILE *md, struct scb_cmp_result *res, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_rep_data *B = NULL, *C = NULL;
    struct cmp_row *rows = NULL;
    size_t nr = 0;
    memset(res, 0, sizeof *res);
    res->worst_drop = res->worst_slowdown = NAN;
    SCB_TRY(scb_rep_load(base_db, &base_run, 1, &B, ctx));
    SCB_TRY(scb_rep_load(cand_db, &cand_run, 1, &C, ctx));
    rows = scb_calloc(C->n_groups ? C->n_groups : 1, sizeof *rows);
    if (!rows) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }

    for (size_t i = 0; i < C->n_groups; i++) {
        const struct scb_rep_group *c = &C->groups[i], *b = NULL;
        for (size_t j = 0; j < B->n_groups; j++)
            if (B->groups[j].mode == c->mode && !strcmp(B->groups[j].method, c->method)) b = &B->groups[j];
        if (!b) { res->n_unmatched += c->n_clusters; continue; }
        struct cmp_row *r = &rows[nr++];
        r->b = b; r->c = c;
        SCB_TRY(scb_rep_pair(c, b, &r->p, ctx));
        res->n_unmatched += r->p.only_cand + r->p.only_base;
        if (r->p.n == 0) continue;
        res->n_pairs += r->p.n;
        res->n_compared++;
        size_t no = scb_rep_n_out(c);
        r->diff = scb_malloc(no * sizeof *r->diff);
        r->sc = scb_malloc(no * sizeof *r->sc);
        r->sb = scb_malloc(no * sizeof *r->sb);
        if (!r->diff || !r->sc || !r->sb) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        SCB_TRY(scb_rep_diff_ci(c, b, &r->p, &o->boot, r->diff, r->sc, r->sb, ctx));
        /* speed on the shared sessions */
        double *wc = scb_calloc(c->n_clusters, sizeof *wc), *wb = scb_calloc(b->n_clusters, sizeof *wb);
        if (!wc || !wb) { scb_free(wc); scb_free(wb); rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        for (size_t k = 0; k < r->p.n; k++) { wc[r->p.cg[k]] = 1; wb[r->p.cb[k]] = 1; }
        struct scb_rep_cost kc, kb;
        scb_rep_cost(c, wc, -1, &kc);
        scb_rep_cost(b, wb, -1, &kb);
        scb_free(wc); scb_free(wb);
        r->r_prefill = kc.prefill_ms / kb.prefill_ms;
        r->r_ttft = kc.ttft_ms / kb.ttft_ms;
        r->r_decode = kc.decode_ms_per_token / kb.decode_ms_per_token;
        double drop = -r->diff[scb_rep_i_avg(c)].est;
        if (isfinite(drop) && !(res->worst_drop >= drop)) res->worst_drop = drop;
        if (o->max_accuracy_drop >= 0 && isfinite(drop) && drop > o->max_accuracy_drop) r->acc_fail = 1;
        const double ratios[3] = {r->r_prefill, r->r_ttft, r->r_decode};
        for (int k = 0; k < 3; k++) {
            if (!isfinite(ratios[k])) continue;
            if (!(res->worst_slowdown >= ratios[k])) res->worst_slowdown = ratios[k];
            if (o->max_slowdown > 0 && ratios[k] > o->max_slowdown) r->speed_fail = 1;
        }
        if (r->acc_fail || r->speed_fail) res->regression = 1;
    }
    size_t base_only = 0;
    for (size_t j = 0; j < B->n_groups; j++) {
        int found = 0;
        for (size_t k = 0; k < nr; k++) if (rows[k].b == &B->groups[j]) found = 1;
        if (!found) { base_only++; res->n_unmatched += B->groups[j].n_clusters; }
    }
    if (res->n_pairs == 0) {
        rc = scb_err(ctx, SCB_E_NOTFOUND, "run %lld of %s and run %lld of %s share no (method, mode, task, session): "
                     "nothing to compare", (long long)base_run, B->db_path, (long long)cand_run, C->db_path);
        goto out;
    }
    if (o->require_match && res->n_unmatched) res->regression = 1;

    /* ---- Markdown ---- */
    fprintf(md, "## scbench compare: %s\n\n", res->regression ? "❌ regression" : "✅ no regression");
    run_line(md, "Baseline", B);
    run_line(md, "Candidate", C);
    fputs("- Thresholds: ", md);
    if (o->max_accuracy_drop >= 0) fprintf(md, "accuracy drop ≤ %.2f points (Avg over categories, paired)", o->max_accuracy_drop);
    else fputs("accuracy not gated", md);
    if (o->max_slowdown > 0) fprintf(md, "; slowdown ≤ %.3f× (turn-1 prefill, TTFT, decode ms/token)", o->max_slowdown);
    else fputs("; speed not gated", md);
    if (o->require_match) fputs("; every session must match", md);
    fputs("\n", md);
    {
        const char *sb = B->runs[0].scorer, *sc = C->runs[0].scorer;
        if (!(sb && sc && !strcmp(sb, sc)) && !(!sb && !sc)) {
            fputs("- ⚠ the runs used different scorer variants (", md);
            md_text(md, sb ? sb : "not recorded"); fputs(" vs ", md); md_text(md, sc ? sc : "not recorded");
            fputs("): accuracy differences mix scoring and model behaviour\n", md);
        }
    }
    fprintf(md, "- Statistics: %g%% percentile bootstrap over shared sessions (stratified by task), B = %d, seed %llu\n\n",
            100 * (o->boot.level > 0 ? o->boot.level : SCB_BOOT_DEFAULT_LEVEL),
            o->boot.B > 0 ? o->boot.B : SCB_BOOT_DEFAULT_B, (unsigned long long)o->boot.seed);

    fputs("| Method | Mode | Sessions | Baseline Avg | Candidate Avg | Δ Avg [95% CI] | Prefill × | TTFT × | Decode ms/token × | Verdict |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n", md);
    for (size_t k = 0; k < nr; k++) {
        const struct cmp_row *r = &rows[k];
        if (!r->p.n) continue;
        size_t ia = scb_rep_i_avg(r->c);
        char a[32], bb[32], cc[32];
        fputs("| ", md); md_text(md, r->c->method);
        fprintf(md, " | %s | %zu | %.1f | %.1f | ", scb_rep_mode_name(r->c->mode), r->p.n, r->sb[ia], r->sc[ia]);
        if (isfinite(r->diff[ia].lo)) fprintf(md, "%+.1f [%+.1f, %+.1f]", nz(r->diff[ia].est), nz(r->diff[ia].lo), nz(r->diff[ia].hi));
        else fprintf(md, "%+.1f", nz(r->diff[ia].est));
        fmt_ratio(a, sizeof a, r->r_prefill); fmt_ratio(bb, sizeof bb, r->r_ttft); fmt_ratio(cc, sizeof cc, r->r_decode);
        fprintf(md, " | %s | %s | %s | %s |\n", a, bb, cc,
                r->acc_fail && r->speed_fail ? "❌ accuracy, speed" : r->acc_fail ? "❌ accuracy"
                : r->speed_fail ? "❌ speed" : "✅");
    }
    fputs("\nΔ = candidate − baseline in points on the shared sessions; × = candidate / baseline time "
          "(> 1 is slower; — = not measured).\n\n", md);

    size_t n_changed = 0, n_same = 0;
    for (size_t k = 0; k < nr; k++)
        for (size_t t = 0; rows[k].p.n && t < rows[k].c->n_tasks; t++)
            if (rows[k].p.task_map[t] >= 0 && isfinite(rows[k].diff[t].est)) {
                if (fabs(rows[k].diff[t].est) >= 0.05) n_changed++; else n_same++;
            }
    fprintf(md, "<details><summary>Per task: %zu changed, %zu unchanged (|Δ| < 0.05)</summary>\n\n", n_changed, n_same);
    if (n_changed)
        fputs("| Method | Mode | Task | Sessions | Baseline | Candidate | Δ [95% CI] |\n|---|---|---|---:|---:|---:|---:|\n", md);
    for (size_t k = 0; k < nr; k++) {
        const struct cmp_row *r = &rows[k];
        if (!r->p.n) continue;
        for (size_t t = 0; t < r->c->n_tasks; t++) {
            if (r->p.task_map[t] < 0) continue;
            size_t np = 0;
            for (size_t q = 0; q < r->p.n; q++) if (r->p.stratum[q] == (int)t) np++;
            if (!np || !(fabs(r->diff[t].est) >= 0.05)) continue;
            fputs("| ", md); md_text(md, r->c->method);
            fprintf(md, " | %s | %s | %zu | %.1f | %.1f | ", scb_rep_mode_name(r->c->mode), r->c->tasks[t].paper, np,
                    r->sb[t], r->sc[t]);
            if (isfinite(r->diff[t].lo)) fprintf(md, "%+.1f [%+.1f, %+.1f] |\n", nz(r->diff[t].est), nz(r->diff[t].lo), nz(r->diff[t].hi));
            else fprintf(md, "%+.1f |\n", nz(r->diff[t].est));
        }
    }
    fputs("\n</details>\n\n", md);

    if (res->n_unmatched) {
        fprintf(md, "### Not compared (%zu session%s without a counterpart%s)\n\n", res->n_unmatched,
                res->n_unmatched == 1 ? "" : "s", o->require_match ? "; counts as a regression" : "");
        for (size_t i = 0; i < C->n_groups; i++) {
            int found = 0;
            for (size_t k = 0; k < nr; k++) if (rows[k].c == &C->groups[i]) found = 1;
            if (found) continue;
            fputs("- `", md);
            for (const char *s = C->groups[i].method; *s; s++) fputc(*s == '`' ? '\'' : *s, md);
            fprintf(md, "` %s: only in the candidate (%zu sessions)\n", scb_rep_mode_name(C->groups[i].mode), C->groups[i].n_clusters);
        }
        for (size_t j = 0; j < B->n_groups; j++) {
            int found = 0;
            for (size_t k = 0; k < nr; k++) if (rows[k].b == &B->groups[j]) found = 1;
            if (found) continue;
            fputs("- `", md);
            for (const char *s = B->groups[j].method; *s; s++) fputc(*s == '`' ? '\'' : *s, md);
            fprintf(md, "` %s: only in the baseline (%zu sessions)\n", scb_rep_mode_name(B->groups[j].mode), B->groups[j].n_clusters);
        }
        for (size_t k = 0; k < nr; k++) {
            list_unpaired(md, rows[k].c, rows[k].b, "candidate");
            list_unpaired(md, rows[k].b, rows[k].c, "baseline");
        }
        fputc('\n', md);
    }
    (void)base_only;
    if (ferror(md)) rc = scb_err(ctx, SCB_E_IO, "writing the verdict failed");
out:
    for (size_t k = 0; k < nr; k++) {
        scb_rep_pairing_fini(&rows[k].p);
        scb_free(rows[k].diff); scb_free(rows[k].sc); scb_free(rows[k].sb);
    }
    scb_free(rows);
    scb_rep_data_free(B);
    scb_rep_data_free(C);
    return rc;
}
