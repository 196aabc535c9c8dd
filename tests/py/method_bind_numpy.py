#!/usr/bin/env python3
"""method_bind_numpy.py — methods through the engine against an independent NumPy (float64)
reference written from the specs (spec/scbench.md §6-7, spec/methods.md), on the committed
transformers fixtures llama_gqa (G = 2), qwen2_yarn (G = 4, one KV head) and qwen3_gqa (G = 2,
head_dim 32, q/k RMSNorm per head before RoPE: the methods see the normalised, rotated q and k).

For each method, `scbench generate --ids A --max-new 0 --then-ids B --then-logits F --method SPEC`
runs a first prefill A (N tokens) and a follow-up prefill B; F holds B's logits. The reference is
one float64 forward of A+B with a per-(layer, head) attention mask that says what each row sees
under SCBench's lifecycle:
  * rows of A (the first prefill): the prefill pattern (dense, A-shape, Tri-shape);
  * rows of B (a follow-up chunk): the KV policy on the cache the first prefill left:
    StreamingLLM keeps [0, n_init) + [N - n_local, N); SnapKV scores the prefix with the last
    `window` queries of A (softmax over causal keys, column sums, zero-padded avg pool), keeps the
    top budget - window per QUERY head (gqa=true: per KV head from the group's mean) + the window;
    PyramidKV with the per-layer budgets of spec §7.4; Quest selects pages per row from the chunk's
    summed query signs; RetrievalAttention (fed one token at a time) sees sinks + recent + the
    exact top-k of the index. B's own tokens are always visible (causally).
Max relative error per row (max|engine - ref| / max|ref|) must be <= 1e-4. Seeded (seed printed;
SCB_TEST_SEED overrides). Exits 77 when numpy/safetensors or the fixtures are missing."""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from safetensors.numpy import load_file
except ImportError:
    print("skip: numpy / safetensors missing")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_numpy_ref import rmsnorm, rope, rope_inv_freq  # noqa: E402

REL_TOL = 1e-4


