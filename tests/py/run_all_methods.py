#!/usr/bin/env python3
"""run_all_methods.py — `scbench run --methods all` and `scbench generate --method all` on the
fixture sessions with a tiny random-weight chat model (built as tests/py/run_e2e.py builds it).

The fixture prompts are ~600-1200 tokens, far below SCBench's budgets (4096 entries...), so the
budgets are scaled through overrides ("all;snapkv:budget=64;..."): a later spec of a method that
"all" already holds replaces its defaults. Checks, on the database rows:
  1. every registered method (`scbench methods --json`) has rows in both modes for every
     (task, session, turn), once; cost columns are filled;
  2. StreamingLLM / SnapKV / PyramidKV at budget B keep B entries per stored head per layer after
     a first prefill longer than B: kv_entries == B * L * Hkv (KV-head units) and the physical
     bytes are those of Hq repeated heads in bf16 (B * L * Hq * 2 * D * 2);
  3. KIVI-2 stores about 1/8 of the bf16 bytes plus scales/mins and its 32-token residual:
     logical / 8 < physical < logical / 3 on these lengths;
  4. sparse prefill (A-shape, Tri-shape, MInference) and CacheBlend's blended prefill have
     density < 1 on the long prompts, dense and the KV policies density 1; dense has
     physical == logical;
  5. CacheBlend records reuse in both modes: the first turn's cached_tokens are the tokens of the
     prompt's full 256-token chunks less the 15% recomputed; other methods record 0 there;
  6. `generate --method all` prints one block per registered method.
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

BUDGET = 64
OVERRIDES = [
    f"streamingllm:n_init=4,n_local={BUDGET - 4}",
    f"snapkv:budget={BUDGET}",
    f"pyramidkv:budget={BUDGET}",
    f"quest:budget={BUDGET}",
    "retr_attn:top_k=32,n_sink=4,n_recent=16",
    "a_shape:n_init=4,n_local=60",
    "tri_shape:n_init=4,n_local=60,n_last=8",
    "minference:vertical=30,slash=100",
]


def main():
    st = run_e2e.begin("scb_all_")
    if st is None:
        return 77
    a, tmp, model = st
    fails = []
    try:
        cfg = json.load(open(os.path.join(model, "config.json")))
        L, Hq, Hkv = cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
        D = cfg.get("head_dim") or cfg["hidden_size"] // Hq
        p = subprocess.run([a.scbench, "methods", "--json"], capture_output=True, text=True)
        names = [m["name"] for m in json.loads(p.stdout)]
        data = os.path.join(a.fixtures, "data")
        tasks = ["scbench_kv", "scbench_summary"]
        db = os.path.join(tmp, "all.db")
        spec = ";".join(["all"] + OVERRIDES)
        p = subprocess.run([a.scbench, "run", "--model", model, "--data", data, "--tasks", ",".join(tasks),
                            "--sessions", "1", "--methods", spec, "--threads", "1", "--quiet", "--db", db],
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            print(f"FAIL: run --methods all exited {p.returncode}: {p.stderr[-2000:]}")
            return 1
        con = sqlite3.connect(db)
        cols = ("method", "task", "mode", "session", "turn", "prompt_tokens", "cached_tokens", "kv_entries",
                "kv_bytes_logical", "kv_bytes_physical", "decode_bytes_per_step", "prefill_density")
        rows = [dict(zip(cols, r)) for r in con.execute(f"SELECT {','.join(cols)} FROM turns")]
        con.close()
        base = lambda m: m.split(":")[0]
        # 1. coverage
        for n in names:
            for mode in ("multi_turn", "multi_request"):
                for t in tasks:
                    want = run_e2e.expected_turns(data, t)[0]
                    got = sorted(r["turn"] for r in rows if base(r["method"]) == n and r["mode"] == mode
                                 and r["task"] == t)
                    if got != list(range(want)):
                        fails.append(f"{n} {mode} {t}: turns {got}, want 0..{want - 1}")
        for r in rows:
            for c in cols[5:]:
                if r[c] is None:
                    fails.append(f"{r['method']} {r['task']} {r['mode']} turn {r['turn']}: {c} is NULL")
                    break
        first = [r for r in rows if r["turn"] == 0]
        for r in first:
            m, where = base(r["method"]), f"{r['method']} {r['task']} {r['mode']}"
            if r["prompt_tokens"] <= 4 * BUDGET:
                fails.append(f"{where}: prompt of {r['prompt_tokens']} tokens too short for the checks")
                continue
            logical, phys = r["kv_bytes_logical"], r["kv_bytes_physical"]
            # 2. dropping policies keep the budget
            if m in ("streamingllm", "snapkv", "pyramidkv"):
                if r["kv_entries"] != BUDGET * L * Hkv:
                    fails.append(f"{where}: kv_entries {r['kv_entries']} != {BUDGET}*{L}*{Hkv}")
                if phys != BUDGET * L * Hq * 2 * D * 2:
                    fails.append(f"{where}: physical {phys} != {BUDGET}*{L}*{Hq}*2*{D}*2")
            # 3. KIVI-2
            elif m == "kivi":
                if not (logical / 8 < phys < logical / 3):
                    fails.append(f"{where}: KIVI physical {phys} not in ({logical}/8, {logical}/3)")
            # 4. density
            if m in ("a_shape", "tri_shape", "minference", "cacheblend"):
                if not (0 < r["prefill_density"] < 1):
                    fails.append(f"{where}: density {r['prefill_density']} not < 1")
            elif abs(r["prefill_density"] - 1.0) > 1e-12:
                fails.append(f"{where}: density {r['prefill_density']} != 1")
            if m == "dense" and (phys != logical or r["kv_entries"] * 2 * D * 2 != logical):
                fails.append(f"{where}: dense bytes {logical}/{phys} entries {r['kv_entries']}")
            # 5. reuse: CacheBlend's first prefill reuses k full 256-token chunks less the 15%
            # recomputed (int(0.15 * k * 256)); multi-turn: k = (prompt - 1) // 256 exactly
            if m == "cacheblend":
                blend = lambda k: k * 256 - int(0.15 * k * 256)
                ks = [k for k in range(1, 64) if blend(k) == r["cached_tokens"]]
                if not ks or (r["mode"] == "multi_turn" and ks[0] != (r["prompt_tokens"] - 1) // 256):
                    fails.append(f"{where}: cached_tokens {r['cached_tokens']} is not a 256-chunk blend "
                                 f"of the {r['prompt_tokens']}-token prompt")
            elif r["cached_tokens"] != 0:
                fails.append(f"{where}: first turn cached_tokens {r['cached_tokens']} != 0")
        # 6. generate --method all
        p = subprocess.run([a.scbench, "generate", "--model", model, "--prompt", "Hello there. " * 40,
                            "--max-new", "4", "--threads", "1", "--method", ";".join(["all"] + OVERRIDES)],
                           capture_output=True, text=True, timeout=300)
        heads = [l[len("== method "):].split(":")[0] for l in p.stdout.splitlines() if l.startswith("== method ")]
        if p.returncode != 0 or heads != names:
            fails.append(f"generate --method all: exit {p.returncode}, methods {heads} != {names}: {p.stderr[-500:]}")
        p = subprocess.run([a.scbench, "run", "--model", model, "--data", data, "--methods", "all;nosuch",
                            "--db", os.path.join(tmp, "x.db"), "--quiet"], capture_output=True, text=True)
        if p.returncode == 0 or "nosuch" not in p.stderr:
            fails.append(f"unknown method in a list with all: exit {p.returncode}, {p.stderr!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print(f"ok: --methods all ran {len(names)} methods in both modes; cost columns checked")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
