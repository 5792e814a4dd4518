"""BERT family configuration and its presets."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserError
from ...options import option


@dataclass
class BERTConfig:
    vocab_size: int = option(0, "vocabulary size (0: taken from the tokenizer)", min=0)
    block_size: int = option(128, "context length in tokens, [CLS] included", min=2)
    n_layer: int = option(4, "transformer blocks", min=1)
    n_head: int = option(4, "attention heads", min=1)
    n_embd: int = option(128, "embedding width", min=1)
    dropout: float = option(0.1, "dropout probability", min=0.0, max=0.9)
    bias: bool = option(True, "biases in linear layers and LayerNorms")
    activation: str = option("gelu_tanh", "MLP activation: the tanh-approximated GELU, or the exact GELU (faster on "
                                          "CPUs)", choices=["gelu_tanh", "gelu"])
    alibi: bool = option(False, "add ALiBi's distance penalty to the attention scores (besides the learned "
                                "positions): each position reads its neighbours from the first step, so a small "
                                "masked LM learns from them at once instead of after a long plateau")
    mask_prob: float = option(0.15, "fraction of positions chosen for the masked-LM loss (80% [MASK], 10% a random "
                                    "token, 10% kept)", min=0.0, max=1.0, min_exclusive=True)
    # the ids of [PAD], [MASK] and [CLS] in the run's tokenizer; filled in from the tokenizer like vocab_size
    special_ids: dict = option(None, "ids of the special tokens (set from the tokenizer)")
    num_labels: int = option(0, "classes of the sequence-classification head (0: none; set by finetune --task "
                                "classify)", min=0)
    labels: list = option(None, "class names in the classifier's output order (set by finetune --task classify, "
                                "also written to labels.json)")
    pooling: str = option("first", "what the classifier reads: the [CLS] position (first) or the mean over the "
                                   "text's tokens (mean)", choices=["first", "mean"])

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise UserError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")


PRESETS = {
    "tiny": {  # seconds on a CPU: tests and smoke runs
        "model": {"block_size": 32, "n_layer": 2, "n_head": 2, "n_embd": 32, "dropout": 0.0, "bias": False},
        "train": {"max_steps": 20, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 2,
                  "eval_every": 10, "save_every": 10, "log_every": 5, "eval_tokens": 2048},
    },
    "baby": {  # a CPU-size encoder (the GPT baby's width and depth): minutes on a laptop; with ALiBi: with
        # learned positions alone its masked-token loss stays near the unigram level for several hundred steps.
        # Without dropout: minutes of pre-training see a fraction of an epoch, and on CPU a dropout mask is slow to
        # draw and takes attention off its fused kernel, so at the quickstart's budget dropout cost more steps than
        # it gave back (docs/bert.md, "Measured"). A classifier fine-tuned on a few thousand rows sees them many
        # times: give it model.dropout=0.1 (bench/pretrain_finetune.py does). train.precision=auto: bf16 where the
        # CPU runs it faster (it ran more steps to a lower loss in the same time on an AMX CPU, docs/bert.md),
        # fp32 elsewhere
        "model": {"block_size": 128, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0, "bias": True,
                  "alibi": True},
        "train": {"max_steps": 2000, "batch_size": 16, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100,
                  "beta2": 0.99, "weight_decay": 0.01, "precision": "auto", "eval_every": 500, "save_every": 500,
                  "eval_tokens": 65536},
    },
}
