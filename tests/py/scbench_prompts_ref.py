#!/usr/bin/env python3
"""scbench_prompts_ref.py — SCBench's prompt construction, transcribed from the spec
(spec/scbench.md §4, §5.1, §3.3; SCBench's eval_utils.py create_multiturn_prompt,
create_scdq_prompt, get_ground_truth and run_scbench.py truncate_input / max_input_length),
run with transformers' apply_chat_template on REAL chat templates and HF tokenizers.

It writes the expected-prompt fixtures tests/fixtures/prompts/<template>/<task>_<mode>.jsonl
from the fixture sessions in tests/fixtures/prompts/sessions/ (``--write``), and, run as a
test (the default), regenerates them in memory and checks the committed files are identical,
so the fixtures stay the reference's output and not hand edits.

Templates: llama3 and qwen3 (tokenizer_config.json of ../shared/tokenizers/<name>/), and
llama31_instruct / qwen25_instruct (tests/fixtures/templates/llama-3.1-8b-instruct.jinja and
qwen2.5-7b-instruct.jinja, the official Hub templates) rendered over the llama3 / qwen3
tokenizer (same tokenizer families; Llama-3.1's BOS post-processor added, see model_dir).

Modes (file suffix): multi-turn, multi-turn-nogolden, multi-request (chat template on, as the
paper scripts run), and for llama3/qwen3 also multi-turn-nochat, multi-turn-nochat-nogolden,
multi-request-nochat. Files ending _trunc use a small max_seq_length so the first prompt is
middle-truncated; they carry the first prompt's token ids.

Record format (one JSON object per line):
  multi-turn:    {"session", "turn", "task", "max_new_tokens", "prompt", "n_tokens",
                  "n_tokens_full", "ground_truth"[, "ids"]}
  multi-request: {"session", "part": "context", "prompt", "n_tokens", "n_tokens_full"[, "ids"]}
                 then per query {"session", "turn", "part": "query", "task", "max_new_tokens",
                  "prompt", "n_tokens", "n_tokens_full", "ground_truth"}
The header line {"max_seq_length", "max_turns", "max_turn_size", "input_budget", "mode",
"use_chat_template", "golden_context"} comes first.

Exit: 0 pass, 77 skip (transformers or the tokenizer files missing), 1 fail.
"""
import argparse
import json
import os
import re
import sys
import tempfile

SEP = "[SEPSEPSEP]"

# ---- §2.1 max new tokens, §4 templates (SCBench's eval_utils.py dictionaries) -------------------
MAX_NEW_TOKENS = {
    "scbench_choice_eng": 40, "scbench_qa_eng": 40, "scbench_qa_chn": 40, "scbench_kv": 150,
    "scbench_mf": 5, "scbench_prefix_suffix": 150, "scbench_repoqa": 1024, "scbench_summary": 200,
    "scbench_vt": 30, "scbench_many_shot": 10,
    "scbench_summary_with_needles": {"scbench_summary": 800, "scbench_passkey": 15},
    "scbench_repoqa_and_kv": {"scbench_repoqa": 1024, "scbench_kv": 80},
}
TASKS = list(MAX_NEW_TOKENS)

KV_HEAD = "Extract the value corresponding to the specified key in the JSON object below.\n\n"
REPOQA_HEAD = ("Based on the function description and code context, please retrieve and repeat the exact "
               "described function from the code context in a code block wrapped by ```:\n\n")
CHOICE_Q = ("Question: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\n"
            "The the correct answer is")
CHOICE_Q_TEXT = ("Question: {question}\nA. {OPTION_A}\nB. {OPTION_B}\nC. {OPTION_C}\nD. {OPTION_D}\n\n"
                 "The letter of the correct answer is")
QAENG_HEAD = "Read the book and answer the question. Be very concise in your answer.\n\n"
QACHN_HEAD = "阅读以下书籍然后回答问题。\n\n"

FIRST = {  # §4.1
    "scbench_kv": KV_HEAD + "{context}\n\n{input}",
    "scbench_choice_eng": "Read the book and answer the question.\n\n{context}\n\n" + CHOICE_Q,
    "scbench_qa_eng": QAENG_HEAD + "{context}\n\nQuestion: {question}\nAnswer:",
    "scbench_qa_chn": QACHN_HEAD + "{context}\n\n问题：{question}\n答案：",
    "scbench_mf": "{prefix}\n\n{context}\n\n{input}",
    "scbench_repoqa": REPOQA_HEAD + "{context}\n\n{input}",
}
for _t in ("scbench_summary", "scbench_vt", "scbench_many_shot", "scbench_summary_with_needles",
           "scbench_repoqa_and_kv", "scbench_prefix_suffix"):
    FIRST[_t] = "{context}\n\n{input}"

