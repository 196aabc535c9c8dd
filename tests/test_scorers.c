/* test_scorers.c — table-driven tests of the SCBench scorers (tasks/scorers.h), ROUGE-Lsum,
 * BLEU, RepoQA extraction, Python string semantics and aggregation. Every expected value was
 * computed by SCBench's own scoring logic: tests/py/scbench_scoring_ref.py (a transcription of
 * compute_scores.py / repo_qa_utils.py calling rouge_score, nltk and tree-sitter) and CPython's
 * str methods, math.fsum and round, when these tables were written. Quirk cases appear for both
 * variants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "kernels/alloc.h"
#include "kernels/status.h"
#include "kernels/util.h"
#include "tasks/bleu.h"
#include "tasks/pystr.h"
#include "tasks/repoqa.h"
#include "tasks/rouge.h"
#include "tasks/scorers.h"

struct score_case {
    enum scb_scorer_kind   kind;
    const char            *pred;
    const char            *gt_json;
    enum scb_score_variant variant;
    int                    ok;
    double                 want;
};

static const struct score_case SCORE_CASES[] = {
    {SCB_SCORER_KV_RETRIEVAL, "The value is 3f2a-77.", "\"3f2a-77\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "The value is 3f2a-77.", "\"3f2a-77\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "3F2A-77", "\"3f2a-77\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "3F2A-77", "\"3f2a-77\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "", "\"x\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "", "\"x\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "abc", "\"\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "abc", "\"\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "\303\251\344\270\255\346\226\207k", "\"\344\270\255\346\226\207\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "\303\251\344\270\255\346\226\207k", "\"\344\270\255\346\226\207\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "no", "\"no \"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "no", "\"no \"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "a\nb", "\"a\\nb\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "a\nb", "\"a\\nb\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "val: 12", "\"12\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "val: 12", "\"12\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_KV_RETRIEVAL, "1", "\"12\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "1", "\"12\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "xx 3f2a-7", "\"3f2a-77\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_KV_RETRIEVAL, "xx 3f2a-7", "\"3f2a-77\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_PASSKEY, "The passkey is 12345.", "\"12345\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_PASSKEY, "The passkey is 12345.", "\"12345\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "12345", "12345", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "12345", "12345", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "no digits", "\"\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_PASSKEY, "no digits", "\"\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "007", "\"7\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "007", "\"7\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_PASSKEY, "a1b22", "\"1\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_PASSKEY, "a1b22", "\"1\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "a1b22", "[\"1\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_PASSKEY, "a1b22", "[\"1\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "\357\274\231\357\274\231", "\"99\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "\357\274\231\357\274\231", "\"99\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_PASSKEY, "x 42 y", "42", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "x 42 y", "42", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "-5", "\"5\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_PASSKEY, "-5", "\"5\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_PASSKEY, "12 34", "\"1234\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "12 34", "\"1234\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_PASSKEY, "passkey 999", "[999]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_PASSKEY, "passkey 999", "[999]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "x1 x2", "[\"X1\", \"X2\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "x1 x2", "[\"X1\", \"X2\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "X1", "[\"X1\", \"Y2\", \"Z3\"]", SCB_SCORE_FAITHFUL, 1, 0.33},
    {SCB_SCORER_STRING_MATCH_ALL, "X1", "[\"X1\", \"Y2\", \"Z3\"]", SCB_SCORE_INTENDED, 1, 0.33},
    {SCB_SCORER_STRING_MATCH_ALL, "", "[\"a\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_STRING_MATCH_ALL, "", "[\"a\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_STRING_MATCH_ALL, "AB", "\"ab\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "AB", "\"ab\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "abc", "\"xyz\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_STRING_MATCH_ALL, "abc", "\"xyz\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_STRING_MATCH_ALL, "var_a and \304\260x", "[\"i\314\207x\", \"var_a\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "var_a and \304\260x", "[\"i\314\207x\", \"var_a\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "\342\204\252", "[\"k\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "\342\204\252", "[\"k\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "k1 k2", "[\"K1\", \"K2\", \"K3\"]", SCB_SCORE_FAITHFUL, 1, 0.67},
    {SCB_SCORER_STRING_MATCH_ALL, "k1 k2", "[\"K1\", \"K2\", \"K3\"]", SCB_SCORE_INTENDED, 1, 0.67},
    {SCB_SCORER_STRING_MATCH_ALL, "\316\243\316\221\316\243", "[\"\317\203\316\261\317\202\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "\316\243\316\221\316\243", "[\"\317\203\316\261\317\202\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "aa", "[\"a\", \"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\"]", SCB_SCORE_FAITHFUL, 1, 0.25},
    {SCB_SCORER_STRING_MATCH_ALL, "aa", "[\"a\", \"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\"]", SCB_SCORE_INTENDED, 1, 0.25},
    {SCB_SCORER_STRING_MATCH_ALL, "X1", "\"X1\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_STRING_MATCH_ALL, "X1", "\"X1\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "  paris  ", "[\"Paris\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "  paris  ", "[\"Paris\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "It is London", "[\"Paris\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "It is London", "[\"Paris\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "STRASSE", "[\"stra\303\237e\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "STRASSE", "[\"stra\303\237e\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "", "[\"x\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "", "[\"x\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "abc", "[\"\", \"zz\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "abc", "[\"\", \"zz\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "\357\254\201ne", "[\"FINE\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "\357\254\201ne", "[\"FINE\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "the blue house.", "[\"The Blue House\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "the blue house.", "[\"The Blue House\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "x", "[]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "x", "[]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "ab", "\"ba\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "ab", "\"ba\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "q", "\"xyz\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "q", "\"xyz\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "42", "[\"42\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_LONGDIALOGUE_QA, "42", "[\"42\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "(a)", "\"(A)\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "(a)", "\"(A)\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "B", "\"(A)\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "B", "\"(A)\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "nothing", "\"(A)\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "nothing", "\"(A)\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "", "\"(A)\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "", "\"(A)\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "YES", "\"yes\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "YES", "\"yes\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "The answer is (C)", "\"(C)\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "The answer is (C)", "\"(C)\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "(", "\"(B)\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "(", "\"(B)\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "\303\237", "\"SS\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "\303\237", "\"SS\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "x", "\"\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "x", "\"\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "no", "[\"(A)\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "no", "[\"(A)\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MANY_SHOT, "a", "[\"(A)\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MANY_SHOT, "a", "[\"(A)\", \"A\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "\345\214\227\344\272\254\345\244\247\345\255\246", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_FAITHFUL, 1, 0.4},
    {SCB_SCORER_QA_F1_ZH, "\345\214\227\344\272\254\345\244\247\345\255\246", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "\347\255\224\346\241\210\346\230\257\345\214\227\344\272\254", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_FAITHFUL, 1, 0.33333333333333337},
    {SCB_SCORER_QA_F1_ZH, "\347\255\224\346\241\210\346\230\257\345\214\227\344\272\254", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_INTENDED, 1, 0.4444444444444445},
    {SCB_SCORER_QA_F1_ZH, "\344\270\215\347\237\245\351\201\223", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "\344\270\215\347\237\245\351\201\223", "\"\345\214\227\344\272\254\345\244\247\345\255\246\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "", "\"\345\274\240\344\270\211\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "", "\"\345\274\240\344\270\211\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "\345\274\240\344\270\211\343\200\202", "\"\345\274\240\344\270\211\"", SCB_SCORE_FAITHFUL, 1, 0.6666666666666666},
    {SCB_SCORER_QA_F1_ZH, "\345\274\240\344\270\211\343\200\202", "\"\345\274\240\344\270\211\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "\343\200\212\347\272\242\346\245\274\346\242\246\343\200\213", "\"\347\272\242\346\245\274\346\242\246\"", SCB_SCORE_FAITHFUL, 1, 0.4},
    {SCB_SCORER_QA_F1_ZH, "\343\200\212\347\272\242\346\245\274\346\242\246\343\200\213", "\"\347\272\242\346\245\274\346\242\246\"", SCB_SCORE_INTENDED, 1, 0.8571428571428571},
    {SCB_SCORER_QA_F1_ZH, "\317\203\316\261\317\202", "\"\316\243\316\221\316\243\"", SCB_SCORE_FAITHFUL, 1, 0.5},
    {SCB_SCORER_QA_F1_ZH, "\317\203\316\261\317\202", "\"\316\243\316\221\316\243\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "1998 \345\271\264", "\"1998\345\271\264\"", SCB_SCORE_FAITHFUL, 1, 0.33333333333333337},
    {SCB_SCORER_QA_F1_ZH, "1998 \345\271\264", "\"1998\345\271\264\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "abc", "\"ABC\"", SCB_SCORE_FAITHFUL, 1, 0.5},
    {SCB_SCORER_QA_F1_ZH, "abc", "\"ABC\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_QA_F1_ZH, "\357\274\214\343\200\202", "\"\357\274\214\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "\357\274\214\343\200\202", "\"\357\274\214\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_QA_F1_ZH, "\345\214\227\344\272\254 \345\214\227\344\272\254", "[\"\345\214\227\344\272\254\", \"\344\270\212\346\265\267\"]", SCB_SCORE_FAITHFUL, 1, 0.6666666666666666},
    {SCB_SCORER_QA_F1_ZH, "\345\214\227\344\272\254 \345\214\227\344\272\254", "[\"\345\214\227\344\272\254\", \"\344\270\212\346\265\267\"]", SCB_SCORE_INTENDED, 1, 0.6666666666666666},
    {SCB_SCORER_CHOICE_ENG, "A", "[\"red\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "A", "[\"red\", \"A\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "B", "[\"red\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "B", "[\"red\", \"A\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "red", "[\"red\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "red", "[\"red\", \"A\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "The answer is A", "[\"red\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "The answer is A", "[\"red\", \"A\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "answer: C.", "[\"x\", \"C\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "answer: C.", "[\"x\", \"C\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "I think option is D", "[\"y\", \"D\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "I think option is D", "[\"y\", \"D\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "Answer is", "[\"x\", \"B\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "Answer is", "[\"x\", \"B\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, " x A b", "[\"q\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, " x A b", "[\"q\", \"A\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "", "[\"r\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "", "[\"r\", \"A\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "The correct answer is (C) blue", "[\"blue\", \"C\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "The correct answer is (C) blue", "[\"blue\", \"C\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "the answer is:", "[\"x\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "the answer is:", "[\"x\", \"A\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "the option is \303\211A", "[\"x\", \"A\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "the option is \303\211A", "[\"x\", \"A\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "BC", "[\"b\", \"C\"]", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "BC", "[\"b\", \"C\"]", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_CHOICE_ENG, "so answer is blue", "[\"blue\", \"B\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "so answer is blue", "[\"blue\", \"B\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "it is BC or so", "[\"z\", \"BC\"]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_CHOICE_ENG, "it is BC or so", "[\"z\", \"BC\"]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "42", "42", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "42", "42", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "The answer is 42.5", "42", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "The answer is 42.5", "42", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "43", "42", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MATH_FIND, "43", "42", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MATH_FIND, "none", "3", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_MATH_FIND, "none", "3", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MATH_FIND, "-7", "7", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "-7", "7", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_MATH_FIND, "x 3.0 and 4", "3", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "x 3.0 and 4", "3", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "\357\274\223", "3", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "\357\274\223", "3", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "\331\243.\331\245", "3", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "\331\243.\331\245", "3", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "12.5", "12.5", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "12.5", "12.5", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "12.50", "12.5", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "12.50", "12.5", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "1e5", "1", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "1e5", "1", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "7.", "7", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "7.", "7", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "9", "[9]", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_MATH_FIND, "9", "[9]", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "the cat sat", "\"the cat sat\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "the cat sat", "\"the cat sat\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "the cat", "\"the cat sat on the mat\"", SCB_SCORE_FAITHFUL, 1, 0.5},
    {SCB_SCORER_ROUGE_LSUM, "the cat", "\"the cat sat on the mat\"", SCB_SCORE_INTENDED, 1, 0.5},
    {SCB_SCORER_ROUGE_LSUM, "", "\"ref text\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "", "\"ref text\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "pred", "\"\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "pred", "\"\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "A b\n\nc d", "\"a B c\\nd\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "A b\n\nc d", "\"a B c\\nd\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "\304\260stanbul is big", "\"i stanbul is big\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "\304\260stanbul is big", "\"i stanbul is big\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "\342\204\252elvin", "\"kelvin\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "\342\204\252elvin", "\"kelvin\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "x y x y", "\"y x y x\"", SCB_SCORE_FAITHFUL, 1, 0.75},
    {SCB_SCORER_ROUGE_LSUM, "x y x y", "\"y x y x\"", SCB_SCORE_INTENDED, 1, 0.75},
    {SCB_SCORER_ROUGE_LSUM, "\344\270\255\346\226\207 only", "\"\344\270\255\346\226\207\"", SCB_SCORE_FAITHFUL, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "\344\270\255\346\226\207 only", "\"\344\270\255\346\226\207\"", SCB_SCORE_INTENDED, 1, 0.0},
    {SCB_SCORER_ROUGE_LSUM, "one two\nthree four\none", "\"one\\ntwo three\\nfour one\"", SCB_SCORE_FAITHFUL, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "one two\nthree four\none", "\"one\\ntwo three\\nfour one\"", SCB_SCORE_INTENDED, 1, 1.0},
    {SCB_SCORER_ROUGE_LSUM, "the the the", "\"the cat the dog\"", SCB_SCORE_FAITHFUL, 1, 0.5714285714285715},
    {SCB_SCORER_ROUGE_LSUM, "the the the", "\"the cat the dog\"", SCB_SCORE_INTENDED, 1, 0.5714285714285715},
};

static void test_score_table(void **st)
{
    (void)st;
    size_t n = sizeof SCORE_CASES / sizeof SCORE_CASES[0];
    int per_kind[10] = {0};
    for (size_t i = 0; i < n; i++) {
        const struct score_case *c = &SCORE_CASES[i];
        struct scb_ctx ctx = {0};
        cJSON *gt = cJSON_Parse(c->gt_json);
        assert_non_null(gt);
        double got = -1;
        int rc = scb_score_one(c->kind, c->pred, gt, c->variant, &got, &ctx);
        if (rc != SCB_OK || got != c->want)
            print_error("case %zu (kind %d, variant %d, pred \"%s\", gt %s): rc %d (%s) got %.17g want %.17g\n",
                        i, (int)c->kind, (int)c->variant, c->pred, c->gt_json, rc, scb_errmsg(&ctx), got, c->want);
        assert_int_equal(rc, SCB_OK);
        assert_true(got == c->want);
        per_kind[c->kind]++;
        cJSON_Delete(gt);
    }
    for (int k = 0; k <= 8; k++)
        if (k != SCB_SCORER_REPOQA) assert_true(per_kind[k] >= 20);   /* >= 10 inputs x 2 variants */
}

