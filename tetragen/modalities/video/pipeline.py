"""What `tetragen.load` returns for a run on video: the family's own pipeline, whose grids become clips.

    pipe = tetragen.load("runs/cgan-clips")
    clips = pipe.sample(4, seed=0, prompt="a sneaker moving left")   # Clips: frames uint8 (4, 16, 32, 32), fps 10
    clips.frames, clips.fps, clips.labels

A class-conditional run reads a prompt as the garment and the motion it names ("a bag moving up-left", "sneaker,
moving down and to the right", "a bag bouncing"; two garments either way round, "a bag and a shirt moving apart"); a
prompt whose motion words no caption uses ("spinning") is refused in one line that lists the motions the model
knows, by a run that reads the prompt's text (t2i) as well.
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
from .moving import said

MOVING = re.compile(r"\bmov(?:e|es|ing)\b")
# how a prompt may name a diagonal: "up-left", "up left", "up and to the left", "left and up"
_DIAGONAL = re.compile(r"\b(up|down)(?:wards?)?(?:[- ]| and (?:to the )?)(left|right)\b"
                       r"|\b(left|right)(?:wards?)?(?:[- ]| and )(up|down)\b")
_STRAIGHT = re.compile(r"\b(up|down|left|right)(?:wards?)?\b")
_TWO = re.compile(r"\b(apart|together)\b")           # two things: away from each other or towards
_BOUNCING = re.compile(r"\bbounc(?:e|es|ing)\b")
# a class named for a thing and its motion: "<thing> moving <direction>" or "<thing> bouncing"
_CLASS_MOTION = re.compile(r"(?P<thing>.+?) (?:moving (?P<direction>\S+)|(?P<ing>bouncing))")
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
    """The motion a prompt names: a direction ("up-left", "down", ...), "bouncing", "apart" or "together"; None
    when it names none."""
    text = prompt.casefold()
    if _BOUNCING.search(text):
        return "bouncing"
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

    def parts(self) -> list[tuple[str, str]] | None:
        """(thing, motion) of each class named "<thing> moving <direction>" or "<thing> bouncing"; None when a class
        is named otherwise."""
        found = [_CLASS_MOTION.fullmatch(c) for c in self.classes]
        if not all(found):
            return None
        return [(m["thing"], m["direction"] or m["ing"]) for m in found]

    def motions(self) -> list[str] | None:
        """The motions the classes name, in order; None for classes named otherwise."""
        parts = self.parts()
        return None if parts is None else list(dict.fromkeys(motion for _, motion in parts))

    def motion_asked(self, prompt: str, motions: list[str]) -> str:
        """The motion a prompt names, one of `motions`; a UserError listing them when it names none or another."""
        motion = motion_of(prompt.casefold())
        if motion is None or motion not in motions:
            heard = f"the motion {motion!r} is not one" if motion else "it names no motion"
            raise UserError(f"prompt {prompt!r}: {heard} of those the captions use; say one of: "
                            f"{', '.join(map(said, motions))}")
        return motion

    def check_text(self, prompt: str) -> None:
        """A run that reads text is held to the motions its captions use, as a class-conditional one is."""
        motions = self.motions()
        if motions is not None and isinstance(prompt, str) and prompt.strip():
            self.motion_asked(prompt, motions)

    def class_of_prompt(self, prompt: str) -> int:
        """Classes named for a thing and its motion are read as the thing and the motion the prompt names; other
        class names as words of the prompt."""
        parts = self.parts()
        if parts is None:
            return super().class_of_prompt(prompt)
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("prompt: empty; name a thing and its motion, e.g. " + repr("a " + self.classes[0]))
        things = list(dict.fromkeys(thing for thing, _ in parts))
        thing = thing_of(prompt, things)
        if thing is None:
            raise UserError(f"prompt {prompt!r}: names none of the things this model draws; name one of: "
                            f"{', '.join(sorted(things))}")
        motion = self.motion_asked(prompt, list(dict.fromkeys(motion for _, motion in parts)))
        if (thing, motion) not in parts:
            theirs = ", ".join(said(m) for t, m in parts if t == thing)
            raise UserError(f"prompt {prompt!r}: this model's clips of {thing} are {theirs}; say one of those")
        return parts.index((thing, motion))


def adapt(pipe: Any, run_dir: Path):
    """The video modality's GridForm.adapt: a loaded run of a family that learns grids, trained on clips."""
    return adapted(pipe, lambda p: VideoPipeline(p, run_video(run_dir)))
