/* status.c — status names and the error context (see status.h). */
#include "kernels/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *scb_status_str(int s)
{
    switch (s) {
    case SCB_OK: return "SCB_OK";
    case SCB_E_NOMEM: return "SCB_E_NOMEM";
    case SCB_E_INVAL: return "SCB_E_INVAL";
    case SCB_E_IO: return "SCB_E_IO";
    case SCB_E_FORMAT: return "SCB_E_FORMAT";
    case SCB_E_UNSUPPORTED: return "SCB_E_UNSUPPORTED";
    case SCB_E_CUDA: return "SCB_E_CUDA";
    case SCB_E_DEVICE_OOM: return "SCB_E_DEVICE_OOM";
    case SCB_E_TIMEOUT: return "SCB_E_TIMEOUT";
    case SCB_E_NOTFOUND: return "SCB_E_NOTFOUND";
    case SCB_E_DB: return "SCB_E_DB";
    case SCB_E_INTERRUPTED: return "SCB_E_INTERRUPTED";
    default: return "SCB_E_UNKNOWN";
    }
}

int scb_err(struct scb_ctx *ctx, int code, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        va_end(ap);
        ctx->code = code;
    }
    return code;
}

int scb_err_prefix(struct scb_ctx *ctx, const char *fmt, ...)
{
    if (!ctx) return SCB_E_INVAL;
    char head[SCB_ERRMSG_MAX], old[SCB_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, ctx->msg, sizeof old);
    snprintf(ctx->msg, sizeof ctx->msg, "%s%s", head, old);
    return ctx->code;
}

const char *scb_errmsg(const struct scb_ctx *ctx)
{
    if (!ctx) return "no context";
    if (ctx->msg[0]) return ctx->msg;
    return scb_status_str(ctx->code);
}

void scb_ctx_clear(struct scb_ctx *ctx)
{
    if (ctx) { ctx->code = SCB_OK; ctx->msg[0] = 0; }
}

void scb_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "scbench: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
