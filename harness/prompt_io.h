/* prompt_io.h — a model's tokenizer and chat template as tasks/prompt.h consumes them, and the
 * prompt options `scbench run` uses, so every command that builds SCBench prompts for a model
 * (the run driver, `scbench search-patterns`) builds them the same way. */
#ifndef SCB_HARNESS_PROMPT_IO_H
#define SCB_HARNESS_PROMPT_IO_H

#include <stddef.h>

#include "harness/chat_template.h"
#include "harness/tokenizer.h"
#include "kernels/status.h"
#include "tasks/prompt.h"

struct scb_prompt_io {
    struct scb_tokenizer     *tok;    /* owned */
    struct scb_chat_template *tmpl;   /* owned; NULL without --use_chat_template */
};

/* Load the tokenizer of model_dir and, when chat_template, its chat template. */
int  scb_prompt_io_load(struct scb_prompt_io *p, const char *model_dir, int chat_template, struct scb_ctx *ctx);
void scb_prompt_io_fini(struct scb_prompt_io *p);   /* zeroed struct is fine */

/* The prompt options of one mode as `scbench run` sets them (SCBench's defaults plus its
 * --use_chat_template, --disable_golden_context, --max_seq_length and --max_turns; the turn
 * count of the dataset's FIRST session decides the cut, §3.3). */
void scb_prompt_io_opts(struct scb_prompt_opts *o, int multi_request, int chat_template, int golden,
                        long max_seq_len, size_t first_session_turns, long max_turns);

/* scb_prompt_plan_build with this tokenizer (and template when opts->use_chat_template). */
int  scb_prompt_io_plan(struct scb_prompt_io *p, struct scb_turn_plan *plan, const struct scb_task_ops *task,
                        const struct scb_session *s, const struct scb_prompt_opts *opts, struct scb_ctx *ctx);

#endif
