/* model_config.c — config.json / generation_config.json reading and the RoPE inverse-frequency
 * formulas of transformers' modeling_rope_utils.py (see model_config.h).
 *
 * Float details follow torch: inv_freq is computed in fp32 (`base ** (arange/dim)` in fp32,
 * `python_scalar / tensor` as `tensor.reciprocal() * scalar`), Python-side scalars (YaRN's
 * correction range, mscale) in double. */
#include "harness/model_config.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

static float base_pow(float base, size_t i, size_t dim)
{
    float e = (float)i / (float)dim;          /* arange(0, dim, 2).float() / dim */
    return (float)pow((double)base, (double)e);
}

int scb_rope_inv_freq(const struct scb_rope_params *p, size_t D, float *inv, float *attn_scaling,
                      struct scb_ctx *ctx)
{
    const size_t half = D / 2;
    const float base = (float)p->theta;
    *attn_scaling = 1.0f;
    if (D == 0 || D % 2)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "head_dim %zu: RoPE needs an even head dimension", D);
    for (size_t k = 0; k < half; k++) inv[k] = 1.0f / base_pow(base, 2 * k, D);
    switch (p->type) {
    case SCB_ROPE_DEFAULT:
        return SCB_OK;
    case SCB_ROPE_LINEAR:
        for (size_t k = 0; k < half; k++) inv[k] = inv[k] / (float)p->factor;
        return SCB_OK;
    case SCB_ROPE_LLAMA3: {
        const float factor = (float)p->factor;
        const double low_wl = p->original_max_pos / p->low_freq_factor;
        const double high_wl = p->original_max_pos / p->high_freq_factor;
        for (size_t k = 0; k < half; k++) {
            float f = inv[k];
            float wl = (1.0f / f) * (float)(2.0 * M_PI);               /* 2*pi / inv_freq */
            float il = wl > (float)low_wl ? f / factor : f;              /* inv_freq_llama */
            float sf = ((1.0f / wl) * (float)p->original_max_pos - (float)p->low_freq_factor) /
                       (float)(p->high_freq_factor - p->low_freq_factor);
            float smoothed = ((1.0f - sf) * il) / factor + sf * il;
            int medium = !(wl < (float)high_wl) && !(wl > (float)low_wl);
            inv[k] = medium ? smoothed : il;
        }
        return SCB_OK;
    }
    case SCB_ROPE_YARN: {
        double factor = p->factor;
        double af = p->attention_factor;
        if (af < 0) {
            double m1 = factor <= 1 ? 1.0 : 0.1 * (p->mscale ? p->mscale : 1.0) * log(factor) + 1.0;
            if (p->mscale != 0 && p->mscale_all_dim != 0) {
                double m2 = factor <= 1 ? 1.0 : 0.1 * p->mscale_all_dim * log(factor) + 1.0;
                af = m1 / m2;
            } else {
                af = factor <= 1 ? 1.0 : 0.1 * log(factor) + 1.0;
            }
        }
        double beta_fast = p->beta_fast ? p->beta_fast : 32;
        double beta_slow = p->beta_slow ? p->beta_slow : 1;
        double dim = (double)D, b = (double)base;
        /* transformers passes the Python float theta, not the fp32 one, to the correction range */
        b = p->theta;
        double low = (dim * log(p->original_max_pos / (beta_fast * 2 * M_PI))) / (2 * log(b));
        double high = (dim * log(p->original_max_pos / (beta_slow * 2 * M_PI))) / (2 * log(b));
        if (p->truncate) { low = floor(low); high = ceil(high); }
        if (low < 0) low = 0;
        if (high > dim - 1) high = dim - 1;
        if (low == high) high += 0.001;
        for (size_t k = 0; k < half; k++) {
            float pf = base_pow(base, 2 * k, D);
            float extra = 1.0f / pf;
            float inter = 1.0f / ((float)factor * pf);
            float ramp = ((float)k - (float)low) / (float)(high - low);
            if (ramp < 0) ramp = 0;
            if (ramp > 1) ramp = 1;
            float ef = 1.0f - ramp;
            inv[k] = inter * (1.0f - ef) + extra * ef;
        }
        *attn_scaling = (float)af;
        return SCB_OK;
    }
    default:
        return scb_err(ctx, SCB_E_UNSUPPORTED, "unknown RoPE type %d", p->type);
    }
}

