"""The family registry: every model family registers itself here by name.

A family is a plain record of functions and classes (see `Family`); the trainer, CLI and evaluators only ever talk to
a family through it, so adding a family never touches them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import UserError


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    config: type                      # the family's model config dataclass
    build: Callable[..., Any]         # build(model_config) -> nn.Module
    objective: Callable[..., Any]     # objective(model, run_config) -> list[Phase]
    evaluate: Callable[..., dict]     # evaluate(model, data, run_config) -> {"metric": value, ...}
    pipeline: Callable[..., Any]      # pipeline(model, tokenizer, run_config) -> the object `tetragen.load` returns
    data_kind: str                    # "text" or "image"
    primary_metric: str               # lower is better; picks the "best" checkpoint
    presets: dict[str, dict] = field(default_factory=dict)  # name -> {"model": {...}, "train": {...}}
    default_preset: str = ""
    # preview(model, data, run_config, path_stem): writes something to look at after each evaluation (e.g. a
    # sample grid at path_stem.png); None: nothing
    preview: Callable[..., None] | None = None
    # token names a text family needs besides the text (a masked LM's [MASK], [PAD], [CLS]); the tokenizer adds them
    special_tokens: tuple[str, ...] = ()
    # trains with part of the training labels (data.label_fraction < 1); its config then has `classifier` set
    semi_supervised: bool = False


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    _FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    _load_builtin()
    if name not in _FAMILIES:
        raise UserError(f"unknown family {name!r}; known families: {', '.join(list_families())}")
    return _FAMILIES[name]


def list_families() -> list[str]:
    _load_builtin()
    return sorted(_FAMILIES)


def _load_builtin() -> None:
    from . import families  # noqa: F401  (importing the package registers the built-in families)
