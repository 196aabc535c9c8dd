/* test_jinja.c — the Jinja subset interpreter (harness/jinja.h) and the chat-template loader
 * (harness/chat_template.h). Expected outputs come from python jinja2 in transformers'
 * configuration, through tools/gen_jinja_cases.py (tests/test_jinja_cases.h): whitespace
 * control, statements, expressions, filters, tests, methods, output formatting; errors
 * (syntax error with its line, unsupported filter/tag/test, raise_exception's message).
 * Then loading templates from model directories, syntax errors naming tokenizer_config.json
 * and the line, and allocation failures at every step without a crash or a leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "harness/chat_template.h"
#include "harness/jinja.h"
#include "kernels/alloc.h"
#include "kernels/util.h"
#include "test_jinja_cases.h"

static int render(const char *tmpl, const char *vars_json, long long now, char **out, struct scb_ctx *ctx)
{
    struct scb_jinja_tmpl *t = NULL;
    cJSON *vars = cJSON_Parse(vars_json);
    assert_non_null(vars);
    int rc = scb_jinja_compile(&t, tmpl, strlen(tmpl), ctx);
    if (rc == SCB_OK) rc = scb_jinja_render(t, vars, now, out, NULL, ctx);
    scb_jinja_destroy(t);
    cJSON_Delete(vars);
    return rc;
}

static void test_cases_match_jinja2(void **state)
{
    (void)state;
    size_t n = sizeof jinja_cases / sizeof jinja_cases[0], bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct scb_ctx ctx = {0};
        char *out = NULL;
        int rc = render(jinja_cases[i].tmpl, jinja_cases[i].vars, JINJA_FIXED_TIME, &out, &ctx);
        if (rc != SCB_OK) {
            printf("case %zu: error %s\n  template: %s\n", i, scb_errmsg(&ctx), jinja_cases[i].tmpl);
            bad++;
        } else if (strcmp(out, jinja_cases[i].expect)) {
            printf("case %zu: template %s\n  got:    [%s]\n  jinja2: [%s]\n", i, jinja_cases[i].tmpl, out, jinja_cases[i].expect);
            bad++;
        }
        scb_free(out);
    }
    printf("%zu/%zu templates render as jinja2 does\n", n - bad, n);
    assert_int_equal(bad, 0);
}

static void test_errors_name_line_and_construct(void **state)
{
    (void)state;
    size_t n = sizeof jinja_errors / sizeof jinja_errors[0];
    for (size_t i = 0; i < n; i++) {
        struct scb_ctx ctx = {0};
        char *out = NULL, want_line[32];
        int rc = render(jinja_errors[i].tmpl, jinja_errors[i].vars, 0, &out, &ctx);
        snprintf(want_line, sizeof want_line, "line %d:", jinja_errors[i].line);
        if (rc == SCB_OK || !strstr(scb_errmsg(&ctx), jinja_errors[i].msg) || !strstr(scb_errmsg(&ctx), want_line))
            printf("error case %zu: rc=%d msg [%s], want [%s] at %s\n", i, rc, scb_errmsg(&ctx), jinja_errors[i].msg, want_line);
        assert_true(rc < 0);
        assert_null(out);
        assert_non_null(strstr(scb_errmsg(&ctx), jinja_errors[i].msg));
        assert_non_null(strstr(scb_errmsg(&ctx), want_line));
    }
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/scb_jinja_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return scb_strdup(d);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = scb_path_join(dir, name);
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_file_write(p, text, strlen(text), &ctx), SCB_OK);
    scb_free(p);
}

static void remove_dir(char *dir, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        char *p = scb_path_join(dir, names[i]);
        unlink(p);
        scb_free(p);
    }
    rmdir(dir);
    scb_free(dir);
}

static const struct scb_chat_msg conv[] = {
    {"system", ""}, {"assistant", "The gold answer."}, {"user", "Next?"},
};

static void test_load_from_tokenizer_config(void **state)
{
    (void)state;
    static const char *const names[] = {"tokenizer_config.json", NULL};
    char *dir = make_dir();
    /* a list of named templates with "default"; bos as an AddedToken object */
    write_file(dir, "tokenizer_config.json",
               "{\"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}, \"eos_token\": \"</s>\",\n"
               " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"TOOLS\"},\n"
               "   {\"name\": \"default\", \"template\": \"{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}{{ tools }}\"}]}");
    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    char *out = NULL;
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_OK);
    assert_int_equal(scb_chat_template_render(t, conv, 3, 1, &out, &ctx), SCB_OK);
    /* tools is None, as transformers passes it */
    assert_string_equal(out, "<s>[system]</s>[assistant]The gold answer.</s>[user]Next?</s>[assistant]None");
    scb_free(out);
    assert_int_equal(scb_chat_template_render(t, conv, 0, 1, &out, &ctx), SCB_E_INVAL);
    scb_chat_template_destroy(t);
    remove_dir(dir, names);
}

