/* cli_chat_template.c — `scbench chat-template`: a JSON list of {role, content} messages
 * rendered through a model's own chat template (or a template file), printed exactly as
 * transformers' apply_chat_template(messages, tokenize=False) returns it, with no newline
 * added. */
#include "harness/cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness/chat_template.h"
#include "kernels/alloc.h"
#include "kernels/util.h"

static const char *const CMD = "chat-template";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench chat-template --model DIR --messages FILE.json [options]\n"
        "       scbench chat-template --template FILE.jinja --messages FILE.json [options]\n\n"
        "Render a conversation through a model's own chat template (DIR/chat_template.jinja,\n"
        "DIR/chat_template.json or the chat_template of DIR/tokenizer_config.json), byte-identical\n"
        "to transformers' apply_chat_template(messages, tokenize=False). Prints the string with\n"
        "no newline added.\n\n"
        "options:\n"
        "  --model DIR              model or tokenizer directory (template and special tokens)\n"
        "  --messages FILE.json     a JSON list of {\"role\": ..., \"content\": ...} objects (\"-\" = stdin)\n"
        "  --add-generation-prompt  end with the header that opens the assistant's reply\n"
        "  --date YYYY-MM-DD        the date strftime_now() and date_string see (default: today)\n"
        "  --template FILE          render this Jinja template file instead of the model's;\n"
        "                           bos/eos tokens still come from --model when given\n"
        "  -h, --help               this help\n");
}

static int parse_date(const char *s, long long *out)
{
    int y, m, d;
    char extra;
    if (sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &extra) != 3 || y < 1970 || m < 1 || m > 12 || d < 1 || d > 31) return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900; tm.tm_mon = m - 1; tm.tm_mday = d; tm.tm_hour = 12;
    time_t t = timegm(&tm);
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != m - 1) return -1;   /* e.g. 2023-02-30 */
    *out = (long long)t;
    return 0;
}

/* messages file -> msgs array borrowing strings from *json */
static int load_messages(const char *path, cJSON **json, struct scb_chat_msg **msgs, size_t *n, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *txt = NULL;
    *json = NULL; *msgs = NULL; *n = 0;
    if (!strcmp(path, "-")) {
        struct scb_buf b = {0};
        char chunk[65536];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            if (scb_buf_append(&b, chunk, k) < 0) { scb_buf_fini(&b); return scb_err(ctx, SCB_E_NOMEM, "out of memory"); }
        const char *end = NULL;
        *json = cJSON_ParseWithLengthOpts(b.data ? b.data : "", b.len, &end, 0);
        if (!*json) rc = scb_err(ctx, SCB_E_FORMAT, "<stdin>: invalid JSON near byte %zu", end && b.data ? (size_t)(end - b.data) : 0);
        scb_buf_fini(&b);
        if (rc < 0) return rc;
        path = "<stdin>";
    } else {
        SCB_TRY(scb_json_load(path, json, ctx));
    }
    if (!cJSON_IsArray(*json)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: expected a JSON list of messages", path); goto out; }
    int cnt = cJSON_GetArraySize(*json);
    if (cnt == 0) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: the message list is empty", path); goto out; }
    *msgs = scb_calloc((size_t)cnt, sizeof **msgs);
    if (!*msgs) { rc = scb_err(ctx, SCB_E_NOMEM, "out of memory"); goto out; }
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, *json) {
        if (!cJSON_IsObject(it)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: message %d is not an object", path, i); goto out; }
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(r)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: message %d: \"role\" must be a string", path, i); goto out; }
        if (!cJSON_IsString(c)) { rc = scb_err(ctx, SCB_E_FORMAT, "%s: message %d: \"content\" must be a string", path, i); goto out; }
        (*msgs)[i].role = r->valuestring;
        (*msgs)[i].content = c->valuestring;
        i++;
    }
    *n = (size_t)cnt;
out:
    scb_free(txt);
    if (rc < 0) { scb_free(*msgs); *msgs = NULL; cJSON_Delete(*json); *json = NULL; }
    return rc;
}

/* bos/eos of DIR/tokenizer_config.json for --template, through a throwaway load */
static int template_with_model_tokens(struct scb_chat_template **out, const char *src, const char *model_dir, struct scb_ctx *ctx)
{
    int rc = SCB_OK;
    char *cfg_path = NULL;
    cJSON *cfg = NULL;
    const char *tok[2] = {NULL, NULL};
    static const char *const names[2] = {"bos_token", "eos_token"};
    if (model_dir) {
        cfg_path = scb_path_join(model_dir, "tokenizer_config.json");
        if (!cfg_path) return scb_err(ctx, SCB_E_NOMEM, "out of memory");
        SCB_TRY(scb_json_load(cfg_path, &cfg, ctx));
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, names[i]);
            if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
            if (cJSON_IsString(v)) tok[i] = v->valuestring;
        }
    }
    SCB_TRY(scb_chat_template_from_string(out, src, tok[0], tok[1], ctx));
out:
    cJSON_Delete(cfg);
    scb_free(cfg_path);
    return rc;
}

int scb_cmd_chat_template(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"messages", required_argument, NULL, 'M'},
        {"add-generation-prompt", no_argument, NULL, 'g'},
        {"date", required_argument, NULL, 'd'},
        {"template", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *messages = NULL, *tpath = NULL;
    int gen = 0, c, status = 0;
    long long when = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'M': messages = optarg; break;
        case 'g': gen = 1; break;
        case 't': tpath = optarg; break;
        case 'd':
            if (parse_date(optarg, &when) < 0) return scb_cli_usage_error(CMD, "--date expects YYYY-MM-DD, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default:
            return scb_cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!messages) return scb_cli_usage_error(CMD, "--messages FILE.json is required");
    if (!model && !tpath) return scb_cli_usage_error(CMD, "--model DIR (or --template FILE) is required");

    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    struct scb_chat_msg *msgs = NULL;
    cJSON *json = NULL;
    char *src = NULL, *out = NULL;
    size_t n = 0, len = 0;
    int rc = SCB_OK;
    if (tpath) {
        SCB_TRY(scb_file_read(tpath, &src, &len, &ctx));
        if (strlen(src) != len) { rc = scb_err(&ctx, SCB_E_FORMAT, "%s: contains a NUL byte", tpath); goto out; }
        rc = template_with_model_tokens(&t, src, model, &ctx);
        if (rc < 0) { scb_err_prefix(&ctx, "%s: ", tpath); goto out; }
    } else {
        SCB_TRY(scb_chat_template_load(&t, model, &ctx));
    }
    SCB_TRY(load_messages(messages, &json, &msgs, &n, &ctx));
    scb_chat_template_set_time(t, when);
    rc = scb_chat_template_render(t, msgs, n, gen, &out, &ctx);
    if (rc < 0) {
        if (tpath) scb_err_prefix(&ctx, "%s: ", tpath);
        goto out;
    }
    if (fwrite(out, 1, strlen(out), stdout) != strlen(out) || fflush(stdout) != 0)
        rc = scb_err(&ctx, SCB_E_IO, "writing the rendered template to stdout failed");
out:
    if (rc < 0) status = scb_cli_fail(CMD, &ctx);
    scb_free(out);
    scb_free(src);
    scb_free(msgs);
    cJSON_Delete(json);
    scb_chat_template_destroy(t);
    return status;
}
