#!/usr/bin/env bash
# gpu_retrhost_job.sh — the GPU job of the retr_attn host scan work (key-blocked bf16 store, SIMD
# across keys, radix top-k selection), set up as DIR/go.sh next to a tools/gpu_bundle.sh bundle:
#   tools/gpu_bundle.sh --out DIR && cp tools/gpu_retrhost_job.sh DIR/go.sh && cp tools/make_random_model.py DIR/
# (bundle.tar.xz: scbench, parity_cuda_retr_attn, test_retr_scan and their libraries;
# make_random_model.py), run from the root of a checkout: `OUT=/some/dir bash DIR/go.sh`.
# 1. test_retr_scan: every scan path this host supports bit-identical to dotf, selections equal;
# 2. `scbench bench retr-scan` on the host alone (nothing else running): old vs new scan per
#    path (the fused multiply-add paths avx2fma / avx512fma included), old vs new selection, the host read bandwidth and the floor; 32K at 16 / 8 / 1 threads
#    and 128K at 16;
# 3. parity_cuda_retr_attn and tests/py/method_dev_retr_attn.py (the binding on the real GPU
#    against the CPU engine), while the random 4-layer Llama-3-8B-shaped model is written;
# 4. `scbench bench cuda --method retr_attn --tokens 32768 --decode 8`: default path, dense at
#    32K (the device floor), then SCB_RETR_SCAN=avx512fma (falls back to the default path where
#    AVX-512F is missing), =avx2 and =scalar.
# Every step under `timeout`, the whole within BUDGET seconds (default 140). Full logs:
# $OUT/retrhost.tgz; a summary on stdout.
set -u
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd)
ROOT=$(pwd)
OUT=${OUT:-/tmp/retrhost-out}
L=$OUT/retrhost
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
S=$(mktemp -d "${TMPDIR:-/tmp}/retrhost.XXXXXX")
finish() {
    el "done"
    tar -C "$OUT" -czf "$OUT/retrhost.tgz" retrhost 2>/dev/null
    echo "==== retrhost job summary (full logs: retrhost.tgz) ===="
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
timeout 5 free -g > "$L/free.txt" 2>&1
say "gpu: $(tail -n 1 "$L/gpu.txt")"
say "host: $(grep -m1 'Model name' "$L/lscpu.txt" | sed 's/Model name: *//'), $(nproc) CPUs online, flags:$(grep -m1 '^flags' /proc/cpuinfo | grep -oE ' (avx512f|avx2|fma)( |$)' | tr -d '\n')"

# 1. unit test (every path this CPU has)
step test_retr_scan 30 "$B/test_retr_scan"
say "test_retr_scan rc=$? $(grep -E 'PASSED|FAILED|not supported|ERROR' "$L/test_retr_scan.log" | tr '\n' ' ' | cut -c1-240)"

# 2. the host scan alone
bs() {   # name args...
    local name=$1; shift
    step "bench_$name" 40 "$B/scbench" bench retr-scan --reps 9 "$@"
    local rc=$?
    local f=$L/bench_$name.log
    # one line per run (ms per layer-step): threads, bandwidth, old scan, each new path, selection
    # old->new, step old->new (default path, speed-up), floor, step/floor
    say "bench $name rc=$rc thr=$(awk '/^threads/{print $2}' "$f") bw=$(awk '/^bandwidth/{print $2}' "$f")GB/s" \
        "old=$(awk '/^old scan/{print $3}' "$f") $(awk '/^new scan/{printf "%s=%s ", $3, $4}' "$f")" \
        "$(sed -nE 's/^select +old ([0-9.]+) ms, new ([0-9.]+) ms.*/sel \1->\2/p' "$f")" \
        "$(sed -nE 's/^step +old ([0-9.]+) ms, new \(([a-z0-9]+)\) ([0-9.]+) ms per layer-step: ([0-9.]+x) faster; floor ([0-9.]+) ms, new\/floor ([0-9.]+)/step \1->\3 (\2 \4) floor \5 x\6/p' "$f")"
    [ $rc -ne 0 ] && tail -n 2 "$f" | sed 's/^/   ! /' >> "$SUM"
    grep -E "^csv," "$f" >> "$L/bench.csv"
}
bs 32k_auto --tokens 32768
bs 32k_t8 --tokens 32768 --threads 8
bs 32k_t1 --tokens 32768 --threads 1 --reps 3
bs 128k_auto --tokens 131072 --reps 5

# 3. the model for the engine (CPU) while the GPU correctness checks run
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

# 4. the engine at 32K
eng() {   # name method env...
    local name=$1 m=$2; shift 2
    [ -f "$S/model/config.json" ] || { say "eng $name: no model ($(tail -n 1 "$L/model.log"))"; return; }
    local A=(); [ "$m" != dense ] && A=(--method "$m")
    step "eng_$name" 40 env "$@" "$B/scbench" bench cuda --model "$S/model" --tokens 32768 --decode 8 "${A[@]}"
    local rc=$?
    local f=$L/eng_$name.log
    say "eng $name ($1) rc=$rc prefill $(awk '/^prefill/{print $4}' "$f")ms" \
        "$(sed -nE 's/^floor +([0-9.]+) ms\/token.*KV read ([0-9.]+) MiB.*measured ([0-9.]+) ms\/token = ([0-9.]+x).*/decode \3 ms\/token, device floor \1 (KV \2 MiB) = \4/p' "$f")"
    grep -E "^method" "$f" | cut -c1-160 | sed 's/^/   /' >> "$SUM"
    [ $rc -ne 0 ] && tail -n 2 "$f" | cut -c1-200 | sed 's/^/   ! /' >> "$SUM"
}
eng retr_auto retr_attn SCB_NONE=1
eng dense dense SCB_NONE=1
eng retr_avx512fma retr_attn SCB_RETR_SCAN=avx512fma
eng retr_avx2 retr_attn SCB_RETR_SCAN=avx2
eng retr_scalar retr_attn SCB_RETR_SCAN=scalar
exit 0
