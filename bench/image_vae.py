"""VAEs on Fashion-MNIST for a fixed wall-clock budget: vae, cvae and semi-supervised M2 (a cvae that keeps 5% of the
training labels), then likelihood bounds, FID/KID of prior samples, class accuracy and reconstruction error.

For each run (preset `fmnist`):
1. Probe: time a few training steps of a throw-away trainer to measure seconds per step.
2. Train through `tetragen.train` for max_steps = budget / (seconds per step), which sets the schedule, with
   `train.max_minutes` = the budget as a hard stop in case the probe was optimistic (steps done are reported).
3. Load the run and evaluate it on the Fashion-MNIST test split (fp32, seed 0):
   - -ELBO and the importance-weighted NLL bound with K=100 samples per image, in nats per image (Bernoulli
     likelihood over grey values in [0, 1]), over the whole test split; conditional runs bound -log p(x|y);
   - the bound with K=1000 on the first --iw-subset test images (K=100 over the same images beside it), since
     K=1000 over all 10,000 images would cost as much decoding as the training run;
   - reconstruction MSE (grey values in [0, 1], decoder mean at the posterior mean) and active units;
   - FID/KID of --eval-samples prior samples (z ~ N(0, I), the decoder's mean) against the test split, with the
     train-vs-test and 3x3-blur-vs-test references `tetragen eval` prints (tetragen.eval.image.evaluate_images),
     and for conditional runs the evaluator's class accuracy of the samples;
   - M2: the test accuracy of its classifier q(y|x).
4. Write sample grids, reconstructions and a walk between two test images to bench/_work/image_vae/, and the table to
   the image_vae section of bench/RESULTS.md (a --quick run writes nothing there).

Targets for the vae: FID at most the 3x3-blur reference, and test -ELBO at most 240 nats/image.

    python bench/image_vae.py                 # 10 minutes per run (vae, cvae, m2), 10000 samples for FID/KID
    python bench/image_vae.py --quick         # smoke run: 15 s per run, small evaluation, RESULTS.md untouched
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import header, seconds_per_step, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import load_data  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.eval.classifier import load_evaluator  # noqa: E402
from tetragen.eval.image import evaluate_images  # noqa: E402
from tetragen.families.vae.objective import likelihood_metrics  # noqa: E402
from tetragen.sample.images import write_png  # noqa: E402

WORK = ROOT / "bench" / "_work" / "image_vae"
PRESET = "fmnist"
DATA = "fashion-mnist"
LABEL_FRACTION = 0.05
RUNS = {  # name -> (family, overrides)
    "vae": ("vae", []),
    "cvae": ("cvae", []),
    # each unlabelled image is decoded once per class (10x the decoder work of a cvae row); at batch 64 (64 labelled
    # + 64 unlabelled images a step) the step is ~2.7x cheaper than at 128, so the budget buys ~35% more images
    "m2": ("cvae", [f"data.label_fraction={LABEL_FRACTION}", "train.batch_size=64"]),
}
TARGET_NEG_ELBO = 240.0


def train_run(name: str, budget_s: float, args) -> tuple[Path, dict]:
    family, extra = RUNS[name]
    base = [f"train.seed={args.seed}", "train.eval_every=0", "train.eval_samples=0", "model.preview_images=100",
            *extra]
    sps = seconds_per_step(family, PRESET, DATA, base, args.warmup, args.probe_steps)
    max_steps = max(2, int(budget_s / sps))
    warmup = build_run_config(family, preset=PRESET).train.warmup_steps
    if warmup >= max_steps:  # a smoke run's few steps: a shorter warm-up, so the schedule still fits
        base.append(f"train.warmup_steps={max_steps // 10}")
    out = WORK / name
    if out.exists():
        shutil.rmtree(out)
    print(f"{name}: {sps * 1000:.0f} ms/step in the probe -> {max_steps} steps for {budget_s:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    # the probe sets the schedule's length; train.max_minutes holds the run to the budget if the probe was optimistic
    tetragen.train(family, DATA, out, preset=PRESET, progress=False,
                   overrides=[*base, f"train.max_steps={max_steps}", f"train.save_every={max_steps}",
                              f"train.max_minutes={budget_s / 60:g}"])
    train_s = time.perf_counter() - t0
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    steps_done = records[-1]["step"]
    return out, {"run": name, "family": family, "steps": steps_done, "planned_steps": max_steps,
                 "train_min": train_s / 60, "probe_ms_step": sps * 1000}


def evaluate_run(out: Path, info: dict, args) -> dict:
    pipe = tetragen.load(out)
    cfg = pipe.config
    data = load_data(cfg)
    n_train = len(data.train.labels)
    per_step = cfg.train.batch_size * (2 if data.unlabelled is not None else 1)  # M2 also draws unlabelled images
    seen = info["steps"] * per_step
    info.update({"epochs": seen / n_train, "train_img_s": seen / (info["train_min"] * 60),
                 "label_fraction": cfg.data.label_fraction,
                 "labelled_images": len(data.labelled) if data.labelled is not None else n_train})
    t0 = time.perf_counter()
    full = likelihood_metrics(pipe.model, data, pipe.device, iw_samples=100, seed=0, limit=args.test_images)
    sub100 = likelihood_metrics(pipe.model, data, pipe.device, iw_samples=100, seed=0, limit=args.iw_subset)
    sub1000 = likelihood_metrics(pipe.model, data, pipe.device, iw_samples=1000, seed=0, limit=args.iw_subset)
    info["likelihood_s"] = time.perf_counter() - t0
    info.update({"neg_elbo": full["neg_elbo"], "nll_k100": full["nll_iw"], "kl": full["kl"],
                 "recon_mse": full["recon_mse"], "active_units": full["active_units"],
                 "latent_dim": cfg.model.latent_dim, "test_images": full["test_images"],
                 "subset_images": sub1000["test_images"], "subset_nll_k100": sub100["nll_iw"],
                 "subset_nll_k1000": sub1000["nll_iw"]})
    if "classifier_acc" in full:
        info["classifier_acc"] = full["classifier_acc"]
    t0 = time.perf_counter()
    info.update(evaluate_images(pipe, data, n=args.eval_samples, seed=0))
    info["image_eval_s"] = time.perf_counter() - t0

    name = info["run"]  # pictures: prior samples (one column per class when conditional), reconstructions, a walk
    write_png(WORK / f"{name}_samples.png", pipe.sample(100, seed=0), columns=10)
    idx = np.arange(50)
    recon = pipe.reconstruct(data.test.images[idx], data.test.labels[idx] if pipe.conditional else None)
    pairs = np.stack([data.test.images[idx], recon], axis=1).reshape(-1, *recon.shape[1:])
    write_png(WORK / f"{name}_reconstructions.png", pairs, columns=10)
    ends = data.test.images[[0, 1]]
    walk = pipe.interpolate_images(ends, 10, labels=data.test.labels[[0, 1]] if pipe.conditional else None)
    write_png(WORK / f"{name}_walk.png", walk, columns=10)
    return info


def table(results: list[dict]) -> str:
    k = int(results[0]["subset_images"])
    lines = [f"| run | labels | steps | epochs | train min | train img/s | -ELBO | NLL K=100 | NLL K=100 / K=1000 "
             f"(first {k}) | KL | active units | recon MSE | FID | KID (± std) | sample class acc | "
             f"classifier acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        labels = f"{r['label_fraction']:.0%} ({r['labelled_images']})"
        acc = f"{r['class_acc']:.3f}" if "class_acc" in r else "—"
        cls = f"{r['classifier_acc']:.3f}" if "classifier_acc" in r else "—"
        lines.append(f"| {r['run']} | {labels} | {r['steps']} | {r['epochs']:.1f} | {r['train_min']:.1f} | "
                     f"{r['train_img_s']:.0f} | {r['neg_elbo']:.2f} | {r['nll_k100']:.2f} | "
                     f"{r['subset_nll_k100']:.2f} / {r['subset_nll_k1000']:.2f} | {r['kl']:.2f} | "
                     f"{int(r['active_units'])} of {r['latent_dim']} | {r['recon_mse']:.5f} | {r['fid']:.3f} | "
                     f"{r['kid']:.4f} ± {r['kid_std']:.4f} | {acc} | {cls} |")
    return "\n".join(lines)


def verdict(results: list[dict]) -> list[str]:
    out = []
    for r in results:
        if r["run"] != "vae":
            continue
        fid_ok, elbo_ok = r["fid"] <= r["ref_blur_fid"], r["neg_elbo"] <= TARGET_NEG_ELBO
        out.append(f"Targets (vae): FID {r['fid']:.2f} <= 3x3-blur reference {r['ref_blur_fid']:.2f}: "
                   f"**{'met' if fid_ok else 'not met'}**; test -ELBO {r['neg_elbo']:.2f} <= {TARGET_NEG_ELBO:g} "
                   f"nats/image: **{'met' if elbo_ok else 'not met'}**.")
    for r in results:
        if "classifier_acc" in r:
            out.append(f"M2 with {r['label_fraction']:.0%} of the labels ({r['labelled_images']} images): classifier "
                       f"test accuracy **{r['classifier_acc']:.4f}**.")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per run (default 10)")
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), help="which runs (default all)")
    ap.add_argument("--eval-samples", type=int, default=10000,
                    help="prior samples scored with FID/KID (default 10000, as `tetragen eval`)")
    ap.add_argument("--test-images", type=int, default=0,
                    help="test images for -ELBO and the K=100 bound (default 0: all 10000)")
    ap.add_argument("--iw-subset", type=int, default=1000,
                    help="first N test images for the K=1000 bound (default 1000)")
    ap.add_argument("--probe-steps", type=int, default=20, help="timed steps of the throughput probe")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before the probe")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 15 s per run, 500 samples and test images, nothing written to RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.eval_samples, args.test_images, args.iw_subset = 0.25, 500, 500, 20
        args.probe_steps, args.warmup = 2, 1
    budget_s = args.minutes * 60
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = build_run_config("vae", preset=PRESET)
    cfg.data.source = DATA
    load_evaluator(load_data(cfg))  # trained once and cached: its first-time cost stays out of the timings
    results = []
    for name in args.runs:
        out, info = train_run(name, budget_s, args)
        results.append(evaluate_run(out, info, args))
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in results[-1].items()}))
    r0 = results[0]
    body = "\n".join([
        "## VAEs on Fashion-MNIST (bench/image_vae.py)", "", *header(),
        f"- budget: {args.minutes:g} min of training per run (steps from a {args.probe_steps}-step throughput probe, "
        f"`train.max_minutes` as the hard stop), preset `{PRESET}`; `m2` is the cvae with "
        f"`data.label_fraction={LABEL_FRACTION} train.batch_size=64` (semi-supervised M2, classifier_alpha 0.1 as in "
        f"the paper; 64 labelled and 64 unlabelled images a step, each unlabelled one decoded once per class)",
        f"- likelihoods in nats per image, Bernoulli over grey values in [0, 1] (conditional runs: -log p(x|y)); "
        f"-ELBO and NLL K=100 over {int(r0['test_images'])} test images; K=1000 over the first "
        f"{int(r0['subset_images'])} only (its cost), with K=100 on the same images beside it",
        f"- FID/KID of {args.eval_samples} prior samples vs {r0['n_real']} test images in the features of tetragen's "
        f"own Fashion-MNIST evaluator (test accuracy {r0['evaluator_test_acc']:.4f}), so they compare between "
        f"tetragen runs, not with published Inception FIDs; references at the same n: train vs test FID "
        f"{r0['ref_train_fid']:.3f} (KID {r0['ref_train_kid']:.4f}), 3x3-blur vs test FID {r0['ref_blur_fid']:.3f} "
        f"(KID {r0['ref_blur_kid']:.4f}); sample class acc: the evaluator's reading of the class asked of a "
        f"conditional run; classifier acc: M2's own q(y|x) on the test split",
        "- epochs: training images drawn / 60000 (m2 draws a labelled and an unlabelled image per batch row, so its "
        "labelled images are each seen about 20x as often as the unlabelled ones)",
        "", table(results), "", *verdict(results), "",
        "Pictures (seed 0): bench/_work/image_vae/RUN_samples.png (10 per row; one class per column when "
        "conditional), RUN_reconstructions.png (test image, reconstruction), RUN_walk.png (test images 0 to 1)",
    ])
    print(body)
    if not (args.quick or args.no_write):
        write_section("image_vae", body)
        print(f"wrote the image_vae section of {Path('bench/RESULTS.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
