"""DCGAN: a convolutional generator and discriminator, optionally class-conditional (the cgan family).

Unsupervised Representation Learning with Deep Convolutional GANs (Radford et al. 2015), arXiv:1511.06434.
Generator: z -> linear -> (widest, s0, s0) -> [2x up-sample, batch norm, ReLU]... -> 2x up-sample to the image, tanh.
Discriminator: the mirror image with stride-2 convs and LeakyReLU, no batch norm (real and fake batches are seen
separately, and batch statistics would let it tell them apart by batch rather than by image); optional spectral norm.
With `num_classes` the generator's batch norms take a per-class scale and shift, and the discriminator adds the
projection term <embed(y), features> to its logit (Miyato & Koyama 2018, arXiv:1802.05637).

The whole GAN is one module whose forward(batch, phase) returns that phase's loss, so that under DDP both phases go
through the wrapped module and their gradients are synchronised.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...nn.augment import diff_augment
from ...nn.conv import ConditionalBatchNorm2d, DownBlock, UpBlock, spectral, stage_widths, start_size
from ...nn.gan_losses import discriminator_loss, generator_loss
from ...nn.init import dcgan_init


class Generator(nn.Module):
    def __init__(self, image_size: int, channels: int, latent_dim: int, width: int, *, upsample: str = "transposed",
                 num_classes: int = 0):
        super().__init__()
        self.s0 = start_size(image_size)
        widths = stage_widths(image_size, width)                   # e.g. 28x28, width 64: [128, 64]
        self.project = nn.Linear(latent_dim, widths[0] * self.s0 * self.s0, bias=False)
        self.norm0 = ConditionalBatchNorm2d(widths[0], num_classes) if num_classes else nn.BatchNorm2d(widths[0])
        self.blocks = nn.ModuleList([UpBlock(a, b, upsample=upsample, num_classes=num_classes)
                                     for a, b in zip(widths[:-1], widths[1:])])
        if upsample == "transposed":
            self.to_image = nn.ConvTranspose2d(widths[-1], channels, 4, stride=2, padding=1)
        else:
            self.to_image = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                          nn.Conv2d(widths[-1], channels, 3, padding=1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim), labels (B,) or None -> images (B, C, H, W) in [-1, 1]."""
        h = self.project(z).view(z.size(0), -1, self.s0, self.s0)  # (B, widest, s0, s0)
        h = self.norm0(h, labels) if isinstance(self.norm0, ConditionalBatchNorm2d) else self.norm0(h)
        h = torch.relu(h)
        for block in self.blocks:
            h = block(h, labels)                                   # (B, w, 2s, 2s)
        return torch.tanh(self.to_image(h))                        # (B, C, H, W)


SHIFT_GAIN = 0.1   # a layer's shift is half the side x tanh(0.1 x the MLP's output): small steps while it learns


