#!/usr/bin/env python3
"""tokenizer_parity.py — `scbench tokenize` must give the ids of the Hugging Face `tokenizers`
library, byte for byte, on the real Llama-3 and Qwen3 tokenizer.json files and on variants of
them written here (a Llama-3.1-style TemplateProcessing BOS, the GPT-2 ByteLevel regex, a
Mistral-style regex, String/inverted Removed splits, added tokens with
lstrip/rstrip/single_word/normalized, merges in "a b" form), and on the SentencePiece-style BPE
fixtures of tests/fixtures/tokenizers/ (Llama-2 / Mistral / Gemma / transformers-converted
pipelines: Prepend/Replace normalizers, Metaspace, byte_fallback, fuse_unk, the
Replace/ByteFallback/Fuse/Strip/Metaspace decoders; written by tools/make_spm_tokenizers.py).
For those, decode(encode(x)) is compared with HF's decode (SentencePiece pipelines do not round
trip: unk, stripped prefix space), and the Mistral v0.3 fixture's chat template is rendered by
`scbench chat-template` and tokenized, against transformers and HF.

Inputs: tests/fixtures/tokenizer/corpus.jsonl plus seeded random strings mixing the corpus'
character classes (the seed is printed; --seed replays it). Modes: default, --bos
(add_special_tokens=True), --no-special (encode_special_tokens=True). Also checks
decode(encode(x)) == x where the normalizer leaves x unchanged, and decoding of random id lists
(including ones that cut UTF-8 sequences) against HF decode.

Exit 0 pass, 77 skip (no `tokenizers`, or neither shared tokenizers nor fixtures), 1 fail."""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import unicodedata


def run(cmd, stdin=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.decode(errors="replace")))
    return p.stdout.decode("utf-8")


def random_strings(rng, corpus, n):
    """Strings that mix the character classes of the corpus in random order and amounts."""
    pools = {
        "word": ["the", "The", "THE", "hello", "World", "a", "I", "x", "naïve", "straße", "İstanbul", "ſ"],
        "digit": [str(rng.randrange(10 ** k)) for k in range(1, 12)] + ["3.14", "1,000", "٣٤", "१२", "１２", "½", "²"],
        "space": [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u00a0", "\u3000", "\u2003",
                  "\u180e", "\u200b", "\u2028", "\u0085", "\x0b", "\x0c", "\u202f", "\u1680"],
        "punct": [".", ",", "!", "?", "...", "'", "\"", "-", "--", "(", ")", "[", "]", "{", "}", "<", ">", "|",
                  "#", "$", "%", "&", "*", "+", "=", "/", "\\", "_", "`", "~", "^", "@", ";", ":", "“", "”", "«",
                  "—", "。", "，", "、", "！"],
        "contr": ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'Re", "'vE", "'ſ", "'D"],
        "cjk": ["你好", "世界", "中文", "日本語", "ひらがな", "カタカナ", "한국어", "안녕", "𠀀", "漢"],
        "other": ["مرحبا", "שלום", "Привет", "Ελληνικά", "नमस्ते", "สวัสดี", "ᠮᠣᠩᠭᠣᠯ", "Việt", "ᚠᚢᚦ", "𝐁𝐨𝐥𝐝"],
        "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "1️⃣", "❤️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🎉", "🧑🏿‍💻"],
        "comb": ["e\u0301", "\u0301", "a\u0323\u0302", "\u1100\u1161\u11a8", "\u212b", "A\u030a", "n\u0303",
                 "\u0915\u093c", "ﬁ", "Ａ", "\u0308", "\u08d0", "\u06e7", "\u1df6", "\u0316",
                 "\U00011935\U00011930", "\u0334", "\u0651\u064e"],
        "edge": ["\u0000", "\x01", "\x1b", "\x7f", "\ufeff", "\u200d", "\u202e", "\ue000", "\ufffd", "\U0010ffff",
                 "\u0080", "\u07ff", "\u0800", "\U00010000", "\u00ad"],
        # Unicode 15.0-16.0 additions (PCRE2 10.42 has Unicode 14 tables, HF's regex Unicode 16)
        "new": ["\U000105C0", "\U00010D50\U00010D70", "\U00011F02", "\U00011F50", "\U0001E4D0", "\U0001E4F0",
                "\U0002EBF0", "\U00031350", "\u1C89\u1C8A", "\U0001CCF0", "\U00011F41", "\U0001E08F",
                "\U0001CC00", "\U00016D40", "\U0001E5F1"],
        "special": ["<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|im_start|>",
                    "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|eot_id", "<|im_",
                    "<|", "|>", "<|reserved_special_token_7|>", "[MASK]", "<mask>", "Zqxsw", "Zqé",
                    "Zqe\u0301", " <mask> ", "[MASK]  ", "xZqxsw", "Zqxsw_", "Zqxsw!",
                    # SentencePiece-style fixtures: their specials, metaspace and byte-token text
                    "<s>", "</s>", "<unk>", "[INST]", "[/INST]", " [INST] ", "<s> ", "<bos>", "<start_of_turn>",
                    "\u2581", "\u2581\u2581", " \u2581", "<0x41>", "<0xE4>", "<sep>", "@@", "hello", "Zq wx", "Zq  wx"],
    }
    keys = sorted(pools)
    out = []
    def any_char():
        while True:  # any code point but surrogates, biased towards the BMP
            cp = rng.randrange(0x110000) if rng.random() < 0.3 else rng.randrange(0x30000 if rng.random() < 0.3 else 0x3000)
            if not 0xD800 <= cp < 0xE000:
                return chr(cp)

    for i in range(n):
        parts = []
        if i % 10 == 5:  # arbitrary code points (Unicode-version differences) among spaces and marks
            out.append("".join(any_char() if rng.random() < 0.7 else rng.choice([" ", "a", "1", "\n", "'s", "\u0301", "\u0316"])
                               for _ in range(rng.randint(1, 30))))
            continue
        if i % 10 == 0:  # slices of corpus strings spliced together
            for _ in range(rng.randint(1, 3)):
                s = rng.choice(corpus)
                a = rng.randint(0, len(s))
                parts.append(s[a:a + rng.randint(0, 40)])
        for _ in range(rng.randint(0, 25)):
            k = rng.choice(keys)
            parts.append(rng.choice(pools[k]) * (rng.randint(1, 4) if rng.random() < 0.2 else 1))
        out.append("".join(parts))
    return out


