#!/usr/bin/env bash
# gpu_decode_job.sh — the decode work's GPU job (issue #5), copied as .gpu_decode/go.sh next to a
# bundle from tools/gpu_bundle.sh and run from the root of a checkout: `bash .gpu_decode/go.sh`.
# Correctness first (parity_cuda: every kernel against the CPU reference, incl. the GEMV path,
# the tiled/v1/device-Tk decode kernels, kv_append_dev, rope_table_dev), then the engine's decode
# speed on a 4-layer Llama-3-8B-shaped random model at 128K / 32K / 4K for each variant
# (SCB_GEMV=cublas|auto, SCB_ATTN_DECODE=v1|tiled, SCB_CUDA_GRAPHS=0|1|rerecord) next to the
# bytes floor, the kernel pieces (bench_cuda --decode) and tests/py/engine_cuda.py (--backend
# cuda vs the fixtures and the CPU engine, graphs replayed and re-recorded). Everything runs
# under `timeout` within DECODE_BUDGET seconds (default 140). Logs: $OUT/decode.tgz; a compact
# summary (most important lines first) on stdout.
set -u
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$D/.." && pwd)
OUT=${OUT:-/tmp/decode-out}
L=$OUT/decode
mkdir -p "$L"
export PYTHONUNBUFFERED=1
T0=$(date +%s)
BUDGET=${DECODE_BUDGET:-140}
SEED=${SCB_SEED:-20261126}
SUM=$L/summary.txt
: > "$SUM"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
note() { echo "[+$(( $(date +%s) - T0 ))s] $*" >> "$L/steps.log"; }
# step NAME LIMIT CMD...: CMD under timeout min(LIMIT, time left - 3 s), output to $L/NAME.log
step() {
    local name=$1 lim=$2 l rc; shift 2
    l=$(( $(left) - 3 ))
    [ "$lim" -gt "$l" ] && lim=$l
    if [ "$lim" -le 2 ]; then note "$name SKIPPED (budget)"; echo "SKIPPED (budget)" > "$L/$name.log"; return 124; fi
    timeout -k 2 "$lim" "$@" > "$L/$name.log" 2>&1
    rc=$?
    note "$name rc=$rc (limit ${lim}s)"
    return $rc
}
finish() {
    note "done"
    tar -C "$OUT" -czf "$OUT/decode.tgz" decode 2>/dev/null
    echo "==== decode job summary (full logs: decode.tgz) ===="
    cat "$SUM"
    [ -n "${S:-}" ] && rm -rf "$S"
}
trap finish EXIT

S=$(mktemp -d "${TMPDIR:-/tmp}/decode.XXXXXX")
tar -C "$S" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack bundle" >> "$SUM"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/bundle_info.txt" 2>/dev/null
LD_LIBRARY_PATH="$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"; done
export LD_LIBRARY_PATH
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,memory.used,memory.total --format=csv > "$L/gpu.txt" 2>&1
echo "gpu: $(tail -n 1 "$L/gpu.txt")" >> "$SUM"

# the random model, written while parity runs
( timeout 70 python3 "$ROOT/tools/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1
  echo "rc=$?" >> "$L/model.log" ) &
MPID=$!

step parity 40 "$B/parity_cuda" --seed "$SEED"
echo "parity_cuda (seed $SEED): $(grep -E 'passed|SKIP' "$L/parity.log" | tail -n 1)" >> "$SUM"
grep -E "FAIL" "$L/parity.log" | cut -c1-120 | head -n 8 >> "$SUM"

