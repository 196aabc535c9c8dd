#!/usr/bin/env python3
"""engine_cuda.py — the CUDA engine (`--backend cuda`: bf16 weights, activations and KV cache,
fp32 accumulation) end to end, on a machine with a GPU (exit 77 without one):

1. the transformers fixtures (tests/fixtures/models, fp32 reference logits): logits of every
   position within a bf16 tolerance, max over positions of max|cuda - ref| / max|ref| <= 3e-2;
2. greedy continuations of the fixture prompts equal the CPU engine's (fp32); where they part,
   the CPU logits at that step must be a near-tie (top-1 minus top-2 margin within the
   tolerance band, 2 * 3e-2 * max|logit|); the margin is printed either way;
3. the drop-temp case (prefill A, generate into temp, drop, prefill B): logits of B against
   the fixture's A+B forward, and turn 2's ids against the CPU engine; and the same with B cut
   to its first token, so the engine's one-token path (q|k|v from one GEMM, the decode
   kernel) is checked against the fixture at a position with a cache behind it (greedy
   decoding alone would let a wrong decode step pass as a near-tie);
4. random models with head_dim 64 and 128 (the tensor-core prefill and split-K decode kernels;
   the fixtures' head dims 16/32 take the plain kernel), bf16 storage so both backends hold
   the same weights: prompt logits, follow-up prefills after drop and after commit, against
   the CPU backend of the same binary;
5. a long-context method on the CUDA backend is refused with a clear message.

Run with --scbench pointing at `scbench_cuda_emul` (tests/cuda_host_emul.c: the kernels'
semantics on the host) it checks the engine's host logic without a GPU (meson test
engine_cuda_emul, suite parity); with the real scbench it needs a GPU (suite cuda).

Why 3e-2: the CUDA engine rounds every activation to bf16 (8 significant bits, relative
rounding error <= 2^-9 ~ 2e-3) as HF does in bf16: the residual stream after each of the 2L
additions, the normed input of each projection, q/k/v after RoPE, the attention output, the
SwiGLU product (and P before P·V in the tensor-core kernels); weights stored as f32 are
rounded to bf16 once. These are ~15-20 independent O(2^-9) relative perturbations on each path
to the logits, adding roughly in quadrature (~1e-2), and the tiny random fixture models
amplify them somewhat (their logits are sums of few, large terms). Measured with a host
emulation of the kernels that rounds exactly where they round (docs/cuda.md): 1.0e-2 to
1.9e-2 on the fixtures, 0.9e-2 on the random D=64/128 models; the GPU differs from it only in
fp32 summation order (and P rounding for D 64/128). 3e-2 leaves 1.5x headroom over that, while
a one-position RoPE shift already gives 0.27-0.55 and a wrong mask, head mapping or cache
offset errors of order 1. Only the stdlib is used (no numpy)."""
import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
from array import array

TOL = 3e-2


def read_f32(path, T, V):
    a = array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    assert len(a) == T * V, f"{path}: {len(a)} floats, expected {T}x{V}"
    return [a[t * V:(t + 1) * V] for t in range(T)]


def rel_err(got, want):
    """max over positions of max|got - want| / max|want|"""
    worst = 0.0
    for g, w in zip(got, want):
        d = max(abs(x - y) for x, y in zip(g, w))
        s = max(abs(y) for y in w)
        e = d / s if s > 0 else d
        if not e == e:   # NaN
            return float("inf")
        worst = max(worst, e)
    return worst


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def forward(scb, backend, mdir, ids, out):
    p = run([scb, "forward", "--backend", backend, "--model", mdir, "--ids", ",".join(map(str, ids)),
             "--out", out])
    if p.returncode:
        raise RuntimeError(f"forward --backend {backend} {mdir}: {p.stderr.strip()}")
    T, V = map(int, p.stdout.split())
    return read_f32(out, T, V)


