/* method_dev.c — the table of device (CUDA) method implementations (see method_dev.h). Each
 * implementation lives in its own harness/method_dev_<name>.c. */
#include "harness/method_dev.h"

#include <string.h>

extern const struct scb_dev_method_ops scb_dev_kivi;
extern const struct scb_dev_method_ops scb_dev_retr_attn;

static const struct scb_dev_method_ops *const methods[] = {
    &scb_dev_kivi,
    &scb_dev_retr_attn,
    NULL
};

const struct scb_dev_method_ops *scb_dev_method_find(const char *name)
{
    for (size_t i = 0; methods[i]; i++)
        if (!strcmp(methods[i]->name, name)) return methods[i];
    return NULL;
}
