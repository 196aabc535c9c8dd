#!/usr/bin/env python3
"""make_fixtures.py — reference fixtures of the engine from PyTorch + transformers.

Run once on a machine with torch 2.x and transformers 5.x (CPU is enough):
    python3 tools/make_fixtures.py [--out tests/fixtures/models] [--seed 1234] [--only NAME,...]
--only writes just the named models (their directories and manifest entries, replaced or
appended in the order below) and leaves every other fixture and rope_reference.json as they
are; the random inputs of each model are the same as in a full run (the generator advances
over the models skipped), so a model regenerated alone matches the full run's inputs.

Writes small random-weight models (hidden 64, 2-3 layers, vocab 384, fp32 unless stated),
each with save_pretrained (safetensors), under OUT/<name>/:
  llama_gqa         Llama, 4 query heads, 2 KV heads, explicit head_dim 32
  llama31           Llama 3.1 rope_scaling llama3 (factor 8, original_max_position_embeddings 64)
  llama_bias_linear Llama with attention_bias, mlp_bias and rope_scaling linear (factor 2)
  qwen2_tied        Qwen2 with q/k/v bias and tied embeddings
  qwen2_yarn        Qwen2 with rope_scaling yarn (factor 4, original 64)
  mistral           Mistral (sliding_window null)
  llama_gqa_bf16    llama_gqa's weights stored in bf16 (reference computed from the bf16 values)
  llama_sharded     Llama saved in several shards (model.safetensors.index.json)
  qwen3_gqa         Qwen3 (q_norm/k_norm), 4 query heads, 2 KV heads, head_dim 32 != hidden/heads
  qwen3_tied_bias   Qwen3 with attention_bias (q/k/v/o biases), tied embeddings, 1 KV head,
                    rope_scaling yarn (factor 4, original 64)
and for each: logits of every position of a few id sequences (1, 17 and 220 tokens; 220
passes the scaling boundary) as float32 little-endian T×V files, greedy continuations from
model.generate(do_sample=False, max_new_tokens=N) with an eos id taken from the model's own
free continuation (so stopping is exercised; the eos is in generation_config.json), and a
drop-temp case (A, k generated tokens dropped, then B: greedy on A+B). OUT/manifest.json
lists everything; tests/py/engine_fixtures.py reads it. OUT/rope_reference.json holds
LlamaRotaryEmbedding's inv_freq, attention scaling and cos/sin (head_dim 128, real-model RoPE
settings, positions up to 131071) for tests/test_rope.c.

Deterministic: seeded torch/numpy generators, fp32, CPU, eager attention.
"""
import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

COMMON = dict(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
              num_hidden_layers=2, vocab_size=384, rms_norm_eps=1e-5, max_position_embeddings=1024,
              bos_token_id=1, eos_token_id=None, pad_token_id=0)


def specs():
    return [
        ("llama_gqa", LlamaConfig, LlamaForCausalLM, dict(head_dim=32, rope_theta=10000.0), {}),
        ("llama31", LlamaConfig, LlamaForCausalLM,
         dict(num_hidden_layers=3, rope_theta=10000.0,
              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), {}),
        ("llama_bias_linear", LlamaConfig, LlamaForCausalLM,
         dict(attention_bias=True, mlp_bias=True, rope_theta=500.0,
              rope_scaling={"rope_type": "linear", "factor": 2.0}), {}),
        ("qwen2_tied", Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=True, rope_theta=1000000.0), {}),
        ("qwen2_yarn", Qwen2Config, Qwen2ForCausalLM,
         dict(num_key_value_heads=1, rope_theta=10000.0, max_position_embeddings=256,
              rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}), {}),
        ("mistral", MistralConfig, MistralForCausalLM, dict(sliding_window=None, rope_theta=10000.0), {}),
        ("llama_gqa_bf16", LlamaConfig, LlamaForCausalLM, dict(head_dim=32, rope_theta=10000.0), {"bf16": True}),
        ("llama_sharded", LlamaConfig, LlamaForCausalLM, dict(rope_theta=10000.0), {"shard": "60KB"}),
        ("qwen3_gqa", Qwen3Config, Qwen3ForCausalLM, dict(head_dim=32, rope_theta=1000000.0), {}),
        ("qwen3_tied_bias", Qwen3Config, Qwen3ForCausalLM,
         dict(num_key_value_heads=1, head_dim=16, attention_bias=True, tie_word_embeddings=True,
              rope_theta=10000.0, max_position_embeddings=256,
              rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}), {}),
    ]


