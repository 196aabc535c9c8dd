/* tokenizer.h — Hugging Face tokenizer.json BPE in C, byte-level (Llama-3, Qwen) and
 * SentencePiece-style (Llama-2, Mistral, Gemma: Prepend/Replace normalizers, Metaspace,
 * byte_fallback): normalizers, Split/Metaspace/ByteLevel pre-tokenizers, merges by rank (with
 * ignore_merges), added/special tokens split out before BPE, the post-processor's BOS, and the
 * decoder chain. Reads
 * tokenizer.json and tokenizer_config.json of a model directory; ids match the HF `tokenizers`
 * library. A loaded tokenizer is immutable and safe to use from several threads. */
#ifndef SCB_HARNESS_TOKENIZER_H
#define SCB_HARNESS_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/status.h"

struct scb_tokenizer;

enum scb_tok_flags {
    SCB_TOK_ADD_SPECIAL = 1 << 0, /* add what the post-processor adds (e.g. Llama-3's BOS) */
    SCB_TOK_NO_SPECIAL  = 1 << 1  /* encode special-token text as plain text (HF encode_special_tokens) */
};

/* Load DIR/tokenizer.json (+ DIR/tokenizer_config.json when present). *out owned by caller. */
int scb_tokenizer_load(struct scb_tokenizer **out, const char *model_dir, struct scb_ctx *ctx);
void scb_tokenizer_destroy(struct scb_tokenizer *t);

/* Encode text[0..len). *ids is allocated with scb_malloc (caller frees), *n its length. */
int scb_tokenizer_encode(const struct scb_tokenizer *t, const char *text, size_t len, int flags,
                         int32_t **ids, size_t *n, struct scb_ctx *ctx);
/* Number of tokens text would encode to (flags as for encode). */
int scb_tokenizer_count(const struct scb_tokenizer *t, const char *text, size_t len, int flags,
                        size_t *n, struct scb_ctx *ctx);
/* Decode ids to text (special tokens included, no cleanup, as HF decode with
 * skip_special_tokens=False). *text allocated with scb_malloc, NUL-terminated. */
int scb_tokenizer_decode(const struct scb_tokenizer *t, const int32_t *ids, size_t n,
                         char **text, size_t *len, struct scb_ctx *ctx);

size_t      scb_tokenizer_vocab_size(const struct scb_tokenizer *t);  /* incl. added tokens */
/* Id of a token string (vocab or added), or -1. */
int32_t     scb_tokenizer_token_id(const struct scb_tokenizer *t, const char *token);
/* Token string of id as stored in the vocab (byte-level form), or NULL. */
const char *scb_tokenizer_token_str(const struct scb_tokenizer *t, int32_t id);
/* From tokenizer_config.json (strings may be NULL when absent); ids -1 when absent. */
const char *scb_tokenizer_bos_token(const struct scb_tokenizer *t);
const char *scb_tokenizer_eos_token(const struct scb_tokenizer *t);
int32_t     scb_tokenizer_bos_id(const struct scb_tokenizer *t);
int32_t     scb_tokenizer_eos_id(const struct scb_tokenizer *t);
/* 64-bit fingerprint of the tokenizer files (for provenance). */
uint64_t    scb_tokenizer_hash(const struct scb_tokenizer *t);

#endif