static void test_score_errors(void **st)
{
    (void)st;
    struct { enum scb_scorer_kind k; const char *gt; } bad[] = {
        {SCB_SCORER_STRING_MATCH_ALL, "[]"},      /* Python: ZeroDivisionError */
        {SCB_SCORER_MATH_FIND, "\"42\""},         /* Python: TypeError */
        {SCB_SCORER_KV_RETRIEVAL, "[\"a\"]"},     /* Python: TypeError (list in str) */
        {SCB_SCORER_ROUGE_LSUM, "7"},
        {SCB_SCORER_LONGDIALOGUE_QA, "[1, 2]"},   /* Python: AttributeError (int.upper) */
        {SCB_SCORER_QA_F1_ZH, "null"},
        {SCB_SCORER_CHOICE_ENG, "3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scb_ctx ctx = {0};
        cJSON *gt = cJSON_Parse(bad[i].gt);
        double v = 5;
        int rc = scb_score_one(bad[i].k, "a 42 b", gt, SCB_SCORE_FAITHFUL, &v, &ctx);
        assert_int_equal(rc, SCB_E_FORMAT);
        assert_true(strlen(scb_errmsg(&ctx)) > 10);
        cJSON_Delete(gt);
    }
    struct scb_ctx ctx = {0};
    double v;
    assert_int_equal(scb_score_one(SCB_SCORER_REPOQA, "x", NULL, SCB_SCORE_FAITHFUL, &v, &ctx), SCB_E_INVAL);
}

struct rouge_case { const char *target, *pred; double want; };
static const struct rouge_case ROUGE_CASES[] = {
    /* LCS backtracking tie-breaking decides these two (rouge_score's _backtrack_norec) */
    {"c c c a\nb b\na c b b", "c a a\nc\na c a", 0.588235294117647},
    {"a c b b\nb c\na", "c a a c\nb a\nb a", 0.6666666666666666},
    {"the cat sat on the mat", "the cat sat", 0.6666666666666666},
    {"a b c\nd e f", "d e f\na b c", 1.0},
    {"x y z", "x y z x y z", 0.6666666666666666},
    {"", "", 0},
    {"\n\n", "a", 0},
    {"one two three\n\nfour five", "one three five\nseven", 0.6666666666666665},
    {"the the a the", "the a the the", 0.75},
    {"\303\207A va?\nOui!", "\303\247a va oui", 1.0},
    {"a\015b\nc", "a b c", 1.0},
    {"\304\260\304\260 kelvin \342\204\252", "i i kelvin k", 1.0},
    {"1 2 3 4 5 6", "6 5 4 3 2 1", 0.16666666666666666},
    {"tie tie x tie", "x tie tie tie", 0.75},
};

static void test_rouge(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof ROUGE_CASES / sizeof ROUGE_CASES[0]; i++) {
        struct scb_rouge_score s;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_rouge_lsum(ROUGE_CASES[i].target, ROUGE_CASES[i].pred, &s, &ctx), SCB_OK);
        if (s.fmeasure != ROUGE_CASES[i].want)
            print_error("rouge case %zu: got %.17g want %.17g\n", i, s.fmeasure, ROUGE_CASES[i].want);
        assert_true(s.fmeasure == ROUGE_CASES[i].want);
    }
}

