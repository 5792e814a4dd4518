"""Run configuration: dataclasses, YAML files, dotted `key=value` overrides and validation.

A run config has four parts: `family` (a name from the registry), `model` (the family's own dataclass), `train`
(`TrainConfig`, the same for every family) and `data` (`DataConfig`). Values are layered in this order: dataclass
defaults, the family preset, a YAML file (`--config`), then command-line overrides such as `train.lr=1e-3`.
Every value is checked against its field's type and range; a bad one raises `UserError` naming the key.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .options import option


@dataclass
class TrainConfig:
    """Optimisation, schedule, precision, logging and checkpointing; the same keys for every family."""
    max_steps: int = option(2000, "optimizer steps to run", min=1)
    batch_size: int = option(12, "examples per micro-batch per process", min=1)
    grad_accum: int = option(1, "micro-batches accumulated per optimizer step", min=1)
    lr: float = option(1e-3, "peak learning rate", min=0.0, min_exclusive=True)
    min_lr: float = option(1e-4, "learning rate at the end of the decay", min=0.0)
    warmup_steps: int = option(100, "linear warm-up steps", min=0)
    schedule: str = option("cosine", "decay after warm-up", choices=["cosine", "linear", "constant"])
    weight_decay: float = option(0.1, "AdamW weight decay (matrices only; biases, norms never decay)", min=0.0)
    optimizer: str = option("adamw", "adamw for every weight, or muon: Muon (orthogonalised momentum) for the weight "
                                     "matrices inside transformer blocks and AdamW for the rest",
                            choices=["adamw", "muon"])
    muon_momentum: float = option(0.95, "Muon's momentum (train.optimizer=muon)", min=0.0, max=1.0,
                                  min_exclusive=True)
    beta1: float = option(0.9, "AdamW beta1", min=0.0, max=1.0)
    beta2: float = option(0.99, "AdamW beta2", min=0.0, max=1.0)
    grad_clip: float = option(1.0, "clip the global gradient norm to this (0: off)", min=0.0)
    eval_every: int = option(250, "evaluate every N steps (0: only at the end)", min=0)
    eval_tokens: int = option(0, "evaluate on the first N validation tokens (0: the full split)", min=0)
    eval_samples: int = option(2000, "image families: samples scored with FID/KID at each evaluation (0: skip FID)",
                               min=0)
    save_every: int = option(500, "checkpoint every N steps (0: only at the end)", min=0)
    keep_last: int = option(2, "step checkpoints kept (the best one is kept apart)", min=1)
    log_every: int = option(10, "append training metrics every N steps", min=1)
    seed: int = option(1337, "seed for initialisation, batches and dropout", min=0)
    precision: str = option("fp32", "compute precision for training; auto: bf16 where a few timed training "
                                     "steps of the model itself run faster in it (CUDA from compute capability 8.0; "
                                     "on a CPU with bf16 instructions, timed before the first step), else fp32",
                            choices=["fp32", "bf16", "auto"])
    compile: bool = option(False, "compile the model with torch.compile")
    ema_decay: float = option(0.0, "keep an exponential moving average of the weights (0: off); its decay rises "
                                   "as (1 + step) / (4 + step) up to this", min=0.0, max=0.99999)
    max_minutes: float = option(0.0, "stop this process after N minutes of training with a final evaluation and "
                                     "checkpoint; the schedule still spans max_steps, so --resume carries on "
                                     "(0: no limit)", min=0.0)
    budget_minutes: float = option(0.0, "fit the whole run to N minutes on this machine, loading the data included: "
                                        "time its first steps and one evaluation, then set train.max_steps so that "
                                        "the schedule, the evaluations and the final checkpoint end inside the "
                                        "budget, and plan again at a quarter, half, three quarters and 90% of it "
                                        "when the speed departs from the plan (0: train.max_steps as given)",
                                 min=0.0, max=10080.0)
    max_bad_steps: int = option(5, "abort after this many consecutive non-finite steps", min=1)
    device: str = option("auto", "where to train", choices=["auto", "cpu", "cuda"])


@dataclass
class DataConfig:
    """What to train on and how it is split and tokenized."""
    source: str = option("", "dataset name or path to a .txt file / folder (set by --data)")
    kind: str = option("", "the kind of content the data is (image, sound, ...); empty: found from --data when the "
                           "run starts, then kept")
    val_fraction: float = option(0.1, "fraction held out for validation: the end of a text corpus; the last of "
                                      "each class of an image folder (a named image set keeps its own test split)",
                                 min=0.0, max=0.5, min_exclusive=True)
    tokenizer: str = option("char", "text tokenizer: char, bpe (byte-level BPE trained on the training split) or "
                                    "the path of a tokenizer.json; pieces of music: frames (char means frames) or "
                                    "events (notes with durations)")
    vocab_size: int = option(2048, "BPE vocabulary size when data.tokenizer=bpe", min=258)
    transpose: int = option(0, "pieces of music: shift each training window by a random number of semitones, up "
                               "to this many up or down (a key its prompt names moves with it; 0: never)",
                            min=0, max=11)
    label_fraction: float = option(1.0, "labelled images: keep the labels of this fraction of the training split "
                                        "(per class, drawn with train.seed) and train semi-supervised (cvae: M2)",
                                   min=0.0, max=1.0, min_exclusive=True)


@dataclass
class FinetuneConfig:
    """Where a fine-tune starts and which weights it trains (set by `tetragen finetune`)."""
    init_from: str = option("", "weights file the run starts from (empty: random initialisation)")
    method: str = option("full", "train every weight (full), low-rank adapters and the task head (lora), or "
                                 "the task head alone on the frozen base model (head: a probe of what pre-training "
                                 "learned)", choices=["full", "lora", "head"])
    lora_rank: int = option(8, "rank of the LoRA update", min=1)
    lora_alpha: float = option(16.0, "LoRA scale numerator: the update is multiplied by alpha / rank", min=0.0)
    lora_targets: str = option("", "comma-separated names of the linear layers to adapt (the last part of the "
                                   "module name, e.g. c_attn,c_fc; empty: the family's default)")
    lora_save: str = option("merged", "write the adapters merged into model.safetensors, or as "
                                      "adapter.safetensors + adapter.json", choices=["merged", "adapter"])


@dataclass
class RunConfig:
    family: str
    model: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def to_dict(self) -> dict:
        return {"family": self.family, "model": dataclasses.asdict(self.model),
                "train": dataclasses.asdict(self.train), "data": dataclasses.asdict(self.data),
                "finetune": dataclasses.asdict(self.finetune)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ----------------------------------------------------------------------------------------------------------------
# building and validating

SECTIONS = ("model", "train", "data", "finetune")


def build_run_config(family_name: str, *, preset: str | None = None, yaml_path: str | None = None,
                     overrides: list[str] | tuple = (), base: dict | None = None,
                     base_source: str = "config.json") -> RunConfig:
    """Layer defaults, preset (or `base`, a saved config), YAML file and `key=value` overrides into a RunConfig."""
    from .registry import get_family
    family = get_family(family_name)
    cfg = RunConfig(family=family.name, model=family.config())
    if base is not None:
        apply_dict(cfg, {k: v for k, v in base.items() if k != "family"}, source=base_source)
    else:
        name = preset or family.default_preset
        if name:
            if name not in family.presets:
                raise UserError(f"--preset: unknown preset {name!r} for family {family.name}; "
                                f"choose one of: {', '.join(sorted(family.presets))}")
            apply_dict(cfg, family.presets[name], source=f"preset {name}")
    if yaml_path:
        apply_dict(cfg, load_yaml(yaml_path, expect_family=family.name), source=yaml_path)
    for item in overrides:
        key, value = parse_override(item)
        set_key(cfg, key, value, source="override")
    return cfg


def load_yaml(path: str, expect_family: str | None = None) -> dict:
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a YAML file" if p.is_dir() else "no such file"
        raise UserError(f"--config: {path}: {what}")
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise UserError(f"--config: {path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                        f"save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        raise UserError(f"--config: {path}: not valid YAML{where} ({problem}); fix the file") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: expected a mapping of sections (model:, train:, data:) at the top level")
    fam = doc.pop("family", None)
    if expect_family and fam is not None and fam != expect_family:
        raise UserError(f"{path}: this config is for family {fam!r}, not {expect_family!r}")
    return doc


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise UserError(f"override {item!r}: expected key=value, e.g. train.lr=1e-3")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_dict(cfg: RunConfig, doc: dict, source: str) -> None:
    for section, values in doc.items():
        if section not in SECTIONS:
            raise UserError(f"{source}: unknown section {section!r}; allowed: {', '.join(SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UserError(f"{source}: section {section!r} must be a mapping of key: value")
        for key, value in values.items():
            set_key(cfg, f"{section}.{key}", value, source=source)


def set_key(cfg: RunConfig, dotted: str, value: Any, source: str) -> None:
    parts = dotted.split(".")
    if len(parts) != 2 or parts[0] not in SECTIONS:
        raise UserError(f"{source}: unknown key {dotted!r}; keys look like train.lr, model.n_layer, data.val_fraction")
    section = getattr(cfg, parts[0])
    fields = {f.name: f for f in dataclasses.fields(section)}
    if parts[1] not in fields:
        raise UserError(f"{source}: unknown key {dotted!r}; allowed {parts[0]} keys: {', '.join(fields)}")
    f = fields[parts[1]]
    hint = typing.get_type_hints(type(section))[f.name]
    setattr(section, f.name, check_value(dotted, value, hint, f.metadata, source))


def check_value(key: str, value: Any, hint: Any, meta: dict, source: str) -> Any:
    where = f"{source}: {key}"
    if hint is bool:
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            out = value.lower() in ("true", "yes", "1", "on")
        elif isinstance(value, int) and value in (0, 1):
            out = bool(value)
        else:
            raise UserError(f"{where}: expected true or false, got {value!r}")
    elif hint is int:
        out = _as_number(value, int)
        if out is None:
            raise UserError(f"{where}: expected an integer, got {value!r}")
    elif hint is float:
        out = _as_number(value, float)
        if out is None:
            raise UserError(f"{where}: expected a number, got {value!r}")
    elif hint is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected text, got {value!r}")
        out = value
    else:
        out = value
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise UserError(f"{where}: {out!r} is not allowed; choose one of: {', '.join(map(str, choices))}")
    lo, hi = meta.get("min"), meta.get("max")
    low_ex, high_ex = bool(meta.get("min_exclusive")), bool(meta.get("max_exclusive"))
    too_low = lo is not None and (out < lo or (low_ex and out == lo))
    too_high = hi is not None and (out > hi or (high_ex and out == hi))
    if too_low or too_high:
        bounds = ([f"{'>' if low_ex else '>='} {lo}"] if lo is not None else []) + \
                 ([f"{'<' if high_ex else '<='} {hi}"] if hi is not None else [])
        raise UserError(f"{where}: {out!r} is out of range; allowed: {' and '.join(bounds)}")
    return out


def _as_number(value: Any, kind: type):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return None
    if isinstance(value, float) and kind is int:
        return int(value) if value.is_integer() else None
    if isinstance(value, (int, float)):
        if kind is float and value != value:  # NaN
            return None
        return kind(value)
    return None


def describe(cfg_cls: type, prefix: str) -> list[str]:
    """One line per key: name, default, allowed values and help (for `tetragen config --help` style listings)."""
    lines = []
    for f in dataclasses.fields(cfg_cls):
        m = f.metadata
        allowed = ""
        if m.get("choices"):
            allowed = " {" + "|".join(map(str, m["choices"])) + "}"
        lines.append(f"{prefix}.{f.name} = {f.default!r}{allowed}  {m.get('help', '')}".rstrip())
    return lines


def validate_cross(cfg: RunConfig) -> None:
    """Checks that involve more than one key."""
    t = cfg.train
    if t.min_lr > t.lr:
        raise UserError(f"train.min_lr ({t.min_lr}) is above train.lr ({t.lr}); lower train.min_lr")
    if t.warmup_steps >= t.max_steps and t.schedule != "constant" and t.warmup_steps > 0 and not t.budget_minutes:
        raise UserError(f"train.warmup_steps ({t.warmup_steps}) must be below train.max_steps ({t.max_steps})")
    check = getattr(cfg.model, "validate", None)
    if check is not None:
        check()
    apply_label_fraction(cfg)


def apply_label_fraction(cfg: RunConfig) -> None:
    """data.label_fraction < 1 asks for semi-supervised training: only a family with a `semi_supervised` hook takes
    it, and the hook switches its model config into that mode (a cvae gets the classifier q(y|x) the unlabelled
    images need)."""
    if cfg.data.label_fraction >= 1.0:
        return
    from .registry import get_family, list_families
    family = get_family(cfg.family)
    if family.semi_supervised is None:
        takers = [name for name in list_families() if get_family(name).semi_supervised is not None]
        raise UserError(f"data.label_fraction={cfg.data.label_fraction}: the {family.name} family does not learn "
                        f"from partly labelled data; leave data.label_fraction at 1.0, or train "
                        f"{' or '.join(takers) or 'a semi-supervised family'}")
    family.semi_supervised(cfg.model)