def spm_fixtures(fixtures):
    """(name, dir) of the SentencePiece-style fixture tokenizers."""
    root = os.path.join(fixtures, "tokenizers")
    if not os.path.isdir(root):
        return []
    return [("spm:" + n, os.path.join(root, n)) for n in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, n, "tokenizer.json"))]


def variants(shared, tmp):
    """(name, dir) of the tokenizers under test: the two real ones and variants of them."""
    if not shared or not os.path.isfile(os.path.join(shared, "tokenizers", "llama3", "tokenizer.json")):
        return []
    out = [("llama3", os.path.join(shared, "tokenizers", "llama3")),
           ("qwen3", os.path.join(shared, "tokenizers", "qwen3"))]
    with open(os.path.join(shared, "tokenizers", "llama3", "tokenizer.json"), encoding="utf-8") as f:
        llama = json.load(f)
    with open(os.path.join(shared, "tokenizers", "qwen3", "tokenizer.json"), encoding="utf-8") as f:
        qwen = json.load(f)

    def write(name, j):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False)
        out.append((name, d))

    # Llama-3.1 ships TemplateProcessing that puts <|begin_of_text|> first (inside a Sequence).
    j = dict(llama)
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    write("llama31-template", j)

    # GPT-2 style: ByteLevel with its own regex and a prefix space, no normalizer, merges as "a b".
    j = dict(qwen)
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    j["model"] = dict(qwen["model"])
    j["model"]["merges"] = [" ".join(m) for m in qwen["model"]["merges"]]
    write("gpt2-bytelevel", j)

    # Mistral (Tekken)-style regex with letter subcategories, no normalizer.
    j = dict(qwen)
    j["normalizer"] = None
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex":
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
            "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
            "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    write("mistral-regex", j)

    # Split with a String pattern and behavior Removed, and an inverted Removed regex split.
    j = dict(qwen)
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"String": "--"}, "behavior": "Removed", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\S+|\\s"}, "behavior": "Removed", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True}]}
    write("split-removed", j)

    # Added tokens with the flags HF honours, on Qwen's NFC pipeline.
    j = dict(qwen)
    added = list(qwen["added_tokens"])
    base = max(a["id"] for a in added) + 1
    for k, (content, lstrip, rstrip, single, normalized, special) in enumerate([
            ("<mask>", True, False, False, False, True),
            ("[MASK]", False, True, False, False, False),
            ("Zqxsw", False, False, True, True, False),
            ("Zqe\u0301", False, False, False, True, False)]):
        added.append({"id": base + k, "content": content, "single_word": single, "lstrip": lstrip,
                      "rstrip": rstrip, "normalized": normalized, "special": special})
        assert content not in qwen["model"]["vocab"], content  # else HF would give it the vocab id
    j["added_tokens"] = added
    write("qwen3-added-flags", j)
    return out


