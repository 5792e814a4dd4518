"""Decoding speed by torch thread count, on an idle CPU and beside a busy one: what `tetragen generate` and
`tetragen serve` base their thread rule on (tetragen/threads.py).

For GPTs of the `fast` and `small` presets (random weights: decoding speed does not depend on them) the bench
generates `--tokens` new tokens with the KV cache at 1 thread and at every core, first on an otherwise idle machine,
then while a training run (`tetragen train gpt --preset baby`, using every core as a user's run would) works beside
it. Each figure is the median of three decodes. Reported: tokens/s of each, and what the rule picks in each
situation.

    python bench/decode_threads.py            # writes the decode_threads section of bench/RESULTS.md
    python bench/decode_threads.py --quick    # smoke run, nothing written
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tetragen  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.families.gpt.sample import SamplingParams, generate_ids  # noqa: E402
from tetragen.threads import inference_threads  # noqa: E402

from _results import header, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
PRESETS = ("fast", "small")


def build(preset: str):
    cfg = build_run_config("gpt", preset=preset)
    cfg.model.vocab_size = 65
    torch.manual_seed(0)
    return tetragen.get_family("gpt").build(cfg.model).eval(), cfg


def tokens_per_s(model, tokens: int, threads: int) -> float:
    torch.set_num_threads(threads)
    params = SamplingParams(temperature=0.0)
    runs = []
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            n = len(list(generate_ids(model, [0], tokens, params, use_cache=True)))
            runs.append(n / (time.perf_counter() - t0))
    return statistics.median(runs)


def busy_neighbour(tmp: Path) -> subprocess.Popen:
    """A training run on every core, as a user's would be, left running until stopped."""
    env = dict(os.environ, TETRAGEN_NO_PROGRESS="1")
    env.pop("OMP_NUM_THREADS", None)
    p = subprocess.Popen([sys.executable, "-m", "tetragen", "train", "gpt", "--preset", "baby", "--data", str(DATA),
                          "--out", str(tmp / "busy"), "--no-progress", "train.max_steps=100000",
                          "train.eval_every=0", "train.save_every=0"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(20)  # data loading and the first steps: then it computes flat out
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tokens", type=int, default=500)
    args = ap.parse_args()
    tokens = 32 if args.quick else args.tokens
    cores = len(os.sched_getaffinity(0))
    counts = sorted({1, cores})
    models = {p: build(p) for p in PRESETS}
    results: dict = {}
    picks: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for load in ("idle", "busy"):
            neighbour = busy_neighbour(Path(tmp)) if load == "busy" else None
            try:
                for preset, (model, _) in models.items():
                    picks[(load, preset)] = inference_threads()
                    for n in counts:
                        results[(load, preset, n)] = tokens_per_s(model, tokens, n)
                        print(f"{load}: {preset} at {n} thread(s): {results[(load, preset, n)]:.0f} tokens/s",
                              flush=True)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
    if args.quick:
        return
    lines = ["## Decoding threads beside a busy CPU (`bench/decode_threads.py`)", "", *header(),
             f"- {tokens} new tokens, greedy, KV cache, batch 1, random weights (vocabulary 65); median of 3; "
             f"busy = `tetragen train gpt --preset baby` on every core beside the decode", "",
             "| model | CPU | " + " | ".join(f"{n} thread{'s' if n > 1 else ''}" for n in counts)
             + " | the rule picks |", "|---|---|" + "---:|" * (len(counts) + 1)]
    for preset, (model, cfg) in models.items():
        m = cfg.model
        size = f"{preset} ({m.n_layer}x{m.n_embd}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M)"
        for load in ("idle", "busy"):
            cells = " | ".join(f"{results[(load, preset, n)]:.0f} tok/s" for n in counts)
            lines.append(f"| {size} | {load} | {cells} | {picks[(load, preset)]} |")
    worst = min(results[("busy", p, picks[("busy", p)])] / results[("busy", p, cores)] for p in PRESETS)
    lines += ["", f"Beside the busy CPU the rule's pick decodes at least **{worst:.1f}x** as fast as every core "
                  f"would."]
    write_section("decode_threads", "\n".join(lines))
    print("wrote the decode_threads section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
