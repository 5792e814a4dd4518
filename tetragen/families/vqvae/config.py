"""VQ-VAE family configuration (encoder/decoder size, downsampling, the codebook) and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option


@dataclass
class VQVAEConfig:
    """An image tokenizer: an image_size x image_size image becomes a grid of (image_size / downsample)^2 indices
    into a codebook of codebook_size codes. The defaults are the paper's (van den Oord et al. 2017): EMA codebook with
    decay 0.99, commitment weight beta 0.25, no restarts, no k-means."""
    image_size: int = option(28, "image side in pixels (28 for Fashion-MNIST; left at 28, an image folder sets it "
                                 "to its images' side)", min=4)
    channels: int = option(1, "channels of a grid: 1 grey, 3 RGB, or one per frame of a clip (set from the data: an "
                              "image folder sets 3 when any of its images is in colour)", min=1)
    width: int = option(64, "encoder/decoder channels at the first halving (doubling at each further one)", min=1)
    downsample: int = option(4, "image side / token grid side: a power of 2 dividing image_size (28 with 4: 7x7 "
                                "tokens, with 2: 14x14)", min=2)
    res_blocks: int = option(2, "residual blocks at the token resolution, in the encoder and in the decoder", min=0)
    codebook_size: int = option(512, "number of codes (the token vocabulary)", min=2)
    code_dim: int = option(0, "look codes up in this many dimensions, projecting in and out (ViT-VQGAN); 0: the "
                              "encoder's width at the token resolution", min=0)
    beta: float = option(0.25, "commitment weight: beta * ||z - sg(q)||^2 pulls the encoder towards its codes",
                         min=0.0)
    ema: bool = option(True, "move the codebook by exponential moving averages of its encodings (false: learn it "
                             "with the codebook loss ||sg(z) - q||^2)")
    ema_decay: float = option(0.99, "decay of the codebook's moving averages (cluster sizes, and the codes with ema)",
                              min=0.0, max=1.0, min_exclusive=True, max_exclusive=True)
    dead_code_threshold: float = option(0.0, "restart codes whose average assignments per training batch fall "
                                             "below this, from random encodings of the batch (0: off)", min=0.0)
    kmeans_init: bool = option(False, "initialise the codebook by k-means on the first training batch")
    cosine: bool = option(False, "l2-normalised codes and encodings (nearest code = most similar; ViT-VQGAN)")
    preview_images: int = option(32, "test images shown beside their reconstructions at each evaluation (0: none)",
                                 min=0)
    temporal: bool = option(False, "read a grid's channels as time (the frames of a clip): 3-D convolutions over "
                                   "(frames, height, width), so that tokens cover a stretch of time as well as a "
                                   "patch; tokens per clip = (channels / time_downsample) * (image_size / "
                                   "downsample)^2")
    time_downsample: int = option(1, "with model.temporal: frames / latent frames, a power of 2 dividing the "
                                     "frames and at most model.downsample (16 frames with 4: 4 latent frames)",
                                  min=1)
    output: str = option("tanh", "what the decoder's last layer gives: tanh (bounded to [-1, 1]) or linear (clamped "
                                 "to [-1.5, 1.5]; the pixels' conversion clamps the rest). Where most pixels are "
                                 "dark background, as in a clip, a tanh saturates there and the decoder may learn "
                                 "nothing but the dark frame (docs/vqvae.md, \"Clip latents\")",
                         choices=("tanh", "linear"))

    @property
    def grid_size(self) -> int:
        """Side of the token grid (of each latent frame, with temporal)."""
        return self.image_size // self.downsample

    @property
    def latent_frames(self) -> int:
        """Latent frames of a clip (temporal), else 1."""
        return self.channels // self.time_downsample if self.temporal else 1

    @property
    def token_shape(self) -> tuple[int, int]:
        """(rows, columns) of the token grid of one item. With temporal, the latent frames' grids stacked top to
        bottom, so that a clip's tokens are one 2-D grid whose raster order is (frame, row, column), what a prior
        over image tokens reads unchanged."""
        return (self.latent_frames * self.grid_size, self.grid_size)

    def check_frames(self) -> None:
        """With temporal: time_downsample divides the frames (model.channels, set from the data)."""
        if self.temporal and self.channels % self.time_downsample:
            raise UserError(f"model.time_downsample ({self.time_downsample}) must divide the {self.channels} frames "
                            f"of a clip (model.channels); use a power of 2 that divides it")

    def validate(self) -> None:
        d = self.downsample
        if d < 2 or d & (d - 1):
            raise UserError(f"model.downsample ({d}) must be a power of 2 (each stage halves the image); use e.g. "
                            f"model.downsample=4")
        if self.image_size % d:
            fits = [2 ** k for k in range(1, 6) if self.image_size % 2 ** k == 0]
            hint = f"use model.downsample={fits[-1]}" if fits else "use an even model.image_size"
            raise UserError(f"model.downsample ({d}) must divide model.image_size ({self.image_size}); {hint}")
        t = self.time_downsample
        if t & (t - 1):
            raise UserError(f"model.time_downsample ({t}) must be a power of 2 (each stage halves the frames); use "
                            f"e.g. model.time_downsample=2")
        if t > 1 and not self.temporal:
            raise UserError(f"model.time_downsample={t} needs model.temporal=true (without it the frames are "
                            f"channels, not time)")
        if t > d:
            raise UserError(f"model.time_downsample ({t}) may be at most model.downsample ({d}): time is halved at "
                            f"the spatial halvings; raise model.downsample or lower model.time_downsample")


# No weight decay: it would pull the codes (a learned codebook) and the decoder's weights towards zero for nothing.
VQVAE_TRAIN = {"weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999}

PRESETS = {
    # seconds on a CPU: tests and smoke runs (no FID: it would train the evaluator). fmnist's switches, with a short
    # EMA memory so that codes unused since the k-means start are restarted within the 20 steps
    "tiny": {
        "model": {"width": 8, "downsample": 4, "res_blocks": 1, "codebook_size": 16, "kmeans_init": True,
                  "dead_code_threshold": 1.0, "ema_decay": 0.8, "preview_images": 8},
        "train": {**VQVAE_TRAIN, "max_steps": 20, "batch_size": 8, "lr": 3e-3, "min_lr": 1e-4, "warmup_steps": 0,
                  "eval_samples": 0, "eval_every": 10, "save_every": 10, "log_every": 5},
    },
    # Fashion-MNIST 28x28 grey -> 7x7 = 49 tokens from 512 codes (9 bits each). Chosen by measurement (bench/RESULTS.md,
    # "Image tokenizers compared on Fashion-MNIST"; docs/vqvae.md, "Measured"): 512 codes reconstruct better than
    # 256; 1024 no worse, but what twice the codes cost the prior's learning was not measured; a 14x14 grid
    # reconstructs far better, but its 196 tokens make every training step of the prior dearer and sampling four times
    # as long, which a CPU budget cannot pay. k-means initialisation and restarts of codes used less than once per
    # batch keep every code in use.
    "fmnist": {
        "model": {"width": 64, "downsample": 4, "res_blocks": 2, "codebook_size": 512, "kmeans_init": True,
                  "dead_code_threshold": 1.0},
        "train": {**VQVAE_TRAIN, "max_steps": 5000, "batch_size": 128, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "precision": "auto", "eval_samples": 2000, "eval_every": 1000,
                  "save_every": 500, "log_every": 50},
    },
    # moving-fashion-mnist (16 frames of 32x32) -> 4 latent frames of 8x8 = 256 tokens from 512 codes, by 3-D
    # convolutions over (frames, height, width). Chosen by measurement (docs/vqvae.md, "Clips: model.temporal"):
    # fewer tokens had not learnt to draw the garments (only a dark frame) in the minutes tried; at this count a 2-D
    # tokenizer reconstructed about as well, and the temporal one, narrow enough to step as fast, used more codes.
    # fmnist's codebook switches.
    "clips": {
        "model": {"temporal": True, "time_downsample": 4, "width": 16, "downsample": 4, "res_blocks": 2,
                  "codebook_size": 512, "kmeans_init": True, "dead_code_threshold": 1.0},
        "train": {**VQVAE_TRAIN, "max_steps": 2000, "batch_size": 32, "lr": 1e-3, "min_lr": 1e-4,
                  "warmup_steps": 50, "precision": "auto", "eval_samples": 1000, "eval_every": 500,
                  "save_every": 250, "log_every": 25},
    },
}

# Fashion-MNIST for a latent diffusion run (ldm reads the encodings where codes are looked up): fmnist's, with codes
# looked up in 4 dimensions, so a 7x7x4 latent. Chosen by measurement (docs/ldm.md, "Measured"): a denoiser learns
# these far better than fmnist's 128 dimensions a cell, for a slightly worse reconstruction.
PRESETS["latents"] = {"model": {**PRESETS["fmnist"]["model"], "code_dim": 4},
                      "train": dict(PRESETS["fmnist"]["train"])}

# moving-fashion-mnist for a latent diffusion run: clips', with codes looked up in 4 dimensions, so 4 latent frames
# of 8x8x4, which ldm reads as an 8x8 grid of 16 channels, and a linear last layer (with tanh, codes this narrow fell
# into drawing only dark frames from the first steps). Chosen by measurement (docs/video.md, "Latent diffusion").
PRESETS["clip-latents"] = {"model": {**PRESETS["clips"]["model"], "code_dim": 4, "output": "linear"},
                           "train": dict(PRESETS["clips"]["train"])}
