"""Pieces of music as the modality keeps them: quarter-note frames with the prompt (style and key) each is learnt
under, by split, and their cache form (JSON)."""
from __future__ import annotations

from dataclasses import dataclass, field

from .tokens import estimate_key, key_name, parse_key, words_of


@dataclass
class Piece:
    frames: list[list[int]]
    prompt: str                  # its style and key: "bach chorale in g minor"
    name: str = ""
    # (pitch, onset, duration) in sixteenths where the source has real durations; None: the frames' held notes
    notes: list | None = None
    label: str = ""              # its style where the prompt does not begin with it (a captioned piece's folder)

    def events(self) -> list[tuple[int, int, int]]:
        """Its notes on the sixteenth grid, for the event tokenization."""
        from .midi import frames_to_notes
        return [tuple(n) for n in self.notes] if self.notes is not None else frames_to_notes(self.frames)

    @property
    def style(self) -> str:
        return self.label or self.prompt.split(" in ")[0]


@dataclass
class Collection:
    """The pieces of a source by split, and its styles (the classes a prompt names)."""
    name: str
    splits: dict[str, list[Piece]]
    styles: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # pieces that could not be read, with why


def prompt_of(style: str, frames, metre: str = "") -> str:
    """A piece's prompt: its style, the key estimated from its notes and its metre where known ("irish tune in d
    major 6/8")."""
    key = f"in {key_name(*estimate_key(frames))}" + (f" {metre}" if metre else "")
    return f"{style} {key}" if style else key


def captioned(text: str, frames, metre: str = "") -> str:
    """A caption as a piece's prompt: its words, then the key estimated from the notes where it names none, and the
    metre where known and not named."""
    words = " ".join(words_of(text))
    if not parse_key(words):
        words += f" in {key_name(*estimate_key(frames))}"
    return words + (f" {metre}" if metre and metre not in words.split() else "")


def collection_to_json(c: Collection) -> dict:
    return {"name": c.name, "styles": c.styles, "skipped": c.skipped,
            "splits": {s: [{"frames": p.frames, "prompt": p.prompt, "name": p.name,
                            **({"notes": [list(n) for n in p.notes]} if p.notes is not None else {}),
                            **({"label": p.label} if p.label else {})} for p in ps]
                       for s, ps in c.splits.items()}}


def collection_from_json(doc: dict) -> Collection:
    return Collection(doc["name"], {s: [Piece(p["frames"], p["prompt"], p.get("name", ""), p.get("notes"),
                                              p.get("label", "")) for p in ps] for s, ps in doc["splits"].items()},
                      doc.get("styles", []), doc.get("skipped", []))
