"""VQ-VAE: an image tokenizer. A convolutional encoder maps an image to a grid of vectors, each replaced by its nearest
code (tetragen/nn/quantize.py); a convolutional decoder maps the codes back to the image.

Neural Discrete Representation Learning (van den Oord et al. 2017), arXiv:1711.00937, section 4.1: strided 4x4
convolutions down, two residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv) at the token resolution, the mirror image
up; loss = reconstruction MSE + the quantiser's commitment (and, without EMA, codebook) terms.
Encoder: image (B, C, H, W) in [-1, 1] -> log2(downsample) stride-2 blocks (width, 2 width, ...) -> 3x3 conv ->
residual blocks -> 1x1 conv -> z (B, D, h, w), h = H / downsample. Decoder: codes (B, D, h, w) -> 3x3 conv ->
residual blocks -> 2x transposed convs with ReLU -> a last 2x transposed conv -> tanh (or, with model.output=linear,
a clamp to [-1.5, 1.5]): (B, C, H, W). No batch norm anywhere, so an image's tokens and its reconstruction never
depend on the other images of its batch.

With `temporal`, the grid's channels are a clip's frames (VideoGPT, Yan et al. 2021, arXiv:2104.10157): the encoder
reads (B, T, H, W) as one-channel volumes (B, 1, T, H, W) through 3-D convolutions (tetragen/nn/conv3d.py), halving
time at the first log2(time_downsample) of its spatial halvings, to z (B, D, t, h, w), t = T / time_downsample; the
latent frames' grids are stacked top to bottom, (B, D, t * h, w), for the quantiser and every user of the tokens,
and the decoder unstacks them and mirrors the encoder back to (B, T, H, W).

`encode(x)` gives the token grid, `decode(indices)` the image of a grid: what a prior over tokens trains on and
samples through; neither changes the model. `decode(encode(x))` equals the decoder applied to `quantize(x)[0]`
exactly (in eval mode, where `quantize` does not update the codebook either).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...nn.conv import DownBlock
from ...nn.conv3d import Down3d, ResidualBlock3d, up3d
from ...nn.quantize import VectorQuantizer, codebook_stats


def stage_widths(width: int, downsample: int) -> list[int]:
    """Channels after each 2x down-sampling, from the full resolution to the tokens': downsample 4 -> [w, 2w]."""
    return [width * 2 ** i for i in range(downsample.bit_length() - 1)]


class ResidualBlock(nn.Module):
    """x + 1x1 conv(ReLU(3x3 conv(ReLU(x)))), channels unchanged (the paper's residual block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)                                              # (B, ch, h, w)


class Encoder(nn.Module):
    def __init__(self, channels: int, width: int, downsample: int, res_blocks: int):
        super().__init__()
        widths = stage_widths(width, downsample)                             # e.g. width 64, downsample 4: [64, 128]
        self.out_dim = dim = widths[-1]
        self.net = nn.Sequential(*[DownBlock(a, b) for a, b in zip([channels, *widths[:-1]], widths)],
                                 nn.Conv2d(dim, dim, 3, padding=1),
                                 *[ResidualBlock(dim) for _ in range(res_blocks)],
                                 nn.ReLU(), nn.Conv2d(dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> z (B, D, H / downsample, W / downsample)."""
        return self.net(x)


def up(in_ch: int, out_ch: int) -> list[nn.Module]:
    """2x up-sampling: a stride-2 4x4 transposed conv and ReLU. Not conv.py's UpBlock: its batch norm would make an
    image depend on the rest of its batch in training and on running statistics after; the paper has no norm."""
    return [nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1), nn.ReLU()]


def pixels(x: torch.Tensor, output: str) -> torch.Tensor:
    """The decoder's last layer's output as pixels in about [-1, 1]: `output` (model.output) "tanh" or "linear"
    (clamped to [-1.5, 1.5]: no saturation near the data's range, so a dark background does not stop the gradient
    of the few bright pixels)."""
    return torch.tanh(x) if output == "tanh" else x.clamp(-1.5, 1.5)


