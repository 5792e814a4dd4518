"""Scores in and out: quarter-note frames to a Standard MIDI File (mido) and back, and a user's .mid / .musicxml
files read into frames.

Frames to MIDI: a pitch held over consecutive frames is one note (the frame form cannot tell a held note from a
repeated one), at `BPM` quarter notes a minute, every note at one velocity, the piece's end marked by the track's
end, so `read_midi(write_midi(frames))` is `frames`. MIDI to frames: notes of every track and channel but the
General MIDI drum channel are merged; a pitch is in frame k when it sounds at the frame's middle or starts inside
the frame (a short note is not lost). Tempo changes move notes in time, not in beats, so frames ignore them (a notice
says so). Pitches off the piano are dropped and counted; a file longer than `MAX_FRAMES` frames is cut there, with
a notice; a file with no notes, or no MIDI at all, is refused in one line.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from ...errors import UserError
from .tokens import HIGH, LOW, MAX_DURATION, VELOCITY, bar_steps, quantise_velocity

TICKS = 480                  # ticks per quarter note of the files written
BPM = 100
PROGRAM = 0                  # General MIDI acoustic grand piano
DRUMS = 9                    # the General MIDI percussion channel (channel 10 counted from 1)
MAX_FRAMES = 4096            # frames read from one file (about 41 minutes at 100 quarter notes a minute)
MIDI_SUFFIXES = (".mid", ".midi")
XML_SUFFIXES = (".musicxml", ".mxl")    # not plain .xml: a folder of other XML files is not music
SUFFIXES = MIDI_SUFFIXES + XML_SUFFIXES


def midi_file(pieces: Sequence[Sequence[Sequence[int]]], *, gap: int = 2, bpm: int = BPM):
    """A mido MidiFile of the pieces one after another, `gap` silent frames between them."""
    import mido
    events = []                                   # (tick, order, message): note-offs before note-ons at one tick
    start = 0
    for n, frames in enumerate(pieces):
        held: dict[int, int] = {}                 # pitch -> frame where its note began
        for k in range(len(frames) + 1):
            now = set(frames[k]) if k < len(frames) else set()
            for p in [p for p in held if p not in now]:
                events.append(((start + k) * TICKS, 0, mido.Message("note_off", note=p, velocity=0)))
                del held[p]
            for p in sorted(now - set(held)):
                held[p] = k
                events.append(((start + k) * TICKS, 1, mido.Message("note_on", note=p, velocity=VELOCITY)))
        start += len(frames) + (gap if n < len(pieces) - 1 else 0)
    return _one_track(events, start * TICKS, bpm)


def _one_track(events: list, end: int, bpm: int):
    """A MidiFile of one piano track: its tempo, then `events` (tick, order, message) in time order (at one tick,
    lower orders first, then by note), ending at tick `end`."""
    import mido
    events = sorted(events, key=lambda e: (e[0], e[1], getattr(e[2], "note", 0)))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
                            mido.Message("program_change", program=PROGRAM, time=0)])
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - last)))
    out = mido.MidiFile(ticks_per_beat=TICKS)
    out.tracks.append(track)
    return out


def midi_bytes(pieces: Sequence[Sequence[Sequence[int]]], **kwargs) -> bytes:
    buf = io.BytesIO()
    midi_file(pieces, **kwargs).save(file=buf)
    return buf.getvalue()


def notes_to_frames(notes: list[tuple], end: float, where: str) -> tuple[list[list[int]], list[str]]:
    """Notes (pitch, onset, offset[, velocity]) in quarter notes -> (frames, notices). `end`: where the piece
    ends."""
    notices = []
    outside = [n for n in notes if not LOW <= n[0] <= HIGH]
    if outside:
        notices.append(f"{where}: {len(outside)} notes outside the piano's range {LOW}..{HIGH} dropped")
        notes = [n for n in notes if LOW <= n[0] <= HIGH]
    if not notes:
        raise UserError(f"{where}: no notes{' on the piano' if outside else ''}; give a score with notes in it")
    n_frames = max(math.ceil(end - 1e-9), math.floor(max(n[1] for n in notes)) + 1)
    if n_frames > MAX_FRAMES:
        notices.append(f"{where}: {n_frames} quarter-note frames; only the first {MAX_FRAMES} are read")
        n_frames = MAX_FRAMES
        notes = [n for n in notes if n[1] < MAX_FRAMES]
    frames: list[set[int]] = [set() for _ in range(n_frames)]
    for pitch, on, off, *_ in notes:
        first = math.floor(on)
        if first < n_frames:
            frames[first].add(pitch)                          # it starts in this frame
        k = max(first, math.ceil(on - 0.5))                    # then every frame whose middle it sounds at
        while k < n_frames and k + 0.5 < off:
            if k + 0.5 >= on:
                frames[k].add(pitch)
            k += 1
    return [sorted(f) for f in frames], notices


def midi_notes(source, where: str = "") -> tuple[list[tuple[int, float, float, int]], float, list[str]]:
    """A Standard MIDI File (a path or bytes) -> (its notes (pitch, onset, offset in quarter notes, velocity),
    where it ends, notices)."""
    import mido
    where = where or str(source)
    try:
        mid = mido.MidiFile(file=io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) \
            else mido.MidiFile(str(source))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"{where}: not a readable MIDI file ({' '.join(str(e).split())[:100] or type(e).__name__})"
                        ) from None
    if mid.ticks_per_beat <= 0:
        raise UserError(f"{where}: timed in SMPTE frames, not beats; save it with beat-based timing")
    notices, tempos, drums = [], 0, 0
    notes, open_notes, tick, end = [], {}, 0, 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        end = max(end, tick)
        if msg.type == "set_tempo":
            tempos += 1
        elif msg.type in ("note_on", "note_off"):
            if msg.channel == DRUMS:
                drums += msg.type == "note_on" and msg.velocity > 0
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes.setdefault(key, []).append((tick, msg.velocity))
            elif open_notes.get(key):
                on, vel = open_notes[key].pop(0)
                notes.append((msg.note, on / mid.ticks_per_beat, tick / mid.ticks_per_beat, vel))
    notes += [(k[1], t / mid.ticks_per_beat, end / mid.ticks_per_beat, vel) for k, ts in open_notes.items()
              for t, vel in ts]
    if tempos > 1:
        notices.append(f"{where}: {tempos} tempo changes; frames follow the beat, so they are ignored")
    if len(mid.tracks) > 1:
        notices.append(f"{where}: {len(mid.tracks)} tracks merged into one score")
    if drums:
        notices.append(f"{where}: {drums} drum notes (channel 10) left out")
    return notes, end / mid.ticks_per_beat, notices


def read_midi(source, where: str = "") -> tuple[list[list[int]], list[str]]:
    """A Standard MIDI File (a path or bytes) -> (its quarter-note frames, notices)."""
    notes, end, notices = midi_notes(source, where or str(source))
    frames, more = notes_to_frames(notes, end, where or str(source))
    return frames, notices + more


def _parse_score(path: Path):
    try:
        from music21 import converter
        return converter.parse(str(path))
    except Exception as e:  # music21 raises many kinds for a file it cannot read
        raise UserError(f"{path}: not a score music21 can read ({' '.join(str(e).split())[:100]})") from None


def read_score(path: Path) -> tuple[list[list[int]], list[str]]:
    """A MusicXML file (read by music21, repeats expanded where they can be) -> (frames, notices)."""
    return stream_frames(_parse_score(path), str(path))


def stream_notes(score, where: str) -> tuple[list[tuple[int, float, float, int]], float, list[str]]:
    """A music21 score, its repeats expanded where they can be -> (notes (pitch, onset, offset in quarter notes,
    velocity where the score gives one, else VELOCITY), its end, notices)."""
    notices = []
    try:
        score = score.expandRepeats()
    except Exception:  # malformed repeats: the score as written
        notices.append(f"{where}: its repeats could not be expanded; read as written")
    notes = []
    flat = score.flatten()
    for n in flat.notes:
        if "Harmony" in n.classes:   # a chord symbol over the staff names chords, it does not sound
            continue
        on = float(n.offset)
        off = on + float(n.quarterLength)
        vel = n.volume.velocity if n.hasVolumeInformation() else None
        for p in n.pitches:
            notes.append((int(p.midi), on, off, int(vel) if vel else VELOCITY))
    return notes, float(flat.highestTime), notices


def stream_metre(score) -> str:
    """A music21 score's first time signature as a prompt word ("3/4", "6/8"); "" where it has none."""
    try:
        ts = next(iter(score.recurse().getElementsByClass("TimeSignature")), None)
    except Exception:  # a malformed score: no metre rather than no piece
        return ""
    return f"{ts.numerator}/{ts.denominator}" if ts is not None else ""


