"""Likelihood bounds for latent-variable models: the ELBO, the importance-weighted bound, active units.

Importance Weighted Autoencoders (Burda, Grosse & Salakhutdinov 2015), arXiv:1509.00519: with K samples
z_k ~ q(z|x) and weights w_k = p(x, z_k) / q(z_k|x), log p(x) >= log (1/K) sum_k w_k >= (1/K) sum_k log w_k (the ELBO).
The bound tightens as K grows, so -log-mean-exp is the NLL estimate. Active units (same paper, section 5.2): latent
dimension u is active when Cov_x(E_q[z_u|x]) > 0.01.

Everything here takes log-weights or posterior means as tensors and knows nothing of a family.
"""
from __future__ import annotations

import math
import sys

import torch

from ..errors import UserError

MAX_IW_SAMPLES = 5000
ACTIVE_UNIT_THRESHOLD = 0.01


def check_iw_samples(k: int, flag: str = "--iw-samples") -> int:
    """A usable number of importance samples: at least 1; above MAX_IW_SAMPLES it is capped (said on stderr)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"{flag}: {k!r} importance samples; use at least 1 (1 is the ELBO; default 100)")
    if k > MAX_IW_SAMPLES:
        print(f"tetragen: {flag} {k} is more than needed; using {MAX_IW_SAMPLES} (the bound changes little past a "
              f"few hundred)", file=sys.stderr)
        return MAX_IW_SAMPLES
    return k


def log_mean_exp(log_w: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log((1/K) sum_k exp(log_w_k)) along `dim`, stable for large |log_w|."""
    return torch.logsumexp(log_w, dim=dim) - math.log(log_w.shape[dim])


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


def active_units(posterior_means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across inputs: Cov_x(E_q[z_u|x]) > threshold.
    `posterior_means` is (N, latent_dim)."""
    if posterior_means.shape[0] < 2:
        return 0
    return int((posterior_means.float().var(dim=0) > threshold).sum())
