/* backend_cuda.c — the CUDA backend object (kernels/backend.h): a kernel context on one device
 * plus the capability answers. It has no fp32 host ops: the model's forward pass runs through
 * the device engine (harness/model_cuda.c, SCB_OP_MODEL) on bf16 weights and KV cache. */
#include "kernels/cuda/backend_cuda.h"

#include <stdio.h>
#include <string.h>

#include "kernels/alloc.h"

static void cuda_destroy(struct scb_backend *be)
{
    scb_cuda_ctx_destroy(be->priv);
    scb_free(be);
}

static void *cuda_alloc(struct scb_backend *be, size_t bytes)
{
    void *p = NULL;
    if (scb_cuda_malloc(be->priv, &p, bytes, NULL) < 0) return NULL;
    return p;
}

static void cuda_free(struct scb_backend *be, void *p) { scb_cuda_free(be->priv, p); }

static int cuda_sync(struct scb_backend *be, struct scb_ctx *ctx) { return scb_cuda_sync(be->priv, ctx); }

static int cuda_supports(struct scb_backend *be, int op, int dtype)
{
    (void)be;
    return op == SCB_OP_MODEL && dtype == SCB_BDT_BF16;
}

static const struct scb_backend_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .sync = cuda_sync,
    .supports = cuda_supports,
    .device = 1,
};

int scb_backend_cuda_available(char *why, size_t n_why)
{
    int n = 0;
    scb_cuda_device_count(&n, why, n_why);
    return n > 0;
}

int scb_backend_cuda_create(struct scb_backend **out, int device, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_backend *be = NULL;
    struct scb_cuda_ctx *cc = NULL;
    char why[256] = "";
    int n = 0;
    *out = NULL;
    scb_cuda_device_count(&n, why, sizeof why);
    if (n <= device)
        return scb_err(ctx, SCB_E_CUDA, "backend cuda: no CUDA device %d (%s)", device,
                       why[0] ? why : "fewer devices");
    SCB_TRY(scb_cuda_ctx_create(&cc, device, 0, ctx));
    be = scb_calloc(1, sizeof *be);
    if (!be) { rc = scb_err(ctx, SCB_E_NOMEM, "backend cuda: out of memory"); goto out; }
    be->ops = &cuda_ops;
    be->n_threads = 1;
    be->priv = cc;
    cc = NULL;
    *out = be;
out:
    scb_cuda_ctx_destroy(cc);
    return rc;
}

struct scb_cuda_ctx *scb_backend_cuda_ctx(struct scb_backend *be)
{
    return be && be->ops == &cuda_ops ? be->priv : NULL;
}
