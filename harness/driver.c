/* driver.c — the SCBench run driver (see driver.h).
 *
 * Order of work: task → session → method → mode, so each session is read (or generated) and
 * its prompts encoded once, whatever the number of methods. A session's turns for one
 * (method, mode) are recorded in one transaction; the recorder's session marker is what makes a
 * rerun resume.
 *
 * KV-cache lifecycle per session (spec/scbench.md §6, DESIGN.md):
 *   multi-turn:    for each turn i: prompt P[i] → GLOBAL (the first one runs the method's
 *                  prefill pattern and compression), answer → TEMP, drop TEMP (golden context)
 *                  or commit it (--no-golden, SCBench's --disable_golden_context).
 *   multi-request: context part → GLOBAL (prefill pattern + compression, query-agnostic),
 *                  then for each query: query + answer → TEMP, drop TEMP. */
#include "harness/driver.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "datasets/dataset.h"
#include "datasets/synth.h"
#include "harness/chat_template.h"
#include "harness/generate.h"
#include "harness/method_bind.h"
#include "harness/model.h"
#include "harness/prompt_io.h"
#include "harness/tokenizer.h"
#include "kernels/alloc.h"
#include "kernels/backend.h"
#include "kernels/util.h"
#include "methods/method.h"
#include "results/recorder.h"
#include "scb_config.h"
#include "tasks/prompt.h"
#include "tasks/scorers.h"
#include "tasks/task.h"

#define SYNTH_PASSKEY_TASK "scbench_summary_with_needles"

void scb_run_opts_default(struct scb_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data = "synthetic";
    o->modes = SCB_RUN_MULTI_TURN | SCB_RUN_MULTI_REQUEST;
    o->db_path = "scbench.db";
    o->max_seq_len = 131072;
    o->max_turns = 5;
    o->sessions = -1;
    o->synth_tokens = 4096;
    o->seed = 1;
    o->golden = 1;
    o->chat_template = 1;
    o->variant = SCB_SCORE_FAITHFUL;
}

/* ---- the engine bundle ------------------------------------------------------------------- */

struct engine {
    struct scb_backend       *be;
    struct scb_model         *model;
    struct scb_prompt_io      pio;     /* tokenizer + chat template (harness/prompt_io.h) */
    int32_t stop[SCB_MAX_STOP_IDS + 1];    /* tokenizer eos + model stop ids */
    size_t  n_stop;
};

static int count_cb(void *user, const char *text, size_t len, size_t *n)
{
    const struct engine *e = user;
    struct scb_ctx c = {0};
    return scb_tokenizer_count(e->pio.tok, text, len, 0, n, &c);
}

static void engine_fini(struct engine *e)
{
    scb_prompt_io_fini(&e->pio);
    scb_model_destroy(e->model);
    scb_backend_destroy(e->be);
    memset(e, 0, sizeof *e);
}

static int engine_init(struct engine *e, const struct scb_run_opts *o, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    memset(e, 0, sizeof *e);
    SCB_TRY(scb_backend_cpu_create(&e->be, o->threads, ctx));
    SCB_TRY(scb_model_load(&e->model, o->model_dir, e->be, ctx));
    SCB_TRY(scb_prompt_io_load(&e->pio, o->model_dir, o->chat_template, ctx));
    /* HF stop set (spec §5.2): [tokenizer.eos_token_id] + model.config.eos_token_id */
    int32_t eos = scb_tokenizer_eos_id(e->pio.tok);
    if (eos >= 0) e->stop[e->n_stop++] = eos;
    const struct scb_model_config *cfg = scb_model_get_config(e->model);
    for (size_t i = 0; i < cfg->n_stop; i++) {
        int dup = 0;
        for (size_t j = 0; j < e->n_stop; j++) dup |= e->stop[j] == cfg->stop_ids[i];
        if (!dup) e->stop[e->n_stop++] = cfg->stop_ids[i];
    }
out:
    if (rc) engine_fini(e);
    return rc;
}

/* ---- provenance -------------------------------------------------------------------------- */

/* Fingerprint of a file: its whole content when small (<= limit bytes), else its size and
 * first `limit` bytes (for multi-GB weights; the safetensors header with names, shapes and
 * offsets sits at the start). Missing files hash as their name. */
