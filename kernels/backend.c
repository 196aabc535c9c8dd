/* backend.c — backend-independent entry points of the backend interface (see backend.h). */
#include "kernels/backend.h"

void scb_backend_destroy(struct scb_backend *be)
{
    if (be) be->ops->destroy(be);
}
