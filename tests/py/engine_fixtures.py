#!/usr/bin/env python3
"""engine_fixtures.py — the engine against the PyTorch/transformers fixtures written by
tools/make_fixtures.py (tests/fixtures/models/<name>/): logits of every position of each
reference input (max over positions of max|engine-ref| / max|ref| <= 1e-4), greedy
continuations (transformers generate, do_sample=False, with the eos set), and the drop-temp
case (prefill A, generate into temp, drop, prefill B: logits of B == logits of A+B in one
forward; checked through `scbench generate --then-ids` against greedy on A+B from the
fixture). Exits 77 while the fixtures are absent."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REL_TOL = 1e-4


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    root = os.path.join(a.fixtures or "", "models")
    manifest = os.path.join(root, "manifest.json")
    if not os.path.exists(manifest):
        print(f"skip: {manifest} absent (run tools/make_fixtures.py on a machine with torch)")
        return 77
    man = json.load(open(manifest))
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.bin")
        for m in man["models"]:
            mdir = os.path.join(root, m["name"])
            worst = 0.0
            for case in m["cases"]:
                ids = case["ids"]
                p = subprocess.run([a.scbench, "forward", "--model", mdir, "--ids", ",".join(map(str, ids)),
                                    "--out", out], capture_output=True, text=True)
                if p.returncode:
                    fails.append(f"{m['name']} {case['name']}: forward failed: {p.stderr}")
                    continue
                T, V = map(int, p.stdout.split())
                got = np.fromfile(out, dtype="<f4").reshape(T, V).astype(np.float64)
                want = np.fromfile(os.path.join(mdir, case["logits"]), dtype="<f4").reshape(T, V).astype(np.float64)
                e = max(np.abs(got[t] - want[t]).max() / np.abs(want[t]).max() for t in range(T))
                worst = max(worst, e)
                if not e <= REL_TOL:
                    fails.append(f"{m['name']} {case['name']}: rel err {e:.3e} > {REL_TOL}")
                if "greedy" in case:
                    p = subprocess.run([a.scbench, "generate", "--model", mdir, "--ids", ",".join(map(str, ids)),
                                        "--max-new", str(case["max_new"])], capture_output=True, text=True)
                    g = [int(x) for x in p.stdout.split()] if p.returncode == 0 else None
                    if g != case["greedy"]:
                        fails.append(f"{m['name']} {case['name']}: greedy {g} != transformers {case['greedy']}")
            for dt in m.get("drop_temp", []):
                tl = os.path.join(tmp, "then.f32")
                p = subprocess.run([a.scbench, "generate", "--model", mdir, "--ids", ",".join(map(str, dt["a"])),
                                    "--max-new", str(dt["k"]), "--then-ids", ",".join(map(str, dt["b"])),
                                    "--then-logits", tl], capture_output=True, text=True)
                if p.returncode == 0:
                    nb = len(dt["b"])
                    ab = np.fromfile(os.path.join(mdir, dt["logits_ab"]), dtype="<f4").reshape(-1, V)
                    want = ab[len(dt["a"]):].astype(np.float64)
                    got = np.fromfile(tl, dtype="<f4").reshape(nb, V).astype(np.float64)
                    e = max(np.abs(got[t] - want[t]).max() / np.abs(want[t]).max() for t in range(nb))
                    worst = max(worst, e)
                    if not e <= REL_TOL:
                        fails.append(f"{m['name']} drop temp: logits of B after A+temp+drop: rel err {e:.3e}")
                lines = p.stdout.strip().split("\n") if p.returncode == 0 else []
                g2 = [int(x) for x in lines[1].split()] if len(lines) == 2 else None
                if g2 != dt["greedy_after_ab"][: len(g2 or [])] or g2 is None:
                    fails.append(f"{m['name']} drop temp: turn 2 {g2} != greedy on A+B {dt['greedy_after_ab']}")
            print(f"  {m['name']:24s} max rel err {worst:.2e}")
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
