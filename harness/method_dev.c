/* method_dev.c — the table of device (CUDA) method implementations (see method_dev.h). Each
 * implementation lives in its own harness/method_dev_<name>.c. */
#include "harness/method_dev.h"

#include <string.h>

extern const struct scb_dev_method_ops scb_dev_a_shape, scb_dev_tri_shape, scb_dev_minference;
extern const struct scb_dev_method_ops scb_dev_kivi;
extern const struct scb_dev_method_ops scb_dev_pyramidkv;
extern const struct scb_dev_method_ops scb_dev_quest;
extern const struct scb_dev_method_ops scb_dev_retr_attn;
extern const struct scb_dev_method_ops scb_dev_snapkv;
extern const struct scb_dev_method_ops scb_dev_streamingllm;

static const struct scb_dev_method_ops *const methods[] = {
    &scb_dev_a_shape,
    &scb_dev_minference,
    &scb_dev_tri_shape,
    &scb_dev_kivi,
    &scb_dev_pyramidkv,
    &scb_dev_quest,
    &scb_dev_retr_attn,
    &scb_dev_snapkv,
    &scb_dev_streamingllm,
    NULL
};

const struct scb_dev_method_ops *scb_dev_method_find(const char *name)
{
    for (size_t i = 0; methods[i]; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    return NULL;
}