def generate(scb, backend, mdir, ids, max_new, extra=()):
    p = run([scb, "generate", "--backend", backend, "--model", mdir, "--ids", ",".join(map(str, ids)),
             "--max-new", str(max_new)] + list(extra))
    if p.returncode:
        raise RuntimeError(f"generate --backend {backend} {mdir}: {p.stderr.strip()}")
    return [[int(x) for x in line.split()] for line in p.stdout.rstrip("\n").split("\n")], p.stderr


def margin(scb, mdir, ids, out):
    """top-1 minus top-2 of the CPU engine's last-position logits for ids, and max|logit|"""
    row = forward(scb, "cpu", mdir, ids, out)[-1]
    s = sorted(row, reverse=True)
    return s[0] - s[1], max(abs(x) for x in row)


def compare_greedy(scb, mdir, prompt, cuda_ids, cpu_ids, out, what, fails):
    if cuda_ids == cpu_ids:
        return
    k = 0
    while k < min(len(cuda_ids), len(cpu_ids)) and cuda_ids[k] == cpu_ids[k]:
        k += 1
    mg, scale = margin(scb, mdir, prompt + cpu_ids[:k], out)
    msg = (f"{what}: cuda {cuda_ids} vs cpu {cpu_ids} part at step {k}; CPU logit margin there "
           f"{mg:.4g} ({mg / scale:.2e} of max|logit|)")
    if mg <= 2 * TOL * scale:
        print("  NOTE near-tie:", msg)
    else:
        fails.append(msg)


# ---- random models with head_dim 64 / 128 ---------------------------------------------------
def write_model(d, cfg, seed):
    """Llama model with random weights stored as BF16 (so both backends use identical weights)."""
    rng = random.Random(seed)
    dm, ff, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = {"model.embed_tokens.weight": (V, dm), "model.norm.weight": (dm,), "lm_head.weight": (V, dm)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        shapes[p + "input_layernorm.weight"] = (dm,)
        shapes[p + "post_attention_layernorm.weight"] = (dm,)
        for n, o, i in (("q", H * D, dm), ("k", Hkv * D, dm), ("v", Hkv * D, dm), ("o", dm, H * D)):
            shapes[p + f"self_attn.{n}_proj.weight"] = (o, i)
        for n, o, i in (("gate", ff, dm), ("up", ff, dm), ("down", dm, ff)):
            shapes[p + f"mlp.{n}_proj.weight"] = (o, i)
    header, blobs, off = {}, [], 0
    for name in sorted(shapes):
        shp = shapes[name]
        n = 1
        for s in shp:
            n *= s
        if name.endswith("norm.weight"):
            vals = [1.0 + 0.1 * rng.gauss(0, 1) for _ in range(n)]
        elif "embed" in name or "lm_head" in name:
            vals = [rng.gauss(0, 1) for _ in range(n)]
        else:
            sd = 1.0 / shp[1] ** 0.5
            vals = [rng.gauss(0, sd) for _ in range(n)]
        f = array("f", vals)
        if sys.byteorder != "little":
            f.byteswap()
        raw = f.tobytes()
        bits = bytearray(2 * n)                 # bf16 = upper half of each float32, truncated
        bits[0::2] = raw[2::4]
        bits[1::2] = raw[3::4]
        header[name] = {"dtype": "BF16", "shape": list(shp), "data_offsets": [off, off + 2 * n]}
        blobs.append(bytes(bits))
        off += 2 * n
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)


