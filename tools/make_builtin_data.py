#!/usr/bin/env python3
"""make_builtin_data.py — training/evaluation data of the built-in model, made by scbench itself.

For each task (kv, prefix_suffix, vt, mf and the pass-key needles), each context length and
each shared-context mode it runs

    scbench data synth --task T --tokens N --sessions K --seed S --model DIR
    scbench prompts    --model DIR --data FILE --task T --mode multi-turn|multi-request

so the strings are exactly those `scbench run` feeds the model, then tokenises them with the
model's tokenizer.json (HF `tokenizers`, which scbench's tokenizer matches id for id) the way
the run driver does: the first prompt (multi-turn turn 0, or the multi-request context) with
add_special_tokens=True (BOS + the template's BOS: SCBench's double BOS), every later prompt
without. The model's answers are the gold answers as SCBench writes them into the history
(`str(answer)`: a list as "['A', 'B', 'C']") followed by <|eot_id|>.

One sample = one session:
  multi-turn:    P0 P1 ... P(n-1) A(n-1)<eot>    (Pi, i>=1, starts with A(i-1)<eot>, SCBench's
                                                   golden history), loss on every Ai<eot>
  multi-request: C  [Q0 A0<eot>] [Q1 A1<eot>] ... each bracket a separate request: segment id
                 k+1, sees only C and itself, positions continue from len(C) (the trainer's
                 attention mask), loss on every Ai<eot>
Pass-key needle turns are run through scbench_summary_with_needles (each turn tagged
scbench_passkey), the task that holds them in SCBench.

Output: one .npz (compressed) with
  tokens  uint16 (N,)   token ids of all samples, back to back
  seg     uint8  (N,)   0 = shared part, k>0 = multi-request request k-1
  loss    uint8  (N,)   1 on answer tokens (and their <|eot_id|>)
  samples int64  (S, 6) start, length, task index, mode (0 multi-turn, 1 multi-request),
                        synth --tokens, number of answers
  meta    JSON string: tasks, seeds, lengths, commands' versions, sha256 of each synth file

usage: make_builtin_data.py --scbench BIN --model DIR --out FILE.npz
         [--lengths 1000,2000,...] [--sessions kv=150,...] [--seed-base 100000] [--turns 5]
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from tokenizers import Tokenizer

TASKS = ["kv", "prefix_suffix", "vt", "mf", "passkey"]
TASK_CONFIG = {"kv": "scbench_kv", "prefix_suffix": "scbench_prefix_suffix", "vt": "scbench_vt",
               "mf": "scbench_mf", "passkey": "scbench_summary_with_needles"}
MODES = ["multi-turn", "multi-request"]


def py_str(v):
    """Python's str() of a JSON answer, as SCBench puts the gold answer into the history."""
    if isinstance(v, list):
        return "[" + ", ".join(repr(x) if isinstance(x, str) else str(x) for x in v) + "]"
    return str(v)


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        sys.exit(f"make_builtin_data: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return r.stdout


def synth(args, task, tokens, n, seed, tmp):
    path = os.path.join(tmp, f"{task}_{tokens}_{seed}.jsonl")
    out = run([args.scbench, "data", "synth", "--task", task, "--tokens", str(tokens), "--sessions", str(n),
               "--seed", str(seed), "--model", args.model, "--turns", str(args.turns)])
    if task == "passkey":  # the needle turns live in the Mix task summary_with_needles
        lines = []
        for line in out.decode().splitlines():
            rec = json.loads(line)
            for t in rec["multi_turns"]:
                t["task"] = "scbench_passkey"
            lines.append(json.dumps(rec, ensure_ascii=False))
        out = ("\n".join(lines) + "\n").encode()
    with open(path, "wb") as f:
        f.write(out)
    return path, hashlib.sha256(out).hexdigest()


def prompts(args, task, path, mode):
    out = run([args.scbench, "prompts", "--model", args.model, "--data", path, "--task", TASK_CONFIG[task],
               "--mode", mode, "--time", "0"])
    by_session = {}
    for line in out.decode().splitlines():
        rec = json.loads(line)
        by_session.setdefault(rec["session"], []).append(rec)
    return [by_session[k] for k in sorted(by_session)]


def build(tok, eot, recs, mode):
    """-> (ids, seg, loss, n_answers) of one session."""
    enc = lambda s, sp: tok.encode(s, add_special_tokens=sp).ids
    ids, seg, loss = [], [], []
    if mode == "multi-turn":
        turns = recs
        for i, r in enumerate(turns):
            p = enc(r["prompt"], i == 0)
            m = [0] * len(p)
            if i > 0:  # the prompt starts with the previous gold answer and <|eot_id|>
                gold = py_str(turns[i - 1]["ground_truth"])
                if not r["prompt"].startswith(gold + "<|eot_id|>"):
                    sys.exit(f"make_builtin_data: turn {i} prompt does not start with the gold answer {gold!r}")
                k = p.index(eot)
                m[: k + 1] = [1] * (k + 1)
            ids += p
            loss += m
        a = enc(py_str(turns[-1]["ground_truth"]), False) + [eot]
        ids += a
        loss += [1] * len(a)
        seg = [0] * len(ids)
        return ids, seg, loss, len(turns)
    ctx = [r for r in recs if r.get("part") == "context"]
    qs = [r for r in recs if r.get("part") == "query"]
    assert len(ctx) == 1 and qs
    ids = enc(ctx[0]["prompt"], True)
    seg = [0] * len(ids)
    loss = [0] * len(ids)
    for k, q in enumerate(qs):
        p = enc(q["prompt"], False)
        a = enc(py_str(q["ground_truth"]), False) + [eot]
        ids += p + a
        seg += [k + 1] * (len(p) + len(a))
        loss += [0] * len(p) + [1] * len(a)
    return ids, seg, loss, len(qs)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scbench", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--lengths", default="1000,2000,3000,4000,5000,6000,7400")
    ap.add_argument("--sessions", default="kv=150,prefix_suffix=150,vt=110,mf=110,passkey=60",
                    help="sessions per (task, length, mode)")
    ap.add_argument("--seed-base", type=int, default=100000)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--tasks", default=",".join(TASKS))
    a = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    eot = tok.token_to_id("<|eot_id|>")
    lengths = [int(x) for x in a.lengths.split(",")]
    counts = dict(kv.split("=") for kv in a.sessions.split(","))
    tasks = a.tasks.split(",")
    toks, segs, losses, samples, files = [], [], [], [], []
    pos = 0
    with tempfile.TemporaryDirectory() as tmp:
        for ti, task in enumerate(TASKS):
            if task not in tasks:
                continue
            n = int(counts[task])
            for li, L in enumerate(lengths):
                for mi, mode in enumerate(MODES):
                    seed = a.seed_base + 100 * li + 10 * mi
                    path, h = synth(a, task, L, n, seed, tmp)
                    files.append({"task": task, "tokens": L, "sessions": n, "seed": seed, "mode": mode,
                                  "sha256": h})
                    for recs in prompts(a, task, path, mode):
                        ids, seg, loss, na = build(tok, eot, recs, mode)
                        toks.append(np.asarray(ids, np.uint16))
                        segs.append(np.asarray(seg, np.uint8))
                        losses.append(np.asarray(loss, np.uint8))
                        samples.append([pos, len(ids), ti, mi, L, na])
                        pos += len(ids)
                    print(f"{task} {L} {mode}: {n} sessions, {pos} tokens so far", file=sys.stderr, flush=True)
    meta = {"tasks": TASKS, "modes": MODES, "lengths": lengths, "sessions": counts, "seed_base": a.seed_base,
            "turns": a.turns, "files": files}
    tokens = np.concatenate(toks)
    np.savez_compressed(a.out, tokens=tokens, seg=np.concatenate(segs), loss=np.concatenate(losses),
                        samples=np.asarray(samples, np.int64), meta=np.asarray(json.dumps(meta)))
    print(f"{len(samples)} samples, {len(tokens)} tokens -> {a.out} ({os.path.getsize(a.out)} bytes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
