"""The frozen autoencoder a latent diffusion run works through: a trained tetragen `vqvae` or `vqgan` (its encodings
where codes are looked up, `code_dim` channels a cell, before the snap; decoding snaps each latent vector to its
nearest code first, as the decoder was trained on codes) or an unconditional `vae` (its posterior mean, a vector,
seen as a 1x1 grid of `latent_dim` channels). A clip tokenizer (a vqvae or vqgan with `model.temporal`) stacks its
t latent frames top to bottom; here they are channels instead, t * code_dim a cell of an h x w grid, as a clip's
frames are the channels of its grid.

A run holds its component: `autoencoder/` (a copy of the autoencoder run's config.json, weights and classes.json)
and `components.json`, which names it with its source, family, latent shape and weights' sha256. `tetragen.load(run)`
refuses a copy that no longer matches them.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ...files import read_json, step_dirs, write_json

COMPONENT = "autoencoder"       # the folder inside a run that holds its autoencoder
FILES = ("config.json", "model.safetensors", "ema.safetensors", "classes.json")
FAMILIES = ("vqvae", "vqgan", "vae")  # the autoencoders whose continuous latents a denoiser can learn
VECTOR_QUANTISED = ("vqvae", "vqgan")  # a vqgan is a vqvae trained with a discriminator: the same three parts


class Autoencoder:
    """A loaded autoencoder run seen as continuous latents: `encode(x)` images (B, C, H, W) in [-1, 1] -> latents
    (B, c, h, w); `decode(z)` back. Both in eval mode without gradients; neither changes the model."""

    def __init__(self, pipe):
        self.pipe, self.family = pipe, pipe.config.family
        self.model = pipe.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        c = pipe.config.model
        self.image_shape = (int(c.image_size), int(c.image_size), int(c.channels))   # (H, W, C)
        self.frames = int(getattr(c, "latent_frames", 1))                            # latent frames (clips)
        if self.family in VECTOR_QUANTISED:
            rows, w = self.model.latent_shape
            self.latent_shape = (int(self.model.quantizer.code_dim) * self.frames, int(rows) // self.frames, int(w))
        else:
            self.latent_shape = (int(self.model.latent_dim), 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        if self.family in VECTOR_QUANTISED:                                      # (B, code_dim, t * h, w)
            z = self.model.quantizer.to_code_space(self.model.encoder(x))
            b, d, rows, w = z.shape
            t = self.frames
            return z.view(b, d, t, rows // t, w).transpose(1, 2).reshape(b, t * d, rows // t, w)
        mu, _ = self.model.encode(x)                                             # (B, latent_dim)
        return mu[:, :, None, None]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z.to(self.device)
        if self.family in VECTOR_QUANTISED:
            b, c, h, w = z.shape
            t = self.frames
            z = z.reshape(b, t, c // t, h, w).transpose(1, 2).reshape(b, c // t, t * h, w)   # frames stacked again
            return self.model.decoder(self.model.quantizer.from_code_space(z))  # nearest codes, projected out
        return self.model.generate(z.flatten(1))


def open_autoencoder_run(path: str | Path, *, where: str = "model.autoencoder_run") -> tuple[Autoencoder, Path]:
    """The autoencoder of a trained run folder and its resolved path, refused in one line when the folder is
    missing, not a run, still training (no final weights), or not an unconditional vae or a vqvae."""
    from ... import api
    example = (f"`tetragen train vqvae --data fashion-mnist --out runs/vqvae` then {where}=runs/vqvae")
    if not path:
        raise UserError(f"{where} is required: the folder of a trained vqvae, vqgan or vae run, e.g. {example}")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        what = "no such folder" if not folder.exists() else "not a tetragen run (no config.json)"
        raise UserError(f"{where}={path}: {what}; train an autoencoder first, e.g. {example}")
    if not (folder / "model.safetensors").is_file():
        steps = step_dirs(folder)
        latest = f"its latest checkpoint is {steps[-1].name}" if steps else "it has no checkpoint yet"
        raise UserError(f"{where}={path}: the autoencoder run has no final weights (model.safetensors): it is still "
                        f"training or was stopped ({latest}); let it finish or `--resume` it")
    family = json.loads((folder / "config.json").read_text()).get("family")
    if family not in FAMILIES:
        raise UserError(f"{where}={path}: a {family} run, not an autoencoder whose latents a denoiser can learn; give "
                        f"a run of {' or '.join(FAMILIES)}")
    pipe = api.load(folder)
    if pipe.num_classes:
        raise UserError(f"{where}={path}: a class-conditional {family} (its decoder needs a class); give an "
                        f"unconditional vae, a vqvae or a vqgan")
    steps = step_dirs(folder)
    target = pipe.config.train.max_steps
    done = json.loads((steps[-1] / "trainer_state.json").read_text())["step"] if steps else target
    if done < target:
        print(f"tetragen: warning: the autoencoder run {path} is at step {done} of {target}; its current weights "
              f"are used and frozen", file=sys.stderr)
    return Autoencoder(pipe), folder.resolve()


def weights_sha256(folder: Path) -> str:
    """The sha256 of the weights an autoencoder run is loaded with (the EMA when it keeps one)."""
    ema = Path(folder) / "ema.safetensors"
    return hashlib.sha256((ema if ema.is_file() else Path(folder) / "model.safetensors").read_bytes()).hexdigest()


def save_component(folder: Path, source: Path | None, autoencoder: Autoencoder, config_source: str) -> None:
    """The run's copy of its autoencoder in `folder`/autoencoder (from `source`, or from the run's own copy when
    `folder` is one of its checkpoints) and components.json naming it."""
    target = Path(folder) / COMPONENT
    if not (target / "config.json").is_file():
        origin = source if source is not None else Path(folder).parent.parent / COMPONENT
        target.mkdir(exist_ok=True)
        for name in FILES:
            if (origin / name).is_file():
                shutil.copyfile(origin / name, target / name)
    write_json(Path(folder) / "components.json", {COMPONENT: {
        "folder": COMPONENT, "source": config_source, "family": autoencoder.family,
        "latent_shape": list(autoencoder.latent_shape), "weights_sha256": weights_sha256(target)}})


def read_component(run_dir: Path, latent_shape: tuple[int, int, int]) -> tuple[Autoencoder, Path]:
    """A run's own autoencoder copy, refused in one line when missing or not the one the denoiser learnt."""
    from ... import api
    doc = read_json(Path(run_dir) / "components.json").get(COMPONENT) or {}
    folder = Path(run_dir) / doc.get("folder", COMPONENT)
    if not (folder / "config.json").is_file():
        raise UserError(f"{run_dir}: its autoencoder ({folder}) is missing; copy the whole run folder, or retrain")
    autoencoder = Autoencoder(api.load(folder))
    if tuple(autoencoder.latent_shape) != tuple(latent_shape):
        raise UserError(f"{folder}: an autoencoder of latents {autoencoder.latent_shape}, but the denoiser was "
                        f"trained on {tuple(latent_shape)}; restore the run's own autoencoder")
    sha = doc.get("weights_sha256")
    if sha and weights_sha256(folder) != sha:
        raise UserError(f"{folder}: its weights are not the ones the denoiser was trained on (sha256 differs); "
                        f"restore the run's own autoencoder")
    return autoencoder, folder


def latent_scale(autoencoder: Autoencoder, images: np.ndarray, to_model, limit: int = 512) -> float:
    """1 / the standard deviation of the latents of the first `limit` images: latents times it have unit variance,
    as the noise the denoiser starts from."""
    z = torch.cat([autoencoder.encode(to_model(images[i:i + 128])) for i in range(0, min(limit, len(images)), 128)])
    std = float(z.float().std())
    return 1.0 / std if std > 0 else 1.0
