/* status.h — the one status enum of scbench and the error context that carries detail text.
 *
 * Every fallible function returns int: SCB_OK (0) or a negative enum scb_status. Detail text
 * goes on a struct scb_ctx passed by the caller (like sqlite3_errmsg): scb_err() formats it
 * and returns the code, so `return scb_err(ctx, SCB_E_IO, "%s: %s", path, strerror(errno));`
 * is the idiom. Functions keep one exit: `int rc = SCB_OK; ... SCB_TRY(f(...)); ... out:`.
 * exit() is never called outside main. */
#ifndef SCB_KERNELS_STATUS_H
#define SCB_KERNELS_STATUS_H

#include <stddef.h>

enum scb_status {
    SCB_OK            = 0,
    SCB_E_NOMEM       = -1,  /* host allocation failed */
    SCB_E_INVAL       = -2,  /* bad argument or bad user input (command line, options) */
    SCB_E_IO          = -3,  /* file missing, unreadable, short read, write failure */
    SCB_E_FORMAT      = -4,  /* a file's contents are malformed (JSON, safetensors, gzip) */
    SCB_E_UNSUPPORTED = -5,  /* valid but not supported (architecture, dtype, template construct) */
    SCB_E_CUDA        = -6,  /* CUDA or cuBLAS error */
    SCB_E_DEVICE_OOM  = -7,  /* device allocation failed */
    SCB_E_TIMEOUT     = -8,
    SCB_E_NOTFOUND    = -9,  /* a named thing (tensor, task, method, key) does not exist */
    SCB_E_DB          = -10, /* SQLite error */
    SCB_E_INTERRUPTED = -11  /* stopped by a signal; finished work is kept */
};

#define SCB_ERRMSG_MAX 2048

/* Error context: the last error's code and message. Zero-initialise (`struct scb_ctx c = {0};`). */
struct scb_ctx {
    int  code;                 /* last status set through scb_err, SCB_OK if none */
    char msg[SCB_ERRMSG_MAX];  /* detail text, NUL-terminated */
};

/* Short name of a status ("SCB_E_IO"). Never NULL. */
const char *scb_status_str(int status);

/* Record an error on ctx (ctx may be NULL) and return code. printf-style message. */
int scb_err(struct scb_ctx *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already on ctx with more context ("loading model X: " + old). Returns ctx->code. */
int scb_err_prefix(struct scb_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message on ctx, or the status string when no message was set. Never NULL. */
const char *scb_errmsg(const struct scb_ctx *ctx);

/* Clear ctx. */
void scb_ctx_clear(struct scb_ctx *ctx);

/* Goto-cleanup helper: requires `int rc` and label `out` in the function. */
#define SCB_TRY(expr) do { if ((rc = (expr)) < 0) goto out; } while (0)

/* Programmer-error assertion, active in every build type. Prints file:line and aborts. */
void scb_assert_fail(const char *expr, const char *file, int line);
#define SCB_ASSERT(x) do { if (!(x)) scb_assert_fail(#x, __FILE__, __LINE__); } while (0)

#endif
