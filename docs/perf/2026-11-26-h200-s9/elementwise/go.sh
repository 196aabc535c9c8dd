#!/usr/bin/env bash
# The row and elementwise kernels with 16-byte accesses (.gpu_m) against the tree before (.gpu_l),
# in one call: parity_cuda and engine_cuda.py with the new tree, then the engine's prefill and
# decode at 32K (three each, alternating) and 128K (two each) on the 4-layer Llama-3-8B-shaped
# model, and one layer's kernels at 32K under Nsight Compute (gpu__time_duration).
set -u
L=$OUT/ew; mkdir -p "$L"
for X in l m; do S=/tmp/s_$X; [ -d $S/bundle ] || { mkdir -p $S; tar -C "$S" -xJf ".gpu_$X/bundle.tar.xz"; }; done
export LD_LIBRARY_PATH="/tmp/s_m/bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -d /tmp/model ] || ( timeout 150 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1 ) &
timeout 200 /tmp/s_m/bundle/parity_cuda --seed 95 > "$L/parity.log" 2>&1; echo "parity rc $? $(grep -E 'passed' "$L/parity.log" | tail -1)"
grep -E "FAIL" "$L/parity.log" | head -5
grep -E "swiglu|add n|embed V|rope_cs|kv append|rmsnorm T" "$L/parity.log" | head -40 | cut -c1-110
timeout 240 python3 tests/py/engine_cuda.py --scbench /tmp/s_m/bundle/scbench --fixtures tests/fixtures --seed 95 > "$L/engine.log" 2>&1
echo "engine_cuda rc $?"; grep -E "FAIL|passed|ok$" "$L/engine.log" | tail -5
wait
for r in 1 2 3; do for X in l m; do
  timeout 150 /tmp/s_$X/bundle/scbench bench cuda --model /tmp/model --tokens 32768 --decode 64 > "$L/e.log" 2>&1
  echo "32K $X rc $? $(grep -E '^prefill|^floor' "$L/e.log" | grep -oE 'tokens +[0-9.]+ ms|measured [0-9.]+ ms/token = [0-9.]+x' | tr '\n' ' ')"
done; done
for r in 1 2; do for X in l m; do
  timeout 150 /tmp/s_$X/bundle/scbench bench cuda --model /tmp/model --tokens 131072 --decode 32 > "$L/e.log" 2>&1
  echo "128K $X rc $? $(grep -E '^prefill|^floor' "$L/e.log" | grep -oE 'tokens +[0-9.]+ ms|measured [0-9.]+ ms/token = [0-9.]+x' | tr '\n' ' ')"
done; done
timeout 200 ncu --clock-control none --metrics gpu__time_duration.sum --launch-count 20 --csv /tmp/s_m/bundle/scbench bench cuda --model /tmp/model --tokens 32768 --decode 1 2>/dev/null | grep -E '"gpu__time' | awk -F'","' '{print $5, $NF}' | cut -c1-60 | sed 's/"$//'