static uint64_t hash_file(const char *path, uint64_t h, size_t limit)
{
    FILE *f = fopen(path, "rb");
    if (!f) return scb_hash64(path, strlen(path), h);
    char buf[65536];
    size_t n, total = 0;
    while (total < limit && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        h = scb_hash64(buf, n, h);
        total += n;
    }
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        h = scb_hash64(&sz, sizeof sz, h);
    }
    fclose(f);
    return h;
}

static uint64_t hash_model_dir(const char *dir)
{
    static const char *const names[] = {"config.json", "generation_config.json",
                                        "model.safetensors.index.json", "model.safetensors"};
    uint64_t h = SCB_HASH64_INIT;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = scb_path_join(dir, names[i]);
        if (!p) continue;
        if (scb_file_exists(p)) h = hash_file(p, h, (size_t)64 << 20);
        scb_free(p);
    }
    return h;
}

static void hex64(uint64_t h, char out[17]) { snprintf(out, 17, "%016llx", (unsigned long long)h); }

static void cpu_name(char *out, size_t n)
{
    snprintf(out, n, "cpu");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "cpu: %s", c);
            }
            break;
        }
    }
    fclose(f);
}

/* ---- task list and session sources ------------------------------------------------------- */

static const char *const synth_tasks[] = {"scbench_kv", "scbench_prefix_suffix", "scbench_vt",
                                          "scbench_mf", "scbench_passkey"};

static int is_synthetic(const struct scb_run_opts *o) { return !strcmp(o->data, "synthetic"); }

/* Which task's prompts and scorer a data task uses (synthetic passkey = needle turns of
 * summary_with_needles). */
static const char *prompt_task_name(const char *task)
{
    if (!strcmp(task, "scbench_passkey") || !strcmp(task, "passkey")) return SYNTH_PASSKEY_TASK;
    return task;
}

struct source {
    int synthetic;
    struct scb_dataset *ds;
    struct scb_synth_opts so;
    struct scb_token_counter tc;
    long next;                  /* synthetic: next index */
    long limit;                 /* sessions to produce, -1 = all */
    long produced;
};

static int source_open(struct source *s, const struct scb_run_opts *o, const char *task,
                       struct engine *e, char **path_out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    memset(s, 0, sizeof *s);
    *path_out = NULL;
    s->limit = o->sessions;
    if (is_synthetic(o)) {
        s->synthetic = 1;
        if (s->limit < 0) s->limit = 5;
        enum scb_synth_task st;
        SCB_TRY(scb_synth_task_parse(task, &st, ctx));
        s->so.task = st;
        s->so.target_tokens = (size_t)o->synth_tokens;
        s->so.n_turns = st == SCB_SYNTH_MF ? 5 : (size_t)(o->max_turns > 0 ? o->max_turns : 5);
        if (st == SCB_SYNTH_MF && o->max_turns > 0 && o->max_turns < 5) s->so.n_turns = (size_t)o->max_turns;
        s->so.seed = o->seed;
        s->tc.count = count_cb;
        s->tc.user = e;
        char buf[128];
        snprintf(buf, sizeof buf, "synthetic:%s:%ld:%llu", task, o->synth_tokens,
                 (unsigned long long)o->seed);
        *path_out = scb_strdup(buf);
        if (!*path_out) rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
        goto out;
    }
    char *path = NULL;
    if (scb_file_exists(o->data) && strstr(o->data, ".jsonl")) {
        path = scb_strdup(o->data);
        if (!path) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
    } else {
        SCB_TRY(scb_dataset_resolve(o->data, task, &path, ctx));
    }
    *path_out = path;
    SCB_TRY(scb_dataset_open(&s->ds, path, ctx));
out:
    return rc;
}

/* 1 with a session, 0 at the end, < 0 on error. */
static int source_next(struct source *s, struct scb_session *out, struct scb_ctx *ctx)
{
    if (s->limit >= 0 && s->produced >= s->limit) return 0;
    int rc;
    if (s->synthetic) {
        rc = scb_synth_session(&s->so, s->next, &s->tc, out, NULL, ctx);
        if (rc < 0) return rc;
        out->index = s->next++;
        if (s->so.task == SCB_SYNTH_PASSKEY) {
            for (size_t i = 0; i < out->n_turns; i++) {
                if (!out->turns[i].task) {
                    out->turns[i].task = scb_strdup("scbench_passkey");
                    if (!out->turns[i].task) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
                }
            }
        }
        s->produced++;
        return 1;
    }
    rc = scb_dataset_next(s->ds, out, ctx);
    if (rc == 1) s->produced++;
    return rc;
}

