#!/usr/bin/env bash
# gpu_methdec.sh — the Quest / KIVI decode job (parity + timings, before/after) for the GPU machine.
# Set up a folder DIR with this script as go.sh, bundle.tar.xz (tools/gpu_bundle.sh --out DIR),
# tools/make_random_model.py and py/ (tests/py/method_dev_kvsel.py, method_dev_kivi.py,
# engine_cuda.py), then on the GPU machine, from the root of a checkout:
#   OUT=/some/dir bash DIR/go.sh
# Quest and KIVI decode: kernel parity (new and old paths), per-launcher timings at 32K/128K,
# then `scbench bench cuda --method` (new path, then the old one through its env switch, dense
# as the baseline) on a random 4-layer Llama-3-8B-shaped model, then the e2e method tests if time
# is left. Everything under `timeout`; <= ~150 s. Full logs: $OUT/methdec.tgz.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/methdec-out}
L=$OUT/methdec
mkdir -p "$L"
T0=$(date +%s)
BUDGET=${BUDGET:-145}
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
pack() { tar -C "$OUT" -czf "$OUT/methdec.tgz" methdec 2>/dev/null; }
trap pack EXIT
S=$(mktemp -d)
tar -C "$S" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/" 2>/dev/null
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 15 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv > "$L/nvidia-smi.txt" 2>&1
head -2 "$L/nvidia-smi.txt" | tail -1
SEED=${SEED:-20261126}
# the model is written on the CPU while the kernel tests use the GPU
( timeout 90 python3 "$D/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
MPID=$!
el "parity_cuda_kvsel --bench"
timeout 45 "$B/parity_cuda_kvsel" --seed "$SEED" --bench > "$L/parity_kvsel.log" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/parity_kvsel.log" | tail -6
el "parity_cuda_kivi --bench"
timeout 40 "$B/parity_cuda_kivi" --seed "$SEED" --bench > "$L/parity_kivi.log" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/parity_kivi.log" | tail -6
wait $MPID; el "model: $(tail -1 "$L/model.log")"
# bench cuda: name tokens method env (env "-" = none); most important first
run_bench() {
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
run_bench quest128_new 131072 quest - 16
run_bench quest128_old 131072 quest SCB_QUEST_DECODE=unfused 16
run_bench kivi32_new 32768 kivi - 8
run_bench kivi32_old 32768 kivi SCB_KIVI_ATTN=v1 8
run_bench quest32_new 32768 quest - 8
run_bench quest32_old 32768 quest SCB_QUEST_DECODE=unfused 8
run_bench dense32 32768 dense - 8
run_bench kivi128_new 131072 kivi - 16
run_bench dense128 131072 dense - 16
run_bench kivi128_old 131072 kivi SCB_KIVI_ATTN=v1 16
for t in kvsel kivi; do
  [ "$(left)" -lt 25 ] && { el "skip method_dev_$t (time)"; continue; }
  el "method_dev_$t (limit $(( $(left) - 5 ))s)"
  timeout $(( $(left) - 5 )) python3 "$D/py/method_dev_$t.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" \
      --seed "$SEED" > "$L/method_dev_$t.log" 2>&1
  el "rc $?"; grep -E "FAIL|passed" "$L/method_dev_$t.log" | tail -4
done
rm -f "$L/b.log"
echo "== summary: bench cuda decode (ms/token) against its bytes floor, 4-layer 8B-shaped model"
grep -E " rc [0-9]+: " "$L/steps.log" | grep -E "_new|_old|dense" | sed 's/^\[[^]]*\] //'
echo "== kernel timings (one layer; us)"
grep -E "quest_bench|kivi_bench" "$L/parity_kvsel.log" "$L/parity_kivi.log" 2>/dev/null | sed 's/^[^:]*: *//' | head -24
el "done"
