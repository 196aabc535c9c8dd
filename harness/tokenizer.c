/* tokenizer.c — Hugging Face tokenizer.json BPE in C, byte-level and SentencePiece-style (see
 * tokenizer.h).
 *
 * The pipeline follows the `tokenizers` library step by step, so that ids are identical:
 *   1. added tokens whose "normalized" is false are split out of the raw text (leftmost-longest,
 *      non-overlapping, with lstrip/rstrip/single_word); with SCB_TOK_NO_SPECIAL a match of a
 *      special token is skipped (kept as text), as HF's encode_special_tokens does;
 *   2. each remaining piece is normalized (NFC/NFD/NFKC/NFKD through utf8proc, Prepend, Replace,
 *      or a Sequence); then the normalized added tokens are split out of it;
 *   3. the pre-tokenizer (none, or a Sequence): Split steps (PCRE2 regex or literal string; all
 *      five behaviors; invert), Metaspace (spaces to the replacement, prefix by prepend_scheme,
 *      split before each replacement) and a final ByteLevel step (GPT-2 regex and prefix space);
 *   4. BPE per pre-token: byte-level tokenizers map the bytes to the byte alphabet; otherwise
 *      each character is its vocab token, or its <0xNN> byte tokens (byte_fallback), or unk
 *      (fused under fuse_unk); ignore_merges (a pre-token that is itself in the vocab is emitted
 *      whole), else the lowest-rank (then leftmost) merge first through a binary heap, checked on
 *      pop as HF does;
 *   5. the post-processor's fixed prefix/suffix ids (TemplateProcessing, Roberta, Bert, ByteLevel,
 *      Sequence) with SCB_TOK_ADD_SPECIAL.
 * Decoding runs the decoder chain over the token strings as HF's decode_chain does (ByteLevel:
 * bytes back, a token outside the map taken as raw UTF-8, invalid UTF-8 as U+FFFD per maximal
 * subpart; Replace, ByteFallback, Fuse, Strip, Metaspace) and joins the result (with spaces when
 * there is no decoder).
 *
 * Regexes are written for Oniguruma (HF); PCRE2 with UTF|UCP agrees on them except that PCRE2's
 * \s also matches U+180E and that its Unicode tables may be older. pat_translate() rewrites \s,
 * \S, \p{L} and \p{N} so the classes are those HF uses (Unicode White_Space; L and N including
 * the Unicode 15.0-16.0 additions).
 *
 * A loaded tokenizer is never written after load: encode/decode keep all scratch state on the
 * call, so several threads may use one tokenizer at once. There is no cache. */
#include "harness/tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <utf8proc.h>

#include "kernels/alloc.h"
#include "kernels/util.h"

/* ---- small open-addressing hash tables ------------------------------------------------- */

static uint64_t tok_hash_bytes(const char *s, size_t n)
{
    /* FNV-1a with a final avalanche so the low bits spread over the table. */
    uint64_t h = scb_hash64(s, n, SCB_HASH64_INIT);
    h ^= h >> 33; h *= 0xff51afd7ed558ccdULL; h ^= h >> 33;
    return h;
}

static uint64_t tok_hash_u64(uint64_t x)
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27; x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* String -> id. Keys are strings of the tokenizer's pool, held as offsets so the pool may grow. */
struct tok_strmap {
    uint32_t *koff;  /* (cap) pool offset + 1; 0 = empty slot */
    uint32_t *klen;  /* (cap) */
    int32_t  *val;   /* (cap) */
    size_t    cap;   /* power of two */
    size_t    n;
};

static int strmap_init(struct tok_strmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap <<= 1;
    m->koff = scb_calloc(cap, sizeof *m->koff);
    m->klen = scb_calloc(cap, sizeof *m->klen);
    m->val = scb_calloc(cap, sizeof *m->val);
    m->cap = cap;
    m->n = 0;
    return (m->koff && m->klen && m->val) ? SCB_OK : SCB_E_NOMEM;
}

static void strmap_fini(struct tok_strmap *m)
{
    scb_free(m->koff); scb_free(m->klen); scb_free(m->val);
    memset(m, 0, sizeof *m);
}

/* Insert pool[off..off+len) -> v, or overwrite. The table never grows: init sizes it. */
static void strmap_put(struct tok_strmap *m, const char *pool, size_t off, size_t len, int32_t v)
{
    size_t mask = m->cap - 1, i = tok_hash_bytes(pool + off, len) & mask;
    while (m->koff[i]) {
        if (m->klen[i] == len && !memcmp(pool + m->koff[i] - 1, pool + off, len)) { m->val[i] = v; return; }
        i = (i + 1) & mask;
    }
    SCB_ASSERT(m->n * 2 + 2 <= m->cap);
    m->koff[i] = (uint32_t)off + 1; m->klen[i] = (uint32_t)len; m->val[i] = v; m->n++;
}

static int32_t strmap_get(const struct tok_strmap *m, const char *pool, const char *k, size_t len)
{
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = tok_hash_bytes(k, len) & mask;
    while (m->koff[i]) {
        if (m->klen[i] == len && !memcmp(pool + m->koff[i] - 1, k, len)) return m->val[i];
        i = (i + 1) & mask;
    }
    return -1;
}

/* (left id, right id) -> (rank, merged id). */
struct tok_pairmap {
    uint64_t *key;    /* (cap) left << 32 | right; UINT64_MAX = empty */
    int32_t  *rank;   /* (cap) */
    int32_t  *merged; /* (cap) */
    size_t    cap;
};

static int pairmap_init(struct tok_pairmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 2) cap <<= 1;
    m->key = scb_malloc(cap * sizeof *m->key);
    m->rank = scb_malloc(cap * sizeof *m->rank);
    m->merged = scb_malloc(cap * sizeof *m->merged);
    m->cap = cap;
    if (!m->key || !m->rank || !m->merged) return SCB_E_NOMEM;
    memset(m->key, 0xff, cap * sizeof *m->key);
    return SCB_OK;
}

static void pairmap_fini(struct tok_pairmap *m)
{
    scb_free(m->key); scb_free(m->rank); scb_free(m->merged);
    memset(m, 0, sizeof *m);
}

/* The table is sized for all merges up front; insert overwrites (a later duplicate wins, as in
 * HF's HashMap collect). */
static void pairmap_put(struct tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = m->cap - 1, i = tok_hash_u64(k) & mask;
    while (m->key[i] != UINT64_MAX && m->key[i] != k) i = (i + 1) & mask;
    m->key[i] = k; m->rank[i] = rank; m->merged[i] = merged;
}

static int pairmap_get(const struct tok_pairmap *m, int32_t a, int32_t b, int32_t *rank,
                       int32_t *merged)
{
    uint64_t k = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t mask = m->cap - 1, i = tok_hash_u64(k) & mask;
    while (m->key[i] != UINT64_MAX) {
        if (m->key[i] == k) { *rank = m->rank[i]; *merged = m->merged[i]; return 1; }
        i = (i + 1) & mask;
    }
    return 0;
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

/* Ids above this are refused as malformed (the id -> string table is dense). */
#define TOK_MAX_ID (1 << 24)

enum tok_norm {
    TOK_NORM_NFC = 1, TOK_NORM_NFD = 2, TOK_NORM_NFKC = 3, TOK_NORM_NFKD = 4,
    TOK_NORM_PREPEND = 5, TOK_NORM_REPLACE = 6
};
enum tok_step_kind { TOK_STEP_SPLIT = 1, TOK_STEP_BYTELEVEL = 2, TOK_STEP_METASPACE = 3 };
enum tok_split_behavior {
    TOK_SPLIT_ISOLATED = 1, TOK_SPLIT_REMOVED = 2, TOK_SPLIT_MERGED_PREV = 3, TOK_SPLIT_MERGED_NEXT = 4,
    TOK_SPLIT_CONTIGUOUS = 5
};
enum tok_prepend { TOK_PREPEND_ALWAYS = 1, TOK_PREPEND_FIRST = 2, TOK_PREPEND_NEVER = 3 };
enum tok_dec_kind {
    TOK_DEC_BYTELEVEL = 1, TOK_DEC_REPLACE = 2, TOK_DEC_BYTEFALLBACK = 3, TOK_DEC_FUSE = 4,
    TOK_DEC_STRIP = 5, TOK_DEC_METASPACE = 6
};

/* One normalizer: a Unicode normal form, Prepend (str) or Replace (re -> str). */
struct tok_norm_step {
    int         kind;    /* enum tok_norm */
    pcre2_code *re;      /* REPLACE: the pattern (a String pattern compiled as a literal) */
    size_t      str_off; /* PREPEND text / REPLACE content, in the pool */
    size_t      str_len;
};

struct tok_step {
    int         kind;             /* enum tok_step_kind */
    pcre2_code *re;               /* SPLIT, or BYTELEVEL with use_regex (GPT-2 pattern); else NULL */
    int         behavior;         /* enum tok_split_behavior (SPLIT) */
    int         invert;           /* SPLIT: the pieces between matches are the delimiters */
    int         add_prefix_space; /* BYTELEVEL */
    char        rep[5];           /* METASPACE: UTF-8 of the replacement character, NUL-terminated */
    int         prepend;          /* METASPACE: enum tok_prepend */
    int         split;            /* METASPACE: split before every replacement character */
};

/* One decoder of the chain (HF decode_chain semantics). */
struct tok_dec {
    int         kind;    /* enum tok_dec_kind */
    pcre2_code *re;      /* REPLACE */
    size_t      str_off; /* REPLACE content in the pool */
    size_t      str_len;
    char        ch[5];   /* STRIP content / METASPACE replacement (UTF-8, NUL-terminated) */
    size_t      start, stop; /* STRIP: at most this many characters cut at each end */
    int         prepend; /* METASPACE: enum tok_prepend */
};

struct tok_added {
    size_t      off;      /* content in the pool (normalized when `normalized`) */
    size_t      len;
    int32_t     id;
    int         special, lstrip, rstrip, single_word, normalized;
};

struct scb_tokenizer {
    char  *pool;          /* every string of the tokenizer, NUL-separated */
    size_t pool_len, pool_cap;

    uint32_t *id_off;     /* (n_ids) pool offset + 1 of each id's string (added content wins); 0 = none */
    size_t    n_ids;      /* capacity of id_off (> max id) */
    size_t    vocab_size; /* distinct ids of model vocab + added tokens */

    struct tok_strmap  vocab;   /* model vocab, byte-level strings */
    struct tok_strmap  added_map; /* added token content -> id */
    struct tok_pairmap merges;
    int32_t byte_id[256];       /* id of the one-character token of each byte, -1 if none */
    int32_t fb_id[256];         /* id of "<0xHH>" of each byte (byte_fallback), -1 if none */
    int32_t unk_id;             /* -1 when the model has no unk_token */
    int     ignore_merges;
    int     byte_fallback, fuse_unk;
    int     byte_level;         /* the pre-tokenizer ends with ByteLevel: BPE on mapped bytes */

    struct tok_added *added;    /* (n_added) */
    size_t            n_added;
    uint32_t         *by_byte;  /* (n_added) indices of added tokens ordered by first content byte */
    uint32_t          bucket[257]; /* by_byte[bucket[b] .. bucket[b + 1]) start with byte b */

    struct tok_norm_step norm[8];
    int    n_norm;

    struct tok_step steps[8];
    int             n_steps;

    struct tok_dec dec[8];      /* decoder chain */
    int            n_dec;
    int            has_decoder; /* 0: tokens are joined with spaces (HF without decoder) */

    int32_t *post_pre, *post_post; /* ids the post-processor puts before / after a sequence */
    size_t   n_post_pre, n_post_post;

    size_t      bos_off, eos_off;  /* pool offset + 1; 0 = absent */
    int32_t     bos_id, eos_id;
    int         add_bos;
    uint64_t    hash;
};

/* The byte-level alphabet: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order (GPT-2's bytes_to_unicode). */
static uint32_t byte_to_cp(unsigned b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174)) return b;
    unsigned n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174))) n++;
    return 256 + n;
}