static void source_close(struct source *s)
{
    scb_dataset_close(s->ds);
    memset(s, 0, sizeof *s);
}

/* ---- progress ---------------------------------------------------------------------------- */

struct progress {
    int on;
    double t0;
    long done, total;           /* (method, mode, session) units; total 0 = unknown */
    double tokens;              /* generated + prefilled tokens so far */
    volatile sig_atomic_t *stop_requested;  /* borrowed from the run options */
};

static void progress_show(struct progress *p, const char *task, long session, const char *method,
                          const char *mode, size_t turn, size_t n_turns)
{
    if (!p->on) return;
    double el = (scb_now_ms() - p->t0) / 1000.0;
    double tps = el > 0 ? p->tokens / el : 0;
    char eta[32] = "";
    if (p->total > 0 && p->done > 0) {
        double left = el / (double)p->done * (double)(p->total - p->done);
        snprintf(eta, sizeof eta, " ETA %.0fs", left);
    }
    fprintf(stderr, "\r\033[K%s  session %ld  %s  %s  turn %zu/%zu  %.0f tok/s  [%ld/%ld]%s",
            task, session, method, mode, turn, n_turns, tps, p->done,
            p->total > 0 ? p->total : p->done, eta);
    fflush(stderr);
}

/* ---- one session under one method and mode ----------------------------------------------- */

struct turn_out {
    char  *prediction;       /* owned */
    struct scb_gen_result gen;
    double prefill_ms, ttft_ms;
    long   prompt_tokens, cached_tokens;
    struct scb_turn_costs costs;
    size_t peak_host;
};

