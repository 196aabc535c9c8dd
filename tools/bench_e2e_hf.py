#!/usr/bin/env python3
"""bench_e2e_hf.py — replays the KV-cache work of a finished `scbench run` through HF transformers
and prints time per session side by side (run by tools/bench_e2e.sh; usable on its own).

  python3 tools/bench_e2e_hf.py --db FILE --model DIR [--out DIR] [--device cuda|cpu]
      [--dtype bfloat16|float16|float32] [--runs 1,2] [--compress auto|none] [--seed 1]
      [--note TEXT ...] [--budget SECONDS] [--no-hf] [--sdpa default|flash|cudnn|efficient|math]

What is replayed. For every recorded session (run, method, mode, session) the turns table of
the database gives, per turn, prompt_tokens (tokens prefilled on top of the cache),
cached_tokens (cache length before the turn) and generated_tokens (greedy decode steps). The
HF side (bf16, attn_implementation="sdpa", DynamicCache, greedy argmax fed back) does exactly
that work with random token ids of the same counts, following SCBench's cache lifecycle
(spec/scbench.md §6):
  multi-turn:    per turn, prefill the prompt into the cache (it stays: the global part), then
                 generated_tokens one-token forwards; the generated tokens are cropped off again
                 (golden context: the model's answer is dropped).
  multi-request: the context part (= cached_tokens of turn 1) is prefilled once; per request
                 the query tokens (turn 0: prompt_tokens - context) and the generated tokens
                 are appended and cropped off again, back to the bare context.
A forward computes the logits of its last position only (as scbench does). One forward of
generated_tokens steps: scbench feeds every emitted token back, so its decode forwards equal
its generated tokens.

KV compression (SnapKV, PyramidKV, StreamingLLM: the first prefill's kept entries per KV head,
from the turns table's kv_entries, are fewer than its tokens): with --compress auto (default)
the HF cache is cut to the same number of entries per layer and KV head right after the first
prefill, selecting SnapKV-style (softmax scores of the last `window` entries against the
prefix, avg-pooled, top-k, plus the window). The window's keys stand in for its queries (HF
does not keep queries; the arithmetic is the same) and the selection is per KV head (SCBench's
default repeats KV per query head: its cache holds num_attention_heads heads, the HF cache
num_key_value_heads). --compress none replays every method with a dense cache. Prefill
patterns (MInference, A-shape, ...) are replayed dense. RoPE positions in HF follow the cache
length (scbench's follow the count of all tokens seen); with random weights this changes no
timing.

scbench's time of a session = sum over its turns of prefill_ms + decode_ms (forward passes,
sampling and cache work; no tokenizing, scoring or database writes); the HF time covers the
same span (torch.cuda.synchronize at the boundaries, wall clock). speed-up = HF / scbench.
The model has random weights: this compares the time of the same amount of work, not answers.

HF decode on a few layers is slow (tens of ms per token, Python and launch overhead): --budget
bounds this script's time; sessions are replayed round-robin (session 0 of every mode and
method first) and those that would not fit are listed as not replayed.

--sdpa: the backend of torch's scaled_dot_product_attention for every HF forward: `default`
(what torch picks; recent torch prefers cuDNN attention on Hopper) or one forced through
torch.nn.attention.sdpa_kernel (`flash`: FlashAttention-2, with memory-efficient attention for the
calls flash refuses, such as a prefill on top of a cache, which transformers gives an explicit
mask). The totals are given twice per (mode, method): `all N` over every
replayed session, and `after 1st` over the sessions after the first one of the group, since a
group's first session pays one-time costs on the HF side (new shapes; with cuDNN attention,
seconds) that later sessions of the same lengths do not.

Writes e2e_sessions.csv and e2e_sessions.md to --out (default: $OUT, else .). --no-hf prints
the scbench side only (no torch needed). Exit status: 0 done, 1 error, 2 usage, 3 terminated
(SIGTERM/SIGINT) during the replay (the sessions measured by then are written)."""
import argparse
import csv
import json
import os
import signal
import sqlite3
import sys
import time

