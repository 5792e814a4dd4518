"""Diffusion family configuration (denoiser, objective, conditioning, sampler defaults) and its presets.

The image is denoised in pixel space. Any side and channel count the image data gives is taken: the U-Net pads the
image to the next multiple of patch_size * 2^(levels - 1) (the DiT to a multiple of patch_size) and crops its output
back, so 28x28 Fashion-MNIST runs at 28 -> 14 -> 7 with the default three levels, unpadded, and a fourth level (or
2x2 patches with three) would pad it to 32.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option

OBJECTIVES = ["flow", "eps", "v"]
CONDITIONS = ["class", "text", "none"]
SAMPLERS = ["euler", "heun", "dpm++"]
MAX_GUIDANCE = 50.0
MAX_STEPS = 1000


@dataclass
class DiffusionConfig:
    image_size: int = option(28, "image side in pixels (28 for Fashion-MNIST; left at 28, an image folder sets it "
                                 "to its images' side)", min=8)
    channels: int = option(1, "channels of a grid: 1 grey, 3 RGB, or one per frame of a clip (set from the data: an "
                              "image folder sets 3 when any of its images is in colour)", min=1)
    num_classes: int = option(0, "number of classes (0: taken from the data)", min=0)
    cond: str = option("class", "what the denoiser is told besides the time: the image's class, a text prompt (the "
                                "image's caption, as t2i reads them, through the run's own text encoder), or "
                                "nothing (unconditional); class and text are dropped with cond_drop for "
                                "classifier-free guidance", choices=CONDITIONS)
    text_block: int = option(48, "cond=text: prompt length in characters the text encoder reads (longer prompts "
                                 "are cut with a warning)", min=4)
    text_vocab_size: int = option(0, "cond=text: prompt vocabulary size (0: taken from the captions)", min=0)
    text_width: int = option(64, "cond=text: the text encoder's width", min=8)
    text_layers: int = option(2, "cond=text: the text encoder's transformer blocks", min=1)
    text_heads: int = option(4, "cond=text: the text encoder's attention heads", min=1)
    denoiser: str = option("unet", "unet: a convolutional U-Net with attention at its lowest resolution only; dit: "
                                   "a transformer over image patches with adaptive layer norm (DiT)",
                           choices=["unet", "dit"])
    width: int = option(16, "U-Net: channels at its first level", min=4)
    channel_mult: str = option("1,2,4", "U-Net: channel multiple of each resolution level, comma-separated; each "
                                        "level after the first halves the side (28: 28, 14, 7)")
    res_blocks: int = option(1, "U-Net: residual blocks per level on the way down (one more on the way up)", min=1)
    heads: int = option(4, "attention heads (U-Net: at the lowest resolution; DiT: in every block)", min=1)
    patch_size: int = option(1, "side of the square patches the denoiser works on: the U-Net folds each patch's "
                                  "pixels into channels before its first level (1: none), the DiT makes a token of "
                                  "each (give it 2 or 4: its attention costs the token count squared); the image "
                                  "is padded to a multiple of it", min=1)
    depth: int = option(6, "DiT: transformer blocks", min=1)
    dit_width: int = option(192, "DiT: embedding width", min=8)
    dropout: float = option(0.0, "dropout in the residual blocks (U-Net) or after attention and MLP (DiT)",
                            min=0.0, max=0.9)
    objective: str = option("flow", "flow: rectified flow, the network predicts the velocity noise - image along "
                                     "straight paths; eps / v: noise or v prediction on a cosine schedule",
                            choices=OBJECTIVES)
    time_mean: float = option(0.0, "flow: training times t = sigmoid(m + s n), n standard normal (logit-normal); "
                                   "this is m (above 0: more training at high noise)")
    time_std: float = option(1.0, "flow: the s of the logit-normal training times", min=0.0, min_exclusive=True)
    min_snr_gamma: float = option(5.0, "eps / v: min-SNR-gamma loss weights, min(SNR, gamma) / SNR for eps and "
                                       "min(SNR, gamma) / (SNR + 1) for v (0: off)", min=0.0)
    cond_drop: float = option(0.1, "probability that a training image's class is replaced by the null class, so "
                                   "that one model is both conditional and unconditional (classifier-free guidance)",
                              min=0.0, max=1.0)
    sampler: str = option("dpm++", "default sampler (the pipeline's sampler= chooses another without retraining): "
                                   "euler (1 evaluation a step), heun (2), dpm++ (DPM-Solver++(2M), 1)",
                          choices=SAMPLERS)
    sample_steps: int = option(16, "default sampler steps", min=1, max=MAX_STEPS)
    guidance_scale: float = option(1.5, "default classifier-free guidance (0: unconditional, 1: conditional, above "
                                        "1: guided; two evaluations a step unless 1)", min=0.0, max=MAX_GUIDANCE)
    eval_sweep: str = option("", "sampler steps at which `tetragen eval` also scores FID, comma-separated (e.g. "
                                 "4,8,16,32: adds fid_steps4, ...; each costs a full sampling pass; empty: none)")
    preview_images: int = option(40, "images in the sample grid saved at each evaluation (0: none)", min=0)

    @property
    def mults(self) -> list[int]:
        return [int(m) for m in self.channel_mult.split(",")]

    @property
    def sweep(self) -> list[int]:
        return [int(s) for s in self.eval_sweep.split(",")] if self.eval_sweep.strip() else []

    def validate(self) -> None:
        try:
            mults = self.mults
        except ValueError:
            raise UserError(f"model.channel_mult={self.channel_mult!r}: give positive integers separated by commas, "
                            f"e.g. 1,2,2") from None
        if not mults or min(mults) < 1 or len(mults) > 6:
            raise UserError(f"model.channel_mult={self.channel_mult!r}: one to six positive integers, e.g. 1,2,2")
        if self.text_width % self.text_heads:
            raise UserError(f"model.text_width ({self.text_width}) must be divisible by model.text_heads "
                            f"({self.text_heads})")
        if self.dit_width % self.heads:
            raise UserError(f"model.dit_width ({self.dit_width}) must be divisible by model.heads ({self.heads})")
        if self.denoiser == "unet" and any((self.width * m) % self.heads for m in mults[-1:]):
            raise UserError(f"model.width * the last model.channel_mult ({self.width * mults[-1]}) must be divisible "
                            f"by model.heads ({self.heads}): the lowest level's attention splits its channels")
        try:
            sweep = self.sweep
        except ValueError:
            raise UserError(f"model.eval_sweep={self.eval_sweep!r}: give step counts separated by commas, e.g. "
                            f"4,8,16,32") from None
        if any(not 1 <= s <= MAX_STEPS for s in sweep):
            raise UserError(f"model.eval_sweep={self.eval_sweep!r}: each step count from 1 to {MAX_STEPS}")


# No weight decay (it pulls a denoiser towards predicting the mean for nothing); Adam's beta2 0.999 as in DDPM and
# its successors; EMA of the weights for sampling.
DIFFUSION_TRAIN = {"weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "grad_clip": 1.0}

PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs (no FID: it would train the evaluator)
        "model": {"width": 8, "channel_mult": "1,2", "res_blocks": 1, "heads": 2, "depth": 2, "dit_width": 16,
                  "sample_steps": 4, "preview_images": 6, "text_width": 16, "text_layers": 1, "text_heads": 2},
        "train": {**DIFFUSION_TRAIN, "max_steps": 20, "batch_size": 8, "lr": 2e-3, "min_lr": 1e-4,
                  "warmup_steps": 0, "eval_samples": 0, "eval_every": 10, "save_every": 10, "log_every": 5},
    },
    # Fashion-MNIST 28x28 grey on a few CPU cores, class-conditional. The U-Net keeps full resolution but only 16
    # channels there (16, 32, 64 at 28, 14, 7): in short trials at equal wall-clock it scored a lower FID than 32
    # channels at full resolution (better steps, but fewer) and than 32 channels on 2x2 patches (more steps, but
    # worse); lr 2e-3 learned faster than 1e-3 in the same steps. Trials on a shared machine: to be re-measured
    # by the bench.
    "fmnist": {
        "model": {"width": 16, "channel_mult": "1,2,4", "res_blocks": 1, "patch_size": 1, "heads": 4,
                  "eval_sweep": "4,8,16,32"},  # `tetragen eval` shows what fewer steps cost
        "train": {**DIFFUSION_TRAIN, "max_steps": 4000, "batch_size": 64, "lr": 2e-3, "min_lr": 1e-4,
                  "warmup_steps": 100, "precision": "auto", "ema_decay": 0.998, "eval_samples": 1000,
                  "eval_every": 2000, "save_every": 500, "log_every": 50},
    },
}
