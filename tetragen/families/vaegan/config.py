"""VAE-GAN family configuration (the VAE's encoder/decoder, dcgan's discriminator, the loss weights) and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...nn.conv import stage_widths
from ...nn.gan_losses import LOSSES
from ...options import option
from ..dcgan.config import GAN_TRAIN


@dataclass
class VAEGANConfig:
    """The reconstruction error is 0.5 * the squared distance between the discriminator's features of the image and
    of its reconstruction, summed over the features of block `feature_layer` (a unit-variance Gaussian over those
    features, the paper's Dis_l likelihood), plus `pixel_weight` * the same over pixels in [-1, 1]. The encoder
    minimises beta * KL + that error; the decoder gamma * that error + the generator's GAN loss on reconstructions
    and prior samples; the discriminator the GAN loss on real images vs both kinds of fake."""
    image_size: int = option(28, "image side in pixels (28 for Fashion-MNIST; left at 28, an image folder sets it "
                                 "to its images' side)", min=8)
    channels: int = option(1, "channels of a grid: 1 grey, 3 RGB, or one per frame of a clip (set from the data: an "
                              "image folder sets 3 when any of its images is in colour)", min=1)
    latent_dim: int = option(16, "size of the latent code z", min=1)
    width: int = option(32, "encoder/decoder channels at full resolution (doubling at each halving)", min=1)
    d_width: int = option(32, "discriminator channels at full resolution (doubling at each halving)", min=1)
    spectral_norm: bool = option(False, "spectral normalization of the discriminator's weights")
    feature_layer: int = option(0, "the discriminator block whose output is the reconstruction's feature space, "
                                   "1 (the first, finest) to the number of blocks; 0: the last", min=0)
    gamma: float = option(0.01, "weight of the reconstruction error in the decoder's loss, against its GAN loss; "
                                "small, as the error is summed over many features (the encoder's weight on it is "
                                "always 1)", min=0.0)
    beta: float = option(1.0, "weight of the KL term in the encoder's loss", min=0.0)
    loss: str = option("nonsaturating", "adversarial loss", choices=list(LOSSES))
    pixel_weight: float = option(0.0, "weight of a pixel-space squared error added to the feature-space one, a "
                                      "stabiliser while the discriminator's features are still poor (0: off)",
                                 min=0.0)
    d_lr_scale: float = option(1.0, "discriminator learning rate relative to train.lr (encoder and decoder: 1)",
                               min=0.0, min_exclusive=True)
    preview_images: int = option(64, "images in the sample grid saved at each evaluation (0: none)", min=0)

    @property
    def discriminator_blocks(self) -> int:
        """Number of stride-2 blocks of the discriminator at this image size (28: 2, 32: 3, 64: 4)."""
        return len(stage_widths(self.image_size, self.d_width))

    def validate(self) -> None:
        if self.image_size % 2:
            raise UserError(f"model.image_size ({self.image_size}) must be even (the decoder doubles the size at "
                            f"least once); use e.g. 28, 32 or 64")
        n = self.discriminator_blocks
        if self.feature_layer > n:
            raise UserError(f"model.feature_layer ({self.feature_layer}) is past the discriminator's last block: "
                            f"at model.image_size={self.image_size} it has {n}; use 1 to {n}, or 0 for the last")


PRESETS = {  # training: the GAN recipe (Adam betas (0.5, 0.999), constant lr, no weight decay or clipping)
    "tiny": {  # seconds on a CPU: tests and smoke runs (no FID: it would train the evaluator); fmnist's switches
        "model": {"latent_dim": 4, "width": 8, "d_width": 8, "spectral_norm": True, "pixel_weight": 0.1,
                  "preview_images": 16},
        "train": {**GAN_TRAIN, "max_steps": 12, "batch_size": 8, "lr": 2e-4, "min_lr": 0.0, "eval_samples": 0,
                  "eval_every": 6, "save_every": 4, "log_every": 2},
    },
    # Fashion-MNIST 28x28 grey on a few CPU cores, beside the vae's fmnist preset (the same latent size, batch and
    # budget; the encoder and decoder at half its width, since a step here runs three phases, each with its own
    # forward pass, and a discriminator, so it already costs a few vae steps). Spectral norm keeps the
    # discriminator, and with it the scale of the features the reconstruction is measured in, from running away
    # (without it, trial runs on synthetic shapes collapsed onto fewer kinds of sample); a small pixel term anchors
    # the reconstructions while those features are still untrained. A starting point to be confirmed by the
    # benchmark (bench/): gamma, pixel_weight, the widths and the learning rate are untuned on Fashion-MNIST.
    "fmnist": {
        "model": {"latent_dim": 16, "width": 32, "d_width": 32, "spectral_norm": True, "gamma": 0.01,
                  "pixel_weight": 0.1},
        "train": {**GAN_TRAIN, "max_steps": 5000, "batch_size": 128, "lr": 2e-4, "min_lr": 0.0,
                  "precision": "auto", "ema_decay": 0.995, "eval_samples": 2000, "eval_every": 1000,
                  "save_every": 500, "log_every": 50},
    },
}
