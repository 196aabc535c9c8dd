#!/usr/bin/env bash
# bench_e2e.sh — a short SCBench run end to end on a random Llama-3-8B-shaped model (few layers,
# the real Llama-3 tokenizer and chat template), timed per session next to the same work through
# HF transformers (tools/bench_e2e_hf.py). Made for the GPU machine (torch + transformers there,
# no network, scbench prebuilt: tools/gpu_bundle.sh); runs on a CPU too (--backend cpu --device cpu).
#
#   tools/bench_e2e.sh --tokenizer DIR (--bundle DIR|FILE | --scbench PATH [--lib DIR])
#       [--out DIR] [--layers 4] [--tokens 8192] [--sessions 3] [--max-turns 5] [--tasks kv]
#       [--methods 'dense;snapkv'] [--mode both] [--backend cuda] [--device cuda]
#       [--dtype bfloat16] [--model DIR] [--model-args '--hidden 64 ...'] [--seed 1] [--no-hf]
#       [--sdpa default|flash|cudnn]
#
# --tokenizer DIR: tokenizer.json + tokenizer_config.json (with chat_template) of Llama-3, e.g.
#   ../shared/tokenizers/llama3 (copied into the model folder). --bundle: bundle.tar.xz from
#   tools/gpu_bundle.sh (or the folder holding it): unpacked, its scbench and lib/ used.
#   --scbench PATH [--lib DIR]: a scbench binary and a folder put first on its LD_LIBRARY_PATH.
#   --model DIR: use this model (no random one made; tokenizer files copied in only if missing).
#   --model-args: extra options for tools/make_random_model.py (e.g. a tiny shape to test).
#   --sdpa: the SDPA backend of the HF replay (bench_e2e_hf.py --sdpa; default: torch's own choice).
# Steps: (1) tools/make_random_model.py --layers N (Llama-3-8B shapes, vocab 128256) into a
# scratch folder, the tokenizer files, generation_config.json with Llama-3-Instruct's stop ids
# (128001, 128009); (2) `scbench run --data synthetic --tasks LIST --synth-tokens N --sessions N
# --mode M --max-turns N` once per method of --methods (each its own run in OUT/e2e.db; a method
# the backend does not offer, e.g. snapkv on a CUDA build without it, is reported and skipped);
# (3) tools/bench_e2e_hf.py replays every recorded session's turn structure through HF
# transformers and writes OUT/e2e_sessions.{csv,md}: mode, method, session, tokens prefilled,
# tokens decoded, scbench s, HF s, speed-up (HF / scbench). HF decode is slow (tens of ms per
# token): sessions whose replay would not fit in the time left are listed as not replayed.
# Every step runs under `timeout`; the script stays within E2E_BUDGET seconds (default 540).
# Logs: OUT/make_model.log, OUT/scbench_<method>.log, OUT/hf.log, OUT/summary.txt.
# Exit status: 0 done (every method ran, or was skipped as not offered), 1 a step failed, 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
T0=$(date +%s)
BUDGET=${E2E_BUDGET:-540}
RES=${OUT:-$ROOT/e2e-results}
TOK="" BUNDLE="" SCB="" LIBDIR="" MODEL=""
LAYERS=4 TOKENS=8192 SESSIONS=3 TURNS=5 TASKS=kv METHODS='dense;snapkv' MODE=both
BACKEND=cuda DEVICE=cuda DTYPE=bfloat16 MODEL_ARGS="" SEED=1 HF=1 SDPA=default

usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0" | sed 's/^# \{0,1\}//'; }
need() { [ $# -ge 2 ] && [ -n "$2" ] || { echo "bench_e2e: $1 needs a value (try --help)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case "$1" in
        --tokenizer) need "$@"; TOK=$2; shift 2 ;;
        --bundle) need "$@"; BUNDLE=$2; shift 2 ;;
        --scbench) need "$@"; SCB=$2; shift 2 ;;
        --lib) need "$@"; LIBDIR=$2; shift 2 ;;
        --out) need "$@"; RES=$2; shift 2 ;;
        --layers) need "$@"; LAYERS=$2; shift 2 ;;
        --tokens) need "$@"; TOKENS=$2; shift 2 ;;
        --sessions) need "$@"; SESSIONS=$2; shift 2 ;;
        --max-turns) need "$@"; TURNS=$2; shift 2 ;;
        --tasks) need "$@"; TASKS=$2; shift 2 ;;
        --methods) need "$@"; METHODS=$2; shift 2 ;;
        --mode) need "$@"; MODE=$2; shift 2 ;;
        --backend) need "$@"; BACKEND=$2; shift 2 ;;
        --device) need "$@"; DEVICE=$2; shift 2 ;;
        --dtype) need "$@"; DTYPE=$2; shift 2 ;;
        --model) need "$@"; MODEL=$2; shift 2 ;;
        --model-args) need "$@"; MODEL_ARGS=$2; shift 2 ;;
        --seed) need "$@"; SEED=$2; shift 2 ;;
        --no-hf) HF=0; shift ;;
        --sdpa) need "$@"; SDPA=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench_e2e: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done
