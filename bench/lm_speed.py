"""Training speed of the GPT family on Tiny Shakespeare, and how soon a recipe reaches a target validation loss.

1. Throughput. The `baby` preset is nanoGPT's Shakespeare-char CPU recipe (4 layers, 4 heads, 128 dims, block 64,
   batch 12). Its training step is timed through the trainer itself (draw the batch, forward, backward, clip, fused
   AdamW) on two paths: fp32 eager, and the fastest one we have (torch.compile, with bf16 autocast where the CPU
   computes bf16 natively: on AVX2-only CPUs emulated bf16 is far slower than fp32). Both run in this process in
   alternating rounds after a warm-up (compilation excluded); the best round of each counts, which filters out other
   processes on a shared machine. Reported: tokens/s, the speed-up, MFU against a bf16 matmul peak
   (`--peak-gflops`, 430: measured on the reference machine) and against this machine's matmul peak, measured here.
2. Wall time to quality. Each training is a subprocess `python -m tetragen train gpt ...` timed from outside, so
   start-up, data loading, compilation (with an empty inductor cache), the final full validation and the final
   checkpoint all count. `--preset baby` runs its 2000 fp32 eager steps; `--preset fast` must then reach a
   full-validation loss <= 1.70 nats/char within the baby run's wall time. Both evaluate only at the end
   (`train.eval_every=0 train.save_every=0`), so neither pays for intermediate evaluations.

    TETRAGEN_DATA=/path/to/data python bench/lm_speed.py   # several minutes; writes its section of bench/RESULTS.md
    python bench/lm_speed.py --quick                       # smoke run: short trainings, nothing written
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

os.environ.setdefault("TETRAGEN_NO_PROGRESS", "1")

from tetragen import api  # noqa: E402
from tetragen.config import build_run_config, validate_cross  # noqa: E402
from tetragen.train.trainer import Trainer  # noqa: E402

from _results import header, write_section  # noqa: E402

FAST_PATH = ["train.precision=auto", "train.compile=true"]  # bf16 where the CPU has it natively, else fp32
TARGET_LOSS = 1.70
END_ONLY = ["train.eval_every=0", "train.save_every=0"]  # evaluate and checkpoint once, at the end


# ----------------------------------------------------------------------------------------------------------------
# 1. throughput of the baby model at batch 12

def make_trainer(data: str, overrides: list[str], run_dir: Path) -> Trainer:
    cfg = build_run_config("gpt", preset="baby", overrides=overrides)
    cfg.data.source = data
    validate_cross(cfg)
    trainer = Trainer(cfg, api.load_data(cfg), run_dir, progress=False)
    trainer.settle_precision()  # precision=auto times the model's own steps before the first one
    return trainer


def run_steps(trainer: Trainer, n: int) -> float:
    """Seconds for n training steps (the trainer's own step; nothing is evaluated or written)."""
    t0 = time.perf_counter()
    for _ in range(n):
        trainer._train_step()
        trainer.step += 1
    return time.perf_counter() - t0


def throughput(data: str, *, warmup: int, steps: int, rounds: int) -> dict:
    """Tokens/s of fp32 eager and of the fast path, named by the precision its own `auto` settled on."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="lm_speed_tp_") as tmp:
        fast = make_trainer(data, FAST_PATH, Path(tmp) / "fast")
        trainers = {"fp32 eager": make_trainer(data, [], Path(tmp) / "eager"), f"{fast.precision} + compile": fast}
        for name, tr in trainers.items():
            out[name] = {"warmup_s": run_steps(tr, warmup), "rounds": []}
        for _ in range(rounds):  # alternate, so that a burst of outside load hits both paths alike
            for name, tr in trainers.items():
                out[name]["rounds"].append(run_steps(tr, steps))
        some = next(iter(trainers.values()))
        tokens_per_step = some.cfg.train.batch_size * some.cfg.model.block_size
        flops_per_token = some.model.flops_per_token()
    for name, r in out.items():
        r["tok_s"] = steps * tokens_per_step / min(r["rounds"])
        r["tok_s_median"] = steps * tokens_per_step / statistics.median(r["rounds"])
    return {"paths": out, "tokens_per_step": tokens_per_step, "flops_per_token": flops_per_token,
            "fast": f"{fast.precision} + compile", "fast_why": fast.precision_reason}


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of `repeats` n x n x n matrix products in `dtype` on this machine."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------------------------------
# 2. wall time to quality, one subprocess per training

def train_subprocess(data: str, out: Path, args: list[str]) -> dict:
    """Run `python -m tetragen train gpt ...`; returns the wall time and the final validation metrics."""
    cmd = [sys.executable, "-m", "tetragen", "train", "gpt", "--data", data, "--out", str(out), "--no-progress",
           *args]
    env = dict(os.environ, TETRAGEN_NO_PROGRESS="1",
               TORCHINDUCTOR_CACHE_DIR=str(out.parent / (out.name + "_inductor_cache")))  # compile from scratch
    print("$ " + " ".join(cmd[1:]), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - t0
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    val = [r for r in records if r.get("split") == "val"][-1]
    train_tp = [r["throughput"] for r in records if r.get("split") == "train"]
    config = json.loads((out / "config.json").read_text())
    return {"wall_s": wall, "val_loss": val["val_loss"], "val_bpc": val["val_bpc"], "val_tokens": val["val_tokens"],
            "step": val["step"], "median_tok_s": statistics.median(train_tp) if train_tp else float("nan"),
            "precision": next((r["precision"] for r in records if "precision" in r), "?"),
            "config": config, "args": args}


def describe_recipe(cfg: dict, precision: str) -> str:
    m, t = cfg["model"], cfg["train"]
    return (f"{m['n_layer']} layers/{m['n_head']} heads/{m['n_embd']} dims, {m['activation']}, block {m['block_size']}, "
            f"batch {t['batch_size']}, {t['max_steps']} steps, {t['optimizer']} lr {t['lr']:g} -> {t['min_lr']:g} "
            f"{t['schedule']}, warmup {t['warmup_steps']}, {t['precision']}"
            f"{f' (= {precision})' if precision != t['precision'] else ''}{' + compile' if t['compile'] else ''}")


# ----------------------------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="tinyshakespeare", help="corpus (default tinyshakespeare; see TETRAGEN_DATA)")
    ap.add_argument("--fast-preset", default="fast", help="the recipe raced against baby (default fast)")
    ap.add_argument("--peak-gflops", type=float, default=430.0,
                    help="bf16 matmul peak for MFU (default 430: measured on 2 cores of the reference machine)")
    ap.add_argument("--steps", type=int, default=100, help="steps per timed throughput round (default 100)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating throughput rounds (default 5)")
    ap.add_argument("--skip-training", action="store_true", help="throughput only; no full trainings")
    ap.add_argument("--quick", action="store_true", help="smoke run: 20-step rounds, 50-step trainings, no RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    steps, rounds, warmup = (20, 2, 5) if args.quick else (args.steps, args.rounds, 20)
    short = ["train.max_steps=50", "train.warmup_steps=10"] if args.quick else []

    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak here: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s", flush=True)
    print(f"throughput: baby model, batch 12, {rounds} alternating rounds of {steps} steps", flush=True)
    tp = throughput(args.data, warmup=warmup, steps=steps, rounds=rounds)
    fast_name = tp["fast"]
    eager, fast = tp["paths"]["fp32 eager"], tp["paths"][fast_name]
    ratio = fast["tok_s"] / eager["tok_s"]
    mfu = fast["tok_s"] * tp["flops_per_token"] / (args.peak_gflops * 1e9)
    mfu_eager = eager["tok_s"] * tp["flops_per_token"] / (args.peak_gflops * 1e9)
    for name, r in tp["paths"].items():
        print(f"  {name:15s} {r['tok_s']:8.0f} tok/s (median round {r['tok_s_median']:.0f}; "
              f"warm-up {r['warmup_s']:.1f} s)")
    print(f"  speed-up {ratio:.2f}x   MFU {100 * mfu:.1f}% of {args.peak_gflops:g} GFLOP/s "
          f"(fp32 eager {100 * mfu_eager:.1f}%)", flush=True)

    runs = {}
    if not args.skip_training:
        with tempfile.TemporaryDirectory(prefix="lm_speed_runs_") as tmp:
            runs["baby"] = train_subprocess(args.data, Path(tmp) / "baby", ["--preset", "baby", *END_ONLY, *short])
            runs["fast"] = train_subprocess(args.data, Path(tmp) / "fast", ["--preset", args.fast_preset, *short])
        for name, r in runs.items():
            print(f"  {name}: {r['wall_s']:.1f} s, val loss {r['val_loss']:.4f} nats/char after {r['step']} steps "
                  f"({describe_recipe(r['config'], r['precision'])})", flush=True)
        base, race = runs["baby"], runs["fast"]
        met = race["wall_s"] <= base["wall_s"] and race["val_loss"] <= TARGET_LOSS
        print(f"  fast recipe: val loss {race['val_loss']:.4f} in {race['wall_s']:.1f} s "
              f"(budget {base['wall_s']:.1f} s, target <= {TARGET_LOSS}): {'met' if met else 'NOT met'}", flush=True)

    if args.quick or args.no_write:
        return
    lines = ["## Training speed: GPT on Tiny Shakespeare (`bench/lm_speed.py`)", "", *header(), "",
             f"Throughput of the `baby` model (4 layers/4 heads/128 dims, block 64) at batch 12, through the "
             f"trainer's step; best of {rounds} alternating rounds of {steps} steps after {warmup} warm-up steps. "
             f"MFU against {args.peak_gflops:g} GFLOP/s (bf16 matmul peak), "
             f"{tp['flops_per_token'] / 1e6:.2f} MFLOP per token.", "",
             "| path | tokens/s | median round | MFU |", "|---|---:|---:|---:|"]
    for name, r in tp["paths"].items():
        m = r["tok_s"] * tp["flops_per_token"] / (args.peak_gflops * 1e9)
        lines.append(f"| {name} | {r['tok_s']:.0f} | {r['tok_s_median']:.0f} | {100 * m:.1f}% |")
    lines += ["", f"Speed-up of {fast_name} over fp32 eager: **{ratio:.2f}x**. Matmul peak measured on this machine "
                  f"in the same run: {peak['fp32']:.0f} GFLOP/s fp32, {peak['bf16']:.1f} GFLOP/s bf16 (2048^3 products;"
                  f" train.precision=auto: {tp['fast_why']}); "
                  f"MFU of the fast path against this machine's {fast_name.split()[0]} peak: "
                  f"**{100 * fast['tok_s'] * tp['flops_per_token'] / (peak[fast_name.split()[0]] * 1e9):.1f}%**."]
    if runs:
        lines += ["", "Wall time to quality: each training is `python -m tetragen train gpt --data "
                      f"{args.data} ...` in a subprocess, timed from outside (start-up, compilation with an empty "
                      "cache, final full validation and checkpoint included). Validation loss is over the full "
                      "validation split (nats/char).", "",
                  "| run | arguments | recipe | wall time | val loss | bits/char |", "|---|---|---|---:|---:|---:|"]
        for name, r in runs.items():
            lines.append(f"| {name} | `{' '.join(r['args'])}` | {describe_recipe(r['config'], r['precision'])} | "
                         f"{r['wall_s']:.1f} s | {r['val_loss']:.4f} | {r['val_bpc']:.4f} |")
        lines += ["", f"Target: `{args.fast_preset}` reaches val loss <= {TARGET_LOSS} within the baby run's wall "
                      f"time ({runs['baby']['wall_s']:.1f} s): **{'met' if met else 'not met'}** "
                      f"({runs['fast']['val_loss']:.4f} in {runs['fast']['wall_s']:.1f} s)."]
    write_section("lm_speed", "\n".join(lines))
    print("wrote the lm_speed section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