struct bleu_case { const char *cand, *ref; double want; };
static const struct bleu_case BLEU_CASES[] = {
    {"def f(x):\n    return x + 1", "def f(x):\n    return x + 1", 1.0},
    {"def f(x): return x", "def f(x):\n    return x + 1", 0.6065306597126334},
    {"", "a b c", 0},
    {"a", "a", 1.0},
    {"a", "a b c d e", 0.01831563888873418},
    {"x y z", "a b c", 0},
    {"a b a b a b", "a b", 0.09717716588732002},
    {"int foo ( ) { }", "int foo ( int x ) { return x ; }", 0.13370583480862633},
    {"a\343\200\200b\302\240c", "a b c", 0.5757197301274735},
    {"  lead trail  ", "lead trail", 0.2213885886251307},
    {"a b c d e f g h", "a b c d x f g h", 0.5},
    {"the the the the", "the cat", 0.061033220311973134},
};

static void test_bleu(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof BLEU_CASES / sizeof BLEU_CASES[0]; i++) {
        double got;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_bleu_similarity(BLEU_CASES[i].cand, BLEU_CASES[i].ref, &got, &ctx), SCB_OK);
        if (got != BLEU_CASES[i].want) print_error("bleu case %zu: got %.17g want %.17g\n", i, got, BLEU_CASES[i].want);
        assert_true(got == BLEU_CASES[i].want);
    }
    /* re.split(r"\s+", "".strip()) == [''] */
    struct scb_tokens t = {0};
    assert_int_equal(scb_bleu_split_ws(" \n ", 3, &t), SCB_OK);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.len[0], 0);
    scb_tokens_fini(&t);
}

