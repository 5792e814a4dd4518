"""Music statistics of a set of pieces, and how far two sets are apart on each.

- pitch classes: the share of notes on each of the 12 pitch classes; distance = total variation (half the L1 norm,
  0 for the same shares, 1 for disjoint ones);
- intervals: the melodic steps of the top voice (the highest note of consecutive frames that both sound), -12..12
  semitones (larger leaps counted at the ends); distance = total variation;
- notes per frame: the mean number of pitches sounding in a frame;
- in key: the share of notes inside the scale of each piece's own key (estimated from its notes, tokens.py);
- voice ranges: the mean pitch of the top and of the bottom voice (the highest and lowest note of each frame).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .tokens import estimate_key, in_key, pitch_class_histogram

Frames = Sequence[Sequence[int]]


def _share(h: np.ndarray) -> np.ndarray:
    return h / h.sum() if h.sum() else h


def pitch_classes(pieces: Sequence[Frames]) -> np.ndarray:
    return _share(sum((pitch_class_histogram(p) for p in pieces), np.zeros(12)))


def intervals(pieces: Sequence[Frames]) -> np.ndarray:
    h = np.zeros(25)
    for frames in pieces:
        tops = [max(f) if f else None for f in frames]
        for a, b in zip(tops, tops[1:]):
            if a is not None and b is not None:
                h[int(np.clip(b - a, -12, 12)) + 12] += 1
    return _share(h)


def notes_per_frame(pieces: Sequence[Frames]) -> float:
    frames = [f for p in pieces for f in p]
    return float(np.mean([len(f) for f in frames])) if frames else 0.0


def in_key_share(pieces: Sequence[Frames]) -> float:
    inside = total = 0
    for frames in pieces:
        tonic, mode = estimate_key(frames)
        notes = [p for f in frames for p in f]
        inside += sum(in_key(p, tonic, mode) for p in notes)
        total += len(notes)
    return inside / total if total else 0.0


def voice_means(pieces: Sequence[Frames]) -> tuple[float, float]:
    """(mean MIDI pitch of the top voice, of the bottom voice) over the frames that sound."""
    tops = [max(f) for p in pieces for f in p if f]
    bottoms = [min(f) for p in pieces for f in p if f]
    return (float(np.mean(tops)), float(np.mean(bottoms))) if tops else (0.0, 0.0)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.abs(a - b).sum())


def compare(made: Sequence[Frames], real: Sequence[Frames], prefix: str) -> dict:
    """The statistics of `made` and their distances to `real`, keys prefixed by `prefix`."""
    return {f"{prefix}pc_distance": distance(pitch_classes(made), pitch_classes(real)),
            f"{prefix}interval_distance": distance(intervals(made), intervals(real)),
            f"{prefix}notes_per_frame": notes_per_frame(made),
            f"{prefix}in_key": in_key_share(made),
            f"{prefix}top_pitch": voice_means(made)[0], f"{prefix}bottom_pitch": voice_means(made)[1]}