static int run_plan(struct engine *e, struct scb_method_binding *b, const struct scb_turn_plan *plan,
                    int golden, struct turn_out *outs, struct progress *pg, const char *task,
                    long session, const char *method, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_kv_cache *kv = NULL;
    const int multi_request = plan->opts.mode == SCB_MODE_MULTI_REQUEST;
    const char *mode_name = multi_request ? "multi-request" : "multi-turn";

    /* capacity: everything that can be in the cache at once */
    size_t cap = 1, max_new_all = 0, sum_new = 0;
    for (size_t i = 0; i < plan->n_turns; i++) {
        size_t mn = (size_t)plan->turns[i].max_new_tokens;
        if (mn > max_new_all) max_new_all = mn;
        sum_new += mn + 1;
    }
    if (multi_request) {
        size_t q = 0;
        for (size_t i = 0; i < plan->n_turns; i++)
            if (plan->turns[i].n_ids > q) q = plan->turns[i].n_ids;
        cap += plan->n_context_ids + q + max_new_all;
    } else {
        for (size_t i = 0; i < plan->n_turns; i++) cap += plan->turns[i].n_ids + 1;
        cap += golden ? max_new_all : sum_new;
    }
    SCB_TRY(scb_method_bind_kv_create(b, cap, &kv, ctx));
    SCB_TRY(scb_method_bind_session_begin(b, kv, ctx));

    double ctx_prefill_ms = 0;
    long ctx_tokens = 0;
    if (multi_request) {
        if (plan->n_context_ids == 0) SCB_TRY(scb_err(ctx, SCB_E_FORMAT, "empty context part"));
        scb_kv_cache_set_mode(kv, SCB_KV_APPEND_GLOBAL);
        double t0 = scb_now_ms();
        SCB_TRY(scb_model_forward(e->model, kv, plan->context_ids,
                                  plan->n_context_ids, NULL, SCB_FWD_LAST_LOGITS, ctx));
        ctx_prefill_ms = scb_now_ms() - t0;
        ctx_tokens = (long)plan->n_context_ids;
        pg->tokens += (double)ctx_tokens;
    }

    int prev_stopped = 1;
    for (size_t i = 0; i < plan->n_turns; i++) {
        const struct scb_plan_turn *pt = &plan->turns[i];
        struct turn_out *to = &outs[i];
        if (pg->stop_requested && *pg->stop_requested) SCB_TRY(scb_err(ctx, SCB_E_INTERRUPTED, "interrupted"));
        progress_show(pg, task, session, method, mode_name, i + 1, plan->n_turns);
        scb_alloc_reset_peak();
        to->cached_tokens = (long)kv->seen;
        /* SCBench --disable_golden_context: if the previous answer did not end with EOS, an EOS
         * id is prepended to the next prompt (spec §6.2). */
        int32_t *ids = pt->ids;
        size_t n_ids = pt->n_ids;
        int32_t *tmp = NULL;
        if (!multi_request && !golden && i > 0 && !prev_stopped && e->n_stop > 0) {
            tmp = scb_malloc((n_ids + 1) * sizeof *tmp);
            if (!tmp) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
            tmp[0] = e->stop[0];
            memcpy(tmp + 1, ids, n_ids * sizeof *ids);
            ids = tmp;
            n_ids++;
        }
        scb_kv_cache_set_mode(kv, multi_request ? SCB_KV_APPEND_TEMP : SCB_KV_APPEND_GLOBAL);
        struct scb_gen_opts go = {.max_new = (size_t)pt->max_new_tokens, .stop = e->stop, .n_stop = e->n_stop};
        rc = scb_generate_greedy(e->model, kv, ids, n_ids, NULL, &go, &to->gen, ctx);
        scb_free(tmp);
        if (rc < 0) goto out;
        prev_stopped = to->gen.stopped;
        size_t len = 0;
        SCB_TRY(scb_tokenizer_decode(e->pio.tok, to->gen.ids, to->gen.n, &to->prediction, &len, ctx));
        if (!multi_request && !golden) scb_kv_cache_commit_temp(kv);
        else scb_kv_cache_drop_temp(kv);
        SCB_TRY(scb_method_bind_turn_end(b, kv, ctx));
        SCB_TRY(scb_method_bind_costs(b, kv, &to->costs, ctx));
        to->prompt_tokens = (long)n_ids;
        to->prefill_ms = to->gen.prefill_ms;
        to->ttft_ms = to->gen.ttft_ms;
        if (multi_request && i == 0) {
            /* the context prefill is paid by the first request (as SCBench's vLLM path does) */
            to->prompt_tokens += ctx_tokens;
            to->prefill_ms += ctx_prefill_ms;
            to->ttft_ms += ctx_prefill_ms;
            to->cached_tokens = 0;
        }
        /* CacheBlend: the first prefill's tokens whose stored KV was reused (docs/run.md) */
        if (i == 0 && to->costs.reused_tokens > 0) to->cached_tokens = (long)to->costs.reused_tokens;
        to->peak_host = scb_alloc_peak_bytes();
        pg->tokens += (double)(n_ids + to->gen.n);
    }
out:
    scb_kv_cache_destroy(kv);
    return rc;
}

/* Score the session's turns as SCBench's compute_scores would (per-record scores). */
static int score_session(const struct scb_turn_plan *plan, const struct scb_session *s,
                         const struct turn_out *outs, int multi_request, int variant,
                         double *scores, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_score_result res;
    memset(&res, 0, sizeof res);
    struct scb_score_record *recs = scb_calloc(plan->n_turns ? plan->n_turns : 1, sizeof *recs);
    if (!recs) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    const int mix = plan->task->n_subtasks > 0;
    for (size_t i = 0; i < plan->n_turns; i++) {
        recs[i].id = s->index;
        recs[i].turn_idx = (long)i;
        recs[i].prediction = outs[i].prediction ? outs[i].prediction : "";
        recs[i].gt = plan->turns[i].ground_truth;
        recs[i].task = mix ? plan->turns[i].subtask : NULL;
        recs[i].lang = s->lang;
        recs[i].repo = s->repo;
        recs[i].func_name = i < s->n_turns ? s->turns[i].name : NULL;
    }
    SCB_TRY(scb_score_records(plan->task->name, recs, plan->n_turns,
                              multi_request ? SCB_SCORE_MULTI_REQUEST : SCB_SCORE_MULTI_TURN,
                              (enum scb_score_variant)variant, &res, ctx));
    for (size_t i = 0; i < plan->n_turns; i++)
        scores[i] = res.rec_slot[i] >= 0 ? res.rec_score[i] : 0.0;
out:
    scb_score_result_fini(&res);
    scb_free(recs);
    return rc;
}

