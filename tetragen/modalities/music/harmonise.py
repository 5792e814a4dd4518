"""What `tetragen.load` returns for a masked language model trained on music: fill-mask as the family offers it,
and `harmonise`: given a melody (the soprano), the voices under it, filled one note at a time.

    pipe = tetragen.load("runs/bert-chorales")
    score = pipe.harmonise([67, 67, 69, 71, 72, 71, 69, 67], prompt="bach chorale in g major", seed=0)
    score.pieces[0]      # each frame: three notes under its melody note, ascending

Coconet (Huang et al. 2017, https://arxiv.org/abs/1903.07227) fills a score's missing voices from a model of any
subset given the rest. Here the tokens stand in for its piano roll. In the frame tokenization every frame is
written as `voices` [MASK]s under its melody note and `|`; in the event tokenization every melody note, at its
position in its bar, gets `voices` [MASK]s under it, each with the melody note's duration (note against note). The
masked LM fills the most confident [MASK] of all (among the pitches that keep the chord ascending and under the
melody), then reads the score again, until none is left. A voice that has no room left (the notes around it are a
semitone apart) is dropped from its chord. A melody longer than the model's context is harmonised in pieces (of
frames, or of bars), each read after as many finished ones as fit in half the context.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import UserError
from ...pipeline import FillsMasks
from .midi import notes_frames, read_file, read_midi, read_notes
from .pipeline import Score, adapt_causal
from .tokens import HIGH, LOW, VELOCITY, MusicTokenizer, words_of

MASK, CLS = "[MASK]", "[CLS]"
MAX_MELODY = 1024            # frames of a melody at most


class MusicMaskedLM:
    """A masked LM's run on music: its own capabilities (fill_mask) and `harmonise`."""

    def __init__(self, inner):
        self.inner, self.tokenizer = inner, inner.tokenizer
        self.config, self.model, self.assets = inner.config, inner.model, inner.assets
        self.capabilities = frozenset(inner.capabilities)

    def evaluate(self, data, **kwargs):
        """The family's own scores (the masked-note loss) and, where the run harmonises, how close its voices under
        the test pieces' own melodies come to the pieces' voices (`harmony_scores`)."""
        m, lines = self.inner.evaluate(data, **kwargs)
        specials = self.config.model.special_ids
        if MASK in specials and CLS in specials:
            h = harmony_scores(self, data.split("test"))
            if h:
                m.update(h)
                lines.append(f"harmonised {int(h['harmony_frames'])} frames of {int(h['harmony_pieces'])} test "
                             f"pieces' melodies (likeliest notes): {h['harmony_note_acc']:.3f} of their voices' notes "
                             f"written as in the piece, {h['harmony_pc_acc']:.3f} by pitch class; in-key share "
                             f"{h['harmony_in_key']:.3f}")
        return m, lines

    def fill_mask(self, text: str, top_k: int = 5):
        return self.inner.fill_mask(text, top_k)

    def melody_of(self, melody) -> list[int | None]:
        """A melody as one pitch (or None, a rest) per quarter-note frame: a list of pitches, or a MIDI / MusicXML
        file (its path or bytes), whose highest note in each frame is taken."""
        if isinstance(melody, (bytes, bytearray)):
            melody = [max(f) if f else None for f in read_midi(bytes(melody), "melody")[0]]
        elif isinstance(melody, (str, Path)):
            melody = [max(f) if f else None for f in read_file(_melody_file(melody))[0]]
        out = []
        for k, p in enumerate(melody):
            if p is not None and (isinstance(p, bool) or not isinstance(p, (int, np.integer)) or
                                  not LOW + 3 <= int(p) <= HIGH):
                raise UserError(f"melody[{k}]: {p!r} is not a MIDI pitch from {LOW + 3} to {HIGH} (or None, a rest)")
            out.append(None if p is None else int(p))
        if not any(p is not None for p in out):
            raise UserError("melody: no notes; give one MIDI pitch per quarter-note frame")
        if len(out) > MAX_MELODY:
            raise UserError(f"melody: {len(out)} frames; at most {MAX_MELODY} are harmonised at once")
        return out

    def melody_notes(self, melody) -> list[tuple[int, int, int]]:
        """A melody as notes (pitch, onset, duration in sixteenths): a list of pitches (None, a rest) is one quarter
        note each; a MIDI / MusicXML file (its path or bytes) or a list of notes (pitch, onset, duration) keeps its
        durations, its highest note at each onset taken (cut where the next one starts)."""
        if isinstance(melody, (bytes, bytearray, str, Path)):
            notes = read_notes(melody if isinstance(melody, (bytes, bytearray)) else _melody_file(melody), "melody")[0]
        elif len(melody) and all(isinstance(n, (tuple, list)) for n in melody):
            notes = melody
        else:
            return [(p, 4 * k, 4) for k, p in enumerate(self.melody_of(melody)) if p is not None]
        out = skyline(notes)
        self.melody_of([p for p, _, _ in out])          # the checks of pitch and length
        return [n for n in out if n[1] < 4 * MAX_MELODY]

    @torch.no_grad()
    def harmonise(self, melody, *, prompt: str = "", voices: int = 3, seed: int | None = 0,
                  temperature: float = 1.0) -> Score:
        """`voices` notes under each melody note (a list of pitches, one per quarter note, None for a rest, or a
        MIDI / MusicXML file); `temperature` 0 takes the likeliest note each time, else notes are drawn from
        `seed`."""
        tok: MusicTokenizer = self.tokenizer
        specials = self.config.model.special_ids
        if MASK not in specials or CLS not in specials:
            raise UserError(f"a {self.config.family} run has no {MASK} to fill; harmonising needs a masked LM")
        if not 1 <= voices <= 5:
            raise UserError(f"voices: {voices}; harmonise with 1 to 5 voices under the melody")
        if not temperature >= 0:
            raise UserError(f"temperature: {temperature} must be >= 0 (0: the likeliest notes)")
        head = [specials[CLS], *tok.prompt_ids(prompt)]
        if tok.tokenization == "frames":
            units: list = self.melody_of(melody)           # a pitch (or None) per frame
        else:                                              # (bar, position, pitch, duration) per melody note
            bar = tok.bar_of(words_of(prompt))
            units = [(on // bar, on % bar, p, dur) for p, on, dur in self.melody_notes(melody)]
        block = int(self.config.model.block_size)
        cost = [len(self._tokens(u, units[i - 1] if i else None, self._masked(u, voices))) for i, u in enumerate(units)]
        if len(head) + max(cost) > block:
            raise UserError(f"prompt {prompt!r}: too long to harmonise even one melody note in the model's context "
                            f"of {block} tokens")
        generator = torch.Generator().manual_seed(int(seed if seed is not None else torch.seed() >> 2))
        device = next(self.model.parameters()).device
        done: list[list[int]] = []                         # each unit's chord, from the lowest note to the melody's
        while len(done) < len(units):
            j, context = len(done), []  # finished units before j, as many of the last as fit in half the context
            for i in range(j - 1, -1, -1):
                ids = self._tokens(units[i], units[i - 1] if i else None, done[i])
                if len(head) + len(context) + len(ids) > block // 2:
                    break
                context = ids + context
            room, end = block - len(head) - len(context), j
            while end < len(units) and (end == j or room >= cost[end]):
                room -= cost[end]
                end += 1
            done += self._fill(head + context, units[j:end], units[j - 1] if j else None, voices, temperature,
                               generator, device)
        if tok.tokenization == "frames":
            ids = [*tok.prompt_ids(prompt), *tok.frame_ids(done), tok.end]
            return Score([done], [tok.decode_piece(ids)[0]], [ids], [tok.decode(ids)])
        notes = [(p, b * bar + pos, dur, VELOCITY) for (b, pos, _, dur), chord in zip(units, done) for p in chord]
        ids = tok.encode_events(notes, prompt)
        return Score([notes_frames(notes)], [tok.decode_events(ids)[0]], [ids], [tok.decode(ids)], notes=[notes])

    def _top(self, unit) -> int | None:
        return unit if self.tokenizer.tokenization == "frames" else unit[2]

    def _masked(self, unit, voices: int) -> list:
        top = self._top(unit)
        return [] if top is None else [None] * voices + [top]

    def _tokens(self, unit, prev, chord: list) -> list[int]:
        """A frame (its melody pitch) or a melody note ((bar, position, pitch, duration)) as tokens, `chord` the
        notes written there from the lowest up (None: a [MASK]); `prev`, the unit before it (for the bar lines
        between them)."""
        tok, mask = self.tokenizer, self.config.model.special_ids[MASK]
        ids = [mask if p is None else tok.pitch0 + p - LOW for p in chord]
        if tok.tokenization == "frames":
            return ids + [tok.frame]
        bar, pos, _, dur = unit
        bars = bar - (prev[0] if prev is not None else -1)
        return [tok.bar] * bars + [tok.pos0 + pos] + [t for i in ids for t in (i, tok.dur0 + dur - 1)]

    def _fill(self, head: list[int], chunk: list, prev, voices: int, temperature: float,
              generator: torch.Generator, device) -> list[list[int]]:
        """The chords of the units of `chunk` (after `prev`), the voices under their melody notes filled."""
        tok, mask_id = self.tokenizer, self.config.model.special_ids[MASK]
        x, slots = list(head), []          # slots: (position, unit, voice)
        value: dict[tuple[int, int], int | None] = {}
        for k, unit in enumerate(chunk):
            ids = self._tokens(unit, prev if k == 0 else chunk[k - 1], self._masked(unit, voices))
            masks = [i for i, t in enumerate(ids) if t == mask_id]
            slots += [(len(x) + i, k, v) for v, i in enumerate(masks)]
            if masks:
                value[(k, voices)] = self._top(unit)
            x += ids
        left = list(slots)
        ids = torch.tensor([x], device=device)
        while left:
            logits = self.model(ids)[0][0].float().cpu()                               # (T, V)
            best = None
            for slot in left:
                pos, k, v = slot
                lo, hi = _room(value, k, v, voices)
                if lo > hi:
                    best = best if best is not None else (float("inf"), slot, None)
                    continue
                row = torch.log_softmax(logits[pos, tok.pitch0 + lo - LOW:tok.pitch0 + hi - LOW + 1], dim=-1)
                score = float(row.max())
                if best is None or score > best[0]:
                    best = (score, slot, row)
            _, slot, row = best
            left.remove(slot)
            pos, k, v = slot
            if row is None:  # no room for this voice (its neighbours are a semitone apart): it is dropped
                value[(k, v)] = None  # and stays a [MASK] for the model
                continue
            lo, _ = _room(value, k, v, voices)
            if temperature < torch.finfo(torch.float32).tiny:  # 0, or too small to divide by: the likeliest
                pick = int(row.argmax())
            else:  # shifted so that the largest is 0: a small temperature sends the others to -inf, never NaN
                pick = int(torch.multinomial(torch.softmax((row - row.max()) / temperature, -1), 1,
                                             generator=generator))
            value[(k, v)] = lo + pick
            ids[0, pos] = tok.pitch0 + lo + pick - LOW
        return [sorted({p for p in (value.get((k, u)) for u in range(voices + 1)) if p is not None})
                if (k, voices) in value else [] for k in range(len(chunk))]


HARMONISED_PIECES = 8         # test pieces whose melodies `harmony_scores` harmonises
HARMONISED_FRAMES = 32        # frames of each, from its start


def harmony_match(real: list[list[int]], made: list[list[int]]) -> tuple[float, float, int]:
    """How many of the notes under the melody in `real` frames `made` has in the same frames: (share by pitch, share
    by pitch class, notes counted). The melody (each frame's top note) is given, so it is not counted."""
    same = same_pc = total = 0
    for r, m in zip(real, made):
        if len(r) < 2:
            continue
        under, wrote = r[:-1], list(m[:-1]) if m else []
        same += sum(min(under.count(p), wrote.count(p)) for p in set(under))
        classes = {p % 12 for p in wrote}
        same_pc += sum(p % 12 in classes for p in under)
        total += len(under)
    return (same / total, same_pc / total, total) if total else (0.0, 0.0, 0)


def harmony_scores(pipe: MusicMaskedLM, pieces, most: int = HARMONISED_PIECES) -> dict:
    """The first HARMONISED_FRAMES quarter notes of up to `most` test pieces: each piece's top voice
    harmonised with the likeliest notes under its own prompt, with as many voices under it as the piece has most
    often (1 to 5), against the piece's own notes frame by frame (`harmony_match`), and the in-key share of what
    was written. A run in events is given the top voice with its durations (the piece's notes from the bar line
    before its first) and compared on the quarter-note frames of those notes."""
    from . import stats
    events = pipe.tokenizer.tokenization == "events"
    same = same_pc = total = frames = 0
    made, used = [], 0
    for piece in pieces[:most]:
        real, notes = harmony_reference(piece, events)
        counts = [len(f) for f in real if f]
        if not counts or max(counts) < 2:
            continue
        voices = int(np.clip(np.bincount(counts).argmax() - 1, 1, 5))
        melody = skyline(notes) if events else [max(f) if f else None for f in real]
        score = pipe.harmonise(melody, prompt=piece.prompt, voices=voices, temperature=0)
        a, b, n = harmony_match(real, score.pieces[0])
        same, same_pc, total = same + a * n, same_pc + b * n, total + n
        frames += len(real)
        made.append(score.pieces[0])
        used += 1
    if not total:
        return {}
    return {"harmony_note_acc": same / total, "harmony_pc_acc": same_pc / total,
            "harmony_in_key": stats.in_key_share(made), "harmony_pieces": float(used), "harmony_frames": float(frames)}


def harmony_reference(piece, events: bool) -> tuple[list[list[int]], list | None]:
    """The frames a harmonisation of a piece's top voice is compared with: its first HARMONISED_FRAMES, as written
    (frames) or as the quarter-note frames of its notes (events); and, in events, those notes (None in frames)."""
    notes = [n for n in piece.events() if n[1] < 4 * HARMONISED_FRAMES] if events else None
    return [list(f) for f in (notes_frames(notes) if events else piece.frames)[:HARMONISED_FRAMES]], notes


def _melody_file(melody) -> Path:
    if not Path(melody).is_file():
        raise UserError(f"melody {melody}: no such file; give a .mid or .musicxml file, or a list of pitches")
    return Path(melody)


def skyline(notes) -> list[tuple[int, int, int]]:
    """The top voice of notes (pitch, onset, duration[, ...]): the highest note at each onset, cut where the next
    one starts."""
    top: dict[int, tuple[int, int]] = {}
    for p, on, dur, *_ in notes:
        if p > top.get(on, (0, 0))[0]:
            top[on] = (p, dur)
    onsets = sorted(top)
    return [(top[on][0], on, min(top[on][1], nxt - on)) for on, nxt in zip(onsets, onsets[1:] + [1 << 30])]


def _room(value: dict, k: int, v: int, voices: int) -> tuple[int, int]:
    """The pitches voice v of frame k may take: above the voices under it and below those over it, leaving a
    semitone for each voice between it and them still to be filled."""
    below = [u for u in range(v) if (k, u) in value and value[(k, u)] is not None]
    above = [u for u in range(v + 1, voices + 1) if (k, u) in value and value[(k, u)] is not None]
    lo_voice, hi_voice = (below[-1], value[(k, below[-1])]) if below else (-1, LOW - 1)
    up_voice, up_pitch = above[0], value[(k, above[0])]
    open_below = sum(1 for u in range(lo_voice + 1, v) if (k, u) not in value)
    open_above = sum(1 for u in range(v + 1, up_voice) if (k, u) not in value)
    return hi_voice + 1 + open_below, up_pitch - 1 - open_above


def adapt(pipe: Any, run_dir: Path):
    """The music modality's TokenForm.adapt: a causal language model's run on music draws scores
    (pipeline.py `MusicPipeline`), a masked LM's harmonises melodies; any other run keeps its own pipeline."""
    if isinstance(pipe, FillsMasks) and isinstance(pipe.tokenizer, MusicTokenizer):
        return MusicMaskedLM(pipe)
    return adapt_causal(pipe, run_dir)
