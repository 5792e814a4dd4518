"""VQ-VAE training objective (one phase: reconstruction MSE + the quantiser's loss; an EMA codebook moves inside the
forward pass, not by the optimizer) and evaluation on the test split: reconstruction error, code use, and the FID/KID
of reconstructions against the images they reconstruct."""
from __future__ import annotations

import numpy as np
import torch

from ...data.images import ImageData, test_batches
from ...eval.image import reconstruction_distances
from ...nn.quantize import codebook_stats
from ...train.phase import Phase

BATCH = 500


def objective(model, cfg) -> list[Phase]:
    def loss(m, batch):
        return m(batch)
    return [Phase("main", [p for p in model.parameters() if p.requires_grad], loss)]


@torch.no_grad()
def reconstruct_images(model, images: np.ndarray, device, batch_size: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, H, W, C) -> (reconstructions uint8 (N, H, W, C), token indices int64 (N, h, w))."""
    recon, tokens = [], []
    for i in range(0, len(images), batch_size):
        x = ImageData.to_model(images[i:i + batch_size]).to(device)
        r, idx = model.reconstruct(x)
        recon.append(ImageData.to_uint8(r))
        tokens.append(idx.cpu().numpy())
    if not recon:
        return np.zeros((0, *images.shape[1:]), np.uint8), np.zeros((0, *model.latent_shape), np.int64)
    return np.concatenate(recon), np.concatenate(tokens)


@torch.no_grad()
def test_metrics(model, data, device, limit: int = 0) -> dict:
    """Over the test split (its first `limit` images when limit > 0): "recon_mse", the mean squared error of the
    reconstructions in grey values [0, 1] (lower is better); "codebook_usage", the fraction of the codes used by the
    whole split's tokens; "codebook_perplexity", exp(entropy) of their histogram (1 to codebook_size)."""
    se, pixels, count, tokens = 0.0, 0, 0, []
    for x, _ in test_batches(data, device, limit):
        recon, indices = model.reconstruct(x)
        se += float((((recon.float() - x) * 0.5) ** 2).sum())             # grey values: (pixel + 1) / 2
        pixels += x.numel()
        count += len(x)
        tokens.append(indices.flatten())
    stats = codebook_stats(torch.cat(tokens), model.codebook_size)
    return {"recon_mse": se / pixels, "codebook_usage": stats["usage"], "codebook_perplexity": stats["perplexity"],
            "test_images": float(count)}


def evaluate(model, data, cfg, device) -> dict:
    """Test-split recon_mse (grey values in [0, 1], the primary metric), codebook_usage and codebook_perplexity; the
    FID/KID of train.eval_samples test images' reconstructions against them when that is above 0."""
    out = test_metrics(model, data, device)
    if cfg.train.eval_samples > 0:
        out.update(reconstruction_distances(lambda images: reconstruct_images(model, images, device)[0], data,
                                            n=cfg.train.eval_samples, device=device))
    return out
