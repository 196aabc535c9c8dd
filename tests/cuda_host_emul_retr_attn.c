/* cuda_host_emul_retr_attn.c — host emulation of kernels/retr_attn_cuda.h for
 * `scbench_cuda_emul` (see cuda_host_emul.c), from the header's semantics: the resident ranges
 * and each head's retrieved list attended as two parts (fp32 scores of the bf16 inputs), each
 * with its own max and sum, merged with log-sum-exp weights, one bf16 rounding of the output.
 * It lets CI run the device binding's logic (harness/method_dev_retr_attn.c: host index, lists,
 * windows, recall); tests/parity_cuda_retr_attn.c checks the real kernel on a GPU. */
#include "kernels/retr_attn_cuda.h"

#include <math.h>
#include <string.h>

#include "kernels/alloc.h"
#include "methods/retr_attn.h"

size_t scb_retr_attn_cuda_work_floats(int Hq, int D, int n_res, int idx_stride)
{
    return (size_t)((n_res + SCB_RETR_CHUNK - 1) / SCB_RETR_CHUNK + (idx_stride + SCB_RETR_CHUNK - 1) / SCB_RETR_CHUNK + 1) *
           Hq * (D + 2);
}

/* one part over keys js[0..n): unnormalized o (D), max *m, sum *l */
static void part(const struct scb_retr_attn_cuda_args *a, int h, const float *q, const int32_t *js, int n,
                 float scale, float *o, float *m, float *l, float *sc)
{
    const int D = a->D, g = h / (a->Hq / a->Hkv);
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) {
        const uint16_t *kr = a->k + ((size_t)g * a->kcap + js[i]) * D;
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot += q[d] * scb_bf16_to_f32(kr[d]);
        sc[i] = dot * scale;
        if (sc[i] > mx) mx = sc[i];
    }
    for (int d = 0; d < D; d++) o[d] = 0.0f;
    for (int i = 0; i < n; i++) {
        float p = expf(sc[i] - mx);
        sum += p;
        const uint16_t *vr = a->v + ((size_t)g * a->kcap + js[i]) * D;
        for (int d = 0; d < D; d++) o[d] += p * scb_bf16_to_f32(vr[d]);
    }
    *m = n ? mx : -INFINITY;
    *l = sum;
}

int scb_retr_attn_cuda(struct scb_cuda_ctx *cc, const struct scb_retr_attn_cuda_args *a, struct scb_ctx *err)
{
    (void)cc;
    if (!a || !a->q || !a->k || !a->v || !a->out || !a->work || a->Hkv < 1 || a->Hq < 1 || a->Hq % a->Hkv ||
        a->D < 2 || a->D % 2 || a->D > 256 || a->r0_begin < 0 || a->r0_end < a->r0_begin ||
        a->r1_begin < a->r0_end || a->r1_end < a->r1_begin || (size_t)a->r1_end > a->kcap || a->idx_stride < 0 ||
        (a->idx_stride > 0 && (!a->idx || !a->n_idx)))
        return scb_err(err, SCB_E_INVAL, "emulated retr_attn: bad arguments");
    const int D = a->D;
    const int r1_end = a->r1_end_dev ? *a->r1_end_dev : a->r1_end;   /* a graph step's count, read now */
    if (r1_end < a->r1_begin || r1_end > a->r1_end)
        return scb_err(err, SCB_E_INVAL, "emulated retr_attn: the device end %d is outside [%d, %d]", r1_end,
                       a->r1_begin, a->r1_end);
    const int n_res = (a->r0_end - a->r0_begin) + (r1_end - a->r1_begin);
    const size_t nmax = (size_t)(n_res > a->idx_stride ? n_res : a->idx_stride) + 1;
    int32_t *js = scb_malloc(sizeof(int32_t) * nmax);
    float *sc = scb_malloc(sizeof(float) * nmax);
    if (!js || !sc) { scb_free(js); scb_free(sc); return scb_err(err, SCB_E_NOMEM, "emulated retr_attn: out of memory"); }
    const float scale = a->scale != 0.0f ? a->scale : 1.0f / sqrtf((float)D);
    for (int h = 0; h < a->Hq; h++) {
        float q[256], o1[256], o2[256], m1, l1, m2 = -INFINITY, l2 = 0.0f;
        for (int d = 0; d < D; d++) q[d] = scb_bf16_to_f32(a->q[(size_t)h * D + d]);
        int n = 0;
        for (int j = a->r0_begin; j < a->r0_end; j++) js[n++] = j;
        for (int j = a->r1_begin; j < r1_end; j++) js[n++] = j;
        part(a, h, q, js, n, scale, o1, &m1, &l1, sc);
        int nr = a->idx_stride ? a->n_idx[h] : 0;
        for (int d = 0; d < D; d++) o2[d] = 0.0f;
        if (nr > 0) part(a, h, q, a->idx + (size_t)h * a->idx_stride, nr, scale, o2, &m2, &l2, sc);
        float M = m1 > m2 ? m1 : m2, w1 = m1 == -INFINITY ? 0.0f : expf(m1 - M), w2 = m2 == -INFINITY ? 0.0f : expf(m2 - M);
        float L = l1 * w1 + l2 * w2;
        for (int d = 0; d < D; d++) a->out[(size_t)h * D + d] = scb_bf16_from_f32(L > 0.0f ? (o1[d] * w1 + o2[d] * w2) / L : 0.0f);
        if (a->lse) a->lse[h] = L > 0.0f ? M + logf(L) : -INFINITY;
    }
    scb_free(js);
    scb_free(sc);
    return SCB_OK;
}

