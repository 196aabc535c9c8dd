#!/usr/bin/env python3
"""train_builtin.py — trains scbench's built-in model (datasets/builtin/) on a GPU.

A small Llama-architecture decoder (GQA, RoPE, SwiGLU, RMSNorm; the parameter names of
transformers' LlamaForCausalLM) learns SCBench's synthetic tasks from data written by
tools/make_builtin_data.py (sessions of `scbench data synth` turned into exact prompts by
`scbench prompts`, both shared-context modes, 350-8K tokens). The loss is the answers' (each
gold answer and its <|eot_id|>) plus --ctx-loss times the next-token loss on the prompts.

Batches are rows of --row tokens holding whole sessions back to back. The attention mask
(flex_attention) keeps sessions apart and gives multi-request sessions their semantics: a
request sees the shared context and itself, never another request, and its positions
continue from the context's length, as in scbench's KV cache. A curriculum (--curriculum
850:0.25,3000:0.5) trains on sessions of at most 850 synth tokens for the first quarter of the
steps, at most 3000 until half, then on all: without the short stage the retrieval heads never
formed (docs/builtin-model.md). --init and --task-weights continue training a model.

Deterministic given --seed up to GPU reduction order (data order, packing and
initialisation are seeded; the attention kernels' backward passes use atomics).
At the end it
  * rounds the weights to bf16 and evaluates held-out sessions (--eval FILE.npz): a turn is
    correct when every answer token is the argmax under the gold prefix, which is exactly
    when greedy decoding reproduces the gold answer;
  * saves an HF model directory (--out): config.json, generation_config.json,
    model.safetensors (bf16), the tokenizer files from --tokenizer-dir;
  * checks that transformers' LlamaForCausalLM loaded from --out gives the same logits;
  * writes --out/training_log.json: arguments, data hashes, steps, losses, timings, eval.

usage: train_builtin.py --data train.npz --eval eval.npz --tokenizer-dir DIR --out DIR
         [--steps N] [--batch B] [--row 8192] [--lr 2e-3] [--seed 0] ...
"""
import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--eval", required=True)
    ap.add_argument("--tokenizer-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16, help="rows per step")
    ap.add_argument("--row", type=int, default=8192, help="tokens per row")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--rope-theta", type=float, default=100000.0)
    ap.add_argument("--curriculum", default="850:0.25,3000:0.5",
                    help="MAXTOK:FRAC,...: until FRAC of the steps, only sessions of synth length <= MAXTOK")
    ap.add_argument("--init", default="", help="start from this model directory's model.safetensors")
    ap.add_argument("--task-weights", default="", help="TASK=W,...: sample sessions of TASK W times as often")
    ap.add_argument("--ctx-loss", type=float, default=0.1,
                    help="weight of the next-token loss on the prompt tokens (answers weigh 1)")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--no-compile", action="store_true", help="run flex_attention uncompiled (slow)")
    ap.add_argument("--attn", choices=["flex", "sdpa"], default="flex",
                    help="flex_attention with a block mask, or SDPA with a dense boolean mask")
    ap.add_argument("--time-limit", type=float, default=0, help="stop early after this many seconds (0: none)")
    ap.add_argument("--stop-step", type=int, default=0,
                    help="stop after this many steps of the --steps schedule (0: all); reproduces a run "
                         "that --time-limit cut short (training_log.json: steps_done)")
    return ap.parse_args()


# ---------------------------------------------------------------------------------------- data

class Data:
    """Samples of a make_builtin_data.py file with per-token positions precomputed."""

    def __init__(self, paths):
        toks, segs, losses, samples, self.sha256, self.meta = [], [], [], [], [], []
        off = 0
        for path in paths.split(","):
            with open(path, "rb") as f:
                self.sha256.append(hashlib.sha256(f.read()).hexdigest())
            d = np.load(path)
            toks.append(d["tokens"].astype(np.int64))
            segs.append(d["seg"].astype(np.int64))
            losses.append(d["loss"].astype(np.bool_))
            sm = d["samples"].copy()
            sm[:, 0] += off
            off += len(toks[-1])
            samples.append(sm)
            self.meta.append(json.loads(str(d["meta"])))
        self.tokens, self.seg, self.loss = np.concatenate(toks), np.concatenate(segs), np.concatenate(losses)
        self.samples = np.concatenate(samples)
        self.tasks, self.modes = self.meta[0]["tasks"], self.meta[0]["modes"]
        self.pos = np.zeros_like(self.tokens)
        for st, n, *_ in self.samples:
            s = self.seg[st:st + n]
            ctx = int((s == 0).sum())  # the shared part comes first
            p = np.arange(n, dtype=np.int64)
            if ctx < n:  # request blocks: positions continue from the context's length
                blk = s[ctx:]
                starts = np.r_[0, np.flatnonzero(np.diff(blk)) + 1]
                lens = np.diff(np.r_[starts, len(blk)])
                p[ctx:] = ctx + np.concatenate([np.arange(l) for l in lens])
            self.pos[st:st + n] = p

    def pack(self, idx, rows, row):
        """Pack samples idx (in order, first fit into `rows` rows) -> tensors; returns (batch, used)."""
        tok = np.zeros((rows, row), np.int64)
        pos = np.zeros((rows, row), np.int64)
        seg = np.zeros((rows, row), np.int64)
        doc = np.full((rows, row), -1, np.int64)
        lab = np.zeros((rows, row), np.bool_)  # loss on token t+1, stored at t
        ctx = np.zeros((rows, row), np.bool_)  # context LM loss on token t+1 (same request), at t
        fill = [0] * rows
        used = []
        for i in idx:
            st, n = int(self.samples[i][0]), int(self.samples[i][1])
            r = next((r for r in range(rows) if fill[r] + n <= row), None)
            if r is None:
                continue
            o = fill[r]
            tok[r, o:o + n] = self.tokens[st:st + n]
            pos[r, o:o + n] = self.pos[st:st + n]
            seg[r, o:o + n] = self.seg[st:st + n]
            doc[r, o:o + n] = len(used)
            lab[r, o:o + n - 1] = self.loss[st + 1:st + n]
            ctx[r, o:o + n - 1] = ~self.loss[st + 1:st + n] & (self.seg[st + 1:st + n] == self.seg[st:st + n - 1])
            fill[r] += n
            used.append(i)
        return dict(tok=tok, pos=pos, seg=seg, doc=doc, lab=lab, ctx=ctx), used


# --------------------------------------------------------------------------------------- model

class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.h, self.hkv, self.d = a.heads, a.kv_heads, a.hidden // a.heads
        self.q_proj = nn.Linear(a.hidden, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(a.hidden, self.hkv * self.d, bias=False)
        self.v_proj = nn.Linear(a.hidden, self.hkv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, a.hidden, bias=False)

    def forward(self, x, cos, sin, attn):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.h, self.d).transpose(1, 2)      # (B, H, T, D)
        k = self.k_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)    # (B, Hkv, T, D)
        v = self.v_proj(x).view(B, T, self.hkv, self.d).transpose(1, 2)    # (B, Hkv, T, D)
        q = (q * cos + rotate_half(q) * sin).to(v.dtype)
        k = (k * cos + rotate_half(k) * sin).to(v.dtype)
        o = attn(q, k, v)                                                  # (B, H, T, D)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, self.h * self.d))


