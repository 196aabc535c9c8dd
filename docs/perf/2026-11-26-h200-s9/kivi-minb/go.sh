#!/usr/bin/env bash
# KIVI kernel v4's register bound (SCB_KIVI_V4_MINB=3, the default: 154 registers, 3 blocks an
# SM; =4: 128 registers, no spills, 4 blocks an SM), alternating in one call: one layer's
# attention (parity_cuda_kivi --bench) and the engine at 128K (4-layer Llama-3-8B-shaped model).
set -u
L=$OUT/minb; mkdir -p "$L"
S=/tmp/s_k; [ -d $S/bundle ] || { mkdir -p $S; tar -C "$S" -xJf ".gpu_k/bundle.tar.xz"; }
B=$S/bundle
export LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -d /tmp/model ] || ( timeout 150 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1 ) &
for r in 1 2; do for M in 3 4; do
  SCB_KIVI_V4_MINB=$M SCB_KIVI_BENCH_ONLY=1 timeout 100 $B/parity_cuda_kivi --bench --seed 5 > "$L/k_${M}_$r.log" 2>&1
  echo "minb $M: $(grep -E 'kivi_bench' "$L/k_${M}_$r.log" | grep -E 'bits=(2|4)' | grep -oE 'Tk=[0-9]+ bits=[0-9]|v4_us [0-9.]+' | tr '\n' ' ')"
done; done
wait
for r in 1 2; do for M in 3 4; do for K in kivi kivi:bits=4; do
  SCB_KIVI_V4_MINB=$M timeout 150 $B/scbench bench cuda --model /tmp/model --tokens 131072 --decode 128 --method $K > "$L/e_${M}_${K}_$r.log" 2>&1
  echo "128K $K minb=$M rc $? $(grep -E '^floor ' "$L/e_${M}_${K}_$r.log" | grep -oE 'floor +[0-9.]+ ms|measured [0-9.]+ ms/token = [0-9.]+x' | tr '\n' ' ')"
done; done; done
