/* method.h — the long-context method framework: the versioned ops table every method fills in,
 * the small self-contained argument structs its hooks receive, the registry, and method specs
 * ("minference+snapkv:budget=2048") resolved into a typed (prefill pattern, KV policy) pair.
 *
 * Two axes (DESIGN.md "The KV cache and its lifecycle"): a PREFILL PATTERN decides which keys the
 * first prefill of a session attends to (dense, A-shape, Tri-shape, MInference; CacheBlend also
 * sits here because SCBench runs it as an attn_type); a KV POLICY decides what is kept after that
 * prefill and what each later step reads (StreamingLLM, SnapKV, PyramidKV, KIVI, Quest,
 * RetrievalAttention). `dense` is the identity on both axes. Each method also names its SCBench
 * lifecycle stage: 1 generation, 2 compression, 3 retrieval, 4 loading.
 *
 * Hooks see tensors as raw fp32 arrays with explicit shapes (struct scb_attn_args,
 * struct scb_kv_compress_args); the engine adapts its KV cache to them. A NULL hook means dense
 * attention or "keep everything". Options are described by a table (name, type, offset into the
 * method's private struct, default text, help); the harness allocates the private struct zeroed
 * from priv_size and fills it from the defaults and the user's spec. New hooks are appended at the
 * end of struct scb_method_ops with an SCB_METHOD_ABI bump; never reorder. */
#ifndef SCB_METHODS_METHOD_H
#define SCB_METHODS_METHOD_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

#define SCB_METHOD_ABI 1

/* ---- what a method is --------------------------------------------------------------------- */
enum scb_method_stage {          /* SCBench's KV-cache lifecycle stage (spec/scbench.md §7.2) */
    SCB_STAGE_NONE        = 0,   /* dense: full attention, baseline */
    SCB_STAGE_GENERATION  = 1,   /* ❶ KV cache generation (sparse prefill) */
    SCB_STAGE_COMPRESSION = 2,   /* ❷ KV cache compression (dropping, quantization) */
    SCB_STAGE_RETRIEVAL   = 3,   /* ❸ KV cache retrieval (reuse of stored KV across requests) */
    SCB_STAGE_LOADING     = 4    /* ❹ KV cache loading (query-dependent subset per decode step) */
};

enum scb_method_axis {
    SCB_AXIS_PREFILL = 1,        /* prefill pattern (attn_type in SCBench) */
    SCB_AXIS_KV      = 2,        /* KV policy (kv_type in SCBench) */
    SCB_AXIS_BOTH    = 3         /* dense: the identity of both axes */
};

enum scb_method_caps {
    SCB_CAP_CPU            = 1u << 0,
    SCB_CAP_CUDA           = 1u << 1,
    SCB_CAP_SPARSE_PREFILL = 1u << 2,
    SCB_CAP_SPARSE_DECODE  = 1u << 3,
    SCB_CAP_KV_EVICT       = 1u << 4,
    SCB_CAP_KV_QUANT       = 1u << 5,
    SCB_CAP_RETRIEVAL      = 1u << 6
};

enum scb_option_type {
    SCB_OPT_INT    = 1,          /* stored as int */
    SCB_OPT_FLOAT  = 2,          /* stored as double */
    SCB_OPT_BOOL   = 3,          /* stored as int 0/1; accepts true/false/1/0/yes/no */
    SCB_OPT_STRING = 4           /* stored as char[SCB_OPT_STR_MAX], NUL-terminated */
};
#define SCB_OPT_STR_MAX 512

struct scb_option {
    const char *name;            /* as written in a spec: snapkv:budget=2048 */
    int         type;            /* enum scb_option_type */
    size_t      offset;          /* offsetof(priv struct, field) */
    const char *def;             /* default, as text parsed by the same parser as user values */
    double      min, max;        /* inclusive range for INT/FLOAT (ignored when min > max) */
    const char *choices;         /* STRING: '|'-separated allowed values, NULL = any */
    const char *help;
};

/* What the model looks like (the engine fills it; tests make one up). */
struct scb_model_info {
    int L;                       /* layers */
    int Hq, Hkv, D;              /* query heads, KV heads (Hq % Hkv == 0), head dimension */
    const char *name;            /* model id or path, borrowed; may be NULL */
};

/* ---- hook arguments ------------------------------------------------------------------------ */
/* One layer's attention for a chunk of Tq new queries over Tk keys (the last Tq keys are the
 * chunk itself). Causal rule, bottom-right aligned: query i sees key j iff j <= i + (Tk - Tq).
 * GQA: query head h uses KV head h / (Hq / Hkv). Keys are post-RoPE at their true positions. */
