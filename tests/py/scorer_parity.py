#!/usr/bin/env python3
"""scorer_parity.py — randomized parity of scbench's scorers with SCBench's own scoring code.

  1. ROUGE-Lsum (scbench score --rouge-pairs) vs rouge_score as HF evaluate configures it;
  2. RepoQA BLEU similarity (--bleu-pairs) vs nltk sentence_bleu + SmoothingFunction().method4;
  3. RepoQA answer extraction (--repoqa-sanitize) vs SCBench's sanitize_output with tree-sitter
     (only when tree_sitter_languages is installed; otherwise that part is reported skipped);
  4. `scbench score` end to end on generated prediction files of every task, both modes and both
     variants, vs the transcription tests/py/scbench_scoring_ref.py;
  5. malformed prediction files: non-zero exit and a message naming the file and line.
Seeded (--seed, default from SCB_SEED or 20241215); the seed is printed. Exit 0 pass, 1 fail.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import scbench_scoring_ref as ref  # noqa: E402
except ImportError as e:  # the reference libraries (rouge_score, nltk) are missing
    print(f"SKIP: reference libraries not importable: {e}")
    sys.exit(77)

FAILS = []


def fail(msg):
    FAILS.append(msg)
    if len(FAILS) <= 30:
        print("FAIL:", msg)


def run(scbench, args, check=True):
    p = subprocess.run([scbench, "score"] + args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"scbench score {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


# ---- random text --------------------------------------------------------------------------
WORDS = ["the", "model", "attention", "cache", "KV", "Summary", "paper", "we", "propose", "a", "an",
         "method", "x", "42", "3.14", "long-context", "don't", "état", "naïve", "中文", "摘要", "İstanbul",
         "\u212aelvin", "ΣΑΣ", "straße", "ﬁne", "GPU", "H100", "e.g.", "(A)", "Ω", "😀", "a1b2", "", "1,000"]
SEPS = [" ", " ", " ", "  ", "\n", "\n\n", "\n \n", ", ", ". ", "\t", "-", "/", " \u00a0", "\u3000", "\r\n", ";"]


def rand_text(rng, n_lo=0, n_hi=40):
    n = rng.randint(n_lo, n_hi)
    out = []
    for _ in range(n):
        out.append(rng.choice(WORDS))
        out.append(rng.choice(SEPS))
    if rng.random() < 0.2:
        out.insert(0, rng.choice(["\n", " ", "\n\n"]))
    return "".join(out)


def mutate(rng, text):
    toks = text.split(" ")
    out = []
    for t in toks:
        r = rng.random()
        if r < 0.1:
            continue
        if r < 0.2:
            out.append(rng.choice(WORDS))
        if r < 0.25:
            out.append("\n")
        out.append(t)
    return " ".join(out)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=rng_ascii()) + "\n")


_ASCII_TOGGLE = [False]


def rng_ascii():
    _ASCII_TOGGLE[0] = not _ASCII_TOGGLE[0]
    return _ASCII_TOGGLE[0]


# ---- 1. ROUGE ------------------------------------------------------------------------------
def check_rouge(scbench, rng, tmp, n):
    pairs = []
    for i in range(n):
        t = rand_text(rng, 0, 60)
        r = rng.random()
        if r < 0.1:
            p = t
        elif r < 0.15:
            p = ""
        elif r < 0.6:
            p = mutate(rng, t)
        else:
            p = rand_text(rng, 0, 60)
        pairs.append({"target": t, "prediction": p})
    path = os.path.join(tmp, "rouge.jsonl")
    write_jsonl(path, pairs)
    out = run(scbench, ["--rouge-pairs", path]).stdout.split("\n")
    bad = 0
    for i, pr in enumerate(pairs):
        want = ref.rouge_lsum(pr["target"], pr["prediction"])
        got = float(out[i])
        if abs(got - want) > 1e-9:
            bad += 1
            fail(f"rouge pair {i}: got {got!r} want {want!r}: {pr!r}")
    print(f"rouge-Lsum: {n} pairs, {bad} mismatches")


# ---- 2. BLEU -------------------------------------------------------------------------------
CODE_TOKS = ["def", "f(x):", "return", "x", "+", "1", "if", "else:", "{", "}", "int", "foo", "bar", "=", "==",
             "for", "i", "in", "range(n):", "print(i)", "//", "é", "中", "", "x"]
WS = [" ", " ", "\n", "\t", "    ", "\n\n", "\u3000", "\u00a0", "\u2028", "\x1c", "\x0b"]


def rand_code(rng, lo=0, hi=60):
    n = rng.randint(lo, hi)
    return "".join(rng.choice(CODE_TOKS) + rng.choice(WS) for _ in range(n))


def check_bleu(scbench, rng, tmp, n):
    pairs = []
    for i in range(n):
        r = rand_code(rng, 0, 80)
        x = rng.random()
        if x < 0.1:
            c = r
        elif x < 0.5:
            toks = r.split(" ")
            c = " ".join(t for t in toks if rng.random() > 0.15)
            if rng.random() < 0.3:
                c += " " + rand_code(rng, 0, 10)
        elif x < 0.55:
            c = rng.choice(["", " ", "x", "def"])
        else:
            c = rand_code(rng, 0, 80)
        pairs.append({"reference": r, "candidate": c})
    path = os.path.join(tmp, "bleu.jsonl")
    write_jsonl(path, pairs)
    out = run(scbench, ["--bleu-pairs", path]).stdout.split("\n")
    bad = 0
    for i, pr in enumerate(pairs):
        want = ref.compute_function_similarity(pr["candidate"], pr["reference"])
        got = float(out[i])
        if abs(got - want) > 1e-9:
            bad += 1
            fail(f"bleu pair {i}: got {got!r} want {want!r}: {pr!r}")
    print(f"BLEU method4: {n} pairs, {bad} mismatches")


# ---- 3. RepoQA extraction --------------------------------------------------------------------
FUNCS = {
    "python": ["def add(a, b):\n    return a + b", "async def fetch(url,\n        timeout=3):\n    '''Fetch.\n  doc'''\n    data = await get(url)\n\n    # keep\n    return data",
               "def one(): return 1", "def outer(x):\n    def inner(y):\n        return y\n    return inner(x)"],
    "java": ["public int add(int a, int b) {\n    return a + b;\n}", "@Override\npublic String toString() {\n    return \"}\" + name;\n}",
             "private static <T> List<T> copy(List<T> xs) throws IOException {\n    if (xs == null) { return null; }\n    return new ArrayList<>(xs);\n}"],
    "typescript": ["function add(a: number, b: number): number {\n  return a + b;\n}", "async function load<T>(url: string): Promise<T> {\n  const s = `}${url}`;\n  return JSON.parse(s);\n}"],
    "rust": ["pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}", "pub(crate) async fn name<'a>(s: &'a str) -> &'a str {\n    let c = '}';\n    s\n}", "fn main() {\n    println!(\"{}\", 1);\n}"],
    "cpp": ["int add(int a, int b) {\n  return a + b;\n}", "static std::vector<int> range(int n) {\n  std::vector<int> v; // }\n  for (int i = 0; i < n; i++) { v.push_back(i); }\n  return v;\n}"],
    "go": ["func Add(a, b int) int {\n\treturn a + b\n}", "func Parse(s string) (map[string]interface{}, error) {\n\tm := map[string]interface{}{}\n\treturn m, nil\n}"],
}
PRE = {"python": ["import os", "x = 1", "# helper"], "java": ["import java.util.*;", "// helper"],
       "typescript": ["import { x } from 'y';", "const k = 1;"], "rust": ["use std::io;", "// helper"],
       "cpp": ["#include <vector>", "// helper"], "go": ["package main", "import \"fmt\""]}


def rand_prediction(rng, lang):
    fn = rng.choice(FUNCS[lang])
    tag = rng.choice(["", lang, "py" if lang == "python" else lang, "\u00e9x"])
    body = fn
    if rng.random() < 0.4:
        body = rng.choice(PRE[lang]) + "\n\n" + body
    if rng.random() < 0.3 and lang == "python":
        body = body + "\n\nprint(add(1, 2))"
    block = "```" + tag + rng.choice(["\n", " \n", "\n\n"]) + body + "\n```"
    shape = rng.random()
    if shape < 0.15:
        return body   # no code block at all
    pre = rng.choice(["", "Here is the function:\n", "  Sure!\n\n"])
    post = rng.choice(["", "\nThis function adds.", "\n\n```\nnot closed"])
    if shape < 0.3:
        other = "```\n" + rng.choice(PRE[lang]) + "\n```\n"
        return pre + other + block + post
    if shape < 0.4:
        return pre + "```" + tag + "\n" + rng.choice(PRE[lang]) + "\n```\n\n" + "```text\nno code\n```" + post
    return pre + block + post


def check_sanitize(scbench, rng, tmp, n):
    if not ref.REPOQA_AVAILABLE:
        print("RepoQA extraction: SKIPPED (tree_sitter_languages not installed)")
        return
    rows = []
    for _ in range(n):
        lang = rng.choice(list(FUNCS))
        rows.append({"prediction": rand_prediction(rng, lang), "lang": lang})
    path = os.path.join(tmp, "san.jsonl")
    write_jsonl(path, rows)
    out = run(scbench, ["--repoqa-sanitize", path]).stdout.split("\n")
    bad = 0
    for i, r in enumerate(rows):
        want = ref.sanitize_output(r["prediction"], r["lang"])
        got = json.loads(out[i])
        # BLEU tokens are what the score sees: compare token lists (whitespace at the ends of the
        # node does not change a score) and the exact text
        if got.split() != want.split():
            bad += 1
            fail(f"sanitize {i} ({r['lang']}): got {got!r} want {want!r}; input {r['prediction']!r}")
    print(f"RepoQA extraction vs tree-sitter: {n} predictions, {bad} mismatches")


# ---- 4. end to end ---------------------------------------------------------------------------
def gen_records(rng, task):
    """A prediction file in SCBench's format for task (ids, turns, gt shapes of §4.5)."""
    rows = []
    n_ex = rng.randint(3, 7)
    repos = ["r1", "r2"]
    for ex in range(n_ex):
        n_turns = rng.randint(1, 5) if task == "scbench_mf" else 5
        if task in ("scbench_summary_with_needles", "scbench_repoqa_and_kv"):
            n_turns = rng.randint(2, 8)
        lang = rng.choice(list(FUNCS))
        repo = rng.choice(repos) + "-" + lang
        for t in range(n_turns):
            rec = {"id": ex, "turn_idx": t}
            if task in ("scbench_kv", "scbench_prefix_suffix"):
                gt = "%08x-%04x" % (rng.getrandbits(32), rng.getrandbits(16))
                pred = rng.choice([f"The value is {gt}.", gt.upper(), "none", f"{gt[:-1]}", f"'{gt}'"])
            elif task == "scbench_vt":
                gt = [rng.choice(["X1", "Y22", "var_a", "ZZ"]) for _ in range(rng.randint(1, 4))]
                pred = " ".join(rng.choice(["x1", "Y22", "VAR_A", "zz", "q", "İ"]) for _ in range(rng.randint(0, 4)))
                if rng.random() < 0.2:
                    gt = rng.choice(["X1", "ab"])  # a plain-string answer (char-iteration quirk)
            elif task == "scbench_qa_eng":
                ans = rng.choice(["Paris", "the blue house", "straße", "42"])
                gt = [ans]
                pred = rng.choice([f"It is {ans.lower()}.", "I don't know", ans.upper(), "  " + ans + "  ", "STRASSE"])
            elif task == "scbench_qa_chn":
                gt = rng.choice(["北京大学", "张三", "《红楼梦》", "ΣΑΣ", "1998年"])
                pred = rng.choice(["答案是北京", "张三。", "不知道", "红楼梦", "σας", "", "1998"])
            elif task == "scbench_choice_eng":
                opts = ["red", "blue", "A cat", "D-Day"]
                k = rng.randrange(4)
                gt = [opts[k], "ABCD"[k]]
                pred = rng.choice(["ABCD"[k], "B", f"The answer is {'ABCD'[k]}", "answer: C.", f"{opts[k]}",
                                   "I think it is option is D", "Answer is", " x A b", "answer is:", "The correct answer is (C) blue",
                                   "", "BC", "the option is ÉA"])
            elif task == "scbench_mf":
                gt = rng.randint(0, 999)
                pred = rng.choice([f"{gt}", f"The answer is {gt}.5", f"{gt + 1}", "none", f"-{gt}", f"{gt}.0 and 3",
                                   "３" if gt == 3 else f"x{gt}", "1e5"])
            elif task == "scbench_many_shot":
                gt = rng.choice(["(A)", "(B)", "(C)", "yes"])
                pred = rng.choice(["(a)", "B", "no", "The answer is (C)", "", "YES"])
            elif task in ("scbench_summary",):
                gt = rand_text(rng, 5, 40)
                pred = mutate(rng, gt) if rng.random() < 0.7 else rand_text(rng, 0, 30)
            elif task == "scbench_summary_with_needles":
                if t % 2 == 0 or rng.random() < 0.2:
                    rec["task"] = "scbench_summary"
                    gt = rand_text(rng, 5, 30)
                    pred = mutate(rng, gt)
                else:
                    rec["task"] = "scbench_passkey"
                    gt = str(rng.randint(10000, 99999)) if rng.random() < 0.8 else rng.randint(10000, 99999)
                    pred = rng.choice([f"The passkey is {gt}.", "12345", "none", f"{gt}0"])
            elif task in ("scbench_repoqa", "scbench_repoqa_and_kv"):
                rec["lang"] = lang
                rec["repo"] = repo
                if task == "scbench_repoqa_and_kv" and t % 2 == 1:
                    rec["task"] = "scbench_kv"
                    gt = rng.choice(["k-" + str(rng.randint(0, 99)), "turn_idx", "prediction"])
                    pred = rng.choice([f"value {gt}", "nothing"])
                else:
                    if task == "scbench_repoqa_and_kv":
                        rec["task"] = "scbench_repoqa"
                    fn = rng.choice(FUNCS[lang])
                    gt = fn
                    rec["func_name"] = "fn%d" % FUNCS[lang].index(fn)
                    x = rng.random()
                    if x < 0.5:
                        pred = "```" + lang + "\n" + fn + "\n```"
                    elif x < 0.7:
                        pred = "```\n" + fn.replace("a", "b") + "\n```"
                    else:
                        pred = rand_prediction(rng, lang)
            else:
                raise AssertionError(task)
            rec["prediction"] = pred
            rec["ground_truth"] = gt
            rows.append(rec)
    return rows