def cli_errors(scbench, model, tmp):
    """Bad input to the command gives the documented exit status and a message naming the problem."""
    bad_jsonl = os.path.join(tmp, "bad.jsonl")
    with open(bad_jsonl, "w") as f:
        f.write('"fine"\n"lone \\ud800 surrogate"\n')
    cases = [
        ([scbench, "tokenize", "x"], None, 2, "--model"),
        ([scbench, "tokenize", "--model", model, "--jsonl", bad_jsonl], None, 1, "bad.jsonl:2"),
        ([scbench, "tokenize", "--model", model, "--jsonl", os.path.join(tmp, "nope.jsonl")], None, 1, "nope.jsonl"),
        ([scbench, "tokenize", "--model", tmp], None, 1, "tokenizer.json"),
        ([scbench, "tokenize", "--model", model], b"ok \xff bad", 1, "UTF-8"),
        ([scbench, "tokenize", "--model", model, "--decode", "12 x"], None, 1, "token id"),
        ([scbench, "tokenize", "--help"], None, 0, "usage"),
    ]
    fails = 0
    for cmd, stdin, code, needle in cases:
        p = subprocess.run(cmd, input=stdin, capture_output=True)
        text = (p.stdout + p.stderr).decode(errors="replace")
        if p.returncode != code or needle not in text:
            print("FAIL cli %s: exit %d (want %d), output %r lacks %r" % (cmd[2:], p.returncode, code, text, needle))
            fails += 1
    print("cli error cases: %d/%d" % (len(cases) - fails, len(cases)))
    return fails


