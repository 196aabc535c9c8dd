/* ids.h — token-id lists on the command line ("1,2,3" or "1 2 3"). */
#ifndef SCB_HARNESS_IDS_H
#define SCB_HARNESS_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

/* Parse comma- or space-separated non-negative integers (< 2^31). *ids owned (scb_free). Errors
 * name the offending item and its position. An empty list is an error. */
int scb_ids_parse(const char *s, int32_t **ids, size_t *n, struct scb_ctx *ctx);

#endif
