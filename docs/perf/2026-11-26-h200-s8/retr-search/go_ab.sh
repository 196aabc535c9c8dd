#!/usr/bin/env bash
# A/B job of the eighth session (run on the GPU machine from the tree's root, with two bundles
# from tools/gpu_bundle.sh carried as .gpu_old and .gpu_new): parity_cuda_retr_attn --bench with
# each, the flat search alone at 128K and 32K (PARITY_RETR_SCAN_ONLY), and the engine with
# RetrievalAttention at 32K and 128K on a random 4-layer Llama-3-8B-shaped model.
set -u
L=$OUT/ab; mkdir -p "$L"
for X in old new; do S=/tmp/s_$X; rm -rf $S; mkdir -p $S; tar -C "$S" -xJf ".gpu_$X/bundle.tar.xz"; done
export LD_LIBRARY_PATH="/tmp/s_new/bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -d /tmp/model ] || ( timeout 120 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1 ) &
for X in new old; do
  timeout 200 /tmp/s_$X/bundle/parity_cuda_retr_attn --seed 51 --bench > "$L/parity_$X.log" 2>&1; echo "$X parity rc $?"
  grep -E "FAIL|passed|device attention|device flat|top-k alone" "$L/parity_$X.log" | grep -v "lists differ" | head
done
for r in 1 2; do for N in 131072 32768; do for X in old new; do
  PARITY_RETR_SCAN_ONLY=$N timeout 60 /tmp/s_$X/bundle/parity_cuda_retr_attn --seed 5 2>&1 |
    grep -E "retrieval|top-k alone|rror" | tr -s ' ' | tr '\n' ' ' | sed "s/^/$X: /"; echo
done; done; done
wait
for V in old:32768 new:32768 old:131072 new:131072; do IFS=: read X N <<< "$V"
  timeout 120 /tmp/s_$X/bundle/scbench bench cuda --model /tmp/model --tokens $N --decode 64 --method retr_attn > "$L/e_${X}_$N.log" 2>&1
  echo "$X $N rc $? $(grep -E '^floor\+scan' "$L/e_${X}_$N.log" | grep -oE 'measured [0-9.]+ ms/token = [0-9.]+x')"
done
