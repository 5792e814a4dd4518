"""Latent diffusion: the diffusion family's denoiser, objective and samplers over the continuous latents of a trained
vqvae, vqgan or vae run (kept as a component), conditioned on a class or a text prompt (the same captions as t2i).
Rombach et al. 2022, *High-Resolution Image Synthesis with Latent Diffusion Models*, arXiv:2112.10752."""
from ...registry import Family, Showcase, register_family, register_showcase
from ..diffusion.model import Diffusion
from ..diffusion.objective import objective, sample_metrics
from .config import PRESETS, LDMConfig
from .data import load_data, read_assets
from .sample import make_pipeline, save_preview


def build(config: LDMConfig) -> Diffusion:
    """The denoiser at the latents' side and channels."""
    return Diffusion(config.latent_view())


def evaluate(model, data, cfg, device) -> dict:
    """FID and KID of train.eval_samples decoded samples against the validation images (+ class accuracy for a
    conditional model); nothing when eval_samples is 0."""
    if cfg.train.eval_samples == 0:
        return {}
    return sample_metrics(make_pipeline(model, data.ldm_assets, cfg), data, cfg, device)


register_family(Family(
    name="ldm",
    description="latent diffusion: the diffusion denoiser over a trained vae's or vqvae's continuous latents; "
                "draws images of a class or from a text prompt, edits and inpaints them",
    config=LDMConfig,
    build=build,
    objective=objective,
    evaluate=evaluate,
    pipeline=make_pipeline,
    load_data=load_data,
    read_assets=read_assets,
    makes="image",
    reads="text",
    primary_metric="fid",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=frozenset({"sample", "prompt", "steer", "edit"}),
    # a vq tokenizer's encodings before the snap to a code (an unconditional vae run is taken too)
    components={"model.autoencoder_run": "tokenize"},
))
register_showcase("ldm", Showcase(
    data=("fashion-mnist",), weight=2.0, order=75, quickstart=False,
    components={"model.autoencoder_run": "vqvae-latents"},
    prompts=("a pair of trousers", "a dark sneaker", "a large light pullover", "a small bag"),
    # no FID while training and no sweep after, as diffusion's showcase: the evaluation scores its samples once
    overrides=("train.eval_samples=0", "train.eval_every=0", "train.save_every=400", "model.eval_sweep="),
))
