"""GPT: decoder-only causal transformer language model."""
from ...data.text import PieceData, load_lm_data, read_run_tokenizer
from ...registry import Family, Importer, Showcase, register_family, register_showcase
from .config import PRESETS, GPTConfig
from .hf import check_vocabulary, init_overrides, read_gpt2_weights, write_hf
from .model import GPT
from .objective import evaluate, objective
from .sample import TextGenerator


def evaluate_pieces(model, data, cfg, device) -> dict:
    """Data made of pieces (music) scores the model piece by piece in its own figures; a corpus by windows."""
    if isinstance(data, PieceData):
        return data.score(model, device, split="valid", max_tokens=cfg.train.eval_tokens)
    return evaluate(model, data, cfg, device)


register_family(Family(
    name="gpt",
    description="GPT-style decoder-only transformer language model (causal self-attention); writes text from a prompt",
    config=GPTConfig,
    build=GPT,
    objective=objective,
    evaluate=evaluate_pieces,
    pipeline=TextGenerator,
    load_data=load_lm_data,
    read_assets=read_run_tokenizer,
    makes="text",
    primary_metric="val_loss",
    presets=PRESETS,
    default_preset="baby",
    capabilities=frozenset({"generate"}),
    lora_targets=("c_attn", "c_proj"),
    importer=Importer("a Hugging Face GPT-2 folder", init_overrides, read_gpt2_weights, check_vocabulary),
    exporters={"hf": write_hf},
    tokens=True,
))
register_showcase("gpt", Showcase(
    data=("tinyshakespeare", "shakespeare"), weight=2.5, preset="fast", order=10,
    overrides=("train.eval_every=200", "train.eval_tokens=32768", "train.log_every=20"),
    prompts=("ROMEO:", "JULIET:\nO ")
))
register_showcase("gpt-chorales", Showcase(
    family="gpt", kind="music", data=("jsb-chorales", "bach-chorales"), weight=1.5, preset="fast", order=15,
    overrides=("model.block_size=128", "train.eval_every=0", "train.eval_tokens=8192", "train.log_every=20"),
    prompts=("bach chorale in g minor", "bach chorale in d major")
))
