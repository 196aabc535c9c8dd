/* kivi.h — KIVI asymmetric 2/4-bit KV quantization as SCBench runs it (spec/methods.md §6).
 *
 * Quantizer of a group x[0..g): mn = min, mx = max, s = (mx - mn) / (2^b - 1) (fp32),
 * code = round_half_even(clamp((x - mn) / s, 0, 2^b - 1)), x_hat = code * s + mn. A constant
 * group (s == 0) gives code 0 and x_hat = mn (the repo casts NaN to int there; deviation).
 * Packing: 32/b codes per uint32, element t of a word in bits [b*t, b*t + b).
 * Keys: per channel, groups of `group` TOKENS: codes (Hkv, D, cap/(32/b)) words, scale/min
 * (Hkv, D, cap/group). Values: per token, groups of `group` CHANNELS: codes (Hkv, cap, D/(32/b)),
 * scale/min (Hkv, cap, D/group). Hkv heads stored (no GQA repetition).
 * Schedule, residual R: after the first prefill of N tokens keys quantize the first N - N % R
 * tokens, values the first N - R (if N > R); the rest stays full precision. Each appended token
 * goes to the residuals. By default (requant = 0, the method's default) nothing appended is ever
 * quantized: SCBench's attn_forward calls MInference's KiviCache.update, which quantizes the
 * first prefill only (spec/scbench.md §7). With requant = 1 (option requant=true; the KIVI paper,
 * spec/methods.md §6.2, MInference's uncalled KiviCache.legacy_update) a residual longer than R
 * quantizes its first R tokens and keeps the last one.
 * Attention dequantizes to fp32 and runs the reference row kernel in time order, so while
 * nothing is quantized it equals dense attention bitwise. tests/py/method_kivi_numpy.py checks
 * all of this against an independent float64 NumPy KIVI through the engine. */
#ifndef SCB_METHODS_KIVI_H
#define SCB_METHODS_KIVI_H

#include <stdint.h>

#include "methods/method.h"

/* Quantize n values x[i*stride] with b bits: codes (n) in [0, 2^b - 1], *scale, *mn. */
void scb_kivi_quant_group(const float *x, size_t stride, int n, int bits, uint8_t *codes,
                          float *scale, float *mn);
/* Pack n codes (n multiple of 32/bits) into n*bits/32 words; unpack the reverse. */
void scb_kivi_pack(const uint8_t *codes, int n, int bits, uint32_t *words);
void scb_kivi_unpack(const uint32_t *words, int n, int bits, uint8_t *codes);

struct scb_kivi_cache {
    int Hkv, D, bits, group, R;
    int cap;                  /* token capacity of the quantized stores (grows) */
    int Tk_q, Tv_q;           /* quantized key / value tokens */
    int nk_r, nv_r;           /* residual key / value tokens (time order after the quantized) */
    int requant;              /* 1: quantize R appended tokens at a time (set after create; create
                                 sets 1); 0: appended tokens stay full precision */
    int res_cap;              /* residual tokens allocated per head (R + 1, grows when requant = 0) */
    uint32_t *k_codes;        /* (Hkv, D, cap*bits/32) */
    float *k_scale, *k_min;   /* (Hkv, D, cap/group) */
    uint32_t *v_codes;        /* (Hkv, cap, D*bits/32) */
    float *v_scale, *v_min;   /* (Hkv, cap, D/group) */
    float *k_res, *v_res;     /* (Hkv, res_cap, D) full precision */
};

/* bits in {2, 4, 8}; group divides R (keys) and D (values), 32/bits divides group. */
int  scb_kivi_cache_create(struct scb_kivi_cache **out, int Hkv, int D, int bits, int group, int R,
                           struct scb_ctx *ctx);
void scb_kivi_cache_destroy(struct scb_kivi_cache *c);   /* NULL is a no-op */
/* First prefill: k, v (N, Hkv, D). The cache must be empty. */
int  scb_kivi_cache_prefill(struct scb_kivi_cache *c, const float *k, const float *v, int N,
                            struct scb_ctx *ctx);
/* One more token: k, v (Hkv, D). */
int  scb_kivi_cache_append(struct scb_kivi_cache *c, const float *k, const float *v, struct scb_ctx *ctx);
int  scb_kivi_cache_len(const struct scb_kivi_cache *c);
/* Dequantized cache: k, v (T, Hkv, D) with T = scb_kivi_cache_len (exact copies for residual
 * tokens). */
void scb_kivi_cache_dequant(const struct scb_kivi_cache *c, float *k, float *v);
/* One query row per head over the whole cache (+ optional extra full-precision tokens, e.g.
 * the turn's temp tokens): q (Hq, D), extra_k/v (n_extra, Hkv, D) or NULL, out (Hq, D), lse
 * (Hq) or NULL. */
int  scb_kivi_cache_attn(const struct scb_kivi_cache *c, const float *q, int Hq, float scale,
                         const float *extra_k, const float *extra_v, int n_extra,
                         float *out, float *lse, struct scb_ctx *ctx);
/* Bytes stored: codes + scale/min (scale_bytes each) + residual tokens (elt_bytes each). */
int64_t scb_kivi_cache_bytes(const struct scb_kivi_cache *c, int elt_bytes, int scale_bytes);
/* Same accounting for a cache that saw a prefill of N and then T - N appended tokens, per layer. */
int64_t scb_kivi_bytes(int64_t N, int64_t T, int Hkv, int D, int bits, int group, int R, int requant,
                       int elt_bytes, int scale_bytes);

extern const struct scb_method_ops scb_method_kivi;

/* The quantized store of `layer` held by a kivi method instance (NULL before its first prefill,
 * for another method, or a layer out of range). For the engine's cost accounting. */
const struct scb_kivi_cache *scb_kivi_method_cache(const struct scb_method *m, int layer);

#endif
