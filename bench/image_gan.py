"""GANs on Fashion-MNIST for a fixed wall-clock budget: DCGAN and cGAN, then FID, KID and class accuracy.

For each family (preset `fmnist`):
1. Probe: build the trainer and time a few training steps (after warm-up steps) to measure seconds per step.
2. Train through `tetragen.train` for max_steps = budget / (seconds per step), which sets the schedule, with
   `train.max_minutes` = the budget as a hard stop in case the probe was optimistic (steps done are reported).
3. Load the run (EMA weights) and score `--eval-samples` images with tetragen.eval.image.image_metrics (FID and KID
   in the features of tetragen's Fashion-MNIST evaluator, class accuracy for the cGAN), and time sampling.
4. Write a sample grid to bench/_work/image_gan/FAMILY.png and the table to the image_gan section of
   bench/RESULTS.md (a --quick run writes nothing there).

    python bench/image_gan.py                 # 10 minutes per family, 5000 evaluation samples
    python bench/image_gan.py --quick         # smoke run: 15 seconds per family, 500 samples, RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, seconds_per_step, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import load_data  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.eval.classifier import load_evaluator  # noqa: E402
from tetragen.eval.image import image_metrics  # noqa: E402
from tetragen.sample.images import write_png  # noqa: E402

WORK = ROOT / "bench" / "_work" / "image_gan"
PRESET = "fmnist"
DATA = "fashion-mnist"


def run_family(family: str, budget_s: float, args) -> dict:
    base = [f"train.seed={args.seed}", "train.eval_every=0", "train.eval_samples=0", "model.preview_images=64"]
    sps = seconds_per_step(family, PRESET, DATA, base, args.warmup, args.probe_steps)
    max_steps = max(2, int(budget_s / sps))
    out = WORK / family
    if out.exists():
        shutil.rmtree(out)
    print(f"{family}: {sps * 1000:.0f} ms/step in the probe -> {max_steps} steps for {budget_s:.0f} s",
          file=sys.stderr)
    t0 = time.perf_counter()
    # the probe sets the schedule's length; train.max_minutes holds the run to the budget if the probe was optimistic
    tetragen.train(family, DATA, out, preset=PRESET, progress=False,
                   overrides=[*base, f"train.max_steps={max_steps}", f"train.save_every={max_steps}",
                              f"train.max_minutes={budget_s / 60:g}"])
    train_s = time.perf_counter() - t0
    steps_done = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()][-1]["step"]

    pipe = tetragen.load(out)  # the EMA weights, as users get them
    pipe.sample(64, seed=0)  # warm-up
    t0 = time.perf_counter()
    pipe.sample(args.speed_samples, seed=1)
    sample_rate = args.speed_samples / (time.perf_counter() - t0)
    write_png(WORK / f"{family}.png", pipe.sample(100, seed=0), columns=10)

    data = load_data(pipe.config)
    t0 = time.perf_counter()
    metrics = image_metrics(pipe.sample, data, n=args.eval_samples, conditional=pipe.conditional)
    eval_s = time.perf_counter() - t0
    cfg = pipe.config
    return {"family": family, "steps": steps_done, "planned_steps": max_steps, "train_min": train_s / 60, "probe_ms_step": sps * 1000,
            "train_img_s": max_steps * cfg.train.batch_size / train_s, "sample_img_s": sample_rate,
            "eval_s": eval_s, **metrics}


def table(results: list[dict]) -> str:
    lines = ["| family | steps | train min | train img/s | FID | KID (± std) | class acc | sampling img/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        acc = f"{r['class_acc']:.3f}" if "class_acc" in r else "—"
        lines.append(f"| {r['family']} | {r['steps']} | {r['train_min']:.1f} | {r['train_img_s']:.0f} | "
                     f"{r['fid']:.3f} | {r['kid']:.4f} ± {r['kid_std']:.4f} | {acc} | {r['sample_img_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per family (default 10)")
    ap.add_argument("--families", nargs="+", default=["dcgan", "cgan"])
    ap.add_argument("--eval-samples", type=int, default=5000, help="generated images scored (default 5000)")
    ap.add_argument("--speed-samples", type=int, default=2000, help="images timed for sampling speed")
    ap.add_argument("--probe-steps", type=int, default=20, help="timed steps of the throughput probe")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before the probe")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--quick", action="store_true", help="smoke run: 15 s per family, 500 samples, nothing written")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.speed_samples = 0.25, 500, 200
        args.probe_steps, args.warmup = 3, 2
    budget_s = args.minutes * 60
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = build_run_config(args.families[0], preset=PRESET)
    cfg.data.source = DATA
    load_evaluator(load_data(cfg))  # trained once and cached: its first-time cost stays out of the timings
    results = [run_family(f, budget_s, args) for f in args.families]
    for r in results:
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}))
    body = "\n".join([
        "## GANs on Fashion-MNIST (bench/image_gan.py)", "", *header(),
        f"- budget: {args.minutes:g} min of training per family (steps from a {args.probe_steps}-step throughput "
        f"probe), preset `{PRESET}`; metrics on {args.eval_samples} samples of the EMA generator vs the test split,",
        "  in the features of tetragen's own Fashion-MNIST evaluator (tetragen/eval/classifier.py), so the numbers "
        "compare between tetragen runs, not with published Inception FIDs",
        "", table(results), "",
        "Sample grids (seed 0, 10 per row; for the cGAN each column is one class): bench/_work/image_gan/dcgan.png, "
        "cgan.png",
    ])
    print(body)
    if not (args.quick or args.no_write):
        write_section("image_gan", body)
        print(f"wrote the image_gan section of {Path('bench/RESULTS.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
