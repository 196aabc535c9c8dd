#!/usr/bin/env bash
# Six runs each of RetrievalAttention and KIVI-2 decode at 128K (BUNDLE: a tools/gpu_bundle.sh folder).
set -u
L=$OUT/rep; mkdir -p "$L"
S=/tmp/s_h; rm -rf $S; mkdir -p $S; tar -C "$S" -xJf "${BUNDLE:-.gpu_h}/bundle.tar.xz"
export LD_LIBRARY_PATH="$S/bundle/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -d /tmp/model ] || timeout 120 python3 tools/make_random_model.py --out /tmp/model --layers 4 > "$L/model.log" 2>&1
for i in 1 2 3 4 5 6; do for M in retr_attn kivi; do
  timeout 60 $S/bundle/scbench bench cuda --model /tmp/model --tokens 131072 --decode 128 --method $M > "$L/e_${M}_$i.log" 2>&1
  echo "$M $i $(grep -E '^floor' "$L/e_${M}_$i.log" | tail -n1 | grep -oE 'measured [0-9.]+ ms/token = [0-9.]+x')"
done; done