struct fsum_case { double x[4]; double want; };
static const struct fsum_case FSUM_CASES[] = {
    {{-3.5233447033367526e-12, -2.1035300715365304e-18, -85512742666491.45, -8.117399161206349e+16}, -8.125950435472998e+16},
    {{-884002150450.5864, -5.706036383286766e-16, -1.3270863267522825e-17, -518673999745949.94}, -519558001896400.5},
    {{-1509616217149720.8, -7.523960777007088e-07, 2.612518314634742e+16, 8954178849140113.0}, 3.3569745778337812e+16},
    {{1.7108284528077358e-18, 9.525102111858401e-19, 1.1332979587418524e-13, -4.207814273366474e-12}, -4.094481814153625e-12},
    {{813717710642849.5, -3.8303635179613127e-10, -7938885751128173.0, 277.82693785236813}, -7125168040485046.0},
    {{-8.051388480105333e-17, 1.287365862667733e+18, -58808257436134.695, -0.14481538866119426}, 1.2873070544102968e+18},
    {{1e100, 1.0, -1e100, 1e-100}, 1.0},
    {{0.1, 0.2, 0.3, -0.6}, 2.7755575615628914e-17},
};
struct round_case { double x, want; };
static const struct round_case ROUND_CASES[] = {
    {0.125, 0.12},
    {0.375, 0.38},
    {0.3333333333333333, 0.33},
    {0.6666666666666666, 0.67},
    {0.625, 0.62},
    {0.005, 0.01},
    {0.015, 0.01},
    {0.995, 0.99},
    {1.0, 1.0},
    {0.0, 0.0},
    {0.285, 0.28},
};

