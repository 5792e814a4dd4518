"""Sampling from a trained conditional VAE: the VAE pipeline with per-class labels (`tetragen sample --class`)."""
from ..vae.sample import VAEPipeline, save_preview

__all__ = ["VAEPipeline", "save_preview"]
