#!/usr/bin/env bash
# gpu_p2kivi.sh — the KIVI decode-attention job (kernel v3, tensor cores) for the GPU machine.
# Set up a folder DIR with this script as go.sh, bundle.tar.xz (tools/gpu_bundle.sh --out DIR),
# tools/make_random_model.py and py/ (tests/py/method_dev_kivi.py, engine_cuda.py), then on the
# GPU machine, from the root of a checkout:
#   OUT=/some/dir bash DIR/go.sh
# 1. parity_cuda_kivi --bench: kernels v1/v2/v3 against methods/kivi.c on the shape grid, then
#    one layer at 32K/128K keys for bits 2/4/8 (v1, v2, v3, v3 partitions sweep);
# 2. `scbench bench cuda --method kivi` (and kivi:bits=4) at 32K and 128K, v3 (default) against
#    v1 (SCB_KIVI_ATTN=v1), on a random 4-layer Llama-3-8B-shaped model;
# 3. tests/py/method_dev_kivi.py (the device binding end to end) if time is left.
# Everything under `timeout`; <= ~120 s. Full logs: $OUT/p2kivi.tgz.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/p2kivi-out}
L=$OUT/p2kivi
mkdir -p "$L"
T0=$(date +%s)
BUDGET=${BUDGET:-118}
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
pack() { tar -C "$OUT" -czf "$OUT/p2kivi.tgz" p2kivi 2>/dev/null; }
trap pack EXIT
S=$(mktemp -d)
tar -C "$S" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/" 2>/dev/null
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 15 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv > "$L/nvidia-smi.txt" 2>&1
head -2 "$L/nvidia-smi.txt" | tail -1
SEED=${SEED:-20261126}
# the model is written on the CPU while the kernel test uses the GPU
( timeout 80 python3 "$D/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
MPID=$!
el "parity_cuda_kivi --bench"
timeout 50 "$B/parity_cuda_kivi" --seed "$SEED" --bench > "$L/parity_kivi.log" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/parity_kivi.log" | tail -8
wait $MPID; el "model: $(tail -1 "$L/model.log")"
run_bench() {   # name tokens method env(- = none) seconds-needed
  local name=$1 T=$2 M=$3 E=$4 need=$5
  [ "$(left)" -lt "$need" ] && { el "skip $name (time)"; return; }
  echo "== $name: ${E/-/} scbench bench cuda --tokens $T --decode 128 --method $M" >> "$L/bench_all.log"
  if [ "$E" = - ]; then timeout $(( $(left) - 2 )) "$B/scbench" bench cuda --model "$S/model" --tokens "$T" --decode 128 --method "$M" > "$L/b.log" 2>&1
  else env "$E" timeout $(( $(left) - 2 )) "$B/scbench" bench cuda --model "$S/model" --tokens "$T" --decode 128 --method "$M" > "$L/b.log" 2>&1; fi
  local rc=$?
  cat "$L/b.log" >> "$L/bench_all.log"
  el "$name rc $rc: $(grep -E '^floor' "$L/b.log" | sed -E 's/^floor +([0-9.]+) ms\/token.*KV read ([0-9.]+) MiB.*measured ([0-9.]+) ms\/token = ([0-9.]+x).*/floor \1 (KV \2 MiB) measured \3 = \4/')"
  grep -iE "error|fail" "$L/b.log" | tail -2
}
run_bench kivi32_v3 32768 kivi - 6
run_bench kivi32_v1 32768 kivi SCB_KIVI_ATTN=v1 6
run_bench kivi128_v3 131072 kivi - 10
run_bench kivi128_v1 131072 kivi SCB_KIVI_ATTN=v1 10
run_bench kivi4_32_v3 32768 kivi:bits=4 - 6
run_bench kivi4_32_v1 32768 kivi:bits=4 SCB_KIVI_ATTN=v1 6
run_bench kivi4_128_v3 131072 kivi:bits=4 - 10
run_bench kivi4_128_v1 131072 kivi:bits=4 SCB_KIVI_ATTN=v1 10
if [ "$(left)" -ge 15 ]; then
  el "method_dev_kivi (limit $(( $(left) - 3 ))s)"
  timeout $(( $(left) - 3 )) python3 "$D/py/method_dev_kivi.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" \
      --seed "$SEED" > "$L/method_dev_kivi.log" 2>&1
  el "rc $?"; grep -E "FAIL|passed|ok$" "$L/method_dev_kivi.log" | tail -4
else
  el "skip method_dev_kivi (time)"
fi
rm -f "$L/b.log"
echo "== summary: bench cuda decode (ms/token) against its bytes floor, 4-layer 8B-shaped model (v3 default vs v1)"
grep -E " rc [0-9]+: " "$L/steps.log" | grep -E "kivi" | sed 's/^\[[^]]*\] //'
echo "== kernel timings (one layer, Hq 32 Hkv 8 D 128; us)"
grep -E "kivi_bench|dense  " "$L/parity_kivi.log" 2>/dev/null | head -10
echo "== v3 partitions sweep: best partitions per KV head (default: 4 blocks per SM = 66 on 132 SMs, rounded to 64-key tiles)"
awk '/^bench:/{for(i=1;i<=NF;i++) if($i=="keys") tk=$(i-1)}
     /kernel v3\) with/{k=tk" "$1; v=$(NF-1)+0; if(!(k in b)||v<b[k]){b[k]=v; s[k]=$5}}
     END{for(k in b) print "  Tk=" k ": " s[k] " partitions " b[k] " us"}' "$L/parity_kivi.log" 2>/dev/null | sort
grep -E "FAIL" "$L/parity_kivi.log" | head -10
el "done"
