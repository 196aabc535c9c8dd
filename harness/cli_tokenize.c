/* cli_tokenize.c — `scbench tokenize`: text -> token ids (or ids -> text) with the tokenizer
 * files of a model directory (tokenizer.json, tokenizer_config.json); nothing else is loaded.
 * Single mode reads TEXT or all of stdin and prints one line; batch mode (--jsonl) reads one
 * JSON value per line and prints one line per input line, which is what the parity tests use. */
#include "harness/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness/tokenizer.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static const char CMD[] = "tokenize";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench tokenize --model DIR [--bos] [--no-special] [--count] [TEXT]\n"
        "       scbench tokenize --model DIR --decode [IDS]\n"
        "       scbench tokenize --model DIR [--bos] [--no-special] [--count] [--decode] --jsonl FILE\n"
        "\n"
        "Encode TEXT (or, when absent, all of standard input) with DIR/tokenizer.json and print the\n"
        "token ids space-separated on one line. Only the tokenizer files of DIR are read.\n"
        "Put -- before a TEXT that starts with '-'.\n"
        "\n"
        "  --model DIR     model directory holding tokenizer.json (and tokenizer_config.json)\n"
        "  --bos           add what the post-processor adds (e.g. Llama-3.1's <|begin_of_text|>)\n"
        "  --no-special    encode special-token text as plain text (HF encode_special_tokens)\n"
        "  --count         print only the number of tokens\n"
        "  --decode        read ids (space- or comma-separated) and print the text exactly, with no\n"
        "                  newline added\n"
        "  --jsonl FILE    batch: each line of FILE ('-' = stdin) is a JSON string (a JSON list of\n"
        "                  ids with --decode); prints one line per input line (ids, a count, or the\n"
        "                  decoded text as a JSON string)\n"
        "  -h, --help      this text\n");
}

static int read_stdin(char **out, size_t *len, struct scb_ctx *ctx)
{
    struct scb_buf b = {0};
    char chunk[65536];
    size_t n;
    int rc = SCB_OK;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if ((rc = scb_buf_append(&b, chunk, n))) break;
    if (!rc && ferror(stdin)) rc = scb_err(ctx, SCB_E_IO, "standard input: read error");
    if (!rc && !b.data) rc = scb_buf_append(&b, "", 0);
    if (rc) { scb_buf_fini(&b); return rc; }
    *len = b.len;
    *out = scb_buf_steal(&b);
    return SCB_OK;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = (c >= '0' && c <= '9') ? (unsigned)(c - '0') : (c >= 'a' && c <= 'f') ? (unsigned)(c - 'a' + 10)
                   : (c >= 'A' && c <= 'F') ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* Decode one JSON string literal spanning the whole line s[0..n) (surrounding blanks allowed)
 * into b; unlike cJSON this keeps U+0000. Returns SCB_E_FORMAT with the column on error. */
static int json_string(const char *s, size_t n, struct scb_buf *b, const char *file, size_t line,
                       struct scb_ctx *ctx)
{
    size_t i = 0;
    int rc = SCB_OK;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    if (i >= n || s[i] != '"') goto bad;
    for (i++; i < n && s[i] != '"'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20) goto bad;
        if (c != '\\') { SCB_TRY(scb_buf_putc(b, (char)c)); continue; }
        if (++i >= n) goto bad;
        char e = s[i], o;
        switch (e) {
        case '"': o = '"'; break;
        case '\\': o = '\\'; break;
        case '/': o = '/'; break;
        case 'b': o = '\b'; break;
        case 'f': o = '\f'; break;
        case 'n': o = '\n'; break;
        case 'r': o = '\r'; break;
        case 't': o = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (i + 4 >= n || !hex4(s + i + 1, &cp)) goto bad;
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' || !hex4(s + i + 3, &lo) || lo < 0xDC00
                    || lo > 0xDFFF)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            char u[4];
            SCB_TRY(scb_buf_append(b, u, (size_t)scb_utf8_encode(cp, u)));
            continue;
        }
        default: goto bad;
        }
        SCB_TRY(scb_buf_putc(b, o));
    }
    if (i >= n) goto bad;
    for (i++; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') goto bad;
    if (!b->data) SCB_TRY(scb_buf_append(b, "", 0));
    return SCB_OK;
bad:
    return scb_err(ctx, SCB_E_FORMAT, "%s:%zu: column %zu: expected one JSON string per line (lone surrogates "
                   "are not allowed)", file, line, i + 1);
out:
    return rc;
}