struct scb_attn_args {
    const float *q;              /* (Tq, Hq, D) borrowed */
    const float *k;              /* key j of KV head g at k + j*kv_tok_stride + g*kv_head_stride */
    const float *v;              /* same layout as k */
    float       *out;            /* (Tq, Hq, D) out */
    float       *lse;            /* (Tq, Hq) out, optional (NULL): natural-log sum-exp, -inf if empty */
    int Tq, Tk, Hq, Hkv, D;
    size_t kv_tok_stride;        /* floats between tokens; 0 = Hkv*D, i.e. packed (Tk, Hkv, D) */
    size_t kv_head_stride;       /* floats between KV heads; 0 = D */
    int Tk_global;               /* keys [0, Tk_global) are the global segment, the rest temp
                                    (generated tokens of this turn); 0 = all global */
    int64_t q_pos0;              /* absolute position of query 0 */
    float scale;                 /* 0 = 1/sqrt(D) */
    int layer;                   /* 0-based layer index */
    double density;              /* out: fraction of the causal (i, j) pairs computed, set by
                                    prefill patterns (1.0 for dense) */
};

/* One layer's K/V right after the first prefill of N tokens, plus that prefill's last queries,
 * for a KV policy that decides what to keep. */
struct scb_kv_compress_args {
    const float *k;              /* (N, Hkv, D) post-RoPE keys, borrowed */
    const float *v;              /* (N, Hkv, D) */
    const float *q;              /* (Nq, Hq, D) the last Nq queries of the prefill (post-RoPE);
                                    SnapKV needs Nq >= window */
    int N, Nq, Hq, Hkv, D;
    float scale;                 /* 0 = 1/sqrt(D) */
    int layer, L;
};

/* Which prefix entries a KV policy keeps, per head. Entries j >= N (appended later) are always
 * kept. idx lists are ascending. When per_kv_head is 0 the lists are per QUERY head (SCBench's
 * GQA repetition, H = Hq); when 1 they are per KV head (H = Hkv). */
struct scb_kv_keep {
    int H;                       /* number of lists */
    int per_kv_head;
    int N;                       /* prefix length the lists index into */
    int cap;                     /* capacity of each list (>= N) */
    int32_t *idx;                /* (H, cap) owned */
    int *n;                      /* (H) entries kept per list, owned */
};
int  scb_kv_keep_init(struct scb_kv_keep *kp, int H, int per_kv_head, int N, struct scb_ctx *ctx);
void scb_kv_keep_fini(struct scb_kv_keep *kp);
/* Keep every prefix entry (identity), for all lists. */
void scb_kv_keep_all(struct scb_kv_keep *kp);

/* Cost of a method at given lengths, all counts per sequence summed over layers. */
struct scb_cost_query {
    const struct scb_model_info *mi;
    int64_t N;                   /* first-prefill length */
    int64_t T;                   /* total tokens in the cache now (>= N) */
    int elt_bytes;               /* bytes per stored K/V element (2 for bf16, 4 for fp32) */
};
struct scb_cost {
    int64_t kv_entries;          /* logical: tokens kept x layers x KV heads (GQA-aware count) */
    int64_t kv_bytes;            /* physical bytes stored: K+V incl. GQA repetition, quantization
                                    scales/mins, residual windows, padding, index metadata */
    int64_t kv_bytes_device;     /* of kv_bytes, what sits on the accelerator (the rest on host) */
    int64_t read_bytes_step;     /* bytes read from the KV store by one decode step (all layers) */
    double  prefill_density;     /* fraction of the causal mask computed by the first prefill
                                    (model-independent estimate for methods whose density depends
                                    on the data: the upper bound) */
};

/* ---- the ops table --------------------------------------------------------------------------- */
struct scb_method;

struct scb_method_ops {
    uint32_t    abi;             /* == SCB_METHOD_ABI */
    const char *name;            /* stable id for the CLI and the results DB */
    int         stage;           /* enum scb_method_stage */
    int         axis;            /* enum scb_method_axis */
    uint32_t    caps;            /* enum scb_method_caps */
    const char *summary;         /* one line for `scbench methods` */
    const char *scbench_name;    /* how SCBench's run_all_tasks.sh names it ("vllm_a_shape;dense") */
    size_t      priv_size;       /* the harness allocates it zeroed; options live inside it */
    const struct scb_option *options;  /* NULL-name terminated; NULL = no options */
    /* optional: called once after options are set, with the model shape. May allocate state
     * (freed in fini). NULL = nothing to do. */
    int  (*init)(struct scb_method *m, struct scb_ctx *ctx);
    /* first-prefill attention of one layer (Tq == Tk). NULL = dense causal. Sets a->density. */
    int  (*prefill_attn)(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx);
    /* after the first prefill of one layer: fill keep (initialised by the caller for H lists of
     * the method's choice: call scb_kv_keep_init inside). NULL = keep everything. */
    int  (*kv_after_prefill)(struct scb_method *m, const struct scb_kv_compress_args *a,
                             struct scb_kv_keep *keep, struct scb_ctx *ctx);
    /* attention of decode steps and follow-up chunks (Tq <= Tk) over the kept cache. NULL =
     * dense causal. */
    int  (*decode_attn)(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx);
    /* end of a turn (temp segment dropped). NULL = nothing. */
    int  (*turn_end)(struct scb_method *m, struct scb_ctx *ctx);
    /* cost accounting. NULL = dense accounting. */
    void (*cost)(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out);
    /* free what init allocated. NULL = nothing. */
    void (*fini)(struct scb_method *m);
};