static void test_fsum_round(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof FSUM_CASES / sizeof FSUM_CASES[0]; i++)
        assert_true(scb_fsum(FSUM_CASES[i].x, 4) == FSUM_CASES[i].want);
    for (size_t i = 0; i < sizeof ROUND_CASES / sizeof ROUND_CASES[0]; i++)
        assert_true(scb_score_pyround(ROUND_CASES[i].x, 2) == ROUND_CASES[i].want);
}

struct case_case { const char *in, *lower, *upper; };
static const struct case_case CASE_CASES[] = {
    {"ABC", "abc", "ABC"},
    {"\304\260", "i\314\207", "\304\260"},
    {"\316\243\316\221\316\243", "\317\203\316\261\317\202", "\316\243\316\221\316\243"},
    {"\316\243\316\221\316\243 \316\221\316\243", "\317\203\316\261\317\202 \316\261\317\202", "\316\243\316\221\316\243 \316\221\316\243"},
    {"\316\243", "\317\203", "\316\243"},
    {"a\316\243", "a\317\202", "A\316\243"},
    {"A\316\243.", "a\317\202.", "A\316\243."},
    {"\342\204\252", "k", "\342\204\252"},
    {"\341\272\236", "\303\237", "\341\272\236"},
    {"Stra\303\237e", "stra\303\237e", "STRASSE"},
    {"\307\205", "\307\206", "\307\204"},
    {"\316\221\316\243'\316\222", "\316\261\317\203'\316\262", "\316\221\316\243'\316\222"},
    {"\303\237", "\303\237", "SS"},
    {"\357\254\201", "\357\254\201", "FI"},
    {"\305\211", "\305\211", "\312\274N"},
    {"\307\260", "\307\260", "J\314\214"},
    {"\316\220", "\316\220", "\316\231\314\210\314\201"},
    {"i", "i", "I"},
    {"\305\277", "\305\277", "S"},
    {"\302\265", "\302\265", "\316\234"},
};
struct zh_case { const char *in, *want; };
static const struct zh_case ZH_CASES[] = {
    {"\345\214\227\344\272\254\357\274\214\345\244\247\345\255\246\357\274\201", "\345\214\227\344\272\254\345\244\247\345\255\246"},
    {"A B\tC", "abc"},
    {"\343\200\212\347\272\242\346\245\274\346\242\246\343\200\213\342\200\246", "\343\200\212\347\272\242\346\245\274\346\242\246"},
    {"Hello, World.", "helloworld"},
    {"\316\243\316\221\316\243", "\317\203\316\261\317\202"},
    {" \343\200\200x\302\240y ", "xy"},
};

static void test_pystr(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof CASE_CASES / sizeof CASE_CASES[0]; i++) {
        struct scb_pystr a = {0}, l = {0}, u = {0};
        struct scb_buf bl = {0}, bu = {0};
        assert_int_equal(scb_pystr_from_utf8(&a, CASE_CASES[i].in, strlen(CASE_CASES[i].in)), SCB_OK);
        assert_int_equal(scb_pystr_lower(&a, &l), SCB_OK);
        assert_int_equal(scb_pystr_upper(&a, &u), SCB_OK);
        assert_int_equal(scb_pystr_to_utf8(&l, 0, l.n, &bl), SCB_OK);
        assert_int_equal(scb_pystr_to_utf8(&u, 0, u.n, &bu), SCB_OK);
        assert_string_equal(bl.data, CASE_CASES[i].lower);
        assert_string_equal(bu.data, CASE_CASES[i].upper);
        scb_pystr_fini(&a); scb_pystr_fini(&l); scb_pystr_fini(&u);
        scb_buf_fini(&bl); scb_buf_fini(&bu);
    }
    for (size_t i = 0; i < sizeof ZH_CASES / sizeof ZH_CASES[0]; i++) {
        char *o = NULL;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_score_normalize_zh(ZH_CASES[i].in, &o, &ctx), SCB_OK);
        assert_string_equal(o, ZH_CASES[i].want);
        scb_free(o);
    }
}

