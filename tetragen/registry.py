"""The registries: every kind of content (a modality) and every model family registers itself here by name.

Two records, and shared code (api, train/, cli/, serve/, jobs/) talks to the content and the models only through
them, so that a new kind of content is one folder and a new family is one folder:

1. A **modality** (`Modality`, one folder under tetragen/modalities/) is a kind of content: text, images, and in
   time sound, music, video. It owns what is the same for every family that makes that content: its named datasets,
   the files a user gets (`writers`, chosen by `--out`'s suffix), the metric it is compared by (`headline`, lower is
   better) and its leaderboard columns, what a job asks a trained run and how the report shows the answer
   (`show`, `html`), and its server routes (`routes`). Add a modality first.
2. A **family** (`Family`, one folder under tetragen/families/) is a model: its config, network, objective,
   pipeline, and the modality it `makes` (and the one its prompts are in, `reads`). How the quickstart and the
   bench train and show it is its `Showcase` (`register_showcase`), kept apart from the model contract.

The built-ins are found by walking those two packages; other packages register through the `tetragen.modalities`
and `tetragen.families` entry-point groups (each entry point names a module that calls `register_modality` or
`register_family`). A loaded run is used through the capability Protocols of tetragen/pipeline.py.
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
    # the family trained ("": the showcase's own name); one family may be shown on several kinds of content
    family: str = ""
    kind: str = ""                    # the kind of content of its data ("": what the family makes)


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
    makes: str                        # the modality of what the family makes and trains on ("text", "image")
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
    reads: str = ""                   # the modality of its prompts ("text" for a prompt-to-image prior); "": none
    # True: the family learns fixed-size 8-bit grids (H, W, C) and so trains on every modality that has a grid form
    # (`Modality.grids`: images, and spectrograms of sound); what a run made is then the modality of its data
    grids: bool = False
    # True: the family learns token sequences and so trains on every modality that has a token form
    # (`Modality.tokens`: music as frames of pitches); what a run made is then the modality of its data
    tokens: bool = False


@dataclass(frozen=True)
class GridForm:
    """How a kind of content is learnt as fixed-size 8-bit grids (H, W, C), the tensors the image families' models
    see: an image is one, a sound is its log-mel spectrogram. Every family with `grids=True` then trains on it."""
    # claims(source) -> whether a `--data` source is of this kind (one of its named datasets, a folder of its files)
    claims: Callable[[str], bool]
    # read(run_config, assets) -> the run's data (tetragen/data/grids.py `GridData`); a new run (assets None) may
    # set the model config's shape keys from the data, a trained run's shape is checked against it
    read: Callable[..., Any]
    # adapt(pipe, run_dir) -> what `tetragen.load` returns for a run of this kind made by a family whose own
    # content is another (its samples turned into this kind's content); None: the family's pipeline as it is
    adapt: Callable[[Any, Path], Any] | None = None
    # shape(run_config, assets) -> the line saying what it changed, or None: what `read` does to the model config's
    # shape keys, done before they are checked (a key that must divide model.image_size is checked at the data's
    # size) and said once they pass; None: `read` alone sets them
    shape: Callable[..., str | None] | None = None


@dataclass(frozen=True)
class TokenForm:
    """How a kind of content is learnt as token sequences, what the language-model families' models see: a piece of
    music is its frames of pitches. Every family with `tokens=True` then trains on it."""
    # claims(source) -> whether a `--data` source is of this kind (one of its named datasets, a file or a folder
    # of its files)
    claims: Callable[[str], bool]
    # read(run_config, tokenizer, task) -> the run's data, what tetragen/data/text.py `load_lm_data` returns (batches,
    # a tokenizer, save_assets); `tokenizer` None: a new run, given the kind's own tokenizer; else a trained run's
    read: Callable[..., Any]
    # tokenizer(path) -> the tokenizer a run of this kind keeps (its tokenizer.json)
    tokenizer: Callable[[Path], Any]
    # adapt(pipe, run_dir) -> what `tetragen.load` returns for a run of this kind made by a family whose own
    # content is another (its token sequences turned into this kind's content); None: the family's pipeline
    adapt: Callable[[Any, Path], Any] | None = None


@dataclass(frozen=True)
class Modality:
    """A kind of content. Every hook takes and returns plain values (arrays, paths, dicts), never a family."""
    name: str
    description: str
    # metric keys, the first one a result has is its headline: the one lower-is-better figure it is ranked by
    headline: tuple[str, ...]
    # the leaderboard's columns: title -> (metric key, format); a result without the metric shows "—"
    columns: dict[str, tuple[str, str]]
    # how to read its figures, printed under its leaderboard and the report's summary
    note: str
    # datasets() -> the named datasets of this kind (tetragen.data.sources.NamedDataset): `data ls`, `data fetch`,
    # and the ones a job looks for
    datasets: Callable[[], list]
    # example(folder) -> a --data source: writes a tiny labelled dataset of this kind into `folder` (tests, docs)
    example: Callable[[Path], str]
    # `--out` suffix -> write(path, output): the files a user gets; output is what the pipeline returned
    writers: dict[str, Callable[[Path, Any], None]]
    # show(pipe, prompts, folder, data) -> (items, speed): what a job asks a trained run of this kind; each item a
    # JSON-able dict (its files under `folder`), speed {"unit", "value"} or {}
    show: Callable[..., tuple[list[dict], dict]]
    # html(item, job_folder) -> the report's HTML block for one item of `show`, self-contained (files inlined)
    html: Callable[[dict, Path], str]
    # commands(run, prompt, capabilities) -> the CLI lines that ask a run of this kind what the report shows
    commands: Callable[[str, str, Any], list[str]] = lambda run, prompt, capabilities: []
    # capability -> the server routes that serve it (model cards, the playground, the report's serve line)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # add_routes(app): mounts those routes on the server's FastAPI app; None: none
    add_routes: Callable[[Any], None] | None = None
    # card(pipe) -> what a model card adds for a run of this kind (its classes, its context); None: nothing
    card: Callable[[Any], dict] | None = None
    # CLI verbs of this kind of content alone (music's `tetragen harmonise`): modules with `add_parser(subparsers)`,
    # as tetragen/cli's verbs are
    verbs: tuple = ()
    # a JavaScript file that adds this kind's panels to the server's playground page
    # (`tetragenPlayground.addPanel`, tetragen/serve/static/app.js); "": none of its own
    playground: str = ""
    # what `--data KIND=SOURCE` of a job means for this kind, for its help
    data_help: str = ""
    # how families that learn grids learn this kind (`Family.grids`); None: they do not
    grids: GridForm | None = None
    # how families that learn token sequences learn this kind (`Family.tokens`); None: they do not
    tokens: TokenForm | None = None


_MODALITIES: dict[str, Modality] = {}
_FAMILIES: dict[str, Family] = {}
_SHOWCASES: dict[str, Showcase] = {}
_LOADED = False


def register_modality(modality: Modality) -> Modality:
    if modality.name in _MODALITIES:
        raise ValueError(f"modality {modality.name!r} registered twice")
    _MODALITIES[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    _load_builtin()
    if name not in _MODALITIES:
        raise UserError(f"unknown kind of content {name!r}; known: {', '.join(list_modalities())}")
    return _MODALITIES[name]


def list_modalities() -> list[str]:
    _load_builtin()
    return sorted(_MODALITIES)


def run_modality(cfg) -> Modality:
    """The modality a run makes: the kind of its data (data.kind, set when it was first loaded), else what its
    family makes."""
    return get_modality(cfg.data.kind or get_family(cfg.family).makes)



def register_family(family: Family) -> Family:
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    for kind in (family.makes, family.reads):
        if kind and kind not in _MODALITIES and _LOADED:
            raise ValueError(f"family {family.name!r}: no modality {kind!r} is registered; register it first")
    _FAMILIES[family.name] = family
    return family


def register_showcase(name: str, showcase: Showcase) -> Showcase:
    """How the quickstart and the bench train and show a family (kept apart from its model contract), by the name
    a job lists it under: the family's name, or another one for a second showcase of it (`Showcase.family`)."""
    if name in _SHOWCASES:
        raise ValueError(f"showcase {name!r} registered twice")
    _SHOWCASES[name] = showcase
    return showcase


def get_showcase(name: str) -> Showcase | None:
    """The showcase of that name; None: the quickstart and the bench have none."""
    _load_builtin()
    return _SHOWCASES.get(name)


def list_showcases() -> list[str]:
    _load_builtin()
    return sorted(_SHOWCASES)


def showcase_family(name: str) -> str:
    """The family a showcase trains."""
    return get_showcase(name).family or name


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
    # Imported by name rather than by an import statement: the modalities and families import this module to
    # register, and this module knows none of them. Modalities first: a family names the modality it makes.
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from importlib.metadata import entry_points
    importlib.import_module(f"{__package__}.modalities")
    for ep in entry_points(group="tetragen.modalities"):
        ep.load()
    importlib.import_module(f"{__package__}.families")
    for ep in entry_points(group="tetragen.families"):
        ep.load()
