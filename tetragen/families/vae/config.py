"""VAE family configuration (architecture, likelihood, KL schedule) and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option

LIKELIHOODS = ["bernoulli", "gaussian"]


@dataclass
class VAEConfig:
    """The decoder's likelihood p(x|z) is over grey values in [0, 1] (the data's [-1, 1] pixels, rescaled).

    `bernoulli` (the default): binary cross-entropy of the decoder's logits against the grey values, summed over
    pixels. This is the likelihood behind the MNIST / Fashion-MNIST VAE figures reported in nats per image, so our
    ELBO and importance-weighted NLL can be set beside them (with grey values as targets it is not a normalised
    density over grey levels; compare only with figures computed the same way). `gaussian`: a normal density with
    the decoder's output as the mean and a standard deviation `gaussian_std` (fixed, or learned per channel).
    """
    image_size: int = option(28, "image side in pixels (28 for Fashion-MNIST; left at 28, an image folder sets it "
                                 "to its images' side)", min=8)
    channels: int = option(1, "channels of a grid: 1 grey, 3 RGB, or one per frame of a clip (set from the data: an "
                              "image folder sets 3 when any of its images is in colour)", min=1)
    latent_dim: int = option(16, "size of the latent code z")
    width: int = option(32, "encoder/decoder channels at full resolution (doubling at each halving)", min=1)
    likelihood: str = option("bernoulli", "decoder likelihood over grey values in [0, 1]", choices=LIKELIHOODS)
    gaussian_std: float = option(0.1, "likelihood=gaussian: the decoder's standard deviation (grey-value units), "
                                      "or its starting value when learned", min=0.0, min_exclusive=True)
    learn_std: bool = option(False, "likelihood=gaussian: learn the standard deviation (one per channel)")
    beta: float = option(1.0, "weight of the KL term (beta-VAE; 1: the ELBO)", min=0.0)
    kl_warmup_steps: int = option(0, "raise the KL weight linearly from 0 to beta over this many steps (0: off)",
                                  min=0)
    free_bits: float = option(0.0, "free bits: each latent dimension's batch-mean KL counts as at least this many "
                                   "nats in the training loss (0: off)", min=0.0)
    preview_images: int = option(64, "images in the sample grid saved at each evaluation (0: none)", min=0)

    def validate(self) -> None:
        if self.latent_dim < 1:
            raise UserError(f"model.latent_dim ({self.latent_dim}) must be at least 1; the VAE needs a latent code, "
                            f"e.g. model.latent_dim=16")
        if self.image_size % 2:
            raise UserError(f"model.image_size ({self.image_size}) must be even (the decoder doubles the size at "
                            f"least once); use e.g. 28, 32 or 64")


# No weight decay: it would pull the decoder towards the prior-only solution; the ELBO is the whole objective.
VAE_TRAIN = {"weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999}

PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs (no FID: it would train the evaluator)
        "model": {"latent_dim": 4, "width": 8, "preview_images": 16},
        "train": {**VAE_TRAIN, "max_steps": 20, "batch_size": 8, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 0,
                  "eval_samples": 0, "eval_every": 10, "save_every": 10, "log_every": 5},
    },
    # Fashion-MNIST 28x28 grey on a few CPU cores (bench/image_vae.py trains it for a fixed wall-clock budget).
    # Width 64: twice the channels cost a step much less than their convolutions' FLOPs suggest (the rest is fixed
    # overhead) and bf16 autocast speeds it up again (CPU matrix units; docs/vae.md, "Measured"), so 10 minutes on
    # two cores still give tens of epochs (bench/RESULTS.md, "VAEs on Fashion-MNIST"). A 16-d latent leaves fewer
    # holes between the posteriors for prior samples to fall into than a 32-d one, and it was ahead on -ELBO and
    # FID in a short trial (docs/vae.md).
    "fmnist": {
        "model": {"latent_dim": 16, "width": 64, "kl_warmup_steps": 500},
        "train": {**VAE_TRAIN, "max_steps": 5000, "batch_size": 128, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "precision": "auto", "eval_samples": 2000, "eval_every": 1000,
                  "save_every": 500, "log_every": 50},
    },
}