/* ---- JSON helpers ------------------------------------------------------------------------ */
static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int get_size(const cJSON *o, const char *k, const char *path, int required, size_t dflt,
                    size_t *out, struct scb_ctx *ctx)
{
    const cJSON *j = get(o, k);
    if (!j || cJSON_IsNull(j)) {
        if (required) return scb_err(ctx, SCB_E_FORMAT, "%s: missing field \"%s\"", path, k);
        *out = dflt;
        return SCB_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble != floor(j->valuedouble) ||
        j->valuedouble > 1e12)
        return scb_err(ctx, SCB_E_FORMAT, "%s: field \"%s\" must be a non-negative integer", path, k);
    *out = (size_t)j->valuedouble;
    return SCB_OK;
}

static int get_num(const cJSON *o, const char *k, const char *path, double dflt, double *out,
                   struct scb_ctx *ctx)
{
    const cJSON *j = get(o, k);
    if (!j || cJSON_IsNull(j)) { *out = dflt; return SCB_OK; }
    if (!cJSON_IsNumber(j)) return scb_err(ctx, SCB_E_FORMAT, "%s: field \"%s\" must be a number", path, k);
    *out = j->valuedouble;
    return SCB_OK;
}

static int get_bool(const cJSON *o, const char *k, const char *path, int dflt, int *out, struct scb_ctx *ctx)
{
    const cJSON *j = get(o, k);
    if (!j || cJSON_IsNull(j)) { *out = dflt; return SCB_OK; }
    if (!cJSON_IsBool(j)) return scb_err(ctx, SCB_E_FORMAT, "%s: field \"%s\" must be true or false", path, k);
    *out = cJSON_IsTrue(j);
    return SCB_OK;
}

static int add_ids(struct scb_model_config *c, const cJSON *j, const char *path, const char *k,
                   struct scb_ctx *ctx)
{
    if (!j || cJSON_IsNull(j)) return SCB_OK;
    const cJSON *items = cJSON_IsArray(j) ? j->child : j;
    for (const cJSON *e = items; e; e = cJSON_IsArray(j) ? e->next : NULL) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble != floor(e->valuedouble) ||
            e->valuedouble > 2147483647.0)
            return scb_err(ctx, SCB_E_FORMAT, "%s: \"%s\" must be a token id or a list of ids", path, k);
        int32_t id = (int32_t)e->valuedouble;
        int dup = 0;
        for (size_t i = 0; i < c->n_stop; i++) dup |= c->stop_ids[i] == id;
        if (!dup) {
            if (c->n_stop == SCB_MAX_STOP_IDS)
                return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: more than %d stop ids", path, SCB_MAX_STOP_IDS);
            c->stop_ids[c->n_stop++] = id;
        }
    }
    return SCB_OK;
}