class MovingLayers(nn.Module):
    """A generator that reads the grid's channels as frames and keeps content and motion apart (as MoCoGAN does,
    arXiv:1707.04993): it draws `layers` pictures once (the convolutional generator with a channel per layer) and, in
    each frame, moves each layer by a shift of its own from the noise and class (a small MLP). The frames are the
    shifted layers added up as light (screen: 1 - prod(1 - layer)), dark outside a layer. What is drawn therefore
    keeps its look from frame to frame; the shifts start at 0 (every layer still).

    A layer moves by whole pixels, so it stays sharp in every frame; its shift learns from the slope of the moved
    picture (straight-through)."""

    def __init__(self, image_size: int, frames: int, latent_dim: int, width: int, *, layers: int,
                 upsample: str = "transposed", num_classes: int = 0, hidden: int = 256):
        super().__init__()
        self.frames, self.layers = frames, layers
        self.draw = Generator(image_size, layers, latent_dim, width, upsample=upsample, num_classes=num_classes)
        self.embed = nn.Embedding(num_classes, hidden) if num_classes else None
        self.noise = nn.Linear(latent_dim, hidden)
        self.motion = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.to_shift = nn.Linear(hidden, layers * frames * 2)     # each (layer, frame): rows and columns moved

    def start_still(self) -> None:
        """Every shift 0, whatever the noise: the layers stand still until training moves them."""
        nn.init.zeros_(self.to_shift.weight)
        nn.init.zeros_(self.to_shift.bias)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim), labels (B,) or None -> frames (B, frames, H, W) in [-1, 1]."""
        b, k, t = z.size(0), self.layers, self.frames
        pictures = self.draw(z, labels)                            # (B, K, H, W) in [-1, 1]
        h = self.noise(z) + (self.embed(labels) if self.embed is not None else 0)
        raw = self.to_shift(self.motion(h))                        # (B, K * T * 2)
        with torch.autocast(device_type=z.device.type, enabled=False):  # positions in float32, not bf16
            light = (pictures.float() + 1) / 2
            reach = torch.tensor(light.shape[-2:], dtype=light.dtype, device=light.device) / 2
            shift = reach * torch.tanh(raw.float().view(b, k, t, 2) * SHIFT_GAIN)      # pixels, within half the side
            moved = _Move.apply(light, shift)                                                # (B, K, T, H, W)
            frames = moved[:, 0] if k == 1 else 1 - (1 - moved).prod(dim=1)   # (B, T, H, W): light adds up
        return frames * 2 - 1


class _Move(torch.autograd.Function):
    """Pictures (B, K, H, W) moved by shifts (B, K, T, 2) of (rows down, columns right), each rounded to whole pixels
    and dark where it reads outside the picture -> (B, K, T, H, W). The gradient of a shift is the moved picture's
    slope along its axis (central differences), as if it had moved smoothly (straight-through)."""

    @staticmethod
    def forward(ctx, light: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        b, k, h, w = light.shape
        pad = max(h, w) // 2 + 1                                   # a shift is at most half the side
        whole = shift.round().long()
        rows = (torch.arange(h, device=light.device) - whole[..., :1] + pad).clamp(0, h + 2 * pad - 1)
        columns = (torch.arange(w, device=light.device) - whole[..., 1:] + pad).clamp(0, w + 2 * pad - 1)
        index = (rows.unsqueeze(-1) * (w + 2 * pad) + columns.unsqueeze(-2)).view(b, k, -1)   # (B, K, T * H * W)
        padded = nn.functional.pad(light, (pad, pad, pad, pad)).view(b, k, -1)
        moved = padded.gather(2, index).view(b, k, -1, h, w)       # (B, K, T, H, W)
        ctx.save_for_backward(index, moved)
        ctx.pad = pad
        return moved

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        index, moved = ctx.saved_tensors
        b, k, _, h, w = moved.shape
        pad = ctx.pad
        back = grad.new_zeros(b, k, (h + 2 * pad) * (w + 2 * pad)).scatter_add_(2, index, grad.reshape(b, k, -1))
        grad_light = back.view(b, k, h + 2 * pad, w + 2 * pad)[..., pad:pad + h, pad:pad + w]   # summed over frames
        edged = nn.functional.pad(moved, (1, 1, 1, 1))
        down = (grad * (edged[..., 2:, 1:-1] - edged[..., :-2, 1:-1])).sum((-1, -2))     # 2 x d loss / d row shift
        right = (grad * (edged[..., 1:-1, 2:] - edged[..., 1:-1, :-2])).sum((-1, -2))
        return grad_light, torch.stack([down, right], -1) / -2       # moving down reads the picture from higher up


class Discriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int, *, spectral_norm: bool = False,
                 num_classes: int = 0, classify: bool = False):
        super().__init__()
        s0 = start_size(image_size)
        widths = stage_widths(image_size, width)[::-1]             # e.g. 28x28, width 64: [64, 128]
        self.blocks = nn.Sequential(*[DownBlock(a, b, spectral_norm=spectral_norm)
                                      for a, b in zip([channels, *widths[:-1]], widths)])
        features = widths[-1] * s0 * s0
        self.head = spectral(nn.Linear(features, 1), spectral_norm)
        self.embed = None
        if num_classes:
            embed = nn.Embedding(num_classes, features)
            nn.init.normal_(embed.weight, 0.0, 0.02)  # small, like the other weights: the projection starts near 0
            self.embed = spectral(embed, spectral_norm)
        # a class head on the same features (AC-GAN, arXiv:1610.09585): which class a clip or image shows
        self.classify = spectral(nn.Linear(features, num_classes), spectral_norm) if classify else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, H, W), labels (B,) or None -> logits (B,), and class logits (B, num_classes) with a class head
        (else None)."""
        h = self.blocks(x).flatten(1)                              # (B, widest * s0 * s0)
        logits = self.head(h).squeeze(1)                           # (B,)
        if self.embed is not None:                                 # projection: + <embed(y), h>
            logits = logits + (self.embed(labels) * h).sum(dim=1)
        return logits, (self.classify(h) if self.classify is not None else None)