static void test_chat_template_jinja_wins(void **state)
{
    (void)state;
    static const char *const names[] = {"tokenizer_config.json", "chat_template.jinja", NULL};
    char *dir = make_dir();
    write_file(dir, "tokenizer_config.json", "{\"eos_token\": \"<|im_end|>\", \"chat_template\": \"OLD\"}");
    write_file(dir, "chat_template.jinja", "{% for m in messages %}{{ m.content }}{{ eos_token }}\n{% endfor %}\n");
    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    char *out = NULL;
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_OK);
    assert_int_equal(scb_chat_template_render(t, conv + 1, 2, 0, &out, &ctx), SCB_OK);
    assert_string_equal(out, "The gold answer.<|im_end|>\nNext?<|im_end|>\n");
    scb_free(out);
    scb_chat_template_destroy(t);
    remove_dir(dir, names);
}

static void test_syntax_error_names_config_and_line(void **state)
{
    (void)state;
    static const char *const names[] = {"tokenizer_config.json", NULL};
    char *dir = make_dir();
    write_file(dir, "tokenizer_config.json",
               "{\"chat_template\": \"{% for m in messages %}\\n{{ m.content }}\\n{% if m.role %}x{% endfor %}\"}");
    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_E_FORMAT);
    assert_null(t);
    printf("message: %s\n", scb_errmsg(&ctx));
    assert_non_null(strstr(scb_errmsg(&ctx), "tokenizer_config.json: chat template line 3:"));
    assert_non_null(strstr(scb_errmsg(&ctx), "endfor"));
    /* a config without a template, and a directory without a config */
    write_file(dir, "tokenizer_config.json", "{\"bos_token\": \"<s>\"}");
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_E_NOTFOUND);
    assert_non_null(strstr(scb_errmsg(&ctx), "no \"chat_template\""));
    write_file(dir, "tokenizer_config.json", "{\"chat_template\": 5}");
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_E_FORMAT);
    write_file(dir, "tokenizer_config.json", "{\"chat_template\": ");
    assert_int_equal(scb_chat_template_load(&t, dir, &ctx), SCB_E_FORMAT);
    assert_non_null(strstr(scb_errmsg(&ctx), "tokenizer_config.json"));
    remove_dir(dir, names);
    assert_true(scb_chat_template_load(&t, "/nonexistent/dir", &ctx) < 0);
}

static void test_raise_exception_surfaces_message(void **state)
{
    (void)state;
    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    char *out = NULL;
    assert_int_equal(scb_chat_template_from_string(&t,
        "{% for m in messages %}{% if m.role == 'system' %}\n{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}",
        "<s>", "</s>", &ctx), SCB_OK);
    assert_int_equal(scb_chat_template_render(t, conv, 3, 0, &out, &ctx), SCB_E_INVAL);
    assert_null(out);
    assert_non_null(strstr(scb_errmsg(&ctx), "line 2: raise_exception: System role not supported"));
    scb_chat_template_destroy(t);
}

static void test_fixed_date(void **state)
{
    (void)state;
    struct scb_ctx ctx = {0};
    struct scb_chat_template *t = NULL;
    char *out = NULL;
    assert_int_equal(scb_chat_template_from_string(&t, "{{ strftime_now('%d %B %Y') }}|{{ date_string }}", NULL, NULL, &ctx), SCB_OK);
    scb_chat_template_set_time(t, JINJA_FIXED_TIME);   /* 2024-09-15 12:00 UTC */
    assert_int_equal(scb_chat_template_render(t, conv, 1, 0, &out, &ctx), SCB_OK);
    assert_string_equal(out, "15 September 2024|15 Sep 2024");
    scb_free(out);
    scb_chat_template_destroy(t);
}

/* every allocation failing in turn: an error, never a crash or a leak */
static void test_allocation_failures(void **state)
{
    (void)state;
    const char *src = "{% set ns = namespace(x=[]) %}{% for m in messages %}{{ m.role | upper }}:{{ m.content | trim | tojson }}"
                      "{% set ns.x = ns.x + [loop.index] %}{% endfor %}{{ ns.x }}{{ messages[::-1] | map(attribute='role') | join(',') }}";
    size_t live0 = scb_alloc_live_bytes();
    int ok = 0;
    for (long k = 1; k < 400 && !ok; k++) {
        struct scb_ctx ctx = {0};
        struct scb_chat_template *t = NULL;
        char *out = NULL;
        scb_alloc_fail_after(k, 0);
        int rc = scb_chat_template_from_string(&t, src, "<s>", "</s>", &ctx);
        if (rc == SCB_OK) rc = scb_chat_template_render(t, conv, 3, 1, &out, &ctx);
        scb_alloc_fail_after(0, 0);
        if (rc == SCB_OK) { ok = 1; assert_non_null(out); }
        else assert_null(out);
        scb_free(out);
        scb_chat_template_destroy(t);
        assert_int_equal(scb_alloc_live_bytes(), live0);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_match_jinja2),
        cmocka_unit_test(test_errors_name_line_and_construct),
        cmocka_unit_test(test_load_from_tokenizer_config),
        cmocka_unit_test(test_chat_template_jinja_wins),
        cmocka_unit_test(test_syntax_error_names_config_and_line),
        cmocka_unit_test(test_raise_exception_surfaces_message),
        cmocka_unit_test(test_fixed_date),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
