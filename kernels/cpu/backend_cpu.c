/* backend_cpu.c — the CPU reference backend: fp32, no fast-math, matrix products through
 * CBLAS (cblas_sgemm), attention and elementwise kernels in plain C, parallel over rows or
 * (token, head) pairs with a static partition (kernels/cpu/pool.h), so every output element is
 * computed by one thread in a fixed order and results do not depend on the thread count. */
#if defined(__GNUC__) && !defined(__clang__)
/* Let GCC vectorise the kernels' loops at -O2 builds too (O3's loop vectoriser; no fast-math:
 * reductions keep their written order, so results stay deterministic). */
#pragma GCC optimize("O3")
#endif
#include "kernels/backend.h"

#include <float.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "kernels/alloc.h"
#include "kernels/cpu/pool.h"
#include "kernels/kv_cache.h"

struct cpu_priv {
    struct scb_pool *pool;
    float *scratch;        /* (n_threads, scratch_per) attention scores */
    size_t scratch_per;    /* floats per thread */
    float *sblk;           /* (ATTN_QBLK, sblk_cols) score block of the BLAS prefill path */
    size_t sblk_cols;
    int blas_threads;      /* threads OpenBLAS was last set to */
};

static struct cpu_priv *priv_of(struct scb_backend *be) { return be->priv; }

static void *cpu_alloc(struct scb_backend *be, size_t bytes) { (void)be; return scb_malloc(bytes); }
static void cpu_free(struct scb_backend *be, void *p) { (void)be; scb_free(p); }
static int cpu_sync(struct scb_backend *be, struct scb_ctx *ctx) { (void)be; (void)ctx; return SCB_OK; }

/* ---- matmul ------------------------------------------------------------------------------- */
/* BLAS threads for one product: all of them for large products, one below ~4M multiply-adds,
 * where OpenBLAS's thread hand-off costs more than it saves (a small model's decode step).
 * OpenBLAS splits the output, never the K reduction, so results do not depend on it. */
static void blas_threads_for(struct scb_backend *be, size_t macs)
{
#ifdef OPENBLAS_VERSION
    struct cpu_priv *p = priv_of(be);
    int want = macs < ((size_t)1 << 22) ? 1 : be->n_threads;
    if (want != p->blas_threads) {
        openblas_set_num_threads(want);
        p->blas_threads = want;
    }
#else
    (void)be; (void)macs;
#endif
}

static int cpu_matmul(struct scb_backend *be, const float *x, const float *w, const float *b, float *y,
                      size_t T, size_t K, size_t N, struct scb_ctx *ctx)
{
    if (T == 0) return SCB_OK;
    blas_threads_for(be, T * K * N);
    if (T > INT32_MAX || K > INT32_MAX || N > INT32_MAX)
        return scb_err(ctx, SCB_E_INVAL, "matmul: dimension too large for CBLAS (T=%zu K=%zu N=%zu)", T, K, N);
    if (T == 1)   /* decode: a matrix-vector product streams w once, without packing it */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, 1.0f, w, (int)K, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x, (int)K, w,
                    (int)K, 0.0f, y, (int)N);
    if (b)
        for (size_t t = 0; t < T; t++)
            for (size_t n = 0; n < N; n++) y[t * N + n] += b[n];
    return SCB_OK;
}

/* ---- rmsnorm ------------------------------------------------------------------------------ */
struct rms_job { const float *x, *w; float *y; size_t D; float eps; };

static void rms_rows(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    const struct rms_job *j = arg;
    for (size_t t = b; t < e; t++) {
        const float *x = j->x + t * j->D;
        float *y = j->y + t * j->D;
        double ss = 0.0;
        for (size_t i = 0; i < j->D; i++) ss += (double)x[i] * (double)x[i];
        float var = (float)(ss / (double)j->D);
        float r = (float)(1.0 / sqrt((double)(var + j->eps)));
        for (size_t i = 0; i < j->D; i++) y[i] = j->w[i] * (x[i] * r);
    }
}

static int cpu_rmsnorm(struct scb_backend *be, const float *x, const float *w, float *y, size_t T,
                       size_t D, float eps, struct scb_ctx *ctx)
{
    (void)ctx;
    struct rms_job j = {x, w, y, D, eps};
    scb_pool_run_sized(priv_of(be)->pool, rms_rows, &j, T, 3 * D);
    return SCB_OK;
}

