"""The family registry: every model family registers itself here by name.

A family is a plain record of functions and classes (`Family`); the trainer, the CLI, the Python API and the
evaluators only ever talk to a family through it (and to a loaded run through the pipeline protocol in
tetragen/pipeline.py), so adding a family is one folder under tetragen/families/ with one `register_family` call.
The built-in families are found by walking that package; families from other packages register through the
`tetragen.families` entry-point group (each entry point names a module that calls `register_family`).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


@dataclass(frozen=True)
class Importer:
    """Starts a run from another library's checkpoint folder (`tetragen train FAMILY --init-from DIR`)."""
    what: str                                   # what the folder is, for messages ("a Hugging Face GPT-2 folder")
    overrides: Callable[[Path], list[str]]      # the `key=value` overrides that give the run the folder's shape
    weights: Callable[[Path], dict]             # the folder's tensors under the family's parameter names
    check: Callable[[Any, Any], None] | None = None  # check(run_config, data): the folder agrees with the data


@dataclass(frozen=True)
class Showcase:
    """How `tetragen quickstart` and `tetragen bench` train a family on built-in data and show what it learnt."""
    data: tuple[str, ...]             # named datasets, the first one at hand is used
    weight: float                     # share of the job's time budget, relative to the other families of the job
    preset: str = ""                  # "": the family's default preset
    overrides: tuple[str, ...] = ()   # config overrides of the showcase run
    # what the report asks the trained model: text prompts (generate), texts with [MASK] (fill_mask), image prompts
    # (prompt); image generators without prompts show a sample grid
    prompts: tuple[str, ...] = ()
    # config key -> the family whose showcase run fills it (a prior's image tokenizer): trained first, in the job
    components: dict[str, str] = field(default_factory=dict)
    quickstart: bool = True           # among the families `tetragen quickstart` trains by default
    order: int = 100                  # the job trains and reports families by this, then by name


@dataclass(frozen=True)
class Family:
    name: str
    description: str
    config: type                      # the family's model config dataclass
    build: Callable[..., Any]         # build(model_config) -> nn.Module
    objective: Callable[..., Any]     # objective(model, run_config) -> list[Phase]
    evaluate: Callable[..., dict]     # evaluate(model, data, run_config, device) -> {"metric": value, ...}
    pipeline: Callable[..., Any]      # pipeline(model, assets, run_config) -> what `tetragen.load` returns
    # load_data(run_config, assets, task) -> the dataset; sets the model config's data-derived fields (vocabulary
    # size, class count) and checks them. `assets` are a trained run's (its tokenizer) when resuming, fine-tuning
    # or evaluating, else None. Shared loaders: tetragen/data/text.py and tetragen/data/images.py.
    load_data: Callable[..., Any]
    # read_assets(run_dir, run_config) -> what a run keeps beside its weights to be used again (a tokenizer, the
    # class names), checked against the config
    read_assets: Callable[..., Any]
    data_kind: str                    # "text" or "image": the kind of data the family trains on
    primary_metric: str               # lower is better; picks the "best" checkpoint
    presets: dict[str, dict] = field(default_factory=dict)  # name -> {"model": {...}, "train": {...}}
    default_preset: str = ""
    # preview(model, data, run_config, path_stem): writes something to look at after each evaluation (e.g. a
    # sample grid at path_stem.png); None: nothing
    preview: Callable[..., None] | None = None
    # token names a text family needs besides the text (a masked LM's [MASK], [PAD], [CLS]); the tokenizer adds them
    special_tokens: tuple[str, ...] = ()
    # what the family's runs can do, by capability name (tetragen/pipeline.py lists them); a loaded run's pipeline
    # says what that run can do (a masked LM without a classifier cannot classify)
    capabilities: frozenset[str] = frozenset()
    # tasks the family trains besides its main one (`--task classify`); load_data receives the task
    tasks: tuple[str, ...] = ()
    # semi_supervised(model_config): switches the model into learning from partly labelled data
    # (data.label_fraction < 1); None: the family does not
    semi_supervised: Callable[[Any], None] | None = None
    # parameter-name prefixes of task heads a fine-tune may add to its base model (trained whole beside LoRA)
    task_heads: tuple[str, ...] = ()
    # the layers LoRA adapts when finetune.lora_targets is left empty (last parts of module names)
    lora_targets: tuple[str, ...] = ()
    # `--init-from` folders of another library this family starts from; None: none
    importer: Importer | None = None
    # runs this family is built from: config key -> the capability that run must have ({"model.tokenizer_run":
    # "tokenize"}: a frozen image tokenizer); the family's loader opens them and its runs keep a copy
    components: dict[str, str] = field(default_factory=dict)
    # `tetragen export --format NAME`: NAME -> write(pipeline, folder) (the folder exists and is empty)
    exporters: dict[str, Callable[[Any, Path], None]] = field(default_factory=dict)
    # how the quickstart and the bench train and show this family; None: they leave it out
    showcase: Showcase | None = None


_FAMILIES: dict[str, Family] = {}
_LOADED = False


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


def families_with(capability: str) -> list[str]:
    """The names of the families whose runs can have `capability`, for messages that say where to go instead."""
    return [name for name in list_families() if capability in _FAMILIES[name].capabilities]


def _load_builtin() -> None:
    # Imported by name rather than by an import statement: the families import this module to register, and this
    # module knows no family.
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    importlib.import_module(f"{__package__}.families")
    from importlib.metadata import entry_points
    for ep in entry_points(group="tetragen.families"):
        ep.load()