/* A configured method instance. */
struct scb_method {
    const struct scb_method_ops *ops;  /* borrowed (static registry entry) */
    void *priv;                        /* owned, priv_size bytes, options inside */
    struct scb_model_info mi;          /* set by scb_method_init */
    void *state;                       /* owned by the method (init/fini), NULL if none */
};

/* ---- registry ----------------------------------------------------------------------------- */
/* NULL-terminated list of every method, in the order `scbench methods` prints them. */
const struct scb_method_ops *const *scb_method_all(void);
/* Look up by name; NULL if unknown. */
const struct scb_method_ops *scb_method_find(const char *name);
const char *scb_method_stage_name(int stage);   /* "generation", ...; never NULL */
const char *scb_method_axis_name(int axis);     /* "prefill", "kv", "both" */
const char *scb_option_type_name(int type);     /* "int", "float", "bool", "string" */

/* ---- instances ---------------------------------------------------------------------------- */
/* Allocate priv and apply the defaults. Status SCB_E_NOMEM. Caller: scb_method_fini. */
int  scb_method_create(struct scb_method *m, const struct scb_method_ops *ops, struct scb_ctx *ctx);
/* Set one option from text ("2048", "true", "path"). SCB_E_NOTFOUND for an unknown name (the
 * message lists the method's options), SCB_E_INVAL for a bad value (the message says why). */
int  scb_method_set(struct scb_method *m, const char *name, const char *value, struct scb_ctx *ctx);
/* Read an option as text (canonical: ints as %d, floats as %.17g shortest round-trip, bools
 * true/false). Returns SCB_E_NOTFOUND for unknown names. */
int  scb_method_get(const struct scb_method *m, const char *name, char *buf, size_t n);
/* Run the init hook with the model shape (copies mi). */
int  scb_method_init(struct scb_method *m, const struct scb_model_info *mi, struct scb_ctx *ctx);
void scb_method_fini(struct scb_method *m);  /* safe on a zeroed struct */

/* Typed option access for method code (name must exist; asserts otherwise). */
int         scb_method_opt_int(const struct scb_method *m, const char *name);
double      scb_method_opt_float(const struct scb_method *m, const char *name);
const char *scb_method_opt_str(const struct scb_method *m, const char *name);

/* Wrappers the engine calls: NULL hooks mean dense / keep-all / no-op. */
int  scb_method_prefill_attn(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx);
int  scb_method_kv_after_prefill(struct scb_method *m, const struct scb_kv_compress_args *a,
                                 struct scb_kv_keep *keep, struct scb_ctx *ctx);
int  scb_method_decode_attn(struct scb_method *m, struct scb_attn_args *a, struct scb_ctx *ctx);
int  scb_method_turn_end(struct scb_method *m, struct scb_ctx *ctx);
void scb_method_cost(const struct scb_method *m, const struct scb_cost_query *cq, struct scb_cost *out);
/* Dense accounting (what a NULL cost hook means). */
void scb_method_cost_dense(const struct scb_cost_query *cq, struct scb_cost *out);

/* ---- specs ---------------------------------------------------------------------------------- */
/* A resolved spec: both axes always set (dense where the user named nothing). */
struct scb_method_spec {
    struct scb_method prefill;   /* axis PREFILL (or dense) */
    struct scb_method kv;        /* axis KV (or dense) */
};
/* Parse "a[:k=v,...][+b[:k=v,...]]". Errors (SCB_E_INVAL / SCB_E_NOTFOUND) name the offending
 * part and list what exists. On failure *out is left zeroed. Caller: scb_method_spec_fini. */
int  scb_method_spec_parse(const char *text, struct scb_method_spec *out, struct scb_ctx *ctx);
void scb_method_spec_fini(struct scb_method_spec *s);
/* Expand a list of method specs for a run: the word "all" stands for every registered method
 * (scb_method_all order, dense first) with its defaults, skipping methods the list already
 * names; a later single-method spec (no '+') naming a method that "all" put in replaces that
 * entry in place (once), so "all;snapkv:budget=64" runs every method with SnapKV at budget 64.
 * Other specs are appended in order (a list without "all" is returned as given). *out: owned
 * array of n_out owned strings (scb_method_list_free). */
int  scb_method_list_expand(const char *const *in, size_t n_in, char ***out, size_t *n_out,
                            struct scb_ctx *ctx);
void scb_method_list_free(char **v, size_t n);
/* Canonical JSON with every option (stored with runs), e.g.
 * {"spec":"minference+snapkv:budget=2048","prefill":{"name":"minference","stage":"generation",
 *  "options":{...}},"kv":{...}}. *out owned (scb_free). */
int  scb_method_spec_json(const struct scb_method_spec *s, char **out, struct scb_ctx *ctx);
/* Canonical short string: method names, options that differ from defaults in table order;
 * dense axes omitted unless both are dense ("dense"). Parsing it gives the same spec. */
int  scb_method_spec_string(const struct scb_method_spec *s, char **out, struct scb_ctx *ctx);

#endif
