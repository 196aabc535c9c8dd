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
OUT="${SCBENCH_OUT:-results}"
mkdir -p "$OUT"
DB="$OUT/scbench.db"
DEFAULT_METHODS='dense;a_shape:n_init=64,n_local=448;tri_shape:n_init=64,n_local=448;minference:vertical=64,slash=256;streamingllm:n_init=64,n_local=448;snapkv:budget=512;pyramidkv:budget=512;kivi:bits=2;kivi:bits=4;quest:budget=512;retr_attn:top_k=512'
args=("$@")
have_methods=0
for a in "${args[@]}"; do [ "$a" = "--methods" ] && have_methods=1; done
if [ $have_methods -eq 0 ]; then args+=(--methods "$DEFAULT_METHODS"); fi
build/scbench run --db "$DB" "${args[@]}"
build/scbench report --db "$DB" --format md > "$OUT/report.md"
build/scbench plot --db "$DB" --out "$OUT/plots" >/dev/null
echo "report:   $OUT/report.md"
echo "plots:    $OUT/plots/"
