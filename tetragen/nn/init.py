"""How the image families' weights start and when they are held still: DCGAN's initialisation, and freezing a
module's weights for one phase of a multi-phase objective.

Unsupervised Representation Learning with Deep Convolutional GANs (Radford et al. 2015), arXiv:1511.06434,
section 4 (all weights from N(0, 0.02)).
"""
from __future__ import annotations

import contextlib

import torch.nn as nn


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation, for `model.apply(dcgan_init)`: N(0, 0.02) for conv and linear weights (the raw
    weight under spectral norm), zero biases, N(1, 0.02) for batch-norm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Inside the block the modules' weights build no autograd graph: a loss still backpropagates *through* them to
    their inputs (images, codes), but leaves their `.grad` alone; they belong to another phase. (Under DDP they
    count as unused in that pass, which the trainer allows whenever a family has several phases.)"""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
