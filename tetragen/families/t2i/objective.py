"""Text-to-image prior objective (one phase: cross-entropy of the image tokens given the prompt) and evaluation:
the image-token NLL on the test split's captions, and FID/KID + prompted-class accuracy of class-prompted samples
in tetragen's evaluator (the same numbers every image family reports)."""
from __future__ import annotations

from ...train.phase import Phase
from .sample import T2IPipeline, test_nll


def objective(model, cfg) -> list[Phase]:
    return [Phase("main", [p for p in model.parameters() if p.requires_grad], lambda m, batch: m(batch))]


def evaluate(model, data, cfg, device) -> dict:
    """test_nll (the primary metric; lower is better) and, when train.eval_samples > 0, FID/KID and class_acc of
    class-prompted samples."""
    out = {"test_nll": test_nll(model, data, device)}
    if cfg.train.eval_samples:
        from ...eval.image import image_metrics
        pipe = T2IPipeline(model, data.assets, cfg)
        out.update(image_metrics(pipe.sample, data.images, n=cfg.train.eval_samples, device=device,
                                 conditional=pipe.conditional))
    return out
