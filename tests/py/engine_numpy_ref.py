#!/usr/bin/env python3
"""engine_numpy_ref.py — parity of the engine (`scbench forward` / `scbench generate`) with an
independent NumPy implementation of the Llama / Qwen2 / Qwen3 / Mistral forward pass.

Random small models (seeded; the seed is printed) are written as Hugging Face model
directories (config.json + safetensors via the `safetensors` package; bf16 and sharded
variants written by hand) for each architecture and RoPE variant. The reference computes in
float64 following transformers' modeling_llama / qwen2 / qwen3 / mistral and modeling_rope_utils
(Qwen3: RMSNorm of each q and k head before RoPE, head_dim 128 when config.json has none,
attention_bias = q/k/v/o biases).

Checks, per model:
  * logits of every position: rel err = max|engine - ref| / max|ref| over each position's
    row (V logits), must be <= 1e-4 for every position (sequences of 1, 9 and 200 tokens; the
    long one passes the rope-scaling boundary original_max_position_embeddings = 64);
  * forward is bit-identical with --threads 1 and --threads 2;
  * greedy generation equals the reference's greedy continuation, with a stop id taken from
    the reference's own continuation (stop token not emitted);
  * drop temp (`--then-ids`): prefill A, generate into temp, drop, prefill B, generate ==
    reference greedy on A+B; commit (`--commit`): == reference greedy on A + generated + B;
  * Mistral with a sliding window shorter than the sequence fails with a clear error, and so
    does Qwen3 with use_sliding_window and a layer past max_window_layers; Qwen3 with a window
    but every layer below max_window_layers runs (no layer slides).
A near-tie (reference top-2 gap below 1e-4 of the logit scale) at the first differing greedy
step is reported, not failed.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

REL_TOL = 1e-4


# ---------------------------------------------------------------- reference implementation
def head_dim(cfg):
    """config head_dim; absent: 128 for Qwen3 (Qwen3Config's default), else hidden / heads"""
    if cfg.get("head_dim"):
        return cfg["head_dim"]
    return 128 if cfg["architectures"][0] == "Qwen3ForCausalLM" else cfg["hidden_size"] // cfg["num_attention_heads"]


def biases(cfg):
    """(q/k/v bias, o bias, mlp bias) of the architecture"""
    arch = cfg["architectures"][0]
    ab = cfg.get("attention_bias", False) and arch in ("LlamaForCausalLM", "Qwen3ForCausalLM")
    return ab or arch == "Qwen2ForCausalLM", ab, cfg.get("mlp_bias", False) and arch == "LlamaForCausalLM"


def rope_inv_freq(cfg):
    """inverse frequencies and attention scaling, transformers' formulas (float64)."""
    D = head_dim(cfg)
    rp = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    rtype = rp.get("rope_type", rp.get("type", "default"))
    pos_freqs = theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
    inv = 1.0 / pos_freqs
    scale = 1.0
    if rtype == "linear":
        inv = inv / rp["factor"]
    elif rtype == "llama3":
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        low_wl, high_wl = old / lo, old / hi
        wl = 2 * np.pi / inv
        il = np.where(wl > low_wl, inv / factor, inv)
        sf = (old / wl - lo) / (hi - lo)
        sm = (1 - sf) * il / factor + sf * il
        med = ~(wl < high_wl) & ~(wl > low_wl)
        inv = np.where(med, sm, il)
    elif rtype == "yarn":
        import math
        factor = rp["factor"]
        omp = rp["original_max_position_embeddings"]
        scale = rp.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
        bf, bs = rp.get("beta_fast") or 32, rp.get("beta_slow") or 1

        def corr(r):
            return (D * math.log(omp / (r * 2 * math.pi))) / (2 * math.log(theta))
        low, high = max(math.floor(corr(bf)), 0), min(math.ceil(corr(bs)), D - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(D // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        ef = 1 - ramp
        inv = (1.0 / (factor * pos_freqs)) * (1 - ef) + (1.0 / pos_freqs) * ef
    elif rtype != "default":
        raise ValueError(rtype)
    return inv, scale


def rmsnorm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def rope(x, cos, sin):  # x (T, H, D), cos/sin (T, D/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def ref_forward(cfg, W, ids):
    """logits (T, V) in float64 for the full sequence ids (no cache)."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = head_dim(cfg)
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = len(ids)
    inv, ascale = rope_inv_freq(cfg)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang) * ascale, np.sin(ang) * ascale
    x = W["model.embed_tokens.weight"][np.array(ids)]
    mask = np.tril(np.ones((T, T), dtype=bool))

    def lin(h, name, bias):
        y = h @ W[name + ".weight"].T
        if bias:
            y = y + W[name + ".bias"]
        return y
    qkvb, ab, mb = biases(cfg)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj", qkvb).reshape(T, H, D)
        k = lin(h, p + "self_attn.k_proj", qkvb).reshape(T, Hkv, D)
        v = lin(h, p + "self_attn.v_proj", qkvb).reshape(T, Hkv, D)
        if p + "self_attn.q_norm.weight" in W:     # Qwen3: per-head RMSNorm before RoPE
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        g = H // Hkv
        out = np.zeros((T, H, D))
        for hh in range(H):
            s = (q[:, hh, :] @ k[:, hh // g, :].T) / np.sqrt(D)
            s = np.where(mask, s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s = s / s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, hh // g, :]
        x = x + lin(out.reshape(T, H * D), p + "self_attn.o_proj", ab)
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        gt = lin(h, p + "mlp.gate_proj", mb)
        up = lin(h, p + "mlp.up_proj", mb)
        x = x + lin(gt / (1 + np.exp(-gt)) * up, p + "mlp.down_proj", mb)
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def ref_greedy(cfg, W, ids, n, stop=()):
    """greedy continuation; returns (generated ids, top-2 gaps per step)."""
    seq, out, gaps = list(ids), [], []
    for _ in range(n):
        lg = ref_forward(cfg, W, seq)[-1]
        top = np.sort(lg)[-2:]
        gaps.append((top[1] - top[0]) / max(np.abs(lg).max(), 1e-30))
        t = int(np.argmax(lg))
        if t in stop:
            break
        out.append(t)
        seq.append(t)
    return out, gaps


# ---------------------------------------------------------------- random models
def bf16_round(a):
    """round float32 to bfloat16 (nearest-even), returning (uint16 bits, float64 values)."""
    b = a.astype(np.float32).view(np.uint32)
    r = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return r, (r.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def write_st(path, tensors):
    """hand-written safetensors writer: tensors name -> (dtype str, shape, bytes)."""
    hdr, off, blobs = {}, 0, []
    for name, (dt, shape, data) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        off += len(data)
        blobs.append(data)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_model(dirpath, cfg, rng, storage="f32", shards=1):
    """random weights for cfg; returns the float64 weights the engine should see."""
    from safetensors.numpy import save_file
    os.makedirs(dirpath, exist_ok=True)
    d, H, ff, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = head_dim(cfg)
    qkvb, ab, mb = biases(cfg)
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    if not cfg.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (V, d)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
        for n, o, i in (("q", H * D, d), ("k", Hkv * D, d), ("v", Hkv * D, d), ("o", d, H * D)):
            shapes[p + f"self_attn.{n}_proj.weight"] = (o, i)
            if (n != "o" and qkvb) or (n == "o" and ab):
                shapes[p + f"self_attn.{n}_proj.bias"] = (o,)
        if cfg["architectures"][0] == "Qwen3ForCausalLM":
            shapes[p + "self_attn.q_norm.weight"] = (D,)
            shapes[p + "self_attn.k_norm.weight"] = (D,)
        for n, o, i in (("gate", ff, d), ("up", ff, d), ("down", d, ff)):
            shapes[p + f"mlp.{n}_proj.weight"] = (o, i)
            if mb:
                shapes[p + f"mlp.{n}_proj.bias"] = (o,)
    W = {}
    for name, shp in shapes.items():
        if name.endswith("norm.weight"):
            a = 1.0 + 0.1 * rng.standard_normal(shp)
        elif name.endswith(".bias"):
            a = 0.1 * rng.standard_normal(shp)
        elif "embed" in name or "lm_head" in name:
            a = rng.standard_normal(shp)
        else:
            a = rng.standard_normal(shp) / np.sqrt(shp[1])
        W[name] = a.astype(np.float32)
    names = sorted(W)
    if storage == "f32":
        groups = [names[i::shards] for i in range(shards)]
        if shards == 1:
            save_file({n: W[n] for n in names}, os.path.join(dirpath, "model.safetensors"))
        else:
            wm = {}
            for si, g in enumerate(groups):
                fn = f"model-{si + 1:05d}-of-{shards:05d}.safetensors"
                save_file({n: W[n] for n in g}, os.path.join(dirpath, fn))
                wm.update({n: fn for n in g})
            with open(os.path.join(dirpath, "model.safetensors.index.json"), "w") as f:
                json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)
        ref = {n: W[n].astype(np.float64) for n in names}
    elif storage == "bf16":
        ts, ref = {}, {}
        for n in names:
            bits, vals = bf16_round(W[n])
            ts[n] = ("BF16", W[n].shape, bits.astype("<u2").tobytes())
            ref[n] = vals
        write_st(os.path.join(dirpath, "model.safetensors"), ts)
    elif storage == "f16":
        ts, ref = {}, {}
        for n in names:
            h = W[n].astype(np.float16)
            ts[n] = ("F16", W[n].shape, h.astype("<f2").tobytes())
            ref[n] = h.astype(np.float64)
        write_st(os.path.join(dirpath, "model.safetensors"), ts)
    with open(os.path.join(dirpath, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return ref


def base_cfg(arch, **kw):
    c = {"architectures": [arch], "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
         "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 320, "rms_norm_eps": 1e-5,
         "max_position_embeddings": 4096, "hidden_act": "silu", "eos_token_id": None,
         "bos_token_id": 1, "tie_word_embeddings": False}
    c.update(kw)
    return c


MODELS = [
    # name, config, storage, shards
    ("llama_gqa", base_cfg("LlamaForCausalLM", head_dim=32, rope_theta=10000.0, rope_scaling=None), "f32", 1),
    ("llama31", base_cfg("LlamaForCausalLM", num_hidden_layers=3, rope_parameters={
        "rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}), "f32", 1),
    ("llama_bias_linear", base_cfg("LlamaForCausalLM", attention_bias=True, mlp_bias=True, rope_theta=500.0,
                                   rope_scaling={"type": "linear", "factor": 2.0}), "f32", 1),
    ("qwen2_tied_yarn", base_cfg("Qwen2ForCausalLM", tie_word_embeddings=True, num_key_value_heads=1,
                                 rope_theta=10000.0, use_sliding_window=False, sliding_window=None,
                                 rope_scaling={"type": "yarn", "factor": 4.0,
                                               "original_max_position_embeddings": 64}), "f32", 1),
    ("mistral", base_cfg("MistralForCausalLM", rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         sliding_window=None), "f32", 1),
    ("llama_gqa_bf16", base_cfg("LlamaForCausalLM", head_dim=32, rope_theta=10000.0), "bf16", 1),
    ("llama_sharded", base_cfg("LlamaForCausalLM", rope_theta=10000.0), "f32", 3),
    ("qwen2_f16", base_cfg("Qwen2ForCausalLM", rope_theta=1000000.0), "f16", 1),
    ("qwen3_gqa_bias", base_cfg("Qwen3ForCausalLM", head_dim=32, attention_bias=True, rope_theta=1000000.0,
                                use_sliding_window=False, sliding_window=None, max_window_layers=28,
                                layer_types=["full_attention", "full_attention"]), "f32", 1),
    # no head_dim in config.json: Qwen3's default 128 (not hidden / heads = 16); yarn; bf16
    ("qwen3_d128_yarn_bf16", base_cfg("Qwen3ForCausalLM", tie_word_embeddings=True, num_key_value_heads=1,
                                      rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                                       "original_max_position_embeddings": 64}), "bf16", 1),
]


def run(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr}")
    return p


def engine_forward(scb, mdir, ids, out, threads=None):
    cmd = [scb, "forward", "--model", mdir, "--ids", ",".join(map(str, ids)), "--out", out]
    if threads:
        cmd += ["--threads", str(threads)]
    p = run(cmd)
    T, V = map(int, p.stdout.split())
    raw = open(out, "rb").read()
    return np.frombuffer(raw, dtype="<f4").reshape(T, V), raw


def rel_err(a, b):
    """max over positions t of max_v |a[t,v] - b[t,v]| / max_v |b[t,v]|"""
    return float(max(np.abs(a[t].astype(np.float64) - b[t]).max() / np.abs(b[t]).max() for t in range(len(b))))


def greedy_ok(name, what, got, want, gaps, fails):
    if got == want:
        return
    k = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
    if k < len(gaps) and gaps[k] < 1e-4:
        print(f"  {name} {what}: near-tie at step {k} (gap {gaps[k]:.2e}), not counted")
        return
    fails.append(f"{name} {what}: engine {got} != reference {want}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures")
    ap.add_argument("--seed", type=int, default=20261126)
    a = ap.parse_args()
    seed = a.seed
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.bin")
        for name, cfg, storage, shards in MODELS:
            mdir = os.path.join(tmp, name)
            W = make_model(mdir, cfg, rng, storage, shards)
            V = cfg["vocab_size"]
            seqs = [[int(rng.integers(V))], [int(x) for x in rng.integers(0, V, 9)],
                    [int(x) for x in rng.integers(0, V, 200)]]
            worst = 0.0
            for ids in seqs:
                got, raw = engine_forward(a.scbench, mdir, ids, out)
                want = ref_forward(cfg, W, ids)
                e = rel_err(got, want)
                worst = max(worst, e)
                if not e <= REL_TOL:
                    fails.append(f"{name}: logits of {len(ids)} tokens: rel err {e:.3e} > {REL_TOL}")
            for ids in (seqs[0], seqs[2]):   # one token (matrix-vector path) and a 200-token chunk
                _, raw1 = engine_forward(a.scbench, mdir, ids, out, threads=1)
                _, raw2 = engine_forward(a.scbench, mdir, ids, out, threads=2)
                if raw1 != raw2:
                    fails.append(f"{name}: forward of {len(ids)} tokens differs between --threads 1 and 2")
            # greedy with a stop id taken from the reference continuation
            A = seqs[1]
            ref_free, gaps = ref_greedy(cfg, W, A, 10)
            stop = ref_free[4] if ref_free[4] not in ref_free[:4] else None
            want = ref_free[:4] if stop is not None else ref_free
            with open(os.path.join(mdir, "generation_config.json"), "w") as f:
                json.dump({"eos_token_id": [stop] if stop is not None else []}, f)
            p = run([a.scbench, "generate", "--model", mdir, "--ids", ",".join(map(str, A)), "--max-new", "10"])
            got = [int(x) for x in p.stdout.split()]
            greedy_ok(name, "greedy", got, want, gaps, fails)
            # drop temp / commit: A, generate 5 (no stop), then B
            os.remove(os.path.join(mdir, "generation_config.json"))
            B = [int(x) for x in rng.integers(0, V, 6)]
            ids_a, ids_b = ",".join(map(str, A)), ",".join(map(str, B))
            p = run([a.scbench, "generate", "--model", mdir, "--ids", ids_a, "--max-new", "5", "--then-ids", ids_b])
            l1, l2 = p.stdout.strip().split("\n")
            g1, g2 = [int(x) for x in l1.split()], [int(x) for x in l2.split()]
            greedy_ok(name, "turn 1", g1, ref_free[:5], gaps, fails)
            want2, gaps2 = ref_greedy(cfg, W, A + B, 5)
            greedy_ok(name, "drop temp turn 2", g2, want2, gaps2, fails)
            p = run([a.scbench, "generate", "--model", mdir, "--ids", ids_a, "--max-new", "5", "--then-ids", ids_b,
                     "--commit"])
            g3 = [int(x) for x in p.stdout.strip().split("\n")[1].split()]
            want3, gaps3 = ref_greedy(cfg, W, A + g1 + B, 5)
            greedy_ok(name, "commit turn 2", g3, want3, gaps3, fails)
            print(f"  {name:20s} {storage:4s} shards={shards} max rel err {worst:.2e}  greedy {got}")
        # sliding window shorter than the sequence: a clear error, not wrong numbers
        cfg = base_cfg("MistralForCausalLM", sliding_window=16, rope_theta=10000.0)
        mdir = os.path.join(tmp, "mistral_sw")
        make_model(mdir, cfg, rng)
        p = run([a.scbench, "forward", "--model", mdir, "--ids", ",".join(["5"] * 20), "--out", out], check=False)
        if p.returncode == 0 or "sliding_window" not in p.stderr:
            fails.append(f"mistral sliding window 16 < 20 tokens: expected an error, got rc={p.returncode} "
                         f"stderr={p.stderr!r}")
        p = run([a.scbench, "forward", "--model", mdir, "--ids", ",".join(["5"] * 16), "--out", out], check=False)
        if p.returncode != 0:
            fails.append(f"mistral sliding window 16 = 16 tokens should run: {p.stderr}")
        # Qwen3: the window applies to layers >= max_window_layers (with use_sliding_window)
        for mwl, layer_types, slides in ((1, None, True), (2, None, False),
                                         (2, ["full_attention", "sliding_attention"], True)):
            cfg = base_cfg("Qwen3ForCausalLM", head_dim=16, use_sliding_window=True, sliding_window=16,
                           max_window_layers=mwl, rope_theta=10000.0)
            if layer_types:
                cfg["layer_types"] = layer_types
            mdir = os.path.join(tmp, f"qwen3_sw{mwl}")
            W = make_model(mdir, cfg, rng)
            ids = [int(x) for x in rng.integers(0, cfg["vocab_size"], 20)]
            p = run([a.scbench, "forward", "--model", mdir, "--ids", ",".join(map(str, ids)), "--out", out],
                    check=False)
            what = f"qwen3 sliding_window 16, max_window_layers {mwl}, layer_types {layer_types}, 20 tokens"
            if slides and (p.returncode == 0 or "sliding_window" not in p.stderr):
                fails.append(f"{what}: expected an error, got rc={p.returncode} stderr={p.stderr!r}")
            if not slides:
                if p.returncode != 0:
                    fails.append(f"{what}: no layer slides, should run: {p.stderr}")
                else:
                    got, _ = engine_forward(a.scbench, mdir, ids, out)
                    e = rel_err(got, ref_forward(cfg, W, ids))
                    if not e <= REL_TOL:
                        fails.append(f"{what}: rel err {e:.3e}")
    for f in fails:
        print("FAIL", f)
    print("ok" if not fails else f"{len(fails)} failures (seed {seed})")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