static int parse_rope(struct scb_model_config *c, const cJSON *root, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_rope_params p = {0};
    const cJSON *rp = get(root, "rope_parameters");
    const char *field = "rope_parameters";
    if (!cJSON_IsObject(rp)) { rp = get(root, "rope_scaling"); field = "rope_scaling"; }
    if (rp && !cJSON_IsNull(rp) && !cJSON_IsObject(rp))
        return scb_err(ctx, SCB_E_FORMAT, "%s: \"%s\" must be an object or null", path, field);
    if (!cJSON_IsObject(rp)) rp = NULL;
    double top_theta;
    SCB_TRY(get_num(root, "rope_theta", path, 10000.0, &top_theta, ctx));
    p.theta = top_theta;
    p.type = SCB_ROPE_DEFAULT;
    p.truncate = 1;
    p.attention_factor = -1;
    if (rp) {
        SCB_TRY(get_num(rp, "rope_theta", path, top_theta, &p.theta, ctx));
        const cJSON *t = get(rp, "rope_type");
        if (!cJSON_IsString(t)) t = get(rp, "type");
        const char *ts = cJSON_IsString(t) ? t->valuestring : "default";
        if (!strcmp(ts, "default")) p.type = SCB_ROPE_DEFAULT;
        else if (!strcmp(ts, "linear")) p.type = SCB_ROPE_LINEAR;
        else if (!strcmp(ts, "llama3")) p.type = SCB_ROPE_LLAMA3;
        else if (!strcmp(ts, "yarn")) p.type = SCB_ROPE_YARN;
        else
            return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: %s.rope_type \"%s\" is not supported (default, "
                           "linear, llama3, yarn are)", path, field, ts);
        double prf;
        SCB_TRY(get_num(rp, "partial_rotary_factor", path, 1.0, &prf, ctx));
        if (prf != 1.0)
            return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: partial_rotary_factor %g is not supported", path, prf);
        double dflt_factor = p.type == SCB_ROPE_YARN && c->max_pos ? -1 : 1.0;
        SCB_TRY(get_num(rp, "factor", path, dflt_factor, &p.factor, ctx));
        SCB_TRY(get_num(rp, "low_freq_factor", path, 1.0, &p.low_freq_factor, ctx));
        SCB_TRY(get_num(rp, "high_freq_factor", path, 4.0, &p.high_freq_factor, ctx));
        double omp;
        SCB_TRY(get_num(rp, "original_max_position_embeddings", path, (double)c->max_pos, &omp, ctx));
        SCB_TRY(get_num(root, "original_max_position_embeddings", path, omp, &p.original_max_pos, ctx));
        SCB_TRY(get_num(rp, "beta_fast", path, 0, &p.beta_fast, ctx));
        SCB_TRY(get_num(rp, "beta_slow", path, 0, &p.beta_slow, ctx));
        SCB_TRY(get_num(rp, "attention_factor", path, -1, &p.attention_factor, ctx));
        SCB_TRY(get_num(rp, "mscale", path, 0, &p.mscale, ctx));
        SCB_TRY(get_num(rp, "mscale_all_dim", path, 0, &p.mscale_all_dim, ctx));
        SCB_TRY(get_bool(rp, "truncate", path, 1, &p.truncate, ctx));
        if (p.type == SCB_ROPE_YARN && p.factor < 0) p.factor = (double)c->max_pos / p.original_max_pos;
        if ((p.type == SCB_ROPE_LINEAR || p.type == SCB_ROPE_LLAMA3) && !(p.factor > 0))
            return scb_err(ctx, SCB_E_FORMAT, "%s: %s.factor must be > 0", path, field);
        if (p.type == SCB_ROPE_LLAMA3 && !(p.high_freq_factor != p.low_freq_factor && p.low_freq_factor > 0))
            return scb_err(ctx, SCB_E_FORMAT, "%s: %s: llama3 needs low_freq_factor > 0 and high_freq_factor "
                           "!= low_freq_factor", path, field);
    }
    if (!(p.theta > 0)) return scb_err(ctx, SCB_E_FORMAT, "%s: rope_theta must be > 0", path);
    c->rope_type = p.type;
    c->rope_theta = p.theta;
    c->inv_freq = scb_malloc(c->D / 2 * sizeof(float) + 1);   /* (D/2) */
    if (!c->inv_freq) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
    rc = scb_rope_inv_freq(&p, c->D, c->inv_freq, &c->attn_scaling, ctx);
    if (rc < 0) scb_err_prefix(ctx, "%s: ", path);
out:
    return rc;
}

/* Qwen3's sliding window as Qwen3Config / modeling_qwen3 apply it: the window is
 * sliding_window (default 4096, null = none) only with use_sliding_window; layer i is a
 * sliding_attention layer per layer_types, or, without layer_types, when a window is set and
 * i >= max_window_layers (default 28). The window matters only when some layer uses it; a
 * sliding_attention layer without a window is refused (transformers refuses it too). */
