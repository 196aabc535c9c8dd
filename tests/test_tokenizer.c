/* test_tokenizer.c — unit tests of harness/tokenizer: bad tokenizer files (missing, invalid JSON,
 * no model, unsupported types, merges naming unknown tokens) give clear errors naming the file;
 * BPE merge order on a tiny hand-written tokenizer whose expected ids follow from the BPE rules;
 * allocation failures while loading; accessors on the real Llama-3 and Qwen3 tokenizers
 * (found through SCB_SHARED_DIR; expected values are those of their tokenizer files and README);
 * and two threads encoding with one tokenizer at once. Id parity with HF is tests/py/tokenizer_parity.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness/tokenizer.h"
#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"

static char g_tmp[256];

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = scb_path_join(dir, name);
    assert_non_null(p);
    struct scb_ctx c = {0};
    assert_int_equal(scb_file_write(p, text, strlen(text), &c), SCB_OK);
    scb_free(p);
}

/* A fresh directory under the test's temp dir holding tokenizer.json = json. */
static const char *tok_dir(const char *name, const char *json)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    mkdir(dir, 0700);
    if (json) write_file(dir, "tokenizer.json", json);
    return dir;
}

/* A valid tiny byte-level BPE: vocab a b c ab bc abc d (ids 0..6), merges "b c" (rank 0),
 * "a b" (rank 1), "ab c" (rank 2). */
#define TINY_HEAD "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 7, \"content\": \"<s>\", \"single_word\": false," \
    " \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}]," \
    " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [" \
    "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+|[^\\\\s]+\"}, \"behavior\": \"Isolated\", \"invert\": false}," \
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}]}," \
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}," \
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\"," \
    " \"ids\": [7], \"tokens\": [\"<s>\"]}}}, \"decoder\": {\"type\": \"ByteLevel\"},"
#define TINY_MODEL "\"model\": {\"type\": \"BPE\", \"ignore_merges\": false, \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2," \
    " \"ab\": 3, \"bc\": 4, \"abc\": 5, \"d\": 6}, \"merges\": [\"b c\", [\"a\", \"b\"], \"ab c\"]}}"

static void expect_load_error(const char *dir, int code, const char *needle1, const char *needle2)
{
    struct scb_tokenizer *t = (struct scb_tokenizer *)1;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_load(&t, dir, &c), code);
    assert_null(t);
    if (!strstr(c.msg, needle1) || (needle2 && !strstr(c.msg, needle2)))
        fail_msg("error message '%s' lacks '%s' / '%s'", c.msg, needle1, needle2 ? needle2 : "");
}

