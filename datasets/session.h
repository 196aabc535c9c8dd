/* session.h — one SCBench example ("session"): a shared context plus its turns, as read from
 * the released files (data/scbench_<name>.jsonl[.gz], spec/scbench.md §3.2) or made by the
 * synthetic generators. Fields keep the released types: a turn's answer and options stay JSON
 * values (string, int, or list), Math.Find's context is a list of integers. */
#ifndef SCB_DATASETS_SESSION_H
#define SCB_DATASETS_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

struct scb_turn {
    char         *input;    /* the turn's query text (owned) */
    struct cJSON *answer;   /* gold answer as stored: string, number or list (owned) */
    struct cJSON *options;  /* choice_eng: list of 4 option strings, else NULL (owned) */
    char         *task;     /* Mix tasks: sub-task ("scbench_kv", "scbench_passkey", ...), else NULL */
    char         *name;     /* repoqa turns: ground-truth function name, else NULL */
};

struct scb_session {
    long      index;          /* 0-based row index in the file (SCBench's prediction "id") */
    long long id;             /* the record's own "id" field (-1 when absent) */
    char     *context;        /* context text (owned); NULL when the context is a list of ints */
    int64_t  *context_ints;   /* Math.Find: (n_context_ints,) integers, else NULL (owned) */
    size_t    n_context_ints;
    char     *lang;           /* repoqa: programming language, else NULL */
    char     *repo;           /* repoqa: repository name, else NULL */
    char     *task;           /* many_shot: top-level task, else NULL */
    struct scb_turn *turns;   /* (n_turns,) owned */
    size_t    n_turns;
};

/* Free everything a session owns and zero it. NULL-safe. */
void scb_session_fini(struct scb_session *s);

#endif
