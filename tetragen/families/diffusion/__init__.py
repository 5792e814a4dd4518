"""Diffusion: a U-Net or DiT denoiser in pixel space conditioned on a class or a text prompt, trained by flow matching
(or eps / v prediction), sampled by Euler, Heun or DPM-Solver++ with classifier-free guidance; img2img, inpainting
and seed walks."""
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, DiffusionConfig
from .data import load_data, read_assets
from .model import Diffusion
from .objective import evaluate, objective
from .sample import make_pipeline, save_preview

register_family(Family(
    name="diffusion",
    description="pixel-space diffusion (U-Net or DiT denoiser, flow matching); draws images of a class or from a "
                "text prompt in a few solver steps, edits and inpaints images",
    config=DiffusionConfig,
    build=Diffusion,
    objective=objective,
    evaluate=evaluate,
    pipeline=make_pipeline,
    load_data=load_data,
    read_assets=read_assets,
    makes="image",
    grids=True,
    reads="text",
    primary_metric="fid",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=frozenset({"sample", "prompt", "steer", "edit"}),
))
register_showcase("diffusion", Showcase(
    data=("fashion-mnist",), weight=3.0, order=45,
    # no FID while training: each sample is a guided solve of several network passes, so scoring 1000 of them would
    # take a short budget's training time (the evaluation after training scores its samples, at the run's own
    # sampler steps only: a sweep would score them four times over); 8 solver steps, half the time of the preset's 16
    overrides=("train.eval_samples=0", "train.eval_every=0", "train.save_every=400", "model.eval_sweep=",
               "model.sample_steps=8")
))