struct san_case { const char *lang, *pred, *want; };
static const struct san_case SAN_CASES[] = {
    {"cpp", "```cpp\nnamespace ns {\nint f(int x) { return x; }\n}\n```", "int f(int x) { return x; }"},
    {"cpp", "```cpp\nclass A {\n public:\n  int f() { return 1; }\n};\nint g() { return 2; }\n```", "int g() { return 2; }"},
    {"typescript", "```ts\nclass A {\n  m() { return 1; }\n}\nfunction g(): { a: number } {\n  return { a: 1 };\n}\n```", "function g(): { a: number } {\n  return { a: 1 };\n}"},
    {"python", "Here:\n```python\nimport os\n\ndef f(a):\n    return a\n\nprint(f(1))\n```\nDone.", "def f(a):\n    return a"},
    {"python", "```\nx = 1\n```\n```py\n@dec\ndef g():\n    pass\n```", "def g():\n    pass"},
    {"python", "no block def f(): pass", "no block def f(): pass"},
    {"python", "```python\nclass A:\n    def m(self):\n        return 1\n    # tail\n```", "def m(self):\n        return 1"},
    {"python", "```text\nonly words\n```", "only words\n"},
    {"python", "````python\ndef f(): pass\n````", "````python\ndef f(): pass\n````"},
    {"python", "```python\ndef f(): pass\n```python\ndef g(): pass\n```", "def f(): pass"},
    {"java", "```java\n@Override\npublic int hashCode() {\n    return \"}\".length();\n}\n```", "@Override\npublic int hashCode() {\n    return \"}\".length();\n}"},
    {"java", "```java\nimport java.util.*;\n\nclass A {\n  private static int f(int x) { return x; }\n}\n```", "private static int f(int x) { return x; }"},
    {"typescript", "```ts\nexport async function load(u: string): Promise<string> {\n  return `}${u}`;\n}\n```", "async function load(u: string): Promise<string> {\n  return `}${u}`;\n}"},
    {"rust", "```rust\nuse std::io;\n#[inline]\npub fn add<'a>(x: &'a str) -> &'a str {\n    let c = '}';\n    x\n}\n```", "pub fn add<'a>(x: &'a str) -> &'a str {\n    let c = '}';\n    x\n}"},
    {"cpp", "```cpp\n#include <vector>\nint *p(int x);\nint A::g() { return 1; }\nstatic int add(int a, int b) {\n  return a + b; // }\n}\n```", "static int add(int a, int b) {\n  return a + b; // }\n}"},
    {"go", "```go\npackage main\n\nfunc (r *T) M() int { return 1 }\n\nfunc Parse(s string) (map[string]interface{}, error) {\n\treturn nil, nil\n}\n```", "func Parse(s string) (map[string]interface{}, error) {\n\treturn nil, nil\n}"},
    {"go", "   \n```go\n```\n", ""},
};

static void test_repoqa_sanitize(void **st)
{
    (void)st;
    for (size_t i = 0; i < sizeof SAN_CASES / sizeof SAN_CASES[0]; i++) {
        struct scb_buf out = {0};
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_repoqa_sanitize(SAN_CASES[i].pred, SAN_CASES[i].lang, &out, &ctx), SCB_OK);
        if (strcmp(out.data, SAN_CASES[i].want))
            print_error("sanitize case %zu: got [%s] want [%s]\n", i, out.data, SAN_CASES[i].want);
        assert_string_equal(out.data, SAN_CASES[i].want);
        scb_buf_fini(&out);
    }
    struct scb_buf out = {0};
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_repoqa_sanitize("x", "cobol", &out, &ctx), SCB_E_INVAL);
    scb_buf_fini(&out);
}

static void test_repoqa_evaluate(void **st)
{
    (void)st;
    const struct scb_repoqa_needle nd[] = {
        {"add", "def add(a, b):\n    return a + b"},
        {"sub", "def sub(a, b):\n    return a - b"},
        {"add", "def add(a, b):\n    return a + b"},   /* duplicates are kept, as SCBench does */
    };
    int correct;
    long best;
    double sim;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_repoqa_evaluate("```python\ndef sub(a, b):\n    return a - b\n```", "python", "sub",
                                         nd, 3, 0.8, &correct, &best, &sim, &ctx), SCB_OK);
    assert_int_equal(correct, 1);
    assert_int_equal(best, 1);
    assert_true(sim == 1.0);
    /* ties keep the first needle */
    assert_int_equal(scb_repoqa_evaluate("def add(a, b):\n    return a + b", "python", "add", nd, 3, 0.8,
                                         &correct, &best, &sim, &ctx), SCB_OK);
    assert_int_equal(best, 0);
    assert_int_equal(correct, 1);
    /* best needle is the wrong function */
    assert_int_equal(scb_repoqa_evaluate("def add(a, b):\n    return a + b", "python", "sub", nd, 3, 0.8,
                                         &correct, &best, &sim, &ctx), SCB_OK);
    assert_int_equal(correct, 0);
    /* nothing similar: best stays -1 */
    assert_int_equal(scb_repoqa_evaluate("zzz", "python", "add", nd, 3, 0.8, &correct, &best, &sim, &ctx), SCB_OK);
    assert_int_equal(best, -1);
    assert_int_equal(correct, 0);
}

/* ---- aggregation ------------------------------------------------------------------------- */
static void score_text(const char *task, const char *text, enum scb_score_mode m, enum scb_score_variant v,
                       struct scb_score_result *res, struct scb_pred_file *pf)
{
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_pred_file_parse("t.jsonl", text, pf, &ctx), SCB_OK);
    int rc = scb_score_records(task, pf->recs, pf->n, m, v, res, &ctx);
    if (rc) print_error("%s\n", scb_errmsg(&ctx));
    assert_int_equal(rc, SCB_OK);
}

