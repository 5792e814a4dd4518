"""Sampling from any image generator, and writing samples as a PNG grid or an .npz array.

`ImagePipeline` is what `tetragen.load(run_dir)` returns for an image family (GANs, VAEs). It needs only a model
with `latent_dim`, `num_classes` (0: unconditional) and `generate(z, labels) -> (B, C, H, W) in [-1, 1]`:

    pipe = tetragen.load("runs/cgan")
    images = pipe.sample(16, seed=0, labels="Sneaker")      # uint8 (16, 28, 28, 1)
    walk = pipe.interpolate(0, 1, steps=8, label=3)         # uint8 (8, 28, 28, 1)

Every image has a seed of its own: `seeds=[...]` gives one per image, and `seed=s` means s, s+1, ..., s+n-1. An
image's noise comes from a CPU generator seeded with its seed alone, and the model runs on blocks of exactly
`batch_size` images (the last one padded), so an image depends only on its own seed and class: the same one alone,
in a batch of others, or in another order, on any device that computes the same arithmetic.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.images import ImageData
from ..errors import UserError
from ..files import replace_atomically


class ImagePipeline:
    """A trained image generator with its class names and run config."""

    capabilities = frozenset({"sample"})

    def __init__(self, model, classes: Sequence[str], config, *, batch_size: int = 256):
        self.model, self.classes, self.config = model.eval(), list(classes), config
        self.assets = self.classes
        self.num_classes = int(model.num_classes)  # every image generator has it (0: unconditional)
        self.batch_size = batch_size

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def class_index(self, label: int | str) -> int:
        """A class given by index or by name (exact, then case-insensitive) -> its index."""
        if not self.conditional:
            raise UserError(f"--class: this {self.config.family} model is unconditional (it was not trained with "
                            f"class labels); leave --class out, or train a conditional family such as cgan")
        if isinstance(label, (int, np.integer)) or (isinstance(label, str) and label.lstrip("-").isdigit()):
            i = int(label)
            if not 0 <= i < self.num_classes:
                raise UserError(f"--class {label}: out of range; the model has classes 0 to {self.num_classes - 1}")
            return i
        names = {c: i for i, c in enumerate(self.classes)}
        if label in names:
            return names[label]
        folded = {c.casefold(): i for i, c in enumerate(self.classes)}
        if isinstance(label, str) and label.casefold() in folded:
            return folded[label.casefold()]
        raise UserError(f"--class {label!r}: no such class; the classes are: "
                        + ", ".join(f"{i}={c}" for i, c in enumerate(self.classes)))

    def labels_for(self, n: int, labels=None) -> torch.Tensor | None:
        """The class of each of `n` samples: None cycles through the classes evenly; one class (index or name) for
        all; or a sequence of n classes. None for an unconditional model (which refuses labels)."""
        if not self.conditional:
            if labels is not None:
                self.class_index(0)  # raises: an unconditional model takes no labels
            return None
        if labels is None:
            return torch.arange(n) % self.num_classes
        if isinstance(labels, (str, int, np.integer)):
            return torch.full((n,), self.class_index(labels), dtype=torch.long)
        out = [self.class_index(int(v) if isinstance(v, (torch.Tensor, np.integer)) else v) for v in list(labels)]
        if len(out) != n:
            raise UserError(f"labels: {len(out)} labels for {n} samples; give one per sample or a single class")
        return torch.tensor(out, dtype=torch.long)

    def noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """(len(seeds), latent_dim) standard normal noise, row i from a generator seeded with seeds[i] alone."""
        return torch.stack([torch.randn(self.model.latent_dim, generator=g) for g in generators(seeds)])

    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels: torch.Tensor | None) -> np.ndarray:
        """Latents (N, latent_dim) and labels (N,) or None -> uint8 images (N, H, W, C), in blocks of exactly
        batch_size rows: CPU matrix products round differently at different batch sizes, and a fixed shape keeps an
        image the same whatever else is drawn with it."""
        out = []
        bs = self.batch_size
        for i in range(0, len(z), bs):
            zb = pad_rows(z[i:i + bs], bs).to(self.device)
            yb = pad_rows(labels[i:i + bs], bs).to(self.device) if labels is not None else None
            out.append(ImageData.to_uint8(self.model.generate(zb, yb))[:len(z[i:i + bs])])
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), dtype=np.uint8)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config.model
        return (c.image_size, c.image_size, c.channels)

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds: Sequence[int] | None = None,
               labels=None) -> np.ndarray:
        """n images as uint8 (N, H, W, C), image i from seeds[i] (or seed + i; a fresh random seed when neither is
        given; n may be left out with `seeds`). `labels`: None (classes cycle evenly), a class index or name for all,
        or one per image; conditional models only."""
        seeds = row_seeds(n, seed, seeds)
        y = self.labels_for(len(seeds), labels)
        return self.decode(self.noise(seeds), y)

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        """FID/KID (+ class accuracy for a conditional model) of `n` samples against the test split of `data`, in
        tetragen's evaluator, with its scale references; returns (metrics, the lines `tetragen eval` prints)."""
        from ..eval.image import evaluate_images, report_lines
        metrics = evaluate_images(self, data, n=n, seed=seed, device=self.device)
        return metrics, report_lines(data, metrics)

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None) -> np.ndarray:
        """`steps` images walking the latent space from seed_a's noise to seed_b's (spherical interpolation, which
        keeps the noise at the norm the generator was trained on), as uint8 (steps, H, W, C)."""
        if steps < 2:
            raise UserError(f"--steps: {steps} must be at least 2 (the two ends)")
        za, zb = self.noise([seed_a, seed_b])
        z = torch.stack([za] + [slerp(za, zb, k / (steps - 1)) for k in range(1, steps - 1)] + [zb])  # exact ends
        y = self.labels_for(steps, label if label is not None else (0 if self.conditional else None))
        return self.decode(z, y)


