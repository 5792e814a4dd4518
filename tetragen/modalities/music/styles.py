"""The style classifier: whether a piece drawn for a style sounds like that style to a network that knows them.

A run on data of two or more styles (`music21-styles`, a folder with style sub-folders) is scored on how many of
its drawn pieces the classifier reads as the style they were asked for, beside how many of the real test pieces it
reads as theirs. The classifier is tetragen's evaluator network (eval/classifier.py: a small CNN, trained once per
dataset with a fixed seed, shipped for the named sets, cached for a user's own) reading piano-roll windows: 88 keys
by `WINDOW` quarter-note frames, a key white where it sounds. It learns from windows every `STRIDE` frames through
each training piece (at most `MOST_WINDOWS` of a piece, evenly through it, so long pieces do not outweigh short
ones); a piece is read by its first window, padded with silence where it is shorter.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ...eval.classifier import ImageFront, load_evaluator
from .pieces import Collection
from .tokens import LOW

WINDOW = 32            # frames a window spans (8 bars of 4/4)
STRIDE = 16
MOST_WINDOWS = 8
KEYS = 88


def roll(frames: Sequence[Sequence[int]], start: int = 0) -> np.ndarray:
    """uint8 (KEYS, WINDOW, 1): frames start..start+WINDOW as a piano roll, the highest key in the top row."""
    out = np.zeros((KEYS, WINDOW, 1), dtype=np.uint8)
    for t, frame in enumerate(frames[start:start + WINDOW]):
        for p in frame:
            out[KEYS - 1 - (p - LOW), t, 0] = 255
    return out


def starts(n_frames: int) -> list[int]:
    """Where a piece's windows start: every STRIDE frames while a window holds new frames, at most MOST_WINDOWS."""
    every = list(range(0, max(1, n_frames - WINDOW + STRIDE), STRIDE))
    if len(every) > MOST_WINDOWS:
        every = [every[i] for i in np.linspace(0, len(every) - 1, MOST_WINDOWS).round().astype(int)]
    return every


@dataclass
class Rolls:
    images: np.ndarray     # uint8 (N, KEYS, WINDOW, 1)
    labels: np.ndarray     # int64 (N,)


class StyleRolls:
    """A collection's pieces as the style classifier reads them: the evaluator's data protocol (eval/classifier.py)
    over piano-roll windows labelled by style. Pieces without a style (a folder's top level) are left out."""
    kind = "music"
    item = "window"

    def __init__(self, collection: Collection):
        self.name, self.classes = collection.name, list(collection.styles)
        self.image_shape = self.eval_shape = (KEYS, WINDOW, 1)
        self.train, self.test = (self._rolls(collection, s) for s in ("train", "test"))

    def _rolls(self, collection: Collection, split: str) -> Rolls:
        images, labels = [], []
        for piece in collection.splits[split]:
            if piece.style in self.classes:
                for s in starts(len(piece.frames)):
                    images.append(roll(piece.frames, s))
                    labels.append(self.classes.index(piece.style))
        return Rolls(np.stack(images) if images else np.zeros((0, *self.image_shape), np.uint8),
                     np.asarray(labels, dtype=np.int64))

    def eval_inputs(self, split: str, idx: np.ndarray | None = None) -> np.ndarray:
        images = getattr(self, split).images
        return images if idx is None else images[idx]

    def eval_front(self):
        return ImageFront()

    def eval_identity(self) -> dict:
        return {"reads": "piano-roll windows", "window": WINDOW, "stride": STRIDE, "most_windows": MOST_WINDOWS}

    def eval_settings(self) -> dict:
        return {"epochs": 8, "batch_size": 32}


def style_scores(collection: Collection, pieces: Sequence[Sequence[Sequence[int]]], asked: Sequence[str],
                 device="cpu") -> dict:
    """The share of `pieces` the classifier reads as the style each was asked for (`asked`: style names), and the
    share of the real test pieces it reads as theirs; {} where the collection has fewer than two styles."""
    data = StyleRolls(collection)
    if len(data.classes) < 2 or not len(data.test.labels):
        return {}
    evaluator = load_evaluator(data, device)
    known = [(p, data.classes.index(s)) for p, s in zip(pieces, asked) if s in data.classes]
    real = [(p.frames, data.classes.index(p.style)) for p in collection.splits["test"] if p.style in data.classes]

    def share(items) -> float:
        if not items:
            return float("nan")
        said = evaluator.predict(np.stack([roll(frames) for frames, _ in items]), device)
        return float((said == np.asarray([k for _, k in items])).mean())
    return {"sample_style_acc": share(known), "test_style_acc": share(real),
            "style_classifier_window_acc": evaluator.test_acc}
