"""VAE: convolutional variational autoencoder for images (beta, KL warm-up, free bits)."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, VAEConfig
from .model import VAE
from .objective import evaluate, objective
from .sample import VAEPipeline, save_preview

register_family(Family(
    name="vae",
    description="VAE: convolutional encoder and decoder; reconstructs images, draws new ones, bounds their likelihood",
    config=VAEConfig,
    build=VAE,
    objective=objective,
    evaluate=evaluate,
    pipeline=VAEPipeline,
    load_data=load_run_grids,
    read_assets=read_run_classes,
    makes="image",
    grids=True,
    primary_metric="neg_elbo",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=frozenset({"sample", "reconstruct", "encode"}),
))
register_showcase("vae", Showcase(
    data=("fashion-mnist",), weight=1.5, order=50,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
