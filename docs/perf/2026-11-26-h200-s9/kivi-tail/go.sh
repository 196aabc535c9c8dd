#!/usr/bin/env bash
# KIVI kernel v4 with the steps holding full-precision tokens in blocks of their own (.gpu_l)
# against the tree before (.gpu_k), alternating in one call: parity_cuda_kivi (cases and
# --bench with 0, 32 (the default) and 160 full-precision tail tokens) and the engine (KIVI 2 and
# 4 bits, 32K and 128K, 4-layer Llama-3-8B-shaped model, 128 decode tokens).
set -u
L=$OUT/kt; mkdir -p "$L"
for X in k l; do S=/tmp/s_$X; [ -d $S/bundle ] || { mkdir -p $S; tar -C "$S" -xJf ".gpu_$X/bundle.tar.xz"; }; done
export LD_LIBRARY_PATH="/tmp/s_l/bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -d /tmp/model ] || ( timeout 150 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1 ) &
timeout 200 /tmp/s_l/bundle/parity_cuda_kivi --seed 93 > "$L/parity_l.log" 2>&1; echo "parity rc $? $(grep -E 'passed' "$L/parity_l.log")"
grep FAIL "$L/parity_l.log" | head -5
for T in 0 32 160; do for X in k l; do
  SCB_KIVI_BENCH_TAIL=$T SCB_KIVI_BENCH_ONLY=1 timeout 100 /tmp/s_$X/bundle/parity_cuda_kivi --bench --seed 5 > "$L/b_${X}_$T.log" 2>&1
  echo "tail $T $X: $(grep -E 'kivi_bench' "$L/b_${X}_$T.log" | grep -E 'bits=(2|4)' | grep -oE 'Tk=[0-9]+ bits=[0-9]|v4_us [0-9.]+' | tr '\n' ' ')"
done; done
wait
for r in 1 2; do for N in 131072 32768; do for K in kivi kivi:bits=4; do for X in k l; do
  timeout 150 /tmp/s_$X/bundle/scbench bench cuda --model /tmp/model --tokens $N --decode 128 --method $K > "$L/e.log" 2>&1
  echo "$N $K $X rc $? $(grep -E '^floor ' "$L/e.log" | grep -oE 'floor +[0-9.]+ ms|measured [0-9.]+ ms/token = [0-9.]+x' | tr '\n' ' ')"
done; done; done; done
