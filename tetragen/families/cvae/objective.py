"""Conditional VAE objective and evaluation: the VAE's, with each image's class given to encoder and decoder."""
from __future__ import annotations

from ..vae.objective import evaluate, objective

__all__ = ["evaluate", "objective"]