def stream_pickup(score) -> float:
    """How much of its first bar a score leaves out before its first note (a pickup, an anacrusis), in quarter
    notes; 0 where it begins on a bar line."""
    try:
        parts = score.parts if score.parts else [score]
        first = next(iter(parts[0].recurse().getElementsByClass("Measure")), None)
        return float(first.paddingLeft or 0) if first is not None else 0.0
    except Exception:  # a malformed score: read from its first note
        return 0.0


def midi_metre(source) -> str:
    """A Standard MIDI File's first time signature as a prompt word; "" where it has none (or is unreadable)."""
    import mido
    try:
        mid = mido.MidiFile(file=io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) \
            else mido.MidiFile(str(source))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError):
        return ""
    for msg in mido.merge_tracks(mid.tracks):
        if msg.type == "time_signature":
            return f"{msg.numerator}/{msg.denominator}"
    return ""


def stream_frames(score, where: str) -> tuple[list[list[int]], list[str]]:
    """A music21 score -> (frames, notices)."""
    notes, end, notices = stream_notes(score, where)
    frames, more = notes_to_frames(notes, end, where)
    return frames, notices + more


def read_file(path: Path) -> tuple[list[list[int]], list[str]]:
    """A .mid or a MusicXML file -> (frames, notices)."""
    path = Path(path)
    return read_midi(path) if path.suffix.lower() in MIDI_SUFFIXES else read_score(path)