def make_config(cls, extra):
    kw = dict(COMMON)
    kw.update(extra)
    rs = kw.pop("rope_scaling", None)
    theta = kw.pop("rope_theta")
    try:   # transformers 5: rope_parameters
        rp = {"rope_type": "default", "rope_theta": theta}
        if rs:
            rp.update(rs)
        cfg = cls(rope_parameters=rp, **kw)
    except TypeError:
        cfg = cls(rope_theta=theta, rope_scaling=rs, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def init_weights(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)


def save(model, d, shard=None):
    kw = {"max_shard_size": shard} if shard else {}
    try:
        model.save_pretrained(d, safe_serialization=True, **kw)
    except TypeError:
        model.save_pretrained(d, **kw)


def load(mcls, d):
    try:
        m = mcls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = mcls.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    return m.float().eval()


@torch.no_grad()
def logits_of(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float().cpu().numpy().astype("<f4")


@torch.no_grad()
def greedy(model, ids, n, eos):
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = 0
    out = model.generate(torch.tensor([ids], dtype=torch.long), do_sample=False, max_new_tokens=n,
                         eos_token_id=eos, pad_token_id=0,
                         attention_mask=torch.ones(1, len(ids), dtype=torch.long))
    g = out[0, len(ids):].tolist()
    stops = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
    for i, t in enumerate(g):
        if t in stops:
            return g[:i]
    return g


ROPE_CASES = {
    "default_1e4": {"rope_theta": 10000.0, "rope_type": "default"},
    "default_5e5": {"rope_theta": 500000.0, "rope_type": "default"},
    "llama31": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    "llama31_small": {"rope_theta": 10000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    "linear": {"rope_theta": 10000.0, "rope_type": "linear", "factor": 2.0},
    "yarn_qwen": {"rope_theta": 1000000.0, "rope_type": "yarn", "factor": 4.0,
                  "original_max_position_embeddings": 32768},
    "yarn_mscale": {"rope_theta": 10000.0, "rope_type": "yarn", "factor": 40.0,
                    "original_max_position_embeddings": 4096, "mscale": 1.0, "mscale_all_dim": 0.707,
                    "beta_fast": 32, "beta_slow": 1},
}


@torch.no_grad()
def rope_reference(path):
    """inv_freq, attention scaling and cos/sin (first half) of LlamaRotaryEmbedding."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    pos = [0, 1, 63, 64, 8191, 8192, 32768, 100000, 131071]
    o = {"torch": torch.__version__, "cases": {}}
    for k, rp in ROPE_CASES.items():
        c = LlamaConfig(hidden_size=4096, num_attention_heads=32, max_position_embeddings=163840,
                        rope_parameters=dict(rp))
        r = LlamaRotaryEmbedding(c)
        cos, sin = r(torch.zeros(1, 1, dtype=torch.float32), torch.tensor([pos]))
        o["cases"][k] = {"rope_parameters": rp, "head_dim": 128, "max_position_embeddings": 163840,
                         "inv_freq": [float(v) for v in r.inv_freq], "attention_scaling": float(r.attention_scaling),
                         "positions": pos, "cos": cos[0, :, :64].tolist(), "sin": sin[0, :, :64].tolist()}
    with open(path, "w") as f:
        json.dump(o, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "models"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--only", help="comma-separated model names: write only these, keep the rest")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print(f"seed {a.seed}  torch {torch.__version__}  transformers {transformers.__version__}")
    names = [sp[0] for sp in specs()]
    only = set(a.only.split(",")) if a.only else None
    if only and not only <= set(names):
        ap.error(f"--only: unknown model(s) {sorted(only - set(names))} (known: {', '.join(names)})")
    mpath = os.path.join(a.out, "manifest.json")
    if only:
        with open(mpath) as f:
            manifest = json.load(f)
        if manifest["seed"] != a.seed:
            ap.error(f"--only: {mpath} was written with seed {manifest['seed']}, not {a.seed}")
    else:
        if os.path.isdir(a.out):
            shutil.rmtree(a.out)
        os.makedirs(a.out)
        manifest = {"seed": a.seed, "torch": torch.__version__, "transformers": transformers.__version__,
                    "rel_tol": 1e-4, "models": []}
    rng = np.random.default_rng(a.seed)
    for i, (name, ccls, mcls, extra, flags) in enumerate(specs()):
        if only and name not in only:
            # advance the input generator exactly as a full run does (the draws below; a scalar
            # draw takes the same as a draw of size 1)
            for n in (1, 17, 220, 40, 12):
                rng.integers(2, COMMON["vocab_size"], n)
            continue
        torch.manual_seed(a.seed + i)
        gen = torch.Generator().manual_seed(a.seed + i)
        cfg = make_config(ccls, extra)
        model = mcls(cfg).float().eval()
        init_weights(model, gen)
        if flags.get("bf16"):
            model = model.to(torch.bfloat16)
        d = os.path.join(a.out, name)
        V = cfg.vocab_size
        assert V == COMMON["vocab_size"]
        if os.path.isdir(d):
            shutil.rmtree(d)
        save(model, d, flags.get("shard"))
        # the reference is the saved model loaded back in fp32, as a user would load it (bf16
        # weights widen exactly; buffers such as RoPE inv_freq are recomputed in fp32)
        ref = load(mcls, d)
        seqs = [("len1", [int(rng.integers(2, V))]), ("len17", [int(x) for x in rng.integers(2, V, 17)]),
                ("len220", [int(x) for x in rng.integers(2, V, 220)])]
        # eos from the free greedy continuation of len17 (4th token unless it occurred earlier)
        free = greedy(ref, seqs[1][1], 12, None)
        eos = [free[3]] if len(free) > 3 and free[3] not in free[:3] else [V - 1]
        ref.generation_config.eos_token_id = eos
        ref.generation_config.pad_token_id = 0
        ref.generation_config.bos_token_id = 1
        ref.generation_config.save_pretrained(d)
        entry = {"name": name, "arch": cfg.architectures[0] if cfg.architectures else mcls.__name__,
                 "eos": eos, "cases": [], "drop_temp": []}
        if only:
            entry["torch"], entry["transformers"] = torch.__version__, transformers.__version__
        for cname, ids in seqs:
            lg = logits_of(ref, ids)
            fn = f"logits_{cname}.f32"
            lg.tofile(os.path.join(d, fn))
            case = {"name": cname, "ids": ids, "logits": fn, "shape": list(lg.shape)}
            if cname != "len1":
                case["max_new"] = 10
                case["greedy"] = greedy(ref, ids, 10, eos)
            entry["cases"].append(case)
        A = [int(x) for x in rng.integers(2, V, 40)]
        B = [int(x) for x in rng.integers(2, V, 12)]
        lg = logits_of(ref, A + B)
        lg.tofile(os.path.join(d, "logits_ab.f32"))
        entry["cases"].append({"name": "ab", "ids": A + B, "logits": "logits_ab.f32", "shape": list(lg.shape)})
        entry["drop_temp"].append({"a": A, "b": B, "k": 5, "logits_ab": "logits_ab.f32",
                                   "greedy_after_ab": greedy(ref, A + B, 5, eos)})
        old = [k for k, e in enumerate(manifest["models"]) if e["name"] == name]
        if old:
            manifest["models"][old[0]] = entry
        else:
            pos = [k for k, e in enumerate(manifest["models"]) if e["name"] in names[:i]]
            manifest["models"].insert(pos[-1] + 1 if pos else 0, entry)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print(f"  {name:20s} {entry['arch']:20s} eos {eos}  {size / 1024:.0f} KiB  greedy {entry['cases'][1]['greedy']}")
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1)
    if not only:
        rope_reference(os.path.join(a.out, "rope_reference.json"))


if __name__ == "__main__":
    main()
