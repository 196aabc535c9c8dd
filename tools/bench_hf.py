#!/usr/bin/env python3
"""bench_hf.py — the same prefill/decode measurement as `scbench bench cuda`, through HF
transformers (bf16, attn_implementation="sdpa", KV cache, greedy), for side-by-side numbers on
the same GPU. Run on the GPU machine (torch + transformers there); prints lines in the format
of `scbench bench` so gpu_check.sh can put them next to ours.

  python3 tools/bench_hf.py --model DIR --tokens 4096 [--decode 128] [--repeats 3] [--seed 1]

Prefill: one forward of --tokens random ids (median of --repeats after a warm-up), CUDA events.
Decode: --decode single-token forwards on top of that cache (argmax fed back), per-token mean."""
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
    torch.manual_seed(a.seed)
    m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16,
                                             attn_implementation="sdpa").cuda().eval()
    V = m.config.vocab_size
    ids = torch.randint(0, V, (1, a.tokens), device="cuda")
    ev = lambda: torch.cuda.Event(enable_timing=True)

    def prefill():
        cache = DynamicCache()
        s, e = ev(), ev()
        s.record()
        out = m(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        e.record()
        torch.cuda.synchronize()
        return s.elapsed_time(e), out, cache

    with torch.inference_mode():
        prefill()                                   # warm-up
        times = []
        for _ in range(a.repeats):
            t, out, cache = prefill()
            times.append(t)
        pms = statistics.median(times)
        tok = out.logits[:, -1].argmax(-1, keepdim=True)
        s, e = ev(), ev()
        s.record()
        for _ in range(a.decode):
            out = m(input_ids=tok, past_key_values=cache, use_cache=True)
            tok = out.logits[:, -1].argmax(-1, keepdim=True)
        e.record()
        torch.cuda.synchronize()
        dms = s.elapsed_time(e)
    print(f"hf prefill   {a.tokens} tokens  {pms:.2f} ms  {a.tokens / pms * 1e3:.1f} tokens/s  "
          f"(transformers, bf16, sdpa, median of {a.repeats})")
    print(f"hf decode    {a.decode} tokens at {a.tokens} context  {dms:.2f} ms  "
          f"{dms / a.decode:.3f} ms/token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
