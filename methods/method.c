/* method.c — method instances, typed options, hook wrappers and spec parsing (see method.h). */
#include "methods/method.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"
#include "methods/dense.h"

/* ---- options ------------------------------------------------------------------------------ */
static const struct scb_option *opt_find(const struct scb_method_ops *ops, const char *name)
{
    for (const struct scb_option *o = ops->options; o && o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

static void fmt_double(double v, char *buf, size_t n)
{
    snprintf(buf, n, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
}

/* Parse text for option o into the priv struct p. */
static int opt_parse(const struct scb_method_ops *ops, const struct scb_option *o, const char *val,
                     void *p, struct scb_ctx *ctx)
{
    char *f = (char *)p + o->offset;
    char *end = NULL;
    int ranged = o->min <= o->max;
    switch (o->type) {
    case SCB_OPT_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end || v < -2147483647L || v > 2147483647L ||
            (ranged && (v < o->min || v > o->max)))
            return ranged ? scb_err(ctx, SCB_E_INVAL, "%s: option %s expects an integer in [%.0f, %.0f], got '%s'",
                                    ops->name, o->name, o->min, o->max, val)
                          : scb_err(ctx, SCB_E_INVAL, "%s: option %s expects an integer, got '%s'",
                                    ops->name, o->name, val);
        *(int *)f = (int)v;
        return SCB_OK;
    }
    case SCB_OPT_FLOAT: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v) || (ranged && (v < o->min || v > o->max)))
            return ranged ? scb_err(ctx, SCB_E_INVAL, "%s: option %s expects a number in [%g, %g], got '%s'",
                                    ops->name, o->name, o->min, o->max, val)
                          : scb_err(ctx, SCB_E_INVAL, "%s: option %s expects a number, got '%s'",
                                    ops->name, o->name, val);
        *(double *)f = v;
        return SCB_OK;
    }
    case SCB_OPT_BOOL:
        if (!strcasecmp(val, "true") || !strcmp(val, "1") || !strcasecmp(val, "yes")) *(int *)f = 1;
        else if (!strcasecmp(val, "false") || !strcmp(val, "0") || !strcasecmp(val, "no")) *(int *)f = 0;
        else return scb_err(ctx, SCB_E_INVAL, "%s: option %s expects true or false, got '%s'",
                            ops->name, o->name, val);
        return SCB_OK;
    case SCB_OPT_STRING: {
        size_t n = strlen(val);
        if (n >= SCB_OPT_STR_MAX)
            return scb_err(ctx, SCB_E_INVAL, "%s: option %s is longer than %d bytes", ops->name, o->name,
                           SCB_OPT_STR_MAX - 1);
        if (o->choices) {
            int ok = 0;
            const char *c = o->choices;
            while (*c) {
                const char *bar = strchr(c, '|');
                size_t cl = bar ? (size_t)(bar - c) : strlen(c);
                if (cl == n && !strncmp(c, val, n)) ok = 1;
                c += cl + (bar ? 1 : 0);
                if (!bar) break;
            }
            if (!ok) return scb_err(ctx, SCB_E_INVAL, "%s: option %s must be one of %s, got '%s'",
                                    ops->name, o->name, o->choices, val);
        }
        memcpy(f, val, n + 1);
        return SCB_OK;
    }
    default:
        return scb_err(ctx, SCB_E_INVAL, "%s: option %s has an unknown type %d", ops->name, o->name, o->type);
    }
}

static void opt_format(const struct scb_option *o, const void *p, char *buf, size_t n)
{
    const char *f = (const char *)p + o->offset;
    switch (o->type) {
    case SCB_OPT_INT: snprintf(buf, n, "%d", *(const int *)f); break;
    case SCB_OPT_FLOAT: fmt_double(*(const double *)f, buf, n); break;
    case SCB_OPT_BOOL: snprintf(buf, n, "%s", *(const int *)f ? "true" : "false"); break;
    default: snprintf(buf, n, "%s", f); break;
    }
}

int scb_method_create(struct scb_method *m, const struct scb_method_ops *ops, struct scb_ctx *ctx)
{
    memset(m, 0, sizeof *m);
    if (!ops || ops->abi != SCB_METHOD_ABI)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "method %s: ABI %u, this build speaks %d",
                       ops && ops->name ? ops->name : "?", ops ? ops->abi : 0, SCB_METHOD_ABI);
    m->ops = ops;
    m->priv = scb_calloc(1, ops->priv_size ? ops->priv_size : 1);
    if (!m->priv) return scb_err(ctx, SCB_E_NOMEM, "method %s: out of memory", ops->name);
    int rc = SCB_OK;
    for (const struct scb_option *o = ops->options; o && o->name; o++) {
        rc = opt_parse(ops, o, o->def, m->priv, ctx);
        if (rc) { scb_err_prefix(ctx, "default of "); scb_method_fini(m); return rc; }
    }
    return rc;
}

