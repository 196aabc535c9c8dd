#!/usr/bin/env bash
# gpu_check.sh — the one script to run on a GPU machine (H100/H200): builds the CUDA parity
# test and kernel benchmark (or takes prebuilt ones), runs the parity test, the benchmark and
# PyTorch's scaled_dot_product_attention at the same shapes, and prints a side-by-side table.
# With a bundle from tools/gpu_bundle.sh (scbench built with CUDA) it also runs the engine's
# end-to-end test (tests/py/engine_cuda.py: `--backend cuda` against the fixtures and the CPU
# engine) and times the engine (`scbench bench cuda`) on a random Llama-3-8B-shaped model; the
# bundle's device-method parity tests (parity_cuda_<method>, e.g. KIVI and RetrievalAttention)
# and tests/py/method_dev_*.py (`--backend cuda` methods against the CPU engine) run with it.
#
#   tools/gpu_check.sh [--prebuilt DIR] [--out DIR] [--quick] [--no-torch] [--seed N]
#                      [--engine-only] [--engine-layers N]
#   tools/gpu_check.sh --build-only DIR      # build parity_cuda + bench_cuda into DIR and stop
#
# --prebuilt DIR: DIR holds the programs, or bundle.tar.xz from tools/gpu_bundle.sh (unpacked to
# a temporary folder; its lib/ goes on LD_LIBRARY_PATH). --engine-only skips the kernel
# benchmark and torch (parity and the engine steps only). --engine-layers N: layers of the
# random model timed by `scbench bench cuda` (default 4; 0 skips the engine benchmark).
#
# Build: nvcc + the host C compiler only (no meson, cJSON, SQLite or CMocka needed): the two
# programs link the CUDA kernels, kernels/status.c, kernels/alloc.c, methods/dense.c, libm,
# cudart (static) and cuBLAS. --prebuilt DIR uses DIR/parity_cuda and DIR/bench_cuda instead
# (DIR is put on LD_LIBRARY_PATH, so libraries copied beside them are found).
# SCB_BENCH_GRAPHS=1 also times each length with SCB_CUDA_GRAPHS=1 (decode steps as CUDA graphs).
# SCB_SPARSE_BENCH=1 also times one layer's sparse prefill (bench_cuda --sparse-prefill: dense vs
# A-shape, Tri-shape, MInference at 32K/64K/128K).
# SCB_BENCH_TOKENS="4096 32768" times the engine at each prompt length (default 4096), each
# next to HF transformers (tools/bench_hf.py) on the same random model; SCB_BENCH_METHODS="snapkv
# quest ..." also times `scbench bench cuda --method M` at each length (bytes floor printed).
# A bundle's parity_cuda_kvsel (the KV-selection kernels and their bindings against methods/)
# and tests/py/method_dev_kvsel.py (those methods end to end, --backend cuda vs cpu) run after
# the engine test.
# Results (logs, CSV, nvidia-smi, resource usage) go to --out, else $OUT, else ./gpu-results.
# Every step runs under `timeout`; the whole script stays within GPU_CHECK_BUDGET seconds
# (default 560). Exit status: 0 when parity (and the engine test, when run) passed, 1 when
# one failed, 77 without a GPU.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-560}
PREBUILT=""
BUILD_ONLY=""
RES=${OUT:-$ROOT/gpu-results}
QUICK=""
TORCH=1
HF=1          # HF transformers timing of the engine model next to ours (off with --no-torch)
SEED=${SCB_SEED:-$(date +%s)}
SM=${SM_ARCH:-90}

ENGINE_ONLY=0
ENGINE_LAYERS=4
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prebuilt) PREBUILT=$2; shift 2 ;;
        --build-only) BUILD_ONLY=$2; shift 2 ;;
        --out) RES=$2; shift 2 ;;
        --quick) QUICK=--quick; shift ;;
        --no-torch) TORCH=0; HF=0; shift ;;
        --seed) SEED=$2; shift 2 ;;
        --engine-only) ENGINE_ONLY=1; TORCH=0; shift ;;
        --engine-layers) ENGINE_LAYERS=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

mkdir -p "$RES" || exit 1
RES=$(cd "$RES" && pwd)
log() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# run_step NAME LIMIT CMD...: runs CMD under timeout min(LIMIT, time left - 10 s), logs to RES/NAME.log
run_step() {
    local name=$1 lim=$2; shift 2
    local l; l=$(( $(left) - 10 ))
    [ "$lim" -gt "$l" ] && lim=$l
    if [ "$lim" -le 5 ]; then
        log "$name: SKIPPED (time budget spent)"; echo "SKIPPED (budget)" > "$RES/$name.log"; return 124
    fi
    log "$name: start (limit ${lim}s) -> $RES/$name.log"
    timeout --kill-after=10 "$lim" "$@" > "$RES/$name.log" 2>&1
    local rc=$?
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && log "$name: TIMED OUT after ${lim}s"
    log "$name: exit $rc"
    return $rc
}