wait $MPID
note "model: $(tail -n 1 "$L/model.log")"
# eng NAME TOKENS [VAR=VALUE...]: scbench bench cuda on the random model; one summary line
eng() {
    local name=$1 tok=$2; shift 2
    [ -f "$S/model/config.json" ] || { echo "$name: no model ($(tail -n 1 "$L/model.log"))" >> "$SUM"; return; }
    step "eng_$name" 30 env "$@" "$B/scbench" bench cuda --model "$S/model" --tokens "$tok" --decode 128
    local rc=$?
    local ms fl gr
    ms=$(grep -oE '[0-9.]+ ms/token' "$L/eng_$name.log" | head -n 1)
    fl=$(grep -E '^floor' "$L/eng_$name.log" | sed -E 's/^floor +([0-9.]+) ms\/token.*= ([0-9.]+x) the floor.*/floor \1 ms, \2/')
    gr=$(grep -oE '^decode graph [0-9]+ of [0-9]+' "$L/eng_$name.log" | sed 's/decode graph/graphs/')
    printf '%-13s %-8s %-16s %-26s %s rc=%s\n' "$name" "T=$tok" "$ms" "$fl" "$gr" "$rc" >> "$SUM"
    echo "$name: $*" >> "$L/variants.txt"
    [ $rc -ne 0 ] && tail -n 3 "$L/eng_$name.log" | sed 's/^/    /' >> "$SUM"
}
echo "---- engine decode, 4-layer 8B-shaped model (ms/token, floor, ratio) ----" >> "$SUM"
eng new_128k      131072
eng new_128k_g1   131072 SCB_CUDA_GRAPHS=1
eng new_32k       32768
eng new_32k_g1    32768  SCB_CUDA_GRAPHS=1
eng old_32k       32768  SCB_GEMV=cublas SCB_ATTN_DECODE=v1

step engine_e2e 40 python3 "$D/py/engine_cuda.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" --seed "$SEED"
ERC=$?
echo "engine_cuda.py: exit $ERC; $(grep -cE '^FAIL|FAIL' "$L/engine_e2e.log") FAIL lines" >> "$SUM"
grep -E "FAIL|CUDA graphs|rand D" "$L/engine_e2e.log" | cut -c1-160 | head -n 5 >> "$SUM"

echo "---- kernel pieces (bench_cuda --decode: ms median, GB/s, % of copy) ----" >> "$SUM"
step pieces 30 "$B/bench_cuda" --decode --csv "$L/pieces.csv"
# one line per projection shape and per decode length (GB/s and % of the copy ceiling)
[ -f "$L/pieces.csv" ] && python3 - "$L/pieces.csv" >> "$SUM" 2>&1 <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
by = {}
for r in rows:
    by.setdefault(r["shape"], []).append(r)
for r in rows:
    if r["kernel"] == "copy_peak":
        print(f"copy peak {float(r['gbps']):.0f} GB/s")
for shape, rs in by.items():
    k = rs[0]["kernel"]
    if k.startswith("proj_"):
        main = [f"{r['kernel'][5:]} {float(r['ms_median']) * 1e3:.0f}us {float(r['pct_of_peak']):.0f}%"
                for r in rs if r["kernel"] in ("proj_cublas", "proj_gemv")]
        cfg = [r for r in rs if r["kernel"].startswith("proj_gemv_")]
        best = max(cfg, key=lambda r: float(r["pct_of_peak"])) if cfg else None
        tail = f", best {best['kernel'][10:]} {float(best['pct_of_peak']):.0f}%" if best else ""
        print(f"{shape}: " + ", ".join(main) + tail)
    elif k.startswith("dec_"):
        parts = [f"{r['kernel'][4:].replace('tiled_splits=', 's')} {float(r['pct_of_peak']):.0f}%" for r in rs]
        us = float(rs[0]["ms_median"]) * 1e3
        print(f"{shape.replace(' Hq=32 Hkv=8 D=128', '').replace('Tq=1 ', '')} ({us:.0f}us): " + " ".join(parts))
PY

echo "---- engine decode, more variants ----" >> "$SUM"
eng old_128k      131072 SCB_GEMV=cublas SCB_ATTN_DECODE=v1
eng new_4k        4096
eng new_4k_g1     4096   SCB_CUDA_GRAPHS=1
eng new_4k_rerec  4096   SCB_CUDA_GRAPHS=rerecord
eng cublas_32k    32768  SCB_GEMV=cublas
eng v1attn_32k    32768  SCB_ATTN_DECODE=v1