for v in LAYERS TOKENS SESSIONS TURNS SEED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench_e2e: --${v,,} '${!v}' is not a number" >&2; exit 2; }
done

log() { echo "[bench_e2e +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# run_step NAME LIMIT CMD...: CMD under timeout min(LIMIT, time left - 10 s), output to RES/NAME.log
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
    { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && log "$name: TIMED OUT after ${lim}s"
    log "$name: exit $rc"
    return $rc
}

# ---- inputs ---------------------------------------------------------------------------------
if [ -z "$MODEL" ] || [ ! -f "$MODEL/tokenizer.json" ]; then
    [ -n "$TOK" ] || { echo "bench_e2e: --tokenizer DIR is required (Llama-3 tokenizer.json + tokenizer_config.json)" >&2; exit 2; }
    for f in tokenizer.json tokenizer_config.json; do
        [ -f "$TOK/$f" ] || { echo "bench_e2e: $TOK/$f: missing (--tokenizer must hold Llama-3's tokenizer files)" >&2; exit 2; }
    done
    grep -q '"chat_template"' "$TOK/tokenizer_config.json" ||
        { echo "bench_e2e: $TOK/tokenizer_config.json: no chat_template" >&2; exit 2; }
fi
mkdir -p "$RES" || exit 1
RES=$(cd "$RES" && pwd)
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/bench_e2e.XXXXXX") || exit 1
trap 'rm -rf "$SCRATCH"' EXIT

if [ -n "$BUNDLE" ]; then
    [ -d "$BUNDLE" ] && BUNDLE=$BUNDLE/bundle.tar.xz
    [ -f "$BUNDLE" ] || { echo "bench_e2e: $BUNDLE: no such bundle (tools/gpu_bundle.sh makes it)" >&2; exit 2; }
    tar -C "$SCRATCH" -xJf "$BUNDLE" || { echo "bench_e2e: cannot unpack $BUNDLE" >&2; exit 1; }
    SCB=$SCRATCH/bundle/scbench
    LIBDIR=$SCRATCH/bundle/lib
    cp "$SCRATCH/bundle/BUILD_INFO.txt" "$RES/bundle_info.txt" 2>/dev/null
fi
[ -n "$SCB" ] || { [ -x "$ROOT/build/scbench" ] && SCB=$ROOT/build/scbench; }
[ -n "$SCB" ] && [ -x "$SCB" ] || { echo "bench_e2e: no scbench binary: give --bundle or --scbench PATH" >&2; exit 2; }
SCB=$(cd "$(dirname "$SCB")" && pwd)/$(basename "$SCB")
# scbench's libraries go on LD_LIBRARY_PATH for scbench only (python3 and torch keep this
# machine's own libz, libsqlite3, ...)
SCB_LD=${LD_LIBRARY_PATH:-}
if [ -n "$LIBDIR" ]; then
    [ -d "$LIBDIR" ] || { echo "bench_e2e: --lib $LIBDIR: not a folder" >&2; exit 2; }
    SCB_LD="$(cd "$LIBDIR" && pwd)${SCB_LD:+:$SCB_LD}"
fi
# CUDA's own libraries (cudart, cuBLAS) come from this machine's toolkit, last on the path
CUDA_GUESS=$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")
for d in "$CUDA_GUESS/lib64" "$CUDA_GUESS/lib" /usr/local/cuda/lib64; do
    [ -d "$d" ] && SCB_LD="${SCB_LD:+$SCB_LD:}$d"
done
scb() { LD_LIBRARY_PATH="$SCB_LD" "$SCB" "$@"; }
if LD_LIBRARY_PATH="$SCB_LD" ldd "$SCB" 2>/dev/null | grep -q "not found"; then
    echo "bench_e2e: $SCB: shared libraries not found (give --lib DIR or --bundle):" >&2
    LD_LIBRARY_PATH="$SCB_LD" ldd "$SCB" | grep "not found" >&2
    exit 1
fi

log "results in $RES; scbench $SCB; budget ${BUDGET}s"
{ date -u; uname -a; scb --version 2>&1 | head -1; } > "$RES/host.txt"
command -v nvidia-smi >/dev/null && timeout 30 nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit \
    --format=csv >> "$RES/host.txt" 2>&1

# ---- (1) the model --------------------------------------------------------------------------
FAILED=0
if [ -z "$MODEL" ]; then
    MODEL=$SCRATCH/model
    # shellcheck disable=SC2086  # MODEL_ARGS is a list of options
    run_step make_model 180 python3 "$ROOT/tools/make_random_model.py" --out "$MODEL" --layers "$LAYERS" \
        --seed "$SEED" $MODEL_ARGS || { log "making the random model FAILED:"; tail -5 "$RES/make_model.log"; exit 1; }
    cat "$RES/make_model.log"
    # Llama-3-Instruct's special ids: bos 128000; stops <|end_of_text|> 128001 and <|eot_id|> 128009
    python3 - "$MODEL" <<'EOF' || { log "writing the model's generation config FAILED"; exit 1; }
import json, os, sys
d = sys.argv[1]
p = os.path.join(d, "config.json")
c = json.load(open(p))
c["bos_token_id"], c["eos_token_id"] = 128000, 128009
json.dump(c, open(p, "w"), indent=1)
json.dump({"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": False},
          open(os.path.join(d, "generation_config.json"), "w"), indent=1)
EOF
fi
[ -f "$MODEL/config.json" ] || { echo "bench_e2e: $MODEL/config.json: missing (not a model folder)" >&2; exit 2; }
for f in tokenizer.json tokenizer_config.json; do
    [ -f "$MODEL/$f" ] || cp "$TOK/$f" "$MODEL/$f" || exit 1
done

# ---- (2) scbench ----------------------------------------------------------------------------
DB=$RES/e2e.db
rm -f "$DB" "$DB-wal" "$DB-shm"
NOTES=()
IFS=';,' read -r -a MLIST <<< "$METHODS"
RAN=0
for m in "${MLIST[@]}"; do
    m=$(echo "$m" | tr -d '[:space:]')
    [ -n "$m" ] || continue
    name=scbench_$(echo "$m" | tr -c 'A-Za-z0-9_\n' '_')
    run_step "$name" 300 env LD_LIBRARY_PATH="$SCB_LD" "$SCB" run --backend "$BACKEND" --model "$MODEL" --data synthetic --tasks "$TASKS" \
        --synth-tokens "$TOKENS" --sessions "$SESSIONS" --mode "$MODE" --max-turns "$TURNS" \
        --methods "$m" --seed "$SEED" --db "$DB" --new-run --quiet
    rc=$?
    tail -n 25 "$RES/$name.log"
    if [ $rc -eq 0 ]; then
        RAN=$((RAN + 1))
    elif grep -qE "not available on the (CUDA|cuda) backend|runs the dense method only|not supported on" "$RES/$name.log"; then
        msg="method $m: not available on the $BACKEND backend of this scbench build; not run ($(grep -m1 -E 'not available|dense method only|not supported' "$RES/$name.log"))"
        log "$msg"
        NOTES+=("$msg")
    else
        msg="method $m: scbench run FAILED (exit $rc; see $name.log)"
        log "$msg"
        NOTES+=("$msg")
        FAILED=1
    fi
done
[ $RAN -gt 0 ] || { log "no method ran; nothing to compare"; exit 1; }

# ---- (3) HF transformers, the same work -----------------------------------------------------
HFARGS=(--db "$DB" --out "$RES" --seed "$SEED")
for n in "${NOTES[@]+"${NOTES[@]}"}"; do HFARGS+=(--note "$n"); done
MADE="random Llama-3-8B-shaped weights (tools/make_random_model.py)"
[ "$MODEL" = "$SCRATCH/model" ] || MADE=$MODEL
HFARGS+=(--note "model: $MADE, $(python3 -c "import json,sys;c=json.load(open(sys.argv[1]));print(f\"{c['num_hidden_layers']} layers, hidden {c['hidden_size']}, ff {c['intermediate_size']}, heads {c['num_attention_heads']}/{c['num_key_value_heads']}, vocab {c['vocab_size']}\")" "$MODEL/config.json"); scbench --backend $BACKEND; synthetic $TASKS, $TOKENS tokens, $SESSIONS sessions, --max-turns $TURNS")
if [ $HF -eq 1 ]; then
    HFARGS+=(--model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --sdpa "$SDPA")
else
    HFARGS+=(--no-hf)
fi
# the replay leaves out sessions that would not fit in the time left (bench_e2e_hf.py --budget)
HFLIM=$(( $(left) - 15 ))
HFARGS+=(--budget $(( HFLIM - (HFLIM / 10 > 10 ? HFLIM / 10 : 10) )))
run_step hf "$HFLIM" python3 "$ROOT/tools/bench_e2e_hf.py" "${HFARGS[@]}"
rc=$?
grep -vE "Loading weights|FutureWarning|return forward_call" "$RES/hf.log" | tee "$RES/summary.txt"
[ $rc -eq 0 ] || { log "HF replay FAILED (exit $rc)"; FAILED=1; }
log "done; results in $RES (e2e.db, e2e_sessions.csv, e2e_sessions.md)"
exit $FAILED
