#!/usr/bin/env bash
# Job of the ninth session (run on the GPU machine from the tree's root, the bundle of
# tools/gpu_bundle.sh carried as .gpu_k): parity_cuda_retr_attn, tests/py/method_dev_retr_attn.py
# (now with the graph-step checks), and the engine with RetrievalAttention at 32K and 128K on a
# random 4-layer Llama-3-8B-shaped model, its generation steps as replayed CUDA graphs (the
# default) and as plain launches (SCB_CUDA_GRAPHS=0), alternating, same binary.
set -u
L=$OUT/ra; mkdir -p "$L"
S=/tmp/s_k; rm -rf $S; mkdir -p $S; tar -C "$S" -xJf ".gpu_k/bundle.tar.xz"
B=$S/bundle
export LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
( timeout 150 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1 ) &
timeout 200 $B/parity_cuda_retr_attn --seed 91 > "$L/parity.log" 2>&1; echo "parity rc $?"
grep -E "FAIL|passed" "$L/parity.log" | tail -5
timeout 200 python3 tests/py/method_dev_retr_attn.py --scbench $B/scbench --fixtures tests/fixtures --seed 91 > "$L/method_dev.log" 2>&1
echo "method_dev rc $?"; grep -E "FAIL|graphs|bench|ok$" "$L/method_dev.log" | cut -c1-200
wait
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu > "$L/smi.txt" 2>&1
for r in 1 2; do for N in 32768 131072; do for G in 1 0; do
  SCB_CUDA_GRAPHS=$G timeout 150 $B/scbench bench cuda --model /tmp/model --tokens $N --decode 128 --method retr_attn > "$L/e_${N}_g${G}_$r.log" 2>&1
  echo "$N graphs=$G rc $? $(grep -E '^floor\+scan' "$L/e_${N}_g${G}_$r.log" | grep -oE 'floor\+scan +[0-9.]+ ms|measured [0-9.]+ ms/token = [0-9.]+x' | tr '\n' ' ') $(grep -oE 'decode graph [0-9]+ of [0-9]+' "$L/e_${N}_g${G}_$r.log")"
done; done; done