FOLLOW_TEXT = {t: "{pre_ans}\n\n{input}" for t in TASKS}  # §4.2 A
FOLLOW_TEXT["scbench_choice_eng"] = "{pre_ans}\n\n" + CHOICE_Q_TEXT
FOLLOW_TEXT["scbench_qa_eng"] = "{pre_ans}\n\nQuestion: {question}\nAnswer:"
FOLLOW_TEXT["scbench_qa_chn"] = "{pre_ans}\n\n问题：{question}\n答案："
FOLLOW_TEXT["scbench_mf"] = "{pre_ans}\n\n{prefix}\n\n{input}"

FOLLOW_CHAT = {t: "{input}" for t in TASKS}  # §4.2 B
FOLLOW_CHAT["scbench_choice_eng"] = CHOICE_Q
FOLLOW_CHAT["scbench_qa_eng"] = "Question: {question}\nAnswer:"
FOLLOW_CHAT["scbench_qa_chn"] = "问题：{question}\n答案："
FOLLOW_CHAT["scbench_mf"] = "{prefix}\n\n{input}"

SCDQ = {t: "{context}" for t in TASKS}  # §4.4
SCDQ["scbench_kv"] = KV_HEAD + "{context}"
SCDQ["scbench_repoqa"] = REPOQA_HEAD + "{context}"
SCDQ["scbench_mf"] = "{prefix}\n\n{context}"
SCDQ["scbench_choice_eng"] = ("Read the book and answer the question.\n\n{context}", CHOICE_Q)
SCDQ["scbench_qa_eng"] = (QAENG_HEAD + "{context}", "Question: {question}\nAnswer:")
SCDQ["scbench_qa_chn"] = (QACHN_HEAD + "{context}", "问题：{question}\n答案：")

GOLD_AS_STR = {"scbench_kv", "scbench_vt", "scbench_repoqa", "scbench_many_shot",
               "scbench_summary_with_needles", "scbench_repoqa_and_kv", "scbench_prefix_suffix",
               "scbench_mf"}  # the branches that wrap the assistant content in str()


def mf_prefix(text):
    target = re.findall(r"The .+ is", text)[0].lower()[:-3]
    return f"What is {target}?"


def turn_fields(name, turn, **extra):
    f = dict(input=turn["input"], question=turn["input"], **extra)
    if name == "scbench_choice_eng":
        o = turn["options"]
        f.update(OPTION_A=o[0], OPTION_B=o[1], OPTION_C=o[2], OPTION_D=o[3])
    return f


def multiturn_prompts(eg, name, tok, chat, golden):
    """create_multiturn_prompt: the prompt strings of every turn."""
    turns = eg["multi_turns"]
    context = eg["context"] if "context" in eg else eg["input"]
    prefixes = [mf_prefix(t["input"]) for t in turns] if name == "scbench_mf" else None
    first = FIRST[name].format(context=context, prefix=prefixes[0] if prefixes else None,
                               **turn_fields(name, turns[0]))
    follow_t = FOLLOW_TEXT[name] if golden else FOLLOW_CHAT[name]
    follow = [follow_t.format(pre_ans=turns[i - 1]["answer"] if golden else None,
                              prefix=prefixes[i] if prefixes else None, **turn_fields(name, turns[i]))
              for i in range(1, len(turns))]
    if not chat:
        return [first] + follow
    sys_prompt = tok.apply_chat_template([{"role": "system", "content": ""}],
                                         add_generation_prompt=golden, tokenize=False)
    last_prefix = prefixes[-1] if prefixes else None  # the mf variable leaking out of the loop
    out = [tok.apply_chat_template([{"role": "user", "content": first}], add_generation_prompt=True,
                                   tokenize=False)]
    for i in range(1, len(turns)):
        msgs = []
        if golden:
            gold = turns[i - 1]["answer"]
            msgs = [{"role": "system", "content": ""},
                    {"role": "assistant", "content": str(gold) if name in GOLD_AS_STR else gold}]
        user = FOLLOW_CHAT[name].format(prefix=last_prefix, **turn_fields(name, turns[i]))
        msgs.append({"role": "user", "content": user})
        p = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False).replace(sys_prompt, "")
        if name == "scbench_summary":
            p += "This paper"
        out.append(p)
    return out


