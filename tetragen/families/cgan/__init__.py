"""cGAN: class-conditional DCGAN (conditional batch norm in G, projection discriminator)."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, CGANConfig
from .model import build
from .objective import evaluate, objective
from .sample import ImagePipeline, save_preview

register_family(Family(
    name="cgan",
    description="class-conditional DCGAN (conditional batch norm, projection discriminator); draws images of a class",
    config=CGANConfig,
    build=build,
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
register_showcase("cgan", Showcase(
    data=("fashion-mnist",), weight=2.0, order=40,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
register_showcase("cgan-words", Showcase(
    family="cgan", kind="sound", data=("spoken-words",), preset="words", weight=2.0, order=45,
    prompts=("seven", "yes", "stop", "left"),
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
register_showcase("cgan-clips", Showcase(
    family="cgan", kind="video", data=("moving-fashion-mnist",), preset="clips", weight=2.0, order=47,
    quickstart=False,
    prompts=("a sneaker moving left", "a bag moving up", "a dress moving down-right", "trousers moving right"),
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