struct tok_bytemap {
    char    utf8[256][2];  /* UTF-8 of each byte's character (always 1 or 2 bytes) */
    uint8_t ulen[256];
    int16_t cp_byte[324];  /* character -> byte, -1 when not in the alphabet */
};

static struct tok_bytemap g_bytemap;
static pthread_once_t g_bytemap_once = PTHREAD_ONCE_INIT;

static void bytemap_init(void)
{
    struct tok_bytemap *m = &g_bytemap;
    for (int i = 0; i < 324; i++) m->cp_byte[i] = -1;
    for (unsigned b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b);
        char tmp[4];
        int n = scb_utf8_encode(cp, tmp);
        memcpy(m->utf8[b], tmp, (size_t)n);
        m->ulen[b] = (uint8_t)n;
        m->cp_byte[cp] = (int16_t)b;
    }
}

static const struct tok_bytemap *bytemap(void)
{
    pthread_once(&g_bytemap_once, bytemap_init);
    return &g_bytemap;
}

/* ---- string pool ------------------------------------------------------------------------------ */

/* Pool strings are referenced by offset while the pool grows; resolved to pointers at the end. */
static int pool_add(struct scb_tokenizer *t, const char *s, size_t n, size_t *off)
{
    if (t->pool_len + n + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 1 << 16;
        while (cap < t->pool_len + n + 1) cap *= 2;
        char *p = scb_realloc(t->pool, cap);
        if (!p) return SCB_E_NOMEM;
        t->pool = p; t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, s, n);
    t->pool[t->pool_len + n] = 0;
    *off = t->pool_len;
    t->pool_len += n + 1;
    return SCB_OK;
}

/* ---- UTF-8 --------------------------------------------------------------------------------------- */

/* Length of the well-formed sequence at s[0..n), or 0 when ill-formed. *sub gets the length of the
 * maximal subpart (bytes that begin a valid sequence), at least 1, for U+FFFD substitution. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *sub)
{
    unsigned c = s[0];
    *sub = 1;
    if (c < 0x80) return 1;
    size_t need; unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned x = s[i];
        if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) break;
    }
    if (i == need) return need;
    *sub = i;
    return 0;
}

static int utf8_check(const char *text, size_t len, size_t *bad)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) { i++; continue; }
        size_t sub, n = utf8_seq(s + i, len - i, &sub);
        if (!n) { *bad = i; return 0; }
        i += n;
    }
    return 1;
}

/* ---- regex translation (Oniguruma classes -> PCRE2) ------------------------------------------------ */

/* Unicode White_Space, which is what \s matches in HF (Oniguruma); PCRE2 adds U+180E. */
static const char WS_ITEMS[] =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";
/* Code points that have general category X in Unicode 16.0 (HF's Oniguruma) but were unassigned
 * in Unicode 14.0 (PCRE2 10.42's tables): the Unicode 15.0, 15.1 and 16.0 additions, found by
 * comparing \p{X} of both engines over every code point. Listing them again is harmless where
 * PCRE2 already knows them. (Lt, Me, Nl and Z gained nothing; \p{C} cannot be fixed by adding.) */
static const struct { const char *cat, *extra; } UCD_EXTRA[] = {
    {"L", "\\x{1C89}-\\x{1C8A}\\x{A7CB}-\\x{A7CD}\\x{A7DA}-\\x{A7DC}\\x{105C0}-\\x{105F3}"
        "\\x{10D4A}-\\x{10D65}\\x{10D6F}-\\x{10D85}\\x{10EC2}-\\x{10EC4}\\x{1123F}-\\x{11240}"
        "\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}\\x{113B7}\\x{113D1}"
        "\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}"
        "\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}\\x{16100}-\\x{1611D}"
        "\\x{16D40}-\\x{16D6C}\\x{18CFF}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}"
        "\\x{1E030}-\\x{1E06D}\\x{1E4D0}-\\x{1E4EB}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}"
        "\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}"},
    {"Lu", "\\x{1C89}\\x{A7CB}-\\x{A7CC}\\x{A7DA}\\x{A7DC}\\x{10D50}-\\x{10D65}"},
    {"Ll", "\\x{1C8A}\\x{A7CD}\\x{A7DB}\\x{10D70}-\\x{10D85}\\x{1DF25}-\\x{1DF2A}"},
    {"Lm", "\\x{10D4E}\\x{10D6F}\\x{16D40}-\\x{16D42}\\x{16D6B}-\\x{16D6C}\\x{1E030}-\\x{1E06D}"
        "\\x{1E4EB}"},
    {"Lo", "\\x{105C0}-\\x{105F3}\\x{10D4A}-\\x{10D4D}\\x{10D4F}\\x{10EC2}-\\x{10EC4}"
        "\\x{1123F}-\\x{11240}\\x{11380}-\\x{11389}\\x{1138B}\\x{1138E}\\x{11390}-\\x{113B5}"
        "\\x{113B7}\\x{113D1}\\x{113D3}\\x{11BC0}-\\x{11BE0}\\x{11F02}\\x{11F04}-\\x{11F10}"
        "\\x{11F12}-\\x{11F33}\\x{1342F}\\x{13441}-\\x{13446}\\x{13460}-\\x{143FA}"
        "\\x{16100}-\\x{1611D}\\x{16D43}-\\x{16D6A}\\x{18CFF}\\x{1B132}\\x{1B155}"
        "\\x{1E4D0}-\\x{1E4EA}\\x{1E5D0}-\\x{1E5ED}\\x{1E5F0}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}"
        "\\x{31350}-\\x{323AF}"},
    {"M", "\\x{897}\\x{CF3}\\x{ECE}\\x{10D69}-\\x{10D6D}\\x{10EFC}-\\x{10EFF}\\x{11241}"
        "\\x{113B8}-\\x{113C0}\\x{113C2}\\x{113C5}\\x{113C7}-\\x{113CA}\\x{113CC}-\\x{113D0}"
        "\\x{113D2}\\x{113E1}-\\x{113E2}\\x{11F00}-\\x{11F01}\\x{11F03}\\x{11F34}-\\x{11F3A}"
        "\\x{11F3E}-\\x{11F42}\\x{11F5A}\\x{13440}\\x{13447}-\\x{13455}\\x{1611E}-\\x{1612F}"
        "\\x{1E08F}\\x{1E4EC}-\\x{1E4EF}\\x{1E5EE}-\\x{1E5EF}"},
    {"Mn", "\\x{897}\\x{ECE}\\x{10D69}-\\x{10D6D}\\x{10EFC}-\\x{10EFF}\\x{11241}"
        "\\x{113BB}-\\x{113C0}\\x{113CE}\\x{113D0}\\x{113D2}\\x{113E1}-\\x{113E2}"
        "\\x{11F00}-\\x{11F01}\\x{11F36}-\\x{11F3A}\\x{11F40}\\x{11F42}\\x{11F5A}\\x{13440}"
        "\\x{13447}-\\x{13455}\\x{1611E}-\\x{16129}\\x{1612D}-\\x{1612F}\\x{1E08F}"
        "\\x{1E4EC}-\\x{1E4EF}\\x{1E5EE}-\\x{1E5EF}"},
    {"Mc", "\\x{CF3}\\x{113B8}-\\x{113BA}\\x{113C2}\\x{113C5}\\x{113C7}-\\x{113CA}"
        "\\x{113CC}-\\x{113CD}\\x{113CF}\\x{1171E}\\x{11F03}\\x{11F34}-\\x{11F35}"
        "\\x{11F3E}-\\x{11F3F}\\x{11F41}\\x{1612A}-\\x{1612C}"},
    {"N", "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
        "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1D2C0}-\\x{1D2D3}"
        "\\x{1E4F0}-\\x{1E4F9}\\x{1E5F1}-\\x{1E5FA}"},
    {"Nd", "\\x{10D40}-\\x{10D49}\\x{116D0}-\\x{116E3}\\x{11BF0}-\\x{11BF9}\\x{11F50}-\\x{11F59}"
        "\\x{16130}-\\x{16139}\\x{16D70}-\\x{16D79}\\x{1CCF0}-\\x{1CCF9}\\x{1E4F0}-\\x{1E4F9}"
        "\\x{1E5F1}-\\x{1E5FA}"},
    {"No", "\\x{1D2C0}-\\x{1D2D3}"},
    {"P", "\\x{1B4E}-\\x{1B4F}\\x{1B7F}\\x{10D6E}\\x{113D4}-\\x{113D5}\\x{113D7}-\\x{113D8}"
        "\\x{11B00}-\\x{11B09}\\x{11BE1}\\x{11F43}-\\x{11F4F}\\x{16D6D}-\\x{16D6F}\\x{1E5FF}"},
    {"S", "\\x{2427}-\\x{2429}\\x{2FFC}-\\x{2FFF}\\x{31E4}-\\x{31E5}\\x{31EF}\\x{10D8E}-\\x{10D8F}"
        "\\x{1CC00}-\\x{1CCEF}\\x{1CD00}-\\x{1CEB3}\\x{1F6DC}\\x{1F774}-\\x{1F776}"
        "\\x{1F77B}-\\x{1F77F}\\x{1F7D9}\\x{1F8B2}-\\x{1F8BB}\\x{1F8C0}-\\x{1F8C1}"
        "\\x{1FA75}-\\x{1FA77}\\x{1FA87}-\\x{1FA89}\\x{1FA8F}\\x{1FAAD}-\\x{1FAAF}"
        "\\x{1FABB}-\\x{1FABF}\\x{1FAC6}\\x{1FACE}-\\x{1FACF}\\x{1FADA}-\\x{1FADC}\\x{1FADF}"
        "\\x{1FAE8}-\\x{1FAE9}\\x{1FAF7}-\\x{1FAF8}\\x{1FBCB}-\\x{1FBEF}"},
};

/* Rewrite an Oniguruma pattern for PCRE2: \s and \S become explicit White_Space classes, \p{X}
 * and \P{X} get the newer code points of category X (UCD_EXTRA). \S inside a bracket class is
 * refused (SCB_E_UNSUPPORTED); \P{X} inside a bracket class is passed on unchanged. */
static int pat_translate(const char *pat, struct scb_buf *out, const char *file, struct scb_ctx *ctx)
{
    int in_class = 0, rc = SCB_OK;
    size_t n = strlen(pat);
    for (size_t i = 0; i < n; i++) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[i + 1];
            const char *items = NULL, *extra = "";
            int neg = 0;
            size_t skip = 2;
            if (d == 's') items = WS_ITEMS;
            else if (d == 'S') { items = WS_ITEMS; neg = 1; }
            else if ((d == 'p' || d == 'P') && i + 2 < n && pat[i + 2] == '{') {
                const char *close = strchr(pat + i + 3, '}');
                size_t cl = close ? (size_t)(close - (pat + i + 3)) : 0;
                for (size_t k = 0; close && k < sizeof UCD_EXTRA / sizeof UCD_EXTRA[0]; k++)
                    if (strlen(UCD_EXTRA[k].cat) == cl && !memcmp(UCD_EXTRA[k].cat, pat + i + 3, cl))
                        extra = UCD_EXTRA[k].extra;
                if (*extra && !(d == 'P' && in_class)) {
                    skip = cl + 4;
                    neg = d == 'P';
                    items = "";
                }
            }
            if (!items) {
                SCB_TRY(scb_buf_append(out, pat + i, 2));
                i++;
                continue;
            }
            if (neg && in_class)
                return scb_err(ctx, SCB_E_UNSUPPORTED,
                               "%s: regex '%s': \\S inside a character class is not supported", file, pat);
            if (!in_class) SCB_TRY(scb_buf_puts(out, neg ? "[^" : "["));
            if (*extra) {
                SCB_TRY(scb_buf_puts(out, "\\p"));
                SCB_TRY(scb_buf_append(out, pat + i + 2, skip - 2));  /* {X} */
                SCB_TRY(scb_buf_puts(out, extra));
            } else {
                SCB_TRY(scb_buf_puts(out, items));
            }
            if (!in_class) SCB_TRY(scb_buf_puts(out, "]"));
            i += skip - 1;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            SCB_TRY(scb_buf_putc(out, c));
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && pat[i + 1] == '^') { SCB_TRY(scb_buf_putc(out, '^')); i++; }
            if (i + 1 < n && pat[i + 1] == ']') { SCB_TRY(scb_buf_putc(out, ']')); i++; }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && pat[i + 1] == ':') {
            const char *e = strstr(pat + i + 2, ":]");
            if (e) {
                size_t k = (size_t)(e + 2 - (pat + i));
                SCB_TRY(scb_buf_append(out, pat + i, k));
                i += k - 1;
                continue;
            }
        }
        if (in_class && c == '[')
            return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: regex '%s': nested character classes are not supported",
                           file, pat);
        if (in_class && c == ']') in_class = 0;
        SCB_TRY(scb_buf_putc(out, c));
    }
