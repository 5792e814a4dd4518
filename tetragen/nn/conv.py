"""Convolutional blocks shared by the image families: up/down-sampling blocks, conditional batch norm, spectral norm.

Unsupervised Representation Learning with Deep Convolutional GANs (Radford et al. 2015), arXiv:1511.06434;
Spectral Normalization for GANs (Miyato et al. 2018), arXiv:1802.05957;
cGANs with Projection Discriminator (Miyato & Koyama 2018), arXiv:1802.05637 (conditional batch norm, projection).
"""
from __future__ import annotations

import torch
import torch.nn as nn


def spectral(module: nn.Module, on: bool) -> nn.Module:
    """`module` with spectral normalization of its weight when `on` (the power-iteration vectors are buffers, so
    they are saved with the weights and a resumed run continues the same iteration)."""
    return nn.utils.parametrizations.spectral_norm(module) if on else module


def start_size(image_size: int) -> int:
    """The side length the generator starts from (and the discriminator ends at): halve while even and above 7.
    28 -> 7, 32 -> 4, 64 -> 4, 48 -> 6."""
    s = image_size
    while s % 2 == 0 and s > 7:
        s //= 2
    return s


def stage_widths(image_size: int, width: int, max_mult: int = 8) -> list[int]:
    """Channel widths at each resolution from the smallest to the largest (the image itself excluded): the widest
    stage has width * 2^(stages-1) channels (capped at width * max_mult), halving at every doubling of resolution."""
    stages = (image_size // start_size(image_size)).bit_length() - 1  # number of 2x up-samplings
    return [width * min(2 ** (stages - 1 - i), max_mult) for i in range(stages)]


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (initialised to the identity)."""

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)
        self.shift = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)                                                    # (B, C, H, W)
        return h * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class UpBlock(nn.Module):
    """2x up-sampling (a stride-2 transposed conv, or nearest up-sampling then a 3x3 conv, which avoids the
    transposed conv's checkerboard pattern), batch norm (per class when `num_classes`), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, *, upsample: str = "transposed", num_classes: int = 0):
        super().__init__()
        if upsample == "transposed":
            self.conv = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=False)
        else:
            self.conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                      nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False))
        self.norm = ConditionalBatchNorm2d(out_ch, num_classes) if num_classes else nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv(x)                                                    # (B, out, 2H, 2W)
        h = self.norm(h, labels) if isinstance(self.norm, ConditionalBatchNorm2d) else self.norm(h)
        return self.act(h)


class DownBlock(nn.Module):
    """2x down-sampling: a stride-2 4x4 conv and LeakyReLU(0.2), spectrally normalized when asked."""

    def __init__(self, in_ch: int, out_ch: int, *, spectral_norm: bool = False):
        super().__init__()
        self.conv = spectral(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1), spectral_norm)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))                                       # (B, out, H/2, W/2)
