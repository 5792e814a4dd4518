"""Conditional VAE configuration: the VAE options plus the number of classes, and its presets."""
from __future__ import annotations

import copy
from dataclasses import dataclass

from ...options import option
from ..vae.config import PRESETS as VAE_PRESETS
from ..vae.config import VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    """The VAE's options plus the classes. `classifier` adds q(y|x) and trains with the semi-supervised M2 objective
    (Kingma et al. 2014, https://arxiv.org/abs/1406.5298): switched on by data.label_fraction < 1, where the
    unlabelled images need it; at 1.0 it is off unless asked for (then every image is labelled and the classifier
    learns beside the cvae from its cross-entropy alone)."""
    num_classes: int = option(0, "number of classes (0: taken from the data)", min=0)
    classifier: bool = option(False, "a classifier q(y|x) on the encoder's conv trunk, trained with the M2 "
                                     "objective (on whenever data.label_fraction < 1)")
    classifier_alpha: float = option(0.1, "M2's alpha as a multiple of the training-set size N (the paper's "
                                          "0.1 N): each labelled image's cross-entropy weighs classifier_alpha / "
                                          "data.label_fraction times its ELBO", min=0.0)


def semi_supervised(config: CVAEConfig) -> None:
    """data.label_fraction < 1: the unlabelled images need the classifier q(y|x) (M2)."""
    config.classifier = True


# The same recipes as the VAE's (tiny for tests, fmnist for Fashion-MNIST on a CPU); num_classes comes from the data.
PRESETS = copy.deepcopy(VAE_PRESETS)
# `words` is for sound: spectrograms are 64x64 pictures (5.2 times the pixels of 28x28), so the width is halved to
# keep a step cheap on a CPU, as cgan's `words` does.
PRESETS["words"] = copy.deepcopy(PRESETS["fmnist"])
PRESETS["words"]["model"].update(width=32)