def chat_check(scbench, name, d, hf, rng, corpus, tmp):
    """The model's chat template through `scbench chat-template`, then `scbench tokenize`: the
    text equals transformers' apply_chat_template and the ids HF's encode of it (no added BOS, as
    apply_chat_template(tokenize=True) does)."""
    try:
        import transformers
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        print("%s chat template: transformers missing, not checked" % name)
        return 0
    transformers.logging.set_verbosity_error()
    with open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    ref = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), bos_token=cfg["bos_token"],
                                  eos_token=cfg["eos_token"], chat_template=cfg["chat_template"])
    fails = 0
    for k in range(8):
        msgs = []
        for r in range(rng.randint(1, 3)):
            msgs.append({"role": "user", "content": rng.choice(corpus)[:200]})
            if r < 2 or rng.random() < 0.5:
                msgs.append({"role": "assistant", "content": rng.choice(corpus)[:200]})
        if msgs[-1]["role"] == "assistant" and k % 2:
            msgs.pop()
        path = os.path.join(tmp, "chat.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(msgs, f, ensure_ascii=False)
        text = run([scbench, "chat-template", "--model", d, "--messages", path])
        want_text = ref.apply_chat_template(msgs, tokenize=False)
        got = [int(x) for x in run([scbench, "tokenize", "--model", d], stdin=text.encode("utf-8")).split()]
        want = hf.encode(want_text, add_special_tokens=False).ids
        if text != want_text or got != want:
            print("FAIL %s chat template %d: text %s, ids %s" % (name, k, text == want_text, got == want))
            fails += 1
    print("%s chat template + tokenize: %d/8" % (name, 8 - fails))
    return fails


def tokenizers_version():
    import tokenizers
    return getattr(tokenizers, "__version__", "?")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared", default=os.environ.get("SCB_SHARED_DIR"))
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--random", type=int, default=600, help="number of random strings")
    a = ap.parse_args()
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("SKIP: Python package 'tokenizers' is not installed")
        return 77
    have_shared = a.shared and os.path.isfile(os.path.join(a.shared, "tokenizers", "llama3", "tokenizer.json"))
    if not have_shared and not spm_fixtures(a.fixtures):
        print("SKIP: neither real tokenizers under --shared nor fixture tokenizers")
        return 77
    if not have_shared:
        print("note: real tokenizers not found under --shared; testing the fixture tokenizers only")
    # A fixed default seed keeps CI reproducible; pass --seed (e.g. the time) to explore more.
    seed = a.seed if a.seed is not None else 20251126
    print("seed %d (replay with --seed %d); tokenizers %s" % (seed, seed, tokenizers_version()))
    rng = random.Random(seed)

    # Not str.splitlines(): corpus strings contain U+2028 and U+0085 raw.
    with open(os.path.join(a.fixtures, "tokenizer", "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f.read().split("\n") if line]
    strings = corpus + random_strings(rng, corpus, a.random)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        inp = os.path.join(tmp, "in.jsonl")
        with open(inp, "w", encoding="utf-8") as f:
            for s in strings:
                f.write(json.dumps(s) + "\n")
        for name, d in variants(a.shared, tmp) + spm_fixtures(a.fixtures):
            hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            for mode, flags in [("default", []), ("--bos", ["--bos"]), ("--no-special", ["--no-special"]),
                                ("--bos --no-special", ["--bos", "--no-special"])]:
                hf.encode_special_tokens = "--no-special" in flags
                want = [e.ids for e in hf.encode_batch(strings, add_special_tokens="--bos" in flags)]
                got = [[int(x) for x in line.split()] for line in
                       run([a.scbench, "tokenize", "--model", d, "--jsonl", inp] + flags).split("\n")[:-1]]
                bad = [i for i in range(len(strings)) if i >= len(got) or got[i] != want[i]]
                if len(got) != len(strings):
                    print("FAIL %s %s: %d output lines for %d inputs" % (name, mode, len(got), len(strings)))
                print("%s %s: %d/%d strings identical" % (name, mode, len(strings) - len(bad), len(strings)))
                for i in bad[:5]:
                    print("  MISMATCH %r\n    hf      %s\n    scbench %s" % (strings[i], want[i], got[i] if i < len(got) else None))
                failures += len(bad)
                if mode == "default":
                    default_ids = want
            hf.encode_special_tokens = False

            # round trip where the normalizer leaves the text unchanged (not where the variant
            # strips spaces around added tokens or adds a prefix space)
            nfc = name.startswith("qwen3")
            idx = [i for i, s in enumerate(strings) if not nfc or unicodedata.normalize("NFC", s) == s]
            if name in ("gpt2-bytelevel", "qwen3-added-flags", "split-removed"):
                idx = []
            spm = name.startswith("spm:")
            if spm:  # every string; the reference is HF's decode of the same ids
                idx = list(range(len(strings)))
                expect = hf.decode_batch([default_ids[i] for i in idx], skip_special_tokens=False)
            else:
                expect = [strings[i] for i in idx]
            ids_file = os.path.join(tmp, name.replace(":", "_") + ".ids.jsonl")
            with open(ids_file, "w") as f:
                for i in idx:
                    f.write(json.dumps(default_ids[i]) + "\n")
            dec = [json.loads(line) for line in
                   run([a.scbench, "tokenize", "--model", d, "--decode", "--jsonl", ids_file]).split("\n")[:-1]]
            bad = [k for k in range(len(idx)) if k >= len(dec) or dec[k] != expect[k]]
            print("%s decode(encode(x)) == %s: %d/%d" % (name, "HF decode" if spm else "x", len(idx) - len(bad),
                                                        len(idx)))
            for k in bad[:5]:
                print("  ROUNDTRIP %r -> %r" % (strings[idx[k]], dec[k] if k < len(dec) else None))
            failures += len(bad)

            # decoding arbitrary id lists (cut UTF-8, special tokens, unknown ids) against HF
            vs = hf.get_vocab_size(with_added_tokens=True)
            lists = [[rng.randrange(vs + 5) for _ in range(rng.randint(0, 12))] for _ in range(200)]
            lists += [ids[1:] for ids in default_ids[:200] if len(ids) > 1]
            lists += [ids[:-1] for ids in default_ids[:200] if len(ids) > 1]
            with open(ids_file, "w") as f:
                for ids in lists:
                    f.write(json.dumps(ids) + "\n")
            dec = [json.loads(line) for line in
                   run([a.scbench, "tokenize", "--model", d, "--decode", "--jsonl", ids_file]).split("\n")[:-1]]
            want = hf.decode_batch(lists, skip_special_tokens=False)
            bad = [k for k in range(len(lists)) if k >= len(dec) or dec[k] != want[k]]
            print("%s decode(ids) == HF decode: %d/%d" % (name, len(lists) - len(bad), len(lists)))
            for k in bad[:5]:
                print("  DECODE %s\n    hf      %r\n    scbench %r" % (lists[k], want[k], dec[k] if k < len(dec) else None))
            failures += len(bad)

            # --count and single-text mode agree with the batch ids
            s = strings[rng.randrange(len(corpus))]
            n = int(run([a.scbench, "tokenize", "--model", d, "--count"], stdin=s.encode()).strip())
            one = [int(x) for x in run([a.scbench, "tokenize", "--model", d], stdin=s.encode()).split()]
            if n != len(default_ids[strings.index(s)]) or one != default_ids[strings.index(s)]:
                print("FAIL %s: stdin mode/--count disagree for %r" % (name, s))
                failures += 1
            back = subprocess.run([a.scbench, "tokenize", "--model", d, "--decode", " ".join(map(str, one))],
                                  capture_output=True).stdout
            if back != hf.decode(one, skip_special_tokens=False).encode("utf-8"):
                print("FAIL %s: --decode TEXT printed %r" % (name, back))
                failures += 1
            if spm and os.path.isfile(os.path.join(d, "tokenizer_config.json")) and \
                    "chat_template" in json.load(open(os.path.join(d, "tokenizer_config.json"), encoding="utf-8")):
                failures += chat_check(a.scbench, name, d, hf, rng, corpus, tmp)
        if have_shared:
            failures += cli_errors(a.scbench, os.path.join(a.shared, "tokenizers", "llama3"), tmp)
    if failures:
        print("FAIL: %d mismatches (seed %d)" % (failures, seed))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
