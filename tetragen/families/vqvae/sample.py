"""What `tetragen.load` returns for a VQ-VAE run: an image tokenizer. Images to token grids and back, reconstructions,
and the evaluation `tetragen eval` prints; plus the preview written at each evaluation during training.

    tok = tetragen.load("runs/vqvae")
    tokens = tok.encode(images)          # uint8 (N, 28, 28, 1) -> int64 (N, 7, 7), values in [0, codebook_size)
    again = tok.decode(tokens)           # -> uint8 (N, 28, 28, 1)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...data.images import ImageData
from ...errors import UserError
from ...eval.image import check_n, evaluator_line, evaluator_rows, reference_lines, reference_rows
from ...sample.images import pad_rows, write_png
from .objective import reconstruct_images, reconstruction_distances, test_metrics

__all__ = ["VQTokenizerPipeline", "save_preview"]


class VQTokenizerPipeline:
    """A trained VQ-VAE with its run config: `.encode(images)`, `.decode(indices)`, `.reconstruct(images)`,
    `.evaluate(data, n=)`. No sampling: new images come from a prior over the token grids, trained apart.
    Capabilities (tetragen/pipeline.py): "reconstruct" and "tokenize"; not "encode", which names walks between
    continuous codes (`interpolate_images`), meaningless between discrete tokens."""
    capabilities = frozenset({"reconstruct", "tokenize"})
    conditional = False  # a tokenizer takes no class labels
    num_classes = 0

    def __init__(self, model, classes: Sequence[str], config, *, batch_size: int = 256):
        self.model, self.classes, self.config = model.eval(), list(classes), config
        self.assets = self.classes
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c = self.config.model
        return (c.image_size, c.image_size, c.channels)

    @property
    def token_shape(self) -> tuple[int, int]:
        """(h, w) of the token grid of one image; with model.temporal, (t * h, w): a clip's t latent frames' grids
        stacked top to bottom."""
        return tuple(self.model.latent_shape)

    @property
    def codebook_size(self) -> int:
        return int(self.model.codebook_size)

    def _check_images(self, images) -> np.ndarray:
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
            got = f"{images.dtype} {images.shape}" if isinstance(images, np.ndarray) else type(images).__name__
            raise UserError(f"images: expected uint8 (N, {', '.join(map(str, self.image_shape))}), got {got}; "
                            f"the model was trained on {self.image_shape[0]}x{self.image_shape[1]} images with "
                            f"{self.image_shape[2]} channel(s)")
        return images

    def encode(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> token indices int64 (N, h, w)."""
        return reconstruct_images(self.model, self._check_images(images), self.device, self.batch_size)[1]

    @torch.no_grad()
    def decode(self, indices, block: int | None = None) -> np.ndarray:
        """Token indices (N, h, w) (NumPy or torch, integers in [0, codebook_size)) -> uint8 images (N, H, W, C), in
        forward passes of exactly `block` grids (default: batch_size)."""
        idx = torch.as_tensor(np.asarray(indices) if not torch.is_tensor(indices) else indices)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool or tuple(idx.shape[1:]) != self.token_shape:
            raise UserError(f"indices: expected integers shaped (N, {', '.join(map(str, self.token_shape))}), got "
                            f"{idx.dtype} {tuple(idx.shape)}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.codebook_size):
            raise UserError(f"indices: values from {int(idx.min())} to {int(idx.max())}; the codebook has codes 0 to "
                            f"{self.codebook_size - 1}")
        idx, bs = idx.long(), block or self.batch_size
        # blocks of exactly batch_size grids (the last one padded): CPU matrix products round differently at other
        # batch sizes, and a sampler's image must not depend on what else it was drawn with
        out = []
        for i in range(0, len(idx), bs):
            block = idx[i:i + bs]
            out.append(ImageData.to_uint8(self.model.decode(pad_rows(block, bs).to(self.device)))[:len(block)])
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape), dtype=np.uint8)

    def reconstruct(self, images: np.ndarray, labels=None) -> np.ndarray:
        """uint8 (N, H, W, C) -> the decoder's image of their tokens, uint8 (N, H, W, C). A tokenizer takes no
        labels; `labels` must be None."""
        if labels is not None:
            raise UserError(f"labels: this {self.config.family} run is unconditional (a tokenizer encodes images "
                            f"alone); leave the labels out")
        return reconstruct_images(self.model, self._check_images(images), self.device, self.batch_size)[0]

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, **_) -> tuple[dict, list[str]]:
        """Test-split reconstruction error and code use, and FID/KID of n test images' reconstructions against them
        (a seeded subset when the split is larger) with the usual references (train vs test, 3x3-blurred test vs
        test). Returns the metrics and the lines `tetragen eval` prints; `iw_samples` (likelihood bounds) has no
        meaning here and is ignored."""
        check_n(n)
        device = self.device
        m = test_metrics(self.model, data, device)
        ev = data.evaluator(device)
        m.update(reconstruction_distances(self.reconstruct, data, n=n, device=device, seed=seed, evaluator=ev))
        m.update({**reference_rows(data, ev, int(m["recon_n"]), device, seed), **evaluator_rows(ev)})
        k, (h, w), c = self.codebook_size, self.token_shape, self.config.model
        grid = f"{c.latent_frames} latent frames of {c.grid_size}x{w}" if c.temporal else f"{h}x{w}"
        fid, kid = reference_lines(data, m, prefix="recon_")
        lines = [f"{data.name}, {int(m['test_images'])} test {data.item}s as {grid} tokens from {k} codes",
                 f"recon MSE {m['recon_mse']:.5f} (grey values in [0, 1], lower is better)",
                 f"recon {fid} ({int(m['recon_n'])} reconstructions vs the same test {data.item}s)",
                 f"recon {kid}",
                 f"codebook usage {m['codebook_usage']:.1%} ({round(m['codebook_usage'] * k)} of {k} codes), "
                 f"perplexity {m['codebook_perplexity']:.1f} (at most {k})",
                 evaluator_line(m)]
        return m, lines


def save_preview(model, data, cfg, stem: Path) -> None:
    """The first cfg.model.preview_images test images, each beside its reconstruction, at `stem`.png. Used as the
    family's `preview` hook."""
    n = min(cfg.model.preview_images, len(data.test.labels))
    if n <= 0:
        return
    images = data.test.images[:n]
    recon, _ = reconstruct_images(model, images, next(model.parameters()).device)
    pairs = np.stack([images, recon], axis=1).reshape(-1, *images.shape[1:])  # original, reconstruction, ...
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_png(stem.with_suffix(".png"), pairs, columns=2 * math.ceil(math.sqrt(n)))
