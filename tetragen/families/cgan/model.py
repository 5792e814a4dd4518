"""Class-conditional GAN: the DCGAN networks with conditional batch norm in the generator and a projection
discriminator (cGANs with Projection Discriminator, Miyato & Koyama 2018, arXiv:1802.05637).

The conditioning lives in the shared blocks (tetragen/nn/conv.py, tetragen/families/dcgan/model.py), switched on by
`num_classes`; this module only insists that there are classes.
"""
from __future__ import annotations

from ..dcgan.model import GAN
from .config import CGANConfig


def build(config: CGANConfig) -> GAN:
    if config.num_classes < 1:
        raise ValueError("CGANConfig.num_classes must be set (it comes from the data's classes)")
    return GAN(config)
