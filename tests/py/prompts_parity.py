#!/usr/bin/env python3
"""prompts_parity.py — end-to-end check of `scbench prompts` against the expected prompt
fixtures that scbench_prompts_ref.py (SCBench's prompt code run through transformers) wrote
under tests/fixtures/prompts/<template>/<task>_<mode>.jsonl.

For every template (llama3, qwen3 from ../shared/tokenizers; llama31_instruct, qwen25_instruct
as model folders built by scbench_prompts_ref.model_dir), task and mode it runs

  scbench prompts --model DIR --data tests/fixtures/prompts/sessions/<task>.jsonl --task <task>
                  --mode multi-turn|multi-request [--no-chat-template] [--disable-golden-context]
                  [--max-seq-length N] [--ids]

and compares each output record with the fixture record, byte for byte on the prompt string and
exactly on n_tokens, n_tokens_full, task, max_new_tokens, ground_truth (and ids where the
fixture has them). The header line of a fixture is not part of the CLI output.

Exits 77 (skip) while `scbench prompts --help` fails (the command is wired by the integrator
once the tokenizer and chat template land), 0 when everything matches, 1 otherwise.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scbench_prompts_ref as ref  # noqa: E402

FIELDS = ("session", "turn", "part", "task", "max_new_tokens", "prompt", "n_tokens", "n_tokens_full",
          "ground_truth", "ids")


def mode_args(suffix):
    mode = "multi-request" if suffix.startswith("multi-request") else "multi-turn"
    args = ["--mode", mode]
    if "nochat" in suffix:
        args.append("--no-chat-template")
    if "nogolden" in suffix:
        args.append("--disable-golden-context")
    return args


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    if not a.scbench or subprocess.run([a.scbench, "prompts", "--help"], capture_output=True).returncode != 0:
        print("SKIP: `scbench prompts` is not available yet")
        return 77
    for folder, _ in ref.TEMPLATES.values():
        if not a.shared or not os.path.exists(os.path.join(a.shared, "tokenizers", folder, "tokenizer.json")):
            print(f"SKIP: {a.shared}/tokenizers/{folder} missing")
            return 77
    root = os.path.join(a.fixtures, "prompts")
    bad = checked = 0
    with tempfile.TemporaryDirectory() as scratch:
        for tname in ref.TEMPLATES:
            mdir = ref.model_dir(a.shared, a.fixtures, tname, scratch)
            tdir = os.path.join(root, tname)
            for fname in sorted(os.listdir(tdir)):
                if not fname.endswith(".jsonl"):
                    continue
                stem = fname[:-len(".jsonl")]
                task = max((t for t in ref.TASKS if stem.startswith(t + "_")), key=len)  # longest name
                suffix = stem[len(task) + 1:]
                with open(os.path.join(tdir, fname), encoding="utf-8") as f:
                    want = [json.loads(line) for line in f if line.strip()]
                header, want = want[0], want[1:]
                cmd = [a.scbench, "prompts", "--model", mdir,
                       "--data", os.path.join(root, "sessions", task + ".jsonl"), "--task", task,
                       "--max-seq-length", str(header["max_seq_length"]),
                       "--max-turns", str(header["max_turns"])] + mode_args(suffix.replace("_trunc", ""))
                if suffix.endswith("_trunc"):
                    cmd.append("--ids")
                p = subprocess.run(cmd, capture_output=True)
                checked += 1
                if p.returncode != 0:
                    bad += 1
                    print(f"FAIL {tname}/{fname}: exit {p.returncode}: {p.stderr.decode(errors='replace')[:500]}")
                    continue
                have = [json.loads(line) for line in p.stdout.decode("utf-8").splitlines() if line.strip()]
                if len(have) != len(want):
                    bad += 1
                    print(f"FAIL {tname}/{fname}: {len(have)} records, want {len(want)}")
                    continue
                for i, (h, w) in enumerate(zip(have, want)):
                    diff = [k for k in FIELDS if k in w and h.get(k) != w[k]]
                    if diff:
                        bad += 1
                        k = diff[0]
                        print(f"FAIL {tname}/{fname} record {i + 1}: {k} differs\n  have {json.dumps(h.get(k), ensure_ascii=False)[:400]}\n  want {json.dumps(w[k], ensure_ascii=False)[:400]}")
                        break
    print(f"{checked - bad}/{checked} fixture files reproduced by scbench prompts")
    bad += check_errors(a)
    return 1 if bad else 0


def check_errors(a):
    """Bad input: a non-zero exit and a message naming the file / what is wrong."""
    llama3 = os.path.join(a.shared, "tokenizers", "llama3")
    sessions = os.path.join(a.fixtures, "prompts", "sessions")
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        badmf = os.path.join(d, "scbench_mf.jsonl")
        with open(badmf, "w") as f:
            f.write('{"id": 0, "context": [1, 2], "multi_turns": [{"input": "what is max?", "answer": 2}]}\n')
        cases = [
            (["--data", os.path.join(d, "missing.jsonl"), "--task", "mf"], 1, "missing.jsonl"),
            (["--data", badmf, "--task", "mf"], 1, "scbench_mf session 0"),
            (["--data", os.path.join(sessions, "scbench_mf.jsonl"), "--task", "nope"], 2, "nope"),
            (["--data", os.path.join(sessions, "scbench_mf.jsonl"), "--task", "mf", "--session", "9"], 1, "no session 9"),
            (["--data", os.path.join(sessions, "scbench_mf.jsonl"), "--task", "mf", "--mode", "both"], 2, "both"),
        ]
        for args, code, text in cases:
            p = subprocess.run([a.scbench, "prompts", "--model", llama3] + args, capture_output=True)
            err = p.stderr.decode(errors="replace")
            if p.returncode != code or text not in err:
                bad += 1
                print(f"FAIL error case {args}: exit {p.returncode} (want {code}), stderr {err.strip()[:300]!r}")
    print("error cases checked")
    return bad


if __name__ == "__main__":
    sys.exit(main())
