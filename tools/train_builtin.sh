#!/usr/bin/env bash
# train_builtin.sh — rebuilds the built-in model (datasets/builtin/) end to end, with the exact
# seeds and arguments of the shipped one (docs/builtin-model.md).
#
#   tools/train_builtin.sh data     on the CPU machine: tokenizer + training/eval data (about 10 min
#                                   on 2 cores), written to $WORK (default build/builtin-train)
#   tools/train_builtin.sh train    on a GPU machine with PyTorch + transformers: trains (about 7.5
#                                   min on an H200) and writes the model into $OUT (default
#                                   datasets/builtin)
#
# SCBENCH names the scbench binary (default build/scbench). Training data and the tokenizer are
# byte-identical on every run (synth and BPE are deterministic); training is deterministic up to
# the GPU's reduction order.
set -euo pipefail
cd "$(dirname "$0")/.."
SCB="${SCBENCH:-build/scbench}"
WORK="${WORK:-build/builtin-train}"
OUT="${OUT:-datasets/builtin}"
mkdir -p "$WORK"

case "${1:-}" in
data)
    # 1. tokenizer: byte-level BPE (1024) on 6 synthetic sessions of each task (word-counted)
    for t in kv prefix_suffix vt mf passkey; do
        "$SCB" data synth --task "$t" --tokens 3000 --sessions 6 --seed 900 --turns 5 > "$WORK/corpus_$t.jsonl" 2>/dev/null
    done
    python3 tools/make_builtin_tokenizer.py --out datasets/builtin "$WORK"/corpus_*.jsonl
    # 2. training data: short sessions (350-850 tokens, 3 turns) for the curriculum, then two
    #    sets of 1K-7.4K-token sessions; every set in both modes
    python3 tools/make_builtin_data.py --scbench "$SCB" --model datasets/builtin --out "$WORK/short.npz" \
        --seed-base 300000 --lengths 350,500,650,850 --turns 3 \
        --sessions kv=500,prefix_suffix=500,vt=500,mf=500,passkey=400
    python3 tools/make_builtin_data.py --scbench "$SCB" --model datasets/builtin --out "$WORK/train.npz" \
        --seed-base 100000
    python3 tools/make_builtin_data.py --scbench "$SCB" --model datasets/builtin --out "$WORK/train2.npz" \
        --seed-base 200000
    # 3. held-out evaluation sessions at 4K tokens (seeds 7 and 17)
    python3 tools/make_builtin_data.py --scbench "$SCB" --model datasets/builtin --out "$WORK/eval.npz" \
        --lengths 4096 --seed-base 7 --sessions kv=16,prefix_suffix=16,vt=16,mf=16,passkey=16
    sha256sum "$WORK"/*.npz
    ;;
train)
    # The shipped run was cut by --time-limit 440 after 2567 of the 2800 scheduled steps;
    # --stop-step 2567 repeats it on any GPU.
    PYTHONUNBUFFERED=1 python3 tools/train_builtin.py \
        --data "$WORK/short.npz,$WORK/train.npz,$WORK/train2.npz" --eval "$WORK/eval.npz" \
        --tokenizer-dir datasets/builtin --out "$OUT" \
        --steps 2800 --stop-step 2567 --batch 24 --lr 1.5e-3 --warmup 150 \
        --curriculum 850:0.25,3000:0.5 --ctx-loss 0.1 --seed 0 \
        --log-every 100 --eval-every 700 --time-limit 540
    ;;
*)
    echo "usage: tools/train_builtin.sh data|train" >&2
    exit 2
    ;;
esac
