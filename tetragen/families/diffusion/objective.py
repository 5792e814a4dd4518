"""Diffusion objective (one phase: the denoiser's weighted regression loss, schedule.py) and evaluation: FID/KID
(+ class accuracy) of samples drawn with the run's default sampler, steps and guidance, in tetragen's evaluator."""
from __future__ import annotations

import torch

from ...eval.image import image_metrics
from ...train.phase import Phase
from .data import assets_of
from .sample import make_pipeline


def objective(model, cfg) -> list[Phase]:
    return [Phase("main", list(model.parameters()), lambda m, batch: m(batch))]


def evaluate(model, data, cfg, device) -> dict:
    """FID and KID of train.eval_samples samples against the validation images (+ class accuracy for a
    conditional model); nothing when eval_samples is 0."""
    if cfg.train.eval_samples == 0:
        return {}
    return sample_metrics(make_pipeline(model, assets_of(data), cfg), data, cfg, device)


def sample_metrics(pipe, data, cfg, device) -> dict:
    """FID and KID (+ class accuracy) of train.eval_samples samples of `pipe` (a latent pipeline's too)."""
    # The first evaluation may train the evaluator, which seeds torch's global generator: keep training's random
    # stream out of it, or a resumed run (evaluator already cached) would draw different noise than a straight one.
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return image_metrics(pipe.sample, data, n=cfg.train.eval_samples, device=device,
                             conditional=pipe.conditional)