static void test_bad_files(void **st)
{
    (void)st;
    size_t live0 = scb_alloc_live_bytes();
    expect_load_error(tok_dir("missing", NULL), SCB_E_IO, "missing/tokenizer.json", NULL);
    expect_load_error(tok_dir("badjson", "{\"model\": {\"type\": \"BPE\",, }"), SCB_E_FORMAT,
                      "badjson/tokenizer.json", "invalid JSON");
    expect_load_error(tok_dir("nomodel", "{\"version\": \"1.0\", \"added_tokens\": []}"), SCB_E_FORMAT,
                      "nomodel/tokenizer.json", "\"model\"");
    expect_load_error(tok_dir("wordpiece", TINY_HEAD "\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}"),
                      SCB_E_UNSUPPORTED, "wordpiece/tokenizer.json", "WordPiece");
    expect_load_error(tok_dir("lowercase", "{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {}}"),
                      SCB_E_UNSUPPORTED, "lowercase/tokenizer.json", "Lowercase");
    expect_load_error(tok_dir("whitespace", "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {}}"),
                      SCB_E_UNSUPPORTED, "whitespace/tokenizer.json", "Whitespace");
    expect_load_error(tok_dir("metaspace", "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"ab\"},"
                                           " \"model\": {}}"),
                      SCB_E_FORMAT, "metaspace/tokenizer.json", "replacement");
    expect_load_error(tok_dir("metaspace2", "{\"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"_\","
                                            " \"add_prefix_space\": false}, \"model\": {}}"),
                      SCB_E_FORMAT, "metaspace2/tokenizer.json", "prepend_scheme");
    expect_load_error(tok_dir("replace", "{\"normalizer\": {\"type\": \"Replace\", \"content\": \"_\"}, \"model\": {}}"),
                      SCB_E_FORMAT, "replace/tokenizer.json", "pattern");
    expect_load_error(tok_dir("strip", "{\"decoder\": {\"type\": \"Strip\", \"content\": \" \"}, \"model\": {}}"),
                      SCB_E_FORMAT, "strip/tokenizer.json", "Strip");
    expect_load_error(tok_dir("ctc", "{\"decoder\": {\"type\": \"CTC\"}, \"model\": {}}"),
                      SCB_E_UNSUPPORTED, "ctc/tokenizer.json", "CTC");
    expect_load_error(tok_dir("badmerge", TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1},"
                                          " \"merges\": [\"a b\"]}}"),
                      SCB_E_FORMAT, "badmerge/tokenizer.json", "merges[0]");
    expect_load_error(tok_dir("badregex", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"},"
                                          " \"behavior\": \"Isolated\"}, \"model\": {}}"),
                      SCB_E_UNSUPPORTED, "badregex/tokenizer.json", "(a");
    assert_int_equal(scb_alloc_live_bytes(), live0);
}

/* Every truncation of a valid file, and files with wrongly typed fields, fail cleanly. */
static void test_truncated_and_mistyped(void **st)
{
    (void)st;
    static const char full[] = TINY_HEAD TINY_MODEL;
    static const char *const mistyped[] = {
        TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}, \"merges\": []}}",
        TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}",
        TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [7]}}",
        TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}",
        TINY_HEAD "\"model\": {\"type\": 5, \"vocab\": {}, \"merges\": []}}",
        "{\"added_tokens\": 3, " TINY_MODEL,
        "{\"added_tokens\": [{\"content\": \"x\"}], " TINY_MODEL,
        "{\"pre_tokenizer\": {\"type\": \"Split\"}, " TINY_MODEL,
        "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": 1}, " TINY_MODEL,
        TINY_HEAD "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2000000000}, \"merges\": []}}",
        "[1, 2, 3]",
    };
    size_t live0 = scb_alloc_live_bytes();
    char *buf = scb_malloc(sizeof full);
    assert_non_null(buf);
    int checked = 0;
    for (size_t cut = 0; cut + 1 < sizeof full; cut += 7) {
        memcpy(buf, full, cut);
        buf[cut] = 0;
        struct scb_tokenizer *t = NULL;
        struct scb_ctx c = {0};
        int rc = scb_tokenizer_load(&t, tok_dir("cut", buf), &c);
        if (rc == SCB_OK) fail_msg("truncated at %zu but loaded", cut);
        assert_null(t);
        assert_non_null(strstr(c.msg, "cut/tokenizer.json"));
        checked++;
    }
    for (size_t k = 0; k < sizeof mistyped / sizeof mistyped[0]; k++) {
        struct scb_tokenizer *t = NULL;
        struct scb_ctx c = {0};
        int rc = scb_tokenizer_load(&t, tok_dir("typed", mistyped[k]), &c);
        if (rc == SCB_OK) fail_msg("mistyped file %zu loaded: %s", k, mistyped[k]);
        if (!strstr(c.msg, "typed/tokenizer.json")) fail_msg("message '%s' does not name the file", c.msg);
    }
    print_message("%d truncations, %zu mistyped files rejected\n", checked, sizeof mistyped / sizeof mistyped[0]);
    scb_free(buf);
    assert_int_equal(scb_alloc_live_bytes(), live0);
}

