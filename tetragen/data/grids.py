"""What a run of a family that learns grids reads: fixed-size 8-bit grids (N, H, W, C) of any kind of content.

The image families' models see (B, C, H, W) floats in [-1, 1] made from uint8 grids. An image is such a grid; a
sound is one too, as its log-mel spectrogram. Each kind of content that can be learnt that way says so with a
`GridForm` on its modality (tetragen/registry.py), and `load_run_grids` is the `load_data` of every family with
`grids=True`: it finds the kind of the run's `--data` (kept in data.kind from then on), lets that kind read it, and
does what is the same for every kind (the class count, runs without an evaluator, semi-supervised labels).

The data a kind returns is a `GridData`. Besides the batches the trainer draws, it says how its evaluator
(tetragen/eval/image.py) scores content of its kind: what the evaluator reads of real items (`eval_inputs`: the
images themselves; the waveforms of sounds), what it reads of generated grids (`scored`: the same grid; for a sound
the waveform its vocoder makes of the spectrogram), and the reference sets that give a score its scale.
"""
from __future__ import annotations

import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import UserError
from ..registry import get_modality, list_modalities


@dataclass(frozen=True)
class View:
    """Another evaluator's reading of a kind's items (a clip's frames, read by the image evaluator), scored with a
    Fréchet distance of its own beside the kind's: `transform` turns a batch of evaluator inputs into that
    evaluator's inputs (the same number for each item), `evaluator(device)` gives it.

    With `part` (a key of the data's `class_parts` whose indices are that evaluator's classes, e.g. a clip's
    garment), the evaluation also says how often it reads the asked class's part: each item's most frequent reading
    over its inputs, beside the same figure of the test items."""
    title: str                                   # how a line names the distance ("per-frame FID")
    transform: Callable[[np.ndarray], np.ndarray]
    evaluator: Callable[[Any], Any]
    part: str = ""
    part_title: str = ""                         # how a line names that accuracy ("per-frame garment accuracy ...")

    def read_part(self, seen: np.ndarray, items: int, evaluator, device) -> np.ndarray:
        """The part index read of each of `items` items (N,): the most frequent class `evaluator` predicts over
        their transformed inputs `seen` (items x k)."""
        said = evaluator.predict(seen, device).reshape(items, -1)
        return np.array([np.bincount(row).argmax() for row in said], dtype=np.int64)


@runtime_checkable
class GridData(Protocol):
    """A dataset of grids: what the trainer, the families and the evaluator read."""
    kind: str                         # the modality's name
    name: str
    classes: list[str]
    image_shape: tuple                # (H, W, C) of one grid
    train: object                     # .images uint8 (N, H, W, C), .labels int64 (N,)
    test: object
    # what a line about this data calls one item ("image", "clip"), and the Fréchet distance ("FID", "FD (audio)")
    item: str
    distance: str
    # reference set name -> how a line names it ("train vs test", "3x3-blur vs test")
    references_named: dict
    # the parts of a class that the evaluation scores apart (a clip's garment and its motion): part name -> an int
    # array, class index -> the part's index; {} for none
    class_parts: dict
    # figures of each generated item beyond the evaluator's, averaged over the samples and shown beside the same
    # figure of the test items and of each reference set: name -> (how a line names it, a function of a batch of
    # evaluator inputs -> one float per item); {} for none
    stats: dict
    # name -> `View`: the items as another evaluator reads them, a Fréchet distance "<name>_fid" each; {} for none
    views: dict

    def train_batch(self, *, seed: int, step: int, micro: int, batch_size: int, rank: int = 0,
                    world_size: int = 1) -> dict: ...

    def eval_inputs(self, split: str, idx: np.ndarray | None = None) -> np.ndarray:
        """What the evaluator reads of items `idx` (None: all) of a split ("train" or "test")."""

    # the evaluator's own front end: eval_front() turns a batch of eval_inputs into the classifier's float input
    # (B, C, H, W) of shape eval_shape (H, W, C); eval_identity() is what its config.json records of that front end
    eval_shape: tuple

    def eval_front(self): ...

    def eval_identity(self) -> dict: ...

    def eval_settings(self) -> dict:
        """The evaluator's settings (eval/classifier.py `EvaluatorConfig`) where they are not its defaults."""

    def scored(self, grids: np.ndarray) -> np.ndarray:
        """What the evaluator reads of generated grids uint8 (N, H, W, C)."""

    def references(self, real_idx: np.ndarray, train_idx: np.ndarray) -> dict[str, np.ndarray]:
        """Evaluator inputs of each reference set, scored against the test items `real_idx`."""

    def evaluator(self, device, settings=None):
        """The evaluator of this data (tetragen/eval/classifier.py `Evaluator`), read or trained and cached."""


def kind_of(source: str) -> str:
    """The kind of content a `--data` source is: the one modality with a grid form that claims it."""
    kinds = [k for k in list_modalities() if get_modality(k).grids is not None]
    claimed = [k for k in kinds if get_modality(k).grids.claims(source)]
    if len(claimed) == 1:
        return claimed[0]
    if len(claimed) > 1:
        raise UserError(f"--data {source}: holds files of more than one kind ({', '.join(claimed)}); put each kind "
                        f"in a folder of its own, or set data.kind to one of them")
    if not source:
        raise UserError("--data is required: a dataset name or a folder (`tetragen data ls` lists the named ones)")
    p = Path(source).expanduser()
    if p.is_dir():
        raise UserError(f"--data {source}: no files of a kind these families learn ({', '.join(kinds)}) in the "
                        f"folder")
    if p.exists():
        raise UserError(f"--data {source}: expected a folder (class sub-folders become labels) or a dataset name")
    raise UserError(f"--data {source}: unknown dataset; `tetragen data ls` lists the named ones ({', '.join(kinds)} "
                    f"content), or pass a folder")


