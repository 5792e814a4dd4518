"""What a latent diffusion run reads: the images (and, with `model.cond=text`, their captions) exactly as a diffusion
run reads them (tetragen/families/diffusion/data.py), with each training batch's images turned into the frozen
autoencoder's latents, times `model.latent_scale`. The evaluator scores decoded images against the images, as for
every image family.
"""
from __future__ import annotations

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

    def __getattr__(self, name: str):
        if name == "data":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.data, name)

    def train_batch(self, **kwargs) -> dict[str, torch.Tensor]:
        batch = self.data.train_batch(**kwargs)
        batch["x"] = self.ldm_assets.autoencoder.encode(batch["x"]).cpu() * self.config.model.latent_scale
        return batch

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
    if data.kind != "image":
        raise UserError(f"--data {cfg.data.source}: {data.kind} content; an ldm run learns the latents of an image "
                        f"autoencoder")
    if tuple(data.image_shape) != tuple(autoencoder.image_shape):
        refuse_shape(cfg, data.image_shape, autoencoder)
    c, h, w = autoencoder.latent_shape
    if assets is not None and (m.latent_channels, m.latent_size) != (c, h):
        raise UserError(f"the run's autoencoder has latents {c}x{h}x{w}, but the denoiser was trained on "
                        f"{m.latent_channels}x{m.latent_size}x{m.latent_size}; restore the run's own autoencoder")
    if h != w:
        raise UserError(f"model.autoencoder_run={m.autoencoder_run}: its latent grid is {h}x{w}; a square one is "
                        f"needed")
    if assets is None and c > WIDE:
        print(f"tetragen: warning: model.autoencoder_run={m.autoencoder_run}: its latents have {c} channels a cell; "
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