static void turn_outs_fini(struct turn_out *outs, size_t n)
{
    if (!outs) return;
    for (size_t i = 0; i < n; i++) {
        scb_free(outs[i].prediction);
        scb_gen_result_fini(&outs[i].gen);
    }
    scb_free(outs);
}

static int record_session(struct scb_recorder *rec, int64_t run_id, const char *method,
                          const char *task, const char *mode, const struct scb_session *s,
                          const struct scb_turn_plan *plan, const struct turn_out *outs,
                          const double *scores, int variant, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_turn_row *rows = scb_calloc(plan->n_turns ? plan->n_turns : 1, sizeof *rows);
    char **golds = scb_calloc(plan->n_turns ? plan->n_turns : 1, sizeof *golds);
    if (!rows || !golds) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < plan->n_turns; i++) {
        struct scb_turn_row *r = &rows[i];
        const struct turn_out *to = &outs[i];
        scb_turn_row_init(r);
        golds[i] = cJSON_PrintUnformatted(plan->turns[i].ground_truth);
        if (!golds[i]) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        r->method = method;
        r->task = task;
        r->mode = mode;
        r->session = s->index;
        r->turn = (int64_t)i;
        r->sub_task = plan->task->n_subtasks ? plan->turns[i].subtask : NULL;
        r->lang = s->lang;
        r->repo = s->repo;
        r->func_name = i < s->n_turns ? s->turns[i].name : NULL;
        r->prediction = to->prediction ? to->prediction : "";
        r->gold_json = golds[i];
        r->score = scores[i];
        r->scorer = scb_score_variant_name((enum scb_score_variant)variant);
        r->prompt_tokens = to->prompt_tokens;
        r->cached_tokens = to->cached_tokens;
        r->generated_tokens = (int64_t)to->gen.n;
        r->prefill_ms = to->prefill_ms;
        r->ttft_ms = to->ttft_ms;
        r->decode_ms = to->gen.decode_ms;
        r->kv_entries = to->costs.kv_entries;
        r->kv_bytes_logical = to->costs.kv_bytes_logical;
        r->kv_bytes_physical = to->costs.kv_bytes_physical;
        r->decode_bytes_per_step = to->costs.decode_bytes_per_step;
        r->prefill_density = to->costs.prefill_density;
        r->peak_host_bytes = (int64_t)to->peak_host;
        r->peak_device_bytes = 0;
    }
    rc = scb_recorder_write_session(rec, run_id, rows, plan->n_turns, ctx);
out:
    if (golds)
        for (size_t i = 0; i < plan->n_turns; i++) cJSON_free(golds[i]);
    scb_free(golds);
    scb_free(rows);
    return rc;
}

/* ---- configuration JSON ------------------------------------------------------------------ */

static int build_config(const struct scb_run_opts *o, const char *const *tasks, size_t n_tasks,
                        struct scb_method_spec *specs, size_t n_methods, char **out,
                        struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    cJSON *j = cJSON_CreateObject(), *a;
    if (!j) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    cJSON_AddStringToObject(j, "model", o->model_dir);
    cJSON_AddStringToObject(j, "data", o->data);
    a = cJSON_AddArrayToObject(j, "tasks");
    for (size_t i = 0; i < n_tasks; i++) cJSON_AddItemToArray(a, cJSON_CreateString(tasks[i]));
    a = cJSON_AddArrayToObject(j, "modes");
    if (o->modes & SCB_RUN_MULTI_TURN) cJSON_AddItemToArray(a, cJSON_CreateString("multi_turn"));
    if (o->modes & SCB_RUN_MULTI_REQUEST) cJSON_AddItemToArray(a, cJSON_CreateString("multi_request"));
    a = cJSON_AddArrayToObject(j, "methods");
    for (size_t i = 0; i < n_methods; i++) {
        char *js = NULL;
        SCB_TRY(scb_method_spec_json(&specs[i], &js, ctx));
        cJSON *m = cJSON_Parse(js);
        scb_free(js);
        if (!m) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
        cJSON_AddItemToArray(a, m);
    }
    cJSON_AddNumberToObject(j, "max_seq_len", (double)o->max_seq_len);
    cJSON_AddNumberToObject(j, "max_turns", (double)o->max_turns);
    cJSON_AddNumberToObject(j, "sessions", (double)o->sessions);
    if (is_synthetic(o)) {
        cJSON_AddNumberToObject(j, "synth_tokens", (double)o->synth_tokens);
        cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    }
    cJSON_AddBoolToObject(j, "golden_context", o->golden);
    cJSON_AddBoolToObject(j, "chat_template", o->chat_template);
    cJSON_AddStringToObject(j, "scorer", scb_score_variant_name((enum scb_score_variant)o->variant));
    char *s = cJSON_PrintUnformatted(j);
    if (!s) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
    *out = scb_strdup(s);
    cJSON_free(s);
    if (!*out) rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
out:
    cJSON_Delete(j);
    return rc;
}

