"""VAE-GAN training objective (three phases, one per update of Larsen et al.'s Algorithm 1: the discriminator, then
the encoder, then the decoder) and evaluation (test-split reconstruction error and KL; FID/KID of samples)."""
from __future__ import annotations

import torch

from ...data.images import test_batches
from ...train.phase import Phase
from ..dcgan.objective import evaluate as sample_metrics


def objective(model, cfg) -> list[Phase]:
    # Every loss goes through the (possibly DDP-wrapped) module's forward, so DDP sees and syncs each phase; each
    # phase computes its own forward pass with the weights the phases before it left, so nothing is kept between
    # phases (no retain_graph).
    def loss_of(phase: str):
        return lambda m, batch: m(batch, phase=phase)

    def trainable(module):
        return [p for p in module.parameters() if p.requires_grad]
    return [Phase("disc", trainable(model.discriminator), loss_of("disc"), lr_scale=cfg.model.d_lr_scale),
            Phase("encoder", trainable(model.encoder), loss_of("encoder")),
            Phase("decoder", trainable(model.decoder), loss_of("decoder"))]


@torch.no_grad()
def test_metrics(model, data, device, limit: int = 0) -> dict:
    """Over the test split (its first `limit` images when limit > 0): "recon_mse", the squared error of the decoder's
    image at the posterior mean, in grey values [0, 1]; "kl", KL(q(z|x) || N(0, I)) in nats per image; both lower
    is better. No likelihood bound: the reconstruction term is a Gaussian over discriminator features, not a
    density over pixels."""
    se, kl, pixels, count = 0.0, 0.0, 0, 0
    for x, _ in test_batches(data, device, limit):
        mu, logvar = model.encode(x)
        kl += float((0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)).sum())
        se += float((((model.generate(mu) - x) * 0.5) ** 2).sum())   # grey values: (pixel + 1) / 2
        pixels += x.numel()
        count += len(x)
    return {"recon_mse": se / pixels, "kl": kl / count, "test_images": float(count)}


def evaluate(model, data, cfg, device) -> dict:
    """Test-split recon_mse (the primary metric) and kl; FID/KID of train.eval_samples prior samples when that is
    above 0."""
    out = test_metrics(model, data, device)
    del out["test_images"]
    out.update(sample_metrics(model, data, cfg, device))
    return out