out:
    return rc;
}

static int regex_compile(pcre2_code **out, const char *pat, int literal, const char *file,
                         struct scb_ctx *ctx)
{
    struct scb_buf b = {0};
    int rc = SCB_OK, errcode = 0;
    PCRE2_SIZE erroff = 0;
    *out = NULL;
    if (literal) {
        SCB_TRY(scb_buf_puts(&b, pat));
    } else {
        SCB_TRY(pat_translate(pat, &b, file, ctx));
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(b.data ? b.data : ""), b.len,
                                   PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP),
                                   &errcode, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: regex '%s' does not compile: %s (offset %zu)",
                     file, pat, (const char *)msg, (size_t)erroff);
        goto out;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  /* optional: the interpreter is the fallback */
    *out = re;
out:
    scb_buf_fini(&b);
    return rc;
}

/* Matches of re in s[0..n) as HF finds them (Oniguruma find_iter): left to right, non-overlapping;
 * an empty match is kept unless it ends where the previous match ended (then the search moves on
 * one character). Appends (start, end) pairs to *m (2 * *nm entries; *cap in pairs). md may be
 * NULL (match data is made for the call). */
static int regex_find_all(const pcre2_code *re, pcre2_match_data *md, const char *s, size_t n,
                          size_t **m, size_t *nm, size_t *cap, struct scb_ctx *ctx)
{
    int rc = SCB_OK, own = !md;
    size_t from = 0, last_end = (size_t)-1;
    if (own && !(md = pcre2_match_data_create_from_pattern(re, NULL))) return SCB_E_NOMEM;
    while (from <= n) {
        int r = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT)
            r = pcre2_match(re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH) break;
        if (r < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(r, msg, sizeof msg);
            rc = scb_err(ctx, SCB_E_INVAL, "tokenizer regex failed: %s", (const char *)msg);
            goto out;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms && me == last_end) {  /* no empty match right after a match: step a character */
            from = ms + 1;
            while (from < n && ((unsigned char)s[from] & 0xC0) == 0x80) from++;
            continue;
        }
        if (*nm == *cap) {
            size_t c = *cap ? *cap * 2 : 32;
            size_t *p = scb_realloc(*m, 2 * c * sizeof *p);
            if (!p) { rc = SCB_E_NOMEM; goto out; }
            *m = p; *cap = c;
        }
        (*m)[2 * *nm] = ms;
        (*m)[2 * *nm + 1] = me;
        (*nm)++;
        from = last_end = me;
    }
out:
    if (own) pcre2_match_data_free(md);
    return rc;
}

/* Append s[0..n) to b with every match of re replaced by rep[0..rl) (HF NormalizedString::replace
 * and the Replace decoder). re NULL: s unchanged. z (may be NULL): on entry the bytes at the start
 * of s aligned to original offset 0 (struct tok_piece), on return those of the result: the text
 * and the replacements of matches that begin inside that prefix. */
static int regex_replace(const pcre2_code *re, const char *s, size_t n, const char *rep, size_t rl,
                         struct scb_buf *b, size_t *z, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    size_t *m = NULL, nm = 0, cap = 0, prev = 0;
    if (!n) {
        if (z) *z = 0;
        return SCB_OK;
    }
    if (re) SCB_TRY(regex_find_all(re, NULL, s, n, &m, &nm, &cap, ctx));
    size_t z0 = z ? *z : 0, nz = 0;
    for (size_t i = 0; i < nm; i++) {
        size_t ms = m[2 * i];
        SCB_TRY(scb_buf_append(b, s + prev, ms - prev));
        SCB_TRY(scb_buf_append(b, rep, rl));
        if (prev < z0) nz += (ms < z0 ? ms : z0) - prev;
        if (ms < z0) nz += rl;
        prev = m[2 * i + 1];
    }
    SCB_TRY(scb_buf_append(b, s + prev, n - prev));
    if (prev < z0) nz += (n < z0 ? n : z0) - prev;
    if (z) *z = nz;
out:
    scb_free(m);
    return rc;
}

/* ---- loading ------------------------------------------------------------------------------------ */

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* The one character of o[key] as UTF-8 into out (NUL-terminated); 0 when absent or not one
 * character. */
static int jchar(const cJSON *o, const char *key, char out[5])
{
    const char *s = jstr(o, key);
    size_t n = s ? strlen(s) : 0, sub;
    if (!n || utf8_seq((const unsigned char *)s, n, &sub) != n) return 0;
    memcpy(out, s, n);
    out[n] = 0;
    return 1;
}

/* A Replace pattern ({"String": s} or {"Regex": r}) of a normalizer or decoder. An empty String
 * pattern matches nothing in HF; it is left NULL here. */
static int load_pattern(pcre2_code **re, const cJSON *o, const char *what, const char *file, struct scb_ctx *ctx)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    *re = NULL;
    if (!rx && !lit) return scb_err(ctx, SCB_E_FORMAT, "%s: %s has no pattern (String or Regex)", file, what);
    if (lit && !*lit) return SCB_OK;
    return regex_compile(re, rx ? rx : lit, !rx, file, ctx);
}

/* "prepend_scheme" (default always) reconciled with the legacy "add_prefix_space" as HF does. */
static int load_prepend_scheme(const cJSON *o, int *out, const char *file, struct scb_ctx *ctx)
{
    const char *ps = jstr(o, "prepend_scheme");
    if (!ps || !strcmp(ps, "always")) *out = TOK_PREPEND_ALWAYS;
    else if (!strcmp(ps, "first")) *out = TOK_PREPEND_FIRST;
    else if (!strcmp(ps, "never")) *out = TOK_PREPEND_NEVER;
    else return scb_err(ctx, SCB_E_FORMAT, "%s: Metaspace prepend_scheme '%s' is not always/first/never", file, ps);
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    if (cJSON_IsBool(aps) && !cJSON_IsTrue(aps) && *out != TOK_PREPEND_NEVER)
        return scb_err(ctx, SCB_E_FORMAT, "%s: Metaspace add_prefix_space false does not match prepend_scheme '%s'",
                       file, ps ? ps : "always");
    return SCB_OK;
}

static int load_normalizer(struct scb_tokenizer *t, const cJSON *n, const char *file, struct scb_ctx *ctx)
{
    if (!n || cJSON_IsNull(n)) return SCB_OK;
    const char *type = jstr(n, "type");
    if (!type) return scb_err(ctx, SCB_E_FORMAT, "%s: normalizer has no \"type\"", file);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Sequence normalizer has no \"normalizers\" list", file);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            int rc = load_normalizer(t, e, file, ctx);
            if (rc) return rc;
        }
        return SCB_OK;
    }
    int kind = !strcmp(type, "NFC") ? TOK_NORM_NFC : !strcmp(type, "NFD") ? TOK_NORM_NFD
             : !strcmp(type, "NFKC") ? TOK_NORM_NFKC : !strcmp(type, "NFKD") ? TOK_NORM_NFKD
             : !strcmp(type, "Prepend") ? TOK_NORM_PREPEND : !strcmp(type, "Replace") ? TOK_NORM_REPLACE : 0;
    if (!kind) return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported normalizer type '%s'", file, type);
    if (t->n_norm == (int)(sizeof t->norm / sizeof t->norm[0]))
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: too many normalizers", file);
    struct tok_norm_step *st = &t->norm[t->n_norm];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    if (kind == TOK_NORM_PREPEND || kind == TOK_NORM_REPLACE) {
        const char *str = jstr(n, kind == TOK_NORM_PREPEND ? "prepend" : "content");
        if (!str)
            return scb_err(ctx, SCB_E_FORMAT, "%s: %s normalizer has no \"%s\" string", file, type,
                           kind == TOK_NORM_PREPEND ? "prepend" : "content");
        st->str_len = strlen(str);
        int rc = pool_add(t, str, st->str_len, &st->str_off);
        if (!rc && kind == TOK_NORM_REPLACE) rc = load_pattern(&st->re, n, "Replace normalizer", file, ctx);
        if (rc) return rc;
    }
    t->n_norm++;
    return SCB_OK;
}

static int load_pretok(struct scb_tokenizer *t, const cJSON *p, const char *file, struct scb_ctx *ctx)
{
    if (!p || cJSON_IsNull(p)) return SCB_OK;  /* the whole normalized text is one word */
    const char *type = jstr(p, "type");
    if (!type) return scb_err(ctx, SCB_E_FORMAT, "%s: pre_tokenizer has no \"type\"", file);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Sequence pre_tokenizer has no \"pretokenizers\" list", file);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            int rc = load_pretok(t, e, file, ctx);
            if (rc) return rc;
        }
        return SCB_OK;
    }
    if (t->n_steps == (int)(sizeof t->steps / sizeof t->steps[0]))
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: too many pre-tokenizers", file);
    if (t->n_steps && t->steps[t->n_steps - 1].kind == TOK_STEP_BYTELEVEL)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: pre-tokenizer '%s' after ByteLevel is not supported",
                       file, type);
    struct tok_step *s = &t->steps[t->n_steps];
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *rx = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        if (!rx && !lit) return scb_err(ctx, SCB_E_FORMAT, "%s: Split pre_tokenizer has no pattern", file);
        const char *beh = jstr(p, "behavior");
        if (!beh) return scb_err(ctx, SCB_E_FORMAT, "%s: Split pre_tokenizer has no behavior", file);
        if (!strcmp(beh, "Isolated")) s->behavior = TOK_SPLIT_ISOLATED;
        else if (!strcmp(beh, "Removed")) s->behavior = TOK_SPLIT_REMOVED;
        else if (!strcmp(beh, "MergedWithPrevious")) s->behavior = TOK_SPLIT_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) s->behavior = TOK_SPLIT_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) s->behavior = TOK_SPLIT_CONTIGUOUS;
        else return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported Split behavior '%s'", file, beh);
        s->invert = jbool(p, "invert", 0);
        s->kind = TOK_STEP_SPLIT;
        int rc = regex_compile(&s->re, rx ? rx : lit, !rx, file, ctx);
        if (rc) return rc;
        t->n_steps++;
        return SCB_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        s->kind = TOK_STEP_BYTELEVEL;
        s->add_prefix_space = jbool(p, "add_prefix_space", 1);
        if (jbool(p, "use_regex", 1)) {
            int rc = regex_compile(&s->re, GPT2_PATTERN, 0, file, ctx);
            if (rc) return rc;
        }
        t->n_steps++;
        return SCB_OK;
    }
    if (!strcmp(type, "Metaspace")) {
        s->kind = TOK_STEP_METASPACE;
        if (!jchar(p, "replacement", s->rep))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Metaspace pre_tokenizer needs a one-character \"replacement\"", file);
        int rc = load_prepend_scheme(p, &s->prepend, file, ctx);
        if (rc) return rc;
        s->split = jbool(p, "split", 1);
        t->n_steps++;
        return SCB_OK;
    }
    return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported pre_tokenizer type '%s'", file, type);
}

static int ids_push(int32_t **v, size_t *n, int32_t id)
{
    int32_t *p = scb_realloc(*v, (*n + 1) * sizeof *p);
    if (!p) return SCB_E_NOMEM;
    p[(*n)++] = id;
    *v = p;
    return SCB_OK;
}

/* Adds one post-processor's prefix/suffix around those already collected (processors of a
 * Sequence apply in order, each wrapping the previous result). */
