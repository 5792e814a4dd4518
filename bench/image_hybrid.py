"""Prompt -> image on Fashion-MNIST for a fixed wall-clock budget: a vqvae tokenizer, then a causal and a masked
prior on its tokens; and VAE-GAN against the plain VAE at the same budget.

1. Tokenizer (`vqvae`, preset `fmnist`): trained for --tokenizer-minutes (steps from a throughput probe,
   `train.max_minutes` as the hard stop). Reported: test reconstruction MSE (grey values in [0, 1]), the FID/KID of
   --eval-samples test reconstructions against those images, codebook usage and perplexity over the test split.
2. Priors (`t2i`, preset `fmnist`, `model.prior=causal` and `=masked`), each for --prior-minutes on the same frozen
   tokenizer: one pipeline is the tokenizer's minutes plus one prior's. Reported, in tetragen's evaluator:
   - FID/KID and prompted-class accuracy of --eval-samples class-prompted samples (`--class-prompts`);
   - attribute adherence: for each class, --attribute-samples samples asked "dark" / "light" / "small" / "large"
     (the canonical caption with that word); the share whose measured attribute falls in the asked tercile (the
     run's own cut points, per class), against 1/3 by chance;
   - images/s at sampling (200 images, batch 64, one process), and the held-out-phrasing class accuracy (captions
     in phrasings no training step used).
3. VAE-GAN vs VAE (`--parts vaegan`): both for --gan-minutes, FID/KID of --eval-samples prior samples.

    python bench/image_hybrid.py                       # 5 + 10 + 10 min, then 10 + 10 min
    python bench/image_hybrid.py --parts hybrid        # the prompt -> image part only
    python bench/image_hybrid.py --quick               # smoke run, RESULTS.md untouched
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
from _results import adherence, header, seconds_per_step, write_section  # noqa: E402

import tetragen  # noqa: E402
from tetragen.api import load_data  # noqa: E402
from tetragen.config import build_run_config  # noqa: E402
from tetragen.data.captions import CaptionBuilder  # noqa: E402
from tetragen.eval.classifier import load_evaluator  # noqa: E402
from tetragen.eval.image import evaluate_images, reconstruction_distances  # noqa: E402
from tetragen.sample.images import write_png  # noqa: E402

WORK = ROOT / "bench" / "_work" / "image_hybrid"
DATA = "fashion-mnist"
PRESET = "fmnist"


def train(name: str, family: str, minutes: float, extra: list[str], args, probe_extra: list[str] = ()) -> dict:
    """Train `family` for `minutes`; `probe_extra`: overrides of the throughput probe only (a vqgan's probe times
    steps with its discriminator on, the dearer half of its run)."""
    base = [f"train.seed={args.seed}", "train.eval_every=0", "train.eval_samples=0", *extra]
    sps = seconds_per_step(family, PRESET, DATA, [*base, *probe_extra], args.warmup, args.probe_steps)
    steps = max(2, int(minutes * 60 / sps))
    warmup = build_run_config(family, preset=PRESET, overrides=extra).train.warmup_steps
    if warmup >= steps:
        base.append(f"train.warmup_steps={steps // 10}")
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    print(f"{name}: {sps * 1000:.0f} ms/step -> {steps} steps for {minutes:g} min", file=sys.stderr)
    t0 = time.perf_counter()
    tetragen.train(family, DATA, out, preset=PRESET, progress=False,
                   overrides=[*base, f"train.max_steps={steps}", f"train.save_every={steps}",
                              f"train.max_minutes={minutes:g}"])
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    precision = [r["precision"] for r in records if "precision" in r]
    return {"run": name, "family": family, "out": out, "steps": records[-1]["step"], "planned": steps, "sps": sps,
            "train_min": (time.perf_counter() - t0) / 60, "precision": precision[-1] if precision else "?"}


def eval_tokenizer(info: dict, args) -> dict:
    pipe = tetragen.load(info["out"])
    data = load_data(pipe.config)
    metrics, _ = pipe.evaluate(data, n=args.eval_samples, seed=0)
    info.update(metrics)
    idx = np.arange(50)
    pairs = np.stack([data.test.images[idx], pipe.reconstruct(data.test.images[idx])], 1).reshape(-1, 28, 28, 1)
    write_png(WORK / f"{info['run']}_reconstructions.png", pairs, columns=10)
    return info


def eval_prior(info: dict, args) -> dict:
    pipe = tetragen.load(info["out"])
    data = load_data(pipe.config, pipe.assets)
    info["epochs"] = info["steps"] * pipe.config.train.batch_size / len(data.pool)  # training images seen / there
    info.update(evaluate_images(pipe, data.images, n=args.eval_samples, seed=0))
    t0 = time.perf_counter()
    pipe.sample(200, seed=0)
    info["images_per_s"] = 200 / (time.perf_counter() - t0)
    info.update(adherence(pipe, args.attribute_samples))
    held = CaptionBuilder(pipe.classes, "held-out")
    ev = load_evaluator(data.images)
    n = args.attribute_samples * pipe.num_classes
    labels = np.arange(n) % pipe.num_classes
    images = pipe.sample(n, prompt=[held.class_prompt(int(k)) for k in labels], seed=7)
    info["heldout_class_acc"] = float(np.mean(ev.predict(images) == labels))
    grid = pipe.sample(100, seed=0, labels=np.arange(100) % 10)
    write_png(WORK / f"{info['run']}_class_prompts.png", grid, columns=10)
    return info


def eval_generator(info: dict, args) -> dict:
    pipe = tetragen.load(info["out"])
    data = load_data(pipe.config)
    info.update(evaluate_images(pipe, data, n=args.eval_samples, seed=0))
    write_png(WORK / f"{info['run']}_samples.png", pipe.sample(100, seed=0), columns=10)
    return info


# the tokenizers compared: (name, family, overrides); the first is the fmnist preset as it stands
TOKENIZERS = [
    ("vqvae 7x7, 512 codes", "vqvae", []),
    ("vqvae 7x7, 256 codes", "vqvae", ["model.codebook_size=256"]),
    ("vqvae 7x7, 1024 codes", "vqvae", ["model.codebook_size=1024"]),
    ("vqvae 14x14, 512 codes", "vqvae", ["model.downsample=2"]),
    ("vqgan 7x7, 512 codes", "vqgan", ["model.disc_start_fraction=0.4"]),
]
# the causal priors compared on the preset tokenizer: (name, overrides); the last two are the shapes of t2i's fmnist
# and fmnist-small presets. Dropout: a CPU budget of minutes sees an epoch or two of the training captions, and on CPU
# a dropout mask costs time of its own and moves attention off its fused kernel
PRIORS = [
    ("6 layers x 192, dropout 0.1", ["model.dropout=0.1"]),
    ("4 layers x 128, dropout 0.1", ["model.n_layer=4", "model.n_embd=128", "model.dropout=0.1"]),
    ("6 layers x 192, no dropout", ["model.dropout=0"]),
    ("4 layers x 128, no dropout", ["model.n_layer=4", "model.n_embd=128", "model.dropout=0"]),
]


def tokenizers_part(args) -> str:
    """Tokens per image vs reconstruction quality vs what a prior pays: each tokenizer for --compare-minutes, then
    a causal prior's (t2i fmnist) seconds per training step on its tokens."""
    rows = []
    for k, (name, family, extra) in enumerate(TOKENIZERS):
        probe = ["model.disc_start=0", "model.disc_start_fraction=0"] if family == "vqgan" else []
        info = eval_tokenizer(train(f"compare_tok{k}", family, args.compare_minutes, extra, args, probe), args)
        cfg = tetragen.load(info["out"]).config.model
        info["tokens"] = (cfg.image_size // cfg.downsample) ** 2
        info["bits"] = info["tokens"] * np.log2(cfg.codebook_size)
        info["prior_sps"] = seconds_per_step("t2i", PRESET, DATA, [f"model.tokenizer_run={info['out']}",
                                                                    f"train.seed={args.seed}"],
                                             args.warmup, args.probe_steps)
        info["name"] = name
        rows.append(info)
    lines = ["## Image tokenizers compared on Fashion-MNIST (bench/image_hybrid.py --parts tokenizers)", "",
             *header(), f"- each tokenizer trained for {args.compare_minutes:g} min (preset `{PRESET}` with the "
             f"overrides named; steps from a throughput probe, a vqgan's with its discriminator on; the vqgan's GAN "
             f"switches on at 40% of its steps); test recon MSE, recon FID/KID over {args.eval_samples} test "
             f"images; prior cost: seconds per training step of t2i's `{PRESET}` causal prior on that tokenizer's "
             f"tokens (batch 64)", "",
             "| tokenizer | tokens/image | bits/image | steps | recon MSE | recon FID | codebook usage | perplexity | "
             "prior s/step |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['tokens']} | {r['bits']:.0f} | {r['steps']} | {r['recon_mse']:.5f} | "
                     f"{r['recon_fid']:.3f} | {r['codebook_usage']:.3f} | {r['codebook_perplexity']:.1f} | "
                     f"{r['prior_sps']:.3f} |")
    return "\n".join(lines)


def priors_part(args) -> str:
    """Causal prior sizes and dropout at the same budget on the preset tokenizer (trained for --tokenizer-minutes)."""
    tok = WORK / "tokenizer"
    if not (tok / "model.safetensors").is_file():
        train("tokenizer", "vqvae", args.tokenizer_minutes, [], args)
    rows = []
    for k, (name, extra) in enumerate(PRIORS):
        info = eval_prior(train(f"compare_prior{k}", "t2i", args.prior_compare_minutes,
                                ["model.prior=causal", f"model.tokenizer_run={tok}", *extra], args), args)
        info["name"] = name
        info["params"] = sum(p.numel() for p in tetragen.load(info["out"]).model.parameters())
        rows.append(info)
    lines = ["## Prompt -> image priors compared: size and dropout (bench/image_hybrid.py --parts priors)", "",
             *header(),
             f"- causal t2i priors, {args.prior_compare_minutes:g} min each, on the vqvae `{PRESET}` tokenizer of "
             f"bench/_work/image_hybrid/tokenizer; FID/KID of {args.eval_samples} class-prompted samples, "
             f"adherence over {args.attribute_samples} samples per class and word (chance 1/3)", "",
             "| prior | parameters | steps | epochs | FID | KID | prompted-class acc | held-out phrasing acc | "
             "dark/light | small/large | images/s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['steps']} | {r['epochs']:.2f} | {r['fid']:.3f} | "
                     f"{r['kid']:.4f} | "
                     f"{r['class_acc']:.3f} | {r['heldout_class_acc']:.3f} | {r['adherence_brightness']:.3f} | "
                     f"{r['adherence_size']:.3f} | {r['images_per_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", nargs="+", default=["hybrid", "vaegan"],
                    choices=["hybrid", "vaegan", "tokenizers", "priors"])
    ap.add_argument("--compare-minutes", type=float, default=2.5,
                    help="--parts tokenizers: minutes of each tokenizer compared")
    ap.add_argument("--prior-compare-minutes", type=float, default=5.0,
                    help="--parts priors: minutes of each prior size compared")
    ap.add_argument("--tokenizer-minutes", type=float, default=5.0)
    ap.add_argument("--prior-minutes", type=float, default=10.0)
    ap.add_argument("--gan-minutes", type=float, default=10.0)
    ap.add_argument("--eval-samples", type=int, default=10000)
    ap.add_argument("--attribute-samples", type=int, default=20, help="samples per class and attribute word")
    ap.add_argument("--probe-steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--quick", action="store_true", help="smoke run: seconds per run, nothing written")
    args = ap.parse_args()
    if args.quick:
        args.tokenizer_minutes = args.prior_minutes = args.gan_minutes = 0.2
        args.compare_minutes = args.prior_compare_minutes = 0.2
        args.eval_samples, args.attribute_samples, args.probe_steps, args.warmup = 200, 2, 2, 1
    WORK.mkdir(parents=True, exist_ok=True)
    cfg = build_run_config("vae", preset=PRESET)
    cfg.data.source = DATA
    load_evaluator(load_data(cfg))  # trained or shipped; its cost stays out of the timings
    sections = {}  # each part writes its own section of RESULTS.md, so one part's rerun keeps the other's figures
    if "hybrid" in args.parts:
        lines = ["## Prompt -> image on Fashion-MNIST (bench/image_hybrid.py)", "", *header()]
        tok = eval_tokenizer(train("tokenizer", "vqvae", args.tokenizer_minutes, [], args), args)
        priors = [eval_prior(train(p, "t2i", args.prior_minutes, [f"model.prior={p}",
                                                                   f"model.tokenizer_run={tok['out']}"], args), args)
                  for p in ("causal", "masked")]
        r = priors[0]
        lines += [
            f"- one pipeline = tokenizer {args.tokenizer_minutes:g} min + prior {args.prior_minutes:g} min (both "
            f"priors share the tokenizer); steps from a throughput probe, `train.max_minutes` as the hard stop",
            f"- tokenizer (vqvae `{PRESET}`): {tok['steps']} steps in {tok['train_min']:.1f} min ({tok['precision']}); "
            f"test recon MSE **{tok['recon_mse']:.5f}**, recon FID **{tok['recon_fid']:.3f}** (KID "
            f"{tok['recon_kid']:.4f}) over {int(tok['recon_n'])} test images, codebook usage "
            f"**{tok['codebook_usage']:.3f}**, perplexity {tok['codebook_perplexity']:.1f}",
            f"- FID/KID of {args.eval_samples} class-prompted samples vs {r['n_real']} test images in tetragen's "
            f"evaluator (test accuracy {r['evaluator_test_acc']:.4f}); references: train vs test FID "
            f"{r['ref_train_fid']:.3f}, 3x3-blur vs test FID {r['ref_blur_fid']:.3f}",
            f"- adherence: {args.attribute_samples} samples per class and word; chance is 1/3",
            "", "| prior | steps | train min | FID | KID | prompted-class acc | held-out phrasing acc | "
                "dark/light adherence | small/large adherence | images/s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for p in priors:
            lines.append(f"| {p['run']} | {p['steps']} | {p['train_min']:.1f} | {p['fid']:.3f} | {p['kid']:.4f} | "
                         f"{p['class_acc']:.3f} | {p['heldout_class_acc']:.3f} | {p['adherence_brightness']:.3f} | "
                         f"{p['adherence_size']:.3f} | {p['images_per_s']:.1f} |")
        lines.append("")
        for p in priors:
            lines.append(f"Targets ({p['run']}): class acc {p['class_acc']:.3f} >= 0.85 "
                         f"**{'met' if p['class_acc'] >= 0.85 else 'not met'}**; FID {p['fid']:.3f} <= half the "
                         f"blur reference {r['ref_blur_fid'] / 2:.3f} **{'met' if p['fid'] <= r['ref_blur_fid'] / 2 else 'not met'}**; "
                         f"adherence >= 0.6 **{'met' if min(p['adherence_brightness'], p['adherence_size']) >= 0.6 else 'not met'}**; "
                         f"codebook usage {tok['codebook_usage']:.3f} >= 0.8 "
                         f"**{'met' if tok['codebook_usage'] >= 0.8 else 'not met'}**.")
        lines += ["", "Pictures: bench/_work/image_hybrid/ (class-prompted grids, one class per column; "
                      "tokenizer reconstructions)"]
        sections["image_hybrid"] = "\n".join(lines)
    if "vaegan" in args.parts:
        lines = ["## VAE-GAN vs VAE on Fashion-MNIST (bench/image_hybrid.py --parts vaegan)", "", *header()]
        runs = [eval_generator(train(f, f, args.gan_minutes, [], args), args) for f in ("vae", "vaegan")]
        lines += [f"- VAE-GAN vs VAE, {args.gan_minutes:g} min each (preset `{PRESET}`), FID/KID of "
                  f"{args.eval_samples} prior samples", "",
                  "| family | steps | train min | FID | KID |", "|---|---:|---:|---:|---:|"]
        for g in runs:
            lines.append(f"| {g['run']} | {g['steps']} | {g['train_min']:.1f} | {g['fid']:.3f} | {g['kid']:.4f} |")
        lines += ["", f"Target: VAE-GAN FID below the VAE's: "
                      f"**{'met' if runs[1]['fid'] < runs[0]['fid'] else 'not met'}**.", "",
                  "Pictures: bench/_work/image_hybrid/vae_samples.png, vaegan_samples.png"]
        sections["image_vaegan"] = "\n".join(lines)
    if "tokenizers" in args.parts:
        sections["image_tokenizers"] = tokenizers_part(args)
    if "priors" in args.parts:
        sections["image_priors"] = priors_part(args)
    for name, body in sections.items():
        print(body)
        if not args.quick:
            write_section(name, body)


if __name__ == "__main__":
    main()
