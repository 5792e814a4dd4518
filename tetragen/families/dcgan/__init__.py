"""DCGAN: unconditional deep convolutional GAN for images."""
from ...registry import Family, register_family
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
    data_kind="image",
    primary_metric="fid",
    presets=PRESETS,
    default_preset="fmnist",
    preview=save_preview,
))
