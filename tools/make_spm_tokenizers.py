#!/usr/bin/env python3
"""make_spm_tokenizers.py — writes the SentencePiece-style BPE tokenizer fixtures of
tests/fixtures/tokenizers/ (small, deterministic; rerun to regenerate, the output is byte-identical).

A tiny SentencePiece BPE model (byte_fallback, <unk>=0 <s>=1 </s>=2, two user-defined pieces) is
trained with the `sentencepiece` package on tests/fixtures/tokenizer/corpus.jsonl with one thread
and converted to tokenizer.json by transformers' SpmConverter.build_tokenizer_from_spm_proto (the
conversion transformers 5 applies to a bare SentencePiece model). The other directories reuse its
vocab and merges with the pipelines the Hub's converted tokenizer.json files carry:

  spm-converted    transformers 5 conversion: Replace(Regex) normalizers for SentencePiece's
                   extra-whitespace removal and dummy prefix, Metaspace(always, split=false) +
                   Split of the user-defined pieces, ignore_merges, Replace/ByteFallback/Fuse/Strip
  spm-converted-nonlegacy  the same with legacy=False: Metaspace prepend_scheme first after a
                   normalizer that deletes leading spaces (HF then prepends nothing)
  llama2           Llama-2 / Yi / Mistral v0.1 (legacy): Sequence[Prepend("▁"), Replace(" ", "▁")],
                   no pre-tokenizer, decoder Sequence[Replace("▁", " "), ByteFallback, Fuse,
                   Strip(" ", 1, 0)], TemplateProcessing "<s> $A"
  mistral-v03      Mistral v0.3 (legacy=false): no normalizer, Metaspace(prepend_scheme first,
                   split=false), added control tokens [INST] [/INST], the official v0.3 chat template
  metaspace-legacy older conversions: Metaspace pre-tokenizer and decoder with add_prefix_space
                   (split=true, prepend always), no byte_fallback, fuse_unk
  gemma-style      Gemma: Replace(" ", "▁"), Split(" ", MergedWithPrevious), decoder
                   Sequence[Replace, ByteFallback, Fuse], <bos>-style template, normalized added token
  partial-bytes    llama2 with fuse_unk false and the byte tokens <0xE0>..<0xEF> renamed, so
                   characters needing them fall back to <unk>
  decoders-misc    Metaspace(prepend_scheme never, split=true), ignore_merges, decoder chain
                   ByteFallback, Metaspace(never), Replace(Regex), Strip(start 2) per token
  split-behaviors  Replace normalizers (a Regex one) + Metaspace(first, split=true) followed by Split
                   steps with MergedWithPrevious / MergedWithNext / Contiguous / inverted Removed

Needs: sentencepiece, protobuf, transformers, tokenizers (tools/requirements-test.txt)."""
import argparse
import json
import os
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def train_spm(corpus, tmp):
    import sentencepiece as spm
    text = os.path.join(tmp, "train.txt")
    lines = [line for s in corpus for line in s.split("\n") if line.strip()]
    # ASCII lines weigh 40 times: the rarer characters stay out of the vocab (byte fallback)
    lines += [line for line in lines if line.isascii()] * 40
    with open(text, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    prefix = os.path.join(tmp, "spm")
    spm.SentencePieceTrainer.train(
        input=text, model_prefix=prefix, model_type="bpe", vocab_size=900, byte_fallback=True,
        character_coverage=0.98, normalization_rule_name="identity", num_threads=1,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=["<sep>", "@@"],
        split_digits=True, allow_whitespace_only_pieces=True, minloglevel=2)
    return prefix + ".model"


def convert(model_file, legacy):
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf
    pb = import_protobuf()
    proto = pb.ModelProto()
    with open(model_file, "rb") as f:
        proto.ParseFromString(f.read())
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    tok = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=legacy)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")])
    return json.loads(tok.to_str())


def template_post(bos, bos_id):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}}}


LLAMA_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}


