"""Text-to-image: a transformer prior over a frozen image tokenizer's tokens, conditioned on a text prompt (causal,
DALL-E/taming style, or masked, MaskGIT style), with classifier-free guidance. Built from another run's component:
`model.tokenizer_run` names a trained image tokenizer run (vqvae, vqgan), which the prior's run keeps a copy of."""
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, T2IConfig
from .data import load_data, read_assets
from .model import T2IPrior
from .objective import evaluate, objective
from .sample import T2IPipeline, save_preview

register_family(Family(
    name="t2i",
    description="text-to-image prior (causal or masked transformer) over a frozen vqvae's image tokens; draws "
                "images from a prompt",
    config=T2IConfig,
    build=T2IPrior,
    objective=objective,
    evaluate=evaluate,
    pipeline=T2IPipeline,
    load_data=load_data,
    read_assets=read_assets,
    makes="image",
    reads="text",
    primary_metric="test_nll",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
    capabilities=T2IPipeline.capabilities,
    components={"model.tokenizer_run": "tokenize"},
))
register_showcase("t2i", Showcase(
    data=("fashion-mnist",), weight=2.5, order=70, preset="fmnist-small",
    # no FID while training: sampling 1000 images from the prior costs more than a minute on a laptop CPU, which
    # a short budget would take from training (the evaluation after training scores its samples)
    overrides=("train.eval_samples=0", "train.eval_every=0", "train.save_every=400"),
    components={"model.tokenizer_run": "vqvae"},
    prompts=("a pair of trousers", "a dark sneaker", "a large light pullover", "a small bag")
))
