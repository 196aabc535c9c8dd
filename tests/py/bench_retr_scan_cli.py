#!/usr/bin/env python3
"""bench_retr_scan_cli.py — `scbench bench retr-scan` (harness/cli_bench_retr.c) end to end on a
small shape: exit 0, every SIMD path this CPU has reported bit-identical to the old scan and the
selections identical, the fused step's scores and id sets identical to the two-phase step's (the
command checks all three itself and fails otherwise), the floor printed
from the measured bandwidth and the key bytes (checked here: bf16 bytes of the index range /
bandwidth); bad input (heads not a multiple, no index left, head dim too large, unknown option)
exits 2 naming the option, without a crash. Exit 0 pass, else fail."""
import argparse
import os
import re
import subprocess
import sys


def run(scb, *args):
    return subprocess.run([scb, "bench", "retr-scan", *args], capture_output=True, text=True, timeout=120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures")
    a = ap.parse_args()
    fails = []
    T, Hq, Hkv, D, sink, recent = 3000, 8, 2, 64, 16, 64
    p = run(a.scbench, "--tokens", str(T), "--hq", str(Hq), "--hkv", str(Hkv), "--d", str(D), "--n-sink", str(sink),
            "--n-recent", str(recent), "--top-k", "100", "--reps", "1", "--bw-mib", "32", "--threads", "2",
            "--seed", "7")
    print(p.stdout)
    if p.returncode != 0:
        fails.append(f"exit {p.returncode}: {p.stderr.strip()}")
    else:
        paths = re.findall(r"^new scan +(\w+) +[0-9.]+ ms.*scores (.*)$", p.stdout, re.M)
        if not paths or any(r != "bit-identical to old" for _, r in paths):
            fails.append(f"new scan paths: {paths}")
        if "id sets identical" not in p.stdout:
            fails.append("selection not reported identical")
        fu = re.search(r"^fused +asleep ([0-9.]+) ms .* spinning ([0-9.]+) ms .* selection ([0-9.]+) ms .*"
                       r"scores and id sets (.*)$", p.stdout, re.M)
        if not fu or fu.group(4) != "identical to the two-phase step" or min(map(float, fu.groups()[:3])) <= 0:
            fails.append(f"fused step line: {fu.group(0) if fu else 'missing'}")
        if not re.search(r"^fused step +[0-9.]+ ms asleep / [0-9.]+ ms spinning", p.stdout, re.M):
            fails.append("fused step comparison line missing")
        bw = float(re.search(r"^bandwidth +([0-9.]+) GB/s", p.stdout, re.M).group(1))
        fl = float(re.search(r"^floor +new ([0-9.]+) ms", p.stdout, re.M).group(1))
        want = Hkv * (T - sink - recent) * D * 2 / (bw * 1e6)
        if bw <= 0 or abs(fl - want) > 1e-3 + 1e-2 * want:
            fails.append(f"floor {fl} ms, expected {want:.4f} from bandwidth {bw} GB/s")
    bad = [
        (["--hq", "6", "--hkv", "4"], "--hq 6 is not a multiple of --hkv 4"),
        (["--tokens", "600"], "leaves no index"),
        (["--d", "1000"], "--d"),
        (["--bogus"], "unknown option"),
        (["--spin-us", "-1"], "--spin-us"),
    ]
    for args, msg in bad:
        q = run(a.scbench, *args)
        if q.returncode != 2 or msg not in q.stderr:
            fails.append(f"{args}: exit {q.returncode}, stderr {q.stderr.strip()!r} (want 2 and {msg!r})")
    for f in fails:
        print("FAIL:", f)
    print("bench_retr_scan_cli:", "ok" if not fails else f"{len(fails)} failure(s)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
