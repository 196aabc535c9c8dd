/* chat_template.c — a model's chat template, rendered as transformers' apply_chat_template
 * (tokenize=False) renders it: the template comes from DIR/chat_template.jinja, else
 * DIR/chat_template.json, else the `chat_template` of DIR/tokenizer_config.json (a string,
 * or a list of {name, template} where "default" is used); the variables are messages,
 * add_generation_prompt, tools = documents = None and the named special tokens of
 * tokenizer_config.json (bos/eos/unk/sep/pad/cls/mask, a string or {"content": ...}).
 * Jinja itself is harness/jinja.c. */
#include "harness/chat_template.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>

#include "harness/jinja.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

struct scb_chat_template {
    struct scb_jinja_tmpl *tmpl;
    cJSON *tokens;       /* object: special-token name -> string */
    char *origin;        /* "DIR/tokenizer_config.json" etc., for error messages */
    long long now;       /* 0 = real clock */
};

static const char *const special_names[] = {
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", NULL
};

/* special tokens of a config object: a string or an AddedToken object {"content": ...} */
static int add_special_tokens(cJSON *dst, const cJSON *cfg, const char *path, struct scb_ctx *ctx)
{
    for (int i = 0; special_names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, special_names[i]);
        if (!v || cJSON_IsNull(v) || cJSON_GetObjectItemCaseSensitive(dst, special_names[i])) continue;
        const char *s = NULL;
        if (cJSON_IsString(v)) s = v->valuestring;
        else if (cJSON_IsObject(v)) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
            if (cJSON_IsString(c)) s = c->valuestring;
        }
        if (!s) return scb_err(ctx, SCB_E_FORMAT, "%s: \"%s\" must be a string or an object with a string \"content\"", path, special_names[i]);
        if (!cJSON_AddStringToObject(dst, special_names[i], s)) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
    return SCB_OK;
}

/* the template string inside a config value: string, or list of {name, template} */
static int pick_template(const cJSON *v, const char *path, const char **out, struct scb_ctx *ctx)
{
    if (cJSON_IsString(v)) { *out = v->valuestring; return SCB_OK; }
    if (cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default")) {
                if (!cJSON_IsString(tp)) return scb_err(ctx, SCB_E_FORMAT, "%s: chat_template \"default\" has no string \"template\"", path);
                *out = tp->valuestring;
                return SCB_OK;
            }
        }
        return scb_err(ctx, SCB_E_FORMAT, "%s: chat_template is a list of named templates without one named \"default\"", path);
    }
    return scb_err(ctx, SCB_E_FORMAT, "%s: chat_template must be a string or a list of {name, template}", path);
}

static int compile_into(struct scb_chat_template *t, const char *src, const char *origin, struct scb_ctx *ctx)
{
    int rc = scb_jinja_compile(&t->tmpl, src, strlen(src), ctx);
    if (rc < 0) return origin ? scb_err_prefix(ctx, "%s: chat template ", origin) : scb_err_prefix(ctx, "template ");
    if (!origin) return SCB_OK;
    t->origin = scb_strdup(origin);
    if (!t->origin) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    return SCB_OK;
}

int scb_chat_template_load(struct scb_chat_template **out, const char *model_dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_chat_template *t = NULL;
    char *cfg_path = NULL, *jinja_path = NULL, *json_path = NULL, *stm_path = NULL, *src = NULL;
    cJSON *cfg = NULL, *tj = NULL, *stm = NULL;
    *out = NULL;
    if (!model_dir) return scb_err(ctx, SCB_E_INVAL, "no model directory given");
    t = scb_calloc(1, sizeof *t);
    cfg_path = scb_path_join(model_dir, "tokenizer_config.json");
    jinja_path = scb_path_join(model_dir, "chat_template.jinja");
    json_path = scb_path_join(model_dir, "chat_template.json");
    stm_path = scb_path_join(model_dir, "special_tokens_map.json");
    if (!t || !cfg_path || !jinja_path || !json_path || !stm_path || !(t->tokens = cJSON_CreateObject())) {
        rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
        goto out;
    }
    int have_cfg = scb_file_exists(cfg_path);
    if (have_cfg) {
        SCB_TRY(scb_json_load(cfg_path, &cfg, ctx));
        if (!cJSON_IsObject(cfg)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: not a JSON object", cfg_path); goto out; }
        SCB_TRY(add_special_tokens(t->tokens, cfg, cfg_path, ctx));
    }
    if (scb_file_exists(stm_path)) {
        SCB_TRY(scb_json_load(stm_path, &stm, ctx));
        if (cJSON_IsObject(stm)) SCB_TRY(add_special_tokens(t->tokens, stm, stm_path, ctx));
    }
    if (scb_file_exists(jinja_path)) {
        size_t len;
        SCB_TRY(scb_file_read(jinja_path, &src, &len, ctx));
        if (strlen(src) != len) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: contains a NUL byte", jinja_path); goto out; }
        SCB_TRY(compile_into(t, src, jinja_path, ctx));
    } else if (scb_file_exists(json_path)) {
        SCB_TRY(scb_json_load(json_path, &tj, ctx));
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(tj, "chat_template");
        if (!v) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: no \"chat_template\" key", json_path); goto out; }
        const char *s;
        SCB_TRY(pick_template(v, json_path, &s, ctx));
        SCB_TRY(compile_into(t, s, json_path, ctx));
    } else if (have_cfg) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (!v || cJSON_IsNull(v)) {
            rc = scb_err(ctx, SCB_E_NOTFOUND, "%s: no \"chat_template\" (and no chat_template.jinja beside it); "
                         "this model has no chat template (pass --template FILE)", cfg_path);
            goto out;
        }
        const char *s;
        SCB_TRY(pick_template(v, cfg_path, &s, ctx));
        SCB_TRY(compile_into(t, s, cfg_path, ctx));
    } else {
        rc = scb_err(ctx, SCB_E_IO, "%s: no tokenizer_config.json or chat_template.jinja in this directory", model_dir);
        goto out;
    }
    *out = t;
    t = NULL;
