"""What `tetragen.load` returns for a VAE-GAN run: the VAE's pipeline (sampling, reconstructions, walks between the
codes of real images) without its likelihood bounds, which a VAE-GAN does not have; plus the training preview."""
from __future__ import annotations

from ...errors import UserError
from ...sample.images import ImagePipeline, save_preview
from ..vae.sample import VAEPipeline
from .objective import test_metrics

__all__ = ["VAEGANPipeline", "save_preview"]

NO_LIKELIHOOD = ("the reconstruction term is a Gaussian over the discriminator's features, not a density over "
                 "pixels, so there is no ELBO or importance-weighted NLL")


class VAEGANPipeline(VAEPipeline):
    """`tetragen.load("runs/vaegan")`: `.sample(n, seed=)`, `.interpolate(seed_a, seed_b, steps)`,
    `.reconstruct(images)`, `.interpolate_images(images, steps)` as for a VAE; `.evaluate(data, n=)`."""
    capabilities = frozenset({"sample", "reconstruct", "encode"})

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        """The image metrics of every image family (FID/KID of `n` samples), then the test split's reconstruction
        error and KL; `iw_samples` is not used (no likelihood bound)."""
        metrics, lines = ImagePipeline.evaluate(self, data, n=n, seed=seed)  # not VAEPipeline's: no likelihood
        m = test_metrics(self.model, data, self.device)
        lines += [f"reconstructions of {int(m['test_images'])} test images: recon MSE {m['recon_mse']:.5f} (grey "
                  f"values in [0, 1]), KL {m['kl']:.3f} nats/image",
                  f"likelihood: not reported; {NO_LIKELIHOOD}"]
        return {**metrics, **m}, lines

    def likelihood(self, data, *, iw_samples: int = 100, seed: int = 0):
        raise UserError(f"a {self.config.family} run has no likelihood bound: {NO_LIKELIHOOD}; train a vae for one")