static void test_aggregate_multi_turn(void **st)
{
    (void)st;
    /* kv: turn 0 = [1, 0] -> 0.5, turn 1 = [1] -> 1; overall = mean of turns 0.75, pooled 2/3 */
    const char *text =
        "{\"id\": 0, \"turn_idx\": 0, \"prediction\": \"v=abc\", \"ground_truth\": \"abc\"}\n"
        "\n"
        "{\"id\": 0, \"turn_idx\": 1, \"prediction\": \"def\", \"ground_truth\": \"def\"}\n"
        "{\"id\": 1, \"turn_idx\": 0, \"prediction\": \"no\", \"ground_truth\": \"xyz\"}\n";
    struct scb_score_result r;
    struct scb_pred_file pf;
    score_text("scbench_kv", text, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &pf);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.n_turns, 2);
    assert_int_equal(r.turn_idx[0], 0);
    assert_true(r.turn[0] == 0.5);
    assert_true(r.turn[2] == 1.0);
    assert_true(r.overall[0] == 0.75);
    assert_true(r.pooled[0] == 2.0 / 3.0);
    assert_int_equal(pf.recs[1].line, 3);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);

    score_text("scbench_kv", text, SCB_SCORE_MULTI_REQUEST, SCB_SCORE_FAITHFUL, &r, &pf);
    assert_true(r.overall[0] == 2.0 / 3.0);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);
}

static void test_aggregate_mix(void **st)
{
    (void)st;
    /* summary_with_needles: turn 0 summary only (passkey slot reported 0 with n 0), turn 1 passkey;
     * the int passkey (quirk 16) scores 0 faithful, 1 intended */
    const char *text =
        "{\"id\": 0, \"turn_idx\": 0, \"task\": \"scbench_summary\", \"prediction\": \"a b\", \"ground_truth\": \"a b\"}\n"
        "{\"id\": 0, \"turn_idx\": 1, \"task\": \"scbench_passkey\", \"prediction\": \"key 123\", \"ground_truth\": 123}\n"
        "{\"id\": 1, \"turn_idx\": 1, \"task\": \"scbench_passkey\", \"prediction\": \"key 9\", \"ground_truth\": \"9\"}\n";
    struct scb_score_result r;
    struct scb_pred_file pf;
    score_text("scbench_summary_with_needles", text, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &pf);
    assert_int_equal(r.pair, 1);
    assert_true(r.turn[0] == 1.0);
    assert_int_equal(r.turn_n[1], 0);
    assert_true(r.turn[1] == 0.0);
    assert_true(r.turn[3] == 0.5);
    assert_true(r.overall[0] == 1.0);
    assert_true(r.overall[1] == 0.5);
    assert_true(scb_score_task_value(&r) == 0.75);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);
    score_text("scbench_summary_with_needles", text, SCB_SCORE_MULTI_TURN, SCB_SCORE_INTENDED, &r, &pf);
    assert_true(r.overall[1] == 1.0);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);

    /* repoqa_and_kv in multi-request mode: the kv half tests `label in record` (quirk 15) */
    const char *rk =
        "{\"id\": 0, \"turn_idx\": 0, \"task\": \"scbench_repoqa\", \"lang\": \"go\", \"repo\": \"r\", \"func_name\": \"F\","
        " \"prediction\": \"```go\\nfunc F() int {\\n\\treturn 1\\n}\\n```\", \"ground_truth\": \"func F() int {\\n\\treturn 1\\n}\"}\n"
        "{\"id\": 0, \"turn_idx\": 1, \"task\": \"scbench_kv\", \"lang\": \"go\", \"repo\": \"r\", \"prediction\": \"it is k-1\", \"ground_truth\": \"k-1\"}\n"
        "{\"id\": 0, \"turn_idx\": 2, \"task\": \"scbench_kv\", \"lang\": \"go\", \"repo\": \"r\", \"prediction\": \"no\", \"ground_truth\": \"repo\"}\n";
    score_text("scbench_repoqa_and_kv", rk, SCB_SCORE_MULTI_REQUEST, SCB_SCORE_FAITHFUL, &r, &pf);
    assert_true(r.overall[0] == 1.0);
    assert_true(r.rec_score[1] == 0.0 && r.rec_score[2] == 1.0);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);
    score_text("scbench_repoqa_and_kv", rk, SCB_SCORE_MULTI_REQUEST, SCB_SCORE_INTENDED, &r, &pf);
    assert_true(r.rec_score[1] == 1.0 && r.rec_score[2] == 0.0);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);
    score_text("scbench_repoqa_and_kv", rk, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &pf);
    assert_true(r.rec_score[1] == 1.0 && r.rec_score[2] == 0.0);
    scb_score_result_fini(&r);
    scb_pred_file_fini(&pf);
}

