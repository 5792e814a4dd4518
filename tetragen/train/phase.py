"""The contract between a family and the trainer.

A family's `objective(model, run_config)` returns a list of `Phase`s. Each training step the trainer runs every phase
in order: zero that phase's gradients, accumulate `loss(model, batch)` over the micro-batches, clip, and step that
phase's own AdamW. One phase for GPT; a GAN has "disc" (on detached fakes) then "gen".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Phase:
    name: str
    params: list[torch.nn.Parameter]
    # loss(model, batch) -> (scalar loss, {metric: float tensor}); `model` may be wrapped (compiled or DDP).
    loss: Callable[..., tuple[torch.Tensor, dict]]
    lr_scale: float = 1.0                    # this phase's lr relative to train.lr (e.g. separate G/D rates)
    extra: dict = field(default_factory=dict)
