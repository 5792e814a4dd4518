"""Conditional GAN objective: the DCGAN phases (fakes are asked for the real batch's classes); evaluation also
checks that samples show the class they were asked for."""
from __future__ import annotations

from ..dcgan.objective import evaluate, objective

__all__ = ["evaluate", "objective"]