TASKS = ["scbench_kv", "scbench_prefix_suffix", "scbench_vt", "scbench_repoqa", "scbench_qa_eng", "scbench_qa_chn",
         "scbench_choice_eng", "scbench_mf", "scbench_many_shot", "scbench_summary", "scbench_summary_with_needles",
         "scbench_repoqa_and_kv"]


def check_e2e(scbench, rng, tmp, files_per_task):
    n_checked = 0
    for task in TASKS:
        if "repoqa" in task and not ref.REPOQA_AVAILABLE:
            print(f"end-to-end {task}: SKIPPED (tree_sitter_languages not installed)")
            continue
        mix = task in ("scbench_summary_with_needles", "scbench_repoqa_and_kv")
        for k in range(files_per_task):
            rows = gen_records(rng, task)
            if k % 2 == 1:
                rng.shuffle(rows)   # turn order of first appearance, needle order: as the file has them
            path = os.path.join(tmp, f"{task}_{k}.jsonl")
            write_jsonl(path, rows)
            for scdq in (False, True):
                for variant in ("faithful", "intended"):
                    try:
                        want = ref.compute_scores(rows, task, scdq_mode=scdq, variant=variant)
                    except (ZeroDivisionError, TypeError, KeyError) as e:
                        want = e
                    p = run(scbench, ["--task", task, "--predictions", path, "--mode",
                                      "multi-request" if scdq else "multi-turn", "--variant", variant], check=False)
                    what = f"{task} file {k} scdq={scdq} {variant}"
                    if isinstance(want, Exception):
                        if p.returncode == 0:
                            fail(f"{what}: SCBench raises {want!r} but scbench scored it")
                        continue
                    if p.returncode != 0:
                        fail(f"{what}: scbench failed: {p.stderr.strip()}")
                        continue
                    got = json.loads(p.stdout)
                    n_checked += 1
                    if got["summary"] != ref.summary_str(want, task, scdq):
                        fail(f"{what}: summary {got['summary']!r} want {ref.summary_str(want, task, scdq)!r}")
                    if got["variant"] != variant:
                        fail(f"{what}: variant field {got['variant']}")
                    if scdq:
                        exp = ref.format_acc(want, task)
                        if got["score"] != (json.loads(json.dumps([float(x) for x in exp])) if mix else float(exp)):
                            fail(f"{what}: score {got['score']} want {exp}")
                        if mix:
                            vals = [want[s] for s in (["scbench_summary", "scbench_passkey"] if task.startswith("scbench_summary")
                                                      else ["scbench_repoqa", "scbench_kv"])]
                        else:
                            vals = [want]
                        for a, b in zip(got["exact"]["pooled"], vals):
                            if abs(a - b) > 1e-12:
                                fail(f"{what}: exact pooled {a} want {b}")
                    else:
                        turns = sorted(want)
                        if got["turns"] != turns:
                            fail(f"{what}: turns {got['turns']} want {turns}")
                            continue
                        for ti, t in enumerate(turns):
                            exp = ref.format_acc(want[t], task)
                            g = got["per_turn"][ti]
                            if (mix and [f"{x:.3f}" for x in g] != exp) or (not mix and f"{g:.3f}" != exp):
                                fail(f"{what}: turn {t}: {g} want {exp}")
                        # overall = mean over the turns (slots: turns that have records of it)
                        if not mix:
                            ov = sum(want[t] for t in turns) / len(turns)
                            if abs(got["exact"]["overall"][0] - ov) > 1e-12:
                                fail(f"{what}: overall {got['exact']['overall'][0]} want {ov}")
    print(f"end-to-end: {n_checked} (file, mode, variant) combinations compared")