def fit_run_shape(cfg, assets=None) -> str | None:
    """Before a run's keys are checked: its kind of content sets a new run's model shape keys from the data where it
    fixes them (a `GridForm.shape`), so that checks across keys see the size the run will have; the line saying
    what changed, for the caller to print once the keys pass. Data that cannot be told apart yet is left to
    `load_run_grids`, which says what is wrong with it."""
    if not (cfg.data.kind or cfg.data.source):
        return None
    try:
        kind = cfg.data.kind or kind_of(cfg.data.source)
    except UserError:
        return None
    form = get_modality(kind).grids if kind in list_modalities() else None
    if form is None or form.shape is None:
        return None
    cfg.data.kind = kind
    return form.shape(cfg, assets)


def load_run_grids(cfg, assets=None, task: str = "lm"):
    """The data a run config asks for, read by its kind of content; fills in model.num_classes and keeps only
    data.label_fraction of the training labels when asked."""
    from ..config import apply_label_fraction
    if not cfg.data.kind:
        cfg.data.kind = kind_of(cfg.data.source)
    modality = get_modality(cfg.data.kind)
    if modality.grids is None:
        raise UserError(f"data.kind={cfg.data.kind}: {cfg.family} runs learn grids, and {cfg.data.kind} content has "
                        f"no grid form; kinds with one: "
                        + ", ".join(k for k in list_modalities() if get_modality(k).grids is not None))
    data = modality.grids.read(cfg, assets)
    m = cfg.model
    if getattr(m, "num_classes", None) == 0:  # conditional models: the class count comes from the data
        m.num_classes = len(data.classes)
    elif getattr(m, "num_classes", len(data.classes)) < len(data.classes):
        raise UserError(f"model.num_classes={m.num_classes} but {cfg.data.source} has {len(data.classes)} classes; "
                        f"leave model.num_classes at 0 to take it from the data")
    if len(data.classes) < 2 and cfg.train.eval_samples > 0:
        # FID/KID are measured in the features of an evaluator trained to tell the data's classes apart
        print(f"tetragen: {cfg.data.source} has one class, so this run reports no FID/KID (tetragen's evaluator "
              f"learns its features from class labels; put the files in class sub-folders to get them); "
              f"train.eval_samples set to 0", file=sys.stderr)
        cfg.train.eval_samples = 0
    elif len(data.test.labels) < 2 and cfg.train.eval_samples > 0:  # FID compares two sets of at least 2 items
        print(f"tetragen: {cfg.data.source} gives its test split {len(data.test.labels)} {data.item}, so this run "
              f"reports no FID/KID (they need at least 2; add more or raise data.val_fraction); train.eval_samples "
              f"set to 0", file=sys.stderr)
        cfg.train.eval_samples = 0
    if cfg.data.label_fraction < 1.0:  # semi-supervised: most training items lose their label
        apply_label_fraction(cfg)
        if len(data.classes) < 2:
            raise UserError(f"data.label_fraction={cfg.data.label_fraction}: {cfg.data.source} has no class labels "
                            f"(one class: put the files in class sub-folders); leave data.label_fraction at 1.0")
        data.keep_labels(cfg.data.label_fraction, cfg.train.seed)
    return data


def held_out(labels: np.ndarray, num_classes: int, val_fraction: float) -> np.ndarray:
    """Which items of a user's folder are its test split (a bool mask): the last `val_fraction` of each class, in
    the folder's sorted order; the last items overall when the classes are too small for a per-class share."""
    test = np.zeros(len(labels), dtype=bool)
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        n_test = int(len(idx) * val_fraction)
        if n_test:
            test[idx[-n_test:]] = True
    if test.all() or not test.any():
        test[:] = False
        test[-max(1, int(len(labels) * val_fraction)):] = True
    return test


def to_model(grids: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(grids)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (N, C, H, W) in [-1, 1] -> uint8 (N, H, W, C)."""
    x = ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


# The model configs of trained runs (read_run_classes sees every one: resume, fine-tune, load), by id: their shape
# is fixed by their weights, so the data never resets it, even where sample or reconstruct load data without assets.
_RUN_MODELS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def is_trained(model_config) -> bool:
    """Whether a model config is a trained run's (its shape is its weights')."""
    return _RUN_MODELS.get(id(model_config)) is model_config


def read_run_classes(run_dir: Path, cfg=None, base=None) -> list[str]:
    """The class names a run of grids keeps (classes.json). Marks `cfg` as a trained run's: its shape is its
    weights', and the data never resets it."""
    from ..files import read_json
    if cfg is not None:
        _RUN_MODELS[id(cfg.model)] = cfg.model
    path = Path(run_dir) / "classes.json"
    classes = read_json(path).get("classes")
    if not isinstance(classes, list):
        raise UserError(f"{path}: no 'classes' list; the run folder is incomplete")
    return classes
