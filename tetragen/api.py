"""The Python API the CLI is built on: load data for a config, train, load a run."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import RunConfig, apply_label_fraction, build_run_config, validate_cross
from .data.text import load_text_data, resolve_tokenizer
from .data.tokenizer import load_tokenizer
from .errors import UserError
from .registry import get_family
from .train import checkpoint as ck
from .train import finetune as ft_module


def load_data(cfg: RunConfig, tokenizer=None):
    """The dataset a run config asks for, tokenized (with `tokenizer` when given, e.g. a trained run's)."""
    family = get_family(cfg.family)
    if family.data_kind == "text" and getattr(cfg.model, "num_labels", 0):  # a classifier: text,label rows
        return load_classifier_data(cfg, tokenizer)
    if family.data_kind == "text":
        if tokenizer is None:
            tokenizer = resolve_tokenizer(cfg.data.tokenizer)
        data = load_text_data(cfg.data.source, cfg.model.block_size, cfg.data.val_fraction, tokenizer,
                              kind=cfg.data.tokenizer, vocab_size=cfg.data.vocab_size,
                              specials=family.special_tokens)
        if cfg.model.vocab_size == 0:
            cfg.model.vocab_size = data.tokenizer.vocab_size
        elif cfg.model.vocab_size < data.tokenizer.vocab_size:
            raise UserError(f"model.vocab_size ({cfg.model.vocab_size}) is smaller than the tokenizer's "
                            f"vocabulary ({data.tokenizer.vocab_size}); leave it at 0 to take it from the data")
        if family.special_tokens:  # where the family's special tokens are in this tokenizer
            cfg.model.special_ids = {t: data.tokenizer.special_id(t) for t in family.special_tokens}
        return data
    if family.data_kind == "image":
        from .data.images import load_image_data
        data = load_image_data(cfg.data.source, cfg.model.image_size, cfg.model.channels, cfg.data.val_fraction)
        if getattr(cfg.model, "num_classes", None) == 0:  # conditional models: the class count comes from the data
            cfg.model.num_classes = len(data.classes)
        elif getattr(cfg.model, "num_classes", len(data.classes)) < len(data.classes):
            raise UserError(f"model.num_classes={cfg.model.num_classes} but {cfg.data.source} has "
                            f"{len(data.classes)} classes; leave model.num_classes at 0 to take it from the data")
        if cfg.data.label_fraction < 1.0:  # semi-supervised: most training images lose their label
            apply_label_fraction(cfg)
            if len(data.classes) < 2:
                raise UserError(f"data.label_fraction={cfg.data.label_fraction}: {cfg.data.source} has no class "
                                f"labels (one class: put the images in class sub-folders); leave "
                                f"data.label_fraction at 1.0")
            data.keep_labels(cfg.data.label_fraction, cfg.train.seed)
        return data
    raise UserError(f"family {cfg.family}: data kind {family.data_kind!r} is not supported")


def load_classifier_data(cfg: RunConfig, tokenizer=None):
    """The text,label rows of a classifier run (data.source a .csv/.jsonl), tokenized by `tokenizer` (a trained
    run's), by the file data.tokenizer names, or by the characters of the rows' texts."""
    from .data.labeled import load_labeled_data, read_rows
    family = get_family(cfg.family)
    if tokenizer is None:
        if cfg.data.tokenizer == "bpe":
            raise UserError("data.tokenizer=bpe: a classifier trained from scratch takes its characters (char) or "
                            "a tokenizer file; train one with `tetragen tokenizer train` and pass "
                            "data.tokenizer=PATH/tokenizer.json")
        tokenizer = resolve_tokenizer(cfg.data.tokenizer)
        if tokenizer is None:
            from .data.tokenizer import CharTokenizer
            tokenizer = CharTokenizer.from_charset({ch for text, _, _ in read_rows(cfg.data.source) for ch in text})
    tokenizer = tokenizer.with_specials(family.special_tokens)
    m = cfg.model
    if m.vocab_size == 0:
        m.vocab_size = tokenizer.vocab_size
    elif m.vocab_size < tokenizer.vocab_size:
        raise UserError(f"model.vocab_size ({m.vocab_size}) is smaller than the tokenizer's vocabulary "
                        f"({tokenizer.vocab_size}); leave it at 0 to take it from the data")
    if not m.special_ids:
        m.special_ids = {t: tokenizer.special_id(t) for t in family.special_tokens}
    return load_labeled_data(cfg, tokenizer)


def read_assets(run_dir: Path, data_kind: str):
    """What a run keeps beside its weights to be used again: the tokenizer (text) or the class names (images)."""
    if data_kind == "text":
        return load_tokenizer(run_dir / "tokenizer.json")
    path = run_dir / "classes.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["classes"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: missing or unreadable ({type(e).__name__}); the run folder is incomplete") from None


