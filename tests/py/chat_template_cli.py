#!/usr/bin/env python3
"""chat_template_cli.py — `scbench chat-template` on bad input: every case exits non-zero
(1 for bad files, 2 for usage errors) with a message naming the file and the problem, and
never crashes (no signal exit). Also --help (exit 0), the output without a trailing newline,
and messages read from stdin.

Usage: chat_template_cli.py --scbench PATH --shared DIR --fixtures DIR"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="scb_chat_cli_")

    def write(name, text):
        p = os.path.join(tmp, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        return p

    good = write("good.json", json.dumps([{"role": "user", "content": "hi"}]))
    model = os.path.join(tmp, "model")
    write("model/tokenizer_config.json", json.dumps({"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"}))
    badtpl = os.path.join(tmp, "badtpl")
    write("badtpl/tokenizer_config.json", json.dumps({"chat_template": "{% for m in messages %}\n{{ m.content }\n{% endfor %}"}))
    unsup = os.path.join(tmp, "unsup")
    write("unsup/tokenizer_config.json", json.dumps({"chat_template": "line1\n{{ messages | wordwrap }}"}))
    raising = os.path.join(tmp, "raising")
    write("raising/tokenizer_config.json", json.dumps({"chat_template": "{{ raise_exception('Only user roles, please') }}"}))
    nodir = os.path.join(tmp, "nothing")
    os.makedirs(nodir, exist_ok=True)

    cases = [
        # (args, expected exit, substrings of stderr)
        (["--model", model, "--messages", write("notjson.json", "[{")], 1, ["notjson.json", "invalid JSON"]),
        (["--model", model, "--messages", write("obj.json", "{}")], 1, ["obj.json", "list of messages"]),
        (["--model", model, "--messages", write("empty.json", "[]")], 1, ["empty.json", "empty"]),
        (["--model", model, "--messages", write("norole.json", '[{"content": "x"}]')], 1, ["norole.json", "message 0", "role"]),
        (["--model", model, "--messages", write("numcontent.json", '[{"role": "user", "content": "a"}, {"role": "user", "content": 5}]')], 1, ["numcontent.json", "message 1", "content"]),
        (["--model", model, "--messages", write("notobj.json", '["x"]')], 1, ["notobj.json", "message 0"]),
        (["--model", model, "--messages", os.path.join(tmp, "missing.json")], 1, ["missing.json"]),
        (["--model", badtpl, "--messages", good], 1, ["tokenizer_config.json", "line 2"]),
        (["--model", unsup, "--messages", good], 1, ["tokenizer_config.json", "line 2", "unsupported filter 'wordwrap'"]),
        (["--model", raising, "--messages", good], 1, ["Only user roles, please"]),
        (["--model", nodir, "--messages", good], 1, ["nothing"]),
        (["--model", model, "--messages", good, "--date", "2024-13-01"], 2, ["--date"]),
        (["--model", model, "--messages", good, "--bogus"], 2, ["--bogus"]),
        (["--model", model], 2, ["--messages"]),
        (["--messages", good], 2, ["--model"]),
        (["--template", os.path.join(tmp, "nope.jinja"), "--messages", good], 1, ["nope.jinja"]),
    ]
    fails = 0
    for args, want_rc, needles in cases:
        p = subprocess.run([a.scbench, "chat-template", *args], capture_output=True)
        err = p.stderr.decode("utf-8", "replace")
        ok = p.returncode == want_rc and all(n in err for n in needles) and p.stdout == b""
        if not ok:
            fails += 1
            print(f"FAIL {args}: rc={p.returncode} (want {want_rc}) stderr={err.strip()!r} stdout={p.stdout[:100]!r}")
        else:
            print(f"ok   rc={p.returncode} {err.strip()}")

    p = subprocess.run([a.scbench, "chat-template", "--help"], capture_output=True)
    if p.returncode != 0 or b"--add-generation-prompt" not in p.stdout:
        fails += 1
        print("FAIL --help")
    p = subprocess.run([a.scbench, "chat-template", "--model", model, "--messages", "-"],
                       input=json.dumps([{"role": "user", "content": "a\n"}, {"role": "assistant", "content": "b"}]).encode(),
                       capture_output=True)
    if p.returncode != 0 or p.stdout != b"<s><user>a\n<assistant>b":
        fails += 1
        print(f"FAIL stdin: rc={p.returncode} out={p.stdout!r} err={p.stderr!r}")
    print(f"{len(cases) + 2 - fails}/{len(cases) + 2} checks passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
