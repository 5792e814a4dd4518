"""Samplers: deterministic solvers of the probability-flow ODE from noise (or a noised image) to an image.

Each takes `predict(x, t) -> the network's output` (guidance already applied), the starting x at times[0], and the
decreasing times to visit; it returns x at times[-1]. They differ in how they step, not in what they need, so a
trained model is sampled by any of them without retraining:

- `euler`: x_s = x_t + (s - t) dx/dt. One evaluation a step; first order. For the flow objective the velocity is the
  network's own output and this is DDIM.
- `heun`: Euler's step, the velocity evaluated again at its end, and the step redone with the average of the two
  (Karras et al. 2022, arXiv:2206.00364, Algorithm 1 without noise). Two evaluations a step; second order.
- `dpm++`: DPM-Solver++(2M) (Lu et al. 2022, arXiv:2211.01095): the exact solution of the ODE's linear part in
  lambda = log(alpha / sigma), with the network's x0 estimate extrapolated from this step's and the previous one's.
  One evaluation a step; second order, except on its first and last steps and on a step from an end of a flow's
  path (where alpha is 0 and lambda infinite), which are first order (the last one's lambda step is the longest:
  extrapolating over it would amplify the estimates' differences, and the method's authors step it at first order
  too).

`project(x, s)`, when given, is applied after every step (inpainting puts the known pixels back, noised to s).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .schedule import alpha_sigma, log_snr, predictions, velocity

Predict = Callable[[torch.Tensor, float], torch.Tensor]
Project = Callable[[torch.Tensor, float], torch.Tensor]


def euler(predict: Predict, x: torch.Tensor, times: list[float], objective: str,
          project: Project | None = None) -> torch.Tensor:
    for t, s in zip(times[:-1], times[1:]):
        x = x + (s - t) * velocity(predict(x, t), x, t, objective)
        x = project(x, s) if project is not None else x
    return x


def heun(predict: Predict, x: torch.Tensor, times: list[float], objective: str,
         project: Project | None = None) -> torch.Tensor:
    for t, s in zip(times[:-1], times[1:]):
        d = velocity(predict(x, t), x, t, objective)
        guess = x + (s - t) * d
        x = x + (s - t) * 0.5 * (d + velocity(predict(guess, s), guess, s, objective))
        x = project(x, s) if project is not None else x
    return x


def dpm_solver_pp(predict: Predict, x: torch.Tensor, times: list[float], objective: str,
                  project: Project | None = None) -> torch.Tensor:
    previous, h_previous = None, math.inf
    for i, (t, s) in enumerate(zip(times[:-1], times[1:])):
        x0, _ = predictions(predict(x, t), x, t, objective)
        (alpha_t, sigma_t), (alpha_s, sigma_s) = alpha_sigma(t, objective), alpha_sigma(s, objective)
        h = log_snr(s, objective) - log_snr(t, objective)              # > 0; inf where a side has alpha or sigma 0
        d = x0
        if previous is not None and i < len(times) - 2 and math.isfinite(h) and math.isfinite(h_previous):
            r = h_previous / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous       # x0 extrapolated to the step's middle
        decay = (sigma_s * alpha_t) / (sigma_t * alpha_s)                  # exp(-h), 0 at either end of a flow
        x = (sigma_s / sigma_t) * x + alpha_s * (1 - decay) * d
        x = project(x, s) if project is not None else x
        previous, h_previous = x0, h
    return x


SOLVERS = {"euler": euler, "heun": heun, "dpm++": dpm_solver_pp}


def evaluations(sampler: str, steps: int) -> int:
    """Network evaluations a sampler makes in `steps` steps (per guidance branch)."""
    return 2 * steps if sampler == "heun" else steps


def time_grid(start: float, steps: int) -> list[float]:
    """steps + 1 times from `start` down to 0, evenly spaced."""
    return [start * (1 - i / steps) for i in range(steps)] + [0.0]