static void test_tiny_bpe(void **st)
{
    (void)st;
    const char *dir = tok_dir("tiny", TINY_HEAD TINY_MODEL);
    write_file(dir, "tokenizer_config.json", "{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"d\"}");
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_load(&t, dir, &c), SCB_OK);
    int32_t *ids = NULL;
    size_t n = 0;
    /* "abc": rank 0 "b c" first -> a|bc; no merge "a bc" exists, so [a, bc] */
    assert_int_equal(scb_tokenizer_encode(t, "abc", 3, 0, &ids, &n, &c), SCB_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0);
    assert_int_equal(ids[1], 4);
    scb_free(ids);
    /* "abd": only "a b" applies -> [ab, d]; the space is no token (dropped, as HF does without unk);
     * "<s>" is split out first; the post-processor puts <s> in front */
    assert_int_equal(scb_tokenizer_encode(t, "abd <s>ab", 9, SCB_TOK_ADD_SPECIAL, &ids, &n, &c), SCB_OK);
    int32_t want[] = {7, 3, 6, 7, 3};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    scb_free(ids);
    assert_int_equal(scb_tokenizer_count(t, "abd <s>ab", 9, SCB_TOK_NO_SPECIAL, &n, &c), SCB_OK);
    /* "<s>" is plain text now: pieces "abd" " " "<s>ab"; ' ', '<', 's', '>' have no token -> ab d ab */
    assert_int_equal(n, 3);
    char *text = NULL;
    size_t len = 0;
    int32_t dec[] = {7, 5, 99, 6};
    assert_int_equal(scb_tokenizer_decode(t, dec, 4, &text, &len, &c), SCB_OK);
    assert_string_equal(text, "<s>abcd");  /* unknown id 99 is skipped, as HF does */
    assert_int_equal(len, 7);
    scb_free(text);
    /* invalid UTF-8 input is an error with the byte offset */
    assert_int_equal(scb_tokenizer_encode(t, "ab\xC3(", 4, 0, &ids, &n, &c), SCB_E_INVAL);
    assert_null(ids);
    assert_non_null(strstr(c.msg, "offset 2"));
    assert_string_equal(scb_tokenizer_bos_token(t), "<s>");
    assert_int_equal(scb_tokenizer_bos_id(t), 7);
    assert_string_equal(scb_tokenizer_eos_token(t), "d");
    assert_int_equal(scb_tokenizer_eos_id(t), 6);
    assert_int_equal(scb_tokenizer_vocab_size(t), 8);
    scb_tokenizer_destroy(t);
}

static void test_alloc_failures(void **st)
{
    (void)st;
    const char *dir = tok_dir("tinyfail", TINY_HEAD TINY_MODEL);
    size_t live0 = scb_alloc_live_bytes();
    int ok = 0;
    for (long k = 1; k < 400 && !ok; k++) {
        struct scb_tokenizer *t = NULL;
        struct scb_ctx c = {0};
        scb_alloc_fail_after(k, 1);
        int rc = scb_tokenizer_load(&t, dir, &c);
        scb_alloc_fail_after(0, 0);
        if (rc == SCB_OK) {
            ok = 1;
            scb_tokenizer_destroy(t);
        } else {
            assert_int_equal(rc, SCB_E_NOMEM);
            assert_null(t);
        }
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
    assert_true(ok);
}

/* A tiny Llama-2-style SentencePiece BPE: Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer,
 * byte_fallback with only <0xC3> <0xA9>, fuse_unk, decoder Replace/ByteFallback/Fuse/Strip. */
#define SPM_TINY "{\"added_tokens\": [" \
    "{\"id\": 0, \"content\": \"<unk>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false," \
    " \"normalized\": false, \"special\": true}," \
    "{\"id\": 1, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false," \
    " \"normalized\": false, \"special\": true}," \
    "{\"id\": 2, \"content\": \"</s>\", \"single_word\": false, \"lstrip\": false, \"rstrip\": false," \
    " \"normalized\": false, \"special\": true}]," \
    " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": \"\u2581\"}," \
    " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}]}, \"pre_tokenizer\": null," \
    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}," \
    " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\"," \
    " \"ids\": [1], \"tokens\": [\"<s>\"]}}}," \
    " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\u2581\"}," \
    " \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \"," \
    " \"start\": 1, \"stop\": 0}]}," \
    " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true," \
    " \"vocab\": {\"<unk>\": 0, \"<s>\": 1, \"</s>\": 2, \"<0xC3>\": 3, \"<0xA9>\": 4, \"\u2581\": 5, \"a\": 6, \"b\": 7," \
    " \"\u2581a\": 8, \"\u2581ab\": 9}, \"merges\": [[\"\u2581\", \"a\"], [\"\u2581a\", \"b\"]]}}"