def train(family: str, data: str, out: str | Path, *, preset: str | None = None, config: str | None = None,
          overrides: list[str] = (), resume: bool = False, overwrite: bool = False, progress: bool = True,
          init_from: str | None = None, task: str = "lm") -> dict:
    """Train a model; the same as `tetragen train`. Returns the final evaluation metrics.

    `init_from`: a Hugging Face GPT-2 folder (config.json + model.safetensors) whose shape and weights a gpt run
    starts from; its tokenizer.json, when it has one, is the run's tokenizer.

    `task="classify"` (bert): a text classifier from random initialisation on the text,label rows of a .csv/.jsonl
    `data` file, the same model `finetune(..., task="classify")` makes from a trained run."""
    from .train.trainer import Trainer
    out = Path(out)
    _check_task(task)
    if task == "classify" and not hasattr(get_family(family).config(), "num_labels"):
        raise UserError(f"--task classify: the {get_family(family).name} family has no classifier; train a bert "
                        f"classifier (`tetragen train bert --task classify`)")
    if task == "classify" and init_from:
        raise UserError("--init-from: GPT-2 folders start gpt language models, not classifiers; fine-tune a trained "
                        "bert run instead (`tetragen finetune RUN --task classify`)")
    _refuse_foreign_folder(out, resume=resume, overwrite=overwrite)
    hf_config = None
    if resume and ck.step_dirs(out):  # continue with the run's own config; overrides may extend it
        # the command line is checked as for a new run (family, preset, --config), then the run's config is used
        asked = build_run_config(family, preset=preset, yaml_path=config, overrides=overrides)
        cfg = read_run_config(out, extra_overrides=overrides)
        if asked.family != cfg.family:
            raise UserError(f"--out {out}: the run there is a {cfg.family} run, not {family}; resume it with "
                            f"`tetragen train {cfg.family} --resume`, or start a new run with another --out")
        tokenizer = load_tokenizer(out / "tokenizer.json") if get_family(cfg.family).data_kind == "text" else None
        if data and data != cfg.data.source and str(Path(data).expanduser().resolve()) != cfg.data.source:
            raise UserError(f"--data {data}: the run at {out} was trained on {cfg.data.source!r}; "
                            f"resume it with the same data, or start a new run with --out")
    else:
        if init_from:  # the GPT-2 folder fixes the model's shape; the user's overrides come after
            from .families.gpt import hf
            if get_family(family).name != "gpt":
                raise UserError(f"--init-from: GPT-2 folders initialise gpt runs, not {family}; use "
                                f"`tetragen train gpt --init-from {init_from}`")
            hf_config = hf.read_gpt2_config(Path(init_from).expanduser())
            overrides = [*hf.model_overrides(hf_config), *overrides]
        cfg = build_run_config(family, preset=preset, yaml_path=config, overrides=overrides)
        # a path is stored absolute so that eval and resume work from any folder
        cfg.data.source = str(Path(data).expanduser().resolve()) if data and Path(data).expanduser().exists() else data
        if hf_config is not None:
            folder = Path(init_from).expanduser().resolve()
            cfg.finetune.init_from = str(folder)
            if cfg.data.tokenizer == "char" and (folder / "tokenizer.json").is_file():
                cfg.data.tokenizer = str(folder / "tokenizer.json")
        if cfg.data.tokenizer not in ("char", "bpe") and Path(cfg.data.tokenizer).expanduser().is_file():
            cfg.data.tokenizer = str(Path(cfg.data.tokenizer).expanduser().resolve())
        tokenizer = None
    validate_cross(cfg)
    if hf_config is not None:
        vocab, cfg.model.vocab_size = cfg.model.vocab_size, 0  # load_data sets it from the tokenizer
        dataset = load_data(cfg, tokenizer)
        if cfg.model.vocab_size != vocab:
            raise UserError(f"--init-from {init_from}: the model has vocab_size {vocab} but the tokenizer "
                            f"({cfg.data.tokenizer}) has {cfg.model.vocab_size} tokens; use the folder's own "
                            f"tokenizer.json (data.tokenizer=PATH)")
        ft_module.prepare(get_family(cfg.family).build(cfg.model), cfg)  # checked before anything is written
    elif task == "classify" and tokenizer is None:  # a new classifier; a resumed one is one by its config
        dataset = load_classifier_data(cfg)
    else:
        dataset = load_data(cfg, tokenizer)
    return Trainer(cfg, dataset, out, resume=resume, overwrite=overwrite, progress=progress).fit()


def _check_task(task: str) -> None:
    if task not in ("lm", "classify"):
        raise UserError(f"--task: {task!r} is not a task; choose lm or classify")


def read_run_config(run_dir: str | Path, extra_overrides: list[str] = ()) -> RunConfig:
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.is_file():
        what = "does not exist" if not run_dir.exists() else "is not a tetragen run (no config.json)"
        raise UserError(f"{run_dir}: {what}; pass the --out folder of a `tetragen train` run")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "family" not in doc:
        raise UserError(f"{path}: no 'family' field; this is not a tetragen run config")
    family = doc["family"]
    if not isinstance(family, str):
        raise UserError(f"{path}: 'family' must be a family name such as \"gpt\", got {family!r}")
    try:
        get_family(family)
    except UserError as e:
        raise UserError(f"{path}: {e}; this tetragen cannot load the run") from None
    return build_run_config(family, base=doc, overrides=extra_overrides, base_source=str(path))