/* ---- the run ----------------------------------------------------------------------------- */

static int run_task(const struct scb_run_opts *o, struct engine *e, struct scb_recorder *rec,
                    int64_t run_id, const char *task, struct scb_method_spec *specs,
                    char **spec_names, size_t n_methods, struct progress *pg,
                    struct scb_run_summary *sum, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct source src;
    char *path = NULL;
    struct scb_session s;
    memset(&s, 0, sizeof s);
    memset(&src, 0, sizeof src);
    const struct scb_task_ops *tops = scb_task_find(prompt_task_name(task));
    if (!tops) SCB_TRY(scb_err(ctx, SCB_E_NOTFOUND, "unknown task '%s'", task));
    const char *rec_task = tops->name;   /* recorded under the task whose prompts it uses */
    SCB_TRY(source_open(&src, o, task, e, &path, ctx));

    struct scb_prompt_opts popts[2];
    int have_turns = 0;
    const int modes[2] = {SCB_RUN_MULTI_TURN, SCB_RUN_MULTI_REQUEST};
    for (;;) {
        if (o->stop && *o->stop) SCB_TRY(scb_err(ctx, SCB_E_INTERRUPTED, "interrupted"));
        scb_session_fini(&s);
        rc = source_next(&src, &s, ctx);
        if (rc == 0) break;
        if (rc < 0) { scb_err_prefix(ctx, "%s: ", task); goto out; }
        rc = SCB_OK;
        if (!have_turns) {
            for (int m = 0; m < 2; m++)
                scb_prompt_io_opts(&popts[m], m, o->chat_template, o->golden, o->max_seq_len, s.n_turns,
                                   o->max_turns);
            have_turns = 1;
        }
        for (int m = 0; m < 2; m++) {
            if (!(o->modes & modes[m])) continue;
            const char *mode = m ? "multi_request" : "multi_turn";
            /* which methods still need this session */
            int need = 0;
            int done[64] = {0};
            for (size_t k = 0; k < n_methods && k < 64; k++) {
                SCB_TRY(scb_recorder_session_done(rec, run_id, spec_names[k], rec_task, mode, s.index,
                                                  &done[k], ctx));
                if (!done[k]) need = 1;
                else { sum->sessions_skipped++; pg->done++; }
            }
            if (!need) continue;
            struct scb_turn_plan plan;
            rc = scb_prompt_io_plan(&e->pio, &plan, tops, &s, &popts[m], ctx);
            if (rc < 0) { scb_prompt_plan_fini(&plan); scb_err_prefix(ctx, "%s session %ld: ", task, s.index); goto out; }
            for (size_t k = 0; k < n_methods && rc == SCB_OK; k++) {
                if (done[k]) continue;
                struct scb_method_binding *b = NULL;
                struct turn_out *outs = scb_calloc(plan.n_turns ? plan.n_turns : 1, sizeof *outs);
                double *scores = scb_calloc(plan.n_turns ? plan.n_turns : 1, sizeof *scores);
                if (!outs || !scores) rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
                if (!rc) rc = scb_method_bind_create(&b, e->model, &specs[k], ctx);
                if (!rc) {
                    pg->stop_requested = o->stop;
                    rc = run_plan(e, b, &plan, o->golden, outs, pg, task, s.index, spec_names[k], ctx);
                }
                if (!rc) rc = score_session(&plan, &s, outs, m, o->variant, scores, ctx);
                if (!rc) rc = record_session(rec, run_id, spec_names[k], rec_task, mode, &s, &plan,
                                             outs, scores, o->variant, ctx);
                if (!rc) {
                    sum->sessions_done++;
                    sum->turns_done += (long)plan.n_turns;
                    pg->done++;
                } else if (rc != SCB_E_INTERRUPTED) {
                    scb_err_prefix(ctx, "%s %s session %ld, method %s: ", task, mode, s.index, spec_names[k]);
                }
                scb_method_bind_destroy(b);
                turn_outs_fini(outs, plan.n_turns);
                scb_free(scores);
            }
            scb_prompt_plan_fini(&plan);
            if (rc < 0) goto out;
        }
    }
out:
    scb_session_fini(&s);
    source_close(&src);
    scb_free(path);
    return rc;
}