def scdq_prompts(eg, name, tok, chat):
    """create_scdq_prompt: [context part] + query parts."""
    turns = eg["multi_turns"]
    context = eg["context"] if "context" in eg else eg["input"]
    tmpl = SCDQ[name]
    if isinstance(tmpl, tuple):
        ctx = tmpl[0].format(context=context)
        queries = [tmpl[1].format(**turn_fields(name, t)) for t in turns]
    elif name == "scbench_mf":
        ctx = tmpl.format(prefix=turns[0]["input"], context=context)
        queries = [FOLLOW_CHAT[name].format(prefix=mf_prefix(t["input"]), input=t["input"]) for t in turns]
    else:
        ctx = tmpl.format(context=context)
        queries = [t["input"] for t in turns]
    if chat:
        ctx = tok.apply_chat_template([{"role": "user", "content": ctx + SEP}], add_generation_prompt=True,
                                      tokenize=False).split(SEP)[0]
        queries = [tok.apply_chat_template([{"role": "system", "content": ""},
                                            {"role": "user", "content": SEP + q}],
                                           add_generation_prompt=True, tokenize=False).split(SEP)[1]
                   for q in queries]
    return [ctx] + queries


def ground_truth(eg, name):
    out = []
    for t in eg["multi_turns"]:
        if name == "scbench_choice_eng":
            out.append([t["answer"], "ABCD"[t["options"].index(t["answer"])]])
        elif name == "scbench_qa_eng":
            out.append([t["answer"]])
        else:
            out.append(t["answer"])
    return out


def truncate_middle(ids, L):
    if L < 0 or len(ids) <= L:
        return ids
    split = L // 2
    return ids[0:split] + ids[-split:]


