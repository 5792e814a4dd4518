"""cVAE: class-conditional VAE (the class enters encoder and decoder); draws images of a chosen class. With
data.label_fraction < 1 it learns from partly labelled data (M2) and classifies."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, CVAEConfig, semi_supervised
from .model import build
from .objective import evaluate, objective
from .sample import VAEPipeline, save_preview

register_family(Family(
    name="cvae",
    description="class-conditional VAE (one-hot class in the encoder, class-wise batch norm in the decoder); "
                "draws images of a class",
    config=CVAEConfig,
    build=build,
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
    capabilities=frozenset({"sample", "reconstruct", "encode", "classify_images"}),
    semi_supervised=semi_supervised,
))
register_showcase("cvae", Showcase(
    data=("fashion-mnist",), weight=1.5, order=55, quickstart=False,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
