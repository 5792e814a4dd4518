"""GPT: decoder-only causal transformer language model."""
from ...registry import Family, register_family
from .config import PRESETS, GPTConfig
from .model import GPT
from .objective import evaluate, objective
from .sample import TextGenerator

register_family(Family(
    name="gpt",
    description="GPT-style decoder-only transformer language model (causal self-attention); writes text from a prompt",
    config=GPTConfig,
    build=GPT,
    objective=objective,
    evaluate=evaluate,
    pipeline=TextGenerator,
    data_kind="text",
    primary_metric="val_loss",
    presets=PRESETS,
    default_preset="baby",
))