static void expect_ids(const struct scb_tokenizer *t, const char *text, int flags, const int32_t *want, size_t nw)
{
    int32_t *ids = NULL;
    size_t n = 0;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_encode(t, text, strlen(text), flags, &ids, &n, &c), SCB_OK);
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, nw * sizeof *want);
    scb_free(ids);
}

static void expect_text(const struct scb_tokenizer *t, const int32_t *ids, size_t n, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_decode(t, ids, n, &text, &len, &c), SCB_OK);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    scb_free(text);
}

/* Expected values follow HF's BPE::merge_word and decode_chain step by step (and are what
 * tokenizers 0.23.3 gives for this file). */
static void test_spm_tiny(void **st)
{
    (void)st;
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("spmtiny", SPM_TINY), &c), SCB_OK);
    /* "▁ab▁é▁z": ▁ a -> ▁a, ▁a b -> ▁ab; é has no token: its bytes <0xC3> <0xA9>; z has no
     * byte token either: <unk>; the post-processor puts <s> first */
    const int32_t w1[] = {1, 9, 5, 3, 4, 5, 0};
    expect_ids(t, "ab \xC3\xA9 z", SCB_TOK_ADD_SPECIAL, w1, 7);
    /* "▁zzé": z z fuse into one pending <unk>, which HF emits after the byte tokens */
    const int32_t w2[] = {5, 3, 4, 0};
    expect_ids(t, "zz\xC3\xA9", 0, w2, 4);
    /* the text after an added token is normalized on its own, so it gets the prefix too */
    const int32_t w3[] = {1, 9};
    expect_ids(t, "<s>ab", 0, w3, 2);
    expect_ids(t, "", 0, NULL, 0);
    /* decoding: ▁ -> space, byte runs -> UTF-8 (an invalid run: one U+FFFD per byte), one
     * leading space stripped from the fused text */
    expect_text(t, w1, 7, "<s> ab \xC3\xA9 <unk>");
    const int32_t d2[] = {9, 3};
    expect_text(t, d2, 2, "ab\xEF\xBF\xBD");
    const int32_t d3[] = {5, 5, 9, 3, 3};
    expect_text(t, d3, 5, "  ab\xEF\xBF\xBD\xEF\xBF\xBD");  /* "   ab" less one space */
    assert_int_equal(scb_tokenizer_vocab_size(t), 10);
    scb_tokenizer_destroy(t);
}

/* Strip cutting at both ends of each token, and no decoder (tokens joined with spaces); the
 * expected strings are what tokenizers 0.23.3 decodes for these files. */
#define STRIP_HEAD "{\"added_tokens\": [], \"normalizer\": {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}," \
    " \"content\": \"\u2581\"}, \"pre_tokenizer\": null, \"post_processor\": null,"
#define STRIP_MODEL " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\u2581\": 2," \
    " \"\u2581\u2581a\u2581\u2581\u2581\": 3, \"b\u2581\": 4}, \"merges\": []}}"

