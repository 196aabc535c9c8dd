#!/usr/bin/env python3
"""jinja_whitespace_fuzz.py — seeded random templates built from text, newlines, indentation,
comments, `{{ }}` and nested `{% if %}` / `{% for %}` blocks with every whitespace-control
marker (`-`, `+`, none), rendered by `scbench chat-template --template` and by transformers'
jinja2 environment (trim_blocks + lstrip_blocks); the outputs must be identical.

Usage: jinja_whitespace_fuzz.py --scbench PATH [--seed N] [--n N]
Exit 0 pass, 77 skip (transformers missing), 1 fail."""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import transformers.utils.chat_template_utils as ctu
except Exception as e:  # pragma: no cover
    print(f"SKIP: transformers not importable: {e}")
    sys.exit(77)

TEXT = ["a", "b c", " ", "  ", "\t", "\n", "\n\n", "  \n", "\n  ", "x\n    ", "\r\n", "é"]


def open_tag(rng, kind):
    lm = rng.choice(["", "-", "+"])
    rm = rng.choice(["", "-", "+"])
    sp = rng.choice([" ", "  ", "\n"])
    return "{%" + lm + sp + kind + sp + rm + "%}"


def gen(rng, depth):
    parts = []
    for _ in range(rng.randint(1, 6)):
        r = rng.random()
        if r < 0.35:
            parts.append(rng.choice(TEXT))
        elif r < 0.5:
            lm, rm = rng.choice(["", "-"]), rng.choice(["", "-"])
            parts.append("{{" + lm + " " + rng.choice(["'v'", "messages[0].role", "loop_i", "1 + 1", "' s '"]) + " " + rm + "}}")
        elif r < 0.6:
            lm, rm = rng.choice(["", "-", "+"]), rng.choice(["", "-", "+"])
            parts.append("{#" + lm + " note " + rm + "#}")
        elif depth < 3:
            kind = rng.choice(["if", "for"])
            if kind == "if":
                cond = rng.choice(["true", "false", "messages"])
                body = gen(rng, depth + 1)
                els = (open_tag(rng, "else") + gen(rng, depth + 1)) if rng.random() < 0.4 else ""
                parts.append(open_tag(rng, "if " + cond) + body + els + open_tag(rng, "endif"))
            else:
                parts.append(open_tag(rng, "for m in messages") + gen(rng, depth + 1) + open_tag(rng, "endfor"))
        else:
            parts.append(rng.choice(TEXT))
    return "".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=None)
    ap.add_argument("--fixtures", default=None)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--n", type=int, default=300)
    a = ap.parse_args()
    print(f"seed {a.seed}")
    rng = random.Random(a.seed)
    tmp = tempfile.mkdtemp(prefix="scb_jfuzz_")
    msgs = [{"role": "user", "content": "u"}, {"role": "assistant", "content": "v"}]
    mpath = os.path.join(tmp, "m.json")
    with open(mpath, "w") as f:
        json.dump(msgs, f)
    fails = 0
    for i in range(a.n):
        src = gen(rng, 0) + rng.choice(["", "\n", "\n\n", "  "])
        ref = ctu._compile_jinja_template(src).render(messages=msgs, add_generation_prompt=False, tools=None, documents=None)
        tpath = os.path.join(tmp, "t.jinja")
        with open(tpath, "w", newline="") as f:
            f.write(src)
        p = subprocess.run([a.scbench, "chat-template", "--template", tpath, "--messages", mpath], capture_output=True)
        out = p.stdout.decode()
        if p.returncode != 0 or out != ref:
            fails += 1
            if fails <= 5:
                print(f"FAIL {i}: template {src!r}\n  jinja2:  {ref!r}\n  scbench: {out!r} {p.stderr.decode().strip()}")
    print(f"{a.n - fails}/{a.n} random templates identical")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
