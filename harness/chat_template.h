/* chat_template.h — renders a model's own chat template (the Jinja `chat_template` string of
 * tokenizer_config.json) byte-identically to transformers' apply_chat_template, through the
 * Jinja subset in harness/jinja.h. Variables given to the template as transformers does:
 * messages, add_generation_prompt, bos_token, eos_token (and the other special-token strings
 * of tokenizer_config.json), raise_exception, strftime_now (date settable). */
#ifndef SCB_HARNESS_CHAT_TEMPLATE_H
#define SCB_HARNESS_CHAT_TEMPLATE_H

#include <stddef.h>

#include "kernels/chat_msg.h"   /* struct scb_chat_msg {role, content} */
#include "kernels/status.h"

struct scb_chat_template;

/* Load the chat template of DIR/tokenizer_config.json (or DIR/chat_template.jinja / .json
 * where the model keeps it there). */
int scb_chat_template_load(struct scb_chat_template **out, const char *model_dir, struct scb_ctx *ctx);
/* Compile a template from a string (for tests and models without a config). bos/eos may be NULL. */
int scb_chat_template_from_string(struct scb_chat_template **out, const char *source,
                                  const char *bos_token, const char *eos_token, struct scb_ctx *ctx);
void scb_chat_template_destroy(struct scb_chat_template *t);

/* Fix the date that strftime_now / date_string see (time_t seconds; 0 = the real clock). */
void scb_chat_template_set_time(struct scb_chat_template *t, long long unix_seconds);

/* Render msgs[0..n). *out allocated with scb_malloc, NUL-terminated. */
int scb_chat_template_render(const struct scb_chat_template *t, const struct scb_chat_msg *msgs,
                             size_t n, int add_generation_prompt, char **out, struct scb_ctx *ctx);

#endif