def input_budget(name, max_seq_length, max_turn_size, scdq):
    mnt = MAX_NEW_TOKENS[name]
    if isinstance(mnt, dict):
        assert max(mnt.values()) <= max_seq_length
        L = max_seq_length - (sum(mnt.values()) * max_turn_size // 2)
    else:
        if mnt >= max_seq_length:
            mnt = 500
        L = max_seq_length - mnt * max_turn_size
    return L - 1000 if scdq else L


def turn_max_new_tokens(name, turn, max_seq_length):
    mnt = MAX_NEW_TOKENS[name]
    if isinstance(mnt, dict):
        return turn["task"], mnt[turn["task"]]
    return name, (500 if mnt >= max_seq_length else mnt)


def build(sessions, name, tok, mode, chat, golden, max_seq_length=131072, max_turns=5, with_ids=False):
    """All records of one fixture file."""
    max_turn_size = len(sessions[0]["multi_turns"])
    if 0 < max_turns < max_turn_size:
        sessions = [{**eg, "multi_turns": eg["multi_turns"][:max_turns]} for eg in sessions]
        max_turn_size = max_turns
    scdq = mode == "multi-request"
    L = input_budget(name, max_seq_length, max_turn_size, scdq)
    recs = [{"max_seq_length": max_seq_length, "max_turns": max_turns, "max_turn_size": max_turn_size,
             "input_budget": L, "mode": mode, "use_chat_template": chat, "golden_context": golden}]
    for si, eg in enumerate(sessions):
        prompts = scdq_prompts(eg, name, tok, chat) if scdq else multiturn_prompts(eg, name, tok, chat, golden)
        gts = ground_truth(eg, name)
        first_ids = tok.encode(prompts[0])  # add_special_tokens default True (double BOS kept)
        kept = truncate_middle(first_ids, L)
        assert len(kept) <= L or L < 0
        if scdq:
            r = {"session": si, "part": "context", "prompt": prompts[0], "n_tokens": len(kept),
                 "n_tokens_full": len(first_ids)}
            if with_ids:
                r["ids"] = kept
            recs.append(r)
            queries = prompts[1:]
        else:
            queries = prompts
        for ti, p in enumerate(queries):
            task, mnt = turn_max_new_tokens(name, eg["multi_turns"][ti], max_seq_length)
            if not scdq and ti == 0:
                n, nf, ids = len(kept), len(first_ids), kept
            else:
                ids = tok.encode(p, add_special_tokens=False)
                n = nf = len(ids)
            r = {"session": si, "turn": ti}
            if scdq:
                r["part"] = "query"
            r.update(task=task, max_new_tokens=mnt, prompt=p, n_tokens=n, n_tokens_full=nf,
                     ground_truth=gts[ti])
            if with_ids and not scdq and ti == 0:
                r["ids"] = ids
            recs.append(r)
    return recs


TEMPLATES = {  # fixture name -> (tokenizer folder under shared/tokenizers, jinja file or None)
    "llama3": ("llama3", None),
    "qwen3": ("qwen3", None),
    "llama31_instruct": ("llama3", "llama-3.1-8b-instruct.jinja"),
    "qwen25_instruct": ("qwen3", "qwen2.5-7b-instruct.jinja"),
}
# Llama-3.1-Instruct's tokenizer.json adds a BOS in its post-processor (the shared llama3 file,
# from an npm package, does not): this is what makes SCBench's first prompt start with two BOS.
LLAMA31_BOS = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
               {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
             {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
             {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                             "tokens": ["<|begin_of_text|>"]}},
}


def model_dir(shared, fixtures, tname, scratch):
    """A model folder (tokenizer.json + tokenizer_config.json) for a fixture template: the shared
    folder itself for llama3/qwen3, else one written under scratch with the .jinja template as
    chat_template (and, for llama31_instruct, the BOS post-processor)."""
    folder, jinja = TEMPLATES[tname]
    src = os.path.join(shared, "tokenizers", folder)
    if not jinja:
        return src
    dest = os.path.join(scratch, tname)
    os.makedirs(dest, exist_ok=True)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        tj = json.load(f)
    if tname == "llama31_instruct":
        tj["post_processor"] = {"type": "Sequence", "processors": [tj["post_processor"], LLAMA31_BOS]}
    with open(os.path.join(dest, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(src, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    with open(os.path.join(fixtures, "templates", jinja), encoding="utf-8") as f:
        cfg["chat_template"] = f.read()
    with open(os.path.join(dest, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=1)
    return dest


MODES = [  # (file suffix, mode, chat, golden, templates it is written for)
    ("multi-turn", "multi-turn", True, True, None),
    ("multi-turn-nogolden", "multi-turn", True, False, None),
    ("multi-request", "multi-request", True, True, None),
    ("multi-turn-nochat", "multi-turn", False, True, ("llama3", "qwen3")),
    ("multi-turn-nochat-nogolden", "multi-turn", False, False, ("llama3", "qwen3")),
    ("multi-request-nochat", "multi-request", False, True, ("llama3", "qwen3")),
]
TRUNC_TEMPLATES = ("llama31_instruct", "qwen25_instruct")
TRUNC_KEEP = 101  # the budget L the _trunc files aim at: the first prompt keeps 2 * 50 ids


def trunc_seq_length(name, max_turn_size, scdq):
    """A max_seq_length that makes L == TRUNC_KEEP (inverse of input_budget)."""
    mnt = MAX_NEW_TOKENS[name]
    used = sum(mnt.values()) * max_turn_size // 2 if isinstance(mnt, dict) else mnt * max_turn_size
    return TRUNC_KEEP + used + (1000 if scdq else 0)


def load_tokenizer(path):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(path)


def read_sessions(fixtures, name):
    with open(os.path.join(fixtures, "prompts", "sessions", name + ".jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def expected_files(shared, fixtures, scratch):
    """{relative path: text} of every fixture file."""
    out = {}
    for tname in TEMPLATES:
        tok = load_tokenizer(model_dir(shared, fixtures, tname, scratch))
        for name in TASKS:
            sessions = read_sessions(fixtures, name)
            for suffix, mode, chat, golden, only in MODES:
                if only and tname not in only:
                    continue
                recs = build(sessions, name, tok, mode, chat, golden)
                out[f"{tname}/{name}_{suffix}.jsonl"] = recs
            if tname in TRUNC_TEMPLATES:
                for suffix, mode in (("multi-turn", "multi-turn"), ("multi-request", "multi-request")):
                    mts = min(len(sessions[0]["multi_turns"]), 5)
                    msl = trunc_seq_length(name, mts, mode == "multi-request")
                    recs = build(sessions, name, tok, mode, True, True, max_seq_length=msl, with_ids=True)
                    out[f"{tname}/{name}_{suffix}_trunc.jsonl"] = recs
    return {k: "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in v) for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scbench")
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    ap.add_argument("--write", action="store_true", help="rewrite the fixture files")
    a = ap.parse_args()
    if not a.shared or not a.fixtures:
        print("need --shared and --fixtures", file=sys.stderr)
        return 2
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("SKIP: transformers is not installed")
        return 77
    for folder, _ in TEMPLATES.values():
        if not os.path.exists(os.path.join(a.shared, "tokenizers", folder, "tokenizer.json")):
            print(f"SKIP: {a.shared}/tokenizers/{folder} missing")
            return 77
    with tempfile.TemporaryDirectory() as scratch:
        files = expected_files(a.shared, a.fixtures, scratch)
    root = os.path.join(a.fixtures, "prompts")
    if a.write:
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        print(f"wrote {len(files)} fixture files under {root}")
        return 0
    bad = 0
    for rel, text in sorted(files.items()):
        path = os.path.join(root, rel)
        try:
            with open(path, encoding="utf-8") as f:
                have = f.read()
        except OSError as e:
            print(f"FAIL {rel}: {e}")
            bad += 1
            continue
        if have != text:
            bad += 1
            for i, (x, y) in enumerate(zip(have.splitlines(), text.splitlines())):
                if x != y:
                    print(f"FAIL {rel}: line {i + 1} differs from the reference\n  have {x[:300]}\n  want {y[:300]}")
                    break
            else:
                print(f"FAIL {rel}: line count differs from the reference")
    print(f"{len(files) - bad}/{len(files)} fixture files match the Python reference")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
