#!/usr/bin/env python3
"""make_builtin_tokenizer.py — the built-in model's tokenizer (datasets/builtin/).

Trains a small byte-level BPE with the HF `tokenizers` library on SCBench-format synthetic
text (files written by `scbench data synth`, one per task, given on the command line) and
writes `tokenizer.json`, `tokenizer_config.json` (with a Llama-3-style Jinja chat template)
and `special_tokens_map.json` into the output directory.

Design (docs/builtin-model.md):
  * pre-tokenizer = Llama-3's: a Split on Llama-3's regex, except that numbers are split into
    single digits (\\p{N} instead of \\p{N}{1,3}), then ByteLevel without its own regex; so UUIDs,
    pass keys and Math.Find numbers are tokenised one digit at a time, the same wherever they
    occur;
  * special tokens <|begin_of_text|> <|end_of_text|> <|start_header_id|> <|end_header_id|>
    <|eot_id|> get ids 0..4;
  * post-processor TemplateProcessing "<|begin_of_text|> $A": encode() adds a BOS, and the chat
    template adds one too, so SCBench's first prompt carries a double BOS as with Llama-3;
  * chat template = Llama-3-Instruct's (without the date header), rendered the same by
    scbench's Jinja interpreter and by transformers.

The BPE trainer is deterministic for a given corpus; the corpus is balanced by taking the
same number of characters from each task file.

usage: make_builtin_tokenizer.py --out DIR [--vocab 1024] [--chars-per-task 120000] FILE.jsonl...
"""
import argparse
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>"]

# Llama-3's pre-tokenizer regex with single digits.
SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# Fixed prompt wording the model meets in every session (SCBench's templates, spec §4).
TEMPLATE_TEXT = [
    "Extract the value corresponding to the specified key in the JSON object below.",
    "The value associated with the specified key is: ",
    "Prefix: ; Suffix: . The word with both prefix and suffix from the dict is? ",
    "Question: Find all variables that are assigned the value in the text above. Answer: According to "
    "the chain(s) of variable assignment in the text above, 3 variables are assigned the value , they are: ",
    "You should answer with only one number, no other words. The largest number of the list is: ",
    "What is the smallest number of the list? What is the median of the list? second largest number",
    "There is important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there. What is the pass key of the ?",
    "user assistant system",
]


def corpus(files, chars_per_task):
    out = []
    for path in files:
        n = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                ctx = rec.get("context", "")
                if not isinstance(ctx, str):
                    ctx = str(ctx)
                parts = [ctx[: max(0, chars_per_task - n)]]
                for t in rec.get("multi_turns", []):
                    parts.append(t["input"])
                    a = t["answer"]
                    parts.append(" ".join(map(str, a)) if isinstance(a, list) else str(a))
                for p in parts:
                    out.append(p)
                    n += len(p)
                if n >= chars_per_task:
                    break
    for _ in range(50):
        out.extend(TEMPLATE_TEXT)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--chars-per-task", type=int, default=120000)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()

    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=a.vocab, min_frequency=2, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus(a.files, a.chars_per_task), trainer=trainer)
    bos = tok.token_to_id(SPECIALS[0])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{SPECIALS[0]} $A", pair=f"{SPECIALS[0]} $A {SPECIALS[0]} $B",
        special_tokens=[(SPECIALS[0], bos)])
    os.makedirs(a.out, exist_ok=True)
    tok.save(os.path.join(a.out, "tokenizer.json"))

    added = {str(tok.token_to_id(s)): {"content": s, "lstrip": False, "normalized": False,
                                        "rstrip": False, "single_word": False, "special": True}
             for s in SPECIALS}
    cfg = {
        "added_tokens_decoder": added,
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|end_of_text|>",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(a.out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(a.out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                   "pad_token": "<|end_of_text|>"}, f, indent=2)
        f.write("\n")
    print(f"vocab {tok.get_vocab_size()} -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
