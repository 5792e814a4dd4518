"""3-D convolutional blocks over (time, height, width), for models of clips: down- and up-sampling that halve or
double space and, when asked, time; the residual block of the VQ-VAE paper in 3-D. No normalisation, so a clip's
output never depends on the other clips of its batch.

Neural Discrete Representation Learning (van den Oord et al. 2017), arXiv:1711.00937, section 4.3 (video);
VideoGPT (Yan et al. 2021), arXiv:2104.10157: a VQ-VAE with 3-D convolutions, down-sampling in time and space.
"""
from __future__ import annotations

import torch
import torch.nn as nn


def _time_kernel(time_stride: int) -> tuple[int, int]:
    """(kernel, padding) along time: 4 and 1 halve it (as 4x4 stride-2 convs halve space), 3 and 1 keep it."""
    if time_stride not in (1, 2):
        raise ValueError(f"time_stride {time_stride}: 1 (keep the frames) or 2 (halve them)")
    return (4, 1) if time_stride == 2 else (3, 1)


class Down3d(nn.Module):
    """2x spatial down-sampling (and 2x in time when time_stride is 2): a 4x4 stride-2 conv in space, LeakyReLU(0.2);
    the 3-D twin of conv.py's DownBlock."""

    def __init__(self, in_ch: int, out_ch: int, time_stride: int = 1):
        super().__init__()
        k, p = _time_kernel(time_stride)
        self.conv = nn.Conv3d(in_ch, out_ch, (k, 4, 4), stride=(time_stride, 2, 2), padding=(p, 1, 1))
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))                                # (B, out, T / time_stride, H/2, W/2)


def up3d(in_ch: int, out_ch: int, time_stride: int = 1) -> nn.ConvTranspose3d:
    """2x spatial up-sampling (and 2x in time when time_stride is 2): the transposed twin of Down3d's conv."""
    k, p = _time_kernel(time_stride)
    return nn.ConvTranspose3d(in_ch, out_ch, (k, 4, 4), stride=(time_stride, 2, 2), padding=(p, 1, 1))


class ResidualBlock3d(nn.Module):
    """x + 1x1x1 conv(ReLU(3x3x3 conv(ReLU(x)))), channels and shape unchanged."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv3d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv3d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)                                      # (B, ch, t, h, w)
