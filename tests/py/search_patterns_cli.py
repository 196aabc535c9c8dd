#!/usr/bin/env python3
"""search_patterns_cli.py — `scbench search-patterns` end to end with a tiny random-weight chat
model (built as tests/py/run_e2e.py builds it) on the fixture sessions:
  1. the written file is MInference's JSON format (one object per layer, keys "0".."H-1", values
     [type, vertical_size, slash_size, recall in [0, 1]]) with the searched candidates' sizes;
  2. it loads through minference:config=FILE: `scbench run --methods minference:config=FILE`
     completes on a fixture session and records a first-prefill density < 1;
  3. a budget below every candidate's density makes every head take the cheapest candidate
     (stream_llm 4:16 on these lengths), a budget of 1 with a dense-covering candidate
     (vertical_and_slash larger than the prompt) gives it every head with recall 1;
  4. bad options / data give a clear error and a non-zero exit.
The scoring itself is checked against brute force on planted heads in test_minference_search.c.
Exit 0 pass, 77 skip (tokenizers missing), 1 fail.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e  # noqa: E402


def main():
    st = run_e2e.begin("scb_search_")
    if st is None:
        return 77
    a, tmp, model = st
    fails = []
    try:
        cfg = json.load(open(os.path.join(model, "config.json")))
        L, H = cfg["num_hidden_layers"], cfg["num_attention_heads"]
        data = os.path.join(a.fixtures, "data")
        kv = os.path.join(data, "scbench_kv.jsonl")
        out = os.path.join(tmp, "p.json")
        base = [a.scbench, "search-patterns", "--model", model, "--threads", "1"]
        cands = ["--vs", "30:100,100:200", "--stream", "4:16,16:128", "--block-topk", "4"]
        p = subprocess.run(base + ["--data", kv, "--sessions", "2", "--out", out, "--budget", "0.6"] + cands,
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            print(f"FAIL: search-patterns exited {p.returncode}: {p.stderr[-1500:]}")
            return 1
        conf = json.load(open(out))
        allowed = {("vertical_and_slash", 30, 100), ("vertical_and_slash", 100, 200), ("stream_llm", 4, 16),
                   ("stream_llm", 16, 128), ("block_sparse", 4, 4)}
        if not isinstance(conf, list) or len(conf) != L:
            fails.append(f"config has {len(conf) if isinstance(conf, list) else type(conf)} layers, want {L}")
        else:
            for l, layer in enumerate(conf):
                if sorted(layer, key=int) != [str(h) for h in range(H)]:
                    fails.append(f"layer {l} keys {sorted(layer)}")
                    continue
                for h, v in layer.items():
                    if len(v) != 4 or tuple(v[:3]) not in allowed or not (0.0 <= v[3] <= 1.0):
                        fails.append(f"layer {l} head {h}: {v}")
        # 2. loads and runs
        db = os.path.join(tmp, "r.db")
        p = subprocess.run([a.scbench, "run", "--model", model, "--data", data, "--tasks", "scbench_kv",
                            "--sessions", "1", "--mode", "multi-turn", "--methods",
                            f"minference:config={out},block_topk=4", "--threads", "1", "--quiet", "--db", db],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            fails.append(f"run with the searched config failed: {p.stderr[-1000:]}")
        else:
            con = sqlite3.connect(db)
            dens = [r[0] for r in con.execute("SELECT prefill_density FROM turns WHERE turn = 0")]
            con.close()
            if not dens or not all(0 < d < 1 for d in dens):
                fails.append(f"searched config: first-prefill densities {dens}, want < 1")
        # 3. budgets
        p = subprocess.run(base + ["--data", kv, "--out", out, "--budget", "0.001"] + cands,
                           capture_output=True, text=True, timeout=300)
        conf = json.load(open(out)) if p.returncode == 0 else []
        if p.returncode != 0 or any(tuple(v[:3]) != ("stream_llm", 4, 16) for layer in conf for v in layer.values()):
            fails.append(f"budget 0.001: exit {p.returncode}, heads {conf}")
        p = subprocess.run(base + ["--data", kv, "--out", out, "--vs", "4000:4000", "--stream", "4:16",
                                   "--block-topk", "none"], capture_output=True, text=True, timeout=300)
        conf = json.load(open(out)) if p.returncode == 0 else []
        if p.returncode != 0 or any(tuple(v[:3]) != ("vertical_and_slash", 4000, 4000) or abs(v[3] - 1.0) > 1e-6
                                    for layer in conf for v in layer.values()):
            fails.append(f"covering candidate: exit {p.returncode}, heads {conf}")
        # 4. errors
        for args, want in ((["--data", kv, "--vs", "3:x"], "--vs"),
                           (["--data", os.path.join(tmp, "missing.jsonl"), "--task", "scbench_kv"], "missing"),
                           (["--data", data], "--task"),
                           (["--data", kv, "--budget", "2"], "--budget"),
                           (["--data", kv, "--out", os.path.join(tmp, "no", "dir.json")], "dir.json")):
            p = subprocess.run(base + args, capture_output=True, text=True, timeout=300)
            if p.returncode == 0 or want not in p.stderr:
                fails.append(f"{args}: exit {p.returncode}, stderr {p.stderr[-300:]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print("ok: search-patterns writes a loadable MInference config; budgets and errors checked")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
