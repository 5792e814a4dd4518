"""Sampling from a trained GAN: the shared image pipeline (`tetragen.load` returns it) and the training preview."""
from ...sample.images import ImagePipeline, save_preview

__all__ = ["ImagePipeline", "save_preview"]
