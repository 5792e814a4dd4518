"""Music as tokens: the frame tokenization, whose likelihood of a piece is the likelihood of its piano roll.

A piece is a prompt (its style and key, "bach chorale in g minor") and then, for each quarter-note frame, the MIDI
pitches sounding in it in ascending order (one token each, the 88 piano keys 21..108) and an end-of-frame token:

    <bos> bach chorale in g minor <music> 43 55 62 70 | 43 58 62 67 | ... <end>

Pitches within a frame are strictly ascending, so a frame has exactly one spelling and the probability a causal
model gives a frame's tokens (its pitches, then `|`) is the probability of that frame of the piano roll given the
frames before it. Summed over a piece's frames and divided by their number it is the negative log-likelihood per
frame of Boulanger-Lewandowski et al. (ICML 2012), https://arxiv.org/abs/1206.6392, the table JSB Chorales results
are published in. The prompt's words are scored with the frames (its key is estimated from the piece's notes, so
reading it for free would leak them), which makes the figure an upper bound of the piano roll's NLL; `<end>` (the
piece's length, which the piano roll is given) is not scored.

The event tokenization (`data.tokenizer=events`, REMI-like: Huang & Yang 2020, https://arxiv.org/abs/2002.00212)
writes notes with real durations on a grid of 16th notes, in bars of the metre the prompt names (4/4 where it names
none):

    <bos> irish tune in d major 6/8 <music> <bar> @0 50 d4 62 d2 @2 v96 64 d2 <bar> @0 ... <end>

`<bar>` opens each bar, `@k` a position (k sixteenths into the bar), then each note starting there, ascending, as
its pitch and its duration `dN` (N sixteenths, 1 to 32; longer notes are cut to 32). A velocity token `vN` comes
before a note whose velocity (quantised to 16, 32, ..., 112, 127) differs from the note before it; a piece starts at
v80, so a score with no dynamics spends no tokens on them. A bar is as long as the prompt's metre makes it ("6/8": 12
sixteenths) where that is a whole number of sixteenths up to 32, else 16.

Prompt words come from the training pieces' styles and every key name; a word the vocabulary lacks still tokenises,
as `<unk>`. The tokenizer is saved as the run's tokenizer.json (`{"tetragen_tokenizer": "music-frames", ...}`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ...errors import UserError

LOW, HIGH = 21, 108                        # the piano's 88 keys, A0..C8
UNK, BOS, MUSIC, FRAME, END = "<unk>", "<bos>", "<music>", "|", "<end>"
CONTROL = (UNK, BOS, MUSIC, FRAME, END)
KIND = "music-frames"
EVENTS_KIND = "music-events"
BAR = "<bar>"
STEPS = 16                                 # sixteenths in a bar of 4/4, the bar where no metre is named
POSITIONS = 32                             # positions in a bar at most (a bar of 4/2)
MAX_DURATION = 32                          # sixteenths
VELOCITIES = tuple(min(16 * k, 127) for k in range(1, 9))   # a note's velocity, quantised
VELOCITY = 80                              # a piece's velocity until a velocity token says otherwise
# the event layouts a tokenizer.json names: 1, bars of 4/4 and no velocities (earlier runs); 2, bars by metre and
# velocity tokens
EVENTS_LAYOUT = 2
METRE = re.compile(r"^(\d{1,2})/(1|2|4|8|16)$")
# metres an event vocabulary always has as prompt words, so that a prompt may ask for their bars
METRE_WORDS = ("2/2", "3/2", "4/2", "2/4", "3/4", "4/4", "5/4", "6/4", "3/8", "6/8", "9/8", "12/8")


def event_tokens(layout: int = EVENTS_LAYOUT) -> tuple[str, ...]:
    positions = POSITIONS if layout >= 2 else STEPS
    return (BAR, *(f"@{k}" for k in range(positions)), *(f"d{k}" for k in range(1, MAX_DURATION + 1)),
            *((f"v{v}" for v in VELOCITIES) if layout >= 2 else ()))


EVENT_TOKENS = event_tokens()


def quantise_velocity(v) -> int:
    """A MIDI velocity (1..127) -> the nearest of VELOCITIES."""
    return VELOCITIES[min(max((int(v) + 8) // 16, 1), len(VELOCITIES)) - 1]


def metre_word(words: Iterable[str]) -> str:
    """The first metre among a prompt's words ("6/8"), or ""."""
    return next((w for w in words if METRE.match(w)), "")


