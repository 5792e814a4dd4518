"""Text-to-image prior configuration and its presets.

The prior is a transformer over one sequence: the prompt's tokens (padded to `text_block`), then the image's tokens
from a frozen image tokenizer run (`tokenizer_run`, a family with the "tokenize" capability such as vqvae). The
fields after `preview_images` are not set by the user: they are read from the tokenizer run and the captions when
the data is loaded, and kept in config.json so that a saved run describes itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option

PRIORS = ["causal", "masked"]


@dataclass
class T2IConfig:
    tokenizer_run: str = option("", "the trained image tokenizer run (e.g. a vqvae run) whose tokens the prior "
                                    "models; it stays frozen, and a copy travels inside this run")
    prior: str = option("causal", "causal: a GPT over [text ; image tokens] in raster order, decoded token by token "
                                  "with a KV cache; masked: a bidirectional transformer that fills masked image "
                                  "tokens and decodes by iterative parallel unmasking (MaskGIT)", choices=PRIORS)
    text_block: int = option(48, "prompt tokens the prior reads (a longer prompt is cut, with a warning)", min=1)
    n_layer: int = option(4, "transformer blocks", min=1)
    n_head: int = option(4, "attention heads", min=1)
    n_embd: int = option(128, "embedding width", min=1)
    dropout: float = option(0.0, "dropout probability (a prior trained for minutes sees an epoch or two of its "
                                 "captions, where dropout only slows it down)", min=0.0, max=0.9)
    activation: str = option("gelu", "MLP activation", choices=["gelu", "gelu_tanh"])
    cond_drop: float = option(0.1, "probability that a training caption is replaced by the empty prompt, so that "
                                   "one model is both conditional and unconditional (classifier-free guidance)",
                              min=0.0, max=1.0)
    guidance_scale: float = option(2.0, "default classifier-free guidance at sampling (0: unconditional, 1: "
                                        "conditional, above 1: guided)", min=0.0, max=50.0)
    steps: int = option(8, "masked prior: unmasking steps at sampling (default)", min=1)
    temperature: float = option(1.0, "default sampling temperature (0: the most likely token)", min=0.0)
    top_k: int = option(0, "default top-k filter at sampling (0: off)", min=0)
    choice_temperature: float = option(4.5, "masked prior: noise added to the confidences that pick which tokens "
                                            "stay masked, annealed to 0 over the steps (MaskGIT's 4.5)", min=0.0)
    preview_images: int = option(16, "images in the sample grid saved at each evaluation (0: none)", min=0)
    # read from the tokenizer run and the captions when the data is loaded
    image_size: int = option(0, "(from the tokenizer run) image side in pixels", min=0)
    channels: int = option(0, "(from the tokenizer run) image channels", min=0)
    codebook_size: int = option(0, "(from the tokenizer run) image-token vocabulary", min=0)
    grid_h: int = option(0, "(from the tokenizer run) token rows per image", min=0)
    grid_w: int = option(0, "(from the tokenizer run) token columns per image", min=0)
    text_vocab_size: int = option(0, "(from the captions) prompt-token vocabulary, its padding id included", min=0)
    num_classes: int = option(0, "(from the data) classes, for prompts that sweep every class", min=0)

    @property
    def image_tokens(self) -> int:
        return self.grid_h * self.grid_w

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise UserError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")


_FMNIST_TRAIN = {"max_steps": 4000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 200,
                 "precision": "auto", "eval_samples": 2000, "eval_every": 1000, "save_every": 500, "log_every": 50,
                 "weight_decay": 0.01}

PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs
        "model": {"text_block": 24, "n_layer": 1, "n_head": 2, "n_embd": 32, "dropout": 0.0, "steps": 3,
                  "preview_images": 4},
        "train": {"max_steps": 12, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 0,
                  "eval_samples": 0, "eval_every": 6, "save_every": 4, "log_every": 2, "weight_decay": 0.0},
    },
    # Fashion-MNIST through a 7x7-token vqvae: 49 image tokens after up to 40 prompt characters. The causal prior is
    # the default: trained for 10 minutes it scored a far lower FID than the masked one at the same prompted-class
    # accuracy, and drew images several times as fast (bench/RESULTS.md, "Prompt -> image on Fashion-MNIST").
    # No dropout: with it both priors ran fewer steps in those minutes and scored worse (docs/t2i.md,
    # "Measured"). Not measured against fmnist-small at 10 minutes.
    "fmnist": {
        "model": {"text_block": 40, "n_layer": 6, "n_head": 4, "n_embd": 192, "dropout": 0.0},
        "train": _FMNIST_TRAIN,
    },
    # For a few minutes: a causal 4 x 128 prior without dropout. At 5 minutes on the same tokenizer it beat the 6 x 192
    # one on FID, prompted-class accuracy and images/s with twice the steps, and dropout cost both sizes half their
    # steps and most of their quality (bench/RESULTS.md, "Prompt -> image priors compared: size and dropout"): on
    # CPU a dropout mask is slow to draw and takes attention off its fused kernel, while a few minutes see only one
    # or two epochs of the captions. What the quickstart trains.
    "fmnist-small": {
        "model": {"prior": "causal", "text_block": 40, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": _FMNIST_TRAIN,
    },
    # moving-fashion-mnist through vqvae's `clips` tokenizer (256 tokens per clip): fmnist-small's prior with a text
    # block that reads the longest caption whole ("a photo of an ankle boot moving down-right, large and light"),
    # so the motion words at a caption's end are never cut. No prompted clips drawn while training: 256 tokens a clip
    # make sampling dear (docs/vqvae.md, "Clips"); `tetragen eval` scores them after. Not yet measured against
    # other sizes.
    "clips": {
        "model": {"prior": "causal", "text_block": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0},
        "train": {**_FMNIST_TRAIN, "eval_samples": 0},
    },
}