def added(content, id_, special=True, normalized=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


def variants(base, nonlegacy, mistral_template):
    model = base["model"]
    n = len(model["vocab"])
    specials = [added("<unk>", 0), added("<s>", 1), added("</s>", 2)]
    llama_cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                 "unk_token": "<unk>", "legacy": True, "model_max_length": 4096,
                 "tokenizer_class": "LlamaTokenizer"}
    out = {}

    j = dict(base)
    j["post_processor"] = template_post("<s>", 1)
    out["spm-converted"] = (j, llama_cfg)
    j = dict(nonlegacy)
    j["post_processor"] = template_post("<s>", 1)
    out["spm-converted-nonlegacy"] = (j, dict(llama_cfg, legacy=False))

    def spm_like(**kw):
        j = dict(base)
        j["model"] = dict(model, ignore_merges=False)
        j["added_tokens"] = list(specials)
        j["post_processor"] = template_post("<s>", 1)
        j["decoder"] = LLAMA_DECODER
        j.update(kw)
        return j

    out["llama2"] = (spm_like(
        normalizer={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                        {"type": "Replace", "pattern": {"String": " "},
                                                         "content": "▁"}]},
        pre_tokenizer=None), llama_cfg)

    cfg = dict(llama_cfg, legacy=False, chat_template=mistral_template)
    out["mistral-v03"] = (spm_like(
        normalizer=None,
        pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
        added_tokens=specials + [added("[INST]", n), added("[/INST]", n + 1)]), cfg)

    j = spm_like(
        normalizer=None,
        pre_tokenizer={"type": "Metaspace", "replacement": "▁", "add_prefix_space": True},
        decoder={"type": "Metaspace", "replacement": "▁", "add_prefix_space": True})
    j["model"] = dict(j["model"], byte_fallback=False, fuse_unk=True)
    out["metaspace-legacy"] = (j, llama_cfg)

    gemma_added = [added("<pad>", n), added("<bos>", n + 1), added("<eos>", n + 2),
                   added("<start_of_turn>", n + 3), added("<end_of_turn>", n + 4),
                   added("Zq wx", n + 5, special=False, normalized=True)]
    j = spm_like(
        normalizer={"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
        pre_tokenizer={"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                       "invert": False},
        decoder={"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        added_tokens=specials + gemma_added,
        post_processor=template_post("<bos>", n + 1))
    out["gemma-style"] = (j, {"add_bos_token": True, "bos_token": "<bos>", "eos_token": "<eos>",
                              "pad_token": "<pad>", "unk_token": "<unk>"})

    j = spm_like(normalizer=out["llama2"][0]["normalizer"], pre_tokenizer=None)
    vocab = {}
    for tok, i in model["vocab"].items():
        if tok.startswith("<0xE") and len(tok) == 6:
            tok = "<byte_" + tok[3:5].lower() + ">"
        vocab[tok] = i
    j["model"] = dict(j["model"], vocab=vocab, fuse_unk=False)
    out["partial-bytes"] = (j, llama_cfg)

    out["split-behaviors"] = (spm_like(
        normalizer={"type": "Sequence", "normalizers": [
            {"type": "Replace", "pattern": {"Regex": "[\\t ]{2,}"}, "content": " "},
            {"type": "NFC"},
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
            {"type": "Split", "pattern": {"Regex": "[.,!?。]"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"String": "'"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{N}"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[^\\n]+"}, "behavior": "Removed", "invert": True}]},
        added_tokens=specials + [added("hello", n, special=False, normalized=True)]), llama_cfg)
    j = spm_like(
        normalizer=None,
        pre_tokenizer={"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
        decoder={"type": "Sequence", "decoders": [
            {"type": "ByteFallback"},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never", "split": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}|\\n"}, "content": "_"},
            {"type": "Strip", "content": "_", "start": 2, "stop": 0}]})
    j["model"] = dict(j["model"], ignore_merges=True)
    out["decoders-misc"] = (j, llama_cfg)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "tokenizers"))
    a = ap.parse_args()
    with open(os.path.join(ROOT, "tests", "fixtures", "tokenizer", "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f.read().split("\n") if line]
    with open(os.path.join(ROOT, "tests", "fixtures", "templates", "mistral-7b-instruct-v0.3.jinja"),
              encoding="utf-8") as f:
        mistral_template = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        model = train_spm(corpus, tmp)
        base, nonlegacy = convert(model, True), convert(model, False)
    from tokenizers import Tokenizer
    for name, (j, cfg) in variants(base, nonlegacy, mistral_template).items():
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        text = json.dumps(j, ensure_ascii=False, indent=1, sort_keys=False) + "\n"
        Tokenizer.from_str(text)  # HF must load what we write
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(text)
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(cfg, ensure_ascii=False, indent=1) + "\n")
        print("wrote %s (%d bytes)" % (d, len(text.encode())))


if __name__ == "__main__":
    main()
