"""What `tetragen.load` returns for a run on video: the family's own pipeline, whose grids become clips.

    pipe = tetragen.load("runs/cgan-clips")
    clips = pipe.sample(4, seed=0, prompt="a sneaker moving left")   # Clips: frames uint8 (4, 16, 32, 32), fps 10
    clips.frames, clips.fps, clips.labels

A class-conditional run reads a prompt as the garment and the motion it names ("a bag moving up-left", "sneaker,
moving down and to the right"; two garments either way round, "a bag and a shirt moving apart"); a prompt whose
motion words no caption uses ("spinning") is refused in one line that lists the motions the model knows, by a run
that reads the prompt's text (t2i) as well.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ...sample.adapted import AdaptedPipeline, adapted
from .data import frames_of, run_video

MOVING = re.compile(r"\bmov(?:e|es|ing)\b")
# how a prompt may name a diagonal: "up-left", "up left", "up and to the left", "left and up"
_DIAGONAL = re.compile(r"\b(up|down)(?:wards?)?(?:[- ]| and (?:to the )?)(left|right)\b"
                       r"|\b(left|right)(?:wards?)?(?:[- ]| and )(up|down)\b")
_STRAIGHT = re.compile(r"\b(up|down|left|right)(?:wards?)?\b")
_TWO = re.compile(r"\b(apart|together)\b")           # two things: away from each other or towards
_ARTICLES = re.compile(r"\b(?:a|an|the)\s+")


@dataclass
class Clips:
    """Clips a model made: frames uint8 (N, T, H, W), played at `fps`, and the class asked of each (None: none)."""
    frames: np.ndarray
    fps: int
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frames)


def motion_of(prompt: str) -> str | None:
    """The motion a prompt names: a direction ("up-left", "down", ...), "apart" or "together"; None when it names
    none."""
    text = prompt.casefold()
    m = _TWO.search(text)
    if m:
        return m.group(1)
    m = _DIAGONAL.search(text)
    if m:
        vertical, horizontal = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        return f"{vertical}-{horizontal}"
    m = _STRAIGHT.search(text)
    return m.group(1) if m else None


def _bare(text: str) -> str:
    return " ".join(_ARTICLES.sub("", text.casefold()).split())


def thing_of(prompt: str, things: list[str]) -> str | None:
    """The one of `things` a prompt names, articles aside ("bag, moving left" names "bag"; "a shirt and a bag"
    names "a bag and a shirt" too: two things either way round); the longest that matches, None when none does."""
    text = _bare(prompt)
    for thing in sorted(things, key=len, reverse=True):
        bare = _bare(thing)
        ways = {bare, " and ".join(reversed(bare.split(" and ", 1)))}
        if any(re.search(r"(?<!\w)" + re.escape(w) + r"(?!\w)", text) for w in ways):
            return thing
    return None


class VideoPipeline(AdaptedPipeline):
    """A trained run on video: `sample` returns `Clips`; evaluation and the rest are the family's."""
    kind = "video"

    def __init__(self, inner, video: dict):
        super().__init__(inner)
        self.fps, self.frames = int(video["fps"]), int(video["frames"])

    def content(self, grids: np.ndarray, labels: np.ndarray | None) -> Clips:
        return Clips(frames_of(grids), self.fps, labels)

    def motions(self) -> list[str] | None:
        """The motions of classes named "<thing> moving <direction>", in order; None for classes named otherwise."""
        split = [c.split(" moving ", 1) for c in self.classes]
        return list(dict.fromkeys(d for _, d in split)) if all(len(s) == 2 for s in split) else None

    def motion_asked(self, prompt: str, motions: list[str]) -> str:
        """The motion a prompt names, one of `motions`; a UserError listing them when it names none or another."""
        motion = motion_of(prompt.casefold())
        if motion is None or motion not in motions:
            said = f"the motion {motion!r} is not one" if motion else "it names no motion"
            raise UserError(f"prompt {prompt!r}: {said} of those the captions use; say \"moving\" and one of: "
                            f"{', '.join(motions)}")
        return motion

    def check_text(self, prompt: str) -> None:
        """A run that reads text is held to the motions its captions use, as a class-conditional one is."""
        motions = self.motions()
        if motions is not None and isinstance(prompt, str) and prompt.strip():
            self.motion_asked(prompt, motions)

    def class_of_prompt(self, prompt: str) -> int:
        """Classes named "<thing> moving <direction>" are read as the thing and the direction the prompt names;
        other class names as words of the prompt."""
        motions = self.motions()
        if motions is None:
            return super().class_of_prompt(prompt)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt: empty; name a thing and its motion, e.g. " + repr("a " + self.classes[0]))
        things = list(dict.fromkeys(c.split(" moving ", 1)[0] for c in self.classes))
        thing = thing_of(prompt, things)
        if thing is None:
            raise UserError(f"prompt {prompt!r}: names none of the things this model draws; name one of: "
                            f"{', '.join(sorted(things))}")
        return self.classes.index(f"{thing} moving {self.motion_asked(prompt, motions)}")


def adapt(pipe: Any, run_dir: Path):
    """The video modality's GridForm.adapt: a loaded run of a family that learns grids, trained on clips."""
    return adapted(pipe, lambda p: VideoPipeline(p, run_video(run_dir)))
