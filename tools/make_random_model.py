#!/usr/bin/env python3
"""make_random_model.py — write a Llama- or Qwen3-architecture model with random bf16 weights
(config.json + model.safetensors) for timing the engine where no real checkpoint is at hand (the
GPU check machine has no network). Weights: N(0, 1/in_features) for projections, N(0, 1) for the
embedding and LM head, 1 + 0.1 N(0, 1) for the norms (Qwen3's q_norm/k_norm too); seeded. Uses
torch when present (fast), else numpy. The shapes default to Llama-3-8B's (--arch llama) or
Qwen3-8B's (--arch qwen3: ff 12288, vocab 151936, rope_theta 1e6) with fewer layers.

  python3 tools/make_random_model.py --out DIR [--arch llama|qwen3] [--layers 4] [--hidden 4096]
      [--ff 14336] [--heads 32] [--kv-heads 8] [--head-dim 128] [--vocab 128256] [--seed 1]"""
import argparse
import ctypes
import json
import os
import struct
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", choices=("llama", "qwen3"), default="llama")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ff", type=int)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    qwen3 = a.arch == "qwen3"
    if a.ff is None:
        a.ff = 12288 if qwen3 else 14336
    if a.vocab is None:
        a.vocab = 151936 if qwen3 else 128256
    d, ff, H, Hkv, D, V = a.hidden, a.ff, a.heads, a.kv_heads, a.head_dim, a.vocab
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,), "lm_head.weight": (V, d)}
    for l in range(a.layers):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
        for n, o, i in (("q", H * D, d), ("k", Hkv * D, d), ("v", Hkv * D, d), ("o", d, H * D),
                        ("gate", ff, d), ("up", ff, d), ("down", d, ff)):
            shapes[p + ("mlp." if n in ("gate", "up", "down") else "self_attn.") + f"{n}_proj.weight"] = (o, i)
        if qwen3:
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
    try:
        import torch
        g = torch.Generator().manual_seed(a.seed)

        def blob(shp, kind):
            t = torch.randn(shp, generator=g)
            t = 1.0 + 0.1 * t if kind == "norm" else (t if kind == "embed" else t / shp[1] ** 0.5)
            t = t.to(torch.bfloat16).contiguous()
            return ctypes.string_at(t.data_ptr(), t.numel() * 2)
    except ImportError:
        import numpy as np
        rng = np.random.default_rng(a.seed)

        def blob(shp, kind):
            t = rng.standard_normal(shp, dtype=np.float32)
            t = 1.0 + 0.1 * t if kind == "norm" else (t if kind == "embed" else t / np.sqrt(shp[1]))
            u = t.astype("<f4").view("<u4")
            return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    header, off = {}, 0
    names = sorted(shapes)
    for n in names:
        cnt = 1
        for s in shapes[n]:
            cnt *= s
        header[n] = {"dtype": "BF16", "shape": list(shapes[n]), "data_offsets": [off, off + 2 * cnt]}
        off += 2 * cnt
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for n in names:
            kind = "norm" if n.endswith("norm.weight") else ("embed" if "embed" in n or "lm_head" in n else "proj")
            f.write(blob(shapes[n], kind))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d, "intermediate_size": ff,
           "num_attention_heads": H, "num_key_value_heads": Hkv, "head_dim": D, "num_hidden_layers": a.layers,
           "vocab_size": V, "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 131072,
           "hidden_act": "silu", "eos_token_id": None, "bos_token_id": 1, "tie_word_embeddings": False}
    if qwen3:
        cfg.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "rms_norm_eps": 1e-6,
                    "rope_theta": 1000000.0, "max_position_embeddings": 40960, "attention_bias": False,
                    "use_sliding_window": False, "sliding_window": None, "max_window_layers": a.layers})
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(f"{a.out}: {off / 2 ** 30:.2f} GiB of bf16 weights, {a.layers} layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
