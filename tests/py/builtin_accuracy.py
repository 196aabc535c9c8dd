#!/usr/bin/env python3
"""builtin_accuracy.py — end-to-end accuracy bands of the built-in model (datasets/builtin/).

Runs `scbench run` on a small fixed-seed synthetic suite (Retr.KV, Retr.Prefix-Suffix and the
pass-key needles, 2K-token contexts, both shared-context modes) with full attention and with StreamingLLM at a
10% KV budget, reads the per-turn scores from the results database and asserts bands that
separate the two:
  * dense: >= 80% on Retr.KV and the needles, >= 50% on Retr.Prefix-Suffix (the built-in model
    copies its 65-122 character answers exactly about 3 times in 4);
  * streamingllm (10%): <= 30% on Retr.KV and Retr.Prefix-Suffix, <= 40% on the needles;
  * dense - streamingllm >= 50 points on Retr.KV, 40 on the needles, 30 on Retr.Prefix-Suffix,
    in both modes.
The bands come from the design targets (docs/builtin-model.md): full attention retrieves, a
10% sliding window with sinks cannot reach a key or needle outside the window. A regression in
the engine (RoPE, GQA, KV cache), the run driver (prompts, modes, truncation), a method or a
scorer moves a cell across its band. The seed is fixed (printed) so the suite is
deterministic; it is disjoint from the training seeds (tools/train_builtin.sh).

Usage: builtin_accuracy.py --scbench PATH --fixtures DIR [--seed N]
Exit 0 pass, 77 skip (no built-in model), 1 fail."""
import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

DENSE_MIN = {"scbench_kv": 0.80, "scbench_summary_with_needles": 0.80, "scbench_prefix_suffix": 0.50}
STREAM_MAX = {"scbench_kv": 0.30, "scbench_summary_with_needles": 0.40, "scbench_prefix_suffix": 0.30}
GAP_MIN = {"scbench_kv": 0.50, "scbench_summary_with_needles": 0.40, "scbench_prefix_suffix": 0.30}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--sessions", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    model = os.path.normpath(os.path.join(a.fixtures, "..", "..", "datasets", "builtin"))
    if not os.path.exists(os.path.join(model, "config.json")):
        print(f"SKIP: no built-in model in {model}")
        return 77
    budget = a.tokens // 10
    stream = f"streamingllm:n_init=16,n_local={budget - 16}"
    print(f"seed {a.seed}, {a.tokens} tokens, {a.sessions} sessions, methods dense;{stream}")
    with tempfile.TemporaryDirectory(prefix="scb_builtin_") as tmp:
        db = os.path.join(tmp, "run.db")
        cmd = [a.scbench, "run", "--model", model, "--data", "synthetic", "--tasks", "kv,passkey,prefix_suffix",
               "--synth-tokens", str(a.tokens), "--seed", str(a.seed), "--sessions", str(a.sessions),
               "--mode", "both", "--methods", f"dense;{stream}", "--db", db, "--threads", str(a.threads),
               "--quiet"]
        t0 = time.time()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        print(f"scbench run: exit {r.returncode}, {time.time() - t0:.1f} s")
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
            print("FAIL: scbench run failed")
            return 1
        con = sqlite3.connect(db)
        rows = con.execute("SELECT method, task, mode, avg(score), count(*) FROM turns "
                           "GROUP BY method, task, mode ORDER BY method, task, mode").fetchall()
        con.close()
    cells = {}
    for method, task, mode, score, n in rows:
        kind = "dense" if method == "dense" else "stream"
        cells[(kind, task, mode)] = (score, n)
        print(f"  {method:40s} {task:30s} {mode:14s} {100 * score:6.1f}% of {n} turns")
    fails = []
    for task in STREAM_MAX:
        for mode in ("multi_turn", "multi_request"):
            d, s = cells.get(("dense", task, mode)), cells.get(("stream", task, mode))
            if d is None or s is None:
                fails.append(f"{task} {mode}: no rows")
                continue
            if d[1] != 5 * a.sessions or s[1] != 5 * a.sessions:
                fails.append(f"{task} {mode}: {d[1]}/{s[1]} turns, expected {5 * a.sessions}")
            if d[0] < DENSE_MIN[task]:
                fails.append(f"{task} {mode}: dense {100 * d[0]:.1f}% < {100 * DENSE_MIN[task]:.0f}%")
            if s[0] > STREAM_MAX[task]:
                fails.append(f"{task} {mode}: streamingllm {100 * s[0]:.1f}% > {100 * STREAM_MAX[task]:.0f}%")
            if d[0] - s[0] < GAP_MIN[task]:
                fails.append(f"{task} {mode}: dense - streamingllm = {100 * (d[0] - s[0]):.1f} points "
                             f"< {100 * GAP_MIN[task]:.0f}")
    for f in fails:
        print("FAIL:", f)
    if fails:
        return 1
    print("PASS: dense and StreamingLLM (10%) within their bands")
    return 0


if __name__ == "__main__":
    sys.exit(main())
