/* cli_methods.c — `scbench methods`: lists every long-context method with its lifecycle stage,
 * axis, options (type, default, help), or resolves a method spec to its canonical form. */
#include "harness/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "methods/method.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: scbench methods [--json] [--resolve SPEC [--cost N[:T]] [--shape L,Hq,Hkv,D] [--elt-bytes B]]\n"
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
        "  --cost N[:T]     with --resolve: KV entries, bytes, bytes read per decode step and\n"
        "                   prefill density after a first prefill of N tokens and T in total\n"
        "                   (default T = N), for the model shape below\n"
        "  --shape L,Hq,Hkv,D  model shape for --cost (default 32,32,8,128: Llama-3.1-8B)\n"
        "  --elt-bytes B    bytes per stored K/V element for --cost (default 2, bf16)\n"
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
        {"cost", required_argument, NULL, 'c'},
        {"shape", required_argument, NULL, 's'},
        {"elt-bytes", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}
    };
    int json = 0, c;
    const char *spec = NULL, *cost = NULL;
    struct scb_model_info mi = {32, 32, 8, 128, NULL};
    long elt = 2;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'r': spec = optarg; break;
        case 'c': cost = optarg; break;
        case 's':
            if (sscanf(optarg, "%d,%d,%d,%d", &mi.L, &mi.Hq, &mi.Hkv, &mi.D) != 4 || mi.L < 1 || mi.Hq < 1 ||
                mi.Hkv < 1 || mi.D < 1 || mi.Hq % mi.Hkv)
                return scb_cli_usage_error("methods", "--shape expects L,Hq,Hkv,D with Hq a multiple of Hkv, got '%s'", optarg);
            break;
        case 'e': if (scb_cli_parse_long("methods", "--elt-bytes", optarg, 1, 8, &elt)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error("methods", "unknown option");
        }
    }
    if (optind < argc) return scb_cli_usage_error("methods", "unexpected argument '%s'", argv[optind]);
    long long N = 0, T = 0;
    if (cost) {
        char *end = NULL;
        N = strtoll(cost, &end, 10);
        T = N;
        if (end && *end == ':') T = strtoll(end + 1, &end, 10);
        if (!end || *end || N < 1 || T < N)
            return scb_cli_usage_error("methods", "--cost expects N or N:T with 1 <= N <= T, got '%s'", cost);
        if (!spec) return scb_cli_usage_error("methods", "--cost needs --resolve SPEC");
    }
    if (spec) {
        struct scb_ctx ctx = {0};
        struct scb_method_spec s;
        char *str = NULL, *js = NULL;
        if (scb_method_spec_parse(spec, &s, &ctx)) return scb_cli_fail("methods", &ctx);
        int rc = scb_method_spec_string(&s, &str, &ctx);
        if (!rc) rc = scb_method_spec_json(&s, &js, &ctx);
        if (!rc) printf("%s\n%s\n", str, js);
        if (!rc && cost) {
            struct scb_cost_query cq = {&mi, N, T, (int)elt};
            const struct scb_method *ms[2] = {&s.prefill, &s.kv};
            struct scb_cost c[2];
            for (int i = 0; i < 2; i++) scb_method_cost(ms[i], &cq, &c[i]);
            /* the KV policy decides storage, the prefill pattern the density */
            printf("{\"N\":%lld,\"T\":%lld,\"shape\":[%d,%d,%d,%d],\"elt_bytes\":%ld,\"kv_entries\":%lld,"
                   "\"kv_bytes\":%lld,\"kv_bytes_device\":%lld,\"read_bytes_step\":%lld,\"prefill_density\":%.6f}\n",
                   N, T, mi.L, mi.Hq, mi.Hkv, mi.D, elt, (long long)c[1].kv_entries, (long long)c[1].kv_bytes,
                   (long long)c[1].kv_bytes_device, (long long)c[1].read_bytes_step, c[0].prefill_density);
        }
        scb_free(str); scb_free(js);
        scb_method_spec_fini(&s);
        return rc ? scb_cli_fail("methods", &ctx) : 0;
    }
    if (json) return print_json();
    print_text();
    return 0;
}
