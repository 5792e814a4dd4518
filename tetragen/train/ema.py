"""Exponential moving average of a model's weights (Polyak averaging); evaluation and sampling can use it."""
from __future__ import annotations

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """The decay after `step` earlier updates: (1 + step) / (4 + step) up to `decay`, so that early on the
        average reaches back over about the last third of the run. With `decay` from the first step, a run shorter
        than a few times 1 / (1 - decay) steps would keep much of its random start in the average; a longer run ends
        with the same average either way."""
        return min(self.decay, (1.0 + step) / (4.0 + step))

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        """Fold in the model's weights after the optimiser step that follows `step` earlier ones."""
        decay = self.decay_at(step)
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v, 1.0 - decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
