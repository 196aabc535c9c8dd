#!/usr/bin/env bash
# gpu_sparse_prefill.sh — one GPU job for the sparse prefill kernels (A-shape, Tri-shape,
# MInference; the sm_90 wgmma/TMA kernel kernels/cuda/sparse_prefill_sm90.cu and the mma.sync
# kernel): a smoke run, the kernel parity test on every path, then bench_cuda --sparse-prefill
# at 128K first (rope1, iid, rope.5; sm90 and fa2 sparse paths; dense on the sm90 and FA2
# kernels), the sm90 variants (overlap schedule, 3 stages) at 128K rope1, then 64K/32K if time
# is left. Every step is guarded by timeout; the whole job stays under ~150 s.
#
#   cp tools/gpu_sparse_prefill.sh DIR/go.sh    # DIR holds bundle.tar.xz from tools/gpu_bundle.sh
#   OUT=/some/dir bash DIR/go.sh                # logs -> $OUT/sparse90.tgz, summary on stdout
#
# SCB_JOB_NAME renames the log folder / archive (default sparse90).
export PYTHONUNBUFFERED=1
D=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
NAME=${SCB_JOB_NAME:-sparse90}
L=$(mktemp -d)/$NAME; mkdir -p "$L"
S=$(date +%s)
el() { echo "$(( $(date +%s) - S ))s"; }
left() { echo $(( 145 - $(date +%s) + S )); }
finish() {
    echo "== SUMMARY (T method kernel inputs ms-med density TF/s vs-dense-sm90 vs-dense-fa2 [attn-only])"
    grep -hE "passed, .* failed" "$L"/parity*.log 2>/dev/null
    cat "$L"/bench_128k.log "$L"/bench_variants.log "$L"/bench_merge.log "$L"/bench_64k_32k.log 2>/dev/null | grep -E "^[0-9]" |
        grep -E "dense|minference|a_shape|tri_shape|minf-est" |
        awk '{ n = $1" "$2" "$3" "$4" "$5" "$8" "$9" "$10" "$11; if ($12 == "attn") n = n" attn="$13"ms/"$16"TF"; print n }' |
        awk '!seen[$0]++' | head -60
    tar -C "$(dirname "$L")" -czf "$OUT/$NAME.tgz" "$NAME" 2>/dev/null
    echo "== logs: \$OUT/$NAME.tgz ($(el))"
}
trap finish EXIT
SCR=$(mktemp -d); tar -C "$SCR" -xJf "$D/bundle.tar.xz" || { echo "cannot unpack bundle"; exit 1; }
B=$SCR/bundle
export LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,driver_version --format=csv \
    > "$L/smi.txt" 2>&1
head -2 "$L/smi.txt" | tail -1; head -1 "$B/BUILD_INFO.txt"; cp "$B/BUILD_INFO.txt" "$L/"

# 1. smoke: the sm90 sparse kernel at 4K (a hang or a fault shows here, cheaply)
SM90=1
timeout 25 "$B/bench_cuda" --sparse-prefill --sparse-lengths 4096 --sparse-inputs rope1 \
    --sparse-paths sm90,fa2 > "$L/smoke.log" 2>&1
rc=$?; echo "smoke rc=$rc $(el)"
grep -E "minference|a_shape|FATAL|rror" "$L/smoke.log" | cut -c1-150 | head -8
if [ $rc -ne 0 ]; then
    SM90=0; echo "!! sm90 smoke failed (rc=$rc; 124 = hang): sm90 skipped below; last rows logged:"
    grep -E "^[0-9]" "$L/smoke.log" | tail -3 | cut -c1-100
    # where does it break: each kind alone at 1K on sm90 (a hang shows as rc=124), then memcheck
    for k in serial overlap; do
        SCB_SPARSE_SM90_SCHEDULE=$k timeout 10 "$B/bench_cuda" --sparse-prefill --sparse-lengths 1024 \
            --sparse-inputs rope1 --sparse-paths sm90 --sparse-no-dense > "$L/smoke_1k_$k.log" 2>&1
        echo "  1K sm90 $k rc=$? rows: $(grep -cE '^[0-9]' "$L/smoke_1k_$k.log") $(grep -E 'FATAL' "$L/smoke_1k_$k.log" | cut -c1-120)"
    done
    CS=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null)
    if [ -n "$CS" ]; then
        timeout 40 "$CS" --tool memcheck --print-limit 8 "$B/bench_cuda" --sparse-prefill --sparse-lengths 1024 \
            --sparse-inputs rope1 --sparse-paths sm90 --sparse-no-dense > "$L/memcheck_1k.log" 2>&1
        echo "  memcheck rc=$? $(el)"; grep -E "Invalid|ERROR SUMMARY|at 0x|by thread" "$L/memcheck_1k.log" | head -6 | cut -c1-160
    fi
