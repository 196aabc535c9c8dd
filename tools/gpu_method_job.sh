#!/usr/bin/env bash
# gpu_method_job.sh — the decode-method job for the GPU machine, one method per call:
#   kivi:  the KIVI decode attention (kernel v4, tensor cores, the default; v1 for comparison);
#   quest: the Quest decode selection (v2 = bounds kernel + radix top-k; unfused for comparison).
# Set up a folder DIR with this script, bundle.tar.xz (tools/gpu_bundle.sh --out DIR),
# tools/make_random_model.py and py/ (tests/py/method_dev_kivi.py and engine_cuda.py, or
# tests/py/method_dev_kvsel.py), then on the GPU machine, from the root of a checkout:
#   OUT=/some/dir bash DIR/gpu_method_job.sh kivi|quest
# (a go.sh of one line `exec bash "$(dirname "$0")/gpu_method_job.sh" kivi` runs it as a job).
# 1. the method's kernel parity test with --bench (parity_cuda_kivi: kernels v1..v4 against
#    methods/kivi.c on the shape grid, one layer at 32K/128K for bits 2/4/8 and the v4
#    partitions sweep; parity_cuda_kvsel: every kernel against the CPU reference, one layer's
#    step timings at 32K/128K: unfused, v2 (unroll sweep), v2's top-k alone);
# 2. `scbench bench cuda --method M` at 32K and 128K on a random 4-layer Llama-3-8B-shaped model:
#    kivi and kivi:bits=4 (steps as CUDA graphs, the default, against SCB_CUDA_GRAPHS=0 and
#    kernel v1 at 128K), SnapKV; quest (graphs, the default, against SCB_CUDA_GRAPHS=0 and
#    SCB_QUEST_DECODE=unfused); dense at 128K as the reference;
# 3. the binding end to end (tests/py/method_dev_kivi.py / method_dev_kvsel.py) if time is left,
#    then tests/py/engine_cuda.py (the engine, its CUDA graphs with methods) if 40 s are left.
# Everything under `timeout`, within BUDGET seconds (default ~120; a small BUDGET, e.g. 15, is
# a dry run: the parity step cut short, the rest skipped). Full logs: $OUT/p2kivi.tgz or $OUT/p2quest.tgz.
set -u
export PYTHONUNBUFFERED=1
METHOD=${1:-}
case "$METHOD" in
    kivi) PARITY=parity_cuda_kivi PLOG=parity_kivi.log PT=50 MT=80 BUDGET=${BUDGET:-118} PY=method_dev_kivi PYNEED=15 ;;
    quest) PARITY=parity_cuda_kvsel PLOG=parity_kvsel.log PT=55 MT=60 BUDGET=${BUDGET:-116} PY=method_dev_kvsel PYNEED=22 ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_method_job: usage: gpu_method_job.sh kivi|quest (got '$METHOD')" >&2; exit 2 ;;
