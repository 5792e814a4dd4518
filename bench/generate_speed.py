"""Decoding speed of the GPT family: KV cache vs re-encoding the whole context at every step.

Builds the `small` preset (6 layers, 6 heads, 384 dims, block 256) with random weights and vocab_size 65 (Tiny
Shakespeare's character set), then generates the same number of new tokens greedily with
`tetragen.families.gpt.sample.generate_ids(..., use_cache=True)` and `use_cache=False`, and reports tokens/s of each
and the speed-up. Also reports tokens/s of the `baby` preset (4/4/128, block 64) with the cache.

Random weights decode at the same speed as trained ones (the work per token does not depend on the values), and
greedy decoding makes both paths deterministic. While the window is not yet full both paths see exactly the same
context, so their greedy tokens must agree there; the script checks that.

    python bench/generate_speed.py            # 1000 tokens; writes the generate_speed section of bench/RESULTS.md
    python bench/generate_speed.py --quick    # smoke run: 64 tokens, nothing written
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import tetragen  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.families.gpt.sample import SamplingParams, generate_ids  # noqa: E402

from _results import header, write_section  # noqa: E402

VOCAB = 65  # Tiny Shakespeare's characters


def build_model(preset: str, seed: int):
    cfg = build_run_config("gpt", preset=preset)
    cfg.model.vocab_size = VOCAB
    torch.manual_seed(seed)
    return tetragen.get_family("gpt").build(cfg.model).eval()


def decode(model, n_tokens: int, use_cache: bool, prompt: list[int]) -> tuple[list[int], float, float]:
    """Greedily generate n_tokens; returns (the ids, wall seconds, CPU seconds of this process).

    CPU seconds are less disturbed than wall time when other jobs share the cores (a preempted step costs wall
    time, not CPU time), so the speed-up is reported from both."""
    t0, c0 = time.perf_counter(), time.process_time()
    ids = list(generate_ids(model, prompt, n_tokens, SamplingParams(temperature=0.0), use_cache=use_cache))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if len(ids) != n_tokens:
        raise SystemExit(f"expected {n_tokens} tokens, got {len(ids)}")
    return ids, seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=1000, help="new tokens per measurement (default 1000)")
    ap.add_argument("--preset", default="small", help="preset compared with and without the cache (default small)")
    ap.add_argument("--cached-preset", default="baby", help="extra preset timed with the cache only (default baby)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 64 tokens, RESULTS.md untouched")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.tokens = min(args.tokens, 64)
    if args.threads:
        torch.set_num_threads(args.threads)
    prompt = [0]  # one token: generation starts from an (almost) empty context, as `tetragen sample` without a prompt

    model = build_model(args.preset, args.seed)
    block = model.config.block_size
    decode(model, 8, True, prompt)   # warm-up: first-call allocations and kernel selection
    decode(model, 8, False, prompt)
    cached_ids, t_cached, cpu_cached = decode(model, args.tokens, True, prompt)
    full_ids, t_full, cpu_full = decode(model, args.tokens, False, prompt)
    same = min(args.tokens, block - len(prompt))  # both paths see the same context up to a full window
    if cached_ids[:same] != full_ids[:same]:
        first = next(i for i in range(same) if cached_ids[i] != full_ids[i])
        raise SystemExit(f"cached and uncached greedy decoding differ at token {first} (within the block)")
    tps_cached, tps_full = args.tokens / t_cached, args.tokens / t_full
    speedup, cpu_speedup = tps_cached / tps_full, cpu_full / cpu_cached

    small = build_model(args.cached_preset, args.seed)
    decode(small, 8, True, prompt)
    _, t_small, cpu_small = decode(small, args.tokens, True, prompt)
    tps_small = args.tokens / t_small

    n_params = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    c, s = model.config, small.config
    rows = [
        ("preset", "model", "cache", "new tokens", "seconds", "tokens/s", "CPU s", "tokens per CPU s"),
        (args.preset, f"{c.n_layer}L/{c.n_head}H/{c.n_embd}d, block {c.block_size}, {n_params(model):.1f}M params",
         "yes", args.tokens, f"{t_cached:.2f}", f"{tps_cached:.1f}",
         f"{cpu_cached:.2f}", f"{args.tokens / cpu_cached:.1f}"),
        (args.preset, "same", "no (re-encode the window)", args.tokens, f"{t_full:.2f}", f"{tps_full:.1f}",
         f"{cpu_full:.2f}", f"{args.tokens / cpu_full:.1f}"),
        (args.cached_preset, f"{s.n_layer}L/{s.n_head}H/{s.n_embd}d, block {s.block_size}, "
         f"{n_params(small):.1f}M params", "yes", args.tokens, f"{t_small:.2f}", f"{tps_small:.1f}",
         f"{cpu_small:.2f}", f"{args.tokens / cpu_small:.1f}"),
    ]
    table = ["| " + " | ".join(map(str, r)) + " |" for r in rows]
    table.insert(1, "|" + "---|" * len(rows[0]))
    verdict = "meets" if speedup >= 10 else "BELOW"
    summary = (f"KV-cache speed-up on `{args.preset}`: **{speedup:.1f}x** in wall time ({verdict} the 10x target), "
               f"{cpu_speedup:.1f}x in CPU time; "
               f"greedy tokens identical for the first {same} tokens (full window)")
    print("\n".join(table))
    print(summary)

    if args.quick or args.no_write:
        return
    body = "\n".join([
        "## Generation speed: KV cache vs full re-encode",
        "",
        *header(),
        f"- setup: random-initialised weights, vocab {VOCAB}, batch 1, greedy, prompt of 1 token, CPU float32; "
        "one warm-up of 8 tokens per path before timing",
        "",
        *table,
        "",
        summary + ".",
        "",
        f"Without the cache every step re-encodes the last {block} tokens; with it each step encodes one token "
        f"(and once per {block // 2} tokens, when the window is full, re-encodes the latest {block // 2}).",
    ])
    write_section("generate_speed", body)
    print("wrote the generate_speed section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
