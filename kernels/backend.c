/* backend.c — backend-independent entry points of the backend interface (see backend.h):
 * destroy, the capability query, and opening a backend by name (cpu, cuda, auto). */
#include "kernels/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scb_config.h"

void scb_backend_destroy(struct scb_backend *be)
{
    if (be) be->ops->destroy(be);
}

int scb_backend_supports(struct scb_backend *be, int op, int dtype)
{
    if (!be) return 0;
    if (be->ops->supports) return be->ops->supports(be, op, dtype);
    return op != SCB_OP_MODEL && dtype == SCB_BDT_F32;
}

#if !SCB_HAVE_CUDA
int scb_backend_cuda_create(struct scb_backend **out, int device, struct scb_ctx *ctx)
{
    (void)device;
    *out = NULL;
    return scb_err(ctx, SCB_E_UNSUPPORTED, "backend cuda: this scbench was built without CUDA "
                   "(meson -Dcuda=enabled on a machine with nvcc and cuBLAS)");
}

int scb_backend_cuda_available(char *why, size_t n_why)
{
    if (why && n_why) snprintf(why, n_why, "built without CUDA");
    return 0;
}
#endif

int scb_backend_open(struct scb_backend **out, const char *name, int n_threads, struct scb_ctx *ctx)
{
    *out = NULL;
    if (!name || !strcmp(name, "auto")) {
        const char *env = getenv("SCB_BACKEND");
        if (env && *env && strcmp(env, "auto")) name = env;
        else name = scb_backend_cuda_available(NULL, 0) ? "cuda" : "cpu";
    }
    if (!strcmp(name, "cpu")) return scb_backend_cpu_create(out, n_threads, ctx);
    if (!strcmp(name, "cuda")) return scb_backend_cuda_create(out, 0, ctx);
    return scb_err(ctx, SCB_E_INVAL, "unknown backend '%s' (expected cpu, cuda or auto)", name);
}
