/* safetensors.h — read-only access to Hugging Face safetensors weights: one file or the
 * shards listed in model.safetensors.index.json. Each file is memory-mapped; its 8-byte
 * little-endian header length and JSON header (dtype, shape, data_offsets per tensor) are
 * validated: header past the end of the file, invalid JSON, unknown or unsupported dtype,
 * offsets out of range, overlapping, or inconsistent with shape × dtype size. Every error
 * names the file (and the tensor). */
#ifndef SCB_HARNESS_SAFETENSORS_H
#define SCB_HARNESS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

enum scb_dtype {
    SCB_DTYPE_F32  = 0,
    SCB_DTYPE_F16  = 1,
    SCB_DTYPE_BF16 = 2
};

#define SCB_ST_MAX_DIMS 8

struct scb_st_tensor {
    const char *name;        /* borrowed from the set */
    const char *file;        /* path of the file holding it, borrowed */
    int dtype;               /* enum scb_dtype */
    int ndim;
    int64_t shape[SCB_ST_MAX_DIMS];
    size_t numel;
    const void *data;        /* into the mapping; numel × dtype size bytes */
};

struct scb_safetensors;

/* Open one .safetensors file. */
int scb_safetensors_open(struct scb_safetensors **out, const char *path, struct scb_ctx *ctx);
/* Open the weights of a model directory: DIR/model.safetensors, else the shards named by
 * DIR/model.safetensors.index.json (each listed tensor must be in its shard). */
int scb_safetensors_open_dir(struct scb_safetensors **out, const char *dir, struct scb_ctx *ctx);
void scb_safetensors_close(struct scb_safetensors *st);   /* NULL is a no-op */

/* Tensor by name, or NULL. */
const struct scb_st_tensor *scb_safetensors_find(const struct scb_safetensors *st, const char *name);
size_t scb_safetensors_count(const struct scb_safetensors *st);
const struct scb_st_tensor *scb_safetensors_at(const struct scb_safetensors *st, size_t i);
/* A description of the source for messages ("DIR/model.safetensors" or the index path). */
const char *scb_safetensors_source(const struct scb_safetensors *st);

/* Size in bytes of one element; name as in the safetensors header ("F32"). */
size_t      scb_dtype_size(int dtype);
const char *scb_dtype_name(int dtype);
/* Convert n elements of dtype at src to fp32 (bf16/f16 exactly widened). */
void scb_dtype_to_f32(int dtype, const void *src, float *dst, size_t n);

#endif