/* ---- rope --------------------------------------------------------------------------------- */
static int cpu_rope_table(struct scb_backend *be, const float *inv_freq, size_t half, int64_t pos0,
                          size_t T, float attn_scale, float *cos_out, float *sin_out, struct scb_ctx *ctx)
{
    (void)be; (void)ctx;
    for (size_t t = 0; t < T; t++) {
        float p = (float)(pos0 + (int64_t)t);
        for (size_t i = 0; i < half; i++) {
            float a = p * inv_freq[i];   /* fp32 product, as torch */
            cos_out[t * half + i] = (float)cos((double)a) * attn_scale;
            sin_out[t * half + i] = (float)sin((double)a) * attn_scale;
        }
    }
    return SCB_OK;
}

struct rope_job { float *x; const float *cos, *sin; size_t H, D; };

static void rope_rows(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    const struct rope_job *j = arg;
    size_t half = j->D / 2;
    for (size_t r = b; r < e; r++) {      /* r = t * H + h */
        size_t t = r / j->H;
        float *x = j->x + r * j->D;
        const float *c = j->cos + t * half, *s = j->sin + t * half;
        for (size_t i = 0; i < half; i++) {
            float x1 = x[i], x2 = x[i + half];
            float a = x1 * c[i], bb = x2 * s[i];   /* q*cos + rotate_half(q)*sin */
            float cc = x2 * c[i], d = x1 * s[i];
            x[i] = a - bb;
            x[i + half] = cc + d;
        }
    }
}

static int cpu_rope(struct scb_backend *be, float *x, const float *cos_t, const float *sin_t, size_t T,
                    size_t H, size_t D, struct scb_ctx *ctx)
{
    (void)ctx;
    struct rope_job j = {x, cos_t, sin_t, H, D};
    scb_pool_run_sized(priv_of(be)->pool, rope_rows, &j, T * H, 3 * D);
    return SCB_OK;
}

/* ---- elementwise -------------------------------------------------------------------------- */
static int cpu_swiglu(struct scb_backend *be, const float *gate, const float *up, float *out, size_t n,
                      struct scb_ctx *ctx)
{
    (void)be; (void)ctx;
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        float sig = 1.0f / (1.0f + expf(-g));
        out[i] = (g * sig) * up[i];
    }
    return SCB_OK;
}

static int cpu_add(struct scb_backend *be, float *y, const float *x, size_t n, struct scb_ctx *ctx)
{
    (void)be; (void)ctx;
    for (size_t i = 0; i < n; i++) y[i] += x[i];
    return SCB_OK;
}

static int cpu_embed(struct scb_backend *be, const float *table, const int32_t *ids, size_t T, size_t D,
                     float *out, struct scb_ctx *ctx)
{
    (void)be; (void)ctx;
    for (size_t t = 0; t < T; t++) memcpy(out + t * D, table + (size_t)ids[t] * D, D * sizeof(float));
    return SCB_OK;
}

static int cpu_argmax(struct scb_backend *be, const float *x, size_t n, int32_t *out, struct scb_ctx *ctx)
{
    (void)be;
    if (!n) return scb_err(ctx, SCB_E_INVAL, "argmax of an empty vector");
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[best] || (isnan(x[i]) && !isnan(x[best]))) best = i;
    *out = (int32_t)best;
    return SCB_OK;
}

/* ---- dense attention ---------------------------------------------------------------------- */
/* Dot product in a fixed order: 8 interleaved partial sums (lane j takes d = j, j+8, ...),
 * combined pairwise, then the tail. Written so the compiler can vectorise it without
 * reassociation; the order is the same for every call, hence deterministic. */
