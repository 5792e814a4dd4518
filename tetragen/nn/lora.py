"""LoRA: low-rank adapters on chosen linear layers; the base weights stay frozen.

LoRA: Low-Rank Adaptation of Large Language Models (Hu et al. 2021), https://arxiv.org/abs/2106.09685.
y = base(x) + (alpha / rank) * x A^T B^T, with A (rank, in) random and B (out, rank) zero, so training starts from
the base model exactly. `merge_state` folds the adapters into plain weights; `adapter_state` keeps only A and B.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import UserError

LORA_KEYS = (".lora_A", ".lora_B")


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update; its base keeps the layer's parameters under `base.`."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


def inject(model: nn.Module, targets: list[str], rank: int, alpha: float, family: str = "") -> list[str]:
    """Replace every nn.Linear whose last name part is in `targets` with a LoRALinear; freeze everything else.
    Returns the adapted module names; a target that names no linear layer is a user error."""
    linear = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    short = sorted({n.rsplit(".", 1)[-1] for n in linear})
    unknown = [t for t in targets if t not in short]
    if unknown or not targets:
        raise UserError(f"finetune.lora_targets: {', '.join(unknown) or '(empty)'} names no linear layer of this "
                        f"{family} model; choose from: {', '.join(short)}")
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = [n for n in linear if n.rsplit(".", 1)[-1] in targets]
    for name in chosen:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, LoRALinear(linear[name], rank, alpha))
    return chosen


def has_adapters(state: dict) -> bool:
    return any(k.endswith(LORA_KEYS) for k in state)


def adapter_state(state: dict) -> dict:
    return {k: v for k, v in state.items() if k.endswith(LORA_KEYS)}


def merge_state(state: dict, scale: float) -> dict:
    """A LoRA-structured state dict -> the plain model's: W + scale * B A under the layer's own name."""
    out = {}
    for k, v in state.items():
        if k.endswith(LORA_KEYS):
            continue
        if ".base." in k:
            prefix, _, leaf = k.rpartition(".base.")
            if leaf == "weight":
                v = v + scale * (state[f"{prefix}.lora_B"] @ state[f"{prefix}.lora_A"]).to(v.dtype)
            k = f"{prefix}.{leaf}"
        out[k] = v
    return out