def random_cfg(D, H, Hkv):
    return {"architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 384,
            "num_attention_heads": H, "num_key_value_heads": Hkv, "head_dim": D, "num_hidden_layers": 2,
            "vocab_size": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
            "hidden_act": "silu", "eos_token_id": None, "bos_token_id": 1, "tie_word_embeddings": False}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scbench", default=os.environ.get("SCBENCH"))
    ap.add_argument("--shared")
    ap.add_argument("--fixtures", default=os.environ.get("SCB_FIXTURES_DIR"))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SCB_SEED", "20261126")))
    a = ap.parse_args()
    scb = a.scbench
    root = os.path.join(a.fixtures or "", "models")
    man = json.load(open(os.path.join(root, "manifest.json")))
    fails = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "logits.f32")
        m0 = os.path.join(root, man["models"][0]["name"])
        # an unknown backend is a usage error (exit 2) naming the value, on every command
        for cmd in (["forward", "--model", m0, "--ids", "1", "--out", out], ["generate", "--model", m0, "--ids", "1"],
                    ["run", "--model", m0], ["bench", "--model", m0]):
            p = run([scb, cmd[0], "--backend", "tpu"] + cmd[1:])
            if p.returncode != 2 or "tpu" not in p.stderr:
                fails.append(f"{cmd[0]} --backend tpu: exit {p.returncode}, stderr {p.stderr.strip()!r}")
        p = run([scb, "forward", "--backend", "cuda", "--model", m0, "--ids", "1", "--out", out])
        if p.returncode:
            if "no CUDA device" in p.stderr or "built without CUDA" in p.stderr:
                print(f"skip: the CUDA backend is not usable here: {p.stderr.strip()}")
                for f in fails:
                    print("FAIL", f)
                return 1 if fails else 77
            print(f"FAIL: scbench --backend cuda does not start: exit {p.returncode}: {p.stderr.strip()}")
            return 1
        print(f"seed {a.seed}; tolerance {TOL} (max over positions of max|cuda-ref|/max|ref|)")

        # 1-3: fixtures
        for m in man["models"]:
            mdir = os.path.join(root, m["name"])
            worst = 0.0
            try:
                for case in m["cases"]:
                    ids = case["ids"]
                    want = read_f32(os.path.join(mdir, case["logits"]), *case["shape"])
                    e = rel_err(forward(scb, "cuda", mdir, ids, out), want)
                    worst = max(worst, e)
                    if not e <= TOL:
                        fails.append(f"{m['name']} {case['name']}: rel err {e:.3e} > {TOL}")
                    if "greedy" in case:
                        g_cuda = generate(scb, "cuda", mdir, ids, case["max_new"])[0][0]
                        g_cpu = generate(scb, "cpu", mdir, ids, case["max_new"])[0][0]
                        compare_greedy(scb, mdir, ids, g_cuda, g_cpu, out, f"{m['name']} {case['name']} greedy",
                                       fails)
                for dt in m.get("drop_temp", []):
                    tl = os.path.join(tmp, "then.f32")
                    extra = ["--then-ids", ",".join(map(str, dt["b"])), "--then-logits", tl]
                    g_cuda = generate(scb, "cuda", mdir, dt["a"], dt["k"], extra)[0]
                    V = m["cases"][0]["shape"][1]
                    ab = read_f32(os.path.join(mdir, dt["logits_ab"]), len(dt["a"]) + len(dt["b"]), V)
                    e = rel_err(read_f32(tl, len(dt["b"]), V), ab[len(dt["a"]):])
                    worst = max(worst, e)
                    if not e <= TOL:
                        fails.append(f"{m['name']} drop temp: logits of B after A+temp+drop: rel err {e:.3e}")
                    extra1 = ["--then-ids", str(dt["b"][0]), "--then-logits", tl]
                    generate(scb, "cuda", mdir, dt["a"], dt["k"], extra1)
                    e = rel_err(read_f32(tl, 1, V), ab[len(dt["a"]):len(dt["a"]) + 1])
                    worst = max(worst, e)
                    if not e <= TOL:
                        fails.append(f"{m['name']} drop temp: logits of B's first token alone (one-token path): "
                                     f"rel err {e:.3e}")
                    g_cpu = generate(scb, "cpu", mdir, dt["a"], dt["k"], extra)[0]
                    compare_greedy(scb, mdir, dt["a"], g_cuda[0], g_cpu[0], out, f"{m['name']} drop temp turn 1",
                                   fails)
                    compare_greedy(scb, mdir, dt["a"] + dt["b"], g_cuda[1], g_cpu[1], out,
                                   f"{m['name']} drop temp turn 2", fails)
            except RuntimeError as ex:
                fails.append(f"{m['name']}: {ex}")
            print(f"  {m['name']:24s} max rel err vs transformers fp32 {worst:.2e}")

        # 4: random models, tensor-core attention kernels, against the CPU backend
        rng = random.Random(a.seed)
        for D, H, Hkv in ((64, 8, 2), (128, 4, 1)):
            mdir = os.path.join(tmp, f"rand_d{D}")
            write_model(mdir, random_cfg(D, H, Hkv), a.seed + D)
            prompt = [rng.randrange(512) for _ in range(150)]
            b_ids = [rng.randrange(512) for _ in range(70)]
            c_ids = [rng.randrange(512) for _ in range(5)]
            worst = 0.0
            try:
                e = rel_err(forward(scb, "cuda", mdir, prompt, out), forward(scb, "cpu", mdir, prompt, out))
                worst = max(worst, e)
                if not e <= TOL:
                    fails.append(f"rand D={D}: prompt logits rel err {e:.3e} > {TOL}")
                for then, flag in ((b_ids, []), (c_ids, []), (b_ids, ["--commit"])):
                    tl = os.path.join(tmp, "then.f32")
                    extra = ["--then-ids", ",".join(map(str, then)), "--then-logits", tl] + flag
                    generate(scb, "cuda", mdir, prompt, 8, extra)
                    got = read_f32(tl, len(then), 512)
                    generate(scb, "cpu", mdir, prompt, 8, extra)
                    e = rel_err(got, read_f32(tl, len(then), 512))
                    worst = max(worst, e)
                    if not e <= TOL:
                        fails.append(f"rand D={D}: follow-up prefill of {len(then)} tokens {flag}: rel err {e:.3e}")
            except RuntimeError as ex:
                fails.append(f"rand D={D}: {ex}")
            print(f"  rand D={D:<3d} H={H} Hkv={Hkv}      max rel err vs CPU engine {worst:.2e}")

        # 5: decode steps as CUDA graphs (opt-in): the same tokens as without, and the bench counts them
        mdir = os.path.join(tmp, "rand_d64")
        prompt = [rng.randrange(512) for _ in range(40)]
        try:
            off = generate(scb, "cuda", mdir, prompt, 24)[0]
            # 1: recorded once and replayed (step values from device memory); rerecord: every step.
            # Both head dims of the decode kernel, a StreamingLLM cache (compacted after the
            # prefill: the replayed step reads the shorter per-layer lengths from the device), and
            # KIVI's store (its step hooks: the attention over the store inside the graph, the
            # generated tokens read in full precision from the cache's temp segment), and the
            # costs lines equal
            for model, method, new in (("rand_d64", None, 24), ("rand_d128", None, 24),
                                       ("rand_d64", "streamingllm:n_init=4,n_local=12", 24), ("rand_d128", "kivi", 24),
                                       ("rand_d128", "kivi:bits=4,requant=true", 40),
                                       ("rand_d128", "quest:budget=16,page=4", 24)):
                md = os.path.join(tmp, model)
                extra = ["--method", method] if method else []
                ref = subprocess.run([scb, "generate", "--backend", "cuda", "--model", md, "--ids",
                                      ",".join(map(str, prompt)), "--max-new", str(new)] + extra, capture_output=True,
                                     text=True, env=dict(os.environ, SCB_CUDA_GRAPHS="0"))
                for mode in ("1", "rerecord"):
                    env = dict(os.environ, SCB_CUDA_GRAPHS=mode)
                    p = subprocess.run([scb, "generate", "--backend", "cuda", "--model", md, "--ids",
                                        ",".join(map(str, prompt)), "--max-new", str(new)] + extra, capture_output=True,
                                       text=True, env=env)
                    def costs(err):
                        return [x for x in err.split("\n") if " costs:" in x]
                    if ref.returncode or p.returncode or p.stdout != ref.stdout or costs(p.stderr) != costs(ref.stderr):
                        fails.append(f"CUDA graphs ({mode}, {model}, {method}): output {p.stdout.strip()!r} (exit "
                                     f"{p.returncode}) with graphs, {ref.stdout.strip()!r} (exit {ref.returncode}) "
                                     f"without ({p.stderr.strip()} {ref.stderr.strip()})")
            p = subprocess.run([scb, "generate", "--backend", "cuda", "--model", mdir, "--ids", "1,2"],
                               capture_output=True, text=True, env=dict(os.environ, SCB_CUDA_GRAPHS="yes"))
            if p.returncode == 0 or "SCB_CUDA_GRAPHS='yes'" not in p.stderr:
                fails.append(f"SCB_CUDA_GRAPHS=yes: expected an error naming it, got exit {p.returncode} {p.stderr.strip()!r}")
            for val, want in (("1", "decode graph 12 of 12 steps"), ("rerecord", "decode graph 12 of 12 steps"),
                              ("0", "decode graph 0 of 12 steps"), (None, "decode graph 12 of 12 steps")):
                env = dict(os.environ)
                env.pop("SCB_CUDA_GRAPHS", None)          # None: the default (replayed graphs)
                if val is not None:
                    env["SCB_CUDA_GRAPHS"] = val
                p = subprocess.run([scb, "bench", "cuda", "--model", mdir, "--tokens", "64", "--decode", "12"],
                                   capture_output=True, text=True, env=env)
                line = [x for x in p.stdout.split("\n") if x.startswith("decode graph")]
                if p.returncode or not line or not line[0].startswith(want):
                    fails.append(f"bench cuda SCB_CUDA_GRAPHS={val}: expected '{want}', got exit {p.returncode} "
                                 f"{line} {p.stderr.strip()}")
            # the methods' steps are graphs: a policy without a decode (dense over what it kept),
            # KIVI and Quest through their step hooks (KIVI: D 128, 2 and 4 bits, kernel v4; Quest:
            # after its first decode step, which sets up its page metadata as plain launches)
            for method, want in (("streamingllm:n_init=4,n_local=12", 12), ("kivi", 12), ("kivi:bits=4,requant=true", 12),
                                 ("quest:budget=16,page=4", 11), ("quest", 11)):
                p = subprocess.run([scb, "bench", "cuda", "--model", os.path.join(tmp, "rand_d128"), "--tokens", "50",
                                    "--decode", "12", "--method", method], capture_output=True, text=True)
                line = [x for x in p.stdout.split("\n") if x.startswith("decode graph")]
                if p.returncode or not line or not line[0].startswith(f"decode graph {want} of 12 steps"):
                    fails.append(f"bench cuda --method {method}: expected 'decode graph {want} of 12 steps', got exit "
                                 f"{p.returncode} {line} {p.stderr.strip()}")
            print(f"  CUDA graphs: {len(off[0])} greedy tokens identical with SCB_CUDA_GRAPHS=1 and =rerecord "
                  f"(D=64, D=128, StreamingLLM, KIVI 2 and 4 bits, Quest); method steps counted as graphs")
        except RuntimeError as ex:
            fails.append(f"CUDA graphs: {ex}")

        # 6: a method without a device implementation is refused on the CUDA backend
        p = run([scb, "generate", "--backend", "cuda", "--model", m0, "--ids", "1,2,3", "--method", "cacheblend"])
        if p.returncode == 0 or "method cacheblend is not available on the CUDA backend yet" not in p.stderr:
            fails.append(f"--method cacheblend on cuda: exit {p.returncode}, stderr {p.stderr.strip()!r}")
    for f in fails:
        print("FAIL", f)
    if not fails:
        print("engine_cuda: all passed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