static int qwen3_sliding(struct scb_model_config *c, const cJSON *root, const char *path, struct scb_ctx *ctx)
{
    int rc = SCB_OK, use = 0, window_set = 0, any = 0;
    size_t sw = 0, mwl = 0;
    SCB_TRY(get_bool(root, "use_sliding_window", path, 0, &use, ctx));
    const cJSON *jsw = get(root, "sliding_window");
    if (!jsw) sw = 4096, window_set = 1;
    else if (!cJSON_IsNull(jsw)) { SCB_TRY(get_size(root, "sliding_window", path, 0, 0, &sw, ctx)); window_set = 1; }
    window_set = window_set && use;
    SCB_TRY(get_size(root, "max_window_layers", path, 0, 28, &mwl, ctx));
    const cJSON *lt = get(root, "layer_types");
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || (size_t)cJSON_GetArraySize(lt) != c->L)
            return scb_err(ctx, SCB_E_FORMAT, "%s: \"layer_types\" must be a list of %zu entries (one per layer)",
                           path, c->L);
        size_t i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            int sl = cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
            if (!sl && !(cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention")))
                return scb_err(ctx, SCB_E_FORMAT, "%s: layer_types[%zu] must be \"full_attention\" or "
                               "\"sliding_attention\"", path, i);
            any |= sl;
        }
    } else {
        any = window_set && mwl < c->L;
    }
    if (any && !window_set)
        return scb_err(ctx, SCB_E_FORMAT, "%s: layer_types has sliding_attention layers but no window is set "
                       "(use_sliding_window false or sliding_window null)", path);
    if (any && sw == 0)
        return scb_err(ctx, SCB_E_FORMAT, "%s: sliding_window must be > 0", path);
    if (any) c->sliding_window = (int64_t)sw;
out:
    return rc;
}

