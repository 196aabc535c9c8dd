#!/usr/bin/env bash
# one-call A/B of the KIVI tiled code layout: correctness of the new tree, kernel timings old/new
# alternating, engine decode old/new at 128K and 32K, method_dev_kivi + engine_cuda.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd); ROOT=$(pwd); L=$OUT/lay; mkdir -p "$L"
T0=$(date +%s); el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
S=$(mktemp -d); tar -C "$S" -xJf "$D/bundle.tar.xz"; B=$S/bundle
mkdir -p "$S/old"; tar -C "$S/old" -xJf "$D/old.tar.xz"; O=$S/old
trap 'tar -C "$OUT" -czf "$OUT/lay.tgz" lay' EXIT
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 15 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw --format=csv > "$L/smi.txt" 2>&1; tail -n1 "$L/smi.txt"
SEED=${SEED:-71}
( timeout 120 python3 "$ROOT/tools/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
el "parity new"; timeout 150 "$B/parity_cuda_kivi" --seed $SEED > "$L/parity_new.log" 2>&1; el "rc $?"
grep -E "FAIL|passed" "$L/parity_new.log" | tail -n 6
for r in 1; do
  for v in old new; do
    X=$B; [ $v = old ] && X=$O
    SCB_KIVI_BENCH_ONLY=1 timeout 60 "$X/parity_cuda_kivi" --seed $SEED --bench > "$L/bench_${v}$r.log" 2>&1; el "bench $v$r rc $?"
    grep -E "kivi_bench" "$L/bench_${v}$r.log" | sed "s/^/  [$v$r] /" | head -n 8
  done
done
for X in ${EXTRA:-}; do
  env $X SCB_KIVI_BENCH_ONLY=1 timeout 60 "$B/parity_cuda_kivi" --seed $SEED --bench > "$L/bench_$X.log" 2>&1; el "bench $X rc $?"
  grep -E "kivi_bench" "$L/bench_$X.log" | sed "s/^/  [$X] /" | head -n 8
done
timeout 150 "$B/parity_cuda_kivi" --seed 72 > "$L/parity_new72.log" 2>&1; el "parity seed 72 rc $?"; grep -E "FAIL|passed" "$L/parity_new72.log" | tail -n 4
wait; el "model $(tail -n1 $L/model.log)"
eb() { # name binary-dir tokens method
  timeout 90 "$2/scbench" bench cuda --model "$S/model" --tokens "$3" --decode 128 --method "$4" > "$L/e_$1.log" 2>&1
  el "$1 rc $?: $(grep -E '^floor' "$L/e_$1.log" | head -n1)"
}
for T in 131072 32768; do
  for M in kivi kivi:bits=4; do eb "new_${M}_$T" $B $T $M; eb "old_${M}_$T" $O $T $M; done
done
eb new_dense_131072 $B 131072 dense
el "method_dev_kivi"; timeout 120 python3 "$ROOT/tests/py/method_dev_kivi.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" --seed $SEED > "$L/method_dev_kivi.log" 2>&1; el "rc $?"
tail -n 3 "$L/method_dev_kivi.log"
el "engine_cuda"; timeout 150 python3 "$ROOT/tests/py/engine_cuda.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" --seed $SEED > "$L/engine_cuda.log" 2>&1; el "rc $?"
tail -n 3 "$L/engine_cuda.log"
el done
