"""The optimizers (AdamW with decay/no-decay parameter groups, or Muon for the transformer blocks' matrices with
AdamW for the rest) and the learning-rate schedule (a pure function of the step, and of where a budgeted run
re-planned its length)."""
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


def block_matrices(model: torch.nn.Module) -> set[int]:
    """ids of the weight matrices of the linear layers inside transformer blocks: the parameters Muon updates."""
    from ..nn.transformer import Block
    return {id(m.weight) for block in model.modules() if isinstance(block, Block)
            for m in block.modules() if type(m) is torch.nn.Linear}


def make_optimizer(params, cfg: TrainConfig, device_type: str, model: torch.nn.Module):
    """train.optimizer: AdamW for everything, or Muon for the blocks' matrices and AdamW for the rest (embeddings,
    output heads, biases, norms), both at the scheduled lr."""
    if cfg.optimizer == "adamw":
        return make_adamw(params, cfg, device_type)
    params = [p for p in params if p.requires_grad]
    matrices = block_matrices(model)
    hidden = [p for p in params if id(p) in matrices]
    if not hidden:
        from ..errors import UserError
        raise UserError("train.optimizer=muon: this model has no transformer-block weight matrices to apply it to; "
                        "use train.optimizer=adamw")
    rest = [p for p in params if id(p) not in matrices]
    muon = Muon(hidden, lr=cfg.lr, momentum=cfg.muon_momentum, weight_decay=cfg.weight_decay)
    return Combined(muon, make_adamw(rest, cfg, device_type)) if rest else muon


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Muon's quintic Newton-Schulz iteration: maps each matrix G = U S V^T of g (..., rows, cols) to about U S' V^T
    with S' near 1 (between ~0.7 and ~1.2), in g's own dtype (fp32 here: CPUs without native bf16 emulate it many
    times slower)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm(dim=(-2, -1), keepdim=True) + 1e-7)     # spectral norm <= Frobenius norm <= 1
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT                                              # iterate on the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """Muon (K. Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/): SGD with Nesterov momentum whose
    update of each weight matrix is orthogonalised, so every direction of the matrix moves at the same rate. The
    step is scaled by 0.2 * sqrt(max(rows, cols)), which gives it the RMS of an AdamW step (Liu et al. 2025,
    https://arxiv.org/abs/2502.16982), so it takes AdamW's lr and weight decay. Decoupled weight decay."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.95, weight_decay: float = 0.0,
                 ns_steps: int = 5):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, ns_steps=ns_steps))
        for group in self.param_groups:
            if any(p.dim() != 2 for p in group["params"]):
                raise ValueError("Muon updates 2-D weight matrices only")

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            by_shape: dict[tuple, list] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
            for shape, params in by_shape.items():  # matrices of one shape are orthogonalised in one batch
                updates = []
                for p in params:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    buf = state["momentum_buffer"]
                    buf.mul_(mu).add_(p.grad)
                    updates.append(p.grad.add(buf, alpha=mu))                       # Nesterov
                ortho = orthogonalize(torch.stack(updates), group["ns_steps"])
                for p, u in zip(params, ortho):
                    p.mul_(1.0 - lr * wd)
                    p.add_(u, alpha=-lr * 0.2 * math.sqrt(max(shape)))


class Combined:
    """Several optimizers stepped as one (Muon + AdamW). Its state_dict has torch's layout (parameters numbered
    across every group in order), so checkpoints treat it like any optimizer."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict:
        state, groups, offset = {}, [], 0
        for opt in self.optimizers:
            sd = opt.state_dict()
            state.update({i + offset: s for i, s in sd["state"].items()})
            groups += [{**g, "params": [i + offset for i in g["params"]]} for g in sd["param_groups"]]
            offset += sum(len(g["params"]) for g in sd["param_groups"])
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        first, offset = 0, 0
        for opt in self.optimizers:
            groups = sd["param_groups"][first:first + len(opt.param_groups)]
            n = sum(len(g["params"]) for g in groups)
            opt.load_state_dict({"state": {i - offset: s for i, s in sd["state"].items() if offset <= i < offset + n},
                                 "param_groups": [{**g, "params": [i - offset for i in g["params"]]}
                                                  for g in groups]})
            first, offset = first + len(groups), offset + n


def decay_progress(step: int, cfg: TrainConfig, anchor: tuple[int, float] | None = None) -> float:
    """How far (0 to 1) the decay after the warm-up has gone at `step`. `anchor` = (step, progress): where a
    `train.budget_minutes` run re-planned its length; from there the decay goes the rest of its way over the steps
    left to train.max_steps, so the curve bends but does not jump."""
    start, done = (cfg.warmup_steps, 0.0) if anchor is None else (int(anchor[0]), float(anchor[1]))
    span = max(1, cfg.max_steps - start)
    return min(1.0, max(done, done + (1.0 - done) * (step - start) / span))


def lr_at(step: int, cfg: TrainConfig, anchor: tuple[int, float] | None = None) -> float:
    """Linear warm-up to train.lr, then cosine (or linear) decay to train.min_lr at train.max_steps (`anchor`: see
    decay_progress)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    if cfg.schedule == "constant":
        return cfg.lr
    progress = decay_progress(step, cfg, anchor)
    if cfg.schedule == "linear":
        return cfg.lr + (cfg.min_lr - cfg.lr) * progress
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)
