/* streamingllm.c — StreamingLLM one-shot dropping (see streamingllm.h). */
#include "methods/streamingllm.h"

#include <stddef.h>

int scb_streamingllm_keep(int N, int n_init, int n_local, int32_t *idx)
{
    int n = 0;
    if (N < n_init + n_local) {
        for (int j = 0; j < N; j++) idx[n++] = j;
        return n;
    }
    for (int j = 0; j < n_init; j++) idx[n++] = j;
    for (int j = N - n_local; j < N; j++) idx[n++] = j;
    return n;
}

struct sllm_priv { int n_init, n_local, gqa; };

static const struct scb_option sllm_opts[] = {
    {"n_init", SCB_OPT_INT, offsetof(struct sllm_priv, n_init), "128", 0, 1e9, NULL,
     "first tokens kept (attention sinks)"},
    {"n_local", SCB_OPT_INT, offsetof(struct sllm_priv, n_local), "3968", 1, 1e9, NULL,
     "most recent tokens of the first prefill kept"},
    {"gqa", SCB_OPT_BOOL, offsetof(struct sllm_priv, gqa), "false", 1, 0, NULL,
     "store Hkv heads instead of SCBench's Hq repeated heads (same outputs, fewer bytes)"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL}
};

static int sllm_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                              struct scb_kv_keep *keep, struct scb_ctx *ctx)
{
    const struct sllm_priv *p = m->priv;
    int H = p->gqa ? a->Hkv : a->Hq;
    int rc = scb_kv_keep_init(keep, H, p->gqa, a->N, ctx);
    if (rc) return rc;
    for (int h = 0; h < H; h++)
        keep->n[h] = scb_streamingllm_keep(a->N, p->n_init, p->n_local, keep->idx + (size_t)h * keep->cap);
    return SCB_OK;
}

static void sllm_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out)
{
    const struct sllm_priv *p = m->priv;
    const struct scb_model_info *mi = cq->mi;
    int64_t kept = cq->N < p->n_init + p->n_local ? cq->N : p->n_init + p->n_local;
    int64_t T = kept + (cq->T - cq->N);
    int H = p->gqa ? mi->Hkv : mi->Hq;
    out->kv_entries = (int64_t)mi->L * mi->Hkv * T;
    out->kv_bytes = 2 * (int64_t)mi->L * H * T * mi->D * cq->elt_bytes;
    out->kv_bytes_device = out->kv_bytes;
    out->read_bytes_step = out->kv_bytes;
    out->prefill_density = 1.0;
}

const struct scb_method_ops scb_method_streamingllm = {
    .abi = SCB_METHOD_ABI, .name = "streamingllm", .stage = SCB_STAGE_COMPRESSION,
    .axis = SCB_AXIS_KV, .caps = SCB_CAP_CPU | SCB_CAP_KV_EVICT,
    .summary = "after the first prefill keep the first 128 + last 3968 tokens",
    .scbench_name = "dense;streamingllm",
    .priv_size = sizeof(struct sllm_priv), .options = sllm_opts,
    .kv_after_prefill = sllm_after_prefill, .cost = sllm_cost,
};
