"""What `tetragen.load(run)` returns for a latent diffusion run: the diffusion pipeline (samplers, steps, guidance,
prompts or classes, edits, walks: tetragen/families/diffusion/sample.py) with its denoiser working on the
autoencoder's latents. Noise is drawn in the latent shape, each solved block is decoded by the autoencoder, an edit's
image is encoded first and an inpainting mask covers every latent cell that touches a pixel to redraw (the kept
pixels of the result are still the given ones exactly).

    pipe = tetragen.load("runs/ldm")
    images = pipe.sample(16, prompt="a dark sneaker", seed=0, steps=8)      # uint8 (16, 28, 28, 1)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...data.grids import to_model, to_uint8
from ...sample.images import write_png
from ..diffusion.sample import DiffusionPipeline, PromptedDiffusionPipeline
from .data import LDMAssets


class LatentSpace:
    """The four hooks of a diffusion pipeline's space, over the autoencoder's latents."""

    def __init__(self, model, assets: LDMAssets, config, **kwargs):
        self.autoencoder = assets.autoencoder
        super().__init__(model, assets.inner, config, **kwargs)
        self.assets = assets  # what `tetragen eval` reads the run's data with

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.autoencoder.image_shape)

    @property
    def space_shape(self) -> tuple[int, int, int]:
        c = self.config.model
        return (c.latent_channels, c.latent_size, c.latent_size)

    def to_space(self, images: np.ndarray) -> torch.Tensor:
        return self.autoencoder.encode(to_model(images)).cpu() * self.config.model.latent_scale

    def from_space(self, x: torch.Tensor) -> np.ndarray:
        return to_uint8(self.autoencoder.decode(x / self.config.model.latent_scale))

    def space_mask(self, mask: torch.Tensor) -> torch.Tensor:
        return F.adaptive_max_pool2d(mask, self.space_shape[1:])                  # (N, 1, h, w)


class LDMPipeline(LatentSpace, DiffusionPipeline):
    """Latent diffusion of a class (or unconditional)."""


class PromptedLDMPipeline(LatentSpace, PromptedDiffusionPipeline):
    """Latent diffusion from a text prompt."""


def make_pipeline(model, assets: LDMAssets, config, **kwargs):
    """The family's `pipeline`: prompted for a run of `model.cond=text`, else by class (or unconditional)."""
    if config.model.cond == "text":
        return PromptedLDMPipeline(model, assets, config, **kwargs)
    return LDMPipeline(model, assets, config, **kwargs)


def save_preview(model, data, cfg, stem: Path) -> None:
    """A fixed-seed sample grid at `stem`.png, written at each evaluation."""
    n = cfg.model.preview_images
    if n <= 0:
        return
    pipe = make_pipeline(model, data.ldm_assets, cfg, batch_size=min(n, 64))
    columns = pipe.num_classes if pipe.conditional and pipe.num_classes <= 16 else None
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_png(stem.with_suffix(".png"), pipe.sample(n, seed=0), columns)
