"""A user's folder of sounds as labelled clips: class sub-folders are the labels (files directly in the folder form
one class, named after it), with an optional captions.jsonl (`{"file": "cls/a.wav", "text": "..."}` per line)
whose texts go into each clip's meta.

Any file libsndfile decodes is read (WAV, FLAC, OGG, AIFF, ...; any sample rate, bit depth and channel count): it is
mixed to mono, resampled and cut or zero-padded at its end to the clip length. Each kind of conversion is said
once on stderr, with how many files it touched; undecodable, empty and silent files are skipped and listed in one
line. The last `val_fraction` of each class (in sorted order) is the test split, as for image folders.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ...data.grids import held_out
from .audio import AudioFileError, MelSettings, SoundSet, fit_length, read_audio, resample

SUFFIXES = {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".w64",
            ".caf"}
CAPTIONS_FILE = "captions.jsonl"
SILENT_PEAK = 1e-4          # about -80 dBFS: nothing a model could learn from
SHOWN = 3                   # skipped files named in the warning


def sound_files(root: Path) -> list[Path]:
    """The sound files under `root` (by suffix), sorted; none is a one-line UserError."""
    if not root.is_dir():
        raise UserError(f"--data {root}: no such folder; give a folder of sound files (one sub-folder per class)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise UserError(f"--data {root}: no sound files ({', '.join(sorted(SUFFIXES)[:6])}, ...) in the folder; "
                        f"put .wav or .flac files in one sub-folder per class")
    return files


def read_captions(root: Path) -> dict[str, str]:
    """file (relative to root, with /) -> caption text, from root/captions.jsonl when there is one."""
    path = root / CAPTIONS_FILE
    if not path.is_file():
        return {}
    captions = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise UserError(f"{path}: line {number} is not JSON; each line must be "
                            f'{{"file": "class/name.wav", "text": "..."}}') from None
        if not (isinstance(row, dict) and isinstance(row.get("file"), str) and isinstance(row.get("text"), str)):
            raise UserError(f"{path}: line {number} needs a \"file\" and a \"text\" string, e.g. "
                            f'{{"file": "class/name.wav", "text": "..."}}')
        captions[row["file"].replace("\\", "/").removeprefix("./")] = row["text"]
    return captions


def _counted(counter: Counter) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counter.items()))


def sound_folder(root: Path, settings: MelSettings = MelSettings(),
                 val_fraction: float = 0.1) -> tuple[SoundSet, SoundSet]:
    """(train, test) SoundSets of the folder's clips at `settings.sample_rate`, `settings.clip` samples each; each
    clip's meta holds its file (relative to root) and, where captions.jsonl names it, its text."""
    root = Path(root).expanduser()
    files = sound_files(root)
    captions = read_captions(root)
    classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
    if any(len(p.relative_to(root).parts) == 1 for p in files):
        classes = [root.name] + classes if classes else [root.name]
    index = {c: i for i, c in enumerate(classes)}
    notes, rates, lengths = Counter(), Counter(), Counter()
    skipped, reasons = [], Counter()
    waves, labels, meta = [], [], []
    for path in files:
        rel = path.relative_to(root)
        try:
            wave, rate, said = read_audio(path)
        except AudioFileError as e:
            skipped.append(rel.as_posix())
            reasons[e.reason] += 1
            continue
        if wave.size == 0 or np.abs(wave).max() < SILENT_PEAK:
            skipped.append(rel.as_posix())
            reasons["empty" if wave.size == 0 else "silent"] += 1
            continue
        notes.update(said)
        if rate != settings.sample_rate:
            rates[rate] += 1
            wave = resample(torch.from_numpy(wave), rate, settings.sample_rate).numpy()
        if len(wave) != settings.clip:
            lengths["cut" if len(wave) > settings.clip else "padded"] += 1
        waves.append(fit_length(wave, settings.clip).astype(np.float32))
        labels.append(index[rel.parts[0] if len(rel.parts) > 1 else root.name])
        entry = {"file": rel.as_posix()}
        if rel.as_posix() in captions:
            entry["text"] = captions[rel.as_posix()]
        meta.append(entry)
    if not waves:
        raise UserError(f"--data {root}: none of the {len(files)} sound files could be used ({_counted(reasons)}); "
                        f"give decodable, non-silent .wav or .flac files")
    for note, n in sorted(notes.items()):
        print(f"tetragen: {root}: {note} ({n} file{'s' * (n > 1)})", file=sys.stderr)
    if rates:
        n = sum(rates.values())
        print(f"tetragen: {root}: resampled {n} file{'s' * (n > 1)} to {settings.sample_rate} Hz "
              f"(from {', '.join(f'{r} Hz' for r in sorted(rates))})", file=sys.stderr)
    seconds = settings.clip / settings.sample_rate
    for kind, n in sorted(lengths.items()):
        where = "their end" if kind == "cut" else "the end with silence"
        print(f"tetragen: {root}: {kind} {n} file{'s' * (n > 1)} to {seconds:g} s (at {where})", file=sys.stderr)
    if skipped:
        print(f"tetragen: {root}: skipped {len(skipped)} of {len(files)} files ({_counted(reasons)}): "
              f"{', '.join(skipped[:SHOWN])}{' ...' if len(skipped) > SHOWN else ''}", file=sys.stderr)
    unmatched = len(set(captions) - {m["file"] for m in meta})
    if unmatched:
        print(f"tetragen: {root / CAPTIONS_FILE}: {unmatched} caption(s) name no file that was read", file=sys.stderr)
    labels_arr = np.array(labels, dtype=np.int64)
    test = held_out(labels_arr, len(classes), val_fraction)
    stacked = np.stack(waves)
    sets = []
    for mask in (~test, test):
        sets.append(SoundSet(stacked[mask], labels_arr[mask], list(classes), [m for m, k in zip(meta, mask) if k]))
    return sets[0], sets[1]