static int load_post(struct scb_tokenizer *t, const cJSON *p, const char *file, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    int32_t *pre = NULL, *post = NULL;
    size_t npre = 0, npost = 0;
    if (!p || cJSON_IsNull(p)) return SCB_OK;
    const char *type = jstr(p, "type");
    if (!type) return scb_err(ctx, SCB_E_FORMAT, "%s: post_processor has no \"type\"", file);
    if (!strcmp(type, "ByteLevel")) return SCB_OK;  /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        if (!cJSON_IsArray(list))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Sequence post_processor has no \"processors\" list", file);
        cJSON_ArrayForEach(e, list) {
            SCB_TRY(load_post(t, e, file, ctx));
        }
        return SCB_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *e;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single))
            return scb_err(ctx, SCB_E_FORMAT, "%s: TemplateProcessing has no \"single\" list", file);
        int seen_seq = 0;
        cJSON_ArrayForEach(e, single) {
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            const cJSON *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (sq) {
                if (seen_seq) {
                    rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: TemplateProcessing repeats the sequence", file);
                    goto out;
                }
                seen_seq = 1;
                continue;
            }
            const char *name = jstr(sp, "id");
            const cJSON *st = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids"), *x;
            if (!cJSON_IsArray(ids)) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: TemplateProcessing: special token '%s' has no ids",
                             file, name ? name : "?");
                goto out;
            }
            cJSON_ArrayForEach(x, ids) {
                if (!cJSON_IsNumber(x)) {
                    rc = scb_err(ctx, SCB_E_FORMAT, "%s: TemplateProcessing: non-numeric id", file);
                    goto out;
                }
                if (seen_seq) SCB_TRY(ids_push(&post, &npost, (int32_t)x->valuedouble));
                else SCB_TRY(ids_push(&pre, &npre, (int32_t)x->valuedouble));
            }
        }
    } else if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si)) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: %s needs cls and sep as [token, id]", file, type);
            goto out;
        }
        SCB_TRY(ids_push(&pre, &npre, (int32_t)ci->valuedouble));
        SCB_TRY(ids_push(&post, &npost, (int32_t)si->valuedouble));
    } else {
        rc = scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported post_processor type '%s'", file, type);
        goto out;
    }
    /* new prefix = pre + old prefix; new suffix = old suffix + post */
    for (size_t i = 0; i < t->n_post_pre; i++) SCB_TRY(ids_push(&pre, &npre, t->post_pre[i]));
    scb_free(t->post_pre);
    t->post_pre = pre; t->n_post_pre = npre; pre = NULL;
    for (size_t i = 0; i < npost; i++) SCB_TRY(ids_push(&t->post_post, &t->n_post_post, post[i]));
out:
    scb_free(pre);
    scb_free(post);
    return rc;
}

static int load_decoder(struct scb_tokenizer *t, const cJSON *d, const char *file, struct scb_ctx *ctx)
{
    if (!d || cJSON_IsNull(d)) return SCB_OK;
    const char *type = jstr(d, "type");
    if (!type) return scb_err(ctx, SCB_E_FORMAT, "%s: decoder has no \"type\"", file);
    t->has_decoder = 1;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *e;
        if (!cJSON_IsArray(list))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Sequence decoder has no \"decoders\" list", file);
        cJSON_ArrayForEach(e, list) {
            int rc = load_decoder(t, e, file, ctx);
            if (rc) return rc;
        }
        return SCB_OK;
    }
    if (t->n_dec == (int)(sizeof t->dec / sizeof t->dec[0]))
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: too many decoders", file);
    struct tok_dec *x = &t->dec[t->n_dec];
    memset(x, 0, sizeof *x);
    int rc = SCB_OK;
    if (!strcmp(type, "ByteLevel")) {
        x->kind = TOK_DEC_BYTELEVEL;
    } else if (!strcmp(type, "ByteFallback")) {
        x->kind = TOK_DEC_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        x->kind = TOK_DEC_FUSE;
    } else if (!strcmp(type, "Replace")) {
        x->kind = TOK_DEC_REPLACE;
        const char *c = jstr(d, "content");
        if (!c) return scb_err(ctx, SCB_E_FORMAT, "%s: Replace decoder has no \"content\" string", file);
        x->str_len = strlen(c);
        rc = pool_add(t, c, x->str_len, &x->str_off);
        if (!rc) rc = load_pattern(&x->re, d, "Replace decoder", file, ctx);
    } else if (!strcmp(type, "Strip")) {
        x->kind = TOK_DEC_STRIP;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "start"), *b = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!jchar(d, "content", x->ch) || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0
            || b->valuedouble < 0)
            return scb_err(ctx, SCB_E_FORMAT, "%s: Strip decoder needs a one-character \"content\" and "
                           "non-negative \"start\" and \"stop\"", file);
        x->start = (size_t)a->valuedouble;
        x->stop = (size_t)b->valuedouble;
    } else if (!strcmp(type, "Metaspace")) {
        x->kind = TOK_DEC_METASPACE;
        if (!jchar(d, "replacement", x->ch))
            return scb_err(ctx, SCB_E_FORMAT, "%s: Metaspace decoder needs a one-character \"replacement\"", file);
        rc = load_prepend_scheme(d, &x->prepend, file, ctx);
    } else {
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported decoder type '%s'", file, type);
    }
    if (rc) { pcre2_code_free(x->re); return rc; }
    t->n_dec++;
    return SCB_OK;
}

static int set_id_str(struct scb_tokenizer *t, int32_t id, size_t off, int overwrite)
{
    if ((size_t)id >= t->n_ids) {
        size_t n = t->n_ids ? t->n_ids : 1024;
        while (n <= (size_t)id) n *= 2;
        uint32_t *p = scb_realloc(t->id_off, n * sizeof *p);
        if (!p) return SCB_E_NOMEM;
        memset(p + t->n_ids, 0, (n - t->n_ids) * sizeof *p);
        t->id_off = p;
        t->n_ids = n;
    }
    if (!t->id_off[id]) t->vocab_size++;
    if (overwrite || !t->id_off[id]) t->id_off[id] = (uint32_t)off + 1;
    return SCB_OK;
}

/* HF's normalizers use the unicode-normalization-alignments crate, whose tables are of the
 * Unicode 9 era. These code points, which utf8proc (Unicode 15) reorders, decomposes or composes,
 * HF leaves alone (found by comparing HF's NFC with utf8proc's over every code point that has a
 * combining class or takes part in a canonical decomposition, alone, decomposed, and next to
 * marks of classes 1, 220, 230 and 240 in both orders), plus U+11930 and U+11935, the parts
 * of the Dives Akuru composition U+11938 that HF does not know. Cutting the text at them and
 * normalizing the runs in between gives HF's result: HF treats them as starters that combine
 * with nothing, so nothing reorders or composes across them. */
static const uint32_t HF_NORM_OPAQUE[][2] = {
    {0x7FD, 0x7FD}, {0x898, 0x89F}, {0x8CA, 0x8D3}, {0x9FE, 0x9FE}, {0xC3C, 0xC3C}, {0xD3B, 0xD3C},
    {0xEBA, 0xEBA}, {0x1715, 0x1715}, {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C},
    {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
    {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A}, {0x11930, 0x11930},
    {0x11935, 0x11935}, {0x11938, 0x11938}, {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0},
    {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45},
    {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F}, {0x1E130, 0x1E136},
    {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}};

/* Whether cp lies in one of the n sorted, disjoint [lo, hi] ranges. */
static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    if (!n || cp < r[0][0]) return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int norm_opaque(uint32_t cp)
{
    return in_ranges(HF_NORM_OPAQUE, sizeof HF_NORM_OPAQUE / sizeof HF_NORM_OPAQUE[0], cp);
}

/* Append the normal form (utf8proc options opt) of s[0..n) to b. */
static int norm_run(const char *s, size_t n, int opt, struct scb_buf *b, struct scb_ctx *ctx)
{
    if (!n) return SCB_OK;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      (utf8proc_option_t)opt);
    if (r < 0) {
        free(dst);
        return scb_err(ctx, r == UTF8PROC_ERROR_NOMEM ? SCB_E_NOMEM : SCB_E_INVAL, "normalizing text: %s",
                       utf8proc_errmsg(r));
    }
    int rc = scb_buf_append(b, dst, (size_t)r);
    free(dst);  /* utf8proc allocates with libc malloc */
    return rc;
}

/* Length of the UTF-8 character at s[0..n) (0 when n is 0). */
static size_t first_char_len(const char *s, size_t n)
{
    size_t sub, l = n ? utf8_seq((const unsigned char *)s, n, &sub) : 0;
    return n && !l ? sub : l;
}

/* Normalize s[0..n) (valid UTF-8) with the tokenizer's normalizers into *out (scb_malloc, caller
 * frees), or *out = NULL when the text is unchanged for sure (no normalizer, or ASCII under
 * Unicode normal forms only). Prepend adds its text to a non-empty string; Replace substitutes
 * every match. z (may be NULL) gets the bytes at the start of the result that HF aligns to the
 * start of s (struct tok_piece); 0 when a Replace deleted the start of s. */
static int normalize(const struct scb_tokenizer *t, const char *s, size_t n, char **out, size_t *out_len,
                     size_t *z, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf cur = {0}, next = {0};
    size_t zz = first_char_len(s, n);
    *out = NULL;
    *out_len = n;
    if (z) *z = zz;
    if (!t->n_norm) return SCB_OK;
    int unicode_only = 1;
    for (int k = 0; k < t->n_norm; k++) unicode_only &= t->norm[k].kind <= TOK_NORM_NFKD;
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii && unicode_only) return SCB_OK;  /* ASCII is invariant under every Unicode normal form */
    SCB_TRY(scb_buf_append(&cur, s, n));
    for (int k = 0; k < t->n_norm; k++) {
        const struct tok_norm_step *st = &t->norm[k];
        next.len = 0;
        if (st->kind == TOK_NORM_PREPEND) {
            if (!cur.len) continue;
            SCB_TRY(scb_buf_append(&next, t->pool + st->str_off, st->str_len));
            SCB_TRY(scb_buf_append(&next, cur.data, cur.len));
            if (zz) zz += st->str_len;  /* HF aligns the prepended text with the first character */
        } else if (st->kind == TOK_NORM_REPLACE) {
            SCB_TRY(regex_replace(st->re, cur.data, cur.len, t->pool + st->str_off, st->str_len, &next, &zz, ctx));
        } else {
            ascii = 1;
            for (size_t i = 0; i < cur.len && ascii; i++) ascii = (unsigned char)cur.data[i] < 0x80;
            if (ascii) continue;
            int opt = UTF8PROC_STABLE;
            switch (st->kind) {
            case TOK_NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
            case TOK_NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
            case TOK_NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
            default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
            }
            size_t run = 0, i = 0;
            while (i < cur.len) {
                uint32_t cp;
                int l = scb_utf8_decode((const unsigned char *)cur.data + i, cur.len - i, &cp);
                if (norm_opaque(cp)) {
                    SCB_TRY(norm_run(cur.data + run, i - run, opt, &next, ctx));
                    SCB_TRY(scb_buf_append(&next, cur.data + i, (size_t)l));
                    run = i + (size_t)l;
                }
                i += (size_t)l;
            }
            SCB_TRY(norm_run(cur.data + run, cur.len - run, opt, &next, ctx));
            /* the aligned prefix survives when the normal form leaves it alone; else (composition
             * at the start) it is taken to be the first character */
            if (zz && (next.len < zz || memcmp(next.data, cur.data, zz))) zz = first_char_len(next.data, next.len);
        }
        struct scb_buf tmp = cur; cur = next; next = tmp;
    }
    *out_len = cur.len;
    if (z) *z = zz;
    *out = scb_buf_steal(&cur);
    if (!*out) rc = SCB_E_NOMEM;
out:
    scb_buf_fini(&cur);
    scb_buf_fini(&next);
    return rc;
}

