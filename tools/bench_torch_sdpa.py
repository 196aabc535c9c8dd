#!/usr/bin/env python3
"""bench_torch_sdpa.py — PyTorch's scaled_dot_product_attention (flash and cuDNN backends) and a bf16
matmul at the shapes of tests/bench_cuda.c, timed the same way (CUDA events, warm-up, median /
p10 / p90 of repeats), written as CSV with the same columns; and --compare, which prints our
numbers and torch's side by side.

  python3 tools/bench_torch_sdpa.py [--quick] --csv bench_torch.csv
  python3 tools/bench_torch_sdpa.py --compare bench_scbench.csv bench_torch.csv

GQA: K/V keep Hkv heads and enable_gqa=True is asked for; if the flash backend refuses it,
K/V are repeated to Hq heads outside the timed region (noted in the 'kernel' column).
Prefill rows: prefill_causal (flash backend, FlashAttention-2) and prefill_causal_cudnn (cuDNN
attention, which recent torch prefers on Hopper, FlashAttention-3 class); --compare puts our
prefill kernels next to both.
Prefill: is_causal=True with Tq == Tk (top-left and bottom-right alignment coincide).
Decode: one query row over all keys (is_causal=False)."""
import argparse
import csv
import os
import sys


def bench(torch, fn, warm, reps):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    n = len(ts)
    return ts[n // 2], ts[(n * 10) // 100], ts[min((n * 90) // 100, n - 1)]


def sdpa_fn(torch, F, sdpa_kernel, backend, q, k, v, rep):
    """A causal-prefill closure on one SDPA backend: GQA through enable_gqa where the backend
    takes it, else K/V repeated to Hq heads outside the timed region (fn.repeated = True);
    None when the backend refuses the shape either way."""
    def make(kk, vv, gqa):
        def fn():
            with sdpa_kernel(backend):
                if gqa:
                    return F.scaled_dot_product_attention(q, kk, vv, is_causal=True, enable_gqa=True)
                return F.scaled_dot_product_attention(q, kk, vv, is_causal=True)
        fn.repeated = not gqa
        return fn
    for gqa in (True, False):
        kk = k if gqa else k.repeat_interleave(rep, dim=1)
        vv = v if gqa else v.repeat_interleave(rep, dim=1)
        fn = make(kk, vv, gqa)
        try:
            fn()
            torch.cuda.synchronize()
            return fn
        except Exception as ex:
            print(f"  (enable_gqa={gqa} refused: {str(ex).splitlines()[0][:80]})")
    return None


def run(args):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if not torch.cuda.is_available():
        print("bench_torch_sdpa: SKIP: torch sees no CUDA device")
        return 77
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    desc = f"{name}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    print("device:", desc, flush=True)
    torch.manual_seed(20261126)
    rows = []

    def add(kernel, shape, t, tflops=0.0, gbps=0.0, pct=0.0):
        rows.append(dict(impl="torch", kernel=kernel, shape=shape, ms_median=t[0], ms_p10=t[1],
                         ms_p90=t[2], tflops=tflops, gbps=gbps, pct_of_peak=pct, device=desc))
        extra = f" {tflops:8.1f} TFLOP/s" if tflops else f" {gbps:8.0f} GB/s"
        print(f"{kernel:30s} {shape:32s} {t[0]:9.3f} {t[1]:9.3f} {t[2]:9.3f}{extra}", flush=True)

    n = 4096 if args.quick else 8192
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    t = bench(torch, lambda: torch.matmul(a, b), 5, 10 if args.quick else 30)
    peak = 2.0 * n ** 3 / (t[0] * 1e-3) / 1e12
    add("gemm_bf16_peak", f"M=N=K={n}", t, tflops=peak)
    del a, b

    Hq, Hkv, D = 32, 8, 128
    Ts = [4096, 8192] if args.quick else [4096, 8192, 16384, 32768, 65536, 131072]
    for T in Ts:
        q = torch.rand(1, Hq, T, D, device=dev, dtype=torch.bfloat16) * 4 - 2
        k = torch.rand(1, Hkv, T, D, device=dev, dtype=torch.bfloat16) * 4 - 2
        v = torch.rand(1, Hkv, T, D, device=dev, dtype=torch.bfloat16) * 2 - 1
        for bname, backend, kernel in (("flash", SDPBackend.FLASH_ATTENTION, "prefill_causal"),
                                       ("cudnn", SDPBackend.CUDNN_ATTENTION, "prefill_causal_cudnn")):
            fn = sdpa_fn(torch, F, sdpa_kernel, backend, q, k, v, Hq // Hkv)
            if fn is None:
                print(f"  ({bname} SDPA refuses T={T}; skipped)")
                continue
            if fn.repeated:
                kernel += "(kv-repeat)"
            reps = 5 if args.quick else (4 if T >= 65536 else 8 if T >= 16384 else 20)
            t = bench(torch, fn, 1 if T >= 65536 else 2, reps)
            tf = 4.0 * T * T * D * Hq / 2.0 / (t[0] * 1e-3) / 1e12
            add(kernel, f"T={T} Hq={Hq} Hkv={Hkv} D={D}", t, tflops=tf, pct=100.0 * tf / peak)
            del fn
        del q, k, v
        torch.cuda.empty_cache()

    for Tk in ([32768 // 4, 131072 // 4] if args.quick else [32768, 131072]):
        q = torch.rand(1, Hq, 1, D, device=dev, dtype=torch.bfloat16) * 4 - 2
        k = torch.rand(1, Hkv, Tk, D, device=dev, dtype=torch.bfloat16) * 4 - 2
        v = torch.rand(1, Hkv, Tk, D, device=dev, dtype=torch.bfloat16) * 2 - 1
        kernel = "decode_splitk"
        backend = SDPBackend.FLASH_ATTENTION
        try:
            with sdpa_kernel(backend):
                F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
            kk, vv, gqa = k, v, True
        except Exception as ex:
            print(f"  (decode enable_gqa with flash failed: {str(ex).splitlines()[0][:80]}; repeating K/V)")
            kk = k.repeat_interleave(Hq // Hkv, dim=1)
            vv = v.repeat_interleave(Hq // Hkv, dim=1)
            gqa = False
            kernel = "decode_splitk(kv-repeat)"

        def fn():
            with sdpa_kernel(backend):
                if gqa:
                    return F.scaled_dot_product_attention(q, kk, vv, enable_gqa=True)
                return F.scaled_dot_product_attention(q, kk, vv)
        t = bench(torch, fn, 5, 10 if args.quick else 50)
        byts = Tk * Hkv * D * 2 * 2 + 2 * Hq * D * 2
        add(kernel, f"Tq=1 Tk={Tk} Hq={Hq} Hkv={Hkv} D={D}", t, gbps=byts / (t[0] * 1e-3) / 1e9)
        del q, k, v, kk, vv
        torch.cuda.empty_cache()

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
        print("bench_torch_sdpa: wrote", args.csv)
    return 0


def compare(ours_path, torch_path):
    def load(p):
        if not p or not os.path.exists(p):
            return []
        with open(p, newline="") as f:
            return list(csv.DictReader(f))
    ours, theirs = load(ours_path), load(torch_path)
    if not ours:
        print(f"(no benchmark CSV at {ours_path})")
        return 1
    tmap = {}
    for r in theirs:
        tmap[(r["kernel"].split("(")[0], r["shape"])] = r
    print(f"{'kernel':20s} {'shape':32s} {'ours ms':>9s} {'torch ms':>9s} {'torch/ours':>10s} "
          f"{'ours':>16s} {'torch':>16s} {'cudnn ms':>9s} {'cudnn/ours':>10s}")
    for r in ours:
        # our prefill rows are per kernel (prefill_causal_fa2, prefill_causal_sm90): all of them
        # face torch's one prefill_causal row
        key = "prefill_causal" if r["kernel"].startswith("prefill_causal") else r["kernel"]
        t = tmap.get((key, r["shape"]))

        def rate(x):
            if x is None:
                return "-"
            tf, gb = float(x["tflops"]), float(x["gbps"])
            return f"{tf:.1f} TFLOP/s" if tf > 0 else f"{gb:.0f} GB/s"
        om = float(r["ms_median"])
        tm = float(t["ms_median"]) if t else None
        ratio = f"{tm / om:10.2f}" if tm else f"{'-':>10s}"
        pct = float(r["pct_of_peak"])
        extra = f" ({pct:.0f}% of peak)" if pct > 0 else ""
        c = tmap.get(("prefill_causal_cudnn", r["shape"])) if key == "prefill_causal" else None
        cm = float(c["ms_median"]) if c else None
        cudnn = f"{cm:9.3f} {cm / om:10.2f}" if cm else f"{'-':>9s} {'-':>10s}"
        print(f"{r['kernel']:20s} {r['shape']:32s} {om:9.3f} "
              f"{(f'{tm:9.3f}' if tm else '-'):>9s} {ratio} {rate(r):>16s} {rate(t):>16s} {cudnn}{extra}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", help="write results here")
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--compare", nargs=2, metavar=("OURS_CSV", "TORCH_CSV"),
                    help="print the side-by-side table of two CSV files and exit")
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_torch_sdpa: SKIP: no torch")
        return 77
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
