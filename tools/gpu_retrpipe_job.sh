#!/usr/bin/env bash
# gpu_retrpipe_job.sh — the GPU job of the retr_attn fused host step (scan + digits + histograms +
# selection in one pool dispatch), the spinning pool, the per-phase profile (SCB_RETR_PROFILE=1)
# and the floor+host line of `bench cuda --method retr_attn` (it replaced the fourth session's
# gpu_retrhost_job.sh). It lies next to a tools/gpu_bundle.sh bundle (bundle.tar.xz) and make_random_model.py; run from the
# root of a checkout: `bash .gpu_retrpipe/go.sh` (OUT: where retrpipe.tgz goes). Set up:
#   tools/gpu_bundle.sh --out DIR && cp tools/gpu_retrpipe_job.sh DIR/go.sh && cp tools/make_random_model.py DIR/
# 1. test_retr_scan (every scan path, the digit selection, the fused step vs the two-phase one);
# 2. bench retr-scan (host alone): 32K at 16 threads (auto) and 8, 128K at 16: old/two-phase/fused
#    (asleep, spinning, histograms at selection) with the phase split, bandwidth, floor;
# 3. parity_cuda_retr_attn, tests/py/method_dev_retr_attn.py (the binding on the GPU vs the CPU
#    engine) while the random 4-layer Llama-3-8B-shaped model is written;
# 4. bench cuda at 32K, 8 decode tokens: retr_attn with SCB_RETR_PROFILE=1 (spin default 1000 us),
#    retr_attn with SCB_RETR_SPIN_US=0, retr_attn with SCB_RETR_HIST=select, dense.
# Everything runs with SCB_RETR_SEARCH=host (the default searches on the device; method_dev_retr_attn.py
# runs both). Every step under `timeout`, the whole within BUDGET seconds (default 140). Full logs:
# $OUT/retrpipe.tgz; a summary on stdout.
set -u
export PYTHONUNBUFFERED=1
export SCB_RETR_SEARCH=host   # this job measures the HOST search (the device one is the default)
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/retrpipe-out}
L=$OUT/retrpipe
mkdir -p "$L"
T0=$(date +%s)
BUDGET=${BUDGET:-140}
SEED=${SEED:-20261126}
SUM=$L/summary.txt
: > "$SUM"
el() { echo "[+$(( $(date +%s) - T0 ))s] $*" >> "$L/steps.log"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
say() { echo "$*" >> "$SUM"; }
# step NAME LIMIT CMD...: CMD under timeout min(LIMIT, time left - 3), output in $L/NAME.log
step() {
    local name=$1 lim=$2 l rc; shift 2
    l=$(( $(left) - 3 ))
    [ "$lim" -gt "$l" ] && lim=$l
    if [ "$lim" -le 2 ]; then el "$name SKIPPED (budget)"; echo "SKIPPED (budget)" > "$L/$name.log"; return 124; fi
    timeout -k 2 "$lim" "$@" > "$L/$name.log" 2>&1
    rc=$?
    el "$name rc=$rc (limit ${lim}s)"
    return $rc
}
S=$(mktemp -d "${TMPDIR:-/tmp}/retrpipe.XXXXXX")
finish() {
    el "done"
    tar -C "$OUT" -czf "$OUT/retrpipe.tgz" retrpipe 2>/dev/null
    echo "==== retrpipe job summary (full logs: retrpipe.tgz) ===="
    cat "$SUM"
    rm -rf "$S"
}
trap finish EXIT
tar -C "$S" -xJf "$D/bundle.tar.xz" || { say "cannot unpack bundle.tar.xz"; exit 1; }
B=$S/bundle
cp "$B/BUILD_INFO.txt" "$L/bundle_info.txt" 2>/dev/null
export LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
timeout 10 nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used,memory.total --format=csv > "$L/gpu.txt" 2>&1
timeout 5 lscpu > "$L/lscpu.txt" 2>&1
say "gpu: $(tail -n 1 "$L/gpu.txt")"
say "host: $(grep -m1 'Model name' "$L/lscpu.txt" | sed 's/Model name: *//'), $(nproc) CPUs online, flags:$(grep -m1 '^flags' /proc/cpuinfo | grep -oE ' (avx512f|avx512bw|avx2|fma)( |$)' | tr -d '\n')"

# 1. unit test
step test_retr_scan 30 "$B/test_retr_scan"
say "test_retr_scan rc=$? $(grep -E 'PASSED|FAILED|ERROR' "$L/test_retr_scan.log" | tr '\n' ' ' | cut -c1-240)"

# 2. the host step alone
bs() {   # name args...
    local name=$1; shift
    step "bench_$name" 40 "$B/scbench" bench retr-scan --reps 9 "$@"
    local rc=$?
    local f=$L/bench_$name.log
    say "bench $name rc=$rc thr=$(awk '/^threads/{print $2}' "$f") bw=$(awk '/^bandwidth/{print $2}' "$f")GB/s" \
        "floor=$(awk '/^floor/{print $3}' "$f") scan=$(awk '/^new scan/ && /avx512fma|avx2fma/{printf "%s=%s ", $3, $4}' "$f")" \
        "$(sed -nE 's/^select +old ([0-9.]+) ms, new ([0-9.]+) ms.*/sel \1->\2/p' "$f")"
    # fused: asleep (scan + select), spinning (scan + select), histograms at selection; then vs two-phase
    sed -nE 's/^fused +asleep ([0-9.]+) ms \(scan ([0-9.]+) \+ select ([0-9.]+)\), spinning ([0-9.]+) ms \(([0-9.]+) \+ ([0-9.]+)\), spinning with the histograms counted at selection ([0-9.]+) ms \(([0-9.]+) \+ ([0-9.]+)\).*sets identical.*/   fused asleep \1 (\2+\3) spin \4 (\5+\6) selhist \7 (\8+\9) same sets/p' "$f" >> "$SUM"
    sed -nE 's/^fused step +([0-9.]+) ms asleep \/ ([0-9.]+) ms spinning per layer-step vs two-phase ([0-9.]+) ms: ([0-9.]+x) \/ ([0-9.]+x); fused\/floor ([0-9.]+) \/ ([0-9.]+)/   two-phase \3 -> fused \1 asleep \/ \2 spinning (\4 \/ \5), fused\/floor \6 \/ \7/p' "$f" >> "$SUM"
    [ $rc -ne 0 ] && tail -n 2 "$f" | sed 's/^/   ! /' >> "$SUM"
    grep -E "^csv," "$f" >> "$L/bench.csv"
}
bs 32k_auto --tokens 32768
bs 32k_t8 --tokens 32768 --threads 8
bs 128k_auto --tokens 131072 --reps 5

# 3. correctness on the GPU while the model for the engine is written
( timeout 75 python3 "$D/make_random_model.py" --out "$S/model" --layers 4 > "$L/model.log" 2>&1
  echo "rc=$?" >> "$L/model.log" ) &
MPID=$!
step parity_cuda_retr_attn 30 "$B/parity_cuda_retr_attn" --seed "$SEED"
say "parity_cuda_retr_attn rc=$? $(grep -E 'passed|SKIP|FAIL' "$L/parity_cuda_retr_attn.log" | tail -n 2 | tr '\n' ' ')"
if [ -f "$ROOT/tests/py/method_dev_retr_attn.py" ]; then
    step method_dev_retr_attn 45 python3 "$ROOT/tests/py/method_dev_retr_attn.py" --scbench "$B/scbench" \
        --fixtures "$ROOT/tests/fixtures" --seed "$SEED"
    say "method_dev_retr_attn rc=$? $(grep -E 'FAIL|ok$|skip' "$L/method_dev_retr_attn.log" | tail -n 3 | tr '\n' ' ')"
fi
wait $MPID
el "model: $(tail -n 1 "$L/model.log")"

# 4. the engine at 32K, 8 decode tokens
eng() {   # name method env...
    local name=$1 m=$2; shift 2
    [ -f "$S/model/config.json" ] || { say "eng $name: no model ($(tail -n 1 "$L/model.log"))"; return; }
    local A=(); [ "$m" != dense ] && A=(--method "$m")
    step "eng_$name" 40 env "$@" "$B/scbench" bench cuda --model "$S/model" --tokens 32768 --decode 8 "${A[@]}"
    local rc=$?
    local f=$L/eng_$name.log
    say "eng $name ($*) rc=$rc $(sed -nE 's/^decode +[0-9]+ tokens.* ([0-9.]+) ms\/token .*/decode \1 ms\/token/p' "$f")" \
        "$(sed -nE 's/^floor +([0-9.]+) ms\/token.*KV read ([0-9.]+) MiB.*= ([0-9.]+x) the floor.*/| floor(cost model) \1 = \3/p' "$f")"
    # the binding's floor: device bytes / copy bandwidth + host index key bytes / host read bandwidth
    sed -nE 's/^floor\+host +([0-9.]+) ms\/token = device ([0-9.]+) ms .* \+ host ([0-9.]+) ms .*host read ([0-9.]+) GB\/s.*= ([0-9.]+x) this floor.*/   floor+host \1 = device \2 + host \3 (host read \4 GB\/s): measured = \5/p' "$f" >> "$SUM"
    # the last session's host phases, ms per retrieval (layer-)step
    grep -E "^retr_attn profile" "$f" | tail -n 1 | sed -E 's/.*ms per retrieval step: (.*) +\(totals.*/   prof \1/' | cut -c1-200 >> "$SUM"
    [ $rc -ne 0 ] && tail -n 2 "$f" | cut -c1-200 | sed 's/^/   ! /' >> "$SUM"
}
eng retr_prof retr_attn SCB_RETR_PROFILE=1
eng dense dense SCB_NONE=1
eng retr_nospin retr_attn SCB_RETR_PROFILE=1 SCB_RETR_SPIN_US=0
eng retr_selhist retr_attn SCB_RETR_PROFILE=1 SCB_RETR_HIST=select
eng retr_noprof retr_attn SCB_NONE=1
exit 0