static float dot_f32(const float *restrict a, const float *restrict b, size_t n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t d = 0;
    for (; d + 8 <= n; d += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[d + (size_t)j] * b[d + (size_t)j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; d++) s += a[d] * b[d];
    return s;
}

struct attn_job { const struct scb_backend_attn *a; float *scratch; size_t scratch_per; };

static void attn_rows(void *arg, size_t b, size_t e, int tid)
{
    const struct attn_job *j = arg;
    const struct scb_backend_attn *a = j->a;
    const size_t D = a->D, H = a->H, group = a->H / a->Hkv;
    float *sc = j->scratch + (size_t)tid * j->scratch_per;
    for (size_t r = b; r < e; r++) {      /* r = t * H + h */
        size_t t = r / H, h = r % H, hk = h / group;
        size_t n = scb_kv_cache_len(a->kv, a->layer, hk);
        const float *K = scb_kv_cache_k(a->kv, a->layer, hk);   /* (n, D) */
        const float *V = scb_kv_cache_v(a->kv, a->layer, hk);   /* (n, D) */
        const float *q = a->q + r * D;
        float *o = a->out + r * D;
        size_t nvis = t + (n - a->T) + 1;                        /* keys j <= t + (n - T) */
        if (nvis > n) nvis = n;
        float mx = -FLT_MAX;
        for (size_t k = 0; k < nvis; k++) {
            float s = dot_f32(q, K + k * D, D) * a->scale;
            sc[k] = s;
            if (s > mx) mx = s;
        }
        float sum = 0.0f;
        for (size_t k = 0; k < nvis; k++) { sc[k] = expf(sc[k] - mx); sum += sc[k]; }
        float *restrict acc = sc + j->scratch_per - D;   /* (D) per-thread accumulator */
        for (size_t d = 0; d < D; d++) acc[d] = 0.0f;
        for (size_t k = 0; k < nvis; k++) {
            const float *restrict vr = V + k * D;
            const float p = sc[k];
            for (size_t d = 0; d < D; d++) acc[d] += p * vr[d];
        }
        float inv = 1.0f / sum;
        for (size_t d = 0; d < D; d++) o[d] = acc[d] * inv;
    }
}

/* Prefill path for chunks of >= ATTN_BLAS_MIN queries: per head and block of ATTN_QBLK queries,
 * S = scale · Q K^T (cblas_sgemm) over the keys the block can see, a causal softmax per row
 * (masked entries set to 0, rows split over the pool), then O = P V (cblas_sgemm). Every
 * element is reduced in one fixed order whatever the thread count. */
enum { ATTN_QBLK = 64, ATTN_BLAS_MIN = 16 };

struct softmax_job { float *S; size_t ld, i0, off; };

static void softmax_rows(void *arg, size_t b, size_t e, int tid)
{
    (void)tid;
    const struct softmax_job *j = arg;
    for (size_t r = b; r < e; r++) {
        float *row = j->S + r * j->ld;
        size_t nvis = j->i0 + r + j->off + 1;      /* keys <= i + (n - T) */
        if (nvis > j->ld) nvis = j->ld;
        float mx = -FLT_MAX;
        for (size_t k = 0; k < nvis; k++) if (row[k] > mx) mx = row[k];
        float sum = 0.0f;
        for (size_t k = 0; k < nvis; k++) { row[k] = expf(row[k] - mx); sum += row[k]; }
        float inv = 1.0f / sum;
        for (size_t k = 0; k < nvis; k++) row[k] *= inv;
        for (size_t k = nvis; k < j->ld; k++) row[k] = 0.0f;
    }
}

static int attn_prefill_blas(struct scb_backend *be, const struct scb_backend_attn *a, size_t maxn,
                             struct scb_ctx *ctx)
{
    struct cpu_priv *p = priv_of(be);
    const size_t D = a->D, H = a->H, T = a->T, group = a->H / a->Hkv;
    if (maxn > p->sblk_cols) {
        float *sb = scb_malloc((size_t)ATTN_QBLK * maxn * sizeof(float));
        if (!sb) return scb_err(ctx, SCB_E_NOMEM, "attention: out of memory for a %d×%zu score block", ATTN_QBLK, maxn);
        scb_free(p->sblk);
        p->sblk = sb;
        p->sblk_cols = maxn;
    }
    if (maxn > INT32_MAX || H * D > INT32_MAX)
        return scb_err(ctx, SCB_E_INVAL, "attention: %zu keys too many for CBLAS", maxn);
    for (size_t h = 0; h < H; h++) {
        size_t hk = h / group, n = scb_kv_cache_len(a->kv, a->layer, hk), off = n - T;
        const float *K = scb_kv_cache_k(a->kv, a->layer, hk);   /* (n, D) */
        const float *V = scb_kv_cache_v(a->kv, a->layer, hk);   /* (n, D) */
        for (size_t i0 = 0; i0 < T; i0 += ATTN_QBLK) {
            size_t b = T - i0 < ATTN_QBLK ? T - i0 : ATTN_QBLK;
            size_t kn = i0 + b + off;                            /* keys the block's last query sees */
            float *S = p->sblk;                                  /* (b, kn) */
            blas_threads_for(be, b * kn * D);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)kn, (int)D, a->scale,
                        a->q + (i0 * H + h) * D, (int)(H * D), K, (int)D, 0.0f, S, (int)kn);
            struct softmax_job sj = {S, kn, i0, off};
            scb_pool_run_sized(p->pool, softmax_rows, &sj, b, 8 * kn);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, (int)D, (int)kn, 1.0f, S, (int)kn,
                        V, (int)D, 0.0f, a->out + (i0 * H + h) * D, (int)(H * D));
        }
    }
    return SCB_OK;
}