static int load_added(struct scb_tokenizer *t, const cJSON *arr, const char *file, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    if (!arr || cJSON_IsNull(arr)) return SCB_OK;
    if (!cJSON_IsArray(arr)) return scb_err(ctx, SCB_E_FORMAT, "%s: \"added_tokens\" is not a list", file);
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    t->added = scb_calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return SCB_E_NOMEM;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const char *content = jstr(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !*content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= TOK_MAX_ID)
            return scb_err(ctx, SCB_E_FORMAT, "%s: added_tokens[%zu] needs a non-empty \"content\" and a valid \"id\"",
                           file, i);
        struct tok_added *a = &t->added[i];
        a->id = (int32_t)id->valuedouble;
        a->special = jbool(e, "special", 0);
        a->lstrip = jbool(e, "lstrip", 0);
        a->rstrip = jbool(e, "rstrip", 0);
        a->single_word = jbool(e, "single_word", 0);
        a->normalized = jbool(e, "normalized", !a->special);
        a->len = strlen(content);
        SCB_TRY(pool_add(t, content, a->len, &a->off));
        SCB_TRY(set_id_str(t, a->id, a->off, 1));
        i++;
    }
    t->n_added = i;
    SCB_TRY(strmap_init(&t->added_map, t->n_added));
    for (i = 0; i < t->n_added; i++) {
        struct tok_added *a = &t->added[i];
        strmap_put(&t->added_map, t->pool, a->off, a->len, a->id);
        /* normalized tokens are matched on normalized text, so their content is normalized too */
        if (!a->normalized || !t->n_norm) continue;
        char *nb = NULL;
        size_t nl = 0, off = 0;
        SCB_TRY(normalize(t, t->pool + a->off, a->len, &nb, &nl, NULL, ctx));
        if (nb && nl) {
            rc = pool_add(t, nb, nl, &off);
            if (!rc) { a->off = off; a->len = nl; }
            /* HF's id_to_token (and so decode) gives the normalized content */
            if (!rc) rc = set_id_str(t, a->id, off, 1);
        }
        scb_free(nb);
        if (rc) goto out;
    }
    /* bucket the tokens by their first byte (counting sort) so matching looks only at candidates */
    t->by_byte = scb_malloc((t->n_added ? t->n_added : 1) * sizeof *t->by_byte);
    if (!t->by_byte) { rc = SCB_E_NOMEM; goto out; }
    memset(t->bucket, 0, sizeof t->bucket);
    for (i = 0; i < t->n_added; i++) t->bucket[(unsigned char)t->pool[t->added[i].off] + 1]++;
    for (int b = 0; b < 256; b++) t->bucket[b + 1] += t->bucket[b];
    uint32_t fill[256];
    memcpy(fill, t->bucket, sizeof fill);
    for (i = 0; i < t->n_added; i++) t->by_byte[fill[(unsigned char)t->pool[t->added[i].off]]++] = (uint32_t)i;
out:
    return rc;
}

static int load_model(struct scb_tokenizer *t, const cJSON *m, const char *file, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *tmp = NULL;
    size_t *voff = NULL;
    int32_t *vid = NULL;
    if (!cJSON_IsObject(m)) return scb_err(ctx, SCB_E_FORMAT, "%s: no \"model\" object", file);
    const char *type = jstr(m, "type");
    const cJSON *tyv = cJSON_GetObjectItemCaseSensitive(m, "type");
    if (tyv && !cJSON_IsString(tyv)) return scb_err(ctx, SCB_E_FORMAT, "%s: model \"type\" is not a string", file);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!type && cJSON_IsObject(vocab) && cJSON_IsArray(merges)) type = "BPE";  /* untyped older files */
    if (!type) return scb_err(ctx, SCB_E_FORMAT, "%s: model has no \"type\"", file);
    if (strcmp(type, "BPE"))
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: unsupported model type '%s' (only BPE)", file, type);
    if (!cJSON_IsObject(vocab)) return scb_err(ctx, SCB_E_FORMAT, "%s: model has no \"vocab\" object", file);
    if (!cJSON_IsArray(merges)) return scb_err(ctx, SCB_E_FORMAT, "%s: model has no \"merges\" list", file);
    t->byte_fallback = jbool(m, "byte_fallback", 0);
    t->fuse_unk = jbool(m, "fuse_unk", 0);
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(dr) && dr->valuedouble > 0)
        return scb_err(ctx, SCB_E_UNSUPPORTED, "%s: BPE dropout is not supported", file);
    const char *csp = jstr(m, "continuing_subword_prefix"), *eow = jstr(m, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return scb_err(ctx, SCB_E_UNSUPPORTED,
                       "%s: BPE continuing_subword_prefix/end_of_word_suffix are not supported", file);
    t->ignore_merges = jbool(m, "ignore_merges", 0);

    /* vocab: strings into the pool first, then the map (the pool may move while it grows) */
    size_t nv = (size_t)cJSON_GetArraySize(vocab), i = 0;
    voff = scb_malloc((nv ? nv : 1) * sizeof *voff);
    vid = scb_malloc((nv ? nv : 1) * sizeof *vid);
    if (!voff || !vid) { rc = SCB_E_NOMEM; goto out; }
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= TOK_MAX_ID) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: vocab entry '%s' has no valid id (0 <= id < %d)", file, e->string,
                         TOK_MAX_ID);
            goto out;
        }
        vid[i] = (int32_t)e->valuedouble;
        SCB_TRY(pool_add(t, e->string, strlen(e->string), &voff[i]));
        SCB_TRY(set_id_str(t, vid[i], voff[i], 0));
        i++;
    }
    SCB_TRY(strmap_init(&t->vocab, nv));
    for (i = 0; i < nv; i++) strmap_put(&t->vocab, t->pool, voff[i], strlen(t->pool + voff[i]), vid[i]);

    const char *unk = jstr(m, "unk_token");
    t->unk_id = unk ? strmap_get(&t->vocab, t->pool, unk, strlen(unk)) : -1;
    if (unk && t->unk_id < 0) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: unk_token '%s' is not in the vocab", file, unk);
        goto out;
    }
    const struct tok_bytemap *bm = bytemap();
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", (unsigned)b);
        t->byte_id[b] = strmap_get(&t->vocab, t->pool, bm->utf8[b], bm->ulen[b]);
        t->fb_id[b] = strmap_get(&t->vocab, t->pool, code, strlen(code));
    }

    size_t nm = (size_t)cJSON_GetArraySize(merges), rank = 0, tmp_cap = 256;
    SCB_TRY(pairmap_init(&t->merges, nm));
    tmp = scb_malloc(tmp_cap);
    if (!tmp) { rc = SCB_E_NOMEM; goto out; }
    cJSON_ArrayForEach(e, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp) {
                rc = scb_err(ctx, SCB_E_FORMAT, "%s: merges[%zu] '%s' is not \"left right\"", file, rank,
                             e->valuestring);
                goto out;
            }
            a = e->valuestring; la = (size_t)(sp - a);
            b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0))
                   && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring; la = strlen(a);
            b = cJSON_GetArrayItem(e, 1)->valuestring; lb = strlen(b);
        } else {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: merges[%zu] is neither \"a b\" nor [a, b]", file, rank);
            goto out;
        }
        if (la + lb > tmp_cap) {
            while (tmp_cap < la + lb) tmp_cap *= 2;
            char *p = scb_realloc(tmp, tmp_cap);
            if (!p) { rc = SCB_E_NOMEM; goto out; }
            tmp = p;
        }
        memcpy(tmp, a, la);
        memcpy(tmp + la, b, lb);
        int32_t ia = strmap_get(&t->vocab, t->pool, a, la), ib = strmap_get(&t->vocab, t->pool, b, lb);
        int32_t im = strmap_get(&t->vocab, t->pool, tmp, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: merges[%zu] ('%.*s' '%.*s') uses a token not in the vocab",
                         file, rank, (int)la, a, (int)lb, b);
            goto out;
        }
        pairmap_put(&t->merges, ia, ib, (int32_t)rank, im);
        rank++;
    }
out:
    scb_free(tmp);
    scb_free(voff);
    scb_free(vid);
    return rc;
}

static int load_config(struct scb_tokenizer *t, const char *dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *path = scb_path_join(dir, "tokenizer_config.json"), *txt = NULL;
    cJSON *j = NULL;
    size_t len = 0;
    if (!path) return SCB_E_NOMEM;
    if (!scb_file_exists(path)) goto out;
    SCB_TRY(scb_file_read(path, &txt, &len, ctx));
    t->hash = scb_hash64(txt, len, t->hash);
    const char *end = NULL;
    j = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!j) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: invalid JSON near byte %zu", path, end ? (size_t)(end - txt) : 0);
        goto out;
    }
    const char *keys[2] = {"bos_token", "eos_token"};
    for (int k = 0; k < 2; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
        if (!s) continue;
        size_t off;
        SCB_TRY(pool_add(t, s, strlen(s), &off));
        if (k == 0) t->bos_off = off + 1;
        else t->eos_off = off + 1;
    }
    t->add_bos = jbool(j, "add_bos_token", 0);
out:
    cJSON_Delete(j);
    scb_free(txt);
    scb_free(path);
    return rc;
}

int scb_tokenizer_load(struct scb_tokenizer **out, const char *model_dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *path = NULL, *txt = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    struct scb_tokenizer *t = NULL;
    if (!out || !model_dir) return scb_err(ctx, SCB_E_INVAL, "scb_tokenizer_load: NULL argument");
    *out = NULL;
    bytemap();
    t = scb_calloc(1, sizeof *t);
    path = scb_path_join(model_dir, "tokenizer.json");
    if (!t || !path) { rc = SCB_E_NOMEM; goto out; }
    t->bos_id = t->eos_id = t->unk_id = -1;
    if (!scb_file_exists(path)) {
        rc = scb_err(ctx, SCB_E_IO, "%s: no such file (a model directory needs tokenizer.json)", path);
        goto out;
    }
    SCB_TRY(scb_file_read(path, &txt, &len, ctx));
    t->hash = scb_hash64(txt, len, SCB_HASH64_INIT);
    const char *end = NULL;
    j = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    if (!j) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: invalid JSON near byte %zu", path, end ? (size_t)(end - txt) : 0);
        goto out;
    }
    scb_free(txt);
    txt = NULL;
    if (!cJSON_IsObject(j)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: not a JSON object", path); goto out; }
    if (!cJSON_GetObjectItemCaseSensitive(j, "model")) {
        rc = scb_err(ctx, SCB_E_FORMAT, "%s: no \"model\" object", path);
        goto out;
    }
    SCB_TRY(load_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), path, ctx));
    SCB_TRY(load_pretok(t, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), path, ctx));
    t->byte_level = t->n_steps && t->steps[t->n_steps - 1].kind == TOK_STEP_BYTELEVEL;
    SCB_TRY(load_decoder(t, cJSON_GetObjectItemCaseSensitive(j, "decoder"), path, ctx));
    SCB_TRY(load_model(t, cJSON_GetObjectItemCaseSensitive(j, "model"), path, ctx));
    SCB_TRY(load_added(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), path, ctx));
    SCB_TRY(load_post(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), path, ctx));
    for (size_t i = 0; i < t->n_post_pre + t->n_post_post; i++) {
        int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
        if (!scb_tokenizer_token_str(t, id)) {
            rc = scb_err(ctx, SCB_E_FORMAT, "%s: post_processor id %d is not a token", path, (int)id);
            goto out;
        }
    }
    cJSON_Delete(j);
    j = NULL;
    SCB_TRY(load_config(t, model_dir, ctx));
    t->bos_id = t->bos_off ? scb_tokenizer_token_id(t, t->pool + t->bos_off - 1) : -1;
    t->eos_id = t->eos_off ? scb_tokenizer_token_id(t, t->pool + t->eos_off - 1) : -1;
    *out = t;
    t = NULL;
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, SCB_E_NOMEM, "out of memory loading %s", path ? path : model_dir);
    cJSON_Delete(j);
    scb_free(txt);
    scb_free(path);
    scb_tokenizer_destroy(t);
    return rc;
}

