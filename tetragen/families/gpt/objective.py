"""GPT training objective (one phase: next-token cross-entropy) and its evaluation."""
from __future__ import annotations

from ...eval.text import lm_metrics
from ...train.phase import Phase


def objective(model, cfg) -> list[Phase]:
    def loss(m, batch):
        _, loss = m(batch["x"], batch["y"])
        return loss, {}
    return [Phase("main", list(model.parameters()), loss)]


def evaluate(model, data, cfg, device) -> dict:
    return lm_metrics(model, data, device, max_tokens=cfg.train.eval_tokens)
