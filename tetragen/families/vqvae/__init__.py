"""VQ-VAE: an image tokenizer (convolutional encoder, vector-quantised codebook, convolutional decoder); with
model.temporal, a clip tokenizer (3-D convolutions over frames, height and width)."""
from ...data.grids import read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, VQVAEConfig
from .data import load_data
from .model import VQVAE
from .objective import evaluate, objective
from .sample import VQTokenizerPipeline, save_preview

register_family(Family(
    name="vqvae",
    description="VQ-VAE: turns images into grids of discrete tokens and back; reconstructs, encodes, decodes",
    config=VQVAEConfig,
    build=VQVAE,
    objective=objective,
    evaluate=evaluate,
    pipeline=VQTokenizerPipeline,
    load_data=load_data,
    read_assets=read_run_classes,
    makes="image",
    grids=True,
    primary_metric="recon_mse",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=VQTokenizerPipeline.capabilities,
))
register_showcase("vqvae", Showcase(
    data=("fashion-mnist",), weight=1.5, order=60,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
register_showcase("vqvae-latents", Showcase(  # the autoencoder of ldm's showcase
    family="vqvae", data=("fashion-mnist",), preset="latents", weight=1.5, order=61, quickstart=False,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