static void test_strip_and_no_decoder(void **st)
{
    (void)st;
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    const int32_t ids[] = {3, 4, 0};
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("strip2", STRIP_HEAD " \"decoder\": {\"type\": \"Sequence\","
                                                    " \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\":"
                                                    " \"\u2581\"}, \"content\": \" \"}, {\"type\": \"Strip\", \"content\":"
                                                    " \" \", \"start\": 1, \"stop\": 2}]}," STRIP_MODEL), &c), SCB_OK);
    expect_text(t, ids, 3, " a ba");  /* "  a   " -> " a ", "b " -> "b", "a" */
    /* no unk_token: 'c' is dropped; no merges: every space is its own token */
    const int32_t w[] = {2, 0, 2, 1, 2};
    expect_ids(t, " a b c", 0, w, 5);
    scb_tokenizer_destroy(t);
    t = NULL;
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("nodecoder", STRIP_HEAD " \"decoder\": null," STRIP_MODEL), &c),
                     SCB_OK);
    expect_text(t, ids, 3, "\u2581\u2581a\u2581\u2581\u2581 b\u2581 a");
    scb_tokenizer_destroy(t);
}

/* Metaspace split = a piece starts at every replacement character: with a merge across it
 * ("a▁" "b") the split decides the ids. Expected ids are tokenizers 0.23.3's for these files. */
#define MS_HEAD "{\"added_tokens\": [], \"normalizer\": null, \"post_processor\": null, \"decoder\": null," \
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\u2581\": 2, \"a\u2581\": 3, \"a\u2581b\": 4}," \
    " \"merges\": [[\"a\", \"\u2581\"], [\"a\u2581\", \"b\"]]}, \"pre_tokenizer\": {\"type\": \"Metaspace\"," \
    " \"replacement\": \"\u2581\", \"prepend_scheme\": \"never\", "

static void test_metaspace_split(void **st)
{
    (void)st;
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("mssplit", MS_HEAD "\"split\": true}}"), &c), SCB_OK);
    const int32_t w1[] = {0, 2, 1}, w2[] = {0, 2, 2, 1}, w3[] = {0, 1, 2, 1};
    expect_ids(t, "a b", 0, w1, 3);
    expect_ids(t, "a  b", 0, w2, 4);
    expect_ids(t, "ab\u2581b", 0, w3, 4);
    scb_tokenizer_destroy(t);
    t = NULL;
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("msnosplit", MS_HEAD "\"split\": false}}"), &c), SCB_OK);
    const int32_t w4[] = {4};
    expect_ids(t, "a b", 0, w4, 1);
    scb_tokenizer_destroy(t);
}

/* byte_fallback on a byte-level tokenizer: the mapped character of byte 0 (U+0100) is not in the
 * vocab, so it becomes the byte tokens of its UTF-8 (two per input byte). Expected ids and text
 * are tokenizers 0.23.3's for this file. */
static void test_bytelevel_fallback(void **st)
{
    (void)st;
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    assert_int_equal(scb_tokenizer_load(&t, tok_dir("blfb", "{\"added_tokens\": [], \"normalizer\": null,"
        " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false},"
        " \"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\","
        " \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"<0xC4>\": 1, \"<0x80>\": 2}, \"merges\": []}}"), &c), SCB_OK);
    const int32_t w[] = {1, 2, 0, 1, 2, 1, 2};
    expect_ids(t, "\0a\0\0", 0, NULL, 0);  /* strlen: empty */
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(scb_tokenizer_encode(t, "\0a\0\0", 4, 0, &ids, &n, &c), SCB_OK);
    assert_int_equal(n, 7);
    assert_memory_equal(ids, w, sizeof w);
    scb_free(ids);
    expect_text(t, w, 7, "<0xC4><0x80>a<0xC4><0x80><0xC4><0x80>");
    /* a long word: twice as many symbols as bytes */
    char zeros[300] = {0};
    assert_int_equal(scb_tokenizer_encode(t, zeros, sizeof zeros, 0, &ids, &n, &c), SCB_OK);
    assert_int_equal(n, 2 * sizeof zeros);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], 1 + (int32_t)(i % 2));
    scb_free(ids);
    scb_tokenizer_destroy(t);
}

