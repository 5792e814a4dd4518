"""What `tetragen.load` returns for a VAE run: the shared image pipeline (sampling, classes, interpolation) plus
what only a model with an encoder offers: reconstructions and likelihood bounds."""
from __future__ import annotations

import numpy as np
import torch

from ...data.images import ImageData
from ...eval.likelihood import check_iw_samples
from ...sample.images import ImagePipeline, save_preview
from .objective import likelihood_metrics

__all__ = ["VAEPipeline", "save_preview"]


class VAEPipeline(ImagePipeline):
    """`tetragen.load("runs/vae")`: `.sample(n, seed=, labels=)` as for every image family, and
    `.reconstruct(images, labels)`, `.likelihood(data, iw_samples)`."""

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray, labels=None) -> np.ndarray:
        """uint8 (N, H, W, C) -> the decoder's mean at the posterior mean, uint8 (N, H, W, C). `labels` (N,) are
        the images' classes for a conditional model."""
        y = self.labels_for(len(images), labels) if self.conditional else None
        out = []
        for i in range(0, len(images), self.batch_size):
            x = ImageData.to_model(images[i:i + self.batch_size]).to(self.device)
            yb = y[i:i + self.batch_size].to(self.device) if y is not None else None
            mu, _ = self.model.encode(x, yb)
            out.append(ImageData.to_uint8(self.model.generate(mu, yb)))
        return np.concatenate(out)

    def likelihood(self, data, *, iw_samples: int = 100, seed: int = 0) -> tuple[dict, list[str]]:
        """Test-split ELBO and importance-weighted NLL bound (nats per image) with `iw_samples` samples per image;
        returns the metrics and the lines `tetragen eval` prints."""
        k = check_iw_samples(iw_samples)
        m = likelihood_metrics(self.model, data, self.device, iw_samples=k, seed=seed)
        c = self.config.model
        model = ("Bernoulli over grey values in [0, 1]" if c.likelihood == "bernoulli" else
                 (f"Gaussian over grey values in [0, 1], learned std (from {c.gaussian_std})" if c.learn_std else
                  f"Gaussian over grey values in [0, 1], fixed std {c.gaussian_std}"))
        lines = [f"likelihood: {model}; {int(m['test_images'])} test images, {k} importance samples each",
                 f"-ELBO    {m['neg_elbo']:.3f} nats/image (upper bound on the NLL)",
                 f"NLL (IW) {m['nll_iw']:.3f} nats/image (importance-weighted bound, K={k}; the NLL estimate)",
                 f"KL {m['kl']:.3f} nats/image, active units {int(m['active_units'])} of {c.latent_dim}, "
                 f"recon MSE {m['recon_mse']:.5f}"]
        return m, lines
