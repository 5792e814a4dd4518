"""Adversarial losses on discriminator logits, shared by every family with a discriminator.

`nonsaturating`: the discriminator minimises binary cross-entropy (real -> 1, fake -> 0); the generator minimises
-log D(G(z)) instead of log(1 - D(G(z))), which keeps its gradient alive early on (Goodfellow et al. 2014,
arXiv:1406.2661). `hinge`: max(0, 1 - D(x)) + max(0, 1 + D(G(z))) for the discriminator, -D(G(z)) for the
generator (Lim & Ye 2017, arXiv:1705.02894; used with spectral norm by Miyato et al. 2018).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("nonsaturating", "hinge")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Logits (B,) on real and on (detached) fake images -> the discriminator's scalar loss."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # BCE with targets 1 and 0
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")


def generator_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Logits (B,) on fake images -> the generator's scalar loss."""
    fake_logits = fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()  # -log sigmoid(D(G(z)))
    if kind == "hinge":
        return -fake_logits.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")
