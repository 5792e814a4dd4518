"""The text side of text-to-image training: a caption for every image, built or read, drawn per (seed, step).

Two sources of captions:

* Built, for a labelled dataset (Fashion-MNIST, or an image folder without a caption file): the class's noun
  phrase ("a pair of trousers", "an ankle boot"; a fallback phrase made from any other class name) with words for
  two attributes measured from the image itself, brightness ("dark" / "light") and size ("small" / "large"), in
  varied phrasings ("a large light pullover", "a photo of a sneaker, small and dark"). The phrasings come in two
  disjoint sets, "train" and "held-out", so a model can be asked in words it never saw.
* Read, for an image folder with `captions.jsonl` (`{"file": "cls/a.png", "text": "..."}` per line) or
  `captions.csv` (header `file,text`) next to the images. Bad lines are skipped, counted and listed in one warning.

Attributes are terciles of a measurement. "Ink" is every pixel whose luminance is above INK_THRESHOLD (the objects
are light on a black background, as in Fashion-MNIST); brightness is the mean ink luminance, size the fraction of
ink pixels. The cut points are fitted on the training split, per class (a "large sandal" is large for a sandal: with
cuts over all classes the size word would mostly repeat the class, and some class/word pairs would barely occur),
and stored with the run, so test images, prompts and the scoring of generated samples use the same cuts. The middle
tercile has no word: a caption names only what stands out, and a prompt without a word asks for a typical image.

A `CaptionSet` gives each image its candidate captions and picks one as a pure function of (seed words, image), so
training draws a fresh phrasing each step and a resumed run draws the same ones.

What every prompt-conditioned family reads of them (t2i, diffusion with `model.cond=text`, ldm) is at the end: the
character tokenizer over every caption the run can see (`text_tokenizer_for`), one prompt per class
(`class_prompts`), and `PromptCodes`, which turns captions and users' prompts into the fixed-length rows of ids a
model's text input takes. This module is numpy, stdlib and the character tokenizer only; it knows no model family.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from .tokenizer import PAD, CharTokenizer

INK_THRESHOLD = 32  # uint8 luminance; above the faint edges and the background noise a generator leaves
ATTRIBUTES = ("brightness", "size")
ATTRIBUTE_WORDS = {  # attribute -> word for tercile 0, 1, 2 (None: the middle tercile is not named)
    "brightness": ("dark", None, "light"),
    "size": ("small", None, "large"),
}
PHRASINGS_VERSION = 1  # bump when a template or noun changes: stored captions then no longer reproduce
CAPTION_FILES = ("captions.jsonl", "captions.csv")
SHOWN_PROBLEMS = 3  # bad lines listed in the warning or error; the rest are only counted


# ----------------------------------------------------------------------------------------------------------------
# measured attributes

def measure(images: np.ndarray, ink_threshold: int = INK_THRESHOLD) -> dict[str, np.ndarray]:
    """Brightness (mean ink luminance, 0..1) and size (fraction of ink pixels, 0..1) of each uint8 grid
    (N, H, W, C): C 1 is grey, 3 is RGB, and any other C holds C grey pictures (the frames of a clip), measured
    together. A grid without ink has brightness 0 and size 0."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"measure: expected uint8 grids (N, H, W, C), got shape {images.shape}")
    n = len(images)
    brightness, size = np.zeros(n), np.zeros(n)
    for i in range(0, n, 4096):  # in chunks: a float copy of 60k images would be several hundred MB
        x = images[i:i + 4096].astype(np.float32)
        # (n, H, W, pictures): one grey picture, RGB as its luminance (ITU-R 601), or one picture per channel
        lum = x @ np.array([[0.299], [0.587], [0.114]], dtype=np.float32) if x.shape[-1] == 3 else x
        ink = lum > ink_threshold
        count = ink.sum(axis=(1, 2, 3))
        brightness[i:i + 4096] = (lum * ink).sum(axis=(1, 2, 3)) / np.maximum(count, 1) / 255.0
        size[i:i + 4096] = count / lum[0].size
    return {"brightness": brightness, "size": size}


def _cuts(values: np.ndarray) -> tuple[float, float]:
    lo, hi = np.quantile(values, [1 / 3, 2 / 3])
    return float(lo), float(hi)