class MLP(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.gate_proj = nn.Linear(a.hidden, a.intermediate, bias=False)
        self.up_proj = nn.Linear(a.hidden, a.intermediate, bias=False)
        self.down_proj = nn.Linear(a.intermediate, a.hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.self_attn = Attention(a)
        self.mlp = MLP(a)
        self.input_layernorm = RMSNorm(a.hidden)
        self.post_attention_layernorm = RMSNorm(a.hidden)

    def forward(self, x, cos, sin, attn):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, a, vocab):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, a.hidden)
        self.layers = nn.ModuleList([Layer(a) for _ in range(a.layers)])
        self.norm = RMSNorm(a.hidden)


class Llama(nn.Module):
    def __init__(self, a, vocab):
        super().__init__()
        self.model = Inner(a, vocab)
        self.lm_head = nn.Linear(a.hidden, vocab, bias=False)
        hd = a.hidden // a.heads
        self.register_buffer("inv_freq", 1.0 / (a.rope_theta ** (torch.arange(0, hd, 2).float() / hd)),
                             persistent=False)
        std = 0.02
        for n, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * a.layers) if n.endswith(("o_proj.weight", "down_proj.weight")) else std)

    def hidden(self, tok, pos, attn):
        f = pos[:, None, :, None].float() * self.inv_freq                  # (B, 1, T, D/2)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()                                    # (B, 1, T, D)
        x = self.model.embed_tokens(tok)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for layer in self.model.layers:
            x = layer(x, cos, sin, attn)
        return self.model.norm(x)


