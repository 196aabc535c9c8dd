/* quest.h — Quest query-aware page selection as SCBench runs it (spec/methods.md §7): every
 * decode step and follow-up chunk, every layer, per query head.
 *
 * Pages of P = 16 cache entries aligned to entry 0 (the last may be partial). For a single query
 * row: sign[d] = +1 if q[d] > 0 else -1 (0 counts as -1); ub[p] = sum_d (q[d] sign[d]) *
 * max_{t in p} (K[t][d] sign[d]) = sum_d max(q[d] maxK, q[d] minK), an upper bound of q.k over the
 * page (no scale). For a chunk of several rows SCBench SUMS the per-row signs (integer weights,
 * possibly 0) and every row uses that summed sign: a heuristic, not a bound; reproduced as-is.
 * kpages = min(max(3, min(T, budget) / P), ceil(T / P)); each row keeps its top kpages pages by ub
 * (ties: smaller page first) and attends exactly (causally) to the entries of those pages. No page
 * is forced (original Quest forces the current one and keeps layers 0-1 dense). */
#ifndef SCB_METHODS_QUEST_H
#define SCB_METHODS_QUEST_H

#include <stdint.h>

#include "methods/method.h"

/* Signs of a head for the chunk: w (D) = sum over rows of sign(q_i). q: row i at q + i*qs. */
void scb_quest_signs(const float *q, size_t qs, int Tq, int D, float *w);
/* Page bounds of one query row with sign weights w: k key t at k + t*ks, T keys, page P;
 * ub (ceil(T/P)). */
void scb_quest_bounds(const float *q, const float *w, const float *k, size_t ks, int T, int D,
                      int P, double *ub);
/* Pages a row keeps. */
int  scb_quest_kpages(int T, int P, int budget);
/* Top-kp pages of ub (np pages), ascending page ids into sel. Returns kp. */
int  scb_quest_top_pages(const double *ub, int np, int kp, int32_t *sel);
/* Quest attention of a chunk (Tq rows over Tk entries). density = computed / causal pairs. */
int  scb_quest_attn(struct scb_attn_args *a, int page, int budget, struct scb_ctx *ctx);

extern const struct scb_method_ops scb_method_quest;

#endif
