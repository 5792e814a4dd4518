"""What a latent diffusion run reads: the images (and, with `model.cond=text`, their captions) exactly as a diffusion
run reads them (tetragen/families/diffusion/data.py), with each training batch's images turned into the frozen
autoencoder's latents, times `model.latent_scale`. The evaluator scores decoded images against the images, as for
every image family.

The autoencoder is frozen, so an image's latents never change: the first training batch encodes the whole training
set once, CHUNK images at a time in their order (so an image's latents do not depend on which batch first drew it,
and a resumed run reads the same ones), and every batch after looks its images' latents up. A training set whose
latents would take more than CACHE_BYTES is encoded batch by batch instead.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ...data.images import scan_folder
from ...errors import UserError
from ..diffusion.data import assets_of
from ..diffusion.data import load_data as load_diffusion_data
from ..diffusion.data import read_assets as read_diffusion_assets
from .autoencoder import Autoencoder, latent_scale, open_autoencoder_run, read_component, save_component

WIDE = 32   # latent channels a cell past which a new run warns (docs/ldm.md, "Measured")
CACHE_BYTES = 2 * 1024 ** 3  # the training set's latents are kept in memory up to this size
CHUNK = 256                  # images encoded together when the cache is filled


@dataclass
class LDMAssets:
    """What a latent diffusion run keeps beside its denoiser: what a diffusion run keeps (the class names, or the
    prompt assets of a text run) and its autoencoder (loaded from the run's copy of it)."""
    inner: Any
    autoencoder: Autoencoder
    autoencoder_dir: Path | None = None

    @property
    def captions_record(self) -> dict | None:
        """How a text run's captions are made (its prompt assets' record); None for a class-conditioned run."""
        return getattr(self.inner, "captions_record", None)


class LatentGrids:
    """The images' data (GridData, with captions for a text run) whose training batches carry latents: {"x":
    (B, c, h, w) latents times latent_scale, "y": (B,), "text": ...}. Everything else is the images' own."""

    def __init__(self, data, assets: LDMAssets, config, source: Path | None):
        self.data, self.ldm_assets, self.config, self.source = data, assets, config, source
        self.assets = assets  # what pipelines built in training take (make_pipeline)
        self.latents: torch.Tensor | None = None  # (N, c, h, w): the training images', once encoded

    def __getattr__(self, name: str):
        if name == "data":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.data, name)

    def train_batch(self, **kwargs) -> dict[str, torch.Tensor]:
        batch = self.data.train_batch(**kwargs)
        index = batch.pop("index", None)   # which training items the batch holds, where the data says
        if self.latents is None and index is not None and self.cache_fits():
            self.latents = self.encode_training_set()
        z = self.latents[index] if self.latents is not None else self.ldm_assets.autoencoder.encode(batch["x"]).cpu()
        batch["x"] = z * self.config.model.latent_scale
        return batch

    def cache_fits(self) -> bool:
        return len(self.train.images) * math.prod(self.ldm_assets.autoencoder.latent_shape) * 4 <= CACHE_BYTES

    def encode_training_set(self) -> torch.Tensor:
        images, encode = self.train.images, self.ldm_assets.autoencoder.encode
        return torch.cat([encode(self.data.to_model(images[i:i + CHUNK])).cpu().float()
                          for i in range(0, len(images), CHUNK)])

    def count(self, batch: dict) -> int:
        return int(batch["x"].shape[0])

    def save_assets(self, folder: Path) -> None:
        self.data.save_assets(folder)
        save_component(Path(folder), self.source, self.ldm_assets.autoencoder, self.config.model.autoencoder_run)


def load_data(cfg, assets: LDMAssets | None = None, task: str = "lm") -> LatentGrids:
    """The images at the autoencoder's size (a folder of another size or mode is refused in one line), the
    autoencoder opened from model.autoencoder_run for a new run (or the run's own copy), the latent shape and scale
    set from it."""
    m = cfg.model
    if assets is None:
        autoencoder, source = open_autoencoder_run(m.autoencoder_run)
        m.autoencoder_run = str(source)
    else:
        autoencoder, source = assets.autoencoder, None
    size, _, channels = autoencoder.image_shape
    if assets is None:
        m.image_size, m.channels = size, channels
        root = Path(cfg.data.source).expanduser()
        shape = scan_folder(root) if root.is_dir() else None
        if shape is not None and shape.count and (shape.side, shape.channels) != (size, channels):
            refuse_shape(cfg, (shape.side, shape.side, shape.channels), autoencoder)
    data = load_diffusion_data(cfg, assets.inner if assets is not None else None, task)
    if tuple(data.image_shape) != tuple(autoencoder.image_shape):
        refuse_shape(cfg, data.image_shape, autoencoder)
    c, h, w = autoencoder.latent_shape
    if assets is not None and (m.latent_channels, m.latent_size) != (c, h):
        raise UserError(f"the run's autoencoder has latents {c}x{h}x{w}, but the denoiser was trained on "
                        f"{m.latent_channels}x{m.latent_size}x{m.latent_size}; restore the run's own autoencoder")
    if h != w:
        raise UserError(f"model.autoencoder_run={m.autoencoder_run}: its latent grid is {h}x{w}; a square one is "
                        f"needed")
    if assets is None and c // autoencoder.frames > WIDE:
        print(f"tetragen: warning: model.autoencoder_run={m.autoencoder_run}: its latents have "
              f"{c // autoencoder.frames} channels a cell{' a latent frame' if autoencoder.frames > 1 else ''}; "
              f"a denoiser learns narrow ones far better (a vqvae trained with model.code_dim=4: docs/ldm.md)",
              file=sys.stderr)
    m.latent_channels, m.latent_size = c, h
    if not m.latent_scale:
        m.latent_scale = latent_scale(autoencoder, data.train.images, data.to_model)
    return LatentGrids(data, LDMAssets(assets_of(data), autoencoder, source), cfg, source)


def refuse_shape(cfg, shape, autoencoder: Autoencoder) -> None:
    """One line: the data's images (H, W, C) are not the autoencoder's."""
    (h, w, c), (size, _, channels) = shape, autoencoder.image_shape
    raise UserError(f"--data {cfg.data.source}: its images are {w}x{h} with {c} channel(s), but the autoencoder "
                    f"{cfg.model.autoencoder_run} makes {size}x{size} with {channels}; give data of the "
                    f"autoencoder's size or an autoencoder trained on this data")


def read_assets(run_dir: Path, cfg, base=None) -> LDMAssets:
    """A run's components, checked against its config: a missing or mismatched autoencoder is refused."""
    m = cfg.model
    autoencoder, folder = read_component(Path(run_dir), (m.latent_channels, m.latent_size, m.latent_size))
    return LDMAssets(read_diffusion_assets(run_dir, cfg, base), autoencoder, folder)
