#!/usr/bin/env python3
"""chat_template_parity.py — `scbench chat-template` must print exactly what transformers'
apply_chat_template(messages, tokenize=False, add_generation_prompt=...) returns, for real
chat templates (Llama-3 and Qwen3 from the shared tokenizer folders; the built-in model's; the official
Llama-3.1-8B-Instruct, Qwen2.5-7B-Instruct and Mistral-7B-Instruct-v0.3 templates committed
under tests/fixtures/templates/) over many seeded conversations, with and without the
generation prompt, with a fixed date and with none. Where transformers raises (a template's
raise_exception), scbench must fail with the same message.

Usage: chat_template_parity.py --scbench PATH --shared DIR --fixtures DIR [--seed N]
Exit 0 pass, 77 skip (transformers or tokenizers missing), 1 fail."""
import argparse
import datetime as _dt
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import transformers
    import transformers.utils.chat_template_utils as ctu
    from tokenizers import Tokenizer, models
    from transformers import AutoTokenizer, PreTrainedTokenizerFast
except Exception as e:  # pragma: no cover
    print(f"SKIP: transformers/tokenizers not importable: {e}")
    sys.exit(77)

transformers.logging.set_verbosity_error()

FIXED_DATE = _dt.datetime(2024, 9, 15, 12, 0, 0)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FIXED_DATE


def set_reference_clock(fixed):
    """Patch the datetime that transformers' strftime_now reads; recompile templates."""
    ctu.datetime = _FixedDatetime if fixed else _dt.datetime
    ctu._compile_jinja_template.cache_clear()


def reference(tok, msgs, gen, fixed_date):
    set_reference_clock(fixed_date)
    kwargs = {}
    if fixed_date:
        kwargs["date_string"] = FIXED_DATE.strftime("%d %b %Y")  # what scbench passes with --date
    try:
        return True, tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen, **kwargs)
    except Exception as e:  # jinja2 TemplateError from raise_exception
        return False, str(e)


