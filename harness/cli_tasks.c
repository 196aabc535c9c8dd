/* cli_tasks.c — `scbench tasks`: lists the 12 SCBench tasks with their category, per-turn max
 * new tokens and scorer (Mix tasks: one entry per sub-task), as text or JSON. */
#include "harness/cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tasks/task.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scbench tasks [--json]\n\n"
            "Lists the 12 SCBench tasks: SCBench config name (the --task value), paper name,\n"
            "category, max new tokens per turn and scorer. Mix tasks list each sub-task\n"
            "(chosen per turn by the turn's \"task\" field).\n\n"
            "  --json    one JSON array instead of the table\n"
            "  -h, --help\n");
}

static int print_json(void)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < scb_task_count(); i++) {
        const struct scb_task_ops *t = scb_task_at(i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "paper_name", t->paper_name);
        cJSON_AddStringToObject(o, "category", scb_task_category_name(t->category));
        cJSON *subs = cJSON_AddArrayToObject(o, "subtasks");
        for (size_t k = 0; k < t->n_subtasks; k++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "name", t->subtasks[k].name);
            cJSON_AddNumberToObject(s, "max_new_tokens", t->subtasks[k].max_new_tokens);
            cJSON_AddStringToObject(s, "scorer", t->subtasks[k].scorer);
            cJSON_AddItemToArray(subs, s);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *txt = cJSON_Print(arr);
    int ok = txt != NULL;
    if (ok) printf("%s\n", txt);
    cJSON_free(txt);
    cJSON_Delete(arr);
    if (!ok) { fprintf(stderr, "scbench tasks: out of memory\n"); return 1; }
    return 0;
}

int scb_cmd_tasks(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: return scb_cli_usage_error("tasks", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return scb_cli_usage_error("tasks", "unexpected argument '%s'", argv[optind]);
    if (json) return print_json();
    printf("%-30s %-20s %-20s %-30s %s\n", "task", "paper name", "category", "max new tokens", "scorer");
    for (size_t i = 0; i < scb_task_count(); i++) {
        const struct scb_task_ops *t = scb_task_at(i);
        char mnt[96] = "", sc[96] = "";
        size_t lm = 0, ls = 0;
        for (size_t k = 0; k < t->n_subtasks; k++) {
            const struct scb_subtask *s = &t->subtasks[k];
            if (t->n_subtasks == 1) {
                lm += (size_t)snprintf(mnt + lm, sizeof mnt - lm, "%d", s->max_new_tokens);
                ls += (size_t)snprintf(sc + ls, sizeof sc - ls, "%s", s->scorer);
            } else {
                const char *sn = s->name + strlen("scbench_");
                lm += (size_t)snprintf(mnt + lm, sizeof mnt - lm, "%s%s:%d", k ? ", " : "", sn, s->max_new_tokens);
                ls += (size_t)snprintf(sc + ls, sizeof sc - ls, "%s%s:%s", k ? ", " : "", sn, s->scorer);
            }
        }
        printf("%-30s %-20s %-20s %-30s %s\n", t->name, t->paper_name, scb_task_category_name(t->category),
               mnt, sc);
    }
    return 0;
}
