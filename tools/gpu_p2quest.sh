#!/usr/bin/env bash
# gpu_p2quest.sh — the Quest decode-selection job (v2 = bounds kernel + radix top-k) for the GPU
# machine. Set up a folder DIR with this script as go.sh, bundle.tar.xz (tools/gpu_bundle.sh --out
# DIR), tools/make_random_model.py and py/method_dev_kvsel.py, then from the root of a checkout:
#   OUT=/some/dir bash DIR/go.sh
# 1. parity_cuda_kvsel --bench: every kernel against the CPU reference (the new top-k and
#    step_select2 included), then one layer's step timings at 32K/128K: unfused
#    v2 (unroll sweep) and v2's top-k alone.
# 2. `scbench bench cuda --method quest` at 128K and 32K: v2 (default), unfused; dense at
#    128K as the reference; a random 4-layer Llama-3-8B-shaped model.
# 3. tests/py/method_dev_kvsel.py if time is left. Everything under `timeout`; <= ~118 s.
# Full logs: $OUT/p2quest.tgz.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/p2quest-out}
L=$OUT/p2quest
mkdir -p "$L"
T0=$(date +%s)
BUDGET=${BUDGET:-116}
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
S=$(mktemp -d)
pack() { tar -C "$OUT" -czf "$OUT/p2quest.tgz" p2quest 2>/dev/null; rm -rf "$S"; }
trap pack EXIT
tar -C "$S" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/" 2>/dev/null
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 10 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv > "$L/nvidia-smi.txt" 2>&1
head -2 "$L/nvidia-smi.txt" | tail -1
SEED=${SEED:-20261126}
# the model is written on the CPU while the kernel tests use the GPU
( timeout 60 python3 "$D/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
MPID=$!
el "parity_cuda_kvsel --bench"
timeout 55 "$B/parity_cuda_kvsel" --seed "$SEED" --bench > "$L/parity_kvsel.log" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/parity_kvsel.log" | tail -8
wait $MPID; el "model: $(tail -1 "$L/model.log")"
run_bench() {   # name tokens method env (env "-" = none) seconds-needed
  local name=$1 T=$2 M=$3 E=$4 need=$5
  [ "$(left)" -lt "$need" ] && { el "skip $name (time)"; return; }
  local A=(); [ "$M" != dense ] && A=(--method "$M")
  echo "== $name: ${E/-/} scbench bench cuda --tokens $T --decode 128 ${A[*]}" >> "$L/bench_all.log"
  if [ "$E" = - ]; then timeout $(( $(left) - 2 )) "$B/scbench" bench cuda --model "$S/model" --tokens "$T" --decode 128 "${A[@]}" > "$L/b.log" 2>&1
  else env "$E" timeout $(( $(left) - 2 )) "$B/scbench" bench cuda --model "$S/model" --tokens "$T" --decode 128 "${A[@]}" > "$L/b.log" 2>&1; fi
  local rc=$?
  cat "$L/b.log" >> "$L/bench_all.log"
  el "$name rc $rc: $(grep -E '^floor' "$L/b.log" | sed -E 's/^floor +([0-9.]+) ms\/token.*KV read ([0-9.]+) MiB.*measured ([0-9.]+) ms\/token = ([0-9.]+x).*/floor \1 (KV \2 MiB) measured \3 = \4/')"
  grep -iE "error|fail" "$L/b.log" | tail -2
}
run_bench quest128_v2 131072 quest - 12
run_bench quest128_unfused 131072 quest SCB_QUEST_DECODE=unfused 12
run_bench quest32_v2 32768 quest - 7
run_bench quest32_unfused 32768 quest SCB_QUEST_DECODE=unfused 7
run_bench dense128 131072 dense - 12
if [ "$(left)" -ge 22 ]; then
  el "method_dev_kvsel (limit $(( $(left) - 3 ))s)"
  timeout $(( $(left) - 3 )) python3 "$D/py/method_dev_kvsel.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" \
      --seed "$SEED" > "$L/method_dev_kvsel.log" 2>&1
  el "rc $?"; grep -E "FAIL|passed" "$L/method_dev_kvsel.log" | tail -4
else
  el "skip method_dev_kvsel (time)"
fi
rm -f "$L/b.log"
echo "== summary: bench cuda decode (ms/token) against its bytes floor, 4-layer 8B-shaped model"
grep -E " rc [0-9]+: " "$L/steps.log" | grep -E "quest|dense" | sed 's/^\[[^]]*\] //'
echo "== kernel timings (one layer; us)"
grep -E "quest_bench" "$L/parity_kvsel.log" 2>/dev/null | sed 's/^ *quest_bench //' | head -30
el "done"
