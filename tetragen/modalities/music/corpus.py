"""Named sets read from the scores that ship inside music21's corpus (no download), each read once into
quarter-note frames and sixteenth-grid notes and cached as JSON:

| name | style | pieces |
|---|---|---|
| `bach-chorales` | bach chorale | Bach's four-part chorales, all of music21's list of them |
| `german-folk-songs` | german folk song | tunes of the Essen Folksong Collection's German sets, 350 of them |
| `irish-tunes` | irish tune | melodies of O'Neill's Music of Ireland (1850), 350 spread over its numbering |
| `palestrina` | palestrina | Palestrina's mass movements, 350 spread over music21's list of them |
| `music21-styles` | the four above | the four sets together: one run prompted by style |

Where a set keeps fewer pieces than the corpus has, they are taken evenly through the corpus's own order, so every
part of a collection is in it (O'Neill orders his tunes by kind: airs, jigs, reels, ...). Every piece is parsed
with its repeats expanded; a piece music21 cannot read or expand is skipped, counted and listed (in the cache's
`skipped`, and in one line when the set is read). Each set is split by piece with a fixed seed (`SPLIT_SEED`): 80%
train, 10% validation, 10% test; a piece's prompt is its style and its key, estimated from its notes.
"""
from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ...data.sources import NamedDataset, cache_dir
from ...errors import UserError
from ...files import write_text
from .midi import score_piece
from .pieces import Collection, Piece, collection_from_json, collection_to_json, prompt_of

SPLIT_SEED = 0
FRACTIONS = (0.8, 0.1, 0.1)
CACHE_VERSION = 4            # of what a cached set holds (3: prompts name the metre; 4: notes carry velocity, pickups)
MUSIC21 = "music21's corpus (installed with tetragen), read on this machine"

Source = tuple[str, Callable[[], object]]       # a piece's name, and how to parse it into a music21 score


def _music21():
    try:
        import music21
    except ImportError:
        raise UserError("the music21 package is missing (pip install music21); tetragen reads these sets from its "
                        "corpus") from None
    return music21


def _corpus_files(folder: str, pattern: str = "") -> list[Path]:
    from music21 import corpus
    return sorted(Path(p) for p in corpus.getCorePaths() if Path(p).parent.name == folder
                  and re.match(pattern or ".", Path(p).name))


def chorale_names() -> list[str]:
    """The corpus names of Bach's chorales in music21's own list of them (Riemenschneider's numbering), each once."""
    _music21()
    from music21 import corpus
    return list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))


def _bach() -> list[Source]:
    from music21 import corpus
    return [(name.split("/")[-1], lambda name=name: corpus.parse(name)) for name in chorale_names()]


def _abc_tunes(folder: str, pattern: str = "", *, numbered_across_files: bool = False) -> list[Source]:
    """Every tune of the ABC files, each parsed alone (the lines of its file before the first tune go with it).
    `numbered_across_files`: the tune numbers ('X:') run through the whole collection and two files may hold
    the same numbers (two editions of them): each number is kept once, from its first file."""
    from music21 import converter
    seen, out = set(), []
    for path in _corpus_files(folder, pattern):
        head, *tunes = re.split(r"(?m)^(?=X:)", path.read_text(encoding="utf-8", errors="replace"))
        for k, tune in enumerate(tunes):
            number = re.match(r"X:\s*(\d+)", tune)
            number = number.group(1) if number else str(k + 1)
            key = number if numbered_across_files else f"{path.stem}#{number}"
            if key in seen:
                continue
            seen.add(key)
            out.append((f"{path.stem}#{number}", lambda src=head + tune: converter.parse(src, format="abc")))
    return out


def _humdrum(folder: str) -> list[Source]:
    from music21 import converter
    return [(p.stem, lambda p=p: converter.parse(str(p))) for p in _corpus_files(folder, r".*\.krn$")]


@dataclass(frozen=True)
class CorpusSet:
    """A named set of one style read from music21's corpus."""
    name: str
    style: str
    description: str
    sources: Callable[[], list[Source]]   # every piece the corpus has of it, in the corpus's order
    most: int = 0                         # pieces kept at most, evenly through that order (0: all)
    cache_stem: str = ""                  # the cache file's name before the music21 version

    def cache_file(self) -> Path:
        music21 = _music21()
        return (cache_dir() / self.name /
                f"{self.cache_stem or self.name}-v{CACHE_VERSION}-music21-{music21.__version__}"
                f"-split{SPLIT_SEED}.json")

    def chosen(self) -> list[Source]:
        every = self.sources()
        if self.most and len(every) > self.most:
            keep = np.unique(np.linspace(0, len(every) - 1, self.most).round().astype(int))
            every = [every[i] for i in keep]
        return every


