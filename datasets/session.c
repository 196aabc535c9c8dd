/* session.c — freeing a session (see session.h). */
#include "datasets/session.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"

void scb_session_fini(struct scb_session *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->n_turns; i++) {
        struct scb_turn *t = &s->turns[i];
        scb_free(t->input);
        cJSON_Delete(t->answer);
        cJSON_Delete(t->options);
        scb_free(t->task);
        scb_free(t->name);
    }
    scb_free(s->turns);
    scb_free(s->context);
    scb_free(s->context_ints);
    scb_free(s->lang);
    scb_free(s->repo);
    scb_free(s->task);
    memset(s, 0, sizeof *s);
}