static void list_options(const struct scb_method_ops *ops, struct scb_buf *b)
{
    if (!ops->options || !ops->options[0].name) { scb_buf_puts(b, "it has no options"); return; }
    scb_buf_puts(b, "options are:");
    for (const struct scb_option *o = ops->options; o->name; o++)
        scb_buf_printf(b, "%s %s (%s, default %s)", o == ops->options ? "" : ",", o->name,
                       scb_option_type_name(o->type), o->def);
}

int scb_method_set(struct scb_method *m, const char *name, const char *value, struct scb_ctx *ctx)
{
    const struct scb_option *o = opt_find(m->ops, name);
    if (!o) {
        struct scb_buf b = {0};
        list_options(m->ops, &b);
        int rc = scb_err(ctx, SCB_E_NOTFOUND, "%s: unknown option '%s'; %s", m->ops->name, name,
                         b.data ? b.data : "");
        scb_buf_fini(&b);
        return rc;
    }
    return opt_parse(m->ops, o, value, m->priv, ctx);
}

int scb_method_get(const struct scb_method *m, const char *name, char *buf, size_t n)
{
    const struct scb_option *o = opt_find(m->ops, name);
    if (!o) return SCB_E_NOTFOUND;
    opt_format(o, m->priv, buf, n);
    return SCB_OK;
}

int scb_method_opt_int(const struct scb_method *m, const char *name)
{
    const struct scb_option *o = opt_find(m->ops, name);
    SCB_ASSERT(o && (o->type == SCB_OPT_INT || o->type == SCB_OPT_BOOL));
    return *(const int *)((const char *)m->priv + o->offset);
}

double scb_method_opt_float(const struct scb_method *m, const char *name)
{
    const struct scb_option *o = opt_find(m->ops, name);
    SCB_ASSERT(o && o->type == SCB_OPT_FLOAT);
    return *(const double *)((const char *)m->priv + o->offset);
}

const char *scb_method_opt_str(const struct scb_method *m, const char *name)
{
    const struct scb_option *o = opt_find(m->ops, name);
    SCB_ASSERT(o && o->type == SCB_OPT_STRING);
    return (const char *)m->priv + o->offset;
}

int scb_method_init(struct scb_method *m, const struct scb_model_info *mi, struct scb_ctx *ctx)
{
    if (!mi || mi->L <= 0 || mi->Hq <= 0 || mi->Hkv <= 0 || mi->D <= 0 || mi->Hq % mi->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "method %s: bad model shape", m->ops->name);
    m->mi = *mi;
    return m->ops->init ? m->ops->init(m, ctx) : SCB_OK;
}

void scb_method_fini(struct scb_method *m)
{
    if (!m) return;
    if (m->ops && m->ops->fini) m->ops->fini(m);
    scb_free(m->priv);
    memset(m, 0, sizeof *m);
}

/* ---- hook wrappers -------------------------------------------------------------------------- */
int scb_method_prefill_attn(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    if (m && m->ops && m->ops->prefill_attn) return m->ops->prefill_attn(m, a, ctx);
    return scb_attn_dense_ref(a, ctx);
}

int scb_method_kv_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                                struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    if (m && m->ops && m->ops->kv_after_prefill) return m->ops->kv_after_prefill(m, a, keep, ctx);
    int rc = scb_kv_keep_init(keep, a->Hkv, 1, a->N, ctx);
    if (rc) return rc;
    scb_kv_keep_all(keep);
    return SCB_OK;
}

int scb_method_decode_attn(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx)
{
    if (m && m->ops && m->ops->decode_attn) return m->ops->decode_attn(m, a, ctx);
    return scb_attn_dense_ref(a, ctx);
}

int scb_method_turn_end(struct scb_method *m, struct scb_ctx *ctx)
{
    if (m && m->ops && m->ops->turn_end) return m->ops->turn_end(m, ctx);
    return SCB_OK;
}

void scb_method_cost_dense(const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct scb_model_info *mi = cq->mi;
    memset(out, 0, sizeof *out);
    out->kv_entries = (int64_t)mi->L * mi->Hkv * cq->T;
    out->kv_bytes = 2 * out->kv_entries * mi->D * cq->elt_bytes;
    out->kv_bytes_device = out->kv_bytes;
    out->read_bytes_step = out->kv_bytes;
    out->prefill_density = 1.0;
}