void scb_tokenizer_destroy(struct scb_tokenizer *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_steps; i++) pcre2_code_free(t->steps[i].re);
    for (int i = 0; i < t->n_norm; i++) pcre2_code_free(t->norm[i].re);
    for (int i = 0; i < t->n_dec; i++) pcre2_code_free(t->dec[i].re);
    strmap_fini(&t->vocab);
    strmap_fini(&t->added_map);
    pairmap_fini(&t->merges);
    scb_free(t->added);
    scb_free(t->by_byte);
    scb_free(t->id_off);
    scb_free(t->post_pre);
    scb_free(t->post_post);
    scb_free(t->pool);
    scb_free(t);
}

/* ---- encoding ------------------------------------------------------------------------------------ */

struct tok_ids {
    int32_t *v;
    size_t   n, cap;
};

static int ids_add(struct tok_ids *d, int32_t id)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        int32_t *p = scb_realloc(d->v, cap * sizeof *p);
        if (!p) return SCB_E_NOMEM;
        d->v = p; d->cap = cap;
    }
    d->v[d->n++] = id;
    return SCB_OK;
}

/* Per-call scratch for BPE. */
struct tok_work {
    int32_t *sym;   /* (n) symbol id */
    int32_t *prev, *next; /* (n) links, -1 at the ends */
    uint8_t *dead;  /* (n) merged into its left neighbour */
    struct tok_heap_e { int32_t rank, pos, merged; } *heap; /* (cap) */
    size_t   heap_n, cap, heap_cap;
    char    *mapped; /* (4 * n) byte-level string of the word */
    size_t   mapped_cap;
    pcre2_match_data *md;
};

static void work_fini(struct tok_work *w)
{
    scb_free(w->sym); scb_free(w->prev); scb_free(w->next); scb_free(w->dead);
    scb_free(w->heap); scb_free(w->mapped);
    pcre2_match_data_free(w->md);
}

static int work_reserve(struct tok_work *w, size_t n)
{
    if (n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < n) cap *= 2;
        int32_t *a = scb_realloc(w->sym, cap * sizeof *a);
        if (!a) return SCB_E_NOMEM;
        w->sym = a;
        a = scb_realloc(w->prev, cap * sizeof *a);
        if (!a) return SCB_E_NOMEM;
        w->prev = a;
        a = scb_realloc(w->next, cap * sizeof *a);
        if (!a) return SCB_E_NOMEM;
        w->next = a;
        uint8_t *d = scb_realloc(w->dead, cap);
        if (!d) return SCB_E_NOMEM;
        w->dead = d;
        w->cap = cap;
    }
    if (2 * n > w->mapped_cap) {
        size_t cap = w->mapped_cap ? w->mapped_cap : 128;
        while (cap < 2 * n) cap *= 2;
        char *m = scb_realloc(w->mapped, cap);
        if (!m) return SCB_E_NOMEM;
        w->mapped = m; w->mapped_cap = cap;
    }
    return SCB_OK;
}

static int heap_less(const struct tok_heap_e *a, const struct tok_heap_e *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(struct tok_work *w, int32_t rank, int32_t pos, int32_t merged)
{
    if (w->heap_n == w->heap_cap) {
        size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
        struct tok_heap_e *h = scb_realloc(w->heap, cap * sizeof *h);
        if (!h) return SCB_E_NOMEM;
        w->heap = h; w->heap_cap = cap;
    }
    size_t i = w->heap_n++;
    struct tok_heap_e e = {rank, pos, merged};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = e;
    return SCB_OK;
}

static struct tok_heap_e heap_pop(struct tok_work *w)
{
    struct tok_heap_e top = w->heap[0], last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!heap_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static int push_pair(const struct scb_tokenizer *t, struct tok_work *w, int32_t pos)
{
    int32_t nx = w->next[pos], rank, merged;
    if (nx < 0) return SCB_OK;
    if (!pairmap_get(&t->merges, w->sym[pos], w->sym[nx], &rank, &merged)) return SCB_OK;
    return heap_push(w, rank, pos, merged);
}

/* Merge the w->sym[0..k) symbols by rank (HF Word::merge_all) and append the ids. */
static int bpe_merge(const struct scb_tokenizer *t, struct tok_work *w, size_t k, struct tok_ids *out)
{
    int rc = SCB_OK;
    if (!k) return SCB_OK;
    for (size_t i = 0; i < k; i++) {
        w->prev[i] = (int32_t)i - 1;
        w->next[i] = (int32_t)i + 1;
        w->dead[i] = 0;
    }
    w->next[k - 1] = -1;
    w->heap_n = 0;
    for (size_t i = 0; i + 1 < k; i++) SCB_TRY(push_pair(t, w, (int32_t)i));
    while (w->heap_n) {
        struct tok_heap_e top = heap_pop(w);
        int32_t p = top.pos, nx;
        if (w->dead[p] || (nx = w->next[p]) < 0) continue;
        int32_t rank, merged;
        if (!pairmap_get(&t->merges, w->sym[p], w->sym[nx], &rank, &merged) || merged != top.merged) continue;
        w->sym[p] = merged;
        w->dead[nx] = 1;
        w->next[p] = w->next[nx];
        if (w->next[nx] >= 0) w->prev[w->next[nx]] = p;
        if (w->prev[p] >= 0) SCB_TRY(push_pair(t, w, w->prev[p]));
        SCB_TRY(push_pair(t, w, p));
    }
    for (int32_t p = 0; p >= 0; p = w->next[p]) SCB_TRY(ids_add(out, w->sym[p]));
out:
    return rc;
}

/* Initial symbols of a word s[0..n) of characters (HF BPE::merge_word): each character's vocab
 * token; else, with byte_fallback, its bytes as <0xHH> tokens when all exist; else unk, fused
 * with a pending unk under fuse_unk. A pending unk is emitted before the next known character
 * only (not before byte tokens), as in HF. Returns the symbol count in *k. */
static void bpe_chars(const struct scb_tokenizer *t, struct tok_work *w, const char *s, size_t n, size_t *k)
{
    size_t m = 0;
    int32_t unk = -1;
    for (size_t i = 0; i < n;) {
        size_t sub, l = utf8_seq((const unsigned char *)s + i, n - i, &sub);
        if (!l) l = sub;  /* not reached: the text is valid UTF-8 */
        int32_t id = strmap_get(&t->vocab, t->pool, s + i, l);
        if (id >= 0) {
            if (unk >= 0) { w->sym[m++] = unk; unk = -1; }
            w->sym[m++] = id;
            i += l;
            continue;
        }
        if (t->byte_fallback) {
            size_t b = 0;
            while (b < l && t->fb_id[(unsigned char)s[i + b]] >= 0) b++;
            if (b == l) {
                for (b = 0; b < l; b++) w->sym[m++] = t->fb_id[(unsigned char)s[i + b]];
                i += l;
                continue;
            }
        }
        if (t->unk_id >= 0) {
            if (unk >= 0 && !t->fuse_unk) w->sym[m++] = unk;
            unk = t->unk_id;
        }
        i += l;
    }
    if (unk >= 0) w->sym[m++] = unk;
    *k = m;
}

/* BPE of one pre-token, appending ids. Byte-level tokenizers pass raw bytes (mapped to the
 * byte alphabet here); others the normalized, pre-tokenized text. */
static int bpe_word(const struct scb_tokenizer *t, struct tok_work *w, const unsigned char *s, size_t n,
                    struct tok_ids *out)
{
    int rc = SCB_OK;
    if (!n) return SCB_OK;
    SCB_TRY(work_reserve(w, n));
    const char *word = (const char *)s;
    size_t wl = n;
    if (t->byte_level) {
        const struct tok_bytemap *bm = bytemap();
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(w->mapped + m, bm->utf8[s[i]], bm->ulen[s[i]]);
            m += bm->ulen[s[i]];
        }
        /* with byte_fallback a mapped character may become two byte tokens: room for 2n */
        SCB_TRY(work_reserve(w, m));
        word = w->mapped;
        wl = m;
    }
    if (t->ignore_merges) {
        int32_t id = strmap_get(&t->vocab, t->pool, word, wl);
        if (id >= 0) return ids_add(out, id);
    }
    size_t k = 0;
    if (t->byte_level && !t->byte_fallback && !t->fuse_unk) {
        for (size_t i = 0; i < n; i++) {  /* one character per byte */
            int32_t id = t->byte_id[s[i]];
            if (id < 0) id = t->unk_id;
            if (id < 0) continue;  /* HF drops a character with no token when there is no unk */
            w->sym[k++] = id;
        }
    } else {
        bpe_chars(t, w, word, wl, &k);
    }
    SCB_TRY(bpe_merge(t, w, k, out));
out:
    return rc;
}

/* Pieces of text during pre-tokenization: (off, len) into a buffer; z: how many bytes at the
 * start of the piece HF aligns to offset 0 of the original input (its first character, what a
 * normalizer or pre-tokenizer prepended to it, a replacement of it); z > 0 is HF's
 * offsets_original().0 == 0, which Metaspace prepend_scheme "first" asks. */
struct tok_piece { size_t off, len, z; };
struct tok_pieces { struct tok_piece *v; size_t n, cap; };

static int pieces_add(struct tok_pieces *p, size_t off, size_t len, size_t z)
{
    if (!len) return SCB_OK;  /* HF drops empty splits */
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct tok_piece *v = scb_realloc(p->v, cap * sizeof *v);
        if (!v) return SCB_E_NOMEM;
        p->v = v; p->cap = cap;
    }
    p->v[p->n].off = off;
    p->v[p->n].len = len;
    p->v[p->n].z = z < len ? z : len;
    p->n++;
    return SCB_OK;
}

/* One split of HF's NormalizedString::split: [s, e) and whether it is dropped. */
struct tok_split { size_t s, e; int remove; };

/* Split the piece pc of buffer buf (HF NormalizedString::split): the pattern's matches (m, nm
 * pairs relative to the piece) alternate with the text between them as HF's find_matches gives
 * them (invert flips which are matches), then the behavior merges or removes them. The kept,
 * non-empty pieces are appended to out. sp is scratch of at least 2 * nm + 1 entries. */
static int split_apply(const struct tok_piece *pc, const size_t *m, size_t nm, int behavior, int invert,
                       struct tok_split *sp, struct tok_pieces *out)
{
    size_t ns = 0, prev = 0, n = pc->len;
    /* find_matches: (range, is_match); `remove` holds is_match for now */
    for (size_t i = 0; i < nm; i++) {
        if (m[2 * i] != prev) sp[ns++] = (struct tok_split){prev, m[2 * i], invert};
        sp[ns++] = (struct tok_split){m[2 * i], m[2 * i + 1], !invert};
        prev = m[2 * i + 1];
    }
    if (prev != n) sp[ns++] = (struct tok_split){prev, n, invert};
    size_t k = 0;
    int prev_match = 0;
    switch (behavior) {
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < ns; i++) sp[i].remove = 0;
        k = ns;
        break;
    case TOK_SPLIT_REMOVED:
        k = ns;
        break;
    case TOK_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < ns; i++) {
            int is = sp[i].remove;
            if (is == prev_match && k) sp[k - 1].e = sp[i].e;
            else sp[k++] = (struct tok_split){sp[i].s, sp[i].e, 0};
            prev_match = is;
        }
        break;
    case TOK_SPLIT_MERGED_PREV:
        for (size_t i = 0; i < ns; i++) {
            int is = sp[i].remove;
            if (is && !prev_match && k) sp[k - 1].e = sp[i].e;
            else sp[k++] = (struct tok_split){sp[i].s, sp[i].e, 0};
            prev_match = is;
        }
        break;
    default: /* TOK_SPLIT_MERGED_NEXT: the same from the right, a match joins the split after it */
        for (size_t i = ns; i-- > 0;) {
            int is = sp[i].remove;
            if (is && !prev_match && k) sp[ns - k].s = sp[i].s;
            else { k++; sp[ns - k] = (struct tok_split){sp[i].s, sp[i].e, 0}; }
            prev_match = is;
        }
        memmove(sp, sp + ns - k, k * sizeof *sp);
        break;
    }
    for (size_t i = 0; i < k; i++) {
        if (sp[i].remove) continue;
        int rc = pieces_add(out, pc->off + sp[i].s, sp[i].e - sp[i].s, pc->z > sp[i].s ? pc->z - sp[i].s : 0);
        if (rc) return rc;
    }
    return SCB_OK;
}