def bar_steps(metre: str) -> int:
    """Sixteenths in a bar of a metre ("3/4" -> 12, "6/8" -> 12, "4/2" -> 32): a whole number up to POSITIONS,
    else (no metre, or a bar longer or shorter than the grid holds) a bar of 4/4."""
    m = METRE.match(metre or "")
    if not m:
        return STEPS
    n, d = int(m.group(1)), int(m.group(2))
    return n * 16 // d if n * 16 % d == 0 and 1 <= n * 16 // d <= POSITIONS else STEPS

# key names as prompt words (lower case; sharps and flats as music21 and most people write them)
PITCH_CLASSES = ("c", "c#", "d", "eb", "e", "f", "f#", "g", "ab", "a", "bb", "b")
ALIASES = {"db": "c#", "d#": "eb", "gb": "f#", "g#": "ab", "a#": "bb", "cb": "b", "fb": "e", "e#": "f", "b#": "c",
           "c-sharp": "c#", "d-flat": "c#", "e-flat": "eb", "f-sharp": "f#", "a-flat": "ab", "b-flat": "bb",
           "g-flat": "f#", "d-sharp": "eb", "g-sharp": "ab", "a-sharp": "bb", "major,": "major", "minor,": "minor"}
KEY_WORDS = (*PITCH_CLASSES, "major", "minor", "in")


def words_of(text: str) -> list[str]:
    """A prompt as the words the tokenizer reads: lower case, split on spaces, key spellings made one."""
    out = []
    for w in re.split(r"[\s,;]+", text.strip().lower()):
        if w:
            out.append(ALIASES.get(w, w))
    return out


