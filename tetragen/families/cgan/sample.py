"""Sampling from a trained conditional GAN: the shared image pipeline with per-class labels."""
from ...sample.images import ImagePipeline, save_preview

__all__ = ["ImagePipeline", "save_preview"]