/* Pre-tokenize and BPE one normalized, added-token-free piece of text. z: bytes at its start
 * aligned to offset 0 of the original input (struct tok_piece). */
static int encode_text(const struct scb_tokenizer *t, struct tok_work *w, const char *s, size_t n, size_t z,
                       struct tok_ids *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct tok_pieces a = {0}, b = {0};
    struct scb_buf buf = {0}, nbuf = {0};
    size_t *m = NULL, nm = 0, mcap = 0;
    struct tok_split *sp = NULL;
    size_t sp_cap = 0;
    if (!n) return SCB_OK;
    SCB_TRY(scb_buf_append(&buf, s, n));
    SCB_TRY(pieces_add(&a, 0, n, z));
    if (!w->md) {
        /* match data sized for the largest pattern we use (a handful of groups at most) */
        w->md = pcre2_match_data_create(32, NULL);
        if (!w->md) { rc = SCB_E_NOMEM; goto out; }
    }
    for (int k = 0; k < t->n_steps; k++) {
        const struct tok_step *st = &t->steps[k];
        b.n = 0;
        nbuf.len = 0;
        if (st->kind == TOK_STEP_BYTELEVEL && st->add_prefix_space) {
            /* every piece gets a leading space unless it has one (HF ByteLevel add_prefix_space) */
            for (size_t i = 0; i < a.n; i++) {
                const char *p = buf.data + a.v[i].off;
                size_t off = nbuf.len;
                if (p[0] != ' ') {
                    SCB_TRY(scb_buf_putc(&nbuf, ' '));
                    if (a.v[i].z) a.v[i].z++;
                }
                SCB_TRY(scb_buf_append(&nbuf, p, a.v[i].len));
                a.v[i].off = off;
                a.v[i].len = nbuf.len - off;
            }
            struct scb_buf tmp = buf; buf = nbuf; nbuf = tmp;
        }
        if (st->kind == TOK_STEP_METASPACE) {
            /* spaces become the replacement; prefix per prepend_scheme; split before each one */
            size_t rl = strlen(st->rep);
            for (size_t i = 0; i < a.n; i++) {
                const char *p = buf.data + a.v[i].off;
                size_t off = nbuf.len, len = a.v[i].len;
                int starts = len >= rl && !memcmp(p, st->rep, rl);
                if (!starts && len && p[0] == ' ') starts = 1;  /* the space becomes the replacement */
                size_t z = a.v[i].z, nz = 0;
                if (!starts && (st->prepend == TOK_PREPEND_ALWAYS || (st->prepend == TOK_PREPEND_FIRST && z))) {
                    SCB_TRY(scb_buf_append(&nbuf, st->rep, rl));
                    nz = z ? rl : 0;
                }
                for (size_t j = 0; j < len; j++) {
                    if (p[j] == ' ') SCB_TRY(scb_buf_append(&nbuf, st->rep, rl));
                    else SCB_TRY(scb_buf_putc(&nbuf, p[j]));
                    if (j < z) nz += p[j] == ' ' ? rl : 1;
                }
                struct tok_piece np = {off, nbuf.len - off, nz};
                if (!st->split) { SCB_TRY(pieces_add(&b, np.off, np.len, np.z)); continue; }
                size_t from = 0;  /* split before every replacement character (MergedWithNext) */
                for (size_t j = 1; j + rl <= np.len; j++) {
                    if (memcmp(nbuf.data + np.off + j, st->rep, rl)) continue;
                    SCB_TRY(pieces_add(&b, np.off + from, j - from, np.z > from ? np.z - from : 0));
                    from = j;
                    j += rl - 1;
                }
                SCB_TRY(pieces_add(&b, np.off + from, np.len - from, np.z > from ? np.z - from : 0));
            }
            struct scb_buf tmp = buf; buf = nbuf; nbuf = tmp;
            struct tok_pieces tp = a; a = b; b = tp;
            continue;
        }
        if (!st->re) continue;
        int beh = st->kind == TOK_STEP_SPLIT ? st->behavior : TOK_SPLIT_ISOLATED;
        int inv = st->kind == TOK_STEP_SPLIT ? st->invert : 0;
        for (size_t i = 0; i < a.n; i++) {
            nm = 0;
            SCB_TRY(regex_find_all(st->re, w->md, buf.data + a.v[i].off, a.v[i].len, &m, &nm, &mcap, ctx));
            if (2 * nm + 1 > sp_cap) {
                size_t c = 2 * nm + 1 + 64;
                struct tok_split *ns = scb_realloc(sp, c * sizeof *ns);
                if (!ns) { rc = SCB_E_NOMEM; goto out; }
                sp = ns; sp_cap = c;
            }
            SCB_TRY(split_apply(&a.v[i], m, nm, beh, inv, sp, &b));
        }
        struct tok_pieces tmp = a; a = b; b = tmp;
    }
    for (size_t i = 0; i < a.n; i++)
        SCB_TRY(bpe_word(t, w, (const unsigned char *)buf.data + a.v[i].off, a.v[i].len, out));
out:
    scb_free(a.v);
    scb_free(b.v);
    scb_free(m);
    scb_free(sp);
    scb_buf_fini(&buf);
    scb_buf_fini(&nbuf);
    return rc;
}

/* Letters, marks and decimal digits of Unicode 15.0-16.0 (as UCD_EXTRA: L, M, Nd) for is_word_cp,
 * since utf8proc 2.8 stops at Unicode 15.0 and HF's regex crate knows Unicode 16. */
static const uint32_t WORD_EXTRA[][2] = {
    {0x897, 0x897}, {0xCF3, 0xCF3}, {0xECE, 0xECE}, {0x1C89, 0x1C8A}, {0xA7CB, 0xA7CD},
    {0xA7DA, 0xA7DC}, {0x105C0, 0x105F3}, {0x10D40, 0x10D65}, {0x10D69, 0x10D6D}, {0x10D6F, 0x10D85},
    {0x10EC2, 0x10EC4}, {0x10EFC, 0x10EFF}, {0x1123F, 0x11241}, {0x11380, 0x11389}, {0x1138B, 0x1138B},
    {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113C0}, {0x113C2, 0x113C2}, {0x113C5, 0x113C5},
    {0x113C7, 0x113CA}, {0x113CC, 0x113D3}, {0x113E1, 0x113E2}, {0x116D0, 0x116E3}, {0x11BC0, 0x11BE0},
    {0x11BF0, 0x11BF9}, {0x11F00, 0x11F10}, {0x11F12, 0x11F3A}, {0x11F3E, 0x11F42}, {0x11F50, 0x11F5A},
    {0x1342F, 0x1342F}, {0x13440, 0x13455}, {0x13460, 0x143FA}, {0x16100, 0x16139}, {0x16D40, 0x16D6C},
    {0x16D70, 0x16D79}, {0x18CFF, 0x18CFF}, {0x1B132, 0x1B132}, {0x1B155, 0x1B155}, {0x1CCF0, 0x1CCF9},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E08F, 0x1E08F}, {0x1E4D0, 0x1E4F9}, {0x1E5D0, 0x1E5FA},
    {0x2B739, 0x2B739}, {0x2EBF0, 0x2EE5D}, {0x31350, 0x323AF}};

/* Word characters for single_word: HF uses Rust regex \w, i.e. Alphabetic, marks, decimal digits,
 * connector punctuation and Join_Control. Alphabetic is approximated by L*, Nl and the enclosed
 * letters that are Other_Alphabetic. */
static int is_word_cp(uint32_t cp)
{
    if (cp == '_' || cp == 0x200C || cp == 0x200D) return 1;
    if ((cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169)
        || (cp >= 0x1F170 && cp <= 0x1F189))
        return 1;
    if (in_ranges(WORD_EXTRA, sizeof WORD_EXTRA / sizeof WORD_EXTRA[0], cp)) return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_ME) || c == UTF8PROC_CATEGORY_ND
        || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC;
}

static int is_space_cp(uint32_t cp)
{
    return (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F
        || cp == 0x205F || cp == 0x3000;
}

/* Code point ending just before s[end] (s valid UTF-8, end > 0). */
static uint32_t cp_before(const char *s, size_t end, size_t *start)
{
    size_t i = end - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    uint32_t cp;
    scb_utf8_decode((const unsigned char *)s + i, end - i, &cp);
    *start = i;
    return cp;
}

/* A segment of text after splitting out added tokens: a token (id >= 0) or text (id -1). */
struct tok_seg { size_t start, end; int32_t id; };

/* Split s[0..n) into segments by the added tokens with normalized == want_norm, as HF's
 * AddedVocabulary does: leftmost-longest non-overlapping matches; a special token's match is
 * skipped (stays text) with no_special; single_word needs non-word characters around the match;
 * lstrip/rstrip take the whitespace next to it into the token. *segs owned by the caller. */

static int added_find(const struct scb_tokenizer *t, const char *s, size_t n, int want_norm, int no_special,
                      struct tok_seg **segs, size_t *nseg)
{
    struct tok_seg *v = NULL;
    size_t cnt = 0, cap = 0, pos = 0, last = 0;
    *segs = NULL;
    *nseg = 0;
    int any = 0;
    for (size_t k = 0; k < t->n_added; k++) any |= (t->added[k].normalized == want_norm);
    while (any && pos < n) {
        /* leftmost-longest: the first position where some token matches, its longest token */
        const struct tok_added *best = NULL;
        unsigned char b0 = (unsigned char)s[pos];
        for (uint32_t k = t->bucket[b0]; k < t->bucket[b0 + 1]; k++) {
            const struct tok_added *a = &t->added[t->by_byte[k]];
            if (a->normalized != want_norm || a->len > n - pos) continue;
            if (memcmp(t->pool + a->off, s + pos, a->len)) continue;
            if (!best || a->len > best->len) best = a;
        }
        if (!best) { pos++; continue; }
        size_t start = pos, stop = pos + best->len;
        pos = stop;
        if (no_special && best->special) continue;
        if (best->single_word) {
            size_t st;
            uint32_t cp;
            int start_ok = start == 0 || !is_word_cp(cp_before(s, start, &st));
            int stop_ok = stop == n;
            if (!stop_ok) { scb_utf8_decode((const unsigned char *)s + stop, n - stop, &cp); stop_ok = !is_word_cp(cp); }
            if (!start_ok || !stop_ok) continue;
        }
        if (best->lstrip) {
            size_t st = start;
            while (st > last) {
                size_t b;
                if (!is_space_cp(cp_before(s, st, &b))) break;
                st = b;
            }
            start = st;
        }
        if (best->rstrip) {
            while (stop < n) {
                uint32_t cp;
                int l = scb_utf8_decode((const unsigned char *)s + stop, n - stop, &cp);
                if (!is_space_cp(cp)) break;
                stop += (size_t)l;
            }
            pos = stop;
        }
        if (cnt + 2 > cap) {
            cap = cap ? cap * 2 : 16;
            struct tok_seg *nv = scb_realloc(v, cap * sizeof *nv);
            if (!nv) { scb_free(v); return SCB_E_NOMEM; }
            v = nv;
        }
        if (start > last) v[cnt++] = (struct tok_seg){last, start, -1};
        v[cnt++] = (struct tok_seg){start, stop, best->id};
        last = stop;
    }
    if (cnt + 1 > cap) {
        struct tok_seg *nv = scb_realloc(v, (cnt + 1) * sizeof *nv);
        if (!nv) { scb_free(v); return SCB_E_NOMEM; }
        v = nv;
    }
    if (n > last || cnt == 0) v[cnt++] = (struct tok_seg){last, n, -1};
    *segs = v;
    *nseg = cnt;
    return SCB_OK;
}

int scb_tokenizer_encode(const struct scb_tokenizer *t, const char *text, size_t len, int flags,
                         int32_t **ids, size_t *n, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct tok_ids out = {0};
    struct tok_work w = {0};
    struct tok_seg *outer = NULL, *inner = NULL;
    size_t n_outer = 0, n_inner = 0, bad = 0;
    char *norm = NULL;
    if (ids) *ids = NULL;
    if (n) *n = 0;
    if (!t || (!text && len) || !ids || !n) return scb_err(ctx, SCB_E_INVAL, "scb_tokenizer_encode: NULL argument");
    if (!text) text = "";
    if (!utf8_check(text, len, &bad)) {
        return scb_err(ctx, SCB_E_INVAL, "text to encode is not valid UTF-8 (byte offset %zu)", bad);
    }
    int no_special = (flags & SCB_TOK_NO_SPECIAL) != 0;
    if (flags & SCB_TOK_ADD_SPECIAL)
        for (size_t i = 0; i < t->n_post_pre; i++) SCB_TRY(ids_add(&out, t->post_pre[i]));
    SCB_TRY(added_find(t, text, len, 0, no_special, &outer, &n_outer));
    for (size_t i = 0; i < n_outer; i++) {
        if (outer[i].id >= 0) { SCB_TRY(ids_add(&out, outer[i].id)); continue; }
        size_t nl, z;
        const char *piece = text + outer[i].start;
        SCB_TRY(normalize(t, piece, outer[i].end - outer[i].start, &norm, &nl, &z, ctx));
        if (outer[i].start) z = 0;  /* only the piece at the start of the input can be "first" */
        if (norm) piece = norm;
        SCB_TRY(added_find(t, piece, nl, 1, no_special, &inner, &n_inner));
        for (size_t k = 0; k < n_inner; k++) {
            if (inner[k].id >= 0) SCB_TRY(ids_add(&out, inner[k].id));
            else SCB_TRY(encode_text(t, &w, piece + inner[k].start, inner[k].end - inner[k].start,
                                     z > inner[k].start ? z - inner[k].start : 0, &out, ctx));
        }
        scb_free(inner);
        inner = NULL;
        scb_free(norm);
        norm = NULL;
    }
    if (flags & SCB_TOK_ADD_SPECIAL)
        for (size_t i = 0; i < t->n_post_post; i++) SCB_TRY(ids_add(&out, t->post_post[i]));
    if (!out.v) {
        out.v = scb_malloc(sizeof *out.v);
        if (!out.v) { rc = SCB_E_NOMEM; goto out; }
    }
    *ids = out.v;
    *n = out.n;
    out.v = NULL;
out:
    if (rc == SCB_E_NOMEM && ctx && ctx->code != SCB_E_NOMEM) scb_err(ctx, SCB_E_NOMEM, "out of memory encoding text");
    scb_free(norm);
    scb_free(inner);
    scb_free(outer);
    scb_free(out.v);
    work_fini(&w);
    return rc;
}

int scb_tokenizer_count(const struct scb_tokenizer *t, const char *text, size_t len, int flags,
                        size_t *n, struct scb_ctx *ctx)
{
    int32_t *ids = NULL;
    int rc = scb_tokenizer_encode(t, text, len, flags, &ids, n, ctx);
    scb_free(ids);
    return rc;
}

/* ---- decoding ------------------------------------------------------------------------------------ */

/* The token strings during decoding: toks[i] = buf[off[i] .. off[i] + len[i]). */
struct tok_list {
    struct scb_buf buf;
    size_t *off, *len;
    size_t  n, cap;
};

static void list_fini(struct tok_list *l)
{
    scb_buf_fini(&l->buf);
    scb_free(l->off);
    scb_free(l->len);
    memset(l, 0, sizeof *l);
}

/* Start a new token at the end of l->buf (its text is appended to l->buf afterwards; list_end
 * closes it). */
static int list_begin(struct tok_list *l)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 64;
        size_t *o = scb_realloc(l->off, c * sizeof *o);
        if (!o) return SCB_E_NOMEM;
        l->off = o;
        size_t *n = scb_realloc(l->len, c * sizeof *n);
        if (!n) return SCB_E_NOMEM;
        l->len = n;
        l->cap = c;
    }
    l->off[l->n] = l->buf.len;
    l->len[l->n] = 0;
    l->n++;
    return SCB_OK;
}

