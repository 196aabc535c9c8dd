#!/usr/bin/env python3
"""method_bind_cli.py — `scbench generate --method SPEC` for every registered method on committed
fixture models (tests/fixtures/models/llama_gqa: G=2, head dim 32; qwen2_yarn: G=4, one KV head,
head dim 16), with scaled-down budgets and with the defaults:

  - every run exits 0, prints the resolved spec as JSON ("method: {...}", the names match) and
    a costs line per turn whose numbers are consistent (physical = G x logical for SCBench's
    per-query-head StreamingLLM/SnapKV/PyramidKV caches, = logical with gqa=true; density in (0, 1],
    below 1 for A-shape at a small window; recall 1 for the exact flat retrieval index, in (0, 1]
    for Quest, -1 for methods without selection);
  - methods whose defaults cover a 120-token prompt (SCBench's budgets are 4096) generate exactly
    the tokens of the engine without --method;
  - bad specs are refused with the method framework's message (exit 2 for a spec that does not
    parse, 1 for options the method refuses at init), no crash.
Prompts are seeded random ids (seed printed; SCB_TEST_SEED overrides). Exits 77 when the fixtures
are absent."""
import argparse
import json
import os
import random
import re
import subprocess
import sys

SCALED = {
    "dense": "dense",
    "a_shape": "a_shape:n_init=4,n_local=24",
    "tri_shape": "tri_shape:n_init=4,n_local=24,n_last=8",
    "minference": "minference:vertical=8,slash=8,last_q=16",
    "streamingllm": "streamingllm:n_init=4,n_local=28",
    "snapkv": "snapkv:budget=40,window=8",
    "pyramidkv": "pyramidkv:budget=40,window=8",
    "kivi": "kivi:group=16,residual=16",
    "cacheblend": "cacheblend",
    "quest": "quest:budget=32,page=8",
    "retr_attn": "retr_attn:top_k=16,n_sink=4,n_recent=8",
}
# defaults that cover a 120-token prompt: the run must equal the engine without --method
COVERING_DEFAULTS = {"dense", "a_shape", "tri_shape", "minference", "streamingllm", "snapkv",
                     "pyramidkv", "retr_attn", "cacheblend"}
PER_QUERY = {"streamingllm", "snapkv", "pyramidkv"}
BAD = [
    ("snapkv:budgt=3", "unknown option 'budgt'"),
    ("a_shape+minference", "both prefill patterns"),
    ("nosuch", "nosuch"),
    ("kivi:bits=x", "bits"),
    ("snapkv:budget=8,window=32", "window"),
]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def parse_costs(stderr, turn):
    m = re.search(rf"^turn {turn} costs: (.*)$", stderr, re.M)
    if not m:
        return None
    return {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    seed = int(os.environ.get("SCB_TEST_SEED", "31337"))
    print(f"# seed {seed} (set SCB_TEST_SEED to change)")
    rng = random.Random(seed)
    root = os.path.join(a.fixtures or "", "models")
    models = [("llama_gqa", 2), ("qwen2_yarn", 4)]
    if not all(os.path.exists(os.path.join(root, m, "config.json")) for m, _ in models):
        print("skip: fixture models absent")
        return 77
    rc, out, err = run([a.scbench, "methods", "--json"])
    assert rc == 0, err
    names = [m["name"] for m in json.loads(out)]
    missing = set(names) - set(SCALED)
    fails = []
    if missing:
        fails.append(f"no scaled spec for registered methods {sorted(missing)}")
    for model, G in models:
        mdir = os.path.join(root, model)
        cfg = json.load(open(os.path.join(mdir, "config.json")))
        V = cfg["vocab_size"]
        ids = ",".join(str(rng.randrange(1, V)) for _ in range(120))
        then = ",".join(str(rng.randrange(1, V)) for _ in range(6))
        base = [a.scbench, "generate", "--model", mdir, "--ids", ids, "--max-new", "6", "--then-ids", then,
                "--threads", "1"]
        rc, dense_out, err = run(base)
        assert rc == 0, err
        for name in names:
            for spec in (SCALED.get(name, name), name):
                if model == "qwen2_yarn" and spec == "kivi":
                    spec = "kivi:group=16"        # head dim 16: the default group of 32 cannot divide it
                rc, out, err = run(base + ["--method", spec])
                tag = f"{model} --method {spec}"
                if rc != 0:
                    fails.append(f"{tag}: exit {rc}: {err.strip()[-300:]}")
                    continue
                m = re.search(r"^method: (\{.*\})$", err, re.M)
                try:
                    js = json.loads(m.group(1)) if m else None
                except json.JSONDecodeError:
                    js = None
                if not js or name not in (js["prefill"]["name"], js["kv"]["name"]):
                    fails.append(f"{tag}: no resolved spec naming {name} on stderr")
                    continue
                c1, c2 = parse_costs(err, 1), parse_costs(err, 2)
                if not c1 or not c2:
                    fails.append(f"{tag}: missing costs lines")
                    continue
                print(f"# {tag}: turn 1 {c1}")
                for c in (c1, c2):
                    if not (c["entries"] > 0 and c["physical_bytes"] > 0 and 0 < c["prefill_density"] <= 1
                            and c["read_bytes_step"] > 0):
                        fails.append(f"{tag}: implausible costs {c}")
                    if c["logical_bytes"] != c["entries"] * 2 * cfg.get("head_dim", 0) * 2 and "head_dim" in cfg:
                        fails.append(f"{tag}: logical bytes != entries x 2 x D x 2: {c}")
                if name in PER_QUERY and c1["physical_bytes"] != G * c1["logical_bytes"]:
                    fails.append(f"{tag}: per-query-head cache should store G={G} x logical bytes: {c1}")
                if name == "retr_attn" and spec != name and c1["recall"] != 1.0:
                    fails.append(f"{tag}: flat index recall should be 1: {c1}")
                if name == "quest" and not 0 < c1["recall"] <= 1:
                    fails.append(f"{tag}: Quest recall should be in (0, 1]: {c1}")
                if name not in ("retr_attn", "quest") and c1["recall"] != -1:
                    fails.append(f"{tag}: recall reported for a non-retrieval method: {c1}")
                if name == "a_shape" and spec != name and not c1["prefill_density"] < 1:
                    fails.append(f"{tag}: a small A-shape window should be sparse: {c1}")
                if spec == name and name in COVERING_DEFAULTS and out != dense_out:
                    fails.append(f"{tag}: defaults cover the prompt but tokens differ from dense:\n{out}\nvs\n{dense_out}")
            # GQA-aware variant stores only KV heads
            if name in PER_QUERY:
                spec = SCALED[name] + ",gqa=true"
                rc, out, err = run(base + ["--method", spec])
                c1 = parse_costs(err, 1) if rc == 0 else None
                if not c1 or c1["physical_bytes"] != c1["logical_bytes"]:
                    fails.append(f"{model} --method {spec}: gqa=true should store logical bytes only: {c1} {err[-200:]}")
        for spec, needle in BAD:
            rc, out, err = run(base + ["--method", spec])
            # parse errors: usage (2); options the model shape refuses: error (1); never a crash
            if rc not in (1, 2) or needle not in err:
                fails.append(f"bad spec {spec!r}: exit {rc}, stderr {err.strip()!r}")
            else:
                print(f"# refused {spec!r}: {err.strip()}")
    if fails:
        print("\n".join("FAIL " + f for f in fails))
        return 1
    print(f"ok: {len(names)} methods x 2 specs x {len(models)} models through scbench generate --method")
    return 0


if __name__ == "__main__":
    sys.exit(main())
