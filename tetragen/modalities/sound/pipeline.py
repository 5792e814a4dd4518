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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserError
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


class SoundPipeline:
    """A trained run on sound: `sample` returns `Sound`; evaluation and the rest are the family's."""

    def __init__(self, inner, settings: MelSettings):
        self.inner, self.settings = inner, settings
        self.config, self.model, self.assets = inner.config, inner.model, inner.assets
        self.classes, self.num_classes = list(inner.classes), int(inner.num_classes)
        self.batch_size = int(inner.batch_size)
        self.reads_text = "prompt" in inner.capabilities
        # a class-conditional run is prompted by the name of a class
        self.capabilities = frozenset(inner.capabilities | ({"prompt"} if inner.conditional else set()))

    @property
    def conditional(self) -> bool:
        return bool(self.inner.conditional)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    def class_index(self, label) -> int:
        return self.inner.class_index(label)

    def labels_for(self, n: int, labels=None):
        return self.inner.labels_for(n, labels)

    def class_of_prompt(self, prompt: str) -> int:
        """The class whose name is a word (or words) of `prompt`, case-insensitively; the first one named."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt: empty; name what to say, e.g. " + repr(self.classes[0]))
        text = prompt.casefold()
        found = [(m.start(), i) for i, c in enumerate(self.classes)
                 for m in [re.search(r"(?<!\w)" + re.escape(c.casefold()) + r"(?!\w)", text)] if m]
        if not found:
            raise UserError(f"prompt {prompt!r}: this model makes only its {len(self.classes)} classes and the prompt "
                            f"names none of them; name one of: {', '.join(self.classes)}")
        return min(found)[1]

    def sample(self, n: int | None = None, *, seed: int | None = None, seeds=None, labels=None,
               prompt: str | None = None, prompts=None, **sampling) -> Sound:
        """n clips (sample i from seeds[i] or seed + i). `labels`: the class of each (or one for all); `prompt` /
        `prompts`: text, read by a run that reads text, else naming the class; the family's own sampling settings
        (guidance, steps, ...) pass through to a run that takes them."""
        if self.reads_text:
            pictures = self.inner.sample(n, seed=seed, seeds=seeds, labels=labels, prompt=prompt, prompts=prompts,
                                         **sampling)
            asked = None if labels is None else self.labels_for(len(pictures), labels)
        else:
            unknown = sorted(k for k, v in sampling.items() if v is not None)
            if unknown:
                raise UserError(f"{unknown[0]}: a {self.config.family} run on sound draws a class from noise and "
                                f"takes no {unknown[0]}")
            if prompt is not None or prompts is not None:
                if labels is not None:
                    raise UserError("prompt and labels: give one of them")
                texts = list(prompts) if prompts is not None else None
                labels = [self.class_of_prompt(t) for t in texts] if texts is not None \
                    else self.class_of_prompt(prompt)
            if n is None and seeds is not None:
                n = len(list(seeds))
            asked = self.labels_for(n, labels) if self.conditional else None
            pictures = self.inner.sample(n, seed=seed, seeds=seeds, labels=asked)
        return Sound(vocode(pictures, self.settings), self.sample_rate, pictures,
                     None if asked is None else np.asarray(asked, dtype=np.int64))

    def interpolate(self, seed_a: int, seed_b: int, steps: int = 8, label=None) -> Sound:
        pictures = self.inner.interpolate(seed_a, seed_b, steps, label=label)
        return Sound(vocode(pictures, self.settings), self.sample_rate, pictures)

    def evaluate(self, data, *, n: int = 10000, seed: int = 0, iw_samples: int = 100) -> tuple[dict, list[str]]:
        return self.inner.evaluate(data, n=n, seed=seed, iw_samples=iw_samples)


def adapt(pipe: Any, run_dir: Path):
    """The sound modality's GridForm.adapt: a loaded run of a family that learns grids, trained on sound. A run that
    draws nothing new (a tokenizer: it encodes and decodes pictures, for a prior built on it) is left as it is."""
    if not pipe.capabilities & {"sample", "prompt"}:
        return pipe
    return SoundPipeline(pipe, run_settings(run_dir))