# ---- 4b. per-record fuzz of the single scorers ---------------------------------------------------
SOUP = list("abcABC xyz XYZ 0123456789 .,;:!?'\"{}()[]-_\n\t") + ["ß", "İ", "ı", "\u212a", "Σ", "σ", "ς", "ﬁ", "é", "É",
        "中", "文", "。", "，", "！", "“", "”", "\u3000", "\u00a0", "\u2028", "\x1c", "٣", "３", "answer is", "answer:",
        "answer is:", "option is", "Answer", " A", " B", "(A)", "(b)", "ŉ", "ǰ", "\U0001F600", "ΐ", "ǅ"]


def soup(rng, lo=0, hi=12):
    return "".join(rng.choice(SOUP) for _ in range(rng.randint(lo, hi)))


FUZZ = {
    "scbench_choice_eng": lambda rng: [soup(rng, 0, 4), rng.choice("ABCD")],
    "scbench_qa_eng": lambda rng: [soup(rng, 0, 4)],
    "scbench_qa_chn": lambda rng: soup(rng, 0, 6),
    "scbench_many_shot": lambda rng: soup(rng, 0, 4),
    "scbench_vt": lambda rng: [soup(rng, 1, 3) for _ in range(rng.randint(1, 4))],
    "scbench_mf": lambda rng: rng.choice([rng.randint(0, 999), rng.randint(0, 99) + 0.5]),
    "scbench_kv": lambda rng: soup(rng, 0, 3),
}