out:
    scb_chat_template_destroy(t);
    cJSON_Delete(cfg); cJSON_Delete(tj); cJSON_Delete(stm);
    scb_free(cfg_path); scb_free(jinja_path); scb_free(json_path); scb_free(stm_path); scb_free(src);
    return rc;
}

int scb_chat_template_from_string(struct scb_chat_template **out, const char *source,
                                  const char *bos_token, const char *eos_token, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_chat_template *t = NULL;
    *out = NULL;
    if (!source) return scb_err(ctx, SCB_E_INVAL, "no template source");
    t = scb_calloc(1, sizeof *t);
    if (!t || !(t->tokens = cJSON_CreateObject())) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if ((bos_token && !cJSON_AddStringToObject(t->tokens, "bos_token", bos_token)) ||
        (eos_token && !cJSON_AddStringToObject(t->tokens, "eos_token", eos_token))) {
        rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
        goto out;
    }
    SCB_TRY(compile_into(t, source, NULL, ctx));
    *out = t;
    t = NULL;
out:
    scb_chat_template_destroy(t);
    return rc;
}

void scb_chat_template_destroy(struct scb_chat_template *t)
{
    if (!t) return;
    scb_jinja_destroy(t->tmpl);
    cJSON_Delete(t->tokens);
    scb_free(t->origin);
    scb_free(t);
}

void scb_chat_template_set_time(struct scb_chat_template *t, long long unix_seconds)
{
    if (t) t->now = unix_seconds;
}

int scb_chat_template_render(const struct scb_chat_template *t, const struct scb_chat_msg *msgs,
                             size_t n, int add_generation_prompt, char **out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    cJSON *vars = NULL, *list;
    *out = NULL;
    if (!t || (!msgs && n)) return scb_err(ctx, SCB_E_INVAL, "chat template render: bad arguments");
    if (!n) return scb_err(ctx, SCB_E_INVAL, "cannot apply a chat template to an empty conversation");
    if (!(vars = cJSON_Duplicate(t->tokens, 1))) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if (!(list = cJSON_AddArrayToObject(vars, "messages"))) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !msgs[i].content) { rc = scb_err(ctx, SCB_E_INVAL, "message %zu has no role or content", i); goto out; }
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddItemToArray(list, m) || !cJSON_AddStringToObject(m, "role", msgs[i].role) ||
            !cJSON_AddStringToObject(m, "content", msgs[i].content)) {
            if (m && !m->prev) cJSON_Delete(m);
            rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
            goto out;
        }
    }
    if (!cJSON_AddBoolToObject(vars, "add_generation_prompt", add_generation_prompt) ||
        !cJSON_AddNullToObject(vars, "tools") || !cJSON_AddNullToObject(vars, "documents")) {
        rc = scb_err(ctx, SCB_E_NOMEM, "out of memory");
        goto out;
    }
    if (t->now) {
        /* a fixed date also fixes date_string (Llama-3.x templates default it themselves) */
        char ds[64];
        time_t tt = (time_t)t->now;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(ds, sizeof ds, "%d %b %Y", &tm);
        if (!cJSON_AddStringToObject(vars, "date_string", ds)) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    }
    rc = scb_jinja_render(t->tmpl, vars, t->now, out, NULL, ctx);
    if (rc < 0) {
        if (t->origin) scb_err_prefix(ctx, "%s: chat template ", t->origin);
        else scb_err_prefix(ctx, "template ");
    }
out:
    cJSON_Delete(vars);
    return rc;
}