def forward_masked(cfg, W, ids, mask_fn):
    """logits (T, V) of ids in float64; mask_fn(layer, q (T,H,D), k (T,Hkv,D)) -> (H, T, T) bool."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or d // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    arch = cfg["architectures"][0]
    T = len(ids)
    inv, ascale = rope_inv_freq(cfg)
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
    cos, sin = np.cos(ang) * ascale, np.sin(ang) * ascale
    x = W["model.embed_tokens.weight"][np.array(ids)]
    ob = cfg.get("attention_bias", False) and arch in ("LlamaForCausalLM", "Qwen3ForCausalLM")
    qkvb = ob or arch == "Qwen2ForCausalLM"

    def lin(h, name, bias):
        y = h @ W[name + ".weight"].T
        return y + W[name + ".bias"] if bias else y
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = lin(h, p + "self_attn.q_proj", qkvb).reshape(T, H, D)
        k = lin(h, p + "self_attn.k_proj", qkvb).reshape(T, Hkv, D)
        if arch == "Qwen3ForCausalLM":     # per-head RMSNorm before RoPE
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        v = lin(h, p + "self_attn.v_proj", qkvb).reshape(T, Hkv, D)
        mask = mask_fn(l, q, k)
        g = H // Hkv
        out = np.zeros((T, H, D))
        for hh in range(H):
            s = (q[:, hh, :] @ k[:, hh // g, :].T) / np.sqrt(D)
            s = np.where(mask[hh], s, -np.inf)
            s = np.exp(s - s.max(axis=1, keepdims=True))
            out[:, hh, :] = (s / s.sum(axis=1, keepdims=True)) @ v[:, hh // g, :]
        x = x + lin(out.reshape(T, H * D), p + "self_attn.o_proj", ob)
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        gt, up = lin(h, p + "mlp.gate_proj", False), lin(h, p + "mlp.up_proj", False)
        x = x + lin(gt / (1 + np.exp(-gt)) * up, p + "mlp.down_proj", False)
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


# ------------------------------------------------------------------ masks, from the specs
def causal(T):
    return np.tril(np.ones((T, T), dtype=bool))


def ashape_rows(M, rows, n_init, n_local):
    """restrict rows (absolute positions) to the A-shape pattern: j <= p, p - j < n_local or j < n_init."""
    for p in rows:
        j = np.arange(M.shape[-1])
        M[..., p, :] &= (j <= p) & ((p - j < n_local) | (j < n_init))


def snapkv_keep(q, k, N, H, G, C, Wn, kernel, gqa, n_select):
    """kept prefix positions per list (Hq lists, or Hkv with gqa), spec/methods.md §5.1."""
    D = q.shape[-1]
    if n_select is None:
        return None
    P = N - Wn
    scores = []
    for h in range(H):
        s = q[N - Wn:N, h, :] @ k[:N, h // G, :].T / np.sqrt(D)       # (W, N)
        s = np.where(np.arange(N)[None, :] <= np.arange(N - Wn, N)[:, None], s, -np.inf)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        s = s / s.sum(axis=1, keepdims=True)
        scores.append(s[:, :P].sum(axis=0))
    scores = np.array(scores)
    if gqa:
        scores = scores.reshape(H // G, G, P).mean(axis=1)
    r = kernel // 2
    padded = np.pad(scores, ((0, 0), (r, r)))
    pooled = np.stack([padded[:, j:j + P] for j in range(kernel)]).sum(axis=0) / kernel
    keep = []
    for row in pooled:
        order = sorted(range(P), key=lambda j: (-row[j], j))[:n_select]
        keep.append(sorted(order) + list(range(P, N)))
    return keep


def pyramid_select(N, C, Wn, beta, L, l):
    if N < C:
        return None
    if N < 2 * (C - Wn):
        return C - Wn
    mn = (C - Wn) // beta
    mx = 2 * (C - Wn) - mn
    if mx >= N - Wn:
        mx = N - Wn
        mn = 2 * (C - Wn) - mx
    return mx - l * ((mx - mn) // (L - 1))


def make_mask_fn(spec, N, T, H, Hkv, L):
    G = H // Hkv
    name, _, opts = spec.partition(":")
    o = dict(kv.split("=") for kv in opts.split(",")) if opts else {}

    def fn(l, q, k):
        M = np.repeat(causal(T)[None], H, axis=0)
        if name == "a_shape":
            ashape_rows(M, range(N), int(o["n_init"]), int(o["n_local"]))
        elif name == "tri_shape":
            n_last = min(int(o["n_last"]), N - 1)
            ashape_rows(M, range(N - n_last), int(o["n_init"]), int(o["n_local"]))
        elif name == "streamingllm":
            ni, nl = int(o["n_init"]), int(o["n_local"])
            if N >= ni + nl:
                M[:, N:, ni:N - nl] = False
        elif name in ("snapkv", "pyramidkv"):
            C, Wn = int(o["budget"]), int(o["window"])
            gqa = o.get("gqa") == "true"
            if name == "snapkv":
                ns = None if N < C else C - Wn
            else:
                ns = pyramid_select(N, C, Wn, 20, L, l)
            if ns is not None and ns < N - Wn:
                keep = snapkv_keep(q, k, N, H, G, C, Wn, 5, gqa, ns)
                for h in range(H):
                    kept = np.zeros(N, dtype=bool)
                    kept[keep[h // G if gqa else h]] = True
                    M[h, N:, :N] &= kept[None, :]
        elif name == "quest":
            P, B = int(o["page"]), int(o["budget"])
            nq = T - N
            kp = min(max(3, min(T, B) // P), -(-T // P))
            for h in range(H):
                w = np.where(q[N:, h, :] > 0, 1.0, -1.0).sum(axis=0)     # summed signs of the chunk
                kk = k[:, h // G, :] * w[None, :]
                np_ = -(-T // P)
                mx = np.stack([kk[p * P:(p + 1) * P].max(axis=0) for p in range(np_)])   # (np, D)
                for i in range(nq):
                    ub = mx @ (q[N + i, h, :] * w)
                    sel = sorted(range(np_), key=lambda p: (-ub[p], p))[:kp]
                    allowed = np.zeros(T, dtype=bool)
                    for p in sel:
                        allowed[p * P:(p + 1) * P] = True
                    M[h, N + i, :] &= allowed
        elif name == "retr_attn":
            top_k, ns_, nr = int(o["top_k"]), int(o["n_sink"]), int(o["n_recent"])
            for h in range(H):
                for i in range(T - N):
                    g = N + i + 1                                   # global keys this token sees
                    if g < ns_ + nr:
                        continue
                    allowed = np.zeros(T, dtype=bool)
                    allowed[:ns_] = True
                    allowed[g - nr:g] = True
                    lo, hi = ns_, g - nr
                    ip = k[lo:hi, h // G, :] @ q[N + i, h, :]
                    top = sorted(range(hi - lo), key=lambda t: (-ip[t], t))[:top_k]
                    allowed[[lo + t for t in top]] = True
                    M[h, N + i, :] &= allowed
        elif name != "dense":
            raise ValueError(spec)
        return M
    return fn


SPECS = [
    "dense",
    "a_shape:n_init=4,n_local=16",
    "tri_shape:n_init=4,n_local=16,n_last=8",
    "streamingllm:n_init=4,n_local=28",
    "snapkv:budget=40,window=8",
    "snapkv:budget=40,window=8,gqa=true",
    "pyramidkv:budget=40,window=8",
    "pyramidkv:budget=40,window=8,gqa=true",
    "quest:budget=32,page=8",
    "retr_attn:top_k=8,n_sink=4,n_recent=8",
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    a = ap.parse_args()
    seed = int(os.environ.get("SCB_TEST_SEED", "8675309"))
    print(f"# seed {seed} (set SCB_TEST_SEED to change)")
    rng = random.Random(seed)
    root = os.path.join(a.fixtures or "", "models")
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("llama_gqa", "qwen2_yarn", "qwen3_gqa"):
            mdir = os.path.join(root, model)
            if not os.path.exists(os.path.join(mdir, "model.safetensors")):
                print(f"skip: fixture {mdir} missing")
                return 77
            cfg = json.load(open(os.path.join(mdir, "config.json")))
            W = {n: t.astype(np.float64) for n, t in load_file(os.path.join(mdir, "model.safetensors")).items()}
            V, L = cfg["vocab_size"], cfg["num_hidden_layers"]
            H = cfg["num_attention_heads"]
            Hkv = cfg.get("num_key_value_heads", H)
            N, nB = 90, 7
            A = [rng.randrange(1, V) for _ in range(N)]
            B = [rng.randrange(1, V) for _ in range(nB)]
            out = os.path.join(tmp, "b.f32")
            for spec in SPECS:
                cmd = [a.scbench, "generate", "--model", mdir, "--ids", ",".join(map(str, A)), "--max-new", "0",
                       "--then-ids", ",".join(map(str, B)), "--then-logits", out, "--method", spec, "--threads", "1"]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if p.returncode != 0:
                    fails.append(f"{model} {spec}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
                    continue
                got = np.fromfile(out, dtype="<f4").reshape(nB, V).astype(np.float64)
                ref = forward_masked(cfg, W, A + B, make_mask_fn(spec, N, N + nB, H, Hkv, L))[N:]
                dense = forward_masked(cfg, W, A + B, make_mask_fn("dense", N, N + nB, H, Hkv, L))[N:]
                err = max(np.abs(got[i] - ref[i]).max() / np.abs(ref[i]).max() for i in range(nB))
                moved = max(np.abs(dense[i] - ref[i]).max() / np.abs(ref[i]).max() for i in range(nB))
                print(f"# {model} {spec}: follow-up logits vs NumPy reference: max rel err {err:.2e} "
                      f"(the method moves them {moved:.2e} from dense)")
                if not err <= REL_TOL:
                    fails.append(f"{model} {spec}: rel err {err:.3e} > {REL_TOL}")
                if spec != "dense" and not moved > 100 * REL_TOL:
                    fails.append(f"{model} {spec}: the reference barely differs from dense ({moved:.2e}); "
                                 "the case does not exercise the method")
    if fails:
        print("\n".join("FAIL " + f for f in fails))
        return 1
    print(f"ok: {len(SPECS)} methods x 3 models match the NumPy reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
