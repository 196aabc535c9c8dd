/* a_shape.h — A-shape and Tri-shape sparse prefill attention (spec/methods.md §3), computed
 * sparsely (each row gathers its sink and window keys; no mask is built), plus the masks for
 * brute-force tests.
 *
 * A-shape: query at absolute position p (= row i + Tk - Tq) sees key j iff j <= p and
 * (p - j < n_local or j < n_init): the local window includes the query itself, sinks are added
 * only outside the window. Each row sees min(p + 1, n_init + n_local) keys. Defaults 128 / 3968.
 * Tri-shape: A-shape for all rows but the last n_last = min(n_last, Tq - 1), which attend densely
 * (causally) to every key. Default n_last 100. */
#ifndef SCB_METHODS_A_SHAPE_H
#define SCB_METHODS_A_SHAPE_H

#include <stdint.h>

#include "methods/method.h"

/* 1 if (p, j) is in the A-shape mask. */
int scb_ashape_allowed(int p, int j, int n_init, int n_local);
/* Keys of the query at position p, ascending, into idx (capacity >= min(p+1, n_init+n_local)).
 * Returns the count. */
int scb_ashape_keys(int p, int n_init, int n_local, int32_t *idx);

/* Sparse attention; a->density set to computed / causal pairs. */
int scb_ashape_attn(struct scb_attn_args *a, int n_init, int n_local, struct scb_ctx *ctx);
int scb_trishape_attn(struct scb_attn_args *a, int n_init, int n_local, int n_last,
                      struct scb_ctx *ctx);

/* Masks for tests: mask (Tq, Tk) bytes, 1 = attended (causal included). */
void scb_ashape_mask(int Tq, int Tk, int n_init, int n_local, uint8_t *mask);
void scb_trishape_mask(int Tq, int Tk, int n_init, int n_local, int n_last, uint8_t *mask);

/* The method table entries (registry.c lists them). */
extern const struct scb_method_ops scb_method_a_shape;
extern const struct scb_method_ops scb_method_tri_shape;

#endif
