"""What `tetragen.load` returns for a run on sound: the family's own pipeline, whose pictures become sound.

    pipe = tetragen.load("runs/cgan-words")
    sound = pipe.sample(4, seed=0, prompt="seven")     # Sound: waves float32 (4, 16000), sample_rate 16000
    sound.waves, sound.sample_rate, sound.spectrograms

A family that learns grids draws log-mel pictures; this wrapper hands them to the vocoder (Griffin-Lim, seeded, so
the same picture is always the same sound) and keeps everything else the family offers. A class-conditional run
also takes a text prompt: the class whose name is a word of the prompt ("say seven" -> seven), and a prompt that
names none of its classes is refused in one line that lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...sample.adapted import AdaptedPipeline, adapted
from .audio import MelSettings
from .data import run_settings, vocode


@dataclass
class Sound:
    """Clips a model made: waves float32 (N, clip) in [-1, 1] at `sample_rate`, the pictures they came from (uint8
    (N, n_mels, frames, 1)) and the class asked of each (None: none was)."""
    waves: np.ndarray
    sample_rate: int
    spectrograms: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.waves)


class SoundPipeline(AdaptedPipeline):
    """A trained run on sound: `sample` returns `Sound`; evaluation and the rest are the family's."""
    kind = "sound"

    def __init__(self, inner, settings: MelSettings):
        super().__init__(inner)
        self.settings = settings

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    def content(self, grids: np.ndarray, labels: np.ndarray | None) -> Sound:
        return Sound(vocode(grids, self.settings), self.sample_rate, grids, labels)


def adapt(pipe: Any, run_dir: Path):
    """The sound modality's GridForm.adapt: a loaded run of a family that learns grids, trained on sound."""
    return adapted(pipe, lambda p: SoundPipeline(p, run_settings(run_dir)))
