"""BERT: encoder-only bidirectional transformer trained as a masked language model."""
from ...data.tokenizer import SPECIAL_TOKENS
from ...registry import Family, register_family
from .config import PRESETS, BERTConfig
from .model import BERT
from .objective import evaluate, objective
from .sample import MaskedLM

register_family(Family(
    name="bert",
    description="BERT-style encoder-only transformer (bidirectional attention) trained as a masked language "
                "model; fills in [MASK]s, fine-tunes into a text classifier",
    config=BERTConfig,
    build=BERT,
    objective=objective,
    evaluate=evaluate,
    pipeline=MaskedLM,
    data_kind="text",
    primary_metric="val_loss",
    presets=PRESETS,
    default_preset="baby",
    special_tokens=SPECIAL_TOKENS,
))