void scb_method_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    if (m && m->ops && m->ops->cost) m->ops->cost(m, cq, out);
    else scb_method_cost_dense(cq, out);
}

/* ---- specs ---------------------------------------------------------------------------------- */
static void list_methods(struct scb_buf *b)
{
    scb_buf_puts(b, "methods are:");
    const struct scb_method_ops *const *all = scb_method_all();
    for (int i = 0; all[i]; i++) scb_buf_printf(b, "%s %s", i ? "," : "", all[i]->name);
}

/* Parse one "name[:k=v,...]" part into m. */
static int parse_part(const char *spec, const char *part, struct scb_method *m, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *dup = scb_strdup(part);
    if (!dup) return scb_err(ctx, SCB_E_NOMEM, "method spec: out of memory");
    char *colon = strchr(dup, ':');
    if (colon) *colon = 0;
    if (!*dup) { rc = scb_err(ctx, SCB_E_INVAL, "method spec '%s': empty method name", spec); goto out; }
    const struct scb_method_ops *ops = scb_method_find(dup);
    if (!ops) {
        struct scb_buf b = {0};
        list_methods(&b);
        rc = scb_err(ctx, SCB_E_NOTFOUND, "method spec '%s': unknown method '%s'; %s", spec, dup,
                     b.data ? b.data : "");
        scb_buf_fini(&b);
        goto out;
    }
    SCB_TRY(scb_method_create(m, ops, ctx));
    if (colon) {
        char *s = colon + 1;
        if (!*s) { rc = scb_err(ctx, SCB_E_INVAL, "method spec '%s': '%s:' has no options after ':'", spec, dup); goto out; }
        while (s) {
            char *comma = strchr(s, ',');
            if (comma) *comma = 0;
            char *eq = strchr(s, '=');
            if (!eq || eq == s) {
                rc = scb_err(ctx, SCB_E_INVAL, "method spec '%s': option '%s' of %s is not name=value",
                             spec, s, dup);
                goto out;
            }
            *eq = 0;
            rc = scb_method_set(m, s, eq + 1, ctx);
            if (rc) { scb_err_prefix(ctx, "method spec '%s': ", spec); goto out; }
            s = comma ? comma + 1 : NULL;
        }
    }
out:
    if (rc) scb_method_fini(m);
    scb_free(dup);
    return rc;
}

int scb_method_spec_parse(const char *text, struct scb_method_spec *out, struct scb_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) return scb_err(ctx, SCB_E_INVAL, "method spec is empty (try 'dense')");
    int rc = SCB_OK;
    struct scb_method parts[2];
    memset(parts, 0, sizeof parts);
    int np = 0;
    char *dup = scb_strdup(text);
    if (!dup) return scb_err(ctx, SCB_E_NOMEM, "method spec: out of memory");
    char *s = dup;
    while (s) {
        char *plus = strchr(s, '+');
        if (plus) *plus = 0;
        if (np == 2) {
            rc = scb_err(ctx, SCB_E_INVAL, "method spec '%s': at most two methods (one prefill pattern "
                         "+ one KV policy) can be combined", text);
            goto out;
        }
        SCB_TRY(parse_part(text, s, &parts[np], ctx));
        np++;
        s = plus ? plus + 1 : NULL;
    }
    struct scb_method *pre = NULL, *kv = NULL;
    for (int i = 0; i < np; i++) {
        int ax = parts[i].ops->axis;
        if (ax == SCB_AXIS_BOTH) continue;
        struct scb_method **slot = ax == SCB_AXIS_PREFILL ? &pre : &kv;
        if (*slot) {
            rc = scb_err(ctx, SCB_E_INVAL, "method spec '%s': %s and %s are both %s; combine at most one "
                         "prefill pattern (dense, a_shape, tri_shape, minference, cacheblend) with one KV "
                         "policy (dense, streamingllm, snapkv, pyramidkv, kivi, quest, retr_attn)", text,
                         (*slot)->ops->name, parts[i].ops->name,
                         ax == SCB_AXIS_PREFILL ? "prefill patterns" : "KV policies");
            goto out;
        }
        *slot = &parts[i];
    }
    if (pre) { out->prefill = *pre; memset(pre, 0, sizeof *pre); }
    else SCB_TRY(scb_method_create(&out->prefill, scb_method_find("dense"), ctx));
    if (kv) { out->kv = *kv; memset(kv, 0, sizeof *kv); }
    else SCB_TRY(scb_method_create(&out->kv, scb_method_find("dense"), ctx));
