"""`bach-chorales`: the Bach chorales that ship inside music21's corpus (no download), read once into quarter-note
frames and cached as JSON.

Every chorale of music21's own list of them is parsed, its repeats expanded, and read into frames and into notes
on a grid of sixteenths (midi.py), for the frame and the event tokenizations. A chorale music21 cannot read or
expand is skipped, counted and listed (in the cache's `skipped`, and in one line when the set is built). The
split is by piece, fixed by `SPLIT_SEED`: 80% train, 10% validation, 10% test. Each piece's prompt is "bach
chorale in KEY", its key estimated from its notes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ...data.sources import NamedDataset, cache_dir
from ...errors import UserError
from ...files import write_text
from .pieces import Collection, Piece, collection_from_json, collection_to_json, prompt_of
from .midi import notes_to_frames, stream_notes, to_sixteenths

NAME = "bach-chorales"
STYLE = "bach chorale"
SPLIT_SEED = 0
FRACTIONS = (0.8, 0.1, 0.1)


def _cache_file() -> Path:
    import music21
    return cache_dir() / NAME / f"chorales-v2-music21-{music21.__version__}-split{SPLIT_SEED}.json"


def chorale_names() -> list[str]:
    """The corpus names of Bach's chorales in music21's own list of them (Riemenschneider's numbering), each once."""
    try:
        from music21 import corpus
    except ImportError:
        raise UserError(f"{NAME}: needs the music21 package (pip install music21)") from None
    return list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))


def build(names: list[str]) -> Collection:
    """Parse the chorales into frames, split by piece."""
    from music21 import corpus
    pieces, skipped = [], []
    for name in names:
        short = name.split("/")[-1]
        try:
            notes, end, notices = stream_notes(corpus.parse(name), short)
            frames, _ = notes_to_frames(notes, end, short)
            sixteenths, _ = to_sixteenths(notes, short)
        except UserError as e:
            skipped.append(str(e))
            continue
        except Exception as e:  # music21's own failures on a malformed file
            skipped.append(f"{short}: {type(e).__name__}: {' '.join(str(e).split())[:80]}")
            continue
        if any("could not be expanded" in n for n in notices):
            skipped.append(f"{short}: its repeats could not be expanded")
            continue
        pieces.append(Piece(frames, prompt_of(STYLE, frames), short, [list(n) for n in sixteenths]))
    if len(pieces) < 3:
        raise UserError(f"{NAME}: only {len(pieces)} chorales could be read from music21's corpus; "
                        f"skipped: {'; '.join(skipped[:3])}")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(pieces))
    n_train = max(1, int(round(len(pieces) * FRACTIONS[0])))
    n_valid = max(1, int(round(len(pieces) * FRACTIONS[1])))
    parts = np.split(order, [n_train, n_train + n_valid])
    splits = {s: [pieces[i] for i in sorted(idx)] for s, idx in zip(("train", "valid", "test"), parts)}
    return Collection(NAME, splits, [STYLE], skipped)


def bach_chorales(limit: int = 0) -> Collection:
    """The set, from its cache or parsed now (about a minute; `limit`: only the first chorales, uncached)."""
    if limit:
        return build(chorale_names()[:limit])
    cached = _cache_file()
    if cached.is_file():
        try:
            return collection_from_json(json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # rebuilt below
    names = chorale_names()
    print(f"tetragen: {NAME}: reading {len(names)} chorales from music21's corpus once (a minute or two) ...",
          file=sys.stderr)
    c = build(names)
    if c.skipped:
        print(f"tetragen: {NAME}: {len(c.skipped)} chorales skipped: " + "; ".join(c.skipped), file=sys.stderr)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text(cached, json.dumps(collection_to_json(c)))
    return c


def _locate() -> list[Path]:
    try:
        cached = _cache_file()
    except ImportError:
        raise UserError(f"{NAME}: needs the music21 package (pip install music21)") from None
    if not cached.is_file():
        raise UserError(f"{NAME}: not read yet; `tetragen data fetch {NAME}` reads it from music21's corpus")
    return [cached]


def _fetch() -> tuple[list[Path], str]:
    c = bach_chorales()
    return [_cache_file()], (f"read {sum(len(v) for v in c.splits.values())} chorales from music21's corpus"
                             + (f", {len(c.skipped)} skipped" if c.skipped else ""))


BACH = NamedDataset(NAME, "Bach's four-part chorales at quarter-note frames, split by piece 80/10/10",
                    "music21's corpus (installed with tetragen), read on this machine", _locate, _fetch)
