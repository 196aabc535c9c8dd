#!/usr/bin/env python3
"""bench_hf.py — the same prefill/decode measurement as `scbench bench cuda`, through HF
transformers (bf16, attn_implementation="sdpa", KV cache, greedy), for side-by-side numbers on
the same GPU. Run on the GPU machine (torch + transformers there); prints lines in the format
of `scbench bench` so gpu_check.sh can put them next to ours.

  python3 tools/bench_hf.py --model DIR --tokens 4096 [--decode 128] [--repeats 3] [--seed 1]
                            [--sdpa default,flash,cudnn]

Prefill: one forward of --tokens random ids (median of --repeats after a warm-up), CUDA events.
Decode: --decode single-token forwards on top of that cache (argmax fed back), per-token mean,
after 8 untimed decode steps (the first decode forwards pay one-time set-up costs of seconds).
--sdpa: the SDPA backends to time, each a line: `default` is what torch picks by itself (on
Hopper, recent torch prefers cuDNN attention over FlashAttention-2), `flash` and `cudnn` force
that backend (torch.nn.attention.sdpa_kernel). The backend torch picks for the prefill shape is
printed (torch._fused_sdp_choice). A backend that refuses the shape is reported and skipped."""
import argparse
import statistics
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sdpa", default="default,flash,cudnn",
                    help="SDPA backends to time, comma-separated (default, flash, cudnn, efficient, math)")
    a = ap.parse_args()
    try:
        import torch
        from transformers import AutoModelForCausalLM, DynamicCache
    except ImportError as e:
        print(f"SKIP: {e}")
        return 77
    if not torch.cuda.is_available():
        print("SKIP: no GPU")
        return 77
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import contextlib
    torch.manual_seed(a.seed)
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                             attn_implementation="sdpa").cuda().eval()
    V = m.config.vocab_size
    ids = torch.randint(0, V, (1, a.tokens), device="cuda")
    ev = lambda: torch.cuda.Event(enable_timing=True)
    cfg = m.config
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    try:   # which backend torch's SDPA dispatcher picks for this model's prefill shape
        q = torch.zeros(1, cfg.num_attention_heads, a.tokens, hd, device="cuda", dtype=torch.bfloat16)
        kv = torch.zeros(1, cfg.num_key_value_heads, a.tokens, hd, device="cuda", dtype=torch.bfloat16)
        choice = torch._fused_sdp_choice(q, kv, kv, is_causal=True, enable_gqa=True)
        print(f"hf sdpa      torch picks {SDPBackend(choice).name} for the causal prefill "
              f"(T={a.tokens}, Hq={cfg.num_attention_heads}, Hkv={cfg.num_key_value_heads}, D={hd}, GQA)")
        del q, kv
    except Exception as ex:  # a private API: report, do not fail
        print(f"hf sdpa      (backend choice not available: {str(ex).splitlines()[0][:100]})")
    forced = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
              "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}

    def backend_ctx(name):
        return contextlib.nullcontext() if name == "default" else sdpa_kernel(forced[name])

    def prefill():
        cache = DynamicCache()
        s, e = ev(), ev()
        s.record()
        out = m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e), out, cache

    for name in a.sdpa.split(","):
        name = name.strip()
        if name != "default" and name not in forced:
            print(f"bench_hf: unknown --sdpa backend '{name}' (default, flash, cudnn, efficient, math)")
            return 2
        try:
            with torch.inference_mode(), backend_ctx(name):
                prefill()                                   # warm-up
                times = []
                for _ in range(a.repeats):
                    t, out, cache = prefill()
                    times.append(t)
                pms = statistics.median(times)
                tok = out.logits[:, -1].argmax(-1, keepdim=True)
                for _ in range(8):                          # decode warm-up (one-time set-up)
                    out = m(input_ids=tok, past_key_values=cache, use_cache=True)
                    tok = out.logits[:, -1].argmax(-1, keepdim=True)
                torch.cuda.synchronize()
                s, e = ev(), ev()
                s.record()
                for _ in range(a.decode):
                    out = m(input_ids=tok, past_key_values=cache, use_cache=True)
                    tok = out.logits[:, -1].argmax(-1, keepdim=True)
                e.record()
                torch.cuda.synchronize()
                dms = s.elapsed_time(e)
            del out, cache
            torch.cuda.empty_cache()
        except Exception as ex:
            print(f"hf prefill   sdpa {name}: failed: {str(ex).splitlines()[0][:160]}")
            torch.cuda.empty_cache()
            continue
        print(f"hf prefill   {a.tokens} tokens  {pms:.2f} ms  {a.tokens / pms * 1e3:.1f} tokens/s  "
              f"(transformers, bf16, sdpa {name}, median of {a.repeats})")
        print(f"hf decode    {a.decode} tokens at {a.tokens} context  {dms:.2f} ms  "
              f"{dms / a.decode:.3f} ms/token  (sdpa {name}, after 8 warm-up steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