/* Allocation failures anywhere in loading, encoding and decoding the SentencePiece pipeline give
 * SCB_E_NOMEM and leak nothing. */
static void test_spm_alloc_failures(void **st)
{
    (void)st;
    const char *dir = tok_dir("spmfail", SPM_TINY);
    size_t live0 = scb_alloc_live_bytes();
    int ok = 0;
    for (long k = 1; k < 2000 && !ok; k++) {
        struct scb_tokenizer *t = NULL;
        struct scb_ctx c = {0};
        int32_t *ids = NULL;
        char *text = NULL;
        size_t n = 0, len = 0;
        scb_alloc_fail_after(k, 1);
        int rc = scb_tokenizer_load(&t, dir, &c);
        if (rc == SCB_OK) rc = scb_tokenizer_encode(t, "ab \xC3\xA9 zz<s> a", 13, SCB_TOK_ADD_SPECIAL, &ids, &n, &c);
        if (rc == SCB_OK) rc = scb_tokenizer_decode(t, ids, n, &text, &len, &c);
        scb_alloc_fail_after(0, 0);
        if (rc == SCB_OK) {
            ok = 1;
            assert_string_equal(text, "<s> ab \xC3\xA9 <unk><s>  a");  /* " a" -> "▁▁a" */
        } else {
            assert_int_equal(rc, SCB_E_NOMEM);
        }
        scb_free(ids);
        scb_free(text);
        scb_tokenizer_destroy(t);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
    assert_true(ok);
}

static const char *shared_dir(void)
{
    const char *s = getenv("SCB_SHARED_DIR");
    static char p[1024];
    if (!s) return NULL;
    snprintf(p, sizeof p, "%s/tokenizers/llama3/tokenizer.json", s);
    return scb_file_exists(p) ? s : NULL;
}

static struct scb_tokenizer *load_real(const char *name)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tokenizers/%s", shared_dir(), name);
    struct scb_tokenizer *t = NULL;
    struct scb_ctx c = {0};
    double t0 = scb_now_ms();
    int rc = scb_tokenizer_load(&t, dir, &c);
    if (rc) fail_msg("loading %s: %s", dir, scb_errmsg(&c));
    print_message("loaded %s in %.0f ms\n", name, scb_now_ms() - t0);
    return t;
}

static void check_roundtrip_ids(const struct scb_tokenizer *t)
{
    /* every id's string maps back to the id */
    size_t v = scb_tokenizer_vocab_size(t);
    for (size_t id = 0; id < v; id += 97) {
        const char *s = scb_tokenizer_token_str(t, (int32_t)id);
        assert_non_null(s);
        assert_int_equal(scb_tokenizer_token_id(t, s), (int32_t)id);
    }
    assert_null(scb_tokenizer_token_str(t, (int32_t)v + 1000));
    assert_null(scb_tokenizer_token_str(t, -1));
    assert_int_equal(scb_tokenizer_token_id(t, "no such token \x01\x02"), -1);
}

static void test_real_llama3(void **st)
{
    (void)st;
    if (!shared_dir()) skip();
    struct scb_tokenizer *t = load_real("llama3");
    /* README: 128,000 BPE tokens + 256 special tokens; tokenizer_config.json: bos/eos */
    assert_int_equal(scb_tokenizer_vocab_size(t), 128256);
    assert_string_equal(scb_tokenizer_bos_token(t), "<|begin_of_text|>");
    assert_int_equal(scb_tokenizer_bos_id(t), 128000);
    assert_string_equal(scb_tokenizer_eos_token(t), "<|end_of_text|>");
    assert_int_equal(scb_tokenizer_eos_id(t), 128001);
    assert_int_equal(scb_tokenizer_token_id(t, "<|eot_id|>"), 128009);
    assert_string_equal(scb_tokenizer_token_str(t, 128009), "<|eot_id|>");
    check_roundtrip_ids(t);
    assert_true(scb_tokenizer_hash(t) != 0);
    scb_tokenizer_destroy(t);
}