def check_fuzz(scbench, rng, tmp, n):
    for task, make_gt in FUZZ.items():
        rows = []
        for i in range(n):
            gt = make_gt(rng)
            if isinstance(gt, list) and rng.random() < 0.3 and task != "scbench_vt":
                pred = rng.choice(gt) + soup(rng, 0, 3)
            elif isinstance(gt, str) and rng.random() < 0.3:
                pred = soup(rng, 0, 3) + gt.swapcase()
            elif isinstance(gt, (int, float)) and rng.random() < 0.5:
                pred = soup(rng, 0, 3) + str(gt) + soup(rng, 0, 3)
            else:
                pred = soup(rng, 0, 16)
            rows.append({"id": i, "turn_idx": 0, "prediction": pred, "ground_truth": gt})
        path = os.path.join(tmp, f"fuzz_{task}.jsonl")
        write_jsonl(path, rows)
        bad = 0
        for variant in ("faithful", "intended"):
            p = run(scbench, ["--task", task, "--predictions", path, "--mode", "multi-request", "--variant", variant,
                              "--per-record"], check=False)
            if p.returncode != 0:
                fail(f"fuzz {task} {variant}: scbench failed: {p.stderr.strip()}")
                continue
            got = json.loads(p.stdout)["records"]
            name = ref.Multiturnbench_to_Infinitebench.get(task, task)
            for r, g in zip(rows, got):
                want = ref.get_score_one(r["prediction"], r["ground_truth"], name, variant)
                if g != want:
                    bad += 1
                    fail(f"fuzz {task} {variant}: got {g} want {want} for pred {r['prediction']!r} gt {r['ground_truth']!r}")
        print(f"fuzz {task}: {n} records x 2 variants, {bad} mismatches")


