#!/usr/bin/env bash
# run.sh — the main job: sets up (apt packages), builds scbench in build/, runs the benchmark
# on the built-in default (the built-in model, synthetic SCBench sessions generated on the fly,
# every method that applies, both shared-context modes), then writes the report and the plots.
# Extra arguments go to `scbench run` (e.g. --model DIR --data DIR --methods 'dense;snapkv').
# Rerunning resumes: finished sessions are kept in the database.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
if [ ! -f build/build.ninja ]; then
    meson setup build -Dbuildtype=release >/dev/null
fi
ninja -C build >/dev/null
OUT="${SCBENCH_OUT:-out}"
mkdir -p "$OUT"
DB="$OUT/scbench.db"
DEFAULT_METHODS='dense;a_shape:n_init=16,n_local=240;tri_shape:n_init=16,n_local=240;minference:vertical=64,slash=256;streamingllm:n_init=16,n_local=240;snapkv:budget=256;pyramidkv:budget=256;kivi:bits=2;quest:budget=256;retr_attn:top_k=256;cacheblend'
# The default suite (built-in model, synthetic data): every method that applies, budgets at
# 1/8 of the 2048-token contexts, 2 sessions of 3 turns per task and mode: about 10 minutes on
# 2 cores. Any option given on the command line replaces the default of the same name.
args=("$@")
has() { for a in "${args[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
has --methods || args+=(--methods "$DEFAULT_METHODS")
if ! has --model && ! has --data; then
    has --synth-tokens || args+=(--synth-tokens 2048)
    has --sessions || args+=(--sessions 2)
    has --max-turns || args+=(--max-turns 3)
fi
build/scbench run --db "$DB" "${args[@]}"
build/scbench report --db "$DB" --format md > "$OUT/report.md"
build/scbench plot --db "$DB" --out "$OUT/plots" >/dev/null
echo "report:   $OUT/report.md"
echo "plots:    $OUT/plots/"
