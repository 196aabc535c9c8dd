/* model_config.h — a Hugging Face decoder's config.json (+ generation_config.json) as the
 * engine needs it: architecture, sizes, normalisation epsilon, RoPE (theta, scaling type and
 * the resulting inverse frequencies, computed exactly as transformers' modeling_rope_utils),
 * biases, tied embeddings, sliding window, BOS and stop ids.
 *
 * Supported: LlamaForCausalLM (Llama 2/3/3.1; rope_scaling "llama3", "linear"; attention_bias,
 * mlp_bias), Qwen2ForCausalLM (q/k/v bias, tied embeddings, rope "yarn"), MistralForCausalLM
 * (sliding_window null, or an error once a sequence would need it), Qwen3ForCausalLM (per-head
 * RMSNorm q_norm/k_norm on q and k before RoPE, head_dim default 128, attention_bias = q/k/v/o
 * biases, sliding-window layers only as for Mistral). Both the transformers 5
 * "rope_parameters" form and the older "rope_theta" + "rope_scaling" form are read. */
#ifndef SCB_HARNESS_MODEL_CONFIG_H
#define SCB_HARNESS_MODEL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

enum scb_arch {
    SCB_ARCH_LLAMA   = 0,
    SCB_ARCH_QWEN2   = 1,
    SCB_ARCH_MISTRAL = 2,
    SCB_ARCH_QWEN3   = 3
};

enum scb_rope_type {
    SCB_ROPE_DEFAULT = 0,
    SCB_ROPE_LINEAR  = 1,
    SCB_ROPE_LLAMA3  = 2,
    SCB_ROPE_YARN    = 3
};

#define SCB_MAX_STOP_IDS 16

struct scb_model_config {
    int arch;                      /* enum scb_arch */
    char arch_name[64];            /* "LlamaForCausalLM" */
    size_t V, L, d_model, d_ff;    /* vocab, layers, hidden size, intermediate size */
    size_t H, Hkv, D;              /* query heads, KV heads, head dim */
    double rms_eps;
    size_t max_pos;                /* max_position_embeddings */
    int attn_bias;                 /* q, k, v, o biases (Llama / Qwen3 attention_bias) */
    int qkv_bias;                  /* q, k, v biases only (Qwen2) */
    int mlp_bias;
    int qk_norm;                   /* per-head RMSNorm of q and k before RoPE, weights (D) (Qwen3) */
    int tie_embeddings;
    int64_t sliding_window;        /* tokens, when some layer uses it; 0 = none */
    /* RoPE */
    int rope_type;                 /* enum scb_rope_type */
    double rope_theta;
    float attn_scaling;            /* cos/sin multiplier (YaRN attention_factor; 1 otherwise) */
    float *inv_freq;               /* (D/2) owned */
    /* special ids */
    int32_t bos_id;                /* -1 when absent */
    int32_t stop_ids[SCB_MAX_STOP_IDS];
    size_t n_stop;
};

/* Read DIR/config.json and, when present, DIR/generation_config.json. Errors name the file
 * and the field. Unsupported architecture → SCB_E_UNSUPPORTED naming config.json and the value. */
int  scb_model_config_load(struct scb_model_config *cfg, const char *dir, struct scb_ctx *ctx);
void scb_model_config_fini(struct scb_model_config *cfg);

/* Compute inverse frequencies (D/2 floats) and attention scaling for a RoPE type from the
 * parameters (the transformers formulas, fp32 where torch computes in fp32). Exposed for tests. */
struct scb_rope_params {
    int type;                      /* enum scb_rope_type */
    double theta, factor;
    double low_freq_factor, high_freq_factor;   /* llama3 */
    double original_max_pos;       /* llama3, yarn */
    double beta_fast, beta_slow;   /* yarn (0 = default 32 / 1) */
    double attention_factor;       /* yarn; < 0 = derived from factor, mscale */
    double mscale, mscale_all_dim; /* yarn; 0 = absent */
    int truncate;                  /* yarn; default 1 */
};
int scb_rope_inv_freq(const struct scb_rope_params *p, size_t D, float *inv_freq, float *attn_scaling,
                      struct scb_ctx *ctx);

#endif