def build(cs: CorpusSet, sources: list[Source]) -> Collection:
    """Parse the pieces into frames and notes, split by piece."""
    pieces, skipped = [], []
    for name, parse in sources:
        try:
            frames, sixteenths, metre, notices = score_piece(parse(), name)
        except UserError as e:
            skipped.append(str(e))
            continue
        except Exception as e:  # music21's own failures on a malformed file
            skipped.append(f"{name}: {type(e).__name__}: {' '.join(str(e).split())[:80]}")
            continue
        if any("could not be expanded" in n for n in notices):
            skipped.append(f"{name}: its repeats could not be expanded")
            continue
        pieces.append(Piece(frames, prompt_of(cs.style, frames, metre), name, [list(n) for n in sixteenths]))
    if len(pieces) < 3:
        raise UserError(f"{cs.name}: only {len(pieces)} pieces could be read from music21's corpus; "
                        f"skipped: {'; '.join(skipped[:3])}")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(pieces))
    n_train = max(1, int(round(len(pieces) * FRACTIONS[0])))
    n_valid = max(1, int(round(len(pieces) * FRACTIONS[1])))
    parts = np.split(order, [n_train, n_train + n_valid])
    splits = {s: [pieces[i] for i in sorted(idx)] for s, idx in zip(("train", "valid", "test"), parts)}
    return Collection(cs.name, splits, [cs.style], skipped)


def read_set(cs: CorpusSet, limit: int = 0) -> Collection:
    """The set, from its cache or parsed now (a minute or a few; `limit`: only its first pieces, uncached)."""
    if limit:
        return build(cs, cs.chosen()[:limit])
    cached = cs.cache_file()
    if cached.is_file():
        try:
            return collection_from_json(json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            pass  # rebuilt below
    sources = cs.chosen()
    print(f"tetragen: {cs.name}: reading {len(sources)} pieces from music21's corpus once (a minute or a few) ...",
          file=sys.stderr)
    c = build(cs, sources)
    if c.skipped:
        print(f"tetragen: {cs.name}: {len(c.skipped)} pieces skipped: " + "; ".join(c.skipped), file=sys.stderr)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text(cached, json.dumps(collection_to_json(c)))
    return c


BACH = CorpusSet("bach-chorales", "bach chorale", "Bach's four-part chorales at quarter-note frames, split by piece "
                 "80/10/10", _bach, cache_stem="chorales")
GERMAN = CorpusSet("german-folk-songs", "german folk song", "350 German folk melodies of the Essen Folksong "
                   "Collection, split by piece 80/10/10",
                   lambda: _abc_tunes("essenFolksong", r"(altdeu|ballad|boehme|dva|erk|fink|kinder|zuccal)"), 350)
IRISH = CorpusSet("irish-tunes", "irish tune", "350 melodies of O'Neill's Music of Ireland (1850), airs and dance "
                  "tunes, split by piece 80/10/10", lambda: _abc_tunes("oneills1850", numbered_across_files=True), 350)
PALESTRINA = CorpusSet("palestrina", "palestrina", "350 of Palestrina's mass movements, split by piece 80/10/10",
                       lambda: _humdrum("palestrina"), 350)
SETS = (BACH, GERMAN, IRISH, PALESTRINA)
STYLES = "music21-styles"


def styles_mix(limit: int = 0) -> Collection:
    """The four sets together, each split as it is alone; a piece's prompt names its style."""
    parts = [read_set(cs, limit) for cs in SETS]
    return Collection(STYLES, {s: [p for c in parts for p in c.splits[s]] for s in ("train", "valid", "test")},
                      [cs.style for cs in SETS], [line for c in parts for line in c.skipped])


def _dataset(name: str, description: str, files: Callable[[], list[Path]], read: Callable[[], Collection]):
    def locate() -> list[Path]:
        paths = files()
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise UserError(f"{name}: not read yet; `tetragen data fetch {name}` reads it from music21's corpus")
        return paths

    def fetch() -> tuple[list[Path], str]:
        c = read()
        return files(), (f"read {sum(len(v) for v in c.splits.values())} pieces from music21's corpus"
                         + (f", {len(c.skipped)} skipped" if c.skipped else ""))
    return NamedDataset(name, description, MUSIC21, locate, fetch)


def named() -> dict[str, tuple[NamedDataset, Callable[[], Collection]]]:
    """name -> (what `tetragen data` knows of it, how a run reads it)."""
    out = {cs.name: (_dataset(cs.name, cs.description, lambda cs=cs: [cs.cache_file()],
                              lambda cs=cs: read_set(cs)), lambda cs=cs: read_set(cs)) for cs in SETS}
    out[STYLES] = (_dataset(STYLES, "the four sets above together, each piece prompted by its style (bach chorale, "
                            "german folk song, irish tune, palestrina)", lambda: [cs.cache_file() for cs in SETS],
                            styles_mix), styles_mix)
    return out