def _refuse_foreign_folder(out: Path, *, resume: bool, overwrite: bool) -> None:
    """--resume and --overwrite write into (or delete) an existing folder: only ever one that holds a tetragen run."""
    if (resume or overwrite) and (out / "config.json").is_file() and not ck.is_run_dir(out):
        flag = "--overwrite" if overwrite else "--resume"
        raise UserError(f"--out {out}: its config.json was not written by tetragen, so {flag} leaves the folder "
                        f"alone; choose another --out folder")


def load(run_dir: str | Path, *, device: str = "cpu", ema: bool | None = None):
    """Load a trained run (or one of its checkpoint folders) for inference.

    For a GPT run this returns a `TextGenerator`: `tetragen.load("runs/gpt").generate("ROMEO:", 200, seed=1)`.
    The EMA weights are used when the run has them, unless `ema=False`.
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    family = get_family(cfg.family)
    assets = read_assets(run_dir, family.data_kind)
    weights = run_dir / ("ema.safetensors" if (ema is not False and (run_dir / "ema.safetensors").is_file())
                         else "model.safetensors")
    if not weights.is_file() and (run_dir / ft_module.ADAPTER_JSON).is_file():  # a LoRA adapter over its base
        weights = run_dir / ft_module.ADAPTER_FILE
        tensors = ft_module.read_adapter(run_dir, cfg)
    else:
        tensors = ck.read_tensors(weights)
    model = ft_module.structure_for(family.build(cfg.model), cfg, tensors)
    ck.load_weights(model, weights, tensors)
    if family.data_kind == "text" and assets.vocab_size > cfg.model.vocab_size:
        raise UserError(f"{run_dir / 'tokenizer.json'}: {assets.vocab_size} tokens but the model has "
                        f"vocab_size {cfg.model.vocab_size}; the files come from different runs")
    return family.pipeline(model.to(torch.device(device)), assets, cfg)


def finetune(run_dir: str | Path, data: str, out: str | Path, *, overrides: list[str] = (), overwrite: bool = False,
             progress: bool = True, task: str = "lm") -> dict:
    """Train a new run at `out` that starts from the trained run at `run_dir` (its weights, config and tokenizer)
    with its own schedule; `finetune.method=lora` trains adapters only. The same as `tetragen finetune`.

    `task="classify"` (bert runs) adds a classifier head trained on the text,label rows of a .csv/.jsonl `data`
    file; the labels are saved in the run (labels.json, model.labels)."""
    from .train import finetune as ft
    from .train.trainer import Trainer
    run_dir, out = Path(run_dir), Path(out)
    base = read_run_config(run_dir)
    family = get_family(base.family)
    _check_task(task)
    if task == "classify" and not hasattr(base.model, "num_labels"):
        raise UserError(f"--task classify: {run_dir} is a {base.family} run; classifiers are fine-tuned from bert "
                        f"runs")
    weights = run_dir / ("ema.safetensors" if (run_dir / "ema.safetensors").is_file() else "model.safetensors")
    if not weights.is_file() and (run_dir / ft.ADAPTER_JSON).is_file():
        raise UserError(f"{run_dir}: holds a LoRA adapter only; fine-tune from a run saved with "
                        f"finetune.lora_save=merged (or from its base run)")
    if out.resolve() == run_dir.resolve():
        raise UserError(f"--out {out}: is the run being fine-tuned; choose a new folder")
    _refuse_foreign_folder(out, resume=False, overwrite=overwrite)
    doc = {k: v for k, v in base.to_dict().items() if k != "finetune"}  # a fine-tune of a fine-tune starts afresh
    cfg = build_run_config(base.family, base=doc, overrides=overrides, base_source=str(run_dir / "config.json"))
    cfg.finetune.init_from = str(weights.resolve())
    cfg.data.source = str(Path(data).expanduser().resolve()) if data and Path(data).expanduser().exists() else data
    tokenizer = None
    if family.data_kind == "text":
        tokenizer = read_assets(run_dir, "text")
        if cfg.data.tokenizer != base.data.tokenizer:  # another tokenizer must match the model's vocabulary
            other = resolve_tokenizer(cfg.data.tokenizer)
            if other is None or other.vocab_size != base.model.vocab_size:
                size = "a new vocabulary" if other is None else f"{other.vocab_size} tokens"
                raise UserError(f"data.tokenizer={cfg.data.tokenizer}: {size}, but the model of {run_dir} has "
                                f"vocab_size {base.model.vocab_size}; fine-tune with the run's own tokenizer "
                                f"(leave data.tokenizer unset)")
            tokenizer = other
    validate_cross(cfg)
    if task == "classify":
        from .data.labeled import load_labeled_data
        dataset = load_labeled_data(cfg, tokenizer)  # sets model.labels and model.num_labels from the data
        ft.prepare(family.build(cfg.model), cfg)  # weights and LoRA targets checked before anything is written
    else:
        ft.prepare(family.build(cfg.model), cfg)
        dataset = load_data(cfg, tokenizer)
    metrics = Trainer(cfg, dataset, out, overwrite=overwrite, progress=progress).fit()
    ft.finish(out, cfg)
    return metrics