esac
NAME=p2$METHOD
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/$NAME-out}
L=$OUT/$NAME
mkdir -p "$L"
T0=$(date +%s)
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
S=$(mktemp -d)
pack() { tar -C "$OUT" -czf "$OUT/$NAME.tgz" "$NAME" 2>/dev/null; rm -rf "$S"; }
trap pack EXIT
tar -C "$S" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/" 2>/dev/null
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 15 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv > "$L/nvidia-smi.txt" 2>&1
head -2 "$L/nvidia-smi.txt" | tail -1
SEED=${SEED:-20261126}
# the model is written on the CPU while the kernel test uses the GPU
( timeout $(( MT < $(left) ? MT : $(left) )) python3 "$D/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
MPID=$!
el "$PARITY --bench"
timeout $(( PT < $(left) ? PT : $(left) )) "$B/$PARITY" --seed "$SEED" --bench > "$L/$PLOG" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/$PLOG" | tail -8
# KIVI_EXTRA_ENV="VAR=value ...": each also times the kernels alone (bench only) under that setting
for X in ${KIVI_EXTRA_ENV:-}; do
  [ "$METHOD" = kivi ] && [ "$(left)" -ge 40 ] || break
  el "bench only, $X"
  env "$X" SCB_KIVI_BENCH_ONLY=1 timeout 30 "$B/$PARITY" --seed "$SEED" --bench > "$L/bench_$X.log" 2>&1; el "rc $?"
  grep -E "kivi_bench" "$L/bench_$X.log" | sed "s/^/  [$X] /" | head -6
done
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
if [ "$METHOD" = kivi ]; then
  run_bench kivi32 32768 kivi - 6
  run_bench kivi32_nograph 32768 kivi SCB_CUDA_GRAPHS=0 6
  run_bench kivi128 131072 kivi - 10
  run_bench kivi128_nograph 131072 kivi SCB_CUDA_GRAPHS=0 10
  run_bench kivi4_32 32768 kivi:bits=4 - 6
  run_bench kivi4_128 131072 kivi:bits=4 - 10
  run_bench kivi128_v1 131072 kivi SCB_KIVI_ATTN=v1 10
  run_bench snapkv128 131072 snapkv - 10
  run_bench dense128 131072 dense - 12
else
  run_bench quest128_v2 131072 quest - 12
  run_bench quest128_nograph 131072 quest SCB_CUDA_GRAPHS=0 12
  run_bench quest128_unfused 131072 quest SCB_QUEST_DECODE=unfused 12
  run_bench quest32_v2 32768 quest - 7
  run_bench quest32_nograph 32768 quest SCB_CUDA_GRAPHS=0 7
  run_bench dense128 131072 dense - 12
fi
if [ "$(left)" -ge $PYNEED ]; then
  el "$PY (limit $(( $(left) - 3 ))s)"
  timeout $(( $(left) - 3 )) python3 "$D/py/$PY.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" \
      --seed "$SEED" > "$L/$PY.log" 2>&1
  el "rc $?"; grep -E "FAIL|passed|ok$" "$L/$PY.log" | tail -4
else
  el "skip $PY (time)"
fi
if [ "$(left)" -ge 40 ]; then
  el "engine_cuda (limit $(( $(left) - 3 ))s)"
  timeout $(( $(left) - 3 )) python3 "$D/py/engine_cuda.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" \
      --seed "$SEED" > "$L/engine_cuda.log" 2>&1
  el "rc $?"; grep -E "FAIL|passed|CUDA graphs" "$L/engine_cuda.log" | tail -4
fi
rm -f "$L/b.log"
if [ "$METHOD" = kivi ]; then
  echo "== summary: bench cuda decode (ms/token) against its bytes floor, 4-layer 8B-shaped model"
  grep -E " rc [0-9]+: " "$L/steps.log" | grep -E "kivi|snapkv|dense" | sed 's/^\[[^]]*\] //'
  echo "== kernel timings (one layer, Hq 32 Hkv 8 D 128; us)"
  grep -E "kivi_bench|dense  " "$L/$PLOG" 2>/dev/null | head -10
  echo "== v4 partitions sweep: best blocks per KV head (default: one full wave, 3 blocks per SM = 49 at Hkv 8 on 132 SMs)"
  awk '/^bench:/{for(i=1;i<=NF;i++) if($i=="keys") tk=$(i-1)}
       /kernel v4\) with/{k=tk" "$1; v=$(NF-1)+0; if(!(k in b)||v<b[k]){b[k]=v; s[k]=$5}}
       END{for(k in b) print "  Tk=" k ": " s[k] " partitions " b[k] " us"}' "$L/$PLOG" 2>/dev/null | sort
else
  echo "== summary: bench cuda decode (ms/token) against its bytes floor, 4-layer 8B-shaped model"
  grep -E " rc [0-9]+: " "$L/steps.log" | grep -E "quest|dense" | sed 's/^\[[^]]*\] //'
  echo "== kernel timings (one layer; us)"
  grep -E "quest_bench" "$L/$PLOG" 2>/dev/null | sed 's/^ *quest_bench //' | head -30
fi
grep -E "FAIL" "$L/$PLOG" | head -10
el "done"
