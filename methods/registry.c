/* registry.c — every long-context method scbench knows, in the order `scbench methods` lists
 * them, plus the dense identity entry. Adding a method: one file with its scb_method_ops, one
 * line here. */
#include "methods/method.h"

#include <string.h>

#include "kernels/alloc.h"

#include "methods/a_shape.h"
#include "methods/cacheblend.h"
#include "methods/kivi.h"
#include "methods/minference.h"
#include "methods/quest.h"
#include "methods/retr_attn.h"
#include "methods/snapkv.h"
#include "methods/streamingllm.h"

static const struct scb_method_ops dense_ops = {
    .abi = SCB_METHOD_ABI, .name = "dense", .stage = SCB_STAGE_NONE, .axis = SCB_AXIS_BOTH,
    .caps = SCB_CAP_CPU,
    .summary = "full causal attention, full KV cache (the baseline); identity on both axes",
    .scbench_name = "vllm;dense",
    .priv_size = 0, .options = NULL,
};

static const struct scb_method_ops *const all[] = {
    &dense_ops,
    &scb_method_a_shape,
    &scb_method_tri_shape,
    &scb_method_minference,
    &scb_method_streamingllm,
    &scb_method_snapkv,
    &scb_method_pyramidkv,
    &scb_method_kivi,
    &scb_method_cacheblend,
    &scb_method_quest,
    &scb_method_retr_attn,
    NULL
};

const struct scb_method_ops *const *scb_method_all(void) { return all; }

const struct scb_method_ops *scb_method_find(const char *name)
{
    for (int i = 0; name && all[i]; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    return NULL;
}

const char *scb_method_stage_name(int stage)
{
    switch (stage) {
    case SCB_STAGE_NONE: return "none";
    case SCB_STAGE_GENERATION: return "generation";
    case SCB_STAGE_COMPRESSION: return "compression";
    case SCB_STAGE_RETRIEVAL: return "retrieval";
    case SCB_STAGE_LOADING: return "loading";
    default: return "?";
    }
}

const char *scb_method_axis_name(int axis)
{
    switch (axis) {
    case SCB_AXIS_PREFILL: return "prefill";
    case SCB_AXIS_KV: return "kv";
    case SCB_AXIS_BOTH: return "both";
    default: return "?";
    }
}

const char *scb_option_type_name(int type)
{
    switch (type) {
    case SCB_OPT_INT: return "int";
    case SCB_OPT_FLOAT: return "float";
    case SCB_OPT_BOOL: return "bool";
    case SCB_OPT_STRING: return "string";
    default: return "?";
    }
}

void scb_method_list_free(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) scb_free(v[i]);
    scb_free(v);
}

/* Method name of a single-method spec ("snapkv:budget=64" -> "snapkv"); 0 for composites. */
static int spec_name(const char *spec, char *name, size_t cap)
{
    if (strchr(spec, '+')) return 0;
    size_t n = strcspn(spec, ":");
    if (n == 0 || n >= cap) return 0;
    memcpy(name, spec, n);
    name[n] = 0;
    return 1;
}

int scb_method_list_expand(const char *const *in, size_t n_in, char ***out, size_t *n_out,
                           struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t n_all = 0, n = 0;
    while (all[n_all]) n_all++;
    char **v = scb_calloc(n_in * n_all + 1, sizeof *v);
    unsigned char *from_all = scb_calloc(n_in * n_all + 1, 1);   /* entry came from "all" */
    if (!v || !from_all) {
        scb_free(v);
        scb_free(from_all);
        return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n_in; i++) {
        const char *s = in[i];
        char name[64];
        if (!strcmp(s, "all")) {
            for (size_t k = 0; k < n_all; k++) {
                int dup = 0;
                for (size_t j = 0; j < n && !dup; j++) {
                    char other[64];
                    dup = spec_name(v[j], other, sizeof other) && !strcmp(other, all[k]->name);
                }
                if (dup) continue;
                if (!(v[n] = scb_strdup(all[k]->name))) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
                from_all[n++] = 1;
            }
            continue;
        }
        size_t at = n;
        if (spec_name(s, name, sizeof name))
            for (size_t j = 0; j < n && at == n; j++) {
                char other[64];
                if (from_all[j] && spec_name(v[j], other, sizeof other) && !strcmp(other, name)) at = j;
            }
        char *copy = scb_strdup(s);
        if (!copy) SCB_TRY(scb_err(ctx, SCB_E_NOMEM, "out of memory"));
        if (at < n) {
            scb_free(v[at]);
            v[at] = copy;
            from_all[at] = 0;
        } else {
            v[n++] = copy;
        }
    }
    *out = v;
    *n_out = n;
    v = NULL;
out:
    if (v) scb_method_list_free(v, n);
    scb_free(from_all);
    return rc;
}
