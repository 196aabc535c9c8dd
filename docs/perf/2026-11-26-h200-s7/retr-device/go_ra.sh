#!/usr/bin/env bash
# RetrievalAttention's device retrieval: parity (device lists = host lists), method_dev_retr_attn
# (both SCB_RETR_SEARCH modes), engine decode at 32K / 128K with device and host search.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd); ROOT=$(pwd); L=$OUT/ra; mkdir -p "$L"
T0=$(date +%s); el() { echo "[+$(( $(date +%s) - T0 ))s] $*" | tee -a "$L/steps.log"; }
S=$(mktemp -d); tar -C "$S" -xJf "$D/bundle.tar.xz"; B=$S/bundle
trap 'tar -C "$OUT" -czf "$OUT/ra.tgz" ra' EXIT
export LD_LIBRARY_PATH="$B/lib:$B:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
timeout 15 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv > "$L/smi.txt" 2>&1; tail -n1 "$L/smi.txt"
SEED=${SEED:-74}
( timeout 120 python3 "$ROOT/tools/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1; echo "rc $?" >> "$L/model.log" ) &
el "parity_cuda_retr_attn --bench"; timeout 150 "$B/parity_cuda_retr_attn" --seed $SEED --bench > "$L/parity.log" 2>&1; el "rc $?"
grep -E "FAIL|passed|device flat retrieval|device attention|host flat|top-k alone" "$L/parity.log" | head -n 20
SCB_RETR_SEARCH_SINGLE=1 timeout 100 "$B/parity_cuda_retr_attn" --seed $SEED --bench > "$L/parity_nocluster.log" 2>&1; el "nocluster rc $?"
grep -E "FAIL|passed|device flat retrieval|top-k alone" "$L/parity_nocluster.log" | sed 's/^/  [single-stage] /' | head -n 8
wait; el "model $(tail -n1 $L/model.log)"
eb() { # name env tokens method
  local A=(); [ "$4" != dense ] && A=(--method "$4")
  env $2 timeout 120 "$B/scbench" bench cuda --model "$S/model" --tokens "$3" --decode 64 "${A[@]}" > "$L/e_$1.log" 2>&1
  el "$1 rc $?"; grep -E '^floor|^decode  ' "$L/e_$1.log" | cut -c1-230
}
eb dev32 SCB_RETR_SEARCH=device 32768 retr_attn
eb dev128 SCB_RETR_SEARCH=device 131072 retr_attn
eb dense32 X=1 32768 dense

el "method_dev_retr_attn"; timeout 200 python3 "$ROOT/tests/py/method_dev_retr_attn.py" --scbench "$B/scbench" --fixtures "$ROOT/tests/fixtures" --seed $SEED > "$L/method_dev_retr_attn.log" 2>&1; el "rc $?"
grep -E "FAIL|identical|DIFFER|ok$" "$L/method_dev_retr_attn.log" | tail -n 12
el done
