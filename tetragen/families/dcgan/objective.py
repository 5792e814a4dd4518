"""GAN training objective (two phases: the discriminator on detached fakes, then the generator) and evaluation."""
from __future__ import annotations

import torch

from ...eval.image import image_metrics
from ...sample.images import ImagePipeline
from ...train.phase import Phase


def objective(model, cfg) -> list[Phase]:
    # Both losses go through the (possibly DDP-wrapped) module's forward, so DDP sees and syncs each phase.
    def disc_loss(m, batch):
        return m(batch, phase="disc")

    def gen_loss(m, batch):
        return m(batch, phase="gen")
    return [Phase("disc", list(model.discriminator.parameters()), disc_loss, lr_scale=cfg.model.d_lr_scale),
            Phase("gen", list(model.generator.parameters()), gen_loss)]


def evaluate(model, data, cfg, device) -> dict:
    """FID and KID of train.eval_samples generated images against the validation images (+ class accuracy for a
    conditional model), in the features of tetragen's evaluator for this data; nothing when eval_samples is 0."""
    if cfg.train.eval_samples == 0:
        return {}
    pipe = ImagePipeline(model, data.classes, cfg)
    # The first evaluation may train the evaluator, which seeds torch's global generator: keep training's random
    # stream out of it, or a resumed run (evaluator already cached) would draw different noise than a straight one.
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return image_metrics(pipe.sample, data, n=cfg.train.eval_samples, device=device,
                             conditional=pipe.conditional)
