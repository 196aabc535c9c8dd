#!/usr/bin/env python3
"""run_e2e.py — end-to-end test of `scbench run` on the fixture sessions of all 12 tasks with a
tiny random-weight chat model (the fixture llama_gqa weights + a byte-level tokenizer.json and a
Llama-3-style chat template written here with the HF `tokenizers` library).

Checks:
  1. a run over every task, both modes and two methods writes exactly the expected rows: one per
     (method, task, mode, session, turn), turn counts as SCBench's max_turns rule gives them,
     scores in [0, 1], the prompt token count of each multi-turn turn equal to what
     `scbench prompts` says for that turn, and positive timings;
  2. killing the process mid-run (SIGKILL) and rerunning the same command completes the run
     with every turn exactly once and the same rows as an uninterrupted run;
  3. bad data gives a clear error naming the file and a non-zero exit, and leaves the
     database consistent (integrity check, no partial session).
Exit 0 pass, 77 skip (tokenizers missing), 1 fail.
"""
import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
            "'<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
            "{% endif %}")


def make_model(fixtures, out):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    src = os.path.join(fixtures, "models", "llama_gqa")
    for f in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(os.path.join(src, f), out)
    b2u = bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={b2u[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                            "<|end_header_id|>", "<|eot_id|>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", 256)])
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                   "chat_template": TEMPLATE}, f)


def expected_turns(data_dir, task, max_turns=5):
    """SCBench §3.3: the turn count of the FIRST session decides the cut."""
    path = os.path.join(data_dir, task + ".jsonl")
    sessions = [json.loads(l) for l in open(path) if l.strip()]
    first = len(sessions[0]["multi_turns"])
    cut = max_turns if 0 < max_turns < first else 0
    return [min(len(s["multi_turns"]), cut) if cut else len(s["multi_turns"]) for s in sessions]


def rows(db):
    con = sqlite3.connect(db)
    r = con.execute("SELECT method, task, mode, session, turn, score, prompt_tokens, prediction, "
                    "prefill_ms, decode_ms FROM turns ORDER BY method, task, mode, session, turn").fetchall()
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    return r, ok