def _bucket(values: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    # ties at a cut go to the middle, so a constant measurement puts every image in the middle tercile
    lo, hi = cuts
    return (values >= lo).astype(np.int64) + (values > hi)


@dataclass(frozen=True)
class Terciles:
    """Tercile cut points (low, high) of each attribute, over all training images (`cuts`) and per class
    (`class_cuts`, None for a class with under 3 training images, which then uses the overall cuts)."""
    cuts: dict[str, tuple[float, float]]
    class_cuts: dict[str, list[tuple[float, float] | None]]
    ink_threshold: int = INK_THRESHOLD

    @classmethod
    def fit(cls, images: np.ndarray, labels: np.ndarray | None = None, num_classes: int = 0,
            ink_threshold: int = INK_THRESHOLD) -> Terciles:
        """Fit on the TRAINING images (with their labels for per-class cuts)."""
        if not len(images):
            raise ValueError("Terciles.fit: no images")
        values = measure(images, ink_threshold)
        labels = np.zeros(len(images), np.int64) if labels is None else np.asarray(labels)
        num_classes = max(num_classes, int(labels.max()) + 1)
        per_class = {a: [_cuts(v[labels == c]) if (labels == c).sum() >= 3 else None for c in range(num_classes)]
                     for a, v in values.items()}
        return cls({a: _cuts(v) for a, v in values.items()}, per_class, ink_threshold)

    def bucket(self, values: np.ndarray, attribute: str, labels: np.ndarray | None = None) -> np.ndarray:
        """Tercile index 0/1/2 of each measured value: with labels, by the cuts of each value's class."""
        values = np.asarray(values, dtype=np.float64)
        if labels is None:
            return _bucket(values, self.cuts[attribute])
        labels = np.asarray(labels)
        out = np.empty(len(values), np.int64)
        per_class = self.class_cuts[attribute]
        for c in np.unique(labels):
            at = labels == c
            cuts = per_class[c] if 0 <= c < len(per_class) and per_class[c] is not None else self.cuts[attribute]
            out[at] = _bucket(values[at], cuts)
        return out

    def buckets(self, images: np.ndarray, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Measure images (training, test or generated ones, with the classes they were asked for) and give each
        attribute's tercile index per image: how a sample asked to be "dark" is checked to be in the dark tercile."""
        values = measure(images, self.ink_threshold)
        return {a: self.bucket(values[a], a, labels) for a in ATTRIBUTES}

    def to_json(self) -> dict:
        return {"ink_threshold": self.ink_threshold, "cuts": {a: list(c) for a, c in self.cuts.items()},
                "class_cuts": {a: [None if c is None else list(c) for c in cs] for a, cs in self.class_cuts.items()}}

    @classmethod
    def from_json(cls, doc: dict, where: str = "captions") -> Terciles:
        try:
            cuts = {a: _pair(doc["cuts"][a]) for a in ATTRIBUTES}
            class_cuts = {a: [None if c is None else _pair(c) for c in doc["class_cuts"][a]] for a in ATTRIBUTES}
            return cls(cuts, class_cuts, int(doc["ink_threshold"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: bad tercile record ({type(e).__name__}: {e}); the run folder is damaged") \
                from None


def _pair(c) -> tuple[float, float]:
    lo, hi = (float(v) for v in c)
    return lo, hi


def attribute_words(brightness: int | str | None = None, size: int | str | None = None) -> list[str]:
    """The words for tercile indices (or words) of size and brightness, in English adjective order (size first):
    (0, 2) -> ["large", "dark"]. None and the middle tercile give no word."""
    words = []
    for attribute, value in (("size", size), ("brightness", brightness)):
        choices = ATTRIBUTE_WORDS[attribute]
        if isinstance(value, str):
            if value not in choices:
                known = ", ".join(w for w in choices if w)
                raise UserError(f"{attribute} {value!r}: not one of {known}; or leave it out")
            words.append(value)
        elif value is not None:
            if value not in (0, 1, 2):
                raise ValueError(f"{attribute} tercile {value!r}: expected 0, 1 or 2")
            if choices[int(value)]:
                words.append(choices[int(value)])
    return words


# ----------------------------------------------------------------------------------------------------------------
# noun phrases and phrasings

# (determiner, noun): determiner "a" becomes "a"/"an" by the word after it; "" is a bare plural
_NOUNS = {
    "t-shirt/top": [("a", "t-shirt"), ("a", "top")],
    "trouser": [("a pair of", "trousers"), ("", "trousers"), ("a pair of", "pants")],
    "pullover": [("a", "pullover"), ("a", "sweater"), ("a", "jumper")],
    "dress": [("a", "dress")],
    "coat": [("a", "coat"), ("a", "jacket")],
    "sandal": [("a", "sandal")],
    "shirt": [("a", "shirt"), ("a", "button-up shirt")],
    "sneaker": [("a", "sneaker"), ("a", "running shoe")],
    "bag": [("a", "bag"), ("a", "handbag")],
    "ankle boot": [("a", "ankle boot"), ("a", "boot")],
}

# {np}: determiner, adjectives (size first), noun; {np_rev}: the adjectives the other way round; {bare}: no
# determiner; {noun_np}: determiner and noun only; [...]: kept only when the image has attribute words, {adjs}
# being them joined by "and". No held-out template may produce a training caption (a test enumerates both).
PHRASINGS = {
    "train": ("{np}", "{bare}", "a photo of {np}", "{noun_np}[, {adjs}]", "{np_rev}",
              "a photo of {noun_np}[, {adjs}]"),
    "held-out": ("an image showing {np}", "a picture of {noun_np}[, {adjs}]", "a close-up of {np_rev}",
                 "this image shows {np}"),
}


def _normalise(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").split())


# words after which a class name that is a phrase goes on past its noun ("trousers moving down", "dogs in snow"):
# the word before the first of them is the noun that decides the article
_PHRASE_WORDS = frozenset({"in", "on", "at", "by", "with", "of", "from", "under", "over", "near", "and"})


def _head(part: str) -> str:
    """The noun of a noun phrase: the word before the first -ing word or preposition after it, else the last."""
    words = part.split()
    for k, word in enumerate(words[1:], 1):
        if (len(word) > 4 and word.endswith("ing")) or word in _PHRASE_WORDS:
            return words[k - 1]
    return words[-1]


def _fallback_nouns(name: str) -> list[tuple[str, str]]:
    """Noun phrases for a class name tetragen does not know: the name itself, lower-cased, "/" separating
    alternatives, a phrase kept whole ("sneaker moving left" -> "a sneaker moving left"); one whose noun looks
    plural ("cats", "trousers moving down") goes without an article; one that starts with its own ("a shirt and a
    bag moving apart") keeps it, fitted to any adjectives put after it; one without letters becomes "an object of
    class NAME"."""
    nouns = []
    for part in _normalise(name).split("/"):
        part = part.strip()
        if not part:
            continue
        head = _head(part)
        first, _, rest = part.partition(" ")
        if first in ("a", "an") and rest:
            nouns.append(("a", rest))
        elif not re.search(r"[^\W\d_]", part):
            nouns.append(("a", f"object of class {part}"))
        elif len(head) > 3 and head.endswith("s") and not head.endswith(("ss", "us", "is")):
            nouns.append(("", part))
        else:
            nouns.append(("a", part))
    return nouns or [("a", "object")]


def noun_phrases(class_name: str) -> list[tuple[str, str]]:
    """(determiner, noun) pairs for a class name, the first being the canonical one."""
    return _NOUNS.get(_normalise(class_name)) or _fallback_nouns(class_name)


def _with_det(det: str, words: list[str]) -> str:
    if det == "a":
        det = "an" if words[0][:1] in "aeiou" else "a"
    return " ".join([det, *words] if det else words)


def _phrase(template: str, det: str, noun: str, adjectives: list[str]) -> str:
    text = re.sub(r"\[(.*?)\]", lambda m: m.group(1) if adjectives else "", template)
    return text.format(np=_with_det(det, [*adjectives, noun]), np_rev=_with_det(det, [*adjectives[::-1], noun]),
                       bare=" ".join([*adjectives, noun]), noun_np=_with_det(det, [noun]),
                       adjs=" and ".join(adjectives))


class CaptionBuilder:
    """Captions for a labelled dataset from its class names and the attribute terciles of each image, in one
    phrasing set ("train" or "held-out")."""

    def __init__(self, classes: Sequence[str], phrasings: str = "train"):
        if phrasings not in PHRASINGS:
            raise ValueError(f"phrasings {phrasings!r}: not one of {', '.join(PHRASINGS)}")
        self.classes, self.phrasings = list(classes), phrasings
        self.nouns = [noun_phrases(c) for c in self.classes]
        self._memo: dict[tuple[int, int, int], list[str]] = {}

    def captions(self, label: int, brightness: int = 1, size: int = 1) -> list[str]:
        """Every caption of this set for an image of class `label` in the given terciles, without repeats; each
        contains a noun of the class and the image's attribute words."""
        key = (int(label), int(brightness), int(size))
        if key not in self._memo:
            adjectives = attribute_words(brightness, size)
            out = [_phrase(t, det, noun, adjectives) for t in PHRASINGS[self.phrasings]
                   for det, noun in self.nouns[key[0]]]
            self._memo[key] = list(dict.fromkeys(out))
        return self._memo[key]

    def class_prompt(self, label: int) -> str:
        """One canonical caption per class, no attribute words ("a pair of trousers"): for sweeping the classes."""
        det, noun = self.nouns[label][0]
        return _phrase(PHRASINGS[self.phrasings][0], det, noun, [])

    def attribute_prompt(self, label: int, brightness: int | str | None = None,
                         size: int | str | None = None) -> str:
        """The canonical caption asking for attributes, given as words ("dark") or tercile indices (0); None or the
        middle tercile leaves that attribute unnamed."""
        det, noun = self.nouns[label][0]
        return _phrase(PHRASINGS[self.phrasings][0], det, noun, attribute_words(brightness, size))


# ----------------------------------------------------------------------------------------------------------------
# the captions of a split

def _draw(seed: int | Sequence[int], i: int) -> int:
    """A 64-bit number from (seed words, image): the same on every machine and Python version."""
    words = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    raw = b"".join(int(w).to_bytes(16, "little", signed=True) for w in [*words, i])
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8, person=b"tg-caption").digest(), "little")


class CaptionSet:
    """Per image of one split, its candidate captions: built from labels and attribute terciles (`builder`), or
    read from the user's caption file (`texts`, one list per image, empty for an image without a caption)."""

    def __init__(self, *, builder: CaptionBuilder | None = None, labels: np.ndarray | None = None,
                 buckets: dict[str, np.ndarray] | None = None, terciles: Terciles | None = None,
                 texts: list[list[str]] | None = None, source: dict | None = None):
        if (builder is None) == (texts is None):
            raise ValueError("CaptionSet: give either a builder (with labels, buckets, terciles) or texts")
        self.builder, self.labels, self.buckets, self.terciles = builder, labels, buckets, terciles
        self.texts, self.source = texts, source or {}

    @property
    def kind(self) -> str:
        return "built" if self.builder is not None else "file"

    def __len__(self) -> int:
        return len(self.labels) if self.builder is not None else len(self.texts)

    def candidates(self, i: int) -> list[str]:
        if self.builder is None:
            return self.texts[i]
        return self.builder.captions(self.labels[i], self.buckets["brightness"][i], self.buckets["size"][i])

    def pick(self, i: int, seed: int | Sequence[int]) -> str:
        """One of image i's captions, a pure function of (seed, i); pass e.g. (run seed, step, micro-batch) so
        each step draws a fresh phrasing. "" for an image without a caption."""
        options = self.candidates(i)
        return options[_draw(seed, i) % len(options)] if options else ""

    def picks(self, indices: Sequence[int], seed: int | Sequence[int]) -> list[str]:
        """pick() for a batch of images; a repeated image may get a different caption at each position."""
        words = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
        return [self.pick(int(i), [*words, j]) for j, i in enumerate(indices)]

    @property
    def captioned(self) -> np.ndarray:
        """Indices of the images with at least one caption (every image of a built set)."""
        if self.builder is not None:
            return np.arange(len(self))
        return np.flatnonzero([bool(self.candidates(i)) for i in range(len(self))])

    def held_out(self) -> CaptionSet:
        """The same images with the held-out phrasings: captions in words no training step used."""
        if self.builder is None:
            raise UserError(f"{self.source.get('file', 'the caption file')}: held-out phrasings exist only for "
                            f"built captions (labelled datasets without a caption file)")
        return CaptionSet(builder=CaptionBuilder(self.builder.classes, "held-out"), labels=self.labels,
                          buckets=self.buckets, terciles=self.terciles)

    def to_json(self) -> dict:
        """What a run stores to reproduce its captions: the tercile cuts and phrasing set (built), or the caption
        file and its digest (read)."""
        if self.builder is not None:
            return {"kind": "built", "phrasings": self.builder.phrasings, "version": PHRASINGS_VERSION,
                    "classes": self.builder.classes, "terciles": self.terciles.to_json()}
        return {"kind": "file", **self.source}

    @classmethod
    def from_json(cls, doc: dict, images: np.ndarray, labels: np.ndarray, where: str = "captions") -> CaptionSet:
        """Rebuild a built caption set for a split's images from `to_json()`. (A read set is rebuilt by
        `load_captions(data, stored=doc)`, which re-reads the folder.)"""
        if not isinstance(doc, dict) or doc.get("kind") != "built":
            kind = doc.get("kind") if isinstance(doc, dict) else doc
            raise UserError(f"{where}: not a built caption record (kind {kind!r}); the run folder is damaged")
        if doc.get("version") != PHRASINGS_VERSION:
            raise UserError(f"{where}: captions of phrasing version {doc.get('version')}, this tetragen builds "
                            f"version {PHRASINGS_VERSION}; use the tetragen version that trained the run")
        if doc.get("phrasings") not in PHRASINGS or not isinstance(doc.get("classes"), list):
            raise UserError(f"{where}: bad caption record (phrasings {doc.get('phrasings')!r}); the run folder is "
                            f"damaged")
        terciles = Terciles.from_json(doc.get("terciles") or {}, where)
        return built_captions(images, labels, doc["classes"], terciles, doc["phrasings"])


def built_captions(images: np.ndarray, labels: np.ndarray, classes: Sequence[str], terciles: Terciles,
                   phrasings: str = "train") -> CaptionSet:
    """Built captions for one split, bucketed by `terciles` (fitted on the training split)."""
    labels = np.asarray(labels)
    return CaptionSet(builder=CaptionBuilder(classes, phrasings), labels=labels,
                      buckets=terciles.buckets(images, labels), terciles=terciles)


# ----------------------------------------------------------------------------------------------------------------
# the user's captions for an image folder

def caption_file(root: Path) -> Path | None:
    """The folder's captions.jsonl or captions.csv; None when it has neither."""
    found = [Path(root) / name for name in CAPTION_FILES if (Path(root) / name).is_file()]
    if len(found) > 1:
        raise UserError(f"{root}: both {' and '.join(CAPTION_FILES)}; keep one of them")
    return found[0] if found else None


_BAD_JSON, _NOT_OBJECT = object(), object()  # markers of lines that are no JSON object


def _entries(path: Path) -> list[tuple[int, object, object]]:
    """(line number, file, text) of each non-blank line or row, as found: the caller judges them, so JSON and
    CSV lines are judged alike. A line that is bad JSON, or JSON but no object, has a marker as its file."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}); "
                        f"save it as UTF-8") from None
    out = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(raw.split("\n"), 1):  # not splitlines: JSON strings may hold U+2028
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                out.append((n, _BAD_JSON, None))
                continue
            out.append((n, doc.get("file") if isinstance(doc, dict) else _NOT_OBJECT,
                        doc.get("text") if isinstance(doc, dict) else None))
        return out
    reader = csv.reader(io.StringIO(raw))
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    if "file" not in names or "text" not in names:
        found = ",".join(header or []) or "nothing"
        raise UserError(f"{path}: the first line must be the header file,text (found {found})")
    at_file, at_text, start = names.index("file"), names.index("text"), reader.line_num + 1
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                out.append((start, row[at_file] if at_file < len(row) else None,
                            row[at_text] if at_text < len(row) else None))
            start = reader.line_num + 1
    except csv.Error as e:  # e.g. an unclosed quote swallowing the rest of the file
        raise UserError(f"{path}: line {start}: {e}; check the quoting of that row") from None
    return out


def read_captions(path: Path, images: set[str], undecodable: set[str] = frozenset()) -> dict[str, list[str]]:
    """Captions per file (relative POSIX path: images, or a music folder's scores) from a captions.jsonl/.csv. Bad
    lines (bad JSON, a missing, empty or non-string field, a file that is not one of `images`) are skipped, counted
    and the first few listed in one warning; a file without a usable line is a user error naming its problems."""
    path = Path(path)
    entries = _entries(path)
    captions: dict[str, list[str]] = {}
    problems = []
    for line, file, text in entries:
        problem = None
        if file is _BAD_JSON:
            problem = "bad JSON"
        elif file is _NOT_OBJECT:
            problem = "not a JSON object"
        else:
            for field, value in (("file", file), ("text", text)):
                if value is None:
                    problem = f"no '{field}'"
                elif not isinstance(value, str):
                    problem = f"'{field}' is not a string"
                elif not value.strip():
                    problem = f"'{field}' is empty"
                if problem:
                    break
        if problem is None:
            rel = posixpath.normpath(file.strip().replace("\\", "/"))
            if rel in images:
                captions.setdefault(rel, []).append(" ".join(text.split()))  # one line for the tokenizer
                continue
            problem = f"file {file!r} could not be decoded" if rel in undecodable else f"no file {file!r}"
        problems.append(f"line {line}: {problem}")
    listed = "; ".join(problems[:SHOWN_PROBLEMS]) + (" ..." if len(problems) > SHOWN_PROBLEMS else "")
    if not captions:
        why = f" ({len(problems)} bad: {listed})" if problems else ""
        raise UserError(f"{path}: no usable caption line{why}; write one "
                        + ('{"file": "relative/path", "text": "..."} per line' if path.suffix == ".jsonl"
                           else "file,text row per caption after the header"))
    if problems:
        print(f"tetragen: {path}: skipped {len(problems)} of {len(entries)} caption lines: {listed}", file=sys.stderr)
    return captions


def folder_files(root: Path, train, test) -> tuple[list[str], list[str]]:
    """The relative POSIX paths of the images of an `image_folder` split pair, in their loaded order.

    Re-walks the folder the way `images.image_folder` does (sorted files with an image suffix, less the
    undecodable ones it listed as skipped, class = first path part) and recovers its split from the test split's
    per-class counts (the test images of a class are its last ones); the labels are then checked against the loaded
    ones, so a folder that changed since loading is an error rather than shifted captions."""
    from .images import IMAGE_SUFFIXES  # lazily: images.py imports torch, this module does not need it
    root = Path(root)
    skipped = {Path(s.rsplit(" (", 1)[0]).resolve() for s in train.skipped}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if skipped:
        files = [p for p in files if p.resolve() not in skipped]
    rel = [p.relative_to(root) for p in files]
    index = {c: i for i, c in enumerate(train.classes)}
    labels = np.array([index.get(r.parts[0] if len(r.parts) > 1 else root.name, -1) for r in rel], dtype=np.int64)
    test_mask = np.zeros(len(rel), dtype=bool)
    for c, k in enumerate(np.bincount(np.asarray(test.labels, np.int64), minlength=len(train.classes))):
        if k:
            test_mask[np.flatnonzero(labels == c)[-k:]] = True
    if (len(rel) != len(train.labels) + len(test.labels) or not np.array_equal(labels[~test_mask], train.labels)
            or not np.array_equal(labels[test_mask], test.labels)):
        raise UserError(f"{root}: the image files changed while the folder was being read; run again")
    names = [r.as_posix() for r in rel]
    return [f for f, t in zip(names, test_mask) if not t], [f for f, t in zip(names, test_mask) if t]


def folder_captions(root: Path, train, test) -> tuple[CaptionSet, CaptionSet]:
    """The user's captions for the train and test splits of an image folder (loaded by `image_folder`). An image
    without a caption keeps its place with an empty caption (it trains the unconditional case; `captioned` lists
    the others), and the warning says how many there are."""
    root = Path(root)
    path = caption_file(root)
    if path is None:
        raise UserError(f"{root}: no {' or '.join(CAPTION_FILES)}; write one line per image next to the images")
    train_files, test_files = folder_files(root, train, test)
    undecodable = {Path(s.rsplit(" (", 1)[0]).relative_to(root).as_posix() for s in train.skipped
                   if Path(s.rsplit(" (", 1)[0]).is_relative_to(root)}
    captions = read_captions(path, set(train_files) | set(test_files), undecodable)
    missing = sum(f not in captions for f in train_files + test_files)
    if missing:
        print(f"tetragen: {missing} of {len(train_files) + len(test_files)} images in {root} have no caption in "
              f"{path.name}; they train with an empty caption", file=sys.stderr)
    source = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return (CaptionSet(texts=[captions.get(f, []) for f in train_files], source=source),
            CaptionSet(texts=[captions.get(f, []) for f in test_files], source=source))


# ----------------------------------------------------------------------------------------------------------------
# what a text-to-image family calls

def load_captions(data, stored: dict | None = None, where: str = "captions") -> tuple[CaptionSet, CaptionSet]:
    """Train and test captions for an `ImageData`: the folder's own caption file when it has one, else built
    captions with terciles fitted on the training split. `stored` (a run's `to_json()`) reproduces a run: the same
    kind, its tercile cuts and phrasings, or a check that the caption file is the one the run read."""
    root = Path(data.name)
    has_file = root.is_dir() and caption_file(root) is not None
    kind = stored.get("kind") if isinstance(stored, dict) else ("file" if has_file else "built")
    if kind == "file":
        if not has_file:
            name = stored.get("file", " or ".join(CAPTION_FILES))
            raise UserError(f"{root}: the run was trained on the captions in {name}, which is not there; put it back")
        train, test = folder_captions(root, data.train, data.test)
        if stored is not None and stored.get("sha256") not in (None, train.source["sha256"]):
            print(f"tetragen: {root / train.source['file']} changed since the run started; its new captions are "
                  f"used", file=sys.stderr)
        return train, test
    if stored is not None:
        return (CaptionSet.from_json(stored, data.train.images, data.train.labels, where),
                CaptionSet.from_json(stored, data.test.images, data.test.labels, where))
    terciles = Terciles.fit(data.train.images, data.train.labels, len(data.classes))
    return (built_captions(data.train.images, data.train.labels, data.classes, terciles),
            built_captions(data.test.images, data.test.labels, data.classes, terciles))


# ----------------------------------------------------------------------------------------------------------------
# prompts as a model reads them

def text_tokenizer_for(captions: dict) -> CharTokenizer:
    """A character tokenizer over every character the captions ({"train": CaptionSet, "test": CaptionSet}) can
    contain (all phrasings, held-out ones too), with [PAD] as its last id."""
    chars: set[str] = set()
    for split in ("train", "test"):
        sets = [captions[split]]
        if captions[split].kind == "built":
            sets.append(captions[split].held_out())
        for cs in sets:
            seen = set()
            for i in range(len(cs)):
                key = (cs.labels[i], cs.buckets["brightness"][i], cs.buckets["size"][i]) if cs.kind == "built" else i
                if key in seen:
                    continue
                seen.add(key)
                for text in cs.candidates(i):
                    chars.update(text)
    return CharTokenizer.from_charset(chars).with_specials([PAD])


def class_prompts(train: CaptionSet, data) -> list[str]:
    """One prompt per class of `data` (an ImageData): the built class prompt, or the first caption of the class's
    first captioned training image (its name when none has one)."""
    if train.kind == "built":
        return [train.builder.class_prompt(k) for k in range(len(data.classes))]
    prompts = []
    for k in range(len(data.classes)):
        first = next((i for i in train.captioned if data.train.labels[i] == k), None)
        prompts.append(train.candidates(first)[0] if first is not None else data.classes[k])
    return prompts


class PromptCodes:
    """Captions and prompts as the rows of exactly `block` ids a model's text input reads: the run's character
    tokenizer, cut to `block`, then [PAD] (the tokenizer's last id), which is also the whole of the empty prompt that
    classifier-free guidance contrasts with."""

    def __init__(self, tokenizer, block: int):
        self.tokenizer, self.block = tokenizer, block
        self._rows: dict[str, list[int]] = {}

    @property
    def pad_id(self) -> int:
        return self.tokenizer.vocab_size - 1

    def caption(self, text: str) -> list[int]:
        """A training caption -> its row (cut silently: captions are the run's own)."""
        if text not in self._rows:
            ids = self.tokenizer.encode(text)[:self.block]
            self._rows[text] = ids + [self.pad_id] * (self.block - len(ids))
        return self._rows[text]

    def prompt(self, prompt: str, example: str = "") -> list[int]:
        """A user's prompt -> its row; refuses an empty prompt and one the tokenizer knows not a single character
        of (naming `example`, a prompt the model knows), and warns when it is cut."""
        import warnings
        if not isinstance(prompt, str) or not prompt.strip():
            raise UserError("--prompt: the prompt is empty; describe the image, e.g. --prompt \"a dark sneaker\"")
        letters = prompt.replace(" ", "")
        if letters and self.tokenizer.count_unknown(letters) == len(set(letters)):
            like = f" like {example!r}" if example else ""
            raise UserError(f"--prompt {prompt!r}: none of its characters occur in the captions this model was "
                            f"trained on; use words{like}")
        ids = self.tokenizer.encode(prompt)
        if len(ids) > self.block:
            warnings.warn(f"the prompt is {len(ids)} tokens, longer than the model's text context of {self.block}; "
                          f"only its first {self.block} were read", stacklevel=3)
            ids = ids[:self.block]
        return ids + [self.pad_id] * (self.block - len(ids))