# ----------------------------------------------------------------------------------------------------------------
# notes with real durations, on a grid of sixteenths (the event tokenization)

Note = tuple[int, int, int, int]     # pitch, onset, duration (in sixteenth notes), velocity


def canonical(notes) -> list[Note]:
    """Notes (pitch, onset, duration[, velocity]) sorted by onset and pitch, one per pitch and onset, durations
    1..MAX_DURATION and cut where the same pitch starts again (a file cannot hold two of one pitch at once),
    velocities quantised (VELOCITY where none is given)."""
    best: dict[tuple[int, int], tuple[int, int]] = {}
    for n in notes:
        key, dur = (int(n[1]), int(n[0])), max(1, min(int(n[2]), MAX_DURATION))
        vel = quantise_velocity(n[3]) if len(n) > 3 else VELOCITY
        if dur > best.get(key, (0, 0))[0]:
            best[key] = (dur, vel)
    out, next_on = [], {}
    for (on, p) in sorted(best, reverse=True):
        dur, vel = best[(on, p)]
        if p in next_on:
            dur = min(dur, next_on[p] - on)
        next_on[p] = on
        out.append((p, on, dur, vel))
    return sorted(out, key=lambda n: (n[1], n[0]))


def to_sixteenths(notes: list[tuple], where: str, shift: int = 0) -> tuple[list[Note], list[str]]:
    """Notes (pitch, onset, offset in quarter notes[, velocity]) -> canonical notes on the sixteenth grid, `shift`
    sixteenths later, with notices (pitches off the piano dropped, a file longer than MAX_FRAMES quarter notes cut
    there); no notes is one line."""
    notices = []
    outside = [n for n in notes if not LOW <= n[0] <= HIGH]
    if outside:
        notices.append(f"{where}: {len(outside)} notes outside the piano's range {LOW}..{HIGH} dropped")
    out = [(n[0], shift + round(n[1] * 4), max(1, round((n[2] - n[1]) * 4)), *n[3:4]) for n in notes
           if LOW <= n[0] <= HIGH]
    if not out:
        raise UserError(f"{where}: no notes{' on the piano' if outside else ''}; give a score with notes in it")
    if max(n[1] for n in out) >= 4 * MAX_FRAMES:
        notices.append(f"{where}: longer than {MAX_FRAMES} quarter notes; only its start is read")
        out = [n for n in out if n[1] < 4 * MAX_FRAMES]
    return canonical(out), notices


