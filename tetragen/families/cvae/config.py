"""Conditional VAE configuration: the VAE options plus the number of classes, and its presets."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from ...config import option
from ..vae.config import PRESETS as VAE_PRESETS
from ..vae.config import VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = option(0, "number of classes (0: taken from the data)", min=0)


# The same recipes as the VAE's (tiny for tests, fmnist for Fashion-MNIST on a CPU); num_classes comes from the data.
PRESETS = copy.deepcopy(VAE_PRESETS)
