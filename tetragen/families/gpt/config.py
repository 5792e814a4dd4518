"""GPT family configuration and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option


@dataclass
class GPTConfig:
    vocab_size: int = option(0, "vocabulary size (0: taken from the tokenizer)", min=0)
    block_size: int = option(64, "context length in tokens", min=1)
    n_layer: int = option(4, "transformer blocks", min=1)
    n_head: int = option(4, "attention heads", min=1)
    n_embd: int = option(128, "embedding width", min=1)
    dropout: float = option(0.0, "dropout probability", min=0.0, max=0.9)
    bias: bool = option(True, "biases in linear layers and LayerNorms (GPT-2 has them)")
    activation: str = option("gelu_tanh", "MLP activation: GPT-2's tanh-approximated GELU, or the exact GELU "
                                          "(faster on CPUs)", choices=["gelu_tanh", "gelu"])

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise UserError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")


# Presets are plain overrides. `baby` is the nanoGPT Shakespeare-char CPU recipe, `small` its GPU-size model, `fast`
# the quickstart recipe (bench/lm_speed.py races it against baby).
PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs
        "model": {"block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.0, "bias": False},
        "train": {"max_steps": 20, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2,
                  "eval_every": 10, "save_every": 10, "log_every": 5, "eval_tokens": 2048},
    },
    "baby": {
        "model": {"block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0, "bias": False},
        "train": {"max_steps": 2000, "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100,
                  "beta2": 0.99, "weight_decay": 0.1, "eval_every": 250, "save_every": 500},
    },
    "fast": {  # what `tetragen quickstart` trains: baby's model with exact GELU, Muon for the blocks' matrices
        # (it reached AdamW's loss in far fewer steps: docs/gpt.md, "Measured"), batch 24, bf16 where native, a
        # high peak lr with a short warm-up and a linear decay to zero; one evaluation, at the end
        "model": {"block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0, "bias": False,
                  "activation": "gelu"},
        "train": {"max_steps": 700, "batch_size": 24, "lr": 1e-2, "min_lr": 0.0, "schedule": "linear",
                  "warmup_steps": 20, "beta2": 0.99, "weight_decay": 0.1, "optimizer": "muon",
                  "precision": "auto", "eval_every": 0, "save_every": 0, "log_every": 100},
    },
    "small": {
        "model": {"block_size": 256, "n_layer": 6, "n_head": 6, "n_embd": 384, "dropout": 0.2, "bias": False},
        "train": {"max_steps": 5000, "batch_size": 64, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100,
                  "beta2": 0.99, "weight_decay": 0.1, "eval_every": 250, "save_every": 500,
                  "eval_tokens": 65536},
    },
}