int scb_model_config_load(struct scb_model_config *c, const char *dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    cJSON *root = NULL, *gen = NULL;
    char *path = scb_path_join(dir, "config.json");
    char *gpath = scb_path_join(dir, "generation_config.json");
    memset(c, 0, sizeof *c);
    c->bos_id = -1;
    if (!path || !gpath) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    if (!scb_file_exists(path)) { rc = scb_err(ctx, SCB_E_IO, "%s: missing (not a Hugging Face model directory?)", path); goto out; }
    SCB_TRY(scb_json_load(path, &root, ctx));
    if (!cJSON_IsObject(root)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: not a JSON object", path); goto out; }
    const cJSON *archs = get(root, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0)) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: missing \"architectures\" (a list with the model class name)", path);
        goto out;
    }
    snprintf(c->arch_name, sizeof c->arch_name, "%s", a0->valuestring);
    if (!strcmp(a0->valuestring, "LlamaForCausalLM")) c->arch = SCB_ARCH_LLAMA;
    else if (!strcmp(a0->valuestring, "Qwen2ForCausalLM")) c->arch = SCB_ARCH_QWEN2;
    else if (!strcmp(a0->valuestring, "MistralForCausalLM")) c->arch = SCB_ARCH_MISTRAL;
    else if (!strcmp(a0->valuestring, "Qwen3ForCausalLM")) c->arch = SCB_ARCH_QWEN3;
    else {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: architecture \"%s\" is not supported (LlamaForCausalLM, "
                     "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM are)", path, a0->valuestring);
        goto out;
    }
    const cJSON *act = get(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu"))) {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (silu is)", path,
                     cJSON_IsString(act) ? act->valuestring : "?");
        goto out;
    }
    SCB_TRY(get_size(root, "vocab_size", path, 1, 0, &c->V, ctx));
    SCB_TRY(get_size(root, "num_hidden_layers", path, 1, 0, &c->L, ctx));
    SCB_TRY(get_size(root, "hidden_size", path, 1, 0, &c->d_model, ctx));
    SCB_TRY(get_size(root, "intermediate_size", path, 1, 0, &c->d_ff, ctx));
    SCB_TRY(get_size(root, "num_attention_heads", path, 1, 0, &c->H, ctx));
    SCB_TRY(get_size(root, "num_key_value_heads", path, 0, c->H, &c->Hkv, ctx));
    if (!c->V || !c->L || !c->d_model || !c->d_ff || !c->H || !c->Hkv) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: vocab_size, num_hidden_layers, hidden_size, intermediate_size, "
                     "num_attention_heads and num_key_value_heads must be > 0", path);
        goto out;
    }
    if (c->H % c->Hkv) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: num_attention_heads %zu is not a multiple of num_key_value_heads %zu",
                     path, c->H, c->Hkv);
        goto out;
    }
    /* Qwen3Config's head_dim defaults to 128, not hidden_size / num_attention_heads */
    SCB_TRY(get_size(root, "head_dim", path, 0, c->arch == SCB_ARCH_QWEN3 ? 128 : c->d_model / c->H, &c->D, ctx));
    if (!c->D) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: head_dim must be > 0", path); goto out; }
    SCB_TRY(get_num(root, "rms_norm_eps", path, 1e-6, &c->rms_eps, ctx));
    SCB_TRY(get_size(root, "max_position_embeddings", path, 0, 2048, &c->max_pos, ctx));
    SCB_TRY(get_bool(root, "attention_bias", path, 0, &c->attn_bias, ctx));
    SCB_TRY(get_bool(root, "mlp_bias", path, 0, &c->mlp_bias, ctx));
    c->qkv_bias = c->arch == SCB_ARCH_QWEN2;
    c->qk_norm = c->arch == SCB_ARCH_QWEN3;
    if (c->arch != SCB_ARCH_LLAMA) c->mlp_bias = 0;
    if (c->arch != SCB_ARCH_LLAMA && c->arch != SCB_ARCH_QWEN3) c->attn_bias = 0;
    SCB_TRY(get_bool(root, "tie_word_embeddings", path, c->arch == SCB_ARCH_QWEN2 ? 0 : 0, &c->tie_embeddings, ctx));
    /* sliding window: Mistral always when set; Qwen2 only with use_sliding_window; Qwen3 below */
    size_t sw = 0;
    SCB_TRY(get_size(root, "sliding_window", path, 0, 0, &sw, ctx));
    if (c->arch == SCB_ARCH_MISTRAL) c->sliding_window = (int64_t)sw;
    if (c->arch == SCB_ARCH_QWEN2) {
        int use = 0;
        SCB_TRY(get_bool(root, "use_sliding_window", path, 0, &use, ctx));
        const cJSON *lt = get(root, "layer_types");
        int any = 0;
        if (cJSON_IsArray(lt))
            for (const cJSON *e = lt->child; e; e = e->next)
                any |= cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
        if (use || any) c->sliding_window = (int64_t)sw;
    }
    if (c->arch == SCB_ARCH_QWEN3) SCB_TRY(qwen3_sliding(c, root, path, ctx));
    SCB_TRY(parse_rope(c, root, path, ctx));
    /* special ids */
    const cJSON *bos = get(root, "bos_token_id");
    if (cJSON_IsNumber(bos)) c->bos_id = (int32_t)bos->valuedouble;
    if (scb_file_exists(gpath)) {
        SCB_TRY(scb_json_load(gpath, &gen, ctx));
        SCB_TRY(add_ids(c, get(gen, "eos_token_id"), gpath, "eos_token_id", ctx));
        const cJSON *gb = get(gen, "bos_token_id");
        if (cJSON_IsNumber(gb)) c->bos_id = (int32_t)gb->valuedouble;
    }
    SCB_TRY(add_ids(c, get(root, "eos_token_id"), path, "eos_token_id", ctx));
    for (size_t i = 0; i < c->n_stop; i++)
        if ((size_t)c->stop_ids[i] >= c->V) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: eos_token_id %d is outside the vocabulary (%zu)", path,
                         c->stop_ids[i], c->V);
            goto out;
        }
out:
    if (rc < 0) scb_model_config_fini(c);
    cJSON_Delete(root);
    cJSON_Delete(gen);
    scb_free(path);
    scb_free(gpath);
    return rc;
}

void scb_model_config_fini(struct scb_model_config *c)
{
    scb_free(c->inv_freq);
    c->inv_freq = NULL;
}