def make_attn(batch, device, use_flex=True):
    """Attention closure for one packed batch: causal, same session, requests kept apart."""
    doc, seg = batch["doc"], batch["seg"]
    B, T = doc.shape
    if use_flex:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def mask_mod(b, h, qi, ki):
            return (ki <= qi) & (doc[b, qi] == doc[b, ki]) & ((seg[b, ki] == 0) | (seg[b, ki] == seg[b, qi]))

        bm = create_block_mask(mask_mod, B, None, T, T, device=device, _compile=True)
        return lambda q, k, v: FLEX(q, k, v, block_mask=bm, enable_gqa=True)
    m = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    m = m[None] & (doc[:, :, None] == doc[:, None, :]) & ((seg[:, None, :] == 0) | (seg[:, None, :] == seg[:, :, None]))
    m = m[:, None]                                                          # (B, 1, T, T)
    return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)


FLEX = None


# ---------------------------------------------------------------------------------- train / eval

def to_dev(batch, device):
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}


def answer_logits(model, b, device, use_flex, ctx_loss=False):
    attn = make_attn(b, device, use_flex)
    nxt = torch.roll(b["tok"], -1, dims=1)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        h = model.hidden(b["tok"], b["pos"], attn)
        sel = b["lab"]
        logits = model.lm_head(h[sel]).float()                              # (N, V)
        cl = None
        if ctx_loss:
            c = b["ctx"]
            cl = F.cross_entropy(model.lm_head(h[c]).float(), nxt[c])
    tgt = nxt[sel]                                                          # (N,)
    if ctx_loss:
        return logits, tgt, cl
    return logits, tgt


@torch.no_grad()
def evaluate(model, data, a, device, use_flex, rows=4):
    """Exact greedy accuracy per (task, mode) on held-out sessions; returns dict."""
    model.eval()
    tasks, modes = data.tasks, data.modes
    stats = {}
    order = list(range(len(data.samples)))
    while order:
        bnp, used = data.pack(order, rows, a.row)
        bnp.pop("ctx")
        if not used:
            raise SystemExit("eval: a sample does not fit one row")
        order = [i for i in order if i not in set(used)]
        b = to_dev(bnp, device)
        logits, tgt = answer_logits(model, b, device, use_flex)
        ok = (logits.argmax(-1) == tgt).cpu().numpy()
        # map answer tokens back to (doc, answer index): contiguous runs of lab within a doc
        lab = bnp["lab"]
        docs = bnp["doc"][lab]
        flat = np.flatnonzero(lab.reshape(-1))
        run_id = np.r_[0, np.cumsum(np.diff(flat) != 1)]
        for r in np.unique(run_id):
            sel = run_id == r
            s = data.samples[used[docs[sel][0]]]
            key = f"{tasks[s[2]]}/{modes[s[3]]}"
            c, n = stats.get(key, (0, 0))
            stats[key] = (c + int(ok[sel].all()), n + 1)
    model.train()
    return {k: {"correct": c, "turns": n, "acc": c / n} for k, (c, n) in sorted(stats.items())}


