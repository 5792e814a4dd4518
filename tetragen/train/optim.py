"""AdamW with decay/no-decay parameter groups and the learning-rate schedule (a pure function of the step)."""
from __future__ import annotations

import math

import torch

from ..config import TrainConfig


def param_groups(params, weight_decay: float) -> list[dict]:
    """Matrices (linear and embedding weights) decay; biases and norm gains (1-D) do not."""
    params = [p for p in params if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_adamw(params, cfg: TrainConfig, device_type: str) -> torch.optim.Optimizer:
    # The fused kernel is one pass over all parameters on CPU and CUDA alike; same arithmetic, less overhead.
    return torch.optim.AdamW(param_groups(params, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                             fused=device_type in ("cpu", "cuda"))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to train.lr, then cosine (or linear) decay to train.min_lr at train.max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        return cfg.lr + (cfg.min_lr - cfg.lr) * progress
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