SEED_RANGE = 1 << 64  # torch.Generator.manual_seed takes 64-bit seeds


def row_seeds(n: int | None, seed: int | None = None, seeds: Sequence[int] | None = None) -> list[int]:
    """The seed of each of n images: `seeds` as given, or seed, seed + 1, ... (modulo 2**64), from a fresh random
    seed when neither is given. One-line errors for n < 1, a seed out of range, both given, or a count that does not
    match."""
    if seeds is not None and seed is not None:
        raise UserError("give seed (images seed, seed+1, ...) or seeds (one per image), not both")
    if seeds is None:
        if n is None or n < 1:
            raise UserError(f"--n: {n} must be at least 1")
        start = int(seed) if seed is not None else torch.Generator().seed()
        check_seed("--seed", start)
        return [(start + i) % SEED_RANGE for i in range(n)]
    seeds = [int(s) for s in seeds]
    if n is not None and len(seeds) != n:
        raise UserError(f"seeds: {len(seeds)} seeds for {n} images; give one per image")
    if not seeds:
        raise UserError("seeds: none given; give one per image")
    for s in seeds:
        check_seed("seeds", s)
    return seeds


def check_seed(what: str, seed: int) -> None:
    if not 0 <= seed < SEED_RANGE:
        raise UserError(f"{what}: {seed} is out of range; use an integer from 0 to 2**64-1")


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """A CPU generator per seed (one image's randomness, whatever the device)."""
    return [torch.Generator().manual_seed(s) for s in seeds]


def pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """x (k, ...) with k <= rows -> (rows, ...): x, then copies of its first row (valid input for any model, and
    thrown away after)."""
    return x if len(x) == rows else torch.cat([x, x[:1].expand(rows - len(x), *x.shape[1:])])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between vectors a and b (linear when they are nearly parallel)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


# ----------------------------------------------------------------------------------------------------------------
# writers

def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows*(H+pad)+pad, columns*(W+pad)+pad, C) image with a black border."""
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, c), dtype=np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = im
    return grid


def check_output(path: str | Path, *, overwrite: bool = False, suffixes=(".png", ".npz")) -> Path:
    """Refuse an output path before any work: unknown suffix, missing folder, or an existing file. Where "/" is
    among the suffixes, a path ending in "/" (or an empty folder) is a folder to write one file per sample into."""
    p = Path(path)
    if "/" in suffixes and (str(path).endswith(("/", "\\")) or p.is_dir()):
        if p.is_dir() and any(p.iterdir()):
            raise UserError(f"--out {path}: the folder is not empty; give a new or empty folder")
        if not p.parent.is_dir():
            raise UserError(f"--out {path}: the folder {p.parent} does not exist; create it first")
        return p
    if p.suffix.lower() not in suffixes:
        named = [s if s != "/" else "a folder (ending in /)" for s in suffixes]
        raise UserError(f"--out {path}: unknown file type {p.suffix or '(none)'!r}; use {' or '.join(named)}")
    if not p.parent.is_dir():
        raise UserError(f"--out {path}: the folder {p.parent} does not exist; create it first")
    if p.is_dir():
        raise UserError(f"--out {path}: is a folder; give a file name such as {p / ('samples' + p.suffix)}")
    if p.exists() and not overwrite:
        raise UserError(f"--out {path}: the file already exists; pass --overwrite to replace it, or choose "
                        f"another name")
    return p


def write_png(path: str | Path, images: np.ndarray, columns: int | None = None) -> None:
    """Write uint8 (N, H, W, C) images as one grid PNG (grey when C is 1, colour when 3). Channels that are not
    colours (the frames of a clip learnt as one grid) are drawn side by side, each as a grey picture."""
    from PIL import Image
    n, h, w, c = images.shape
    if c not in (1, 3):
        images = np.ascontiguousarray(np.moveaxis(images, -1, 2)).reshape(n, h, c * w, 1)
    grid = image_grid(images, columns)
    im = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    replace_atomically(Path(path), lambda tmp: im.save(tmp, format="PNG"))


def write_npz(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Write `images` uint8 (N, H, W) for grey or (N, H, W, C) for colour, and `labels` int64 (N,) when given."""
    arrays = {"images": images[..., 0] if images.shape[-1] == 1 else images}
    if labels is not None:
        arrays["labels"] = np.asarray(labels, dtype=np.int64)
    replace_atomically(Path(path), lambda tmp: np.savez_compressed(tmp, **arrays))


def save_preview(model, data, cfg, stem: Path) -> None:
    """A fixed-seed sample grid at `stem`.png (one column per class for a conditional model): how training went,
    at a glance. Used as an image family's `preview` hook."""
    n = cfg.model.preview_images
    if n <= 0:
        return
    pipe = ImagePipeline(model, data.classes, cfg)
    columns = pipe.num_classes if pipe.conditional and pipe.num_classes <= 16 else None
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_png(stem.with_suffix(".png"), pipe.sample(n, seed=0), columns)
