"""VQGAN: the vqvae image tokenizer trained with a patch discriminator as well (Esser et al. 2021, arXiv:2012.09841)."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, VQGANConfig
from .model import VQGAN
from .objective import evaluate, objective
from .sample import VQTokenizerPipeline, save_preview

register_family(Family(
    name="vqgan",
    description="VQGAN: a VQ-VAE image tokenizer whose decoder also plays a GAN against a patch discriminator; "
                "turns images into grids of discrete tokens and back",
    config=VQGANConfig,
    build=VQGAN,
    objective=objective,
    evaluate=evaluate,
    pipeline=VQTokenizerPipeline,
    load_data=load_run_grids,
    read_assets=read_run_classes,
    makes="image",
    grids=True,
    # recon_mse, as for vqvae: every evaluation has it; it rewards pixel accuracy, not the sharpness the GAN term
    # aims at, so compare runs by the recon FID beside it too
    primary_metric="recon_mse",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=VQTokenizerPipeline.capabilities,
))
register_showcase("vqgan", Showcase(
    data=("fashion-mnist",), weight=2.0, order=65, quickstart=False,
    # the GAN on for the last three fifths of the steps the budget plans
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400",
               "model.disc_start_fraction=0.4")
))