out:
    for (int i = 0; i < 2; i++) scb_method_fini(&parts[i]);
    if (rc) scb_method_spec_fini(out);
    scb_free(dup);
    return rc;
}

void scb_method_spec_fini(struct scb_method_spec *s)
{
    if (!s) return;
    scb_method_fini(&s->prefill);
    scb_method_fini(&s->kv);
}

static int append_method(struct scb_buf *b, const struct scb_method *m)
{
    int rc = scb_buf_puts(b, m->ops->name);
    int first = 1;
    char val[SCB_OPT_STR_MAX + 8], def[SCB_OPT_STR_MAX + 8];
    void *tmp = scb_calloc(1, m->ops->priv_size ? m->ops->priv_size : 1);
    if (!tmp) return SCB_E_NOMEM;
    for (const struct scb_option *o = m->ops->options; o && o->name && !rc; o++) {
        opt_parse(m->ops, o, o->def, tmp, NULL);
        opt_format(o, tmp, def, sizeof def);
        opt_format(o, m->priv, val, sizeof val);
        if (!strcmp(val, def)) continue;
        rc = scb_buf_printf(b, "%c%s=%s", first ? ':' : ',', o->name, val);
        first = 0;
    }
    scb_free(tmp);
    return rc;
}

int scb_method_spec_string(const struct scb_method_spec *s, char **out, struct scb_ctx *ctx)
{
    struct scb_buf b = {0};
    int rc = SCB_OK;
    *out = NULL;
    int pd = !strcmp(s->prefill.ops->name, "dense"), kd = !strcmp(s->kv.ops->name, "dense");
    if (pd && kd) rc = scb_buf_puts(&b, "dense");
    if (!pd && !rc) rc = append_method(&b, &s->prefill);
    if (!pd && !kd && !rc) rc = scb_buf_putc(&b, '+');
    if (!kd && !rc) rc = append_method(&b, &s->kv);
    if (rc) { scb_buf_fini(&b); return scb_err(ctx, SCB_E_NOMEM, "method spec: out of memory"); }
    *out = scb_buf_steal(&b);
    return SCB_OK;
}

static cJSON *method_json(const struct scb_method *m)
{
    cJSON *o = cJSON_CreateObject(), *opts = cJSON_CreateObject();
    if (!o || !opts) { cJSON_Delete(o); cJSON_Delete(opts); return NULL; }
    cJSON_AddStringToObject(o, "name", m->ops->name);
    cJSON_AddStringToObject(o, "stage", scb_method_stage_name(m->ops->stage));
    cJSON_AddItemToObject(o, "options", opts);
    for (const struct scb_option *op = m->ops->options; op && op->name; op++) {
        const char *f = (const char *)m->priv + op->offset;
        switch (op->type) {
        case SCB_OPT_INT: cJSON_AddNumberToObject(opts, op->name, *(const int *)f); break;
        case SCB_OPT_FLOAT: cJSON_AddNumberToObject(opts, op->name, *(const double *)f); break;
        case SCB_OPT_BOOL: cJSON_AddBoolToObject(opts, op->name, *(const int *)f); break;
        default: cJSON_AddStringToObject(opts, op->name, f); break;
        }
    }
    return o;
}

int scb_method_spec_json(const struct scb_method_spec *s, char **out, struct scb_ctx *ctx)
{
    *out = NULL;
    char *str = NULL;
    int rc = scb_method_spec_string(s, &str, ctx);
    if (rc) return rc;
    cJSON *root = cJSON_CreateObject();
    cJSON *p = method_json(&s->prefill), *k = method_json(&s->kv);
    char *txt = NULL;
    if (!root || !p || !k) { cJSON_Delete(p); cJSON_Delete(k); goto nomem; }
    cJSON_AddStringToObject(root, "spec", str);
    cJSON_AddItemToObject(root, "prefill", p);
    cJSON_AddItemToObject(root, "kv", k);
    txt = cJSON_PrintUnformatted(root);
    if (!txt) goto nomem;
    *out = scb_strdup(txt);
    cJSON_free(txt);
    cJSON_Delete(root);
    scb_free(str);
    return *out ? SCB_OK : scb_err(ctx, SCB_E_NOMEM, "method spec: out of memory");
nomem:
    cJSON_Delete(root);
    scb_free(str);
    return scb_err(ctx, SCB_E_NOMEM, "method spec: out of memory");
}
