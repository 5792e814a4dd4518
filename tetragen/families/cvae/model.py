"""Class-conditional VAE (Sohn et al. 2015, "Learning Structured Output Representation using Deep Conditional
Generative Models"): q(z|x, y) and p(x|z, y) with a standard normal prior.

The conditioning lives in the VAE's modules (tetragen/families/vae/model.py), switched on by `num_classes`; this
module only insists that there are classes.
"""
from __future__ import annotations

from ..vae.model import VAE
from .config import CVAEConfig


def build(config: CVAEConfig) -> VAE:
    if config.num_classes < 1:
        raise ValueError("CVAEConfig.num_classes must be set (it comes from the data's classes)")
    return VAE(config)
