/* prompt_io.c — tokenizer + chat template behind tasks/prompt.h (see prompt_io.h). */
#include "harness/prompt_io.h"

#include <string.h>

static int render_cb(void *user, const struct scb_chat_msg *msgs, size_t n, int add_gen,
                     char **out, struct scb_ctx *ctx)
{
    const struct scb_prompt_io *p = user;
    return scb_chat_template_render(p->tmpl, msgs, n, add_gen, out, ctx);
}

static int encode_cb(void *user, const char *text, size_t len, int add_special, int32_t **ids,
                     size_t *n, struct scb_ctx *ctx)
{
    const struct scb_prompt_io *p = user;
    return scb_tokenizer_encode(p->tok, text, len, add_special ? SCB_TOK_ADD_SPECIAL : 0, ids, n, ctx);
}

int scb_prompt_io_load(struct scb_prompt_io *p, const char *model_dir, int chat_template, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    memset(p, 0, sizeof *p);
    SCB_TRY(scb_tokenizer_load(&p->tok, model_dir, ctx));
    if (chat_template) SCB_TRY(scb_chat_template_load(&p->tmpl, model_dir, ctx));
out:
    if (rc) scb_prompt_io_fini(p);
    return rc;
}

void scb_prompt_io_fini(struct scb_prompt_io *p)
{
    scb_chat_template_destroy(p->tmpl);
    scb_tokenizer_destroy(p->tok);
    memset(p, 0, sizeof *p);
}

void scb_prompt_io_opts(struct scb_prompt_opts *o, int multi_request, int chat_template, int golden,
                        long max_seq_len, size_t first_session_turns, long max_turns)
{
    scb_prompt_opts_default(o);
    o->mode = multi_request ? SCB_MODE_MULTI_REQUEST : SCB_MODE_MULTI_TURN;
    o->use_chat_template = chat_template;
    o->golden_context = golden;
    o->max_seq_length = max_seq_len;
    scb_prompt_opts_set_turns(o, first_session_turns, max_turns);
}

int scb_prompt_io_plan(struct scb_prompt_io *p, struct scb_turn_plan *plan, const struct scb_task_ops *task,
                       const struct scb_session *s, const struct scb_prompt_opts *opts, struct scb_ctx *ctx)
{
    struct scb_chat_renderer rr = {render_cb, p};
    struct scb_token_encoder enc = {encode_cb, p};
    memset(plan, 0, sizeof *plan);
    if (opts->use_chat_template && !p->tmpl)
        return scb_err(ctx, SCB_E_INVAL, "prompts: the chat template was not loaded");
    return scb_prompt_plan_build(plan, task, s, opts, opts->use_chat_template ? &rr : NULL, &enc, ctx);
}