static void test_file_errors(void **st)
{
    (void)st;
    struct { const char *text; const char *needle; } bad[] = {
        {"{\"id\": 0, \"turn_idx\": 0, \"prediction\": \"a\", \"ground_truth\": \"a\"}\n{oops\n", "t.jsonl:2:"},
        {"\n\n[1, 2]\n", "t.jsonl:3:"},
        {"{\"id\": 0, \"turn_idx\": -1, \"prediction\": \"a\", \"ground_truth\": \"a\"}\n", "turn_idx"},
        {"{\"id\": 0, \"turn_idx\": 0, \"prediction\": 5, \"ground_truth\": \"a\"}\n", "prediction"},
        {"{\"id\": 0, \"turn_idx\": 0, \"prediction\": \"a\"}\n", "ground_truth"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct scb_pred_file pf;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_pred_file_parse("t.jsonl", bad[i].text, &pf, &ctx), SCB_E_FORMAT);
        if (!strstr(scb_errmsg(&ctx), bad[i].needle)) print_error("msg: %s\n", scb_errmsg(&ctx));
        assert_non_null(strstr(scb_errmsg(&ctx), bad[i].needle));
    }
    /* a record of another task, and a Mix record without "task" */
    struct scb_pred_file pf;
    struct scb_score_result r;
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_pred_file_parse("t.jsonl",
        "{\"id\": 0, \"turn_idx\": 0, \"task\": \"scbench_vt\", \"prediction\": \"a\", \"ground_truth\": \"a\"}\n", &pf, &ctx), SCB_OK);
    assert_int_equal(scb_score_records("scbench_kv", pf.recs, pf.n, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &ctx), SCB_E_FORMAT);
    assert_int_equal(scb_score_records("scbench_repoqa_and_kv", pf.recs, pf.n, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &ctx), SCB_OK);
    assert_int_equal(r.n, 0);   /* a sub-task neither of the Mix task's: ignored */
    scb_score_result_fini(&r);
    assert_int_equal(scb_score_records("nope", pf.recs, pf.n, SCB_SCORE_MULTI_TURN, SCB_SCORE_FAITHFUL, &r, &ctx), SCB_E_NOTFOUND);
    scb_pred_file_fini(&pf);
    assert_int_equal(scb_pred_file_load("/nonexistent/preds.jsonl", &pf, &ctx), SCB_E_IO);
    assert_non_null(strstr(scb_errmsg(&ctx), "/nonexistent/preds.jsonl"));
}

static void test_categories(void **st)
{
    (void)st;
    size_t n;
    const struct scb_score_task *t = scb_score_tasks(&n);
    assert_int_equal(n, 12);
    int per[4] = {0};
    for (size_t i = 0; i < n; i++) per[t[i].category]++;
    assert_int_equal(per[0], 3);   /* kv, prefix_suffix, vt */
    assert_int_equal(per[1], 4);   /* repoqa, qa_eng, qa_chn, choice_eng */
    assert_int_equal(per[2], 3);   /* mf, many_shot, summary */
    assert_int_equal(per[3], 2);   /* the two Mix tasks */
    const char *tasks[] = {"scbench_kv", "scbench_vt", "scbench_mf", "scbench_repoqa_and_kv"};
    const double vals[] = {0.5, 1.0, 0.25, 0.75};
    double out[4], avg;
    int has[4];
    struct scb_ctx ctx = {0};
    assert_int_equal(scb_score_category_means(tasks, vals, 4, out, has, &avg, &ctx), SCB_OK);
    assert_true(out[0] == 0.75 && has[0] && !has[1] && out[2] == 0.25 && out[3] == 0.75);
    assert_true(avg == (0.75 + 0.25 + 0.75) / 3.0);
    const char *bad[] = {"scbench_nope"};
    assert_int_equal(scb_score_category_means(bad, vals, 1, out, has, &avg, &ctx), SCB_E_NOTFOUND);
}


/* Every allocation of a scorer failing in turn: SCB_OK or SCB_E_NOMEM, never a crash or leak. */
static void test_alloc_failures(void **st)
{
    (void)st;
    static const struct { enum scb_scorer_kind k; const char *pred, *gt; } C[] = {
        {SCB_SCORER_CHOICE_ENG, "so the answer is: B maybe", "[\"x\", \"B\"]"},
        {SCB_SCORER_QA_F1_ZH, "\u7b54\u6848\u662f\u5317\u4eac", "\"\u5317\u4eac\""},
        {SCB_SCORER_ROUGE_LSUM, "a b c\nd e", "\"a c\\nd b e\""},
        {SCB_SCORER_STRING_MATCH_ALL, "X1 y2", "[\"x1\", \"Y2\"]"},
        {SCB_SCORER_MANY_SHOT, "(a)", "\"(A)\""},
        {SCB_SCORER_MATH_FIND, "is 42.5", "42"},
    };
    for (size_t c = 0; c < sizeof C / sizeof C[0]; c++) {
        cJSON *gt = cJSON_Parse(C[c].gt);
        assert_non_null(gt);
        double want;
        struct scb_ctx ctx = {0};
        assert_int_equal(scb_score_one(C[c].k, C[c].pred, gt, SCB_SCORE_FAITHFUL, &want, &ctx), SCB_OK);
        for (long nth = 1; nth < 200; nth++) {
            size_t live = scb_alloc_live_bytes();
            double v;
            scb_alloc_fail_after(nth, 0);
            int rc = scb_score_one(C[c].k, C[c].pred, gt, SCB_SCORE_FAITHFUL, &v, &ctx);
            scb_alloc_fail_after(0, 0);
            assert_true(rc == SCB_OK || rc == SCB_E_NOMEM);
            if (rc == SCB_OK) assert_true(v == want);
            assert_int_equal(scb_alloc_live_bytes(), live);
        }
        cJSON_Delete(gt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_table),
        cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_rouge),
        cmocka_unit_test(test_bleu),
        cmocka_unit_test(test_fsum_round),
        cmocka_unit_test(test_pystr),
        cmocka_unit_test(test_repoqa_sanitize),
        cmocka_unit_test(test_repoqa_evaluate),
        cmocka_unit_test(test_aggregate_multi_turn),
        cmocka_unit_test(test_aggregate_mix),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
