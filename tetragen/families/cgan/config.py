"""Conditional GAN configuration: the DCGAN options plus the number of classes, and its presets."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from ...options import option
from ..dcgan.config import PRESETS as DCGAN_PRESETS
from ..dcgan.config import DCGANConfig


@dataclass
class CGANConfig(DCGANConfig):
    num_classes: int = option(0, "number of classes (0: taken from the data)", min=0)


# The same recipes as DCGAN's (tiny for tests, fmnist for Fashion-MNIST on a CPU); num_classes comes from the data.
# `words` is for sound: spectrograms are 64x64 pictures, so the widths are halved to keep a step cheap on a CPU.
PRESETS = copy.deepcopy(DCGAN_PRESETS)
PRESETS["words"] = copy.deepcopy(PRESETS["fmnist"])
PRESETS["words"]["model"].update(g_width=16, d_width=16)
# Clips of 90 classes (a garment and its motion): a class head on the discriminator, because the projection alone
# left a third of the clips showing another garment than the one asked for (docs/video.md, "Measured").
PRESETS["clips"]["model"]["class_loss"] = 1.0
