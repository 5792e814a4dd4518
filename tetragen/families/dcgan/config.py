"""DCGAN family configuration (architecture, adversarial objective, evaluation size) and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option
from ...nn.augment import parse_policy
from ...nn.gan_losses import LOSSES


@dataclass
class DCGANConfig:
    image_size: int = option(28, "image side in pixels (28 for Fashion-MNIST; left at 28, an image folder sets it "
                                 "to its images' side)", min=8)
    channels: int = option(1, "channels of a grid: 1 grey, 3 RGB, or one per frame of a clip (set from the data: an "
                              "image folder sets 3 when any of its images is in colour)", min=1)
    latent_dim: int = option(100, "size of the noise vector z", min=1)
    g_width: int = option(64, "generator channels at full resolution (doubling at each halving)", min=1)
    d_width: int = option(64, "discriminator channels at full resolution (doubling at each halving)", min=1)
    layers: int = option(0, "0: the generator draws the whole grid at once; k > 0: it reads the grid's channels as "
                            "the frames of a clip, draws k pictures once and shifts each by whole pixels in each frame, "
                            "by a shift of its own learnt from the noise and class (content and motion apart, so what "
                            "is drawn keeps its look; one layer per thing that moves on its own)", min=0)
    upsample: str = option("transposed", "generator up-sampling", choices=["transposed", "nearest"])
    loss: str = option("nonsaturating", "adversarial loss", choices=list(LOSSES))
    spectral_norm: bool = option(False, "spectral normalization of the discriminator's weights")
    diffaugment: str = option("", "DiffAugment policy for D's inputs, e.g. translation,cutout (empty: off)")
    class_loss: float = option(0.0, "conditional models: weight of a class head on the discriminator's features "
                                    "(AC-GAN): it learns the real items' classes, and the generator is asked to make "
                                    "fakes it reads as the asked class (0: off)", min=0.0)
    d_lr_scale: float = option(1.0, "discriminator learning rate relative to train.lr (the generator's is 1)",
                               min=0.0, min_exclusive=True)
    channels_last: bool = option(False, "NHWC memory layout for the convolutions (faster on CPUs)")
    preview_images: int = option(64, "images in the sample grid saved at each evaluation (0: none)", min=0)

    def validate(self) -> None:
        if self.image_size % 2:
            raise UserError(f"model.image_size ({self.image_size}) must be even (the generator doubles the size "
                            f"at least once); use e.g. 28, 32 or 64")
        if self.class_loss and not hasattr(self, "num_classes"):
            raise UserError(f"model.class_loss={self.class_loss}: this family draws without classes, so there is no "
                            f"class to learn; use cgan, or leave model.class_loss at 0")
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise UserError(f"model.diffaugment: {e}") from None


# GAN recipes: Adam betas (0.5, 0.999) as in DCGAN, a constant learning rate, no weight decay, no gradient clipping.
GAN_TRAIN = {"beta1": 0.5, "beta2": 0.999, "weight_decay": 0.0, "grad_clip": 0.0, "schedule": "constant",
             "warmup_steps": 0}

PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs
        "model": {"latent_dim": 16, "g_width": 8, "d_width": 8, "preview_images": 16},
        "train": {**GAN_TRAIN, "max_steps": 20, "batch_size": 8, "lr": 2e-4, "min_lr": 0.0, "eval_samples": 32,
                  "eval_every": 10, "save_every": 10, "log_every": 5},
    },
    # Fashion-MNIST 28x28 grey on a few CPU cores: width 32, bf16 where the CPU runs it faster and channels-last,
    # because each made a step far cheaper than width 64 and fp32 NCHW on a 2-core CPU (docs/dcgan.md,
    # "Measured"). A short CPU budget buys a few thousand steps (bench/RESULTS.md, "Same seed, two runs of
    # `tetragen bench`"), so the EMA horizon is about 200 steps (0.995), not DCGAN-paper length.
    "fmnist": {
        "model": {"latent_dim": 64, "g_width": 32, "d_width": 32, "spectral_norm": True, "channels_last": True},
        "train": {**GAN_TRAIN, "max_steps": 3000, "batch_size": 64, "lr": 2e-4, "min_lr": 0.0,
                  "precision": "auto", "ema_decay": 0.995, "eval_samples": 2000, "eval_every": 1000,
                  "save_every": 500, "log_every": 50},
    },
}
# Clips learnt as grids with a channel per frame: the fmnist recipe with a generator that draws a clip's thing once and
# moves it from frame to frame (model.layers=1), which keeps its look across frames (docs/video.md, "Measured").
PRESETS["clips"] = {"model": {**PRESETS["fmnist"]["model"], "layers": 1}, "train": dict(PRESETS["fmnist"]["train"])}