static void test_real_qwen3(void **st)
{
    (void)st;
    if (!shared_dir()) skip();
    struct scb_tokenizer *t = load_real("qwen3");
    /* README: 151,643 + 26 added; tokenizer_config.json: bos_token null, eos <|im_end|> */
    assert_int_equal(scb_tokenizer_vocab_size(t), 151669);
    assert_null(scb_tokenizer_bos_token(t));
    assert_int_equal(scb_tokenizer_bos_id(t), -1);
    assert_string_equal(scb_tokenizer_eos_token(t), "<|im_end|>");
    assert_int_equal(scb_tokenizer_eos_id(t), 151645);
    check_roundtrip_ids(t);
    scb_tokenizer_destroy(t);
}

struct enc_job {
    const struct scb_tokenizer *t;
    const char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    int rc;
};

static void *enc_thread(void *p)
{
    struct enc_job *j = p;
    struct scb_ctx c = {0};
    for (int k = 0; k < 3 && !j->rc; k++) {
        scb_free(j->ids);
        j->ids = NULL;
        j->rc = scb_tokenizer_encode(j->t, j->text, j->len, 0, &j->ids, &j->n, &c);
    }
    return NULL;
}

static void test_threads(void **st)
{
    (void)st;
    if (!shared_dir()) skip();
    struct scb_tokenizer *t = load_real("qwen3");
    const char *parts[] = {"Hello, world! ", "你好，世界。", "e\xCC\x81 caf\xC3\xA9 ", "12345 ", "<|im_start|>",
                           "  \n\t", "I'LL we'Re ", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "};
    struct scb_buf b = {0};
    struct scb_rng r;
    uint64_t seed = 20241126;
    print_message("seed %llu\n", (unsigned long long)seed);
    scb_rng_seed(&r, seed);
    while (b.len < 60000) assert_int_equal(scb_buf_puts(&b, parts[scb_rng_below(&r, 8)]), SCB_OK);
    struct enc_job ref = {t, b.data, b.len, NULL, 0, 0}, j1 = ref, j2 = ref;
    enc_thread(&ref);
    assert_int_equal(ref.rc, SCB_OK);
    assert_true(ref.n > 1000);
    pthread_t th1, th2;
    assert_int_equal(pthread_create(&th1, NULL, enc_thread, &j1), 0);
    assert_int_equal(pthread_create(&th2, NULL, enc_thread, &j2), 0);
    pthread_join(th1, NULL);
    pthread_join(th2, NULL);
    assert_int_equal(j1.rc, SCB_OK);
    assert_int_equal(j2.rc, SCB_OK);
    assert_int_equal(j1.n, ref.n);
    assert_int_equal(j2.n, ref.n);
    assert_memory_equal(j1.ids, ref.ids, ref.n * sizeof *ref.ids);
    assert_memory_equal(j2.ids, ref.ids, ref.n * sizeof *ref.ids);
    scb_free(ref.ids);
    scb_free(j1.ids);
    scb_free(j2.ids);
    scb_buf_fini(&b);
    scb_tokenizer_destroy(t);
}

static int setup(void **st)
{
    (void)st;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/scb_test_tokenizer_XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **st)
{
    (void)st;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_truncated_and_mistyped),
        cmocka_unit_test(test_tiny_bpe),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_spm_tiny),
        cmocka_unit_test(test_spm_alloc_failures),
        cmocka_unit_test(test_strip_and_no_decoder),
        cmocka_unit_test(test_metaspace_split),
        cmocka_unit_test(test_bytelevel_fallback),
        cmocka_unit_test(test_real_llama3),
        cmocka_unit_test(test_real_qwen3),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