build() {   # build DIR: parity_cuda and bench_cuda with nvcc + cc, objects in parallel
    local B=$1
    mkdir -p "$B/obj" || return 1
    local NVCC=${NVCC:-nvcc} CC=${CC:-cc}
    command -v "$CC" >/dev/null || CC=gcc
    command -v "$NVCC" >/dev/null || { echo "nvcc not found on PATH"; return 1; }
    local arch="-gencode=arch=compute_${SM},code=sm_${SM}"
    [ "$SM" = 90 ] && arch="-gencode=arch=compute_90a,code=sm_90a"
    local pids=() f
    for f in ctx attn_prefill attn_prefill_sm90 attn_decode elementwise engine sparse_prefill; do
        "$NVCC" -std=c++17 -O3 -lineinfo $arch -I"$ROOT" --resource-usage \
            -c "$ROOT/kernels/cuda/$f.cu" -o "$B/obj/$f.o" > "$B/obj/$f.ptxas.txt" 2>&1 &
        pids+=($!)
    done
    for f in kernels/status.c kernels/alloc.c methods/dense.c tests/parity_cuda.c tests/bench_cuda.c; do
        "$CC" -std=c11 -D_GNU_SOURCE -O2 -g -fno-fast-math -I"$ROOT" -c "$ROOT/$f" \
            -o "$B/obj/$(basename "$f" .c).o" > "$B/obj/$(basename "$f" .c).cc.txt" 2>&1 &
        pids+=($!)
    done
    local ok=0 p
    for p in "${pids[@]}"; do wait "$p" || ok=1; done
    cat "$B"/obj/*.txt
    [ $ok -eq 0 ] || { echo "compilation failed"; return 1; }
    local common="$B/obj/ctx.o $B/obj/attn_prefill.o $B/obj/attn_prefill_sm90.o $B/obj/attn_decode.o $B/obj/elementwise.o $B/obj/engine.o $B/obj/sparse_prefill.o $B/obj/status.o $B/obj/alloc.o $B/obj/dense.o"
    "$NVCC" $arch -o "$B/parity_cuda" "$B/obj/parity_cuda.o" $common -lcublas -lm || return 1
    "$NVCC" $arch -o "$B/bench_cuda" "$B/obj/bench_cuda.o" $common -lcublas -lm || return 1
    echo "built $B/parity_cuda $B/bench_cuda"
}

export ROOT SM
export -f build

if [ -n "$BUILD_ONLY" ]; then
    build "$BUILD_ONLY"; exit $?
fi

log "results in $RES; seed $SEED; budget ${BUDGET}s"
{ date -u; uname -a; } > "$RES/host.txt"
timeout 30 nvidia-smi > "$RES/nvidia-smi.txt" 2>&1 && head -15 "$RES/nvidia-smi.txt"
timeout 30 nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu --format=csv \
    >> "$RES/nvidia-smi.txt" 2>&1
FAILED=0

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT
if [ -n "$PREBUILT" ]; then
    BIN=$(cd "$PREBUILT" && pwd) || exit 1
    if [ -f "$BIN/bundle.tar.xz" ]; then
        tar -C "$SCRATCH" -xJf "$BIN/bundle.tar.xz" || { log "cannot unpack $BIN/bundle.tar.xz"; exit 1; }
        cp "$SCRATCH/bundle/BUILD_INFO.txt" "$RES/bundle_info.txt" 2>/dev/null
        BIN=$SCRATCH/bundle
    fi
    export LD_LIBRARY_PATH="$BIN/lib:$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    # CUDA's own libraries (cudart, cuBLAS) come from this machine: its toolkit's lib folders
    # go last, in case they are not on the loader's default path
    CUDA_HOME_GUESS=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
    for d in "$CUDA_HOME_GUESS/lib64" "$CUDA_HOME_GUESS/lib" /usr/local/cuda/lib64; do
        [ -d "$d" ] && LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
    done
    export LD_LIBRARY_PATH
    log "using prebuilt $BIN"
    [ -x "$BIN/scbench" ] && { ldd "$BIN/scbench" | grep -E "not found|cublas|cudart" | sed 's/^/  /'; }
else
    BIN=$ROOT/build-gpu
    run_step build 300 bash -c 'build "$1"' _ "$BIN" || { log "build FAILED; see $RES/build.log"; tail -30 "$RES/build.log"; exit 1; }
    grep -hE "Compiling entry|registers|spill" "$BIN"/obj/*.ptxas.txt > "$RES/resource-usage.txt" 2>/dev/null
fi

run_step parity 240 "$BIN/parity_cuda" --seed "$SEED"
PRC=$?
grep -E "FAIL|passed|SKIP|device:" "$RES/parity.log" | tail -25
if [ $PRC -eq 77 ]; then log "parity: SKIPPED (no CUDA device)"; FAILED=77
elif [ $PRC -ne 0 ]; then log "parity: FAILED (exit $PRC)"; FAILED=1; fi

# the device methods' kernel parity tests (prebuilt bundles only: they link the whole library)
for P in "$BIN"/parity_cuda_*; do
    [ -x "$P" ] && [ $PRC -ne 77 ] || continue
    PN=$(basename "$P")
    run_step "$PN" 240 "$P" --seed "$SEED"
    R=$?
    grep -E "FAIL|passed" "$RES/$PN.log" | tail -10
    if [ $R -ne 0 ]; then log "$PN: FAILED (exit $R)"; FAILED=1; fi
done

if [ -x "$BIN/scbench" ] && [ $PRC -ne 77 ]; then
    for M in "$ROOT"/tests/py/method_dev_*.py; do
        [ -f "$M" ] || continue
        MN=$(basename "$M" .py)
        run_step "$MN" 240 python3 "$M" --scbench "$BIN/scbench" --fixtures "$ROOT/tests/fixtures" --seed "$SEED"
        R=$?
        grep -E "FAIL|NOTE|ok$" "$RES/$MN.log" | tail -20
        if [ $R -ne 0 ]; then log "$MN: FAILED (exit $R)"; FAILED=1; fi
    done
    run_step engine_e2e 240 python3 "$ROOT/tests/py/engine_cuda.py" --scbench "$BIN/scbench" \
        --fixtures "$ROOT/tests/fixtures" --seed "$SEED"
    ERC=$?
    grep -E "FAIL|NOTE|max rel err|passed|skip" "$RES/engine_e2e.log" | tail -30
    # parity found a GPU, so a skip here (scbench saw none) is a failure too
    if [ $ERC -ne 0 ]; then log "engine_e2e: FAILED (exit $ERC)"; FAILED=1; fi
    if [ "$ENGINE_LAYERS" -gt 0 ]; then
        run_step engine_model 120 python3 "$ROOT/tools/make_random_model.py" --out "$SCRATCH/model" \
            --layers "$ENGINE_LAYERS" \
        && for T in ${SCB_BENCH_TOKENS:-4096}; do
            run_step "engine_bench_$T" 150 "$BIN/scbench" bench cuda --model "$SCRATCH/model" --tokens "$T" --decode 128
            cat "$RES/engine_bench_$T.log" 2>/dev/null
            if [ "${SCB_BENCH_GRAPHS:-0}" = 1 ]; then
                SCB_CUDA_GRAPHS=1 run_step "engine_bench_graphs_$T" 150 "$BIN/scbench" bench cuda \
                    --model "$SCRATCH/model" --tokens "$T" --decode 128
                grep -E "^decode" "$RES/engine_bench_graphs_$T.log" 2>/dev/null | sed 's/^/[SCB_CUDA_GRAPHS=1] /'
            fi
            for M in ${SCB_BENCH_METHODS:-}; do
                MN=$(printf '%s' "$M" | tr ':=,' '_-_')     # the whole spec in the log name (kivi, kivi_bits-4)
                run_step "engine_bench_${T}_${MN}" 150 "$BIN/scbench" bench cuda --model "$SCRATCH/model" --tokens "$T" \
                    --decode 128 --method "$M"
                grep -E "^(decode|floor|method) " "$RES/engine_bench_${T}_${MN}.log" 2>/dev/null
            done
            if [ $HF -eq 1 ]; then
                run_step "hf_bench_$T" 200 python3 "$ROOT/tools/bench_hf.py" --model "$SCRATCH/model" --tokens "$T" --decode 128
                grep "^hf " "$RES/hf_bench_$T.log" 2>/dev/null
            fi
        done
    fi
fi

if [ $ENGINE_ONLY -eq 0 ]; then
    run_step bench 240 "$BIN/bench_cuda" $QUICK --csv "$RES/bench_scbench.csv"
    [ $? -eq 0 ] || { log "bench: FAILED"; tail -5 "$RES/bench.log"; }
fi

if [ $ENGINE_ONLY -eq 0 ] && [ -n "${SCB_SPARSE_BENCH:-}" ]; then
    run_step bench_sparse 240 "$BIN/bench_cuda" --sparse-prefill --seed "$SEED"
    tail -16 "$RES/bench_sparse.log"
fi

if [ $TORCH -eq 1 ]; then
    run_step torch_sdpa 200 python3 "$ROOT/tools/bench_torch_sdpa.py" $QUICK --csv "$RES/bench_torch.csv"
    [ $? -eq 0 ] || { log "torch: FAILED"; tail -5 "$RES/torch_sdpa.log"; }
fi

echo
if [ $ENGINE_ONLY -eq 0 ]; then
    log "summary (ours vs torch on this GPU; ms = median of repeats)"
    python3 "$ROOT/tools/bench_torch_sdpa.py" --compare "$RES/bench_scbench.csv" "$RES/bench_torch.csv" \
        2>&1 | tee "$RES/summary.txt"
fi
echo "parity: $(grep -E 'passed, .* failed' "$RES/parity.log" | tail -1)"
[ -f "$RES/engine_e2e.log" ] && echo "engine e2e: $(tail -1 "$RES/engine_e2e.log")"
log "done; results in $RES"
exit $FAILED
