"""BERT: encoder-only bidirectional transformer trained as a masked language model."""
from ...data.text import read_run_tokenizer
from ...data.tokenizer import SPECIAL_TOKENS
from ...registry import Family, Showcase, register_family, register_showcase
from .config import PRESETS, BERTConfig
from .data import load_data
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
    load_data=load_data,
    read_assets=read_run_tokenizer,
    makes="text",
    primary_metric="val_loss",
    presets=PRESETS,
    default_preset="baby",
    special_tokens=SPECIAL_TOKENS,
    capabilities=frozenset({"fill_mask", "classify"}),
    tasks=("classify",),
    task_heads=("classifier.",),
    lora_targets=("c_attn", "c_proj"),
    tokens=True,
))
register_showcase("bert", Showcase(
    data=("tinyshakespeare", "shakespeare"), weight=2.0, order=20,
    overrides=("train.eval_every=200", "train.save_every=400", "train.eval_tokens=32768", "train.log_every=20"),
    prompts=("To be, or not to b[MASK]: that is the question.", "O Romeo, Romeo! wherefore art thou R[MASK]meo?")
))
