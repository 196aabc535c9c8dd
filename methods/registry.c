/* registry.c — every long-context method scbench knows, in the order `scbench methods` lists
 * them, plus the dense identity entry. Adding a method: one file with its scb_method_ops, one
 * line here. */
#include "methods/method.h"

#include <string.h>

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