/* Parse ids separated by blanks or commas, optionally inside [ ]. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, const char *where, struct scb_ctx *ctx)
{
    int32_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = SCB_OK;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ',' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            rc = scb_err(ctx, SCB_E_INVAL, "%s: '%.20s' is not a token id", where, p);
            goto out;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 256;
            int32_t *nv = scb_realloc(v, cap * sizeof *nv);
            if (!nv) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
            v = nv;
        }
        v[cnt++] = (int32_t)x;
        p = end;
    }
    *ids = v;
    *n = cnt;
    v = NULL;
out:
    scb_free(v);
    return rc;
}

static void print_json_string(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { fputc('\\', f); fputc(c, f); }
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\r') fputs("\\r", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void print_ids(const int32_t *ids, size_t n, int count)
{
    if (count) { printf("%zu\n", n); return; }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
}

/* One input line in batch mode. */
static int batch_line(const struct scb_tokenizer *t, const char *s, size_t n, int flags, int count, int decode,
                      const char *file, size_t line, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    struct scb_buf b = {0};
    int32_t *ids = NULL;
    size_t nid = 0;
    char *text = NULL;
    if (decode) {
        SCB_TRY(scb_buf_append(&b, s, n));
        SCB_TRY(parse_ids(b.data ? b.data : "", &ids, &nid, "ids", ctx));
        size_t tl;
        SCB_TRY(scb_tokenizer_decode(t, ids, nid, &text, &tl, ctx));
        print_json_string(stdout, text, tl);
        putchar('\n');
    } else {
        SCB_TRY(json_string(s, n, &b, file, line, ctx));
        SCB_TRY(scb_tokenizer_encode(t, b.data, b.len, flags, &ids, &nid, ctx));
        print_ids(ids, nid, count);
    }
out:
    if (rc) scb_err_prefix(ctx, "%s:%zu: ", file, line);
    scb_free(text);
    scb_free(ids);
    scb_buf_fini(&b);
    return rc;
}

int scb_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"bos", no_argument, NULL, 'b'},
        {"no-special", no_argument, NULL, 'n'},  {"count", no_argument, NULL, 'c'},
        {"decode", no_argument, NULL, 'd'},      {"jsonl", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    const char *model = NULL, *jsonl = NULL;
    int flags = 0, count = 0, decode = 0, c, status = 0, rc = SCB_OK;
    struct scb_ctx ctx = {0};
    struct scb_tokenizer *t = NULL;
    char *input = NULL, *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, nid = 0;
    FILE *f = NULL;

    optind = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'b': flags |= SCB_TOK_ADD_SPECIAL; break;
        case 'n': flags |= SCB_TOK_NO_SPECIAL; break;
        case 'c': count = 1; break;
        case 'd': decode = 1; break;
        case 'j': jsonl = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error(CMD, "unknown option");
        }
    }
    if (!model) return scb_cli_usage_error(CMD, "--model DIR is required");
    if (argc - optind > 1) return scb_cli_usage_error(CMD, "expected at most one TEXT argument, got %d", argc - optind);
    if (jsonl && optind < argc) return scb_cli_usage_error(CMD, "--jsonl and a TEXT argument exclude each other");
    if (decode && count) return scb_cli_usage_error(CMD, "--decode and --count exclude each other");

    SCB_TRY(scb_tokenizer_load(&t, model, &ctx));
    if (jsonl) {
        f = strcmp(jsonl, "-") ? fopen(jsonl, "rb") : stdin;
        if (!f) { rc = scb_err(&ctx, SCB_E_IO, "%s: %s", jsonl, strerror(errno)); goto out; }
        char *line = NULL;
        size_t cap = 0, lineno = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, f)) >= 0) {
            lineno++;
            size_t l = (size_t)n;
            if (l && line[l - 1] == '\n') l--;
            rc = batch_line(t, line, l, flags, count, decode, jsonl, lineno, &ctx);
            if (rc) break;
        }
        free(line);  /* getline allocates with libc malloc */
        if (!rc && ferror(f)) rc = scb_err(&ctx, SCB_E_IO, "%s: read error", jsonl);
        goto out;
    }
    if (optind < argc) {
        input = scb_strdup(argv[optind]);
        if (!input) { rc = scb_err(&ctx, SCB_E_NOMEM, "out of memory"); goto out; }
        len = strlen(input);
    } else {
        SCB_TRY(read_stdin(&input, &len, &ctx));
    }
    if (decode) {
        SCB_TRY(parse_ids(input, &ids, &nid, optind < argc ? "TEXT" : "standard input", &ctx));
        size_t tl;
        SCB_TRY(scb_tokenizer_decode(t, ids, nid, &text, &tl, &ctx));
        fwrite(text, 1, tl, stdout);
    } else {
        SCB_TRY(scb_tokenizer_encode(t, input, len, flags, &ids, &nid, &ctx));
        print_ids(ids, nid, count);
    }
out:
    if (fflush(stdout) && !rc) rc = scb_err(&ctx, SCB_E_IO, "standard output: %s", strerror(errno));
    if (rc) status = scb_cli_fail(CMD, &ctx);
    if (f && f != stdin) fclose(f);
    scb_free(text);
    scb_free(ids);
    scb_free(input);
    scb_tokenizer_destroy(t);
    return status;
}
