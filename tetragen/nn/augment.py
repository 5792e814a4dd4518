"""DiffAugment: differentiable augmentations applied to real and fake images alike before the discriminator.

Differentiable Augmentation for Data-Efficient GAN Training (Zhao et al. 2020), arXiv:2006.10738.
A policy is a comma-separated list of `color`, `translation`, `cutout` (e.g. "translation,cutout"); "" is off.
Random draws use torch's global generator, so they follow the run's seed and are restored on resume.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    """The policy's parts, in order; raises ValueError naming an unknown one."""
    parts = [p.strip() for p in policy.split(",") if p.strip()]
    for p in parts:
        if p not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {p!r}; use a comma-separated list of {', '.join(POLICIES)}")
    return parts


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """x (B, C, H, W) in [-1, 1] -> the same shape, augmented per example; gradients flow through."""
    for part in parse_policy(policy):
        x = _AUGMENTS[part](x)
    return x


def _color(x: torch.Tensor) -> torch.Tensor:
    B = x.size(0)
    x = x + (torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)            # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - mean) * (torch.rand(B, 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + mean  # contrast
    return x


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its size, filling with zeros (grey in [-1, 1])."""
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (B, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (B, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(H, device=x.device), torch.arange(W, device=x.device), indexing="ij")
    gy = torch.clamp(gy[None] + dy + 1, 0, H + 1)                                   # (B, H, W), in the padded frame
    gx = torch.clamp(gx[None] + dx + 1, 0, W + 1)
    padded = F.pad(x, [1, 1, 1, 1])                                                 # (B, C, H+2, W+2), zero border
    b = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[b, gy, gx].permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of `ratio` the image size at a random place in each image."""
    B, C, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), device=x.device)
    cx = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(H, device=x.device), torch.arange(W, device=x.device), indexing="ij")
    oy = gy[None] - cy + ch // 2                                                   # (B, H, W): row inside the square
    ox = gx[None] - cx + cw // 2
    inside = (oy >= 0) & (oy < ch) & (ox >= 0) & (ox < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}
