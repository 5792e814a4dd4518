"""Video from prompts on moving-fashion-mnist: tetragen's families that learn grids, trained for a fixed budget each,
their prompted clips scored by the shipped video evaluator against its reference rows.

For each family (default: cgan with preset `fmnist`; a clip is learnt as a 32x32 grid with a channel per frame):
1. Train through `tetragen.train` with `train.budget_minutes` (the trainer plans the steps and re-plans as it goes).
2. `tetragen.api.evaluate` (as `tetragen eval`) with `--eval-samples` prompted clips (every class in turn, a class
   being a garment and its motion): Fréchet distance and KID in the evaluator's features, class accuracy, and apart
   garment accuracy and motion accuracy; reference rows: train vs test, the test clips frozen on their first frame,
   the test clips with their frames shuffled.
3. Clips made per second (batch 16).
4. Write the table to the `video` section of bench/RESULTS.md (a --quick run writes nothing there).

    python bench/video.py                  # 10 minutes per family, 2000 clips
    python bench/video.py --quick          # smoke run: 0.2 minutes per family, 100 clips, RESULTS.md untouched

Not yet here: a video tokenizer (3-D convolutions) with a prompt-to-clip prior, per-frame FID by the image
evaluator and a temporal-consistency figure.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, per_second, train_for, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import evaluate  # noqa: E402

WORK = ROOT / "bench" / "_work" / "video"
DATA = "moving-fashion-mnist"
FAMILIES = {"cgan": "fmnist", "diffusion": "fmnist"}
SPEED_BATCH = 16


def run_family(family: str, preset: str, args) -> dict:
    out = WORK / family
    steps, train_s = train_for(family, DATA, out, preset, args.minutes, args.seed)
    metrics, lines = evaluate(out, n=args.eval_samples, seed=0)
    print("\n".join(lines), flush=True)
    pipe = tetragen.load(out)
    per_s = per_second(pipe, len, SPEED_BATCH, args.speed_batches)
    WORK.mkdir(parents=True, exist_ok=True)
    from tetragen.modalities.video.show import write_gif_output
    write_gif_output(WORK / f"{family}_sneaker_left.gif", pipe.sample(4, seed=1, prompt="a sneaker moving left"))
    return {"family": family, "preset": preset, "steps": steps, "train_s": train_s, "clips_per_s": per_s,
            **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


def table(results: list[dict]) -> str:
    r0 = results[0]
    lines = ["| family (preset) | steps | train min | FD (video) | KID | class acc | garment acc | motion acc | "
             "clips/s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['family']} ({r['preset']}) | {r['steps']} | {r['train_s'] / 60:.1f} | {r['fid']:.2f} | "
                     f"{r['kid']:.4f} | {r['class_acc']:.3f} | {r['garment_acc']:.3f} | {r['motion_acc']:.3f} | "
                     f"{r['clips_per_s']:.1f} |")
    lines += ["", f"References at the same n ({int(r0['n'])} clips vs {int(r0['n_real'])} test clips): train vs test "
              f"FD {r0['ref_train_fid']:.2f}, first frame held {r0['ref_still_fid']:.2f}, frames shuffled "
              f"{r0['ref_shuffled_fid']:.2f}; the evaluator reads {r0['evaluator_test_acc']:.3f} of the real test "
              f"clips as their class (garment and motion)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per family (default 10)")
    ap.add_argument("--eval-samples", type=int, default=2000, help="prompted clips scored per family")
    ap.add_argument("--speed-batches", type=int, default=10, help="batches of 16 clips timed for clips/s")
    ap.add_argument("--families", default="cgan", help="comma-separated, of: " + ", ".join(FAMILIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a smoke run; RESULTS.md is left untouched")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.speed_batches = 0.2, 100, 2
    families = args.families.split(",")
    if unknown := [f for f in families if f not in FAMILIES]:
        raise SystemExit(f"--families: {unknown[0]!r} is not one of {', '.join(FAMILIES)}")
    results = []
    for family in families:
        results.append(run_family(family, FAMILIES[family], args))
        print(json.dumps(results[-1]), flush=True)  # kept in the log should a later family be stopped
    body = "\n".join(["## Video: moving-fashion-mnist, prompted clips", "", *header(), "", table(results)])
    print(body)
    if not args.quick:
        write_section("video", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
