#!/usr/bin/env python3
"""data_cli.py — `scbench data check` and `scbench data synth` against Python.

check: on every fixture of tests/fixtures/data, the session/turn counts and the min/mean/max
context characters printed by scbench equal what Python's json + len() (len(str(list)) for
Math.Find) give; malformed fixtures exit 1 and name the line and field.
synth: with the real Llama-3 tokenizer (shared/tokenizers/llama3), every synthetic task's
context has at most --tokens tokens by the HF `tokenizers` library and at least 97% of it;
the same seed gives the same bytes; answers are re-derived from the context in Python.
Exit 0 pass, 77 skip (no `data` command in this build, or no tokenizer files), else fail."""
import argparse, ast, json, os, re, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
a = ap.parse_args()

def run(*args, check=True):
    p = subprocess.run([a.scbench, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        sys.exit(f"FAIL: scbench {' '.join(args)} -> {p.returncode}\n{p.stderr}")
    return p

if subprocess.run([a.scbench, "data", "--help"], capture_output=True).returncode != 0:
    print("SKIP: this scbench has no `data` command"); sys.exit(77)

# ---- check: counts and character statistics ------------------------------------------------
data_dir = os.path.join(a.fixtures, "data")
for name in sorted(os.listdir(data_dir)):
    if not name.endswith(".jsonl"):
        continue
    path = os.path.join(data_dir, name)
    rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    lens = [len(r["context"]) if isinstance(r["context"], str) else len(str(r["context"])) for r in rows]
    out = run("data", "check", path).stdout
    m = re.search(r"(\d+) sessions, (\d+) turns, 0 bad lines, 0 problems", out)
    assert m, out
    assert int(m.group(1)) == len(rows), (name, out)
    assert int(m.group(2)) == sum(len(r["multi_turns"]) for r in rows), (name, out)
    m = re.search(r"characters min (\d+) mean ([\d.]+) max (\d+)", out)
    assert m and int(m.group(1)) == min(lens) and int(m.group(3)) == max(lens), (name, out, lens)
    assert abs(float(m.group(2)) - sum(lens) / len(lens)) < 0.051, (name, out, lens)
bad = os.path.join(data_dir, "bad", "missing_turns.jsonl")
p = run("data", "check", bad, check=False)
assert p.returncode == 1 and f"{bad}:2: field 'multi_turns' missing" in p.stdout, p.stdout
print("check: counts and character statistics match Python on every fixture")

# ---- synth with the real tokenizer ------------------------------------------------------------
tok_dir = os.path.join(a.shared or "", "tokenizers", "llama3")
if not os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
    print("SKIP: no tokenizer files"); sys.exit(77)
from tokenizers import Tokenizer
tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))

def derive(task, r):
    ctx = r["context"]
    for t in r["multi_turns"]:
        q, ans = t["input"], t["answer"]
        if task == "kv":
            key = re.match(r'Key: "([^"]+)"', q).group(1)
            assert json.loads(ctx)[key] == ans and ctx.count(ans) == 1
        elif task == "prefix_suffix":
            px, sx = re.match(r"Prefix: ([^;]+); Suffix: ([^.]+)\.", q).groups()
            words = ast.literal_eval(ctx[len("Dictionary = "):])   # a Python list literal
            assert [w for w in words if w.startswith(px) and w.endswith(sx)] == [ans]
        elif task == "vt":
            val = re.search(r"assigned the value (\d+)", q).group(1)
            env = {}
            for n, v in re.findall(r"VAR (\w+) = (\w+)", ctx):
                env[n] = env[v] if v in env else v
            assert sorted(n for n, v in env.items() if v == val) == sorted(ans)
        elif task == "mf":
            s = sorted(ctx)
            target = re.findall(r"The .+ is", q)[0].lower()[:-3]
            want = {"the largest number of the list": s[-1], "the smallest number of the list": s[0],
                    "the median of the list": s[len(s) // 2],
                    "the second largest number of the list": s[-2],
                    "the second smallest number of the list": s[1]}[target]
            assert ans == want
        elif task == "passkey":
            label = re.match(r"What is the pass key of the (.+)\?", q).group(1)
            assert re.findall(rf"The pass key of the {label} is (\d+)\.", ctx) == [ans]

with tempfile.TemporaryDirectory() as d:
    for task, n in [("kv", 3000), ("prefix_suffix", 3000), ("vt", 2500), ("mf", 2000), ("passkey", 2500)]:
        outs = []
        for rep in range(2):
            o = os.path.join(d, f"scbench_{task}_{rep}.jsonl")
            run("data", "synth", "--task", task, "--tokens", str(n), "--sessions", "2", "--seed", "11",
                "--model", tok_dir, "--out", o)
            outs.append(open(o, "rb").read())
        assert outs[0] == outs[1], f"{task}: same seed gave different bytes"
        for line in outs[0].decode().splitlines():
            r = json.loads(line)
            ctx = r["context"] if isinstance(r["context"], str) else str(r["context"])
            k = len(tok.encode(ctx, add_special_tokens=False).ids)
            assert 0.97 * n <= k <= n, f"{task}: {k} tokens for target {n}"
            derive(task, r)
        print(f"synth {task}: lengths within [0.97 N, N] by HF tokenizers, answers derivable")
print("PASS")