fi

# 2. parity: every case on the default (sm90) and the fa2 path, sm90 variants and extra shapes
if [ $SM90 = 1 ]; then
    timeout 80 stdbuf -oL -eL "$B/parity_cuda_prefill" --seed 20261126 > "$L/parity.log" 2>&1; prc=$?
else
    prc=skip
fi
echo "parity(all paths) rc=$prc $(el)"
if [ -f "$L/parity.log" ]; then
    grep -E "FATAL|sparse kernel|SKIP|passed" "$L/parity.log" | head -5
    echo "  checks logged: $(grep -c "max-rel" "$L/parity.log") outputs compared, last: $(grep "max-rel" "$L/parity.log" | tail -1 | cut -c1-90)"
    echo "  FAIL count by path:"; grep -E "^FAIL" "$L/parity.log" | sed -E 's/^FAIL \[([^]]*)\].*/\1/' | sort | uniq -c | head
    grep -E "^FAIL" "$L/parity.log" | cut -c1-160 | head -12
fi
if [ "$prc" != 0 ]; then
    SCB_PARITY_SPARSE_PATHS=fa2 timeout 40 stdbuf -oL -eL "$B/parity_cuda_prefill" --seed 20261126 > "$L/parity_fa2.log" 2>&1
    echo "parity(fa2 only) rc=$? $(el)"; grep -E "^FAIL|FATAL" "$L/parity_fa2.log" | cut -c1-160 | head -8
fi
P=sm90,fa2; [ $SM90 = 1 ] || P=fa2

# 3. the key measurement: 128K, rope1 first
T=$(left); [ $T -gt 50 ] && T=50
timeout $T "$B/bench_cuda" --sparse-prefill --sparse-lengths 131072 --sparse-inputs rope1,iid,rope.5 \
    --sparse-paths $P > "$L/bench_128k.log" 2>&1
echo "bench 128K rc=$? $(el)"
grep -E "FATAL|not run" "$L/bench_128k.log" | cut -c1-150

# 4. sm90 variants at 128K rope1 (schedule overlap, 3 stages, block order)
T=$(left)
if [ $SM90 = 1 ] && [ $T -gt 25 ]; then
    [ $T -gt 30 ] && T=30
    timeout $T "$B/bench_cuda" --sparse-prefill --sparse-lengths 131072 --sparse-inputs rope1 \
        --sparse-paths sm90:overlap,sm90:serial:3,sm90:overlap:3,sm90:serial:2:block --sparse-no-dense \
        > "$L/bench_variants.log" 2>&1
    echo "bench variants rc=$? $(el)"
    grep -E "FATAL" "$L/bench_variants.log" | cut -c1-150
fi

# 4b. A-shape / Tri-shape without the K/V sharing between head pairs, 128K
T=$(left)
if [ $SM90 = 1 ] && [ $T -gt 30 ]; then
    [ $T -gt 20 ] && T=20
    SCB_SPARSE_SM90_SHARE=0 timeout $T "$B/bench_cuda" --sparse-prefill --sparse-lengths 131072 --sparse-inputs iid \
        --sparse-paths sm90 --sparse-no-dense > "$L/bench_noshare.log" 2>&1
    echo "bench noshare rc=$? $(el)"
    grep -E "a_shape|tri_shape" "$L/bench_noshare.log" | awk '{print "  noshare: "$1" "$2" "$5" ms "$9" TF/s"}'
fi

# 4c. MInference head pairs with merged tile lists (SCB_SPARSE_SM90_MERGE=1), 128K rope1 + iid
T=$(left)
if [ $SM90 = 1 ] && [ $T -gt 30 ]; then
    [ $T -gt 20 ] && T=20
    SCB_SPARSE_SM90_MERGE=1 timeout $T "$B/bench_cuda" --sparse-prefill --sparse-lengths 131072 \
        --sparse-inputs rope1,iid --sparse-paths sm90 --sparse-no-dense > "$L/bench_merge.log" 2>&1
    echo "bench merge rc=$? $(el)"
    grep -E "FATAL" "$L/bench_merge.log" | cut -c1-150
fi

# 5. 64K and 32K, all inputs, both paths
T=$(left)
if [ $T -gt 15 ]; then
    timeout $T "$B/bench_cuda" --sparse-prefill --sparse-lengths 65536,32768 --sparse-inputs rope1,iid,rope.5 \
        --sparse-paths $P > "$L/bench_64k_32k.log" 2>&1
    echo "bench 64K/32K rc=$? $(el)"
    grep -E "FATAL" "$L/bench_64k_32k.log" | cut -c1-150
fi
