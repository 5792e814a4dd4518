"""DCGAN: unconditional deep convolutional GAN for images."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, DCGANConfig
from .model import GAN
from .objective import evaluate, objective
from .sample import ImagePipeline, save_preview

register_family(Family(
    name="dcgan",
    description="DCGAN: convolutional generator and discriminator; draws new images from noise",
    config=DCGANConfig,
    build=GAN,
    objective=objective,
    evaluate=evaluate,
    pipeline=ImagePipeline,
    load_data=load_run_grids,
    read_assets=read_run_classes,
    makes="image",
    grids=True,
    primary_metric="fid",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=frozenset({"sample"}),
))
register_showcase("dcgan", Showcase(
    data=("fashion-mnist",), weight=2.0, order=30,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