class GAN(nn.Module):
    """Generator + discriminator; `forward(batch, phase)` is the loss of phase "disc" or "gen"."""

    def __init__(self, config):
        super().__init__()
        c = config
        self.config = c
        self.num_classes = getattr(c, "num_classes", 0)
        self.latent_dim = c.latent_dim
        if c.layers:
            self.generator = MovingLayers(c.image_size, c.channels, c.latent_dim, c.g_width, layers=c.layers,
                                          upsample=c.upsample, num_classes=self.num_classes)
        else:
            self.generator = Generator(c.image_size, c.channels, c.latent_dim, c.g_width, upsample=c.upsample,
                                       num_classes=self.num_classes)
        self.discriminator = Discriminator(c.image_size, c.channels, c.d_width, spectral_norm=c.spectral_norm,
                                           num_classes=self.num_classes,
                                           classify=bool(self.num_classes and c.class_loss))
        self.apply(dcgan_init)
        if c.layers:
            self.generator.start_still()
        if c.channels_last:  # NHWC convolutions: markedly faster on CPUs (oneDNN), especially in bf16
            self.to(memory_format=torch.channels_last)

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, latent_dim) -> images (B, C, H, W) in [-1, 1]; `labels` (B,) for a conditional model."""
        if self.conditional and labels is None:
            raise ValueError("a conditional GAN needs labels to generate")
        return self.generator(z, labels if self.conditional else None)

    def _fake(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        fake = self.generator(z, labels)
        # in D's layout (a moving-layers generator's frames come out NCHW; the convolutional one's already match)
        return fake.contiguous(memory_format=torch.channels_last) if self.config.channels_last else fake

    def forward(self, batch: dict, phase: str) -> tuple[torch.Tensor, dict]:
        real = batch["x"]                                          # (B, C, H, W) in [-1, 1]
        if self.config.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
        labels = batch["y"] if self.conditional else None          # fakes are asked for the batch's classes
        z = torch.randn(real.size(0), self.latent_dim, device=real.device)
        c = self.config
        if phase == "disc":
            with torch.no_grad():                                  # the generator is not trained in this phase
                fake = self._fake(z, labels)
            # one pass over real and fake together (no batch norm in D, so this is the same as two passes)
            both = diff_augment(torch.cat([real, fake]), c.diffaugment)                # (2B, C, H, W)
            logits, classes = self.discriminator(both, _twice(labels))
            real_logits, fake_logits = logits.chunk(2)
            loss = discriminator_loss(real_logits, fake_logits, c.loss)
            logs = {"d_real": real_logits.detach().float().mean(), "d_fake": fake_logits.detach().float().mean()}
            if classes is not None:                                # the class head learns from real items only
                loss = loss + _class_term(classes[:real.size(0)], labels, c.class_loss, logs, "d_class")
            return loss, logs
        if phase == "gen":
            fake = self._fake(z, labels)
            fake_logits, classes = self.discriminator(diff_augment(fake, c.diffaugment), labels)
            loss, logs = generator_loss(fake_logits, c.loss), {}
            if classes is not None:                                # fakes should show the class they were asked for
                loss = loss + _class_term(classes, labels, c.class_loss, logs, "g_class")
            return loss, logs
        raise ValueError(f"unknown GAN phase {phase!r}")


def _class_term(classes: torch.Tensor, labels: torch.Tensor, weight: float, logs: dict, name: str) -> torch.Tensor:
    """The class head's weighted cross-entropy of class logits (B, K) against labels (B,); the unweighted figure is
    logged as `name`."""
    told = F.cross_entropy(classes.float(), labels)
    logs[name] = told.detach()
    return weight * told


def _twice(labels: torch.Tensor | None) -> torch.Tensor | None:
    return None if labels is None else torch.cat([labels, labels])
