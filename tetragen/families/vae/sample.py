"""What `tetragen.load` returns for a VAE run: the shared image pipeline (sampling, classes, interpolation) plus
what only a model with an encoder offers: reconstructions, walks between the codes of real images, likelihood
bounds, and (a cvae with a classifier) class predictions."""
from __future__ import annotations

import numpy as np
import torch

from ...data.images import ImageData
from ...errors import UserError
from ...eval.likelihood import check_iw_samples
from ...sample.images import ImagePipeline, save_preview
from .objective import likelihood_metrics

__all__ = ["VAEPipeline", "save_preview"]


class VAEPipeline(ImagePipeline):
    """`tetragen.load("runs/vae")`: `.sample(n, seed=, labels=)` as for every image family, and
    `.reconstruct(images, labels)`, `.interpolate_images(images, steps)`, `.likelihood(data, iw_samples)`,
    `.classify(images)` (a cvae trained with a classifier, e.g. semi-supervised)."""

    @property
    def has_classifier(self) -> bool:
        return getattr(self.model, "classifier", None) is not None

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset({"sample", "reconstruct", "encode"} | ({"classify_images"} if self.has_classifier else set()))

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        """The image metrics of every image family, then the test ELBO and importance-weighted NLL."""
        metrics, lines = super().evaluate(data, n=n, seed=seed)
        extra, more = self.likelihood(data, iw_samples=iw_samples, seed=seed)
        return {**metrics, **extra}, lines + more

    @torch.no_grad()
    def classify(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> the classifier q(y|x)'s most likely class of each image, int64 (N,)."""
        if not self.has_classifier:
            raise UserError(f"this {self.config.family} run has no classifier; train a cvae with "
                            f"data.label_fraction < 1 or model.classifier=true")
        out = [self.model.classify(ImageData.to_model(images[i:i + self.batch_size]).to(self.device)).argmax(1)
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.int64)

    def _image_labels(self, images: np.ndarray, labels) -> torch.Tensor | None:
        """The class each image is encoded with: `labels` when given, else the classifier's reading of the image
        (a conditional model without a classifier needs them); None for an unconditional model."""
        if not self.conditional:
            return self.labels_for(len(images), labels)  # refuses labels
        if labels is None:
            if not self.has_classifier:
                raise UserError("labels: a conditional VAE encodes each image with its class; give one label per "
                                "image")
            return torch.from_numpy(self.classify(images))
        return self.labels_for(len(images), labels)

    @torch.no_grad()
    def _posterior_means(self, images: np.ndarray, y: torch.Tensor | None) -> torch.Tensor:
        """uint8 (N, H, W, C) -> mu of q(z|x, y), (N, latent_dim) on the CPU."""
        out = []
        for i in range(0, len(images), self.batch_size):
            x = ImageData.to_model(images[i:i + self.batch_size]).to(self.device)
            yb = y[i:i + self.batch_size].to(self.device) if y is not None else None
            out.append(self.model.encode(x, yb)[0].float().cpu())
        return torch.cat(out)

    def reconstruct(self, images: np.ndarray, labels=None) -> np.ndarray:
        """uint8 (N, H, W, C) -> the decoder's mean at the posterior mean, uint8 (N, H, W, C). `labels` (N,) are
        the images' classes for a conditional model (without them a model with a classifier uses its own)."""
        y = self._image_labels(images, labels)
        return self.decode(self._posterior_means(images, y), y)

    def interpolate_images(self, images: np.ndarray, steps: int = 8, *, labels=None, label=None) -> np.ndarray:
        """`steps` images along the straight line between the posterior means of two images (uint8 (2, H, W, C)),
        ends included: the first and last are the two images' codes decoded (their reconstructions, for a
        conditional model in the walk's class). The codes are points of the
        posterior, not prior draws near a sphere, so the walk is linear (a GAN's seed walk is spherical).
        Conditional models encode each image with its class (`labels`, two of them) and decode the whole walk with
        `label` (default: the first image's class). No randomness: the same images give the same walk."""
        if steps < 2:
            raise UserError(f"--steps: {steps} must be at least 2 (the two ends)")
        if len(images) != 2:
            raise UserError(f"interpolate_images: {len(images)} images; give exactly two")
        y = self._image_labels(images, labels)
        za, zb = self._posterior_means(images, y)
        z = torch.stack([za + (zb - za) * (k / (steps - 1)) for k in range(steps - 1)] + [zb])  # exact ends
        walk_label = None
        if self.conditional:
            walk_label = self.labels_for(steps, label if label is not None else int(y[0]))
        return self.decode(z, walk_label)

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
        if "classifier_acc" in m:
            fraction = self.config.data.label_fraction
            lines.append(f"classifier q(y|x): test accuracy {m['classifier_acc']:.4f} (trained with "
                         f"{fraction:.1%} of the training labels)")
        return m, lines