# ---- 5. malformed files ------------------------------------------------------------------------
def check_errors(scbench, tmp):
    cases = {
        "badjson.jsonl": ('{"id": 0, "turn_idx": 0, "prediction": "a", "ground_truth": "a"}\n{"id": 1, "turn_idx": 0,\n', ":2:"),
        "nopred.jsonl": ('{"id": 0, "turn_idx": 0, "ground_truth": "a"}\n', ":1:"),
        "badturn.jsonl": ('\n{"id": 0, "turn_idx": "x", "prediction": "a", "ground_truth": "a"}\n', ":2:"),
        "badgt.jsonl": ('{"id": 0, "turn_idx": 0, "prediction": "a", "ground_truth": 5}\n', "line 1"),
        "empty.jsonl": ("\n\n", "no prediction records"),
    }
    for name, (text, needle) in cases.items():
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        p = run(scbench, ["--task", "scbench_kv", "--predictions", path], check=False)
        if p.returncode == 0 or name not in p.stderr or needle not in p.stderr:
            fail(f"malformed {name}: rc={p.returncode} stderr={p.stderr.strip()!r}")
    p = run(scbench, ["--task", "scbench_kv", "--predictions", os.path.join(tmp, "missing.jsonl")], check=False)
    if p.returncode == 0 or "missing.jsonl" not in p.stderr:
        fail(f"missing file: rc={p.returncode} {p.stderr!r}")
    p = run(scbench, ["--task", "nope", "--predictions", "x"], check=False)
    if p.returncode != 2:
        fail(f"unknown task: rc={p.returncode}")
    print("malformed inputs: checked")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SCB_SEED", "20241215")))
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args()
    print(f"seed {args.seed}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        check_rouge(args.scbench, rng, tmp, args.n)
        check_bleu(args.scbench, rng, tmp, args.n)
        check_sanitize(args.scbench, rng, tmp, args.n // 3)
        check_e2e(args.scbench, rng, tmp, 4)
        check_fuzz(args.scbench, rng, tmp, max(200, args.n // 3))
        check_errors(args.scbench, tmp)
    if FAILS:
        print(f"{len(FAILS)} failures")
        return 1
    print("all parity checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
