"""Latent diffusion configuration: the diffusion family's denoiser, objective, conditioning and sampler keys, over the
continuous latents of a trained autoencoder run (`autoencoder_run`), and its presets.

`image_size` and `channels` stay the images' (what the data is read at; they must be the autoencoder's); the
denoiser works at `latent_size` x `latent_size` with `latent_channels`, both taken from the autoencoder.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...options import option
from ..diffusion.config import CONDITIONS, DIFFUSION_TRAIN, DiffusionConfig


@dataclass
class LDMConfig(DiffusionConfig):
    cond: str = option("text", "what the denoiser is told besides the time: a text prompt (the image's caption, as "
                               "t2i reads them, through the run's own text encoder), the image's class, or nothing "
                               "(unconditional); dropped with cond_drop for classifier-free guidance",
                       choices=CONDITIONS)
    autoencoder_run: str = option("", "the folder of a trained vqvae, vqgan or (unconditional) vae run whose "
                                      "continuous latents (a vq tokenizer's where its codes are looked up, before "
                                      "the snap to a code) the denoiser learns; the run keeps a copy of it")
    latent_size: int = option(0, "latent grid side (0: taken from the autoencoder)", min=0)
    latent_channels: int = option(0, "latent channels (0: taken from the autoencoder)", min=0)
    latent_scale: float = option(0.0, "the latents are multiplied by this before the denoiser sees them, so that "
                                      "they have unit standard deviation as the noise does (0: measured on the "
                                      "training images when the run starts)", min=0.0)

    def latent_view(self) -> DiffusionConfig:
        """The diffusion config the denoiser is built from: this one at the latents' side and channels."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(DiffusionConfig)}
        return DiffusionConfig(**{**fields, "image_size": self.latent_size, "channels": self.latent_channels})


PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs
        "model": {"width": 8, "channel_mult": "1,2", "res_blocks": 1, "heads": 2, "depth": 2, "dit_width": 16,
                  "sample_steps": 4, "preview_images": 6, "text_width": 16, "text_layers": 1, "text_heads": 2},
        "train": {**DIFFUSION_TRAIN, "max_steps": 20, "batch_size": 8, "lr": 2e-3, "min_lr": 1e-4,
                  "warmup_steps": 0, "eval_samples": 0, "eval_every": 10, "save_every": 10, "log_every": 5},
    },
    # Fashion-MNIST through a vqvae's 7x7 latents: the latent grid is a sixteenth of the pixels, so the U-Net is
    # wider than the pixel one at the same cost per step (docs/ldm.md, "Measured")
    "fmnist": {
        "model": {"width": 64, "channel_mult": "1,2", "res_blocks": 2, "patch_size": 1, "heads": 4,
                  "eval_sweep": "4,8,16,32"},  # `tetragen eval` shows what fewer steps cost
        "train": {**DIFFUSION_TRAIN, "max_steps": 4000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "precision": "auto", "ema_decay": 0.998, "eval_samples": 1000,
                  "eval_every": 2000, "save_every": 500, "log_every": 50},
    },
}

# moving-fashion-mnist through a clip tokenizer's latents (vqvae `clip-latents`: 4 latent frames of 8x8x4, read as
# an 8x8 grid of 16 channels), told the clip's class (a diffusion run reads text prompts of images only), guided
# harder than images: the guidance scale was chosen by measurement (docs/video.md, "Latent diffusion")
PRESETS["clips"] = {"model": {**PRESETS["fmnist"]["model"], "cond": "class", "guidance_scale": 4.0},
                    "train": dict(PRESETS["fmnist"]["train"])}