def run_scbench(exe, args, msgs, tmp):
    path = os.path.join(tmp, "msgs.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(msgs, f, ensure_ascii=False)
    p = subprocess.run([exe, "chat-template", *args, "--messages", path], capture_output=True)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8", "replace")


PIECES = [
    "Hello", "What is the capital of France?", "  leading spaces", "trailing spaces   ",
    "line one\nline two\n", "\n\nnewlines around\n\n", "tabs\there", "ünïcödé – “quotes” 日本語 🙂",
    "{{ not a template }} {% neither %}", "a'b\"c\\d", "<|eot_id|> literal special", "x" * 300,
    "\u00a0nbsp edges\u3000", "", "ÀÉÎõü ßtraße ÿ Ωμέγα Кириллица ǅ", "it's o'neil-mc(donald) x[y]z", "<think>\nreasoning here\n</think>\n\nthe answer", "CTX[SEPSEPSEP]",
]


def rand_content(rng):
    k = rng.randint(1, 3)
    return "".join(rng.choice(PIECES) + rng.choice(["", " ", "\n"]) for _ in range(k))


def conversations(rng, n):
    convs = [
        # SCBench's shapes: the empty system message, gold answer then query, context+separator
        [{"role": "system", "content": ""}],
        [{"role": "system", "content": ""}, {"role": "assistant", "content": "The gold answer."},
         {"role": "user", "content": "Next question?"}],
        [{"role": "user", "content": "A long shared context...\n\n[SEPSEPSEP]"}],
        [{"role": "system", "content": ""}, {"role": "user", "content": "CTX[SEPSEPSEP]"}],
        [{"role": "system", "content": ""}, {"role": "user", "content": "[SEPSEPSEP]问题：谁写的？\n答案："}],
        [{"role": "user", "content": "阅读以下书籍然后回答问题。\n\n书的内容…[SEPSEPSEP]"}],
        [{"role": "user", "content": "hi"}],
        [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "hi"},
         {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"}],
    ]
    for _ in range(n):
        msgs = []
        if rng.random() < 0.6:
            msgs.append({"role": "system", "content": rng.choice(["", rand_content(rng)])})
        turns = rng.randint(1, 5)
        role = "user" if rng.random() < 0.85 else "assistant"
        for _ in range(turns):
            msgs.append({"role": role, "content": rand_content(rng)})
            role = "assistant" if role == "user" else "user"
        convs.append(msgs)
    return convs


def plain_tokenizer(template, tokens):
    tk = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tk, chat_template=template, **tokens)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--n", type=int, default=30)
    a = ap.parse_args()
    print(f"seed {a.seed}")
    rng = random.Random(a.seed)
    convs = conversations(rng, a.n)

    cases = []  # (name, tokenizer, scbench args)
    for d in ("llama3", "qwen3"):
        mdir = os.path.join(a.shared, "tokenizers", d)
        if os.path.exists(os.path.join(mdir, "tokenizer_config.json")):
            cases.append((d, AutoTokenizer.from_pretrained(mdir), ["--model", mdir]))
        else:
            print(f"note: {mdir} missing, skipped")
    # the built-in model (datasets/builtin/, tools/make_builtin_tokenizer.py)
    bdir = os.path.normpath(os.path.join(a.fixtures, "..", "..", "datasets", "builtin"))
    if os.path.exists(os.path.join(bdir, "tokenizer_config.json")):
        cases.append(("builtin", AutoTokenizer.from_pretrained(bdir), ["--model", bdir]))
    else:
        print(f"note: {bdir} missing, skipped")
    tmp = tempfile.mkdtemp(prefix="scb_chat_")
    tdir = os.path.join(a.fixtures, "templates")
    for name in sorted(os.listdir(tdir)):
        if not name.endswith(".jinja"):
            continue
        base = name[:-6]
        with open(os.path.join(tdir, name), encoding="utf-8") as f:
            src = f.read()
        with open(os.path.join(tdir, base + ".tokens.json"), encoding="utf-8") as f:
            tokens = json.load(f)
        # a model directory in the newer HF layout: chat_template.jinja + tokenizer_config.json
        mdir = os.path.join(tmp, base)
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "chat_template.jinja"), "w", encoding="utf-8") as f:
            f.write(src)
        with open(os.path.join(mdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(tokens, f)
        cases.append((base, plain_tokenizer(src, tokens), ["--model", mdir]))
    # small templates for what the real ones touch lightly, through --template FILE
    extras = {
        "dates": "{{ strftime_now('%d %B %Y (%a) %H:%M') }}|{% if date_string is defined %}{{ date_string }}{% endif %}"
                 "{% for m in messages %}|{{ m.role }}{% endfor %}",
        "case": "{% for m in messages %}{{ m.content.upper() }}|{{ m.content.lower() }}|{{ m.content.title() }}|"
                "{{ m.content | title }}|{{ m.content | capitalize }}|{{ m.content.split() }}|{{ m.content.strip() }}|{% endfor %}",
        "json": "{{ messages | tojson }}\n{{ messages | tojson(indent=2) }}\n{{ messages[-1] }}\n{{ messages | length }}"
                "{{ messages | map(attribute='content') | map('length') | list }}",
    }
    for base, src in extras.items():
        path = os.path.join(tmp, base + ".jinja")
        with open(path, "w", encoding="utf-8") as f:
            f.write(src)
        cases.append(("extra-" + base, plain_tokenizer(src, {"bos_token": "<s>"}), ["--template", path]))
    if not cases:
        print("SKIP: no templates found")
        return 77

    fails = checked = raised = 0
    for name, tok, args in cases:
        for ci, msgs in enumerate(convs):
            for gen in (False, True):
                for fixed in (True, False):
                    ok, ref = reference(tok, msgs, gen, fixed)
                    extra = (["--add-generation-prompt"] if gen else []) + (["--date", FIXED_DATE.strftime("%Y-%m-%d")] if fixed else [])
                    rc, out, err = run_scbench(a.scbench, args + extra, msgs, tmp)
                    checked += 1
                    raised += not ok
                    good = (rc == 0 and out == ref) if ok else (rc != 0 and ref in err)
                    if not good and not fixed and ok:
                        # real clock: the minute may have turned between the two renders
                        ok2, ref2 = reference(tok, msgs, gen, fixed)
                        good = ok2 and rc == 0 and out == ref2
                    if not good:
                        fails += 1
                        if fails <= 10:
                            print(f"FAIL {name} conv {ci} gen={gen} fixed_date={fixed}\n  messages: {json.dumps(msgs, ensure_ascii=False)[:400]}")
                            print(f"  reference ({'ok' if ok else 'raises'}): {ref!r}"[:1500])
                            print(f"  scbench rc={rc}: {out!r}"[:1500])
                            if err:
                                print(f"  stderr: {err.strip()}"[:600])
    print(f"{checked - fails}/{checked} renders identical across {len(cases)} templates "
          f"({raised} of them raise_exception errors with the same message)")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