T_START = time.monotonic()


class Stop(BaseException):
    """SIGTERM (e.g. from `timeout`) or SIGINT: stop replaying, write what was measured."""


def on_signal(signum, frame):
    raise Stop()


def fail(msg):
    print(f"bench_e2e_hf: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- the database side ------------------------------------------------------------------------

class Session:
    """One (run, method, mode, session) of the database with its turns in order."""

    def __init__(self, run_id, backend, method, task, mode, session):
        self.run_id, self.backend, self.method = run_id, backend, method
        self.task, self.mode, self.session = task, mode, session
        self.turns = []          # dicts: prompt, cached, generated, prefill_ms, decode_ms, kv_entries
        self.kv_opts = {}        # the KV policy's options from the run config
        self.kv_name = "dense"
        self.warnings = []
        self._plan = None

    def prefilled(self):
        return sum(t["prompt"] for t in self.turns)

    def decoded(self):
        return sum(t["generated"] for t in self.turns)

    def scb_ms(self):
        return sum(t["prefill_ms"] + t["decode_ms"] for t in self.turns)

    def plan(self):
        """The work as a list of steps: ("context", n), ("turn", n_prompt, n_gen) — see the
        module text. Checks the counts against each other and notes what does not fit."""
        if self._plan is None:
            self._plan = self._make_plan()
        return self._plan

    def _make_plan(self):
        steps = []
        if self.mode == "multi_turn":
            seen = 0
            for i, t in enumerate(self.turns):
                if t["cached"] != seen:
                    self.warnings.append(f"turn {i}: cached_tokens {t['cached']} != {seen} prompt "
                                         f"tokens of the turns before")
                seen += t["prompt"]
                steps.append(("turn", t["prompt"], t["generated"]))
            return steps
        # multi-request: turn 0's prompt_tokens = context + query 0, turns >= 1 carry the context
        # length in cached_tokens
        if len(self.turns) > 1:
            ctx = self.turns[1]["cached"]
            for i, t in enumerate(self.turns[2:], 2):
                if t["cached"] != ctx:
                    self.warnings.append(f"turn {i}: cached_tokens {t['cached']} != context {ctx}")
            if not 0 < ctx < self.turns[0]["prompt"]:
                self.warnings.append(f"context {ctx} does not fit turn 0's {self.turns[0]['prompt']} "
                                     f"prompt tokens; prefilling them as one context")
                ctx = self.turns[0]["prompt"]
        else:
            ctx = self.turns[0]["prompt"]
            self.warnings.append("one request only: its query is prefilled with the context")
        steps.append(("context", ctx))
        steps.append(("turn", self.turns[0]["prompt"] - ctx, self.turns[0]["generated"]))
        for t in self.turns[1:]:
            steps.append(("turn", t["prompt"], t["generated"]))
        return steps

    def kept_per_head(self, n_layers, n_kv_heads):
        """Entries per layer and KV head kept after the first prefill (None: not compressed)."""
        first = self.plan()[0][1]
        e = self.turns[0]["kv_entries"]
        if e is None or n_layers * n_kv_heads == 0:
            return None
        kept = e // (n_layers * n_kv_heads)
        return kept if 0 < kept < first else None


def read_sessions(db, runs):
    if not os.path.isfile(db):
        fail(f"{db}: no such file")
    try:
        con = sqlite3.connect(db)        # read-write open: the last close folds the WAL back in
        cur = con.cursor()
        run_rows = cur.execute("SELECT id, backend, config FROM runs ORDER BY id").fetchall()
        q = ("SELECT t.run_id, t.method, t.task, t.mode, t.session, t.turn, t.prompt_tokens, "
             "t.cached_tokens, t.generated_tokens, t.prefill_ms, t.decode_ms, t.kv_entries "
             "FROM turns t JOIN sessions s ON s.run_id = t.run_id AND s.method = t.method AND "
             "s.task = t.task AND s.mode = t.mode AND s.session = t.session "
             "ORDER BY t.run_id, t.mode, t.method, t.task, t.session, t.turn")
        rows = cur.execute(q).fetchall()
        con.close()
    except sqlite3.Error as e:
        fail(f"{db}: not a readable scbench results database ({e})")
    configs = {}
    backends = {}
    for rid, backend, cfg in run_rows:
        backends[rid] = backend or "?"
        try:
            configs[rid] = json.loads(cfg)
        except (TypeError, ValueError):
            configs[rid] = {}
    sessions = {}
    for (rid, method, task, mode, sess, turn, pt, ct, gt, pms, dms, kve) in rows:
        if runs and rid not in runs:
            continue
        key = (rid, method, task, mode, sess)
        s = sessions.get(key)
        if s is None:
            s = sessions[key] = Session(rid, backends.get(rid, "?"), method, task, mode, sess)
            for m in configs.get(rid, {}).get("methods", []):
                if m.get("spec") == method:
                    s.kv_name = m.get("kv", {}).get("name", "dense")
                    s.kv_opts = m.get("kv", {}).get("options", {})
        if turn != len(s.turns):
            fail(f"{db}: run {rid} {method} {mode} session {sess}: turn {turn} follows "
                 f"{len(s.turns)} turns (turn rows missing)")
        for name, v in (("prompt_tokens", pt), ("cached_tokens", ct), ("generated_tokens", gt),
                        ("prefill_ms", pms), ("decode_ms", dms)):
            if v is None or v < 0:
                fail(f"{db}: run {rid} {method} {mode} session {sess} turn {turn}: {name} not "
                     f"recorded ({v})")
        s.turns.append({"prompt": pt, "cached": ct, "generated": gt, "prefill_ms": pms,
                        "decode_ms": dms, "kv_entries": kve})
    if not sessions:
        fail(f"{db}: no finished sessions" + (f" in runs {sorted(runs)}" if runs else ""))
    return list(sessions.values())


# ---- the HF side ------------------------------------------------------------------------------

class HF:
    def __init__(self, model_dir, device, dtype, seed, sdpa="default"):
        try:
            import torch
            from transformers import AutoModelForCausalLM, DynamicCache
            from torch.nn.attention import SDPBackend, sdpa_kernel
        except ImportError as e:
            fail(f"the HF replay needs torch and transformers ({e}); --no-hf prints the scbench side only")
        self.torch, self.DynamicCache = torch, DynamicCache
        self.sdpa = sdpa
        # flash: FlashAttention-2 where it applies, memory-efficient attention for the calls it
        # refuses (a prefill on top of a cache gets an explicit mask from transformers)
        forced = {"flash": [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION],
                  "cudnn": SDPBackend.CUDNN_ATTENTION,
                  "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}
        import contextlib
        self.sdpa_ctx = (contextlib.nullcontext if sdpa == "default"
                         else (lambda: sdpa_kernel(forced[sdpa])))
        if device.startswith("cuda") and not torch.cuda.is_available():
            fail("--device cuda but torch sees no GPU (use --device cpu)")
        self.device = torch.device(device)
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
        self.gen = torch.Generator(device="cpu").manual_seed(seed)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(
                model_dir, dtype=self.dtype, attn_implementation="sdpa").to(self.device).eval()
        except Exception as e:  # noqa: BLE001 (any load failure is fatal, with its message)
            fail(f"{model_dir}: transformers cannot load the model ({type(e).__name__}: {e})")
        cfg = self.model.config
        self.V = cfg.vocab_size
        self.L = cfg.num_hidden_layers
        self.Hkv = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        # the cache argument was renamed past_key_values -> cache in transformers 5.2x
        import inspect
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.versions = f"torch {torch.__version__}, transformers {__import__('transformers').__version__}"
        self.device_name = (torch.cuda.get_device_name(self.device) if self.device.type == "cuda"
                            else "cpu")

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def ids(self, n):
        return self.torch.randint(0, self.V, (1, n), generator=self.gen).to(self.device)

    def forward(self, ids, cache):
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
        return out.logits[:, -1:].argmax(-1)            # (1, 1) next token, stays on the device

    @staticmethod
    def layers(cache):
        if hasattr(cache, "layers"):
            return [(l, "keys", "values") for l in cache.layers]
        raise RuntimeError("this transformers' DynamicCache has no .layers (transformers >= 4.56 needed)")

    def crop(self, cache, n):
        """Keep the first n entries of every layer (drops the temp part)."""
        for l, k, v in self.layers(cache):
            if getattr(l, k) is not None and getattr(l, k).shape[-2] > n:
                setattr(l, k, getattr(l, k)[..., :n, :])
                setattr(l, v, getattr(l, v)[..., :n, :])

    def compress(self, cache, kept, window, kernel):
        """SnapKV-style cut to `kept` entries per layer and KV head (see the module text)."""
        torch = self.torch
        F = torch.nn.functional
        for l, k, v in self.layers(cache):
            K, Vv = getattr(l, k), getattr(l, v)           # (1, Hkv, T, D)
            T, D = K.shape[-2], K.shape[-1]
            w = min(window, kept, T)
            if T <= kept:
                continue
            q = K[:, :, T - w:, :].float()                 # (1, Hkv, w, D) stand-in queries
            s = torch.softmax(q @ K[:, :, :T - w, :].float().transpose(-1, -2) / D ** 0.5, -1)
            s = s.sum(-2)                                  # (1, Hkv, T - w)
            if kernel > 1:
                s = F.avg_pool1d(s, kernel, stride=1, padding=kernel // 2)
            idx = s.topk(kept - w, -1).indices.sort(-1).values      # (1, Hkv, kept - w)
            idx = idx.unsqueeze(-1).expand(-1, -1, -1, D)
            setattr(l, k, torch.cat([K.gather(2, idx), K[:, :, T - w:]], 2).contiguous())
            setattr(l, v, torch.cat([Vv.gather(2, idx), Vv[:, :, T - w:]], 2).contiguous())

    def warmup(self):
        with self.torch.inference_mode(), self.sdpa_ctx():
            cache = self.DynamicCache()
            tok = self.forward(self.ids(256), cache)
            for _ in range(4):
                tok = self.forward(tok, cache)
            self.sync()

    def session(self, s, compress):
        """Replays one session; returns (prefill_ms, decode_ms, total_ms)."""
        steps = s.plan()
        kept = s.kept_per_head(self.L, self.Hkv) if compress == "auto" else None
        window = int(s.kv_opts.get("window", 32))
        kernel = int(s.kv_opts.get("kernel", 5))
        if kernel % 2 == 0:
            kernel += 1
        ids = [self.ids(st[1]) if st[1] > 0 else None for st in steps]   # made before the clock
        pre = dec = 0.0
        torch = self.torch
        with torch.inference_mode(), self.sdpa_ctx():
            cache = self.DynamicCache()
            tok = None
            first = True
            glob = 0                                   # entries of the global part
            self.sync()
            t_all = time.perf_counter()
            turn = 0
            dropped = 0                                # entries the compression removed
            for st, x in zip(steps, ids):
                # the replay's cache holds what scbench's held before this turn (less the
                # entries the first prefill's compression dropped)
                want = s.turns[turn]["cached"] - dropped
                if (st[0] == "turn" and not (s.mode == "multi_request" and turn == 0)
                        and cache.get_seq_length() != want):
                    fail(f"replay of run {s.run_id} {s.method} {s.mode} session {s.session} turn {turn}: "
                         f"cache holds {cache.get_seq_length()} entries, expected {want} "
                         f"(scbench's cached_tokens {s.turns[turn]['cached']})")
                t0 = time.perf_counter()
                if x is not None:
                    tok = self.forward(x, cache)
                if first and kept is not None:
                    self.compress(cache, kept, window, kernel)
                    dropped = st[1] - kept
                first = False
                if st[0] == "context":
                    glob = cache.get_seq_length()
                    self.sync()
                    pre += time.perf_counter() - t0
                    continue
                if s.mode == "multi_turn":
                    glob = cache.get_seq_length()
                self.sync()
                t1 = time.perf_counter()
                pre += t1 - t0
                for _ in range(st[2]):
                    tok = self.forward(tok, cache)
                self.crop(cache, glob)
                self.sync()
                dec += time.perf_counter() - t1
                turn += 1
            total = time.perf_counter() - t_all
            del cache
        return pre * 1e3, dec * 1e3, total * 1e3


# ---- output -------------------------------------------------------------------------------------

def fmt_table(header, rows):
    w = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w[i]) if i >= 3 else str(c).ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([line(header), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", required=True, help="scbench results database")
    ap.add_argument("--model", help="HF model directory (the one scbench ran)")
    ap.add_argument("--out", default=os.environ.get("OUT", "."), help="where the CSV and markdown go")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--runs", default="", help="comma-separated run ids (default: all)")
    ap.add_argument("--compress", default="auto", choices=["auto", "none"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--note", action="append", default=[], help="line added to the markdown")
    ap.add_argument("--no-hf", action="store_true", help="scbench side only (no torch needed)")
    ap.add_argument("--sdpa", default="default", choices=["default", "flash", "cudnn", "efficient", "math"],
                    help="torch SDPA backend of the HF replay (default: torch's own choice)")
    ap.add_argument("--budget", type=float, default=0,
                    help="seconds this script may take (0: no limit); sessions whose replay would "
                         "not fit are left out (replay order: session 0 of every mode and method first)")
    a = ap.parse_args()
    try:
        runs = {int(x) for x in a.runs.split(",") if x.strip()}
    except ValueError:
        ap.error(f"--runs '{a.runs}': expected comma-separated run ids")
    if not a.no_hf and not a.model:
        ap.error("--model is required (or --no-hf)")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sessions = read_sessions(a.db, runs)
    print(f"bench_e2e_hf: {len(sessions)} sessions from {a.db}; seed {a.seed}")
    hf = None
    if not a.no_hf:
        try:
            hf = HF(a.model, a.device, a.dtype, a.seed, a.sdpa)
            hf.warmup()
        except Stop:
            fail("terminated while loading the model")
        print(f"bench_e2e_hf: HF transformers on {hf.device_name} ({hf.versions}), {a.dtype}, sdpa {a.sdpa}, "
              f"DynamicCache, greedy; random token ids, same counts as the scbench run")
    header = ["mode", "method", "session", "turns", "prefilled", "decoded", "scbench_s", "hf_s",
              "speedup", "scb_prefill_s", "scb_decode_s", "hf_prefill_s", "hf_decode_s", "hf_cache",
              "backend", "run"]
    rows, notes = [], []
    # replay order: session 0 of every (run, mode, method), then session 1, ... so that a time
    # budget that runs out still leaves every group measured
    order = sorted(range(len(sessions)), key=lambda i: (sessions[i].session, sessions[i].run_id,
                                                        sessions[i].mode, sessions[i].method))
    res = {}
    interrupted = False
    group_ms, max_ms = {}, 0.0
    skipped = 0
    for k, i in enumerate(order):
        s = sessions[i]
        s.plan()
        if hf and interrupted:
            res[i] = None
            continue
        if hf:
            g = (s.run_id, s.mode, s.method)
            est = group_ms.get(g, max_ms)
            if a.budget and time.monotonic() - T_START + est / 1e3 * 1.2 > a.budget:
                res[i] = None
                skipped += 1
                print(f"  {s.mode:13s} {s.method:20s} session {s.session}: not replayed (--budget "
                      f"{a.budget:.0f} s would be exceeded; last took {est / 1e3:.1f} s)", flush=True)
                continue
            try:
                res[i] = hf.session(s, a.compress)
            except Stop:
                print(f"bench_e2e_hf: terminated during the replay of {s.mode} {s.method} session "
                      f"{s.session}; writing what was measured", flush=True)
                notes.append(f"the HF replay was terminated (SIGTERM/SIGINT) after {k} of "
                             f"{len(sessions)} sessions")
                interrupted = True
                res[i] = None
                continue
            group_ms[g] = res[i][2]
            max_ms = max(max_ms, res[i][2])
            print(f"  {s.mode:13s} {s.method:20s} session {s.session}: scbench {s.scb_ms() / 1e3:.3f} s, "
                  f"HF {res[i][2] / 1e3:.3f} s", flush=True)
    if skipped:
        notes.append(f"{skipped} of {len(sessions)} sessions not replayed through HF within --budget "
                     f"{a.budget:.0f} s")
    for i, s in enumerate(sessions):
        r = res.get(i)
        hp, hd, ht = r if r else (None, None, None)
        kept = hf and a.compress == "auto" and s.kept_per_head(hf.L, hf.Hkv)
        cache_note = "" if not hf else ("not replayed" if r is None else
                                        (f"cut to {kept}/head" if kept else "dense"))
        for w in s.warnings:
            notes.append(f"run {s.run_id} {s.method} {s.mode} session {s.session}: {w}")
        scb = s.scb_ms()
        rows.append([s.mode, s.method, s.session, len(s.turns), s.prefilled(), s.decoded(),
                     f"{scb / 1e3:.3f}", f"{ht / 1e3:.3f}" if r else "",
                     f"{ht / scb:.2f}" if r and scb > 0 else "",
                     f"{sum(t['prefill_ms'] for t in s.turns) / 1e3:.3f}",
                     f"{sum(t['decode_ms'] for t in s.turns) / 1e3:.3f}",
                     f"{hp / 1e3:.3f}" if r else "", f"{hd / 1e3:.3f}" if r else "",
                     cache_note, s.backend, s.run_id])
    # totals per (mode, method), over the sessions with both times (all of them with --no-hf)
    # and the same over the sessions after each group's first (its one-time costs left out)
    tot, later, first_seen = {}, {}, set()
    for r in sorted(rows, key=lambda r: (r[0], r[1], r[15], r[2])):
        if hf and not r[7]:
            continue
        g = (r[0], r[1])
        dests = [tot] + ([later] if g in first_seen else [])
        first_seen.add(g)
        for d in dests:
            t = d.setdefault(g, [0, 0, 0.0, 0.0, 0])
            t[4] += 1
            t[0] += r[4]
            t[1] += r[5]
            t[2] += float(r[6])
            t[3] += float(r[7]) if r[7] else 0.0

    def total_rows(d, label):
        return [[m, meth, f"{label} {t[4]}", "", t[0], t[1], f"{t[2]:.3f}",
                 f"{t[3]:.3f}" if hf else "", f"{t[3] / t[2]:.2f}" if hf and t[2] > 0 else ""]
                for (m, meth), t in d.items() if t[4] > 1 or label != "all"]
    short = ([r[:9] for r in rows] + total_rows(tot, "all")
             + (total_rows(later, "after 1st") if hf else []))
    print()
    print(fmt_table(header[:9], short))
    os.makedirs(a.out, exist_ok=True)
    csv_path = os.path.join(a.out, "e2e_sessions.csv")
    with open(csv_path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(header)
        wr.writerows(rows)
    md_path = os.path.join(a.out, "e2e_sessions.md")
    with open(md_path, "w") as f:
        f.write("| mode | method | session | turns | tokens prefilled | tokens decoded | scbench s | HF s | "
                "speed-up (HF / scbench) |\n|---|---|---|--:|--:|--:|--:|--:|--:|\n")
        for r in short:
            f.write("| " + " | ".join(str(c) for c in r) + " |\n")
        f.write("\n")
        if hf:
            f.write(f"HF transformers on {hf.device_name} ({hf.versions}), {a.dtype}, sdpa {a.sdpa}, DynamicCache, "
                    f"greedy, random token ids of the same counts per turn (random weights: a timing "
                    f"comparison of the same work, not of answers). Compressed methods: HF cache cut "
                    f"to the same entries per KV head after the first prefill (--compress {a.compress}).\n")
        for n in a.note + notes:
            f.write(f"\n- {n}")
        f.write("\n")
    for n in notes:
        print(f"note: {n}")
    print(f"\nwrote {csv_path} and {md_path}")
    return 3 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
