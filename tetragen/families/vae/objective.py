"""VAE training objective (one phase: the negative ELBO, KL warmed up and floored by free bits; with a classifier the
semi-supervised M2 objective) and evaluation (test-split ELBO, active units, reconstruction error, the classifier's
accuracy, and FID/KID of samples)."""
from __future__ import annotations

import torch

from ...data.images import test_batches
from ...eval.likelihood import active_units, log_mean_exp
from ...train.phase import Phase
from ..dcgan.objective import evaluate as sample_metrics

def kl_weight(model, cfg) -> float:
    """beta, scaled by the KL warm-up: 0 at the first step, beta after model.kl_warmup_steps optimizer steps."""
    c = cfg.model
    if c.kl_warmup_steps == 0:
        return c.beta
    step = int(model.trained_batches) // cfg.train.grad_accum
    return c.beta * min(1.0, step / c.kl_warmup_steps)


def class_weight(cfg) -> float:
    """Weight of the classifier's cross-entropy per labelled image, relative to its ELBO (models with a classifier).
    M2's alpha = classifier_alpha * N multiplies the labelled images' mean cross-entropy in an objective summed over
    all N training images; per labelled image that is classifier_alpha * N / N_labelled = classifier_alpha /
    data.label_fraction (2.0 at the paper's 0.1 and 5% labels)."""
    return getattr(cfg.model, "classifier_alpha", 0.0) / cfg.data.label_fraction


def objective(model, cfg) -> list[Phase]:
    def loss(m, batch):
        weight = kl_weight(model, cfg)
        out = m(batch, kl_weight=weight, free_bits=cfg.model.free_bits, class_weight=class_weight(cfg))
        model.trained_batches += 1
        return out
    return [Phase("main", [p for p in model.parameters() if p.requires_grad], loss)]


@torch.no_grad()
def likelihood_metrics(model, data, device, *, iw_samples: int = 1, seed: int = 0, limit: int = 0) -> dict:
    """Over the test split, in nats per image (lower is better): "neg_elbo" (mean over the iw_samples of
    -log w), "nll_iw" (-log-mean-exp of the same weights: the importance-weighted bound, never above neg_elbo), plus
    "kl", "recon_mse" (decoder mean at the posterior mean vs the image, grey values in [0, 1]) and "active_units";
    for a model with a classifier, "classifier_acc": the test accuracy of q(y|x) (higher is better).
    Noise comes from a generator seeded with `seed`: the same numbers every call, training's RNG untouched."""
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    sums = {"neg_elbo": 0.0, "nll_iw": 0.0, "kl": 0.0, "recon_se": 0.0}
    means, count, pixels, correct = [], 0, 0, 0
    for x, y in test_batches(data, device, limit):
        labels = y if model.conditional else None
        chunk = max(1, 4096 // iw_samples)                             # images per pass: k * chunk decoder rows
        for i in range(0, len(x), chunk):
            log_w = model.log_weights(x[i:i + chunk], None if labels is None else labels[i:i + chunk],
                                      iw_samples, generator=g)        # (b, k)
            sums["neg_elbo"] -= float(log_w.mean(1).sum())
            sums["nll_iw"] -= float(log_mean_exp(log_w, 1).sum())
        mu, logvar = model.encode(x, labels)
        sums["kl"] += float((0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar)).sum())
        recon = model.generate(mu, labels)
        sums["recon_se"] += float((((recon - x) * 0.5) ** 2).sum())  # in grey values [0, 1]
        means.append(mu.float().cpu())
        if model.classifier is not None:
            correct += int((model.classify(x).argmax(1) == y).sum())
        count += len(x)
        pixels += x[0].numel() * len(x)
    out = {"neg_elbo": sums["neg_elbo"] / count, "nll_iw": sums["nll_iw"] / count, "kl": sums["kl"] / count,
           "recon_mse": sums["recon_se"] / pixels, "active_units": float(active_units(torch.cat(means))),
           "test_images": float(count), "iw_samples": float(iw_samples)}
    if model.classifier is not None:
        out["classifier_acc"] = correct / count
    return out


def evaluate(model, data, cfg, device) -> dict:
    """Test-split -ELBO in nats per image ("neg_elbo", one posterior sample per image, the primary metric), its KL
    part, recon_mse, active_units (and classifier_acc with a classifier); FID/KID of train.eval_samples samples when
    that is above 0."""
    m = likelihood_metrics(model, data, device, iw_samples=1)
    out = {k: m[k] for k in ("neg_elbo", "kl", "recon_mse", "active_units", "classifier_acc") if k in m}
    out.update(sample_metrics(model, data, cfg, device))
    return out