def score_piece(score, where: str) -> tuple[list[list[int]], list[Note], str, list[str]]:
    """A music21 score, read once: (its quarter-note frames, its notes on the sixteenth grid, its metre as a prompt
    word, notices)."""
    notes, end, notices = stream_notes(score, where)
    metre = stream_metre(score)
    return _piece(notes, end, notices, metre, where, _pickup_shift(stream_pickup(score), metre))


def read_piece(path: Path) -> tuple[list[list[int]], list[Note], str, list[str]]:
    """A .mid or a MusicXML file, parsed once, as `score_piece` gives it."""
    path = Path(path)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        return score_piece(_parse_score(path), str(path))
    notes, end, notices = midi_notes(path, str(path))
    return _piece(notes, end, notices, midi_metre(path), str(path))


def read_notes(source, where: str) -> tuple[list[Note], list[str]]:
    """A .mid or MusicXML file's path, or a MIDI file's bytes -> (its notes on the sixteenth grid, notices)."""
    if isinstance(source, (bytes, bytearray)):
        notes, _, notices = midi_notes(bytes(source), where)
        notes, more = to_sixteenths(notes, where)
        return notes, notices + more
    _, notes, _, notices = read_piece(Path(source))
    return notes, notices


def _pickup_shift(padding: float, metre: str) -> int:
    """Sixteenths of rest that put a pickup at the end of a whole first bar (0 where none, or where the pickup
    does not fit the bar the metre makes)."""
    shift = padding * 4
    return int(shift) if shift == int(shift) and 0 < shift < bar_steps(metre) else 0


def _piece(notes, end: float, notices: list[str], metre: str, where: str, shift: int = 0):
    """Frames as the piece is written; its notes on the sixteenth grid from the bar line before its first note
    (`shift`: the rest before a pickup)."""
    frames, more = notes_to_frames(notes, end, where)
    sixteenths, _ = to_sixteenths(notes, where, shift)
    return frames, sixteenths, metre, notices + more


def frames_to_notes(frames) -> list[Note]:
    """Quarter-note frames -> notes: a pitch held over consecutive frames is one note."""
    notes, held = [], {}
    for k in range(len(frames) + 1):
        now = set(frames[k]) if k < len(frames) else set()
        for p in [p for p in held if p not in now]:
            notes.append((p, 4 * held.pop(p), 4 * k))
        for p in now - set(held):
            held[p] = k
    return canonical([(p, on, end - on) for p, on, end in notes])


def notes_frames(notes: list[Note]) -> list[list[int]]:
    """Notes on the sixteenth grid -> quarter-note frames (for piano rolls and statistics)."""
    if not notes:
        return []
    end = max(n[1] + n[2] for n in notes) / 4
    frames, _ = notes_to_frames([(n[0], n[1] / 4, (n[1] + n[2]) / 4) for n in notes], end, "notes")
    return frames


def midi_file_notes(pieces: Sequence[Sequence[Note]], *, metres: Sequence[str] = (), gap: int = 1,
                    bpm: int = BPM):
    """A mido MidiFile of pieces of notes, one after another with `gap` silent bars between them; `metres[i]`
    ("3/4"): piece i's time signature, written where it starts (none where "" or not given)."""
    import mido
    events, start = [], 0
    step = TICKS // 4
    for k, notes in enumerate(pieces):
        metre = metres[k] if k < len(metres) else ""
        if metre:
            num, den = metre.split("/")
            events.append((start * step, -1, mido.MetaMessage("time_signature", numerator=int(num),
                                                              denominator=int(den))))
        for p, on, dur, vel in canonical(notes):
            events.append(((start + on) * step, 1, mido.Message("note_on", note=p, velocity=vel)))
            events.append(((start + on + dur) * step, 0, mido.Message("note_off", note=p, velocity=0)))
        length, bar = max((n[1] + n[2] for n in notes), default=0), bar_steps(metre)
        start += -(-length // bar) * bar + (bar * gap if k < len(pieces) - 1 else 0)
    return _one_track(events, start * step, bpm)


def midi_bytes_notes(pieces: Sequence[Sequence[Note]], **kwargs) -> bytes:
    buf = io.BytesIO()
    midi_file_notes(pieces, **kwargs).save(file=buf)
    return buf.getvalue()
