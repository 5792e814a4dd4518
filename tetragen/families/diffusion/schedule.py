"""The noise path, the network's parameterisations and the training loss of each objective.

Time t runs from 0 (data) to 1 (noise), and every objective noises an image x0 with a standard normal eps as

    x_t = alpha(t) x0 + sigma(t) eps

- `flow` (rectified flow / flow matching: Liu et al. 2022, arXiv:2209.03003; Lipman et al. 2022,
  arXiv:2210.02747): alpha = 1 - t, sigma = t; the network predicts the velocity v = eps - x0 of the straight path.
  Training times are logit-normal, t = sigmoid(m + s n) (Esser et al. 2024, arXiv:2403.03206): the middle of the path,
  where the velocity is hardest to guess, gets most of the training.
- `eps` and `v` (Ho et al. 2020, arXiv:2006.11239; Salimans & Ho 2022, arXiv:2202.00512): the cosine schedule
  alpha = cos(a t + b), sigma = sin(a t + b), with a and b set so that log(alpha^2 / sigma^2) runs from +20 to -20
  (Nichol & Dhariwal 2021, arXiv:2102.09672, in its continuous form); the network predicts eps, or v = alpha eps -
  sigma x0. Training times are uniform, and the loss is weighted by min-SNR-gamma (Hang et al. 2023,
  arXiv:2303.09556): min(SNR, gamma) / SNR for eps, min(SNR, gamma) / (SNR + 1) for v, SNR = alpha^2 / sigma^2.

Whatever it predicts, the network's output turns into estimates of x0 and eps (`predictions`), which is all the
solvers (solvers.py) use: the probability-flow ODE dx/dt = alpha'(t) x0_hat + sigma'(t) eps_hat is the same for
every objective.
"""
from __future__ import annotations

import math

import torch

LOGSNR_MAX, LOGSNR_MIN = 20.0, -20.0
_B = math.atan(math.exp(-LOGSNR_MAX / 2))
_A = math.atan(math.exp(-LOGSNR_MIN / 2)) - _B


def alpha_sigma(t, objective: str):
    """alpha(t), sigma(t) for a float or a tensor t in [0, 1]."""
    if objective == "flow":
        return 1 - t, t
    angle = _A * t + _B
    if isinstance(angle, torch.Tensor):
        return torch.cos(angle), torch.sin(angle)
    return math.cos(angle), math.sin(angle)


def derivatives(t: float, objective: str) -> tuple[float, float]:
    """alpha'(t), sigma'(t)."""
    if objective == "flow":
        return -1.0, 1.0
    angle = _A * t + _B
    return -_A * math.sin(angle), _A * math.cos(angle)


def log_snr(t: float, objective: str) -> float:
    """lambda(t) = log(alpha / sigma): +inf at a flow's t = 0 (no noise), -inf at its t = 1 (no image)."""
    alpha, sigma = alpha_sigma(t, objective)
    if sigma <= 0:
        return math.inf
    if alpha <= 0:
        return -math.inf
    return math.log(alpha) - math.log(sigma)


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) to broadcast over images."""
    return v.view(-1, *([1] * (like.ndim - 1)))


def predictions(out: torch.Tensor, x: torch.Tensor, t: float, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's output at (x_t, t) -> (x0_hat, eps_hat). An eps network's x0_hat is clipped to the images'
    [-1, 1] (and eps_hat made to agree): near t = 1 it divides by an alpha of 5e-5, and any error in eps_hat would
    come out 20000 times larger (DDPM's clipped denoising)."""
    alpha, sigma = alpha_sigma(t, objective)
    if objective == "flow":                     # v = eps - x0
        return x - t * out, x + (1 - t) * out
    if objective == "v":                        # v = alpha eps - sigma x0; alpha^2 + sigma^2 = 1
        return alpha * x - sigma * out, sigma * x + alpha * out
    x0 = ((x - sigma * out) / alpha).clamp(-1, 1)
    return x0, (x - alpha * x0) / sigma


def velocity(out: torch.Tensor, x: torch.Tensor, t: float, objective: str) -> torch.Tensor:
    """dx/dt of the probability-flow ODE at (x, t): alpha'(t) x0_hat + sigma'(t) eps_hat."""
    x0, eps = predictions(out, x, t, objective)
    d_alpha, d_sigma = derivatives(t, objective)
    return d_alpha * x0 + d_sigma * eps


def training_times(n: int, objective: str, mean: float, std: float, device) -> torch.Tensor:
    """(n,) training times from the global generator: logit-normal for flow, uniform otherwise."""
    if objective == "flow":
        return torch.sigmoid(mean + std * torch.randn(n, device=device))
    return torch.rand(n, device=device)


def loss_terms(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, objective: str,
               min_snr_gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images x0 (B, C, H, W), noise eps and times t (B,) -> (x_t, the network's target, each image's loss weight
    (B,))."""
    alpha, sigma = alpha_sigma(t, objective)
    a, s = _expand(alpha, x0), _expand(sigma, x0)
    xt = a * x0 + s * eps
    if objective == "flow":
        return xt, eps - x0, torch.ones_like(t)
    target = eps if objective == "eps" else a * eps - s * x0
    weight = torch.ones_like(t)
    if min_snr_gamma > 0:
        snr = (alpha / sigma) ** 2
        weight = snr.clamp(max=min_snr_gamma) / (snr if objective == "eps" else snr + 1)
    return xt, target, weight