def begin(prefix):
    """The start shared by the end-to-end tests on the fixture model: parses --scbench, --shared,
    --fixtures; None (after printing SKIP) without the tokenizers package; else (args, a fresh
    temporary folder the caller removes, the model folder made in it by make_model)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", required=True)
    ap.add_argument("--shared")
    ap.add_argument("--fixtures", required=True)
    a = ap.parse_args()
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("SKIP: tokenizers not installed")
        return None
    tmp = tempfile.mkdtemp(prefix=prefix)
    model = os.path.join(tmp, "model")
    os.mkdir(model)
    try:
        make_model(a.fixtures, model)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return a, tmp, model


def main():
    st = begin("scb_e2e_")
    if st is None:
        return 77
    a, tmp, model = st
    fails = []
    try:
        data = os.path.join(a.fixtures, "data")
        tasks = sorted(f[:-6] for f in os.listdir(data) if f.endswith(".jsonl"))
        methods = "dense;streamingllm:n_init=4,n_local=60"
        base = [a.scbench, "run", "--model", model, "--data", data, "--methods", methods,
                "--threads", "1", "--quiet"]

        # 1. a whole run
        db1 = os.path.join(tmp, "a.db")
        p = subprocess.run(base + ["--db", db1], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            fails.append(f"run failed ({p.returncode}): {p.stderr[-2000:]}")
        else:
            got, ok = rows(db1)
            if ok != "ok":
                fails.append(f"integrity_check: {ok}")
            want = set()
            for t in tasks:
                for si, n in enumerate(expected_turns(data, t)):
                    for m in ("dense", "streamingllm:n_init=4,n_local=60"):
                        for mode in ("multi_turn", "multi_request"):
                            for ti in range(n):
                                want.add((m, t, mode, si, ti))
            have = [(r[0], r[1], r[2], r[3], r[4]) for r in got]
            if len(have) != len(set(have)):
                fails.append("duplicate turn rows")
            if set(have) != want:
                fails.append(f"rows differ: missing {sorted(want - set(have))[:5]}, extra {sorted(set(have) - want)[:5]}")
            for r in got:
                if not (0.0 <= r[5] <= 1.0):
                    fails.append(f"score out of range: {r}")
                    break
                if r[8] is None or r[8] <= 0 or r[9] is None or r[9] < 0:
                    fails.append(f"timings missing: {r[:5]} prefill {r[8]} decode {r[9]}")
                    break
            # prompt tokens of multi-turn turns equal `scbench prompts` token counts
            for t in ("scbench_kv", "scbench_mf", "scbench_summary"):
                q = subprocess.run([a.scbench, "prompts", "--model", model, "--data",
                                    os.path.join(data, t + ".jsonl"), "--task", t, "--mode",
                                    "multi-turn", "--session", "0"], capture_output=True, text=True)
                if q.returncode != 0:
                    fails.append(f"prompts {t}: {q.stderr[-500:]}")
                    continue
                counts = [json.loads(l)["n_tokens"] for l in q.stdout.splitlines() if l.strip()]
                mine = [r[6] for r in got if r[0] == "dense" and r[1] == t and r[2] == "multi_turn" and r[3] == 0]
                if counts != mine:
                    fails.append(f"{t}: prompt tokens {mine} != scbench prompts {counts}")

        # 2. kill mid-run, rerun, compare with the uninterrupted run
        db2 = os.path.join(tmp, "b.db")
        proc = subprocess.Popen(base + ["--db", db2], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        killed = False
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < 600:
            time.sleep(0.2)
            try:
                con = sqlite3.connect(db2, timeout=1)
                n = con.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
                con.close()
            except sqlite3.Error:
                n = 0
            if n >= 5:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
        proc.wait()
        if not killed:
            fails.append("could not kill the run mid-way (it finished too fast or never wrote)")
        p = subprocess.run(base + ["--db", db2], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            fails.append(f"resumed run failed: {p.stderr[-1000:]}")
        elif "resumed" not in p.stdout:
            fails.append("rerun did not resume the same run")
        else:
            got2, ok2 = rows(db2)
            got1, _ = rows(db1)
            key = lambda r: (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            if ok2 != "ok":
                fails.append(f"integrity after kill: {ok2}")
            if sorted(map(key, got2)) != sorted(map(key, got1)):
                fails.append("rows after kill + resume differ from the uninterrupted run")

        # 3. bad data: clear error, non-zero exit, consistent database
        bad = os.path.join(tmp, "bad")
        os.mkdir(bad)
        with open(os.path.join(bad, "scbench_kv.jsonl"), "w") as f:
            f.write(open(os.path.join(data, "scbench_kv.jsonl")).readline())
            f.write('{"id": 1, "context": "x", "multi_turns": [\n')
        db3 = os.path.join(tmp, "c.db")
        p = subprocess.run([a.scbench, "run", "--model", model, "--data", bad, "--db", db3, "--quiet",
                            "--methods", "dense"], capture_output=True, text=True, timeout=300)
        if p.returncode == 0 or "scbench_kv.jsonl:2" not in p.stderr:
            fails.append(f"bad data: exit {p.returncode}, stderr {p.stderr!r}")
        else:
            con = sqlite3.connect(db3)
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            st = con.execute("SELECT status FROM runs").fetchall()
            part = con.execute("SELECT COUNT(*) FROM turns t WHERE NOT EXISTS (SELECT 1 FROM sessions s "
                               "WHERE s.run_id = t.run_id AND s.session = t.session AND s.task = t.task "
                               "AND s.mode = t.mode AND s.method = t.method)").fetchone()[0]
            con.close()
            if ok != "ok" or part != 0 or st != [("failed",)]:
                fails.append(f"bad data left db: integrity {ok}, orphan turns {part}, status {st}")
        # 4. generate --prompt equals tokenize + generate --ids + decode
        text = "The value of key 42 is"
        ids = subprocess.run([a.scbench, "tokenize", "--model", model, "--bos", text],
                             capture_output=True, text=True).stdout.split()
        gi = subprocess.run([a.scbench, "generate", "--model", model, "--ids", ",".join(ids),
                             "--max-new", "12"], capture_output=True, text=True)
        gp = subprocess.run([a.scbench, "generate", "--model", model, "--prompt", text, "--max-new", "12"],
                            capture_output=True)
        dec = subprocess.run([a.scbench, "tokenize", "--model", model, "--decode", gi.stdout.strip()],
                             capture_output=True)
        if gi.returncode or gp.returncode or dec.returncode or gp.stdout != dec.stdout + b"\n":
            fails.append(f"generate --prompt {gp.stdout!r} != decoded --ids {dec.stdout!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    print("run_e2e:", "ok" if not fails else f"{len(fails)} failures")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
