/* generate.c — greedy decoding (see generate.h). */
#include "harness/generate.h"

#include <string.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

void scb_gen_result_fini(struct scb_gen_result *res)
{
    scb_free(res->ids);
    memset(res, 0, sizeof *res);
}

/* First index of the maximum of x (n), NaN ignored (as torch.argmax on finite logits). */
static int32_t host_argmax(const float *x, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best] || (x[best] != x[best] && x[i] == x[i])) best = i;
    return (int32_t)best;
}

/* Device engine: each forward returns the next token (argmax on the device); no host logits. */
static int generate_device(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *prompt,
                           size_t n_prompt, const float *last_logits, const struct scb_gen_opts *o,
                           struct scb_gen_result *res, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    const struct scb_model_config *c = scb_model_get_config(m);
    const int mode0 = kv->mode;
    int32_t tok = 0;
    res->ids = scb_malloc((o->max_new ? o->max_new : 1) * sizeof(int32_t));
    if (!res->ids) { rc = scb_err(ctx, SCB_E_NOMEM, "generate: out of memory"); goto out; }
    double t0 = scb_now_ms();
    if (n_prompt) SCB_TRY(scb_model_forward_next(m, kv, prompt, n_prompt, &tok, ctx));
    else tok = host_argmax(last_logits, c->V);
    res->prefill_ms = scb_now_ms() - t0;
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    double t1 = scb_now_ms();
    for (size_t step = 0; step < o->max_new; step++) {
        if (step == 0) res->ttft_ms = scb_now_ms() - t0;
        int stop = 0;
        for (size_t i = 0; i < o->n_stop; i++) stop |= o->stop[i] == tok;
        if (stop) { res->stopped = 1; break; }
        res->ids[res->n++] = tok;
        SCB_TRY(scb_model_forward_next(m, kv, &tok, 1, &tok, ctx));
    }
    res->decode_ms = scb_now_ms() - t1;
out:
    scb_kv_cache_set_mode(kv, mode0);
    if (rc < 0) scb_gen_result_fini(res);
    return rc;
}

int scb_generate_greedy(struct scb_model *m, struct scb_kv_cache *kv, const int32_t *prompt,
                        size_t n_prompt, const float *last_logits, const struct scb_gen_opts *o,
                        struct scb_gen_result *res, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (scb_model_on_device(m)) {
        memset(res, 0, sizeof *res);
        if (!n_prompt && !last_logits)
            return scb_err(ctx, SCB_E_INVAL, "generate: empty prompt and no starting logits");
        return generate_device(m, kv, prompt, n_prompt, last_logits, o, res, ctx);
    }
    const struct scb_model_config *c = scb_model_get_config(m);
    struct scb_backend *be = scb_model_backend(m);
    const int mode0 = kv->mode;
    float *logits = NULL;
    memset(res, 0, sizeof *res);
    if (!n_prompt && !last_logits)
        return scb_err(ctx, SCB_E_INVAL, "generate: empty prompt and no starting logits");
    logits = scb_malloc(c->V * sizeof(float));     /* (V) */
    res->ids = scb_malloc((o->max_new ? o->max_new : 1) * sizeof(int32_t));
    if (!logits || !res->ids) { rc = scb_err(ctx, SCB_E_NOMEM, "generate: out of memory"); goto out; }
    double t0 = scb_now_ms();
    if (n_prompt) SCB_TRY(scb_model_forward(m, kv, prompt, n_prompt, logits, SCB_FWD_LAST_LOGITS, ctx));
    else memcpy(logits, last_logits, c->V * sizeof(float));
    res->prefill_ms = scb_now_ms() - t0;
    scb_kv_cache_set_mode(kv, SCB_KV_APPEND_TEMP);
    double t1 = scb_now_ms();
    for (size_t step = 0; step < o->max_new; step++) {
        int32_t tok;
        SCB_TRY(be->ops->argmax(be, logits, c->V, &tok, ctx));
        if (step == 0) res->ttft_ms = scb_now_ms() - t0;
        int stop = 0;
        for (size_t i = 0; i < o->n_stop; i++) stop |= o->stop[i] == tok;
        if (stop) { res->stopped = 1; break; }
        res->ids[res->n++] = tok;
        SCB_TRY(scb_model_forward(m, kv, &tok, 1, logits, SCB_FWD_LAST_LOGITS, ctx));
    }
    res->decode_ms = scb_now_ms() - t1;
out:
    scb_kv_cache_set_mode(kv, mode0);
    scb_free(logits);
    if (rc < 0) scb_gen_result_fini(res);
    return rc;
}
