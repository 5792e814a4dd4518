"""VQGAN family configuration: the vqvae tokenizer's keys plus a PatchGAN discriminator and its loss weights; presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option
from ..vqvae.config import PRESETS as VQVAE_PRESETS
from ..vqvae.config import VQVAEConfig


@dataclass
class VQGANConfig(VQVAEConfig):
    """A vqvae (every key of VQVAEConfig) whose decoder also plays a hinge-loss GAN against a patch discriminator
    (Esser et al. 2021, arXiv:2012.09841). From step disc_start on, the discriminator learns real vs reconstructed
    images and the autoencoder's loss gains adaptive_weight * disc_weight * the generator's hinge loss, where the
    adaptive weight balances that term's gradient at the decoder's last layer against the reconstruction's.
    Before disc_start the run is exactly a vqvae run (same loss), and the discriminator is left untouched."""
    disc_width: int = option(64, "discriminator channels after its first conv (doubling per stride-2 layer, at "
                                 "most 8x)", min=1)
    disc_layers: int = option(2, "stride-2 conv layers of the patch discriminator: each logit sees a patch of "
                                 "the image, and more layers mean larger patches (28x28 with 2: a 5x5 grid of "
                                 "logits)", min=1)
    disc_start: int = option(2000, "training step at which the discriminator and the generator's GAN term "
                                   "switch on (taming's disc_start; the autoencoder learns to reconstruct first)",
                             min=0)
    disc_start_fraction: float = option(0.0, "switch the GAN on at this fraction of train.max_steps instead of at "
                                             "disc_start (it follows the step count a train.budget_minutes plan "
                                             "sets; 0: use disc_start)", min=0.0, max=1.0)
    disc_weight: float = option(0.8, "weight of the generator's GAN term on top of the adaptive weight (taming's "
                                     "disc_weight; 0: a vqvae with an idle discriminator)", min=0.0)
    feature_weight: float = option(0.0, "weight of an L1 feature-matching term: reconstructions vs images in the "
                                        "discriminator's intermediate features, a perceptual loss that needs no "
                                        "network of tetragen's evaluator (on from disc_start; 0: off)", min=0.0)
    d_lr_scale: float = option(1.0, "discriminator learning rate relative to train.lr (the autoencoder's is 1)",
                               min=0.0, min_exclusive=True)

    def patch_grid(self) -> int:
        """Side of the discriminator's grid of logits: each stride-2 4x4 conv (padding 1) halves the side, rounding
        down, and each of the two stride-1 4x4 convs after them takes one off."""
        side = self.image_size
        for _ in range(self.disc_layers):
            side //= 2
        return side - 2

    def validate(self) -> None:
        super().validate()
        if self.patch_grid() < 1:
            most = max((n for n in range(1, self.image_size.bit_length()) if self.image_size >> n >= 3), default=0)
            fix = f"use model.disc_layers={most} or fewer" if most else "use a larger model.image_size"
            raise UserError(f"model.disc_layers ({self.disc_layers}) shrinks a {self.image_size}x{self.image_size} "
                            f"image to nothing in the patch discriminator; {fix}")


# Taming's Adam betas (0.5, 0.9), for the autoencoder and the discriminator alike (the trainer gives both phases the
# same betas); no weight decay, as for vqvae.
VQGAN_TRAIN = {"weight_decay": 0.0, "beta1": 0.5, "beta2": 0.9}

PRESETS = {
    # seconds on a CPU: vqvae's tiny preset with a small discriminator that starts at step 3, so that a 12-step test
    # run trains both phases (and its checkpoint at step 4 already holds the discriminator's optimizer state)
    "tiny": {
        "model": {**VQVAE_PRESETS["tiny"]["model"], "disc_width": 8, "disc_layers": 2, "disc_start": 3},
        "train": {**VQVAE_PRESETS["tiny"]["train"], **VQGAN_TRAIN},
    },
    # Fashion-MNIST: vqvae's fmnist preset (the same 7x7 tokens from 512 codes, width, steps and batch), the GAN on for
    # the last three fifths of the steps. A starting point, to be confirmed by bench/image_hybrid.py: disc_start,
    # disc_width, disc_weight and feature_weight are untuned on Fashion-MNIST.
    "fmnist": {
        "model": {**VQVAE_PRESETS["fmnist"]["model"], "disc_width": 32, "disc_layers": 2, "disc_start": 2000,
                  "disc_weight": 0.8},
        "train": {**VQVAE_PRESETS["fmnist"]["train"], **VQGAN_TRAIN},
    },
}
