"""Language-model metrics: mean negative log-likelihood (nats per token) and bits per character."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def split_phrase(eval_tokens: int) -> str:
    """Which part of the validation split a text evaluation read (train.eval_tokens)."""
    return "the full validation split" if not eval_tokens else f"the first {eval_tokens} validation tokens"


@torch.no_grad()
def lm_metrics(model: torch.nn.Module, data, device: torch.device, *, max_tokens: int = 0,
               batch_size: int = 32) -> dict:
    """Exact mean NLL over the validation split in non-overlapping windows of the model's context (fp32).

    Returns val_loss (nats/token), val_bpc (bits per character of the text those tokens stand for), val_tokens.
    """
    total_nats, total_tokens, chars = 0.0, 0, 0
    for batch in data.val_batches(batch_size, max_tokens):
        x, y = batch["x"].to(device), batch["y"].to(device)
        logits, _ = model(x)
        total_nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1),
                                      reduction="sum").item()
        total_tokens += y.numel()
        chars += data.tokenizer.num_chars(y.reshape(-1).cpu().numpy())
    return {"val_loss": total_nats / total_tokens, "val_bpc": total_nats / math.log(2) / max(chars, 1),
            "val_tokens": float(total_tokens)}