class Decoder(nn.Module):
    def __init__(self, channels: int, width: int, downsample: int, res_blocks: int, output: str = "tanh"):
        super().__init__()
        self.output = output
        widths = stage_widths(width, downsample)[::-1]                       # e.g. [128, 64]
        self.net = nn.Sequential(nn.Conv2d(widths[0], widths[0], 3, padding=1),
                                 *[ResidualBlock(widths[0]) for _ in range(res_blocks)], nn.ReLU(),
                                 *[m for a, b in zip(widths[:-1], widths[1:]) for m in up(a, b)],
                                 nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """codes q (B, D, h, w) -> image (B, C, h * downsample, w * downsample) in [-1, 1] (`pixels`)."""
        return pixels(self.net(q), self.output)


def time_strides(downsample: int, time_downsample: int) -> list[int]:
    """Time stride of each spatial halving, from the full resolution on: time is halved at the first ones."""
    stages, halvings = downsample.bit_length() - 1, time_downsample.bit_length() - 1
    return [2] * halvings + [1] * (stages - halvings)


class ClipEncoder(nn.Module):
    """Encoder's 3-D twin: clip (B, T, H, W) -> z (B, D, t * h, w), the t latent frames' grids stacked."""

    def __init__(self, width: int, downsample: int, time_downsample: int, res_blocks: int):
        super().__init__()
        widths = stage_widths(width, downsample)
        self.out_dim = dim = widths[-1]
        strides = time_strides(downsample, time_downsample)
        self.net = nn.Sequential(*[Down3d(a, b, s) for a, b, s in zip([1, *widths[:-1]], widths, strides)],
                                 nn.Conv3d(dim, dim, 3, padding=1),
                                 *[ResidualBlock3d(dim) for _ in range(res_blocks)],
                                 nn.ReLU(), nn.Conv3d(dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net(x.unsqueeze(1))                                         # (B, D, t, h, w)
        b, d, t, h, w = z.shape
        return z.reshape(b, d, t * h, w)


class ClipDecoder(nn.Module):
    """Decoder's 3-D twin: codes (B, D, t * h, w) -> clip (B, T, H, W) in [-1, 1]. Its last layer is `net[-1]`, as
    the 2-D decoder's (vqgan weighs gradients there)."""

    def __init__(self, width: int, downsample: int, time_downsample: int, res_blocks: int, latent_frames: int,
                 output: str = "tanh"):
        super().__init__()
        self.latent_frames, self.output = latent_frames, output
        widths = stage_widths(width, downsample)[::-1]                       # e.g. [128, 64]
        strides = time_strides(downsample, time_downsample)[::-1]           # the encoder's halvings undone in turn
        self.net = nn.Sequential(nn.Conv3d(widths[0], widths[0], 3, padding=1),
                                 *[ResidualBlock3d(widths[0]) for _ in range(res_blocks)], nn.ReLU(),
                                 *[m for a, b, s in zip(widths[:-1], widths[1:], strides)
                                   for m in (up3d(a, b, s), nn.ReLU())],
                                 up3d(widths[-1], 1, strides[-1]))

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        b, d, rows, w = q.shape
        volume = q.reshape(b, d, self.latent_frames, rows // self.latent_frames, w)  # (B, D, t, h, w)
        return pixels(self.net(volume), self.output).squeeze(1)               # (B, T, H, W)


class VQVAE(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.num_classes = 0                                                 # a tokenizer takes no labels
        self.codebook_size = c.codebook_size
        self.latent_shape = c.token_shape                  # (h, w) of the token grid; (t * h, w) with temporal
        if c.temporal:
            c.check_frames()
            self.encoder = ClipEncoder(c.width, c.downsample, c.time_downsample, c.res_blocks)
        else:
            self.encoder = Encoder(c.channels, c.width, c.downsample, c.res_blocks)
        self.quantizer = VectorQuantizer(c.codebook_size, self.encoder.out_dim, beta=c.beta, ema=c.ema,
                                         decay=c.ema_decay, dead_code_threshold=c.dead_code_threshold,
                                         kmeans_init=c.kmeans_init, code_dim=c.code_dim, cosine=c.cosine)
        if c.temporal:
            self.decoder = ClipDecoder(c.width, c.downsample, c.time_downsample, c.res_blocks, c.latent_frames,
                                       c.output)
        else:
            self.decoder = Decoder(c.channels, c.width, c.downsample, c.res_blocks, c.output)

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> quantized codes (B, D, h, w), indices (B, h, w), vq_loss. In training mode
        this updates the codebook's statistics, as a training step does; call it in eval mode to only look up."""
        return self.quantizer(self.encoder(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) in [-1, 1] -> token indices (B, h, w) int64; never moves the codebook."""
        return self.quantizer.lookup(self.encoder(x))

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """token indices (B, h, w) -> images (B, C, H, W) in [-1, 1]."""
        return self.decoder(self.quantizer.embed(indices))

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> (decode(encode(x)) (B, C, H, W) in [-1, 1], the indices (B, h, w)); no side effects."""
        indices = self.encode(x)
        return self.decode(indices), indices

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """Training loss: MSE of the reconstruction in the data's [-1, 1] pixels + vq_loss. The metrics report the
        MSE in grey values [0, 1] ("recon_mse", a quarter of the loss's term; what evaluation reports) and the
        batch's code use."""
        x = batch["x"]                                                       # (B, C, H, W); labels are not used
        q, indices, vq_loss = self.quantize(x)
        mse = F.mse_loss(self.decoder(q).float(), x.float())
        stats = codebook_stats(indices.detach(), self.codebook_size)
        return mse + vq_loss, {"recon_mse": mse.detach() / 4.0, "vq_loss": vq_loss.detach(),
                               "perplexity": torch.tensor(stats["perplexity"]),
                               "usage": torch.tensor(stats["usage"])}