int scb_driver_run(const struct scb_run_opts *o, struct scb_run_summary *sum, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct engine e;
    struct scb_recorder *rec = NULL;
    struct scb_method_spec *specs = NULL;
    char **spec_names = NULL;
    char *config = NULL;
    const char **tasks = NULL;
    size_t n_tasks = 0;
    int64_t run_id = 0;
    int run_started = 0;
    static const char *const default_method = "dense";
    char **methods = NULL;       /* the list with "all" expanded (scb_method_list_expand) */
    size_t n_methods = 0;
    memset(&e, 0, sizeof e);
    memset(sum, 0, sizeof *sum);

    if (!o->model_dir) return scb_err(ctx, SCB_E_INVAL, "no model given (--model DIR)");
    if (!o->modes) return scb_err(ctx, SCB_E_INVAL, "no mode selected");
    SCB_TRY(scb_method_list_expand(o->n_methods ? o->methods : &default_method, o->n_methods ? o->n_methods : 1,
                                   &methods, &n_methods, ctx));
    if (n_methods > 64) SCB_TRY(scb_err(ctx, SCB_E_INVAL, "at most 64 method specs per run"));

    /* methods: parse every spec before loading anything, so typos fail fast */
    specs = scb_calloc(n_methods, sizeof *specs);
    spec_names = scb_calloc(n_methods, sizeof *spec_names);
    if (!specs || !spec_names) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
    for (size_t k = 0; k < n_methods; k++) {
        SCB_TRY(scb_method_spec_parse(methods[k], &specs[k], ctx));
        SCB_TRY(scb_method_spec_string(&specs[k], &spec_names[k], ctx));
    }

    /* tasks */
    tasks = scb_calloc(o->n_tasks ? o->n_tasks : 16, sizeof *tasks);
    if (!tasks) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
    if (o->n_tasks) {
        for (size_t i = 0; i < o->n_tasks; i++) {
            if (is_synthetic(o)) {
                enum scb_synth_task st;
                SCB_TRY(scb_synth_task_parse(o->tasks[i], &st, ctx));
                tasks[n_tasks++] = scb_synth_task_name(st);
            } else {
                const struct scb_task_ops *t = scb_task_find(o->tasks[i]);
                if (!t) {
                    struct scb_buf b = {0};
                    for (size_t k = 0; k < scb_task_count(); k++)
                        scb_buf_printf(&b, "%s%s", k ? ", " : "", scb_task_at(k)->name);
                    rc = scb_err(ctx, SCB_E_NOTFOUND, "unknown task '%s'; tasks are: %s", o->tasks[i],
                                 b.data ? b.data : "");
                    scb_buf_fini(&b);
                    goto out;
                }
                tasks[n_tasks++] = t->name;
            }
        }
    } else if (is_synthetic(o)) {
        for (size_t i = 0; i < sizeof synth_tasks / sizeof synth_tasks[0]; i++) tasks[n_tasks++] = synth_tasks[i];
    } else {
        /* every task whose file is in the folder (or the one task a single file holds) */
        for (size_t k = 0; k < scb_task_count(); k++) {
            const char *name = scb_task_at(k)->name;
            char *p = NULL;
            struct scb_ctx quiet = {0};
            if (scb_file_exists(o->data) && strstr(o->data, ".jsonl")) {
                char t[128];
                scb_dataset_task_from_path(o->data, t, sizeof t);
                const struct scb_task_ops *tt = scb_task_find(t);
                if (tt && !strcmp(tt->name, name)) tasks[n_tasks++] = name;
            } else if (scb_dataset_resolve(o->data, name, &p, &quiet) == SCB_OK) {
                tasks[n_tasks++] = name;
            }
            scb_free(p);
        }
        if (!n_tasks)
            SCB_TRY(scb_err(ctx, SCB_E_NOTFOUND, "%s: no SCBench data files (scbench_<task>.jsonl[.gz]) found",
                            o->data));
    }

    SCB_TRY(engine_init(&e, o, ctx));
    SCB_TRY(build_config(o, tasks, n_tasks, specs, n_methods, &config, ctx));

    /* provenance */
    char model_hash[17], tok_hash[17], data_hash[17], host[256] = "", device[256];
    hex64(hash_model_dir(o->model_dir), model_hash);
    hex64(scb_tokenizer_hash(e.pio.tok), tok_hash);
    uint64_t dh = SCB_HASH64_INIT;
    for (size_t i = 0; i < n_tasks; i++) {
        if (is_synthetic(o)) {
            char b[160];
            snprintf(b, sizeof b, "%s:%ld:%llu;", tasks[i], o->synth_tokens, (unsigned long long)o->seed);
            dh = scb_hash64(b, strlen(b), dh);
        } else {
            char *p = NULL;
            struct scb_ctx quiet = {0};
            if (scb_file_exists(o->data) && strstr(o->data, ".jsonl")) p = scb_strdup(o->data);
            else scb_dataset_resolve(o->data, tasks[i], &p, &quiet);
            if (p) dh = hash_file(p, dh, SIZE_MAX);
            scb_free(p);
        }
    }
    hex64(dh, data_hash);
    gethostname(host, sizeof host - 1);
    cpu_name(device, sizeof device);

    SCB_TRY(scb_recorder_open(&rec, o->db_path, ctx));
    struct scb_run_info info = {
        .config_json = config, .host = host, .device = device, .driver_version = "",
        .cuda_version = "", .backend = "cpu", .model_path = o->model_dir,
        .model_hash = model_hash, .tokenizer_hash = tok_hash, .dataset_path = o->data,
        .dataset_hash = data_hash,
        .scorer = scb_score_variant_name((enum scb_score_variant)o->variant),
        .seed = (int64_t)o->seed, .max_seq_len = o->max_seq_len, .force_new = o->force_new,
    };
    SCB_TRY(scb_recorder_begin_run(rec, &info, &run_id, &sum->resumed, ctx));
    sum->run_id = run_id;
    run_started = 1;

    struct progress pg = {.on = o->progress, .t0 = scb_now_ms()};
    if (o->sessions > 0 || is_synthetic(o)) {
        long per = o->sessions > 0 ? o->sessions : 5;
        int nm = ((o->modes & SCB_RUN_MULTI_TURN) ? 1 : 0) + ((o->modes & SCB_RUN_MULTI_REQUEST) ? 1 : 0);
        pg.total = per * (long)n_tasks * (long)n_methods * nm;
    }
    for (size_t i = 0; i < n_tasks; i++)
        SCB_TRY(run_task(o, &e, rec, run_id, tasks[i], specs, spec_names, n_methods, &pg, sum, ctx));
    if (pg.on) fprintf(stderr, "\r\033[K");

out:
    if (o->progress && rc) fprintf(stderr, "\n");
    if (run_started) {
        struct scb_ctx c2 = {0};
        int st = rc == SCB_OK ? SCB_RUN_FINISHED : rc == SCB_E_INTERRUPTED ? SCB_RUN_INTERRUPTED : SCB_RUN_FAILED;
        scb_recorder_finish_run(rec, run_id, st, rc ? scb_errmsg(ctx) : NULL, &c2);
    }
    scb_recorder_close(rec);
    engine_fini(&e);
    if (specs)
        for (size_t k = 0; k < n_methods; k++) scb_method_spec_fini(&specs[k]);
    if (spec_names)
        for (size_t k = 0; k < n_methods; k++) scb_free(spec_names[k]);
    scb_free(specs);
    scb_free(spec_names);
    scb_method_list_free(methods, n_methods);
    scb_free(config);
    scb_free(tasks);
    return rc;
}
