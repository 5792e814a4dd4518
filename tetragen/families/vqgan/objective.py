"""VQGAN training objective (two phases of the shared trainer: "disc", the patch discriminator's hinge loss on images
vs detached reconstructions, then "main", the vqvae loss plus the adaptively weighted GAN term), both off before
model.disc_start; evaluation is the vqvae's (reconstruction error, code use, FID/KID of reconstructions)."""
from __future__ import annotations

import torch

from ...train.phase import Phase
from ..vqvae.objective import evaluate

__all__ = ["objective", "evaluate", "gan_on"]


def gan_on(model, cfg) -> bool:
    """Whether the optimizer step being taken is at or past the GAN's start (model.disc_start, or
    model.disc_start_fraction of train.max_steps): a pure function of the model's `trained_batches` buffer (saved in
    every checkpoint) and the config, so a resumed run switches on at the same step."""
    return int(model.trained_batches) // cfg.train.grad_accum >= disc_start(cfg)


def disc_start(cfg) -> int:
    """The step the GAN switches on at."""
    m = cfg.model
    return round(m.disc_start_fraction * cfg.train.max_steps) if m.disc_start_fraction else m.disc_start


def objective(model, cfg) -> list[Phase]:
    # Both losses go through the (possibly DDP-wrapped) module's forward; the step count is read from, and kept in,
    # the unwrapped model.
    def disc_loss(m, batch):
        if not gan_on(model, cfg):
            # no forward pass, no gradient: the optimizer skips parameters without one, so the discriminator stays
            # exactly as initialised (even under weight decay) until disc_start
            return torch.zeros((), device=batch["x"].device, requires_grad=True), {}
        return m(batch, phase="disc")

    def main_loss(m, batch):
        out = m(batch, phase="main", gan=gan_on(model, cfg))
        model.trained_batches += 1
        return out

    disc = {id(p) for p in model.discriminator.parameters()}
    return [Phase("disc", [p for p in model.discriminator.parameters() if p.requires_grad], disc_loss,
                  lr_scale=cfg.model.d_lr_scale),
            Phase("main", [p for p in model.parameters() if p.requires_grad and id(p) not in disc], main_loss)]