class MusicTokenizer:
    """A music vocabulary: control tokens, the 88 pitches, (for events) bars, positions, durations and velocities,
    prompt words, then special tokens a family adds (a masked LM's [MASK]). `layout`: of the event tokens
    (EVENTS_LAYOUT; 1 reads runs made before bars followed the metre)."""
    spaces_lead_tokens = False

    def __init__(self, words: Iterable[str] = (), specials: Iterable[str] = (), tokenization: str = "frames",
                 layout: int = EVENTS_LAYOUT):
        if tokenization not in ("frames", "events"):
            raise UserError(f"data.tokenizer={tokenization}: music is tokenized as frames or events")
        self.tokenization, self.layout = tokenization, int(layout)
        self.kind = KIND if tokenization == "frames" else EVENTS_KIND
        events = event_tokens(self.layout) if tokenization == "events" else ()
        words = sorted(set(words) | set(KEY_WORDS) | set(METRE_WORDS if events and self.layout >= 2 else ()))
        self.words = [w for w in words if w not in CONTROL and w not in EVENT_TOKENS and not _is_pitch(w)]
        self.specials = list(specials)
        self.tokens = [*CONTROL, *(str(p) for p in range(LOW, HIGH + 1)), *events, *self.words, *self.specials]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.pitch0 = len(CONTROL)                      # the id of pitch LOW
        self.unk, self.bos, self.music, self.frame, self.end = (self.index[t] for t in CONTROL)
        self.positions = (POSITIONS if self.layout >= 2 else STEPS) if events else 0
        self.velocities = len(VELOCITIES) if events and self.layout >= 2 else 0
        if events:
            self.bar = self.index[BAR]
            self.pos0, self.dur0 = self.index["@0"], self.index["d1"]   # ids of position 0, of duration 1
            self.vel0 = self.index[f"v{VELOCITIES[0]}"] if self.velocities else -1

    # ------------------------------------------------------------------------------------------------------------
    # the interface every tokenizer of a run offers (tetragen/data/tokenizer.py)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def special_id(self, token: str) -> int | None:
        return self.index[token] if token in self.specials else None

    def with_specials(self, tokens: Iterable[str]) -> "MusicTokenizer":
        missing = [t for t in tokens if t not in self.specials]
        return self if not missing else MusicTokenizer(self.words, self.specials + missing, self.tokenization,
                                                       self.layout)

    def token_str(self, i: int) -> str:
        return self.tokens[int(i)] if 0 <= int(i) < self.vocab_size else UNK

    def encode(self, text: str) -> list[int]:
        """Token text (as `decode` writes it, or a prompt) -> ids; an unknown word is `<unk>`."""
        out = []
        for w in text.split():
            if w in self.index:
                out.append(self.index[w])
            else:
                out += [self.index.get(v, self.unk) for v in words_of(w)]
        return out

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int64)

    def count_unknown(self, text: str) -> int:
        return sum(1 for i in self.encode(text) if i == self.unk)

    def decode(self, ids) -> str:
        """ids -> token text, one token per space-separated word (special ids left out)."""
        special = set(range(self.vocab_size - len(self.specials), self.vocab_size))
        return " ".join(self.tokens[i] for i in map(int, ids) if 0 <= i < self.vocab_size and i not in special)

    def chars_per_token(self, ids) -> np.ndarray:
        """Every token counts as one unit (tokens stand for notes and frame ends, not characters); specials none."""
        ids = np.asarray(ids)
        return np.where(ids >= self.vocab_size - len(self.specials), 0, 1)

    def num_chars(self, ids) -> int:
        return int(self.chars_per_token(ids).sum())

    def to_dict(self) -> dict:
        doc = {"tetragen_tokenizer": self.kind, "words": self.words, "range": [LOW, HIGH]}
        if self.tokenization == "events":
            doc["layout"] = self.layout
        if self.specials:
            doc["special"] = self.specials
        return doc

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    # ------------------------------------------------------------------------------------------------------------
    # pieces

    def prompt_ids(self, prompt: str) -> list[int]:
        """`<bos>`, the prompt's words, `<music>`: what a piece starts with."""
        return [self.bos, *(self.index.get(w, self.unk) for w in words_of(prompt)), self.music]

    def frame_ids(self, frames: Sequence[Sequence[int]]) -> list[int]:
        out = []
        for frame in frames:
            out += [self.pitch0 + p - LOW for p in sorted(set(frame))]
            out.append(self.frame)
        return out

    def encode_piece(self, frames: Sequence[Sequence[int]], prompt: str = "") -> list[int]:
        """A whole piece: prompt, frames, `<end>`. Pitches must be piano keys (the readers drop the others)."""
        return [*self.prompt_ids(prompt), *self.frame_ids(frames), self.end]

    def is_pitch(self, i: int) -> bool:
        return self.pitch0 <= i < self.pitch0 + HIGH - LOW + 1

    def is_position(self, i: int) -> bool:
        return self.tokenization == "events" and self.pos0 <= i < self.pos0 + self.positions

    def is_duration(self, i: int) -> bool:
        return self.tokenization == "events" and self.dur0 <= i < self.dur0 + MAX_DURATION

    def is_velocity(self, i: int) -> bool:
        return self.velocities > 0 and self.vel0 <= i < self.vel0 + self.velocities

    def bar_of(self, words: Iterable[str]) -> int:
        """Sixteenths in a bar of a piece whose prompt has these words (its metre's; 4/4 in layout 1)."""
        return bar_steps(metre_word(words)) if self.layout >= 2 else STEPS

    def bar_of_ids(self, ids) -> int:
        """`bar_of` a piece's prompt given as token ids (those before `<music>`; all of them where it has none)."""
        ids = [int(i) for i in ids]
        head = ids[:ids.index(self.music)] if self.music in ids else ids
        return self.bar_of(self.tokens[i] for i in head if 0 <= i < self.vocab_size)

    def _prompt_and_music(self, ids) -> tuple[str, list[int]]:
        """ids of a piece -> (its prompt's words, the ids after `<music>`; all of them where it has none)."""
        ids = [int(i) for i in ids]
        start = ids.index(self.music) + 1 if self.music in ids else 0
        prompt = " ".join(self.tokens[i] for i in ids[:start] if i not in (self.bos, self.music)
                          and 0 <= i < self.vocab_size)
        return prompt, ids[start:]

    def event_ids(self, notes: Sequence[tuple], bar: int = STEPS) -> list[int]:
        """Notes (pitch, onset, duration in sixteenths[, velocity]) -> the events in bars of `bar` sixteenths: each
        bar, each position with notes, each note's velocity where it changes, pitch and duration (ascending pitch;
        one note per pitch and onset)."""
        by_onset: dict[int, dict[int, tuple[int, int]]] = {}
        for n in notes:
            vel = quantise_velocity(n[3]) if len(n) > 3 else VELOCITY
            by_onset.setdefault(int(n[1]), {})[int(n[0])] = (max(1, min(int(n[2]), MAX_DURATION)), vel)
        out, now = [], VELOCITY
        bars = (max(by_onset) // bar + 1) if by_onset else 0
        for b in range(bars):
            out.append(self.bar)
            for onset in sorted(o for o in by_onset if b * bar <= o < (b + 1) * bar):
                out.append(self.pos0 + onset - b * bar)
                for pitch, (dur, vel) in sorted(by_onset[onset].items()):
                    if vel != now and self.velocities:
                        out.append(self.vel0 + VELOCITIES.index(vel))
                        now = vel
                    out += [self.pitch0 + pitch - LOW, self.dur0 + dur - 1]
        return out

    def encode_events(self, notes, prompt: str = "") -> list[int]:
        return [*self.prompt_ids(prompt), *self.event_ids(notes, self.bar_of(words_of(prompt))), self.end]

    def decode_events(self, ids) -> tuple[str, list[tuple[int, int, int, int]]]:
        """ids of a piece in events -> (its prompt's words, its notes (pitch, onset, duration in sixteenths,
        velocity)). A pitch without its duration, or before any bar and position, is left out."""
        prompt, music = self._prompt_and_music(ids)
        bar = self.bar_of(prompt.split())
        notes, bars, pos, pitch, vel = [], -1, None, None, VELOCITY
        for i in music:
            if i == self.end:
                break
            if i == self.bar:
                bars, pos, pitch = bars + 1, None, None
            elif self.is_position(i) and bars >= 0:
                pos, pitch = bars * bar + i - self.pos0, None
            elif self.is_velocity(i):
                vel = VELOCITIES[i - self.vel0]
            elif self.is_pitch(i) and pos is not None:
                pitch = i - self.pitch0 + LOW
            elif self.is_duration(i) and pitch is not None:
                notes.append((pitch, pos, i - self.dur0 + 1, vel))
                pitch = None
        return prompt, notes

    def decode_piece(self, ids) -> tuple[str, list[list[int]]]:
        """ids of a piece (or its start) -> (its prompt's words, its frames). Reading stops at `<end>`; pitches
        after the last `|` make a last frame; tokens that are no pitch inside the music are skipped."""
        prompt, music = self._prompt_and_music(ids)
        frames, frame = [], []
        for i in music:
            if i == self.end:
                break
            if i == self.frame:
                frames.append(sorted(set(frame)))
                frame = []
            elif self.is_pitch(i):
                frame.append(i - self.pitch0 + LOW)
        if frame:
            frames.append(sorted(set(frame)))
        return prompt, frames


def _is_pitch(w: str) -> bool:
    return w.isdigit() and LOW <= int(w) <= HIGH


def read_tokenizer(path: Path) -> MusicTokenizer:
    """The tokenizer a music run keeps (tokenizer.json)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: missing; the run folder is incomplete (copy tokenizer.json from the run's "
                        f"checkpoints/ folder)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable tokenizer file ({type(e).__name__})") from None
    kinds = {KIND: "frames", EVENTS_KIND: "events"}
    if not isinstance(doc, dict) or doc.get("tetragen_tokenizer") not in kinds:
        raise UserError(f"{path}: not a music tokenizer ({' or '.join(kinds)}); the run folder's files come from "
                        f"different runs")
    if doc.get("range") != [LOW, HIGH] or not isinstance(doc.get("words"), list):
        raise UserError(f"{path}: a music tokenizer of another layout (range {doc.get('range')}); this tetragen "
                        f"reads pitches {LOW}..{HIGH}")
    layout = doc.get("layout", 1)
    if layout not in (1, EVENTS_LAYOUT):
        raise UserError(f"{path}: event layout {layout!r}; this tetragen reads layouts 1 and {EVENTS_LAYOUT} "
                        f"(a newer tetragen made the run)")
    return MusicTokenizer(doc["words"], doc.get("special", []), kinds[doc["tetragen_tokenizer"]], layout)


# ----------------------------------------------------------------------------------------------------------------
# keys: a piece's prompt names its key, estimated from its notes where the source does not say it

# Krumhansl-Kessler key profiles (Krumhansl 1990, "Cognitive Foundations of Musical Pitch"), from the tonic up
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10, 11)     # natural minor with the raised leading note


def pitch_class_histogram(frames: Sequence[Sequence[int]]) -> np.ndarray:
    h = np.zeros(12)
    for frame in frames:
        for p in frame:
            h[p % 12] += 1
    return h


def estimate_key(frames: Sequence[Sequence[int]]) -> tuple[int, str]:
    """(tonic pitch class, "major" | "minor"): the Krumhansl-Schmuckler key finder, the key profile that correlates
    best with the piece's pitch-class counts."""
    h = pitch_class_histogram(frames)
    if not h.any():
        return 0, "major"
    best, key = -2.0, (0, "major")
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = np.corrcoef(h, np.roll(profile, tonic))[0, 1]
            if r > best:
                best, key = r, (tonic, mode)
    return key


def key_name(tonic: int, mode: str) -> str:
    return f"{PITCH_CLASSES[tonic % 12]} {mode}"


def parse_key(text: str) -> tuple[int, str] | None:
    """The key a prompt names ("... in g minor" -> (7, "minor")), or None."""
    words = words_of(text)
    for i, w in enumerate(words[:-1]):
        if w in PITCH_CLASSES and words[i + 1] in ("major", "minor"):
            return PITCH_CLASSES.index(w), words[i + 1]
    return None


def in_key(pitch: int, tonic: int, mode: str) -> bool:
    return (pitch - tonic) % 12 in (MAJOR_SCALE if mode == "major" else MINOR_SCALE)
