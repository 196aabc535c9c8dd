#!/usr/bin/env python3
"""bench_e2e.py — test of tools/bench_e2e.sh and tools/bench_e2e_hf.py (the end-to-end run timed
next to HF transformers) on the CPU with the built-in model.

Checks:
  1. a real `scbench run` (synthetic scbench_kv, both modes, dense and SnapKV) read back by
     bench_e2e_hf.py --no-hf: one CSV row per recorded session, its tokens prefilled / decoded /
     scbench seconds equal to sums taken here from the database with SQL, and the turn
     accounting consistent with SCBench's cache lifecycle (spec/scbench.md §6: multi-turn
     cached_tokens = all earlier prompts; multi-request: one context, a constant cached length),
     which the tool checks and reports as notes (none expected);
  2. with torch installed: the HF replay on the built-in model (CPU, float32) runs every
     session; it checks its cache length before every turn against scbench's cached_tokens
     (less what SnapKV dropped) and fails otherwise (skipped without torch, as in CI);
  3. bad input: a missing or non-database file, an unknown run id, bench_e2e.sh without a
     tokenizer or with a bad number give a clear message and a non-zero exit.
Exit 0 pass, 77 skip (no built-in model), 1 fail.
"""
import argparse
import csv
import os
import sqlite3
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HF_TOOL = os.path.join(ROOT, "tools", "bench_e2e_hf.py")
SH_TOOL = os.path.join(ROOT, "tools", "bench_e2e.sh")
FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    model = os.path.join(ROOT, "datasets", "builtin")
    if not os.path.isfile(os.path.join(model, "model.safetensors")):
        print("SKIP: no built-in model")
        return 77
    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "e2e.db")
        r = run([a.scbench, "run", "--backend", "cpu", "--threads", "1", "--model", model, "--data",
                 "synthetic", "--tasks", "kv", "--synth-tokens", "600", "--sessions", "2",
                 "--max-turns", "3", "--mode", "both", "--methods", "dense;snapkv:budget=128",
                 "--db", db, "--quiet"])
        check(r.returncode == 0, f"scbench run exit {r.returncode} {r.stderr[-300:]}")
        if r.returncode:
            return 1
        # 1. the database read back
        out = os.path.join(tmp, "out")
        r = run([sys.executable, HF_TOOL, "--db", db, "--no-hf", "--out", out])
        check(r.returncode == 0, f"bench_e2e_hf --no-hf exit {r.returncode} {r.stderr[-300:]}")
        check("note:" not in r.stdout, "no turn-accounting notes (cache lifecycle as SCBench's): "
              + " | ".join(l for l in r.stdout.splitlines() if l.startswith("note:")))
        rows = list(csv.DictReader(open(os.path.join(out, "e2e_sessions.csv"))))
        con = sqlite3.connect(db)
        want = con.execute("SELECT mode, method, session, COUNT(*), SUM(prompt_tokens), "
                           "SUM(generated_tokens), SUM(prefill_ms + decode_ms) FROM turns "
                           "GROUP BY mode, method, session").fetchall()
        check(len(rows) == len(want) == 8, f"{len(rows)} CSV rows, {len(want)} sessions in the db (8)")
        got = {(x["mode"], x["method"], int(x["session"])): x for x in rows}
        for mode, method, sess, n, pt, gt, ms in want:
            x = got.get((mode, method, sess))
            check(x is not None and int(x["turns"]) == n and int(x["prefilled"]) == pt
                  and int(x["decoded"]) == gt and abs(float(x["scbench_s"]) - ms / 1e3) < 1e-3,
                  f"{mode} {method} session {sess}: {n} turns, {pt} prefilled, {gt} decoded, "
                  f"{ms / 1e3:.3f} s (CSV {x and (x['turns'], x['prefilled'], x['decoded'], x['scbench_s'])})")
        md = open(os.path.join(out, "e2e_sessions.md")).read()
        check(md.count("\n| multi_") == 8 + 4, "markdown: 8 session rows and 4 totals")
        con.close()
        # 2. the HF replay (needs torch)
        try:
            import torch  # noqa: F401
            have_torch = True
        except ImportError:
            have_torch = False
        if have_torch:
            r = run([sys.executable, HF_TOOL, "--db", db, "--model", model, "--device", "cpu",
                     "--dtype", "float32", "--out", out, "--seed", "5", "--sdpa", "math"],
                    env=dict(os.environ, OMP_NUM_THREADS="1"))
            check(r.returncode == 0, f"HF replay exit {r.returncode} " + (r.stderr[-400:] if r.returncode else ""))
            rows = list(csv.DictReader(open(os.path.join(out, "e2e_sessions.csv"))))
            check(all(x["hf_s"] and float(x["hf_s"]) > 0 for x in rows), "every session replayed through HF")
            check(all(x["hf_cache"] == ("dense" if x["method"] == "dense" else "cut to 128/head")
                      for x in rows), "HF cache: dense for dense, cut to SnapKV's 128 entries per head")
            # totals: every (mode, method) group with >= 2 sessions gets 'all N' and 'after 1st N-1'
            md = open(os.path.join(out, "e2e_sessions.md")).read()
            groups = {(x["mode"], x["method"]) for x in rows}
            for mode, meth in groups:
                n = sum(1 for x in rows if (x["mode"], x["method"]) == (mode, meth))
                if n > 1:
                    check(f"| {mode} | {meth} | all {n} |" in md and f"| {mode} | {meth} | after 1st {n - 1} |" in md,
                          f"totals 'all {n}' and 'after 1st {n - 1}' for {mode} {meth} in e2e_sessions.md")
            check("sdpa math" in md, "the SDPA backend (--sdpa math) is named in e2e_sessions.md")
        else:
            print("skip HF replay: no torch (CI); the database side was checked")
        # 3. bad input
        junk = os.path.join(tmp, "junk.db")
        open(junk, "w").write("not a database\n")
        for args, what in (([ "--db", os.path.join(tmp, "none.db")], "no such file"),
                           (["--db", junk], "not a readable scbench results database"),
                           (["--db", db, "--runs", "99"], "no finished sessions")):
            r = run([sys.executable, HF_TOOL, "--no-hf", "--out", out] + args)
            check(r.returncode == 1 and what in r.stderr, f"bench_e2e_hf {args[-1]}: exit {r.returncode}, "
                  f"'{what}' in {r.stderr.strip()[-200:]!r}")
        r = run(["bash", SH_TOOL, "--scbench", a.scbench, "--out", out])
        check(r.returncode == 2 and "--tokenizer DIR is required" in r.stderr, f"bench_e2e.sh without "
              f"--tokenizer: exit {r.returncode} {r.stderr.strip()!r}")
        r = run(["bash", SH_TOOL, "--tokens", "8k"])
        check(r.returncode == 2 and "--tokens '8k' is not a number" in r.stderr,
              f"bench_e2e.sh --tokens 8k: exit {r.returncode} {r.stderr.strip()!r}")
        r = run(["bash", SH_TOOL, "--help"])
        check(r.returncode == 0 and "--tokenizer DIR" in r.stdout, "bench_e2e.sh --help")
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
