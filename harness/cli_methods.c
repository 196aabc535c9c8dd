/* cli_methods.c — `scbench methods`: lists every long-context method with its lifecycle stage,
 * axis, options (type, default, help), or resolves a method spec to its canonical form. */
#include "harness/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "methods/method.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench methods [--json] [--resolve SPEC]\n"
        "\n"
        "Lists every long-context method: its SCBench lifecycle stage (1 generation, 2 compression,\n"
        "3 retrieval, 4 loading), its axis (prefill pattern or KV policy) and its options with type,\n"
        "default and meaning.\n"
        "\n"
        "A method spec names a prefill pattern and/or a KV policy with options:\n"
        "  dense   a_shape   minference   snapkv:budget=2048   minference+snapkv\n"
        "  tri_shape+kivi:bits=4   snapkv:budget=1024,window=32\n"
        "\n"
        "options:\n"
        "  --json           print the list as JSON\n"
        "  --resolve SPEC   parse SPEC and print its canonical string and JSON (every option)\n"
        "  -h, --help       this help\n");
}

static int print_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    const struct scb_method_ops *const *all = scb_method_all();
    for (int i = 0; all[i]; i++) {
        const struct scb_method_ops *m = all[i];
        cJSON *o = cJSON_CreateObject(), *opts = cJSON_CreateArray();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "stage", scb_method_stage_name(m->stage));
        cJSON_AddNumberToObject(o, "stage_number", m->stage);
        cJSON_AddStringToObject(o, "axis", scb_method_axis_name(m->axis));
        cJSON_AddStringToObject(o, "scbench", m->scbench_name);
        cJSON_AddStringToObject(o, "summary", m->summary);
        for (const struct scb_option *op = m->options; op && op->name; op++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", op->name);
            cJSON_AddStringToObject(x, "type", scb_option_type_name(op->type));
            cJSON_AddStringToObject(x, "default", op->def);
            if (op->choices) cJSON_AddStringToObject(x, "choices", op->choices);
            cJSON_AddStringToObject(x, "help", op->help);
            cJSON_AddItemToArray(opts, x);
        }
        cJSON_AddItemToObject(o, "options", opts);
        cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(arr);
    if (s) { puts(s); cJSON_free(s); }
    cJSON_Delete(arr);
    return s ? 0 : 1;
}

static void print_text(void)
{
    const struct scb_method_ops *const *all = scb_method_all();
    for (int i = 0; all[i]; i++) {
        const struct scb_method_ops *m = all[i];
        printf("%s  [stage %d %s, axis %s, SCBench %s]\n  %s\n", m->name, m->stage,
               scb_method_stage_name(m->stage), scb_method_axis_name(m->axis), m->scbench_name, m->summary);
        for (const struct scb_option *op = m->options; op && op->name; op++)
            printf("    %-15s %-6s default %-10s %s%s%s%s\n", op->name, scb_option_type_name(op->type),
                   op->def[0] ? op->def : "''", op->help, op->choices ? " (" : "",
                   op->choices ? op->choices : "", op->choices ? ")" : "");
        printf("\n");
    }
}

int scb_cmd_methods(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"resolve", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}
    };
    int json = 0, c;
    const char *spec = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': spec = optarg; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error("methods", "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error("methods", "unexpected argument '%s'", argv[optind]);
    if (spec) {
        struct scb_ctx ctx = {0};
        struct scb_method_spec s;
        char *str = NULL, *js = NULL;
        if (scb_method_spec_parse(spec, &s, &ctx)) return scb_cli_fail("methods", &ctx);
        int rc = scb_method_spec_string(&s, &str, &ctx);
        if (!rc) rc = scb_method_spec_json(&s, &js, &ctx);
        if (!rc) printf("%s\n%s\n", str, js);
        scb_free(str); scb_free(js);
        scb_method_spec_fini(&s);
        return rc ? scb_cli_fail("methods", &ctx) : 0;
    }
    if (json) return print_json();
    print_text();
    return 0;
}