size_t scb_retr_flat_cuda_work_floats(int Hq, int n) { return (size_t)Hq * (size_t)(n > 0 ? n : 1); }

/* The header's semantics with the CPU method's own code: scb_retr_score of the widened bf16
 * values, scb_retr_topk_set (ties to the smaller token, ascending ids). */
int scb_retr_flat_topk_cuda(struct scb_cuda_ctx *cc, const uint16_t *q, const uint16_t *k, size_t kcap, int Hq,
                            int Hkv, int D, int lo, int hi, int top_k, int32_t *idx, int idx_stride, int32_t *n_idx,
                            float *scores, struct scb_ctx *err)
{
    (void)cc;
    const int n = hi - lo, kp = top_k < n ? top_k : n;
    if (!q || !k || !n_idx || Hkv < 1 || Hq < 1 || Hq % Hkv || D < 2 || D % 2 || D > 256 || lo < 0 || n < 0 ||
        (size_t)hi > kcap || top_k < 0 || (n > 0 && (!idx || !scores || kp > idx_stride)))
        return scb_err(err, SCB_E_INVAL, "emulated retr_attn flat top-k: bad arguments");
    for (int h = 0; h < Hq; h++) n_idx[h] = kp > 0 ? kp : 0;
    if (kp <= 0) return SCB_OK;
    float *kf = scb_malloc(sizeof(float) * (size_t)D);
    void *work = scb_malloc(scb_retr_topk_set_work_bytes(n));
    if (!kf || !work) { scb_free(kf); scb_free(work); return scb_err(err, SCB_E_NOMEM, "emulated retr_attn: out of memory"); }
    const int G = Hq / Hkv;
    for (int h = 0; h < Hq; h++) {
        float qf[256];
        for (int d = 0; d < D; d++) qf[d] = scb_bf16_to_f32(q[(size_t)h * D + d]);
        for (int t = 0; t < n; t++) {
            const uint16_t *kr = k + ((size_t)(h / G) * kcap + (size_t)(lo + t)) * D;
            for (int d = 0; d < D; d++) kf[d] = scb_bf16_to_f32(kr[d]);
            scores[(size_t)h * n + t] = scb_retr_score(qf, kf, D);
        }
        scb_retr_topk_set(scores + (size_t)h * n, n, lo, kp, idx + (size_t)h * idx_stride, work);
    }
    scb_free(kf);
    scb_free(work);
    return SCB_OK;
}