def main():
    a = parse_args()
    global FLEX
    t_start = time.time()
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    rng = np.random.default_rng(a.seed)
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    train, ev = Data(a.data), Data(a.eval)
    with open(os.path.join(a.tokenizer_dir, "tokenizer.json")) as f:
        vocab = len(json.load(f)["model"]["vocab"])
    tcfg = json.load(open(os.path.join(a.tokenizer_dir, "tokenizer_config.json")))
    special = {v["content"]: int(k) for k, v in tcfg["added_tokens_decoder"].items()}
    vocab = max(vocab, max(special.values()) + 1)
    print(f"data {len(train.samples)} samples {len(train.tokens)} tokens; eval {len(ev.samples)} samples; vocab {vocab}",
          flush=True)

    use_flex = a.attn == "flex"
    try:
        from torch.nn.attention.flex_attention import flex_attention
        FLEX = flex_attention if a.no_compile else torch.compile(flex_attention, dynamic=False)
    except Exception as e:  # noqa: BLE001
        print(f"flex_attention unavailable ({e}); dense-mask SDPA instead", flush=True)
        use_flex = False

    model = Llama(a, vocab).to(device)
    if use_flex:  # the block mask must give what a dense boolean mask gives
        bnp, _ = train.pack(list(rng.permutation(len(train.samples))[:64]), 2, a.row)
        b = to_dev(bnp, device)
        with torch.no_grad():
            l1, _ = answer_logits(model, b, device, True)
            l2, _ = answer_logits(model, b, device, False)
        rel = ((l1 - l2).norm() / l2.norm()).item()
        print(f"flex vs dense-mask SDPA: rel err {rel:.2e}", flush=True)
        if not rel < 2e-2:
            print("flex_attention disagrees: dense-mask SDPA instead", flush=True)
            use_flex = False
    if a.init:
        from safetensors.torch import load_file
        sd = load_file(os.path.join(a.init, "model.safetensors"))
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
        print(f"initialised from {a.init}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)

    def lr_at(s):
        if s < a.warmup:
            return a.lr * (s + 1) / a.warmup
        p = (s - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * p)))

    stages = []
    for part in filter(None, a.curriculum.split(",")):
        mx, fr = part.split(":")
        stages.append((float(fr), [i for i, s in enumerate(train.samples) if s[4] <= int(mx)]))
    weights = {k: int(v) for k, v in (kv.split("=") for kv in filter(None, a.task_weights.split(",")))}
    all_idx = [i for i, s in enumerate(train.samples) for _ in range(weights.get(train.tasks[s[2]], 1))]

    def pool_at(s):
        for fr, idx in stages:
            if s < fr * a.steps:
                return idx
        return all_idx
    log = {"args": vars(a), "data_sha256": train.sha256, "eval_sha256": ev.sha256, "data_meta": train.meta,
           "eval_meta": ev.meta, "n_params": n_params, "steps": [], "evals": []}
    queue = []
    cur_pool = None
    losses, ctx_losses = [], []
    t0 = time.time()
    step = 0
    for step in range(a.steps):
        pool = pool_at(step)
        if pool is not cur_pool:
            queue, cur_pool = [], pool
        if len(queue) < 4 * a.batch * 8:
            queue += [pool[i] for i in rng.permutation(len(pool))]
        bnp, used = train.pack(queue[: 16 * a.batch], a.batch, a.row)
        us = set(used)
        queue = [i for i in queue[: 16 * a.batch] if i not in us] + queue[16 * a.batch:]
        b = to_dev(bnp, device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits, tgt, cl = answer_logits(model, b, device, use_flex, ctx_loss=True)
        ans_loss = F.cross_entropy(logits, tgt)
        loss = ans_loss + a.ctx_loss * cl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        losses.append(ans_loss.item())
        ctx_losses.append(cl.item())
        if step % a.log_every == 0 or step == a.steps - 1:
            el = time.time() - t0
            tok_acc = (logits.argmax(-1) == tgt).float().mean().item()
            rec = {"step": step, "loss": float(np.mean(losses[-a.log_every:])),
                   "ctx_loss": float(np.mean(ctx_losses[-a.log_every:])), "token_acc": tok_acc,
                   "grad_norm": float(gn), "lr": lr_at(step), "sessions": len(used),
                   "answer_tokens": int(tgt.numel()), "elapsed_s": round(el, 1)}
            log["steps"].append(rec)
            print(json.dumps(rec), flush=True)
        if a.eval_every and step > 0 and step % a.eval_every == 0:
            r = evaluate(model, ev, a, device, use_flex)
            log["evals"].append({"step": step, "results": r})
            print("eval", step, {k: round(v["acc"], 3) for k, v in r.items()}, flush=True)
        if a.stop_step and step + 1 >= a.stop_step:
            print(f"stop step reached at step {step}", flush=True)
            break
        if a.time_limit and time.time() - t_start > a.time_limit:
            print(f"time limit reached at step {step}", flush=True)
            break
    train_s = time.time() - t0
    # bf16 weights, as shipped
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    final = evaluate(model, ev, a, device, use_flex)
    print("final eval (bf16 weights)", json.dumps({k: round(v["acc"], 3) for k, v in final.items()}), flush=True)
    log["final_eval_bf16"] = final
    log["final_loss"] = float(np.mean(losses[-50:]))
    log["steps_done"] = step + 1
    log["train_seconds"] = round(train_s, 1)
    log["device"] = torch.cuda.get_device_name()
    log["torch"] = torch.__version__
    save(model, a, vocab, special, log)
    log["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(a.out, "training_log.json"), "w") as f:
        json.dump(log, f, indent=1)
        f.write("\n")
    print(f"done in {log['total_seconds']} s -> {a.out}", flush=True)


def save(model, a, vocab, special, log):
    from transformers import LlamaConfig, LlamaForCausalLM
    os.makedirs(a.out, exist_ok=True)
    eot, bos = special["<|eot_id|>"], special["<|begin_of_text|>"]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=a.rope_theta,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False, hidden_act="silu",
                      bos_token_id=bos, eos_token_id=eot, head_dim=a.hidden // a.heads)
    hf = LlamaForCausalLM(cfg)
    sd = {k: v for k, v in model.state_dict().items() if k != "inv_freq"}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [m for m in missing if "rotary" not in m]
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing {missing} unexpected {unexpected}")
    hf = hf.to(torch.bfloat16)
    hf.generation_config.bos_token_id = bos
    hf.generation_config.eos_token_id = eot
    hf.generation_config.do_sample = False
    hf.save_pretrained(a.out, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        p = os.path.join(a.tokenizer_dir, f)
        if os.path.exists(p) and os.path.abspath(p) != os.path.abspath(os.path.join(a.out, f)):
            shutil.copy(p, os.path.join(a.out, f))
    # parity: transformers (fp32 from the saved bf16 files) vs this model on a causal sequence
    hf2 = LlamaForCausalLM.from_pretrained(a.out, dtype=torch.float32).to("cuda").eval()
    ids = torch.randint(0, vocab, (1, 700), generator=torch.Generator().manual_seed(a.seed)).cuda()
    pos = torch.arange(700, device="cuda")[None]
    with torch.no_grad():
        ref = hf2(ids).logits.float()
        model.float()
        mine = model.lm_head(model.hidden(ids, pos, lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=True))).float()
    rel = ((ref - mine).norm() / ref.norm()).item()
    log["hf_parity_rel_err"] = rel
    print(f"transformers vs trainer logits: rel err {rel:.2e}", flush=True)
    if rel > 1e-3:
        raise SystemExit(f"transformers logits differ from the trainer's (rel err {rel})")


if __name__ == "__main__":
    main()