static void list_end(struct tok_list *l) { l->len[l->n - 1] = l->buf.len - l->off[l->n - 1]; }

static int list_push(struct tok_list *l, const char *s, size_t n)
{
    int rc = list_begin(l);
    if (!rc) rc = scb_buf_append(&l->buf, s, n);
    if (!rc) list_end(l);
    return rc;
}

/* Append s[0..n) with invalid UTF-8 replaced by U+FFFD per maximal subpart (from_utf8_lossy). */
static int append_lossy(struct scb_buf *b, const unsigned char *r, size_t n)
{
    int rc = SCB_OK;
    for (size_t p = 0; p < n;) {
        size_t sub, l = utf8_seq(r + p, n - p, &sub);
        if (l) { SCB_TRY(scb_buf_append(b, r + p, l)); p += l; }
        else { SCB_TRY(scb_buf_append(b, "\xEF\xBF\xBD", 3)); p += sub; }
    }
out:
    return rc;
}

/* Byte of a "<0xHH>" token (HF ByteFallback: six bytes, u8::from_str_radix of the two in the
 * middle, which takes an optional '+'), or -1. */
static int fallback_byte(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) {
            if (i == 3 && c == '+') continue;
            return -1;
        }
        v = v * 16 + d;
    }
    return v;
}

/* Apply one decoder (HF decode_chain) to in, giving out. */
static int decode_step(const struct scb_tokenizer *t, const struct tok_dec *d, const struct tok_list *in,
                       struct tok_list *out, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf raw = {0};
    const struct tok_bytemap *bm = bytemap();
    switch (d->kind) {
    case TOK_DEC_BYTELEVEL:  /* all tokens to bytes, one lossy UTF-8 string */
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.data + in->off[i];
            size_t sl = in->len[i], start = raw.len;
            int all = 1;
            for (size_t p = 0; p < sl;) {
                uint32_t cp;
                int l = scb_utf8_decode((const unsigned char *)s + p, sl - p, &cp);
                if (cp >= 324 || bm->cp_byte[cp] < 0) { all = 0; break; }
                SCB_TRY(scb_buf_putc(&raw, (char)bm->cp_byte[cp]));
                p += (size_t)l;
            }
            if (!all) {  /* not byte-level: the token's own UTF-8 */
                raw.len = start;
                SCB_TRY(scb_buf_append(&raw, s, sl));
            }
        }
        SCB_TRY(list_begin(out));
        SCB_TRY(append_lossy(&out->buf, (const unsigned char *)raw.data, raw.len));
        list_end(out);
        break;
    case TOK_DEC_FUSE:
        SCB_TRY(list_begin(out));
        for (size_t i = 0; i < in->n; i++) SCB_TRY(scb_buf_append(&out->buf, in->buf.data + in->off[i], in->len[i]));
        list_end(out);
        break;
    case TOK_DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            SCB_TRY(list_begin(out));
            SCB_TRY(regex_replace(d->re, in->buf.data + in->off[i], in->len[i], t->pool + d->str_off, d->str_len,
                                  &out->buf, NULL, ctx));
            list_end(out);
        }
        break;
    case TOK_DEC_BYTEFALLBACK:  /* runs of <0xHH> become their UTF-8, or one U+FFFD per byte */
        for (size_t i = 0; i <= in->n; i++) {
            int v = i < in->n ? fallback_byte(in->buf.data + in->off[i], in->len[i]) : -1;
            if (v >= 0) { SCB_TRY(scb_buf_putc(&raw, (char)v)); continue; }
            if (raw.len) {
                size_t bad;
                if (utf8_check(raw.data, raw.len, &bad)) {
                    SCB_TRY(list_push(out, raw.data, raw.len));
                } else {
                    for (size_t k = 0; k < raw.len; k++) SCB_TRY(list_push(out, "\xEF\xBF\xBD", 3));
                }
                raw.len = 0;
            }
            if (i < in->n) SCB_TRY(list_push(out, in->buf.data + in->off[i], in->len[i]));
        }
        break;
    case TOK_DEC_STRIP:
    case TOK_DEC_METASPACE: {
        size_t cl = strlen(d->ch);
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.data + in->off[i];
            size_t n = in->len[i];
            SCB_TRY(list_begin(out));
            if (d->kind == TOK_DEC_METASPACE) {
                /* the replacement becomes a space, except that the first token loses all of them */
                int drop = i == 0 && d->prepend != TOK_PREPEND_NEVER;
                for (size_t p = 0; p < n;) {
                    if (n - p >= cl && !memcmp(s + p, d->ch, cl)) {
                        if (!drop) SCB_TRY(scb_buf_putc(&out->buf, ' '));
                        p += cl;
                    } else {
                        SCB_TRY(scb_buf_putc(&out->buf, s[p]));
                        p++;
                    }
                }
            } else {
                /* up to start / stop copies of the character cut at the ends */
                size_t a = 0, e = n;
                for (size_t k = 0; k < d->start && e - a >= cl && !memcmp(s + a, d->ch, cl); k++) a += cl;
                for (size_t k = 0; k < d->stop && e - a >= cl && !memcmp(s + e - cl, d->ch, cl); k++) e -= cl;
                SCB_TRY(scb_buf_append(&out->buf, s + a, e - a));
            }
            list_end(out);
        }
        break;
    }
    default:
        break;
    }
out:
    scb_buf_fini(&raw);
    return rc;
}

int scb_tokenizer_decode(const struct scb_tokenizer *t, const int32_t *ids, size_t n,
                         char **text, size_t *len, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct tok_list a = {0}, b = {0};
    struct scb_buf res = {0};
    if (text) *text = NULL;
    if (len) *len = 0;
    if (!t || (!ids && n) || !text) return scb_err(ctx, SCB_E_INVAL, "scb_tokenizer_decode: NULL argument");
    for (size_t i = 0; i < n; i++) {
        const char *s = scb_tokenizer_token_str(t, ids[i]);
        if (!s) continue;  /* HF skips ids that are no token */
        SCB_TRY(list_push(&a, s, strlen(s)));
    }
    for (int k = 0; k < t->n_dec; k++) {
        list_fini(&b);
        SCB_TRY(decode_step(t, &t->dec[k], &a, &b, ctx));
        struct tok_list tmp = a; a = b; b = tmp;
    }
    for (size_t i = 0; i < a.n; i++) {  /* joined; with spaces when there is no decoder */
        if (i && !t->has_decoder) SCB_TRY(scb_buf_putc(&res, ' '));
        SCB_TRY(scb_buf_append(&res, a.buf.data + a.off[i], a.len[i]));
    }
    if (len) *len = res.len;
    *text = scb_buf_steal(&res);
    if (!*text) rc = SCB_E_NOMEM;
out:
    if (rc == SCB_E_NOMEM) scb_err(ctx, SCB_E_NOMEM, "out of memory decoding");
    list_fini(&a);
    list_fini(&b);
    scb_buf_fini(&res);
    return rc;
}

/* ---- accessors ------------------------------------------------------------------------------------- */

size_t scb_tokenizer_vocab_size(const struct scb_tokenizer *t) { return t ? t->vocab_size : 0; }

int32_t scb_tokenizer_token_id(const struct scb_tokenizer *t, const char *token)
{
    if (!t || !token) return -1;
    size_t n = strlen(token);
    int32_t id = strmap_get(&t->added_map, t->pool, token, n);
    return id >= 0 ? id : strmap_get(&t->vocab, t->pool, token, n);
}

const char *scb_tokenizer_token_str(const struct scb_tokenizer *t, int32_t id)
{
    if (!t || id < 0 || (size_t)id >= t->n_ids || !t->id_off[id]) return NULL;
    return t->pool + t->id_off[id] - 1;
}

const char *scb_tokenizer_bos_token(const struct scb_tokenizer *t)
{
    return t && t->bos_off ? t->pool + t->bos_off - 1 : NULL;
}

const char *scb_tokenizer_eos_token(const struct scb_tokenizer *t)
{
    return t && t->eos_off ? t->pool + t->eos_off - 1 : NULL;
}
int32_t scb_tokenizer_bos_id(const struct scb_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t scb_tokenizer_eos_id(const struct scb_tokenizer *t) { return t ? t->eos_id : -1; }
uint64_t scb_tokenizer_hash(const struct scb_tokenizer *t) { return t ? t->hash : 0; }
