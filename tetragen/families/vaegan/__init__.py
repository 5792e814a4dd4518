"""VAE-GAN: a VAE whose reconstruction error is measured in a discriminator's features, plus an adversarial term."""
from ...data.grids import load_run_grids, read_run_classes
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, VAEGANConfig
from .model import VAEGAN
from .objective import evaluate, objective
from .sample import VAEGANPipeline, save_preview

register_family(Family(
    name="vaegan",
    description="VAE-GAN: VAE encoder and decoder with a discriminator whose features measure the reconstruction; "
                "reconstructs images, draws new ones",
    config=VAEGANConfig,
    build=VAEGAN,
    objective=objective,
    evaluate=evaluate,
    pipeline=VAEGANPipeline,
    load_data=load_run_grids,
    read_assets=read_run_classes,
    makes="image",
    grids=True,
    # recon_mse: the one number every evaluation has (FID needs train.eval_samples > 0), so checkpoints/best exists
    # for every run. It picks the checkpoint that reconstructs best pixel by pixel, which is not what the adversarial
    # term aims at (sharpness); compare sample quality by the fid beside it.
    primary_metric="recon_mse",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=VAEGANPipeline.capabilities,
))
register_showcase("vaegan", Showcase(
    data=("fashion-mnist",), weight=2.0, order=58, quickstart=False,
    overrides=("train.eval_samples=1000", "train.eval_every=400", "train.save_every=400")
))
