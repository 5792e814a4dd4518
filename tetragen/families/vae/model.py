"""Variational autoencoder on images, optionally class-conditional (the cvae family).

Auto-Encoding Variational Bayes (Kingma & Welling 2013), arXiv:1312.6114; beta-VAE (Higgins et al. 2017);
free bits (Kingma et al. 2016, arXiv:1606.04934, eq. 15); conditional VAE (Sohn et al. 2015).
Encoder: image (+ one-hot class planes) -> stride-2 conv blocks -> linear -> (mu, logvar).
Decoder: z (+ one-hot class) -> linear -> (widest, s0, s0) -> 2x up-sampling blocks (batch norm per class when
conditional) -> 2x transposed conv to one logit per pixel. The blocks are the image families' (tetragen/nn/conv.py).

`forward(batch, kl_weight)` returns the training loss (negative ELBO per image, KL weighted and floored by free bits)
with its parts; `log_weights` gives log p(x, z) - log q(z|x) for importance sampling; `generate(z, labels)` is what
the shared image pipeline samples through.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...eval.likelihood import gaussian_log_density
from ...nn.conv import ConditionalBatchNorm2d, DownBlock, UpBlock, stage_widths, start_size

MIN_LOG_STD = math.log(1e-3)  # a learned Gaussian std may not collapse onto the (discrete) grey levels


class Encoder(nn.Module):
    def __init__(self, image_size: int, in_channels: int, width: int, latent_dim: int):
        super().__init__()
        s0 = start_size(image_size)
        widths = stage_widths(image_size, width)[::-1]                 # e.g. 28x28, width 32: [32, 64]
        self.blocks = nn.Sequential(*[DownBlock(a, b) for a, b in zip([in_channels, *widths[:-1]], widths)])
        self.head = nn.Linear(widths[-1] * s0 * s0, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C', H, W) -> mu, logvar, each (B, latent_dim)."""
        mu, logvar = self.head(self.blocks(x).flatten(1)).chunk(2, dim=1)
        return mu, logvar


class Decoder(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, in_dim: int, num_classes: int = 0):
        super().__init__()
        self.s0 = start_size(image_size)
        widths = stage_widths(image_size, width)                       # e.g. 28x28, width 32: [64, 32]
        self.project = nn.Linear(in_dim, widths[0] * self.s0 * self.s0, bias=False)
        self.norm0 = ConditionalBatchNorm2d(widths[0], num_classes) if num_classes else nn.BatchNorm2d(widths[0])
        self.blocks = nn.ModuleList([UpBlock(a, b, num_classes=num_classes) for a, b in zip(widths[:-1], widths[1:])])
        self.to_logits = nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, in_dim), labels (B,) or None -> logits (B, C, H, W)."""
        h = self.project(h).view(h.size(0), -1, self.s0, self.s0)     # (B, widest, s0, s0)
        h = self.norm0(h, labels) if isinstance(self.norm0, ConditionalBatchNorm2d) else self.norm0(h)
        h = torch.relu(h)
        for block in self.blocks:
            h = block(h, labels)                                       # (B, w, 2s, 2s)
        return self.to_logits(h)                                       # (B, C, H, W)


class VAE(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.num_classes = getattr(c, "num_classes", 0)
        self.latent_dim = c.latent_dim
        self.encoder = Encoder(c.image_size, c.channels + self.num_classes, c.width, c.latent_dim)
        self.decoder = Decoder(c.image_size, c.channels, c.width, c.latent_dim + self.num_classes, self.num_classes)
        self.log_std = None
        if c.likelihood == "gaussian":
            log_std = torch.full((c.channels,), math.log(c.gaussian_std))
            self.log_std = nn.Parameter(log_std, requires_grad=c.learn_std)
        # micro-batches trained on: the KL warm-up's clock, saved with the weights so that a resumed run continues it
        self.register_buffer("trained_batches", torch.zeros((), dtype=torch.long))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def _one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError("a conditional VAE needs labels")
        return F.one_hot(labels, self.num_classes).float()            # (B, K)

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> q(z|x) as mu, logvar (B, latent_dim)."""
        y = self._one_hot(labels)
        if y is not None:                                              # class planes: (B, C + K, H, W)
            x = torch.cat([x, y[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return self.encoder(x)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        y = self._one_hot(labels)
        h = torch.cat([z, y], dim=1) if y is not None else z          # (B, latent_dim + K)
        return self.decoder(h, labels if self.conditional else None)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> the decoder's mean image (B, C, H, W) in [-1, 1]; `labels` (B,) when conditional."""
        return torch.sigmoid(self.decode_logits(z, labels)) * 2.0 - 1.0

    def log_likelihood(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) in nats per image (B,), from decoder logits and pixels x in [-1, 1]."""
        target = (x + 1.0) * 0.5                                       # grey values in [0, 1]
        if self.log_std is None:                                       # Bernoulli
            nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
            return -nll.flatten(1).sum(1)
        log_std = self.log_std.clamp_min(MIN_LOG_STD)[None, :, None, None]
        mean = torch.sigmoid(logits)
        log_p = -0.5 * ((target - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
        return log_p.flatten(1).sum(1)

    def forward(self, batch: dict, kl_weight: float = 1.0, free_bits: float = 0.0) -> tuple[torch.Tensor, dict]:
        """Training loss: -log p(x|z) + kl_weight * KL, per image, with one reparameterised z ~ q(z|x).
        With free bits each dimension's batch-mean KL enters the loss as max(free_bits, KL_u)."""
        x, labels = batch["x"], batch.get("y")
        labels = labels if self.conditional else None
        mu, logvar = self.encode(x, labels)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)        # reparameterisation trick
        log_px = self.log_likelihood(self.decode_logits(z, labels), x)  # (B,)
        kl_dims = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)        # KL(q(z|x) || N(0, I)) per dim, (B, latent)
        kl = kl_dims.sum(1).mean()
        kl_term = kl_dims.mean(0).clamp_min(free_bits).sum() if free_bits > 0 else kl
        recon = -log_px.mean()
        loss = recon + kl_weight * kl_term
        return loss, {"neg_elbo": (recon + kl).detach(), "recon": recon.detach(), "kl": kl.detach(),
                      "kl_weight": torch.tensor(kl_weight)}

    def log_weights(self, x: torch.Tensor, labels: torch.Tensor | None, k: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """log p(x, z_k) - log q(z_k|x) for k samples z_k ~ q(z|x) per image: (B, k). The mean over k is an ELBO
        estimate; the log-mean-exp the importance-weighted bound."""
        labels = labels if self.conditional else None
        mu, logvar = self.encode(x, labels)                            # (B, latent)
        eps = torch.randn(k, *mu.shape, generator=generator).to(mu.device)              # (k, B, latent)
        z = mu + torch.exp(0.5 * logvar) * eps                         # (k, B, latent)
        flat = z.reshape(-1, self.latent_dim)                          # (k*B, latent)
        rep = lambda t: None if t is None else t.repeat(k, *[1] * (t.dim() - 1))  # noqa: E731  (k*B, ...)
        log_px = self.log_likelihood(self.decode_logits(flat, rep(labels)), rep(x)).view(k, -1)  # (k, B)
        log_pz = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))              # (k, B)
        log_qz = gaussian_log_density(z, mu, logvar)                                            # (k, B)
        return (log_px + log_pz - log_qz).t()                          # (B, k)