static int cpu_attn_dense(struct scb_backend *be, void *user, const struct scb_backend_attn *a,
                          struct scb_ctx *ctx)
{
    (void)user;
    struct cpu_priv *p = priv_of(be);
    if (a->Hkv == 0 || a->H % a->Hkv)
        return scb_err(ctx, SCB_E_INVAL, "attention: %zu query heads not a multiple of %zu KV heads", a->H, a->Hkv);
    size_t maxn = 0;
    for (size_t h = 0; h < a->Hkv; h++) {
        size_t n = scb_kv_cache_len(a->kv, a->layer, h);
        if (n < a->T)
            return scb_err(ctx, SCB_E_INVAL, "attention: layer %zu head %zu holds %zu entries, fewer than "
                           "the %zu queries of the chunk (append the chunk first)", a->layer, h, n, a->T);
        if (n > maxn) maxn = n;
    }
    if (a->T >= ATTN_BLAS_MIN) return attn_prefill_blas(be, a, maxn, ctx);
    if (maxn + a->D > p->scratch_per) {
        /* grows only when the context grows past every earlier length (sized from the cache) */
        size_t per = (a->kv->cap > maxn ? a->kv->cap : maxn) + a->D;   /* scores + (D) accumulator */
        float *s = scb_malloc((size_t)be->n_threads * per * sizeof(float));
        if (!s) return scb_err(ctx, SCB_E_NOMEM, "attention: out of memory for scores of %zu keys", per);
        scb_free(p->scratch);
        p->scratch = s;
        p->scratch_per = per;
    }
    struct attn_job j = {a, p->scratch, p->scratch_per};
    scb_pool_run_sized(p->pool, attn_rows, &j, a->T * a->H, 4 * maxn * a->D);
    return SCB_OK;
}

static void cpu_destroy(struct scb_backend *be);

static const struct scb_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .sync = cpu_sync,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope_table = cpu_rope_table,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
    .embed = cpu_embed,
    .attn_prefill = cpu_attn_dense,
    .attn_decode = cpu_attn_dense,
    .argmax = cpu_argmax,
};

int scb_backend_cpu_create(struct scb_backend **out, int n_threads, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_backend *be = NULL;
    *out = NULL;
    if (n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (int)nc : 1;
    }
    be = scb_calloc(1, sizeof *be);
    struct cpu_priv *p = scb_calloc(1, sizeof *p);
    if (!be || !p) { scb_free(be); scb_free(p); return scb_err(ctx, SCB_E_NOMEM, "cpu backend: out of memory"); }
    be->ops = &cpu_ops;
    be->n_threads = n_threads;
    be->priv = p;
    SCB_TRY(scb_pool_create(&p->pool, n_threads, ctx));
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(n_threads);
    p->blas_threads = n_threads;
#endif
    *out = be;
    be = NULL;
out:
    if (be) cpu_destroy(be);
    return rc;
}

static void cpu_destroy(struct scb_backend *be)
{
    struct cpu_priv *p = be->priv;
    if (p) {
        scb_pool_destroy(p->pool);
        scb_free(p->scratch);
        scb_free(p->sblk);
        scb_free(p);
    }
    scb_free(be);
}
